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
#include "rope.h"

static const tsr_host *H;

typedef struct llama {
    char model_type[32];
    int n_embd, n_ff, n_layer, n_head, n_kv_head, head_dim, n_vocab;
    int64_t n_ctx_train;
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

static tsr_status need_positive(const char *key, int64_t v)
{
    if (v <= 0)
        return H->set_error(TSR_ERR_FORMAT, "config.json: '%s' must be a positive integer", key);
    return TSR_OK;
}

static tsr_status llama_create(const tsr_host *host, const tsr_json *c, void **state)
{
    H = host;
    llama *m = calloc(1, sizeof *m);
    if (!m)
        return H->set_error(TSR_ERR_NOMEM, "llama: out of memory");
    snprintf(m->model_type, sizeof m->model_type, "%s",
             H->json_string(H->json_get(c, "model_type"), "llama"));
    m->n_embd = (int)cfg_int(c, "hidden_size", 0);
    m->n_ff = (int)cfg_int(c, "intermediate_size", 0);
    m->n_layer = (int)cfg_int(c, "num_hidden_layers", 0);
    m->n_head = (int)cfg_int(c, "num_attention_heads", 0);
    m->n_kv_head = (int)cfg_int(c, "num_key_value_heads", m->n_head);
    m->n_vocab = (int)cfg_int(c, "vocab_size", 0);
    tsr_status st;
    if ((st = need_positive("hidden_size", m->n_embd)) || (st = need_positive("intermediate_size", m->n_ff)) ||
        (st = need_positive("num_hidden_layers", m->n_layer)) ||
        (st = need_positive("num_attention_heads", m->n_head)) ||
        (st = need_positive("num_key_value_heads", m->n_kv_head)) ||
        (st = need_positive("vocab_size", m->n_vocab)))
        goto fail;
    const tsr_json *hd = H->json_get(c, "head_dim");
    m->head_dim = hd && H->json_type(hd) == TSR_JSON_INT ? (int)H->json_int(hd, 0)
                                                          : m->n_embd / m->n_head;
    if ((st = need_positive("head_dim", m->head_dim)))
        goto fail;
    if (m->n_head % m->n_kv_head) {
        st = H->set_error(TSR_ERR_FORMAT,
                          "config.json: num_attention_heads (%d) is not a multiple of "
                          "num_key_value_heads (%d)", m->n_head, m->n_kv_head);
        goto fail;
    }
    m->n_ctx_train = cfg_int(c, "max_position_embeddings", 2048);
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
        m->max_window_layers = (int)cfg_int(c, "max_window_layers", m->n_layer);
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
    if ((st = rope_parse(H, c, m->head_dim, &m->rope)))
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
    llama *m = state;
    out->n_layer = m->n_layer;
    out->n_kv_head = m->n_kv_head;
    out->head_dim = m->head_dim;
    out->n_vocab = m->n_vocab;
    out->n_embd = m->n_embd;
    out->n_ctx_train = (int32_t)m->n_ctx_train;
    return TSR_OK;
}

/* --- weights ------------------------------------------------------------------ */

static tsr_status decl(tsr_param_sink *s, uint32_t flags, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static tsr_status decl(tsr_param_sink *s, uint32_t flags, int64_t d0, int64_t d1, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int64_t ne[2] = {d0, d1};
    return H->declare_param(s, name, d1 ? 2 : 1, ne, flags);
}

static tsr_status llama_declare(void *state, tsr_param_sink *s)
{
    llama *m = state;
    int64_t D = m->n_embd, F = m->n_ff, q = (int64_t)m->n_head * m->head_dim,
            kv = (int64_t)m->n_kv_head * m->head_dim;
    tsr_status st;
#define D_(...) do { if ((st = decl(s, __VA_ARGS__))) return st; } while (0)
    D_(0, D, m->n_vocab, "model.embed_tokens.weight");
    for (int l = 0; l < m->n_layer; l++) {
        const char *p = "model.layers";
        D_(0, D, 0, "%s.%d.input_layernorm.weight", p, l);
        D_(TSR_PARAM_LINEAR, D, q, "%s.%d.self_attn.q_proj.weight", p, l);
        D_(TSR_PARAM_LINEAR, D, kv, "%s.%d.self_attn.k_proj.weight", p, l);
        D_(TSR_PARAM_LINEAR, D, kv, "%s.%d.self_attn.v_proj.weight", p, l);
        D_(TSR_PARAM_LINEAR, q, D, "%s.%d.self_attn.o_proj.weight", p, l);
        if (m->attn_bias) {
            D_(0, q, 0, "%s.%d.self_attn.q_proj.bias", p, l);
            D_(0, kv, 0, "%s.%d.self_attn.k_proj.bias", p, l);
            D_(0, kv, 0, "%s.%d.self_attn.v_proj.bias", p, l);
        }
        if (m->o_bias)
            D_(0, D, 0, "%s.%d.self_attn.o_proj.bias", p, l);
        D_(0, D, 0, "%s.%d.post_attention_layernorm.weight", p, l);
        D_(TSR_PARAM_LINEAR, D, F, "%s.%d.mlp.gate_proj.weight", p, l);
        D_(TSR_PARAM_LINEAR, D, F, "%s.%d.mlp.up_proj.weight", p, l);
        D_(TSR_PARAM_LINEAR, F, D, "%s.%d.mlp.down_proj.weight", p, l);
        if (m->mlp_bias) {
            D_(0, F, 0, "%s.%d.mlp.gate_proj.bias", p, l);
            D_(0, F, 0, "%s.%d.mlp.up_proj.bias", p, l);
            D_(0, D, 0, "%s.%d.mlp.down_proj.bias", p, l);
        }
    }
    D_(0, D, 0, "model.norm.weight");
    /* tied: lm_head shares embed_tokens; a stored copy is accepted and ignored */
    D_(TSR_PARAM_LINEAR | (m->tied ? TSR_PARAM_OPTIONAL : 0), D, m->n_vocab, "lm_head.weight");
#undef D_
    return TSR_OK;
}

/* --- graph helpers ---------------------------------------------------------------- */

typedef struct gb {
    tsr_graph *g;
    char name[160];         /* node names (NAME)                         */
    char wname[160];        /* weight names (W), apart: both appear in one call */
    int fail;
} gb;

static const char *nm(gb *b, const char *fmt, int l)
{
    snprintf(b->wname, sizeof b->wname, fmt, l);
    return b->wname;
}

static tsr_tensor *W(gb *b, const char *fmt, int l)
{
    tsr_tensor *t = H->param(b->g, nm(b, fmt, l));
    if (!t)
        b->fail = 1;
    return t;
}

static tsr_tensor *linear(gb *b, tsr_tensor *x, tsr_tensor *w, tsr_tensor *bias, const char *name)
{
    if (!x || !w)
        return NULL;
    int64_t ne[2] = {w->ne[1], x->ne[1]};
    tsr_tensor *src[3] = {w, x, bias};
    return H->node(b->g, TSR_OP_MUL_MAT, TSR_DTYPE_F32, 2, ne, src, 3, NULL, 0, name);
}

static tsr_tensor *op2(gb *b, tsr_op op, tsr_tensor *x, tsr_tensor *y, const int32_t *p, int np,
                       const char *name)
{
    if (!x)
        return NULL;
    tsr_tensor *src[2] = {x, y};
    return H->node(b->g, op, TSR_DTYPE_F32, 4, x->ne, src, y ? 2 : 1, p, np, name);
}

static tsr_tensor *rms_norm(gb *b, tsr_tensor *x, tsr_tensor *w, float eps, const char *name)
{
    int32_t p[2];
    tsr_param_set_f(p, 0, eps);
    tsr_param_set_f(p, 1, 0.0f);
    return op2(b, TSR_OP_RMS_NORM, x, w, p, 2, name);
}

static tsr_tensor *reshape(gb *b, tsr_tensor *x, int64_t d0, int64_t d1, int64_t d2, const char *name)
{
    if (!x)
        return NULL;
    int64_t ne[3] = {d0, d1, d2};
    return H->view(b->g, x, 3, ne, NULL, 0, name);
}

/* --- forward ------------------------------------------------------------------------ */

static tsr_status llama_build(void *state, tsr_graph *g, const tsr_batch *batch)
{
    llama *m = state;
    gb b = {g, "", "", 0};
    int64_t N = batch->n_tokens, hd = m->head_dim;
    tsr_tensor *pos = H->input_positions(g);

    /* RoPE frequencies for this length (LlamaRotaryEmbedding) */
    float inv[512], attn_factor;
    if (m->rope.dim / 2 > 512 || m->rope.dim < 2)
        return H->set_error(TSR_ERR_UNSUPPORTED, "llama: rotary dimension %d", m->rope.dim);
    rope_inv_freq(&m->rope, batch->n_past + N, inv, &attn_factor);
    int64_t nf = m->rope.dim / 2;
    tsr_tensor *freq = H->constant(g, TSR_DTYPE_F32, 1, &nf, inv, "rope.inv_freq");
    int32_t rp[3] = {0, m->rope.dim, 0};
    tsr_param_set_f(rp, 2, attn_factor);

    /* inputs_embeds = self.embed_tokens(input_ids) */
    tsr_tensor *emb = W(&b, "model.embed_tokens.weight", 0);
    tsr_tensor *ids = H->input_ids(g);
    int64_t ne[2] = {m->n_embd, N};
    tsr_tensor *src2[2] = {emb, ids};
    tsr_tensor *x = emb ? H->node(g, TSR_OP_GET_ROWS, TSR_DTYPE_F32, 2, ne, src2, 2, NULL, 0,
                                  "model.embed_tokens") : NULL;

    for (int l = 0; l < m->n_layer && x && !b.fail; l++) {
        char pre[64];
        snprintf(pre, sizeof pre, "model.layers.%d", l);
#define NAME(s) (snprintf(b.name, sizeof b.name, "%s.%s", pre, s), b.name)
        /* hidden_states = self.input_layernorm(hidden_states) */
        tsr_tensor *h = rms_norm(&b, x, W(&b, "model.layers.%d.input_layernorm.weight", l),
                                 m->norm_eps, NAME("input_layernorm"));
        /* q/k/v = self.{q,k,v}_proj(hidden_states).view(hidden_shape) */
        tsr_tensor *q = linear(&b, h, W(&b, "model.layers.%d.self_attn.q_proj.weight", l),
                               m->attn_bias ? W(&b, "model.layers.%d.self_attn.q_proj.bias", l) : NULL,
                               NAME("self_attn.q_proj"));
        tsr_tensor *k = linear(&b, h, W(&b, "model.layers.%d.self_attn.k_proj.weight", l),
                               m->attn_bias ? W(&b, "model.layers.%d.self_attn.k_proj.bias", l) : NULL,
                               NAME("self_attn.k_proj"));
        tsr_tensor *v = linear(&b, h, W(&b, "model.layers.%d.self_attn.v_proj.weight", l),
                               m->attn_bias ? W(&b, "model.layers.%d.self_attn.v_proj.bias", l) : NULL,
                               NAME("self_attn.v_proj"));
        q = reshape(&b, q, hd, m->n_head, N, NAME("self_attn.q_heads"));
        k = reshape(&b, k, hd, m->n_kv_head, N, NAME("self_attn.k_heads"));
        v = reshape(&b, v, hd, m->n_kv_head, N, NAME("self_attn.v_heads"));
        /* q, k = apply_rotary_pos_emb(q, k, cos, sin) */
        tsr_tensor *rs[3] = {q, pos, freq};
        q = q ? H->node(g, TSR_OP_ROPE, TSR_DTYPE_F32, 3, q->ne, rs, 3, rp, 3, NAME("self_attn.q_rope")) : NULL;
        rs[0] = k;
        k = k ? H->node(g, TSR_OP_ROPE, TSR_DTYPE_F32, 3, k->ne, rs, 3, rp, 3, NAME("self_attn.k_rope")) : NULL;
        /* past_key_value.update(key_states, value_states, layer_idx) */
        tsr_tensor *kc = H->kv_cache(g, l, 0), *vc = H->kv_cache(g, l, 1);
        int32_t sp[1] = {batch->n_past};
        tsr_tensor *ks[2] = {k, kc}, *vs[2] = {v, vc};
        kc = k && kc ? H->node(g, TSR_OP_KV_STORE, TSR_DTYPE_F32, 3, kc->ne, ks, 2, sp, 1, NAME("self_attn.k_cache")) : NULL;
        vc = v && vc ? H->node(g, TSR_OP_KV_STORE, TSR_DTYPE_F32, 3, vc->ne, vs, 2, sp, 1, NAME("self_attn.v_cache")) : NULL;
        /* attn_output = eager_attention_forward(q, k, v, causal mask, scaling) */
        int window = (m->sliding_window > 0 && l >= m->max_window_layers) ? m->sliding_window : 0;
        int32_t ap[4] = {batch->n_past + (int32_t)N, 0, window, 0};
        tsr_param_set_f(ap, 1, 1.0f / sqrtf((float)hd));
        tsr_param_set_f(ap, 3, 0.0f);
        tsr_tensor *as[4] = {q, kc, vc, pos};
        tsr_tensor *a = q && kc && vc ? H->node(g, TSR_OP_ATTENTION, TSR_DTYPE_F32, 3, q->ne, as, 4, ap, 4,
                                                NAME("self_attn.attention")) : NULL;
        int64_t flat[2] = {hd * m->n_head, N};
        a = a ? H->view(g, a, 2, flat, NULL, 0, NAME("self_attn.attn_flat")) : NULL;
        /* attn_output = self.o_proj(attn_output); hidden_states = residual + ... */
        tsr_tensor *o = linear(&b, a, W(&b, "model.layers.%d.self_attn.o_proj.weight", l),
                               m->o_bias ? W(&b, "model.layers.%d.self_attn.o_proj.bias", l) : NULL,
                               NAME("self_attn.o_proj"));
        x = op2(&b, TSR_OP_ADD, x, o, NULL, 0, NAME("attn_residual"));
        /* hidden_states = self.post_attention_layernorm(hidden_states) */
        h = rms_norm(&b, x, W(&b, "model.layers.%d.post_attention_layernorm.weight", l), m->norm_eps,
                     NAME("post_attention_layernorm"));
        /* down_proj(act_fn(gate_proj(x)) * up_proj(x)) */
        tsr_tensor *gt = linear(&b, h, W(&b, "model.layers.%d.mlp.gate_proj.weight", l),
                                m->mlp_bias ? W(&b, "model.layers.%d.mlp.gate_proj.bias", l) : NULL,
                                NAME("mlp.gate_proj"));
        tsr_tensor *up = linear(&b, h, W(&b, "model.layers.%d.mlp.up_proj.weight", l),
                                m->mlp_bias ? W(&b, "model.layers.%d.mlp.up_proj.bias", l) : NULL,
                                NAME("mlp.up_proj"));
        int32_t gp[1] = {m->act_gelu == 2};
        tsr_tensor *act = op2(&b, m->act_gelu ? TSR_OP_GEGLU : TSR_OP_SWIGLU, gt, up, gp, 1,
                              NAME("mlp.act"));
        tsr_tensor *dn = linear(&b, act, W(&b, "model.layers.%d.mlp.down_proj.weight", l),
                                m->mlp_bias ? W(&b, "model.layers.%d.mlp.down_proj.bias", l) : NULL,
                                NAME("mlp.down_proj"));
        x = op2(&b, TSR_OP_ADD, x, dn, NULL, 0, NAME("mlp_residual"));
#undef NAME
    }
    if (!x || b.fail)
        return TSR_ERR_NOT_FOUND; /* the host has set the error */
    /* hidden_states = self.norm(hidden_states) */
    x = rms_norm(&b, x, W(&b, "model.norm.weight", 0), m->norm_eps, "model.norm");
    /* logits_to_keep: the last position only, unless every position is wanted */
    if (x && !batch->logits_all && N > 1) {
        int64_t ne1[2] = {m->n_embd, 1};
        x = H->view(g, x, 2, ne1, NULL, (size_t)(N - 1) * x->nb[1], "model.norm.last");
    }
    tsr_tensor *head = m->tied ? W(&b, "model.embed_tokens.weight", 0) : W(&b, "lm_head.weight", 0);
    tsr_tensor *logits = linear(&b, x, head, NULL, "lm_head");
    if (!logits || b.fail)
        return TSR_ERR_NOT_FOUND;
    H->set_output(g, logits);
    return TSR_OK;
}

static int llama_probe(const tsr_host *host, char *why, size_t len)
{
    (void)host;
    (void)why;
    (void)len;
    return 1;
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
    "Llama, Mistral and Qwen2 decoder-only transformers", llama_probe, &llama_vtable);

TSR_PLUGIN_DEFINE_ENTRY
{
    H = host;
    return &llama_desc;
}
