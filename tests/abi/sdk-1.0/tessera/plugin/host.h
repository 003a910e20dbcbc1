/* tessera/plugin/host.h - the host function table handed to every plugin.
 *
 * Plugins never link libtessera: everything they need from the core comes
 * through this table (as sqlite3_api in SQLite extensions, RedisModule_* in
 * Redis).  One plugin binary therefore works with every 1.x core.
 *
 * The table is append-only.  A plugin built against minor N may use a member
 * added in minor M > N only after checking TSR_HOST_HAS(host, member).
 * Thread-safety: every function here may be called from any thread unless
 * stated; graph functions must be called from the thread building the graph.
 */
#ifndef TESSERA_PLUGIN_HOST_H
#define TESSERA_PLUGIN_HOST_H

#include <stdarg.h>
#include "tensor.h"
#include "formats.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_graph tsr_graph;       /* a forward graph being built     */
typedef struct tsr_json tsr_json;         /* a read-only JSON value          */
typedef struct tsr_param_sink tsr_param_sink; /* collects declared weights   */
typedef struct tsr_checkpoint tsr_checkpoint; /* read-only tensor source     */
typedef struct tsr_tensor_sink tsr_tensor_sink; /* receives saved tensors    */

/* JSON value kinds returned by json_type. */
typedef enum tsr_json_type {
    TSR_JSON_ABSENT = 0, TSR_JSON_NULL = 1, TSR_JSON_BOOL = 2,
    TSR_JSON_INT = 3, TSR_JSON_REAL = 4, TSR_JSON_STRING = 5,
    TSR_JSON_ARRAY = 6, TSR_JSON_OBJECT = 7
} tsr_json_type;

/* Flags for declare_param. */
#define TSR_PARAM_OPTIONAL 0x1u  /* absent in the checkpoint is not an error */
#define TSR_PARAM_LINEAR 0x4u     /* the weight of a Linear module: may be
                                     quantized (module = name less ".weight") */
#define TSR_PARAM_TRANSPOSED 0x2u /* stored transposed (GPT-2's Conv1D keeps
                                     [in, out]); the core transposes it to the
                                     declared ne {in, out} on load */

typedef struct tsr_host {
    uint32_t struct_size;
    uint16_t abi_major, abi_minor;       /* the core's TSR_ABI_*            */

    /* --- diagnostics --------------------------------------------------- */
    /* Log a line to the application's log sink (stderr by default). */
    void (*log)(tsr_log_level level, const char *plugin, const char *fmt, ...);
    /* Record the detail of a failure; the plugin then returns `st`.
     * The text becomes tsr_last_error() of the calling thread. */
    tsr_status (*set_error)(tsr_status st, const char *fmt, ...);

    /* --- memory (aligned to at least 64 bytes) -------------------------- */
    void *(*alloc)(size_t size);
    void *(*calloc)(size_t n, size_t size);
    void (*free)(void *p);

    /* --- element conversion -------------------------------------------- */
    float (*f16_to_f32)(uint16_t h);
    uint16_t (*f32_to_f16)(float f);
    float (*bf16_to_f32)(uint16_t h);
    uint16_t (*f32_to_bf16)(float f);
    /* Convert n elements of `src` (plain dtype or weight format) to f32.
     * Returns TSR_ERR_UNSUPPORTED for a format the core cannot dequantize. */
    tsr_status (*to_f32)(uint32_t dtype, const void *src, float *dst,
                         int64_t n, const void *format_data);
    size_t (*dtype_size)(uint32_t dtype);        /* bytes per element, 0 for blocks */
    const char *(*dtype_name)(uint32_t dtype);

    /* --- read-only JSON (config.json, quantization_config) -------------- */
    const tsr_json *(*json_get)(const tsr_json *obj, const char *key); /* NULL if absent */
    const tsr_json *(*json_at)(const tsr_json *arr, size_t i);
    tsr_json_type (*json_type)(const tsr_json *v);
    size_t (*json_size)(const tsr_json *v);            /* array/object length */
    int64_t (*json_int)(const tsr_json *v, int64_t dflt);   /* ints and integral reals */
    double (*json_real)(const tsr_json *v, double dflt);    /* reals and ints */
    int (*json_bool)(const tsr_json *v, int dflt);
    const char *(*json_string)(const tsr_json *v, const char *dflt);

    /* --- model parameters ----------------------------------------------- */
    /* Declare a weight by its Hugging Face name and shape (ne[] order). */
    tsr_status (*declare_param)(tsr_param_sink *sink, const char *hf_name,
                                int n_dims, const int64_t *ne, uint32_t flags);

    /* --- graph building (model plugins) --------------------------------- */
    /* A computed node.  `params` (n_params int32 words) are copied. */
    tsr_tensor *(*node)(tsr_graph *g, tsr_op op, uint32_t dtype, int n_dims,
                        const int64_t *ne, tsr_tensor *const *src, int n_src,
                        const int32_t *params, int n_params, const char *name);
    /* A view (reshape, slice, permute) of src; no data is copied. */
    tsr_tensor *(*view)(tsr_graph *g, tsr_tensor *src, int n_dims,
                        const int64_t *ne, const size_t *nb, size_t offset,
                        const char *name);
    /* A constant leaf whose data (nbytes) is copied into the graph. */
    tsr_tensor *(*constant)(tsr_graph *g, uint32_t dtype, int n_dims,
                            const int64_t *ne, const void *data, const char *name);
    /* The weight declared under hf_name; NULL (error set) if absent. */
    tsr_tensor *(*param)(tsr_graph *g, const char *hf_name);
    /* Step inputs: token ids I32 [n_tokens] and positions I32 [n_tokens]. */
    tsr_tensor *(*input_ids)(tsr_graph *g);
    tsr_tensor *(*input_positions)(tsr_graph *g);
    /* KV cache of a layer: which 0 = keys, 1 = values; [hd, Hkv, capacity]. */
    tsr_tensor *(*kv_cache)(tsr_graph *g, int layer, int which);
    /* Mark the logits tensor [vocab, n_out] as the graph's output. */
    void (*set_output)(tsr_graph *g, tsr_tensor *logits);

    /* --- weight formats and checkpoints (quantizers, backends) ------------ */
    /* Dequantize row `row` (output feature) of a weight in any known format
     * (plain, GGML block, formats.h) into dst[0..ne[0]).  Thread-safe. */
    tsr_status (*dequantize_row)(const tsr_tensor *w, int64_t row, float *dst);
    /* Describe checkpoint tensor `name` as a leaf (dtype, ne, nb, data; data
     * points into the file) and mark it used; TSR_ERR_NOT_FOUND (no error
     * text set) if absent. */
    tsr_status (*checkpoint_tensor)(const tsr_checkpoint *ck, const char *name,
                                    tsr_tensor *out);
    /* Write a tensor being saved: shape in PyTorch order, plain dtype
     * (F32/F16/BF16/I8/U8/I16/I32/I64); the bytes are copied. */
    tsr_status (*emit_tensor)(tsr_tensor_sink *sink, const char *name, uint32_t dtype,
                              int n_dims, const int64_t *shape, const void *data,
                              size_t nbytes);
    /* since 1.0: append new members below this line only. */
} tsr_host;

#define TSR_HOST_HAS(host, member) \
    ((host)->struct_size >= offsetof(tsr_host, member) + sizeof((host)->member) && \
     (host)->member != NULL)

#ifdef __cplusplus
}
#endif
#endif /* TESSERA_PLUGIN_HOST_H */
