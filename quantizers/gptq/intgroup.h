/* quantizers/gptq/intgroup.h - helpers shared by the GPTQ and AWQ plugins
 * (compiled into each; header-only, static): building TSR_DTYPE_INT_GROUP
 * weights, bit streams, reading checkpoint tensors with shape checks, and
 * modules_to_not_convert lists. */
#ifndef TESSERA_QUANT_INTGROUP_H
#define TESSERA_QUANT_INTGROUP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tessera/plugin/host.h"

/* One int-group weight in a single host allocation; `f` comes first so
 * that format_data (== &f) is what host->free releases. */
typedef struct tsr_ig_weight {
    tsr_fmt_int_group f;
    uint8_t *codes;     /* [N][row_bytes]                                  */
    float *scale;       /* [N][G]                                           */
    float *zero;        /* [N][G], code units                               */
    int32_t *g_idx;     /* [K] or NULL                                      */
} tsr_ig_weight;

static inline char *tsr_ig_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

static inline size_t tsr_ig_align(size_t n) { return (n + 63) & ~(size_t)63; }

static inline tsr_ig_weight *tsr_ig_new(const tsr_host *h, int64_t K, int64_t N, uint32_t bits,
                                        int64_t G, int64_t gs, int has_gidx)
{
    size_t rb = (size_t)((K * bits + 7) / 8);
    size_t o_codes = tsr_ig_align(sizeof(tsr_ig_weight));
    size_t o_scale = o_codes + tsr_ig_align(rb * (size_t)N);
    size_t o_zero = o_scale + tsr_ig_align((size_t)(N * G) * sizeof(float));
    size_t o_gidx = o_zero + tsr_ig_align((size_t)(N * G) * sizeof(float));
    size_t total = o_gidx + (has_gidx ? (size_t)K * sizeof(int32_t) : 0);
    char *p = h->calloc(1, total);
    if (!p)
        return NULL;
    tsr_ig_weight *w = (tsr_ig_weight *)p;
    w->f.struct_size = sizeof w->f;
    w->f.bits = bits;
    w->f.axis = 1;
    w->f.group_size = gs;
    w->f.n_groups_per_row = G;
    w->f.row_bytes = rb;
    w->codes = (uint8_t *)(p + o_codes);
    w->scale = (float *)(p + o_scale);
    w->zero = (float *)(p + o_zero);
    w->g_idx = has_gidx ? (int32_t *)(p + o_gidx) : NULL;
    w->f.scale = w->scale;
    w->f.zero = w->zero;
    w->f.g_idx = w->g_idx;
    return w;
}

/* Hand the weight to the tensor (ne already set by the caller). */
static inline void tsr_ig_to_tensor(tsr_ig_weight *w, tsr_tensor *t)
{
    t->dtype = TSR_DTYPE_INT_GROUP;
    t->data = w->codes;
    t->format_data = &w->f;
    t->nb[0] = 1;
    t->nb[1] = w->f.row_bytes;
    t->nb[2] = t->nb[1] * (size_t)t->ne[1];
    t->nb[3] = t->nb[2] * (size_t)t->ne[2];
}

/* Bits [bit, bit+n) of a little-endian bit stream. */
static inline uint32_t tsr_ig_get_bits(const uint8_t *p, int64_t bit, uint32_t n)
{
    uint32_t v = 0;
    for (uint32_t i = 0; i < n; i++, bit++)
        v |= (uint32_t)((p[bit >> 3] >> (bit & 7)) & 1u) << i;
    return v;
}

/* OR v into bits [bit, bit+n) (the bits must be clear). */
static inline void tsr_ig_put_bits(uint8_t *p, int64_t bit, uint32_t n, uint32_t v)
{
    for (uint32_t i = 0; i < n; i++, bit++)
        p[bit >> 3] |= (uint8_t)(((v >> i) & 1u) << (bit & 7));
}

/* Checkpoint tensor "<module>.<suffix>" of PyTorch shape [rows, cols]
 * (rows 1: a vector [cols]); want: a dtype, or 0 for any float dtype.
 * optional: absent returns TSR_ERR_NOT_FOUND without an error text. */
static inline tsr_status tsr_ig_ckpt(const tsr_host *h, const tsr_checkpoint *ck,
                                     const char *module, const char *suffix, uint32_t want,
                                     int64_t rows, int64_t cols, int optional, tsr_tensor *out)
{
    char name[600];
    snprintf(name, sizeof name, "%s.%s", module, suffix);
    tsr_status st = h->checkpoint_tensor(ck, name, out);
    if (st == TSR_ERR_NOT_FOUND)
        return optional ? st : h->set_error(st, "the checkpoint has no tensor '%s'", name);
    if (st)
        return st;
    int fl = out->dtype == TSR_DTYPE_F16 || out->dtype == TSR_DTYPE_BF16 ||
             out->dtype == TSR_DTYPE_F32;
    if (want ? out->dtype != want : !fl)
        return h->set_error(TSR_ERR_FORMAT, "tensor '%s' is %s, expected %s", name,
                            h->dtype_name(out->dtype), want ? h->dtype_name(want) : "F16/BF16/F32");
    int ok = rows == 1 ? (out->ne[0] == cols && out->ne[1] == 1)
                       : (out->ne[0] == cols && out->ne[1] == rows);
    if (!ok || out->ne[2] != 1 || out->ne[3] != 1)
        return h->set_error(TSR_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld], expected "
                            "[%lld, %lld] for the module's shape and quantization_config",
                            name, (long long)out->ne[1], (long long)out->ne[0],
                            (long long)rows, (long long)cols);
    return TSR_OK;
}

/* scales [G][stride] (any float dtype, first N of each row) -> f32 [N][G]. */
static inline tsr_status tsr_ig_scales_in(const tsr_host *h, const tsr_tensor *sc, int64_t G,
                                          int64_t N, int64_t stride, int transposed,
                                          float *scale, const char *module)
{
    /* transposed: stored [N][stride] (AWQ gemv) */
    float *row = h->alloc((size_t)stride * sizeof(float));
    if (!row)
        return h->set_error(TSR_ERR_NOMEM, "out of memory loading '%s'", module);
    size_t es = h->dtype_size(sc->dtype);
    int64_t outer = transposed ? N : G, inner = transposed ? G : N;
    for (int64_t r = 0; r < outer; r++) {
        tsr_status st = h->to_f32(sc->dtype, (const char *)sc->data + (size_t)(r * stride) * es,
                                  row, stride, NULL);
        if (st) {
            h->free(row);
            return st;
        }
        for (int64_t c = 0; c < inner; c++) {
            int64_t n = transposed ? r : c, g = transposed ? c : r;
            scale[n * G + g] = row[c];
        }
    }
    h->free(row);
    return TSR_OK;
}

/* modules_to_not_convert: a JSON array of names (a module is skipped when a
 * name occurs in it, as AutoAWQ and transformers match), or absent/null
 * for `dflt` (NULL: none). */
static inline tsr_status tsr_ig_skip_list(const tsr_host *h, const tsr_json *v, const char *dflt,
                                          char ***list, size_t *n)
{
    *list = NULL;
    *n = 0;
    tsr_json_type t = h->json_type(v);
    size_t cnt = t == TSR_JSON_ARRAY ? h->json_size(v) : (dflt ? 1 : 0);
    if (t != TSR_JSON_ARRAY && t != TSR_JSON_ABSENT && t != TSR_JSON_NULL)
        return h->set_error(TSR_ERR_CONFIG, "quantization_config: \"modules_to_not_convert\" "
                            "must be a list of module names");
    if (!cnt)
        return TSR_OK;
    *list = calloc(cnt, sizeof **list);
    if (!*list)
        return h->set_error(TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        const char *s = t == TSR_JSON_ARRAY ? h->json_string(h->json_at(v, i), NULL) : dflt;
        if (!s)
            return h->set_error(TSR_ERR_CONFIG, "quantization_config: \"modules_to_not_convert\" "
                                "item %zu is not a string", i);
        if (!((*list)[i] = tsr_ig_strdup(s)))
            return h->set_error(TSR_ERR_NOMEM, "out of memory");
        (*n)++;
    }
    return TSR_OK;
}

static inline int tsr_ig_skip_match(char *const *list, size_t n, const char *module)
{
    for (size_t i = 0; i < n; i++)
        if (strstr(module, list[i]))
            return 1;
    return 0;
}

/* The name of `module` relative to its decoder block: what follows the
 * first all-digit path component ("model.layers.3.mlp.up_proj" ->
 * "mlp.up_proj", "transformer.h.0.attn.c_attn" -> "attn.c_attn"); NULL for
 * a module outside the blocks (lm_head) or a block itself. */
static inline const char *tsr_ig_block_rel(const char *module)
{
    const char *p = strchr(module, '.');
    while (p) {
        const char *c = p + 1, *e = c;
        while (*e >= '0' && *e <= '9')
            e++;
        if (e > c && *e == '.' && e[1])
            return e + 1;
        p = strchr(c, '.');
    }
    return NULL;
}

/* The list as a JSON array (names are plain module paths, no escaping). */
static inline void tsr_ig_skip_json(char *const *list, size_t n, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (size_t i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s\"%s\"", i ? ", " : "", list[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

#endif
