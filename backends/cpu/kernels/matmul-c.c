/* backends/cpu/kernels/matmul-c.c - y = x W^T + b (torch.nn.Linear) in
 * plain C: W [K, N] (rows of K contiguous) in F32/F16/BF16, x [K, M] f32.
 * Threads split the output features; each thread converts a W row once
 * and reuses it for all M rows of x. */
#include <stdlib.h>
#include "../cpu.h"

typedef struct mm_job {
    cpu_ctx *c;
    tsr_tensor *t;
    float *scratch;           /* nth rows of K floats */
    volatile int failed;
} mm_job;

/* Dot product with 8 independent partial sums (vectorisable without
 * reassociation flags). */
static float dot_f32(const float *a, const float *b, int64_t n)
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

static void mm_task(void *ctx, int ith, int nth)
{
    mm_job *j = ctx;
    tsr_tensor *t = j->t;
    const tsr_tensor *w = t->src[0], *x = t->src[1], *bias = t->src[2];
    int64_t K = w->ne[0], N = w->ne[1], M = x->ne[1] * x->ne[2];
    float *wrow = j->scratch + (size_t)ith * (size_t)K;
    int64_t n0, n1;
    cpu_split(N, ith, nth, &n0, &n1);
    float bv = 0.0f;
    for (int64_t n = n0; n < n1; n++) {
        const float *wr;
        if (w->dtype == TSR_DTYPE_F32) {
            wr = cpu_row(w, n, 0, 0);
        } else if (w->dtype == TSR_DTYPE_F16 || w->dtype == TSR_DTYPE_BF16) {
            cpu_row_to_f32(j->c->host, w->dtype, cpu_row(w, n, 0, 0), wrow, K);
            wr = wrow;
        } else {
            /* any other weight format: the core's reference dequantizer */
            if (j->c->host->dequantize_row(w, n, wrow))
                j->failed = 1;
            wr = wrow;
        }
        if (bias)
            cpu_row_to_f32(j->c->host, bias->dtype, (const char *)bias->data + n * bias->nb[0], &bv, 1);
        for (int64_t m = 0; m < M; m++) {
            const float *xr = cpu_row(x, m % x->ne[1], m / x->ne[1], 0);
            float *yr = cpu_row(t, m % t->ne[1], m / t->ne[1], 0);
            yr[n] = dot_f32(wr, xr, K) + bv;
        }
    }
}

int cpu_op_mul_mat(cpu_ctx *c, tsr_tensor *t)
{
    int nth = cpu_pool_size(c->pool);
    size_t need = (size_t)nth * (size_t)t->src[0]->ne[0];
    if (need > c->scratch_per_thread) {
        free(c->scratch);
        c->scratch = malloc(need * sizeof(float));
        c->scratch_per_thread = c->scratch ? need : 0;
        if (!c->scratch)
            return 1;
    }
    mm_job j = {c, t, c->scratch, 0};
    cpu_pool_run(c->pool, mm_task, &j);
    return j.failed;
}
