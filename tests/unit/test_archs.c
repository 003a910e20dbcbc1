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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "arch_ref.h"
#include "tessera/tessera.h"
#include "tsr_test.h"

static int n_archs;

/* dir: fixtures/tiny-<name> (the checks: tests/unit/arch_ref.h) */
static void run_arch(const char *dir)
{
    const char *t = strstr(dir, "tiny-");
    arch_case ac = {t ? t + 5 : dir, 0, 1};
    n_archs += arch_ref_check(dir, &ac, NULL, NULL);
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
