/* tests/kernels/cpu_kernels.c - every ISA variant of the cpu backend's inner
 * kernels against the plain-C reference on random inputs, and the C
 * reference of the Q8_0/Q4_0/Q4_K dot products against the core's GGML
 * dequantizers (an independent implementation of the block layouts).
 * Variants this machine cannot run are reported as SKIP on stdout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tessera/plugin/formats.h>
#include "ggml_blocks.h"
#include "kernels.h"
#include "tsr_test.h"

static uint64_t g_s = 88172645463325252ull;
static uint32_t rnd(void)
{
    g_s ^= g_s << 13;
    g_s ^= g_s >> 7;
    g_s ^= g_s << 17;
    return (uint32_t)(g_s >> 32);
}
static float frand(void) { return (float)rnd() / 4294967296.0f * 2.0f - 1.0f; }

static uint16_t f16_of(float f)
{
    /* normal values only (below 2^-14 gives 0): exact enough for a scale */
    if (fabsf(f) < 6.2e-5f)
        return 0;
    int e;
    float m = frexpf(f, &e); /* f = m * 2^e, 0.5 <= |m| < 1 */
    uint16_t sign = f < 0 ? 0x8000u : 0;
    m = fabsf(m) * 2.0f - 1.0f;
    e = e - 1 + 15;
    return (uint16_t)(sign | (uint16_t)(e << 10) | (uint16_t)lrintf(m * 1024.0f) );
}

static int close_rel(float a, float b, float rel, float abs_tol)
{
    return fabsf(a - b) <= abs_tol + rel * fabsf(b);
}

static float dot_plain(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return (float)s;
}

/* sum over blocks of |d_w d_x| sum |q_w q_x| (Q8_0: q4 = 0, Q4_0: q4 = 1):
 * the scale of the float rounding in a quantized dot product, which a
 * result near zero (cancellation) does not show */
static float dot_mag(int q4, const uint8_t *w, const cpu_q8 *x, int64_t n)
{
    double m = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t *p = w + (size_t)b * (q4 ? 18 : 34);
        uint16_t h;
        memcpy(&h, p, 2);
        double acc = 0;
        for (int i = 0; i < 32; i++) {
            int q = q4 ? (i < 16 ? (p[2 + i] & 15) : (p[2 + i - 16] >> 4)) - 8 : (int8_t)p[2 + i];
            acc += fabs((double)q * x[b].qs[i]);
        }
        m += fabs((double)cpu_f16_to_f32(h) * x[b].d) * acc;
    }
    return (float)m;
}

/* random GGML blocks: random bytes, then sane f16 scales */
static void make_blocks(uint32_t type, uint8_t *p, int64_t n)
{
    size_t bsz = type == TSR_DTYPE_Q8_0 ? 34 : type == TSR_DTYPE_Q4_0 ? 18 : 144;
    int64_t nb = type == TSR_DTYPE_Q4_K ? n / 256 : n / 32;
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *q = p + (size_t)b * bsz;
        for (size_t i = 0; i < bsz; i++)
            q[i] = (uint8_t)rnd();
        uint16_t d = f16_of(0.001f + 0.01f * (frand() + 1.0f)), dm = f16_of(0.0005f + 0.005f * (frand() + 1.0f));
        memcpy(q, &d, 2);
        if (type == TSR_DTYPE_Q4_K)
            memcpy(q + 2, &dm, 2);
    }
}

static void test_reference_blocks(void)
{
    const int64_t n = 1024;
    float x[1024], w[1024];
    cpu_q8 xq[1024 / 32];
    uint8_t blk[1024 / 32 * 34 + 64];
    for (int i = 0; i < n; i++)
        x[i] = frand() * 3.0f;
    cpu_kernels_c.quant_q8(x, xq, n);
    /* quantization error bounded by half a step */
    for (int i = 0; i < n; i++)
        CHECK(fabsf(xq[i / 32].d * xq[i / 32].qs[i % 32] - x[i]) <= xq[i / 32].d * 0.5001f);
    float xd[1024];
    for (int i = 0; i < n; i++)
        xd[i] = xq[i / 32].d * xq[i / 32].qs[i % 32];
    static const uint32_t types[] = {TSR_DTYPE_Q8_0, TSR_DTYPE_Q4_0, TSR_DTYPE_Q4_K};
    for (int t = 0; t < 3; t++)
        for (int rep = 0; rep < 20; rep++) {
            make_blocks(types[t], blk, n);
            float got;
            if (types[t] == TSR_DTYPE_Q8_0) {
                tsr__dequantize_row_q8_0(blk, w, n);
                got = cpu_kernels_c.dot_q8_0(blk, xq, n);
            } else if (types[t] == TSR_DTYPE_Q4_0) {
                tsr__dequantize_row_q4_0(blk, w, n);
                got = cpu_kernels_c.dot_q4_0(blk, xq, n);
            } else {
                tsr__dequantize_row_q4_k(blk, w, n);
                got = cpu_kernels_c.dot_q4_k(blk, xq, n);
            }
            float want = dot_plain(w, xd, n);
            CHECK_MSG(close_rel(got, want, 1e-4f, 1e-3f), "type %u: %g vs dequantized %g", types[t],
                      got, want);
        }
}

/* q8_K activations and the Q4_K block product against the dequantizer */
static void test_reference_q8k(void)
{
    const int64_t n = 1024;
    float x[1024], w[1024], xd[1024];
    cpu_q8k xq[1024 / 256];
    uint8_t blk[1024 / 256 * 144];
    for (int rep = 0; rep < 20; rep++) {
        for (int i = 0; i < n; i++)
            x[i] = frand() * (1.0f + (float)(i / 256));
        cpu_kernels_c.quant_q8k(x, xq, n);
        int ok = 1;
        for (int i = 0; i < n; i++) {
            xd[i] = xq[i / 256].d * xq[i / 256].qs[i % 256];
            ok &= fabsf(xd[i] - x[i]) <= xq[i / 256].d * 0.5001f;
        }
        CHECK_MSG(ok, "q8_K quantization error beyond half a step");
        for (int b = 0; b < n / 256; b++)
            for (int g = 0; g < 8; g++) {
                int sum = 0;
                for (int i = 0; i < 32; i++)
                    sum += xq[b].qs[32 * g + i];
                ok &= xq[b].bsum[g] == sum;
            }
        CHECK_MSG(ok, "q8_K block sums");
        make_blocks(TSR_DTYPE_Q4_K, blk, n);
        tsr__dequantize_row_q4_k(blk, w, n);
        float got;
        cpu_kernels_c.mm_q4_k(blk, 144 * 4, 1, xq, 4, 1, n, &got, 1);
        float want = dot_plain(w, xd, n);
        CHECK_MSG(close_rel(got, want, 1e-4f, 1e-3f), "q4_k x q8_k: %g vs dequantized %g", got, want);
    }
}

/* the multi-row kernels against the single-row dot products (both C) */
static void test_reference_mm(void)
{
    const int64_t n = 512;
    float x[3 * 512];
    cpu_q8 xq[3 * 16];
    uint8_t blk[5 * 16 * 34];
    for (int i = 0; i < 3 * n; i++)
        x[i] = frand();
    cpu_kernels_c.quant_q8(x, xq, 3 * n);
    float y[15];
    make_blocks(TSR_DTYPE_Q8_0, blk, 5 * n);
    cpu_kernels_c.mm_q8_0(blk, 16 * 34, 5, xq, 16, 3, n, y, 5);
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 5; i++)
            CHECK(y[j * 5 + i] == cpu_kernels_c.dot_q8_0(blk + i * 16 * 34, xq + j * 16, n));
    make_blocks(TSR_DTYPE_Q4_0, blk, 5 * n);
    cpu_kernels_c.mm_q4_0(blk, 16 * 18, 5, xq, 16, 3, n, y, 5);
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 5; i++)
            CHECK(y[j * 5 + i] == cpu_kernels_c.dot_q4_0(blk + i * 16 * 18, xq + j * 16, n));
}

/* random weight rows x random activation rows through mm_* of two tables */
static void compare_mm(const char *isa, const cpu_kernels *k, int64_t K, int nw, int nx)
{
    const cpu_kernels *c = &cpu_kernels_c;
    float *x = malloc((size_t)(K * nx) * 4);
    for (int64_t i = 0; i < K * nx; i++)
        x[i] = frand() * 2.0f;
    cpu_q8 *xq = malloc((size_t)(K / 32 * nx) * sizeof *xq);
    cpu_q8k *xk = malloc((size_t)(K / 256 * nx) * sizeof *xk), *xk2 = malloc((size_t)(K / 256 * nx) * sizeof *xk);
    c->quant_q8(x, xq, K * nx);
    c->quant_q8k(x, xk, K * nx);
    k->quant_q8k(x, xk2, K * nx);
    int same = 1;
    for (int64_t b = 0; b < K / 256 * nx; b++)
        same &= xk[b].d == xk2[b].d && !memcmp(xk[b].qs, xk2[b].qs, 256) &&
                !memcmp(xk[b].bsum, xk2[b].bsum, sizeof xk[b].bsum);
    CHECK_MSG(same, "%s quant_q8k K=%lld", isa, (long long)K);
    /* rows padded by 2 blocks so that the row stride differs from K */
    size_t ld8 = (size_t)(K / 32 + 2) * 34, ld4 = (size_t)(K / 32 + 2) * 18, ldk = (size_t)(K / 256 + 1) * 144;
    uint8_t *blk = malloc(ld8 * (size_t)nw);
    size_t ldy = (size_t)nw + 3;
    float *y1 = malloc(ldy * (size_t)nx * 4), *y2 = malloc(ldy * (size_t)nx * 4);
    static const uint32_t types[] = {TSR_DTYPE_Q8_0, TSR_DTYPE_Q4_0, TSR_DTYPE_Q4_K};
    for (int t = 0; t < 3; t++) {
        size_t ld = t == 0 ? ld8 : t == 1 ? ld4 : ldk;
        for (int i = 0; i < nw; i++)
            make_blocks(types[t], blk + (size_t)i * ld, (int64_t)(ld / (t == 0 ? 34 : t == 1 ? 18 : 144)) * (t == 2 ? 256 : 32));
        for (size_t i = 0; i < ldy * (size_t)nx; i++)
            y1[i] = y2[i] = -7.0f;
        if (t == 0) {
            k->mm_q8_0(blk, ld, nw, xq, (size_t)K / 32, nx, K, y1, ldy);
            c->mm_q8_0(blk, ld, nw, xq, (size_t)K / 32, nx, K, y2, ldy);
        } else if (t == 1) {
            k->mm_q4_0(blk, ld, nw, xq, (size_t)K / 32, nx, K, y1, ldy);
            c->mm_q4_0(blk, ld, nw, xq, (size_t)K / 32, nx, K, y2, ldy);
        } else {
            k->mm_q4_k(blk, ld, nw, xk, (size_t)K / 256, nx, K, y1, ldy);
            c->mm_q4_k(blk, ld, nw, xk, (size_t)K / 256, nx, K, y2, ldy);
        }
        int ok = 1;
        for (int j = 0; j < nx; j++)
            for (size_t i = 0; i < ldy; i++) {
                float a = y1[(size_t)j * ldy + i], b = y2[(size_t)j * ldy + i];
                ok &= i < (size_t)nw ? close_rel(a, b, 1e-5f, 1e-4f) : (a == -7.0f && b == -7.0f);
            }
        CHECK_MSG(ok, "%s mm type %u K=%lld nw=%d nx=%d", isa, types[t], (long long)K, nw, nx);
    }
    free(blk);
    free(y1);
    free(y2);
    free(x);
    free(xq);
    free(xk);
    free(xk2);
}

/* Repacked 8-row groups: the C reference on the repacked layout gives the
 * same floats as the C multi-row kernels on the original rows (exact), and
 * table k's kernels agree with it within float rounding. */
static void compare_x8(const char *isa, const cpu_kernels *k, int64_t K, int ng, int nx)
{
    const cpu_kernels *c = &cpu_kernels_c;
    int nw = 8 * ng;
    float *x = malloc((size_t)(K * nx) * 4);
    for (int64_t i = 0; i < K * nx; i++)
        x[i] = frand() * 2.0f;
    cpu_q8 *xq = malloc((size_t)(K / 32 * nx) * sizeof *xq);
    int32_t *xs = malloc((size_t)(K / 32 * nx) * sizeof *xs);
    cpu_q8k *xk = malloc((size_t)(K / 256 * nx) * sizeof *xk);
    c->quant_q8(x, xq, K * nx);
    c->quant_q8k(x, xk, K * nx);
    cpu_q8_sums(xq, xs, K / 32 * nx);
    size_t ld = (size_t)(K / 32 + 1) * 34; /* padded rows, big enough for every format */
    uint8_t *blk = malloc(ld * (size_t)nw), *pk = malloc((size_t)(K / 32) * 272 * (size_t)ng);
    size_t ldy = (size_t)nw + 3;
    float *y0 = malloc(ldy * (size_t)nx * 4), *y1 = malloc(ldy * (size_t)nx * 4), *y2 = malloc(ldy * (size_t)nx * 4);
    static const uint32_t types[] = {TSR_DTYPE_Q4_0, TSR_DTYPE_Q4_K, TSR_DTYPE_Q8_0};
    static const int fmts[] = {CPU_X8_Q4_0, CPU_X8_Q4_K, CPU_X8_Q8_0};
    for (int t = 0; t < 3; t++) {
        for (int i = 0; i < nw; i++)
            make_blocks(types[t], blk + (size_t)i * ld, K);
        cpu_repack_x8(fmts[t], blk, ld, K, 0, ng, pk);
        for (size_t i = 0; i < ldy * (size_t)nx; i++)
            y0[i] = y1[i] = y2[i] = -7.0f;
        if (t == 0) {
            c->mm_q4_0(blk, ld, nw, xq, (size_t)K / 32, nx, K, y0, ldy);
            c->mm_q4_0x8(pk, ng, K, xq, xs, (size_t)K / 32, nx, y1, ldy);
            k->mm_q4_0x8(pk, ng, K, xq, xs, (size_t)K / 32, nx, y2, ldy);
        } else if (t == 1) {
            c->mm_q4_k(blk, ld, nw, xk, (size_t)K / 256, nx, K, y0, ldy);
            c->mm_q4_kx8(pk, ng, K, xk, (size_t)K / 256, nx, y1, ldy);
            k->mm_q4_kx8(pk, ng, K, xk, (size_t)K / 256, nx, y2, ldy);
        } else {
            c->mm_q8_0(blk, ld, nw, xq, (size_t)K / 32, nx, K, y0, ldy);
            c->mm_q8_0x8(pk, ng, K, xq, (size_t)K / 32, nx, y1, ldy);
            k->mm_q8_0x8(pk, ng, K, xq, (size_t)K / 32, nx, y2, ldy);
        }
        int exact = 1, ok = 1;
        for (int j = 0; j < nx; j++)
            for (size_t i = 0; i < ldy; i++) {
                size_t o = (size_t)j * ldy + i;
                exact &= y0[o] == y1[o];
                ok &= i < (size_t)nw ? close_rel(y2[o], y1[o], 1e-5f, 1e-4f) : y2[o] == -7.0f;
            }
        CHECK_MSG(exact, "c x8 type %u vs original rows K=%lld ng=%d nx=%d", types[t], (long long)K, ng, nx);
        CHECK_MSG(ok, "%s x8 type %u K=%lld ng=%d nx=%d", isa, types[t], (long long)K, ng, nx);
    }
    free(blk);
    free(pk);
    free(y0);
    free(y1);
    free(y2);
    free(x);
    free(xq);
    free(xs);
    free(xk);
}

static void compare(const char *isa, const cpu_kernels *k)
{
    const cpu_kernels *c = &cpu_kernels_c;
    for (int rep = 0; rep < 30; rep++) {
        int64_t n = 32 * (1 + rnd() % 40) + (rep % 3 == 0 ? 0 : rnd() % 31);
        int64_t nq = n >= 256 ? n / 256 * 256 : 256;
        float *a = malloc((size_t)(n + nq) * 4), *b = malloc((size_t)(n + nq) * 4);
        uint16_t *h = malloc((size_t)n * 2), *bf = malloc((size_t)n * 2);
        for (int64_t i = 0; i < n + nq; i++) {
            a[i] = frand();
            b[i] = frand();
        }
        for (int64_t i = 0; i < n; i++) {
            h[i] = f16_of(a[i] == 0 ? 0.5f : a[i]);
            uint32_t u;
            memcpy(&u, &a[i], 4);
            bf[i] = (uint16_t)(u >> 16);
        }
        /* summation order differs: absolute slack grows with n (|terms| <= 1) */
        CHECK_MSG(close_rel(k->dot_f32(a, b, n), c->dot_f32(a, b, n), 1e-5f, 2e-7f * (float)n), "%s dot_f32 n=%lld", isa, (long long)n);
        CHECK_MSG(close_rel(k->dot_f16(h, b, n), c->dot_f16(h, b, n), 1e-5f, 2e-7f * (float)n), "%s dot_f16 n=%lld: %.9g vs %.9g", isa, (long long)n, k->dot_f16(h, b, n), c->dot_f16(h, b, n));
        CHECK_MSG(close_rel(k->dot_bf16(bf, b, n), c->dot_bf16(bf, b, n), 1e-5f, 2e-7f * (float)n), "%s dot_bf16", isa);
        float *y1 = malloc((size_t)n * 4), *y2 = malloc((size_t)n * 4);
        k->f16_to_f32(h, y1, n);
        c->f16_to_f32(h, y2, n);
        CHECK_MSG(!memcmp(y1, y2, (size_t)n * 4), "%s f16_to_f32", isa);
        k->bf16_to_f32(bf, y1, n);
        c->bf16_to_f32(bf, y2, n);
        CHECK_MSG(!memcmp(y1, y2, (size_t)n * 4), "%s bf16_to_f32", isa);
        free(y1);
        free(y2);
        /* gemm block: K = n/8, 9 weight rows x 7 x rows */
        int64_t K = n / 8 > 0 ? n / 8 : 1;
        float g1[63], g2[63];
        k->gemm_f32(a, (size_t)K, 9, b, (size_t)K, 7, K, g1, 9);
        c->gemm_f32(a, (size_t)K, 9, b, (size_t)K, 7, K, g2, 9);
        for (int i = 0; i < 63; i++)
            CHECK_MSG(close_rel(g1[i], g2[i], 1e-5f, 1e-5f), "%s gemm_f32 K=%lld [%d]", isa, (long long)K, i);
        for (int i = 0; i < 63; i++)
            g1[i] = g2[i] = (float)i;
        k->gemm_f32_acc(a, (size_t)K, 9, b, (size_t)K, 7, K, g1, 9);
        c->gemm_f32_acc(a, (size_t)K, 9, b, (size_t)K, 7, K, g2, 9);
        for (int i = 0; i < 63; i++)
            CHECK_MSG(close_rel(g1[i], g2[i], 1e-5f, 1e-5f), "%s gemm_f32_acc K=%lld [%d]", isa, (long long)K, i);
        /* quantized paths on nq values */
        cpu_q8 *q1 = malloc((size_t)(nq / 32) * sizeof *q1), *q2 = malloc((size_t)(nq / 32) * sizeof *q2);
        k->quant_q8(b + n, q1, nq);
        c->quant_q8(b + n, q2, nq);
        int same = 1;
        for (int64_t i = 0; i < nq / 32; i++)
            same &= q1[i].d == q2[i].d && close_rel(q1[i].s, q2[i].s, 1e-6f, 1e-7f) &&
                    !memcmp(q1[i].qs, q2[i].qs, 32);
        CHECK_MSG(same, "%s quant_q8", isa);
        uint8_t *blk = malloc((size_t)(nq / 32) * 34);
        make_blocks(TSR_DTYPE_Q8_0, blk, nq);
        CHECK_MSG(close_rel(k->dot_q8_0(blk, q2, nq), c->dot_q8_0(blk, q2, nq), 1e-5f, dot_mag(0, blk, q2, nq) * 1e-6f),
                  "%s dot_q8_0", isa);
        make_blocks(TSR_DTYPE_Q4_0, blk, nq);
        CHECK_MSG(close_rel(k->dot_q4_0(blk, q2, nq), c->dot_q4_0(blk, q2, nq), 1e-5f, dot_mag(1, blk, q2, nq) * 1e-6f),
                  "%s dot_q4_0", isa);
        make_blocks(TSR_DTYPE_Q4_K, blk, nq);
        CHECK_MSG(close_rel(k->dot_q4_k(blk, q2, nq), c->dot_q4_k(blk, q2, nq), 1e-4f, 1e-5f), "%s dot_q4_k", isa);
        free(blk);
        free(q1);
        free(q2);
        free(a);
        free(b);
        free(h);
        free(bf);
    }
}

/* Prefill GEMM (kernels/gemm-*.c): every variant against plain double dot
 * products of the unpacked rows, on odd shapes (partial tiles, K not a
 * multiple of the slice), with canaries around the written block. */
static void compare_gemm_packed(const char *isa, const cpu_kernels *k, int nw, int nx, int64_t K)
{
    size_t ldx = (size_t)K + 3, ldy = (size_t)nw + 5, ldw32 = (size_t)K + 1;
    float *x = malloc((size_t)nx * ldx * 4), *wf = malloc((size_t)nw * ldw32 * 4);
    float *wv = malloc((size_t)nw * (size_t)K * 4); /* the values each format holds */
    uint16_t *w16 = malloc((size_t)nw * ldw32 * 2);
    float *xp = malloc(cpu_gemm_rows_padded(nx) * (size_t)K * 4);
    float *wp = aligned_alloc(64, CPU_GEMM_WP_FLOATS * 4);
    float *y = malloc(((size_t)nx + 1) * ldy * 4);
    for (size_t i = 0; i < (size_t)nx * ldx; i++)
        x[i] = frand();
    int ng = (nx + CPU_GEMM_MR - 1) / CPU_GEMM_MR;
    /* packing in two pieces, as the threads do */
    cpu_gemm_pack_x(x, ldx, nx, K, 0, ng / 2, xp);
    cpu_gemm_pack_x(x, ldx, nx, K, ng / 2, ng, xp);
    for (int wt = CPU_GEMM_F32; wt <= CPU_GEMM_BF16; wt++) {
        for (int i = 0; i < nw; i++)
            for (int64_t kk = 0; kk < K; kk++) {
                float a = frand();
                size_t at = (size_t)i * ldw32 + (size_t)kk;
                uint32_t u;
                memcpy(&u, &a, 4);
                wf[at] = a;
                w16[at] = wt == CPU_GEMM_F16 ? f16_of(a) : (uint16_t)(u >> 16);
                wv[(size_t)i * (size_t)K + (size_t)kk] =
                    wt == CPU_GEMM_F32 ? a : wt == CPU_GEMM_F16 ? cpu_f16_to_f32(w16[at]) : cpu_bf16_to_f32(w16[at]);
            }
        for (size_t i = 0; i < ((size_t)nx + 1) * ldy; i++)
            y[i] = 1234.5f;
        const void *w = wt == CPU_GEMM_F32 ? (const void *)wf : (const void *)w16;
        k->gemm_packed(wt, w, ldw32 * (wt == CPU_GEMM_F32 ? 4 : 2), nw, xp, nx, K, y, ldy, wp);
        int bad = 0;
        for (int j = 0; j < nx + 1; j++)
            for (size_t i = 0; i < ldy; i++) {
                float got = y[(size_t)j * ldy + i];
                if (j < nx && i < (size_t)nw) {
                    float want = dot_plain(wv + i * (size_t)K, x + (size_t)j * ldx, K);
                    bad += !close_rel(got, want, 1e-5f, 2e-6f * (float)K);
                } else {
                    bad += got != 1234.5f;
                }
            }
        CHECK_MSG(!bad, "%s gemm_packed wtype %d nw=%d nx=%d K=%lld: %d wrong", isa, wt, nw, nx, (long long)K, bad);
    }
    free(x);
    free(wf);
    free(wv);
    free(w16);
    free(xp);
    free(wp);
    free(y);
}

/* Decode GEMV (kernels/gemm-*.c): every variant against plain double dot
 * products, 1-5 tokens, row counts that leave partial groups of 4 */
static void compare_gemv(const char *isa, const cpu_kernels *k, int nw, int nx, int64_t K)
{
    size_t ldx = (size_t)K + 2, ldy = (size_t)nw + 3, ldw = (size_t)K + 5;
    float *x = malloc((size_t)nx * ldx * 4), *wf = malloc((size_t)nw * ldw * 4);
    float *wv = malloc((size_t)nw * (size_t)K * 4);
    uint16_t *w16 = malloc((size_t)nw * ldw * 2);
    float *y = malloc(((size_t)nx + 1) * ldy * 4);
    for (size_t i = 0; i < (size_t)nx * ldx; i++)
        x[i] = frand();
    for (int wt = CPU_GEMM_F32; wt <= CPU_GEMM_BF16; wt++) {
        for (int i = 0; i < nw; i++)
            for (int64_t kk = 0; kk < K; kk++) {
                float a = frand();
                size_t at = (size_t)i * ldw + (size_t)kk;
                uint32_t u;
                memcpy(&u, &a, 4);
                wf[at] = a;
                w16[at] = wt == CPU_GEMM_F16 ? f16_of(a) : (uint16_t)(u >> 16);
                wv[(size_t)i * (size_t)K + (size_t)kk] =
                    wt == CPU_GEMM_F32 ? a : wt == CPU_GEMM_F16 ? cpu_f16_to_f32(w16[at]) : cpu_bf16_to_f32(w16[at]);
            }
        for (size_t i = 0; i < ((size_t)nx + 1) * ldy; i++)
            y[i] = -77.0f;
        const void *w = wt == CPU_GEMM_F32 ? (const void *)wf : (const void *)w16;
        k->gemv(wt, w, ldw * (wt == CPU_GEMM_F32 ? 4 : 2), nw, x, ldx, nx, K, y, ldy);
        int bad = 0;
        for (int j = 0; j < nx + 1; j++)
            for (size_t i = 0; i < ldy; i++) {
                float got = y[(size_t)j * ldy + i];
                if (j < nx && i < (size_t)nw)
                    bad += !close_rel(got, dot_plain(wv + i * (size_t)K, x + (size_t)j * ldx, K), 1e-5f, 2e-6f * (float)K);
                else
                    bad += got != -77.0f;
            }
        CHECK_MSG(!bad, "%s gemv wtype %d nw=%d nx=%d K=%lld: %d wrong", isa, wt, nw, nx, (long long)K, bad);
    }
    free(x);
    free(wf);
    free(wv);
    free(w16);
    free(y);
}

static void compare_gemm_shapes(const char *isa, const cpu_kernels *k)
{
    static const int shapes[][3] = {{16, 6, 256}, {64, 13, 300}, {5, 1, 7}, {33, 7, 513},
                                    {64, 20, 1024}, {48, 12, 8}, {1, 4, 1}, {31, 17, 777}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        compare_gemm_packed(isa, k, shapes[s][0], shapes[s][1], shapes[s][2]);
    static const int gv[][3] = {{4, 1, 64}, {7, 1, 100}, {9, 2, 256}, {13, 3, 37}, {1, 5, 8},
                                {32, 4, 2048}, {3, 1, 3}};
    for (size_t s = 0; s < sizeof gv / sizeof gv[0]; s++)
        compare_gemv(isa, k, gv[s][0], gv[s][1], gv[s][2]);
}

/* The attention tile kernel against attention written out in double
 * precision (an independent reference, eager attention's definition):
 * several head sizes (36 runs the C fallback in the AVX2 table), up to
 * CPU_ATT_MAXR rows with their own causal ranges, sliding-window starts,
 * rows without keys, soft-capping, strided K/V rows and scores large
 * enough that most exponentials underflow. */
static void compare_attend(const char *isa, const cpu_kernels *k)
{
    static const int cases[][5] = {/* hd, R, nkeys, cap, big */
                                   {64, 16, 200, 0, 0}, {64, 8, 1, 0, 0},   {128, 5, 77, 0, 0},
                                   {96, 3, 33, 1, 0},   {80, 16, 64, 0, 1}, {40, 7, 19, 0, 0}, {36, 4, 10, 1, 0},
                                   {8, 1, 9, 0, 0},     {64, 13, 300, 1, 1}, {64, 24, 513, 0, 0},
                                   {128, 20, 130, 0, 1}, {72, 23, 70, 1, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t hd = cases[c][0], nk = cases[c][2];
        int R = cases[c][1];
        size_t ld = (size_t)hd * 3; /* three KV heads interleaved, as in the cache */
        float *kv = malloc(sizeof(float) * ld * (size_t)nk * 2);
        float *q = malloc(sizeof(float) * (size_t)hd * (size_t)R);
        float *out = malloc(sizeof(float) * (size_t)hd * (size_t)R);
        float *work = aligned_alloc(32, (cpu_att_work_floats(R, hd, nk) * sizeof(float) + 31) / 32 * 32);
        for (size_t i = 0; i < ld * (size_t)nk * 2; i++)
            kv[i] = frand();
        for (int64_t i = 0; i < hd * R; i++)
            q[i] = frand() * (cases[c][4] ? 20.0f : 1.0f);
        cpu_att a;
        a.R = R;
        a.hd = hd;
        a.scale = 1.0f / sqrtf((float)hd);
        a.cap = cases[c][3] ? 2.5f : 0.0f;
        a.k = kv + hd;              /* the middle head */
        a.v = kv + ld * (size_t)nk + hd;
        a.ldk = a.ldv = ld;
        a.work = work;
        for (int r = 0; r < R; r++) {
            a.q[r] = q + r * hd;
            a.out[r] = out + r * hd;
            a.hi[r] = nk - 1 - (r * 7) % (nk < 5 ? 1 : 5);
            a.lo[r] = r % 4 == 3 ? a.hi[r] / 2 : 0;  /* a sliding window */
            if (r == 2 && R > 4)
                a.lo[r] = a.hi[r] + 1;                 /* no keys */
        }
        k->attend(&a);
        int bad = 0;
        double worst = 0;
        for (int r = 0; r < R; r++) {
            double ref[128] = {0}, wsum = 0, mx = -1e300;
            double *sc = malloc(sizeof(double) * (size_t)nk);
            for (int64_t j = a.lo[r]; j <= a.hi[r]; j++) {
                double d = 0;
                for (int64_t i = 0; i < hd; i++)
                    d += (double)a.q[r][i] * a.k[(size_t)j * ld + (size_t)i];
                d *= a.scale;
                if (a.cap > 0)
                    d = a.cap * tanh(d / a.cap);
                sc[j] = d;
                mx = d > mx ? d : mx;
            }
            for (int64_t j = a.lo[r]; j <= a.hi[r]; j++)
                wsum += sc[j] = exp(sc[j] - mx);
            for (int64_t j = a.lo[r]; j <= a.hi[r]; j++)
                for (int64_t i = 0; i < hd; i++)
                    ref[i] += sc[j] / wsum * a.v[(size_t)j * ld + (size_t)i];
            free(sc);
            for (int64_t i = 0; i < hd; i++) {
                double e = fabs(ref[i] - a.out[r][i]);
                worst = e > worst ? e : worst;
                bad += e > 2e-5 + 2e-5 * fabs(ref[i]);
            }
        }
        CHECK_MSG(bad == 0, "%s attend hd %lld R %d keys %lld: %d values off (max error %.3g)", isa,
                  (long long)hd, R, (long long)nk, bad, worst);
        free(kv);
        free(q);
        free(out);
        free(work);
    }
}

/* SiLU / SwiGLU against x / (1 + e^-x) in double, over [-100, 100] */
static void compare_silu(const char *isa, const cpu_kernels *k)
{
    enum { N = 1003 };
    static float x[N], u[N], y[N], y2[N];
    for (int i = 0; i < N; i++) {
        x[i] = i < 20 ? (float)(i - 10) * 10.0f : frand() * 12.0f;
        u[i] = frand();
    }
    k->silu_mul(x, u, y, N);
    k->silu_mul(x, NULL, y2, N);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        double v = (double)x[i] / (1.0 + exp(-(double)x[i]));
        bad += !close_rel(y[i], (float)(v * u[i]), 1e-6f, 1e-30f);
        bad += !close_rel(y2[i], (float)v, 1e-6f, 1e-30f);
    }
    CHECK_MSG(bad == 0, "%s silu_mul: %d values off", isa, bad);
}

int main(void)
{
    cpu_features f;
    cpu_features_detect(&f);
    printf("cpu features: avx2 %d fma %d f16c %d avx512f %d avx512vnni %d avx512bf16 %d amx_int8 %d\n",
           f.avx2, f.fma, f.f16c, f.avx512f, f.avx512vnni, f.avx512bf16, f.amx_int8);
    test_reference_blocks();
    test_reference_q8k();
    test_reference_mm();
    static const char *isas[] = {"c", "avx2"};
    for (int i = 0; i < 2; i++) {
        cpu_kernels k;
        if (!cpu_kernels_get(isas[i], &k)) {
            printf("SKIP %s: not built for or not supported by this CPU\n", isas[i]);
            continue;
        }
        printf("checking %s\n", isas[i]);
        compare(isas[i], &k);
        static const int shapes[][3] = {{256, 1, 1}, {512, 4, 1}, {768, 9, 1}, {1024, 9, 2},
                                        {256, 8, 3}, {512, 7, 7}, {2048, 13, 5}, {256, 1, 4}};
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            compare_mm(isas[i], &k, shapes[s][0], shapes[s][1], shapes[s][2]);
        static const int x8[][3] = {{256, 1, 1}, {512, 2, 2}, {768, 1, 3}, {1024, 3, 4},
                                    {256, 2, 5}, {2048, 1, 9}, {512, 1, 1}};
        for (size_t s = 0; s < sizeof x8 / sizeof x8[0]; s++)
            compare_x8(isas[i], &k, x8[s][0], x8[s][1], x8[s][2]);
        compare_gemm_shapes(isas[i], &k);
        compare_attend(isas[i], &k);
        compare_silu(isas[i], &k);
    }
    cpu_kernels sel;
    cpu_kernels_select(&sel);
    printf("selected: %s\n", sel.isa);
    return tsr_test_report("cpu_kernels");
}
