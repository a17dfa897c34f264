/* Roles and their assignments (workspaces are workspaces.c's).
 *
 * A role is a list of action patterns (sdk/grants.h) and a list of
 * not_actions that win over them. The five built-in roles live here, in
 * code, so that an upgrade can refine them; custom roles (define_role) live
 * in the database. An assignment gives a principal a role in one
 * workspace, or in every workspace (ws "*"). Every change that alters what
 * resolve answers publishes auth.changed, so that the kernel drops what it
 * cached. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "grants.h"

typedef struct builtin_role {
    const char *name;
    const char *const *actions;
    const char *const *not_actions; /* both end with NULL */
} builtin_role_t;

#define PATTERNS(...) ((const char *const[]){__VA_ARGS__, NULL})
static const builtin_role_t s_builtin[] = {
    {.name = "Owner", .actions = PATTERNS("*"), .not_actions = PATTERNS(NULL)},
    /* Secret values are their own permission: a Contributor may set one,
     * not read one back; Readers and Operators see none. */
    {.name = "Contributor",
     .actions = PATTERNS("*.read", "*.write"),
     .not_actions = PATTERNS("secrets.read")},
    {.name = "Reader",
     .actions = PATTERNS("*.read"),
     .not_actions = PATTERNS("secrets.*")},
    {.name = "Data Scientist",
     .actions = PATTERNS("tracking.*", "artifacts.*", "registry.*", "jobs.*", "data.*",
                         "auth.read", "auth.write"),
     .not_actions = PATTERNS("*.admin")},
    {.name = "Operator",
     .actions = PATTERNS("*.read", "jobs.*", "endpoints.*", "compute.*"),
     .not_actions = PATTERNS("secrets.*")},
};
#define NBUILTIN (sizeof s_builtin / sizeof *s_builtin)

static const builtin_role_t *s_builtin_role(const char *name)
{
    for (size_t i = 0; i < NBUILTIN; i++)
        if (strcmp(s_builtin[i].name, name) == 0) return &s_builtin[i];
    return NULL;
}

/* A role's patterns, as pointers into text (built-in: static). */
typedef struct role_pats {
    char *text; /* owned: the custom role's columns, split in place */
    const char *act[AUTH_PATTERNS_MAX], *not [AUTH_PATTERNS_MAX];
    size_t nact, nnot;
} role_pats_t;

static size_t s_split(char *s, const char **out)
{
    size_t n = 0;
    for (char *p = s; *p && n < AUTH_PATTERNS_MAX;) {
        out[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = '\0';
        p = nl + 1;
    }
    return n;
}

/* Load role's patterns: 0, 1 when there is no such role, -1 on error. */
static int s_role_load(auth_t *a, const char *role, role_pats_t *out, cairn_err_t *err)
{
    memset(out, 0, sizeof *out);
    const builtin_role_t *b = s_builtin_role(role);
    if (b) {
        for (; b->actions[out->nact]; out->nact++)
            out->act[out->nact] = b->actions[out->nact];
        for (; b->not_actions[out->nnot]; out->nnot++)
            out->not [out->nnot] = b->not_actions[out->nnot];
        return 0;
    }
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_ROLE_GET);
    sqlite3_bind_text(st, 1, role, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 1 : auth_db_fail(a->db, "read a role", err);
    }
    const char *acts = (const char *)sqlite3_column_text(st, 0);
    const char *nots = (const char *)sqlite3_column_text(st, 1);
    size_t la = strlen(acts), ln = strlen(nots);
    out->text = malloc(la + ln + 2);
    if (!out->text) {
        sqlite3_reset(st);
        return cairn_err_oom(err, "load a role");
    }
    memcpy(out->text, acts, la + 1);
    memcpy(out->text + la + 1, nots, ln + 1);
    sqlite3_reset(st);
    out->nact = la ? s_split(out->text, out->act) : 0;
    out->nnot = ln ? s_split(out->text + la + 1, out->not ) : 0;
    return 0;
}

static void s_pack_list(msgpack_packer *pk, const char *const *v, size_t n)
{
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) cairn_pack_cstr(pk, v[i]);
}

/* Visit principal's assignments: fn(arg, role, ws, patterns) for each
 * (assignments of a role since deleted are skipped). */
typedef int(assign_fn)(void *arg, const char *role, const char *ws,
                       const role_pats_t *p);
static int s_each_assignment(auth_t *a, const char *principal, assign_fn *fn, void *arg,
                             cairn_err_t *err)
{
    /* Copied out first: s_role_load steps another statement. */
    char rows[AUTH_PATTERNS_MAX * 4][2][AUTH_NAME_MAX + 1];
    size_t n = 0;
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_ASSIGN_OF);
    sqlite3_bind_text(st, 1, principal, -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < sizeof rows / sizeof *rows) {
        snprintf(rows[n][0], sizeof rows[n][0], "%s", sqlite3_column_text(st, 0));
        snprintf(rows[n][1], sizeof rows[n][1], "%s", sqlite3_column_text(st, 1));
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return auth_db_fail(a->db, "read role assignments", err);
    for (size_t i = 0; i < n; i++) {
        role_pats_t p;
        int lr = s_role_load(a, rows[i][0], &p, err);
        if (lr < 0) return -1;
        int fr = lr == 0 ? fn(arg, rows[i][0], rows[i][1], &p) : 0;
        free(p.text);
        if (fr != 0) return fr;
    }
    return 0;
}

typedef struct admin_q {
    const char *ws;
    bool yes;
} admin_q_t;

static int s_admin_in(void *arg, const char *role, const char *ws, const role_pats_t *p)
{
    (void)role;
    admin_q_t *q = arg;
    if ((strcmp(ws, AUTH_ALL_WS) == 0 || strcmp(ws, q->ws) == 0) &&
        cairn_grants_permit(p->act, p->nact, p->not, p->nnot, "auth.admin"))
        q->yes = true;
    return 0;
}

bool auth_is_admin(auth_t *a, cairn_req_t *req)
{
    if (cairn_has_role(req, "Owner")) return true;
    /* a plugin's nested call (the jobs plugin making a job's token): the
     * kernel stamps its service principal, trusted code of this deployment */
    if (cairn_has_role(req, "Service") && !strncmp(cairn_principal(req), "service:", 8))
        return true;
    admin_q_t q = {.ws = cairn_workspace(req)};
    cairn_err_t ignored = {0};
    return s_each_assignment(a, cairn_principal(req), s_admin_in, &q, &ignored) == 0 &&
           q.yes;
}

typedef struct grants_out {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint32_t n;
    const char *only_ws; /* NULL: every assignment */
} grants_out_t;

static int s_pack_grant(void *arg, const char *role, const char *ws,
                        const role_pats_t *p)
{
    grants_out_t *g = arg;
    if (g->only_ws) {
        if (strcmp(ws, AUTH_ALL_WS) != 0 && strcmp(ws, g->only_ws) != 0) return 0;
        ws = g->only_ws;
    }
    msgpack_pack_map(&g->pk, 4);
    cairn_pack_kv_str(&g->pk, "ws", ws);
    cairn_pack_kv_str(&g->pk, "role", role); /* for the kernel's has_role stamp */
    cairn_pack_cstr(&g->pk, "actions");
    s_pack_list(&g->pk, p->act, p->nact);
    cairn_pack_cstr(&g->pk, "not_actions");
    if (g->only_ws) {
        /* A token held to one workspace may not make or manage tokens: it
         * could otherwise mint itself one for every workspace. */
        static const char *const no_auth[] = {"auth.write", "auth.admin"};
        msgpack_pack_array(&g->pk, (uint32_t)(p->nnot + 2));
        for (size_t i = 0; i < p->nnot; i++) cairn_pack_cstr(&g->pk, p->not [i]);
        for (size_t i = 0; i < 2; i++) cairn_pack_cstr(&g->pk, no_auth[i]);
    } else {
        s_pack_list(&g->pk, p->not, p->nnot);
    }
    g->n++;
    return 0;
}

int auth_pack_grants(auth_t *a, msgpack_packer *pk, const char *principal,
                     const char *only_ws, cairn_err_t *err)
{
    grants_out_t g = {.n = 0, .only_ws = only_ws && *only_ws ? only_ws : NULL};
    msgpack_sbuffer_init(&g.sb);
    msgpack_packer_init(&g.pk, &g.sb, msgpack_sbuffer_write);
    int rc = s_each_assignment(a, principal, s_pack_grant, &g, err);
    if (rc == 0) {
        msgpack_pack_array(pk, g.n);
        msgpack_sbuffer_write(pk->data, g.sb.data, g.sb.size);
    }
    msgpack_sbuffer_destroy(&g.sb);
    return rc;
}

int auth_unassign_all(auth_t *a, const char *principal, cairn_err_t *err)
{
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_ASSIGN_DROP_PRINCIPAL);
    sqlite3_bind_text(st, 1, principal, -1, SQLITE_TRANSIENT);
    return auth_db_exec(a->db, st, "drop role assignments", err);
}

/* ---- whoami ---- */

typedef struct whoami_out {
    msgpack_sbuffer sb; /* the assignments [{role, ws}] */
    msgpack_packer pk;
    uint32_t n;
    const char *names[AUTH_PATTERNS_MAX * 4]; /* distinct role names, borrowed... */
    char own[AUTH_PATTERNS_MAX * 4][AUTH_NAME_MAX + 1]; /* ...from here */
    size_t nnames;
} whoami_out_t;

static void s_add_name(whoami_out_t *w, const char *role)
{
    for (size_t i = 0; i < w->nnames; i++)
        if (strcmp(w->names[i], role) == 0) return;
    if (w->nnames == sizeof w->own / sizeof *w->own) return;
    snprintf(w->own[w->nnames], sizeof w->own[0], "%s", role);
    w->names[w->nnames] = w->own[w->nnames];
    w->nnames++;
}

static int s_whoami_row(void *arg, const char *role, const char *ws,
                        const role_pats_t *p)
{
    (void)p;
    whoami_out_t *w = arg;
    msgpack_pack_map(&w->pk, 2);
    cairn_pack_kv_str(&w->pk, "role", role);
    cairn_pack_kv_str(&w->pk, "ws", ws);
    w->n++;
    s_add_name(w, role);
    return 0;
}

/* whoami -> {user, roles: [name], assignments: [{role, ws}], workspace}:
 * roles are those the kernel stamped on this request and those assigned
 * here (in any workspace). */
int auth_whoami(void *state, cairn_req_t *req, cairn_err_t *err)
{
    auth_t *a = state;
    whoami_out_t *w = calloc(1, sizeof *w);
    if (!w) return cairn_err_oom(err, NULL);
    msgpack_sbuffer_init(&w->sb);
    msgpack_packer_init(&w->pk, &w->sb, msgpack_sbuffer_write);
    for (size_t i = 0; i < NBUILTIN; i++)
        if (cairn_has_role(req, s_builtin[i].name)) s_add_name(w, s_builtin[i].name);
    int rc = s_each_assignment(a, cairn_principal(req), s_whoami_row, w, err);
    if (rc == 0) {
        msgpack_packer *pk = auth_reply_begin(a);
        msgpack_pack_map(pk, 4);
        cairn_pack_kv_str(pk, "user", cairn_principal(req));
        cairn_pack_cstr(pk, "roles");
        s_pack_list(pk, w->names, w->nnames);
        cairn_pack_cstr(pk, "assignments");
        msgpack_pack_array(pk, w->n);
        msgpack_sbuffer_write(&a->sb, w->sb.data, w->sb.size);
        cairn_pack_kv_str(pk, "workspace", cairn_workspace(req));
        auth_reply_send(a, req);
    }
    msgpack_sbuffer_destroy(&w->sb);
    free(w);
    return rc;
}

/* ---- define_role, list_roles ---- */

/* Read an array of patterns into one newline-joined string. */
static int s_field_patterns(const msgpack_object *b, const char *key, bool required,
                            char **out, cairn_err_t *err)
{
    const msgpack_object *arr;
    *out = NULL;
    int rc = cairn_field_array(b, key, required, &arr, err);
    if (rc < 0) return -1;
    size_t n = rc == 0 ? arr->via.array.size : 0;
    if (required && n == 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "%s must hold at least one pattern", key);
    if (n > AUTH_PATTERNS_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "%s holds more than %d patterns", key, AUTH_PATTERNS_MAX);
    char *s = calloc(1, n * (CAIRN_GRANT_PATTERN_MAX + 1) + 1);
    if (!s) return cairn_err_oom(err, NULL);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *o = &arr->via.array.ptr[i];
        char pat[CAIRN_GRANT_PATTERN_MAX + 1];
        bool str = o->type == MSGPACK_OBJECT_STR;
        if (str && o->via.str.size > CAIRN_GRANT_PATTERN_MAX) {
            free(s);
            return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                                 "%s[%zu] is longer than %d bytes", key, i,
                                 CAIRN_GRANT_PATTERN_MAX);
        }
        if (str)
            snprintf(pat, sizeof pat, "%.*s", (int)o->via.str.size, o->via.str.ptr);
        if (!str || memchr(o->via.str.ptr, '\0', o->via.str.size) ||
            !cairn_grants_pattern_ok(pat)) {
            free(s);
            return cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "%s[%zu] must be an action pattern: *, svc.*, *.action "
                "or svc.action",
                key, i);
        }
        len += (size_t)sprintf(s + len, "%s%s", i ? "\n" : "", pat);
    }
    *out = s;
    return 0;
}

int auth_define_role(void *state, cairn_req_t *req, cairn_err_t *err)
{
    auth_t *a = state;
    const msgpack_object *b = cairn_body(req);
    char name[AUTH_NAME_MAX + 1], *acts = NULL, *nots = NULL;
    if (auth_field_name(b, "name", true, auth_role_char, name, err) != 0) return -1;
    cairn_name_object(req, "role", name, strlen(name));
    if (s_builtin_role(name))
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "'%s' is a built-in role and cannot be redefined", name);
    if (s_field_patterns(b, "actions", true, &acts, err) != 0 ||
        s_field_patterns(b, "not_actions", false, &nots, err) != 0) {
        free(acts);
        return -1;
    }
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_ROLE_UPSERT);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, acts, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, nots ? nots : "", -1, SQLITE_STATIC);
    int rc = auth_db_exec(a->db, st, "store a role", err);
    sqlite3_clear_bindings(st);
    free(acts);
    free(nots);
    if (rc != 0) return -1;
    auth_changed(a, NULL, NULL); /* whoever holds it: everyone, to be simple */
    msgpack_packer *pk = auth_reply_begin(a);
    msgpack_pack_map(pk, 1);
    cairn_pack_kv_str(pk, "name", name);
    return auth_reply_send(a, req);
}

static void s_pack_role(msgpack_packer *pk, const char *name, bool builtin,
                        const role_pats_t *p)
{
    msgpack_pack_map(pk, 4);
    cairn_pack_kv_str(pk, "name", name);
    cairn_pack_cstr(pk, "builtin");
    builtin ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    cairn_pack_cstr(pk, "actions");
    s_pack_list(pk, p->act, p->nact);
    cairn_pack_cstr(pk, "not_actions");
    s_pack_list(pk, p->not, p->nnot);
}

/* list_roles -> roles [{name, builtin, actions, not_actions}]. */
int auth_list_roles(void *state, cairn_req_t *req, cairn_err_t *err)
{
    auth_t *a = state;
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
    uint32_t n = 0;
    for (size_t i = 0; i < NBUILTIN; i++, n++) {
        role_pats_t p;
        s_role_load(a, s_builtin[i].name, &p, err);
        s_pack_role(&rp, s_builtin[i].name, true, &p);
    }
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_ROLE_LIST);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char acts[AUTH_PATTERNS_MAX * (CAIRN_GRANT_PATTERN_MAX + 1) + 1];
        char nots[sizeof acts];
        role_pats_t p = {.text = NULL};
        snprintf(acts, sizeof acts, "%s", sqlite3_column_text(st, 1));
        snprintf(nots, sizeof nots, "%s", sqlite3_column_text(st, 2));
        p.nact = acts[0] ? s_split(acts, p.act) : 0;
        p.nnot = nots[0] ? s_split(nots, p.not ) : 0;
        s_pack_role(&rp, (const char *)sqlite3_column_text(st, 0), false, &p);
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        msgpack_sbuffer_destroy(&rows);
        return auth_db_fail(a->db, "list roles", err);
    }
    msgpack_packer *pk = auth_reply_begin(a);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "roles");
    msgpack_pack_array(pk, n);
    msgpack_sbuffer_write(&a->sb, rows.data, rows.size);
    msgpack_sbuffer_destroy(&rows);
    return auth_reply_send(a, req);
}

/* ---- assign_role, unassign_role ---- */

static bool s_ws_exists(auth_t *a, const char *ws)
{
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_WS_GET);
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_TRANSIENT);
    bool yes = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return yes;
}

/* The {principal*, role*, workspace} of assign_role and unassign_role. */
typedef struct assignment {
    char principal[AUTH_NAME_MAX + 1], role[AUTH_NAME_MAX + 1], ws[AUTH_NAME_MAX + 1];
} assignment_t;

static int s_field_assignment(auth_t *a, cairn_req_t *req, assignment_t *out,
                              cairn_err_t *err)
{
    const msgpack_object *b = cairn_body(req);
    int has_ws;
    if (auth_field_name(b, "principal", true, auth_user_char, out->principal, err) !=
            0 ||
        auth_field_name(b, "role", true, auth_role_char, out->role, err) != 0 ||
        (has_ws = auth_field_name(b, "workspace", false, auth_ws_char, out->ws, err)) <
            0)
        return -1;
    if (has_ws != 0) snprintf(out->ws, sizeof out->ws, "%s", AUTH_ALL_WS);
    role_pats_t p;
    int rc = s_role_load(a, out->role, &p, err);
    free(p.text);
    if (rc < 0) return -1;
    if (rc > 0)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "there is no role named '%s'", out->role);
    if (has_ws == 0 && !s_ws_exists(a, out->ws))
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "there is no workspace named '%s'", out->ws);
    return 0;
}

static int s_assignment_change(auth_t *a, cairn_req_t *req, auth_stmt_id_t id,
                               cairn_err_t *err)
{
    assignment_t x;
    if (s_field_assignment(a, req, &x, err) != 0) return -1;
    cairn_name_object(req, "principal", x.principal, strlen(x.principal));
    sqlite3_stmt *st = auth_db_stmt(a->db, id);
    sqlite3_bind_text(st, 1, x.principal, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, x.role, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, x.ws, -1, SQLITE_TRANSIENT);
    if (auth_db_exec(a->db, st, "change a role assignment", err) != 0) return -1;
    if (id == AST_ASSIGN_DELETE && auth_db_changes(a->db) == 0)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "%s does not hold role '%s' in %s", x.principal, x.role,
                             strcmp(x.ws, AUTH_ALL_WS) == 0 ? "every workspace" : x.ws);
    auth_changed(a, "principal", x.principal);
    msgpack_packer *pk = auth_reply_begin(a);
    msgpack_pack_map(pk, 3);
    cairn_pack_kv_str(pk, "principal", x.principal);
    cairn_pack_kv_str(pk, "role", x.role);
    cairn_pack_kv_str(pk, "workspace", x.ws);
    return auth_reply_send(a, req);
}

int auth_assign_role(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return s_assignment_change(state, req, AST_ASSIGN_INSERT, err);
}

int auth_unassign_role(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return s_assignment_change(state, req, AST_ASSIGN_DELETE, err);
}
