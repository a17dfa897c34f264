/* sdk/wire.h — the worker protocol (kernel <-> plugin runtime), with one
 * owner: every command's header keys are packed and parsed here and
 * nowhere else, by cairnd (kernel/) and by the runtime that serves a
 * plugin in every mode (sdk/runtime.c, tools/plugin_host.c).
 * docs/PROTOCOL.md describes the frames. Internal: not installed.
 *
 * A worker message is: [routing id,] CAIRNW/1, one command byte, then for
 * most commands a header map and a body frame. Parsers take the decoded
 * header; every slice they return points into it. They refuse a missing
 * or mistyped key that the command needs (-1) and ignore unknown keys.
 */
#ifndef CAIRN_WIRE_H
#define CAIRN_WIRE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "cairn/msg.h"
#include "cairn/plugin.h"

#define CAIRN_WORKER_TAG "CAIRNW/1" /* worker frame 1 */

/* Worker protocol commands (one byte frame after the tag). */
typedef enum cairn_wcmd {
    CAIRN_W_HELLO = 1,      /* W->K wire_hello_t */
    CAIRN_W_WELCOME = 2,    /* K->W wire_welcome_t */
    CAIRN_W_READY = 3,      /* W->K {verbs: [wire_verb_t], concurrency} */
    CAIRN_W_REQUEST = 4,    /* K->W wire_request_t + body */
    CAIRN_W_FINAL = 6,      /* W->K wire_outcome_t (by rid) + body */
    CAIRN_W_HEARTBEAT = 7,  /* both ways, no header */
    CAIRN_W_DISCONNECT = 8, /* both ways {err?} */
    CAIRN_W_PUBLISH = 9,    /* W->K {topic} + body: republished on the event bus */
    CAIRN_W_CALL = 10,      /* W->K wire_call_t + body: a nested call */
    CAIRN_W_RESULT = 11,    /* K->W wire_outcome_t (by cid) + body */
    CAIRN_W_FAIL = 12,      /* W->K {err}: init failed; the worker exits */
} cairn_wcmd_t;

#define WIRE_MAX_ROLES 16

/* HELLO {plugin, svc, mode, version, abi, pid, door?}: door is the nonce
 * only the kernel's own inproc thread knows (0 = none). */
typedef struct wire_hello {
    cairn_str_t plugin, svc, mode, version;
    uint32_t abi;
    int64_t pid;
    uint64_t door;
} wire_hello_t;

/* WELCOME {svc, state_dir, hb_ms, liveness, settings, events}: settings is
 * a packed map of strings (the conf's, copied as they are). */
typedef struct wire_welcome {
    cairn_str_t svc, state_dir, events;
    uint32_t hb_ms, liveness; /* 0 when absent: keep the default */
    const void *settings;     /* packing: packed map bytes (NULL = empty map) */
    size_t settings_len;
    const msgpack_object *settings_map; /* parsing: the map, or NULL */
} wire_welcome_t;

/* One row of READY's verb table. */
typedef struct wire_verb {
    cairn_str_t name, perm;
    uint32_t flags, max_body;
} wire_verb_t;

/* REQUEST {rid, svc, verb, ws, sub, roles, ttl, cid?}: the kernel's
 * stamped view of a client request (or of a nested call). */
typedef struct wire_request {
    uint64_t rid;
    cairn_str_t svc, verb, ws, sub, cid;
    cairn_str_t roles[WIRE_MAX_ROLES];
    int nroles;
    uint64_t ttl; /* 0 when absent */
} wire_request_t;

/* FINAL {rid, st, code?, err?, obj?} and RESULT {cid, st, code?, err?}: how
 * a request (FINAL) or a nested call (RESULT) ended. code and err are sent
 * only when st >= 400; obj (FINAL only) when the plugin named the object it
 * acted on (cairn_set_object), for the audit record. */
typedef struct wire_outcome {
    uint64_t id; /* rid or cid */
    int st;      /* 500 when absent or mistyped */
    cairn_str_t code, err, obj;
} wire_outcome_t;

/* CALL {cid, svc, verb, ws?, ttl}: a nested call from a plugin. */
typedef struct wire_call {
    uint64_t cid;
    cairn_str_t svc, verb, ws;
    uint64_t ttl; /* 0 when absent */
} wire_call_t;

void wire_pack_hello(msgpack_packer *pk, const wire_hello_t *m);
int wire_parse_hello(const msgpack_object *h, wire_hello_t *m);

void wire_pack_welcome(msgpack_packer *pk, const wire_welcome_t *m);
int wire_parse_welcome(const msgpack_object *h, wire_welcome_t *m);

/* READY from a verb table (dropped[i]: flags this instance dropped from
 * verbs[i]; may be NULL). */
void wire_pack_ready(msgpack_packer *pk, const cairn_verb_t *verbs,
                     const uint32_t *dropped, uint32_t concurrency);
/* READY's parts: the verb array (-1 when it is not one) and the
 * concurrency (0 when absent); then each row by wire_parse_verb (-1 for a
 * row without a name). */
int wire_parse_ready(const msgpack_object *h, const msgpack_object **verbs,
                     uint32_t *concurrency);
int wire_parse_verb(const msgpack_object *row, wire_verb_t *v);

void wire_pack_request(msgpack_packer *pk, const wire_request_t *m);
/* -1 when rid is missing, or a string is mistyped, or roles are too many. */
int wire_parse_request(const msgpack_object *h, wire_request_t *m);

void wire_pack_final(msgpack_packer *pk, uint64_t rid, int st, const char *code,
                     const char *err, const char *obj);
void wire_pack_result(msgpack_packer *pk, uint64_t cid, int st, const char *code,
                      const char *err);
int wire_parse_final(const msgpack_object *h, wire_outcome_t *m);
int wire_parse_result(const msgpack_object *h, wire_outcome_t *m);

void wire_pack_call(msgpack_packer *pk, const wire_call_t *m);
int wire_parse_call(const msgpack_object *h, wire_call_t *m);

/* PUBLISH {topic}, FAIL {err}, DISCONNECT {err?}: one string each. */
void wire_pack_topic(msgpack_packer *pk, const char *topic);
int wire_parse_topic(const msgpack_object *h, cairn_str_t *topic);
void wire_pack_err(msgpack_packer *pk, const char *err);
int wire_parse_err(const msgpack_object *h, cairn_str_t *err);

#endif
