/* tessera/tessera.h - the application API of libtessera.
 *
 * Conventions: handles are opaque; tsr_x_create()/tsr_x_load() pair with
 * tsr_x_destroy(); option structs start with struct_size and are initialised
 * with their *_INIT macro, so that older callers keep working when members
 * are appended.  Every function returns tsr_status (0 = ok); on failure
 * tsr_last_error() of the calling thread holds a sentence naming the file,
 * tensor, key or line:column at fault.  A failed call never fires its
 * callback.  Unless stated, a handle may be used by one thread at a time;
 * distinct handles are independent.
 */
#ifndef TESSERA_TESSERA_H
#define TESSERA_TESSERA_H

#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_config tsr_config;       /* a layered run configuration */
typedef struct tsr_model tsr_model;         /* weights + architecture      */
typedef struct tsr_tokenizer tsr_tokenizer; /* text <-> token ids          */

/* --- errors and version --------------------------------------------------- */

/* Detail of the calling thread's last failure ("" if none).  Valid until the
 * thread's next failing call.  Thread-safe. */
TSR_API const char *tsr_last_error(void);
/* Short English name of a status ("malformed file"). Thread-safe. */
TSR_API const char *tsr_strerror(tsr_status st);
/* "0.1.0". Thread-safe. */
TSR_API const char *tsr_version_string(void);

/* Where log lines go; NULL restores the default (stderr). Not thread-safe. */
typedef void (*tsr_log_fn)(tsr_log_level level, const char *line, void *user);
TSR_API void tsr_set_log(tsr_log_fn fn, void *user, tsr_log_level max_level);

/* --- configuration --------------------------------------------------------- */

/* A configuration starts from the built-in defaults. */
TSR_API tsr_status tsr_config_create(tsr_config **out);
TSR_API void tsr_config_destroy(tsr_config *cfg);
/* Merge a YAML file on top (later wins).  Unknown keys and wrong types fail
 * with file:line:column. */
TSR_API tsr_status tsr_config_load_file(tsr_config *cfg, const char *path);
/* Merge the system and user files if present: $sysconfdir/tessera/tessera.yaml
 * (/etc/... for a /usr install), then $XDG_CONFIG_HOME/tessera/tessera.yaml
 * or ~/.config/tessera/tessera.yaml.  A file that exists but is invalid
 * fails with its file:line:column. */
TSR_API tsr_status tsr_config_load_default_files(tsr_config *cfg);
/* Set one key from text, as a command-line flag does: "generation.top_p",
 * "0.9".  The value is parsed as YAML and validated like a file's; a section
 * takes a mapping ("generation", "{top_k: 1, do_sample: false}").  Settings
 * made one after the other form one "command line" layer on top.  Errors
 * read "command line: key 'generation.top_p' expects a number, got 'abc'". */
TSR_API tsr_status tsr_config_set(tsr_config *cfg, const char *key, const char *value);
/* The effective value of a key as text: scalars as written ("0.9"), lists
 * and mappings as flow YAML ("[cuda, cpu]"), "" if unset; NULL if the key is
 * unknown (an alias such as "torch_dtype" is known).  The string lives until
 * the next change of cfg. */
TSR_API const char *tsr_config_get(const tsr_config *cfg, const char *key);

/* Reference of every configuration key (name, type, default, doc) as text
 * (markdown = 0, for --help) or markdown (1).  Owned by the library. */
TSR_API const char *tsr_config_reference(int markdown);
/* The effective configuration as YAML, every key with a comment naming the
 * layer its value came from ("default", a file, "command line").  *yaml_out
 * is malloc'd: free it with tsr_free().  Since 0.1. */
TSR_API tsr_status tsr_config_dump(const tsr_config *cfg, char **yaml_out);
/* Free memory the library handed over (tsr_config_dump's text). */
TSR_API void tsr_free(void *p);

/* --- plugins ------------------------------------------------------------------ */

/* What `tessera plugins` shows of one manifest.  Strings are owned by the
 * library and live until the process ends. */
typedef struct tsr_plugin_info {
    uint32_t struct_size;
    const char *name;         /* manifest name                                */
    const char *kind;         /* "backend", "quantizer", "model"              */
    const char *version;      /* plugin version ("" if not loaded)            */
    const char *abi;          /* "1.0" as the plugin declares ("" if not loaded) */
    const char *provides;     /* comma-separated model_types/quant_methods/devices */
    const char *manifest;     /* path of the manifest file                    */
    const char *origin;       /* the plugins.d directory it was found in      */
    const char *library;      /* resolved path of the shared module           */
    const char *status;       /* "available" or a sentence saying why not     */
    int32_t available;        /* 1 if loadable and its probe passed           */
    int32_t priority;
} tsr_plugin_info;
#define TSR_PLUGIN_INFO_INIT { sizeof(tsr_plugin_info), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* Scan the plugins.d search path; with load != 0 also dlopen and probe each
 * plugin so that status is final.  *count receives the number of manifests. */
TSR_API tsr_status tsr_plugins_scan(int load, size_t *count);
/* Describe manifest i (0 <= i < count) of the last scan. */
TSR_API tsr_status tsr_plugins_get(size_t i, tsr_plugin_info *out);

/* --- models ------------------------------------------------------------------ */

typedef struct tsr_load_options {
    uint32_t struct_size;
    const char *model_path;      /* HF folder or .gguf; NULL: config's `model` */
    const tsr_config *config;    /* NULL: built-in defaults.  Borrowed: it must
                                    outlive the model (generation reads it)  */
    /* Progress of long loads: fraction in [0,1]; return nonzero to cancel. */
    int (*progress)(float fraction, void *user);
    void *progress_user;
} tsr_load_options;
#define TSR_LOAD_OPTIONS_INIT { sizeof(tsr_load_options), NULL, NULL, NULL, NULL }

TSR_API tsr_status tsr_model_load(const tsr_load_options *opt, tsr_model **out);
TSR_API void tsr_model_destroy(tsr_model *model);
/* A YAML description of the loaded model: architecture, backends, and every
 * weight with its shape (PyTorch order), format and storage.  *text is
 * malloc'd: free it with tsr_free(). */
TSR_API tsr_status tsr_model_describe(const tsr_model *model, char **text);
/* The model's tokenizer, borrowed: lives as long as the model. */
TSR_API const tsr_tokenizer *tsr_model_tokenizer(const tsr_model *model);

/* Writing models (core/save.c, core/convert.c).  Progress: fraction in
 * [0,1] and the tensor just written; return nonzero to cancel. */
typedef int (*tsr_save_progress_fn)(float fraction, const char *tensor, void *user);

typedef struct tsr_save_options {
    uint32_t struct_size;
    uint64_t max_shard_size;     /* bytes per safetensors shard; 0: 5 GB    */
    tsr_save_progress_fn progress;
    void *progress_user;
} tsr_save_options;
#define TSR_SAVE_OPTIONS_INIT { sizeof(tsr_save_options), 0, NULL, NULL }

/* Save a loaded model as a Hugging Face folder `dir` (created if missing):
 * weights its quantizer made in the method's own checkpoint layout (the
 * quantizer's save_weight) with config.json's "quantization_config" from its
 * save_config, every other weight as stored in the checkpoint, and the
 * model's generation_config.json and tokenizer files copied.  Fails with
 * TSR_ERR_UNSUPPORTED when the quantizer cannot serialize.  Not thread-safe
 * on the same model.  Since 0.1. */
TSR_API tsr_status tsr_model_save(const tsr_model *model, const char *dir,
                                  const tsr_save_options *opt);

typedef struct tsr_convert_options {
    uint32_t struct_size;
    const char *outtype;         /* f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|auto;
                                    NULL: auto (as stored; f32 from GGUF)     */
    tsr_save_progress_fn progress;
    void *progress_user;
    uint64_t max_shard_size;     /* GGUF -> HF: bytes per shard; 0: 5 GB      */
} tsr_convert_options;
#define TSR_CONVERT_OPTIONS_INIT { sizeof(tsr_convert_options), NULL, NULL, NULL, 0 }

/* Convert between a Hugging Face folder and a GGUF file, by the input's
 * kind: folder -> `out` .gguf as llama.cpp's convert_hf_to_gguf.py writes it
 * (llama, mistral, qwen2); .gguf -> folder `out` as transformers saves a
 * GGUF it loaded (dequantized safetensors, config.json, tokenizer.json,
 * tokenizer_config.json, generation_config.json).  Thread-safe.  Since 0.1. */
TSR_API tsr_status tsr_model_convert(const char *in, const char *out,
                                     const tsr_convert_options *opt);

/* --- tokenizer --------------------------------------------------------------- */

/* Load tokenizer.json (+ tokenizer_config.json) from a folder. */
TSR_API tsr_status tsr_tokenizer_load(const char *dir, tsr_tokenizer **out);
TSR_API void tsr_tokenizer_destroy(tsr_tokenizer *tok);

#define TSR_TOKENIZE_ADD_SPECIAL 0x1u   /* BOS/EOS as tokenizer_config says */
/* Encode UTF-8 text.  Writes at most `cap` ids; *n_out is the full count (call
 * again with a larger buffer when *n_out > cap).  Thread-safe on a shared
 * tokenizer. */
TSR_API tsr_status tsr_tokenize(const tsr_tokenizer *tok, const char *text, size_t len,
                                uint32_t flags, int32_t *ids, size_t cap, size_t *n_out);
#define TSR_DETOKENIZE_SKIP_SPECIAL 0x1u
/* Decode ids to UTF-8 (NUL-terminated if room). *len_out is the full length. */
TSR_API tsr_status tsr_detokenize(const tsr_tokenizer *tok, const int32_t *ids, size_t n,
                                  uint32_t flags, char *buf, size_t cap, size_t *len_out);
TSR_API int32_t tsr_tokenizer_vocab_size(const tsr_tokenizer *tok);
/* Special ids, -1 if none. */
TSR_API int32_t tsr_tokenizer_bos(const tsr_tokenizer *tok);
TSR_API int32_t tsr_tokenizer_eos(const tsr_tokenizer *tok);

/* --- generation -------------------------------------------------------------- */

/* Called for each generated token with the new text (UTF-8, possibly empty
 * while a multi-byte character is incomplete).  Return nonzero to stop. */
typedef int (*tsr_token_fn)(int32_t token, const char *text, size_t len, void *user);

typedef struct tsr_generate_options {
    uint32_t struct_size;
    const tsr_config *config;    /* generation.* keys; NULL: the model's
                                    generation_config.json, then defaults     */
    int32_t max_new_tokens;      /* >0 overrides the config                    */
    int32_t logits_positions;    /* >0: record the prompt's first N logits     */
    float *logits_out;           /* [logits_positions * vocab], or NULL        */
} tsr_generate_options;
#define TSR_GENERATE_OPTIONS_INIT { sizeof(tsr_generate_options), NULL, 0, 0, NULL }

/* Generate from prompt ids.  Streams through `cb`; the KV cache is reset
 * first.  Writes the generated ids (not the prompt) to out_ids if not NULL. */
TSR_API tsr_status tsr_generate(tsr_model *model, const tsr_generate_options *opt,
                                const int32_t *prompt, size_t n_prompt,
                                tsr_token_fn cb, void *user,
                                int32_t *out_ids, size_t out_cap, size_t *n_out);

/* Logits of every prompt position: out [n * vocab].  Resets the cache. */
TSR_API tsr_status tsr_model_logits(tsr_model *model, const int32_t *ids, size_t n,
                                    float *out);

/* Run ids through the model continuing the KV cache (reset != 0 empties it
 * first) and write the logits of the last position: last_logits [vocab].
 * One call per generated token gives the decode step (benchmarks, custom
 * sampling loops). */
TSR_API tsr_status tsr_model_decode(tsr_model *model, const int32_t *ids, size_t n, int reset,
                                    float *last_logits);

#ifdef __cplusplus
}
#endif
#endif /* TESSERA_TESSERA_H */
