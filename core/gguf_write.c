/* core/gguf_write.c - a GGUF v3 writer (gguf.md: header, metadata key/value
 * pairs of every value type, tensor infos, padding to general.alignment
 * (32 by default), tensor data each padded to the alignment).
 *
 * Metadata and tensor infos are collected in memory (they are small); the
 * header is written by tsr__gguf_writer_begin_data, after which the data of
 * each tensor is streamed in declaration order.  Little-endian only (the
 * reader refuses big-endian files too). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "ggml_blocks.h"
#include "writers.h"

typedef struct gw_tensor {
    char *name;
    uint32_t type;
    int n_dims;
    int64_t ne[TSR_GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
} gw_tensor;

struct tsr__gguf_writer {
    char *path;
    FILE *f;
    /* encoded metadata pairs */
    uint8_t *kv;
    size_t kv_n, kv_cap;
    uint64_t n_kv;
    tsr__strmap *keys;
    char **key_names;
    size_t n_keys_alloc;
    gw_tensor *t;
    size_t n_t, cap_t;
    uint64_t data_size;
    uint32_t alignment;
    bool started;
    size_t cur;              /* tensor being written                      */
    uint64_t cur_written;    /* its bytes so far                          */
    uint64_t pos;            /* bytes of the data section written         */
    tsr_status st;           /* first failure (sticky)                    */
};

static size_t scalar_size(uint32_t type)
{
    switch (type) {
    case TSR_GGUF_UINT8: case TSR_GGUF_INT8: case TSR_GGUF_BOOL: return 1;
    case TSR_GGUF_UINT16: case TSR_GGUF_INT16: return 2;
    case TSR_GGUF_UINT32: case TSR_GGUF_INT32: case TSR_GGUF_FLOAT32: return 4;
    case TSR_GGUF_UINT64: case TSR_GGUF_INT64: case TSR_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static void put(tsr__gguf_writer *w, const void *p, size_t n)
{
    if (w->st)
        return;
    if (w->kv_n + n > w->kv_cap) {
        size_t nc = (w->kv_n + n) * 2 + 256;
        uint8_t *np = realloc(w->kv, nc);
        if (!np) {
            w->st = tsr__error(TSR_ERR_NOMEM, "out of memory writing GGUF metadata");
            return;
        }
        w->kv = np;
        w->kv_cap = nc;
    }
    memcpy(w->kv + w->kv_n, p, n);
    w->kv_n += n;
}

static void put_u32(tsr__gguf_writer *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(tsr__gguf_writer *w, uint64_t v) { put(w, &v, 8); }
static void put_str(tsr__gguf_writer *w, const char *s, size_t n)
{
    put_u64(w, n);
    put(w, s, n);
}

tsr_status tsr__gguf_writer_create(const char *path, tsr__gguf_writer **out)
{
    *out = NULL;
    tsr__gguf_writer *w = calloc(1, sizeof *w);
    if (!w)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    w->path = tsr__strdup(path);
    w->keys = tsr__strmap_create(64);
    w->alignment = TSR_GGUF_DEFAULT_ALIGNMENT;
    if (!w->path || !w->keys) {
        tsr__gguf_writer_destroy(w);
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    *out = w;
    return TSR_OK;
}

/* Start a pair: the key (checked unique) and the value type. */
static tsr_status begin_kv(tsr__gguf_writer *w, const char *key, uint32_t type)
{
    if (w->st)
        return w->st;
    if (w->started)
        return w->st = tsr__error(TSR_ERR_INVALID_ARG, "%s: metadata key '%s' added after the "
                                  "tensor data began", w->path, key);
    size_t dummy;
    if (tsr__strmap_get(w->keys, key, &dummy))
        return tsr__error(TSR_ERR_INVALID_ARG, "%s: metadata key '%s' set twice", w->path, key);
    char **nk = realloc(w->key_names, (w->n_kv + 1) * sizeof *nk);
    char *copy = tsr__strdup(key);
    if (nk)
        w->key_names = nk;
    if (!nk || !copy || !tsr__strmap_put(w->keys, copy, (size_t)w->n_kv)) {
        free(copy);
        return w->st = tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    w->key_names[w->n_kv++] = copy;
    put_str(w, key, strlen(key));
    put_u32(w, type);
    return w->st;
}

tsr_status tsr__gguf_writer_kv(tsr__gguf_writer *w, const char *key, uint32_t type,
                               const void *value)
{
    size_t sz = scalar_size(type);
    if (!sz)
        return tsr__error(TSR_ERR_INVALID_ARG, "%s: key '%s': type %u is not a scalar", w->path,
                          key, type);
    tsr_status st = begin_kv(w, key, type);
    if (st)
        return st;
    if (type == TSR_GGUF_BOOL) {
        uint8_t b = *(const uint8_t *)value ? 1 : 0;
        put(w, &b, 1);
    } else {
        put(w, value, sz);
    }
    if (!w->st && !strcmp(key, "general.alignment")) {
        uint32_t a = 0;
        if (type == TSR_GGUF_UINT32)
            memcpy(&a, value, 4);
        if (a == 0 || (a & (a - 1)))
            return w->st = tsr__error(TSR_ERR_INVALID_ARG, "%s: general.alignment must be a "
                                      "UINT32 power of two", w->path);
        w->alignment = a;
    }
    return w->st;
}

tsr_status tsr__gguf_writer_kv_u32(tsr__gguf_writer *w, const char *key, uint32_t v)
{
    return tsr__gguf_writer_kv(w, key, TSR_GGUF_UINT32, &v);
}
tsr_status tsr__gguf_writer_kv_i32(tsr__gguf_writer *w, const char *key, int32_t v)
{
    return tsr__gguf_writer_kv(w, key, TSR_GGUF_INT32, &v);
}
tsr_status tsr__gguf_writer_kv_f32(tsr__gguf_writer *w, const char *key, float v)
{
    return tsr__gguf_writer_kv(w, key, TSR_GGUF_FLOAT32, &v);
}
tsr_status tsr__gguf_writer_kv_bool(tsr__gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v;
    return tsr__gguf_writer_kv(w, key, TSR_GGUF_BOOL, &b);
}
tsr_status tsr__gguf_writer_kv_strn(tsr__gguf_writer *w, const char *key, const char *s, size_t len)
{
    tsr_status st = begin_kv(w, key, TSR_GGUF_STRING);
    if (st)
        return st;
    put_str(w, s, len);
    return w->st;
}
tsr_status tsr__gguf_writer_kv_str(tsr__gguf_writer *w, const char *key, const char *s)
{
    return tsr__gguf_writer_kv_strn(w, key, s, strlen(s));
}

tsr_status tsr__gguf_writer_kv_arr(tsr__gguf_writer *w, const char *key, uint32_t elem_type,
                                   const void *data, uint64_t n)
{
    size_t sz = scalar_size(elem_type);
    if (!sz)
        return tsr__error(TSR_ERR_INVALID_ARG, "%s: key '%s': arrays of type %u need their own "
                          "call", w->path, key, elem_type);
    tsr_status st = begin_kv(w, key, TSR_GGUF_ARRAY);
    if (st)
        return st;
    put_u32(w, elem_type);
    put_u64(w, n);
    put(w, data, (size_t)n * sz);
    return w->st;
}

tsr_status tsr__gguf_writer_kv_arr_str(tsr__gguf_writer *w, const char *key,
                                       const char *const *s, const size_t *lens, uint64_t n)
{
    tsr_status st = begin_kv(w, key, TSR_GGUF_ARRAY);
    if (st)
        return st;
    put_u32(w, TSR_GGUF_STRING);
    put_u64(w, n);
    for (uint64_t i = 0; i < n; i++)
        put_str(w, s[i], lens ? lens[i] : strlen(s[i]));
    return w->st;
}

tsr_status tsr__gguf_writer_tensor(tsr__gguf_writer *w, const char *name, uint32_t ggml_type,
                                   int n_dims, const int64_t *ne)
{
    if (w->st)
        return w->st;
    if (w->started)
        return w->st = tsr__error(TSR_ERR_INVALID_ARG, "%s: tensor '%s' declared after the "
                                  "tensor data began", w->path, name);
    if (n_dims < 1 || n_dims > TSR_GGUF_MAX_DIMS)
        return tsr__error(TSR_ERR_INVALID_ARG, "%s: tensor '%s': %d dimensions", w->path, name,
                          n_dims);
    size_t row = tsr__ggml_row_bytes(ggml_type, ne[0]);
    if (!row)
        return tsr__error(TSR_ERR_INVALID_ARG, "%s: tensor '%s': rows of %lld values cannot be "
                          "stored as ggml type %u", w->path, name, (long long)ne[0], ggml_type);
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return tsr__error(TSR_ERR_INVALID_ARG, "%s: tensor '%s' declared twice", w->path, name);
    if (w->n_t == w->cap_t) {
        size_t nc = w->cap_t ? w->cap_t * 2 : 64;
        gw_tensor *nt = realloc(w->t, nc * sizeof *nt);
        if (!nt)
            return w->st = tsr__error(TSR_ERR_NOMEM, "out of memory");
        w->t = nt;
        w->cap_t = nc;
    }
    gw_tensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = tsr__strdup(name);
    if (!t->name)
        return w->st = tsr__error(TSR_ERR_NOMEM, "out of memory");
    t->type = ggml_type;
    t->n_dims = n_dims;
    uint64_t rows = 1;
    for (int d = 0; d < TSR_GGUF_MAX_DIMS; d++) {
        t->ne[d] = d < n_dims ? ne[d] : 1;
        if (d > 0)
            rows *= (uint64_t)t->ne[d];
    }
    t->nbytes = (uint64_t)row * rows;
    w->n_t++;
    return TSR_OK;
}

static tsr_status fwrite_chk(tsr__gguf_writer *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n)
        return w->st = tsr__error(TSR_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    return TSR_OK;
}

static tsr_status pad_to(tsr__gguf_writer *w, uint64_t pos)
{
    static const uint8_t zeros[64];
    uint64_t pad = (w->alignment - pos % w->alignment) % w->alignment;
    while (pad) {
        size_t k = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        tsr_status st = fwrite_chk(w, zeros, k);
        if (st)
            return st;
        pad -= k;
    }
    return TSR_OK;
}

tsr_status tsr__gguf_writer_begin_data(tsr__gguf_writer *w)
{
    if (w->st)
        return w->st;
    /* offsets of the data section */
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        off += (w->alignment - off % w->alignment) % w->alignment;
        w->t[i].offset = off;
        off += w->t[i].nbytes;
    }
    w->data_size = off;
    /* header: magic, version, counts; then metadata, then tensor infos */
    size_t saved = w->kv_n;
    put(w, "GGUF", 4);
    put_u32(w, 3);
    put_u64(w, (uint64_t)w->n_t);
    put_u64(w, w->n_kv);
    size_t hdr = w->kv_n - saved;
    if (w->st)
        return w->st;
    w->f = fopen(w->path, "wb");
    if (!w->f)
        return w->st = tsr__error(TSR_ERR_IO, "%s: cannot create: %s", w->path, strerror(errno));
    if (fwrite_chk(w, w->kv + saved, hdr) || fwrite_chk(w, w->kv, saved))
        return w->st;
    w->kv_n = saved;
    uint64_t pos = 24 + saved;
    for (size_t i = 0; i < w->n_t; i++) {
        const gw_tensor *t = &w->t[i];
        size_t ln = strlen(t->name);
        uint64_t l64 = ln;
        uint32_t nd = (uint32_t)t->n_dims;
        if (fwrite_chk(w, &l64, 8) || fwrite_chk(w, t->name, ln) || fwrite_chk(w, &nd, 4))
            return w->st;
        for (int d = 0; d < t->n_dims; d++) {
            uint64_t v = (uint64_t)t->ne[d];
            if (fwrite_chk(w, &v, 8))
                return w->st;
        }
        if (fwrite_chk(w, &t->type, 4) || fwrite_chk(w, &t->offset, 8))
            return w->st;
        pos += 8 + ln + 4 + 8u * (uint64_t)t->n_dims + 4 + 8;
    }
    if (pad_to(w, pos))
        return w->st;
    w->started = true;
    w->cur = 0;
    w->cur_written = 0;
    w->pos = 0;
    return TSR_OK;
}

tsr_status tsr__gguf_writer_data(tsr__gguf_writer *w, const void *data, size_t nbytes, bool final)
{
    if (w->st)
        return w->st;
    if (!w->started || w->cur >= w->n_t)
        return w->st = tsr__error(TSR_ERR_INVALID_ARG, "%s: more tensor data than declared "
                                  "tensors", w->path);
    gw_tensor *t = &w->t[w->cur];
    if (w->cur_written == 0 && pad_to(w, w->pos))
        return w->st;
    if (w->cur_written == 0)
        w->pos = t->offset;
    if (w->cur_written + nbytes > t->nbytes || (final && w->cur_written + nbytes != t->nbytes))
        return w->st = tsr__error(TSR_ERR_INVALID_ARG, "%s: tensor '%s' needs %llu bytes, got "
                                  "%llu", w->path, t->name, (unsigned long long)t->nbytes,
                                  (unsigned long long)(w->cur_written + nbytes));
    if (fwrite_chk(w, data, nbytes))
        return w->st;
    w->cur_written += nbytes;
    w->pos += nbytes;
    if (final) {
        w->cur++;
        w->cur_written = 0;
    }
    return TSR_OK;
}

tsr_status tsr__gguf_writer_finish(tsr__gguf_writer *w)
{
    if (w->st)
        return w->st;
    if (!w->started && tsr__gguf_writer_begin_data(w))
        return w->st;
    if (w->cur != w->n_t)
        return w->st = tsr__error(TSR_ERR_INVALID_ARG, "%s: tensor '%s' was declared but its "
                                  "data was not written", w->path, w->t[w->cur].name);
    int rc = fclose(w->f);
    w->f = NULL;
    if (rc != 0)
        return w->st = tsr__error(TSR_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    return TSR_OK;
}

void tsr__gguf_writer_destroy(tsr__gguf_writer *w)
{
    if (!w)
        return;
    if (w->f)
        fclose(w->f);
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    for (uint64_t i = 0; i < w->n_kv; i++)
        free(w->key_names[i]);
    free(w->key_names);
    free(w->t);
    free(w->kv);
    tsr__strmap_destroy(w->keys);
    free(w->path);
    free(w);
}
