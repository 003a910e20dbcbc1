/* backends/onednn/onednn.c - the oneDNN (libdnnl 2.x) backend plugin.
 *
 * It claims one op, TSR_OP_MUL_MAT (y = x W^T + b, torch.nn.Linear), for
 * f32 and bf16 weights with f32 activations, and only when x has at least
 * TSR_ONEDNN_MIN_ROWS rows: prefill and batched work.  Everything else -
 * decode's single-row GEMV above all, where oneDNN's matmul is slower than
 * the cpu backend's - is declined in supports() and falls back per op to
 * the next backend in the `backends:` list.
 *
 * bf16 weights run as bf16 x bf16 -> f32 (activations rounded to bf16 here,
 * as torch does for a bf16 nn.Linear); oneDNN picks AMX or AVX512-BF16
 * kernels where the CPU has them.  Primitives are created once per shape
 * (K, N, M, weight dtype, bias dtype) and cached; each call only rebinds the
 * data pointers.
 *
 * Thread-safety: one backend state is used by one thread at a time (the
 * core's scheduler); separate states are independent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cpuid.h>
#include <dnnl.h>
#include <tessera/plugin/plugin.h>

/* The smallest number of activation rows (M, tokens in a batch) for which
 * supports() takes a MUL_MAT.  Measured with `tessera-kernel-test <cpu.so>
 * <onednn.so> --bench 4096 4096` (tests/kernels; f32 weights, 64 MiB, so
 * memory-bound as decode is) on this project's 2-core AVX2 build machine
 * (AMD EPYC, oneDNN 2.6.3), three runs under load, oneDNN vs the cpu
 * backend: M = 1: 0.4-1.4x, M = 2: 0.7-1.0x, M = 4: 1.2-1.3x, M = 8:
 * 1.5-2.2x, M = 16: 1.8-2.7x, M = 64: 2.2-4.8x.  8 is the first row count
 * that won in every run; decode (M = 1) stays on the cpu backend's GEMV.
 * The environment variable TESSERA_ONEDNN_MIN_ROWS overrides it (the tests
 * use 1 to send every matmul through oneDNN). */
#define TSR_ONEDNN_MIN_ROWS 8

static const tsr_host *g_host;

typedef struct mm_prim {
    int64_t K, N, M;
    uint32_t wdt;             /* TSR_DTYPE_F32 or TSR_DTYPE_BF16          */
    int32_t bdt;              /* bias dtype, -1 = no bias                 */
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, bias, dst;
} mm_prim;

typedef struct onednn_ctx {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    mm_prim *cache;           /* one entry per shape seen                 */
    size_t n_cache, cap_cache;
    uint16_t *xbf16;          /* activations rounded to bf16              */
    size_t xbf16_len;
    int64_t min_rows;
    int bf16_ok;              /* this CPU has a bf16 matmul in oneDNN     */
} onednn_ctx;

/* --- CPU features ------------------------------------------------------------ */

static unsigned long long xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

/* AVX2 usable: the CPU has it (CPUID) and the OS saves YMM state (XGETBV). */
static int have_avx2(char *why, size_t len)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX)) {
        snprintf(why, len, "the CPU lacks AVX (or XSAVE), and oneDNN needs AVX2 here");
        return 0;
    }
    if ((xgetbv0() & 0x6) != 0x6) {
        snprintf(why, len, "the operating system does not enable AVX state (XGETBV), so "
                 "AVX2 cannot be used");
        return 0;
    }
    if (__get_cpuid_max(0, NULL) < 7) {
        snprintf(why, len, "the CPU lacks AVX2 (no CPUID leaf 7)");
        return 0;
    }
    __cpuid_count(7, 0, a, b, c, d);
    if (!(b & bit_AVX2)) {
        snprintf(why, len, "the CPU lacks AVX2, which this oneDNN backend requires");
        return 0;
    }
    return 1;
}

static const char *isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

static int onednn_probe(const tsr_host *host, char *why, size_t len)
{
    (void)host;
    const dnnl_version_t *v = dnnl_version();
    if (!v || v->major < 2) {
        snprintf(why, len, "libdnnl reports version %d, but this backend needs oneDNN 2.x",
                 v ? v->major : -1);
        return 0;
    }
    return have_avx2(why, len);
}

/* --- supports ------------------------------------------------------------------ */

static int rows_contiguous(const tsr_tensor *t, size_t esz)
{
    return t->nb[0] == esz && t->nb[1] == esz * (size_t)t->ne[0] &&
           t->nb[2] == t->nb[1] * (size_t)t->ne[1] && t->ne[3] == 1;
}

static int onednn_supports(void *state, const tsr_tensor *n)
{
    onednn_ctx *c = state;
    if (n->op != TSR_OP_MUL_MAT)
        return 0;
    const tsr_tensor *w = n->src[0], *x = n->src[1], *b = n->src[2];
    if (!w || !x || x->dtype != TSR_DTYPE_F32 || n->dtype != TSR_DTYPE_F32)
        return 0;
    if (w->dtype != TSR_DTYPE_F32 && !(w->dtype == TSR_DTYPE_BF16 && c->bf16_ok))
        return 0;
    if (w->ne[2] != 1 || w->ne[3] != 1 || x->ne[0] != w->ne[0] || n->ne[0] != w->ne[1])
        return 0;
    size_t wsz = w->dtype == TSR_DTYPE_F32 ? 4 : 2;
    if (w->nb[0] != wsz || w->nb[1] != wsz * (size_t)w->ne[0])
        return 0;
    if (!rows_contiguous(x, 4) || !rows_contiguous(n, 4) || n->ne[1] != x->ne[1] ||
        n->ne[2] != x->ne[2])
        return 0;
    if (b) {
        /* f32 matmul takes an f32 bias; bf16 matmul an f32 or bf16 one */
        int ok = b->dtype == TSR_DTYPE_F32 ||
                 (b->dtype == TSR_DTYPE_BF16 && w->dtype == TSR_DTYPE_BF16);
        if (!ok || b->ne[0] != w->ne[1] || tsr_tensor_nelements(b) != b->ne[0] ||
            b->nb[0] != (b->dtype == TSR_DTYPE_F32 ? 4u : 2u))
            return 0;
    }
    return x->ne[1] * x->ne[2] >= c->min_rows;
}

/* --- primitives ------------------------------------------------------------------ */

static void prim_release(mm_prim *p)
{
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->src) dnnl_memory_destroy(p->src);
    if (p->wei) dnnl_memory_destroy(p->wei);
    if (p->bias) dnnl_memory_destroy(p->bias);
    if (p->dst) dnnl_memory_destroy(p->dst);
    memset(p, 0, sizeof *p);
}

static dnnl_data_type_t dnnl_dt(uint32_t t)
{
    return t == TSR_DTYPE_BF16 ? dnnl_bf16 : dnnl_f32;
}

/* Build the matmul  dst[M, N] = src[M, K] * wei[K, N] + bias[1, N];  W is
 * stored as N rows of K (torch's [out, in]), i.e. wei in "ba" order. */
static tsr_status prim_build(onednn_ctx *c, mm_prim *p)
{
    dnnl_memory_desc_t src_md, wei_md, bias_md, dst_md;
    dnnl_dims_t sd = {p->M, p->K}, wd = {p->K, p->N}, bd = {1, p->N}, dd = {p->M, p->N};
    dnnl_data_type_t adt = dnnl_dt(p->wdt);
    dnnl_matmul_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_tag(&src_md, 2, sd, adt, dnnl_ab)) ||
        (s = dnnl_memory_desc_init_by_tag(&wei_md, 2, wd, adt, dnnl_ba)) ||
        (s = dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab)) ||
        (p->bdt >= 0 &&
         (s = dnnl_memory_desc_init_by_tag(&bias_md, 2, bd, dnnl_dt((uint32_t)p->bdt), dnnl_ab))) ||
        (s = dnnl_matmul_desc_init(&desc, &src_md, &wei_md, p->bdt >= 0 ? &bias_md : NULL,
                                   &dst_md)) ||
        (s = dnnl_primitive_desc_create(&pd, &desc, NULL, c->engine, NULL)) ||
        (s = dnnl_primitive_create(&p->prim, pd)) ||
        (s = dnnl_memory_create(&p->src, &src_md, c->engine, DNNL_MEMORY_NONE)) ||
        (s = dnnl_memory_create(&p->wei, &wei_md, c->engine, DNNL_MEMORY_NONE)) ||
        (s = dnnl_memory_create(&p->dst, &dst_md, c->engine, DNNL_MEMORY_NONE)) ||
        (p->bdt >= 0 && (s = dnnl_memory_create(&p->bias, &bias_md, c->engine, DNNL_MEMORY_NONE)))) {
        tsr_status st = g_host->set_error(TSR_ERR_UNSUPPORTED,
                                 "onednn: cannot create a matmul primitive for K=%lld N=%lld "
                                 "M=%lld (%s weights): dnnl status %d",
                                 (long long)p->K, (long long)p->N, (long long)p->M,
                                 g_host->dtype_name(p->wdt), (int)s);
        if (pd)
            dnnl_primitive_desc_destroy(pd);
        prim_release(p);
        return st;
    }
    dnnl_primitive_desc_destroy(pd);
    return TSR_OK;
}

static tsr_status prim_get(onednn_ctx *c, const mm_prim *key, mm_prim **out)
{
    for (size_t i = 0; i < c->n_cache; i++) {
        mm_prim *p = &c->cache[i];
        if (p->K == key->K && p->N == key->N && p->M == key->M && p->wdt == key->wdt &&
            p->bdt == key->bdt) {
            *out = p;
            return TSR_OK;
        }
    }
    if (c->n_cache == c->cap_cache) {
        size_t cap = c->cap_cache ? 2 * c->cap_cache : 16;
        mm_prim *nc = realloc(c->cache, cap * sizeof *nc);
        if (!nc)
            return g_host->set_error(TSR_ERR_NOMEM, "onednn: out of memory for the primitive cache");
        c->cache = nc;
        c->cap_cache = cap;
    }
    mm_prim *p = &c->cache[c->n_cache];
    *p = *key;
    p->prim = NULL;
    p->src = p->wei = p->bias = p->dst = NULL;
    tsr_status st = prim_build(c, p);
    if (st)
        return st;
    c->n_cache++;
    *out = p;
    return TSR_OK;
}

/* f32 -> bf16, round to nearest even (NaN kept quiet), as torch's .to(bfloat16). */
static void to_bf16(const float *x, uint16_t *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7fffffffu) > 0x7f800000u)
            y[i] = (uint16_t)((u >> 16) | 0x40u);
        else
            y[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
}

static tsr_status run_mul_mat(onednn_ctx *c, tsr_tensor *t)
{
    const tsr_tensor *w = t->src[0], *x = t->src[1], *b = t->src[2];
    mm_prim key = {.K = w->ne[0], .N = w->ne[1], .M = x->ne[1] * x->ne[2], .wdt = w->dtype,
                   .bdt = b ? (int32_t)b->dtype : -1};
    mm_prim *p = NULL;
    tsr_status st = prim_get(c, &key, &p);
    if (st)
        return st;
    void *src = x->data;
    if (w->dtype == TSR_DTYPE_BF16) {
        size_t n = (size_t)key.M * (size_t)key.K;
        if (n > c->xbf16_len) {
            free(c->xbf16);
            c->xbf16 = malloc(n * sizeof *c->xbf16);
            c->xbf16_len = c->xbf16 ? n : 0;
            if (!c->xbf16)
                return g_host->set_error(TSR_ERR_NOMEM, "onednn: out of memory converting '%s' "
                                         "to bf16", x->name ? x->name : "?");
        }
        to_bf16(x->data, c->xbf16, n);
        src = c->xbf16;
    }
    dnnl_memory_set_data_handle(p->src, src);
    dnnl_memory_set_data_handle(p->wei, w->data);
    dnnl_memory_set_data_handle(p->dst, t->data);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->src}, {DNNL_ARG_WEIGHTS, p->wei},
                               {DNNL_ARG_DST, p->dst}, {DNNL_ARG_BIAS, p->bias}};
    if (b)
        dnnl_memory_set_data_handle(p->bias, b->data);
    dnnl_status_t s = dnnl_primitive_execute(p->prim, c->stream, b ? 4 : 3, args);
    if (s == dnnl_success)
        s = dnnl_stream_wait(c->stream);
    if (s != dnnl_success)
        return g_host->set_error(TSR_ERR_INTERNAL, "onednn: matmul '%s' failed: dnnl status %d",
                                 t->name ? t->name : "?", (int)s);
    return TSR_OK;
}

static tsr_status onednn_compute(void *state, tsr_tensor *const *nodes, int n)
{
    onednn_ctx *c = state;
    for (int i = 0; i < n; i++) {
        if (nodes[i]->op != TSR_OP_MUL_MAT)
            return g_host->set_error(TSR_ERR_UNSUPPORTED, "onednn: node '%s' has op %u, which "
                                     "this backend does not run", nodes[i]->name, nodes[i]->op);
        tsr_status st = run_mul_mat(c, nodes[i]);
        if (st)
            return st;
    }
    return TSR_OK;
}

/* --- lifecycle ------------------------------------------------------------------- */

static void onednn_destroy(void *state)
{
    onednn_ctx *c = state;
    if (!c)
        return;
    for (size_t i = 0; i < c->n_cache; i++)
        prim_release(&c->cache[i]);
    free(c->cache);
    free(c->xbf16);
    if (c->stream)
        dnnl_stream_destroy(c->stream);
    if (c->engine)
        dnnl_engine_destroy(c->engine);
    free(c);
}

static tsr_status onednn_create(const tsr_host *host, const tsr_backend_options *opt, void **state)
{
    (void)opt; /* oneDNN threads through OpenMP (OMP_NUM_THREADS) */
    onednn_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return host->set_error(TSR_ERR_NOMEM, "onednn: out of memory");
    c->min_rows = TSR_ONEDNN_MIN_ROWS;
    const char *env = getenv("TESSERA_ONEDNN_MIN_ROWS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end || v < 1) {
            free(c);
            return host->set_error(TSR_ERR_CONFIG, "onednn: TESSERA_ONEDNN_MIN_ROWS='%s' is not "
                                   "a positive integer", env);
        }
        c->min_rows = v;
    }
    dnnl_status_t s = dnnl_engine_create(&c->engine, dnnl_cpu, 0);
    if (s == dnnl_success)
        s = dnnl_stream_create(&c->stream, c->engine, dnnl_stream_default_flags);
    if (s != dnnl_success) {
        onednn_destroy(c);
        return host->set_error(TSR_ERR_DEVICE, "onednn: cannot create the CPU engine/stream "
                               "(dnnl status %d)", (int)s);
    }
    /* oneDNN 2.x implements bf16 matmul only from AVX512-core on (AMX,
     * AVX512-BF16, or emulated on AVX512); on an AVX2-only CPU bf16 weights
     * stay with the next backend. */
    mm_prim probe_bf16 = {.K = 32, .N = 32, .M = 32, .wdt = TSR_DTYPE_BF16, .bdt = -1};
    if (prim_build(c, &probe_bf16) == TSR_OK) {
        c->bf16_ok = 1;
        prim_release(&probe_bf16);
    }
    *state = c;
    return TSR_OK;
}

static int onednn_device_count(void *state) { (void)state; return 1; }

static tsr_status onednn_device_info(void *state, int dev, tsr_device_info *out)
{
    if (dev != 0)
        return g_host->set_error(TSR_ERR_INVALID_ARG, "onednn: no device %d", dev);
    const dnnl_version_t *v = dnnl_version();
    memset(out->name, 0, sizeof out->name);
    snprintf(out->name, sizeof out->name, "cpu (oneDNN %d.%d.%d, %s%s)", v->major, v->minor,
             v->patch, isa_name(dnnl_get_effective_cpu_isa()),
             ((onednn_ctx *)state)->bf16_ok ? ", bf16" : ", no bf16 matmul");
    memset(out->kind, 0, sizeof out->kind);
    strcpy(out->kind, "cpu");
    out->total_memory = 0;
    out->free_memory = 0;
    out->host_memory = 1;
    return TSR_OK;
}

static const tsr_backend_vtable onednn_vtable = {
    .struct_size = sizeof(tsr_backend_vtable),
    .create = onednn_create,
    .destroy = onednn_destroy,
    .device_count = onednn_device_count,
    .device_info = onednn_device_info,
    .supports = onednn_supports,
    .compute = onednn_compute,
};

static const tsr_plugin_desc onednn_desc = TSR_PLUGIN_DESC_INIT(
    TSR_PLUGIN_BACKEND, "onednn", "0.1.0",
    "oneDNN matmul (f32, bf16 with AMX) for prefill; other ops fall back", onednn_probe,
    &onednn_vtable);

TSR_PLUGIN_DEFINE_ENTRY
{
    g_host = host;
    return &onednn_desc;
}
