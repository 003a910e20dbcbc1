/* tests/unit/test_archs.c - every architecture against transformers itself.
 *
 * Each fixtures/tiny-<arch>/ folder holds a tiny randomly initialised model
 * saved by transformers' save_pretrained (F32 safetensors) and, in
 * reference.json, transformers' own outputs (eager attention, float32):
 *   - the logits at every position of 3 prompts of token ids, which must
 *     match within 1e-4 absolute;
 *   - 16 greedy tokens from model.generate(do_sample=False) for each prompt
 *     (no eos), which must match exactly.
 * tests/fidelity/archs/make_fixtures.py made them; see
 * fixtures/tiny-models-PROVENANCE.md. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tessera/tessera.h"
#include "tsr_test.h"

#define TOL 1e-4

static int n_archs;

static void run_arch(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    json_error_t err;
    json_t *ref = json_load_file(path, 0, &err);
    CHECK_MSG(ref != NULL, "%s: %s", path, err.text);
    if (!ref)
        return;
    json_t *cases = json_object_get(ref, "cases");
    CHECK_MSG(json_array_size(cases) >= 2, "%s: no cases", path);
    tsr_config *cfg = NULL;
    CHECK(tsr_config_create(&cfg) == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.max_new_tokens", "16") == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.do_sample", "false") == TSR_OK);
    /* transformers generated with eos_token_id=None: no id stops early */
    CHECK(tsr_config_set(cfg, "generation.eos_token_id", "1000000") == TSR_OK);
    CHECK(tsr_config_set(cfg, "threads", "2") == TSR_OK);
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = dir;
    lo.config = cfg;
    tsr_model *m = NULL;
    tsr_status st = tsr_model_load(&lo, &m);
    CHECK_MSG(st == TSR_OK, "%s: %s", dir, tsr_last_error());
    if (st) {
        tsr_config_destroy(cfg);
        json_decref(ref);
        return;
    }
    n_archs++;
    size_t ci;
    json_t *c;
    json_array_foreach(cases, ci, c) {
        json_t *pids = json_object_get(c, "prompt_ids"), *lg = json_object_get(c, "logits"),
               *greedy = json_object_get(c, "greedy");
        size_t n = json_array_size(pids), V = json_array_size(json_array_get(lg, 0));
        CHECK(n > 0 && json_array_size(lg) == n && V > 0);
        int32_t *ids = malloc(n * sizeof *ids);
        float *logits = malloc(n * V * sizeof *logits);
        for (size_t i = 0; i < n; i++)
            ids[i] = (int32_t)json_integer_value(json_array_get(pids, i));
        st = tsr_model_logits(m, ids, n, logits);
        CHECK_MSG(st == TSR_OK, "%s: logits: %s", dir, tsr_last_error());
        double maxdiff = 0;
        size_t worst = 0;
        for (size_t p = 0; !st && p < n; p++)
            for (size_t v = 0; v < V; v++) {
                double r = json_number_value(json_array_get(json_array_get(lg, p), v));
                double d = fabs(r - logits[p * V + v]);
                if (!(d <= maxdiff)) {
                    maxdiff = d;
                    worst = p;
                }
            }
        CHECK_MSG(!st && maxdiff <= TOL, "%s: prompt %zu (%zu ids): max |logit - transformers| = %g "
                  "(first at position %zu)", dir, ci, n, maxdiff, worst);
        fprintf(stderr, "  %s: prompt %zu (%zu ids): max logit difference %.3g\n", dir, ci, n, maxdiff);
        /* greedy continuation */
        int32_t gen[64];
        size_t n_gen = 0, nref = json_array_size(greedy);
        tsr_generate_options go = TSR_GENERATE_OPTIONS_INIT;
        go.config = cfg;
        st = tsr_generate(m, &go, ids, n, NULL, NULL, gen, 64, &n_gen);
        CHECK_MSG(st == TSR_OK, "%s: generate: %s", dir, tsr_last_error());
        size_t same = 0;
        while (same < nref && same < n_gen && gen[same] == json_integer_value(json_array_get(greedy, same)))
            same++;
        CHECK_MSG(same == nref && n_gen == nref, "%s: prompt %zu: first %zu of %zu greedy tokens match (%zu made)",
                  dir, ci, same, nref, n_gen);
        free(ids);
        free(logits);
    }
    tsr_model_destroy(m);
    tsr_config_destroy(cfg);
    json_decref(ref);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    /* argv[1..]: run only these fixture folders (for debugging) */
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            run_arch(argv[i]);
        return tsr_test_report("test_archs");
    }
    DIR *d = opendir("fixtures");
    CHECK(d != NULL);
    if (!d)
        return tsr_test_report("test_archs");
    char *names[128];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 128)
        if (!strncmp(e->d_name, "tiny-", 5)) {
            char p[300];
            snprintf(p, sizeof p, "fixtures/%s/reference.json", e->d_name);
            FILE *f = fopen(p, "r");
            if (!f)
                continue;
            fclose(f);
            names[n] = malloc(strlen(e->d_name) + 10);
            sprintf(names[n++], "fixtures/%s", e->d_name);
        }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        run_arch(names[i]);
        free(names[i]);
    }
    CHECK_MSG(n >= 13, "only %d fixtures/tiny-*/ folders", n);
    CHECK(n_archs == n);
    return tsr_test_report("test_archs");
}
