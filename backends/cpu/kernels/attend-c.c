/* backends/cpu/kernels/attend-c.c - the plain-C reference of the attention
 * tile kernel (cpu_att in kernels.h): for each query row, scores q.k *
 * scale (soft-capped), softmax over its keys, weighted sum of the values,
 * all in float32 as transformers' eager_attention_forward. */
#include <math.h>
#include "kernels.h"

void cpu_attend_c(const cpu_att *a)
{
    int64_t k0 = INT64_MAX;   /* the first key of any row: scores indexed from it */
    for (int r = 0; r < a->R; r++)
        if (a->lo[r] <= a->hi[r] && a->lo[r] < k0)
            k0 = a->lo[r];
    float *s = a->work;   /* one row of scores, indexed from k0 */
    for (int r = 0; r < a->R; r++) {
        const float *q = a->q[r];
        float *out = a->out[r];
        for (int64_t i = 0; i < a->hd; i++)
            out[i] = 0.0f;
        if (a->lo[r] > a->hi[r])
            continue;
        float mx = -INFINITY;
        for (int64_t k = a->lo[r]; k <= a->hi[r]; k++) {
            const float *kr = a->k + (size_t)k * a->ldk;
            float d = 0.0f;
            for (int64_t i = 0; i < a->hd; i++)
                d += q[i] * kr[i];
            d *= a->scale;
            if (a->cap > 0.0f)
                d = a->cap * tanhf(d / a->cap);
            s[k - k0] = d;
            mx = d > mx ? d : mx;
        }
        float sum = 0.0f;
        for (int64_t k = a->lo[r]; k <= a->hi[r]; k++)
            sum += s[k - k0] = expf(s[k - k0] - mx);
        for (int64_t k = a->lo[r]; k <= a->hi[r]; k++) {
            const float *vr = a->v + (size_t)k * a->ldv;
            float w = s[k - k0] / sum;
            for (int64_t i = 0; i < a->hd; i++)
                out[i] += w * vr[i];
        }
    }
}
