/* core/gguf.h - a GGUF (v2, v3) file reader: metadata and tensor directory
 * over a read-only mmap.
 *
 * Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md.  Every
 * field is validated at open (magic, version, counts, string lengths, value
 * and tensor types, dims, alignment, data bounds, overlaps, duplicates); an
 * error names the file, the field/key/tensor and the byte offset.
 *
 * Ownership: strings and data pointers returned by the getters point into
 * the file's mmap or into the reader, and stay valid until tsr__gguf_close.
 * Strings read from metadata values are NOT NUL-terminated (pointer + length);
 * keys and tensor names are.
 * Thread-safety: open/close are not concurrent with anything on the same
 * reader; all getters are read-only and may run concurrently.
 */
#ifndef TESSERA_GGUF_H
#define TESSERA_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tessera/types.h"

typedef struct tsr__gguf tsr__gguf;

/* GGUF metadata value types (gguf.md: gguf_metadata_value_type). */
typedef enum tsr__gguf_type {
    TSR_GGUF_UINT8 = 0,
    TSR_GGUF_INT8 = 1,
    TSR_GGUF_UINT16 = 2,
    TSR_GGUF_INT16 = 3,
    TSR_GGUF_UINT32 = 4,
    TSR_GGUF_INT32 = 5,
    TSR_GGUF_FLOAT32 = 6,
    TSR_GGUF_BOOL = 7,
    TSR_GGUF_STRING = 8,
    TSR_GGUF_ARRAY = 9,
    TSR_GGUF_UINT64 = 10,
    TSR_GGUF_INT64 = 11,
    TSR_GGUF_FLOAT64 = 12,
    TSR_GGUF_TYPE_COUNT_ = 13
} tsr__gguf_type;

#define TSR_GGUF_DEFAULT_ALIGNMENT 32
#define TSR_GGUF_MAX_DIMS 4

struct tsr__gguf_arr;

/* A metadata value (a key's value, or an element of an array). */
typedef struct tsr__gguf_value {
    uint32_t type;            /* tsr__gguf_type                                    */
    const void *data;         /* scalar: its bytes (little-endian); string: its
                               * bytes; array: the first element's encoding      */
    uint64_t len;             /* string: bytes; array: elements; scalar: 1        */
    uint32_t elem_type;       /* arrays: the element type                         */
    const struct tsr__gguf_arr *arr_; /* private: element index of an array       */
} tsr__gguf_value;

/* A tensor of the file.  ne[] is in ggml order: ne[0] is the row length
 * (innermost, contiguous), so PyTorch's shape is ne reversed. */
typedef struct tsr__gguf_tensor {
    const char *name;
    uint32_t ggml_type;       /* enum tsr__ggml_type (core/ggml_blocks.h)          */
    int n_dims;               /* 1..4 (0: a scalar)                               */
    int64_t ne[TSR_GGUF_MAX_DIMS]; /* unused dims are 1                           */
    int64_t n_elements;
    uint64_t offset;          /* from the start of the data section               */
    const void *data;         /* in the mmap, aligned to the file's alignment     */
    size_t nbytes;
} tsr__gguf_tensor;

/* Open and validate a GGUF file.  Errors: TSR_ERR_NOT_FOUND/IO (cannot
 * open), TSR_ERR_FORMAT (malformed: names the field and byte offset),
 * TSR_ERR_UNSUPPORTED (GGUF v1, versions after 3, big-endian files). */
tsr_status tsr__gguf_open(const char *path, tsr__gguf **out);
void tsr__gguf_close(tsr__gguf *g);

const char *tsr__gguf_path(const tsr__gguf *g);
uint32_t tsr__gguf_version(const tsr__gguf *g);
size_t tsr__gguf_alignment(const tsr__gguf *g);
size_t tsr__gguf_data_offset(const tsr__gguf *g);  /* from the file's start */
const void *tsr__gguf_file_data(const tsr__gguf *g, size_t *size); /* the mmap */

/* --- metadata ------------------------------------------------------------- */
size_t tsr__gguf_kv_count(const tsr__gguf *g);
const char *tsr__gguf_kv_key(const tsr__gguf *g, size_t i);
const tsr__gguf_value *tsr__gguf_kv_value(const tsr__gguf *g, size_t i);
/* The value of `key`, or NULL (no error set) if absent.  O(1) (hashed). */
const tsr__gguf_value *tsr__gguf_find(const tsr__gguf *g, const char *key);
const char *tsr__gguf_type_name(uint32_t type); /* "UINT32", "ARRAY", ... */

/* Typed getters.  TSR_ERR_NOT_FOUND if the key is absent, TSR_ERR_FORMAT if
 * its type does not convert; both name the file and the key.
 * _int/_uint accept every integer type whose value fits; _float accepts
 * FLOAT32/FLOAT64 and integers; _str gives pointer + length (not
 * NUL-terminated); _arr checks the value is an array. */
tsr_status tsr__gguf_get_int(const tsr__gguf *g, const char *key, int64_t *out);
tsr_status tsr__gguf_get_uint(const tsr__gguf *g, const char *key, uint64_t *out);
tsr_status tsr__gguf_get_float(const tsr__gguf *g, const char *key, double *out);
tsr_status tsr__gguf_get_bool(const tsr__gguf *g, const char *key, bool *out);
tsr_status tsr__gguf_get_str(const tsr__gguf *g, const char *key, const char **s, size_t *len);
tsr_status tsr__gguf_get_arr(const tsr__gguf *g, const char *key, const tsr__gguf_value **arr);
/* true if `key` is a string equal to `s`. */
bool tsr__gguf_str_eq(const tsr__gguf *g, const char *key, const char *s);

/* Conversions of one value (no key: errors say "value"); as the getters. */
tsr_status tsr__gguf_value_int(const tsr__gguf_value *v, int64_t *out);
tsr_status tsr__gguf_value_uint(const tsr__gguf_value *v, uint64_t *out);
tsr_status tsr__gguf_value_float(const tsr__gguf_value *v, double *out);
tsr_status tsr__gguf_value_bool(const tsr__gguf_value *v, bool *out);
tsr_status tsr__gguf_value_str(const tsr__gguf_value *v, const char **s, size_t *len);

/* Element i of an array value, O(1) for every element type (string and
 * nested-array elements are indexed once at open).  TSR_ERR_INVALID_ARG if
 * `arr` is not an array or i is out of range. */
tsr_status tsr__gguf_arr_at(const tsr__gguf_value *arr, uint64_t i, tsr__gguf_value *out);
/* Shortcut for arrays of strings: element i as pointer + length. */
tsr_status tsr__gguf_arr_str(const tsr__gguf_value *arr, uint64_t i, const char **s, size_t *len);

/* --- tensors ---------------------------------------------------------------- */
size_t tsr__gguf_tensor_count(const tsr__gguf *g);
const tsr__gguf_tensor *tsr__gguf_tensor_at(const tsr__gguf *g, size_t i);
/* NULL (no error set) if absent.  O(1) (hashed). */
const tsr__gguf_tensor *tsr__gguf_find_tensor(const tsr__gguf *g, const char *name);

#endif /* TESSERA_GGUF_H */
