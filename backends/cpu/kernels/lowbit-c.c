/* backends/cpu/kernels/lowbit-c.c - plain-C reference of the low-bit
 * kernels (lowbit.h) and the choice of table. */
#include <stdatomic.h>
#include <string.h>
#include "kernels.h"
#include "lowbit.h"

/* code k of a little-endian bit stream of `bits`-bit codes (bits <= 8) */
static inline uint32_t code_at(const uint8_t *q, int bits, int64_t k)
{
    int64_t bit = k * bits;
    uint32_t off = (uint32_t)(bit & 7), v = q[bit >> 3] >> off;
    if (off + (uint32_t)bits > 8)
        v |= (uint32_t)q[(bit >> 3) + 1] << (8 - off);
    return v & ((1u << bits) - 1u);
}

static inline uint32_t nibble_at(const uint8_t *q, int64_t k)
{
    return (k & 1) ? (q[k >> 1] & 15u) : (q[k >> 1] >> 4);
}

/* codes k .. k+7 (k a multiple of 8) */
static inline void unpack8(const uint8_t *q, int bits, int64_t k, float w[8])
{
    if (bits == 8) {
        for (int i = 0; i < 8; i++)
            w[i] = (float)q[k + i];
        return;
    }
    const uint8_t *p = q + ((k * bits) >> 3); /* 8 codes fill `bits` bytes */
    uint32_t v = 0, mask = (1u << bits) - 1u;
    for (int i = 0; i < bits; i++)
        v |= (uint32_t)p[i] << (8 * i);
    for (int i = 0; i < 8; i++)
        w[i] = (float)((v >> (i * bits)) & mask);
}

/* the 4-bit code-book values of nibbles k .. k+7 (k a multiple of 8) */
static inline void nibbles8(const uint8_t *q, int64_t k, const float *code, float w[8])
{
    for (int i = 0; i < 4; i++) {
        uint8_t b = q[(k >> 1) + i];
        w[2 * i] = code[b >> 4];
        w[2 * i + 1] = code[b & 15u];
    }
}

/* Dot products a group (block) at a time: eight partial sums per
 * activation row, so that the compiler may keep them in vectors. */
static inline void dot_ig(const uint8_t *q, const int bits, int64_t K, int64_t gs, const float *scale,
                          const float *zero, const float *x, size_t ldx, const int nx, float *out)
{
    float tot[CPU_LOWBIT_MAX_NX] = {0};
    int64_t K8 = K & ~(int64_t)7;
    for (int64_t k0 = 0, g = 0; k0 < K; k0 += gs, g++) {
        int64_t k1 = k0 + gs < K ? k0 + gs : K, kv = k1 < K8 ? k1 : K8, k = k0;
        float acc[CPU_LOWBIT_MAX_NX][8] = {{0}}, z = zero[g], w[8];
        for (; k < kv; k += 8) {
            unpack8(q, bits, k, w);
            for (int i = 0; i < 8; i++)
                w[i] -= z;
            for (int m = 0; m < nx; m++)
                for (int i = 0; i < 8; i++)
                    acc[m][i] += w[i] * x[(size_t)m * ldx + (size_t)(k + i)];
        }
        for (; k < k1; k++) {
            float wk = (float)code_at(q, bits, k) - z;
            for (int m = 0; m < nx; m++)
                acc[m][0] += wk * x[(size_t)m * ldx + (size_t)k];
        }
        for (int m = 0; m < nx; m++) {
            float a = 0.0f;
            for (int i = 0; i < 8; i++)
                a += acc[m][i];
            tot[m] += a * scale[g];
        }
    }
    for (int m = 0; m < nx; m++)
        out[m] = tot[m];
}

/* the kernels with `bits` (and the number of activation rows) constant:
 * the compiler unrolls the unpacking and keeps the sums in registers */
#define DOT_IG_NX(b)                                                           \
    switch (nx) {                                                              \
    case 1: dot_ig(q, b, K, gs, scale, zero, x, ldx, 1, out); return;          \
    case 2: dot_ig(q, b, K, gs, scale, zero, x, ldx, 2, out); return;          \
    case 3: dot_ig(q, b, K, gs, scale, zero, x, ldx, 3, out); return;          \
    default: dot_ig(q, b, K, gs, scale, zero, x, ldx, 4, out); return;         \
    }

static void dot_int_group_c(const uint8_t *q, int bits, int64_t K, int64_t gs, const float *scale,
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

static inline void deq_ig(const uint8_t *q, const int bits, int64_t k0, int64_t n, int64_t gs,
                          const float *scale, const float *zero, float *dst)
{
    int64_t end = k0 + n, k = k0;
    float w[8];
    for (; k + 8 <= end; k += 8) {
        int64_t g = k / gs; /* 8 | gs: the eight share a group */
        unpack8(q, bits, k, w);
        for (int i = 0; i < 8; i++)
            dst[k - k0 + i] = (w[i] - zero[g]) * scale[g];
    }
    for (; k < end; k++) {
        int64_t g = k / gs;
        dst[k - k0] = ((float)code_at(q, bits, k) - zero[g]) * scale[g];
    }
}

static void deq_int_group_c(const uint8_t *q, int bits, int64_t k0, int64_t n, int64_t gs,
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

static inline void dot_cb(const uint8_t *q, int64_t K, int64_t f0, int64_t bs, const float *code,
                          const float *absmax, const float *x, size_t ldx, const int nx, float *out)
{
    float tot[CPU_LOWBIT_MAX_NX] = {0};
    int64_t K8 = K & ~(int64_t)7;
    for (int64_t k = 0; k < K;) {
        int64_t b = (f0 + k) / bs, k1 = (b + 1) * bs - f0;
        if (k1 > K)
            k1 = K;
        int64_t kv = k1 < K8 ? k1 : K8;
        float acc[CPU_LOWBIT_MAX_NX][8] = {{0}}, w[8];
        for (; k < kv; k += 8) {
            nibbles8(q, k, code, w);
            for (int m = 0; m < nx; m++)
                for (int i = 0; i < 8; i++)
                    acc[m][i] += w[i] * x[(size_t)m * ldx + (size_t)(k + i)];
        }
        for (; k < k1; k++) {
            float wk = code[nibble_at(q, k)];
            for (int m = 0; m < nx; m++)
                acc[m][0] += wk * x[(size_t)m * ldx + (size_t)k];
        }
        for (int m = 0; m < nx; m++) {
            float a = 0.0f;
            for (int i = 0; i < 8; i++)
                a += acc[m][i];
            tot[m] += a * absmax[b];
        }
    }
    for (int m = 0; m < nx; m++)
        out[m] = tot[m];
}

static void dot_codebook4_c(const uint8_t *q, int64_t K, int64_t f0, int64_t bs, const float *code,
                            const float *absmax, const float *x, size_t ldx, int nx, float *out)
{
    switch (nx) {
    case 1: dot_cb(q, K, f0, bs, code, absmax, x, ldx, 1, out); return;
    case 2: dot_cb(q, K, f0, bs, code, absmax, x, ldx, 2, out); return;
    case 3: dot_cb(q, K, f0, bs, code, absmax, x, ldx, 3, out); return;
    default: dot_cb(q, K, f0, bs, code, absmax, x, ldx, 4, out); return;
    }
}

static void deq_codebook4_c(const uint8_t *q, int64_t k0, int64_t n, int64_t f0, int64_t bs,
                            const float *code, const float *absmax, float *dst)
{
    int64_t end = k0 + n, k = k0;
    float w[8];
    for (; k + 8 <= end; k += 8) {
        float s = absmax[(f0 + k) / bs]; /* 8 | bs and 8 | f0: one block */
        nibbles8(q, k, code, w);
        for (int i = 0; i < 8; i++)
            dst[k - k0 + i] = w[i] * s;
    }
    for (; k < end; k++)
        dst[k - k0] = code[nibble_at(q, k)] * absmax[(f0 + k) / bs];
}

const cpu_lowbit_kernels cpu_lowbit_c = {
    .isa = "c",
    .dot_int_group = dot_int_group_c,
    .deq_int_group = deq_int_group_c,
    .dot_codebook4 = dot_codebook4_c,
    .deq_codebook4 = deq_codebook4_c,
};

/* 0: not looked at yet, 1: AVX2 + FMA + F16C usable, 2: not */
static atomic_int g_avx2_state;

static int machine_runs_avx2(void)
{
    int s = atomic_load_explicit(&g_avx2_state, memory_order_relaxed);
    if (!s) {
        cpu_features f;
        cpu_features_detect(&f);
        s = f.avx2 && f.fma && f.f16c ? 1 : 2;
        atomic_store_explicit(&g_avx2_state, s, memory_order_relaxed);
    }
    return s == 1;
}

const cpu_lowbit_kernels *cpu_lowbit_get(const char *isa)
{
    if (!strcmp(isa, "c"))
        return &cpu_lowbit_c;
#ifdef TESSERA_CPU_HAVE_AVX2
    if (!strcmp(isa, "avx2") && machine_runs_avx2())
        return &cpu_lowbit_avx2;
#else
    (void)machine_runs_avx2;
#endif
    return NULL;
}

const cpu_lowbit_kernels *cpu_lowbit_select(const char *main_isa)
{
    if (main_isa && !strcmp(main_isa, "c"))
        return &cpu_lowbit_c;
    const cpu_lowbit_kernels *t = cpu_lowbit_get("avx2");
    return t ? t : &cpu_lowbit_c;
}
