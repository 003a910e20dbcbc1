/* core/sampler.c - logits processors and warpers in transformers' order:
 * repetition penalty, then (when sampling) temperature, top-k, top-p, min-p,
 * softmax and a multinomial draw from a seeded generator; greedy is argmax. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sampler.h"

struct tsr__sampler {
    tsr__sampling p;
    int n_vocab;
    uint64_t rng;
    int32_t *idx;             /* [n_vocab] scratch for sorting            */
    uint32_t *stamp;          /* [n_vocab] step that last penalised a token */
    uint32_t step;
    float *logits_ref;        /* sort key                                   */
};

/* splitmix64: a small, well-mixed generator; same seed, same draws. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double next_unit(uint64_t *s) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }

tsr_status tsr__sampler_create(const tsr__sampling *p, int n_vocab, tsr__sampler **out)
{
    tsr__sampler *s = calloc(1, sizeof *s);
    if (!s)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->rng = p->seed;
    s->idx = malloc((size_t)n_vocab * sizeof *s->idx);
    s->stamp = calloc((size_t)n_vocab, sizeof *s->stamp);
    if (!s->idx || !s->stamp) {
        free(s->idx);
        free(s->stamp);
        free(s);
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    *out = s;
    return TSR_OK;
}

void tsr__sampler_destroy(tsr__sampler *s)
{
    if (!s)
        return;
    free(s->idx);
    free(s->stamp);
    free(s);
}

static _Thread_local const float *sort_keys;
static int by_logit_desc(const void *a, const void *b)
{
    float x = sort_keys[*(const int32_t *)a], y = sort_keys[*(const int32_t *)b];
    if (x != y)
        return x < y ? 1 : -1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

static int32_t argmax(const float *v, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

int32_t tsr__sampler_next(tsr__sampler *s, float *logits, const int32_t *seen, size_t n_seen)
{
    const tsr__sampling *p = &s->p;
    int n = s->n_vocab;
    /* RepetitionPenaltyLogitsProcessor: each distinct seen token once */
    if (p->repetition_penalty != 1.0f && p->repetition_penalty > 0) {
        /* each distinct token once: a per-step stamp instead of a search */
        s->step++;
        for (size_t i = 0; i < n_seen; i++) {
            int32_t t = seen[i];
            if (t < 0 || t >= n || s->stamp[t] == s->step)
                continue;
            s->stamp[t] = s->step;
            logits[t] = logits[t] < 0 ? logits[t] * p->repetition_penalty
                                      : logits[t] / p->repetition_penalty;
        }
    }
    if (!p->do_sample || p->temperature <= 0.0f)
        return argmax(logits, n);

    for (int i = 0; i < n; i++)
        logits[i] /= p->temperature;
    /* candidates sorted by logit, then cut by top-k, top-p and min-p */
    for (int i = 0; i < n; i++)
        s->idx[i] = i;
    sort_keys = logits;
    qsort(s->idx, (size_t)n, sizeof *s->idx, by_logit_desc);
    int keep = n;
    if (p->top_k > 0 && p->top_k < keep)
        keep = p->top_k;
    double maxl = logits[s->idx[0]], z = 0;
    for (int i = 0; i < keep; i++)
        z += exp((double)logits[s->idx[i]] - maxl);
    if (p->top_p < 1.0f) {
        /* keep the smallest prefix whose mass reaches top_p (at least one) */
        double cum = 0;
        int k = 0;
        while (k < keep) {
            cum += exp((double)logits[s->idx[k]] - maxl) / z;
            k++;
            if (cum >= p->top_p)
                break;
        }
        keep = k;
    }
    if (p->min_p > 0.0f) {
        /* drop tokens whose probability is below min_p * the top one's */
        int k = 1;
        while (k < keep && exp((double)logits[s->idx[k]] - maxl) >= p->min_p)
            k++;
        keep = k;
    }
    z = 0;
    for (int i = 0; i < keep; i++)
        z += exp((double)logits[s->idx[i]] - maxl);
    double r = next_unit(&s->rng) * z, acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += exp((double)logits[s->idx[i]] - maxl);
        if (r < acc)
            return s->idx[i];
    }
    return s->idx[keep - 1];
}
