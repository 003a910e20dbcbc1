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

/* Calibrate from the run configuration: the text file
 * quantization.dataset, tokenized with the model's tokenizer (m->tok, or
 * tokenizer.json of m->dir when the model has none yet), its first
 * quantization.calibration_tokens tokens.  With quantization.dataset unset
 * it does nothing and returns TSR_OK (the quantizer then has no data:
 * GPTQ falls back to round-to-nearest and says so). */
tsr_status tsr__calibrate_dataset(tsr_model *m);

#endif
