/* tests/kernels/cpu_lowbit_kernels.c - the cpu backend's kernels for the
 * quantizer formats TSR_DTYPE_INT_GROUP and TSR_DTYPE_CODEBOOK4
 * (backends/cpu/kernels/lowbit*.c, matmul-lowbit.c) against the core's
 * reference dequantizer (core/formats.c, tsr__dequantize_row: the format's
 * definition written independently) on random packed weights: every ISA
 * variant of the inner kernels (dequantization of row slices, dot products
 * with 1-4 activation rows), then the whole MUL_MAT (decode and prefill
 * paths, threads, bias, the layouts handled element by element: act-order
 * g_idx, HQQ axis 0, groups over the flattened weight, 5-bit codes, groups
 * that are no multiple of 8, odd K), CODEBOOK4's 16-bit compute_dtype and
 * INT_GROUP's 16-bit weight_dtype against plain emulations.  Variants this machine cannot run are
 * reported as SKIP on stdout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tessera/plugin/formats.h>
#include "cpu.h"
#include "internal.h"
#include "lowbit.h"
#include "tsr_test.h"

static uint64_t g_s = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    g_s ^= g_s << 13;
    g_s ^= g_s >> 7;
    g_s ^= g_s << 17;
    return (uint32_t)(g_s >> 32);
}
static float frand(void) { return (float)rnd() / 4294967296.0f * 2.0f - 1.0f; }

/* A random weight of either format with every buffer it needs. */
typedef struct qweight {
    tsr_tensor t;
    tsr_fmt_int_group ig;
    tsr_fmt_codebook4 cb;
    uint8_t *data;
    float *scale, *zero, *absmax;
    int32_t *g_idx;
    float *deq; /* [N][K] by tsr__dequantize_row */
} qweight;

static void finish(qweight *w, int64_t K, int64_t N)
{
    w->t.struct_size = sizeof w->t;
    w->t.ne[0] = K;
    w->t.ne[1] = N;
    w->t.ne[2] = w->t.ne[3] = 1;
    w->t.name = "test.weight";
    w->deq = malloc((size_t)(K * N) * sizeof(float));
    for (int64_t n = 0; n < N; n++)
        CHECK(tsr__dequantize_row(&w->t, n, w->deq + n * K) == TSR_OK);
}

/* INT_GROUP with `bits`-bit codes; axis 1 with ngpr groups per row (0:
 * groups over the flattened weight), or axis 0; act-order g_idx if asked */
static void make_int_group(qweight *w, int64_t K, int64_t N, uint32_t bits, int64_t gs, uint32_t axis,
                           int flattened, int act_order)
{
    memset(w, 0, sizeof *w);
    tsr_fmt_int_group *f = &w->ig;
    f->struct_size = sizeof *f;
    f->bits = bits;
    f->axis = axis;
    f->group_size = gs;
    f->n_groups_per_row = axis == 1 && !flattened ? (K + gs - 1) / gs : 0;
    f->row_bytes = (size_t)((K * bits + 7) / 8);
    int64_t groups = axis == 0 ? N * K / gs : flattened ? (N * K + gs - 1) / gs : N * f->n_groups_per_row;
    size_t nbytes = f->row_bytes * (size_t)N;
    w->data = malloc(nbytes);
    for (size_t i = 0; i < nbytes; i++)
        w->data[i] = (uint8_t)rnd();
    w->scale = malloc((size_t)groups * sizeof(float));
    w->zero = malloc((size_t)groups * sizeof(float));
    float qmax = (float)((1u << bits) - 1u);
    for (int64_t g = 0; g < groups; g++) {
        w->scale[g] = 0.002f + 0.02f * (frand() + 1.0f);
        /* integer zeros (GPTQ, AWQ) and fractional ones (HQQ) */
        float z = (frand() + 1.0f) * 0.5f * qmax;
        w->zero[g] = (g & 1) ? z : floorf(z);
    }
    if (act_order) {
        w->g_idx = malloc((size_t)K * sizeof(int32_t));
        for (int64_t k = 0; k < K; k++)
            w->g_idx[k] = (int32_t)(rnd() % (uint32_t)f->n_groups_per_row);
        f->g_idx = w->g_idx;
    }
    f->scale = w->scale;
    f->zero = w->zero;
    w->t.dtype = TSR_DTYPE_INT_GROUP;
    w->t.data = w->data;
    w->t.nb[0] = 1;
    w->t.nb[1] = f->row_bytes;
    w->t.format_data = f;
    finish(w, K, N);
}

static void make_codebook4(qweight *w, int64_t K, int64_t N, int64_t bs)
{
    memset(w, 0, sizeof *w);
    tsr_fmt_codebook4 *f = &w->cb;
    f->struct_size = sizeof *f;
    f->block_size = bs;
    for (int i = 0; i < 16; i++) /* a random table: the kernels know no values */
        f->code[i] = frand();
    size_t nbytes = (size_t)((N * K + 1) / 2);
    int64_t blocks = (N * K + bs - 1) / bs;
    w->data = malloc(nbytes);
    for (size_t i = 0; i < nbytes; i++)
        w->data[i] = (uint8_t)rnd();
    w->absmax = malloc((size_t)blocks * sizeof(float));
    for (int64_t b = 0; b < blocks; b++)
        w->absmax[b] = 0.01f + 0.05f * (frand() + 1.0f);
    f->absmax = w->absmax;
    w->t.dtype = TSR_DTYPE_CODEBOOK4;
    w->t.data = w->data;
    w->t.nb[0] = 1;
    w->t.nb[1] = (size_t)K / 2;
    w->t.format_data = f;
    finish(w, K, N);
}

static void free_qweight(qweight *w)
{
    free(w->data);
    free(w->scale);
    free(w->zero);
    free(w->absmax);
    free(w->g_idx);
    free(w->deq);
}

static int close_to(double got, double want, double mag)
{
    return fabs(got - want) <= 1e-5 * mag + 1e-7;
}

/* the inner kernels of one table on the layouts they take */
static void check_kernels(const cpu_lowbit_kernels *lk, const qweight *w)
{
    int64_t K = w->t.ne[0], N = w->t.ne[1];
    int ig = w->t.dtype == TSR_DTYPE_INT_GROUP;
    float *x = malloc((size_t)(CPU_LOWBIT_MAX_NX * K) * sizeof(float));
    float *dst = malloc((size_t)K * sizeof(float));
    for (int64_t i = 0; i < CPU_LOWBIT_MAX_NX * K; i++)
        x[i] = frand() * 2.0f;
    int bad_deq = 0, bad_dot = 0;
    for (int64_t n = 0; n < N; n++) {
        const float *ref = w->deq + n * K;
        const uint8_t *q;
        const float *sc = NULL, *ze = NULL;
        if (ig) {
            q = w->data + (size_t)n * w->ig.row_bytes;
            sc = w->scale + n * w->ig.n_groups_per_row;
            ze = w->zero + n * w->ig.n_groups_per_row;
        } else {
            q = w->data + (size_t)(n * K / 2);
        }
        /* slices: the whole row, and one starting at column 8 that stops
         * short of the end by a few values */
        int64_t sl[2][2] = {{0, K}, {8, K - 8 - 3}};
        for (int s = 0; s < 2; s++) {
            int64_t k0 = sl[s][0], len = sl[s][1];
            if (ig)
                lk->deq_int_group(q, (int)w->ig.bits, k0, len, w->ig.group_size, sc, ze, dst);
            else
                lk->deq_codebook4(q, k0, len, n * K, w->cb.block_size, w->cb.code, w->absmax, dst);
            for (int64_t i = 0; i < len; i++)
                if (!(fabsf(dst[i] - ref[k0 + i]) <= 1e-6f * fabsf(ref[k0 + i]) + 1e-12f))
                    bad_deq++;
        }
        for (int nx = 1; nx <= CPU_LOWBIT_MAX_NX; nx++) {
            float out[CPU_LOWBIT_MAX_NX];
            if (ig)
                lk->dot_int_group(q, (int)w->ig.bits, K, w->ig.group_size, sc, ze, x, (size_t)K, nx, out);
            else
                lk->dot_codebook4(q, K, n * K, w->cb.block_size, w->cb.code, w->absmax, x, (size_t)K,
                                  nx, out);
            for (int m = 0; m < nx; m++) {
                double want = 0, mag = 0;
                for (int64_t k = 0; k < K; k++) {
                    want += (double)ref[k] * x[m * K + k];
                    mag += fabs((double)ref[k] * x[m * K + k]);
                }
                if (!close_to(out[m], want, mag)) {
                    if (!bad_dot)
                        fprintf(stderr, "  row %lld nx %d m %d: %.8g, want %.8g\n", (long long)n, nx,
                                m, out[m], want);
                    bad_dot++;
                }
            }
        }
    }
    CHECK_MSG(!bad_deq && !bad_dot, "%s %s K %lld bits/block %lld group %lld: %d dequantized values, %d dots off",
              lk->isa, ig ? "int_group" : "codebook4", (long long)K,
              (long long)(ig ? w->ig.bits : w->cb.block_size), (long long)(ig ? w->ig.group_size : 0),
              bad_deq, bad_dot);
    free(x);
    free(dst);
}

static void test_kernels(const cpu_lowbit_kernels *lk)
{
    static const uint32_t bits[] = {1, 2, 3, 4, 8};
    static const int64_t groups[] = {8, 32, 64, 128};
    static const int64_t Ks[] = {256, 200, 1100, 24};
    for (size_t b = 0; b < sizeof bits / sizeof bits[0]; b++)
        for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
            for (size_t i = 0; i < sizeof Ks / sizeof Ks[0]; i++) {
                qweight w;
                make_int_group(&w, Ks[i], 5, bits[b], groups[g], 1, 0, 0);
                check_kernels(lk, &w);
                free_qweight(&w);
            }
    static const int64_t blocks[] = {64, 32, 128, 8};
    static const int64_t Kc[] = {256, 200, 1088, 24};
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
        for (size_t i = 0; i < sizeof Kc / sizeof Kc[0]; i++) {
            qweight w;
            make_codebook4(&w, Kc[i], 7, blocks[b]);
            check_kernels(lk, &w);
            free_qweight(&w);
        }
}

/* v rounded to float16 / bfloat16 by the core's converters (cdt F32: v) */
static float round16(uint32_t cdt, float v)
{
    if (cdt == TSR_DTYPE_F16)
        return tsr__f16_to_f32(tsr__f32_to_f16(v));
    return cdt == TSR_DTYPE_BF16 ? tsr__bf16_to_f32(tsr__f32_to_bf16(v)) : v;
}

/* one float16 / bfloat16 ulp at |v| (float16 subnormals: 2^-24) */
static double ulp16(uint32_t cdt, double v)
{
    int e;
    frexp(cdt == TSR_DTYPE_F16 && fabs(v) < 0x1p-14 ? 0x1p-14 : v, &e);
    return ldexp(1.0, e - 1 - (cdt == TSR_DTYPE_F16 ? 10 : 7));
}

/* y = x W^T + b through cpu_op_mul_mat_lowbit; x has ne {K, ne1, ne2} with
 * `gap` floats between its rows' planes (non-uniform rows when gap > 0).
 * CODEBOOK4 with a 16-bit compute dtype cdt (tessera/plugin/formats.h;
 * bitsandbytes' Linear4bit): want = round(sum round(x) round(w) +
 * round(b)), the sum exact; the kernel sums in float32 in its own order,
 * so it may round one ulp away, or where the sum cancels be off by the
 * float32 summation bound: allowed ulp(want) + 2 K 2^-24 sum |x w|.
 * INT_GROUP with a 16-bit weight_dtype cdt (GPTQModel's fp16
 * dequantization): want = sum round(w) x + b, only w rounded, everything
 * else float32: within close_to, and over all outputs at least 10 times
 * closer to it than to the unrounded product (the rounding is done).
 * short_desc: the descriptor's struct_size stops before weight_dtype (a 1.1
 * plugin), so float32 is wanted whatever lies past it.
 * ref_path: cpu_op_mul_mat with the native kernels off (TESSERA_CPU_LOWBIT=0),
 * i.e. host->dequantize_row and a dot product. */
static void check_mul_mat_wd(cpu_ctx *c, const qweight *w, int64_t ne1, int64_t ne2, int64_t gap,
                             int with_bias, uint32_t cdt, int ref_path, int short_desc,
                             const char *what)
{
    int64_t K = w->t.ne[0], N = w->t.ne[1], M = ne1 * ne2;
    size_t plane = (size_t)(ne1 * K + gap);
    float *xd = malloc(plane * (size_t)ne2 * sizeof(float));
    float *yd = malloc((size_t)(M * N) * sizeof(float));
    float *bd = malloc((size_t)N * sizeof(float));
    for (size_t i = 0; i < plane * (size_t)ne2; i++)
        xd[i] = frand();
    for (int64_t n = 0; n < N; n++)
        bd[n] = frand();
    for (int64_t i = 0; i < M * N; i++)
        yd[i] = NAN;
    tsr_tensor x, y, b;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    memset(&b, 0, sizeof b);
    x.struct_size = y.struct_size = b.struct_size = sizeof x;
    x.dtype = y.dtype = b.dtype = TSR_DTYPE_F32;
    x.ne[0] = K, x.ne[1] = ne1, x.ne[2] = ne2, x.ne[3] = 1;
    x.nb[0] = 4, x.nb[1] = (size_t)K * 4, x.nb[2] = plane * 4, x.nb[3] = x.nb[2] * (size_t)ne2;
    x.data = xd;
    y.ne[0] = N, y.ne[1] = ne1, y.ne[2] = ne2, y.ne[3] = 1;
    y.nb[0] = 4, y.nb[1] = (size_t)N * 4, y.nb[2] = y.nb[1] * (size_t)ne1, y.nb[3] = y.nb[2] * (size_t)ne2;
    y.data = yd;
    b.ne[0] = N, b.ne[1] = b.ne[2] = b.ne[3] = 1;
    b.nb[0] = 4, b.nb[1] = b.nb[2] = b.nb[3] = (size_t)N * 4;
    b.data = bd;
    y.op = TSR_OP_MUL_MAT;
    y.src[0] = (tsr_tensor *)&w->t;
    y.src[1] = &x;
    y.src[2] = with_bias ? &b : NULL;
    tsr_fmt_codebook4 cb;
    tsr_fmt_int_group ig;
    tsr_tensor wt = w->t;
    int wonly = w->t.dtype == TSR_DTYPE_INT_GROUP; /* only the weights rounded */
    if (cdt != TSR_DTYPE_F32 && wonly) { /* the same weight asking for 16-bit values */
        ig = w->ig;
        ig.weight_dtype = cdt;
        if (short_desc) {
            ig.struct_size = (uint32_t)offsetof(tsr_fmt_int_group, weight_dtype);
            cdt = TSR_DTYPE_F32;
        }
        wt.format_data = &ig;
        y.src[0] = &wt;
    } else if (cdt != TSR_DTYPE_F32) { /* the same weight asking for 16-bit compute */
        cb = w->cb;
        cb.compute_dtype = cdt;
        wt.format_data = &cb;
        y.src[0] = &wt;
    }
    c->no_lowbit = ref_path;
    int r = ref_path ? cpu_op_mul_mat(c, &y) : cpu_op_mul_mat_lowbit(c, &y);
    c->no_lowbit = 0;
    CHECK_MSG(r == 0, "%s %s: returned %d", c->k.isa, what, r);
    int bad = 0;
    double off_want = 0, off_exact = 0;
    for (int64_t m = 0; r == 0 && m < M; m++) {
        const float *xr = xd + (size_t)(m / ne1) * plane + (size_t)(m % ne1 * K);
        for (int64_t n = 0; n < N; n++) {
            double want = with_bias ? (wonly ? bd[n] : round16(cdt, bd[n])) : 0.0, mag = fabs(want);
            double exact = want;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)round16(cdt, w->deq[n * K + k]) *
                           (wonly ? xr[k] : round16(cdt, xr[k]));
                want += p;
                mag += fabs(p);
                exact += (double)w->deq[n * K + k] * xr[k];
            }
            off_want += fabs(yd[m * N + n] - want);
            off_exact += fabs(yd[m * N + n] - exact);
            int ok;
            if (cdt == TSR_DTYPE_F32 || wonly) {
                ok = close_to(yd[m * N + n], want, mag);
            } else {
                want = round16(cdt, (float)want); /* (float): below any 16-bit ulp */
                ok = fabs(yd[m * N + n] - want) <= ulp16(cdt, want) + 2.0 * (double)K * 0x1p-24 * mag &&
                     yd[m * N + n] == round16(cdt, yd[m * N + n]);
            }
            if (!ok) {
                if (!bad)
                    fprintf(stderr, "  %s %s: y[%lld][%lld] = %.8g, want %.8g\n", c->k.isa, what,
                            (long long)m, (long long)n, yd[m * N + n], want);
                bad++;
            }
        }
    }
    CHECK_MSG(!bad, "%s %s M %lld: %d outputs off", c->k.isa, what, (long long)M, bad);
    if (wonly && cdt != TSR_DTYPE_F32)
        CHECK_MSG(10 * off_want <= off_exact, "%s %s M %lld: outputs %g from the rounded-weight "
                  "product, %g from the exact one: not 10 times closer", c->k.isa, what,
                  (long long)M, off_want, off_exact);
    free(xd);
    free(yd);
    free(bd);
}

static void check_mul_mat_cd(cpu_ctx *c, const qweight *w, int64_t ne1, int64_t ne2, int64_t gap,
                             int with_bias, uint32_t cdt, int ref_path, const char *what)
{
    check_mul_mat_wd(c, w, ne1, ne2, gap, with_bias, cdt, ref_path, 0, what);
}

static void check_mul_mat(cpu_ctx *c, const qweight *w, int64_t ne1, int64_t ne2, int64_t gap,
                          int with_bias, const char *what)
{
    check_mul_mat_cd(c, w, ne1, ne2, gap, with_bias, TSR_DTYPE_F32, 0, what);
}

/* CODEBOOK4 with compute_dtype float16 / bfloat16: decode, prefill, uneven
 * rows, bias; native kernel and dequantize_row path */
static void check_compute_dtypes(cpu_ctx *c, const qweight *w, const char *what)
{
    static const uint32_t cdts[] = {TSR_DTYPE_F16, TSR_DTYPE_BF16};
    char buf[160];
    for (int i = 0; i < 2; i++)
        for (int ref = 0; ref < 2; ref++) {
            snprintf(buf, sizeof buf, "%s, compute %s, %s", what, i ? "bfloat16" : "float16",
                     ref ? "dequantize_row path" : "native");
            check_mul_mat_cd(c, w, 1, 1, 0, 1, cdts[i], ref, buf);
            check_mul_mat_cd(c, w, 3, 1, 0, 0, cdts[i], ref, buf);
            check_mul_mat_cd(c, w, 17, 1, 0, 1, cdts[i], ref, buf);
            check_mul_mat_cd(c, w, 1, 2, 5, 1, cdts[i], ref, buf); /* uneven rows: decode */
            check_mul_mat_cd(c, w, 3, 2, 7, 1, cdts[i], ref, buf); /* uneven rows: prefill */
        }
}

/* INT_GROUP with weight_dtype float16 / bfloat16: decode, prefill, uneven
 * rows, bias; native kernel and dequantize_row path; and a 1.1 descriptor
 * (struct_size short of weight_dtype) multiplying in float32 */
static void check_weight_dtypes(cpu_ctx *c, const qweight *w, const char *what)
{
    static const uint32_t wdts[] = {TSR_DTYPE_F16, TSR_DTYPE_BF16};
    char buf[160];
    for (int i = 0; i < 2; i++)
        for (int ref = 0; ref < 2; ref++) {
            snprintf(buf, sizeof buf, "%s, weights %s, %s", what, i ? "bfloat16" : "float16",
                     ref ? "dequantize_row path" : "native");
            check_mul_mat_wd(c, w, 1, 1, 0, 1, wdts[i], ref, 0, buf);
            check_mul_mat_wd(c, w, 3, 1, 0, 0, wdts[i], ref, 0, buf);
            check_mul_mat_wd(c, w, 17, 1, 0, 1, wdts[i], ref, 0, buf);
            check_mul_mat_wd(c, w, 1, 2, 5, 1, wdts[i], ref, 0, buf); /* uneven rows: decode */
            check_mul_mat_wd(c, w, 3, 2, 7, 1, wdts[i], ref, 0, buf); /* uneven rows: prefill */
            check_mul_mat_wd(c, w, 1, 1, 0, 1, wdts[i], ref, 1, buf); /* 1.1 descriptor */
            check_mul_mat_wd(c, w, 17, 1, 0, 1, wdts[i], ref, 1, buf);
        }
}

static void check_all_m(cpu_ctx *c, const qweight *w, const char *what)
{
    static const int64_t Ms[] = {1, 2, 3, 5, 17, 60};
    for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++)
        check_mul_mat(c, w, Ms[i], 1, 0, (int)(i & 1), what);
    check_mul_mat(c, w, 1, 2, 5, 1, what);  /* 2 rows, not evenly spaced: decode */
    check_mul_mat(c, w, 3, 2, 7, 0, what);  /* 6 rows, not evenly spaced: prefill */
    check_mul_mat(c, w, 2, 3, 0, 1, what);  /* 6 rows in 3 planes, evenly spaced */
}

static void test_mul_mat(cpu_ctx *c)
{
    qweight w;
    static const struct { uint32_t bits; int64_t gs, K; } fast[] = {
        {4, 128, 576}, {4, 64, 1100}, {4, 32, 200}, {3, 64, 576}, {2, 16, 256}, {8, 128, 640}, {1, 64, 320}};
    char what[128];
    for (size_t i = 0; i < sizeof fast / sizeof fast[0]; i++) {
        make_int_group(&w, fast[i].K, 37, fast[i].bits, fast[i].gs, 1, 0, 0);
        snprintf(what, sizeof what, "int_group bits %u group %lld K %lld", fast[i].bits,
                 (long long)fast[i].gs, (long long)fast[i].K);
        check_all_m(c, &w, what);
        if (i < 2 || fast[i].bits == 3)
            check_weight_dtypes(c, &w, what);
        free_qweight(&w);
    }
    make_int_group(&w, 600, 29, 4, 64, 1, 0, 1);
    check_all_m(c, &w, "int_group act-order g_idx");
    check_weight_dtypes(c, &w, "int_group act-order g_idx");
    free_qweight(&w);
    make_int_group(&w, 96, 20, 3, 64, 0, 0, 0); /* C = N*K/gs = 30 */
    check_all_m(c, &w, "int_group axis 0");
    free_qweight(&w);
    make_int_group(&w, 100, 21, 4, 64, 1, 1, 0);
    check_all_m(c, &w, "int_group flattened groups");
    free_qweight(&w);
    make_int_group(&w, 130, 19, 5, 32, 1, 0, 0);
    check_all_m(c, &w, "int_group 5-bit");
    free_qweight(&w);
    make_int_group(&w, 120, 17, 4, 12, 1, 0, 0);
    check_all_m(c, &w, "int_group group of 12");
    check_weight_dtypes(c, &w, "int_group group of 12");
    free_qweight(&w);
    make_codebook4(&w, 576, 41, 64);
    check_all_m(c, &w, "codebook4 block 64");
    check_compute_dtypes(c, &w, "codebook4 block 64");
    free_qweight(&w);
    make_codebook4(&w, 1096, 23, 64);
    check_all_m(c, &w, "codebook4 K 1096, blocks across rows");
    check_compute_dtypes(c, &w, "codebook4 K 1096, blocks across rows");
    free_qweight(&w);
    make_codebook4(&w, 101, 13, 64);
    check_all_m(c, &w, "codebook4 odd K");
    check_compute_dtypes(c, &w, "codebook4 odd K");
    free_qweight(&w);
    make_codebook4(&w, 120, 13, 20);
    check_all_m(c, &w, "codebook4 block 20");
    check_compute_dtypes(c, &w, "codebook4 block 20");
    free_qweight(&w);
}

int main(void)
{
    static const char *isas[] = {"c", "avx2"};
    CHECK(cpu_lowbit_select("c") == &cpu_lowbit_c);
    CHECK(cpu_lowbit_get("no-such-isa") == NULL);
    cpu_pool *pool = cpu_pool_create(2);
    CHECK(pool != NULL);
    for (int i = 0; i < 2; i++) {
        const cpu_lowbit_kernels *lk = cpu_lowbit_get(isas[i]);
        cpu_ctx c;
        memset(&c, 0, sizeof c);
        if (!lk || !cpu_kernels_get(isas[i], &c.k)) {
            printf("SKIP %s: not built for or not supported by this CPU\n", isas[i]);
            continue;
        }
        CHECK(cpu_lowbit_select(c.k.isa) == lk);
        printf("checking %s\n", isas[i]);
        test_kernels(lk);
        c.pool = pool;
        c.host = tsr__host(); /* the dequantize_row path */
        if (pool)
            test_mul_mat(&c);
        free(c.buf[0]);
        free(c.buf[1]);
        free(c.scratch);
    }
    cpu_pool_destroy(pool);
    return tsr_test_report("cpu_lowbit_kernels");
}
