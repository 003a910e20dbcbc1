/* tools/cmd_config.c - `tessera config`: the key reference, the effective
 * configuration, and validation of files.  Uses the public API only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"

static const char usage[] =
    "usage: tessera config show [options]     the effective configuration as YAML,\n"
    "                                         each key with the layer it came from\n"
    "       tessera config check FILE...      validate configuration files\n"
    "       tessera config --markdown         the reference as markdown\n"
    "                                         (docs/configuration.md)\n"
    "       tessera config --help             this help and every key\n"
    "\n"
    "options of show:\n";

static int show(int argc, char **argv)
{
    cli_common c;
    if (cli_common_init(&c))
        return 1;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        int r = cli_common_option(&c, argc, argv, &i);
        if (r < 0)
            rc = 1;
        else if (r == 0) {
            fprintf(stderr, "tessera: config show: unknown option '%s' (see tessera config --help)\n",
                    argv[i]);
            rc = 2;
        }
    }
    if (!rc && c.model) {
        /* -m is the `model` key; quote the path so YAML keeps it as text */
        size_t n = strlen(c.model);
        char *q = malloc(2 * n + 3);
        if (!q) {
            cli_common_free(&c);
            return 1;
        }
        char *o = q;
        *o++ = '"';
        for (const char *p = c.model; *p; p++) {
            if (*p == '"' || *p == '\\')
                *o++ = '\\';
            *o++ = *p;
        }
        *o++ = '"';
        *o = 0;
        tsr_status st = tsr_config_set(c.cfg, "model", q);
        free(q);
        if (st)
            rc = tsr_cli_fail("option", st);
    }
    if (!rc) {
        char *yaml = NULL;
        tsr_status st = tsr_config_dump(c.cfg, &yaml);
        if (st)
            rc = tsr_cli_fail("config show", st);
        else
            fputs(yaml, stdout);
        tsr_free(yaml);
    }
    cli_common_free(&c);
    return rc;
}

/* Each file on its own, over the built-in defaults only. */
static int check(int argc, char **argv)
{
    if (argc < 2) {
        fputs("tessera: config check: which file? (tessera config check FILE...)\n", stderr);
        return 2;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        tsr_config *cfg = NULL;
        tsr_status st = tsr_config_create(&cfg);
        if (!st)
            st = tsr_config_load_file(cfg, argv[i]);
        if (st)
            rc = tsr_cli_fail("config check", st);
        else
            printf("%s: ok\n", argv[i]);
        tsr_config_destroy(cfg);
    }
    return rc;
}

int tsr_cli_config(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        fputs(cli_common_help, stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(usage, stdout);
        fputs(cli_common_help, stdout);
        fputs("\n", stdout);
        fputs(tsr_config_reference(0), stdout);
        return 0;
    }
    if (!strcmp(sub, "--markdown")) {
        fputs(tsr_config_reference(1), stdout);
        return 0;
    }
    if (!strcmp(sub, "show"))
        return show(argc - 1, argv + 1);
    if (!strcmp(sub, "check"))
        return check(argc - 1, argv + 1);
    fprintf(stderr, "tessera: config: unknown subcommand '%s' (see tessera config --help)\n", sub);
    return 2;
}
