/* bench/populate.c — see populate.h. */
#define _GNU_SOURCE
#include "populate.h"

#include <stdbool.h>
#include <stdio.h>

#include "bench_util.h"

#define IO_TIMEOUT_MS 60000

uint64_t bench_rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1du;
}

double bench_rnd01(uint64_t *s)
{
    return (double)(bench_rnd(s) >> 11) / 9007199254740992.0;
}

/* A large populate reports each tenth as it goes (runs/s, the server's CPU
 * and bytes written per run over that tenth): where it slows as the tables
 * grow. */
typedef struct progress {
    pid_t srv;
    int every, next;
    uint64_t t, cpu, wbytes;
} progress_t;

static uint64_t s_cpu_ns(pid_t pid)
{
    uint64_t ns = 0;
    bench_proc_cpu_ns(pid, &ns);
    return ns;
}

static void progress_init(progress_t *p, int nruns, pid_t srv)
{
    p->srv = srv;
    p->every = nruns >= 100000 ? nruns / 10 : 0;
    p->next = p->every;
    p->t = bench_now_ns();
    p->cpu = s_cpu_ns(srv);
    p->wbytes = bench_proc_wchar(srv);
}

static void progress_at(progress_t *p, int done)
{
    if (!p->every || done < p->next) return;
    uint64_t t = bench_now_ns(), cpu = s_cpu_ns(p->srv), w = bench_proc_wchar(p->srv);
    bench_warn(
        "populate: %d runs; last %d at %.0f runs/s, %.0f us cairnd CPU and %.0f "
        "KB written per run",
        done, p->every, p->every / ((double)(t - p->t) / 1e9),
        (double)(cpu - p->cpu) / 1e3 / p->every,
        (double)(w - p->wbytes) / 1024 / p->every);
    p->next += p->every;
    p->t = t;
    p->cpu = cpu;
    p->wbytes = w;
}

double bench_populate(cairn_client_t *c, const char *exp, int nruns, int window,
                      pid_t srv, uint64_t *rng)
{
    cairn_batch_t *b = cairn_batch_new("x");
    if (!b) bench_die("populate: out of memory");
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cairn_err_t err = {0};
    char name[32], key[16], val[16];
    int sent = 0, done = 0, inflight = 0;
    progress_t prog;
    progress_init(&prog, nruns, srv);
    uint64_t t0 = bench_now_ns();
    while (done < nruns) {
        while (inflight < window && sent < nruns) {
            msgpack_sbuffer_clear(&sb);
            msgpack_pack_map(&pk, 3);
            cairn_pack_kv_str(&pk, "experiment_id", exp);
            snprintf(name, sizeof name, "s%d", sent);
            cairn_pack_kv_str(&pk, "run_name", name);
            cairn_pack_cstr(&pk, "start_time");
            msgpack_pack_int64(&pk, BENCH_POP_TS0 + sent);
            if (cairn_client_send(c, "tracking", "create_run", sb.data, sb.size, 0,
                                  NULL, &err) != 0)
                bench_die("populate: send: %s", err.msg);
            sent++;
            inflight++;
        }
        cairn_reply_t *r = NULL;
        if (cairn_client_recv(c, IO_TIMEOUT_MS, &r, &err) != 0)
            bench_die("populate: no reply: %d %s", err.st, err.msg);
        inflight--;
        if (cairn_reply_status(r) != CAIRN_ST_OK)
            bench_die("populate: %d %s", cairn_reply_status(r), cairn_reply_error(r));
        const msgpack_object *id = cairn_obj_get(
            cairn_obj_get(cairn_obj_get(cairn_reply_object(r), "run"), "info"),
            "run_id");
        if (id && id->type == MSGPACK_OBJECT_STR) {
            char rid[CAIRN_MAX_RUN_ID + 1];
            snprintf(rid, sizeof rid, "%.*s", (int)id->via.str.size, id->via.str.ptr);
            cairn_batch_set_run(b, rid);
            for (int m = 0; m < BENCH_POP_METRICS; m++) {
                snprintf(key, sizeof key, "m%d", m);
                cairn_batch_metric(b, key, bench_rnd01(rng), 0, BENCH_POP_TS0);
            }
            for (int p = 0; p < BENCH_POP_PARAMS; p++) {
                snprintf(key, sizeof key, "p%d", p);
                snprintf(val, sizeof val, "v%d", (int)(bench_rnd(rng) % 10));
                cairn_batch_param(b, key, val);
            }
            if (cairn_batch_send_async(c, b, NULL, &err) != 0)
                bench_die("populate: log_batch: %d %s", err.st, err.msg);
            inflight++;
        } else {
            progress_at(&prog, ++done);
        }
        cairn_reply_destroy(&r);
    }
    msgpack_sbuffer_destroy(&sb);
    cairn_batch_destroy(&b);
    return (double)(bench_now_ns() - t0) / 1e9;
}
