/* core/calibrate_awq.c - AWQ's activation-aware weight scaling and clipping
 * (Lin et al. 2023, arXiv:2306.00978) as AutoAWQ's AwqQuantizer runs it
 * before quantizing a float model:
 *
 * For each decoder layer, groups of Linear modules that read one input,
 * each with the op before it (llama-style names, AutoAWQ's
 * get_layers_for_scaling for llama/mistral/qwen2):
 *   input_layernorm          -> self_attn.{q,k,v}_proj
 *   self_attn.v_proj         -> self_attn.o_proj   (when v and o have one shape)
 *   post_attention_layernorm -> mlp.{gate,up}_proj
 *   mlp.up_proj              -> mlp.down_proj
 * Scale search (_search_best_scale/_compute_best_scale): x_mean = mean |x|
 * per input channel, w_mean = mean over output rows of |w| / max|w| of its
 * quantization group (duo_scaling, AutoAWQ's default); for ratio r/20,
 * r = 0..19: s = x_mean^ratio / (w_mean^(1-ratio) + 1e-4) (duo) or
 * x_mean^ratio, clamped to >= 1e-4, divided by sqrt(max s * min s); the loss
 * is the squared output error sum_t ||W x_t - Q(W diag s) (x_t / s)||^2 of
 * the group's Linear modules, computed exactly from X^T X:
 * sum_n e_n^T (X^T X) e_n with e_n = Q(W s)_n / s - W_n.  The best s is
 * folded in (apply_scale): the norm weight (or the previous Linear's output
 * rows and bias) divided by s, the Linear weights' input columns times s.
 * Clip search (_search_best_clip/_compute_best_clip; not for q and k): per
 * output row and quantization group, max_val = max|w| * (1 - i/20),
 * i = 0..9 (max_shrink 0.5), the one whose clamped-then-quantized group
 * gives the smallest output error d^T (X'^T X')_g d on the scaled inputs
 * X' = X / s; the weights are clamped to [-max_val, max_val] (apply_clip;
 * off with "apply_clip": false in the quantization config, as AutoAWQ's
 * quantize(apply_clip=False); "duo_scaling": false likewise).
 *
 * Q is the configured quantizer itself (its quantize_weight, read back with
 * the reference dequantizer) on the first grid point of each search; when
 * AutoAWQ's pseudo_quantize_tensor computed here (pq_group) gave the same
 * values bit for bit, the later grid points use pq_group, inside the worker
 * threads.
 *
 * Cost and how it is kept down: sum_n e_n^T H e_n is N K^2 / 2
 * multiply-adds per grid point with the symmetric H's upper triangle
 * (SmolLM2-135M: ~27 G per layer for the 20 scale grid points), run as a
 * kernel over blocks of QB error rows (AVX2 when the CPU has it, same
 * operations and results as its C version) on the configuration's
 * "threads" (pthreads); every work item writes its own slot and the slots
 * are summed in a fixed order, so the results do not depend on the thread
 * count.  X^T X is accumulated in tiles of rows of X^T X, 8 tokens per
 * sweep, each sum still in token order (the same values as a plain loop).
 *
 * Differences from AutoAWQ: the loss of the
 * q/k/v and gate/up groups is the Linear outputs' error, not that of the
 * whole attention / MLP block (module2inspect); the clip search uses every
 * calibration token (AutoAWQ samples 512); arithmetic in f32/f64, not fp16.
 * Activations are the float model's (as AutoAWQ: each layer's inputs are
 * the previous float layer's outputs). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "calibrate.h"

#define AWQ_GRID 20

/* --- parallel loops and the quadratic-form kernel ------------------------------------ */

/* The search's work is split into items whose results each go to their own
 * slot, summed afterwards in item order: the figures do not depend on the
 * number of threads. */
typedef void (*awq_task)(void *ctx, int t, int nt);

typedef struct awq_worker {
    awq_task fn;
    void *ctx;
    int t, nt;
} awq_worker;

static void *awq_worker_main(void *arg)
{
    awq_worker *w = arg;
    w->fn(w->ctx, w->t, w->nt);
    return NULL;
}

/* fn(ctx, t, nt) for t = 0..nt-1, on nt threads (the caller being one); a
 * thread that cannot be started has its share run by the caller. */
static void awq_parallel(int nt, awq_task fn, void *ctx)
{
    enum { MAXT = 64 };
    pthread_t th[MAXT];
    awq_worker w[MAXT];
    bool started[MAXT] = {0};
    nt = nt < 1 ? 1 : nt > MAXT ? MAXT : nt;
    for (int t = 1; t < nt; t++) {
        w[t] = (awq_worker){fn, ctx, t, nt};
        started[t] = pthread_create(&th[t], NULL, awq_worker_main, &w[t]) == 0;
    }
    fn(ctx, 0, nt);
    for (int t = 1; t < nt; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            fn(ctx, t, nt);
    }
}

/* The configuration's "threads" (0: one per online core). */
static int awq_threads(const tsr_model *m)
{
    int64_t n = m->cfg ? tsr__config_int(m->cfg, "threads") : 0;
    if (n <= 0)
        n = (int64_t)sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define AWQ_X86 1
#define AWQ_INLINE static inline __attribute__((always_inline))
#include <immintrin.h>
#else
#define AWQ_INLINE static inline
#endif

enum { QB = 8, /* error rows per kernel call */ QI = 4 /* rows of H per step */ };

/* q[b] = e_b^T H e_b for the QB vectors e_b = Et[.][b] of Et [K][QB]; H has
 * rows of ldh doubles and only its upper triangle (j >= i) is read:
 * e^T H e = sum_i e_i (H_ii e_i + 2 sum_{j>i} H_ij e_j).  The inner loops
 * run over b (the QB error rows) with QI rows of H at a time, so they
 * vectorise without reassociating any sum. */
static void quad_block_c(const double *H, int64_t ldh, int64_t K, const double *Et, double *q)
{
    double qa[QB] = {0};
    int64_t i = 0;
    for (; i + QI <= K; i += QI) {
        double acc[QI][QB] = {{0}};
        const double *h0 = H + i * ldh, *h1 = h0 + ldh, *h2 = h1 + ldh, *h3 = h2 + ldh;
        for (int64_t j = i + QI; j < K; j++) {
            const double *e = Et + j * QB;
            double a0 = h0[j], a1 = h1[j], a2 = h2[j], a3 = h3[j];
            for (int b = 0; b < QB; b++) {
                acc[0][b] += a0 * e[b];
                acc[1][b] += a1 * e[b];
                acc[2][b] += a2 * e[b];
                acc[3][b] += a3 * e[b];
            }
        }
        for (int r = 0; r < QI; r++) {
            const double *hr = H + (i + r) * ldh;
            for (int64_t j = i + r + 1; j < i + QI; j++)
                for (int b = 0; b < QB; b++)
                    acc[r][b] += hr[j] * Et[j * QB + b];
            const double *e = Et + (i + r) * QB;
            double d = hr[i + r];
            for (int b = 0; b < QB; b++)
                qa[b] += e[b] * (d * e[b] + 2 * acc[r][b]);
        }
    }
    for (; i < K; i++) {
        const double *hr = H + i * ldh, *e = Et + i * QB;
        double acc[QB] = {0};
        for (int64_t j = i + 1; j < K; j++)
            for (int b = 0; b < QB; b++)
                acc[b] += hr[j] * Et[j * QB + b];
        for (int b = 0; b < QB; b++)
            qa[b] += e[b] * (hr[i] * e[b] + 2 * acc[b]);
    }
    memcpy(q, qa, sizeof qa);
}

typedef void (*quad_fn)(const double *H, int64_t ldh, int64_t K, const double *Et, double *q);

#ifdef AWQ_X86
/* The same operations in the same order as quad_block_c, 4 doubles of b
 * at a time (no FMA: ISO C mode does not contract a * b + c either), so the
 * same results. */
__attribute__((target("avx2"))) static void quad_block_avx2(const double *H, int64_t ldh,
                                                             int64_t K, const double *Et,
                                                             double *q)
{
    enum { NV = QB / 4 };
    __m256d qa[NV], two = _mm256_set1_pd(2);
    for (int v = 0; v < NV; v++)
        qa[v] = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i < K; i += QI) {
        int nr = K - i < QI ? (int)(K - i) : QI;
        __m256d acc[QI][NV];
        for (int r = 0; r < QI; r++)
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm256_setzero_pd();
        const double *h = H + i * ldh;
        if (nr == QI)
            for (int64_t j = i + QI; j < K; j++) {
                __m256d e[NV];
                for (int v = 0; v < NV; v++)
                    e[v] = _mm256_loadu_pd(Et + j * QB + 4 * v);
                for (int r = 0; r < QI; r++) {
                    __m256d a = _mm256_broadcast_sd(h + r * ldh + j);
                    for (int v = 0; v < NV; v++)
                        acc[r][v] = _mm256_add_pd(acc[r][v], _mm256_mul_pd(a, e[v]));
                }
            }
        else /* the last K % QI rows, one at a time as in quad_block_c */
            for (int r = 0; r < nr; r++)
                for (int64_t j = i + QI; j < K; j++) {
                    __m256d a = _mm256_broadcast_sd(h + r * ldh + j);
                    for (int v = 0; v < NV; v++)
                        acc[r][v] = _mm256_add_pd(
                            acc[r][v], _mm256_mul_pd(a, _mm256_loadu_pd(Et + j * QB + 4 * v)));
                }
        for (int r = 0; r < nr; r++) {
            const double *hr = h + r * ldh;
            for (int64_t j = i + r + 1; j < i + nr; j++) {
                __m256d a = _mm256_broadcast_sd(hr + j);
                for (int v = 0; v < NV; v++)
                    acc[r][v] = _mm256_add_pd(
                        acc[r][v], _mm256_mul_pd(a, _mm256_loadu_pd(Et + j * QB + 4 * v)));
            }
            __m256d d = _mm256_broadcast_sd(hr + i + r);
            for (int v = 0; v < NV; v++) {
                __m256d e = _mm256_loadu_pd(Et + (i + r) * QB + 4 * v);
                qa[v] = _mm256_add_pd(
                    qa[v], _mm256_mul_pd(e, _mm256_add_pd(_mm256_mul_pd(d, e),
                                                          _mm256_mul_pd(two, acc[r][v]))));
            }
        }
    }
    for (int v = 0; v < NV; v++)
        _mm256_storeu_pd(q + 4 * v, qa[v]);
}
#endif

static quad_fn quad_kernel(void)
{
#ifdef AWQ_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        return quad_block_avx2;
#endif
    return quad_block_c;
}

typedef struct awq_stat {
    size_t param;       /* the Linear whose input this is                   */
    int64_t K;
    double rows;
    double *absx;       /* [K]  sum |x|                                      */
    double *xtx;        /* [K][K] sum x x^T (upper triangle while collecting) */
    float *s;           /* [K] the scales chosen for it (NULL: none)          */
} awq_stat;

typedef struct awq_ctx {
    tsr_model *m;
    tsr_status st;
    awq_stat *stats;
    size_t n_stats;
    int *stat_of;       /* [n_params] stat index or -1                        */
    float *buf;
    size_t cap;
    int threads;
} awq_ctx;

/* Adds M rows x of K features to sum |x| and to the upper triangle of
 * sum x x^T.  Thread t owns the chunks c of AC rows of X^T X with
 * c % nt == t; within a chunk, the rows of x are added in their order (8 per
 * sweep over the chunk, each element's sum still in row order), so every
 * sum is the one a plain row-by-row loop gives. */
typedef struct awq_acc_job {
    awq_stat *a;
    const float *x;
    int64_t M, K;
} awq_acc_job;

enum { AC = 16, AR = 8 };

AWQ_INLINE void awq_acc_body(const awq_acc_job *jb, int t, int nt)
{
    int64_t K = jb->K, M = jb->M;
    double *xtx = jb->a->xtx, *absx = jb->a->absx;
    for (int64_t c0 = (int64_t)t * AC; c0 < K; c0 += (int64_t)nt * AC) {
        int64_t c1 = c0 + AC < K ? c0 + AC : K;
        for (int64_t i = c0; i < c1; i++) {
            double s = absx[i];
            for (int64_t r = 0; r < M; r++)
                s += fabs((double)jb->x[r * K + i]);
            absx[i] = s;
        }
        int64_t r = 0;
        for (; r + AR <= M; r += AR) {
            const float *x0 = jb->x + r * K;
            for (int64_t i = c0; i < c1; i++) {
                double a[AR];
                for (int k = 0; k < AR; k++)
                    a[k] = x0[k * K + i];
                double *hr = xtx + i * K;
                for (int64_t j = i; j < K; j++) {
                    double v = hr[j];
                    for (int k = 0; k < AR; k++)
                        v += a[k] * (double)x0[k * K + j];
                    hr[j] = v;
                }
            }
        }
        for (; r < M; r++) {
            const float *xr = jb->x + r * K;
            for (int64_t i = c0; i < c1; i++) {
                double xi = xr[i], *hr = xtx + i * K;
                for (int64_t j = i; j < K; j++)
                    hr[j] += xi * (double)xr[j];
            }
        }
    }
}

static void awq_acc_c(const awq_acc_job *jb, int t, int nt)
{
    awq_acc_body(jb, t, nt);
}

#ifdef AWQ_X86
__attribute__((target("avx2"))) static void awq_acc_avx2(const awq_acc_job *jb, int t, int nt)
{
    awq_acc_body(jb, t, nt);
}
#endif

static void awq_acc_task(void *ctx, int t, int nt)
{
#ifdef AWQ_X86
    if (__builtin_cpu_supports("avx2")) {
        awq_acc_avx2(ctx, t, nt);
        return;
    }
#endif
    awq_acc_c(ctx, t, nt);
}

static void awq_observe(void *user, const tsr_tensor *node)
{
    awq_ctx *c = user;
    if (c->st || node->op != TSR_OP_MUL_MAT)
        return;
    const tsr_tensor *w = node->src[0], *x = node->src[1];
    if (!w || !x || !w->name || x->dtype != TSR_DTYPE_F32)
        return;
    tsr__param *p = tsr__param_find(&c->m->env, w->name);
    if (!p)
        return;
    int si = c->stat_of[p - c->m->env.params];
    if (si < 0)
        return;
    awq_stat *a = &c->stats[si];
    int64_t K = x->ne[0], M = x->ne[1] * x->ne[2] * x->ne[3];
    if (K != a->K) {
        c->st = tsr__error(TSR_ERR_INTERNAL, "AWQ calibration: '%s' reads %lld features, its "
                           "weight has %lld", w->name, (long long)K, (long long)a->K);
        return;
    }
    const float *d = tsr__calib_gather(x, &c->buf, &c->cap);
    if (!d) {
        c->st = tsr__error(TSR_ERR_NOMEM, "out of memory in AWQ calibration");
        return;
    }
    awq_acc_job job = {a, d, M, K};
    awq_parallel(K >= 128 ? c->threads : 1, awq_acc_task, &job);
    a->rows += (double)M;
}

/* --- parameters ---------------------------------------------------------------------- */

/* The Linear weight "<layer>.<sub>.weight" if the quantizer will quantize
 * it from f32, else NULL. */
static tsr__param *linear(tsr_model *m, const char *layer, const char *sub)
{
    char name[600];
    snprintf(name, sizeof name, "%s.%s.weight", layer, sub);
    tsr__param *p = tsr__param_find(&m->env, name);
    if (!p || !(p->flags & TSR_PARAM_LINEAR) || p->quantized || p->t.dtype != TSR_DTYPE_F32 ||
        !p->t.data)
        return NULL;
    char module[600];
    snprintf(module, sizeof module, "%s.%s", layer, sub);
    if (m->qvt->skip_module && m->qvt->skip_module(m->qstate, module))
        return NULL;
    return p;
}

static int64_t count_of(const tsr__param *p)
{
    int64_t c = 1;
    for (int d = 0; d < p->n_dims; d++)
        c *= p->ne[d];
    return c;
}

/* Give p an owned, contiguous f32 copy that may be written. */
static tsr_status make_writable(tsr__param *p)
{
    if (p->t.dtype == TSR_DTYPE_F32 && p->owned && p->t.data == p->owned)
        return TSR_OK;
    int64_t n = count_of(p);
    float *f = tsr__alloc((size_t)n * sizeof *f);
    if (!f)
        return tsr__error(TSR_ERR_NOMEM, "out of memory copying '%s'", p->name);
    tsr_status st = tsr__to_f32(p->t.dtype, p->t.data, f, n, NULL);
    if (st) {
        tsr__free(f);
        return tsr__error_prefix(st, "AWQ: weight '%s'", p->name);
    }
    tsr__free(p->owned);
    p->owned = f;
    p->t.data = f;
    p->t.dtype = TSR_DTYPE_F32;
    p->t.nb[0] = sizeof(float);
    for (int d = 1; d < TSR_MAX_DIMS; d++)
        p->t.nb[d] = p->t.nb[d - 1] * (size_t)p->t.ne[d - 1];
    return TSR_OK;
}

/* A non-Linear weight changed by folding: make the checkpoint's entry show
 * the new values, so that tsr_model_save (which copies unquantized weights
 * from the checkpoint) writes them. */
static void expose(tsr_model *m, tsr__param *p)
{
    tsr__ckpt_tensor *ct = m->ckpt ? tsr__checkpoint_find(m->ckpt, p->name) : NULL;
    if (!ct)
        return;
    ct->data = p->t.data;
    ct->dtype = TSR_DTYPE_F32;
    ct->nbytes = (size_t)count_of(p) * sizeof(float);
}

/* Divide the weight (and bias) of a norm (rows == 1, 1-D) or a Linear's
 * output rows by s. */
static tsr_status fold_prev(tsr_model *m, const char *prev, const float *s, int64_t K,
                            bool prev_linear)
{
    char name[640];
    snprintf(name, sizeof name, "%s.weight", prev);
    tsr__param *p = tsr__param_find(&m->env, name);
    tsr_status st;
    if (!p || (st = make_writable(p)))
        return p ? st : tsr__error(TSR_ERR_INTERNAL, "AWQ: no weight '%s'", name);
    float *w = p->t.data;
    int64_t cols = prev_linear ? p->ne[0] : 1, rows = prev_linear ? p->ne[1] : count_of(p);
    if (rows != K)
        return tsr__error(TSR_ERR_INTERNAL, "AWQ: '%s' has %lld outputs, the scales %lld", name,
                          (long long)rows, (long long)K);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            w[r * cols + c] /= s[r];
    if (!prev_linear)
        expose(m, p);
    snprintf(name, sizeof name, "%s.bias", prev);
    tsr__param *b = tsr__param_find(&m->env, name);
    if (b && b->t.data && count_of(b) == K) {
        if ((st = make_writable(b)))
            return st;
        float *bv = b->t.data;
        for (int64_t r = 0; r < K; r++)
            bv[r] /= s[r];
        expose(m, b);
    }
    return TSR_OK;
}

/* out [N][K] = dequantize(quantize(W)) with the configured quantizer. */
static tsr_status qdq(tsr_model *m, const tsr__param *p, const float *W, float *out)
{
    char module[600];
    snprintf(module, sizeof module, "%.*s", (int)(strlen(p->name) - 7), p->name);
    tsr_tensor q = p->t;
    q.data = NULL;
    q.format_data = NULL;
    tsr_status st = m->qvt->quantize_weight(m->qstate, module, W, p->ne, &q);
    if (st)
        return tsr__error_prefix(st, "AWQ search: quantizing '%s'", module);
    for (int64_t n = 0; n < p->ne[1] && !st; n++)
        st = tsr__dequantize_row(&q, n, out + n * p->ne[0]);
    if (m->qvt->release_weight)
        m->qvt->release_weight(m->qstate, &q);
    return st;
}

/* AutoAWQ's pseudo_quantize_tensor (zero point, maxq = 2^bits - 1) on one
 * group r[0..n), read back: the operations of the awq quantizer's
 * quantize_weight followed by the reference dequantizer, without packing
 * the codes.  Used only where direct_matches found it to give exactly what
 * they give (qdq), so that the search runs it in its worker threads. */
static void pq_group(const float *r, int64_t n, float maxq, float *out)
{
    float mx = r[0], mn = r[0];
    for (int64_t k = 0; k < n; k++) {
        mx = r[k] > mx ? r[k] : mx;
        mn = r[k] < mn ? r[k] : mn;
    }
    float range = mx - mn < 1e-5f ? 1e-5f : mx - mn;
    float sc = tsr__f16_to_f32(tsr__f32_to_f16(range / maxq));
    float zr = -rintf(mn / sc);
    zr = zr < 0 ? 0 : (zr > maxq ? maxq : zr);
    for (int64_t k = 0; k < n; k++) {
        float q = rintf(r[k] / sc) + zr;
        q = q < 0 ? 0 : (q > maxq ? maxq : q);
        out[k] = (q - zr) * sc;
    }
}

/* Whether pq_group on the groups of each row of W [N][K] gives Q (what
 * qdq gave for W) bit for bit; tmp: K floats. */
static bool direct_matches(const float *W, const float *Q, int64_t N, int64_t K, int64_t gs,
                           float maxq, float *tmp)
{
    if (!(maxq >= 1))
        return false;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k0 = 0; k0 < K; k0 += gs)
            pq_group(W + n * K + k0, (k0 + gs < K ? k0 + gs : K) - k0, maxq, tmp + k0);
        if (memcmp(tmp, Q + n * K, (size_t)K * sizeof *tmp))
            return false;
    }
    return true;
}

/* --- the search ---------------------------------------------------------------------- */

typedef struct awq_group {
    const char *prev;       /* suffix of the op before ("input_layernorm")    */
    bool prev_linear;
    const char *subs[3];    /* the Linear modules reading one input           */
    int n;
} awq_group;

static const awq_group GROUPS[4] = {
    {"input_layernorm", false, {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, 3},
    {"self_attn.v_proj", true, {"self_attn.o_proj", NULL, NULL}, 1},
    {"post_attention_layernorm", false, {"mlp.gate_proj", "mlp.up_proj", NULL}, 2},
    {"mlp.up_proj", true, {"mlp.down_proj", NULL, NULL}, 1},
};

/* The scale search's loss for one grid point: item (l, blk) = rows
 * QB*blk.. of Linear l; loss[item] = sum over its rows of e^T H e,
 * e = Q_n / s - W_n. */
typedef struct scale_job {
    tsr__param **lin;
    int nl;
    const int64_t *first;   /* [nl + 1] first item of each Linear            */
    float **Q;              /* [nl] quantized-dequantized W diag(s)          */
    const float *s;
    const double *H;        /* X^T X, upper triangle                         */
    int64_t K;
    double *loss;           /* [items]                                       */
    double *et;             /* [nt][K * QB]                                  */
    quad_fn quad;
    bool direct;            /* pq_group here instead of Q                     */
    float maxq;
    int64_t gs;
    float *scr;             /* [nt][2 K]                                      */
} scale_job;

static void scale_task(void *ctx, int t, int nt)
{
    const scale_job *jb = ctx;
    int64_t K = jb->K;
    double *Et = jb->et + (size_t)t * (size_t)(K * QB), q[QB];
    float *ws = jb->scr + (size_t)t * (size_t)(2 * K), *qr = ws + K;
    for (int64_t it = t; it < jb->first[jb->nl]; it += nt) {
        int l = 0;
        while (it >= jb->first[l + 1])
            l++;
        const float *W = jb->lin[l]->t.data, *s = jb->s;
        int64_t N = jb->lin[l]->ne[1], n0 = (it - jb->first[l]) * QB;
        for (int b = 0; b < QB; b++) {
            int64_t n = n0 + b;
            if (n >= N) {
                for (int64_t k = 0; k < K; k++)
                    Et[k * QB + b] = 0;
                continue;
            }
            const float *Qn = jb->Q[l] + n * K, *Wn = W + n * K;
            if (jb->direct) {
                for (int64_t k = 0; k < K; k++)
                    ws[k] = Wn[k] * s[k];
                for (int64_t k0 = 0; k0 < K; k0 += jb->gs)
                    pq_group(ws + k0, (k0 + jb->gs < K ? k0 + jb->gs : K) - k0, jb->maxq,
                             qr + k0);
                Qn = qr;
            }
            for (int64_t k = 0; k < K; k++)
                Et[k * QB + b] = (double)Qn[k] / s[k] - Wn[k];
        }
        jb->quad(jb->H, K, K, Et, q);
        double v = 0;
        for (int b = 0; b < QB; b++)
            v += q[b];
        jb->loss[it] = v;
    }
}

/* Choose the scales of one group (weights unchanged); *ratio gets r/20. */
static tsr_status search_scale(tsr_model *m, tsr__param **lin, int nl, const awq_stat *a,
                               int64_t gs, float maxq, bool duo, int nt, float *best_s,
                               double *ratio)
{
    int64_t K = a->K, maxN = 0, sumN = 0, first[4] = {0};
    for (int i = 0; i < nl; i++) {
        maxN = lin[i]->ne[1] > maxN ? lin[i]->ne[1] : maxN;
        sumN += lin[i]->ne[1];
        first[i + 1] = first[i] + (lin[i]->ne[1] + QB - 1) / QB;
    }
    double *xm = calloc((size_t)K, sizeof *xm), *wm = calloc((size_t)K, sizeof *wm);
    double *loss = malloc((size_t)first[nl] * sizeof *loss);
    double *et = malloc((size_t)nt * (size_t)(K * QB) * sizeof *et);
    float *s = malloc((size_t)K * sizeof *s), *Ws = malloc((size_t)(maxN * K) * sizeof *Ws);
    float *scr = malloc((size_t)nt * (size_t)(2 * K) * sizeof *scr);
    float *Q[3] = {0};
    tsr_status st = TSR_OK;
    bool ok = xm && wm && loss && et && s && Ws && scr;
    for (int i = 0; i < nl; i++)
        ok &= (Q[i] = malloc((size_t)(lin[i]->ne[1] * K) * sizeof *Q[i])) != NULL;
    if (!ok) {
        st = tsr__error(TSR_ERR_NOMEM, "out of memory in the AWQ scale search");
        goto done;
    }
    for (int64_t k = 0; k < K; k++)
        xm[k] = a->rows > 0 ? a->absx[k] / a->rows : 0;
    /* w_mean: |w| / (max |w| of its group + 1e-6), averaged over all rows */
    for (int i = 0; i < nl; i++) {
        const float *W = lin[i]->t.data;
        for (int64_t n = 0; n < lin[i]->ne[1]; n++)
            for (int64_t k0 = 0; k0 < K; k0 += gs) {
                int64_t k1 = k0 + gs < K ? k0 + gs : K;
                double mx = 0;
                for (int64_t k = k0; k < k1; k++)
                    mx = fabs(W[n * K + k]) > mx ? fabs(W[n * K + k]) : mx;
                for (int64_t k = k0; k < k1; k++)
                    wm[k] += fabs(W[n * K + k]) / (mx + 1e-6);
            }
    }
    for (int64_t k = 0; k < K; k++)
        wm[k] /= (double)sumN;
    scale_job job = {lin, nl, first, Q, s, a->xtx, K, loss, et, quad_kernel(), false, maxq, gs, scr};
    double best = INFINITY;
    bool direct_ok = false;
    *ratio = -1;
    for (int r = 0; r < AWQ_GRID; r++) {
        double ra = (double)r / AWQ_GRID, smax = 0, smin = INFINITY;
        for (int64_t k = 0; k < K; k++) {
            double v = duo ? pow(xm[k], ra) / (pow(wm[k], 1 - ra) + 1e-4) : pow(xm[k], ra);
            v = v < 1e-4 ? 1e-4 : v;
            s[k] = (float)v;
            smax = v > smax ? v : smax;
            smin = v < smin ? v : smin;
        }
        double norm = sqrt(smax * smin);
        for (int64_t k = 0; k < K; k++) {
            s[k] = (float)(s[k] / norm);
            if (!isfinite(s[k]))
                s[k] = 1;
        }
        /* the configured quantizer on the first grid point; then, if
         * pq_group gave the same, pq_group in the workers */
        job.direct = r > 0 && direct_ok;
        for (int i = 0; i < nl && !st && !job.direct; i++) {
            const float *W = lin[i]->t.data;
            int64_t N = lin[i]->ne[1];
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < K; k++)
                    Ws[n * K + k] = W[n * K + k] * s[k];
            st = qdq(m, lin[i], Ws, Q[i]);
            if (!st && r == 0)
                direct_ok = (i == 0 || direct_ok) && direct_matches(Ws, Q[i], N, K, gs, maxq, scr);
        }
        if (st)
            goto done;
        if (r == 0 && !direct_ok)
            tsr__log(TSR_LOG_DEBUG, "AWQ search for '%s': the quantizer's output is not "
                     "AutoAWQ's pseudo_quantize_tensor; quantize_weight at every grid point",
                     lin[0]->name);
        awq_parallel(nt, scale_task, &job);
        double total = 0;
        for (int64_t it = 0; it < first[nl]; it++)
            total += loss[it];
        if (total < best) {
            best = total;
            *ratio = ra;
            memcpy(best_s, s, (size_t)K * sizeof *s);
        }
    }
    if (*ratio < 0)
        st = tsr__error(TSR_ERR_INTERNAL, "AWQ scale search for '%s': no finite loss",
                        lin[0]->name);
done:
    free(xm);
    free(wm);
    free(loss);
    free(et);
    free(s);
    free(Ws);
    free(scr);
    for (int i = 0; i < 3; i++)
        free(Q[i]);
    return st;
}

/* The clip search's errors for one grid point: item (g, blk) = group g of
 * rows QB*blk..; err[n][g] = d^T Hg_g d, d = Q - W over the group. */
typedef struct clip_job {
    const float *W, *Q;
    int64_t N, K, G, gs, blocks;
    const double *Hg;       /* [K][gs] diagonal blocks of (X/s)^T (X/s)       */
    double *cur;            /* [N][G] this grid point's errors                */
    double *et;             /* [nt][gs * QB]                                  */
    quad_fn quad;
    bool direct;            /* clamp + pq_group here instead of Q             */
    float maxq, f;          /* f: this grid point's max_val / max|w|          */
    const float *omax;      /* [N][G] max|w|                                  */
    float *scr;             /* [nt][2 gs]                                     */
} clip_job;

static void clip_task(void *ctx, int t, int nt)
{
    const clip_job *jb = ctx;
    int64_t K = jb->K, gs = jb->gs;
    double *Et = jb->et + (size_t)t * (size_t)(gs * QB), q[QB];
    float *wc = jb->scr + (size_t)t * (size_t)(2 * gs), *qr = wc + gs;
    for (int64_t it = t; it < jb->G * jb->blocks; it += nt) {
        int64_t g = it / jb->blocks, n0 = it % jb->blocks * QB;
        int64_t k0 = g * gs, k1 = k0 + gs < K ? k0 + gs : K;
        for (int b = 0; b < QB; b++) {
            int64_t n = n0 + b;
            if (n >= jb->N) {
                for (int64_t k = k0; k < k1; k++)
                    Et[(k - k0) * QB + b] = 0;
                continue;
            }
            const float *Wn = jb->W + n * K, *Qn = jb->Q + n * K + k0;
            if (jb->direct) {
                float mv = jb->omax[n * jb->G + g] * jb->f;
                for (int64_t k = k0; k < k1; k++)
                    wc[k - k0] = Wn[k] > mv ? mv : (Wn[k] < -mv ? -mv : Wn[k]);
                pq_group(wc, k1 - k0, jb->maxq, qr);
                Qn = qr;
            }
            for (int64_t k = k0; k < k1; k++)
                Et[(k - k0) * QB + b] = (double)Qn[k - k0] - Wn[k];
        }
        jb->quad(jb->Hg + k0 * gs, gs, k1 - k0, Et, q);
        for (int b = 0; b < QB && n0 + b < jb->N; b++)
            jb->cur[(n0 + b) * jb->G + g] = q[b];
    }
}

/* Clip one Linear weight (already scaled) against its scaled inputs. */
static tsr_status search_clip(tsr_model *m, tsr__param *p, const awq_stat *a, int64_t gs,
                              float maxq, int nt)
{
    int64_t K = p->ne[0], N = p->ne[1], G = (K + gs - 1) / gs;
    float *W = p->t.data;
    float *Wc = malloc((size_t)(N * K) * sizeof *Wc), *Q = malloc((size_t)(N * K) * sizeof *Q);
    float *omax = malloc((size_t)(N * G) * sizeof *omax), *bmax = malloc((size_t)(N * G) * sizeof *bmax);
    double *err = malloc((size_t)(N * G) * sizeof *err), *cur = malloc((size_t)(N * G) * sizeof *cur);
    double *Hg = malloc((size_t)(K * gs) * sizeof *Hg); /* diagonal blocks, scaled */
    double *et = malloc((size_t)nt * (size_t)(gs * QB) * sizeof *et);
    float *scr = malloc((size_t)nt * (size_t)(2 * (gs > K ? gs : K)) * sizeof *scr);
    tsr_status st = TSR_OK;
    if (!Wc || !Q || !omax || !bmax || !err || !cur || !Hg || !et || !scr) {
        st = tsr__error(TSR_ERR_NOMEM, "out of memory in the AWQ clip search");
        goto done;
    }
    /* (X/s)^T (X/s) restricted to each group's block: the upper triangle */
    for (int64_t i = 0; i < K; i++) {
        int64_t k1 = i / gs * gs + gs < K ? i / gs * gs + gs : K;
        for (int64_t j = i; j < k1; j++)
            Hg[i * gs + (j - i / gs * gs)] = a->xtx[i * K + j] / ((double)a->s[i] * a->s[j]);
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
            float mx = 0;
            for (int64_t k = g * gs; k < K && k < (g + 1) * gs; k++)
                mx = fabsf(W[n * K + k]) > mx ? fabsf(W[n * K + k]) : mx;
            omax[n * G + g] = bmax[n * G + g] = mx;
            err[n * G + g] = INFINITY;
        }
    clip_job job = {W,      Q,   N,           K,     G,     gs,   (N + QB - 1) / QB, Hg, cur,
                    et,     quad_kernel(), false, maxq,  1.0f, omax, scr};
    for (int i = 0; i < AWQ_GRID / 2; i++) { /* max_shrink 0.5 */
        float f = 1.0f - (float)i / AWQ_GRID;
        job.f = f;
        /* the configured quantizer on the first grid point; then, if
         * pq_group gave the same, pq_group in the workers */
        if (!job.direct) {
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < K; k++) {
                    float mv = omax[n * G + k / gs] * f, v = W[n * K + k];
                    Wc[n * K + k] = v > mv ? mv : (v < -mv ? -mv : v);
                }
            if ((st = qdq(m, p, Wc, Q)))
                goto done;
        }
        awq_parallel(nt, clip_task, &job);
        if (i == 0)
            job.direct = direct_matches(Wc, Q, N, K, gs, maxq, scr);
        for (int64_t e = 0; e < N * G; e++)
            if (cur[e] < err[e]) {
                err[e] = cur[e];
                bmax[e] = omax[e] * f;
            }
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            float mv = bmax[n * G + k / gs], v = W[n * K + k];
            W[n * K + k] = v > mv ? mv : (v < -mv ? -mv : v);
        }
done:
    free(Wc);
    free(Q);
    free(omax);
    free(bmax);
    free(err);
    free(cur);
    free(Hg);
    free(et);
    free(scr);
    return st;
}

tsr_status tsr__awq_search(tsr_model *m, const int32_t *ids, size_t n, tsr__awq_report *rep)
{
    if (!m || !ids || !n)
        return tsr__error(TSR_ERR_INVALID_ARG, "AWQ calibration needs at least one token");
    if (!m->qvt || !m->qvt->quantize_weight)
        return tsr__error(TSR_ERR_INVALID_ARG, "AWQ calibration: the model has no quantizer "
                          "that quantizes float weights");
    tsr__awq_report r = {0};
    const char *mt = tsr__json_string(tsr__json_get(m->config, "model_type"), "");
    if (!strncmp(mt, "gemma", 5)) { /* (1 + w) norms: folding would need w' = (1+w)/s - 1 */
        tsr__log(TSR_LOG_WARN, "AWQ: no scale search for model_type '%s'; its weights are "
                 "quantized with round-to-nearest", mt);
        if (rep)
            *rep = r;
        return TSR_OK;
    }
    const tsr_json *gj = tsr__json_get(m->qconfig, "group_size");
    int64_t gcfg = tsr__json_int(gj ? gj : tsr__json_get(m->qconfig, "q_group_size"), 128);
    bool duo = tsr__json_bool(tsr__json_get(m->qconfig, "duo_scaling"), 1);
    bool clip = tsr__json_bool(tsr__json_get(m->qconfig, "apply_clip"), 1);
    /* the awq quantizer's bits, for pq_group (checked against it before use) */
    const tsr_json *bj = tsr__json_get(m->qconfig, "bits");
    int64_t bits = tsr__json_int(bj ? bj : tsr__json_get(m->qconfig, "w_bit"), 4);
    float maxq = bits >= 1 && bits <= 16 ? (float)((1u << bits) - 1) : 0;
    size_t np = m->env.n_params;
    awq_ctx c = {.m = m, .threads = awq_threads(m)};
    c.stat_of = malloc((np ? np : 1) * sizeof *c.stat_of);
    c.stats = calloc(np ? np : 1, sizeof *c.stats);
    tsr_status st = TSR_OK;
    if (!c.stat_of || !c.stats) {
        st = tsr__error(TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < np; i++)
        c.stat_of[i] = -1;
    /* the inputs to collect: the first Linear of each group, per layer */
    for (size_t i = 0; i < np && !st; i++) {
        const char *nm = m->env.params[i].name, *suf = ".self_attn.q_proj.weight";
        size_t nl = strlen(nm), sl = strlen(suf);
        if (nl <= sl || strcmp(nm + nl - sl, suf))
            continue;
        char layer[512];
        snprintf(layer, sizeof layer, "%.*s", (int)(nl - sl), nm);
        for (int g = 0; g < 4; g++) {
            tsr__param *p = linear(m, layer, GROUPS[g].subs[0]);
            if (!p || c.stat_of[p - m->env.params] >= 0)
                continue;
            awq_stat *a = &c.stats[c.n_stats];
            a->param = (size_t)(p - m->env.params);
            a->K = p->ne[0];
            a->absx = calloc((size_t)a->K, sizeof *a->absx);
            a->xtx = calloc((size_t)(a->K * a->K), sizeof *a->xtx);
            c.stat_of[a->param] = (int)c.n_stats++;
            if (!a->absx || !a->xtx)
                st = tsr__error(TSR_ERR_NOMEM, "out of memory for the AWQ statistics of '%s' "
                                "(%lld x %lld)", p->name, (long long)a->K, (long long)a->K);
        }
    }
    if (st)
        goto done;
    if (!c.n_stats) {
        tsr__log(TSR_LOG_WARN, "AWQ: no llama-style layers (self_attn.q_proj ...) in the %s "
                 "model; its weights are quantized with round-to-nearest", mt);
        goto done;
    }
    /* 1. one pass of the float model */
    if ((st = tsr__calib_forward(m, ids, n, awq_observe, &c, &c.st)))
        goto done;
    /* 2. per layer: all scales from the unchanged weights, then applied,
     *    then the clip search on the scaled weights and inputs */
    double ratio_sum = 0;
    for (size_t i = 0; i < np && !st; i++) {
        const char *nm = m->env.params[i].name, *suf = ".self_attn.q_proj.weight";
        size_t nl = strlen(nm), sl = strlen(suf);
        if (nl <= sl || strcmp(nm + nl - sl, suf))
            continue;
        char layer[512];
        snprintf(layer, sizeof layer, "%.*s", (int)(nl - sl), nm);
        tsr__param *lin[4][3];
        awq_stat *gst[4] = {0};
        bool use[4] = {0};
        for (int g = 0; g < 4; g++) {
            use[g] = true;
            for (int j = 0; j < GROUPS[g].n; j++)
                use[g] &= (lin[g][j] = linear(m, layer, GROUPS[g].subs[j])) != NULL;
            int si = use[g] ? c.stat_of[lin[g][0] - m->env.params] : -1;
            use[g] &= si >= 0 && c.stats[si].rows > 0;
            gst[g] = si >= 0 ? &c.stats[si] : NULL;
        }
        /* the previous Linear must exist; o after v only when their shapes agree */
        tsr__param *v = linear(m, layer, "self_attn.v_proj"), *up = linear(m, layer, "mlp.up_proj");
        use[1] &= v && lin[1][0] && v->ne[0] == lin[1][0]->ne[0] && v->ne[1] == lin[1][0]->ne[1];
        use[3] &= up != NULL;
        for (int g = 0; g < 4 && !st; g++) {
            if (!use[g])
                continue;
            awq_stat *a = gst[g];
            a->s = malloc((size_t)a->K * sizeof *a->s);
            double ratio = 0;
            st = a->s ? search_scale(m, lin[g], GROUPS[g].n, a, gcfg > 0 ? gcfg : a->K, maxq,
                                     duo, c.threads, a->s, &ratio)
                      : tsr__error(TSR_ERR_NOMEM, "out of memory");
            ratio_sum += ratio;
        }
        for (int g = 0; g < 4 && !st; g++) {
            if (!use[g])
                continue;
            awq_stat *a = gst[g];
            char prev[560];
            snprintf(prev, sizeof prev, "%.511s.%.40s", layer, GROUPS[g].prev);
            if ((st = fold_prev(m, prev, a->s, a->K, GROUPS[g].prev_linear)))
                break;
            for (int j = 0; j < GROUPS[g].n && !st; j++) {
                tsr__param *p = lin[g][j];
                if ((st = make_writable(p)))
                    break;
                float *W = p->t.data;
                for (int64_t o = 0; o < p->ne[1]; o++)
                    for (int64_t k = 0; k < a->K; k++)
                        W[o * a->K + k] *= a->s[k];
            }
            r.scaled_groups++;
        }
        /* clip: v (qkv input), o, gate, up, down; never q and k */
        static const int clip_g[5] = {0, 1, 2, 2, 3}, clip_j[5] = {2, 0, 0, 1, 0};
        for (int t = 0; t < 5 && !st && clip; t++) {
            int g = clip_g[t];
            tsr__param *p = linear(m, layer, GROUPS[g].subs[clip_j[t]]);
            awq_stat *a = gst[g];
            if (!p || !a || a->rows <= 0)
                continue;
            if (!a->s) { /* not scaled: clip against unit scales */
                a->s = malloc((size_t)a->K * sizeof *a->s);
                if (!a->s) {
                    st = tsr__error(TSR_ERR_NOMEM, "out of memory");
                    break;
                }
                for (int64_t k = 0; k < a->K; k++)
                    a->s[k] = 1;
            }
            if ((st = make_writable(p)) ||
                (st = search_clip(m, p, a, gcfg > 0 ? gcfg : a->K, maxq, c.threads)))
                break;
            r.clipped++;
        }
    }
    r.mean_ratio = r.scaled_groups ? ratio_sum / (double)r.scaled_groups : 0;
    if (!st)
        tsr__log(TSR_LOG_INFO, "AWQ search on %zu tokens of %s: %zu groups scaled (mean ratio "
                 "%.2f), %zu weights clipped", n, m->dir, r.scaled_groups, r.mean_ratio,
                 r.clipped);
done:
    for (size_t i = 0; c.stats && i < c.n_stats; i++) {
        free(c.stats[i].absx);
        free(c.stats[i].xtx);
        free(c.stats[i].s);
    }
    free(c.stats);
    free(c.stat_of);
    tsr__free(c.buf);
    if (rep)
        *rep = r;
    return st;
}
