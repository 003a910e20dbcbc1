/* backends/cpu/kernels/matmul-c.c - y = x W^T + b (torch.nn.Linear):
 * W [K, N] (rows of K contiguous) in any weight format, x [K, M] f32.
 * Threads split the output features N.  Three paths, all through the
 * kernel table chosen at create (kernels.h):
 *  - Q8_0 / Q4_0 / Q4_K: x is quantized once per call into q8 blocks of 32
 *    (llama.cpp's q8 path) and each weight row meets it in integer dot
 *    products; weights with rows in multiples of 8 are first repacked (once,
 *    on first use, kept by the backend) into groups of 8 interleaved rows
 *    (kernels.h), multiplied by the mm_*x8 kernels: threads split the groups;
 *  - F32 / F16 / BF16, few rows of x (decode): GEMV straight from the
 *    stored weight row, converted in registers;
 *  - F32 / F16 / BF16, many rows (prefill): x is packed once per call and
 *    each thread runs the register-tiled gemm_packed over its panels of
 *    output features (kernels.h "Prefill GEMM", kernels/gemm-*.c);
 *  - any other format: host->dequantize_row and an f32 dot product (with
 *    a CODEBOOK4 weight's 16-bit compute_dtype: x, the weight row and the
 *    bias rounded to it, each output rounded once; with an INT_GROUP
 *    weight's 16-bit weight_dtype: only the weight row rounded to it -
 *    tessera/plugin/formats.h). */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* madvise */
#endif
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/mman.h>
#endif
#include "../cpu.h"
#include "lowbit.h"

void *cpu_scratch(cpu_ctx *c, int slot, size_t bytes)
{
    if (bytes > c->buf_size[slot]) {
        free(c->buf[slot]);
        size_t sz = bytes + bytes / 4;
        c->buf[slot] = aligned_alloc(64, (sz + 63) / 64 * 64);
        c->buf_size[slot] = c->buf[slot] ? sz : 0;
    }
    return c->buf[slot];
}

enum { MM_QUANT, MM_QDOT, MM_GEMV, MM_GEMM, MM_DEQ, MM_X8 };

/* ---- repacked weights: one entry per weight (by data pointer and shape),
 * made on the first MUL_MAT that uses it and kept until destroy.  Like the
 * device uploads of core/placement.c this takes weights to be immutable for
 * the life of the model (the backend lives exactly as long). */
typedef struct cpu_packed {
    const void *src;
    size_t ldw;
    int64_t K, N;
    int fmt;
    void *data;
} cpu_packed;

void cpu_packed_free(cpu_ctx *c)
{
    for (int i = 0; i < c->n_packed; i++)
        free(c->packed[i].data);
    free(c->packed);
    c->packed = NULL;
    c->n_packed = c->cap_packed = 0;
}

/* the repacked layout of w's format, or -1 (format, shape or turned off) */
static int x8_format(const cpu_ctx *c, const tsr_tensor *w)
{
    int f = w->dtype == TSR_DTYPE_Q4_0 ? CPU_X8_Q4_0 : w->dtype == TSR_DTYPE_Q4_K ? CPU_X8_Q4_K
          : w->dtype == TSR_DTYPE_Q8_0 ? CPU_X8_Q8_0 : -1;
    if (f < 0 || !(c->repack & (1 << f)) || w->ne[0] % cpu_x8_block_values[f] || w->ne[1] % 8 ||
        w->ne[1] < 8 || w->ne[2] != 1 || w->ne[3] != 1)
        return -1;
    return f;
}

typedef struct repack_job {
    const tsr_tensor *w;
    int fmt;
    int64_t g0, g1;
    void *dst;
} repack_job;

static void repack_task(void *ctx, int ith, int nth)
{
    repack_job *r = ctx;
    int64_t b, e;
    cpu_split(r->g1 - r->g0, ith, nth, &b, &e);
    cpu_repack_x8(r->fmt, r->w->data, r->w->nb[1], r->w->ne[0], r->g0 + b, r->g0 + e, r->dst);
}

/* Once repacked, the original bytes are not read by MUL_MAT any more: when
 * they lie in a read-only file mapping (the GGUF / safetensors mmap: never
 * written, so no private copy of a page exists) their whole pages are
 * dropped from memory as the repacking goes, and a later read (GET_ROWS of
 * a tied embedding, another backend) faults them in again from the file.
 * Anything else (heap copies such as un-permuted q/k rows, a writable
 * mapping) is left alone. */
static int file_mapped(const void *p, size_t n)
{
    int ok = 0;
#ifdef __linux__
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    uintptr_t a = (uintptr_t)p, e = a + n;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi, off, ino;
        char perms[8], dev[16];
        if (sscanf(line, "%lx-%lx %7s %lx %15s %lu", &lo, &hi, perms, &off, dev, &ino) != 6)
            continue;
        if (a >= lo && e <= hi) {
            ok = perms[0] == 'r' && perms[1] == '-' && ino != 0;
            break;
        }
    }
    fclose(f);
#else
    (void)p;
    (void)n;
#endif
    return ok;
}

static void drop_pages(uintptr_t a, uintptr_t e)
{
#ifdef __linux__
    if (e > a)
        madvise((void *)a, e - a, MADV_DONTNEED);
#else
    (void)a;
    (void)e;
#endif
}

/* The repacked copy of w, made now if needed; NULL: use the original rows
 * (no layout for it, a heap weight, or out of memory). */
static const void *packed_weight(cpu_ctx *c, const tsr_tensor *w, int fmt)
{
    int n = c->n_packed;
    /* weights come back in the same order every step: look after the last hit first */
    for (int i = 0; i < n; i++) {
        cpu_packed *e = &c->packed[(c->packed_hint + i) % n];
        if (e->src == w->data && e->ldw == w->nb[1] && e->K == w->ne[0] && e->N == w->ne[1] &&
            e->fmt == fmt) {
            c->packed_hint = (c->packed_hint + i + 1) % n;
            return e->data;
        }
    }
    if (c->n_packed == c->cap_packed) {
        int cap = c->cap_packed ? 2 * c->cap_packed : 64;
        cpu_packed *np = realloc(c->packed, (size_t)cap * sizeof *np);
        if (!np)
            return NULL;
        c->packed = np;
        c->cap_packed = cap;
    }
    int64_t ng = w->ne[1] / 8, nb = w->ne[0] / cpu_x8_block_values[fmt];
    size_t bytes = (size_t)ng * (size_t)nb * cpu_x8_block_bytes[fmt];
    /* in chunks of about 8 MiB of source, each dropped once repacked, so
     * that the peak stays near one copy of the weights.  A weight that is
     * not in a read-only file mapping (the core's heap copy of un-permuted
     * q/k rows of a llama GGUF) keeps its rows: a second copy of it would
     * stay resident (measured: +62 MiB of 591 for TinyLlama Q4_0), and
     * TESSERA_CPU_REPACK_HEAP=1 repacks it anyway. */
    size_t src_bytes = (size_t)w->ne[1] * w->nb[1], gbytes = 8 * w->nb[1];
    uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE), s0 = (uintptr_t)w->data;
    int drop = ps > 0 && file_mapped(w->data, src_bytes);
    void *dst = NULL;
    if ((drop || c->repack_heap) && !(dst = aligned_alloc(64, (bytes + 63) / 64 * 64)))
        return NULL;
    if (!dst) { /* remembered as "original rows" so maps is read once */
        c->packed[c->n_packed++] = (cpu_packed){w->data, w->nb[1], w->ne[0], w->ne[1], fmt, NULL};
        return NULL;
    }
    uintptr_t done = drop ? (s0 + ps - 1) / ps * ps : 0;
    int64_t step = (int64_t)((8u << 20) / gbytes) + 1;
    for (int64_t g = 0; g < ng; g += step) {
        repack_job r = {w, fmt, g, g + step < ng ? g + step : ng, dst};
        cpu_pool_run(c->pool, repack_task, &r);
        if (drop) {
            uintptr_t e = r.g1 == ng ? s0 + src_bytes : s0 + (size_t)r.g1 * gbytes;
            e = e / ps * ps;
            drop_pages(done, e);
            done = e > done ? e : done;
        }
    }
    c->packed[c->n_packed++] = (cpu_packed){w->data, w->nb[1], w->ne[0], w->ne[1], fmt, dst};
    return dst;
}

/* A weight that is not kept repacked (a heap copy, such as the un-permuted
 * q/k rows of a llama GGUF: a second resident copy would cost RSS) is still
 * repacked for a prefill of at least X8_TEMP_M tokens, into scratch reused
 * by the next such weight: one pass over its bytes, against M passes of the
 * slower row-wise kernels (TinyLlama Q4_K pp512: q/k took 13% of the time
 * for 10% of the weights). */
#define X8_TEMP_M 32
static const void *temp_repack(cpu_ctx *c, const tsr_tensor *w, int fmt)
{
    int64_t ng = w->ne[1] / 8, nb = w->ne[0] / cpu_x8_block_values[fmt];
    void *dst = cpu_scratch(c, 2, (size_t)ng * (size_t)nb * cpu_x8_block_bytes[fmt]);
    if (!dst)
        return NULL;
    repack_job r = {w, fmt, 0, ng, dst};
    cpu_pool_run(c->pool, repack_task, &r);
    return dst;
}

typedef struct mm_job {
    cpu_ctx *c;
    tsr_tensor *t;
    int mode;
    int64_t K, N, M;
    cpu_q8 *xq;               /* MM_QUANT: M rows of K/32 blocks */
    cpu_q8k *xqk;             /* MM_QUANT, Q4_K: M rows of K/256 blocks */
    int32_t *xs;              /* MM_X8, Q4_0: sums of the xq blocks */
    const void *wp;           /* MM_X8: the repacked weight */
    int fmt;                  /* MM_X8: its CPU_X8_* layout */
    float *scratch;           /* MM_GEMM / MM_DEQ, sized in cpu_op_mul_mat */
    int64_t rows_per_block;
    volatile int failed;
    uint32_t cdt;             /* MM_DEQ, CODEBOOK4: compute dtype (F32: none) */
    const float *xr;          /* cdt F16/BF16: x rounded, M rows of K */
    uint32_t wdt;             /* MM_DEQ: weight rows rounded to (cdt, or INT_GROUP's weight_dtype) */
} mm_job;

static void quant_task(void *ctx, int ith, int nth)
{
    mm_job *j = ctx;
    int64_t b, e;
    cpu_split(j->M, ith, nth, &b, &e);
    for (int64_t m = b; m < e; m++) {
        if (j->xqk)
            j->c->k.quant_q8k(cpu_x_row(j->t->src[1], m), j->xqk + m * (j->K / CPU_QKK), j->K);
        else
            j->c->k.quant_q8(cpu_x_row(j->t->src[1], m), j->xq + m * (j->K / CPU_QK), j->K);
        if (j->xs)
            cpu_q8_sums(j->xq + m * (j->K / CPU_QK), j->xs + m * (j->K / CPU_QK), j->K / CPU_QK);
    }
}

/* MM_X8: threads split the groups of 8 rows; tokens in chunks of X8_MC so
 * that their quantized rows stay in L2 while the groups stream by */
#define X8_MC 64
static void x8_task(mm_job *j, int ith, int nth)
{
    tsr_tensor *t = j->t;
    const tsr_tensor *bias = t->src[2];
    const cpu_kernels *k = &j->c->k;
    int64_t K = j->K, M = j->M, g0, g1;
    cpu_split(j->N / 8, ith, nth, &g0, &g1);
    if (g1 <= g0)
        return;
    int64_t nbk = K / cpu_x8_block_values[j->fmt];
    const uint8_t *wg = (const uint8_t *)j->wp + (size_t)(g0 * nbk) * cpu_x8_block_bytes[j->fmt];
    int ng = (int)(g1 - g0), uni = cpu_uniform_rows(t);
    size_t ldy = t->nb[1] / sizeof(float);
    for (int64_t m0 = 0; m0 < M; m0 += uni ? X8_MC : 1) {
        int nx = uni ? (int)(m0 + X8_MC < M ? X8_MC : M - m0) : 1;
        float *y = cpu_y_row(t, m0) + 8 * g0;
        if (j->fmt == CPU_X8_Q4_K)
            k->mm_q4_kx8(wg, ng, K, j->xqk + m0 * nbk, (size_t)nbk, nx, y, ldy);
        else if (j->fmt == CPU_X8_Q4_0)
            k->mm_q4_0x8(wg, ng, K, j->xq + m0 * nbk, j->xs + m0 * nbk, (size_t)nbk, nx, y, ldy);
        else
            k->mm_q8_0x8(wg, ng, K, j->xq + m0 * nbk, (size_t)nbk, nx, y, ldy);
    }
    if (bias)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 8 * g0; n < 8 * g1; n++)
                cpu_y_row(t, m)[n] += cpu_bias_at(bias, n);
}

/* MM_GEMM: pack x (kernels.h "Prefill GEMM"), groups of rows split across
 * the threads, into scratch after the nth weight-panel buffers */
/* MM_GEMM's scratch: a block counter (first 64 bytes), nth weight-panel
 * buffers, the packed x */
#define GEMM_HDR 16
static atomic_long *gemm_next(const mm_job *j)
{
    return (atomic_long *)(void *)j->scratch;
}

static float *gemm_xp(const mm_job *j, int nth)
{
    return j->scratch + GEMM_HDR + (size_t)nth * CPU_GEMM_WP_FLOATS;
}

static void xpack_task(void *ctx, int ith, int nth)
{
    mm_job *j = ctx;
    const tsr_tensor *x = j->t->src[1];
    int64_t g0, g1;
    cpu_split(cpu_gemm_rows_padded(j->M) / CPU_GEMM_MR, ith, nth, &g0, &g1);
    cpu_gemm_pack_x(cpu_x_row(x, 0), x->nb[1] / sizeof(float), (int)j->M, j->K, (int)g0, (int)g1,
                    gemm_xp(j, nth));
}

static void mm_task(void *ctx, int ith, int nth)
{
    mm_job *j = ctx;
    tsr_tensor *t = j->t;
    const tsr_tensor *w = t->src[0], *x = t->src[1], *bias = t->src[2];
    const cpu_kernels *k = &j->c->k;
    int64_t K = j->K, M = j->M, n0, n1;
    cpu_split(j->N, ith, nth, &n0, &n1);
    if (j->mode == MM_X8) {
        x8_task(j, ith, nth);
    } else if (j->mode == MM_QDOT) {
        /* decode: one weight row at a time against 1-3 tokens (measured
         * faster end to end than the multi-row kernels at M = 1 here) */
        float (*dot)(const void *, const cpu_q8 *, int64_t) =
            w->dtype == TSR_DTYPE_Q8_0 ? k->dot_q8_0 : w->dtype == TSR_DTYPE_Q4_0 ? k->dot_q4_0
                                                                                : k->dot_q4_k;
        int64_t nbk = K / CPU_QK;
        for (int64_t n = n0; n < n1; n++) {
            const void *wr = cpu_row(w, n, 0, 0);
            float bv = cpu_bias_at(bias, n);
            for (int64_t m = 0; m < M; m++)
                cpu_y_row(t, m)[n] = dot(wr, j->xq + m * nbk, K) + bv;
        }
    } else if (j->mode == MM_QUANT) {
        /* blocks of 16 weight rows (in L1) against every token; decode
         * (M = 1) runs 4 rows per pass sharing each activation block */
        int64_t nbk = w->dtype == TSR_DTYPE_Q4_K ? K / CPU_QKK : K / CPU_QK;
        int uni = cpu_uniform_rows(t);
        size_t ldy = t->nb[1] / sizeof(float);
        for (int64_t nb = n0; nb < n1; nb += 16) {
            int nw = (int)(nb + 16 < n1 ? 16 : n1 - nb);
            const void *wr = cpu_row(w, nb, 0, 0);
            for (int64_t m = 0; m < M; m += uni ? M : 1) {
                int nx = uni ? (int)M : 1;
                float *yr = cpu_y_row(t, m) + nb;
                if (w->dtype == TSR_DTYPE_Q4_K)
                    k->mm_q4_k(wr, w->nb[1], nw, j->xqk + m * nbk, (size_t)nbk, nx, K, yr, ldy);
                else
                    (w->dtype == TSR_DTYPE_Q8_0 ? k->mm_q8_0 : k->mm_q4_0)(
                        wr, w->nb[1], nw, j->xq + m * nbk, (size_t)nbk, nx, K, yr, ldy);
            }
            if (bias)
                for (int64_t m = 0; m < M; m++)
                    for (int i = 0; i < nw; i++)
                        cpu_y_row(t, m)[nb + i] += cpu_bias_at(bias, nb + i);
        }
    } else if (j->mode == MM_GEMV) {
        /* decode: k->gemv runs 4 weight rows per pass against all the
         * tokens (each row read from memory once), on blocks of 64 rows
         * taken from a shared counter as in MM_GEMM; rows of x or y not
         * evenly spaced (no counter): this thread's rows, 16 at a time (in
         * L1) token by token */
        int wt = w->dtype == TSR_DTYPE_F32   ? CPU_GEMM_F32
                 : w->dtype == TSR_DTYPE_F16 ? CPU_GEMM_F16
                                             : CPU_GEMM_BF16;
        int64_t blk = j->scratch ? 64 : 16;
        for (int64_t nb = j->scratch ? 0 : n0;; nb += blk) {
            if (j->scratch)
                nb = atomic_fetch_add_explicit(gemm_next(j), 1, memory_order_relaxed) * blk;
            int64_t ne = j->scratch ? j->N : n1;
            if (nb >= ne)
                break;
            int nw = (int)(nb + blk < ne ? blk : ne - nb);
            if (j->scratch)
                k->gemv(wt, cpu_row(w, nb, 0, 0), w->nb[1], nw, cpu_x_row(x, 0),
                        x->nb[1] / sizeof(float), (int)M, K, cpu_y_row(t, 0) + nb,
                        t->nb[1] / sizeof(float));
            else
                for (int64_t m = 0; m < M; m++)
                    k->gemv(wt, cpu_row(w, nb, 0, 0), w->nb[1], nw, cpu_x_row(x, m), 0, 1, K,
                            cpu_y_row(t, m) + nb, 0);
            if (bias)
                for (int64_t m = 0; m < M; m++)
                    for (int64_t n = nb; n < nb + nw; n++)
                        cpu_y_row(t, m)[n] += cpu_bias_at(bias, n);
        }
    } else if (j->mode == MM_GEMM) {
        /* kernels.h "Prefill GEMM" on x packed by xpack_task; the threads
         * take blocks of CPU_GEMM_NC output features from a shared counter,
         * so that one slowed down (a busy machine) holds no one up */
        float *wp = j->scratch + GEMM_HDR + (size_t)ith * CPU_GEMM_WP_FLOATS;
        const float *xp = gemm_xp(j, nth);
        int wt = w->dtype == TSR_DTYPE_F32   ? CPU_GEMM_F32
                 : w->dtype == TSR_DTYPE_F16 ? CPU_GEMM_F16
                                             : CPU_GEMM_BF16;
        size_t ldy = t->nb[1] / sizeof(float);
        for (;;) {
            int64_t nb = atomic_fetch_add_explicit(gemm_next(j), 1, memory_order_relaxed) *
                         CPU_GEMM_NC;
            if (nb >= j->N)
                break;
            int nw = (int)(nb + CPU_GEMM_NC < j->N ? CPU_GEMM_NC : j->N - nb);
            k->gemm_packed(wt, cpu_row(w, nb, 0, 0), w->nb[1], nw, xp, (int)M, K, cpu_y_row(t, 0) + nb,
                           ldy, wp);
            if (bias)
                for (int64_t m = 0; m < M; m++)
                    for (int i = 0; i < nw; i++)
                        cpu_y_row(t, m)[nb + i] += cpu_bias_at(bias, nb + i);
        }
    } else {
        float *wrow = j->scratch + (size_t)ith * (size_t)K;
        for (int64_t n = n0; n < n1; n++) {
            if (j->c->host->dequantize_row(w, n, wrow)) {
                j->failed = 1;
                return;
            }
            if (j->wdt)
                cpu_round_row(j->wdt, wrow, K);
            float bv = cpu_round_to(j->cdt, cpu_bias_at(bias, n));
            for (int64_t m = 0; m < M; m++) {
                const float *xm = j->xr ? j->xr + (size_t)m * (size_t)K : cpu_x_row(x, m);
                cpu_y_row(t, m)[n] = cpu_round_to(j->cdt, k->dot_f32(wrow, xm, K) + bv);
            }
        }
    }
}

int cpu_op_mul_mat(cpu_ctx *c, tsr_tensor *t)
{
    const tsr_tensor *w = t->src[0], *x = t->src[1];
    if ((w->dtype == TSR_DTYPE_INT_GROUP || w->dtype == TSR_DTYPE_CODEBOOK4) && !c->no_lowbit) {
        int r = cpu_op_mul_mat_lowbit(c, t); /* kernels/matmul-lowbit.c */
        if (r >= 0)
            return r;                          /* -1: not handled there */
    }
    int nth = cpu_pool_size(c->pool);
    mm_job j = {c, t, MM_DEQ, w->ne[0], w->ne[1], x->ne[1] * x->ne[2], NULL, NULL, NULL, NULL, -1,
                NULL, 1, 0, TSR_DTYPE_F32, NULL, TSR_DTYPE_F32};
    uint32_t dt = w->dtype;
    if ((j.fmt = x8_format(c, w)) >= 0 &&
        ((j.wp = packed_weight(c, w, j.fmt)) || (j.M >= X8_TEMP_M && (j.wp = temp_repack(c, w, j.fmt))))) {
        j.mode = MM_X8;
        int64_t nbk = j.K / cpu_x8_block_values[j.fmt];
        size_t blocks = (size_t)j.M * (size_t)nbk;
        if (j.fmt == CPU_X8_Q4_K) {
            j.xqk = cpu_scratch(c, 1, blocks * sizeof(cpu_q8k));
            if (!j.xqk)
                return 1;
        } else {
            j.xq = cpu_scratch(c, 1, blocks * (sizeof(cpu_q8) + sizeof(int32_t)));
            if (!j.xq)
                return 1;
            if (j.fmt == CPU_X8_Q4_0)
                j.xs = (int32_t *)(j.xq + blocks);
        }
        if (j.M < 4)
            quant_task(&j, 0, 1); /* small: no thread hand-off */
        else
            cpu_pool_run(c->pool, quant_task, &j);
        cpu_pool_run(c->pool, mm_task, &j);
        return 0;
    }
    int is_float = dt == TSR_DTYPE_F32 || dt == TSR_DTYPE_F16 || dt == TSR_DTYPE_BF16;
    if ((dt == TSR_DTYPE_Q8_0 || dt == TSR_DTYPE_Q4_0) && j.K % 32 == 0)
        j.mode = MM_QUANT;
    else if (dt == TSR_DTYPE_Q4_K && j.K % 256 == 0)
        j.mode = MM_QUANT;
    else if (is_float && (j.M < 4 || !cpu_uniform_rows(x) || !cpu_uniform_rows(t)))
        j.mode = MM_GEMV;
    else if (is_float)
        j.mode = MM_GEMM;
    if (j.mode == MM_QUANT && j.M < 4) {
        j.mode = MM_QDOT;
        j.xq = cpu_scratch(c, 1, (size_t)j.M * (size_t)(j.K / CPU_QK) * sizeof(cpu_q8));
        if (!j.xq)
            return 1;
        for (int64_t m = 0; m < j.M; m++) /* small: no thread hand-off */
            c->k.quant_q8(cpu_x_row(x, m), j.xq + m * (j.K / CPU_QK), j.K);
    } else if (j.mode == MM_QUANT) {
        if (dt == TSR_DTYPE_Q4_K) {
            j.xqk = cpu_scratch(c, 1, (size_t)j.M * (size_t)(j.K / CPU_QKK) * sizeof(cpu_q8k));
            if (!j.xqk)
                return 1;
        } else {
            j.xq = cpu_scratch(c, 1, (size_t)j.M * (size_t)(j.K / CPU_QK) * sizeof(cpu_q8));
            if (!j.xq)
                return 1;
        }
        cpu_pool_run(c->pool, quant_task, &j);
    } else if (j.mode == MM_GEMV && cpu_uniform_rows(x) && cpu_uniform_rows(t)) {
        /* only the block counter (grow-only: nothing allocated per step) */
        if (GEMM_HDR > c->scratch_per_thread) {
            free(c->scratch);
            c->scratch = aligned_alloc(64, GEMM_HDR * sizeof(float));
            c->scratch_per_thread = c->scratch ? GEMM_HDR : 0;
            if (!c->scratch)
                return 1;
        }
        j.scratch = c->scratch;
        atomic_init(gemm_next(&j), 0);
    } else if (j.mode == MM_GEMM || j.mode == MM_DEQ) {
        /* MM_GEMM: nth weight-panel buffers, then x packed for all M rows;
         * MM_DEQ: one dequantized row per thread */
        size_t need = j.mode == MM_GEMM ? GEMM_HDR + (size_t)nth * CPU_GEMM_WP_FLOATS +
                                              (size_t)cpu_gemm_rows_padded(j.M) * (size_t)j.K
                                        : (size_t)nth * (size_t)j.K;
        if (need > c->scratch_per_thread) {
            free(c->scratch);
            c->scratch = aligned_alloc(64, (need * sizeof(float) + 63) / 64 * 64);
            c->scratch_per_thread = c->scratch ? need : 0;
            if (!c->scratch)
                return 1;
        }
        j.scratch = c->scratch;
        if (j.mode == MM_DEQ && dt == TSR_DTYPE_CODEBOOK4 &&
            (j.cdt = tsr_fmt_codebook4_compute_dtype(w->format_data)) != TSR_DTYPE_F32) {
            if (!(j.xr = cpu_round_x(c, x, j.M, j.K, j.cdt)))
                return 1;
        }
        j.wdt = j.cdt;
        if (j.mode == MM_DEQ && dt == TSR_DTYPE_INT_GROUP)
            j.wdt = tsr_fmt_int_group_weight_dtype(w->format_data);
        if (j.mode == MM_GEMM) {
            atomic_init(gemm_next(&j), 0);
            cpu_pool_run(c->pool, xpack_task, &j);
        }
    }
    cpu_pool_run(c->pool, mm_task, &j);
    return j.failed;
}
