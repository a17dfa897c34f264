/* kernel/curve.h — CurveZMQ on the kernel's network endpoints
 * (docs/TRANSPORT.md).
 *
 * An endpoint that is not loopback (with `kernel.curve: always`, every tcp
 * endpoint) is bound as a CURVE server with the kernel's secret key. libzmq
 * then asks a ZAP handler (RFC 27) about every client's public key before
 * the connection carries a message: the handler here answers 200 for a key
 * listed in `kernel.curve_allowed_keys` and 400 for any other, which is
 * logged and audited. Its socket is polled by the broker loop, so that the
 * audit record is written on the broker's own thread (kaudit is not thread
 * safe) and no thread is added.
 *
 * Secret keys are read into memory only as long as the sockets need them
 * (curve_forget_secret) and wiped afterwards; they are never logged.
 */
#ifndef KERNEL_CURVE_H
#define KERNEL_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "cairn/err.h"
#include "conf.h"

#define CURVE_Z85_LEN 40   /* a key as Z85 text, without its NUL */
#define CURVE_KEY_BYTES 32 /* a key in binary */
#define CURVE_ALLOWED_MAX 100000
#define CURVE_REFUSAL_QUIET_MS 60000 /* one audit record per key per minute */

/* ---- the allowed-keys file ---------------------------------------------- */

/* The public keys allowed to connect, in binary. */
typedef struct curve_allowed {
    unsigned char (*keys)[CURVE_KEY_BYTES];
    size_t n;
} curve_allowed_t;

/* Parse an allowed-keys file's text: one Z85 public key (40 characters) per
 * line, optionally followed by white space and a '#' comment; blank lines
 * and lines starting with '#' are skipped. A key given twice is fine. 0
 * with *out filled (free with curve_allowed_clear), or -1 with a 400
 * bad_conf naming source and the line. */
int curve_allowed_parse(const char *text, size_t len, const char *source,
                        curve_allowed_t *out, cairn_err_t *err);
void curve_allowed_clear(curve_allowed_t *a);
bool curve_allowed_has(const curve_allowed_t *a,
                       const unsigned char key[CURVE_KEY_BYTES]);

/* ---- the conf's rule -------------------------------------------------------- */

/* Whether ep is bound with CURVE under c: an address that is not loopback,
 * or any tcp:// one with `curve: always`. ipc:// and inproc:// never. */
bool curve_wanted(const conf_t *c, const char *ep);
/* Whether any of the kernel's endpoints (the frontend at endpoint, which
 * CAIRN_ENDPOINT may have changed, events, worker_endpoint) wants CURVE. */
bool curve_any_wanted(const conf_t *c, const char *endpoint);
/* The start rule: an endpoint that wants CURVE while the conf names no
 * server key or no allowed keys is refused. 0, or -1 with a 400 bad_conf
 * saying which endpoint and what to set. */
int curve_check_conf(const conf_t *c, const char *endpoint, cairn_err_t *err);

/* ---- the server ------------------------------------------------------------------ */

typedef struct curve curve_t;

/* Read the server's secret key and the allowed keys (relative paths are
 * taken from state_dir). NULL with err when a file is missing, unreadable,
 * malformed, or (the secret key) open to group or others. */
curve_t *curve_new(const conf_t *c, const char *state_dir, cairn_err_t *err);
/* Closes the ZAP socket (before the context ends) and wipes the secret. */
void curve_destroy(curve_t **self_p);

/* Bind the ZAP handler on zctx. Must come before any CURVE socket binds:
 * without a handler libzmq lets every key in. */
int curve_zap_open(curve_t *self, void *zctx, cairn_err_t *err);
/* The handler's socket, for the broker's poll. */
void *curve_zap_socket(const curve_t *self);
/* Make sock a CURVE server for the binds that follow (libzmq copies a
 * socket's options into each listener when it binds). */
int curve_server_apply(curve_t *self, void *sock, cairn_err_t *err);
/* Wipe the secret key once every socket has it. */
void curve_forget_secret(curve_t *self);
/* The server's public key (Z85), for the start-up line and clients. */
const char *curve_public_key(const curve_t *self);

/* Answer every ZAP request waiting on the handler's socket, without
 * blocking. A refusal is logged and recorded in audit (principal
 * "curve:<key>", svc "sys", verb "connect", status 401, object
 * "peer/<address>"), at most once per key per CURVE_REFUSAL_QUIET_MS. The allowed
 * keys are read again when their file changed. */
void curve_zap_serve(curve_t *self, kaudit_t *audit);
/* Requests answered and refused so far. */
uint64_t curve_refused(const curve_t *self);

#endif
