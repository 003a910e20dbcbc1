/* bench/quant/hqq.c - HQQ quality on stories260K: weight reconstruction
 * error, logit KL vs the float model, perplexity on
 * fixtures/text/tinystories-like.txt, bytes per weight, and a greedy sample.
 *
 *   bench-quant-hqq [--check]     (run from the repository root)
 *
 * Settings: on-load quantization through the run configuration's
 * quantization.* keys (nbits/group_size/axis), and the pre-quantized
 * fixtures written by hqq itself.  --check exits 1 when a perplexity bound
 * (see `bound` below, documented in docs/quantization/hqq.md) is exceeded or
 * the quantized model generates no text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tessera/tessera.h>

#define WIN 256          /* tokens per perplexity window (max positions 512) */

typedef struct setting {
    const char *name, *model;
    int nbits, group_size, axis;   /* nbits 0: as stored (float or pre-quantized) */
    double meta_bytes;             /* bytes of scale+zero per group */
    double bound;                  /* ppl / float ppl must stay below; 2-bit
                                      destroys a 64-wide model (a regression
                                      guard only) */
} setting;

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b)
        b[n] = 0;
    fclose(f);
    return b;
}

/* The model borrows its configuration (generation reads it): *cfg_out
 * lives until the model is destroyed. */
static tsr_model *load(const setting *s, tsr_config **cfg_out)
{
    tsr_config *cfg = NULL;
    tsr_model *m = NULL;
    char v[32];
    if (tsr_config_create(&cfg))
        return NULL;
    if (s->nbits) {
        tsr_config_set(cfg, "quantization.method", "hqq");
        snprintf(v, sizeof v, "%d", s->nbits);
        tsr_config_set(cfg, "quantization.nbits", v);
        snprintf(v, sizeof v, "%d", s->group_size);
        tsr_config_set(cfg, "quantization.group_size", v);
        snprintf(v, sizeof v, "%d", s->axis);
        tsr_config_set(cfg, "quantization.axis", v);
    }
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = s->model;
    lo.config = cfg;
    if (tsr_model_load(&lo, &m))
        fprintf(stderr, "%s: %s\n", s->name, tsr_last_error());
    *cfg_out = cfg;
    return m;
}

static int on_token(int32_t token, const char *piece, size_t len, void *user)
{
    (void)token, (void)piece, (void)len, (void)user;
    return 0;
}

/* Log-softmax of one row into lp[]. */
static void log_softmax(const float *x, int V, double *lp)
{
    double mx = x[0], sum = 0;
    for (int i = 1; i < V; i++)
        mx = fmax(mx, x[i]);
    for (int i = 0; i < V; i++)
        sum += exp(x[i] - mx);
    double l = mx + log(sum);
    for (int i = 0; i < V; i++)
        lp[i] = x[i] - l;
}

int main(int argc, char **argv)
{
    int check = argc > 1 && !strcmp(argv[1], "--check");
    static const setting S[] = {
        {"float32", "fixtures/stories260K-hf", 0, 0, 0, 0, 0},
        {"hqq 8-bit g64 axis1 (on load)", "fixtures/stories260K-hf", 8, 64, 1, 4, 1.01},
        {"hqq 4-bit g64 axis1 (on load)", "fixtures/stories260K-hf", 4, 64, 1, 4, 1.15},
        {"hqq 4-bit g64 axis0 (on load)", "fixtures/stories260K-hf", 4, 64, 0, 4, 1.40},
        {"hqq 3-bit g64 axis1 (on load)", "fixtures/stories260K-hf", 3, 64, 1, 4, 2.0},
        {"hqq 2-bit g64 axis0 (on load)", "fixtures/stories260K-hf", 2, 64, 0, 4, 600},
        {"hqq 4-bit g64 axis1 (hqq's checkpoint, f32 meta)", "fixtures/hqq-stories260K-4bit", 0,
         64, 1, 8, 1.15},
        {"hqq 2-bit g64 axis0 (hqq's checkpoint, fp16 meta)",
         "fixtures/hqq-stories260K-2bit-axis0", 0, 64, 0, 4, 600},
    };
    char *text = read_text("fixtures/text/tinystories-like.txt");
    if (!text) {
        fprintf(stderr, "cannot read fixtures/text/tinystories-like.txt\n");
        return 1;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0, T = 0;
    double *ref_lp = NULL, float_ppl = 0;
    int V = 0, fails = 0;
    printf("| setting | bytes/weight | perplexity | ppl / float | KL(float || q) nats/token |\n"
           "|---|---|---|---|---|\n");
    for (size_t si = 0; si < sizeof S / sizeof *S; si++) {
        const setting *s = &S[si];
        tsr_config *cfg = NULL;
        tsr_model *m = load(s, &cfg);
        if (!m) {
            tsr_config_destroy(cfg);
            fails++;
            continue;
        }
        const tsr_tokenizer *tok = tsr_model_tokenizer(m);
        if (!ids) {
            tsr_tokenize(tok, text, strlen(text), TSR_TOKENIZE_ADD_SPECIAL, NULL, 0, &n_ids);
            ids = malloc(n_ids * sizeof *ids);
            tsr_tokenize(tok, text, strlen(text), TSR_TOKENIZE_ADD_SPECIAL, ids, n_ids, &n_ids);
            V = tsr_tokenizer_vocab_size(tok);
            T = n_ids;
            ref_lp = malloc(T * (size_t)V * sizeof *ref_lp);
        }
        float *logits = malloc(WIN * (size_t)V * sizeof *logits);
        double *lp = malloc((size_t)V * sizeof *lp);
        double nll = 0, kl = 0;
        size_t counted = 0;
        for (size_t w0 = 0; w0 + 1 < T; w0 += WIN) {
            size_t n = T - w0 < WIN ? T - w0 : WIN;
            if (tsr_model_logits(m, ids + w0, n, logits)) {
                fprintf(stderr, "%s: %s\n", s->name, tsr_last_error());
                fails++;
                break;
            }
            for (size_t t = 0; t + 1 < n; t++) {
                log_softmax(logits + t * (size_t)V, V, lp);
                nll -= lp[ids[w0 + t + 1]];
                double *r = ref_lp + (w0 + t) * (size_t)V;
                if (si == 0)
                    memcpy(r, lp, (size_t)V * sizeof *lp);
                else
                    for (int i = 0; i < V; i++)
                        kl += exp(r[i]) * (r[i] - lp[i]);
                counted++;
            }
        }
        double ppl = exp(nll / (double)counted);
        if (si == 0)
            float_ppl = ppl;
        double bpw = s->nbits || s->bound ? 0 : 4.0;
        int nb = s->nbits ? s->nbits : (strstr(s->model, "2bit") ? 2 : 4);
        if (s->bound)
            bpw = nb / 8.0 + s->meta_bytes / s->group_size;
        printf("| %s | %.4g | %.4f | %.4f | %.5f |\n", s->name, bpw, ppl, ppl / float_ppl,
               si ? kl / (double)counted : 0.0);
        if (s->bound && ppl / float_ppl > s->bound) {
            fprintf(stderr, "%s: perplexity %.4f is more than %.2fx the float model's %.4f\n",
                    s->name, ppl, s->bound, float_ppl);
            fails++;
        }
        if (si == 2) {   /* the quantized model writes text */
            int32_t out[48];
            size_t n_out = 0;
            tsr_generate_options go = TSR_GENERATE_OPTIONS_INIT;
            go.max_new_tokens = 40;
            int32_t prompt[16];
            size_t np = 0;
            tsr_tokenize(tok, "Once upon a time", 16, TSR_TOKENIZE_ADD_SPECIAL, prompt, 16, &np);
            char buf[1024];
            size_t len = 0;
            if (tsr_generate(m, &go, prompt, np, on_token, NULL, out, 48, &n_out) ||
                tsr_detokenize(tok, out, n_out, TSR_DETOKENIZE_SKIP_SPECIAL, buf, sizeof buf,
                               &len) || len < 20) {
                fprintf(stderr, "4-bit generation failed: %s\n", tsr_last_error());
                fails++;
            } else {
                fprintf(stderr, "4-bit sample: Once upon a time%s\n", buf);
            }
        }
        free(logits), free(lp);
        tsr_model_destroy(m);
        tsr_config_destroy(cfg);
    }
    printf("\n%zu tokens of fixtures/text/tinystories-like.txt, windows of %d\n", T, WIN);
    free(ids), free(ref_lp), free(text);
    return check && fails ? 1 : 0;
}
