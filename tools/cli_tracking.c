/* The tracking and artifact commands of the `cairn` CLI (see cli.h).
 *
 * Tracking commands build their request bodies as JSON and go through
 * cli_call like every other command; lists are gathered page by page
 * (next_page_token) up to --max. `metrics history` prints each page as it
 * comes, so a series of millions of points is never held whole.
 *
 * Artifacts move with the C SDK's transfers (cairn/tracking.h:
 * cairn_log_artifact_ex / _fd, cairn_download_artifact_ex / _fd): chunked
 * msgpack put_artifact / get_artifact, hash-verified (an upload's SHA-256;
 * a download's with the server's algorithm, BLAKE2b-256 for an artifact
 * stored before SHA-256), a download renamed into place only when it
 * verifies. Here: choosing the paths, the
 * progress bar (the SDK's progress callback), and the output. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/tracking.h"
#include "cli.h"

/* The operands of a two-word command ("runs show RUN_ID": RUN_ID is 0). */

#define CHUNK CAIRN_ARTIFACT_CHUNK /* bytes per put_artifact / get_artifact */
#define MiB (1024.0 * 1024.0)
#define METRIC_COLS 3 /* latest metrics shown by `runs list` */

/* ---- small helpers ------------------------------------------------------------ */

/* Call svc.verb with a JSON body, which it steals (NULL: out of memory). */
static int s_tcall(cairn_client_t *c, const opts_t *o, const char *svc,
                   const char *verb, json_t *body, json_t **out, fail_t *f)
{
    if (!body) return cli_oom(f);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = cli_pack_json(body, &pk, f);
    json_decref(body);
    if (rc == EXIT_OK) rc = cli_call(c, o, svc, verb, &sb, out, f);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* obj[key] = v, stealing v; false when out of memory (v NULL included). */
static bool s_put(json_t *obj, const char *key, json_t *v)
{
    return v && json_object_set_new(obj, key, v) == 0;
}

static bool s_put_str(json_t *obj, const char *key, const char *s)
{
    return s_put(obj, key, json_string(s));
}

static const char *s_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static bool s_is_digits(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

static double s_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Control characters in server text become spaces, as in tables. */
static const char *s_clean(char *s)
{
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
    return s;
}

/* Epoch milliseconds as local time, "-" when not an integer. */
static void s_fmt_time(const json_t *ms, bool millis, char *buf, size_t size)
{
    if (!json_is_integer(ms)) {
        snprintf(buf, size, "-");
        return;
    }
    json_int_t v = json_integer_value(ms);
    time_t t = (time_t)(v / 1000 - (v % 1000 < 0));
    struct tm tm;
    if (!localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, v);
        return;
    }
    if (millis) {
        size_t n = strlen(buf);
        snprintf(buf + n, size - n, ".%03d", (int)((v % 1000 + 1000) % 1000));
    }
}

static void s_fmt_duration(int64_t ms, char *buf, size_t size)
{
    if (ms < 0)
        snprintf(buf, size, "-");
    else if (ms < 1000)
        snprintf(buf, size, "%" PRId64 "ms", ms);
    else if (ms < 60000)
        snprintf(buf, size, "%.1fs", (double)ms / 1e3);
    else if (ms < 3600000)
        snprintf(buf, size, "%" PRId64 "m%02" PRId64 "s", ms / 60000, ms / 1000 % 60);
    else if (ms < 86400000)
        snprintf(buf, size, "%" PRId64 "h%02" PRId64 "m", ms / 3600000,
                 ms / 60000 % 60);
    else
        snprintf(buf, size, "%" PRId64 "d%02" PRId64 "h", ms / 86400000,
                 ms / 3600000 % 24);
}

static void s_fmt_size(double n, char *buf, size_t size)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (n < 1024) {
        snprintf(buf, size, "%.0f B", n);
        return;
    }
    int u = -1;
    while (n >= 1024 && u < 4) {
        n /= 1024;
        u++;
    }
    snprintf(buf, size, "%.1f %s", n, units[u]);
}

/* A run's duration: end - start, or now - start while it runs. */
static void s_run_duration(const json_t *info, char *buf, size_t size)
{
    const json_t *start = json_object_get(info, "start_time");
    const json_t *end = json_object_get(info, "end_time");
    int64_t ms = -1;
    if (json_is_integer(start) && json_is_integer(end))
        ms = json_integer_value(end) - json_integer_value(start);
    else if (json_is_integer(start) && strcmp(s_str(info, "status"), "RUNNING") == 0)
        ms = (int64_t)cairn_wall_ms() - json_integer_value(start);
    s_fmt_duration(ms, buf, size);
}

/* A metric value for a table: %.6g (NaN and infinities come as strings). */
static json_t *s_short_value(const json_t *v)
{
    char buf[40];
    if (json_is_string(v)) return json_string(json_string_value(v));
    if (!json_is_number(v)) return json_string("-");
    snprintf(buf, sizeof buf, "%.6g", json_number_value(v));
    return json_string(buf);
}

json_t *cli_tags(const opts_t *o, int *rc, fail_t *f)
{
    json_t *tags = json_array();
    if (!tags) {
        *rc = cli_oom(f);
        return NULL;
    }
    for (int i = 0; i < o->ntags; i++) {
        const char *eq = strchr(o->tags[i], '=');
        if (!eq || eq == o->tags[i]) {
            *rc = cli_bad_usage(f, "--tag wants KEY=VALUE, not '%s'", o->tags[i]);
            json_decref(tags);
            return NULL;
        }
        json_t *t = json_pack("{s:s%, s:s}", "key", o->tags[i],
                              (size_t)(eq - o->tags[i]), "value", eq + 1);
        if (json_array_append_new(tags, t) != 0) {
            *rc = cli_oom(f);
            json_decref(tags);
            return NULL;
        }
    }
    *rc = EXIT_OK;
    return tags;
}

/* Print a note for people when --max cut a list short. */
static void s_note_max(const opts_t *o, bool more)
{
    if (more && !o->json) printf("(stopped at --max %" PRIu64 ")\n", o->max);
}

/* ---- paging ------------------------------------------------------------------- */

typedef int (*page_fn)(void *ctx, json_t *items, fail_t *f);

typedef struct pager {
    const char *svc, *verb, *key; /* key: the list in each reply */
    uint64_t page_max;            /* max_results of one page */
    page_fn page;                 /* called with each page's items */
    void *ctx;
    json_t *last;  /* the last reply (owned) */
    uint64_t seen; /* items so far */
    bool more;     /* stopped at --max while the server had more pages */
} pager_t;

/* Call p->verb with body (borrowed; its max_results and page_token are
 * set here) page after page until the server gives no next_page_token or
 * --max items arrived. */
static int s_page_through(cairn_client_t *c, const opts_t *o, pager_t *p, json_t *body,
                          fail_t *f)
{
    const char *token = NULL; /* in p->last */
    for (;;) {
        uint64_t want = p->page_max;
        if (o->max && o->max - p->seen < want) want = o->max - p->seen;
        if (!s_put(body, "max_results", json_integer((json_int_t)want)) ||
            (token && !s_put_str(body, "page_token", token)))
            return cli_oom(f);
        json_t *reply = NULL;
        int rc = s_tcall(c, o, p->svc, p->verb, json_incref(body), &reply, f);
        if (rc != EXIT_OK) return rc;
        json_decref(p->last);
        p->last = reply;
        json_t *items = json_object_get(reply, p->key);
        if (!json_is_array(items))
            return cli_fail(f, EXIT_INTERNAL, "the reply of %s.%s has no '%s' list",
                            p->svc, p->verb, p->key);
        while (json_array_size(items) > want) json_array_remove(items, want);
        size_t n = json_array_size(items);
        p->seen += n;
        if ((rc = p->page(p->ctx, items, f)) != EXIT_OK) return rc;
        token = json_string_value(json_object_get(reply, "next_page_token"));
        if (!token || !*token || n == 0) return EXIT_OK;
        if (o->max && p->seen >= o->max) {
            p->more = true;
            return EXIT_OK;
        }
    }
}

static int s_collect(void *ctx, json_t *items, fail_t *f)
{
    return json_array_extend(ctx, items) == 0 ? EXIT_OK : cli_oom(f);
}

/* Every page's items in one array (*all, a new reference). */
static int s_gather(cairn_client_t *c, const opts_t *o, pager_t *p, json_t *body,
                    json_t **all, fail_t *f)
{
    *all = json_array();
    if (!*all || !body) {
        json_decref(body);
        return cli_oom(f);
    }
    p->page = s_collect;
    p->ctx = *all;
    int rc = s_page_through(c, o, p, body, f);
    json_decref(body);
    return rc;
}

/* ---- experiments ------------------------------------------------------------- */

/* The experiment named by ref, an id or a name: *exp a new reference. An id
 * that names none is tried as a name; when that fails too, the error is
 * the one for the id. */
static int s_experiment(cairn_client_t *c, const opts_t *o, const char *ref,
                        json_t **exp, fail_t *f)
{
    json_t *reply = NULL;
    int rc = EXIT_SERVER;
    fail_t by_id = {.code = EXIT_OK};
    if (s_is_digits(ref)) {
        rc = s_tcall(c, o, "tracking", "get_experiment",
                     json_pack("{s:s}", "experiment_id", ref), &reply, &by_id);
        if (rc != EXIT_OK && !(rc == EXIT_SERVER && by_id.st == CAIRN_ST_NOT_FOUND)) {
            *f = by_id;
            return rc;
        }
    }
    if (rc != EXIT_OK) {
        rc = s_tcall(c, o, "tracking", "get_experiment_by_name",
                     json_pack("{s:s}", "experiment_name", ref), &reply, f);
        if (rc == EXIT_SERVER && f->st == CAIRN_ST_NOT_FOUND && by_id.code != EXIT_OK)
            *f = by_id;
    }
    if (rc != EXIT_OK) return rc;
    *exp = json_incref(json_object_get(reply, "experiment"));
    json_decref(reply);
    if (!json_is_object(*exp) ||
        !json_is_string(json_object_get(*exp, "experiment_id"))) {
        json_decref(*exp);
        *exp = NULL;
        return cli_fail(f, EXIT_INTERNAL,
                        "the reply for experiment '%s' has no experiment_id", ref);
    }
    return EXIT_OK;
}

/* Its id, a heap string. */
static int s_experiment_id(cairn_client_t *c, const opts_t *o, const char *ref,
                           char **id, fail_t *f)
{
    json_t *exp = NULL;
    int rc = s_experiment(c, o, ref, &exp, f);
    if (rc != EXIT_OK) return rc;
    *id = strdup(s_str(exp, "experiment_id"));
    json_decref(exp);
    return *id ? EXIT_OK : cli_oom(f);
}

static const char *s_view(const opts_t *o)
{
    return o->all ? "ALL" : o->deleted ? "DELETED_ONLY" : "ACTIVE_ONLY";
}

/* "k=v, k=v" of a [{key, value}] list. */
static json_t *s_kv_joined(const json_t *list)
{
    size_t i, cap = 1;
    const json_t *t;
    json_array_foreach(list, i, t) cap +=
        strlen(s_str(t, "key")) + strlen(s_str(t, "value")) + 3;
    char *buf = malloc(cap), *p = buf;
    if (!buf) return NULL;
    *p = '\0';
    json_array_foreach(list, i, t)
    {
        p += sprintf(p, "%s%s=%s", p == buf ? "" : ", ", s_str(t, "key"),
                     s_str(t, "value"));
    }
    json_t *j = json_string(buf);
    free(buf);
    return j;
}

static const col_t EXPERIMENT_COLS[] = {
    {"ID", "id", false},           {"NAME", "name", false}, {"STAGE", "stage", false},
    {"CREATED", "created", false}, {"TAGS", "tags", false},
};

static int s_experiments_table(const json_t *exps, fail_t *f)
{
    json_t *rows = json_array();
    size_t i;
    const json_t *e;
    bool ok = rows != NULL;
    json_array_foreach(exps, i, e)
    {
        char when[40];
        json_t *row = json_object();
        s_fmt_time(json_object_get(e, "creation_time"), false, when, sizeof when);
        ok = ok && row && s_put_str(row, "id", s_str(e, "experiment_id")) &&
             s_put_str(row, "name", s_str(e, "name")) &&
             s_put_str(row, "stage", s_str(e, "lifecycle_stage")) &&
             s_put_str(row, "created", when) &&
             s_put(row, "tags", s_kv_joined(json_object_get(e, "tags"))) &&
             json_array_append(rows, row) == 0;
        json_decref(row);
    }
    int rc = ok ? cli_table(rows, EXPERIMENT_COLS,
                            sizeof EXPERIMENT_COLS / sizeof EXPERIMENT_COLS[0], f)
                : cli_oom(f);
    json_decref(rows);
    return rc;
}

int cli_experiments_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *body = json_pack("{s:s}", "view_type", s_view(o)), *all = NULL;
    if (body && o->filter && !s_put_str(body, "filter", o->filter)) {
        json_decref(body);
        body = NULL;
    }
    pager_t p = {
        "tracking", "search_experiments", "experiments", 1000, NULL, NULL, NULL, 0,
        false};
    int rc = s_gather(c, o, &p, body, &all, f);
    if (rc == EXIT_OK && o->json) {
        json_t *out = json_pack("{s:O}", "experiments", all);
        rc = out ? cli_print_json(out, false, f) : cli_oom(f);
        json_decref(out);
    } else if (rc == EXIT_OK) {
        rc = s_experiments_table(all, f);
        s_note_max(o, p.more);
    }
    json_decref(all);
    json_decref(p.last);
    return rc;
}

int cli_experiments_create(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    int rc = EXIT_OK;
    json_t *tags = cli_tags(o, &rc, f), *reply = NULL;
    if (!tags) return rc;
    rc = s_tcall(c, o, "tracking", "create_experiment",
                 json_pack("{s:s, s:o}", "name", OPERAND(o, 0), "tags", tags), &reply,
                 f);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(reply, false, f);
    if (rc == EXIT_OK && !o->json) printf("%s\n", s_str(reply, "experiment_id"));
    json_decref(reply);
    return rc;
}

static int s_experiment_stage(cairn_client_t *c, const opts_t *o, const char *verb,
                              const char *done, fail_t *f)
{
    char *id = NULL;
    json_t *reply = NULL;
    const char *ref = OPERAND(o, 0);
    /* An id goes as it is (a deleted experiment is still found by id). */
    int rc = s_is_digits(ref) ? ((id = strdup(ref)) ? EXIT_OK : cli_oom(f))
                              : s_experiment_id(c, o, ref, &id, f);
    if (rc == EXIT_OK)
        rc = s_tcall(c, o, "tracking", verb, json_pack("{s:s}", "experiment_id", id),
                     &reply, f);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(reply, false, f);
    if (rc == EXIT_OK && !o->json) printf("experiment %s %s\n", id, done);
    json_decref(reply);
    free(id);
    return rc;
}

int cli_experiments_delete(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_experiment_stage(c, o, "delete_experiment", "deleted", f);
}

int cli_experiments_restore(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_experiment_stage(c, o, "restore_experiment", "restored", f);
}

/* ---- runs ---------------------------------------------------------------------- */

/* Up to METRIC_COLS metric keys, those most runs have (then by name). */
static json_t *s_top_metrics(const json_t *runs)
{
    json_t *count = json_object(), *top = json_array();
    size_t i, j;
    const json_t *r, *m;
    if (!count || !top) goto fail;
    json_array_foreach(runs, i, r)
    {
        json_array_foreach(json_object_get(json_object_get(r, "data"), "metrics"), j, m)
        {
            const char *k = s_str(m, "key");
            json_int_t n = json_integer_value(json_object_get(count, k));
            if (json_object_set_new(count, k, json_integer(n + 1)) != 0) goto fail;
        }
    }
    while (json_array_size(top) < METRIC_COLS && json_object_size(count) > 0) {
        const char *best = NULL, *k;
        json_int_t best_n = 0;
        json_t *v;
        json_object_foreach(count, k, v)
        {
            json_int_t n = json_integer_value(v);
            if (!best || n > best_n || (n == best_n && strcmp(k, best) < 0)) {
                best = k;
                best_n = n;
            }
        }
        if (json_array_append_new(top, json_string(best)) != 0) goto fail;
        json_object_del(count, best);
    }
    json_decref(count);
    return top;
fail:
    json_decref(count);
    json_decref(top);
    return NULL;
}

static json_t *s_metric_of(const json_t *run, const char *key)
{
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(json_object_get(run, "data"), "metrics"), i, m)
    {
        if (strcmp(s_str(m, "key"), key) == 0) return json_object_get(m, "value");
    }
    return NULL;
}

/* One row of the runs table; metric cells under "m:" + their key. */
static json_t *s_run_row(const json_t *run, const json_t *top)
{
    const json_t *info = json_object_get(run, "info");
    char start[40], dur[40];
    s_fmt_time(json_object_get(info, "start_time"), false, start, sizeof start);
    s_run_duration(info, dur, sizeof dur);
    json_t *row = json_object();
    bool ok = row && s_put_str(row, "run_id", s_str(info, "run_id")) &&
              s_put_str(row, "name", s_str(info, "run_name")) &&
              s_put_str(row, "experiment", s_str(info, "experiment_id")) &&
              s_put_str(row, "status", s_str(info, "status")) &&
              s_put_str(row, "start", start) && s_put_str(row, "duration", dur);
    size_t i;
    const json_t *k;
    json_array_foreach(top, i, k)
    {
        char key[300];
        snprintf(key, sizeof key, "m:%s", json_string_value(k));
        const json_t *v = s_metric_of(run, json_string_value(k));
        ok = ok && s_put(row, key, v ? s_short_value(v) : json_string("-"));
    }
    if (ok) return row;
    json_decref(row);
    return NULL;
}

static int s_runs_table(const json_t *runs, bool with_experiment, fail_t *f)
{
    json_t *top = s_top_metrics(runs), *rows = json_array();
    char keys[METRIC_COLS][300];
    col_t cols[MAX_COLS];
    size_t n = 0;
    cols[n++] = (col_t){"RUN_ID", "run_id", false};
    cols[n++] = (col_t){"NAME", "name", false};
    if (with_experiment) cols[n++] = (col_t){"EXPERIMENT", "experiment", false};
    cols[n++] = (col_t){"STATUS", "status", false};
    cols[n++] = (col_t){"START", "start", false};
    cols[n++] = (col_t){"DURATION", "duration", false};
    size_t i;
    const json_t *v;
    json_array_foreach(top, i, v)
    {
        snprintf(keys[i], sizeof keys[i], "m:%s", json_string_value(v));
        cols[n++] = (col_t){json_string_value(v), keys[i], false};
    }
    bool ok = top && rows;
    json_array_foreach(runs, i, v) ok =
        ok && json_array_append_new(rows, s_run_row(v, top)) == 0;
    int rc = ok ? cli_table(rows, cols, n, f) : cli_oom(f);
    json_decref(rows);
    json_decref(top);
    return rc;
}

_Static_assert(6 + METRIC_COLS <= MAX_COLS, "MAX_COLS");

/* search_runs over experiment ids (a JSON array, stolen) and print the runs. */
static int s_search_runs(cairn_client_t *c, const opts_t *o, json_t *ids, fail_t *f)
{
    json_t *body =
        json_pack("{s:o, s:s}", "experiment_ids", ids, "run_view_type", s_view(o));
    json_t *order = json_array(), *all = NULL;
    bool ok = body && order;
    for (int i = 0; ok && i < o->norder; i++)
        ok = json_array_append_new(order, json_string(o->order_by[i])) == 0;
    if (ok && o->norder) ok = s_put(body, "order_by", json_incref(order));
    if (ok && o->filter) ok = s_put_str(body, "filter", o->filter);
    json_decref(order);
    if (!ok) {
        json_decref(body);
        body = NULL;
    }
    size_t nexp = json_array_size(ids);
    pager_t p = {"tracking", "search_runs", "runs", 1000, NULL, NULL, NULL, 0, false};
    int rc = s_gather(c, o, &p, body, &all, f);
    if (rc == EXIT_OK && o->json) {
        json_t *out = json_pack("{s:O}", "runs", all);
        rc = out ? cli_print_json(out, false, f) : cli_oom(f);
        json_decref(out);
    } else if (rc == EXIT_OK) {
        rc = s_runs_table(all, nexp > 1, f);
        s_note_max(o, p.more);
    }
    json_decref(all);
    json_decref(p.last);
    return rc;
}

int cli_runs_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    char *id = NULL;
    int rc = s_experiment_id(c, o, OPERAND(o, 0), &id, f);
    if (rc == EXIT_OK) rc = s_search_runs(c, o, json_pack("[s]", id), f);
    free(id);
    return rc;
}

int cli_runs_search(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *ids = json_array();
    int rc = ids ? EXIT_OK : cli_oom(f);
    for (int i = 0; rc == EXIT_OK && i < NOPERANDS(o); i++) {
        char *id = NULL;
        rc = s_experiment_id(c, o, OPERAND(o, i), &id, f);
        if (rc == EXIT_OK && json_array_append_new(ids, json_string(id)) != 0)
            rc = cli_oom(f);
        free(id);
    }
    if (rc == EXIT_OK) return s_search_runs(c, o, ids, f);
    json_decref(ids);
    return rc;
}

/* "label  value" lines, labels aligned. */
static void s_field(const char *label, const char *value)
{
    char *v = strdup(value);
    printf("%-12s  %s\n", label, v ? s_clean(v) : "?");
    free(v);
}

static int s_kv_section(const char *title, const json_t *list, const col_t *cols,
                        size_t ncols, fail_t *f)
{
    if (json_array_size(list) == 0) {
        printf("\n%s: none\n", title);
        return EXIT_OK;
    }
    printf("\n%s:\n", title);
    return cli_table(list, cols, ncols, f);
}

static const col_t KV_COLS[] = {{"KEY", "key", false}, {"VALUE", "value", false}};
static const col_t METRIC_SHOW_COLS[] = {
    {"KEY", "key", false},
    {"VALUE", "value", false},
    {"STEP", "step", false},
    {"TIMESTAMP", "time", false},
};

static int s_show_run(cairn_client_t *c, const opts_t *o, const json_t *run, fail_t *f)
{
    const json_t *info = json_object_get(run, "info"),
                 *data = json_object_get(run, "data");
    char buf[600];
    s_field("run_id", s_str(info, "run_id"));
    s_field("name", s_str(info, "run_name"));
    /* the experiment's name, when it can be had */
    json_t *exp = NULL;
    fail_t ignored = {.code = EXIT_OK};
    const char *eid = s_str(info, "experiment_id");
    if (s_tcall(c, o, "tracking", "get_experiment",
                json_pack("{s:s}", "experiment_id", eid), &exp, &ignored) == EXIT_OK)
        snprintf(buf, sizeof buf, "%s (%s)", eid,
                 s_str(json_object_get(exp, "experiment"), "name"));
    else
        snprintf(buf, sizeof buf, "%s", eid);
    json_decref(exp);
    s_field("experiment", buf);
    s_field("status", s_str(info, "status"));
    s_fmt_time(json_object_get(info, "start_time"), false, buf, sizeof buf);
    s_field("start", buf);
    s_fmt_time(json_object_get(info, "end_time"), false, buf, sizeof buf);
    s_field("end", buf);
    s_run_duration(info, buf, sizeof buf);
    s_field("duration", buf);
    s_field("stage", s_str(info, "lifecycle_stage"));
    s_field("user", s_str(info, "user_id"));
    if (*s_str(info, "parent_run_id")) s_field("parent", s_str(info, "parent_run_id"));
    s_field("artifact_uri", s_str(info, "artifact_uri"));

    int rc = s_kv_section("params", json_object_get(data, "params"), KV_COLS, 2, f);
    json_t *metrics = json_array();
    size_t i;
    const json_t *m;
    bool ok = metrics != NULL;
    json_array_foreach(json_object_get(data, "metrics"), i, m)
    {
        json_t *row = json_deep_copy(m);
        s_fmt_time(json_object_get(m, "timestamp"), true, buf, sizeof buf);
        ok = ok && row && s_put_str(row, "time", buf) &&
             json_array_append(metrics, row) == 0;
        json_decref(row);
    }
    if (rc == EXIT_OK && !ok) rc = cli_oom(f);
    if (rc == EXIT_OK)
        rc = s_kv_section("metrics (latest)", metrics, METRIC_SHOW_COLS, 4, f);
    json_decref(metrics);
    if (rc == EXIT_OK)
        rc = s_kv_section("tags", json_object_get(data, "tags"), KV_COLS, 2, f);
    return rc;
}

int cli_runs_show(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *reply = NULL;
    int rc = s_tcall(c, o, "tracking", "get_run",
                     json_pack("{s:s}", "run_id", OPERAND(o, 0)), &reply, f);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(reply, false, f);
    if (rc == EXIT_OK && !o->json) {
        const json_t *run = json_object_get(reply, "run");
        if (!json_is_object(json_object_get(run, "info")))
            rc = cli_fail(f, EXIT_INTERNAL,
                          "the reply of tracking.get_run has no run.info");
        else
            rc = s_show_run(c, o, run, f);
    }
    json_decref(reply);
    return rc;
}

int cli_runs_create(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    int rc = EXIT_OK;
    char *id = NULL;
    json_t *tags = cli_tags(o, &rc, f), *reply = NULL, *body = NULL;
    if (!tags) return rc;
    rc = s_experiment_id(c, o, OPERAND(o, 0), &id, f);
    if (rc == EXIT_OK) {
        body = json_pack("{s:s, s:O}", "experiment_id", id, "tags", tags);
        if (body && o->name && !s_put_str(body, "run_name", o->name)) {
            json_decref(body);
            body = NULL;
        }
        rc = s_tcall(c, o, "tracking", "create_run", body, &reply, f);
    }
    if (rc == EXIT_OK && o->json) rc = cli_print_json(reply, false, f);
    if (rc == EXIT_OK && !o->json)
        printf("%s\n",
               s_str(json_object_get(json_object_get(reply, "run"), "info"), "run_id"));
    json_decref(reply);
    json_decref(tags);
    free(id);
    return rc;
}

int cli_runs_end(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    static const char *const ends[] = {"FINISHED", "FAILED", "KILLED"};
    const char *status = NULL;
    for (size_t i = 0; i < 3; i++)
        if (!o->status || strcasecmp(o->status, ends[i]) == 0) {
            status = ends[i];
            break;
        }
    if (!status)
        return cli_bad_usage(f, "--status wants FINISHED, FAILED or KILLED, not '%s'",
                             o->status);
    json_t *reply = NULL;
    int rc = s_tcall(c, o, "tracking", "update_run",
                     json_pack("{s:s, s:s, s:I}", "run_id", OPERAND(o, 0), "status",
                               status, "end_time", (json_int_t)cairn_wall_ms()),
                     &reply, f);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(reply, false, f);
    if (rc == EXIT_OK && !o->json) printf("run %s ended: %s\n", OPERAND(o, 0), status);
    json_decref(reply);
    return rc;
}

/* ---- metrics and params ---------------------------------------------------- */

/* Prints each page of get_metric_history as it arrives: JSON as one
 * {"metrics": [...]} document, or a table whose widths the first page sets. */
typedef struct history {
    const opts_t *o;
    bool started;
    int wstep, wtime;
} history_t;

static int s_history_page(void *ctx, json_t *items, fail_t *f)
{
    history_t *h = ctx;
    size_t i;
    const json_t *m;
    char when[40], step[32];
    if (!h->started) {
        h->started = true;
        if (h->o->json) {
            fputs("{\"metrics\":[", stdout);
        } else {
            h->wstep = 4;
            h->wtime = 9;
            json_array_foreach(items, i, m)
            {
                int n = snprintf(step, sizeof step, "%" JSON_INTEGER_FORMAT,
                                 json_integer_value(json_object_get(m, "step")));
                if (n > h->wstep) h->wstep = n;
                s_fmt_time(json_object_get(m, "timestamp"), true, when, sizeof when);
                if ((int)strlen(when) > h->wtime) h->wtime = (int)strlen(when);
            }
            printf("%-*s  %-*s  %s\n", h->wstep, "STEP", h->wtime, "TIMESTAMP",
                   "VALUE");
        }
    } else if (h->o->json && json_array_size(items) > 0) {
        putchar(',');
    }
    json_array_foreach(items, i, m)
    {
        if (h->o->json) {
            char *text = cli_dumps_compact(m);
            if (!text) return cli_oom(f);
            printf("%s%s", i ? "," : "", text);
            free(text);
            continue;
        }
        const json_t *v = json_object_get(m, "value");
        char *value =
            json_is_string(v) ? strdup(json_string_value(v)) : cli_dumps_compact(v);
        if (!value) return cli_oom(f);
        s_fmt_time(json_object_get(m, "timestamp"), true, when, sizeof when);
        printf("%-*" JSON_INTEGER_FORMAT "  %-*s  %s\n", h->wstep,
               json_integer_value(json_object_get(m, "step")), h->wtime, when,
               s_clean(value));
        free(value);
    }
    return ferror(stdout) ? cli_fail(f, EXIT_INTERNAL, "cannot write the output")
                          : EXIT_OK;
}

int cli_metrics_history(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    history_t h = {o, false, 0, 0};
    pager_t p = {
        "tracking", "get_metric_history", "metrics", 25000, s_history_page, &h, NULL, 0,
        false};
    json_t *body =
        json_pack("{s:s, s:s}", "run_id", OPERAND(o, 0), "key", OPERAND(o, 1));
    int rc = body ? s_page_through(c, o, &p, body, f) : cli_oom(f);
    if (rc == EXIT_OK && h.started && o->json) fputs("]}\n", stdout);
    if (rc == EXIT_OK) s_note_max(o, p.more);
    json_decref(body);
    json_decref(p.last);
    return rc;
}

int cli_metrics_log(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    const char *text = OPERAND(o, 2);
    char *end = NULL;
    double v = strtod(text, &end);
    if (!*text || *end)
        return cli_bad_usage(f, "the metric value must be a number, not '%s'", text);
    json_t *value = isnan(v)   ? json_string("NaN")
                    : isinf(v) ? json_string(v > 0 ? "Infinity" : "-Infinity")
                               : json_real(v);
    json_t *body = json_pack("{s:s, s:s, s:o}", "run_id", OPERAND(o, 0), "key",
                             OPERAND(o, 1), "value", value);
    if (o->step) {
        errno = 0;
        long long step = strtoll(o->step, &end, 10);
        if (!*o->step || *end || errno == ERANGE) {
            json_decref(body);
            return cli_bad_usage(f, "--step wants an integer, not '%s'", o->step);
        }
        if (body && !s_put(body, "step", json_integer((json_int_t)step))) {
            json_decref(body);
            body = NULL;
        }
    }
    json_t *reply = NULL;
    int rc = s_tcall(c, o, "tracking", "log_metric", body, &reply, f);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(reply, false, f);
    json_decref(reply);
    return rc;
}

int cli_params_log(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *reply = NULL;
    int rc = s_tcall(c, o, "tracking", "log_param",
                     json_pack("{s:s, s:s, s:s}", "run_id", OPERAND(o, 0), "key",
                               OPERAND(o, 1), "value", OPERAND(o, 2)),
                     &reply, f);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(reply, false, f);
    json_decref(reply);
    return rc;
}

/* ---- artifacts: listing ------------------------------------------------------- */

static const col_t ARTIFACT_COLS[] = {{"PATH", "path", false}, {"SIZE", "size", false}};

static int s_artifacts_table(const json_t *files, fail_t *f)
{
    json_t *rows = json_array();
    size_t i;
    const json_t *e;
    bool ok = rows != NULL;
    json_array_foreach(files, i, e)
    {
        char path[1100], size[40] = "-";
        bool dir = json_is_true(json_object_get(e, "is_dir"));
        snprintf(path, sizeof path, "%s%s", s_str(e, "path"), dir ? "/" : "");
        const json_t *n = json_object_get(e, "file_size");
        if (json_is_integer(n))
            s_fmt_size((double)json_integer_value(n), size, sizeof size);
        json_t *row = json_pack("{s:s, s:s}", "path", path, "size", size);
        ok = ok && json_array_append_new(rows, row) == 0;
    }
    int rc = ok ? cli_table(rows, ARTIFACT_COLS, 2, f) : cli_oom(f);
    json_decref(rows);
    return rc;
}

int cli_artifacts_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *body = json_pack("{s:s}", "run_id", OPERAND(o, 0)), *all = NULL;
    if (body && NOPERANDS(o) > 1 && !s_put_str(body, "path", OPERAND(o, 1))) {
        json_decref(body);
        body = NULL;
    }
    pager_t p = {"artifacts", "list_artifacts", "files", 10000, NULL, NULL, NULL, 0,
                 false};
    int rc = s_gather(c, o, &p, body, &all, f);
    if (rc == EXIT_OK && o->json) {
        json_t *out = json_pack("{s:s, s:O}", "root_uri", s_str(p.last, "root_uri"),
                                "files", all);
        rc = out ? cli_print_json(out, false, f) : cli_oom(f);
        json_decref(out);
    } else if (rc == EXIT_OK) {
        rc = s_artifacts_table(all, f);
        s_note_max(o, p.more);
    }
    json_decref(all);
    json_decref(p.last);
    return rc;
}

/* ---- artifacts: transfers --------------------------------------------------- */

/* A progress line on stderr: bytes, percent (when the total is known), MiB/s.
 * It is the SDK's progress callback (cairn_progress_fn). */
typedef struct progress {
    const opts_t *o;
    bool started, on, drawn;
    int64_t total; /* -1: unknown (a pipe) */
    double t0, last;
} progress_t;

static void s_progress_start(progress_t *p, const opts_t *o)
{
    memset(p, 0, sizeof *p);
    p->o = o;
    p->t0 = p->last = s_clock_ms();
}

/* The total is known from the first callback, or, here, before it. */
static void s_progress_total(progress_t *p, int64_t total)
{
    p->started = true;
    p->total = total;
    p->on = p->o->progress ||
            (isatty(STDERR_FILENO) && (total < 0 || total > (int64_t)CHUNK));
}

static void s_progress(progress_t *p, uint64_t done, bool final)
{
    if (!p->on) return;
    double now = s_clock_ms();
    if (!final && p->drawn && now - p->last < 100) return;
    p->last = now;
    double secs = (now - p->t0) / 1e3;
    double rate = secs > 0 ? (double)done / MiB / secs : 0;
    char have[32], all[32];
    s_fmt_size((double)done, have, sizeof have);
    if (p->total >= 0) {
        double pct = p->total ? 100.0 * (double)done / (double)p->total : 100.0;
        char bar[31];
        int fill = (int)(pct * 30 / 100);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[30] = '\0';
        s_fmt_size((double)p->total, all, sizeof all);
        fprintf(stderr, "\r[%s] %5.1f%%  %s / %s  %.1f MiB/s  ", bar, pct, have, all,
                rate);
    } else {
        fprintf(stderr, "\r%s  %.1f MiB/s  ", have, rate);
    }
    if (final) fputc('\n', stderr);
    p->drawn = !final;
    fflush(stderr);
}

/* cairn_progress_fn: the SDK's last call of a transfer has done == total. */
static void s_on_progress(void *arg, uint64_t done, uint64_t total)
{
    progress_t *p = arg;
    if (!p->started)
        s_progress_total(p, total == CAIRN_SIZE_UNKNOWN ? -1 : (int64_t)total);
    s_progress(p, done, done == total);
}

/* End a line left open by a failed transfer, before the error is printed. */
static void s_progress_abort(progress_t *p)
{
    if (p->on && p->drawn) fputc('\n', stderr);
    p->drawn = false;
}

/* A transfer's error as the CLI's failure: the local file's problems are
 * usage errors, a reply without a sane body or bytes that do not verify are
 * internal ones, no reply is unreachable, and the server's errors are its. */
static int s_fail_transfer(const opts_t *o, const cairn_err_t *e, fail_t *f)
{
    if (!strcmp(e->code, CAIRN_ERR_LOCAL_FILE))
        return cli_fail(f, EXIT_USAGE, "%s", e->msg);
    if (!strcmp(e->code, CAIRN_ERR_LOCAL_IO) || !strcmp(e->code, CAIRN_ERR_BAD_REPLY) ||
        !strcmp(e->code, CAIRN_ERR_CORRUPT) || !strcmp(e->code, CAIRN_E_OUT_OF_MEMORY))
        return cli_fail(f, EXIT_INTERNAL, "%s", e->msg);
    /* A transfer (upload or download) that retried a chunk until its budget
     * ran out (503s or no replies) says so, and why, itself. */
    if ((e->st == CAIRN_ST_TIMEOUT || e->st == CAIRN_ST_UNAVAILABLE) &&
        !strncmp(e->msg, "gave up", 7))
        return cli_fail(f, EXIT_UNREACHABLE, "%s (cairnd at %s)", e->msg, o->endpoint);
    if (e->st == CAIRN_ST_TIMEOUT && !strcmp(e->code, CAIRN_E_DEADLINE))
        return cli_fail(f, EXIT_UNREACHABLE,
                        "cannot reach cairnd: no reply within %" PRIu32
                        " ms (is cairnd running at %s?)",
                        o->ttl_ms ? o->ttl_ms : 30000, o->endpoint);
    if (e->st == CAIRN_ST_UNAVAILABLE && !strcmp(e->code, CAIRN_E_UNAVAILABLE))
        return cli_fail(f, EXIT_UNREACHABLE,
                        "cannot reach cairnd: %s (is cairnd running at %s?)", e->msg,
                        o->endpoint);
    int rc = !strcmp(e->code, CAIRN_ERR_CHANGED)
                 ? cli_fail(f, EXIT_SERVER, "%s", e->msg)
                 : cli_fail(f, EXIT_SERVER, "%s (%d): %s", e->code, e->st, e->msg);
    f->st = e->st;
    return rc;
}

static const char *s_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Print the committed artifact (checked by the SDK against what was sent). */
static int s_upload_done(const opts_t *o, const char *run_id, const char *local,
                         const cairn_artifact_info_t *a, fail_t *f)
{
    if (o->json) {
        json_t *out =
            json_pack("{s:{s:s, s:I, s:s, s:s}}", "artifact", "path", a->path, "size",
                      (json_int_t)a->size, "hash", a->hash, "hash_alg", "sha256");
        int rc = out ? cli_print_json(out, false, f) : cli_oom(f);
        json_decref(out);
        return rc;
    }
    char human[32];
    s_fmt_size((double)a->size, human, sizeof human);
    /* The SDK checks every upload against its SHA-256 (a server that names
     * another algorithm fails it). */
    printf("uploaded %s to run %s as %s (%s, sha256 %s)\n", local, run_id, a->path,
           human, a->hash);
    return EXIT_OK;
}

int cli_artifacts_upload(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    const char *local = OPERAND(o, 1), *dest = NOPERANDS(o) > 2 ? OPERAND(o, 2) : NULL;
    bool from_stdin = strcmp(local, "-") == 0;
    if (from_stdin && !dest)
        return cli_bad_usage(f, "uploading stdin ('-') needs a PATH");
    /* PATH: as given; ending in '/', a directory for the file's name. */
    const char *base = s_basename(local);
    size_t dlen = dest ? strlen(dest) : 0;
    bool into_dir = dlen == 0 || dest[dlen - 1] == '/';
    if (into_dir && !*base) return cli_bad_usage(f, "'%s' names no file", local);
    char *path = malloc(dlen + strlen(base) + 1);
    if (!path) return cli_oom(f);
    sprintf(path, "%s%s", dest ? dest : "", into_dir ? base : "");

    progress_t pg;
    s_progress_start(&pg, o);
    cairn_artifact_info_t info = {0};
    cairn_err_t err = {0};
    int rc;
    if (from_stdin) {
        /* a pipe's size is never known, not even at the end */
        struct stat sbuf;
        if (fstat(STDIN_FILENO, &sbuf) == 0 && !S_ISREG(sbuf.st_mode))
            s_progress_total(&pg, -1);
        rc = cairn_log_artifact_fd(c, OPERAND(o, 0), STDIN_FILENO, path, s_on_progress,
                                   &pg, &info, &err);
    } else {
        rc = cairn_log_artifact_ex(c, OPERAND(o, 0), local, path, s_on_progress, &pg,
                                   &info, &err);
    }
    if (rc != 0) {
        s_progress_abort(&pg);
        rc = s_fail_transfer(o, &err, f);
    } else {
        rc = s_upload_done(o, OPERAND(o, 0), from_stdin ? "stdin" : local, &info, f);
    }
    free(info.path);
    free(path);
    return rc;
}

/* Where the file goes: FILE, FILE/<name> when FILE is a directory, or
 * <name> in the current directory; a heap string. */
static char *s_dest(const char *local, const char *path)
{
    const char *base = s_basename(path);
    struct stat st;
    if (local && !(stat(local, &st) == 0 && S_ISDIR(st.st_mode))) return strdup(local);
    const char *dir = local ? local : ".";
    char *out = malloc(strlen(dir) + strlen(base) + 2);
    if (out) sprintf(out, "%s/%s", dir, base);
    return out;
}

static int s_download_done(const opts_t *o, const char *run_id, const char *dest,
                           const cairn_artifact_info_t *a, fail_t *f)
{
    if (o->json) {
        json_t *out = json_pack("{s:s, s:s, s:I, s:s}", "path", a->path, "file", dest,
                                "size", (json_int_t)a->size, "hash", a->hash);
        int rc = out ? cli_print_json(out, false, f) : cli_oom(f);
        json_decref(out);
        return rc;
    }
    char human[32];
    s_fmt_size((double)a->size, human, sizeof human);
    /* The algorithm is the server's (cairn_artifact_info_t does not carry it:
     * a new field would change the struct callers allocate). */
    printf("downloaded %s from run %s to %s (%s, hash %s verified)\n", a->path, run_id,
           dest, human, a->hash);
    return EXIT_OK;
}

int cli_artifacts_download(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    const char *local = NOPERANDS(o) > 2 ? OPERAND(o, 2) : NULL;
    const char *run_id = OPERAND(o, 0), *path = OPERAND(o, 1);
    bool to_stdout = local && strcmp(local, "-") == 0;
    char *dest = to_stdout ? NULL : s_dest(local, path);
    if (!to_stdout && !dest) return cli_oom(f);
    progress_t pg;
    s_progress_start(&pg, o);
    cairn_artifact_info_t info = {0};
    cairn_err_t err = {0};
    int rc = to_stdout ? cairn_download_artifact_fd(c, run_id, path, STDOUT_FILENO,
                                                    s_on_progress, &pg, &info, &err)
                       : cairn_download_artifact_ex(c, run_id, path, dest,
                                                    s_on_progress, &pg, &info, &err);
    if (rc != 0) {
        s_progress_abort(&pg);
        rc = s_fail_transfer(o, &err, f);
    } else if (!to_stdout) { /* stdout holds the bytes alone */
        rc = s_download_done(o, run_id, dest, &info, f);
    }
    free(info.path);
    free(dest);
    return rc;
}
