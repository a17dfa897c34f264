/* bench/populate.h — runs for the search benchmarks (bench_tracking's case 4,
 * bench_gateway's search), populated through the API as a sweep of many
 * trials would: create_run and, on its reply, one log_batch of
 * BENCH_POP_METRICS metrics (m0.. at step 0, uniform in [0, 1)) and
 * BENCH_POP_PARAMS params (p0.. = v0..v9), with many requests in flight.
 * The runs' values come from the caller's random state, so that a bench
 * gets the same runs every time. */
#ifndef BENCH_POPULATE_H
#define BENCH_POPULATE_H

#include <stdint.h>
#include <sys/types.h>

#include "cairn/cairn.h"

#define BENCH_POP_METRICS 20
#define BENCH_POP_PARAMS 10
#define BENCH_POP_TS0 INT64_C(1700000000000) /* run i starts at TS0 + i */
/* Requests in flight while populating: the storage plugin commits those
 * that arrive together in one transaction (its write group). */
#define BENCH_POP_WINDOW 256

/* xorshift64* over *state: the populate's values. */
uint64_t bench_rnd(uint64_t *state);
double bench_rnd01(uint64_t *state); /* [0, 1) */

/* nruns runs named s0, s1, ... in experiment exp, at most window requests
 * in flight; every reply is required to be 200 (else bench_die). A large
 * populate (100,000 runs or more) reports each tenth on stderr as it goes
 * (runs/s, and srv's CPU and bytes written per run over that tenth; srv:
 * the process that serves tracking, <= 0 for none). Returns seconds. */
double bench_populate(cairn_client_t *c, const char *exp, int nruns, int window,
                      pid_t srv, uint64_t *rng);

#endif
