/* tools/common.h - option handling shared by the model commands. */
#ifndef TESSERA_CLI_COMMON_H
#define TESSERA_CLI_COMMON_H
#include <stdbool.h>
#include "cli.h"

/* Options every model command takes; parsed by cli_common_option(). */
typedef struct cli_common {
    const char *model;
    tsr_config *cfg;
    bool quiet;
} cli_common;

/* Create the layered configuration (defaults, /etc, ~/.config). */
int cli_common_init(cli_common *c);
/* Try to consume argv[*i] (and its value) as a common option:
 * -m/--model, -c/--config FILE, --set KEY=VALUE, -t/--threads N,
 * --dtype T, --backends a,b, --dump-tensors DIR, -q/--quiet.
 * Returns 1 if consumed, 0 if not ours, -1 on error (message printed). */
int cli_common_option(cli_common *c, int argc, char **argv, int *i);
/* Load the model with a progress line on stderr. NULL on failure (printed). */
tsr_model *cli_load_model(cli_common *c);
void cli_common_free(cli_common *c);
extern const char cli_common_help[];
#endif
