/* tests/unit/test_tokenizer_build.c - tsr__tokenizer_create() from the
 * tokenizer.ggml.* metadata of llama.cpp's vocab-only GGUF files, checked
 * against the same test vectors (ids from Hugging Face `tokenizers`).  The
 * GGUF metadata is read by a minimal reader here (GGUF v3 layout: magic,
 * version, n_tensors, n_kv, then key/type/value triples). */
#include <stdlib.h>
#include <string.h>
#include "tokenizer.h"
#include "tsr_test.h"

typedef struct gguf { const uint8_t *p, *end; } gguf;

typedef struct meta {
    char **tokens; size_t n_tokens;
    float *scores;
    int32_t *types;
    char **merges; size_t n_merges;
    char model[32], pre[32];
    int32_t bos, eos, unk, sep, cls;
    bool add_bos, add_eos, has_add_bos;
} meta;

static bool rd(gguf *g, void *dst, size_t n)
{
    if ((size_t)(g->end - g->p) < n)
        return false;
    memcpy(dst, g->p, n);
    g->p += n;
    return true;
}

static char *rd_str(gguf *g)
{
    uint64_t n;
    if (!rd(g, &n, 8) || (size_t)(g->end - g->p) < n)
        return NULL;
    char *s = malloc(n + 1);
    memcpy(s, g->p, n);
    s[n] = 0;
    g->p += n;
    return s;
}

static const size_t type_size[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static bool skip_value(gguf *g, uint32_t type)
{
    if (type == 8) {
        free(rd_str(g));
        return true;
    }
    if (type == 9) {
        uint32_t et;
        uint64_t n;
        if (!rd(g, &et, 4) || !rd(g, &n, 8))
            return false;
        for (uint64_t i = 0; i < n; i++)
            if (!skip_value(g, et))
                return false;
        return true;
    }
    if (type > 12)
        return false;
    g->p += type_size[type];
    return g->p <= g->end;
}

static int64_t rd_int(gguf *g, uint32_t type)
{
    int64_t v = 0;
    if (type == 4 || type == 5) { int32_t x = 0; rd(g, &x, 4); v = x; }
    else if (type == 7 || type == 0) { uint8_t x = 0; rd(g, &x, 1); v = x; }
    else skip_value(g, type);
    return v;
}

static bool read_meta(const char *path, meta *m)
{
    memset(m, 0, sizeof *m);
    m->bos = m->eos = m->unk = m->sep = m->cls = -1;
    tsr__mmap mm;
    if (tsr__mmap_open(path, &mm))
        return false;
    gguf g = {mm.data, (const uint8_t *)mm.data + mm.size};
    uint32_t magic, version;
    uint64_t n_tensors, n_kv;
    bool ok = rd(&g, &magic, 4) && rd(&g, &version, 4) && rd(&g, &n_tensors, 8) && rd(&g, &n_kv, 8);
    for (uint64_t k = 0; ok && k < n_kv; k++) {
        char *key = rd_str(&g);
        uint32_t type;
        ok = key && rd(&g, &type, 4);
        if (!ok) {
            free(key);
            break;
        }
        if (type == 9 && (!strcmp(key, "tokenizer.ggml.tokens") ||
                          !strcmp(key, "tokenizer.ggml.merges") ||
                          !strcmp(key, "tokenizer.ggml.scores") ||
                          !strcmp(key, "tokenizer.ggml.token_type"))) {
            uint32_t et = 0;
            uint64_t n = 0;
            ok = rd(&g, &et, 4) && rd(&g, &n, 8);
            if (et == 8) {
                char **arr = calloc(n + 1, sizeof *arr);
                for (uint64_t i = 0; ok && i < n; i++)
                    ok = (arr[i] = rd_str(&g)) != NULL;
                if (!strcmp(key, "tokenizer.ggml.tokens"))
                    m->tokens = arr, m->n_tokens = n;
                else
                    m->merges = arr, m->n_merges = n;
            } else {
                void *arr = malloc(n * 4 + 4);
                ok = ok && rd(&g, arr, n * 4);
                if (!strcmp(key, "tokenizer.ggml.scores"))
                    m->scores = arr;
                else
                    m->types = arr;
            }
        } else if (type == 8 && (!strcmp(key, "tokenizer.ggml.model") ||
                                 !strcmp(key, "tokenizer.ggml.pre"))) {
            char *s = rd_str(&g);
            snprintf(!strcmp(key, "tokenizer.ggml.model") ? m->model : m->pre, 32, "%s", s ? s : "");
            free(s);
        } else if (!strcmp(key, "tokenizer.ggml.bos_token_id")) m->bos = (int32_t)rd_int(&g, type);
        else if (!strcmp(key, "tokenizer.ggml.eos_token_id")) m->eos = (int32_t)rd_int(&g, type);
        else if (!strcmp(key, "tokenizer.ggml.unknown_token_id")) m->unk = (int32_t)rd_int(&g, type);
        else if (!strcmp(key, "tokenizer.ggml.seperator_token_id")) m->sep = (int32_t)rd_int(&g, type);
        else if (!strcmp(key, "tokenizer.ggml.cls_token_id")) m->cls = (int32_t)rd_int(&g, type);
        else if (!strcmp(key, "tokenizer.ggml.add_bos_token")) m->add_bos = rd_int(&g, type), m->has_add_bos = true;
        else if (!strcmp(key, "tokenizer.ggml.add_eos_token")) m->add_eos = rd_int(&g, type);
        else ok = skip_value(&g, type);
        free(key);
    }
    tsr__mmap_close(&mm);
    return ok && m->tokens;
}

static void free_meta(meta *m)
{
    for (size_t i = 0; i < m->n_tokens; i++)
        free(m->tokens[i]);
    for (size_t i = 0; i < m->n_merges; i++)
        free(m->merges[i]);
    free(m->tokens), free(m->merges), free(m->scores), free(m->types);
}

static size_t split_inputs(char *s, char **out, size_t max)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t n = 0;
    for (char *q; n < max && (q = strstr(s, sep)); s = q + strlen(sep))
        *q = 0, out[n++] = s;
    return n;
}

static void check(const char *name, tsr__tok_model_type model, tsr__tok_pre_kind pre)
{
    char path[256];
    snprintf(path, sizeof path, "fixtures/llamacpp-vocab/ggml-vocab-%s.gguf", name);
    meta m;
    CHECK_MSG(read_meta(path, &m), "%s: cannot read GGUF metadata", path);
    tsr__tok_spec sp = {0};
    sp.model = model;
    sp.n_vocab = m.n_tokens;
    sp.tokens = (const char *const *)m.tokens;
    sp.scores = m.scores;
    sp.token_types = m.types;
    sp.n_merges = m.n_merges;
    sp.merges = (const char *const *)m.merges;
    sp.pre = pre;
    sp.bos_id = model == TSR__TOK_WORDPIECE ? m.cls : m.bos;
    sp.eos_id = model == TSR__TOK_WORDPIECE ? m.sep : m.eos;
    sp.unk_id = m.unk, sp.pad_id = -1;
    sp.add_bos = model == TSR__TOK_WORDPIECE || m.add_bos;
    sp.add_eos = model == TSR__TOK_WORDPIECE || m.add_eos;
    sp.byte_fallback = pre == TSR__TOK_PRE_SPM;
    sp.lowercase = true;
    sp.wordpiece_phantom = true;
    tsr_tokenizer *tok = NULL;
    CHECK_MSG(tsr__tokenizer_create(&sp, path, &tok) == TSR_OK, "%s", tsr_last_error());
    char *inp = NULL, *out = NULL;
    size_t len;
    snprintf(path, sizeof path, "fixtures/llamacpp-vocab/ggml-vocab-%s.gguf.inp", name);
    tsr__read_file(path, &inp, &len);
    snprintf(path, sizeof path, "fixtures/llamacpp-vocab/ggml-vocab-%s.gguf.out", name);
    tsr__read_file(path, &out, &len);
    CHECK(inp && out);
    char *strs[128];
    size_t n = inp ? split_inputs(inp, strs, 128) : 0, ok = 0;
    char *line = out;
    for (size_t i = 0; tok && out && i < n; i++) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        int32_t want[2048], got[2048];
        size_t nw = 0, ng = 0;
        for (char *p = line, *e;; p = e) {
            long v = strtol(p, &e, 10);
            if (e == p)
                break;
            want[nw++] = (int32_t)v;
        }
        tsr_status st = tsr_tokenize(tok, strs[i], strlen(strs[i]), 0, got, 2048, &ng);
        bool same = !st && ng == nw && !memcmp(got, want, nw * sizeof *got);
        ok += same;
        CHECK_MSG(same, "%s #%zu \"%s\": got %zu ids, want %zu: %s", name, i, strs[i], ng, nw, line);
        if (!same) {
            fprintf(stderr, "  got:");
            for (size_t k = 0; k < ng && k < 2048; k++)
                fprintf(stderr, " %d", got[k]);
            fprintf(stderr, "\n");
        }
        line = nl ? nl + 1 : line + strlen(line);
    }
    printf("%s (built from GGUF metadata): %zu/%zu identical\n", name, ok, n);
    if (tok && model != TSR__TOK_WORDPIECE) { /* special tokens per the GGUF flags */
        int32_t ids[16];
        size_t k = 0;
        CHECK(tsr_tokenize(tok, "Hello", 5, TSR_TOKENIZE_ADD_SPECIAL, ids, 16, &k) == TSR_OK);
        CHECK(k > 0 && (!m.add_bos || ids[0] == m.bos));
    }
    if (tok && model == TSR__TOK_WORDPIECE) { /* [CLS] hello world [SEP], decoded back */
        int32_t ids[16];
        size_t k = 0;
        char buf[64];
        CHECK(tsr_tokenize(tok, "Hello World!", 12, TSR_TOKENIZE_ADD_SPECIAL, ids, 16, &k) == TSR_OK);
        CHECK(k == 5 && ids[0] == m.cls && ids[4] == m.sep);
        CHECK(tsr_detokenize(tok, ids, k, TSR_DETOKENIZE_SKIP_SPECIAL, buf, sizeof buf, &len) == 0);
        CHECK_MSG(!strcmp(buf, "hello world!"), "decoded \"%s\"", buf);
    }
    free(inp), free(out);
    tsr_tokenizer_destroy(tok);
    free_meta(&m);
}

int main(void)
{
    check("gpt-2", TSR__TOK_BPE, TSR__TOK_PRE_GPT2);
    check("llama-spm", TSR__TOK_BPE, TSR__TOK_PRE_SPM);
    check("bert-bge", TSR__TOK_WORDPIECE, TSR__TOK_PRE_BERT);
    /* a spec error names the merge */
    const char *toks[] = {"a", "b"}, *merges[] = {"a c"};
    tsr__tok_spec sp = {0};
    sp.model = TSR__TOK_BPE, sp.n_vocab = 2, sp.tokens = toks, sp.n_merges = 1, sp.merges = merges;
    sp.bos_id = sp.eos_id = sp.unk_id = sp.pad_id = -1;
    tsr_tokenizer *tok = NULL;
    CHECK(tsr__tokenizer_create(&sp, "x.gguf", &tok) == TSR_ERR_FORMAT && !tok);
    CHECK_CONTAINS(tsr_last_error(), "x.gguf: merge 0: token \"c\"");
    return tsr_test_report("test_tokenizer_build");
}
