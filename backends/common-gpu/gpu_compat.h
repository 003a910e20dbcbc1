/* backends/common-gpu/gpu_compat.h - one source for nvcc and hipcc.
 *
 * The GPU sources are written against the HIP runtime API (hipMalloc,
 * hipStream_t, ...).  hipcc compiles them as they are; nvcc gets this
 * hipX -> cudaX mapping (Debian's HIP-on-NVIDIA headers do not build with
 * CUDA 13, and only these few names are used).  GPU_SHFL_XOR reduces over
 * groups of 32 lanes on both 32-wide warps and 64-wide wavefronts. */
#ifndef TSR_GPU_COMPAT_H
#define TSR_GPU_COMPAT_H
#if defined(__HIPCC__)
#  include <hip/hip_runtime.h>
#  define GPU_SHFL_XOR(v, m) __shfl_xor((v), (m), 32)
#else
#  include <cuda_runtime.h>
#  define hipError_t cudaError_t
#  define hipSuccess cudaSuccess
#  define hipGetDeviceCount cudaGetDeviceCount
#  define hipGetErrorName cudaGetErrorName
#  define hipGetErrorString cudaGetErrorString
#  define hipGetLastError cudaGetLastError
#  define hipSetDevice cudaSetDevice
#  define hipDeviceProp_t cudaDeviceProp
#  define hipGetDeviceProperties cudaGetDeviceProperties
#  define hipMemGetInfo cudaMemGetInfo
#  define hipMalloc cudaMalloc
#  define hipFree cudaFree
#  define hipMemcpy cudaMemcpy
#  define hipMemcpyAsync cudaMemcpyAsync
#  define hipMemcpyHostToDevice cudaMemcpyHostToDevice
#  define hipMemcpyDeviceToHost cudaMemcpyDeviceToHost
#  define hipMemcpyDeviceToDevice cudaMemcpyDeviceToDevice
#  define hipStream_t cudaStream_t
#  define hipStreamCreateWithFlags cudaStreamCreateWithFlags
#  define hipStreamNonBlocking cudaStreamNonBlocking
#  define hipStreamDestroy cudaStreamDestroy
#  define hipStreamSynchronize cudaStreamSynchronize
#  define GPU_SHFL_XOR(v, m) __shfl_xor_sync(0xffffffffu, (v), (m), 32)
#endif
#endif /* TSR_GPU_COMPAT_H */
