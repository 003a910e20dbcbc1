/* tests/unit/test_gptq_model.c - GPTQ and AWQ on a real trained model
 * (stories260K, fixtures/stories260K-hf) with calibration through
 * core/calibrate.c:
 *   float model -> tsr__calibrate (graph observer -> observe_input) ->
 *   quantize_weight for every Linear weight (as the core's load path will
 *   do for TSR_QUANT_REQUIRES_CALIBRATION) -> perplexity on held-out text
 *   (fixtures/text/tinystories-like.txt: first half calibrates, second
 *   half evaluates), logit KL against the float model, greedy generation.
 * Bounds (stated in docs/quantization/gptq.md and awq.md):
 *   GPTQ 8-bit: ppl <= 1.01 x float, same first 16 greedy tokens;
 *   GPTQ 4-bit g32: ppl <= 1.15 x float; 3-bit g32: ppl <= 2.0 x float;
 *   GPTQ ppl <= RTN ppl and GPTQ KL <= RTN KL at 3 and 4 bits;
 *   AWQ 4-bit g32 (zero point, no scale search): ppl <= 1.15 x float. */
#include <math.h>
#include <stdlib.h>
#include "tsr_test.h"
#include "calibrate.h"

#define WIN 128

static tsr_model *load_float(void)
{
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = "fixtures/stories260K-hf";
    tsr_model *m = NULL;
    CHECK_MSG(tsr_model_load(&lo, &m) == TSR_OK, "%s", tsr_last_error());
    return m;
}

/* Quantize m in place with `method` (as the load path will). */
static tsr_status quantize_model(tsr_model *m, const char *method, const char *json,
                                 const int32_t *calib, size_t n_calib, double *rel_err)
{
    tsr_status st = tsr__registry_find(tsr__registry_global(), TSR_PLUGIN_QUANTIZER, method,
                                       &m->qdesc);
    if (st)
        return st;
    m->qvt = m->qdesc->vtable;
    tsr_json *j = NULL;
    if ((st = tsr__json_load_buffer("qconfig", json, strlen(json), &j)))
        return st;
    st = m->qvt->create(tsr__host(), j, &m->qstate);
    tsr__json_free(j);
    if (st)
        return st;
    if (calib && (st = tsr__calibrate(m, calib, n_calib)))
        return st;
    double num = 0, den = 0;
    for (size_t i = 0; i < m->env.n_params; i++) {
        tsr__param *p = &m->env.params[i];
        size_t nl = strlen(p->name);
        if (!(p->flags & TSR_PARAM_LINEAR) || !p->t.data || strcmp(p->name + nl - 7, ".weight"))
            continue;
        char module[256];
        snprintf(module, sizeof module, "%.*s", (int)(nl - 7), p->name);
        if (m->qvt->skip_module(m->qstate, module) || p->t.dtype != TSR_DTYPE_F32)
            continue;
        tsr_tensor q = p->t;
        q.data = NULL;
        q.format_data = NULL;
        if ((st = m->qvt->quantize_weight(m->qstate, module, p->t.data, p->ne, &q)))
            return st;
        int64_t K = p->ne[0], N = p->ne[1];
        float *row = malloc((size_t)K * sizeof *row);
        const float *w = p->t.data;
        for (int64_t n = 0; n < N; n++) {
            tsr__dequantize_row(&q, n, row);
            for (int64_t k = 0; k < K; k++) {
                double d = row[k] - w[n * K + k];
                num += d * d;
                den += (double)w[n * K + k] * w[n * K + k];
            }
        }
        free(row);
        tsr__free(p->owned);
        p->owned = NULL;
        p->t = q;
        p->quantized = true;
        p->flags &= ~(uint32_t)TSR_PARAM_LINEAR;
    }
    *rel_err = sqrt(num / den);
    return TSR_OK;
}

/* Perplexity over ids in windows of WIN tokens; logits kept in all[]. */
static double perplexity(tsr_model *m, const int32_t *ids, size_t n, int V, float *all)
{
    double nll = 0;
    size_t cnt = 0;
    for (size_t off = 0; off + 1 < n; off += WIN) {
        size_t len = n - off < WIN ? n - off : WIN;
        float *lg = all + off * (size_t)V;
        CHECK_MSG(tsr_model_logits(m, ids + off, len, lg) == TSR_OK, "%s", tsr_last_error());
        for (size_t t = 0; t + 1 < len; t++) {
            const float *l = lg + t * (size_t)V;
            double mx = l[0], s = 0;
            for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
            for (int v = 0; v < V; v++) s += exp(l[v] - mx);
            nll += -(l[ids[off + t + 1]] - mx - log(s));
            cnt++;
        }
    }
    return exp(nll / (double)cnt);
}

static double mean_kl(const float *p_logits, const float *q_logits, size_t rows, int V)
{
    double kl = 0;
    for (size_t r = 0; r < rows; r++) {
        const float *a = p_logits + r * (size_t)V, *b = q_logits + r * (size_t)V;
        double ma = a[0], mb = b[0], sa = 0, sb = 0;
        for (int v = 1; v < V; v++) { ma = a[v] > ma ? a[v] : ma; mb = b[v] > mb ? b[v] : mb; }
        for (int v = 0; v < V; v++) { sa += exp(a[v] - ma); sb += exp(b[v] - mb); }
        for (int v = 0; v < V; v++) {
            double la = a[v] - ma - log(sa), lb = b[v] - mb - log(sb);
            kl += exp(la) * (la - lb);
        }
    }
    return kl / (double)rows;
}

static size_t greedy(tsr_model *m, const int32_t *prompt, size_t np, int32_t *out)
{
    tsr_generate_options go = TSR_GENERATE_OPTIONS_INIT;
    go.max_new_tokens = 16;
    size_t n = 0;
    CHECK_MSG(tsr_generate(m, &go, prompt, np, NULL, NULL, out, 16, &n) == TSR_OK, "%s",
              tsr_last_error());
    return n;
}

typedef struct result { double ppl, kl, rel; size_t n_gen; int32_t gen[16]; } result;

static int32_t *ids;
static size_t n_ids, n_cal;
static float *ref_logits;
static double ref_ppl;
static int32_t ref_gen[16];

static result run(const char *method, const char *json, int calibrate)
{
    result r = {0};
    tsr_model *m = load_float();
    if (!m)
        return r;
    int V = 512;
    float *lg = malloc((n_ids - n_cal) * (size_t)V * sizeof *lg);
    tsr_status st = quantize_model(m, method, json, calibrate ? ids : NULL, n_cal, &r.rel);
    CHECK_MSG(st == TSR_OK, "%s %s: %s", method, json, tsr_last_error());
    if (!st) {
        r.ppl = perplexity(m, ids + n_cal, n_ids - n_cal, V, lg);
        r.kl = mean_kl(ref_logits, lg, n_ids - n_cal, V);
        r.n_gen = greedy(m, ids, 8, r.gen);
    }
    printf("  %-4s %-4s %-70s rel.err %.4f  ppl %.3f (float %.3f)  KL %.5f\n", method, calibrate ? "cal" : "rtn", json, r.rel,
           r.ppl, ref_ppl, r.kl);
    free(lg);
    tsr_model_destroy(m);
    return r;
}

int main(void)
{
    char *text = NULL;
    size_t len = 0;
    CHECK(tsr__read_file("fixtures/text/tinystories-like.txt", &text, &len) == TSR_OK);
    tsr_tokenizer *tok = NULL;
    CHECK(tsr_tokenizer_load("fixtures/stories260K-hf", &tok) == TSR_OK);
    if (!text || !tok)
        return tsr_test_report("test_gptq_model");
    CHECK(tsr_tokenize(tok, text, len, TSR_TOKENIZE_ADD_SPECIAL, NULL, 0, &n_ids) == TSR_OK);
    ids = malloc(n_ids * sizeof *ids);
    CHECK(tsr_tokenize(tok, text, len, TSR_TOKENIZE_ADD_SPECIAL, ids, n_ids, &n_ids) == TSR_OK);
    n_cal = n_ids / 2;
    printf("  %zu tokens: %zu calibrate, %zu evaluate\n", n_ids, n_cal, n_ids - n_cal);

    tsr_model *m = load_float();
    if (!m)
        return tsr_test_report("test_gptq_model");
    ref_logits = malloc((n_ids - n_cal) * 512 * sizeof(float));
    ref_ppl = perplexity(m, ids + n_cal, n_ids - n_cal, 512, ref_logits);
    size_t ng = greedy(m, ids, 8, ref_gen);
    CHECK(ng == 16);
    tsr_model_destroy(m);

    const char *g8 = "{\"quant_method\":\"gptq\",\"bits\":8,\"group_size\":32,\"damp_percent\":0.01}";
    const char *g4 = "{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":32,\"damp_percent\":0.01}";
    const char *g4a = "{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":32,\"desc_act\":true,"
                      "\"damp_percent\":0.01}";
    const char *g3 = "{\"quant_method\":\"gptq\",\"bits\":3,\"group_size\":32,\"damp_percent\":0.01}";
    const char *a4 = "{\"quant_method\":\"awq\",\"bits\":4,\"group_size\":32}";
    result r8 = run("gptq", g8, 1);
    CHECK(r8.ppl > 0 && r8.ppl <= 1.01 * ref_ppl);
    CHECK(r8.n_gen == 16 && memcmp(r8.gen, ref_gen, sizeof ref_gen) == 0);
    result r4 = run("gptq", g4, 1), n4 = run("gptq", g4, 0);
    result r4a = run("gptq", g4a, 1);
    CHECK(r4.ppl > 0 && r4.ppl <= 1.15 * ref_ppl);
    CHECK(r4a.ppl > 0 && r4a.ppl <= 1.15 * ref_ppl);
    CHECK(r4.ppl <= n4.ppl && r4.kl <= n4.kl);
    result r3 = run("gptq", g3, 1), n3 = run("gptq", g3, 0);
    CHECK(r3.ppl > 0 && r3.ppl <= 2.0 * ref_ppl);
    CHECK(r3.ppl <= n3.ppl && r3.kl <= n3.kl);
    CHECK(r4.n_gen == 16 && r3.n_gen == 16);
    result w4 = run("awq", a4, 0);
    CHECK(w4.ppl > 0 && w4.ppl <= 1.15 * ref_ppl && w4.n_gen == 16);

    free(ref_logits);
    free(ids);
    free(text);
    tsr_tokenizer_destroy(tok);
    return tsr_test_report("test_gptq_model");
}
