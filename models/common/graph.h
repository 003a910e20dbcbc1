/* models/common/graph.h - small graph-building helpers shared by the model
 * plugins (compiled into each plugin; not an ABI).
 *
 * Every helper takes and returns NULL-tolerant tensors: once something failed
 * (a missing weight, out of memory) the host has recorded the error, the
 * helpers return NULL and the builder checks once at the end. */
#ifndef TESSERA_MODELS_GRAPH_H
#define TESSERA_MODELS_GRAPH_H
#include <tessera/plugin/plugin.h>

typedef struct mb {
    const tsr_host *H;
    tsr_graph *g;
    int fail;                 /* a weight was missing */
    char name[192];           /* scratch for node names */
} mb;

/* The decoder dimensions every config.json names (LlamaConfig and kin). */
typedef struct mb_dims {
    int n_embd, n_ff, n_layer, n_head, n_kv_head, head_dim, n_vocab;
    int64_t n_ctx_train;      /* max_position_embeddings */
} mb_dims;
/* Read and check them: every size positive, heads a multiple of the KV
 * heads, head_dim from config.json or hidden_size / heads (which must then
 * divide).  `default_ctx` is the architecture's max_position_embeddings
 * default.  Errors name the key. */
tsr_status mb_read_dims(const tsr_host *H, const tsr_json *c, int64_t default_ctx, mb_dims *d);
/* Fill the core's tsr_model_info from them. */
void mb_dims_info(const mb_dims *d, tsr_model_info *out);

/* Declare a 1-D (d1 == 0) or 2-D weight by its formatted HF name. */
tsr_status mb_decl(const tsr_host *H, tsr_param_sink *s, uint32_t flags, int64_t d0, int64_t d1,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Declare a Linear module's weight [in, out] (TSR_PARAM_LINEAR: quantizable)
 * and, if `bias`, its ".bias"; the format names the module. */
tsr_status mb_decl_linear(const tsr_host *H, tsr_param_sink *s, int64_t in, int64_t out, int bias,
                          const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Formatted node name (valid until the next call). */
const char *mb_nm(mb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The weight of that formatted name; NULL and b->fail set if missing. */
tsr_tensor *mb_w(mb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* y = x W^T + bias (torch.nn.Linear): W [K, Nout], x [K, M] -> [Nout, M] */
tsr_tensor *mb_linear(mb *b, tsr_tensor *x, tsr_tensor *w, tsr_tensor *bias, const char *name);
/* A node shaped like x (elementwise ops, norms, ...). */
tsr_tensor *mb_op(mb *b, tsr_op op, tsr_tensor *x, tsr_tensor *y, const int32_t *p, int np,
                  const char *name);
tsr_tensor *mb_rms_norm(mb *b, tsr_tensor *x, tsr_tensor *w, float eps, float offset, const char *name);
tsr_tensor *mb_layer_norm(mb *b, tsr_tensor *x, tsr_tensor *w, tsr_tensor *bias, float eps,
                          const char *name);
/* A strided view [d0, d1, d2] of x; nb NULL = contiguous. */
tsr_tensor *mb_view3(mb *b, tsr_tensor *x, int64_t d0, int64_t d1, int64_t d2, const size_t *nb,
                     size_t offset, const char *name);
/* Rows [r0, r0 + n) of every column of a 2-D x [R, M] (a slice of a fused
 * projection), as a [n, M] view. */
tsr_tensor *mb_rows(mb *b, tsr_tensor *x, int64_t r0, int64_t n, const char *name);
/* The last column of x [D, N] as [D, 1] (logits_to_keep = 1). */
tsr_tensor *mb_last(mb *b, tsr_tensor *x, const char *name);

/* Self-attention core for layer `l`, from q [hd, H, N], k, v [hd, Hkv, N]
 * (any strides): RoPE on q and k when freq != NULL (rotating the first
 * rope_dim dims, cos/sin scaled by rope_scale), append k/v to the layer's
 * cache at n_past, causal attention (window 0 = none) -> [hd * H, N].
 * `pre` prefixes the node names ("model.layers.0.self_attn"). */
typedef struct mb_attn {
    tsr_tensor *pos, *freq;
    int rope_dim;
    float rope_scale;
    float scale;              /* softmax scale, usually 1/sqrt(hd) */
    int window;
    float softcap;
    int32_t n_past;
} mb_attn;
tsr_tensor *mb_attention(mb *b, int l, const char *pre, tsr_tensor *q, tsr_tensor *k, tsr_tensor *v,
                         const mb_attn *a);
/* The decoder's tail (LlamaModel.norm + lm_head, logits_to_keep): x
 * [D, N] -> norm(x) (RMSNorm with weight + offset) -> the last column
 * unless the batch wants every position -> logits through `head`; sets the
 * graph output.  Returns TSR_OK, or the status of the first failure (the
 * host has recorded it). */
tsr_status mb_head(mb *b, tsr_tensor *x, tsr_tensor *norm_w, float eps, float offset,
                   tsr_tensor *head, const tsr_batch *batch);

/* act_fn(gate_proj(h)) * up_proj(h) -> down_proj, with node and weight
 * names under `pre` ("model.layers.3.mlp"); op TSR_OP_SWIGLU or
 * TSR_OP_GEGLU (gelu_tanh selects the tanh approximation). */
tsr_tensor *mb_gated_mlp(mb *b, tsr_tensor *h, const char *pre, tsr_op op, int gelu_tanh, int bias);

/* The probe of a portable model plugin: it runs wherever it loads. */
int mb_probe_portable(const tsr_host *host, char *why, size_t len);
#endif
