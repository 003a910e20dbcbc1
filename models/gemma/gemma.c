/* models/gemma/gemma.c - Gemma (transformers' modeling_gemma.py,
 * GemmaForCausalLM): Llama-like blocks with RMSNorm scaling by (1 + weight),
 * GeGLU MLP (gelu_pytorch_tanh), embeddings multiplied by sqrt(hidden_size)
 * rounded to the embedding dtype, head_dim from config.json, and lm_head
 * tied to the embeddings.
 * Shapes use ne[] order: "[D, N]" is N rows of D values (PyTorch [N, D]). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "graph.h"
#include "rope.h"

static const tsr_host *H;

typedef struct gemma {
    mb_dims d;                 /* sizes from config.json */
    float eps;
    int attn_bias, tied, gelu_tanh;
    rope_cfg rope;
} gemma;

static tsr_status gemma_create(const tsr_host *host, const tsr_json *c, void **state)
{
    H = host;
    gemma *m = calloc(1, sizeof *m);
    if (!m)
        return H->set_error(TSR_ERR_NOMEM, "gemma: out of memory");
    tsr_status st = mb_read_dims(H, c, 8192, &m->d);
    if (st)
        goto fail;
    m->eps = (float)H->json_real(H->json_get(c, "rms_norm_eps"), 1e-6);
    m->attn_bias = H->json_bool(H->json_get(c, "attention_bias"), 0);
    m->tied = H->json_bool(H->json_get(c, "tie_word_embeddings"), 1);
    /* hidden_activation (older configs) wins over hidden_act; GemmaConfig
     * maps the released checkpoints' legacy "gelu" to the tanh form */
    const tsr_json *ha = H->json_get(c, "hidden_activation");
    const char *act = ha && H->json_type(ha) == TSR_JSON_STRING
                          ? H->json_string(ha, "")
                          : H->json_string(H->json_get(c, "hidden_act"), "gelu_pytorch_tanh");
    if (!strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu") || !strcmp(act, "gelu_new"))
        m->gelu_tanh = 1;
    else {
        st = H->set_error(TSR_ERR_UNSUPPORTED, "config.json: hidden_act '%s' is not supported by the gemma "
                          "plugin (gelu_pytorch_tanh)", act);
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

static void gemma_destroy(void *state) { free(state); }

static tsr_status gemma_info(void *state, tsr_model_info *out)
{
    mb_dims_info(&((gemma *)state)->d, out);
    return TSR_OK;
}

static tsr_status gemma_declare(void *state, tsr_param_sink *s)
{
    gemma *m = state;
    int64_t D = m->d.n_embd, F = m->d.n_ff, q = (int64_t)m->d.n_head * m->d.head_dim,
            kv = (int64_t)m->d.n_kv_head * m->d.head_dim;
    tsr_status st;
#define D_(...) do { if ((st = mb_decl(H, s, __VA_ARGS__))) return st; } while (0)
#define L_(...) do { if ((st = mb_decl_linear(H, s, __VA_ARGS__))) return st; } while (0)
    D_(0, D, m->d.n_vocab, "model.embed_tokens.weight");
    for (int l = 0; l < m->d.n_layer; l++) {
        const char *p = "model.layers";
        D_(0, D, 0, "%s.%d.input_layernorm.weight", p, l);
        L_(D, q, m->attn_bias, "%s.%d.self_attn.q_proj", p, l);
        L_(D, kv, m->attn_bias, "%s.%d.self_attn.k_proj", p, l);
        L_(D, kv, m->attn_bias, "%s.%d.self_attn.v_proj", p, l);
        L_(q, D, m->attn_bias, "%s.%d.self_attn.o_proj", p, l);
        D_(0, D, 0, "%s.%d.post_attention_layernorm.weight", p, l);
        L_(D, F, 0, "%s.%d.mlp.gate_proj", p, l);
        L_(D, F, 0, "%s.%d.mlp.up_proj", p, l);
        L_(F, D, 0, "%s.%d.mlp.down_proj", p, l);
    }
    D_(0, D, 0, "model.norm.weight");
    D_(TSR_PARAM_LINEAR | (m->tied ? TSR_PARAM_OPTIONAL : 0), D, m->d.n_vocab, "lm_head.weight");
#undef D_
#undef L_
    return TSR_OK;
}

static tsr_status gemma_build(void *state, tsr_graph *g, const tsr_batch *batch)
{
    gemma *m = state;
    mb b = {H, g, 0, ""};
    int64_t N = batch->n_tokens, hd = m->d.head_dim;
    tsr_tensor *pos = H->input_positions(g);
    float inv[ROPE_MAX_HALF], attn_factor;
    rope_inv_freq(&m->rope, batch->n_past + N, inv, &attn_factor);
    int64_t nf = m->rope.dim / 2;
    tsr_tensor *freq = H->constant(g, TSR_DTYPE_F32, 1, &nf, inv, "rope.inv_freq");

    /* hidden_states = embed_tokens(input_ids) * embed_scale, where
     * embed_scale = hidden_size ** 0.5 cast to the weight's dtype (55.4256
     * becomes 55.5 in bfloat16, as transformers does) */
    tsr_tensor *emb = mb_w(&b, "model.embed_tokens.weight");
    int64_t ne[2] = {m->d.n_embd, N};
    tsr_tensor *src[2] = {emb, H->input_ids(g)};
    tsr_tensor *x = emb ? H->node(g, TSR_OP_GET_ROWS, TSR_DTYPE_F32, 2, ne, src, 2, NULL, 0,
                                  "model.embed_tokens") : NULL;
    float norm = sqrtf((float)m->d.n_embd);
    if (emb && emb->dtype == TSR_DTYPE_BF16)
        norm = H->bf16_to_f32(H->f32_to_bf16(norm));
    else if (emb && emb->dtype == TSR_DTYPE_F16)
        norm = H->f16_to_f32(H->f32_to_f16(norm));
    int32_t sp[1];
    tsr_param_set_f(sp, 0, norm);
    x = mb_op(&b, TSR_OP_SCALE, x, NULL, sp, 1, "model.embed_scale");

    for (int l = 0; l < m->d.n_layer && x && !b.fail; l++) {
        char pre[64], ap[80];
        snprintf(pre, sizeof pre, "model.layers.%d", l);
        snprintf(ap, sizeof ap, "%s.self_attn", pre);
        /* GemmaRMSNorm: x * rsqrt(mean(x^2) + eps) * (1 + weight) */
        tsr_tensor *h = mb_rms_norm(&b, x, mb_w(&b, "%s.input_layernorm.weight", pre), m->eps, 1.0f,
                                    mb_nm(&b, "%s.input_layernorm", pre));
        tsr_tensor *qkv[3];
        const char *qn[3] = {"q_proj", "k_proj", "v_proj"};
        for (int i = 0; i < 3; i++) {
            qkv[i] = mb_linear(&b, h, mb_w(&b, "%s.%s.weight", ap, qn[i]),
                               m->attn_bias ? mb_w(&b, "%s.%s.bias", ap, qn[i]) : NULL,
                               mb_nm(&b, "%s.%s", ap, qn[i]));
            qkv[i] = mb_view3(&b, qkv[i], hd, i ? m->d.n_kv_head : m->d.n_head, N, NULL, 0,
                              mb_nm(&b, "%s.%s_heads", ap, qn[i]));
        }
        /* scaling = head_dim ** -0.5 */
        mb_attn at = {pos, freq, m->rope.dim, attn_factor, 1.0f / sqrtf((float)hd), 0, 0.0f, batch->n_past};
        tsr_tensor *a = mb_attention(&b, l, ap, qkv[0], qkv[1], qkv[2], &at);
        tsr_tensor *o = mb_linear(&b, a, mb_w(&b, "%s.o_proj.weight", ap),
                                  m->attn_bias ? mb_w(&b, "%s.o_proj.bias", ap) : NULL, mb_nm(&b, "%s.o_proj", ap));
        x = o ? mb_op(&b, TSR_OP_ADD, x, o, NULL, 0, mb_nm(&b, "%s.attn_residual", pre)) : NULL;
        /* GemmaMLP: down_proj(gelu_tanh(gate_proj(x)) * up_proj(x)) */
        h = mb_rms_norm(&b, x, mb_w(&b, "%s.post_attention_layernorm.weight", pre), m->eps, 1.0f,
                        mb_nm(&b, "%s.post_attention_layernorm", pre));
        char mlp[80];
        snprintf(mlp, sizeof mlp, "%s.mlp", pre);
        tsr_tensor *dn = mb_gated_mlp(&b, h, mlp, TSR_OP_GEGLU, m->gelu_tanh, 0);
        x = dn ? mb_op(&b, TSR_OP_ADD, x, dn, NULL, 0, mb_nm(&b, "%s.mlp_residual", pre)) : NULL;
    }
    if (!x || b.fail)
        return TSR_ERR_NOT_FOUND; /* the host has set the error */
    tsr_tensor *head = m->tied ? emb : mb_w(&b, "lm_head.weight");
    return mb_head(&b, x, mb_w(&b, "model.norm.weight"), m->eps, 1.0f, head, batch);
}

static const tsr_model_vtable gemma_vtable = {
    .struct_size = sizeof(tsr_model_vtable),
    .create = gemma_create,
    .destroy = gemma_destroy,
    .info = gemma_info,
    .declare_params = gemma_declare,
    .build = gemma_build,
};

static const tsr_plugin_desc gemma_desc = TSR_PLUGIN_DESC_INIT(
    TSR_PLUGIN_MODEL, "gemma", "0.1.0", "Gemma (GemmaForCausalLM)", mb_probe_portable, &gemma_vtable);

TSR_PLUGIN_DEFINE_ENTRY
{
    H = host;
    return &gemma_desc;
}
