/* harness.h — a private cairnd for C integration tests.
 *
 * harness_start() writes a temp conf (kernel endpoint and events on free
 * loopback ports, auth: none, heartbeat_ms: 200, the caller's services
 * text), forks and execs $CAIRN_BUILD_DIR/bin/cairnd with a temp state dir,
 * and waits (bounded, polling) until sys.ping answers and sys.health shows
 * every plugin up. harness_stop() sends SIGTERM, waits (bounded), then
 * SIGKILL. harness_cleanup() stops and removes the temp dir.
 *
 * CHECK(cond, fmt, ...) counts a pass or a failure (printing where and why);
 * harness_summary() prints "N passed, N failed" and returns the exit status.
 * Every wait is bounded and polls a condition; nothing sleeps as proof.
 */
#ifndef CAIRN_TEST_HARNESS_H
#define CAIRN_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define HARNESS_DEADLINE_MS 30000 /* generous for a loaded 2-core machine */
#define HARNESS_PATH_MAX 4096

extern int harness_passed;
extern int harness_failed;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (cond) {                                                         \
            harness_passed++;                                               \
        } else {                                                            \
            harness_failed++;                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

typedef struct harness_kernel {
    pid_t pid; /* 0 when not running */
    int port, events_port;
    char endpoint[64];          /* tcp://127.0.0.1:PORT */
    char events[64];            /* tcp://127.0.0.1:PORT2 */
    char tmp[HARNESS_PATH_MAX]; /* the private temp dir (conf, state, log) */
    char conf[HARNESS_PATH_MAX];
    char state[HARNESS_PATH_MAX];
    char log[HARNESS_PATH_MAX];
    int exit_status; /* after stop: exit code, or 128 + signal */
} harness_kernel_t;

/* A free loopback TCP port (bind to port 0), or -1. */
int harness_free_port(void);

/* The default services text: the echo plugin, inproc. */
#define HARNESS_ECHO_INPROC "  echo:\n    plugin: echo\n    mode: inproc\n"

/* Start a private cairnd. services: YAML for the services section (lines
 * indented under `services:`); NULL means HARNESS_ECHO_INPROC. Returns 0, or
 * -1 after printing why (with the kernel's log) and cleaning up. */
int harness_start(harness_kernel_t *k, const char *services);

/* The kernel lines harness_start writes after the endpoints. */
#define HARNESS_KERNEL_DEFAULT "  auth: none\n  heartbeat_ms: 200\n"

/* The same with the kernel section's other lines given (indented under
 * `kernel:`, after endpoint and events), e.g. "  auth: auth\n  audit:
 * audit\n"; NULL means HARNESS_KERNEL_DEFAULT. */
int harness_start_kernel(harness_kernel_t *k, const char *kernel, const char *services);

/* SIGTERM, wait up to HARNESS_DEADLINE_MS, then SIGKILL. Returns the exit
 * status (0 on a clean exit; 128 + signal when killed); safe twice. */
int harness_stop(harness_kernel_t *k);

/* Stop (if running) and remove the temp dir. */
void harness_cleanup(harness_kernel_t *k);

/* Print the kernel's log to stderr (for failures). */
void harness_dump_log(const harness_kernel_t *k);

/* Monotonic milliseconds. */
uint64_t harness_now_ms(void);

/* Print "N passed, N failed"; returns 0 when nothing failed, else 1. */
int harness_summary(void);

#endif
