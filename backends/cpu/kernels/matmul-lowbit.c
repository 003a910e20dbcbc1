/* backends/cpu/kernels/matmul-lowbit.c - native MUL_MAT for the quantizer
 * formats TSR_DTYPE_INT_GROUP (GPTQ, AWQ, HQQ) and TSR_DTYPE_CODEBOOK4
 * (bitsandbytes NF4/FP4): y = x W^T + b with W [K, N], x [K, M] f32.
 * Threads split the output features N.
 *  - decode (M < 4): each weight row meets the 1-3 activation rows in one
 *    pass over its codes (lowbit.h's dot kernels: codes unpacked in
 *    registers, a group's sum scaled once);
 *  - prefill (M >= 4): blocks of LB_ROWS weight rows x LB_KC columns are
 *    dequantized to f32 on the stack and multiplied with tiles of x by the
 *    main table's gemm_f32 / gemm_f32_acc, so the dequantization is paid
 *    once per weight per LB_MC activation rows.
 * The common layouts (INT_GROUP axis 1 without g_idx, groups a multiple of
 * 8, codes of 1/2/3/4/8 bits; CODEBOOK4 with K and the block a multiple of
 * 8) run the kernel table of lowbit.h; the others (act-order g_idx, HQQ
 * axis 0, groups over the flattened weight, 5-7 bits) are dequantized here
 * element by element, as core/formats.c defines them, and take the same
 * two paths.
 * CODEBOOK4 with a 16-bit compute_dtype (bitsandbytes' bnb_4bit_compute_dtype,
 * tessera/plugin/formats.h): x is rounded to it once per call (scratch slot
 * 1), every dequantized weight slice and the bias too, sums stay float32 and
 * each output is rounded once; decode then takes the dequantize-a-slice path
 * (the dot kernels never see the weight as floats to round).
 * INT_GROUP with a 16-bit weight_dtype (GPTQModel's fp16 dequantization):
 * only the dequantized weight slices are rounded, x and the outputs stay
 * float32; decode takes the same dequantize-a-slice path. */
#include <string.h>
#include <tessera/plugin/formats.h>
#include "../cpu.h"
#include "lowbit.h"

#ifndef LB_KC
#define LB_KC 512   /* columns of a dequantized block (prefill) and slice (decode) */
#endif
#ifndef LB_ROWS
#define LB_ROWS 16  /* weight rows of a dequantized block (prefill) */
#endif
#ifndef LB_MX
#define LB_MX 48    /* activation rows per gemm call (prefill) */
#endif
#ifndef LB_MC
#define LB_MC 256   /* activation rows per pass over the weights (prefill) */
#endif

typedef struct lb_job {
    cpu_ctx *c;
    tsr_tensor *t;
    const cpu_lowbit_kernels *lk;
    const tsr_fmt_int_group *ig; /* INT_GROUP, else CODEBOOK4 */
    const tsr_fmt_codebook4 *cb;
    int fast;                    /* the layout the lowbit.h kernels take */
    int uniform;                 /* rows of x and y evenly spaced */
    int64_t K, N, M;
    uint32_t cdt;                /* CODEBOOK4 compute dtype (F32: none) */
    uint32_t wdt;                /* weights rounded to: cdt, or INT_GROUP weight_dtype */
    const float *xr;             /* cdt F16/BF16: x rounded, M rows of K */
} lb_job;

_Static_assert(TSR_DTYPE_F16 == 1 && TSR_DTYPE_BF16 == 2, "cpu_round_to's dtype numbers");

/* row m of x as the kernels take it (rounded to cdt when asked) */
static const float *lb_x_row(const lb_job *j, int64_t m)
{
    return j->xr ? j->xr + (size_t)m * (size_t)j->K : cpu_x_row(j->t->src[1], m);
}

static size_t lb_ldx(const lb_job *j)
{
    return j->xr ? (size_t)j->K : j->t->src[1]->nb[1] / sizeof(float);
}

/* code k of row q: `bits` bits from bit k*bits, little-endian */
static uint32_t code_at(const uint8_t *q, uint32_t bits, int64_t k)
{
    int64_t bit = k * (int64_t)bits;
    uint32_t off = (uint32_t)(bit & 7), v = q[bit >> 3] >> off;
    if (off + bits > 8)
        v |= (uint32_t)q[(bit >> 3) + 1] << (8 - off);
    return v & ((1u << bits) - 1u);
}

/* dst[i] = W[n][k0 + i], i < kc: any layout of both formats */
static void deq_slice(const lb_job *j, int64_t n, int64_t k0, int64_t kc, float *dst)
{
    const tsr_tensor *w = j->t->src[0];
    const uint8_t *base = w->data;
    int64_t K = j->K;
    if (j->ig) {
        const tsr_fmt_int_group *f = j->ig;
        const uint8_t *q = base + (size_t)n * f->row_bytes;
        if (j->fast) {
            j->lk->deq_int_group(q, (int)f->bits, k0, kc, f->group_size,
                                 f->scale + n * f->n_groups_per_row, f->zero + n * f->n_groups_per_row,
                                 dst);
            return;
        }
        int64_t C = f->group_size > 0 ? j->N * K / f->group_size : 1;
        for (int64_t k = k0; k < k0 + kc; k++) {
            int64_t g;
            if (f->axis == 0)
                g = (n * K + k) % C;
            else if (f->n_groups_per_row == 0)
                g = (n * K + k) / f->group_size;
            else
                g = n * f->n_groups_per_row + (f->g_idx ? f->g_idx[k] : k / f->group_size);
            dst[k - k0] = ((float)code_at(q, f->bits, k) - f->zero[g]) * f->scale[g];
        }
        return;
    }
    const tsr_fmt_codebook4 *f = j->cb;
    if (j->fast) {
        j->lk->deq_codebook4(base + (size_t)(n * K / 2), k0, kc, n * K, f->block_size, f->code,
                             f->absmax, dst);
        return;
    }
    for (int64_t k = k0; k < k0 + kc; k++) {
        int64_t i = n * K + k;
        uint8_t b = base[i >> 1];
        dst[k - k0] = f->code[(i & 1) ? (b & 15u) : (b >> 4)] * f->absmax[i / f->block_size];
    }
}

/* out[m] = W[n] . x[m0 + m], m < nx (rows of x ldx floats apart) */
static void row_dot(const lb_job *j, int64_t n, const float *x, size_t ldx, int nx, float *out)
{
    const tsr_tensor *w = j->t->src[0];
    const uint8_t *base = w->data;
    int64_t K = j->K;
    if (j->fast && j->ig && !j->wdt) {
        const tsr_fmt_int_group *f = j->ig;
        j->lk->dot_int_group(base + (size_t)n * f->row_bytes, (int)f->bits, K, f->group_size,
                             f->scale + n * f->n_groups_per_row, f->zero + n * f->n_groups_per_row,
                             x, ldx, nx, out);
        return;
    }
    if (j->fast && !j->ig && !j->wdt) {
        const tsr_fmt_codebook4 *f = j->cb;
        j->lk->dot_codebook4(base + (size_t)(n * K / 2), K, n * K, f->block_size, f->code, f->absmax,
                             x, ldx, nx, out);
        return;
    }
    _Alignas(64) float buf[LB_KC];
    for (int m = 0; m < nx; m++)
        out[m] = 0.0f;
    for (int64_t k0 = 0; k0 < K; k0 += LB_KC) {
        int64_t kc = k0 + LB_KC < K ? LB_KC : K - k0;
        deq_slice(j, n, k0, kc, buf);
        if (j->wdt)
            cpu_round_row(j->wdt, buf, kc);
        for (int m = 0; m < nx; m++)
            out[m] += j->c->k.dot_f32(buf, x + (size_t)m * ldx + (size_t)k0, kc);
    }
}

static void decode_task(void *ctx, int ith, int nth)
{
    lb_job *j = ctx;
    tsr_tensor *t = j->t;
    const tsr_tensor *bias = t->src[2];
    int64_t n0, n1;
    cpu_split(j->N, ith, nth, &n0, &n1);
    size_t ldx = lb_ldx(j);
    for (int64_t n = n0; n < n1; n++) {
        float out[CPU_LOWBIT_MAX_NX], bv = cpu_round_to(j->cdt, cpu_bias_at(bias, n));
        if (j->uniform) {
            row_dot(j, n, lb_x_row(j, 0), ldx, (int)j->M, out);
            for (int64_t m = 0; m < j->M; m++)
                cpu_y_row(t, m)[n] = cpu_round_to(j->cdt, out[m] + bv);
        } else {
            for (int64_t m = 0; m < j->M; m++) {
                row_dot(j, n, lb_x_row(j, m), ldx, 1, out);
                cpu_y_row(t, m)[n] = cpu_round_to(j->cdt, out[0] + bv);
            }
        }
    }
}

static void prefill_task(void *ctx, int ith, int nth)
{
    lb_job *j = ctx;
    tsr_tensor *t = j->t;
    const tsr_tensor *bias = t->src[2];
    const cpu_kernels *k = &j->c->k;
    int64_t n0, n1, K = j->K, M = j->M;
    cpu_split(j->N, ith, nth, &n0, &n1);
    size_t ldx = lb_ldx(j), ldy = t->nb[1] / sizeof(float);
    _Alignas(64) float buf[LB_ROWS * LB_KC];
    /* activation rows in chunks that stay in cache across the weight
     * blocks (a long prompt would stream x from memory once per block
     * otherwise); the weights are dequantized again for every chunk */
    for (int64_t mc = 0; mc < M; mc += LB_MC) {
        int64_t me = mc + LB_MC < M ? mc + LB_MC : M;
        for (int64_t nb = n0; nb < n1; nb += LB_ROWS) {
            int nw = (int)(nb + LB_ROWS < n1 ? LB_ROWS : n1 - nb);
            for (int64_t k0 = 0; k0 < K; k0 += LB_KC) {
                int64_t kc = k0 + LB_KC < K ? LB_KC : K - k0;
                for (int i = 0; i < nw; i++) {
                    deq_slice(j, nb + i, k0, kc, buf + (size_t)i * LB_KC);
                    if (j->wdt)
                        cpu_round_row(j->wdt, buf + (size_t)i * LB_KC, kc);
                }
                void (*gemm)(const float *, size_t, int, const float *, size_t, int, int64_t,
                             float *, size_t) = k0 ? k->gemm_f32_acc : k->gemm_f32;
                if (j->uniform) {
                    for (int64_t m0 = mc; m0 < me; m0 += LB_MX) {
                        int nx = (int)(m0 + LB_MX < me ? LB_MX : me - m0);
                        gemm(buf, LB_KC, nw, lb_x_row(j, m0) + k0, ldx, nx, kc, cpu_y_row(t, m0) + nb, ldy);
                    }
                } else {
                    for (int64_t m = mc; m < me; m++)
                        gemm(buf, LB_KC, nw, lb_x_row(j, m) + k0, ldx, 1, kc, cpu_y_row(t, m) + nb, ldy);
                }
            }
            if (bias || j->cdt)
                for (int64_t m = mc; m < me; m++)
                    for (int i = 0; i < nw; i++) {
                        float *y = cpu_y_row(t, m) + nb + i;
                        *y = cpu_round_to(j->cdt, *y + cpu_round_to(j->cdt, cpu_bias_at(bias, nb + i)));
                    }
        }
    }
}

const float *cpu_round_x(cpu_ctx *c, const tsr_tensor *x, int64_t M, int64_t K, uint32_t dt)
{
    float *xr = cpu_scratch(c, 1, (size_t)(M * K) * sizeof(float));
    if (!xr)
        return NULL;
    for (int64_t m = 0; m < M; m++) {
        const float *src = cpu_x_row(x, m);
        for (int64_t i = 0; i < K; i++)
            xr[m * K + i] = cpu_round_to(dt, src[i]);
    }
    return xr;
}

int cpu_op_mul_mat_lowbit(cpu_ctx *c, tsr_tensor *t)
{
    const tsr_tensor *w = t->src[0], *x = t->src[1];
    if (!w->format_data || x->dtype != TSR_DTYPE_F32 || t->dtype != TSR_DTYPE_F32)
        return -1;
    lb_job j = {c, t, cpu_lowbit_select(c->k.isa), NULL, NULL, 0, 0, w->ne[0], w->ne[1],
                x->ne[1] * x->ne[2], TSR_DTYPE_F32, TSR_DTYPE_F32, NULL};
    if (j.K <= 0 || j.N <= 0 || j.M <= 0)
        return j.M == 0 || j.N == 0 ? 0 : -1;
    if (w->dtype == TSR_DTYPE_INT_GROUP) {
        const tsr_fmt_int_group *f = w->format_data;
        if (f->bits < 1 || f->bits > 8 || !f->scale || !f->zero)
            return -1;
        int grouped = f->axis == 1 && f->n_groups_per_row > 0;
        if (!(grouped && f->g_idx) && f->group_size <= 0)
            return -1;
        j.ig = f;
        j.fast = grouped && !f->g_idx && f->group_size % 8 == 0 &&
                 (f->bits <= 4 || f->bits == 8);
        j.wdt = tsr_fmt_int_group_weight_dtype(f);
    } else if (w->dtype == TSR_DTYPE_CODEBOOK4) {
        const tsr_fmt_codebook4 *f = w->format_data;
        if (f->block_size <= 0 || !f->absmax)
            return -1;
        j.cb = f;
        j.fast = j.K % 8 == 0 && f->block_size % 8 == 0;
        j.cdt = j.wdt = tsr_fmt_codebook4_compute_dtype(f);
    } else {
        return -1;
    }
    if (j.cdt != TSR_DTYPE_F32) {
        if (!(j.xr = cpu_round_x(c, x, j.M, j.K, j.cdt)))
            return 1;
    }
    j.uniform = (j.xr || cpu_uniform_rows(x)) && cpu_uniform_rows(t);
    cpu_pool_run(c->pool, j.M < 4 ? decode_task : prefill_task, &j);
    return 0;
}
