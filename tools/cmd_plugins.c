/* tools/cmd_plugins.c - `tessera plugins`: what is installed, loadable, and
 * why not.  Uses only the public API (tsr_plugins_scan / tsr_plugins_get). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static void usage(FILE *f)
{
    fputs("usage: tessera plugins [--json] [--no-load]\n"
          "\n"
          "List every plugin manifest (plugins.d/*.yaml) found on the search path, with\n"
          "its name, kind, version, plugin ABI, priority, what it provides, the manifest\n"
          "it came from, the library, and its status: \"available\", or a sentence\n"
          "saying why it cannot be loaded here.\n"
          "\n"
          "Search path, earlier first (a manifest overrides one of the same file name\n"
          "found later):\n"
          "  each directory of $TESSERA_PLUGIN_PATH (colon-separated)\n"
          "  $XDG_CONFIG_HOME/tessera/plugins.d (default ~/.config/tessera/plugins.d)\n"
          "  <sysconfdir>/tessera/plugins.d (e.g. /etc/tessera/plugins.d)\n"
          "  <datadir>/tessera/plugins.d next to libtessera, then the built-in one\n"
          "\n"
          "options:\n"
          "  --json      print a JSON array, one object per manifest, for scripts\n"
          "  --no-load   only read the manifests: do not dlopen or probe the plugins\n"
          "              (status is then \"not loaded\" unless the manifest is invalid)\n"
          "  -h, --help  show this help\n"
          "\n"
          "Two plugins of one kind providing the same thing are listed as conflicts;\n"
          "the higher priority wins (ties: earlier in the search path).\n"
          "Exit status: 0 listed (even if some plugins are unusable), 1 failure,\n"
          "2 usage error.\n", f);
}

/* JSON string with every control character and non-ASCII-safe byte escaped
 * as required by RFC 8259 (UTF-8 passes through). */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* Does comma-separated list a share an item with b?  Returns the first. */
static int shared_item(const char *a, const char *b, char *item, size_t cap)
{
    const char *p = a;
    while (*p) {
        size_t len = strcspn(p, ",");
        const char *q = b;
        while (*q) {
            size_t lq = strcspn(q, ",");
            if (lq == len && len && !strncmp(p, q, len)) {
                snprintf(item, cap, "%.*s", (int)len, p);
                return 1;
            }
            q += lq + (q[lq] == ',');
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

/* Conflict between plugins i and j: same kind (both valid) and a common
 * provided item (or, for backends, the same name). */
static int conflict(const tsr_plugin_info *a, const tsr_plugin_info *b, char *item, size_t cap)
{
    if (!*a->kind || strcmp(a->kind, b->kind))
        return 0;
    if (!strncmp(a->status, "invalid manifest", 16) || !strncmp(b->status, "invalid manifest", 16))
        return 0;
    if (!strcmp(a->kind, "backend") && !strcmp(a->name, b->name)) {
        snprintf(item, cap, "%s", a->name);
        return 1;
    }
    return shared_item(a->provides, b->provides, item, cap);
}

/* i wins over j: higher priority, ties go to the earlier (search order). */
static int wins(const tsr_plugin_info *infos, size_t i, size_t j)
{
    if (infos[i].priority != infos[j].priority)
        return infos[i].priority > infos[j].priority;
    return i < j;
}

static const char *dash(const char *s) { return s && *s ? s : "-"; }

static void print_table(const tsr_plugin_info *inf, size_t n)
{
    int wn = 4, wk = 4, wv = 7, wp = 8;
    for (size_t i = 0; i < n; i++) {
        int l;
        if ((l = (int)strlen(dash(inf[i].name))) > wn) wn = l;
        if ((l = (int)strlen(dash(inf[i].kind))) > wk) wk = l;
        if ((l = (int)strlen(dash(inf[i].version))) > wv) wv = l;
        if ((l = (int)strlen(dash(inf[i].provides))) > wp) wp = l;
    }
    if (wv > 16) wv = 16;
    if (wp > 32) wp = 32;
    printf("%-*s  %-*s  %-*s  %-4s  %4s  %-*s  %s\n", wn, "NAME", wk, "KIND", wv, "VERSION",
           "ABI", "PRIO", wp, "PROVIDES", "STATUS");
    for (size_t i = 0; i < n; i++)
        printf("%-*s  %-*s  %-*s  %-4s  %4d  %-*s  %s%s\n", wn, dash(inf[i].name), wk,
               dash(inf[i].kind), wv, dash(inf[i].version), dash(inf[i].abi), inf[i].priority,
               wp, dash(inf[i].provides), inf[i].available ? "" :
               (!strcmp(inf[i].status, "not loaded") ? "" : "not loadable: "), inf[i].status);
    printf("\nWhere they came from:\n");
    for (size_t i = 0; i < n; i++)
        printf("  %s: manifest %s\n  %*s  library %s\n  %*s  found in %s\n", dash(inf[i].name),
               inf[i].manifest, (int)strlen(dash(inf[i].name)), "", dash(inf[i].library),
               (int)strlen(dash(inf[i].name)), "", inf[i].origin);
    int header = 0;
    char item[256];
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (conflict(&inf[i], &inf[j], item, sizeof item)) {
                if (!header++)
                    printf("\nConflicts (the higher priority wins; ties: earlier in the "
                           "search path):\n");
                size_t w = wins(inf, i, j) ? i : j, l = w == i ? j : i;
                printf("  %s '%s' is provided by '%s' (priority %d) and '%s' (priority %d): "
                       "'%s' is preferred\n", inf[i].kind, item, inf[w].name, inf[w].priority,
                       inf[l].name, inf[l].priority, inf[w].name);
            }
    if (n == 0)
        printf("(no plugin manifests found; see `tessera plugins --help` for the search path)\n");
}

static void print_json(const tsr_plugin_info *inf, size_t n)
{
    printf("[");
    char item[256];
    for (size_t i = 0; i < n; i++) {
        printf("%s\n  {\"name\": ", i ? "," : "");
        json_str(stdout, inf[i].name);
        printf(", \"kind\": ");
        json_str(stdout, inf[i].kind);
        printf(", \"version\": ");
        json_str(stdout, inf[i].version);
        printf(", \"abi\": ");
        json_str(stdout, inf[i].abi);
        printf(", \"priority\": %d, \"provides\": [", inf[i].priority);
        const char *p = inf[i].provides;
        int first = 1;
        while (p && *p) {
            size_t len = strcspn(p, ",");
            char buf[256];
            snprintf(buf, sizeof buf, "%.*s", (int)len, p);
            printf("%s", first ? "" : ", ");
            json_str(stdout, buf);
            first = 0;
            p += len + (p[len] == ',');
        }
        printf("],\n   \"manifest\": ");
        json_str(stdout, inf[i].manifest);
        printf(", \"origin\": ");
        json_str(stdout, inf[i].origin);
        printf(", \"library\": ");
        json_str(stdout, inf[i].library);
        printf(",\n   \"available\": %s, \"status\": ", inf[i].available ? "true" : "false");
        json_str(stdout, inf[i].status);
        printf(", \"conflicts\": [");
        first = 1;
        for (size_t j = 0; j < n; j++) {
            if (j == i || !conflict(&inf[i], &inf[j], item, sizeof item))
                continue;
            printf("%s{\"with\": ", first ? "" : ", ");
            json_str(stdout, inf[j].name);
            printf(", \"what\": ");
            json_str(stdout, item);
            printf(", \"preferred\": %s}", wins(inf, i, j) ? "true" : "false");
            first = 0;
        }
        printf("]}");
    }
    printf("%s]\n", n ? "\n" : "");
}

int tsr_cli_plugins(int argc, char **argv)
{
    int json = 0, load = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--no-load"))
            load = 0;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "tessera plugins: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    size_t n = 0;
    tsr_status st = tsr_plugins_scan(load, &n);
    if (st != TSR_OK)
        return tsr_cli_fail("plugins", st);
    tsr_plugin_info *inf = calloc(n ? n : 1, sizeof *inf);
    if (!inf)
        return tsr_cli_fail("plugins", TSR_ERR_NOMEM);
    for (size_t i = 0; i < n; i++) {
        tsr_plugin_info init = TSR_PLUGIN_INFO_INIT;
        inf[i] = init;
        st = tsr_plugins_get(i, &inf[i]);
        if (st != TSR_OK) {
            free(inf);
            return tsr_cli_fail("plugins", st);
        }
    }
    if (json)
        print_json(inf, n);
    else
        print_table(inf, n);
    free(inf);
    return fflush(stdout) == 0 ? 0 : 1;
}
