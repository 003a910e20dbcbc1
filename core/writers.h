/* core/writers.h - checkpoint writers: safetensors (with transformers-style
 * sharding) and GGUF v3 (core-internal).
 *
 * Both stream tensor data to disk so that writing a model never needs a
 * second copy of it in memory.  Errors name the file and the tensor.
 * Thread-safety: a writer is used by one thread at a time.
 */
#ifndef TESSERA_CORE_WRITERS_H
#define TESSERA_CORE_WRITERS_H

#include "gguf.h"
#include "internal.h"

/* --- safetensors_write.c ------------------------------------------------------ */

/* transformers' default max_shard_size ("5GB", decimal). */
#define TSR_DEFAULT_MAX_SHARD_SIZE 5000000000ull

typedef struct tsr__st_writer tsr__st_writer;

/* A writer for the folder `dir` (created if missing).  Tensors are streamed
 * to a temporary file in `dir`; tsr__st_writer_finish writes
 * model.safetensors, or model-0000i-of-0000n.safetensors shards plus
 * model.safetensors.index.json when the total exceeds max_shard_size (0: the
 * default).  Shards are filled in the order tensors were added, as
 * huggingface_hub's split_torch_state_dict_into_shards does. */
tsr_status tsr__st_writer_create(const char *dir, uint64_t max_shard_size, tsr__st_writer **out);
/* Add a tensor: plain dtype, shape in PyTorch order (n_dims 0..8), nbytes
 * the exact size; the bytes are copied (to the temporary file). */
tsr_status tsr__st_writer_add(tsr__st_writer *w, const char *name, uint32_t dtype, int n_dims,
                              const int64_t *shape, const void *data, size_t nbytes);
size_t tsr__st_writer_count(const tsr__st_writer *w);
/* Write the file(s).  Within a file the tensors are laid out as the
 * safetensors library does (by dtype alignment, then name) with header
 * {<tensors>..., "__metadata__":{"format":"pt"}} padded with spaces to 8
 * bytes. */
tsr_status tsr__st_writer_finish(tsr__st_writer *w);
/* Frees the writer and removes the temporary file (also after failure). */
void tsr__st_writer_destroy(tsr__st_writer *w);

/* The safetensors dtype name ("F32", "BF16", "BOOL", ...) or NULL. */
const char *tsr__st_dtype_name(uint32_t dtype);

/* --- gguf_write.c -------------------------------------------------------------- */

typedef struct tsr__gguf_writer tsr__gguf_writer;

/* Phase 1: metadata and tensor infos (kept in memory).  Phase 2:
 * tsr__gguf_writer_begin_data writes header, metadata and infos; then the
 * data of every tensor in the order they were declared, each padded to the
 * alignment (32 unless general.alignment was set). */
tsr_status tsr__gguf_writer_create(const char *path, tsr__gguf_writer **out);
/* Scalars: `value` points to the value in its GGUF type (uint32_t for
 * UINT32, uint8_t 0/1 for BOOL, float for FLOAT32, ...).  A key set twice
 * is an error. */
tsr_status tsr__gguf_writer_kv(tsr__gguf_writer *w, const char *key, uint32_t type,
                               const void *value);
tsr_status tsr__gguf_writer_kv_u32(tsr__gguf_writer *w, const char *key, uint32_t v);
tsr_status tsr__gguf_writer_kv_i32(tsr__gguf_writer *w, const char *key, int32_t v);
tsr_status tsr__gguf_writer_kv_f32(tsr__gguf_writer *w, const char *key, float v);
tsr_status tsr__gguf_writer_kv_bool(tsr__gguf_writer *w, const char *key, bool v);
tsr_status tsr__gguf_writer_kv_str(tsr__gguf_writer *w, const char *key, const char *s);
tsr_status tsr__gguf_writer_kv_strn(tsr__gguf_writer *w, const char *key, const char *s, size_t len);
/* Arrays of a fixed-size element type: n elements packed at `data`. */
tsr_status tsr__gguf_writer_kv_arr(tsr__gguf_writer *w, const char *key, uint32_t elem_type,
                                   const void *data, uint64_t n);
/* Arrays of strings (lens NULL: NUL-terminated). */
tsr_status tsr__gguf_writer_kv_arr_str(tsr__gguf_writer *w, const char *key,
                                       const char *const *s, const size_t *lens, uint64_t n);
/* Declare a tensor: ggml type, ne in ggml order (ne[0] innermost). */
tsr_status tsr__gguf_writer_tensor(tsr__gguf_writer *w, const char *name, uint32_t ggml_type,
                                   int n_dims, const int64_t *ne);
tsr_status tsr__gguf_writer_begin_data(tsr__gguf_writer *w);
/* The next tensor's data (exactly its size); may be given in pieces:
 * `final` = true on the last piece. */
tsr_status tsr__gguf_writer_data(tsr__gguf_writer *w, const void *data, size_t nbytes, bool final);
/* Flush and close; checks that every declared tensor was written. */
tsr_status tsr__gguf_writer_finish(tsr__gguf_writer *w);
void tsr__gguf_writer_destroy(tsr__gguf_writer *w);

/* --- convert.c: HF folder <-> GGUF ---------------------------------------------- */
/* llama.cpp's permute for interleaved RoPE (convert_hf_to_gguf.py): GGUF row
 * (h, i, j) = HF row (h, j, i), j < 2, i < rows / heads / 2.  Rows of
 * row_bytes each; src and dst must differ. */
tsr_status tsr__permute_rows_for_gguf(const void *src, void *dst, int64_t rows, size_t row_bytes,
                                      int64_t heads);

/* --- save.c: the tensor sink behind host->emit_tensor --------------------------- */
struct tsr_tensor_sink {
    tsr__st_writer *w;
    const char *module;      /* for messages */
};
tsr_status tsr__emit_tensor(tsr_tensor_sink *sink, const char *name, uint32_t dtype, int n_dims,
                            const int64_t *shape, const void *data, size_t nbytes);

#endif
