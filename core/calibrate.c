/* core/calibrate.c - calibration runs for GPTQ-like quantizers: the float
 * model reads calibration text while the graph observer hands every Linear
 * module's input batch to the quantizer (GPTQ accumulates its Hessian
 * H = 2 X X^T from them). */
#include <stdlib.h>
#include <string.h>
#include "calibrate.h"

typedef struct calib_ctx {
    tsr_model *m;
    tsr_status st;
    float *buf;         /* gathers a strided input into M rows of K        */
    size_t cap;
    size_t calls;
} calib_ctx;

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
    char module[512];
    snprintf(module, sizeof module, "%.*s", (int)(nl - 7), w->name);
    const tsr_quantizer_vtable *vt = c->m->qvt;
    if (vt->skip_module && vt->skip_module(c->m->qstate, module))
        return;
    int64_t K = x->ne[0], M = x->ne[1] * x->ne[2] * x->ne[3];
    const float *data = x->data;
    bool contiguous = x->nb[0] == sizeof(float) && x->nb[1] == (size_t)K * sizeof(float) &&
                      x->nb[2] == x->nb[1] * (size_t)x->ne[1] &&
                      x->nb[3] == x->nb[2] * (size_t)x->ne[2];
    if (!contiguous) {
        size_t need = (size_t)(K * M) * sizeof(float);
        if (need > c->cap) {
            tsr__free(c->buf);
            c->buf = tsr__alloc(need);
            c->cap = c->buf ? need : 0;
            if (!c->buf) {
                c->st = tsr__error(TSR_ERR_NOMEM, "out of memory in calibration");
                return;
            }
        }
        int64_t r = 0;
        for (int64_t i3 = 0; i3 < x->ne[3]; i3++)
            for (int64_t i2 = 0; i2 < x->ne[2]; i2++)
                for (int64_t i1 = 0; i1 < x->ne[1]; i1++, r++)
                    for (int64_t k = 0; k < K; k++)
                        c->buf[r * K + k] = *(const float *)((const char *)x->data + i3 * x->nb[3] +
                                                             i2 * x->nb[2] + i1 * x->nb[1] +
                                                             k * x->nb[0]);
        data = c->buf;
    }
    tsr_status st = vt->observe_input(c->m->qstate, module, data, K, M);
    if (st)
        c->st = tsr__error_prefix(st, "calibration of '%s'", module);
    c->calls++;
}

tsr_status tsr__calibrate(tsr_model *m, const int32_t *ids, size_t n)
{
    if (!m || !ids || !n)
        return tsr__error(TSR_ERR_INVALID_ARG, "calibration needs at least one token");
    if (!m->qvt || !m->qvt->observe_input)
        return tsr__error(TSR_ERR_INVALID_ARG, "calibration: the model has no quantizer that "
                          "observes inputs");
    int64_t seqlen = tsr__config_is_set(m->cfg, "quantization.model_seqlen")
                         ? tsr__config_int(m->cfg, "quantization.model_seqlen")
                         : m->info.n_ctx_train;
    if (seqlen <= 0 || seqlen > 2048)
        seqlen = seqlen <= 0 ? 512 : 2048;
    float *logits = tsr__alloc((size_t)m->info.n_vocab * sizeof(float));
    if (!logits)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    calib_ctx c = {m, TSR_OK, NULL, 0, 0};
    void (*saved)(void *, const tsr_tensor *) = m->env.observer;
    void *saved_user = m->env.observer_user;
    m->env.observer = calib_observe;
    m->env.observer_user = &c;
    tsr_status st = TSR_OK;
    for (size_t off = 0; off < n && !st && !c.st; off += (size_t)seqlen) {
        size_t len = n - off < (size_t)seqlen ? n - off : (size_t)seqlen;
        tsr__model_reset(m);
        st = tsr__model_forward(m, ids + off, (int)len, 0, logits);
    }
    m->env.observer = saved;
    m->env.observer_user = saved_user;
    tsr__model_reset(m);
    tsr__free(logits);
    tsr__free(c.buf);
    if (!st && c.st)
        st = c.st;
    if (!st && c.calls == 0)
        st = tsr__error(TSR_ERR_INTERNAL, "calibration: no Linear module of the %s model "
                        "reached the quantizer", m->mdesc ? m->mdesc->name : "?");
    if (!st)
        tsr__log(TSR_LOG_INFO, "calibrated %s on %zu tokens (%zu module inputs)", m->dir, n,
                 c.calls);
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
    if (!st)
        st = tsr__calibrate(m, ids, n);
    free(ids);
    free(text);
    tsr_tokenizer_destroy(own);
    return st;
}
