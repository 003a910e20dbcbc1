/* core/config.c - the layered run configuration.
 *
 * A configuration is a stack of layers: the built-in defaults (layer 0),
 * then each file and command-line group in the order they were applied;
 * a key's value is the one in the topmost layer that sets it.  Each layer
 * holds one slot per row of the key table (config_keys.c), so every value
 * that exists has already been validated against its row.  A file is
 * validated whole before its layer is pushed: a failing load leaves the
 * configuration as it was.
 *
 * YAML comes from libyaml's document loader; types are resolved here, not
 * by YAML tags, because each key's row says what it expects.  Plain `~`,
 * `null` or nothing is YAML's null: it clears a key (transformers' None).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "internal.h"

/* --- values ------------------------------------------------------------------ */

typedef enum { VK_NULL, VK_SCALAR, VK_LIST, VK_MAP } vkind;

typedef struct cval {
    vkind kind;
    char *s;            /* VK_SCALAR: the text (bool/int normalised)       */
    size_t n;           /* VK_LIST / VK_MAP: number of items               */
    char **items;       /* list items, or map values                       */
    char **keys;        /* map keys                                        */
    char *text;         /* as tsr_config_get shows it: scalar raw, else flow YAML */
} cval;

typedef struct layer {
    char *name;         /* "default", a file path, or "command line"       */
    cval **vals;        /* [tsr__config_n_keys], NULL where not set        */
} layer;

struct tsr_config {
    layer **layers;
    size_t n_layers;
};

static void cval_free(cval *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        free(v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->s);
    free(v->text);
    free(v);
}

static void layer_free(layer *L)
{
    if (!L)
        return;
    if (L->vals)
        for (size_t i = 0; i < tsr__config_n_keys; i++)
            cval_free(L->vals[i]);
    free(L->vals);
    free(L->name);
    free(L);
}

static layer *layer_new(const char *name)
{
    layer *L = calloc(1, sizeof *L);
    if (!L)
        return NULL;
    L->name = tsr__strdup(name);
    L->vals = calloc(tsr__config_n_keys, sizeof *L->vals);
    if (!L->name || !L->vals) {
        layer_free(L);
        return NULL;
    }
    return L;
}

/* A growable string. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) TSR_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        sb_putn(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_putn(b, big, (size_t)n);
    free(big);
}

/* --- scalar syntax --------------------------------------------------------------- */

static bool is_null_text(const char *s)
{
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

static bool parse_int(const char *s, long long *out)
{
    char *end;
    errno = 0;
    if (!*s || strchr(" \t\n", *s))
        return false;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_real(const char *s, double *out)
{
    char *end;
    errno = 0;
    if (!*s || strchr(" \t\n", *s))
        return false;
    /* digits, sign, point and exponent only: no "inf", "nan" or hex floats */
    for (const char *p = s; *p; p++)
        if (!strchr("0123456789+-.eE", *p))
            return false;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* YAML 1.2 core booleans, plus YAML 1.1's yes/no/on/off that PyYAML reads. */
static int parse_bool(const char *s)
{
    static const char *const t[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const char *const f[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (!strcmp(s, t[i]))
            return 1;
        if (!strcmp(s, f[i]))
            return 0;
    }
    return -1;
}

bool tsr__config_parse_size(const char *text, uint64_t *bytes)
{
    static const struct { const char *unit; double mult; } units[] = {
        {"B", 1}, {"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
        {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
    };
    const char *p = text;
    if (!p || !(*p >= '0' && *p <= '9'))
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    bool frac = false;
    if (*p == '.') {
        frac = true;
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    double mult = 0;
    if (!*p) {
        mult = 1;            /* plain bytes */
        if (frac)
            return false;
    } else {
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (!strcmp(p, units[i].unit))
                mult = units[i].mult;
    }
    if (mult == 0)
        return false;
    double v = strtod(text, NULL) * mult;
    if (!(v < 9223372036854775807.0))
        return false;
    *bytes = (uint64_t)(v + 0.5);
    return true;
}

/* "cpu", "cuda", "cuda:0", "disk", "0" (a GPU index, as accelerate takes). */
static bool is_device(const char *s)
{
    const char *p = s;
    if (*p >= '0' && *p <= '9') {
        while (*p >= '0' && *p <= '9')
            p++;
        return !*p;
    }
    if (!(*p >= 'a' && *p <= 'z'))
        return false;
    while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
        p++;
    if (*p == ':') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return !*p;
}

static bool enum_has(const char *values, const char *s)
{
    size_t n = strlen(s);
    for (const char *p = values; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !memcmp(p, s, n))
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

/* What a type expects, for messages ("an integer"). */
static void describe_expect(sbuf *b, const tsr__config_key *k, tsr__ctype t, bool item)
{
    switch (t) {
    case TSR__CT_STRING: sb_puts(b, item ? "strings" : "a string"); break;
    case TSR__CT_INT: sb_puts(b, item ? "integers" : "an integer"); break;
    case TSR__CT_REAL: sb_puts(b, item ? "numbers" : "a number"); break;
    case TSR__CT_BOOL: sb_puts(b, "true or false"); break;
    case TSR__CT_ENUM: {
        sb_puts(b, "one of ");
        for (const char *p = k->values; *p; p++)
            sb_puts(b, *p == '|' ? ", " : (char[]){*p, 0});
        break;
    }
    case TSR__CT_SIZE: sb_puts(b, item ? "sizes such as 6GiB or 500MB" : "a size such as 6GiB or 500MB"); break;
    case TSR__CT_DEVICE: sb_puts(b, item ? "devices such as cpu, cuda:0 or disk"
                                         : "a device such as cpu, cuda:0 or disk"); break;
    case TSR__CT_LIST: sb_puts(b, "a list of "); describe_expect(b, k, k->item, true); break;
    case TSR__CT_LIST_OR_SCALAR:
        describe_expect(b, k, k->item, false);
        sb_puts(b, " or a list of ");
        describe_expect(b, k, k->item, true);
        break;
    case TSR__CT_MAP: sb_puts(b, "a mapping from device to "); describe_expect(b, k, k->item, false); break;
    case TSR__CT_DEVICE_MAP:
        sb_puts(b, "a device or strategy (auto, balanced, sequential, cpu, cuda:0), "
                   "or a mapping from module name to device");
        break;
    }
}

/* Name of a type for the reference ("integer"). */
static void describe_type(sbuf *b, const tsr__config_key *k, tsr__ctype t, bool markdown)
{
    switch (t) {
    case TSR__CT_STRING: sb_puts(b, "string"); break;
    case TSR__CT_INT: sb_puts(b, "integer"); break;
    case TSR__CT_REAL: sb_puts(b, "number"); break;
    case TSR__CT_BOOL: sb_puts(b, "boolean"); break;
    case TSR__CT_ENUM:
        for (const char *p = k->values; *p; p++)
            sb_puts(b, *p != '|' ? (char[]){*p, 0} : markdown ? " \\| " : " | ");
        break;
    case TSR__CT_SIZE: sb_puts(b, "size"); break;
    case TSR__CT_DEVICE: sb_puts(b, "device"); break;
    case TSR__CT_LIST: sb_puts(b, "list of "); describe_type(b, k, k->item, markdown);
        sb_puts(b, "s"); break;
    case TSR__CT_LIST_OR_SCALAR:
        describe_type(b, k, k->item, markdown);
        sb_puts(b, " or list of ");
        describe_type(b, k, k->item, markdown);
        sb_puts(b, "s");
        break;
    case TSR__CT_MAP: sb_puts(b, "mapping device: "); describe_type(b, k, k->item, markdown); break;
    case TSR__CT_DEVICE_MAP: sb_puts(b, "string or mapping module: device"); break;
    }
    if (t == k->type && k->ranged) {
        if (k->min > 0 && k->min < 1e-9)
            sb_puts(b, ", > 0");
        else if (k->max >= 1e9)
            sb_printf(b, ", >= %g", k->min);
        else
            sb_printf(b, ", %g to %g", k->min, k->max);
    }
}

/* --- YAML quoting ---------------------------------------------------------------- */

/* Does a string need quotes to read back as the same string? */
static bool needs_quotes(const char *s)
{
    long long i;
    double d;
    if (is_null_text(s) || parse_bool(s) >= 0 || parse_int(s, &i) || parse_real(s, &d))
        return true;
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '_' || *s == '.' || *s == '/'))
        return true;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("_./:+-@", c) || c >= 0x80))
            return true;
    }
    return s[strlen(s) - 1] == ':';
}

static void sb_yaml_string(sbuf *b, const char *s)
{
    if (!needs_quotes(s)) {
        sb_puts(b, s);
        return;
    }
    sb_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sb_puts(b, "\\\""); break;
        case '\\': sb_puts(b, "\\\\"); break;
        case '\n': sb_puts(b, "\\n"); break;
        case '\t': sb_puts(b, "\\t"); break;
        case '\r': sb_puts(b, "\\r"); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                sb_printf(b, "\\x%02x", *p);
            else
                sb_putn(b, (const char *)p, 1);
        }
    }
    sb_puts(b, "\"");
}

/* A scalar of key k as YAML: strings quoted when needed, numbers as they are. */
static void sb_yaml_scalar(sbuf *b, tsr__ctype t, const char *s)
{
    if (t == TSR__CT_STRING || t == TSR__CT_DEVICE_MAP || t == TSR__CT_DEVICE)
        sb_yaml_string(b, s);
    else
        sb_puts(b, s);
}

/* Flow YAML of a value: "[cuda, cpu]", "{cuda:0: 6GiB}", "null". */
static void sb_yaml_value(sbuf *b, const tsr__config_key *k, const cval *v)
{
    switch (v->kind) {
    case VK_NULL: sb_puts(b, "null"); break;
    case VK_SCALAR:
        sb_yaml_scalar(b, k->type == TSR__CT_LIST_OR_SCALAR ? k->item : k->type, v->s);
        break;
    case VK_LIST:
        sb_puts(b, "[");
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                sb_puts(b, ", ");
            sb_yaml_scalar(b, k->item, v->items[i]);
        }
        sb_puts(b, "]");
        break;
    case VK_MAP:
        sb_puts(b, "{");
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                sb_puts(b, ", ");
            sb_yaml_string(b, v->keys[i]);
            sb_puts(b, ": ");
            sb_yaml_scalar(b, k->item, v->items[i]);
        }
        sb_puts(b, "}");
        break;
    }
}

/* --- the key table ---------------------------------------------------------------- */

/* Row of a dotted name or alias; -1 if none. */
static int key_index(const char *name)
{
    for (size_t i = 0; i < tsr__config_n_keys; i++)
        if (!strcmp(tsr__config_keys[i].name, name) ||
            (tsr__config_keys[i].alias && !strcmp(tsr__config_keys[i].alias, name)))
            return (int)i;
    return -1;
}

static bool is_section(const char *name)
{
    for (size_t i = 1; i < tsr__config_n_sections; i++)
        if (!strcmp(tsr__config_sections[i].name, name))
            return true;
    return false;
}

/* Optimal string alignment distance (Levenshtein plus transpositions). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t m = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < m)
                m = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < m)
                m = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < m)
                m = d[i - 2][j - 2] + 1;
            d[i][j] = m;
        }
    return d[la][lb];
}

/* The known key or section nearest to an unknown name, if close enough. */
static const char *suggest(const char *name)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < tsr__config_n_keys + tsr__config_n_sections; i++) {
        const char *cand = i < tsr__config_n_keys ? tsr__config_keys[i].name
                                                  : tsr__config_sections[i - tsr__config_n_keys].name;
        if (!*cand)
            continue;
        size_t d = edit_distance(name, cand);
        if (d < best_d) {
            best_d = d;
            best = cand;
        }
    }
    size_t limit = strlen(name) / 4;
    if (limit < 1)
        limit = 1;
    if (limit > 3)
        limit = 3;
    return best_d <= limit ? best : NULL;
}

/* --- reading YAML into a layer -------------------------------------------------------- */

typedef struct walk {
    const char *file;       /* for messages; NULL: the command line */
    yaml_document_t *doc;
    layer *L;
} walk;

/* "FILE:LINE:COLUMN" or "command line" (a flag's value has no useful position). */
static void where(const walk *w, yaml_mark_t m, char *buf, size_t cap)
{
    if (w->file)
        snprintf(buf, cap, "%s:%zu:%zu", w->file, m.line + 1, m.column + 1);
    else
        snprintf(buf, cap, "command line");
}

static tsr_status fail_at(const walk *w, yaml_mark_t m, const char *fmt, ...) TSR_PRINTF(3, 4);
static tsr_status fail_at(const walk *w, yaml_mark_t m, const char *fmt, ...)
{
    char pos[1200], msg[1500];
    where(w, m, pos, sizeof pos);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tsr__error(TSR_ERR_CONFIG, "%s: %s", pos, msg);
}

static const char *node_text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool node_is_null(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           is_null_text(node_text(n));
}

static tsr_status wrong_type(const walk *w, const tsr__config_key *k, const yaml_node_t *n,
                             const char *for_key)
{
    sbuf b = {0};
    describe_expect(&b, k, k->type, false);
    if (for_key) {
        b.n = 0;
        describe_expect(&b, k, k->item, false);
        sb_puts(&b, " for '");
        sb_puts(&b, for_key);
        sb_puts(&b, "'");
    }
    const char *got = n->type == YAML_SEQUENCE_NODE ? "a list"
                      : n->type == YAML_MAPPING_NODE ? "a mapping" : NULL;
    tsr_status st;
    if (b.oom)
        st = tsr__error(TSR_ERR_NOMEM, "out of memory");
    else if (got)
        st = fail_at(w, n->start_mark, "key '%s' expects %s, got %s", k->name, b.p, got);
    else
        st = fail_at(w, n->start_mark, "key '%s' expects %s, got '%s'", k->name, b.p,
                     node_text(n));
    free(b.p);
    return st;
}

/* Validate one scalar of type t (the key's type, or its item type) and
 * return its normalised text. */
static tsr_status check_scalar(const walk *w, const tsr__config_key *k, tsr__ctype t,
                               const yaml_node_t *n, const char *for_key, bool whole,
                               char **out)
{
    const tsr__config_key *row = k;
    tsr__config_key tmp;
    if (t != k->type) {      /* an item: report against the item type */
        tmp = *k;
        tmp.type = t;
        row = &tmp;
    }
    if (n->type != YAML_SCALAR_NODE)
        return wrong_type(w, row, n, NULL);
    const char *s = node_text(n);
    char num[32];
    long long iv = 0;
    double rv = 0;
    bool ok = true, num_ok = false;
    switch (t) {
    case TSR__CT_STRING: break;
    case TSR__CT_INT:
        ok = parse_int(s, &iv);
        if (ok) {
            snprintf(num, sizeof num, "%lld", iv);
            s = num;
            rv = (double)iv;
            num_ok = true;
        }
        break;
    case TSR__CT_REAL:
        ok = parse_real(s, &rv);
        num_ok = ok;
        break;
    case TSR__CT_BOOL: {
        int bv = parse_bool(s);
        ok = bv >= 0;
        s = bv > 0 ? "true" : bv == 0 ? "false" : s;
        break;
    }
    case TSR__CT_ENUM: ok = enum_has(k->values, s); break;
    case TSR__CT_SIZE: {
        uint64_t bytes;
        ok = tsr__config_parse_size(s, &bytes);
        break;
    }
    case TSR__CT_DEVICE:
    case TSR__CT_DEVICE_MAP: ok = is_device(s); break;
    default: ok = false; break;
    }
    if (!ok)   /* whole: say what the key takes, not only its items */
        return wrong_type(w, whole ? k : row, n, for_key);
    if (num_ok && k->ranged && (rv < k->min || rv > k->max)) {
        if (k->min > 0 && k->min < 1e-9)
            return fail_at(w, n->start_mark, "key '%s' must be greater than 0, got %s", k->name,
                           node_text(n));
        if (k->max >= 1e9)
            return fail_at(w, n->start_mark, "key '%s' must be at least %g, got %s", k->name,
                           k->min, node_text(n));
        return fail_at(w, n->start_mark, "key '%s' must be between %g and %g, got %s", k->name,
                       k->min, k->max, node_text(n));
    }
    *out = tsr__strdup(s);
    return *out ? TSR_OK : tsr__error(TSR_ERR_NOMEM, "out of memory");
}

static tsr_status finish_value(const tsr__config_key *k, cval *v)
{
    sbuf b = {0};
    if (v->kind == VK_SCALAR)
        sb_puts(&b, v->s);
    else if (v->kind == VK_NULL)
        sb_puts(&b, "");
    else
        sb_yaml_value(&b, k, v);
    if (b.oom || !b.p) {
        free(b.p);
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    v->text = b.p;
    return TSR_OK;
}

static tsr_status parse_list(const walk *w, const tsr__config_key *k, const yaml_node_t *n,
                             cval *v)
{
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    v->kind = VK_LIST;
    v->items = calloc(cnt ? cnt : 1, sizeof *v->items);
    if (!v->items)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = yaml_document_get_node(w->doc, n->data.sequence.items.start[i]);
        tsr_status st = check_scalar(w, k, k->item, it, NULL, false, &v->items[i]);
        if (st)
            return st;
        v->n++;
    }
    return TSR_OK;
}

static tsr_status parse_map(const walk *w, const tsr__config_key *k, const yaml_node_t *n,
                            cval *v, bool device_keys)
{
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    v->kind = VK_MAP;
    v->items = calloc(cnt ? cnt : 1, sizeof *v->items);
    v->keys = calloc(cnt ? cnt : 1, sizeof *v->keys);
    if (!v->items || !v->keys)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        yaml_node_t *kn = yaml_document_get_node(w->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(w->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return fail_at(w, kn->start_mark, "key '%s' expects plain text keys in its mapping",
                           k->name);
        const char *name = node_text(kn);
        if (device_keys && !is_device(name))
            return fail_at(w, kn->start_mark,
                           "key '%s' expects a device such as cpu, cuda:0 or disk as key, got '%s'",
                           k->name, name);
        for (size_t j = 0; j < v->n; j++)
            if (!strcmp(v->keys[j], name))
                return fail_at(w, kn->start_mark, "duplicate key '%s' in '%s'", name, k->name);
        tsr_status st = check_scalar(w, k, k->item, vn, name, false, &v->items[i]);
        if (st)
            return st;
        v->keys[i] = tsr__strdup(name);
        v->n++;
        if (!v->keys[i])
            return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    return TSR_OK;
}

/* Validate the value node of row k; *out is the new value. */
static tsr_status parse_value(const walk *w, const tsr__config_key *k, const yaml_node_t *n,
                              cval **out)
{
    cval *v = calloc(1, sizeof *v);
    if (!v)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    tsr_status st = TSR_OK;
    if (!n || node_is_null(n)) {
        v->kind = VK_NULL;
    } else if (n->type == YAML_SCALAR_NODE && k->type != TSR__CT_LIST &&
               k->type != TSR__CT_MAP) {
        v->kind = VK_SCALAR;
        st = check_scalar(w, k, k->type == TSR__CT_LIST_OR_SCALAR ? k->item : k->type, n, NULL,
                          true, &v->s);
    } else if (n->type == YAML_SEQUENCE_NODE &&
               (k->type == TSR__CT_LIST || k->type == TSR__CT_LIST_OR_SCALAR)) {
        st = parse_list(w, k, n, v);
    } else if (n->type == YAML_MAPPING_NODE &&
               (k->type == TSR__CT_MAP || k->type == TSR__CT_DEVICE_MAP)) {
        st = parse_map(w, k, n, v, k->type == TSR__CT_MAP);
    } else {
        st = wrong_type(w, k, n, NULL);
    }
    if (!st)
        st = finish_value(k, v);
    if (st) {
        cval_free(v);
        return st;
    }
    *out = v;
    return TSR_OK;
}

static tsr_status walk_mapping(const walk *w, const yaml_node_t *n, const char *prefix);

/* One "key: value" of a mapping under `prefix` ("" at the top). */
static tsr_status walk_pair(const walk *w, const yaml_node_t *kn, const yaml_node_t *vn,
                            const char *prefix)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "." : "", node_text(kn));
    int idx = key_index(full);
    if (idx >= 0) {
        cval *v;
        tsr_status st = parse_value(w, &tsr__config_keys[idx], vn, &v);
        if (st)
            return st;
        cval_free(w->L->vals[idx]);
        w->L->vals[idx] = v;
        return TSR_OK;
    }
    if (is_section(full)) {
        if (node_is_null(vn))
            return TSR_OK;   /* "generation:" with nothing under it */
        return walk_mapping(w, vn, full);
    }
    const char *near = suggest(full);
    if (near)
        return fail_at(w, kn->start_mark, "unknown key '%s' (did you mean '%s'?)", full, near);
    return fail_at(w, kn->start_mark, "unknown key '%s'", full);
}

static tsr_status walk_mapping(const walk *w, const yaml_node_t *n, const char *prefix)
{
    if (n->type != YAML_MAPPING_NODE) {
        if (!*prefix)
            return fail_at(w, n->start_mark, "expected a mapping of keys at the top level");
        return fail_at(w, n->start_mark, "key '%s' expects a mapping of keys, got %s", prefix,
                       n->type == YAML_SEQUENCE_NODE ? "a list" : "a scalar");
    }
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        yaml_node_t *kn = yaml_document_get_node(w->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(w->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return fail_at(w, kn->start_mark, "keys must be plain text, got %s",
                           kn->type == YAML_SEQUENCE_NODE ? "a list" : "a mapping");
        /* duplicates, aliases counted as their key ("dtype" and "torch_dtype") */
        const char *name = node_text(kn);
        for (size_t j = 0; j < i; j++) {
            yaml_node_t *prev = yaml_document_get_node(w->doc, n->data.mapping.pairs.start[j].key);
            if (prev->type != YAML_SCALAR_NODE)
                continue;
            char a[512], b[512];
            snprintf(a, sizeof a, "%s%s%s", prefix, *prefix ? "." : "", name);
            snprintf(b, sizeof b, "%s%s%s", prefix, *prefix ? "." : "", node_text(prev));
            int ia = key_index(a), ib = key_index(b);
            if (!strcmp(a, b))
                return fail_at(w, kn->start_mark, "duplicate key '%s' (first at line %zu)", a,
                               prev->start_mark.line + 1);
            if (ia >= 0 && ia == ib)
                return fail_at(w, kn->start_mark, "duplicate key '%s' (same as '%s' at line %zu)",
                               a, b, prev->start_mark.line + 1);
        }
        tsr_status st = walk_pair(w, kn, vn, prefix);
        if (st)
            return st;
    }
    return TSR_OK;
}

/* Parse YAML text as one document.  file: name for messages, NULL for a
 * command-line value. */
static tsr_status load_doc(const char *file, const char *text, size_t len, yaml_document_t *doc)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    tsr_status st = TSR_OK;
    if (!yaml_parser_load(&p, doc)) {
        const char *problem = p.problem ? p.problem : "cannot parse";
        if (file)
            st = tsr__error(TSR_ERR_CONFIG, "%s:%zu:%zu: malformed YAML: %s%s%s", file,
                            p.problem_mark.line + 1, p.problem_mark.column + 1, problem,
                            p.context ? " " : "", p.context ? p.context : "");
        else
            st = tsr__error(TSR_ERR_CONFIG, "command line: malformed YAML value: %s", problem);
        yaml_parser_delete(&p);
        return st;
    }
    /* A second document would be silently ignored: refuse it. */
    yaml_document_t extra;
    if (yaml_document_get_root_node(doc)) {
        if (yaml_parser_load(&p, &extra)) {
            yaml_node_t *r = yaml_document_get_root_node(&extra);
            if (r)
                st = tsr__error(TSR_ERR_CONFIG, "%s:%zu:%zu: only one YAML document is allowed",
                                file ? file : "command line", r->start_mark.line + 1,
                                r->start_mark.column + 1);
            yaml_document_delete(&extra);
        } else {
            st = tsr__error(TSR_ERR_CONFIG, "%s:%zu:%zu: malformed YAML: %s",
                            file ? file : "command line", p.problem_mark.line + 1,
                            p.problem_mark.column + 1, p.problem ? p.problem : "cannot parse");
        }
        if (st)
            yaml_document_delete(doc);
    }
    yaml_parser_delete(&p);
    return st;
}

/* --- layers ---------------------------------------------------------------------------- */

static tsr_status push_layer(tsr_config *cfg, layer *L)
{
    layer **ls = realloc(cfg->layers, (cfg->n_layers + 1) * sizeof *ls);
    if (!ls)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    cfg->layers = ls;
    cfg->layers[cfg->n_layers++] = L;
    return TSR_OK;
}

TSR_API void tsr_config_destroy(tsr_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_layers; i++)
        layer_free(cfg->layers[i]);
    free(cfg->layers);
    free(cfg);
}

TSR_API tsr_status tsr_config_create(tsr_config **out)
{
    if (!out)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_config_create: out is NULL");
    *out = NULL;
    tsr_config *cfg = calloc(1, sizeof *cfg);
    layer *L = layer_new("default");
    tsr_status st = (!cfg || !L) ? tsr__error(TSR_ERR_NOMEM, "out of memory") : TSR_OK;
    for (size_t i = 0; !st && i < tsr__config_n_keys; i++) {
        const tsr__config_key *k = &tsr__config_keys[i];
        if (!k->dflt)
            continue;
        yaml_document_t doc;
        st = load_doc("built-in default", k->dflt, strlen(k->dflt), &doc);
        if (st)
            break;
        walk w = {"built-in default", &doc, L};
        st = parse_value(&w, k, yaml_document_get_root_node(&doc), &L->vals[i]);
        yaml_document_delete(&doc);
    }
    if (!st)
        st = push_layer(cfg, L);
    if (st) {
        if (st != TSR_ERR_NOMEM)   /* a bad default in the table is a bug */
            st = tsr__error_prefix(TSR_ERR_INTERNAL, "built-in configuration");
        layer_free(L);
        tsr_config_destroy(cfg);
        return st;
    }
    *out = cfg;
    return TSR_OK;
}

/* Validate YAML text into a new layer named `name`; file NULL: command line. */
static tsr_status parse_layer(const char *name, const char *file, const char *text, size_t len,
                              layer **out)
{
    yaml_document_t doc;
    tsr_status st = load_doc(file, text, len, &doc);
    if (st)
        return st;
    layer *L = layer_new(name);
    if (!L) {
        yaml_document_delete(&doc);
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !node_is_null(root)) {
        walk w = {file, &doc, L};
        st = walk_mapping(&w, root, "");
    }
    yaml_document_delete(&doc);
    if (st) {
        layer_free(L);
        return st;
    }
    *out = L;
    return TSR_OK;
}

TSR_API tsr_status tsr_config_load_file(tsr_config *cfg, const char *path)
{
    if (!cfg || !path)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_config_load_file: cfg or path is NULL");
    char *text;
    size_t len;
    tsr_status st = tsr__read_file(path, &text, &len);
    if (st)
        return st;
    layer *L = NULL;
    st = parse_layer(path, path, text, len, &L);
    free(text);
    if (!st) {
        st = push_layer(cfg, L);
        if (st)
            layer_free(L);
    }
    return st;
}

TSR_API tsr_status tsr_config_load_default_files(tsr_config *cfg)
{
    if (!cfg)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_config_load_default_files: cfg is NULL");
    char path[4096];
    snprintf(path, sizeof path, "%s/tessera/tessera.yaml", TSR_INSTALL_SYSCONFDIR);
    if (tsr__file_exists(path)) {
        tsr_status st = tsr_config_load_file(cfg, path);
        if (st)
            return st;
    }
    /* XDG base directories: a relative $XDG_CONFIG_HOME is invalid and ignored. */
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        snprintf(path, sizeof path, "%s/tessera/tessera.yaml", xdg);
    else if (home && *home)
        snprintf(path, sizeof path, "%s/.config/tessera/tessera.yaml", home);
    else
        return TSR_OK;
    if (tsr__file_exists(path))
        return tsr_config_load_file(cfg, path);
    return TSR_OK;
}

TSR_API tsr_status tsr_config_set(tsr_config *cfg, const char *key, const char *value)
{
    if (!cfg || !key || !value)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_config_set: cfg, key or value is NULL");
    int idx = key_index(key);
    if (idx < 0 && !is_section(key)) {
        const char *near = suggest(key);
        if (near)
            return tsr__error(TSR_ERR_CONFIG, "command line: unknown key '%s' (did you mean '%s'?)",
                              key, near);
        return tsr__error(TSR_ERR_CONFIG, "command line: unknown key '%s'", key);
    }
    yaml_document_t doc;
    tsr_status st = load_doc(NULL, value, strlen(value), &doc);
    if (st)
        return st;
    layer *tmp = layer_new("command line");
    if (!tmp) {
        yaml_document_delete(&doc);
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    walk w = {NULL, &doc, tmp};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (idx >= 0)
        st = parse_value(&w, &tsr__config_keys[idx], root, &tmp->vals[idx]);
    else if (root && !node_is_null(root))
        st = walk_mapping(&w, root, key);
    yaml_document_delete(&doc);
    /* Consecutive flags share one "command line" layer on top. */
    layer *top = cfg->layers[cfg->n_layers - 1];
    if (!st && (cfg->n_layers == 1 || strcmp(top->name, "command line") != 0)) {
        st = push_layer(cfg, tmp);
        if (!st)
            return TSR_OK;
    }
    if (!st)
        for (size_t i = 0; i < tsr__config_n_keys; i++)
            if (tmp->vals[i]) {
                cval_free(top->vals[i]);
                top->vals[i] = tmp->vals[i];
                tmp->vals[i] = NULL;
            }
    layer_free(tmp);
    return st;
}

/* --- lookups ------------------------------------------------------------------------------ */

/* The effective value of row idx and the layer it comes from (NULL: unset). */
static const cval *effective(const tsr_config *cfg, int idx, const layer **from)
{
    for (size_t i = cfg->n_layers; i-- > 0;)
        if (cfg->layers[i]->vals[idx]) {
            if (from)
                *from = cfg->layers[i];
            return cfg->layers[i]->vals[idx];
        }
    if (from)
        *from = NULL;
    return NULL;
}

static const cval *lookup(const tsr_config *cfg, const char *key)
{
    if (!cfg || !key)
        return NULL;
    int idx = key_index(key);
    if (idx < 0) {
        tsr__log(TSR_LOG_DEBUG, "configuration: no key '%s' in the table", key);
        return NULL;
    }
    return effective(cfg, idx, NULL);
}

TSR_API const char *tsr_config_get(const tsr_config *cfg, const char *key)
{
    if (!cfg || !key || key_index(key) < 0) {
        tsr__error(TSR_ERR_NOT_FOUND, "unknown configuration key '%s'", key ? key : "(null)");
        return NULL;
    }
    const cval *v = lookup(cfg, key);
    return v ? v->text : "";
}

int64_t tsr__config_int(const tsr_config *cfg, const char *key)
{
    const cval *v = lookup(cfg, key);
    return v && v->kind == VK_SCALAR ? strtoll(v->s, NULL, 10) : 0;
}

double tsr__config_real(const tsr_config *cfg, const char *key)
{
    const cval *v = lookup(cfg, key);
    return v && v->kind == VK_SCALAR ? strtod(v->s, NULL) : 0.0;
}

bool tsr__config_bool(const tsr_config *cfg, const char *key)
{
    const cval *v = lookup(cfg, key);
    return v && v->kind == VK_SCALAR && !strcmp(v->s, "true");
}

const char *tsr__config_string(const tsr_config *cfg, const char *key)
{
    const cval *v = lookup(cfg, key);
    return v && v->kind == VK_SCALAR ? v->s : NULL;
}

bool tsr__config_is_set(const tsr_config *cfg, const char *key)
{
    int idx = cfg && key ? key_index(key) : -1;
    if (idx < 0)
        return false;
    for (size_t i = 1; i < cfg->n_layers; i++)
        if (cfg->layers[i]->vals[idx])
            return true;
    return false;
}

size_t tsr__config_list_len(const tsr_config *cfg, const char *key)
{
    const cval *v = lookup(cfg, key);
    if (!v)
        return 0;
    return v->kind == VK_LIST ? v->n : v->kind == VK_SCALAR ? 1 : 0;
}

const char *tsr__config_list_at(const tsr_config *cfg, const char *key, size_t i)
{
    const cval *v = lookup(cfg, key);
    if (!v)
        return NULL;
    if (v->kind == VK_SCALAR)
        return i == 0 ? v->s : NULL;
    return v->kind == VK_LIST && i < v->n ? v->items[i] : NULL;
}

size_t tsr__config_map_len(const tsr_config *cfg, const char *key)
{
    const cval *v = lookup(cfg, key);
    return v && v->kind == VK_MAP ? v->n : 0;
}

const char *tsr__config_map_key(const tsr_config *cfg, const char *key, size_t i)
{
    const cval *v = lookup(cfg, key);
    return v && v->kind == VK_MAP && i < v->n ? v->keys[i] : NULL;
}

const char *tsr__config_map_value(const tsr_config *cfg, const char *key, size_t i)
{
    const cval *v = lookup(cfg, key);
    return v && v->kind == VK_MAP && i < v->n ? v->items[i] : NULL;
}

/* --- dump ------------------------------------------------------------------------------------ */

TSR_API tsr_status tsr_config_dump(const tsr_config *cfg, char **yaml_out)
{
    if (!cfg || !yaml_out)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_config_dump: cfg or yaml_out is NULL");
    *yaml_out = NULL;
    sbuf b = {0};
    sb_puts(&b, "# Effective configuration; later layers win:");
    for (size_t i = 0; i < cfg->n_layers; i++)
        sb_printf(&b, "%s %s", i ? " <" : "", cfg->layers[i]->name);
    sb_puts(&b, "\n");
    /* The table keeps each section's keys together: a header where it changes. */
    const char *prev = "";
    size_t prev_slen = 0;
    for (size_t i = 0; i < tsr__config_n_keys; i++) {
        const tsr__config_key *k = &tsr__config_keys[i];
        const char *dot = strchr(k->name, '.');
        size_t slen = dot ? (size_t)(dot - k->name) : 0;
        if (slen && (slen != prev_slen || strncmp(prev, k->name, slen) != 0))
            sb_printf(&b, "%.*s:\n", (int)slen, k->name);
        prev = k->name;
        prev_slen = slen;
        const layer *from;
        const cval *v = effective(cfg, (int)i, &from);
        size_t start = b.n;
        sb_printf(&b, "%s%s: ", slen ? "  " : "", dot ? dot + 1 : k->name);
        if (v)
            sb_yaml_value(&b, k, v);
        else
            sb_puts(&b, "null");
        size_t width = b.n - start;
        for (size_t pad = width; pad < 40; pad++)
            sb_puts(&b, " ");
        sb_printf(&b, " # %s\n", !from ? "unset" : from == cfg->layers[0] ? "default" : from->name);
    }
    if (b.oom || !b.p) {
        free(b.p);
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    *yaml_out = b.p;
    return TSR_OK;
}

TSR_API void tsr_free(void *p) { free(p); }

/* --- the reference ------------------------------------------------------------------------------ */

/* Word-wrap `text` at `width` columns, each line indented by `indent`. */
static void sb_wrap(sbuf *b, const char *text, size_t indent, size_t width)
{
    size_t col = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        size_t wl = (size_t)(e - p);
        if (!wl)
            break;
        if (col && col + 1 + wl > width) {
            sb_puts(b, "\n");
            col = 0;
        }
        if (!col) {
            for (size_t i = 0; i < indent; i++)
                sb_puts(b, " ");
            col = indent;
        } else {
            sb_puts(b, " ");
            col++;
        }
        sb_putn(b, p, wl);
        col += wl;
        p = e;
    }
    sb_puts(b, "\n");
}

static void ref_text(sbuf *b)
{
    char intro[1024];
    snprintf(intro, sizeof intro,
             "Configuration keys. Layers, later wins: built-in defaults, "
             "%s/tessera/tessera.yaml, $XDG_CONFIG_HOME/tessera/tessera.yaml "
             "(~/.config/tessera/tessera.yaml), -c FILE, then --set KEY=VALUE flags "
             "(VALUE is YAML). Unknown keys are errors.", TSR_INSTALL_SYSCONFDIR);
    sb_wrap(b, intro, 0, 78);
    for (size_t s = 0; s < tsr__config_n_sections; s++) {
        const tsr__config_section *sec = &tsr__config_sections[s];
        sb_printf(b, "\n%s%s\n", *sec->name ? sec->name : sec->title, *sec->name ? ":" : ":");
        sb_wrap(b, sec->doc, 2, 78);
        for (size_t i = 0; i < tsr__config_n_keys; i++) {
            const tsr__config_key *k = &tsr__config_keys[i];
            const char *dot = strchr(k->name, '.');
            size_t slen = dot ? (size_t)(dot - k->name) : 0;
            if (slen != strlen(sec->name) || strncmp(k->name, sec->name, slen))
                continue;
            sbuf line = {0};
            sb_printf(&line, "  %s", k->name);
            if (k->alias)
                sb_printf(&line, " (or %s)", k->alias);
            sb_puts(&line, "  ");
            describe_type(&line, k, k->type, false);
            sb_printf(&line, ", default %s", k->dflt ? k->dflt : "unset");
            if (line.p)
                sb_printf(b, "%s\n", line.p);
            b->oom |= line.oom;
            free(line.p);
            sb_wrap(b, k->doc, 6, 78);
        }
    }
}

/* Markdown cell text: pipes escaped. */
static void sb_cell(sbuf *b, const char *s)
{
    for (; *s; s++)
        sb_puts(b, *s == '|' ? "\\|" : (char[]){*s, 0});
}

static void ref_markdown(sbuf *b)
{
    sb_puts(b,
            "# Configuration reference\n"
            "\n"
            "<!-- Generated from core/config_keys.c by `tessera config --markdown`; do not edit.\n"
            "     tests/cli/config_doc.sh checks that the two agree. -->\n"
            "\n"
            "A run configuration is YAML with the names Hugging Face users know: the arguments\n"
            "of `from_pretrained()` at the top level, the quantization configs' keys under\n"
            "`quantization`, and `GenerationConfig`'s under `generation`.\n"
            "\n"
            "```yaml\n"
            "model: ./models/llama\n"
            "dtype: bfloat16\n"
            "backends: [cuda, cpu]\n"
            "device_map: auto\n"
            "max_memory: {cuda:0: 6GiB, cpu: 20GiB}\n"
            "quantization:\n"
            "  method: bitsandbytes\n"
            "  load_in_4bit: true\n"
            "  bnb_4bit_quant_type: nf4\n"
            "generation:\n"
            "  max_new_tokens: 128\n"
            "  do_sample: true\n"
            "  temperature: 0.7\n"
            "  top_p: 0.9\n"
            "cache: {implementation: static}\n"
            "```\n"
            "\n"
            "## Layers\n"
            "\n"
            "Settings are applied in this order; a later layer wins, key by key:\n"
            "\n"
            "1. the built-in defaults (the tables below);\n"
            "2. the system file `$sysconfdir/tessera/tessera.yaml` (`/etc/tessera/tessera.yaml`\n"
            "   when installed with prefix `/usr`);\n"
            "3. the user file `$XDG_CONFIG_HOME/tessera/tessera.yaml`, by default\n"
            "   `~/.config/tessera/tessera.yaml`;\n"
            "4. files named with `-c FILE`, in order;\n"
            "5. command-line flags: `--set KEY=VALUE` (VALUE is YAML: `--set backends=[cuda,cpu]`)\n"
            "   and shortcuts such as `-m` (`model`) and `-n` (`generation.max_new_tokens`).\n"
            "\n"
            "Missing files are skipped.  A list or mapping replaces the lower layer's whole\n"
            "value.  YAML's `null` (or `~`, or nothing) clears a key, like `None` in Python.\n"
            "`tessera config show` prints the effective configuration with the layer each value\n"
            "came from; `tessera config check FILE` validates a file.\n"
            "\n"
            "## Errors\n"
            "\n"
            "An unknown key, at any depth, a value of the wrong type, a number out of range, a\n"
            "key repeated in one mapping and malformed YAML are errors that name the place:\n"
            "\n"
            "```\n"
            "run.yaml:7:3: unknown key 'generation.temprature' (did you mean 'generation.temperature'?)\n"
            "run.yaml:2:10: key 'threads' expects an integer, got 'many'\n"
            "command line: key 'generation.top_p' expects a number, got 'abc'\n"
            "```\n"
            "\n"
            "Types: *string*; *integer*; *number* (an integer is accepted); *boolean* (`true`,\n"
            "`false`; also `yes`/`no`, `on`/`off`); *size*: bytes, or a number with a unit,\n"
            "decimal `kB`/`KB`, `MB`, `GB`, `TB` or binary `KiB`, `MiB`, `GiB`, `TiB`\n"
            "(`6GiB` = 6 × 2^30 bytes); *device*: `cpu`, `disk`, `cuda`, `cuda:0`, or a GPU\n"
            "index `0`; a choice of values `a | b`.\n");
    for (size_t s = 0; s < tsr__config_n_sections; s++) {
        const tsr__config_section *sec = &tsr__config_sections[s];
        sb_printf(b, "\n## %s\n\n", *sec->name ? sec->name : sec->title);
        sb_printf(b, "%s\n\n", sec->doc);
        sb_puts(b, "| Key | Type | Default | Description |\n|---|---|---|---|\n");
        for (size_t i = 0; i < tsr__config_n_keys; i++) {
            const tsr__config_key *k = &tsr__config_keys[i];
            const char *dot = strchr(k->name, '.');
            size_t slen = dot ? (size_t)(dot - k->name) : 0;
            if (slen != strlen(sec->name) || strncmp(k->name, sec->name, slen))
                continue;
            sb_printf(b, "| `%s`", k->name);
            if (k->alias)
                sb_printf(b, " (alias `%s`)", k->alias);
            sb_puts(b, " | ");
            describe_type(b, k, k->type, true);
            sb_puts(b, " | ");
            if (k->dflt) {
                sb_puts(b, "`");
                sb_cell(b, k->dflt);
                sb_puts(b, "`");
            } else {
                sb_puts(b, "unset");
            }
            sb_puts(b, " | ");
            sb_cell(b, k->doc);
            sb_puts(b, " |\n");
        }
    }
}

void tsr__config_write_reference(FILE *f, bool markdown)
{
    sbuf b = {0};
    if (markdown)
        ref_markdown(&b);
    else
        ref_text(&b);
    if (b.p)
        fputs(b.p, f);
    free(b.p);
}

static char *ref_cache[2];
static pthread_once_t ref_once = PTHREAD_ONCE_INIT;

static void ref_build(void)
{
    for (int m = 0; m < 2; m++) {
        sbuf b = {0};
        if (m)
            ref_markdown(&b);
        else
            ref_text(&b);
        if (b.oom) {
            free(b.p);
            b.p = NULL;
        }
        ref_cache[m] = b.p;
    }
}

TSR_API const char *tsr_config_reference(int markdown)
{
    pthread_once(&ref_once, ref_build);
    const char *r = ref_cache[markdown ? 1 : 0];
    return r ? r : "";
}
