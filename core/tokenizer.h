/* core/tokenizer.h - the tokenizer's internals (tsr__tok_* names).
 *
 * A tsr_tokenizer is the Hugging Face `tokenizers` pipeline, flattened:
 *
 *   text -> added tokens split out (longest first, never split further)
 *        -> normalizer steps  -> pre-tokenizer steps -> model (BPE | WordPiece | Unigram)
 *        -> post-processor template (only with TSR_TOKENIZE_ADD_SPECIAL)
 *   ids  -> id_to_token -> decoder steps -> UTF-8
 *
 * Sequences in tokenizer.json are flattened into arrays of steps.  Two ways
 * build one: tokenizer_json.c reads tokenizer.json (+ tokenizer_config.json),
 * and tsr__tokenizer_create() below builds one from plain arrays (what a GGUF
 * file's tokenizer.ggml.* metadata holds).  Both end in the same structure,
 * so a tokenizer behaves the same whichever file it came from.
 *
 * Files: tokenizer.c (public API, pipeline, steps), tokenizer_model.c (hash
 * maps, BPE, WordPiece, Unigram), tokenizer_json.c (tokenizer.json reader),
 * tokenizer_build.c (the builder), tokenizer_gguf.c (GGUF metadata -> builder).
 *
 * Thread-safety: a built tokenizer is immutable; encode/decode allocate
 * their scratch per call, so one tokenizer may be shared by threads.
 */
#ifndef TESSERA_CORE_TOKENIZER_H
#define TESSERA_CORE_TOKENIZER_H

#include <stdbool.h>
#include <stdint.h>
#include "gguf.h"
#include "internal.h"

/* --- the builder: a tokenizer from plain arrays (e.g. GGUF metadata) ---------- */

typedef enum tsr__tok_model_type {
    TSR__TOK_BPE = 1,       /* byte-pair encoding from a merge list, or from scores (below) */
    TSR__TOK_WORDPIECE = 2, /* BERT: greedy longest match, "##" continuation */
    TSR__TOK_UNIGRAM = 3    /* SentencePiece unigram: Viterbi over token scores */
} tsr__tok_model_type;

/* Token kinds, as GGUF's tokenizer.ggml.token_type numbers them. */
enum {
    TSR__TOKTYPE_NORMAL = 1, TSR__TOKTYPE_UNKNOWN = 2, TSR__TOKTYPE_CONTROL = 3,
    TSR__TOKTYPE_USER_DEFINED = 4, TSR__TOKTYPE_UNUSED = 5, TSR__TOKTYPE_BYTE = 6
};

/* How text is cut into words before the model (tokenizer.ggml.pre in GGUF
 * names one of these; TSR__TOK_PRE_REGEX takes the pattern from the spec). */
typedef enum tsr__tok_pre_kind {
    TSR__TOK_PRE_NONE = 0,     /* no pre-tokenizer                                   */
    TSR__TOK_PRE_SPM,          /* SentencePiece: normalizer prepends U+2581 and turns
                                  ' ' into U+2581 (Llama-2 style, no splitting)      */
    TSR__TOK_PRE_METASPACE,    /* Metaspace pre-tokenizer (replacement U+2581,
                                  prepend first, split)                              */
    TSR__TOK_PRE_GPT2,         /* ByteLevel with the GPT-2 regex                     */
    TSR__TOK_PRE_LLAMA3,       /* Llama-3 regex, then ByteLevel without regex        */
    TSR__TOK_PRE_QWEN2,        /* Qwen2 regex (digits one by one), then ByteLevel    */
    TSR__TOK_PRE_DIGITS_GPT2,  /* individual digits, then GPT-2 ByteLevel (SmolLM)  */
    TSR__TOK_PRE_BERT,         /* BertPreTokenizer (whitespace, punctuation)         */
    TSR__TOK_PRE_REGEX         /* spec->pre_regex then ByteLevel without regex       */
} tsr__tok_pre_kind;

/* Everything a tokenizer needs, as arrays.  All pointers are borrowed for
 * the duration of the call (the tokenizer copies what it keeps). */
typedef struct tsr__tok_spec {
    tsr__tok_model_type model;
    size_t n_vocab;
    const char *const *tokens;     /* [n_vocab] UTF-8 token text; id = index       */
    const float *scores;           /* [n_vocab] or NULL (Unigram: log-probs; BPE
                                      without merges: merge priority, higher first) */
    const int32_t *token_types;    /* [n_vocab] TSR__TOKTYPE_* or NULL (all normal) */
    size_t n_merges;
    const char *const *merges;     /* [n_merges] "left right", rank = index; BPE
                                      with n_merges == 0 merges by scores instead   */
    tsr__tok_pre_kind pre;
    const char *pre_regex;         /* for TSR__TOK_PRE_REGEX                        */
    const char *const *pre_regexes; /* TSR__TOK_PRE_REGEX with several patterns: a
                                      Hugging Face Sequence of Split(Isolated) steps
                                      applied in order, each to the pieces of the
                                      one before; used instead of pre_regex when
                                      n_pre_regexes > 0                            */
    size_t n_pre_regexes;
    bool ignore_merges;            /* BPE: a word that is a whole token is taken as
                                      it is, without merging (Llama-3, Tekken)     */
    bool spm_no_prefix;            /* TSR__TOK_PRE_SPM: no U+2581 prepended (GGUF
                                      tokenizer.ggml.add_space_prefix = false)     */
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 if none                          */
    bool add_bos, add_eos;         /* added with TSR_TOKENIZE_ADD_SPECIAL           */
    bool byte_fallback;            /* BPE/Unigram: unknown bytes as <0xXX> tokens   */
    bool lowercase;                /* WordPiece: BertNormalizer lowercasing         */
    bool wordpiece_phantom;        /* WordPiece tokens in GGUF's "phantom space"
                                      form (U+2581 starts a word, continuations
                                      bare): converted to "word"/"##cont"         */
} tsr__tok_spec;

/* Build a tokenizer from a spec.  CONTROL, UNKNOWN and USER_DEFINED tokens become
 * added tokens (never split; CONTROL/UNKNOWN ones are special and skipped by
 * TSR_DETOKENIZE_SKIP_SPECIAL); BYTE tokens must read "<0xXX>".  Errors name
 * the offending token or merge.  `what` names the source in messages (a file
 * path).  Free with tsr_tokenizer_destroy. */
tsr_status tsr__tokenizer_create(const tsr__tok_spec *spec, const char *what,
                                 tsr_tokenizer **out);

/* Build a tokenizer from a GGUF file's tokenizer.ggml.* metadata
 * (core/tokenizer_gguf.c): model "llama" (SentencePiece BPE by scores, byte
 * fallback), "gpt2" (byte-level BPE with the pre-tokenizer that
 * tokenizer.ggml.pre names) and "bert" (WordPiece).  An unknown `pre` falls
 * back to the GPT-2 regex with a warning.  `path` names the file in messages.
 * TSR_ERR_UNSUPPORTED for other models (t5, rwkv, ...), TSR_ERR_FORMAT for
 * malformed metadata (naming the key).  Free with tsr_tokenizer_destroy. */
tsr_status tsr__tokenizer_from_gguf(const tsr__gguf *g, const char *path, tsr_tokenizer **out);

/* --- internal structure (shared by the tokenizer*.c files) ---------------------- */

/* Open-addressing hash map from byte strings to int32 values. */
typedef struct tsr__tokmap {
    uint32_t *slots;   /* index+1 into keys/vals, 0 = empty */
    size_t cap;        /* power of two */
    size_t n;
    const char **keys; /* borrowed key texts */
    uint32_t *klen;
    int32_t *vals;
    size_t kcap;
} tsr__tokmap;

/* Hash map from a pair of ids to (rank, merged id). */
typedef struct tsr__tokpairs {
    uint64_t *keys;    /* (a << 32 | b) + 1, 0 = empty */
    int32_t *rank, *merged;
    size_t cap, n;
} tsr__tokpairs;

typedef struct tsr__tok_model {
    tsr__tok_model_type type;
    tsr__tokmap vocab;          /* model token text -> id                       */
    tsr__tokpairs merges;        /* BPE                                          */
    bool merge_by_score;        /* BPE without merges: a pair merges if their
                                   concatenation is a token; higher score first */
    float *scores;              /* [n_ids] or NULL                              */
    int32_t unk_id;             /* -1: none                                     */
    bool byte_fallback, fuse_unk, ignore_merges;
    char *cont_prefix;          /* BPE/WordPiece continuing_subword_prefix ("" none) */
    char *eow_suffix;           /* BPE end_of_word_suffix                      */
    int max_input_chars;        /* WordPiece                                    */
    size_t max_token_len;       /* Unigram: longest token in bytes              */
    float unk_score;            /* Unigram: score given to unknown pieces       */
    int32_t byte_ids[256];      /* "<0xXX>" ids, -1 where absent                */
} tsr__tok_model;

typedef struct tsr__added_token {
    char *content;        /* as written; what decoding gives                    */
    size_t len;
    char *match;          /* what is searched: content, normalized if `normalized` */
    size_t mlen;
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
} tsr__added_token;

enum tsr__tok_norm_kind {
    TSR__NORM_NFC, TSR__NORM_NFD, TSR__NORM_NFKC, TSR__NORM_NFKD, TSR__NORM_LOWERCASE,
    TSR__NORM_STRIP, TSR__NORM_STRIP_ACCENTS, TSR__NORM_PREPEND, TSR__NORM_REPLACE,
    TSR__NORM_BERT
};
enum tsr__tok_behavior {
    TSR__SPLIT_REMOVED, TSR__SPLIT_ISOLATED, TSR__SPLIT_MERGED_PREV, TSR__SPLIT_MERGED_NEXT,
    TSR__SPLIT_CONTIGUOUS
};
enum tsr__tok_pre_step_kind {
    TSR__PRE_SPLIT, TSR__PRE_BYTELEVEL, TSR__PRE_DIGITS, TSR__PRE_METASPACE,
    TSR__PRE_WHITESPACE, TSR__PRE_WHITESPACE_SPLIT, TSR__PRE_PUNCTUATION, TSR__PRE_BERT,
    TSR__PRE_CHAR_DELIMITER
};
enum tsr__tok_dec_kind {
    TSR__DEC_BYTELEVEL, TSR__DEC_BYTEFALLBACK, TSR__DEC_FUSE, TSR__DEC_STRIP, TSR__DEC_REPLACE,
    TSR__DEC_METASPACE, TSR__DEC_WORDPIECE, TSR__DEC_BPE_SUFFIX, TSR__DEC_CTC
};
enum { TSR__PREPEND_ALWAYS, TSR__PREPEND_FIRST, TSR__PREPEND_NEVER };

/* One step of a normalizer, pre-tokenizer or decoder.  Which fields mean
 * something depends on kind (see the parsers in tokenizer_json.c). */
typedef struct tsr__tok_step {
    int kind;
    char *a, *b;          /* Replace: pattern text, content; Prepend: text;
                             Metaspace: replacement; WordPiece: prefix; Strip: content */
    void *re;             /* pcre2_code* for Regex patterns, else NULL (literal a) */
    int behavior;         /* Split, Punctuation                                 */
    bool invert;          /* Split                                              */
    bool flag1, flag2;    /* ByteLevel: add_prefix_space, use_regex; Digits:
                             individual; Metaspace: split; Strip(norm): left,right;
                             WordPiece dec: cleanup                               */
    int prepend;          /* Metaspace TSR__PREPEND_*                           */
    int start, stop;      /* Strip decoder                                      */
    bool bert_clean, bert_chinese, bert_accents, bert_lower; /* BertNormalizer   */
} tsr__tok_step;

/* A piece of the post-processor template: a special token's ids, or the text. */
typedef struct tsr__tok_tpl {
    bool is_seq;
    int32_t *ids;
    size_t n;
} tsr__tok_tpl;

struct tsr_tokenizer {
    char *source;                 /* file or "what" for messages                */
    tsr__tok_model model;
    size_t n_ids;                 /* vocab size with added tokens (max id + 1)  */
    char **id_text;               /* [n_ids] token text by id, NULL for holes   */
    uint8_t *id_special;          /* [n_ids] 1 if a special added token         */
    tsr__added_token *added;      /* longest first                              */
    size_t n_added;
    size_t *added_by_byte[256];   /* indexes into added[] by first byte, -1 ended */
    tsr__tok_step *norm;  size_t n_norm;
    tsr__tok_step *pre;   size_t n_pre;
    tsr__tok_step *dec;   size_t n_dec;
    bool has_decoder;
    tsr__tok_tpl *tpl;    size_t n_tpl;  /* single-sequence template; NULL: none */
    int32_t bos, eos;
};

/* tokenizer_model.c */
tsr_status tsr__tokmap_put(tsr__tokmap *m, const char *key, size_t len, int32_t val);
int32_t tsr__tokmap_get(const tsr__tokmap *m, const char *key, size_t len); /* -1 absent */
void tsr__tokmap_free(tsr__tokmap *m);
tsr_status tsr__tokpairs_put(tsr__tokpairs *m, int32_t a, int32_t b, int32_t rank, int32_t merged);
void tsr__tokpairs_free(tsr__tokpairs *m);
/* Encode one pre-tokenized word (UTF-8), appending ids to *ids (realloc'd). */
tsr_status tsr__tok_model_encode(const tsr_tokenizer *tok, const char *w, size_t len,
                                 int32_t **ids, size_t *n, size_t *cap);
void tsr__tok_model_free(tsr__tok_model *m);
/* Add the BPE merge (a, b) with its rank; the merged token is a + b without
 * b's continuing_subword_prefix.  Errors name `what`, the rank and the token. */
tsr_status tsr__tok_model_add_merge(tsr__tok_model *m, const char *a, size_t la, const char *b,
                                    size_t lb, int32_t rank, const char *what);
/* Append one id to a growable array. */
tsr_status tsr__ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t id);

/* tokenizer.c */
/* An empty tokenizer (model type set later); source copied. */
tsr_status tsr__tokenizer_alloc(const char *source, tsr_tokenizer **out);
/* Finish: build id tables, index added tokens; call after the model and
 * added tokens are filled in.  n_ids at least max id + 1. */
tsr_status tsr__tokenizer_finish(tsr_tokenizer *tok);
/* Append an added token (copied).  Replaces one with the same content. */
tsr_status tsr__tokenizer_add_token(tsr_tokenizer *tok, const char *content, int32_t id,
                                    bool special, bool lstrip, bool rstrip,
                                    bool single_word, bool normalized);
/* Compile a PCRE2 pattern (UTF, UCP); error names `what` and the offset. */
tsr_status tsr__tok_regex(const char *pattern, const char *what, void **out);
/* The GPT-2 ByteLevel regex. */
extern const char tsr__tok_gpt2_regex[];

#endif /* TESSERA_CORE_TOKENIZER_H */
