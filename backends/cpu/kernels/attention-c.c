/* backends/cpu/kernels/attention-c.c - causal scaled-dot-product attention
 * over the KV cache with GQA, sliding window and logit soft-capping, as
 * transformers' eager_attention_forward: softmax(q k^T * scale + mask) v in
 * float32.  This file splits the work into tiles of query rows sharing one
 * KV head and hands them to the tile kernel (kernels/attend-*.c); the
 * scores live in per-thread scratch owned by the backend (no allocation per
 * decode step). */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include "../cpu.h"

/* Work units: a block of consecutive query positions and a run of the
 * query heads that share one KV head, at most CPU_ATT_MAXR rows, handed out
 * by an atomic counter (heaviest - the last positions - first), so the
 * causal triangle does not leave one thread with most of the work. */
typedef struct att_job {
    const cpu_kernels *k;
    tsr_tensor *t;
    float *work;              /* per-thread cpu_att work areas */
    size_t work_floats;       /* floats per thread (a multiple of 8) */
    int64_t kv_len;
    int64_t P, gh;            /* positions and heads per unit */
    int64_t nb, nsub;         /* position blocks, head runs per KV head */
    int64_t units;
    atomic_long next;
} att_job;

static void att_task(void *ctx, int ith, int nth)
{
    (void)nth;
    att_job *j = ctx;
    tsr_tensor *t = j->t;
    const tsr_tensor *q = t->src[0], *kc = t->src[1], *vc = t->src[2], *pos = t->src[3];
    int64_t hd = q->ne[0], H = q->ne[1], N = q->ne[2], Hkv = kc->ne[1];
    int64_t G = H / Hkv, kv_len = j->kv_len;
    int64_t window = tsr_param_i(t, 2);
    cpu_att a;
    a.hd = hd;
    a.scale = tsr_param_f(t, 1);
    a.cap = tsr_param_f(t, 3);
    a.ldk = (size_t)kc->nb[2] / sizeof(float);
    a.ldv = (size_t)vc->nb[2] / sizeof(float);
    a.work = j->work + (size_t)ith * j->work_floats;
    for (;;) {
        int64_t u = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (u >= j->units)
            break;
        int64_t per_pb = Hkv * j->nsub;
        int64_t pb = j->nb - 1 - u / per_pb, hk = (u % per_pb) / j->nsub, sub = u % j->nsub;
        int64_t n0 = pb * j->P, n1 = n0 + j->P < N ? n0 + j->P : N;
        int64_t h0 = hk * G + sub * j->gh, h1 = h0 + j->gh < (hk + 1) * G ? h0 + j->gh : (hk + 1) * G;
        int R = 0;
        for (int64_t n = n0; n < n1; n++) {
            int64_t p = ((const int32_t *)pos->data)[n];
            int64_t lo = 0, hi = p < kv_len - 1 ? p : kv_len - 1;
            if (window > 0 && p - window + 1 > lo)
                lo = p - window + 1;
            for (int64_t h = h0; h < h1; h++) {
                a.q[R] = cpu_row(q, h, n, 0);
                a.out[R] = cpu_row(t, h, n, 0);
                a.lo[R] = lo;
                a.hi[R] = hi;
                R++;
            }
        }
        a.R = R;
        a.k = cpu_row(kc, hk, 0, 0);
        a.v = cpu_row(vc, hk, 0, 0);
        j->k->attend(&a);
    }
}

int cpu_op_attention(cpu_ctx *c, tsr_tensor *t)
{
    int64_t kv_len = tsr_param_i(t, 0);
    const tsr_tensor *q = t->src[0], *kc = t->src[1];
    if (kv_len <= 0 || kv_len > kc->ne[2] || q->ne[1] % kc->ne[1] || q->nb[0] != sizeof(float) ||
        kc->nb[0] != sizeof(float) || t->src[2]->nb[0] != sizeof(float))
        return 1;
    int nth = cpu_pool_size(c->pool);
    int64_t hd = q->ne[0], H = q->ne[1], N = q->ne[2], Hkv = kc->ne[1], G = H / Hkv;
    /* head runs: the whole group, halved while there are too few units to
     * keep every thread busy (decode, few KV heads) */
    att_job j;
    j.gh = G < CPU_ATT_MAXR ? G : CPU_ATT_MAXR;
    for (;;) {
        j.P = CPU_ATT_MAXR / j.gh < N ? CPU_ATT_MAXR / j.gh : N;
        j.nb = (N + j.P - 1) / j.P;
        j.nsub = (G + j.gh - 1) / j.gh;
        j.units = j.nb * Hkv * j.nsub;
        if (j.units >= 4 * nth || j.gh == 1)
            break;
        j.gh = (j.gh + 1) / 2;
    }
    j.k = &c->k;
    j.t = t;
    j.kv_len = kv_len;
    /* sized by the cache capacity: grown once, not per decode step */
    j.work_floats = (cpu_att_work_floats(CPU_ATT_MAXR, hd, kc->ne[2]) + 7) & ~(size_t)7;
    float *w = cpu_scratch(c, 0, (size_t)nth * j.work_floats * sizeof(float) + 32);
    if (!w)
        return 1;
    j.work = (float *)(((uintptr_t)w + 31) & ~(uintptr_t)31);
    atomic_init(&j.next, 0);
    cpu_pool_run(c->pool, att_task, &j);
    return 0;
}
