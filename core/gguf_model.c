/* core/gguf_model.c - a GGUF model file seen as a Hugging Face folder: its
 * metadata becomes the config.json transformers' GGUF loader would write,
 * and its tensors are offered under Hugging Face names (as transformers'
 * integrations/ggml.py maps them), so the same model plugins run it.  Block
 * formats stay as they are (the backends multiply them natively or through
 * the reference dequantizer); nothing is dequantized on load.
 *
 * llama.cpp's converter permutes the rows of attn_q/attn_k of the "llama"
 * architecture for its interleaved RoPE; those rows are put back in
 * Hugging Face's rotate_half order here (a row copy, valid for every block
 * format since the permutation moves whole rows).
 *
 * Other conventions of llama.cpp's converter undone here (each checked
 * against transformers by tests/unit/test_gguf_archs.c on files that
 * convert_hf_to_gguf.py wrote, fixtures/gguf-archs/):
 *   - gemma: the converter stores every RMSNorm weight as 1 + weight
 *     (GemmaRMSNorm's convention folded in); 1 is subtracted again;
 *   - llama3 RoPE: no rope_scaling keys, only the tensor rope_freqs, the
 *     per-dimension divisors of the inverse frequencies; they become a
 *     rope_scaling whose factors do not depend on the length (longrope with
 *     equal short/long factors and attention factor 1), which is the same
 *     inv_freq as transformers' llama3 rule;
 *   - phi3 longrope: rope_factors_long/short become long/short_factor;
 *   - qwen2moe: layers without a router (ffn_gate_inp) are dense
 *     (mlp_only_layers). */
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ggml_blocks.h"
#include "gguf.h"
#include "internal.h"
#include "tokenizer.h"

typedef struct gm {
    tsr__gguf *g;
    const char *path;
    char arch[32];
    json_t *cfg;
    tsr_checkpoint *ck;
    int64_t n_head, n_kv_head;
} gm;

static bool meta_int(gm *m, const char *suffix, int64_t *out)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", m->arch, suffix);
    return tsr__gguf_find(m->g, key) && tsr__gguf_get_int(m->g, key, out) == TSR_OK;
}

static bool meta_real(gm *m, const char *suffix, double *out)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", m->arch, suffix);
    return tsr__gguf_find(m->g, key) && tsr__gguf_get_float(m->g, key, out) == TSR_OK;
}

/* Copy an integer/real metadata value into config.json under `hf`. */
static void map_int(gm *m, const char *suffix, const char *hf)
{
    int64_t v;
    if (meta_int(m, suffix, &v))
        json_object_set_new(m->cfg, hf, json_integer(v));
}

static void map_real(gm *m, const char *suffix, const char *hf)
{
    double v;
    if (meta_real(m, suffix, &v))
        json_object_set_new(m->cfg, hf, json_real(v));
}

/* --- config.json ---------------------------------------------------------------- */

static tsr_status build_config(gm *m)
{
    const char *model_type = m->arch;
    int64_t experts = 0;
    meta_int(m, "expert_count", &experts);
    if (!strcmp(m->arch, "llama") && experts > 0)
        model_type = "mixtral";
    else if (!strcmp(m->arch, "qwen2moe"))
        model_type = "qwen2_moe";
    else if (strcmp(m->arch, "llama") && strcmp(m->arch, "qwen2") && strcmp(m->arch, "phi3") &&
             strcmp(m->arch, "gemma"))
        return tsr__error(TSR_ERR_UNSUPPORTED,
                          "%s: GGUF architecture '%s' is not supported (llama, mistral, mixtral, "
                          "qwen2, qwen2moe, phi3, gemma)", m->path, m->arch);
    m->cfg = json_object();
    if (!m->cfg)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    json_object_set_new(m->cfg, "model_type", json_string(model_type));
    map_int(m, "context_length", "max_position_embeddings");
    map_int(m, "embedding_length", "hidden_size");
    map_int(m, "block_count", "num_hidden_layers");
    map_int(m, "feed_forward_length", "intermediate_size");
    map_int(m, "attention.head_count", "num_attention_heads");
    map_int(m, "attention.head_count_kv", "num_key_value_heads");
    map_int(m, "attention.key_length", "head_dim");
    map_int(m, "attention.sliding_window", "sliding_window");
    map_real(m, "attention.layer_norm_rms_epsilon", "rms_norm_eps");
    map_real(m, "rope.freq_base", "rope_theta");
    map_int(m, "expert_count", "num_local_experts");
    map_int(m, "expert_used_count", "num_experts_per_tok");
    if (!strcmp(m->arch, "qwen2moe")) {
        map_int(m, "expert_count", "num_experts");
        map_int(m, "expert_feed_forward_length", "moe_intermediate_size");
        map_int(m, "expert_shared_feed_forward_length", "shared_expert_intermediate_size");
        /* dense layers are the ones without a router */
        json_t *dense = json_array();
        int64_t n_layer = 0;
        meta_int(m, "block_count", &n_layer);
        for (int64_t l = 0; l < n_layer; l++) {
            char tn[64];
            snprintf(tn, sizeof tn, "blk.%lld.ffn_gate_inp.weight", (long long)l);
            if (!tsr__gguf_find_tensor(m->g, tn))
                json_array_append_new(dense, json_integer(l));
        }
        json_object_set_new(m->cfg, "mlp_only_layers", dense);
        json_object_set_new(m->cfg, "qkv_bias",
                            json_boolean(tsr__gguf_find_tensor(m->g, "blk.0.attn_q.bias") != NULL));
    }
    m->n_head = json_integer_value(json_object_get(m->cfg, "num_attention_heads"));
    m->n_kv_head = json_object_get(m->cfg, "num_key_value_heads")
                       ? json_integer_value(json_object_get(m->cfg, "num_key_value_heads"))
                       : m->n_head;
    /* partial rotary (phi3): rope.dimension_count of head_dim */
    int64_t rot, hidden = json_integer_value(json_object_get(m->cfg, "hidden_size"));
    if (meta_int(m, "rope.dimension_count", &rot) && m->n_head > 0) {
        int64_t hd = json_object_get(m->cfg, "head_dim")
                         ? json_integer_value(json_object_get(m->cfg, "head_dim"))
                         : hidden / m->n_head;
        if (rot > 0 && hd > 0 && rot != hd)
            json_object_set_new(m->cfg, "partial_rotary_factor", json_real((double)rot / (double)hd));
    }
    /* rope scaling (linear / yarn); llama3's rope_freqs: llama3_rope_freqs() */
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch);
    const char *st;
    size_t sl;
    if (tsr__gguf_find(m->g, key) && tsr__gguf_get_str(m->g, key, &st, &sl) == TSR_OK &&
        !(sl == 4 && !memcmp(st, "none", 4))) {
        json_t *rs = json_object();
        json_object_set_new(rs, "rope_type", json_stringn(st, sl));
        double f;
        if (meta_real(m, "rope.scaling.factor", &f))
            json_object_set_new(rs, "factor", json_real(f));
        int64_t orig;
        if (meta_int(m, "rope.scaling.original_context_length", &orig))
            json_object_set_new(rs, "original_max_position_embeddings", json_integer(orig));
        json_object_set_new(m->cfg, "rope_scaling", rs);
    }
    /* token ids */
    int64_t v;
    if (tsr__gguf_find(m->g, "tokenizer.ggml.bos_token_id") &&
        !tsr__gguf_get_int(m->g, "tokenizer.ggml.bos_token_id", &v))
        json_object_set_new(m->cfg, "bos_token_id", json_integer(v));
    if (tsr__gguf_find(m->g, "tokenizer.ggml.eos_token_id") &&
        !tsr__gguf_get_int(m->g, "tokenizer.ggml.eos_token_id", &v))
        json_object_set_new(m->cfg, "eos_token_id", json_integer(v));
    /* vocabulary and tied embeddings from the tensors */
    const tsr__gguf_tensor *emb = tsr__gguf_find_tensor(m->g, "token_embd.weight");
    if (emb)
        json_object_set_new(m->cfg, "vocab_size", json_integer(emb->ne[1]));
    json_object_set_new(m->cfg, "tie_word_embeddings",
                        json_boolean(tsr__gguf_find_tensor(m->g, "output.weight") == NULL));
    if (!strcmp(m->arch, "qwen2"))
        json_object_set_new(m->cfg, "use_sliding_window", json_false());
    return TSR_OK;
}

/* --- tensor names ----------------------------------------------------------------- */

typedef struct name_map { const char *gguf, *hf; } name_map;

/* Per-layer names: "blk.N.<gguf>" -> "model.layers.N.<hf>". */
static const name_map common_layer[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"attn_qkv.weight", "self_attn.qkv_proj.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_gate_inp.weight", "mlp.gate.weight"},
    {"ffn_gate_shexp.weight", "mlp.shared_expert.gate_proj.weight"},
    {"ffn_up_shexp.weight", "mlp.shared_expert.up_proj.weight"},
    {"ffn_down_shexp.weight", "mlp.shared_expert.down_proj.weight"},
    {"ffn_gate_inp_shexp.weight", "mlp.shared_expert_gate.weight"},
    {NULL, NULL}
};

static const char *layer_hf_name(gm *m, const char *rest, char *buf, size_t cap, int layer)
{
    const char *hf = NULL;
    for (const name_map *e = common_layer; e->gguf; e++)
        if (!strcmp(rest, e->gguf))
            hf = e->hf;
    if (!hf)
        return NULL;
    /* architecture-specific spellings */
    if (!strcmp(m->arch, "phi3") && !strcmp(rest, "ffn_up.weight"))
        hf = "mlp.gate_up_proj.weight";
    if (!strcmp(m->arch, "llama") && !strncmp(rest, "ffn_gate_inp", 12))
        hf = "block_sparse_moe.gate.weight";
    snprintf(buf, cap, "model.layers.%d.%s", layer, hf);
    return buf;
}

static tsr_status add(gm *m, const char *hf, const tsr__gguf_tensor *t, const void *data,
                      int64_t rows)
{
    int dt = tsr__ggml_to_dtype(t->ggml_type);
    if (dt < 0)
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s: tensor '%s' has ggml type %u, unknown here",
                          m->path, t->name, t->ggml_type);
    int64_t shape[TSR_MAX_DIMS];
    int nd = t->n_dims < 1 ? 1 : t->n_dims;
    int64_t ne[TSR_MAX_DIMS] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
    if (rows >= 0) { /* one expert's slice of a stacked [E, rows, cols] tensor */
        nd = 2;
        ne[1] = rows;
    }
    for (int d = 0; d < nd; d++)
        shape[d] = ne[nd - 1 - d];
    size_t nbytes = tsr__ggml_row_bytes(t->ggml_type, ne[0]) * (size_t)(nd > 1 ? ne[1] : 1);
    if (nd > 2)
        nbytes *= (size_t)ne[2];
    return tsr__checkpoint_add(m->ck, hf, (uint32_t)dt, nd, shape, data, nbytes, m->path);
}

/* llama.cpp's permute(w, n_head): row (h, i, j) of GGUF holds HF row
 * (h, j, i) for j in {0, 1} (halves), i < head_dim / 2. */
static tsr_status unpermute(gm *m, const tsr__gguf_tensor *t, int64_t heads, void **out)
{
    size_t rb = tsr__ggml_row_bytes(t->ggml_type, t->ne[0]);
    int64_t rows = t->ne[1];
    if (heads <= 0 || rows % (heads * 2))
        return tsr__error(TSR_ERR_FORMAT, "%s: tensor '%s' has %lld rows, not a multiple of 2 x %lld heads",
                          m->path, t->name, (long long)rows, (long long)heads);
    int64_t half = rows / heads / 2;
    char *dst = tsr__alloc(rb * (size_t)rows);
    if (!dst)
        return tsr__error(TSR_ERR_NOMEM, "out of memory un-permuting '%s'", t->name);
    const char *src = t->data;
    for (int64_t h = 0; h < heads; h++)
        for (int64_t j = 0; j < 2; j++)
            for (int64_t i = 0; i < half; i++) {
                int64_t hf_row = h * 2 * half + j * half + i;
                int64_t gg_row = h * 2 * half + i * 2 + j;
                memcpy(dst + (size_t)hf_row * rb, src + (size_t)gg_row * rb, rb);
            }
    *out = dst;
    /* The rows live in the heap copy now: give the source's whole pages
     * back (the file is mapped read-only and private, so a page touched
     * again is read from the file) — otherwise q and k stay resident twice. */
    size_t fsize = 0;
    const char *base = tsr__gguf_file_data(m->g, &fsize);
    long pg = sysconf(_SC_PAGESIZE);
    if (base && pg > 0 && src >= base && src + rb * (size_t)rows <= base + fsize) {
        uintptr_t a = ((uintptr_t)src + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg,
                  e = ((uintptr_t)src + rb * (size_t)rows) / (uintptr_t)pg * (uintptr_t)pg;
        if (e > a)
            madvise((void *)a, e - a, MADV_DONTNEED);
    }
    return tsr__checkpoint_adopt(m->ck, dst, tsr__free);
}

/* gemma: GGUF holds 1 + w for every RMSNorm weight w; give back w. */
static tsr_status gemma_norm(gm *m, const tsr__gguf_tensor *t, const char *hf)
{
    if (t->ggml_type != TSR_GGML_F32 || t->n_dims != 1)
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s: gemma norm tensor '%s' is not a 1-D F32 tensor "
                          "(ggml type %u)", m->path, t->name, t->ggml_type);
    float *w = tsr__alloc(sizeof(float) * (size_t)t->ne[0]);
    if (!w)
        return tsr__error(TSR_ERR_NOMEM, "out of memory reading '%s'", t->name);
    const float *src = t->data;
    for (int64_t i = 0; i < t->ne[0]; i++)
        w[i] = src[i] - 1.0f;
    tsr_status st = tsr__checkpoint_adopt(m->ck, w, tsr__free);
    return st ? st : add(m, hf, t, w, -1);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static tsr_status map_tensor(gm *m, const tsr__gguf_tensor *t)
{
    char hf[256];
    const char *n = t->name;
    bool gemma = !strcmp(m->arch, "gemma");
    if (gemma && !strcmp(n, "output_norm.weight"))
        return gemma_norm(m, t, "model.norm.weight");
    if (!strcmp(n, "token_embd.weight"))
        return add(m, "model.embed_tokens.weight", t, t->data, -1);
    if (!strcmp(n, "output_norm.weight"))
        return add(m, "model.norm.weight", t, t->data, -1);
    if (!strcmp(n, "output.weight"))
        return add(m, "lm_head.weight", t, t->data, -1);
    if (!strcmp(n, "rope_factors_long.weight") || !strcmp(n, "rope_factors_short.weight") ||
        !strcmp(n, "rope_freqs.weight"))
        return TSR_OK; /* metadata-like: folded into config.json */
    int layer, off = 0;
    if (sscanf(n, "blk.%d.%n", &layer, &off) != 1 || off == 0)
        return tsr__error(TSR_ERR_FORMAT, "%s: tensor '%s' has no Hugging Face counterpart",
                          m->path, n);
    const char *rest = n + off;
    /* stacked experts: one slice per expert */
    static const struct { const char *g, *hf_moe, *hf_mixtral; } exps[] = {
        {"ffn_gate_exps.weight", "mlp.experts.%lld.gate_proj.weight", "block_sparse_moe.experts.%lld.w1.weight"},
        {"ffn_down_exps.weight", "mlp.experts.%lld.down_proj.weight", "block_sparse_moe.experts.%lld.w2.weight"},
        {"ffn_up_exps.weight", "mlp.experts.%lld.up_proj.weight", "block_sparse_moe.experts.%lld.w3.weight"},
    };
    for (size_t k = 0; k < 3; k++) {
        if (strcmp(rest, exps[k].g))
            continue;
        size_t slice = tsr__ggml_row_bytes(t->ggml_type, t->ne[0]) * (size_t)t->ne[1];
        for (int64_t e = 0; e < t->ne[2]; e++) {
            char sub[160];
            snprintf(sub, sizeof sub, !strcmp(m->arch, "llama") ? exps[k].hf_mixtral : exps[k].hf_moe,
                     (long long)e);
            snprintf(hf, sizeof hf, "model.layers.%d.%s", layer, sub);
            tsr_status st = add(m, hf, t, (const char *)t->data + (size_t)e * slice, t->ne[1]);
            if (st)
                return st;
        }
        return TSR_OK;
    }
    if (!layer_hf_name(m, rest, hf, sizeof hf, layer))
        return tsr__error(TSR_ERR_FORMAT, "%s: tensor '%s' has no Hugging Face counterpart "
                          "for architecture '%s'", m->path, n, m->arch);
    if (gemma && ends_with(rest, "_norm.weight"))
        return gemma_norm(m, t, hf);
    if (!strcmp(m->arch, "llama") && !strcmp(rest, "attn_q.weight")) {
        void *d;
        tsr_status st = unpermute(m, t, m->n_head, &d);
        return st ? st : add(m, hf, t, d, -1);
    }
    if (!strcmp(m->arch, "llama") && !strcmp(rest, "attn_k.weight")) {
        void *d;
        tsr_status st = unpermute(m, t, m->n_kv_head, &d);
        return st ? st : add(m, hf, t, d, -1);
    }
    return add(m, hf, t, t->data, -1);
}

/* phi3 longrope: the factor tensors become rope_scaling arrays. */
static void phi3_rope_factors(gm *m)
{
    const tsr__gguf_tensor *lf = tsr__gguf_find_tensor(m->g, "rope_factors_long.weight");
    const tsr__gguf_tensor *sf = tsr__gguf_find_tensor(m->g, "rope_factors_short.weight");
    if (!lf || !sf || lf->ggml_type != TSR_GGML_F32 || sf->ggml_type != TSR_GGML_F32)
        return;
    json_t *rs = json_object(), *l = json_array(), *s = json_array();
    for (int64_t i = 0; i < lf->ne[0]; i++)
        json_array_append_new(l, json_real(((const float *)lf->data)[i]));
    for (int64_t i = 0; i < sf->ne[0]; i++)
        json_array_append_new(s, json_real(((const float *)sf->data)[i]));
    json_object_set_new(rs, "rope_type", json_string("longrope"));
    json_object_set_new(rs, "long_factor", l);
    json_object_set_new(rs, "short_factor", s);
    double af;
    if (meta_real(m, "rope.scaling.attn_factor", &af))
        json_object_set_new(rs, "attention_factor", json_real(af));
    int64_t orig;
    if (meta_int(m, "rope.scaling.original_context_length", &orig))
        json_object_set_new(m->cfg, "original_max_position_embeddings", json_integer(orig));
    json_object_set_new(m->cfg, "rope_scaling", rs);
}

/* llama3 RoPE as llama.cpp's converter writes it: rope_freqs[i] divides
 * inv_freq[i] (transformers' llama3 rule evaluated per dimension), the same
 * at every length; as rope_scaling, a longrope whose short and long factors
 * are these and whose attention factor is 1. */
static tsr_status llama3_rope_freqs(gm *m)
{
    const tsr__gguf_tensor *t = tsr__gguf_find_tensor(m->g, "rope_freqs.weight");
    if (!t)
        return TSR_OK;
    if (t->ggml_type != TSR_GGML_F32 || t->n_dims != 1)
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s: tensor 'rope_freqs.weight' is not a 1-D F32 tensor "
                          "(ggml type %u)", m->path, t->ggml_type);
    if (json_object_get(m->cfg, "rope_scaling"))
        return tsr__error(TSR_ERR_UNSUPPORTED, "%s: tensor 'rope_freqs.weight' together with "
                          "%s.rope.scaling.type is not supported", m->path, m->arch);
    json_t *rs = json_object(), *l = json_array(), *s = json_array();
    for (int64_t i = 0; i < t->ne[0]; i++) {
        json_array_append_new(l, json_real(((const float *)t->data)[i]));
        json_array_append_new(s, json_real(((const float *)t->data)[i]));
    }
    int64_t ctx = 2048;
    meta_int(m, "context_length", &ctx);
    json_object_set_new(rs, "rope_type", json_string("longrope"));
    json_object_set_new(rs, "long_factor", l);
    json_object_set_new(rs, "short_factor", s);
    json_object_set_new(rs, "attention_factor", json_real(1.0));
    json_object_set_new(rs, "original_max_position_embeddings", json_integer(ctx > 1 ? ctx : 2));
    json_object_set_new(m->cfg, "rope_scaling", rs);
    return TSR_OK;
}

static void gguf_free(void *p) { tsr__gguf_close(p); }

tsr_status tsr__gguf_model_open(const char *path, tsr_json **config, tsr_checkpoint **ck,
                                tsr_tokenizer **tok)
{
    gm m = {0};
    m.path = path;
    *config = NULL;
    *ck = NULL;
    *tok = NULL;
    tsr_status st = tsr__gguf_open(path, &m.g);
    if (st)
        return st;
    const char *arch;
    size_t al;
    if ((st = tsr__gguf_get_str(m.g, "general.architecture", &arch, &al))) {
        tsr__gguf_close(m.g);
        return st;
    }
    snprintf(m.arch, sizeof m.arch, "%.*s", (int)al, arch);
    if ((st = tsr__checkpoint_create(path, &m.ck))) {
        tsr__gguf_close(m.g);
        return st;
    }
    /* the checkpoint owns the GGUF handle (its tensors point into its mmap) */
    if ((st = tsr__checkpoint_adopt(m.ck, m.g, gguf_free)))
        goto fail;
    if ((st = build_config(&m)))
        goto fail;
    if (!strcmp(m.arch, "phi3"))
        phi3_rope_factors(&m);
    else if ((st = llama3_rope_freqs(&m)))
        goto fail;
    for (size_t i = 0; i < tsr__gguf_tensor_count(m.g); i++)
        if ((st = map_tensor(&m, tsr__gguf_tensor_at(m.g, i))))
            goto fail;
    if (tsr__gguf_find(m.g, "tokenizer.ggml.tokens") &&
        (st = tsr__tokenizer_from_gguf(m.g, path, tok)))
        goto fail;
    *config = (tsr_json *)m.cfg;
    *ck = m.ck;
    return TSR_OK;
fail:
    json_decref(m.cfg);
    tsr__checkpoint_close(m.ck);
    return st;
}
