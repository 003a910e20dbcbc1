/* tools/cmd_bench.c - tessera bench: prompt-processing (pp) and generation
 * (tg) speed in tokens per second, measured as llama-bench does: pp runs
 * P random token ids through the model in one batch from an empty cache;
 * tg runs N one-token steps from an empty cache.  Each test runs once to
 * warm up, then -r times; the result is mean +- sample standard deviation
 * of tokens/s. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include "common.h"

static const char help[] =
    "usage: tessera bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r 5] [--json]\n"
    "\n"
    "Measure prompt processing (pp: P tokens in one batch) and generation\n"
    "(tg: N one-token steps with the KV cache), as llama-bench does.\n"
    "Prints a markdown table of mean +- sd tokens/s (or JSON with --json).\n"
    "\n"
    "  -p, --n-prompt P        prompt length; 0 skips pp (default 512)\n"
    "  -n, --n-gen N           generated tokens; 0 skips tg (default 128)\n"
    "  -r, --repetitions R     measured runs per test (default 5)\n"
    "      --seed S            seed of the random token ids (default 1)\n"
    "      --json              JSON instead of markdown\n"
    "%s"
    "  -h, --help              this help\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A value "key: N" from tsr_model_describe's text, or -1. */
static long long describe_value(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, key, kl) && p[kl] == ':')
            return atoll(p + kl + 1);
    return -1;
}

/* Bytes of the weights on disk: the GGUF file, or the folder's
 * *.safetensors files. */
static long long model_bytes(const char *path)
{
    struct stat st;
    if (!path || stat(path, &st))
        return -1;
    if (!S_ISDIR(st.st_mode))
        return (long long)st.st_size;
    long long sum = 0;
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        char p[4096];
        if (l > 12 && !strcmp(e->d_name + l - 12, ".safetensors")) {
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            if (!stat(p, &st))
                sum += (long long)st.st_size;
        }
    }
    if (d)
        closedir(d);
    return sum;
}

typedef struct bench_result {
    const char *test;          /* "pp" or "tg" */
    int n;                     /* tokens per run */
    int reps;
    double mean, sd;           /* tokens/s */
    double *samples;
} bench_result;

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One timed run; returns seconds or < 0 on failure (printed). */
static double run_once(tsr_model *m, const char *test, const int32_t *ids, int n, float *logits)
{
    double t0 = now();
    tsr_status st = TSR_OK;
    if (!strcmp(test, "pp")) {
        st = tsr_model_decode(m, ids, (size_t)n, 1, logits);
    } else {
        for (int i = 0; i < n && !st; i++)
            st = tsr_model_decode(m, &ids[i], 1, i == 0, logits);
    }
    double t1 = now();
    if (st) {
        tsr_cli_fail(test, st);
        return -1.0;
    }
    return t1 - t0;
}

static int run_test(tsr_model *m, bench_result *r, const int32_t *ids, float *logits)
{
    r->samples = calloc((size_t)r->reps, sizeof *r->samples);
    if (!r->samples)
        return 1;
    if (run_once(m, r->test, ids, r->n, logits) < 0) /* warm-up */
        return 1;
    double sum = 0.0;
    for (int i = 0; i < r->reps; i++) {
        double s = run_once(m, r->test, ids, r->n, logits);
        if (s < 0)
            return 1;
        r->samples[i] = (double)r->n / s;
        sum += r->samples[i];
    }
    r->mean = sum / r->reps;
    double var = 0.0;
    for (int i = 0; i < r->reps; i++)
        var += (r->samples[i] - r->mean) * (r->samples[i] - r->mean);
    r->sd = r->reps > 1 ? sqrt(var / (r->reps - 1)) : 0.0;
    return 0;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", (unsigned char)*s);
        else
            putchar(*s);
    }
    putchar('"');
}

int tsr_cli_bench(int argc, char **argv)
{
    cli_common c;
    if (cli_common_init(&c))
        return 1;
    int n_prompt = 512, n_gen = 128, reps = 5, json = 0, rc = 2;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_option(&c, argc, argv, &i);
        if (r < 0)
            goto out;
        if (r > 0)
            continue;
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int *dst = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf(help, cli_common_help);
            rc = 0;
            goto out;
        } else if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!val || (strcmp(val, "json") && strcmp(val, "md"))) {
                fprintf(stderr, "tessera bench: -o takes json or md\n");
                goto out;
            }
            json = !strcmp(val, "json");
            i++;
            continue;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            dst = &n_prompt;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            dst = &n_gen;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            dst = &reps;
        } else if (!strcmp(a, "--seed")) {
            if (!val) {
                fprintf(stderr, "tessera bench: option %s needs a value\n", a);
                goto out;
            }
            seed = strtoull(val, NULL, 10);
            i++;
            continue;
        } else {
            fprintf(stderr, "tessera bench: unknown option '%s' (see --help)\n", a);
            goto out;
        }
        char *end = NULL;
        long v = val ? strtol(val, &end, 10) : -1;
        if (!val || *end || v < 0 || v > 1000000) {
            fprintf(stderr, "tessera bench: option %s needs a count (0..1000000)\n", a);
            goto out;
        }
        *dst = (int)v;
        i++;
    }
    if (reps < 1) {
        fprintf(stderr, "tessera bench: -r must be at least 1\n");
        goto out;
    }
    rc = 1;
    double t0 = now();
    tsr_model *m = cli_load_model(&c);
    if (!m)
        goto out;
    double load_s = now() - t0;
    char *desc = NULL;
    long long vocab = -1, wbytes = -1;
    if (!tsr_model_describe(m, &desc)) {
        vocab = describe_value(desc, "vocab_size");
    }
    wbytes = model_bytes(c.model);
    tsr_free(desc);
    const char *threads = tsr_config_get(c.cfg, "threads");
    int nmax = n_prompt > n_gen ? n_prompt : n_gen;
    int32_t *ids = malloc((size_t)(nmax > 0 ? nmax : 1) * sizeof *ids);
    float *logits = vocab > 0 ? malloc((size_t)vocab * sizeof *logits) : NULL;
    bench_result res[2] = {{"pp", n_prompt, reps, 0, 0, NULL}, {"tg", n_gen, reps, 0, 0, NULL}};
    if (!ids || !logits) {
        fprintf(stderr, "tessera bench: %s\n", vocab > 0 ? "out of memory" : "cannot read the vocabulary size");
        goto done;
    }
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < nmax; i++)
        ids[i] = (int32_t)(rng_next(&s) % (uint64_t)vocab);
    for (int k = 0; k < 2; k++)
        if (res[k].n > 0 && run_test(m, &res[k], ids, logits))
            goto done;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mib = (double)ru.ru_maxrss / 1024.0;
    const char *mname = strrchr(c.model ? c.model : "?", '/');
    mname = mname && mname[1] ? mname + 1 : (c.model ? c.model : "?");
    if (json) {
        printf("[\n");
        int first = 1;
        for (int k = 0; k < 2; k++) {
            if (res[k].n <= 0)
                continue;
            printf("%s  {\"model\": ", first ? "" : ",\n");
            json_string(c.model ? c.model : "");
            printf(", \"weights_bytes\": %lld, \"threads\": ", wbytes);
            json_string(threads ? threads : "");
            printf(", \"test\": \"%s%d\", \"n_prompt\": %d, \"n_gen\": %d, \"reps\": %d, "
                   "\"avg_ts\": %.4f, \"stddev_ts\": %.4f, \"samples_ts\": [",
                   res[k].test, res[k].n, k == 0 ? res[k].n : 0, k == 1 ? res[k].n : 0, reps,
                   res[k].mean, res[k].sd);
            for (int i = 0; i < reps; i++)
                printf("%s%.4f", i ? ", " : "", res[k].samples[i]);
            printf("], \"load_s\": %.4f, \"peak_rss_mib\": %.1f}", load_s, rss_mib);
            first = 0;
        }
        printf("\n]\n");
    } else {
        printf("| model | size | backend | threads | test | t/s |\n");
        printf("| --- | ---: | --- | ---: | ---: | ---: |\n");
        for (int k = 0; k < 2; k++)
            if (res[k].n > 0)
                printf("| %s | %.2f GiB | tessera cpu | %s | %s%d | %.2f ± %.2f |\n", mname,
                       (double)wbytes / (1024.0 * 1024.0 * 1024.0), threads ? threads : "?",
                       res[k].test, res[k].n, res[k].mean, res[k].sd);
        printf("\nload %.3f s, peak RSS %.1f MiB\n", load_s, rss_mib);
    }
    rc = 0;
done:
    for (int k = 0; k < 2; k++)
        free(res[k].samples);
    free(ids);
    free(logits);
    tsr_model_destroy(m);
out:
    cli_common_free(&c);
    return rc;
}
