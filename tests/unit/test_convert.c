/* tests/unit/test_convert.c - HF folder <-> GGUF conversion and
 * tsr_model_save, checked against independent references: the original
 * checkpoints (round trips must be bit-identical), llama.cpp's own GGUF of
 * stories260K (fixtures/stories260K-gguf/stories260K-f32.gguf, written by
 * llama.cpp's converter: tensors after its q/k permutation, tokenizer
 * tokens/scores/types), llama.cpp's GGUFs of the tiny fixtures of every
 * architecture (fixtures/gguf-archs/: tensors and metadata, both ways,
 * and transformers' logits, tests/unit/arch_ref.h), and the original
 * tokenizer's encodings. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "arch_ref.h"
#include "ggml_blocks.h"
#include "tsr_test.h"
#include "writers.h"

static char tmpdir[256];

static const char *tpath(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmpdir, name);
    return buf;
}

/* Every tensor of `a` is in `b` with the same dtype, shape and bytes. */
static int same_checkpoints(const char *a, const char *b)
{
    tsr_checkpoint *x = NULL, *y = NULL;
    int bad = 0;
    if (tsr__checkpoint_open(a, &x) || tsr__checkpoint_open(b, &y)) {
        fprintf(stderr, "%s\n", tsr_last_error());
        bad = 1;
        goto out;
    }
    if (tsr__checkpoint_count(x) != tsr__checkpoint_count(y)) {
        fprintf(stderr, "%s has %zu tensors, %s %zu\n", a, tsr__checkpoint_count(x), b,
                tsr__checkpoint_count(y));
        bad++;
    }
    for (size_t i = 0; i < tsr__checkpoint_count(x); i++) {
        tsr__ckpt_tensor *t = tsr__checkpoint_at(x, i), *u = tsr__checkpoint_find(y, t->name);
        bool same = u && u->dtype == t->dtype && u->n_dims == t->n_dims && u->nbytes == t->nbytes &&
                    memcmp(u->shape, t->shape, sizeof(int64_t) * (size_t)t->n_dims) == 0 &&
                    memcmp(u->data, t->data, t->nbytes) == 0;
        if (!same) {
            fprintf(stderr, "tensor %s differs between %s and %s\n", t->name, a, b);
            bad++;
        }
    }
out:
    tsr__checkpoint_close(x);
    tsr__checkpoint_close(y);
    return bad;
}

static int logits_of(const char *path, const tsr_config *cfg, const int32_t *ids, size_t n, float **out);

static void test_round_trip(const char *fixture, const char *tag)
{
    char g[512], h[512];
    tpath(g, sizeof g, tag);
    strcat(g, ".gguf");
    tpath(h, sizeof h, tag);
    tsr_convert_options o = TSR_CONVERT_OPTIONS_INIT;
    o.outtype = "f32";
    CHECK_MSG(tsr_model_convert(fixture, g, &o) == TSR_OK, "%s", tsr_last_error());
    CHECK_MSG(tsr_model_convert(g, h, NULL) == TSR_OK, "%s", tsr_last_error());
    CHECK_MSG(same_checkpoints(fixture, h) == 0, "%s: HF -> GGUF -> HF is not lossless", fixture);
    /* the GGUF runs natively (its architecture's metadata and tensor names
     * mapped back) with the folder's logits */
    int32_t ids[6] = {1, 7, 42, 99, 3, 200};
    float *a = NULL, *b = NULL;
    int va = logits_of(fixture, NULL, ids, 6, &a), vb = logits_of(g, NULL, ids, 6, &b);
    CHECK_MSG(va > 0 && va == vb, "%s: GGUF run: %s", fixture, tsr_last_error());
    double md = 0;
    for (int i = 0; va > 0 && va == vb && i < 6 * va; i++)
        md = fmax(md, fabs((double)a[i] - b[i]));
    CHECK_MSG(md <= 1e-5, "%s: GGUF logits differ from the folder's by %g", fixture, md);
    free(a);
    free(b);
}

/* Our GGUF of stories260K-hf equals llama.cpp's in every tensor and in the
 * tokenizer arrays. */
static void test_matches_llamacpp(void)
{
    char g[512];
    tpath(g, sizeof g, "stories260K-hf.gguf");
    tsr__gguf *a = NULL, *b = NULL;
    CHECK(tsr__gguf_open(g, &a) == TSR_OK);
    CHECK(tsr__gguf_open("fixtures/stories260K-gguf/stories260K-f32.gguf", &b) == TSR_OK);
    if (!a || !b)
        goto out;
    size_t n = tsr__gguf_tensor_count(a);
    CHECK(n == 47); /* llama.cpp's file also has output.weight (tied here) */
    for (size_t i = 0; i < n; i++) {
        const tsr__gguf_tensor *t = tsr__gguf_tensor_at(a, i), *u = tsr__gguf_find_tensor(b, t->name);
        CHECK_MSG(u && u->ggml_type == t->ggml_type && u->nbytes == t->nbytes &&
                  memcmp(u->ne, t->ne, sizeof t->ne) == 0 && memcmp(u->data, t->data, t->nbytes) == 0,
                  "tensor %s differs from llama.cpp's", t->name);
    }
    const tsr__gguf_tensor *out_w = tsr__gguf_find_tensor(b, "output.weight");
    const tsr__gguf_tensor *emb = tsr__gguf_find_tensor(a, "token_embd.weight");
    CHECK(out_w && emb && memcmp(out_w->data, emb->data, emb->nbytes) == 0);
    static const char *const keys[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                                       "tokenizer.ggml.token_type"};
    for (size_t k = 0; k < 3; k++) {
        const tsr__gguf_value *x, *y;
        CHECK(!tsr__gguf_get_arr(a, keys[k], &x) && !tsr__gguf_get_arr(b, keys[k], &y));
        CHECK_MSG(x->len == y->len && x->elem_type == y->elem_type, "%s", keys[k]);
        for (uint64_t i = 0; i < x->len && i < y->len; i++) {
            tsr__gguf_value ex, ey;
            tsr__gguf_arr_at(x, i, &ex);
            tsr__gguf_arr_at(y, i, &ey);
            size_t sz = ex.type == TSR_GGUF_STRING ? ex.len : 4; /* bits: -0.0 is not 0.0 */
            if (ex.len != ey.len || memcmp(ex.data, ey.data, sz)) {
                CHECK_MSG(0, "%s[%llu] differs", keys[k], (unsigned long long)i);
                break;
            }
        }
    }
    static const char *const ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                      "tokenizer.ggml.unknown_token_id"};
    for (size_t k = 0; k < 3; k++) {
        int64_t x = -1, y = -2;
        tsr__gguf_get_int(a, ids[k], &x);
        tsr__gguf_get_int(b, ids[k], &y);
        CHECK_MSG(x == y, "%s: %lld vs %lld", ids[k], (long long)x, (long long)y);
    }
    CHECK(tsr__gguf_str_eq(a, "tokenizer.ggml.model", "llama"));
    CHECK(tsr__gguf_str_eq(a, "general.architecture", "llama"));
out:
    tsr__gguf_close(a);
    tsr__gguf_close(b);
}

/* Two metadata values are the same: type, and bytes (arrays element by
 * element). */
static bool same_value(const tsr__gguf_value *x, const tsr__gguf_value *y)
{
    static const size_t size[TSR_GGUF_TYPE_COUNT_] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (x->type != y->type || x->len != y->len)
        return false;
    if (x->type == TSR_GGUF_STRING)
        return memcmp(x->data, y->data, x->len) == 0;
    if (x->type != TSR_GGUF_ARRAY)
        return x->type < TSR_GGUF_TYPE_COUNT_ && memcmp(x->data, y->data, size[x->type]) == 0;
    if (x->elem_type != y->elem_type)
        return false;
    for (uint64_t i = 0; i < x->len; i++) {
        tsr__gguf_value ex, ey;
        if (tsr__gguf_arr_at(x, i, &ex) || tsr__gguf_arr_at(y, i, &ey) || !same_value(&ex, &ey))
            return false;
    }
    return true;
}

/* Metadata compared with llama.cpp's: everything but the tokenizer (the
 * fixtures have none: tessera writes no vocabulary, llama.cpp's files have
 * fixtures/gguf-archs/tokenizer.model's) and the descriptive general.* keys
 * (name, type, size_label: from the model card / folder name). */
static bool compared_key(const char *k)
{
    return strncmp(k, "tokenizer.", 10) &&
           (strncmp(k, "general.", 8) || !strcmp(k, "general.architecture") ||
            !strcmp(k, "general.file_type") || !strcmp(k, "general.quantization_version") ||
            !strcmp(k, "general.alignment"));
}

/* tessera's F32 GGUF of fixtures/tiny-<name> against llama.cpp's
 * (fixtures/gguf-archs/tiny-<name>-f32.gguf, written by its
 * convert_hf_to_gguf.py from the same folder): the same tensor names,
 * types, shapes and bytes (llama3's rope_freqs, computed, within float
 * rounding), the same architecture metadata keys and values; then the file
 * runs with transformers' logits (reference.json). */
static void test_arch_matches_llamacpp(const arch_case *ac)
{
    char g[512], src[256], ref[256];
    snprintf(src, sizeof src, "fixtures/tiny-%s", ac->name);
    snprintf(ref, sizeof ref, "fixtures/gguf-archs/tiny-%s-f32.gguf", ac->name);
    snprintf(g, sizeof g, "%s/tiny-%s-f32.gguf", tmpdir, ac->name);
    tsr_convert_options o = TSR_CONVERT_OPTIONS_INIT;
    o.outtype = "f32";
    tsr_status st = tsr_model_convert(src, g, &o);
    CHECK_MSG(st == TSR_OK, "%s: %s", src, tsr_last_error());
    if (st)
        return;
    tsr__gguf *a = NULL, *b = NULL;
    CHECK(tsr__gguf_open(g, &a) == TSR_OK);
    CHECK(tsr__gguf_open(ref, &b) == TSR_OK);
    if (!a || !b)
        goto out;
    CHECK_MSG(tsr__gguf_tensor_count(a) == tsr__gguf_tensor_count(b), "%s: %zu tensors, llama.cpp %zu",
              ac->name, tsr__gguf_tensor_count(a), tsr__gguf_tensor_count(b));
    for (size_t i = 0; i < tsr__gguf_tensor_count(b); i++) {
        const tsr__gguf_tensor *u = tsr__gguf_tensor_at(b, i), *t = tsr__gguf_find_tensor(a, u->name);
        bool same = t && u->ggml_type == t->ggml_type && u->ggml_type == TSR_GGML_F32 &&
                    u->n_dims == t->n_dims && u->nbytes == t->nbytes &&
                    memcmp(u->ne, t->ne, sizeof t->ne) == 0;
        if (same && !strcmp(u->name, "rope_freqs.weight")) {
            for (int64_t k = 0; k < u->ne[0]; k++) {
                float x = ((const float *)t->data)[k], y = ((const float *)u->data)[k];
                same &= fabsf(x - y) <= 1e-6f * fabsf(y);
            }
        } else if (same) {
            /* bit-identical, gemma's 1 + w included (both add in float32) */
            same = memcmp(u->data, t->data, t->nbytes) == 0;
        }
        CHECK_MSG(same, "%s: tensor %s differs from llama.cpp's", ac->name, u->name);
    }
    size_t nb = 0;
    for (size_t i = 0; i < tsr__gguf_kv_count(b); i++) {
        const char *k = tsr__gguf_kv_key(b, i);
        if (!compared_key(k))
            continue;
        nb++;
        const tsr__gguf_value *x = tsr__gguf_find(a, k);
        CHECK_MSG(x && same_value(x, tsr__gguf_kv_value(b, i)), "%s: metadata %s %s llama.cpp's",
                  ac->name, k, x ? "differs from" : "is missing, unlike");
    }
    for (size_t i = 0; i < tsr__gguf_kv_count(a); i++) {
        const char *k = tsr__gguf_kv_key(a, i);
        CHECK_MSG(!compared_key(k) || tsr__gguf_find(b, k), "%s: metadata %s is not in llama.cpp's file",
                  ac->name, k);
    }
    CHECK_MSG(nb >= 10, "%s: only %zu metadata keys compared", ac->name, nb);
out:
    tsr__gguf_close(a);
    tsr__gguf_close(b);
    arch_ref_check(g, ac, NULL, NULL);
}

/* GGUF -> HF of llama.cpp's files: the folders run with transformers'
 * logits (config.json, tensor names, gemma's norms, experts, phi3's
 * longrope factors and llama3's rope_freqs recovered). */
static void test_arch_from_llamacpp(const arch_case *ac)
{
    char h[512], ref[256];
    snprintf(ref, sizeof ref, "fixtures/gguf-archs/tiny-%s-f32.gguf", ac->name);
    snprintf(h, sizeof h, "%s/from-llamacpp-%s", tmpdir, ac->name);
    tsr_status st = tsr_model_convert(ref, h, NULL);
    CHECK_MSG(st == TSR_OK, "%s: %s", ref, tsr_last_error());
    if (!st)
        arch_ref_check(h, ac, NULL, NULL);
}

static size_t encode(const tsr_tokenizer *t, const char *text, int32_t *ids, size_t cap)
{
    size_t n = 0;
    if (tsr_tokenize(t, text, strlen(text), TSR_TOKENIZE_ADD_SPECIAL, ids, cap, &n) || n > cap)
        return (size_t)-1;
    return n;
}

/* tokenizer.json written from llama.cpp's GGUF (merges derived from the
 * scores, as transformers does) encodes like the original tokenizer. */
static void test_tokenizer_from_gguf(void)
{
    char h[512];
    tpath(h, sizeof h, "from-llamacpp");
    CHECK_MSG(tsr_model_convert("fixtures/stories260K-gguf/stories260K-q4_k_m.gguf", h, NULL) == TSR_OK,
              "%s", tsr_last_error());
    tsr_tokenizer *ours = NULL, *ref = NULL;
    CHECK_MSG(tsr_tokenizer_load(h, &ours) == TSR_OK, "%s", tsr_last_error());
    CHECK(tsr_tokenizer_load("fixtures/stories260K-hf", &ref) == TSR_OK);
    char *text = NULL;
    size_t len;
    CHECK(tsr__read_file("fixtures/text/tinystories-like.txt", &text, &len) == TSR_OK ||
          (text = tsr__strdup("Once upon a time, there was a little girl named Lily. "
                              "She liked caf\xc3\xa9s and \xe2\x9c\xa8 stars!")) != NULL);
    if (ours && ref && text) {
        size_t cap = strlen(text) + 16;
        int32_t *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
        size_t na = encode(ours, text, a, cap), nb = encode(ref, text, b, cap);
        CHECK_MSG(na == nb && na != (size_t)-1 && memcmp(a, b, na * sizeof *a) == 0,
                  "encodings differ (%zu vs %zu tokens)", na, nb);
        CHECK(a[0] == 1); /* add_bos_token */
        char *back = malloc(len + 64);
        size_t bl;
        CHECK(tsr_detokenize(ours, a + 1, na - 1, 0, back, len + 64, &bl) == TSR_OK &&
              bl == strlen(text) && !memcmp(back, text, bl));
        free(back);
        free(a);
        free(b);
    }
    free(text);
    tsr_tokenizer_destroy(ours);
    tsr_tokenizer_destroy(ref);
}

static int logits_of(const char *path, const tsr_config *cfg, const int32_t *ids, size_t n, float **out)
{
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = path;
    lo.config = cfg;
    tsr_model *m = NULL;
    if (tsr_model_load(&lo, &m)) {
        fprintf(stderr, "%s: %s\n", path, tsr_last_error());
        return -1;
    }
    int vocab = tsr_tokenizer_vocab_size(tsr_model_tokenizer(m));
    if (vocab <= 0)
        vocab = 256;
    *out = malloc(n * (size_t)vocab * sizeof(float));
    tsr_status st = tsr_model_logits(m, ids, n, *out);
    tsr_model_destroy(m);
    return st ? -1 : vocab;
}

/* Quantized GGUF files load and compute what their own dequantized
 * weights compute (the folder `tessera convert` writes back from them):
 * the block path of the backends against the dense path. */
static void test_quantized_outputs(void)
{
    static const int32_t ids[] = {1, 17, 99, 3, 250, 42};
    static const char *const types[] = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "f16", "bf16"};
    static const int ggml[] = {TSR_GGML_Q8_0, TSR_GGML_Q4_0, TSR_GGML_Q4_1, TSR_GGML_Q5_0,
                               TSR_GGML_Q5_1, TSR_GGML_F16, TSR_GGML_BF16};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        char g[512], h[512], name[64];
        snprintf(name, sizeof name, "tiny-llama-%s.gguf", types[k]);
        tpath(g, sizeof g, name);
        snprintf(name, sizeof name, "tiny-llama-%s-deq", types[k]);
        tpath(h, sizeof h, name);
        tsr_convert_options o = TSR_CONVERT_OPTIONS_INIT;
        o.outtype = types[k];
        CHECK_MSG(tsr_model_convert("fixtures/tiny-llama", g, &o) == TSR_OK, "%s", tsr_last_error());
        CHECK_MSG(tsr_model_convert(g, h, NULL) == TSR_OK, "%s", tsr_last_error());
        tsr__gguf *gg;
        if (tsr__gguf_open(g, &gg) == TSR_OK) {
            const tsr__gguf_tensor *t = tsr__gguf_find_tensor(gg, "blk.0.ffn_down.weight");
            const tsr__gguf_tensor *nrm = tsr__gguf_find_tensor(gg, "blk.0.attn_norm.weight");
            CHECK(t && t->ggml_type == (uint32_t)ggml[k]);
            CHECK(nrm && nrm->ggml_type == TSR_GGML_F32); /* 1-D stays F32 */
            tsr__gguf_close(gg);
        }
        float *got = NULL, *ref = NULL;
        int vg = logits_of(g, NULL, ids, 6, &got);
        int vr = logits_of(h, NULL, ids, 6, &ref);
        CHECK(vg == 256 && vr == 256);
        double maxd = 0, maxr = 0;
        for (int i = 0; vg == 256 && vr == 256 && i < 6 * 256; i++) {
            maxd = fmax(maxd, fabs((double)got[i] - ref[i]));
            maxr = fmax(maxr, fabs((double)ref[i]));
        }
        CHECK_MSG(vg == 256 && maxd <= 0.05 * fmax(maxr, 1.0),
                  "%s GGUF vs its dequantized weights: max |diff| %g (max |logit| %g)", types[k],
                  maxd, maxr);
        free(got);
        free(ref);
    }
}

/* tsr_model_save of an unquantized model: same bytes, same logits. */
static void test_model_save(void)
{
    char h[512];
    tpath(h, sizeof h, "saved-stories");
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = "fixtures/stories260K-hf";
    tsr_model *m = NULL;
    CHECK_MSG(tsr_model_load(&lo, &m) == TSR_OK, "%s", tsr_last_error());
    if (!m)
        return;
    CHECK(tsr_model_save(m, "fixtures/stories260K-hf", NULL) != TSR_OK); /* over itself */
    tsr_save_options so = TSR_SAVE_OPTIONS_INIT;
    CHECK_MSG(tsr_model_save(m, h, &so) == TSR_OK, "%s", tsr_last_error());
    tsr_model_destroy(m);
    CHECK(same_checkpoints("fixtures/stories260K-hf", h) == 0);
    char p[600];
    snprintf(p, sizeof p, "%s/tokenizer.json", h);
    CHECK(access(p, R_OK) == 0);
    static const int32_t ids[] = {1, 403, 407, 261, 378, 30, 100};
    float *a = NULL, *b = NULL;
    int va = logits_of("fixtures/stories260K-hf", NULL, ids, 7, &a);
    int vb = logits_of(h, NULL, ids, 7, &b);
    CHECK(va == 512 && vb == 512 && memcmp(a, b, 7 * 512 * sizeof(float)) == 0);
    free(a);
    free(b);
    /* sharded save reads back identically */
    tpath(h, sizeof h, "saved-sharded");
    CHECK(tsr_model_load(&lo, &m) == TSR_OK);
    so.max_shard_size = 200000;
    CHECK_MSG(m && tsr_model_save(m, h, &so) == TSR_OK, "%s", tsr_last_error());
    tsr_model_destroy(m);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", h);
    CHECK(access(p, R_OK) == 0);
    CHECK(same_checkpoints("fixtures/stories260K-hf", h) == 0);
}

static void test_permute_inverse(void)
{
    /* tsr__permute_rows_for_gguf is the inverse of gguf_model.c's
     * un-permutation: row (h, i, j) of GGUF = HF row (h, j, i) */
    int32_t src[16], dst[16];
    for (int i = 0; i < 16; i++)
        src[i] = i;
    CHECK(tsr__permute_rows_for_gguf(src, dst, 16, sizeof(int32_t), 2) == TSR_OK);
    static const int32_t want[16] = {0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15};
    CHECK(memcmp(dst, want, sizeof want) == 0);
    CHECK(tsr__permute_rows_for_gguf(src, dst, 6, sizeof(int32_t), 4) != TSR_OK);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tessera-test-convert-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    test_permute_inverse();
    test_round_trip("fixtures/stories260K-hf", "stories260K-hf");
    test_round_trip("fixtures/tiny-llama", "tiny-llama");
    test_round_trip("fixtures/tiny-qwen2", "tiny-qwen2");
    test_round_trip("fixtures/tiny-mistral", "tiny-mistral");
    test_matches_llamacpp();
    for (size_t i = 0; i < ARCH_REF_N_CASES; i++) {
        test_arch_matches_llamacpp(&arch_ref_cases[i]);
        test_arch_from_llamacpp(&arch_ref_cases[i]);
    }
    test_tokenizer_from_gguf();
    test_quantized_outputs();
    test_model_save();
    /* refusals */
    CHECK(tsr_model_convert("fixtures/tiny-gpt2", "/tmp/x.gguf", NULL) == TSR_ERR_UNSUPPORTED);
    /* qwen2_moe with a dense layer (mlp_only_layers [1]): llama.cpp's
     * qwen2moe has sparse layers only */
    char x[512];
    tpath(x, sizeof x, "tiny-qwen2_moe.gguf");
    CHECK(tsr_model_convert("fixtures/tiny-qwen2_moe", x, NULL) == TSR_ERR_UNSUPPORTED);
    CHECK_CONTAINS(tsr_last_error(), "layer 1 of this qwen2_moe model is dense");
    CHECK(access(x, F_OK) != 0);
    CHECK(tsr_model_convert("fixtures/tiny-llama", "/tmp/x.bin", NULL) == TSR_ERR_INVALID_ARG);
    tsr_convert_options o = TSR_CONVERT_OPTIONS_INIT;
    o.outtype = "q3_x";
    CHECK(tsr_model_convert("fixtures/tiny-llama", "/tmp/x.gguf", &o) == TSR_ERR_INVALID_ARG);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "%s %s", getenv("KEEP") ? "echo" : "rm -rf", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return tsr_test_report("convert");
}
