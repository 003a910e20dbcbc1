/* tests/unit/arch_ref.h - run a model (folder or GGUF) on the prompts of a
 * tiny fixture's reference.json (transformers' own outputs for the same
 * weights, fixtures/tiny-<arch>/, see fixtures/tiny-models-PROVENANCE.md)
 * and check:
 *   - logits within ARCH_REF_TOL absolute at every prompt position (or the
 *     first max_pos positions),
 *   - the greedy tokens exactly (if asked).
 * Shared by test_archs (the fixture folders), test_gguf_archs (llama.cpp's GGUFs of the fixtures) and
 * test_convert (tessera's GGUFs of the fixtures, and the folders tessera
 * writes back from llama.cpp's GGUFs). */
#ifndef TESSERA_TEST_ARCH_REF_H
#define TESSERA_TEST_ARCH_REF_H

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "tessera/tessera.h"
#include "tsr_test.h"

#define ARCH_REF_TOL 1e-4

typedef struct arch_case {
    const char *name;    /* fixtures/gguf-archs/tiny-<name>-f32.gguf, fixtures/tiny-<name>/ */
    size_t max_pos;      /* compare logits at positions < max_pos only; 0 = all */
    int greedy;          /* compare the greedy tokens */
} arch_case;

/* The fixtures llama.cpp's converter wrote GGUFs of (fixtures/gguf-archs/).
 * Mistral: llama.cpp's converter writes no sliding window (8), so only the
 * positions below it can match and no greedy tokens. */
static const arch_case arch_ref_cases[] = {
    {"llama", 0, 1},
    {"llama-linear", 0, 1},
    {"llama-yarn", 0, 1},
    {"llama-llama3", 0, 1},
    {"mistral", 8, 0},
    {"qwen2", 0, 1},
    {"qwen2_moe-sparse", 0, 1},
    {"mixtral", 0, 1},
    {"phi3", 0, 1},
    {"phi3-longrope", 0, 1},
    {"gemma", 0, 1},
};
#define ARCH_REF_N_CASES (sizeof arch_ref_cases / sizeof arch_ref_cases[0])

/* Load `model_path`, compare with fixtures/tiny-<ac->name>/reference.json.
 * With `keep`, the loaded model and its config are handed to the caller
 * (to destroy, model first); otherwise both are destroyed here.  Returns 1
 * if the model loaded.  Shared with test_archs (the folders themselves). */
static inline int arch_ref_check(const char *model_path, const arch_case *ac, tsr_model **keep,
                                  tsr_config **keep_cfg)
{
    char path[512];
    snprintf(path, sizeof path, "fixtures/tiny-%s/reference.json", ac->name);
    if (keep)
        *keep = NULL;
    if (keep_cfg)
        *keep_cfg = NULL;
    json_error_t err;
    json_t *ref = json_load_file(path, 0, &err);
    CHECK_MSG(ref != NULL, "%s: %s", path, err.text);
    if (!ref)
        return 0;
    CHECK_MSG(json_array_size(json_object_get(ref, "cases")) >= 2, "%s: no cases", path);
    tsr_config *cfg = NULL;
    CHECK(tsr_config_create(&cfg) == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.max_new_tokens", "16") == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.do_sample", "false") == TSR_OK);
    /* transformers generated with eos_token_id=None: no id stops early */
    CHECK(tsr_config_set(cfg, "generation.eos_token_id", "1000000") == TSR_OK);
    CHECK(tsr_config_set(cfg, "threads", "2") == TSR_OK);
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = model_path;
    lo.config = cfg;
    tsr_model *m = NULL;
    tsr_status st = tsr_model_load(&lo, &m);
    CHECK_MSG(st == TSR_OK, "%s: %s", model_path, tsr_last_error());
    if (st) {
        tsr_config_destroy(cfg);
        json_decref(ref);
        return 0;
    }
    size_t ci;
    json_t *c;
    json_array_foreach(json_object_get(ref, "cases"), ci, c) {
        json_t *pids = json_object_get(c, "prompt_ids"), *lg = json_object_get(c, "logits"),
               *greedy = json_object_get(c, "greedy");
        size_t n = json_array_size(pids), V = json_array_size(json_array_get(lg, 0));
        CHECK(n > 0 && json_array_size(lg) == n && V > 0);
        int32_t *ids = malloc(n * sizeof *ids);
        float *logits = malloc(n * V * sizeof *logits);
        for (size_t i = 0; i < n; i++)
            ids[i] = (int32_t)json_integer_value(json_array_get(pids, i));
        st = tsr_model_logits(m, ids, n, logits);
        CHECK_MSG(st == TSR_OK, "%s: logits: %s", model_path, tsr_last_error());
        size_t np = ac->max_pos && ac->max_pos < n ? ac->max_pos : n;
        double maxdiff = 0;
        size_t worst = 0;
        for (size_t p = 0; !st && p < np; p++)
            for (size_t v = 0; v < V; v++) {
                double r = json_number_value(json_array_get(json_array_get(lg, p), v));
                double d = fabs(r - logits[p * V + v]);
                if (!(d <= maxdiff)) {
                    maxdiff = d;
                    worst = p;
                }
            }
        CHECK_MSG(!st && maxdiff <= ARCH_REF_TOL, "%s: prompt %zu (%zu ids): max |logit - "
                  "transformers| = %g (first at position %zu)", model_path, ci, n, maxdiff, worst);
        fprintf(stderr, "  %s: prompt %zu (%zu of %zu positions): max logit difference %.3g\n",
                model_path, ci, np, n, maxdiff);
        if (ac->greedy) {
            int32_t gen[64];
            size_t n_gen = 0, nref = json_array_size(greedy);
            tsr_generate_options go = TSR_GENERATE_OPTIONS_INIT;
            go.config = cfg;
            st = tsr_generate(m, &go, ids, n, NULL, NULL, gen, 64, &n_gen);
            CHECK_MSG(st == TSR_OK, "%s: generate: %s", model_path, tsr_last_error());
            size_t same = 0;
            while (same < nref && same < n_gen &&
                   gen[same] == json_integer_value(json_array_get(greedy, same)))
                same++;
            CHECK_MSG(same == nref && n_gen == nref, "%s: prompt %zu: first %zu of %zu greedy "
                      "tokens match (%zu made)", model_path, ci, same, nref, n_gen);
        }
        free(ids);
        free(logits);
    }
    json_decref(ref);
    if (keep && keep_cfg) {
        *keep = m;
        *keep_cfg = cfg;
        return 1;
    }
    tsr_model_destroy(m);
    tsr_config_destroy(cfg);
    return 1;
}

#endif /* TESSERA_TEST_ARCH_REF_H */
