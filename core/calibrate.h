/* core/calibrate.h - calibration for quantizers that need it
 * (TSR_QUANT_REQUIRES_CALIBRATION, e.g. GPTQ): run calibration text through
 * the float model and hand every Linear module's inputs to the quantizer's
 * observe_input (core-internal). */
#ifndef TESSERA_CORE_CALIBRATE_H
#define TESSERA_CORE_CALIBRATE_H

#include "model.h"

/* Run the model over ids[0..n) in windows of quantization.model_seqlen
 * tokens (unset: the model's max_position_embeddings, at most 2048), each
 * window from an empty KV cache, with the graph observer calling
 * m->qvt->observe_input(module, x [K, M]) for every MUL_MAT whose weight is
 * a TSR_PARAM_LINEAR parameter "<module>.weight" not skipped by the
 * quantizer.  Needs: float weights bound, backends loaded, m->qvt/qstate
 * set, and TSR_PARAM_LINEAR still set on the Linear params.  The KV cache
 * is empty afterwards.  Not thread-safe (uses the model). */
tsr_status tsr__calibrate(tsr_model *m, const int32_t *ids, size_t n);

/* Sequential calibration, as AutoGPTQ/GPTQModel quantize: the Linear
 * modules that the quantizer does not skip and whose weights are still f32
 * are put in groups (one pass of the model records their execution order
 * and a hash of each one's first input): per decoder layer (the module-name
 * prefix up to its first numeric component, "model.layers.3"; modules
 * outside the layers form their own group), and with true_sequential,
 * within a layer one group per distinct input ([q,k,v], [o], [gate,up],
 * [down] for llama), in execution order.  Then per group: run the
 * calibration text again with the earlier groups already quantized in
 * place, hand only this group's inputs to observe_input, and quantize its
 * weights with quantize_weight (p->quantized set, pending_quant cleared,
 * the float copy freed).  Costs 1 + groups forward passes over the text.
 * Modules the passes never reach stay f32 (pending_quant kept) for the
 * caller.  *n_groups (may be NULL) gets the number of groups. */
tsr_status tsr__calibrate_sequential(tsr_model *m, const int32_t *ids, size_t n,
                                     bool true_sequential, size_t *n_groups);

/* The f32 tensor x as M = ne[1]*ne[2]*ne[3] contiguous rows of K = ne[0]:
 * x->data itself when it is contiguous, else a copy in *buf (grown to
 * *cap bytes with tsr__alloc; the caller frees it).  NULL: out of memory. */
const float *tsr__calib_gather(const tsr_tensor *x, float **buf, size_t *cap);

/* Run ids[0..n) through the model in windows of quantization.model_seqlen
 * tokens (each from an empty KV cache) with `observer` as the graph
 * observer; stops early when *stop becomes non-zero and returns it. */
tsr_status tsr__calib_forward(tsr_model *m, const int32_t *ids, size_t n,
                              void (*observer)(void *, const tsr_tensor *), void *user,
                              const tsr_status *stop);

/* AWQ's activation-aware scale and clip search (AutoAWQ's AwqQuantizer:
 * _search_best_scale, apply_scale, _search_best_clip, apply_clip) on the
 * float model, before its Linear weights are quantized; core/calibrate_awq.c
 * has the details.  For llama-style layers (input_layernorm -> q,k,v;
 * v_proj -> o_proj when their shapes agree; post_attention_layernorm ->
 * gate,up; up_proj -> down_proj): one pass over ids collects per input
 * mean |x| and X^T X, then per layer the scales s are chosen, 1/s folded
 * into the RMSNorm weight or the previous Linear's output rows, s into the
 * Linear weights, and each Linear's weights (but q and k) clipped.  The
 * weights stay f32 (quantize them afterwards); modified non-Linear weights
 * are made the checkpoint's view too, so tsr_model_save writes them. */
typedef struct tsr__awq_report {
    size_t scaled_groups;   /* (prev op, linears) groups scaled             */
    size_t clipped;         /* Linear weights clipped                        */
    double mean_ratio;      /* mean of the chosen grid ratios                */
} tsr__awq_report;
tsr_status tsr__awq_search(tsr_model *m, const int32_t *ids, size_t n, tsr__awq_report *rep);

/* Calibrate from the run configuration: the text file
 * quantization.dataset, tokenized with the model's tokenizer (m->tok, or
 * tokenizer.json of m->dir when the model has none yet), its first
 * quantization.calibration_tokens tokens; GPTQ (quant_method "gptq")
 * sequentially (true_sequential from m->qconfig, default true), AWQ
 * ("awq") with tsr__awq_search, other methods in one pass (tsr__calibrate).  With quantization.dataset unset
 * it does nothing and returns TSR_OK (the quantizer then has no data:
 * GPTQ falls back to round-to-nearest and says so). */
tsr_status tsr__calibrate_dataset(tsr_model *m);

#endif
