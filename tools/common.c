/* tools/common.c - options shared by generate, tokenize, inspect. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common.h"

const char cli_common_help[] =
    "  -m, --model DIR         Hugging Face model folder (config.json, *.safetensors,\n"
    "                          tokenizer.json); or 'model:' in the configuration\n"
    "  -c, --config FILE       YAML run configuration (after /etc/tessera/tessera.yaml\n"
    "                          and ~/.config/tessera/tessera.yaml; flags win)\n"
    "      --set KEY=VALUE     set any configuration key (see tessera config --help)\n"
    "  -t, --threads N         CPU threads (default: one per core)\n"
    "      --dtype T           float32 | float16 | bfloat16 | auto\n"
    "      --backends LIST     comma-separated backends, tried in order (default cpu)\n"
    "      --dump-tensors DIR  write every intermediate tensor as .npy into DIR\n"
    "  -q, --quiet             no progress or timing lines on stderr\n";

int cli_common_init(cli_common *c)
{
    memset(c, 0, sizeof *c);
    tsr_status st = tsr_config_create(&c->cfg);
    if (!st)
        st = tsr_config_load_default_files(c->cfg);
    if (st) {
        tsr_cli_fail("configuration", st);
        cli_common_free(c);
        return 1;
    }
    return 0;
}

void cli_common_free(cli_common *c)
{
    tsr_config_destroy(c->cfg);
    c->cfg = NULL;
}

static int set_key(cli_common *c, const char *key, const char *value)
{
    tsr_status st = tsr_config_set(c->cfg, key, value);
    if (st) {
        tsr_cli_fail("option", st);
        return -1;
    }
    return 1;
}

int cli_common_option(cli_common *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *val = *i + 1 < argc ? argv[*i + 1] : NULL;
#define TAKES_VALUE(...) \
    do { if (!val) { fprintf(stderr, "tessera: option %s needs a value\n", a); return -1; } \
         (*i)++; } while (0)
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
        TAKES_VALUE();
        c->model = val;
        return 1;
    }
    if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
        TAKES_VALUE();
        tsr_status st = tsr_config_load_file(c->cfg, val);
        if (st) {
            tsr_cli_fail("configuration", st);
            return -1;
        }
        return 1;
    }
    if (!strcmp(a, "--set")) {
        TAKES_VALUE();
        const char *eq = strchr(val, '=');
        if (!eq) {
            fprintf(stderr, "tessera: --set expects KEY=VALUE, got '%s'\n", val);
            return -1;
        }
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(eq - val), val);
        return set_key(c, key, eq + 1);
    }
    if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        TAKES_VALUE();
        return set_key(c, "threads", val);
    }
    if (!strcmp(a, "--dtype")) {
        TAKES_VALUE();
        return set_key(c, "dtype", val);
    }
    if (!strcmp(a, "--backends")) {
        TAKES_VALUE();
        char list[512];
        snprintf(list, sizeof list, "[%s]", val);
        return set_key(c, "backends", list);
    }
    if (!strcmp(a, "--dump-tensors")) {
        TAKES_VALUE();
        return set_key(c, "dump_tensors", val);
    }
    if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
        c->quiet = true;
        return 1;
    }
#undef TAKES_VALUE
    return 0;
}

static int progress(float f, void *user)
{
    cli_common *c = user;
    if (!c->quiet && isatty(2))
        fprintf(stderr, "\rtessera: loading %3.0f%%", f * 100.0f);
    return 0;
}

tsr_model *cli_load_model(cli_common *c)
{
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = c->model;
    lo.config = c->cfg;
    lo.progress = progress;
    lo.progress_user = c;
    tsr_model *m = NULL;
    tsr_status st = tsr_model_load(&lo, &m);
    if (!c->quiet && isatty(2))
        fputc('\n', stderr);
    if (st) {
        tsr_cli_fail("cannot load the model", st);
        return NULL;
    }
    return m;
}
