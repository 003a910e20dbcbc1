/* backends/cpu/kernels/isa.c - which instruction sets this CPU and OS run
 * (CPUID leaves 1 and 7, XGETBV for the saved register state), and the
 * kernel table built from them, resolved once at plugin create. */
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

void cpu_features_detect(cpu_features *f)
{
    memset(f, 0, sizeof *f);
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    int osxsave = (c >> 27) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    int ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xE6) == 0xE6, tiles = (xcr0 & 0x60000) == 0x60000;
    f->fma = ymm && ((c >> 12) & 1);
    f->f16c = ymm && ((c >> 29) & 1);
    if (__get_cpuid_max(0, NULL) < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    f->avx2 = ymm && ((b >> 5) & 1);
    f->avx512f = zmm && ((b >> 16) & 1);
    f->avx512bw = zmm && ((b >> 30) & 1);
    f->avx512vl = zmm && ((b >> 31) & 1);
    f->avx512vnni = zmm && ((c >> 11) & 1);
    f->amx_bf16 = tiles && ((d >> 22) & 1);
    f->amx_tile = tiles && ((d >> 24) & 1);
    f->amx_int8 = tiles && ((d >> 25) & 1);
    __cpuid_count(7, 1, a, b, c, d);
    f->avx512bf16 = zmm && ((a >> 5) & 1);
#endif
}

static void fill(cpu_kernels *out, const cpu_kernels *k)
{
    *out = cpu_kernels_c;
    out->isa = k->isa;
#define TAKE(m) if (k->m) out->m = k->m
    TAKE(dot_f32); TAKE(dot_f16); TAKE(dot_bf16); TAKE(f16_to_f32); TAKE(bf16_to_f32);
    TAKE(gemm_f32); TAKE(quant_q8); TAKE(dot_q8_0); TAKE(dot_q4_0); TAKE(dot_q4_k);
    TAKE(mm_q8_0); TAKE(mm_q4_0); TAKE(quant_q8k); TAKE(mm_q4_k); TAKE(gemm_f32_acc);
    TAKE(mm_q4_0x8); TAKE(mm_q4_kx8); TAKE(mm_q8_0x8);
    TAKE(gemm_packed); TAKE(gemv); TAKE(attend); TAKE(silu_mul);
#undef TAKE
}

int cpu_kernels_get(const char *isa, cpu_kernels *out)
{
    cpu_features f;
    cpu_features_detect(&f);
    if (!strcmp(isa, "c")) {
        fill(out, &cpu_kernels_c);
        return 1;
    }
#ifdef TESSERA_CPU_HAVE_AVX2
    if (!strcmp(isa, "avx2") && f.avx2 && f.fma && f.f16c) {
        fill(out, &cpu_kernels_avx2);
        return 1;
    }
#endif
    return 0;
}

void cpu_kernels_select(cpu_kernels *out)
{
    const char *force = getenv("TESSERA_CPU_ISA");
    if (force && *force && cpu_kernels_get(force, out))
        return;
    if (cpu_kernels_get("avx2", out))
        return;
    cpu_kernels_get("c", out);
}
