/* bench/quant/bnb.c - quality of the bitsandbytes settings on stories260K:
 * weight reconstruction error, bits per weight, mean per-token KL(float ||
 * quantized) and perplexity over fixtures/text/tinystories-like.txt
 * (windows of 128 tokens), printed as the markdown table of
 * docs/quantization/bnb.md.
 *
 * Build (links the static core for the model internals), from the root:
 *   cc -O2 -Iinclude bench/quant/bnb.c build-X/lib/libtessera-core.a \
 *      -ljansson -lyaml -lpcre2-8 -lutf8proc -ldl -lm -lpthread -o build-X/bin/bnb-bench
 *   TESSERA_PLUGIN_PATH=build-X/share/tessera/plugins.d build-X/bin/bnb-bench
 * (in build-X/bin/ so that the plugins are found next to it, as installed)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../core/model.h"

static const char *SET[][4] = {
    {"nf4", "quantization.load_in_4bit", "quantization.bnb_4bit_quant_type=nf4", NULL},
    {"nf4-dq", "quantization.load_in_4bit", "quantization.bnb_4bit_quant_type=nf4",
     "quantization.bnb_4bit_use_double_quant"},
    {"fp4", "quantization.load_in_4bit", "quantization.bnb_4bit_quant_type=fp4", NULL},
    {"fp4-dq", "quantization.load_in_4bit", "quantization.bnb_4bit_quant_type=fp4",
     "quantization.bnb_4bit_use_double_quant"},
    {"int8", "quantization.load_in_8bit", NULL, NULL},
};

static tsr_model *load(const char *const *s)
{
    tsr_config *cfg = NULL;
    tsr_config_create(&cfg);
    tsr_config_set(cfg, "threads", "2");
    for (int i = 1; s && i < 4; i++) {
        if (!s[i])
            continue;
        char k[128];
        snprintf(k, sizeof k, "%s", s[i]);
        char *eq = strchr(k, '=');
        if (eq)
            *eq = 0;
        tsr_config_set(cfg, k, eq ? eq + 1 : "true");
    }
    if (s)
        tsr_config_set(cfg, "quantization.method", "bitsandbytes");
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = "fixtures/stories260K-hf";
    lo.config = cfg;
    tsr_model *m = NULL;
    if (tsr_model_load(&lo, &m)) {
        fprintf(stderr, "load: %s\n", tsr_last_error());
        tsr_config_destroy(cfg);
        return NULL;
    }
    m->own_cfg = cfg;
    return m;
}

/* mean NLL; KL against ref when given; keeps logits when keep */
static double nll(tsr_model *m, const int32_t *ids, size_t n, float **keep, const float *ref, double *kl)
{
    const size_t W = 128, V = (size_t)m->info.n_vocab;
    size_t nwin = n / W, cnt = 0;
    float *lg = malloc(nwin * W * V * sizeof(float));
    double sum = 0, ks = 0;
    for (size_t w = 0; w < nwin; w++) {
        float *o = lg + w * W * V;
        tsr_model_logits(m, ids + w * W, W, o);
        for (size_t t = 0; t + 1 < W; t++, cnt++) {
            const float *l = o + t * V;
            double mx = l[0], z = 0;
            for (size_t v = 1; v < V; v++)
                mx = l[v] > mx ? l[v] : mx;
            for (size_t v = 0; v < V; v++)
                z += exp(l[v] - mx);
            double lz = mx + log(z);
            sum += lz - l[ids[w * W + t + 1]];
            if (!ref)
                continue;
            const float *r = ref + (w * W + t) * V;
            double rm = r[0], rz = 0;
            for (size_t v = 1; v < V; v++)
                rm = r[v] > rm ? r[v] : rm;
            for (size_t v = 0; v < V; v++)
                rz += exp(r[v] - rm);
            double rlz = rm + log(rz);
            for (size_t v = 0; v < V; v++)
                ks += exp(r[v] - rlz) * ((r[v] - rlz) - (l[v] - lz));
        }
    }
    if (kl)
        *kl = ks / (double)cnt;
    if (keep)
        *keep = lg;
    else
        free(lg);
    return sum / (double)cnt;
}

int main(void)
{
    tsr_model *f = load(NULL);
    char *text = NULL;
    size_t len = 0;
    if (!f || tsr__read_file("fixtures/text/tinystories-like.txt", &text, &len))
        return 1;
    int32_t *ids = malloc(16384 * sizeof(int32_t));
    size_t n = 0;
    tsr_tokenize(tsr_model_tokenizer(f), text, len, TSR_TOKENIZE_ADD_SPECIAL, ids, 16384, &n);
    float *ref = NULL;
    double ppl_f = exp(nll(f, ids, n, &ref, NULL, NULL));
    printf("stories260K, %zu tokens of fixtures/text/tinystories-like.txt, windows of 128\n\n", n);
    printf("| setting | bits/weight | weight rel. RMS error | max rel. error | KL (nats/token) | perplexity | x float |\n");
    printf("|---|---|---|---|---|---|---|\n");
    printf("| float32 | 32 | 0 | 0 | 0 | %.4f | 1.0000 |\n", ppl_f);
    for (size_t s = 0; s < sizeof SET / sizeof SET[0]; s++) {
        tsr_model *q = load(SET[s]);
        if (!q)
            continue;
        double e2 = 0, w2 = 0, emax = 0, bits = 0, nw = 0;
        for (size_t i = 0; i < q->env.n_params; i++) {
            tsr__param *pq = &q->env.params[i];
            if (!pq->quantized)
                continue;
            tsr__param *pf = NULL;
            for (size_t j = 0; j < f->env.n_params; j++)
                if (!strcmp(f->env.params[j].name, pq->name))
                    pf = &f->env.params[j];
            int64_t K = pq->t.ne[0], N = pq->t.ne[1];
            float *a = malloc((size_t)K * sizeof(float)), *b = malloc((size_t)K * sizeof(float));
            double rowmax = 0;
            for (int64_t r = 0; r < N; r++) {
                tsr__dequantize_row(&pq->t, r, a);
                tsr__dequantize_row(&pf->t, r, b);
                for (int64_t k = 0; k < K; k++) {
                    e2 += (double)(a[k] - b[k]) * (a[k] - b[k]);
                    w2 += (double)b[k] * b[k];
                    rowmax = fabs(b[k]) > rowmax ? fabs(b[k]) : rowmax;
                }
                for (int64_t k = 0; k < K; k++)
                    emax = fabs(a[k] - b[k]) / rowmax > emax ? fabs(a[k] - b[k]) / rowmax : emax;
            }
            free(a);
            free(b);
            double el = (double)(K * N);
            if (pq->t.dtype == TSR_DTYPE_INT8_ROW)
                bits += el * 8 + 32.0 * (double)N;                   /* int8 + SCB per row */
            else if (SET[s][3])
                bits += el * 4 + 8.0 * el / 64 + 32.0 * ceil(el / 64 / 256) + 32; /* + nested */
            else
                bits += el * 4 + 32.0 * el / 64;                     /* + f32 absmax per 64 */
            nw += el;
        }
        double kl = 0, ppl = exp(nll(q, ids, n, NULL, ref, &kl));
        printf("| %s | %.3f | %.4f | %.4f | %.5f | %.4f | %.4f |\n", SET[s][0], bits / nw,
               sqrt(e2 / w2), emax, kl, ppl, ppl / ppl_f);
        tsr_model_destroy(q);
    }
    printf("\nmax rel. error: max |w - deq(w)| / max |w of its row|.\n");
    free(ref);
    free(ids);
    free(text);
    tsr_model_destroy(f);
    return 0;
}
