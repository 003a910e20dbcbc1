/* hello.c - a small third-party tessera backend plugin, "example".
 *
 * Built only against the installed SDK (<tessera/plugin/plugin.h>); it does
 * not link libtessera: everything it needs from the core comes through the
 * host table handed to its entry point.  It computes two ops on contiguous
 * float32 tensors, TSR_OP_SILU and TSR_OP_ADD (with [D] broadcast), and says
 * "no" to everything else, so the scheduler gives other nodes to the next
 * backend in the run's `backends:` list.
 */
#include <math.h>
#include <string.h>
#include <tessera/plugin/plugin.h>

static const tsr_host *api;   /* the host table, set once by the entry point */

typedef struct hello_state {
    int n_threads;
} hello_state;

/* probe(): cheap, no device initialisation.  Plain C runs anywhere. */
static int hello_probe(const tsr_host *h, char *why, size_t why_len)
{
    (void)why;
    (void)why_len;
    /* The members this plugin calls; a newer member would be checked the
     * same way before use. */
    return h != NULL && TSR_HOST_HAS(h, calloc) && TSR_HOST_HAS(h, free) &&
           TSR_HOST_HAS(h, log) && TSR_HOST_HAS(h, set_error);
}

static tsr_status hello_create(const tsr_host *h, const tsr_backend_options *opt, void **state)
{
    hello_state *s = h->calloc(1, sizeof *s);
    if (!s)
        return h->set_error(TSR_ERR_NOMEM, "example backend: out of memory");
    /* Read optional members only when the caller's struct has them. */
    if (opt && opt->struct_size >= offsetof(tsr_backend_options, n_threads) + sizeof opt->n_threads)
        s->n_threads = opt->n_threads;
    h->log(TSR_LOG_DEBUG, "example", "backend created");
    *state = s;
    return TSR_OK;
}

static void hello_destroy(void *state) { api->free(state); }

static int hello_device_count(void *state)
{
    (void)state;
    return 1;
}

static tsr_status hello_device_info(void *state, int device, tsr_device_info *out)
{
    (void)state;
    if (device != 0)
        return api->set_error(TSR_ERR_INVALID_ARG, "example backend: no device %d", device);
    /* Fill only what the caller's struct holds (it may be older than ours). */
    tsr_device_info d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    strcpy(d.name, "example (host memory)");
    strcpy(d.kind, "cpu");
    d.host_memory = 1;
    size_t n = out->struct_size < sizeof d ? out->struct_size : sizeof d;
    uint32_t caller_size = out->struct_size;
    memcpy(out, &d, n);
    out->struct_size = caller_size;
    return TSR_OK;
}

static int is_f32_contiguous(const tsr_tensor *t)
{
    if (!t || t->dtype != TSR_DTYPE_F32 || t->nb[0] != sizeof(float))
        return 0;
    for (int i = 1; i < TSR_MAX_DIMS; i++)
        if (t->nb[i] != t->nb[i - 1] * (size_t)t->ne[i - 1])
            return 0;
    return 1;
}

static int hello_supports(void *state, const tsr_tensor *node)
{
    (void)state;
    if (!is_f32_contiguous(node))
        return 0;
    switch (node->op) {
    case TSR_OP_SILU:
        return is_f32_contiguous(node->src[0]) &&
               tsr_tensor_nelements(node->src[0]) == tsr_tensor_nelements(node);
    case TSR_OP_ADD: {
        const tsr_tensor *a = node->src[0], *b = node->src[1];
        if (!is_f32_contiguous(a) || !is_f32_contiguous(b) || b->ne[0] != a->ne[0])
            return 0;
        int64_t nb_ = tsr_tensor_nelements(b);
        return tsr_tensor_nelements(a) == tsr_tensor_nelements(node) &&
               (nb_ == tsr_tensor_nelements(a) || nb_ == b->ne[0]);
    }
    default:
        return 0;
    }
}

/* silu(x) = x * sigmoid(x) = x / (1 + exp(-x))   (torch.nn.functional.silu) */
static void silu_f32(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] / (1.0f + expf(-x[i]));
}

/* y = a + b, b either the same shape or one row [D] broadcast over rows. */
static void add_f32(float *y, const float *a, const float *b, int64_t n, int64_t nb_, int64_t d)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] + b[nb_ == n ? i : i % d];
}

static tsr_status hello_compute(void *state, tsr_tensor *const *nodes, int n)
{
    for (int i = 0; i < n; i++) {
        tsr_tensor *t = nodes[i];
        if (!hello_supports(state, t))
            return api->set_error(TSR_ERR_UNSUPPORTED,
                                   "example backend: cannot compute node '%s' (op %u)",
                                   t->name ? t->name : "?", t->op);
        int64_t ne = tsr_tensor_nelements(t);
        if (t->op == TSR_OP_SILU)
            silu_f32(t->data, t->src[0]->data, ne);
        else
            add_f32(t->data, t->src[0]->data, t->src[1]->data, ne,
                    tsr_tensor_nelements(t->src[1]), t->src[0]->ne[0]);
    }
    return TSR_OK;
}

static const tsr_backend_vtable hello_vtable = {
    sizeof(tsr_backend_vtable),
    hello_create, hello_destroy, hello_device_count, hello_device_info,
    hello_supports, hello_compute,
    NULL, NULL, NULL, NULL   /* host memory: no device buffers or copies */
};

static const tsr_plugin_desc hello_desc = TSR_PLUGIN_DESC_INIT(
    TSR_PLUGIN_BACKEND, "example", "1.0.0",
    "example backend from examples/hello-plugin: SiLU and Add on float32",
    hello_probe, &hello_vtable);

/* The one exported symbol.  Called once, from the thread that loads it. */
TSR_PLUGIN_DEFINE_ENTRY;
TSR_PLUGIN_DEFINE_ENTRY
{
    /* The parameter is named `host` by TSR_PLUGIN_DEFINE_ENTRY. */
    api = host;
    return &hello_desc;
}
