/* plugins/storage/segment.h — metric points packed into segments.
 *
 * A segment holds up to SEGMENT_POINTS points of one (run, key) as
 * little-endian {int64 step, int64 timestamp, float64 value} records, 24
 * bytes each, in the order they were logged. Whole segments are one SQLite
 * row, so ingest writes a row per key per batch rather than a row per
 * point.
 */
#ifndef STORAGE_SEGMENT_H
#define STORAGE_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#define SEGMENT_POINTS 4096
/* Small writes (log_metric, small batches) are merged into the key's tail
 * segment only while it stays this small, so that one point never
 * rewrites a large blob; bigger writes start new segments. */
#define SEGMENT_TAIL_MERGE 256
#define SEGMENT_POINT_BYTES 24

typedef struct metric_point {
    int64_t step;
    int64_t timestamp;
    double value;
} metric_point_t;

/* Encode n points into out (n * 24 bytes). */
void segment_encode(const metric_point_t *pts, size_t n, unsigned char *out);
/* Decode a segment blob; returns the point count, or -1 if len is not a
 * whole number of points. */
long segment_decode(const void *blob, size_t len, metric_point_t *out, size_t cap);
/* Points in a blob of len bytes (-1 if malformed). */
long segment_count(size_t len);

/* Sort points by (step, timestamp), stable for equal keys. */
void segment_sort(metric_point_t *pts, size_t n);

/* True when a is later than b: the "latest" point of a key is the one with
 * the greatest step, then timestamp (MLflow's rule). */
int segment_later(const metric_point_t *a, const metric_point_t *b);

/* Downsample sorted points for a chart: keep the first and last point and,
 * per bucket, the minimum and maximum, in step order; at most max_points.
 * Writes into out (capacity max_points) and returns the count. */
size_t segment_downsample(const metric_point_t *pts, size_t n, size_t max_points,
                          metric_point_t *out);

#endif
