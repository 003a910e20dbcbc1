/* tools/cmd_tokenize.c - tessera tokenize: what transformers'
 * tokenizer(TEXT).input_ids gives, or --decode ids back to text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char help[] =
    "usage: tessera tokenize -m DIR [--no-special] TEXT\n"
    "       tessera tokenize -m DIR --decode [--skip-special] ID...\n"
    "\n"
    "Print the token ids of TEXT, space-separated, as transformers'\n"
    "tokenizer(TEXT).input_ids gives them (BOS/EOS as tokenizer_config.json\n"
    "says, unless --no-special); or decode ids to text.\n"
    "\n"
    "  -m, --model DIR     folder with tokenizer.json (+ tokenizer_config.json)\n"
    "      --no-special    do not add BOS/EOS\n"
    "      --decode        the arguments are ids; print their text\n"
    "      --skip-special  with --decode: leave special tokens out\n"
    "  -h, --help          this help\n";

int tsr_cli_tokenize(int argc, char **argv)
{
    const char *dir = NULL;
    int decode = 0, special = 1, skip = 0, first = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(a, "--decode")) {
            decode = 1;
        } else if (!strcmp(a, "--no-special")) {
            special = 0;
        } else if (!strcmp(a, "--skip-special")) {
            skip = 1;
        } else if (!strcmp(a, "--")) {
            first = i + 1;
            break;
        } else if (a[0] == '-' && a[1] && !(decode && a[1] >= '0' && a[1] <= '9')) {
            fprintf(stderr, "tessera tokenize: unknown option '%s' (see --help)\n", a);
            return 2;
        } else {
            first = i;
            break;
        }
    }
    if (!dir) {
        fprintf(stderr, "tessera tokenize: -m DIR is required (see --help)\n");
        return 2;
    }
    tsr_tokenizer *tok = NULL;
    tsr_status st = tsr_tokenizer_load(dir, &tok);
    if (st)
        return tsr_cli_fail("cannot load the tokenizer", st);
    int rc = 0;
    if (decode) {
        int n = first ? argc - first : 0;
        int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
        for (int i = 0; i < n; i++) {
            char *end;
            long v = strtol(argv[first + i], &end, 10);
            if (*end || end == argv[first + i]) {
                fprintf(stderr, "tessera tokenize: '%s' is not a token id\n", argv[first + i]);
                free(ids);
                tsr_tokenizer_destroy(tok);
                return 2;
            }
            ids[i] = (int32_t)v;
        }
        size_t len = 0;
        st = tsr_detokenize(tok, ids, (size_t)n, skip ? TSR_DETOKENIZE_SKIP_SPECIAL : 0, NULL, 0, &len);
        char *buf = st ? NULL : malloc(len + 1);
        if (!st && buf)
            st = tsr_detokenize(tok, ids, (size_t)n, skip ? TSR_DETOKENIZE_SKIP_SPECIAL : 0, buf,
                                len + 1, &len);
        if (st)
            rc = tsr_cli_fail("decode", st);
        else {
            fwrite(buf, 1, len, stdout);
            putchar('\n');
        }
        free(buf);
        free(ids);
    } else {
        const char *text = first ? argv[first] : "";
        size_t n = 0, cap = strlen(text) + 16;
        int32_t *ids = malloc(cap * sizeof *ids);
        uint32_t fl = special ? TSR_TOKENIZE_ADD_SPECIAL : 0;
        st = tsr_tokenize(tok, text, strlen(text), fl, ids, cap, &n);
        if (!st && n > cap) {
            free(ids);
            ids = malloc(n * sizeof *ids);
            cap = n;
            st = tsr_tokenize(tok, text, strlen(text), fl, ids, cap, &n);
        }
        if (st)
            rc = tsr_cli_fail("tokenize", st);
        else {
            for (size_t i = 0; i < n; i++)
                printf("%s%d", i ? " " : "", ids[i]);
            putchar('\n');
        }
        free(ids);
    }
    tsr_tokenizer_destroy(tok);
    return rc;
}
