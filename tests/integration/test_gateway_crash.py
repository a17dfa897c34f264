"""Crashes under load, through the HTTP gateway (issue 15): four MLflow
clients log metrics over keep-alive connections while

- the gateway's own process is killed (kill -9): its connections break
  and new ones are refused while it is down, cairnd and the rest stay up,
  the supervisor restarts it, and the clients carry on;
- the tracking plugin's process is killed: the gateway stays up and
  answers 503 TEMPORARILY_UNAVAILABLE (MLflow's client retries those)
  until tracking is back, then 200 again.

Either way no write answered 200 is lost: every acknowledged point is in
the metric's history afterwards."""
import http.client
import json
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import DEADLINE, Kernel, free_port, wait_for  # noqa: E402

SERVICES = ("  tracking:\n    plugin: storage\n    mode: process\n"
            "  artifacts:\n    plugin: storage\n    mode: inproc\n")
WRITERS = 4


class Load:
    """WRITERS threads, each logging metric `w{i}` with steps 0, 1, 2, ...
    through its own keep-alive connection (reopened when it breaks),
    remembering which steps were answered 200 and which statuses came."""

    def __init__(self, port, run):
        self.port, self.run = port, run
        self.stop = threading.Event()
        self.acked = [set() for _ in range(WRITERS)]
        self.statuses = [{} for _ in range(WRITERS)]
        self.broken = [0] * WRITERS
        self.threads = [threading.Thread(target=self._write, args=(i,), daemon=True)
                        for i in range(WRITERS)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(DEADLINE)

    def count(self, status):
        return sum(s.get(status, 0) for s in self.statuses)

    def total_acked(self):
        return sum(len(a) for a in self.acked)

    def _write(self, i):
        conn, step = None, 0
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                body = json.dumps({"run_id": self.run, "key": f"w{i}", "value": step,
                                   "timestamp": 1, "step": step})
                conn.request("POST", "/api/2.0/mlflow/runs/log-metric", body=body,
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                self.statuses[i][r.status] = self.statuses[i].get(r.status, 0) + 1
                if r.status == 200:
                    self.acked[i].add(step)
            except (OSError, http.client.HTTPException):
                self.broken[i] += 1
                if conn:
                    conn.close()
                conn = None
                time.sleep(0.02)  # pacing a reconnect loop, not a proof
            step += 1
        if conn:
            conn.close()


class GatewayCrash(unittest.TestCase):
    def setUp(self):
        self.port = free_port()
        self.k = Kernel(services=SERVICES + (
            "  gateway:\n    plugin: gateway\n    mode: process\n"
            f"    settings:\n      listen: 127.0.0.1:{self.port}\n"), auth="none")
        self.k.start()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        exp = self.post("experiments/create", {"name": "crash"})["experiment_id"]
        self.run = self.post("runs/create", {"experiment_id": exp})["run"]["info"]["run_id"]

    def tearDown(self):
        self.conn.close()
        self.k.cleanup()

    def post(self, route, body):
        self.conn.request("POST", "/api/2.0/mlflow/" + route, body=json.dumps(body),
                          headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        out = json.loads(r.read())
        self.assertEqual(r.status, 200, out)
        return out

    def history(self, key):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", f"/api/2.0/mlflow/metrics/get-history?run_id={self.run}"
                            f"&metric_key={key}&max_results=100000")
        r = conn.getresponse()
        body = json.loads(r.read())
        conn.close()
        self.assertEqual(r.status, 200, body)
        return {m["step"] for m in body.get("metrics", [])}

    def kill(self, service):
        info = self.k.plugin(service)
        self.assertEqual(info["state"], "up")
        os.kill(info["pid"], signal.SIGKILL)
        return info["restarts"]

    def back(self, service, restarts, load):
        wait_for(lambda: self.k.plugin(service)["state"] == "up"
                 and self.k.plugin(service)["restarts"] > restarts,
                 what=f"{service} restarted")
        now = load.total_acked()
        wait_for(lambda: load.total_acked() > now + 20, what="writes acknowledged again")

    def no_acked_write_lost(self, load):
        for i in range(WRITERS):
            missing = load.acked[i] - self.history(f"w{i}")
            self.assertFalse(missing, f"writer {i}: acknowledged steps lost: "
                                      f"{sorted(missing)[:10]}")

    def test_the_gateway_killed_under_load(self):
        with Load(self.port, self.run) as load:
            wait_for(lambda: load.total_acked() > 50, what="load running")
            restarts = self.kill("gateway")
            wait_for(lambda: sum(load.broken) > 0, what="clients see the gateway gone")
            self.assertIn("plugins", self.k.health())  # cairnd answers meanwhile
            self.back("gateway", restarts, load)
        self.assertIsNone(self.k.proc.poll(), "cairnd survived")
        self.assertEqual(set(load.count(s) for s in (500, 502)), {0}, load.statuses)
        self.no_acked_write_lost(load)

    def test_tracking_killed_under_load(self):
        with Load(self.port, self.run) as load:
            wait_for(lambda: load.total_acked() > 50, what="load running")
            restarts = self.kill("tracking")
            wait_for(lambda: load.count(503) > 0, what="503s while tracking is down")
            self.back("tracking", restarts, load)
        self.assertIsNone(self.k.proc.poll(), "cairnd survived")
        self.assertEqual(self.k.plugin("gateway")["restarts"], 0, "the gateway stayed up")
        unexpected = {s for st in load.statuses for s in st if s not in (200, 503)}
        self.assertFalse(unexpected, load.statuses)
        self.no_acked_write_lost(load)


if __name__ == "__main__":
    unittest.main()
