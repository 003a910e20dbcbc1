/* core/json.c - JSON through jansson (Debian's libjansson), seen by plugins
 * as the opaque tsr_json. */
#include <jansson.h>
#include <string.h>
#include "internal.h"

#define J(v) ((json_t *)(v))

tsr_status tsr__json_load_buffer(const char *what, const char *buf, size_t len, tsr_json **root)
{
    json_error_t err;
    json_t *j = json_loadb(buf, len, JSON_ALLOW_NUL, &err);
    if (!j)
        return tsr__error(TSR_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", what, err.line,
                          err.column, err.text);
    *root = (tsr_json *)j;
    return TSR_OK;
}

tsr_status tsr__json_load_file(const char *path, tsr_json **root)
{
    char *data;
    size_t len;
    tsr_status st = tsr__read_file(path, &data, &len);
    if (st)
        return st;
    st = tsr__json_load_buffer(path, data, len, root);
    free(data);
    return st;
}

void tsr__json_free(tsr_json *root) { json_decref(J(root)); }

const tsr_json *tsr__json_get(const tsr_json *obj, const char *key)
{
    if (!obj || !json_is_object(J(obj)))
        return NULL;
    return (const tsr_json *)json_object_get(J(obj), key);
}

const tsr_json *tsr__json_at(const tsr_json *arr, size_t i)
{
    if (!arr || !json_is_array(J(arr)))
        return NULL;
    return (const tsr_json *)json_array_get(J(arr), i);
}

tsr_json_type tsr__json_type(const tsr_json *v)
{
    if (!v)
        return TSR_JSON_ABSENT;
    switch (json_typeof(J(v))) {
    case JSON_OBJECT: return TSR_JSON_OBJECT;
    case JSON_ARRAY: return TSR_JSON_ARRAY;
    case JSON_STRING: return TSR_JSON_STRING;
    case JSON_INTEGER: return TSR_JSON_INT;
    case JSON_REAL: return TSR_JSON_REAL;
    case JSON_TRUE: case JSON_FALSE: return TSR_JSON_BOOL;
    case JSON_NULL: return TSR_JSON_NULL;
    }
    return TSR_JSON_ABSENT;
}

size_t tsr__json_size(const tsr_json *v)
{
    if (!v)
        return 0;
    if (json_is_array(J(v)))
        return json_array_size(J(v));
    if (json_is_object(J(v)))
        return json_object_size(J(v));
    return 0;
}

int64_t tsr__json_int(const tsr_json *v, int64_t dflt)
{
    if (v && json_is_integer(J(v)))
        return (int64_t)json_integer_value(J(v));
    if (v && json_is_real(J(v))) {
        double d = json_real_value(J(v));
        if (d == (double)(int64_t)d)
            return (int64_t)d;
    }
    return dflt;
}

double tsr__json_real(const tsr_json *v, double dflt)
{
    if (v && json_is_number(J(v)))
        return json_number_value(J(v));
    return dflt;
}

int tsr__json_bool(const tsr_json *v, int dflt)
{
    if (v && json_is_boolean(J(v)))
        return json_is_true(J(v));
    return dflt;
}

const char *tsr__json_string(const tsr_json *v, const char *dflt)
{
    if (v && json_is_string(J(v)))
        return json_string_value(J(v));
    return dflt;
}
