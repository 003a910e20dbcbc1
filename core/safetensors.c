/* core/safetensors.c - a model's weights from .safetensors files.
 *
 * A tsr_checkpoint is the union of one or more mmap'd .safetensors files:
 * a single model.safetensors, or the shards that model.safetensors.index.json
 * names.  Tensors point into the maps (zero-copy) and live until
 * tsr__checkpoint_close.  Every file is validated against the format's
 * specification (https://github.com/huggingface/safetensors, "Format"):
 *
 *   [8 bytes: N, little-endian u64][N bytes: JSON header][data section]
 *
 * The header maps tensor names to {"dtype", "shape", "data_offsets":
 * [begin, end]} (offsets relative to the data section), plus an optional
 * "__metadata__" string->string map.  Tensors must tile the data section
 * exactly: no overlap, no holes.  Data pointers are only as aligned as the
 * file makes them (writers pad the header to 8 bytes, but nothing requires
 * it): read elements with memcpy or check the alignment.
 *
 * Thread-safety: opening and closing are independent per checkpoint; a
 * checkpoint may be read (count/at/find) from several threads at once, but
 * the `used` flags of its tensors are plain fields.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "internal.h"

typedef struct ck_file {
    char *path;              /* as opened; tensors' `file` points here   */
    char *shard;             /* the name in the index (sharded) or NULL   */
    tsr__mmap map;
} ck_file;

typedef struct ck_adopted {
    void *p;
    void (*free_fn)(void *);
} ck_adopted;

struct tsr_checkpoint {
    ck_file *files;
    size_t n_files;
    ck_adopted *adopted;     /* other sources' handles and copies, freed on close */
    size_t n_adopted;
    tsr__ckpt_tensor *tensors;
    size_t n_tensors, cap_tensors;
    tsr__strmap *by_name;    /* tensor name -> index into tensors        */
};

/* A tensor's byte range in its file's data section (the tiling check). */
typedef struct st_span {
    uint64_t begin, end;
    size_t tensor;           /* index into ck->tensors                   */
} st_span;

/* ---- errors ------------------------------------------------------------------ */

/* "<file>: tensor "<name>": <what>" */
static tsr_status tensor_error(tsr_status st, const char *file, const char *tensor,
                               const char *fmt, ...) TSR_PRINTF(4, 5);
static tsr_status tensor_error(tsr_status st, const char *file, const char *tensor,
                               const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return tsr__error(st, "%s: tensor \"%s\": %s", file, tensor, what);
}

/* ---- dtypes ------------------------------------------------------------------ */

/* The spec's dtype names.  dtype < 0: defined by the spec, not supported by
 * tessera (no tsr_dtype for it). */
static const struct {
    const char *name;
    int dtype;
} st_dtypes[] = {
    {"F64", TSR_DTYPE_F64},   {"F32", TSR_DTYPE_F32},   {"F16", TSR_DTYPE_F16},
    {"BF16", TSR_DTYPE_BF16}, {"I64", TSR_DTYPE_I64},   {"I32", TSR_DTYPE_I32},
    {"I16", TSR_DTYPE_I16},   {"I8", TSR_DTYPE_I8},     {"U8", TSR_DTYPE_U8},
    {"BOOL", TSR_DTYPE_BOOL}, {"U16", TSR_DTYPE_U16},   {"U32", TSR_DTYPE_U32},
    {"U64", -1},     {"C64", -1},     {"F8_E4M3", -1}, {"F8_E5M2", -1},
    {"F8_E8M0", -1}, {"F6_E2M3", -1}, {"F6_E3M2", -1}, {"F4", -1},
};

/* Map a header dtype to a tsr_dtype, or fail naming the file and tensor. */
static tsr_status dtype_lookup(const char *file, const char *tensor, const char *name,
                               uint32_t *out)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++) {
        if (strcmp(name, st_dtypes[i].name) != 0)
            continue;
        if (st_dtypes[i].dtype < 0)
            return tensor_error(TSR_ERR_UNSUPPORTED, file, tensor,
                                "dtype \"%s\" is not supported by tessera", name);
        *out = (uint32_t)st_dtypes[i].dtype;
        return TSR_OK;
    }
    return tensor_error(TSR_ERR_FORMAT, file, tensor, "unknown dtype \"%s\"", name);
}

/* ---- the checkpoint's tables ---------------------------------------------------- */

static tsr_status add_file(tsr_checkpoint *ck, const char *path, const char *shard,
                           size_t *index)
{
    ck_file *nf = realloc(ck->files, (ck->n_files + 1) * sizeof *nf);
    if (!nf)
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory", path);
    ck->files = nf;
    ck_file *f = &ck->files[ck->n_files];
    memset(f, 0, sizeof *f);
    f->path = tsr__strdup(path);
    f->shard = shard ? tsr__strdup(shard) : NULL;
    ck->n_files++;
    if (!f->path || (shard && !f->shard))
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory", path);
    *index = ck->n_files - 1;
    return tsr__mmap_open(path, &f->map);
}

/* Append a tensor (taking its name); a name already present in another file
 * is an error naming both files. */
static tsr_status push_tensor(tsr_checkpoint *ck, tsr__ckpt_tensor *t)
{
    size_t prev;
    if (tsr__strmap_get(ck->by_name, t->name, &prev))
        return tensor_error(TSR_ERR_FORMAT, t->file, t->name,
                            "also present in %s (a tensor name may appear only once)",
                            ck->tensors[prev].file);
    if (ck->n_tensors == ck->cap_tensors) {
        size_t cap = ck->cap_tensors ? ck->cap_tensors * 2 : 64;
        tsr__ckpt_tensor *nt = realloc(ck->tensors, cap * sizeof *nt);
        if (!nt)
            return tsr__error(TSR_ERR_NOMEM, "%s: out of memory", t->file);
        ck->tensors = nt;
        ck->cap_tensors = cap;
    }
    ck->tensors[ck->n_tensors] = *t;
    if (!tsr__strmap_put(ck->by_name, t->name, ck->n_tensors))
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory", t->file);
    ck->n_tensors++;
    return TSR_OK;
}

/* ---- one .safetensors file -------------------------------------------------------- */

/* Rules on the file's framing: at least the 8-byte length, and a header that
 * fits inside the file.  Sets *json, *json_len, *data, *data_len. */
static tsr_status read_frame(const ck_file *f, const char **json, size_t *json_len,
                             const uint8_t **data, uint64_t *data_len)
{
    const uint8_t *p = f->map.data;
    uint64_t size = f->map.size, n = 0;
    /* rule: the file holds at least the 8-byte header length */
    if (size < 8)
        return tsr__error(TSR_ERR_FORMAT,
                          "%s: not a safetensors file: %llu bytes, shorter than the "
                          "8-byte header length", f->path, (unsigned long long)size);
    for (int i = 7; i >= 0; i--) /* little-endian u64 */
        n = (n << 8) | p[i];
    /* rule: the header lies inside the file */
    if (n > size - 8)
        return tsr__error(TSR_ERR_FORMAT,
                          "%s: header length %llu runs past the end of the file "
                          "(%llu bytes)", f->path, (unsigned long long)n,
                          (unsigned long long)size);
    *json = (const char *)p + 8;
    *json_len = (size_t)n;
    *data = p + 8 + n;
    *data_len = size - 8 - n;
    return TSR_OK;
}

/* Rules on the header's JSON: begins with '{', valid JSON (trailing spaces
 * allowed), no duplicate names. */
static tsr_status parse_header(const ck_file *f, const char *json, size_t len, json_t **out)
{
    /* rule: the header is a JSON object; the spec requires its first byte be '{' */
    if (len == 0 || json[0] != '{')
        return tsr__error(TSR_ERR_FORMAT,
                          "%s: the header is not a JSON object (it must begin with '{')",
                          f->path);
    /* rule: valid JSON, each name once; report line:column within the header */
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return tsr__error(TSR_ERR_FORMAT, "%s: invalid JSON in the header at %d:%d "
                          "(line:column): %s", f->path, err.line, err.column, err.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return tsr__error(TSR_ERR_FORMAT, "%s: the header is not a JSON object", f->path);
    }
    *out = root;
    return TSR_OK;
}

/* rule: "__metadata__", if present, maps strings to strings */
static tsr_status check_metadata(const ck_file *f, json_t *meta)
{
    const char *key;
    json_t *v;
    if (!json_is_object(meta))
        return tsr__error(TSR_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object",
                          f->path);
    json_object_foreach(meta, key, v) {
        if (!json_is_string(v))
            return tsr__error(TSR_ERR_FORMAT, "%s: \"__metadata__\" entry \"%s\" is not "
                              "a string", f->path, key);
    }
    return TSR_OK;
}

/* Rules on a shape: an array of at most TSR_MAX_DIMS non-negative integers
 * whose product does not overflow.  Sets t->n_dims, t->shape, *nelem. */
static tsr_status read_shape(const ck_file *f, const char *name, json_t *js,
                             tsr__ckpt_tensor *t, uint64_t *nelem)
{
    size_t n = json_array_size(js);
    if (n > TSR_MAX_DIMS)
        return tensor_error(TSR_ERR_UNSUPPORTED, f->path, name, "%zu dimensions, tessera "
                            "supports at most %d", n, TSR_MAX_DIMS);
    *nelem = 1;
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d))
            return tensor_error(TSR_ERR_FORMAT, f->path, name,
                                "shape[%zu] is not an integer", i);
        json_int_t v = json_integer_value(d);
        /* rule: no negative dimensions */
        if (v < 0)
            return tensor_error(TSR_ERR_FORMAT, f->path, name,
                                "shape[%zu] is negative (%lld)", i, (long long)v);
        if (v && *nelem > UINT64_MAX / (uint64_t)v)
            return tensor_error(TSR_ERR_FORMAT, f->path, name, "the shape's element "
                                "count overflows");
        *nelem *= (uint64_t)v;
        t->shape[i] = (int64_t)v;
    }
    t->n_dims = (int)n;
    return TSR_OK;
}

/* Rules on data_offsets: two integers, begin <= end <= the data section's
 * length, and end - begin the tensor's size in bytes. */
static tsr_status read_offsets(const ck_file *f, const char *name, json_t *jo,
                               uint64_t nbytes, uint64_t data_len, st_span *span)
{
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (json_array_size(jo) != 2 || !json_is_integer(jb) || !json_is_integer(je) ||
        json_integer_value(jb) < 0 || json_integer_value(je) < 0)
        return tensor_error(TSR_ERR_FORMAT, f->path, name, "\"data_offsets\" is not "
                            "[begin, end] with two non-negative integers");
    uint64_t b = (uint64_t)json_integer_value(jb), e = (uint64_t)json_integer_value(je);
    /* rule: begin <= end */
    if (b > e)
        return tensor_error(TSR_ERR_FORMAT, f->path, name, "data_offsets [%llu, %llu]: "
                            "begin is past end", (unsigned long long)b, (unsigned long long)e);
    /* rule: the bytes lie inside the data section */
    if (e > data_len)
        return tensor_error(TSR_ERR_FORMAT, f->path, name, "data_offsets [%llu, %llu] "
                            "run past the end of the data section (%llu bytes)",
                            (unsigned long long)b, (unsigned long long)e,
                            (unsigned long long)data_len);
    /* rule: the byte count matches shape and dtype */
    if (e - b != nbytes)
        return tensor_error(TSR_ERR_FORMAT, f->path, name, "data_offsets [%llu, %llu] "
                            "hold %llu bytes, but the shape and dtype need %llu",
                            (unsigned long long)b, (unsigned long long)e,
                            (unsigned long long)(e - b), (unsigned long long)nbytes);
    span->begin = b;
    span->end = e;
    return TSR_OK;
}

static tsr_status field_error(const ck_file *f, const char *name, const char *field,
                              const json_t *v, const char *want)
{
    return tensor_error(TSR_ERR_FORMAT, f->path, name, "\"%s\" is %s, it must be %s", field,
                        v ? "of the wrong type" : "missing", want);
}

/* One header entry -> a tensor of the checkpoint (and its span). */
static tsr_status read_entry(tsr_checkpoint *ck, const ck_file *f, const char *name,
                             json_t *v, const uint8_t *data, uint64_t data_len,
                             st_span *span)
{
    /* rule: an entry is an object with dtype (string), shape (array) and
     * data_offsets (array) */
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape");
    json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_object(v))
        return tensor_error(TSR_ERR_FORMAT, f->path, name, "the entry is not a JSON object");
    if (!json_is_string(jd))
        return field_error(f, name, "dtype", jd, "a string");
    if (!json_is_array(js))
        return field_error(f, name, "shape", js, "an array");
    if (!json_is_array(jo))
        return field_error(f, name, "data_offsets", jo, "an array");
    tsr__ckpt_tensor t = {.file = f->path};
    uint64_t nelem = 0;
    tsr_status st = dtype_lookup(f->path, name, json_string_value(jd), &t.dtype);
    if (!st)
        st = read_shape(f, name, js, &t, &nelem);
    if (st)
        return st;
    uint64_t esize = tsr__dtype_size(t.dtype);
    if (nelem > UINT64_MAX / esize)
        return tensor_error(TSR_ERR_FORMAT, f->path, name, "the size in bytes overflows");
    st = read_offsets(f, name, jo, nelem * esize, data_len, span);
    if (st)
        return st;
    t.data = data + span->begin;
    t.nbytes = (size_t)(span->end - span->begin);
    t.name = tsr__strdup(name);
    if (!t.name)
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory", f->path);
    span->tensor = ck->n_tensors;
    st = push_tensor(ck, &t);
    if (st)
        free((char *)t.name);
    return st;
}

static int span_cmp(const void *a, const void *b)
{
    const st_span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* rule: the tensors tile the data section exactly: sorted by offset, each
 * begins where the previous ended (no overlap, no hole), the last ends at
 * the end of the file. */
static tsr_status check_tiling(const tsr_checkpoint *ck, const ck_file *f, st_span *s,
                               size_t n, uint64_t data_len)
{
    qsort(s, n, sizeof *s, span_cmp);
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = ck->tensors[s[i].tensor].name;
        if (s[i].begin < pos)
            return tensor_error(TSR_ERR_FORMAT, f->path, name, "bytes [%llu, %llu) overlap "
                                "tensor \"%s\" [%llu, %llu)", (unsigned long long)s[i].begin,
                                (unsigned long long)s[i].end, ck->tensors[s[i - 1].tensor].name,
                                (unsigned long long)s[i - 1].begin, (unsigned long long)pos);
        if (s[i].begin > pos)
            return tensor_error(TSR_ERR_FORMAT, f->path, name, "a gap: bytes [%llu, %llu) of "
                                "the data section before this tensor belong to no tensor",
                                (unsigned long long)pos, (unsigned long long)s[i].begin);
        pos = s[i].end;
    }
    if (pos != data_len)
        return tsr__error(TSR_ERR_FORMAT, "%s: a gap: bytes [%llu, %llu) at the end of the "
                          "data section (after tensor \"%s\") belong to no tensor", f->path,
                          (unsigned long long)pos, (unsigned long long)data_len,
                          n ? ck->tensors[s[n - 1].tensor].name : "(none)");
    return TSR_OK;
}

/* Read and validate the header of ck->files[fi]; append its tensors. */
static tsr_status load_header(tsr_checkpoint *ck, size_t fi)
{
    const ck_file *f = &ck->files[fi];
    const char *json = NULL, *name;
    size_t json_len = 0, n = 0;
    const uint8_t *data = NULL;
    uint64_t data_len = 0;
    json_t *root = NULL, *v;
    tsr_status st = read_frame(f, &json, &json_len, &data, &data_len);
    if (!st)
        st = parse_header(f, json, json_len, &root);
    if (st)
        return st;
    st_span *spans = calloc(json_object_size(root) + 1, sizeof *spans);
    if (!spans)
        st = tsr__error(TSR_ERR_NOMEM, "%s: out of memory", f->path);
    json_object_foreach(root, name, v) {
        if (st)
            break;
        if (strcmp(name, "__metadata__") == 0)
            st = check_metadata(f, v);
        else
            st = read_entry(ck, f, name, v, data, data_len, &spans[n++]);
    }
    if (!st)
        st = check_tiling(ck, f, spans, n, data_len);
    free(spans);
    json_decref(root);
    return st;
}

/* Map one file, validate it and add its tensors. */
static tsr_status load_file(tsr_checkpoint *ck, const char *path, const char *shard)
{
    size_t fi = 0;
    tsr_status st = add_file(ck, path, shard, &fi);
    return st ? st : load_header(ck, fi);
}

/* ---- a sharded folder: model.safetensors.index.json ------------------------------- */

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The index's shard file names, sorted and unique (borrowed from the JSON).
 * rule: weight_map is an object of tensor -> file name, the names plain
 * relative paths inside the folder. */
static tsr_status index_shards(const char *index, json_t *wmap, const char ***out, size_t *n)
{
    const char *key, **names = calloc(json_object_size(wmap) + 1, sizeof *names);
    json_t *v;
    size_t k = 0;
    if (!names)
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory", index);
    json_object_foreach(wmap, key, v) {
        const char *s = json_string_value(v);
        if (!s || !*s || s[0] == '/' || strstr(s, "..")) {
            free(names);
            return tsr__error(TSR_ERR_FORMAT, "%s: weight_map entry for tensor \"%s\" is "
                              "not a file name inside the folder", index, key);
        }
        names[k++] = s;
    }
    qsort(names, k, sizeof *names, str_cmp);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || strcmp(names[u - 1], names[i]) != 0)
            names[u++] = names[i];
    *out = names;
    *n = u;
    return TSR_OK;
}

/* The first tensor of weight_map stored in `shard` (for messages). */
static const char *first_tensor_of(json_t *wmap, const char *shard)
{
    const char *key;
    json_t *v;
    json_object_foreach(wmap, key, v) {
        if (strcmp(json_string_value(v), shard) == 0)
            return key;
    }
    return "?";
}

/* Map and validate every shard; a missing one names the index and the shard. */
static tsr_status load_shards(tsr_checkpoint *ck, const char *dir, const char *index,
                              json_t *wmap)
{
    const char **shards = NULL;
    size_t n = 0;
    tsr_status st = index_shards(index, wmap, &shards, &n);
    for (size_t i = 0; !st && i < n; i++) {
        char *path = tsr__path_join(dir, shards[i]);
        if (!path)
            st = tsr__error(TSR_ERR_NOMEM, "%s: out of memory", index);
        /* rule: every shard that weight_map names exists */
        else if (!tsr__file_exists(path))
            st = tsr__error(TSR_ERR_NOT_FOUND, "%s: weight_map names the shard \"%s\" "
                            "(for tensor \"%s\"), but %s does not exist", index,
                            shards[i], first_tensor_of(wmap, shards[i]), path);
        else
            st = load_file(ck, path, shards[i]);
        free(path);
    }
    free(shards);
    return st;
}

/* The shard file that holds tensor t. */
static const char *shard_of(const tsr_checkpoint *ck, const tsr__ckpt_tensor *t)
{
    for (size_t i = 0; i < ck->n_files; i++)
        if (ck->files[i].path == t->file)
            return ck->files[i].shard;
    return "?";
}

/* rule: weight_map and the shards agree: each listed tensor is in the shard
 * it is listed for, and each tensor of a shard is listed. */
static tsr_status check_weight_map(tsr_checkpoint *ck, const char *index, json_t *wmap)
{
    const char *key;
    json_t *v;
    json_object_foreach(wmap, key, v) {
        const char *shard = json_string_value(v);
        tsr__ckpt_tensor *t = tsr__checkpoint_find(ck, key);
        if (!t)
            return tsr__error(TSR_ERR_FORMAT, "%s: tensor \"%s\" is listed in weight_map "
                              "for shard \"%s\", but that shard does not contain it", index,
                              key, shard);
        if (strcmp(shard_of(ck, t), shard) != 0)
            return tsr__error(TSR_ERR_FORMAT, "%s: tensor \"%s\" is listed in weight_map "
                              "for shard \"%s\", but it is stored in %s", index, key, shard,
                              t->file);
    }
    for (size_t i = 0; i < ck->n_tensors; i++)
        if (!json_object_get(wmap, ck->tensors[i].name))
            return tsr__error(TSR_ERR_FORMAT, "%s: tensor \"%s\" is stored in this shard "
                              "but not listed in the weight_map of %s", ck->tensors[i].file,
                              ck->tensors[i].name, index);
    return TSR_OK;
}

static tsr_status load_index(tsr_checkpoint *ck, const char *dir, const char *index)
{
    tsr_json *root;
    tsr_status st = tsr__json_load_file(index, &root);
    if (st)
        return st;
    json_t *wmap = json_object_get((json_t *)root, "weight_map");
    /* rule: the index is an object with a weight_map object */
    if (!json_is_object(wmap))
        st = tsr__error(TSR_ERR_FORMAT, "%s: no \"weight_map\" object", index);
    if (!st)
        st = load_shards(ck, dir, index, wmap);
    if (!st)
        st = check_weight_map(ck, index, wmap);
    tsr__json_free(root);
    return st;
}

/* ---- the API ----------------------------------------------------------------------- */

static tsr_status checkpoint_new(const char *what, tsr_checkpoint **out)
{
    tsr_checkpoint *ck = calloc(1, sizeof *ck);
    if (ck)
        ck->by_name = tsr__strmap_create(256);
    if (!ck || !ck->by_name) {
        free(ck);
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory", what);
    }
    *out = ck;
    return TSR_OK;
}

/* Close ck and clear *out if st failed. */
static tsr_status finish(tsr_status st, tsr_checkpoint *ck, tsr_checkpoint **out)
{
    if (st) {
        tsr__checkpoint_close(ck);
        ck = NULL;
    }
    *out = ck;
    return st;
}

tsr_status tsr__checkpoint_open_file(const char *path, tsr_checkpoint **out)
{
    tsr_checkpoint *ck = NULL;
    *out = NULL;
    tsr_status st = checkpoint_new(path, &ck);
    if (st)
        return st;
    return finish(load_file(ck, path, NULL), ck, out);
}

static tsr_status open_index(const char *dir, const char *index, tsr_checkpoint **out)
{
    tsr_checkpoint *ck = NULL;
    tsr_status st = checkpoint_new(index, &ck);
    if (st)
        return st;
    return finish(load_index(ck, dir, index), ck, out);
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A folder without model.safetensors or an index: its one *.safetensors
 * file, if there is exactly one. */
static tsr_status open_only_file(const char *dir, tsr_checkpoint **out)
{
    DIR *d = opendir(dir);
    if (!d)
        return tsr__error(errno == ENOENT ? TSR_ERR_NOT_FOUND : TSR_ERR_IO,
                          "%s: cannot open the folder: %s", dir, strerror(errno));
    char first[256] = "", second[256] = "";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !has_suffix(e->d_name, ".safetensors"))
            continue;
        snprintf(first[0] ? second : first, sizeof first, "%s", e->d_name);
    }
    closedir(d);
    if (!first[0])
        return tsr__error(TSR_ERR_NOT_FOUND, "%s: no model.safetensors, "
                          "model.safetensors.index.json or other *.safetensors file", dir);
    if (second[0])
        return tsr__error(TSR_ERR_FORMAT, "%s: several *.safetensors files (%s, %s, ...) and "
                          "no model.safetensors.index.json to say which hold the model",
                          dir, first, second);
    char *path = tsr__path_join(dir, first);
    if (!path)
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory", dir);
    tsr_status st = tsr__checkpoint_open_file(path, out);
    free(path);
    return st;
}

tsr_status tsr__checkpoint_open(const char *dir, tsr_checkpoint **out)
{
    struct stat sb;
    *out = NULL;
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode)) /* a file given directly */
        return tsr__checkpoint_open_file(dir, out);
    char *single = tsr__path_join(dir, "model.safetensors");
    char *index = tsr__path_join(dir, "model.safetensors.index.json");
    tsr_status st;
    /* As transformers: model.safetensors first, then the sharded index. */
    if (!single || !index)
        st = tsr__error(TSR_ERR_NOMEM, "%s: out of memory", dir);
    else if (tsr__file_exists(single))
        st = tsr__checkpoint_open_file(single, out);
    else if (tsr__file_exists(index))
        st = open_index(dir, index, out);
    else
        st = open_only_file(dir, out);
    free(single);
    free(index);
    return st;
}

void tsr__checkpoint_close(tsr_checkpoint *ck)
{
    if (!ck)
        return;
    for (size_t i = 0; i < ck->n_tensors; i++)
        free((char *)ck->tensors[i].name);
    for (size_t i = 0; i < ck->n_files; i++) {
        tsr__mmap_close(&ck->files[i].map);
        free(ck->files[i].path);
        free(ck->files[i].shard);
    }
    tsr__strmap_destroy(ck->by_name);
    free(ck->tensors);
    free(ck->files);
    for (size_t i = ck->n_adopted; i-- > 0;)
        ck->adopted[i].free_fn(ck->adopted[i].p);
    free(ck->adopted);
    free(ck);
}

/* ---- checkpoints from other sources (GGUF) ------------------------------------------ */

tsr_status tsr__checkpoint_create(const char *what, tsr_checkpoint **out)
{
    return checkpoint_new(what, out);
}

tsr_status tsr__checkpoint_add(tsr_checkpoint *ck, const char *name, uint32_t dtype, int n_dims,
                               const int64_t *shape, const void *data, size_t nbytes,
                               const char *file)
{
    tsr__ckpt_tensor t;
    memset(&t, 0, sizeof t);
    t.name = tsr__strdup(name);
    if (!t.name)
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory", file);
    t.dtype = dtype;
    t.n_dims = n_dims;
    for (int d = 0; d < n_dims && d < TSR_MAX_DIMS; d++)
        t.shape[d] = shape[d];
    t.data = data;
    t.nbytes = nbytes;
    t.file = file;
    tsr_status st = push_tensor(ck, &t);
    if (st)
        free((char *)t.name);
    return st;
}

tsr_status tsr__checkpoint_adopt(tsr_checkpoint *ck, void *p, void (*free_fn)(void *))
{
    ck_adopted *na = realloc(ck->adopted, (ck->n_adopted + 1) * sizeof *na);
    if (!na) {
        free_fn(p);
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    ck->adopted = na;
    ck->adopted[ck->n_adopted++] = (ck_adopted){p, free_fn};
    return TSR_OK;
}

size_t tsr__checkpoint_count(const tsr_checkpoint *ck) { return ck ? ck->n_tensors : 0; }

tsr__ckpt_tensor *tsr__checkpoint_at(tsr_checkpoint *ck, size_t i)
{
    return ck && i < ck->n_tensors ? &ck->tensors[i] : NULL;
}

tsr__ckpt_tensor *tsr__checkpoint_find(tsr_checkpoint *ck, const char *name)
{
    size_t i;
    if (!ck || !name || !tsr__strmap_get(ck->by_name, name, &i))
        return NULL;
    return &ck->tensors[i];
}
