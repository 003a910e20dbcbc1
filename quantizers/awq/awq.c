/* quantizers/awq/awq.c - AWQ (Lin et al. 2023, arXiv:2306.00978): loading
 * AutoAWQ checkpoints (GEMM and GEMV packings), quantizing float weights
 * with AWQ's zero-point group quantizer, and saving in AutoAWQ's layout.
 *
 * Checkpoint layout of a Linear module `m` (in = K, out = N, G = K / gs):
 *   version "gemm" (WQLinear_GEMM):
 *     m.qweight I32 [K, N/8]  eight 4-bit codes of one input row k per
 *               word, nibble i holding output column 8c + AWQ_ORDER[i],
 *               AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
 *     m.qzeros  I32 [G, N/8]  zero points, the same interleaving
 *     m.scales  F16 [G, N]
 *   version "gemv" (WQLinear_GEMV):
 *     m.qweight I32 [N, K/8]  codes along K, nibble i = column 8c + i
 *     m.qzeros  I32 [N, zw]   zero of group g in nibble g % 8 of word g / 8
 *     m.scales  F16 [N, 8 zw] (zw = AutoAWQ's calculate_zeros_width; the
 *               columns past G are padding)
 * w[n][k] = (q - zero) * scale of group k / gs; no offset on the zeros.
 * Both map onto TSR_DTYPE_INT_GROUP (formats.h).  Little-endian host. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tessera/plugin/plugin.h"
#include "intgroup.h"

/* column 8c + j sits in nibble AWQ_REVERSE_ORDER[j] (the inverse of AWQ_ORDER) */
static const int AWQ_REVERSE_ORDER[8] = {0, 4, 1, 5, 2, 6, 3, 7};

typedef struct awq_state {
    const tsr_host *h;
    int bits, group_size, gemv;
    char **skip;
    size_t n_skip;
} awq_state;

static void awq_destroy(void *state)
{
    awq_state *s = state;
    if (!s)
        return;
    for (size_t i = 0; i < s->n_skip; i++)
        free(s->skip[i]);
    free(s->skip);
    free(s);
}

static tsr_status awq_create(const tsr_host *h, const tsr_json *qc, void **state)
{
    awq_state *s = calloc(1, sizeof *s);
    if (!s)
        return h->set_error(TSR_ERR_NOMEM, "out of memory");
    s->h = h;
    /* transformers' AwqConfig names, or AutoAWQ's quant_config names */
    const tsr_json *b = h->json_get(qc, "bits");
    s->bits = (int)h->json_int(b ? b : h->json_get(qc, "w_bit"), 4);
    const tsr_json *g = h->json_get(qc, "group_size");
    s->group_size = (int)h->json_int(g ? g : h->json_get(qc, "q_group_size"), 128);
    int zp = h->json_bool(h->json_get(qc, "zero_point"), 1);
    const char *ver = h->json_string(h->json_get(qc, "version"), "gemm");
    tsr_status st = TSR_OK;
    char v[16];
    size_t i = 0;
    for (; ver[i] && i + 1 < sizeof v; i++)
        v[i] = (char)(ver[i] >= 'A' && ver[i] <= 'Z' ? ver[i] + 32 : ver[i]);
    v[i] = 0;
    s->gemv = !strcmp(v, "gemv");
    /* 2..8 bits quantize on load (AutoAWQ's pseudo_quantize_tensor takes any
     * w_bit); only 4-bit loads and saves (the GEMM/GEMV layouts) */
    if (s->bits < 2 || s->bits > 8)
        st = h->set_error(TSR_ERR_UNSUPPORTED, "quantization_config: AWQ \"bits\" is %d; "
                          "2..8 quantize on load, the AutoAWQ GEMM/GEMV layouts hold 4-bit "
                          "codes only", s->bits);
    else if (s->group_size == 0 || s->group_size < -1)
        st = h->set_error(TSR_ERR_CONFIG, "quantization_config: AWQ \"group_size\" is %d; it "
                          "must be positive or -1", s->group_size);
    else if (strcmp(v, "gemm") && strcmp(v, "gemv"))
        st = h->set_error(TSR_ERR_UNSUPPORTED, "quantization_config: AWQ version \"%s\" is not "
                          "supported (only \"gemm\" and \"gemv\")", ver);
    else if (!zp)
        st = h->set_error(TSR_ERR_UNSUPPORTED, "quantization_config: AWQ with \"zero_point\": "
                          "false has no AutoAWQ GEMM/GEMV layout");
    if (!st)
        st = tsr_ig_skip_list(h, h->json_get(qc, "modules_to_not_convert"), "lm_head",
                              &s->skip, &s->n_skip);
    if (st) {
        awq_destroy(s);
        return st;
    }
    *state = s;
    return TSR_OK;
}

static int awq_skip_module(void *state, const char *module)
{
    awq_state *s = state;
    /* the head stays in float whatever modules_to_not_convert lists: AutoAWQ never
     * quantizes it and transformers' AWQ loader always adds the output embedding
     * to the modules it does not convert */
    if (strstr(module, "lm_head"))
        return 1;
    return tsr_ig_skip_match(s->skip, s->n_skip, module);
}

/* AutoAWQ's calculate_zeros_width (gemv.py): words of zeros per row. */
static int64_t zeros_width(int64_t K, int64_t gs)
{
    int64_t mult = gs >= 128 ? 1 : gs == 64 ? 2 : gs == 32 ? 4 : 0;
    if (!mult)
        return -1;
    int64_t base = (K / gs + 7) / 8;
    return (base + mult - 1) / mult * mult;
}

static tsr_status awq_load_weight(void *state, const tsr_checkpoint *ck, const char *module,
                                  const int64_t *ne, tsr_tensor *out)
{
    awq_state *s = state;
    const tsr_host *h = s->h;
    int64_t K = ne[0], N = ne[1];
    int64_t gs = s->group_size > 0 ? s->group_size : K;
    int64_t G = (K + gs - 1) / gs;
    tsr_tensor qw, qz, sc;
    tsr_status st;
    int64_t zw = s->gemv ? zeros_width(K, gs) : 0;
    if (s->bits != 4)
        return h->set_error(TSR_ERR_UNSUPPORTED, "AWQ '%s': \"bits\" %d has no AutoAWQ "
                            "checkpoint layout (4-bit only)", module, s->bits);
    if (s->gemv && zw < 0)
        return h->set_error(TSR_ERR_UNSUPPORTED, "AWQ gemv: group_size %lld has no AutoAWQ "
                            "layout (128 or more, 64 or 32)", (long long)gs);
    if (s->gemv) {
        if ((st = tsr_ig_ckpt(h, ck, module, "qweight", TSR_DTYPE_I32, N, (K + 7) / 8, 0, &qw)) ||
            (st = tsr_ig_ckpt(h, ck, module, "qzeros", TSR_DTYPE_I32, N, zw, 0, &qz)) ||
            (st = tsr_ig_ckpt(h, ck, module, "scales", 0, N, zw * 8, 0, &sc)))
            return st;
    } else {
        if ((st = tsr_ig_ckpt(h, ck, module, "qweight", TSR_DTYPE_I32, K, (N + 7) / 8, 0, &qw)) ||
            (st = tsr_ig_ckpt(h, ck, module, "qzeros", TSR_DTYPE_I32, G, (N + 7) / 8, 0, &qz)) ||
            (st = tsr_ig_ckpt(h, ck, module, "scales", 0, G, N, 0, &sc)))
            return st;
    }
    tsr_ig_weight *w = tsr_ig_new(h, K, N, 4, G, gs, 0);
    if (!w)
        return h->set_error(TSR_ERR_NOMEM, "out of memory loading '%s'", module);
    const uint32_t *q = qw.data, *z = qz.data;
    if (s->gemv) {
        int64_t Wk = (K + 7) / 8;
        for (int64_t n = 0; n < N; n++) {
            uint8_t *row = w->codes + n * (int64_t)w->f.row_bytes;
            for (size_t b = 0; b < w->f.row_bytes; b++)
                row[b] = (uint8_t)(q[n * Wk + (int64_t)(b / 4)] >> (8 * (b % 4)));
            for (int64_t g = 0; g < G; g++)
                w->zero[n * G + g] = (float)((z[n * zw + g / 8] >> (4 * (g % 8))) & 15u);
        }
    } else {
        int64_t Wn = (N + 7) / 8;
        for (int64_t k = 0; k < K; k++)
            for (int64_t n = 0; n < N; n++) {
                uint32_t c = (q[k * Wn + n / 8] >> (4 * AWQ_REVERSE_ORDER[n % 8])) & 15u;
                tsr_ig_put_bits(w->codes + n * (int64_t)w->f.row_bytes, k * 4, 4, c);
            }
        for (int64_t g = 0; g < G; g++)
            for (int64_t n = 0; n < N; n++)
                w->zero[n * G + g] =
                    (float)((z[g * Wn + n / 8] >> (4 * AWQ_REVERSE_ORDER[n % 8])) & 15u);
    }
    st = s->gemv ? tsr_ig_scales_in(h, &sc, G, N, zw * 8, 1, w->scale, module)
                 : tsr_ig_scales_in(h, &sc, G, N, N, 0, w->scale, module);
    if (st) {
        h->free(w);
        return st;
    }
    tsr_ig_to_tensor(w, out);
    return TSR_OK;
}

/* AutoAWQ's pseudo_quantize_tensor with zero_point, per group of gs inputs:
 *   scale = clamp(max - min, 1e-5) / 15, zero = clamp(-round(min / scale), 0, 15),
 *   q = clamp(round(w / scale) + zero, 0, 15);
 * the scale is rounded to fp16 first, as it is stored.  The activation-aware
 * scale search of AWQ is not done here (see docs/quantization/awq.md). */
static tsr_status awq_quantize_weight(void *state, const char *module, const float *wt,
                                      const int64_t *ne, tsr_tensor *out)
{
    awq_state *s = state;
    const tsr_host *h = s->h;
    int64_t K = ne[0], N = ne[1];
    int64_t gs = s->group_size > 0 ? s->group_size : K;
    int64_t G = (K + gs - 1) / gs;
    uint32_t bits = (uint32_t)s->bits;
    float maxq = (float)((1u << bits) - 1);
    tsr_ig_weight *w = tsr_ig_new(h, K, N, bits, G, gs, 0);
    if (!w)
        return h->set_error(TSR_ERR_NOMEM, "out of memory quantizing '%s'", module);
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
            int64_t k0 = g * gs, k1 = k0 + gs < K ? k0 + gs : K;
            const float *r = wt + n * K;
            float mx = r[k0], mn = r[k0];
            for (int64_t k = k0; k < k1; k++) {
                mx = r[k] > mx ? r[k] : mx;
                mn = r[k] < mn ? r[k] : mn;
            }
            float range = mx - mn < 1e-5f ? 1e-5f : mx - mn;
            float sc = h->f16_to_f32(h->f32_to_f16(range / maxq));
            float zr = -rintf(mn / sc);
            zr = zr < 0 ? 0 : (zr > maxq ? maxq : zr);
            w->scale[n * G + g] = sc;
            w->zero[n * G + g] = zr;
            for (int64_t k = k0; k < k1; k++) {
                float q = rintf(r[k] / sc) + zr;
                q = q < 0 ? 0 : (q > maxq ? maxq : q);
                tsr_ig_put_bits(w->codes + n * (int64_t)w->f.row_bytes, k * bits, bits,
                                (uint32_t)q);
            }
        }
    tsr_ig_to_tensor(w, out);
    return TSR_OK;
}

static void awq_release_weight(void *state, tsr_tensor *t)
{
    awq_state *s = state;
    s->h->free((void *)t->format_data);
    t->format_data = NULL;
    t->data = NULL;
}

static tsr_status emit(const tsr_host *h, tsr_tensor_sink *sink, const char *module,
                       const char *suffix, uint32_t dt, int64_t r, int64_t c, const void *p,
                       size_t es)
{
    char name[600];
    snprintf(name, sizeof name, "%s.%s", module, suffix);
    int64_t shp[2] = {r, c};
    return h->emit_tensor(sink, name, dt, 2, shp, p, (size_t)(r * c) * es);
}

static tsr_status awq_save_weight(void *state, const char *module, const tsr_tensor *t,
                                  tsr_tensor_sink *sink)
{
    awq_state *s = state;
    const tsr_host *h = s->h;
    const tsr_fmt_int_group *f = t->format_data;
    if (t->dtype != TSR_DTYPE_INT_GROUP || !f || f->axis != 1 || f->bits != 4 || f->g_idx)
        return h->set_error(TSR_ERR_INVALID_ARG, "AWQ cannot save '%s': it is not a 4-bit "
                            "int-group weight without act-order", module);
    int64_t K = t->ne[0], N = t->ne[1], G = f->n_groups_per_row, gs = f->group_size;
    int64_t zw = s->gemv ? zeros_width(K, gs) : 0;
    if (s->gemv && zw < 0)
        return h->set_error(TSR_ERR_UNSUPPORTED, "AWQ gemv: group_size %lld has no AutoAWQ "
                            "layout", (long long)gs);
    for (int64_t i = 0; i < N * G; i++)
        if (f->zero[i] != floorf(f->zero[i]) || f->zero[i] < 0 || f->zero[i] > 15)
            return h->set_error(TSR_ERR_UNSUPPORTED, "AWQ cannot save '%s': zero point %g is "
                                "not a 4-bit integer", module, (double)f->zero[i]);
    int64_t Wn = (N + 7) / 8, Wk = (K + 7) / 8;
    size_t nq = (size_t)(s->gemv ? N * Wk : K * Wn), nz = (size_t)(s->gemv ? N * zw : G * Wn);
    size_t ns = (size_t)(s->gemv ? N * zw * 8 : G * N);
    uint32_t *qw = calloc(nq, 4), *qz = calloc(nz, 4);
    uint16_t *sc = calloc(ns, 2);
    tsr_status st = TSR_OK;
    if (!qw || !qz || !sc) {
        st = h->set_error(TSR_ERR_NOMEM, "out of memory saving '%s'", module);
        goto done;
    }
    const uint8_t *codes = t->data;
    for (int64_t n = 0; n < N; n++) {
        const uint8_t *row = codes + n * (int64_t)f->row_bytes;
        for (int64_t k = 0; k < K; k++) {
            uint32_t c = tsr_ig_get_bits(row, k * 4, 4);
            if (s->gemv)
                qw[n * Wk + k / 8] |= c << (4 * (k % 8));
            else
                qw[k * Wn + n / 8] |= c << (4 * AWQ_REVERSE_ORDER[n % 8]);
        }
        for (int64_t g = 0; g < G; g++) {
            uint32_t z = (uint32_t)f->zero[n * G + g];
            uint16_t hs = h->f32_to_f16(f->scale[n * G + g]);
            if (s->gemv) {
                qz[n * zw + g / 8] |= z << (4 * (g % 8));
                sc[n * zw * 8 + g] = hs;
            } else {
                qz[g * Wn + n / 8] |= z << (4 * AWQ_REVERSE_ORDER[n % 8]);
                sc[g * N + n] = hs;
            }
        }
    }
    if (s->gemv) {
        if (!(st = emit(h, sink, module, "qweight", TSR_DTYPE_I32, N, Wk, qw, 4)) &&
            !(st = emit(h, sink, module, "qzeros", TSR_DTYPE_I32, N, zw, qz, 4)))
            st = emit(h, sink, module, "scales", TSR_DTYPE_F16, N, zw * 8, sc, 2);
    } else {
        if (!(st = emit(h, sink, module, "qweight", TSR_DTYPE_I32, K, Wn, qw, 4)) &&
            !(st = emit(h, sink, module, "qzeros", TSR_DTYPE_I32, G, Wn, qz, 4)))
            st = emit(h, sink, module, "scales", TSR_DTYPE_F16, G, N, sc, 2);
    }
done:
    free(qw);
    free(qz);
    free(sc);
    return st;
}

static tsr_status awq_save_config(void *state, char **json)
{
    awq_state *s = state;
    char skip[2048], buf[2560];
    tsr_ig_skip_json(s->skip, s->n_skip, skip, sizeof skip);
    int n = snprintf(buf, sizeof buf,
                     "{\"quant_method\": \"awq\", \"bits\": %d, \"group_size\": %d, "
                     "\"zero_point\": true, \"version\": \"%s\", \"modules_to_not_convert\": %s}",
                     s->bits, s->group_size, s->gemv ? "gemv" : "gemm", skip);
    if (n < 0 || (size_t)n >= sizeof buf)
        return s->h->set_error(TSR_ERR_INTERNAL, "AWQ quantization_config is too long");
    *json = s->h->alloc((size_t)n + 1);
    if (!*json)
        return s->h->set_error(TSR_ERR_NOMEM, "out of memory");
    memcpy(*json, buf, (size_t)n + 1);
    return TSR_OK;
}

static int awq_probe(const tsr_host *host, char *why, size_t why_len)
{
    (void)host;
    (void)why;
    (void)why_len;
    return 1;
}

static const tsr_quantizer_vtable awq_vtable = {
    .struct_size = sizeof(tsr_quantizer_vtable),
    /* calibration: with quantization.dataset the core runs AWQ's scale and
     * clip search (core/calibrate_awq.c) before quantize_weight */
    .capabilities = TSR_QUANT_REQUIRES_CALIBRATION | TSR_QUANT_SERIALIZABLE | TSR_QUANT_ON_LOAD,
    .create = awq_create,
    .destroy = awq_destroy,
    .skip_module = awq_skip_module,
    .load_weight = awq_load_weight,
    .quantize_weight = awq_quantize_weight,
    .release_weight = awq_release_weight,
    .save_weight = awq_save_weight,
    .save_config = awq_save_config,
};

static const tsr_plugin_desc awq_desc = TSR_PLUGIN_DESC_INIT(
    TSR_PLUGIN_QUANTIZER, "awq", "0.1.0",
    "AWQ: AutoAWQ checkpoints (GEMM and GEMV packings), zero-point group quantization, saving",
    awq_probe, &awq_vtable);

TSR_PLUGIN_DEFINE_ENTRY
{
    (void)host;
    return &awq_desc;
}
