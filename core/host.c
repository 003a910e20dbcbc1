/* core/host.c - the host function table handed to every plugin. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "graph.h"
#include "writers.h"

static void host_log(tsr_log_level level, const char *plugin, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tsr__vlog(level, plugin, fmt, ap);
    va_end(ap);
}

static tsr_status host_set_error(tsr_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tsr__verror(st, fmt, ap);
    va_end(ap);
    return st;
}

static tsr_status host_declare_param(tsr_param_sink *sink, const char *hf_name, int n_dims,
                                     const int64_t *ne, uint32_t flags);

/* A checkpoint tensor as a leaf tensor (PyTorch shape reversed into ne). */
static tsr_status host_checkpoint_tensor(const tsr_checkpoint *ck, const char *name,
                                         tsr_tensor *out)
{
    tsr__ckpt_tensor *ct = tsr__checkpoint_find((tsr_checkpoint *)ck, name);
    if (!ct)
        return TSR_ERR_NOT_FOUND;
    ct->used = true;
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    out->dtype = ct->dtype;
    for (int d = 0; d < TSR_MAX_DIMS; d++)
        out->ne[d] = d < ct->n_dims ? ct->shape[ct->n_dims - 1 - d] : 1;
    size_t es = tsr__dtype_size(ct->dtype);
    out->nb[0] = es;
    for (int d = 1; d < TSR_MAX_DIMS; d++)
        out->nb[d] = out->nb[d - 1] * (size_t)out->ne[d - 1];
    out->data = (void *)ct->data;
    out->name = ct->name;
    out->device = -1;
    out->flags = TSR_TENSOR_FLAG_PARAM;
    return TSR_OK;
}

static const tsr_host host_table = {
    .struct_size = sizeof(tsr_host),
    .abi_major = TSR_ABI_MAJOR,
    .abi_minor = TSR_ABI_MINOR,
    .log = host_log,
    .set_error = host_set_error,
    .alloc = tsr__alloc,
    .calloc = tsr__calloc,
    .free = tsr__free,
    .f16_to_f32 = tsr__f16_to_f32,
    .f32_to_f16 = tsr__f32_to_f16,
    .bf16_to_f32 = tsr__bf16_to_f32,
    .f32_to_bf16 = tsr__f32_to_bf16,
    .to_f32 = tsr__to_f32,
    .dtype_size = tsr__dtype_size,
    .dtype_name = tsr__dtype_name,
    .json_get = tsr__json_get,
    .json_at = tsr__json_at,
    .json_type = tsr__json_type,
    .json_size = tsr__json_size,
    .json_int = tsr__json_int,
    .json_real = tsr__json_real,
    .json_bool = tsr__json_bool,
    .json_string = tsr__json_string,
    .declare_param = host_declare_param,
    .node = tsr__g_node,
    .view = tsr__g_view,
    .constant = tsr__g_constant,
    .param = tsr__g_param,
    .input_ids = tsr__g_input_ids,
    .input_positions = tsr__g_input_positions,
    .kv_cache = tsr__g_kv_cache,
    .set_output = tsr__g_set_output,
    .dequantize_row = tsr__dequantize_row,
    .checkpoint_tensor = host_checkpoint_tensor,
    .emit_tensor = tsr__emit_tensor,
};

const tsr_host *tsr__host(void) { return &host_table; }

/* The param sink is implemented by the model loader (model.c). */
tsr_status tsr__param_sink_declare(tsr_param_sink *sink, const char *hf_name, int n_dims,
                                   const int64_t *ne, uint32_t flags);

static tsr_status host_declare_param(tsr_param_sink *sink, const char *hf_name, int n_dims,
                                     const int64_t *ne, uint32_t flags)
{
    return tsr__param_sink_declare(sink, hf_name, n_dims, ne, flags);
}
