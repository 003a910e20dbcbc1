/* backends/cpu/kernels/lowbit.h - inner kernels of the cpu backend for the
 * quantizer weight formats of tessera/plugin/formats.h: TSR_DTYPE_INT_GROUP
 * (GPTQ, AWQ, HQQ) in its common layout (axis 1, groups along K, no g_idx,
 * codes of 1, 2, 3, 4 or 8 bits) and TSR_DTYPE_CODEBOOK4 (bitsandbytes
 * NF4/FP4).  One table per instruction set, like kernels.h; the plain-C
 * table is the reference the others are tested against
 * (tests/kernels/cpu_lowbit_kernels.c), and core/formats.c's
 * tsr__dequantize_row the ground truth of both.  kernels/matmul-lowbit.c
 * drives them (decode: dot products straight from the codes; prefill:
 * blocks of rows dequantized to f32 for gemm_f32). */
#ifndef TESSERA_CPU_LOWBIT_H
#define TESSERA_CPU_LOWBIT_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Most activation rows one dot call takes. */
#define CPU_LOWBIT_MAX_NX 4

typedef struct cpu_lowbit_kernels {
    const char *isa;                 /* "c", "avx2" */
    /* INT_GROUP row (axis 1, no g_idx): codes q of `bits` (1, 2, 3, 4, 8)
     * bit-packed little-endian from bit 0 of q; group g = k / gs (gs a
     * multiple of 8) has scale[g], zero[g] (pointers to the row's first
     * group).  out[m] = sum_k (q[k] - zero[g]) * scale[g] * x[m*ldx + k]
     * for m < nx (1..CPU_LOWBIT_MAX_NX), k < K. */
    void (*dot_int_group)(const uint8_t *q, int bits, int64_t K, int64_t gs, const float *scale,
                          const float *zero, const float *x, size_t ldx, int nx, float *out);
    /* dst[i] = (q[k0+i] - zero[g]) * scale[g], g = (k0+i) / gs, i < n;
     * k0 a multiple of 8. */
    void (*deq_int_group)(const uint8_t *q, int bits, int64_t k0, int64_t n, int64_t gs,
                          const float *scale, const float *zero, float *dst);
    /* CODEBOOK4 row of K codes (K a multiple of 8) whose first element has
     * flattened index f0 (a multiple of 8): q points at the row's first
     * byte, code c(k) in the high nibble of q[k/2] for even k, the low one
     * for odd k; w[k] = code[c(k)] * absmax[(f0+k) / bs] (bs a multiple of
     * 8; absmax is the whole weight's array).  out[m] as above. */
    void (*dot_codebook4)(const uint8_t *q, int64_t K, int64_t f0, int64_t bs, const float *code,
                          const float *absmax, const float *x, size_t ldx, int nx, float *out);
    /* dst[i] = w[k0+i] for i < n (k0 a multiple of 8). */
    void (*deq_codebook4)(const uint8_t *q, int64_t k0, int64_t n, int64_t f0, int64_t bs,
                          const float *code, const float *absmax, float *dst);
} cpu_lowbit_kernels;

/* bitsandbytes' 16-bit compute (tsr_fmt_codebook4.compute_dtype): v
 * rounded to the nearest float16 (dt 1 = TSR_DTYPE_F16) or bfloat16 (dt 2 =
 * TSR_DTYPE_BF16) value, ties to even, overflow to infinity, as torch's
 * .to(); any other dt (0 = TSR_DTYPE_F32): v unchanged. */
static inline float cpu_round_to(uint32_t dt, float v)
{
    uint32_t x;
    memcpy(&x, &v, 4);
    uint32_t ax = x & 0x7fffffffu;
    if ((dt != 1 && dt != 2) || ax >= 0x7f800000u) /* f32, inf, nan */
        return v;
    if (dt == 2) {
        x += 0x7fffu + ((x >> 16) & 1u);
        x &= 0xffff0000u;
    } else if (ax >= 0x477ff000u) { /* rounds to >= 65520: infinity */
        x = (x & 0x80000000u) | 0x7f800000u;
    } else if (ax < 0x38800000u) {  /* float16 subnormal: a multiple of 2^-24 */
        return nearbyintf(v * 16777216.0f) * (1.0f / 16777216.0f);
    } else {
        x += 0xfffu + ((x >> 13) & 1u);
        x &= ~0x1fffu;
    }
    memcpy(&v, &x, 4);
    return v;
}

static inline void cpu_round_row(uint32_t dt, float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = cpu_round_to(dt, v[i]);
}

extern const cpu_lowbit_kernels cpu_lowbit_c;
#ifdef TESSERA_CPU_HAVE_AVX2
extern const cpu_lowbit_kernels cpu_lowbit_avx2;
#endif

/* The table for a named ISA if this machine runs it ("c", "avx2"), else
 * NULL. */
const cpu_lowbit_kernels *cpu_lowbit_get(const char *isa);
/* The table to go with the main kernel table of ISA `main_isa`: the C one
 * when that is "c" (TESSERA_CPU_ISA=c), else the best this machine runs
 * (detected once; thread-safe). */
const cpu_lowbit_kernels *cpu_lowbit_select(const char *main_isa);
#endif
