/* backends/common-gpu/kernels.cu - the GPU kernels of the cuda and hip
 * backends: one source, built by nvcc and by hipcc (gpu_compat.h).
 * Every kernel computes in float32 and mirrors the cpu backend's reference
 * kernel (backends/cpu/kernels) - the tests compare them element by element.
 * No fast-math: expf/tanhf/erff/cosf are the accurate ones. */
#include <math.h>
#include <stdint.h>
#if defined(__HIPCC__)
#  include <hip/hip_fp16.h>
#else
#  include <cuda_fp16.h>
#endif
#include <tessera/plugin/tensor.h>
#include "kernels.h"

#define BLOCK 256

/* --- element access -------------------------------------------------------------- */

__device__ static inline float half_bits_to_f32(unsigned h)
{
    unsigned sign = (h >> 15) & 1u, e = (h >> 10) & 31u, m = h & 1023u;
    float v;
    if (e == 0)
        v = ldexpf((float)m, -24);              /* zero and subnormals */
    else if (e == 31)
        v = m ? __int_as_float(0x7fc00000) : __int_as_float(0x7f800000);
    else
        v = ldexpf((float)(m | 1024u), (int)e - 25);
    return sign ? -v : v;
}

__device__ static inline float ldf(const char *p, int dt)
{
    if (dt == TSR_DTYPE_F32)
        return *(const float *)p;
    unsigned h = *(const unsigned short *)p;
    if (dt == TSR_DTYPE_BF16)
        return __uint_as_float(h << 16);
    return half_bits_to_f32(h);
}

__device__ static inline char *at(const gv &t, long long i0, long long i1, long long i2,
                                  long long i3)
{
    return t.d + i0 * t.nb[0] + i1 * t.nb[1] + i2 * t.nb[2] + i3 * t.nb[3];
}

/* row r of the rows ne[1] * ne[2] * ne[3] */
__device__ static inline char *row(const gv &t, long long r)
{
    long long i1 = r % t.ne[1], i2 = (r / t.ne[1]) % t.ne[2], i3 = r / (t.ne[1] * t.ne[2]);
    return t.d + i1 * t.nb[1] + i2 * t.nb[2] + i3 * t.nb[3];
}

static long long n_rows(const gv &t)
{
    return t.ne[1] * t.ne[2] * t.ne[3];
}

static unsigned grid_for(long long n)
{
    long long g = (n + BLOCK - 1) / BLOCK;
    return (unsigned)(g > 65535 * 8 ? 65535 * 8 : g);
}

/* block-wide sum / max over BLOCK threads */
__device__ static float block_reduce(float v, int is_max)
{
    __shared__ float red[BLOCK];
    red[threadIdx.x] = v;
    __syncthreads();
    for (int s = BLOCK / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            red[threadIdx.x] = is_max ? fmaxf(red[threadIdx.x], red[threadIdx.x + s])
                                      : red[threadIdx.x] + red[threadIdx.x + s];
        __syncthreads();
    }
    float r = red[0];
    __syncthreads();
    return r;
}

/* --- embedding -------------------------------------------------------------------- */

__global__ static void k_get_rows(gv out, gv table, gv ids)
{
    long long n = blockIdx.x;
    int id = *(const int *)at(ids, n, 0, 0, 0);
    float *y = (float *)at(out, 0, n, 0, 0);
    for (long long i = threadIdx.x; i < table.ne[0]; i += blockDim.x)
        y[i] = id < 0 || id >= table.ne[1] ? __int_as_float(0x7fc00000)   /* bad id: NaN */
                                           : ldf(at(table, i, id, 0, 0), table.dt);
}

hipError_t gk_get_rows(hipStream_t s, gv out, gv table, gv ids)
{
    k_get_rows<<<(unsigned)ids.ne[0], BLOCK, 0, s>>>(out, table, ids);
    return hipGetLastError();
}

/* --- RMSNorm: y = x * rsqrt(mean(x^2) + eps) * (off + w) (LlamaRMSNorm) ------------- */

__global__ static void k_rms_norm(gv out, gv x, gv w, float eps, float off)
{
    const float *xr = (const float *)row(x, blockIdx.x);
    float *yr = (float *)row(out, blockIdx.x);
    long long d = x.ne[0];
    float ss = 0.0f;
    for (long long i = threadIdx.x; i < d; i += BLOCK)
        ss += xr[i] * xr[i];
    ss = block_reduce(ss, 0);
    float scale = 1.0f / sqrtf(ss / (float)d + eps);
    for (long long i = threadIdx.x; i < d; i += BLOCK) {
        float v = xr[i] * scale;
        if (w.d)
            v *= off + ldf(w.d + i * w.nb[0], w.dt);
        yr[i] = v;
    }
}

hipError_t gk_rms_norm(hipStream_t s, gv out, gv x, gv w, float eps, float off)
{
    k_rms_norm<<<(unsigned)n_rows(x), BLOCK, 0, s>>>(out, x, w, eps, off);
    return hipGetLastError();
}

/* --- RoPE: rotate_half (pairs i, i + rot/2) or interleaved (2i, 2i + 1) ------------- */

__global__ static void k_rope(gv out, gv x, gv pos, gv inv, int mode, int rot, float mscale)
{
    long long hd = x.ne[0], H = x.ne[1], total = hd * H * x.ne[2];
    int half = rot / 2;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        long long i = idx % hd, h = (idx / hd) % H, n = idx / (hd * H);
        const float *xr = (const float *)at(x, 0, h, n, 0);
        float *yr = (float *)at(out, 0, h, n, 0);
        if (i >= rot) {
            yr[i] = xr[i];
            continue;
        }
        long long pair, i0, i1;
        if (mode) {
            if (i & 1)
                continue;
            pair = i / 2; i0 = i; i1 = i + 1;
        } else {
            if (i >= half)
                continue;
            pair = i; i0 = i; i1 = i + half;
        }
        float p = (float)*(const int *)at(pos, n, 0, 0, 0);
        float ang = p * ((const float *)inv.d)[pair];
        float cs = cosf(ang) * mscale, sn = sinf(ang) * mscale;
        float a = xr[i0], b = xr[i1];
        yr[i0] = a * cs - b * sn;
        yr[i1] = b * cs + a * sn;
    }
}

hipError_t gk_rope(hipStream_t s, gv out, gv x, gv pos, gv inv, int mode, int rot, float mscale)
{
    k_rope<<<grid_for(x.ne[0] * x.ne[1] * x.ne[2]), BLOCK, 0, s>>>(out, x, pos, inv, mode, rot,
                                                                  mscale);
    return hipGetLastError();
}

/* --- softmax over ne[0] -------------------------------------------------------------- */

__global__ static void k_softmax(gv out, gv x)
{
    const float *xr = (const float *)row(x, blockIdx.x);
    float *yr = (float *)row(out, blockIdx.x);
    long long d = x.ne[0];
    float mx = -INFINITY;
    for (long long i = threadIdx.x; i < d; i += BLOCK)
        mx = fmaxf(mx, xr[i]);
    mx = block_reduce(mx, 1);
    float sum = 0.0f;
    for (long long i = threadIdx.x; i < d; i += BLOCK) {
        float e = expf(xr[i] - mx);
        yr[i] = e;
        sum += e;
    }
    sum = block_reduce(sum, 0);
    for (long long i = threadIdx.x; i < d; i += BLOCK)
        yr[i] /= sum;
}

hipError_t gk_softmax(hipStream_t s, gv out, gv x)
{
    k_softmax<<<(unsigned)n_rows(x), BLOCK, 0, s>>>(out, x);
    return hipGetLastError();
}

/* --- attention ------------------------------------------------------------------------
 * One block per (head, query).  Its ATT_GROUPS groups of 32 lanes walk the
 * allowed keys (causal: key <= position; sliding window: key > position -
 * window) with an online softmax (running max m, sum l, accumulator acc),
 * lanes splitting head_dim; the groups' partial results are merged at the
 * end (flash-decoding).  Prefill and decode share it.
 * TODO(perf): a tiled flash-attention-2 kernel for long prefill (queries of a
 * tile sharing K/V tiles in shared memory, tensor cores). */
#define ATT_GROUPS 4
#define ATT_PER_LANE (GK_ATT_MAX_HD / 32)

__global__ static void k_attention(gv out, gv q, gv k, gv v, gv pos, int kv_len, float scale,
                                   int window, float cap)
{
    __shared__ float qs[GK_ATT_MAX_HD];
    __shared__ float ms[ATT_GROUPS], ls[ATT_GROUPS];
    __shared__ float accs[ATT_GROUPS][GK_ATT_MAX_HD];
    int h = blockIdx.x, n = blockIdx.y;
    int hd = (int)q.ne[0], group = (int)(q.ne[1] / k.ne[1]), hk = h / group;
    int g = threadIdx.x / 32, lane = threadIdx.x % 32;
    const float *qr = (const float *)at(q, 0, h, n, 0);
    for (int i = threadIdx.x; i < hd; i += blockDim.x)
        qs[i] = qr[i];
    __syncthreads();
    long long p = *(const int *)at(pos, n, 0, 0, 0);
    long long lo = 0, hi = p < kv_len - 1 ? p : kv_len - 1;
    if (window > 0 && p - window + 1 > lo)
        lo = p - window + 1;
    float m = -INFINITY, l = 0.0f, acc[ATT_PER_LANE];
    for (int j = 0; j < ATT_PER_LANE; j++)
        acc[j] = 0.0f;
    for (long long key = lo + g; key <= hi; key += ATT_GROUPS) {
        const float *kr = (const float *)at(k, 0, hk, key, 0);
        float d = 0.0f;
        for (int j = 0; j < ATT_PER_LANE; j++) {
            int i = lane + 32 * j;
            if (i < hd)
                d += qs[i] * kr[i];
        }
        for (int off = 16; off > 0; off >>= 1)
            d += GPU_SHFL_XOR(d, off);
        d *= scale;
        if (cap > 0.0f)
            d = cap * tanhf(d / cap);
        float mn = fmaxf(m, d), corr = expf(m - mn), w = expf(d - mn);
        l = l * corr + w;
        const float *vr = (const float *)at(v, 0, hk, key, 0);
        for (int j = 0; j < ATT_PER_LANE; j++) {
            int i = lane + 32 * j;
            acc[j] = acc[j] * corr + (i < hd ? w * vr[i] : 0.0f);
        }
        m = mn;
    }
    if (lane == 0) {
        ms[g] = m;
        ls[g] = l;
    }
    for (int j = 0; j < ATT_PER_LANE; j++) {
        int i = lane + 32 * j;
        if (i < hd)
            accs[g][i] = acc[j];
    }
    __syncthreads();
    float M = -INFINITY;
    for (int gg = 0; gg < ATT_GROUPS; gg++)
        M = fmaxf(M, ms[gg]);
    float L = 0.0f, f[ATT_GROUPS];
    for (int gg = 0; gg < ATT_GROUPS; gg++) {
        f[gg] = ms[gg] == -INFINITY ? 0.0f : expf(ms[gg] - M);
        L += ls[gg] * f[gg];
    }
    float *yr = (float *)at(out, 0, h, n, 0);
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float o = 0.0f;
        for (int gg = 0; gg < ATT_GROUPS; gg++)
            o += accs[gg][i] * f[gg];
        yr[i] = L > 0.0f ? o / L : 0.0f;     /* no allowed key: zeros, as the cpu backend */
    }
}

hipError_t gk_attention(hipStream_t s, gv out, gv q, gv k, gv v, gv pos, int kv_len,
                        float scale, int window, float softcap)
{
    dim3 grid((unsigned)q.ne[1], (unsigned)q.ne[2]);
    k_attention<<<grid, 32 * ATT_GROUPS, 0, s>>>(out, q, k, v, pos, kv_len, scale, window,
                                                  softcap);
    return hipGetLastError();
}

/* --- elementwise --------------------------------------------------------------------- */

__device__ static inline float gelu(float x, int tanh_approx)
{
    if (tanh_approx)
        return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

__global__ static void k_eltwise(int op, gv out, gv a, gv b, float pf, int pi)
{
    long long total = out.ne[0] * out.ne[1] * out.ne[2] * out.ne[3];
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        long long i0 = idx % out.ne[0], r = idx / out.ne[0];
        long long i1 = r % out.ne[1], i2 = (r / out.ne[1]) % out.ne[2];
        long long i3 = r / (out.ne[1] * out.ne[2]);
        float x = *(const float *)at(a, i0, i1, i2, i3), y;
        float u = 0.0f;
        if (b.d)
            u = ldf(at(b, b.ne[0] == 1 ? 0 : i0, b.ne[1] == 1 ? 0 : i1, b.ne[2] == 1 ? 0 : i2,
                       b.ne[3] == 1 ? 0 : i3), b.dt);
        switch (op) {
        case TSR_OP_ADD: y = x + u; break;
        case TSR_OP_MUL: y = x * u; break;
        case TSR_OP_SCALE: y = x * pf; break;
        case TSR_OP_SILU: y = x / (1.0f + expf(-x)); break;
        case TSR_OP_SIGMOID: y = 1.0f / (1.0f + expf(-x)); break;
        case TSR_OP_GELU: y = gelu(x, pi); break;
        case TSR_OP_TANH: y = tanhf(x); break;
        case TSR_OP_RELU: y = x > 0.0f ? x : 0.0f; break;
        case TSR_OP_SWIGLU: y = x / (1.0f + expf(-x)) * u; break;
        case TSR_OP_GEGLU: y = gelu(x, pi) * u; break;
        default: y = __int_as_float(0x7fc00000); break;
        }
        *(float *)at(out, i0, i1, i2, i3) = y;
    }
}

hipError_t gk_eltwise(hipStream_t s, int op, gv out, gv a, gv b, float pf, int pi)
{
    k_eltwise<<<grid_for(out.ne[0] * out.ne[1] * out.ne[2] * out.ne[3]), BLOCK, 0, s>>>(
        op, out, a, b, pf, pi);
    return hipGetLastError();
}

/* --- KV cache store: cache[:, :, p0 + n] = x[:, :, n] ---------------------------------- */

__global__ static void k_kv_store(gv cache, gv x, int p0)
{
    long long total = x.ne[0] * x.ne[1] * x.ne[2];
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        long long i0 = idx % x.ne[0], i1 = (idx / x.ne[0]) % x.ne[1], n = idx / (x.ne[0] * x.ne[1]);
        *(float *)at(cache, i0, i1, p0 + n, 0) = *(const float *)at(x, i0, i1, n, 0);
    }
}

hipError_t gk_kv_store(hipStream_t s, gv cache, gv x, int p0)
{
    k_kv_store<<<grid_for(x.ne[0] * x.ne[1] * x.ne[2]), BLOCK, 0, s>>>(cache, x, p0);
    return hipGetLastError();
}

/* --- activations to f16/bf16 for half-precision GEMMs ------------------------------- */

__global__ static void k_to_half(unsigned short *dst, int dt, gv x)
{
    long long K = x.ne[0], total = K * x.ne[1] * x.ne[2];
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        float v = ((const float *)row(x, idx / K))[idx % K];
        unsigned short hbits;
        if (dt == TSR_DTYPE_BF16) {
            unsigned u = __float_as_uint(v);
            hbits = (u & 0x7fffffffu) > 0x7f800000u ? (unsigned short)((u >> 16) | 0x40u)
                  : (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
        } else {
            hbits = __half_as_ushort(__float2half_rn(v));
        }
        dst[idx] = hbits;
    }
}

hipError_t gk_to_half(hipStream_t s, void *dst, int dt, gv x)
{
    k_to_half<<<grid_for(x.ne[0] * x.ne[1] * x.ne[2]), BLOCK, 0, s>>>((unsigned short *)dst, dt,
                                                                      x);
    return hipGetLastError();
}

/* --- tiled GEMM: out[n, m] = sum_k x[k, m] W[k, n] + bias[n] ----------------------------
 * 64 x 64 output tiles, 16-deep K slices in shared memory, 256 threads with a
 * 4 x 4 register block each; W converted to f32 on the load.
 * TODO(perf): MFMA / tensor-core paths; a split-K GEMV for M = 1 (decode). */
#define GT 64
#define GK 16

__global__ static void k_gemm(gv out, gv w, gv x, gv bias)
{
    __shared__ float xs[GK][GT + 1]; /* [k][m] */
    __shared__ float ws[GK][GT + 1]; /* [k][n] */
    long long K = w.ne[0], N = w.ne[1], M = x.ne[1] * x.ne[2];
    long long n0 = (long long)blockIdx.x * GT, m0 = (long long)blockIdx.y * GT;
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[4][4] = {{0}};
    for (long long k0 = 0; k0 < K; k0 += GK) {
        for (int e = threadIdx.x; e < GK * GT; e += 256) {
            int kk = e % GK, r = e / GK;
            long long kg = k0 + kk;
            xs[kk][r] = (m0 + r < M && kg < K) ? ((const float *)row(x, m0 + r))[kg] : 0.0f;
            ws[kk][r] = (n0 + r < N && kg < K) ? ldf(at(w, kg, n0 + r, 0, 0), w.dt) : 0.0f;
        }
        __syncthreads();
        for (int kk = 0; kk < GK; kk++) {
            float a[4], bb[4];
            for (int i = 0; i < 4; i++) {
                a[i] = xs[kk][ty * 4 + i];
                bb[i] = ws[kk][tx * 4 + i];
            }
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    acc[i][j] += a[i] * bb[j];
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; i++) {
        long long m = m0 + ty * 4 + i;
        if (m >= M)
            continue;
        float *yr = (float *)row(out, m);
        for (int j = 0; j < 4; j++) {
            long long n = n0 + tx * 4 + j;
            if (n < N)
                yr[n] = acc[i][j] + (bias.d ? ldf(bias.d + n * bias.nb[0], bias.dt) : 0.0f);
        }
    }
}

hipError_t gk_gemm(hipStream_t s, gv out, gv w, gv x, gv bias)
{
    long long M = x.ne[1] * x.ne[2];
    dim3 grid((unsigned)((w.ne[1] + GT - 1) / GT), (unsigned)((M + GT - 1) / GT));
    k_gemm<<<grid, 256, 0, s>>>(out, w, x, bias);
    return hipGetLastError();
}
