/* Metric segments (see segment.h). */
#include "segment.h"

#include <stdlib.h>
#include <string.h>

#include "le.h"

void segment_encode(const metric_point_t *pts, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++, out += SEGMENT_POINT_BYTES) {
        uint64_t bits;
        memcpy(&bits, &pts[i].value, 8);
        le_put64(out, (uint64_t)pts[i].step);
        le_put64(out + 8, (uint64_t)pts[i].timestamp);
        le_put64(out + 16, bits);
    }
}

long segment_count(size_t len)
{
    return len % SEGMENT_POINT_BYTES ? -1 : (long)(len / SEGMENT_POINT_BYTES);
}

long segment_decode(const void *blob, size_t len, metric_point_t *out, size_t cap)
{
    long n = segment_count(len);
    if (n < 0 || (size_t)n > cap) return -1;
    const unsigned char *p = blob;
    for (long i = 0; i < n; i++, p += SEGMENT_POINT_BYTES) {
        uint64_t bits = le_get64(p + 16);
        out[i].step = (int64_t)le_get64(p);
        out[i].timestamp = (int64_t)le_get64(p + 8);
        memcpy(&out[i].value, &bits, 8);
    }
    return n;
}

int segment_later(const metric_point_t *a, const metric_point_t *b)
{
    if (a->step != b->step) return a->step > b->step;
    return a->timestamp > b->timestamp;
}

/* Stable merge sort by (step, timestamp): points logged for the same step
 * keep their logging order. */
static void s_merge(metric_point_t *a, metric_point_t *tmp, size_t lo, size_t mid,
                    size_t hi)
{
    size_t i = lo, j = mid, k = lo;
    while (i < mid && j < hi) tmp[k++] = segment_later(&a[i], &a[j]) ? a[j++] : a[i++];
    while (i < mid) tmp[k++] = a[i++];
    while (j < hi) tmp[k++] = a[j++];
    memcpy(a + lo, tmp + lo, (hi - lo) * sizeof *a);
}

static int s_sorted(const metric_point_t *pts, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (segment_later(&pts[i - 1], &pts[i])) return 0;
    return 1;
}

void segment_sort(metric_point_t *pts, size_t n)
{
    if (n < 2 || s_sorted(pts, n)) return; /* the common case: logged in order */
    metric_point_t *tmp = malloc(n * sizeof *tmp);
    if (!tmp) {
        /* Out of memory: fall back to an in-place insertion sort. */
        for (size_t i = 1; i < n; i++) {
            metric_point_t x = pts[i];
            size_t j = i;
            while (j > 0 && segment_later(&pts[j - 1], &x)) {
                pts[j] = pts[j - 1];
                j--;
            }
            pts[j] = x;
        }
        return;
    }
    for (size_t width = 1; width < n; width *= 2)
        for (size_t lo = 0; lo < n - width; lo += 2 * width) {
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            s_merge(pts, tmp, lo, lo + width, hi);
        }
    free(tmp);
}

size_t segment_downsample(const metric_point_t *pts, size_t n, size_t max_points,
                          metric_point_t *out)
{
    if (n <= max_points) {
        memcpy(out, pts, n * sizeof *pts);
        return n;
    }
    if (max_points < 4) { /* room for first and last only */
        size_t k = 0;
        out[k++] = pts[0];
        if (max_points > 1) out[k++] = pts[n - 1];
        return k;
    }
    /* First and last are kept apart; each bucket of the middle gives its
     * minimum and maximum, in step order. */
    size_t buckets = (max_points - 2) / 2, k = 0;
    size_t inner = n - 2;
    out[k++] = pts[0];
    for (size_t b = 0; b < buckets; b++) {
        size_t lo = 1 + b * inner / buckets, hi = 1 + (b + 1) * inner / buckets;
        if (lo >= hi) continue;
        size_t mn = lo, mx = lo;
        for (size_t i = lo + 1; i < hi; i++) {
            /* NaN never wins a comparison, so it is kept only alone. */
            if (pts[i].value < pts[mn].value) mn = i;
            if (pts[i].value > pts[mx].value) mx = i;
        }
        if (mn == mx) {
            out[k++] = pts[mn];
        } else {
            out[k++] = pts[mn < mx ? mn : mx];
            out[k++] = pts[mn < mx ? mx : mn];
        }
    }
    out[k++] = pts[n - 1];
    return k;
}
