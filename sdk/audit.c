/* The audit trail from C (see cairn/audit.h). */
#define _POSIX_C_SOURCE 200809L
#include "cairn/audit.h"

#include <stdlib.h>
#include <string.h>

#include "cairn/msg.h"
#include "svc_call.h"

#define SVC CAIRN_AUDIT_SVC
#define NSTR 5 /* principal, ws, svc, verb, object */

static const char *const s_str_keys[NSTR] = {"principal", "ws", "svc", "verb",
                                             "object"};

struct cairn_audit_records {
    size_t n;
    cairn_audit_record_t *recs;
    char **strs; /* NSTR per record, owned */
    char *next;
};

void cairn_audit_records_destroy(cairn_audit_records_t **l)
{
    if (!l || !*l) return;
    for (size_t i = 0; i < (*l)->n * NSTR; i++) free((*l)->strs[i]);
    free((*l)->strs);
    free((*l)->recs);
    free((*l)->next);
    free(*l);
    *l = NULL;
}

static void s_opt_str(msgpack_packer *pk, const char *key, const char *v)
{
    if (v) cairn_pack_kv_str(pk, key, v);
}

static void s_opt_int(msgpack_packer *pk, const char *key, int64_t v)
{
    if (!v) return;
    cairn_pack_cstr(pk, key);
    msgpack_pack_int64(pk, v);
}

/* One row of the reply into l->recs[l->n] (strings into l->strs). */
static int s_row(const msgpack_object *e, cairn_audit_records_t *l, cairn_err_t *err)
{
    cairn_audit_record_t *rec = &l->recs[l->n];
    char **strs = &l->strs[l->n * NSTR];
    int64_t status = 0;
    if (!cairn_svc_obj_int(e, "seq", &rec->seq) ||
        !cairn_svc_obj_int(e, "time", &rec->time) ||
        !cairn_svc_obj_int(e, "status", &status) || status < 0 || status > 999)
        return cairn_svc_bad_reply(err, SVC,
                                   "holds a record without seq, time or status");
    rec->status = (int)status;
    for (int k = 0; k < NSTR; k++) {
        const msgpack_object *o = cairn_obj_get(e, s_str_keys[k]);
        cairn_str_t s = {"", 0};
        if (o && o->type == MSGPACK_OBJECT_STR)
            s = (cairn_str_t){o->via.str.ptr, o->via.str.size};
        if (!(strs[k] = cairn_str_dup(s))) {
            for (int j = 0; j < k; j++) {
                free(strs[j]);
                strs[j] = NULL;
            }
            return cairn_err_oom(err, "for audit records");
        }
    }
    rec->principal = strs[0], rec->ws = strs[1], rec->svc = strs[2];
    rec->verb = strs[3], rec->object = strs[4];
    l->n++;
    return 0;
}

static int s_records(cairn_reply_t *r, cairn_audit_records_t *l, cairn_err_t *err)
{
    const msgpack_object *a = cairn_obj_get(cairn_reply_object(r), "records");
    if (!a || a->type != MSGPACK_OBJECT_ARRAY)
        return cairn_svc_bad_reply(err, SVC, "lacks the list 'records'");
    size_t n = a->via.array.size;
    if (n && (!(l->recs = calloc(n, sizeof *l->recs)) ||
              !(l->strs = calloc(n * NSTR, sizeof *l->strs))))
        return cairn_err_oom(err, "for audit records");
    for (size_t i = 0; i < n; i++)
        if (s_row(&a->via.array.ptr[i], l, err) != 0) return -1;
    return cairn_svc_opt_str(r, "next_page_token", &l->next, err);
}

int cairn_audit_query(cairn_client_t *client, const cairn_audit_filter_t *filter,
                      cairn_audit_records_t **records, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) ||
        cairn_svc_need(records, "records", err))
        return -1;
    *records = NULL;
    const cairn_audit_filter_t none = {0}, *f = filter ? filter : &none;
    uint32_t nkeys = (f->principal != NULL) + (f->svc != NULL) + (f->verb != NULL) +
                     (f->object != NULL) + (f->since != 0) + (f->until != 0) +
                     (f->max_results != 0) + (f->page_token != NULL) +
                     (f->min_status != 0) + (f->max_status != 0);
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, nkeys);
    s_opt_str(pk, "principal", f->principal);
    s_opt_str(pk, "svc", f->svc);
    s_opt_str(pk, "verb", f->verb);
    s_opt_str(pk, "object", f->object);
    s_opt_int(pk, "since", f->since);
    s_opt_int(pk, "until", f->until);
    s_opt_int(pk, "max_results", f->max_results);
    s_opt_str(pk, "page_token", f->page_token);
    s_opt_int(pk, "min_status", f->min_status);
    s_opt_int(pk, "max_status", f->max_status);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "query", &r, err) != 0) return -1;
    cairn_audit_records_t *l = calloc(1, sizeof *l);
    int rc = l ? s_records(r, l, err) : cairn_err_oom(err, NULL);
    cairn_reply_destroy(&r);
    if (rc != 0)
        cairn_audit_records_destroy(&l);
    else
        *records = l;
    return rc;
}

size_t cairn_audit_records_count(const cairn_audit_records_t *l)
{
    return l ? l->n : 0;
}

const cairn_audit_record_t *cairn_audit_records_at(const cairn_audit_records_t *l,
                                                   size_t i)
{
    return l && i < l->n ? &l->recs[i] : NULL;
}

const char *cairn_audit_records_next_page(const cairn_audit_records_t *l)
{
    return l ? l->next : NULL;
}

int cairn_audit_verify(cairn_client_t *client, cairn_audit_verdict_t *v,
                       cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(v, "verdict", err))
        return -1;
    *v = (cairn_audit_verdict_t){0};
    cairn_svc_call_t c;
    cairn_svc_begin(&c, SVC, 0);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "verify", &r, err) != 0) return -1;
    const msgpack_object *ok = cairn_obj_get(cairn_reply_object(r), "ok");
    int rc = ok && ok->type == MSGPACK_OBJECT_BOOLEAN
                 ? cairn_svc_int(r, SVC, "records", &v->records, err)
                 : cairn_svc_bad_reply(err, SVC, "lacks the boolean 'ok'");
    if (rc == 0) v->ok = ok->via.boolean;
    if (rc == 0 && !v->ok)
        rc = cairn_svc_int(r, SVC, "first_bad_seq", &v->first_bad_seq, err);
    if (rc != 0) *v = (cairn_audit_verdict_t){0};
    cairn_reply_destroy(&r);
    return rc;
}
