/* tests/plugins/fakedev/fakedev.c - a test-only backend with "device
 * memory" (never installed).
 *
 * It reports one device with host_memory = 0 and TESSERA_FAKEDEV_MEMORY
 * bytes (a size such as 4MiB; default 1GiB).  Its buffers come from its own
 * pool: malloc'd blocks registered in a table, and an allocation past the
 * device's size fails as a real device would.  Every data pointer of every
 * node it computes (inputs, weights, KV cache, output) must lie inside one
 * of those blocks, and copy_to_device/copy_to_host check their sides too: a
 * missing copy or a weight left in host memory fails the run with an error
 * naming the tensor, where a real GPU would crash or read garbage.
 *
 * It runs a subset of ops with plain C loops (MUL_MAT on F32/F16 weights,
 * ADD, MUL, RMS_NORM, SILU, SWIGLU, KV_STORE, ATTENTION), so that in a Llama
 * graph GET_ROWS and ROPE fall back to the cpu backend and activations cross
 * between the memories in both directions every layer.
 *
 * TESSERA_FAKEDEV_STATS=<file>: append one line of counters at destroy
 * ("nodes=.. uploads=.. up_bytes=.. downloads=.. down_bytes=.. peak=..").
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tessera/plugin/plugin.h>

static const tsr_host *H;

typedef struct block { char *p; size_t size; } block;

typedef struct fake {
    block *blocks;
    size_t n, cap;
    size_t total, used, peak;
    unsigned long long nodes, uploads, up_bytes, downloads, down_bytes;
} fake;

static size_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    double mul = 1;
    if (!strcmp(end, "KiB") || !strcmp(end, "K")) mul = 1024.0;
    else if (!strcmp(end, "MiB") || !strcmp(end, "M")) mul = 1024.0 * 1024.0;
    else if (!strcmp(end, "GiB") || !strcmp(end, "G")) mul = 1024.0 * 1024.0 * 1024.0;
    return v > 0 ? (size_t)(v * mul) : 0;
}

/* the block holding [p, p + n), or NULL */
static const block *find(const fake *f, const void *p, size_t n)
{
    const char *c = p;
    for (size_t i = 0; i < f->n; i++)
        if (c >= f->blocks[i].p && c + n <= f->blocks[i].p + f->blocks[i].size)
            return &f->blocks[i];
    return NULL;
}

static size_t span(const tsr_tensor *t)
{
    size_t es = H->dtype_size(t->dtype);
    if (es == 0 || t->nb[0] == 0)
        return t->nb[1] * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
    size_t s = es;
    for (int d = 0; d < TSR_MAX_DIMS; d++)
        s += (size_t)(t->ne[d] - 1) * t->nb[d];
    return s;
}

/* --- the pointer checks ------------------------------------------------------------ */

static tsr_status check(const fake *f, const tsr_tensor *node, const tsr_tensor *t, int which)
{
    if (t->data && find(f, t->data, span(t)))
        return TSR_OK;
    if (which < 0)
        return H->set_error(TSR_ERR_DEVICE, "fakedev: the output of node '%s' at %p is not in "
                            "fakedev memory (the core gave it host memory)", node->name, t->data);
    return H->set_error(TSR_ERR_DEVICE, "fakedev: input %d ('%s') of node '%s' at %p is not in "
                        "fakedev memory (a missing copy or a weight not uploaded)", which,
                        t->name ? t->name : "?", node->name, t->data);
}

/* --- kernels (plain C, double accumulation) ----------------------------------------- */

static float ld(const tsr_tensor *t, const char *p)
{
    if (t->dtype == TSR_DTYPE_F16)
        return H->f16_to_f32(*(const uint16_t *)p);
    if (t->dtype == TSR_DTYPE_BF16)
        return H->bf16_to_f32(*(const uint16_t *)p);
    return *(const float *)p;
}

static float *at(const tsr_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3)
{
    return (float *)((char *)t->data + i0 * (int64_t)t->nb[0] + i1 * (int64_t)t->nb[1] +
                     i2 * (int64_t)t->nb[2] + i3 * (int64_t)t->nb[3]);
}

/* element of a broadcast operand (dimensions of size 1 repeat) */
static float bcast(const tsr_tensor *b, int64_t i0, int64_t i1, int64_t i2, int64_t i3)
{
    return ld(b, (const char *)at(b, b->ne[0] == 1 ? 0 : i0, b->ne[1] == 1 ? 0 : i1,
                                  b->ne[2] == 1 ? 0 : i2, b->ne[3] == 1 ? 0 : i3));
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

static void eltwise(tsr_tensor *t)
{
    const tsr_tensor *a = t->src[0], *b = t->src[1];
    for (int64_t i3 = 0; i3 < t->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < t->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < t->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < t->ne[0]; i0++) {
                    float x = *at(a, i0, i1, i2, i3), y = 0.0f;
                    switch (t->op) {
                    case TSR_OP_ADD: y = x + bcast(b, i0, i1, i2, i3); break;
                    case TSR_OP_MUL: y = x * bcast(b, i0, i1, i2, i3); break;
                    case TSR_OP_SILU: y = silu(x); break;
                    case TSR_OP_SWIGLU: y = silu(x) * *at(b, i0, i1, i2, i3); break;
                    default: break;
                    }
                    *at(t, i0, i1, i2, i3) = y;
                }
}

static void rms_norm(tsr_tensor *t)
{
    const tsr_tensor *x = t->src[0], *w = t->src[1];
    float eps = tsr_param_f(t, 0), add = tsr_param_f(t, 1);
    for (int64_t r = 0; r < x->ne[1] * x->ne[2]; r++) {
        int64_t i1 = r % x->ne[1], i2 = r / x->ne[1];
        double ss = 0;
        for (int64_t i = 0; i < x->ne[0]; i++) {
            double v = *at(x, i, i1, i2, 0);
            ss += v * v;
        }
        float scale = (float)(1.0 / sqrt(ss / (double)x->ne[0] + eps));
        for (int64_t i = 0; i < x->ne[0]; i++) {
            float v = *at(x, i, i1, i2, 0) * scale;
            if (w)
                v *= ld(w, (const char *)w->data + i * (int64_t)w->nb[0]) + add;
            *at(t, i, i1, i2, 0) = v;
        }
    }
}

static void mul_mat(tsr_tensor *t)
{
    const tsr_tensor *w = t->src[0], *x = t->src[1], *b = t->src[2];
    int64_t K = w->ne[0], N = w->ne[1], M = x->ne[1] * x->ne[2];
    for (int64_t m = 0; m < M; m++) {
        const float *xr = at(x, 0, m % x->ne[1], m / x->ne[1], 0);
        for (int64_t n = 0; n < N; n++) {
            const char *wr = (const char *)w->data + n * (int64_t)w->nb[1];
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)ld(w, wr + k * (int64_t)w->nb[0]) * xr[k];
            if (b)
                acc += ld(b, (const char *)b->data + n * (int64_t)b->nb[0]);
            *at(t, n, m % t->ne[1], m / t->ne[1], 0) = (float)acc;
        }
    }
}

static void kv_store(tsr_tensor *t)
{
    const tsr_tensor *s = t->src[0], *c = t->src[1];
    int64_t p0 = tsr_param_i(t, 0);
    for (int64_t i2 = 0; i2 < s->ne[2]; i2++)
        for (int64_t i1 = 0; i1 < s->ne[1]; i1++)
            for (int64_t i0 = 0; i0 < s->ne[0]; i0++)
                *at(c, i0, i1, p0 + i2, 0) = *at(s, i0, i1, i2, 0);
}

/* causal softmax(q k^T * scale) v with GQA, window and softcap */
static tsr_status attention(tsr_tensor *t)
{
    const tsr_tensor *q = t->src[0], *k = t->src[1], *v = t->src[2], *pos = t->src[3];
    int64_t kv_len = tsr_param_i(t, 0), window = tsr_param_i(t, 2);
    float scale = tsr_param_f(t, 1), cap = tsr_param_f(t, 3);
    int64_t hd = q->ne[0], H_ = q->ne[1], group = H_ / k->ne[1];
    double *sc = malloc((size_t)kv_len * sizeof *sc);
    if (!sc)
        return H->set_error(TSR_ERR_NOMEM, "fakedev: out of memory");
    for (int64_t i = 0; i < q->ne[2]; i++) {
        int64_t p = ((const int32_t *)pos->data)[i];
        for (int64_t h = 0; h < H_; h++) {
            int64_t kh = h / group;
            double mx = -INFINITY;
            for (int64_t j = 0; j < kv_len; j++) {
                sc[j] = -INFINITY;
                if (j > p || (window > 0 && p - j >= window))
                    continue;
                double d = 0;
                for (int64_t e = 0; e < hd; e++)
                    d += (double)*at(q, e, h, i, 0) * *at(k, e, kh, j, 0);
                d *= scale;
                if (cap > 0)
                    d = cap * tanh(d / cap);
                sc[j] = d;
                if (d > mx)
                    mx = d;
            }
            double sum = 0;
            for (int64_t j = 0; j < kv_len; j++) {
                sc[j] = sc[j] == -INFINITY ? 0 : exp(sc[j] - mx);
                sum += sc[j];
            }
            for (int64_t e = 0; e < hd; e++) {
                double o = 0;
                for (int64_t j = 0; j < kv_len; j++)
                    if (sc[j] != 0)
                        o += sc[j] * *at(v, e, kh, j, 0);
                *at(t, e, h, i, 0) = (float)(o / sum);
            }
        }
    }
    free(sc);
    return TSR_OK;
}

/* --- vtable ------------------------------------------------------------------------- */

static int is_f32(const tsr_tensor *t) { return t && t->dtype == TSR_DTYPE_F32; }

static int fake_supports(void *state, const tsr_tensor *n)
{
    (void)state;
    const tsr_tensor *a = n->src[0], *b = n->src[1];
    if (!is_f32(n) || !a)
        return 0;
    switch (n->op) {
    case TSR_OP_MUL_MAT:
        return (a->dtype == TSR_DTYPE_F32 || a->dtype == TSR_DTYPE_F16) && a->nb[0] &&
               a->ne[2] == 1 && is_f32(b) && b->ne[3] == 1 && (!n->src[2] || is_f32(n->src[2]));
    case TSR_OP_ADD: case TSR_OP_MUL:
        return is_f32(a) && b && (is_f32(b) || b->dtype == TSR_DTYPE_F16);
    case TSR_OP_SILU:
        return is_f32(a);
    case TSR_OP_SWIGLU:
        return is_f32(a) && is_f32(b);
    case TSR_OP_RMS_NORM:
        return is_f32(a) && a->ne[3] == 1 && (!b || is_f32(b) || b->dtype == TSR_DTYPE_F16);
    case TSR_OP_KV_STORE:
        return is_f32(a) && is_f32(b);
    case TSR_OP_ATTENTION:
        return is_f32(a) && is_f32(b) && is_f32(n->src[2]) && n->src[3] &&
               n->src[3]->dtype == TSR_DTYPE_I32;
    default:
        return 0; /* GET_ROWS, ROPE, SOFTMAX, ...: the next backend */
    }
}

static tsr_status fake_compute(void *state, tsr_tensor *const *nodes, int n)
{
    fake *f = state;
    for (int i = 0; i < n; i++) {
        tsr_tensor *t = nodes[i];
        tsr_status st = check(f, t, t, -1);
        for (int s = 0; s < TSR_MAX_SRC && !st; s++)
            if (t->src[s])
                st = check(f, t, t->src[s], s);
        if (st)
            return st;
        f->nodes++;
        switch (t->op) {
        case TSR_OP_MUL_MAT: mul_mat(t); break;
        case TSR_OP_RMS_NORM: rms_norm(t); break;
        case TSR_OP_KV_STORE: kv_store(t); break;
        case TSR_OP_ATTENTION: st = attention(t); break;
        default: eltwise(t); break;
        }
        if (st)
            return st;
    }
    return TSR_OK;
}

static tsr_status fake_buffer_alloc(void *state, size_t size, void **out)
{
    fake *f = state;
    *out = NULL;
    if (f->used + size > f->total)
        return H->set_error(TSR_ERR_NOMEM, "fakedev: cannot allocate %zu bytes: %zu of %zu "
                            "bytes are in use", size, f->used, f->total);
    if (f->n == f->cap) {
        size_t nc = f->cap ? 2 * f->cap : 64;
        block *nb = realloc(f->blocks, nc * sizeof *nb);
        if (!nb)
            return H->set_error(TSR_ERR_NOMEM, "fakedev: out of host memory");
        f->blocks = nb;
        f->cap = nc;
    }
    char *p = malloc(size ? size : 1);
    if (!p)
        return H->set_error(TSR_ERR_NOMEM, "fakedev: out of host memory");
    f->blocks[f->n++] = (block){p, size};
    f->used += size;
    if (f->used > f->peak)
        f->peak = f->used;
    *out = p;
    return TSR_OK;
}

static void fake_buffer_free(void *state, void *buf)
{
    fake *f = state;
    for (size_t i = 0; i < f->n; i++)
        if (f->blocks[i].p == buf) {
            f->used -= f->blocks[i].size;
            free(buf);
            f->blocks[i] = f->blocks[--f->n];
            return;
        }
    if (buf)
        H->log(TSR_LOG_ERROR, "fakedev", "buffer_free(%p): not a fakedev buffer", buf);
}

static tsr_status fake_copy_to_device(void *state, void *dst, const void *src, size_t n)
{
    fake *f = state;
    if (!find(f, dst, n) || find(f, src, 1))
        return H->set_error(TSR_ERR_DEVICE, "fakedev: copy_to_device(%p <- %p, %zu bytes): the "
                            "destination must be fakedev memory and the source host memory",
                            dst, src, n);
    memcpy(dst, src, n);
    f->uploads++;
    f->up_bytes += n;
    return TSR_OK;
}

static tsr_status fake_copy_to_host(void *state, void *dst, const void *src, size_t n)
{
    fake *f = state;
    if (!find(f, src, n) || find(f, dst, 1))
        return H->set_error(TSR_ERR_DEVICE, "fakedev: copy_to_host(%p <- %p, %zu bytes): the "
                            "source must be fakedev memory and the destination host memory",
                            dst, src, n);
    memcpy(dst, src, n);
    f->downloads++;
    f->down_bytes += n;
    return TSR_OK;
}

static tsr_status fake_create(const tsr_host *host, const tsr_backend_options *opt, void **state)
{
    (void)opt;
    fake *f = calloc(1, sizeof *f);
    if (!f)
        return host->set_error(TSR_ERR_NOMEM, "fakedev: out of memory");
    const char *mem = getenv("TESSERA_FAKEDEV_MEMORY");
    f->total = mem ? parse_size(mem) : (size_t)1 << 30;
    *state = f;
    return TSR_OK;
}

static void fake_destroy(void *state)
{
    fake *f = state;
    const char *stats = getenv("TESSERA_FAKEDEV_STATS");
    FILE *o = stats ? fopen(stats, "a") : NULL;
    if (o) {
        fprintf(o, "nodes=%llu uploads=%llu up_bytes=%llu downloads=%llu down_bytes=%llu "
                "peak=%zu leaked=%zu\n", f->nodes, f->uploads, f->up_bytes, f->downloads,
                f->down_bytes, f->peak, f->n);
        fclose(o);
    }
    for (size_t i = 0; i < f->n; i++)
        free(f->blocks[i].p);
    free(f->blocks);
    free(f);
}

static int fake_device_count(void *state) { (void)state; return 1; }

static tsr_status fake_device_info(void *state, int dev, tsr_device_info *out)
{
    fake *f = state;
    if (dev != 0)
        return H->set_error(TSR_ERR_DEVICE, "fakedev: no device %d", dev);
    snprintf(out->name, sizeof out->name, "fakedev test device");
    snprintf(out->kind, sizeof out->kind, "fakedev");
    out->total_memory = f->total;
    out->free_memory = f->total - f->used;
    out->host_memory = 0;
    return TSR_OK;
}

static int fake_probe(const tsr_host *host, char *why, size_t len)
{
    (void)host;
    (void)why;
    (void)len;
    return 1;
}

static const tsr_backend_vtable fake_vtable = {
    sizeof(tsr_backend_vtable), fake_create, fake_destroy, fake_device_count, fake_device_info,
    fake_supports, fake_compute, fake_buffer_alloc, fake_buffer_free, fake_copy_to_device,
    fake_copy_to_host,
};

static const tsr_plugin_desc fake_desc = TSR_PLUGIN_DESC_INIT(
    TSR_PLUGIN_BACKEND, "fakedev", "0.1.0-test",
    "test-only backend with checked 'device' memory (host RAM)", fake_probe, &fake_vtable);

TSR_PLUGIN_DEFINE_ENTRY
{
    H = host;
    return &fake_desc;
}
