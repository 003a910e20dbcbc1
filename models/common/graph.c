/* models/common/graph.c - graph-building helpers shared by model plugins. */
#include <stdarg.h>
#include <stdio.h>
#include "graph.h"

tsr_status mb_decl(const tsr_host *H, tsr_param_sink *s, uint32_t flags, int64_t d0, int64_t d1,
                   const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int64_t ne[2] = {d0, d1};
    return H->declare_param(s, name, d1 ? 2 : 1, ne, flags);
}

tsr_status mb_decl_linear(const tsr_host *H, tsr_param_sink *s, int64_t in, int64_t out, int bias,
                          const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    /* a Linear weight: quantizable (TSR_PARAM_LINEAR) */
    tsr_status st = mb_decl(H, s, TSR_PARAM_LINEAR, in, out, "%s.weight", name);
    if (!st && bias)
        st = mb_decl(H, s, 0, out, 0, "%s.bias", name);
    return st;
}

const char *mb_nm(mb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->name, sizeof b->name, fmt, ap);
    va_end(ap);
    return b->name;
}

tsr_tensor *mb_w(mb *b, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    tsr_tensor *t = b->H->param(b->g, name);
    if (!t)
        b->fail = 1;
    return t;
}

tsr_tensor *mb_linear(mb *b, tsr_tensor *x, tsr_tensor *w, tsr_tensor *bias, const char *name)
{
    if (!x || !w)
        return NULL;
    int64_t ne[2] = {w->ne[1], x->ne[1]};
    tsr_tensor *src[3] = {w, x, bias};
    return b->H->node(b->g, TSR_OP_MUL_MAT, TSR_DTYPE_F32, 2, ne, src, 3, NULL, 0, name);
}

tsr_tensor *mb_op(mb *b, tsr_op op, tsr_tensor *x, tsr_tensor *y, const int32_t *p, int np,
                  const char *name)
{
    if (!x)
        return NULL;
    tsr_tensor *src[2] = {x, y};
    return b->H->node(b->g, op, TSR_DTYPE_F32, 4, x->ne, src, y ? 2 : 1, p, np, name);
}

tsr_tensor *mb_rms_norm(mb *b, tsr_tensor *x, tsr_tensor *w, float eps, float offset, const char *name)
{
    int32_t p[2];
    tsr_param_set_f(p, 0, eps);
    tsr_param_set_f(p, 1, offset);
    return mb_op(b, TSR_OP_RMS_NORM, x, w, p, 2, name);
}

tsr_tensor *mb_layer_norm(mb *b, tsr_tensor *x, tsr_tensor *w, tsr_tensor *bias, float eps,
                          const char *name)
{
    if (!x)
        return NULL;
    int32_t p[1];
    tsr_param_set_f(p, 0, eps);
    tsr_tensor *src[3] = {x, w, bias};
    return b->H->node(b->g, TSR_OP_LAYER_NORM, TSR_DTYPE_F32, 4, x->ne, src, 3, p, 1, name);
}

tsr_tensor *mb_view3(mb *b, tsr_tensor *x, int64_t d0, int64_t d1, int64_t d2, const size_t *nb,
                     size_t offset, const char *name)
{
    if (!x)
        return NULL;
    int64_t ne[3] = {d0, d1, d2};
    return b->H->view(b->g, x, 3, ne, nb, offset, name);
}

tsr_tensor *mb_rows(mb *b, tsr_tensor *x, int64_t r0, int64_t n, const char *name)
{
    if (!x)
        return NULL;
    int64_t ne[2] = {n, x->ne[1]};
    size_t nb[2] = {x->nb[0], x->nb[1]};
    return b->H->view(b->g, x, 2, ne, nb, (size_t)r0 * x->nb[0], name);
}

tsr_tensor *mb_last(mb *b, tsr_tensor *x, const char *name)
{
    if (!x)
        return NULL;
    int64_t ne[2] = {x->ne[0], 1};
    return b->H->view(b->g, x, 2, ne, NULL, (size_t)(x->ne[1] - 1) * x->nb[1], name);
}

tsr_tensor *mb_attention(mb *b, int l, const char *pre, tsr_tensor *q, tsr_tensor *k, tsr_tensor *v,
                         const mb_attn *a)
{
    const tsr_host *H = b->H;
    tsr_graph *g = b->g;
    if (!q || !k || !v)
        return NULL;
    /* q, k = apply_rotary_pos_emb(q, k, cos, sin) */
    if (a->freq) {
        int32_t rp[3] = {0, a->rope_dim, 0};
        tsr_param_set_f(rp, 2, a->rope_scale);
        tsr_tensor *rs[3] = {q, a->pos, a->freq};
        q = H->node(g, TSR_OP_ROPE, TSR_DTYPE_F32, 3, q->ne, rs, 3, rp, 3, mb_nm(b, "%s.q_rope", pre));
        rs[0] = k;
        k = H->node(g, TSR_OP_ROPE, TSR_DTYPE_F32, 3, k->ne, rs, 3, rp, 3, mb_nm(b, "%s.k_rope", pre));
        if (!q || !k)
            return NULL;
    }
    /* past_key_values.update(key_states, value_states, layer_idx) */
    tsr_tensor *kc = H->kv_cache(g, l, 0), *vc = H->kv_cache(g, l, 1);
    if (!kc || !vc)
        return NULL;
    int32_t sp[1] = {a->n_past};
    tsr_tensor *ks[2] = {k, kc}, *vs[2] = {v, vc};
    kc = H->node(g, TSR_OP_KV_STORE, TSR_DTYPE_F32, 3, kc->ne, ks, 2, sp, 1, mb_nm(b, "%s.k_cache", pre));
    vc = H->node(g, TSR_OP_KV_STORE, TSR_DTYPE_F32, 3, vc->ne, vs, 2, sp, 1, mb_nm(b, "%s.v_cache", pre));
    if (!kc || !vc)
        return NULL;
    /* eager_attention_forward: softmax(q k^T * scaling + causal mask) v */
    int64_t N = q->ne[2];
    int32_t ap[4] = {a->n_past + (int32_t)N, 0, a->window, 0};
    tsr_param_set_f(ap, 1, a->scale);
    tsr_param_set_f(ap, 3, a->softcap);
    tsr_tensor *as[4] = {q, kc, vc, a->pos};
    tsr_tensor *o = H->node(g, TSR_OP_ATTENTION, TSR_DTYPE_F32, 3, q->ne, as, 4, ap, 4,
                            mb_nm(b, "%s.attention", pre));
    if (!o)
        return NULL;
    int64_t flat[2] = {q->ne[0] * q->ne[1], N};
    return H->view(g, o, 2, flat, NULL, 0, mb_nm(b, "%s.attn_flat", pre));
}

tsr_status mb_head(mb *b, tsr_tensor *x, tsr_tensor *norm_w, float eps, float offset,
                   tsr_tensor *head, const tsr_batch *batch)
{
    if (!x || b->fail)
        return TSR_ERR_NOT_FOUND; /* the host has set the error */
    /* hidden_states = self.norm(hidden_states) */
    x = mb_rms_norm(b, x, norm_w, eps, offset, "model.norm");
    /* logits_to_keep: the last position only, unless every one is wanted */
    if (x && !batch->logits_all && batch->n_tokens > 1)
        x = mb_last(b, x, "model.norm.last");
    tsr_tensor *logits = mb_linear(b, x, head, NULL, "lm_head");
    if (!logits || b->fail)
        return TSR_ERR_NOT_FOUND;
    b->H->set_output(b->g, logits);
    return TSR_OK;
}

tsr_tensor *mb_gated_mlp(mb *b, tsr_tensor *h, const char *pre, tsr_op op, int gelu_tanh, int bias)
{
    /* down_proj(act_fn(gate_proj(x)) * up_proj(x)) */
    tsr_tensor *gt = mb_linear(b, h, mb_w(b, "%s.gate_proj.weight", pre),
                               bias ? mb_w(b, "%s.gate_proj.bias", pre) : NULL,
                               mb_nm(b, "%s.gate_proj", pre));
    tsr_tensor *up = mb_linear(b, h, mb_w(b, "%s.up_proj.weight", pre),
                               bias ? mb_w(b, "%s.up_proj.bias", pre) : NULL,
                               mb_nm(b, "%s.up_proj", pre));
    int32_t gp[1] = {gelu_tanh};
    tsr_tensor *act = gt && up ? mb_op(b, op, gt, up, gp, 1, mb_nm(b, "%s.act", pre)) : NULL;
    return mb_linear(b, act, mb_w(b, "%s.down_proj.weight", pre),
                     bias ? mb_w(b, "%s.down_proj.bias", pre) : NULL, mb_nm(b, "%s.down_proj", pre));
}

int mb_probe_portable(const tsr_host *host, char *why, size_t len)
{
    (void)host;
    (void)why;
    (void)len;
    return 1;
}

tsr_status mb_read_dims(const tsr_host *H, const tsr_json *c, int64_t default_ctx, mb_dims *d)
{
    d->n_embd = (int)H->json_int(H->json_get(c, "hidden_size"), 0);
    d->n_ff = (int)H->json_int(H->json_get(c, "intermediate_size"), 0);
    d->n_layer = (int)H->json_int(H->json_get(c, "num_hidden_layers"), 0);
    d->n_head = (int)H->json_int(H->json_get(c, "num_attention_heads"), 0);
    d->n_kv_head = (int)H->json_int(H->json_get(c, "num_key_value_heads"), d->n_head);
    d->n_vocab = (int)H->json_int(H->json_get(c, "vocab_size"), 0);
    d->n_ctx_train = H->json_int(H->json_get(c, "max_position_embeddings"), default_ctx);
    const char *keys[] = {"hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "num_key_value_heads", "vocab_size"};
    int vals[] = {d->n_embd, d->n_ff, d->n_layer, d->n_head, d->n_kv_head, d->n_vocab};
    for (int i = 0; i < 6; i++)
        if (vals[i] <= 0)
            return H->set_error(TSR_ERR_FORMAT, "config.json: '%s' must be a positive integer",
                                keys[i]);
    if (d->n_head % d->n_kv_head)
        return H->set_error(TSR_ERR_FORMAT, "config.json: num_attention_heads (%d) is not a multiple "
                            "of num_key_value_heads (%d)", d->n_head, d->n_kv_head);
    const tsr_json *hd = H->json_get(c, "head_dim");
    if (hd && H->json_type(hd) == TSR_JSON_INT) {
        d->head_dim = (int)H->json_int(hd, 0);
        if (d->head_dim <= 0)
            return H->set_error(TSR_ERR_FORMAT, "config.json: 'head_dim' must be a positive integer");
    } else {
        if (d->n_embd % d->n_head)
            return H->set_error(TSR_ERR_FORMAT, "config.json: hidden_size (%d) is not a multiple of "
                                "num_attention_heads (%d) and there is no head_dim", d->n_embd, d->n_head);
        d->head_dim = d->n_embd / d->n_head;
    }
    return TSR_OK;
}

void mb_dims_info(const mb_dims *d, tsr_model_info *out)
{
    out->n_layer = d->n_layer;
    out->n_kv_head = d->n_kv_head;
    out->head_dim = d->head_dim;
    out->n_vocab = d->n_vocab;
    out->n_embd = d->n_embd;
    out->n_ctx_train = (int32_t)d->n_ctx_train;
}
