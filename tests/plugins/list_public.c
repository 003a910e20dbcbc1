/* tests/plugins/list_public.c - an application built against the INSTALLED
 * libtessera (pkg-config) that checks, through the public API only, that the
 * plugin named argv[1] is listed and available.  Prints its row. */
#include <stdio.h>
#include <string.h>
#include <tessera/tessera.h>

int main(int argc, char **argv)
{
    const char *want = argc > 1 ? argv[1] : "example";
    size_t n = 0;
    if (tsr_plugins_scan(1, &n) != TSR_OK) {
        fprintf(stderr, "list_public: %s\n", tsr_last_error());
        return 1;
    }
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        tsr_plugin_info info = TSR_PLUGIN_INFO_INIT;
        if (tsr_plugins_get(i, &info) != TSR_OK)
            return 1;
        if (strcmp(info.name, want))
            continue;
        found++;
        printf("%s %s %s abi=%s available=%d library=%s\n", info.name, info.kind, info.version,
               info.abi, (int)info.available, info.library);
        if (!info.available)
            return 1;
    }
    printf("libtessera %s: %zu manifests\n", tsr_version_string(), n);
    return found == 1 ? 0 : 1;
}
