/* core/ggml_blocks.c - reference dequantizers and quantizers of GGML block
 * types, written from the block layouts of ggml's ggml-common.h and
 * gguf-py's gguf/quants.py.
 *
 * Every function reads little-endian fields byte by byte (no struct overlay),
 * so it needs no alignment and no packing pragmas.  The arithmetic follows
 * the reference's order of float operations exactly (e.g. (d * sc) * q - m),
 * so results equal gguf-py's bit for bit; core is built in ISO C mode, where
 * GCC does not contract a*b+c into an FMA.
 */
#include <math.h>
#include <string.h>
#include "internal.h"
#include "ggml_blocks.h"
#include "ggml_iq_grids.h"

#define QK 32   /* elements per block of the legacy formats  */
#define QK_K 256 /* elements per super-block of K and IQ formats */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static float h2f(const uint8_t *p) { return tsr__f16_to_f32(rd16(p)); }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* Value maps of the IQ grids (ggml-common.h stores the mapped bytes). */
static const float iq2_map[3] = {8, 25, 43};                      /* 0x08 0x19 0x2b  */
static const float iq3xxs_map[8] = {4, 12, 20, 28, 36, 44, 52, 62};
static const float iq3s_map[8] = {1, 3, 5, 7, 9, 11, 13, 15};
static const float iq1_map[3] = {-1, 0, 1};
#define IQ1S_DELTA 0.125f

/* IQ4_NL's non-linear code book (ggml-common.h kvalues_iq4nl). */
static const int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                         1, 13, 25, 38, 53, 69, 89, 113};

/* Sign patterns of the IQ2/IQ3 formats: 7 stored bits select the signs of
 * the first 7 of 8 values; the 8th is negative iff that makes the number of
 * negative values even (ggml's ksigns_iq2xs table is exactly this). */
static uint8_t ksign(uint32_t i)
{
    uint32_t v = i & 127, par = v;
    par ^= par >> 4;
    par ^= par >> 2;
    par ^= par >> 1;
    return (uint8_t)(v | ((par & 1) << 7));
}

/* -------------------------------------------------------------- plain types */

void tsr__dequantize_row_f32(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void tsr__dequantize_row_f16(const void *src, float *dst, int64_t n)
{
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = h2f(s + 2 * i);
}

void tsr__dequantize_row_bf16(const void *src, float *dst, int64_t n)
{
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = tsr__bf16_to_f32(rd16(s + 2 * i));
}

/* ------------------------------------------------------- legacy 32-element */

/* Q4_0, 18 bytes: d f16 | qs[16]; x[j] = d * (nibble - 8), low nibbles
 * hold elements 0..15, high nibbles 16..31. */
void tsr__dequantize_row_q4_0(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += 18, dst += QK) {
        float d = h2f(b);
        for (int j = 0; j < 16; j++) {
            dst[j] = d * (float)((b[2 + j] & 0xF) - 8);
            dst[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
        }
    }
}

/* Q4_1, 20 bytes: d f16 | m f16 | qs[16]; x = d * nibble + m. */
void tsr__dequantize_row_q4_1(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += 20, dst += QK) {
        float d = h2f(b), m = h2f(b + 2);
        for (int j = 0; j < 16; j++) {
            dst[j] = d * (float)(b[4 + j] & 0xF) + m;
            dst[j + 16] = d * (float)(b[4 + j] >> 4) + m;
        }
    }
}

/* Q5_0, 22 bytes: d f16 | qh u32 (bit j = 5th bit of element j) | qs[16];
 * x = d * (q - 16). */
void tsr__dequantize_row_q5_0(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += 22, dst += QK) {
        float d = h2f(b);
        uint32_t qh = rd32(b + 2);
        for (int j = 0; j < 16; j++) {
            int q0 = (b[6 + j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int q1 = (b[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            dst[j] = d * (float)(q0 - 16);
            dst[j + 16] = d * (float)(q1 - 16);
        }
    }
}

/* Q5_1, 24 bytes: d f16 | m f16 | qh u32 | qs[16]; x = d * q + m. */
void tsr__dequantize_row_q5_1(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += 24, dst += QK) {
        float d = h2f(b), m = h2f(b + 2);
        uint32_t qh = rd32(b + 4);
        for (int j = 0; j < 16; j++) {
            int q0 = (b[8 + j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int q1 = (b[8 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            dst[j] = d * (float)q0 + m;
            dst[j + 16] = d * (float)q1 + m;
        }
    }
}

/* Q8_0, 34 bytes: d f16 | qs int8[32]; x = q * d. */
void tsr__dequantize_row_q8_0(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += 34, dst += QK) {
        float d = h2f(b);
        for (int j = 0; j < QK; j++)
            dst[j] = (float)(int8_t)b[2 + j] * d;
    }
}

/* ------------------------------------------------------------- K-quants */

/* Q2_K, 84 bytes: scales[16] (low nibble scale, high nibble min, one per 16
 * values) | qs[64] (2 bits) | d f16 | dmin f16.  Value e of the block lives in
 * qs[(e/128)*32 + e%32] at bit 2*((e/32)%4); x = d*sc * q - dmin*m. */
void tsr__dequantize_row_q2_k(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 84, dst += QK_K) {
        const uint8_t *sc = b, *qs = b + 16;
        float d = h2f(b + 80), dmin = h2f(b + 82);
        for (int e = 0; e < QK_K; e++) {
            float dl = d * (float)(sc[e / 16] & 0xF), ml = dmin * (float)(sc[e / 16] >> 4);
            int q = (qs[(e / 128) * 32 + e % 32] >> (2 * ((e / 32) % 4))) & 3;
            dst[e] = dl * (float)q - ml;
        }
    }
}

/* Q3_K, 110 bytes: hmask[32] | qs[64] (low 2 bits, as Q2_K) | scales[12]
 * (16 six-bit scales, offset 32) | d f16.  The high bit of value e is bit
 * e/32 of hmask[e%32]; a clear bit subtracts 4. */
void tsr__dequantize_row_q3_k(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 110, dst += QK_K) {
        const uint8_t *hm = b, *qs = b + 32, *s = b + 96;
        float d = h2f(b + 108);
        int sc[16];
        for (int k = 0; k < 16; k++) {
            int lo = k < 8 ? (s[k] & 0xF) : (s[k - 8] >> 4);
            int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
            sc[k] = (lo | (hi << 4)) - 32;
        }
        for (int e = 0; e < QK_K; e++) {
            float dl = d * (float)sc[e / 16];
            int q = (qs[(e / 128) * 32 + e % 32] >> (2 * ((e / 32) % 4))) & 3;
            if (!((hm[e % 32] >> (e / 32)) & 1))
                q -= 4;
            dst[e] = dl * (float)q;
        }
    }
}

/* The 8 six-bit scales and mins of Q4_K/Q5_K, packed in 12 bytes. */
static void k_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Q4_K, 144 bytes: d f16 | dmin f16 | scales[12] | qs[128].  Groups of 32:
 * value e is nibble (e/32)%2 of qs[(e/64)*32 + e%32]; x = d*sc*q - dmin*m. */
void tsr__dequantize_row_q4_k(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 144, dst += QK_K) {
        float d = h2f(b), dmin = h2f(b + 2);
        const uint8_t *qs = b + 16;
        for (int g = 0; g < 8; g++) {
            int sc, m;
            k_scale_min(b + 4, g, &sc, &m);
            float d1 = d * (float)sc, m1 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                int q = (qs[(g / 2) * 32 + l] >> (4 * (g % 2))) & 0xF;
                dst[g * 32 + l] = d1 * (float)q - m1;
            }
        }
    }
}

/* Q5_K, 176 bytes: d | dmin | scales[12] | qh[32] | qs[128]; as Q4_K with a
 * fifth bit, bit g of qh[l] for group g. */
void tsr__dequantize_row_q5_k(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 176, dst += QK_K) {
        float d = h2f(b), dmin = h2f(b + 2);
        const uint8_t *qh = b + 16, *qs = b + 48;
        for (int g = 0; g < 8; g++) {
            int sc, m;
            k_scale_min(b + 4, g, &sc, &m);
            float d1 = d * (float)sc, m1 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                int q = ((qs[(g / 2) * 32 + l] >> (4 * (g % 2))) & 0xF) | (((qh[l] >> g) & 1) << 4);
                dst[g * 32 + l] = d1 * (float)q - m1;
            }
        }
    }
}

/* Q6_K, 210 bytes: ql[128] | qh[64] | scales int8[16] | d f16.  In each half
 * (c) of 128 values, value i has low bits from nibble i/64 of
 * ql[c*64 + i%64] and high bits 2*(i/32) of qh[c*32 + i%32]; x = d*sc*(q-32). */
void tsr__dequantize_row_q6_k(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 210, dst += QK_K) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        float d = h2f(b + 208);
        for (int e = 0; e < QK_K; e++) {
            int c = e / 128, k = e % 128;
            int lo = (ql[c * 64 + k % 64] >> (4 * (k / 64))) & 0xF;
            int hi = (qh[c * 32 + k % 32] >> (2 * (k / 32))) & 3;
            dst[e] = d * (float)sc[e / 16] * (float)((lo | (hi << 4)) - 32);
        }
    }
}

/* ------------------------------------------------------------ IQ formats */

/* Eight values of a 2-bit grid row times db and signs (bit j of `signs`
 * negates value j). */
static void iq2_put8(float *y, uint16_t row, float db, uint8_t signs)
{
    for (int j = 0; j < 8; j++)
        y[j] = db * iq2_map[(row >> (2 * j)) & 3] * ((signs >> j) & 1 ? -1.f : 1.f);
}

/* IQ2_XXS, 66 bytes: d f16 | 8 x (u32 four grid indices, u32 four 7-bit sign
 * indices + 4-bit scale in bits 28..31); db = d * (0.5 + s) * 0.25. */
void tsr__dequantize_row_iq2_xxs(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 66) {
        float d = h2f(b);
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t *g = b + 2 + 8 * ib;
            uint32_t aux = rd32(g + 4);
            float db = d * (0.5f + (float)(aux >> 28)) * 0.25f;
            for (int l = 0; l < 4; l++, dst += 8)
                iq2_put8(dst, tsr__iq2xxs_grid[g[l]], db, ksign(aux >> (7 * l)));
        }
    }
}

/* IQ2_XS, 74 bytes: d f16 | qs u16[32] (9-bit grid index, 7-bit sign index)
 * | scales[8] (a nibble per 16 values). */
void tsr__dequantize_row_iq2_xs(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 74) {
        float d = h2f(b);
        for (int k = 0; k < 32; k++, dst += 8) {
            uint16_t q = rd16(b + 2 + 2 * k);
            int s = (b[66 + k / 4] >> (4 * ((k / 2) % 2))) & 0xF;
            float db = d * (0.5f + (float)s) * 0.25f;
            iq2_put8(dst, tsr__iq2xs_grid[q & 511], db, ksign(q >> 9));
        }
    }
}

/* IQ2_S, 82 bytes: d f16 | qs[32] (grid index low 8 bits) | signs[32] |
 * qh[8] (2 high index bits each) | scales[8]. */
void tsr__dequantize_row_iq2_s(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 82) {
        float d = h2f(b);
        const uint8_t *qs = b + 2, *sg = b + 34, *qh = b + 66, *sc = b + 74;
        for (int k = 0; k < 32; k++, dst += 8) {
            int idx = qs[k] | (((qh[k / 4] >> (2 * (k % 4))) & 3) << 8);
            int s = (sc[k / 4] >> (4 * ((k / 2) % 2))) & 0xF;
            float db = d * (0.5f + (float)s) * 0.25f;
            iq2_put8(dst, tsr__iq2s_grid[idx], db, sg[k]);
        }
    }
}

/* Four values of a 3-bit grid row. */
static void iq3_put4(float *y, uint16_t row, const float *map, float db, uint8_t signs)
{
    for (int j = 0; j < 4; j++)
        y[j] = db * map[(row >> (4 * j)) & 7] * ((signs >> j) & 1 ? -1.f : 1.f);
}

/* IQ3_XXS, 98 bytes: d f16 | qs[64] (grid indices, 4 values each) | 8 x u32
 * (four 7-bit sign indices + 4-bit scale); db = d * (0.5 + s) * 0.5. */
void tsr__dequantize_row_iq3_xxs(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 98) {
        float d = h2f(b);
        const uint8_t *qs = b + 2;
        for (int ib = 0; ib < 8; ib++) {
            uint32_t aux = rd32(b + 66 + 4 * ib);
            float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
            for (int l = 0; l < 4; l++, dst += 8) {
                uint8_t sg = ksign(aux >> (7 * l));
                iq3_put4(dst, tsr__iq3xxs_grid[qs[8 * ib + 2 * l]], iq3xxs_map, db, sg);
                iq3_put4(dst + 4, tsr__iq3xxs_grid[qs[8 * ib + 2 * l + 1]], iq3xxs_map, db,
                         (uint8_t)(sg >> 4));
            }
        }
    }
}

/* IQ3_S, 110 bytes: d f16 | qs[64] | qh[8] (9th index bit) | signs[32] |
 * scales[4] (a nibble per 32 values); db = d * (1 + 2*s). */
void tsr__dequantize_row_iq3_s(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 110) {
        float d = h2f(b);
        const uint8_t *qs = b + 2, *qh = b + 66, *sg = b + 74, *sc = b + 106;
        for (int ib = 0; ib < 8; ib++) {
            float db = d * (float)(1 + 2 * ((sc[ib / 2] >> (4 * (ib % 2))) & 0xF));
            for (int l = 0; l < 8; l++, dst += 4) {
                int k = 8 * ib + l;
                int idx = qs[k] | (((qh[k / 8] >> (k % 8)) & 1) << 8);
                uint8_t s = (uint8_t)(sg[k / 2] >> (4 * (k % 2)));
                iq3_put4(dst, tsr__iq3s_grid[idx], iq3s_map, db, s);
            }
        }
    }
}

/* Eight values of the IQ1 grid: dl * (grid + delta). */
static void iq1_put8(float *y, uint16_t row, float dl, float delta)
{
    for (int j = 0; j < 8; j++)
        y[j] = dl * (iq1_map[(row >> (2 * j)) & 3] + delta);
}

/* IQ1_S, 50 bytes: d f16 | qs[32] | qh u16[8]: per 32 values, 4 x 3 high
 * index bits, a 3-bit scale (bits 12..14) and the delta's sign (bit 15). */
void tsr__dequantize_row_iq1_s(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 50) {
        float d = h2f(b);
        for (int ib = 0; ib < 8; ib++) {
            uint16_t qh = rd16(b + 34 + 2 * ib);
            float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
            float delta = (qh & 0x8000) ? -IQ1S_DELTA : IQ1S_DELTA;
            for (int l = 0; l < 4; l++, dst += 8) {
                int idx = b[2 + 4 * ib + l] | (((qh >> (3 * l)) & 7) << 8);
                iq1_put8(dst, tsr__iq1s_grid[idx], dl, delta);
            }
        }
    }
}

/* IQ1_M, 56 bytes: qs[32] | qh[16] (a nibble per 8 values: 3 index bits and
 * the delta's sign) | scales u16[4]: four 3-bit scales each in bits 0..11,
 * and the fp16 super-block scale spread over their top nibbles. */
void tsr__dequantize_row_iq1_m(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 56) {
        const uint8_t *qs = b, *qh = b + 32;
        uint16_t sc[4];
        for (int k = 0; k < 4; k++)
            sc[k] = rd16(b + 48 + 2 * k);
        uint16_t dbits = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) |
                                    ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000));
        float d = tsr__f16_to_f32(dbits);
        for (int k = 0; k < 32; k++, dst += 8) { /* k: group of 8 values */
            int s = (sc[k / 8] >> (3 * ((k / 2) % 4))) & 7;
            float dl = d * (float)(2 * s + 1);
            int nib = (qh[k / 2] >> (4 * (k % 2))) & 0xF;
            int idx = qs[k] | ((nib & 7) << 8);
            iq1_put8(dst, tsr__iq1s_grid[idx], dl, (nib & 8) ? -IQ1S_DELTA : IQ1S_DELTA);
        }
    }
}

/* IQ4_NL, 18 bytes: d f16 | qs[16]; x = d * kvalues[nibble]. */
void tsr__dequantize_row_iq4_nl(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += 18, dst += QK) {
        float d = h2f(b);
        for (int j = 0; j < 16; j++) {
            dst[j] = d * (float)kvalues_iq4nl[b[2 + j] & 0xF];
            dst[j + 16] = d * (float)kvalues_iq4nl[b[2 + j] >> 4];
        }
    }
}

/* IQ4_XS, 136 bytes: d f16 | scales_h u16 (2 bits per 32) | scales_l[4]
 * (a nibble per 32) | qs[128]; x = d * (ls - 32) * kvalues[nibble]. */
void tsr__dequantize_row_iq4_xs(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 136) {
        float d = h2f(b);
        uint16_t sh = rd16(b + 2);
        for (int ib = 0; ib < 8; ib++, dst += 32) {
            int ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) | (((sh >> (2 * ib)) & 3) << 4);
            float dl = d * (float)(ls - 32);
            const uint8_t *qs = b + 8 + 16 * ib;
            for (int j = 0; j < 16; j++) {
                dst[j] = dl * (float)kvalues_iq4nl[qs[j] & 0xF];
                dst[j + 16] = dl * (float)kvalues_iq4nl[qs[j] >> 4];
            }
        }
    }
}

/* ------------------------------------------------------------ quantizers */

/* The value of largest magnitude (the first one on ties), keeping its sign. */
static float absmax_signed(const float *x, int n)
{
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

/* Q4_0: d = max / -8 (max the signed absmax), q = min(15, trunc(x/d + 8.5)). */
void tsr__quantize_row_q4_0(const float *src, void *dst, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += 18, src += QK) {
        float d = absmax_signed(src, QK) / -8, id = d != 0.f ? 1.0f / d : 0.0f;
        wr16(b, tsr__f32_to_f16(d));
        for (int j = 0; j < 16; j++) {
            int q0 = (int8_t)(src[j] * id + 8.5f), q1 = (int8_t)(src[j + 16] * id + 8.5f);
            q0 = q0 > 15 ? 15 : q0;
            q1 = q1 > 15 ? 15 : q1;
            b[2 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Q4_1: d = (max - min) / 15, m = min, q = min(15, trunc((x - min)/d + 0.5)). */
void tsr__quantize_row_q4_1(const float *src, void *dst, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += 20, src += QK) {
        float mn, mx;
        min_max(src, QK, &mn, &mx);
        float d = (mx - mn) / 15, id = d != 0.f ? 1.0f / d : 0.0f;
        wr16(b, tsr__f32_to_f16(d));
        wr16(b + 2, tsr__f32_to_f16(mn));
        for (int j = 0; j < 16; j++) {
            int q0 = (int8_t)((src[j] - mn) * id + 0.5f), q1 = (int8_t)((src[j + 16] - mn) * id + 0.5f);
            q0 = q0 > 15 ? 15 : q0;
            q1 = q1 > 15 ? 15 : q1;
            b[4 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Q5_0: d = max / -16, q = min(31, trunc(x/d + 16.5)). */
void tsr__quantize_row_q5_0(const float *src, void *dst, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += 22, src += QK) {
        float d = absmax_signed(src, QK) / -16, id = d != 0.f ? 1.0f / d : 0.0f;
        uint32_t qh = 0;
        wr16(b, tsr__f32_to_f16(d));
        for (int j = 0; j < 16; j++) {
            int q0 = (int8_t)(src[j] * id + 16.5f), q1 = (int8_t)(src[j + 16] * id + 16.5f);
            q0 = q0 > 31 ? 31 : q0;
            q1 = q1 > 31 ? 31 : q1;
            b[6 + j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= (uint32_t)((q0 >> 4) & 1) << j;
            qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
        }
        for (int k = 0; k < 4; k++)
            b[2 + k] = (uint8_t)(qh >> (8 * k));
    }
}

/* Q5_1: d = (max - min) / 31, m = min, q = min(31, trunc((x - min)/d + 0.5)). */
void tsr__quantize_row_q5_1(const float *src, void *dst, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += 24, src += QK) {
        float mn, mx;
        min_max(src, QK, &mn, &mx);
        float d = (mx - mn) / 31, id = d != 0.f ? 1.0f / d : 0.0f;
        uint32_t qh = 0;
        wr16(b, tsr__f32_to_f16(d));
        wr16(b + 2, tsr__f32_to_f16(mn));
        for (int j = 0; j < 16; j++) {
            int q0 = (int8_t)((src[j] - mn) * id + 0.5f), q1 = (int8_t)((src[j + 16] - mn) * id + 0.5f);
            q0 = q0 > 31 ? 31 : q0;
            q1 = q1 > 31 ? 31 : q1;
            b[8 + j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= (uint32_t)((q0 >> 4) & 1) << j;
            qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
        }
        for (int k = 0; k < 4; k++)
            b[4 + k] = (uint8_t)(qh >> (8 * k));
    }
}

/* Q8_0: d = absmax / 127, q = round-half-away(x / d). */
void tsr__quantize_row_q8_0(const float *src, void *dst, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += 34, src += QK) {
        float amax = 0.f;
        for (int j = 0; j < QK; j++)
            amax = fmaxf(amax, fabsf(src[j]));
        float d = amax / 127, id = d != 0.f ? 1.0f / d : 0.0f;
        wr16(b, tsr__f32_to_f16(d));
        for (int j = 0; j < QK; j++)
            b[2 + j] = (uint8_t)(int8_t)roundf(src[j] * id);
    }
}

/* ------------------------------------------------------------ the table */

#define T_(name, be, bb, deq, q) {name, be, bb, deq, q}
static const tsr__ggml_type_info type_table[TSR_GGML_TYPE_LIMIT_] = {
    [TSR_GGML_F32] = T_("F32", 1, 4, tsr__dequantize_row_f32, NULL),
    [TSR_GGML_F16] = T_("F16", 1, 2, tsr__dequantize_row_f16, NULL),
    [TSR_GGML_Q4_0] = T_("Q4_0", 32, 18, tsr__dequantize_row_q4_0, tsr__quantize_row_q4_0),
    [TSR_GGML_Q4_1] = T_("Q4_1", 32, 20, tsr__dequantize_row_q4_1, tsr__quantize_row_q4_1),
    [TSR_GGML_Q5_0] = T_("Q5_0", 32, 22, tsr__dequantize_row_q5_0, tsr__quantize_row_q5_0),
    [TSR_GGML_Q5_1] = T_("Q5_1", 32, 24, tsr__dequantize_row_q5_1, tsr__quantize_row_q5_1),
    [TSR_GGML_Q8_0] = T_("Q8_0", 32, 34, tsr__dequantize_row_q8_0, tsr__quantize_row_q8_0),
    [TSR_GGML_Q8_1] = T_("Q8_1", 32, 36, NULL, NULL),
    [TSR_GGML_Q2_K] = T_("Q2_K", 256, 84, tsr__dequantize_row_q2_k, NULL),
    [TSR_GGML_Q3_K] = T_("Q3_K", 256, 110, tsr__dequantize_row_q3_k, NULL),
    [TSR_GGML_Q4_K] = T_("Q4_K", 256, 144, tsr__dequantize_row_q4_k, NULL),
    [TSR_GGML_Q5_K] = T_("Q5_K", 256, 176, tsr__dequantize_row_q5_k, NULL),
    [TSR_GGML_Q6_K] = T_("Q6_K", 256, 210, tsr__dequantize_row_q6_k, NULL),
    [TSR_GGML_Q8_K] = T_("Q8_K", 256, 292, NULL, NULL),
    [TSR_GGML_IQ2_XXS] = T_("IQ2_XXS", 256, 66, tsr__dequantize_row_iq2_xxs, NULL),
    [TSR_GGML_IQ2_XS] = T_("IQ2_XS", 256, 74, tsr__dequantize_row_iq2_xs, NULL),
    [TSR_GGML_IQ3_XXS] = T_("IQ3_XXS", 256, 98, tsr__dequantize_row_iq3_xxs, NULL),
    [TSR_GGML_IQ1_S] = T_("IQ1_S", 256, 50, tsr__dequantize_row_iq1_s, NULL),
    [TSR_GGML_IQ4_NL] = T_("IQ4_NL", 32, 18, tsr__dequantize_row_iq4_nl, NULL),
    [TSR_GGML_IQ3_S] = T_("IQ3_S", 256, 110, tsr__dequantize_row_iq3_s, NULL),
    [TSR_GGML_IQ2_S] = T_("IQ2_S", 256, 82, tsr__dequantize_row_iq2_s, NULL),
    [TSR_GGML_IQ4_XS] = T_("IQ4_XS", 256, 136, tsr__dequantize_row_iq4_xs, NULL),
    [TSR_GGML_I8] = T_("I8", 1, 1, NULL, NULL),
    [TSR_GGML_I16] = T_("I16", 1, 2, NULL, NULL),
    [TSR_GGML_I32] = T_("I32", 1, 4, NULL, NULL),
    [TSR_GGML_I64] = T_("I64", 1, 8, NULL, NULL),
    [TSR_GGML_F64] = T_("F64", 1, 8, NULL, NULL),
    [TSR_GGML_IQ1_M] = T_("IQ1_M", 256, 56, tsr__dequantize_row_iq1_m, NULL),
    [TSR_GGML_BF16] = T_("BF16", 1, 2, tsr__dequantize_row_bf16, NULL),
    [TSR_GGML_TQ1_0] = T_("TQ1_0", 256, 54, NULL, NULL),
    [TSR_GGML_TQ2_0] = T_("TQ2_0", 256, 66, NULL, NULL),
    [TSR_GGML_MXFP4] = T_("MXFP4", 32, 17, NULL, NULL),
};

const tsr__ggml_type_info *tsr__ggml_type(uint32_t ggml_type)
{
    if (ggml_type >= TSR_GGML_TYPE_LIMIT_ || !type_table[ggml_type].name)
        return NULL;
    return &type_table[ggml_type];
}

size_t tsr__ggml_row_bytes(uint32_t ggml_type, int64_t n)
{
    const tsr__ggml_type_info *t = tsr__ggml_type(ggml_type);
    if (!t || n < 0 || n % t->block_elems)
        return 0;
    return (size_t)(n / t->block_elems) * t->block_bytes;
}

int tsr__ggml_to_dtype(uint32_t ggml_type)
{
    switch (ggml_type) {
    case TSR_GGML_F32: return TSR_DTYPE_F32;
    case TSR_GGML_F16: return TSR_DTYPE_F16;
    case TSR_GGML_BF16: return TSR_DTYPE_BF16;
    case TSR_GGML_I8: return TSR_DTYPE_I8;
    case TSR_GGML_I16: return TSR_DTYPE_I16;
    case TSR_GGML_I32: return TSR_DTYPE_I32;
    case TSR_GGML_I64: return TSR_DTYPE_I64;
    case TSR_GGML_F64: return TSR_DTYPE_F64;
    default:
        return tsr__ggml_type(ggml_type) ? TSR_DTYPE_GGML((int)ggml_type) : -1;
    }
}

tsr_status tsr__ggml_dequantize(uint32_t ggml_type, const void *src, float *dst, int64_t n)
{
    const tsr__ggml_type_info *t = tsr__ggml_type(ggml_type);
    if (!t)
        return tsr__error(TSR_ERR_UNSUPPORTED, "ggml type %u is not a known tensor type", ggml_type);
    if (!t->dequantize_row)
        return tsr__error(TSR_ERR_UNSUPPORTED, "ggml type %s has no dequantizer in tessera", t->name);
    if (n < 0 || n % t->block_elems)
        return tsr__error(TSR_ERR_INVALID_ARG,
                          "%lld values of %s: not a multiple of its block of %u",
                          (long long)n, t->name, t->block_elems);
    t->dequantize_row(src, dst, n);
    return TSR_OK;
}
