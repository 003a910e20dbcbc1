/* quantizers/hqq/hqq_internal.h - shared between the HQQ plugin's files.
 *
 * Vocabulary (hqq/core/quantize.py): a weight W [N out][K in] is flattened
 * row-major (f = n*K + k) and reshaped for grouping: axis 1 -> [numel/gs, gs]
 * (a group is a row: f / gs), axis 0 -> [gs, C = numel/gs] (a group is a
 * column: f % C).  W_q is that reshaped matrix packed along its first dim. */
#ifndef TESSERA_QUANT_HQQ_INTERNAL_H
#define TESSERA_QUANT_HQQ_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* hqq's optimize_weights_proximal_legacy defaults (opt_params). */
typedef struct hqq_opt_params {
    double lp_norm;   /* 0.7  */
    double beta;      /* 1e1  */
    double kappa;     /* 1.01 */
    int iters;        /* 20   */
} hqq_opt_params;

/* Quantize numel floats w (flattened [N][K]) in hqq's groups.
 * codes[numel] (one byte per element, flat order), scale[G] (hqq's stored
 * scale, i.e. 1/s), zero[G]; G = numel / group_size.  All float32, in
 * hqq's CPU arithmetic order (Quantizer.quantize + the proximal solver).
 * Returns 0, or -1 if out of memory (no allocation leaks). */
int hqq__quantize(const float *w, int64_t numel, int nbits, int64_t group_size, int axis,
                  int optimize, int round_zero, const hqq_opt_params *op,
                  uint8_t *codes, float *scale, float *zero);

/* hqq's BitPack: rows x cols codes (the reshaped matrix, row-major) <-> W_q.
 * Packed rows: 8bit_u8 rows, 4bit_u8 rows/2, 2bit_u8 rows/4, 1bit_u8
 * rows/8 (uint8), 3bit_32 ceil(rows/10) (int32, rows zero-padded to a
 * multiple of 10).  Returns the packed byte count, 0 if rows do not divide. */
size_t hqq__packed_bytes(int nbits, int64_t rows, int64_t cols);
int64_t hqq__packed_rows(int nbits, int64_t rows);
void hqq__pack(int nbits, const uint8_t *codes, int64_t rows, int64_t cols, void *out);
void hqq__unpack(int nbits, const void *packed, int64_t rows, int64_t cols, uint8_t *codes);

#endif
