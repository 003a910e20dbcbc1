/* tests/abi/plugins/abi_plugin.c - test plugins built against the frozen
 * ABI 1.0 SDK (tests/abi/sdk-1.0).  One source, many variants chosen by
 * compile definitions (tests/cmake/abi.cmake):
 *   ABI_NAME        the descriptor's name ("abi-good")
 *   ABI_MODEL       a model plugin instead of a backend
 *   ABI_MAJOR/MINOR override the ABI the descriptor declares
 *   ABI_PROBE_FAIL  the probe says it cannot run here
 *   ABI_NO_ENTRY    export some other symbol instead of tessera_plugin_entry
 *   ABI_RETURN_NULL the entry point returns NULL
 *   ABI_USE_STUB    call into libtsrabistub.so (which is not on the loader's
 *                   path, so dlopen fails naming it)
 */
#include <string.h>
#include <tessera/plugin/plugin.h>

#ifndef ABI_MAJOR
#  define ABI_MAJOR TSR_ABI_MAJOR
#endif
#ifndef ABI_MINOR
#  define ABI_MINOR TSR_ABI_MINOR
#endif

#ifdef ABI_USE_STUB
int tsr_abi_stub_answer(void);
#endif

static const tsr_host *g_host;

static int probe(const tsr_host *h, char *why, size_t why_len)
{
#ifdef ABI_PROBE_FAIL
    (void)h;
    strncpy(why, "the abi-test device is switched off", why_len - 1);
    why[why_len - 1] = 0;
    return 0;
#else
    (void)why;
    (void)why_len;
#  ifdef ABI_USE_STUB
    return h != NULL && tsr_abi_stub_answer() == 42;
#  else
    return h != NULL;
#  endif
#endif
}

#ifdef ABI_MODEL
static tsr_status m_create(const tsr_host *h, const tsr_json *config, void **state)
{
    (void)h;
    (void)config;
    *state = NULL;
    return TSR_OK;
}
static void m_destroy(void *state) { (void)state; }
static tsr_status m_info(void *state, tsr_model_info *out)
{
    (void)state;
    out->n_layer = 1;
    return TSR_OK;
}
static tsr_status m_declare(void *state, tsr_param_sink *sink)
{
    (void)state;
    (void)sink;
    return TSR_OK;
}
static tsr_status m_build(void *state, tsr_graph *g, const tsr_batch *b)
{
    (void)state;
    (void)g;
    (void)b;
    return TSR_ERR_UNSUPPORTED;
}
static const tsr_model_vtable vtable = {sizeof(tsr_model_vtable), m_create, m_destroy,
                                        m_info, m_declare, m_build};
#  define ABI_KIND TSR_PLUGIN_MODEL
#else
static int state_token;
static tsr_status b_create(const tsr_host *h, const tsr_backend_options *opt, void **state)
{
    (void)h;
    (void)opt;
    *state = &state_token;
    return TSR_OK;
}
static void b_destroy(void *state) { (void)state; }
static int b_count(void *state)
{
    (void)state;
    return 1;
}
static tsr_status b_info(void *state, int device, tsr_device_info *out)
{
    (void)state;
    (void)device;
    strcpy(out->name, "abi-test");
    strcpy(out->kind, "abi-dev");
    out->host_memory = 1;
    return TSR_OK;
}
/* Computes nothing: the registry tests only load and probe these plugins. */
static int b_supports(void *state, const tsr_tensor *node)
{
    (void)state;
    (void)node;
    return 0;
}
static tsr_status b_compute(void *state, tsr_tensor *const *nodes, int n)
{
    (void)state;
    (void)nodes;
    (void)n;
    return g_host->set_error(TSR_ERR_UNSUPPORTED, "abi test backend computes nothing");
}
static const tsr_backend_vtable vtable = {sizeof(tsr_backend_vtable), b_create, b_destroy,
                                          b_count, b_info, b_supports, b_compute,
                                          NULL, NULL, NULL, NULL};
#  define ABI_KIND TSR_PLUGIN_BACKEND
#endif

static const tsr_plugin_desc desc = {sizeof(tsr_plugin_desc), ABI_MAJOR, ABI_MINOR, ABI_KIND,
                                     ABI_NAME, "1.0.0-test", "ABI test plugin " ABI_NAME,
                                     probe, &vtable};

#ifdef ABI_NO_ENTRY
TSR_PLUGIN_EXPORT const tsr_plugin_desc *not_the_entry(const tsr_host *host);
TSR_PLUGIN_EXPORT const tsr_plugin_desc *not_the_entry(const tsr_host *host)
#else
TSR_PLUGIN_DEFINE_ENTRY;
TSR_PLUGIN_DEFINE_ENTRY
#endif
{
    g_host = host;
#ifdef ABI_RETURN_NULL
    (void)desc;
    return NULL;
#else
    return &desc;
#endif
}
