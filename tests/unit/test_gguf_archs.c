/* tests/unit/test_gguf_archs.c - GGUF files written by llama.cpp's own
 * converter (convert_hf_to_gguf.py --outtype f32) from the tiny transformers
 * fixtures, run by tessera and compared with transformers' outputs for the
 * same weights (fixtures/tiny-<arch>/reference.json):
 *   - logits within 1e-4 absolute at every prompt position,
 *   - the 16 greedy tokens exactly.
 * (the cases and the checks: tests/unit/arch_ref.h).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "arch_ref.h"
#include "tessera/tessera.h"
#include "tsr_test.h"

static void run_case(const arch_case *ac)
{
    char file[512];
    snprintf(file, sizeof file, "fixtures/gguf-archs/tiny-%s-f32.gguf", ac->name);
    tsr_model *m = NULL;
    tsr_config *cfg = NULL;
    arch_ref_check(file, ac, &m, &cfg);
    if (!m)
        return;
    /* the vocabulary (fixtures/gguf-archs/tokenizer.model, 256 pieces) came along */
    const tsr_tokenizer *tok = tsr_model_tokenizer(m);
    CHECK_MSG(tok != NULL && tsr_tokenizer_vocab_size(tok) == 256, "%s: no tokenizer of 256 tokens", file);
    tsr_model_destroy(m);
    tsr_config_destroy(cfg);
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
    for (size_t i = 0; i < ARCH_REF_N_CASES; i++) {
        /* argv[1..]: run only these names (for debugging) */
        int want = argc < 2;
        for (int a = 1; a < argc; a++)
            want |= !strcmp(argv[a], arch_ref_cases[i].name);
        if (want)
            run_case(&arch_ref_cases[i]);
    }
    return tsr_test_report("test_gguf_archs");
}
