/* core/strmap.c - a small string -> index hash map (FNV-1a, linear probing). */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

struct tsr__strmap {
    size_t cap, n;          /* cap is a power of two */
    const char **keys;
    size_t *vals;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

tsr__strmap *tsr__strmap_create(size_t expected)
{
    tsr__strmap *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cap = 16;
    while (m->cap < expected * 2)
        m->cap <<= 1;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->vals = calloc(m->cap, sizeof *m->vals);
    if (!m->keys || !m->vals) {
        tsr__strmap_destroy(m);
        return NULL;
    }
    return m;
}

void tsr__strmap_destroy(tsr__strmap *m)
{
    if (!m)
        return;
    free(m->keys);
    free(m->vals);
    free(m);
}

static bool grow(tsr__strmap *m)
{
    tsr__strmap big = {m->cap * 2, 0, calloc(m->cap * 2, sizeof(char *)),
                       calloc(m->cap * 2, sizeof(size_t))};
    if (!big.keys || !big.vals) {
        free(big.keys);
        free(big.vals);
        return false;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i])
            tsr__strmap_put(&big, m->keys[i], m->vals[i]);
    free(m->keys);
    free(m->vals);
    *m = big;
    return true;
}

bool tsr__strmap_put(tsr__strmap *m, const char *key, size_t value)
{
    if ((m->n + 1) * 2 > m->cap && !grow(m))
        return false;
    size_t i = (size_t)hash_str(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        m->n++;
    m->keys[i] = key;
    m->vals[i] = value;
    return true;
}

bool tsr__strmap_get(const tsr__strmap *m, const char *key, size_t *value)
{
    size_t i = (size_t)hash_str(key) & (m->cap - 1);
    while (m->keys[i]) {
        if (strcmp(m->keys[i], key) == 0) {
            *value = m->vals[i];
            return true;
        }
        i = (i + 1) & (m->cap - 1);
    }
    return false;
}
