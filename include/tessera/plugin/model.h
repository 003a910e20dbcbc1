/* tessera/plugin/model.h - the model (architecture) plugin kind.
 *
 * A model plugin claims config.json `model_type`s (in its manifest), reads
 * config.json through the host's JSON accessors, declares its parameters by
 * their Hugging Face names, and builds the forward graph for a batch of
 * tokens from the op vocabulary.  It never calls a kernel.
 */
#ifndef TESSERA_PLUGIN_MODEL_H
#define TESSERA_PLUGIN_MODEL_H

#include "host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the core needs to know to allocate caches and run generation. */
typedef struct tsr_model_info {
    uint32_t struct_size;
    int32_t n_layer;          /* layers with a KV cache                   */
    int32_t n_kv_head;        /* key/value heads                          */
    int32_t head_dim;         /* per-head size of keys and values         */
    int32_t n_vocab;          /* logits per position                      */
    int32_t n_embd;           /* hidden size                              */
    int32_t n_ctx_train;      /* max_position_embeddings                  */
    /* since 1.1 (write it only when struct_size covers it): when a step
     * would take the sequence past this many tokens while the KV cache holds
     * exactly this many, the host discards the cache and recomputes the whole
     * sequence (Phi-3: longrope switches from short to long factors there,
     * as transformers' prepare_inputs_for_generation does); 0 = never. */
    int32_t kv_recompute_at;
    /* append below. */
} tsr_model_info;

/* One forward step. */
typedef struct tsr_batch {
    uint32_t struct_size;
    int32_t n_tokens;         /* new tokens in this step                  */
    int32_t n_past;           /* tokens already in the KV cache           */
    int32_t logits_all;       /* 1: logits for every token; 0: last only  */
    /* since 1.0: append below. */
} tsr_batch;

typedef struct tsr_model_vtable {
    uint32_t struct_size;
    /* Read config.json (`config` is its root object); validate it. */
    tsr_status (*create)(const tsr_host *host, const tsr_json *config, void **state);
    void (*destroy)(void *state);
    tsr_status (*info)(void *state, tsr_model_info *out);
    /* Declare every weight via host->declare_param. */
    tsr_status (*declare_params)(void *state, tsr_param_sink *sink);
    /* Build the graph for one step; end with host->set_output(logits). */
    tsr_status (*build)(void *state, tsr_graph *g, const tsr_batch *batch);
    /* since 1.0: append below. */
} tsr_model_vtable;

#ifdef __cplusplus
}
#endif
#endif /* TESSERA_PLUGIN_MODEL_H */
