/* core/tokenizer_model.c - hash maps and the three tokenizer models (BPE,
 * WordPiece, Unigram), each turning one pre-tokenized word into ids the way
 * Hugging Face `tokenizers` does (src/models/{bpe,wordpiece,unigram}). */
#include <stdlib.h>
#include <string.h>
#include "tokenizer.h"

/* --- hash maps ---------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static tsr_status strmap_grow(tsr__tokmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 1024;
    uint32_t *slots = calloc(ncap, sizeof *slots);
    if (!slots)
        return tsr__error(TSR_ERR_NOMEM, "out of memory building a tokenizer vocabulary");
    for (size_t i = 0; i < m->n; i++) {
        size_t j = hash_bytes(m->keys[i], m->klen[i]) & (ncap - 1);
        while (slots[j])
            j = (j + 1) & (ncap - 1);
        slots[j] = (uint32_t)i + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = ncap;
    return TSR_OK;
}

tsr_status tsr__tokmap_put(tsr__tokmap *m, const char *key, size_t len, int32_t val)
{
    if ((m->n + 1) * 2 > m->cap) {
        tsr_status st = strmap_grow(m);
        if (st)
            return st;
    }
    size_t j = hash_bytes(key, len) & (m->cap - 1);
    while (m->slots[j]) {
        uint32_t k = m->slots[j] - 1;
        if (m->klen[k] == len && memcmp(m->keys[k], key, len) == 0) {
            m->vals[k] = val;
            return TSR_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    if (m->n == m->kcap) {
        size_t nk = m->kcap ? m->kcap * 2 : 1024;
        const char **keys = realloc(m->keys, nk * sizeof *keys);
        if (keys)
            m->keys = keys;
        uint32_t *klen = realloc(m->klen, nk * sizeof *klen);
        if (klen)
            m->klen = klen;
        int32_t *vals = realloc(m->vals, nk * sizeof *vals);
        if (vals)
            m->vals = vals;
        if (!keys || !klen || !vals)
            return tsr__error(TSR_ERR_NOMEM, "out of memory building a tokenizer vocabulary");
        m->kcap = nk;
    }
    m->keys[m->n] = key;
    m->klen[m->n] = (uint32_t)len;
    m->vals[m->n] = val;
    m->slots[j] = (uint32_t)(++m->n);
    return TSR_OK;
}

int32_t tsr__tokmap_get(const tsr__tokmap *m, const char *key, size_t len)
{
    if (!m->cap)
        return -1;
    size_t j = hash_bytes(key, len) & (m->cap - 1);
    while (m->slots[j]) {
        uint32_t k = m->slots[j] - 1;
        if (m->klen[k] == len && memcmp(m->keys[k], key, len) == 0)
            return m->vals[k];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void tsr__tokmap_free(tsr__tokmap *m)
{
    free(m->slots);
    free(m->keys);
    free(m->klen);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static uint64_t pair_key(int32_t a, int32_t b)
{
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

static size_t pair_slot(uint64_t k, size_t cap)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

tsr_status tsr__tokpairs_put(tsr__tokpairs *m, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 1024;
        uint64_t *keys = calloc(ncap, sizeof *keys);
        int32_t *r = malloc(ncap * sizeof *r), *mg = malloc(ncap * sizeof *mg);
        if (!keys || !r || !mg) {
            free(keys), free(r), free(mg);
            return tsr__error(TSR_ERR_NOMEM, "out of memory building BPE merges");
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i])
                continue;
            size_t j = pair_slot(m->keys[i], ncap);
            while (keys[j])
                j = (j + 1) & (ncap - 1);
            keys[j] = m->keys[i], r[j] = m->rank[i], mg[j] = m->merged[i];
        }
        free(m->keys), free(m->rank), free(m->merged);
        m->keys = keys, m->rank = r, m->merged = mg, m->cap = ncap;
    }
    uint64_t k = pair_key(a, b);
    size_t j = pair_slot(k, m->cap);
    while (m->keys[j] && m->keys[j] != k)
        j = (j + 1) & (m->cap - 1);
    if (m->keys[j]) /* first rank wins, as in tokenizers */
        return TSR_OK;
    m->keys[j] = k, m->rank[j] = rank, m->merged[j] = merged;
    m->n++;
    return TSR_OK;
}

static bool pairmap_get(const tsr__tokpairs *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged)
{
    if (!m->cap)
        return false;
    uint64_t k = pair_key(a, b);
    size_t j = pair_slot(k, m->cap);
    while (m->keys[j]) {
        if (m->keys[j] == k) {
            *rank = m->rank[j], *merged = m->merged[j];
            return true;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return false;
}

void tsr__tokpairs_free(tsr__tokpairs *m)
{
    free(m->keys), free(m->rank), free(m->merged);
    memset(m, 0, sizeof *m);
}

void tsr__tok_model_free(tsr__tok_model *m)
{
    tsr__tokmap_free(&m->vocab);
    tsr__tokpairs_free(&m->merges);
    free(m->scores);
    free(m->cont_prefix);
    free(m->eow_suffix);
}

tsr_status tsr__tok_model_add_merge(tsr__tok_model *m, const char *a, size_t la, const char *b,
                                    size_t lb, int32_t rank, const char *what)
{
    size_t plen = strlen(m->cont_prefix), cut = lb >= plen ? plen : 0;
    char *buf = malloc(la + lb + 1);
    if (!buf)
        return tsr__error(TSR_ERR_NOMEM, "out of memory building BPE merges");
    memcpy(buf, a, la);
    memcpy(buf + la, b + cut, lb - cut);
    buf[la + lb - cut] = 0;
    int32_t ia = tsr__tokmap_get(&m->vocab, a, la), ib = tsr__tokmap_get(&m->vocab, b, lb);
    int32_t im = tsr__tokmap_get(&m->vocab, buf, la + lb - cut);
    tsr_status st;
    if (ia < 0 || ib < 0 || im < 0)
        st = tsr__error(TSR_ERR_FORMAT, "%s: merge %d: token \"%.*s\" is not in the vocabulary",
                        what, rank, (int)(ia < 0 ? la : ib < 0 ? lb : la + lb - cut),
                        ia < 0 ? a : ib < 0 ? b : buf);
    else
        st = tsr__tokpairs_put(&m->merges, ia, ib, rank, im);
    free(buf);
    return st;
}

tsr_status tsr__ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t id)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        int32_t *p = realloc(*ids, nc * sizeof *p);
        if (!p)
            return tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing");
        *ids = p, *cap = nc;
    }
    (*ids)[(*n)++] = id;
    return TSR_OK;
}

static size_t utf8_len(uint8_t c)
{
    return c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
}

/* Look up "prefix + s + suffix" in the vocabulary. */
static int32_t lookup3(const tsr__tok_model *m, const char *pre, const char *s, size_t len,
                       const char *suf, char *scratch)
{
    size_t lp = strlen(pre), ls = strlen(suf);
    if (!lp && !ls)
        return tsr__tokmap_get(&m->vocab, s, len);
    memcpy(scratch, pre, lp);
    memcpy(scratch + lp, s, len);
    memcpy(scratch + lp + len, suf, ls);
    return tsr__tokmap_get(&m->vocab, scratch, lp + len + ls);
}

/* --- BPE ------------------------------------------------------------------------- */

typedef struct bpe_sym { int32_t id, prev, next; bool alive; } bpe_sym;
typedef struct bpe_cand { double key; int32_t pos, merged; } bpe_cand;

static bool cand_less(const bpe_cand *a, const bpe_cand *b)
{
    return a->key < b->key || (a->key == b->key && a->pos < b->pos);
}

static void heap_push(bpe_cand *h, size_t *n, bpe_cand c)
{
    size_t i = (*n)++;
    h[i] = c;
    while (i && cand_less(&h[i], &h[(i - 1) / 2])) {
        bpe_cand t = h[i]; h[i] = h[(i - 1) / 2]; h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static bpe_cand heap_pop(bpe_cand *h, size_t *n)
{
    bpe_cand top = h[0];
    h[0] = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, s = i;
        if (l < *n && cand_less(&h[l], &h[s])) s = l;
        if (r < *n && cand_less(&h[r], &h[s])) s = r;
        if (s == i) break;
        bpe_cand t = h[i]; h[i] = h[s]; h[s] = t;
        i = s;
    }
    return top;
}

/* Can ids a,b merge?  Merge list: its rank; score mode: the merged token's
 * score (higher first).  Returns false if not. */
static bool bpe_pair(const tsr_tokenizer *tok, int32_t a, int32_t b, double *key, int32_t *merged,
                     char **buf, size_t *bufcap)
{
    const tsr__tok_model *m = &tok->model;
    if (!m->merge_by_score) {
        int32_t rank;
        if (!pairmap_get(&m->merges, a, b, &rank, merged))
            return false;
        *key = rank;
        return true;
    }
    const char *ta = tok->id_text[a], *tb = tok->id_text[b];
    if (!ta || !tb)
        return false;
    size_t la = strlen(ta), lb = strlen(tb);
    if (la + lb > *bufcap) {
        char *p = realloc(*buf, la + lb + 64);
        if (!p)
            return false;
        *buf = p, *bufcap = la + lb + 64;
    }
    memcpy(*buf, ta, la);
    memcpy(*buf + la, tb, lb);
    int32_t id = tsr__tokmap_get(&m->vocab, *buf, la + lb);
    if (id < 0)
        return false;
    *merged = id;
    *key = m->scores ? -(double)m->scores[id] : id;
    return true;
}

static tsr_status bpe_encode(const tsr_tokenizer *tok, const char *w, size_t len,
                             int32_t **ids, size_t *n, size_t *cap)
{
    const tsr__tok_model *m = &tok->model;
    if (m->ignore_merges) {
        int32_t id = tsr__tokmap_get(&m->vocab, w, len);
        if (id >= 0)
            return tsr__ids_push(ids, n, cap, id);
    }
    size_t extra = strlen(m->cont_prefix) + strlen(m->eow_suffix);
    bpe_sym *sym = malloc((len + 1) * sizeof *sym);
    bpe_cand *heap = malloc((len * 2 + 4) * sizeof *heap);
    char *scratch = malloc(len + extra + 8);
    char *pbuf = NULL;
    size_t pcap = 0, ns = 0, nh = 0;
    tsr_status st = TSR_OK;
    if (!sym || !heap || !scratch) {
        st = tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing");
        goto done;
    }
    /* 1. characters to symbols (unknown ones: bytes or unk, fused if asked) */
    int32_t pending_unk = -1;
    for (size_t i = 0; i < len;) {
        size_t cl = utf8_len((uint8_t)w[i]);
        if (i + cl > len)
            cl = len - i;
        int32_t id = lookup3(m, i ? m->cont_prefix : "", w + i, cl,
                             i + cl == len ? m->eow_suffix : "", scratch);
        if (id >= 0) {
            if (pending_unk >= 0)
                sym[ns++] = (bpe_sym){pending_unk, 0, 0, true}, pending_unk = -1;
            sym[ns++] = (bpe_sym){id, 0, 0, true};
        } else {
            bool done_bytes = false;
            if (m->byte_fallback) {
                done_bytes = true;
                for (size_t k = 0; k < cl; k++)
                    if (m->byte_ids[(uint8_t)w[i + k]] < 0)
                        done_bytes = false;
                if (done_bytes)
                    for (size_t k = 0; k < cl; k++)
                        sym[ns++] = (bpe_sym){m->byte_ids[(uint8_t)w[i + k]], 0, 0, true};
            }
            if (!done_bytes && m->unk_id >= 0) {
                if (pending_unk >= 0 && !m->fuse_unk)
                    sym[ns++] = (bpe_sym){pending_unk, 0, 0, true};
                pending_unk = m->unk_id;
            }
        }
        i += cl;
    }
    if (pending_unk >= 0)
        sym[ns++] = (bpe_sym){pending_unk, 0, 0, true};
    for (size_t i = 0; i < ns; i++) {
        sym[i].prev = (int32_t)i - 1;
        sym[i].next = i + 1 < ns ? (int32_t)i + 1 : -1;
    }
    /* 2. merge the best pair until none is left (tokenizers' word.rs) */
    for (size_t i = 0; i + 1 < ns; i++) {
        bpe_cand c = {0, (int32_t)i, 0};
        if (bpe_pair(tok, sym[i].id, sym[i + 1].id, &c.key, &c.merged, &pbuf, &pcap))
            heap_push(heap, &nh, c);
    }
    size_t hcap = len * 2 + 4;
    while (nh) {
        bpe_cand c = heap_pop(heap, &nh);
        bpe_sym *s = &sym[c.pos];
        if (!s->alive || s->next < 0)
            continue;
        bpe_sym *r = &sym[s->next];
        double key;
        int32_t merged;
        if (!bpe_pair(tok, s->id, r->id, &key, &merged, &pbuf, &pcap) || merged != c.merged)
            continue;
        s->id = merged;
        r->alive = false;
        s->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = c.pos;
        if (nh + 2 > hcap) {
            hcap *= 2;
            bpe_cand *h2 = realloc(heap, hcap * sizeof *h2);
            if (!h2) {
                st = tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing");
                goto done;
            }
            heap = h2;
        }
        bpe_cand nc;
        if (s->prev >= 0 &&
            bpe_pair(tok, sym[s->prev].id, s->id, &nc.key, &nc.merged, &pbuf, &pcap)) {
            nc.pos = s->prev;
            heap_push(heap, &nh, nc);
        }
        if (s->next >= 0 &&
            bpe_pair(tok, s->id, sym[s->next].id, &nc.key, &nc.merged, &pbuf, &pcap)) {
            nc.pos = c.pos;
            heap_push(heap, &nh, nc);
        }
    }
    for (int32_t i = ns ? 0 : -1; i >= 0 && !st; i = sym[i].next)
        st = tsr__ids_push(ids, n, cap, sym[i].id);
done:
    free(sym), free(heap), free(scratch), free(pbuf);
    return st;
}

/* --- WordPiece ------------------------------------------------------------------- */

static tsr_status wordpiece_encode(const tsr_tokenizer *tok, const char *w, size_t len,
                                   int32_t **ids, size_t *n, size_t *cap)
{
    const tsr__tok_model *m = &tok->model;
    size_t nchars = 0;
    for (size_t i = 0; i < len; i += utf8_len((uint8_t)w[i]))
        nchars++;
    if ((int)nchars > m->max_input_chars)
        return m->unk_id >= 0 ? tsr__ids_push(ids, n, cap, m->unk_id) : TSR_OK;
    char *scratch = malloc(len + strlen(m->cont_prefix) + 8);
    if (!scratch)
        return tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing");
    size_t n0 = *n, start = 0;
    tsr_status st = TSR_OK;
    while (start < len && !st) {
        size_t end = len;
        int32_t id = -1;
        while (start < end) {
            id = lookup3(m, start ? m->cont_prefix : "", w + start, end - start, "", scratch);
            if (id >= 0)
                break;
            do end--; while (end > start && ((uint8_t)w[end] & 0xc0) == 0x80);
        }
        if (id < 0) { /* the whole word becomes [UNK] */
            *n = n0;
            st = m->unk_id >= 0 ? tsr__ids_push(ids, n, cap, m->unk_id) : TSR_OK;
            break;
        }
        st = tsr__ids_push(ids, n, cap, id);
        start = end;
    }
    free(scratch);
    return st;
}

/* --- Unigram --------------------------------------------------------------------- */

/* Viterbi: best[i] = best score of a segmentation of w[0..i). */
static tsr_status unigram_encode(const tsr_tokenizer *tok, const char *w, size_t len,
                                 int32_t **ids, size_t *n, size_t *cap)
{
    const tsr__tok_model *m = &tok->model;
    double *best = malloc((len + 1) * sizeof *best);
    int32_t *from = malloc((len + 1) * sizeof *from), *tid = malloc((len + 1) * sizeof *tid);
    size_t *cut = malloc((len + 1) * sizeof *cut);
    tsr_status st = TSR_OK;
    if (!best || !from || !tid || !cut) {
        st = tsr__error(TSR_ERR_NOMEM, "out of memory while tokenizing");
        goto done;
    }
    for (size_t i = 0; i <= len; i++)
        best[i] = -1e300, from[i] = -1, tid[i] = -1;
    best[0] = 0;
    for (size_t i = 0; i < len; i = i + utf8_len((uint8_t)w[i])) {
        if (best[i] <= -1e300)
            continue;
        size_t cl = utf8_len((uint8_t)w[i]);
        bool single = false;
        for (size_t e = i + cl; e <= len && e - i <= m->max_token_len;) {
            int32_t id = tsr__tokmap_get(&m->vocab, w + i, e - i);
            if (id >= 0) {
                double s = best[i] + (m->scores ? m->scores[id] : 0.0);
                if (e == i + cl)
                    single = true;
                if (s > best[e])
                    best[e] = s, from[e] = (int32_t)i, tid[e] = id;
            }
            if (e == len)
                break;
            e += utf8_len((uint8_t)w[e]);
        }
        if (!single) {
            double s = best[i] + m->unk_score;
            if (s > best[i + cl])
                best[i + cl] = s, from[i + cl] = (int32_t)i, tid[i + cl] = -1;
        }
    }
    /* walk back, then emit forwards (fusing unknowns, bytes if asked) */
    size_t k = 0;
    for (size_t e = len; e > 0 && from[e] >= 0; e = (size_t)from[e])
        cut[k++] = e;
    size_t s0 = 0;
    bool prev_unk = false;
    while (k-- > 0 && !st) {
        size_t e = cut[k];
        int32_t id = tid[e];
        if (id >= 0) {
            st = tsr__ids_push(ids, n, cap, id);
            prev_unk = false;
        } else if (m->byte_fallback) {
            for (size_t b = s0; b < e && !st; b++)
                st = tsr__ids_push(ids, n, cap, m->byte_ids[(uint8_t)w[b]] >= 0
                                                    ? m->byte_ids[(uint8_t)w[b]] : m->unk_id);
        } else if (!(prev_unk && m->fuse_unk) && m->unk_id >= 0) {
            st = tsr__ids_push(ids, n, cap, m->unk_id);
            prev_unk = true;
        }
        s0 = e;
    }
done:
    free(best), free(from), free(tid), free(cut);
    return st;
}

tsr_status tsr__tok_model_encode(const tsr_tokenizer *tok, const char *w, size_t len,
                                 int32_t **ids, size_t *n, size_t *cap)
{
    if (!len)
        return TSR_OK;
    switch (tok->model.type) {
    case TSR__TOK_BPE: return bpe_encode(tok, w, len, ids, n, cap);
    case TSR__TOK_WORDPIECE: return wordpiece_encode(tok, w, len, ids, n, cap);
    case TSR__TOK_UNIGRAM: return unigram_encode(tok, w, len, ids, n, cap);
    }
    return tsr__error(TSR_ERR_INTERNAL, "tokenizer has no model");
}
