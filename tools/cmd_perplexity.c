/* tools/cmd_perplexity.c - tessera perplexity: how well a model predicts a
 * text (exp of the mean negative log-likelihood over windows of the text),
 * and with --base the mean KL divergence from a reference model's
 * next-token distributions (e.g. a quantized model against its float one). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"

static const char help[] =
    "usage: tessera perplexity -m DIR -f TEXTFILE [--ctx N] [--base DIR] [options]\n"
    "\n"
    "Perplexity of the model on the text, in windows of N tokens (default 256;\n"
    "each window starts with BOS when the tokenizer has one).  With --base DIR,\n"
    "also the mean KL(base || model) of the next-token distributions, the base\n"
    "being loaded with the same options less its quantization.\n"
    "\n"
    "  -f, --file FILE     the text\n"
    "      --ctx N         window length in tokens\n"
    "      --base DIR      reference model for the KL divergence\n"
    "%s"
    "  -h, --help          this help\n";

static void log_softmax(const float *l, int n, double *out)
{
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < n; i++)
        mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < n; i++)
        s += exp(l[i] - mx);
    double lz = mx + log(s);
    for (int i = 0; i < n; i++)
        out[i] = l[i] - lz;
}

int tsr_cli_perplexity(int argc, char **argv)
{
    cli_common c;
    if (cli_common_init(&c))
        return 1;
    const char *file = NULL, *base_dir = NULL;
    int ctx = 256, rc = 2;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_option(&c, argc, argv, &i);
        if (r < 0)
            goto out;
        if (r > 0)
            continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf(help, cli_common_help);
            rc = 0;
            goto out;
        } else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && v) {
            file = v;
            i++;
        } else if (!strcmp(a, "--ctx") && v) {
            ctx = atoi(v);
            i++;
        } else if (!strcmp(a, "--base") && v) {
            base_dir = v;
            i++;
        } else {
            fprintf(stderr, "tessera perplexity: unknown option or missing value '%s'\n", a);
            goto out;
        }
    }
    if (!file || ctx < 2) {
        fprintf(stderr, "tessera perplexity: -f FILE is required and --ctx must be >= 2\n");
        goto out;
    }
    rc = 1;
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "tessera perplexity: cannot open %s\n", file);
        goto out;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len + 1);
    size_t got = text ? fread(text, 1, (size_t)len, f) : 0;
    fclose(f);
    if (!text || got != (size_t)len) {
        free(text);
        goto out;
    }
    text[len] = 0;
    tsr_model *m = cli_load_model(&c), *base = NULL;
    if (m && base_dir) {
        cli_common b = c;
        b.model = base_dir;
        tsr_config_set(c.cfg, "quantization.method", "none");
        base = cli_load_model(&b);
    }
    const tsr_tokenizer *tok = m ? tsr_model_tokenizer(m) : NULL;
    if (!m || (base_dir && !base) || !tok) {
        if (m && !tok)
            fprintf(stderr, "tessera perplexity: the model has no tokenizer\n");
        free(text);
        tsr_model_destroy(m);
        tsr_model_destroy(base);
        goto out;
    }
    size_t n = 0;
    tsr_tokenize(tok, text, (size_t)len, 0, NULL, 0, &n);
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    tsr_tokenize(tok, text, (size_t)len, 0, ids, n, &n);
    free(text);
    int32_t bos = tsr_tokenizer_bos(tok);
    int nv = tsr_tokenizer_vocab_size(tok);
    int32_t *win = malloc((size_t)ctx * sizeof *win);
    float *lg = malloc((size_t)ctx * (size_t)nv * 4 * 2);
    double *lp = malloc((size_t)nv * sizeof *lp), *lq = malloc((size_t)nv * sizeof *lq);
    double nll = 0, kl = 0;
    size_t count = 0;
    tsr_status st = TSR_OK;
    for (size_t pos = 0; pos < n && !st;) {
        int w = 0;
        if (bos >= 0)
            win[w++] = bos;
        size_t start = pos;
        while (w < ctx && pos < n)
            win[w++] = ids[pos++];
        if (w < 2)
            break;
        float *lb = lg + (size_t)ctx * (size_t)nv;
        if ((st = tsr_model_logits(m, win, (size_t)w, lg)) ||
            (base && (st = tsr_model_logits(base, win, (size_t)w, lb))))
            break;
        (void)start;
        for (int t = 0; t + 1 < w; t++) {
            log_softmax(lg + (size_t)t * (size_t)nv, nv, lq);
            nll -= lq[win[t + 1]];
            if (base) {
                log_softmax(lb + (size_t)t * (size_t)nv, nv, lp);
                for (int v = 0; v < nv; v++)
                    kl += exp(lp[v]) * (lp[v] - lq[v]);
            }
            count++;
        }
    }
    if (st) {
        tsr_cli_fail("perplexity", st);
    } else if (count) {
        printf("tokens: %zu\nperplexity: %.4f\n", count, exp(nll / (double)count));
        if (base)
            printf("mean_kl: %.6g\n", kl / (double)count);
        rc = 0;
    }
    free(ids);
    free(win);
    free(lg);
    free(lp);
    free(lq);
    tsr_model_destroy(m);
    tsr_model_destroy(base);
out:
    cli_common_free(&c);
    return rc;
}
