/* Placement on a backend with its own memory, without a GPU: the test-only
 * fakedev backend (tests/plugins/fakedev) checks every pointer it is given.
 *   - the strategy (tsr__place_assign) against hand-worked cases of
 *     accelerate's infer_auto_device_map / get_balanced_memory rules;
 *   - fakedev's own checks fire on a host pointer (so silence means
 *     something) and its kernels give the hand-computed product;
 *   - stories260K through fakedev (auto, a mixed explicit map, and a
 *     max_memory that spills to cpu and disk): logits within 5e-5 of the
 *     cpu-only run (float32 sums in other orders: the cpu backend's blocked
 *     GEMM and attention tiles, fakedev's plain loops; logits reach ~15)
 *     and the same greedy tokens. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tsr_test.h"
#include "../../core/placement.h"

#define M "fixtures/stories260K-hf"

static void test_strategy(void)
{
    int out[8];
    const uint64_t U = UINT64_MAX;
    /* sequential: fill the device up to budget - reserve, then the cpu, then
     * disk; the size-0 module (a tied lm_head) goes with module 0 */
    uint64_t s1[] = {10, 40, 40, 40, 10, 0}, b1[] = {100, 50, U}, r1[] = {10, 0, 0};
    tsr__place_assign(TSR__PLACE_SEQUENTIAL, s1, 6, b1, r1, 3, 1, out);
    int e1[] = {0, 0, 0, 1, 1, 0};
    CHECK(memcmp(out, e1, sizeof e1) == 0);
    /* never back to an earlier device, and the last one takes the rest */
    uint64_t s2[] = {60, 40, 20}, b2[] = {80, 50, U}, r2[] = {0, 0, 0};
    tsr__place_assign(TSR__PLACE_SEQUENTIAL, s2, 3, b2, r2, 3, 1, out);
    CHECK(out[0] == 0 && out[1] == 1 && out[2] == 2);
    /* balanced over two devices: all but the last get total/2 + the largest */
    uint64_t s3[] = {10, 30, 30, 30, 30, 10}, b3[] = {1000, 1000, 50, U}, r3[] = {0, 0, 0, 0};
    tsr__place_assign(TSR__PLACE_BALANCED, s3, 6, b3, r3, 4, 2, out);
    int e3[] = {0, 0, 0, 0, 1, 1};
    CHECK(memcmp(out, e3, sizeof e3) == 0);
    /* one device: balanced is sequential */
    tsr__place_assign(TSR__PLACE_BALANCED, s1, 6, b1, r1, 3, 1, out);
    CHECK(memcmp(out, e1, sizeof e1) == 0);
    /* balanced_low_0: device 0 keeps only its reserve */
    uint64_t s4[] = {10, 30, 30}, b4[] = {1000, 1000, U, U}, r4[] = {10, 10, 0, 0};
    tsr__place_assign(TSR__PLACE_BALANCED_LOW_0, s4, 3, b4, r4, 4, 2, out);
    CHECK(out[0] == 1 && out[1] == 1 && out[2] == 1);
}

/* fakedev's checks and kernels, driven directly through the registry */
static void test_fakedev_checks(void)
{
    const tsr_plugin_desc *d = NULL;
    tsr__registry *reg = tsr__registry_global();
    CHECK_MSG(reg && tsr__registry_find(reg, TSR_PLUGIN_BACKEND, "fakedev", &d) == TSR_OK,
              "fakedev plugin: %s", tsr_last_error());
    if (!d)
        return;
    const tsr_backend_vtable *vt = d->vtable;
    void *st = NULL;
    tsr_backend_options bo = {sizeof bo, 1, 0};
    CHECK(vt->create(tsr__host(), &bo, &st) == TSR_OK);
    tsr_device_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK(vt->device_info(st, 0, &info) == TSR_OK && info.host_memory == 0);
    /* y = W x: W [2 rows of 3], x [3] */
    float w[6] = {1, 2, 3, 4, 5, 6}, x[3] = {1, 0.5f, -1}, y[2];
    void *dw = NULL, *dx = NULL, *dy = NULL;
    CHECK(vt->buffer_alloc(st, sizeof w, &dw) == TSR_OK);
    CHECK(vt->buffer_alloc(st, sizeof x, &dx) == TSR_OK);
    CHECK(vt->buffer_alloc(st, sizeof y, &dy) == TSR_OK);
    CHECK(vt->copy_to_device(st, dw, w, sizeof w) == TSR_OK);
    CHECK(vt->copy_to_device(st, dx, x, sizeof x) == TSR_OK);
    CHECK(vt->copy_to_device(st, y, x, sizeof y) != TSR_OK); /* host destination */
    tsr_tensor W, X, Y;
    memset(&W, 0, sizeof W);
    W.struct_size = sizeof W;
    W.dtype = TSR_DTYPE_F32;
    X = Y = W;
    const int64_t nw[4] = {3, 2, 1, 1}, nx[4] = {3, 1, 1, 1}, ny[4] = {2, 1, 1, 1};
    for (int i = 0; i < 4; i++) {
        W.ne[i] = nw[i];
        X.ne[i] = nx[i];
        Y.ne[i] = ny[i];
        W.nb[i] = i ? W.nb[i - 1] * (size_t)W.ne[i - 1] : 4;
        X.nb[i] = i ? X.nb[i - 1] * (size_t)X.ne[i - 1] : 4;
        Y.nb[i] = i ? Y.nb[i - 1] * (size_t)Y.ne[i - 1] : 4;
    }
    W.data = w;
    X.data = dx;
    Y.data = dy;
    Y.op = TSR_OP_MUL_MAT;
    W.name = "w"; X.name = "x"; Y.name = "y";
    Y.src[0] = &W;
    Y.src[1] = &X;
    tsr_tensor *nodes[1] = {&Y};
    CHECK(vt->supports(st, &Y));
    /* the weight still in host memory: caught, naming the input */
    CHECK(vt->compute(st, nodes, 1) == TSR_ERR_DEVICE);
    CHECK_CONTAINS(tsr_last_error(), "'w'");
    CHECK_CONTAINS(tsr_last_error(), "not in fakedev memory");
    W.data = dw;
    CHECK(vt->compute(st, nodes, 1) == TSR_OK);
    CHECK(vt->copy_to_host(st, y, dy, sizeof y) == TSR_OK);
    CHECK(y[0] == 1 + 1 - 3 && y[1] == 4 + 2.5f - 6);
    vt->buffer_free(st, dw);
    vt->buffer_free(st, dx);
    vt->buffer_free(st, dy);
    vt->destroy(st);
}

typedef struct run { float *logits; int32_t tokens[32]; char *desc; } run;

/* Load stories260K with a YAML configuration, take the logits of a prompt
 * and 32 greedy tokens after it. */
static int run_model(const char *yaml, const char *fakedev_mem, run *r)
{
    memset(r, 0, sizeof *r);
    if (fakedev_mem)
        setenv("TESSERA_FAKEDEV_MEMORY", fakedev_mem, 1);
    else
        unsetenv("TESSERA_FAKEDEV_MEMORY");
    char path[] = "/tmp/tsr-placement-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return 0;
    fputs(yaml, f);
    fclose(f);
    tsr_config *cfg = NULL;
    tsr_model *m = NULL;
    int ok = tsr_config_create(&cfg) == TSR_OK && tsr_config_load_file(cfg, path) == TSR_OK;
    remove(path);
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = M;
    lo.config = cfg;
    ok = ok && tsr_model_load(&lo, &m) == TSR_OK;
    CHECK_MSG(ok, "loading with\n%s: %s", yaml, tsr_last_error());
    const int32_t prompt[6] = {1, 365, 301, 307, 325, 278};
    const int V = 512;
    r->logits = calloc(6 * V, sizeof(float));
    float *last = calloc(V, sizeof(float));
    ok = ok && r->logits && last && tsr_model_logits(m, prompt, 6, r->logits) == TSR_OK;
    ok = ok && tsr_model_decode(m, prompt, 6, 1, last) == TSR_OK;
    for (int i = 0; ok && i < 32; i++) {
        int32_t best = 0;
        for (int v = 1; v < V; v++)
            if (last[v] > last[best])
                best = v;
        r->tokens[i] = best;
        ok = tsr_model_decode(m, &best, 1, 0, last) == TSR_OK;
    }
    CHECK_MSG(ok, "running with\n%s: %s", yaml, tsr_last_error());
    if (ok)
        tsr_model_describe(m, &r->desc);
    free(last);
    tsr_model_destroy(m);
    tsr_config_destroy(cfg);
    return ok;
}

static void compare(const run *ref, const run *r, const char *what)
{
    float worst = 0;
    for (int i = 0; i < 6 * 512; i++) {
        float d = fabsf(ref->logits[i] - r->logits[i]);
        if (d > worst)
            worst = d;
    }
    CHECK_MSG(worst <= 5e-5f, "%s: logits differ from the cpu run by %g", what, worst);
    CHECK_MSG(memcmp(ref->tokens, r->tokens, sizeof r->tokens) == 0,
              "%s: greedy tokens differ from the cpu run", what);
}

static void free_run(run *r)
{
    free(r->logits);
    tsr_free(r->desc);
}

int main(void)
{
    test_strategy();
    test_fakedev_checks();
    run ref, r;
    if (!run_model("backends: [cpu]\n", NULL, &ref))
        return tsr_test_report("test_placement");
    /* auto: the whole model fits on fakedev */
    if (run_model("backends: [fakedev, cpu]\ndevice_map: auto\n", NULL, &r)) {
        compare(&ref, &r, "auto");
        CHECK_CONTAINS(r.desc, "  model.layers.3: fakedev:0\n");
        CHECK_CONTAINS(r.desc, "  lm_head: fakedev:0\n");
    }
    free_run(&r);
    /* a mixed explicit map */
    if (run_model("backends: [fakedev, cpu]\ndevice_map: {model.embed_tokens: fakedev:0, "
                  "model.layers.0-2: cpu, model.layers.3-4: fakedev:0, model.norm: cpu, "
                  "lm_head: cpu}\n", NULL, &r)) {
        compare(&ref, &r, "mixed");
        CHECK_CONTAINS(r.desc, "  model.layers.1: cpu\n");
        CHECK_CONTAINS(r.desc, "  model.layers.4: fakedev:0\n");
    }
    free_run(&r);
    /* too little device memory: some layers on cpu, the rest on disk */
    if (run_model("backends: [fakedev, cpu]\ndevice_map: auto\n"
                  "max_memory: {fakedev:0: 3MiB, cpu: 700KiB}\n", "4MiB", &r)) {
        compare(&ref, &r, "max_memory spill");
        CHECK_CONTAINS(r.desc, "  model.layers.0: fakedev:0\n");
        CHECK_CONTAINS(r.desc, ": cpu\n");
        CHECK_CONTAINS(r.desc, ": disk\n");
    }
    free_run(&r);
    free_run(&ref);
    return tsr_test_report("test_placement");
}
