/* tests/unit/test_gguf_models.c - stories260K from its three GGUF files
 * (fixtures/stories260K-gguf) against the reference outputs
 * (fixtures/stories260K-reference): GGUF metadata becomes config.json,
 * tensors get Hugging Face names, llama's q/k rows are un-permuted, block
 * formats run as they are.
 *   F32: logits within 1e-4 and every reference greedy token;
 *   F16: logits within 2e-2 (weights rounded to half) and the greedy tokens;
 *   mixed Q5_0/Q8_0/F16 ("q4_k_m"): the greedy text llama.cpp prints for
 *   the same file (recorded in tests/data/gguf/stories260K-q4_k_m.llamacpp.txt). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include "tessera/tessera.h"
#include "tsr_test.h"

static void check_file(const char *file, double tol, json_t *cases)
{
    tsr_config *cfg = NULL;
    CHECK(tsr_config_create(&cfg) == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.do_sample", "false") == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.max_new_tokens", "128") == TSR_OK);
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = file;
    lo.config = cfg;
    tsr_model *m = NULL;
    tsr_status st = tsr_model_load(&lo, &m);
    CHECK_MSG(st == TSR_OK, "%s: %s", file, tsr_last_error());
    if (st) {
        tsr_config_destroy(cfg);
        return;
    }
    size_t ci;
    json_t *c;
    json_array_foreach(cases, ci, c) {
        json_t *pids = json_object_get(c, "prompt_ids_with_bos");
        json_t *all = json_object_get(c, "all_ids");
        json_t *lg = json_object_get(c, "logits_first_positions");
        size_t np = json_array_size(pids);
        int32_t ids[64], seq[8];
        for (size_t i = 0; i < np; i++)
            ids[i] = (int32_t)json_integer_value(json_array_get(pids, i));
        for (size_t i = 0; i < 8; i++)
            seq[i] = (int32_t)json_integer_value(json_array_get(all, i));
        if (tol > 0) {
            static float logits[8 * 512];
            CHECK(tsr_model_logits(m, seq, 8, logits) == TSR_OK);
            double md = 0;
            for (size_t p = 0; p < 8; p++)
                for (size_t v = 0; v < 512; v++) {
                    double d = fabs(json_number_value(json_array_get(json_array_get(lg, p), v)) -
                                    logits[p * 512 + v]);
                    md = d > md ? d : md;
                }
            CHECK_MSG(md <= tol, "%s case %zu: max logit difference %g > %g", file, ci, md, tol);
            fprintf(stderr, "  %s case %zu: max logit difference %.3g\n", file, ci, md);
        }
        int32_t gen[128];
        size_t n_gen = 0;
        tsr_generate_options go = TSR_GENERATE_OPTIONS_INIT;
        go.config = cfg;
        CHECK(tsr_generate(m, &go, ids, np, NULL, NULL, gen, 128, &n_gen) == TSR_OK);
        size_t nref = json_array_size(all) - np, same = 0;
        while (same < nref && same < n_gen &&
               gen[same] == json_integer_value(json_array_get(all, np + same)))
            same++;
        CHECK_MSG(same == nref, "%s case %zu: %zu of %zu greedy tokens match", file, ci, same, nref);
    }
    tsr_model_destroy(m);
    tsr_config_destroy(cfg);
}

/* Greedy 64 tokens after "Once upon a time" (BOS + 4 ids, as the reference's
 * case 1), decoded, equal llama.cpp's text for the same file. */
static void check_mixed(const char *file, const char *want)
{
    tsr_config *cfg = NULL;
    CHECK(tsr_config_create(&cfg) == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.do_sample", "false") == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.max_new_tokens", "64") == TSR_OK);
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = file;
    lo.config = cfg;
    tsr_model *m = NULL;
    CHECK_MSG(tsr_model_load(&lo, &m) == TSR_OK, "%s: %s", file, tsr_last_error());
    if (m) {
        int32_t prompt[5] = {1, 403, 407, 261, 378}, gen[64];
        size_t n_gen = 0, len = 0;
        tsr_generate_options go = TSR_GENERATE_OPTIONS_INIT;
        go.config = cfg;
        CHECK(tsr_generate(m, &go, prompt, 5, NULL, NULL, gen, 64, &n_gen) == TSR_OK);
        static char got[8192];
        CHECK(tsr_detokenize(tsr_model_tokenizer(m), gen, n_gen, TSR_DETOKENIZE_SKIP_SPECIAL, got,
                             sizeof got, &len) == TSR_OK);
        CHECK_MSG(strcmp(got, want) == 0, "%s: greedy text differs from llama.cpp's:\n%s\n---\n%s",
                  file, got, want);
        tsr_model_destroy(m);
    }
    tsr_config_destroy(cfg);
}

int main(void)
{
    json_error_t err;
    json_t *ref = json_load_file("fixtures/stories260K-reference/reference_outputs.json", 0, &err);
    CHECK(ref != NULL);
    if (!ref)
        return tsr_test_report("test_gguf_models");
    json_t *cases = json_object_get(ref, "cases");
    check_file("fixtures/stories260K-gguf/stories260K-f32.gguf", 1e-4, cases);
    check_file("fixtures/stories260K-gguf/stories260K-f16.gguf", 2e-2, cases);
    /* the mixed file: llama.cpp's greedy text for "Once upon a time" */
    FILE *f = fopen("tests/data/gguf/stories260K-q4_k_m.llamacpp.txt", "r");
    CHECK(f != NULL);
    if (f) {
        static char want[8192], line[4096];
        size_t wl = 0;
        while (fgets(line, sizeof line, f))
            if (line[0] != '#') {
                size_t l = strlen(line);
                memcpy(want + wl, line, l);
                wl += l;
            }
        fclose(f);
        want[wl] = 0;
        check_mixed("fixtures/stories260K-gguf/stories260K-q4_k_m.gguf", want);
    }
    json_decref(ref);
    return tsr_test_report("test_gguf_models");
}
