/* quantizers/hqq/hqq_solve.c - half-quadratic quantization, as hqq 0.2.8's
 * Quantizer.quantize + optimize_weights_proximal_legacy compute it on CPU
 * (float32), and hqq's BitPack layouts.
 *
 * The proximal solver minimises ||W - dequant(quant(W))||_p^p (p = lp_norm
 * < 1) over the zero point z with the scale s fixed, alternating
 *   W_q = clamp(round(W*s + z), 0, 2^b - 1),  W_r = (W_q - z) / s,
 *   W_e = shrink_p(W - W_r, beta)   (generalised soft threshold),
 *   z   = mean_group(W_q - (W - W_e) * s),   beta *= kappa,
 * and stops at the first iteration whose mean |W - W_r| over the whole
 * tensor does not improve.  Every float op below is one torch op in that
 * code, in the same order; reductions are summed in double (torch sums in
 * float with its own blocking), so a zero can differ by an ulp. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "hqq_internal.h"

/* The group of flat element f (see hqq_internal.h). */
static inline int64_t group_of(int64_t f, int axis, int64_t gs, int64_t C)
{
    return axis == 1 ? f / gs : f % C;
}

/* torch.round: half to even (the default rounding mode). */
static inline float round_even(float x) { return nearbyintf(x); }

static inline float quant1(float w, float s, float z, float maxv)
{
    float t = w * s;
    t = t + z;
    t = round_even(t);
    return t < 0.0f ? 0.0f : (t > maxv ? maxv : t);
}

/* shrink_lp_op: sign(x) * relu(|x| - (1/beta) * |x|^(p-1)). */
static inline float shrink(float x, float inv_beta, float pm1)
{
    float a = fabsf(x);
    float o = a - inv_beta * powf(a, pm1);
    if (!(o > 0.0f))
        o = o < 0.0f || o == 0.0f ? 0.0f : o;   /* clamp_min keeps NaN */
    float sg = x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
    return o * sg;
}

int hqq__quantize(const float *w, int64_t numel, int nbits, int64_t gs, int axis,
                  int optimize, int round_zero, const hqq_opt_params *op,
                  uint8_t *codes, float *scale, float *zero)
{
    int64_t G = numel / gs, C = G;
    float maxv = (float)((1 << nbits) - 1);
    float *mn = malloc((size_t)G * sizeof *mn), *mx = malloc((size_t)G * sizeof *mx);
    double *acc = malloc((size_t)G * sizeof *acc);
    if (!mn || !mx || !acc) {
        free(mn), free(mx), free(acc);
        return -1;
    }
    /* _min/_max along the group axis */
    for (int64_t g = 0; g < G; g++)
        mn[g] = INFINITY, mx[g] = -INFINITY;
    for (int64_t f = 0; f < numel; f++) {
        int64_t g = group_of(f, axis, gs, C);
        if (w[f] < mn[g]) mn[g] = w[f];
        if (w[f] > mx[g]) mx[g] = w[f];
    }
    /* scale = max_v / (max - min) (torch: reciprocal() * max_v), 1 where the
     * range is <= 1e-4, clamped to 2e4; zero = -min * scale, rounded if asked. */
    float *s = scale, *z = zero;   /* s holds the inverse scale until the end */
    for (int64_t g = 0; g < G; g++) {
        float denom = mx[g] - mn[g];
        float sc = (1.0f / denom) * maxv;
        if (fabsf(denom) <= 1e-4f)
            sc = 1.0f;
        if (sc > 2e4f)
            sc = 2e4f;
        s[g] = sc;
        z[g] = -mn[g] * sc;
        if (round_zero)
            z[g] = round_even(z[g]);
    }
    if (optimize) {
        double beta = op->beta, best = INFINITY;
        float pm1 = (float)(op->lp_norm - 1.0);
        for (int it = 0; it < op->iters; it++) {
            /* optimize_weights_proximal_legacy_step */
            float inv_beta = (float)(1.0 / beta);
            double err = 0.0;
            memset(acc, 0, (size_t)G * sizeof *acc);
            for (int64_t f = 0; f < numel; f++) {
                int64_t g = group_of(f, axis, gs, C);
                float wq = quant1(w[f], s[g], z[g], maxv);
                float wr = (wq - z[g]) / s[g];
                float d = w[f] - wr;
                err += fabsf(d);
                float we = shrink(d, inv_beta, pm1);
                float t = w[f] - we;
                t = t * s[g];
                acc[g] += (double)(wq - t);
            }
            for (int64_t g = 0; g < G; g++)
                z[g] = (float)acc[g] / (float)gs;
            beta *= op->kappa;
            /* the error is that of the zero the step started from; the
             * updated zero is kept even when the loop stops */
            float cur = (float)(err / (double)numel);
            if (cur < best)
                best = cur;
            else
                break;
        }
    }
    for (int64_t f = 0; f < numel; f++) {
        int64_t g = group_of(f, axis, gs, C);
        codes[f] = (uint8_t)quant1(w[f], s[g], z[g], maxv);
    }
    for (int64_t g = 0; g < G; g++)   /* meta["scale"] = 1.0 / scale */
        s[g] = 1.0f / s[g];
    free(mn), free(mx), free(acc);
    return 0;
}

/* --- BitPack ------------------------------------------------------------------- */

/* Codes per packed element: 8/nbits in a byte, 10 3-bit codes in an int32. */
static int per_word(int nbits) { return nbits == 3 ? 10 : 8 / nbits; }

int64_t hqq__packed_rows(int nbits, int64_t rows)
{
    int p = per_word(nbits);
    if (nbits == 3)
        return (rows + 9) / 10;
    return rows % p ? -1 : rows / p;
}

size_t hqq__packed_bytes(int nbits, int64_t rows, int64_t cols)
{
    int64_t pr = hqq__packed_rows(nbits, rows);
    if (pr < 0)
        return 0;
    return (size_t)(pr * cols) * (nbits == 3 ? 4u : 1u);
}

/* Slot j (0 = most significant) of packed row i holds reshaped row
 * j * packed_rows + i: W_q[i] = q[i] << (b*(P-1)) | q[i+step] << ... | q[i+(P-1)step]. */
void hqq__pack(int nbits, const uint8_t *codes, int64_t rows, int64_t cols, void *out)
{
    int p = per_word(nbits);
    int64_t pr = hqq__packed_rows(nbits, rows);
    for (int64_t i = 0; i < pr; i++)
        for (int64_t c = 0; c < cols; c++) {
            uint32_t v = 0;
            for (int j = 0; j < p; j++) {
                int64_t r = (int64_t)j * pr + i;
                uint32_t q = r < rows ? codes[r * cols + c] : 0;
                v |= q << (nbits * (p - 1 - j));
            }
            if (nbits == 3) {
                int32_t sv = (int32_t)v;
                memcpy((char *)out + (size_t)(i * cols + c) * 4, &sv, 4);
            } else {
                ((uint8_t *)out)[i * cols + c] = (uint8_t)v;
            }
        }
}

void hqq__unpack(int nbits, const void *packed, int64_t rows, int64_t cols, uint8_t *codes)
{
    int p = per_word(nbits);
    int64_t pr = hqq__packed_rows(nbits, rows);
    uint32_t mask = (1u << nbits) - 1u;
    for (int64_t i = 0; i < pr; i++)
        for (int64_t c = 0; c < cols; c++) {
            uint32_t v;
            if (nbits == 3) {
                int32_t sv;
                memcpy(&sv, (const char *)packed + (size_t)(i * cols + c) * 4, 4);
                v = (uint32_t)sv;
            } else {
                v = ((const uint8_t *)packed)[i * cols + c];
            }
            for (int j = 0; j < p; j++) {
                int64_t r = (int64_t)j * pr + i;
                if (r < rows)
                    codes[r * cols + c] = (uint8_t)((v >> (nbits * (p - 1 - j))) & mask);
            }
        }
}
