/* tests/unit/test_gptq.c - the GPTQ quantizer plugin:
 *   - unpacking AutoGPTQ/GPTQModel qweight/qzeros/scales/g_idx (2, 3, 4, 8
 *     bits; gptq and gptq_v2 zero points; act-order g_idx) equals a plain
 *     reference unpacker written here from the libraries' published packing
 *     (pack_original / dequantize_weight of GPTQModel), on random packed words;
 *   - quantization_config parsing (fixtures/gpt2-tokenizer-hf carries a real
 *     one from AutoGPTQ) and refusals;
 *   - round-to-nearest error <= scale/2 per element (+ the fp16 rounding of
 *     the stored scale at the clamped extremes);
 *   - GPTQ with a Hessian from observe_input gives a layer-output error on
 *     the calibration data <= round-to-nearest's (and act-order too);
 *   - save_weight -> safetensors -> load_weight is bit-exact;
 *   - fixtures/gptq-tiny-llama (4-bit, act-order, checkpoint_format "gptq",
 *     packed by tests/data/gptq/make_fixtures.py as GPTQModel packs) loads
 *     through the core with logits within 1e-4 of transformers run on its
 *     dequantized weights;
 *   - modules_in_block_to_quantize (optimum / transformers, which ignore
 *     modules_to_not_convert for GPTQ): in-block modules not listed stay in
 *     float; malformed values are refused naming the key; stories260K
 *     quantized with modules_to_not_convert ["mlp"] and saved lists exactly
 *     the four attention projections under the key and reloads with the same
 *     logits; the folder with only modules_in_block_to_quantize (its
 *     modules_to_not_convert removed) loads the MLP from the float weights,
 *     equal to the float model's, and gives the same logits. */
#include <math.h>
#include <unistd.h>
#include "tsr_test.h"
#include "model.h"
#define QT_WITH_FIXTURES
#include "../data/gptq/qtest.h"

static const tsr_quantizer_vtable *vt;

/* --- a plain reference unpacker ------------------------------------------------ */

/* Code `idx` of a packed sequence whose word i is base[i * stride]. */
static uint32_t ref_code(const uint32_t *base, int64_t stride, int bits, int64_t idx)
{
    if (bits != 3) {
        int per = 32 / bits;
        uint32_t word = base[(idx / per) * stride];
        return (word >> (bits * (idx % per))) & ((1u << bits) - 1);
    }
    /* 3-bit: 32 codes in 3 words; codes 10 and 21 straddle two words */
    int64_t blk = idx / 32, j = idx % 32;
    uint32_t w0 = base[(3 * blk) * stride], w1 = base[(3 * blk + 1) * stride],
             w2 = base[(3 * blk + 2) * stride];
    if (j < 10) return (w0 >> (3 * j)) & 7;
    if (j == 10) return ((w0 >> 30) & 3) | ((w1 & 1) << 2);
    if (j < 21) return (w1 >> (3 * (j - 11) + 1)) & 7;
    if (j == 21) return ((w1 >> 31) & 1) | ((w2 & 3) << 1);
    return (w2 >> (3 * (j - 22) + 2)) & 7;
}

static char tmp_path[256];

static void test_unpack(int bits, int64_t K, int64_t N, int gs, int v2, int act)
{
    int64_t G = gs > 0 ? (K + gs - 1) / gs : 1, R = K * bits / 32, Zc = N * bits / 32;
    uint32_t *qw = malloc((size_t)(R * N) * 4), *qz = malloc((size_t)(G * Zc) * 4);
    uint16_t *sc = malloc((size_t)(G * N) * 2);
    int32_t *gi = malloc((size_t)K * 4);
    for (int64_t i = 0; i < R * N; i++) qw[i] = qt_u32() ^ (qt_u32() << 16);
    for (int64_t i = 0; i < G * Zc; i++) qz[i] = qt_u32() ^ (qt_u32() << 16);
    for (int64_t i = 0; i < G * N; i++) sc[i] = tsr__f32_to_f16(0.001f + qt_unif() * 0.05f);
    for (int64_t k = 0; k < K; k++) gi[k] = act ? (int32_t)(qt_u32() % G) : (int32_t)(k / (gs > 0 ? gs : K));
    struct tsr_tensor_sink s = {0};
    qt_add(&s, "m.qweight", "I32", 2, R, N, qw, (size_t)(R * N) * 4);
    qt_add(&s, "m.qzeros", "I32", 2, G, Zc, qz, (size_t)(G * Zc) * 4);
    qt_add(&s, "m.scales", "F16", 2, G, N, sc, (size_t)(G * N) * 2);
    qt_add(&s, "m.g_idx", "I32", 1, K, 0, gi, (size_t)K * 4);
    CHECK(qt_write_safetensors(tmp_path, &s) == 0);
    qt_sink_clear(&s);
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"quant_method\":\"gptq\",\"bits\":%d,\"group_size\":%d,"
             "\"desc_act\":%s,\"checkpoint_format\":\"%s\"}", bits, gs, act ? "true" : "false",
             v2 ? "gptq_v2" : "gptq");
    void *st = qt_create(vt, cfg);
    CHECK(st != NULL);
    tsr_checkpoint *ck = NULL;
    CHECK(tsr__checkpoint_open_file(tmp_path, &ck) == TSR_OK);
    if (!st || !ck)
        return;
    int64_t ne[2] = {K, N};
    tsr_tensor w = {0};
    w.struct_size = sizeof w;
    w.ne[0] = K; w.ne[1] = N; w.ne[2] = w.ne[3] = 1;
    w.name = "m.weight";
    CHECK_MSG(vt->load_weight(st, ck, "m", ne, &w) == TSR_OK, "%s", tsr_last_error());
    CHECK(w.dtype == TSR_DTYPE_INT_GROUP);
    float *d = qt_dense(&w);
    CHECK(d != NULL);
    int bad = 0;
    for (int64_t n = 0; d && n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            int g = gi[k];
            float q = (float)ref_code(qw + n, N, bits, k);
            float z = (float)ref_code(qz + g * Zc, 1, bits, n) + (v2 ? 0.0f : 1.0f);
            float want = tsr__f16_to_f32(sc[g * N + n]) * (q - z);
            bad += d[n * K + k] != want;
        }
    CHECK_MSG(bad == 0, "%d-bit K=%lld N=%lld gs=%d v2=%d act=%d: %d elements differ", bits,
              (long long)K, (long long)N, gs, v2, act, bad);
    free(d);
    vt->release_weight(st, &w);
    vt->destroy(st);
    tsr__checkpoint_close(ck);
    free(qw); free(qz); free(sc); free(gi);
}

/* --- configuration --------------------------------------------------------------- */

static void test_configs(void)
{
    tsr_json *root = NULL;
    CHECK(tsr__json_load_file("fixtures/gpt2-tokenizer-hf/config.json", &root) == TSR_OK);
    void *st = NULL;
    CHECK(vt->create(qt_host(), tsr__json_get(root, "quantization_config"), &st) == TSR_OK);
    char *js = NULL;
    CHECK(st && vt->save_config(st, &js) == TSR_OK);
    if (js) {
        CHECK_CONTAINS(js, "\"bits\": 4");
        CHECK_CONTAINS(js, "\"group_size\": 128");
        CHECK_CONTAINS(js, "\"damp_percent\": 0.01");
        CHECK_CONTAINS(js, "\"desc_act\": false");
        CHECK_CONTAINS(js, "\"sym\": true");
        CHECK_CONTAINS(js, "\"checkpoint_format\": \"gptq\"");
        tsr__free(js);
    }
    CHECK(st && vt->skip_module(st, "lm_head") && !vt->skip_module(st, "transformer.h.0.attn.c_attn"));
    if (st) vt->destroy(st);
    tsr__json_free(root);
    CHECK(tsr__json_load_file("fixtures/gpt2-tokenizer-hf/quantize_config.json", &root) == TSR_OK);
    st = NULL;
    CHECK(vt->create(qt_host(), root, &st) == TSR_OK);
    if (st) vt->destroy(st);
    tsr__json_free(root);
    /* refusals name the key */
    const char *bad[][2] = {
        {"{\"quant_method\":\"gptq\",\"bits\":5}", "\"bits\" is 5"},
        {"{\"quant_method\":\"gptq\",\"group_size\":0}", "\"group_size\" is 0"},
        {"{\"quant_method\":\"gptq\",\"checkpoint_format\":\"marlin\"}", "\"marlin\" is not supported"},
        {"{\"quant_method\":\"gptq\",\"is_marlin_format\":true}", "is_marlin_format"},
        {"{\"quant_method\":\"gptq\",\"modules_to_not_convert\":\"lm_head\"}", "modules_to_not_convert"},
        {"{\"quant_method\":\"gptq\",\"modules_in_block_to_quantize\":\"mlp\"}",
         "\"modules_in_block_to_quantize\" must be a list of lists"},
        {"{\"quant_method\":\"gptq\",\"modules_in_block_to_quantize\":[[\"mlp.up_proj\", 3]]}",
         "\"modules_in_block_to_quantize\" item 0, entry 1"},
        {"{\"quant_method\":\"gptq\",\"modules_in_block_to_quantize\":[[\"a\"], {\"b\": 1}]}",
         "\"modules_in_block_to_quantize\" item 1 is neither"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(qt_create(vt, bad[i][0]) == NULL);
        CHECK_CONTAINS(tsr_last_error(), bad[i][1]);
    }
    void *s2 = qt_create(vt, "{\"quant_method\":\"gptq\",\"modules_to_not_convert\":[\"mlp.down_proj\"]}");
    CHECK(s2 && vt->skip_module(s2, "model.layers.3.mlp.down_proj") &&
          vt->skip_module(s2, "lm_head") && !vt->skip_module(s2, "model.layers.3.mlp.up_proj"));
    if (s2) vt->destroy(s2);
    /* the head is quantized only with "lm_head": true (GPTQModel), whatever the list says */
    s2 = qt_create(vt, "{\"quant_method\":\"gptq\",\"lm_head\":true,\"modules_to_not_convert\":[\"mlp\"]}");
    CHECK(s2 && !vt->skip_module(s2, "lm_head") && vt->skip_module(s2, "model.layers.0.mlp.up_proj"));
    if (s2) vt->destroy(s2);
    /* modules_in_block_to_quantize: in-block modules quantized only when
     * their name ends with a listed one (optimum's convert_model) */
    s2 = qt_create(vt, "{\"quant_method\":\"gptq\",\"modules_in_block_to_quantize\":"
                   "[[\"self_attn.q_proj\", \"self_attn.k_proj\"], [\"mlp.down_proj\"]]}");
    CHECK(s2 && !vt->skip_module(s2, "model.layers.0.self_attn.q_proj") &&
          !vt->skip_module(s2, "model.layers.11.self_attn.k_proj") &&
          vt->skip_module(s2, "model.layers.0.self_attn.v_proj") &&
          vt->skip_module(s2, "model.layers.0.mlp.up_proj") &&
          !vt->skip_module(s2, "model.layers.2.mlp.down_proj") && vt->skip_module(s2, "lm_head"));
    if (s2) vt->destroy(s2);
    /* a flat list reads as one group; modules outside the blocks keep the other rules */
    s2 = qt_create(vt, "{\"quant_method\":\"gptq\",\"lm_head\":true,"
                   "\"modules_in_block_to_quantize\":[\"attn.c_attn\"]}");
    CHECK(s2 && !vt->skip_module(s2, "transformer.h.0.attn.c_attn") &&
          vt->skip_module(s2, "transformer.h.0.attn.c_proj") && !vt->skip_module(s2, "lm_head"));
    if (s2) vt->destroy(s2);
    /* both lists: skipped when either says so */
    s2 = qt_create(vt, "{\"quant_method\":\"gptq\",\"modules_to_not_convert\":[\"k_proj\"],"
                   "\"modules_in_block_to_quantize\":[[\"self_attn.q_proj\", \"self_attn.k_proj\"]]}");
    CHECK(s2 && !vt->skip_module(s2, "model.layers.0.self_attn.q_proj") &&
          vt->skip_module(s2, "model.layers.0.self_attn.k_proj"));
    if (s2) vt->destroy(s2);
}

/* --- modules_in_block_to_quantize on a real model ------------------------------------ */

/* "Once upon a time, there was a little girl named Lily." with BOS */
static const int32_t mib_ids[] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};

static tsr_model *load_with(const char *path, tsr_config *cfg)
{
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = path;
    lo.config = cfg;
    tsr_model *m = NULL;
    CHECK_MSG(tsr_model_load(&lo, &m) == TSR_OK, "%s: %s", path, tsr_last_error());
    return m;
}

static float *logits_of(tsr_model *m)
{
    size_t n = sizeof mib_ids / sizeof mib_ids[0];
    float *lg = calloc(n * 512, sizeof *lg);
    CHECK_MSG(m && tsr_model_logits(m, mib_ids, n, lg) == TSR_OK, "%s", tsr_last_error());
    return lg;
}

static double max_diff(const float *a, const float *b)
{
    double d = 0;
    for (size_t i = 0; a && b && i < sizeof mib_ids / sizeof mib_ids[0] * 512; i++)
        d = fmax(d, fabs((double)a[i] - b[i]));
    return a && b ? d : 1e30;
}

/* every mlp weight of m is float and equal to the float model's */
static void check_mlp_float(const tsr_model *m, const tsr_model *fl, const char *what)
{
    int n_mlp = 0, bad = 0, n_q = 0;
    for (size_t i = 0; m && fl && i < m->env.n_params; i++) {
        const tsr__param *p = &m->env.params[i];
        if (p->quantized)
            n_q++;
        if (!strstr(p->name, ".mlp."))
            continue;
        const tsr__param *f = tsr__param_find(&fl->env, p->name);
        n_mlp++;
        bad += p->quantized || p->t.dtype != TSR_DTYPE_F32 || !f ||
               memcmp(p->t.data, f->t.data, (size_t)(p->ne[0] * p->ne[1]) * sizeof(float)) != 0;
    }
    /* stories260K: 5 layers x (gate, up, down) in float, x (q, k, v, o) quantized */
    CHECK_MSG(n_mlp == 15 && bad == 0 && n_q == 20, "%s: %d mlp weights, %d not the float ones, "
              "%d quantized", what, n_mlp, bad, n_q);
}

static void test_mib_folder(void)
{
    tsr_config *cfg = NULL;
    CHECK(tsr_config_create(&cfg) == TSR_OK);
    CHECK(tsr_config_set(cfg, "quantization.method", "gptq") == TSR_OK);
    CHECK(tsr_config_set(cfg, "quantization.bits", "4") == TSR_OK);
    CHECK(tsr_config_set(cfg, "quantization.group_size", "32") == TSR_OK);
    CHECK(tsr_config_set(cfg, "quantization.modules_to_not_convert", "[mlp]") == TSR_OK);
    tsr_model *fl = load_with("fixtures/stories260K-hf", NULL);
    tsr_model *q = load_with("fixtures/stories260K-hf", cfg);
    check_mlp_float(q, fl, "quantized with modules_to_not_convert [mlp]");
    char dir[] = "/tmp/tessera-test-gptq-mib-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    tsr_save_options so = TSR_SAVE_OPTIONS_INIT;
    CHECK_MSG(q && tsr_model_save(q, dir, &so) == TSR_OK, "%s", tsr_last_error());
    char path[300];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    json_t *qc = json_object_get(root, "quantization_config");
    json_t *mib = json_object_get(qc, "modules_in_block_to_quantize");
    /* the four attention projections, each once, in lists of names */
    int n_names = 0, ok = json_is_array(mib) && json_array_size(mib) > 0;
    static const char *const attn[] = {"self_attn.q_proj", "self_attn.k_proj",
                                       "self_attn.v_proj", "self_attn.o_proj"};
    int seen[4] = {0};
    for (size_t i = 0; ok && i < json_array_size(mib); i++) {
        json_t *grp = json_array_get(mib, i);
        ok &= json_is_array(grp);
        for (size_t j = 0; ok && j < json_array_size(grp); j++) {
            const char *nm = json_string_value(json_array_get(grp, j));
            int k = 0;
            while (k < 4 && !(nm && !strcmp(nm, attn[k])))
                k++;
            ok &= k < 4 && !seen[k];
            if (k < 4)
                seen[k] = 1;
            n_names++;
        }
    }
    CHECK_MSG(ok && n_names == 4, "saved modules_in_block_to_quantize: %s",
              mib ? json_dumps(mib, JSON_COMPACT) : "(absent)");
    CHECK(json_is_array(json_object_get(qc, "modules_to_not_convert")));
    /* reloaded: the same logits */
    float *lq = logits_of(q);
    tsr_model *r = load_with(dir, NULL);
    float *lr = logits_of(r);
    double d1 = max_diff(lq, lr);
    CHECK_MSG(d1 <= 1e-5, "saved and reloaded: logits differ by %g", d1);
    check_mlp_float(r, fl, "reloaded");
    /* only modules_in_block_to_quantize (as optimum writes it): the MLP
     * still loads as float, with the same logits */
    json_object_del(qc, "modules_to_not_convert");
    CHECK(json_dump_file(root, path, JSON_INDENT(2)) == 0);
    tsr_model *o = load_with(dir, NULL);
    float *lo = logits_of(o);
    double d2 = max_diff(lr, lo);
    CHECK_MSG(d2 == 0.0, "modules_in_block_to_quantize alone: logits differ by %g from "
              "modules_to_not_convert's", d2);
    check_mlp_float(o, fl, "modules_in_block_to_quantize alone");
    printf("  modules_in_block_to_quantize: reloaded max |dlogit| %.3g, without "
           "modules_to_not_convert %.3g\n", d1, d2);
    json_decref(root);
    free(lq); free(lr); free(lo);
    tsr_model_destroy(o);
    tsr_model_destroy(r);
    tsr_model_destroy(q);
    tsr_model_destroy(fl);
    tsr_config_destroy(cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* --- quantization ----------------------------------------------------------------- */

static tsr_tensor quantize(void *st, const char *module, const float *W, int64_t K, int64_t N)
{
    tsr_tensor q = {0};
    q.struct_size = sizeof q;
    q.ne[0] = K; q.ne[1] = N; q.ne[2] = q.ne[3] = 1;
    q.name = module;
    int64_t ne[2] = {K, N};
    CHECK_MSG(vt->quantize_weight(st, module, W, ne, &q) == TSR_OK, "%s", tsr_last_error());
    return q;
}

static float *rand_weight(int64_t K, int64_t N)
{
    float *W = malloc((size_t)(N * K) * sizeof *W);
    for (int64_t i = 0; i < N * K; i++)
        W[i] = 0.05f * qt_normal();
    return W;
}

static void test_rtn_bound(int bits, int sym, int gs)
{
    int64_t K = 96, N = 24;
    float *W = rand_weight(K, N);
    char cfg[160];
    snprintf(cfg, sizeof cfg, "{\"quant_method\":\"gptq\",\"bits\":%d,\"group_size\":%d,"
             "\"sym\":%s}", bits, gs, sym ? "true" : "false");
    void *st = qt_create(vt, cfg);
    CHECK(st != NULL);
    if (!st) return;
    tsr_tensor q = quantize(st, "m", W, K, N);
    const tsr_fmt_int_group *f = q.format_data;
    float *d = qt_dense(&q);
    int bad = 0;
    for (int64_t n = 0; d && n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            int64_t g = k / (gs > 0 ? gs : K);
            float s = f->scale[n * f->n_groups_per_row + g];
            /* scale/2, plus what rounding the stored scale to fp16 (relative
             * 2^-11) moves the clamped extreme codes */
            bad += fabsf(d[n * K + k] - W[n * K + k]) >
                   0.5f * s * 1.0001f + fabsf(W[n * K + k]) * (1.0f / 2048.0f);
        }
    CHECK_MSG(d && bad == 0, "RTN %d-bit sym=%d gs=%d: %d elements beyond scale/2", bits, sym, gs, bad);
    free(d);
    vt->release_weight(st, &q);
    vt->destroy(st);
    free(W);
}

/* sum over rows of X of |X (Wq - W)^T|^2 */
static double out_err(const float *X, int64_t M, const float *W, const float *Wq, int64_t K, int64_t N)
{
    double e = 0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double y = 0;
            for (int64_t k = 0; k < K; k++)
                y += (double)X[m * K + k] * ((double)Wq[n * K + k] - W[n * K + k]);
            e += y * y;
        }
    return e;
}

static void test_gptq_vs_rtn(int bits, int gs, int act, int sym)
{
    int64_t K = 128, N = 32, M = 512;
    float *W = rand_weight(K, N);
    /* correlated inputs with uneven feature scales, as activations are */
    float *X = malloc((size_t)(M * K) * sizeof *X);
    float *mix = malloc((size_t)(8 * K) * sizeof *mix);
    for (int64_t i = 0; i < 8 * K; i++) mix[i] = qt_normal();
    for (int64_t m = 0; m < M; m++) {
        float z[8];
        for (int i = 0; i < 8; i++) z[i] = qt_normal();
        for (int64_t k = 0; k < K; k++) {
            float v = 0.3f * qt_normal();
            for (int i = 0; i < 8; i++) v += z[i] * mix[i * K + k];
            X[m * K + k] = v * (1.0f + (float)(k % 7));
        }
    }
    char cfg[200];
    snprintf(cfg, sizeof cfg, "{\"quant_method\":\"gptq\",\"bits\":%d,\"group_size\":%d,"
             "\"desc_act\":%s,\"sym\":%s,\"damp_percent\":0.01}", bits, gs,
             act ? "true" : "false", sym ? "true" : "false");
    void *rtn = qt_create(vt, cfg), *gp = qt_create(vt, cfg);
    CHECK(rtn && gp);
    if (!rtn || !gp) return;
    /* two batches, as calibration sends them */
    CHECK(vt->observe_input(gp, "m", X, K, M / 2) == TSR_OK);
    CHECK(vt->observe_input(gp, "m", X + (M / 2) * K, K, M - M / 2) == TSR_OK);
    tsr_tensor qr = quantize(rtn, "m", W, K, N), qg = quantize(gp, "m", W, K, N);
    float *dr = qt_dense(&qr), *dg = qt_dense(&qg);
    double er = out_err(X, M, W, dr, K, N), eg = out_err(X, M, W, dg, K, N);
    CHECK_MSG(eg <= er, "%d-bit gs=%d act=%d sym=%d: GPTQ output error %g > RTN %g", bits, gs,
              act, sym, eg, er);
    printf("  gptq %d-bit gs=%d act=%d sym=%d: layer-output error GPTQ/RTN = %.3f\n", bits, gs,
           act, sym, eg / er);
    const tsr_fmt_int_group *f = qg.format_data;
    CHECK((f->g_idx != NULL) == (act && 1));
    free(dr); free(dg);
    vt->release_weight(rtn, &qr);
    vt->release_weight(gp, &qg);
    vt->destroy(rtn);
    vt->destroy(gp);
    free(W); free(X); free(mix);
}

/* save_weight -> safetensors -> load_weight: identical codes, scales,
 * zeros and g_idx, so the dequantized weights are bit-identical. */
static void test_roundtrip(int bits, int gs, int act, int sym, int64_t K, int64_t N)
{
    float *W = rand_weight(K, N);
    float *X = malloc((size_t)(64 * K) * sizeof *X);
    for (int64_t i = 0; i < 64 * K; i++) X[i] = qt_normal() * (1.0f + (float)(i % 5));
    char cfg[200];
    snprintf(cfg, sizeof cfg, "{\"quant_method\":\"gptq\",\"bits\":%d,\"group_size\":%d,"
             "\"desc_act\":%s,\"sym\":%s}", bits, gs, act ? "true" : "false", sym ? "true" : "false");
    void *st = qt_create(vt, cfg);
    CHECK(st != NULL);
    if (!st) return;
    CHECK(vt->observe_input(st, "layer.m", X, K, 64) == TSR_OK);
    tsr_tensor q = quantize(st, "layer.m", W, K, N);
    struct tsr_tensor_sink s = {0};
    CHECK_MSG(vt->save_weight(st, "layer.m", &q, &s) == TSR_OK, "%s", tsr_last_error());
    CHECK(s.n == 4);
    char *js = NULL;
    CHECK(vt->save_config(st, &js) == TSR_OK);
    CHECK(qt_write_safetensors(tmp_path, &s) == 0);
    qt_sink_clear(&s);
    void *st2 = js ? qt_create(vt, js) : NULL;
    CHECK_MSG(st2 != NULL, "config %s", js ? js : "(none)");
    tsr__free(js);
    tsr_checkpoint *ck = NULL;
    CHECK(tsr__checkpoint_open_file(tmp_path, &ck) == TSR_OK);
    if (st2 && ck) {
        tsr_tensor w = {0};
        w.struct_size = sizeof w;
        w.ne[0] = K; w.ne[1] = N; w.ne[2] = w.ne[3] = 1;
        int64_t ne[2] = {K, N};
        CHECK_MSG(vt->load_weight(st2, ck, "layer.m", ne, &w) == TSR_OK, "%s", tsr_last_error());
        float *a = qt_dense(&q), *b = qt_dense(&w);
        CHECK(a && b && memcmp(a, b, (size_t)(N * K) * sizeof(float)) == 0);
        const tsr_fmt_int_group *fa = q.format_data, *fb = w.format_data;
        CHECK(fb && fa->n_groups_per_row == fb->n_groups_per_row && fa->bits == fb->bits);
        CHECK(fb && memcmp(q.data, w.data, fa->row_bytes * (size_t)N) == 0);
        CHECK(fb && (fa->g_idx == NULL) == (fb->g_idx == NULL));
        free(a); free(b);
        vt->release_weight(st2, &w);
    }
    if (ck) tsr__checkpoint_close(ck);
    if (st2) vt->destroy(st2);
    vt->release_weight(st, &q);
    vt->destroy(st);
    free(W); free(X);
}

int main(void)
{
    snprintf(tmp_path, sizeof tmp_path, "/tmp/tessera-test-gptq-%d.safetensors", (int)getpid());
    vt = qt_quantizer("gptq");
    CHECK(vt != NULL);
    if (!vt)
        return tsr_test_report("test_gptq");
    test_unpack(4, 128, 48, 32, 0, 0);
    test_unpack(4, 128, 48, 32, 1, 0);
    test_unpack(4, 128, 48, 32, 0, 1);
    test_unpack(4, 128, 64, -1, 0, 0);
    test_unpack(3, 96, 64, 32, 0, 0);
    test_unpack(3, 192, 32, 64, 0, 1);
    test_unpack(3, 96, 64, 32, 1, 0);
    test_unpack(2, 64, 32, 16, 0, 0);
    test_unpack(8, 64, 32, 16, 0, 1);
    test_configs();
    for (int bits = 2; bits <= 8; bits++)
        if (bits != 5 && bits != 6 && bits != 7) {
            test_rtn_bound(bits, 1, 32);
            test_rtn_bound(bits, 0, 32);
            test_rtn_bound(bits, 1, -1);
        }
    test_gptq_vs_rtn(4, 32, 0, 1);
    test_gptq_vs_rtn(4, 32, 1, 1);
    test_gptq_vs_rtn(3, 64, 0, 0);
    test_gptq_vs_rtn(3, -1, 1, 0);
    test_gptq_vs_rtn(2, 32, 1, 1);
    test_gptq_vs_rtn(8, 128, 0, 1);
    test_roundtrip(4, 32, 0, 1, 128, 48);
    test_roundtrip(4, 32, 1, 0, 128, 48);   /* asym: zero points of 0 -> gptq_v2 */
    test_roundtrip(3, 64, 1, 1, 192, 40);
    test_roundtrip(2, -1, 0, 0, 64, 32);
    test_roundtrip(8, 16, 1, 1, 64, 16);
    test_roundtrip(4, 128, 0, 1, 172, 20);  /* K not a multiple of 32 or of the group */
    test_mib_folder();
    double fx = qt_fixture_logits("fixtures/gptq-tiny-llama");
    CHECK_MSG(fx >= 0 && fx <= 1e-4, "fixtures/gptq-tiny-llama: logits differ from the reference by %g", fx);
    unlink(tmp_path);
    return tsr_test_report("test_gptq");
}
