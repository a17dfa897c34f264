/* An MLflow model registers as is: a runs:/ source holding an `MLmodel`
 * file at its root gets the version's flavor and signature read from it,
 * where the request names neither.
 *
 * Before the pins (source.c), one nested get_artifact reads
 * PATH/MLmodel from the run (at most REG_MLMODEL_MAX bytes: 404 means a
 * source without one, and the version registers as asked). The file is
 * YAML (sdk/yamlmp.h reads it as msgpack):
 *
 *     flavors: {python_function: {...}, xgboost: {data: model.xgb, ...}}
 *     signature: {inputs: '<JSON>', outputs: '<JSON>', params: ...}
 *
 * flavor: xgboost or onnx where the file names that flavor, python where
 * it names python_function alone, mlflow for any other set; signature:
 * {"inputs": <inputs>, "outputs": <outputs>} with MLflow's JSON column
 * specs as written (null when absent). A file that is not YAML, or whose
 * fields have the wrong shape, fails the registration with a 400 naming
 * it: a model whose MLmodel cannot be read would not load either. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "yamlmp.h"

#define REG_MLMODEL_MAX (1u << 20)

/* flavor from the flavors map's keys. */
static const char *s_flavor_of(const msgpack_object *flavors)
{
    bool pyfunc = false, other = false;
    for (uint32_t i = 0; i < flavors->via.map.size; i++) {
        const msgpack_object *k = &flavors->via.map.ptr[i].key;
        if (cairn_obj_is_str(k, "xgboost")) return "xgboost";
        if (cairn_obj_is_str(k, "onnx")) return "onnx";
        if (cairn_obj_is_str(k, "python_function"))
            pyfunc = true;
        else
            other = true;
    }
    return pyfunc && !other ? "python" : "mlflow";
}

/* A signature part: a JSON text, or absent/nil. */
static int s_sig_part(const msgpack_object *sig, const char *key, cairn_str_t *out,
                      cairn_err_t *err)
{
    const msgpack_object *o = cairn_obj_get(sig, key);
    *out = (cairn_str_t){"null", 4};
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 0;
    if (o->type != MSGPACK_OBJECT_STR || !o->via.str.size)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the source's MLmodel: signature.%s must be a JSON text",
                             key);
    *out = (cairn_str_t){o->via.str.ptr, o->via.str.size};
    return 0;
}

/* Fill p's missing flavor and signature from the MLmodel text. */
static int s_read_mlmodel(reg_pending_t *p, const char *text, size_t len,
                          cairn_err_t *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    cairn_err_t yerr = {0};
    int rc = cairn_yaml_to_msgpack(text, len, &sb, &yerr);
    if (rc != 0)
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "the source's MLmodel is not readable: %s", yerr.msg);
    else if (msgpack_unpack_next(&u, sb.data, sb.size, NULL) !=
                 MSGPACK_UNPACK_SUCCESS ||
             u.data.type != MSGPACK_OBJECT_MAP)
        rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                           "the source's MLmodel is not a YAML mapping");
    const msgpack_object *flavors = rc == 0 ? cairn_obj_get(&u.data, "flavors") : NULL;
    const msgpack_object *sig = rc == 0 ? cairn_obj_get(&u.data, "signature") : NULL;
    if (rc == 0 && (!flavors || flavors->type != MSGPACK_OBJECT_MAP))
        rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                           "the source's MLmodel names no flavors (a mapping)");
    if (rc == 0 && !p->text[2].len) {
        const char *f = s_flavor_of(flavors);
        p->text[2] = (cairn_str_t){f, strlen(f)}; /* static */
    }
    if (rc == 0 && !p->text[3].len && sig && sig->type == MSGPACK_OBJECT_MAP) {
        cairn_str_t in, out;
        if (s_sig_part(sig, "inputs", &in, err) != 0 ||
            s_sig_part(sig, "outputs", &out, err) != 0)
            rc = -1;
        else if (asprintf(&p->owned_signature, "{\"inputs\": %.*s, \"outputs\": %.*s}",
                          (int)in.len, in.ptr, (int)out.len, out.ptr) < 0) {
            p->owned_signature = NULL;
            rc = cairn_err_oom(err, NULL);
        } else
            p->text[3] = (cairn_str_t){p->owned_signature, strlen(p->owned_signature)};
    }
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* get_artifact's answer: read the file when there is one, then pin. */
static void s_probed(void *arg, int st, const char *code, const char *msg,
                     const msgpack_object *body)
{
    reg_pending_t *p = arg;
    cairn_err_t err = {0};
    int rc = 0;
    if (st == CAIRN_ST_NOT_FOUND && code && !strcmp(code, CAIRN_E_NOT_FOUND)) {
        /* no MLmodel: register as asked */
    } else if (st >= CAIRN_ST_BAD_REQUEST) {
        rc = cairn_err_set(&err, st, code, "cannot read the source's MLmodel: %s",
                           msg ? msg : "the artifact store refused it");
    } else {
        const msgpack_object *data = cairn_obj_get(body, "data");
        uint64_t size = 0;
        if (cairn_field_uint(body, "size", true, &size, &err) != 0 || !data ||
            data->type != MSGPACK_OBJECT_BIN)
            rc = cairn_err_set(&err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                               "the artifact store's answer holds no data");
        else if (size > REG_MLMODEL_MAX)
            rc =
                cairn_err_set(&err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                              "the source's MLmodel is %llu bytes; at most %u are read",
                              (unsigned long long)size, REG_MLMODEL_MAX);
        else
            rc = s_read_mlmodel(p, data->via.bin.ptr, data->via.bin.size, &err);
    }
    if (rc == 0) rc = reg_source_pin(p, &err);
    if (rc != 0) {
        cairn_reply_err(p->req, &err);
        reg_pending_free(p);
    }
}

int reg_mlmodel_probe(reg_pending_t *p, cairn_err_t *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    cairn_pack_cstr(&pk, "run_id");
    cairn_pack_strn(&pk, p->run_id.ptr, p->run_id.len);
    char *path = NULL;
    int n = asprintf(&path, "%.*s%sMLmodel", (int)p->path.len, p->path.ptr,
                     p->path.len ? "/" : "");
    if (n < 0) {
        msgpack_sbuffer_destroy(&sb);
        return cairn_err_oom(err, NULL);
    }
    cairn_pack_kv_text(&pk, "path", path);
    free(path);
    cairn_pack_cstr(&pk, "length");
    msgpack_pack_uint32(&pk, REG_MLMODEL_MAX);
    int rc = cairn_call_ws(p->r->ctx, p->ws, p->r->artifacts_svc, "get_artifact",
                           sb.data, sb.size, reg_ttl_left(p->req), s_probed, p, err);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}
