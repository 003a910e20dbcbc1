/* backends/common-gpu/kernels.h - launchers of the GPU kernels shared by
 * the cuda and hip backends (kernels.cu).  Every launcher enqueues on
 * `s` and returns the launch status; nothing synchronises.
 *
 * A gv is a tensor as the kernels see it: device data, the tessera dtype,
 * ne[] (ne[0] innermost) and byte strides nb[].  Shapes and parameters are
 * those of tessera/plugin/tensor.h. */
#ifndef TSR_GPU_KERNELS_H
#define TSR_GPU_KERNELS_H
#include "gpu_compat.h"

typedef struct gv {
    char *d;
    int dt;                   /* TSR_DTYPE_F32 / F16 / BF16 / I32 */
    long long ne[4];
    long long nb[4];
} gv;

hipError_t gk_get_rows(hipStream_t s, gv out, gv table, gv ids);
hipError_t gk_rms_norm(hipStream_t s, gv out, gv x, gv w, float eps, float off);
hipError_t gk_rope(hipStream_t s, gv out, gv x, gv pos, gv inv_freq, int mode, int rot,
                   float mscale);
hipError_t gk_softmax(hipStream_t s, gv out, gv x);
/* causal attention over the cache, online softmax; head_dim <= GK_ATT_MAX_HD */
#define GK_ATT_MAX_HD 256
hipError_t gk_attention(hipStream_t s, gv out, gv q, gv k, gv v, gv pos, int kv_len,
                        float scale, int window, float softcap);
/* unary, binary (broadcast b) and gated ops by tsr_op number; b.d may be
 * NULL for unary ops; pf/pi are op_params[0] as float and int */
hipError_t gk_eltwise(hipStream_t s, int op, gv out, gv a, gv b, float pf, int pi);
hipError_t gk_kv_store(hipStream_t s, gv cache, gv x, int p0);
/* x [K, M] f32 (row m at m's (i1, i2)) -> dst [M][K] contiguous f16/bf16 */
hipError_t gk_to_half(hipStream_t s, void *dst, int dt, gv x);
/* out [N, M] = x [K, M] W^T (+ bias [N]); W rows of K in f32/f16/bf16,
 * f32 accumulation: the backends' own GEMM (HIP; CUDA without cuBLAS) */
hipError_t gk_gemm(hipStream_t s, gv out, gv w, gv x, gv bias);
#endif /* TSR_GPU_KERNELS_H */
