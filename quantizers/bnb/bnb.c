/* quantizers/bnb/bnb.c - the bitsandbytes quantizer (quant_method
 * "bitsandbytes", transformers' BitsAndBytesConfig).
 *
 *   load_in_8bit: LLM.int8.  W ~ CB[n][k] * SCB[n] / 127 with CB int8 and SCB
 *     the row absmax of the float16-rounded weight -> TSR_DTYPE_INT8_ROW; the
 *     backend splits activation columns at llm_int8_threshold (cpu:
 *     backends/cpu/kernels/int8-c.c).  Checkpoint: <m>.weight (I8 [N, K]),
 *     <m>.SCB (F32 [N]), optional <m>.weight_format (U8 scalar, 0 = row).
 *   load_in_4bit: NF4 or FP4 codes in blocks of 64 of the row-major weight,
 *     w = code[c] * absmax[block] -> TSR_DTYPE_CODEBOOK4.  Double quant
 *     stores absmax - offset as 8-bit dynamic codes in blocks of 256; it is
 *     expanded to f32 at load.  Checkpoint (bitsandbytes QuantState.as_dict
 *     (packed=True)): <m>.weight (U8 [N*K/2, 1]), <m>.weight.absmax (F32, or
 *     U8 when nested), <m>.weight.quant_map (F32 [16]),
 *     <m>.weight.nested_absmax, <m>.weight.nested_quant_map (F32 [256]) and
 *     <m>.weight.quant_state.bitsandbytes__nf4|fp4 (U8: JSON text with
 *     quant_type, blocksize, dtype, shape, nested_blocksize, nested_dtype,
 *     nested_offset).
 *     bnb_4bit_compute_dtype float16/bfloat16 goes into the format's
 *     compute_dtype: the backend computes as Linear4bit does (formats.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bnb.h"

static const tsr_host *H;

typedef struct bnb_state {
    int bits;                  /* 4 or 8                                  */
    int quant_type;            /* BNB_NF4 / BNB_FP4                       */
    int double_quant;
    float threshold;           /* llm_int8_threshold                      */
    char compute_dtype[16];    /* bnb_4bit_compute_dtype                  */
    char quant_storage[16];    /* bnb_4bit_quant_storage                  */
    int has_fp16_weight, fp32_offload;
    char **skip;               /* modules left in full precision          */
    size_t n_skip;
    int skip_given;            /* llm_int8_skip_modules was a list        */
} bnb_state;

/* One quantized weight; format_data points here (fmt comes first). */
typedef struct bnb_weight {
    union { tsr_fmt_codebook4 cb; tsr_fmt_int8_row i8; } fmt;
    int bits;
    int64_t K, N;
    void *data;                /* packed codes (4-bit) or int8 rows       */
    float *absmax;             /* 4-bit: expanded [nb]                    */
    int64_t nb, blocksize;
    int quant_type;
    char dtype[16];
    /* double quantization, kept as stored for saving */
    int nested;
    uint8_t *qabsmax;          /* [nb]                                    */
    float *nested_absmax;      /* [nb2]                                   */
    int64_t nb2, nested_blocksize;
    float nested_code[256];
    float offset;
    char nested_dtype[16];
    /* 8-bit */
    float *scb, *scale;        /* [N]                                     */
} bnb_weight;

/* --- configuration ---------------------------------------------------------------- */

static const char *jstr(const tsr_json *o, const char *key, const char *dflt)
{
    const tsr_json *v = H->json_get(o, key);
    return v && H->json_type(v) == TSR_JSON_STRING ? H->json_string(v, dflt) : dflt;
}

static int jbool(const tsr_json *o, const char *key, int dflt)
{
    const tsr_json *v = H->json_get(o, key);
    return v && H->json_type(v) == TSR_JSON_BOOL ? H->json_bool(v, dflt) : dflt;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = H->alloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void bnb_destroy(void *state)
{
    bnb_state *s = state;
    if (!s)
        return;
    for (size_t i = 0; i < s->n_skip; i++)
        H->free(s->skip[i]);
    H->free(s->skip);
    H->free(s);
}

/* "torch.float16" / "float16" / "fp16" -> "float16"; NULL if unknown. */
static const char *norm_dtype(const char *d)
{
    if (!strncmp(d, "torch.", 6))
        d += 6;
    if (!strcmp(d, "float32") || !strcmp(d, "fp32") || !strcmp(d, "float"))
        return "float32";
    if (!strcmp(d, "float16") || !strcmp(d, "fp16") || !strcmp(d, "half"))
        return "float16";
    if (!strcmp(d, "bfloat16") || !strcmp(d, "bf16"))
        return "bfloat16";
    return NULL;
}

static tsr_status bnb_create(const tsr_host *host, const tsr_json *qc, void **out)
{
    H = host;
    bnb_state *s = H->calloc(1, sizeof *s);
    if (!s)
        return H->set_error(TSR_ERR_NOMEM, "bitsandbytes: out of memory");
    /* transformers keeps the flags as load_in_8bit/load_in_4bit (and
     * _load_in_* in to_dict); either spelling is accepted */
    int l8 = jbool(qc, "load_in_8bit", jbool(qc, "_load_in_8bit", 0));
    int l4 = jbool(qc, "load_in_4bit", jbool(qc, "_load_in_4bit", 0));
    tsr_status st = TSR_OK;
    if (l8 == l4) {
        st = H->set_error(TSR_ERR_CONFIG, "bitsandbytes: quantization_config must set exactly one "
                          "of load_in_8bit and load_in_4bit (got %s)", l8 ? "both" : "neither");
        goto fail;
    }
    s->bits = l8 ? 8 : 4;
    const char *qt = jstr(qc, "bnb_4bit_quant_type", "fp4");
    if (!strcmp(qt, "nf4"))
        s->quant_type = BNB_NF4;
    else if (!strcmp(qt, "fp4"))
        s->quant_type = BNB_FP4;
    else {
        st = H->set_error(TSR_ERR_CONFIG, "bitsandbytes: bnb_4bit_quant_type '%s' is not nf4 or fp4", qt);
        goto fail;
    }
    s->double_quant = jbool(qc, "bnb_4bit_use_double_quant", 0);
    const tsr_json *th = H->json_get(qc, "llm_int8_threshold");
    s->threshold = (float)(th && H->json_type(th) != TSR_JSON_NULL ? H->json_real(th, 6.0) : 6.0);
    if (!(s->threshold >= 0.0f)) {
        st = H->set_error(TSR_ERR_CONFIG, "bitsandbytes: llm_int8_threshold must be >= 0");
        goto fail;
    }
    const char *cd = norm_dtype(jstr(qc, "bnb_4bit_compute_dtype", "float32"));
    if (!cd) {
        st = H->set_error(TSR_ERR_CONFIG, "bitsandbytes: bnb_4bit_compute_dtype '%s' is not "
                          "float32, float16 or bfloat16", jstr(qc, "bnb_4bit_compute_dtype", ""));
        goto fail;
    }
    snprintf(s->compute_dtype, sizeof s->compute_dtype, "%s", cd);
    const char *qs = jstr(qc, "bnb_4bit_quant_storage", "uint8");
    if (strcmp(qs, "uint8") && strcmp(qs, "torch.uint8")) {
        st = H->set_error(TSR_ERR_UNSUPPORTED, "bitsandbytes: bnb_4bit_quant_storage '%s' is not "
                          "supported (only uint8)", qs);
        goto fail;
    }
    snprintf(s->quant_storage, sizeof s->quant_storage, "uint8");
    s->has_fp16_weight = jbool(qc, "llm_int8_has_fp16_weight", 0);
    s->fp32_offload = jbool(qc, "llm_int8_enable_fp32_cpu_offload", 0);
    const tsr_json *sk = H->json_get(qc, "llm_int8_skip_modules");
    size_t n = sk && H->json_type(sk) == TSR_JSON_ARRAY ? H->json_size(sk) : 0;
    s->skip_given = sk && H->json_type(sk) == TSR_JSON_ARRAY;
    /* unset: transformers' get_keys_to_not_convert keeps the output head */
    s->skip = H->calloc(s->skip_given ? (n ? n : 1) : 1, sizeof(char *));
    if (!s->skip) {
        st = H->set_error(TSR_ERR_NOMEM, "bitsandbytes: out of memory");
        goto fail;
    }
    if (!s->skip_given) {
        s->skip[0] = dupstr("lm_head");
        s->n_skip = s->skip[0] ? 1 : 0;
    }
    for (size_t i = 0; i < n; i++) {
        const char *m = H->json_string(H->json_at(sk, i), NULL);
        if (!m) {
            st = H->set_error(TSR_ERR_CONFIG, "bitsandbytes: llm_int8_skip_modules[%zu] is not a string", i);
            goto fail;
        }
        if (!(s->skip[s->n_skip] = dupstr(m))) {
            st = H->set_error(TSR_ERR_NOMEM, "bitsandbytes: out of memory");
            goto fail;
        }
        s->n_skip++;
    }
    *out = s;
    return TSR_OK;
fail:
    bnb_destroy(s);
    return st;
}

/* transformers' should_convert_module: a key matches the module's full name,
 * a dotted suffix of it, or a dotted prefix. */
static int bnb_skip_module(void *state, const char *module)
{
    bnb_state *s = state;
    size_t ml = strlen(module);
    for (size_t i = 0; i < s->n_skip; i++) {
        const char *k = s->skip[i];
        size_t kl = strlen(k);
        if (!strcmp(module, k))
            return 1;
        if (ml > kl && module[ml - kl - 1] == '.' && !strcmp(module + ml - kl, k))
            return 1;
        if (ml > kl && !strncmp(module, k, kl) && module[kl] == '.')
            return 1;
    }
    return 0;
}

/* --- weights -------------------------------------------------------------------------- */

static void weight_free(bnb_weight *w)
{
    if (!w)
        return;
    H->free(w->data);
    H->free(w->absmax);
    H->free(w->qabsmax);
    H->free(w->nested_absmax);
    H->free(w->scb);
    H->free(w->scale);
    H->free(w);
}

static void bnb_release_weight(void *state, tsr_tensor *t)
{
    (void)state;
    weight_free((bnb_weight *)(void *)t->format_data);
    t->format_data = NULL;
    t->data = NULL;
}

/* absmax = nested_code[q] * nested_absmax[block] + offset, in float32 as
 * dequantize_blockwise followed by `absmax += offset`. */
static void expand_absmax(bnb_weight *w)
{
    for (int64_t i = 0; i < w->nb; i++) {
        float a = w->nested_code[w->qabsmax[i]] * w->nested_absmax[i / w->nested_blocksize];
        w->absmax[i] = a + w->offset;
    }
}

/* bnb_4bit_compute_dtype -> the format's compute_dtype: Linear4bit.forward
 * casts the float32 input and the bias to it, bitsandbytes' CPU gemm_4bit
 * dequantizes the weight to it (float32 code * absmax, rounded) and
 * F.linear sums in float32 and rounds once; the output goes back to
 * float32.  The backend reproduces that (tessera/plugin/formats.h). */
static uint32_t compute_dtype_of(const bnb_state *s)
{
    if (!strcmp(s->compute_dtype, "float16"))
        return TSR_DTYPE_F16;
    if (!strcmp(s->compute_dtype, "bfloat16"))
        return TSR_DTYPE_BF16;
    return TSR_DTYPE_F32;
}

static void finish_codebook(const bnb_state *s, bnb_weight *w, tsr_tensor *out, const float code[16])
{
    w->fmt.cb.struct_size = sizeof w->fmt.cb;
    w->fmt.cb.block_size = w->blocksize;
    memcpy(w->fmt.cb.code, code, sizeof w->fmt.cb.code);
    w->fmt.cb.absmax = w->absmax;
    w->fmt.cb.compute_dtype = compute_dtype_of(s);
    out->dtype = TSR_DTYPE_CODEBOOK4;
    out->data = w->data;
    out->format_data = w;
    out->nb[0] = 1;
    out->nb[1] = (size_t)w->K / 2;
    out->nb[2] = out->nb[3] = out->nb[1] * (size_t)w->N;
}

static void finish_int8(bnb_state *s, bnb_weight *w, tsr_tensor *out)
{
    for (int64_t n = 0; n < w->N; n++)
        w->scale[n] = w->scb[n] / 127.0f;
    w->fmt.i8.struct_size = sizeof w->fmt.i8;
    w->fmt.i8.threshold = s->threshold;
    w->fmt.i8.scale = w->scale;
    out->dtype = TSR_DTYPE_INT8_ROW;
    out->data = w->data;
    out->format_data = w;
    out->nb[0] = 1;
    out->nb[1] = (size_t)w->K;
    out->nb[2] = out->nb[3] = out->nb[1] * (size_t)w->N;
}

static bnb_weight *weight_new(int bits, int64_t K, int64_t N)
{
    bnb_weight *w = H->calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->bits = bits;
    w->K = K;
    w->N = N;
    w->blocksize = 64;
    w->nested_blocksize = 256;
    snprintf(w->dtype, sizeof w->dtype, "float32");
    snprintf(w->nested_dtype, sizeof w->nested_dtype, "float32");
    return w;
}

static tsr_status bnb_quantize_weight(void *state, const char *module, const float *wf,
                                      const int64_t *ne, tsr_tensor *out)
{
    bnb_state *s = state;
    int64_t K = ne[0], N = ne[1], n = K * N;
    bnb_weight *w = weight_new(s->bits, K, N);
    if (!w)
        return H->set_error(TSR_ERR_NOMEM, "bitsandbytes: out of memory quantizing '%s'", module);
    tsr_status st = TSR_ERR_NOMEM;
    if (s->bits == 8) {
        float *row = H->alloc((size_t)K * sizeof(float));
        w->data = H->alloc((size_t)n);
        w->scb = H->alloc((size_t)N * sizeof(float));
        w->scale = H->alloc((size_t)N * sizeof(float));
        if (row && w->data && w->scb && w->scale) {
            /* Int8Params._quantize: the weight goes to float16 first */
            for (int64_t r = 0; r < N; r++) {
                for (int64_t k = 0; k < K; k++)
                    row[k] = H->f16_to_f32(H->f32_to_f16(wf[r * K + k]));
                w->scb[r] = bnb_quantize_row8(row, K, (int8_t *)w->data + r * K);
            }
            finish_int8(s, w, out);
            st = TSR_OK;
        }
        H->free(row);
    } else {
        if (K % 2) {
            weight_free(w);
            return H->set_error(TSR_ERR_UNSUPPORTED, "bitsandbytes: '%s' has %lld input features; "
                                "4-bit needs an even number", module, (long long)K);
        }
        w->quant_type = s->quant_type;
        w->nb = (n + w->blocksize - 1) / w->blocksize;
        w->data = H->alloc((size_t)(n + 1) / 2);
        w->absmax = H->alloc((size_t)w->nb * sizeof(float));
        if (w->data && w->absmax) {
            bnb_quantize4(s->quant_type, wf, n, w->blocksize, w->data, w->absmax);
            st = TSR_OK;
            if (s->double_quant) {
                /* offset = absmax.mean() (a float32 sum, then / n: equal to
                 * torch's for the fixtures' sizes; elsewhere it may differ in
                 * the last bit, and so may a few 8-bit codes); then 8-bit
                 * dynamic codes of absmax - offset */
                float sum = 0.0f;
                for (int64_t i = 0; i < w->nb; i++)
                    sum += w->absmax[i];
                w->nested = 1;
                w->offset = sum / (float)w->nb;
                w->nb2 = (w->nb + w->nested_blocksize - 1) / w->nested_blocksize;
                w->qabsmax = H->alloc((size_t)w->nb);
                w->nested_absmax = H->alloc((size_t)w->nb2 * sizeof(float));
                float *centered = H->alloc((size_t)w->nb * sizeof(float));
                if (w->qabsmax && w->nested_absmax && centered) {
                    for (int64_t i = 0; i < w->nb; i++)
                        centered[i] = w->absmax[i] - w->offset;
                    bnb_dynamic_map(w->nested_code);
                    bnb_quantize8(w->nested_code, centered, w->nb, w->nested_blocksize,
                                  w->qabsmax, w->nested_absmax);
                    expand_absmax(w); /* what a reload will see */
                } else {
                    st = TSR_ERR_NOMEM;
                }
                H->free(centered);
            }
            if (!st) {
                float code[16];
                bnb_code4(s->quant_type, code);
                finish_codebook(s, w, out, code);
            }
        }
    }
    if (st) {
        weight_free(w);
        return H->set_error(st, "bitsandbytes: out of memory quantizing '%s'", module);
    }
    return TSR_OK;
}

/* --- the quant_state JSON (a flat object of strings, numbers, int arrays) ------------- */

typedef struct qs_json {
    char quant_type[8], dtype[16], nested_dtype[16];
    int64_t blocksize, nested_blocksize;
    int64_t shape[4];
    int n_shape;
    double nested_offset;
    int has_nested_offset, has_nested_blocksize;
} qs_json;

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
        p++;
    return p;
}

/* Parse a JSON string at p (no escapes needed here); returns end or NULL. */
static const char *parse_str(const char *p, const char *e, char *buf, size_t cap)
{
    if (p >= e || *p != '"')
        return NULL;
    p++;
    size_t n = 0;
    while (p < e && *p != '"') {
        if (*p == '\\')
            return NULL;
        if (n + 1 < cap)
            buf[n++] = *p;
        p++;
    }
    buf[n] = 0;
    return p < e ? p + 1 : NULL;
}

static tsr_status parse_quant_state(const char *what, const char *p, size_t len, qs_json *q)
{
    const char *e = p + len, *s0 = p;
    memset(q, 0, sizeof *q);
    p = skip_ws(p, e);
    if (p >= e || *p++ != '{')
        goto bad;
    for (;;) {
        char key[64], sval[64];
        p = skip_ws(p, e);
        if (p < e && *p == '}')
            return TSR_OK;
        if (!(p = parse_str(p, e, key, sizeof key)))
            goto bad;
        p = skip_ws(p, e);
        if (p >= e || *p++ != ':')
            goto bad;
        p = skip_ws(p, e);
        if (p < e && *p == '"') {
            if (!(p = parse_str(p, e, sval, sizeof sval)))
                goto bad;
            if (!strcmp(key, "quant_type"))
                snprintf(q->quant_type, sizeof q->quant_type, "%.*s", (int)sizeof q->quant_type - 1, sval);
            else if (!strcmp(key, "dtype"))
                snprintf(q->dtype, sizeof q->dtype, "%.*s", (int)sizeof q->dtype - 1, sval);
            else if (!strcmp(key, "nested_dtype"))
                snprintf(q->nested_dtype, sizeof q->nested_dtype, "%.*s", (int)sizeof q->nested_dtype - 1, sval);
        } else if (p < e && *p == '[') {
            p++;
            for (;;) {
                p = skip_ws(p, e);
                if (p < e && *p == ']') {
                    p++;
                    break;
                }
                char *end;
                long long v = strtoll(p, &end, 10);
                if (end == p || q->n_shape >= 4)
                    goto bad;
                if (!strcmp(key, "shape"))
                    q->shape[q->n_shape++] = v;
                p = skip_ws(end, e);
                if (p < e && *p == ',')
                    p++;
            }
        } else if (p + 4 <= e && !strncmp(p, "null", 4)) {
            p += 4;
        } else {
            char num[64];
            size_t n = 0;
            while (p < e && n + 1 < sizeof num && strchr("+-0123456789.eE", *p))
                num[n++] = *p++;
            num[n] = 0;
            if (!n)
                goto bad;
            double v = strtod(num, NULL);
            if (!strcmp(key, "blocksize"))
                q->blocksize = (int64_t)v;
            else if (!strcmp(key, "nested_blocksize"))
                q->nested_blocksize = (int64_t)v, q->has_nested_blocksize = 1;
            else if (!strcmp(key, "nested_offset"))
                q->nested_offset = v, q->has_nested_offset = 1;
        }
        p = skip_ws(p, e);
        if (p < e && *p == ',')
            p++;
    }
bad:
    return H->set_error(TSR_ERR_FORMAT, "bitsandbytes: tensor '%s' is not the JSON object "
                        "bitsandbytes packs (near byte %d)", what, (int)(p - s0));
}

/* --- load from the checkpoint ---------------------------------------------------------- */

typedef struct ck_ref {
    const tsr_checkpoint *ck;
    const char *module;
} ck_ref;

/* Fetch <module><suffix>; must have `dtype` and `count` elements (count < 0:
 * any).  optional: absent is not an error (returns NOT_FOUND). */
static tsr_status get_tensor(ck_ref *r, const char *suffix, uint32_t dtype, int64_t count,
                             int optional, tsr_tensor *t)
{
    char name[600];
    snprintf(name, sizeof name, "%s%s", r->module, suffix);
    memset(t, 0, sizeof *t);
    t->struct_size = sizeof *t;
    tsr_status st = H->checkpoint_tensor(r->ck, name, t);
    if (st == TSR_ERR_NOT_FOUND && optional)
        return st;
    if (st == TSR_ERR_NOT_FOUND)
        return H->set_error(st, "bitsandbytes: the checkpoint has no tensor '%s'", name);
    if (st)
        return st;
    int64_t n = 1;
    for (int d = 0; d < TSR_MAX_DIMS; d++)
        n *= t->ne[d];
    if (t->dtype != dtype)
        return H->set_error(TSR_ERR_FORMAT, "bitsandbytes: tensor '%s' is %s, expected %s", name,
                            H->dtype_name(t->dtype), H->dtype_name(dtype));
    if (count >= 0 && n != count)
        return H->set_error(TSR_ERR_FORMAT, "bitsandbytes: tensor '%s' has %lld elements, "
                            "expected %lld", name, (long long)n, (long long)count);
    return TSR_OK;
}

static tsr_status load8(bnb_state *s, ck_ref *r, int64_t K, int64_t N, tsr_tensor *out)
{
    tsr_tensor tw, tscb, tf;
    tsr_status st;
    if ((st = get_tensor(r, ".weight", TSR_DTYPE_I8, K * N, 0, &tw)) ||
        (st = get_tensor(r, ".SCB", TSR_DTYPE_F32, N, 0, &tscb)))
        return st;
    if (tw.ne[0] != K || tw.ne[1] != N)
        return H->set_error(TSR_ERR_FORMAT, "bitsandbytes: '%s.weight' has shape [%lld, %lld], "
                            "expected [%lld, %lld]", r->module, (long long)tw.ne[1],
                            (long long)tw.ne[0], (long long)N, (long long)K);
    st = get_tensor(r, ".weight_format", TSR_DTYPE_U8, 1, 1, &tf);
    if (st && st != TSR_ERR_NOT_FOUND)
        return st;
    if (!st && *(const uint8_t *)tf.data != 0)
        return H->set_error(TSR_ERR_UNSUPPORTED, "bitsandbytes: '%s.weight_format' is %u; only "
                            "0 (row-major) is supported (col32/turing/ampere layouts are not)",
                            r->module, *(const uint8_t *)tf.data);
    bnb_weight *w = weight_new(8, K, N);
    if (!w || !(w->data = H->alloc((size_t)(K * N))) ||
        !(w->scb = H->alloc((size_t)N * sizeof(float))) ||
        !(w->scale = H->alloc((size_t)N * sizeof(float)))) {
        weight_free(w);
        return H->set_error(TSR_ERR_NOMEM, "bitsandbytes: out of memory");
    }
    memcpy(w->data, tw.data, (size_t)(K * N));
    memcpy(w->scb, tscb.data, (size_t)N * sizeof(float));
    finish_int8(s, w, out);
    return TSR_OK;
}

static tsr_status load4(bnb_state *s, ck_ref *r, int64_t K, int64_t N, tsr_tensor *out)
{
    (void)s;
    int64_t n = K * N;
    tsr_tensor tw, ta, tm, tq, tna, tnm;
    tsr_status st;
    char qs_name[64];
    const char *qt_name = NULL;
    for (int i = 0; i < 2 && !qt_name; i++) {
        const char *cand = i ? "fp4" : "nf4";
        snprintf(qs_name, sizeof qs_name, ".weight.quant_state.bitsandbytes__%s", cand);
        st = get_tensor(r, qs_name, TSR_DTYPE_U8, -1, 1, &tq);
        if (!st)
            qt_name = cand;
        else if (st != TSR_ERR_NOT_FOUND)
            return st;
    }
    if (!qt_name)
        return H->set_error(TSR_ERR_FORMAT, "bitsandbytes: '%s.weight' is packed 4-bit but the "
                            "checkpoint has no '%s.weight.quant_state.bitsandbytes__nf4' (or "
                            "__fp4)", r->module, r->module);
    int64_t qlen = tq.ne[0] * tq.ne[1] * tq.ne[2] * tq.ne[3];
    char what[600];
    snprintf(what, sizeof what, "%s%s", r->module, qs_name);
    qs_json q;
    if ((st = parse_quant_state(what, tq.data, (size_t)qlen, &q)))
        return st;
    if (strcmp(q.quant_type, qt_name))
        return H->set_error(TSR_ERR_FORMAT, "bitsandbytes: '%s' says quant_type '%s'", what, q.quant_type);
    if (q.n_shape != 2 || q.shape[0] != N || q.shape[1] != K)
        return H->set_error(TSR_ERR_FORMAT, "bitsandbytes: '%s' gives shape %s[%lld, %lld], the model "
                            "expects [%lld, %lld]", what, q.n_shape == 2 ? "" : "(not 2-D) ",
                            (long long)q.shape[0], (long long)q.shape[1], (long long)N, (long long)K);
    if (q.blocksize <= 0 || (K % 2))
        return H->set_error(TSR_ERR_FORMAT, "bitsandbytes: '%s': blocksize %lld / %lld input "
                            "features are not usable", what, (long long)q.blocksize, (long long)K);
    bnb_weight *w = weight_new(4, K, N);
    if (!w)
        return H->set_error(TSR_ERR_NOMEM, "bitsandbytes: out of memory");
    w->quant_type = !strcmp(qt_name, "nf4") ? BNB_NF4 : BNB_FP4;
    w->blocksize = q.blocksize;
    w->nb = (n + q.blocksize - 1) / q.blocksize;
    if (q.dtype[0])
        snprintf(w->dtype, sizeof w->dtype, "%s", q.dtype);
    int nested = q.has_nested_offset;
    if ((st = get_tensor(r, ".weight", TSR_DTYPE_U8, (n + 1) / 2, 0, &tw)) ||
        (st = get_tensor(r, ".weight.absmax", nested ? TSR_DTYPE_U8 : TSR_DTYPE_F32, w->nb, 0, &ta)) ||
        (st = get_tensor(r, ".weight.quant_map", TSR_DTYPE_F32, 16, 0, &tm)))
        goto fail;
    if (!(w->data = H->alloc((size_t)(n + 1) / 2)) ||
        !(w->absmax = H->alloc((size_t)w->nb * sizeof(float)))) {
        st = H->set_error(TSR_ERR_NOMEM, "bitsandbytes: out of memory");
        goto fail;
    }
    memcpy(w->data, tw.data, (size_t)(n + 1) / 2);
    if (nested) {
        w->nested = 1;
        w->offset = (float)q.nested_offset;
        w->nested_blocksize = q.has_nested_blocksize ? q.nested_blocksize : 256;
        if (w->nested_blocksize <= 0) {
            st = H->set_error(TSR_ERR_FORMAT, "bitsandbytes: '%s': nested_blocksize %lld", what,
                              (long long)w->nested_blocksize);
            goto fail;
        }
        if (q.nested_dtype[0])
            snprintf(w->nested_dtype, sizeof w->nested_dtype, "%s", q.nested_dtype);
        w->nb2 = (w->nb + w->nested_blocksize - 1) / w->nested_blocksize;
        if ((st = get_tensor(r, ".weight.nested_absmax", TSR_DTYPE_F32, w->nb2, 0, &tna)) ||
            (st = get_tensor(r, ".weight.nested_quant_map", TSR_DTYPE_F32, 256, 0, &tnm)))
            goto fail;
        if (!(w->qabsmax = H->alloc((size_t)w->nb)) ||
            !(w->nested_absmax = H->alloc((size_t)w->nb2 * sizeof(float)))) {
            st = H->set_error(TSR_ERR_NOMEM, "bitsandbytes: out of memory");
            goto fail;
        }
        memcpy(w->qabsmax, ta.data, (size_t)w->nb);
        memcpy(w->nested_absmax, tna.data, (size_t)w->nb2 * sizeof(float));
        memcpy(w->nested_code, tnm.data, sizeof w->nested_code);
        expand_absmax(w);
    } else {
        memcpy(w->absmax, ta.data, (size_t)w->nb * sizeof(float));
    }
    finish_codebook(s, w, out, tm.data);
    return TSR_OK;
fail:
    weight_free(w);
    return st;
}

static tsr_status bnb_load_weight(void *state, const tsr_checkpoint *ck, const char *module,
                                  const int64_t *ne, tsr_tensor *out)
{
    bnb_state *s = state;
    ck_ref r = {ck, module};
    char name[600];
    snprintf(name, sizeof name, "%s.weight", module);
    tsr_tensor t = {0};
    t.struct_size = sizeof t;
    tsr_status st = H->checkpoint_tensor(ck, name, &t);
    if (st)
        return st == TSR_ERR_NOT_FOUND
            ? H->set_error(st, "bitsandbytes: the checkpoint has no tensor '%s'", name) : st;
    /* the stored layout decides, whatever the config's flags say */
    if (t.dtype == TSR_DTYPE_I8)
        return load8(s, &r, ne[0], ne[1], out);
    if (t.dtype == TSR_DTYPE_U8)
        return load4(s, &r, ne[0], ne[1], out);
    return H->set_error(TSR_ERR_FORMAT, "bitsandbytes: '%s' is %s; expected I8 (load_in_8bit) or "
                        "U8 (packed 4-bit)", name, H->dtype_name(t.dtype));
}

/* --- saving ------------------------------------------------------------------------------ */

/* A double as Python's repr() writes it (shortest text that reads back). */
static void py_repr(double v, char *buf, size_t cap)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, cap, "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    char *e = strchr(buf, 'e');
    if (e) {
        /* Python: 1e-05 / 1e+16 (at least two exponent digits) - as %g */
        return;
    }
    if (!strchr(buf, '.') && !strchr(buf, 'n') && !strchr(buf, 'i'))
        snprintf(buf + strlen(buf), cap - strlen(buf), ".0");
}

static tsr_status emit(tsr_tensor_sink *sink, const char *module, const char *suffix, uint32_t dt,
                       int nd, const int64_t *shape, const void *data, size_t nbytes)
{
    char name[600];
    snprintf(name, sizeof name, "%s%s", module, suffix);
    return H->emit_tensor(sink, name, dt, nd, shape, data, nbytes);
}

static tsr_status bnb_save_weight(void *state, const char *module, const tsr_tensor *t,
                                  tsr_tensor_sink *sink)
{
    (void)state;
    const bnb_weight *w = t->format_data;
    if (!w || (t->dtype != TSR_DTYPE_CODEBOOK4 && t->dtype != TSR_DTYPE_INT8_ROW))
        return H->set_error(TSR_ERR_INVALID_ARG, "bitsandbytes: '%s' is not a bitsandbytes weight", module);
    if (!H->emit_tensor)
        return H->set_error(TSR_ERR_UNSUPPORTED, "bitsandbytes: the host cannot save tensors");
    tsr_status st;
    if (w->bits == 8) {
        int64_t shw[2] = {w->N, w->K}, shs[1] = {w->N};
        uint8_t fmt = 0;
        if ((st = emit(sink, module, ".weight", TSR_DTYPE_I8, 2, shw, w->data, (size_t)(w->N * w->K))) ||
            (st = emit(sink, module, ".SCB", TSR_DTYPE_F32, 1, shs, w->scb, (size_t)w->N * sizeof(float))))
            return st;
        return emit(sink, module, ".weight_format", TSR_DTYPE_U8, 0, shs, &fmt, 1);
    }
    int64_t n = w->K * w->N;
    int64_t shw[2] = {(n + 1) / 2, 1}, sha[1] = {w->nb}, shm[1] = {16}, shn[1] = {w->nb2},
            shnm[1] = {256};
    if ((st = emit(sink, module, ".weight", TSR_DTYPE_U8, 2, shw, w->data, (size_t)(n + 1) / 2)))
        return st;
    if (w->nested)
        st = emit(sink, module, ".weight.absmax", TSR_DTYPE_U8, 1, sha, w->qabsmax, (size_t)w->nb);
    else
        st = emit(sink, module, ".weight.absmax", TSR_DTYPE_F32, 1, sha, w->absmax,
                  (size_t)w->nb * sizeof(float));
    if (st || (st = emit(sink, module, ".weight.quant_map", TSR_DTYPE_F32, 1, shm, w->fmt.cb.code,
                         sizeof w->fmt.cb.code)))
        return st;
    if (w->nested &&
        ((st = emit(sink, module, ".weight.nested_absmax", TSR_DTYPE_F32, 1, shn, w->nested_absmax,
                    (size_t)w->nb2 * sizeof(float))) ||
         (st = emit(sink, module, ".weight.nested_quant_map", TSR_DTYPE_F32, 1, shnm, w->nested_code,
                    sizeof w->nested_code))))
        return st;
    /* json.dumps of QuantState.as_dict's non-tensor items, in their order */
    const char *qt = w->quant_type == BNB_NF4 ? "nf4" : "fp4";
    char js[512], off[40];
    int k = snprintf(js, sizeof js, "{\"quant_type\": \"%s\", \"blocksize\": %lld, \"dtype\": \"%s\", "
                     "\"shape\": [%lld, %lld]", qt, (long long)w->blocksize, w->dtype,
                     (long long)w->N, (long long)w->K);
    if (w->nested) {
        py_repr((double)w->offset, off, sizeof off);
        k += snprintf(js + k, sizeof js - (size_t)k, ", \"nested_blocksize\": %lld, \"nested_dtype\": "
                      "\"%s\", \"nested_offset\": %s", (long long)w->nested_blocksize,
                      w->nested_dtype, off);
    }
    k += snprintf(js + k, sizeof js - (size_t)k, "}");
    char suffix[64];
    snprintf(suffix, sizeof suffix, ".weight.quant_state.bitsandbytes__%s", qt);
    int64_t shj[1] = {k};
    return emit(sink, module, suffix, TSR_DTYPE_U8, 1, shj, js, (size_t)k);
}

/* BitsAndBytesConfig.to_dict() as transformers writes it into config.json. */
static tsr_status bnb_save_config(void *state, char **json)
{
    bnb_state *s = state;
    size_t cap = 1024;
    for (size_t i = 0; i < s->n_skip; i++)
        cap += strlen(s->skip[i]) + 8;
    char *j = H->alloc(cap);
    if (!j)
        return H->set_error(TSR_ERR_NOMEM, "bitsandbytes: out of memory");
    char thr[40];
    py_repr((double)s->threshold, thr, sizeof thr);
    const char *l4 = s->bits == 4 ? "true" : "false", *l8 = s->bits == 8 ? "true" : "false";
    size_t k = (size_t)snprintf(j, cap,
        "{\n  \"_load_in_4bit\": %s,\n  \"_load_in_8bit\": %s,\n  \"bnb_4bit_compute_dtype\": \"%s\",\n"
        "  \"bnb_4bit_quant_storage\": \"%s\",\n  \"bnb_4bit_quant_type\": \"%s\",\n"
        "  \"bnb_4bit_use_double_quant\": %s,\n  \"llm_int8_enable_fp32_cpu_offload\": %s,\n"
        "  \"llm_int8_has_fp16_weight\": %s,\n  \"llm_int8_skip_modules\": ",
        l4, l8, s->compute_dtype, s->quant_storage, s->quant_type == BNB_NF4 ? "nf4" : "fp4",
        s->double_quant ? "true" : "false", s->fp32_offload ? "true" : "false",
        s->has_fp16_weight ? "true" : "false");
    if (!s->skip_given) {
        k += (size_t)snprintf(j + k, cap - k, "null");
    } else {
        k += (size_t)snprintf(j + k, cap - k, "[");
        for (size_t i = 0; i < s->n_skip; i++)
            k += (size_t)snprintf(j + k, cap - k, "%s\"%s\"", i ? ", " : "", s->skip[i]);
        k += (size_t)snprintf(j + k, cap - k, "]");
    }
    snprintf(j + k, cap - k, ",\n  \"llm_int8_threshold\": %s,\n  \"load_in_4bit\": %s,\n"
             "  \"load_in_8bit\": %s,\n  \"quant_method\": \"bitsandbytes\"\n}", thr, l4, l8);
    *json = j;
    return TSR_OK;
}

/* --- entry --------------------------------------------------------------------------------- */

static int bnb_probe(const tsr_host *host, char *why, size_t len)
{
    (void)host;
    (void)why;
    (void)len;
    return 1;
}

static const tsr_quantizer_vtable bnb_vtable = {
    .struct_size = sizeof(tsr_quantizer_vtable),
    .capabilities = TSR_QUANT_SERIALIZABLE | TSR_QUANT_ON_LOAD,
    .create = bnb_create,
    .destroy = bnb_destroy,
    .skip_module = bnb_skip_module,
    .load_weight = bnb_load_weight,
    .quantize_weight = bnb_quantize_weight,
    .release_weight = bnb_release_weight,
    .save_weight = bnb_save_weight,
    .save_config = bnb_save_config,
};

static const tsr_plugin_desc bnb_desc = TSR_PLUGIN_DESC_INIT(
    TSR_PLUGIN_QUANTIZER, "bnb", "0.1.0",
    "bitsandbytes LLM.int8 and NF4/FP4 (double quant), load and save", bnb_probe, &bnb_vtable);

TSR_PLUGIN_DEFINE_ENTRY
{
    H = host;
    return &bnb_desc;
}
