/* backends/cpu/kernels/int8-c.c - LLM.int8 matmul (TSR_DTYPE_INT8_ROW) in
 * plain C, the arithmetic of bitsandbytes' Linear8bitLt at inference
 * (bitsandbytes 0.50: autograd/_functions.py MatMul8bitLt.forward, and the
 * default ops int8_vectorwise_quant, int8_mixed_scaled_mm, int8_mm_dequant):
 *
 *   a  = float16(x)                        activations rounded to fp16
 *   outlier columns O = { k : |a[m][k]| >= threshold for some m }  (thr > 0)
 *   a' = a with the outlier elements zeroed
 *   SCA[m] = max_k |a'[m][k]|,  CA[m][k] = round(a'[m][k] * ((1/SCA[m]) * 127))
 *            (and CA[m][k] = 0 for k in O when M > 1)
 *   y[m][n] = (int32 sum_k CA[m][k] CB[n][k]) * (SCA[m] * SCB[n]) * 6.200124e-05
 *             + bias[n] + sum_{k in O} x[m][k] * (CB[n][k] * SCB[n] / 127)
 *
 * The outlier part is multiplied in the activations' precision (float32
 * here; bitsandbytes uses the input dtype, fp16 in fp16 models).  6.200124e-05
 * is the constant of bitsandbytes' default (CPU) int8_mm_dequant, close to
 * 1/127^2.  SCB[n] = scale[n] * 127 (tsr_fmt_int8_row keeps SCB / 127).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../cpu.h"

typedef struct i8_job {
    cpu_ctx *c;
    tsr_tensor *t;
    const int8_t *qa;         /* [M][K] quantized activations            */
    const float *sca;         /* [M]                                      */
    const int32_t *ocols;     /* outlier columns                          */
    int64_t n_out;
} i8_job;

static void i8_task(void *ctx, int ith, int nth)
{
    i8_job *j = ctx;
    tsr_tensor *t = j->t;
    const tsr_tensor *w = t->src[0], *x = t->src[1], *bias = t->src[2];
    const tsr_fmt_int8_row *f = w->format_data;
    int64_t K = w->ne[0], N = w->ne[1], M = x->ne[1] * x->ne[2];
    int64_t n0, n1;
    cpu_split(N, ith, nth, &n0, &n1);
    for (int64_t n = n0; n < n1; n++) {
        const int8_t *wr = (const int8_t *)w->data + n * (int64_t)w->nb[1];
        float scb = f->scale[n] * 127.0f;
        float bv = 0.0f;
        if (bias)
            cpu_row_to_f32(j->c->host, bias->dtype, (const char *)bias->data + n * bias->nb[0], &bv, 1);
        for (int64_t m = 0; m < M; m++) {
            const int8_t *qa = j->qa + m * K;
            int32_t acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (int32_t)qa[k] * (int32_t)wr[k];
            float y = (float)acc * (j->sca[m] * scb) * 6.200124e-05f;
            if (bias)
                y += bv;
            if (j->n_out) {
                const float *xr = cpu_row(x, m % x->ne[1], m / x->ne[1], 0);
                float o = 0.0f;
                for (int64_t i = 0; i < j->n_out; i++) {
                    int32_t k = j->ocols[i];
                    o += xr[k] * ((float)wr[k] * f->scale[n]);
                }
                y += o;
            }
            float *yr = cpu_row(t, m % t->ne[1], m / t->ne[1], 0);
            yr[n] = y;
        }
    }
}

int cpu_op_mul_mat_int8(cpu_ctx *c, tsr_tensor *t)
{
    const tsr_tensor *w = t->src[0], *x = t->src[1];
    const tsr_fmt_int8_row *f = w->format_data;
    const tsr_host *h = c->host;
    int64_t K = w->ne[0], M = x->ne[1] * x->ne[2];
    float thr = f ? f->threshold : 0.0f;
    if (!f)
        return 1;
    float *a = malloc((size_t)(M * K) * sizeof(float));
    int8_t *qa = malloc((size_t)(M * K));
    float *sca = malloc((size_t)M * sizeof(float));
    uint8_t *is_out = calloc((size_t)K, 1);
    int32_t *ocols = malloc((size_t)K * sizeof(int32_t));
    int rc = 1;
    if (!a || !qa || !sca || !is_out || !ocols)
        goto done;
    /* fp16 activations and the outlier columns over the whole batch */
    for (int64_t m = 0; m < M; m++) {
        const float *xr = cpu_row(x, m % x->ne[1], m / x->ne[1], 0);
        for (int64_t k = 0; k < K; k++) {
            float v = h->f16_to_f32(h->f32_to_f16(xr[k]));
            a[m * K + k] = v;
            if (thr > 0.0f && fabsf(v) >= thr)
                is_out[k] = 1;
        }
    }
    int64_t n_out = 0;
    for (int64_t k = 0; k < K; k++)
        if (is_out[k])
            ocols[n_out++] = (int32_t)k;
    /* row-wise absmax quantization of the activations, outliers zeroed */
    for (int64_t m = 0; m < M; m++) {
        float *ar = a + m * K;
        float am = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            if (thr > 0.0f && fabsf(ar[k]) >= thr)
                ar[k] = 0.0f;
            am = fabsf(ar[k]) > am ? fabsf(ar[k]) : am;
        }
        sca[m] = am;
        float s = (1.0f / am) * 127.0f;
        for (int64_t k = 0; k < K; k++)
            qa[m * K + k] = am > 0.0f && !(M > 1 && is_out[k]) ? (int8_t)rintf(ar[k] * s) : 0;
    }
    i8_job j = {c, t, qa, sca, ocols, n_out};
    cpu_pool_run(c->pool, i8_task, &j);
    rc = 0;
done:
    free(a);
    free(qa);
    free(sca);
    free(is_out);
    free(ocols);
    return rc;
}
