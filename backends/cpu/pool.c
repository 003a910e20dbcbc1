/* backends/cpu/pool.c - a fixed thread pool.  Each run publishes the task
 * and bumps an atomic generation counter; workers spin on it for a short
 * while (POOL_SPIN: a decode step runs ~180 short tasks back to back) and
 * only then sleep on the condition variable.  The caller
 * runs index 0 and waits, spinning then sleeping, until every worker has
 * finished. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* spin iterations before sleeping (a pause is ~10-40 ns, so ~30-120 us).
 * A decode step runs ~180 tasks back to back (7 matmuls and attention per
 * layer); waking a sleeping thread costs tens of microseconds on a VM, so
 * spinning a little first raised TinyLlama tg64 (2 threads, quiet, with
 * X8_PF) Q4_0 46.4 -> 52.7, Q4_K 43.0 -> 46.8, Q8_0 27.7 -> 29.8 tokens/s.
 * The spin is bounded so that a busy machine (another process on the same
 * vCPUs) loses at most this much per hand-off.  TESSERA_CPU_SPIN=N
 * overrides it (0: sleep at once). */
#define POOL_SPIN 3000

struct cpu_pool {
    int n;                    /* threads including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_ulong gen;         /* incremented per run */
    atomic_int pending;       /* workers still running this generation */
    atomic_int quit;
    int sleepers;             /* workers waiting on `wake` (under mu) */
    int spin;                 /* spin iterations before sleeping */
    cpu_task_fn fn;
    void *ctx;
};

typedef struct worker_arg { cpu_pool *p; int ith; } worker_arg;

static void *worker(void *arg)
{
    worker_arg *wa = arg;
    cpu_pool *p = wa->p;
    int ith = wa->ith;
    free(wa);
    unsigned long seen = 0;
    for (;;) {
        for (int s = 0; s < p->spin; s++) {
            if (atomic_load_explicit(&p->gen, memory_order_acquire) != seen ||
                atomic_load_explicit(&p->quit, memory_order_relaxed))
                break;
            CPU_RELAX();
        }
        if (atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
            !atomic_load(&p->quit)) {
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->wake, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit))
            break;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        p->fn(p->ctx, ith, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

cpu_pool *cpu_pool_create(int n_threads)
{
    cpu_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n = n_threads < 1 ? 1 : n_threads;
    const char *sp = getenv("TESSERA_CPU_SPIN");
    p->spin = sp && *sp ? atoi(sp) : POOL_SPIN;
    if (p->spin < 0)
        p->spin = 0;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->quit, 0);
    p->threads = calloc((size_t)p->n, sizeof *p->threads);
    if (!p->threads) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->wake);
        pthread_cond_destroy(&p->done);
        free(p);
        return NULL;
    }
    for (int i = 1; i < p->n; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) {
            wa->p = p;
            wa->ith = i;
        }
        if (!wa || pthread_create(&p->threads[i], NULL, worker, wa) != 0) {
            free(wa);
            p->n = i; /* run with the threads we have */
            break;
        }
    }
    return p;
}

int cpu_pool_size(const cpu_pool *p) { return p->n; }

void cpu_pool_run(cpu_pool *p, cpu_task_fn fn, void *ctx)
{
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_mutex_lock(&p->mu);
    if (p->sleepers)
        pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    for (int s = 0; s < p->spin; s++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
            return;
        CPU_RELAX();
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void cpu_pool_destroy(cpu_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}
