/* tests/unit/test_gguf_archs.c - GGUF files written by llama.cpp's own
 * converter (convert_hf_to_gguf.py --outtype f32) from the tiny transformers
 * fixtures, run by tessera and compared with transformers' outputs for the
 * same weights (fixtures/tiny-<arch>/reference.json):
 *   - logits within 1e-4 absolute at every prompt position,
 *   - the 16 greedy tokens exactly.
 * This checks what tessera recovers from a GGUF written by someone else:
 * tensor names, llama's q/k row permutation, fused phi3 qkv / gate_up,
 * stacked experts, config keys, gemma's norm weights (+1 in GGUF), llama3's
 * rope_freqs and phi3's longrope factor tensors.
 *
 * One known loss: llama.cpp's converter writes no sliding window for
 * mistral (llama architecture), so tiny-mistral's GGUF equals the model
 * without a window; only positions below the window (8) are compared and
 * no greedy tokens.  fixtures/gguf-archs/PROVENANCE.md has the commands. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tessera/tessera.h"
#include "tsr_test.h"

#define TOL 1e-4

typedef struct arch_case {
    const char *name;    /* fixtures/gguf-archs/tiny-<name>-f32.gguf, fixtures/tiny-<name>/ */
    size_t max_pos;      /* compare logits at positions < max_pos only; 0 = all */
    int greedy;          /* compare the greedy tokens */
} arch_case;

static const arch_case cases_tab[] = {
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

static void run_case(const arch_case *ac)
{
    char path[512], file[512];
    snprintf(path, sizeof path, "fixtures/tiny-%s/reference.json", ac->name);
    snprintf(file, sizeof file, "fixtures/gguf-archs/tiny-%s-f32.gguf", ac->name);
    json_error_t err;
    json_t *ref = json_load_file(path, 0, &err);
    CHECK_MSG(ref != NULL, "%s: %s", path, err.text);
    if (!ref)
        return;
    tsr_config *cfg = NULL;
    CHECK(tsr_config_create(&cfg) == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.max_new_tokens", "16") == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.do_sample", "false") == TSR_OK);
    /* transformers generated with eos_token_id=None: no id stops early */
    CHECK(tsr_config_set(cfg, "generation.eos_token_id", "1000000") == TSR_OK);
    CHECK(tsr_config_set(cfg, "threads", "2") == TSR_OK);
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = file;
    lo.config = cfg;
    tsr_model *m = NULL;
    tsr_status st = tsr_model_load(&lo, &m);
    CHECK_MSG(st == TSR_OK, "%s: %s", file, tsr_last_error());
    if (st) {
        tsr_config_destroy(cfg);
        json_decref(ref);
        return;
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
        CHECK_MSG(st == TSR_OK, "%s: logits: %s", file, tsr_last_error());
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
        CHECK_MSG(!st && maxdiff <= TOL, "%s: prompt %zu (%zu ids): max |logit - transformers| = %g "
                  "(first at position %zu)", file, ci, n, maxdiff, worst);
        fprintf(stderr, "  %s: prompt %zu (%zu of %zu positions): max logit difference %.3g\n", file, ci, np,
                n, maxdiff);
        if (ac->greedy) {
            int32_t gen[64];
            size_t n_gen = 0, nref = json_array_size(greedy);
            tsr_generate_options go = TSR_GENERATE_OPTIONS_INIT;
            go.config = cfg;
            st = tsr_generate(m, &go, ids, n, NULL, NULL, gen, 64, &n_gen);
            CHECK_MSG(st == TSR_OK, "%s: generate: %s", file, tsr_last_error());
            size_t same = 0;
            while (same < nref && same < n_gen &&
                   gen[same] == json_integer_value(json_array_get(greedy, same)))
                same++;
            CHECK_MSG(same == nref && n_gen == nref,
                      "%s: prompt %zu: first %zu of %zu greedy tokens match (%zu made)", file, ci, same, nref,
                      n_gen);
        }
        free(ids);
        free(logits);
    }
    /* the vocabulary (fixtures/gguf-archs/tokenizer.model, 256 pieces) came along */
    const tsr_tokenizer *tok = tsr_model_tokenizer(m);
    CHECK_MSG(tok != NULL && tsr_tokenizer_vocab_size(tok) == 256, "%s: no tokenizer of 256 tokens", file);
    tsr_model_destroy(m);
    tsr_config_destroy(cfg);
    json_decref(ref);
}

/* The vocabulary llama.cpp's converter copied from tokenizer.model encodes as
 * SentencePiece itself does (fixtures/gguf-archs/tokenizer_reference.json). */
static void check_tokenizer(void)
{
    const char *file = "fixtures/gguf-archs/tiny-llama-f32.gguf";
    json_error_t err;
    json_t *ref = json_load_file("fixtures/gguf-archs/tokenizer_reference.json", 0, &err);
    CHECK_MSG(ref != NULL, "tokenizer_reference.json: %s", err.text);
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = file;
    tsr_model *m = NULL;
    CHECK_MSG(tsr_model_load(&lo, &m) == TSR_OK, "%s: %s", file, tsr_last_error());
    const tsr_tokenizer *tok = m ? tsr_model_tokenizer(m) : NULL;
    CHECK_MSG(tok != NULL, "%s: no tokenizer", file);
    size_t ci;
    json_t *c;
    json_array_foreach(json_object_get(ref, "cases"), ci, c) {
        if (!tok)
            break;
        const char *text = json_string_value(json_object_get(c, "text"));
        json_t *want = json_object_get(c, "ids");
        int32_t ids[256];
        size_t n = 0, same = 0;
        CHECK(tsr_tokenize(tok, text, strlen(text), 0, ids, 256, &n) == TSR_OK);
        while (same < n && same < json_array_size(want) &&
               ids[same] == json_integer_value(json_array_get(want, same)))
            same++;
        CHECK_MSG(same == n && n == json_array_size(want), "%s: '%s': %zu ids, the first %zu of SentencePiece's %zu",
                  file, text, n, same, json_array_size(want));
    }
    tsr_model_destroy(m);
    json_decref(ref);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        check_tokenizer();
    for (size_t i = 0; i < sizeof cases_tab / sizeof *cases_tab; i++) {
        /* argv[1..]: run only these names (for debugging) */
        int want = argc < 2;
        for (int a = 1; a < argc; a++)
            want |= !strcmp(argv[a], cases_tab[i].name);
        if (want)
            run_case(&cases_tab[i]);
    }
    return tsr_test_report("test_gguf_archs");
}
