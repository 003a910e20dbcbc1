/* models/moe/moe.c - sparse mixture-of-experts decoders:
 *   mixtral   (transformers' modeling_mixtral.py, MixtralForCausalLM):
 *             every layer's MLP is block_sparse_moe with top-k routing,
 *             the kept weights always renormalised to sum 1;
 *   qwen2_moe (modeling_qwen2_moe.py, Qwen2MoeForCausalLM): top-k routing
 *             (renormalised if norm_topk_prob), plus a shared expert scaled
 *             by sigmoid(shared_expert_gate(x)); layers in mlp_only_layers
 *             or off the decoder_sparse_step grid keep a dense MLP; q/k/v
 *             carry biases.
 * Attention is Llama's (GQA, RoPE, optional sliding window).
 *
 * Routing with the op vocabulary as it stands: MOE_GATE turns the router
 * logits [E, N] into dense weights with zeros for the experts a token does
 * not use; every expert then runs on EVERY token and its output is scaled by
 * its weight column (a [1, N] view of the weights) and summed.  Correct, but
 * E / top_k times the expert FLOPs of a real sparse dispatch: fine for
 * checking fidelity, wasteful for large models until a gather/scatter (or
 * a fused MoE) op exists.
 * Shapes use ne[] order: "[D, N]" is N rows of D values (PyTorch [N, D]). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "graph.h"
#include "rope.h"

static const tsr_host *H;

#define MAX_LAYERS 1024

typedef struct moe {
    int qwen;                  /* 1 qwen2_moe, 0 mixtral */
    mb_dims d;                 /* sizes from config.json */
    int n_expert, top_k, norm_topk, n_ff_expert, n_ff_shared;
    float eps;
    int qkv_bias, tied;
    unsigned char sparse[MAX_LAYERS];   /* layer l has the MoE block */
    int window[MAX_LAYERS];             /* sliding window of layer l, 0 = none */
    rope_cfg rope;
} moe;

static int64_t ci(const tsr_json *c, const char *k, int64_t dflt)
{
    return H->json_int(H->json_get(c, k), dflt);
}

static int in_list(const tsr_json *arr, int v)
{
    if (!arr || H->json_type(arr) != TSR_JSON_ARRAY)
        return 0;
    for (size_t i = 0; i < H->json_size(arr); i++)
        if (H->json_int(H->json_at(arr, i), -1) == v)
            return 1;
    return 0;
}

static tsr_status moe_create(const tsr_host *host, const tsr_json *c, void **state)
{
    H = host;
    moe *m = calloc(1, sizeof *m);
    if (!m)
        return H->set_error(TSR_ERR_NOMEM, "moe: out of memory");
    tsr_status st = TSR_OK;
    m->qwen = !strcmp(H->json_string(H->json_get(c, "model_type"), ""), "qwen2_moe");
    if ((st = mb_read_dims(H, c, 4096, &m->d)))
        goto fail;
    m->n_expert = (int)ci(c, m->qwen ? "num_experts" : "num_local_experts", 0);
    m->top_k = (int)ci(c, "num_experts_per_tok", 2);
    m->n_ff_expert = m->qwen ? (int)ci(c, "moe_intermediate_size", 0) : m->d.n_ff;
    m->n_ff_shared = m->qwen ? (int)ci(c, "shared_expert_intermediate_size", 0) : 0;
    const char *keys[] = {"num_experts_per_tok", m->qwen ? "num_experts" : "num_local_experts",
                          m->qwen ? "moe_intermediate_size" : "intermediate_size"};
    int vals[] = {m->top_k, m->n_expert, m->n_ff_expert};
    for (int i = 0; i < 3 && !st; i++)
        if (vals[i] <= 0)
            st = H->set_error(TSR_ERR_FORMAT, "config.json: '%s' must be a positive integer", keys[i]);
    if (!st && m->top_k > m->n_expert)
        st = H->set_error(TSR_ERR_FORMAT, "config.json: num_experts_per_tok (%d) exceeds the %d experts",
                          m->top_k, m->n_expert);
    if (!st && m->d.n_layer > MAX_LAYERS)
        st = H->set_error(TSR_ERR_UNSUPPORTED, "config.json: %d layers (the moe plugin takes %d)",
                          m->d.n_layer, MAX_LAYERS);
    if (st)
        goto fail;
    m->eps = (float)H->json_real(H->json_get(c, "rms_norm_eps"), m->qwen ? 1e-6 : 1e-5);
    m->tied = H->json_bool(H->json_get(c, "tie_word_embeddings"), 0);
    /* MixtralTopKRouter always renormalises; Qwen2Moe only if norm_topk_prob */
    m->norm_topk = m->qwen ? H->json_bool(H->json_get(c, "norm_topk_prob"), 0) : 1;
    m->qkv_bias = m->qwen ? H->json_bool(H->json_get(c, "qkv_bias"), 1) : 0;
    const tsr_json *sw = H->json_get(c, "sliding_window");
    int window = H->json_type(sw) == TSR_JSON_INT ? (int)H->json_int(sw, 0) : 0;
    const tsr_json *lt = H->json_get(c, "layer_types");
    if (m->qwen && !H->json_bool(H->json_get(c, "use_sliding_window"), 0))
        window = 0;
    int step = (int)ci(c, "decoder_sparse_step", 1), mwl = (int)ci(c, "max_window_layers", m->d.n_layer);
    const tsr_json *mlp_only = H->json_get(c, "mlp_only_layers");
    for (int l = 0; l < m->d.n_layer; l++) {
        /* Qwen2MoeDecoderLayer: sparse unless in mlp_only_layers, every step-th */
        m->sparse[l] = !m->qwen || (!in_list(mlp_only, l) && step > 0 && (l + 1) % step == 0);
        if (lt && H->json_type(lt) == TSR_JSON_ARRAY && (size_t)l < H->json_size(lt))
            m->window[l] = !strcmp(H->json_string(H->json_at(lt, (size_t)l), ""), "sliding_attention")
                               ? window : 0;
        else
            m->window[l] = m->qwen ? (l >= mwl ? window : 0) : window;
    }
    if (m->qwen && m->n_ff_shared <= 0) {
        st = H->set_error(TSR_ERR_FORMAT, "config.json: 'shared_expert_intermediate_size' must be a "
                          "positive integer");
        goto fail;
    }
    const char *act = H->json_string(H->json_get(c, "hidden_act"), "silu");
    if (strcmp(act, "silu") && strcmp(act, "swish")) {
        st = H->set_error(TSR_ERR_UNSUPPORTED, "config.json: hidden_act '%s' is not supported by the moe "
                          "plugin (silu)", act);
        goto fail;
    }
    if ((st = rope_parse(H, c, m->d.head_dim, &m->rope)))
        goto fail;
    /* MixtralConfig's default rope_theta is 1e6 */
    if (!m->qwen && !H->json_get(c, "rope_theta") && !H->json_get(c, "rope_parameters"))
        m->rope.base = 1e6;
    *state = m;
    return TSR_OK;
fail:
    free(m);
    return st;
}

static void moe_destroy(void *state) { free(state); }

static tsr_status moe_info(void *state, tsr_model_info *out)
{
    mb_dims_info(&((moe *)state)->d, out);
    return TSR_OK;
}

/* module names of expert e's gate / up / down projections */
static const char *ffn_name(const moe *m, int which)
{
    static const char *q[3] = {"gate_proj", "up_proj", "down_proj"}, *x[3] = {"w1", "w3", "w2"};
    return m->qwen ? q[which] : x[which];
}

static const char *block(const moe *m) { return m->qwen ? "mlp" : "block_sparse_moe"; }

static tsr_status moe_declare(void *state, tsr_param_sink *s)
{
    moe *m = state;
    int64_t D = m->d.n_embd, q = (int64_t)m->d.n_head * m->d.head_dim, kv = (int64_t)m->d.n_kv_head * m->d.head_dim;
    tsr_status st;
#define D_(...) do { if ((st = mb_decl(H, s, __VA_ARGS__))) return st; } while (0)
#define L_(...) do { if ((st = mb_decl_linear(H, s, __VA_ARGS__))) return st; } while (0)
    D_(0, D, m->d.n_vocab, "model.embed_tokens.weight");
    for (int l = 0; l < m->d.n_layer; l++) {
        const char *p = "model.layers";
        D_(0, D, 0, "%s.%d.input_layernorm.weight", p, l);
        L_(D, q, m->qkv_bias, "%s.%d.self_attn.q_proj", p, l);
        L_(D, kv, m->qkv_bias, "%s.%d.self_attn.k_proj", p, l);
        L_(D, kv, m->qkv_bias, "%s.%d.self_attn.v_proj", p, l);
        L_(q, D, 0, "%s.%d.self_attn.o_proj", p, l);
        D_(0, D, 0, "%s.%d.post_attention_layernorm.weight", p, l);
        if (!m->sparse[l]) { /* Qwen2MoeMLP(intermediate_size) */
            L_(D, m->d.n_ff, 0, "%s.%d.mlp.gate_proj", p, l);
            L_(D, m->d.n_ff, 0, "%s.%d.mlp.up_proj", p, l);
            L_(m->d.n_ff, D, 0, "%s.%d.mlp.down_proj", p, l);
            continue;
        }
        D_(0, D, m->n_expert, "%s.%d.%s.gate.weight", p, l, block(m));
        int64_t F = m->n_ff_expert;
        for (int e = 0; e < m->n_expert; e++) {
            L_(D, F, 0, "%s.%d.%s.experts.%d.%s", p, l, block(m), e, ffn_name(m, 0));
            L_(D, F, 0, "%s.%d.%s.experts.%d.%s", p, l, block(m), e, ffn_name(m, 1));
            L_(F, D, 0, "%s.%d.%s.experts.%d.%s", p, l, block(m), e, ffn_name(m, 2));
        }
        if (m->qwen) {
            L_(D, m->n_ff_shared, 0, "%s.%d.mlp.shared_expert.gate_proj", p, l);
            L_(D, m->n_ff_shared, 0, "%s.%d.mlp.shared_expert.up_proj", p, l);
            L_(m->n_ff_shared, D, 0, "%s.%d.mlp.shared_expert.down_proj", p, l);
            D_(0, D, 1, "%s.%d.mlp.shared_expert_gate.weight", p, l);
        }
    }
    D_(0, D, 0, "model.norm.weight");
    D_(m->tied ? TSR_PARAM_OPTIONAL : 0, D, m->d.n_vocab, "lm_head.weight");
#undef D_
#undef L_
    return TSR_OK;
}

/* down(silu(gate(x)) * up(x)) for the module `mod` (gate/up/down names) */
static tsr_tensor *swiglu_mlp(mb *b, const moe *m, tsr_tensor *x, const char *mod, int qwen_names)
{
    const char *g = qwen_names ? "gate_proj" : ffn_name(m, 0), *u = qwen_names ? "up_proj" : ffn_name(m, 1),
               *d = qwen_names ? "down_proj" : ffn_name(m, 2);
    tsr_tensor *gt = mb_linear(b, x, mb_w(b, "%s.%s.weight", mod, g), NULL, mb_nm(b, "%s.%s", mod, g));
    tsr_tensor *up = mb_linear(b, x, mb_w(b, "%s.%s.weight", mod, u), NULL, mb_nm(b, "%s.%s", mod, u));
    tsr_tensor *act = up ? mb_op(b, TSR_OP_SWIGLU, gt, up, NULL, 0, mb_nm(b, "%s.act", mod)) : NULL;
    return mb_linear(b, act, mb_w(b, "%s.%s.weight", mod, d), NULL, mb_nm(b, "%s.%s", mod, d));
}

/* The sparse MoE block on h [D, N] (see the file comment on routing). */
static tsr_tensor *moe_block(mb *b, const moe *m, tsr_tensor *h, const char *pre)
{
    char mod[96], ex[128];
    snprintf(mod, sizeof mod, "%s.%s", pre, block(m));
    int64_t N = h->ne[1], E = m->n_expert;
    /* router_logits = self.gate(hidden_states); softmax, topk (, renormalise) */
    tsr_tensor *logits = mb_linear(b, h, mb_w(b, "%s.gate.weight", mod), NULL, mb_nm(b, "%s.gate", mod));
    int32_t gp[2] = {m->top_k, m->norm_topk};
    tsr_tensor *wts = logits ? mb_op(b, TSR_OP_MOE_GATE, logits, NULL, gp, 2, mb_nm(b, "%s.routing", mod)) : NULL;
    tsr_tensor *out = NULL;
    for (int e = 0; e < E && wts; e++) {
        snprintf(ex, sizeof ex, "%s.experts.%d", mod, e);
        tsr_tensor *y = swiglu_mlp(b, m, h, ex, 0);
        /* this expert's routing weight per token: row e of wts as [1, N] */
        int64_t ne[2] = {1, N};
        size_t nb[2] = {sizeof(float), wts->nb[1]};
        tsr_tensor *w = b->H->view(b->g, wts, 2, ne, nb, (size_t)e * sizeof(float), mb_nm(b, "%s.weight", ex));
        y = y && w ? mb_op(b, TSR_OP_MUL, y, w, NULL, 0, mb_nm(b, "%s.weighted", ex)) : NULL;
        out = !out ? y : y ? mb_op(b, TSR_OP_ADD, out, y, NULL, 0, mb_nm(b, "%s.sum", ex)) : NULL;
        if (!out)
            return NULL;
    }
    if (m->qwen && out) {
        /* F.sigmoid(self.shared_expert_gate(x)) * self.shared_expert(x) */
        char sh[112];
        snprintf(sh, sizeof sh, "%s.shared_expert", mod);
        tsr_tensor *y = swiglu_mlp(b, m, h, sh, 1);
        tsr_tensor *gl = mb_linear(b, h, mb_w(b, "%s.shared_expert_gate.weight", mod), NULL,
                                   mb_nm(b, "%s.shared_expert_gate", mod));
        tsr_tensor *gs = gl ? mb_op(b, TSR_OP_SIGMOID, gl, NULL, NULL, 0, mb_nm(b, "%s.shared_gate_sigmoid", mod))
                            : NULL;
        y = y && gs ? mb_op(b, TSR_OP_MUL, y, gs, NULL, 0, mb_nm(b, "%s.shared_weighted", mod)) : NULL;
        out = y ? mb_op(b, TSR_OP_ADD, out, y, NULL, 0, mb_nm(b, "%s.out", mod)) : NULL;
    }
    return out;
}

static tsr_status moe_build(void *state, tsr_graph *g, const tsr_batch *batch)
{
    moe *m = state;
    mb b = {H, g, 0, ""};
    int64_t N = batch->n_tokens, hd = m->d.head_dim;
    tsr_tensor *pos = H->input_positions(g);

    float inv[ROPE_MAX_HALF], attn_factor;
    rope_inv_freq(&m->rope, batch->n_past + N, inv, &attn_factor);
    int64_t nf = m->rope.dim / 2;
    tsr_tensor *freq = H->constant(g, TSR_DTYPE_F32, 1, &nf, inv, "rope.inv_freq");

    /* inputs_embeds = self.embed_tokens(input_ids) */
    tsr_tensor *emb = mb_w(&b, "model.embed_tokens.weight");
    int64_t ne[2] = {m->d.n_embd, N};
    tsr_tensor *src[2] = {emb, H->input_ids(g)};
    tsr_tensor *x = emb ? H->node(g, TSR_OP_GET_ROWS, TSR_DTYPE_F32, 2, ne, src, 2, NULL, 0,
                                  "model.embed_tokens") : NULL;

    for (int l = 0; l < m->d.n_layer && x && !b.fail; l++) {
        char pre[64], ap[80];
        snprintf(pre, sizeof pre, "model.layers.%d", l);
        snprintf(ap, sizeof ap, "%s.self_attn", pre);
        tsr_tensor *h = mb_rms_norm(&b, x, mb_w(&b, "%s.input_layernorm.weight", pre), m->eps, 0.0f,
                                    mb_nm(&b, "%s.input_layernorm", pre));
        /* q/k/v = self.{q,k,v}_proj(hidden_states).view(hidden_shape) */
        tsr_tensor *qkv[3];
        const char *qn[3] = {"q_proj", "k_proj", "v_proj"};
        for (int i = 0; i < 3; i++) {
            qkv[i] = mb_linear(&b, h, mb_w(&b, "%s.%s.weight", ap, qn[i]),
                               m->qkv_bias ? mb_w(&b, "%s.%s.bias", ap, qn[i]) : NULL, mb_nm(&b, "%s.%s", ap, qn[i]));
            qkv[i] = mb_view3(&b, qkv[i], hd, i ? m->d.n_kv_head : m->d.n_head, N, NULL, 0,
                              mb_nm(&b, "%s.%s_heads", ap, qn[i]));
        }
        mb_attn at = {pos, freq, m->rope.dim, attn_factor, 1.0f / sqrtf((float)hd), m->window[l], 0.0f,
                      batch->n_past};
        tsr_tensor *a = mb_attention(&b, l, ap, qkv[0], qkv[1], qkv[2], &at);
        tsr_tensor *o = mb_linear(&b, a, mb_w(&b, "%s.o_proj.weight", ap), NULL, mb_nm(&b, "%s.o_proj", ap));
        x = o ? mb_op(&b, TSR_OP_ADD, x, o, NULL, 0, mb_nm(&b, "%s.attn_residual", pre)) : NULL;
        h = mb_rms_norm(&b, x, mb_w(&b, "%s.post_attention_layernorm.weight", pre), m->eps, 0.0f,
                        mb_nm(&b, "%s.post_attention_layernorm", pre));
        tsr_tensor *f;
        if (m->sparse[l]) {
            f = h ? moe_block(&b, m, h, pre) : NULL;
        } else {
            char mod[80];
            snprintf(mod, sizeof mod, "%s.mlp", pre);
            f = h ? swiglu_mlp(&b, m, h, mod, 1) : NULL;
        }
        x = f ? mb_op(&b, TSR_OP_ADD, x, f, NULL, 0, mb_nm(&b, "%s.mlp_residual", pre)) : NULL;
    }
    if (!x || b.fail)
        return TSR_ERR_NOT_FOUND; /* the host has set the error */
    tsr_tensor *head = m->tied ? emb : mb_w(&b, "lm_head.weight");
    return mb_head(&b, x, mb_w(&b, "model.norm.weight"), m->eps, 0.0f, head, batch);
}

static const tsr_model_vtable moe_vtable = {
    .struct_size = sizeof(tsr_model_vtable),
    .create = moe_create,
    .destroy = moe_destroy,
    .info = moe_info,
    .declare_params = moe_declare,
    .build = moe_build,
};

static const tsr_plugin_desc moe_desc = TSR_PLUGIN_DESC_INIT(
    TSR_PLUGIN_MODEL, "moe", "0.1.0", "Mixtral and Qwen2-MoE sparse mixture-of-experts decoders",
    mb_probe_portable, &moe_vtable);

TSR_PLUGIN_DEFINE_ENTRY
{
    H = host;
    return &moe_desc;
}
