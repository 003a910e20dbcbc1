/* tools/cmd_synth.c - tessera synth: write a randomly initialised Llama
 * checkpoint with the shapes of a real model, as a Hugging Face folder
 * (safetensors F32/F16/BF16 + config.json + a real tokenizer) or as a GGUF
 * v3 file (F16, Q8_0, Q4_0, Q4_K) carrying the Llama-2 vocabulary, so that
 * benchmarks need no download and llama.cpp can run the very same file.
 *
 * Weights are normal(0, 0.02) (transformers' initializer_range), norm
 * weights 1.  Normal samples come from a table of 65536 Box-Muller draws
 * indexed by a xorshift generator, which is fast enough for 7B parameters.
 * The quantizers follow the GGML block layouts (formats.h); Q4_K uses a
 * plain min/max fit per 32-value sub-block (not ggml's make_qkx2_quants
 * search), which gives valid blocks of slightly lower fidelity. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"

static const char help[] =
    "usage: tessera synth --shape NAME --format FMT -o OUT [--layers N] [--seed S]\n"
    "\n"
    "Write a randomly initialised Llama model of a real shape.\n"
    "  --shape   smollm-135m | tinyllama-1.1b | llama2-7b\n"
    "  --format  hf-f32 | hf-f16 | hf-bf16   (OUT is a folder: config.json,\n"
    "            generation_config.json, model.safetensors, tokenizer files)\n"
    "            gguf-f16 | gguf-q8_0 | gguf-q4_0 | gguf-q4_k  (OUT is a .gguf file;\n"
    "            Llama-2-vocabulary shapes only)\n"
    "  --layers  override num_hidden_layers (smaller test models)\n"
    "  --seed    random seed (default 1)\n"
    "  --source  repository root holding fixtures/ (default .)\n";

typedef struct shape {
    const char *name, *tok_dir;
    int hidden, inter, layers, heads, kv_heads, vocab, ctx, bos, eos, tied;
    double eps, theta;
} shape;

/* Values from the models' published config.json files. */
static const shape shapes[] = {
    {"smollm-135m", "fixtures/smollm-135m-tokenizer-hf", 576, 1536, 30, 9, 3, 49152, 2048, 0, 0, 1,
     1e-5, 10000.0},
    {"tinyllama-1.1b", "fixtures/llama2-tokenizer-spm", 2048, 5632, 22, 32, 4, 32000, 2048, 1, 2, 0,
     1e-5, 10000.0},
    {"llama2-7b", "fixtures/llama2-tokenizer-spm", 4096, 11008, 32, 32, 32, 32000, 4096, 1, 2, 0,
     1e-5, 10000.0},
};

/* --- random numbers ---------------------------------------------------------- */

static float g_normal[65536];
static uint64_t g_rng;

static uint64_t rng_next(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static void rng_init(uint64_t seed)
{
    g_rng = seed * 0x9E3779B97F4A7C15ull + 0x1234567ull;
    for (int i = 0; i < 65536; i += 2) {
        double u1 = ((rng_next() >> 11) + 1.0) / 9007199254740993.0;
        double u2 = (rng_next() >> 11) / 9007199254740992.0;
        double r = sqrt(-2.0 * log(u1));
        g_normal[i] = (float)(0.02 * r * cos(2.0 * M_PI * u2));
        g_normal[i + 1] = (float)(0.02 * r * sin(2.0 * M_PI * u2));
    }
}

/* n values normal(0, 0.02) */
static void fill_normal(float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint64_t r = rng_next();
        x[i] = g_normal[r & 0xFFFF];
        x[i + 1] = g_normal[(r >> 16) & 0xFFFF];
        x[i + 2] = g_normal[(r >> 32) & 0xFFFF];
        x[i + 3] = g_normal[(r >> 48) & 0xFFFF];
    }
    for (; i < n; i++)
        x[i] = g_normal[rng_next() & 0xFFFF];
}

/* --- number formats ------------------------------------------------------------ */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* IEEE half, round to nearest even (finite inputs of moderate size). */
static uint16_t to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    int32_t e = (int32_t)((x >> 23) & 0xFF) - 127 + 15;
    uint32_t m = x & 0x7FFFFFu;
    if (((x >> 23) & 0xFF) == 0xFF)
        return (uint16_t)(sign | 0x7C00u | (m ? 0x200u : 0));
    if (e >= 31)
        return (uint16_t)(sign | 0x7C00u);
    if (e <= 0) {
        if (e < -10)
            return (uint16_t)sign;
        m |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (m >> 13), rem = m & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

static uint16_t to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    x += 0x7FFFu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FFu, x;
    if (e == 0) {
        float v = ldexpf((float)m, -24);
        return sign ? -v : v;
    }
    x = e == 31 ? sign | 0x7F800000u | (m << 13) : sign | ((e - 15 + 127) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* GGML block quantizers: n is a multiple of the block size. */
static size_t quant_q8_0(const float *x, int64_t n, uint8_t *out)
{
    uint8_t *o = out;
    for (int64_t b = 0; b < n; b += 32) {
        float amax = 0.0f;
        for (int i = 0; i < 32; i++)
            amax = fmaxf(amax, fabsf(x[b + i]));
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        uint16_t dh = to_f16(d);
        memcpy(o, &dh, 2);
        for (int i = 0; i < 32; i++)
            o[2 + i] = (uint8_t)(int8_t)lrintf(x[b + i] * id);
        o += 34;
    }
    return (size_t)(o - out);
}

static size_t quant_q4_0(const float *x, int64_t n, uint8_t *out)
{
    uint8_t *o = out;
    for (int64_t b = 0; b < n; b += 32) {
        float amax = 0.0f, mx = 0.0f;
        for (int i = 0; i < 32; i++)
            if (fabsf(x[b + i]) > amax) {
                amax = fabsf(x[b + i]);
                mx = x[b + i];
            }
        float d = mx / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = to_f16(d);
        memcpy(o, &dh, 2);
        for (int i = 0; i < 16; i++) {
            int q0 = (int)(x[b + i] * id + 8.5f), q1 = (int)(x[b + 16 + i] * id + 8.5f);
            q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
            q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
            o[2 + i] = (uint8_t)(q0 | (q1 << 4));
        }
        o += 18;
    }
    return (size_t)(o - out);
}

/* Q4_K super-block of 256: d, dmin (f16), 12 bytes of 6-bit sub-block
 * scales and mins, 128 bytes of nibbles; x = d*sc*q - dmin*m. */
static size_t quant_q4_k(const float *x, int64_t n, uint8_t *out)
{
    uint8_t *o = out;
    for (int64_t b = 0; b < n; b += 256) {
        const float *v = x + b;
        float sc[8], mn[8], msc = 0.0f, mmn = 0.0f;
        for (int j = 0; j < 8; j++) {
            float lo = 0.0f, hi = 0.0f;
            for (int i = 0; i < 32; i++) {
                lo = fminf(lo, v[32 * j + i]);
                hi = fmaxf(hi, v[32 * j + i]);
            }
            sc[j] = (hi - lo) / 15.0f;
            mn[j] = -lo;
            msc = fmaxf(msc, sc[j]);
            mmn = fmaxf(mmn, mn[j]);
        }
        uint16_t dh = to_f16(msc / 63.0f), mh = to_f16(mmn / 63.0f);
        float d = f16_to_f32(dh), dmin = f16_to_f32(mh);
        uint8_t ls[8], lm[8];
        for (int j = 0; j < 8; j++) {
            long a = d > 0 ? lrintf(sc[j] / d) : 0, c = dmin > 0 ? lrintf(mn[j] / dmin) : 0;
            ls[j] = (uint8_t)(a < 0 ? 0 : a > 63 ? 63 : a);
            lm[j] = (uint8_t)(c < 0 ? 0 : c > 63 ? 63 : c);
        }
        memcpy(o, &dh, 2);
        memcpy(o + 2, &mh, 2);
        uint8_t *s = o + 4, *qs = o + 16;
        memset(s, 0, 12);
        for (int j = 0; j < 4; j++) {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        }
        for (int j = 4; j < 8; j++) {
            s[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
        uint8_t q[256];
        for (int j = 0; j < 8; j++) {
            float ds = d * ls[j], m = dmin * lm[j];
            for (int i = 0; i < 32; i++) {
                long k = ds > 0 ? lrintf((v[32 * j + i] + m) / ds) : 0;
                q[32 * j + i] = (uint8_t)(k < 0 ? 0 : k > 15 ? 15 : k);
            }
        }
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++)
                qs[32 * j + l] = (uint8_t)(q[64 * j + l] | (q[64 * j + 32 + l] << 4));
        o += 144;
    }
    return (size_t)(o - out);
}

/* --- tensor list ------------------------------------------------------------ */

typedef struct wt {
    char hf[96], gg[64];
    int64_t k, n;            /* ne[0] (in), ne[1] (out); n = 1 for vectors */
    int ones;                /* norm weight */
} wt;

static int build_list(const shape *s, wt **out)
{
    int cap = 3 + 9 * s->layers, n = 0;
    wt *w = calloc((size_t)cap, sizeof *w);
    if (!w)
        return -1;
    int hd = s->hidden / s->heads;
#define ADD(HF, GG, K, N, ONES)                                                                    \
    do {                                                                                         \
        snprintf(w[n].hf, sizeof w[n].hf, "%s", HF);                                             \
        snprintf(w[n].gg, sizeof w[n].gg, "%s", GG);                                             \
        w[n].k = K;                                                                              \
        w[n].n = N;                                                                              \
        w[n].ones = ONES;                                                                        \
        n++;                                                                                     \
    } while (0)
    ADD("model.embed_tokens.weight", "token_embd.weight", s->hidden, s->vocab, 0);
    for (int l = 0; l < s->layers; l++) {
        char h[96], g[64];
        static const struct { const char *hf, *gg; int kind; } per[] = {
            {"input_layernorm", "attn_norm", 0},      {"self_attn.q_proj", "attn_q", 1},
            {"self_attn.k_proj", "attn_k", 2},        {"self_attn.v_proj", "attn_v", 2},
            {"self_attn.o_proj", "attn_output", 1},   {"post_attention_layernorm", "ffn_norm", 0},
            {"mlp.gate_proj", "ffn_gate", 3},         {"mlp.up_proj", "ffn_up", 3},
            {"mlp.down_proj", "ffn_down", 4},
        };
        for (int j = 0; j < 9; j++) {
            snprintf(h, sizeof h, "model.layers.%d.%s.weight", l, per[j].hf);
            snprintf(g, sizeof g, "blk.%d.%s.weight", l, per[j].gg);
            switch (per[j].kind) {
            case 0: ADD(h, g, s->hidden, 1, 1); break;
            case 1: ADD(h, g, s->hidden, s->hidden, 0); break;
            case 2: ADD(h, g, s->hidden, (int64_t)s->kv_heads * hd, 0); break;
            case 3: ADD(h, g, s->hidden, s->inter, 0); break;
            default: ADD(h, g, s->inter, s->hidden, 0); break;
            }
        }
    }
    ADD("model.norm.weight", "output_norm.weight", s->hidden, 1, 1);
    if (!s->tied)
        ADD("lm_head.weight", "output.weight", s->hidden, s->vocab, 0);
#undef ADD
    *out = w;
    return n;
}

/* --- Hugging Face folder ------------------------------------------------------- */

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    int rc = a && b ? 0 : 1;
    char buf[65536];
    size_t k;
    while (!rc && (k = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, k, b) != k)
            rc = 1;
    if (a)
        fclose(a);
    if (b && fclose(b))
        rc = 1;
    if (rc)
        fprintf(stderr, "tessera synth: cannot copy %s to %s\n", from, to);
    return rc;
}

static int write_hf(const shape *s, const wt *w, int nw, const char *dir, const char *dtype,
                    const char *src)
{
    char path[4096];
    mkdir(dir, 0755);
    int es = !strcmp(dtype, "F32") ? 4 : 2;
    const char *torch = es == 4 ? "float32" : !strcmp(dtype, "F16") ? "float16" : "bfloat16";
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        goto fail;
    fprintf(f, "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
            "  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
            "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
            "  \"num_key_value_heads\": %d,\n  \"vocab_size\": %d,\n"
            "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %g,\n  \"rope_theta\": %.1f,\n"
            "  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n  \"tie_word_embeddings\": %s,\n"
            "  \"initializer_range\": 0.02,\n  \"attention_bias\": false,\n  \"mlp_bias\": false,\n"
            "  \"torch_dtype\": \"%s\",\n  \"_synthetic\": \"tessera synth --shape %s\"\n}\n",
            s->hidden, s->inter, s->layers, s->heads, s->kv_heads, s->vocab, s->ctx, s->eps,
            s->theta, s->bos, s->eos, s->tied ? "true" : "false", torch, s->name);
    if (fclose(f))
        goto fail;
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if (!(f = fopen(path, "w")))
        goto fail;
    fprintf(f, "{\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n  \"do_sample\": false\n}\n",
            s->bos, s->eos);
    if (fclose(f))
        goto fail;
    static const char *tokfiles[] = {"tokenizer.json", "tokenizer_config.json",
                                     "special_tokens_map.json"};
    for (int i = 0; i < 3; i++) {
        char from[4096];
        snprintf(from, sizeof from, "%s/%s/%s", src, s->tok_dir, tokfiles[i]);
        snprintf(path, sizeof path, "%s/%s", dir, tokfiles[i]);
        if (copy_file(from, path))
            return 1;
    }
    /* safetensors header */
    size_t hcap = (size_t)nw * 200 + 256, hl = 0, off = 0;
    char *hdr = malloc(hcap);
    if (!hdr)
        return 1;
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < nw; i++) {
        size_t bytes = (size_t)(w[i].k * w[i].n) * (size_t)es;
        if (w[i].n > 1)
            hl += (size_t)snprintf(hdr + hl, hcap - hl,
                                   ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],"
                                   "\"data_offsets\":[%zu,%zu]}", w[i].hf, dtype,
                                   (long long)w[i].n, (long long)w[i].k, off, off + bytes);
        else
            hl += (size_t)snprintf(hdr + hl, hcap - hl,
                                   ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],"
                                   "\"data_offsets\":[%zu,%zu]}", w[i].hf, dtype,
                                   (long long)w[i].k, off, off + bytes);
        off += bytes;
    }
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "}");
    while (hl % 8)
        hdr[hl++] = ' ';
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!(f = fopen(path, "wb"))) {
        free(hdr);
        goto fail;
    }
    uint64_t h64 = hl;
    int rc = fwrite(&h64, 8, 1, f) != 1 || fwrite(hdr, 1, hl, f) != hl;
    free(hdr);
    int64_t maxk = 0;
    for (int i = 0; i < nw; i++)
        maxk = w[i].k > maxk ? w[i].k : maxk;
    float *row = malloc((size_t)maxk * sizeof *row);
    void *cv = malloc((size_t)maxk * (size_t)es);
    rc |= !row || !cv;
    for (int i = 0; i < nw && !rc; i++)
        for (int64_t r = 0; r < w[i].n && !rc; r++) {
            if (w[i].ones)
                for (int64_t k = 0; k < w[i].k; k++)
                    row[k] = 1.0f;
            else
                fill_normal(row, w[i].k);
            if (es == 4)
                memcpy(cv, row, (size_t)w[i].k * 4);
            else
                for (int64_t k = 0; k < w[i].k; k++)
                    ((uint16_t *)cv)[k] = dtype[0] == 'F' ? to_f16(row[k]) : to_bf16(row[k]);
            rc = fwrite(cv, (size_t)es, (size_t)w[i].k, f) != (size_t)w[i].k;
        }
    free(row);
    free(cv);
    if (fclose(f) || rc)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "tessera synth: cannot write into %s\n", dir);
    return 1;
}

/* --- GGUF ------------------------------------------------------------------------ */

enum { GG_U32 = 4, GG_F32 = 6, GG_STRING = 8, GG_ARRAY = 9 };

static void put_u32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }
static void put_u64(FILE *f, uint64_t v) { fwrite(&v, 8, 1, f); }
static void put_str(FILE *f, const char *s)
{
    put_u64(f, strlen(s));
    fwrite(s, 1, strlen(s), f);
}
static void kv_u32(FILE *f, const char *k, uint32_t v)
{
    put_str(f, k);
    put_u32(f, GG_U32);
    put_u32(f, v);
}
static void kv_f32(FILE *f, const char *k, float v)
{
    put_str(f, k);
    put_u32(f, GG_F32);
    fwrite(&v, 4, 1, f);
}
static void kv_str(FILE *f, const char *k, const char *v)
{
    put_str(f, k);
    put_u32(f, GG_STRING);
    put_str(f, v);
}

/* Size in bytes of a GGUF value of type t at p (bounded by end); 0 if bad. */
static size_t gg_value_size(const uint8_t *p, const uint8_t *end, uint32_t t)
{
    static const size_t fixed[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (t > 12)
        return 0;
    if (t == GG_STRING) {
        uint64_t n;
        if (end - p < 8)
            return 0;
        memcpy(&n, p, 8);
        return (uint64_t)(end - p) - 8 >= n ? 8 + (size_t)n : 0;
    }
    if (t == GG_ARRAY) {
        uint32_t et;
        uint64_t cnt;
        if (end - p < 12)
            return 0;
        memcpy(&et, p, 4);
        memcpy(&cnt, p + 4, 8);
        size_t sz = 12;
        for (uint64_t i = 0; i < cnt; i++) {
            size_t e = gg_value_size(p + sz, end, et);
            if (!e)
                return 0;
            sz += e;
        }
        return sz;
    }
    return (size_t)(end - p) >= fixed[t] ? fixed[t] : 0;
}

/* The tokenizer.* key/value pairs of a vocabulary-only GGUF, raw. */
static int read_vocab_kvs(const char *path, uint8_t **raw, size_t *len, uint64_t *count)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 1;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = sz > 24 ? malloc((size_t)sz) : NULL;
    int rc = !buf || fread(buf, 1, (size_t)sz, f) != (size_t)sz || memcmp(buf, "GGUF", 4);
    fclose(f);
    if (rc) {
        free(buf);
        return 1;
    }
    const uint8_t *p = buf + 24, *end = buf + sz;
    uint64_t nkv;
    memcpy(&nkv, buf + 16, 8);
    uint8_t *out = malloc((size_t)sz);
    size_t ol = 0;
    *count = 0;
    for (uint64_t i = 0; out && i < nkv; i++) {
        const uint8_t *start = p;
        size_t ks = gg_value_size(p, end, GG_STRING);
        if (!ks || end - (p + ks) < 4) {
            rc = 1;
            break;
        }
        uint32_t t;
        memcpy(&t, p + ks, 4);
        size_t vs = gg_value_size(p + ks + 4, end, t);
        if (!vs) {
            rc = 1;
            break;
        }
        p += ks + 4 + vs;
        if (ks - 8 >= 10 && !memcmp(start + 8, "tokenizer.", 10)) {
            memcpy(out + ol, start, (size_t)(p - start));
            ol += (size_t)(p - start);
            (*count)++;
        }
    }
    free(buf);
    if (rc || !out) {
        free(out);
        return 1;
    }
    *raw = out;
    *len = ol;
    return 0;
}

typedef struct ggfmt { const char *name; uint32_t type, ftype; int blk; size_t bbytes; } ggfmt;
static const ggfmt ggfmts[] = {
    {"gguf-f16", 1, 1, 1, 2}, {"gguf-q8_0", 8, 7, 32, 34},
    {"gguf-q4_0", 2, 2, 32, 18}, {"gguf-q4_k", 12, 14, 256, 144},
};

static int write_gguf(const shape *s, const wt *w, int nw, const char *path, const ggfmt *g,
                      const char *src)
{
    char vpath[4096];
    snprintf(vpath, sizeof vpath, "%s/fixtures/llamacpp-vocab/ggml-vocab-llama-spm.gguf", src);
    if (s->vocab != 32000) {
        fprintf(stderr, "tessera synth: GGUF output needs a Llama-2-vocabulary shape "
                "(tinyllama-1.1b, llama2-7b)\n");
        return 1;
    }
    uint8_t *vkv = NULL;
    size_t vlen = 0;
    uint64_t vcount = 0;
    if (read_vocab_kvs(vpath, &vkv, &vlen, &vcount)) {
        fprintf(stderr, "tessera synth: cannot read the vocabulary from %s\n", vpath);
        return 1;
    }
    /* per tensor: type (norms F32; others the format, F16 where K does not
     * fit the block) and byte size */
    uint32_t *type = calloc((size_t)nw, sizeof *type);
    size_t *bytes = calloc((size_t)nw, sizeof *bytes);
    FILE *f = type && bytes ? fopen(path, "wb") : NULL;
    if (!f) {
        free(vkv);
        free(type);
        free(bytes);
        fprintf(stderr, "tessera synth: cannot write %s\n", path);
        return 1;
    }
    for (int i = 0; i < nw; i++) {
        if (w[i].ones) {
            type[i] = 0;
            bytes[i] = (size_t)w[i].k * 4;
        } else if (w[i].k % g->blk == 0) {
            type[i] = g->type;
            bytes[i] = (size_t)(w[i].k / g->blk) * g->bbytes * (size_t)w[i].n;
        } else {
            type[i] = 1;
            bytes[i] = (size_t)w[i].k * 2 * (size_t)w[i].n;
        }
    }
    fwrite("GGUF", 1, 4, f);
    put_u32(f, 3);
    put_u64(f, (uint64_t)nw);
    put_u64(f, 13 + vcount);
    char name[128];
    snprintf(name, sizeof name, "synthetic %s (random weights)", s->name);
    kv_str(f, "general.architecture", "llama");
    kv_str(f, "general.name", name);
    kv_u32(f, "general.file_type", g->ftype);
    kv_u32(f, "general.alignment", 32);
    kv_u32(f, "llama.context_length", (uint32_t)s->ctx);
    kv_u32(f, "llama.embedding_length", (uint32_t)s->hidden);
    kv_u32(f, "llama.block_count", (uint32_t)s->layers);
    kv_u32(f, "llama.feed_forward_length", (uint32_t)s->inter);
    kv_u32(f, "llama.rope.dimension_count", (uint32_t)(s->hidden / s->heads));
    kv_u32(f, "llama.attention.head_count", (uint32_t)s->heads);
    kv_u32(f, "llama.attention.head_count_kv", (uint32_t)s->kv_heads);
    kv_f32(f, "llama.attention.layer_norm_rms_epsilon", (float)s->eps);
    kv_f32(f, "llama.rope.freq_base", (float)s->theta);
    fwrite(vkv, 1, vlen, f);
    free(vkv);
    uint64_t off = 0;
    for (int i = 0; i < nw; i++) {
        put_str(f, w[i].gg);
        put_u32(f, w[i].n > 1 ? 2 : 1);
        put_u64(f, (uint64_t)w[i].k);
        if (w[i].n > 1)
            put_u64(f, (uint64_t)w[i].n);
        put_u32(f, type[i]);
        put_u64(f, off);
        off += (bytes[i] + 31) / 32 * 32;
    }
    long pos = ftell(f);
    static const uint8_t zeros[32] = {0};
    fwrite(zeros, 1, (size_t)((32 - pos % 32) % 32), f);
    int64_t maxk = 0;
    for (int i = 0; i < nw; i++)
        maxk = w[i].k > maxk ? w[i].k : maxk;
    float *row = malloc((size_t)maxk * sizeof *row);
    uint8_t *q = malloc((size_t)maxk * 4);
    int rc = !row || !q;
    for (int i = 0; i < nw && !rc; i++) {
        for (int64_t r = 0; r < w[i].n && !rc; r++) {
            size_t qn;
            if (w[i].ones)
                for (int64_t k = 0; k < w[i].k; k++)
                    row[k] = 1.0f;
            else
                fill_normal(row, w[i].k);
            switch (type[i]) {
            case 0: memcpy(q, row, (size_t)w[i].k * 4); qn = (size_t)w[i].k * 4; break;
            case 1:
                for (int64_t k = 0; k < w[i].k; k++) {
                    uint16_t h = to_f16(row[k]);
                    memcpy(q + 2 * k, &h, 2);
                }
                qn = (size_t)w[i].k * 2;
                break;
            case 8: qn = quant_q8_0(row, w[i].k, q); break;
            case 2: qn = quant_q4_0(row, w[i].k, q); break;
            default: qn = quant_q4_k(row, w[i].k, q); break;
            }
            rc = fwrite(q, 1, qn, f) != qn;
        }
        fwrite(zeros, 1, (32 - bytes[i] % 32) % 32, f);
    }
    free(row);
    free(q);
    free(type);
    free(bytes);
    if (fclose(f) || rc) {
        fprintf(stderr, "tessera synth: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

int tsr_cli_synth(int argc, char **argv)
{
    const char *sname = NULL, *fmt = NULL, *out = NULL, *src = ".";
    int layers = 0;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "tessera synth: option %s needs a value (see --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "--shape"))
            sname = v;
        else if (!strcmp(a, "--format"))
            fmt = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            out = v;
        else if (!strcmp(a, "--layers"))
            layers = atoi(v);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--source"))
            src = v;
        else {
            fprintf(stderr, "tessera synth: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        i++;
    }
    const shape *sh = NULL;
    for (size_t i = 0; sname && i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(sname, shapes[i].name))
            sh = &shapes[i];
    if (!sh || !fmt || !out) {
        fprintf(stderr, "tessera synth: --shape (smollm-135m, tinyllama-1.1b, llama2-7b), --format "
                "and -o are required (see --help)\n");
        return 2;
    }
    shape s = *sh;
    if (layers > 0)
        s.layers = layers;
    wt *w = NULL;
    int nw = build_list(&s, &w);
    if (nw < 0)
        return 1;
    rng_init(seed);
    int rc = 2;
    if (!strcmp(fmt, "hf-f32") || !strcmp(fmt, "hf-f16") || !strcmp(fmt, "hf-bf16")) {
        rc = write_hf(&s, w, nw, out, !strcmp(fmt, "hf-f32") ? "F32" : !strcmp(fmt, "hf-f16") ? "F16"
                                                                                            : "BF16",
                      src);
    } else {
        for (size_t i = 0; i < sizeof ggfmts / sizeof ggfmts[0]; i++)
            if (!strcmp(fmt, ggfmts[i].name))
                rc = write_gguf(&s, w, nw, out, &ggfmts[i], src);
        if (rc == 2)
            fprintf(stderr, "tessera synth: unknown format '%s' (see --help)\n", fmt);
    }
    free(w);
    return rc;
}
