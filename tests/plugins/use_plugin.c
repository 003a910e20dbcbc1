/* tests/plugins/use_plugin.c - load the out-of-tree example backend through
 * the registry (TESSERA_PLUGIN_PATH names its plugins.d) and run its kernels
 * on real nodes.  References: SiLU(x) = x / (1 + e^-x) (torch.nn.SiLU),
 * evaluated here in double precision; Add is exact in float.
 * usage: tessera-use-plugin <expected manifest directory>   (exit 0 = all good) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

static int failures;
#define EXPECT(c, ...) do { if (!(c)) { failures++; fprintf(stderr, "use_plugin: FAIL %s: ", #c); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static void f32_tensor(tsr_tensor *t, int64_t d, int64_t n, float *data, const char *name)
{
    memset(t, 0, sizeof *t);
    t->struct_size = sizeof *t;
    t->dtype = TSR_DTYPE_F32;
    t->ne[0] = d; t->ne[1] = n; t->ne[2] = 1; t->ne[3] = 1;
    t->nb[0] = sizeof(float);
    for (int i = 1; i < TSR_MAX_DIMS; i++)
        t->nb[i] = t->nb[i - 1] * (size_t)t->ne[i - 1];
    t->data = data;
    t->name = name;
    t->device = -1;
}

int main(int argc, char **argv)
{
    tsr__registry *reg = NULL;
    if (tsr__registry_create(&reg) != TSR_OK) {
        fprintf(stderr, "use_plugin: %s\n", tsr_last_error());
        return 1;
    }
    const tsr_plugin_desc *d = NULL, *d2 = NULL;
    tsr_status st = tsr__registry_find(reg, TSR_PLUGIN_BACKEND, "example", &d);
    EXPECT(st == TSR_OK && d, "find example: %s", tsr_last_error());
    if (!d) {
        tsr__registry_destroy(reg);
        return 1;
    }
    EXPECT(!strcmp(d->name, "example") && d->kind == TSR_PLUGIN_BACKEND, "desc %s", d->name);
    EXPECT(d->abi_major == 1, "abi %u", d->abi_major);
    for (size_t i = 0; i < tsr__registry_count(reg); i++) {
        tsr__manifest *m = tsr__registry_at(reg, i);
        if (m->desc == d) {
            EXPECT(!strcmp(m->status, "available"), "status %s", m->status);
            EXPECT(argc < 2 || !strncmp(m->path, argv[1], strlen(argv[1])),
                   "manifest %s is not under %s", m->path, argv[1]);
        }
    }
    EXPECT(tsr__registry_find(reg, TSR_PLUGIN_BACKEND, "example", &d2) == TSR_OK && d2 == d,
           "second find gives the same descriptor");

    const tsr_backend_vtable *vt = d->vtable;
    void *state = NULL;
    tsr_backend_options opt = {sizeof opt, 1, 0};
    EXPECT(vt->create(tsr__host(), &opt, &state) == TSR_OK, "create: %s", tsr_last_error());
    EXPECT(vt->device_count(state) == 1, "device_count");
    tsr_device_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    EXPECT(vt->device_info(state, 0, &info) == TSR_OK && info.host_memory == 1, "device_info");

    enum { D = 5, N = 3 };
    float x[D * N], row[D], y[D * N], z[D * N];
    for (int i = 0; i < D * N; i++)
        x[i] = -3.0f + 0.4f * (float)i;
    for (int i = 0; i < D; i++)
        row[i] = 0.25f * (float)(i + 1);
    tsr_tensor tx, trow, tsilu, tadd, tmm;
    f32_tensor(&tx, D, N, x, "x");
    f32_tensor(&trow, D, 1, row, "bias");
    f32_tensor(&tsilu, D, N, y, "silu");
    tsilu.op = TSR_OP_SILU;
    tsilu.src[0] = &tx;
    f32_tensor(&tadd, D, N, z, "add");
    tadd.op = TSR_OP_ADD;
    tadd.src[0] = &tsilu;
    tadd.src[1] = &trow;
    f32_tensor(&tmm, D, N, z, "mm");
    tmm.op = TSR_OP_MUL_MAT;
    tmm.src[0] = &tx;
    tmm.src[1] = &tx;
    EXPECT(vt->supports(state, &tsilu) == 1, "supports SILU");
    EXPECT(vt->supports(state, &tadd) == 1, "supports ADD with a [D] row");
    EXPECT(vt->supports(state, &tmm) == 0, "does not claim MUL_MAT");
    tsr_tensor *nodes[2] = {&tsilu, &tadd};
    EXPECT(vt->compute(state, nodes, 2) == TSR_OK, "compute: %s", tsr_last_error());
    for (int i = 0; i < D * N; i++) {
        double ref = (double)x[i] / (1.0 + exp(-(double)x[i]));
        EXPECT(fabs(y[i] - ref) <= 1e-6 * (1.0 + fabs(ref)), "silu[%d] = %.9g, want %.9g", i,
               y[i], ref);
        float want = y[i] + row[i % D];
        EXPECT(z[i] == want, "add[%d] = %.9g, want %.9g", i, z[i], want);
    }
    /* An unsupported node is an error through the host's set_error. */
    tsr_tensor *bad[1] = {&tmm};
    EXPECT(vt->compute(state, bad, 1) == TSR_ERR_UNSUPPORTED, "compute MUL_MAT refused");
    EXPECT(strstr(tsr_last_error(), "example backend") != NULL, "error text: %s", tsr_last_error());
    vt->destroy(state);
    tsr__registry_destroy(reg);
    printf("use_plugin: example backend loaded through the registry; SiLU and Add match the "
           "reference (%d failures)\n", failures);
    return failures ? 1 : 0;
}
