/* tests/unit/test_awq_search.c - AWQ's scale and clip search
 * (core/calibrate_awq.c) gives the same weights whatever the number of
 * threads it runs on: its work items write their own slots, summed in a
 * fixed order.  stories260K (fixtures/stories260K-hf), calibration text
 * fixtures/text/tinystories-like.txt; two float models loaded with the same
 * configuration (so the calibration forward passes are the same), then
 * searched with "threads" 1 and 3; every parameter (the folded norms, the
 * scaled and clipped Linear weights) must be equal bit for bit, for groups
 * of 32 and for groups of 30, which divide neither K = 64 nor K = 172 (the
 * kernels' partial blocks), and with 3 bits. */
#include <stdlib.h>
#include "tsr_test.h"
#include "calibrate.h"

static tsr_model *load(tsr_config *cfg)
{
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = "fixtures/stories260K-hf";
    lo.config = cfg;
    tsr_model *m = NULL;
    CHECK_MSG(tsr_model_load(&lo, &m) == TSR_OK, "%s", tsr_last_error());
    return m;
}

static tsr_status setup(tsr_model *m, const char *json)
{
    tsr_status st = tsr__registry_find(tsr__registry_global(), TSR_PLUGIN_QUANTIZER, "awq",
                                       &m->qdesc);
    if (st)
        return st;
    m->qvt = m->qdesc->vtable;
    tsr_json *j = NULL;
    if ((st = tsr__json_load_buffer("qconfig", json, strlen(json), &j)))
        return st;
    m->qconfig = j; /* freed with the model */
    return m->qvt->create(tsr__host(), j, &m->qstate);
}

static size_t count(const tsr__param *p)
{
    size_t c = 1;
    for (int d = 0; d < p->n_dims; d++)
        c *= (size_t)p->ne[d];
    return c;
}

static void same_search(const char *json, const int32_t *ids, size_t n)
{
    tsr_config *c1 = NULL, *c3 = NULL;
    CHECK(tsr_config_create(&c1) == TSR_OK && tsr_config_create(&c3) == TSR_OK);
    if (!c1 || !c3)
        goto out;
    CHECK(tsr_config_set(c1, "threads", "2") == TSR_OK && tsr_config_set(c3, "threads", "2") == TSR_OK);
    tsr_model *a = load(c1), *b = load(c3);
    if (!a || !b)
        goto models;
    /* the backends keep 2 threads; the search reads "threads" again */
    CHECK(tsr_config_set(c1, "threads", "1") == TSR_OK && tsr_config_set(c3, "threads", "3") == TSR_OK);
    tsr__awq_report ra = {0}, rb = {0};
    CHECK_MSG(setup(a, json) == TSR_OK && tsr__awq_search(a, ids, n, &ra) == TSR_OK, "%s",
              tsr_last_error());
    CHECK_MSG(setup(b, json) == TSR_OK && tsr__awq_search(b, ids, n, &rb) == TSR_OK, "%s",
              tsr_last_error());
    CHECK(ra.scaled_groups == 15 && rb.scaled_groups == 15 && ra.clipped == 25 && rb.clipped == 25);
    CHECK(ra.mean_ratio == rb.mean_ratio);
    size_t differ = 0, compared = 0, changed = 0;
    for (size_t i = 0; i < a->env.n_params; i++) {
        const tsr__param *p = &a->env.params[i], *q = tsr__param_find(&b->env, p->name);
        if (!q || !p->t.data || !q->t.data || p->t.dtype != TSR_DTYPE_F32 ||
            q->t.dtype != TSR_DTYPE_F32 || count(p) != count(q)) {
            CHECK_MSG(q && p->t.dtype == q->t.dtype, "%s", p->name);
            continue;
        }
        compared++;
        differ += memcmp(p->t.data, q->t.data, count(p) * sizeof(float)) != 0;
        changed += p->owned != NULL && p->t.data == p->owned;
    }
    printf("  %s: %zu parameters compared, %zu differ (%zu rewritten by the search); mean ratio "
           "%.3f\n", json, compared, differ, changed, ra.mean_ratio);
    CHECK(compared > 40 && differ == 0);
    CHECK(changed >= 35); /* 35 Linear weights scaled and/or clipped, norms folded */
models:
    if (a)
        tsr_model_destroy(a);
    if (b)
        tsr_model_destroy(b);
out:
    tsr_config_destroy(c1);
    tsr_config_destroy(c3);
}

int main(void)
{
    char *text = NULL;
    size_t len = 0, n = 0;
    CHECK(tsr__read_file("fixtures/text/tinystories-like.txt", &text, &len) == TSR_OK);
    tsr_tokenizer *tok = NULL;
    CHECK(tsr_tokenizer_load("fixtures/stories260K-hf", &tok) == TSR_OK);
    if (!text || !tok)
        return tsr_test_report("test_awq_search");
    CHECK(tsr_tokenize(tok, text, len, TSR_TOKENIZE_ADD_SPECIAL, NULL, 0, &n) == TSR_OK);
    int32_t *ids = malloc(n * sizeof *ids);
    CHECK(ids && tsr_tokenize(tok, text, len, TSR_TOKENIZE_ADD_SPECIAL, ids, n, &n) == TSR_OK);
    if (ids) {
        size_t cal = n / 2;
        same_search("{\"quant_method\":\"awq\",\"bits\":4,\"group_size\":32}", ids, cal);
        same_search("{\"quant_method\":\"awq\",\"bits\":4,\"group_size\":30}", ids, cal);
        same_search("{\"quant_method\":\"awq\",\"bits\":3,\"group_size\":64,\"duo_scaling\":false}",
                    ids, cal);
    }
    free(ids);
    tsr_tokenizer_destroy(tok);
    free(text);
    return tsr_test_report("test_awq_search");
}
