/* tests/unit/test_tokenizer.c - the tokenizer against independent references:
 * llama.cpp's tokenizer test vectors (ids from Hugging Face `tokenizers`),
 * the stories260K reference outputs, and ids made with `tokenizers` 0.23.3
 * (tests/data/tokenizer/PROVENANCE.md). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include "internal.h"
#include "tsr_test.h"

static char *slurp(const char *path, size_t *len)
{
    char *d = NULL;
    size_t l = 0;
    if (tsr__read_file(path, &d, &l)) {
        fprintf(stderr, "cannot read %s: %s\n", path, tsr_last_error());
        return NULL;
    }
    if (len)
        *len = l;
    return d;
}

/* Split "a\n__ggml_vocab_test__\nb\n__ggml_vocab_test__\n" into strings
 * (in place). Returns the count. */
static size_t split_inputs(char *s, char **out, size_t max)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t n = 0;
    char *p = s;
    for (;;) {
        char *q = strstr(p, sep);
        if (!q || n == max)
            break;
        *q = 0;
        out[n++] = p;
        p = q + strlen(sep);
    }
    return n;
}

static size_t parse_ids(const char *line, int32_t *ids, size_t max)
{
    size_t n = 0;
    char *end;
    while (n < max) {
        long v = strtol(line, &end, 10);
        if (end == line)
            break;
        ids[n++] = (int32_t)v;
        line = end;
    }
    return n;
}

static char *decode(const tsr_tokenizer *tok, const int32_t *ids, size_t n, uint32_t flags)
{
    size_t len = 0;
    if (tsr_detokenize(tok, ids, n, flags, NULL, 0, &len))
        return NULL;
    char *buf = malloc(len + 1);
    if (buf && tsr_detokenize(tok, ids, n, flags, buf, len + 1, &len)) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Encode into a malloc'd array (exercises the "call again" protocol). */
static int32_t *encode(const tsr_tokenizer *tok, const char *s, uint32_t flags, size_t *n)
{
    int32_t small[4];
    if (tsr_tokenize(tok, s, strlen(s), flags, small, 4, n))
        return NULL;
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    size_t n2 = 0;
    if (ids && tsr_tokenize(tok, s, strlen(s), flags, ids, *n + 1, &n2) == TSR_OK && n2 == *n)
        return ids;
    free(ids);
    return NULL;
}

/* The llama.cpp vectors: ids must be identical; decode must give the input
 * back when `roundtrip`.  Returns the number of exact matches. */
static void check_vectors(const char *dir, const char *vec, bool roundtrip)
{
    char inp_path[256], out_path[256];
    snprintf(inp_path, sizeof inp_path, "fixtures/llamacpp-vocab/%s.inp", vec);
    snprintf(out_path, sizeof out_path, "fixtures/llamacpp-vocab/%s.out", vec);
    tsr_tokenizer *tok = NULL;
    tsr_status st = tsr_tokenizer_load(dir, &tok);
    CHECK_MSG(st == TSR_OK, "%s: %s", dir, tsr_last_error());
    char *inp = slurp(inp_path, NULL), *out = slurp(out_path, NULL);
    CHECK(inp && out);
    if (!tok || !inp || !out) {
        free(inp), free(out), tsr_tokenizer_destroy(tok);
        return;
    }
    char *strs[256];
    size_t n = split_inputs(inp, strs, 256), ok = 0, rt_ok = 0;
    char *line = out;
    for (size_t i = 0; i < n; i++) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        int32_t want[4096];
        size_t nw = parse_ids(line, want, 4096), ng = 0;
        int32_t *got = encode(tok, strs[i], 0, &ng);
        bool same = got && ng == nw && !memcmp(got, want, nw * sizeof *got);
        ok += same;
        CHECK_MSG(same, "%s #%zu \"%s\": %zu ids, want %zu (%s)", vec, i, strs[i], ng, nw, line);
        if (!same && got) {
            fprintf(stderr, "  got:");
            for (size_t k = 0; k < ng; k++)
                fprintf(stderr, " %d", got[k]);
            fprintf(stderr, "\n");
        }
        if (roundtrip && got) {
            char *back = decode(tok, got, ng, 0);
            bool rt = back && !strcmp(back, strs[i]);
            rt_ok += rt;
            CHECK_MSG(rt, "%s #%zu: decode gives \"%s\", want \"%s\"", vec, i,
                      back ? back : "(error)", strs[i]);
            free(back);
        }
        free(got);
        line = nl ? nl + 1 : line + strlen(line);
    }
    printf("%s: %zu/%zu ids identical, %zu/%zu round trips\n", vec, ok, n, rt_ok,
           roundtrip ? n : 0);
    free(inp), free(out);
    tsr_tokenizer_destroy(tok);
}

static void test_stories260k(void)
{
    tsr_tokenizer *tok = NULL;
    CHECK_MSG(tsr_tokenizer_load("fixtures/stories260K-hf", &tok) == TSR_OK, "%s", tsr_last_error());
    json_error_t err;
    json_t *ref = json_load_file("fixtures/stories260K-reference/reference_outputs.json", 0, &err);
    CHECK(ref != NULL);
    if (!tok || !ref) {
        tsr_tokenizer_destroy(tok);
        json_decref(ref);
        return;
    }
    CHECK(tsr_tokenizer_bos(tok) == 1);
    CHECK(tsr_tokenizer_eos(tok) == 2);
    CHECK(tsr_tokenizer_vocab_size(tok) == 512);
    json_t *cases = json_object_get(ref, "cases");
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *cs = json_array_get(cases, c);
        const char *prompt = json_string_value(json_object_get(cs, "prompt"));
        json_t *want = json_object_get(cs, "prompt_ids_with_bos");
        size_t n = 0;
        int32_t *ids = encode(tok, prompt, TSR_TOKENIZE_ADD_SPECIAL, &n);
        bool same = ids && n == json_array_size(want);
        for (size_t i = 0; same && i < n; i++)
            same = ids[i] == json_integer_value(json_array_get(want, i));
        CHECK_MSG(same, "stories260K prompt \"%s\": ids differ (%zu ids)", prompt, n);
        free(ids);
        /* greedy_text is the decoded prompt + continuation (BOS skipped) */
        json_t *all = json_object_get(cs, "all_ids");
        size_t na = json_array_size(all);
        int32_t *a = malloc(na * sizeof *a);
        for (size_t i = 0; a && i < na; i++)
            a[i] = (int32_t)json_integer_value(json_array_get(all, i));
        char *text = a ? decode(tok, a, na, TSR_DETOKENIZE_SKIP_SPECIAL) : NULL;
        const char *gt = json_string_value(json_object_get(cs, "greedy_text"));
        CHECK_MSG(text && gt && !strcmp(text, gt), "stories260K greedy text of \"%s\":\n%s\n"
                  "want:\n%s", prompt, text ? text : "(null)", gt ? gt : "");
        free(text);
        /* and without skipping, the BOS shows up as "<s>" */
        text = a ? decode(tok, a, 1, 0) : NULL;
        CHECK(text && !strcmp(text, "<s>"));
        free(text);
        free(a);
    }
    json_decref(ref);
    tsr_tokenizer_destroy(tok);
}

/* A copy of SmolLM's tokenizer.json with the keys of one variant of
 * tests/data/tokenizer/smollm_variants.json replaced, in a temporary folder. */
static tsr_tokenizer *load_variant(const char *variant, char *dir)
{
    tsr_tokenizer *tok = NULL;
    if (!strcmp(variant, "base")) {
        CHECK_MSG(tsr_tokenizer_load("fixtures/smollm-135m-tokenizer-hf", &tok) == TSR_OK, "%s",
                  tsr_last_error());
        return tok;
    }
    json_error_t err;
    json_t *base = json_load_file("fixtures/smollm-135m-tokenizer-hf/tokenizer.json", 0, &err);
    json_t *vars = json_load_file("tests/data/tokenizer/smollm_variants.json", 0, &err);
    json_t *v = json_object_get(vars, variant);
    CHECK_MSG(base && v, "variant %s", variant);
    if (base && v) {
        json_object_update(base, v);
        char path[300];
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        CHECK(json_dump_file(base, path, 0) == 0);
        CHECK_MSG(tsr_tokenizer_load(dir, &tok) == TSR_OK, "%s", tsr_last_error());
        unlink(path);
    }
    json_decref(base), json_decref(vars);
    return tok;
}

/* tests/data/tokenizer/smollm_expected.txt: "<variant>\t<escaped text>\t<ids>"
 * lines, ids with special tokens as `tokenizers` adds them (SmolLM: none). */
static void test_smollm(void)
{
    tsr_tokenizer *tok = NULL;
    CHECK_MSG(tsr_tokenizer_load("fixtures/smollm-135m-tokenizer-hf", &tok) == TSR_OK, "%s",
              tsr_last_error());
    if (!tok)
        return;
    CHECK(tsr_tokenizer_bos(tok) == 0 && tsr_tokenizer_eos(tok) == 0);
    CHECK(tsr_tokenizer_vocab_size(tok) == 49153); /* 49152 + [PAD] */
    char dir[] = "/tmp/tsr-tok-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char *data = slurp("tests/data/tokenizer/smollm_expected.txt", NULL);
    CHECK(data != NULL);
    size_t cases = 0, ok = 0;
    char cur[32] = "";
    tsr_tokenizer *vt = NULL;
    for (char *line = data; data && line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        char *tab = strchr(line, '\t'), *tab2 = tab ? strchr(tab + 1, '\t') : NULL;
        if (line[0] != '#' && tab2) {
            *tab = 0, *tab2 = 0;
            if (strcmp(cur, line)) {
                tsr_tokenizer_destroy(vt);
                snprintf(cur, sizeof cur, "%s", line);
                vt = load_variant(cur, dir);
            }
            /* unescape \n \t \r \\ */
            char *text = malloc(strlen(tab + 1) + 1), *w = text;
            for (char *r = tab + 1; *r; r++) {
                if (*r == '\\' && r[1]) {
                    r++;
                    *w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : *r == 'r' ? '\r' : *r;
                } else {
                    *w++ = *r;
                }
            }
            *w = 0;
            int32_t want[2048];
            size_t nw = parse_ids(tab2 + 1, want, 2048), ng = 0;
            int32_t *got = vt ? encode(vt, text, TSR_TOKENIZE_ADD_SPECIAL, &ng) : NULL;
            bool same = got && ng == nw && !memcmp(got, want, nw * sizeof *got);
            CHECK_MSG(same, "smollm/%s \"%s\": got %zu ids, want %zu", cur, text, ng, nw);
            if (!same && got) {
                fprintf(stderr, "  got:");
                for (size_t k = 0; k < ng; k++)
                    fprintf(stderr, " %d", got[k]);
                fprintf(stderr, "\n  want: %s\n", tab2 + 1);
            }
            ok += same, cases++;
            free(got), free(text);
        }
        line = nl ? nl + 1 : NULL;
    }
    tsr_tokenizer_destroy(vt);
    rmdir(dir);
    printf("smollm: %zu/%zu expected id lists identical\n", ok, cases);
    CHECK(cases >= 200);
    free(data);

    /* decode(encode(x)) == x on every llama.cpp input string */
    static const char *const vecs[] = {"ggml-vocab-gpt-2.gguf.inp", "ggml-vocab-llama-spm.gguf.inp",
                                       "ggml-vocab-bert-bge.gguf.inp"};
    size_t rt = 0, total = 0;
    for (size_t v = 0; v < 3; v++) {
        char path[256];
        snprintf(path, sizeof path, "fixtures/llamacpp-vocab/%s", vecs[v]);
        char *inp = slurp(path, NULL), *strs[256];
        size_t n = inp ? split_inputs(inp, strs, 256) : 0;
        for (size_t i = 0; i < n; i++) {
            size_t ng = 0;
            int32_t *got = encode(tok, strs[i], 0, &ng);
            char *back = got ? decode(tok, got, ng, 0) : NULL;
            bool same = back && !strcmp(back, strs[i]);
            CHECK_MSG(same, "smollm round trip of \"%s\" gives \"%s\"", strs[i], back ? back : "");
            rt += same, total++;
            free(got), free(back);
        }
        free(inp);
    }
    printf("smollm: %zu/%zu round trips\n", rt, total);
    tsr_tokenizer_destroy(tok);
}

/* Unescape \n \t \r \\ in place. */
static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '\\' && r[1]) {
            r++;
            *w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : *r == 'r' ? '\r' : *r;
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
}

/* tests/data/tokenizer/decode_expected.txt: "<folder>\t<skip>\t<ids>\t<text>". */
static void test_decode_expected(void)
{
    char *data = slurp("tests/data/tokenizer/decode_expected.txt", NULL);
    CHECK(data != NULL);
    size_t cases = 0;
    for (char *line = data; data && line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        char *f[4] = {line, NULL, NULL, NULL};
        for (int k = 1; k < 4 && f[k - 1]; k++)
            if ((f[k] = strchr(f[k - 1], '\t')))
                *f[k]++ = 0;
        if (line[0] != '#' && f[3]) {
            tsr_tokenizer *tok = NULL;
            CHECK_MSG(tsr_tokenizer_load(f[0], &tok) == TSR_OK, "%s", tsr_last_error());
            int32_t ids[256];
            size_t n = parse_ids(f[2], ids, 256);
            unescape(f[3]);
            char *got = tok ? decode(tok, ids, n, f[1][0] == '1' ? TSR_DETOKENIZE_SKIP_SPECIAL : 0)
                            : NULL;
            CHECK_MSG(got && !strcmp(got, f[3]), "%s decode(%s, skip=%s) = \"%s\", want \"%s\"",
                      f[0], f[2], f[1], got ? got : "(error)", f[3]);
            cases++;
            free(got);
            tsr_tokenizer_destroy(tok);
        }
        line = nl ? nl + 1 : NULL;
    }
    CHECK(cases >= 14);
    free(data);
}

static void test_speed(void)
{
    tsr_tokenizer *tok = NULL;
    CHECK(tsr_tokenizer_load("fixtures/gpt2-tokenizer-hf", &tok) == TSR_OK);
    if (!tok)
        return;
    char *inp = slurp("fixtures/llamacpp-vocab/ggml-vocab-gpt-2.gguf.inp", NULL);
    char *text = malloc(10 * 1024 + 1);
    size_t il = inp ? strlen(inp) : 0, n = 0;
    for (size_t i = 0; inp && i < 10 * 1024; i++)
        text[i] = inp[i % il];
    text[inp ? 10 * 1024 : 0] = 0;
    /* do not cut a UTF-8 sequence at the end */
    size_t end = strlen(text);
    while (end && ((unsigned char)text[end - 1] & 0x80))
        end--;
    text[end] = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int32_t *ids = encode(tok, text, 0, &n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("gpt2: %zu bytes -> %zu ids in %.3f s\n", end, n, s);
    CHECK(ids && n > 1000);
    CHECK_MSG(s < 0.5, "encoding 10 KB took %.3f s", s);
    char *back = ids ? decode(tok, ids, n, 0) : NULL;
    CHECK(back && !strcmp(back, text));
    free(back), free(ids), free(text), free(inp);
    tsr_tokenizer_destroy(tok);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_bad_input(void)
{
    char dir[] = "/tmp/tsr-tok-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    tsr_tokenizer *tok = NULL;
    /* a syntax error on line 3, column 12 */
    write_file(dir, "tokenizer.json", "{\n  \"version\": \"1.0\",\n  \"model\": {,}\n}\n");
    CHECK(tsr_tokenizer_load(dir, &tok) == TSR_ERR_FORMAT && tok == NULL);
    CHECK_CONTAINS(tsr_last_error(), "tokenizer.json:3:");
    write_file(dir, "tokenizer.json",
               "{\"model\": {\"type\": \"Wordsmith\", \"vocab\": {}}, \"added_tokens\": []}\n");
    CHECK(tsr_tokenizer_load(dir, &tok) != TSR_OK && tok == NULL);
    CHECK_CONTAINS(tsr_last_error(), "unknown model type \"Wordsmith\"");
    CHECK_CONTAINS(tsr_last_error(), "tokenizer.json");
    write_file(dir, "tokenizer.json",
               "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
               " \"pre_tokenizer\": {\"type\": \"Sideways\"}}\n");
    CHECK(tsr_tokenizer_load(dir, &tok) == TSR_ERR_UNSUPPORTED);
    CHECK_CONTAINS(tsr_last_error(), "Sideways");
    write_file(dir, "tokenizer.json",
               "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}\n");
    CHECK(tsr_tokenizer_load(dir, &tok) == TSR_ERR_FORMAT);
    CHECK_CONTAINS(tsr_last_error(), "\"b\" is not in the vocabulary");
    unlink(strcat(strcpy((char[64]){0}, dir), "/tokenizer.json"));
    CHECK(tsr_tokenizer_load(dir, &tok) == TSR_ERR_NOT_FOUND);
    rmdir(dir);
    /* invalid UTF-8 and out-of-range ids */
    CHECK(tsr_tokenizer_load("fixtures/stories260K-hf", &tok) == TSR_OK);
    if (tok) {
        size_t n;
        int32_t ids[8], bad = 512;
        char buf[8];
        CHECK(tsr_tokenize(tok, "a\xff", 2, 0, ids, 8, &n) == TSR_ERR_INVALID_ARG);
        CHECK(tsr_detokenize(tok, &bad, 1, 0, buf, 8, &n) == TSR_ERR_INVALID_ARG);
        CHECK_CONTAINS(tsr_last_error(), "512");
        tsr_tokenizer_destroy(tok);
    }
}

int main(void)
{
    check_vectors("fixtures/gpt2-tokenizer-hf", "ggml-vocab-gpt-2.gguf", true);
    check_vectors("fixtures/llama2-tokenizer-spm", "ggml-vocab-llama-spm.gguf", true);
    test_stories260k();
    test_smollm();
    test_decode_expected();
    test_speed();
    test_bad_input();
    return tsr_test_report("test_tokenizer");
}
