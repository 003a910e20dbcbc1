/* core/model.h - a loaded model: architecture plugin, weights, backends,
 * KV cache and tokenizer (core-internal). */
#ifndef TESSERA_CORE_MODEL_H
#define TESSERA_CORE_MODEL_H

#include "graph.h"

struct tsr_model {
    char *dir;                      /* model folder                        */
    tsr_json *config;               /* config.json                          */
    tsr_json *gen_config;           /* generation_config.json or NULL      */
    const tsr_plugin_desc *mdesc;
    const tsr_model_vtable *mvt;
    void *mstate;
    tsr_model_info info;
    tsr_checkpoint *ckpt;
    tsr__graph_env env;             /* params, backends, KV cache          */
    tsr_tokenizer *tok;             /* NULL if the folder has none         */
    tsr_config *own_cfg;            /* defaults when the caller gave none  */
    const tsr_config *cfg;
    void *arena;                    /* activations, reused across steps    */
    size_t arena_size;
    int64_t n_past;                 /* tokens in the KV cache              */
    int weights_dtype;              /* -1 auto                              */
    const tsr_quantizer_vtable *qvt;/* quantizer, or NULL                   */
    void *qstate;
    const tsr_plugin_desc *qdesc;
    tsr_json *qconfig;              /* the quantization config it was given */
    bool prequantized;              /* config.json has quantization_config  */
    bool calibrating;               /* float weights bound, quantize pending */
};

/* Run `n` tokens through the model after the cached ones.  logits_all:
 * logits for every token (out [n * vocab]) or only the last (out [vocab]). */
tsr_status tsr__model_forward(tsr_model *m, const int32_t *ids, int n, int logits_all,
                              float *out);
void tsr__model_reset(tsr_model *m);

#endif
