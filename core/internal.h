/* core/internal.h - cross-file internals of libtessera (tsr__* names).
 *
 * Not installed.  Each section names the file that implements it.
 */
#ifndef TESSERA_CORE_INTERNAL_H
#define TESSERA_CORE_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>
#include "tessera/tessera.h"
#include "tessera/plugin/plugin.h"

#if defined(__GNUC__)
#  define TSR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define TSR_PRINTF(a, b)
#endif

/* --- error.c: per-thread last error, logging -------------------------------- */
/* Record a failure's detail for tsr_last_error(); returns st. */
tsr_status tsr__error(tsr_status st, const char *fmt, ...) TSR_PRINTF(2, 3);
tsr_status tsr__verror(tsr_status st, const char *fmt, va_list ap);
/* Prefix the current error text: "<prefix>: <old text>". Returns st. */
tsr_status tsr__error_prefix(tsr_status st, const char *fmt, ...) TSR_PRINTF(2, 3);
void tsr__clear_error(void);
void tsr__log(tsr_log_level level, const char *fmt, ...) TSR_PRINTF(2, 3);
void tsr__vlog(tsr_log_level level, const char *who, const char *fmt, va_list ap);

/* --- util.c: memory, files, strings ------------------------------------------- */
void *tsr__alloc(size_t size);            /* 64-byte aligned, NULL on failure */
void *tsr__calloc(size_t n, size_t size); /* aligned, zeroed                   */
void tsr__free(void *p);
char *tsr__strdup(const char *s);
char *tsr__path_join(const char *a, const char *b); /* malloc'd "a/b" */
bool tsr__file_exists(const char *path);
/* Read a whole file (NUL-terminated); error names the file. */
tsr_status tsr__read_file(const char *path, char **data, size_t *len);

/* A read-only memory map of a whole file. */
typedef struct tsr__mmap {
    void *data;
    size_t size;
} tsr__mmap;
tsr_status tsr__mmap_open(const char *path, tsr__mmap *out);
void tsr__mmap_close(tsr__mmap *m);

/* --- dtype.c: element types and conversions ------------------------------------ */
size_t tsr__dtype_size(uint32_t dtype);       /* bytes per element; 0 for blocks */
const char *tsr__dtype_name(uint32_t dtype);  /* "F32", "BF16", ... */
float tsr__f16_to_f32(uint16_t h);
uint16_t tsr__f32_to_f16(float f);
float tsr__bf16_to_f32(uint16_t h);
uint16_t tsr__f32_to_bf16(float f);           /* round to nearest even */
/* Convert n elements to f32; TSR_ERR_UNSUPPORTED for unknown formats. */
tsr_status tsr__to_f32(uint32_t dtype, const void *src, float *dst, int64_t n,
                       const void *format_data);
/* Convert n f32 elements to a plain dtype (F32/F16/BF16). */
tsr_status tsr__from_f32(uint32_t dtype, const float *src, void *dst, int64_t n);
/* Parse "float32"/"torch.float16"/"bf16"/"F16"... ; -1 if unknown. */
int tsr__dtype_from_name(const char *name);

/* --- json.c: JSON (jansson) behind the plugin SDK's tsr_json ------------------ */
/* Parse a JSON file; errors name the file and line:column. *root is a
 * jansson json_t* seen as tsr_json; free with tsr__json_free. */
tsr_status tsr__json_load_file(const char *path, tsr_json **root);
tsr_status tsr__json_load_buffer(const char *what, const char *buf, size_t len, tsr_json **root);
void tsr__json_free(tsr_json *root);
const tsr_json *tsr__json_get(const tsr_json *obj, const char *key);
const tsr_json *tsr__json_at(const tsr_json *arr, size_t i);
tsr_json_type tsr__json_type(const tsr_json *v);
size_t tsr__json_size(const tsr_json *v);
int64_t tsr__json_int(const tsr_json *v, int64_t dflt);
double tsr__json_real(const tsr_json *v, double dflt);
int tsr__json_bool(const tsr_json *v, int dflt);
const char *tsr__json_string(const tsr_json *v, const char *dflt);

/* --- checkpoint.c / safetensors.c: reading weights ----------------------------- */
/* One tensor of a checkpoint, as stored.  shape[] is in PyTorch order
 * (outermost first), e.g. a Linear weight is {out_features, in_features}. */
typedef struct tsr__ckpt_tensor {
    const char *name;
    uint32_t dtype;          /* tsr_dtype (or a GGUF block format)          */
    int n_dims;
    int64_t shape[TSR_MAX_DIMS];
    const void *data;        /* inside the file's mmap                      */
    size_t nbytes;
    const char *file;        /* the file it came from (for messages)        */
    bool used;               /* claimed by a module                         */
} tsr__ckpt_tensor;

/* Open a model folder's weights: model.safetensors, or the shards named by
 * model.safetensors.index.json.  Every file is validated (header length,
 * JSON, dtypes, shapes vs sizes, offsets inside the data, no overlap); a
 * failure names the file and the tensor. */
tsr_status tsr__checkpoint_open(const char *dir, tsr_checkpoint **out);
/* Open one .safetensors file. */
tsr_status tsr__checkpoint_open_file(const char *path, tsr_checkpoint **out);
void tsr__checkpoint_close(tsr_checkpoint *ck);
size_t tsr__checkpoint_count(const tsr_checkpoint *ck);
tsr__ckpt_tensor *tsr__checkpoint_at(tsr_checkpoint *ck, size_t i);
/* NULL if absent (no error set). */
tsr__ckpt_tensor *tsr__checkpoint_find(tsr_checkpoint *ck, const char *name);

/* A checkpoint filled by another reader (GGUF): create it empty, add tensors
 * (name copied; data and file borrowed), and hand it what must live as long
 * as it does (a file handle, converted copies); those are freed in reverse
 * order by tsr__checkpoint_close. */
tsr_status tsr__checkpoint_create(const char *what, tsr_checkpoint **out);
tsr_status tsr__checkpoint_add(tsr_checkpoint *ck, const char *name, uint32_t dtype, int n_dims,
                               const int64_t *shape, const void *data, size_t nbytes,
                               const char *file);
tsr_status tsr__checkpoint_adopt(tsr_checkpoint *ck, void *p, void (*free_fn)(void *));

/* --- gguf_model.c: a GGUF file as config.json + checkpoint ----------------------- */
/* Open a GGUF model: *config gets the Hugging Face config.json equivalent of
 * its metadata, *ck its tensors under Hugging Face names (q/k rows of llama
 * un-permuted), *tok its tokenizer (NULL if it has none). */
tsr_status tsr__gguf_model_open(const char *path, tsr_json **config, tsr_checkpoint **ck,
                                tsr_tokenizer **tok);

/* --- config.c: the layered run configuration ----------------------------------- */
/* Typed getters: return the value of the top layer that sets `key` (dotted
 * path, e.g. "generation.top_p"), else the built-in default. */
int64_t tsr__config_int(const tsr_config *cfg, const char *key);
double tsr__config_real(const tsr_config *cfg, const char *key);
bool tsr__config_bool(const tsr_config *cfg, const char *key);
const char *tsr__config_string(const tsr_config *cfg, const char *key); /* NULL if unset */
/* true if some layer (not the defaults) set the key. */
bool tsr__config_is_set(const tsr_config *cfg, const char *key);
/* List values (e.g. "backends", "generation.eos_token_id",
 * "generation.stop_strings"): count and items as text. */
size_t tsr__config_list_len(const tsr_config *cfg, const char *key);
const char *tsr__config_list_at(const tsr_config *cfg, const char *key, size_t i);
/* Map values (e.g. "max_memory", "device_map" when a mapping): pairs as text. */
size_t tsr__config_map_len(const tsr_config *cfg, const char *key);
const char *tsr__config_map_key(const tsr_config *cfg, const char *key, size_t i);
const char *tsr__config_map_value(const tsr_config *cfg, const char *key, size_t i);
/* Write the key reference (name, type, default, doc): markdown or --help text. */
void tsr__config_write_reference(FILE *f, bool markdown);
/* Parse a size: plain bytes ("1024") or a number with a unit, decimal
 * (kB/KB, MB, GB, TB) or binary (KiB, MiB, GiB, TiB): "6GiB" = 6 * 2^30.
 * Returns false (no error set) if the text is not a size. */
bool tsr__config_parse_size(const char *text, uint64_t *bytes);

/* config_keys.c: THE table of keys.  One row per key drives validation,
 * defaults, `tessera config --help` and docs/configuration.md. */
typedef enum tsr__ctype {
    TSR__CT_STRING,         /* any scalar                                  */
    TSR__CT_INT,            /* decimal integer                             */
    TSR__CT_REAL,           /* number (an integer is accepted)             */
    TSR__CT_BOOL,           /* true/false (also yes/no, on/off)            */
    TSR__CT_ENUM,           /* one of `values`                             */
    TSR__CT_LIST,           /* sequence of `item`                          */
    TSR__CT_LIST_OR_SCALAR, /* one `item` or a sequence of them            */
    TSR__CT_MAP,            /* mapping device -> `item`                    */
    TSR__CT_SIZE,           /* "6GiB", "500MB", bytes                      */
    TSR__CT_DEVICE_MAP,     /* a strategy/device, or module prefix -> device */
    TSR__CT_DEVICE          /* "cpu", "cuda:0", "disk", "0"                */
} tsr__ctype;

typedef struct tsr__config_key {
    const char *name;       /* dotted path: "generation.top_p"             */
    const char *alias;      /* another accepted name ("torch_dtype") or NULL */
    tsr__ctype type;
    tsr__ctype item;        /* element type of lists, value type of maps   */
    const char *values;     /* TSR__CT_ENUM: "float32|float16|..."         */
    const char *dflt;       /* default as YAML text; NULL: unset           */
    bool ranged;            /* numbers: min <= value <= max                */
    double min, max;
    const char *doc;        /* one or two sentences                        */
} tsr__config_key;
extern const tsr__config_key tsr__config_keys[];
extern const size_t tsr__config_n_keys;
/* Sections ("generation", ...) with a heading for the reference. */
typedef struct tsr__config_section {
    const char *name;       /* "" for the top level                        */
    const char *title;
    const char *doc;
} tsr__config_section;
extern const tsr__config_section tsr__config_sections[];
extern const size_t tsr__config_n_sections;

/* --- registry.c: plugins.d manifests and dlopen ---------------------------------- */
typedef struct tsr__manifest {
    char *name, *kind, *version, *library, *description;
    char *path;              /* the manifest file                        */
    char *origin;            /* which search directory it came from      */
    int priority;
    char **provides;         /* model_types / quant_methods / devices    */
    size_t n_provides;
    /* load state */
    int loaded;              /* 0 not tried, 1 ok, -1 failed             */
    char *status;            /* "available" or the reason it is not      */
    const tsr_plugin_desc *desc;
} tsr__manifest;

typedef struct tsr__registry tsr__registry;
/* Scan the plugins.d search path.  Never fails on a bad manifest: it is
 * listed with its problem as status. */
tsr_status tsr__registry_create(tsr__registry **out);
void tsr__registry_destroy(tsr__registry *reg);
size_t tsr__registry_count(const tsr__registry *reg);
tsr__manifest *tsr__registry_at(tsr__registry *reg, size_t i);
/* Try to load a manifest's plugin (dlopen, entry, ABI, probe). */
tsr_status tsr__registry_load(tsr__registry *reg, tsr__manifest *m);
/* Find, load and return the best plugin of `kind` providing `what` (a
 * model_type, quant_method, or backend name/device kind).  Failing
 * candidates are reported (logged) and skipped; lower priority alternatives
 * are tried.  Error names `what` when nothing fits. */
tsr_status tsr__registry_find(tsr__registry *reg, tsr_plugin_kind kind, const char *what,
                              const tsr_plugin_desc **out);
/* The process-wide registry (created on first use). */
tsr__registry *tsr__registry_global(void);

/* --- host.c: the host table handed to plugins ------------------------------------- */
const tsr_host *tsr__host(void);



/* --- formats.c: weight formats ------------------------------------------------------ */
/* Dequantize row `row` of a weight (ne {K, N}) in any known format. */
tsr_status tsr__dequantize_row(const tsr_tensor *w, int64_t row, float *dst);
/* Bytes between rows of a weight in its format; 0 if unknown. */
size_t tsr__weight_row_bytes(const tsr_tensor *w);

/* --- strmap.c: string -> index hash map (open addressing) -------------------------- */
typedef struct tsr__strmap tsr__strmap;
tsr__strmap *tsr__strmap_create(size_t expected);
void tsr__strmap_destroy(tsr__strmap *m);
/* Keys are borrowed (must outlive the map). Returns false on out of memory. */
bool tsr__strmap_put(tsr__strmap *m, const char *key, size_t value);
/* Returns true and sets *value if present. */
bool tsr__strmap_get(const tsr__strmap *m, const char *key, size_t *value);
#endif /* TESSERA_CORE_INTERNAL_H */
