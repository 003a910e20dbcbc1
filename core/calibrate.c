/* core/calibrate.c - calibration runs for quantizers that need data: the
 * model reads calibration text while the graph observer hands Linear
 * modules' input batches to the quantizer (GPTQ accumulates its Hessian
 * H = 2 X X^T from them).  Single pass (every module from the float model)
 * or sequential (GPTQ as AutoGPTQ/GPTQModel: group by group, each group's
 * inputs computed with the earlier groups already quantized). */
#include <stdlib.h>
#include <string.h>
#include "calibrate.h"

/* What a calibration pass does with each Linear module input it sees. */
enum calib_mode {
    CALIB_OBSERVE_ALL, /* hand every input to observe_input (single pass)     */
    CALIB_DISCOVER,    /* record the order of modules and a hash of inputs    */
    CALIB_GROUP,       /* hand only the inputs of group `cur_group`           */
};

typedef struct calib_ctx {
    tsr_model *m;
    tsr_status st;
    float *buf;         /* gathers a strided input into M rows of K        */
    size_t cap;
    size_t calls;
    enum calib_mode mode;
    /* sequential calibration, indexed by parameter */
    int *group;         /* group of the param, -1 none                     */
    uint64_t *hash;     /* hash of its first input (discovery)             */
    bool *seen;
    size_t *order;      /* params in the order their first input came      */
    size_t n_order;
    int cur_group;
} calib_ctx;

/* FNV-1a over the bytes of an input batch: modules whose first inputs hash
 * the same read the same tensor (q/k/v after one norm; gate/up). */
static uint64_t hash_input(const float *x, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *b = (const unsigned char *)x;
    for (size_t i = 0; i < n * sizeof(float); i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

const float *tsr__calib_gather(const tsr_tensor *x, float **buf, size_t *cap)
{
    int64_t K = x->ne[0], M = x->ne[1] * x->ne[2] * x->ne[3];
    bool contiguous = x->nb[0] == sizeof(float) && x->nb[1] == (size_t)K * sizeof(float) &&
                      x->nb[2] == x->nb[1] * (size_t)x->ne[1] &&
                      x->nb[3] == x->nb[2] * (size_t)x->ne[2];
    if (contiguous)
        return x->data;
    size_t need = (size_t)(K * M) * sizeof(float);
    if (need > *cap) {
        tsr__free(*buf);
        *buf = tsr__alloc(need);
        *cap = *buf ? need : 0;
        if (!*buf)
            return NULL;
    }
    float *o = *buf;
    int64_t r = 0;
    for (int64_t i3 = 0; i3 < x->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < x->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < x->ne[1]; i1++, r++)
                for (int64_t k = 0; k < K; k++)
                    o[r * K + k] = *(const float *)((const char *)x->data + i3 * x->nb[3] +
                                                    i2 * x->nb[2] + i1 * x->nb[1] + k * x->nb[0]);
    return o;
}

static void calib_observe(void *user, const tsr_tensor *node)
{
    calib_ctx *c = user;
    if (c->st || node->op != TSR_OP_MUL_MAT)
        return;
    const tsr_tensor *w = node->src[0], *x = node->src[1];
    if (!w || !x || !w->name || x->dtype != TSR_DTYPE_F32)
        return;
    tsr__param *p = tsr__param_find(&c->m->env, w->name);
    size_t nl = strlen(w->name);
    if (!p || !(p->flags & TSR_PARAM_LINEAR) || nl < 8 || strcmp(w->name + nl - 7, ".weight"))
        return;
    size_t pi = (size_t)(p - c->m->env.params);
    if (c->mode == CALIB_GROUP && c->group[pi] != c->cur_group)
        return;
    if (c->mode == CALIB_DISCOVER && c->seen[pi])
        return;
    char module[512];
    snprintf(module, sizeof module, "%.*s", (int)(nl - 7), w->name);
    const tsr_quantizer_vtable *vt = c->m->qvt;
    if (vt->skip_module && vt->skip_module(c->m->qstate, module))
        return;
    int64_t K = x->ne[0], M = x->ne[1] * x->ne[2] * x->ne[3];
    const float *data = tsr__calib_gather(x, &c->buf, &c->cap);
    if (!data) {
        c->st = tsr__error(TSR_ERR_NOMEM, "out of memory in calibration");
        return;
    }
    if (c->mode == CALIB_DISCOVER) {
        c->seen[pi] = true;
        c->hash[pi] = hash_input(data, (size_t)(K * M)) ^ (uint64_t)K * 0x9e3779b97f4a7c15ull;
        c->order[c->n_order++] = pi;
        return;
    }
    tsr_status st = vt->observe_input(c->m->qstate, module, data, K, M);
    if (st)
        c->st = tsr__error_prefix(st, "calibration of '%s'", module);
    c->calls++;
}

static int64_t calib_seqlen(const tsr_model *m)
{
    int64_t seqlen = tsr__config_is_set(m->cfg, "quantization.model_seqlen")
                         ? tsr__config_int(m->cfg, "quantization.model_seqlen")
                         : m->info.n_ctx_train;
    if (seqlen <= 0 || seqlen > 2048)
        seqlen = seqlen <= 0 ? 512 : 2048;
    return seqlen;
}

tsr_status tsr__calib_forward(tsr_model *m, const int32_t *ids, size_t n,
                              void (*observer)(void *, const tsr_tensor *), void *user,
                              const tsr_status *stop)
{
    int64_t seqlen = calib_seqlen(m);
    float *logits = tsr__alloc((size_t)m->info.n_vocab * sizeof(float));
    if (!logits)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    void (*saved)(void *, const tsr_tensor *) = m->env.observer;
    void *saved_user = m->env.observer_user;
    m->env.observer = observer;
    m->env.observer_user = user;
    tsr_status st = TSR_OK;
    for (size_t off = 0; off < n && !st && !*stop; off += (size_t)seqlen) {
        size_t len = n - off < (size_t)seqlen ? n - off : (size_t)seqlen;
        tsr__model_reset(m);
        st = tsr__model_forward(m, ids + off, (int)len, 0, logits);
    }
    m->env.observer = saved;
    m->env.observer_user = saved_user;
    tsr__model_reset(m);
    tsr__free(logits);
    return st ? st : *stop;
}

/* Run ids[0..n) through the model in windows with the observer set. */
static tsr_status calib_run(tsr_model *m, calib_ctx *c, const int32_t *ids, size_t n)
{
    return tsr__calib_forward(m, ids, n, calib_observe, c, &c->st);
}

static tsr_status calib_check(const tsr_model *m, const int32_t *ids, size_t n)
{
    if (!m || !ids || !n)
        return tsr__error(TSR_ERR_INVALID_ARG, "calibration needs at least one token");
    if (!m->qvt || !m->qvt->observe_input)
        return tsr__error(TSR_ERR_INVALID_ARG, "calibration: the model has no quantizer that "
                          "observes inputs");
    return TSR_OK;
}

tsr_status tsr__calibrate(tsr_model *m, const int32_t *ids, size_t n)
{
    tsr_status st = calib_check(m, ids, n);
    if (st)
        return st;
    calib_ctx c = {.m = m, .mode = CALIB_OBSERVE_ALL};
    st = calib_run(m, &c, ids, n);
    tsr__free(c.buf);
    if (!st && c.calls == 0)
        st = tsr__error(TSR_ERR_INTERNAL, "calibration: no Linear module of the %s model "
                        "reached the quantizer", m->mdesc ? m->mdesc->name : "?");
    if (!st)
        tsr__log(TSR_LOG_INFO, "calibrated %s on %zu tokens (%zu module inputs)", m->dir, n,
                 c.calls);
    return st;
}

/* Length of the decoder-layer prefix of a module name: up to and including
 * its first all-digit path component ("model.layers.3" of
 * "model.layers.3.self_attn.q_proj"); 0 when it has none (lm_head). */
static size_t layer_prefix(const char *name)
{
    const char *s = name;
    while (*s) {
        const char *e = strchr(s, '.');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        size_t d = 0;
        while (d < len && s[d] >= '0' && s[d] <= '9')
            d++;
        if (len && d == len)
            return (size_t)(s - name) + len;
        if (!e)
            break;
        s = e + 1;
    }
    return 0;
}

/* Quantize a Linear weight bound as f32 in place (as the load path does
 * after calibration) and drop the float copy. */
static tsr_status quantize_param(tsr_model *m, tsr__param *p)
{
    char module[512];
    snprintf(module, sizeof module, "%.*s", (int)(strlen(p->name) - 7), p->name);
    tsr_tensor q = p->t;
    q.data = NULL;
    q.format_data = NULL;
    tsr_status st = m->qvt->quantize_weight(m->qstate, module, p->t.data, p->ne, &q);
    if (st)
        return tsr__error_prefix(st, "quantizing '%s' (%s)", module, m->qdesc->name);
    tsr__free(p->owned);
    p->owned = NULL;
    p->t = q;
    p->quantized = true;
    p->pending_quant = false;
    return TSR_OK;
}

tsr_status tsr__calibrate_sequential(tsr_model *m, const int32_t *ids, size_t n,
                                     bool true_sequential, size_t *n_groups)
{
    tsr_status st = calib_check(m, ids, n);
    if (st)
        return st;
    if (!m->qvt->quantize_weight)
        return tsr__error(TSR_ERR_INVALID_ARG, "sequential calibration: the %s quantizer "
                          "cannot quantize float weights", m->qdesc ? m->qdesc->name : "?");
    size_t np = m->env.n_params;
    calib_ctx c = {.m = m, .mode = CALIB_DISCOVER};
    c.group = malloc((np ? np : 1) * sizeof *c.group);
    c.hash = calloc(np ? np : 1, sizeof *c.hash);
    c.seen = calloc(np ? np : 1, sizeof *c.seen);
    c.order = malloc((np ? np : 1) * sizeof *c.order);
    size_t *g_first = malloc((np ? np : 1) * sizeof *g_first); /* a member of each group */
    size_t G = 0, quantized = 0;
    if (!c.group || !c.hash || !c.seen || !c.order || !g_first) {
        st = tsr__error(TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < np; i++)
        c.group[i] = -1;
    /* 1. one pass of the float model: which modules run, in what order,
     *    and which of them read the same input */
    if ((st = calib_run(m, &c, ids, n)))
        goto done;
    /* 2. groups: per decoder layer, in execution order; with
     *    true_sequential, one group per distinct input within the layer */
    for (size_t o = 0; o < c.n_order; o++) {
        size_t pi = c.order[o];
        const tsr__param *p = &m->env.params[pi];
        if (p->quantized || p->t.dtype != TSR_DTYPE_F32)
            continue; /* already quantized (or not ours to quantize) */
        size_t lp = layer_prefix(p->name);
        size_t g = 0;
        for (; g < G; g++) {
            const tsr__param *q = &m->env.params[g_first[g]];
            if (layer_prefix(q->name) == lp && !strncmp(q->name, p->name, lp) &&
                (!true_sequential || c.hash[g_first[g]] == c.hash[pi]))
                break;
        }
        if (g == G)
            g_first[G++] = pi;
        c.group[pi] = (int)g;
    }
    /* 3. per group: collect its inputs with the earlier groups quantized,
     *    then quantize it */
    c.mode = CALIB_GROUP;
    for (size_t g = 0; g < G; g++) {
        c.cur_group = (int)g;
        if ((st = calib_run(m, &c, ids, n)))
            goto done;
        for (size_t i = 0; i < np; i++)
            if (c.group[i] == (int)g) {
                if ((st = quantize_param(m, &m->env.params[i])))
                    goto done;
                quantized++;
            }
        tsr__log(TSR_LOG_DEBUG, "calibration group %zu/%zu (%s...) quantized", g + 1, G,
                 m->env.params[g_first[g]].name);
    }
    if (!c.calls)
        st = tsr__error(TSR_ERR_INTERNAL, "calibration: no Linear module of the %s model "
                        "reached the quantizer", m->mdesc ? m->mdesc->name : "?");
    else
        tsr__log(TSR_LOG_INFO, "calibrated %s on %zu tokens sequentially: %zu groups (%zu "
                 "forward passes), %zu Linear weights quantized", m->dir, n, G, G + 1, quantized);
done:
    if (n_groups)
        *n_groups = G;
    tsr__free(c.buf);
    free(c.group);
    free(c.hash);
    free(c.seen);
    free(c.order);
    free(g_first);
    return st;
}

tsr_status tsr__calibrate_dataset(tsr_model *m)
{
    const char *path = tsr__config_string(m->cfg, "quantization.dataset");
    if (!path || !*path)
        return TSR_OK;
    char *text = NULL;
    size_t len = 0;
    tsr_status st = tsr__read_file(path, &text, &len);
    if (st)
        return tsr__error_prefix(st, "quantization.dataset");
    tsr_tokenizer *own = NULL;
    const tsr_tokenizer *tok = m->tok;
    if (!tok && (st = tsr_tokenizer_load(m->dir, &own))) {
        free(text);
        return tsr__error_prefix(st, "calibration needs the model's tokenizer");
    }
    if (!tok)
        tok = own;
    size_t n = 0;
    st = tsr_tokenize(tok, text, len, TSR_TOKENIZE_ADD_SPECIAL, NULL, 0, &n);
    int32_t *ids = NULL;
    if (!st && n) {
        ids = malloc(n * sizeof *ids);
        st = ids ? tsr_tokenize(tok, text, len, TSR_TOKENIZE_ADD_SPECIAL, ids, n, &n)
                 : tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    int64_t cap = tsr__config_int(m->cfg, "quantization.calibration_tokens");
    if (!st && cap > 0 && n > (size_t)cap)
        n = (size_t)cap;
    if (!st && !n)
        st = tsr__error(TSR_ERR_CONFIG, "quantization.dataset: %s has no text", path);
    if (!st) {
        /* GPTQ runs layer by layer (AutoGPTQ/GPTQModel); other methods from
         * the float model's activations in one pass */
        const char *method = tsr__json_string(tsr__json_get(m->qconfig, "quant_method"), "");
        if (!strcmp(method, "awq"))
            st = tsr__awq_search(m, ids, n, NULL);
        else if (!strcmp(method, "gptq"))
            st = tsr__calibrate_sequential(
                m, ids, n, tsr__json_bool(tsr__json_get(m->qconfig, "true_sequential"), 1), NULL);
        else
            st = tsr__calibrate(m, ids, n);
    }
    free(ids);
    free(text);
    tsr_tokenizer_destroy(own);
    return st;
}
