"""The HTTP gateway (issue 15, first slice), driven by a real HTTP client
(urllib, keep-alive off and on) against a real cairnd on loopback: health,
JSON REST for a verb of every service, errors as JSON with the bus's
status, bodies over the limit refused 413, workspaces by path prefix and
header, bearer tokens through the kernel's auth, and MLflow's REST API 2.0
for tracking and the registry (the paths, methods, query strings and bodies
MLflow's client sends, per mlflow/store/tracking/rest_store.py), with
MLflow's error codes. The gateway inproc and in process mode."""
import base64
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import Kernel, free_port, wait_for  # noqa: E402

BASE = ("  tracking:\n    plugin: storage\n    mode: inproc\n"
        "  artifacts:\n    plugin: storage\n    mode: inproc\n"
        "  registry:\n    plugin: registry\n    mode: inproc\n"
        "  echo:\n    plugin: echo\n    mode: inproc\n")


class GatewayKernel(Kernel):
    """A kernel with a gateway on http_port. The gateway finds the kernel
    by itself ($CAIRN_ENDPOINT, which cairnd sets for its plugins to its
    private ipc frontend), as in the embedded default."""

    def __init__(self, mode, http_port, settings=None, **kw):
        self.mode, self.http_port = mode, http_port
        self.settings = dict({"max_body": "64KiB"}, **(settings or {}))
        super().__init__(services=BASE, **kw)

    def _new_ports(self):
        super()._new_ports()
        gw = (f"  gateway:\n    plugin: gateway\n    mode: {self.mode}\n"
              f"    settings:\n      listen: 127.0.0.1:{self.http_port}\n" +
              "".join(f"      {k}: {v}\n" for k, v in self.settings.items()))
        with open(self.conf, "a") as f:
            f.write(gw)


class GatewayBase:
    MODE = "inproc"

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.k = GatewayKernel(cls.MODE, cls.port).start()
        cls.conn = http.client.HTTPConnection("127.0.0.1", cls.port, timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.conn.close()
        cls.k.cleanup()

    def req(self, method, path, body=None, headers=None, raw=None):
        """(status, parsed JSON or text) over the class's keep-alive connection."""
        data = raw if raw is not None else (json.dumps(body).encode()
                                            if body is not None else None)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        self.conn.request(method, path, body=data, headers=h)
        r = self.conn.getresponse()
        text = r.read().decode()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text

    def test_health(self):
        st, b = self.req("GET", "/healthz")
        self.assertEqual((st, b["status"]), (200, "ok"))
        self.assertTrue(b["version"])
        st, b = self.req("GET", "/readyz")
        self.assertEqual((st, b["ok"]), (200, True))
        self.assertIn("gateway", [p["name"] for p in b["plugins"]])
        self.assertEqual(self.req("POST", "/healthz")[0], 405)

    def test_prometheus_metrics(self):
        for _ in range(3):
            self.req("POST", "/api/v1/echo/echo", {"n": 1})
        st, b = self.req("POST", "/api/2.0/mlflow/experiments/create", {"name": f"prom-{self.MODE}"})
        st, b = self.req("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": b["experiment_id"]})
        run = b["run"]["info"]["run_id"]
        before = self.req("POST", "/api/v1/tracking/stats", {})[1]["counters"]["points_ingested"]
        st, b = self.req("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": run, "metrics": [
            {"key": "m", "value": i, "timestamp": 1, "step": i} for i in range(7)]})
        self.assertEqual(st, 200, b)
        self.req("POST", "/api/v1/tracking/get_run", {})  # a 400
        self.conn.request("GET", "/metrics")
        r = self.conn.getresponse()
        text = r.read().decode()
        self.assertEqual(r.status, 200)
        self.assertTrue(r.getheader("Content-Type").startswith("text/plain; version=0.0.4"))
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        for name in ("cairn_requests", "cairn_request_duration_seconds", "cairn_plugin_up",
                     "cairn_process_cpu_seconds", "cairn_process_resident_memory_bytes",
                     "cairn_kernel_uptime_seconds"):
            self.assertIn(name, fams, sorted(fams))

        def sample(fam, suffix="", **labels):
            for s in fams[fam].samples:
                if s.name == fam + suffix and all(s.labels.get(k) == v
                                                  for k, v in labels.items()):
                    return s.value
            return None

        self.assertGreaterEqual(sample("cairn_requests", "_total", service="echo",
                                       verb="echo", **{"class": "2xx"}), 3)
        self.assertGreaterEqual(sample("cairn_requests", "_total", service="tracking",
                                       verb="get_run", **{"class": "4xx"}), 1)
        inf = sample("cairn_request_duration_seconds", "_bucket", service="echo",
                     verb="echo", le="+Inf")
        self.assertEqual(inf, sample("cairn_request_duration_seconds", "_count",
                                     service="echo", verb="echo"))
        self.assertEqual(sample("cairn_plugin_up", service="echo"), 1)
        self.assertGreater(sample("cairn_process_resident_memory_bytes",
                                  process="cairnd"), 1 << 20)
        if self.MODE == "process":
            self.assertGreater(sample("cairn_process_resident_memory_bytes",
                                      process="gateway"), 0)
        # tracking's points ingested, from its stats verb
        self.assertGreaterEqual(sample("cairn_points_ingested", "_total",
                                       service="tracking"), before + 7)

    def test_json_rest_for_every_verb(self):
        st, b = self.req("GET", "/api/v1/")
        self.assertEqual(st, 200)
        names = {s["name"] for s in b["services"]}
        self.assertLessEqual({"sys", "tracking", "registry", "echo", "gateway"}, names)
        st, b = self.req("POST", "/api/v1/echo/echo", {"x": [1, 2.5, "é", None],
                                                       "b": {"$bin": "AAEC"}})
        self.assertEqual((st, b), (200, {"x": [1, 2.5, "é", None], "b": {"$bin": "AAEC"}}))
        st, b = self.req("POST", "/api/v1/sys/ping")
        self.assertEqual((st, b["pong"]), (200, True))
        st, b = self.req("POST", "/api/v1/gateway/info")
        self.assertEqual((st, b["port"]), (200, self.port))
        st, b = self.req("POST", "/api/v1/registry/create_registered_model",
                         {"name": f"gw-{self.MODE}"})
        self.assertEqual((st, b["registered_model"]["name"]), (200, f"gw-{self.MODE}"))

    def test_errors_are_json_with_the_bus_status(self):
        for method, path, body, st, code in (
                ("POST", "/api/v1/nope/x", {}, 404, "no_service"),
                ("POST", "/api/v1/echo/nope", {}, 404, "no_verb"),
                ("POST", "/api/v1/tracking/get_run", {}, 400, "bad_request"),
                ("POST", "/api/v1/tracking/get_run", {"run_id": "f" * 32}, 404, "not_found"),
                ("GET", "/api/v1/echo/echo", None, 405, "method_not_allowed"),
                ("POST", "/api/v1/echo", {}, 404, "not_found"),
                # (a path outside the API's is Cairn Studio's: test_gateway_static)
                ("GET", "/api/nowhere", None, 404, "not_found")):
            got, b = self.req(method, path, body)
            self.assertEqual((got, b["status"], b["code"]), (st, st, code), (path, b))
            self.assertTrue(b["error"])
        for raw in (b"{", b"[1,", b'{"a": 1, "a": 2}', b"\xff"):
            got, b = self.req("POST", "/api/v1/echo/echo", raw=raw)
            self.assertEqual((got, b["code"]), (400, "bad_request"), raw)
        deep = b"[" * 40 + b"]" * 40
        got, b = self.req("POST", "/api/v1/echo/echo", raw=deep)
        self.assertEqual(got, 400, b)
        got, b = self.req("POST", "/api/v1/echo/echo", raw=b"x" * (65 << 10))
        self.assertEqual((got, b["code"]), (413, "too_large"))
        # the connection is still good afterwards (a fresh one after a 413)
        self.conn.close()
        self.assertEqual(self.req("GET", "/healthz")[0], 200)
        got, b = self.req("POST", "/api/v1/echo/echo", headers={"Authorization": "Basic x"})
        self.assertEqual(got, 401)

    def raw(self, data, close_after_send=False):
        """Send raw bytes on a new connection; what comes back before it
        closes (or 5 s pass)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            s.sendall(data)
            if close_after_send:
                return b""
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and not out.startswith(b"HTTP/1.1 100"):
                    break
            return out
        finally:
            s.close()

    def test_bad_http_is_refused_without_harm(self):
        for data in (b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"\x00\xff\r\n\r\n",
                     b"GET /healthz HTTP/9.9\r\n\r\n",
                     b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 200_000 + b"\r\n\r\n",
                     b"POST /api/v1/echo/echo HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: -5\r\n\r\n"):
            out = self.raw(data)
            self.assertTrue(out == b"" or re.match(rb"HTTP/1\.[01] (4|505)", out),
                            (data[:40], out[:80]))
        # a body shorter than declared, then the client goes away
        self.raw(b"POST /api/v1/echo/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                 b"\r\n{\"a\"", close_after_send=True)
        self.conn.close()
        self.assertEqual(self.req("GET", "/healthz")[0], 200)

    def test_workspaces(self):
        name = f"ws-exp-{self.MODE}"
        st, b = self.req("POST", "/ws/team-a/api/2.0/mlflow/experiments/create",
                         {"name": name})
        self.assertEqual(st, 200, b)
        st, b = self.req("GET", f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}",
                         headers={"cairn-workspace": "team-a"})
        self.assertEqual((st, b["experiment"]["name"]), (200, name))
        st, b = self.req("GET", f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}")
        self.assertEqual((st, b["error_code"]), (404, "RESOURCE_DOES_NOT_EXIST"))
        self.assertEqual(self.req("GET", "/ws//api/v1/")[0], 400)

    def test_mlflow_tracking(self):
        p = "/api/2.0/mlflow/"
        st, b = self.req("POST", p + "experiments/create", {"name": f"mlflow-{self.MODE}"})
        self.assertEqual(st, 200, b)
        exp = b["experiment_id"]
        st, b = self.req("POST", p + "experiments/create", {"name": f"mlflow-{self.MODE}"})
        self.assertEqual((st, b["error_code"]), (400, "RESOURCE_ALREADY_EXISTS"))
        st, b = self.req("GET", p + f"experiments/get?experiment_id={exp}")
        self.assertEqual((st, b["experiment"]["experiment_id"]), (200, exp))
        st, b = self.req("POST", p + "runs/create", {"experiment_id": exp, "start_time": 1000,
                                                     "tags": [{"key": "t", "value": "v"}]})
        self.assertEqual(st, 200, b)
        run = b["run"]["info"]["run_id"]
        for route, body in (("runs/log-metric", {"run_id": run, "key": "loss", "value": 0.5,
                                                 "timestamp": 1001, "step": 1}),
                            ("runs/log-parameter", {"run_id": run, "key": "lr",
                                                    "value": "0.1"}),
                            ("runs/set-tag", {"run_id": run, "key": "k", "value": "v"}),
                            ("runs/log-batch", {"run_id": run, "metrics": [
                                {"key": "loss", "value": 0.25, "timestamp": 1002, "step": 2}]})):
            st, b = self.req("POST", p + route, body)
            self.assertEqual(st, 200, (route, b))
        st, b = self.req("GET", p + f"runs/get?run_id={run}")
        self.assertEqual(st, 200, b)
        self.assertNotIn("end_time", b["run"]["info"])  # unset: left out, as proto3 does
        metrics = {m["key"]: m["value"] for m in b["run"]["data"]["metrics"]}
        self.assertEqual(metrics, {"loss": 0.25})
        # proto3's JSON, as MLflow's client writes it: int64 (and a metric's
        # value) as strings
        st, b = self.req("POST", p + "runs/log-metric", {"run_id": run, "key": "acc",
                                                         "value": "0.75",
                                                         "timestamp": "1003", "step": "4"})
        self.assertEqual(st, 200, b)
        st, b = self.req("POST", p + "runs/log-batch", {"run_id": run, "metrics": [
            {"key": "acc", "value": "0.8", "timestamp": "1004", "step": "5"}],
            "params": [{"key": "depth", "value": "7"}]})
        self.assertEqual(st, 200, b)
        st, b = self.req("GET", p + f"metrics/get-history?run_id={run}&metric_key=acc")
        self.assertEqual([(m["step"], m["value"]) for m in b["metrics"]], [(4, 0.75), (5, 0.8)])
        st, b = self.req("GET", p + f"runs/get?run_id={run}")
        params = {x["key"]: x["value"] for x in b["run"]["data"]["params"]}
        self.assertEqual(params["depth"], "7")  # a param's value stays text
        st, b = self.req("GET", f"/ajax-api/2.0/mlflow/metrics/get-history?run_id={run}"
                                "&metric_key=loss&max_results=10")
        self.assertEqual([m["step"] for m in b["metrics"]], [1, 2], b)
        st, b = self.req("POST", p + "runs/search", {"experiment_ids": [exp],
                                                     "filter": "metrics.loss < 0.3",
                                                     "max_results": 5})
        self.assertEqual([r["info"]["run_id"] for r in b["runs"]], [run])
        # Cairn's filter extensions through MLflow's route: OR, parentheses
        st, b = self.req("POST", p + "runs/create", {"experiment_id": exp, "start_time": 900})
        other = b["run"]["info"]["run_id"]
        self.req("POST", p + "runs/set-tag", {"run_id": other, "key": "team", "value": "b"})
        st, b = self.req("POST", p + "runs/search", {
            "experiment_ids": [exp],
            "filter": "(metrics.loss < 0.3 AND params.lr = '0.1') OR tags.team = 'b'"})
        self.assertEqual(st, 200, b)
        self.assertEqual(sorted(r["info"]["run_id"] for r in b["runs"]), sorted([run, other]))
        st, b = self.req("POST", p + "runs/search", {
            "experiment_ids": [exp], "filter": "tags.team = 'b' OR (metrics.loss > 9)"})
        self.assertEqual([r["info"]["run_id"] for r in b["runs"]], [other])
        # MLflow's log-batch limits, which its client splits batches by
        m = {"key": "k", "value": 1, "timestamp": 1, "step": 0}
        for body, word in (({"metrics": [m] * 1001}, "1000 metrics"),
                           ({"params": [{"key": f"p{i}", "value": "v"} for i in range(101)]},
                            "100 params"),
                           ({"metrics": [m] * 950, "tags": [{"key": "t", "value": "v"}] * 60},
                            "in total")):
            st, b = self.req("POST", p + "runs/log-batch", dict(body, run_id=run))
            self.assertEqual((st, b["error_code"]), (400, "INVALID_PARAMETER_VALUE"))
            self.assertIn(word, b["message"])
        st, b = self.req("POST", p + "runs/update", {"run_id": run, "status": "FINISHED",
                                                     "end_time": 2000})
        self.assertEqual(st, 200, b)
        st, b = self.req("GET", p + "metrics/get-history?run_id=x&metric_key=%ff")
        self.assertEqual((st, b["error_code"]), (400, "INVALID_PARAMETER_VALUE"))
        self.assertIn("not UTF-8", b["message"])
        st, b = self.req("POST", p + "runs/log-metric", {"run_id": run, "key": "x", "value": 1,
                                                         "timestamp": "9" * 20})
        self.assertEqual((st, b["error_code"]), (400, "INVALID_PARAMETER_VALUE"))
        st, b = self.req("GET", p + "runs/get?run_id=" + "0" * 32)
        self.assertEqual((st, b["error_code"]), (404, "RESOURCE_DOES_NOT_EXIST"))
        st, b = self.req("POST", p + "runs/log-metric", {"run_id": run, "key": "x"})
        self.assertEqual((st, b["error_code"]), (400, "INVALID_PARAMETER_VALUE"))
        st, b = self.req("GET", p + "runs/create")
        self.assertEqual((st, b["error_code"]), (405, "ENDPOINT_NOT_FOUND"))
        st, b = self.req("POST", p + "runs/no-such")
        self.assertEqual((st, b["error_code"]), (404, "ENDPOINT_NOT_FOUND"))

    def test_mlflow_paging(self):
        """next_page_token through every route MLflow's client pages with:
        each page at most max_results, all items once, no token on the
        last page; a token as text in a GET's query string."""
        p = "/api/2.0/mlflow/"
        tag = f"page-{self.MODE}"
        st, b = self.req("POST", p + "experiments/create", {"name": tag})
        exp = b["experiment_id"]
        runs = set()
        for i in range(7):
            st, b = self.req("POST", p + "runs/create", {"experiment_id": exp,
                                                         "start_time": 1000 + i})
            runs.add(b["run"]["info"]["run_id"])
        run = sorted(runs)[0]
        self.req("POST", p + "runs/log-batch", {"run_id": run, "metrics": [
            {"key": "m", "value": i, "timestamp": "1", "step": str(i)} for i in range(5)]})
        for i in range(5):
            self.req("POST", p + "experiments/create", {"name": f"{tag}-{i}"})
            self.req("POST", p + "registered-models/create", {"name": f"{tag}-{i}"})

        def pages(method, route, body, key, size):
            seen, token = [], None
            for _ in range(20):
                q = dict(body, max_results=size)
                if token:
                    q["page_token"] = token
                if method == "GET":
                    st, b = self.req("GET", p + route + "?" + urllib.parse.urlencode(q))
                else:
                    st, b = self.req("POST", p + route, q)
                self.assertEqual(st, 200, b)
                self.assertLessEqual(len(b.get(key, [])), size)
                seen += b.get(key, [])
                token = b.get("next_page_token")
                if not token:
                    return seen
            self.fail(f"{route}: no last page")

        got = pages("POST", "runs/search", {"experiment_ids": [exp]}, "runs", 3)
        self.assertEqual(sorted(r["info"]["run_id"] for r in got), sorted(runs))
        got = pages("GET", "experiments/search", {"filter": f"name LIKE '{tag}-%'"},
                    "experiments", 2)
        self.assertEqual(sorted(e["name"] for e in got), [f"{tag}-{i}" for i in range(5)])
        got = pages("GET", "registered-models/search", {"filter": f"name LIKE '{tag}-%'"},
                    "registered_models", 2)
        self.assertEqual(sorted(m["name"] for m in got), [f"{tag}-{i}" for i in range(5)])
        got = pages("GET", "metrics/get-history", {"run_id": run, "metric_key": "m"},
                    "metrics", 2)
        self.assertEqual([m["step"] for m in got], [0, 1, 2, 3, 4])
        st, b = self.req("POST", p + "runs/search", {"experiment_ids": [exp],
                                                     "page_token": "not a token"})
        self.assertEqual((st, b["error_code"]), (400, "INVALID_PARAMETER_VALUE"))

    def test_mlflow_remaining_routes(self):
        """The routes the other cases do not drive, as MLflow's client calls
        them, each checked by what it changed."""
        p = "/api/2.0/mlflow/"
        name = f"rest-{self.MODE}"
        st, b = self.req("POST", p + "experiments/create", {"name": name})
        exp = b["experiment_id"]
        st, b = self.req("POST", p + "experiments/update", {"experiment_id": exp,
                                                            "new_name": name + "-b"})
        self.assertEqual(st, 200, b)
        st, b = self.req("POST", p + "experiments/set-experiment-tag",
                         {"experiment_id": exp, "key": "owner", "value": "ada"})
        self.assertEqual(st, 200, b)
        st, b = self.req("POST", p + "experiments/search",
                         {"filter": f"name = '{name}-b'", "max_results": 10})
        got = b["experiments"][0]
        self.assertEqual((got["name"], got["tags"]), (name + "-b", [{"key": "owner",
                                                                     "value": "ada"}]))
        st, b = self.req("POST", p + "experiments/delete", {"experiment_id": exp})
        st, b = self.req("POST", p + "experiments/restore", {"experiment_id": exp})
        self.assertEqual(st, 200, b)
        st, b = self.req("GET", p + f"experiments/get?experiment_id={exp}")
        self.assertEqual(b["experiment"]["lifecycle_stage"], "active")
        st, b = self.req("POST", p + "runs/create", {"experiment_id": exp})
        run = b["run"]["info"]["run_id"]
        st, b = self.req("POST", p + "runs/log-parameter", {"run_id": run, "key": "lr",
                                                            "value": "0.1"})
        st, b = self.req("POST", p + "runs/set-tag", {"run_id": run, "key": "t", "value": "v"})
        st, b = self.req("POST", p + "runs/delete-tag", {"run_id": run, "key": "t"})
        self.assertEqual(st, 200, b)
        st, b = self.req("POST", p + "runs/delete", {"run_id": run})
        st, b = self.req("POST", p + "runs/restore", {"run_id": run})
        self.assertEqual(st, 200, b)
        st, b = self.req("GET", p + f"runs/get?run_id={run}")
        data = b["run"]["data"]
        self.assertEqual((b["run"]["info"]["lifecycle_stage"], data["params"]),
                         ("active", [{"key": "lr", "value": "0.1"}]))
        self.assertNotIn("t", [t["key"] for t in data.get("tags", [])])
        art = "/api/2.0/mlflow-artifacts/artifacts/" + b["run"]["info"]["artifact_uri"][
            len("mlflow-artifacts:/"):]
        self.conn.request("PUT", art + "/d/f.txt", body=b"hello")
        self.conn.getresponse().read()
        st, b = self.req("GET", p + f"artifacts/list?run_id={run}&path=d")
        self.assertEqual((st, [f["path"] for f in b["files"]]), (200, ["d/f.txt"]), b)
        # the registry's remaining routes
        st, b = self.req("POST", p + "registered-models/create", {"name": name})
        st, b = self.req("POST", p + "registered-models/rename", {"name": name,
                                                                  "new_name": name + "-r"})
        self.assertEqual((st, b["registered_model"]["name"]), (200, name + "-r"), b)
        name += "-r"
        st, b = self.req("PATCH", p + "registered-models/update", {"name": name,
                                                                   "description": "d1"})
        self.assertEqual((st, b["registered_model"]["description"]), (200, "d1"), b)
        st, b = self.req("POST", p + "registered-models/set-tag", {"name": name, "key": "k",
                                                                   "value": "v"})
        st, b = self.req("DELETE", p + "registered-models/delete-tag", {"name": name,
                                                                        "key": "k"})
        self.assertEqual(st, 200, b)
        st, b = self.req("POST", p + "model-versions/create", {"name": name,
                                                               "source": "s3://b/x"})
        st, b = self.req("PATCH", p + "model-versions/update", {"name": name, "version": "1",
                                                                "description": "v1"})
        self.assertEqual((st, b["model_version"]["description"]), (200, "v1"), b)
        st, b = self.req("POST", p + "model-versions/set-tag", {"name": name, "version": "1",
                                                                "key": "k", "value": "v"})
        st, b = self.req("GET", p + f"model-versions/get?name={name}&version=1")
        self.assertEqual(b["model_version"]["tags"], [{"key": "k", "value": "v"}])
        st, b = self.req("DELETE", p + "model-versions/delete-tag", {"name": name,
                                                                     "version": "1", "key": "k"})
        self.assertEqual(st, 200, b)
        st, b = self.req("POST", p + "registered-models/alias", {"name": name, "alias": "a",
                                                                 "version": "1"})
        st, b = self.req("DELETE", p + "registered-models/alias", {"name": name, "alias": "a"})
        self.assertEqual(st, 200, b)
        st, b = self.req("GET", p + f"registered-models/get?name={name}")
        self.assertEqual((b["registered_model"].get("tags", []),
                          b["registered_model"].get("aliases", [])), ([], []))
        st, b = self.req("DELETE", p + "model-versions/delete", {"name": name, "version": "1"})
        self.assertEqual(st, 200, b)
        st, b = self.req("GET", p + f"model-versions/get?name={name}&version=1")
        self.assertEqual((st, b["error_code"]), (404, "RESOURCE_DOES_NOT_EXIST"))

    def test_mlflow_nan_and_infinities(self):
        """proto3's JSON writes a double's NaN and infinities as the strings
        "NaN", "Infinity", "-Infinity" (MLflow's client sends a NaN loss
        so); they are stored as such and read back the same way."""
        p = "/api/2.0/mlflow/"
        st, b = self.req("POST", p + "experiments/create", {"name": f"nan-{self.MODE}"})
        st, b = self.req("POST", p + "runs/create", {"experiment_id": b["experiment_id"]})
        run = b["run"]["info"]["run_id"]
        st, b = self.req("POST", p + "runs/log-metric", {"run_id": run, "key": "loss",
                                                         "value": "NaN", "timestamp": "5",
                                                         "step": "0"})
        self.assertEqual(st, 200, b)
        st, b = self.req("POST", p + "runs/log-batch", {"run_id": run, "metrics": [
            {"key": "hi", "value": "Infinity", "timestamp": 5, "step": 0},
            {"key": "lo", "value": "-Infinity", "timestamp": "5", "step": "0"},
            {"key": "loss", "value": 1.5, "timestamp": 6, "step": 1}]})
        self.assertEqual(st, 200, b)
        st, b = self.req("GET", p + f"runs/get?run_id={run}")
        latest = {m["key"]: m["value"] for m in b["run"]["data"]["metrics"]}
        self.assertEqual(latest, {"hi": "Infinity", "lo": "-Infinity", "loss": 1.5})
        st, b = self.req("GET", p + f"metrics/get-history?run_id={run}&metric_key=loss")
        self.assertEqual([m["value"] for m in b["metrics"]], ["NaN", 1.5])
        st, b = self.req("POST", p + "runs/log-metric", {"run_id": run, "key": "x",
                                                         "value": "lots", "timestamp": 1})
        self.assertEqual((st, b["error_code"]), (400, "INVALID_PARAMETER_VALUE"))

    def test_mlflow_log_model_and_experiment_tags(self):
        """runs/log-model appends each MLmodel (as JSON) to the run's tag
        mlflow.log-model.history, as MLflow's stores do;
        experiments/delete-experiment-tag."""
        p = "/api/2.0/mlflow/"
        st, b = self.req("POST", p + "experiments/create", {"name": f"lm-{self.MODE}",
                                                            "tags": [{"key": "k",
                                                                      "value": "v"}]})
        exp = b["experiment_id"]
        st, b = self.req("POST", p + "experiments/delete-experiment-tag",
                         {"experiment_id": exp, "key": "k"})
        self.assertEqual((st, b), (200, {}))
        st, b = self.req("GET", p + f"experiments/get?experiment_id={exp}")
        self.assertEqual(b["experiment"].get("tags", []), [])
        st, b = self.req("POST", p + "experiments/delete-experiment-tag",
                         {"experiment_id": exp, "key": "k"})
        self.assertEqual((st, b["error_code"]), (404, "RESOURCE_DOES_NOT_EXIST"))
        st, b = self.req("POST", p + "runs/create", {"experiment_id": exp})
        run = b["run"]["info"]["run_id"]
        models = [{"artifact_path": "model", "run_id": run,
                   "flavors": {"xgboost": {"xgb_version": "1.7.6"}}},
                  {"artifact_path": "model2", "run_id": run, "flavors": {}}]
        for m in models:
            st, b = self.req("POST", p + "runs/log-model", {"run_id": run,
                                                            "model_json": json.dumps(m)})
            self.assertEqual((st, b), (200, {}))
        st, b = self.req("GET", p + f"runs/get?run_id={run}")
        tags = {t["key"]: t["value"] for t in b["run"]["data"]["tags"]}
        self.assertEqual(json.loads(tags["mlflow.log-model.history"]), models)
        for bad in ({"run_id": run}, {"run_id": run, "model_json": "not json"},
                    {"run_id": run, "model_json": "[1, 2]"}):
            st, b = self.req("POST", p + "runs/log-model", bad)
            self.assertEqual((st, b["error_code"]), (400, "INVALID_PARAMETER_VALUE"))
        # past the gateway's max_body (64 KiB here): refused before the
        # route, in MLflow's shape too
        st, b = self.req("POST", p + "runs/log-model", {"run_id": run,
                                                        "model_json": "x" * (300 << 10)})
        self.assertEqual((st, b["error_code"], b["code"]), (413, "INVALID_PARAMETER_VALUE",
                                                             "too_large"))

    def test_mlflow_register_from_a_run(self):
        """mlflow.register_model("runs:/RUN/model") sends the run's artifact
        URI as the source (mlflow-artifacts:/EXP/RUN/artifacts/model, as this
        gateway gives it out); the version pins those bytes as for runs:/."""
        p = "/api/2.0/mlflow/"
        st, b = self.req("POST", p + "experiments/create", {"name": f"reg-{self.MODE}"})
        st, b = self.req("POST", p + "runs/create", {"experiment_id": b["experiment_id"]})
        info = b["run"]["info"]
        self.conn.request("PUT", "/api/2.0/mlflow-artifacts/artifacts/" +
                          info["artifact_uri"][len("mlflow-artifacts:/"):] + "/model/MLmodel",
                          body=b"flavors:\n  python_function: {}\n")
        r = self.conn.getresponse()
        self.assertEqual(r.status, 200, r.read())
        r.read()
        name = f"from-run-{self.MODE}"
        self.req("POST", p + "registered-models/create", {"name": name})
        st, b = self.req("POST", p + "model-versions/create", {
            "name": name, "source": info["artifact_uri"] + "/model", "run_id": info["run_id"]})
        self.assertEqual(st, 200, b)
        v = b["model_version"]
        self.assertEqual(v["source"], f"runs:/{info['run_id']}/model")
        self.assertEqual(v["flavor"], "python")
        self.assertTrue(v["content_hash"].startswith("sha256:"), v)
        # MLflow's client downloads it as get-download-uri says: through the
        # proxy, from the registry, whatever happens to the run's files
        st, b = self.req("GET", p + f"model-versions/get-download-uri?name={name}&version=1")
        self.assertEqual((st, b["artifact_uri"]), (200, f"mlflow-artifacts:/_models/{name}/1"))
        art = "/api/2.0/mlflow-artifacts/artifacts"
        run_file = f"{art}/{info['artifact_uri'][len('mlflow-artifacts:/'):]}/model/MLmodel"
        self.assertEqual(self.req("DELETE", run_file)[0], 200)
        self.assertEqual(self.req("GET", run_file)[0], 404)
        st, b = self.req("GET", f"{art}?path=_models/{name}/1")
        self.assertEqual((st, b), (200, {"files": [{"path": "MLmodel", "is_dir": False,
                                                     "file_size": 31}]}))
        self.conn.request("GET", f"{art}/_models/{name}/1/MLmodel")
        r = self.conn.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"flavors:\n  python_function: {}\n"))
        for method, path, want in (("GET", f"{art}/_models/{name}/9/MLmodel", 404),
                                   ("GET", f"{art}/_models/{name}/1/nosuch", 404),
                                   ("PUT", f"{art}/_models/{name}/1/MLmodel", 405),
                                   ("DELETE", f"{art}/_models/{name}/1/MLmodel", 405),
                                   ("GET", f"{art}?path=_models/{name}", 400)):
            st, b = self.req(method, path, {} if method == "PUT" else None)
            self.assertEqual(st, want, (method, path, b))

    def test_mlflow_log_inputs(self):
        """runs/log-inputs as mlflow.log_input sends it (a DatasetInput per
        dataset, its tags the context); runs/get shows them under
        inputs.dataset_inputs; logging one again adds nothing."""
        p = "/api/2.0/mlflow/"
        st, b = self.req("POST", p + "experiments/create", {"name": f"inputs-{self.MODE}"})
        st, b = self.req("POST", p + "runs/create", {"experiment_id": b["experiment_id"]})
        run = b["run"]["info"]["run_id"]
        ds = {"name": "wine", "digest": "3d8b0e6a", "source_type": "local",
              "source": '{"uri": "/data/wine.csv"}',
              "schema": '{"mlflow_colspec": [{"type": "double", "name": "ph"}]}',
              "profile": '{"num_rows": 178}'}
        body = {"run_id": run, "datasets": [
            {"tags": [{"key": "mlflow.data.context", "value": "training"}], "dataset": ds},
            {"dataset": dict(ds, name="wine-eval", digest="77aa")}]}
        st, b = self.req("POST", p + "runs/log-inputs", {"run_id": run, "datasets": []})
        self.assertEqual((st, b), (200, {}))
        st, b = self.req("GET", p + f"runs/get?run_id={run}")
        self.assertNotIn("inputs", b["run"])  # omitted when empty, as proto3 does
        self.assertEqual(self.req("POST", p + "runs/log-inputs", body)[0], 200)
        st, b = self.req("GET", p + f"runs/get?run_id={run}")
        inputs = b["run"]["inputs"]["dataset_inputs"]
        self.assertEqual(len(inputs), 2, inputs)
        self.assertEqual(inputs[0]["dataset"], ds)
        self.assertEqual(inputs[0]["tags"], [{"key": "mlflow.data.context",
                                              "value": "training"}])
        self.assertEqual((inputs[1]["dataset"]["name"], inputs[1]["tags"]), ("wine-eval", []))
        for bad in ({"run_id": run},
                    {"run_id": run, "datasets": [{"dataset": dict(ds, digest="")}]},
                    {"run_id": run, "datasets": [{"dataset": dict(ds, digest="x" * 37)}]},
                    {"run_id": run, "datasets": [{"dataset": {"name": "n"}}]},
                    {"run_id": run, "datasets": [{"dataset": ds, "tags": [{"key": 1}]}]},
                    {"run_id": run, "datasets": ["not a map"]}):
            st, b = self.req("POST", p + "runs/log-inputs", bad)
            self.assertEqual((st, b["error_code"]), (400, "INVALID_PARAMETER_VALUE"), bad)
        st, b = self.req("POST", p + "runs/log-inputs", {"run_id": "0" * 32, "datasets": []})
        self.assertEqual((st, b["error_code"]), (404, "RESOURCE_DOES_NOT_EXIST"))
        # all or none: a bad second dataset stores not the first
        st, b = self.req("POST", p + "runs/log-inputs", {"run_id": run, "datasets": [
            {"dataset": dict(ds, name="third")}, {"dataset": {}}]})
        self.assertEqual(st, 400, b)
        self.assertIn("datasets[1]", b["message"])
        st, b = self.req("GET", p + f"runs/get?run_id={run}")
        self.assertEqual(len(b["run"]["inputs"]["dataset_inputs"]), 2)
        st, b = self.req("POST", p + "runs/search", {"experiment_ids": [b["run"]["info"][
            "experiment_id"]]})
        self.assertEqual(len(b["runs"][0]["inputs"]["dataset_inputs"]), 2)  # search too

    def test_mlflow_artifact_proxy(self):
        """PUT, GET, list and DELETE under mlflow-artifacts, as MLflow's
        http_artifact_repo sends them: a 9 MiB file (three 4 MiB chunks on
        the bus), streamed both ways, bytes equal."""
        p = "/api/2.0/mlflow/"
        st, b = self.req("POST", p + "experiments/create", {"name": f"art-{self.MODE}"})
        exp = b["experiment_id"]
        st, b = self.req("POST", p + "runs/create", {"experiment_id": exp})
        run = b["run"]["info"]["run_id"]
        # MLflow's client finds the proxy from the run's artifact_uri
        uri = b["run"]["info"]["artifact_uri"]
        self.assertEqual(uri, f"mlflow-artifacts:/{exp}/{run}/artifacts")
        st, b = self.req("GET", p + f"experiments/get?experiment_id={exp}")
        self.assertTrue(b["experiment"]["artifact_location"].startswith("mlflow-artifacts:/"))
        st, b = self.req("POST", "/api/v1/tracking/get_run", {"run_id": run})
        self.assertTrue(b["run"]["info"]["artifact_uri"].startswith("cairn-artifacts:/"))
        base = "/api/2.0/mlflow-artifacts/artifacts/" + uri[len("mlflow-artifacts:/"):]
        data = os.urandom((9 << 20) + 123)  # over max_body (64 KiB): streamed
        st, b = self.req("PUT", base + "/model/model.bin", raw=data,
                         headers={"Content-Type": "application/octet-stream"})
        self.assertEqual((st, b), (200, {}))
        st, _ = self.req("PUT", base + "/model/empty.txt", raw=b"",
                         headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(st, 200)
        self.conn.request("GET", base + "/model/model.bin")
        r = self.conn.getresponse()
        got = r.read()
        self.assertEqual((r.status, len(got), got == data), (200, len(data), True))
        st, b = self.req("GET", "/api/2.0/mlflow-artifacts/artifacts"
                                f"?path={exp}/{run}/artifacts/model")
        self.assertEqual(st, 200, b)
        self.assertEqual(sorted((f["path"], f.get("file_size")) for f in b["files"]),
                         [("empty.txt", 0), ("model.bin", len(data))])
        st, b = self.req("GET", "/api/2.0/mlflow-artifacts/artifacts"
                                f"?path={exp}/{run}/artifacts")
        self.assertEqual([(f["path"], f["is_dir"]) for f in b["files"]], [("model", True)])
        st, b = self.req("DELETE", base + "/model/empty.txt")
        self.assertEqual(st, 200, b)
        st, b = self.req("GET", base + "/model/empty.txt")
        self.assertEqual((st, b["error_code"]), (404, "RESOURCE_DOES_NOT_EXIST"))
        st, b = self.req("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{'0' * 32}"
                                "/artifacts/x", raw=b"abc",
                         headers={"Content-Type": "application/octet-stream"})
        self.assertEqual((st, b["error_code"]), (404, "RESOURCE_DOES_NOT_EXIST"))
        st, b = self.req("GET", "/api/2.0/mlflow-artifacts/artifacts/nonsense")
        self.assertEqual(st, 404)
        st, b = self.req("GET", "/api/2.0/mlflow-artifacts/artifacts?path=x")
        self.assertEqual((st, b["error_code"]), (400, "INVALID_PARAMETER_VALUE"))

    def test_mlflow_registry(self):
        p = "/api/2.0/mlflow/"
        name = f"gw-model-{self.MODE}"
        st, b = self.req("POST", p + "registered-models/create", {"name": name})
        self.assertEqual(st, 200, b)
        st, b = self.req("POST", p + "model-versions/create", {"name": name,
                                                               "source": "s3://b/m"})
        self.assertEqual((st, b["model_version"]["version"]), (200, 1), b)
        st, b = self.req("POST", p + "registered-models/alias", {"name": name,
                                                                 "alias": "champion",
                                                                 "version": "1"})
        self.assertEqual(st, 200, b)
        st, b = self.req("GET", p + f"registered-models/alias?name={name}&alias=champion")
        self.assertEqual((st, b["model_version"]["version"]), (200, 1), b)
        st, b = self.req("GET", p + f"model-versions/get-download-uri?name={name}&version=1")
        self.assertEqual((st, b["artifact_uri"]), (200, "s3://b/m"))
        st, b = self.req("GET", p + f"model-versions/search?filter=name%3D%27{name}%27")
        self.assertEqual([v["version"] for v in b["model_versions"]], [1], b)
        # the stage API, as MLflow 2.x's client resolves models:/NAME/latest
        st, b = self.req("POST", p + "model-versions/create", {"name": name,
                                                               "source": "s3://b/m2"})
        st, b = self.req("GET", p + f"registered-models/get-latest-versions?name={name}")
        self.assertEqual((st, [v["version"] for v in b["model_versions"]]), (200, [2]), b)
        st, b = self.req("POST", p + "registered-models/get-latest-versions",
                         {"name": name, "stages": ["None"]})
        self.assertEqual([v["version"] for v in b["model_versions"]], [2], b)
        st, b = self.req("POST", p + "registered-models/get-latest-versions",
                         {"name": name, "stages": ["Production"]})
        self.assertEqual((st, b), (200, {"model_versions": []}))
        st, b = self.req("GET", p + "registered-models/get-latest-versions?name=nosuch")
        self.assertEqual((st, b["error_code"]), (404, "RESOURCE_DOES_NOT_EXIST"))
        st, b = self.req("POST", p + "model-versions/transition-stage",
                         {"name": name, "version": "1", "stage": "Production"})
        self.assertEqual((st, b["error_code"]), (400, "INVALID_PARAMETER_VALUE"))
        self.assertIn("aliases", b["message"])
        st, b = self.req("DELETE", p + "registered-models/delete", {"name": name})
        self.assertEqual(st, 200, b)
        st, b = self.req("GET", p + f"registered-models/get?name={name}")
        self.assertEqual((st, b["error_code"]), (404, "RESOURCE_DOES_NOT_EXIST"))


class GatewayInproc(GatewayBase, unittest.TestCase):
    MODE = "inproc"


class GatewayProcess(GatewayBase, unittest.TestCase):
    MODE = "process"


class Auth(unittest.TestCase):
    """Tokens through the gateway against a kernel with `auth: auth`: a
    bearer token, HTTP Basic (logged in once through auth.login, then
    cached), a wrong password or none (401), a missing permission (403)."""

    @classmethod
    def setUpClass(cls):
        global BASE
        cls.base, BASE = BASE, BASE + "  auth:\n    plugin: auth\n    mode: inproc\n"
        cls.port = free_port()
        try:
            cls.k = GatewayKernel("inproc", cls.port, auth="auth").start()
        finally:
            BASE = cls.base
        with open(os.path.join(cls.k.state, "owner.token")) as f:
            cls.owner = f.read().strip()

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def req(self, method, path, body=None, auth=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            h = {"Content-Type": "application/json"}
            if auth:
                h["Authorization"] = auth
            conn.request(method, path, body=json.dumps(body or {}).encode(), headers=h)
            r = conn.getresponse()
            return r.status, json.loads(r.read().decode())
        finally:
            conn.close()

    @staticmethod
    def basic(user, password):
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def test_bearer_basic_and_refusals(self):
        owner = f"Bearer {self.owner}"
        for user, role in (("ada", "Data Scientist"), ("rita", "Reader")):
            st, b = self.req("POST", "/api/v1/auth/create_user",
                             {"user": user, "password": "a long password 1"}, owner)
            self.assertEqual(st, 200, b)
            st, b = self.req("POST", "/api/v1/auth/assign_role",
                             {"principal": user, "role": role}, owner)
            self.assertEqual(st, 200, b)
        ada = self.basic("ada", "a long password 1")
        st, b = self.req("POST", "/api/2.0/mlflow/experiments/create", {"name": "by-ada"}, ada)
        self.assertEqual(st, 200, b)
        st, b = self.req("GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=by-ada",
                         auth=ada)  # the cached login
        self.assertEqual(st, 200, b)
        st, b = self.req("POST", "/api/2.0/mlflow/experiments/create", {"name": "x"},
                         self.basic("ada", "wrong password"))
        self.assertEqual((st, b["error_code"]), (401, "UNAUTHENTICATED"))
        st, b = self.req("POST", "/api/2.0/mlflow/experiments/create", {"name": "x"})
        self.assertEqual((st, b["error_code"]), (401, "UNAUTHENTICATED"))
        self.assertIn("Authorization: Bearer", b["message"])  # says it in HTTP's terms
        st, b = self.req("POST", "/api/2.0/mlflow/experiments/create", {"name": "x"},
                         self.basic("rita", "a long password 1"))
        self.assertEqual((st, b["error_code"]), (403, "PERMISSION_DENIED"))
        st, b = self.req("POST", "/api/v1/tracking/create_experiment", {"name": "y"},
                         "Bearer not-a-token")
        self.assertEqual((st, b["code"]), (401, "unauthenticated"))
        st, b = self.req("POST", "/api/v1/echo/echo", {}, "Basic !!!")
        self.assertEqual(st, 401, b)
        # A changed password revokes the cached login: the old pair fails, the
        # new one logs in afresh.
        st, b = self.req("POST", "/api/v1/auth/change_password",
                         {"user": "ada", "password": "another password 2"}, owner)
        self.assertEqual(st, 200, b)
        st, b = self.req("GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=by-ada",
                         auth=ada)
        self.assertEqual(st, 401, b)
        st, b = self.req("GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=by-ada",
                         auth=self.basic("ada", "another password 2"))
        self.assertEqual(st, 200, b)


class Refusals(unittest.TestCase):
    def test_a_non_loopback_listener_is_refused(self):
        k = GatewayKernel("inproc", 0)
        k.http_port = None
        with open(k.conf) as f:
            conf = f.read().replace("listen: 127.0.0.1:0", "listen: 0.0.0.0:7799")
        with open(k.conf, "w") as f:
            f.write(conf)
        try:
            k.start(wait_up=False)
            wait_for(lambda: "not a loopback address" in k.read_log(),
                     what="the gateway's refusal")
            self.assertNotEqual(k.plugin("gateway")["state"], "up")
        finally:
            k.cleanup()


class ForwardedAddress(unittest.TestCase):
    """The gateway forwards its HTTP caller's address (the header `fwd`),
    so that auth's throttle on wrong passwords per address works through
    it; a tcp client's own `fwd` is ignored (only this host's ipc and
    inproc clients are taken at their word)."""

    AUTH = ("  auth:\n    plugin: auth\n    mode: inproc\n    settings:\n"
            "      pwhash_ops: 1\n      pwhash_mem: 8KiB\n      max_failures: 100\n"
            "      addr_failures: 4\n      throttle_loopback: true\n")

    def test_the_throttle_per_address_through_http(self):
        global BASE
        base, BASE = BASE, BASE + self.AUTH
        port = free_port()
        try:
            k = GatewayKernel("process", port, auth="auth").start()
        finally:
            BASE = base
        try:
            statuses = []
            for i in range(6):  # a different user name each time: no per-user lockout
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                cred = base64.b64encode(f"guess{i}:wrong password".encode()).decode()
                conn.request("GET", "/api/2.0/mlflow/experiments/search",
                             headers={"Authorization": "Basic " + cred})
                r = conn.getresponse()
                body = json.loads(r.read())
                statuses.append(r.status)
                conn.close()
            self.assertEqual(statuses[:4], [401] * 4, statuses)
            self.assertEqual(statuses[-1], 429, statuses)
            self.assertIn("from '127.0.0.1'", body["message"])
            # a tcp client cannot claim another address
            c = k.client()
            for i in range(5):
                h, b = c.call("auth", "login", {"user": f"tcp{i}", "password": "wrong password"},
                              fwd="10.9.8.7")
            self.assertEqual(h["st"], 429, h)
            self.assertIn("from '127.0.0.1'", h["err"])
            c.close()
        finally:
            k.cleanup()


class EveryRouteTested(unittest.TestCase):
    def test_every_mlflow_route_is_driven_by_a_test(self):
        """Each (method, path) of the gateway's MLflow table (read from its
        source, as the adversarial suite does) appears in these tests: a
        route added without a test fails here."""
        import adv_http
        here = os.path.dirname(os.path.abspath(__file__))
        text = ""
        for name in os.listdir(here):
            if name.startswith("test_gateway") and name.endswith(".py"):
                with open(os.path.join(here, name)) as f:
                    text += f.read()
        missing = [(m, r) for m, r in adv_http.mlflow_routes()
                   if not re.search(r'"%s",\s*(p \+ )?f?"[^"]*%s' % (m, re.escape(r)), text)]
        self.assertFalse(missing, "MLflow routes no test drives")


class TLS(unittest.TestCase):
    """HTTPS from a certificate and key in the conf (a self-signed pair made
    with openssl here), verified by the client; plain HTTP on that port is
    not served; a key open to others, a missing file or half a pair is
    refused at start with a sentence."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="cairn-tls-")
        cls.cert = os.path.join(cls.dir, "cert.pem")
        cls.key = os.path.join(cls.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", cls.key, "-out", cls.cert],
                       check=True, capture_output=True)
        os.chmod(cls.key, 0o600)

    @classmethod
    def tearDownClass(cls):
        for f in os.listdir(cls.dir):
            os.unlink(os.path.join(cls.dir, f))
        os.rmdir(cls.dir)

    def test_https(self):
        port = free_port()
        k = GatewayKernel("process", port, {"tls_cert": self.cert, "tls_key": self.key},
                          auth="none").start()
        try:
            ctx = ssl.create_default_context(cafile=self.cert)
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
            for _ in range(2):  # keep-alive over TLS
                conn.request("POST", "/api/2.0/mlflow/experiments/create",
                             body=json.dumps({"name": f"tls-{_}"}),
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                self.assertIn("experiment_id", json.loads(r.read()))
            conn.close()
            self.assertIn("HTTPS on https://127.0.0.1", k.read_log())
            # an unverified server is refused by a verifying client
            with self.assertRaises(ssl.SSLError):
                c = http.client.HTTPSConnection("127.0.0.1", port, timeout=30,
                                                context=ssl.create_default_context())
                c.request("GET", "/healthz")
            # plain HTTP gets no HTTP answer
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    got = s.recv(100)
                except (ConnectionResetError, socket.timeout):
                    got = b""
                self.assertFalse(got.startswith(b"HTTP/1.1 200"), got)
            self.assertEqual(k.plugin("gateway")["state"], "up")
        finally:
            k.cleanup()

    def refused(self, settings, sentence):
        k = GatewayKernel("inproc", free_port(), settings, auth="none")
        try:
            k.start(wait_up=False)
            wait_for(lambda: sentence in k.read_log(), what=sentence)
            self.assertNotEqual(k.plugin("gateway")["state"], "up")
        finally:
            k.cleanup()

    def test_refusals(self):
        open_key = os.path.join(self.dir, "open.pem")
        with open(self.key) as src, open(open_key, "w") as dst:
            dst.write(src.read())
        os.chmod(open_key, 0o644)
        self.refused({"tls_cert": self.cert, "tls_key": open_key}, "is open to others")
        self.refused({"tls_cert": self.cert}, "needs both a tls_cert and a tls_key")
        self.refused({"tls_cert": self.cert, "tls_key": self.dir + "/none.pem"},
                     "cannot read the TLS key")
        self.refused({"tls_cert": self.key, "tls_key": self.key}, "cannot listen for HTTPS")


if __name__ == "__main__":
    unittest.main()
