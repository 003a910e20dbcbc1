/* core/calibrate_awq.c - AWQ's activation-aware weight scaling and clipping
 * (Lin et al. 2023, arXiv:2306.00978) as AutoAWQ's AwqQuantizer runs it
 * before quantizing a float model:
 *
 * For each decoder layer, groups of Linear modules that read one input,
 * each with the op before it (llama-style names, AutoAWQ's
 * get_layers_for_scaling for llama/mistral/qwen2):
 *   input_layernorm          -> self_attn.{q,k,v}_proj
 *   self_attn.v_proj         -> self_attn.o_proj   (when v and o have one shape)
 *   post_attention_layernorm -> mlp.{gate,up}_proj
 *   mlp.up_proj              -> mlp.down_proj
 * Scale search (_search_best_scale/_compute_best_scale): x_mean = mean |x|
 * per input channel, w_mean = mean over output rows of |w| / max|w| of its
 * quantization group (duo_scaling, AutoAWQ's default); for ratio r/20,
 * r = 0..19: s = x_mean^ratio / (w_mean^(1-ratio) + 1e-4) (duo) or
 * x_mean^ratio, clamped to >= 1e-4, divided by sqrt(max s * min s); the loss
 * is the squared output error sum_t ||W x_t - Q(W diag s) (x_t / s)||^2 of
 * the group's Linear modules, computed exactly from X^T X:
 * sum_n e_n^T (X^T X) e_n with e_n = Q(W s)_n / s - W_n.  The best s is
 * folded in (apply_scale): the norm weight (or the previous Linear's output
 * rows and bias) divided by s, the Linear weights' input columns times s.
 * Clip search (_search_best_clip/_compute_best_clip; not for q and k): per
 * output row and quantization group, max_val = max|w| * (1 - i/20),
 * i = 0..9 (max_shrink 0.5), the one whose clamped-then-quantized group
 * gives the smallest output error d^T (X'^T X')_g d on the scaled inputs
 * X' = X / s; the weights are clamped to [-max_val, max_val] (apply_clip;
 * off with "apply_clip": false in the quantization config, as AutoAWQ's
 * quantize(apply_clip=False); "duo_scaling": false likewise).
 *
 * Q is the configured quantizer itself (its quantize_weight, read back with
 * the reference dequantizer).  Differences from AutoAWQ: the loss of the
 * q/k/v and gate/up groups is the Linear outputs' error, not that of the
 * whole attention / MLP block (module2inspect); the clip search uses every
 * calibration token (AutoAWQ samples 512); arithmetic in f32/f64, not fp16.
 * Activations are the float model's (as AutoAWQ: each layer's inputs are
 * the previous float layer's outputs). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "calibrate.h"

#define AWQ_GRID 20

typedef struct awq_stat {
    size_t param;       /* the Linear whose input this is                   */
    int64_t K;
    double rows;
    double *absx;       /* [K]  sum |x|                                      */
    double *xtx;        /* [K][K] sum x x^T (upper triangle while collecting) */
    float *s;           /* [K] the scales chosen for it (NULL: none)          */
} awq_stat;

typedef struct awq_ctx {
    tsr_model *m;
    tsr_status st;
    awq_stat *stats;
    size_t n_stats;
    int *stat_of;       /* [n_params] stat index or -1                        */
    float *buf;
    size_t cap;
} awq_ctx;

static void awq_observe(void *user, const tsr_tensor *node)
{
    awq_ctx *c = user;
    if (c->st || node->op != TSR_OP_MUL_MAT)
        return;
    const tsr_tensor *w = node->src[0], *x = node->src[1];
    if (!w || !x || !w->name || x->dtype != TSR_DTYPE_F32)
        return;
    tsr__param *p = tsr__param_find(&c->m->env, w->name);
    if (!p)
        return;
    int si = c->stat_of[p - c->m->env.params];
    if (si < 0)
        return;
    awq_stat *a = &c->stats[si];
    int64_t K = x->ne[0], M = x->ne[1] * x->ne[2] * x->ne[3];
    if (K != a->K) {
        c->st = tsr__error(TSR_ERR_INTERNAL, "AWQ calibration: '%s' reads %lld features, its "
                           "weight has %lld", w->name, (long long)K, (long long)a->K);
        return;
    }
    const float *d = tsr__calib_gather(x, &c->buf, &c->cap);
    if (!d) {
        c->st = tsr__error(TSR_ERR_NOMEM, "out of memory in AWQ calibration");
        return;
    }
    for (int64_t r = 0; r < M; r++) {
        const float *xr = d + r * K;
        for (int64_t i = 0; i < K; i++) {
            double xi = xr[i];
            a->absx[i] += fabs(xi);
            if (xi == 0)
                continue;
            double *hr = a->xtx + i * K;
            for (int64_t j = i; j < K; j++)
                hr[j] += xi * (double)xr[j];
        }
    }
    a->rows += (double)M;
}

/* --- parameters ---------------------------------------------------------------------- */

/* The Linear weight "<layer>.<sub>.weight" if the quantizer will quantize
 * it from f32, else NULL. */
static tsr__param *linear(tsr_model *m, const char *layer, const char *sub)
{
    char name[600];
    snprintf(name, sizeof name, "%s.%s.weight", layer, sub);
    tsr__param *p = tsr__param_find(&m->env, name);
    if (!p || !(p->flags & TSR_PARAM_LINEAR) || p->quantized || p->t.dtype != TSR_DTYPE_F32 ||
        !p->t.data)
        return NULL;
    char module[600];
    snprintf(module, sizeof module, "%s.%s", layer, sub);
    if (m->qvt->skip_module && m->qvt->skip_module(m->qstate, module))
        return NULL;
    return p;
}

static int64_t count_of(const tsr__param *p)
{
    int64_t c = 1;
    for (int d = 0; d < p->n_dims; d++)
        c *= p->ne[d];
    return c;
}

/* Give p an owned, contiguous f32 copy that may be written. */
static tsr_status make_writable(tsr__param *p)
{
    if (p->t.dtype == TSR_DTYPE_F32 && p->owned && p->t.data == p->owned)
        return TSR_OK;
    int64_t n = count_of(p);
    float *f = tsr__alloc((size_t)n * sizeof *f);
    if (!f)
        return tsr__error(TSR_ERR_NOMEM, "out of memory copying '%s'", p->name);
    tsr_status st = tsr__to_f32(p->t.dtype, p->t.data, f, n, NULL);
    if (st) {
        tsr__free(f);
        return tsr__error_prefix(st, "AWQ: weight '%s'", p->name);
    }
    tsr__free(p->owned);
    p->owned = f;
    p->t.data = f;
    p->t.dtype = TSR_DTYPE_F32;
    p->t.nb[0] = sizeof(float);
    for (int d = 1; d < TSR_MAX_DIMS; d++)
        p->t.nb[d] = p->t.nb[d - 1] * (size_t)p->t.ne[d - 1];
    return TSR_OK;
}

/* A non-Linear weight changed by folding: make the checkpoint's entry show
 * the new values, so that tsr_model_save (which copies unquantized weights
 * from the checkpoint) writes them. */
static void expose(tsr_model *m, tsr__param *p)
{
    tsr__ckpt_tensor *ct = m->ckpt ? tsr__checkpoint_find(m->ckpt, p->name) : NULL;
    if (!ct)
        return;
    ct->data = p->t.data;
    ct->dtype = TSR_DTYPE_F32;
    ct->nbytes = (size_t)count_of(p) * sizeof(float);
}

/* Divide the weight (and bias) of a norm (rows == 1, 1-D) or a Linear's
 * output rows by s. */
static tsr_status fold_prev(tsr_model *m, const char *prev, const float *s, int64_t K,
                            bool prev_linear)
{
    char name[640];
    snprintf(name, sizeof name, "%s.weight", prev);
    tsr__param *p = tsr__param_find(&m->env, name);
    tsr_status st;
    if (!p || (st = make_writable(p)))
        return p ? st : tsr__error(TSR_ERR_INTERNAL, "AWQ: no weight '%s'", name);
    float *w = p->t.data;
    int64_t cols = prev_linear ? p->ne[0] : 1, rows = prev_linear ? p->ne[1] : count_of(p);
    if (rows != K)
        return tsr__error(TSR_ERR_INTERNAL, "AWQ: '%s' has %lld outputs, the scales %lld", name,
                          (long long)rows, (long long)K);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            w[r * cols + c] /= s[r];
    if (!prev_linear)
        expose(m, p);
    snprintf(name, sizeof name, "%s.bias", prev);
    tsr__param *b = tsr__param_find(&m->env, name);
    if (b && b->t.data && count_of(b) == K) {
        if ((st = make_writable(b)))
            return st;
        float *bv = b->t.data;
        for (int64_t r = 0; r < K; r++)
            bv[r] /= s[r];
        expose(m, b);
    }
    return TSR_OK;
}

/* out [N][K] = dequantize(quantize(W)) with the configured quantizer. */
static tsr_status qdq(tsr_model *m, const tsr__param *p, const float *W, float *out)
{
    char module[600];
    snprintf(module, sizeof module, "%.*s", (int)(strlen(p->name) - 7), p->name);
    tsr_tensor q = p->t;
    q.data = NULL;
    q.format_data = NULL;
    tsr_status st = m->qvt->quantize_weight(m->qstate, module, W, p->ne, &q);
    if (st)
        return tsr__error_prefix(st, "AWQ search: quantizing '%s'", module);
    for (int64_t n = 0; n < p->ne[1] && !st; n++)
        st = tsr__dequantize_row(&q, n, out + n * p->ne[0]);
    if (m->qvt->release_weight)
        m->qvt->release_weight(m->qstate, &q);
    return st;
}

/* sum_n e_n^T H e_n over the rows of E [N][K]; H [K][K] symmetric. */
static double quad_loss(const double *H, const double *E, int64_t N, int64_t K, double *tmp)
{
    double loss = 0;
    for (int64_t n = 0; n < N; n++) {
        const double *e = E + n * K;
        for (int64_t i = 0; i < K; i++) {
            const double *h = H + i * K;
            double v = 0;
            for (int64_t j = 0; j < K; j++)
                v += h[j] * e[j];
            tmp[i] = v;
        }
        for (int64_t i = 0; i < K; i++)
            loss += e[i] * tmp[i];
    }
    return loss;
}

/* --- the search ---------------------------------------------------------------------- */

typedef struct awq_group {
    const char *prev;       /* suffix of the op before ("input_layernorm")    */
    bool prev_linear;
    const char *subs[3];    /* the Linear modules reading one input           */
    int n;
} awq_group;

static const awq_group GROUPS[4] = {
    {"input_layernorm", false, {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, 3},
    {"self_attn.v_proj", true, {"self_attn.o_proj", NULL, NULL}, 1},
    {"post_attention_layernorm", false, {"mlp.gate_proj", "mlp.up_proj", NULL}, 2},
    {"mlp.up_proj", true, {"mlp.down_proj", NULL, NULL}, 1},
};

/* Choose the scales of one group (weights unchanged); *ratio gets r/20. */
static tsr_status search_scale(tsr_model *m, tsr__param **lin, int nl, const awq_stat *a,
                               int64_t gs, bool duo, float *best_s, double *ratio)
{
    int64_t K = a->K, maxN = 0, sumN = 0;
    for (int i = 0; i < nl; i++) {
        maxN = lin[i]->ne[1] > maxN ? lin[i]->ne[1] : maxN;
        sumN += lin[i]->ne[1];
    }
    double *xm = calloc((size_t)K, sizeof *xm), *wm = calloc((size_t)K, sizeof *wm);
    double *H = malloc((size_t)(K * K) * sizeof *H), *E = malloc((size_t)(maxN * K) * sizeof *E);
    double *tmp = malloc((size_t)K * sizeof *tmp);
    float *s = malloc((size_t)K * sizeof *s), *Ws = malloc((size_t)(maxN * K) * sizeof *Ws);
    float *Q = malloc((size_t)(maxN * K) * sizeof *Q);
    tsr_status st = TSR_OK;
    if (!xm || !wm || !H || !E || !tmp || !s || !Ws || !Q) {
        st = tsr__error(TSR_ERR_NOMEM, "out of memory in the AWQ scale search");
        goto done;
    }
    for (int64_t k = 0; k < K; k++)
        xm[k] = a->rows > 0 ? a->absx[k] / a->rows : 0;
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = i; j < K; j++)
            H[i * K + j] = H[j * K + i] = a->xtx[i * K + j];
    /* w_mean: |w| / (max |w| of its group + 1e-6), averaged over all rows */
    for (int i = 0; i < nl; i++) {
        const float *W = lin[i]->t.data;
        for (int64_t n = 0; n < lin[i]->ne[1]; n++)
            for (int64_t k0 = 0; k0 < K; k0 += gs) {
                int64_t k1 = k0 + gs < K ? k0 + gs : K;
                double mx = 0;
                for (int64_t k = k0; k < k1; k++)
                    mx = fabs(W[n * K + k]) > mx ? fabs(W[n * K + k]) : mx;
                for (int64_t k = k0; k < k1; k++)
                    wm[k] += fabs(W[n * K + k]) / (mx + 1e-6);
            }
    }
    for (int64_t k = 0; k < K; k++)
        wm[k] /= (double)sumN;
    double best = INFINITY;
    *ratio = -1;
    for (int r = 0; r < AWQ_GRID; r++) {
        double ra = (double)r / AWQ_GRID, smax = 0, smin = INFINITY;
        for (int64_t k = 0; k < K; k++) {
            double v = duo ? pow(xm[k], ra) / (pow(wm[k], 1 - ra) + 1e-4) : pow(xm[k], ra);
            v = v < 1e-4 ? 1e-4 : v;
            s[k] = (float)v;
            smax = v > smax ? v : smax;
            smin = v < smin ? v : smin;
        }
        double norm = sqrt(smax * smin);
        for (int64_t k = 0; k < K; k++) {
            s[k] = (float)(s[k] / norm);
            if (!isfinite(s[k]))
                s[k] = 1;
        }
        double loss = 0;
        for (int i = 0; i < nl && !st; i++) {
            const float *W = lin[i]->t.data;
            int64_t N = lin[i]->ne[1];
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < K; k++)
                    Ws[n * K + k] = W[n * K + k] * s[k];
            if ((st = qdq(m, lin[i], Ws, Q)))
                break;
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < K; k++)
                    E[n * K + k] = (double)Q[n * K + k] / s[k] - W[n * K + k];
            loss += quad_loss(H, E, N, K, tmp);
        }
        if (st)
            goto done;
        if (loss < best) {
            best = loss;
            *ratio = ra;
            memcpy(best_s, s, (size_t)K * sizeof *s);
        }
    }
    if (*ratio < 0)
        st = tsr__error(TSR_ERR_INTERNAL, "AWQ scale search for '%s': no finite loss",
                        lin[0]->name);
done:
    free(xm);
    free(wm);
    free(H);
    free(E);
    free(tmp);
    free(s);
    free(Ws);
    free(Q);
    return st;
}

/* Clip one Linear weight (already scaled) against its scaled inputs. */
static tsr_status search_clip(tsr_model *m, tsr__param *p, const awq_stat *a, int64_t gs)
{
    int64_t K = p->ne[0], N = p->ne[1], G = (K + gs - 1) / gs;
    float *W = p->t.data;
    float *Wc = malloc((size_t)(N * K) * sizeof *Wc), *Q = malloc((size_t)(N * K) * sizeof *Q);
    float *omax = malloc((size_t)(N * G) * sizeof *omax), *bmax = malloc((size_t)(N * G) * sizeof *bmax);
    double *err = malloc((size_t)(N * G) * sizeof *err);
    double *Hg = malloc((size_t)(K * gs) * sizeof *Hg); /* diagonal blocks, scaled */
    tsr_status st = TSR_OK;
    if (!Wc || !Q || !omax || !bmax || !err || !Hg) {
        st = tsr__error(TSR_ERR_NOMEM, "out of memory in the AWQ clip search");
        goto done;
    }
    /* (X/s)^T (X/s) restricted to each group's block */
    for (int64_t i = 0; i < K; i++) {
        int64_t k0 = i / gs * gs, k1 = k0 + gs < K ? k0 + gs : K;
        for (int64_t j = k0; j < k1; j++) {
            int64_t lo = i < j ? i : j, hi = i < j ? j : i;
            Hg[i * gs + (j - k0)] = a->xtx[lo * K + hi] / ((double)a->s[i] * a->s[j]);
        }
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
            float mx = 0;
            for (int64_t k = g * gs; k < K && k < (g + 1) * gs; k++)
                mx = fabsf(W[n * K + k]) > mx ? fabsf(W[n * K + k]) : mx;
            omax[n * G + g] = bmax[n * G + g] = mx;
            err[n * G + g] = INFINITY;
        }
    for (int i = 0; i < AWQ_GRID / 2; i++) { /* max_shrink 0.5 */
        float f = 1.0f - (float)i / AWQ_GRID;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) {
                float mv = omax[n * G + k / gs] * f, v = W[n * K + k];
                Wc[n * K + k] = v > mv ? mv : (v < -mv ? -mv : v);
            }
        if ((st = qdq(m, p, Wc, Q)))
            goto done;
        for (int64_t n = 0; n < N; n++)
            for (int64_t g = 0; g < G; g++) {
                int64_t k0 = g * gs, k1 = k0 + gs < K ? k0 + gs : K;
                double e = 0;
                for (int64_t r = k0; r < k1; r++) {
                    double dr = (double)Q[n * K + r] - W[n * K + r], v = 0;
                    if (dr == 0)
                        continue;
                    for (int64_t c = k0; c < k1; c++)
                        v += Hg[r * gs + (c - k0)] * ((double)Q[n * K + c] - W[n * K + c]);
                    e += dr * v;
                }
                if (e < err[n * G + g]) {
                    err[n * G + g] = e;
                    bmax[n * G + g] = omax[n * G + g] * f;
                }
            }
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            float mv = bmax[n * G + k / gs], v = W[n * K + k];
            W[n * K + k] = v > mv ? mv : (v < -mv ? -mv : v);
        }
done:
    free(Wc);
    free(Q);
    free(omax);
    free(bmax);
    free(err);
    free(Hg);
    return st;
}

tsr_status tsr__awq_search(tsr_model *m, const int32_t *ids, size_t n, tsr__awq_report *rep)
{
    if (!m || !ids || !n)
        return tsr__error(TSR_ERR_INVALID_ARG, "AWQ calibration needs at least one token");
    if (!m->qvt || !m->qvt->quantize_weight)
        return tsr__error(TSR_ERR_INVALID_ARG, "AWQ calibration: the model has no quantizer "
                          "that quantizes float weights");
    tsr__awq_report r = {0};
    const char *mt = tsr__json_string(tsr__json_get(m->config, "model_type"), "");
    if (!strncmp(mt, "gemma", 5)) { /* (1 + w) norms: folding would need w' = (1+w)/s - 1 */
        tsr__log(TSR_LOG_WARN, "AWQ: no scale search for model_type '%s'; its weights are "
                 "quantized with round-to-nearest", mt);
        if (rep)
            *rep = r;
        return TSR_OK;
    }
    const tsr_json *gj = tsr__json_get(m->qconfig, "group_size");
    int64_t gcfg = tsr__json_int(gj ? gj : tsr__json_get(m->qconfig, "q_group_size"), 128);
    bool duo = tsr__json_bool(tsr__json_get(m->qconfig, "duo_scaling"), 1);
    bool clip = tsr__json_bool(tsr__json_get(m->qconfig, "apply_clip"), 1);
    size_t np = m->env.n_params;
    awq_ctx c = {.m = m};
    c.stat_of = malloc((np ? np : 1) * sizeof *c.stat_of);
    c.stats = calloc(np ? np : 1, sizeof *c.stats);
    tsr_status st = TSR_OK;
    if (!c.stat_of || !c.stats) {
        st = tsr__error(TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < np; i++)
        c.stat_of[i] = -1;
    /* the inputs to collect: the first Linear of each group, per layer */
    for (size_t i = 0; i < np && !st; i++) {
        const char *nm = m->env.params[i].name, *suf = ".self_attn.q_proj.weight";
        size_t nl = strlen(nm), sl = strlen(suf);
        if (nl <= sl || strcmp(nm + nl - sl, suf))
            continue;
        char layer[512];
        snprintf(layer, sizeof layer, "%.*s", (int)(nl - sl), nm);
        for (int g = 0; g < 4; g++) {
            tsr__param *p = linear(m, layer, GROUPS[g].subs[0]);
            if (!p || c.stat_of[p - m->env.params] >= 0)
                continue;
            awq_stat *a = &c.stats[c.n_stats];
            a->param = (size_t)(p - m->env.params);
            a->K = p->ne[0];
            a->absx = calloc((size_t)a->K, sizeof *a->absx);
            a->xtx = calloc((size_t)(a->K * a->K), sizeof *a->xtx);
            c.stat_of[a->param] = (int)c.n_stats++;
            if (!a->absx || !a->xtx)
                st = tsr__error(TSR_ERR_NOMEM, "out of memory for the AWQ statistics of '%s' "
                                "(%lld x %lld)", p->name, (long long)a->K, (long long)a->K);
        }
    }
    if (st)
        goto done;
    if (!c.n_stats) {
        tsr__log(TSR_LOG_WARN, "AWQ: no llama-style layers (self_attn.q_proj ...) in the %s "
                 "model; its weights are quantized with round-to-nearest", mt);
        goto done;
    }
    /* 1. one pass of the float model */
    if ((st = tsr__calib_forward(m, ids, n, awq_observe, &c, &c.st)))
        goto done;
    /* 2. per layer: all scales from the unchanged weights, then applied,
     *    then the clip search on the scaled weights and inputs */
    double ratio_sum = 0;
    for (size_t i = 0; i < np && !st; i++) {
        const char *nm = m->env.params[i].name, *suf = ".self_attn.q_proj.weight";
        size_t nl = strlen(nm), sl = strlen(suf);
        if (nl <= sl || strcmp(nm + nl - sl, suf))
            continue;
        char layer[512];
        snprintf(layer, sizeof layer, "%.*s", (int)(nl - sl), nm);
        tsr__param *lin[4][3];
        awq_stat *gst[4] = {0};
        bool use[4] = {0};
        for (int g = 0; g < 4; g++) {
            use[g] = true;
            for (int j = 0; j < GROUPS[g].n; j++)
                use[g] &= (lin[g][j] = linear(m, layer, GROUPS[g].subs[j])) != NULL;
            int si = use[g] ? c.stat_of[lin[g][0] - m->env.params] : -1;
            use[g] &= si >= 0 && c.stats[si].rows > 0;
            gst[g] = si >= 0 ? &c.stats[si] : NULL;
        }
        /* the previous Linear must exist; o after v only when their shapes agree */
        tsr__param *v = linear(m, layer, "self_attn.v_proj"), *up = linear(m, layer, "mlp.up_proj");
        use[1] &= v && lin[1][0] && v->ne[0] == lin[1][0]->ne[0] && v->ne[1] == lin[1][0]->ne[1];
        use[3] &= up != NULL;
        for (int g = 0; g < 4 && !st; g++) {
            if (!use[g])
                continue;
            awq_stat *a = gst[g];
            a->s = malloc((size_t)a->K * sizeof *a->s);
            double ratio = 0;
            st = a->s ? search_scale(m, lin[g], GROUPS[g].n, a, gcfg > 0 ? gcfg : a->K, duo,
                                     a->s, &ratio)
                      : tsr__error(TSR_ERR_NOMEM, "out of memory");
            ratio_sum += ratio;
        }
        for (int g = 0; g < 4 && !st; g++) {
            if (!use[g])
                continue;
            awq_stat *a = gst[g];
            char prev[560];
            snprintf(prev, sizeof prev, "%.511s.%.40s", layer, GROUPS[g].prev);
            if ((st = fold_prev(m, prev, a->s, a->K, GROUPS[g].prev_linear)))
                break;
            for (int j = 0; j < GROUPS[g].n && !st; j++) {
                tsr__param *p = lin[g][j];
                if ((st = make_writable(p)))
                    break;
                float *W = p->t.data;
                for (int64_t o = 0; o < p->ne[1]; o++)
                    for (int64_t k = 0; k < a->K; k++)
                        W[o * a->K + k] *= a->s[k];
            }
            r.scaled_groups++;
        }
        /* clip: v (qkv input), o, gate, up, down; never q and k */
        static const int clip_g[5] = {0, 1, 2, 2, 3}, clip_j[5] = {2, 0, 0, 1, 0};
        for (int t = 0; t < 5 && !st && clip; t++) {
            int g = clip_g[t];
            tsr__param *p = linear(m, layer, GROUPS[g].subs[clip_j[t]]);
            awq_stat *a = gst[g];
            if (!p || !a || a->rows <= 0)
                continue;
            if (!a->s) { /* not scaled: clip against unit scales */
                a->s = malloc((size_t)a->K * sizeof *a->s);
                if (!a->s) {
                    st = tsr__error(TSR_ERR_NOMEM, "out of memory");
                    break;
                }
                for (int64_t k = 0; k < a->K; k++)
                    a->s[k] = 1;
            }
            if ((st = make_writable(p)) ||
                (st = search_clip(m, p, a, gcfg > 0 ? gcfg : a->K)))
                break;
            r.clipped++;
        }
    }
    r.mean_ratio = r.scaled_groups ? ratio_sum / (double)r.scaled_groups : 0;
    if (!st)
        tsr__log(TSR_LOG_INFO, "AWQ search on %zu tokens of %s: %zu groups scaled (mean ratio "
                 "%.2f), %zu weights clipped", n, m->dir, r.scaled_groups, r.mean_ratio,
                 r.clipped);
done:
    for (size_t i = 0; c.stats && i < c.n_stats; i++) {
        free(c.stats[i].absx);
        free(c.stats[i].xtx);
        free(c.stats[i].s);
    }
    free(c.stats);
    free(c.stat_of);
    tsr__free(c.buf);
    if (rep)
        *rep = r;
    return st;
}
