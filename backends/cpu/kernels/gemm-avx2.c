/* backends/cpu/kernels/gemm-avx2.c - AVX2 + FMA + F16C prefill GEMM and
 * decode GEMV of F32/F16/BF16 weights (kernels.h, "Prefill GEMM").  Per
 * slice of CPU_GEMM_KC values, the weight rows are converted to f32 and
 * transposed into panels of 16 rows (k-major: 16 consecutive floats per
 * k), then a 6 x 16 register tile (12 ymm accumulators: 6 activation rows
 * broadcast against 2 vectors of 16 weight rows) runs over the packed
 * activations.  Per k: 2 vector loads, 6 broadcasts, 12 FMAs. */
#include <immintrin.h>
#include "kernels.h"
#include "simd-avx2.h"

#define MR CPU_GEMM_MR
#define NR CPU_GEMM_NR
#define KC CPU_GEMM_KC
/* activation rows per pass over the weight panels: 96 rows x 256 x 4 bytes
 * = 96 KB stay in L2 while each 16 KB panel stays in L1 */
#define MC 96

static inline __m256 load8(int wtype, const char *p)
{
    if (wtype == CPU_GEMM_F32)
        return _mm256_loadu_ps((const float *)p);
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (wtype == CPU_GEMM_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline float load1(int wtype, const char *p)
{
    if (wtype == CPU_GEMM_F32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p, 2);
    return wtype == CPU_GEMM_F16 ? _cvtsh_ss(h) : cpu_bf16_to_f32(h);
}

/* 8 x 8 transpose of r[0..7] (rows) into columns */
static inline void transpose8(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* panel of rows [i0, i0 + nr) (nr <= 16), values [k0, k0 + kc), into
 * dst[k * 16 + i] (rows past nr are zero) */
static void pack_panel(int wtype, const char *w, size_t ldw, int nr, int64_t k0, int64_t kc,
                       float *dst)
{
    size_t es = wtype == CPU_GEMM_F32 ? 4 : 2;
    if (nr == NR) {
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8)
            for (int h = 0; h < 2; h++) {
                __m256 r[8];
                for (int i = 0; i < 8; i++)
                    r[i] = load8(wtype, w + (size_t)(8 * h + i) * ldw + (size_t)(k0 + k) * es);
                transpose8(r);
                for (int t = 0; t < 8; t++)
                    _mm256_store_ps(dst + (k + t) * NR + 8 * h, r[t]);
            }
        for (; k < kc; k++)
            for (int i = 0; i < NR; i++)
                dst[k * NR + i] = load1(wtype, w + (size_t)i * ldw + (size_t)(k0 + k) * es);
        return;
    }
    for (int64_t k = 0; k < kc; k++)
        for (int i = 0; i < NR; i++)
            dst[k * NR + i] =
                i < nr ? load1(wtype, w + (size_t)i * ldw + (size_t)(k0 + k) * es) : 0.0f;
}

/* y rows [0, nx) x columns [0, nw) (+)= 6 x 16 tile of xg (kc x 6) and
 * wpan (kc x 16) */
static inline void tile6x16(const float *xg, const float *wpan, int64_t kc, float *y, size_t ldy,
                            int nx, int nw, int add)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t k = 0; k < kc; k++) {
        __m256 w0 = _mm256_load_ps(wpan + k * NR), w1 = _mm256_load_ps(wpan + k * NR + 8);
        const float *xk = xg + k * MR;
        __m256 b = _mm256_broadcast_ss(xk);
        c00 = _mm256_fmadd_ps(b, w0, c00);
        c01 = _mm256_fmadd_ps(b, w1, c01);
        b = _mm256_broadcast_ss(xk + 1);
        c10 = _mm256_fmadd_ps(b, w0, c10);
        c11 = _mm256_fmadd_ps(b, w1, c11);
        b = _mm256_broadcast_ss(xk + 2);
        c20 = _mm256_fmadd_ps(b, w0, c20);
        c21 = _mm256_fmadd_ps(b, w1, c21);
        b = _mm256_broadcast_ss(xk + 3);
        c30 = _mm256_fmadd_ps(b, w0, c30);
        c31 = _mm256_fmadd_ps(b, w1, c31);
        b = _mm256_broadcast_ss(xk + 4);
        c40 = _mm256_fmadd_ps(b, w0, c40);
        c41 = _mm256_fmadd_ps(b, w1, c41);
        b = _mm256_broadcast_ss(xk + 5);
        c50 = _mm256_fmadd_ps(b, w0, c50);
        c51 = _mm256_fmadd_ps(b, w1, c51);
    }
    __m256 c[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    if (nx == MR && nw == NR) {
        for (int r = 0; r < MR; r++) {
            float *yr = y + (size_t)r * ldy;
            if (add) {
                c[r][0] = _mm256_add_ps(c[r][0], _mm256_loadu_ps(yr));
                c[r][1] = _mm256_add_ps(c[r][1], _mm256_loadu_ps(yr + 8));
            }
            _mm256_storeu_ps(yr, c[r][0]);
            _mm256_storeu_ps(yr + 8, c[r][1]);
        }
        return;
    }
    float tmp[MR][NR];
    for (int r = 0; r < MR; r++) {
        _mm256_storeu_ps(tmp[r], c[r][0]);
        _mm256_storeu_ps(tmp[r] + 8, c[r][1]);
    }
    for (int r = 0; r < nx; r++)
        for (int i = 0; i < nw; i++)
            y[(size_t)r * ldy + (size_t)i] = add ? y[(size_t)r * ldy + (size_t)i] + tmp[r][i]
                                                 : tmp[r][i];
}

void cpu_gemm_packed_avx2(int wtype, const void *w, size_t ldw, int nw, const float *xp, int nx,
                          int64_t K, float *y, size_t ldy, float *wp)
{
    int np = (nw + NR - 1) / NR;
    int64_t nxp = cpu_gemm_rows_padded(nx);
    size_t es = wtype == CPU_GEMM_F32 ? 4 : 2;
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        int64_t kc = K - k0 < KC ? K - k0 : KC;
        for (int p = 0; p < np; p++)
            pack_panel(wtype, (const char *)w + (size_t)(p * NR) * ldw, ldw,
                       nw - p * NR < NR ? nw - p * NR : NR, k0, kc, wp + (size_t)p * NR * kc);
        const float *xs = xp + k0 * nxp;
        /* the next slice's weight lines (nw rows, 64 bytes each), fetched a
         * few per tile while this slice computes: packing then finds them
         * in cache instead of waiting on memory */
        int64_t kn = k0 + KC < K ? (K - k0 - KC < KC ? K - k0 - KC : KC) : 0;
        int64_t lpr = (kn * (int64_t)es + 63) / 64, nl = lpr * nw, pf = 0, pr = 0, pl = 0;
        int64_t per = nl / (np * (nxp / MR)) + 1;
        const char *wn = (const char *)w + (size_t)(kn ? k0 + KC : 0) * es;
        for (int64_t m0 = 0; m0 < nxp; m0 += MC) {
            int64_t m1 = m0 + MC < nxp ? m0 + MC : nxp;
            for (int p = 0; p < np; p++) {
                const float *wpan = wp + (size_t)p * NR * kc;
                int cols = nw - p * NR < NR ? nw - p * NR : NR;
                for (int64_t g = m0; g < m1; g += MR) {
                    for (int64_t e = pf + per < nl ? pf + per : nl; pf < e; pf++) {
                        _mm_prefetch(wn + (size_t)pr * ldw + (size_t)pl * 64, _MM_HINT_T1);
                        if (++pl == lpr) {
                            pl = 0;
                            pr++;
                        }
                    }
                    int rows = nx - g < MR ? (int)(nx - g) : MR;
                    tile6x16(xs + g * kc, wpan, kc, y + (size_t)g * ldy + (size_t)(p * NR), ldy,
                             rows, cols, k0 > 0);
                }
            }
        }
    }
}

/* ---- decode GEMV: R weight rows x NX tokens per pass, so that each x
 * vector load serves R rows and each weight row is read from memory once for
 * all the tokens (constant R, NX, wtype: everything stays in registers) ---- */
static inline __attribute__((always_inline)) void gemv_block(int wtype, int R, int NX,
                                                             const char *w, size_t ldw,
                                                             const float *x, size_t ldx,
                                                             int64_t K, float *y, size_t ldy)
{
    size_t es = wtype == CPU_GEMM_F32 ? 4 : 2;
    __m256 c[4][3];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NX; j++)
            c[r][j] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 xv[3];
        for (int j = 0; j < NX; j++)
            xv[j] = _mm256_loadu_ps(x + (size_t)j * ldx + (size_t)k);
        for (int r = 0; r < R; r++) {
            __m256 a = load8(wtype, w + (size_t)r * ldw + (size_t)k * es);
            for (int j = 0; j < NX; j++)
                c[r][j] = _mm256_fmadd_ps(a, xv[j], c[r][j]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NX; j++) {
            float v = hsum8(c[r][j]);
            for (int64_t t = k; t < K; t++)
                v += load1(wtype, w + (size_t)r * ldw + (size_t)t * es) *
                     x[(size_t)j * ldx + (size_t)t];
            y[(size_t)j * ldy + (size_t)r] = v;
        }
}

static inline __attribute__((always_inline)) void gemv_nx(int wtype, int NX, const char *w,
                                                          size_t ldw, int nw, const float *x,
                                                          size_t ldx, int64_t K, float *y,
                                                          size_t ldy)
{
    int i = 0;
    for (; i + 4 <= nw; i += 4)
        gemv_block(wtype, 4, NX, w + (size_t)i * ldw, ldw, x, ldx, K, y + i, ldy);
    for (; i < nw; i++)
        gemv_block(wtype, 1, NX, w + (size_t)i * ldw, ldw, x, ldx, K, y + i, ldy);
}

#define GEMV_WT(WT)                                                                                \
    static void gemv_##WT(const char *w, size_t ldw, int nw, const float *x, size_t ldx, int nx,   \
                          int64_t K, float *y, size_t ldy)                                         \
    {                                                                                              \
        for (int j = 0; j < nx; j += 3) {                                                          \
            const float *xj = x + (size_t)j * ldx;                                                 \
            float *yj = y + (size_t)j * ldy;                                                       \
            if (nx - j == 1)                                                                       \
                gemv_nx(WT, 1, w, ldw, nw, xj, ldx, K, yj, ldy);                                   \
            else if (nx - j == 2)                                                                  \
                gemv_nx(WT, 2, w, ldw, nw, xj, ldx, K, yj, ldy);                                   \
            else                                                                                   \
                gemv_nx(WT, 3, w, ldw, nw, xj, ldx, K, yj, ldy);                                   \
        }                                                                                          \
    }
GEMV_WT(CPU_GEMM_F32)
GEMV_WT(CPU_GEMM_F16)
GEMV_WT(CPU_GEMM_BF16)

void cpu_gemv_avx2(int wtype, const void *w, size_t ldw, int nw, const float *x, size_t ldx,
                   int nx, int64_t K, float *y, size_t ldy)
{
    if (wtype == CPU_GEMM_F32)
        gemv_CPU_GEMM_F32(w, ldw, nw, x, ldx, nx, K, y, ldy);
    else if (wtype == CPU_GEMM_F16)
        gemv_CPU_GEMM_F16(w, ldw, nw, x, ldx, nx, K, y, ldy);
    else
        gemv_CPU_GEMM_BF16(w, ldw, nw, x, ldx, nx, K, y, ldy);
}
