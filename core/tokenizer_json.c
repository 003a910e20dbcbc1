/* core/tokenizer_json.c - tsr_tokenizer_load(): read a Hugging Face
 * tokenizer.json (format of `tokenizers` >= 0.13) and tokenizer_config.json
 * into the flattened pipeline of tokenizer.h.  Unknown component types are
 * errors naming the type and the file. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "tokenizer.h"

typedef struct ctx {
    tsr_tokenizer *tok;
    const char *path;
} ctx;

static const char *jstr(const json_t *o, const char *key, const char *dflt)
{
    const json_t *v = json_object_get(o, key);
    return v && json_is_string(v) ? json_string_value(v) : dflt;
}

static bool jbool(const json_t *o, const char *key, bool dflt)
{
    const json_t *v = json_object_get(o, key);
    return v && json_is_boolean(v) ? json_is_true(v) : dflt;
}

static char *dup_or_empty(const char *s)
{
    return tsr__strdup(s ? s : "");
}

static tsr_status oom(void)
{
    return tsr__error(TSR_ERR_NOMEM, "out of memory loading a tokenizer");
}

static tsr_status push_step(tsr__tok_step **arr, size_t *n, tsr__tok_step **out)
{
    tsr__tok_step *a = realloc(*arr, (*n + 1) * sizeof *a);
    if (!a)
        return oom();
    *arr = a;
    memset(&a[*n], 0, sizeof *a);
    *out = &a[(*n)++];
    return TSR_OK;
}

/* {"Regex": "..."} or {"String": "..."} into step->a / step->re. */
static tsr_status parse_pattern(ctx *c, const json_t *pat, const char *who, tsr__tok_step *s)
{
    const char *re = jstr(pat, "Regex", NULL), *lit = jstr(pat, "String", NULL);
    if (re) {
        s->a = tsr__strdup(re);
        char what[512];
        snprintf(what, sizeof what, "%s: %s", c->path, who);
        return s->a ? tsr__tok_regex(re, what, &s->re) : oom();
    }
    if (lit) {
        s->a = tsr__strdup(lit);
        return s->a ? TSR_OK : oom();
    }
    return tsr__error(TSR_ERR_FORMAT, "%s: %s pattern is neither {\"String\"} nor {\"Regex\"}",
                      c->path, who);
}

static int prepend_scheme(const json_t *o)
{
    const char *p = jstr(o, "prepend_scheme", NULL);
    if (p)
        return !strcmp(p, "first") ? TSR__PREPEND_FIRST
             : !strcmp(p, "never") ? TSR__PREPEND_NEVER : TSR__PREPEND_ALWAYS;
    return jbool(o, "add_prefix_space", true) ? TSR__PREPEND_ALWAYS : TSR__PREPEND_NEVER;
}

/* --- normalizers ----------------------------------------------------------------- */

static tsr_status parse_normalizer(ctx *c, const json_t *j)
{
    tsr_tokenizer *t = c->tok;
    if (!j || json_is_null(j))
        return TSR_OK;
    const char *type = jstr(j, "type", "");
    if (!strcmp(type, "Sequence")) {
        const json_t *arr = json_object_get(j, "normalizers");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            tsr_status st = parse_normalizer(c, json_array_get(arr, i));
            if (st)
                return st;
        }
        return TSR_OK;
    }
    static const struct { const char *name; int kind; } simple[] = {
        {"NFC", TSR__NORM_NFC}, {"NFD", TSR__NORM_NFD}, {"NFKC", TSR__NORM_NFKC},
        {"NFKD", TSR__NORM_NFKD}, {"Lowercase", TSR__NORM_LOWERCASE},
        {"StripAccents", TSR__NORM_STRIP_ACCENTS},
    };
    tsr__tok_step *s = NULL;
    tsr_status st = push_step(&t->norm, &t->n_norm, &s);
    if (st)
        return st;
    for (size_t i = 0; i < sizeof simple / sizeof *simple; i++)
        if (!strcmp(type, simple[i].name)) {
            s->kind = simple[i].kind;
            return TSR_OK;
        }
    if (!strcmp(type, "Precompiled")) {
        /* SentencePiece's compiled character map: mostly NFKC. */
        tsr__log(TSR_LOG_WARN, "%s: Precompiled normalizer approximated by NFKC", c->path);
        s->kind = TSR__NORM_NFKC;
    } else if (!strcmp(type, "Strip")) {
        s->kind = TSR__NORM_STRIP;
        s->flag1 = jbool(j, "strip_left", true), s->flag2 = jbool(j, "strip_right", true);
    } else if (!strcmp(type, "Prepend")) {
        s->kind = TSR__NORM_PREPEND;
        if (!(s->a = dup_or_empty(jstr(j, "prepend", ""))))
            return oom();
    } else if (!strcmp(type, "Replace")) {
        s->kind = TSR__NORM_REPLACE;
        if (!(s->b = dup_or_empty(jstr(j, "content", ""))))
            return oom();
        return parse_pattern(c, json_object_get(j, "pattern"), "Replace normalizer", s);
    } else if (!strcmp(type, "BertNormalizer")) {
        s->kind = TSR__NORM_BERT;
        s->bert_clean = jbool(j, "clean_text", true);
        s->bert_chinese = jbool(j, "handle_chinese_chars", true);
        s->bert_lower = jbool(j, "lowercase", true);
        s->bert_accents = jbool(j, "strip_accents", s->bert_lower); /* null: as lowercase */
    } else {
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s: unknown normalizer type \"%s\"", c->path, type);
    }
    return TSR_OK;
}

/* --- pre-tokenizers --------------------------------------------------------------- */

static int parse_behavior(const char *b)
{
    if (!b) return TSR__SPLIT_ISOLATED;
    if (!strcmp(b, "Removed")) return TSR__SPLIT_REMOVED;
    if (!strcmp(b, "MergedWithPrevious")) return TSR__SPLIT_MERGED_PREV;
    if (!strcmp(b, "MergedWithNext")) return TSR__SPLIT_MERGED_NEXT;
    if (!strcmp(b, "Contiguous")) return TSR__SPLIT_CONTIGUOUS;
    if (!strcmp(b, "Isolated")) return TSR__SPLIT_ISOLATED;
    return -1;
}

static tsr_status parse_pre(ctx *c, const json_t *j)
{
    tsr_tokenizer *t = c->tok;
    if (!j || json_is_null(j))
        return TSR_OK;
    const char *type = jstr(j, "type", "");
    if (!strcmp(type, "Sequence")) {
        const json_t *arr = json_object_get(j, "pretokenizers");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            tsr_status st = parse_pre(c, json_array_get(arr, i));
            if (st)
                return st;
        }
        return TSR_OK;
    }
    tsr__tok_step *s = NULL;
    tsr_status st = push_step(&t->pre, &t->n_pre, &s);
    if (st)
        return st;
    char what[300];
    snprintf(what, sizeof what, "%s: %s pre-tokenizer", c->path, type);
    if (!strcmp(type, "Split")) {
        s->kind = TSR__PRE_SPLIT;
        s->behavior = parse_behavior(jstr(j, "behavior", "Isolated"));
        s->invert = jbool(j, "invert", false);
        if (s->behavior < 0)
            return tsr__error(TSR_ERR_FORMAT, "%s: unknown Split behavior \"%s\"", c->path,
                              jstr(j, "behavior", ""));
        return parse_pattern(c, json_object_get(j, "pattern"), "Split pre-tokenizer", s);
    } else if (!strcmp(type, "ByteLevel")) {
        s->kind = TSR__PRE_BYTELEVEL;
        s->flag1 = jbool(j, "add_prefix_space", true);
        s->flag2 = jbool(j, "use_regex", true);
        return tsr__tok_regex(tsr__tok_gpt2_regex, what, &s->re);
    } else if (!strcmp(type, "Digits")) {
        s->kind = TSR__PRE_DIGITS;
        s->flag1 = jbool(j, "individual_digits", false);
    } else if (!strcmp(type, "Metaspace")) {
        s->kind = TSR__PRE_METASPACE;
        s->prepend = prepend_scheme(j);
        s->flag1 = jbool(j, "split", true);
        if (!(s->a = dup_or_empty(jstr(j, "replacement", "\xe2\x96\x81"))))
            return oom();
    } else if (!strcmp(type, "Whitespace")) {
        s->kind = TSR__PRE_WHITESPACE;
        return tsr__tok_regex("\\w+|[^\\w\\s]+", what, &s->re);
    } else if (!strcmp(type, "WhitespaceSplit")) {
        s->kind = TSR__PRE_WHITESPACE_SPLIT;
    } else if (!strcmp(type, "Punctuation")) {
        s->kind = TSR__PRE_PUNCTUATION;
        s->behavior = parse_behavior(jstr(j, "behavior", "Isolated"));
        if (s->behavior < 0)
            return tsr__error(TSR_ERR_FORMAT, "%s: unknown Punctuation behavior \"%s\"", c->path,
                              jstr(j, "behavior", ""));
    } else if (!strcmp(type, "BertPreTokenizer")) {
        s->kind = TSR__PRE_BERT;
    } else if (!strcmp(type, "CharDelimiterSplit")) {
        s->kind = TSR__PRE_CHAR_DELIMITER;
        if (!(s->a = dup_or_empty(jstr(j, "delimiter", " "))))
            return oom();
    } else {
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s: unknown pre_tokenizer type \"%s\"", c->path,
                          type);
    }
    return TSR_OK;
}

/* --- decoders ----------------------------------------------------------------------- */

static tsr_status parse_decoder(ctx *c, const json_t *j)
{
    tsr_tokenizer *t = c->tok;
    if (!j || json_is_null(j))
        return TSR_OK;
    t->has_decoder = true;
    const char *type = jstr(j, "type", "");
    if (!strcmp(type, "Sequence")) {
        const json_t *arr = json_object_get(j, "decoders");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            tsr_status st = parse_decoder(c, json_array_get(arr, i));
            if (st)
                return st;
        }
        return TSR_OK;
    }
    tsr__tok_step *s = NULL;
    tsr_status st = push_step(&t->dec, &t->n_dec, &s);
    if (st)
        return st;
    if (!strcmp(type, "ByteLevel")) {
        s->kind = TSR__DEC_BYTELEVEL;
    } else if (!strcmp(type, "ByteFallback")) {
        s->kind = TSR__DEC_BYTEFALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        s->kind = TSR__DEC_FUSE;
    } else if (!strcmp(type, "Strip")) {
        s->kind = TSR__DEC_STRIP;
        s->start = (int)json_integer_value(json_object_get(j, "start"));
        s->stop = (int)json_integer_value(json_object_get(j, "stop"));
        if (!(s->a = dup_or_empty(jstr(j, "content", " "))))
            return oom();
    } else if (!strcmp(type, "Replace")) {
        s->kind = TSR__DEC_REPLACE;
        if (!(s->b = dup_or_empty(jstr(j, "content", ""))))
            return oom();
        return parse_pattern(c, json_object_get(j, "pattern"), "Replace decoder", s);
    } else if (!strcmp(type, "Metaspace")) {
        s->kind = TSR__DEC_METASPACE;
        s->prepend = prepend_scheme(j);
        if (!(s->a = dup_or_empty(jstr(j, "replacement", "\xe2\x96\x81"))))
            return oom();
    } else if (!strcmp(type, "WordPiece")) {
        s->kind = TSR__DEC_WORDPIECE;
        s->flag1 = jbool(j, "cleanup", true);
        if (!(s->a = dup_or_empty(jstr(j, "prefix", "##"))))
            return oom();
    } else if (!strcmp(type, "BPEDecoder")) {
        s->kind = TSR__DEC_BPE_SUFFIX;
        if (!(s->a = dup_or_empty(jstr(j, "suffix", "</w>"))))
            return oom();
    } else if (!strcmp(type, "CTC")) {
        s->kind = TSR__DEC_CTC;
        s->a = dup_or_empty(jstr(j, "pad_token", "<pad>"));
        s->b = dup_or_empty(jstr(j, "word_delimiter_token", "|"));
        if (!s->a || !s->b)
            return oom();
    } else {
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s: unknown decoder type \"%s\"", c->path, type);
    }
    return TSR_OK;
}

/* --- the model -------------------------------------------------------------------------- */

static tsr_status vocab_put(ctx *c, const char *token, int64_t id)
{
    if (id < 0 || id > INT32_MAX - 1)
        return tsr__error(TSR_ERR_FORMAT, "%s: token \"%s\" has a bad id %lld", c->path, token,
                          (long long)id);
    tsr__tok_model *m = &c->tok->model;
    size_t len = strlen(token);
    if (tsr__tokmap_get(&m->vocab, token, len) >= 0)
        return tsr__tokmap_put(&m->vocab, token, len, (int32_t)id); /* keeps the first key text */
    char *k = tsr__strdup(token);
    if (!k)
        return oom();
    tsr_status st = tsr__tokmap_put(&m->vocab, k, len, (int32_t)id);
    if (st)
        free(k);
    return st;
}

static void find_byte_tokens(tsr__tok_model *m)
{
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_ids[b] = tsr__tokmap_get(&m->vocab, name, 6);
    }
}

static tsr_status parse_merges(ctx *c, const json_t *merges)
{
    tsr_status st = TSR_OK;
    for (size_t i = 0; i < json_array_size(merges) && !st; i++) {
        const json_t *e = json_array_get(merges, i);
        const char *a, *b;
        size_t la, lb;
        if (json_is_string(e)) {
            a = json_string_value(e);
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return tsr__error(TSR_ERR_FORMAT, "%s: merge %zu \"%s\" is not two tokens",
                                  c->path, i, a);
            la = (size_t)(sp - a), b = sp + 1, lb = strlen(b);
        } else if (json_is_array(e) && json_array_size(e) == 2 &&
                   json_is_string(json_array_get(e, 0)) && json_is_string(json_array_get(e, 1))) {
            a = json_string_value(json_array_get(e, 0)), la = strlen(a);
            b = json_string_value(json_array_get(e, 1)), lb = strlen(b);
        } else {
            return tsr__error(TSR_ERR_FORMAT, "%s: merge %zu is neither \"a b\" nor [a, b]",
                              c->path, i);
        }
        st = tsr__tok_model_add_merge(&c->tok->model, a, la, b, lb, (int32_t)i, c->path);
    }
    return st;
}

static tsr_status parse_model(ctx *c, const json_t *j)
{
    tsr__tok_model *m = &c->tok->model;
    if (!json_is_object(j))
        return tsr__error(TSR_ERR_FORMAT, "%s: no \"model\" object", c->path);
    const json_t *vocab = json_object_get(j, "vocab");
    const char *type = jstr(j, "type", NULL);
    if (!type) /* files written before "type" existed */
        type = json_object_get(j, "merges") ? "BPE" : json_is_array(vocab) ? "Unigram" : "WordPiece";
    tsr_status st = TSR_OK;
    m->cont_prefix = dup_or_empty(jstr(j, "continuing_subword_prefix", ""));
    m->eow_suffix = dup_or_empty(jstr(j, "end_of_word_suffix", ""));
    if (!m->cont_prefix || !m->eow_suffix)
        return oom();
    if (!strcmp(type, "BPE") || !strcmp(type, "WordPiece")) {
        m->type = !strcmp(type, "BPE") ? TSR__TOK_BPE : TSR__TOK_WORDPIECE;
        if (!json_is_object(vocab))
            return tsr__error(TSR_ERR_FORMAT, "%s: model.vocab is not an object", c->path);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)vocab, k, v) {
            if (!json_is_integer(v))
                return tsr__error(TSR_ERR_FORMAT, "%s: model.vocab[\"%s\"] is not an integer",
                                  c->path, k);
            if ((st = vocab_put(c, k, json_integer_value(v))))
                return st;
        }
        const char *unk = jstr(j, "unk_token", NULL);
        if (unk) {
            m->unk_id = tsr__tokmap_get(&m->vocab, unk, strlen(unk));
            if (m->unk_id < 0 && m->type == TSR__TOK_WORDPIECE)
                return tsr__error(TSR_ERR_FORMAT, "%s: unk_token \"%s\" is not in the vocabulary",
                                  c->path, unk);
        }
        if (m->type == TSR__TOK_WORDPIECE) {
            free(m->cont_prefix);
            if (!(m->cont_prefix = dup_or_empty(jstr(j, "continuing_subword_prefix", "##"))))
                return oom();
            m->max_input_chars = (int)json_integer_value(json_object_get(j, "max_input_chars_per_word"));
            if (m->max_input_chars <= 0)
                m->max_input_chars = 100;
        } else {
            m->byte_fallback = jbool(j, "byte_fallback", false);
            m->fuse_unk = jbool(j, "fuse_unk", false);
            m->ignore_merges = jbool(j, "ignore_merges", false);
            const json_t *dropout = json_object_get(j, "dropout");
            if (dropout && json_is_number(dropout) && json_number_value(dropout) > 0)
                tsr__log(TSR_LOG_WARN, "%s: BPE dropout ignored (encoding is deterministic)",
                         c->path);
            if ((st = parse_merges(c, json_object_get(j, "merges"))))
                return st;
        }
    } else if (!strcmp(type, "Unigram")) {
        m->type = TSR__TOK_UNIGRAM;
        if (!json_is_array(vocab))
            return tsr__error(TSR_ERR_FORMAT, "%s: Unigram model.vocab is not an array", c->path);
        size_t n = json_array_size(vocab);
        if (!(m->scores = calloc(n + 1, sizeof *m->scores)))
            return oom();
        double min_score = 0;
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(vocab, i);
            const char *tk = json_string_value(json_array_get(e, 0));
            if (!tk || !json_is_number(json_array_get(e, 1)))
                return tsr__error(TSR_ERR_FORMAT, "%s: model.vocab[%zu] is not [token, score]",
                                  c->path, i);
            double s = json_number_value(json_array_get(e, 1));
            m->scores[i] = (float)s;
            if (s < min_score)
                min_score = s;
            if (strlen(tk) > m->max_token_len)
                m->max_token_len = strlen(tk);
            if ((st = vocab_put(c, tk, (int64_t)i)))
                return st;
        }
        m->unk_score = (float)(min_score - 10.0);
        const json_t *unk = json_object_get(j, "unk_id");
        m->unk_id = json_is_integer(unk) ? (int32_t)json_integer_value(unk) : -1;
        m->byte_fallback = jbool(j, "byte_fallback", false);
        m->fuse_unk = true;
    } else {
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s: unknown model type \"%s\"", c->path, type);
    }
    find_byte_tokens(m);
    return TSR_OK;
}

/* --- added tokens and the post-processor ------------------------------------------------ */

static tsr_status parse_added(ctx *c, const json_t *arr)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        const json_t *id = json_object_get(e, "id");
        const char *content = jstr(e, "content", NULL);
        if (!content || !json_is_integer(id))
            return tsr__error(TSR_ERR_FORMAT, "%s: added_tokens[%zu] lacks content or id",
                              c->path, i);
        bool special = jbool(e, "special", false);
        tsr_status st = tsr__tokenizer_add_token(c->tok, content, (int32_t)json_integer_value(id),
                                                 special, jbool(e, "lstrip", false),
                                                 jbool(e, "rstrip", false),
                                                 jbool(e, "single_word", false),
                                                 jbool(e, "normalized", !special));
        if (st)
            return st;
    }
    return TSR_OK;
}

/* Id of a token text: added tokens first, then the model's vocabulary. */
static int32_t token_id(const tsr_tokenizer *t, const char *s)
{
    for (size_t i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, s))
            return t->added[i].id;
    return tsr__tokmap_get(&t->model.vocab, s, strlen(s));
}

static tsr_status tpl_push(tsr_tokenizer *t, bool is_seq, const int32_t *ids, size_t n)
{
    tsr__tok_tpl *a = realloc(t->tpl, (t->n_tpl + 1) * sizeof *a);
    if (!a)
        return oom();
    t->tpl = a;
    a[t->n_tpl] = (tsr__tok_tpl){is_seq, NULL, 0};
    if (n) {
        if (!(a[t->n_tpl].ids = malloc(n * sizeof *ids)))
            return oom();
        memcpy(a[t->n_tpl].ids, ids, n * sizeof *ids);
        a[t->n_tpl].n = n;
    }
    t->n_tpl++;
    return TSR_OK;
}

/* "special": ["[CLS]", 101] */
static tsr_status pair_token(ctx *c, const json_t *p, const char *who, int32_t *id)
{
    const json_t *v = json_array_get(p, 1);
    if (!json_is_integer(v))
        return tsr__error(TSR_ERR_FORMAT, "%s: post_processor.%s is not [token, id]", c->path, who);
    *id = (int32_t)json_integer_value(v);
    return TSR_OK;
}

static tsr_status parse_post(ctx *c, const json_t *j)
{
    tsr_tokenizer *t = c->tok;
    if (!j || json_is_null(j))
        return TSR_OK;
    const char *type = jstr(j, "type", "");
    tsr_status st = TSR_OK;
    if (!strcmp(type, "Sequence")) {
        const json_t *arr = json_object_get(j, "processors");
        for (size_t i = 0; i < json_array_size(arr) && !st; i++)
            st = parse_post(c, json_array_get(arr, i));
        return st;
    }
    if (!strcmp(type, "ByteLevel"))
        return TSR_OK; /* offsets only */
    if (t->tpl)
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s: more than one post_processor adds tokens",
                          c->path);
    if (!strcmp(type, "TemplateProcessing")) {
        const json_t *single = json_object_get(j, "single");
        const json_t *specials = json_object_get(j, "special_tokens");
        if (!json_is_array(single))
            return tsr__error(TSR_ERR_FORMAT, "%s: TemplateProcessing.single is not a list",
                              c->path);
        for (size_t i = 0; i < json_array_size(single) && !st; i++) {
            const json_t *e = json_array_get(single, i);
            const json_t *sp = json_object_get(e, "SpecialToken");
            if (json_object_get(e, "Sequence")) {
                st = tpl_push(t, true, NULL, 0);
                continue;
            }
            const char *name = jstr(sp, "id", NULL);
            const json_t *def = json_object_get(specials, name ? name : "");
            const json_t *ids = json_object_get(def, "ids");
            if (!name || !json_is_array(ids))
                return tsr__error(TSR_ERR_FORMAT, "%s: TemplateProcessing special token \"%s\" "
                                  "is not defined in special_tokens", c->path, name ? name : "?");
            int32_t v[64];
            size_t n = json_array_size(ids) < 64 ? json_array_size(ids) : 64;
            for (size_t k = 0; k < n; k++)
                v[k] = (int32_t)json_integer_value(json_array_get(ids, k));
            st = tpl_push(t, false, v, n);
        }
        return st;
    }
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        int32_t cls, sep;
        if ((st = pair_token(c, json_object_get(j, "cls"), "cls", &cls)) ||
            (st = pair_token(c, json_object_get(j, "sep"), "sep", &sep)))
            return st;
        if ((st = tpl_push(t, false, &cls, 1)) || (st = tpl_push(t, true, NULL, 0)))
            return st;
        return tpl_push(t, false, &sep, 1);
    }
    return tsr__error(TSR_ERR_UNSUPPORTED, "%s: unknown post_processor type \"%s\"", c->path, type);
}

/* tokenizer_config.json's "bos_token": "<s>" or {"content": "<s>", ...}. */
static const char *config_token(const json_t *cfg, const char *key)
{
    const json_t *v = json_object_get(cfg, key);
    if (json_is_string(v))
        return json_string_value(v);
    return jstr(v, "content", NULL);
}

/* transformers' LlamaTokenizerFast (and its Code Llama / Gemma kin) rebuild
 * the post-processor from add_bos_token / add_eos_token. */
static tsr_status apply_config(ctx *c, const json_t *cfg, const char *cfg_path)
{
    tsr_tokenizer *t = c->tok;
    const char *bos = config_token(cfg, "bos_token"), *eos = config_token(cfg, "eos_token");
    if (bos)
        t->bos = token_id(t, bos);
    if (eos)
        t->eos = token_id(t, eos);
    const char *cls = jstr(cfg, "tokenizer_class", "");
    bool llama = !strncmp(cls, "LlamaTokenizer", 14) || !strncmp(cls, "CodeLlamaTokenizer", 18) ||
                 !strncmp(cls, "GemmaTokenizer", 14);
    const json_t *ab = json_object_get(cfg, "add_bos_token"), *ae = json_object_get(cfg, "add_eos_token");
    if (!llama || (!json_is_boolean(ab) && !json_is_boolean(ae)))
        return TSR_OK;
    bool add_bos = json_is_boolean(ab) ? json_is_true(ab) : true;
    bool add_eos = json_is_boolean(ae) ? json_is_true(ae) : false;
    if ((add_bos && t->bos < 0) || (add_eos && t->eos < 0))
        return tsr__error(TSR_ERR_FORMAT, "%s: add_%s_token is true but %s_token is not a known token",
                          cfg_path, add_bos && t->bos < 0 ? "bos" : "eos",
                          add_bos && t->bos < 0 ? "bos" : "eos");
    for (size_t i = 0; i < t->n_tpl; i++)
        free(t->tpl[i].ids);
    free(t->tpl);
    t->tpl = NULL, t->n_tpl = 0;
    tsr_status st = TSR_OK;
    if (add_bos)
        st = tpl_push(t, false, &t->bos, 1);
    if (!st)
        st = tpl_push(t, true, NULL, 0);
    if (!st && add_eos)
        st = tpl_push(t, false, &t->eos, 1);
    return st;
}

/* tokenizer_config.json may hold integers beyond int64 (model_max_length
 * 1e30): read them as reals. */
static tsr_status load_config(const char *path, json_t **out)
{
    char *data;
    size_t len;
    tsr_status st = tsr__read_file(path, &data, &len);
    if (st)
        return st;
    json_error_t err;
    *out = json_loadb(data, len, JSON_DECODE_INT_AS_REAL, &err);
    free(data);
    if (!*out)
        return tsr__error(TSR_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", path, err.line,
                          err.column, err.text);
    return TSR_OK;
}

TSR_API tsr_status tsr_tokenizer_load(const char *dir, tsr_tokenizer **out)
{
    if (!dir || !out)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_tokenizer_load: NULL folder or output");
    *out = NULL;
    char *path = tsr__path_join(dir, "tokenizer.json");
    char *cpath = tsr__path_join(dir, "tokenizer_config.json");
    tsr_json *root = NULL;
    json_t *cfg = NULL;
    tsr_tokenizer *t = NULL;
    tsr_status st = TSR_OK;
    if (!path || !cpath) {
        st = oom();
        goto done;
    }
    if (!tsr__file_exists(path)) {
        st = tsr__error(TSR_ERR_NOT_FOUND, "%s: no such file (a tokenizer folder needs "
                        "tokenizer.json)", path);
        goto done;
    }
    if ((st = tsr__json_load_file(path, &root)))
        goto done;
    if (tsr__file_exists(cpath) && (st = load_config(cpath, &cfg)))
        goto done;
    if ((st = tsr__tokenizer_alloc(path, &t)))
        goto done;
    ctx c = {t, path};
    const json_t *j = (const json_t *)root;
    if (!json_is_object(j)) {
        st = tsr__error(TSR_ERR_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    if ((st = parse_model(&c, json_object_get(j, "model"))) ||
        (st = parse_normalizer(&c, json_object_get(j, "normalizer"))) ||
        (st = parse_pre(&c, json_object_get(j, "pre_tokenizer"))) ||
        (st = parse_decoder(&c, json_object_get(j, "decoder"))) ||
        (st = parse_added(&c, json_object_get(j, "added_tokens"))) ||
        (st = parse_post(&c, json_object_get(j, "post_processor"))))
        goto done;
    if (cfg && (st = apply_config(&c, cfg, cpath)))
        goto done;
    st = tsr__tokenizer_finish(t);
done:
    if (st) {
        tsr_tokenizer_destroy(t);
        t = NULL;
    }
    *out = t;
    if (root)
        tsr__json_free(root);
    json_decref(cfg);
    free(path), free(cpath);
    return st;
}
