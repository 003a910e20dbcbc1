/* models/phi3/phi3.c - Phi-3 (transformers' modeling_phi3.py,
 * Phi3ForCausalLM): Llama-like blocks with a fused qkv_proj and a fused
 * gate_up_proj (split here by strided views, no copy), partial rotary
 * embeddings, longrope ("su") scaling with short/long factors and its
 * attention factor, and an optional sliding window.
 * Shapes use ne[] order: "[D, N]" is N rows of D values (PyTorch [N, D]). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "graph.h"
#include "rope.h"

static const tsr_host *H;

typedef struct phi3 {
    mb_dims d;                 /* sizes from config.json */
    float eps;
    int tied, sliding_window;
    rope_cfg rope;
} phi3;

static tsr_status phi3_create(const tsr_host *host, const tsr_json *c, void **state)
{
    H = host;
    phi3 *m = calloc(1, sizeof *m);
    if (!m)
        return H->set_error(TSR_ERR_NOMEM, "phi3: out of memory");
    tsr_status st = mb_read_dims(H, c, 4096, &m->d);
    if (st)
        goto fail;
    m->eps = (float)H->json_real(H->json_get(c, "rms_norm_eps"), 1e-5);
    m->tied = H->json_bool(H->json_get(c, "tie_word_embeddings"), 0);
    const tsr_json *sw = H->json_get(c, "sliding_window");
    m->sliding_window = H->json_type(sw) == TSR_JSON_INT ? (int)H->json_int(sw, 0) : 0;
    const char *act = H->json_string(H->json_get(c, "hidden_act"), "silu");
    if (strcmp(act, "silu") && strcmp(act, "swish")) {
        st = H->set_error(TSR_ERR_UNSUPPORTED, "config.json: hidden_act '%s' is not supported by the phi3 "
                          "plugin (silu)", act);
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

static void phi3_destroy(void *state) { free(state); }

static tsr_status phi3_info(void *state, tsr_model_info *out)
{
    phi3 *m = state;
    mb_dims_info(&m->d, out);
    /* Phi3ForCausalLM.prepare_inputs_for_generation drops the cache when
     * the sequence grows past original_max_position_embeddings, so that
     * longrope's long factors apply to every position from then on */
    if (out->struct_size >= offsetof(tsr_model_info, kv_recompute_at) + sizeof(int32_t) &&
        m->rope.kind == ROPE_LONGROPE && m->rope.original_max_pos > 0)
        out->kv_recompute_at = (int32_t)m->rope.original_max_pos;
    return TSR_OK;
}

static tsr_status phi3_declare(void *state, tsr_param_sink *s)
{
    phi3 *m = state;
    int64_t D = m->d.n_embd, F = m->d.n_ff, q = (int64_t)m->d.n_head * m->d.head_dim,
            kv = (int64_t)m->d.n_kv_head * m->d.head_dim;
    tsr_status st;
#define D_(...) do { if ((st = mb_decl(H, s, __VA_ARGS__))) return st; } while (0)
    D_(0, D, m->d.n_vocab, "model.embed_tokens.weight");
    for (int l = 0; l < m->d.n_layer; l++) {
        const char *p = "model.layers";
        D_(0, D, 0, "%s.%d.input_layernorm.weight", p, l);
        D_(TSR_PARAM_LINEAR, D, q + 2 * kv, "%s.%d.self_attn.qkv_proj.weight", p, l);
        D_(TSR_PARAM_LINEAR, q, D, "%s.%d.self_attn.o_proj.weight", p, l);
        D_(0, D, 0, "%s.%d.post_attention_layernorm.weight", p, l);
        D_(TSR_PARAM_LINEAR, D, 2 * F, "%s.%d.mlp.gate_up_proj.weight", p, l);
        D_(TSR_PARAM_LINEAR, F, D, "%s.%d.mlp.down_proj.weight", p, l);
    }
    D_(0, D, 0, "model.norm.weight");
    D_(TSR_PARAM_LINEAR | (m->tied ? TSR_PARAM_OPTIONAL : 0), D, m->d.n_vocab, "lm_head.weight");
#undef D_
    return TSR_OK;
}

static tsr_status phi3_build(void *state, tsr_graph *g, const tsr_batch *batch)
{
    phi3 *m = state;
    mb b = {H, g, 0, ""};
    int64_t N = batch->n_tokens, hd = m->d.head_dim, q_sz = (int64_t)m->d.n_head * hd,
            kv_sz = (int64_t)m->d.n_kv_head * hd;
    tsr_tensor *pos = H->input_positions(g);

    /* Phi3RotaryEmbedding: longrope picks short or long factors from the
     * largest position of this step (longrope_frequency_update) */
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
        /* hidden_states = self.input_layernorm(hidden_states) */
        tsr_tensor *h = mb_rms_norm(&b, x, mb_w(&b, "%s.input_layernorm.weight", pre), m->eps, 0.0f,
                                    mb_nm(&b, "%s.input_layernorm", pre));
        /* qkv = self.qkv_proj(hidden_states); query = qkv[..., :query_pos], ... */
        tsr_tensor *qkv = mb_linear(&b, h, mb_w(&b, "%s.qkv_proj.weight", ap), NULL, mb_nm(&b, "%s.qkv_proj", ap));
        size_t nb[3] = {sizeof(float), (size_t)hd * sizeof(float), qkv ? qkv->nb[1] : 0};
        tsr_tensor *q = mb_view3(&b, qkv, hd, m->d.n_head, N, nb, 0, mb_nm(&b, "%s.q", ap));
        tsr_tensor *k = mb_view3(&b, qkv, hd, m->d.n_kv_head, N, nb, (size_t)q_sz * sizeof(float),
                                 mb_nm(&b, "%s.k", ap));
        tsr_tensor *v = mb_view3(&b, qkv, hd, m->d.n_kv_head, N, nb, (size_t)(q_sz + kv_sz) * sizeof(float),
                                 mb_nm(&b, "%s.v", ap));
        /* rotary on the first rotary_ndims dims; attention with sliding_window */
        mb_attn at = {pos, freq, m->rope.dim, attn_factor, 1.0f / sqrtf((float)hd), m->sliding_window, 0.0f,
                      batch->n_past};
        tsr_tensor *a = mb_attention(&b, l, ap, q, k, v, &at);
        tsr_tensor *o = mb_linear(&b, a, mb_w(&b, "%s.o_proj.weight", ap), NULL, mb_nm(&b, "%s.o_proj", ap));
        x = o ? mb_op(&b, TSR_OP_ADD, x, o, NULL, 0, mb_nm(&b, "%s.attn_residual", pre)) : NULL;
        /* Phi3MLP: gate, up = gate_up_proj(x).chunk(2); down_proj(up * act(gate)) */
        h = mb_rms_norm(&b, x, mb_w(&b, "%s.post_attention_layernorm.weight", pre), m->eps, 0.0f,
                        mb_nm(&b, "%s.post_attention_layernorm", pre));
        tsr_tensor *gu = mb_linear(&b, h, mb_w(&b, "%s.mlp.gate_up_proj.weight", pre), NULL,
                                   mb_nm(&b, "%s.mlp.gate_up_proj", pre));
        tsr_tensor *gate = mb_rows(&b, gu, 0, m->d.n_ff, mb_nm(&b, "%s.mlp.gate", pre));
        tsr_tensor *up = mb_rows(&b, gu, m->d.n_ff, m->d.n_ff, mb_nm(&b, "%s.mlp.up", pre));
        tsr_tensor *act = up ? mb_op(&b, TSR_OP_SWIGLU, gate, up, NULL, 0, mb_nm(&b, "%s.mlp.act", pre)) : NULL;
        tsr_tensor *dn = mb_linear(&b, act, mb_w(&b, "%s.mlp.down_proj.weight", pre), NULL,
                                   mb_nm(&b, "%s.mlp.down_proj", pre));
        x = dn ? mb_op(&b, TSR_OP_ADD, x, dn, NULL, 0, mb_nm(&b, "%s.mlp_residual", pre)) : NULL;
    }
    if (!x || b.fail)
        return TSR_ERR_NOT_FOUND; /* the host has set the error */
    tsr_tensor *head = m->tied ? emb : mb_w(&b, "lm_head.weight");
    return mb_head(&b, x, mb_w(&b, "model.norm.weight"), m->eps, 0.0f, head, batch);
}

static const tsr_model_vtable phi3_vtable = {
    .struct_size = sizeof(tsr_model_vtable),
    .create = phi3_create,
    .destroy = phi3_destroy,
    .info = phi3_info,
    .declare_params = phi3_declare,
    .build = phi3_build,
};

static const tsr_plugin_desc phi3_desc = TSR_PLUGIN_DESC_INIT(
    TSR_PLUGIN_MODEL, "phi3", "0.1.0", "Phi-3 (Phi3ForCausalLM)", mb_probe_portable, &phi3_vtable);

TSR_PLUGIN_DEFINE_ENTRY
{
    H = host;
    return &phi3_desc;
}
