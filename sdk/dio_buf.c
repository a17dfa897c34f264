/* A staging buffer for O_DIRECT writes on huge pages (dio_buf.h). */
#define _GNU_SOURCE
#include "dio_buf.h"

#include <stdint.h>
#include <sys/mman.h>

#define DIO_PAGE 4096u
#define DIO_HUGE ((size_t)2 << 20)

static size_t s_round(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

void *cairn_dio_buf_alloc(size_t n)
{
    size_t len = s_round(n ? n : 1, DIO_PAGE);
    size_t pad = len >= DIO_HUGE ? DIO_HUGE : 0;
    unsigned char *m = mmap(NULL, len + pad, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    if (!pad) return m;
    /* Keep the 2 MiB-aligned len bytes within, give back what is around. */
    uintptr_t at = s_round((uintptr_t)m, DIO_HUGE);
    unsigned char *p = (unsigned char *)at;
    size_t head = (size_t)(p - m), tail = pad - head;
    if (head) munmap(m, head);
    if (tail) munmap(p + len, tail);
    (void)madvise(p, len, MADV_HUGEPAGE); /* best effort: small pages else */
    return p;
}

void cairn_dio_buf_free(void *p, size_t n)
{
    if (p) munmap(p, s_round(n ? n : 1, DIO_PAGE));
}
