/* backends/cpu/cpu.h - internals of the cpu backend plugin. */
#ifndef TESSERA_CPU_H
#define TESSERA_CPU_H
#include <tessera/plugin/plugin.h>
#include "kernels/kernels.h"

/* A fixed pool of worker threads; the calling thread works too. */
typedef struct cpu_pool cpu_pool;
/* fn(ctx, ith, nth) is called once per thread index ith in [0, nth). */
typedef void (*cpu_task_fn)(void *ctx, int ith, int nth);
cpu_pool *cpu_pool_create(int n_threads);
void cpu_pool_destroy(cpu_pool *p);
int cpu_pool_size(const cpu_pool *p);
void cpu_pool_run(cpu_pool *p, cpu_task_fn fn, void *ctx);

/* Split [0, n) into nth near-equal ranges; range ith is [*b, *e). */
static inline void cpu_split(int64_t n, int ith, int nth, int64_t *b, int64_t *e)
{
    int64_t per = (n + nth - 1) / nth;
    *b = per * ith < n ? per * ith : n;
    *e = *b + per < n ? *b + per : n;
}

typedef struct cpu_ctx {
    const tsr_host *host;
    cpu_pool *pool;
    float *scratch;           /* per-thread scratch rows */
    size_t scratch_per_thread;
    cpu_kernels k;            /* inner kernels for this CPU (kernels/isa.c) */
    void *buf[3];             /* grow-only scratch: 0 per-thread rows of
                                 attention, 1 quantized activations, 2 a
                                 weight repacked for one prefill MUL_MAT */
    size_t buf_size[3];
    struct cpu_packed *packed; /* weights repacked in 8-row groups, by data
                                  pointer (kernels/matmul-c.c) */
    int n_packed, cap_packed, packed_hint;
    int repack_heap;          /* TESSERA_CPU_REPACK_HEAP=1: also weights outside file mappings */
    int repack;               /* which CPU_X8_* formats to repack (bit 1 << fmt);
                                 TESSERA_CPU_REPACK=mask overrides, 0 = none */
    int no_lowbit;            /* TESSERA_CPU_LOWBIT=0: INT_GROUP / CODEBOOK4 take
                                 the dequantize_row path, not matmul-lowbit.c */
} cpu_ctx;

/* Free the repacked weights (kernels/matmul-c.c). */
void cpu_packed_free(cpu_ctx *c);

/* Scratch slot `slot` with at least `bytes` bytes (grows, never shrinks, so
 * the decode steps after the first allocate nothing); NULL if out of memory. */
void *cpu_scratch(cpu_ctx *c, int slot, size_t bytes);

/* Row access: element (i1, i2, i3) row start. */
static inline void *cpu_row(const tsr_tensor *t, int64_t i1, int64_t i2, int64_t i3)
{
    return (char *)t->data + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
}

/* MUL_MAT operands: bias element n (F32/F16/BF16; 0 without a bias), and
 * row m of x or of the output y with the dims above ne[0] flattened. */
static inline float cpu_bias_at(const tsr_tensor *b, int64_t n)
{
    if (!b)
        return 0.0f;
    const char *p = (const char *)b->data + n * b->nb[0];
    if (b->dtype == TSR_DTYPE_F32)
        return *(const float *)p;
    uint16_t h;
    memcpy(&h, p, 2);
    return b->dtype == TSR_DTYPE_BF16 ? cpu_bf16_to_f32(h) : cpu_f16_to_f32(h);
}

static inline const float *cpu_x_row(const tsr_tensor *x, int64_t m)
{
    return cpu_row(x, m % x->ne[1], m / x->ne[1], 0);
}

static inline float *cpu_y_row(const tsr_tensor *t, int64_t m)
{
    return cpu_row(t, m % t->ne[1], m / t->ne[1], 0);
}

/* rows of x (and y) evenly spaced in memory */
static inline int cpu_uniform_rows(const tsr_tensor *x)
{
    return x->ne[2] == 1 || x->nb[2] == x->nb[1] * (size_t)x->ne[1];
}

/* Kernels (reference C). Each returns 0 on success. */
int cpu_op_get_rows(cpu_ctx *c, tsr_tensor *node);
int cpu_op_norm(cpu_ctx *c, tsr_tensor *node);
int cpu_op_elementwise(cpu_ctx *c, tsr_tensor *node);
int cpu_op_rope(cpu_ctx *c, tsr_tensor *node);
int cpu_op_kv_store(cpu_ctx *c, tsr_tensor *node);
int cpu_op_softmax(cpu_ctx *c, tsr_tensor *node);
int cpu_op_cpy(cpu_ctx *c, tsr_tensor *node);
int cpu_op_moe_gate(cpu_ctx *c, tsr_tensor *node);
int cpu_op_mul_mat(cpu_ctx *c, tsr_tensor *node);
/* MUL_MAT on TSR_DTYPE_INT8_ROW: LLM.int8 with outlier columns (kernels/int8-c.c). */
int cpu_op_mul_mat_int8(cpu_ctx *c, tsr_tensor *node);
int cpu_op_attention(cpu_ctx *c, tsr_tensor *node);
/* MUL_MAT on TSR_DTYPE_INT_GROUP / TSR_DTYPE_CODEBOOK4 with native kernels
 * (kernels/matmul-lowbit.c): 0 done, 1 failed, -1 not handled (the caller
 * takes the generic dequantize_row path). */
int cpu_op_mul_mat_lowbit(cpu_ctx *c, tsr_tensor *node);
/* The M rows of x (K values each) rounded to dt (TSR_DTYPE_F16/BF16), in
 * scratch slot 1 as M x K contiguous floats: the input a 16-bit compute
 * dtype sees (kernels/matmul-lowbit.c); NULL if out of memory. */
const float *cpu_round_x(cpu_ctx *c, const tsr_tensor *x, int64_t M, int64_t K, uint32_t dt);

/* Convert a row of a plain float dtype to f32. */
void cpu_row_to_f32(const tsr_host *h, uint32_t dtype, const void *src, float *dst, int64_t n);
#endif
