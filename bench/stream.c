/* bench/stream.c - a STREAM-like probe of memory bandwidth: the triad
 * a[i] = b[i] + s * c[i] and a read-only sum over arrays far larger than the
 * caches, with N threads (pthreads, each on its own slice).  Prints the best
 * of R runs in GB/s (1e9 bytes).  The read-only figure is the one that
 * bounds a decode step, which streams the weights once per token.
 *   cc -O3 -march=native -pthread bench/stream.c -o stream && ./stream [threads] [MiB]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct job { double *a, *b, *c; size_t n; int kind; double sum; } job;

static void *work(void *p)
{
    job *j = p;
    if (j->kind == 0) {
        for (size_t i = 0; i < j->n; i++)
            j->a[i] = j->b[i] + 3.0 * j->c[i];
    } else {
        /* an integer reduction vectorises without reassociation flags */
        const unsigned long long *u = (const void *)j->b;
        unsigned long long x = 0;
        for (size_t i = 0; i < j->n; i++)
            x ^= u[i];
        j->sum = (double)(x & 1) + 1.0;
    }
    return NULL;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int nt = argc > 1 ? atoi(argv[1]) : 2;
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 512;
    size_t n = mib * 1024 * 1024 / sizeof(double);
    double *a = malloc(n * 8), *b = malloc(n * 8), *c = malloc(n * 8);
    if (!a || !b || !c || nt < 1 || nt > 256)
        return 1;
    for (size_t i = 0; i < n; i++) {
        a[i] = 0;
        b[i] = 1;
        c[i] = 2;
    }
    pthread_t th[256];
    job jobs[256];
    double best[2] = {0, 0}, chk = 0;
    for (int kind = 0; kind < 2; kind++)
        for (int r = 0; r < 5; r++) {
            double t0 = now();
            for (int t = 0; t < nt; t++) {
                size_t lo = n * (size_t)t / (size_t)nt, hi = n * (size_t)(t + 1) / (size_t)nt;
                jobs[t] = (job){a + lo, b + lo, c + lo, hi - lo, kind, 0};
                pthread_create(&th[t], NULL, work, &jobs[t]);
            }
            for (int t = 0; t < nt; t++) {
                pthread_join(th[t], NULL);
                chk += jobs[t].sum;
            }
            double dt = now() - t0;
            double bytes = kind == 0 ? 3.0 * n * 8 : 1.0 * n * 8;
            if (bytes / dt / 1e9 > best[kind])
                best[kind] = bytes / dt / 1e9;
        }
    printf("threads %d, arrays %zu MiB: triad %.1f GB/s, read %.1f GB/s (check %g)\n", nt, mib,
           best[0], best[1], chk > 0 ? 1.0 : 0.0);
    free(a);
    free(b);
    free(c);
    return 0;
}
