/* core/registry.c - the plugin registry: plugins.d manifests and dlopen.
 *
 * A manifest (YAML) names a plugin, its kind, its shared module and what it
 * provides.  Scanning reads manifests only; a plugin's library is opened when
 * a run asks for it (tsr__registry_find) or when `tessera plugins` wants the
 * final status.  Every failure becomes a sentence on the manifest and never
 * stops the others (GStreamer's registry, gdk-pixbuf's loaders.cache).
 *
 * Search order (earlier wins when two directories hold a manifest with the
 * same file name, so /etc overrides the vendor's $datadir):
 *   1. each entry of TESSERA_PLUGIN_PATH (colon-separated)
 *   2. $XDG_CONFIG_HOME/tessera/plugins.d (default ~/.config/tessera/plugins.d)
 *   3. <sysconfdir>/tessera/plugins.d
 *   4. <datadir>/tessera/plugins.d relative to where libtessera lives, so the
 *      build tree and relocated installs work, then the compiled-in one.
 * Libraries named relatively are looked up next to the manifest, then in
 * <libdir>/tessera-1/plugins relative to libtessera, then the compiled-in
 * plugin directory.
 *
 * Thread-safety: a registry serialises loads with its own mutex; the global
 * registry is created once (pthread_once).  tsr_plugins_scan/get share one
 * lock.  Loaded plugins are never unloaded.
 */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>
#include "internal.h"

#ifndef TSR_INSTALL_SYSCONFDIR
#  define TSR_INSTALL_SYSCONFDIR "/etc"
#endif
#ifndef TSR_INSTALL_LIBDIR
#  define TSR_INSTALL_LIBDIR "lib"
#endif
#ifndef TSR_INSTALL_DATADIR
#  define TSR_INSTALL_DATADIR "share"
#endif
#ifndef TSR_PLUGIN_SUBDIR
#  define TSR_PLUGIN_SUBDIR "tessera-1"
#endif
#ifndef TSR_PLUGIN_DIR
#  define TSR_PLUGIN_DIR "/usr/local/lib/" TSR_PLUGIN_SUBDIR "/plugins"
#endif
#ifndef TSR_MANIFEST_DIR
#  define TSR_MANIFEST_DIR "/usr/local/share/tessera/plugins.d"
#endif

/* Sizes of the 1.0 tables: a plugin must fill at least these.  (sizeof()
 * grows when members are appended; these never change.) */
#define END_OF(type, member) (offsetof(type, member) + sizeof(((type *)0)->member))
#define DESC_SIZE_1_0 END_OF(tsr_plugin_desc, vtable)
#define BACKEND_SIZE_1_0 END_OF(tsr_backend_vtable, copy_to_host)
#define MODEL_SIZE_1_0 END_OF(tsr_model_vtable, build)
#define QUANTIZER_SIZE_1_0 END_OF(tsr_quantizer_vtable, quantize_weight)

/* A manifest plus what only this file needs.  `m` comes first so that the
 * tsr__manifest* handed out converts back. */
typedef struct entry {
    tsr__manifest m;
    size_t order;            /* position in the search order */
    char *file;              /* the manifest's file name (override key) */
    char *lib_path;          /* resolved library, NULL if none exists */
    char *lib_tried;         /* "a, b, c": where it was looked for */
    char *abi;               /* "1.0" as the descriptor says; "" before */
    char *provides_csv;
    char *plugin_version;    /* descriptor's version once loaded */
    bool invalid;            /* the manifest itself is broken */
    tsr_status fail_status;  /* why loaded == -1 */
} entry;

struct tsr__registry {
    entry **e;
    size_t n, cap;
    char **dirs;             /* directories searched (existing ones) */
    size_t n_dirs;
    pthread_mutex_t lock;
};

/* ---- small helpers --------------------------------------------------------- */

static char *fmt_alloc(const char *fmt, ...) TSR_PRINTF(1, 2);
static char *fmt_alloc(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static const char *kind_name(uint32_t kind)
{
    switch (kind) {
    case TSR_PLUGIN_BACKEND: return "backend";
    case TSR_PLUGIN_QUANTIZER: return "quantizer";
    case TSR_PLUGIN_MODEL: return "model";
    }
    return "unknown";
}

static int kind_from_name(const char *s)
{
    if (!s)
        return 0;
    if (!strcmp(s, "backend"))
        return TSR_PLUGIN_BACKEND;
    if (!strcmp(s, "quantizer"))
        return TSR_PLUGIN_QUANTIZER;
    if (!strcmp(s, "model"))
        return TSR_PLUGIN_MODEL;
    return 0;
}

/* The provides key each kind must use. */
static const char *provides_key(int kind)
{
    switch (kind) {
    case TSR_PLUGIN_BACKEND: return "devices";
    case TSR_PLUGIN_QUANTIZER: return "quant_methods";
    case TSR_PLUGIN_MODEL: return "model_types";
    }
    return "?";
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Directory holding libtessera (or the executable it is linked into). */
static char *library_dir(void)
{
    Dl_info info;
    void *self = (void *)(uintptr_t)&library_dir;
    if (!dladdr(self, &info) || !info.dli_fname || !*info.dli_fname)
        return NULL;
    char *real = realpath(info.dli_fname, NULL);
    if (!real)
        return NULL;
    char *slash = strrchr(real, '/');
    if (slash && slash != real)
        *slash = 0;
    return real;
}

/* The install prefix mirrored around libtessera: strip as many components
 * from its directory as TSR_INSTALL_LIBDIR has ("lib", "lib/x86_64-linux-gnu"). */
static char *relocated_prefix(void)
{
    if (TSR_INSTALL_LIBDIR[0] == '/')
        return NULL;
    char *dir = library_dir();
    if (!dir)
        return NULL;
    int n = 1;
    for (const char *p = TSR_INSTALL_LIBDIR; *p; p++)
        if (*p == '/' && p[1] && p[1] != '/')
            n++;
    while (n-- > 0) {
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir) {
            free(dir);
            return NULL;
        }
        *slash = 0;
    }
    return dir;
}

static char *relocated(const char *installdir, const char *tail)
{
    if (installdir[0] == '/')
        return NULL;
    char *prefix = relocated_prefix();
    if (!prefix)
        return NULL;
    char *p = fmt_alloc("%s/%s/%s", prefix, installdir, tail);
    free(prefix);
    return p;
}

/* ---- registry storage ---------------------------------------------------------- */

static void entry_free(entry *e)
{
    if (!e)
        return;
    tsr__manifest *m = &e->m;
    free(m->name);
    free(m->kind);
    free(m->version);
    free(m->library);
    free(m->description);
    free(m->path);
    free(m->origin);
    for (size_t i = 0; i < m->n_provides; i++)
        free(m->provides[i]);
    free(m->provides);
    free(m->status);
    free(e->file);
    free(e->lib_path);
    free(e->lib_tried);
    free(e->abi);
    free(e->provides_csv);
    free(e->plugin_version);
    free(e);
}

static bool reg_push(tsr__registry *reg, entry *e)
{
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 16;
        entry **ne = realloc(reg->e, cap * sizeof *ne);
        if (!ne)
            return false;
        reg->e = ne;
        reg->cap = cap;
    }
    e->order = reg->n;
    reg->e[reg->n++] = e;
    return true;
}

static void set_status(entry *e, const char *text)
{
    free(e->m.status);
    e->m.status = tsr__strdup(text);
}

/* ---- manifest parsing (libyaml document API) ----------------------------------- */

typedef struct parse_ctx {
    const char *path;
    char err[512];
} parse_ctx;

static bool perr(parse_ctx *c, const yaml_node_t *n, const char *fmt, ...) TSR_PRINTF(3, 4);
static bool perr(parse_ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n)
        snprintf(c->err, sizeof c->err, "%s:%zu:%zu: %s", c->path,
                 n->start_mark.line + 1, n->start_mark.column + 1, msg);
    else
        snprintf(c->err, sizeof c->err, "%s: %s", c->path, msg);
    return false;
}

static bool scalar(parse_ctx *c, const yaml_node_t *n, const char *key, char **out)
{
    if (n->type != YAML_SCALAR_NODE)
        return perr(c, n, "'%s' must be a single value (a string)", key);
    if (*out)
        free(*out);
    *out = tsr__strdup((const char *)n->data.scalar.value);
    return *out != NULL || perr(c, n, "out of memory");
}

static bool valid_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.' || *s == '+'))
            return false;
    return true;
}

static bool add_provide(parse_ctx *c, tsr__manifest *m, const yaml_node_t *n, const char *key)
{
    if (n->type != YAML_SCALAR_NODE || !n->data.scalar.length)
        return perr(c, n, "each entry of provides.%s must be a non-empty string", key);
    char **np = realloc(m->provides, (m->n_provides + 1) * sizeof *np);
    if (!np)
        return perr(c, n, "out of memory");
    m->provides = np;
    m->provides[m->n_provides] = tsr__strdup((const char *)n->data.scalar.value);
    if (!m->provides[m->n_provides])
        return perr(c, n, "out of memory");
    m->n_provides++;
    return true;
}

static bool parse_provides(parse_ctx *c, yaml_document_t *doc, const yaml_node_t *n,
                           tsr__manifest *m, yaml_node_t **key_node)
{
    if (n->type != YAML_MAPPING_NODE)
        return perr(c, n, "'provides' must be a mapping such as {model_types: [llama]}");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (!k || !v || k->type != YAML_SCALAR_NODE)
            return perr(c, k, "keys of 'provides' must be strings");
        const char *key = (const char *)k->data.scalar.value;
        if (strcmp(key, "model_types") && strcmp(key, "quant_methods") && strcmp(key, "devices"))
            return perr(c, k, "unknown key 'provides.%s' (expected model_types, quant_methods "
                        "or devices)", key);
        if (*key_node)
            return perr(c, k, "'provides' must have one key; '%s' comes after '%s'", key,
                        (const char *)(*key_node)->data.scalar.value);
        *key_node = k;
        if (v->type == YAML_SCALAR_NODE) {
            if (!add_provide(c, m, v, key))
                return false;
        } else if (v->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top; it++)
                if (!add_provide(c, m, yaml_document_get_node(doc, *it), key))
                    return false;
        } else {
            return perr(c, v, "provides.%s must be a list of strings", key);
        }
    }
    return true;
}

/* Fill m from the document; false with c->err on the first problem. */
static bool parse_doc(parse_ctx *c, yaml_document_t *doc, tsr__manifest *m)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root)
        return perr(c, NULL, "the manifest is empty");
    if (root->type != YAML_MAPPING_NODE)
        return perr(c, root, "a manifest must be a mapping of keys (name, kind, library, ...)");
    yaml_node_t *prov_key = NULL, *kind_node = NULL, *name_node = NULL;
    yaml_node_t *seen[8] = {0};
    static const char *const keys[] = {"name", "kind", "version", "library", "priority",
                                       "provides", "description"};
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (!k || !v || k->type != YAML_SCALAR_NODE)
            return perr(c, k, "manifest keys must be strings");
        const char *key = (const char *)k->data.scalar.value;
        size_t ki = 0;
        while (ki < sizeof keys / sizeof *keys && strcmp(keys[ki], key))
            ki++;
        if (ki == sizeof keys / sizeof *keys)
            return perr(c, k, "unknown key '%s' (expected name, kind, version, library, "
                        "priority, provides or description)", key);
        if (seen[ki])
            return perr(c, k, "key '%s' appears twice (first at line %zu)", key,
                        seen[ki]->start_mark.line + 1);
        seen[ki] = k;
        bool ok = true;
        switch (ki) {
        case 0: ok = scalar(c, v, key, &m->name); name_node = v; break;
        case 1: ok = scalar(c, v, key, &m->kind); kind_node = v; break;
        case 2: ok = scalar(c, v, key, &m->version); break;
        case 3:
            ok = scalar(c, v, key, &m->library);
            if (ok && !*m->library)
                return perr(c, v, "'library' is empty");
            break;
        case 4: {
            if (v->type != YAML_SCALAR_NODE)
                return perr(c, v, "'priority' must be an integer");
            const char *s = (const char *)v->data.scalar.value;
            char *end;
            errno = 0;
            long val = strtol(s, &end, 10);
            if (!*s || *end || errno || val < INT32_MIN || val > INT32_MAX)
                return perr(c, v, "'priority' must be an integer, not '%s'", s);
            m->priority = (int)val;
            break;
        }
        case 5: ok = parse_provides(c, doc, v, m, &prov_key); break;
        case 6: ok = scalar(c, v, key, &m->description); break;
        }
        if (!ok)
            return false;
    }
    if (!m->name)
        return perr(c, root, "missing key 'name'");
    if (!valid_name(m->name))
        return perr(c, name_node, "name '%s' must use only letters, digits and -_.+", m->name);
    if (!m->kind)
        return perr(c, root, "missing key 'kind' (backend, quantizer or model)");
    int kind = kind_from_name(m->kind);
    if (!kind)
        return perr(c, kind_node, "kind '%s' is not one of backend, quantizer, model", m->kind);
    if (!m->library)
        return perr(c, root, "missing key 'library' (the plugin's shared module)");
    if (prov_key && strcmp((const char *)prov_key->data.scalar.value, provides_key(kind)))
        return perr(c, prov_key, "a %s plugin provides '%s', not '%s'", m->kind,
                    provides_key(kind), (const char *)prov_key->data.scalar.value);
    if (!prov_key && kind != TSR_PLUGIN_BACKEND)
        return perr(c, root, "missing key 'provides' ({%s: [...]})", provides_key(kind));
    return true;
}

/* Parse one manifest into e; a broken one keeps its problem as status. */
static void parse_manifest(entry *e)
{
    parse_ctx c = {.path = e->m.path};
    c.err[0] = 0;
    FILE *f = fopen(e->m.path, "rb");
    bool ok = false;
    if (!f) {
        snprintf(c.err, sizeof c.err, "%s: cannot open: %s", e->m.path, strerror(errno));
    } else {
        yaml_parser_t parser;
        yaml_document_t doc;
        if (!yaml_parser_initialize(&parser)) {
            snprintf(c.err, sizeof c.err, "%s: out of memory", e->m.path);
        } else {
            yaml_parser_set_input_file(&parser, f);
            if (!yaml_parser_load(&parser, &doc)) {
                snprintf(c.err, sizeof c.err, "%s:%zu:%zu: %s%s%s", e->m.path,
                         parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                         parser.problem ? parser.problem : "YAML syntax error",
                         parser.context ? " " : "", parser.context ? parser.context : "");
            } else {
                ok = parse_doc(&c, &doc, &e->m);
                yaml_document_delete(&doc);
            }
            yaml_parser_delete(&parser);
        }
        fclose(f);
    }
    if (!e->m.version)
        e->m.version = tsr__strdup("");
    if (!e->m.description)
        e->m.description = tsr__strdup("");
    if (ok) {
        set_status(e, "not loaded");
        return;
    }
    e->invalid = true;
    e->m.loaded = -1;
    e->fail_status = TSR_ERR_CONFIG;
    char *st = fmt_alloc("invalid manifest %s", c.err);
    set_status(e, st ? st : c.err);
    free(st);
    /* Keep whatever identifies it in a listing. */
    if (!e->m.name || !valid_name(e->m.name)) {
        free(e->m.name);
        const char *b = e->file;
        size_t len = strlen(b);
        if (len > 5 && !strcmp(b + len - 5, ".yaml"))
            len -= 5;
        e->m.name = strndup(b, len);
    }
    if (!e->m.kind || !kind_from_name(e->m.kind)) {
        free(e->m.kind);
        e->m.kind = tsr__strdup("");
    }
}

/* Look for the library: absolute as is; relative next to the manifest, then
 * in the relocated plugin dir, then the compiled-in one. */
static void resolve_library(entry *e)
{
    const char *lib = e->m.library;
    if (!lib)
        return;
    if (lib[0] == '/') {
        e->lib_tried = tsr__strdup(lib);
        if (is_file(lib))
            e->lib_path = tsr__strdup(lib);
        return;
    }
    char *cand[3] = {0};
    char *mdir = tsr__strdup(e->m.path);
    if (mdir) {
        char *slash = strrchr(mdir, '/');
        if (slash)
            *slash = 0;
        cand[0] = fmt_alloc("%s/%s", slash ? mdir : ".", lib);
        free(mdir);
    }
    cand[1] = relocated(TSR_INSTALL_LIBDIR, TSR_PLUGIN_SUBDIR "/plugins");
    if (cand[1]) {
        char *p = fmt_alloc("%s/%s", cand[1], lib);
        free(cand[1]);
        cand[1] = p;
    }
    cand[2] = fmt_alloc("%s/%s", TSR_PLUGIN_DIR, lib);
    size_t len = 1;
    for (int i = 0; i < 3; i++)
        if (cand[i])
            len += strlen(cand[i]) + 2;
    e->lib_tried = calloc(1, len);
    for (int i = 0; i < 3; i++) {
        if (!cand[i])
            continue;
        bool dup = false;
        for (int j = 0; j < i; j++)
            dup = dup || (cand[j] && !strcmp(cand[j], cand[i]));
        if (dup)
            continue;
        if (e->lib_tried) {
            if (*e->lib_tried)
                strcat(e->lib_tried, ", ");
            strcat(e->lib_tried, cand[i]);
        }
        if (!e->lib_path && is_file(cand[i])) {
            char *real = realpath(cand[i], NULL);
            e->lib_path = real ? real : tsr__strdup(cand[i]);
        }
    }
    for (int i = 0; i < 3; i++)
        free(cand[i]);
}

static void make_provides_csv(entry *e)
{
    size_t len = 1;
    for (size_t i = 0; i < e->m.n_provides; i++)
        len += strlen(e->m.provides[i]) + 1;
    e->provides_csv = calloc(1, len);
    if (!e->provides_csv)
        return;
    for (size_t i = 0; i < e->m.n_provides; i++) {
        if (i)
            strcat(e->provides_csv, ",");
        strcat(e->provides_csv, e->m.provides[i]);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static entry *find_file(tsr__registry *reg, const char *file)
{
    for (size_t i = 0; i < reg->n; i++)
        if (!strcmp(reg->e[i]->file, file))
            return reg->e[i];
    return NULL;
}

/* Read every *.yaml of dir (sorted, so the order is reproducible). */
static tsr_status scan_dir(tsr__registry *reg, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return TSR_OK;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    tsr_status st = TSR_OK;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".yaml"))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                st = TSR_ERR_NOMEM;
                break;
            }
            names = nn;
        }
        if (!(names[n] = tsr__strdup(de->d_name))) {
            st = TSR_ERR_NOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char *path = tsr__path_join(dir, names[i]);
        if (st != TSR_OK || !path) {
            st = TSR_ERR_NOMEM;
            free(path);
            continue;
        }
        entry *earlier = find_file(reg, names[i]);
        if (earlier) {
            /* Same file name earlier in the search order: that one wins. */
            char *o = fmt_alloc("%s (overrides %s)", earlier->m.origin, path);
            if (o) {
                free(earlier->m.origin);
                earlier->m.origin = o;
            }
            tsr__log(TSR_LOG_DEBUG, "plugin manifest %s overrides %s", earlier->m.path, path);
            free(path);
            continue;
        }
        entry *e = calloc(1, sizeof *e);
        if (!e) {
            free(path);
            st = TSR_ERR_NOMEM;
            continue;
        }
        e->m.path = path;
        e->file = tsr__strdup(names[i]);
        e->m.origin = tsr__strdup(dir);
        e->abi = tsr__strdup("");
        parse_manifest(e);
        if (!e->invalid)
            resolve_library(e);
        make_provides_csv(e);
        if (!e->file || !e->m.origin || !e->abi || !e->m.status || !e->m.name ||
            !e->m.kind || !e->provides_csv || !reg_push(reg, e)) {
            entry_free(e);
            st = TSR_ERR_NOMEM;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return st == TSR_OK ? TSR_OK : tsr__error(st, "out of memory scanning plugin directory %s", dir);
}

/* Append dir to the search list unless it does not exist or is already in. */
static void add_dir(tsr__registry *reg, char *dir)
{
    if (!dir)
        return;
    char *real = is_dir(dir) ? realpath(dir, NULL) : NULL;
    free(dir);
    if (!real)
        return;
    for (size_t i = 0; i < reg->n_dirs; i++)
        if (!strcmp(reg->dirs[i], real)) {
            free(real);
            return;
        }
    char **nd = realloc(reg->dirs, (reg->n_dirs + 1) * sizeof *nd);
    if (!nd) {
        free(real);
        return;
    }
    reg->dirs = nd;
    reg->dirs[reg->n_dirs++] = real;
}

static void collect_dirs(tsr__registry *reg)
{
    const char *env = getenv("TESSERA_PLUGIN_PATH");
    if (env) {
        const char *p = env;
        while (*p) {
            const char *colon = strchr(p, ':');
            size_t len = colon ? (size_t)(colon - p) : strlen(p);
            if (len)
                add_dir(reg, strndup(p, len));
            p += len;
            if (*p == ':')
                p++;
        }
    }
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    if (xdg && *xdg)
        add_dir(reg, fmt_alloc("%s/tessera/plugins.d", xdg));
    else if (home && *home)
        add_dir(reg, fmt_alloc("%s/.config/tessera/plugins.d", home));
    add_dir(reg, tsr__strdup(TSR_INSTALL_SYSCONFDIR "/tessera/plugins.d"));
    add_dir(reg, relocated(TSR_INSTALL_DATADIR, "tessera/plugins.d"));
    add_dir(reg, tsr__strdup(TSR_MANIFEST_DIR));
}

tsr_status tsr__registry_create(tsr__registry **out)
{
    *out = NULL;
    tsr__registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return tsr__error(TSR_ERR_NOMEM, "out of memory creating the plugin registry");
    pthread_mutex_init(&reg->lock, NULL);
    collect_dirs(reg);
    for (size_t i = 0; i < reg->n_dirs; i++) {
        tsr_status st = scan_dir(reg, reg->dirs[i]);
        if (st != TSR_OK) {
            tsr__registry_destroy(reg);
            return st;
        }
    }
    *out = reg;
    return TSR_OK;
}

void tsr__registry_destroy(tsr__registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++)
        entry_free(reg->e[i]);
    free(reg->e);
    for (size_t i = 0; i < reg->n_dirs; i++)
        free(reg->dirs[i]);
    free(reg->dirs);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

size_t tsr__registry_count(const tsr__registry *reg) { return reg ? reg->n : 0; }

tsr__manifest *tsr__registry_at(tsr__registry *reg, size_t i)
{
    return reg && i < reg->n ? &reg->e[i]->m : NULL;
}

/* ---- loading ------------------------------------------------------------------- */

static tsr_status fail(entry *e, tsr_status st, const char *fmt, ...) TSR_PRINTF(3, 4);
static tsr_status fail(entry *e, tsr_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    set_status(e, s ? s : "plugin failed to load (out of memory describing why)");
    free(s);
    e->m.loaded = -1;
    e->m.desc = NULL;
    e->fail_status = st;
    return tsr__error(st, "%s", e->m.status ? e->m.status : "plugin failed to load");
}

static void set_abi(entry *e, unsigned major, unsigned minor)
{
    char *a = fmt_alloc("%u.%u", major, minor);
    if (a) {
        free(e->abi);
        e->abi = a;
    }
}

static uint32_t vtable_min_size(uint32_t kind)
{
    switch (kind) {
    case TSR_PLUGIN_BACKEND: return (uint32_t)BACKEND_SIZE_1_0;
    case TSR_PLUGIN_MODEL: return (uint32_t)MODEL_SIZE_1_0;
    case TSR_PLUGIN_QUANTIZER: return (uint32_t)QUANTIZER_SIZE_1_0;
    }
    return UINT32_MAX;
}

static tsr_status load_locked(entry *e)
{
    tsr__manifest *m = &e->m;
    if (m->loaded == 1)
        return TSR_OK;
    if (m->loaded == -1)
        return tsr__error(e->fail_status ? e->fail_status : TSR_ERR_PLUGIN, "%s", m->status);
    const char *name = m->name;
    if (!e->lib_path)
        return fail(e, TSR_ERR_NOT_FOUND,
                    "plugin '%s': its library '%s' was not found (looked for %s; manifest %s)",
                    name, m->library, e->lib_tried ? e->lib_tried : m->library, m->path);
    const char *lib = e->lib_path;
    dlerror();
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return fail(e, TSR_ERR_PLUGIN, "plugin '%s': cannot load %s: %s", name, lib,
                    why ? why : "unknown dlopen error");
    }
    /* Never dlclose: plugin code and strings may be referenced until exit. */
    dlerror();
    void *sym = dlsym(h, TSR_PLUGIN_ENTRY_SYMBOL);
    if (!sym)
        return fail(e, TSR_ERR_PLUGIN,
                    "plugin '%s': %s does not export the entry point '%s' (define it with "
                    "TSR_PLUGIN_DEFINE_ENTRY)", name, lib, TSR_PLUGIN_ENTRY_SYMBOL);
    tsr_plugin_entry_fn entry_fn;
    memcpy(&entry_fn, &sym, sizeof entry_fn);
    const tsr_plugin_desc *d = entry_fn(tsr__host());
    if (!d)
        return fail(e, TSR_ERR_PLUGIN, "plugin '%s': %s() in %s returned NULL", name,
                    TSR_PLUGIN_ENTRY_SYMBOL, lib);
    /* struct_size, abi_major and abi_minor sit at the same offsets in every
     * ABI version, so they can be read before anything else. */
    if (d->struct_size < offsetof(tsr_plugin_desc, kind))
        return fail(e, TSR_ERR_ABI,
                    "plugin '%s': the descriptor from %s is too small (struct_size %u, "
                    "at least %zu bytes needed)", name, lib, d->struct_size,
                    (size_t)DESC_SIZE_1_0);
    set_abi(e, d->abi_major, d->abi_minor);
    if (d->abi_major != TSR_ABI_MAJOR)
        return fail(e, TSR_ERR_ABI,
                    "plugin '%s' was built for plugin ABI %u.%u but this tessera provides %d.%d "
                    "(%s); rebuild it against the tessera %d.x SDK", name, d->abi_major,
                    d->abi_minor, TSR_ABI_MAJOR, TSR_ABI_MINOR, lib, TSR_ABI_MAJOR);
    if (d->abi_minor > TSR_ABI_MINOR)
        return fail(e, TSR_ERR_ABI,
                    "plugin '%s' was built for plugin ABI %u.%u, newer than this tessera's "
                    "%d.%d (%s); update tessera or rebuild the plugin against this SDK",
                    name, d->abi_major, d->abi_minor, TSR_ABI_MAJOR, TSR_ABI_MINOR, lib);
    if (d->struct_size < DESC_SIZE_1_0)
        return fail(e, TSR_ERR_ABI,
                    "plugin '%s': the descriptor from %s is too small (struct_size %u, "
                    "at least %zu bytes needed for ABI %d.0)", name, lib, d->struct_size,
                    (size_t)DESC_SIZE_1_0, TSR_ABI_MAJOR);
    if (!d->name || strcmp(d->name, name))
        return fail(e, TSR_ERR_PLUGIN,
                    "plugin library %s calls itself '%s' but its manifest %s names it '%s'",
                    lib, d->name ? d->name : "(null)", m->path, name);
    int mkind = kind_from_name(m->kind);
    if ((int)d->kind != mkind)
        return fail(e, TSR_ERR_PLUGIN,
                    "plugin '%s': %s is a %s plugin but its manifest %s says %s", name, lib,
                    kind_name(d->kind), m->path, m->kind);
    if (!d->vtable)
        return fail(e, TSR_ERR_PLUGIN, "plugin '%s': %s gives no %s vtable", name, lib, m->kind);
    uint32_t vsize = *(const uint32_t *)d->vtable;
    if (vsize < vtable_min_size(d->kind))
        return fail(e, TSR_ERR_ABI,
                    "plugin '%s': its %s vtable in %s is too small (struct_size %u, at least "
                    "%u bytes needed)", name, m->kind, lib, vsize, vtable_min_size(d->kind));
    free(e->plugin_version);
    e->plugin_version = tsr__strdup(d->version ? d->version : "");
    if (d->probe) {
        char why[512] = "";
        if (!d->probe(tsr__host(), why, sizeof why)) {
            why[sizeof why - 1] = 0;
            return fail(e, TSR_ERR_DEVICE, "plugin '%s' cannot run here: %s", name,
                        why[0] ? why : "its probe gave no reason");
        }
    }
    m->desc = d;
    m->loaded = 1;
    set_status(e, "available");
    return TSR_OK;
}

tsr_status tsr__registry_load(tsr__registry *reg, tsr__manifest *m)
{
    if (!reg || !m)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr__registry_load: no registry or manifest");
    pthread_mutex_lock(&reg->lock);
    tsr_status st = load_locked((entry *)m);
    pthread_mutex_unlock(&reg->lock);
    return st;
}

static bool provides(const entry *e, tsr_plugin_kind kind, const char *what)
{
    if (e->invalid || kind_from_name(e->m.kind) != (int)kind)
        return false;
    if (kind == TSR_PLUGIN_BACKEND && !strcmp(e->m.name, what))
        return true;
    for (size_t i = 0; i < e->m.n_provides; i++)
        if (!strcmp(e->m.provides[i], what))
            return true;
    return false;
}

/* Higher priority first; ties keep the search order. */
static int cmp_candidates(const void *a, const void *b)
{
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    if (x->m.priority != y->m.priority)
        return x->m.priority > y->m.priority ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

tsr_status tsr__registry_find(tsr__registry *reg, tsr_plugin_kind kind, const char *what,
                              const tsr_plugin_desc **out)
{
    *out = NULL;
    if (!reg || !what)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr__registry_find: no registry or name");
    const char *kname = kind_name((uint32_t)kind);
    const char *thing = kind == TSR_PLUGIN_MODEL ? "model_type"
                      : kind == TSR_PLUGIN_QUANTIZER ? "quant_method" : "backend or device";
    pthread_mutex_lock(&reg->lock);
    entry **cand = calloc(reg->n ? reg->n : 1, sizeof *cand);
    if (!cand) {
        pthread_mutex_unlock(&reg->lock);
        return tsr__error(TSR_ERR_NOMEM, "out of memory looking for a %s plugin", kname);
    }
    size_t nc = 0;
    for (size_t i = 0; i < reg->n; i++)
        if (provides(reg->e[i], kind, what))
            cand[nc++] = reg->e[i];
    qsort(cand, nc, sizeof *cand, cmp_candidates);
    tsr_status st = TSR_ERR_NOT_FOUND;
    size_t chosen = nc;
    for (size_t i = 0; i < nc; i++) {
        if (load_locked(cand[i]) == TSR_OK) {
            chosen = i;
            st = TSR_OK;
            break;
        }
        tsr__log(TSR_LOG_WARN, "skipping %s", cand[i]->m.status);
    }
    if (st == TSR_OK) {
        for (size_t i = 0; i < nc; i++)
            if (i != chosen)
                tsr__log(TSR_LOG_INFO,
                         "plugins '%s' (priority %d, %s) and '%s' (priority %d, %s) both "
                         "provide %s '%s'; using '%s'", cand[chosen]->m.name,
                         cand[chosen]->m.priority, cand[chosen]->m.path, cand[i]->m.name,
                         cand[i]->m.priority, cand[i]->m.path, thing, what,
                         cand[chosen]->m.name);
        *out = cand[chosen]->m.desc;
        tsr__clear_error();
    } else if (nc == 0) {
        st = tsr__error(TSR_ERR_NOT_FOUND,
                        "no %s plugin provides %s '%s' (searched %zu plugins.d "
                        "director%s; see `tessera plugins`)", kname, thing, what, reg->n_dirs,
                        reg->n_dirs == 1 ? "y" : "ies");
    } else {
        st = tsr__error(TSR_ERR_PLUGIN, "no usable %s plugin provides %s '%s': %s%s", kname,
                        thing, what, cand[0]->m.status,
                        nc > 1 ? " (and the alternatives failed too; see `tessera plugins`)" : "");
    }
    free(cand);
    pthread_mutex_unlock(&reg->lock);
    return st;
}

static tsr__registry *global_reg;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    if (tsr__registry_create(&global_reg) != TSR_OK)
        global_reg = NULL;
}

tsr__registry *tsr__registry_global(void)
{
    pthread_once(&global_once, global_init);
    if (!global_reg)
        tsr__error(TSR_ERR_NOMEM, "the plugin registry could not be created");
    return global_reg;
}

/* ---- public listing --------------------------------------------------------------- */

/* Every scan's registry is kept, since tsr_plugin_info strings live until the
 * process ends. */
static pthread_mutex_t scans_lock = PTHREAD_MUTEX_INITIALIZER;
static tsr__registry **scans;
static size_t n_scans;

TSR_API tsr_status tsr_plugins_scan(int load, size_t *count)
{
    if (count)
        *count = 0;
    tsr__registry *reg;
    tsr_status st = tsr__registry_create(&reg);
    if (st != TSR_OK)
        return st;
    pthread_mutex_lock(&scans_lock);
    tsr__registry **ns = realloc(scans, (n_scans + 1) * sizeof *ns);
    if (!ns) {
        pthread_mutex_unlock(&scans_lock);
        tsr__registry_destroy(reg);
        return tsr__error(TSR_ERR_NOMEM, "out of memory listing plugins");
    }
    scans = ns;
    scans[n_scans++] = reg;
    pthread_mutex_unlock(&scans_lock);
    if (load)
        for (size_t i = 0; i < reg->n; i++)
            tsr__registry_load(reg, &reg->e[i]->m);
    tsr__clear_error();
    if (count)
        *count = reg->n;
    return TSR_OK;
}

TSR_API tsr_status tsr_plugins_get(size_t i, tsr_plugin_info *out)
{
    if (!out || out->struct_size < END_OF(tsr_plugin_info, priority))
        return tsr__error(TSR_ERR_INVALID_ARG,
                          "tsr_plugins_get: initialise the info with TSR_PLUGIN_INFO_INIT");
    pthread_mutex_lock(&scans_lock);
    tsr__registry *reg = n_scans ? scans[n_scans - 1] : NULL;
    pthread_mutex_unlock(&scans_lock);
    if (!reg)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_plugins_get: call tsr_plugins_scan first");
    if (i >= reg->n)
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_plugins_get: index %zu is past the %zu "
                          "manifests found", i, reg->n);
    pthread_mutex_lock(&reg->lock);
    entry *e = reg->e[i];
    out->name = e->m.name;
    out->kind = e->m.kind;
    out->version = e->plugin_version ? e->plugin_version : e->m.version;
    out->abi = e->abi;
    out->provides = e->provides_csv;
    out->manifest = e->m.path;
    out->origin = e->m.origin;
    out->library = e->lib_path ? e->lib_path : (e->m.library ? e->m.library : "");
    out->status = e->m.status;
    out->available = e->m.loaded == 1;
    out->priority = e->m.priority;
    pthread_mutex_unlock(&reg->lock);
    return TSR_OK;
}
