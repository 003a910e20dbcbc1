/* tessera/plugin/quantizer.h - the quantizer plugin kind.
 *
 * A quantizer claims a `quant_method` (config.json quantization_config, or
 * the run's `quantization:` block), validates its settings, and maps
 * checkpoint tensors of a linear module onto a runtime weight format (int-N
 * with groups, 4-bit code book, row-wise int8, GGUF blocks).  It can also
 * quantize a floating weight on load and serialize it back, as transformers'
 * HfQuantizer does.
 */
#ifndef TESSERA_PLUGIN_QUANTIZER_H
#define TESSERA_PLUGIN_QUANTIZER_H

#include "host.h"

#ifdef __cplusplus
extern "C" {
#endif


/* Capabilities, as HfQuantizer's class attributes. */
#define TSR_QUANT_REQUIRES_CALIBRATION 0x1u
#define TSR_QUANT_SERIALIZABLE         0x2u
#define TSR_QUANT_ON_LOAD              0x4u  /* can quantize float weights */

typedef struct tsr_quantizer_vtable {
    uint32_t struct_size;
    uint32_t capabilities;    /* TSR_QUANT_* */
    /* Validate the quantization config (JSON object). */
    tsr_status (*create)(const tsr_host *host, const tsr_json *qconfig, void **state);
    void (*destroy)(void *state);
    /* 1 if the module (e.g. "model.layers.0.mlp.down_proj") stays unquantized. */
    int (*skip_module)(void *state, const char *module);
    /* Build the runtime weight of `module` (dense shape ne[0]=in, ne[1]=out)
     * from the checkpoint's tensors; fill `out` (dtype, data, format_data). */
    tsr_status (*load_weight)(void *state, const tsr_checkpoint *ckpt,
                              const char *module, const int64_t *ne,
                              tsr_tensor *out);
    /* Quantize a dense f32 weight [in, out] into `out`. Optional. */
    tsr_status (*quantize_weight)(void *state, const char *module,
                                  const float *w, const int64_t *ne, tsr_tensor *out);
    /* Free what load_weight/quantize_weight allocated for `t` (its data and
     * format_data).  Called once per weight when the model is destroyed. */
    void (*release_weight)(void *state, tsr_tensor *t);
    /* Serialize a weight this quantizer made, in the method's own checkpoint
     * layout (e.g. qweight/qzeros/scales), through host->emit_tensor. */
    tsr_status (*save_weight)(void *state, const char *module, const tsr_tensor *w,
                              tsr_tensor_sink *sink);
    /* The config.json "quantization_config" object as JSON text (malloc'd
     * with host->alloc; the caller frees it with host->free). */
    tsr_status (*save_config)(void *state, char **json);
    /* Calibration (TSR_QUANT_REQUIRES_CALIBRATION, e.g. GPTQ): called with
     * each batch of inputs x [K, M] (M rows of K) that reaches `module`
     * while calibration text runs through the float model, before
     * quantize_weight is called for it.  Optional. */
    tsr_status (*observe_input)(void *state, const char *module, const float *x,
                                int64_t K, int64_t M);
    /* since 1.0: append below. */
} tsr_quantizer_vtable;

#ifdef __cplusplus
}
#endif
#endif /* TESSERA_PLUGIN_QUANTIZER_H */
