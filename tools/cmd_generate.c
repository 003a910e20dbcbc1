/* tools/cmd_generate.c - tessera generate: stdout carries only the
 * generated text (or ids with --ids); logs and timings go to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common.h"

static const char help[] =
    "usage: tessera generate -m DIR -p TEXT [-n N] [options]\n"
    "\n"
    "Generate a continuation of TEXT.  Only the generated text is written to\n"
    "stdout, as it is produced; logs and timings go to stderr.\n"
    "Sampling settings default to the model's generation_config.json, as in\n"
    "transformers; flags and -c files override them.\n"
    "\n"
    "  -p, --prompt TEXT       the prompt (default: empty, i.e. BOS only)\n"
    "  -n, --max-new-tokens N  generation.max_new_tokens\n"
    "      --temp T            0: greedy; > 0: sample with this temperature\n"
    "      --top-k K           generation.top_k (0 = off)\n"
    "      --top-p P           generation.top_p (1 = off)\n"
    "      --min-p P           generation.min_p (0 = off)\n"
    "      --repeat-penalty R  generation.repetition_penalty (1 = off)\n"
    "      --seed S            random seed for sampling\n"
    "      --stop STR          stop after the text contains STR (repeatable)\n"
    "      --ids               print generated token ids instead of text\n"
    "%s"
    "  -h, --help              this help\n";

typedef struct out_state {
    int ids;
    int n;
} out_state;

static int on_token(int32_t token, const char *text, size_t len, void *user)
{
    out_state *o = user;
    if (o->ids)
        printf("%s%d", o->n++ ? " " : "", token);
    else
        fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int tsr_cli_generate(int argc, char **argv)
{
    cli_common c;
    if (cli_common_init(&c))
        return 1;
    const char *prompt = "";
    int ids_out = 0, rc = 2;
    char stops[4096] = "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_option(&c, argc, argv, &i);
        if (r < 0)
            goto out;
        if (r > 0)
            continue;
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        const char *key = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf(help, cli_common_help);
            rc = 0;
            goto out;
        } else if (!strcmp(a, "--ids")) {
            ids_out = 1;
            continue;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            key = "";
        } else if (!strcmp(a, "-n") || !strcmp(a, "--max-new-tokens")) {
            key = "generation.max_new_tokens";
        } else if (!strcmp(a, "--top-k")) {
            key = "generation.top_k";
        } else if (!strcmp(a, "--top-p")) {
            key = "generation.top_p";
        } else if (!strcmp(a, "--min-p")) {
            key = "generation.min_p";
        } else if (!strcmp(a, "--repeat-penalty")) {
            key = "generation.repetition_penalty";
        } else if (!strcmp(a, "--seed")) {
            key = "generation.seed";
        } else if (!strcmp(a, "--temp") || !strcmp(a, "--temperature")) {
            key = "temp";
        } else if (!strcmp(a, "--stop")) {
            key = "stop";
        } else {
            fprintf(stderr, "tessera generate: unknown option '%s' (see --help)\n", a);
            goto out;
        }
        if (!val) {
            fprintf(stderr, "tessera generate: option %s needs a value\n", a);
            goto out;
        }
        i++;
        tsr_status st = TSR_OK;
        if (!*key) {
            prompt = val;
        } else if (!strcmp(key, "temp")) {
            double t = atof(val);
            st = tsr_config_set(c.cfg, "generation.do_sample", t > 0 ? "true" : "false");
            if (!st && t > 0)
                st = tsr_config_set(c.cfg, "generation.temperature", val);
        } else if (!strcmp(key, "stop")) {
            /* collect as a YAML flow list of double-quoted strings */
            size_t l = strlen(stops);
            snprintf(stops + l, sizeof stops - l, "%s\"", l ? ", " : "");
            for (const char *p = val; *p && strlen(stops) + 8 < sizeof stops; p++) {
                l = strlen(stops);
                if (*p == '"' || *p == '\\')
                    snprintf(stops + l, sizeof stops - l, "\\%c", *p);
                else
                    snprintf(stops + l, sizeof stops - l, "%c", *p);
            }
            l = strlen(stops);
            snprintf(stops + l, sizeof stops - l, "\"");
        } else {
            st = tsr_config_set(c.cfg, key, val);
        }
        if (st) {
            tsr_cli_fail("option", st);
            goto out;
        }
    }
    if (*stops) {
        char list[4200];
        snprintf(list, sizeof list, "[%s]", stops);
        tsr_status st = tsr_config_set(c.cfg, "generation.stop_strings", list);
        if (st) {
            tsr_cli_fail("--stop", st);
            goto out;
        }
    }
    rc = 1;
    double t0 = now();
    tsr_model *m = cli_load_model(&c);
    if (!m)
        goto out;
    double t1 = now();
    const tsr_tokenizer *tok = tsr_model_tokenizer(m);
    if (!tok) {
        fprintf(stderr, "tessera generate: the model folder has no tokenizer.json\n");
        tsr_model_destroy(m);
        goto out;
    }
    size_t n = 0, cap = strlen(prompt) + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    tsr_status st = ids ? tsr_tokenize(tok, prompt, strlen(prompt), TSR_TOKENIZE_ADD_SPECIAL, ids,
                                       cap, &n) : TSR_ERR_NOMEM;
    if (!st && n > cap) {
        int32_t *bigger = realloc(ids, n * sizeof *ids);
        st = bigger ? tsr_tokenize(tok, prompt, strlen(prompt), TSR_TOKENIZE_ADD_SPECIAL, bigger,
                                   n, &n) : TSR_ERR_NOMEM;
        ids = bigger ? bigger : ids;
    }
    if (!st && n == 0) {
        int32_t bos = tsr_tokenizer_bos(tok);
        if (bos < 0) {
            fprintf(stderr, "tessera generate: the prompt is empty and the tokenizer has no BOS token\n");
            free(ids);
            tsr_model_destroy(m);
            goto out;
        }
        ids[n++] = bos;
    }
    out_state o = {ids_out, 0};
    tsr_generate_options go = TSR_GENERATE_OPTIONS_INIT;
    go.config = c.cfg;
    size_t n_gen = 0;
    double t2 = now();
    if (!st)
        st = tsr_generate(m, &go, ids, n, on_token, &o, NULL, 0, &n_gen);
    double t3 = now();
    if (ids_out || n_gen)
        putchar('\n');
    fflush(stdout);
    if (st) {
        tsr_cli_fail("generation failed", st);
    } else {
        rc = 0;
        if (!c.quiet)
            fprintf(stderr, "tessera: load %.2f s; prompt %zu tokens; generated %zu tokens in "
                    "%.2f s (%.1f tokens/s)\n", t1 - t0, n, n_gen, t3 - t2,
                    t3 > t2 ? (double)n_gen / (t3 - t2) : 0.0);
    }
    free(ids);
    tsr_model_destroy(m);
out:
    cli_common_free(&c);
    return rc;
}
