/* backends/cpu/kernels/vec-avx2.c - the vector activation kernels with
 * AVX2/FMA: SiLU / SwiGLU through simd-avx2.h's exp8. */
#include <math.h>
#include "simd-avx2.h"
#include "kernels.h"

void cpu_silu_mul_avx2(const float *x, const float *u, float *y, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        /* x / (1 + e^-x); e^-x past 88 saturates to a large finite value,
         * so very negative x gives -0 rather than NaN */
        __m256 e = exp8(_mm256_xor_ps(v, sign));
        __m256 r = _mm256_div_ps(v, _mm256_add_ps(one, e));
        if (u)
            r = _mm256_mul_ps(r, _mm256_loadu_ps(u + i));
        _mm256_storeu_ps(y + i, r);
    }
    for (; i < n; i++) {
        float v = x[i] / (1.0f + expf(-x[i]));
        y[i] = u ? v * u[i] : v;
    }
}
