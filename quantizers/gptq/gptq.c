/* quantizers/gptq/gptq.c - GPTQ (Frantar et al. 2022, arXiv:2210.17323):
 * loading AutoGPTQ / GPTQModel checkpoints, quantizing float weights with
 * the GPTQ algorithm (or round-to-nearest without calibration data) and
 * saving them back in the same layout.
 *
 * Checkpoint layout of a Linear module `m` (in = K, out = N, G groups):
 *   m.qweight I32 [ceil(K*bits/32), N]  codes packed along K: column n is a
 *             little-endian bit stream over its words (3-bit codes cross
 *             word boundaries: 32 codes in 3 words)
 *   m.qzeros  I32 [G, ceil(N*bits/32)]  zero points packed the same way
 *             along N; checkpoint_format "gptq" stores zero - 1, "gptq_v2"
 *             stores zero
 *   m.scales  F16 [G, N]
 *   m.g_idx   I32 [K]  group of input column k (act-order permutes it)
 * w[n][k] = scales[g][n] * (q[k][n] - zero[g][n]), g = g_idx[k].
 * They map onto TSR_DTYPE_INT_GROUP (formats.h): codes repacked per output
 * row, scale and zero as f32 [N][G], g_idx kept when it is not k / gs.
 * Assumes a little-endian host (as safetensors' data). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tessera/plugin/plugin.h"
#include "intgroup.h"

static const tsr_host *g_host;

typedef struct hess {
    char *module;
    int64_t K;
    double rows;          /* calibration rows seen                         */
    float *xtx;           /* [K][K] sum of x x^T (upper triangle filled)   */
} hess;

typedef struct gptq_state {
    const tsr_host *h;
    int bits, group_size;       /* group_size -1: one group per row        */
    int sym, desc_act, static_groups, true_sequential, lm_head;
    double damp_percent;
    int v2;                     /* checkpoint_format "gptq_v2"              */
    int format_given;
    int any_zero0;              /* some zero point is 0 (not storable in v1) */
    char **skip;
    size_t n_skip;
    /* modules_in_block_to_quantize (optimum): only in-block modules whose
     * name ends with one of these are quantized */
    int has_mib;
    char **mib;
    size_t n_mib;
    /* written back: block-relative names of the in-block modules quantized
     * (first-seen order), and whether some in-block module stayed in float */
    char **qrel;
    size_t n_qrel;
    int inblock_float;
    hess *hs;
    size_t n_hs;
    int warned_rtn;
    uint32_t wdt;               /* dequant_dtype: tsr_fmt_int_group.weight_dtype */
} gptq_state;

/* --- configuration ---------------------------------------------------------------- */

static void gptq_destroy(void *state)
{
    gptq_state *s = state;
    if (!s)
        return;
    for (size_t i = 0; i < s->n_skip; i++)
        free(s->skip[i]);
    free(s->skip);
    for (size_t i = 0; i < s->n_mib; i++)
        free(s->mib[i]);
    free(s->mib);
    for (size_t i = 0; i < s->n_qrel; i++)
        free(s->qrel[i]);
    free(s->qrel);
    for (size_t i = 0; i < s->n_hs; i++) {
        free(s->hs[i].module);
        s->h->free(s->hs[i].xtx);
    }
    free(s->hs);
    free(s);
}

/* modules_in_block_to_quantize: a list of lists of block-relative module
 * names, as optimum's GPTQQuantizer and transformers' GPTQConfig take it
 * ([["self_attn.q_proj", "self_attn.k_proj"], ["mlp.down_proj"]]); a flat
 * list of names is read too (optimum itself would reject it). */
static tsr_status read_mib(gptq_state *s, const tsr_json *v)
{
    const tsr_host *h = s->h;
    tsr_json_type t = h->json_type(v);
    if (t == TSR_JSON_ABSENT || t == TSR_JSON_NULL)
        return TSR_OK;
    if (t != TSR_JSON_ARRAY)
        return h->set_error(TSR_ERR_CONFIG, "quantization_config: \"modules_in_block_to_quantize\" "
                            "must be a list of lists of module names, as [[\"self_attn.q_proj\", "
                            "\"self_attn.k_proj\"], [\"mlp.down_proj\"]]");
    s->has_mib = 1;
    size_t total = 0, n = h->json_size(v);
    for (size_t i = 0; i < n; i++) {
        const tsr_json *it = h->json_at(v, i);
        tsr_json_type ti = h->json_type(it);
        if (ti == TSR_JSON_STRING) {
            total++;
            continue;
        }
        if (ti != TSR_JSON_ARRAY)
            return h->set_error(TSR_ERR_CONFIG, "quantization_config: \"modules_in_block_to_quantize\" "
                                "item %zu is neither a list of module names nor a name", i);
        size_t m = h->json_size(it);
        for (size_t j = 0; j < m; j++)
            if (h->json_type(h->json_at(it, j)) != TSR_JSON_STRING)
                return h->set_error(TSR_ERR_CONFIG, "quantization_config: "
                                    "\"modules_in_block_to_quantize\" item %zu, entry %zu is not "
                                    "a module name (a string)", i, j);
        total += m;
    }
    if (!total)
        return TSR_OK;
    if (!(s->mib = calloc(total, sizeof *s->mib)))
        return h->set_error(TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const tsr_json *it = h->json_at(v, i);
        int flat = h->json_type(it) == TSR_JSON_STRING;
        size_t m = flat ? 1 : h->json_size(it);
        for (size_t j = 0; j < m; j++) {
            const char *name = h->json_string(flat ? it : h->json_at(it, j), "");
            if (!(s->mib[s->n_mib] = tsr_ig_strdup(name)))
                return h->set_error(TSR_ERR_NOMEM, "out of memory");
            s->n_mib++;
        }
    }
    return TSR_OK;
}

static tsr_status gptq_create(const tsr_host *h, const tsr_json *qc, void **state)
{
    gptq_state *s = calloc(1, sizeof *s);
    if (!s)
        return h->set_error(TSR_ERR_NOMEM, "out of memory");
    s->h = h;
    s->bits = (int)h->json_int(h->json_get(qc, "bits"), 4);
    s->group_size = (int)h->json_int(h->json_get(qc, "group_size"), 128);
    s->sym = h->json_bool(h->json_get(qc, "sym"), 1);
    s->desc_act = h->json_bool(h->json_get(qc, "desc_act"), 0);
    s->static_groups = h->json_bool(h->json_get(qc, "static_groups"), 0);
    s->true_sequential = h->json_bool(h->json_get(qc, "true_sequential"), 1);
    s->lm_head = h->json_bool(h->json_get(qc, "lm_head"), 0);
    s->damp_percent = h->json_real(h->json_get(qc, "damp_percent"), 0.1);
    const char *fmt = h->json_string(h->json_get(qc, "checkpoint_format"), NULL);
    if (!fmt)
        fmt = h->json_string(h->json_get(qc, "format"), NULL);
    s->format_given = fmt != NULL;
    /* dequant_dtype (tessera's, not GPTQModel's): float16 / bfloat16 multiply
     * the dequantized weights rounded to that dtype, as GPTQModel's torch
     * kernel dequantizes (fp16 scales times the codes, in fp16) */
    const tsr_json *ddv = h->json_get(qc, "dequant_dtype");
    const char *dd = h->json_string(ddv, NULL);
    s->wdt = TSR_DTYPE_F32;
    tsr_status st = TSR_OK;
    int dd_bad = dd ? strcmp(dd, "float32") != 0
                    : h->json_type(ddv) != TSR_JSON_ABSENT && h->json_type(ddv) != TSR_JSON_NULL;
    if (dd && !strcmp(dd, "float16"))
        s->wdt = TSR_DTYPE_F16, dd_bad = 0;
    else if (dd && !strcmp(dd, "bfloat16"))
        s->wdt = TSR_DTYPE_BF16, dd_bad = 0;
    if (dd_bad)
        st = h->set_error(TSR_ERR_CONFIG, "quantization_config: GPTQ \"dequant_dtype\" must be "
                          "\"float32\", \"float16\" or \"bfloat16\"");
    else if (s->bits != 2 && s->bits != 3 && s->bits != 4 && s->bits != 8)
        st = h->set_error(TSR_ERR_CONFIG, "quantization_config: GPTQ \"bits\" is %d; "
                          "2, 3, 4 and 8 are supported", s->bits);
    else if (s->group_size == 0 || s->group_size < -1)
        st = h->set_error(TSR_ERR_CONFIG, "quantization_config: GPTQ \"group_size\" is %d; "
                          "it must be positive or -1", s->group_size);
    else if (s->damp_percent < 0 || s->damp_percent > 1)
        st = h->set_error(TSR_ERR_CONFIG, "quantization_config: GPTQ \"damp_percent\" %g is "
                          "outside 0..1", s->damp_percent);
    else if (fmt && strcmp(fmt, "gptq") && strcmp(fmt, "gptq_v2"))
        st = h->set_error(TSR_ERR_UNSUPPORTED, "quantization_config: GPTQ checkpoint_format "
                          "\"%s\" is not supported (only \"gptq\" and \"gptq_v2\")", fmt);
    else if (h->json_bool(h->json_get(qc, "is_marlin_format"), 0))
        st = h->set_error(TSR_ERR_UNSUPPORTED, "quantization_config: GPTQ \"is_marlin_format\" "
                          "checkpoints are not supported");
    s->v2 = fmt && !strcmp(fmt, "gptq_v2");
    if (!st)
        st = tsr_ig_skip_list(h, h->json_get(qc, "modules_to_not_convert"),
                              s->lm_head ? NULL : "lm_head", &s->skip, &s->n_skip);
    if (!st)
        st = read_mib(s, h->json_get(qc, "modules_in_block_to_quantize"));
    if (st) {
        gptq_destroy(s);
        return st;
    }
    *state = s;
    return TSR_OK;
}

static int gptq_skip_module(void *state, const char *module)
{
    gptq_state *s = state;
    /* "lm_head": false keeps the head in float whatever modules_to_not_convert
     * lists (GPTQModel quantizes it only with lm_head: true; optimum converts only
     * the Linear layers inside the decoder blocks) */
    if (!s->lm_head && strstr(module, "lm_head"))
        return 1;
    int skip = tsr_ig_skip_match(s->skip, s->n_skip, module);
    const char *rel = tsr_ig_block_rel(module);
    if (!skip && rel && s->has_mib) {
        /* optimum's convert_model: an in-block Linear is quantized when its
         * name ends with one of the names */
        size_t ml = strlen(module), i;
        for (i = 0; i < s->n_mib; i++) {
            size_t l = strlen(s->mib[i]);
            if (l <= ml && !strcmp(module + ml - l, s->mib[i]))
                break;
        }
        skip = i == s->n_mib;
    }
    if (skip && rel)
        s->inblock_float = 1;
    return skip;
}

/* Remember the block-relative name of a quantized in-block module. */
static tsr_status note_quantized(gptq_state *s, const char *module)
{
    const char *rel = tsr_ig_block_rel(module);
    if (!rel)
        return TSR_OK;
    for (size_t i = 0; i < s->n_qrel; i++)
        if (!strcmp(s->qrel[i], rel))
            return TSR_OK;
    char **nq = realloc(s->qrel, (s->n_qrel + 1) * sizeof *nq);
    if (!nq)
        return s->h->set_error(TSR_ERR_NOMEM, "out of memory");
    s->qrel = nq;
    if (!(nq[s->n_qrel] = tsr_ig_strdup(rel)))
        return s->h->set_error(TSR_ERR_NOMEM, "out of memory");
    s->n_qrel++;
    return TSR_OK;
}

/* --- loading ------------------------------------------------------------------------- */

static tsr_status gptq_load_weight(void *state, const tsr_checkpoint *ck, const char *module,
                                   const int64_t *ne, tsr_tensor *out)
{
    gptq_state *s = state;
    const tsr_host *h = s->h;
    int64_t K = ne[0], N = ne[1];
    uint32_t bits = (uint32_t)s->bits;
    int64_t G = s->group_size > 0 ? (K + s->group_size - 1) / s->group_size : 1;
    tsr_tensor qw, qz, sc, gi;
    tsr_status st;
    if ((st = note_quantized(s, module)))
        return st;
    if ((st = tsr_ig_ckpt(h, ck, module, "qweight", TSR_DTYPE_I32, (K * bits + 31) / 32, N, 0, &qw)) ||
        (st = tsr_ig_ckpt(h, ck, module, "qzeros", TSR_DTYPE_I32, G, (N * bits + 31) / 32, 0, &qz)) ||
        (st = tsr_ig_ckpt(h, ck, module, "scales", 0, G, N, 0, &sc)))
        return st;
    int has_gidx = 0;
    st = tsr_ig_ckpt(h, ck, module, "g_idx", TSR_DTYPE_I32, 1, K, 1, &gi);
    if (st == TSR_OK)
        has_gidx = 1;
    else if (st != TSR_ERR_NOT_FOUND)
        return st;
    const int32_t *gidx = has_gidx ? gi.data : NULL;
    int64_t gs = s->group_size > 0 ? s->group_size : K;
    int trivial = 1;
    for (int64_t k = 0; gidx && k < K; k++) {
        if (gidx[k] < 0 || gidx[k] >= G)
            return h->set_error(TSR_ERR_FORMAT, "tensor '%s.g_idx': entry %lld is %d, outside "
                                "0..%lld", module, (long long)k, gidx[k], (long long)G - 1);
        trivial &= gidx[k] == k / gs;
    }
    tsr_ig_weight *w = tsr_ig_new(h, K, N, bits, G, gs, gidx && !trivial);
    if (!w)
        return h->set_error(TSR_ERR_NOMEM, "out of memory loading '%s'", module);
    /* codes: column n of qweight is row n's bit stream, word by word */
    const uint32_t *q = qw.data;
    int64_t R = qw.ne[1];
    for (int64_t n = 0; n < N; n++) {
        uint8_t *row = w->codes + n * (int64_t)w->f.row_bytes;
        for (size_t b = 0; b < w->f.row_bytes; b++) {
            int64_t r = (int64_t)(b / 4);
            row[b] = r < R ? (uint8_t)(q[r * N + n] >> (8 * (b % 4))) : 0;
        }
    }
    /* zeros (packed along N per group), scales */
    const uint32_t *zq = qz.data;
    int64_t Zc = qz.ne[0];
    for (int64_t g = 0; g < G; g++) {
        const uint8_t *zrow = (const uint8_t *)(zq + g * Zc);
        for (int64_t n = 0; n < N; n++) {
            uint32_t z = tsr_ig_get_bits(zrow, n * bits, bits);
            if (!s->v2)
                z += 1; /* AutoGPTQ stores zero - 1 */
            w->zero[n * G + g] = (float)z;
            s->any_zero0 |= z == 0;
        }
    }
    if ((st = tsr_ig_scales_in(h, &sc, G, N, N, 0, w->scale, module))) {
        h->free(w);
        return st;
    }
    if (w->g_idx)
        memcpy(w->g_idx, gidx, (size_t)K * sizeof(int32_t));
    w->f.weight_dtype = s->wdt;
    tsr_ig_to_tensor(w, out);
    return TSR_OK;
}

static void gptq_release_weight(void *state, tsr_tensor *t)
{
    gptq_state *s = state;
    s->h->free((void *)t->format_data);
    t->format_data = NULL;
    t->data = NULL;
}

/* --- calibration ------------------------------------------------------------------------ */

static hess *find_hess(gptq_state *s, const char *module)
{
    for (size_t i = 0; i < s->n_hs; i++)
        if (!strcmp(s->hs[i].module, module))
            return &s->hs[i];
    return NULL;
}

/* H accumulates sum_m x_m x_m^T; quantize_weight uses H = 2/rows * that,
 * as GPTQ's add_batch (the scale does not change the result). */
static tsr_status gptq_observe_input(void *state, const char *module, const float *x,
                                     int64_t K, int64_t M)
{
    gptq_state *s = state;
    const tsr_host *h = s->h;
    if (gptq_skip_module(s, module))
        return TSR_OK;
    hess *e = find_hess(s, module);
    if (!e) {
        hess *nh = realloc(s->hs, (s->n_hs + 1) * sizeof *nh);
        if (!nh)
            return h->set_error(TSR_ERR_NOMEM, "out of memory");
        s->hs = nh;
        e = &s->hs[s->n_hs];
        memset(e, 0, sizeof *e);
        e->module = tsr_ig_strdup(module);
        e->K = K;
        e->xtx = h->calloc((size_t)(K * K), sizeof(float));
        if (!e->module || !e->xtx) {
            free(e->module);
            h->free(e->xtx);
            return h->set_error(TSR_ERR_NOMEM, "out of memory for the Hessian of '%s' "
                                "(%lld x %lld)", module, (long long)K, (long long)K);
        }
        s->n_hs++;
    }
    if (e->K != K)
        return h->set_error(TSR_ERR_INVALID_ARG, "GPTQ calibration: module '%s' saw inputs of "
                            "%lld and %lld features", module, (long long)e->K, (long long)K);
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * K;
        for (int64_t i = 0; i < K; i++) {
            float xi = xr[i];
            if (xi == 0.0f)
                continue;
            float *hr = e->xtx + i * K;
            for (int64_t j = i; j < K; j++)
                hr[j] += xi * xr[j];
        }
    }
    e->rows += (double)M;
    return TSR_OK;
}

/* --- the GPTQ algorithm ---------------------------------------------------------------- */

/* Lower Cholesky factor in place (A = L L^T); 0 if A is not positive definite. */
static int cholesky(double *A, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        double d = A[j * n + j];
        for (int64_t k = 0; k < j; k++)
            d -= A[j * n + k] * A[j * n + k];
        if (!(d > 0))
            return 0;
        d = sqrt(d);
        A[j * n + j] = d;
        for (int64_t i = j + 1; i < n; i++) {
            double v = A[i * n + j];
            for (int64_t k = 0; k < j; k++)
                v -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = v / d;
        }
        for (int64_t k = j + 1; k < n; k++)
            A[j * n + k] = 0;
    }
    return 1;
}

/* Hinv = cholesky(H^-1, upper) as GPTQ's fasterquant (torch.linalg.cholesky,
 * cholesky_inverse, cholesky(upper=True)), with H += damp * mean(diag) * I. */
static int hinv_upper(const double *H, int64_t K, double damp, float *U)
{
    double *L = malloc((size_t)(K * K) * sizeof *L);
    double *Li = calloc((size_t)(K * K), sizeof *Li);
    int ok = L && Li;
    if (ok) {
        double mean = 0;
        for (int64_t i = 0; i < K; i++)
            mean += H[i * K + i];
        mean /= (double)K;
        memcpy(L, H, (size_t)(K * K) * sizeof *L);
        for (int64_t i = 0; i < K; i++)
            L[i * K + i] += damp * mean;
        ok = cholesky(L, K);
    }
    if (ok) {
        /* Li = L^-1 (lower), forward substitution column by column */
        for (int64_t j = 0; j < K; j++) {
            Li[j * K + j] = 1.0 / L[j * K + j];
            for (int64_t i = j + 1; i < K; i++) {
                double v = 0;
                for (int64_t k = j; k < i; k++)
                    v -= L[i * K + k] * Li[k * K + j];
                Li[i * K + j] = v / L[i * K + i];
            }
        }
        /* H^-1 = Li^T Li into L (symmetric) */
        for (int64_t i = 0; i < K; i++)
            for (int64_t j = i; j < K; j++) {
                double v = 0;
                for (int64_t k = j; k < K; k++)
                    v += Li[k * K + i] * Li[k * K + j];
                L[i * K + j] = L[j * K + i] = v;
            }
        ok = cholesky(L, K);
    }
    if (ok)
        for (int64_t i = 0; i < K; i++)
            for (int64_t j = 0; j < K; j++)
                U[i * K + j] = j >= i ? (float)L[j * K + i] : 0.0f;
    free(L);
    free(Li);
    return ok;
}

typedef struct qparams {
    float *scale, *zero;   /* [N] for the current group */
} qparams;

/* GPTQ's Quantizer.find_params (per channel, mse off) over columns
 * [c0, c1) of W [N][ld]; the scale is rounded to fp16 as it is stored. */
static void find_params(const gptq_state *s, const float *W, int64_t N, int64_t ld, int64_t c0,
                        int64_t c1, float *scale, float *zero)
{
    float maxq = (float)((1u << s->bits) - 1);
    for (int64_t n = 0; n < N; n++) {
        float xmin = 0, xmax = 0;
        for (int64_t k = c0; k < c1; k++) {
            float v = W[n * ld + k];
            xmin = v < xmin ? v : xmin;
            xmax = v > xmax ? v : xmax;
        }
        if (s->sym) {
            float a = fabsf(xmin) > xmax ? fabsf(xmin) : xmax;
            xmax = a;
            if (xmin < 0)
                xmin = -a;
        }
        if (xmin == 0 && xmax == 0) {
            xmin = -1;
            xmax = 1;
        }
        float sc = (xmax - xmin) / maxq;
        zero[n] = s->sym ? (maxq + 1) / 2 : rintf(-xmin / sc);
        scale[n] = s->h->f16_to_f32(s->h->f32_to_f16(sc));
        if (scale[n] == 0.0f) /* underflow in fp16 */
            scale[n] = s->h->f16_to_f32(1);
    }
}

static float quant1(float x, float scale, float zero, float maxq, uint32_t *code)
{
    float q = rintf(x / scale) + zero;
    q = q < 0 ? 0 : (q > maxq ? maxq : q);
    *code = (uint32_t)q;
    return scale * (q - zero);
}

/* Quantize W [N][K] (modified) with Hinv (upper, [K][K], or NULL for
 * round-to-nearest).  Columns are in processing order; codes go to
 * C [N][K] (processing order), group params to w (group index = pos / gs
 * or, for static groups, grp[pos]). */
static void gptq_loop(const gptq_state *s, float *W, int64_t N, int64_t K, const float *Hinv,
                      uint8_t *C, float *gscale, float *gzero, int64_t G, int64_t gs,
                      const int32_t *static_grp)
{
    const int64_t B = 128;
    float maxq = (float)((1u << s->bits) - 1);
    float *W1 = malloc((size_t)(N * B) * sizeof *W1);
    float *E1 = malloc((size_t)(N * B) * sizeof *E1);
    float *cs = malloc((size_t)N * sizeof *cs), *cz = malloc((size_t)N * sizeof *cz);
    if (!W1 || !E1 || !cs || !cz)
        goto done;
    if (s->group_size < 0 && !static_grp) { /* one group: from the whole W first */
        find_params(s, W, N, K, 0, K, cs, cz);
        for (int64_t n = 0; n < N; n++) {
            gscale[n * G] = cs[n];
            gzero[n * G] = cz[n];
        }
    }
    for (int64_t i1 = 0; i1 < K; i1 += B) {
        int64_t i2 = i1 + B < K ? i1 + B : K, cnt = i2 - i1;
        for (int64_t n = 0; n < N; n++)
            memcpy(W1 + n * B, W + n * K + i1, (size_t)cnt * sizeof(float));
        for (int64_t i = 0; i < cnt; i++) {
            int64_t col = i1 + i;
            if (static_grp) {
                int64_t g = static_grp[col];
                for (int64_t n = 0; n < N; n++) {
                    cs[n] = gscale[n * G + g];
                    cz[n] = gzero[n * G + g];
                }
            } else if (s->group_size > 0 && col % gs == 0) {
                /* as the reference: from W, which has the updates of earlier
                 * blocks but not those inside this block */
                int64_t c1 = col + gs < K ? col + gs : K;
                find_params(s, W, N, K, col, c1, cs, cz);
                int64_t g = col / gs;
                for (int64_t n = 0; n < N; n++) {
                    gscale[n * G + g] = cs[n];
                    gzero[n * G + g] = cz[n];
                }
            }
            float d = Hinv ? Hinv[col * K + col] : 1.0f;
            for (int64_t n = 0; n < N; n++) {
                uint32_t code;
                float wv = W1[n * B + i];
                float deq = quant1(wv, cs[n], cz[n], maxq, &code);
                C[n * K + col] = (uint8_t)code;
                float err = (wv - deq) / d;
                E1[n * B + i] = err;
                if (Hinv) /* W1[:, i:] -= err * Hinv1[i, i:] */
                    for (int64_t j = i; j < cnt; j++)
                        W1[n * B + j] -= err * Hinv[col * K + i1 + j];
            }
        }
        if (Hinv) /* lazy batch update: W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:] */
            for (int64_t n = 0; n < N; n++)
                for (int64_t t = 0; t < cnt; t++) {
                    float e = E1[n * B + t];
                    if (e == 0.0f)
                        continue;
                    const float *hr = Hinv + (i1 + t) * K;
                    float *wr = W + n * K;
                    for (int64_t j = i2; j < K; j++)
                        wr[j] -= e * hr[j];
                }
    }
done:
    free(W1);
    free(E1);
    free(cs);
    free(cz);
}

typedef struct sort_item { double key; int64_t idx; } sort_item;
static int cmp_items(const void *a, const void *b)
{
    const sort_item *x = a, *y = b;
    if (x->key != y->key)
        return x->key > y->key ? -1 : 1; /* descending */
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static tsr_status gptq_quantize_weight(void *state, const char *module, const float *w,
                                       const int64_t *ne, tsr_tensor *out)
{
    gptq_state *s = state;
    const tsr_host *h = s->h;
    int64_t K = ne[0], N = ne[1];
    int64_t gs = s->group_size > 0 ? s->group_size : K;
    int64_t G = (K + gs - 1) / gs;
    hess *e = find_hess(s, module);
    if (e && e->K != K)
        return h->set_error(TSR_ERR_INVALID_ARG, "GPTQ: the Hessian of '%s' is %lld x %lld but "
                            "the weight has %lld inputs", module, (long long)e->K,
                            (long long)e->K, (long long)K);
    if (!e && !s->warned_rtn) {
        h->log(TSR_LOG_WARN, "gptq", "no calibration data reached '%s': quantizing with "
               "round-to-nearest (set quantization.dataset for GPTQ proper)", module);
        s->warned_rtn = 1;
    }
    tsr_status st = note_quantized(s, module);
    if (st)
        return st;
    int act = s->desc_act && e;
    float *W = malloc((size_t)(N * K) * sizeof *W);
    double *H = e ? malloc((size_t)(K * K) * sizeof *H) : NULL;
    float *Hinv = e ? malloc((size_t)(K * K) * sizeof *Hinv) : NULL;
    int64_t *perm = malloc((size_t)K * sizeof *perm);
    uint8_t *C = malloc((size_t)(N * K));
    int32_t *sgrp = s->static_groups && s->group_size > 0 ? malloc((size_t)K * sizeof *sgrp) : NULL;
    sort_item *it = malloc((size_t)K * sizeof *it);
    tsr_ig_weight *qw = tsr_ig_new(h, K, N, (uint32_t)s->bits, G, gs, act);
    if (!W || (e && (!H || !Hinv)) || !perm || !C || !it || !qw ||
        (s->static_groups && s->group_size > 0 && !sgrp)) {
        st = h->set_error(TSR_ERR_NOMEM, "out of memory quantizing '%s'", module);
        goto done;
    }
    memcpy(W, w, (size_t)(N * K) * sizeof *W);
    if (s->static_groups && s->group_size > 0) /* params from the original groups */
        for (int64_t g = 0; g < G; g++) {
            int64_t c1 = (g + 1) * gs < K ? (g + 1) * gs : K;
            float *cs = malloc((size_t)N * 2 * sizeof(float));
            if (!cs) {
                st = h->set_error(TSR_ERR_NOMEM, "out of memory quantizing '%s'", module);
                goto done;
            }
            find_params(s, W, N, K, g * gs, c1, cs, cs + N);
            for (int64_t n = 0; n < N; n++) {
                qw->scale[n * G + g] = cs[n];
                qw->zero[n * G + g] = cs[N + n];
            }
            free(cs);
        }
    for (int64_t k = 0; k < K; k++)
        perm[k] = k;
    if (e) {
        double f = e->rows > 0 ? 2.0 / e->rows : 0.0;
        for (int64_t i = 0; i < K; i++)
            for (int64_t j = i; j < K; j++)
                H[i * K + j] = H[j * K + i] = f * (double)e->xtx[i * K + j];
        for (int64_t i = 0; i < K; i++) /* dead inputs */
            if (H[i * K + i] == 0) {
                H[i * K + i] = 1;
                for (int64_t n = 0; n < N; n++)
                    W[n * K + i] = 0;
            }
        if (act) {
            for (int64_t k = 0; k < K; k++)
                it[k] = (sort_item){H[k * K + k], k};
            qsort(it, (size_t)K, sizeof *it, cmp_items);
            for (int64_t k = 0; k < K; k++)
                perm[k] = it[k].idx;
            /* permute W's columns and H's rows and columns */
            for (int64_t n = 0; n < N; n++) {
                for (int64_t k = 0; k < K; k++)
                    Hinv[k] = W[n * K + perm[k]];
                memcpy(W + n * K, Hinv, (size_t)K * sizeof(float));
            }
            double *Hp = malloc((size_t)(K * K) * sizeof *Hp);
            if (!Hp) {
                st = h->set_error(TSR_ERR_NOMEM, "out of memory quantizing '%s'", module);
                goto done;
            }
            for (int64_t i = 0; i < K; i++)
                for (int64_t j = 0; j < K; j++)
                    Hp[i * K + j] = H[perm[i] * K + perm[j]];
            free(H);
            H = Hp;
        }
        double damp = s->damp_percent;
        int ok = 0;
        for (int tries = 0; tries < 20 && !(ok = hinv_upper(H, K, damp, Hinv)); tries++) {
            damp += 0.01;
            h->log(TSR_LOG_WARN, "gptq", "'%s': the damped Hessian is not positive definite; "
                   "retrying with damp_percent %.2f", module, damp);
        }
        if (!ok) {
            st = h->set_error(TSR_ERR_INTERNAL, "GPTQ: the Hessian of '%s' stays singular "
                              "after dampening", module);
            goto done;
        }
    }
    if (sgrp)
        for (int64_t i = 0; i < K; i++)
            sgrp[i] = (int32_t)(perm[i] / gs);
    gptq_loop(s, W, N, K, e ? Hinv : NULL, C, qw->scale, qw->zero, G, gs, sgrp);
    /* codes back to the original column order */
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < K; i++)
            tsr_ig_put_bits(qw->codes + n * (int64_t)qw->f.row_bytes, perm[i] * s->bits,
                            (uint32_t)s->bits, C[n * K + i]);
    if (qw->g_idx) /* group of original column perm[i] is i / gs */
        for (int64_t i = 0; i < K; i++)
            qw->g_idx[perm[i]] = (int32_t)(i / gs);
    for (int64_t i = 0; i < N * G; i++)
        s->any_zero0 |= qw->zero[i] == 0;
    qw->f.weight_dtype = s->wdt;
    tsr_ig_to_tensor(qw, out);
    qw = NULL;
    if (e) { /* the Hessian is no longer needed */
        h->free(e->xtx);
        e->xtx = NULL;
        free(e->module);
        *e = s->hs[--s->n_hs];
    }
done:
    if (qw)
        h->free(qw);
    free(W);
    free(H);
    free(Hinv);
    free(perm);
    free(C);
    free(sgrp);
    free(it);
    return st;
}

/* --- saving ---------------------------------------------------------------------------- */

static int save_v2(const gptq_state *s)
{
    return s->v2 || s->any_zero0;
}

static tsr_status gptq_save_weight(void *state, const char *module, const tsr_tensor *t,
                                   tsr_tensor_sink *sink)
{
    gptq_state *s = state;
    const tsr_host *h = s->h;
    const tsr_fmt_int_group *f = t->format_data;
    if (t->dtype != TSR_DTYPE_INT_GROUP || !f || f->axis != 1 || f->bits != (uint32_t)s->bits)
        return h->set_error(TSR_ERR_INVALID_ARG, "GPTQ cannot save '%s': it is not a %d-bit "
                            "int-group weight", module, s->bits);
    int64_t K = t->ne[0], N = t->ne[1], G = f->n_groups_per_row;
    uint32_t bits = f->bits;
    int v2 = save_v2(s);
    tsr_status st = note_quantized(s, module);
    if (st)
        return st;
    int64_t R = (K * bits + 31) / 32, Zc = (N * bits + 31) / 32;
    uint32_t *qw = calloc((size_t)(R * N), 4), *qz = calloc((size_t)(G * Zc), 4);
    uint16_t *sc = malloc((size_t)(G * N) * 2);
    int32_t *gi = malloc((size_t)K * 4);
    if (!qw || !qz || !sc || !gi) {
        st = h->set_error(TSR_ERR_NOMEM, "out of memory saving '%s'", module);
        goto done;
    }
    const uint8_t *codes = t->data;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            uint32_t c = tsr_ig_get_bits(codes + n * (int64_t)f->row_bytes, k * bits, bits);
            int64_t bit = k * bits;
            /* column n's stream: word r = bit / 32 of column n */
            for (uint32_t i = 0; i < bits; i++, bit++)
                qw[(bit / 32) * N + n] |= ((c >> i) & 1u) << (bit % 32);
        }
    for (int64_t g = 0; g < G; g++)
        for (int64_t n = 0; n < N; n++) {
            float z = f->zero[n * G + g] - (v2 ? 0.0f : 1.0f);
            if (z != floorf(z) || z < 0 || z > (float)((1u << bits) - 1)) {
                st = h->set_error(TSR_ERR_UNSUPPORTED, "GPTQ cannot save '%s': zero point %g "
                                  "(group %lld, row %lld) is not storable in checkpoint_format "
                                  "\"%s\"", module, (double)f->zero[n * G + g], (long long)g,
                                  (long long)n, v2 ? "gptq_v2" : "gptq");
                goto done;
            }
            tsr_ig_put_bits((uint8_t *)(qz + g * Zc), n * bits, bits, (uint32_t)z);
            sc[g * N + n] = h->f32_to_f16(f->scale[n * G + g]);
        }
    for (int64_t k = 0; k < K; k++)
        gi[k] = f->g_idx ? f->g_idx[k] : (int32_t)(k / f->group_size);
    char name[600];
    int64_t shp[2];
    shp[0] = R; shp[1] = N;
    snprintf(name, sizeof name, "%s.qweight", module);
    if ((st = h->emit_tensor(sink, name, TSR_DTYPE_I32, 2, shp, qw, (size_t)(R * N) * 4)))
        goto done;
    shp[0] = G; shp[1] = Zc;
    snprintf(name, sizeof name, "%s.qzeros", module);
    if ((st = h->emit_tensor(sink, name, TSR_DTYPE_I32, 2, shp, qz, (size_t)(G * Zc) * 4)))
        goto done;
    shp[0] = G; shp[1] = N;
    snprintf(name, sizeof name, "%s.scales", module);
    if ((st = h->emit_tensor(sink, name, TSR_DTYPE_F16, 2, shp, sc, (size_t)(G * N) * 2)))
        goto done;
    shp[0] = K;
    snprintf(name, sizeof name, "%s.g_idx", module);
    st = h->emit_tensor(sink, name, TSR_DTYPE_I32, 1, shp, gi, (size_t)K * 4);
done:
    free(qw);
    free(qz);
    free(sc);
    free(gi);
    return st;
}

static tsr_status gptq_save_config(void *state, char **json)
{
    gptq_state *s = state;
    char skip[2048];
    tsr_ig_skip_json(s->skip, s->n_skip, skip, sizeof skip);
    /* transformers (optimum's GPTQQuantizer) ignores modules_to_not_convert
     * and converts every Linear inside the decoder blocks unless
     * modules_in_block_to_quantize lists them: when some stayed in float, list
     * the ones quantized (one group; the grouping only orders quantization) */
    size_t mib_len = 64;
    for (size_t i = 0; i < s->n_qrel; i++)
        mib_len += strlen(s->qrel[i]) + 4;
    char *mib = malloc(mib_len);
    if (!mib)
        return s->h->set_error(TSR_ERR_NOMEM, "out of memory");
    size_t o = 0;
    mib[0] = '\0';
    if (s->inblock_float) {
        o += (size_t)snprintf(mib + o, mib_len - o, ", \"modules_in_block_to_quantize\": [%s",
                              s->n_qrel ? "[" : "");
        for (size_t i = 0; i < s->n_qrel; i++)
            o += (size_t)snprintf(mib + o, mib_len - o, "%s\"%s\"", i ? ", " : "", s->qrel[i]);
        snprintf(mib + o, mib_len - o, "%s]", s->n_qrel ? "]" : "");
    }
    size_t cap = 3072 + mib_len;
    char *buf = malloc(cap);
    if (!buf) {
        free(mib);
        return s->h->set_error(TSR_ERR_NOMEM, "out of memory");
    }
    int n = snprintf(buf, cap,
                     "{\"quant_method\": \"gptq\", \"bits\": %d, \"group_size\": %d, "
                     "\"desc_act\": %s, \"sym\": %s, \"static_groups\": %s, "
                     "\"true_sequential\": %s, \"damp_percent\": %g, \"lm_head\": %s, "
                     "\"checkpoint_format\": \"%s\", \"modules_to_not_convert\": %s%s, "
                     "\"meta\": {\"quantizer\": [\"tessera:0.1.0\"]}}",
                     s->bits, s->group_size, s->desc_act ? "true" : "false",
                     s->sym ? "true" : "false", s->static_groups ? "true" : "false",
                     s->true_sequential ? "true" : "false", s->damp_percent,
                     s->lm_head ? "true" : "false", save_v2(s) ? "gptq_v2" : "gptq", skip, mib);
    free(mib);
    tsr_status st = TSR_OK;
    if (n < 0 || (size_t)n >= cap)
        st = s->h->set_error(TSR_ERR_INTERNAL, "GPTQ quantization_config is too long");
    else if (!(*json = s->h->alloc((size_t)n + 1)))
        st = s->h->set_error(TSR_ERR_NOMEM, "out of memory");
    else
        memcpy(*json, buf, (size_t)n + 1);
    free(buf);
    return st;
}

/* --- plugin ------------------------------------------------------------------------------ */

static int gptq_probe(const tsr_host *host, char *why, size_t why_len)
{
    (void)host;
    (void)why;
    (void)why_len;
    return 1;
}

static const tsr_quantizer_vtable gptq_vtable = {
    .struct_size = sizeof(tsr_quantizer_vtable),
    .capabilities = TSR_QUANT_REQUIRES_CALIBRATION | TSR_QUANT_SERIALIZABLE | TSR_QUANT_ON_LOAD,
    .create = gptq_create,
    .destroy = gptq_destroy,
    .skip_module = gptq_skip_module,
    .load_weight = gptq_load_weight,
    .quantize_weight = gptq_quantize_weight,
    .release_weight = gptq_release_weight,
    .save_weight = gptq_save_weight,
    .save_config = gptq_save_config,
    .observe_input = gptq_observe_input,
};

static const tsr_plugin_desc gptq_desc = TSR_PLUGIN_DESC_INIT(
    TSR_PLUGIN_QUANTIZER, "gptq", "0.1.0",
    "GPTQ: AutoGPTQ/GPTQModel checkpoints (2/3/4/8-bit, act-order), GPTQ quantization from "
    "calibration data, saving", gptq_probe, &gptq_vtable);

TSR_PLUGIN_DEFINE_ENTRY
{
    g_host = host;
    return &gptq_desc;
}
