/* core/ggml_blocks.h - GGML tensor types as runtime weight formats: block
 * geometry and reference (plain C) dequantizers/quantizers.
 *
 * Layouts follow ggml's published block structs (ggml-common.h) and gguf-py's
 * numpy reference (gguf/quants.py); tests/unit/test_gguf_blocks.c checks every
 * dequantizer against gguf-py's output bit for bit.
 *
 * Thread-safety: every function is pure (reads its arguments and constant
 * tables only) and may be called from any thread.
 */
#ifndef TESSERA_GGML_BLOCKS_H
#define TESSERA_GGML_BLOCKS_H

#include <stddef.h>
#include <stdint.h>
#include "tessera/types.h"

/* ggml's type numbers (ggml.h enum ggml_type), as stored in GGUF tensor infos. */
enum tsr__ggml_type {
    TSR_GGML_F32 = 0,
    TSR_GGML_F16 = 1,
    TSR_GGML_Q4_0 = 2,
    TSR_GGML_Q4_1 = 3,
    TSR_GGML_Q5_0 = 6,
    TSR_GGML_Q5_1 = 7,
    TSR_GGML_Q8_0 = 8,
    TSR_GGML_Q8_1 = 9,
    TSR_GGML_Q2_K = 10,
    TSR_GGML_Q3_K = 11,
    TSR_GGML_Q4_K = 12,
    TSR_GGML_Q5_K = 13,
    TSR_GGML_Q6_K = 14,
    TSR_GGML_Q8_K = 15,
    TSR_GGML_IQ2_XXS = 16,
    TSR_GGML_IQ2_XS = 17,
    TSR_GGML_IQ3_XXS = 18,
    TSR_GGML_IQ1_S = 19,
    TSR_GGML_IQ4_NL = 20,
    TSR_GGML_IQ3_S = 21,
    TSR_GGML_IQ2_S = 22,
    TSR_GGML_IQ4_XS = 23,
    TSR_GGML_I8 = 24,
    TSR_GGML_I16 = 25,
    TSR_GGML_I32 = 26,
    TSR_GGML_I64 = 27,
    TSR_GGML_F64 = 28,
    TSR_GGML_IQ1_M = 29,
    TSR_GGML_BF16 = 30,
    TSR_GGML_TQ1_0 = 34,
    TSR_GGML_TQ2_0 = 35,
    TSR_GGML_MXFP4 = 39,
    TSR_GGML_TYPE_LIMIT_ = 40 /* ids below this are known by name */
};

/* Runtime weight formats for GGML blocks: tsr_dtype values 32 + ggml type.
 * Proposed for include/tessera/types.h (values >= 32 are block formats):
 * TSR_DTYPE_Q4_0 = 34, Q4_1 = 35, Q5_0 = 38, Q5_1 = 39, Q8_0 = 40,
 * Q2_K = 42, Q3_K = 43, Q4_K = 44, Q5_K = 45, Q6_K = 46, IQ2_XXS = 48,
 * IQ2_XS = 49, IQ3_XXS = 50, IQ1_S = 51, IQ4_NL = 52, IQ3_S = 53, IQ2_S = 54,
 * IQ4_XS = 55, IQ1_M = 61.  (Plain ggml types F32/F16/BF16/I8.. map to the
 * plain tsr_dtype values instead: see tsr__ggml_to_dtype.) */
#define TSR_DTYPE_GGML_BASE 32
#define TSR_DTYPE_GGML(t) (TSR_DTYPE_GGML_BASE + (t))

/* Geometry of one ggml type. */
typedef struct tsr__ggml_type_info {
    const char *name;        /* "Q4_K", as ggml and gguf-py spell it          */
    uint32_t block_elems;    /* elements per block (1 for plain types)        */
    uint32_t block_bytes;    /* bytes per block                               */
    /* Dequantize n elements (n a multiple of block_elems) from src to dst;
     * NULL when no reference dequantizer exists (Q8_1, Q8_K, TQ*, I*). */
    void (*dequantize_row)(const void *src, float *dst, int64_t n);
    /* Round-to-nearest quantizer as ggml's quantize_row_*_ref, or NULL. */
    void (*quantize_row)(const float *src, void *dst, int64_t n);
} tsr__ggml_type_info;

/* The type's description, or NULL for an unknown/removed type number. */
const tsr__ggml_type_info *tsr__ggml_type(uint32_t ggml_type);

/* Bytes of a row of n elements; 0 if the type is unknown or n is not a
 * multiple of its block size. */
size_t tsr__ggml_row_bytes(uint32_t ggml_type, int64_t n);

/* The tsr_dtype for a ggml type: plain types map to TSR_DTYPE_F32/F16/BF16/
 * I8/I16/I32/I64/F64, block types to TSR_DTYPE_GGML(type); -1 if unknown. */
int tsr__ggml_to_dtype(uint32_t ggml_type);

/* Dequantize n elements of a ggml type.  TSR_ERR_UNSUPPORTED (with a
 * sentence) for a type without a dequantizer, TSR_ERR_INVALID_ARG if n is
 * not a multiple of the block size. */
tsr_status tsr__ggml_dequantize(uint32_t ggml_type, const void *src, float *dst, int64_t n);

/* The reference dequantizers, n a multiple of the block size. */
void tsr__dequantize_row_f32(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_f16(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_bf16(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_q4_0(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_q4_1(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_q5_0(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_q5_1(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_q8_0(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_q2_k(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_q3_k(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_q4_k(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_q5_k(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_q6_k(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_iq1_s(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_iq1_m(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_iq2_xxs(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_iq2_xs(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_iq2_s(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_iq3_xxs(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_iq3_s(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_iq4_nl(const void *src, float *dst, int64_t n);
void tsr__dequantize_row_iq4_xs(const void *src, float *dst, int64_t n);

/* Round-to-nearest quantizers (ggml's quantize_row_*_ref), n a multiple of 32. */
void tsr__quantize_row_q4_0(const float *src, void *dst, int64_t n);
void tsr__quantize_row_q4_1(const float *src, void *dst, int64_t n);
void tsr__quantize_row_q5_0(const float *src, void *dst, int64_t n);
void tsr__quantize_row_q5_1(const float *src, void *dst, int64_t n);
void tsr__quantize_row_q8_0(const float *src, void *dst, int64_t n);

#endif /* TESSERA_GGML_BLOCKS_H */
