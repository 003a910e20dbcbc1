/* tessera/plugin/backend.h - the backend plugin kind.
 *
 * A backend owns devices, their buffers, and the kernels that run graph
 * nodes.  The scheduler asks supports() for each node, in the order of the
 * configured `backends:` list, and gives each node to the first that says
 * yes (per-op fallback).  compute() then gets runs of consecutive nodes
 * assigned to it, so whole-segment execution (fusion, CUDA graphs) stays
 * possible.  Append-only vtable; optional members may be NULL.
 */
#ifndef TESSERA_PLUGIN_BACKEND_H
#define TESSERA_PLUGIN_BACKEND_H

#include "host.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_backend_options {
    uint32_t struct_size;
    int32_t n_threads;        /* 0 = one per core                         */
    int32_t device;           /* device index the backend should use      */
    /* since 1.0: append below. */
} tsr_backend_options;

typedef struct tsr_device_info {
    uint32_t struct_size;
    char name[64];            /* "cpu", "NVIDIA H100 80GB HBM3", ...      */
    char kind[16];            /* "cpu", "cuda", "hip"                     */
    uint64_t total_memory;    /* bytes, 0 if unknown                      */
    uint64_t free_memory;     /* bytes, 0 if unknown                      */
    int32_t host_memory;      /* 1 if buffers are ordinary host memory    */
    /* since 1.0: append below. */
} tsr_device_info;

typedef struct tsr_backend_vtable {
    uint32_t struct_size;
    /* Create the backend's state (thread pools, device contexts). */
    tsr_status (*create)(const tsr_host *host, const tsr_backend_options *opt,
                         void **state);
    void (*destroy)(void *state);
    int (*device_count)(void *state);
    tsr_status (*device_info)(void *state, int device, tsr_device_info *out);
    /* 1 if this backend can compute `node` (op, dtypes, shapes). Cheap. */
    int (*supports)(void *state, const tsr_tensor *node);
    /* Compute nodes[0..n) in order.  Inputs are ready; outputs' data set. */
    tsr_status (*compute)(void *state, tsr_tensor *const *nodes, int n);
    /* Device buffers; for host-memory backends these may be NULL. */
    tsr_status (*buffer_alloc)(void *state, size_t size, void **out);
    void (*buffer_free)(void *state, void *buf);
    tsr_status (*copy_to_device)(void *state, void *dst, const void *src, size_t n);
    tsr_status (*copy_to_host)(void *state, void *dst, const void *src, size_t n);
    /* since 1.0: append below. */
} tsr_backend_vtable;

#ifdef __cplusplus
}
#endif
#endif /* TESSERA_PLUGIN_BACKEND_H */
