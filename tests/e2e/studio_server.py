"""The e2e suite's cairnd (tests/e2e/studio.test.mjs starts it): storage and
the gateway, with seeded data, on free loopback ports. Prints one JSON line
{http, seed} once it is up, then serves until its stdin closes.

The data (docs/STUDIO.md): experiment "studio-100k", 100,000 runs × 20
metrics (m0..m19, one point each, uniform in [0, 1)) × 10 params (p0..p9,
v0..v9), populated over the bus as a sweep would log them (create_run,
then one log_batch, 512 requests in flight, committed in the storage
plugin's write groups); experiment "studio-long", 10 runs whose metric
"loss" has 100,000 steps each. Seeding takes minutes, so the state is kept
in the build dir (BUILD/e2e/seed-v1/) and reused by later runs;
CAIRN_E2E_RESEED=1 seeds again. At each start (seed_registry, 1-4 s, mostly
importing xgboost) a model with two versions, an endpoint with two deployments of
it and a finished job are made again in that state, and a thread scores
the endpoint a few times a second while the test runs."""
import http.client
import json
import threading
import urllib.request
import math
import struct
import zlib
import os
import random
import shutil
import sys
import time

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from cairn_harness import BUILD, Kernel, RawClient, free_port  # noqa: E402

RUNS = int(os.environ.get("CAIRN_E2E_RUNS", "100000"))
METRICS, PARAMS = 20, 10
LONG_RUNS, LONG_STEPS = 10, 100000
WINDOW = 512
SEED_DIR = os.path.join(BUILD, "e2e", f"seed-v1-{RUNS}")
SERVICES = ("  tracking:\n    plugin: storage\n    mode: inproc\n"
            "  artifacts:\n    plugin: storage\n    mode: inproc\n"
            "  registry:\n    plugin: registry\n    mode: inproc\n"
            "  endpoints:\n    plugin: scorer\n    mode: process\n"
            "    settings:\n      listen: 127.0.0.1:{score_port}\n"
            "  jobs:\n    plugin: compute\n    mode: process\n"
            "    settings:\n      grace_ms: 500\n      cgroup_root: /nonexistent\n")


class GatewayKernel(Kernel):
    """A cairnd with the gateway inproc on http_port (beside services)."""

    def __init__(self, http_port, **kw):
        self.http_port = http_port
        super().__init__(**kw)

    def _new_ports(self):
        super()._new_ports()
        with open(self.conf, "a") as f:
            f.write("  gateway:\n    plugin: gateway\n    mode: inproc\n"
                    f"    settings:\n      listen: 127.0.0.1:{self.http_port}\n")


class StudioKernel(GatewayKernel):
    def __init__(self, http_port, state):
        super().__init__(http_port, services=SERVICES.format(score_port=free_port()),
                         state=state)


class AuditKernel(GatewayKernel):
    """A small cairnd of its own for the audit page's step (a fresh state
    each start): the kernel records to the audit service (docs/AUDIT.md).
    Kept apart so that the 100,000-run state and the other steps' cairnd
    run as before, unaudited."""
    SERVICES = ("  audit:\n    plugin: audit\n    mode: inproc\n"
                "  tracking:\n    plugin: storage\n    mode: inproc\n")

    def __init__(self, http_port):
        super().__init__(http_port, services=self.SERVICES, kernel_extra="  audit: audit\n")


class AuthKernel(GatewayKernel):
    """A small cairnd with security on, for the login page and the
    workspace switcher (a fresh state each start): the owner's token makes
    a workspace, a user who reads both, and an experiment in each."""
    SERVICES = ("  auth:\n    plugin: auth\n    mode: inproc\n"
                "  tracking:\n    plugin: storage\n    mode: inproc\n")

    def __init__(self, http_port):
        super().__init__(http_port, services=self.SERVICES, auth="auth")


def seed_auth(k):
    with open(os.path.join(k.state, "owner.token")) as f:
        tok = f.read().strip()
    c = RawClient(k.endpoint, zmq.DEALER)
    user, password = "ada", "analytical engine 1843"
    try:
        def call(svc, verb, body, **hdr):
            return ok(*c.call(svc, verb, body, tok=tok, **hdr), f"{svc}.{verb}")
        call("auth", "create_workspace", {"name": "team-b"})
        call("auth", "create_user", {"user": user, "password": password})
        for ws in ("default", "team-b"):
            call("auth", "assign_role", {"principal": user, "role": "Reader", "workspace": ws})
            call("tracking", "create_experiment", {"name": f"{ws}-exp"}, ws=ws)
    finally:
        c.close()
    return {"auth_http": f"http://127.0.0.1:{k.http_port}", "auth_user": user,
            "auth_password": password}


def seed_audit(k):
    """A few recorded requests: 12 experiments created (200), one created
    again (409), one run; waits until the trail holds them."""
    c = RawClient(k.endpoint, zmq.DEALER)
    try:
        for i in range(12):
            ok(*c.call("tracking", "create_experiment", {"name": f"audit-{i}"}), "create_experiment")
        h, _ = c.call("tracking", "create_experiment", {"name": "audit-0"})
        assert h["st"] == 409, h
        exp = c.call("tracking", "get_experiment_by_name", {"experiment_name": "audit-1"})[1]
        ok(*c.call("tracking", "create_run", {"experiment_id": exp["experiment"]["experiment_id"]}),
           "create_run")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if len(c.call("audit", "query", {})[1].get("records", [])) >= 14:
                return {"audit_records": 14}
            time.sleep(0.05)
        raise RuntimeError("the audit trail did not take 14 records in 30 s")
    finally:
        c.close()


def ok(hdr, body, what):
    if hdr.get("st") != 200:
        raise SystemExit(f"seed: {what}: {hdr.get('st')} {body}")
    return body


def populate(c, exp):
    """RUNS runs, WINDOW requests in flight: a create_run's reply sends
    that run's log_batch."""
    rng = random.Random(18)
    sent = done = inflight = 0
    t0 = time.monotonic()
    while done < RUNS:
        while inflight < WINDOW and sent < RUNS:
            c.send("tracking", "create_run", {"experiment_id": exp, "run_name": f"s{sent}",
                                              "start_time": 1700000000000 + sent})
            sent += 1
            inflight += 1
        hdr, body = c.recv(timeout=120)
        inflight -= 1
        ok(hdr, body, "populate")
        run = (body or {}).get("run")
        if run:
            c.send("tracking", "log_batch", {
                "run_id": run["info"]["run_id"],
                "metrics": [{"key": f"m{m}", "value": rng.random(), "step": 0,
                             "timestamp": 1700000000000} for m in range(METRICS)],
                "params": [{"key": f"p{p}", "value": f"v{rng.randrange(10)}"}
                           for p in range(PARAMS)]})
            inflight += 1
        else:
            done += 1
            if done % 20000 == 0:
                sys.stderr.write(f"seed: {done} runs, {done / (time.monotonic() - t0):.0f} runs/s\n")
    return time.monotonic() - t0


def long_runs(c, exp):
    ids = []
    for i in range(LONG_RUNS):
        _, b = c.call("tracking", "create_run", {"experiment_id": exp, "run_name": f"long-{i}",
                                                 "start_time": 1700000000000})
        rid = b["run"]["info"]["run_id"]
        ids.append(rid)
        lr = 0.1 / (i + 1)
        pts = [{"key": "loss", "step": s, "timestamp": 1700000000000 + s * 10,
                "value": math.exp(-s * lr / 20000) + 0.05 * math.sin(s / 500 + i)
                + (0.5 if s % 25000 == 12345 else 0.0)}  # a spike sampling must keep
               for s in range(LONG_STEPS)]
        ok(*c.call("tracking", "log_batch", {
            "run_id": rid, "metrics": pts,
            "params": [{"key": "lr", "value": f"{lr:.4g}"}, {"key": "optimizer", "value": "adam"},
                       {"key": "layers", "value": str(2 + i % 3)}],
            "tags": [{"key": "team", "value": "studio"}]}, timeout=120), "long run")
        ok(*c.call("tracking", "log_batch", {"run_id": rid, "metrics": [
            {"key": "acc", "step": s, "timestamp": 1700000000000 + s * 10,
             "value": 1 - math.exp(-s * lr / 2000)} for s in range(0, LONG_STEPS, 100)]},
            timeout=120), "long run acc")
        ok(*c.call("tracking", "update_run", {"run_id": rid, "status": "FINISHED",
                                              "end_time": 1700000000000 + LONG_STEPS * 10}),
           "update_run")
    return ids


def seed(k):
    c = RawClient(k.endpoint, zmq.DEALER)
    try:
        _, b = c.call("tracking", "create_experiment", {"name": "studio-100k"})
        big = ok(_, b, "create_experiment")["experiment_id"]
        _, b = c.call("tracking", "create_experiment", {"name": "studio-long"})
        long_exp = ok(_, b, "create_experiment")["experiment_id"]
        t0 = time.monotonic()
        secs = populate(c, big)
        ids = long_runs(c, long_exp)
        return {"big": big, "long": long_exp, "long_runs": ids, "runs": RUNS,
                "populate_s": round(secs, 1), "seed_s": round(time.monotonic() - t0, 1)}
    finally:
        c.close()


def png(w, h):
    """A small valid PNG (a gradient), made here: no image library needed."""
    raw = b"".join(b"\0" + bytes(v for x in range(w) for v in (x * 255 // w, y * 255 // h, 128))
                   for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


ARTIFACTS = {
    "notes.txt": b"trained on the studio seed\nsecond line\n",
    "config.json": json.dumps({"lr": 0.1, "layers": [64, 32]}).encode(),
    "data/table.csv": b"epoch,loss,acc\n1,0.9,0.5\n2,0.5,\"0.75\"\n3,0.3,0.9\n",
    "plot.png": png(32, 16),
    "logs/output.log": b"epoch 1 loss 0.9\nepoch 2 loss 0.5\n",  # a log of its own (not a job's)
}


def put_artifacts(port, exp, run):
    """A long run's files, through the gateway's artifact proxy (each
    start: the test browses and previews them)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for path, data in ARTIFACTS.items():
            c.request("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/{path}", body=data)
            r = c.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit(f"seed: PUT {path}: {r.status}")
    finally:
        c.close()


MODEL, ENDPOINT = "studio-model", "studio-ep"
JOB_COMMAND = "for i in $(seq 1 60); do echo line $i; sleep 0.2; done"


def xgb_model(depth):
    """A small XGBoost model's JSON (4 features), trained here in well
    under a second."""
    import numpy as np
    import xgboost as xgb
    rng = np.random.default_rng(depth)
    x = rng.random((200, 4), dtype=np.float32)
    y = (x[:, 0] + x[:, 1] * depth > 1).astype(np.float32)
    bst = xgb.train({"objective": "binary:logistic", "max_depth": depth, "nthread": 1, "seed": 1},
                    xgb.DMatrix(x, label=y), 5)
    return bytes(bst.save_raw("json"))


def call_ok(c, svc, verb, body, allow=()):
    hdr, b = c.call(svc, verb, body, timeout=60)
    if hdr.get("st") not in (200, 201) + tuple(allow):
        raise SystemExit(f"seed: {svc}.{verb}: {hdr.get('st')} {b}")
    return b or {}


def seed_registry(c, port):
    """Each start, afresh (the state is reused): the model studio-model with
    two versions, each stored from a run's artifact (so it has a run and
    lineage), alias champion on 1; endpoint studio-ep with deployments blue
    (v1, all the traffic) and green (v2); a finished job."""
    call_ok(c, "endpoints", "delete_endpoint", {"name": ENDPOINT}, allow=(404,))
    call_ok(c, "registry", "delete_registered_model", {"name": MODEL}, allow=(404,))
    b = call_ok(c, "tracking", "get_experiment_by_name", {"experiment_name": "studio-models"}, allow=(404,))
    exp = (b.get("experiment") or {}).get("experiment_id") or \
        call_ok(c, "tracking", "create_experiment", {"name": "studio-models"})["experiment_id"]
    call_ok(c, "registry", "create_registered_model", {"name": MODEL, "description": "the e2e's model"})
    h = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for v, depth in ((1, 2), (2, 3)):
            run = call_ok(c, "tracking", "create_run", {"experiment_id": exp, "run_name": f"train-v{v}"})
            rid = run["run"]["info"]["run_id"]
            h.request("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{rid}/artifacts/model/model.json",
                      body=xgb_model(depth))
            r = h.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit(f"seed: PUT model.json: {r.status}")
            call_ok(c, "tracking", "update_run", {"run_id": rid, "status": "FINISHED"})
            call_ok(c, "registry", "create_model_version", {
                "name": MODEL, "source": f"runs:/{rid}/model/model.json", "run_id": rid, "flavor": "xgboost"})
    finally:
        h.close()
    call_ok(c, "registry", "set_alias", {"name": MODEL, "alias": "champion", "version": 1})
    call_ok(c, "registry", "set_alias", {"name": MODEL, "alias": "challenger", "version": 2})
    call_ok(c, "endpoints", "create_endpoint", {"name": ENDPOINT})
    for dep, v in (("blue", 1), ("green", 2)):
        call_ok(c, "endpoints", "create_deployment", {"endpoint": ENDPOINT, "name": dep,
                                                     "model": f"model:{MODEL}:{v}"})
    job = call_ok(c, "jobs", "submit_job", {"spec": {"command": "echo hello from the e2e",
                                                     "experiment_name": "studio-jobs",
                                                     "display_name": "e2e hello"}})["job"]
    ep = call_ok(c, "endpoints", "get_endpoint", {"name": ENDPOINT})["endpoint"]
    key = call_ok(c, "endpoints", "get_keys", {"endpoint": ENDPOINT})["primary_key"]
    return {"model": MODEL, "endpoint": ENDPOINT, "scoring_uri": ep["scoring_uri"], "key": key,
            "hello_job": job["name"], "job_command": JOB_COMMAND}


def score_forever(uri, key, stop):
    """A few requests a second to the endpoint, so that its metrics move
    while the test watches them; one in ten a bad body (an error)."""
    i = 0
    while not stop.wait(0.2):
        i += 1
        body = {"instances": [[0.1 * (i % 10), 0.5, 0.2, 0.9]]} if i % 10 else {"nope": 1}
        req = urllib.request.Request(uri, data=json.dumps(body).encode(), method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("Authorization", f"Bearer {key}")
        try:
            urllib.request.urlopen(req, timeout=10).read()
        except Exception:
            pass


def main():
    marker = os.path.join(SEED_DIR, "seed.json")
    fresh = os.environ.get("CAIRN_E2E_RESEED") == "1" or not os.path.exists(marker)
    if fresh:
        shutil.rmtree(SEED_DIR, ignore_errors=True)
        os.makedirs(SEED_DIR)
    k = StudioKernel(free_port(), os.path.join(SEED_DIR, "state")).start()
    ak = uk = None
    try:
        if fresh:
            info = seed(k)
            with open(marker, "w") as f:
                json.dump(info, f)
            info["seeded_now"] = True
        else:
            with open(marker) as f:
                info = json.load(f)
            info["seeded_now"] = False
        put_artifacts(k.http_port, info["long"], info["long_runs"][0])
        c = RawClient(k.endpoint, zmq.DEALER)
        try:
            t0 = time.monotonic()
            info.update(seed_registry(c, k.http_port))
            info["registry_seed_s"] = round(time.monotonic() - t0, 1)
        finally:
            c.close()
        ak = AuditKernel(free_port()).start()
        info.update(seed_audit(ak))
        info["audit_http"] = f"http://127.0.0.1:{ak.http_port}"
        uk = AuthKernel(free_port()).start()
        info.update(seed_auth(uk))
        stop = threading.Event()
        threading.Thread(target=score_forever, args=(info["scoring_uri"], info["key"], stop),
                         daemon=True).start()
        print(json.dumps({"http": f"http://127.0.0.1:{k.http_port}", "seed": info}), flush=True)
        sys.stdin.read()  # until the test closes it
        stop.set()
    finally:
        for other in (ak, uk):
            if other:
                other.cleanup()
        k.cleanup()


if __name__ == "__main__":
    main()
