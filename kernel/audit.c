/* The kernel's side of the audit trail (see audit.h). */
#define _GNU_SOURCE
#include "audit.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/client.h"

#define RETRY_MS 500

struct kaudit {
    char service[65];
    bool on, refuse;
    msgpack_sbuffer pending; /* packed record maps, waiting */
    uint32_t npending;
    uint64_t oldest_ms;       /* when the first waiting record came */
    msgpack_sbuffer inflight; /* the group sent (an append body), until answered */
    uint32_t ninflight;
    bool awaiting;     /* inflight is out, its answer not yet in */
    bool failing;      /* the last group was not taken */
    uint64_t retry_ms; /* a failed group goes again from then */
    char why[256];     /* the last failure */
    uint64_t written, failures;
};

kaudit_t *kaudit_new(const char *service, bool refuse_on_failure)
{
    kaudit_t *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->on = service && *service && strcmp(service, "none") != 0;
    if (a->on) snprintf(a->service, sizeof a->service, "%s", service);
    a->refuse = refuse_on_failure;
    msgpack_sbuffer_init(&a->pending);
    msgpack_sbuffer_init(&a->inflight);
    return a;
}

void kaudit_destroy(kaudit_t **self_p)
{
    if (!self_p || !*self_p) return;
    kaudit_t *a = *self_p;
    if (a->npending + a->ninflight)
        fprintf(stderr, "cairnd: audit: %u records not written at stop\n",
                a->npending + a->ninflight);
    msgpack_sbuffer_destroy(&a->pending);
    msgpack_sbuffer_destroy(&a->inflight);
    free(a);
    *self_p = NULL;
}

bool kaudit_on(const kaudit_t *self)
{
    return self && self->on;
}

const char *kaudit_service(const kaudit_t *self)
{
    return self->service;
}

void kaudit_digest(const void *body, size_t len, char hex[AUDIT_DIGEST_HEX])
{
    unsigned char h[16];
    crypto_generichash(h, sizeof h, body, len, NULL, 0);
    sodium_bin2hex(hex, AUDIT_DIGEST_HEX, h, sizeof h);
}

int kaudit_add(kaudit_t *self, const char *principal, const char *ws, const char *svc,
               const char *verb, const char *object, const char *cid, int status,
               const char *digest)
{
    if (!kaudit_on(self)) return 0;
    if (self->pending.size >= AUDIT_PENDING_MAX) return -1;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &self->pending, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 9);
    cairn_pack_cstr(&pk, "time");
    msgpack_pack_uint64(&pk, cairn_wall_ms());
    cairn_pack_kv_text(&pk, "principal", principal ? principal : "");
    cairn_pack_kv_text(&pk, "ws", ws && *ws ? ws : "default");
    cairn_pack_kv_text(&pk, "svc", svc);
    cairn_pack_kv_text(&pk, "verb", verb);
    cairn_pack_kv_text(&pk, "object", object ? object : "");
    cairn_pack_cstr(&pk, "status");
    msgpack_pack_int(&pk, status);
    cairn_pack_kv_text(&pk, "cid", cid ? cid : "");
    cairn_pack_kv_str(&pk, "digest", digest ? digest : "");
    if (self->npending++ == 0) self->oldest_ms = cairn_now_ms();
    return 0;
}

long kaudit_wait_ms(const kaudit_t *self, uint64_t now_ms)
{
    if (!kaudit_on(self) || self->awaiting) return -1;
    if (self->ninflight) /* a failed group waits for its retry */
        return now_ms >= self->retry_ms ? 0 : (long)(self->retry_ms - now_ms);
    if (!self->npending) return -1;
    if (self->npending >= AUDIT_GROUP_MAX) return 0;
    uint64_t due = self->oldest_ms + AUDIT_FLUSH_MS;
    return now_ms >= due ? 0 : (long)(due - now_ms);
}

bool kaudit_take(kaudit_t *self, uint64_t now_ms, msgpack_sbuffer *out)
{
    if (kaudit_wait_ms(self, now_ms) != 0) return false;
    if (!self->ninflight) { /* a new group: what waits, wrapped as a body */
        msgpack_sbuffer_clear(&self->inflight);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &self->inflight, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        cairn_pack_cstr(&pk, "records");
        msgpack_pack_array(&pk, self->npending);
        msgpack_sbuffer_write(&self->inflight, self->pending.data, self->pending.size);
        self->ninflight = self->npending;
        self->npending = 0;
        msgpack_sbuffer_clear(&self->pending);
    }
    msgpack_sbuffer_clear(out);
    msgpack_sbuffer_write(out, self->inflight.data, self->inflight.size);
    self->awaiting = true;
    return true;
}

void kaudit_done(kaudit_t *self, bool ok, const char *why, uint64_t now_ms)
{
    if (!kaudit_on(self) || !self->awaiting) return;
    self->awaiting = false;
    if (ok) {
        self->written += self->ninflight;
        self->ninflight = 0;
        msgpack_sbuffer_clear(&self->inflight);
        if (self->failing)
            fprintf(stderr, "cairnd: audit: the trail takes records again\n");
        self->failing = false;
        return;
    }
    self->failures++;
    self->retry_ms = now_ms + RETRY_MS;
    if (!self->failing)
        fprintf(stderr, "cairnd: audit: %u records not taken (sent again): %s\n",
                self->ninflight, why ? why : "");
    self->failing = true;
    snprintf(self->why, sizeof self->why, "%s", why ? why : "");
}

bool kaudit_refusing(const kaudit_t *self, char *why, size_t cap)
{
    if (!kaudit_on(self) || !self->refuse) return false;
    if (self->pending.size >= AUDIT_PENDING_MAX) {
        snprintf(why, cap,
                 "the audit trail cannot record this request: %u records "
                 "already wait for the audit service",
                 self->npending);
        return true;
    }
    if (!self->failing) return false;
    snprintf(why, cap,
             "the audit trail cannot record this request now (kernel.audit_policy: "
             "refuse): %s",
             self->why);
    return true;
}

uint32_t kaudit_unwritten(const kaudit_t *self)
{
    return kaudit_on(self) ? self->npending + self->ninflight : 0;
}

uint64_t kaudit_written(const kaudit_t *self)
{
    return self->written;
}

uint64_t kaudit_failures(const kaudit_t *self)
{
    return self->failures;
}
