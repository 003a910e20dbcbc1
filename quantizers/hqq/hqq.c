/* quantizers/hqq/hqq.c - the HQQ quantizer plugin (quant_method "hqq").
 *
 * Pre-quantized checkpoints: the layout transformers' HqqConfig +
 * save_pretrained writes, i.e. hqq's HQQLinear.state_dict() under each
 * module's name: <module>.W_q (bit-packed, hqq_solve.c), .scale and .zero
 * (compute dtype, one per group, scale already inverted), and encoded meta
 * tensors (.nbits, .group_size, .axis, .shape, .packing, .compute_dtype ...).
 * On load, weights are quantized with hqq's proximal solver (hqq_solve.c).
 *
 * Runtime format: TSR_DTYPE_INT_GROUP.  hqq's axis 0 maps to the format's
 * axis 0 as is (g = f % C).  hqq's axis 1 groups are runs of group_size
 * elements of the flattened weight (g = f / gs); when group_size divides K
 * that is the format's axis 1; otherwise a group spans rows, and the format
 * gets sub-groups of d = gcd(K, gs) elements, each inside one row and one hqq
 * group, with that group's scale and zero repeated (exact, more side data).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tessera/plugin/plugin.h>
#include <tessera/plugin/quantizer.h>
#include "hqq_internal.h"

#define HQQ_MAX_SKIP 64

static const tsr_host *H;

typedef struct hqq_state {
    int nbits, axis, optimize, round_zero, channel_wise, view_as_float;
    int64_t group_size;          /* <= 0: one group per row (axis 1) / column */
    uint32_t compute_dtype;      /* TSR_DTYPE_F16/BF16/F32: scale/zero storage */
    hqq_opt_params op;
    int n_skip;
    char *skip[HQQ_MAX_SKIP];
} hqq_state;

/* One weight: the runtime format first (format_data points at it), then
 * what hqq's own layout needs to be written back. */
typedef struct hqq_weight {
    tsr_fmt_int_group fmt;
    int nbits, axis, optimize, round_zero, channel_wise;
    uint32_t compute_dtype;
    int64_t N, K, gs;            /* hqq's group_size                        */
    float *scale, *zero;         /* [numel/gs] hqq's groups, as stored       */
    float *fscale, *fzero;       /* the format's arrays (== scale/zero or expanded) */
    uint8_t *codes;              /* the format's packed rows                 */
} hqq_weight;

static const char *dtype_str(uint32_t dt)
{
    return dt == TSR_DTYPE_F16 ? "torch.float16" : dt == TSR_DTYPE_BF16 ? "torch.bfloat16"
                                                                        : "torch.float32";
}

static int parse_dtype(const char *s, uint32_t *dt)
{
    if (!s)
        return -1;
    if (!strncmp(s, "torch.", 6))
        s += 6;
    if (!strcmp(s, "float16") || !strcmp(s, "half"))
        *dt = TSR_DTYPE_F16;
    else if (!strcmp(s, "bfloat16"))
        *dt = TSR_DTYPE_BF16;
    else if (!strcmp(s, "float32") || !strcmp(s, "float"))
        *dt = TSR_DTYPE_F32;
    else
        return -1;
    return 0;
}

/* Round to the compute dtype, as HQQLinear's meta.to(compute_dtype). */
static float to_compute(uint32_t dt, float v)
{
    if (dt == TSR_DTYPE_F16)
        return H->f16_to_f32(H->f32_to_f16(v));
    if (dt == TSR_DTYPE_BF16)
        return H->bf16_to_f32(H->f32_to_bf16(v));
    return v;
}

static int valid_bits(int64_t b) { return b == 1 || b == 2 || b == 3 || b == 4 || b == 8; }

static char *dup_str(const char *v)
{
    size_t n = strlen(v) + 1;
    char *d = H->alloc(n);
    if (d)
        memcpy(d, v, n);
    return d;
}

/* --- config ------------------------------------------------------------------- */

static tsr_status set_skip(hqq_state *s, const tsr_json *arr)
{
    if (!arr || H->json_type(arr) == TSR_JSON_NULL) {
        s->skip[0] = dup_str("lm_head");
        s->n_skip = s->skip[0] ? 1 : 0;
        return s->n_skip ? TSR_OK : H->set_error(TSR_ERR_NOMEM, "hqq: out of memory");
    }
    if (H->json_type(arr) != TSR_JSON_ARRAY)
        return H->set_error(TSR_ERR_CONFIG, "hqq: quantization_config.skip_modules must be a "
                            "list of module names");
    size_t n = H->json_size(arr);
    if (n > HQQ_MAX_SKIP)
        return H->set_error(TSR_ERR_CONFIG, "hqq: quantization_config.skip_modules has %zu "
                            "entries (at most %d)", n, HQQ_MAX_SKIP);
    for (size_t i = 0; i < n; i++) {
        const char *v = H->json_string(H->json_at(arr, i), NULL);
        if (!v)
            return H->set_error(TSR_ERR_CONFIG, "hqq: quantization_config.skip_modules[%zu] is "
                                "not a string", i);
        if (!(s->skip[s->n_skip] = dup_str(v)))
            return H->set_error(TSR_ERR_NOMEM, "hqq: out of memory");
        s->n_skip++;
    }
    return TSR_OK;
}

static void hqq_destroy(void *state)
{
    hqq_state *s = state;
    if (!s)
        return;
    for (int i = 0; i < s->n_skip; i++)
        H->free(s->skip[i]);
    H->free(s);
}

/* Two spellings: transformers' saved HqqConfig.to_dict() ({"quant_config":
 * {"weight_quant_params": {...}}, "skip_modules": [...]}; with a
 * dynamic_config quant_config is keyed by layer tag and the checkpoint's
 * own meta tensors decide), or the run configuration's flat keys (nbits,
 * group_size, axis, skip_modules; compute_dtype and view_as_float too). */
static tsr_status hqq_create(const tsr_host *host, const tsr_json *qc, void **out)
{
    H = host;
    hqq_state *s = H->calloc(1, sizeof *s);
    if (!s)
        return H->set_error(TSR_ERR_NOMEM, "hqq: out of memory");
    s->nbits = 4, s->group_size = 64, s->axis = 1, s->optimize = 1, s->channel_wise = 1;
    s->compute_dtype = TSR_DTYPE_F16;
    s->op = (hqq_opt_params){0.7, 1e1, 1.01, 20};
    const tsr_json *src = qc;
    const tsr_json *qcfg = H->json_get(qc, "quant_config");
    if (qcfg && H->json_type(qcfg) == TSR_JSON_OBJECT) {
        const tsr_json *wq = H->json_get(qcfg, "weight_quant_params");
        if (!wq) /* dynamic_config: take the first layer's settings as defaults */
            wq = H->json_size(qcfg) ? H->json_get(H->json_at(qcfg, 0), "weight_quant_params")
                                    : NULL;
        src = wq;
        if (H->json_get(qcfg, "scale_quant_params") &&
            H->json_type(H->json_get(qcfg, "scale_quant_params")) == TSR_JSON_OBJECT)
            goto deprecated;
        if (H->json_get(qcfg, "zero_quant_params") &&
            H->json_type(H->json_get(qcfg, "zero_quant_params")) == TSR_JSON_OBJECT)
            goto deprecated;
    }
    tsr_status st;
    int64_t nb = H->json_int(H->json_get(src, "nbits"), 4);
    if (!valid_bits(nb)) {
        st = H->set_error(TSR_ERR_CONFIG, "hqq: nbits %lld is not supported (1, 2, 3, 4 or 8)",
                          (long long)nb);
        goto fail;
    }
    s->nbits = (int)nb;
    const tsr_json *g = H->json_get(src, "group_size");
    s->group_size = !g || H->json_type(g) == TSR_JSON_NULL ? -1 : H->json_int(g, 64);
    if (!g)
        s->group_size = 64;
    if (s->group_size == 0 || (s->group_size > 0 && s->group_size % 8)) {
        st = H->set_error(TSR_ERR_CONFIG, "hqq: group_size %lld must be a multiple of 8 "
                          "(hqq's BaseQuantizeConfig), or -1 for one group per row",
                          (long long)s->group_size);
        goto fail;
    }
    int64_t ax = H->json_int(H->json_get(src, "axis"), 1);
    if (ax != 0 && ax != 1) {
        st = H->set_error(TSR_ERR_CONFIG, "hqq: axis %lld is not 0 or 1", (long long)ax);
        goto fail;
    }
    s->axis = (int)ax;
    s->optimize = H->json_bool(H->json_get(src, "optimize"), 1);
    s->round_zero = H->json_bool(H->json_get(src, "round_zero"), s->nbits == 4);
    s->channel_wise = H->json_bool(H->json_get(src, "channel_wise"), 1);
    s->view_as_float = H->json_bool(H->json_get(src, "view_as_float"), 0);
    if (!s->channel_wise) {
        st = H->set_error(TSR_ERR_UNSUPPORTED, "hqq: channel_wise false (one scale for the whole "
                          "tensor) is not supported");
        goto fail;
    }
    const char *cd = H->json_string(H->json_get(qc, "compute_dtype"), NULL);
    if (cd && parse_dtype(cd, &s->compute_dtype)) {
        st = H->set_error(TSR_ERR_CONFIG, "hqq: compute_dtype '%s' is not float16, bfloat16 or "
                          "float32", cd);
        goto fail;
    }
    if ((st = set_skip(s, H->json_get(qc, "skip_modules"))))
        goto fail;
    *out = s;
    return TSR_OK;
deprecated:
    st = H->set_error(TSR_ERR_UNSUPPORTED, "hqq: quantized scale/zero (scale_quant_params, "
                      "zero_quant_params) are deprecated in hqq and not supported");
fail:
    hqq_destroy(s);
    return st;
}

/* transformers matches skip_modules against the Linear's name tag (its last
 * component, "lm_head"); a full module name matches too. */
static int hqq_skip_module(void *state, const char *module)
{
    hqq_state *s = state;
    const char *tag = strrchr(module, '.');
    tag = tag ? tag + 1 : module;
    for (int i = 0; i < s->n_skip; i++) {
        size_t lm = strlen(module), ls = strlen(s->skip[i]);
        if (!strcmp(tag, s->skip[i]) || !strcmp(module, s->skip[i]) ||
            (lm > ls && module[lm - ls - 1] == '.' && !strcmp(module + lm - ls, s->skip[i])))
            return 1;
    }
    return 0;
}

/* --- weights ------------------------------------------------------------------ */

static void weight_free(hqq_weight *w)
{
    if (!w)
        return;
    if (w->fscale != w->scale)
        H->free(w->fscale), H->free(w->fzero);
    H->free(w->scale), H->free(w->zero), H->free(w->codes);
    H->free(w);
}

static void hqq_release_weight(void *state, tsr_tensor *t)
{
    (void)state;
    weight_free((hqq_weight *)(uintptr_t)t->format_data);
    t->format_data = NULL;
    t->data = NULL;
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t r = a % b;
        a = b, b = r;
    }
    return a;
}

/* Build the runtime format from flat codes [N*K] and hqq's per-group
 * scale/zero (already in w->scale/zero); fill `out`. */
static tsr_status finish_weight(hqq_weight *w, const uint8_t *flat, const char *module,
                                tsr_tensor *out)
{
    int64_t N = w->N, K = w->K, gs = w->gs, G = N * K / gs;
    tsr_fmt_int_group *f = &w->fmt;
    f->struct_size = sizeof *f;
    f->bits = (uint32_t)w->nbits;
    f->axis = (uint32_t)w->axis;
    f->row_bytes = (size_t)(K * w->nbits + 7) / 8;
    w->fscale = w->scale, w->fzero = w->zero;
    if (w->axis == 0) {
        f->group_size = gs;
        f->n_groups_per_row = 0;
    } else if (K % gs == 0) {
        f->group_size = gs;
        f->n_groups_per_row = K / gs;
    } else {
        int64_t d = gcd64(K, gs), m = gs / d, Gs = N * K / d;
        w->fscale = H->alloc((size_t)Gs * sizeof(float));
        w->fzero = H->alloc((size_t)Gs * sizeof(float));
        if (!w->fscale || !w->fzero)
            return H->set_error(TSR_ERR_NOMEM, "hqq: out of memory for '%s'", module);
        for (int64_t j = 0; j < Gs; j++)
            w->fscale[j] = w->scale[j / m], w->fzero[j] = w->zero[j / m];
        f->group_size = d;
        f->n_groups_per_row = K / d;
    }
    (void)G;
    f->scale = w->fscale;
    f->zero = w->fzero;
    f->g_idx = NULL;
    w->codes = H->calloc((size_t)N, f->row_bytes);
    if (!w->codes)
        return H->set_error(TSR_ERR_NOMEM, "hqq: out of memory for '%s'", module);
    for (int64_t n = 0; n < N; n++) {
        uint8_t *row = w->codes + (size_t)n * f->row_bytes;
        for (int64_t k = 0; k < K; k++) {
            uint32_t c = flat[n * K + k];
            int64_t bit = k * w->nbits;
            for (int b = 0; b < w->nbits; b++, bit++)
                if (c >> b & 1u)
                    row[bit >> 3] |= (uint8_t)(1u << (bit & 7));
        }
    }
    out->dtype = TSR_DTYPE_INT_GROUP;
    out->data = w->codes;
    out->format_data = f;
    out->nb[0] = 0;
    out->nb[1] = f->row_bytes;
    for (int d2 = 2; d2 < TSR_MAX_DIMS; d2++)
        out->nb[d2] = out->nb[d2 - 1] * (size_t)out->ne[d2 - 1];
    return TSR_OK;
}

static hqq_weight *weight_new(const hqq_state *s, int64_t N, int64_t K, int64_t gs)
{
    hqq_weight *w = H->calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->N = N, w->K = K, w->gs = gs;
    if (s) {
        w->nbits = s->nbits, w->axis = s->axis, w->optimize = s->optimize;
        w->round_zero = s->round_zero, w->channel_wise = 1;
        w->compute_dtype = s->compute_dtype;
    }
    int64_t G = N * K / gs;
    w->scale = H->alloc((size_t)G * sizeof(float));
    w->zero = H->alloc((size_t)G * sizeof(float));
    if (!w->scale || !w->zero) {
        weight_free(w);
        return NULL;
    }
    return w;
}

/* hqq's group_size None: in_features (axis 1) or out_features (axis 0). */
static int64_t effective_gs(int64_t gs, int axis, int64_t N, int64_t K)
{
    return gs > 0 ? gs : (axis == 1 ? K : N);
}

/* Rows and columns of hqq's reshaped matrix. */
static void reshaped(int axis, int64_t numel, int64_t gs, int64_t *rows, int64_t *cols)
{
    *rows = axis == 1 ? numel / gs : gs;
    *cols = numel / *rows;
}

static tsr_status hqq_quantize_weight(void *state, const char *module, const float *wf,
                                      const int64_t *ne, tsr_tensor *out)
{
    hqq_state *s = state;
    int64_t K = ne[0], N = ne[1], numel = N * K;
    int64_t gs = effective_gs(s->group_size, s->axis, N, K);
    int64_t rows, cols;
    if (numel % gs)
        return H->set_error(TSR_ERR_UNSUPPORTED, "hqq: '%s' has %lld x %lld = %lld weights, not "
                            "a multiple of group_size %lld", module, (long long)N, (long long)K,
                            (long long)numel, (long long)gs);
    reshaped(s->axis, numel, gs, &rows, &cols);
    if (hqq__packed_rows(s->nbits, rows) < 0)
        return H->set_error(TSR_ERR_UNSUPPORTED, "hqq: '%s': %lld rows of hqq's reshaped weight "
                            "cannot be packed %d to a byte (hqq's BitPack needs a multiple)",
                            module, (long long)rows, 8 / s->nbits);
    hqq_weight *w = weight_new(s, N, K, gs);
    uint8_t *flat = H->alloc((size_t)numel);
    if (!w || !flat) {
        weight_free(w), H->free(flat);
        return H->set_error(TSR_ERR_NOMEM, "hqq: out of memory quantizing '%s'", module);
    }
    if (hqq__quantize(wf, numel, s->nbits, gs, s->axis, s->optimize, s->round_zero, &s->op,
                      flat, w->scale, w->zero)) {
        weight_free(w), H->free(flat);
        return H->set_error(TSR_ERR_NOMEM, "hqq: out of memory quantizing '%s'", module);
    }
    for (int64_t g = 0; g < numel / gs; g++) {
        w->scale[g] = to_compute(w->compute_dtype, w->scale[g]);
        w->zero[g] = to_compute(w->compute_dtype, w->zero[g]);
    }
    tsr_status st = finish_weight(w, flat, module, out);
    H->free(flat);
    if (st)
        weight_free(w);
    return st;
}

/* --- loading hqq's checkpoint layout ----------------------------------------------- */

typedef struct ck_read {
    const tsr_checkpoint *ck;
    const char *module;
} ck_read;

/* <module>.<key>; TSR_ERR_NOT_FOUND (no text) if absent. */
static tsr_status get(const ck_read *r, const char *key, tsr_tensor *t)
{
    char name[600];
    snprintf(name, sizeof name, "%s.%s", r->module, key);
    return H->checkpoint_tensor(r->ck, name, t);
}

static int64_t numel_of(const tsr_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < TSR_MAX_DIMS; d++)
        n *= t->ne[d];
    return n;
}

/* An encoded scalar (int32/uint8/int64 0-dim tensor). */
static tsr_status get_int(const ck_read *r, const char *key, int64_t dflt, int64_t *v)
{
    tsr_tensor t;
    tsr_status st = get(r, key, &t);
    if (st == TSR_ERR_NOT_FOUND) {
        *v = dflt;
        return TSR_OK;
    }
    if (numel_of(&t) != 1)
        return H->set_error(TSR_ERR_FORMAT, "hqq: tensor '%s' should hold one value", t.name);
    switch (t.dtype) {
    case TSR_DTYPE_U8: *v = *(const uint8_t *)t.data; break;
    case TSR_DTYPE_I8: *v = *(const int8_t *)t.data; break;
    case TSR_DTYPE_I32: { int32_t x; memcpy(&x, t.data, 4); *v = x; break; }
    case TSR_DTYPE_I64: { int64_t x; memcpy(&x, t.data, 8); *v = x; break; }
    default:
        return H->set_error(TSR_ERR_FORMAT, "hqq: tensor '%s' has dtype %s, not an integer",
                            t.name, H->dtype_name(t.dtype));
    }
    return TSR_OK;
}

/* An encoded string (uint8 character codes). */
static tsr_status get_str(const ck_read *r, const char *key, char *buf, size_t cap)
{
    tsr_tensor t;
    buf[0] = 0;
    tsr_status st = get(r, key, &t);
    if (st == TSR_ERR_NOT_FOUND)
        return TSR_OK;
    int64_t n = numel_of(&t);
    if (t.dtype != TSR_DTYPE_U8 || n >= (int64_t)cap)
        return H->set_error(TSR_ERR_FORMAT, "hqq: tensor '%s' is not a short uint8 string",
                            t.name);
    memcpy(buf, t.data, (size_t)n);
    buf[n] = 0;
    return TSR_OK;
}

static tsr_status get_floats(const ck_read *r, const char *key, int64_t want, float *dst,
                             uint32_t *dtype)
{
    tsr_tensor t;
    tsr_status st = get(r, key, &t);
    if (st == TSR_ERR_NOT_FOUND)
        return H->set_error(TSR_ERR_NOT_FOUND, "hqq: the checkpoint has no '%s.%s' (quantized "
                            "scale/zero are not supported)", r->module, key);
    if (t.dtype != TSR_DTYPE_F16 && t.dtype != TSR_DTYPE_BF16 && t.dtype != TSR_DTYPE_F32)
        return H->set_error(TSR_ERR_FORMAT, "hqq: tensor '%s' has dtype %s (float expected)",
                            t.name, H->dtype_name(t.dtype));
    if (numel_of(&t) != want)
        return H->set_error(TSR_ERR_FORMAT, "hqq: tensor '%s' has %lld values, %lld expected "
                            "(one per group)", t.name, (long long)numel_of(&t), (long long)want);
    *dtype = t.dtype;
    return H->to_f32(t.dtype, t.data, dst, want, NULL);
}

static const char *packing_for(int nbits)
{
    switch (nbits) {
    case 8: return "8bit_u8";
    case 4: return "4bit_u8";
    case 3: return "3bit_32";
    case 2: return "2bit_u8";
    default: return "1bit_u8";
    }
}

/* Every meta key HQQLinear.state_dict() writes; all are marked used. */
static const char *const meta_keys[] = {
    "channel_wise", "compute_dtype", "encoded_state_dict", "offload_meta", "optimize",
    "quant_scale", "quant_zero", "round_zero", "stores_quant_config", "unpack_view_dtype",
    "view_as_float"};

static tsr_status hqq_load_weight(void *state, const tsr_checkpoint *ck, const char *module,
                                  const int64_t *ne, tsr_tensor *out)
{
    (void)state;
    ck_read r = {ck, module};
    int64_t K = ne[0], N = ne[1], numel = N * K;
    int64_t nbits, gs, axis, flag, opt, rz, cw;
    tsr_status st;
    tsr_tensor t;
    if ((st = get(&r, "W_q", &t)) == TSR_ERR_NOT_FOUND)
        return H->set_error(TSR_ERR_NOT_FOUND, "hqq: the checkpoint has neither '%s.weight' nor "
                            "'%s.W_q'", module, module);
    tsr_tensor wq = t;
    if ((st = get_int(&r, "nbits", -1, &nbits)) || (st = get_int(&r, "group_size", -1, &gs)) ||
        (st = get_int(&r, "axis", -1, &axis)))
        return st;
    if (!valid_bits(nbits) || axis < 0 || axis > 1 || gs <= 0 || numel % gs)
        return H->set_error(TSR_ERR_FORMAT, "hqq: '%s': nbits %lld, group_size %lld, axis %lld "
                            "are not a valid HQQ setting for a %lld x %lld weight", module,
                            (long long)nbits, (long long)gs, (long long)axis, (long long)N,
                            (long long)K);
    /* meta flags */
    if ((st = get_int(&r, "quant_scale", 0, &flag)) || flag)
        return st ? st : H->set_error(TSR_ERR_UNSUPPORTED, "hqq: '%s' has quantized scales "
                                      "(deprecated in hqq)", module);
    if ((st = get_int(&r, "quant_zero", 0, &flag)) || flag)
        return st ? st : H->set_error(TSR_ERR_UNSUPPORTED, "hqq: '%s' has quantized zeros "
                                      "(deprecated in hqq)", module);
    if ((st = get_int(&r, "offload_meta", 0, &flag)) || (st = get_int(&r, "optimize", 1, &opt)) ||
        (st = get_int(&r, "round_zero", 0, &rz)) || (st = get_int(&r, "channel_wise", 1, &cw)))
        return st;
    for (size_t i = 0; i < sizeof meta_keys / sizeof *meta_keys; i++)
        (void)get(&r, meta_keys[i], &t);
    /* shape = [out, in] */
    if (get(&r, "shape", &t) == TSR_OK) {
        int64_t sh[2] = {0, 0};
        if (t.dtype == TSR_DTYPE_I64 && numel_of(&t) == 2)
            memcpy(sh, t.data, sizeof sh);
        if (sh[0] != N || sh[1] != K)
            return H->set_error(TSR_ERR_FORMAT, "hqq: '%s.shape' is not [%lld, %lld] (the "
                                "module's [out, in])", module, (long long)N, (long long)K);
    }
    char packing[32], cdt[32];
    if ((st = get_str(&r, "packing", packing, sizeof packing)) ||
        (st = get_str(&r, "compute_dtype", cdt, sizeof cdt)))
        return st;
    if (strcmp(packing, packing_for((int)nbits)))
        return H->set_error(TSR_ERR_UNSUPPORTED, "hqq: '%s.packing' is '%s'; %lld-bit weights "
                            "are packed as '%s'", module, packing, (long long)nbits,
                            packing_for((int)nbits));
    int64_t rows, cols;
    reshaped((int)axis, numel, gs, &rows, &cols);
    size_t want = hqq__packed_bytes((int)nbits, rows, cols);
    size_t have = (size_t)numel_of(&wq) * H->dtype_size(wq.dtype);
    int as_float = wq.dtype == TSR_DTYPE_F16 || wq.dtype == TSR_DTYPE_BF16 ||
                   wq.dtype == TSR_DTYPE_F32;   /* view_as_float */
    uint32_t want_dt = nbits == 3 ? TSR_DTYPE_I32 : TSR_DTYPE_U8;
    if (!want || have != want || (!as_float && wq.dtype != want_dt))
        return H->set_error(TSR_ERR_FORMAT, "hqq: '%s.W_q' holds %zu bytes of %s; %lld-bit "
                            "packing of %lld x %lld groups needs %zu bytes of %s", module, have,
                            H->dtype_name(wq.dtype), (long long)nbits, (long long)rows,
                            (long long)cols, want, H->dtype_name(want_dt));
    hqq_weight *w = weight_new(NULL, N, K, gs);
    uint8_t *flat = H->alloc((size_t)numel);
    if (!w || !flat) {
        weight_free(w), H->free(flat);
        return H->set_error(TSR_ERR_NOMEM, "hqq: out of memory loading '%s'", module);
    }
    w->nbits = (int)nbits, w->axis = (int)axis, w->optimize = (int)opt;
    w->round_zero = (int)rz, w->channel_wise = (int)cw;
    uint32_t sdt = 0, zdt = 0;
    if ((st = get_floats(&r, "scale", numel / gs, w->scale, &sdt)) ||
        (st = get_floats(&r, "zero", numel / gs, w->zero, &zdt)))
        goto fail;
    w->compute_dtype = sdt;
    if (cdt[0] && parse_dtype(cdt, &w->compute_dtype)) {
        st = H->set_error(TSR_ERR_FORMAT, "hqq: '%s.compute_dtype' is '%s'", module, cdt);
        goto fail;
    }
    hqq__unpack((int)nbits, wq.data, rows, cols, flat);
    st = finish_weight(w, flat, module, out);
    H->free(flat);
    if (st)
        weight_free(w);
    return st;
fail:
    weight_free(w), H->free(flat);
    return st;
}

/* --- saving -------------------------------------------------------------------- */

static tsr_status emit_scalar(tsr_tensor_sink *sink, const char *module, const char *key,
                              uint32_t dt, int64_t v)
{
    char name[600];
    snprintf(name, sizeof name, "%s.%s", module, key);
    if (dt == TSR_DTYPE_U8) {
        uint8_t b = (uint8_t)v;
        return H->emit_tensor(sink, name, dt, 0, NULL, &b, 1);
    }
    int32_t i = (int32_t)v;
    return H->emit_tensor(sink, name, TSR_DTYPE_I32, 0, NULL, &i, 4);
}

static tsr_status emit_str(tsr_tensor_sink *sink, const char *module, const char *key,
                           const char *s)
{
    char name[600];
    snprintf(name, sizeof name, "%s.%s", module, key);
    int64_t n = (int64_t)strlen(s);
    return H->emit_tensor(sink, name, TSR_DTYPE_U8, 1, &n, s, (size_t)n);
}

/* scale/zero as hqq stores them: [G, 1] (axis 1) or [1, G] (axis 0). */
static tsr_status emit_group_floats(tsr_tensor_sink *sink, const hqq_weight *w,
                                    const char *name, const float *v)
{
    int64_t G = w->N * w->K / w->gs;
    int64_t shape[2] = {w->axis == 1 ? G : 1, w->axis == 1 ? 1 : G};
    size_t es = w->compute_dtype == TSR_DTYPE_F32 ? 4 : 2;
    void *buf = H->alloc((size_t)G * es);
    if (!buf)
        return H->set_error(TSR_ERR_NOMEM, "hqq: out of memory");
    for (int64_t g = 0; g < G; g++) {
        if (w->compute_dtype == TSR_DTYPE_F32)
            ((float *)buf)[g] = v[g];
        else
            ((uint16_t *)buf)[g] = w->compute_dtype == TSR_DTYPE_F16 ? H->f32_to_f16(v[g])
                                                                     : H->f32_to_bf16(v[g]);
    }
    tsr_status st = H->emit_tensor(sink, name, w->compute_dtype, 2, shape, buf, (size_t)G * es);
    H->free(buf);
    return st;
}

static tsr_status hqq_save_weight(void *state, const char *module, const tsr_tensor *t,
                                  tsr_tensor_sink *sink)
{
    (void)state;
    if (t->dtype != TSR_DTYPE_INT_GROUP || !t->format_data)
        return H->set_error(TSR_ERR_INVALID_ARG, "hqq: '%s' is not an HQQ weight", module);
    const hqq_weight *w = (const hqq_weight *)t->format_data;
    int64_t N = w->N, K = w->K, numel = N * K, rows, cols;
    reshaped(w->axis, numel, w->gs, &rows, &cols);
    uint8_t *flat = H->alloc((size_t)numel);
    size_t pb = hqq__packed_bytes(w->nbits, rows, cols);
    void *packed = H->calloc(1, pb ? pb : 1);
    tsr_status st = TSR_OK;
    if (!flat || !packed) {
        st = H->set_error(TSR_ERR_NOMEM, "hqq: out of memory saving '%s'", module);
        goto done;
    }
    for (int64_t n = 0; n < N; n++) {
        const uint8_t *row = w->codes + (size_t)n * w->fmt.row_bytes;
        for (int64_t k = 0; k < K; k++) {
            uint32_t c = 0;
            for (int b = 0; b < w->nbits; b++) {
                int64_t bit = k * w->nbits + b;
                c |= (uint32_t)(row[bit >> 3] >> (bit & 7) & 1u) << b;
            }
            flat[n * K + k] = (uint8_t)c;
        }
    }
    hqq__pack(w->nbits, flat, rows, cols, packed);
    char name[600], key[640];
    snprintf(name, sizeof name, "%s.W_q", module);
    int64_t wshape[2] = {hqq__packed_rows(w->nbits, rows), cols};
    if ((st = H->emit_tensor(sink, name, w->nbits == 3 ? TSR_DTYPE_I32 : TSR_DTYPE_U8, 2, wshape,
                             packed, pb)))
        goto done;
    snprintf(key, sizeof key, "%s.scale", module);
    if ((st = emit_group_floats(sink, w, key, w->scale)))
        goto done;
    snprintf(key, sizeof key, "%s.zero", module);
    if ((st = emit_group_floats(sink, w, key, w->zero)))
        goto done;
    snprintf(name, sizeof name, "%s.shape", module);
    int64_t sh[2] = {N, K}, two = 2;
    if ((st = H->emit_tensor(sink, name, TSR_DTYPE_I64, 1, &two, sh, sizeof sh)))
        goto done;
    if ((st = emit_scalar(sink, module, "nbits", TSR_DTYPE_I32, w->nbits)) ||
        (st = emit_scalar(sink, module, "group_size", TSR_DTYPE_I32, w->gs)) ||
        (st = emit_scalar(sink, module, "axis", TSR_DTYPE_I32, w->axis)) ||
        (st = emit_str(sink, module, "packing", packing_for(w->nbits))) ||
        (st = emit_str(sink, module, "unpack_view_dtype",
                       w->nbits == 3 ? "torch.int32" : "torch.uint8")) ||
        (st = emit_str(sink, module, "compute_dtype", dtype_str(w->compute_dtype))) ||
        (st = emit_scalar(sink, module, "view_as_float", TSR_DTYPE_U8, 0)) ||
        (st = emit_scalar(sink, module, "quant_scale", TSR_DTYPE_U8, 0)) ||
        (st = emit_scalar(sink, module, "quant_zero", TSR_DTYPE_U8, 0)) ||
        (st = emit_scalar(sink, module, "offload_meta", TSR_DTYPE_U8, 0)) ||
        (st = emit_scalar(sink, module, "encoded_state_dict", TSR_DTYPE_U8, 1)) ||
        (st = emit_scalar(sink, module, "stores_quant_config", TSR_DTYPE_U8, 1)) ||
        (st = emit_scalar(sink, module, "channel_wise", TSR_DTYPE_U8, w->channel_wise)) ||
        (st = emit_scalar(sink, module, "optimize", TSR_DTYPE_U8, w->optimize)) ||
        (st = emit_scalar(sink, module, "round_zero", TSR_DTYPE_U8, w->round_zero)))
        goto done;
done:
    H->free(flat), H->free(packed);
    return st;
}

/* HqqConfig.to_dict(): quant_config (hqq's BaseQuantizeConfig), quant_method,
 * skip_modules. */
static tsr_status hqq_save_config(void *state, char **json)
{
    hqq_state *s = state;
    size_t cap = 512;
    for (int i = 0; i < s->n_skip; i++)
        cap += strlen(s->skip[i]) * 2 + 4;
    char *b = H->alloc(cap);
    if (!b)
        return H->set_error(TSR_ERR_NOMEM, "hqq: out of memory");
    char gsbuf[32];
    if (s->group_size > 0)
        snprintf(gsbuf, sizeof gsbuf, "%lld", (long long)s->group_size);
    else
        snprintf(gsbuf, sizeof gsbuf, "null");
    size_t n = (size_t)snprintf(b, cap,
        "{\"quant_config\": {\"weight_quant_params\": {\"nbits\": %d, \"channel_wise\": true, "
        "\"group_size\": %s, \"optimize\": %s, \"round_zero\": %s, \"axis\": %d, "
        "\"view_as_float\": false}, \"scale_quant_params\": null, \"zero_quant_params\": null, "
        "\"offload_meta\": false}, \"quant_method\": \"hqq\", \"skip_modules\": [",
        s->nbits, gsbuf, s->optimize ? "true" : "false", s->round_zero ? "true" : "false",
        s->axis);
    for (int i = 0; i < s->n_skip; i++) {
        n += (size_t)snprintf(b + n, cap - n, "%s\"", i ? ", " : "");
        for (const char *p = s->skip[i]; *p; p++) {   /* JSON-escape quotes and backslashes */
            if (*p == '"' || *p == '\\')
                b[n++] = '\\';
            b[n++] = *p;
        }
        b[n++] = '"';
        b[n] = 0;
    }
    snprintf(b + n, cap - n, "]}");
    *json = b;
    return TSR_OK;
}

static int hqq_probe(const tsr_host *host, char *why, size_t why_len)
{
    (void)host, (void)why, (void)why_len;
    return 1;
}

static const tsr_quantizer_vtable hqq_vtable = {
    .struct_size = sizeof(tsr_quantizer_vtable),
    .capabilities = TSR_QUANT_SERIALIZABLE | TSR_QUANT_ON_LOAD,
    .create = hqq_create,
    .destroy = hqq_destroy,
    .skip_module = hqq_skip_module,
    .load_weight = hqq_load_weight,
    .quantize_weight = hqq_quantize_weight,
    .release_weight = hqq_release_weight,
    .save_weight = hqq_save_weight,
    .save_config = hqq_save_config,
};

static const tsr_plugin_desc hqq_desc = TSR_PLUGIN_DESC_INIT(
    TSR_PLUGIN_QUANTIZER, "hqq", "0.1.0",
    "Half-Quadratic Quantization (hqq 0.2.8 layout and solver): 1/2/3/4/8-bit, axis 0 or 1",
    hqq_probe, &hqq_vtable);

TSR_PLUGIN_DEFINE_ENTRY
{
    H = host;
    return &hqq_desc;
}
