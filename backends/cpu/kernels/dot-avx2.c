/* backends/cpu/kernels/dot-avx2.c - AVX2 + FMA + F16C versions of the inner
 * kernels (kernels.h).  The only file of the backend compiled with
 * -mavx2 -mfma -mf16c; it is called only when cpu_features_detect() found
 * all three (and the OS saves the YMM state). */
#include <immintrin.h>
#include <math.h>
#include "kernels.h"
#include "simd-avx2.h"

/* f16 scale of a block, converted by F16C (the C helper is bit-twiddling) */
static inline float ld16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline __m256 load_f16x8(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __m256 load_bf16x8(const uint16_t *p)
{
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

#define DOT_BODY(LOAD)                                                                             \
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                  \
    int64_t i = 0;                                                                               \
    for (; i + 32 <= n; i += 32) {                                                               \
        a0 = _mm256_fmadd_ps(LOAD(w + i), _mm256_loadu_ps(x + i), a0);                           \
        a1 = _mm256_fmadd_ps(LOAD(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);                   \
        a2 = _mm256_fmadd_ps(LOAD(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);                 \
        a3 = _mm256_fmadd_ps(LOAD(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);                 \
    }                                                                                            \
    for (; i + 8 <= n; i += 8)                                                                   \
        a0 = _mm256_fmadd_ps(LOAD(w + i), _mm256_loadu_ps(x + i), a0);                           \
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));

static float dot_f32_avx2(const float *w, const float *x, int64_t n)
{
    DOT_BODY(_mm256_loadu_ps)
    for (; i < n; i++)
        s += w[i] * x[i];
    return s;
}

static float dot_f16_avx2(const uint16_t *w, const float *x, int64_t n)
{
    DOT_BODY(load_f16x8)
    for (; i < n; i++)
        s += _cvtsh_ss(w[i]) * x[i];
    return s;
}

static float dot_bf16_avx2(const uint16_t *w, const float *x, int64_t n)
{
    DOT_BODY(load_bf16x8)
    for (; i < n; i++)
        s += cpu_bf16_to_f32(w[i]) * x[i];
    return s;
}

static void f16_to_f32_avx2(const uint16_t *s, float *d, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, load_f16x8(s + i));
    for (; i < n; i++)
        d[i] = _cvtsh_ss(s[i]);
}

static void bf16_to_f32_avx2(const uint16_t *s, float *d, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, load_bf16x8(s + i));
    for (; i < n; i++)
        d[i] = cpu_bf16_to_f32(s[i]);
}

/* 4 weight rows x 3 activation rows per tile: 12 accumulators, 7 loads
 * per 12 FMAs. */
static inline void tile4x3(const float *w, size_t ldw, const float *x, size_t ldx, int64_t K,
                           float *y, size_t ldy, int add)
{
    __m256 c[4][3];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            c[i][j] = _mm256_setzero_ps();
    const float *w0 = w, *w1 = w + ldw, *w2 = w + 2 * ldw, *w3 = w + 3 * ldw;
    const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 b0 = _mm256_loadu_ps(x0 + k), b1 = _mm256_loadu_ps(x1 + k),
               b2 = _mm256_loadu_ps(x2 + k);
        __m256 a = _mm256_loadu_ps(w0 + k);
        c[0][0] = _mm256_fmadd_ps(a, b0, c[0][0]);
        c[0][1] = _mm256_fmadd_ps(a, b1, c[0][1]);
        c[0][2] = _mm256_fmadd_ps(a, b2, c[0][2]);
        a = _mm256_loadu_ps(w1 + k);
        c[1][0] = _mm256_fmadd_ps(a, b0, c[1][0]);
        c[1][1] = _mm256_fmadd_ps(a, b1, c[1][1]);
        c[1][2] = _mm256_fmadd_ps(a, b2, c[1][2]);
        a = _mm256_loadu_ps(w2 + k);
        c[2][0] = _mm256_fmadd_ps(a, b0, c[2][0]);
        c[2][1] = _mm256_fmadd_ps(a, b1, c[2][1]);
        c[2][2] = _mm256_fmadd_ps(a, b2, c[2][2]);
        a = _mm256_loadu_ps(w3 + k);
        c[3][0] = _mm256_fmadd_ps(a, b0, c[3][0]);
        c[3][1] = _mm256_fmadd_ps(a, b1, c[3][1]);
        c[3][2] = _mm256_fmadd_ps(a, b2, c[3][2]);
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) {
            float s = hsum8(c[i][j]);
            for (int64_t t = k; t < K; t++)
                s += w[(size_t)i * ldw + (size_t)t] * x[(size_t)j * ldx + (size_t)t];
            y[(size_t)j * ldy + (size_t)i] = add ? y[(size_t)j * ldy + (size_t)i] + s : s;
        }
}

static inline void gemm_f32_impl(const float *w, size_t ldw, int nw, const float *x, size_t ldx,
                                 int nx, int64_t K, float *y, size_t ldy, int add)
{
    int j = 0;
    for (; j + 3 <= nx; j += 3) {
        int i = 0;
        for (; i + 4 <= nw; i += 4)
            tile4x3(w + (size_t)i * ldw, ldw, x + (size_t)j * ldx, ldx, K,
                    y + (size_t)j * ldy + (size_t)i, ldy, add);
        for (; i < nw; i++)
            for (int jj = j; jj < j + 3; jj++) {
                float v = dot_f32_avx2(w + (size_t)i * ldw, x + (size_t)jj * ldx, K);
                y[(size_t)jj * ldy + (size_t)i] = add ? y[(size_t)jj * ldy + (size_t)i] + v : v;
            }
    }
    for (; j < nx; j++)
        for (int i = 0; i < nw; i++) {
            float v = dot_f32_avx2(w + (size_t)i * ldw, x + (size_t)j * ldx, K);
            y[(size_t)j * ldy + (size_t)i] = add ? y[(size_t)j * ldy + (size_t)i] + v : v;
        }
}

void cpu_gemm_f32_avx2(const float *w, size_t ldw, int nw, const float *x, size_t ldx, int nx,
                       int64_t K, float *y, size_t ldy)
{
    gemm_f32_impl(w, ldw, nw, x, ldx, nx, K, y, ldy, 0);
}

static void gemm_f32_acc_avx2(const float *w, size_t ldw, int nw, const float *x, size_t ldx,
                              int nx, int64_t K, float *y, size_t ldy)
{
    gemm_f32_impl(w, ldw, nw, x, ldx, nx, K, y, ldy, 1);
}

static void quant_q8_avx2(const float *x, cpu_q8 *q, int64_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / CPU_QK; b++, x += CPU_QK) {
        __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8), v2 = _mm256_loadu_ps(x + 16),
               v3 = _mm256_loadu_ps(x + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        float amax = hmax8(m);
        float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
        __m256 mul = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, mul));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, mul));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, mul));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, mul));
        __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        /* pack 32-bit -> 16 -> 8 and undo the lane interleaving */
        __m256i p01 = _mm256_packs_epi32(i0, i1), p23 = _mm256_packs_epi32(i2, i3);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)q[b].qs, p);
        q[b].d = d;
        q[b].s = d * (float)_mm_cvtsi128_si32(s4);
    }
}

/* sum of 32 products of signed bytes, as 8 int32 lanes */
static inline __m256i mul_sum_i8(__m256i a, __m256i b)
{
    __m256i ax = _mm256_sign_epi8(a, a), sb = _mm256_sign_epi8(b, a);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sb), _mm256_set1_epi16(1));
}

static float dot_q8_0_avx2(const void *wv, const cpu_q8 *x, int64_t n)
{
    const uint8_t *w = wv;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    int64_t nb = n / 32, b = 0;
    for (; b + 2 <= nb; b += 2, w += 68) {
        __m256i p0 = mul_sum_i8(_mm256_loadu_si256((const __m256i *)(w + 2)),
                                _mm256_loadu_si256((const __m256i *)x[b].qs));
        __m256i p1 = mul_sum_i8(_mm256_loadu_si256((const __m256i *)(w + 36)),
                                _mm256_loadu_si256((const __m256i *)x[b + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(ld16(w) * x[b].d), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(ld16(w + 34) * x[b + 1].d),
                               _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; b < nb; b++, w += 34) {
        __m256i p0 = mul_sum_i8(_mm256_loadu_si256((const __m256i *)(w + 2)),
                                _mm256_loadu_si256((const __m256i *)x[b].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(ld16(w) * x[b].d), _mm256_cvtepi32_ps(p0), acc0);
    }
    return hsum8(_mm256_add_ps(acc0, acc1));
}

static inline __m256i q4_0_bytes(const uint8_t *qs)
{
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    __m128i lo = _mm_and_si128(v, _mm_set1_epi8(0xF));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0xF));
    return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
}

static float dot_q4_0_avx2(const void *wv, const cpu_q8 *x, int64_t n)
{
    const uint8_t *w = wv;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    int64_t nb = n / 32, b = 0;
    for (; b + 2 <= nb; b += 2, w += 36) {
        __m256i p0 = mul_sum_i8(q4_0_bytes(w + 2), _mm256_loadu_si256((const __m256i *)x[b].qs));
        __m256i p1 = mul_sum_i8(q4_0_bytes(w + 20), _mm256_loadu_si256((const __m256i *)x[b + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(ld16(w) * x[b].d), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(ld16(w + 18) * x[b + 1].d),
                               _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; b < nb; b++, w += 18) {
        __m256i p0 = mul_sum_i8(q4_0_bytes(w + 2), _mm256_loadu_si256((const __m256i *)x[b].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(ld16(w) * x[b].d), _mm256_cvtepi32_ps(p0), acc0);
    }
    return hsum8(_mm256_add_ps(acc0, acc1));
}

static float dot_q4_k_avx2(const void *wv, const cpu_q8 *x, int64_t n)
{
    const uint8_t *w = wv;
    const __m256i m4 = _mm256_set1_epi8(0xF), ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (int64_t b = 0; b < n / 256; b++, w += 144, x += 8) {
        float d = ld16(w), dmin = ld16(w + 2);
        const uint8_t *qs = w + 16;
        for (int j = 0; j < 4; j++) {
            int sc0, m0, sc1, m1;
            cpu_q4k_scale_min(w + 4, 2 * j, &sc0, &m0);
            cpu_q4k_scale_min(w + 4, 2 * j + 1, &sc1, &m1);
            __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
            __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            __m256i p0 = _mm256_madd_epi16(
                _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)x[2 * j].qs)), ones);
            __m256i p1 = _mm256_madd_epi16(
                _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)x[2 * j + 1].qs)), ones);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)sc0 * x[2 * j].d), _mm256_cvtepi32_ps(p0), acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)sc1 * x[2 * j + 1].d),
                                  _mm256_cvtepi32_ps(p1), acc);
            mins += dmin * ((float)m0 * x[2 * j].s + (float)m1 * x[2 * j + 1].s);
        }
    }
    return hsum8(acc) - mins;
}

/* ---- multi-row, multi-token tiles (decode: one token; prefill: RN tokens)
 * RM weight rows x RN activation rows share every loaded block: the weight
 * block is unpacked once per row and meets RN activation blocks, each
 * activation block is loaded once per tile step for RM rows.  RM and RN are
 * compile-time constants at each call site (always_inline + unrolled
 * loops), so the accumulators live in registers. */
#define AI static inline __attribute__((always_inline))

/* Q4_0: nibbles q in 0..15 are used unsigned in maddubs, and the -8 offset
 * becomes one subtraction of maddubs(8, x) per activation block, shared by
 * the RM rows (no sign tricks per row). */
AI void q4_0_tile(const uint8_t *w, size_t ldw, const cpu_q8 *x, size_t ldx, int64_t nb, float *y,
                  size_t ldy, const int RM, const int RN)
{
    __m256 acc[4][3];
    for (int r = 0; r < RM; r++)
        for (int t = 0; t < RN; t++)
            acc[r][t] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0xF), ones = _mm256_set1_epi16(1), eight = _mm256_set1_epi8(8);
    for (int64_t b = 0; b < nb; b++) {
        __m256i xv[3], c16[3];
        for (int t = 0; t < RN; t++) {
            xv[t] = _mm256_loadu_si256((const __m256i *)x[(size_t)t * ldx + (size_t)b].qs);
            c16[t] = _mm256_maddubs_epi16(eight, xv[t]);
        }
        for (int r = 0; r < RM; r++) {
            const uint8_t *wb = w + (size_t)r * ldw + (size_t)b * 18;
            __m128i v = _mm_loadu_si128((const __m128i *)(wb + 2));
            __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), m4);
            __m256 dw = _mm256_set1_ps(ld16(wb));
            for (int t = 0; t < RN; t++) {
                __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, xv[t]), c16[t]);
                __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
                __m256 sc = _mm256_mul_ps(dw, _mm256_broadcast_ss(&x[(size_t)t * ldx + (size_t)b].d));
                acc[r][t] = _mm256_fmadd_ps(f, sc, acc[r][t]);
            }
        }
    }
    for (int r = 0; r < RM; r++)
        for (int t = 0; t < RN; t++)
            y[(size_t)t * ldy + (size_t)r] = hsum8(acc[r][t]);
}

/* Q8_0: signed x signed through the sign trick (|w| unsigned, x takes w's
 * sign); |w| is computed once per row block. */
AI void q8_0_tile(const uint8_t *w, size_t ldw, const cpu_q8 *x, size_t ldx, int64_t nb, float *y,
                  size_t ldy, const int RM, const int RN)
{
    __m256 acc[4][3];
    for (int r = 0; r < RM; r++)
        for (int t = 0; t < RN; t++)
            acc[r][t] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b++) {
        __m256i xv[3];
        for (int t = 0; t < RN; t++)
            xv[t] = _mm256_loadu_si256((const __m256i *)x[(size_t)t * ldx + (size_t)b].qs);
        for (int r = 0; r < RM; r++) {
            const uint8_t *wb = w + (size_t)r * ldw + (size_t)b * 34;
            __m256i q = _mm256_loadu_si256((const __m256i *)(wb + 2));
            __m256i aq = _mm256_sign_epi8(q, q);
            __m256 dw = _mm256_set1_ps(ld16(wb));
            for (int t = 0; t < RN; t++) {
                __m256i p = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(xv[t], q));
                __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
                __m256 sc = _mm256_mul_ps(dw, _mm256_broadcast_ss(&x[(size_t)t * ldx + (size_t)b].d));
                acc[r][t] = _mm256_fmadd_ps(f, sc, acc[r][t]);
            }
        }
    }
    for (int r = 0; r < RM; r++)
        for (int t = 0; t < RN; t++)
            y[(size_t)t * ldy + (size_t)r] = hsum8(acc[r][t]);
}

/* Q4_K with q8_K activations (one scale per 256): the 6-bit sub-block
 * scales multiply the int16 pair sums inside madd, so a whole super-block
 * is one int32 vector per (row, token); the mins meet the activation block
 * sums in one more madd. */
AI void q4_k_tile(const uint8_t *w, size_t ldw, const cpu_q8k *x, size_t ldx, int64_t nb, float *y,
                  size_t ldy, const int RM, const int RN)
{
    __m256 acc[4][3];
    for (int r = 0; r < RM; r++)
        for (int t = 0; t < RN; t++)
            acc[r][t] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0xF);
    for (int64_t b = 0; b < nb; b++) {
        for (int r = 0; r < RM; r++) {
            const uint8_t *wb = w + (size_t)r * ldw + (size_t)b * 144;
            uint32_t a, bb, c;
            memcpy(&a, wb + 4, 4);
            memcpy(&bb, wb + 8, 4);
            memcpy(&c, wb + 12, 4);
            uint64_t sc = (uint64_t)(a & 0x3F3F3F3Fu) |
                          (uint64_t)((c & 0x0F0F0F0Fu) | (((a >> 6) & 0x03030303u) << 4)) << 32;
            uint64_t mn = (uint64_t)(bb & 0x3F3F3F3Fu) |
                          (uint64_t)(((c >> 4) & 0x0F0F0F0Fu) | (((bb >> 6) & 0x03030303u) << 4)) << 32;
            __m128i sc16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc));
            __m128i mn16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn));
            __m256i scv = _mm256_broadcastsi128_si256(sc16);
            __m256i isum[3];
            for (int t = 0; t < RN; t++)
                isum[t] = _mm256_setzero_si256();
            for (int j = 0; j < 4; j++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(wb + 16 + 32 * j));
                __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                __m256i slo = _mm256_shuffle_epi8(scv, _mm256_set1_epi16((short)(((4 * j + 1) << 8) | (4 * j))));
                __m256i shi = _mm256_shuffle_epi8(scv, _mm256_set1_epi16((short)(((4 * j + 3) << 8) | (4 * j + 2))));
                for (int t = 0; t < RN; t++) {
                    const int8_t *xq = x[(size_t)t * ldx + (size_t)b].qs + 64 * j;
                    __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)xq)), slo);
                    __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(xq + 32))), shi);
                    isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(p0, p1));
                }
            }
            float d = ld16(wb), dmin = ld16(wb + 2);
            for (int t = 0; t < RN; t++) {
                const cpu_q8k *xb = x + (size_t)t * ldx + (size_t)b;
                __m128i mm = _mm_madd_epi16(mn16, _mm_loadu_si128((const __m128i *)xb->bsum));
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * xb->d), acc[r][t]);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_zextsi128_si256(mm)),
                                            _mm256_set1_ps(-dmin * xb->d), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < RM; r++)
        for (int t = 0; t < RN; t++)
            y[(size_t)t * ldy + (size_t)r] = hsum8(acc[r][t]);
}

/* The block driver: RM x 3 tiles over the tokens, then the 2- or 1-token
 * remainder, rows beyond the last multiple of RM one at a time. */
#define MM_DRIVER(NAME, TILE, XT, BLK, BSZ)                                                         \
    static void NAME(const void *wv, size_t ldw, int nw, const XT *x, size_t ldx, int nx,          \
                     int64_t K, float *y, size_t ldy)                                               \
    {                                                                                              \
        const uint8_t *w = wv;                                                                     \
        int64_t nb = K / (BLK);                                                                    \
        (void)(BSZ);                                                                               \
        int j = 0;                                                                                 \
        for (; j + 3 <= nx; j += 3) {                                                              \
            int i = 0;                                                                             \
            for (; i + 4 <= nw; i += 4)                                                            \
                TILE(w + (size_t)i * ldw, ldw, x + (size_t)j * ldx, ldx, nb,                       \
                     y + (size_t)j * ldy + (size_t)i, ldy, 4, 3);                                  \
            for (; i < nw; i++)                                                                    \
                TILE(w + (size_t)i * ldw, ldw, x + (size_t)j * ldx, ldx, nb,                       \
                     y + (size_t)j * ldy + (size_t)i, ldy, 1, 3);                                  \
        }                                                                                          \
        if (nx - j == 2) {                                                                         \
            int i = 0;                                                                             \
            for (; i + 4 <= nw; i += 4)                                                            \
                TILE(w + (size_t)i * ldw, ldw, x + (size_t)j * ldx, ldx, nb,                       \
                     y + (size_t)j * ldy + (size_t)i, ldy, 4, 2);                                  \
            for (; i < nw; i++)                                                                    \
                TILE(w + (size_t)i * ldw, ldw, x + (size_t)j * ldx, ldx, nb,                       \
                     y + (size_t)j * ldy + (size_t)i, ldy, 1, 2);                                  \
        } else if (nx - j == 1) {                                                                  \
            int i = 0;                                                                             \
            for (; i + 4 <= nw; i += 4)                                                            \
                TILE(w + (size_t)i * ldw, ldw, x + (size_t)j * ldx, ldx, nb,                       \
                     y + (size_t)j * ldy + (size_t)i, ldy, 4, 1);                                  \
            for (; i < nw; i++)                                                                    \
                TILE(w + (size_t)i * ldw, ldw, x + (size_t)j * ldx, ldx, nb,                       \
                     y + (size_t)j * ldy + (size_t)i, ldy, 1, 1);                                  \
        }                                                                                          \
    }

MM_DRIVER(mm_q4_0_avx2, q4_0_tile, cpu_q8, 32, 18)
MM_DRIVER(mm_q8_0_tiles, q8_0_tile, cpu_q8, 32, 34)

/* Q8_0 decode: the single-row kernel with two independent accumulators
 * measured slightly faster than the 4-row tile (memory-bound anyway) */
static void mm_q8_0_avx2(const void *w, size_t ldw, int nw, const cpu_q8 *x, size_t ldx, int nx,
                         int64_t K, float *y, size_t ldy)
{
    if (nx == 1) {
        for (int i = 0; i < nw; i++)
            y[i] = dot_q8_0_avx2((const uint8_t *)w + (size_t)i * ldw, x, K);
        return;
    }
    mm_q8_0_tiles(w, ldw, nw, x, ldx, nx, K, y, ldy);
}
MM_DRIVER(mm_q4_k_avx2, q4_k_tile, cpu_q8k, 256, 144)

static void quant_q8k_avx2(const float *x, cpu_q8k *q, int64_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / CPU_QKK; b++, x += CPU_QKK) {
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < CPU_QKK; i += 8)
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
        float amax = hmax8(m);
        __m256 mul = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        for (int g = 0; g < 8; g++) {
            const float *xg = x + 32 * g;
            __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg), mul));
            __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + 8), mul));
            __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + 16), mul));
            __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + 24), mul));
            __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
            p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(q[b].qs + 32 * g), p);
            q[b].bsum[g] = (int16_t)_mm_cvtsi128_si32(s4);
        }
        q[b].d = amax / 127.0f;
        q[b].pad_[0] = q[b].pad_[1] = q[b].pad_[2] = 0.0f;
    }
}

/* ---- repacked weights: 8 rows per group (layouts in kernels.h) ----
 * One 32-byte chunk holds 4 consecutive values of each of the 8 rows, so a
 * broadcast of the matching 4 activation bytes meets all 8 rows in one
 * maddubs, and one madd leaves row r's sum in int32 lane r: the 8 row
 * scales then apply as one vector.  A tile is one group x T tokens; the
 * group's unpacked weights are shared by the T tokens. */
/* Decode (one token) streams each thread's groups from memory once; the
 * hardware prefetcher alone kept one core near 11 GB/s.  Prefetching 2 KiB
 * ahead raised TinyLlama tg64 (2 threads, quiet) Q4_0 41.3 -> 46.4, Q4_K
 * 40.9 -> 43.0, Q8_0 26.6 -> 27.7 tokens/s (1 KiB and 4 KiB gave less). */
#define X8_PF 2048
/* the cache lines of the block X8_PF bytes ahead of p (bytes: block size) */
static inline __attribute__((always_inline)) void x8_prefetch(const uint8_t *p, int bytes)
{
#pragma GCC unroll 32
    for (int o = 0; o < bytes; o += 64)
        _mm_prefetch((const char *)p + X8_PF + o, _MM_HINT_T0);
}

static inline __m256i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* Q4_0x8: nibbles used unsigned; the -8 offset is 8 * sum(x) per block (xs),
 * subtracted in int32.  Eight maddubs of 15 * 127 * 2 fit int16. */
AI void q4_0x8_tile(const uint8_t *w, int64_t nb, const cpu_q8 *x, const int32_t *xs, size_t ldx,
                    float *y, size_t ldy, const int T)
{
    const __m256i m4 = _mm256_set1_epi8(0xF), ones = _mm256_set1_epi16(1);
    __m256 acc[4];
    for (int t = 0; t < T; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, w += 144) {
        if (T == 1) /* decode: memory-bound, see X8_PF */
            x8_prefetch(w, 144);
        __m256i s16[4];
        for (int t = 0; t < T; t++)
            s16[t] = _mm256_setzero_si256();
        /* unrolled by 2 only: GCC unrolling the whole chunk loop spills
         * the per-token sums (measured: 71 -> 85 GMAC/s one thread, T = 4) */
#pragma GCC unroll 2
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * c));
            __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            for (int t = 0; t < T; t++) {
                const int8_t *xq = x[(size_t)t * ldx + (size_t)b].qs;
                s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(lo, bcast4(xq + 4 * c)));
                s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(hi, bcast4(xq + 16 + 4 * c)));
            }
        }
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w));
        for (int t = 0; t < T; t++) {
            size_t xi = (size_t)t * ldx + (size_t)b;
            __m256i s32 = _mm256_sub_epi32(_mm256_madd_epi16(s16[t], ones), _mm256_set1_epi32(8 * xs[xi]));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32), _mm256_mul_ps(dw, _mm256_set1_ps(x[xi].d)), acc[t]);
        }
    }
    for (int t = 0; t < T; t++)
        _mm256_storeu_ps(y + (size_t)t * ldy, acc[t]);
}

/* Q8_0x8: signed x signed through the sign trick, |w| shared by the tokens;
 * products of 128 * 127 * 2 need a madd per chunk. */
AI void q8_0x8_tile(const uint8_t *w, int64_t nb, const cpu_q8 *x, size_t ldx, float *y,
                    size_t ldy, const int T)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4];
    for (int t = 0; t < T; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, w += 272) {
        if (T == 1) /* decode: memory-bound, see X8_PF */
            x8_prefetch(w, 272);
        __m256i s32[4];
        for (int t = 0; t < T; t++)
            s32[t] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int c = 0; c < 8; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * c));
            __m256i aq = _mm256_sign_epi8(q, q);
            for (int t = 0; t < T; t++) {
                const int8_t *xq = x[(size_t)t * ldx + (size_t)b].qs;
                __m256i p = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(bcast4(xq + 4 * c), q));
                s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(p, ones));
            }
        }
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w));
        for (int t = 0; t < T; t++) {
            size_t xi = (size_t)t * ldx + (size_t)b;
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32[t]), _mm256_mul_ps(dw, _mm256_set1_ps(x[xi].d)), acc[t]);
        }
    }
    for (int t = 0; t < T; t++)
        _mm256_storeu_ps(y + (size_t)t * ldy, acc[t]);
}

/* Q4_Kx8 with q8_K activations: per sub-block pair, int16 sums of eight
 * maddubs (low nibbles: sub-block 2p, high: 2p+1), then madd with the 8 rows'
 * 6-bit scales (each duplicated into its row's two int16 lanes); the mins
 * meet the activation block sums in one madd per pair. */
AI void q4_kx8_tile(const uint8_t *w, int64_t nb, const cpu_q8k *x, size_t ldx, float *y,
                    size_t ldy, const int T)
{
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    __m256 acc[4];
    for (int t = 0; t < T; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, w += 1184) {
        if (T == 1) /* decode: memory-bound, see X8_PF */
            x8_prefetch(w, 1184);
        __m256i isum[4], msum[4];
        for (int t = 0; t < T; t++)
            isum[t] = msum[t] = _mm256_setzero_si256();
        for (int p = 0; p < 4; p++) {
            __m256i slo[4], shi[4];
            for (int t = 0; t < T; t++)
                slo[t] = shi[t] = _mm256_setzero_si256();
#pragma GCC unroll 2
            for (int c = 0; c < 8; c++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(w + 160 + 32 * (8 * p + c)));
                __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                for (int t = 0; t < T; t++) {
                    const int8_t *xq = x[(size_t)t * ldx + (size_t)b].qs + 64 * p + 4 * c;
                    slo[t] = _mm256_add_epi16(slo[t], _mm256_maddubs_epi16(lo, bcast4(xq)));
                    shi[t] = _mm256_add_epi16(shi[t], _mm256_maddubs_epi16(hi, bcast4(xq + 32)));
                }
            }
            __m256i sc0 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_loadl_epi64((const __m128i *)(w + 32 + 16 * p)), dup));
            __m256i sc1 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_loadl_epi64((const __m128i *)(w + 40 + 16 * p)), dup));
            __m256i mn = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(w + 96 + 16 * p)));
            for (int t = 0; t < T; t++) {
                const cpu_q8k *xb = x + (size_t)t * ldx + (size_t)b;
                isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(_mm256_madd_epi16(slo[t], sc0),
                                                                     _mm256_madd_epi16(shi[t], sc1)));
                int32_t bs;
                memcpy(&bs, xb->bsum + 2 * p, 4);
                msum[t] = _mm256_add_epi32(msum[t], _mm256_madd_epi16(mn, _mm256_set1_epi32(bs)));
            }
        }
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w));
        __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 16)));
        for (int t = 0; t < T; t++) {
            __m256 xd = _mm256_set1_ps(x[(size_t)t * ldx + (size_t)b].d);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(dw, xd), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum[t]), _mm256_mul_ps(dm, xd), acc[t]);
        }
    }
    for (int t = 0; t < T; t++)
        _mm256_storeu_ps(y + (size_t)t * ldy, acc[t]);
}

/* groups outer (a group's blocks stay in L1 across the token tiles), tiles
 * of 4 tokens, then the remainder */
static void mm_q4_0x8_avx2(const void *w, int ng, int64_t K, const cpu_q8 *x, const int32_t *xs,
                           size_t ldx, int nx, float *y, size_t ldy)
{
    int64_t nb = K / 32;
    for (int g = 0; g < ng; g++) {
        const uint8_t *wg = (const uint8_t *)w + (size_t)g * (size_t)nb * 144;
        float *yg = y + 8 * (size_t)g;
        int j = 0;
        for (; j + 4 <= nx; j += 4)
            q4_0x8_tile(wg, nb, x + (size_t)j * ldx, xs + (size_t)j * ldx, ldx, yg + (size_t)j * ldy, ldy, 4);
        const cpu_q8 *xj = x + (size_t)j * ldx;
        const int32_t *sj = xs + (size_t)j * ldx;
        float *yj = yg + (size_t)j * ldy;
        if (nx - j == 3)
            q4_0x8_tile(wg, nb, xj, sj, ldx, yj, ldy, 3);
        else if (nx - j == 2)
            q4_0x8_tile(wg, nb, xj, sj, ldx, yj, ldy, 2);
        else if (nx - j == 1)
            q4_0x8_tile(wg, nb, xj, sj, ldx, yj, ldy, 1);
    }
}

static void mm_q8_0x8_avx2(const void *w, int ng, int64_t K, const cpu_q8 *x, size_t ldx, int nx,
                           float *y, size_t ldy)
{
    int64_t nb = K / 32;
    for (int g = 0; g < ng; g++) {
        const uint8_t *wg = (const uint8_t *)w + (size_t)g * (size_t)nb * 272;
        float *yg = y + 8 * (size_t)g;
        int j = 0;
        for (; j + 4 <= nx; j += 4)
            q8_0x8_tile(wg, nb, x + (size_t)j * ldx, ldx, yg + (size_t)j * ldy, ldy, 4);
        const cpu_q8 *xj = x + (size_t)j * ldx;
        float *yj = yg + (size_t)j * ldy;
        if (nx - j == 3)
            q8_0x8_tile(wg, nb, xj, ldx, yj, ldy, 3);
        else if (nx - j == 2)
            q8_0x8_tile(wg, nb, xj, ldx, yj, ldy, 2);
        else if (nx - j == 1)
            q8_0x8_tile(wg, nb, xj, ldx, yj, ldy, 1);
    }
}

#define Q4K_TW 4
static void mm_q4_kx8_avx2(const void *w, int ng, int64_t K, const cpu_q8k *x, size_t ldx, int nx,
                           float *y, size_t ldy)
{
    int64_t nb = K / 256;
    for (int g = 0; g < ng; g++) {
        const uint8_t *wg = (const uint8_t *)w + (size_t)g * (size_t)nb * 1184;
        float *yg = y + 8 * (size_t)g;
        int j = 0;
        for (; j + Q4K_TW <= nx; j += Q4K_TW)
            q4_kx8_tile(wg, nb, x + (size_t)j * ldx, ldx, yg + (size_t)j * ldy, ldy, Q4K_TW);
        const cpu_q8k *xj = x + (size_t)j * ldx;
        float *yj = yg + (size_t)j * ldy;
        if (nx - j == 3)
            q4_kx8_tile(wg, nb, xj, ldx, yj, ldy, 3);
        else if (nx - j == 2)
            q4_kx8_tile(wg, nb, xj, ldx, yj, ldy, 2);
        else if (nx - j == 1)
            q4_kx8_tile(wg, nb, xj, ldx, yj, ldy, 1);
    }
}

const cpu_kernels cpu_kernels_avx2 = {
    .isa = "avx2",
    .dot_f32 = dot_f32_avx2,
    .dot_f16 = dot_f16_avx2,
    .dot_bf16 = dot_bf16_avx2,
    .f16_to_f32 = f16_to_f32_avx2,
    .bf16_to_f32 = bf16_to_f32_avx2,
    .gemm_f32 = cpu_gemm_f32_avx2,
    .quant_q8 = quant_q8_avx2,
    .dot_q8_0 = dot_q8_0_avx2,
    .dot_q4_0 = dot_q4_0_avx2,
    .dot_q4_k = dot_q4_k_avx2,
    .mm_q8_0 = mm_q8_0_avx2,
    .mm_q4_0 = mm_q4_0_avx2,
    .quant_q8k = quant_q8k_avx2,
    .mm_q4_k = mm_q4_k_avx2,
    .mm_q4_0x8 = mm_q4_0x8_avx2,
    .mm_q4_kx8 = mm_q4_kx8_avx2,
    .mm_q8_0x8 = mm_q8_0x8_avx2,
    .gemm_f32_acc = gemm_f32_acc_avx2,
    .gemm_packed = cpu_gemm_packed_avx2, /* kernels/gemm-avx2.c */
    .gemv = cpu_gemv_avx2,
    .attend = cpu_attend_avx2,           /* kernels/attend-avx2.c */
    .silu_mul = cpu_silu_mul_avx2,       /* kernels/vec-avx2.c */
};
