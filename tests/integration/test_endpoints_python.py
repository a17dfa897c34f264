"""Online endpoints, the python flavor (issue 17): a deployment whose
code_configuration names a scoring script (Azure ML's init()/run(raw_data)
contract) is served by worker processes of its own. Scored over HTTP; the
script's errors answered with its sentence (400 for ValueError, 500 for
the rest); a script whose init() fails refused at create with its
traceback; a worker killed under load from another process loses no
request and comes back; a request past request_timeout_ms answered 504
and its worker replaced; max_concurrent_requests enforced (429); a new
code version rolled in under load with no failed request; the workers'
logs through get_deployment_logs."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import msgpack
import zmq

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import DEADLINE, SOURCE, Kernel, free_port, wait_for  # noqa: E402
from test_endpoints import post, scorer_services  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
from cairn.endpoints import Endpoint, Endpoints  # noqa: E402
from cairn.registry import Registry  # noqa: E402

PORT = free_port()
SERVICES = scorer_services(PORT, [("timeout_s", 5), ("init_timeout_s", 30), ("threads", 8),
                                  ("metrics_event_s", 1)])

# The model: a folder with weights; the script scores a weighted sum.
SCORE = """\
import json, os, sys, time
W = None
VERSION = {version!r}

def init():
    global W
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "weights.json")) as f:
        W = json.load(f)
    print("init done", VERSION, flush=True)

def run(raw_data):
    body = json.loads(raw_data)
    if body.get("sleep"):
        time.sleep(body["sleep"])
    if body.get("boom"):
        raise RuntimeError("boom asked")
    rows = body["data"]
    if any(len(r) != len(W) for r in rows):
        raise ValueError(f"each row needs {{len(W)}} values")
    return [sum(a * b for a, b in zip(r, W)) + VERSION for r in rows]
"""


class PythonEndpoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=SERVICES).start()
        cls.c = cls.k.client()
        cls.reg = Registry(cls.k.endpoint)
        cls.tmp = tempfile.mkdtemp(dir=cls.k.tmp)
        model = os.path.join(cls.tmp, "model")
        os.makedirs(model)
        with open(os.path.join(model, "weights.json"), "w") as f:
            json.dump([1.0, 2.0, 3.0], f)
        cls.version = cls.reg.register_model(model, "weighted")["version"]
        cls.code = {v: cls.write_code(f"src{v}", SCORE.format(version=v)) for v in (0, 100)}

    @classmethod
    def write_code(cls, name, text, script="score.py"):
        d = os.path.join(cls.tmp, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, script), "w") as f:
            f.write(text)
        return d

    @classmethod
    def tearDownClass(cls):
        cls.reg.close()
        cls.c.close()
        cls.k.cleanup()

    def call(self, verb, body, st=200):
        h, b = self.c.call("endpoints", verb, body, timeout=DEADLINE + 60)
        self.assertEqual(h["st"], st, (verb, body, h))
        return b if st < 400 else h

    def deploy(self, endpoint, name, code, st=201, **extra):
        body = {"endpoint": endpoint, "name": name, "model": f"model:weighted:{self.version}",
                "code_configuration": {"code": code, "scoring_script": "score.py"}}
        body.update(extra)
        return self.call("create_deployment", body, st)

    def endpoint(self, name):
        ep = self.call("create_endpoint", {"name": name}, 201)["endpoint"]
        return ep["scoring_uri"], self.call("get_keys", {"endpoint": name})["primary_key"]

    def test_a_scoring_script_answers_and_says_why_it_refuses(self):
        uri, key = self.endpoint("py-basic")
        dep = self.deploy("py-basic", "blue", self.code[0], instance_count=2)["deployment"]
        self.assertEqual(dep["flavor"], "python")
        self.assertEqual(dep["code_configuration"]["scoring_script"], "score.py")
        self.assertEqual(dep["request_settings"]["request_timeout_ms"], 5000)
        st, hdr, body = post(uri, {"data": [[1, 1, 1], [0, 0, 2]]}, key)
        self.assertEqual((st, body), (200, {"predictions": [6.0, 6.0]}))
        self.assertEqual(hdr.get("cairn-deployment"), "blue")
        # the script's refusals, with its sentence
        st, _, body = post(uri, {"data": [[1, 2]]}, key)
        self.assertEqual(st, 400, body)
        self.assertIn("each row needs 3 values", body["error"])
        st, _, body = post(uri, {"boom": 1, "data": []}, key)
        self.assertEqual(st, 500, body)
        self.assertIn("RuntimeError: boom asked", body["error"])
        st, _, body = post(uri, None, key, raw=b"{not json")
        self.assertEqual(st, 400, body)
        self.assertIn("JSONDecodeError", body["error"])
        self.assertEqual(post(uri, {"data": []}, None)[0], 401)  # keys still required
        # two workers, each a process of its own; the logs hold init()'s line
        def workers():
            return self.call("get_deployment", {"endpoint": "py-basic", "name": "blue"})[
                "deployment"]["workers"]
        self.assertEqual(len(workers()), 2)
        wait_for(lambda: all(w > 0 for w in workers()), DEADLINE, "both workers up")
        logs = self.call("get_deployment_logs",
                         {"endpoint": "py-basic", "name": "blue", "lines": 200})["logs"]
        self.assertEqual(logs.count("init done 0"), 2, logs)
        self.assertIn("RuntimeError: boom asked", logs)
        last = self.call("get_deployment_logs",
                         {"endpoint": "py-basic", "name": "blue", "lines": 3})["logs"]
        self.assertEqual(last.splitlines(), logs.splitlines()[-3:])
        self.call("delete_endpoint", {"name": "py-basic"})
        self.assertFalse(os.path.exists(os.path.join(
            self.k.state, "endpoints", "code", "py-basic")))

    def test_bad_code_configurations_are_refused_with_a_sentence(self):
        self.endpoint("py-bad")
        broken = self.write_code("broken", "def init():\n    1 / 0\n\ndef run(d):\n    return d\n")
        h = self.deploy("py-bad", "blue", broken, st=400)
        self.assertIn("ZeroDivisionError", h["err"])
        norun = self.write_code("norun", "def init():\n    pass\n")
        self.assertIn("run(raw_data)", self.deploy("py-bad", "blue", norun, st=400)["err"])
        for cc, why in ((
                {"code": "/nonexistent/folder", "scoring_script": "score.py"}, "not a folder"),
                ({"code": self.code[0], "scoring_script": "../score.py"}, "without '..'"),
                ({"code": self.code[0], "scoring_script": "score.txt"}, ".py"),
                ({"code": self.code[0], "scoring_script": "other.py"}, "cannot be read"),
                ({"code": "relative", "scoring_script": "score.py"}, "base_dir"),
                ({"code": 5, "scoring_script": "score.py"}, "code"),
                ({"scoring_script": "score.py"}, "code")):
            h = self.call("create_deployment", {
                "endpoint": "py-bad", "name": "blue", "model": f"model:weighted:{self.version}",
                "code_configuration": cc}, 400)
            self.assertIn(why, h["err"], cc)
        for rs, why in (({"request_timeout_ms": 0}, "request_timeout_ms"),
                        ({"request_timeout_ms": "5"}, "request_timeout_ms"),
                        ({"max_concurrent_requests_per_instance": 10**6}, "max_concurrent")):
            h = self.deploy("py-bad", "blue", self.code[0], st=400, request_settings=rs)
            self.assertIn(why, h["err"])
        # relative to base_dir, as the CLI sends it
        self.call("create_deployment", {
            "endpoint": "py-bad", "name": "blue", "model": f"model:weighted:{self.version}",
            "code_configuration": {"code": "src0", "scoring_script": "score.py"},
            "base_dir": self.tmp}, 201)

    def test_cli(self):
        from cairn_harness import BIN

        def cairn(*args, stdin=None):
            return subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint,
                                   *args], capture_output=True, text=True, input=stdin,
                                  timeout=DEADLINE + 60)
        self.assertEqual(cairn("endpoint", "create", "py-cli").returncode, 0)
        out = cairn("deployment", "create", "py-cli", "blue", f"model:weighted:{self.version}",
                    "--code", os.path.relpath(self.code[0]), "--scoring-script", "score.py")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["flavor"], "python")
        out = cairn("endpoint", "invoke", "py-cli", stdin='{"data": [[1, 2, 3]]}')
        self.assertEqual((out.returncode, json.loads(out.stdout)), (0, {"predictions": [14.0]}),
                         out.stderr)
        out = cairn("deployment", "update", "py-cli", "blue", "--code", self.code[100],
                    "--scoring-script", "score.py")
        self.assertEqual(out.returncode, 0, out.stderr)
        out = cairn("endpoint", "invoke", "py-cli", stdin='{"data": [[1, 2, 3]]}')
        self.assertEqual(json.loads(out.stdout), {"predictions": [114.0]})
        out = cairn("deployment", "logs", "py-cli", "blue", "--max", "50")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("init done 100", out.stdout)
        out = cairn("deployment", "create", "py-cli", "green", f"model:weighted:{self.version}",
                    "--code", self.code[0])
        self.assertEqual(out.returncode, 2)
        self.assertIn("go together", out.stderr)

    def test_python_sdk(self):
        eps = Endpoints(self.k.endpoint)
        try:
            eps.create_endpoint("py-sdk")
            dep = eps.create_deployment("py-sdk", "blue", f"model:weighted:{self.version}",
                                        code=self.code[0], scoring_script="score.py",
                                        request_timeout_ms=2000)
            self.assertEqual(dep["request_settings"]["request_timeout_ms"], 2000)
            ep = Endpoint("py-sdk", endpoints=eps)
            self.assertEqual(ep.invoke({"data": [[0, 0, 1]]}), {"predictions": [3.0]})
            self.assertEqual(ep.last_deployment, "blue")
            eps.update_deployment("py-sdk", "blue", code=self.code[100],
                                  scoring_script="score.py")
            self.assertEqual(ep.invoke({"data": [[0, 0, 1]]}), {"predictions": [103.0]})
            self.assertIn("init done 100", eps.get_deployment_logs("py-sdk", "blue"))
            self.assertEqual(eps.get_endpoint_metrics("py-sdk")[0]["requests"], 2)
        finally:
            eps.close()

    def test_metrics_events(self):
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"endpoints.metrics")
        sub.connect(self.k.events)
        uri, key = self.endpoint("py-events")
        self.deploy("py-events", "blue", self.code[0])
        got = None
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and not got:
            self.assertEqual(post(uri, {"data": [[1, 1, 1]]}, key)[0], 200)
            while sub.poll(200):
                _, body = sub.recv_multipart()
                ev = msgpack.unpackb(body)
                if ev["endpoint"] == "py-events":
                    got = ev
        sub.close()
        self.assertIsNotNone(got, "no endpoints.metrics event")
        self.assertEqual(got["ws"], "default")
        blue = got["deployments"][0]
        self.assertEqual(blue["name"], "blue")
        self.assertGreaterEqual(blue["requests"], 1)
        self.assertGreater(blue["latency_ms"]["p99"], 0)

    def test_timeouts_and_concurrency_limits(self):
        uri, key = self.endpoint("py-slow")
        self.deploy("py-slow", "blue", self.code[0], request_settings={
            "request_timeout_ms": 500, "max_concurrent_requests_per_instance": 1})
        pid = self.call("get_deployment", {"endpoint": "py-slow", "name": "blue"})[
            "deployment"]["workers"][0]
        self.assertGreater(pid, 0)
        st, _, body = post(uri, {"sleep": 3, "data": []}, key)
        self.assertEqual(st, 504, body)
        self.assertIn("request_timeout_ms", body["error"])
        # its worker was killed and another started
        wait_for(lambda: post(uri, {"data": [[1, 0, 0]]}, key)[0] == 200, DEADLINE,
                 "the worker replaced")
        now = self.call("get_deployment", {"endpoint": "py-slow", "name": "blue"})[
            "deployment"]["workers"][0]
        self.assertNotEqual(now, pid)
        # one request at a time: a second while one runs is 429
        slow = threading.Thread(target=post, args=(uri, {"sleep": 0.4, "data": []}, key))
        slow.start()
        time.sleep(0.1)
        st, _, body = post(uri, {"data": [[1, 0, 0]]}, key)
        slow.join()
        self.assertEqual(st, 429, body)
        self.assertIn("max_concurrent_requests", body["error"])

    def test_a_killed_worker_and_a_new_version_lose_no_request(self):
        uri, key = self.endpoint("py-roll")
        self.deploy("py-roll", "blue", self.code[0], instance_count=2)
        loader = subprocess.Popen([sys.executable, "-c", f"""
import json, sys, time, urllib.request
ok, bad, seen = 0, 0, set()
end = time.monotonic() + 90
while time.monotonic() < end:
    req = urllib.request.Request({uri!r}, data=json.dumps({{"data": [[1, 1, 1]]}}).encode(),
                                 method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            seen.add(json.loads(r.read())["predictions"][0])
            ok += 1
    except Exception as e:
        bad += 1
        print("failed:", e, file=sys.stderr)
    if 106.0 in seen and ok > 300:
        break
print(json.dumps({{"ok": ok, "bad": bad, "seen": sorted(seen)}}))
"""], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: post(uri, {"data": [[1, 1, 1]]}, key)[0] == 200, DEADLINE, "load")
        def workers():
            return self.call("get_deployment", {"endpoint": "py-roll", "name": "blue"})[
                "deployment"]["workers"]
        wait_for(lambda: all(p > 0 for p in workers()), DEADLINE, "both workers up")
        for pid in workers():  # each worker killed in turn, under load
            self.assertGreater(pid, 0)  # never kill(0): our own group
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: pid not in workers() and 0 not in workers(), DEADLINE,
                     "the killed worker replaced")
        before = workers()
        dep = self.call("update_deployment", {
            "endpoint": "py-roll", "name": "blue",
            "code_configuration": {"code": self.code[100], "scoring_script": "score.py"}})
        self.assertIn("workers", dep["deployment"])
        out, err = loader.communicate(timeout=150)
        res = json.loads(out)
        self.assertEqual(res["bad"], 0, err)
        self.assertEqual(res["seen"], [6.0, 106.0], res)
        # the new version's workers run; the old version's are gone
        self.assertTrue(all(p > 0 for p in dep["deployment"]["workers"]), dep)  # all up
        self.assertFalse(set(before) & set(dep["deployment"]["workers"]))
        wait_for(lambda: all(not os.path.exists(f"/proc/{p}") for p in before),
                 DEADLINE, "the old workers stopped")


if __name__ == "__main__":
    unittest.main(verbosity=2)
