/* tests/unit/test_stories.c - stories260K (a real trained Llama) from its
 * Hugging Face folder against independent reference outputs
 * (fixtures/stories260K-reference: a float64 implementation of llama2.c's
 * forward pass, cross-checked with llama.cpp):
 *   - the prompt's token ids,
 *   - the full logits at the first 8 positions within 1e-4,
 *   - the greedy continuation token for token.
 * The reference file holds 128 greedy tokens for the empty prompt and fewer
 * (44, 57, 37) for the others, though its PROVENANCE says 128: every token it
 * has must match; the rest of our 128 has nothing to compare against.
 * Also run on the 3-shard copy (identical results required). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include "tessera/tessera.h"
#include "tsr_test.h"

static int32_t gen[256];
static size_t n_gen;

static void run_model(const char *dir, json_t *cases, float *first_logits_out)
{
    tsr_config *cfg = NULL;
    CHECK(tsr_config_create(&cfg) == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.max_new_tokens", "128") == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.do_sample", "false") == TSR_OK);
    CHECK(tsr_config_set(cfg, "threads", "2") == TSR_OK);
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = dir;
    lo.config = cfg;
    tsr_model *m = NULL;
    tsr_status st = tsr_model_load(&lo, &m);
    CHECK_MSG(st == TSR_OK, "%s: %s", dir, tsr_last_error());
    if (st) {
        tsr_config_destroy(cfg);
        return;
    }
    const tsr_tokenizer *tok = tsr_model_tokenizer(m);
    CHECK(tok != NULL);
    size_t ci;
    json_t *c;
    json_array_foreach(cases, ci, c) {
        const char *prompt = json_string_value(json_object_get(c, "prompt"));
        json_t *pids = json_object_get(c, "prompt_ids_with_bos");
        json_t *all = json_object_get(c, "all_ids");
        json_t *lg = json_object_get(c, "logits_first_positions");
        size_t np = json_array_size(pids);
        int32_t ids[64];
        size_t n = 0;
        CHECK(tsr_tokenize(tok, prompt, strlen(prompt), TSR_TOKENIZE_ADD_SPECIAL, ids, 64, &n) == TSR_OK);
        CHECK_MSG(n == np, "prompt '%s': %zu ids, reference %zu", prompt, n, np);
        for (size_t i = 0; i < np && i < n; i++)
            CHECK_MSG(ids[i] == json_integer_value(json_array_get(pids, i)),
                      "prompt '%s': id %zu", prompt, i);
        /* logits: positions beyond the prompt come from the greedy ids */
        int32_t seq[8];
        for (size_t i = 0; i < 8; i++)
            seq[i] = (int32_t)json_integer_value(json_array_get(all, i));
        size_t npos = json_array_size(lg) < json_array_size(all) ? json_array_size(lg) : json_array_size(all);
        float *logits = malloc(8 * 512 * sizeof(float));
        CHECK(tsr_model_logits(m, seq, npos, logits) == TSR_OK);
        double maxdiff = 0;
        for (size_t p = 0; p < npos; p++)
            for (size_t v = 0; v < 512; v++) {
                double ref = json_number_value(json_array_get(json_array_get(lg, p), v));
                double d = fabs(ref - logits[p * 512 + v]);
                maxdiff = d > maxdiff ? d : maxdiff;
            }
        CHECK_MSG(maxdiff <= 1e-4, "prompt '%s': max |logit - reference| = %g", prompt, maxdiff);
        fprintf(stderr, "  %s: prompt '%s': max logit difference %.3g\n", dir, prompt, maxdiff);
        if (first_logits_out && ci == 0)
            memcpy(first_logits_out, logits, 8 * 512 * sizeof(float));
        free(logits);
        /* greedy continuation */
        tsr_generate_options go = TSR_GENERATE_OPTIONS_INIT;
        go.config = cfg;
        n_gen = 0;
        CHECK(tsr_generate(m, &go, ids, n, NULL, NULL, gen, 256, &n_gen) == TSR_OK);
        size_t nref = json_array_size(all) - np;
        size_t same = 0;
        while (same < nref && same < n_gen &&
               gen[same] == json_integer_value(json_array_get(all, np + same)))
            same++;
        CHECK_MSG(same == nref, "prompt '%s': first %zu of %zu greedy tokens match", prompt, same, nref);
        CHECK(n_gen == 128); /* eos (2) never comes within 128 tokens */
    }
    tsr_model_destroy(m);
    tsr_config_destroy(cfg);
}

int main(void)
{
    json_error_t err;
    json_t *ref = json_load_file("fixtures/stories260K-reference/reference_outputs.json", 0, &err);
    CHECK(ref != NULL);
    if (!ref)
        return tsr_test_report("test_stories");
    json_t *cases = json_object_get(ref, "cases");
    CHECK(json_array_size(cases) == 4);
    static float a[8 * 512], b[8 * 512];
    run_model("fixtures/stories260K-hf", cases, a);
    run_model("fixtures/stories260K-hf-sharded", cases, b);
    CHECK(memcmp(a, b, sizeof a) == 0); /* sharded == single file, bit for bit */
    json_decref(ref);
    return tsr_test_report("test_stories");
}
