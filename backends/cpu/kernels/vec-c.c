/* backends/cpu/kernels/vec-c.c - plain-C references of the vector
 * activation kernels (cpu_kernels.silu_mul). */
#include <math.h>
#include "kernels.h"

void cpu_silu_mul_c(const float *x, const float *u, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] / (1.0f + expf(-x[i]));
        y[i] = u ? v * u[i] : v;
    }
}
