/* tests/unit/test_gguf.c - the GGUF reader.
 *
 * References: what gguf-py's GGUFReader reads from the fixtures
 * (tests/data/gguf/expected_*.txt, made by tests/data/gguf/make_vectors.py),
 * the same weights as safetensors (fixtures/stories260K-hf), and hand-built
 * files following gguf.md, valid and corrupted field by field. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtok_r, mkdtemp */
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tsr_test.h"
#include "internal.h"
#include "gguf.h"
#include "ggml_blocks.h"

#define FIX "fixtures/stories260K-gguf/"

/* ------------------------------------------------------------ helpers */

static int hexval(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

/* Does (p, len) equal the hex text ("-" for empty)? */
static int hex_eq(const char *hex, const void *p, size_t len)
{
    if (strcmp(hex, "-") == 0)
        return len == 0;
    if (strlen(hex) != 2 * len)
        return 0;
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        if (b[i] != (hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1])))
            return 0;
    return 1;
}

/* A value equals its text in expected_*.txt. */
static int value_eq(const tsr__gguf_value *v, const char *text)
{
    switch (v->type) {
    case TSR_GGUF_STRING: return hex_eq(text, v->data, (size_t)v->len);
    case TSR_GGUF_FLOAT32: case TSR_GGUF_FLOAT64: {
        double d;
        return tsr__gguf_value_float(v, &d) == TSR_OK && d == strtod(text, NULL);
    }
    case TSR_GGUF_BOOL: {
        bool b;
        return tsr__gguf_value_bool(v, &b) == TSR_OK && b == (text[0] == '1');
    }
    case TSR_GGUF_UINT64: {
        uint64_t u;
        return tsr__gguf_value_uint(v, &u) == TSR_OK && u == strtoull(text, NULL, 10);
    }
    default: {
        int64_t i;
        return tsr__gguf_value_int(v, &i) == TSR_OK && i == strtoll(text, NULL, 10);
    }
    }
}

static float *dequant(const tsr__gguf_tensor *t)
{
    float *f = malloc((size_t)t->n_elements * sizeof *f);
    if (tsr__ggml_dequantize(t->ggml_type, t->data, f, t->n_elements) != TSR_OK) {
        fprintf(stderr, "%s\n", tsr_last_error());
        free(f);
        return NULL;
    }
    return f;
}

/* ------------------------------------------------------------ fixtures vs gguf-py */

static void check_expected(const char *stem)
{
    char path[256], exp[256];
    snprintf(path, sizeof path, FIX "%s.gguf", stem);
    snprintf(exp, sizeof exp, "tests/data/gguf/expected_%s.txt", stem);
    tsr__gguf *g = NULL;
    CHECK_MSG(tsr__gguf_open(path, &g) == TSR_OK, "%s", tsr_last_error());
    char *text = NULL;
    CHECK(tsr__read_file(exp, &text, NULL) == TSR_OK);
    if (!g || !text) {
        tsr__gguf_close(g);
        free(text);
        return;
    }
    size_t n_tensor_lines = 0, n_kv_lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tok[16], *s2 = NULL;
        int nt = 0;
        for (char *w = strtok_r(line, " ", &s2); w && nt < 16; w = strtok_r(NULL, " ", &s2))
            tok[nt++] = w;
        if (nt == 0 || tok[0][0] == '#')
            continue;
        if (strcmp(tok[0], "data_offset") == 0) {
            CHECK(tsr__gguf_data_offset(g) == strtoull(tok[1], NULL, 10));
        } else if (strcmp(tok[0], "alignment") == 0) {
            CHECK(tsr__gguf_alignment(g) == strtoull(tok[1], NULL, 10));
        } else if (strcmp(tok[0], "header") == 0) {
            uint64_t v = strtoull(tok[2], NULL, 10);
            if (strcmp(tok[1], "version") == 0) CHECK(tsr__gguf_version(g) == v);
            if (strcmp(tok[1], "tensor_count") == 0) CHECK(tsr__gguf_tensor_count(g) == v);
            if (strcmp(tok[1], "kv_count") == 0) CHECK(tsr__gguf_kv_count(g) == v);
        } else if (strcmp(tok[0], "kv") == 0) {
            const tsr__gguf_value *v = tsr__gguf_find(g, tok[1]);
            CHECK_MSG(v && strcmp(tsr__gguf_type_name(v->type), tok[2]) == 0, "%s: key %s", stem, tok[1]);
            if (v)
                CHECK_MSG(value_eq(v, tok[3]), "%s: key %s != %s", stem, tok[1], tok[3]);
            CHECK(strcmp(tsr__gguf_kv_key(g, n_kv_lines), tok[1]) == 0); /* file order */
            n_kv_lines++;
        } else if (strcmp(tok[0], "arr") == 0) {
            const tsr__gguf_value *a = NULL;
            CHECK_MSG(tsr__gguf_get_arr(g, tok[1], &a) == TSR_OK, "%s", tsr_last_error());
            if (!a)
                continue;
            CHECK(strcmp(tsr__gguf_type_name(a->elem_type), tok[2]) == 0);
            CHECK(a->len == strtoull(tok[3], NULL, 10));
            for (int k = 4; k < nt; k++) {
                char *colon = strchr(tok[k], ':');
                uint64_t idx = strtoull(tok[k], NULL, 10);
                tsr__gguf_value e;
                CHECK(tsr__gguf_arr_at(a, idx, &e) == TSR_OK);
                CHECK_MSG(value_eq(&e, colon + 1), "%s: %s[%llu] != %s", stem, tok[1],
                          (unsigned long long)idx, colon + 1);
            }
            n_kv_lines++;
        } else if (strcmp(tok[0], "tensor") == 0) {
            const tsr__gguf_tensor *t = tsr__gguf_find_tensor(g, tok[1]);
            CHECK_MSG(t != NULL, "%s: tensor %s", stem, tok[1]);
            if (!t)
                continue;
            CHECK(t == tsr__gguf_tensor_at(g, n_tensor_lines)); /* file order */
            n_tensor_lines++;
            const tsr__ggml_type_info *ti = tsr__ggml_type(t->ggml_type);
            CHECK_MSG(ti && strcmp(ti->name, tok[2]) == 0, "%s: %s type", stem, tok[1]);
            int nd = atoi(tok[3]);
            CHECK(t->n_dims == nd);
            for (int d = 0; d < nd; d++)
                CHECK(t->ne[d] == strtoll(tok[4 + d], NULL, 10));
            CHECK(t->offset == strtoull(tok[4 + nd], NULL, 10));
            CHECK(t->nbytes == strtoull(tok[5 + nd], NULL, 10));
            float *f = dequant(t);
            CHECK(f != NULL);
            if (f) {
                double sum = 0, mag = 0;
                for (int64_t i = 0; i < t->n_elements; i++) {
                    sum += f[i];
                    mag += fabs(f[i]);
                }
                double ref = strtod(tok[6 + nd], NULL);
                /* numpy sums pairwise, we sum in order: float64 rounding only */
                CHECK_MSG(fabs(sum - ref) <= 1e-12 * mag + 1e-12, "%s: %s sum %.17g vs %.17g", stem,
                          tok[1], sum, ref);
                CHECK(f[0] == strtof(tok[7 + nd], NULL));
                free(f);
            }
        }
    }
    CHECK(n_tensor_lines == tsr__gguf_tensor_count(g));
    CHECK(n_kv_lines == tsr__gguf_kv_count(g));
    free(text);
    tsr__gguf_close(g);
}

static void check_named_metadata(void)
{
    tsr__gguf *g = NULL;
    CHECK(tsr__gguf_open(FIX "stories260K-f32.gguf", &g) == TSR_OK);
    if (!g)
        return;
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    const char *s;
    size_t len;
    CHECK(tsr__gguf_str_eq(g, "general.architecture", "llama"));
    CHECK(tsr__gguf_get_int(g, "llama.embedding_length", &i) == TSR_OK && i == 64);
    CHECK(tsr__gguf_get_uint(g, "llama.block_count", &u) == TSR_OK && u == 5);
    CHECK(tsr__gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &f) == TSR_OK &&
          f == (double)1e-5f);
    const tsr__gguf_value *toks = NULL;
    CHECK(tsr__gguf_get_arr(g, "tokenizer.ggml.tokens", &toks) == TSR_OK && toks->len == 512);
    CHECK(tsr__gguf_arr_str(toks, 1, &s, &len) == TSR_OK && len == 3 && memcmp(s, "<s>", 3) == 0);
    CHECK(tsr__gguf_arr_str(toks, 512, &s, &len) == TSR_ERR_INVALID_ARG);
    /* errors name the file and the key */
    CHECK(tsr__gguf_get_int(g, "no.such.key", &i) == TSR_ERR_NOT_FOUND);
    CHECK_CONTAINS(tsr_last_error(), "no.such.key");
    CHECK_CONTAINS(tsr_last_error(), "stories260K-f32.gguf");
    CHECK(tsr__gguf_get_int(g, "general.architecture", &i) == TSR_ERR_FORMAT);
    CHECK_CONTAINS(tsr_last_error(), "'general.architecture' is STRING, not an integer");
    CHECK(tsr__gguf_get_str(g, "llama.block_count", &s, &len) == TSR_ERR_FORMAT);
    CHECK(tsr__gguf_find_tensor(g, "nope") == NULL);
    const tsr__gguf_tensor *t = tsr__gguf_find_tensor(g, "blk.4.ffn_down.weight");
    CHECK(t && t->ggml_type == TSR_GGML_F32 && t->n_dims == 2 && t->ne[0] == 172 && t->ne[1] == 64 &&
          t->nbytes == 172 * 64 * 4 && ((uintptr_t)t->data % 32) == 0);
    tsr__gguf_close(g);
}

/* ------------------------------------------------------------ vs safetensors */

typedef struct st_file { char *buf; size_t len, hdr; tsr_json *root; } st_file;

static int st_open(st_file *s, const char *path)
{
    memset(s, 0, sizeof *s);
    if (tsr__read_file(path, &s->buf, &s->len) != TSR_OK || s->len < 8)
        return 0;
    uint64_t n;
    memcpy(&n, s->buf, 8);
    s->hdr = 8 + (size_t)n;
    return tsr__json_load_buffer(path, s->buf + 8, (size_t)n, &s->root) == TSR_OK;
}

/* F32 data and element count of a safetensors tensor. */
static const float *st_get(st_file *s, const char *name, int64_t *n)
{
    const tsr_json *t = tsr__json_get(s->root, name);
    if (!t || strcmp(tsr__json_string(tsr__json_get(t, "dtype"), ""), "F32") != 0)
        return NULL;
    const tsr_json *off = tsr__json_get(t, "data_offsets");
    int64_t a = tsr__json_int(tsr__json_at(off, 0), 0), b = tsr__json_int(tsr__json_at(off, 1), 0);
    *n = (b - a) / 4;
    return (const float *)(s->buf + s->hdr + a);
}

/* llama.cpp's GGUF names for the HF names; q/k are permuted (see below). */
static void gguf_to_hf(const char *g, char *hf, size_t n, int *is_qk)
{
    static const struct { const char *g, *h; } m[] = {
        {"attn_norm", "input_layernorm"}, {"ffn_norm", "post_attention_layernorm"},
        {"ffn_gate", "mlp.gate_proj"}, {"ffn_up", "mlp.up_proj"}, {"ffn_down", "mlp.down_proj"},
        {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"},
        {"attn_v", "self_attn.v_proj"}, {"attn_output", "self_attn.o_proj"},
    };
    *is_qk = 0;
    int layer;
    char part[64];
    if (strcmp(g, "token_embd.weight") == 0) snprintf(hf, n, "model.embed_tokens.weight");
    else if (strcmp(g, "output_norm.weight") == 0) snprintf(hf, n, "model.norm.weight");
    else if (strcmp(g, "output.weight") == 0) snprintf(hf, n, "lm_head.weight");
    else if (sscanf(g, "blk.%d.%63[^.]", &layer, part) == 2) {
        hf[0] = 0;
        for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
            if (strcmp(part, m[i].g) == 0) {
                snprintf(hf, n, "model.layers.%d.%s.weight", layer, m[i].h);
                *is_qk = strcmp(part, "attn_q") == 0 || strcmp(part, "attn_k") == 0;
            }
    } else
        hf[0] = 0;
}

static void check_vs_safetensors(const char *stem, int f16)
{
    st_file s;
    int ok = st_open(&s, "fixtures/stories260K-hf/model.safetensors");
    CHECK_MSG(ok, "safetensors: %s", tsr_last_error());
    tsr__gguf *g = NULL;
    char path[256];
    snprintf(path, sizeof path, FIX "%s.gguf", stem);
    CHECK(tsr__gguf_open(path, &g) == TSR_OK);
    int compared = 0, qk = 0;
    for (size_t ti = 0; ok && g && ti < tsr__gguf_tensor_count(g); ti++) {
        const tsr__gguf_tensor *t = tsr__gguf_tensor_at(g, ti);
        char hf[128];
        int is_qk;
        gguf_to_hf(t->name, hf, sizeof hf, &is_qk);
        int64_t n = 0;
        const float *ref = hf[0] ? st_get(&s, hf, &n) : NULL;
        if (!ref && strcmp(t->name, "output.weight") == 0) /* tied embeddings */
            ref = st_get(&s, "model.embed_tokens.weight", &n);
        CHECK_MSG(ref != NULL, "%s: no HF tensor for %s", stem, t->name);
        if (!ref)
            continue;
        CHECK(n == t->n_elements);
        float *f = dequant(t);
        if (!f || n != t->n_elements) {
            free(f);
            continue;
        }
        /* GGUF keeps llama2.c's interleaved RoPE rows for q/k; HF's
         * convert_llama_weights_to_hf permutes them: HF row h*hd + i*hd/2 + j
         * is GGUF row h*hd + 2*j + i (hd = head_dim = 8). */
        int64_t cols = t->ne[0], rows = t->ne[1], hd = 8, bad = 0;
        for (int64_t r = 0; r < rows; r++) {
            int64_t hr = r;
            if (is_qk) {
                int64_t h = r / hd, k = r % hd;
                hr = h * hd + (k % 2) * (hd / 2) + k / 2;
            }
            for (int64_t c = 0; c < cols; c++) {
                float want = ref[hr * cols + c];
                if (f16 && t->ggml_type == TSR_GGML_F16)
                    want = tsr__f16_to_f32(tsr__f32_to_f16(want));
                bad += f[r * cols + c] != want;
            }
        }
        CHECK_MSG(bad == 0, "%s: %s vs %s: %lld values differ", stem, t->name, hf, (long long)bad);
        compared++;
        qk += is_qk;
        free(f);
    }
    CHECK(compared == 48 && qk == 10);
    tsr__gguf_close(g);
    tsr__json_free(s.root);
    free(s.buf);
}

/* The mixed Q5_0/Q8_0/F16/F32 file dequantizes to the F32 file's values
 * within each format's rounding error. */
static void check_quantized_error(void)
{
    tsr__gguf *q = NULL, *f = NULL;
    CHECK(tsr__gguf_open(FIX "stories260K-q4_k_m.gguf", &q) == TSR_OK);
    CHECK(tsr__gguf_open(FIX "stories260K-f32.gguf", &f) == TSR_OK);
    int seen[64] = {0};
    for (size_t i = 0; q && f && i < tsr__gguf_tensor_count(q); i++) {
        const tsr__gguf_tensor *tq = tsr__gguf_tensor_at(q, i), *tf = tsr__gguf_find_tensor(f, tq->name);
        CHECK(tf && tf->n_elements == tq->n_elements && tf->ggml_type == TSR_GGML_F32);
        float *a = dequant(tq);
        if (!tf || !a) {
            free(a);
            continue;
        }
        const float *x = tf->data;
        seen[tq->ggml_type & 63]++;
        int64_t bad = 0;
        for (int64_t b0 = 0; b0 < tq->n_elements; b0 += 32) {
            float amax = 0;
            for (int k = 0; k < 32; k++)
                amax = fmaxf(amax, fabsf(x[b0 + k]));
            for (int k = 0; k < 32; k++) {
                float e = fabsf(a[b0 + k] - x[b0 + k]), lim;
                switch (tq->ggml_type) {
                /* q in [-16, 15] with d = max/-16: the far end is one step off */
                case TSR_GGML_Q5_0: lim = amax / 16 * 1.01f; break;
                /* d/2 from rounding, plus 127 * (fp16 rounding of d) */
                case TSR_GGML_Q8_0: lim = amax / 127 * 0.57f; break;
                case TSR_GGML_F16: lim = fabsf(x[b0 + k]) * 0x1p-11f + 0x1p-25f; break;
                default: lim = 0;
                }
                bad += e > lim;
            }
        }
        CHECK_MSG(bad == 0, "%s (%s): %lld values beyond the format's error", tq->name,
                  tsr__ggml_type(tq->ggml_type)->name, (long long)bad);
        free(a);
    }
    CHECK(seen[TSR_GGML_Q5_0] == 29 && seen[TSR_GGML_Q8_0] == 3 && seen[TSR_GGML_F16] == 5 &&
          seen[TSR_GGML_F32] == 11);
    tsr__gguf_close(q);
    tsr__gguf_close(f);
}

static void check_vocab_files(void)
{
    char *text = NULL, *save = NULL;
    CHECK(tsr__read_file("tests/data/gguf/expected_vocab.txt", &text, NULL) == TSR_OK);
    int files = 0;
    for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char fn[128], last[128], model[64];
        unsigned ver, nkv, nt;
        unsigned long long ntok;
        long long nmerges;
        if (sscanf(line, "%127s %u %u %u %llu %127s %lld %63s", fn, &ver, &nkv, &nt, &ntok, last,
                   &nmerges, model) != 8)
            continue;
        char path[256];
        snprintf(path, sizeof path, "fixtures/llamacpp-vocab/%s", fn);
        tsr__gguf *g = NULL;
        CHECK_MSG(tsr__gguf_open(path, &g) == TSR_OK, "%s", tsr_last_error());
        if (!g)
            continue;
        files++;
        CHECK(tsr__gguf_version(g) == ver && tsr__gguf_kv_count(g) == nkv && tsr__gguf_tensor_count(g) == nt);
        const tsr__gguf_value *toks = NULL, *merges = tsr__gguf_find(g, "tokenizer.ggml.merges");
        const char *s;
        size_t len;
        CHECK(tsr__gguf_get_arr(g, "tokenizer.ggml.tokens", &toks) == TSR_OK && toks->len == ntok);
        CHECK(toks && tsr__gguf_arr_str(toks, ntok - 1, &s, &len) == TSR_OK && hex_eq(last, s, len));
        CHECK(nmerges < 0 ? merges == NULL : (merges && merges->len == (uint64_t)nmerges));
        CHECK(tsr__gguf_get_str(g, "tokenizer.ggml.model", &s, &len) == TSR_OK && hex_eq(model, s, len));
        tsr__gguf_close(g);
    }
    CHECK(files == 12);
    free(text);
}

/* ------------------------------------------------------------ hand-built files */

typedef struct buf { uint8_t d[4096]; size_t n; } buf;
static void put(buf *b, const void *p, size_t n) { memcpy(b->d + b->n, p, n); b->n += n; }
static void u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void str(buf *b, const char *s) { u64(b, strlen(s)); put(b, s, strlen(s)); }
static size_t key(buf *b, const char *k, uint32_t type) { str(b, k); u32(b, type); return b->n - 4; }

/* Positions of fields in the built file, for the corruptions. */
static struct {
    size_t kv_i8, type_u8, bool_val, arr_i32_et, str_len, align_val, align_type;
    size_t t_a_ne0, t_b_name, t_b_ndims, t_b_ne0, t_b_type, t_b_off, data;
} P;

static void build(buf *b)
{
    memset(b, 0, sizeof *b);
    put(b, "GGUF", 4);
    u32(b, 3);
    u64(b, 2);  /* tensors */
    u64(b, 16); /* kvs */
    key(b, "general.architecture", TSR_GGUF_STRING); str(b, "llama");
    P.type_u8 = key(b, "t.u8", TSR_GGUF_UINT8); put(b, "\xc8", 1);
    P.kv_i8 = b->n; key(b, "t.i8", TSR_GGUF_INT8); put(b, "\xfb", 1);
    key(b, "t.u16", TSR_GGUF_UINT16); put(b, &(uint16_t){60000}, 2);
    key(b, "t.i16", TSR_GGUF_INT16); put(b, &(int16_t){-3000}, 2);
    key(b, "t.u32", TSR_GGUF_UINT32); u32(b, 4000000000u);
    key(b, "t.i32", TSR_GGUF_INT32); u32(b, (uint32_t)-2000000000);
    key(b, "t.f32", TSR_GGUF_FLOAT32); put(b, &(float){1.5f}, 4);
    key(b, "t.bool", TSR_GGUF_BOOL); P.bool_val = b->n; put(b, "\x01", 1);
    key(b, "t.u64", TSR_GGUF_UINT64); u64(b, (1ull << 63) + 5);
    key(b, "t.i64", TSR_GGUF_INT64); u64(b, (uint64_t)-(1ll << 40));
    key(b, "t.f64", TSR_GGUF_FLOAT64); put(b, &(double){0.1}, 8);
    key(b, "t.arr.str", TSR_GGUF_ARRAY); u32(b, TSR_GGUF_STRING); u64(b, 3);
    str(b, "a"); P.str_len = b->n; str(b, ""); str(b, "h\xc3\xa9llo");
    key(b, "t.arr.i32", TSR_GGUF_ARRAY); P.arr_i32_et = b->n; u32(b, TSR_GGUF_INT32); u64(b, 3);
    u32(b, 1); u32(b, (uint32_t)-2); u32(b, 3);
    key(b, "t.arr.nested", TSR_GGUF_ARRAY); u32(b, TSR_GGUF_ARRAY); u64(b, 3);
    u32(b, TSR_GGUF_UINT8); u64(b, 2); put(b, "\x01\x02", 2);
    u32(b, TSR_GGUF_STRING); u64(b, 2); str(b, "x"); str(b, "yz");
    u32(b, TSR_GGUF_BOOL); u64(b, 0);
    P.align_type = key(b, "general.alignment", TSR_GGUF_UINT32); P.align_val = b->n; u32(b, 64);
    /* tensor infos */
    str(b, "a"); u32(b, 2); P.t_a_ne0 = b->n; u64(b, 4); u64(b, 2); u32(b, TSR_GGML_F32); u64(b, 0);
    P.t_b_name = b->n; str(b, "b"); P.t_b_ndims = b->n; u32(b, 1); P.t_b_ne0 = b->n; u64(b, 32);
    P.t_b_type = b->n; u32(b, TSR_GGML_Q8_0); P.t_b_off = b->n; u64(b, 64);
    while (b->n % 64) b->n++;
    P.data = b->n;
    for (int i = 0; i < 8; i++) put(b, &(float){(float)i - 2.5f}, 4);
    b->n = P.data + 64;
    put(b, &(uint16_t){0x3c00}, 2); /* d = 1.0 */
    for (int i = 0; i < 32; i++) put(b, &(int8_t){(int8_t)(i - 16)}, 1);
}

static char tmpdir[64];

static tsr_status open_buf(const buf *b, size_t n, tsr__gguf **g, char *path)
{
    snprintf(path, 128, "%s/t.gguf", tmpdir);
    FILE *f = fopen(path, "wb");
    fwrite(b->d, 1, n, f);
    fclose(f);
    return tsr__gguf_open(path, g);
}

static void check_built(void)
{
    buf b;
    build(&b);
    tsr__gguf *g = NULL;
    char path[128];
    CHECK_MSG(open_buf(&b, b.n, &g, path) == TSR_OK, "%s", tsr_last_error());
    if (!g)
        return;
    int64_t i;
    uint64_t u;
    double f;
    bool bo;
    const char *s;
    size_t len;
    CHECK(tsr__gguf_alignment(g) == 64 && tsr__gguf_data_offset(g) == P.data && tsr__gguf_kv_count(g) == 16);
    CHECK(tsr__gguf_get_uint(g, "t.u8", &u) == TSR_OK && u == 200);
    CHECK(tsr__gguf_get_int(g, "t.i8", &i) == TSR_OK && i == -5);
    CHECK(tsr__gguf_get_uint(g, "t.i8", &u) == TSR_ERR_FORMAT);
    CHECK_CONTAINS(tsr_last_error(), "'t.i8' = -5 is negative");
    CHECK(tsr__gguf_get_int(g, "t.u16", &i) == TSR_OK && i == 60000);
    CHECK(tsr__gguf_get_int(g, "t.i16", &i) == TSR_OK && i == -3000);
    CHECK(tsr__gguf_get_int(g, "t.u32", &i) == TSR_OK && i == 4000000000ll);
    CHECK(tsr__gguf_get_int(g, "t.i32", &i) == TSR_OK && i == -2000000000ll);
    CHECK(tsr__gguf_get_float(g, "t.f32", &f) == TSR_OK && f == 1.5);
    CHECK(tsr__gguf_get_bool(g, "t.bool", &bo) == TSR_OK && bo);
    CHECK(tsr__gguf_get_uint(g, "t.u64", &u) == TSR_OK && u == (1ull << 63) + 5);
    CHECK(tsr__gguf_get_int(g, "t.u64", &i) == TSR_ERR_FORMAT);
    CHECK(tsr__gguf_get_int(g, "t.i64", &i) == TSR_OK && i == -(1ll << 40));
    CHECK(tsr__gguf_get_float(g, "t.f64", &f) == TSR_OK && f == 0.1);
    CHECK(tsr__gguf_get_float(g, "t.i32", &f) == TSR_OK && f == -2e9);
    CHECK(tsr__gguf_get_bool(g, "t.u8", &bo) == TSR_ERR_FORMAT);
    const tsr__gguf_value *a = NULL, *n = NULL;
    tsr__gguf_value e, e2;
    CHECK(tsr__gguf_get_arr(g, "t.arr.str", &a) == TSR_OK && a->len == 3 && a->elem_type == TSR_GGUF_STRING);
    CHECK(tsr__gguf_arr_str(a, 0, &s, &len) == TSR_OK && len == 1 && s[0] == 'a');
    CHECK(tsr__gguf_arr_str(a, 1, &s, &len) == TSR_OK && len == 0);
    CHECK(tsr__gguf_arr_str(a, 2, &s, &len) == TSR_OK && len == 6 && memcmp(s, "h\xc3\xa9llo", 6) == 0);
    CHECK(tsr__gguf_get_arr(g, "t.arr.i32", &a) == TSR_OK && a->len == 3);
    CHECK(tsr__gguf_arr_at(a, 1, &e) == TSR_OK && tsr__gguf_value_int(&e, &i) == TSR_OK && i == -2);
    CHECK(tsr__gguf_arr_str(a, 1, &s, &len) == TSR_ERR_FORMAT);
    CHECK(tsr__gguf_get_arr(g, "t.arr.nested", &n) == TSR_OK && n->len == 3 && n->elem_type == TSR_GGUF_ARRAY);
    CHECK(tsr__gguf_arr_at(n, 0, &e) == TSR_OK && e.elem_type == TSR_GGUF_UINT8 && e.len == 2);
    CHECK(tsr__gguf_arr_at(&e, 1, &e2) == TSR_OK && tsr__gguf_value_uint(&e2, &u) == TSR_OK && u == 2);
    CHECK(tsr__gguf_arr_at(n, 1, &e) == TSR_OK && e.elem_type == TSR_GGUF_STRING && e.len == 2);
    CHECK(tsr__gguf_arr_str(&e, 1, &s, &len) == TSR_OK && len == 2 && memcmp(s, "yz", 2) == 0);
    CHECK(tsr__gguf_arr_at(n, 2, &e) == TSR_OK && e.elem_type == TSR_GGUF_BOOL && e.len == 0);
    CHECK(tsr__gguf_arr_at(&e, 0, &e2) == TSR_ERR_INVALID_ARG);
    const tsr__gguf_tensor *ta = tsr__gguf_find_tensor(g, "a"), *tb = tsr__gguf_find_tensor(g, "b");
    CHECK(ta && ta->n_dims == 2 && ta->ne[0] == 4 && ta->ne[1] == 2 && ta->ne[2] == 1 && ta->nbytes == 32);
    CHECK(ta && ((const float *)ta->data)[7] == 4.5f);
    CHECK(tb && tb->ggml_type == TSR_GGML_Q8_0 && tb->nbytes == 34 && tb->offset == 64);
    float out[32];
    CHECK(tb && tsr__ggml_dequantize(tb->ggml_type, tb->data, out, 32) == TSR_OK && out[0] == -16 && out[31] == 15);
    tsr__gguf_close(g);
}

/* A corruption of the built file, and what its error must say. */
static void expect_fail(const buf *b, size_t n, tsr_status want, const char *what, const char *sub,
                        const char *sub2)
{
    tsr__gguf *g = NULL;
    char path[128];
    tsr_status st = open_buf(b, n, &g, path);
    CHECK_MSG(st == want, "%s: status %d, want %d (%s)", what, st, want, tsr_last_error());
    CHECK(g == NULL);
    CHECK_CONTAINS(tsr_last_error(), path);
    CHECK_CONTAINS(tsr_last_error(), sub);
    if (sub2)
        CHECK_CONTAINS(tsr_last_error(), sub2);
    tsr__gguf_close(g);
}

#define CORRUPT(stmt, want, sub, sub2) do { buf c_; build(&c_); buf *c = &c_; stmt; \
    expect_fail(c, c->n, want, #stmt, sub, sub2); } while (0)
#define SET32(at, v) do { uint32_t v_ = (v); memcpy(c->d + (at), &v_, 4); } while (0)
#define SET64(at, v) do { uint64_t v_ = (v); memcpy(c->d + (at), &v_, 8); } while (0)

static void check_malformed(void)
{
    CORRUPT(memcpy(c->d, "GGML", 4), TSR_ERR_FORMAT, "bad magic", "at byte 0");
    CORRUPT(SET32(4, 1), TSR_ERR_UNSUPPORTED, "GGUF version 1", "at byte 4");
    CORRUPT(SET32(4, 4), TSR_ERR_UNSUPPORTED, "unsupported GGUF version 4", "at byte 4");
    CORRUPT(SET32(4, 0x03000000), TSR_ERR_UNSUPPORTED, "big-endian", NULL);
    CORRUPT(SET64(8, 1ull << 40), TSR_ERR_FORMAT, "tensor count 1099511627776 is more than the file can hold", "at byte 8");
    CORRUPT(SET64(16, 1ull << 40), TSR_ERR_FORMAT, "key/value count 1099511627776", "at byte 16");
    CORRUPT(SET64(16, 17), TSR_ERR_FORMAT, "runs past the end", NULL); /* one kv too many: eats the tensor infos */
    CORRUPT(SET64(P.str_len, 1000000), TSR_ERR_FORMAT, "key 't.arr.str' element 1: string length 1000000 runs past the end", "at byte");
    CORRUPT(SET64(P.str_len, ~0ull), TSR_ERR_FORMAT, "string length 18446744073709551615", NULL);
    CORRUPT(SET32(P.type_u8, 13), TSR_ERR_FORMAT, "key 't.u8': unknown value type 13", "at byte");
    CORRUPT(SET32(P.arr_i32_et, 77), TSR_ERR_FORMAT, "'t.arr.i32': unknown array element type 77", NULL);
    CORRUPT(SET64(P.arr_i32_et + 4, 1ull << 60), TSR_ERR_FORMAT, "array count 1152921504606846976 of INT32", NULL);
    CORRUPT(c->d[P.bool_val] = 2, TSR_ERR_FORMAT, "'t.bool': bool value 2", NULL);
    CORRUPT(memcpy(c->d + P.kv_i8 + 8, "t.u8", 4), TSR_ERR_FORMAT, "duplicate metadata key 't.u8'", NULL);
    CORRUPT(SET32(P.align_val, 48), TSR_ERR_FORMAT, "'general.alignment' = 48 is not a power of two", NULL);
    CORRUPT(SET32(P.align_val, 0), TSR_ERR_FORMAT, "'general.alignment' = 0", NULL);
    CORRUPT(SET32(P.align_type, TSR_GGUF_INT32), TSR_ERR_FORMAT, "'general.alignment' is INT32, not UINT32", NULL);
    CORRUPT(SET32(P.t_b_type, 99), TSR_ERR_FORMAT, "tensor 'b': unknown ggml type 99", NULL);
    CORRUPT(SET32(P.t_b_type, 4), TSR_ERR_FORMAT, "tensor 'b': unknown ggml type 4", NULL);
    CORRUPT(SET32(P.t_b_ndims, 5), TSR_ERR_FORMAT, "tensor 'b': n_dims 5 is more than 4", NULL);
    CORRUPT(SET64(P.t_b_ne0, 0), TSR_ERR_FORMAT, "tensor 'b': dim 0 = 0 is not positive", NULL);
    CORRUPT(SET64(P.t_b_ne0, ~0ull), TSR_ERR_FORMAT, "tensor 'b': dim 0 = -1 is not positive", NULL);
    CORRUPT(SET64(P.t_a_ne0, 1ull << 62), TSR_ERR_FORMAT, "tensor 'a': the element count overflows at dim 1", NULL);
    CORRUPT(SET64(P.t_b_ne0, 31), TSR_ERR_FORMAT, "tensor 'b': row of 31 values is not a multiple of the Q8_0 block (32)", NULL);
    CORRUPT(SET64(P.t_b_off, 65), TSR_ERR_FORMAT, "tensor 'b': offset 65 is not a multiple of the alignment 64", "at byte");
    CORRUPT(SET64(P.t_b_off, 64 * 1000), TSR_ERR_FORMAT, "tensor 'b': data [64000, +34) past the end of the file", NULL);
    CORRUPT(SET64(P.t_b_off, 0), TSR_ERR_FORMAT, "tensors 'a' and 'b' overlap", NULL);
    CORRUPT(c->d[P.t_b_name + 8] = 'a', TSR_ERR_FORMAT, "duplicate tensor name 'a'", NULL);
    CORRUPT(c->d[P.t_b_name + 8] = 0, TSR_ERR_FORMAT, "the name of tensor 1 contains a NUL byte", NULL);

    /* the byte offset is the corrupted field's */
    char at[64];
    snprintf(at, sizeof at, "(at byte %zu)", P.t_b_off);
    CORRUPT(SET64(P.t_b_off, 128), TSR_ERR_FORMAT, "tensor 'b': data [128, +34) past the end", at);
    snprintf(at, sizeof at, "(at byte %zu)", P.t_b_type);
    CORRUPT(SET32(P.t_b_type, 31), TSR_ERR_FORMAT, "unknown ggml type 31", at);
    snprintf(at, sizeof at, "(at byte %zu)", P.str_len);
    CORRUPT(SET64(P.str_len, 5000), TSR_ERR_FORMAT, "string length 5000", at);

    /* every truncation fails cleanly, naming where the file ends */
    buf b;
    build(&b);
    int all = 1;
    for (size_t n = 0; n < b.n; n++) {
        tsr__gguf *g = NULL;
        char path[128];
        tsr_status st = open_buf(&b, n, &g, path);
        if (st != TSR_ERR_FORMAT || g || !strstr(tsr_last_error(), "at byte")) {
            fprintf(stderr, "truncated to %zu: status %d: %s\n", n, st, tsr_last_error());
            all = 0;
        }
        tsr__gguf_close(g);
    }
    CHECK(all);
    /* a missing file */
    tsr__gguf *g = NULL;
    CHECK(tsr__gguf_open("tests/data/gguf/does-not-exist.gguf", &g) == TSR_ERR_NOT_FOUND && !g);
}

int main(void)
{
    check_expected("stories260K-f32");
    check_expected("stories260K-f16");
    check_expected("stories260K-q4_k_m");
    check_named_metadata();
    check_vs_safetensors("stories260K-f32", 0);
    check_vs_safetensors("stories260K-f16", 1);
    check_quantized_error();
    check_vocab_files();

    snprintf(tmpdir, sizeof tmpdir, "/tmp/tsr-gguf-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    check_built();
    check_malformed();
    char path[128];
    snprintf(path, sizeof path, "%s/t.gguf", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return tsr_test_report("test_gguf");
}
