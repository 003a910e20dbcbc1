/* core/dtype.c - element types, names and conversions. */
#include <math.h>
#include <string.h>
#include <strings.h>
#include "ggml_blocks.h"
#include "internal.h"

size_t tsr__dtype_size(uint32_t dtype)
{
    switch (dtype) {
    case TSR_DTYPE_F32: case TSR_DTYPE_I32: case TSR_DTYPE_U32: return 4;
    case TSR_DTYPE_F16: case TSR_DTYPE_BF16: case TSR_DTYPE_I16: case TSR_DTYPE_U16: return 2;
    case TSR_DTYPE_I8: case TSR_DTYPE_U8: case TSR_DTYPE_BOOL: return 1;
    case TSR_DTYPE_I64: case TSR_DTYPE_F64: return 8;
    default: return 0;
    }
}

const char *tsr__dtype_name(uint32_t dtype)
{
    static const char *const names[] = {"F32", "F16", "BF16", "I8", "U8", "I16",
                                        "I32", "I64", "F64", "BOOL", "U16", "U32"};
    if (dtype < sizeof names / sizeof names[0])
        return names[dtype];
    if (dtype >= TSR_DTYPE_GGML_BASE && dtype < TSR_DTYPE_GGML_BASE + TSR_GGML_TYPE_LIMIT_) {
        const tsr__ggml_type_info *ti = tsr__ggml_type(dtype - TSR_DTYPE_GGML_BASE);
        if (ti)
            return ti->name;
    }
    switch (dtype) {
    case TSR_DTYPE_INT_GROUP: return "INT_GROUP";
    case TSR_DTYPE_CODEBOOK4: return "CODEBOOK4";
    case TSR_DTYPE_INT8_ROW: return "INT8_ROW";
    }
    return "unknown";
}

int tsr__dtype_from_name(const char *name)
{
    static const struct { const char *n; int t; } map[] = {
        {"float32", TSR_DTYPE_F32}, {"fp32", TSR_DTYPE_F32}, {"f32", TSR_DTYPE_F32}, {"float", TSR_DTYPE_F32},
        {"float16", TSR_DTYPE_F16}, {"fp16", TSR_DTYPE_F16}, {"f16", TSR_DTYPE_F16}, {"half", TSR_DTYPE_F16},
        {"bfloat16", TSR_DTYPE_BF16}, {"bf16", TSR_DTYPE_BF16},
        {"int8", TSR_DTYPE_I8}, {"i8", TSR_DTYPE_I8}, {"uint8", TSR_DTYPE_U8}, {"u8", TSR_DTYPE_U8},
        {"int16", TSR_DTYPE_I16}, {"i16", TSR_DTYPE_I16}, {"int32", TSR_DTYPE_I32}, {"i32", TSR_DTYPE_I32},
        {"int64", TSR_DTYPE_I64}, {"i64", TSR_DTYPE_I64}, {"float64", TSR_DTYPE_F64}, {"f64", TSR_DTYPE_F64},
        {"bool", TSR_DTYPE_BOOL}, {"uint16", TSR_DTYPE_U16}, {"u16", TSR_DTYPE_U16},
        {"uint32", TSR_DTYPE_U32}, {"u32", TSR_DTYPE_U32},
    };
    if (!name)
        return -1;
    if (strncmp(name, "torch.", 6) == 0)
        name += 6;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcasecmp(name, map[i].n) == 0)
            return map[i].t;
    return -1;
}

/* IEEE binary16 <-> binary32, exact for every half value, round to nearest
 * even the other way. */
float tsr__f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: value = man * 2^-24 */
            float v = (float)man * 5.9604644775390625e-08f;
            return sign ? -v : v;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t tsr__f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below the smallest normal half: subnormal */
        float a;
        memcpy(&a, &ax, 4);
        /* value / 2^-24, rounded to nearest even by the FPU */
        float q = a * 16777216.0f;
        uint32_t m = (uint32_t)nearbyintf(q);
        return (uint16_t)(sign | m);
    }
    uint32_t e = ((ax >> 23) - 112) << 10;
    uint32_t m = (ax >> 13) & 0x3ffu;
    uint32_t h = e | m;
    uint32_t rest = ax & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

float tsr__bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t tsr__f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

tsr_status tsr__to_f32(uint32_t dtype, const void *src, float *dst, int64_t n,
                       const void *format_data)
{
    (void)format_data;
    int64_t i;
    switch (dtype) {
    case TSR_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); return TSR_OK;
    case TSR_DTYPE_F16: {
        const uint16_t *s = src;
        for (i = 0; i < n; i++) dst[i] = tsr__f16_to_f32(s[i]);
        return TSR_OK;
    }
    case TSR_DTYPE_BF16: {
        const uint16_t *s = src;
        for (i = 0; i < n; i++) dst[i] = tsr__bf16_to_f32(s[i]);
        return TSR_OK;
    }
    case TSR_DTYPE_F64: {
        const double *s = src;
        for (i = 0; i < n; i++) dst[i] = (float)s[i];
        return TSR_OK;
    }
    case TSR_DTYPE_I8: { const int8_t *s = src; for (i = 0; i < n; i++) dst[i] = s[i]; return TSR_OK; }
    case TSR_DTYPE_U8: { const uint8_t *s = src; for (i = 0; i < n; i++) dst[i] = s[i]; return TSR_OK; }
    case TSR_DTYPE_I16: { const int16_t *s = src; for (i = 0; i < n; i++) dst[i] = s[i]; return TSR_OK; }
    case TSR_DTYPE_I32: { const int32_t *s = src; for (i = 0; i < n; i++) dst[i] = (float)s[i]; return TSR_OK; }
    default:
        if (dtype >= TSR_DTYPE_GGML_BASE && dtype < TSR_DTYPE_GGML_BASE + TSR_GGML_TYPE_LIMIT_)
            return tsr__ggml_dequantize(dtype - TSR_DTYPE_GGML_BASE, src, dst, n);
        return tsr__error(TSR_ERR_UNSUPPORTED, "cannot convert %s to float32",
                          tsr__dtype_name(dtype));
    }
}

tsr_status tsr__from_f32(uint32_t dtype, const float *src, void *dst, int64_t n)
{
    int64_t i;
    switch (dtype) {
    case TSR_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); return TSR_OK;
    case TSR_DTYPE_F16: { uint16_t *d = dst; for (i = 0; i < n; i++) d[i] = tsr__f32_to_f16(src[i]); return TSR_OK; }
    case TSR_DTYPE_BF16: { uint16_t *d = dst; for (i = 0; i < n; i++) d[i] = tsr__f32_to_bf16(src[i]); return TSR_OK; }
    default:
        return tsr__error(TSR_ERR_UNSUPPORTED, "cannot convert float32 to %s",
                          tsr__dtype_name(dtype));
    }
}
