/* bench/quant/compare.c - quality of a quantized model against its float
 * original, the same way for every method: weight reconstruction error
 * (relative RMS over all quantized Linear weights), bytes per weight of the
 * quantized Linear weights, mean per-token KL(float || quantized) and the
 * perplexity of both on a text.
 *
 *   tessera-quant-compare FLOAT_DIR QUANT_DIR|- TEXT [--set key=value ...]
 *
 * QUANT_DIR "-" quantizes FLOAT_DIR on load with the --set keys (e.g.
 * --set quantization.method=hqq --set quantization.nbits=4).  Prints one
 * markdown table row.  Links the static core: it reads weights through the
 * core's reference dequantizer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"

static double bytes_of(const tsr__param *p)
{
    const tsr_tensor *t = &p->t;
    int64_t K = t->ne[0], N = t->ne[1];
    double b = (double)tsr__weight_row_bytes(t) * (double)N;
    if (t->dtype == TSR_DTYPE_INT_GROUP) {
        const tsr_fmt_int_group *f = t->format_data;
        int64_t groups = f->n_groups_per_row ? f->n_groups_per_row * N
                                             : (K * N + f->group_size - 1) / f->group_size;
        b += (double)groups * 4.0; /* fp16 scale + fp16 zero, as stored */
    } else if (t->dtype == TSR_DTYPE_CODEBOOK4) {
        const tsr_fmt_codebook4 *f = t->format_data;
        b += (double)(K * N / f->block_size) * 4.0; /* f32 absmax (1 byte + nested with dq) */
    } else if (t->dtype == TSR_DTYPE_INT8_ROW) {
        b += (double)N * 4.0;
    }
    return b;
}

static void log_softmax(const float *l, int n, double *o)
{
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < n; i++) s += exp(l[i] - mx);
    for (int i = 0; i < n; i++) o[i] = l[i] - mx - log(s);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s FLOAT_DIR QUANT_DIR|- TEXT [--set key=value ...]\n", argv[0]);
        return 2;
    }
    tsr_config *fc, *qc;
    tsr_config_create(&fc);
    tsr_config_create(&qc);
    char label[512] = "";
    for (int i = 4; i + 1 < argc; i += 2) {
        char key[128];
        const char *eq = strchr(argv[i + 1], '=');
        if (strcmp(argv[i], "--set") || !eq)
            return 2;
        snprintf(key, sizeof key, "%.*s", (int)(eq - argv[i + 1]), argv[i + 1]);
        if (tsr_config_set(qc, key, eq + 1)) {
            fprintf(stderr, "%s\n", tsr_last_error());
            return 1;
        }
        snprintf(label + strlen(label), sizeof label - strlen(label), "%s%s=%s", *label ? " " : "",
                 strncmp(key, "quantization.", 13) ? key : key + 13, eq + 1);
    }
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    tsr_model *f = NULL, *q = NULL;
    lo.model_path = argv[1];
    lo.config = fc;
    if (tsr_model_load(&lo, &f)) {
        fprintf(stderr, "%s\n", tsr_last_error());
        return 1;
    }
    lo.model_path = strcmp(argv[2], "-") ? argv[2] : argv[1];
    lo.config = qc;
    if (tsr_model_load(&lo, &q)) {
        fprintf(stderr, "%s\n", tsr_last_error());
        return 1;
    }
    if (!*label)
        snprintf(label, sizeof label, "%s", argv[2]);
    /* weights */
    double se = 0, sw = 0, bytes = 0, n_w = 0;
    for (size_t i = 0; i < q->env.n_params; i++) {
        tsr__param *pq = &q->env.params[i];
        tsr__param *pf = tsr__param_find(&f->env, pq->name);
        if (!pq->quantized || !pf)
            continue;
        int64_t K = pq->t.ne[0], N = pq->t.ne[1];
        float *a = malloc((size_t)K * 4), *b = malloc((size_t)K * 4);
        for (int64_t r = 0; r < N; r++) {
            tsr__dequantize_row(&pf->t, r, a);
            tsr__dequantize_row(&pq->t, r, b);
            for (int64_t k = 0; k < K; k++) {
                se += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
                sw += (double)a[k] * a[k];
            }
        }
        free(a);
        free(b);
        bytes += bytes_of(pq);
        n_w += (double)(K * N);
    }
    /* text: windows of 128 tokens with BOS */
    FILE *fp = fopen(argv[3], "rb");
    if (!fp)
        return 1;
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[len] = 0;
    const tsr_tokenizer *tok = tsr_model_tokenizer(f);
    size_t n = 0;
    tsr_tokenize(tok, text, len, 0, NULL, 0, &n);
    int32_t *ids = malloc(n * sizeof *ids);
    tsr_tokenize(tok, text, len, 0, ids, n, &n);
    int nv = f->info.n_vocab, W = 128;
    float *lf = malloc((size_t)W * nv * 4), *lq = malloc((size_t)W * nv * 4);
    double *pf_ = malloc((size_t)nv * 8), *pq_ = malloc((size_t)nv * 8);
    double nll_f = 0, nll_q = 0, kl = 0;
    size_t cnt = 0;
    int32_t win[128];
    for (size_t pos = 0; pos < n;) {
        int w = 0;
        if (tsr_tokenizer_bos(tok) >= 0)
            win[w++] = tsr_tokenizer_bos(tok);
        while (w < W && pos < n)
            win[w++] = ids[pos++];
        if (w < 2 || tsr_model_logits(f, win, (size_t)w, lf) || tsr_model_logits(q, win, (size_t)w, lq))
            break;
        for (int t = 0; t + 1 < w; t++) {
            log_softmax(lf + (size_t)t * nv, nv, pf_);
            log_softmax(lq + (size_t)t * nv, nv, pq_);
            nll_f -= pf_[win[t + 1]];
            nll_q -= pq_[win[t + 1]];
            for (int v = 0; v < nv; v++)
                kl += exp(pf_[v]) * (pf_[v] - pq_[v]);
            cnt++;
        }
    }
    printf("| %s | %.3f | %.4f | %.4g | %.3f | %.3f | %.3f |\n", label, n_w ? bytes / n_w : 0,
           sw ? sqrt(se / sw) : 0, cnt ? kl / (double)cnt : 0, exp(nll_f / (double)cnt),
           exp(nll_q / (double)cnt), exp((nll_q - nll_f) / (double)cnt));
    free(ids); free(lf); free(lq); free(pf_); free(pq_);
    tsr_model_destroy(q);
    tsr_model_destroy(f);
    tsr_config_destroy(fc);
    tsr_config_destroy(qc);
    return 0;
}
