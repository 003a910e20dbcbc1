/* backends/cpu/kernels/ops-c.c - reference C kernels for the small ops.
 * Shapes follow tessera/plugin/tensor.h (ne[0] innermost). */
#include <math.h>
#include <string.h>
#include "../cpu.h"

void cpu_row_to_f32(const tsr_host *h, uint32_t dtype, const void *src, float *dst, int64_t n)
{
    if (dtype == TSR_DTYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    const uint16_t *s = src;
    if (dtype == TSR_DTYPE_BF16) {
        for (int64_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)s[i] << 16;
            memcpy(&dst[i], &bits, 4);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++)
        dst[i] = h->f16_to_f32(s[i]);
}

/* embedding lookup: out[:, i] = table[:, ids[i]] */
int cpu_op_get_rows(cpu_ctx *c, tsr_tensor *t)
{
    const tsr_tensor *tab = t->src[0], *ids = t->src[1];
    for (int64_t i = 0; i < ids->ne[0]; i++) {
        int32_t id = ((const int32_t *)ids->data)[i];
        if (id < 0 || id >= tab->ne[1])
            return 1;
        if (tab->dtype == TSR_DTYPE_F32 || tab->dtype == TSR_DTYPE_F16 || tab->dtype == TSR_DTYPE_BF16)
            cpu_row_to_f32(c->host, tab->dtype, cpu_row(tab, id, 0, 0), cpu_row(t, i, 0, 0), tab->ne[0]);
        else if (c->host->dequantize_row(tab, id, cpu_row(t, i, 0, 0)))
            return 1;
    }
    return 0;
}

/* Row-wise ops over the rows (i1, i2, i3) of t, flattened: on the calling
 * thread when small (decode), split across the pool when the op touches at
 * least ROWS_PAR elements (prefill). */
#define ROWS_PAR 32768
typedef void (*rows_fn)(cpu_ctx *c, tsr_tensor *t, int64_t r0, int64_t r1);
typedef struct rows_job {
    cpu_ctx *c;
    tsr_tensor *t;
    rows_fn fn;
    int64_t n;
} rows_job;

static void rows_task(void *ctx, int ith, int nth)
{
    rows_job *j = ctx;
    int64_t b, e;
    cpu_split(j->n, ith, nth, &b, &e);
    if (b < e)
        j->fn(j->c, j->t, b, e);
}

static void run_rows(cpu_ctx *c, tsr_tensor *t, rows_fn fn, int64_t nrows, int64_t elems)
{
    if (elems < ROWS_PAR || nrows < 2 || cpu_pool_size(c->pool) < 2) {
        fn(c, t, 0, nrows);
        return;
    }
    rows_job j = {c, t, fn, nrows};
    cpu_pool_run(c->pool, rows_task, &j);
}

static inline void row_index(const tsr_tensor *t, int64_t r, int64_t *i1, int64_t *i2, int64_t *i3)
{
    *i1 = r % t->ne[1];
    *i2 = (r / t->ne[1]) % t->ne[2];
    *i3 = r / (t->ne[1] * t->ne[2]);
}

static int64_t n_rows(const tsr_tensor *t)
{
    return t->ne[1] * t->ne[2] * t->ne[3];
}

static float weight_at(const cpu_ctx *c, const tsr_tensor *w, int64_t i)
{
    if (w->dtype == TSR_DTYPE_F32)
        return ((const float *)w->data)[i];
    uint16_t v = ((const uint16_t *)w->data)[i];
    return w->dtype == TSR_DTYPE_BF16 ? c->host->bf16_to_f32(v) : c->host->f16_to_f32(v);
}

/* RMSNorm (LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * (offset + w)) and
 * LayerNorm ((x - mean) / sqrt(var + eps) * w + b), in float32. */
static void norm_rows(cpu_ctx *c, tsr_tensor *t, int64_t r0, int64_t r1)
{
    const tsr_tensor *x = t->src[0], *w = t->src[1], *b = t->src[2];
    float eps = tsr_param_f(t, 0);
    float off = t->op == TSR_OP_RMS_NORM ? tsr_param_f(t, 1) : 0.0f;
    int64_t d = x->ne[0];
    for (int64_t r = r0; r < r1; r++) {
        int64_t i1, i2, i3;
        row_index(x, r, &i1, &i2, &i3);
        const float *xr = cpu_row(x, i1, i2, i3);
        float *yr = cpu_row(t, i1, i2, i3);
        float mean = 0.0f, scale;
        if (t->op == TSR_OP_RMS_NORM) {
            float ss = 0.0f;
            for (int64_t k = 0; k < d; k++)
                ss += xr[k] * xr[k];
            scale = 1.0f / sqrtf(ss / (float)d + eps);
        } else {
            for (int64_t k = 0; k < d; k++)
                mean += xr[k];
            mean /= (float)d;
            float var = 0.0f;
            for (int64_t k = 0; k < d; k++)
                var += (xr[k] - mean) * (xr[k] - mean);
            scale = 1.0f / sqrtf(var / (float)d + eps);
        }
        if (w && w->dtype == TSR_DTYPE_F32 && !b) {
            const float *wf = w->data;
            for (int64_t k = 0; k < d; k++)
                yr[k] = (xr[k] - mean) * scale * (off + wf[k]);
            continue;
        }
        for (int64_t k = 0; k < d; k++) {
            float v = (xr[k] - mean) * scale;
            if (w)
                v *= off + weight_at(c, w, k);
            if (b)
                v += weight_at(c, b, k);
            yr[k] = v;
        }
    }
}

/* RMSNorm (LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * (offset + w)) and
 * LayerNorm ((x - mean) / sqrt(var + eps) * w + b), in float32. */
int cpu_op_norm(cpu_ctx *c, tsr_tensor *t)
{
    run_rows(c, t, norm_rows, n_rows(t->src[0]), n_rows(t->src[0]) * t->src[0]->ne[0]);
    return 0;
}

static float gelu(float x, int tanh_approx)
{
    if (tanh_approx)
        return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

/* element k of row (i1, i2, i3) of a broadcastable float tensor */
static float bcast_at(const cpu_ctx *c, const tsr_tensor *b, int64_t k, int64_t i1, int64_t i2,
                      int64_t i3)
{
    const char *row = cpu_row(b, b->ne[1] == 1 ? 0 : i1, b->ne[2] == 1 ? 0 : i2,
                              b->ne[3] == 1 ? 0 : i3);
    int64_t kk = b->ne[0] == 1 ? 0 : k;
    if (b->dtype == TSR_DTYPE_F32)
        return ((const float *)row)[kk];
    uint16_t v = ((const uint16_t *)row)[kk];
    return b->dtype == TSR_DTYPE_BF16 ? c->host->bf16_to_f32(v) : c->host->f16_to_f32(v);
}

static void elementwise_rows(cpu_ctx *c, tsr_tensor *t, int64_t r0, int64_t r1)
{
    const tsr_tensor *a = t->src[0], *b = t->src[1];
    int64_t d = t->ne[0];
    /* b of the same shape in f32: no broadcast lookups */
    int plain = b && b->dtype == TSR_DTYPE_F32 && b->ne[0] == d && b->ne[1] == t->ne[1] &&
                b->ne[2] == t->ne[2] && b->ne[3] == t->ne[3];
    for (int64_t r = r0; r < r1; r++) {
        int64_t i1, i2, i3;
        row_index(t, r, &i1, &i2, &i3);
        const float *x = cpu_row(a, i1, i2, i3);
        float *y = cpu_row(t, i1, i2, i3);
        const float *u = b ? cpu_row(b, i1, i2, i3) : NULL; /* gated ops, plain binary */
        switch (t->op) {
        case TSR_OP_ADD:
            if (plain)
                for (int64_t k = 0; k < d; k++) y[k] = x[k] + u[k];
            else
                for (int64_t k = 0; k < d; k++) y[k] = x[k] + bcast_at(c, b, k, i1, i2, i3);
            break;
        case TSR_OP_MUL:
            if (plain)
                for (int64_t k = 0; k < d; k++) y[k] = x[k] * u[k];
            else
                for (int64_t k = 0; k < d; k++) y[k] = x[k] * bcast_at(c, b, k, i1, i2, i3);
            break;
        case TSR_OP_SCALE: {
            float s = tsr_param_f(t, 0);
            for (int64_t k = 0; k < d; k++) y[k] = x[k] * s;
            break;
        }
        case TSR_OP_SILU:
            c->k.silu_mul(x, NULL, y, d);
            break;
        case TSR_OP_SIGMOID:
            for (int64_t k = 0; k < d; k++) y[k] = 1.0f / (1.0f + expf(-x[k]));
            break;
        case TSR_OP_GELU:
            for (int64_t k = 0; k < d; k++) y[k] = gelu(x[k], tsr_param_i(t, 0));
            break;
        case TSR_OP_TANH:
            for (int64_t k = 0; k < d; k++) y[k] = tanhf(x[k]);
            break;
        case TSR_OP_RELU:
            for (int64_t k = 0; k < d; k++) y[k] = x[k] > 0 ? x[k] : 0.0f;
            break;
        case TSR_OP_SWIGLU:
            c->k.silu_mul(x, u, y, d);
            break;
        case TSR_OP_GEGLU:
            for (int64_t k = 0; k < d; k++) y[k] = gelu(x[k], tsr_param_i(t, 0)) * u[k];
            break;
        default:
            break;
        }
    }
}

/* unary, binary (with broadcast) and gated activations */
int cpu_op_elementwise(cpu_ctx *c, tsr_tensor *t)
{
    switch (t->op) {
    case TSR_OP_ADD: case TSR_OP_MUL: case TSR_OP_SCALE: case TSR_OP_SILU: case TSR_OP_SIGMOID:
    case TSR_OP_GELU: case TSR_OP_TANH: case TSR_OP_RELU: case TSR_OP_SWIGLU: case TSR_OP_GEGLU:
        break;
    default:
        return 1;
    }
    /* the transcendental ones are worth splitting earlier */
    int64_t cost = t->op == TSR_OP_ADD || t->op == TSR_OP_MUL || t->op == TSR_OP_SCALE ||
                   t->op == TSR_OP_RELU ? 1 : 8;
    run_rows(c, t, elementwise_rows, n_rows(t), n_rows(t) * t->ne[0] * cost);
    return 0;
}

/* Mixture-of-experts routing weights (MixtralSparseMoeBlock / Qwen2MoeSparseMoeBlock):
 * softmax over experts in float32, keep the top_k, optionally renormalise. */
int cpu_op_moe_gate(cpu_ctx *c, tsr_tensor *t)
{
    (void)c;
    const tsr_tensor *x = t->src[0];
    int64_t E = x->ne[0];
    int top_k = tsr_param_i(t, 0), norm = tsr_param_i(t, 1);
    if (top_k < 1 || top_k > E)
        return 1;
    for (int64_t n = 0; n < x->ne[1]; n++) {
        const float *l = cpu_row(x, n, 0, 0);
        float *y = cpu_row(t, n, 0, 0);
        float mx = -INFINITY, sum = 0.0f;
        for (int64_t e = 0; e < E; e++)
            mx = l[e] > mx ? l[e] : mx;
        for (int64_t e = 0; e < E; e++)
            sum += y[e] = expf(l[e] - mx);
        for (int64_t e = 0; e < E; e++)
            y[e] /= sum;
        /* keep the top_k largest (ties: lower index first, as torch.topk) */
        float kept = 0.0f;
        for (int64_t e = 0; e < E; e++) {
            int rank = 0;
            for (int64_t f = 0; f < E; f++)
                rank += y[f] > y[e] || (y[f] == y[e] && f < e);
            if (rank >= top_k)
                y[e] = -y[e] - 1.0f; /* mark dropped, keep order info */
            else
                kept += y[e];
        }
        for (int64_t e = 0; e < E; e++)
            y[e] = y[e] < 0.0f ? 0.0f : (norm ? y[e] / kept : y[e]);
    }
    return 0;
}

/* Rotary embeddings.  angle = pos * inv_freq[i] (float32, as transformers);
 * mode 0 (rotate_half): pairs (i, i + rot/2); mode 1 (interleaved): (2i, 2i+1). */
static void rope_rows(cpu_ctx *c, tsr_tensor *t, int64_t n0, int64_t n1)
{
    (void)c;
    const tsr_tensor *x = t->src[0], *pos = t->src[1], *inv = t->src[2];
    int mode = tsr_param_i(t, 0), rot = tsr_param_i(t, 1);
    float mscale = tsr_param_f(t, 2);
    if (mscale == 0.0f)
        mscale = 1.0f;
    int64_t hd = x->ne[0], half = rot / 2;
    const float *freq = inv->data;
    float cs[256], sn[256]; /* one position's angles, shared by its heads */
    for (int64_t n = n0; n < n1; n++) {
        float p = (float)((const int32_t *)pos->data)[n];
        for (int64_t i0 = 0; i0 < half; i0 += 256) {
            int64_t i1 = half - i0 < 256 ? half : i0 + 256;
            for (int64_t i = i0; i < i1; i++) {
                float ang = p * freq[i];
                cs[i - i0] = cosf(ang) * mscale;
                sn[i - i0] = sinf(ang) * mscale;
            }
            for (int64_t h = 0; h < x->ne[1]; h++) {
                const float *xr = cpu_row(x, h, n, 0);
                float *yr = cpu_row(t, h, n, 0);
                for (int64_t i = i0; i < i1; i++) {
                    int64_t j0 = mode ? 2 * i : i, j1 = mode ? 2 * i + 1 : i + half;
                    float a = xr[j0], b = xr[j1];
                    yr[j0] = a * cs[i - i0] - b * sn[i - i0];
                    yr[j1] = b * cs[i - i0] + a * sn[i - i0];
                }
            }
        }
        for (int64_t h = 0; h < x->ne[1]; h++) {
            const float *xr = cpu_row(x, h, n, 0);
            float *yr = cpu_row(t, h, n, 0);
            for (int64_t i = rot; i < hd; i++)
                yr[i] = xr[i];
        }
    }
}

int cpu_op_rope(cpu_ctx *c, tsr_tensor *t)
{
    const tsr_tensor *x = t->src[0];
    run_rows(c, t, rope_rows, x->ne[2], x->ne[2] * x->ne[1] * x->ne[0] * 4);
    return 0;
}

int cpu_op_kv_store(cpu_ctx *c, tsr_tensor *t)
{
    (void)c;
    const tsr_tensor *x = t->src[0], *cache = t->src[1];
    int64_t p0 = tsr_param_i(t, 0);
    if (p0 < 0 || p0 + x->ne[2] > cache->ne[2] || x->ne[0] != cache->ne[0] || x->ne[1] != cache->ne[1])
        return 1;
    for (int64_t n = 0; n < x->ne[2]; n++)
        for (int64_t h = 0; h < x->ne[1]; h++)
            memcpy(cpu_row(cache, h, p0 + n, 0), cpu_row(x, h, n, 0), (size_t)x->ne[0] * sizeof(float));
    return 0;
}

int cpu_op_softmax(cpu_ctx *c, tsr_tensor *t)
{
    (void)c;
    const tsr_tensor *x = t->src[0];
    for (int64_t i3 = 0; i3 < x->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < x->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < x->ne[1]; i1++) {
                const float *xr = cpu_row(x, i1, i2, i3);
                float *yr = cpu_row(t, i1, i2, i3);
                float mx = -INFINITY, sum = 0.0f;
                for (int64_t k = 0; k < x->ne[0]; k++)
                    mx = xr[k] > mx ? xr[k] : mx;
                for (int64_t k = 0; k < x->ne[0]; k++)
                    sum += yr[k] = expf(xr[k] - mx);
                for (int64_t k = 0; k < x->ne[0]; k++)
                    yr[k] /= sum;
            }
    return 0;
}

int cpu_op_cpy(cpu_ctx *c, tsr_tensor *t)
{
    const tsr_tensor *x = t->src[0];
    for (int64_t i3 = 0; i3 < x->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < x->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < x->ne[1]; i1++) {
                const void *xr = cpu_row(x, i1, i2, i3);
                void *yr = cpu_row(t, i1, i2, i3);
                if (t->dtype == TSR_DTYPE_F32) {
                    cpu_row_to_f32(c->host, x->dtype, xr, yr, x->ne[0]);
                } else if (x->dtype == TSR_DTYPE_F32) {
                    uint16_t *o = yr;
                    for (int64_t k = 0; k < x->ne[0]; k++)
                        o[k] = t->dtype == TSR_DTYPE_F16 ? c->host->f32_to_f16(((const float *)xr)[k])
                                                         : c->host->f32_to_bf16(((const float *)xr)[k]);
                } else {
                    return 1;
                }
            }
    return 0;
}
