/* tessera/types.h - types shared by the application API and the plugin SDK.
 *
 * Stable C ABI.  Enumerations here are append-only: a value, once released,
 * keeps its number and meaning forever (numbers are never reused).
 * Thread-safety: plain data, nothing to synchronise.
 */
#ifndef TESSERA_TYPES_H
#define TESSERA_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the library and of the plugin ABI.  The ABI major must match
 * between core and plugin; a plugin built for an older minor still loads. */
#define TSR_VERSION_MAJOR 0
#define TSR_VERSION_MINOR 1
#define TSR_VERSION_PATCH 0
#define TSR_VERSION_STRING "0.1.0"

#define TSR_ABI_MAJOR 1
#define TSR_ABI_MINOR 2

/* Symbol visibility.  libtessera is built with -fvisibility=hidden and
 * exports only what is marked TSR_API. */
#if defined(_WIN32)
#  define TSR_HELPER_EXPORT __declspec(dllexport)
#else
#  define TSR_HELPER_EXPORT __attribute__((visibility("default")))
#endif
#ifdef TSR_BUILDING_LIBRARY
#  define TSR_API TSR_HELPER_EXPORT
#else
#  define TSR_API
#endif

/* Status codes: 0 is success, errors are negative and never renumbered.
 * tsr_strerror() names them; tsr_last_error() carries the detail. */
typedef enum tsr_status {
    TSR_OK = 0,
    TSR_ERR_INVALID_ARG = -1,  /* a caller passed something impossible */
    TSR_ERR_NOMEM = -2,        /* out of host or device memory */
    TSR_ERR_IO = -3,           /* a file could not be opened/read/written */
    TSR_ERR_FORMAT = -4,       /* a file is malformed (safetensors, GGUF, JSON) */
    TSR_ERR_CONFIG = -5,       /* a YAML/config value is wrong */
    TSR_ERR_PLUGIN = -6,       /* a plugin could not be loaded or failed */
    TSR_ERR_ABI = -7,          /* a plugin's ABI version is incompatible */
    TSR_ERR_UNSUPPORTED = -8,  /* valid, but not supported (yet) */
    TSR_ERR_NOT_FOUND = -9,    /* a file, key, tensor or plugin is missing */
    TSR_ERR_DEVICE = -10,      /* a device is missing or failed */
    TSR_ERR_INTERNAL = -11,    /* a bug: please report it */
    TSR_ERR_CANCELLED = -12    /* a callback asked to stop */
} tsr_status;

/* Element types of tensors.  Values 0..31 are plain element types, 32 and up
 * are block/quantized runtime weight formats (see plugin/formats.h). */
typedef enum tsr_dtype {
    TSR_DTYPE_F32 = 0,
    TSR_DTYPE_F16 = 1,
    TSR_DTYPE_BF16 = 2,
    TSR_DTYPE_I8 = 3,
    TSR_DTYPE_U8 = 4,
    TSR_DTYPE_I16 = 5,
    TSR_DTYPE_I32 = 6,
    TSR_DTYPE_I64 = 7,
    TSR_DTYPE_F64 = 8,
    TSR_DTYPE_BOOL = 9,
    TSR_DTYPE_U16 = 10,
    TSR_DTYPE_U32 = 11,
    TSR_DTYPE_COUNT_PLAIN_ = 12
} tsr_dtype;

/* Log levels for the host's log function and the application's log hook. */
typedef enum tsr_log_level {
    TSR_LOG_ERROR = 0,
    TSR_LOG_WARN = 1,
    TSR_LOG_INFO = 2,
    TSR_LOG_DEBUG = 3
} tsr_log_level;

#ifdef __cplusplus
}
#endif
#endif /* TESSERA_TYPES_H */
