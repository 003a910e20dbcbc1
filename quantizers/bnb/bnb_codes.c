/* quantizers/bnb/bnb_codes.c - bitsandbytes' code books and the arithmetic of
 * its CPU quantizers, reproduced operation by operation in float32 so that
 * quantizing here gives the codes bitsandbytes gives (tests/unit/test_bnb.c
 * compares with checkpoints bitsandbytes wrote).
 *
 * Sources (bitsandbytes 0.50.2, read for the facts):
 *   bitsandbytes/functional.py   get_4bit_type (NF4/FP4 tables),
 *                                create_dynamic_map (8-bit dynamic code),
 *                                quantize_4bit (double quantization: offset =
 *                                absmax.mean(), then 8-bit blocks of 256)
 *   bitsandbytes/backends/default/ops.py  quantize_4bit: x * (1/absmax),
 *                                clamp to [-1, 1], bucketize on midpoints
 *   csrc/cpu_ops.cpp, csrc/common.cpp     quantize_cpu / quantize_block:
 *                                x / absmax, nearest code, ties to the lower
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "bnb.h"

/* NormalFloat4: quantiles of N(0, 1) normalised to [-1, 1] (QLoRA). */
const float bnb_nf4_code[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

/* FP4 (1 sign, 2 exponent, 1 mantissa bit, bias 2) in bit-pattern order,
 * divided by its largest magnitude (12) as get_4bit_type does. */
static const float fp4_raw[16] = {0.0f, 0.0625f, 8.0f, 12.0f, 4.0f, 6.0f, 2.0f, 3.0f,
                                  0.0f, -0.0625f, -8.0f, -12.0f, -4.0f, -6.0f, -2.0f, -3.0f};

void bnb_code4(int quant_type, float code[16])
{
    for (int i = 0; i < 16; i++)
        code[i] = quant_type == BNB_NF4 ? bnb_nf4_code[i] : fp4_raw[i] / 12.0f;
}

/* torch.linspace(start, end, steps) in float32: the first half counts up
 * from start, the second half down from end (ATen's RangeFactoriesKernel),
 * and PyTorch's build contracts `start + step * idx` into a fused
 * multiply-add: fmaf reproduces its values bit for bit. */
static float linspace_at(float start, float end, int steps, int i)
{
    float step = (end - start) / (float)(steps - 1);
    return i < steps / 2 ? fmaf(step, (float)i, start) : fmaf(-step, (float)(steps - i - 1), end);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
 * for exponent i = 0..6, 2^i + 1 boundaries linspace(0.1, 1) give 2^i bin
 * means, scaled by 10^(i-6), with both signs; plus 0 and 1; sorted. */
void bnb_dynamic_map(float code[256])
{
    int n = 0;
    for (int i = 0; i < 7; i++) {
        int items = (1 << i) + 1;
        float scale = (float)pow(10.0, (double)(i - 6));
        for (int j = 0; j + 1 < items; j++) {
            float mean = (linspace_at(0.1f, 1.0f, items, j) + linspace_at(0.1f, 1.0f, items, j + 1)) / 2.0f;
            code[n++] = scale * mean;
            code[n++] = -(scale * mean);
        }
    }
    code[n++] = 0.0f;
    code[n++] = 1.0f;
    qsort(code, (size_t)n, sizeof(float), cmp_float);
}

/* One block of 4-bit codes: scaled = clamp(x * (1/absmax), -1, 1); code =
 * number of sorted-code midpoints below scaled (torch.bucketize, right=False),
 * mapped back to the table's bit-pattern order (FP4 is not sorted). */
void bnb_quantize4(int quant_type, const float *x, int64_t n, int64_t blocksize,
                   uint8_t *packed, float *absmax)
{
    float code[16], sorted[16], mid[15];
    int order[16];
    bnb_code4(quant_type, code);
    /* stable argsort of 16 values (insertion sort) */
    for (int i = 0; i < 16; i++) {
        int j = i;
        while (j > 0 && code[order[j - 1]] > code[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (int i = 0; i < 16; i++)
        sorted[i] = code[order[i]];
    for (int i = 0; i < 15; i++)
        mid[i] = (sorted[i] + sorted[i + 1]) / 2.0f;
    memset(packed, 0, (size_t)(n + 1) / 2);
    for (int64_t b0 = 0; b0 < n; b0 += blocksize) {
        int64_t b1 = b0 + blocksize < n ? b0 + blocksize : n;
        float am = 0.0f;
        for (int64_t i = b0; i < b1; i++)
            am = fabsf(x[i]) > am ? fabsf(x[i]) : am;
        absmax[b0 / blocksize] = am;
        float r = 1.0f / (am > 1e-38f ? am : 1e-38f);
        for (int64_t i = b0; i < b1; i++) {
            float s = x[i] * r;
            s = s < -1.0f ? -1.0f : s > 1.0f ? 1.0f : s;
            int q = 0;
            while (q < 15 && mid[q] < s)
                q++;
            uint8_t c = (uint8_t)order[q];
            packed[i >> 1] |= (i & 1) ? c : (uint8_t)(c << 4);
        }
    }
}

/* quantize_blockwise on the CPU (8-bit dynamic code): per block absmax,
 * x / absmax, the nearest code value (ties to the lower index).  The
 * library searches with code[0] forced to -1. */
void bnb_quantize8(const float code_in[256], const float *x, int64_t n, int64_t blocksize,
                   uint8_t *q, float *absmax)
{
    float code[256];
    memcpy(code, code_in, sizeof code);
    code[0] = -1.0f;
    for (int64_t b0 = 0; b0 < n; b0 += blocksize) {
        int64_t b1 = b0 + blocksize < n ? b0 + blocksize : n;
        float am = -INFINITY;
        for (int64_t i = b0; i < b1; i++)
            am = fmaxf(am, fabsf(x[i]));
        absmax[b0 / blocksize] = am;
        for (int64_t i = b0; i < b1; i++) {
            float v = x[i] / am;
            /* largest idx with code[idx] <= v (0 if below all) */
            int lo = 0, hi = 255;
            while (lo < hi) {
                int mid = (lo + hi + 1) / 2;
                if (code[mid] <= v)
                    lo = mid;
                else
                    hi = mid - 1;
            }
            int idx = lo;
            if (idx < 255 && fabsf(v - code[idx + 1]) < fabsf(v - code[idx]))
                idx++;
            q[i] = (uint8_t)idx;
        }
    }
}

/* LLM.int8 row quantization (int8_vectorwise_quant, threshold 0) of one row
 * already rounded to float16: SCB = max |x|; q = round(x * ((1/SCB) * 127)),
 * ties to even (torch.round). */
float bnb_quantize_row8(const float *x16, int64_t K, int8_t *q)
{
    float am = 0.0f;
    for (int64_t k = 0; k < K; k++)
        am = fabsf(x16[k]) > am ? fabsf(x16[k]) : am;
    float s = (1.0f / am) * 127.0f;
    for (int64_t k = 0; k < K; k++)
        q[k] = am > 0.0f ? (int8_t)rintf(x16[k] * s) : 0;
    return am;
}
