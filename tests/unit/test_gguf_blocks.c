/* tests/unit/test_gguf_blocks.c - the GGML block dequantizers and quantizers
 * against gguf-py's numpy reference (tests/data/gguf/blocks, made by
 * tests/data/gguf/make_vectors.py; see PROVENANCE.md there).  Results must be
 * bit-identical: both sides do the same float32 operations in the same order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tsr_test.h"
#include "internal.h"
#include "ggml_blocks.h"

static void *load(const char *name, const char *ext, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, "tests/data/gguf/blocks/%s%s", name, ext);
    char *data = NULL;
    if (tsr__read_file(path, &data, len) != TSR_OK) {
        fprintf(stderr, "%s\n", tsr_last_error());
        return NULL;
    }
    return data;
}

static void check_dequant(uint32_t type)
{
    const tsr__ggml_type_info *t = tsr__ggml_type(type);
    CHECK(t != NULL);
    if (!t)
        return;
    size_t qlen = 0, flen = 0;
    uint8_t *q = load(t->name, ".q", &qlen);
    float *ref = load(t->name, ".f32", &flen);
    CHECK_MSG(q && ref, "vectors for %s", t->name);
    if (q && ref) {
        int64_t n = (int64_t)(flen / 4);
        CHECK_MSG(qlen == tsr__ggml_row_bytes(type, n), "%s: %zu bytes for %lld values", t->name, qlen,
                  (long long)n);
        float *out = malloc(flen);
        CHECK(tsr__ggml_dequantize(type, q, out, n) == TSR_OK);
        int64_t bad = 0, first = -1;
        for (int64_t i = 0; i < n; i++)
            if (memcmp(&out[i], &ref[i], 4) != 0 && !(out[i] == 0 && ref[i] == 0)) {
                if (first < 0)
                    first = i;
                bad++;
            }
        CHECK_MSG(bad == 0, "%s: %lld of %lld values differ from gguf-py, first [%lld] %.9g vs %.9g",
                  t->name, (long long)bad, (long long)n, (long long)first,
                  first >= 0 ? out[first] : 0.f, first >= 0 ? ref[first] : 0.f);
        free(out);
    }
    free(q);
    free(ref);
}

static void check_quant(uint32_t type)
{
    const tsr__ggml_type_info *t = tsr__ggml_type(type);
    size_t slen = 0, qlen = 0;
    float *src = load(t->name, ".src.f32", &slen);
    uint8_t *ref = load(t->name, ".quant.q", &qlen);
    CHECK_MSG(src && ref && t->quantize_row, "quantize vectors for %s", t->name);
    if (src && ref && t->quantize_row) {
        int64_t n = (int64_t)(slen / 4);
        CHECK(qlen == tsr__ggml_row_bytes(type, n));
        uint8_t *out = calloc(1, qlen);
        t->quantize_row(src, out, n);
        size_t first = qlen;
        for (size_t i = 0; i < qlen; i++)
            if (out[i] != ref[i]) {
                first = i;
                break;
            }
        CHECK_MSG(first == qlen, "%s: quantized bytes differ from gguf-py from byte %zu (block %zu)",
                  t->name, first, first / t->block_bytes);
        free(out);
    }
    free(src);
    free(ref);
}

int main(void)
{
    /* geometry: ggml-common.h / gguf-py GGML_QUANT_SIZES */
    static const struct { uint32_t type; const char *name; uint32_t be, bb; } geo[] = {
        {TSR_GGML_F32, "F32", 1, 4}, {TSR_GGML_F16, "F16", 1, 2}, {TSR_GGML_BF16, "BF16", 1, 2},
        {TSR_GGML_Q4_0, "Q4_0", 32, 18}, {TSR_GGML_Q4_1, "Q4_1", 32, 20},
        {TSR_GGML_Q5_0, "Q5_0", 32, 22}, {TSR_GGML_Q5_1, "Q5_1", 32, 24},
        {TSR_GGML_Q8_0, "Q8_0", 32, 34}, {TSR_GGML_Q2_K, "Q2_K", 256, 84},
        {TSR_GGML_Q3_K, "Q3_K", 256, 110}, {TSR_GGML_Q4_K, "Q4_K", 256, 144},
        {TSR_GGML_Q5_K, "Q5_K", 256, 176}, {TSR_GGML_Q6_K, "Q6_K", 256, 210},
        {TSR_GGML_IQ2_XXS, "IQ2_XXS", 256, 66}, {TSR_GGML_IQ2_XS, "IQ2_XS", 256, 74},
        {TSR_GGML_IQ3_XXS, "IQ3_XXS", 256, 98}, {TSR_GGML_IQ1_S, "IQ1_S", 256, 50},
        {TSR_GGML_IQ4_NL, "IQ4_NL", 32, 18}, {TSR_GGML_IQ3_S, "IQ3_S", 256, 110},
        {TSR_GGML_IQ2_S, "IQ2_S", 256, 82}, {TSR_GGML_IQ4_XS, "IQ4_XS", 256, 136},
        {TSR_GGML_IQ1_M, "IQ1_M", 256, 56},
    };
    for (size_t i = 0; i < sizeof geo / sizeof geo[0]; i++) {
        const tsr__ggml_type_info *t = tsr__ggml_type(geo[i].type);
        CHECK(t && strcmp(t->name, geo[i].name) == 0 && t->block_elems == geo[i].be &&
              t->block_bytes == geo[i].bb && t->dequantize_row);
        check_dequant(geo[i].type);
    }
    check_quant(TSR_GGML_Q4_0);
    check_quant(TSR_GGML_Q4_1);
    check_quant(TSR_GGML_Q5_0);
    check_quant(TSR_GGML_Q5_1);
    check_quant(TSR_GGML_Q8_0);

    /* removed / unknown numbers, and types without a dequantizer */
    CHECK(tsr__ggml_type(4) == NULL && tsr__ggml_type(5) == NULL && tsr__ggml_type(31) == NULL);
    CHECK(tsr__ggml_type(1000) == NULL);
    float f[256];
    CHECK(tsr__ggml_dequantize(TSR_GGML_Q8_K, f, f, 256) == TSR_ERR_UNSUPPORTED);
    CHECK_CONTAINS(tsr_last_error(), "Q8_K");
    CHECK(tsr__ggml_dequantize(TSR_GGML_Q4_0, f, f, 33) == TSR_ERR_INVALID_ARG);
    CHECK(tsr__ggml_row_bytes(TSR_GGML_Q4_K, 512) == 288 && tsr__ggml_row_bytes(TSR_GGML_Q4_K, 100) == 0);
    CHECK(tsr__ggml_to_dtype(TSR_GGML_F16) == TSR_DTYPE_F16 && tsr__ggml_to_dtype(TSR_GGML_Q4_K) == 44);
    CHECK(tsr__ggml_to_dtype(4) == -1);

    /* round trip through the quantizers stays within half a step */
    float x[64], y[64];
    uint8_t blk[128];
    for (int i = 0; i < 64; i++)
        x[i] = sinf((float)i * 0.7f) * 3.0f;
    tsr__quantize_row_q8_0(x, blk, 64);
    tsr__dequantize_row_q8_0(blk, y, 64);
    for (int i = 0; i < 64; i++)
        CHECK(fabsf(x[i] - y[i]) <= 3.0f / 127 * 0.51f + 3e-3f);
    return tsr_test_report("test_gguf_blocks");
}
