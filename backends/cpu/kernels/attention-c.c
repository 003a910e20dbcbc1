/* backends/cpu/kernels/attention-c.c - causal scaled-dot-product attention
 * over the KV cache with GQA, sliding window and logit soft-capping, as
 * transformers' eager_attention_forward: softmax(q k^T * scale + mask) v in
 * float32.  Threads split the (query, head) pairs; the scores live in
 * per-thread scratch owned by the backend (no allocation per step). */
#include <math.h>
#include <stdlib.h>
#include "../cpu.h"

typedef struct att_job {
    const cpu_kernels *k;
    tsr_tensor *t;
    float *scores;            /* nth rows of kv_len floats */
    int64_t kv_len;
} att_job;

static void att_task(void *ctx, int ith, int nth)
{
    att_job *j = ctx;
    tsr_tensor *t = j->t;
    const tsr_tensor *q = t->src[0], *kc = t->src[1], *vc = t->src[2], *pos = t->src[3];
    int64_t hd = q->ne[0], H = q->ne[1], N = q->ne[2], Hkv = kc->ne[1];
    int64_t group = H / Hkv, kv_len = j->kv_len;
    float scale = tsr_param_f(t, 1), cap = tsr_param_f(t, 3);
    int64_t window = tsr_param_i(t, 2);
    float *s = j->scores + (size_t)ith * (size_t)kv_len;
    int64_t b, e;
    cpu_split(N * H, ith, nth, &b, &e);
    for (int64_t idx = b; idx < e; idx++) {
        int64_t n = idx / H, h = idx % H, hk = h / group;
        int64_t p = ((const int32_t *)pos->data)[n];
        const float *qr = cpu_row(q, h, n, 0);
        float *out = cpu_row(t, h, n, 0);
        int64_t lo = 0, hi = p < kv_len - 1 ? p : kv_len - 1;
        if (window > 0 && p - window + 1 > lo)
            lo = p - window + 1;
        float mx = -INFINITY;
        for (int64_t k = lo; k <= hi; k++) {
            float d = j->k->dot_f32(cpu_row(kc, hk, k, 0), qr, hd) * scale;
            if (cap > 0.0f)
                d = cap * tanhf(d / cap);
            s[k] = d;
            mx = d > mx ? d : mx;
        }
        float sum = 0.0f;
        for (int64_t k = lo; k <= hi; k++)
            sum += s[k] = expf(s[k] - mx);
        for (int64_t i = 0; i < hd; i++)
            out[i] = 0.0f;
        for (int64_t k = lo; k <= hi; k++) {
            const float *vr = cpu_row(vc, hk, k, 0);
            float w = s[k] / sum;
            for (int64_t i = 0; i < hd; i++)
                out[i] += w * vr[i];
        }
    }
}

int cpu_op_attention(cpu_ctx *c, tsr_tensor *t)
{
    int64_t kv_len = tsr_param_i(t, 0);
    if (kv_len <= 0 || kv_len > t->src[1]->ne[2] || t->src[0]->ne[1] % t->src[1]->ne[1])
        return 1;
    int nth = cpu_pool_size(c->pool);
    /* sized by the cache capacity: grown once, not per decode step */
    float *scores = cpu_scratch(c, 0, (size_t)nth * (size_t)t->src[1]->ne[2] * sizeof(float));
    if (!scores)
        return 1;
    att_job j = {&c->k, t, scores, kv_len};
    cpu_pool_run(c->pool, att_task, &j);
    return 0;
}
