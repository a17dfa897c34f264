/* The `cairn` CLI's auth commands: whoami, login, users, tokens, roles and
 * workspaces (docs/AUTH.md). Passwords are read from stdin (one line), never
 * from the command line, where other users' `ps` would see them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Call auth.verb with a JSON body, which it steals. */
static int s_acall(cairn_client_t *c, const opts_t *o, const char *verb, json_t *body,
                   json_t **out, fail_t *f)
{
    return cli_call_json(c, o, "auth", verb, body, out, f);
}

/* Print the reply as JSON (--json) or its key's string value. */
static int s_print(const opts_t *o, json_t *reply, const char *key, fail_t *f)
{
    if (o->json) return cli_print_json(reply, false, f);
    const char *v = json_string_value(json_object_get(reply, key));
    if (v) printf("%s\n", v);
    return EXIT_OK;
}

/* A call whose reply is printed by key (NULL: nothing, unless --json). */
static int s_simple(cairn_client_t *c, const opts_t *o, const char *verb, json_t *body,
                    const char *key, fail_t *f)
{
    json_t *reply = NULL;
    int rc = s_acall(c, o, verb, body, &reply, f);
    if (rc == EXIT_OK && (key || o->json)) rc = s_print(o, reply, key, f);
    json_decref(reply);
    return rc;
}

/* One line of stdin, without its newline, into a heap string. */
static int s_read_password(char **out, fail_t *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n <= 0) {
        free(line);
        return cli_bad_usage(f, "give the password on stdin (one line)");
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    *out = line;
    return EXIT_OK;
}

static void s_wipe(char *s)
{
    if (s) sodium_memzero(s, strlen(s));
    free(s);
}

int cli_whoami(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *reply = NULL;
    int rc = s_acall(c, o, "whoami", json_object(), &reply, f);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(reply, false, f);
    if (rc == EXIT_OK && !o->json) {
        printf("%s", json_string_value(json_object_get(reply, "user")));
        size_t i;
        const json_t *r;
        json_array_foreach(json_object_get(reply, "roles"), i, r)
            printf("%s%s", i ? ", " : " (", json_string_value(r));
        printf("%s\n", json_array_size(json_object_get(reply, "roles")) ? ")" : "");
    }
    json_decref(reply);
    return rc;
}

/* Save token where cairn_token_find looks second: a 0600 file in a 0700
 * directory, written whole then renamed into place. */
static int s_save_token(const char *token, char *path, size_t cap, fail_t *f)
{
    char tmp[4200];
    if (cairn_token_path(path, cap) != 0)
        return cli_fail(f, EXIT_USAGE,
                        "no HOME nor XDG_CONFIG_HOME: nowhere to save it");
    char *slash = strrchr(path, '/'), *mid;
    *slash = '\0';
    if ((mid = strrchr(path, '/'))) { /* .../.config, then .../cairn */
        *mid = '\0';
        mkdir(path, 0700);
        *mid = '/';
    }
    mkdir(path, 0700);
    *slash = '/';
    snprintf(tmp, sizeof tmp, "%s.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t n = strlen(token);
    bool ok = fd >= 0 && write(fd, token, n) == (ssize_t)n && write(fd, "\n", 1) == 1 &&
              fsync(fd) == 0;
    if (fd >= 0) close(fd);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return cli_fail(f, EXIT_USAGE, "cannot save the token to %s: %s", path,
                        strerror(errno));
    }
    return EXIT_OK;
}

int cli_login(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    char *pw = NULL;
    int rc = s_read_password(&pw, f);
    if (rc != EXIT_OK) return rc;
    json_t *reply = NULL;
    rc =
        s_acall(c, o, "login",
                json_pack("{s:s, s:s}", "user", o->args[1], "password", pw), &reply, f);
    s_wipe(pw);
    const char *tok = json_string_value(json_object_get(reply, "token"));
    char path[4096];
    if (rc == EXIT_OK && !tok)
        rc = cli_fail(f, EXIT_INTERNAL, "login: no token in the reply");
    if (rc == EXIT_OK) rc = s_save_token(tok, path, sizeof path, f);
    if (rc == EXIT_OK) {
        if (o->json)
            rc = cli_print_json(reply, false, f);
        else
            printf(
                "logged in as %s; the token is saved in %s (cairn logout removes it)\n",
                o->args[1], path);
    }
    json_decref(reply);
    return rc;
}

int cli_logout(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    (void)c;
    (void)o;
    char path[4096];
    if (cairn_token_path(path, sizeof path) != 0)
        return cli_fail(f, EXIT_USAGE, "no HOME nor XDG_CONFIG_HOME: no saved token");
    if (unlink(path) != 0 && errno != ENOENT)
        return cli_fail(f, EXIT_USAGE, "cannot remove %s: %s", path, strerror(errno));
    printf(
        "logged out: %s removed (the token stays valid until it expires or is "
        "revoked)\n",
        path);
    return EXIT_OK;
}

int cli_users_create(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    char *pw = NULL;
    int rc = s_read_password(&pw, f);
    if (rc != EXIT_OK) return rc;
    rc = s_simple(c, o, "create_user",
                  json_pack("{s:s, s:s}", "user", OPERAND(o, 0), "password", pw),
                  "user", f);
    s_wipe(pw);
    return rc;
}

int cli_users_delete(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_simple(c, o, "delete_user", json_pack("{s:s}", "user", OPERAND(o, 0)),
                    NULL, f);
}

/* users passwd USER: the new password on stdin's first line, the old one
 * (needed for one's own) on its second. */
int cli_users_passwd(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    char *pw = NULL, *old = NULL;
    int rc = s_read_password(&pw, f);
    if (rc != EXIT_OK) return rc;
    json_t *body = json_pack("{s:s, s:s}", "user", OPERAND(o, 0), "password", pw);
    fail_t ignored = {0};
    if (body && s_read_password(&old, &ignored) == EXIT_OK &&
        json_object_set_new(body, "old_password", json_string(old)) != 0) {
        json_decref(body);
        body = NULL;
    }
    rc = s_simple(c, o, "change_password", body, NULL, f);
    s_wipe(pw);
    s_wipe(old);
    return rc;
}

static const col_t TOKEN_COLS[] = {
    {"ID", "token_id", false},    {"NAME", "name", false},
    {"OWNER", "owner", false},    {"CREATED", "created", false},
    {"EXPIRES", "expires", true}, {"LAST USED", "last_used", true},
};

/* A reply's rows under key as a table (or the reply as JSON). */
static int s_list(cairn_client_t *c, const opts_t *o, const char *verb, const char *key,
                  const col_t *cols, size_t ncols, fail_t *f)
{
    json_t *reply = NULL;
    int rc = s_acall(c, o, verb, json_object(), &reply, f);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(reply, false, f);
    if (rc == EXIT_OK && !o->json)
        rc = cli_table(json_object_get(reply, key), cols, ncols, f);
    json_decref(reply);
    return rc;
}

int cli_tokens_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_list(c, o, "list_tokens", "tokens", TOKEN_COLS,
                  sizeof TOKEN_COLS / sizeof *TOKEN_COLS, f);
}

/* tokens create NAME [EXPIRES_IN_SECONDS]: prints the secret (shown once). */
int cli_tokens_create(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *body = json_pack("{s:s}", "name", OPERAND(o, 0));
    if (body && NOPERANDS(o) > 1) {
        char *end;
        unsigned long long s = strtoull(OPERAND(o, 1), &end, 10);
        if (*end || end == OPERAND(o, 1)) {
            json_decref(body);
            return cli_bad_usage(f, "EXPIRES_IN is a number of seconds, not '%s'",
                                 OPERAND(o, 1));
        }
        if (json_object_set_new(body, "expires_in", json_integer((json_int_t)s)) != 0) {
            json_decref(body);
            body = NULL;
        }
    }
    return s_simple(c, o, "create_token", body, "token", f);
}

int cli_tokens_revoke(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_simple(c, o, "revoke_token", json_pack("{s:s}", "token_id", OPERAND(o, 0)),
                    NULL, f);
}

/* roles list: one line per role, its patterns joined. */
int cli_roles_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *reply = NULL;
    int rc = s_acall(c, o, "list_roles", json_object(), &reply, f);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(reply, false, f);
    size_t i, j;
    const json_t *r, *p;
    if (rc == EXIT_OK && !o->json)
        json_array_foreach(json_object_get(reply, "roles"), i, r)
        {
            printf("%-16s", json_string_value(json_object_get(r, "name")));
            json_array_foreach(json_object_get(r, "actions"), j, p)
                printf(" %s", json_string_value(p));
            json_array_foreach(json_object_get(r, "not_actions"), j, p)
                printf(" !%s", json_string_value(p));
            printf("\n");
        }
    json_decref(reply);
    return rc;
}

/* roles define NAME PATTERN...: a pattern written !P is a not_action. */
int cli_roles_define(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *acts = json_array(), *nots = json_array();
    for (int i = 1; acts && nots && i < NOPERANDS(o); i++) {
        const char *p = OPERAND(o, i);
        if (json_array_append_new(p[0] == '!' ? nots : acts,
                                  json_string(p[0] == '!' ? p + 1 : p)) != 0) {
            json_decref(acts);
            acts = NULL;
        }
    }
    json_t *body = acts && nots ? json_pack("{s:s, s:o, s:o}", "name", OPERAND(o, 0),
                                            "actions", acts, "not_actions", nots)
                                : NULL;
    if (!body) {
        json_decref(acts);
        json_decref(nots);
    }
    return s_simple(c, o, "define_role", body, NULL, f);
}

static int s_assignment(cairn_client_t *c, const opts_t *o, const char *verb, fail_t *f)
{
    json_t *body =
        json_pack("{s:s, s:s}", "principal", OPERAND(o, 0), "role", OPERAND(o, 1));
    if (body && NOPERANDS(o) > 2 &&
        json_object_set_new(body, "workspace", json_string(OPERAND(o, 2))) != 0) {
        json_decref(body);
        body = NULL;
    }
    return s_simple(c, o, verb, body, NULL, f);
}

int cli_roles_assign(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_assignment(c, o, "assign_role", f);
}

int cli_roles_unassign(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_assignment(c, o, "unassign_role", f);
}

static const col_t WS_COLS[] = {{"NAME", "name", false}, {"CREATED", "created", false}};

int cli_workspaces_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_list(c, o, "list_workspaces", "workspaces", WS_COLS,
                  sizeof WS_COLS / sizeof *WS_COLS, f);
}

int cli_workspaces_create(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_simple(c, o, "create_workspace", json_pack("{s:s}", "name", OPERAND(o, 0)),
                    NULL, f);
}

int cli_workspaces_delete(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_simple(c, o, "delete_workspace", json_pack("{s:s}", "name", OPERAND(o, 0)),
                    NULL, f);
}
