/* test_c_vault — the C SDK's key vault and audit trail (cairn/secrets.h,
 * cairn/audit.h) against a private cairnd with auth on (the auth, audit and
 * secrets plugins, inproc; the kernel records to the audit service):
 * set/get (text and bytes, versions), list with paging, delete, the master
 * key rotated, the local checks (NULLs, a value over 64 KiB), the server's
 * refusals kept (404 for an unknown name, 403 for a Reader's get_secret);
 * audit query with each filter (object included) and paging, the Reader's
 * refusal found in the trail, verify. A fake kernel answers what the
 * contract does not promise: 502 bad_reply. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <zmq.h>

#include "cairn/cairn.h"
#include "harness.h"

#define KERNEL "  auth: auth\n  audit: audit\n  heartbeat_ms: 200\n"
#define SERVICES                                                   \
    "  auth:\n    plugin: auth\n    mode: inproc\n"                \
    "    settings:\n      pwhash_ops: 1\n      pwhash_mem: 8MiB\n" \
    "  audit:\n    plugin: audit\n    mode: inproc\n"              \
    "  secrets:\n    plugin: secrets\n    mode: inproc\n"
#define PASSWORD "correct horse battery"

static cairn_client_t *s_owner(const harness_kernel_t *k)
{
    char path[HARNESS_PATH_MAX + 32], tok[256] = "";
    snprintf(path, sizeof path, "%s/owner.token", k->state);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(tok, sizeof tok, f)) {
        if (f) fclose(f);
        CHECK(false, "cannot read %s", path);
        return NULL;
    }
    fclose(f);
    tok[strcspn(tok, "\r\n")] = '\0';
    cairn_err_t err = {0};
    cairn_client_t *c = cairn_client_new(k->endpoint, tok, &err);
    explicit_bzero(tok, sizeof tok);
    CHECK(c != NULL, "client: %s", err.msg);
    return c;
}

static void s_text_round_trip(cairn_client_t *c)
{
    cairn_err_t err = {0};
    int64_t version = 0;
    CHECK(cairn_secrets_set(c, "db/password", "hunter2", 7, &version, &err) == 0,
          "set: %s", err.msg);
    CHECK(version == 1, "a new name is version 1, not %lld", (long long)version);
    CHECK(cairn_secrets_set(c, "db/password", "hunter3", 7, &version, &err) == 0,
          "set again: %s", err.msg);
    CHECK(version == 2, "set again: version %lld", (long long)version);
    cairn_secret_t *s = NULL;
    CHECK(cairn_secrets_get(c, "db/password", &s, &err) == 0, "get: %s", err.msg);
    size_t len = 0;
    const char *v = cairn_secret_value(s, &len);
    CHECK(v && len == 7 && strcmp(v, "hunter3") == 0, "value '%s' (%zu)", v ? v : "",
          len);
    CHECK(cairn_secret_is_text(s) && cairn_secret_version(s) == 2, "text, version 2");
    cairn_secret_free(&s);
    CHECK(s == NULL, "freed");
    cairn_secret_free(&s); /* safe twice */
    /* An empty value is a value. */
    CHECK(cairn_secrets_set(c, "empty", "", 0, NULL, &err) == 0, "set empty: %s",
          err.msg);
    CHECK(cairn_secrets_set(c, "empty", NULL, 0, &version, &err) == 0 && version == 2,
          "set empty from NULL: %s", err.msg);
    CHECK(cairn_secrets_get(c, "empty", &s, &err) == 0, "get empty: %s", err.msg);
    CHECK(cairn_secret_value(s, &len) && len == 0, "empty: %zu bytes", len);
    cairn_secret_free(&s);
}

static void s_bytes_round_trip(cairn_client_t *c)
{
    cairn_err_t err = {0};
    unsigned char raw[256];
    for (int i = 0; i < 256; i++) raw[i] = (unsigned char)i;
    CHECK(cairn_secrets_set(c, "blob", raw, sizeof raw, NULL, &err) == 0,
          "set bytes: %s", err.msg);
    cairn_secret_t *s = NULL;
    CHECK(cairn_secrets_get(c, "blob", &s, &err) == 0, "get bytes: %s", err.msg);
    size_t len = 0;
    const char *v = cairn_secret_value(s, &len);
    CHECK(len == sizeof raw && v && memcmp(v, raw, len) == 0 && v[len] == '\0',
          "bytes back: %zu", len);
    CHECK(!cairn_secret_is_text(s), "bytes that are not UTF-8 come back as bin");
    cairn_secret_free(&s);
    /* At the limit, and one byte past it (refused here: nothing sent). */
    char *big = malloc(CAIRN_SECRET_VALUE_MAX + 1);
    memset(big, 'x', CAIRN_SECRET_VALUE_MAX + 1);
    CHECK(cairn_secrets_set(c, "big", big, CAIRN_SECRET_VALUE_MAX, NULL, &err) == 0,
          "64 KiB: %s", err.msg);
    CHECK(cairn_secrets_set(c, "big", big, CAIRN_SECRET_VALUE_MAX + 1, NULL, &err) ==
                  -1 &&
              err.st == 413 && strcmp(err.code, CAIRN_E_TOO_LARGE) == 0,
          "past 64 KiB: %d %s", err.st, err.code);
    CHECK(cairn_secrets_get(c, "big", &s, &err) == 0 && cairn_secret_version(s) == 1,
          "the refused value changed nothing: %s", err.msg);
    cairn_secret_free(&s);
    free(big);
}

static void s_errors(cairn_client_t *c)
{
    cairn_err_t err = {0};
    cairn_secret_t *s = (cairn_secret_t *)&err; /* set to NULL on every failure */
    CHECK(cairn_secrets_get(c, "no/such", &s, &err) == -1 && err.st == 404 &&
              strcmp(err.code, CAIRN_E_NOT_FOUND) == 0 && s == NULL,
          "get unknown: %d %s", err.st, err.code);
    CHECK(cairn_secrets_delete(c, "no/such", &err) == -1 && err.st == 404,
          "delete unknown: %d", err.st);
    CHECK(cairn_secrets_set(c, "a b", "v", 1, NULL, &err) == -1 && err.st == 400,
          "a bad name (the server's rule): %d", err.st);
    CHECK(cairn_secrets_set(c, NULL, "v", 1, NULL, &err) == -1 && err.st == 400,
          "NULL name: %d", err.st);
    CHECK(cairn_secrets_set(c, "x", NULL, 3, NULL, &err) == -1 && err.st == 400,
          "NULL value: %d", err.st);
    CHECK(cairn_secrets_get(c, "x", NULL, &err) == -1 && err.st == 400, "NULL out");
    CHECK(cairn_secrets_list(c, 0, NULL, NULL, &err) == -1 && err.st == 400,
          "NULL list");
    cairn_secret_list_t *l = NULL;
    CHECK(cairn_secrets_list(c, 5000, NULL, &l, &err) == -1 && err.st == 400 && !l,
          "max_results past 1000: %d", err.st);
    CHECK(cairn_secret_value(NULL, NULL) == NULL && cairn_secret_list_count(NULL) == 0,
          "NULL-safe accessors");
}

static void s_list_pages(cairn_client_t *c)
{
    cairn_err_t err = {0};
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "page/k%d", i);
        CHECK(cairn_secrets_set(c, name, "v", 1, NULL, &err) == 0, "set %s", name);
    }
    /* Every name, two at a time: big, blob, db/password, empty, page/k0..4. */
    const char *want[] = {"big",     "blob",    "db/password", "empty",  "page/k0",
                          "page/k1", "page/k2", "page/k3",     "page/k4"};
    size_t got = 0, pages = 0;
    char *token = NULL;
    do {
        cairn_secret_list_t *l = NULL;
        if (cairn_secrets_list(c, 2, token, &l, &err) != 0) {
            CHECK(false, "list: %s", err.msg);
            break;
        }
        pages++;
        for (size_t i = 0; i < cairn_secret_list_count(l); i++, got++) {
            const cairn_secret_info_t *e = cairn_secret_list_at(l, i);
            CHECK(got < 9 && strcmp(e->name, want[got]) == 0, "row %zu: %s", got,
                  e->name);
            CHECK(e->version >= 1 && e->created > 0 && e->updated >= e->created,
                  "row %zu's metadata", got);
        }
        CHECK(cairn_secret_list_at(l, cairn_secret_list_count(l)) == NULL,
              "past the end");
        free(token);
        const char *next = cairn_secret_list_next_page(l);
        token = next ? strdup(next) : NULL;
        cairn_secret_list_destroy(&l);
        cairn_secret_list_destroy(&l);
    } while (token && pages < 20);
    free(token);
    CHECK(got == 9 && pages == 5, "%zu names in %zu pages", got, pages);
    CHECK(cairn_secrets_delete(c, "page/k4", &err) == 0, "delete: %s", err.msg);
    cairn_secret_list_t *l = NULL;
    CHECK(cairn_secrets_list(c, 0, NULL, &l, &err) == 0 &&
              cairn_secret_list_count(l) == 8 && !cairn_secret_list_next_page(l),
          "one page of 8 after the delete: %zu", cairn_secret_list_count(l));
    cairn_secret_list_destroy(&l);
}

static void s_rotate(cairn_client_t *c)
{
    cairn_err_t err = {0};
    uint32_t kid = 0;
    int64_t n = -1;
    CHECK(cairn_secrets_rotate_master_key(c, &kid, &n, &err) == 0, "rotate: %s",
          err.msg);
    CHECK(kid == 2 && n == 8, "key %u, %lld re-sealed", kid, (long long)n);
    cairn_secret_t *s = NULL;
    CHECK(cairn_secrets_get(c, "db/password", &s, &err) == 0 &&
              strcmp(cairn_secret_value(s, NULL), "hunter3") == 0,
          "read back under the new key: %s", err.msg);
    cairn_secret_free(&s);
}

/* A Reader: 403 on get_secret and list_secrets (secrets.* is in its
 * not_actions); audit.read it has. */
static cairn_client_t *s_reader(cairn_client_t *owner, const harness_kernel_t *k)
{
    cairn_err_t err = {0};
    CHECK(cairn_auth_create_user(owner, "rita", PASSWORD, &err) == 0, "create_user: %s",
          err.msg);
    CHECK(cairn_auth_assign_role(owner, "rita", "Reader", NULL, &err) == 0,
          "assign_role: %s", err.msg);
    cairn_client_t *anon = cairn_client_new(k->endpoint, "", &err);
    char *tok = NULL;
    CHECK(anon && cairn_auth_login(anon, "rita", PASSWORD, &tok, &err) == 0,
          "login: %s", err.msg);
    cairn_client_destroy(&anon);
    if (!tok) return NULL;
    cairn_client_t *rita = cairn_client_new(k->endpoint, tok, &err);
    explicit_bzero(tok, strlen(tok));
    free(tok);
    cairn_secret_t *s = NULL;
    CHECK(cairn_secrets_get(rita, "db/password", &s, &err) == -1 && err.st == 403 &&
              strcmp(err.code, CAIRN_E_FORBIDDEN) == 0 && !s,
          "a Reader's get_secret: %d %s", err.st, err.code);
    cairn_secret_list_t *l = NULL;
    CHECK(cairn_secrets_list(rita, 0, NULL, &l, &err) == -1 && err.st == 403,
          "a Reader's list_secrets: %d", err.st);
    CHECK(cairn_secrets_set(rita, "x", "v", 1, NULL, &err) == -1 && err.st == 403,
          "a Reader's set_secret: %d", err.st);
    return rita;
}

/* Query until at least n records match f (the kernel sends them grouped). */
static cairn_audit_records_t *s_wait_records(cairn_client_t *c,
                                             const cairn_audit_filter_t *f, size_t n)
{
    uint64_t end = harness_now_ms() + HARNESS_DEADLINE_MS;
    cairn_err_t err = {0};
    for (;;) {
        cairn_audit_records_t *l = NULL;
        if (cairn_audit_query(c, f, &l, &err) != 0) {
            CHECK(false, "query: %d %s", err.st, err.msg);
            return NULL;
        }
        if (cairn_audit_records_count(l) >= n || harness_now_ms() > end) return l;
        cairn_audit_records_destroy(&l);
        nanosleep(&(struct timespec){0, 20 * 1000000L}, NULL);
    }
}

static void s_audit(cairn_client_t *owner, cairn_client_t *rita)
{
    cairn_err_t err = {0};
    /* The owner's set_secret: db/password twice, empty twice, blob, big
     * (once: the value past the limit was refused here, never sent), "a b"
     * (400), page/k0..4: 12. */
    cairn_audit_filter_t f = {
        .principal = "owner", .svc = "secrets", .verb = "set_secret"};
    cairn_audit_records_t *l = s_wait_records(owner, &f, 12);
    CHECK(cairn_audit_records_count(l) == 12, "%zu set_secret records",
          cairn_audit_records_count(l));
    int64_t prev = 0;
    for (size_t i = 0; i < cairn_audit_records_count(l); i++) {
        const cairn_audit_record_t *r = cairn_audit_records_at(l, i);
        CHECK(strcmp(r->svc, "secrets") == 0 && strcmp(r->verb, "set_secret") == 0 &&
                  strcmp(r->principal, "owner") == 0 && strcmp(r->ws, "default") == 0,
              "record %zu: %s %s.%s in %s", i, r->principal, r->svc, r->verb, r->ws);
        CHECK(r->seq > prev && r->time > 0 &&
                  (r->status == 200 || r->status == 201 || r->status == 400),
              "record %zu: seq %lld status %d", i, (long long)r->seq, r->status);
        prev = r->seq;
    }
    CHECK(cairn_audit_records_at(l, 0)->status == 201, "the first set made it: 201");
    CHECK(strcmp(cairn_audit_records_at(l, 0)->object, "secret/db/password") == 0,
          "the record names its object: '%s'", cairn_audit_records_at(l, 0)->object);
    cairn_audit_records_destroy(&l);
    /* Every record of one object. */
    f = (cairn_audit_filter_t){.object = "secret/db/password"};
    l = s_wait_records(owner, &f, 2);
    CHECK(cairn_audit_records_count(l) == 2, "%zu records of secret/db/password",
          cairn_audit_records_count(l));
    cairn_audit_records_destroy(&l);
    /* The Reader's refusals are in the trail too (403 at the edge). */
    f = (cairn_audit_filter_t){.principal = "rita", .verb = "get_secret"};
    l = s_wait_records(rita, &f, 1);
    CHECK(cairn_audit_records_count(l) == 1 &&
              cairn_audit_records_at(l, 0)->status == 403,
          "rita's refused get_secret recorded: %zu", cairn_audit_records_count(l));
    cairn_audit_records_destroy(&l);
    /* Paging, one at a time; since/until narrow. */
    f = (cairn_audit_filter_t){.svc = "secrets", .max_results = 1};
    size_t pages = 0;
    char *token = NULL;
    int64_t last = 0, first_time = 0;
    do {
        f.page_token = token;
        CHECK(cairn_audit_query(owner, &f, &l, &err) == 0, "page: %s", err.msg);
        if (!l) break;
        CHECK(cairn_audit_records_count(l) == 1, "a page of one");
        const cairn_audit_record_t *r = cairn_audit_records_at(l, 0);
        CHECK(r && r->seq > last, "oldest first");
        if (r) last = r->seq;
        if (r && !first_time) first_time = r->time;
        free(token);
        const char *next = cairn_audit_records_next_page(l);
        token = next ? strdup(next) : NULL;
        cairn_audit_records_destroy(&l);
        pages++;
    } while (token && pages < 100);
    free(token);
    CHECK(pages >= 14, "%zu pages of secrets records", pages);
    f = (cairn_audit_filter_t){
        .since = first_time, .until = first_time + 1, .svc = "secrets"};
    CHECK(cairn_audit_query(owner, &f, &l, &err) == 0 &&
              cairn_audit_records_count(l) >= 1,
          "since/until: %s", err.msg);
    for (size_t i = 0; i < cairn_audit_records_count(l); i++)
        CHECK(cairn_audit_records_at(l, i)->time == first_time,
              "within [since, until)");
    cairn_audit_records_destroy(&l);
    f = (cairn_audit_filter_t){.principal = "nobody"};
    CHECK(cairn_audit_query(owner, &f, &l, &err) == 0 &&
              cairn_audit_records_count(l) == 0 && !cairn_audit_records_next_page(l),
          "no match: an empty page");
    cairn_audit_records_destroy(&l);
    f = (cairn_audit_filter_t){.page_token = "not-a-token"};
    CHECK(cairn_audit_query(owner, &f, &l, &err) == -1 && err.st == 400 && !l,
          "a bad page token: %d", err.st);
    CHECK(cairn_audit_query(owner, NULL, &l, &err) == 0 &&
              cairn_audit_records_count(l) >= 1,
          "no filter: %s", err.msg);
    cairn_audit_records_destroy(&l);
    cairn_audit_verdict_t v = {.first_bad_seq = 7};
    CHECK(cairn_audit_verify(rita, &v, &err) == 0, "verify (audit.read): %s", err.msg);
    CHECK(v.ok && v.records >= 14 && v.first_bad_seq == 0, "verdict: %d %lld %lld",
          v.ok, (long long)v.records, (long long)v.first_bad_seq);
    CHECK(cairn_audit_verify(owner, NULL, &err) == -1 && err.st == 400, "NULL verdict");
}

/* A fake kernel: a ROUTER that answers every request 200 with a body that
 * holds none of the keys the contract promises. */
typedef struct fake {
    void *zctx, *sock;
    char endpoint[64];
    volatile bool stop;
    pthread_t thread;
} fake_t;

static void *s_fake_serve(void *arg)
{
    fake_t *fk = arg;
    static const unsigned char body[] = {0x81, 0xa1, 'x', 0x01}; /* {"x": 1} */
    while (!fk->stop) {
        zmq_pollitem_t it = {fk->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) <= 0) continue;
        zmq_msg_t part[8];
        int n = 0, more = 1;
        while (more && n < 8) {
            zmq_msg_init(&part[n]);
            if (zmq_msg_recv(&part[n], fk->sock, 0) < 0) break;
            more = zmq_msg_more(&part[n++]);
        }
        if (n == 5) { /* identity, delimiter, CAIRN/1, header, body */
            msgpack_zone zone;
            msgpack_zone_init(&zone, 1024);
            msgpack_object h;
            size_t off = 0;
            uint64_t id = 0;
            if (msgpack_unpack(zmq_msg_data(&part[3]), zmq_msg_size(&part[3]), &off,
                               &zone, &h) == MSGPACK_UNPACK_SUCCESS) {
                const msgpack_object *o = cairn_obj_get(&h, "id");
                if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) id = o->via.u64;
            }
            msgpack_zone_destroy(&zone);
            msgpack_sbuffer hb;
            msgpack_sbuffer_init(&hb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &hb, msgpack_sbuffer_write);
            msgpack_pack_map(&pk, 2);
            cairn_pack_cstr(&pk, "id");
            msgpack_pack_uint64(&pk, id);
            cairn_pack_cstr(&pk, "st");
            msgpack_pack_int(&pk, 200);
            zmq_send(fk->sock, zmq_msg_data(&part[0]), zmq_msg_size(&part[0]),
                     ZMQ_SNDMORE);
            zmq_send(fk->sock, "", 0, ZMQ_SNDMORE);
            zmq_send(fk->sock, "CAIRN/1", 7, ZMQ_SNDMORE);
            zmq_send(fk->sock, hb.data, hb.size, ZMQ_SNDMORE);
            zmq_send(fk->sock, body, sizeof body, 0);
            msgpack_sbuffer_destroy(&hb);
        }
        for (int i = 0; i < n; i++) zmq_msg_close(&part[i]);
    }
    return NULL;
}

static int s_fake_start(fake_t *fk)
{
    memset(fk, 0, sizeof *fk);
    fk->zctx = zmq_ctx_new();
    fk->sock = zmq_socket(fk->zctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(fk->sock, ZMQ_LINGER, &zero, sizeof zero);
    size_t len = sizeof fk->endpoint;
    if (zmq_bind(fk->sock, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(fk->sock, ZMQ_LAST_ENDPOINT, fk->endpoint, &len) != 0 ||
        pthread_create(&fk->thread, NULL, s_fake_serve, fk) != 0) {
        zmq_close(fk->sock);
        zmq_ctx_term(fk->zctx);
        return -1;
    }
    return 0;
}

static void s_fake_stop(fake_t *fk)
{
    fk->stop = true;
    pthread_join(fk->thread, NULL);
    zmq_close(fk->sock);
    zmq_ctx_term(fk->zctx);
}

/* Replies without what the contract promises are 502 bad_reply, and
 * nothing is handed out. */
static void s_bad_replies(void)
{
    fake_t fk;
    if (s_fake_start(&fk) != 0) {
        CHECK(false, "cannot start the fake kernel");
        return;
    }
    cairn_err_t err = {0};
    cairn_client_t *c = cairn_client_new(fk.endpoint, "", &err);
    cairn_client_set_ttl(c, 5000);
    cairn_secret_t *s = NULL;
    CHECK(cairn_secrets_get(c, "x", &s, &err) == -1 && err.st == 502 &&
              strcmp(err.code, CAIRN_E_BAD_REPLY) == 0 && !s,
          "get: %d %s", err.st, err.code);
    CHECK(cairn_secrets_set(c, "x", "v", 1, NULL, &err) == -1 && err.st == 502,
          "set: %d", err.st);
    cairn_secret_list_t *sl = NULL;
    CHECK(cairn_secrets_list(c, 0, NULL, &sl, &err) == -1 && err.st == 502 && !sl,
          "list: %d", err.st);
    CHECK(cairn_secrets_rotate_master_key(c, NULL, NULL, &err) == -1 && err.st == 502,
          "rotate: %d", err.st);
    CHECK(cairn_secrets_delete(c, "x", &err) == 0, "delete reads no reply: %s",
          err.msg);
    cairn_audit_records_t *l = NULL;
    CHECK(cairn_audit_query(c, NULL, &l, &err) == -1 && err.st == 502 && !l,
          "query: %d", err.st);
    cairn_audit_verdict_t v;
    CHECK(cairn_audit_verify(c, &v, &err) == -1 && err.st == 502 && !v.ok, "verify: %d",
          err.st);
    cairn_client_destroy(&c);
    s_fake_stop(&fk);
}

int main(void)
{
    harness_kernel_t k;
    if (harness_start_kernel(&k, KERNEL, SERVICES) != 0) return 1;
    cairn_client_t *owner = s_owner(&k);
    if (owner) {
        s_text_round_trip(owner);
        s_bytes_round_trip(owner);
        s_errors(owner);
        s_list_pages(owner);
        s_rotate(owner);
        cairn_client_t *rita = s_reader(owner, &k);
        if (rita) s_audit(owner, rita);
        cairn_client_destroy(&rita);
    }
    cairn_client_destroy(&owner);
    int st = harness_stop(&k);
    CHECK(st == 0, "cairnd exit status %d", st);
    if (harness_failed) harness_dump_log(&k);
    harness_cleanup(&k);
    s_bad_replies();
    return harness_summary();
}
