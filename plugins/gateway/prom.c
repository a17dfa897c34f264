/* GET /metrics: the kernel's sys.metrics in Prometheus' text format
 * (version 0.0.4), for a scraper: the gateway keeps no counters of its own.
 *
 *   cairn_requests_total{service, verb, class}          2xx, 4xx, 5xx
 *   cairn_request_errors_total{service, verb, status}   503, 504
 *   cairn_request_duration_seconds{service, verb}        histogram
 *   cairn_plugin_up / _restarts_total / _inflight / _queued {service}
 *   cairn_process_cpu_seconds_total / _resident_memory_bytes {process}
 *       (cairnd, and each process-mode plugin's host)
 *   cairn_kernel_pending, cairn_kernel_clients, cairn_kernel_uptime_seconds
 *   cairn_NAME_total{service}   each counter NAME of a service that has a
 *       `stats` verb ({counters: {NAME: n}}): tracking's points_ingested */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

/* A label value with \, " and newline escaped. */
static void s_label(FILE *out, const char *v)
{
    for (; v && *v; v++) {
        if (*v == '\\' || *v == '"')
            fprintf(out, "\\%c", *v);
        else if (*v == '\n')
            fputs("\\n", out);
        else
            fputc(*v, out);
    }
}

static const char *s_str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static double s_num(json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static void s_help(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void s_sv(FILE *out, const char *metric, json_t *svc, json_t *verb)
{
    fprintf(out, "%s{service=\"", metric);
    s_label(out, s_str(svc, "name"));
    fputs("\",verb=\"", out);
    s_label(out, s_str(verb, "verb"));
    fputc('"', out);
}

static void s_requests(FILE *out, json_t *services)
{
    static const char *const classes[] = {"2xx", "4xx", "5xx"};
    size_t i, j;
    json_t *svc, *verb;
    s_help(out, "cairn_requests_total", "counter",
           "Requests answered, by service, verb and status class.");
    json_array_foreach(services, i, svc)
        json_array_foreach(json_object_get(svc, "verbs"), j, verb)
    {
        for (int c = 0; c < 3; c++) {
            char key[16];
            snprintf(key, sizeof key, "count_%s", classes[c]);
            s_sv(out, "cairn_requests_total", svc, verb);
            fprintf(out, ",class=\"%s\"} %.0f\n", classes[c], s_num(verb, key));
        }
    }
    s_help(out, "cairn_request_errors_total", "counter",
           "Requests answered 503 (unavailable) or 504 (past their deadline).");
    json_array_foreach(services, i, svc)
        json_array_foreach(json_object_get(svc, "verbs"), j, verb)
    {
        for (int st = 503; st <= 504; st++) {
            char key[16];
            snprintf(key, sizeof key, "count_%d", st);
            s_sv(out, "cairn_request_errors_total", svc, verb);
            fprintf(out, ",status=\"%d\"} %.0f\n", st, s_num(verb, key));
        }
    }
}

static void s_histograms(FILE *out, json_t *services, json_t *bounds_ms)
{
    size_t i, j, b;
    json_t *svc, *verb, *bound;
    s_help(out, "cairn_request_duration_seconds", "histogram",
           "Time from a request's arrival at the kernel to its answer.");
    json_array_foreach(services, i, svc)
        json_array_foreach(json_object_get(svc, "verbs"), j, verb)
    {
        json_t *counts = json_object_get(verb, "buckets");
        json_array_foreach(bounds_ms, b, bound)
        {
            s_sv(out, "cairn_request_duration_seconds_bucket", svc, verb);
            fprintf(out, ",le=\"%g\"} %.0f\n", json_number_value(bound) / 1000.0,
                    json_number_value(json_array_get(counts, b)));
        }
        s_sv(out, "cairn_request_duration_seconds_bucket", svc, verb);
        fprintf(out, ",le=\"+Inf\"} %.0f\n", s_num(verb, "count"));
        s_sv(out, "cairn_request_duration_seconds_sum", svc, verb);
        fprintf(out, "} %.6f\n", s_num(verb, "sum_us") / 1e6);
        s_sv(out, "cairn_request_duration_seconds_count", svc, verb);
        fprintf(out, "} %.0f\n", s_num(verb, "count"));
    }
}

static void s_gauge(FILE *out, json_t *services, const char *name, const char *type,
                    const char *help, const char *key)
{
    size_t i;
    json_t *svc;
    s_help(out, name, type, help);
    json_array_foreach(services, i, svc)
    {
        fprintf(out, "%s{service=\"", name);
        s_label(out, s_str(svc, "name"));
        if (!key)
            fprintf(out, "\"} %d\n", !strcmp(s_str(svc, "state"), "up"));
        else
            fprintf(out, "\"} %.0f\n", s_num(svc, key));
    }
}

static void s_processes(FILE *out, json_t *services, json_t *kernel)
{
    static const struct {
        const char *name, *type, *help, *key;
    } m[] = {{"cairn_process_cpu_seconds_total", "counter",
              "CPU time of cairnd (inproc plugins included) and each plugin process.",
              "cpu_seconds"},
             {"cairn_process_resident_memory_bytes", "gauge",
              "Resident memory of cairnd and each plugin process.", "rss_bytes"}};
    size_t i;
    json_t *svc;
    for (size_t k = 0; k < 2; k++) {
        s_help(out, m[k].name, m[k].type, m[k].help);
        fprintf(out, "%s{process=\"cairnd\"} %.6g\n", m[k].name,
                s_num(kernel, m[k].key));
        json_array_foreach(services, i, svc)
        {
            if (!json_is_number(json_object_get(svc, m[k].key))) continue;
            fprintf(out, "%s{process=\"", m[k].name);
            s_label(out, s_str(svc, "name"));
            fprintf(out, "\"} %.6g\n", s_num(svc, m[k].key));
        }
    }
    s_help(out, "cairn_kernel_pending", "gauge",
           "Requests the kernel holds unanswered.");
    fprintf(out, "cairn_kernel_pending %.0f\n", s_num(kernel, "pending"));
    s_help(out, "cairn_kernel_clients", "gauge", "Clients the kernel knows.");
    fprintf(out, "cairn_kernel_clients %.0f\n", s_num(kernel, "clients"));
    s_help(out, "cairn_kernel_uptime_seconds", "gauge",
           "Seconds since cairnd started.");
    fprintf(out, "cairn_kernel_uptime_seconds %.3f\n", s_num(kernel, "uptime_s"));
}

static bool s_metric_name(const char *n)
{
    if (!*n || strlen(n) > 64) return false;
    for (const char *c = n; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || *c == '_' || (*c >= '0' && *c <= '9')))
            return false;
    return true;
}

/* The counters of every service with a `stats` verb, as families
 * cairn_NAME_total{service}: gathered by name first, so that each family's
 * HELP and TYPE come once. A service that does not answer is left out. */
static void s_stats(FILE *out, gw_req_t *r)
{
    cairn_reply_t *reply = NULL;
    cairn_err_t err = {0};
    if (gw_call(r, "sys", "services", NULL, 0, &reply, &err) != 0) {
        cairn_reply_destroy(&reply);
        return;
    }
    json_t *all = gw_reply_body_json(reply), *families = json_object(), *svc, *verb;
    cairn_reply_destroy(&reply);
    size_t i, j;
    json_array_foreach(json_object_get(all, "services"), i, svc)
    {
        const char *name = s_str(svc, "name");
        bool has = false;
        json_array_foreach(json_object_get(svc, "verbs"), j, verb)
        {
            if (json_is_string(verb) && !strcmp(json_string_value(verb), "stats"))
                has = true;
        }
        if (!has || !families) continue;
        cairn_err_t e = {0};
        if (gw_call(r, name, "stats", NULL, 0, &reply, &e) == 0) {
            json_t *st = gw_reply_body_json(reply), *v;
            const char *counter;
            json_object_foreach(json_object_get(st, "counters"), counter, v)
            {
                if (!json_is_integer(v) || !s_metric_name(counter)) continue;
                json_t *fam = json_object_get(families, counter);
                if (!fam) json_object_set_new(families, counter, fam = json_object());
                if (fam) json_object_set(fam, name, v);
            }
            json_decref(st);
        }
        cairn_reply_destroy(&reply);
    }
    const char *counter;
    json_t *fam, *v;
    json_object_foreach(families, counter, fam)
    {
        fprintf(out,
                "# HELP cairn_%s_total The service's %s, since its start.\n"
                "# TYPE cairn_%s_total counter\n",
                counter, counter, counter);
        const char *name;
        json_object_foreach(fam, name, v)
        {
            fprintf(out, "cairn_%s_total{service=\"", counter);
            s_label(out, name);
            fprintf(out, "\"} %lld\n", (long long)json_integer_value(v));
        }
    }
    json_decref(families);
    json_decref(all);
}

void gw_prometheus(gw_req_t *r)
{
    cairn_reply_t *reply = NULL;
    cairn_err_t err = {0};
    if (gw_call(r, "sys", "metrics", NULL, 0, &reply, &err) != 0) {
        cairn_reply_destroy(&reply);
        gw_reply_error(r, err.st >= 400 ? err.st : 503,
                       err.code[0] ? err.code : "unavailable", "%s", err.msg);
        return;
    }
    json_t *m = gw_reply_body_json(reply);
    cairn_reply_destroy(&reply);
    char *text = NULL;
    size_t len = 0;
    FILE *out = m ? open_memstream(&text, &len) : NULL;
    if (!out) {
        json_decref(m);
        gw_reply_error(r, 500, "out_of_memory", "out of memory");
        return;
    }
    json_t *services = json_object_get(m, "services");
    s_requests(out, services);
    s_histograms(out, services, json_object_get(m, "buckets_ms"));
    s_gauge(out, services, "cairn_plugin_up", "gauge", "1 when the service is up.",
            NULL);
    s_gauge(out, services, "cairn_plugin_restarts_total", "counter",
            "Restarts of the service's plugin.", "restarts");
    s_gauge(out, services, "cairn_plugin_inflight", "gauge",
            "Requests the service's workers hold.", "inflight");
    s_gauge(out, services, "cairn_plugin_queued", "gauge",
            "Requests waiting for a free worker.", "queued");
    s_processes(out, services, json_object_get(m, "kernel"));
    s_stats(out, r);
    json_decref(m);
    if (fclose(out) != 0) {
        free(text);
        gw_reply_error(r, 500, "out_of_memory", "out of memory");
        return;
    }
    r->resp->status = 200;
    r->resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    r->resp->body = text;
    r->resp->len = len;
}
