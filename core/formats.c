/* core/formats.c - reference dequantization of a weight row in every runtime
 * weight format (plain floats, GGML blocks, tessera/plugin/formats.h).  The
 * cpu backend multiplies any format through this; faster backends bring
 * native kernels and are tested against it. */
#include <string.h>
#include "ggml_blocks.h"
#include "internal.h"

/* Bits [bit, bit+n) of a little-endian bit stream. */
static uint32_t get_bits(const uint8_t *p, int64_t bit, uint32_t n)
{
    uint32_t v = 0;
    for (uint32_t i = 0; i < n;) {
        int64_t b = bit + i;
        uint32_t off = (uint32_t)(b & 7), take = 8 - off;
        if (take > n - i)
            take = n - i;
        v |= ((uint32_t)(p[b >> 3] >> off) & ((1u << take) - 1u)) << i;
        i += take;
    }
    return v;
}

size_t tsr__weight_row_bytes(const tsr_tensor *w)
{
    int64_t K = w->ne[0];
    if (w->dtype < TSR_DTYPE_COUNT_PLAIN_)
        return (size_t)K * tsr__dtype_size(w->dtype);
    if (w->dtype >= TSR_DTYPE_GGML_BASE && w->dtype < TSR_DTYPE_GGML_BASE + TSR_GGML_TYPE_LIMIT_)
        return tsr__ggml_row_bytes(w->dtype - TSR_DTYPE_GGML_BASE, K);
    switch (w->dtype) {
    case TSR_DTYPE_INT_GROUP:
        return w->format_data ? ((const tsr_fmt_int_group *)w->format_data)->row_bytes : 0;
    case TSR_DTYPE_CODEBOOK4: return (size_t)K / 2;
    case TSR_DTYPE_INT8_ROW: return (size_t)K;
    default: return 0;
    }
}

tsr_status tsr__dequantize_row(const tsr_tensor *w, int64_t row, float *dst)
{
    int64_t K = w->ne[0], N = w->ne[1];
    if (row < 0 || row >= N)
        return tsr__error(TSR_ERR_INVALID_ARG, "weight '%s': row %lld out of range",
                          w->name ? w->name : "?", (long long)row);
    const uint8_t *base = w->data;
    uint32_t dt = w->dtype;
    if (dt < TSR_DTYPE_COUNT_PLAIN_)
        return tsr__to_f32(dt, (const char *)w->data + row * w->nb[1], dst, K, NULL);
    if (dt >= TSR_DTYPE_GGML_BASE && dt < TSR_DTYPE_GGML_BASE + TSR_GGML_TYPE_LIMIT_) {
        size_t rb = tsr__ggml_row_bytes(dt - TSR_DTYPE_GGML_BASE, K);
        if (!rb)
            return tsr__error(TSR_ERR_FORMAT, "weight '%s': %lld columns do not fill %s blocks",
                              w->name ? w->name : "?", (long long)K, tsr__dtype_name(dt));
        return tsr__ggml_dequantize(dt - TSR_DTYPE_GGML_BASE, base + (size_t)row * rb, dst, K);
    }
    switch (dt) {
    case TSR_DTYPE_INT_GROUP: {
        const tsr_fmt_int_group *f = w->format_data;
        const uint8_t *q = base + (size_t)row * f->row_bytes;
        if (f->axis == 1 && f->n_groups_per_row > 0 && !f->g_idx && (f->bits == 4 || f->bits == 8) &&
            f->group_size > 0) {
            /* the common layouts, a group at a time: 4-bit codes low nibble
             * first, or whole bytes */
            for (int64_t k0 = 0; k0 < K; k0 += f->group_size) {
                int64_t g = row * f->n_groups_per_row + k0 / f->group_size;
                float sc = f->scale[g], z = f->zero[g];
                int64_t k1 = k0 + f->group_size < K ? k0 + f->group_size : K;
                for (int64_t k = k0; k < k1; k++) {
                    float code = f->bits == 8 ? (float)q[k] : (float)((q[k >> 1] >> ((k & 1) * 4)) & 15u);
                    dst[k] = (code - z) * sc;
                }
            }
            return TSR_OK;
        }
        int64_t C = f->group_size > 0 ? N * K / f->group_size : 1;
        for (int64_t k = 0; k < K; k++) {
            int64_t g;
            if (f->axis == 0)
                g = (row * K + k) % C;
            else if (f->n_groups_per_row == 0)
                g = (row * K + k) / f->group_size;
            else
                g = row * f->n_groups_per_row + (f->g_idx ? f->g_idx[k] : k / f->group_size);
            float code = (float)get_bits(q, k * f->bits, f->bits);
            dst[k] = (code - f->zero[g]) * f->scale[g];
        }
        return TSR_OK;
    }
    case TSR_DTYPE_CODEBOOK4: {
        const tsr_fmt_codebook4 *f = w->format_data;
        for (int64_t k = 0; k < K; k++) {
            int64_t i = row * K + k;
            uint8_t b = base[i >> 1];
            uint8_t c = (i & 1) ? (b & 15u) : (b >> 4);
            dst[k] = f->code[c] * f->absmax[i / f->block_size];
        }
        return TSR_OK;
    }
    case TSR_DTYPE_INT8_ROW: {
        const tsr_fmt_int8_row *f = w->format_data;
        const int8_t *q = (const int8_t *)base + row * K;
        for (int64_t k = 0; k < K; k++)
            dst[k] = (float)q[k] * f->scale[row];
        return TSR_OK;
    }
    default:
        return tsr__error(TSR_ERR_UNSUPPORTED, "weight '%s': no dequantizer for format %u",
                          w->name ? w->name : "?", dt);
    }
}
