/* tests/unit/test_graph_alloc.c - decode steps allocate nothing in the core.
 *
 * Issue 7 asks for no allocation on the decode hot path.  The core's
 * malloc/calloc/realloc calls are counted through the linker's --wrap
 * (tests/cmake/graph_alloc.cmake): after a prefill and two warm-up steps,
 * further one-token steps of stories260K (graph building, planning,
 * scheduling, the model plugin's graph through the host table) must not
 * allocate.  The KV cache still grows by doubling when a sequence outgrows
 * it, which this test stays clear of (capacity 64 positions).  The cpu
 * backend is a dlopen'd plugin whose scratch is grow-only; its calls are not
 * seen here. */
#include <stdlib.h>
#include "model.h"
#include "tessera/tessera.h"
#include "tsr_test.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static long n_alloc;
static int counting;

void *__wrap_malloc(size_t n)
{
    n_alloc += counting;
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    n_alloc += counting;
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    n_alloc += counting;
    return __real_realloc(p, n);
}

int main(void)
{
    tsr_config *cfg = NULL;
    CHECK(tsr_config_create(&cfg) == TSR_OK);
    CHECK(tsr_config_set(cfg, "threads", "2") == TSR_OK);
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = "fixtures/stories260K-hf";
    lo.config = cfg;
    tsr_model *m = NULL;
    tsr_status st = tsr_model_load(&lo, &m);
    CHECK_MSG(st == TSR_OK, "%s", tsr_last_error());
    if (!st) {
        float *logits = malloc(512 * 8 * sizeof(float));
        int32_t prompt[8] = {1, 403, 407, 261, 378, 300, 269, 352};
        tsr__model_reset(m);
        CHECK(tsr__model_forward(m, prompt, 8, 0, logits) == TSR_OK);
        int32_t t = 300;
        for (int i = 0; i < 2; i++) /* warm-up: arenas and scratch reach size */
            CHECK(tsr__model_forward(m, &t, 1, 0, logits) == TSR_OK);
        long per_step[16];
        for (int i = 0; i < 16; i++) {
            n_alloc = 0;
            counting = 1;
            st = tsr__model_forward(m, &t, 1, 0, logits);
            counting = 0;
            per_step[i] = n_alloc;
            CHECK(st == TSR_OK);
            t = (int32_t)(t * 7 + 11) % 512;
        }
        for (int i = 0; i < 16; i++)
            CHECK_MSG(per_step[i] == 0, "decode step %d allocated %ld times", i, per_step[i]);
        printf("16 decode steps: %ld, %ld, ... allocations\n", per_step[0], per_step[1]);
        free(logits);
        tsr_model_destroy(m);
    }
    tsr_config_destroy(cfg);
    return tsr_test_report("test_graph_alloc");
}
