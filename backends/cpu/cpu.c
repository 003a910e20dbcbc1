/* backends/cpu/cpu.c - the cpu backend plugin: entry point, probe, which
 * nodes it supports, and dispatch to the kernels. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cpu.h"

static const tsr_host *g_host;

/* formats repacked into 8-row groups by default (bits 1 << CPU_X8_*) */
#define CPU_REPACK_DEFAULT ((1 << CPU_X8_Q4_0) | (1 << CPU_X8_Q4_K) | (1 << CPU_X8_Q8_0))

static int is_float(uint32_t t)
{
    return t == TSR_DTYPE_F32 || t == TSR_DTYPE_F16 || t == TSR_DTYPE_BF16;
}

/* Weight formats multiplied through host->dequantize_row (the reference
 * path; native kernels come per format). */
static int is_weight_format(uint32_t t)
{
    switch (t) {
    case TSR_DTYPE_Q4_0: case TSR_DTYPE_Q4_1: case TSR_DTYPE_Q5_0: case TSR_DTYPE_Q5_1:
    case TSR_DTYPE_Q8_0: case TSR_DTYPE_Q2_K: case TSR_DTYPE_Q3_K: case TSR_DTYPE_Q4_K:
    case TSR_DTYPE_Q5_K: case TSR_DTYPE_Q6_K: case TSR_DTYPE_IQ2_XXS: case TSR_DTYPE_IQ2_XS:
    case TSR_DTYPE_IQ3_XXS: case TSR_DTYPE_IQ1_S: case TSR_DTYPE_IQ4_NL: case TSR_DTYPE_IQ3_S:
    case TSR_DTYPE_IQ2_S: case TSR_DTYPE_IQ4_XS: case TSR_DTYPE_IQ1_M:
    case TSR_DTYPE_INT_GROUP: case TSR_DTYPE_CODEBOOK4: case TSR_DTYPE_INT8_ROW:
        return 1;
    default:
        return is_float(t);
    }
}

/* innermost dimension contiguous */
static int unit_stride(const tsr_tensor *t)
{
    size_t es = g_host->dtype_size(t ? t->dtype : 0);
    return t == NULL || es == 0 || t->nb[0] == es; /* blocks: rows only */
}

static int cpu_supports(void *state, const tsr_tensor *n)
{
    (void)state;
    const tsr_tensor *a = n->src[0], *b = n->src[1];
    for (int i = 0; i < TSR_MAX_SRC; i++)
        if (n->src[i] && !unit_stride(n->src[i]))
            return 0;
    switch (n->op) {
    case TSR_OP_GET_ROWS:
        return is_weight_format(a->dtype) && b->dtype == TSR_DTYPE_I32 && n->dtype == TSR_DTYPE_F32;
    case TSR_OP_MUL_MAT:
        return is_weight_format(a->dtype) && b->dtype == TSR_DTYPE_F32 && n->dtype == TSR_DTYPE_F32 &&
               (!n->src[2] || is_float(n->src[2]->dtype));
    case TSR_OP_RMS_NORM: case TSR_OP_LAYER_NORM:
        return a->dtype == TSR_DTYPE_F32 && (!b || is_float(b->dtype)) &&
               (!n->src[2] || is_float(n->src[2]->dtype));
    case TSR_OP_ADD: case TSR_OP_MUL:
        return a->dtype == TSR_DTYPE_F32 && is_float(b->dtype);
    case TSR_OP_SCALE: case TSR_OP_SILU: case TSR_OP_GELU: case TSR_OP_TANH:
    case TSR_OP_RELU: case TSR_OP_SOFTMAX: case TSR_OP_SIGMOID: case TSR_OP_MOE_GATE:
        return a->dtype == TSR_DTYPE_F32;
    case TSR_OP_SWIGLU: case TSR_OP_GEGLU:
        return a->dtype == TSR_DTYPE_F32 && b->dtype == TSR_DTYPE_F32;
    case TSR_OP_ROPE:
        return a->dtype == TSR_DTYPE_F32 && b->dtype == TSR_DTYPE_I32 &&
               n->src[2] && n->src[2]->dtype == TSR_DTYPE_F32;
    case TSR_OP_KV_STORE:
        return a->dtype == TSR_DTYPE_F32 && b->dtype == TSR_DTYPE_F32;
    case TSR_OP_ATTENTION:
        return a->dtype == TSR_DTYPE_F32 && b->dtype == TSR_DTYPE_F32 &&
               n->src[2]->dtype == TSR_DTYPE_F32 && n->src[3]->dtype == TSR_DTYPE_I32;
    case TSR_OP_CPY:
        return is_float(a->dtype) && is_float(n->dtype);
    default:
        return 0;
    }
}

static tsr_status cpu_compute(void *state, tsr_tensor *const *nodes, int n)
{
    cpu_ctx *c = state;
    for (int i = 0; i < n; i++) {
        tsr_tensor *t = nodes[i];
        int rc;
        switch (t->op) {
        case TSR_OP_GET_ROWS: rc = cpu_op_get_rows(c, t); break;
        case TSR_OP_RMS_NORM: case TSR_OP_LAYER_NORM: rc = cpu_op_norm(c, t); break;
        case TSR_OP_MUL_MAT:
            rc = t->src[0]->dtype == TSR_DTYPE_INT8_ROW ? cpu_op_mul_mat_int8(c, t) : cpu_op_mul_mat(c, t);
            break;
        case TSR_OP_ROPE: rc = cpu_op_rope(c, t); break;
        case TSR_OP_KV_STORE: rc = cpu_op_kv_store(c, t); break;
        case TSR_OP_ATTENTION: rc = cpu_op_attention(c, t); break;
        case TSR_OP_SOFTMAX: rc = cpu_op_softmax(c, t); break;
        case TSR_OP_CPY: rc = cpu_op_cpy(c, t); break;
        case TSR_OP_MOE_GATE: rc = cpu_op_moe_gate(c, t); break;
        default: rc = cpu_op_elementwise(c, t); break;
        }
        if (rc)
            return g_host->set_error(TSR_ERR_INTERNAL, "cpu: node '%s' (op %u) failed",
                                     t->name, t->op);
    }
    return TSR_OK;
}

static tsr_status cpu_create(const tsr_host *host, const tsr_backend_options *opt, void **state)
{
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return host->set_error(TSR_ERR_NOMEM, "cpu: out of memory");
    int n = opt && opt->n_threads > 0 ? opt->n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    c->host = host;
    cpu_kernels_select(&c->k);
    const char *rp = getenv("TESSERA_CPU_REPACK");
    const char *rh = getenv("TESSERA_CPU_REPACK_HEAP");
    c->repack_heap = rh && atoi(rh) > 0;
    c->repack = rp && *rp ? atoi(rp) : CPU_REPACK_DEFAULT;
    const char *lb = getenv("TESSERA_CPU_LOWBIT");
    c->no_lowbit = lb && *lb && atoi(lb) == 0;
    c->pool = cpu_pool_create(n);
    if (!c->pool) {
        free(c);
        return host->set_error(TSR_ERR_NOMEM, "cpu: cannot start %d threads", n);
    }
    *state = c;
    return TSR_OK;
}

static void cpu_destroy(void *state)
{
    cpu_ctx *c = state;
    if (!c)
        return;
    cpu_pool_destroy(c->pool);
    cpu_packed_free(c);
    free(c->scratch);
    free(c->buf[0]);
    free(c->buf[1]);
    free(c->buf[2]);
    free(c);
}

static int cpu_device_count(void *state) { (void)state; return 1; }

static tsr_status cpu_device_info(void *state, int dev, tsr_device_info *out)
{
    (void)state;
    if (dev != 0)
        return g_host->set_error(TSR_ERR_INVALID_ARG, "cpu: no device %d", dev);
    memset(out->name, 0, sizeof out->name);
    strcpy(out->name, "cpu");
    strcpy(out->kind, "cpu");
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES);
    long psz = sysconf(_SC_PAGESIZE);
    out->total_memory = pages > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
    out->free_memory = avail > 0 ? (uint64_t)avail * (uint64_t)psz : 0;
    out->host_memory = 1;
    return TSR_OK;
}

static int cpu_probe(const tsr_host *host, char *why, size_t len)
{
    (void)host;
    (void)why;
    (void)len;
    return 1; /* portable C: runs wherever it was built */
}

static const tsr_backend_vtable cpu_vtable = {
    .struct_size = sizeof(tsr_backend_vtable),
    .create = cpu_create,
    .destroy = cpu_destroy,
    .device_count = cpu_device_count,
    .device_info = cpu_device_info,
    .supports = cpu_supports,
    .compute = cpu_compute,
};

static const tsr_plugin_desc cpu_desc = TSR_PLUGIN_DESC_INIT(
    TSR_PLUGIN_BACKEND, "cpu", "0.1.0",
    "Portable C11 kernels with a thread pool", cpu_probe, &cpu_vtable);

TSR_PLUGIN_DEFINE_ENTRY
{
    g_host = host;
    return &cpu_desc;
}
