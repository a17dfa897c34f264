"""Server-sent events through the gateway (plugins/gateway/events.c) against
a real cairnd: GET /api/v1/events for runs and jobs, read as it arrives
with http.client: the retry and ready preamble, tracking's throttled
run.metrics (plugins/storage/live.c) and run.status, the compute plugin's
jobs.status; the subjects checked as the caller before any stream (404
for another workspace's run or none, 400 for 0 or 101 subjects, 401
without a token under auth); auth.changed ends a stream; the
max_event_streams bound answers 503; the gateway's stop ends a stream."""
import http.client
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import free_port  # noqa: E402
import test_gateway  # noqa: E402
from test_gateway import GatewayKernel  # noqa: E402

JOBS = ("  jobs:\n    plugin: compute\n    mode: process\n    settings:\n"
        "      max_concurrent: 2\n      grace_ms: 300\n"
        "      cgroup_root: /nonexistent\n")
AUTH = "  auth:\n    plugin: auth\n    mode: inproc\n"
DEADLINE = 30.0


def kernel(extra="", settings=None, mode="inproc", **kw):
    """A gateway kernel with extra services (test_gateway's BASE + extra)."""
    base = test_gateway.BASE
    test_gateway.BASE = base + extra
    try:
        return GatewayKernel(mode, free_port(), settings=settings, **kw).start()
    finally:
        test_gateway.BASE = base


class Stream:
    """An event stream read as it comes: next() is (event, data) of the
    next event, ("comment", text) of a comment line, ("retry", ms), or
    None at its end."""

    def __init__(self, port, query, headers=None, path="/api/v1/events"):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
        self.conn.request("GET", f"{path}?{query}", headers=headers or {})
        self.r = self.conn.getresponse()
        self.status = self.r.status
        self.headers = {k.lower(): v for k, v in self.r.getheaders()}
        self.body = None if self.status == 200 else json.loads(self.r.read())

    def next(self, timeout=DEADLINE):
        self.conn.sock.settimeout(timeout)
        event, data = None, []
        while True:
            line = self.r.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line.startswith(":"):
                return ("comment", line[1:].strip())
            if line.startswith("retry: "):
                self.r.readline()
                return ("retry", int(line[7:]))
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and event:
                return (event, json.loads("\n".join(data)))

    def until(self, pred, timeout=DEADLINE):
        """Events until pred(event, data) holds: (those seen, the match)."""
        end, seen = time.monotonic() + timeout, []
        while time.monotonic() < end:
            ev = self.next(max(0.05, end - time.monotonic()))
            if ev is None:
                raise AssertionError(f"the stream ended; saw {seen}")
            seen.append(ev)
            if pred(*ev):
                return seen, ev
        raise AssertionError(f"timed out; saw {seen}")

    def ended(self, timeout=DEADLINE):
        """Whether the stream ends (clean end of its chunked body) in time."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if self.next(max(0.05, end - time.monotonic())) is None:
                    return True
            except (ConnectionError, http.client.IncompleteRead):
                return False
        return False

    def close(self):
        self.conn.close()


class Base:
    port = None
    token = None

    def req(self, method, path, body=None, ws=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)
        try:
            h = {"Content-Type": "application/json"}
            if self.token:
                h["Authorization"] = f"Bearer {self.token}"
            if ws:
                h["cairn-workspace"] = ws
            conn.request(method, path, body=json.dumps(body or {}).encode(), headers=h)
            r = conn.getresponse()
            return r.status, json.loads(r.read())
        finally:
            conn.close()

    def ok(self, path, body=None, ws=None):
        st, b = self.req("POST", path, body, ws)
        self.assertEqual(st, 200, (path, b))
        return b

    def new_run(self, ws=None):
        name = f"ev-{time.monotonic_ns()}"
        exp = self.ok("/api/2.0/mlflow/experiments/create", {"name": name}, ws)
        run = self.ok("/api/2.0/mlflow/runs/create",
                      {"experiment_id": exp["experiment_id"]}, ws)
        return run["run"]["info"]["run_id"]

    def open(self, query, **kw):
        h = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        s = Stream(self.port, query, headers=h, **kw)
        self.addCleanup(s.close)
        return s


class Events(Base, unittest.TestCase):
    MODE = "inproc"  # the gateway's

    @classmethod
    def setUpClass(cls):
        cls.k = kernel(JOBS, mode=cls.MODE)
        cls.port = cls.k.http_port

    @classmethod
    def tearDownClass(cls):
        cls.k.stop_jobs()
        cls.k.cleanup()

    def test_ready_metrics_and_status(self):
        run = self.new_run()
        s = self.open(f"run={run}")
        self.assertEqual(s.status, 200)
        self.assertTrue(s.headers["content-type"].startswith("text/event-stream"))
        self.assertEqual(s.headers.get("cache-control"), "no-cache")
        self.assertEqual(s.next(), ("retry", 3000))
        self.assertEqual(s.next(), ("ready", {"runs": [run], "jobs": []}))
        self.ok("/api/2.0/mlflow/runs/log-metric",
                {"run_id": run, "key": "loss", "value": 0.5, "timestamp": 1000, "step": 7})
        self.ok("/api/2.0/mlflow/runs/log-batch",
                {"run_id": run, "metrics": [
                    {"key": "acc", "value": 0.9, "timestamp": 2000, "step": 3}]})
        keys = set()

        def metrics(ev, d):
            if ev == "run.metrics":
                self.assertEqual(d["run_id"], run)
                keys.update(d["keys"])
            return keys >= {"loss", "acc"}
        seen, (_, d) = s.until(metrics)
        steps = [d["step"] for ev, d in seen if ev == "run.metrics"]
        self.assertEqual(max(steps), 7)
        self.assertEqual(max(d["timestamp"] for ev, d in seen if ev == "run.metrics"), 2000)
        self.ok("/api/2.0/mlflow/runs/update", {"run_id": run, "status": "FINISHED"})
        _, (_, d) = s.until(lambda ev, d: ev == "run.status")
        self.assertEqual(d, {"run_id": run, "status": "FINISHED"})

    def test_another_runs_events_are_not_sent(self):
        mine, other = self.new_run(), self.new_run()
        s = self.open(f"run={mine}")
        s.until(lambda ev, d: ev == "ready")
        self.ok("/api/2.0/mlflow/runs/log-metric",
                {"run_id": other, "key": "x", "value": 1, "step": 1})
        self.ok("/api/2.0/mlflow/runs/log-metric",
                {"run_id": mine, "key": "y", "value": 1, "step": 2})
        seen, (_, d) = s.until(lambda ev, d: ev == "run.metrics")
        self.assertEqual((d["run_id"], d["keys"]), (mine, ["y"]))

    def test_refused_before_streaming(self):
        theirs = self.new_run(ws="other-team")
        for q, missing in ((f"run={theirs}", theirs), ("run=nonexistent0", "nonexistent0"),
                           (f"run={self.new_run()}&run=nope", "nope")):
            s = self.open(q)
            self.assertEqual(s.status, 404, q)
            self.assertEqual((s.body["status"], s.body["code"]), (404, "not_found"))
            self.assertIn(f"'{missing}'", s.body["error"])
        s = self.open(f"run={theirs}", path="/ws/other-team/api/v1/events")
        self.assertEqual(s.status, 200)  # in its own workspace it is found
        s = self.open("job=no-such-job")
        self.assertEqual(s.status, 404, s.body)
        for q in ("", "other=1", "&".join(f"run=r{i}" for i in range(101)),
                  "&".join([f"run=r{i}" for i in range(60)] + [f"job=j{i}" for i in range(41)])):
            s = self.open(q)
            self.assertEqual(s.status, 400, q)
            self.assertEqual(s.body["code"], "bad_request")
            self.assertIn("1 to 100 subjects", s.body["error"])
        st, b = self.req("POST", "/api/v1/events?run=x")
        self.assertEqual(st, 405, b)

    def test_throttled(self):
        run = self.new_run()
        s = self.open(f"run={run}")
        s.until(lambda ev, d: ev == "ready")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)
        self.addCleanup(conn.close)
        for i in range(100):  # 1000 points, 10 a request, as fast as they go
            pts = [{"key": "loss", "value": j, "timestamp": 1000 + j, "step": j}
                   for j in range(i * 10, i * 10 + 10)]
            conn.request("POST", "/api/2.0/mlflow/runs/log-batch",
                         json.dumps({"run_id": run, "metrics": pts}),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            self.assertEqual(r.status, 200, r.read())
            r.read()
        seen, _ = s.until(lambda ev, d: ev == "run.metrics" and d["step"] == 999)
        n = sum(1 for ev, _ in seen if ev == "run.metrics")
        self.assertLessEqual(n, 20, seen)

    def test_job_status(self):
        name = f"ev-job-{time.monotonic_ns()}"
        st, b = self.req("POST", "/api/v1/jobs/submit_job",
                         {"spec": {"command": "sleep 1", "name": name}})
        self.assertIn(st, (200, 201), b)
        s = self.open(f"job={name}")
        self.assertEqual(s.status, 200, s.body)
        seen, (_, d) = s.until(lambda ev, d: ev == "jobs.status" and d["status"] in
                               ("Completed", "Failed", "Canceled", "TimedOut"))
        self.assertEqual((d["name"], d["workspace"], d["status"]),
                         (name, "default", "Completed"))
        # another workspace's job of the same name is not this stream's
        self.assertTrue(all(d["name"] == name for ev, d in seen if ev == "jobs.status"))


class EventsProcess(Events):
    MODE = "process"


class Limits(Base, unittest.TestCase):
    """max_event_streams: 2; the gateway's stop ends a stream."""

    @classmethod
    def setUpClass(cls):
        cls.k = kernel(settings={"max_event_streams": 2})
        cls.port = cls.k.http_port

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def test_limit_then_stop(self):
        run = self.new_run()
        a, b = self.open(f"run={run}"), self.open(f"run={run}")
        self.assertEqual((a.status, b.status), (200, 200))
        c = self.open(f"run={run}")
        self.assertEqual(c.status, 503)
        self.assertEqual((c.body["status"], c.body["code"]), (503, "unavailable"))
        self.assertIn("max_event_streams", c.body["error"])
        a.until(lambda ev, d: ev == "ready")  # b is parked, unread
        self.assertEqual(self.k.stop(), 0)  # with streams parked: a clean exit
        self.assertTrue(a.ended(), "the gateway's stop ends the stream")


class Auth(Base, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = kernel(AUTH, auth="auth")
        cls.port = cls.k.http_port
        with open(os.path.join(cls.k.state, "owner.token")) as f:
            cls.token = f.read().strip()

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def test_no_token_then_revocation_ends_the_stream(self):
        run = self.new_run()
        s = Stream(self.port, f"run={run}")  # no token
        self.addCleanup(s.close)
        self.assertEqual(s.status, 401, s.body)
        self.assertEqual(s.body["code"], "unauthenticated")
        t = self.ok("/api/v1/auth/create_token", {"name": "studio"})
        s = Stream(self.port, f"run={run}",
                   headers={"Authorization": f"Bearer {t['token']}"})
        self.addCleanup(s.close)
        self.assertEqual(s.status, 200, s.body)
        s.until(lambda ev, d: ev == "ready")
        self.ok("/api/v1/auth/revoke_token", {"token_id": t["token_id"]})
        self.assertTrue(s.ended(), "auth.changed ends the stream")
        s = Stream(self.port, f"run={run}",
                   headers={"Authorization": f"Bearer {t['token']}"})
        self.addCleanup(s.close)
        self.assertEqual(s.status, 401, s.body)  # and it cannot come back


if __name__ == "__main__":
    unittest.main()
