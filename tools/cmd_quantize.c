/* tools/cmd_quantize.c - tessera quantize: load a model with a quantization
 * method and write it as a quantized Hugging Face checkpoint. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common.h"

typedef struct qbar { bool quiet; int last; size_t n; } qbar;

static int save_progress(float f, const char *tensor, void *user)
{
    qbar *b = user;
    b->n++;
    int pct = (int)(f * 100.0f + 0.5f);
    if (b->quiet || !isatty(2) || pct == b->last)
        return 0;
    b->last = pct;
    int filled = pct * 30 / 100;
    fprintf(stderr, "\rsaving [%.*s%*s] %3d%% %-40.40s", filled, "##############################",
            30 - filled, "", pct, tensor ? tensor : "");
    return 0;
}

static int set(cli_common *c, const char *key, const char *val)
{
    tsr_status st = tsr_config_set(c->cfg, key, val);
    return st ? tsr_cli_fail("quantize", st) : 0;
}

int tsr_cli_quantize(int argc, char **argv)
{
    cli_common c;
    if (cli_common_init(&c))
        return 1;
    int rc = 2;
    const char *out = NULL, *method = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_option(&c, argc, argv, &i);
        if (r < 0)
            goto done;
        if (r > 0)
            continue;
        const char *a = argv[i];
        if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(a, "--method") && i + 1 < argc) {
            method = argv[++i];
            if (set(&c, "quantization.method", method))
                goto done;
        } else if (!strcmp(a, "--bits") && i + 1 < argc) {
            /* GPTQConfig/AwqConfig say bits, HqqConfig nbits */
            const char *v = argv[++i];
            if (set(&c, "quantization.bits", v) || set(&c, "quantization.nbits", v))
                goto done;
        } else if (!strcmp(a, "--group-size") && i + 1 < argc) {
            if (set(&c, "quantization.group_size", argv[++i]))
                goto done;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: tessera quantize -m IN --method M [--bits N] [--group-size G]\n"
                   "                        [--set quantization.KEY=V ...] -o OUT\n\n"
                   "Load IN quantizing its Linear weights with method M (as the run\n"
                   "configuration's quantization: block), then write OUT as a Hugging Face\n"
                   "checkpoint in the method's own layout, with quantization_config in\n"
                   "config.json, so that tessera and transformers load it pre-quantized.\n\n"
                   "  --method M         bitsandbytes, gptq, awq, hqq (see `tessera plugins`)\n"
                   "  --bits N           quantization.bits (and nbits for hqq)\n"
                   "  --group-size G     quantization.group_size\n"
                   "  -o, --output DIR   the folder to write\n\n%s", cli_common_help);
            rc = 0;
            goto done;
        } else {
            fprintf(stderr, "tessera quantize: unknown or incomplete option '%s' (see --help)\n", a);
            goto done;
        }
    }
    if (!c.model || !out || !method) {
        fprintf(stderr, "tessera quantize: -m IN, --method M and -o OUT are required (see --help)\n");
        goto done;
    }
    rc = 1;
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tsr_model *m = cli_load_model(&c);
    if (!m)
        goto done;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    qbar b = {c.quiet, -1, 0};
    tsr_save_options so = TSR_SAVE_OPTIONS_INIT;
    so.progress = save_progress;
    so.progress_user = &b;
    tsr_status st = tsr_model_save(m, out, &so);
    if (!c.quiet && isatty(2) && b.last >= 0)
        fputc('\n', stderr);
    if (st) {
        tsr_cli_fail("quantize", st);
    } else {
        clock_gettime(CLOCK_MONOTONIC, &t2);
        if (!c.quiet)
            fprintf(stderr, "tessera: quantized %s with %s: %zu weights saved to %s "
                    "(load + quantize %.2f s, save %.2f s)\n", c.model, method, b.n, out,
                    (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec),
                    (double)(t2.tv_sec - t1.tv_sec) + 1e-9 * (double)(t2.tv_nsec - t1.tv_nsec));
        rc = 0;
    }
    tsr_model_destroy(m);
done:
    cli_common_free(&c);
    return rc;
}
