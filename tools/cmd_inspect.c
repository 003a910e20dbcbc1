/* tools/cmd_inspect.c - tessera inspect: a model's configuration summary. */
#include <stdio.h>
#include <string.h>
#include "common.h"

int tsr_cli_inspect(int argc, char **argv)
{
    cli_common c;
    if (cli_common_init(&c))
        return 1;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_option(&c, argc, argv, &i);
        if (r < 0)
            goto out;
        if (r == 0) {
            if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
                printf("usage: tessera inspect -m DIR [options]\n\n"
                       "Load the model and print its weights (name, shape, dtype).\n\n%s",
                       cli_common_help);
                rc = 0;
            } else {
                fprintf(stderr, "tessera inspect: unknown option '%s'\n", argv[i]);
            }
            goto out;
        }
    }
    rc = 1;
    tsr_model *m = cli_load_model(&c);
    if (!m)
        goto out;
    char *text = NULL;
    tsr_status st = tsr_model_describe(m, &text);
    if (st) {
        tsr_cli_fail("inspect", st);
    } else {
        fputs(text, stdout);
        rc = 0;
    }
    tsr_free(text);
    tsr_model_destroy(m);
out:
    cli_common_free(&c);
    return rc;
}
