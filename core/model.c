/* core/model.c - loading a Hugging Face model folder: config.json selects
 * the architecture plugin, which declares its weights by their Hugging Face
 * names; those are bound to the checkpoint's tensors (zero-copy when the
 * stored dtype is the run's dtype), backends are loaded in the configured
 * order, and the KV cache is sized from the model's description. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "calibrate.h"
#include "model.h"
#include "placement.h"

struct tsr_param_sink {
    tsr_model *m;
    tsr_status st;
};

/* --- parameters --------------------------------------------------------------- */

static tsr_status bind_param(tsr_model *m, tsr__param *p)
{
    tsr__ckpt_tensor *ct = tsr__checkpoint_find(m->ckpt, p->name);
    if (!ct) {
        if (p->flags & TSR_PARAM_OPTIONAL)
            return TSR_OK;
        return tsr__error(TSR_ERR_NOT_FOUND,
                          "%s: the model needs tensor '%s', which the checkpoint does not have",
                          m->dir, p->name);
    }
    ct->used = true;
    /* shapes: checkpoint is PyTorch order, declarations ne[] order;
     * a TRANSPOSED 2-D weight is stored [in, out] (GPT-2 Conv1D) */
    bool transposed = (p->flags & TSR_PARAM_TRANSPOSED) && p->n_dims == 2;
    bool same = ct->n_dims == p->n_dims;
    for (int d = 0; same && d < p->n_dims; d++)
        same = ct->shape[transposed ? d : ct->n_dims - 1 - d] == p->ne[d];
    if (!same) {
        char want[96] = "", got[96] = "";
        for (int d = p->n_dims - 1; d >= 0; d--)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld",
                     d == p->n_dims - 1 ? "" : ", ", (long long)p->ne[transposed ? p->n_dims - 1 - d : d]);
        for (int d = 0; d < ct->n_dims; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                     (long long)ct->shape[d]);
        return tsr__error(TSR_ERR_FORMAT,
                          "%s: tensor '%s' has shape [%s] but config.json implies [%s]",
                          ct->file, p->name, got, want);
    }
    tsr_tensor *t = &p->t;
    t->struct_size = sizeof *t;
    t->flags = TSR_TENSOR_FLAG_PARAM;
    t->device = -1;
    t->name = p->name;
    for (int d = 0; d < TSR_MAX_DIMS; d++)
        t->ne[d] = d < p->n_dims ? p->ne[d] : 1;
    uint32_t want = m->weights_dtype < 0 ? ct->dtype : (uint32_t)m->weights_dtype;
    bool floating = ct->dtype == TSR_DTYPE_F32 || ct->dtype == TSR_DTYPE_F16 ||
                    ct->dtype == TSR_DTYPE_BF16 || ct->dtype == TSR_DTYPE_F64;
    if (!floating)
        want = ct->dtype;
    if (want == TSR_DTYPE_F64)
        want = TSR_DTYPE_F32;
    t->dtype = want;
    size_t es = tsr__dtype_size(want);
    /* block formats (GGUF): nb[0] 0, rows of row_bytes */
    t->nb[0] = es;
    t->nb[1] = es ? es * (size_t)t->ne[0] : tsr__weight_row_bytes(t);
    for (int d = 2; d < TSR_MAX_DIMS; d++)
        t->nb[d] = t->nb[d - 1] * (size_t)t->ne[d - 1];
    if (want == ct->dtype && !transposed) {
        t->data = (void *)ct->data; /* zero-copy from the mmap */
        return TSR_OK;
    }
    if (transposed && !floating)
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s: tensor '%s': cannot transpose %s weights",
                          ct->file, p->name, tsr__dtype_name(ct->dtype));
    int64_t n = tsr_tensor_nelements(t);
    float *tmp = tsr__alloc((size_t)n * sizeof(float) * (transposed ? 2 : 1));
    p->owned = tsr__alloc((size_t)n * es);
    if (!p->owned || !tmp) {
        tsr__free(tmp);
        return tsr__error(TSR_ERR_NOMEM, "out of memory converting tensor '%s' to %s",
                          p->name, tsr__dtype_name(want));
    }
    tsr_status st = tsr__to_f32(ct->dtype, ct->data, tmp, n, NULL);
    float *f = tmp;
    if (!st && transposed) {
        /* stored [K][N] (in, out) -> rows of K per output feature */
        int64_t K = p->ne[0], N = p->ne[1];
        f = tmp + n;
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++)
                f[j * K + k] = tmp[k * N + j];
    }
    if (!st)
        st = tsr__from_f32(want, f, p->owned, n);
    tsr__free(tmp);
    if (st)
        return tsr__error_prefix(st, "%s: tensor '%s'", ct->file, p->name);
    t->data = p->owned;
    return TSR_OK;
}

tsr_status tsr__param_sink_declare(tsr_param_sink *sink, const char *hf_name, int n_dims,
                                   const int64_t *ne, uint32_t flags);
tsr_status tsr__param_sink_declare(tsr_param_sink *sink, const char *hf_name, int n_dims,
                                   const int64_t *ne, uint32_t flags)
{
    tsr_model *m = sink->m;
    if (sink->st)
        return sink->st;
    if (n_dims < 1 || n_dims > TSR_MAX_DIMS)
        return sink->st = tsr__error(TSR_ERR_INVALID_ARG, "weight '%s': %d dimensions",
                                     hf_name, n_dims);
    tsr__graph_env *env = &m->env;
    if (tsr__param_find(env, hf_name))
        return sink->st = tsr__error(TSR_ERR_INVALID_ARG,
                                     "the model plugin declared weight '%s' twice", hf_name);
    tsr__param *np = realloc(env->params, (env->n_params + 1) * sizeof *np);
    if (!np)
        return sink->st = tsr__error(TSR_ERR_NOMEM, "out of memory declaring weights");
    env->params = np;
    tsr__param *p = &np[env->n_params];
    memset(p, 0, sizeof *p);
    p->name = tsr__strdup(hf_name);
    p->n_dims = n_dims;
    p->flags = flags;
    for (int d = 0; d < TSR_MAX_DIMS; d++)
        p->ne[d] = d < n_dims ? ne[d] : 1;
    /* the strmap borrows names; params may move on realloc but names don't */
    if (!p->name || !tsr__strmap_put(env->param_index, p->name, env->n_params))
        return sink->st = tsr__error(TSR_ERR_NOMEM, "out of memory declaring weights");
    env->n_params++;
    return TSR_OK;
}

/* Tensors that checkpoints carry but no module owns, as transformers'
 * _keys_to_ignore_on_load_unexpected (old Llama checkpoints saved RoPE's
 * inv_freq buffer). */
static bool ignorable(const char *name)
{
    /* RoPE's cached frequencies (old Llama), GPT-2's causal-mask buffers */
    static const char *const suffixes[] = {"rotary_emb.inv_freq", ".attn.bias", ".attn.masked_bias"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t s = strlen(suffixes[i]);
        if (n >= s && strcmp(name + n - s, suffixes[i]) == 0)
            return true;
    }
    return false;
}

/* --- quantization ----------------------------------------------------------------- */

/* The run configuration's quantization.* keys that were set, as the JSON
 * object a quantizer takes (BitsAndBytesConfig/GPTQConfig/... key names). */
static tsr_status run_quant_config(tsr_model *m, tsr_json **out)
{
    json_t *o = json_object();
    if (!o)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    const char *method = tsr__config_string(m->cfg, "quantization.method");
    json_object_set_new(o, "quant_method", json_string(method));
    for (size_t i = 0; i < tsr__config_n_keys; i++) {
        const tsr__config_key *k = &tsr__config_keys[i];
        if (strncmp(k->name, "quantization.", 13) || !strcmp(k->name, "quantization.method") ||
            !tsr__config_is_set(m->cfg, k->name))
            continue;
        const char *key = k->name + 13;
        json_t *v = NULL;
        switch (k->type) {
        case TSR__CT_INT: v = json_integer(tsr__config_int(m->cfg, k->name)); break;
        case TSR__CT_REAL: v = json_real(tsr__config_real(m->cfg, k->name)); break;
        case TSR__CT_BOOL: v = json_boolean(tsr__config_bool(m->cfg, k->name)); break;
        case TSR__CT_LIST: case TSR__CT_LIST_OR_SCALAR:
            v = json_array();
            for (size_t j = 0; j < tsr__config_list_len(m->cfg, k->name); j++)
                json_array_append_new(v, json_string(tsr__config_list_at(m->cfg, k->name, j)));
            break;
        default: {
            const char *sv = tsr__config_string(m->cfg, k->name);
            v = sv ? json_string(sv) : json_null();
        }
        }
        json_object_set_new(o, key, v);
    }
    *out = (tsr_json *)o;
    return TSR_OK;
}

/* Pick the quantizer: config.json's quantization_config (pre-quantized, as
 * transformers) or the run's quantization.method (quantize on load). */
static tsr_status load_quantizer(tsr_model *m)
{
    const tsr_json *qc = tsr__json_get(m->config, "quantization_config");
    const char *run_method = tsr__config_string(m->cfg, "quantization.method");
    bool run_q = run_method && *run_method && strcmp(run_method, "none") != 0;
    tsr_status st;
    if (qc) {
        if (run_q)
            tsr__log(TSR_LOG_WARN, "%s is already quantized; the configuration's quantization "
                     "settings other than dequant_dtype are ignored", m->dir);
        m->prequantized = true;
        if (tsr__config_is_set(m->cfg, "quantization.dequant_dtype")) {
            /* the one run key that applies to a pre-quantized checkpoint:
             * how its weights are dequantized (GPTQ) */
            json_t *c = json_deep_copy((const json_t *)qc);
            if (!c || json_object_set_new(c, "dequant_dtype",
                                          json_string(tsr__config_string(m->cfg,
                                                                         "quantization.dequant_dtype")))) {
                json_decref(c);
                return tsr__error(TSR_ERR_NOMEM, "out of memory");
            }
            m->qconfig = (tsr_json *)c;
        } else {
            m->qconfig = (tsr_json *)json_incref((json_t *)qc);
        }
    } else if (run_q) {
        if ((st = run_quant_config(m, &m->qconfig)))
            return st;
    } else {
        return TSR_OK;
    }
    const char *method = tsr__json_string(tsr__json_get(m->qconfig, "quant_method"), NULL);
    if (!method)
        return tsr__error(TSR_ERR_FORMAT, "%s/config.json: quantization_config has no quant_method",
                          m->dir);
    tsr__registry *reg = tsr__registry_global();
    if (!reg)
        return tsr__error_prefix(TSR_ERR_PLUGIN, "cannot read the plugin registry");
    if ((st = tsr__registry_find(reg, TSR_PLUGIN_QUANTIZER, method, &m->qdesc)))
        return tsr__error_prefix(st, "quantization method '%s'", method);
    m->qvt = m->qdesc->vtable;
    if ((st = m->qvt->create(tsr__host(), m->qconfig, &m->qstate)))
        return tsr__error_prefix(st, "quantization config for '%s'", method);
    return TSR_OK;
}

static bool is_floating(uint32_t dt)
{
    return dt == TSR_DTYPE_F32 || dt == TSR_DTYPE_F16 || dt == TSR_DTYPE_BF16 || dt == TSR_DTYPE_F64;
}

/* Quantize a Linear weight bound as f32 and drop the float copy. */
static tsr_status quantize_bound(tsr_model *m, tsr__param *p, bool *done)
{
    char module[512];
    snprintf(module, sizeof module, "%.*s", (int)(strlen(p->name) - 7), p->name);
    tsr_tensor q = p->t;
    q.data = NULL;
    q.format_data = NULL;
    tsr_status st = m->qvt->quantize_weight(m->qstate, module, p->t.data, p->ne, &q);
    tsr__free(p->owned);
    p->owned = NULL;
    if (st)
        return tsr__error_prefix(st, "quantizing '%s' (%s)", module, m->qdesc->name);
    p->t = q;
    p->quantized = true;
    p->pending_quant = false;
    *done = true;
    return TSR_OK;
}

/* A Linear weight under a quantizer: pre-quantized from the checkpoint's
 * own layout, or quantized now from the floating weight. */
static tsr_status bind_quantized(tsr_model *m, tsr__param *p, bool *done)
{
    *done = false;
    size_t nl = strlen(p->name);
    if (!m->qvt || !(p->flags & TSR_PARAM_LINEAR) || nl < 8 || strcmp(p->name + nl - 7, ".weight"))
        return TSR_OK;
    char module[512];
    snprintf(module, sizeof module, "%.*s", (int)(nl - 7), p->name);
    if (m->qvt->skip_module && m->qvt->skip_module(m->qstate, module))
        return TSR_OK;
    tsr__ckpt_tensor *ct = tsr__checkpoint_find(m->ckpt, p->name);
    bool stored_float = ct && is_floating(ct->dtype);
    tsr_status st;
    p->t.struct_size = sizeof p->t;
    p->t.name = p->name;
    p->t.device = -1;
    p->t.flags = TSR_TENSOR_FLAG_PARAM;
    for (int d = 0; d < TSR_MAX_DIMS; d++)
        p->t.ne[d] = d < p->n_dims ? p->ne[d] : 1;
    if (m->prequantized && !stored_float) {
        st = m->qvt->load_weight(m->qstate, m->ckpt, module, p->ne, &p->t);
        if (st)
            return tsr__error_prefix(st, "%s: module '%s' (%s)", m->dir, module, m->qdesc->name);
    } else if (!m->prequantized && stored_float) {
        if (!m->qvt->quantize_weight)
            return tsr__error(TSR_ERR_UNSUPPORTED, "the %s quantizer cannot quantize on load "
                              "(it needs a pre-quantized checkpoint)", m->qdesc->name);
        /* bind as f32 first, then quantize (now, or after calibration) */
        int saved = m->weights_dtype;
        m->weights_dtype = TSR_DTYPE_F32;
        st = bind_param(m, p);
        m->weights_dtype = saved;
        if (st)
            return st;
        if (m->calibrating) {
            p->pending_quant = true; /* quantized after calibration */
            *done = true;
            return TSR_OK;
        }
        return quantize_bound(m, p, done);
    } else {
        return TSR_OK; /* stored unquantized in a quantized checkpoint */
    }
    p->quantized = true;
    *done = true;
    return TSR_OK;
}

static tsr_status load_weights(tsr_model *m, const tsr_load_options *opt)
{
    tsr_status st = m->ckpt ? TSR_OK : tsr__checkpoint_open(m->dir, &m->ckpt);
    if (st)
        return st;
    m->env.param_index = tsr__strmap_create(256);
    if (!m->env.param_index)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    tsr_param_sink sink = {m, TSR_OK};
    st = m->mvt->declare_params(m->mstate, &sink);
    if (sink.st)
        return sink.st;
    if (st)
        return st;
    if ((st = load_quantizer(m)))
        return st;
    /* quantizers that need calibration (GPTQ): every weight is bound as
     * float first, calibration text runs through the float model, then the
     * Linear weights are quantized with what the quantizer observed */
    m->calibrating = m->qvt && !m->prequantized &&
                     (m->qvt->capabilities & TSR_QUANT_REQUIRES_CALIBRATION);
    for (size_t i = 0; i < m->env.n_params; i++) {
        bool done;
        if ((st = bind_quantized(m, &m->env.params[i], &done)))
            return st;
        if (!done && (st = bind_param(m, &m->env.params[i])))
            return st;
        if (opt->progress && opt->progress((float)(i + 1) / (float)m->env.n_params,
                                           opt->progress_user))
            return tsr__error(TSR_ERR_CANCELLED, "loading %s was cancelled", m->dir);
    }
    size_t n = tsr__checkpoint_count(m->ckpt);
    for (size_t i = 0; i < n; i++) {
        tsr__ckpt_tensor *ct = tsr__checkpoint_at(m->ckpt, i);
        if (!ct->used && !ignorable(ct->name))
            return tsr__error(TSR_ERR_FORMAT,
                              "%s: tensor '%s' is not used by any module of the %s model "
                              "(wrong model_type or a corrupt checkpoint?)",
                              ct->file, ct->name, m->mdesc->name);
    }
    if (m->calibrating) {
        if ((st = tsr__calibrate_dataset(m)))
            return tsr__error_prefix(st, "calibration for %s", m->qdesc->name);
        for (size_t i = 0; i < m->env.n_params; i++) {
            bool done;
            if (m->env.params[i].pending_quant &&
                (st = quantize_bound(m, &m->env.params[i], &done)))
                return st;
        }
        m->calibrating = false;
    }
    return TSR_OK;
}

/* --- backends ------------------------------------------------------------------- */

static tsr_status load_backends(tsr_model *m)
{
    size_t n = tsr__config_list_len(m->cfg, "backends");
    if (n == 0)
        return tsr__error(TSR_ERR_CONFIG, "the 'backends' list is empty");
    m->env.backends = calloc(n, sizeof *m->env.backends);
    if (!m->env.backends)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    tsr__registry *reg = tsr__registry_global();
    if (!reg)
        return tsr__error_prefix(TSR_ERR_PLUGIN, "cannot read the plugin registry");
    char first_error[1024] = "";
    for (size_t i = 0; i < n; i++) {
        const char *name = tsr__config_list_at(m->cfg, "backends", i);
        const tsr_plugin_desc *d = NULL;
        tsr_status st = tsr__registry_find(reg, TSR_PLUGIN_BACKEND, name, &d);
        tsr__backend *b = &m->env.backends[m->env.n_backends];
        if (!st) {
            tsr_backend_options bo = {sizeof bo, (int32_t)tsr__config_int(m->cfg, "threads"), 0};
            b->desc = d;
            b->vt = d->vtable;
            st = b->vt->create(tsr__host(), &bo, &b->state);
        }
        if (st) {
            if (!first_error[0])
                snprintf(first_error, sizeof first_error, "%s", tsr_last_error());
            tsr__log(TSR_LOG_WARN, "backend '%s' is not used: %s", name, tsr_last_error());
            continue;
        }
        snprintf(b->name, sizeof b->name, "%s", name);
        m->env.n_backends++;
    }
    if (m->env.n_backends == 0)
        return tsr__error(TSR_ERR_PLUGIN, "none of the configured backends could be loaded: %s",
                          first_error);
    return TSR_OK;
}

/* --- device map ------------------------------------------------------------------------ */

/* device_map: a strategy (placement.c), one device, or a mapping of module
 * prefixes (with layer ranges) to devices. */
static tsr_status load_device_map(tsr_model *m)
{
    tsr_status st = tsr__place_backends(m);
    if (st)
        return st;
    size_t n = tsr__config_map_len(m->cfg, "device_map");
    if (n == 0) {
        /* a strategy or a single device */
        const char *s = tsr__config_string(m->cfg, "device_map");
        if (!s || !strcmp(s, "auto") || !strcmp(s, "balanced") || !strcmp(s, "balanced_low_0") ||
            !strcmp(s, "sequential"))
            return tsr__place_strategy(m, s ? s : "auto");
        int b = tsr__place_device_backend(m, s);
        if (b < 0)
            return tsr__error(TSR_ERR_CONFIG, "device_map '%s': no loaded backend provides this "
                              "device (check 'backends:' and `tessera plugins`)", s);
        n = 1;
        m->env.dmap = calloc(1, sizeof *m->env.dmap);
        if (!m->env.dmap)
            return tsr__error(TSR_ERR_NOMEM, "out of memory");
        m->env.dmap[0] = (tsr__dmap_entry){tsr__strdup(""), -1, -1, b, tsr__strdup(s),
                                           !strcmp(s, "disk")};
        m->env.n_dmap = 1;
        return TSR_OK;
    }
    m->env.dmap = calloc(n, sizeof *m->env.dmap);
    if (!m->env.dmap)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *key = tsr__config_map_key(m->cfg, "device_map", i);
        const char *dev = tsr__config_map_value(m->cfg, "device_map", i);
        int b = tsr__place_device_backend(m, dev);
        if (b < 0)
            return tsr__error(TSR_ERR_CONFIG, "device_map: '%s: %s': no loaded backend provides "
                              "device '%s' (check 'backends:' and `tessera plugins`)", key, dev, dev);
        tsr__dmap_entry *e = &m->env.dmap[m->env.n_dmap++];
        e->lo = e->hi = -1;
        e->backend = b;
        e->device = tsr__strdup(dev);
        e->disk = !strcmp(dev, "disk");
        /* "prefix.N-M": a layer range */
        const char *dot = strrchr(key, '.');
        long lo, hi;
        int used = 0;
        if (dot && sscanf(dot + 1, "%ld-%ld%n", &lo, &hi, &used) == 2 && dot[1 + used] == 0 &&
            lo <= hi) {
            e->prefix = tsr__strdup(key);
            e->prefix[dot + 1 - key] = 0;
            e->lo = lo;
            e->hi = hi;
        } else {
            e->prefix = tsr__strdup(key);
        }
        if (!e->prefix || !e->device)
            return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    return TSR_OK;
}

/* --- load -------------------------------------------------------------------------- */

static tsr_status load_model_plugin(tsr_model *m)
{
    const char *type = tsr__json_string(tsr__json_get(m->config, "model_type"), NULL);
    if (!type)
        return tsr__error(TSR_ERR_FORMAT, "%s/config.json: no \"model_type\" string", m->dir);
    tsr__registry *reg = tsr__registry_global();
    if (!reg)
        return tsr__error_prefix(TSR_ERR_PLUGIN, "cannot read the plugin registry");
    tsr_status st = tsr__registry_find(reg, TSR_PLUGIN_MODEL, type, &m->mdesc);
    if (st)
        return tsr__error_prefix(st, "%s/config.json: model_type '%s'", m->dir, type);
    m->mvt = m->mdesc->vtable;
    st = m->mvt->create(tsr__host(), m->config, &m->mstate);
    if (st)
        return tsr__error_prefix(st, "%s/config.json", m->dir);
    m->info.struct_size = sizeof m->info;
    return m->mvt->info(m->mstate, &m->info);
}

static tsr_status create_cache(tsr_model *m)
{
    return tsr__kv_create(m->info.n_layer, m->info.n_kv_head, m->info.head_dim, 0, &m->env.kv);
}

TSR_API tsr_status tsr_model_load(const tsr_load_options *opt, tsr_model **out)
{
    if (!opt || !out || opt->struct_size < offsetof(tsr_load_options, progress))
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_model_load: missing options");
    *out = NULL;
    tsr_model *m = calloc(1, sizeof *m);
    if (!m)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    tsr_status st = TSR_OK;
    m->cfg = opt->config;
    if (!m->cfg) {
        if ((st = tsr_config_create(&m->own_cfg)))
            goto fail;
        m->cfg = m->own_cfg;
    }
    const char *path = opt->model_path ? opt->model_path : tsr__config_string(m->cfg, "model");
    if (!path || !*path) {
        st = tsr__error(TSR_ERR_INVALID_ARG, "no model given (-m DIR or 'model:' in the configuration)");
        goto fail;
    }
    size_t pl = strlen(path);
    bool gguf = pl > 5 && strcmp(path + pl - 5, ".gguf") == 0;
    m->dir = tsr__strdup(path);
    const char *dt = tsr__config_string(m->cfg, "dtype");
    m->weights_dtype = (!dt || strcmp(dt, "auto") == 0) ? -1 : tsr__dtype_from_name(dt);
    if (gguf) {
        /* a GGUF file: metadata as config.json, tensors under HF names */
        if ((st = tsr__gguf_model_open(path, &m->config, &m->ckpt, &m->tok)) ||
            (st = load_model_plugin(m)) || (st = load_backends(m)) || (st = create_cache(m)) ||
            (st = load_weights(m, opt)))
            goto fail;
        goto loaded;
    }
    char *cfg_path = tsr__path_join(path, "config.json");
    st = cfg_path ? tsr__json_load_file(cfg_path, &m->config) : TSR_ERR_NOMEM;
    free(cfg_path);
    if (st)
        goto fail;
    char *gen_path = tsr__path_join(path, "generation_config.json");
    if (gen_path && tsr__file_exists(gen_path) && (st = tsr__json_load_file(gen_path, &m->gen_config))) {
        free(gen_path);
        goto fail;
    }
    free(gen_path);
    if ((st = load_model_plugin(m)) || (st = load_backends(m)) || (st = create_cache(m)) ||
        (st = load_weights(m, opt)))
        goto fail;
    {
        char *tok_path = tsr__path_join(path, "tokenizer.json");
        if (tok_path && tsr__file_exists(tok_path) && (st = tsr_tokenizer_load(path, &m->tok))) {
            free(tok_path);
            goto fail;
        }
        free(tok_path);
    }
loaded:
    if ((st = load_device_map(m)) || (st = tsr__place_weights(m)))
        goto fail;
    m->env.dump_dir = tsr__config_string(m->cfg, "dump_tensors");
    if (m->env.dump_dir && !*m->env.dump_dir)
        m->env.dump_dir = NULL;
    *out = m;
    return TSR_OK;
fail:
    tsr_model_destroy(m);
    return st;
}

TSR_API void tsr_model_destroy(tsr_model *m)
{
    if (!m)
        return;
    if (m->mvt && m->mstate)
        m->mvt->destroy(m->mstate);
    tsr__place_release(m); /* device memory, while its backends live */
    tsr__graph_env_release(&m->env);
    for (int i = 0; i < m->env.n_backends; i++)
        if (m->env.backends[i].vt->destroy)
            m->env.backends[i].vt->destroy(m->env.backends[i].state);
    free(m->env.backends);
    for (size_t i = 0; i < m->env.n_dmap; i++) {
        free(m->env.dmap[i].prefix);
        free(m->env.dmap[i].device);
    }
    free(m->env.dmap);
    for (size_t i = 0; i < m->env.n_params; i++) {
        if (m->env.params[i].quantized && m->qvt->release_weight)
            m->qvt->release_weight(m->qstate, &m->env.params[i].t);
        free(m->env.params[i].name);
        tsr__free(m->env.params[i].owned);
    }
    if (m->qvt && m->qstate)
        m->qvt->destroy(m->qstate);
    if (m->qconfig)
        tsr__json_free(m->qconfig);
    free(m->env.params);
    tsr__strmap_destroy(m->env.param_index);
    if (m->ckpt)
        tsr__checkpoint_close(m->ckpt);
    if (m->config)
        tsr__json_free(m->config);
    if (m->gen_config)
        tsr__json_free(m->gen_config);
    tsr_tokenizer_destroy(m->tok);
    tsr_config_destroy(m->own_cfg);
    tsr__free(m->arena);
    free(m->dir);
    free(m);
}

TSR_API const tsr_tokenizer *tsr_model_tokenizer(const tsr_model *m)
{
    return m ? m->tok : NULL;
}

void tsr__model_reset(tsr_model *m) { m->n_past = 0; }

tsr_status tsr__model_forward(tsr_model *m, const int32_t *ids, int n, int logits_all,
                              float *out)
{
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->info.n_vocab)
            return tsr__error(TSR_ERR_INVALID_ARG, "token id %d is outside the vocabulary (0..%d)",
                              ids[i], m->info.n_vocab - 1);
    tsr_status st = tsr__kv_reserve(m->env.kv, m->n_past + n);
    if (st)
        return st;
    tsr_graph *g = NULL;
    if ((st = tsr__graph_create(&m->env, n, (int)m->n_past, ids, &g)))
        return st;
    tsr_batch b = {sizeof b, n, (int32_t)m->n_past, logits_all};
    st = m->mvt->build(m->mstate, g, &b);
    tsr_tensor *o = st ? NULL : tsr__graph_output(g);
    if (!st && !o)
        st = tsr__error(TSR_ERR_INTERNAL, "the %s model plugin built a graph without output",
                        m->mdesc->name);
    if (!st)
        st = tsr__graph_compute(g, &m->arena, &m->arena_size);
    if (!st) {
        int64_t rows = logits_all ? n : 1;
        if (o->ne[0] != m->info.n_vocab || o->ne[1] != rows || o->dtype != TSR_DTYPE_F32)
            st = tsr__error(TSR_ERR_INTERNAL, "the model's output has shape [%lld, %lld], "
                            "expected [%lld, %d]", (long long)o->ne[1], (long long)o->ne[0],
                            (long long)rows, m->info.n_vocab);
        else
            for (int64_t r = 0; r < rows; r++)
                memcpy(out + r * m->info.n_vocab, (char *)o->data + r * o->nb[1],
                       (size_t)m->info.n_vocab * sizeof(float));
    }
    tsr__graph_destroy(g);
    if (!st) {
        m->n_past += n;
        m->env.step++;
    }
    return st;
}

TSR_API tsr_status tsr_model_logits(tsr_model *m, const int32_t *ids, size_t n, float *out)
{
    if (!m || !ids || !out || n == 0)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_model_logits: invalid arguments");
    tsr__model_reset(m);
    return tsr__model_forward(m, ids, (int)n, 1, out);
}

TSR_API tsr_status tsr_model_decode(tsr_model *m, const int32_t *ids, size_t n, int reset,
                                    float *last_logits)
{
    if (!m || !ids || !last_logits || n == 0)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_model_decode: invalid arguments");
    if (reset)
        tsr__model_reset(m);
    return tsr__model_forward(m, ids, (int)n, 0, last_logits);
}

/* --- describe ------------------------------------------------------------------------ */

typedef struct sbuf { char *p; size_t n, cap; int oom; } sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) TSR_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if (b->p && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t nc = (b->cap + (size_t)k + 1) * 2;
        char *np = realloc(b->p, nc);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = nc;
    }
}

TSR_API tsr_status tsr_model_describe(const tsr_model *m, char **text)
{
    if (!m || !text)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_model_describe: invalid arguments");
    sbuf b = {0};
    const char *type = tsr__json_string(tsr__json_get(m->config, "model_type"), "?");
    sb_printf(&b, "model: %s\nmodel_type: %s\narchitecture_plugin: %s %s\n", m->dir, type,
              m->mdesc->name, m->mdesc->version);
    sb_printf(&b, "layers: %d\nhidden_size: %d\nkv_heads: %d\nhead_dim: %d\nvocab_size: %d\n",
              m->info.n_layer, m->info.n_embd, m->info.n_kv_head, m->info.head_dim, m->info.n_vocab);
    if (m->qdesc)
        sb_printf(&b, "quantization: %s (%s)\n", m->qdesc->name,
                  m->prequantized ? "pre-quantized checkpoint" : "quantized on load");
    sb_printf(&b, "backends: [");
    for (int i = 0; i < m->env.n_backends; i++)
        sb_printf(&b, "%s%s", i ? ", " : "", m->env.backends[i].name);
    sb_printf(&b, "]\nhf_device_map:\n");
    /* per top-level module, as accelerate's hf_device_map lists them */
    char last[256] = "";
    for (size_t i = 0; i < m->env.n_params; i++) {
        const char *name = m->env.params[i].name;
        char mod[256];
        int layer;
        size_t off = 0;
        if (sscanf(name, "model.layers.%d.%zn", &layer, &off) == 1 && off)
            snprintf(mod, sizeof mod, "model.layers.%d", layer);
        else {
            snprintf(mod, sizeof mod, "%s", name);
            char *d = strrchr(mod, '.');
            if (d)
                *d = 0;
        }
        if (!strcmp(mod, last))
            continue;
        snprintf(last, sizeof last, "%s", mod);
        sb_printf(&b, "  %s: %s\n", mod, tsr__place_device_of(m, name));
    }
    /* what lives in each device backend's memory */
    for (int i = 0; i < m->env.n_backends; i++) {
        const tsr__backend *be = &m->env.backends[i];
        if (be->host_memory)
            continue;
        size_t up = 0, n_up = 0;
        for (size_t k = 0; k < m->env.n_params; k++)
            if (m->env.params[k].dev_data && m->env.params[k].dev_backend == i) {
                up += tsr__tensor_span(&m->env.params[k].t);
                n_up++;
            }
        sb_printf(&b, "device %s (%s): %zu weights uploaded, %zu bytes; total memory %llu\n",
                  be->device, be->info.name, n_up, up, (unsigned long long)be->info.total_memory);
    }
    size_t bytes = 0;
    for (size_t i = 0; i < m->env.n_params; i++)
        if (m->env.params[i].t.data)
            bytes += (size_t)tsr_tensor_nelements(&m->env.params[i].t) *
                     tsr__dtype_size(m->env.params[i].t.dtype);
    sb_printf(&b, "weights_bytes: %zu\nweights:\n", bytes);
    for (size_t i = 0; i < m->env.n_params; i++) {
        const tsr__param *p = &m->env.params[i];
        sb_printf(&b, "  %s: {shape: [", p->name);
        for (int d = p->n_dims - 1; d >= 0; d--)
            sb_printf(&b, "%lld%s", (long long)p->ne[d], d ? ", " : "");
        if (!p->t.data)
            sb_printf(&b, "], format: absent (optional)}\n");
        else
            sb_printf(&b, "], format: %s, storage: %s%s%s}\n", tsr__dtype_name(p->t.dtype),
                      p->quantized ? m->qdesc->name : p->owned ? "converted" : "mmap",
                      p->dev_data ? ", on " : p->offload ? ", offloaded (disk)" : "",
                      p->dev_data ? m->env.backends[p->dev_backend].device : "");
    }
    if (b.oom) {
        free(b.p);
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    *text = b.p;
    return TSR_OK;
}
