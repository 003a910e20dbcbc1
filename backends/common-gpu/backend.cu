/* backends/common-gpu/backend.cu - the cuda and hip backend plugins: one
 * source, compiled by nvcc (TSR_GPU_CUDA: plugin "cuda", dense matmul
 * through cuBLAS) and by hipcc (plugin "hip", the own tiled GEMM of
 * kernels.cu).  Built by nvcc without TSR_GPU_CUDA it is the HIP flavour
 * on an NVIDIA GPU (tessera-hip-on-cuda.so, TESSERA_HIP_ON_CUDA=ON), so the
 * HIP code paths can be run and checked where only NVIDIA GPUs exist.
 *
 * Loading: the plugin never links libcuda.  The CUDA flavour links CUDA's
 * static runtime, which opens the driver (libcuda.so.1) itself on first use,
 * and opens cuBLAS with dlopen at create() - so the module loads on any
 * machine, and probe() says in a sentence why it cannot run there.  The HIP
 * flavour links libamdhip64 (Debian: libamdhip64-5).
 *
 * Memory: buffer_alloc / copy_to_device / copy_to_host manage device
 * memory; compute() expects every data pointer of its nodes (inputs, KV
 * cache, outputs, weights) to be device memory from buffer_alloc.  It
 * enqueues the nodes on the backend's stream and waits for them at the end.
 * TODO(cuda-graphs): capture the repeated decode step (same nodes, same
 * pointers) into a CUDA/HIP graph and replay it instead of launching kernel
 * by kernel.
 *
 * Thread-safety: one backend state is used by one thread at a time. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tessera/plugin/plugin.h>
#include "kernels.h"
#if defined(TSR_GPU_CUDA)
#  include <cublas_v2.h>
#  define GPU_NAME "cuda"
#  define GPU_API "cudaGetDeviceCount"
#  define GPU_HINT "is the NVIDIA driver (libcuda.so.1) installed and a GPU visible?"
#else
#  define GPU_NAME "hip"
#  define GPU_API "hipGetDeviceCount"
#  define GPU_HINT "is an AMD GPU present and /dev/kfd accessible?"
#endif

static const tsr_host *g_host;

#if defined(TSR_GPU_CUDA)
/* cuBLAS, opened at create() (never linked). */
typedef struct cublas_api {
    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    decltype(&cublasSetStream_v2) set_stream;
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int,
                              int, const void *, const void *, cudaDataType_t, int,
                              const void *, cudaDataType_t, int, const void *, void *,
                              cudaDataType_t, int, cublasComputeType_t, cublasGemmAlgo_t);
} cublas_api;
#endif

typedef struct gpu_ctx {
    int device;
    hipStream_t stream;
    void *scratch;            /* activations converted to f16/bf16       */
    size_t scratch_size;
#if defined(TSR_GPU_CUDA)
    cublas_api blas;
    cublasHandle_t handle;    /* NULL: cuBLAS absent, own GEMM used       */
#endif
} gpu_ctx;

/* --- probe ----------------------------------------------------------------------- */

static int device_count(char *why, size_t len)
{
    int n = 0; /* cudaGetDeviceCount leaves it unwritten on failure */
    hipError_t e = hipGetDeviceCount(&n);
    if (e != hipSuccess) {
        snprintf(why, len, "no usable " GPU_NAME " device: " GPU_API " failed with %s (%d: %s); "
                 GPU_HINT, hipGetErrorName(e), (int)e, hipGetErrorString(e));
        return 0;
    }
    if (n <= 0)
        snprintf(why, len, GPU_API " found no " GPU_NAME " device; " GPU_HINT);
    return n;
}

static int gpu_probe(const tsr_host *host, char *why, size_t len)
{
    (void)host;
    return device_count(why, len) > 0;
}

/* --- supports -------------------------------------------------------------------- */

static int is_float(uint32_t t)
{
    return t == TSR_DTYPE_F32 || t == TSR_DTYPE_F16 || t == TSR_DTYPE_BF16;
}

static int rows_contiguous(const tsr_tensor *t)
{
    return t->nb[1] == t->nb[0] * (size_t)t->ne[0] && t->nb[2] == t->nb[1] * (size_t)t->ne[1] &&
           t->ne[3] == 1;
}

/* b broadcasts to a: each dimension equal or 1 */
static int broadcasts(const tsr_tensor *b, const tsr_tensor *a)
{
    for (int i = 0; i < TSR_MAX_DIMS; i++)
        if (b->ne[i] != a->ne[i] && b->ne[i] != 1)
            return 0;
    return 1;
}

static int gpu_supports(void *state, const tsr_tensor *n)
{
    (void)state;
    const tsr_tensor *a = n->src[0], *b = n->src[1];
    for (int i = 0; i < TSR_MAX_SRC; i++)
        if (n->src[i] && n->src[i]->nb[0] != g_host->dtype_size(n->src[i]->dtype))
            return 0;
    if (n->nb[0] != g_host->dtype_size(n->dtype) || !a)
        return 0;
    switch (n->op) {
    case TSR_OP_GET_ROWS:
        return is_float(a->dtype) && b->dtype == TSR_DTYPE_I32 && n->dtype == TSR_DTYPE_F32;
    case TSR_OP_MUL_MAT:
        return is_float(a->dtype) && b->dtype == TSR_DTYPE_F32 && n->dtype == TSR_DTYPE_F32 &&
               a->ne[2] == 1 && a->ne[3] == 1 && a->nb[1] == a->nb[0] * (size_t)a->ne[0] &&
               rows_contiguous(b) && rows_contiguous(n) &&
               (!n->src[2] || is_float(n->src[2]->dtype));
    case TSR_OP_RMS_NORM:
        return a->dtype == TSR_DTYPE_F32 && (!b || is_float(b->dtype));
    case TSR_OP_ADD: case TSR_OP_MUL:
        return a->dtype == TSR_DTYPE_F32 && is_float(b->dtype) && broadcasts(b, n);
    case TSR_OP_SCALE: case TSR_OP_SILU: case TSR_OP_GELU: case TSR_OP_TANH:
    case TSR_OP_RELU: case TSR_OP_SOFTMAX: case TSR_OP_SIGMOID:
        return a->dtype == TSR_DTYPE_F32;
    case TSR_OP_SWIGLU: case TSR_OP_GEGLU:
        return a->dtype == TSR_DTYPE_F32 && b->dtype == TSR_DTYPE_F32;
    case TSR_OP_ROPE:
        return a->dtype == TSR_DTYPE_F32 && b->dtype == TSR_DTYPE_I32 && n->src[2] &&
               n->src[2]->dtype == TSR_DTYPE_F32 && tsr_param_i(n, 1) <= a->ne[0];
    case TSR_OP_KV_STORE:
        return a->dtype == TSR_DTYPE_F32 && b->dtype == TSR_DTYPE_F32;
    case TSR_OP_ATTENTION:
        return a->dtype == TSR_DTYPE_F32 && b->dtype == TSR_DTYPE_F32 &&
               n->src[2]->dtype == TSR_DTYPE_F32 && n->src[3]->dtype == TSR_DTYPE_I32 &&
               a->ne[0] <= GK_ATT_MAX_HD && a->ne[1] % b->ne[1] == 0;
    default:
        return 0;
    }
}

/* --- compute --------------------------------------------------------------------- */

static gv view(const tsr_tensor *t)
{
    gv g;
    memset(&g, 0, sizeof g);
    if (!t)
        return g;
    g.d = (char *)t->data;
    g.dt = (int)t->dtype;
    for (int i = 0; i < 4; i++) {
        g.ne[i] = t->ne[i];
        g.nb[i] = (long long)t->nb[i];
    }
    return g;
}

#if defined(TSR_GPU_CUDA)
static tsr_status scratch(gpu_ctx *c, size_t need)
{
    if (need <= c->scratch_size)
        return TSR_OK;
    if (c->scratch)
        (void)hipFree(c->scratch);
    c->scratch = NULL;
    c->scratch_size = 0;
    hipError_t e = hipMalloc(&c->scratch, need);
    if (e != hipSuccess)
        return g_host->set_error(TSR_ERR_NOMEM, GPU_NAME ": cannot allocate %zu bytes of device "
                                 "scratch: %s", need, hipGetErrorString(e));
    c->scratch_size = need;
    return TSR_OK;
}
#endif

static hipError_t mul_mat(gpu_ctx *c, tsr_tensor *t, tsr_status *st)
{
    const tsr_tensor *w = t->src[0], *x = t->src[1], *b = t->src[2];
#if defined(TSR_GPU_CUDA)
    if (c->handle) {
        int K = (int)w->ne[0], N = (int)w->ne[1], M = (int)(x->ne[1] * x->ne[2]);
        const void *B = x->data;
        cudaDataType_t ab = CUDA_R_32F;
        if (w->dtype != TSR_DTYPE_F32) { /* cuBLAS wants A and B of one type */
            ab = w->dtype == TSR_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
            if ((*st = scratch(c, (size_t)K * (size_t)M * 2)))
                return hipSuccess;
            hipError_t e = gk_to_half(c->stream, c->scratch, (int)w->dtype, view(x));
            if (e != hipSuccess)
                return e;
            B = c->scratch;
        }
        /* column-major: out^T [N x M] = W^T [N x K] * x^T [K x M] */
        const float one = 1.0f, zero = 0.0f;
        cublasStatus_t bs = c->blas.gemm_ex(c->handle, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one,
                                            w->data, ab, K, B, ab, K, &zero, t->data, CUDA_R_32F,
                                            N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (bs != CUBLAS_STATUS_SUCCESS) {
            *st = g_host->set_error(TSR_ERR_DEVICE, "cuda: cublasGemmEx failed for '%s' (status "
                                    "%d)", t->name ? t->name : "?", (int)bs);
            return hipSuccess;
        }
        if (b)
            return gk_eltwise(c->stream, TSR_OP_ADD, view(t), view(t), view(b), 0.0f, 0);
        return hipSuccess;
    }
#endif
    (void)st;
    return gk_gemm(c->stream, view(t), view(w), view(x), view(b));
}

static tsr_status gpu_compute(void *state, tsr_tensor *const *nodes, int n)
{
    gpu_ctx *c = (gpu_ctx *)state;
    for (int i = 0; i < n; i++) {
        tsr_tensor *t = nodes[i];
        tsr_tensor *const *s = t->src;
        hipError_t e = hipSuccess;
        tsr_status st = TSR_OK;
        switch (t->op) {
        case TSR_OP_GET_ROWS:
            e = gk_get_rows(c->stream, view(t), view(s[0]), view(s[1]));
            break;
        case TSR_OP_RMS_NORM:
            e = gk_rms_norm(c->stream, view(t), view(s[0]), view(s[1]), tsr_param_f(t, 0),
                            tsr_param_f(t, 1));
            break;
        case TSR_OP_ROPE: {
            float ms = tsr_param_f(t, 2);
            e = gk_rope(c->stream, view(t), view(s[0]), view(s[1]), view(s[2]),
                        tsr_param_i(t, 0), tsr_param_i(t, 1), ms == 0.0f ? 1.0f : ms);
            break;
        }
        case TSR_OP_SOFTMAX:
            e = gk_softmax(c->stream, view(t), view(s[0]));
            break;
        case TSR_OP_ATTENTION: {
            int kv_len = tsr_param_i(t, 0);
            if (kv_len <= 0 || kv_len > s[1]->ne[2]) {
                st = g_host->set_error(TSR_ERR_INVALID_ARG, GPU_NAME ": attention '%s': kv_len "
                                       "%d outside the cache (%lld rows)", t->name, kv_len,
                                       (long long)s[1]->ne[2]);
                break;
            }
            e = gk_attention(c->stream, view(t), view(s[0]), view(s[1]), view(s[2]), view(s[3]),
                             kv_len, tsr_param_f(t, 1), tsr_param_i(t, 2), tsr_param_f(t, 3));
            break;
        }
        case TSR_OP_KV_STORE: {
            int p0 = tsr_param_i(t, 0);
            if (p0 < 0 || p0 + s[0]->ne[2] > s[1]->ne[2] || s[0]->ne[0] != s[1]->ne[0] ||
                s[0]->ne[1] != s[1]->ne[1]) {
                st = g_host->set_error(TSR_ERR_INVALID_ARG, GPU_NAME ": kv_store '%s': rows "
                                       "%d..%lld do not fit the cache", t->name, p0,
                                       (long long)(p0 + s[0]->ne[2] - 1));
                break;
            }
            e = gk_kv_store(c->stream, view(s[1]), view(s[0]), p0);
            break;
        }
        case TSR_OP_MUL_MAT:
            e = mul_mat(c, t, &st);
            break;
        case TSR_OP_ADD: case TSR_OP_MUL: case TSR_OP_SCALE: case TSR_OP_SILU:
        case TSR_OP_GELU: case TSR_OP_TANH: case TSR_OP_RELU: case TSR_OP_SIGMOID:
        case TSR_OP_SWIGLU: case TSR_OP_GEGLU:
            e = gk_eltwise(c->stream, (int)t->op, view(t), view(s[0]), view(s[1]),
                           tsr_param_f(t, 0), tsr_param_i(t, 0));
            break;
        default:
            st = g_host->set_error(TSR_ERR_UNSUPPORTED, GPU_NAME ": node '%s' has op %u, which "
                                   "this backend does not run", t->name, t->op);
        }
        if (st)
            return st;
        if (e != hipSuccess)
            return g_host->set_error(TSR_ERR_DEVICE, GPU_NAME ": launching node '%s' (op %u) "
                                     "failed: %s", t->name, t->op, hipGetErrorString(e));
    }
    hipError_t e = hipStreamSynchronize(c->stream);
    if (e != hipSuccess)
        return g_host->set_error(TSR_ERR_DEVICE, GPU_NAME ": running %d nodes from '%s' failed: "
                                 "%s", n, n ? nodes[0]->name : "-", hipGetErrorString(e));
    return TSR_OK;
}

/* --- buffers ------------------------------------------------------------------------ */

static tsr_status gpu_buffer_alloc(void *state, size_t size, void **out)
{
    (void)state;
    *out = NULL;
    hipError_t e = hipMalloc(out, size ? size : 1);
    if (e != hipSuccess)
        return g_host->set_error(TSR_ERR_NOMEM, GPU_NAME ": cannot allocate %zu bytes of device "
                                 "memory: %s", size, hipGetErrorString(e));
    return TSR_OK;
}

static void gpu_buffer_free(void *state, void *buf)
{
    (void)state;
    if (buf)
        (void)hipFree(buf);
}

static tsr_status copy(void *dst, const void *src, size_t n, int to_device)
{
    hipError_t e = hipMemcpy(dst, src, n, to_device ? hipMemcpyHostToDevice : hipMemcpyDeviceToHost);
    if (e != hipSuccess)
        return g_host->set_error(TSR_ERR_DEVICE, GPU_NAME ": copying %zu bytes %s the device "
                                 "failed: %s", n, to_device ? "to" : "from", hipGetErrorString(e));
    return TSR_OK;
}

static tsr_status gpu_copy_to_device(void *state, void *dst, const void *src, size_t n)
{
    (void)state;
    return copy(dst, src, n, 1);
}

static tsr_status gpu_copy_to_host(void *state, void *dst, const void *src, size_t n)
{
    (void)state;
    return copy(dst, src, n, 0);
}

/* --- lifecycle ------------------------------------------------------------------------ */

#if defined(TSR_GPU_CUDA)
static void open_cublas(gpu_ctx *c)
{
    static const char *const names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
    void *h = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        g_host->log(TSR_LOG_INFO, "cuda", "cuBLAS not found (%s); dense matmul uses the "
                    "backend's own GEMM kernel", dlerror());
        return;
    }
    void *p[4] = {dlsym(h, "cublasCreate_v2"), dlsym(h, "cublasDestroy_v2"),
                  dlsym(h, "cublasSetStream_v2"), dlsym(h, "cublasGemmEx")};
    if (!p[0] || !p[1] || !p[2] || !p[3]) {
        g_host->log(TSR_LOG_WARN, "cuda", "cuBLAS lacks cublasGemmEx & co.; using the own GEMM");
        return; /* never dlclose'd: cheap, and safe */
    }
    memcpy(&c->blas.create, &p[0], sizeof p[0]);
    memcpy(&c->blas.destroy, &p[1], sizeof p[1]);
    memcpy(&c->blas.set_stream, &p[2], sizeof p[2]);
    memcpy(&c->blas.gemm_ex, &p[3], sizeof p[3]);
    if (c->blas.create(&c->handle) != CUBLAS_STATUS_SUCCESS) {
        c->handle = NULL;
        g_host->log(TSR_LOG_WARN, "cuda", "cublasCreate failed; using the own GEMM");
        return;
    }
    c->blas.set_stream(c->handle, c->stream);
}
#endif

static void gpu_destroy(void *state)
{
    gpu_ctx *c = (gpu_ctx *)state;
    if (!c)
        return;
#if defined(TSR_GPU_CUDA)
    if (c->handle)
        c->blas.destroy(c->handle);
#endif
    if (c->scratch)
        (void)hipFree(c->scratch);
    if (c->stream)
        (void)hipStreamDestroy(c->stream);
    free(c);
}

static tsr_status gpu_create(const tsr_host *host, const tsr_backend_options *opt, void **state)
{
    char why[512] = "";
    int n = device_count(why, sizeof why);
    if (n <= 0)
        return host->set_error(TSR_ERR_DEVICE, "%s", why);
    int dev = opt ? opt->device : 0;
    if (dev < 0 || dev >= n)
        return host->set_error(TSR_ERR_DEVICE, GPU_NAME ": device %d requested, but there %s %d",
                               dev, n == 1 ? "is" : "are", n);
    gpu_ctx *c = (gpu_ctx *)calloc(1, sizeof *c);
    if (!c)
        return host->set_error(TSR_ERR_NOMEM, GPU_NAME ": out of memory");
    c->device = dev;
    hipError_t e = hipSetDevice(dev);
    if (e == hipSuccess)
        e = hipStreamCreateWithFlags(&c->stream, hipStreamNonBlocking);
    if (e != hipSuccess) {
        gpu_destroy(c);
        return host->set_error(TSR_ERR_DEVICE, GPU_NAME ": cannot start device %d: %s", dev,
                               hipGetErrorString(e));
    }
#if defined(TSR_GPU_CUDA)
    open_cublas(c);
#endif
    *state = c;
    return TSR_OK;
}

static int gpu_device_count(void *state)
{
    (void)state;
    char why[512];
    return device_count(why, sizeof why);
}

static tsr_status gpu_device_info(void *state, int dev, tsr_device_info *out)
{
    (void)state;
    hipDeviceProp_t p;
    hipError_t e = hipGetDeviceProperties(&p, dev);
    if (e != hipSuccess)
        return g_host->set_error(TSR_ERR_DEVICE, GPU_NAME ": no device %d: %s", dev,
                                 hipGetErrorString(e));
    memset(out->name, 0, sizeof out->name);
    size_t l = strnlen(p.name, sizeof p.name);
    memcpy(out->name, p.name, l < sizeof out->name ? l : sizeof out->name - 1);
    memset(out->kind, 0, sizeof out->kind);
    snprintf(out->kind, sizeof out->kind, "%s", GPU_NAME);
    size_t fr = 0, tot = 0;
    if (hipSetDevice(dev) == hipSuccess && hipMemGetInfo(&fr, &tot) == hipSuccess) {
        out->free_memory = fr;
        out->total_memory = tot;
    } else {
        out->free_memory = 0;
        out->total_memory = p.totalGlobalMem;
    }
    out->host_memory = 0;
    return TSR_OK;
}

static const tsr_backend_vtable gpu_vtable = {
    sizeof(tsr_backend_vtable), gpu_create, gpu_destroy, gpu_device_count, gpu_device_info,
    gpu_supports, gpu_compute, gpu_buffer_alloc, gpu_buffer_free, gpu_copy_to_device,
    gpu_copy_to_host,
};

static const tsr_plugin_desc gpu_desc = TSR_PLUGIN_DESC_INIT(
    TSR_PLUGIN_BACKEND, GPU_NAME, "0.1.0",
#if defined(TSR_GPU_CUDA)
    "NVIDIA GPUs: CUDA kernels, cuBLAS matmul",
#else
    "AMD GPUs (ROCm HIP): GPU kernels and a tiled GEMM",
#endif
    gpu_probe, &gpu_vtable);

TSR_PLUGIN_DEFINE_ENTRY
{
    g_host = host;
    return &gpu_desc;
}
