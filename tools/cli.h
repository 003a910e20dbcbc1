/* tools/cli.h - the tessera command's subcommands (one file each). */
#ifndef TESSERA_CLI_H
#define TESSERA_CLI_H
#include <tessera/tessera.h>

/* Each returns the process exit status: 0 ok, 1 failure, 2 usage error. */
int tsr_cli_generate(int argc, char **argv);   /* cmd_generate.c */
int tsr_cli_tokenize(int argc, char **argv);   /* cmd_tokenize.c */
int tsr_cli_plugins(int argc, char **argv);    /* cmd_plugins.c  */
int tsr_cli_config(int argc, char **argv);     /* cmd_config.c   */
int tsr_cli_inspect(int argc, char **argv);    /* cmd_inspect.c  */
int tsr_cli_perplexity(int argc, char **argv); /* cmd_perplexity.c */
int tsr_cli_bench(int argc, char **argv);      /* cmd_bench.c    */
int tsr_cli_synth(int argc, char **argv);      /* cmd_synth.c    */
int tsr_cli_convert(int argc, char **argv);    /* cmd_convert.c  */
int tsr_cli_quantize(int argc, char **argv);   /* cmd_quantize.c */

/* Print "tessera: <what>: <tsr_last_error()>" to stderr; returns 1. */
int tsr_cli_fail(const char *what, tsr_status st);
#endif
