/* The key vault from C (see cairn/secrets.h). A value in the clear is only
 * ever in the request that sets it and the reply that returns it (both
 * wiped here before they are freed) and in the cairn_secret_t, which lives
 * in sodium_malloc'd memory. */
#define _POSIX_C_SOURCE 200809L
#include "cairn/secrets.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/msg.h"
#include "svc_call.h"

#define SVC CAIRN_SECRETS_SVC

struct cairn_secret {
    int64_t version;
    size_t len;
    bool text;
    char value[]; /* len bytes and a NUL */
};

typedef struct {
    char *name;
    cairn_secret_info_t info;
} row_t;

struct cairn_secret_list {
    size_t n;
    row_t *rows;
    char *next;
};

int cairn_secrets_set(cairn_client_t *client, const char *name, const void *value,
                      size_t len, int64_t *version, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(name, "name", err) ||
        (len && cairn_svc_need(value, "value", err)))
        return -1;
    if (!value) value = ""; /* NULL with len 0: the empty value */
    if (len > CAIRN_SECRET_VALUE_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "a secret's value is at most %u bytes",
                             CAIRN_SECRET_VALUE_MAX);
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, 2);
    cairn_pack_kv_str(pk, "name", name);
    cairn_pack_cstr(pk, "value");
    if (cairn_utf8_valid(value, len)) {
        msgpack_pack_str(pk, len);
        msgpack_pack_str_body(pk, value, len);
    } else {
        msgpack_pack_bin(pk, len);
        msgpack_pack_bin_body(pk, value, len);
    }
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "set_secret", &r, err) != 0) return -1;
    int64_t v = 0;
    int rc = cairn_svc_int(r, SVC, "version", &v, err);
    if (rc == 0 && version) *version = v;
    cairn_reply_destroy(&r);
    return rc;
}

int cairn_secrets_get(cairn_client_t *client, const char *name, cairn_secret_t **secret,
                      cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(name, "name", err) ||
        cairn_svc_need(secret, "secret", err))
        return -1;
    *secret = NULL;
    if (sodium_init() < 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "libsodium cannot be initialised");
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, 1);
    cairn_pack_kv_str(pk, "name", name);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "get_secret", &r, err) != 0) return -1;
    const msgpack_object *v = cairn_obj_get(cairn_reply_object(r), "value");
    int64_t version = 0;
    int rc = 0;
    if (!v || (v->type != MSGPACK_OBJECT_STR && v->type != MSGPACK_OBJECT_BIN))
        rc = cairn_svc_bad_reply(err, SVC, "lacks the value (str or bin)");
    else
        rc = cairn_svc_int(r, SVC, "version", &version, err);
    if (rc == 0) {
        bool text = v->type == MSGPACK_OBJECT_STR;
        const char *p = text ? v->via.str.ptr : v->via.bin.ptr;
        size_t n = text ? v->via.str.size : v->via.bin.size;
        /* sodium_malloc places a block against its guard page: a size that
         * is a multiple of 16 keeps the struct aligned. */
        cairn_secret_t *s = sodium_malloc((sizeof *s + n + 1 + 15) & ~(size_t)15);
        if (!s) {
            rc = cairn_err_oom(err, "for a secret's value");
        } else {
            s->version = version;
            s->len = n;
            s->text = text;
            memcpy(s->value, p, n);
            s->value[n] = '\0';
            *secret = s;
        }
    }
    cairn_svc_reply_wipe(&r);
    return rc;
}

const char *cairn_secret_value(const cairn_secret_t *s, size_t *len)
{
    if (len) *len = s ? s->len : 0;
    return s ? s->value : NULL;
}

bool cairn_secret_is_text(const cairn_secret_t *s)
{
    return s && s->text;
}

int64_t cairn_secret_version(const cairn_secret_t *s)
{
    return s ? s->version : 0;
}

void cairn_secret_free(cairn_secret_t **s)
{
    if (!s || !*s) return;
    sodium_free(*s); /* sodium_free zeroes the region before unmapping it */
    *s = NULL;
}

void cairn_secret_list_destroy(cairn_secret_list_t **l)
{
    if (!l || !*l) return;
    for (size_t i = 0; i < (*l)->n; i++) free((*l)->rows[i].name);
    free((*l)->rows);
    free((*l)->next);
    free(*l);
    *l = NULL;
}

/* The rows of a list_secrets reply into l. */
static int s_rows(cairn_reply_t *r, cairn_secret_list_t *l, cairn_err_t *err)
{
    const msgpack_object *a = cairn_obj_get(cairn_reply_object(r), "secrets");
    if (!a || a->type != MSGPACK_OBJECT_ARRAY)
        return cairn_svc_bad_reply(err, SVC, "lacks the list 'secrets'");
    if (a->via.array.size && !(l->rows = calloc(a->via.array.size, sizeof *l->rows)))
        return cairn_err_oom(err, "for a list of secrets");
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *e = &a->via.array.ptr[i];
        const msgpack_object *nm = cairn_obj_get(e, "name");
        row_t *row = &l->rows[i];
        if (!nm || nm->type != MSGPACK_OBJECT_STR)
            return cairn_svc_bad_reply(err, SVC, "holds a secret without a name");
        if (!(row->name =
                  cairn_str_dup((cairn_str_t){nm->via.str.ptr, nm->via.str.size})))
            return cairn_err_oom(err, "for a list of secrets");
        l->n++;
        row->info.name = row->name;
        cairn_svc_obj_int(e, "created", &row->info.created);
        cairn_svc_obj_int(e, "updated", &row->info.updated);
        cairn_svc_obj_int(e, "version", &row->info.version);
    }
    return cairn_svc_opt_str(r, "next_page_token", &l->next, err);
}

int cairn_secrets_list(cairn_client_t *client, uint32_t max_results,
                       const char *page_token, cairn_secret_list_t **list,
                       cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(list, "list", err))
        return -1;
    *list = NULL;
    cairn_svc_call_t c;
    msgpack_packer *pk =
        cairn_svc_begin(&c, SVC, (max_results != 0) + (page_token != NULL));
    if (max_results) {
        cairn_pack_cstr(pk, "max_results");
        msgpack_pack_uint32(pk, max_results);
    }
    if (page_token) cairn_pack_kv_str(pk, "page_token", page_token);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "list_secrets", &r, err) != 0) return -1;
    cairn_secret_list_t *l = calloc(1, sizeof *l);
    int rc = l ? s_rows(r, l, err) : cairn_err_oom(err, NULL);
    cairn_reply_destroy(&r);
    if (rc != 0)
        cairn_secret_list_destroy(&l);
    else
        *list = l;
    return rc;
}

size_t cairn_secret_list_count(const cairn_secret_list_t *l)
{
    return l ? l->n : 0;
}

const cairn_secret_info_t *cairn_secret_list_at(const cairn_secret_list_t *l, size_t i)
{
    return l && i < l->n ? &l->rows[i].info : NULL;
}

const char *cairn_secret_list_next_page(const cairn_secret_list_t *l)
{
    return l ? l->next : NULL;
}

int cairn_secrets_delete(cairn_client_t *client, const char *name, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(name, "name", err))
        return -1;
    cairn_svc_call_t c;
    cairn_pack_kv_str(cairn_svc_begin(&c, SVC, 1), "name", name);
    return cairn_svc_end(client, &c, "delete_secret", NULL, err);
}

int cairn_secrets_rotate_master_key(cairn_client_t *client, uint32_t *key_id,
                                    int64_t *resealed, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err)) return -1;
    cairn_svc_call_t c;
    cairn_svc_begin(&c, SVC, 0);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "rotate_master_key", &r, err) != 0) return -1;
    int64_t kid = 0, n = 0;
    int rc = cairn_svc_int(r, SVC, "key_id", &kid, err);
    if (rc == 0) rc = cairn_svc_int(r, SVC, "resealed", &n, err);
    if (rc == 0 && (kid < 0 || kid > UINT32_MAX))
        rc = cairn_svc_bad_reply(err, SVC, "names a key id out of range");
    if (rc == 0) {
        if (key_id) *key_id = (uint32_t)kid;
        if (resealed) *resealed = n;
    }
    cairn_reply_destroy(&r);
    return rc;
}
