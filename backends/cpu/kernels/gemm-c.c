/* backends/cpu/kernels/gemm-c.c - the prefill GEMM of F32/F16/BF16 weights
 * (kernels.h, "Prefill GEMM"): the packing of the activations shared by
 * every variant, the plain-C reference of gemm_packed that reads the
 * packed activations through the documented layout, and that of gemv. */
#include "kernels.h"

void cpu_gemm_pack_x(const float *x, size_t ldx, int nx, int64_t K, int g0, int g1, float *xp)
{
    int64_t nxp = cpu_gemm_rows_padded(nx);
    for (int64_t k0 = 0; k0 < K; k0 += CPU_GEMM_KC) {
        int64_t kc = K - k0 < CPU_GEMM_KC ? K - k0 : CPU_GEMM_KC;
        for (int g = g0; g < g1; g++) {
            float *d = xp + k0 * nxp + (int64_t)g * kc * CPU_GEMM_MR;
            const float *s[CPU_GEMM_MR];
            int full = 1;
            for (int r = 0; r < CPU_GEMM_MR; r++) {
                int j = g * CPU_GEMM_MR + r;
                full &= j < nx;
                s[r] = j < nx ? x + (size_t)j * ldx + (size_t)k0 : NULL;
            }
            if (full) {
                for (int64_t k = 0; k < kc; k++, d += CPU_GEMM_MR)
                    for (int r = 0; r < CPU_GEMM_MR; r++)
                        d[r] = s[r][k];
            } else {
                for (int64_t k = 0; k < kc; k++, d += CPU_GEMM_MR)
                    for (int r = 0; r < CPU_GEMM_MR; r++)
                        d[r] = s[r] ? s[r][k] : 0.0f;
            }
        }
    }
}

static float w_at(int wtype, const void *w, size_t ldw, int i, int64_t k)
{
    const char *row = (const char *)w + (size_t)i * ldw;
    if (wtype == CPU_GEMM_F32) {
        float f;
        memcpy(&f, row + 4 * k, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, row + 2 * k, 2);
    return wtype == CPU_GEMM_F16 ? cpu_f16_to_f32(h) : cpu_bf16_to_f32(h);
}

void cpu_gemm_packed_c(int wtype, const void *w, size_t ldw, int nw, const float *xp, int nx,
                       int64_t K, float *y, size_t ldy, float *wp)
{
    (void)wp;
    int64_t nxp = cpu_gemm_rows_padded(nx);
    for (int j = 0; j < nx; j++)
        for (int i = 0; i < nw; i++) {
            float s = 0.0f;
            for (int64_t k0 = 0; k0 < K; k0 += CPU_GEMM_KC) {
                int64_t kc = K - k0 < CPU_GEMM_KC ? K - k0 : CPU_GEMM_KC;
                const float *xb = xp + k0 * nxp + (int64_t)(j / CPU_GEMM_MR) * kc * CPU_GEMM_MR +
                                  j % CPU_GEMM_MR;
                for (int64_t k = 0; k < kc; k++)
                    s += w_at(wtype, w, ldw, i, k0 + k) * xb[k * CPU_GEMM_MR];
            }
            y[(size_t)j * ldy + (size_t)i] = s;
        }
}

void cpu_gemv_c(int wtype, const void *w, size_t ldw, int nw, const float *x, size_t ldx, int nx,
                int64_t K, float *y, size_t ldy)
{
    for (int j = 0; j < nx; j++)
        for (int i = 0; i < nw; i++) {
            float s = 0.0f;
            for (int64_t k = 0; k < K; k++)
                s += w_at(wtype, w, ldw, i, k) * x[(size_t)j * ldx + (size_t)k];
            y[(size_t)j * ldy + (size_t)i] = s;
        }
}
