/* backends/cpu/kernels/dot-c.c - reference C versions of the inner kernels
 * (kernels.h): dot products of F32/F16/BF16 rows, the f32 block kernel of
 * the GEMM, activation quantization to q8 blocks and the GGML block dot
 * products (Q8_0, Q4_0, Q4_K) against quantized activations. */
#include <math.h>
#include "kernels.h"

static float dot_f32_c(const float *a, const float *b, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static float dot_f16_c(const uint16_t *w, const float *x, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += cpu_f16_to_f32(w[i + j]) * x[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += cpu_f16_to_f32(w[i]) * x[i];
    return s;
}

static float dot_bf16_c(const uint16_t *w, const float *x, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += cpu_bf16_to_f32(w[i + j]) * x[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += cpu_bf16_to_f32(w[i]) * x[i];
    return s;
}

static void f16_to_f32_c(const uint16_t *s, float *d, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        d[i] = cpu_f16_to_f32(s[i]);
}

static void bf16_to_f32_c(const uint16_t *s, float *d, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        d[i] = cpu_bf16_to_f32(s[i]);
}

static void gemm_f32_c(const float *w, size_t ldw, int nw, const float *x, size_t ldx, int nx,
                       int64_t K, float *y, size_t ldy)
{
    for (int j = 0; j < nx; j++)
        for (int i = 0; i < nw; i++)
            y[(size_t)j * ldy + (size_t)i] = dot_f32_c(w + (size_t)i * ldw, x + (size_t)j * ldx, K);
}

static void quant_q8_c(const float *x, cpu_q8 *q, int64_t n)
{
    for (int64_t b = 0; b < n / CPU_QK; b++, x += CPU_QK) {
        float amax = 0.0f;
        for (int i = 0; i < CPU_QK; i++)
            amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int i = 0; i < CPU_QK; i++) {
            int v = (int)lrintf(x[i] * id);
            q[b].qs[i] = (int8_t)v;
            sum += v;
        }
        q[b].d = d;
        q[b].s = d * (float)sum;
    }
}

/* Q8_0: 34 bytes = f16 d | int8 qs[32] */
static float dot_q8_0_c(const void *wv, const cpu_q8 *x, int64_t n)
{
    const uint8_t *w = wv;
    float s = 0.0f;
    for (int64_t b = 0; b < n / 32; b++, w += 34) {
        int acc = 0;
        for (int i = 0; i < 32; i++)
            acc += (int8_t)w[2 + i] * x[b].qs[i];
        s += cpu_load_f16(w) * x[b].d * (float)acc;
    }
    return s;
}

/* Q4_0: 18 bytes = f16 d | qs[16]; value i < 16 is the low nibble of qs[i],
 * value 16 + i the high nibble; x = d * (q - 8). */
static float dot_q4_0_c(const void *wv, const cpu_q8 *x, int64_t n)
{
    const uint8_t *w = wv;
    float s = 0.0f;
    for (int64_t b = 0; b < n / 32; b++, w += 18) {
        int acc = 0;
        for (int i = 0; i < 16; i++) {
            acc += ((w[2 + i] & 0xF) - 8) * x[b].qs[i];
            acc += ((w[2 + i] >> 4) - 8) * x[b].qs[16 + i];
        }
        s += cpu_load_f16(w) * x[b].d * (float)acc;
    }
    return s;
}

/* Q4_K: 144 bytes per 256 = d | dmin | scales[12] | qs[128]; sub-block g
 * (32 values) is nibble g%2 of qs[(g/2)*32 ..]; x = d*sc*q - dmin*m, so
 * dot = sum_g d*sc_g*xd_g*sum(q*xq) - dmin*m_g*xs_g. */
static float dot_q4_k_c(const void *wv, const cpu_q8 *x, int64_t n)
{
    const uint8_t *w = wv;
    float s = 0.0f;
    for (int64_t b = 0; b < n / 256; b++, w += 144, x += 8) {
        float d = cpu_load_f16(w), dmin = cpu_load_f16(w + 2);
        const uint8_t *qs = w + 16;
        for (int g = 0; g < 8; g++) {
            int sc, m, acc = 0;
            cpu_q4k_scale_min(w + 4, g, &sc, &m);
            for (int l = 0; l < 32; l++)
                acc += ((qs[(g / 2) * 32 + l] >> (4 * (g % 2))) & 0xF) * x[g].qs[l];
            s += d * (float)sc * x[g].d * (float)acc - dmin * (float)m * x[g].s;
        }
    }
    return s;
}

static void gemm_f32_acc_c(const float *w, size_t ldw, int nw, const float *x, size_t ldx, int nx,
                           int64_t K, float *y, size_t ldy)
{
    for (int j = 0; j < nx; j++)
        for (int i = 0; i < nw; i++)
            y[(size_t)j * ldy + (size_t)i] += dot_f32_c(w + (size_t)i * ldw, x + (size_t)j * ldx, K);
}

static void mm_q8_0_c(const void *w, size_t ldw, int nw, const cpu_q8 *x, size_t ldx, int nx,
                      int64_t K, float *y, size_t ldy)
{
    for (int j = 0; j < nx; j++)
        for (int i = 0; i < nw; i++)
            y[(size_t)j * ldy + (size_t)i] =
                dot_q8_0_c((const char *)w + (size_t)i * ldw, x + (size_t)j * ldx, K);
}

static void mm_q4_0_c(const void *w, size_t ldw, int nw, const cpu_q8 *x, size_t ldx, int nx,
                      int64_t K, float *y, size_t ldy)
{
    for (int j = 0; j < nx; j++)
        for (int i = 0; i < nw; i++)
            y[(size_t)j * ldy + (size_t)i] =
                dot_q4_0_c((const char *)w + (size_t)i * ldw, x + (size_t)j * ldx, K);
}

/* one scale per 256 values, symmetric, round to nearest even */
static void quant_q8k_c(const float *x, cpu_q8k *q, int64_t n)
{
    for (int64_t b = 0; b < n / CPU_QKK; b++, x += CPU_QKK) {
        float amax = 0.0f;
        for (int i = 0; i < CPU_QKK; i++)
            amax = fmaxf(amax, fabsf(x[i]));
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int g = 0; g < 8; g++) {
            int sum = 0;
            for (int i = 32 * g; i < 32 * g + 32; i++) {
                int v = (int)lrintf(x[i] * id);
                q[b].qs[i] = (int8_t)v;
                sum += v;
            }
            q[b].bsum[g] = (int16_t)sum;
        }
        q[b].d = amax / 127.0f;
        q[b].pad_[0] = q[b].pad_[1] = q[b].pad_[2] = 0.0f;
    }
}

/* Q4_K row . q8_K activations: per super-block
 * d*xd*sum_g sc_g*sum(q*xq) - dmin*xd*sum_g m_g*bsum_g, in integers inside. */
static float dot_q4_k_q8k_c(const uint8_t *w, const cpu_q8k *x, int64_t n)
{
    float s = 0.0f;
    for (int64_t b = 0; b < n / 256; b++, w += 144, x++) {
        const uint8_t *qs = w + 16;
        int32_t sumi = 0, summ = 0;
        for (int g = 0; g < 8; g++) {
            int sc, m, acc = 0;
            cpu_q4k_scale_min(w + 4, g, &sc, &m);
            for (int l = 0; l < 32; l++)
                acc += ((qs[(g / 2) * 32 + l] >> (4 * (g % 2))) & 0xF) * x->qs[32 * g + l];
            sumi += sc * acc;
            summ += m * x->bsum[g];
        }
        s += cpu_load_f16(w) * x->d * (float)sumi - cpu_load_f16(w + 2) * x->d * (float)summ;
    }
    return s;
}

static void mm_q4_k_c(const void *w, size_t ldw, int nw, const cpu_q8k *x, size_t ldx, int nx,
                      int64_t K, float *y, size_t ldy)
{
    for (int j = 0; j < nx; j++)
        for (int i = 0; i < nw; i++)
            y[(size_t)j * ldy + (size_t)i] =
                dot_q4_k_q8k_c((const uint8_t *)w + (size_t)i * ldw, x + (size_t)j * ldx, K);
}

/* ---- repacked weights (layouts in kernels.h) ---- */
const size_t cpu_x8_block_bytes[3] = {144, 1184, 272};
const int64_t cpu_x8_block_values[3] = {32, 256, 32};

void cpu_repack_x8(int fmt, const void *src, size_t ldw, int64_t K, int64_t g0, int64_t g1,
                   void *dst)
{
    int64_t nb = K / cpu_x8_block_values[fmt];
    size_t bs = cpu_x8_block_bytes[fmt], sbs = fmt == CPU_X8_Q4_0 ? 18 : fmt == CPU_X8_Q4_K ? 144 : 34;
    for (int64_t g = g0; g < g1; g++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *o = (uint8_t *)dst + (size_t)(g * nb + b) * bs;
            for (int r = 0; r < 8; r++) {
                const uint8_t *s = (const uint8_t *)src + (size_t)(8 * g + r) * ldw + (size_t)b * sbs;
                memcpy(o + 2 * r, s, 2); /* d */
                if (fmt == CPU_X8_Q4_0) {
                    for (int c = 0; c < 4; c++)
                        memcpy(o + 16 + 32 * c + 4 * r, s + 2 + 4 * c, 4);
                } else if (fmt == CPU_X8_Q8_0) {
                    for (int c = 0; c < 8; c++)
                        memcpy(o + 16 + 32 * c + 4 * r, s + 2 + 4 * c, 4);
                } else {
                    memcpy(o + 16 + 2 * r, s + 2, 2); /* dmin */
                    for (int j = 0; j < 8; j++) {
                        int sc, m;
                        cpu_q4k_scale_min(s + 4, j, &sc, &m);
                        o[32 + 8 * j + r] = (uint8_t)sc;
                        o[96 + 16 * (j / 2) + 2 * r + j % 2] = (uint8_t)m;
                    }
                    for (int c = 0; c < 32; c++)
                        memcpy(o + 160 + 32 * c + 4 * r, s + 16 + 4 * c, 4);
                }
            }
        }
}

/* The references read the repacked layouts value by value and sum in the
 * order of dot_q4_0_c / dot_q8_0_c / dot_q4_k_q8k_c, so that they give the
 * same floats as those on the original rows. */
static void mm_q4_0x8_c(const void *w, int ng, int64_t K, const cpu_q8 *x, const int32_t *xs,
                        size_t ldx, int nx, float *y, size_t ldy)
{
    (void)xs; /* the reference subtracts 8 from each value instead */
    int64_t nb = K / 32;
    for (int g = 0; g < ng; g++)
        for (int j = 0; j < nx; j++)
            for (int r = 0; r < 8; r++) {
                float s = 0.0f;
                for (int64_t b = 0; b < nb; b++) {
                    const uint8_t *blk = (const uint8_t *)w + (size_t)((int64_t)g * nb + b) * 144;
                    const cpu_q8 *xb = x + (size_t)j * ldx + (size_t)b;
                    int acc = 0;
                    for (int v = 0; v < 16; v++) {
                        uint8_t q = blk[16 + 32 * (v / 4) + 4 * r + v % 4];
                        acc += ((q & 0xF) - 8) * xb->qs[v];
                        acc += ((q >> 4) - 8) * xb->qs[16 + v];
                    }
                    s += cpu_load_f16(blk + 2 * r) * xb->d * (float)acc;
                }
                y[(size_t)j * ldy + (size_t)(8 * g + r)] = s;
            }
}

static void mm_q8_0x8_c(const void *w, int ng, int64_t K, const cpu_q8 *x, size_t ldx, int nx,
                        float *y, size_t ldy)
{
    int64_t nb = K / 32;
    for (int g = 0; g < ng; g++)
        for (int j = 0; j < nx; j++)
            for (int r = 0; r < 8; r++) {
                float s = 0.0f;
                for (int64_t b = 0; b < nb; b++) {
                    const uint8_t *blk = (const uint8_t *)w + (size_t)((int64_t)g * nb + b) * 272;
                    const cpu_q8 *xb = x + (size_t)j * ldx + (size_t)b;
                    int acc = 0;
                    for (int v = 0; v < 32; v++)
                        acc += (int8_t)blk[16 + 32 * (v / 4) + 4 * r + v % 4] * xb->qs[v];
                    s += cpu_load_f16(blk + 2 * r) * xb->d * (float)acc;
                }
                y[(size_t)j * ldy + (size_t)(8 * g + r)] = s;
            }
}

static void mm_q4_kx8_c(const void *w, int ng, int64_t K, const cpu_q8k *x, size_t ldx, int nx,
                        float *y, size_t ldy)
{
    int64_t nb = K / 256;
    for (int g = 0; g < ng; g++)
        for (int j = 0; j < nx; j++)
            for (int r = 0; r < 8; r++) {
                float s = 0.0f;
                for (int64_t b = 0; b < nb; b++) {
                    const uint8_t *blk = (const uint8_t *)w + (size_t)((int64_t)g * nb + b) * 1184;
                    const cpu_q8k *xb = x + (size_t)j * ldx + (size_t)b;
                    int32_t sumi = 0, summ = 0;
                    for (int sb = 0; sb < 8; sb++) {
                        int acc = 0;
                        for (int l = 0; l < 32; l++) {
                            int c = (sb / 2) * 8 + l / 4;
                            uint8_t q = blk[160 + 32 * c + 4 * r + l % 4];
                            acc += ((q >> (4 * (sb % 2))) & 0xF) * xb->qs[32 * sb + l];
                        }
                        sumi += blk[32 + 8 * sb + r] * acc;
                        summ += blk[96 + 16 * (sb / 2) + 2 * r + sb % 2] * xb->bsum[sb];
                    }
                    s += cpu_load_f16(blk + 2 * r) * xb->d * (float)sumi -
                         cpu_load_f16(blk + 16 + 2 * r) * xb->d * (float)summ;
                }
                y[(size_t)j * ldy + (size_t)(8 * g + r)] = s;
            }
}

void cpu_q8_sums(const cpu_q8 *x, int32_t *xs, int64_t n)
{
    for (int64_t b = 0; b < n; b++) {
        int32_t s = 0;
        for (int i = 0; i < CPU_QK; i++)
            s += x[b].qs[i];
        xs[b] = s;
    }
}

const cpu_kernels cpu_kernels_c = {
    .isa = "c",
    .dot_f32 = dot_f32_c,
    .dot_f16 = dot_f16_c,
    .dot_bf16 = dot_bf16_c,
    .f16_to_f32 = f16_to_f32_c,
    .bf16_to_f32 = bf16_to_f32_c,
    .gemm_f32 = gemm_f32_c,
    .quant_q8 = quant_q8_c,
    .dot_q8_0 = dot_q8_0_c,
    .dot_q4_0 = dot_q4_0_c,
    .dot_q4_k = dot_q4_k_c,
    .mm_q8_0 = mm_q8_0_c,
    .mm_q4_0 = mm_q4_0_c,
    .quant_q8k = quant_q8k_c,
    .mm_q4_k = mm_q4_k_c,
    .mm_q4_0x8 = mm_q4_0x8_c,
    .mm_q4_kx8 = mm_q4_kx8_c,
    .mm_q8_0x8 = mm_q8_0x8_c,
    .gemm_f32_acc = gemm_f32_acc_c,
    .gemm_packed = cpu_gemm_packed_c, /* kernels/gemm-c.c */
    .gemv = cpu_gemv_c,
    .attend = cpu_attend_c,        /* kernels/attend-c.c */
    .silu_mul = cpu_silu_mul_c,    /* kernels/vec-c.c */
};
