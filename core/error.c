/* core/error.c - per-thread last error and the log sink. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "internal.h"

static _Thread_local char last_error[2048];

static tsr_log_fn log_fn;
static void *log_user;
static tsr_log_level log_max = TSR_LOG_INFO;

TSR_API const char *tsr_last_error(void) { return last_error; }

TSR_API const char *tsr_strerror(tsr_status st)
{
    switch (st) {
    case TSR_OK: return "success";
    case TSR_ERR_INVALID_ARG: return "invalid argument";
    case TSR_ERR_NOMEM: return "out of memory";
    case TSR_ERR_IO: return "input/output error";
    case TSR_ERR_FORMAT: return "malformed file";
    case TSR_ERR_CONFIG: return "configuration error";
    case TSR_ERR_PLUGIN: return "plugin error";
    case TSR_ERR_ABI: return "incompatible plugin ABI";
    case TSR_ERR_UNSUPPORTED: return "not supported";
    case TSR_ERR_NOT_FOUND: return "not found";
    case TSR_ERR_DEVICE: return "device error";
    case TSR_ERR_INTERNAL: return "internal error";
    case TSR_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

TSR_API const char *tsr_version_string(void) { return TSR_VERSION_STRING; }

tsr_status tsr__verror(tsr_status st, const char *fmt, va_list ap)
{
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    return st;
}

tsr_status tsr__error(tsr_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tsr__verror(st, fmt, ap);
    va_end(ap);
    return st;
}

tsr_status tsr__error_prefix(tsr_status st, const char *fmt, ...)
{
    char prefix[1024], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t pl = strlen(prefix), ol = strlen(old), cap = sizeof last_error - 1;
    if (pl > cap)
        pl = cap;
    memcpy(last_error, prefix, pl);
    size_t at = pl;
    if (at + 2 <= cap) {
        memcpy(last_error + at, ": ", 2);
        at += 2;
    }
    if (ol > cap - at)
        ol = cap - at;
    memcpy(last_error + at, old, ol);
    last_error[at + ol] = 0;
    return st;
}

void tsr__clear_error(void) { last_error[0] = 0; }

TSR_API void tsr_set_log(tsr_log_fn fn, void *user, tsr_log_level max_level)
{
    log_fn = fn;
    log_user = user;
    log_max = max_level;
}

void tsr__vlog(tsr_log_level level, const char *who, const char *fmt, va_list ap)
{
    if (level > log_max)
        return;
    char line[2048];
    int off = 0;
    if (who && *who)
        off = snprintf(line, sizeof line, "%s: ", who);
    vsnprintf(line + off, sizeof line - (size_t)off, fmt, ap);
    if (log_fn) {
        log_fn(level, line, log_user);
        return;
    }
    static const char *const tag[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "tessera: %s: %s\n", tag[level], line);
}

void tsr__log(tsr_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tsr__vlog(level, NULL, fmt, ap);
    va_end(ap);
}
