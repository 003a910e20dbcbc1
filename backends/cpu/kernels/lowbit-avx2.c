/* backends/cpu/kernels/lowbit-avx2.c - the low-bit kernels (lowbit.h) with
 * AVX2 + FMA: eight codes at a time are spread over the lanes of a vector
 * by one broadcast and a per-lane variable shift (8-bit codes: a byte
 * widening), converted to float, shifted by the group's zero and multiplied
 * with the activations; a group's sum is scaled once.  The 4-bit code book
 * is two 8-entry permutes and a blend.  Compiled with -mavx2 -mfma -mf16c
 * only; chosen at run time (lowbit-c.c). */
#include <immintrin.h>
#include <string.h>
#include "lowbit.h"
#include "simd-avx2.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE uint32_t code_at(const uint8_t *q, int bits, int64_t k)
{
    int64_t bit = k * bits;
    uint32_t off = (uint32_t)(bit & 7), v = q[bit >> 3] >> off;
    if (off + (uint32_t)bits > 8)
        v |= (uint32_t)q[(bit >> 3) + 1] << (8 - off);
    return v & ((1u << bits) - 1u);
}

static ALWAYS_INLINE uint32_t nibble_at(const uint8_t *q, int64_t k)
{
    return (k & 1) ? (q[k >> 1] & 15u) : (q[k >> 1] >> 4);
}

/* codes k .. k+7 (k a multiple of 8) as int32 lanes; `bits` a constant
 * after inlining, sh = {0, bits, 2*bits, ...}, mask = 2^bits - 1 */
static ALWAYS_INLINE __m256i codes8(const uint8_t *q, int bits, int64_t k, __m256i sh, __m256i mask)
{
    if (bits == 8)
        return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(q + k)));
    /* 8 codes fill `bits` bytes; read them into a register whole (bytes
     * stored one by one into a word on the stack would stall the load
     * that follows them) */
    const uint8_t *p = q + ((k * bits) >> 3);
    uint32_t v;
    if (bits == 4) {
        memcpy(&v, p, 4);
    } else if (bits >= 2) {
        uint16_t lo;
        memcpy(&lo, p, 2);
        v = bits == 3 ? (uint32_t)lo | (uint32_t)p[2] << 16 : lo;
    } else {
        v = p[0];
    }
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)v), sh), mask);
}

static ALWAYS_INLINE void dot_ig(const uint8_t *q, const int bits, int64_t K, int64_t gs,
                                 const float *scale, const float *zero, const float *x, size_t ldx,
                                 const int nx, float *out)
{
    const __m256i sh = _mm256_setr_epi32(0, bits, 2 * bits, 3 * bits, 4 * bits, 5 * bits, 6 * bits,
                                         7 * bits);
    const __m256i mask = _mm256_set1_epi32((1 << bits) - 1);
    __m256 tot[CPU_LOWBIT_MAX_NX];
    float tail[CPU_LOWBIT_MAX_NX];
    for (int m = 0; m < nx; m++) {
        tot[m] = _mm256_setzero_ps();
        tail[m] = 0.0f;
    }
    int64_t K8 = K & ~(int64_t)7;
    for (int64_t k0 = 0, g = 0; k0 < K; k0 += gs, g++) {
        int64_t k1 = k0 + gs < K ? k0 + gs : K, kv = k1 < K8 ? k1 : K8, k = k0;
        const __m256 z = _mm256_set1_ps(zero[g]);
        __m256 a0[CPU_LOWBIT_MAX_NX], a1[CPU_LOWBIT_MAX_NX];
        for (int m = 0; m < nx; m++)
            a0[m] = a1[m] = _mm256_setzero_ps();
        for (; k + 16 <= kv; k += 16) {
            __m256 w0 = _mm256_sub_ps(_mm256_cvtepi32_ps(codes8(q, bits, k, sh, mask)), z);
            __m256 w1 = _mm256_sub_ps(_mm256_cvtepi32_ps(codes8(q, bits, k + 8, sh, mask)), z);
            for (int m = 0; m < nx; m++) {
                const float *xm = x + (size_t)m * ldx + (size_t)k;
                a0[m] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xm), a0[m]);
                a1[m] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xm + 8), a1[m]);
            }
        }
        for (; k < kv; k += 8) {
            __m256 w0 = _mm256_sub_ps(_mm256_cvtepi32_ps(codes8(q, bits, k, sh, mask)), z);
            for (int m = 0; m < nx; m++)
                a0[m] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + (size_t)m * ldx + (size_t)k), a0[m]);
        }
        const __m256 s = _mm256_set1_ps(scale[g]);
        for (int m = 0; m < nx; m++)
            tot[m] = _mm256_fmadd_ps(_mm256_add_ps(a0[m], a1[m]), s, tot[m]);
        for (; k < k1; k++) { /* the last < 8 values of the row */
            float w = ((float)code_at(q, bits, k) - zero[g]) * scale[g];
            for (int m = 0; m < nx; m++)
                tail[m] += w * x[(size_t)m * ldx + (size_t)k];
        }
    }
    for (int m = 0; m < nx; m++)
        out[m] = hsum8(tot[m]) + tail[m];
}

#define DOT_IG_NX(bits)                                                        \
    switch (nx) {                                                              \
    case 1: dot_ig(q, bits, K, gs, scale, zero, x, ldx, 1, out); return;       \
    case 2: dot_ig(q, bits, K, gs, scale, zero, x, ldx, 2, out); return;       \
    case 3: dot_ig(q, bits, K, gs, scale, zero, x, ldx, 3, out); return;       \
    default: dot_ig(q, bits, K, gs, scale, zero, x, ldx, 4, out); return;      \
    }

static void dot_int_group_avx2(const uint8_t *q, int bits, int64_t K, int64_t gs, const float *scale,
                               const float *zero, const float *x, size_t ldx, int nx, float *out)
{
    switch (bits) {
    case 1: DOT_IG_NX(1)
    case 2: DOT_IG_NX(2)
    case 3: DOT_IG_NX(3)
    case 4: DOT_IG_NX(4)
    default: DOT_IG_NX(8)
    }
}

static ALWAYS_INLINE void deq_ig(const uint8_t *q, const int bits, int64_t k0, int64_t n, int64_t gs,
                                 const float *scale, const float *zero, float *dst)
{
    const __m256i sh = _mm256_setr_epi32(0, bits, 2 * bits, 3 * bits, 4 * bits, 5 * bits, 6 * bits,
                                         7 * bits);
    const __m256i mask = _mm256_set1_epi32((1 << bits) - 1);
    int64_t end = k0 + n, k = k0;
    while (k + 8 <= end) {
        int64_t g = k / gs, ge = (g + 1) * gs;
        if (ge > end)
            ge = end;
        const __m256 z = _mm256_set1_ps(zero[g]), s = _mm256_set1_ps(scale[g]);
        for (; k + 8 <= ge; k += 8) {
            __m256 w = _mm256_sub_ps(_mm256_cvtepi32_ps(codes8(q, bits, k, sh, mask)), z);
            _mm256_storeu_ps(dst + (k - k0), _mm256_mul_ps(w, s));
        }
        if (k < ge)
            break; /* fewer than 8 left */
    }
    for (; k < end; k++) {
        int64_t g = k / gs;
        dst[k - k0] = ((float)code_at(q, bits, k) - zero[g]) * scale[g];
    }
}

static void deq_int_group_avx2(const uint8_t *q, int bits, int64_t k0, int64_t n, int64_t gs,
                               const float *scale, const float *zero, float *dst)
{
    switch (bits) {
    case 1: deq_ig(q, 1, k0, n, gs, scale, zero, dst); return;
    case 2: deq_ig(q, 2, k0, n, gs, scale, zero, dst); return;
    case 3: deq_ig(q, 3, k0, n, gs, scale, zero, dst); return;
    case 4: deq_ig(q, 4, k0, n, gs, scale, zero, dst); return;
    default: deq_ig(q, 8, k0, n, gs, scale, zero, dst); return;
    }
}

/* code-book values of nibbles k .. k+7 (k a multiple of 8; the even
 * element in the high nibble) */
static ALWAYS_INLINE __m256 cb8(const uint8_t *q, int64_t k, __m256 lo, __m256 hi, __m256i sh)
{
    uint32_t v;
    memcpy(&v, q + (k >> 1), 4);
    __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)v), sh),
                                   _mm256_set1_epi32(15));
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, idx), _mm256_permutevar8x32_ps(hi, idx),
                            _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

static ALWAYS_INLINE void dot_cb(const uint8_t *q, int64_t K, int64_t f0, int64_t bs,
                                 const float *code, const float *absmax, const float *x, size_t ldx,
                                 const int nx, float *out)
{
    const __m256 lo = _mm256_loadu_ps(code), hi = _mm256_loadu_ps(code + 8);
    const __m256i sh = _mm256_setr_epi32(4, 0, 12, 8, 20, 16, 28, 24);
    __m256 tot[CPU_LOWBIT_MAX_NX];
    for (int m = 0; m < nx; m++)
        tot[m] = _mm256_setzero_ps();
    int64_t K8 = K & ~(int64_t)7;
    float tail[CPU_LOWBIT_MAX_NX] = {0};
    for (int64_t k = 0; k < K;) {
        int64_t b = (f0 + k) / bs, k1 = (b + 1) * bs - f0;
        if (k1 > K)
            k1 = K;
        int64_t kv = k1 < K8 ? k1 : K8;
        __m256 a0[CPU_LOWBIT_MAX_NX], a1[CPU_LOWBIT_MAX_NX];
        for (int m = 0; m < nx; m++)
            a0[m] = a1[m] = _mm256_setzero_ps();
        for (; k + 16 <= kv; k += 16) {
            __m256 w0 = cb8(q, k, lo, hi, sh), w1 = cb8(q, k + 8, lo, hi, sh);
            for (int m = 0; m < nx; m++) {
                const float *xm = x + (size_t)m * ldx + (size_t)k;
                a0[m] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xm), a0[m]);
                a1[m] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xm + 8), a1[m]);
            }
        }
        for (; k < kv; k += 8) {
            __m256 w0 = cb8(q, k, lo, hi, sh);
            for (int m = 0; m < nx; m++)
                a0[m] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + (size_t)m * ldx + (size_t)k), a0[m]);
        }
        const __m256 s = _mm256_set1_ps(absmax[b]);
        for (int m = 0; m < nx; m++)
            tot[m] = _mm256_fmadd_ps(_mm256_add_ps(a0[m], a1[m]), s, tot[m]);
        for (; k < k1; k++) {
            float w = code[nibble_at(q, k)] * absmax[b];
            for (int m = 0; m < nx; m++)
                tail[m] += w * x[(size_t)m * ldx + (size_t)k];
        }
    }
    for (int m = 0; m < nx; m++)
        out[m] = hsum8(tot[m]) + tail[m];
}

static void dot_codebook4_avx2(const uint8_t *q, int64_t K, int64_t f0, int64_t bs, const float *code,
                               const float *absmax, const float *x, size_t ldx, int nx, float *out)
{
    switch (nx) {
    case 1: dot_cb(q, K, f0, bs, code, absmax, x, ldx, 1, out); return;
    case 2: dot_cb(q, K, f0, bs, code, absmax, x, ldx, 2, out); return;
    case 3: dot_cb(q, K, f0, bs, code, absmax, x, ldx, 3, out); return;
    default: dot_cb(q, K, f0, bs, code, absmax, x, ldx, 4, out); return;
    }
}

static void deq_codebook4_avx2(const uint8_t *q, int64_t k0, int64_t n, int64_t f0, int64_t bs,
                               const float *code, const float *absmax, float *dst)
{
    const __m256 lo = _mm256_loadu_ps(code), hi = _mm256_loadu_ps(code + 8);
    const __m256i sh = _mm256_setr_epi32(4, 0, 12, 8, 20, 16, 28, 24);
    int64_t end = k0 + n, k = k0;
    while (k + 8 <= end) {
        int64_t b = (f0 + k) / bs, be = (b + 1) * bs - f0;
        if (be > end)
            be = end;
        const __m256 s = _mm256_set1_ps(absmax[b]);
        for (; k + 8 <= be; k += 8)
            _mm256_storeu_ps(dst + (k - k0), _mm256_mul_ps(cb8(q, k, lo, hi, sh), s));
        if (k < be)
            break;
    }
    for (; k < end; k++)
        dst[k - k0] = code[nibble_at(q, k)] * absmax[(f0 + k) / bs];
}

const cpu_lowbit_kernels cpu_lowbit_avx2 = {
    .isa = "avx2",
    .dot_int_group = dot_int_group_avx2,
    .deq_int_group = deq_int_group_avx2,
    .dot_codebook4 = dot_codebook4_avx2,
    .deq_codebook4 = deq_codebook4_avx2,
};
