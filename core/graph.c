/* core/graph.c - graph building, memory planning, scheduling, execution,
 * tensor dumps, and the KV cache.  See graph.h for the model of operation. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "graph.h"

/* A node as the core keeps it: the public tensor first, then planning state. */
typedef struct gnode {
    tsr_tensor t;
    size_t view_offset;     /* views: byte offset into the base's data      */
    struct gnode *owner;    /* whose storage this aliases (self if own)      */
    size_t arena_offset;    /* planned offset of own storage                 */
    size_t nbytes;          /* own storage size                              */
    int index;              /* position in g->nodes, -1 for leaves           */
    int last_use;           /* index of the last node reading this storage   */
    int is_compute;         /* needs a backend                               */
    int dom;                /* memory it lives in: -1 host, else a device
                               backend's index (see tsr__graph_compute)      */
    int xfer_from;          /* copies made by the core: the source's memory  */
    int is_xfer;            /* 1: a copy between memories, run by the core   */
} gnode;

/* Private flag on tensors created by a graph (as opposed to weights and
 * KV-cache leaves owned by the model). */
#define GRAPH_OWNED 0x80000000u
static gnode *as_node(tsr_tensor *t)
{
    return t && (t->flags & GRAPH_OWNED) ? (gnode *)t : NULL;
}

/* Graph memory: tensors, names, constants and the token arrays come from a
 * bump allocator over chunks that a destroyed graph hands back to its
 * environment with every array's capacity, so that decode steps after the
 * first allocate nothing (checked by unit.test_graph_alloc). */
typedef struct gchunk {
    struct gchunk *next;
    size_t size, used;
    _Alignas(64) unsigned char data[];
} gchunk;

struct tsr_graph {
    tsr__graph_env *env;
    gchunk *chunks, *cur;   /* bump allocator (chunks kept across graphs)    */
    gnode **spare_nodes;    /* place_copies' second node array              */
    size_t cap_spare_nodes;
    struct live *lv;        /* plan()'s live buffers                        */
    size_t cap_lv;
    tsr_tensor **run;       /* compute's runs                               */
    size_t cap_run;
    int n_tokens, n_past;
    gnode **nodes;          /* compute nodes and views in creation order    */
    size_t n_nodes, cap_nodes;
    gnode *ids, *pos, *output;
    int32_t *ids_data, *pos_data;
    struct shadow *shadows; /* with device backends: a tensor's copy in       */
    size_t n_shadows, cap_shadows; /* another memory (one per source+memory) */
};

/* A tensor's stand-in in another memory: a weight's device copy (a leaf) or
 * a copy made by the core just before its first reader there. */
typedef struct shadow { const tsr_tensor *src; int dom; gnode *n; } shadow;

/* Zeroed memory aligned to 64 bytes that lives until the graph is destroyed. */
static void *galloc(tsr_graph *g, size_t size)
{
    size = (size + 63) & ~(size_t)63;
    for (;;) {
        gchunk *c = g->cur;
        if (c && c->size - c->used >= size) {
            void *p = c->data + c->used;
            c->used += size;
            memset(p, 0, size);
            return p;
        }
        if (c && c->next) { /* a chunk kept from an earlier graph */
            g->cur = c->next;
            g->cur->used = 0;
            continue;
        }
        size_t sz = size > 256 * 1024 ? size : 256 * 1024;
        gchunk *n = malloc(sizeof *n + sz);
        if (!n)
            return NULL;
        n->next = NULL;
        n->size = sz;
        n->used = 0;
        if (c)
            c->next = n;
        else
            g->chunks = n;
        g->cur = n;
    }
}

static bool push(void ***arr, size_t *n, size_t *cap, void *p)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        void **na = realloc(*arr, nc * sizeof *na);
        if (!na)
            return false;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = p;
    return true;
}

static const char *keep_name(tsr_graph *g, const char *name)
{
    size_t len = strlen(name ? name : "");
    char *s = galloc(g, len + 1);
    if (s)
        memcpy(s, name ? name : "", len);
    return s;
}

static void set_contiguous(tsr_tensor *t)
{
    size_t es = tsr__dtype_size(t->dtype);
    t->nb[0] = es;
    for (int d = 1; d < TSR_MAX_DIMS; d++)
        t->nb[d] = t->nb[d - 1] * (size_t)t->ne[d - 1];
}

static gnode *new_tensor(tsr_graph *g, uint32_t dtype, int n_dims, const int64_t *ne,
                         const char *name)
{
    if (n_dims < 1 || n_dims > TSR_MAX_DIMS) {
        tsr__error(TSR_ERR_INTERNAL, "tensor '%s': %d dimensions (1..4 allowed)",
                   name ? name : "?", n_dims);
        return NULL;
    }
    gnode *n = galloc(g, sizeof *n);
    if (!n) {
        tsr__error(TSR_ERR_NOMEM, "out of memory building the graph");
        return NULL;
    }
    n->t.struct_size = sizeof(tsr_tensor);
    n->t.dtype = dtype;
    for (int d = 0; d < TSR_MAX_DIMS; d++)
        n->t.ne[d] = d < n_dims ? ne[d] : 1;
    set_contiguous(&n->t);
    n->t.name = keep_name(g, name);
    n->t.device = -1;
    n->t.flags = GRAPH_OWNED;
    n->owner = n;
    n->index = -1;
    n->last_use = -1;
    n->dom = -1;
    return n;
}

tsr_tensor *tsr__g_node(tsr_graph *g, tsr_op op, uint32_t dtype, int n_dims,
                        const int64_t *ne, tsr_tensor *const *src, int n_src,
                        const int32_t *params, int n_params, const char *name)
{
    if (op <= TSR_OP_NONE || op >= TSR_OP_COUNT_ || n_src > TSR_MAX_SRC ||
        n_params > TSR_MAX_OP_PARAMS || n_src < 0 || n_params < 0) {
        tsr__error(TSR_ERR_INVALID_ARG, "node '%s': invalid op %d or argument counts",
                   name ? name : "?", (int)op);
        return NULL;
    }
    for (int i = 0; i < n_src; i++)
        if (!src[i] && !(op == TSR_OP_RMS_NORM || op == TSR_OP_MUL_MAT || op == TSR_OP_LAYER_NORM)) {
            tsr__error(TSR_ERR_INVALID_ARG, "node '%s': input %d is missing", name ? name : "?", i);
            return NULL;
        }
    gnode *n = new_tensor(g, dtype, n_dims, ne, name);
    if (!n)
        return NULL;
    n->t.op = op;
    for (int i = 0; i < n_src; i++)
        n->t.src[i] = src[i];
    if (params)
        memcpy(n->t.op_params, params, (size_t)n_params * sizeof *params);
    n->is_compute = 1;
    n->nbytes = (size_t)tsr_tensor_nelements(&n->t) * tsr__dtype_size(dtype);
    if (op == TSR_OP_KV_STORE) { /* writes into the cache in place */
        gnode *c = as_node(src[1]);
        n->owner = c ? c->owner : NULL;
    }
    n->index = (int)g->n_nodes;
    if (!push((void ***)&g->nodes, &g->n_nodes, &g->cap_nodes, n)) {
        tsr__error(TSR_ERR_NOMEM, "out of memory building the graph");
        return NULL;
    }
    return &n->t;
}

tsr_tensor *tsr__g_view(tsr_graph *g, tsr_tensor *src, int n_dims, const int64_t *ne,
                        const size_t *nb, size_t offset, const char *name)
{
    if (!src)
        return NULL;
    gnode *s = as_node(src);
    gnode *n = new_tensor(g, src->dtype, n_dims, ne, name);
    if (!n)
        return NULL;
    if (nb)
        for (int d = 0; d < n_dims; d++)
            n->t.nb[d] = nb[d];
    /* unused outer strides stay consistent with a contiguous layout */
    n->t.flags |= TSR_TENSOR_FLAG_VIEW;
    n->t.src[0] = src;
    n->view_offset = offset;
    n->owner = s ? s->owner : NULL;
    n->t.data = src->data ? (char *)src->data + offset : NULL;
    n->index = (int)g->n_nodes;
    if (!push((void ***)&g->nodes, &g->n_nodes, &g->cap_nodes, n)) {
        tsr__error(TSR_ERR_NOMEM, "out of memory building the graph");
        return NULL;
    }
    return &n->t;
}

tsr_tensor *tsr__g_constant(tsr_graph *g, uint32_t dtype, int n_dims, const int64_t *ne,
                            const void *data, const char *name)
{
    gnode *n = new_tensor(g, dtype, n_dims, ne, name);
    if (!n)
        return NULL;
    size_t bytes = (size_t)tsr_tensor_nelements(&n->t) * tsr__dtype_size(dtype);
    void *copy = galloc(g, bytes);
    if (!copy) {
        tsr__error(TSR_ERR_NOMEM, "out of memory for constant '%s'", name ? name : "?");
        return NULL;
    }
    memcpy(copy, data, bytes);
    n->t.data = copy;
    return &n->t;
}

tsr_tensor *tsr__g_param(tsr_graph *g, const char *name)
{
    tsr__param *p = tsr__param_find(g->env, name);
    if (!p) {
        tsr__error(TSR_ERR_NOT_FOUND, "the model asked for weight '%s', which it did not declare",
                   name);
        return NULL;
    }
    if (!p->t.data) {
        tsr__error(TSR_ERR_NOT_FOUND, "weight '%s' is optional and absent from the checkpoint",
                   name);
        return NULL;
    }
    return &p->t;
}

tsr_tensor *tsr__g_input_ids(tsr_graph *g) { return g->ids ? &g->ids->t : NULL; }
tsr_tensor *tsr__g_input_positions(tsr_graph *g) { return g->pos ? &g->pos->t : NULL; }

tsr_tensor *tsr__g_kv_cache(tsr_graph *g, int layer, int which)
{
    tsr__kv_cache *kv = g->env->kv;
    if (!kv || layer < 0 || layer >= kv->n_layer || which < 0 || which > 1) {
        tsr__error(TSR_ERR_INVALID_ARG, "no KV cache for layer %d", layer);
        return NULL;
    }
    return which ? &kv->vt[layer] : &kv->kt[layer];
}

void tsr__g_set_output(tsr_graph *g, tsr_tensor *t) { g->output = as_node(t); }
tsr_tensor *tsr__graph_output(tsr_graph *g) { return g->output ? &g->output->t : NULL; }
size_t tsr__graph_n_nodes(const tsr_graph *g) { return g->n_nodes; }

tsr_status tsr__graph_create(tsr__graph_env *env, int n_tokens, int n_past,
                             const int32_t *ids, tsr_graph **out)
{
    tsr_graph *g = env->spare; /* the last graph's memory, if it is free */
    if (g) {
        env->spare = NULL;
    } else if (!(g = calloc(1, sizeof *g))) {
        return tsr__error(TSR_ERR_NOMEM, "out of memory creating a graph");
    }
    g->env = env;
    g->n_tokens = n_tokens;
    g->n_past = n_past;
    int64_t ne[1] = {n_tokens};
    g->ids_data = galloc(g, (size_t)n_tokens * sizeof(int32_t));
    g->pos_data = galloc(g, (size_t)n_tokens * sizeof(int32_t));
    g->ids = new_tensor(g, TSR_DTYPE_I32, 1, ne, "input_ids");
    g->pos = new_tensor(g, TSR_DTYPE_I32, 1, ne, "position_ids");
    if (!g->ids_data || !g->pos_data || !g->ids || !g->pos) {
        tsr__graph_destroy(g);
        return tsr__error(TSR_ERR_NOMEM, "out of memory creating a graph");
    }
    memcpy(g->ids_data, ids, (size_t)n_tokens * sizeof(int32_t));
    for (int i = 0; i < n_tokens; i++)
        g->pos_data[i] = n_past + i;
    g->ids->t.data = g->ids_data;
    g->pos->t.data = g->pos_data;
    g->ids->t.flags |= TSR_TENSOR_FLAG_INPUT;
    g->pos->t.flags |= TSR_TENSOR_FLAG_INPUT;
    *out = g;
    return TSR_OK;
}

static void graph_free(tsr_graph *g)
{
    while (g->chunks) {
        gchunk *n = g->chunks->next;
        free(g->chunks);
        g->chunks = n;
    }
    free(g->nodes);
    free(g->spare_nodes);
    free(g->shadows);
    free(g->lv);
    free(g->run);
    free(g);
}

void tsr__graph_destroy(tsr_graph *g)
{
    if (!g)
        return;
    tsr__graph_env *env = g->env;
    if (!env || env->spare) {
        graph_free(g);
        return;
    }
    /* keep the memory for the next graph: empty, with its capacities */
    g->cur = g->chunks;
    if (g->cur)
        g->cur->used = 0;
    g->n_nodes = g->n_shadows = 0;
    g->ids = g->pos = g->output = NULL;
    g->ids_data = g->pos_data = NULL;
    env->spare = g;
}

void tsr__graph_env_release(tsr__graph_env *env)
{
    if (env->spare)
        graph_free(env->spare);
    env->spare = NULL;
}

/* --- memory planning ---------------------------------------------------------- */

typedef struct live { size_t off, size; gnode *n; } live;

/* First-fit placement of `size` bytes among the live buffers (sorted by
 * offset); returns the offset and inserts the buffer. */
static bool place(live **lv, size_t *n_live, size_t *cap, gnode *n, size_t size, size_t *peak)
{
    size = (size + 63) & ~(size_t)63;
    size_t off = 0, at = 0;
    for (; at < *n_live; at++) {
        if ((*lv)[at].off >= off + size)
            break;
        size_t end = (*lv)[at].off + (*lv)[at].size;
        if (end > off)
            off = end;
    }
    if (*n_live == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        live *nl = realloc(*lv, nc * sizeof *nl);
        if (!nl)
            return false;
        *lv = nl;
        *cap = nc;
    }
    memmove(*lv + at + 1, *lv + at, (*n_live - at) * sizeof **lv);
    (*lv)[at] = (live){off, size, n};
    (*n_live)++;
    n->arena_offset = off;
    if (off + size > *peak)
        *peak = off + size;
    return true;
}

static void last_uses(tsr_graph *g)
{
    /* last reader of every storage owner */
    for (size_t i = 0; i < g->n_nodes; i++) {
        gnode *n = g->nodes[i];
        for (int s = 0; s < TSR_MAX_SRC; s++) {
            gnode *src = as_node(n->t.src[s]);
            if (src && src->owner)
                src->owner->last_use = (int)i;
        }
        if (n->owner && n->owner != n && (int)i > n->owner->last_use)
            n->owner->last_use = (int)i;
    }
    if (g->output && g->output->owner)
        g->output->owner->last_use = (int)g->n_nodes; /* kept to the end */
}

/* Offsets for the buffers of the nodes living in memory `dom`. */
static tsr_status plan(tsr_graph *g, int dom, size_t *peak_out)
{
    size_t n_live = 0, peak = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        gnode *n = g->nodes[i];
        if (n->is_compute && n->owner == n && n->dom == dom &&
            !place(&g->lv, &n_live, &g->cap_lv, n, n->nbytes, &peak))
            return tsr__error(TSR_ERR_NOMEM, "out of memory planning the graph");
        live *lv = g->lv;
        /* release every buffer whose last reader is this node */
        for (size_t k = 0; k < n_live;) {
            if (lv[k].n->last_use <= (int)i && lv[k].n != n) {
                memmove(lv + k, lv + k + 1, (n_live - k - 1) * sizeof *lv);
                n_live--;
            } else {
                k++;
            }
        }
    }
    *peak_out = peak;
    return TSR_OK;
}

/* --- dumps ------------------------------------------------------------------ */

/* Write a tensor as a NumPy .npy file, shape in PyTorch order. */
static void dump_npy(const char *dir, int step, const tsr_tensor *t)
{
    if (t->dtype != TSR_DTYPE_F32 && t->dtype != TSR_DTYPE_I32)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/step%03d.%s.npy", dir, step, t->name);
    FILE *f = fopen(path, "wb");
    if (!f && errno == ENOENT && mkdir(dir, 0777) == 0)
        f = fopen(path, "wb"); /* first dump: create the folder */
    if (!f) {
        static _Thread_local int warned;
        if (!warned++)
            tsr__log(TSR_LOG_WARN, "cannot write tensor dumps into %s: %s", dir, strerror(errno));
        return;
    }
    int nd = TSR_MAX_DIMS;
    while (nd > 1 && t->ne[nd - 1] == 1)
        nd--;
    char hdr[256], shape[128] = "";
    for (int d = nd - 1; d >= 0; d--) {
        char b[32];
        snprintf(b, sizeof b, "%lld, ", (long long)t->ne[d]);
        strcat(shape, b);
    }
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '<%s', 'fortran_order': False, 'shape': (%s), }",
                      t->dtype == TSR_DTYPE_F32 ? "f4" : "i4", shape);
    int total = 10 + hl + 1;
    int pad = (64 - total % 64) % 64;
    uint16_t hlen = (uint16_t)(hl + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(&hlen, 2, 1, f);
    fwrite(hdr, 1, (size_t)hl, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    /* element by element through the strides (views may be strided) */
    for (int64_t i3 = 0; i3 < t->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < t->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < t->ne[1]; i1++) {
                const char *row = (const char *)t->data + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
                for (int64_t i0 = 0; i0 < t->ne[0]; i0++)
                    fwrite(row + i0 * t->nb[0], 4, 1, f);
            }
    fclose(f);
}

/* --- execution ------------------------------------------------------------------- */

int tsr__dmap_find(const tsr__dmap_entry *map, size_t n, const char *name)
{
    int best = -1;
    size_t best_len = 0;
    for (size_t i = 0; i < n; i++) {
        const tsr__dmap_entry *e = &map[i];
        size_t pl = strlen(e->prefix), len;
        if (strncmp(name, e->prefix, pl) != 0)
            continue;
        if (e->lo >= 0) { /* "model.layers.0-15": a layer number in range */
            char *end;
            long v = strtol(name + pl, &end, 10);
            if (end == name + pl || v < e->lo || v > e->hi || (*end && *end != '.'))
                continue;
            len = (size_t)(end - name);
        } else {
            if (pl && name[pl] && name[pl] != '.' && e->prefix[pl - 1] != '.')
                continue; /* "model.layers.1" must not match "model.layers.10" */
            len = pl;
        }
        if (best < 0 || len > best_len) {
            best = (int)i;
            best_len = len;
        }
    }
    return best;
}

int tsr__dmap_lookup(const tsr__dmap_entry *map, size_t n, const char *name, size_t *match_len)
{
    int e = tsr__dmap_find(map, n, name);
    if (match_len) {
        *match_len = 0;
        if (e >= 0) {
            const char *end = name + strlen(map[e].prefix);
            if (map[e].lo >= 0)
                while (*end >= '0' && *end <= '9')
                    end++;
            *match_len = (size_t)(end - name);
        }
    }
    return e >= 0 ? map[e].backend : -1;
}

static tsr_status assign_backends(tsr_graph *g)
{
    tsr__graph_env *env = g->env;
    for (size_t i = 0; i < g->n_nodes; i++) {
        gnode *n = g->nodes[i];
        if (!n->is_compute)
            continue;
        /* the device map's choice first, then the backends list in order */
        int pref = env->n_dmap ? tsr__dmap_lookup(env->dmap, env->n_dmap, n->t.name, NULL) : -1;
        if (pref >= 0 && env->backends[pref].vt->supports(env->backends[pref].state, &n->t)) {
            n->t.backend = (uint32_t)pref;
            continue;
        }
        int b = 0;
        for (; b < env->n_backends; b++)
            if (env->backends[b].vt->supports(env->backends[b].state, &n->t))
                break;
        if (b == env->n_backends)
            return tsr__error(TSR_ERR_UNSUPPORTED,
                              "no configured backend can run node '%s' (op %u, weight type %s)",
                              n->t.name, n->t.op,
                              n->t.src[0] ? tsr__dtype_name(n->t.src[0]->dtype) : "-");
        n->t.backend = (uint32_t)b;
    }
    return TSR_OK;
}

/* --- placement across memories ------------------------------------------------------ */

/* The memory a backend computes in: -1 for the host, else its own index. */
static int backend_dom(const tsr__graph_env *env, uint32_t b)
{
    return env->backends[b].host_memory ? -1 : (int)b;
}

/* The layer whose KV cache leaf `t` is, or -1. */
static int kv_layer(const tsr__kv_cache *kv, const tsr_tensor *t)
{
    if (!kv || !(t->flags & TSR_TENSOR_FLAG_CACHE))
        return -1;
    if (t >= kv->kt && t < kv->kt + kv->n_layer)
        return (int)(t - kv->kt);
    if (t >= kv->vt && t < kv->vt + kv->n_layer)
        return (int)(t - kv->vt);
    return -1;
}

/* Where a tensor's data lives now.  Weights: their host data is always
 * valid (a device copy is reached through a shadow). */
static int tensor_dom(const tsr_graph *g, const tsr_tensor *t)
{
    gnode *n = as_node((tsr_tensor *)t);
    if (n)
        return n->dom;
    int l = kv_layer(g->env->kv, t);
    return l >= 0 ? g->env->kv->dev[l] : -1;
}

/* The KV cache of a layer lives where its attention runs: the cache store
 * goes with it, and the cache moves there (once; it stays afterwards). */
static tsr_status place_kv(tsr_graph *g)
{
    tsr__graph_env *env = g->env;
    for (size_t i = 0; i < g->n_nodes; i++) {
        gnode *a = g->nodes[i];
        if (a->t.op != TSR_OP_ATTENTION || !a->is_compute)
            continue;
        int d = backend_dom(env, a->t.backend);
        for (int w = 1; w <= 2; w++) {
            gnode *st = as_node(a->t.src[w]);
            tsr_tensor *leaf = st && st->t.op == TSR_OP_KV_STORE ? st->t.src[1] : a->t.src[w];
            int l = leaf ? kv_layer(env->kv, leaf) : -1;
            if (l < 0)
                continue;
            if (st && st->t.op == TSR_OP_KV_STORE && backend_dom(env, st->t.backend) != d) {
                if (!env->backends[a->t.backend].vt->supports(env->backends[a->t.backend].state,
                                                              &st->t))
                    return tsr__error(TSR_ERR_UNSUPPORTED,
                                      "backend '%s' runs '%s' but cannot store its KV cache "
                                      "('%s'), and the cache must live in its memory",
                                      env->backends[a->t.backend].name, a->t.name, st->t.name);
                st->t.backend = a->t.backend;
            }
            if (env->kv->dev[l] != d) {
                tsr_status s = tsr__kv_move(env->kv, l, d);
                if (s)
                    return s;
            }
        }
    }
    return TSR_OK;
}

tsr_status tsr__graph_schedule(tsr_graph *g)
{
    tsr_status st = assign_backends(g);
    if (!st && g->env->n_device_backends)
        st = place_kv(g);
    return st;
}

tsr_tensor *tsr__graph_node(tsr_graph *g, size_t i) { return &g->nodes[i]->t; }

size_t tsr__tensor_span(const tsr_tensor *t)
{
    size_t es = tsr__dtype_size(t->dtype);
    if (es == 0 || t->nb[0] == 0) /* block formats: whole rows */
        return t->nb[1] * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
    size_t span = es;
    for (int d = 0; d < TSR_MAX_DIMS; d++)
        span += (size_t)(t->ne[d] - 1) * t->nb[d];
    return span;
}

tsr__param *tsr__param_of(const tsr__graph_env *env, const tsr_tensor *t)
{
    const char *p = (const char *)t, *lo = (const char *)env->params;
    if (!env->params || p < lo || p >= (const char *)(env->params + env->n_params))
        return NULL;
    tsr__param *pr = &env->params[(size_t)(p - lo) / sizeof *env->params];
    return &pr->t == t ? pr : NULL;
}

/* The stand-in for `s` in memory `dom`: a weight's uploaded copy, or a copy
 * node inserted now (before the node being placed, its first reader). */
static gnode *shadow_for(tsr_graph *g, tsr_tensor *s, int dom)
{
    for (size_t i = 0; i < g->n_shadows; i++)
        if (g->shadows[i].src == s && g->shadows[i].dom == dom)
            return g->shadows[i].n;
    if (g->n_shadows == g->cap_shadows) {
        size_t nc = g->cap_shadows ? g->cap_shadows * 2 : 64;
        shadow *ns = realloc(g->shadows, nc * sizeof *ns);
        if (!ns)
            return NULL;
        g->shadows = ns;
        g->cap_shadows = nc;
    }
    char name[512];
    snprintf(name, sizeof name, "%s@%s", s->name ? s->name : "?",
             dom < 0 ? "host" : g->env->backends[dom].device);
    int64_t ne[TSR_MAX_DIMS] = {s->ne[0], s->ne[1], s->ne[2], s->ne[3]};
    gnode *n = new_tensor(g, s->dtype, TSR_MAX_DIMS, ne, name);
    if (!n)
        return NULL;
    memcpy(n->t.nb, s->nb, sizeof n->t.nb);
    n->t.format_data = s->format_data;
    n->dom = dom;
    tsr__param *p = tsr__param_of(g->env, s);
    if (p && p->dev_data && p->dev_backend == dom) {
        /* an uploaded weight: a leaf pointing at its device copy */
        n->t.flags |= TSR_TENSOR_FLAG_PARAM;
        n->t.data = p->dev_data;
    } else {
        /* a copy by the core (activations; weights offloaded or used on a
         * second device are streamed here before every use) */
        n->t.op = TSR_OP_CPY;
        n->t.src[0] = s;
        n->is_compute = 1;
        n->is_xfer = 1;
        n->xfer_from = tensor_dom(g, s);
        n->nbytes = tsr__tensor_span(s);
        n->index = (int)g->n_nodes;
        if (!push((void ***)&g->nodes, &g->n_nodes, &g->cap_nodes, n))
            return NULL;
    }
    g->shadows[g->n_shadows++] = (shadow){s, dom, n};
    return n;
}

/* Give every node the memory of its backend and read inputs that live
 * elsewhere through shadows; the output comes back to the host. */
static tsr_status place_copies(tsr_graph *g)
{
    gnode **old = g->nodes; /* the nodes again, copies inserted, into the
                               second array (both kept for the next graph) */
    size_t n_old = g->n_nodes, cap_old = g->cap_nodes;
    g->nodes = g->spare_nodes;
    g->cap_nodes = g->cap_spare_nodes;
    g->n_nodes = 0;
    tsr_status st = TSR_OK;
    for (size_t i = 0; i < n_old && !st; i++) {
        gnode *n = old[i];
        if (n->t.flags & TSR_TENSOR_FLAG_VIEW) {
            n->dom = tensor_dom(g, n->t.src[0]);
        } else if (n->is_compute) {
            int d = backend_dom(g->env, n->t.backend);
            for (int k = 0; k < TSR_MAX_SRC; k++) {
                tsr_tensor *s = n->t.src[k];
                if (!s || tensor_dom(g, s) == d)
                    continue;
                gnode *sh = shadow_for(g, s, d);
                if (!sh) {
                    st = tsr__error(TSR_ERR_NOMEM, "out of memory placing the graph");
                    break;
                }
                n->t.src[k] = &sh->t;
            }
            n->dom = d;
        }
        n->index = (int)g->n_nodes;
        if (!push((void ***)&g->nodes, &g->n_nodes, &g->cap_nodes, n))
            st = tsr__error(TSR_ERR_NOMEM, "out of memory placing the graph");
    }
    g->spare_nodes = old;
    g->cap_spare_nodes = cap_old;
    if (!st && g->output && g->output->dom >= 0) { /* the logits come back to the host */
        gnode *h = shadow_for(g, &g->output->t, -1);
        if (!h)
            return tsr__error(TSR_ERR_NOMEM, "out of memory placing the graph");
        g->output = h;
    }
    return st;
}

/* Run a copy node: host <-> device through the device's backend, device
 * <-> device through a host buffer (the ABI has no peer copy). */
static tsr_status run_copy(tsr__graph_env *env, gnode *n)
{
    const void *src = n->t.src[0]->data;
    size_t bytes = n->nbytes;
    int from = n->xfer_from, to = n->dom;
    tsr_status st;
    if (from < 0 && to >= 0)
        st = env->backends[to].vt->copy_to_device(env->backends[to].state, n->t.data, src, bytes);
    else if (from >= 0 && to < 0)
        st = env->backends[from].vt->copy_to_host(env->backends[from].state, n->t.data, src, bytes);
    else {
        void *tmp = tsr__alloc(bytes);
        if (!tmp)
            return tsr__error(TSR_ERR_NOMEM, "out of memory copying '%s'", n->t.name);
        st = env->backends[from].vt->copy_to_host(env->backends[from].state, tmp, src, bytes);
        if (!st)
            st = env->backends[to].vt->copy_to_device(env->backends[to].state, n->t.data, tmp, bytes);
        tsr__free(tmp);
    }
    if (st)
        return tsr__error_prefix(st, "copying '%s' (%zu bytes)", n->t.name, bytes);
    return TSR_OK;
}

/* Make sure a device backend's arena holds `need` bytes (kept across steps). */
static tsr_status device_arena(tsr__backend *b, size_t need)
{
    if (need <= b->arena_size)
        return TSR_OK;
    if (b->arena)
        b->vt->buffer_free(b->state, b->arena);
    b->arena = NULL;
    b->arena_size = 0;
    tsr_status st = b->vt->buffer_alloc(b->state, need, &b->arena);
    if (st)
        return tsr__error_prefix(st, "activations on %s need %zu bytes", b->device, need);
    b->arena_size = need;
    return TSR_OK;
}

static void dump_node(tsr__graph_env *env, const gnode *n)
{
    if (n->dom < 0) {
        dump_npy(env->dump_dir, env->step, &n->t);
        return;
    }
    tsr_tensor t = n->t; /* device data: through a host copy */
    size_t bytes = tsr__tensor_span(&t);
    void *tmp = tsr__alloc(bytes);
    tsr__backend *b = &env->backends[n->dom];
    if (tmp && !b->vt->copy_to_host(b->state, tmp, t.data, bytes)) {
        t.data = tmp;
        dump_npy(env->dump_dir, env->step, &t);
    }
    tsr__free(tmp);
}

tsr_status tsr__graph_compute(tsr_graph *g, void **arena, size_t *arena_size)
{
    tsr__graph_env *env = g->env;
    tsr_status st = tsr__graph_schedule(g);
    if (st)
        return st;
    if (env->n_device_backends && (st = place_copies(g)))
        return st;
    last_uses(g);
    size_t peak = 0;
    if ((st = plan(g, -1, &peak)))
        return st;
    if (peak > *arena_size) {
        tsr__free(*arena);
        *arena = tsr__alloc(peak);
        *arena_size = *arena ? peak : 0;
        if (!*arena)
            return tsr__error(TSR_ERR_NOMEM,
                              "out of memory: activations need %zu bytes", peak);
    }
    /* one arena per device backend, planned like the host's */
    for (int b = 0; env->n_device_backends && b < env->n_backends; b++) {
        if (env->backends[b].host_memory)
            continue;
        size_t dpeak = 0;
        if ((st = plan(g, b, &dpeak)) || (dpeak && (st = device_arena(&env->backends[b], dpeak))))
            return st;
    }
    /* resolve data pointers in order: own storage, aliases, views */
    for (size_t i = 0; i < g->n_nodes; i++) {
        gnode *n = g->nodes[i];
        if (n->t.flags & TSR_TENSOR_FLAG_VIEW)
            n->t.data = (char *)n->t.src[0]->data + n->view_offset;
        else if (n->owner == n)
            n->t.data = (char *)(n->dom < 0 ? *arena : env->backends[n->dom].arena) +
                        n->arena_offset;
        else
            n->t.data = n->t.src[1]->data; /* in place (KV store) */
    }
    /* run maximal runs of one backend (one node at a time when dumping);
     * copies between memories are run by the core between them */
    if (g->cap_run < g->n_nodes) {
        tsr_tensor **nr = realloc(g->run, g->n_nodes * sizeof *nr);
        if (!nr)
            return tsr__error(TSR_ERR_NOMEM, "out of memory running the graph");
        g->run = nr;
        g->cap_run = g->n_nodes;
    }
    tsr_tensor **run = g->run;
    size_t i = 0;
    while (i < g->n_nodes) {
        if (!g->nodes[i]->is_compute) {
            i++;
            continue;
        }
        if (g->nodes[i]->is_xfer) {
            if ((st = run_copy(env, g->nodes[i])))
                return st;
            i++;
            continue;
        }
        uint32_t b = g->nodes[i]->t.backend;
        int n = 0;
        size_t first = i;
        while (i < g->n_nodes && !g->nodes[i]->is_xfer &&
               (!g->nodes[i]->is_compute || g->nodes[i]->t.backend == b)) {
            if (g->nodes[i]->is_compute)
                run[n++] = &g->nodes[i]->t;
            i++;
            if (env->dump_dir || env->observer)
                break;
        }
        st = env->backends[b].vt->compute(env->backends[b].state, run, n);
        if (st) {
            tsr__error_prefix(st, "backend '%s' failed in the run starting at node '%s'",
                              env->backends[b].name, run[0]->name);
            return st;
        }
        if (env->dump_dir)
            for (size_t k = first; k < i; k++)
                if (g->nodes[k]->is_compute)
                    dump_node(env, g->nodes[k]);
        for (int k = 0; env->observer && k < n; k++)
            env->observer(env->observer_user, run[k]);
    }
    return TSR_OK;
}

/* --- KV cache -------------------------------------------------------------------- */

tsr_status tsr__kv_create(int n_layer, int n_kv_head, int head_dim, int64_t max_ctx,
                          tsr__kv_cache **out)
{
    tsr__kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv)
        return tsr__error(TSR_ERR_NOMEM, "out of memory for the KV cache");
    kv->n_layer = n_layer;
    kv->n_kv_head = n_kv_head;
    kv->head_dim = head_dim;
    kv->max_capacity = max_ctx;
    kv->k = calloc((size_t)n_layer, sizeof *kv->k);
    kv->v = calloc((size_t)n_layer, sizeof *kv->v);
    kv->kt = calloc((size_t)n_layer, sizeof *kv->kt);
    kv->vt = calloc((size_t)n_layer, sizeof *kv->vt);
    kv->dev = malloc((size_t)(n_layer > 0 ? n_layer : 1) * sizeof *kv->dev);
    for (int l = 0; kv->dev && l < n_layer; l++)
        kv->dev[l] = -1;
    if (!kv->k || !kv->v || !kv->kt || !kv->vt || !kv->dev) {
        tsr__kv_destroy(kv);
        return tsr__error(TSR_ERR_NOMEM, "out of memory for the KV cache");
    }
    *out = kv;
    return TSR_OK;
}

/* Replace one cache buffer by one of `new_bytes` in memory `dev`, keeping
 * its first `keep` bytes (host realloc, or alloc + copy + free). */
static tsr_status kv_realloc(tsr__kv_cache *kv, float **p, int from, int to, size_t keep,
                             size_t new_bytes)
{
    if (from < 0 && to < 0) {
        float *np = realloc(*p, new_bytes);
        if (!np)
            return tsr__error(TSR_ERR_NOMEM, "out of memory for the KV cache (%zu bytes)",
                              new_bytes);
        *p = np;
        return TSR_OK;
    }
    void *np = NULL, *tmp = NULL;
    tsr__backend *fb = from >= 0 ? &kv->backends[from] : NULL;
    tsr__backend *tb = to >= 0 ? &kv->backends[to] : NULL;
    tsr_status st = TSR_OK;
    if (tb)
        st = tb->vt->buffer_alloc(tb->state, new_bytes, &np);
    else if (!(np = malloc(new_bytes)))
        st = tsr__error(TSR_ERR_NOMEM, "out of memory for the KV cache (%zu bytes)", new_bytes);
    if (st)
        return tsr__error_prefix(st, "KV cache on %s", tb ? tb->device : "the host");
    if (keep && *p) {
        if (fb && tb && !(tmp = malloc(keep)))
            st = tsr__error(TSR_ERR_NOMEM, "out of memory moving the KV cache");
        if (!st && fb)
            st = fb->vt->copy_to_host(fb->state, tb ? tmp : np, *p, keep);
        if (!st && tb)
            st = tb->vt->copy_to_device(tb->state, np, fb ? tmp : *p, keep);
        free(tmp);
    }
    if (st) {
        if (tb)
            tb->vt->buffer_free(tb->state, np);
        else
            free(np);
        return tsr__error_prefix(st, "moving the KV cache");
    }
    if (fb)
        fb->vt->buffer_free(fb->state, *p);
    else
        free(*p);
    *p = np;
    return TSR_OK;
}

static void kv_describe(tsr__kv_cache *kv, int l, int64_t cap)
{
    size_t row = (size_t)kv->n_kv_head * (size_t)kv->head_dim * sizeof(float);
    for (int w = 0; w < 2; w++) {
        tsr_tensor *t = w ? &kv->vt[l] : &kv->kt[l];
        t->struct_size = sizeof *t;
        t->dtype = TSR_DTYPE_F32;
        t->ne[0] = kv->head_dim;
        t->ne[1] = kv->n_kv_head;
        t->ne[2] = cap;
        t->ne[3] = 1;
        t->nb[0] = 4;
        t->nb[1] = 4 * (size_t)kv->head_dim;
        t->nb[2] = row;
        t->nb[3] = row * (size_t)cap;
        t->data = w ? kv->v[l] : kv->k[l];
        t->flags = TSR_TENSOR_FLAG_CACHE;
        t->device = kv->dev[l] < 0 ? -1 : 0;
        t->name = w ? "kv_cache.v" : "kv_cache.k";
    }
}

tsr_status tsr__kv_reserve(tsr__kv_cache *kv, int64_t n_total)
{
    if (n_total <= kv->capacity)
        return TSR_OK;
    if (kv->max_capacity > 0 && n_total > kv->max_capacity)
        return tsr__error(TSR_ERR_INVALID_ARG,
                          "the sequence needs %lld positions but the context holds %lld",
                          (long long)n_total, (long long)kv->max_capacity);
    int64_t cap = kv->capacity ? kv->capacity : 64;
    while (cap < n_total)
        cap *= 2;
    if (kv->max_capacity > 0 && cap > kv->max_capacity)
        cap = kv->max_capacity;
    size_t row = (size_t)kv->n_kv_head * (size_t)kv->head_dim * sizeof(float);
    for (int l = 0; l < kv->n_layer; l++) {
        for (int w = 0; w < 2; w++) {
            /* positions are the outermost dimension: growing keeps the data */
            tsr_status st = kv_realloc(kv, w ? &kv->v[l] : &kv->k[l], kv->dev[l], kv->dev[l],
                                       row * (size_t)kv->capacity, row * (size_t)cap);
            if (st)
                return tsr__error_prefix(st, "growing the KV cache to %lld positions",
                                         (long long)cap);
        }
        kv_describe(kv, l, cap);
    }
    kv->capacity = cap;
    return TSR_OK;
}

tsr_status tsr__kv_move(tsr__kv_cache *kv, int l, int dev)
{
    size_t bytes = (size_t)kv->n_kv_head * (size_t)kv->head_dim * sizeof(float) *
                   (size_t)kv->capacity;
    for (int w = 0; w < 2; w++) {
        tsr_status st = kv_realloc(kv, w ? &kv->v[l] : &kv->k[l], kv->dev[l], dev, bytes, bytes);
        if (st)
            return tsr__error_prefix(st, "layer %d", l);
    }
    kv->dev[l] = dev;
    kv_describe(kv, l, kv->capacity);
    return TSR_OK;
}

void tsr__kv_destroy(tsr__kv_cache *kv)
{
    if (!kv)
        return;
    for (int l = 0; l < kv->n_layer; l++) {
        tsr__backend *b = kv->dev && kv->dev[l] >= 0 ? &kv->backends[kv->dev[l]] : NULL;
        for (int w = 0; w < 2; w++) {
            float *p = w ? (kv->v ? kv->v[l] : NULL) : (kv->k ? kv->k[l] : NULL);
            if (p && b)
                b->vt->buffer_free(b->state, p);
            else
                free(p);
        }
    }
    free(kv->dev);
    free(kv->k);
    free(kv->v);
    free(kv->kt);
    free(kv->vt);
    free(kv);
}

tsr__param *tsr__param_find(const tsr__graph_env *env, const char *name)
{
    size_t i;
    if (env->param_index && tsr__strmap_get(env->param_index, name, &i))
        return &env->params[i];
    return NULL;
}
