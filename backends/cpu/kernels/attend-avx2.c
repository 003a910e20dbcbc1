/* backends/cpu/kernels/attend-avx2.c - the attention tile kernel (cpu_att
 * in kernels.h) with AVX2/FMA: the scores of all rows against the tile's
 * keys through the prefill GEMM (cpu_gemm_packed_avx2: the query rows
 * pre-scaled and packed, the keys transposed into panels 64 at a time), a
 * vectorised softmax (exp by range reduction and a degree-6 polynomial,
 * within 2 ulp of expf), and the weighted sum of values 6 rows x 16 columns
 * at a time (12 accumulators, each value row loaded once per row block).
 * head_dim not a multiple of 8 runs the C reference. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include "simd-avx2.h"
#include "kernels.h"

/* Softmax numerators of s[b .. e] in place; returns their sum. */
static float softmax_row(float *s, int64_t b, int64_t e, float cap)
{
    if (cap > 0.0f)
        for (int64_t i = b; i <= e; i++)
            s[i] = cap * tanhf(s[i] / cap);
    int64_t i = b;
    __m256 vm = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= e + 1; i += 8)
        vm = _mm256_max_ps(vm, _mm256_loadu_ps(s + i));
    float mx = hmax8(vm);
    for (; i <= e; i++)
        mx = s[i] > mx ? s[i] : mx;
    __m256 m8 = _mm256_set1_ps(mx), acc = _mm256_setzero_ps();
    for (i = b; i + 8 <= e + 1; i += 8) {
        __m256 x = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), m8));
        _mm256_storeu_ps(s + i, x);
        acc = _mm256_add_ps(acc, x);
    }
    float sum = hsum8(acc);
    for (; i <= e; i++) {
        float x = expf(s[i] - mx);
        s[i] = x;
        sum += x;
    }
    return sum;
}

_Static_assert(CPU_GEMM_WP_FLOATS == 64 * 256 && CPU_GEMM_MR == 6,
               "cpu_att_work_floats assumes the GEMM's panel and row-group sizes");

/* out[r][d .. d + 16) = inv[r] * sum_i s_r[i] v[i][d ..] for i in [i0, i1],
 * six rows at once (12 accumulators; per key 2 value loads, 6 broadcasts) */
static void pv6x16(const float *const *sr, const float *v, size_t ldv, int64_t i0, int64_t i1,
                   int64_t d, float *const *out, const float *inv)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *s0 = sr[0], *s1 = sr[1], *s2 = sr[2], *s3 = sr[3], *s4 = sr[4], *s5 = sr[5];
    const float *vr = v + (size_t)i0 * ldv + (size_t)d;
    for (int64_t i = i0; i <= i1; i++, vr += ldv) {
        __m256 v0 = _mm256_loadu_ps(vr), v1 = _mm256_loadu_ps(vr + 8), b;
        b = _mm256_broadcast_ss(s0 + i);
        c00 = _mm256_fmadd_ps(b, v0, c00);
        c01 = _mm256_fmadd_ps(b, v1, c01);
        b = _mm256_broadcast_ss(s1 + i);
        c10 = _mm256_fmadd_ps(b, v0, c10);
        c11 = _mm256_fmadd_ps(b, v1, c11);
        b = _mm256_broadcast_ss(s2 + i);
        c20 = _mm256_fmadd_ps(b, v0, c20);
        c21 = _mm256_fmadd_ps(b, v1, c21);
        b = _mm256_broadcast_ss(s3 + i);
        c30 = _mm256_fmadd_ps(b, v0, c30);
        c31 = _mm256_fmadd_ps(b, v1, c31);
        b = _mm256_broadcast_ss(s4 + i);
        c40 = _mm256_fmadd_ps(b, v0, c40);
        c41 = _mm256_fmadd_ps(b, v1, c41);
        b = _mm256_broadcast_ss(s5 + i);
        c50 = _mm256_fmadd_ps(b, v0, c50);
        c51 = _mm256_fmadd_ps(b, v1, c51);
    }
#define PV_STORE(r, a0, a1)                                                                  \
    do {                                                                                     \
        __m256 f = _mm256_set1_ps(inv[r]);                                                   \
        _mm256_storeu_ps(out[r] + d, _mm256_mul_ps(a0, f));                                  \
        _mm256_storeu_ps(out[r] + d + 8, _mm256_mul_ps(a1, f));                              \
    } while (0)
    PV_STORE(0, c00, c01);
    PV_STORE(1, c10, c11);
    PV_STORE(2, c20, c21);
    PV_STORE(3, c30, c31);
    PV_STORE(4, c40, c41);
    PV_STORE(5, c50, c51);
#undef PV_STORE
}

/* the same for 8 columns, one row */
static void pv1x8(const float *s, const float *v, size_t ldv, int64_t i0, int64_t i1, int64_t d,
                  float *out, float inv)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    const float *vr = v + (size_t)i0 * ldv + (size_t)d;
    int64_t i = i0;
    for (; i + 1 <= i1; i += 2, vr += 2 * ldv) {
        a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + i), _mm256_loadu_ps(vr), a0);
        a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + i + 1), _mm256_loadu_ps(vr + ldv), a1);
    }
    if (i <= i1)
        a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + i), _mm256_loadu_ps(vr), a0);
    _mm256_storeu_ps(out + d, _mm256_mul_ps(_mm256_add_ps(a0, a1), _mm256_set1_ps(inv)));
}

void cpu_attend_avx2(const cpu_att *a)
{
    int64_t hd = a->hd;
    if (hd % 8) {
        cpu_attend_c(a);
        return;
    }
    int R = a->R;
    int64_t k0 = INT64_MAX, k1 = -1;
    for (int r = 0; r < R; r++)
        if (a->lo[r] <= a->hi[r]) {
            k0 = a->lo[r] < k0 ? a->lo[r] : k0;
            k1 = a->hi[r] > k1 ? a->hi[r] : k1;
        }
    if (k1 < 0) {
        for (int r = 0; r < R; r++)
            for (int64_t i = 0; i < hd; i++)
                a->out[r][i] = 0.0f;
        return;
    }
    int64_t nk = k1 + 1 - k0, rp = cpu_gemm_rows_padded(R);
    size_t lds = ((size_t)nk + 7) & ~(size_t)7;
    float *wp = (float *)(((uintptr_t)a->work + 63) & ~(uintptr_t)63);
    float *xp = wp + CPU_GEMM_WP_FLOATS, *s = xp + (size_t)rp * (size_t)hd;
    float *zero = s + (size_t)R * lds, *spare = zero + lds;
    /* the query rows times scale, packed as the GEMM's activations (hd in
     * slices of CPU_GEMM_KC, rows in groups of CPU_GEMM_MR, zero padded) */
    for (int64_t d0 = 0; d0 < hd; d0 += CPU_GEMM_KC) {
        int64_t kc = hd - d0 < CPU_GEMM_KC ? hd - d0 : CPU_GEMM_KC;
        for (int64_t g = 0; g < rp / CPU_GEMM_MR; g++) {
            float *dst = xp + d0 * rp + g * kc * CPU_GEMM_MR;
            for (int j = 0; j < CPU_GEMM_MR; j++) {
                int r = (int)g * CPU_GEMM_MR + j;
                for (int64_t d = 0; d < kc; d++)
                    dst[d * CPU_GEMM_MR + j] = r < R ? a->q[r][d0 + d] * a->scale : 0.0f;
            }
        }
    }
    /* s[r * lds + i] = (q_r * scale) . k_{k0 + i}, keys 64 at a time */
    for (int64_t kb = 0; kb < nk; kb += CPU_GEMM_NC) {
        int nw = (int)(nk - kb < CPU_GEMM_NC ? nk - kb : CPU_GEMM_NC);
        cpu_gemm_packed_avx2(CPU_GEMM_F32, a->k + (size_t)(k0 + kb) * a->ldk, a->ldk * sizeof(float),
                             nw, xp, R, hd, s + kb, lds, wp);
    }
    float inv[CPU_ATT_MAXR + 6];
    for (int r = 0; r < R; r++) {
        float *sr = s + (size_t)r * lds;
        if (a->lo[r] > a->hi[r]) {
            for (int64_t i = 0; i < nk; i++)
                sr[i] = 0.0f;
            inv[r] = 0.0f;
            continue;
        }
        int64_t b = a->lo[r] - k0, e = a->hi[r] - k0;
        inv[r] = 1.0f / softmax_row(sr, b, e, a->cap);
        for (int64_t i = 0; i < b; i++)
            sr[i] = 0.0f;
        for (int64_t i = e + 1; i < nk; i++)
            sr[i] = 0.0f;
    }
    for (int64_t i = 0; i < nk; i++)
        zero[i] = 0.0f;
    const float *v = a->v + (size_t)k0 * a->ldv;
    for (int r0 = 0; r0 < R; r0 += 6) {
        int nr = R - r0 < 6 ? R - r0 : 6;
        int64_t i0 = nk, i1 = -1;
        const float *sr[6];
        float *out[6];
        for (int r = 0; r < 6; r++) {
            int rr = r0 + r;
            int has = r < nr && a->lo[rr] <= a->hi[rr];
            sr[r] = r < nr ? s + (size_t)rr * lds : zero;
            out[r] = r < nr ? a->out[rr] : spare;   /* padding rows: zeros into the spare row */
            if (r >= nr)
                inv[r0 + r] = 0.0f;
            if (has) {
                i0 = a->lo[rr] - k0 < i0 ? a->lo[rr] - k0 : i0;
                i1 = a->hi[rr] - k0 > i1 ? a->hi[rr] - k0 : i1;
            }
        }
        if (i1 < 0) {
            for (int r = 0; r < nr; r++)
                for (int64_t i = 0; i < hd; i++)
                    out[r][i] = 0.0f;
            continue;
        }
        int64_t d = 0;
        for (; d + 16 <= hd; d += 16)
            pv6x16(sr, v, a->ldv, i0, i1, d, out, inv + r0);
        for (; d < hd; d += 8)
            for (int r = 0; r < nr; r++)
                pv1x8(sr[r], v, a->ldv, i0, i1, d, out[r], inv[r0 + r]);
    }
}
