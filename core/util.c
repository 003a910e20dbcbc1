/* core/util.c - memory, files and strings. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "internal.h"

void *tsr__alloc(size_t size)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, size ? size : 1) != 0)
        return NULL;
    return p;
}

void *tsr__calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = tsr__alloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void tsr__free(void *p) { free(p); }

char *tsr__strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

char *tsr__path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    size_t o = la;
    if (la && a[la - 1] != '/')
        p[o++] = '/';
    memcpy(p + o, b, lb + 1);
    return p;
}

bool tsr__file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

tsr_status tsr__read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return tsr__error(errno == ENOENT ? TSR_ERR_NOT_FOUND : TSR_ERR_IO,
                          "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf)
        return tsr__error(TSR_ERR_NOMEM, "%s: out of memory reading the file", path);
    if (err) {
        free(buf);
        return tsr__error(TSR_ERR_IO, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    if (len)
        *len = n;
    return TSR_OK;
}

tsr_status tsr__mmap_open(const char *path, tsr__mmap *out)
{
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tsr__error(errno == ENOENT ? TSR_ERR_NOT_FOUND : TSR_ERR_IO,
                          "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return tsr__error(TSR_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (st.st_size == 0) {
        close(fd);
        return TSR_OK; /* empty file: data NULL, size 0 */
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return tsr__error(TSR_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
    out->data = p;
    out->size = (size_t)st.st_size;
    return TSR_OK;
}

void tsr__mmap_close(tsr__mmap *m)
{
    if (m->data)
        munmap(m->data, m->size);
    m->data = NULL;
    m->size = 0;
}
