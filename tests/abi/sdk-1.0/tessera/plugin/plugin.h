/* tessera/plugin/plugin.h - the one entry point of every plugin.
 *
 * A plugin is a shared module exporting exactly one symbol,
 *
 *     const tsr_plugin_desc *tessera_plugin_entry(const tsr_host *host);
 *
 * (define it with TSR_PLUGIN_DEFINE_ENTRY).  The core checks the returned
 * descriptor's ABI version (major must equal the core's, minor may be older),
 * then calls probe() to learn whether the plugin can run on this machine,
 * and only then uses the kind's vtable.  Plugins are never unloaded.
 */
#ifndef TESSERA_PLUGIN_PLUGIN_H
#define TESSERA_PLUGIN_PLUGIN_H

#include "host.h"
#include "backend.h"
#include "model.h"
#include "quantizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tsr_plugin_kind {
    TSR_PLUGIN_BACKEND = 1,
    TSR_PLUGIN_QUANTIZER = 2,
    TSR_PLUGIN_MODEL = 3
} tsr_plugin_kind;

typedef struct tsr_plugin_desc {
    uint32_t struct_size;      /* sizeof(tsr_plugin_desc) the plugin saw  */
    uint16_t abi_major;        /* TSR_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;        /* TSR_ABI_MINOR the plugin was built with */
    uint32_t kind;             /* tsr_plugin_kind                         */
    const char *name;          /* must equal the manifest's name          */
    const char *version;       /* the plugin's own version string         */
    const char *description;   /* one line                                */
    /* Cheap check, no device initialisation: 1 = usable here; 0 = not, with
     * the reason written to why[0..why_len) as one sentence. */
    int (*probe)(const tsr_host *host, char *why, size_t why_len);
    /* The kind's vtable: tsr_backend_vtable, tsr_quantizer_vtable or
     * tsr_model_vtable (each starts with its own struct_size). */
    const void *vtable;
    /* since 1.0: append below. */
} tsr_plugin_desc;

#define TSR_PLUGIN_ENTRY_SYMBOL "tessera_plugin_entry"

typedef const tsr_plugin_desc *(*tsr_plugin_entry_fn)(const tsr_host *host);

#if defined(__GNUC__)
#  define TSR_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#  define TSR_PLUGIN_EXPORT
#endif

/* The entry point every plugin defines (in exactly one source file, with
 * TSR_PLUGIN_DEFINE_ENTRY { ... }). */
#ifdef __cplusplus
extern "C"
#endif
TSR_PLUGIN_EXPORT const tsr_plugin_desc *tessera_plugin_entry(const tsr_host *host);

#ifdef __cplusplus
#  define TSR_PLUGIN_DEFINE_ENTRY \
    extern "C" TSR_PLUGIN_EXPORT const tsr_plugin_desc *tessera_plugin_entry(const tsr_host *host)
#else
#  define TSR_PLUGIN_DEFINE_ENTRY \
    TSR_PLUGIN_EXPORT const tsr_plugin_desc *tessera_plugin_entry(const tsr_host *host)
#endif

#define TSR_PLUGIN_DESC_INIT(kind_, name_, version_, descr_, probe_, vtable_) \
    { sizeof(tsr_plugin_desc), TSR_ABI_MAJOR, TSR_ABI_MINOR, (kind_), (name_), \
      (version_), (descr_), (probe_), (vtable_) }

#ifdef __cplusplus
}
#endif
#endif /* TESSERA_PLUGIN_PLUGIN_H */
