/* models/gpt2/gpt2.c - GPT-2 (transformers' modeling_gpt2.py,
 * GPT2LMHeadModel): learned position embeddings, pre-LayerNorm blocks,
 * fused c_attn, Conv1D weights stored [in, out] (declared
 * TSR_PARAM_TRANSPOSED so the core turns them into Linear layout), tied
 * lm_head.  Weight names carry the "transformer." prefix that
 * GPT2LMHeadModel.save_pretrained writes.
 * Shapes use ne[] order: "[D, N]" is N rows of D values (PyTorch [N, D]). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "graph.h"

static const tsr_host *H;

typedef struct gpt2 {
    int n_embd, n_ff, n_layer, n_head, head_dim, n_vocab, n_pos;
    float eps;
    int act;                   /* TSR_OP_GELU p.i[0] (0 erf, 1 tanh), or -1 relu */
    int scale_attn, scale_by_layer, tied;
} gpt2;

static tsr_status gpt2_create(const tsr_host *host, const tsr_json *c, void **state)
{
    H = host;
    gpt2 *m = calloc(1, sizeof *m);
    if (!m)
        return H->set_error(TSR_ERR_NOMEM, "gpt2: out of memory");
    tsr_status st = TSR_OK;
    m->n_embd = (int)H->json_int(H->json_get(c, "n_embd"), 0);
    m->n_layer = (int)H->json_int(H->json_get(c, "n_layer"), 0);
    m->n_head = (int)H->json_int(H->json_get(c, "n_head"), 0);
    m->n_vocab = (int)H->json_int(H->json_get(c, "vocab_size"), 0);
    m->n_pos = (int)H->json_int(H->json_get(c, "n_positions"), 1024);
    /* n_inner: null means 4 * n_embd (GPT2MLP) */
    m->n_ff = (int)H->json_int(H->json_get(c, "n_inner"), 4 * (int64_t)m->n_embd);
    const char *keys[] = {"n_embd", "n_layer", "n_head", "vocab_size", "n_positions"};
    int vals[] = {m->n_embd, m->n_layer, m->n_head, m->n_vocab, m->n_pos};
    for (int i = 0; i < 5 && !st; i++)
        if (vals[i] <= 0)
            st = H->set_error(TSR_ERR_FORMAT, "config.json: '%s' must be a positive integer", keys[i]);
    if (!st && (m->n_ff <= 0 || m->n_embd % m->n_head))
        st = H->set_error(TSR_ERR_FORMAT, "config.json: n_embd (%d) is not a multiple of n_head (%d)",
                          m->n_embd, m->n_head);
    if (st) {
        free(m);
        return st;
    }
    m->head_dim = m->n_embd / m->n_head;
    m->eps = (float)H->json_real(H->json_get(c, "layer_norm_epsilon"), 1e-5);
    const char *act = H->json_string(H->json_get(c, "activation_function"), "gelu_new");
    if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_fast"))
        m->act = 1;
    else if (!strcmp(act, "gelu"))
        m->act = 0;
    else if (!strcmp(act, "relu"))
        m->act = -1;
    else {
        free(m);
        return H->set_error(TSR_ERR_UNSUPPORTED, "config.json: activation_function '%s' is not supported "
                            "by the gpt2 plugin (gelu_new, gelu, gelu_pytorch_tanh, relu)", act);
    }
    m->scale_attn = H->json_bool(H->json_get(c, "scale_attn_weights"), 1);
    m->scale_by_layer = H->json_bool(H->json_get(c, "scale_attn_by_inverse_layer_idx"), 0);
    m->tied = H->json_bool(H->json_get(c, "tie_word_embeddings"), 1);
    *state = m;
    return TSR_OK;
}

static void gpt2_destroy(void *state) { free(state); }

static tsr_status gpt2_info(void *state, tsr_model_info *out)
{
    gpt2 *m = state;
    out->n_layer = m->n_layer;
    out->n_kv_head = m->n_head;
    out->head_dim = m->head_dim;
    out->n_vocab = m->n_vocab;
    out->n_embd = m->n_embd;
    out->n_ctx_train = m->n_pos;
    return TSR_OK;
}

static tsr_status gpt2_declare(void *state, tsr_param_sink *s)
{
    gpt2 *m = state;
    int64_t D = m->n_embd, F = m->n_ff;
    /* Conv1D: stored [in, out]; a Linear layer all the same (quantizable) */
    const uint32_t T = TSR_PARAM_TRANSPOSED | TSR_PARAM_LINEAR;
    tsr_status st;
#define D_(...) do { if ((st = mb_decl(H, s, __VA_ARGS__))) return st; } while (0)
    D_(0, D, m->n_vocab, "transformer.wte.weight");
    D_(0, D, m->n_pos, "transformer.wpe.weight");
    for (int l = 0; l < m->n_layer; l++) {
        const char *p = "transformer.h";
        D_(0, D, 0, "%s.%d.ln_1.weight", p, l);
        D_(0, D, 0, "%s.%d.ln_1.bias", p, l);
        D_(T, D, 3 * D, "%s.%d.attn.c_attn.weight", p, l);
        D_(0, 3 * D, 0, "%s.%d.attn.c_attn.bias", p, l);
        D_(T, D, D, "%s.%d.attn.c_proj.weight", p, l);
        D_(0, D, 0, "%s.%d.attn.c_proj.bias", p, l);
        D_(0, D, 0, "%s.%d.ln_2.weight", p, l);
        D_(0, D, 0, "%s.%d.ln_2.bias", p, l);
        D_(T, D, F, "%s.%d.mlp.c_fc.weight", p, l);
        D_(0, F, 0, "%s.%d.mlp.c_fc.bias", p, l);
        D_(T, F, D, "%s.%d.mlp.c_proj.weight", p, l);
        D_(0, D, 0, "%s.%d.mlp.c_proj.bias", p, l);
    }
    D_(0, D, 0, "transformer.ln_f.weight");
    D_(0, D, 0, "transformer.ln_f.bias");
    /* tied: lm_head is wte; a stored copy is accepted and ignored */
    D_(TSR_PARAM_LINEAR | (m->tied ? TSR_PARAM_OPTIONAL : 0), D, m->n_vocab, "lm_head.weight");
#undef D_
    return TSR_OK;
}

static tsr_status gpt2_build(void *state, tsr_graph *g, const tsr_batch *batch)
{
    gpt2 *m = state;
    mb b = {H, g, 0, ""};
    int64_t N = batch->n_tokens, D = m->n_embd, hd = m->head_dim;
    tsr_tensor *pos = H->input_positions(g);
    if (batch->n_past + N > m->n_pos)
        return H->set_error(TSR_ERR_INVALID_ARG, "gpt2: position %lld is past n_positions (%d)",
                            (long long)(batch->n_past + N - 1), m->n_pos);

    /* hidden_states = self.wte(input_ids) + self.wpe(position_ids) */
    int64_t ne[2] = {D, N};
    tsr_tensor *wte = mb_w(&b, "transformer.wte.weight"), *wpe = mb_w(&b, "transformer.wpe.weight");
    tsr_tensor *s1[2] = {wte, H->input_ids(g)}, *s2[2] = {wpe, pos};
    tsr_tensor *te = wte ? H->node(g, TSR_OP_GET_ROWS, TSR_DTYPE_F32, 2, ne, s1, 2, NULL, 0, "transformer.wte") : NULL;
    tsr_tensor *pe = wpe ? H->node(g, TSR_OP_GET_ROWS, TSR_DTYPE_F32, 2, ne, s2, 2, NULL, 0, "transformer.wpe") : NULL;
    tsr_tensor *x = pe ? mb_op(&b, TSR_OP_ADD, te, pe, NULL, 0, "transformer.embeddings") : NULL;

    for (int l = 0; l < m->n_layer && x && !b.fail; l++) {
        char pre[64], ap[80];
        snprintf(pre, sizeof pre, "transformer.h.%d", l);
        snprintf(ap, sizeof ap, "%s.attn", pre);
        /* hidden_states = self.ln_1(hidden_states) */
        tsr_tensor *h = mb_layer_norm(&b, x, mb_w(&b, "%s.ln_1.weight", pre), mb_w(&b, "%s.ln_1.bias", pre),
                                      m->eps, mb_nm(&b, "%s.ln_1", pre));
        /* query, key, value = self.c_attn(hidden_states).split(self.split_size, dim=2):
         * strided views of the fused [3D, N] output, no copy */
        tsr_tensor *qkv = mb_linear(&b, h, mb_w(&b, "%s.attn.c_attn.weight", pre),
                                    mb_w(&b, "%s.attn.c_attn.bias", pre), mb_nm(&b, "%s.c_attn", ap));
        size_t nb[3] = {sizeof(float), (size_t)hd * sizeof(float), qkv ? qkv->nb[1] : 0};
        tsr_tensor *q = mb_view3(&b, qkv, hd, m->n_head, N, nb, 0, mb_nm(&b, "%s.q", ap));
        tsr_tensor *k = mb_view3(&b, qkv, hd, m->n_head, N, nb, (size_t)D * sizeof(float), mb_nm(&b, "%s.k", ap));
        tsr_tensor *v = mb_view3(&b, qkv, hd, m->n_head, N, nb, 2 * (size_t)D * sizeof(float),
                                 mb_nm(&b, "%s.v", ap));
        /* attn_weights / sqrt(head_dim) [/ (layer_idx + 1)]; no rotary embedding */
        float scale = m->scale_attn ? 1.0f / sqrtf((float)hd) : 1.0f;
        if (m->scale_by_layer)
            scale /= (float)(l + 1);
        mb_attn at = {pos, NULL, 0, 1.0f, scale, 0, 0.0f, batch->n_past};
        tsr_tensor *a = mb_attention(&b, l, ap, q, k, v, &at);
        /* attn_output = self.c_proj(attn_output); hidden_states = attn_output + residual */
        tsr_tensor *o = mb_linear(&b, a, mb_w(&b, "%s.attn.c_proj.weight", pre),
                                  mb_w(&b, "%s.attn.c_proj.bias", pre), mb_nm(&b, "%s.c_proj", ap));
        x = o ? mb_op(&b, TSR_OP_ADD, x, o, NULL, 0, mb_nm(&b, "%s.attn_residual", pre)) : NULL;
        /* hidden_states = self.mlp(self.ln_2(hidden_states)): c_proj(act(c_fc(x))) */
        h = mb_layer_norm(&b, x, mb_w(&b, "%s.ln_2.weight", pre), mb_w(&b, "%s.ln_2.bias", pre), m->eps,
                          mb_nm(&b, "%s.ln_2", pre));
        tsr_tensor *fc = mb_linear(&b, h, mb_w(&b, "%s.mlp.c_fc.weight", pre), mb_w(&b, "%s.mlp.c_fc.bias", pre),
                                   mb_nm(&b, "%s.mlp.c_fc", pre));
        int32_t gp[1] = {m->act > 0};
        tsr_tensor *act = m->act < 0 ? mb_op(&b, TSR_OP_RELU, fc, NULL, NULL, 0, mb_nm(&b, "%s.mlp.act", pre))
                                     : mb_op(&b, TSR_OP_GELU, fc, NULL, gp, 1, mb_nm(&b, "%s.mlp.act", pre));
        tsr_tensor *dn = mb_linear(&b, act, mb_w(&b, "%s.mlp.c_proj.weight", pre),
                                   mb_w(&b, "%s.mlp.c_proj.bias", pre), mb_nm(&b, "%s.mlp.c_proj", pre));
        x = dn ? mb_op(&b, TSR_OP_ADD, x, dn, NULL, 0, mb_nm(&b, "%s.mlp_residual", pre)) : NULL;
    }
    if (!x || b.fail)
        return TSR_ERR_NOT_FOUND; /* the host has set the error */
    /* hidden_states = self.ln_f(hidden_states) */
    x = mb_layer_norm(&b, x, mb_w(&b, "transformer.ln_f.weight"), mb_w(&b, "transformer.ln_f.bias"), m->eps,
                      "transformer.ln_f");
    if (x && !batch->logits_all && N > 1)
        x = mb_last(&b, x, "transformer.ln_f.last");
    tsr_tensor *head = m->tied ? wte : mb_w(&b, "lm_head.weight");
    tsr_tensor *logits = mb_linear(&b, x, head, NULL, "lm_head");
    if (!logits || b.fail)
        return TSR_ERR_NOT_FOUND;
    H->set_output(g, logits);
    return TSR_OK;
}

static const tsr_model_vtable gpt2_vtable = {
    .struct_size = sizeof(tsr_model_vtable),
    .create = gpt2_create,
    .destroy = gpt2_destroy,
    .info = gpt2_info,
    .declare_params = gpt2_declare,
    .build = gpt2_build,
};

static const tsr_plugin_desc gpt2_desc = TSR_PLUGIN_DESC_INIT(
    TSR_PLUGIN_MODEL, "gpt2", "0.1.0", "GPT-2 (GPT2LMHeadModel)", mb_probe_portable, &gpt2_vtable);

TSR_PLUGIN_DEFINE_ENTRY
{
    H = host;
    return &gpt2_desc;
}
