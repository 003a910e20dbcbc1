/* tessera/plugin/formats.h - runtime weight formats (DESIGN §4).
 *
 * Quantizers map checkpoints onto a few explicit formats; backends multiply
 * a format natively or fall back to host->dequantize_row + dense matmul, so
 * a quantizer that maps onto an existing format needs no kernels.
 *
 * A weight of a Linear layer is a tensor with ne = {K (in), N (out)} whose
 * dtype is one of the values below and, for the non-GGML formats, whose
 * format_data points to the format's descriptor (owned by the quantizer,
 * alive as long as the model).  Row n of the weight is output feature n.
 * Append-only: values and struct members are never renumbered or reordered.
 */
#ifndef TESSERA_PLUGIN_FORMATS_H
#define TESSERA_PLUGIN_FORMATS_H

#include "../types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* GGML block formats: 32 + ggml's type number; `data` holds N rows of
 * K / block_elems blocks each, exactly as in a GGUF file.  No format_data. */
#define TSR_DTYPE_GGML_BASE 32
enum {
    TSR_DTYPE_Q4_0 = 34, TSR_DTYPE_Q4_1 = 35, TSR_DTYPE_Q5_0 = 38, TSR_DTYPE_Q5_1 = 39,
    TSR_DTYPE_Q8_0 = 40, TSR_DTYPE_Q8_1 = 41, TSR_DTYPE_Q2_K = 42, TSR_DTYPE_Q3_K = 43,
    TSR_DTYPE_Q4_K = 44, TSR_DTYPE_Q5_K = 45, TSR_DTYPE_Q6_K = 46, TSR_DTYPE_Q8_K = 47,
    TSR_DTYPE_IQ2_XXS = 48, TSR_DTYPE_IQ2_XS = 49, TSR_DTYPE_IQ3_XXS = 50,
    TSR_DTYPE_IQ1_S = 51, TSR_DTYPE_IQ4_NL = 52, TSR_DTYPE_IQ3_S = 53,
    TSR_DTYPE_IQ2_S = 54, TSR_DTYPE_IQ4_XS = 55, TSR_DTYPE_IQ1_M = 61
};

/* Quantizer formats. */
enum {
    TSR_DTYPE_INT_GROUP = 96,  /* int-N codes, per-group scale and zero   */
    TSR_DTYPE_CODEBOOK4 = 97,  /* 4-bit code book, per-block absmax       */
    TSR_DTYPE_INT8_ROW = 98    /* LLM.int8: row-wise absmax int8          */
};

/* TSR_DTYPE_INT_GROUP (GPTQ, AWQ, HQQ):
 *   w[n][k] = (q[n][k] - zero[g]) * scale[g]
 * axis 1: g = n * n_groups_per_row + group_of(k), group_of(k) = g_idx[k]
 *         when g_idx (act-order) is set, else k / group_size; with
 *         n_groups_per_row == 0 groups run over the flattened weight
 *         instead (HQQ when group_size does not divide K): g = (n*K + k) / group_size;
 * axis 0 (HQQ axis=0): with f = n*K + k and C = N*K / group_size, g = f % C.
 * Codes are bit-packed little-endian along each row: code k of row n is the
 * `bits` bits starting at bit k*bits of row n, rows row_bytes apart
 * (row_bytes = ceil(K * bits / 8)).  `data` points to the codes.
 *
 * weight_dtype (since 1.2; read it with tsr_fmt_int_group_weight_dtype):
 * TSR_DTYPE_F32 (0, and what a 1.0/1.1 descriptor without the member means)
 * multiplies with the float32 w above.  TSR_DTYPE_F16 / TSR_DTYPE_BF16 ask
 * for the product of a library that dequantizes in 16 bits (GPTQModel's
 * torch kernel: fp16 scales times the codes, in fp16): every w is rounded
 * to weight_dtype (to nearest, ties to even) before it is multiplied; x,
 * the sums, the bias and the output stay float32.  Dequantizers
 * (host->dequantize_row) still give the float32 w. */
typedef struct tsr_fmt_int_group {
    uint32_t struct_size;
    uint32_t bits;              /* 1..8                                     */
    uint32_t axis;              /* 1 (groups along K) or 0 (HQQ axis=0)     */
    uint32_t reserved;
    int64_t group_size;         /* elements per group                      */
    int64_t n_groups_per_row;   /* axis 1: groups in one row               */
    size_t row_bytes;           /* bytes between rows of codes             */
    const float *scale;         /* [groups]                                 */
    const float *zero;          /* [groups], in code units (may be fractional) */
    const int32_t *g_idx;       /* [K] or NULL                              */
    /* since 1.0: append below. */
    uint32_t weight_dtype;      /* since 1.2: TSR_DTYPE_F32 / F16 / BF16    */
} tsr_fmt_int_group;

/* The dtype an INT_GROUP weight's values are rounded to before they are
 * multiplied: TSR_DTYPE_F16 or TSR_DTYPE_BF16 when the descriptor's
 * struct_size covers weight_dtype and it says so, else TSR_DTYPE_F32 (a
 * 1.0/1.1 descriptor, or any other value). */
static inline uint32_t tsr_fmt_int_group_weight_dtype(const tsr_fmt_int_group *f)
{
    if (!f || f->struct_size < offsetof(tsr_fmt_int_group, weight_dtype) + sizeof f->weight_dtype)
        return (uint32_t)TSR_DTYPE_F32;
    if (f->weight_dtype == (uint32_t)TSR_DTYPE_F16 || f->weight_dtype == (uint32_t)TSR_DTYPE_BF16)
        return f->weight_dtype;
    return (uint32_t)TSR_DTYPE_F32;
}

/* TSR_DTYPE_CODEBOOK4 (bitsandbytes NF4/FP4): over the row-major flattened
 * weight (index f = n*K + k), w[f] = code[c(f)] * absmax[f / block_size],
 * where byte f/2 holds c(f) in its high nibble for even f, low for odd f.
 * Double quantization is expanded into `absmax` by the quantizer.
 *
 * compute_dtype (since 1.2; read it with tsr_fmt_codebook4_compute_dtype):
 * TSR_DTYPE_F32 (0, and what a 1.0/1.1 descriptor without the member means)
 * multiplies in float32.  TSR_DTYPE_F16 / TSR_DTYPE_BF16 (bitsandbytes'
 * bnb_4bit_compute_dtype) ask for the product bitsandbytes' Linear4bit
 * computes from a float32 input: x, w (the float32 value above) and the
 * bias are each rounded to compute_dtype (to nearest, ties to even), the
 * products summed in float32, the sum plus the bias rounded to
 * compute_dtype, and the result returned as float32.  Dequantizers
 * (host->dequantize_row) still give the float32 w. */
typedef struct tsr_fmt_codebook4 {
    uint32_t struct_size;
    uint32_t reserved;
    int64_t block_size;         /* 64 in bitsandbytes                      */
    float code[16];             /* the code book (NF4 or FP4 table)        */
    const float *absmax;        /* [N*K / block_size]                      */
    /* since 1.0: append below. */
    uint32_t compute_dtype;     /* since 1.2: TSR_DTYPE_F32 / F16 / BF16   */
} tsr_fmt_codebook4;

/* The compute dtype of a CODEBOOK4 weight: TSR_DTYPE_F16 or TSR_DTYPE_BF16
 * when the descriptor's struct_size covers compute_dtype and it says so,
 * else TSR_DTYPE_F32 (a 1.0/1.1 descriptor, or any other value). */
static inline uint32_t tsr_fmt_codebook4_compute_dtype(const tsr_fmt_codebook4 *f)
{
    if (!f || f->struct_size < offsetof(tsr_fmt_codebook4, compute_dtype) + sizeof f->compute_dtype)
        return (uint32_t)TSR_DTYPE_F32;
    if (f->compute_dtype == (uint32_t)TSR_DTYPE_F16 || f->compute_dtype == (uint32_t)TSR_DTYPE_BF16)
        return f->compute_dtype;
    return (uint32_t)TSR_DTYPE_F32;
}

/* TSR_DTYPE_INT8_ROW (LLM.int8): w[n][k] = q[n][k] * scale[n]
 * (scale = SCB / 127).  Activation columns whose magnitude exceeds
 * `threshold` anywhere in the batch are multiplied in 16-bit floating point
 * with the dequantized weight columns; the rest in int8 with activations
 * quantized row-wise (absmax).  threshold 0: no outlier handling. */
typedef struct tsr_fmt_int8_row {
    uint32_t struct_size;
    float threshold;
    const float *scale;         /* [N]                                      */
    /* since 1.0: append below. */
} tsr_fmt_int8_row;

#ifdef __cplusplus
}
#endif
#endif /* TESSERA_PLUGIN_FORMATS_H */
