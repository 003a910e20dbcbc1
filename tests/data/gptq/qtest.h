/* tests/data/gptq/qtest.h - helpers for the GPTQ and AWQ unit tests: a
 * tiny safetensors writer, an in-memory tensor sink for save_weight, the
 * quantizer plugin from the build's registry, a deterministic RNG. */
#ifndef TESSERA_TEST_QTEST_H
#define TESSERA_TEST_QTEST_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

typedef struct qt_tensor {
    char name[256];
    const char *dtype;         /* "I32", "F16", "F32" */
    int n_dims;
    int64_t shape[2];
    void *data;
    size_t nbytes;
} qt_tensor;

/* the sink save_weight writes into */
struct tsr_tensor_sink {
    qt_tensor t[64];
    int n;
};

static uint64_t qt_rng = 0x9E3779B97F4A7C15ull;
static inline uint32_t qt_u32(void)
{
    qt_rng ^= qt_rng << 13;
    qt_rng ^= qt_rng >> 7;
    qt_rng ^= qt_rng << 17;
    return (uint32_t)(qt_rng >> 11);
}
static inline float qt_unif(void) { return (float)(qt_u32() & 0xFFFFFF) / 16777216.0f; }
static inline float qt_normal(void)
{
    float s = 0;
    for (int i = 0; i < 12; i++)
        s += qt_unif();
    return s - 6.0f;
}

static inline void qt_add(struct tsr_tensor_sink *s, const char *name, const char *dtype,
                          int n_dims, int64_t d0, int64_t d1, const void *data, size_t nbytes)
{
    qt_tensor *t = &s->t[s->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->n_dims = n_dims;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->data = malloc(nbytes);
    memcpy(t->data, data, nbytes);
    t->nbytes = nbytes;
}

static inline void qt_sink_clear(struct tsr_tensor_sink *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->t[i].data);
    s->n = 0;
}

static tsr_status qt_emit(tsr_tensor_sink *sink, const char *name, uint32_t dtype, int n_dims,
                          const int64_t *shape, const void *data, size_t nbytes)
{
    const char *ds = dtype == TSR_DTYPE_I32 ? "I32" : dtype == TSR_DTYPE_F16 ? "F16" : "F32";
    qt_add(sink, name, ds, n_dims, shape[0], n_dims > 1 ? shape[1] : 0, data, nbytes);
    return TSR_OK;
}

/* The core's host table with emit_tensor filled in (the core's own saving
 * path lands separately). */
static inline const tsr_host *qt_host(void)
{
    static tsr_host h;
    h = *tsr__host();
    h.emit_tensor = qt_emit;
    return &h;
}

static inline int qt_write_safetensors(const char *path, const struct tsr_tensor_sink *s)
{
    char hdr[65536];
    size_t o = (size_t)snprintf(hdr, sizeof hdr, "{");
    size_t off = 0;
    for (int i = 0; i < s->n; i++) {
        const qt_tensor *t = &s->t[i];
        o += (size_t)snprintf(hdr + o, sizeof hdr - o, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                              i ? "," : "", t->name, t->dtype);
        for (int d = 0; d < t->n_dims; d++)
            o += (size_t)snprintf(hdr + o, sizeof hdr - o, "%s%lld", d ? "," : "",
                                  (long long)t->shape[d]);
        o += (size_t)snprintf(hdr + o, sizeof hdr - o, "],\"data_offsets\":[%zu,%zu]}", off,
                              off + t->nbytes);
        off += t->nbytes;
    }
    o += (size_t)snprintf(hdr + o, sizeof hdr - o, "}");
    while (o % 8)
        hdr[o++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    uint64_t n = o;
    fwrite(&n, 8, 1, f);
    fwrite(hdr, 1, o, f);
    for (int i = 0; i < s->n; i++)
        fwrite(s->t[i].data, 1, s->t[i].nbytes, f);
    return fclose(f);
}

/* The quantizer plugin `name` from the build's plugins.d. */
static inline const tsr_quantizer_vtable *qt_quantizer(const char *name)
{
    const tsr_plugin_desc *d = NULL;
    tsr__registry *reg = tsr__registry_global();
    if (!reg || tsr__registry_find(reg, TSR_PLUGIN_QUANTIZER, name, &d) != TSR_OK) {
        fprintf(stderr, "cannot load the %s quantizer: %s\n", name, tsr_last_error());
        return NULL;
    }
    return d->vtable;
}

static inline void *qt_create(const tsr_quantizer_vtable *vt, const char *json)
{
    tsr_json *j = NULL;
    void *st = NULL;
    if (tsr__json_load_buffer("qconfig", json, strlen(json), &j) != TSR_OK)
        return NULL;
    if (vt->create(qt_host(), j, &st) != TSR_OK)
        st = NULL;
    tsr__json_free(j);
    return st;
}

/* Dense f32 [N][K] of a weight through the core's reference dequantizer. */
static inline float *qt_dense(const tsr_tensor *w)
{
    int64_t K = w->ne[0], N = w->ne[1];
    float *d = malloc((size_t)(N * K) * sizeof(float));
    for (int64_t n = 0; n < N; n++)
        if (tsr__dequantize_row(w, n, d + n * K) != TSR_OK) {
            free(d);
            return NULL;
        }
    return d;
}
#endif

#ifdef QT_WITH_FIXTURES
#include <jansson.h>
#include <math.h>
/* Load a pre-quantized fixture folder through the core (config.json's
 * quantization_config picks the quantizer) and compare its logits with
 * reference.json (transformers with the dequantized weights); returns the
 * largest |difference|, or -1 on failure. */
static inline double qt_fixture_logits(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    json_error_t je;
    json_t *ref = json_load_file(path, 0, &je);
    if (!ref)
        return -1;
    json_t *jids = json_object_get(ref, "ids"), *jl = json_object_get(ref, "logits");
    size_t n = json_array_size(jids);
    int32_t ids[64];
    for (size_t i = 0; i < n && i < 64; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(jids, i));
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = dir;
    tsr_model *m = NULL;
    double worst = -1;
    if (tsr_model_load(&lo, &m) == TSR_OK) {
        size_t V = json_array_size(json_array_get(jl, 0));
        float *out = malloc(n * V * sizeof *out);
        if (tsr_model_logits(m, ids, n, out) == TSR_OK) {
            worst = 0;
            for (size_t t = 0; t < n; t++)
                for (size_t v = 0; v < V; v++) {
                    double d = fabs(out[t * V + v] -
                                    json_real_value(json_array_get(json_array_get(jl, t), v)));
                    worst = d > worst ? d : worst;
                }
        }
        free(out);
        tsr_model_destroy(m);
    } else {
        fprintf(stderr, "%s: %s\n", dir, tsr_last_error());
    }
    json_decref(ref);
    return worst;
}
#endif
