/* tests/unit/test_registry.c - plugins.d scanning, search order, overrides,
 * and every way a plugin can fail to load (tests/abi: plugins built against
 * the frozen ABI 1.0 SDK).  The expected sentences name what a user needs:
 * both ABI versions, the probe's reason, the paths tried, dlerror's missing
 * dependency, file:line:column of a bad manifest. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "internal.h"
#include "tsr_test.h"

/* this tessera's plugin ABI, "1.N" */
#define ABI_STR_(x) #x
#define ABI_STR(x) ABI_STR_(x)
#define ABI_NOW ABI_STR(TSR_ABI_MAJOR) "." ABI_STR(TSR_ABI_MINOR)

static char abi_dir[1024];

static tsr__manifest *by_file(tsr__registry *reg, const char *file)
{
    size_t lf = strlen(file);
    for (size_t i = 0; i < tsr__registry_count(reg); i++) {
        tsr__manifest *m = tsr__registry_at(reg, i);
        size_t lp = strlen(m->path);
        if (lp > lf && m->path[lp - lf - 1] == '/' && !strcmp(m->path + lp - lf, file))
            return m;
    }
    return NULL;
}

/* Load the manifest `file` and check the outcome and its sentence. */
static void expect_load(tsr__registry *reg, const char *file, tsr_status want,
                        const char *sub1, const char *sub2)
{
    tsr__manifest *m = by_file(reg, file);
    CHECK_MSG(m != NULL, "manifest %s not found in %s", file, abi_dir);
    if (!m)
        return;
    tsr_status st = tsr__registry_load(reg, m);
    CHECK_MSG(st == want, "%s: status %d, expected %d (%s)", file, st, want, m->status);
    if (sub1)
        CHECK_CONTAINS(m->status, sub1);
    if (sub2)
        CHECK_CONTAINS(m->status, sub2);
    if (want != TSR_OK) {
        CHECK(m->loaded == -1);
        CHECK(m->desc == NULL);
        /* The same sentence is the thread's last error. */
        CHECK_CONTAINS(tsr_last_error(), sub1 ? sub1 : "");
        /* A second attempt gives the same answer without dlopen again. */
        CHECK(tsr__registry_load(reg, m) == st);
    }
}

static void test_failures_and_find(void)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/plugins.d", abi_dir);
    setenv("TESSERA_PLUGIN_PATH", path, 1);
    tsr__registry *reg = NULL;
    CHECK(tsr__registry_create(&reg) == TSR_OK);
    if (!reg)
        return;

    /* Scanning reads manifests only. */
    tsr__manifest *good = by_file(reg, "good.yaml");
    CHECK(good != NULL);
    if (good) {
        CHECK(good->loaded == 0);
        CHECK(!strcmp(good->status, "not loaded"));
        CHECK(!strcmp(good->name, "abi-good"));
        CHECK(!strcmp(good->kind, "backend"));
        CHECK(good->priority == 10);
        CHECK(good->n_provides == 1 && !strcmp(good->provides[0], "abi-dev"));
        CHECK_CONTAINS(good->origin, "tests/abi/plugins.d");
    }
    tsr__manifest *model = by_file(reg, "model.yaml");
    CHECK(model && model->n_provides == 2 && !strcmp(model->provides[1], "abi-model-2"));

    /* Broken manifests are listed with file:line:column, never fatal.
     * badkey.yaml line 5 is "colour: blue"; malformed.yaml's flow sequence
     * opened on line 4 never closes, so the parser stops at the end. */
    tsr__manifest *bad = by_file(reg, "badkey.yaml");
    CHECK(bad != NULL);
    if (bad) {
        CHECK(bad->loaded == -1);
        CHECK_CONTAINS(bad->status, "invalid manifest");
        CHECK_CONTAINS(bad->status, "badkey.yaml:5:1: unknown key 'colour'");
        CHECK(!strcmp(bad->name, "abi-badkey"));
        CHECK(tsr__registry_load(reg, bad) != TSR_OK);
    }
    tsr__manifest *mal = by_file(reg, "malformed.yaml");
    CHECK(mal != NULL);
    if (mal) {
        CHECK_CONTAINS(mal->status, "invalid manifest");
        CHECK_CONTAINS(mal->status, "malformed.yaml:5:1:");
        CHECK(!strcmp(mal->name, "malformed")); /* no name parsed: the file's stem */
    }

    /* Every way to fail, each a sentence; then the good ones still load. */
    expect_load(reg, "major2.yaml", TSR_ERR_ABI,
                "plugin 'abi-major2' was built for plugin ABI 2.0 but this tessera provides " ABI_NOW,
                "tessera-abi-major2.so");
    expect_load(reg, "minor99.yaml", TSR_ERR_ABI,
                "plugin 'abi-minor99' was built for plugin ABI 1.99, newer than this tessera's " ABI_NOW,
                "tessera-abi-minor99.so");
    expect_load(reg, "probefail.yaml", TSR_ERR_DEVICE,
                "plugin 'abi-probefail' cannot run here: the abi-test device is switched off",
                NULL);
    expect_load(reg, "noentry.yaml", TSR_ERR_PLUGIN, "tessera-abi-noentry.so does not export "
                "the entry point 'tessera_plugin_entry'", NULL);
    expect_load(reg, "nulldesc.yaml", TSR_ERR_PLUGIN, "tessera_plugin_entry() in",
                "tessera-abi-nulldesc.so returned NULL");
    /* dlerror names the missing dependency; the sentence names the plugin. */
    expect_load(reg, "missingdep.yaml", TSR_ERR_PLUGIN, "libtsrabistub.so",
                "cannot load ");
    expect_load(reg, "missingdep.yaml", TSR_ERR_PLUGIN, "tessera-abi-missingdep.so", NULL);
    expect_load(reg, "missinglib.yaml", TSR_ERR_NOT_FOUND,
                "its library 'tessera-abi-does-not-exist.so' was not found",
                "plugins.d/tessera-abi-does-not-exist.so");
    expect_load(reg, "misnamed.yaml", TSR_ERR_PLUGIN, "calls itself 'abi-good'",
                "names it 'abi-misnamed'");
    expect_load(reg, "wrongkind.yaml", TSR_ERR_PLUGIN, "is a backend plugin",
                "says quantizer");
    expect_load(reg, "good.yaml", TSR_OK, "available", NULL);
    expect_load(reg, "model.yaml", TSR_OK, "available", NULL);
    if (good && good->desc) {
        CHECK(!strcmp(good->desc->name, "abi-good"));
        CHECK(good->desc->abi_major == 1 && good->desc->abi_minor == 0);
        const tsr_backend_vtable *vt = good->desc->vtable;
        void *state = NULL;
        CHECK(vt->create(tsr__host(), NULL, &state) == TSR_OK);
        CHECK(vt->device_count(state) == 1);
        vt->destroy(state);
    }

    /* find: the probe-failing plugin has the highest priority for abi-dev,
     * so find skips it and takes abi-good (10) over abi-good-low (1). */
    const tsr_plugin_desc *d = NULL;
    CHECK(tsr__registry_find(reg, TSR_PLUGIN_BACKEND, "abi-dev", &d) == TSR_OK);
    CHECK(d && !strcmp(d->name, "abi-good"));
    CHECK(tsr__registry_find(reg, TSR_PLUGIN_BACKEND, "abi-good-low", &d) == TSR_OK);
    CHECK(d && !strcmp(d->name, "abi-good-low"));
    CHECK(tsr__registry_find(reg, TSR_PLUGIN_MODEL, "abi-model-2", &d) == TSR_OK);
    CHECK(d && d->kind == TSR_PLUGIN_MODEL);
    /* A model_type is not a backend. */
    CHECK(tsr__registry_find(reg, TSR_PLUGIN_BACKEND, "abi-model-2", &d) == TSR_ERR_NOT_FOUND);
    CHECK(d == NULL);
    CHECK(tsr__registry_find(reg, TSR_PLUGIN_BACKEND, "abi-major", &d) != TSR_OK);
    CHECK_CONTAINS(tsr_last_error(), "abi-major");
    CHECK_CONTAINS(tsr_last_error(), "ABI 2.0 but this tessera provides " ABI_NOW);
    CHECK(tsr__registry_find(reg, TSR_PLUGIN_QUANTIZER, "no-such-method", &d) == TSR_ERR_NOT_FOUND);
    CHECK_CONTAINS(tsr_last_error(), "no quantizer plugin provides quant_method 'no-such-method'");
    tsr__registry_destroy(reg);
}

/* Two directories in TESSERA_PLUGIN_PATH holding same.yaml: the earlier one
 * wins and says what it overrides; the rest of the later directory stays.
 * The user's config dir comes after TESSERA_PLUGIN_PATH. */
static void test_search_order(void)
{
    char tmpl[] = "/tmp/tsr-registry-XXXXXX";
    char *tmp = mkdtemp(tmpl);
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    char dir[1400], file[1500], pathv[3000];
    snprintf(dir, sizeof dir, "%s/tessera", tmp);
    mkdir(dir, 0700);
    snprintf(dir, sizeof dir, "%s/tessera/plugins.d", tmp);
    mkdir(dir, 0700);
    /* The user's copy of only-b.yaml and a user-only manifest. */
    snprintf(file, sizeof file, "%s/only-b.yaml", dir);
    FILE *f = fopen(file, "w");
    if (f) {
        fprintf(f, "name: user-shadowed\nkind: model\nlibrary: /nonexistent.so\n"
                   "provides: {model_types: [x]}\n");
        fclose(f);
    }
    snprintf(file, sizeof file, "%s/user.yaml", dir);
    f = fopen(file, "w");
    if (f) {
        fprintf(f, "name: user-plugin\nkind: backend\nlibrary: %s/plugins/tessera-abi-good.so\n",
                abi_dir);
        fclose(f);
    }
    setenv("XDG_CONFIG_HOME", tmp, 1);
    snprintf(pathv, sizeof pathv, "%s/override/a::%s/override/b:/nonexistent-dir", abi_dir,
             abi_dir);
    setenv("TESSERA_PLUGIN_PATH", pathv, 1);

    tsr__registry *reg = NULL;
    CHECK(tsr__registry_create(&reg) == TSR_OK);
    int n_same = 0, n_only_b = 0, n_user = 0;
    for (size_t i = 0; reg && i < tsr__registry_count(reg); i++) {
        tsr__manifest *m = tsr__registry_at(reg, i);
        if (strstr(m->path, "/same.yaml")) {
            n_same++;
            CHECK_CONTAINS(m->path, "override/a/same.yaml");
            CHECK(!strcmp(m->name, "abi-good"));
            CHECK_CONTAINS(m->origin, "override/a (overrides ");
            CHECK_CONTAINS(m->origin, "override/b/same.yaml)");
            CHECK(tsr__registry_load(reg, m) == TSR_OK);
        } else if (strstr(m->path, "/only-b.yaml")) {
            n_only_b++;
            CHECK_CONTAINS(m->path, "override/b/only-b.yaml");
            CHECK(!strcmp(m->name, "abi-model"));
            CHECK_CONTAINS(m->origin, "(overrides ");
            CHECK_CONTAINS(m->origin, "tessera/plugins.d/only-b.yaml)");
        } else if (strstr(m->path, "/user.yaml")) {
            n_user++;
            CHECK(!strcmp(m->name, "user-plugin"));
            /* Absolute library path, used as is; the name check fails. */
            CHECK(tsr__registry_load(reg, m) == TSR_ERR_PLUGIN);
            CHECK_CONTAINS(m->status, "calls itself 'abi-good'");
        }
        CHECK(strcmp(m->name, "abi-good-low") && strcmp(m->name, "user-shadowed"));
    }
    CHECK(n_same == 1 && n_only_b == 1 && n_user == 1);
    /* Manifests earlier in the order come first in the listing. */
    tsr__manifest *first = reg ? tsr__registry_at(reg, 0) : NULL;
    CHECK(first && strstr(first->path, "override/a/"));
    tsr__registry_destroy(reg);
    unlink(file);
    snprintf(file, sizeof file, "%s/only-b.yaml", dir);
    unlink(file);
    rmdir(dir);
    snprintf(dir, sizeof dir, "%s/tessera", tmp);
    rmdir(dir);
    rmdir(tmp);
    unsetenv("XDG_CONFIG_HOME");
}

/* The public listing (what `tessera plugins` prints). */
static void test_public_listing(void)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/plugins.d", abi_dir);
    setenv("TESSERA_PLUGIN_PATH", path, 1);
    size_t n = 0;
    CHECK(tsr_plugins_scan(1, &n) == TSR_OK);
    CHECK(n >= 14);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        tsr_plugin_info info = TSR_PLUGIN_INFO_INIT;
        CHECK(tsr_plugins_get(i, &info) == TSR_OK);
        if (!strstr(info.manifest, "/tests/abi/plugins.d/"))
            continue;
        if (strstr(info.manifest, "/good.yaml")) {
            seen++;
            CHECK(info.available == 1 && !strcmp(info.status, "available"));
            CHECK(!strcmp(info.abi, "1.0") && !strcmp(info.version, "1.0.0-test"));
            CHECK(!strcmp(info.provides, "abi-dev") && info.priority == 10);
            CHECK_CONTAINS(info.library, "tests/abi/plugins/tessera-abi-good.so");
        } else if (strstr(info.manifest, "/major2.yaml")) {
            seen++;
            CHECK(info.available == 0 && !strcmp(info.abi, "2.0"));
        } else if (strstr(info.manifest, "/model.yaml")) {
            seen++;
            CHECK(info.available == 1 && !strcmp(info.kind, "model"));
            CHECK(!strcmp(info.provides, "abi-model,abi-model-2"));
        }
    }
    CHECK(seen == 3);
    tsr_plugin_info small = TSR_PLUGIN_INFO_INIT;
    small.struct_size = 8;
    CHECK(tsr_plugins_get(0, &small) == TSR_ERR_INVALID_ARG);
    tsr_plugin_info past = TSR_PLUGIN_INFO_INIT;
    CHECK(tsr_plugins_get(n, &past) == TSR_ERR_INVALID_ARG);
}

int main(void)
{
    const char *build = getenv("TESSERA_BUILD_DIR");
    if (!build) {
        fprintf(stderr, "test_registry: TESSERA_BUILD_DIR is not set (run it through ctest)\n");
        return 1;
    }
    snprintf(abi_dir, sizeof abi_dir, "%s/tests/abi", build);
    setenv("XDG_CONFIG_HOME", "/nonexistent-tessera-test", 1);
    tsr_set_log(NULL, NULL, TSR_LOG_ERROR);
    test_failures_and_find();
    test_search_order();
    test_public_listing();
    return tsr_test_report("test_registry");
}
