/* backends/cpu/kernels/kernels.h - the cpu backend's inner kernels: one
 * table of function pointers per instruction set, chosen once at plugin
 * create by cpu_kernels_select() (CPUID + XGETBV).  The plain-C table is the
 * reference every other variant is tested against
 * (tests/kernels/cpu_kernels.c). */
#ifndef TESSERA_CPU_KERNELS_H
#define TESSERA_CPU_KERNELS_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Activations quantized per block of 32 (llama.cpp's q8 path):
 * x[i] ~ d * qs[i]; s = d * sum(qs) (for formats with a per-block min). */
#define CPU_QK 32
typedef struct cpu_q8 {
    float d, s;
    int8_t qs[CPU_QK];
} cpu_q8;

/* Activations quantized per block of 256 with one scale (llama.cpp's q8_K),
 * for Q4_K: x[i] ~ d * qs[i]; bsum[g] = sum of qs[32g .. 32g+31]. */
#define CPU_QKK 256
typedef struct cpu_q8k {
    int8_t qs[CPU_QKK];
    int16_t bsum[8];
    float d;
    float pad_[3];
} cpu_q8k;

/* Block products of quantized weights with quantized activations:
 * y[j * ldy + i] = dot(weight row i, activation row j) for i < nw, j < nx;
 * weight row i starts at (const char *)w + i * ldw (GGML blocks), activation
 * row j at x + j * ldx (ldx in blocks); K values per row. */
typedef void (*cpu_mm_q8_fn)(const void *w, size_t ldw, int nw, const cpu_q8 *x, size_t ldx,
                             int nx, int64_t K, float *y, size_t ldy);
typedef void (*cpu_mm_q8k_fn)(const void *w, size_t ldw, int nw, const cpu_q8k *x, size_t ldx,
                              int nx, int64_t K, float *y, size_t ldy);

/* Attention of up to CPU_ATT_MAXR query rows that share one KV head
 * (kernels/attend-*.c): row r (hd floats at q[r]) attends keys lo[r] ..
 * hi[r] (inclusive; lo > hi: no keys, out row of zeros) of the rows
 * k + i * ldk and v + i * ldv; out[r] = softmax(cap * tanh(q.k * scale /
 * cap) or q.k * scale) . v.  work: cpu_att_work_floats(R, hd, nk) floats,
 * 32-byte aligned, nk = max hi + 1 - min lo over the rows with keys. */
#define CPU_ATT_MAXR 24
typedef struct cpu_att {
    int R;
    int64_t hd;
    float scale, cap;
    const float *q[CPU_ATT_MAXR];
    float *out[CPU_ATT_MAXR];
    int64_t lo[CPU_ATT_MAXR], hi[CPU_ATT_MAXR];
    const float *k, *v;
    size_t ldk, ldv;
    float *work;
} cpu_att;
static inline size_t cpu_att_work_floats(int R, int64_t hd, int64_t nk)
{
    size_t lds = ((size_t)nk + 7) & ~(size_t)7, rp = ((size_t)R + 5) / 6 * 6;
    /* weight panels of the score GEMM, packed queries, R + 1 score rows,
     * a spare output row, alignment */
    return (size_t)(64 * 256) + rp * (size_t)hd + ((size_t)R + 1) * lds + (size_t)hd + 32;
}
void cpu_attend_c(const cpu_att *a);
void cpu_silu_mul_c(const float *x, const float *u, float *y, int64_t n);

typedef struct cpu_kernels {
    const char *isa;                 /* "c", "avx2" */
    /* dot products of one weight row with one f32 vector of n values */
    float (*dot_f32)(const float *w, const float *x, int64_t n);
    float (*dot_f16)(const uint16_t *w, const float *x, int64_t n);
    float (*dot_bf16)(const uint16_t *w, const float *x, int64_t n);
    /* row conversion to f32 */
    void (*f16_to_f32)(const uint16_t *src, float *dst, int64_t n);
    void (*bf16_to_f32)(const uint16_t *src, float *dst, int64_t n);
    /* Block of dot products: y[j * ldy + i] = dot(w + i*ldw, x + j*ldx, K)
     * for i < nw, j < nx (f32 weights already converted). */
    void (*gemm_f32)(const float *w, size_t ldw, int nw, const float *x, size_t ldx, int nx,
                     int64_t K, float *y, size_t ldy);
    /* quantize n (multiple of 32) activations into n/32 blocks */
    void (*quant_q8)(const float *x, cpu_q8 *q, int64_t n);
    /* dot of one GGML-block weight row (n values) with quantized x */
    float (*dot_q8_0)(const void *w, const cpu_q8 *x, int64_t n);
    float (*dot_q4_0)(const void *w, const cpu_q8 *x, int64_t n);
    float (*dot_q4_k)(const void *w, const cpu_q8 *x, int64_t n);
    /* multi-row / multi-token blocks (decode: nx = 1; prefill: tiles) */
    cpu_mm_q8_fn mm_q8_0, mm_q4_0;
    /* quantize n (multiple of 256) activations into n/256 q8_K blocks */
    void (*quant_q8k)(const float *x, cpu_q8k *q, int64_t n);
    cpu_mm_q8k_fn mm_q4_k;
    /* weights repacked in groups of 8 rows (cpu_repack_x8, layouts below):
     * y[j * ldy + 8g + r] = dot(row r of group g, activation row j) for
     * g < ng, j < nx; w points at group 0, groups follow each other */
    void (*mm_q4_0x8)(const void *w, int ng, int64_t K, const cpu_q8 *x, const int32_t *xs,
                      size_t ldx, int nx, float *y, size_t ldy);
    void (*mm_q4_kx8)(const void *w, int ng, int64_t K, const cpu_q8k *x, size_t ldx, int nx,
                      float *y, size_t ldy);
    void (*mm_q8_0x8)(const void *w, int ng, int64_t K, const cpu_q8 *x, size_t ldx, int nx,
                      float *y, size_t ldy);
    /* gemm_f32 that adds into y instead of storing (K-blocked GEMM) */
    void (*gemm_f32_acc)(const float *w, size_t ldw, int nw, const float *x, size_t ldx, int nx,
                         int64_t K, float *y, size_t ldy);
    /* prefill GEMM of F32/F16/BF16 weights on packed activations (see
     * "Prefill GEMM" below) */
    void (*gemm_packed)(int wtype, const void *w, size_t ldw, int nw, const float *xp, int nx,
                        int64_t K, float *y, size_t ldy, float *wp);
    /* decode GEMV of F32/F16/BF16 weights (rows as for gemm_packed), a few
     * tokens: y[j * ldy + i] = dot(weight row i, x + j * ldx), i < nw, j < nx */
    void (*gemv)(int wtype, const void *w, size_t ldw, int nw, const float *x, size_t ldx, int nx,
                 int64_t K, float *y, size_t ldy);
    /* attention of one tile of query rows (cpu_att above) */
    void (*attend)(const cpu_att *a);
    /* y[i] = x[i] * sigmoid(x[i]) (SiLU), times u[i] unless u is NULL (SwiGLU) */
    void (*silu_mul)(const float *x, const float *u, float *y, int64_t n);
} cpu_kernels;

/* Repacked weights (llama.cpp's idea of 8-row interleaving, own layouts):
 * rows 8g .. 8g+7 form group g; the groups' blocks follow each other.
 *  Q4_0x8, per block of 32 values (144 bytes): f16 d[8] | qs[128] where
 *    byte 4r+i of chunk c (32 bytes, c < 4) is byte 4c+i of row r's qs (low
 *    nibble: value 4c+i, high nibble: value 16+4c+i).  x = d * (q - 8).
 *  Q4_Kx8, per super-block of 256 (1184 bytes): f16 d[8] | f16 dmin[8] |
 *    u8 sc[8 sub-blocks][8 rows] | u8 mn[4 pairs][8 rows][2] (mins of
 *    sub-blocks 2p, 2p+1) | qs[1024] where byte 4r+i of chunk c (c < 32) is
 *    byte 4c+i of row r's qs (low nibble: sub-block 2(c/8), high: 2(c/8)+1,
 *    value 4(c%8)+i of each).
 *  Q8_0x8, per block of 32 (272 bytes): f16 d[8] | qs[256] where byte 4r+i
 *    of chunk c (c < 8) is value 4c+i of row r.
 * mm_q4_0x8 also takes xs[j * ldx + b] = sum of x[j * ldx + b].qs. */
enum { CPU_X8_Q4_0, CPU_X8_Q4_K, CPU_X8_Q8_0 };
extern const size_t cpu_x8_block_bytes[3];    /* one block of 8 rows */
extern const int64_t cpu_x8_block_values[3];  /* values per row in a block */
/* Repack groups [g0, g1) of the GGML rows at src (row stride ldw bytes, K
 * values per row) into dst (the whole repacked tensor). */
void cpu_repack_x8(int fmt, const void *src, size_t ldw, int64_t K, int64_t g0, int64_t g1,
                   void *dst);
/* xs for mm_q4_0x8: the sums of the quantized values of n blocks */
void cpu_q8_sums(const cpu_q8 *x, int32_t *xs, int64_t n);

extern const cpu_kernels cpu_kernels_c;
extern const cpu_kernels cpu_kernels_avx2;  /* NULL members: use the C one */

/* Prefill GEMM (kernels/gemm-*.c): y[j * ldy + i] = dot(weight row i, x row
 * j) for i < nw <= CPU_GEMM_NC, j < nx.  Weight row i (K values of type
 * wtype) starts at (const char *)w + i * ldw; wp is scratch of
 * CPU_GEMM_WP_FLOATS floats (64-byte aligned).  The activations are packed
 * by cpu_gemm_pack_x: K in slices of CPU_GEMM_KC (the last may be shorter),
 * rows in groups of CPU_GEMM_MR (padded with zeros); slice k0 (kc values)
 * starts at xp + k0 * cpu_gemm_rows_padded(nx), group g of it at
 * + g * kc * CPU_GEMM_MR, and holds x[g*MR + r][k0 + k] at k * MR + r. */
enum { CPU_GEMM_F32, CPU_GEMM_F16, CPU_GEMM_BF16 };
#define CPU_GEMM_MR 6
#define CPU_GEMM_NR 16
#define CPU_GEMM_KC 256
#define CPU_GEMM_NC 64
#define CPU_GEMM_WP_FLOATS (CPU_GEMM_NC * CPU_GEMM_KC)
static inline int64_t cpu_gemm_rows_padded(int64_t nx)
{
    return (nx + CPU_GEMM_MR - 1) / CPU_GEMM_MR * CPU_GEMM_MR;
}
/* pack groups [g0, g1) of the nx rows of x (row stride ldx floats) */
void cpu_gemm_pack_x(const float *x, size_t ldx, int nx, int64_t K, int g0, int g1, float *xp);
void cpu_gemm_packed_c(int wtype, const void *w, size_t ldw, int nw, const float *xp, int nx,
                       int64_t K, float *y, size_t ldy, float *wp);
void cpu_gemv_c(int wtype, const void *w, size_t ldw, int nw, const float *x, size_t ldx, int nx,
                int64_t K, float *y, size_t ldy);
#if defined(__x86_64__) || defined(__i386__)
void cpu_gemv_avx2(int wtype, const void *w, size_t ldw, int nw, const float *x, size_t ldx,
                   int nx, int64_t K, float *y, size_t ldy);
void cpu_gemm_f32_avx2(const float *w, size_t ldw, int nw, const float *x, size_t ldx, int nx,
                       int64_t K, float *y, size_t ldy);
void cpu_attend_avx2(const cpu_att *a);
void cpu_silu_mul_avx2(const float *x, const float *u, float *y, int64_t n);
void cpu_gemm_packed_avx2(int wtype, const void *w, size_t ldw, int nw, const float *xp, int nx,
                          int64_t K, float *y, size_t ldy, float *wp);
#endif

/* What this CPU and OS support (CPUID + XGETBV). */
typedef struct cpu_features {
    int avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16, amx_tile,
        amx_int8, amx_bf16;
} cpu_features;
void cpu_features_detect(cpu_features *f);
/* The best table for this machine; TESSERA_CPU_ISA=c forces the reference.
 * Missing members are filled from the C table. */
void cpu_kernels_select(cpu_kernels *out);
/* A table for a named ISA if the machine runs it ("c", "avx2"), else 0. */
int cpu_kernels_get(const char *isa, cpu_kernels *out);

static inline float cpu_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, x;
    if (e == 0) {
        if (m == 0) {
            x = sign;
        } else {
            e = 127 - 15 + 1;
            while (!(m & 0x400u)) {
                m <<= 1;
                e--;
            }
            x = sign | (e << 23) | ((m & 0x3FFu) << 13);
        }
    } else if (e == 31) {
        x = sign | 0x7F800000u | (m << 13);
    } else {
        x = sign | ((e - 15 + 127) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static inline float cpu_bf16_to_f32(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* Q4_K's 6-bit scale and min of sub-block j from the 12 packed bytes. */
static inline void cpu_q4k_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static inline float cpu_load_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return cpu_f16_to_f32(h);
}
#endif
