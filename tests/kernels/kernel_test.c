/* tests/kernels/kernel_test.c - run every op a backend plugin supports on
 * fresh random inputs and compare it with the cpu backend (the reference
 * C kernels), both loaded through their entry points from the built
 * modules.  Outputs are poisoned (NaN) before each run, so an element a
 * kernel forgets to write fails.  Device backends (device_info reports
 * host_memory == 0) get their inputs through buffer_alloc/copy_to_device
 * and return results through copy_to_host.
 *
 * usage:
 *   tessera-kernel-test <cpu.so> <backend.so> [--require op,op,...]
 *       compare; every op group named in --require must have at least one
 *       case the backend accepted (and passed)
 *   tessera-kernel-test <cpu.so> <backend.so> --expect-no-device
 *       the backend's probe() must refuse with a sentence, create() must fail
 *       cleanly (machines without its GPU)
 *   tessera-kernel-test <cpu.so> <backend.so> --bench [K N]
 *       matmul timings, backend vs cpu, for M = 1..128 rows
 * The seed is random per run (printed); TESSERA_TEST_SEED=<n> repeats one. */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "internal.h"

static const tsr_host *HOST;
static int failures, n_run, n_declined;
static unsigned long long rng_state;

#define FAIL(...) do { failures++; fprintf(stderr, "FAIL: "); fprintf(stderr, __VA_ARGS__); \
    fputc('\n', stderr); } while (0)

static double urand(void) /* [0, 1) */
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* --- backends ------------------------------------------------------------------- */

typedef struct backend {
    const tsr_plugin_desc *d;
    const tsr_backend_vtable *vt;
    void *state;
    int device;               /* 1: buffers live on a device */
} backend;

static const tsr_plugin_desc *load(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "kernel_test: cannot load %s: %s\n", path, dlerror());
        return NULL;
    }
    void *sym = dlsym(h, TSR_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        fprintf(stderr, "kernel_test: %s has no %s\n", path, TSR_PLUGIN_ENTRY_SYMBOL);
        return NULL;
    }
    tsr_plugin_entry_fn fn;
    memcpy(&fn, &sym, sizeof fn);
    return fn(HOST); /* never dlclose'd, as the registry does */
}

static int backend_open(backend *b, const char *path)
{
    memset(b, 0, sizeof *b);
    b->d = load(path);
    if (!b->d || b->d->kind != TSR_PLUGIN_BACKEND) {
        fprintf(stderr, "kernel_test: %s is not a backend plugin\n", path);
        return 0;
    }
    char why[512] = "";
    if (b->d->probe && !b->d->probe(HOST, why, sizeof why)) {
        fprintf(stderr, "kernel_test: %s cannot run here: %s\n", b->d->name, why);
        return 0;
    }
    b->vt = b->d->vtable;
    tsr_backend_options opt = {sizeof opt, 0, 0};
    if (b->vt->create(HOST, &opt, &b->state) != TSR_OK) {
        fprintf(stderr, "kernel_test: %s create: %s\n", b->d->name, tsr_last_error());
        return 0;
    }
    tsr_device_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (b->vt->device_info(b->state, 0, &info) != TSR_OK) {
        fprintf(stderr, "kernel_test: %s device_info: %s\n", b->d->name, tsr_last_error());
        return 0;
    }
    b->device = !info.host_memory;
    printf("backend %s: device 0 \"%s\" (%s memory)\n", b->d->name, info.name,
           b->device ? "device" : "host");
    return 1;
}

/* --- tensors ------------------------------------------------------------------- */

#define MAXT 8
typedef struct tcase {
    char name[96];
    const char *group;        /* op group for --require */
    tsr_tensor t[MAXT];       /* t[0] is the node; the others its leaves */
    int n;
    double tol;               /* max |got - ref| / (rms(ref) + 1e-6) */
} tcase;

static size_t nbytes(const tsr_tensor *t)
{
    return t->nb[3] * (size_t)t->ne[3];
}

static tsr_tensor *mk(tcase *c, uint32_t dt, int64_t n0, int64_t n1, int64_t n2, int64_t n3)
{
    tsr_tensor *t = &c->t[c->n++];
    memset(t, 0, sizeof *t);
    t->struct_size = sizeof *t;
    t->dtype = dt;
    t->ne[0] = n0; t->ne[1] = n1; t->ne[2] = n2; t->ne[3] = n3;
    t->nb[0] = HOST->dtype_size(dt);
    for (int i = 1; i < TSR_MAX_DIMS; i++)
        t->nb[i] = t->nb[i - 1] * (size_t)t->ne[i - 1];
    t->device = -1;
    t->data = calloc(1, nbytes(t));
    return t;
}

/* random values in [-s, s] stored in the tensor's float dtype */
static void fill(tsr_tensor *t, double s)
{
    int64_t n = tsr_tensor_nelements(t);
    for (int64_t i = 0; i < n; i++) {
        float v = (float)((2.0 * urand() - 1.0) * s);
        if (t->dtype == TSR_DTYPE_F32)
            ((float *)t->data)[i] = v;
        else if (t->dtype == TSR_DTYPE_F16)
            ((uint16_t *)t->data)[i] = HOST->f32_to_f16(v);
        else
            ((uint16_t *)t->data)[i] = HOST->f32_to_bf16(v);
    }
}

static tsr_tensor *node(tcase *c, tsr_op op, uint32_t dt, int64_t n0, int64_t n1, int64_t n2)
{
    /* the node is always t[0]: build it first */
    tsr_tensor *t = mk(c, dt, n0, n1, n2, 1);
    t->op = op;
    t->name = c->name;
    return t;
}

static void case_free(tcase *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->t[i].data);
}

/* Run case c on backend b: copy the leaves (to the device or to fresh host
 * memory), poison the output, compute, return the output in host memory. */
static int run_on(backend *b, tcase *c, void **out_host, size_t *out_n)
{
    tsr_tensor tt[MAXT];
    void *buf[MAXT] = {0};
    memcpy(tt, c->t, sizeof tt);
    int in_place = c->t[0].op == TSR_OP_KV_STORE;
    int ok = 1;
    for (int i = 0; i < c->n && ok; i++) {
        for (int s = 0; s < TSR_MAX_SRC; s++)
            for (int j = 0; j < c->n; j++)
                if (c->t[i].src[s] == &c->t[j])
                    tt[i].src[s] = &tt[j];
        if (i == 0 && in_place)
            continue;
        size_t nb = nbytes(&c->t[i]);
        void *src = c->t[i].data;
        void *poison = NULL;
        if (i == 0) { /* the output: NaN everywhere */
            poison = malloc(nb);
            for (size_t k = 0; k < nb / 4; k++)
                ((float *)poison)[k] = NAN;
            src = poison;
        }
        if (b->device) {
            ok = b->vt->buffer_alloc(b->state, nb, &buf[i]) == TSR_OK &&
                 b->vt->copy_to_device(b->state, buf[i], src, nb) == TSR_OK;
        } else {
            buf[i] = malloc(nb);
            memcpy(buf[i], src, nb);
        }
        free(poison);
        tt[i].data = buf[i];
    }
    if (in_place)
        tt[0].data = tt[2].data; /* t[2] is the cache (src1) */
    tsr_tensor *nodes[1] = {&tt[0]};
    if (ok && b->vt->compute(b->state, nodes, 1) != TSR_OK) {
        FAIL("%s on %s: compute: %s", c->name, b->d->name, tsr_last_error());
        ok = 0;
    }
    *out_n = nbytes(&c->t[0]);
    *out_host = malloc(*out_n);
    if (ok) {
        if (b->device)
            ok = b->vt->copy_to_host(b->state, *out_host, tt[0].data, *out_n) == TSR_OK;
        else
            memcpy(*out_host, tt[0].data, *out_n);
    }
    for (int i = 0; i < c->n; i++) {
        if (!buf[i])
            continue;
        if (b->device)
            b->vt->buffer_free(b->state, buf[i]);
        else
            free(buf[i]);
    }
    if (!ok && b->device)
        FAIL("%s on %s: device transfer: %s", c->name, b->d->name, tsr_last_error());
    return ok;
}

typedef struct group_stat {
    const char *name;
    int passed;
} group_stat;
static group_stat groups[32];
static int n_groups;

static void note_group(const char *g)
{
    for (int i = 0; i < n_groups; i++)
        if (!strcmp(groups[i].name, g)) {
            groups[i].passed++;
            return;
        }
    if (n_groups < 32)
        groups[n_groups++] = (group_stat){g, 1};
}

static void check_case(backend *ref, backend *b, tcase *c)
{
    if (!b->vt->supports(b->state, &c->t[0])) {
        printf("  %-52s declined (falls back)\n", c->name);
        n_declined++;
        case_free(c);
        return;
    }
    if (!ref->vt->supports(ref->state, &c->t[0])) {
        FAIL("%s: the cpu reference does not support it", c->name);
        case_free(c);
        return;
    }
    void *want = NULL, *got = NULL;
    size_t n = 0, n2 = 0;
    int ok = run_on(ref, c, &want, &n) && run_on(b, c, &got, &n2);
    n_run++;
    if (ok) {
        const float *w = want, *g = got;
        size_t cnt = n / 4;
        double ss = 0, md = 0;
        size_t bad = cnt, nonfinite = 0;
        for (size_t i = 0; i < cnt; i++)
            ss += (double)w[i] * w[i];
        double rms = sqrt(ss / (double)(cnt ? cnt : 1));
        for (size_t i = 0; i < cnt; i++) {
            if (!isfinite(g[i])) {
                nonfinite++;
                continue;
            }
            double d = fabs((double)g[i] - w[i]);
            if (d > md) {
                md = d;
                bad = i;
            }
        }
        double err = md / (rms + 1e-6);
        if (nonfinite || err > c->tol) {
            FAIL("%s: %zu non-finite outputs; max error %.3g of rms %.3g (tolerance %.1g) at "
                 "element %zu: got %.7g want %.7g", c->name, nonfinite, err, rms, c->tol, bad,
                 bad < cnt ? g[bad] : 0.0, bad < cnt ? w[bad] : 0.0);
        } else {
            printf("  %-52s ok (error %.2g, tolerance %.1g)\n", c->name, err, c->tol);
            note_group(c->group);
        }
    }
    free(want);
    free(got);
    case_free(c);
}

/* --- the cases ---------------------------------------------------------------- */

static const char *dtn(uint32_t dt)
{
    return dt == TSR_DTYPE_F32 ? "f32" : dt == TSR_DTYPE_F16 ? "f16" : "bf16";
}

static void case_mul_mat(backend *r, backend *b, uint32_t wdt, int64_t K, int64_t N, int64_t m1,
                         int64_t m2, int bias)
{
    tcase c = {.group = "mul_mat"};
    snprintf(c.name, sizeof c.name, "mul_mat %s W[%lld,%lld] x[%lld,%lld,%lld]%s", dtn(wdt),
             (long long)K, (long long)N, (long long)K, (long long)m1, (long long)m2,
             bias ? " +bias" : "");
    tsr_tensor *t = node(&c, TSR_OP_MUL_MAT, TSR_DTYPE_F32, N, m1, m2);
    tsr_tensor *w = mk(&c, wdt, K, N, 1, 1), *x = mk(&c, TSR_DTYPE_F32, K, m1, m2, 1);
    fill(w, 0.5);
    fill(x, 1.0);
    t->src[0] = w;
    t->src[1] = x;
    if (bias) {
        t->src[2] = mk(&c, TSR_DTYPE_F32, N, 1, 1, 1);
        fill(t->src[2], 1.0);
    }
    /* half-precision weights may run with half-precision activations */
    c.tol = wdt == TSR_DTYPE_F32 ? 1e-4 : 2e-2;
    check_case(r, b, &c);
}

static void case_get_rows(backend *r, backend *b, uint32_t dt)
{
    tcase c = {.group = "get_rows", .tol = 0};
    snprintf(c.name, sizeof c.name, "get_rows %s table[48,50] ids[7]", dtn(dt));
    tsr_tensor *t = node(&c, TSR_OP_GET_ROWS, TSR_DTYPE_F32, 48, 7, 1);
    tsr_tensor *tab = mk(&c, dt, 48, 50, 1, 1), *ids = mk(&c, TSR_DTYPE_I32, 7, 1, 1, 1);
    fill(tab, 2.0);
    for (int i = 0; i < 7; i++)
        ((int32_t *)ids->data)[i] = (int32_t)(urand() * 50);
    t->src[0] = tab;
    t->src[1] = ids;
    check_case(r, b, &c);
}

static void case_rms_norm(backend *r, backend *b, int64_t D, int64_t N, int wdt, float off)
{
    tcase c = {.group = "rms_norm", .tol = 1e-5};
    snprintf(c.name, sizeof c.name, "rms_norm x[%lld,%lld] weight %s offset %g", (long long)D,
             (long long)N, wdt < 0 ? "none" : dtn((uint32_t)wdt), off);
    tsr_tensor *t = node(&c, TSR_OP_RMS_NORM, TSR_DTYPE_F32, D, N, 1);
    tsr_tensor *x = mk(&c, TSR_DTYPE_F32, D, N, 1, 1);
    fill(x, 3.0);
    t->src[0] = x;
    if (wdt >= 0) {
        t->src[1] = mk(&c, (uint32_t)wdt, D, 1, 1, 1);
        fill(t->src[1], 1.0);
    }
    tsr_param_set_f(t->op_params, 0, 1e-5f);
    tsr_param_set_f(t->op_params, 1, off);
    check_case(r, b, &c);
}

static void case_rope(backend *r, backend *b, int mode, int64_t hd, int rot)
{
    tcase c = {.group = "rope", .tol = 2e-5};
    snprintf(c.name, sizeof c.name, "rope %s x[%lld,4,5] rot %d",
             mode ? "interleaved" : "rotate_half", (long long)hd, rot);
    tsr_tensor *t = node(&c, TSR_OP_ROPE, TSR_DTYPE_F32, hd, 4, 5);
    tsr_tensor *x = mk(&c, TSR_DTYPE_F32, hd, 4, 5, 1), *pos = mk(&c, TSR_DTYPE_I32, 5, 1, 1, 1);
    tsr_tensor *inv = mk(&c, TSR_DTYPE_F32, rot / 2, 1, 1, 1);
    fill(x, 1.0);
    for (int i = 0; i < 5; i++)
        ((int32_t *)pos->data)[i] = (int32_t)(urand() * 500);
    for (int i = 0; i < rot / 2; i++) /* Llama: base 10000 */
        ((float *)inv->data)[i] = (float)pow(10000.0, -2.0 * i / rot);
    t->src[0] = x;
    t->src[1] = pos;
    t->src[2] = inv;
    t->op_params[0] = mode;
    t->op_params[1] = rot;
    tsr_param_set_f(t->op_params, 2, 1.0f);
    check_case(r, b, &c);
}

static void case_softmax(backend *r, backend *b)
{
    tcase c = {.group = "softmax", .tol = 1e-5};
    snprintf(c.name, sizeof c.name, "softmax x[777,9]");
    tsr_tensor *t = node(&c, TSR_OP_SOFTMAX, TSR_DTYPE_F32, 777, 9, 1);
    t->src[0] = mk(&c, TSR_DTYPE_F32, 777, 9, 1, 1);
    fill(t->src[0], 8.0);
    check_case(r, b, &c);
}

static void case_attention(backend *r, backend *b, int64_t hd, int64_t H, int64_t Hkv,
                           int64_t N, int64_t p0, int window, float cap)
{
    tcase c = {.group = "attention", .tol = 2e-5};
    int64_t C = p0 + N + 3, kv_len = p0 + N;
    snprintf(c.name, sizeof c.name, "attention hd %lld H %lld/%lld N %lld at %lld win %d cap %g",
             (long long)hd, (long long)H, (long long)Hkv, (long long)N, (long long)p0, window,
             cap);
    tsr_tensor *t = node(&c, TSR_OP_ATTENTION, TSR_DTYPE_F32, hd, H, N);
    tsr_tensor *q = mk(&c, TSR_DTYPE_F32, hd, H, N, 1), *k = mk(&c, TSR_DTYPE_F32, hd, Hkv, C, 1);
    tsr_tensor *v = mk(&c, TSR_DTYPE_F32, hd, Hkv, C, 1), *pos = mk(&c, TSR_DTYPE_I32, N, 1, 1, 1);
    fill(q, 2.0);
    fill(k, 2.0);
    fill(v, 1.0);
    for (int64_t i = 0; i < N; i++)
        ((int32_t *)pos->data)[i] = (int32_t)(p0 + i);
    t->src[0] = q; t->src[1] = k; t->src[2] = v; t->src[3] = pos;
    t->op_params[0] = (int32_t)kv_len;
    tsr_param_set_f(t->op_params, 1, (float)(1.0 / sqrt((double)hd)));
    t->op_params[2] = window;
    tsr_param_set_f(t->op_params, 3, cap);
    check_case(r, b, &c);
}

static void case_unary(backend *r, backend *b, tsr_op op, const char *name, int p0)
{
    tcase c = {.group = "unary", .tol = 1e-5};
    snprintf(c.name, sizeof c.name, "%s x[65,3,2]", name);
    tsr_tensor *t = node(&c, op, TSR_DTYPE_F32, 65, 3, 2);
    t->src[0] = mk(&c, TSR_DTYPE_F32, 65, 3, 2, 1);
    fill(t->src[0], 4.0);
    t->op_params[0] = p0;
    if (op == TSR_OP_SCALE)
        tsr_param_set_f(t->op_params, 0, 0.37f);
    check_case(r, b, &c);
}

static void case_binary(backend *r, backend *b, tsr_op op, const char *name, int64_t b0,
                        int64_t b1, int64_t b2, uint32_t bdt)
{
    tcase c = {.group = (op == TSR_OP_ADD || op == TSR_OP_MUL) ? "binary" : "gated",
               .tol = 1e-5};
    snprintf(c.name, sizeof c.name, "%s x[65,3,2] y[%lld,%lld,%lld] %s", name, (long long)b0,
             (long long)b1, (long long)b2, dtn(bdt));
    tsr_tensor *t = node(&c, op, TSR_DTYPE_F32, 65, 3, 2);
    t->src[0] = mk(&c, TSR_DTYPE_F32, 65, 3, 2, 1);
    t->src[1] = mk(&c, bdt, b0, b1, b2, 1);
    fill(t->src[0], 4.0);
    fill(t->src[1], 2.0);
    t->op_params[0] = op == TSR_OP_GEGLU; /* GeGLU: the tanh approximation */
    check_case(r, b, &c);
}

static void case_kv_store(backend *r, backend *b)
{
    tcase c = {.group = "kv_store", .tol = 0};
    snprintf(c.name, sizeof c.name, "kv_store new[64,2,3] -> cache[64,2,20] at 5");
    tsr_tensor *t = node(&c, TSR_OP_KV_STORE, TSR_DTYPE_F32, 64, 2, 20);
    tsr_tensor *x = mk(&c, TSR_DTYPE_F32, 64, 2, 3, 1), *cache = mk(&c, TSR_DTYPE_F32, 64, 2, 20, 1);
    fill(x, 1.0);
    fill(cache, 1.0);
    t->src[0] = x;
    t->src[1] = cache;
    t->op_params[0] = 5;
    check_case(r, b, &c);
}

static void run_all(backend *r, backend *b)
{
    static const uint32_t fdt[3] = {TSR_DTYPE_F32, TSR_DTYPE_F16, TSR_DTYPE_BF16};
    for (int i = 0; i < 3; i++) {
        case_mul_mat(r, b, fdt[i], 320, 96, 1, 1, 0);
        case_mul_mat(r, b, fdt[i], 320, 96, 7, 1, 1);
        case_mul_mat(r, b, fdt[i], 320, 96, 8, 1, 0);
        case_mul_mat(r, b, fdt[i], 333, 70, 11, 3, 1);
        case_mul_mat(r, b, fdt[i], 1024, 512, 64, 1, 0);
        case_get_rows(r, b, fdt[i]);
    }
    case_rms_norm(r, b, 100, 6, TSR_DTYPE_F32, 0.0f);
    case_rms_norm(r, b, 1000, 3, TSR_DTYPE_BF16, 1.0f);
    case_rms_norm(r, b, 64, 2, -1, 0.0f);
    case_rope(r, b, 0, 64, 64);
    case_rope(r, b, 1, 64, 64);
    case_rope(r, b, 0, 96, 32);
    case_rope(r, b, 1, 80, 40);
    case_softmax(r, b);
    case_attention(r, b, 64, 8, 2, 6, 0, 0, 0.0f);     /* prefill, GQA */
    case_attention(r, b, 64, 8, 2, 1, 29, 0, 0.0f);    /* decode */
    case_attention(r, b, 128, 4, 4, 5, 10, 4, 0.0f);   /* sliding window */
    case_attention(r, b, 80, 6, 1, 3, 100, 0, 30.0f);  /* MQA, softcap, hd % 32 != 0 */
    case_attention(r, b, 256, 2, 1, 40, 0, 0, 0.0f);   /* long prefill, big heads */
    case_unary(r, b, TSR_OP_SILU, "silu", 0);
    case_unary(r, b, TSR_OP_GELU, "gelu erf", 0);
    case_unary(r, b, TSR_OP_GELU, "gelu tanh", 1);
    case_unary(r, b, TSR_OP_SCALE, "scale", 0);
    case_unary(r, b, TSR_OP_SIGMOID, "sigmoid", 0);
    case_unary(r, b, TSR_OP_TANH, "tanh", 0);
    case_unary(r, b, TSR_OP_RELU, "relu", 0);
    case_binary(r, b, TSR_OP_SWIGLU, "swiglu", 65, 3, 2, TSR_DTYPE_F32);
    case_binary(r, b, TSR_OP_GEGLU, "geglu", 65, 3, 2, TSR_DTYPE_F32);
    case_binary(r, b, TSR_OP_ADD, "add", 65, 3, 2, TSR_DTYPE_F32);
    case_binary(r, b, TSR_OP_ADD, "add row", 65, 1, 1, TSR_DTYPE_F32);
    case_binary(r, b, TSR_OP_ADD, "add column", 1, 3, 2, TSR_DTYPE_F32);
    case_binary(r, b, TSR_OP_MUL, "mul", 65, 3, 2, TSR_DTYPE_F32);
    case_binary(r, b, TSR_OP_MUL, "mul row bf16", 65, 1, 1, TSR_DTYPE_BF16);
    case_binary(r, b, TSR_OP_MUL, "mul plane f16", 65, 3, 1, TSR_DTYPE_F16);
    case_kv_store(r, b);
}

/* --- benchmark ---------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* best-of-5 time of one MUL_MAT node on b (data already placed) */
static double time_node(backend *b, tsr_tensor *t)
{
    tsr_tensor *nodes[1] = {t};
    double best = 1e30;
    for (int rep = 0; rep < 6; rep++) {
        double t0 = now_s();
        if (b->vt->compute(b->state, nodes, 1) != TSR_OK)
            return -1;
        double dt = now_s() - t0;
        if (rep > 0 && dt < best) /* the first run builds caches */
            best = dt;
    }
    return best;
}

static double bench_one(backend *b, uint32_t wdt, int64_t K, int64_t N, int64_t M)
{
    tcase c = {.group = "bench"};
    snprintf(c.name, sizeof c.name, "bench");
    tsr_tensor *t = node(&c, TSR_OP_MUL_MAT, TSR_DTYPE_F32, N, M, 1);
    tsr_tensor *w = mk(&c, wdt, K, N, 1, 1), *x = mk(&c, TSR_DTYPE_F32, K, M, 1, 1);
    fill(w, 0.5);
    fill(x, 1.0);
    t->src[0] = w;
    t->src[1] = x;
    double s = -2;
    if (!b->vt->supports(b->state, t)) {
        s = -2;
    } else if (b->device) {
        void *bufs[3] = {0};
        tsr_tensor *ts[3] = {t, w, x};
        int ok = 1;
        for (int i = 0; i < 3 && ok; i++)
            ok = b->vt->buffer_alloc(b->state, nbytes(ts[i]), &bufs[i]) == TSR_OK &&
                 b->vt->copy_to_device(b->state, bufs[i], ts[i]->data, nbytes(ts[i])) == TSR_OK;
        tsr_tensor tt = *t, tw = *w, tx = *x;
        tt.data = bufs[0]; tw.data = bufs[1]; tx.data = bufs[2];
        tt.src[0] = &tw; tt.src[1] = &tx;
        s = ok ? time_node(b, &tt) : -1;
        for (int i = 0; i < 3; i++)
            if (bufs[i])
                b->vt->buffer_free(b->state, bufs[i]);
    } else {
        s = time_node(b, t);
    }
    case_free(&c);
    return s;
}

static void bench(backend *r, backend *b, int64_t K, int64_t N)
{
    static const int64_t ms[] = {1, 2, 4, 8, 16, 32, 64, 128, 512};
    static const uint32_t dts[] = {TSR_DTYPE_F32, TSR_DTYPE_BF16, TSR_DTYPE_F16};
    printf("matmul y[%lld, M] = x[%lld, M] W^T: GFLOP/s (best of 5), cpu vs %s\n", (long long)N,
           (long long)K, b->d->name);
    printf("%-5s %5s %10s %10s %8s\n", "W", "M", "cpu", b->d->name, "speedup");
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
        for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
            double fl = 2.0 * (double)K * (double)N * (double)ms[i] * 1e-9;
            double tr = bench_one(r, dts[d], K, N, ms[i]), tb = bench_one(b, dts[d], K, N, ms[i]);
            if (tb == -2) {
                printf("%-5s %5lld %10.1f %10s\n", dtn(dts[d]), (long long)ms[i], fl / tr,
                       "declined");
                continue;
            }
            printf("%-5s %5lld %10.1f %10.1f %8.2f\n", dtn(dts[d]), (long long)ms[i], fl / tr,
                   fl / tb, tr / tb);
        }
}

/* --- main ----------------------------------------------------------------------- */

static int no_device(const char *path)
{
    const tsr_plugin_desc *d = load(path);
    if (!d) {
        FAIL("%s does not load: a GPU plugin must load on a machine without the GPU", path);
        return 1;
    }
    char why[512] = "";
    int ok = d->probe ? d->probe(HOST, why, sizeof why) : 1;
    printf("%s probe: %d: %s\n", d->name, ok, why);
    if (ok)
        FAIL("%s: probe() says usable, but this test expects a machine without its device", d->name);
    size_t len = strlen(why);
    if (len < 20 || len >= sizeof why - 1 || why[len - 1] == '\n')
        FAIL("%s: probe() must give one sentence, got \"%s\"", d->name, why);
    const tsr_backend_vtable *vt = d->vtable;
    void *state = NULL;
    tsr_backend_options opt = {sizeof opt, 0, 0};
    tsr_status st = vt->create(HOST, &opt, &state);
    if (st == TSR_OK) {
        FAIL("%s: create() succeeded without a device", d->name);
        vt->destroy(state);
    } else {
        printf("%s create: %s (%s)\n", d->name, tsr_strerror(st), tsr_last_error());
        if (st != TSR_ERR_DEVICE)
            FAIL("%s: create() without a device returned %d, want TSR_ERR_DEVICE", d->name, st);
    }
    printf("kernel_test: %s: no-device path checked, %d failures\n", d->name, failures);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s <cpu.so> <backend.so> [--require ops | --expect-no-device | "
                "--bench [K N]]\n", argv[0]);
        return 2;
    }
    HOST = tsr__host();
    const char *seed = getenv("TESSERA_TEST_SEED");
    rng_state = seed && *seed ? strtoull(seed, NULL, 10)
                              : (unsigned long long)time(NULL) ^ ((unsigned long long)clock() << 20);
    if (argc > 3 && !strcmp(argv[3], "--expect-no-device"))
        return no_device(argv[2]);
    printf("kernel_test: seed %llu (TESSERA_TEST_SEED to repeat)\n", rng_state);
    backend ref, b;
    if (!backend_open(&ref, argv[1]) || !backend_open(&b, argv[2]))
        return 1;
    if (argc > 3 && !strcmp(argv[3], "--bench")) {
        int64_t K = argc > 5 ? atoll(argv[4]) : 2048, N = argc > 5 ? atoll(argv[5]) : 2048;
        bench(&ref, &b, K, N);
    } else {
        run_all(&ref, &b);
        if (argc > 4 && !strcmp(argv[3], "--require")) {
            char *list = strdup(argv[4]);
            for (char *s = strtok(list, ","); s; s = strtok(NULL, ",")) {
                int found = 0;
                for (int i = 0; i < n_groups; i++)
                    found |= !strcmp(groups[i].name, s);
                if (!found)
                    FAIL("%s: no %s case was accepted and passed", b.d->name, s);
            }
            free(list);
        }
        printf("kernel_test: %s: %d cases run, %d declined, %d failures\n", b.d->name, n_run,
               n_declined, failures);
    }
    b.vt->destroy(b.state);
    ref.vt->destroy(ref.state);
    return failures ? 1 : 0;
}
