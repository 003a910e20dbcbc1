/* core/graph.h - graphs, the scheduler and the KV cache (core-internal).
 *
 * A tsr_graph is built anew for every forward step by a model plugin through
 * the host table (host.c).  Nodes are kept in creation order, which is a
 * valid execution order because a node can only name existing tensors as
 * inputs.  tsr__graph_compute() then
 *   1. assigns each node to the first backend of the run's list that
 *      supports it (per-op fallback),
 *   2. plans activation memory: each node's buffer is taken from one arena
 *      at an offset chosen by first-fit over the buffers still alive (a
 *      buffer dies after its last reader), so memory is reused within the
 *      step and the arena is reused across steps,
 *   3. runs maximal runs of consecutive nodes of one backend.
 */
#ifndef TESSERA_CORE_GRAPH_H
#define TESSERA_CORE_GRAPH_H

#include "internal.h"

/* One loaded backend of the run. */
typedef struct tsr__backend tsr__backend;
struct tsr__backend {
    const tsr_plugin_desc *desc;
    const tsr_backend_vtable *vt;
    void *state;
    char name[64];
    /* placement (placement.c): where this backend's data lives */
    int host_memory;        /* 1: node data are host addresses (cpu, onednn)  */
    tsr_device_info info;   /* device 0 as the plugin describes it           */
    char device[80];        /* "cpu", "onednn", "cuda:0", "fakedev:0"        */
    void *arena;            /* device backends: activations, from buffer_alloc */
    size_t arena_size;
};

/* A declared model weight bound to checkpoint data. */
typedef struct tsr__param {
    char *name;
    tsr_tensor t;           /* leaf; data points into the mmap or owned copy */
    void *owned;            /* converted copy, freed with the model          */
    uint32_t flags;
    int64_t ne[TSR_MAX_DIMS];
    int n_dims;
    bool quantized;         /* made by the quantizer (release through it)    */
    bool pending_quant;     /* bound as f32, to be quantized after calibration */
    bool offload;           /* device_map "disk": never uploaded; streamed    */
    void *dev_data;         /* copy on a device backend's memory, or NULL     */
    int dev_backend;        /* the backend owning dev_data (-1 none)          */
} tsr__param;

/* The per-layer KV cache: K and V, each [head_dim, n_kv_head, capacity] f32. */
typedef struct tsr__kv_cache {
    int n_layer, n_kv_head, head_dim;
    int64_t capacity;       /* positions allocated                          */
    int64_t max_capacity;   /* hard limit (n_ctx)                            */
    float **k, **v;         /* [n_layer]                                      */
    tsr_tensor *kt, *vt;    /* [n_layer] leaves describing them               */
    /* Where each layer's cache lives: -1 host, else the index of a device
     * backend in `backends` (the backend running that layer's attention). */
    int *dev;               /* [n_layer]                                      */
    struct tsr__backend *backends;
} tsr__kv_cache;

/* One device_map entry: module-name prefix (optionally with a layer range
 * "model.layers.0-15") -> backend index. */
typedef struct tsr__dmap_entry {
    char *prefix;           /* text before the range, or the whole prefix      */
    long lo, hi;            /* layer range; lo < 0: plain prefix               */
    int backend;            /* the backend that runs it                        */
    char *device;           /* as written ("cuda:0", "cpu", "onednn", "disk")  */
    bool disk;              /* weights stay memory-mapped, streamed to devices  */
} tsr__dmap_entry;

/* The backend the device map prefers for a node or weight name (longest
 * matching prefix), or -1. */
int tsr__dmap_lookup(const tsr__dmap_entry *map, size_t n, const char *name, size_t *match_len);
/* The same, returning the entry's index (-1 if none matches). */
int tsr__dmap_find(const tsr__dmap_entry *map, size_t n, const char *name);

/* What a graph needs from the model being run. */
typedef struct tsr__graph_env {
    tsr__param *params;
    size_t n_params;
    void *param_index;      /* hash: name -> param index                     */
    tsr__kv_cache *kv;
    tsr__backend *backends;
    int n_backends;
    tsr__dmap_entry *dmap;  /* device_map as a mapping, or NULL               */
    size_t n_dmap;
    const char *dump_dir;   /* write every node as .npy here, or NULL         */
    /* Called after each node is computed (nodes then run one at a time):
     * calibration and debugging hooks.  NULL when unused. */
    void (*observer)(void *user, const tsr_tensor *node);
    void *observer_user;
    int step;               /* step counter for dump file names               */
    int n_device_backends;  /* backends whose memory is not the host's; 0 keeps
                               the host-only path (no copies, one arena)     */
    struct tsr_graph *spare; /* a destroyed graph's memory, reused by the next */
} tsr__graph_env;

tsr_status tsr__graph_create(tsr__graph_env *env, int n_tokens, int n_past,
                             const int32_t *ids, tsr_graph **out);
/* Hands the graph's memory back to its environment for the next graph (or
 * frees it if the environment already holds one). */
void tsr__graph_destroy(tsr_graph *g);
/* Frees the memory a destroyed graph left in `env` (at model free). */
void tsr__graph_env_release(tsr__graph_env *env);
/* Assign every node to a backend (device map, then per-op fallback) and,
 * with device backends, put each layer's KV cache on the device of the
 * attention that reads it.  tsr__graph_compute calls it; placement.c also
 * calls it on a dry-run graph at load to learn which weights go where. */
tsr_status tsr__graph_schedule(tsr_graph *g);
/* Node i in execution order (compute nodes and views). */
tsr_tensor *tsr__graph_node(tsr_graph *g, size_t i);
/* Run all nodes. The host arena (reused across steps) lives in *arena;
 * device arenas in the backends.  With device backends, copies are
 * inserted where a node's input lives in another memory (see graph.c). */
tsr_status tsr__graph_compute(tsr_graph *g, void **arena, size_t *arena_size);
tsr_tensor *tsr__graph_output(tsr_graph *g);
size_t tsr__graph_n_nodes(const tsr_graph *g);

/* KV cache: make room for `n_total` positions (dynamic growth). */
tsr_status tsr__kv_create(int n_layer, int n_kv_head, int head_dim, int64_t max_ctx,
                          tsr__kv_cache **out);
tsr_status tsr__kv_reserve(tsr__kv_cache *kv, int64_t n_total);
void tsr__kv_destroy(tsr__kv_cache *kv);

/* Move layer l's K and V caches to backend `dev`'s memory (-1: host),
 * keeping their contents. */
tsr_status tsr__kv_move(tsr__kv_cache *kv, int l, int dev);

/* Param lookup by name (NULL if absent); the param a tensor belongs to. */
tsr__param *tsr__param_find(const tsr__graph_env *env, const char *name);
tsr__param *tsr__param_of(const tsr__graph_env *env, const tsr_tensor *t);
/* Bytes from a tensor's first to one past its last element (its strides). */
size_t tsr__tensor_span(const tsr_tensor *t);

/* Host-table entry points implemented in graph.c. */
tsr_tensor *tsr__g_node(tsr_graph *g, tsr_op op, uint32_t dtype, int n_dims,
                        const int64_t *ne, tsr_tensor *const *src, int n_src,
                        const int32_t *params, int n_params, const char *name);
tsr_tensor *tsr__g_view(tsr_graph *g, tsr_tensor *src, int n_dims, const int64_t *ne,
                        const size_t *nb, size_t offset, const char *name);
tsr_tensor *tsr__g_constant(tsr_graph *g, uint32_t dtype, int n_dims, const int64_t *ne,
                            const void *data, const char *name);
tsr_tensor *tsr__g_param(tsr_graph *g, const char *name);
tsr_tensor *tsr__g_input_ids(tsr_graph *g);
tsr_tensor *tsr__g_input_positions(tsr_graph *g);
tsr_tensor *tsr__g_kv_cache(tsr_graph *g, int layer, int which);
void tsr__g_set_output(tsr_graph *g, tsr_tensor *t);

#endif
