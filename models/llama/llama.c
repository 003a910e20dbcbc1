/* models/llama/llama.c - the Llama family (transformers' modeling_llama.py,
 * modeling_mistral.py, modeling_qwen2.py): config.json -> weights -> graph.
 *
 * The forward pass reads top to bottom as LlamaModel.forward does; the
 * PyTorch line each stanza mirrors is cited.  Shapes use ne[] order:
 * "[D, N]" is N rows of D values (PyTorch [N, D]). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "graph.h"
#include "rope.h"

static const tsr_host *H;

typedef struct llama {
    char model_type[32];
    mb_dims d;                 /* sizes from config.json */
    float norm_eps;
    int attn_bias, o_bias, mlp_bias, tied;
    int sliding_window;        /* 0 = full attention */
    int max_window_layers;     /* qwen2: layers below use full attention */
    int act_gelu;              /* hidden_act: 0 silu, 1 gelu (erf), 2 gelu_tanh */
    rope_cfg rope;
} llama;

static int64_t cfg_int(const tsr_json *c, const char *k, int64_t dflt)
{
    return H->json_int(H->json_get(c, k), dflt);
}

static tsr_status llama_create(const tsr_host *host, const tsr_json *c, void **state)
{
    H = host;
    llama *m = calloc(1, sizeof *m);
    if (!m)
        return H->set_error(TSR_ERR_NOMEM, "llama: out of memory");
    snprintf(m->model_type, sizeof m->model_type, "%s",
             H->json_string(H->json_get(c, "model_type"), "llama"));
    tsr_status st = mb_read_dims(H, c, 2048, &m->d);
    if (st)
        goto fail;
    m->norm_eps = (float)H->json_real(H->json_get(c, "rms_norm_eps"), 1e-6);
    int is_qwen2 = !strcmp(m->model_type, "qwen2");
    /* qwen2: q/k/v carry a bias, o_proj none; llama: attention_bias for all four */
    m->attn_bias = is_qwen2 ? 1 : H->json_bool(H->json_get(c, "attention_bias"), 0);
    m->o_bias = is_qwen2 ? 0 : m->attn_bias;
    m->mlp_bias = H->json_bool(H->json_get(c, "mlp_bias"), 0);
    m->tied = H->json_bool(H->json_get(c, "tie_word_embeddings"), 0);
    const tsr_json *sw = H->json_get(c, "sliding_window");
    m->sliding_window = H->json_type(sw) == TSR_JSON_INT ? (int)H->json_int(sw, 0) : 0;
    m->max_window_layers = 0;
    if (is_qwen2) {
        if (!H->json_bool(H->json_get(c, "use_sliding_window"), 0))
            m->sliding_window = 0;
        m->max_window_layers = (int)cfg_int(c, "max_window_layers", m->d.n_layer);
    }
    const char *act = H->json_string(H->json_get(c, "hidden_act"), "silu");
    if (!strcmp(act, "silu") || !strcmp(act, "swish"))
        m->act_gelu = 0;
    else if (!strcmp(act, "gelu"))
        m->act_gelu = 1;
    else if (!strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_new"))
        m->act_gelu = 2;
    else {
        st = H->set_error(TSR_ERR_UNSUPPORTED, "config.json: hidden_act '%s' is not supported", act);
        goto fail;
    }
    if ((st = rope_parse(H, c, m->d.head_dim, &m->rope)))
        goto fail;
    *state = m;
    return TSR_OK;
fail:
    free(m);
    return st;
}

static void llama_destroy(void *state) { free(state); }

static tsr_status llama_info(void *state, tsr_model_info *out)
{
    mb_dims_info(&((llama *)state)->d, out);
    return TSR_OK;
}

/* --- weights ------------------------------------------------------------------ */

static tsr_status llama_declare(void *state, tsr_param_sink *s)
{
    llama *m = state;
    int64_t D = m->d.n_embd, F = m->d.n_ff, q = (int64_t)m->d.n_head * m->d.head_dim,
            kv = (int64_t)m->d.n_kv_head * m->d.head_dim;
    tsr_status st;
#define D_(call) do { if ((st = (call))) return st; } while (0)
    D_(mb_decl(H, s, 0, D, m->d.n_vocab, "model.embed_tokens.weight"));
    for (int l = 0; l < m->d.n_layer; l++) {
        const char *p = "model.layers";
        D_(mb_decl(H, s, 0, D, 0, "%s.%d.input_layernorm.weight", p, l));
        D_(mb_decl_linear(H, s, D, q, m->attn_bias, "%s.%d.self_attn.q_proj", p, l));
        D_(mb_decl_linear(H, s, D, kv, m->attn_bias, "%s.%d.self_attn.k_proj", p, l));
        D_(mb_decl_linear(H, s, D, kv, m->attn_bias, "%s.%d.self_attn.v_proj", p, l));
        D_(mb_decl_linear(H, s, q, D, m->o_bias, "%s.%d.self_attn.o_proj", p, l));
        D_(mb_decl(H, s, 0, D, 0, "%s.%d.post_attention_layernorm.weight", p, l));
        D_(mb_decl_linear(H, s, D, F, m->mlp_bias, "%s.%d.mlp.gate_proj", p, l));
        D_(mb_decl_linear(H, s, D, F, m->mlp_bias, "%s.%d.mlp.up_proj", p, l));
        D_(mb_decl_linear(H, s, F, D, m->mlp_bias, "%s.%d.mlp.down_proj", p, l));
    }
    D_(mb_decl(H, s, 0, D, 0, "model.norm.weight"));
    /* tied: lm_head shares embed_tokens; a stored copy is accepted and ignored */
    D_(mb_decl(H, s, TSR_PARAM_LINEAR | (m->tied ? TSR_PARAM_OPTIONAL : 0), D, m->d.n_vocab,
               "lm_head.weight"));
#undef D_
    return TSR_OK;
}

/* --- forward ------------------------------------------------------------------------ */

static tsr_status llama_build(void *state, tsr_graph *g, const tsr_batch *batch)
{
    llama *m = state;
    mb b = {H, g, 0, ""};
    int64_t N = batch->n_tokens, hd = m->d.head_dim;

    /* RoPE frequencies for this length (LlamaRotaryEmbedding) */
    float inv[512], attn_factor;
    if (m->rope.dim / 2 > 512 || m->rope.dim < 2)
        return H->set_error(TSR_ERR_UNSUPPORTED, "llama: rotary dimension %d", m->rope.dim);
    rope_inv_freq(&m->rope, batch->n_past + N, inv, &attn_factor);
    int64_t nf = m->rope.dim / 2;
    mb_attn at = {H->input_positions(g), H->constant(g, TSR_DTYPE_F32, 1, &nf, inv, "rope.inv_freq"),
                  m->rope.dim, attn_factor, 1.0f / sqrtf((float)hd), 0, 0.0f, batch->n_past};

    /* inputs_embeds = self.embed_tokens(input_ids) */
    tsr_tensor *emb = mb_w(&b, "model.embed_tokens.weight");
    int64_t ne[2] = {m->d.n_embd, N};
    tsr_tensor *src2[2] = {emb, H->input_ids(g)};
    tsr_tensor *x = emb ? H->node(g, TSR_OP_GET_ROWS, TSR_DTYPE_F32, 2, ne, src2, 2, NULL, 0,
                                  "model.embed_tokens") : NULL;

    for (int l = 0; l < m->d.n_layer && x && !b.fail; l++) {
        char pre[64], att[80], mlp[80];
        snprintf(pre, sizeof pre, "model.layers.%d", l);
        snprintf(att, sizeof att, "%s.self_attn", pre);
        snprintf(mlp, sizeof mlp, "%s.mlp", pre);
        /* hidden_states = self.input_layernorm(hidden_states) */
        tsr_tensor *h = mb_rms_norm(&b, x, mb_w(&b, "%s.input_layernorm.weight", pre), m->norm_eps,
                                    0.0f, mb_nm(&b, "%s.input_layernorm", pre));
        /* q/k/v = self.{q,k,v}_proj(hidden_states).view(hidden_shape) */
        tsr_tensor *q = mb_linear(&b, h, mb_w(&b, "%s.q_proj.weight", att),
                                  m->attn_bias ? mb_w(&b, "%s.q_proj.bias", att) : NULL,
                                  mb_nm(&b, "%s.q_proj", att));
        tsr_tensor *k = mb_linear(&b, h, mb_w(&b, "%s.k_proj.weight", att),
                                  m->attn_bias ? mb_w(&b, "%s.k_proj.bias", att) : NULL,
                                  mb_nm(&b, "%s.k_proj", att));
        tsr_tensor *v = mb_linear(&b, h, mb_w(&b, "%s.v_proj.weight", att),
                                  m->attn_bias ? mb_w(&b, "%s.v_proj.bias", att) : NULL,
                                  mb_nm(&b, "%s.v_proj", att));
        q = mb_view3(&b, q, hd, m->d.n_head, N, NULL, 0, mb_nm(&b, "%s.q_heads", att));
        k = mb_view3(&b, k, hd, m->d.n_kv_head, N, NULL, 0, mb_nm(&b, "%s.k_heads", att));
        v = mb_view3(&b, v, hd, m->d.n_kv_head, N, NULL, 0, mb_nm(&b, "%s.v_heads", att));
        /* RoPE, cache update, eager attention; sliding window on the layers that have it */
        at.window = (m->sliding_window > 0 && l >= m->max_window_layers) ? m->sliding_window : 0;
        tsr_tensor *a = mb_attention(&b, l, att, q, k, v, &at);
        /* hidden_states = residual + self.o_proj(attn_output) */
        tsr_tensor *o = mb_linear(&b, a, mb_w(&b, "%s.o_proj.weight", att),
                                  m->o_bias ? mb_w(&b, "%s.o_proj.bias", att) : NULL,
                                  mb_nm(&b, "%s.o_proj", att));
        x = o ? mb_op(&b, TSR_OP_ADD, x, o, NULL, 0, mb_nm(&b, "%s.attn_residual", pre)) : NULL;
        /* hidden_states = residual + self.mlp(self.post_attention_layernorm(hidden_states)) */
        h = mb_rms_norm(&b, x, mb_w(&b, "%s.post_attention_layernorm.weight", pre), m->norm_eps,
                        0.0f, mb_nm(&b, "%s.post_attention_layernorm", pre));
        tsr_tensor *dn = mb_gated_mlp(&b, h, mlp, m->act_gelu ? TSR_OP_GEGLU : TSR_OP_SWIGLU,
                                      m->act_gelu == 2, m->mlp_bias);
        x = dn ? mb_op(&b, TSR_OP_ADD, x, dn, NULL, 0, mb_nm(&b, "%s.mlp_residual", pre)) : NULL;
    }
    if (!x || b.fail)
        return TSR_ERR_NOT_FOUND; /* the host has set the error */
    tsr_tensor *head = m->tied ? emb : mb_w(&b, "lm_head.weight");
    return mb_head(&b, x, mb_w(&b, "model.norm.weight"), m->norm_eps, 0.0f, head, batch);
}

static const tsr_model_vtable llama_vtable = {
    .struct_size = sizeof(tsr_model_vtable),
    .create = llama_create,
    .destroy = llama_destroy,
    .info = llama_info,
    .declare_params = llama_declare,
    .build = llama_build,
};

static const tsr_plugin_desc llama_desc = TSR_PLUGIN_DESC_INIT(
    TSR_PLUGIN_MODEL, "llama", "0.1.0",
    "Llama, Mistral and Qwen2 decoder-only transformers", mb_probe_portable, &llama_vtable);

TSR_PLUGIN_DEFINE_ENTRY
{
    H = host;
    return &llama_desc;
}
