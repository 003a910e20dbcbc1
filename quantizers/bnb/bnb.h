/* quantizers/bnb/bnb.h - internals of the bitsandbytes quantizer plugin. */
#ifndef TESSERA_QUANT_BNB_H
#define TESSERA_QUANT_BNB_H
#include <tessera/plugin/plugin.h>

enum { BNB_FP4 = 0, BNB_NF4 = 1 };

extern const float bnb_nf4_code[16];
/* The 4-bit table of quant_type (BNB_NF4 / BNB_FP4), in code order. */
void bnb_code4(int quant_type, float code[16]);
/* bitsandbytes' signed 8-bit dynamic map (create_dynamic_map()), sorted. */
void bnb_dynamic_map(float code[256]);
/* 4-bit blockwise quantization of x[0..n) (row-major flattened weight):
 * packed[(n+1)/2] (even index in the high nibble), absmax[ceil(n/bs)]. */
void bnb_quantize4(int quant_type, const float *x, int64_t n, int64_t blocksize,
                   uint8_t *packed, float *absmax);
/* 8-bit blockwise quantization with a 256-entry code (nested absmax). */
void bnb_quantize8(const float code[256], const float *x, int64_t n, int64_t blocksize,
                   uint8_t *q, float *absmax);
/* LLM.int8 quantization of one float16-valued row; returns SCB (absmax). */
float bnb_quantize_row8(const float *x16, int64_t K, int8_t *q);
#endif
