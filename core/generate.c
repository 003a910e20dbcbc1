/* core/generate.c - the generation loop: prompt prefill, then one token at a
 * time with the sampler, streaming text as it becomes complete UTF-8, until
 * max_new_tokens, an eos_token_id, a stop string, or the callback says stop.
 * Settings resolve as transformers does: the run's configuration where the
 * user set a key, else the model's generation_config.json, else defaults. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "model.h"
#include "sampler.h"

/* A generation key: the user's configuration if set there, else the
 * model's generation_config.json, else the configuration's default. */
static const tsr_json *gen_json(const tsr_model *m, const char *key)
{
    return m->gen_config ? tsr__json_get(m->gen_config, key) : NULL;
}

static double gen_real(const tsr_model *m, const tsr_config *cfg, const char *key)
{
    char full[128];
    snprintf(full, sizeof full, "generation.%s", key);
    if (tsr__config_is_set(cfg, full))
        return tsr__config_real(cfg, full);
    const tsr_json *j = gen_json(m, key);
    if (j && tsr__json_type(j) != TSR_JSON_NULL)
        return tsr__json_real(j, tsr__config_real(cfg, full));
    return tsr__config_real(cfg, full);
}

static int64_t gen_int(const tsr_model *m, const tsr_config *cfg, const char *key)
{
    char full[128];
    snprintf(full, sizeof full, "generation.%s", key);
    if (tsr__config_is_set(cfg, full))
        return tsr__config_int(cfg, full);
    const tsr_json *j = gen_json(m, key);
    if (j && tsr__json_type(j) != TSR_JSON_NULL)
        return tsr__json_int(j, tsr__config_int(cfg, full));
    return tsr__config_int(cfg, full);
}

static bool gen_bool(const tsr_model *m, const tsr_config *cfg, const char *key)
{
    char full[128];
    snprintf(full, sizeof full, "generation.%s", key);
    if (tsr__config_is_set(cfg, full))
        return tsr__config_bool(cfg, full);
    const tsr_json *j = gen_json(m, key);
    if (j && tsr__json_type(j) == TSR_JSON_BOOL)
        return tsr__json_bool(j, 0);
    return tsr__config_bool(cfg, full);
}

/* eos ids: configuration list, else generation_config.json, else config.json. */
static size_t eos_ids(const tsr_model *m, const tsr_config *cfg, int32_t *out, size_t cap)
{
    size_t n = 0;
    if (tsr__config_is_set(cfg, "generation.eos_token_id")) {
        size_t k = tsr__config_list_len(cfg, "generation.eos_token_id");
        for (size_t i = 0; i < k && n < cap; i++)
            out[n++] = atoi(tsr__config_list_at(cfg, "generation.eos_token_id", i));
        return n;
    }
    const tsr_json *j = gen_json(m, "eos_token_id");
    if (!j)
        j = tsr__json_get(m->config, "eos_token_id");
    if (tsr__json_type(j) == TSR_JSON_INT)
        out[n++] = (int32_t)tsr__json_int(j, -1);
    else if (tsr__json_type(j) == TSR_JSON_ARRAY)
        for (size_t i = 0; i < tsr__json_size(j) && n < cap; i++)
            out[n++] = (int32_t)tsr__json_int(tsr__json_at(j, i), -1);
    return n;
}

/* Length of the longest prefix of s[0..n) that ends on a complete UTF-8
 * character. */
static size_t complete_utf8(const char *s, size_t n)
{
    size_t i = n;
    int back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return n;
    unsigned char c = (unsigned char)s[i - 1];
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return (size_t)back + 1 >= need ? n : i - 1;
}

/* Streaming text: the decoding of prompt + generated ids, minus the
 * decoding of the prompt, so spaces and merged bytes come out exactly as a
 * whole-sequence decode gives them. */
typedef struct stream {
    const tsr_tokenizer *tok;
    int32_t *ids;
    size_t n_ids, n_prompt;
    char *buf;
    size_t cap;
    size_t prompt_len;        /* bytes of the decoded prompt               */
    size_t emitted;           /* bytes of generated text already emitted   */
    size_t text_len;          /* bytes decoded so far (generated part)     */
} stream;

static tsr_status stream_decode(stream *s, size_t *len)
{
    size_t need = 0;
    for (;;) {
        tsr_status st = tsr_detokenize(s->tok, s->ids, s->n_ids, TSR_DETOKENIZE_SKIP_SPECIAL,
                                       s->buf, s->cap, &need);
        if (st)
            return st;
        if (need < s->cap)
            break;
        char *nb = realloc(s->buf, need + 256);
        if (!nb)
            return tsr__error(TSR_ERR_NOMEM, "out of memory");
        s->buf = nb;
        s->cap = need + 256;
    }
    *len = need;
    return TSR_OK;
}

TSR_API tsr_status tsr_generate(tsr_model *m, const tsr_generate_options *opt,
                                const int32_t *prompt, size_t n_prompt, tsr_token_fn cb,
                                void *user, int32_t *out_ids, size_t out_cap, size_t *n_out)
{
    if (!m || !opt || !prompt || n_prompt == 0)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_generate: a model and a non-empty prompt are needed");
    if (n_out)
        *n_out = 0;
    const tsr_config *cfg = opt->config ? opt->config : m->cfg;
    int64_t max_new = opt->max_new_tokens > 0 ? opt->max_new_tokens
                                              : gen_int(m, cfg, "max_new_tokens");
    tsr__sampling sp = {
        .do_sample = gen_bool(m, cfg, "do_sample"),
        .temperature = (float)gen_real(m, cfg, "temperature"),
        .top_k = (int)gen_int(m, cfg, "top_k"),
        .top_p = (float)gen_real(m, cfg, "top_p"),
        .min_p = (float)gen_real(m, cfg, "min_p"),
        .repetition_penalty = (float)gen_real(m, cfg, "repetition_penalty"),
    };
    if (tsr__config_is_set(cfg, "generation.seed"))
        sp.seed = (uint64_t)tsr__config_int(cfg, "generation.seed");
    else if (tsr__config_is_set(cfg, "seed"))
        sp.seed = (uint64_t)tsr__config_int(cfg, "seed");
    else
        sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    int32_t eos[16];
    size_t n_eos = eos_ids(m, cfg, eos, 16);
    size_t n_stop = tsr__config_list_len(cfg, "generation.stop_strings");

    int nv = m->info.n_vocab;
    float *logits = malloc((size_t)nv * sizeof(float) *
                           (size_t)(opt->logits_positions > 0 ? n_prompt : 1));
    stream s = {.tok = m->tok, .n_prompt = n_prompt};
    s.ids = malloc((n_prompt + (size_t)(max_new > 0 ? max_new : 0) + 1) * sizeof(int32_t));
    tsr__sampler *smp = NULL;
    tsr_status st = (!logits || !s.ids) ? tsr__error(TSR_ERR_NOMEM, "out of memory")
                                        : tsr__sampler_create(&sp, nv, &smp);
    if (st)
        goto done;
    memcpy(s.ids, prompt, n_prompt * sizeof(int32_t));
    s.n_ids = n_prompt;
    if (s.tok && (st = stream_decode(&s, &s.prompt_len)))
        goto done;

    /* prefill */
    tsr__model_reset(m);
    int all = opt->logits_positions > 0;
    if ((st = tsr__model_forward(m, prompt, (int)n_prompt, all, logits)))
        goto done;
    if (all && opt->logits_out) {
        size_t k = (size_t)opt->logits_positions < n_prompt ? (size_t)opt->logits_positions : n_prompt;
        memcpy(opt->logits_out, logits, k * (size_t)nv * sizeof(float));
    }
    float *last = logits + (all ? (n_prompt - 1) * (size_t)nv : 0);
    for (int64_t step = 0; step < max_new; step++) {
        int32_t t = tsr__sampler_next(smp, last, s.ids, s.n_ids);
        s.ids[s.n_ids++] = t;
        if (out_ids && (size_t)step < out_cap)
            out_ids[step] = t;
        if (n_out)
            *n_out = (size_t)step + 1;
        bool is_eos = false;
        for (size_t i = 0; i < n_eos; i++)
            is_eos |= eos[i] == t;
        /* new complete text */
        const char *piece = "";
        size_t piece_len = 0;
        bool stop_hit = false;
        if (s.tok) {
            size_t len = 0;
            if ((st = stream_decode(&s, &len)))
                goto done;
            size_t gen_len = len >= s.prompt_len ? len - s.prompt_len : 0;
            const char *gen = s.buf + (len >= s.prompt_len ? s.prompt_len : len);
            size_t ready = complete_utf8(gen, gen_len);
            if (ready > s.emitted) {
                piece = gen + s.emitted;
                piece_len = ready - s.emitted;
                s.emitted = ready;
            }
            for (size_t k = 0; k < n_stop && !stop_hit; k++) {
                const char *ss = tsr__config_list_at(cfg, "generation.stop_strings", k);
                if (ss && *ss) {
                    /* search the generated text only */
                    size_t sl = strlen(ss);
                    for (size_t p = 0; p + sl <= gen_len && !stop_hit; p++)
                        stop_hit = memcmp(gen + p, ss, sl) == 0;
                }
            }
        }
        if (cb && cb(t, piece, piece_len, user))
            break;
        if (is_eos || stop_hit || step + 1 == max_new)
            break;
        /* a model may ask for the whole sequence to be recomputed when it
         * grows past a position (tsr_model_info.kv_recompute_at, Phi-3) */
        if (m->info.kv_recompute_at > 0 && m->n_past == m->info.kv_recompute_at) {
            tsr__model_reset(m);
            st = tsr__model_forward(m, s.ids, (int)s.n_ids, 0, logits);
        } else {
            st = tsr__model_forward(m, &t, 1, 0, logits);
        }
        if (st)
            goto done;
        last = logits;
    }
done:
    tsr__sampler_destroy(smp);
    free(logits);
    free(s.ids);
    free(s.buf);
    return st;
}
