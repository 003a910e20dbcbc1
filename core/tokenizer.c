/* core/tokenizer.c - the tokenizer pipeline (public API): added tokens,
 * normalizers, pre-tokenizers, post-processor template and decoders, each
 * mirroring Hugging Face `tokenizers` (src/{normalizers,pre_tokenizers,
 * decoders,processors}, tokenizer/added_vocabulary.rs).  Unicode: PCRE2 in
 * UTF+UCP mode for regexes, utf8proc for normalization and categories. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "tokenizer.h"

const char tsr__tok_gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* --- small helpers ------------------------------------------------------------ */

typedef struct sbuf { char *s; size_t n, cap; bool oom; } sbuf;

static void sb_add(sbuf *b, const void *p, size_t len)
{
    if (b->oom)
        return;
    if (b->n + len + 1 > b->cap) {
        size_t nc = (b->n + len + 1) * 2 + 32;
        char *s = realloc(b->s, nc);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s, b->cap = nc;
    }
    if (len)
        memcpy(b->s + b->n, p, len);
    b->n += len;
    b->s[b->n] = 0;
}

static void sb_cp(sbuf *b, int32_t cp)
{
    uint8_t u[4];
    utf8proc_ssize_t k = utf8proc_encode_char(cp, u);
    sb_add(b, u, (size_t)k);
}

/* Decode one code point at s[i] (input already validated). */
static int32_t next_cp(const char *s, size_t len, size_t *i)
{
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const uint8_t *)s + *i, (utf8proc_ssize_t)(len - *i), &cp);
    if (k <= 0) {
        (*i)++;
        return 0xfffd;
    }
    *i += (size_t)k;
    return cp;
}

static bool is_ws(int32_t c) /* Rust char::is_whitespace (White_Space) */
{
    if ((c >= 9 && c <= 13) || c == 32 || c == 0x85)
        return true;
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
}

static bool is_numeric(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

static bool is_punct(int32_t c)
{
    if (c < 128)
        return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
               (c >= 123 && c <= 126);
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

static bool is_mark(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME;
}

/* GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the
 * other 68 to U+0100.. in byte order. */
static int32_t byte_to_cp(uint8_t b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
        return b;
    if (b <= 32)
        return 256 + b;
    if (b >= 127 && b <= 160)
        return 256 + 33 + (b - 127);
    return 256 + 67; /* 173 */
}

static int cp_to_byte(int32_t cp)
{
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return cp;
    if (cp >= 256 && cp <= 288)
        return cp - 256;
    if (cp >= 289 && cp <= 322)
        return cp - 289 + 127;
    if (cp == 323)
        return 173;
    return -1;
}

/* Append bytes as UTF-8, each maximal invalid subpart becoming U+FFFD (as
 * Rust's String::from_utf8_lossy). Returns false if anything was invalid. */
static bool sb_add_lossy(sbuf *b, const uint8_t *p, size_t len)
{
    bool ok = true;
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        size_t need = 0;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            sb_add(b, p + i, 1), i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) need = 1;
        else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        }
        size_t j = i + 1, got = 0;
        while (need && got < need && j < len) {
            uint8_t d = p[j];
            if (got == 0 ? (d < lo || d > hi) : (d < 0x80 || d > 0xbf))
                break;
            got++, j++;
        }
        if (need && got == need) {
            sb_add(b, p + i, need + 1);
        } else {
            sb_add(b, "\xef\xbf\xbd", 3);
            ok = false;
        }
        i = j;
    }
    return ok;
}

static bool valid_utf8(const char *s, size_t len, size_t *bad)
{
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) {
            *bad = i;
            return false;
        }
        i += (size_t)k;
    }
    return true;
}

tsr_status tsr__tok_regex(const char *pattern, const char *what, void **out)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return tsr__error(TSR_ERR_FORMAT, "%s: regex \"%s\" does not compile at offset %zu: %s",
                          what, pattern, (size_t)off, (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up */
    *out = re;
    return TSR_OK;
}

/* --- pieces (the pre-tokenized string) ----------------------------------------- */

typedef struct piece { char *s; size_t len; bool at_start; } piece;
typedef struct plist { piece *p; size_t n, cap; } plist;

static tsr_status pl_push(plist *l, const char *s, size_t len, bool at_start)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        piece *p = realloc(l->p, nc * sizeof *p);
        if (!p)
            return tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing");
        l->p = p, l->cap = nc;
    }
    char *c = malloc(len + 1);
    if (!c)
        return tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing");
    memcpy(c, s, len);
    c[len] = 0;
    l->p[l->n++] = (piece){c, len, at_start};
    return TSR_OK;
}

static void pl_free(plist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->p[i].s);
    free(l->p);
    memset(l, 0, sizeof *l);
}

/* Matches of a pattern inside a piece: [start,end) with is_match. */
typedef struct seg { size_t a, b; bool m; } seg;
typedef struct slist { seg *s; size_t n, cap; } slist;

static bool sl_push(slist *l, size_t a, size_t b, bool m)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 32;
        seg *s = realloc(l->s, nc * sizeof *s);
        if (!s)
            return false;
        l->s = s, l->cap = nc;
    }
    l->s[l->n++] = (seg){a, b, m};
    return true;
}

/* Regex matches (tokenizers' Pattern for Regex): gaps and matches in order. */
static tsr_status find_regex(const pcre2_code *re, const char *s, size_t len, slist *out)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md)
        return tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing");
    size_t prev = 0, pos = 0;
    bool ok = true;
    while (pos <= len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc < 0)
            break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (a == b) { /* empty match: contributes nothing, step one character */
            if (a >= len)
                break;
            pos = a + 1;
            while (pos < len && ((uint8_t)s[pos] & 0xc0) == 0x80)
                pos++;
            continue;
        }
        if (a != prev)
            ok = ok && sl_push(out, prev, a, false);
        ok = ok && sl_push(out, a, b, true);
        prev = pos = b;
    }
    if (prev != len)
        ok = ok && sl_push(out, prev, len, false);
    pcre2_match_data_free(md);
    return ok ? TSR_OK : tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing");
}

static tsr_status find_literal(const char *pat, const char *s, size_t len, slist *out)
{
    size_t pl = strlen(pat), prev = 0;
    bool ok = true;
    if (pl)
        for (size_t i = 0; i + pl <= len;) {
            if (memcmp(s + i, pat, pl) == 0) {
                if (i != prev)
                    ok = ok && sl_push(out, prev, i, false);
                ok = ok && sl_push(out, i, i + pl, true);
                i += pl;
                prev = i;
            } else {
                i++;
            }
        }
    if (prev != len)
        ok = ok && sl_push(out, prev, len, false);
    return ok ? TSR_OK : tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing");
}

/* Each character satisfying pred is a match of its own. */
static tsr_status find_chars(bool (*pred)(int32_t, const void *), const void *ctx, const char *s,
                             size_t len, slist *out)
{
    size_t prev = 0, i = 0;
    bool ok = true;
    while (i < len) {
        size_t a = i;
        int32_t c = next_cp(s, len, &i);
        if (pred(c, ctx)) {
            if (a != prev)
                ok = ok && sl_push(out, prev, a, false);
            ok = ok && sl_push(out, a, i, true);
            prev = i;
        }
    }
    if (prev != len)
        ok = ok && sl_push(out, prev, len, false);
    return ok ? TSR_OK : tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing");
}

/* Apply a SplitDelimiterBehavior (tokenizers' normalizer.rs split()) and push
 * the non-empty resulting pieces. */
static tsr_status split_apply(const piece *in, slist *sl, int behavior, bool invert, plist *out)
{
    seg *s = sl->s;
    size_t n = sl->n, k = 0;
    if (invert)
        for (size_t i = 0; i < n; i++)
            s[i].m = !s[i].m;
    /* r: the result, as (a,b,remove) reusing the array in place where possible */
    switch (behavior) {
    case TSR__SPLIT_REMOVED:
        break; /* matches removed below */
    case TSR__SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++)
            s[i].m = false;
        break;
    case TSR__SPLIT_MERGED_PREV: {
        bool prevm = false;
        for (size_t i = 0; i < n; i++) {
            bool m = s[i].m;
            if (m && !prevm && k > 0)
                s[k - 1].b = s[i].b;
            else
                s[k++] = (seg){s[i].a, s[i].b, false};
            prevm = m;
        }
        n = k;
        break;
    }
    case TSR__SPLIT_MERGED_NEXT: {
        bool prevm = false;
        k = n;
        for (size_t i = n; i-- > 0;) { /* fill from the back */
            bool m = s[i].m;
            if (m && !prevm && k < n)
                s[k].a = s[i].a;
            else
                s[--k] = (seg){s[i].a, s[i].b, false};
            prevm = m;
        }
        memmove(s, s + k, (n - k) * sizeof *s);
        n -= k;
        break;
    }
    case TSR__SPLIT_CONTIGUOUS: {
        bool prevm = false;
        for (size_t i = 0; i < n; i++) {
            bool m = s[i].m;
            if (m == prevm && k > 0)
                s[k - 1].b = s[i].b;
            else
                s[k++] = (seg){s[i].a, s[i].b, false};
            prevm = m;
        }
        n = k;
        break;
    }
    }
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (s[i].m || s[i].a == s[i].b)
            continue;
        tsr_status st = pl_push(out, in->s + s[i].a, s[i].b - s[i].a, in->at_start && first &&
                                s[i].a == 0);
        if (st)
            return st;
        first = false;
    }
    return TSR_OK;
}

/* --- normalizers ------------------------------------------------------------------ */

static bool pred_ws(int32_t c, const void *ctx) { (void)ctx; return is_ws(c); }
static bool pred_num(int32_t c, const void *ctx) { (void)ctx; return is_numeric(c); }
static bool pred_punct(int32_t c, const void *ctx) { (void)ctx; return is_punct(c); }
static bool pred_eq(int32_t c, const void *ctx) { return c == *(const int32_t *)ctx; }

static int32_t first_cp(const char *s)
{
    size_t i = 0;
    return s && *s ? next_cp(s, strlen(s), &i) : -1;
}

static bool is_cjk(int32_t c) /* BERT's _is_chinese_char ranges */
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static tsr_status unicode_form(sbuf *b, const char *s, size_t len, int opts)
{
    utf8proc_uint8_t *o = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &o,
                                      (utf8proc_option_t)(UTF8PROC_STABLE | opts));
    if (r < 0)
        return tsr__error(TSR_ERR_INVALID_ARG, "text cannot be normalized: %s",
                          utf8proc_errmsg(r));
    sb_add(b, o, (size_t)r);
    free(o);
    return TSR_OK;
}

static tsr_status replace_all(sbuf *b, const tsr__tok_step *st, const char *s, size_t len)
{
    slist sl = {0};
    tsr_status e = st->re ? find_regex(st->re, s, len, &sl) : find_literal(st->a, s, len, &sl);
    for (size_t i = 0; !e && i < sl.n; i++) {
        if (sl.s[i].m)
            sb_add(b, st->b, strlen(st->b));
        else
            sb_add(b, s + sl.s[i].a, sl.s[i].b - sl.s[i].a);
    }
    free(sl.s);
    return e;
}

/* One normalizer step: in -> *b (b empty on entry). */
static tsr_status normalize_step(const tsr__tok_step *st, const char *s, size_t len, sbuf *b)
{
    size_t i = 0;
    switch (st->kind) {
    case TSR__NORM_NFC: return unicode_form(b, s, len, UTF8PROC_COMPOSE);
    case TSR__NORM_NFD: return unicode_form(b, s, len, UTF8PROC_DECOMPOSE);
    case TSR__NORM_NFKC: return unicode_form(b, s, len, UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case TSR__NORM_NFKD: return unicode_form(b, s, len, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
    case TSR__NORM_LOWERCASE:
        while (i < len)
            sb_cp(b, utf8proc_tolower(next_cp(s, len, &i)));
        return TSR_OK;
    case TSR__NORM_STRIP_ACCENTS:
        while (i < len) {
            int32_t c = next_cp(s, len, &i);
            if (!is_mark(c))
                sb_cp(b, c);
        }
        return TSR_OK;
    case TSR__NORM_STRIP: {
        size_t a = 0, e = len;
        if (st->flag1)
            while (a < len) {
                size_t j = a;
                if (!is_ws(next_cp(s, len, &j)))
                    break;
                a = j;
            }
        if (st->flag2) {
            size_t j = a, last = a;
            while (j < len) {
                if (!is_ws(next_cp(s, len, &j)))
                    last = j;
            }
            e = last;
        }
        sb_add(b, s + a, e - a);
        return TSR_OK;
    }
    case TSR__NORM_PREPEND:
        if (len)
            sb_add(b, st->a, strlen(st->a));
        sb_add(b, s, len);
        return TSR_OK;
    case TSR__NORM_REPLACE:
        return replace_all(b, st, s, len);
    case TSR__NORM_BERT: {
        sbuf t = {0};
        while (i < len) {
            int32_t c = next_cp(s, len, &i);
            if (st->bert_clean) {
                utf8proc_category_t k = utf8proc_category(c);
                bool ctrl = c != '\t' && c != '\n' && c != '\r' &&
                            (k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF ||
                             k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CN);
                if (c == 0 || c == 0xfffd || ctrl)
                    continue;
                if (is_ws(c))
                    c = ' ';
            }
            if (st->bert_chinese && is_cjk(c)) {
                sb_add(&t, " ", 1), sb_cp(&t, c), sb_add(&t, " ", 1);
            } else {
                sb_cp(&t, c);
            }
        }
        tsr_status e = TSR_OK;
        if (st->bert_accents && t.n) {
            sbuf d = {0};
            e = unicode_form(&d, t.s, t.n, UTF8PROC_DECOMPOSE);
            free(t.s);
            t = (sbuf){0};
            for (size_t j = 0; !e && j < d.n;) {
                int32_t c = next_cp(d.s, d.n, &j);
                if (utf8proc_category(c) != UTF8PROC_CATEGORY_MN)
                    sb_cp(&t, c);
            }
            free(d.s);
        }
        for (size_t j = 0; !e && j < t.n;) {
            int32_t c = next_cp(t.s, t.n, &j);
            sb_cp(b, st->bert_lower ? utf8proc_tolower(c) : c);
        }
        free(t.s);
        return e;
    }
    }
    return tsr__error(TSR_ERR_INTERNAL, "unknown normalizer step %d", st->kind);
}

/* Run all normalizer steps; *out malloc'd (NUL-terminated). */
static tsr_status normalize(const tsr_tokenizer *tok, const char *s, size_t len, char **out,
                            size_t *olen)
{
    sbuf cur = {0};
    sb_add(&cur, s, len);
    if (!cur.s)
        sb_add(&cur, "", 0);
    for (size_t k = 0; k < tok->n_norm && !cur.oom; k++) {
        sbuf nb = {0};
        sb_add(&nb, "", 0);
        tsr_status st = normalize_step(&tok->norm[k], cur.s, cur.n, &nb);
        free(cur.s);
        cur = nb;
        if (st) {
            free(cur.s);
            return st;
        }
    }
    if (cur.oom) {
        free(cur.s);
        return tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing");
    }
    *out = cur.s, *olen = cur.n;
    return TSR_OK;
}

/* --- pre-tokenizers --------------------------------------------------------------- */

static tsr_status pre_step(const tsr__tok_step *st, const piece *p, plist *out)
{
    slist sl = {0};
    tsr_status e = TSR_OK;
    switch (st->kind) {
    case TSR__PRE_SPLIT:
        e = st->re ? find_regex(st->re, p->s, p->len, &sl) : find_literal(st->a, p->s, p->len, &sl);
        if (!e)
            e = split_apply(p, &sl, st->behavior, st->invert, out);
        break;
    case TSR__PRE_DIGITS:
        e = find_chars(pred_num, NULL, p->s, p->len, &sl);
        if (!e)
            e = split_apply(p, &sl, st->flag1 ? TSR__SPLIT_ISOLATED : TSR__SPLIT_CONTIGUOUS,
                            false, out);
        break;
    case TSR__PRE_WHITESPACE:
        e = find_regex(st->re, p->s, p->len, &sl);
        if (!e)
            e = split_apply(p, &sl, TSR__SPLIT_REMOVED, true, out);
        break;
    case TSR__PRE_WHITESPACE_SPLIT:
        e = find_chars(pred_ws, NULL, p->s, p->len, &sl);
        if (!e)
            e = split_apply(p, &sl, TSR__SPLIT_REMOVED, false, out);
        break;
    case TSR__PRE_PUNCTUATION:
        e = find_chars(pred_punct, NULL, p->s, p->len, &sl);
        if (!e)
            e = split_apply(p, &sl, st->behavior, false, out);
        break;
    case TSR__PRE_CHAR_DELIMITER: {
        int32_t c = first_cp(st->a);
        e = find_chars(pred_eq, &c, p->s, p->len, &sl);
        if (!e)
            e = split_apply(p, &sl, TSR__SPLIT_REMOVED, false, out);
        break;
    }
    case TSR__PRE_BERT: {
        plist tmp = {0};
        e = find_chars(pred_ws, NULL, p->s, p->len, &sl);
        if (!e)
            e = split_apply(p, &sl, TSR__SPLIT_REMOVED, false, &tmp);
        for (size_t i = 0; !e && i < tmp.n; i++) {
            sl.n = 0;
            e = find_chars(pred_punct, NULL, tmp.p[i].s, tmp.p[i].len, &sl);
            if (!e)
                e = split_apply(&tmp.p[i], &sl, TSR__SPLIT_ISOLATED, false, out);
        }
        pl_free(&tmp);
        break;
    }
    case TSR__PRE_METASPACE: {
        sbuf b = {0};
        const char *rep = st->a;
        size_t rl = strlen(rep);
        bool pre = st->prepend == TSR__PREPEND_ALWAYS ||
                   (st->prepend == TSR__PREPEND_FIRST && p->at_start);
        if (pre && !(p->len >= rl && memcmp(p->s, rep, rl) == 0))
            sb_add(&b, rep, rl);
        for (size_t i = 0; i < p->len; i++) {
            if (p->s[i] == ' ')
                sb_add(&b, rep, rl);
            else
                sb_add(&b, p->s + i, 1);
        }
        if (b.oom) {
            free(b.s);
            return tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing");
        }
        piece q = {b.s ? b.s : (char *)"", b.n, p->at_start};
        if (st->flag1) {
            int32_t c = first_cp(rep);
            e = find_chars(pred_eq, &c, q.s, q.len, &sl);
            if (!e)
                e = split_apply(&q, &sl, TSR__SPLIT_MERGED_NEXT, false, out);
        } else if (q.len) {
            e = pl_push(out, q.s, q.len, q.at_start);
        }
        free(b.s);
        break;
    }
    case TSR__PRE_BYTELEVEL: {
        plist tmp = {0};
        sbuf b = {0};
        if (st->flag1 && !(p->len && p->s[0] == ' ')) {
            sb_add(&b, " ", 1);
            sb_add(&b, p->s, p->len);
        } else {
            sb_add(&b, p->s, p->len);
        }
        if (b.oom) {
            free(b.s);
            return tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing");
        }
        piece q = {b.s ? b.s : (char *)"", b.n, p->at_start};
        if (st->flag2) {
            e = find_regex(st->re, q.s, q.len, &sl);
            if (!e)
                e = split_apply(&q, &sl, TSR__SPLIT_ISOLATED, false, &tmp);
        } else if (q.len) {
            e = pl_push(&tmp, q.s, q.len, q.at_start);
        }
        free(b.s);
        for (size_t i = 0; !e && i < tmp.n; i++) {
            sbuf m = {0};
            for (size_t j = 0; j < tmp.p[i].len; j++)
                sb_cp(&m, byte_to_cp((uint8_t)tmp.p[i].s[j]));
            e = m.oom ? tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing")
                      : pl_push(out, m.s, m.n, tmp.p[i].at_start);
            free(m.s);
        }
        pl_free(&tmp);
        break;
    }
    default:
        e = tsr__error(TSR_ERR_INTERNAL, "unknown pre-tokenizer step %d", st->kind);
    }
    free(sl.s);
    return e;
}

/* Pre-tokenize one normalized piece, then run the model on each word. */
static tsr_status encode_text(const tsr_tokenizer *tok, const char *s, size_t len, bool at_start,
                              int32_t **ids, size_t *n, size_t *cap)
{
    plist cur = {0};
    tsr_status e = len ? pl_push(&cur, s, len, at_start) : TSR_OK;
    for (size_t k = 0; !e && k < tok->n_pre; k++) {
        plist nx = {0};
        for (size_t i = 0; !e && i < cur.n; i++)
            e = pre_step(&tok->pre[k], &cur.p[i], &nx);
        pl_free(&cur);
        cur = nx;
    }
    for (size_t i = 0; !e && i < cur.n; i++)
        e = tsr__tok_model_encode(tok, cur.p[i].s, cur.p[i].len, ids, n, cap);
    pl_free(&cur);
    return e;
}

/* --- added tokens ------------------------------------------------------------------ */

static bool is_word_char(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return c == '_' || (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* Find the leftmost-longest added token (of the wanted `normalized` kind) in
 * s[from..len).  Returns its index or -1; *a,*b: the span it consumes
 * (including stripped whitespace). */
static long find_added(const tsr_tokenizer *tok, const char *s, size_t len, size_t from,
                       bool normalized, size_t *ma, size_t *mb)
{
    for (size_t i = from; i < len; i++) {
        const size_t *cand = tok->added_by_byte[(uint8_t)s[i]];
        if (!cand)
            continue;
        for (; *cand != (size_t)-1; cand++) { /* longest first */
            const tsr__added_token *t = &tok->added[*cand];
            if (t->normalized != normalized || t->mlen > len - i ||
                memcmp(s + i, t->match, t->mlen) != 0)
                continue;
            size_t a = i, b = i + t->mlen;
            if (t->single_word) {
                size_t j = a;
                while (j > 0 && ((uint8_t)s[j - 1] & 0xc0) == 0x80)
                    j--;
                size_t k = j ? j - 1 : 0;
                while (k > 0 && ((uint8_t)s[k] & 0xc0) == 0x80)
                    k--;
                size_t kk = k;
                if (a > 0 && is_word_char(next_cp(s, len, &kk)))
                    continue;
                kk = b;
                if (b < len && is_word_char(next_cp(s, len, &kk)))
                    continue;
            }
            if (t->lstrip)
                while (a > from) {
                    size_t k = a - 1;
                    while (k > from && ((uint8_t)s[k] & 0xc0) == 0x80)
                        k--;
                    size_t kk = k;
                    if (!is_ws(next_cp(s, len, &kk)))
                        break;
                    a = k;
                }
            if (t->rstrip)
                while (b < len) {
                    size_t kk = b;
                    if (!is_ws(next_cp(s, len, &kk)))
                        break;
                    b = kk;
                }
            *ma = a, *mb = b;
            return (long)*cand;
        }
    }
    return -1;
}

/* Normalize a stretch of text, split out normalized added tokens, encode. */
static tsr_status encode_plain(const tsr_tokenizer *tok, const char *s, size_t len, bool at_start,
                               int32_t **ids, size_t *n, size_t *cap)
{
    char *ns;
    size_t nl;
    tsr_status e = normalize(tok, s, len, &ns, &nl);
    if (e)
        return e;
    size_t pos = 0;
    while (!e && pos <= nl) {
        size_t a, b;
        long t = find_added(tok, ns, nl, pos, true, &a, &b);
        size_t end = t >= 0 ? a : nl;
        if (end > pos)
            e = encode_text(tok, ns + pos, end - pos, at_start && pos == 0, ids, n, cap);
        if (t < 0 || e)
            break;
        e = tsr__ids_push(ids, n, cap, tok->added[t].id);
        pos = b;
    }
    free(ns);
    return e;
}

static tsr_status encode_all(const tsr_tokenizer *tok, const char *s, size_t len,
                             int32_t **ids, size_t *n, size_t *cap)
{
    size_t pos = 0;
    tsr_status e = TSR_OK;
    while (!e && pos <= len) {
        size_t a, b;
        long t = find_added(tok, s, len, pos, false, &a, &b);
        size_t end = t >= 0 ? a : len;
        if (end > pos)
            e = encode_plain(tok, s + pos, end - pos, pos == 0, ids, n, cap);
        if (t < 0 || e)
            break;
        e = tsr__ids_push(ids, n, cap, tok->added[t].id);
        pos = b;
    }
    return e;
}

/* --- public API: encoding ------------------------------------------------------------- */

TSR_API tsr_status tsr_tokenize(const tsr_tokenizer *tok, const char *text, size_t len,
                                uint32_t flags, int32_t *ids, size_t cap, size_t *n_out)
{
    if (!tok || (!text && len) || !n_out || (cap && !ids))
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_tokenize: NULL tokenizer, text or output");
    size_t bad;
    if (!valid_utf8(text, len, &bad))
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_tokenize: text is not valid UTF-8 at byte %zu",
                          bad);
    int32_t *v = NULL;
    size_t n = 0, vcap = 0;
    tsr_status e = encode_all(tok, text ? text : "", len, &v, &n, &vcap);
    if (!e && (flags & TSR_TOKENIZE_ADD_SPECIAL) && tok->tpl) {
        int32_t *w = NULL;
        size_t wn = 0, wcap = 0;
        for (size_t k = 0; !e && k < tok->n_tpl; k++) {
            const int32_t *src = tok->tpl[k].is_seq ? v : tok->tpl[k].ids;
            size_t cnt = tok->tpl[k].is_seq ? n : tok->tpl[k].n;
            for (size_t i = 0; !e && i < cnt; i++)
                e = tsr__ids_push(&w, &wn, &wcap, src[i]);
        }
        free(v);
        v = w, n = wn;
    }
    if (!e) {
        *n_out = n;
        if (n && cap)
            memcpy(ids, v, (n < cap ? n : cap) * sizeof *ids);
    }
    free(v);
    return e;
}

/* --- decoders --------------------------------------------------------------------------- */

typedef struct tlist { char **s; size_t *len; size_t n; } tlist; /* owned strings */

static void tl_free(tlist *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->s[i]);
    free(t->s), free(t->len);
    memset(t, 0, sizeof *t);
}

/* Replace token i by the contents of b (taking ownership). */
static tsr_status tl_set(tlist *t, size_t i, sbuf *b)
{
    if (b->oom) {
        free(b->s);
        return tsr__error(TSR_ERR_NOMEM, "out of memory while decoding");
    }
    if (!b->s)
        sb_add(b, "", 0);
    if (!b->s)
        return tsr__error(TSR_ERR_NOMEM, "out of memory while decoding");
    free(t->s[i]);
    t->s[i] = b->s, t->len[i] = b->n;
    *b = (sbuf){0};
    return TSR_OK;
}

/* Collapse all tokens into one (Fuse; ByteLevel/ByteFallback flush). */
static tsr_status tl_fuse(tlist *t, sbuf *b)
{
    for (size_t i = 1; i < t->n; i++)
        free(t->s[i]);
    t->n = t->n ? 1 : 0;
    if (!t->n) {
        free(b->s);
        *b = (sbuf){0};
        return TSR_OK;
    }
    return tl_set(t, 0, b);
}

static bool byte_token(const char *s, size_t len, uint8_t *out)
{
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return false;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = v * 16 + d;
    }
    *out = (uint8_t)v;
    return true;
}

static void flush_bytes(sbuf *pending, tlist *nt, size_t *k, bool *oom)
{
    if (!pending->n)
        return;
    sbuf chk = {0};
    if (sb_add_lossy(&chk, (const uint8_t *)pending->s, pending->n)) {
        nt->s[*k] = chk.s, nt->len[*k] = chk.n, (*k)++;
    } else {
        free(chk.s);
        for (size_t i = 0; i < pending->n; i++) {
            char *r = malloc(4);
            if (!r) {
                *oom = true;
                continue;
            }
            memcpy(r, "\xef\xbf\xbd", 4);
            nt->s[*k] = r, nt->len[*k] = 3, (*k)++;
        }
    }
    pending->n = 0;
}

static tsr_status dec_bytefallback(tlist *t)
{
    /* the output has at most as many tokens as bytes + others */
    size_t maxn = 0;
    for (size_t i = 0; i < t->n; i++)
        maxn += 1;
    tlist nt = {calloc(maxn + 1, sizeof(char *)), calloc(maxn + 1, sizeof(size_t)), 0};
    sbuf pending = {0};
    bool oom = !nt.s || !nt.len;
    size_t k = 0;
    for (size_t i = 0; i < t->n && !oom; i++) {
        uint8_t byte;
        if (byte_token(t->s[i], t->len[i], &byte)) {
            sb_add(&pending, &byte, 1);
            free(t->s[i]);
            continue;
        }
        flush_bytes(&pending, &nt, &k, &oom);
        nt.s[k] = t->s[i], nt.len[k] = t->len[i], k++;
    }
    flush_bytes(&pending, &nt, &k, &oom);
    free(pending.s);
    if (oom || pending.oom) {
        nt.n = k;
        tl_free(&nt);
        t->n = 0;
        return tsr__error(TSR_ERR_NOMEM, "out of memory while decoding");
    }
    free(t->s), free(t->len);
    nt.n = k;
    *t = nt;
    return TSR_OK;
}

static tsr_status decode_step(const tsr__tok_step *st, tlist *t)
{
    tsr_status e = TSR_OK;
    switch (st->kind) {
    case TSR__DEC_BYTELEVEL: {
        sbuf raw = {0}, out = {0};
        for (size_t i = 0; i < t->n; i++) {
            size_t j = 0, mark = raw.n;
            bool all = true;
            while (j < t->len[i]) {
                int b = cp_to_byte(next_cp(t->s[i], t->len[i], &j));
                if (b < 0) {
                    all = false;
                    break;
                }
                uint8_t c = (uint8_t)b;
                sb_add(&raw, &c, 1);
            }
            if (!all) {
                raw.n = mark;
                sb_add(&raw, t->s[i], t->len[i]);
            }
        }
        sb_add_lossy(&out, (const uint8_t *)raw.s, raw.n);
        if (raw.oom)
            out.oom = true;
        free(raw.s);
        return tl_fuse(t, &out);
    }
    case TSR__DEC_BYTEFALLBACK:
        return dec_bytefallback(t);
    case TSR__DEC_FUSE: {
        sbuf out = {0};
        for (size_t i = 0; i < t->n; i++)
            sb_add(&out, t->s[i], t->len[i]);
        return tl_fuse(t, &out);
    }
    case TSR__DEC_STRIP: {
        int32_t c = first_cp(st->a);
        for (size_t i = 0; i < t->n && !e; i++) {
            size_t a = 0, b = t->len[i];
            for (int k = 0; k < st->start && a < b; k++) {
                size_t j = a;
                if (next_cp(t->s[i], t->len[i], &j) != c)
                    break;
                a = j;
            }
            for (int k = 0; k < st->stop && b > a; k++) {
                size_t j = b - 1;
                while (j > a && ((uint8_t)t->s[i][j] & 0xc0) == 0x80)
                    j--;
                size_t jj = j;
                if (next_cp(t->s[i], t->len[i], &jj) != c)
                    break;
                b = j;
            }
            sbuf o = {0};
            sb_add(&o, t->s[i] + a, b - a);
            e = tl_set(t, i, &o);
        }
        return e;
    }
    case TSR__DEC_REPLACE:
        for (size_t i = 0; i < t->n && !e; i++) {
            sbuf o = {0};
            e = replace_all(&o, st, t->s[i], t->len[i]);
            if (!e)
                e = tl_set(t, i, &o);
            else
                free(o.s);
        }
        return e;
    case TSR__DEC_METASPACE: {
        int32_t rep = first_cp(st->a);
        for (size_t i = 0; i < t->n && !e; i++) {
            sbuf o = {0};
            for (size_t j = 0; j < t->len[i];) {
                int32_t c = next_cp(t->s[i], t->len[i], &j);
                if (c == rep) {
                    if (!(i == 0 && st->prepend != TSR__PREPEND_NEVER))
                        sb_add(&o, " ", 1);
                } else {
                    sb_cp(&o, c);
                }
            }
            e = tl_set(t, i, &o);
        }
        return e;
    }
    case TSR__DEC_WORDPIECE: {
        static const char *const from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm",
                                           " do not", " 's", " 've", " 're"};
        static const char *const to[] = {".", "?", "!", ",", "'", "n't", "'m", " don't", "'s",
                                         "'ve", "'re"};
        size_t pl = strlen(st->a);
        for (size_t i = 0; i < t->n && !e; i++) {
            sbuf o = {0};
            if (i && t->len[i] >= pl && memcmp(t->s[i], st->a, pl) == 0) {
                sb_add(&o, t->s[i] + pl, t->len[i] - pl);
            } else {
                if (i)
                    sb_add(&o, " ", 1);
                sb_add(&o, t->s[i], t->len[i]);
            }
            if (st->flag1 && !o.oom && o.s) {
                for (size_t r = 0; r < sizeof from / sizeof *from; r++) {
                    tsr__tok_step lit = {0};
                    lit.a = (char *)from[r], lit.b = (char *)to[r];
                    sbuf c2 = {0};
                    e = replace_all(&c2, &lit, o.s, o.n);
                    free(o.s);
                    o = c2;
                    if (e)
                        break;
                }
            }
            if (!e)
                e = tl_set(t, i, &o);
            else
                free(o.s);
        }
        return e;
    }
    case TSR__DEC_BPE_SUFFIX: {
        size_t sl = strlen(st->a);
        for (size_t i = 0; i < t->n && !e; i++) {
            tsr__tok_step lit = {0};
            lit.a = st->a, lit.b = i + 1 == t->n ? "" : " ";
            sbuf o = {0};
            if (sl)
                e = replace_all(&o, &lit, t->s[i], t->len[i]);
            else
                sb_add(&o, t->s[i], t->len[i]);
            if (!e)
                e = tl_set(t, i, &o);
            else
                free(o.s);
        }
        return e;
    }
    case TSR__DEC_CTC: {
        /* dedup consecutive tokens, drop the pad token, "|" -> " " */
        size_t k = 0;
        for (size_t i = 0; i < t->n; i++) {
            if ((k && t->len[k - 1] == t->len[i] && !memcmp(t->s[k - 1], t->s[i], t->len[i])) ||
                !strcmp(t->s[i], st->a ? st->a : "<pad>")) {
                free(t->s[i]);
                continue;
            }
            t->s[k] = t->s[i], t->len[k] = t->len[i], k++;
        }
        t->n = k;
        for (size_t i = 0; i < t->n && !e; i++) {
            tsr__tok_step lit = {0};
            lit.a = st->b ? st->b : "|", lit.b = " ";
            sbuf o = {0};
            e = replace_all(&o, &lit, t->s[i], t->len[i]);
            if (!e)
                e = tl_set(t, i, &o);
            else
                free(o.s);
        }
        return e;
    }
    }
    return tsr__error(TSR_ERR_INTERNAL, "unknown decoder step %d", st->kind);
}

TSR_API tsr_status tsr_detokenize(const tsr_tokenizer *tok, const int32_t *ids, size_t n,
                                  uint32_t flags, char *buf, size_t cap, size_t *len_out)
{
    if (!tok || (n && !ids) || !len_out || (cap && !buf))
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_detokenize: NULL tokenizer, ids or output");
    tlist t = {calloc(n + 1, sizeof(char *)), calloc(n + 1, sizeof(size_t)), 0};
    if (!t.s || !t.len) {
        tl_free(&t);
        return tsr__error(TSR_ERR_NOMEM, "out of memory while decoding");
    }
    tsr_status e = TSR_OK;
    for (size_t i = 0; i < n && !e; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= tok->n_ids || !tok->id_text[id]) {
            e = tsr__error(TSR_ERR_INVALID_ARG, "tsr_detokenize: token id %d is not in the "
                           "vocabulary of %s (%zu ids)", id, tok->source, tok->n_ids);
            break;
        }
        if ((flags & TSR_DETOKENIZE_SKIP_SPECIAL) && tok->id_special[id])
            continue;
        size_t l = strlen(tok->id_text[id]);
        t.s[t.n] = malloc(l + 1);
        if (!t.s[t.n]) {
            e = tsr__error(TSR_ERR_NOMEM, "out of memory while decoding");
            break;
        }
        memcpy(t.s[t.n], tok->id_text[id], l + 1);
        t.len[t.n++] = l;
    }
    for (size_t k = 0; !e && k < tok->n_dec; k++)
        e = decode_step(&tok->dec[k], &t);
    if (!e) {
        sbuf out = {0};
        sb_add(&out, "", 0);
        for (size_t i = 0; i < t.n; i++) {
            if (i && !tok->has_decoder)
                sb_add(&out, " ", 1);
            sb_add(&out, t.s[i], t.len[i]);
        }
        if (out.oom) {
            e = tsr__error(TSR_ERR_NOMEM, "out of memory while decoding");
        } else {
            *len_out = out.n;
            if (cap) {
                size_t c = out.n < cap ? out.n : cap;
                memcpy(buf, out.s, c);
                if (out.n < cap)
                    buf[out.n] = 0;
            }
        }
        free(out.s);
    }
    tl_free(&t);
    return e;
}

/* --- construction and queries ------------------------------------------------------------ */

tsr_status tsr__tokenizer_alloc(const char *source, tsr_tokenizer **out)
{
    tsr_tokenizer *t = calloc(1, sizeof *t);
    if (!t || !(t->source = tsr__strdup(source ? source : "tokenizer"))) {
        free(t);
        return tsr__error(TSR_ERR_NOMEM, "out of memory creating a tokenizer");
    }
    t->model.unk_id = -1;
    t->model.max_input_chars = 100;
    for (int i = 0; i < 256; i++)
        t->model.byte_ids[i] = -1;
    t->bos = t->eos = -1;
    *out = t;
    return TSR_OK;
}

tsr_status tsr__tokenizer_add_token(tsr_tokenizer *tok, const char *content, int32_t id,
                                    bool special, bool lstrip, bool rstrip,
                                    bool single_word, bool normalized)
{
    if (id < 0 || !content || !*content)
        return tsr__error(TSR_ERR_FORMAT, "%s: added token \"%s\" has a bad id %d or is empty",
                          tok->source, content ? content : "", id);
    size_t i;
    for (i = 0; i < tok->n_added; i++)
        if (!strcmp(tok->added[i].content, content))
            break;
    if (i == tok->n_added) {
        tsr__added_token *a = realloc(tok->added, (tok->n_added + 1) * sizeof *a);
        if (!a)
            return tsr__error(TSR_ERR_NOMEM, "out of memory adding tokens");
        tok->added = a;
        memset(&a[i], 0, sizeof *a);
        tok->n_added++;
    }
    tsr__added_token *a = &tok->added[i];
    free(a->content);
    a->content = tsr__strdup(content);
    if (!a->content)
        return tsr__error(TSR_ERR_NOMEM, "out of memory adding tokens");
    a->len = strlen(content);
    a->id = id, a->special = special, a->lstrip = lstrip, a->rstrip = rstrip;
    a->single_word = single_word, a->normalized = normalized;
    return TSR_OK;
}

static int cmp_added(const void *x, const void *y)
{
    const tsr__added_token *a = x, *b = y;
    return a->mlen < b->mlen ? 1 : a->mlen > b->mlen ? -1 : 0;
}

tsr_status tsr__tokenizer_finish(tsr_tokenizer *tok)
{
    /* what added tokens match: their content, normalized when `normalized` */
    for (size_t i = 0; i < tok->n_added; i++) {
        tsr__added_token *a = &tok->added[i];
        free(a->match);
        a->match = NULL;
        if (a->normalized && tok->n_norm) {
            tsr_status st = normalize(tok, a->content, a->len, &a->match, &a->mlen);
            if (st)
                return st;
        } else {
            a->match = tsr__strdup(a->content);
            a->mlen = a->len;
        }
        if (!a->match)
            return tsr__error(TSR_ERR_NOMEM, "out of memory adding tokens");
        if ((size_t)a->id + 1 > tok->n_ids)
            tok->n_ids = (size_t)a->id + 1;
    }
    if (tok->n_added) /* qsort(NULL, 0) is undefined */
        qsort(tok->added, tok->n_added, sizeof *tok->added, cmp_added);
    for (int b = 0; b < 256; b++) {
        free(tok->added_by_byte[b]);
        tok->added_by_byte[b] = NULL;
        size_t cnt = 0;
        for (size_t i = 0; i < tok->n_added; i++)
            cnt += tok->added[i].mlen && (uint8_t)tok->added[i].match[0] == b;
        if (!cnt)
            continue;
        size_t *l = malloc((cnt + 1) * sizeof *l);
        if (!l)
            return tsr__error(TSR_ERR_NOMEM, "out of memory adding tokens");
        cnt = 0;
        for (size_t i = 0; i < tok->n_added; i++)
            if (tok->added[i].mlen && (uint8_t)tok->added[i].match[0] == b)
                l[cnt++] = i;
        l[cnt] = (size_t)-1;
        tok->added_by_byte[b] = l;
    }
    /* id -> text: the model's tokens, then added tokens on top */
    const tsr__tokmap *v = &tok->model.vocab;
    for (size_t i = 0; i < v->n; i++)
        if (v->vals[i] >= 0 && (size_t)v->vals[i] + 1 > tok->n_ids)
            tok->n_ids = (size_t)v->vals[i] + 1;
    char **idt = calloc(tok->n_ids + 1, sizeof *idt);
    uint8_t *sp = calloc(tok->n_ids + 1, 1);
    if (!idt || !sp) {
        free(idt), free(sp);
        return tsr__error(TSR_ERR_NOMEM, "out of memory building a tokenizer");
    }
    for (size_t i = 0; i < v->n; i++)
        if (v->vals[i] >= 0)
            idt[v->vals[i]] = (char *)v->keys[i];
    for (size_t i = 0; i < tok->n_added; i++) {
        idt[tok->added[i].id] = tok->added[i].content;
        sp[tok->added[i].id] = tok->added[i].special;
    }
    free(tok->id_text), free(tok->id_special);
    tok->id_text = idt, tok->id_special = sp;
    return TSR_OK;
}

static void free_steps(tsr__tok_step *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].a), free(s[i].b);
        if (s[i].re)
            pcre2_code_free(s[i].re);
    }
    free(s);
}

TSR_API void tsr_tokenizer_destroy(tsr_tokenizer *tok)
{
    if (!tok)
        return;
    /* vocabulary key texts are owned through id_text's model entries */
    const tsr__tokmap *v = &tok->model.vocab;
    for (size_t i = 0; i < v->n; i++)
        free((char *)v->keys[i]);
    tsr__tok_model_free(&tok->model);
    for (size_t i = 0; i < tok->n_added; i++)
        free(tok->added[i].content), free(tok->added[i].match);
    free(tok->added);
    for (int b = 0; b < 256; b++)
        free(tok->added_by_byte[b]);
    free_steps(tok->norm, tok->n_norm);
    free_steps(tok->pre, tok->n_pre);
    free_steps(tok->dec, tok->n_dec);
    for (size_t i = 0; i < tok->n_tpl; i++)
        free(tok->tpl[i].ids);
    free(tok->tpl);
    free(tok->id_text), free(tok->id_special);
    free(tok->source);
    free(tok);
}

TSR_API int32_t tsr_tokenizer_vocab_size(const tsr_tokenizer *tok)
{
    return tok ? (int32_t)tok->n_ids : 0;
}

TSR_API int32_t tsr_tokenizer_bos(const tsr_tokenizer *tok) { return tok ? tok->bos : -1; }
TSR_API int32_t tsr_tokenizer_eos(const tsr_tokenizer *tok) { return tok ? tok->eos : -1; }
