/* tessera/plugin/tensor.h - tensors and the op vocabulary of the graph.
 *
 * Part of the plugin SDK (ABI 1.x).  A graph is a list of tsr_tensor nodes in
 * execution order.  Leaves (op == TSR_OP_NONE) are weights and inputs; every
 * other node is computed by a backend from its src[] and op_params.
 *
 * Layout convention (as ggml): ne[0] is the innermost, contiguous dimension.
 * A PyTorch tensor of shape [rows, cols] is ne = {cols, rows}.  nb[] are
 * byte strides; nb[0] is the element size for plain dtypes.
 *
 * Tensors are owned by the core; plugins only read them (backends also write
 * node->data).  The struct is append-only: new members go last, and a plugin
 * reads a member only when struct_size covers it.
 */
#ifndef TESSERA_PLUGIN_TENSOR_H
#define TESSERA_PLUGIN_TENSOR_H

#include "../types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TSR_MAX_DIMS 4
#define TSR_MAX_SRC 6
#define TSR_MAX_OP_PARAMS 16

/* The op vocabulary.  Append-only: numbers are never reused.  Shapes use the
 * ne[] convention above; "x [K, M]" means ne = {K, M}: M rows of K values. */
typedef enum tsr_op {
    TSR_OP_NONE = 0,      /* leaf: weight or input, data already set */
    TSR_OP_GET_ROWS = 1,  /* src0 table [D, V], src1 ids I32 [N] -> [D, N] f32 */
    TSR_OP_RMS_NORM = 2,  /* src0 x [D, N], src1 weight [D] or NULL;
                             p.f[0] eps, p.f[1] added to weight (gemma: 1) */
    TSR_OP_LAYER_NORM = 3,/* src0 x [D, N], src1 weight, src2 bias; p.f[0] eps */
    TSR_OP_MUL_MAT = 4,   /* y = x W^T + b: src0 W [K, Nout] (any weight
                             format), src1 x [K, M] f32, src2 bias [Nout] or
                             NULL -> [Nout, M] f32 (torch.nn.Linear) */
    TSR_OP_ADD = 5,       /* src0 [D, N] + src1: [D, N], or broadcast along
                             any dimension where src1 has size 1 */
    TSR_OP_MUL = 6,       /* src0 [D, N] * src1, broadcast as TSR_OP_ADD */
    TSR_OP_SCALE = 7,     /* src0 * p.f[0] */
    TSR_OP_SILU = 8,      /* x * sigmoid(x) */
    TSR_OP_GELU = 9,      /* p.i[0]: 0 erf (exact), 1 tanh approximation */
    TSR_OP_SWIGLU = 10,   /* silu(src0) * src1 (LlamaMLP act_fn(gate)*up) */
    TSR_OP_GEGLU = 11,    /* gelu(src0) * src1; p.i[0] as TSR_OP_GELU */
    TSR_OP_ROPE = 12,     /* src0 x [hd, H, N], src1 positions I32 [N],
                             src2 inv_freq f32 [rot/2]; p.i[0] mode
                             (0 rotate_half/neox, 1 interleaved/gptj),
                             p.i[1] rot dims (<= hd), p.f[2] cos/sin scale
                             (yarn/longrope attention factor, 1.0 default) */
    TSR_OP_KV_STORE = 13, /* copy src0 new [hd, Hkv, N] into cache src1
                             [hd, Hkv, C] at rows p.i[0]..p.i[0]+N-1;
                             result aliases src1 (in place) */
    TSR_OP_ATTENTION = 14,/* causal softmax(q k^T * scale + mask) v:
                             src0 q [hd, H, N], src1 K cache [hd, Hkv, C],
                             src2 V cache [hd, Hkv, C], src3 positions I32 [N]
                             (absolute position of each query);
                             p.i[0] kv_len (valid cache rows), p.f[1] scale,
                             p.i[2] sliding window (0 = none), p.f[3] logit
                             softcap (0 = none) -> [hd, H, N].  H % Hkv == 0
                             (GQA/MQA). */
    TSR_OP_SOFTMAX = 15,  /* softmax over ne[0] */
    TSR_OP_CPY = 16,      /* convert/copy src0 into the node's dtype/layout */
    TSR_OP_TANH = 17,
    TSR_OP_RELU = 18,
    TSR_OP_SIGMOID = 19,
    TSR_OP_MOE_GATE = 20, /* router logits src0 [E, N] -> dense weights
                             [E, N]: softmax over E, keep the p.i[0] largest
                             (top_k), zero the rest; p.i[1] = 1 renormalises
                             the kept ones to sum 1 (norm_topk_prob) */
    TSR_OP_COUNT_
} tsr_op;

/* Flags on a tensor. */
#define TSR_TENSOR_FLAG_PARAM   0x1u  /* model weight (read-only)            */
#define TSR_TENSOR_FLAG_INPUT   0x2u  /* per-step input (ids, positions)     */
#define TSR_TENSOR_FLAG_OUTPUT  0x4u  /* graph output (kept after compute)   */
#define TSR_TENSOR_FLAG_VIEW    0x8u  /* aliases src0's data, no compute     */
#define TSR_TENSOR_FLAG_CACHE   0x10u /* persistent state (KV cache)         */

typedef struct tsr_tensor tsr_tensor;

struct tsr_tensor {
    uint32_t struct_size;          /* sizeof(tsr_tensor) of the core       */
    uint32_t dtype;                /* tsr_dtype or a weight format         */
    int64_t ne[TSR_MAX_DIMS];      /* elements per dim; unused dims are 1  */
    size_t nb[TSR_MAX_DIMS];       /* strides in bytes                      */
    void *data;                    /* storage (host or device address)     */
    uint32_t op;                   /* tsr_op                               */
    uint32_t flags;                /* TSR_TENSOR_FLAG_*                    */
    int32_t op_params[TSR_MAX_OP_PARAMS]; /* ints, or floats by bits       */
    tsr_tensor *src[TSR_MAX_SRC];  /* inputs, NULL-terminated/padded       */
    const char *name;              /* unique in the graph, e.g.
                                      "model.layers.0.self_attn.q" */
    int32_t device;                /* run device index; -1 = host          */
    uint32_t backend;              /* index of the backend that runs it    */
    const void *format_data;       /* weight-format side data (scales...)
                                      owned by the quantizer; NULL if none */
    /* since 1.0: append new members below this line only. */
};

/* Parameter access helpers (header-only, no ABI surface). */
static inline float tsr_param_f(const tsr_tensor *t, int i)
{
    union { int32_t i; float f; } u;
    u.i = t->op_params[i];
    return u.f;
}
static inline int32_t tsr_param_i(const tsr_tensor *t, int i)
{
    return t->op_params[i];
}
static inline void tsr_param_set_f(int32_t *p, int i, float v)
{
    union { int32_t i; float f; } u;
    u.f = v;
    p[i] = u.i;
}

/* Number of elements. */
static inline int64_t tsr_tensor_nelements(const tsr_tensor *t)
{
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

#ifdef __cplusplus
}
#endif
#endif /* TESSERA_PLUGIN_TENSOR_H */
