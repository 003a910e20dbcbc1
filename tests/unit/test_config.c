/* tests/unit/test_config.c - the layered run configuration (core/config.c).
 *
 * Expected defaults are transformers' own (GenerationConfig: do_sample
 * False, temperature 1.0, top_k 50, top_p 1.0, repetition_penalty 1.0;
 * BitsAndBytesConfig: llm_int8_threshold 6.0, bnb_4bit_quant_type "fp4";
 * HqqConfig: nbits 4, axis 1, skip_modules ["lm_head"]; AwqConfig: version
 * "gemm"), except max_new_tokens (128, documented).  Error positions are the
 * 1-based line:column of the offending node in the YAML files under
 * tests/data/config/, counted by hand and checked with PyYAML's composer.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"
#include "tsr_test.h"

#define DATA "tests/data/config/"

static tsr_config *fresh(void)
{
    tsr_config *cfg = NULL;
    CHECK(tsr_config_create(&cfg) == TSR_OK);
    return cfg;
}

/* Loading `file` fails with TSR_ERR_CONFIG and exactly `msg`. */
static void expect_load_error(const char *file, const char *msg)
{
    tsr_config *cfg = fresh();
    tsr_status st = tsr_config_load_file(cfg, file);
    CHECK_MSG(st == TSR_ERR_CONFIG, "%s: status %d", file, (int)st);
    CHECK_MSG(!strcmp(tsr_last_error(), msg), "got \"%s\"\n  want \"%s\"", tsr_last_error(), msg);
    /* a failed load leaves the configuration as it was */
    CHECK(!tsr__config_is_set(cfg, "model"));
    CHECK(!tsr__config_is_set(cfg, "threads"));
    tsr_config_destroy(cfg);
}

static void expect_set_error(const char *key, const char *value, const char *msg)
{
    tsr_config *cfg = fresh();
    tsr_status st = tsr_config_set(cfg, key, value);
    CHECK_MSG(st == TSR_ERR_CONFIG, "%s=%s: status %d", key, value, (int)st);
    CHECK_MSG(!strcmp(tsr_last_error(), msg), "got \"%s\"\n  want \"%s\"", tsr_last_error(), msg);
    CHECK(!tsr__config_is_set(cfg, key));
    tsr_config_destroy(cfg);
}

static void test_defaults(void)
{
    tsr_config *cfg = fresh();
    CHECK(tsr__config_string(cfg, "model") == NULL);
    CHECK(!strcmp(tsr__config_string(cfg, "dtype"), "auto"));
    CHECK(tsr__config_list_len(cfg, "backends") == 1);
    CHECK(!strcmp(tsr__config_list_at(cfg, "backends", 0), "cpu"));
    CHECK(tsr__config_int(cfg, "threads") == 0);
    CHECK(!strcmp(tsr__config_string(cfg, "device_map"), "auto"));
    CHECK(tsr__config_map_len(cfg, "max_memory") == 0);
    CHECK(!strcmp(tsr__config_string(cfg, "log_level"), "info"));
    CHECK(!strcmp(tsr__config_string(cfg, "quantization.method"), "none"));
    CHECK(!tsr__config_bool(cfg, "quantization.load_in_4bit"));
    CHECK(!tsr__config_bool(cfg, "quantization.load_in_8bit"));
    CHECK(tsr__config_real(cfg, "quantization.llm_int8_threshold") == 6.0);
    CHECK(!strcmp(tsr__config_string(cfg, "quantization.bnb_4bit_quant_type"), "fp4"));
    CHECK(tsr__config_int(cfg, "quantization.nbits") == 4);
    CHECK(tsr__config_int(cfg, "quantization.axis") == 1);
    CHECK(tsr__config_list_len(cfg, "quantization.skip_modules") == 1);
    CHECK(!strcmp(tsr__config_list_at(cfg, "quantization.skip_modules", 0), "lm_head"));
    CHECK(!strcmp(tsr__config_string(cfg, "quantization.version"), "gemm"));
    CHECK(tsr__config_bool(cfg, "quantization.sym"));
    CHECK(tsr__config_int(cfg, "generation.max_new_tokens") == 128);
    CHECK(!tsr__config_bool(cfg, "generation.do_sample"));
    CHECK(tsr__config_real(cfg, "generation.temperature") == 1.0);
    CHECK(tsr__config_int(cfg, "generation.top_k") == 50);
    CHECK(tsr__config_real(cfg, "generation.top_p") == 1.0);
    CHECK(tsr__config_string(cfg, "generation.min_p") == NULL);
    CHECK(tsr__config_real(cfg, "generation.repetition_penalty") == 1.0);
    CHECK(tsr__config_list_len(cfg, "generation.eos_token_id") == 0);
    CHECK(!strcmp(tsr__config_string(cfg, "cache.implementation"), "dynamic"));
    /* defaults are not "set" */
    CHECK(!tsr__config_is_set(cfg, "generation.top_k"));
    /* public getter */
    CHECK(!strcmp(tsr_config_get(cfg, "generation.top_k"), "50"));
    CHECK(!strcmp(tsr_config_get(cfg, "backends"), "[cpu]"));
    CHECK(!strcmp(tsr_config_get(cfg, "model"), ""));
    CHECK(tsr_config_get(cfg, "no.such.key") == NULL);
    CHECK(tsr_config_get(cfg, "generation") == NULL);
    tsr_config_destroy(cfg);
}

static void test_full_file(void)
{
    tsr_config *cfg = fresh();
    CHECK(tsr_config_load_file(cfg, DATA "full.yaml") == TSR_OK);
    CHECK(!strcmp(tsr__config_string(cfg, "model"), "./models/llama"));
    CHECK(!strcmp(tsr__config_string(cfg, "dtype"), "bfloat16"));
    CHECK(tsr__config_list_len(cfg, "backends") == 3);
    CHECK(!strcmp(tsr__config_list_at(cfg, "backends", 1), "onednn"));
    CHECK(tsr__config_list_at(cfg, "backends", 3) == NULL);
    CHECK(tsr__config_map_len(cfg, "max_memory") == 2);
    CHECK(!strcmp(tsr__config_map_key(cfg, "max_memory", 0), "cuda:0"));
    CHECK(!strcmp(tsr__config_map_value(cfg, "max_memory", 0), "6GiB"));
    CHECK(!strcmp(tsr__config_map_key(cfg, "max_memory", 1), "cpu"));
    CHECK(!strcmp(tsr__config_string(cfg, "quantization.method"), "bitsandbytes"));
    CHECK(tsr__config_bool(cfg, "quantization.load_in_4bit"));
    CHECK(tsr__config_bool(cfg, "quantization.bnb_4bit_use_double_quant"));
    CHECK(!strcmp(tsr__config_string(cfg, "quantization.bnb_4bit_quant_type"), "nf4"));
    CHECK(tsr__config_bool(cfg, "generation.do_sample"));
    CHECK(fabs(tsr__config_real(cfg, "generation.temperature") - 0.7) < 1e-12);
    CHECK(fabs(tsr__config_real(cfg, "generation.top_p") - 0.9) < 1e-12);
    CHECK(tsr__config_is_set(cfg, "generation.top_p"));
    CHECK(!tsr__config_is_set(cfg, "generation.top_k"));
    CHECK(!strcmp(tsr__config_string(cfg, "cache.implementation"), "static"));
    CHECK(!strcmp(tsr_config_get(cfg, "backends"), "[cuda, onednn, cpu]"));
    CHECK(!strcmp(tsr_config_get(cfg, "max_memory"), "{cuda:0: 6GiB, cpu: 20GiB}"));
    tsr_config_destroy(cfg);
}

static void test_layers(void)
{
    tsr_config *cfg = fresh();
    CHECK(tsr_config_load_file(cfg, DATA "full.yaml") == TSR_OK);
    CHECK(tsr_config_load_file(cfg, DATA "override.yaml") == TSR_OK);
    /* the later file wins where it sets a key, the earlier one elsewhere */
    CHECK(!strcmp(tsr__config_string(cfg, "dtype"), "float16"));
    CHECK(tsr__config_int(cfg, "threads") == 4);
    CHECK(fabs(tsr__config_real(cfg, "generation.temperature") - 0.2) < 1e-12);
    CHECK(tsr__config_int(cfg, "generation.top_k") == 1);
    CHECK(fabs(tsr__config_real(cfg, "generation.top_p") - 0.9) < 1e-12);
    CHECK(!strcmp(tsr__config_string(cfg, "model"), "./models/llama"));
    /* flags override files, and later flags override earlier ones */
    CHECK(tsr_config_set(cfg, "threads", "8") == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.top_k", "7") == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.top_k", "9") == TSR_OK);
    CHECK(tsr__config_int(cfg, "threads") == 8);
    CHECK(tsr__config_int(cfg, "generation.top_k") == 9);
    /* a whole section from one flag */
    CHECK(tsr_config_set(cfg, "generation", "{top_p: 0.5, do_sample: false}") == TSR_OK);
    CHECK(tsr__config_real(cfg, "generation.top_p") == 0.5);
    CHECK(!tsr__config_bool(cfg, "generation.do_sample"));
    CHECK(tsr__config_int(cfg, "generation.top_k") == 9);
    /* a list replaces the lower layer's list */
    CHECK(tsr_config_set(cfg, "backends", "[cpu]") == TSR_OK);
    CHECK(tsr__config_list_len(cfg, "backends") == 1);
    /* null clears a key set below */
    CHECK(tsr_config_set(cfg, "model", "null") == TSR_OK);
    CHECK(tsr__config_string(cfg, "model") == NULL);
    CHECK(tsr__config_is_set(cfg, "model"));
    CHECK(!strcmp(tsr_config_get(cfg, "model"), ""));
    /* a file loaded after the flags is on top of them */
    CHECK(tsr_config_load_file(cfg, DATA "override.yaml") == TSR_OK);
    CHECK(tsr__config_int(cfg, "threads") == 4);

    char *yaml = NULL;
    CHECK(tsr_config_dump(cfg, &yaml) == TSR_OK);
    if (yaml) {
        CHECK_CONTAINS(yaml, "# Effective configuration; later layers win: default < "
                             DATA "full.yaml < " DATA "override.yaml < command line < "
                             DATA "override.yaml\n");
        CHECK_CONTAINS(yaml, "\nthreads: 4 ");
        CHECK_CONTAINS(yaml, " # " DATA "override.yaml\n");
        CHECK_CONTAINS(yaml, "\ndtype: float16");
        CHECK_CONTAINS(yaml, "\nmodel: null");
        CHECK_CONTAINS(yaml, "\ngeneration:\n  max_new_tokens: 128");
        CHECK_CONTAINS(yaml, "  top_p: 0.5");
        CHECK_CONTAINS(yaml, " # command line\n");
        CHECK_CONTAINS(yaml, "\ncache:\n  implementation: static");
    }
    tsr_free(yaml);
    tsr_config_destroy(cfg);
}

/* The dump reads back as the same configuration. */
static void test_dump_roundtrip(void)
{
    tsr_config *a = fresh();
    CHECK(tsr_config_load_file(a, DATA "full.yaml") == TSR_OK);
    CHECK(tsr_config_load_file(a, DATA "device_map.yaml") == TSR_OK);
    CHECK(tsr_config_set(a, "generation.stop_strings", "[\"a\\tb\", \"yes\", \"12\", \"x: y\"]") == TSR_OK);
    char *yaml = NULL;
    CHECK(tsr_config_dump(a, &yaml) == TSR_OK);
    char path[] = "/tmp/tsr_config_dumpXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0 && yaml) {
        FILE *f = fdopen(fd, "w");
        fputs(yaml, f);
        fclose(f);
        tsr_config *b = fresh();
        CHECK_MSG(tsr_config_load_file(b, path) == TSR_OK, "%s\n%s", tsr_last_error(), yaml);
        for (size_t i = 0; i < tsr__config_n_keys; i++) {
            const char *k = tsr__config_keys[i].name;
            CHECK_MSG(!strcmp(tsr_config_get(a, k), tsr_config_get(b, k)), "%s: %s vs %s", k,
                      tsr_config_get(a, k), tsr_config_get(b, k));
        }
        CHECK(tsr__config_list_len(b, "generation.stop_strings") == 4);
        CHECK(!strcmp(tsr__config_list_at(b, "generation.stop_strings", 0), "a\tb"));
        CHECK(!strcmp(tsr__config_list_at(b, "generation.stop_strings", 1), "yes"));
        CHECK(!strcmp(tsr__config_list_at(b, "generation.stop_strings", 3), "x: y"));
        tsr_config_destroy(b);
        remove(path);
    }
    tsr_free(yaml);
    tsr_config_destroy(a);
}

static void test_alias(void)
{
    tsr_config *cfg = fresh();
    CHECK(tsr_config_load_file(cfg, DATA "torch_dtype.yaml") == TSR_OK);
    CHECK(!strcmp(tsr__config_string(cfg, "dtype"), "float16"));
    CHECK(!strcmp(tsr_config_get(cfg, "torch_dtype"), "float16"));
    CHECK(tsr_config_set(cfg, "torch_dtype", "bfloat16") == TSR_OK);
    CHECK(!strcmp(tsr__config_string(cfg, "dtype"), "bfloat16"));
    CHECK(tsr_config_set(cfg, "dtype", "float32") == TSR_OK);
    CHECK(!strcmp(tsr__config_string(cfg, "torch_dtype"), "float32"));
    tsr_config_destroy(cfg);
    expect_load_error(DATA "alias_dup.yaml", DATA "alias_dup.yaml:2:1: duplicate key "
                      "'torch_dtype' (same as 'dtype' at line 1)");
}

static void test_device_map_and_sizes(void)
{
    tsr_config *cfg = fresh();
    CHECK(tsr_config_load_file(cfg, DATA "device_map.yaml") == TSR_OK);
    CHECK(tsr__config_string(cfg, "device_map") == NULL);   /* a mapping, not a string */
    CHECK(tsr__config_map_len(cfg, "device_map") == 4);
    CHECK(!strcmp(tsr__config_map_key(cfg, "device_map", 1), "model.layers.0-15"));
    CHECK(!strcmp(tsr__config_map_value(cfg, "device_map", 1), "cuda:0"));
    CHECK(!strcmp(tsr__config_map_value(cfg, "device_map", 3), "disk"));
    CHECK(tsr__config_map_len(cfg, "max_memory") == 3);
    uint64_t bytes = 0;
    CHECK(tsr__config_parse_size(tsr__config_map_value(cfg, "max_memory", 0), &bytes));
    CHECK(bytes == 6ull << 30);
    CHECK(tsr__config_parse_size(tsr__config_map_value(cfg, "max_memory", 1), &bytes));
    CHECK(bytes == 500000000ull);
    CHECK(!strcmp(tsr__config_map_key(cfg, "max_memory", 2), "1"));
    CHECK(tsr__config_parse_size(tsr__config_map_value(cfg, "max_memory", 2), &bytes));
    CHECK(bytes == 1024);
    CHECK(tsr__config_list_len(cfg, "generation.eos_token_id") == 2);
    CHECK(!strcmp(tsr__config_list_at(cfg, "generation.eos_token_id", 1), "32000"));
    CHECK(tsr__config_list_len(cfg, "generation.stop_strings") == 1);
    CHECK(!strcmp(tsr__config_list_at(cfg, "generation.stop_strings", 0), "\n\nHuman:"));
    /* a string again */
    CHECK(tsr_config_set(cfg, "device_map", "sequential") == TSR_OK);
    CHECK(!strcmp(tsr__config_string(cfg, "device_map"), "sequential"));
    CHECK(tsr__config_map_len(cfg, "device_map") == 0);
    CHECK(tsr_config_set(cfg, "device_map", "cuda:1") == TSR_OK);
    CHECK(tsr_config_set(cfg, "generation.eos_token_id", "2") == TSR_OK);
    CHECK(tsr__config_list_len(cfg, "generation.eos_token_id") == 1);
    CHECK(tsr__config_int(cfg, "generation.eos_token_id") == 2);
    tsr_config_destroy(cfg);

    static const struct { const char *text; uint64_t bytes; } sizes[] = {
        {"0", 0}, {"1024", 1024}, {"1B", 1}, {"1kB", 1000}, {"1KB", 1000}, {"1KiB", 1024},
        {"1.5GiB", 3ull << 29}, {"6GiB", 6442450944ull}, {"20GB", 20000000000ull},
        {"2TiB", 2ull << 40}, {"3MiB", 3ull << 20},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        bytes = 12345;
        CHECK_MSG(tsr__config_parse_size(sizes[i].text, &bytes) && bytes == sizes[i].bytes,
                  "%s -> %llu", sizes[i].text, (unsigned long long)bytes);
    }
    static const char *const bad[] = {"", "GiB", "6 GiB", "6gigs", "-1GiB", "1.5", "6Gib", "1e3MB",
                                      "99999999999TiB", "6GiB ", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(!tsr__config_parse_size(bad[i], &bytes), "'%s' accepted", bad[i]);
}

static void test_errors(void)
{
    expect_load_error(DATA "unknown_nested.yaml",
                      DATA "unknown_nested.yaml:4:3: unknown key 'generation.temprature' "
                      "(did you mean 'generation.temperature'?)");
    expect_load_error(DATA "unknown_top.yaml",
                      DATA "unknown_top.yaml:2:1: unknown key 'frobnicate'");
    expect_load_error(DATA "wrong_type.yaml",
                      DATA "wrong_type.yaml:2:10: key 'threads' expects an integer, got 'many'");
    expect_load_error(DATA "malformed.yaml",
                      DATA "malformed.yaml:4:8: malformed YAML: did not find expected ',' or ']' "
                      "while parsing a flow sequence");
    expect_load_error(DATA "duplicate.yaml",
                      DATA "duplicate.yaml:4:3: duplicate key 'generation.top_p' (first at line 2)");
    expect_load_error(DATA "bad_size.yaml",
                      DATA "bad_size.yaml:2:11: key 'max_memory' expects a size such as 6GiB or "
                      "500MB for 'cuda:0', got '6 gigs'");
    expect_load_error(DATA "out_of_range.yaml",
                      DATA "out_of_range.yaml:2:10: key 'generation.top_p' must be between 0 and 1, "
                      "got 1.5");
    expect_load_error(DATA "bad_enum.yaml",
                      DATA "bad_enum.yaml:1:8: key 'dtype' expects one of float32, float16, "
                      "bfloat16, auto, got 'fp8'");

    expect_load_error(DATA "two_documents.yaml",
                      DATA "two_documents.yaml:3:1: only one YAML document is allowed");

    tsr_config *cfg = fresh();
    CHECK(tsr_config_load_file(cfg, DATA "no_such_file.yaml") != TSR_OK);
    CHECK_CONTAINS(tsr_last_error(), "no_such_file.yaml");
    CHECK(tsr_config_load_file(cfg, DATA "empty.yaml") == TSR_OK);
    tsr_config_destroy(cfg);
}

/* Each type's validation, through the command-line path. */
static void test_types(void)
{
    expect_set_error("generation.top_p", "abc",
                     "command line: key 'generation.top_p' expects a number, got 'abc'");
    expect_set_error("generation.temprature", "0.5",
                     "command line: unknown key 'generation.temprature' (did you mean "
                     "'generation.temperature'?)");
    expect_set_error("threads", "4.5", "command line: key 'threads' expects an integer, got '4.5'");
    expect_set_error("threads", "-1",
                     "command line: key 'threads' must be between 0 and 65536, got -1");
    expect_set_error("generation.max_new_tokens", "-5",
                     "command line: key 'generation.max_new_tokens' must be at least 0, got -5");
    expect_set_error("threads", "[1]", "command line: key 'threads' expects an integer, got a list");
    expect_set_error("generation.do_sample", "maybe",
                     "command line: key 'generation.do_sample' expects true or false, got 'maybe'");
    expect_set_error("model", "{a: b}", "command line: key 'model' expects a string, got a mapping");
    expect_set_error("backends", "cpu",
                     "command line: key 'backends' expects a list of strings, got 'cpu'");
    expect_set_error("backends", "[cpu, [cuda]]",
                     "command line: key 'backends' expects a string, got a list");
    expect_set_error("generation.eos_token_id", "eos",
                     "command line: key 'generation.eos_token_id' expects an integer or a list of "
                     "integers, got 'eos'");
    expect_set_error("generation.eos_token_id", "[2, x]",
                     "command line: key 'generation.eos_token_id' expects an integer, got 'x'");
    expect_set_error("cache.implementation", "paged",
                     "command line: key 'cache.implementation' expects one of dynamic, static, "
                     "quantized, offloaded, sliding_window, sink, got 'paged'");
    expect_set_error("max_memory", "{gpu zero: 6GiB}",
                     "command line: key 'max_memory' expects a device such as cpu, cuda:0 or disk "
                     "as key, got 'gpu zero'");
    expect_set_error("max_memory", "6GiB",
                     "command line: key 'max_memory' expects a mapping from device to a size such "
                     "as 6GiB or 500MB, got '6GiB'");
    expect_set_error("device_map", "Auto Please",
                     "command line: key 'device_map' expects a device or strategy (auto, balanced, "
                     "sequential, cpu, cuda:0), or a mapping from module name to device, got "
                     "'Auto Please'");
    expect_set_error("generation", "5",
                     "command line: key 'generation' expects a mapping of keys, got a scalar");
    expect_set_error("generation", "{tpo_p: 1}",
                     "command line: unknown key 'generation.tpo_p' (did you mean "
                     "'generation.top_p'?)");
    expect_set_error("generation.repetition_penalty", "0",
                     "command line: key 'generation.repetition_penalty' must be greater than 0, "
                     "got 0");
    expect_set_error("quantization.bits", "9",
                     "command line: key 'quantization.bits' must be between 1 and 8, got 9");
    expect_set_error("generation.top_p", "[0.9",
                     "command line: malformed YAML value: did not find expected ',' or ']'");

    tsr_config *cfg = fresh();
    /* an integer where a number is expected; YAML 1.1 booleans; quoted text */
    CHECK(tsr_config_set(cfg, "generation.temperature", "1") == TSR_OK);
    CHECK(tsr__config_real(cfg, "generation.temperature") == 1.0);
    CHECK(tsr_config_set(cfg, "generation.do_sample", "yes") == TSR_OK);
    CHECK(tsr__config_bool(cfg, "generation.do_sample"));
    CHECK(!strcmp(tsr_config_get(cfg, "generation.do_sample"), "true"));
    CHECK(tsr_config_set(cfg, "generation.min_p", "0.05") == TSR_OK);
    CHECK(tsr__config_real(cfg, "generation.min_p") == 0.05);
    CHECK(tsr_config_set(cfg, "model", "'null'") == TSR_OK);
    CHECK(!strcmp(tsr__config_string(cfg, "model"), "null"));
    CHECK(tsr_config_set(cfg, "seed", "1234") == TSR_OK);
    CHECK(tsr__config_int(cfg, "seed") == 1234);
    CHECK(tsr_config_set(cfg, "quantization", "{method: hqq, nbits: 2, group_size: 64}") == TSR_OK);
    CHECK(tsr__config_int(cfg, "quantization.group_size") == 64);
    CHECK(tsr_config_set(cfg, "max_memory", "{cuda:0: 6GiB, cpu: 20GiB}") == TSR_OK);
    CHECK(tsr__config_map_len(cfg, "max_memory") == 2);
    CHECK(tsr_config_set(cfg, "generation.stop_strings", "\"\\n\\nUser:\"") == TSR_OK);
    CHECK(!strcmp(tsr__config_list_at(cfg, "generation.stop_strings", 0), "\n\nUser:"));
    tsr_config_destroy(cfg);
}

static void test_default_files(void)
{
    char *cwd = getcwd(NULL, 0);
    char xdg[4096];
    snprintf(xdg, sizeof xdg, "%s/" DATA "xdg", cwd ? cwd : ".");
    free(cwd);
    setenv("XDG_CONFIG_HOME", xdg, 1);
    tsr_config *cfg = fresh();
    CHECK_MSG(tsr_config_load_default_files(cfg) == TSR_OK, "%s", tsr_last_error());
    CHECK(tsr__config_int(cfg, "threads") == 2);
    CHECK(!strcmp(tsr__config_string(cfg, "log_level"), "debug"));
    tsr_config_destroy(cfg);
    /* missing files are fine; a relative XDG_CONFIG_HOME is ignored (XDG spec) */
    setenv("XDG_CONFIG_HOME", DATA "xdg", 1);
    setenv("HOME", "/nonexistent-tessera-home", 1);
    cfg = fresh();
    CHECK(tsr_config_load_default_files(cfg) == TSR_OK);
    CHECK(tsr__config_int(cfg, "threads") == 0);
    tsr_config_destroy(cfg);
}

static void test_reference(void)
{
    const char *text = tsr_config_reference(0), *md = tsr_config_reference(1);
    CHECK(text && md && text != md);
    /* every key appears in both */
    for (size_t i = 0; i < tsr__config_n_keys; i++) {
        char want[256];
        snprintf(want, sizeof want, "| `%s`", tsr__config_keys[i].name);
        CHECK_CONTAINS(md, want);
        snprintf(want, sizeof want, "  %s", tsr__config_keys[i].name);
        CHECK_CONTAINS(text, want);
    }
    CHECK_CONTAINS(md, "| `generation.top_k` | integer, >= 0 | `50` |");
    CHECK_CONTAINS(md, "| `generation.top_p` | number, 0 to 1 | `1.0` |");
    CHECK_CONTAINS(md, "| `dtype` (alias `torch_dtype`) | float32 \\| float16 \\| bfloat16 \\| auto | `auto` |");
    CHECK(tsr_config_reference(1) == md);   /* built once */
}

int main(void)
{
    test_defaults();
    test_full_file();
    test_layers();
    test_dump_roundtrip();
    test_alias();
    test_device_map_and_sizes();
    test_errors();
    test_types();
    test_default_files();
    test_reference();
    return tsr_test_report("test_config");
}
