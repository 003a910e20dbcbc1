/* backends/cpu/kernels/attend-avx2.c - the attention tile kernel (cpu_att
 * in kernels.h) with AVX2/FMA: the scores of all rows against the tile's
 * keys as one small GEMM (cpu_gemm_f32_avx2, query rows pre-scaled), a
 * vectorised softmax (exp by range reduction and a degree-6 polynomial,
 * within 2 ulp of expf), and the weighted sum of values with up to 6 rows x
 * 16 columns of accumulators, each value row loaded once per row block.
 * head_dim not a multiple of 8 runs the C reference. */
#include <immintrin.h>
#include <math.h>
#include "kernels.h"

/* e^x: x = n ln2 + r, |r| <= ln2/2, e^r by Cephes' expf polynomial,
 * 2^n through the exponent bits.  NaN stays NaN; x clamped to [-87, 88]. */
static inline __m256 exp8(__m256 x)
{
    x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);
    x = _mm256_min_ps(_mm256_set1_ps(88.0f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline float hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline float hsum8(__m256 v)
{
    __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

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

/* out[r][d .. d + 8W) = inv[r] * sum_i s[r][i] v[i][d ..] for i in [i0, i1] */
static inline __attribute__((always_inline)) void pv_block(int NR, int W, const float *s, size_t lds,
                                                           const float *v, size_t ldv, int64_t i0,
                                                           int64_t i1, int64_t d, float *const *out,
                                                           const float *inv)
{
    __m256 acc[6][2];
    for (int r = 0; r < NR; r++)
        for (int w = 0; w < W; w++)
            acc[r][w] = _mm256_setzero_ps();
    for (int64_t i = i0; i <= i1; i++) {
        const float *vr = v + (size_t)i * ldv + d;
        __m256 v0 = _mm256_loadu_ps(vr), v1 = W > 1 ? _mm256_loadu_ps(vr + 8) : v0;
        for (int r = 0; r < NR; r++) {
            __m256 p = _mm256_broadcast_ss(s + (size_t)r * lds + (size_t)i);
            acc[r][0] = _mm256_fmadd_ps(p, v0, acc[r][0]);
            if (W > 1)
                acc[r][1] = _mm256_fmadd_ps(p, v1, acc[r][1]);
        }
    }
    for (int r = 0; r < NR; r++) {
        __m256 f = _mm256_set1_ps(inv[r]);
        for (int w = 0; w < W; w++)
            _mm256_storeu_ps(out[r] + d + 8 * w, _mm256_mul_ps(acc[r][w], f));
    }
}

/* W (1 or 2) vectors of columns at d for the nr (<= 6) rows of a block */
static void pv_rows(int nr, int W, const float *sb, size_t lds, const float *v, size_t ldv,
                    int64_t i0, int64_t i1, int64_t d, float *const *out, const float *inv)
{
#define PV_CASE(N)                                                                           \
    do {                                                                                     \
        if (W == 2)                                                                          \
            pv_block(N, 2, sb, lds, v, ldv, i0, i1, d, out, inv);                            \
        else                                                                                 \
            pv_block(N, 1, sb, lds, v, ldv, i0, i1, d, out, inv);                            \
    } while (0)
    switch (nr) {
    case 1: PV_CASE(1); break;
    case 2: PV_CASE(2); break;
    case 3: PV_CASE(3); break;
    case 4: PV_CASE(4); break;
    case 5: PV_CASE(5); break;
    default: PV_CASE(6); break;
    }
#undef PV_CASE
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
    int64_t nk = k1 + 1 - k0;
    size_t lds = ((size_t)nk + 7) & ~(size_t)7;
    float *qs = a->work, *s = a->work + (size_t)R * (size_t)hd;
    __m256 sc = _mm256_set1_ps(a->scale);
    for (int r = 0; r < R; r++)
        for (int64_t i = 0; i < hd; i += 8)
            _mm256_store_ps(qs + (size_t)r * (size_t)hd + i,
                            _mm256_mul_ps(_mm256_loadu_ps(a->q[r] + i), sc));
    /* s[r * lds + i] = (q_r * scale) . k_{k0 + i} */
    cpu_gemm_f32_avx2(a->k + (size_t)k0 * a->ldk, a->ldk, (int)nk, qs, (size_t)hd, R, hd, s, lds);
    float inv[CPU_ATT_MAXR];
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
    const float *v = a->v + (size_t)k0 * a->ldv;
    for (int r0 = 0; r0 < R; r0 += 6) {
        int nr = R - r0 < 6 ? R - r0 : 6;
        int64_t i0 = nk, i1 = -1;
        for (int r = r0; r < r0 + nr; r++)
            if (a->lo[r] <= a->hi[r]) {
                i0 = a->lo[r] - k0 < i0 ? a->lo[r] - k0 : i0;
                i1 = a->hi[r] - k0 > i1 ? a->hi[r] - k0 : i1;
            }
        float *const *out = a->out + r0;
        const float *sb = s + (size_t)r0 * lds;
        if (i1 < 0) {
            for (int r = 0; r < nr; r++)
                for (int64_t i = 0; i < hd; i++)
                    out[r][i] = 0.0f;
            continue;
        }
        int64_t d = 0;
        for (; d + 16 <= hd; d += 16)
            pv_rows(nr, 2, sb, lds, v, a->ldv, i0, i1, d, out, inv + r0);
        for (; d < hd; d += 8)
            pv_rows(nr, 1, sb, lds, v, a->ldv, i0, i1, d, out, inv + r0);
    }
}
