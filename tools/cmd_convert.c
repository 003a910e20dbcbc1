/* tools/cmd_convert.c - tessera convert: Hugging Face folder <-> GGUF. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"

typedef struct bar { int quiet; int last; } bar;

static int show_progress(float f, const char *tensor, void *user)
{
    bar *b = user;
    int pct = (int)(f * 100.0f + 0.5f);
    if (b->quiet || !isatty(2) || pct == b->last)
        return 0;
    b->last = pct;
    int filled = pct * 30 / 100;
    fprintf(stderr, "\r[%.*s%*s] %3d%% %-40.40s", filled, "##############################",
            30 - filled, "", pct, tensor ? tensor : "");
    return 0;
}

int tsr_cli_convert(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *outtype = NULL;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc)
            in = argv[++i];
        else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(a, "--outtype") && i + 1 < argc)
            outtype = argv[++i];
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
            quiet = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: tessera convert -m IN -o OUT [--outtype TYPE] [-q]\n\n"
                   "Convert a Hugging Face folder to a GGUF file that llama.cpp loads (llama,\n"
                   "mistral, mixtral, qwen2, qwen2_moe with sparse layers only, phi3, gemma;\n"
                   "tensor names and metadata as llama.cpp's convert_hf_to_gguf.py writes them),\n"
                   "or a GGUF file to a Hugging Face folder (dequantized safetensors,\n"
                   "config.json, tokenizer.json, tokenizer_config.json, generation_config.json).\n\n"
                   "  -m, --model IN     HF folder or .gguf file\n"
                   "  -o, --output OUT   .gguf file (from a folder) or folder (from a .gguf)\n"
                   "  --outtype TYPE     to GGUF: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1 or\n"
                   "                     auto (each tensor as stored; the default).  1-D tensors\n"
                   "                     stay f32; rows that do not fill blocks fall back to f16.\n"
                   "                     To HF: f32 (default), f16 or bf16.\n"
                   "  -q, --quiet        no progress bar\n");
            return 0;
        } else {
            fprintf(stderr, "tessera convert: unknown or incomplete option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "tessera convert: -m IN and -o OUT are required (see --help)\n");
        return 2;
    }
    bar b = {quiet, -1};
    tsr_convert_options opt = TSR_CONVERT_OPTIONS_INIT;
    opt.outtype = outtype;
    opt.progress = show_progress;
    opt.progress_user = &b;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tsr_status st = tsr_model_convert(in, out, &opt);
    if (!quiet && isatty(2) && b.last >= 0)
        fputc('\n', stderr);
    if (st)
        return tsr_cli_fail("convert", st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!quiet)
        fprintf(stderr, "tessera: wrote %s (%s) in %.2f s\n", out, outtype ? outtype : "auto",
                (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return 0;
}
