/* models/common/rope.c - RoPE frequencies (transformers' modeling_rope_utils:
 * _compute_default/linear/dynamic_ntk/llama3/yarn/longrope_parameters). */
#include <math.h>
#include <string.h>
#include "rope.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* a key of rope_parameters/rope_scaling, else of the config root */
static const tsr_json *key2(const tsr_host *h, const tsr_json *rs, const tsr_json *cfg, const char *k)
{
    const tsr_json *v = rs ? h->json_get(rs, k) : NULL;
    if (!v || h->json_type(v) == TSR_JSON_NULL)
        v = h->json_get(cfg, k);
    return v && h->json_type(v) != TSR_JSON_NULL ? v : NULL;
}

static tsr_status read_factors(const tsr_host *h, const tsr_json *rs, const char *key, int half,
                               float *out)
{
    const tsr_json *a = h->json_get(rs, key);
    if (!a || h->json_type(a) != TSR_JSON_ARRAY || (int)h->json_size(a) != half)
        return h->set_error(TSR_ERR_FORMAT,
                            "config.json: rope_scaling (longrope) needs '%s', an array of %d numbers "
                            "(rotary dimension / 2)", key, half);
    for (int i = 0; i < half; i++)
        out[i] = (float)h->json_real(h->json_at(a, (size_t)i), 1.0);
    return TSR_OK;
}

tsr_status rope_parse(const tsr_host *h, const tsr_json *cfg, int head_dim, rope_cfg *r)
{
    memset(r, 0, sizeof *r);
    const tsr_json *rs = h->json_get(cfg, "rope_parameters");
    if (!rs || h->json_type(rs) != TSR_JSON_OBJECT)
        rs = h->json_get(cfg, "rope_scaling");
    if (rs && h->json_type(rs) == TSR_JSON_NULL)
        rs = NULL;
    if (rs && h->json_type(rs) != TSR_JSON_OBJECT)
        return h->set_error(TSR_ERR_FORMAT, "config.json: rope_scaling must be an object or null");
    double partial = h->json_real(key2(h, rs, cfg, "partial_rotary_factor"), 1.0);
    r->dim = (int)(head_dim * partial);
    if (r->dim < 2 || r->dim / 2 > ROPE_MAX_HALF || r->dim > head_dim)
        return h->set_error(TSR_ERR_UNSUPPORTED,
                            "config.json: rotary dimension %d (head_dim %d * partial_rotary_factor %g)",
                            r->dim, head_dim, partial);
    r->base = h->json_real(key2(h, rs, cfg, "rope_theta"), 10000.0);
    r->max_pos = h->json_int(h->json_get(cfg, "max_position_embeddings"), 2048);
    r->original_max_pos = r->max_pos;
    r->kind = ROPE_DEFAULT;
    if (!rs)
        return TSR_OK;
    const char *type = h->json_string(h->json_get(rs, "rope_type"), NULL);
    if (!type)
        type = h->json_string(h->json_get(rs, "type"), "default");
    const tsr_json *fj = h->json_get(rs, "factor");
    int has_factor = fj && (h->json_type(fj) == TSR_JSON_INT || h->json_type(fj) == TSR_JSON_REAL);
    r->factor = h->json_real(fj, 1.0);
    /* Phi3 keeps original_max_position_embeddings at the root, and there it
     * takes precedence (PreTrainedConfig.standardize_rope_params) */
    const tsr_json *om = h->json_get(cfg, "original_max_position_embeddings");
    if (!om || h->json_type(om) == TSR_JSON_NULL)
        om = h->json_get(rs, "original_max_position_embeddings");
    if (om && h->json_type(om) == TSR_JSON_NULL)
        om = NULL;
    r->original_max_pos = h->json_int(om, r->max_pos);
    const tsr_json *af = h->json_get(rs, "attention_factor");
    r->attention_factor = af && h->json_type(af) != TSR_JSON_NULL ? h->json_real(af, 0.0) : 0.0;
    if (!strcmp(type, "default")) {
        r->kind = ROPE_DEFAULT;
    } else if (!strcmp(type, "linear")) {
        r->kind = ROPE_LINEAR;
    } else if (!strcmp(type, "dynamic")) {
        r->kind = ROPE_DYNAMIC;
    } else if (!strcmp(type, "llama3")) {
        r->kind = ROPE_LLAMA3;
        r->low_freq_factor = h->json_real(h->json_get(rs, "low_freq_factor"), 1.0);
        r->high_freq_factor = h->json_real(h->json_get(rs, "high_freq_factor"), 4.0);
        if (!om)
            return h->set_error(TSR_ERR_FORMAT,
                                "config.json: rope_scaling (llama3) needs original_max_position_embeddings");
    } else if (!strcmp(type, "yarn")) {
        r->kind = ROPE_YARN;
        r->beta_fast = h->json_real(h->json_get(rs, "beta_fast"), 32.0);
        r->beta_slow = h->json_real(h->json_get(rs, "beta_slow"), 1.0);
        r->mscale = h->json_real(h->json_get(rs, "mscale"), 0.0);
        r->mscale_all_dim = h->json_real(h->json_get(rs, "mscale_all_dim"), 0.0);
        r->truncate = h->json_bool(h->json_get(rs, "truncate"), 1);
        /* no factor: the ratio of the context lengths (DeepSeek-V3 style) */
        if (!has_factor && r->original_max_pos > 0)
            r->factor = (double)r->max_pos / (double)r->original_max_pos;
    } else if (!strcmp(type, "longrope") || !strcmp(type, "su")) {
        r->kind = ROPE_LONGROPE;
        tsr_status st;
        if ((st = read_factors(h, rs, "short_factor", r->dim / 2, r->short_factor)) ||
            (st = read_factors(h, rs, "long_factor", r->dim / 2, r->long_factor)))
            return st;
        if (!has_factor && r->original_max_pos > 0)
            r->factor = (double)r->max_pos / (double)r->original_max_pos;
        if (r->original_max_pos <= 1)
            return h->set_error(TSR_ERR_FORMAT,
                                "config.json: longrope needs original_max_position_embeddings > 1");
    } else {
        return h->set_error(TSR_ERR_UNSUPPORTED,
                            "config.json: rope_scaling type '%s' is not supported "
                            "(default, linear, dynamic, llama3, yarn, longrope)", type);
    }
    if (r->factor <= 0.0)
        return h->set_error(TSR_ERR_FORMAT, "config.json: rope_scaling.factor must be > 0");
    return TSR_OK;
}

static double yarn_mscale(double scale, double m)
{
    return scale <= 1.0 ? 1.0 : 0.1 * m * log(scale) + 1.0;
}

static double yarn_correction_dim(double n_rot, int dim, double base, double max_pos)
{
    return (dim * log(max_pos / (n_rot * 2.0 * M_PI))) / (2.0 * log(base));
}

void rope_inv_freq(const rope_cfg *r, int64_t seq_len, float *inv, float *attn_factor)
{
    int half = r->dim / 2;
    double base = r->base;
    *attn_factor = 1.0f;
    if (r->kind == ROPE_DYNAMIC && seq_len > r->max_pos) {
        /* dynamic NTK: base * (factor * L / max_pos - (factor - 1)) ** (dim / (dim - 2)) */
        double f = r->factor;
        base = r->base * pow((f * (double)seq_len / (double)r->max_pos) - (f - 1.0),
                             (double)r->dim / (r->dim - 2));
    }
    for (int i = 0; i < half; i++) {
        /* float32 as torch: base ** (arange(0, dim, 2).float() / dim) */
        float expo = (float)(2 * i) / (float)r->dim;
        float pf = powf((float)base, expo);
        if (r->kind == ROPE_LONGROPE) /* 1 / (ext_factors * base ** ...) */
            pf *= seq_len > r->original_max_pos ? r->long_factor[i] : r->short_factor[i];
        inv[i] = 1.0f / pf;
    }
    if (r->kind == ROPE_LINEAR) {
        for (int i = 0; i < half; i++)
            inv[i] = (float)(inv[i] / r->factor);
    } else if (r->kind == ROPE_LONGROPE) {
        /* sqrt(1 + ln(factor) / ln(original_max_position_embeddings)) */
        double a = r->attention_factor;
        if (a <= 0.0)
            a = r->factor <= 1.0 ? 1.0 : sqrt(1.0 + log(r->factor) / log((double)r->original_max_pos));
        *attn_factor = (float)a;
    } else if (r->kind == ROPE_LLAMA3) {
        double low_wl = (double)r->original_max_pos / r->low_freq_factor;
        double high_wl = (double)r->original_max_pos / r->high_freq_factor;
        for (int i = 0; i < half; i++) {
            double wl = 2.0 * M_PI / inv[i];
            if (wl > low_wl) {
                inv[i] = (float)(inv[i] / r->factor);
            } else if (wl >= high_wl) {
                double smooth = ((double)r->original_max_pos / wl - r->low_freq_factor) /
                                (r->high_freq_factor - r->low_freq_factor);
                inv[i] = (float)((1.0 - smooth) * inv[i] / r->factor + smooth * inv[i]);
            }
        }
    } else if (r->kind == ROPE_YARN) {
        double af = r->attention_factor;
        if (af <= 0.0) {
            if (r->mscale != 0.0 && r->mscale_all_dim != 0.0)
                af = yarn_mscale(r->factor, r->mscale) / yarn_mscale(r->factor, r->mscale_all_dim);
            else
                af = yarn_mscale(r->factor, 1.0);
        }
        *attn_factor = (float)af;
        double lo = yarn_correction_dim(r->beta_fast, r->dim, r->base, (double)r->original_max_pos);
        double hi = yarn_correction_dim(r->beta_slow, r->dim, r->base, (double)r->original_max_pos);
        if (r->truncate) {
            lo = floor(lo);
            hi = ceil(hi);
        }
        if (lo < 0)
            lo = 0;
        if (hi > r->dim - 1)
            hi = r->dim - 1;
        if (lo == hi)
            hi += 0.001;
        for (int i = 0; i < half; i++) {
            float extrap = inv[i];
            float interp = (float)(inv[i] / r->factor);
            double ramp = ((double)i - lo) / (hi - lo);
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            double ef = 1.0 - ramp; /* extrapolation weight */
            inv[i] = (float)(interp * (1.0 - ef) + extrap * ef);
        }
    }
}
