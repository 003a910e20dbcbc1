/* core/convert.c - Hugging Face folder <-> GGUF.
 *
 * HF -> GGUF writes what llama.cpp's convert_hf_to_gguf.py writes for
 * llama, mistral and mixtral ("llama"), qwen2, qwen2_moe ("qwen2moe"), phi3
 * and gemma: general.*, the {arch}.* hyperparameters, tokenizer.ggml.* from
 * tokenizer.json (none, with a warning, when the folder has none), and the
 * tensors under llama.cpp's names.  q/k rows of "llama" are permuted into
 * llama.cpp's interleaved RoPE order (the inverse of core/gguf_model.c);
 * mixtral's and qwen2_moe's per-expert weights are stacked into
 * ffn_*_exps [experts, rows, cols]; gemma's RMSNorm weights are written as
 * 1 + w and its lm_head dropped (tied); phi3 keeps its fused qkv / gate_up.
 * qwen2_moe models with dense layers are refused (llama.cpp's qwen2moe has
 * none).  1-D tensors stay F32; quantized types apply to 2-D and stacked
 * weights whose rows fill whole blocks (others fall back to F16, as
 * convert_hf_to_gguf.py does for Q8_0).  RoPE scaling: linear and yarn as
 * keys, llama3 as the tensor rope_freqs, phi3 longrope as the tensors
 * rope_factors_long/short and rope.scaling.attn_factor.  Data is converted
 * and written one row at a time.
 *
 * GGUF -> HF writes the folder transformers' GGUF loader produces
 * (from_pretrained(..., gguf_file=) then save_pretrained): dequantized
 * safetensors, config.json (core/gguf_model.c's mapping), tokenizer.json
 * (integrations/ggml.py's GGUFLlamaConverter / GGUFQwen2Converter /
 * GPT-2 byte-level), tokenizer_config.json and generation_config.json. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "ggml_blocks.h"
#include "writers.h"

/* llama.cpp's token types (gguf-py TokenType). */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static const char QWEN2_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

tsr_status tsr__permute_rows_for_gguf(const void *src, void *dst, int64_t rows, size_t row_bytes,
                                      int64_t heads)
{
    if (heads <= 0 || rows % (2 * heads))
        return tsr__error(TSR_ERR_FORMAT, "%lld rows are not a multiple of 2 x %lld heads",
                          (long long)rows, (long long)heads);
    int64_t half = rows / heads / 2;
    for (int64_t r = 0; r < rows; r++) {
        int64_t h = r / (2 * half), rem = r % (2 * half);
        int64_t s = h * 2 * half + (rem % 2) * half + rem / 2;
        memcpy((char *)dst + (size_t)r * row_bytes, (const char *)src + (size_t)s * row_bytes,
               row_bytes);
    }
    return TSR_OK;
}

/* --- output types -------------------------------------------------------------- */

typedef struct outtype_info { const char *name; int ggml; uint32_t file_type; } outtype_info;
static const outtype_info outtypes[] = {
    {"f32", TSR_GGML_F32, 0},    {"f16", TSR_GGML_F16, 1},   {"bf16", TSR_GGML_BF16, 32},
    {"q8_0", TSR_GGML_Q8_0, 7},  {"q4_0", TSR_GGML_Q4_0, 2}, {"q4_1", TSR_GGML_Q4_1, 3},
    {"q5_0", TSR_GGML_Q5_0, 8},  {"q5_1", TSR_GGML_Q5_1, 9}, {"auto", -1, 0},
};

static const outtype_info *find_outtype(const char *s)
{
    for (size_t i = 0; i < sizeof outtypes / sizeof outtypes[0]; i++)
        if (!strcmp(outtypes[i].name, s))
            return &outtypes[i];
    return NULL;
}

/* ===================================================================================
 * HF -> GGUF
 * =================================================================================== */

/* A tensor that is not in the checkpoint: llama3's rope_freqs, phi3's
 * longrope factors (F32, 1-D). */
typedef struct extra_tensor {
    const char *name;
    float v[512];
    int n;
} extra_tensor;

typedef struct hf2g {
    const char *dir, *out;
    json_t *cfg, *tokj, *tokcfg;
    tsr_checkpoint *ck;
    tsr__gguf_writer *w;
    char arch[16];            /* llama, qwen2, qwen2moe, phi3, gemma */
    int64_t n_head, n_kv_head;
    int64_t n_expert;         /* mixtral / qwen2_moe: experts per layer; 0: dense */
    const outtype_info *ot;
    const tsr_convert_options *opt;
    extra_tensor extra[2];
    int n_extra;
    double attn_factor;       /* phi3 longrope: rope.scaling.attn_factor */
    bool has_attn_factor;
} hf2g;

static int64_t cfg_int(json_t *o, const char *k, int64_t d)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : json_is_real(v) ? (int64_t)json_real_value(v) : d;
}

static bool cfg_real(json_t *o, const char *k, double *out)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return true;
}

static tsr_status kv_arch_u32(hf2g *c, const char *suffix, int64_t v)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", c->arch, suffix);
    return tsr__gguf_writer_kv_u32(c->w, key, (uint32_t)v);
}

static tsr_status kv_arch_f32(hf2g *c, const char *suffix, double v)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", c->arch, suffix);
    return tsr__gguf_writer_kv_f32(c->w, key, (float)v);
}

/* RoPE settings: transformers 5 keeps them in rope_parameters, older
 * configs in rope_scaling or at the top level of config.json. */
static json_t *rope_obj(json_t *cfg)
{
    json_t *rp = json_object_get(cfg, "rope_parameters");
    if (json_is_object(rp))
        return rp;
    rp = json_object_get(cfg, "rope_scaling");
    return json_is_object(rp) ? rp : NULL;
}

static bool rope_real(json_t *cfg, const char *k, double *out)
{
    json_t *rs = json_object_get(cfg, "rope_scaling");
    return (rope_obj(cfg) && cfg_real(rope_obj(cfg), k, out)) ||
           (json_is_object(rs) && cfg_real(rs, k, out)) || cfg_real(cfg, k, out);
}

static const char *rope_type(json_t *cfg)
{
    json_t *rs = rope_obj(cfg);
    const char *t = rs ? json_string_value(json_object_get(rs, "rope_type")) : NULL;
    if (!t && rs)
        t = json_string_value(json_object_get(rs, "type"));
    return t;
}

static int64_t head_dim_of(json_t *cfg, int64_t hidden, int64_t n_head)
{
    return cfg_int(cfg, "head_dim", n_head > 0 ? hidden / n_head : 0);
}

/* The {arch}.* keys convert_hf_to_gguf.py writes: TextModel's for llama,
 * qwen2 and qwen2moe (+ LlamaModel's vocab_size and rope.dimension_count,
 * Qwen2MoeModel's expert sizes), Phi3MiniModel's and GemmaModel's own. */
static tsr_status write_hparams(hf2g *c, uint32_t file_type)
{
    json_t *cfg = c->cfg;
    int64_t hidden = cfg_int(cfg, "hidden_size", 0);
    if (hidden <= 0 || c->n_head <= 0)
        return tsr__error(TSR_ERR_FORMAT, "%s/config.json: hidden_size and num_attention_heads "
                          "must be positive integers", c->dir);
    int64_t head_dim = head_dim_of(cfg, hidden, c->n_head);
    bool phi3 = !strcmp(c->arch, "phi3"), gemma = !strcmp(c->arch, "gemma");
    const char *slash = strrchr(c->dir, '/');
    const char *name = slash && slash[1] ? slash + 1 : c->dir;
    tsr_status st;
    if ((st = tsr__gguf_writer_kv_str(c->w, "general.architecture", c->arch)) ||
        (st = tsr__gguf_writer_kv_str(c->w, "general.name", name)) ||
        (st = kv_arch_u32(c, "block_count", cfg_int(cfg, "num_hidden_layers", 0))) ||
        (st = kv_arch_u32(c, "context_length", cfg_int(cfg, "max_position_embeddings", 2048))) ||
        (st = kv_arch_u32(c, "embedding_length", hidden)) ||
        (st = kv_arch_u32(c, "feed_forward_length", cfg_int(cfg, "intermediate_size", 0))) ||
        (st = kv_arch_u32(c, "attention.head_count", c->n_head)) ||
        (st = kv_arch_u32(c, "attention.head_count_kv", c->n_kv_head)))
        return st;
    double theta, eps;
    bool has_theta = rope_real(cfg, "rope_theta", &theta);
    if (cfg_real(cfg, "rms_norm_eps", &eps) &&
        (st = kv_arch_f32(c, "attention.layer_norm_rms_epsilon", eps)))
        return st;
    if (phi3) {
        /* partial rotary: int(partial_rotary_factor * hidden) // heads */
        double pct = 1.0;
        rope_real(cfg, "partial_rotary_factor", &pct);
        int64_t orig = 0;
        double o;
        if (rope_real(cfg, "original_max_position_embeddings", &o))
            orig = (int64_t)o;
        if ((orig > 0 && (st = kv_arch_u32(c, "rope.scaling.original_context_length", orig))) ||
            (st = kv_arch_u32(c, "rope.dimension_count", (int64_t)(pct * (double)hidden) / c->n_head)) ||
            (has_theta && (st = kv_arch_f32(c, "rope.freq_base", theta))) ||
            (st = kv_arch_u32(c, "attention.sliding_window", cfg_int(cfg, "sliding_window", 0))) ||
            (c->has_attn_factor && (st = kv_arch_f32(c, "rope.scaling.attn_factor", c->attn_factor))))
            return st;
    } else if (gemma) {
        /* no rope keys: llama.cpp's gemma assumes base 10000 and full rotary */
        if ((st = kv_arch_u32(c, "attention.key_length", head_dim)) ||
            (st = kv_arch_u32(c, "attention.value_length", head_dim)))
            return st;
        if (has_theta && theta != 10000.0 && (st = kv_arch_f32(c, "rope.freq_base", theta)))
            return st;
    } else {
        if (has_theta && (st = kv_arch_f32(c, "rope.freq_base", theta)))
            return st;
        if (c->n_expert > 0 &&
            ((st = kv_arch_u32(c, "expert_count", c->n_expert)) ||
             (st = kv_arch_u32(c, "expert_used_count", cfg_int(cfg, "num_experts_per_tok", 2)))))
            return st;
        if ((json_is_integer(json_object_get(cfg, "head_dim")) || head_dim != hidden / c->n_head) &&
            ((st = kv_arch_u32(c, "attention.key_length", head_dim)) ||
             (st = kv_arch_u32(c, "attention.value_length", head_dim))))
            return st;
        if (!strcmp(c->arch, "llama") &&
            ((st = kv_arch_u32(c, "vocab_size", cfg_int(cfg, "vocab_size", 0))) ||
             (st = kv_arch_u32(c, "rope.dimension_count", head_dim))))
            return st;
        if (!strcmp(c->arch, "qwen2moe") &&
            ((json_object_get(cfg, "moe_intermediate_size") &&
              (st = kv_arch_u32(c, "expert_feed_forward_length",
                                cfg_int(cfg, "moe_intermediate_size", 0)))) ||
             (json_object_get(cfg, "shared_expert_intermediate_size") &&
              (st = kv_arch_u32(c, "expert_shared_feed_forward_length",
                                cfg_int(cfg, "shared_expert_intermediate_size", 0))))))
            return st;
        /* rope scaling: linear and yarn as keys (llama3: the tensor rope_freqs) */
        const char *t = rope_type(cfg);
        json_t *rs = rope_obj(cfg);
        char key[128];
        snprintf(key, sizeof key, "%s.rope.scaling.type", c->arch);
        if (t && (!strcmp(t, "linear") || !strcmp(t, "yarn"))) {
            double f = 1.0;
            cfg_real(rs, "factor", &f);
            if ((st = tsr__gguf_writer_kv_str(c->w, key, t)) ||
                (st = kv_arch_f32(c, "rope.scaling.factor", f)))
                return st;
            int64_t orig = cfg_int(rs, "original_max_position_embeddings", 0);
            if (orig > 0 && (st = kv_arch_u32(c, "rope.scaling.original_context_length", orig)))
                return st;
        } else if (t && strcmp(t, "llama3") && strcmp(t, "default")) {
            return tsr__error(TSR_ERR_UNSUPPORTED, "%s/config.json: rope_scaling type '%s' cannot "
                              "be converted to GGUF for architecture '%s' (linear, yarn, llama3)",
                              c->dir, t, c->arch);
        }
    }
    if ((st = tsr__gguf_writer_kv_u32(c->w, "general.file_type", file_type)) ||
        (st = tsr__gguf_writer_kv_u32(c->w, "general.quantization_version", 2)))
        return st;
    return TSR_OK;
}

/* --- tokenizer.json -> tokenizer.ggml.* ------------------------------------------------ */

/* A token given as "<s>" or {"content": "<s>", ...} (tokenizer_config.json). */
static const char *token_text(json_t *v)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_object(v))
        return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static bool is_byte_token(const char *s)
{
    return strlen(s) == 6 && !strncmp(s, "<0x", 3) && s[5] == '>' &&
           strchr("0123456789ABCDEFabcdef", s[3]) && strchr("0123456789ABCDEFabcdef", s[4]);
}

typedef struct hf_vocab {
    char **tok;
    int32_t *type;
    int64_t n;
} hf_vocab;

static void vocab_free(hf_vocab *v)
{
    for (int64_t i = 0; v->tok && i < v->n; i++)
        free(v->tok[i]);
    free(v->tok);
    free(v->type);
}

static int64_t vocab_find(const hf_vocab *v, const tsr__strmap *map, const char *s)
{
    size_t id;
    (void)v;
    return s && tsr__strmap_get(map, s, &id) ? (int64_t)id : -1;
}

static tsr_status write_tokenizer(hf2g *c)
{
    char *path = tsr__path_join(c->dir, "tokenizer.json");
    if (!path)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    if (!tsr__file_exists(path)) {
        free(path);
        tsr__log(TSR_LOG_WARN, "%s has no tokenizer.json: the GGUF will have no tokenizer "
                 "(llama.cpp needs one)", c->dir);
        return TSR_OK;
    }
    json_error_t je;
    c->tokj = json_load_file(path, 0, &je);
    if (!c->tokj) {
        tsr_status st = tsr__error(TSR_ERR_FORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        free(path);
        return st;
    }
    char *tcp = tsr__path_join(c->dir, "tokenizer_config.json");
    if (tcp && tsr__file_exists(tcp))
        c->tokcfg = json_load_file(tcp, 0, &je);
    free(tcp);
    json_t *model = json_object_get(c->tokj, "model");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    json_t *jv = json_object_get(model, "vocab");
    if (!mtype || strcmp(mtype, "BPE") || !json_is_object(jv)) {
        tsr_status st = tsr__error(TSR_ERR_UNSUPPORTED, "%s: only BPE tokenizers (SentencePiece-"
                                   "style with byte fallback, or byte-level) convert to GGUF", path);
        free(path);
        return st;
    }
    bool spm = json_is_true(json_object_get(model, "byte_fallback"));
    /* the vocabulary size: the largest id, at least the embedding rows */
    int64_t n = cfg_int(c->cfg, "vocab_size", 0);
    const char *k;
    json_t *v;
    json_object_foreach(jv, k, v)
        if (json_integer_value(v) + 1 > n)
            n = json_integer_value(v) + 1;
    json_t *added = json_object_get(c->tokj, "added_tokens");
    size_t ai;
    json_array_foreach(added, ai, v)
        if (cfg_int(v, "id", -1) + 1 > n)
            n = cfg_int(v, "id", -1) + 1;
    hf_vocab voc = {calloc((size_t)n, sizeof(char *)), calloc((size_t)n, sizeof(int32_t)), n};
    float *scores = calloc((size_t)n, sizeof(float));
    tsr__strmap *map = tsr__strmap_create((size_t)n);
    tsr_status st = TSR_OK;
    if (!voc.tok || !voc.type || !scores || !map) {
        st = tsr__error(TSR_ERR_NOMEM, "out of memory");
        goto out;
    }
    json_object_foreach(jv, k, v) {
        int64_t id = json_integer_value(v);
        if (id < 0 || voc.tok[id])
            continue;
        voc.tok[id] = tsr__strdup(k);
        voc.type[id] = spm && is_byte_token(k) ? TT_BYTE : TT_NORMAL;
    }
    json_array_foreach(added, ai, v) {
        int64_t id = cfg_int(v, "id", -1);
        const char *content = json_string_value(json_object_get(v, "content"));
        if (id < 0 || !content)
            continue;
        if (!voc.tok[id])
            voc.tok[id] = tsr__strdup(content);
        voc.type[id] = json_is_true(json_object_get(v, "special")) ? TT_CONTROL : TT_USER;
    }
    for (int64_t i = 0; i < n; i++) {
        if (!voc.tok[i]) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%lld]", (long long)i);
            voc.tok[i] = tsr__strdup(pad);
            voc.type[i] = TT_UNUSED;
        }
        if (!voc.tok[i]) {
            st = tsr__error(TSR_ERR_NOMEM, "out of memory");
            goto out;
        }
        size_t prev;
        if (!tsr__strmap_get(map, voc.tok[i], &prev)) /* first id wins on duplicates */
            tsr__strmap_put(map, voc.tok[i], (size_t)i);
    }
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    int64_t unk_id = vocab_find(&voc, map, unk);
    if (unk_id >= 0)
        voc.type[unk_id] = TT_UNKNOWN;
    /* SentencePiece scores, as llama.cpp's llama2.c converter writes them:
     * 0 for special and byte pieces, -rank for the others in id order */
    int64_t rank = 0;
    for (int64_t i = 0; i < n; i++)
        scores[i] = voc.type[i] == TT_NORMAL ? -(float)(rank++) : 0.0f;
    if ((st = tsr__gguf_writer_kv_str(c->w, "tokenizer.ggml.model", spm ? "llama" : "gpt2")))
        goto out;
    if (!spm) {
        const char *mt = json_string_value(json_object_get(c->cfg, "model_type"));
        const char *pre = "default";
        if (mt && !strcmp(mt, "qwen2"))
            pre = "qwen2";
        else if (mt && !strcmp(mt, "gpt2"))
            pre = "gpt-2";
        char *pt = json_dumps(json_object_get(c->tokj, "pre_tokenizer"), 0);
        if (pt && strstr(pt, "\\\\p{N}{1,3}"))
            pre = "llama-bpe";
        free(pt);
        if ((st = tsr__gguf_writer_kv_str(c->w, "tokenizer.ggml.pre", pre)))
            goto out;
    }
    if ((st = tsr__gguf_writer_kv_arr_str(c->w, "tokenizer.ggml.tokens",
                                          (const char *const *)voc.tok, NULL, (uint64_t)n)))
        goto out;
    if (spm && (st = tsr__gguf_writer_kv_arr(c->w, "tokenizer.ggml.scores", TSR_GGUF_FLOAT32,
                                             scores, (uint64_t)n)))
        goto out;
    if ((st = tsr__gguf_writer_kv_arr(c->w, "tokenizer.ggml.token_type", TSR_GGUF_INT32, voc.type,
                                      (uint64_t)n)))
        goto out;
    json_t *merges = json_object_get(model, "merges");
    if (!spm && json_array_size(merges)) {
        size_t nm = json_array_size(merges);
        char **ms = calloc(nm, sizeof *ms);
        if (!ms) {
            st = tsr__error(TSR_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < nm && !st; i++) {
            json_t *e = json_array_get(merges, i);
            if (json_is_string(e)) {
                ms[i] = tsr__strdup(json_string_value(e));
            } else {
                const char *a = json_string_value(json_array_get(e, 0));
                const char *b = json_string_value(json_array_get(e, 1));
                if (a && b && (ms[i] = malloc(strlen(a) + strlen(b) + 2)))
                    sprintf(ms[i], "%s %s", a, b);
            }
            if (!ms[i])
                st = tsr__error(TSR_ERR_FORMAT, "%s: merge %zu is neither \"a b\" nor [a, b]", path, i);
        }
        if (!st)
            st = tsr__gguf_writer_kv_arr_str(c->w, "tokenizer.ggml.merges", (const char *const *)ms,
                                             NULL, nm);
        for (size_t i = 0; i < nm; i++)
            free(ms[i]);
        free(ms);
        if (st)
            goto out;
    }
    /* special ids: tokenizer_config.json, then config.json (gguf-py SpecialVocab) */
    static const char *const specials[][3] = {
        {"bos_token", "bos_token_id", "tokenizer.ggml.bos_token_id"},
        {"eos_token", "eos_token_id", "tokenizer.ggml.eos_token_id"},
        {"pad_token", "pad_token_id", "tokenizer.ggml.padding_token_id"},
    };
    for (size_t i = 0; i < 3; i++) {
        int64_t id = vocab_find(&voc, map, token_text(json_object_get(c->tokcfg, specials[i][0])));
        if (id < 0)
            id = cfg_int(c->cfg, specials[i][1], -1);
        if (id >= 0 && id < n && (st = tsr__gguf_writer_kv_u32(c->w, specials[i][2], (uint32_t)id)))
            goto out;
    }
    if (unk_id >= 0 && (st = tsr__gguf_writer_kv_u32(c->w, "tokenizer.ggml.unknown_token_id",
                                                     (uint32_t)unk_id)))
        goto out;
    /* add_bos/add_eos: tokenizer_config.json, else the post-processor's template */
    json_t *ab = json_object_get(c->tokcfg, "add_bos_token");
    json_t *ae = json_object_get(c->tokcfg, "add_eos_token");
    bool add_bos = json_is_true(ab), add_eos = json_is_true(ae);
    json_t *pp = json_object_get(c->tokj, "post_processor");
    json_t *single = json_object_get(pp, "single");
    if (!json_is_boolean(ab) && json_array_size(single))
        add_bos = json_object_get(json_array_get(single, 0), "SpecialToken") != NULL;
    if (!json_is_boolean(ae) && json_array_size(single) > 1)
        add_eos = json_object_get(json_array_get(single, json_array_size(single) - 1),
                                  "SpecialToken") != NULL;
    if ((json_is_boolean(ab) || spm || json_array_size(single)) &&
        (st = tsr__gguf_writer_kv_bool(c->w, "tokenizer.ggml.add_bos_token", add_bos)))
        goto out;
    if ((json_is_boolean(ae) || spm || json_array_size(single)) &&
        (st = tsr__gguf_writer_kv_bool(c->w, "tokenizer.ggml.add_eos_token", add_eos)))
        goto out;
    const char *tmpl = json_string_value(json_object_get(c->tokcfg, "chat_template"));
    if (tmpl && (st = tsr__gguf_writer_kv_str(c->w, "tokenizer.chat_template", tmpl)))
        goto out;
out:
    free(path);
    free(scores);
    tsr__strmap_destroy(map);
    vocab_free(&voc);
    return st;
}

/* --- tensors ---------------------------------------------------------------------------- */

static const struct { const char *hf, *gguf; } layer_names[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.o_proj.bias", "attn_output.bias"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    /* phi3: fused q/k/v rows, fused gate/up rows */
    {"self_attn.qkv_proj.weight", "attn_qkv.weight"},
    {"mlp.gate_up_proj.weight", "ffn_up.weight"},
    /* routers: mixtral, qwen2_moe */
    {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight"},
    {"mlp.gate.weight", "ffn_gate_inp.weight"},
    /* qwen2_moe's shared expert and its sigmoid gate */
    {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight"},
    {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight"},
    {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight"},
    {"mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight"},
};

/* What becomes of one checkpoint tensor. */
typedef struct name_info {
    int which;      /* 1: q rows, 2: k rows (permuted for llama) */
    int64_t expert; /* >= 0: this expert's slice of a stacked ffn_*_exps tensor */
    bool add_one;   /* gemma's RMSNorm weights: 1 + w */
} name_info;

/* One expert's weight: mixtral's block_sparse_moe.experts.X.w{1,2,3} or
 * qwen2_moe's mlp.experts.X.{gate,up,down}_proj; the stacked GGUF name. */
static bool expert_name(const char *rest, int layer, char *buf, size_t cap, int64_t *x)
{
    static const struct { const char *suffix, *gguf; } ex[] = {
        {"w1.weight", "ffn_gate_exps"}, {"w2.weight", "ffn_down_exps"}, {"w3.weight", "ffn_up_exps"},
        {"gate_proj.weight", "ffn_gate_exps"}, {"down_proj.weight", "ffn_down_exps"},
        {"up_proj.weight", "ffn_up_exps"},
    };
    int e, off = 0;
    bool mixtral = sscanf(rest, "block_sparse_moe.experts.%d.%n", &e, &off) == 1 && off;
    if (!mixtral && !(sscanf(rest, "mlp.experts.%d.%n", &e, &off) == 1 && off))
        return false;
    for (size_t i = mixtral ? 0 : 3; i < (mixtral ? 3u : 6u); i++)
        if (!strcmp(rest + off, ex[i].suffix)) {
            snprintf(buf, cap, "blk.%d.%s.weight", layer, ex[i].gguf);
            *x = e;
            return true;
        }
    return false;
}

/* The GGUF name of a checkpoint tensor; NULL for tensors llama.cpp drops;
 * "" for unknown ones. */
static const char *gguf_name(const hf2g *c, const char *hf, char *buf, size_t cap, name_info *ni)
{
    bool gemma = !strcmp(c->arch, "gemma");
    *ni = (name_info){0, -1, false};
    if (!strcmp(hf, "model.embed_tokens.weight"))
        return "token_embd.weight";
    if (!strcmp(hf, "model.norm.weight")) {
        ni->add_one = gemma;
        return "output_norm.weight";
    }
    if (!strcmp(hf, "lm_head.weight"))
        return gemma ? NULL : "output.weight"; /* gemma: always tied */
    size_t n = strlen(hf);
    if (n > 19 && !strcmp(hf + n - 19, "rotary_emb.inv_freq"))
        return NULL;
    int layer, off = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &off) != 1 || !off)
        return "";
    if (c->n_expert > 0 && expert_name(hf + off, layer, buf, cap, &ni->expert))
        return buf;
    for (size_t i = 0; i < sizeof layer_names / sizeof layer_names[0]; i++)
        if (!strcmp(hf + off, layer_names[i].hf)) {
            snprintf(buf, cap, "blk.%d.%s", layer, layer_names[i].gguf);
            if (!strcmp(layer_names[i].hf, "self_attn.q_proj.weight"))
                ni->which = 1;
            if (!strcmp(layer_names[i].hf, "self_attn.k_proj.weight"))
                ni->which = 2;
            ni->add_one = gemma && strstr(layer_names[i].hf, "layernorm.weight");
            return buf;
        }
    return "";
}

typedef struct plan {
    tsr__ckpt_tensor *ct;    /* the source (stacked experts: expert 0); NULL: extra */
    tsr__ckpt_tensor **parts; /* stacked experts: n_parts sources, expert order */
    int64_t n_parts;
    const extra_tensor *extra;
    char name[160];
    int ggml;
    int64_t heads;           /* >0: permute rows for interleaved RoPE */
    bool add_one;            /* write 1 + w (gemma norms) */
} plan;

static int choose_type(const hf2g *c, const tsr__ckpt_tensor *ct)
{
    int64_t row = ct->shape[ct->n_dims - 1];
    if (ct->n_dims < 2)
        return TSR_GGML_F32;
    int stored = ct->dtype == TSR_DTYPE_F16 ? TSR_GGML_F16
                 : ct->dtype == TSR_DTYPE_BF16 ? TSR_GGML_BF16 : TSR_GGML_F32;
    if (c->ot->ggml < 0)
        return stored;
    if (tsr__ggml_row_bytes((uint32_t)c->ot->ggml, row))
        return c->ot->ggml;
    tsr__log(TSR_LOG_INFO, "%s: rows of %lld values do not fill %s blocks: stored as F16",
             ct->name, (long long)row, c->ot->name);
    return TSR_GGML_F16;
}

/* Convert and write the rows of one source tensor; `last`: the GGUF
 * tensor's last piece. */
static tsr_status write_rows(hf2g *c, const plan *p, const tsr__ckpt_tensor *ct, bool last)
{
    int64_t cols = ct->shape[ct->n_dims - 1], rows = 1;
    for (int d = 0; d < ct->n_dims - 1; d++)
        rows *= ct->shape[d];
    size_t es = tsr__dtype_size(ct->dtype);
    size_t in_rb = (size_t)cols * es;
    size_t out_rb = tsr__ggml_row_bytes((uint32_t)p->ggml, cols);
    int src_plain = p->ggml == TSR_GGML_F32 ? TSR_DTYPE_F32 : p->ggml == TSR_GGML_F16 ? TSR_DTYPE_F16
                    : p->ggml == TSR_GGML_BF16 ? TSR_DTYPE_BF16 : -1;
    if (!es || (size_t)rows * in_rb != ct->nbytes)
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s: tensor '%s' (%s) cannot be converted",
                          ct->file, ct->name, tsr__dtype_name(ct->dtype));
    float *f = malloc((size_t)cols * sizeof(float));
    void *o = malloc(out_rb);
    tsr_status st = f && o ? TSR_OK : tsr__error(TSR_ERR_NOMEM, "out of memory");
    int64_t half = p->heads > 0 ? rows / p->heads / 2 : 0;
    if (p->heads > 0 && rows % (2 * p->heads))
        st = tsr__error(TSR_ERR_FORMAT, "%s: tensor '%s' has %lld rows, not a multiple of 2 x %lld "
                        "heads", ct->file, ct->name, (long long)rows, (long long)p->heads);
    for (int64_t r = 0; r < rows && !st; r++) {
        int64_t s = r;
        if (half) {
            int64_t h = r / (2 * half), rem = r % (2 * half);
            s = h * 2 * half + (rem % 2) * half + rem / 2;
        }
        const char *in = (const char *)ct->data + (size_t)s * in_rb;
        bool fin = last && r + 1 == rows;
        if (src_plain == (int)ct->dtype && !p->add_one) {
            st = tsr__gguf_writer_data(c->w, in, in_rb, fin);
            continue;
        }
        if ((st = tsr__to_f32(ct->dtype, in, f, cols, NULL)))
            break;
        if (p->add_one) /* float32 arithmetic, as torch does it in the converter */
            for (int64_t k = 0; k < cols; k++)
                f[k] = f[k] + 1.0f;
        if (src_plain >= 0)
            st = tsr__from_f32((uint32_t)src_plain, f, o, cols);
        else
            tsr__ggml_type((uint32_t)p->ggml)->quantize_row(f, o, cols);
        if (!st)
            st = tsr__gguf_writer_data(c->w, o, out_rb, fin);
    }
    free(f);
    free(o);
    return st ? tsr__error_prefix(st, "tensor '%s'", ct->name) : TSR_OK;
}

static tsr_status write_tensor(hf2g *c, const plan *p)
{
    if (p->extra)
        return tsr__gguf_writer_data(c->w, p->extra->v, sizeof(float) * (size_t)p->extra->n, true);
    if (!p->parts)
        return write_rows(c, p, p->ct, true);
    tsr_status st = TSR_OK;
    for (int64_t e = 0; e < p->n_parts && !st; e++)
        st = write_rows(c, p, p->parts[e], e + 1 == p->n_parts);
    return st;
}

/* llama3 RoPE as convert_hf_to_gguf.py writes it: per rotary pair i, the
 * divisor of inv_freq[i] that transformers' llama3 rule applies (1 for short
 * wavelengths, factor for long ones, a smooth blend between). */
static tsr_status llama3_rope_freqs(hf2g *c)
{
    json_t *cfg = c->cfg, *rs = rope_obj(cfg);
    const char *t = rope_type(cfg);
    if (!t || strcmp(t, "llama3"))
        return TSR_OK;
    int64_t hidden = cfg_int(cfg, "hidden_size", 0), heads = cfg_int(cfg, "num_attention_heads", 0);
    int64_t dim = head_dim_of(cfg, hidden, heads);
    double base = 10000.0, factor = 8.0, lo = 1.0, hi = 4.0;
    rope_real(cfg, "rope_theta", &base);
    cfg_real(rs, "factor", &factor);
    cfg_real(rs, "low_freq_factor", &lo);
    cfg_real(rs, "high_freq_factor", &hi);
    double orig = (double)cfg_int(rs, "original_max_position_embeddings", 8192);
    extra_tensor *x = &c->extra[c->n_extra];
    if (dim < 2 || dim / 2 > (int64_t)(sizeof x->v / sizeof x->v[0]) || hi == lo)
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s/config.json: llama3 rope_scaling with head_dim %lld "
                          "and low/high_freq_factor %g/%g cannot be converted", c->dir, (long long)dim, lo, hi);
    double low_wl = orig / lo, high_wl = orig / hi;
    for (int64_t i = 0; i < dim / 2; i++) {
        /* float32 frequencies, as torch computes them in the converter */
        float freq = 1.0f / powf((float)base, (float)(2 * i) / (float)dim);
        double wl = 2.0 * 3.14159265358979323846 / (double)freq;
        double f;
        if (wl < high_wl)
            f = 1.0;
        else if (wl > low_wl)
            f = factor;
        else {
            double smooth = (orig / wl - lo) / (hi - lo);
            f = 1.0 / ((1.0 - smooth) / factor + smooth);
        }
        x->v[i] = (float)f;
    }
    x->name = "rope_freqs.weight";
    x->n = (int)(dim / 2);
    c->n_extra++;
    return TSR_OK;
}

/* phi3 longrope (Phi3MiniModel.generate_extra_tensors): long_factor and
 * short_factor become the tensors rope_factors_long/short.weight, one factor
 * per rotary pair, and rope.scaling.attn_factor is
 * sqrt(1 + ln(s) / ln(original context)) with s = context / original
 * context (yarn: 0.1 ln(s) + 1).  An attention_factor in config.json wins
 * (transformers uses it; llama.cpp's converter ignores it). */
static tsr_status phi3_longrope(hf2g *c)
{
    json_t *cfg = c->cfg, *rs = rope_obj(cfg);
    json_t *lf = rs ? json_object_get(rs, "long_factor") : NULL;
    json_t *sf = rs ? json_object_get(rs, "short_factor") : NULL;
    if (!json_array_size(lf))
        return TSR_OK;
    const char *t = rope_type(cfg);
    double pct = 1.0, orig = 0, ctx = (double)cfg_int(cfg, "max_position_embeddings", 0);
    rope_real(cfg, "partial_rotary_factor", &pct);
    int64_t hidden = cfg_int(cfg, "hidden_size", 0);
    int64_t dims = c->n_head > 0 ? (int64_t)(pct * (double)hidden) / c->n_head : 0;
    if (!t || (strcmp(t, "longrope") && strcmp(t, "su") && strcmp(t, "yarn")))
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s/config.json: phi3 rope scaling '%s' with "
                          "long_factor cannot be converted to GGUF (longrope, su, yarn)", c->dir,
                          t ? t : "?");
    if (!rope_real(cfg, "original_max_position_embeddings", &orig) || orig <= 1)
        return tsr__error(TSR_ERR_FORMAT, "%s/config.json: phi3 longrope needs "
                          "original_max_position_embeddings", c->dir);
    if (json_array_size(lf) != json_array_size(sf) || (int64_t)json_array_size(lf) * 2 != dims ||
        json_array_size(lf) > sizeof c->extra[0].v / sizeof c->extra[0].v[0])
        return tsr__error(TSR_ERR_FORMAT, "%s/config.json: long_factor and short_factor must have "
                          "%lld values each (rotary dimensions / 2), not %zu and %zu", c->dir,
                          (long long)(dims / 2), json_array_size(lf), json_array_size(sf));
    static const char *const names[2] = {"rope_factors_long.weight", "rope_factors_short.weight"};
    json_t *arrs[2] = {lf, sf};
    for (int k = 0; k < 2; k++) {
        extra_tensor *x = &c->extra[c->n_extra++];
        x->name = names[k];
        x->n = (int)json_array_size(arrs[k]);
        for (int i = 0; i < x->n; i++) {
            json_t *v = json_array_get(arrs[k], (size_t)i);
            if (!json_is_number(v))
                return tsr__error(TSR_ERR_FORMAT, "%s/config.json: %s[%d] is not a number", c->dir,
                                  k ? "short_factor" : "long_factor", i);
            x->v[i] = (float)json_number_value(v);
        }
    }
    double scale = ctx / orig;
    if (!strcmp(t, "yarn"))
        c->attn_factor = scale > 1.0 ? 0.1 * log(scale) + 1.0 : 1.0;
    else
        c->attn_factor = scale > 1.0 ? sqrt(1.0 + log(scale) / log(orig)) : 1.0;
    cfg_real(rs, "attention_factor", &c->attn_factor);
    c->has_attn_factor = true;
    return TSR_OK;
}

/* llama.cpp's qwen2moe has sparse layers only (every layer a router,
 * experts and a shared expert). */
static tsr_status qwen2moe_all_sparse(hf2g *c)
{
    int64_t n_layer = cfg_int(c->cfg, "num_hidden_layers", 0);
    int64_t step = cfg_int(c->cfg, "decoder_sparse_step", 1);
    json_t *dense = json_object_get(c->cfg, "mlp_only_layers");
    for (int64_t l = 0; l < n_layer; l++) {
        bool is_dense = c->n_expert <= 0 || step <= 0 || (l + 1) % step != 0;
        size_t i;
        json_t *v;
        json_array_foreach(dense, i, v)
            is_dense |= json_integer_value(v) == l;
        if (is_dense)
            return tsr__error(TSR_ERR_UNSUPPORTED, "%s/config.json: layer %lld of this qwen2_moe "
                              "model is dense (mlp_only_layers / decoder_sparse_step), and "
                              "llama.cpp's qwen2moe architecture has only sparse layers, so it "
                              "cannot be converted to GGUF", c->dir, (long long)l);
    }
    return TSR_OK;
}

/* Put one expert's weight into its stacked tensor's plan (made on first
 * sight). */
static tsr_status add_expert(hf2g *c, plan *pl, size_t *np, const char *name, int64_t x,
                             tsr__ckpt_tensor *ct)
{
    if (x < 0 || x >= c->n_expert)
        return tsr__error(TSR_ERR_FORMAT, "%s: tensor '%s' is expert %lld of %lld", ct->file,
                          ct->name, (long long)x, (long long)c->n_expert);
    plan *p = NULL;
    for (size_t i = 0; i < *np && !p; i++)
        if (pl[i].parts && !strcmp(pl[i].name, name))
            p = &pl[i];
    if (!p) {
        p = &pl[(*np)++];
        snprintf(p->name, sizeof p->name, "%s", name);
        p->n_parts = c->n_expert;
        if (!(p->parts = calloc((size_t)c->n_expert, sizeof *p->parts)))
            return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    if (p->parts[x])
        return tsr__error(TSR_ERR_FORMAT, "%s: tensor '%s': expert %lld given twice", ct->file,
                          ct->name, (long long)x);
    p->parts[x] = ct;
    return TSR_OK;
}

/* Every expert present, all of one dtype and shape. */
static tsr_status check_stacked(plan *p)
{
    for (int64_t e = 0; e < p->n_parts; e++) {
        const tsr__ckpt_tensor *a = p->parts[0], *b = p->parts[e];
        if (!b)
            return tsr__error(TSR_ERR_FORMAT, "%s: the checkpoint has no expert %lld for '%s'",
                              a ? a->file : "the checkpoint", (long long)e, p->name);
        if (!a || b->dtype != a->dtype || b->n_dims != 2 || a->n_dims != 2 ||
            b->shape[0] != a->shape[0] || b->shape[1] != a->shape[1])
            return tsr__error(TSR_ERR_FORMAT, "%s: tensor '%s' is not a 2-D tensor of the dtype and "
                              "shape of its other experts (for '%s')", b->file, b->name, p->name);
    }
    p->ct = p->parts[0];
    return TSR_OK;
}

static tsr_status hf_to_gguf(hf2g *c)
{
    char *cp = tsr__path_join(c->dir, "config.json");
    tsr_status st = cp ? tsr__json_load_file(cp, (tsr_json **)&c->cfg) : TSR_ERR_NOMEM;
    free(cp);
    if (st)
        return st;
    static const char *const archs[][2] = {
        {"llama", "llama"}, {"mistral", "llama"}, {"mixtral", "llama"}, {"qwen2", "qwen2"},
        {"qwen2_moe", "qwen2moe"}, {"phi3", "phi3"}, {"gemma", "gemma"},
    };
    const char *mt = json_string_value(json_object_get(c->cfg, "model_type"));
    for (size_t i = 0; mt && i < sizeof archs / sizeof archs[0] && !c->arch[0]; i++)
        if (!strcmp(mt, archs[i][0]))
            strcpy(c->arch, archs[i][1]);
    if (!c->arch[0])
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s/config.json: model_type '%s' cannot be "
                          "converted to GGUF yet (llama, mistral, mixtral, qwen2, qwen2_moe, phi3, "
                          "gemma)", c->dir, mt ? mt : "?");
    c->n_head = cfg_int(c->cfg, "num_attention_heads", 0);
    c->n_kv_head = cfg_int(c->cfg, "num_key_value_heads", c->n_head);
    if (!strcmp(mt, "mixtral"))
        c->n_expert = cfg_int(c->cfg, "num_local_experts", 0);
    else if (!strcmp(mt, "qwen2_moe"))
        c->n_expert = cfg_int(c->cfg, "num_experts", 0);
    if (!strcmp(mt, "qwen2_moe") && (st = qwen2moe_all_sparse(c)))
        return st;
    if (!strcmp(c->arch, "phi3"))
        st = phi3_longrope(c);
    else if (strcmp(c->arch, "gemma"))
        st = llama3_rope_freqs(c);
    if (st || (st = tsr__checkpoint_open(c->dir, &c->ck)))
        return st;
    size_t n = tsr__checkpoint_count(c->ck);
    plan *pl = calloc(n + (size_t)c->n_extra + 1, sizeof *pl);
    if (!pl)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    size_t np = 0;
    for (size_t i = 0; i < n && !st; i++) {
        tsr__ckpt_tensor *ct = tsr__checkpoint_at(c->ck, i);
        name_info ni;
        char buf[160];
        const char *g = gguf_name(c, ct->name, buf, sizeof buf, &ni);
        if (!g)
            continue;
        if (!*g) {
            st = tsr__error(TSR_ERR_UNSUPPORTED, "%s: tensor '%s' has no GGUF name for "
                            "architecture '%s'", ct->file, ct->name, c->arch);
            break;
        }
        if (ni.expert >= 0) {
            st = add_expert(c, pl, &np, g, ni.expert, ct);
            continue;
        }
        snprintf(pl[np].name, sizeof pl[np].name, "%s", g);
        pl[np].ct = ct;
        pl[np].add_one = ni.add_one;
        if (!strcmp(c->arch, "llama") && ni.which)
            pl[np].heads = ni.which == 1 ? c->n_head : c->n_kv_head;
        np++;
    }
    int n_f16 = 0, n_bf16 = 0;
    for (size_t i = 0; i < np && !st; i++) {
        if (pl[i].parts && (st = check_stacked(&pl[i])))
            break;
        pl[i].ggml = choose_type(c, pl[i].ct);
        n_f16 += pl[i].ggml == TSR_GGML_F16;
        n_bf16 += pl[i].ggml == TSR_GGML_BF16;
    }
    for (int k = 0; k < c->n_extra && !st; k++) { /* tensors of their own, F32 */
        snprintf(pl[np].name, sizeof pl[np].name, "%s", c->extra[k].name);
        pl[np].extra = &c->extra[k];
        pl[np].ggml = TSR_GGML_F32;
        np++;
    }
    uint32_t ft = c->ot->ggml >= 0 ? c->ot->file_type : n_bf16 ? 32 : n_f16 ? 1 : 0;
    if (!st)
        st = tsr__gguf_writer_create(c->out, &c->w);
    if (!st)
        st = write_hparams(c, ft);
    if (!st)
        st = write_tokenizer(c);
    for (size_t i = 0; i < np && !st; i++) {
        const tsr__ckpt_tensor *ct = pl[i].ct;
        if (pl[i].extra) {
            st = tsr__gguf_writer_tensor(c->w, pl[i].name, TSR_GGML_F32, 1,
                                         (int64_t[]){pl[i].extra->n});
            continue;
        }
        int64_t ne[TSR_MAX_DIMS];
        for (int d = 0; d < ct->n_dims; d++)
            ne[d] = ct->shape[ct->n_dims - 1 - d];
        int nd = ct->n_dims ? ct->n_dims : 1;
        if (!ct->n_dims)
            ne[0] = 1;
        if (pl[i].parts) /* [experts, rows, cols] */
            ne[nd++] = pl[i].n_parts;
        st = tsr__gguf_writer_tensor(c->w, pl[i].name, (uint32_t)pl[i].ggml, nd, ne);
    }
    if (!st)
        st = tsr__gguf_writer_begin_data(c->w);
    for (size_t i = 0; i < np && !st; i++) {
        st = write_tensor(c, &pl[i]);
        if (!st && c->opt && c->opt->progress &&
            c->opt->progress((float)(i + 1) / (float)np, pl[i].name, c->opt->progress_user))
            st = tsr__error(TSR_ERR_CANCELLED, "converting %s was cancelled", c->dir);
    }
    if (!st)
        st = tsr__gguf_writer_finish(c->w);
    for (size_t i = 0; i < np; i++)
        free(pl[i].parts);
    free(pl);
    return st;
}

/* ===================================================================================
 * GGUF -> HF
 * =================================================================================== */

static tsr_status dump_json(json_t *j, const char *dir, const char *file, size_t flags)
{
    char *p = tsr__path_join(dir, file);
    if (!p)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    char *text = json_dumps(j, flags | JSON_INDENT(2));
    FILE *f = text ? fopen(p, "wb") : NULL;
    tsr_status st = TSR_OK;
    if (!f || fputs(text, f) < 0 || fputc('\n', f) == EOF)
        st = tsr__error(TSR_ERR_IO, "%s: cannot write: %s", p, strerror(errno));
    if (f && fclose(f) != 0 && !st)
        st = tsr__error(TSR_ERR_IO, "%s: write failed", p);
    free(text);
    free(p);
    return st;
}

typedef struct gtok {
    tsr__gguf *g;
    const tsr__gguf_value *tokens, *scores, *types, *merges;
    uint64_t n;
    char **tok;              /* NUL-terminated copies */
    int64_t bos, eos, unk, pad;
    bool add_bos, add_eos, spm;
    char pre[64];
} gtok;

static void gtok_free(gtok *t)
{
    for (uint64_t i = 0; t->tok && i < t->n; i++)
        free(t->tok[i]);
    free(t->tok);
    if (t->g)
        tsr__gguf_close(t->g);
}

static int64_t gint(tsr__gguf *g, const char *key, int64_t d)
{
    int64_t v;
    if (!tsr__gguf_find(g, key) || tsr__gguf_get_int(g, key, &v))
        return d;
    return v;
}

static bool gbool(tsr__gguf *g, const char *key, bool d)
{
    bool v;
    if (!tsr__gguf_find(g, key) || tsr__gguf_get_bool(g, key, &v))
        return d;
    return v;
}

static float tok_score(const gtok *t, uint64_t i)
{
    tsr__gguf_value e;
    double d = 0;
    if (t->scores && !tsr__gguf_arr_at(t->scores, i, &e))
        tsr__gguf_value_float(&e, &d);
    return (float)d;
}

static int32_t tok_type(const gtok *t, uint64_t i)
{
    tsr__gguf_value e;
    int64_t v = TT_NORMAL;
    if (t->types && !tsr__gguf_arr_at(t->types, i, &e))
        tsr__gguf_value_int(&e, &v);
    return (int32_t)v;
}

static tsr_status gtok_open(const char *path, gtok *t)
{
    tsr_status st = tsr__gguf_open(path, &t->g);
    if (st)
        return st;
    if (!tsr__gguf_find(t->g, "tokenizer.ggml.tokens"))
        return TSR_OK;
    if ((st = tsr__gguf_get_arr(t->g, "tokenizer.ggml.tokens", &t->tokens)))
        return st;
    if (tsr__gguf_find(t->g, "tokenizer.ggml.scores"))
        tsr__gguf_get_arr(t->g, "tokenizer.ggml.scores", &t->scores);
    if (tsr__gguf_find(t->g, "tokenizer.ggml.token_type"))
        tsr__gguf_get_arr(t->g, "tokenizer.ggml.token_type", &t->types);
    if (tsr__gguf_find(t->g, "tokenizer.ggml.merges"))
        tsr__gguf_get_arr(t->g, "tokenizer.ggml.merges", &t->merges);
    t->n = t->tokens->len;
    t->tok = calloc(t->n + 1, sizeof *t->tok);
    if (!t->tok)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < t->n; i++) {
        const char *s;
        size_t l;
        if ((st = tsr__gguf_arr_str(t->tokens, i, &s, &l)))
            return st;
        if (!(t->tok[i] = malloc(l + 1)))
            return tsr__error(TSR_ERR_NOMEM, "out of memory");
        memcpy(t->tok[i], s, l);
        t->tok[i][l] = 0;
    }
    const char *m;
    size_t ml;
    t->spm = !tsr__gguf_get_str(t->g, "tokenizer.ggml.model", &m, &ml) && ml == 5 &&
             !memcmp(m, "llama", 5);
    if (!tsr__gguf_find(t->g, "tokenizer.ggml.pre") ||
        tsr__gguf_get_str(t->g, "tokenizer.ggml.pre", &m, &ml) || ml >= sizeof t->pre)
        m = "default", ml = 7;
    memcpy(t->pre, m, ml);
    t->pre[ml] = 0;
    t->bos = gint(t->g, "tokenizer.ggml.bos_token_id", -1);
    t->eos = gint(t->g, "tokenizer.ggml.eos_token_id", -1);
    t->unk = gint(t->g, "tokenizer.ggml.unknown_token_id", -1);
    t->pad = gint(t->g, "tokenizer.ggml.padding_token_id", -1);
    if (t->bos >= (int64_t)t->n) t->bos = -1;
    if (t->eos >= (int64_t)t->n) t->eos = -1;
    if (t->unk >= (int64_t)t->n) t->unk = -1;
    if (t->pad >= (int64_t)t->n) t->pad = -1;
    t->add_bos = gbool(t->g, "tokenizer.ggml.add_bos_token", t->spm);
    t->add_eos = gbool(t->g, "tokenizer.ggml.add_eos_token", false);
    /* a SentencePiece vocabulary without tokenizer.ggml.bos_token_id (llama.cpp's
     * qwen2 files): transformers sets add_bos_token with bos_token None, which
     * adds nothing; say so plainly */
    if (t->bos < 0)
        t->add_bos = false;
    if (t->eos < 0)
        t->add_eos = false;
    return TSR_OK;
}

static json_t *added_token(uint64_t id, const char *content, bool special)
{
    return json_pack("{s:I,s:s,s:b,s:b,s:b,s:b,s:b}", "id", (json_int_t)id, "content", content,
                     "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", !special && 0,
                     "special", special);
}

/* transformers' merges-from-scores for SentencePiece vocabularies
 * (GGUFTokenizerSkeleton): for each piece, every split into two pieces of
 * the vocabulary, ordered by the pieces' scores (descending); then all by
 * the merged piece's score, descending (stable sorts). */
typedef struct mcand { uint64_t l, r; size_t cut; float sl, sr, s; size_t seq; } mcand;

static int cmp_local(const void *a, const void *b)
{
    const mcand *x = a, *y = b;
    if (x->sl != y->sl) return x->sl < y->sl ? 1 : -1;
    if (x->sr != y->sr) return x->sr < y->sr ? 1 : -1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_global(const void *a, const void *b)
{
    const mcand *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? 1 : -1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static json_t *derive_merges(const gtok *t, tsr__strmap *map)
{
    size_t n = 0, cap = 1024, lcap = 64;
    mcand *all = malloc(cap * sizeof *all), *loc = malloc(lcap * sizeof *loc);
    json_t *arr = json_array();
    if (!all || !loc || !arr)
        goto fail;
    for (uint64_t i = 0; i < t->n; i++) {
        size_t first;
        if (tsr__strmap_get(map, t->tok[i], &first) && first != i)
            continue; /* a python dict keeps one entry per piece */
        const char *s = t->tok[i];
        size_t len = strlen(s), nl = 0;
        float ws = tok_score(t, i);
        for (size_t cut = 1; cut < len; cut++) {
            if (((unsigned char)s[cut] & 0xC0) == 0x80)
                continue; /* python splits between characters */
            char *l = strndup(s, cut);
            size_t li, ri;
            bool ok = l && tsr__strmap_get(map, l, &li) && tsr__strmap_get(map, s + cut, &ri);
            free(l);
            if (!ok)
                continue;
            if (nl == lcap) {
                mcand *nb = realloc(loc, (lcap *= 2) * sizeof *loc);
                if (!nb)
                    goto fail;
                loc = nb;
            }
            loc[nl] = (mcand){li, ri, cut, tok_score(t, li), tok_score(t, ri), ws, nl};
            nl++;
        }
        qsort(loc, nl, sizeof *loc, cmp_local);
        if (n + nl > cap) {
            while (n + nl > cap)
                cap *= 2;
            mcand *na = realloc(all, cap * sizeof *all);
            if (!na)
                goto fail;
            all = na;
        }
        for (size_t q = 0; q < nl; q++) {
            all[n] = loc[q];
            all[n].seq = n;
            n++;
        }
    }
    qsort(all, n, sizeof *all, cmp_global);
    for (size_t q = 0; q < n; q++)
        json_array_append_new(arr, json_pack("[s,s]", t->tok[all[q].l], t->tok[all[q].r]));
    free(all);
    free(loc);
    return arr;
fail:
    free(all);
    free(loc);
    json_decref(arr);
    return NULL;
}

static json_t *template_processing(const gtok *t)
{
    json_t *single = json_array(), *pair = json_array(), *sp = json_object();
    const char *bos = t->add_bos && t->bos >= 0 ? t->tok[t->bos] : NULL;
    const char *eos = t->add_eos && t->eos >= 0 ? t->tok[t->eos] : NULL;
    for (int type_id = 0; type_id < 2; type_id++) {
        if (bos)
            json_array_append_new(pair, json_pack("{s:{s:s,s:i}}", "SpecialToken", "id", bos,
                                                  "type_id", type_id));
        json_array_append_new(pair, json_pack("{s:{s:s,s:i}}", "Sequence", "id",
                                              type_id ? "B" : "A", "type_id", type_id));
        if (eos)
            json_array_append_new(pair, json_pack("{s:{s:s,s:i}}", "SpecialToken", "id", eos,
                                                  "type_id", type_id));
    }
    if (bos)
        json_array_append_new(single, json_pack("{s:{s:s,s:i}}", "SpecialToken", "id", bos, "type_id", 0));
    json_array_append_new(single, json_pack("{s:{s:s,s:i}}", "Sequence", "id", "A", "type_id", 0));
    if (eos)
        json_array_append_new(single, json_pack("{s:{s:s,s:i}}", "SpecialToken", "id", eos, "type_id", 0));
    if (bos)
        json_object_set_new(sp, bos, json_pack("{s:s,s:[I],s:[s]}", "id", bos, "ids",
                                               (json_int_t)t->bos, "tokens", bos));
    if (eos)
        json_object_set_new(sp, eos, json_pack("{s:s,s:[I],s:[s]}", "id", eos, "ids",
                                               (json_int_t)t->eos, "tokens", eos));
    return json_pack("{s:s,s:o,s:o,s:o}", "type", "TemplateProcessing", "single", single, "pair",
                     pair, "special_tokens", sp);
}

/* tokenizer.json for a GGUF vocabulary, as transformers' GGUF converters
 * build it. */
static tsr_status build_tokenizer_json(const gtok *t, json_t **out)
{
    tsr__strmap *map = tsr__strmap_create((size_t)t->n);
    json_t *vocab = json_object(), *added = json_array(), *merges = NULL;
    json_t *tj = NULL;
    tsr_status st = TSR_OK;
    if (!map || !vocab || !added) {
        st = tsr__error(TSR_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (uint64_t i = 0; i < t->n; i++) {
        size_t prev;
        if (!tsr__strmap_get(map, t->tok[i], &prev))
            tsr__strmap_put(map, t->tok[i], (size_t)i);
        /* {word: i for i, word in enumerate(tokens)}: the last id wins */
        json_object_set_new(vocab, t->tok[i], json_integer((json_int_t)i));
        int32_t ty = tok_type(t, i);
        if (ty == TT_CONTROL || ty == TT_USER || (t->spm && (int64_t)i == t->unk))
            json_array_append_new(added, added_token(i, t->tok[i], ty != TT_USER));
    }
    if (t->merges) {
        merges = json_array();
        for (uint64_t i = 0; i < t->merges->len; i++) {
            const char *s;
            size_t l;
            if ((st = tsr__gguf_arr_str(t->merges, i, &s, &l)))
                goto out;
            const char *sp = memchr(s, ' ', l);
            if (!sp) {
                st = tsr__error(TSR_ERR_FORMAT, "tokenizer.ggml.merges[%llu] is not two tokens",
                                (unsigned long long)i);
                goto out;
            }
            json_array_append_new(merges, json_pack("[s%,s%]", s, (size_t)(sp - s), sp + 1,
                                                    (size_t)(l - (size_t)(sp - s) - 1)));
        }
    } else if (t->spm) {
        if (!t->scores) {
            st = tsr__error(TSR_ERR_FORMAT, "the GGUF has neither tokenizer.ggml.merges nor "
                            "tokenizer.ggml.scores to build merges from");
            goto out;
        }
        merges = derive_merges(t, map);
    } else {
        merges = json_array();
    }
    if (!merges) {
        st = tsr__error(TSR_ERR_NOMEM, "out of memory");
        goto out;
    }
    json_t *model, *norm, *pre, *post, *dec;
    if (t->spm) {
        model = json_pack("{s:s,s:n,s:s?,s:n,s:n,s:b,s:b,s:b,s:o,s:o}", "type", "BPE", "dropout",
                          "unk_token", t->unk >= 0 ? t->tok[t->unk] : NULL,
                          "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 1,
                          "byte_fallback", 1, "ignore_merges", 0, "vocab", vocab, "merges", merges);
        norm = json_pack("{s:s,s:[{s:s,s:s},{s:s,s:{s:s},s:s}]}", "type", "Sequence", "normalizers",
                         "type", "Prepend", "prepend", "\xe2\x96\x81", "type", "Replace",
                         "pattern", "String", " ", "content", "\xe2\x96\x81");
        pre = json_null();
        post = template_processing(t);
        dec = json_pack("{s:s,s:[{s:s},{s:s},{s:s,s:{s:s},s:s},{s:s,s:s,s:i,s:i}]}", "type",
                        "Sequence", "decoders", "type", "ByteFallback", "type", "Fuse", "type",
                        "Replace", "pattern", "String", "\xe2\x96\x81", "content", " ", "type",
                        "Strip", "content", " ", "start", 1, "stop", 0);
    } else {
        bool split = !strcmp(t->pre, "qwen2") || !strcmp(t->pre, "llama-bpe") ||
                     !strcmp(t->pre, "llama3");
        model = json_pack("{s:s,s:n,s:n,s:s,s:s,s:b,s:b,s:b,s:o,s:o}", "type", "BPE", "dropout",
                          "unk_token", "continuing_subword_prefix", "", "end_of_word_suffix", "",
                          "fuse_unk", 0, "byte_fallback", 0, "ignore_merges",
                          !strcmp(t->pre, "qwen2") ? 0 : split, "vocab", vocab, "merges", merges);
        norm = !strcmp(t->pre, "qwen2") ? json_pack("{s:s}", "type", "NFC") : json_null();
        if (split)
            pre = json_pack("{s:s,s:[{s:s,s:{s:s},s:s,s:b},{s:s,s:b,s:b,s:b}]}", "type", "Sequence",
                            "pretokenizers", "type", "Split", "pattern", "Regex",
                            !strcmp(t->pre, "qwen2") ? QWEN2_REGEX : LLAMA3_REGEX, "behavior",
                            "Isolated", "invert", 0, "type", "ByteLevel", "add_prefix_space", 0,
                            "trim_offsets", 0, "use_regex", 0);
        else
            pre = json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                            "trim_offsets", 1, "use_regex", 1);
        post = t->add_bos || t->add_eos
                   ? template_processing(t)
                   : json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 1,
                               "trim_offsets", 0, "use_regex", 1);
        dec = json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 1,
                        "trim_offsets", 1, "use_regex", 1);
    }
    vocab = merges = NULL; /* owned by model now */
    tj = json_pack("{s:s,s:n,s:n,s:o,s:o,s:o,s:o,s:o,s:o}", "version", "1.0", "truncation",
                   "padding", "added_tokens", added, "normalizer", norm, "pre_tokenizer", pre,
                   "post_processor", post, "decoder", dec, "model", model);
    added = NULL;
    if (!tj)
        st = tsr__error(TSR_ERR_NOMEM, "out of memory building tokenizer.json");
out:
    json_decref(vocab);
    json_decref(merges);
    json_decref(added);
    tsr__strmap_destroy(map);
    *out = tj;
    return st;
}

static tsr_status write_tokenizer_files(const gtok *t, json_t *cfg, const char *dir)
{
    json_t *tj;
    tsr_status st = build_tokenizer_json(t, &tj);
    if (st)
        return st;
    st = dump_json(tj, dir, "tokenizer.json", JSON_PRESERVE_ORDER);
    json_decref(tj);
    if (st)
        return st;
    json_t *tc = json_object();
    json_object_set_new(tc, "add_bos_token", json_boolean(t->add_bos));
    json_object_set_new(tc, "add_eos_token", json_boolean(t->add_eos));
    if (t->bos >= 0)
        json_object_set_new(tc, "bos_token", json_string(t->tok[t->bos]));
    if (t->eos >= 0)
        json_object_set_new(tc, "eos_token", json_string(t->tok[t->eos]));
    if (t->unk >= 0)
        json_object_set_new(tc, "unk_token", json_string(t->tok[t->unk]));
    json_object_set_new(tc, "pad_token", t->pad >= 0 ? json_string(t->tok[t->pad]) : json_null());
    json_object_set_new(tc, "clean_up_tokenization_spaces", json_false());
    if (t->spm)
        json_object_set_new(tc, "legacy", json_true());
    json_t *ml = json_object_get(cfg, "max_position_embeddings");
    if (ml)
        json_object_set(tc, "model_max_length", ml);
    json_object_set_new(tc, "tokenizer_class", json_string(t->spm ? "LlamaTokenizer"
                                                                   : "PreTrainedTokenizerFast"));
    const char *tmpl;
    size_t tl;
    if (tsr__gguf_find(t->g, "tokenizer.chat_template") &&
        !tsr__gguf_get_str(t->g, "tokenizer.chat_template", &tmpl, &tl))
        json_object_set_new(tc, "chat_template", json_stringn(tmpl, tl));
    st = dump_json(tc, dir, "tokenizer_config.json", JSON_SORT_KEYS);
    json_decref(tc);
    return st;
}

static const char *hf_architecture(const char *model_type)
{
    static const char *const map[][2] = {
        {"llama", "LlamaForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}, {"phi3", "Phi3ForCausalLM"},
        {"gemma", "GemmaForCausalLM"}, {"mixtral", "MixtralForCausalLM"},
        {"qwen2_moe", "Qwen2MoeForCausalLM"}, {"mistral", "MistralForCausalLM"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (model_type && !strcmp(map[i][0], model_type))
            return map[i][1];
    return NULL;
}

static tsr_status gguf_to_hf(const char *in, const char *dir, const tsr_convert_options *opt,
                             const char *outtype)
{
    int dt = !strcmp(outtype, "f16") ? TSR_DTYPE_F16 : !strcmp(outtype, "bf16") ? TSR_DTYPE_BF16
             : !strcmp(outtype, "f32") || !strcmp(outtype, "auto") ? TSR_DTYPE_F32 : -1;
    if (dt < 0)
        return tsr__error(TSR_ERR_INVALID_ARG, "GGUF -> Hugging Face writes f32, f16 or bf16, not "
                          "'%s'", outtype);
    tsr_json *cfgj = NULL;
    tsr_checkpoint *ck = NULL;
    tsr_tokenizer *tok = NULL;
    tsr__st_writer *w = NULL;
    gtok gt = {0};
    float *f = NULL;
    void *o = NULL;
    tsr_status st = tsr__gguf_model_open(in, &cfgj, &ck, &tok);
    tsr_tokenizer_destroy(tok);
    if (st)
        return st;
    json_t *cfg = (json_t *)cfgj;
    if ((st = tsr__st_writer_create(dir, opt && opt->struct_size >= offsetof(tsr_convert_options, max_shard_size) + sizeof opt->max_shard_size ? opt->max_shard_size : 0, &w)))
        goto out;
    size_t n = tsr__checkpoint_count(ck);
    for (size_t i = 0; i < n && !st; i++) {
        tsr__ckpt_tensor *ct = tsr__checkpoint_at(ck, i);
        int64_t count = 1;
        for (int d = 0; d < ct->n_dims; d++)
            count *= ct->shape[d];
        size_t es = tsr__dtype_size((uint32_t)dt);
        if (ct->dtype == (uint32_t)dt) {
            st = tsr__st_writer_add(w, ct->name, ct->dtype, ct->n_dims, ct->shape, ct->data, ct->nbytes);
        } else {
            free(f);
            free(o);
            f = malloc((size_t)count * sizeof(float));
            o = malloc((size_t)count * es);
            if (!f || !o) {
                st = tsr__error(TSR_ERR_NOMEM, "out of memory converting '%s'", ct->name);
                break;
            }
            if (ct->dtype >= TSR_DTYPE_GGML_BASE)
                st = tsr__ggml_dequantize(ct->dtype - TSR_DTYPE_GGML_BASE, ct->data, f, count);
            else
                st = tsr__to_f32(ct->dtype, ct->data, f, count, NULL);
            if (!st)
                st = tsr__from_f32((uint32_t)dt, f, o, count);
            if (!st)
                st = tsr__st_writer_add(w, ct->name, (uint32_t)dt, ct->n_dims, ct->shape, o,
                                        (size_t)count * es);
            if (st)
                st = tsr__error_prefix(st, "%s: tensor '%s'", in, ct->name);
        }
        if (!st && opt && opt->progress && opt->progress((float)(i + 1) / (float)(n + 1), ct->name,
                                                         opt->progress_user))
            st = tsr__error(TSR_ERR_CANCELLED, "converting %s was cancelled", in);
    }
    if (st || (st = tsr__st_writer_finish(w)))
        goto out;
    /* config.json as transformers saves it */
    const char *mt = json_string_value(json_object_get(cfg, "model_type"));
    const char *arch = hf_architecture(mt);
    if (arch)
        json_object_set_new(cfg, "architectures", json_pack("[s]", arch));
    if (mt && strcmp(mt, "gemma") && !json_object_get(cfg, "hidden_act"))
        json_object_set_new(cfg, "hidden_act", json_string("silu"));
    json_object_set_new(cfg, "torch_dtype", json_string(dt == TSR_DTYPE_F32 ? "float32"
                                                        : dt == TSR_DTYPE_F16 ? "float16" : "bfloat16"));
    if ((st = dump_json(cfg, dir, "config.json", JSON_SORT_KEYS)))
        goto out;
    json_t *gc = json_object();
    json_object_set_new(gc, "_from_model_config", json_true());
    if (json_object_get(cfg, "bos_token_id"))
        json_object_set(gc, "bos_token_id", json_object_get(cfg, "bos_token_id"));
    if (json_object_get(cfg, "eos_token_id"))
        json_object_set(gc, "eos_token_id", json_object_get(cfg, "eos_token_id"));
    st = dump_json(gc, dir, "generation_config.json", JSON_SORT_KEYS);
    json_decref(gc);
    if (st)
        goto out;
    if ((st = gtok_open(in, &gt)))
        goto out;
    if (gt.tokens)
        st = write_tokenizer_files(&gt, cfg, dir);
    if (!st && opt && opt->progress)
        opt->progress(1.0f, "tokenizer.json", opt->progress_user);
out:
    free(f);
    free(o);
    gtok_free(&gt);
    tsr__st_writer_destroy(w);
    tsr__checkpoint_close(ck);
    json_decref(cfg);
    return st;
}

/* =================================================================================== */

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

TSR_API tsr_status tsr_model_convert(const char *in, const char *out, const tsr_convert_options *opt)
{
    if (!in || !out || (opt && opt->struct_size < offsetof(tsr_convert_options, progress)))
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_model_convert: invalid arguments");
    const char *outtype = opt && opt->outtype ? opt->outtype : "auto";
    const outtype_info *ot = find_outtype(outtype);
    if (!ot)
        return tsr__error(TSR_ERR_INVALID_ARG, "unknown output type '%s' (f32, f16, bf16, q8_0, "
                          "q4_0, q4_1, q5_0, q5_1, auto)", outtype);
    if (ends_with(in, ".gguf"))
        return gguf_to_hf(in, out, opt, outtype);
    if (!ends_with(out, ".gguf"))
        return tsr__error(TSR_ERR_INVALID_ARG, "convert: '%s' is a Hugging Face folder, so the "
                          "output must be a .gguf file, not '%s'", in, out);
    hf2g c = {0};
    c.dir = in;
    c.out = out;
    c.ot = ot;
    c.opt = opt;
    tsr_status st = hf_to_gguf(&c);
    tsr__gguf_writer_destroy(c.w);
    if (st)
        remove(out);
    tsr__checkpoint_close(c.ck);
    json_decref(c.cfg);
    json_decref(c.tokj);
    json_decref(c.tokcfg);
    return st;
}
