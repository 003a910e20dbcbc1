/* core/tokenizer_build.c - tsr__tokenizer_create(): a tokenizer from plain
 * arrays (GGUF's tokenizer.ggml.* metadata), assembling the same pipeline
 * steps that the equivalent Hugging Face tokenizer.json would name. */
#include <stdlib.h>
#include <string.h>
#include "tokenizer.h"

#define SP "\xe2\x96\x81" /* U+2581, SentencePiece's space */

static const char llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char qwen2_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static tsr_status step(tsr__tok_step **arr, size_t *n, int kind, const char *a, const char *b,
                       tsr__tok_step **out)
{
    tsr__tok_step *p = realloc(*arr, (*n + 1) * sizeof *p);
    if (!p)
        return tsr__error(TSR_ERR_NOMEM, "out of memory building a tokenizer");
    *arr = p;
    tsr__tok_step *s = &p[(*n)++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    if ((a && !(s->a = tsr__strdup(a))) || (b && !(s->b = tsr__strdup(b))))
        return tsr__error(TSR_ERR_NOMEM, "out of memory building a tokenizer");
    if (out)
        *out = s;
    return TSR_OK;
}

static tsr_status split_regex(tsr_tokenizer *t, const char *re, const char *what)
{
    tsr__tok_step *s = NULL;
    tsr_status st = step(&t->pre, &t->n_pre, TSR__PRE_SPLIT, re, NULL, &s);
    if (st)
        return st;
    s->behavior = TSR__SPLIT_ISOLATED;
    return tsr__tok_regex(re, what, &s->re);
}

static tsr_status byte_level(tsr_tokenizer *t, bool use_regex, const char *what)
{
    tsr__tok_step *s = NULL;
    tsr_status st = step(&t->pre, &t->n_pre, TSR__PRE_BYTELEVEL, NULL, NULL, &s);
    if (st)
        return st;
    s->flag1 = false, s->flag2 = use_regex;
    if ((st = tsr__tok_regex(tsr__tok_gpt2_regex, what, &s->re)))
        return st;
    t->has_decoder = true;
    return step(&t->dec, &t->n_dec, TSR__DEC_BYTELEVEL, NULL, NULL, NULL);
}

/* The normalizer / pre-tokenizer / decoder steps for a preset. */
static tsr_status pipeline(tsr_tokenizer *t, const tsr__tok_spec *sp, const char *what)
{
    tsr__tok_step *s = NULL;
    tsr_status st = TSR_OK;
    switch (sp->pre) {
    case TSR__TOK_PRE_NONE:
        return TSR_OK;
    case TSR__TOK_PRE_SPM: /* Llama-2's tokenizer.json */
        if ((!sp->spm_no_prefix &&
             (st = step(&t->norm, &t->n_norm, TSR__NORM_PREPEND, SP, NULL, NULL))) ||
            (st = step(&t->norm, &t->n_norm, TSR__NORM_REPLACE, " ", SP, NULL)) ||
            (st = step(&t->dec, &t->n_dec, TSR__DEC_REPLACE, SP, " ", NULL)) ||
            (st = step(&t->dec, &t->n_dec, TSR__DEC_BYTEFALLBACK, NULL, NULL, NULL)) ||
            (st = step(&t->dec, &t->n_dec, TSR__DEC_FUSE, NULL, NULL, NULL)) ||
            (!sp->spm_no_prefix && (st = step(&t->dec, &t->n_dec, TSR__DEC_STRIP, " ", NULL, &s))))
            return st;
        if (!sp->spm_no_prefix)
            s->start = 1;
        t->has_decoder = true;
        return TSR_OK;
    case TSR__TOK_PRE_METASPACE:
        if ((st = step(&t->pre, &t->n_pre, TSR__PRE_METASPACE, SP, NULL, &s)))
            return st;
        s->prepend = TSR__PREPEND_FIRST, s->flag1 = true;
        if ((st = step(&t->dec, &t->n_dec, TSR__DEC_METASPACE, SP, NULL, &s)))
            return st;
        s->prepend = TSR__PREPEND_FIRST;
        t->has_decoder = true;
        return TSR_OK;
    case TSR__TOK_PRE_GPT2:
        return byte_level(t, true, what);
    case TSR__TOK_PRE_LLAMA3:
        return (st = split_regex(t, llama3_regex, what)) ? st : byte_level(t, false, what);
    case TSR__TOK_PRE_QWEN2:
        return (st = split_regex(t, qwen2_regex, what)) ? st : byte_level(t, false, what);
    case TSR__TOK_PRE_DIGITS_GPT2:
        if ((st = step(&t->pre, &t->n_pre, TSR__PRE_DIGITS, NULL, NULL, &s)))
            return st;
        s->flag1 = true;
        return byte_level(t, true, what);
    case TSR__TOK_PRE_REGEX:
        if (sp->n_pre_regexes) {
            for (size_t i = 0; i < sp->n_pre_regexes; i++) {
                if (!sp->pre_regexes || !sp->pre_regexes[i])
                    return tsr__error(TSR_ERR_INVALID_ARG, "%s: pre-tokenizer regex %zu is missing",
                                      what, i);
                if ((st = split_regex(t, sp->pre_regexes[i], what)))
                    return st;
            }
            return byte_level(t, false, what);
        }
        if (!sp->pre_regex)
            return tsr__error(TSR_ERR_INVALID_ARG, "%s: TSR__TOK_PRE_REGEX without a regex", what);
        return (st = split_regex(t, sp->pre_regex, what)) ? st : byte_level(t, false, what);
    case TSR__TOK_PRE_BERT:
        if ((st = step(&t->norm, &t->n_norm, TSR__NORM_BERT, NULL, NULL, &s)))
            return st;
        s->bert_clean = s->bert_chinese = true;
        s->bert_lower = s->bert_accents = sp->lowercase;
        if ((st = step(&t->pre, &t->n_pre, TSR__PRE_BERT, NULL, NULL, NULL)) ||
            (st = step(&t->dec, &t->n_dec, TSR__DEC_WORDPIECE, "##", NULL, &s)))
            return st;
        s->flag1 = true;
        t->has_decoder = true;
        return TSR_OK;
    }
    return tsr__error(TSR_ERR_INVALID_ARG, "%s: unknown pre-tokenizer preset %d", what, (int)sp->pre);
}

/* GGUF stores WordPiece vocabularies in "phantom space" form (U+2581 starts a
 * word, continuations are bare); HF form has bare words and "##" continuations. */
static char *wordpiece_text(const char *tok, bool phantom)
{
    size_t l = strlen(tok);
    if (!phantom || (l >= 2 && tok[0] == '[' && tok[l - 1] == ']'))
        return tsr__strdup(tok);
    if (!strncmp(tok, SP, 3))
        return tsr__strdup(tok + 3);
    char *s = malloc(l + 3);
    if (s)
        memcpy(s, "##", 2), memcpy(s + 2, tok, l + 1);
    return s;
}

tsr_status tsr__tokenizer_create(const tsr__tok_spec *sp, const char *what, tsr_tokenizer **out)
{
    if (!sp || !out || !sp->tokens || !sp->n_vocab || sp->n_vocab > INT32_MAX)
        return tsr__error(TSR_ERR_INVALID_ARG, "%s: tokenizer spec without tokens",
                          what ? what : "tokenizer");
    *out = NULL;
    if (!what)
        what = "tokenizer";
    tsr_tokenizer *t;
    tsr_status st = tsr__tokenizer_alloc(what, &t);
    if (st)
        return st;
    tsr__tok_model *m = &t->model;
    m->type = sp->model;
    m->cont_prefix = tsr__strdup(sp->model == TSR__TOK_WORDPIECE ? "##" : "");
    m->eow_suffix = tsr__strdup("");
    if (!m->cont_prefix || !m->eow_suffix)
        goto nomem;
    if (sp->scores) {
        if (!(m->scores = malloc(sp->n_vocab * sizeof *m->scores)))
            goto nomem;
        memcpy(m->scores, sp->scores, sp->n_vocab * sizeof *m->scores);
    }
    double min_score = 0;
    for (size_t i = 0; i < sp->n_vocab; i++) {
        const char *text = sp->tokens[i];
        if (!text) {
            st = tsr__error(TSR_ERR_FORMAT, "%s: token %zu has no text", what, i);
            goto fail;
        }
        int32_t type = sp->token_types ? sp->token_types[i] : TSR__TOKTYPE_NORMAL;
        char *k = sp->model == TSR__TOK_WORDPIECE ? wordpiece_text(text, sp->wordpiece_phantom)
                                                  : tsr__strdup(text);
        if (!k)
            goto nomem;
        size_t len = strlen(k);
        if (tsr__tokmap_get(&m->vocab, k, len) >= 0) { /* duplicate text: first id wins */
            free(k);
        } else if ((st = tsr__tokmap_put(&m->vocab, k, len, (int32_t)i))) {
            free(k);
            goto fail;
        }
        if (len > m->max_token_len)
            m->max_token_len = len;
        if (sp->scores && sp->scores[i] < min_score)
            min_score = sp->scores[i];
        if (type == TSR__TOKTYPE_UNKNOWN && sp->unk_id < 0)
            m->unk_id = (int32_t)i;
        if (type == TSR__TOKTYPE_CONTROL || type == TSR__TOKTYPE_USER_DEFINED ||
            type == TSR__TOKTYPE_UNKNOWN) {
            st = tsr__tokenizer_add_token(t, text, (int32_t)i, type != TSR__TOKTYPE_USER_DEFINED,
                                          false, false, false, false);
            if (st)
                goto fail;
        }
    }
    if (sp->unk_id >= 0)
        m->unk_id = sp->unk_id;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_ids[b] = tsr__tokmap_get(&m->vocab, name, 6);
    }
    m->byte_fallback = sp->byte_fallback;
    m->ignore_merges = sp->ignore_merges;
    m->unk_score = (float)(min_score - 10.0);
    m->fuse_unk = sp->model == TSR__TOK_UNIGRAM || sp->pre == TSR__TOK_PRE_SPM;
    if (sp->model == TSR__TOK_BPE && !sp->n_merges)
        m->merge_by_score = true;
    for (size_t i = 0; i < sp->n_merges; i++) {
        const char *a = sp->merges[i], *s = a ? strchr(a, ' ') : NULL;
        if (!s) {
            st = tsr__error(TSR_ERR_FORMAT, "%s: merge %zu \"%s\" is not two tokens", what, i,
                            a ? a : "");
            goto fail;
        }
        if ((st = tsr__tok_model_add_merge(m, a, (size_t)(s - a), s + 1, strlen(s + 1),
                                           (int32_t)i, what)))
            goto fail;
    }
    if ((st = pipeline(t, sp, what)))
        goto fail;
    t->bos = sp->bos_id, t->eos = sp->eos_id;
    if ((sp->add_bos && sp->bos_id < 0) || (sp->add_eos && sp->eos_id < 0)) {
        st = tsr__error(TSR_ERR_FORMAT, "%s: add_%s_token is set but there is no %s token", what,
                        sp->add_bos && sp->bos_id < 0 ? "bos" : "eos",
                        sp->add_bos && sp->bos_id < 0 ? "bos" : "eos");
        goto fail;
    }
    if (sp->add_bos || sp->add_eos) {
        size_t n = 1 + sp->add_bos + sp->add_eos, k = 0;
        if (!(t->tpl = calloc(n, sizeof *t->tpl)))
            goto nomem;
        t->n_tpl = n;
        if (sp->add_bos) {
            if (!(t->tpl[k].ids = malloc(sizeof(int32_t))))
                goto nomem;
            t->tpl[k].ids[0] = sp->bos_id, t->tpl[k++].n = 1;
        }
        t->tpl[k++].is_seq = true;
        if (sp->add_eos) {
            if (!(t->tpl[k].ids = malloc(sizeof(int32_t))))
                goto nomem;
            t->tpl[k].ids[0] = sp->eos_id, t->tpl[k].n = 1;
        }
    }
    if ((st = tsr__tokenizer_finish(t)))
        goto fail;
    *out = t;
    return TSR_OK;
nomem:
    st = tsr__error(TSR_ERR_NOMEM, "out of memory building a tokenizer");
fail:
    tsr_tokenizer_destroy(t);
    return st;
}
