/* backends/cpu/kernels/matmul-c.c - y = x W^T + b (torch.nn.Linear):
 * W [K, N] (rows of K contiguous) in any weight format, x [K, M] f32.
 * Threads split the output features N.  Three paths, all through the
 * kernel table chosen at create (kernels.h):
 *  - Q8_0 / Q4_0 / Q4_K: x is quantized once per call into q8 blocks of 32
 *    (llama.cpp's q8 path) and each weight row meets it in integer dot
 *    products;
 *  - F32 / F16 / BF16, few rows of x (decode): GEMV straight from the
 *    stored weight row, converted in registers;
 *  - F32 / F16 / BF16, many rows (prefill): blocks of weight rows are
 *    converted to f32 in per-thread scratch and multiplied with tiles of x
 *    (gemm_f32);
 *  - any other format: host->dequantize_row and an f32 dot product. */
#include <stdlib.h>
#include "../cpu.h"

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

enum { MM_QUANT, MM_QDOT, MM_GEMV, MM_GEMM, MM_DEQ };

typedef struct mm_job {
    cpu_ctx *c;
    tsr_tensor *t;
    int mode;
    int64_t K, N, M;
    cpu_q8 *xq;               /* MM_QUANT: M rows of K/32 blocks */
    cpu_q8k *xqk;             /* MM_QUANT, Q4_K: M rows of K/256 blocks */
    float *scratch;           /* nth blocks of `rows_per_block` * K floats */
    int64_t rows_per_block;
    volatile int failed;
} mm_job;

static float bias_at(const tsr_tensor *b, int64_t n)
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

static const float *x_row(const tsr_tensor *x, int64_t m)
{
    return cpu_row(x, m % x->ne[1], m / x->ne[1], 0);
}

static float *y_row(const tsr_tensor *t, int64_t m)
{
    return cpu_row(t, m % t->ne[1], m / t->ne[1], 0);
}

/* rows of x (and y) evenly spaced in memory */
static int uniform_rows(const tsr_tensor *x)
{
    return x->ne[2] == 1 || x->nb[2] == x->nb[1] * (size_t)x->ne[1];
}

static void quant_task(void *ctx, int ith, int nth)
{
    mm_job *j = ctx;
    int64_t b, e;
    cpu_split(j->M, ith, nth, &b, &e);
    for (int64_t m = b; m < e; m++) {
        if (j->xqk)
            j->c->k.quant_q8k(x_row(j->t->src[1], m), j->xqk + m * (j->K / CPU_QKK), j->K);
        else
            j->c->k.quant_q8(x_row(j->t->src[1], m), j->xq + m * (j->K / CPU_QK), j->K);
    }
}

static void mm_task(void *ctx, int ith, int nth)
{
    mm_job *j = ctx;
    tsr_tensor *t = j->t;
    const tsr_tensor *w = t->src[0], *x = t->src[1], *bias = t->src[2];
    const cpu_kernels *k = &j->c->k;
    int64_t K = j->K, M = j->M, n0, n1;
    cpu_split(j->N, ith, nth, &n0, &n1);
    if (j->mode == MM_QDOT) {
        /* decode: one weight row at a time against 1-3 tokens (measured
         * faster end to end than the multi-row kernels at M = 1 here) */
        float (*dot)(const void *, const cpu_q8 *, int64_t) =
            w->dtype == TSR_DTYPE_Q8_0 ? k->dot_q8_0 : w->dtype == TSR_DTYPE_Q4_0 ? k->dot_q4_0
                                                                                : k->dot_q4_k;
        int64_t nbk = K / CPU_QK;
        for (int64_t n = n0; n < n1; n++) {
            const void *wr = cpu_row(w, n, 0, 0);
            float bv = bias_at(bias, n);
            for (int64_t m = 0; m < M; m++)
                y_row(t, m)[n] = dot(wr, j->xq + m * nbk, K) + bv;
        }
    } else if (j->mode == MM_QUANT) {
        /* blocks of 16 weight rows (in L1) against every token; decode
         * (M = 1) runs 4 rows per pass sharing each activation block */
        int64_t nbk = w->dtype == TSR_DTYPE_Q4_K ? K / CPU_QKK : K / CPU_QK;
        int uni = uniform_rows(t);
        size_t ldy = t->nb[1] / sizeof(float);
        for (int64_t nb = n0; nb < n1; nb += 16) {
            int nw = (int)(nb + 16 < n1 ? 16 : n1 - nb);
            const void *wr = cpu_row(w, nb, 0, 0);
            for (int64_t m = 0; m < M; m += uni ? M : 1) {
                int nx = uni ? (int)M : 1;
                float *yr = y_row(t, m) + nb;
                if (w->dtype == TSR_DTYPE_Q4_K)
                    k->mm_q4_k(wr, w->nb[1], nw, j->xqk + m * nbk, (size_t)nbk, nx, K, yr, ldy);
                else
                    (w->dtype == TSR_DTYPE_Q8_0 ? k->mm_q8_0 : k->mm_q4_0)(
                        wr, w->nb[1], nw, j->xq + m * nbk, (size_t)nbk, nx, K, yr, ldy);
            }
            if (bias)
                for (int64_t m = 0; m < M; m++)
                    for (int i = 0; i < nw; i++)
                        y_row(t, m)[nb + i] += bias_at(bias, nb + i);
        }
    } else if (j->mode == MM_GEMV) {
        for (int64_t n = n0; n < n1; n++) {
            const void *wr = cpu_row(w, n, 0, 0);
            float bv = bias_at(bias, n);
            for (int64_t m = 0; m < M; m++) {
                const float *xr = x_row(x, m);
                float s = w->dtype == TSR_DTYPE_F32   ? k->dot_f32(wr, xr, K)
                          : w->dtype == TSR_DTYPE_F16 ? k->dot_f16(wr, xr, K)
                                                      : k->dot_bf16(wr, xr, K);
                y_row(t, m)[n] = s + bv;
            }
        }
    } else if (j->mode == MM_GEMM) {
        float *buf = j->scratch + (size_t)ith * (size_t)(j->rows_per_block * K);
        size_t ldx = x->nb[1] / sizeof(float), ldy = t->nb[1] / sizeof(float);
        for (int64_t nb = n0; nb < n1; nb += j->rows_per_block) {
            int nw = (int)(nb + j->rows_per_block < n1 ? j->rows_per_block : n1 - nb);
            const float *wb;
            size_t ldw;
            if (w->dtype == TSR_DTYPE_F32) {
                wb = cpu_row(w, nb, 0, 0);
                ldw = w->nb[1] / sizeof(float);
            } else {
                for (int i = 0; i < nw; i++) {
                    const uint16_t *src = cpu_row(w, nb + i, 0, 0);
                    if (w->dtype == TSR_DTYPE_F16)
                        k->f16_to_f32(src, buf + (size_t)i * (size_t)K, K);
                    else
                        k->bf16_to_f32(src, buf + (size_t)i * (size_t)K, K);
                }
                wb = buf;
                ldw = (size_t)K;
            }
            /* x in chunks of 48 rows so that they stay in cache across the
             * weight block, K in slices of 512 so that a 4x3 tile's seven
             * rows stay in L1 */
            for (int64_t m0 = 0; m0 < M; m0 += 48) {
                int nx = (int)(m0 + 48 < M ? 48 : M - m0);
                for (int64_t k0 = 0; k0 < K; k0 += 512) {
                    int64_t kc = k0 + 512 < K ? 512 : K - k0;
                    (k0 ? k->gemm_f32_acc : k->gemm_f32)(wb + k0, ldw, nw, x_row(x, m0) + k0, ldx,
                                                        nx, kc, y_row(t, m0) + nb, ldy);
                }
            }
            if (bias)
                for (int64_t m = 0; m < M; m++)
                    for (int i = 0; i < nw; i++)
                        y_row(t, m)[nb + i] += bias_at(bias, nb + i);
        }
    } else {
        float *wrow = j->scratch + (size_t)ith * (size_t)K;
        for (int64_t n = n0; n < n1; n++) {
            if (j->c->host->dequantize_row(w, n, wrow)) {
                j->failed = 1;
                return;
            }
            float bv = bias_at(bias, n);
            for (int64_t m = 0; m < M; m++)
                y_row(t, m)[n] = k->dot_f32(wrow, x_row(x, m), K) + bv;
        }
    }
}

int cpu_op_mul_mat(cpu_ctx *c, tsr_tensor *t)
{
    const tsr_tensor *w = t->src[0], *x = t->src[1];
    if (w->dtype == TSR_DTYPE_INT_GROUP || w->dtype == TSR_DTYPE_CODEBOOK4) {
        int r = cpu_op_mul_mat_lowbit(c, t); /* kernels/matmul-lowbit.c */
        if (r >= 0)
            return r;                          /* -1: not handled there */
    }
    int nth = cpu_pool_size(c->pool);
    mm_job j = {c, t, MM_DEQ, w->ne[0], w->ne[1], x->ne[1] * x->ne[2], NULL, NULL, NULL, 1, 0};
    uint32_t dt = w->dtype;
    int is_float = dt == TSR_DTYPE_F32 || dt == TSR_DTYPE_F16 || dt == TSR_DTYPE_BF16;
    if ((dt == TSR_DTYPE_Q8_0 || dt == TSR_DTYPE_Q4_0) && j.K % 32 == 0)
        j.mode = MM_QUANT;
    else if (dt == TSR_DTYPE_Q4_K && j.K % 256 == 0)
        j.mode = MM_QUANT;
    else if (is_float && (j.M < 4 || !uniform_rows(x) || !uniform_rows(t)))
        j.mode = MM_GEMV;
    else if (is_float)
        j.mode = MM_GEMM;
    if (j.mode == MM_QUANT && j.M < 4) {
        j.mode = MM_QDOT;
        j.xq = cpu_scratch(c, 1, (size_t)j.M * (size_t)(j.K / CPU_QK) * sizeof(cpu_q8));
        if (!j.xq)
            return 1;
        for (int64_t m = 0; m < j.M; m++) /* small: no thread hand-off */
            c->k.quant_q8(x_row(x, m), j.xq + m * (j.K / CPU_QK), j.K);
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
    } else if (j.mode == MM_GEMM || j.mode == MM_DEQ) {
        if (j.mode == MM_GEMM) {
            int64_t r = (256 * 1024 / 4) / (j.K > 0 ? j.K : 1);
            j.rows_per_block = r < 4 ? 4 : r > 64 ? 64 : r / 4 * 4;
        }
        size_t need = (size_t)nth * (size_t)j.rows_per_block * (size_t)j.K;
        if (need > c->scratch_per_thread) {
            free(c->scratch);
            c->scratch = malloc(need * sizeof(float));
            c->scratch_per_thread = c->scratch ? need : 0;
            if (!c->scratch)
                return 1;
        }
        j.scratch = c->scratch;
    }
    cpu_pool_run(c->pool, mm_task, &j);
    return j.failed;
}
