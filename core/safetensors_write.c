/* core/safetensors_write.c - writing safetensors files as the safetensors
 * library (serialize_to_file) and transformers' save_pretrained do:
 *
 *   [u64 little-endian header length][header JSON, padded with spaces to a
 *   multiple of 8][data]
 *
 * The header is compact JSON: every tensor {"dtype","shape","data_offsets"}
 * in data order, then "__metadata__" ({"format":"pt"}), byte for byte as
 * safetensors 0.4+ writes it (fixtures/stories260K-hf); data is
 * ordered by dtype (larger alignment first, the library's Dtype order) and
 * then by name.  Above max_shard_size the tensors are split into
 * model-0000i-of-0000n.safetensors in the order they were added (a tensor
 * larger than the limit gets a shard of its own) and indexed by
 * model.safetensors.index.json {"metadata":{"total_size"},"weight_map"}
 * with sorted keys and indent 2, as transformers writes it.
 *
 * Data goes to a temporary file in the output folder as it arrives, so a
 * model is never held twice in memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "writers.h"

typedef struct st_entry {
    char *name;
    uint32_t dtype;
    int n_dims;
    int64_t shape[8];
    uint64_t tmp_off;        /* where its bytes are in the temporary file */
    uint64_t nbytes;
    int shard;
} st_entry;

struct tsr__st_writer {
    char *dir;
    char *tmp_path;
    FILE *tmp;
    uint64_t tmp_size;
    uint64_t max_shard;
    st_entry *e;
    size_t n, cap;
    tsr__strmap *names;
};

/* The safetensors library's Dtype enum order (safetensors/src/tensor.rs). */
static int st_rank(uint32_t dt)
{
    switch (dt) {
    case TSR_DTYPE_BOOL: return 0;
    case TSR_DTYPE_U8: return 1;
    case TSR_DTYPE_I8: return 2;
    case TSR_DTYPE_I16: return 5;
    case TSR_DTYPE_U16: return 6;
    case TSR_DTYPE_F16: return 7;
    case TSR_DTYPE_BF16: return 8;
    case TSR_DTYPE_I32: return 9;
    case TSR_DTYPE_U32: return 10;
    case TSR_DTYPE_F32: return 11;
    case TSR_DTYPE_F64: return 12;
    case TSR_DTYPE_I64: return 13;
    default: return -1;
    }
}

const char *tsr__st_dtype_name(uint32_t dtype)
{
    return st_rank(dtype) < 0 ? NULL : tsr__dtype_name(dtype);
}

tsr_status tsr__st_writer_create(const char *dir, uint64_t max_shard_size, tsr__st_writer **out)
{
    *out = NULL;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return tsr__error(TSR_ERR_IO, "%s: cannot create the folder: %s", dir, strerror(errno));
    tsr__st_writer *w = calloc(1, sizeof *w);
    if (!w)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    w->max_shard = max_shard_size ? max_shard_size : TSR_DEFAULT_MAX_SHARD_SIZE;
    w->dir = tsr__strdup(dir);
    w->tmp_path = tsr__path_join(dir, ".tessera-save-XXXXXX");
    w->names = tsr__strmap_create(256);
    if (!w->dir || !w->tmp_path || !w->names) {
        tsr__st_writer_destroy(w);
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    int fd = mkstemp(w->tmp_path);
    if (fd < 0 || !(w->tmp = fdopen(fd, "w+b"))) {
        tsr_status st = tsr__error(TSR_ERR_IO, "%s: cannot create a temporary file: %s", dir,
                                   strerror(errno));
        if (fd >= 0)
            close(fd);
        free(w->tmp_path);
        w->tmp_path = NULL;
        tsr__st_writer_destroy(w);
        return st;
    }
    *out = w;
    return TSR_OK;
}

tsr_status tsr__st_writer_add(tsr__st_writer *w, const char *name, uint32_t dtype, int n_dims,
                              const int64_t *shape, const void *data, size_t nbytes)
{
    if (!tsr__st_dtype_name(dtype))
        return tsr__error(TSR_ERR_INVALID_ARG, "tensor '%s': dtype %s cannot be stored in "
                          "safetensors", name, tsr__dtype_name(dtype));
    if (n_dims < 0 || n_dims > 8)
        return tsr__error(TSR_ERR_INVALID_ARG, "tensor '%s': %d dimensions", name, n_dims);
    uint64_t count = 1;
    for (int d = 0; d < n_dims; d++) {
        if (shape[d] < 0)
            return tsr__error(TSR_ERR_INVALID_ARG, "tensor '%s': negative dimension", name);
        count *= (uint64_t)shape[d];
    }
    if (count * tsr__dtype_size(dtype) != nbytes)
        return tsr__error(TSR_ERR_INVALID_ARG, "tensor '%s': %zu bytes given, its %s shape "
                          "needs %llu", name, nbytes, tsr__dtype_name(dtype),
                          (unsigned long long)(count * tsr__dtype_size(dtype)));
    size_t dummy;
    if (tsr__strmap_get(w->names, name, &dummy))
        return tsr__error(TSR_ERR_INVALID_ARG, "tensor '%s' is saved twice", name);
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 64;
        st_entry *ne = realloc(w->e, nc * sizeof *ne);
        if (!ne)
            return tsr__error(TSR_ERR_NOMEM, "out of memory");
        /* the name map borrows names, which do not move */
        w->e = ne;
        w->cap = nc;
    }
    st_entry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->name = tsr__strdup(name);
    if (!e->name)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    e->dtype = dtype;
    e->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++)
        e->shape[d] = shape[d];
    e->tmp_off = w->tmp_size;
    e->nbytes = nbytes;
    if (nbytes && fwrite(data, 1, nbytes, w->tmp) != nbytes) {
        free(e->name);
        return tsr__error(TSR_ERR_IO, "%s: writing tensor '%s' to a temporary file: %s",
                          w->tmp_path, name, strerror(errno));
    }
    if (!tsr__strmap_put(w->names, e->name, w->n)) {
        free(e->name);
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    w->tmp_size += nbytes;
    w->n++;
    return TSR_OK;
}

size_t tsr__st_writer_count(const tsr__st_writer *w) { return w->n; }

/* A growing text buffer. */
typedef struct tbuf { char *p; size_t n, cap; bool oom; } tbuf;

static void tb_put(tbuf *b, const char *s, size_t len)
{
    if (b->oom)
        return;
    if (b->n + len + 1 > b->cap) {
        size_t nc = (b->n + len + 1) * 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = 0;
}

static void tb_str(tbuf *b, const char *s) { tb_put(b, s, strlen(s)); }

/* A JSON string literal, escaped as serde_json does. */
static void tb_json_string(tbuf *b, const char *s)
{
    tb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': tb_put(b, "\\\"", 2); break;
        case '\\': tb_put(b, "\\\\", 2); break;
        case '\n': tb_put(b, "\\n", 2); break;
        case '\r': tb_put(b, "\\r", 2); break;
        case '\t': tb_put(b, "\\t", 2); break;
        case '\b': tb_put(b, "\\b", 2); break;
        case '\f': tb_put(b, "\\f", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                tb_str(b, esc);
            } else {
                tb_put(b, (const char *)p, 1);
            }
        }
    }
    tb_put(b, "\"", 1);
}

static int cmp_layout(const void *a, const void *b)
{
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    int rx = st_rank(x->dtype), ry = st_rank(y->dtype);
    if (rx != ry)
        return ry - rx; /* larger alignment first */
    return strcmp(x->name, y->name);
}

static tsr_status write_all(FILE *f, const void *p, size_t n, const char *path)
{
    if (n && fwrite(p, 1, n, f) != n)
        return tsr__error(TSR_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return TSR_OK;
}

/* Copy a tensor's bytes from the temporary file into f. */
static tsr_status copy_data(tsr__st_writer *w, const st_entry *e, FILE *f, const char *path,
                            char *buf, size_t bufsz)
{
    if (fseeko(w->tmp, (off_t)e->tmp_off, SEEK_SET) != 0)
        return tsr__error(TSR_ERR_IO, "%s: seek failed: %s", w->tmp_path, strerror(errno));
    uint64_t left = e->nbytes;
    while (left) {
        size_t k = left < bufsz ? (size_t)left : bufsz;
        if (fread(buf, 1, k, w->tmp) != k)
            return tsr__error(TSR_ERR_IO, "%s: reading back tensor '%s' failed", w->tmp_path,
                              e->name);
        tsr_status st = write_all(f, buf, k, path);
        if (st)
            return st;
        left -= k;
    }
    return TSR_OK;
}

/* Write the tensors of one shard (idx[0..n) into the entries) to path. */
static tsr_status write_file(tsr__st_writer *w, const char *path, st_entry **idx, size_t n)
{
    qsort(idx, n, sizeof *idx, cmp_layout);
    tbuf h = {0};
    tb_put(&h, "{", 1);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const st_entry *e = idx[i];
        char num[64];
        if (i)
            tb_put(&h, ",", 1);
        tb_json_string(&h, e->name);
        tb_str(&h, ":{\"dtype\":\"");
        tb_str(&h, tsr__st_dtype_name(e->dtype));
        tb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < e->n_dims; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)e->shape[d]);
            tb_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + e->nbytes));
        tb_str(&h, num);
        off += e->nbytes;
    }
    tb_str(&h, n ? ",\"__metadata__\":{\"format\":\"pt\"}}" : "\"__metadata__\":{\"format\":\"pt\"}}");
    while (!h.oom && h.n % 8)
        tb_put(&h, " ", 1);
    if (h.oom) {
        free(h.p);
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(h.p);
        return tsr__error(TSR_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    tsr_status st = write_all(f, len8, 8, path);
    if (!st)
        st = write_all(f, h.p, h.n, path);
    free(h.p);
    size_t bufsz = 1u << 20;
    char *buf = st ? NULL : malloc(bufsz);
    if (!st && !buf)
        st = tsr__error(TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < n; i++)
        st = copy_data(w, idx[i], f, path, buf, bufsz);
    free(buf);
    if (fclose(f) != 0 && !st)
        st = tsr__error(TSR_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return st;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(st_entry *const *)a)->name, (*(st_entry *const *)b)->name);
}

static tsr_status write_index(tsr__st_writer *w, int n_shards, uint64_t total)
{
    st_entry **idx = malloc((w->n + 1) * sizeof *idx);
    if (!idx)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < w->n; i++)
        idx[i] = &w->e[i];
    qsort(idx, w->n, sizeof *idx, cmp_name);
    tbuf b = {0};
    char line[128];
    snprintf(line, sizeof line, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n"
             "  \"weight_map\": {\n", (unsigned long long)total);
    tb_str(&b, line);
    for (size_t i = 0; i < w->n; i++) {
        const st_entry *e = idx[i];
        tb_str(&b, "    ");
        tb_json_string(&b, e->name);
        snprintf(line, sizeof line, ": \"model-%05d-of-%05d.safetensors\"%s\n", e->shard + 1,
                 n_shards, i + 1 < w->n ? "," : "");
        tb_str(&b, line);
    }
    tb_str(&b, "  }\n}\n");
    free(idx);
    if (b.oom) {
        free(b.p);
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    char *path = tsr__path_join(w->dir, "model.safetensors.index.json");
    FILE *f = path ? fopen(path, "wb") : NULL;
    tsr_status st = f ? write_all(f, b.p, b.n, path)
                      : tsr__error(TSR_ERR_IO, "%s: cannot create: %s",
                                   path ? path : "model.safetensors.index.json", strerror(errno));
    if (f && fclose(f) != 0 && !st)
        st = tsr__error(TSR_ERR_IO, "%s: write failed", path);
    free(path);
    free(b.p);
    return st;
}

tsr_status tsr__st_writer_finish(tsr__st_writer *w)
{
    if (fflush(w->tmp) != 0)
        return tsr__error(TSR_ERR_IO, "%s: write failed: %s", w->tmp_path, strerror(errno));
    /* assign shards in insertion order */
    int shard = 0;
    uint64_t cur = 0, total = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (cur > 0 && cur + w->e[i].nbytes > w->max_shard) {
            shard++;
            cur = 0;
        }
        w->e[i].shard = shard;
        cur += w->e[i].nbytes;
        total += w->e[i].nbytes;
    }
    int n_shards = shard + 1;
    st_entry **idx = malloc((w->n + 1) * sizeof *idx);
    if (!idx)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    tsr_status st = TSR_OK;
    for (int s = 0; !st && s < n_shards; s++) {
        size_t k = 0;
        for (size_t i = 0; i < w->n; i++)
            if (w->e[i].shard == s)
                idx[k++] = &w->e[i];
        char name[64];
        if (n_shards == 1)
            snprintf(name, sizeof name, "model.safetensors");
        else
            snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        char *path = tsr__path_join(w->dir, name);
        st = path ? write_file(w, path, idx, k) : tsr__error(TSR_ERR_NOMEM, "out of memory");
        free(path);
    }
    free(idx);
    if (!st && n_shards > 1)
        st = write_index(w, n_shards, total);
    return st;
}

void tsr__st_writer_destroy(tsr__st_writer *w)
{
    if (!w)
        return;
    if (w->tmp)
        fclose(w->tmp);
    if (w->tmp_path)
        unlink(w->tmp_path);
    for (size_t i = 0; i < w->n; i++)
        free(w->e[i].name);
    free(w->e);
    tsr__strmap_destroy(w->names);
    free(w->tmp_path);
    free(w->dir);
    free(w);
}
