/* tools/tessera.c - the tessera command: dispatch to subcommands. */
#include <stdio.h>
#include <string.h>
#include "cli.h"

static const char usage[] =
    "usage: tessera <command> [options]\n"
    "\n"
    "Run Hugging Face transformer models from C.\n"
    "\n"
    "commands:\n"
    "  generate   generate text from a prompt (tessera generate --help)\n"
    "  tokenize   text to token ids, or --decode ids to text\n"
    "  inspect    show a model's configuration, weights and their formats\n"
    "  bench      prompt and generation speed, as llama-bench (tessera bench --help)\n"
    "  synth      write a randomly initialised model of a real shape (tessera synth --help)\n"
    "  convert    Hugging Face folder <-> GGUF (tessera convert --help)\n"
    "  quantize   quantize a model and save it as an HF checkpoint (tessera quantize --help)\n"
    "  plugins    list the installed plugins and whether they can load\n"
    "  config     validate and show configuration files; the key reference\n"
    "  perplexity perplexity of a model on a text (and KL against a base model)\n"
    "\n"
    "options:\n"
    "  -h, --help     this help\n"
    "  --version      print the version\n"
    "\n"
    "See tessera(1) and docs/configuration.md.\n";

int tsr_cli_fail(const char *what, tsr_status st)
{
    const char *detail = tsr_last_error();
    fprintf(stderr, "tessera: %s: %s\n", what, detail && *detail ? detail : tsr_strerror(st));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("tessera %s (plugin ABI %d.%d)\n", tsr_version_string(), TSR_ABI_MAJOR, TSR_ABI_MINOR);
        return 0;
    }
    static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
        {"generate", tsr_cli_generate}, {"tokenize", tsr_cli_tokenize},
        {"plugins", tsr_cli_plugins},   {"config", tsr_cli_config},
        {"inspect", tsr_cli_inspect},   {"perplexity", tsr_cli_perplexity},   {"bench", tsr_cli_bench},
        {"synth", tsr_cli_synth},
        {"convert", tsr_cli_convert}, {"quantize", tsr_cli_quantize},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "tessera: unknown command '%s' (see tessera --help)\n", cmd);
    return 2;
}
