/* core/placement.c - device map strategies, weight uploads and device
 * names.  See placement.h and docs/devices.md. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "placement.h"

/* --- devices ---------------------------------------------------------------------- */

tsr_status tsr__place_backends(tsr_model *m)
{
    tsr__graph_env *env = &m->env;
    env->n_device_backends = 0;
    for (int i = 0; i < env->n_backends; i++) {
        tsr__backend *b = &env->backends[i];
        memset(&b->info, 0, sizeof b->info);
        b->info.struct_size = sizeof b->info;
        b->info.host_memory = 1;
        if (b->vt->device_info && b->vt->device_info(b->state, 0, &b->info) != TSR_OK) {
            tsr__log(TSR_LOG_WARN, "backend '%s' cannot describe its device (%s); "
                     "treating it as host memory", b->name, tsr_last_error());
            b->info.host_memory = 1;
        }
        b->host_memory = b->info.host_memory != 0;
        if (!b->host_memory && (!b->vt->buffer_alloc || !b->vt->buffer_free ||
                                !b->vt->copy_to_device || !b->vt->copy_to_host))
            return tsr__error(TSR_ERR_PLUGIN, "backend '%s' has device memory but no buffer "
                              "functions (buffer_alloc/free, copy_to_device/host)", b->name);
        if (b->host_memory) {
            snprintf(b->device, sizeof b->device, "%s", b->name);
        } else {
            env->n_device_backends++;
            b->info.kind[sizeof b->info.kind - 1] = 0;
            snprintf(b->device, sizeof b->device, "%s:0", b->info.kind[0] ? b->info.kind : b->name);
        }
    }
    if (env->kv)
        env->kv->backends = env->backends;
    return TSR_OK;
}

int tsr__place_device_backend(const tsr_model *m, const char *dev)
{
    const tsr__graph_env *env = &m->env;
    if (!strcmp(dev, "disk"))
        return env->n_backends ? 0 : -1;
    if (dev[0] >= '0' && dev[0] <= '9') { /* accelerate: GPU number */
        long want = strtol(dev, NULL, 10), k = 0;
        for (int b = 0; b < env->n_backends; b++)
            if (!env->backends[b].host_memory && k++ == want)
                return b;
        return -1;
    }
    char kind[64];
    snprintf(kind, sizeof kind, "%s", dev);
    char *colon = strchr(kind, ':');
    if (colon && strcmp(colon, ":0") != 0)
        return -1; /* one device per backend for now */
    if (colon)
        *colon = 0;
    for (int b = 0; b < env->n_backends; b++)
        if (!strcmp(env->backends[b].name, kind) ||
            (!env->backends[b].host_memory && !strcmp(env->backends[b].info.kind, kind)))
            return b;
    if (!strcmp(kind, "cpu")) /* no backend named cpu: the first host one */
        for (int b = 0; b < env->n_backends; b++)
            if (env->backends[b].host_memory)
                return b;
    return -1;
}

const char *tsr__place_device_of(const tsr_model *m, const char *name)
{
    const tsr__graph_env *env = &m->env;
    int e = env->n_dmap ? tsr__dmap_find(env->dmap, env->n_dmap, name) : -1;
    if (e >= 0)
        return env->dmap[e].device;
    return env->n_backends ? env->backends[0].device : "cpu";
}

/* --- the strategy -------------------------------------------------------------------- */

void tsr__place_assign(tsr__place_mode mode, const uint64_t *sizes, size_t n_mod,
                       const uint64_t *budget_in, const uint64_t *reserve, size_t n_dev,
                       size_t n_gpu, int *out)
{
    uint64_t budget[64], used[64] = {0}, total = 0, largest = 0;
    if (n_dev > 64)
        n_dev = 64;
    memcpy(budget, budget_in, n_dev * sizeof *budget);
    for (size_t i = 0; i < n_mod; i++) {
        total += sizes[i];
        if (sizes[i] > largest)
            largest = sizes[i];
    }
    /* accelerate's get_balanced_memory: spread the model over the GPUs
     * (all but the last get about total/n plus a layer of slack) */
    if (mode != TSR__PLACE_SEQUENTIAL && n_gpu > 1) {
        size_t first = mode == TSR__PLACE_BALANCED_LOW_0 ? 1 : 0;
        uint64_t per = (total + (n_gpu - first) - 1) / (n_gpu - first) + largest;
        for (size_t d = first; d + 1 < n_gpu; d++)
            if (per + reserve[d] < budget[d])
                budget[d] = per + reserve[d];
        if (first && reserve[0] < budget[0])
            budget[0] = reserve[0];
    }
    size_t dev = 0;
    for (size_t i = 0; i < n_mod; i++) {
        if (sizes[i] == 0 && i > 0) {
            out[i] = -1; /* resolved below: with module 0 */
            continue;
        }
        while (dev + 1 < n_dev) {
            uint64_t limit = budget[dev] > reserve[dev] ? budget[dev] - reserve[dev] : 0;
            if (budget[dev] == UINT64_MAX || used[dev] + sizes[i] <= limit)
                break;
            dev++; /* sequential: never back to an earlier device */
        }
        used[dev] += sizes[i];
        out[i] = (int)dev;
    }
    for (size_t i = 1; i < n_mod; i++)
        if (out[i] < 0)
            out[i] = out[0];
}

/* The module a weight belongs to, as hf_device_map names them: up to the
 * first numeric component ("model.layers.3"), else the weight name without
 * its last component ("model.embed_tokens", "lm_head"). */
static void module_of(const char *name, char *out, size_t len)
{
    const char *p = name;
    while (*p) {
        const char *q = p;
        while (*q >= '0' && *q <= '9')
            q++;
        if (q > p && (*q == '.' || !*q) && p > name) {
            snprintf(out, len, "%.*s", (int)(q - name), name);
            return;
        }
        const char *dot = strchr(p, '.');
        if (!dot)
            break;
        p = dot + 1;
    }
    snprintf(out, len, "%s", name);
    char *d = strrchr(out, '.');
    if (d)
        *d = 0;
}

static bool is_layer(const char *module)
{
    const char *d = strrchr(module, '.');
    return d && d[1] >= '0' && d[1] <= '9';
}

typedef struct module { char name[256]; uint64_t bytes; } module;

/* Modules in declaration order with the bytes of their weights and, for a
 * decoder layer, of its KV cache at `kv_ctx` positions. */
static module *collect_modules(const tsr_model *m, size_t *n_out, uint64_t kv_layer_bytes)
{
    const tsr__graph_env *env = &m->env;
    module *mods = calloc(env->n_params ? env->n_params : 1, sizeof *mods);
    size_t n = 0;
    if (!mods)
        return NULL;
    for (size_t i = 0; i < env->n_params; i++) {
        const tsr__param *p = &env->params[i];
        char name[256];
        module_of(p->name, name, sizeof name);
        size_t k = 0;
        while (k < n && strcmp(mods[k].name, name))
            k++;
        if (k == n) {
            snprintf(mods[n].name, sizeof mods[n].name, "%s", name);
            mods[n++].bytes = is_layer(name) ? kv_layer_bytes : 0;
        }
        if (p->t.data)
            mods[k].bytes += tsr__tensor_span(&p->t);
    }
    *n_out = n;
    return mods;
}

/* max_memory for a device: its name ("cuda:0", "cpu"), or for the k-th
 * device backend its number ("0"), as accelerate accepts. */
static bool max_memory_of(const tsr_model *m, const char *dev, int gpu_index, uint64_t *out)
{
    size_t n = tsr__config_map_len(m->cfg, "max_memory");
    for (size_t i = 0; i < n; i++) {
        const char *k = tsr__config_map_key(m->cfg, "max_memory", i);
        char num[16];
        snprintf(num, sizeof num, "%d", gpu_index);
        if (strcmp(k, dev) && !(gpu_index >= 0 && !strcmp(k, num)))
            continue;
        const char *v = tsr__config_map_value(m->cfg, "max_memory", i);
        if (!tsr__config_parse_size(v, out))
            return false;
        return true;
    }
    return false;
}

static tsr_status add_entry(tsr_model *m, const char *prefix, int backend, const char *device,
                            bool disk)
{
    tsr__graph_env *env = &m->env;
    tsr__dmap_entry *ne = realloc(env->dmap, (env->n_dmap + 1) * sizeof *ne);
    if (!ne)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    env->dmap = ne;
    tsr__dmap_entry *e = &ne[env->n_dmap];
    *e = (tsr__dmap_entry){tsr__strdup(prefix), -1, -1, backend, tsr__strdup(device), disk};
    if (!e->prefix || !e->device) {
        free(e->prefix);
        free(e->device);
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    env->n_dmap++;
    return TSR_OK;
}

tsr_status tsr__place_strategy(tsr_model *m, const char *strategy)
{
    tsr__graph_env *env = &m->env;
    if (!env->n_device_backends)
        return TSR_OK; /* host backends only: the backends list decides */
    tsr__place_mode mode = !strcmp(strategy, "sequential") ? TSR__PLACE_SEQUENTIAL
                           : !strcmp(strategy, "balanced_low_0") ? TSR__PLACE_BALANCED_LOW_0
                                                                 : TSR__PLACE_BALANCED;
    /* reserves: the KV cache of a layer at up to 4096 positions counts in its
     * size; a device also keeps its largest layer free (a streamed layer's
     * weights) and activations for a 512-token step */
    int64_t ctx = m->info.n_ctx_train > 0 && m->info.n_ctx_train < 4096 ? m->info.n_ctx_train : 4096;
    uint64_t kv_bytes = 2ull * (uint64_t)m->info.n_kv_head * (uint64_t)m->info.head_dim * 4u *
                        (uint64_t)ctx;
    size_t n_mod = 0;
    module *mods = collect_modules(m, &n_mod, kv_bytes);
    if (!mods)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    uint64_t largest = 0;
    for (size_t i = 0; i < n_mod; i++)
        if (mods[i].bytes > largest)
            largest = mods[i].bytes;
    uint64_t act = 4ull * 512u * 16u * (uint64_t)m->info.n_embd + 4ull * (uint64_t)m->info.n_vocab;

    /* devices: the device backends in list order, the cpu, the disk */
    uint64_t budget[64], reserve[64];
    int dev_backend[64];
    const char *dev_name[64];
    size_t n_dev = 0, n_gpu = 0;
    for (int b = 0; b < env->n_backends && n_dev < 62; b++) {
        tsr__backend *be = &env->backends[b];
        if (be->host_memory)
            continue;
        uint64_t mem = be->info.free_memory ? be->info.free_memory : be->info.total_memory;
        if (!max_memory_of(m, be->device, (int)n_gpu, &budget[n_dev]))
            budget[n_dev] = mem ? mem : UINT64_MAX;
        reserve[n_dev] = largest + act;
        dev_backend[n_dev] = b;
        dev_name[n_dev++] = be->device;
        n_gpu++;
    }
    int cpu = tsr__place_device_backend(m, "cpu");
    if (cpu >= 0 && env->backends[cpu].host_memory) {
        if (!max_memory_of(m, "cpu", -1, &budget[n_dev])) {
            long pages = sysconf(_SC_AVPHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
            budget[n_dev] = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : UINT64_MAX;
        }
        reserve[n_dev] = 0;
        dev_backend[n_dev] = cpu;
        dev_name[n_dev++] = "cpu";
    }
    budget[n_dev] = UINT64_MAX;
    reserve[n_dev] = 0;
    dev_backend[n_dev] = 0; /* disk: run by the main (first) backend */
    dev_name[n_dev++] = "disk";

    uint64_t *sizes = calloc(n_mod + 1, sizeof *sizes);
    int *where = calloc(n_mod + 1, sizeof *where);
    tsr_status st = sizes && where ? TSR_OK : tsr__error(TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < n_mod; i++)
        sizes[i] = mods[i].bytes;
    if (!st)
        tsr__place_assign(mode, sizes, n_mod, budget, reserve, n_dev, n_gpu, where);
    for (size_t i = 0; !st && i < n_mod; i++) {
        bool disk = where[i] == (int)n_dev - 1;
        st = add_entry(m, mods[i].name, dev_backend[where[i]], dev_name[where[i]], disk);
    }
    free(sizes);
    free(where);
    free(mods);
    return st;
}

/* --- weights ---------------------------------------------------------------------------- */

static tsr_status upload(tsr_model *m, tsr__param *p, int b)
{
    tsr__backend *be = &m->env.backends[b];
    size_t bytes = tsr__tensor_span(&p->t);
    void *buf = NULL;
    tsr_status st = be->vt->buffer_alloc(be->state, bytes, &buf);
    if (st)
        return tsr__error_prefix(st, "uploading weight '%s' (%zu bytes) to %s", p->name, bytes,
                                 be->device);
    if ((st = be->vt->copy_to_device(be->state, buf, p->t.data, bytes))) {
        be->vt->buffer_free(be->state, buf);
        return tsr__error_prefix(st, "uploading weight '%s' to %s", p->name, be->device);
    }
    p->dev_data = buf;
    p->dev_backend = b;
    return TSR_OK;
}

tsr_status tsr__place_weights(tsr_model *m)
{
    tsr__graph_env *env = &m->env;
    for (size_t i = 0; i < env->n_params; i++) {
        tsr__param *p = &env->params[i];
        int e = env->n_dmap ? tsr__dmap_find(env->dmap, env->n_dmap, p->name) : -1;
        p->offload = e >= 0 && env->dmap[e].disk;
        p->dev_backend = -1;
    }
    if (!env->n_device_backends)
        return TSR_OK;
    /* a one-token step, scheduled but not run, says which backend reads
     * which weight (per-op fallback and tied weights included); it also
     * moves each layer's KV cache to the memory of its attention */
    tsr_status st = tsr__kv_reserve(env->kv, 1);
    tsr_graph *g = NULL;
    int32_t id = 0;
    if (st || (st = tsr__graph_create(env, 1, 0, &id, &g)))
        return st;
    tsr_batch batch = {sizeof batch, 1, 0, 0};
    st = m->mvt->build(m->mstate, g, &batch);
    if (!st)
        st = tsr__graph_schedule(g);
    for (size_t i = 0; !st && i < tsr__graph_n_nodes(g); i++) {
        tsr_tensor *t = tsr__graph_node(g, i);
        if ((t->flags & TSR_TENSOR_FLAG_VIEW) || env->backends[t->backend].host_memory)
            continue;
        for (int k = 0; k < TSR_MAX_SRC && !st; k++) {
            tsr__param *p = t->src[k] ? tsr__param_of(env, t->src[k]) : NULL;
            if (p && !p->offload && !p->dev_data)
                st = upload(m, p, (int)t->backend);
        }
    }
    tsr__graph_destroy(g);
    return st;
}

void tsr__place_release(tsr_model *m)
{
    tsr__graph_env *env = &m->env;
    for (size_t i = 0; i < env->n_params; i++) {
        tsr__param *p = &env->params[i];
        if (p->dev_data) {
            tsr__backend *b = &env->backends[p->dev_backend];
            b->vt->buffer_free(b->state, p->dev_data);
            p->dev_data = NULL;
        }
    }
    for (int i = 0; i < env->n_backends; i++) {
        tsr__backend *b = &env->backends[i];
        if (b->arena)
            b->vt->buffer_free(b->state, b->arena);
        b->arena = NULL;
        b->arena_size = 0;
    }
    tsr__kv_destroy(env->kv);
    env->kv = NULL;
}
