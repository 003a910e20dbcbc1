/* core/tokenizer_gguf.c - tsr__tokenizer_from_gguf(): a tokenizer from a GGUF
 * file's tokenizer.ggml.* metadata, built by tsr__tokenizer_create() (the same
 * pipeline as tokenizer.json gives).
 *
 * Keys read (GGUF spec, "Tokenizer" section, and llama.cpp's writer):
 *   tokenizer.ggml.model       "llama" (SentencePiece: BPE merging by score,
 *                              byte fallback), "gpt2" (byte-level BPE with
 *                              merges), "bert" (WordPiece)
 *   tokenizer.ggml.pre         which Hugging Face pre-tokenizer a "gpt2" vocab
 *                              had (table below)
 *   tokenizer.ggml.tokens / scores / token_type / merges
 *   tokenizer.ggml.{bos,eos,unknown,padding,seperator,cls}_token_id
 *   tokenizer.ggml.add_bos_token / add_eos_token / add_sep_token
 *   tokenizer.ggml.add_space_prefix ("llama": prepend U+2581, default true)
 *
 * The pre-tokenizer of each `pre` name is the Split/ByteLevel sequence of
 * that model's tokenizer.json: where the original regex is known it is used
 * as is (PCRE2 understands \p{Lu}, (?i:...), possessive quantifiers); the
 * multi-regex ones (deepseek, falcon, ...) are a Sequence of Split(Isolated)
 * steps, as llama.cpp's llama-vocab.cpp lists them. */
#include <stdlib.h>
#include <string.h>
#include "tokenizer.h"

#define KEY "tokenizer.ggml."

/* --- pre-tokenizer presets ------------------------------------------------------ */

/* The GPT-2 word regex without its final "|\s+" alternative (falcon). */
#define GPT2_WORDS "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"

/* Non-ASCII characters are written as code points: the source stays ASCII and
 * no editor's normalization can change them (U+2126 OHM SIGN is not U+03A9). */
static const char *const re_deepseek_llm[] = {
    "[\r\n]",
    "\\s?["
    "A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
    "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
    "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}"
    "\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}"
    "\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
    "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}"
    "\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}"
    "\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}"
    "\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"
    "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}"
    "\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}"
    "\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"
    "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"
    "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}"
    "\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}"
    "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}"
    "\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}"
    "\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"
    "]+",
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}+",
};
static const char *const re_deepseek_coder[] = {
    "[\r\n]",
    "\\s?\\p{L}+",
    "\\s?\\p{P}+",
    "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}",
};
static const char *const re_deepseek_v3[] = {
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
};
static const char *const re_falcon[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|`]+",
    GPT2_WORDS,
    "[0-9][0-9][0-9]",
};
static const char *const re_bloom[] = {
    " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+",
};
static const char *const re_viking[] = {
    " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+",
    "\\p{N}",
};
static const char *const re_tekken[] = {
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};
static const char *const re_gpt4o[] = {
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};
static const char *const re_seed_coder[] = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\r\n]+|"
    "\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
};
static const char *const re_bailingmoe[] = {
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|"
    "\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
};

#define RE(a) a, sizeof a / sizeof a[0]

typedef struct pre_preset {
    const char *names;          /* tokenizer.ggml.pre values, space-separated      */
    tsr__tok_pre_kind kind;
    const char *const *regexes; /* TSR__TOK_PRE_REGEX                             */
    size_t n_regexes;
    bool ignore_merges;
    bool add_bos;               /* the default of add_bos_token for this vocab     */
    bool add_sep;               /* the default of add_sep_token (RoBERTa's </s>)   */
} pre_preset;

static const pre_preset presets[] = {
    {"gpt-2 phi-2 jina-es jina-de gigachat jina-v2-es jina-v2-de a.x-4.0 mellum mpt olmo jais "
     "trillion granite-docling exaone4",
     TSR__TOK_PRE_GPT2, NULL, 0, false, false, false},
    {"jina-v1-en jina-v2-code roberta-bpe", TSR__TOK_PRE_GPT2, NULL, 0, false, false, true},
    {"starcoder refact command-r smollm codeshell exaone minerva-7b",
     TSR__TOK_PRE_DIGITS_GPT2, NULL, 0, false, false, false},
    {"llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2",
     TSR__TOK_PRE_LLAMA3, NULL, 0, true, true, false},
    {"dbrx smaug-bpe chatglm-bpe glm4", TSR__TOK_PRE_LLAMA3, NULL, 0, false, false, false},
    {"qwen2 deepseek-r1-qwen kormo megrez stablelm2 hunyuan grok-2",
     TSR__TOK_PRE_QWEN2, NULL, 0, false, false, false},
    {"deepseek-llm", TSR__TOK_PRE_REGEX, RE(re_deepseek_llm), false, false, false},
    {"deepseek-coder", TSR__TOK_PRE_REGEX, RE(re_deepseek_coder), false, false, false},
    {"deepseek-v3 hunyuan-dense", TSR__TOK_PRE_REGEX, RE(re_deepseek_v3), false, false, false},
    {"falcon", TSR__TOK_PRE_REGEX, RE(re_falcon), false, false, false},
    {"poro-chat bloom gpt3-finnish", TSR__TOK_PRE_REGEX, RE(re_bloom), false, false, false},
    {"viking", TSR__TOK_PRE_REGEX, RE(re_viking), false, false, false},
    {"tekken", TSR__TOK_PRE_REGEX, RE(re_tekken), true, true, false},
    {"gpt-4o llama4 minimax-m2", TSR__TOK_PRE_REGEX, RE(re_gpt4o), false, false, false},
    {"seed-coder", TSR__TOK_PRE_REGEX, RE(re_seed_coder), false, false, false},
    {"bailingmoe bailingmoe2 llada-moe", TSR__TOK_PRE_REGEX, RE(re_bailingmoe), false, false, false},
};

/* The preset naming `pre` (len bytes), or NULL. */
static const pre_preset *find_preset(const char *pre, size_t len)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        for (const char *p = presets[i].names; *p;) {
            size_t l = strcspn(p, " ");
            if (l == len && !memcmp(p, pre, len))
                return &presets[i];
            p += l;
            p += *p == ' ';
        }
    }
    return NULL;
}

/* --- metadata helpers ----------------------------------------------------------- */

typedef struct loader {
    const tsr__gguf *g;
    const char *path;
    tsr__tok_spec sp;
    char **tokens;        /* NUL-terminated copies                               */
    char **merges;
    float *scores;
    int32_t *types;
} loader;

/* An optional token id: -1 if the key is absent or -1/0xFFFFFFFF (none);
 * otherwise out of range: a warning, -1. */
static tsr_status opt_id(loader *L, const char *key, int32_t *out)
{
    *out = -1;
    if (!tsr__gguf_find(L->g, key))
        return TSR_OK;
    int64_t v;
    tsr_status st = tsr__gguf_get_int(L->g, key, &v);
    if (st)
        return st;
    if (v == -1 || v == 0xFFFFFFFFll)
        return TSR_OK; /* llama.cpp's way of writing "none" (uint32 -1) */
    if (v < 0 || (uint64_t)v >= L->sp.n_vocab) {
        tsr__log(TSR_LOG_WARN, "%s: %s = %lld is not a token id (vocabulary of %zu); ignored",
                 L->path, key, (long long)v, L->sp.n_vocab);
        return TSR_OK;
    }
    *out = (int32_t)v;
    return TSR_OK;
}

static tsr_status opt_bool(loader *L, const char *key, bool dflt, bool *out)
{
    *out = dflt;
    return tsr__gguf_find(L->g, key) ? tsr__gguf_get_bool(L->g, key, out) : TSR_OK;
}

/* An array of strings as NUL-terminated copies. */
static tsr_status read_strings(loader *L, const char *key, size_t *n, char ***out)
{
    const tsr__gguf_value *arr;
    tsr_status st = tsr__gguf_get_arr(L->g, key, &arr);
    if (st)
        return st;
    if (arr->elem_type != TSR_GGUF_STRING)
        return tsr__error(TSR_ERR_FORMAT, "%s: %s is an array of %s, not of strings", L->path,
                          key, tsr__gguf_type_name(arr->elem_type));
    if (arr->len > INT32_MAX)
        return tsr__error(TSR_ERR_FORMAT, "%s: %s has %llu entries (too many)", L->path, key,
                          (unsigned long long)arr->len);
    char **v = calloc(arr->len ? arr->len : 1, sizeof *v);
    if (!v)
        return tsr__error(TSR_ERR_NOMEM, "out of memory reading %s from %s", key, L->path);
    *out = v, *n = (size_t)arr->len;
    for (uint64_t i = 0; i < arr->len; i++) {
        const char *s;
        size_t len;
        if ((st = tsr__gguf_arr_str(arr, i, &s, &len)))
            return st;
        if (memchr(s, 0, len))
            return tsr__error(TSR_ERR_FORMAT, "%s: %s[%llu] contains a NUL byte", L->path, key,
                              (unsigned long long)i);
        if (!(v[i] = malloc(len + 1)))
            return tsr__error(TSR_ERR_NOMEM, "out of memory reading %s from %s", key, L->path);
        memcpy(v[i], s, len);
        v[i][len] = 0;
    }
    return TSR_OK;
}

/* An optional numeric array of n entries (float or int32), NULL if absent. */
static tsr_status read_numbers(loader *L, const char *key, bool as_float, void **out)
{
    *out = NULL;
    if (!tsr__gguf_find(L->g, key))
        return TSR_OK;
    const tsr__gguf_value *arr;
    tsr_status st = tsr__gguf_get_arr(L->g, key, &arr);
    if (st)
        return st;
    if (arr->len != L->sp.n_vocab)
        return tsr__error(TSR_ERR_FORMAT, "%s: %s has %llu entries but there are %zu tokens",
                          L->path, key, (unsigned long long)arr->len, L->sp.n_vocab);
    void *v = malloc(L->sp.n_vocab * 4 + 4);
    if (!v)
        return tsr__error(TSR_ERR_NOMEM, "out of memory reading %s from %s", key, L->path);
    *out = v;
    for (size_t i = 0; i < L->sp.n_vocab; i++) {
        tsr__gguf_value e;
        if ((st = tsr__gguf_arr_at(arr, i, &e)))
            return st;
        if (as_float) {
            double d;
            st = tsr__gguf_value_float(&e, &d);
            ((float *)v)[i] = (float)d;
        } else {
            int64_t x = 0;
            st = tsr__gguf_value_int(&e, &x);
            ((int32_t *)v)[i] = x >= INT32_MIN && x <= INT32_MAX ? (int32_t)x : 0;
        }
        if (st)
            return tsr__error(TSR_ERR_FORMAT, "%s: %s[%zu] is a %s, not a number", L->path, key,
                              i, tsr__gguf_type_name(e.type));
    }
    return TSR_OK;
}

/* A BERT vocabulary is uncased (BertNormalizer lowercases) unless some normal
 * token has an ASCII capital letter: GGUF has no do_lower_case key. */
static bool vocab_is_uncased(const loader *L)
{
    for (size_t i = 0; i < L->sp.n_vocab; i++) {
        if (L->types && L->types[i] != TSR__TOKTYPE_NORMAL)
            continue;
        const char *t = L->tokens[i];
        size_t l = strlen(t);
        if (l >= 2 && t[0] == '[' && t[l - 1] == ']')
            continue;
        for (; *t; t++)
            if (*t >= 'A' && *t <= 'Z')
                return false;
    }
    return true;
}

static void loader_free(loader *L, size_t n_tokens, size_t n_merges)
{
    if (L->tokens)
        for (size_t i = 0; i < n_tokens; i++)
            free(L->tokens[i]);
    if (L->merges)
        for (size_t i = 0; i < n_merges; i++)
            free(L->merges[i]);
    free(L->tokens), free(L->merges), free(L->scores), free(L->types);
}

/* --- the builder ------------------------------------------------------------------ */

static tsr_status configure(loader *L, const char *model, size_t mlen)
{
    tsr__tok_spec *sp = &L->sp;
    tsr_status st;
    int32_t sep = -1, cls = -1;
    bool add_bos = false, add_eos = false, add_sep = false;
    if ((st = opt_id(L, KEY "bos_token_id", &sp->bos_id)) ||
        (st = opt_id(L, KEY "eos_token_id", &sp->eos_id)) ||
        (st = opt_id(L, KEY "unknown_token_id", &sp->unk_id)) ||
        (st = opt_id(L, KEY "padding_token_id", &sp->pad_id)) ||
        (st = opt_id(L, KEY "seperator_token_id", &sep)) ||
        (st = opt_id(L, KEY "cls_token_id", &cls)))
        return st;
    if (mlen == 5 && !memcmp(model, "llama", 5)) {
        bool prefix;
        sp->model = TSR__TOK_BPE; /* merges by score (no merge list in the file) */
        sp->pre = TSR__TOK_PRE_SPM;
        if ((st = opt_bool(L, KEY "add_space_prefix", true, &prefix)))
            return st;
        sp->spm_no_prefix = !prefix;
        bool squeeze;
        if ((st = opt_bool(L, KEY "remove_extra_whitespaces", false, &squeeze)))
            return st;
        if (squeeze)
            tsr__log(TSR_LOG_WARN, "%s: " KEY "remove_extra_whitespaces is not supported; "
                     "whitespace is kept as it is", L->path);
        for (size_t i = 0; L->types && i < sp->n_vocab && !sp->byte_fallback; i++)
            sp->byte_fallback = L->types[i] == TSR__TOKTYPE_BYTE;
        add_bos = true;
    } else if (mlen == 4 && !memcmp(model, "gpt2", 4)) {
        const char *pre = NULL;
        size_t plen = 0;
        sp->model = TSR__TOK_BPE;
        if (tsr__gguf_find(L->g, KEY "pre") &&
            (st = tsr__gguf_get_str(L->g, KEY "pre", &pre, &plen)))
            return st;
        const pre_preset *p = pre ? find_preset(pre, plen) : NULL;
        if (!p) {
            if (pre)
                tsr__log(TSR_LOG_WARN, "%s: unknown pre-tokenizer \"%.*s\" (" KEY "pre); using "
                         "the GPT-2 regex", L->path, (int)plen, pre);
            else
                tsr__log(TSR_LOG_WARN, "%s: no " KEY "pre; using the GPT-2 regex", L->path);
            sp->pre = TSR__TOK_PRE_GPT2;
        } else {
            sp->pre = p->kind;
            sp->pre_regexes = p->regexes, sp->n_pre_regexes = p->n_regexes;
            sp->ignore_merges = p->ignore_merges;
            add_bos = p->add_bos;
            add_sep = p->add_sep;
        }
        if (!L->merges)
            return tsr__error(TSR_ERR_FORMAT, "%s: a \"gpt2\" tokenizer without " KEY "merges",
                              L->path);
    } else if (mlen == 4 && !memcmp(model, "bert", 4)) {
        sp->model = TSR__TOK_WORDPIECE;
        sp->pre = TSR__TOK_PRE_BERT;
        sp->wordpiece_phantom = true;
        sp->lowercase = vocab_is_uncased(L);
        if (cls >= 0)
            sp->bos_id = cls;
        add_bos = add_sep = true;
    } else {
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s: " KEY "model \"%.*s\" is not supported "
                          "(supported: llama, gpt2, bert)", L->path, (int)mlen, model);
    }
    /* a default without its token is dropped quietly; an explicit flag warns */
    if (sp->bos_id < 0)
        add_bos = false;
    if ((st = opt_bool(L, KEY "add_bos_token", add_bos, &sp->add_bos)) ||
        (st = opt_bool(L, KEY "add_eos_token", add_eos, &sp->add_eos)) ||
        (st = opt_bool(L, KEY "add_sep_token", add_sep, &add_sep)))
        return st;
    if (add_sep && sep >= 0) { /* BERT / RoBERTa: ... [SEP] closes the sequence */
        sp->eos_id = sep;
        sp->add_eos = true;
    }
    if (sp->add_bos && sp->bos_id < 0) {
        tsr__log(TSR_LOG_WARN, "%s: add_bos_token is set but there is no bos token; not added",
                 L->path);
        sp->add_bos = false;
    }
    if (sp->add_eos && sp->eos_id < 0) {
        tsr__log(TSR_LOG_WARN, "%s: add_eos_token is set but there is no eos token; not added",
                 L->path);
        sp->add_eos = false;
    }
    return TSR_OK;
}

tsr_status tsr__tokenizer_from_gguf(const tsr__gguf *g, const char *path, tsr_tokenizer **out)
{
    if (!g || !out)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr__tokenizer_from_gguf: no GGUF or output");
    *out = NULL;
    if (!path)
        path = tsr__gguf_path(g);
    loader L;
    memset(&L, 0, sizeof L);
    L.g = g, L.path = path ? path : "GGUF";
    size_t n_tokens = 0, n_merges = 0, mlen = 0;
    const char *model = NULL;
    tsr_status st = tsr__gguf_get_str(g, KEY "model", &model, &mlen);
    if (st)
        goto done;
    if ((st = read_strings(&L, KEY "tokens", &n_tokens, &L.tokens)))
        goto done;
    if (!n_tokens) {
        st = tsr__error(TSR_ERR_FORMAT, "%s: " KEY "tokens is empty", L.path);
        goto done;
    }
    L.sp.n_vocab = n_tokens;
    if (tsr__gguf_find(g, KEY "merges") &&
        (st = read_strings(&L, KEY "merges", &n_merges, &L.merges)))
        goto done;
    if ((st = read_numbers(&L, KEY "scores", true, (void **)&L.scores)) ||
        (st = read_numbers(&L, KEY "token_type", false, (void **)&L.types)) ||
        (st = configure(&L, model, mlen)))
        goto done;
    L.sp.tokens = (const char *const *)L.tokens;
    L.sp.scores = L.scores;
    L.sp.token_types = L.types;
    L.sp.merges = (const char *const *)L.merges;
    L.sp.n_merges = n_merges;
    st = tsr__tokenizer_create(&L.sp, L.path, out);
done:
    loader_free(&L, n_tokens, n_merges);
    return st;
}
