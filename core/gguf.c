/* core/gguf.c - GGUF v2/v3 reader (see gguf.h).
 *
 * Layout (gguf.md): "GGUF" | u32 version | u64 n_tensors | u64 n_kv |
 * n_kv x (string key, u32 type, value) | n_tensors x (string name, u32 n_dims,
 * u64 ne[n_dims], u32 ggml type, u64 offset) | padding to general.alignment |
 * tensor data.  A string is u64 length + bytes; an array is u32 element type
 * + u64 count + elements.  Everything is little-endian.
 *
 * The reader walks the header once with bounds checks on every read, keeps
 * pointers into the mmap, and indexes variable-size array elements (string
 * and nested arrays) so that element access is O(1).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "gguf.h"
#include "ggml_blocks.h"

#define MAX_ARRAY_DEPTH 8

/* Index of an array whose elements have variable size. */
struct tsr__gguf_arr {
    uint64_t *offsets;                 /* element i starts at data + offsets[i] */
    const struct tsr__gguf_arr **children; /* ARRAY elements: their own index */
    struct tsr__gguf_arr *next;        /* all indexes of the file, for freeing */
};

struct tsr__gguf {
    char *path;
    tsr__mmap map;
    uint32_t version;
    size_t alignment, data_offset;
    size_t n_kv;
    char **keys;
    tsr__gguf_value *vals;
    uint32_t *kv_hash;        /* open addressing: index + 1, 0 = empty */
    size_t kv_cap;
    size_t n_tensors;
    tsr__gguf_tensor *tensors;
    uint32_t *t_hash;
    size_t t_cap;
    size_t *t_off_at;         /* byte position of each tensor's offset field */
    struct tsr__gguf_arr *arrs;
};

/* ---------------------------------------------------------------- reading */

typedef struct rd {
    const uint8_t *b;
    size_t size, pos;
    const char *path;
} rd;

/* "<file>: <message> (at byte N)" */
TSR_PRINTF(3, 4)
static tsr_status ferr(const rd *r, size_t at, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tsr__error(TSR_ERR_FORMAT, "%s: %s (at byte %zu)", r->path, msg, at);
}

static size_t left(const rd *r) { return r->size - r->pos; }

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get64(const uint8_t *p) { return get32(p) | ((uint64_t)get32(p + 4) << 32); }

/* Read a u32/u64 named `what`; a truncated file is an error naming it. */
static tsr_status rd_u32(rd *r, uint32_t *v, const char *what)
{
    if (left(r) < 4)
        return ferr(r, r->pos, "the file ends inside %s", what);
    *v = get32(r->b + r->pos);
    r->pos += 4;
    return TSR_OK;
}

static tsr_status rd_u64(rd *r, uint64_t *v, const char *what)
{
    if (left(r) < 8)
        return ferr(r, r->pos, "the file ends inside %s", what);
    *v = get64(r->b + r->pos);
    r->pos += 8;
    return TSR_OK;
}

/* A string: u64 length + bytes.  *s points into the file. */
static tsr_status rd_str(rd *r, const uint8_t **s, uint64_t *len, const char *what)
{
    size_t at = r->pos;
    tsr_status st = rd_u64(r, len, what);
    if (st)
        return st;
    if (*len > left(r))
        return ferr(r, at, "%s: string length %llu runs past the end of the file (%zu bytes left)",
                    what, (unsigned long long)*len, left(r));
    *s = r->b + r->pos;
    r->pos += (size_t)*len;
    return TSR_OK;
}

/* A NUL-terminated copy of a key or tensor name. */
static tsr_status rd_name(rd *r, char **out, const char *what)
{
    const uint8_t *s = NULL;
    uint64_t len = 0;
    size_t at = r->pos;
    tsr_status st = rd_str(r, &s, &len, what);
    if (st)
        return st;
    if (len == 0)
        return ferr(r, at, "%s is empty", what);
    if (memchr(s, 0, (size_t)len))
        return ferr(r, at, "%s contains a NUL byte", what);
    *out = malloc((size_t)len + 1);
    if (!*out)
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory reading %s", r->path, what);
    memcpy(*out, s, (size_t)len);
    (*out)[len] = 0;
    return TSR_OK;
}

/* Bytes of a fixed-size value type, 0 for STRING/ARRAY/unknown. */
static size_t type_size(uint32_t t)
{
    static const uint8_t sz[TSR_GGUF_TYPE_COUNT_] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < TSR_GGUF_TYPE_COUNT_ ? sz[t] : 0;
}

const char *tsr__gguf_type_name(uint32_t type)
{
    static const char *const n[TSR_GGUF_TYPE_COUNT_] = {
        "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
        "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};
    return type < TSR_GGUF_TYPE_COUNT_ ? n[type] : "unknown";
}

/* ---------------------------------------------------------------- values */

static tsr_status parse_value(tsr__gguf *g, rd *r, uint32_t type, tsr__gguf_value *v,
                              const char *what, int depth);

/* Elements of an array of strings or arrays: index their offsets. */
static tsr_status index_array(tsr__gguf *g, rd *r, tsr__gguf_value *v, const char *what, int depth)
{
    struct tsr__gguf_arr *a = calloc(1, sizeof *a);
    if (!a)
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory indexing %s", r->path, what);
    a->next = g->arrs;
    g->arrs = a;
    v->arr_ = a;
    a->offsets = malloc((size_t)(v->len ? v->len : 1) * sizeof *a->offsets);
    if (v->elem_type == TSR_GGUF_ARRAY)
        a->children = calloc((size_t)(v->len ? v->len : 1), sizeof *a->children);
    if (!a->offsets || (v->elem_type == TSR_GGUF_ARRAY && !a->children))
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory indexing %s", r->path, what);
    const uint8_t *base = v->data;
    char sub[320];
    for (uint64_t i = 0; i < v->len; i++) {
        a->offsets[i] = (uint64_t)(r->b + r->pos - base);
        snprintf(sub, sizeof sub, "%s element %llu", what, (unsigned long long)i);
        tsr__gguf_value e = {0};
        tsr_status st = parse_value(g, r, v->elem_type, &e, sub, depth + 1);
        if (st)
            return st;
        if (a->children)
            a->children[i] = e.arr_;
    }
    return TSR_OK;
}

static tsr_status parse_array(tsr__gguf *g, rd *r, tsr__gguf_value *v, const char *what, int depth)
{
    size_t at = r->pos;
    uint32_t et = 0;
    uint64_t n = 0;
    tsr_status st = rd_u32(r, &et, what);
    if (!st)
        st = rd_u64(r, &n, what);
    if (st)
        return st;
    if (et >= TSR_GGUF_TYPE_COUNT_)
        return ferr(r, at, "%s: unknown array element type %u", what, et);
    if (depth >= MAX_ARRAY_DEPTH)
        return ferr(r, at, "%s: arrays nested deeper than %d", what, MAX_ARRAY_DEPTH);
    /* the smallest encoding of one element bounds the count */
    size_t min = et == TSR_GGUF_STRING ? 8 : et == TSR_GGUF_ARRAY ? 12 : type_size(et);
    if (n > left(r) / min)
        return ferr(r, at + 4, "%s: array count %llu of %s is more than the file can hold",
                    what, (unsigned long long)n, tsr__gguf_type_name(et));
    v->elem_type = et;
    v->len = n;
    v->data = r->b + r->pos;
    if (et == TSR_GGUF_STRING || et == TSR_GGUF_ARRAY)
        return index_array(g, r, v, what, depth);
    if (et == TSR_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (r->b[r->pos + i] > 1)
                return ferr(r, r->pos + (size_t)i, "%s element %llu: bool value %u is not 0 or 1",
                            what, (unsigned long long)i, r->b[r->pos + i]);
    r->pos += (size_t)n * min;
    return TSR_OK;
}

static tsr_status parse_value(tsr__gguf *g, rd *r, uint32_t type, tsr__gguf_value *v,
                              const char *what, int depth)
{
    memset(v, 0, sizeof *v);
    v->type = type;
    if (type == TSR_GGUF_STRING) {
        const uint8_t *s = NULL;
        tsr_status st = rd_str(r, &s, &v->len, what);
        v->data = s;
        return st;
    }
    if (type == TSR_GGUF_ARRAY)
        return parse_array(g, r, v, what, depth);
    size_t sz = type_size(type);
    if (left(r) < sz)
        return ferr(r, r->pos, "the file ends inside %s", what);
    if (type == TSR_GGUF_BOOL && r->b[r->pos] > 1)
        return ferr(r, r->pos, "%s: bool value %u is not 0 or 1", what, r->b[r->pos]);
    v->data = r->b + r->pos;
    v->len = 1;
    r->pos += sz;
    return TSR_OK;
}

/* ---------------------------------------------------------------- hashing */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static size_t table_cap(size_t n)
{
    size_t c = 16;
    while (c < 2 * n)
        c *= 2;
    return c;
}

/* Insert name #i; returns the index of an earlier equal name, or -1. */
static long hash_insert(uint32_t *tab, size_t cap, const char *const *names, size_t stride,
                        const char *name, size_t i)
{
    size_t s = (size_t)hash_str(name) & (cap - 1);
    while (tab[s]) {
        const char *other = *(const char *const *)((const char *)names + (tab[s] - 1) * stride);
        if (strcmp(other, name) == 0)
            return (long)(tab[s] - 1);
        s = (s + 1) & (cap - 1);
    }
    tab[s] = (uint32_t)(i + 1);
    return -1;
}

static long hash_find(const uint32_t *tab, size_t cap, const char *const *names, size_t stride,
                      const char *name)
{
    if (!tab)
        return -1;
    size_t s = (size_t)hash_str(name) & (cap - 1);
    while (tab[s]) {
        const char *other = *(const char *const *)((const char *)names + (tab[s] - 1) * stride);
        if (strcmp(other, name) == 0)
            return (long)(tab[s] - 1);
        s = (s + 1) & (cap - 1);
    }
    return -1;
}

/* ---------------------------------------------------------------- header */

static tsr_status parse_kvs(tsr__gguf *g, rd *r, uint64_t n)
{
    g->keys = calloc((size_t)(n ? n : 1), sizeof *g->keys);
    g->vals = calloc((size_t)(n ? n : 1), sizeof *g->vals);
    g->kv_cap = table_cap((size_t)n);
    g->kv_hash = calloc(g->kv_cap, sizeof *g->kv_hash);
    if (!g->keys || !g->vals || !g->kv_hash)
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory for %llu metadata keys", r->path,
                          (unsigned long long)n);
    char what[320];
    for (size_t i = 0; i < n; i++) {
        size_t at = r->pos;
        snprintf(what, sizeof what, "the key of metadata entry %zu", i);
        tsr_status st = rd_name(r, &g->keys[i], what);
        if (st)
            return st;
        g->n_kv = i + 1;
        const char *key = g->keys[i];
        long dup = hash_insert(g->kv_hash, g->kv_cap, (const char *const *)g->keys, sizeof(char *), key, i);
        if (dup >= 0)
            return ferr(r, at, "duplicate metadata key '%s' (entries %ld and %zu)", key, dup, i);
        uint32_t type = 0;
        size_t tat = r->pos;
        snprintf(what, sizeof what, "the type of key '%s'", key);
        if ((st = rd_u32(r, &type, what)))
            return st;
        if (type >= TSR_GGUF_TYPE_COUNT_)
            return ferr(r, tat, "key '%s': unknown value type %u", key, type);
        snprintf(what, sizeof what, "the value of key '%s'", key);
        if ((st = parse_value(g, r, type, &g->vals[i], what, 0)))
            return st;
    }
    return TSR_OK;
}

static tsr_status parse_alignment(tsr__gguf *g, rd *r)
{
    g->alignment = TSR_GGUF_DEFAULT_ALIGNMENT;
    long i = hash_find(g->kv_hash, g->kv_cap, (const char *const *)g->keys, sizeof(char *),
                       "general.alignment");
    if (i < 0)
        return TSR_OK;
    const tsr__gguf_value *v = &g->vals[i];
    size_t at = (size_t)((const uint8_t *)v->data - r->b);
    if (v->type != TSR_GGUF_UINT32)
        return ferr(r, at, "key 'general.alignment' is %s, not UINT32", tsr__gguf_type_name(v->type));
    uint32_t a = get32(v->data);
    if (a == 0 || (a & (a - 1)))
        return ferr(r, at, "key 'general.alignment' = %u is not a power of two", a);
    g->alignment = a;
    return TSR_OK;
}

static tsr_status parse_tensor_info(tsr__gguf *g, rd *r, size_t i)
{
    tsr__gguf_tensor *t = &g->tensors[i];
    char what[320];
    size_t at = r->pos;
    snprintf(what, sizeof what, "the name of tensor %zu", i);
    tsr_status st = rd_name(r, (char **)&t->name, what);
    if (st)
        return st;
    g->n_tensors = i + 1;
    long dup = hash_insert(g->t_hash, g->t_cap, (const char *const *)&g->tensors[0].name,
                           sizeof *t, t->name, i);
    if (dup >= 0)
        return ferr(r, at, "duplicate tensor name '%s' (tensors %ld and %zu)", t->name, dup, i);
    uint32_t nd = 0;
    at = r->pos;
    snprintf(what, sizeof what, "the n_dims of tensor '%s'", t->name);
    if ((st = rd_u32(r, &nd, what)))
        return st;
    if (nd > TSR_GGUF_MAX_DIMS)
        return ferr(r, at, "tensor '%s': n_dims %u is more than %d", t->name, nd, TSR_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    int64_t n = 1;
    for (int d = 0; d < TSR_GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        at = r->pos;
        if (d < t->n_dims) {
            snprintf(what, sizeof what, "the dims of tensor '%s'", t->name);
            if ((st = rd_u64(r, &ne, what)))
                return st;
            if (ne == 0 || ne > (uint64_t)INT64_MAX)
                return ferr(r, at, "tensor '%s': dim %d = %lld is not positive", t->name, d, (long long)ne);
            if ((uint64_t)n > (uint64_t)INT64_MAX / ne)
                return ferr(r, at, "tensor '%s': the element count overflows at dim %d", t->name, d);
        }
        t->ne[d] = (int64_t)ne;
        n *= (int64_t)ne;
    }
    t->n_elements = n;
    at = r->pos;
    snprintf(what, sizeof what, "the type of tensor '%s'", t->name);
    if ((st = rd_u32(r, &t->ggml_type, what)))
        return st;
    const tsr__ggml_type_info *ti = tsr__ggml_type(t->ggml_type);
    if (!ti)
        return ferr(r, at, "tensor '%s': unknown ggml type %u", t->name, t->ggml_type);
    if (t->ne[0] % ti->block_elems)
        return ferr(r, at, "tensor '%s': row of %lld values is not a multiple of the %s block (%u)",
                    t->name, (long long)t->ne[0], ti->name, ti->block_elems);
    uint64_t blocks = (uint64_t)(n / ti->block_elems);
    if (blocks > SIZE_MAX / ti->block_bytes)
        return ferr(r, at, "tensor '%s': its byte size overflows", t->name);
    t->nbytes = (size_t)blocks * ti->block_bytes;
    snprintf(what, sizeof what, "the offset of tensor '%s'", t->name);
    g->t_off_at[i] = r->pos;
    return rd_u64(r, &t->offset, what);
}

typedef struct span { uint64_t off; size_t n, i; } span;
static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off ? 1 : (x->i < y->i ? -1 : 1);
}

/* Offsets aligned, data inside the file, no two tensors overlapping. */
static tsr_status check_tensor_data(tsr__gguf *g, rd *r)
{
    span *s = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof *s);
    if (!s)
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory", r->path);
    tsr_status st = TSR_OK;
    size_t avail = r->size > g->data_offset ? r->size - g->data_offset : 0;
    for (size_t i = 0; i < g->n_tensors && !st; i++) {
        tsr__gguf_tensor *t = &g->tensors[i];
        size_t at = g->t_off_at[i];
        if (t->offset % g->alignment)
            st = ferr(r, at, "tensor '%s': offset %llu is not a multiple of the alignment %zu",
                      t->name, (unsigned long long)t->offset, g->alignment);
        else if (t->offset > avail || t->nbytes > avail - t->offset)
            st = ferr(r, at, "tensor '%s': data [%llu, +%zu) past the end of the file "
                      "(data section of %zu bytes)", t->name, (unsigned long long)t->offset, t->nbytes, avail);
        else
            t->data = r->b + g->data_offset + t->offset;
        s[i] = (span){t->offset, t->nbytes, i};
    }
    if (!st && g->n_tensors > 1) {
        qsort(s, g->n_tensors, sizeof *s, span_cmp);
        for (size_t k = 1; k < g->n_tensors && !st; k++)
            if (s[k - 1].off + s[k - 1].n > s[k].off)
                st = ferr(r, g->t_off_at[s[k].i], "tensors '%s' and '%s' overlap (offsets %llu+%zu and %llu)",
                          g->tensors[s[k - 1].i].name, g->tensors[s[k].i].name,
                          (unsigned long long)s[k - 1].off, s[k - 1].n, (unsigned long long)s[k].off);
    }
    free(s);
    return st;
}

static tsr_status parse(tsr__gguf *g, rd *r)
{
    if (r->size < 4 || memcmp(r->b, "GGUF", 4) != 0) {
        uint32_t m = r->size >= 4 ? get32(r->b) : 0;
        return ferr(r, 0, "not a GGUF file: bad magic 0x%08x (expected \"GGUF\")", m);
    }
    r->pos = 4;
    tsr_status st = rd_u32(r, &g->version, "the version");
    if (st)
        return st;
    if ((g->version & 0xFFFF) == 0 && g->version)
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s: a big-endian GGUF file (version field 0x%08x at byte 4);"
                          " only little-endian files are supported", r->path, g->version);
    if (g->version == 1)
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s: GGUF version 1 (at byte 4) is not supported: "
                          "convert the file again with a current llama.cpp (versions 2 and 3 are read)", r->path);
    if (g->version != 2 && g->version != 3)
        return tsr__error(g->version == 0 ? TSR_ERR_FORMAT : TSR_ERR_UNSUPPORTED,
                          "%s: unsupported GGUF version %u (at byte 4); versions 2 and 3 are read",
                          r->path, g->version);
    uint64_t nt = 0, nkv = 0;
    if ((st = rd_u64(r, &nt, "the tensor count")) || (st = rd_u64(r, &nkv, "the metadata key/value count")))
        return st;
    /* smallest encodings: a kv is 8+1 (key) + 4 + 1; a tensor info 8+1 + 4 + 4 + 8 */
    if (nkv > left(r) / 14)
        return ferr(r, 16, "metadata key/value count %llu is more than the file can hold",
                    (unsigned long long)nkv);
    if (nt > left(r) / 25)
        return ferr(r, 8, "tensor count %llu is more than the file can hold", (unsigned long long)nt);
    if ((st = parse_kvs(g, r, nkv)) || (st = parse_alignment(g, r)))
        return st;
    if (nt > left(r) / 25)
        return ferr(r, 8, "tensor count %llu is more than the rest of the file can hold",
                    (unsigned long long)nt);
    g->tensors = calloc((size_t)(nt ? nt : 1), sizeof *g->tensors);
    g->t_cap = table_cap((size_t)nt);
    g->t_hash = calloc(g->t_cap, sizeof *g->t_hash);
    g->t_off_at = calloc((size_t)(nt ? nt : 1), sizeof *g->t_off_at);
    if (!g->tensors || !g->t_hash || !g->t_off_at)
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory for %llu tensors", r->path, (unsigned long long)nt);
    for (size_t i = 0; i < nt; i++)
        if ((st = parse_tensor_info(g, r, i)))
            return st;
    g->data_offset = (r->pos + g->alignment - 1) / g->alignment * g->alignment;
    return check_tensor_data(g, r);
}

tsr_status tsr__gguf_open(const char *path, tsr__gguf **out)
{
    *out = NULL;
    tsr__gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = tsr__strdup(path))) {
        free(g);
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory", path);
    }
    tsr_status st = tsr__mmap_open(path, &g->map);
    if (!st) {
        rd r = {g->map.data, g->map.size, 0, g->path};
        st = parse(g, &r);
    }
    if (st) {
        tsr__gguf_close(g);
        return st;
    }
    *out = g;
    return TSR_OK;
}

void tsr__gguf_close(tsr__gguf *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_kv; i++)
        free(g->keys[i]);
    for (size_t i = 0; i < g->n_tensors; i++)
        free((char *)g->tensors[i].name);
    while (g->arrs) {
        struct tsr__gguf_arr *a = g->arrs;
        g->arrs = a->next;
        free(a->offsets);
        free((void *)a->children);
        free(a);
    }
    free(g->keys);
    free(g->vals);
    free(g->kv_hash);
    free(g->tensors);
    free(g->t_hash);
    free(g->t_off_at);
    tsr__mmap_close(&g->map);
    tsr__free(g->path);
    free(g);
}

/* ---------------------------------------------------------------- getters */

const char *tsr__gguf_path(const tsr__gguf *g) { return g->path; }
uint32_t tsr__gguf_version(const tsr__gguf *g) { return g->version; }
size_t tsr__gguf_alignment(const tsr__gguf *g) { return g->alignment; }
size_t tsr__gguf_data_offset(const tsr__gguf *g) { return g->data_offset; }
const void *tsr__gguf_file_data(const tsr__gguf *g, size_t *size)
{
    if (size)
        *size = g->map.size;
    return g->map.data;
}

size_t tsr__gguf_kv_count(const tsr__gguf *g) { return g->n_kv; }
const char *tsr__gguf_kv_key(const tsr__gguf *g, size_t i) { return i < g->n_kv ? g->keys[i] : NULL; }
const tsr__gguf_value *tsr__gguf_kv_value(const tsr__gguf *g, size_t i)
{
    return i < g->n_kv ? &g->vals[i] : NULL;
}

const tsr__gguf_value *tsr__gguf_find(const tsr__gguf *g, const char *key)
{
    long i = hash_find(g->kv_hash, g->kv_cap, (const char *const *)g->keys, sizeof(char *), key);
    return i < 0 ? NULL : &g->vals[i];
}

size_t tsr__gguf_tensor_count(const tsr__gguf *g) { return g->n_tensors; }
const tsr__gguf_tensor *tsr__gguf_tensor_at(const tsr__gguf *g, size_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const tsr__gguf_tensor *tsr__gguf_find_tensor(const tsr__gguf *g, const char *name)
{
    if (!g->n_tensors)
        return NULL;
    long i = hash_find(g->t_hash, g->t_cap, (const char *const *)&g->tensors[0].name,
                       sizeof(tsr__gguf_tensor), name);
    return i < 0 ? NULL : &g->tensors[i];
}

/* Conversions.  `who` names the value in messages ("file: key 'k'"). */
static tsr_status conv_err(const char *who, const tsr__gguf_value *v, const char *want)
{
    return tsr__error(TSR_ERR_FORMAT, "%s is %s, not %s", who, tsr__gguf_type_name(v->type), want);
}

static bool as_int(const tsr__gguf_value *v, int64_t *i, uint64_t *u, bool *is_unsigned)
{
    const uint8_t *p = v->data;
    *is_unsigned = false;
    switch (v->type) {
    case TSR_GGUF_UINT8: *i = p[0]; return true;
    case TSR_GGUF_INT8: *i = (int8_t)p[0]; return true;
    case TSR_GGUF_UINT16: *i = (uint16_t)(p[0] | p[1] << 8); return true;
    case TSR_GGUF_INT16: *i = (int16_t)(uint16_t)(p[0] | p[1] << 8); return true;
    case TSR_GGUF_UINT32: *i = get32(p); return true;
    case TSR_GGUF_INT32: *i = (int32_t)get32(p); return true;
    case TSR_GGUF_INT64: *i = (int64_t)get64(p); return true;
    case TSR_GGUF_UINT64: *u = get64(p); *is_unsigned = true; return true;
    default: return false;
    }
}

static tsr_status v_int(const char *who, const tsr__gguf_value *v, int64_t *out)
{
    int64_t i = 0;
    uint64_t u = 0;
    bool uns;
    if (!as_int(v, &i, &u, &uns))
        return conv_err(who, v, "an integer");
    if (uns && u > (uint64_t)INT64_MAX)
        return tsr__error(TSR_ERR_FORMAT, "%s = %llu does not fit a signed 64-bit integer", who,
                          (unsigned long long)u);
    *out = uns ? (int64_t)u : i;
    return TSR_OK;
}

static tsr_status v_uint(const char *who, const tsr__gguf_value *v, uint64_t *out)
{
    int64_t i = 0;
    uint64_t u = 0;
    bool uns;
    if (!as_int(v, &i, &u, &uns))
        return conv_err(who, v, "an integer");
    if (!uns && i < 0)
        return tsr__error(TSR_ERR_FORMAT, "%s = %lld is negative", who, (long long)i);
    *out = uns ? u : (uint64_t)i;
    return TSR_OK;
}

static tsr_status v_float(const char *who, const tsr__gguf_value *v, double *out)
{
    if (v->type == TSR_GGUF_FLOAT32) {
        uint32_t b = get32(v->data);
        float f;
        memcpy(&f, &b, 4);
        *out = f;
        return TSR_OK;
    }
    if (v->type == TSR_GGUF_FLOAT64) {
        uint64_t b = get64(v->data);
        memcpy(out, &b, 8);
        return TSR_OK;
    }
    int64_t i = 0;
    uint64_t u = 0;
    bool uns;
    if (!as_int(v, &i, &u, &uns))
        return conv_err(who, v, "a number");
    *out = uns ? (double)u : (double)i;
    return TSR_OK;
}

static tsr_status v_bool(const char *who, const tsr__gguf_value *v, bool *out)
{
    if (v->type != TSR_GGUF_BOOL)
        return conv_err(who, v, "BOOL");
    *out = *(const uint8_t *)v->data != 0;
    return TSR_OK;
}

static tsr_status v_str(const char *who, const tsr__gguf_value *v, const char **s, size_t *len)
{
    if (v->type != TSR_GGUF_STRING)
        return conv_err(who, v, "STRING");
    *s = v->data;
    if (len)
        *len = (size_t)v->len;
    return TSR_OK;
}

tsr_status tsr__gguf_value_int(const tsr__gguf_value *v, int64_t *out) { return v_int("value", v, out); }
tsr_status tsr__gguf_value_uint(const tsr__gguf_value *v, uint64_t *out) { return v_uint("value", v, out); }
tsr_status tsr__gguf_value_float(const tsr__gguf_value *v, double *out) { return v_float("value", v, out); }
tsr_status tsr__gguf_value_bool(const tsr__gguf_value *v, bool *out) { return v_bool("value", v, out); }
tsr_status tsr__gguf_value_str(const tsr__gguf_value *v, const char **s, size_t *len)
{
    return v_str("value", v, s, len);
}

/* Look up `key` and name it for messages. */
static const tsr__gguf_value *lookup(const tsr__gguf *g, const char *key, char *who, size_t n,
                                     tsr_status *st)
{
    snprintf(who, n, "%s: key '%s'", g->path, key);
    const tsr__gguf_value *v = tsr__gguf_find(g, key);
    *st = v ? TSR_OK : tsr__error(TSR_ERR_NOT_FOUND, "%s: no metadata key '%s'", g->path, key);
    return v;
}

#define KEY_GETTER(fn, conv, T)                                            \
    tsr_status fn(const tsr__gguf *g, const char *key, T *out)            \
    {                                                                      \
        char who[512];                                                     \
        tsr_status st;                                                     \
        const tsr__gguf_value *v = lookup(g, key, who, sizeof who, &st);   \
        return v ? conv(who, v, out) : st;                                 \
    }
KEY_GETTER(tsr__gguf_get_int, v_int, int64_t)
KEY_GETTER(tsr__gguf_get_uint, v_uint, uint64_t)
KEY_GETTER(tsr__gguf_get_float, v_float, double)
KEY_GETTER(tsr__gguf_get_bool, v_bool, bool)

tsr_status tsr__gguf_get_str(const tsr__gguf *g, const char *key, const char **s, size_t *len)
{
    char who[512];
    tsr_status st;
    const tsr__gguf_value *v = lookup(g, key, who, sizeof who, &st);
    return v ? v_str(who, v, s, len) : st;
}

tsr_status tsr__gguf_get_arr(const tsr__gguf *g, const char *key, const tsr__gguf_value **arr)
{
    char who[512];
    tsr_status st;
    const tsr__gguf_value *v = lookup(g, key, who, sizeof who, &st);
    if (!v)
        return st;
    if (v->type != TSR_GGUF_ARRAY)
        return conv_err(who, v, "ARRAY");
    *arr = v;
    return TSR_OK;
}

bool tsr__gguf_str_eq(const tsr__gguf *g, const char *key, const char *s)
{
    const tsr__gguf_value *v = tsr__gguf_find(g, key);
    return v && v->type == TSR_GGUF_STRING && v->len == strlen(s) && memcmp(v->data, s, v->len) == 0;
}

tsr_status tsr__gguf_arr_at(const tsr__gguf_value *arr, uint64_t i, tsr__gguf_value *out)
{
    if (!arr || arr->type != TSR_GGUF_ARRAY)
        return tsr__error(TSR_ERR_INVALID_ARG, "GGUF value is not an array");
    if (i >= arr->len)
        return tsr__error(TSR_ERR_INVALID_ARG, "GGUF array index %llu out of range (%llu elements)",
                          (unsigned long long)i, (unsigned long long)arr->len);
    const uint8_t *base = arr->data;
    memset(out, 0, sizeof *out);
    out->type = arr->elem_type;
    if (arr->elem_type == TSR_GGUF_STRING) {
        const uint8_t *p = base + arr->arr_->offsets[i];
        out->len = get64(p);
        out->data = p + 8;
    } else if (arr->elem_type == TSR_GGUF_ARRAY) {
        const uint8_t *p = base + arr->arr_->offsets[i];
        out->elem_type = get32(p);
        out->len = get64(p + 4);
        out->data = p + 12;
        out->arr_ = arr->arr_->children[i];
    } else {
        out->data = base + i * type_size(arr->elem_type);
        out->len = 1;
    }
    return TSR_OK;
}

tsr_status tsr__gguf_arr_str(const tsr__gguf_value *arr, uint64_t i, const char **s, size_t *len)
{
    tsr__gguf_value e = {0};
    tsr_status st = tsr__gguf_arr_at(arr, i, &e);
    return st ? st : v_str("array element", &e, s, len);
}
