/* sdk/dio_buf.h — a staging buffer for O_DIRECT writes, backed by huge
 * pages where the kernel gives them.
 *
 * A direct write goes to the device as the buffer's pages are: a block
 * device takes at most max_segments of them per request (254 on a virtio
 * disk), so a 4 MiB write from 4 KiB pages leaves as four or more requests
 * of at most 1016 KiB, and a virtual disk can be much slower for those
 * than for one request of 4 MiB. A buffer on 2 MiB pages makes each
 * 4 MiB write two segments, one request. Measured on the 2-vCPU test VM
 * (docs/PERFORMANCE.md, session 9), alternately: 1 GiB of 4 MiB direct
 * writes and an fsync took 3.5–6.2 s from 4 KiB pages and 2.0–3.5 s from
 * 2 MiB pages (1.4–2.0x faster in each of six pairs), where `cp` and an
 * fsync took 2.5–3.9 s.
 *
 * The buffer is an anonymous mapping aligned to 2 MiB with
 * MADV_HUGEPAGE on it (transparent huge pages in "madvise" mode, the
 * default of most distributions); where there are none it is the same
 * buffer on small pages. Its size is rounded up to 4096 bytes only, so
 * that the part past the last whole 2 MiB stays on small pages: what is
 * resident never exceeds the size asked for by more than a page.
 *
 * Part of the static library cairn_sha256 (with chash.h), linked into
 * libcairn (hidden there) and into the storage plugin. */
#ifndef CAIRN_DIO_BUF_H
#define CAIRN_DIO_BUF_H

#include <stddef.h>

/* A buffer of at least n bytes, 4096-aligned (2 MiB-aligned when n is at
 * least 2 MiB); NULL when no memory. Free it with cairn_dio_buf_free and
 * the same n. */
void *cairn_dio_buf_alloc(size_t n);
void cairn_dio_buf_free(void *p, size_t n);

#endif
