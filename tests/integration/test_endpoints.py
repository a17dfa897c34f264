"""Online endpoints (issue 17, first slice): the scorer plugin in process
mode answers HTTP itself. A model trained by python3-xgboost, registered,
deployed, and scored with curl and Python's urllib in Azure ML's and
MLflow's body shapes; predictions equal python xgboost's to 1e-6 over the
whole test set; keys required and checked; traffic split 90/10 observed
within bounds over 2,000 requests and switched atomically; the
cairn-deployment header both ways; bad bodies answered 400 with a
sentence; a deployment that survives a restart of the plugin."""
import json
import os
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import DEADLINE, SOURCE, Kernel, free_port, wait_for  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
from cairn.registry import Registry  # noqa: E402



def scorer_services(port, settings=(), auth=False):
    """The services of a cairnd for the scorer's tests: storage and the
    registry inproc, (auth on: the auth service), the scorer as its own
    process listening on port, with settings (name, value) added."""
    text = "  auth:\n    plugin: auth\n    mode: inproc\n" if auth else ""
    text += ("  tracking:\n    plugin: storage\n    mode: inproc\n"
             "  artifacts:\n    plugin: storage\n    mode: inproc\n"
             "  registry:\n    plugin: registry\n    mode: inproc\n"
             "  endpoints:\n    plugin: scorer\n    mode: process\n    settings:\n"
             f"      listen: 127.0.0.1:{port}\n")
    return text + "".join(f"      {k}: {v}\n" for k, v in settings)


PORT = free_port()
SERVICES = scorer_services(PORT, [("timeout_s", 5)])


def post(url, body, key=None, headers=None, raw=None):
    """(status, response headers, JSON body) of a POST."""
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=DEADLINE) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"{}")


def start_loader(uri, key, row):
    """Another process that scores row without a pause until two different
    predictions came back and 200 requests were answered (or 60 s); it
    prints {ok, bad, seen} at the end."""
    return subprocess.Popen([sys.executable, "-c", f"""
import json, sys, time, urllib.request
ok, bad, seen = 0, 0, set()
end = time.monotonic() + 60
while time.monotonic() < end:
    req = urllib.request.Request({uri!r}, data=json.dumps({{"instances": [{row!r}]}}).encode(),
                                 method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            seen.add(round(json.loads(r.read())["predictions"][0], 6))
            ok += 1
    except Exception as e:
        bad += 1
        print("failed:", e, file=sys.stderr)
    if len(seen) == 2 and ok > 200:
        break
print(json.dumps({{"ok": ok, "bad": bad, "seen": sorted(seen)}}))
"""], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Endpoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=SERVICES).start()
        cls.c = cls.k.client()
        cls.reg = Registry(cls.k.endpoint)
        cls.tmp = tempfile.mkdtemp(dir=cls.k.tmp)
        bc = load_breast_cancer()
        cls.names = [n.replace(" ", "_") for n in bc.feature_names]
        x, y = bc.data.astype(np.float32), bc.target
        cls.x_test = x[400:]
        cls.x_test[0, 3] = np.nan  # a missing value, scored as xgboost does
        dtrain = xgb.DMatrix(x[:400], label=y[:400], feature_names=cls.names)
        cls.models = {}
        for tag, depth in (("a", 3), ("b", 5)):
            bst = xgb.train({"objective": "binary:logistic", "max_depth": depth,
                             "seed": 1, "nthread": 1}, dtrain, 30)
            os.makedirs(os.path.join(cls.tmp, tag))
            path = os.path.join(cls.tmp, tag, "model.json")
            bst.save_model(path)
            cls.models[tag] = (bst, cls.reg.register_model(path, "bc-model")["version"])
        d = load_diabetes()
        reg_bst = xgb.train({"objective": "reg:squarederror", "max_depth": 4, "seed": 2},
                            xgb.DMatrix(d.data[:300].astype(np.float32), label=d.target[:300]),
                            20)
        path = os.path.join(cls.tmp, "diabetes.ubj")  # a file of its own name
        reg_bst.save_model(path)
        cls.diabetes = (reg_bst, d.data[300:].astype(np.float32),
                        cls.reg.register_model(path, "diabetes")["version"])

    @classmethod
    def tearDownClass(cls):
        cls.reg.close()
        cls.c.close()
        cls.k.cleanup()

    def call(self, verb, body, st=200):
        h, b = self.c.call("endpoints", verb, body)
        self.assertEqual(h["st"], st, (verb, body, h))
        return b if st < 400 else h

    def endpoint(self, name, deployments):
        ep = self.call("create_endpoint", {"name": name}, 201)["endpoint"]
        for dep, version in deployments:
            self.call("create_deployment", {"endpoint": name, "name": dep,
                                            "model": f"model:bc-model:{version}"}, 201)
        keys = self.call("get_keys", {"endpoint": name})
        return ep["scoring_uri"], keys["primary_key"], keys["secondary_key"]

    def test_scores_equal_python_xgboost_in_every_shape(self):
        uri, key, key2 = self.endpoint("bc-eq", [("blue", self.models["a"][1])])
        self.assertEqual(uri, f"http://127.0.0.1:{PORT}/endpoints/bc-eq/score")
        want = self.models["a"][0].predict(xgb.DMatrix(self.x_test,
                                                       feature_names=self.names))
        rows = [[None if np.isnan(v) else float(v) for v in r] for r in self.x_test]
        shapes = {
            "input_data": {"input_data": {"columns": self.names,
                                          "index": list(range(len(rows))), "data": rows}},
            "dataframe_split": {"dataframe_split": {"columns": self.names, "data": rows}},
            "dataframe_records": {"dataframe_records": [dict(zip(self.names, r))
                                                        for r in rows]},
            "instances": {"instances": rows},
            "inputs_by_column": {"inputs": {n: [r[i] for r in rows]
                                            for i, n in enumerate(self.names)}},
        }
        for shape, body in shapes.items():
            st, hdr, out = post(uri, body, key)
            self.assertEqual(st, 200, (shape, out))
            self.assertEqual(hdr.get("cairn-deployment"), "blue")
            got = np.array(out["predictions"], dtype=np.float64)
            self.assertEqual(got.shape, want.shape, shape)
            self.assertLess(np.max(np.abs(got - want)), 1e-6, shape)
        # text/csv: with a header in another order, and without one
        order = list(reversed(range(len(self.names))))
        def cell(v):
            return "" if np.isnan(v) else repr(float(v))
        with_header = ",".join(self.names[i] for i in order) + "\n" + "".join(
            ",".join(cell(r[i]) for i in order) + "\n" for r in self.x_test)
        without = "".join(",".join(cell(v) for v in r) + "\n" for r in self.x_test)
        for text in (with_header, without):
            st, _, out = post(uri, None, key, raw=text.encode(),
                              headers={"Content-Type": "text/csv"})
            self.assertEqual(st, 200, out)
            self.assertLess(np.max(np.abs(np.array(out["predictions"]) - want)), 1e-6)
        st, _, out = post(uri, None, key, raw=b"1,2,x\n",
                          headers={"Content-Type": "text/csv"})
        self.assertEqual(st, 400, out)
        # application/msgpack: the same shapes as maps
        import msgpack
        st, _, out = post(uri, None, key, raw=msgpack.packb(shapes["dataframe_split"]),
                          headers={"Content-Type": "application/msgpack"})
        self.assertEqual(st, 200, out)
        self.assertLess(np.max(np.abs(np.array(out["predictions"]) - want)), 1e-6)
        for raw, words in ((b"\xdd\xff\xff\xff\xff", "not msgpack"),
                           (msgpack.packb([1, 2]), "msgpack map")):
            st, _, out = post(uri, None, key, raw=raw,
                              headers={"Content-Type": "application/msgpack"})
            self.assertEqual(st, 400, out)
            self.assertIn(words, out["error"])
        # the secondary key works too; curl as a client
        curl = subprocess.run(["curl", "-s", "-X", "POST", uri, "-H",
                               f"Authorization: Bearer {key2}", "-H",
                               "Content-Type: application/json", "-d",
                               json.dumps({"instances": rows[:2]})],
                              capture_output=True, text=True, timeout=DEADLINE)
        self.assertEqual(len(json.loads(curl.stdout)["predictions"]), 2, curl.stdout)

    def test_keys_required_and_bad_bodies_answered_400(self):
        uri, key, _ = self.endpoint("bc-bad", [("blue", self.models["a"][1])])
        self.assertEqual(post(uri, {"instances": [[0] * 30]})[0], 401)
        self.assertEqual(post(uri, {"instances": [[0] * 30]}, "x" * 43)[0], 401)
        self.assertEqual(post(uri, {"instances": [[0] * 30]}, key)[0], 200)
        cases = [
            (b"{not json", "not JSON"),
            (json.dumps({"instances": [[1, 2, 3]]}).encode(), "3 values; 30 expected"),
            (json.dumps({"dataframe_split": {"columns": self.names[:-1],
                                             "data": [[0] * 29]}}).encode(),
             f"column '{self.names[-1]}' is missing"),
            (json.dumps({"instances": [["a"] * 30]}).encode(), "not a string"),
            (json.dumps({"rows": []}).encode(), "none of input_data"),
            (json.dumps({"instances": []}).encode(), "no rows"),
            (json.dumps([1, 2]).encode(), "must be a JSON object"),
        ]
        for raw, words in cases:
            st, _, out = post(uri, None, key, raw=raw)
            self.assertEqual(st, 400, (raw[:60], out))
            self.assertIn(words, out["error"], raw[:60])
        st, _, out = post(uri, {"instances": [[0] * 30]}, key,
                          headers={"Content-Type": "text/plain"})
        self.assertIn("text/csv", out["error"])
        self.assertEqual(st, 415, out)
        st, _, out = post(f"http://127.0.0.1:{PORT}/endpoints/nope/score",
                          {"instances": [[0] * 30]}, key)
        self.assertEqual(st, 404, out)
        # a body past max_body: refused before it is read
        big = os.path.join(self.tmp, "big.json")
        with open(big, "wb") as f:
            f.write(b'{"instances": [' + b"[0.5]," * (3 << 20) + b"[0.5]]}")
        curl = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                               "-X", "POST", uri, "-H", f"Authorization: Bearer {key}",
                               "-H", "Content-Type: application/json",
                               "--data-binary", f"@{big}"],
                              capture_output=True, text=True, timeout=DEADLINE)
        self.assertEqual(curl.stdout, "413", curl.stderr)

    def test_traffic_split_and_direct_calls(self):
        uri, key, _ = self.endpoint("bc-split", [("blue", self.models["a"][1]),
                                                 ("green", self.models["b"][1])])
        ep = self.call("get_endpoint", {"name": "bc-split"})["endpoint"]
        self.assertEqual(ep["traffic"], {"blue": 100, "green": 0})
        self.call("update_traffic", {"endpoint": "bc-split",
                                     "traffic": {"blue": 90, "green": 10}})
        seen = {"blue": 0, "green": 0}
        row = {"instances": [[float(v) for v in self.x_test[1]]]}
        for _ in range(2000):
            st, hdr, _ = post(uri, row, key)
            self.assertEqual(st, 200)
            seen[hdr["cairn-deployment"]] += 1
        # 10% of 2,000: 200 expected, sd 13.4; 5 sd either way
        self.assertTrue(133 <= seen["green"] <= 267, seen)
        m = {d["name"]: d for d in self.call("get_endpoint_metrics",
                                             {"endpoint": "bc-split"})["deployments"]}
        self.assertEqual(m["blue"]["requests"], seen["blue"])
        self.assertEqual(m["green"]["requests"], seen["green"])
        self.assertEqual(m["blue"]["errors"], 0)
        lat = m["blue"]["latency_ms"]
        self.assertTrue(0 < lat["p50"] <= lat["p90"] <= lat["p99"] < 1000, lat)
        post(uri, {"instances": [[1]]}, key, headers={"cairn-deployment": "green"})
        m = {d["name"]: d for d in self.call("get_endpoint_metrics",
                                             {"endpoint": "bc-split"})["deployments"]}
        self.assertEqual((m["green"]["requests"], m["green"]["errors"]),
                         (seen["green"] + 1, 1))  # a bad body counts as an error
        st, hdr, out = post(uri, row, key, headers={"cairn-deployment": "green"})
        self.assertEqual((st, hdr["cairn-deployment"]), (200, "green"))
        want = self.models["b"][0].predict(xgb.DMatrix(self.x_test[1:2],
                                                       feature_names=self.names))
        self.assertLess(abs(out["predictions"][0] - float(want[0])), 1e-6)
        self.call("update_traffic", {"endpoint": "bc-split", "traffic": {"green": 100}})
        for _ in range(50):
            self.assertEqual(post(uri, row, key)[1]["cairn-deployment"], "green")
        for bad, words in (({"blue": 50, "green": 40}, "sums to 90"),
                           ({"red": 100}, "no such deployment"),
                           ({"blue": -1, "green": 101}, "whole percent")):
            h = self.call("update_traffic", {"endpoint": "bc-split", "traffic": bad}, 400)
            self.assertIn(words, h["err"])
        self.call("delete_deployment", {"endpoint": "bc-split", "name": "green"}, 409)
        self.call("delete_deployment", {"endpoint": "bc-split", "name": "blue"})
        health = urllib.request.urlopen(urllib.request.Request(
            uri.replace("/score", "/health"), headers={"Authorization": f"Bearer {key}"}),
            timeout=DEADLINE)
        self.assertEqual(json.loads(health.read())["status"], "Healthy")

    def test_slow_clients_and_100_mb_bodies(self):
        import socket
        import time
        uri, key, _ = self.endpoint("bc-slow", [("blue", self.models["a"][1])])
        row = {"instances": [[float(v) for v in self.x_test[1]]]}
        # slow-loris: connections that send half a request and wait
        slow = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", PORT), timeout=DEADLINE)
            s.sendall(b"POST /endpoints/bc-slow/score HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        # others are answered meanwhile
        for _ in range(20):
            self.assertEqual(post(uri, row, key)[0], 200)
        # and the slow ones are cut off after timeout_s (5 s here)
        start = time.monotonic()
        for s in slow:
            s.settimeout(DEADLINE)
            try:
                self.assertEqual(s.recv(1), b"")  # closed by the server
            except ConnectionResetError:
                pass
            s.close()
        self.assertLess(time.monotonic() - start, DEADLINE)
        # 100 MB: refused from its Content-Length, nothing read
        big = os.path.join(self.tmp, "100mb.json")
        with open(big, "wb") as f:
            f.write(b'{"instances": [' + b" " * (100 << 20) + b"]}")
        curl = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                               "-X", "POST", uri, "-H", f"Authorization: Bearer {key}",
                               "-H", "Content-Type: application/json",
                               "--data-binary", f"@{big}"],
                              capture_output=True, text=True, timeout=DEADLINE)
        os.unlink(big)
        self.assertEqual(curl.stdout, "413", curl.stderr)
        self.assertEqual(post(uri, row, key)[0], 200)

    def test_regression_alias_and_verbs(self):
        bst, x, version = self.diabetes
        self.reg.set_alias("diabetes", "champion", version)
        self.call("create_endpoint", {"name": "diab"}, 201)
        dep = self.call("create_deployment", {"endpoint": "diab", "name": "main",
                                              "model": "model:diabetes@champion"},
                        201)["deployment"]
        self.assertEqual(dep["model_ref"], f"model:diabetes:{version}")
        key = self.call("get_keys", {"endpoint": "diab"})["primary_key"]
        uri = self.call("get_endpoint", {"name": "diab"})["endpoint"]["scoring_uri"]
        st, _, out = post(uri, {"instances": x.tolist()}, key)
        self.assertEqual(st, 200, out)
        self.assertLess(np.max(np.abs(np.array(out["predictions"]) -
                                      bst.predict(xgb.DMatrix(x)))), 1e-4 * 300)
        self.assertLess(np.max(np.abs(np.array(out["predictions"], dtype=np.float32) -
                                      bst.predict(xgb.DMatrix(x)))), 1e-6 * 300)
        old = key
        new = self.call("regenerate_keys", {"endpoint": "diab"})["primary_key"]
        self.assertNotEqual(old, new)
        self.assertEqual(post(uri, {"instances": x[:1].tolist()}, old)[0], 401)
        self.assertEqual(post(uri, {"instances": x[:1].tolist()}, new)[0], 200)
        names = [e["name"] for e in self.call("list_endpoints", {})["endpoints"]]
        self.assertIn("diab", names)
        self.call("create_endpoint", {"name": "diab"}, 409)
        for body, words in (({"name": "Bad_Name"}, "lowercase"),
                            ({"name": "ok-name", "auth_mode": "aml"}, "key or token"),
                            ({}, "name")):
            self.assertIn(words, self.call("create_endpoint", body, 400)["err"])
        for body, st in (({"endpoint": "diab", "name": "xa1", "model": "bc-model"}, 400),
                         ({"endpoint": "diab", "name": "xa2", "model": "model:nope:1"}, 404),
                         ({"endpoint": "nope", "name": "xa3", "model": "model:bc-model:1"},
                          404)):
            h = self.call("create_deployment", body, st)
            self.assertTrue(h["err"], h)
        self.call("delete_endpoint", {"name": "diab"})
        self.assertEqual(post(uri, {"instances": x[:1].tolist()}, new)[0], 404)

    def test_a_model_swapped_under_load_fails_no_request(self):
        uri, key, _ = self.endpoint("bc-roll", [("blue", self.models["a"][1])])
        row = [float(v) for v in self.x_test[1]]
        want = {tag: float(self.models[tag][0].predict(xgb.DMatrix(
            self.x_test[1:2], feature_names=self.names))[0]) for tag in ("a", "b")}
        # another process scores without a pause while the model is swapped
        loader = start_loader(uri, key, row)
        wait_for(lambda: post(uri, {"instances": [row]}, key)[0] == 200, DEADLINE, "load")
        import time
        time.sleep(0.3)  # let the loader score on the old model a while
        dep = self.call("update_deployment", {"endpoint": "bc-roll", "name": "blue",
                                              "model": f"model:bc-model:{self.models['b'][1]}"})
        self.assertEqual(dep["deployment"]["model_ref"],
                         f"model:bc-model:{self.models['b'][1]}")
        out, err = loader.communicate(timeout=120)
        res = json.loads(out)
        self.assertEqual(res["bad"], 0, err)
        self.assertEqual(len(res["seen"]), 2, res)  # both models answered, in turn
        got = post(uri, {"instances": [row]}, key)[2]["predictions"][0]
        self.assertLess(abs(got - want["b"]), 1e-6)
        h = self.call("update_deployment", {"endpoint": "bc-roll", "name": "blue",
                                            "model": "model:bc-model:99"}, 404)
        self.assertIn("model", h["err"])
        got = post(uri, {"instances": [row]}, key)[2]["predictions"][0]
        self.assertLess(abs(got - want["b"]), 1e-6)  # a refused update changes nothing

    def test_a_trainer_model_and_a_categorical_one_over_curl(self):
        """A model folder made by cairn-train (its MLmodel names the file)
        and one trained by python3-xgboost on pandas categoricals, each
        registered, deployed and scored with curl over the whole data set:
        equal to python xgboost's predictions to 1e-6."""
        import pandas as pd
        from cairn_harness import BIN
        x, y = load_breast_cancer(return_X_y=True)
        cols = [f"f{i}" for i in range(x.shape[1])]
        frame = pd.DataFrame(x, columns=cols)
        frame["label"] = y.astype(int)
        data = os.path.join(self.tmp, "bc-train.csv")
        frame.to_csv(data, index=False)
        spec = os.path.join(self.tmp, "train.json")
        with open(spec, "w") as f:
            json.dump({"type": "train", "data": data, "target": "label",
                       "task": "classification",
                       "hyperparameters": {"max_depth": 4, "num_boost_round": 25}}, f)
        out = os.path.join(self.tmp, "trained")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        p = subprocess.run([os.path.join(BIN, "cairn-train"), "--out", out, spec], env=env,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        trained = xgb.Booster(model_file=os.path.join(out, "model.json"))
        # categoricals: codes as numbers, one column of 30 categories
        rng = np.random.default_rng(7)
        cat = rng.integers(0, 30, 3000)
        num = rng.normal(size=3000)
        yc = ((cat % 3 == 0) ^ (num > 0.3)).astype(int)
        cf = pd.DataFrame({"cat": pd.Categorical(cat, categories=list(range(30))),
                           "num": num})
        catb = xgb.train({"objective": "binary:logistic", "max_depth": 4, "seed": 3,
                          "tree_method": "hist", "max_cat_to_onehot": 1},
                         xgb.DMatrix(cf, label=yc, enable_categorical=True), 20)
        cpath = os.path.join(self.tmp, "cat", "model.json")
        os.makedirs(os.path.dirname(cpath))
        catb.save_model(cpath)
        cases = (("trained-bc", self.reg.register_model(out, "trained-bc")["version"],
                  cols, x.astype(np.float32),
                  trained.predict(xgb.DMatrix(x.astype(np.float32), feature_names=cols))),
                 ("cat-model", self.reg.register_model(cpath, "cat-model")["version"],
                  ["cat", "num"], np.column_stack([cat, num]).astype(np.float32),
                  catb.predict(xgb.DMatrix(cf, enable_categorical=True))))
        for name, version, names, rows, want in cases:
            self.call("create_endpoint", {"name": name}, 201)
            self.call("create_deployment", {"endpoint": name, "name": "blue",
                                            "model": f"model:{name}:{version}"}, 201)
            key = self.call("get_keys", {"endpoint": name})["primary_key"]
            uri = self.call("get_endpoint", {"name": name})["endpoint"]["scoring_uri"]
            body = os.path.join(self.tmp, f"{name}.json")
            with open(body, "w") as f:
                json.dump({"input_data": {"columns": names, "index": list(range(len(rows))),
                                          "data": rows.astype(float).tolist()}}, f)
            curl = subprocess.run(["curl", "-s", "-X", "POST", uri, "-H",
                                   f"Authorization: Bearer {key}", "-H",
                                   "Content-Type: application/json", "--data-binary",
                                   f"@{body}"], capture_output=True, text=True,
                                  timeout=DEADLINE)
            got = np.array(json.loads(curl.stdout)["predictions"])
            self.assertEqual(got.shape, want.shape, name)
            self.assertLessEqual(float(np.max(np.abs(got - want))), 1e-6, name)

    def test_lineage_links_model_deployment_endpoint(self):
        self.endpoint("bc-lin", [("blue", self.models["a"][1])])
        v = self.models["a"][1]
        self.call("create_deployment", {"endpoint": "bc-lin", "name": "green",
                                        "model": "model:bc-model@lin"}, 404)  # no alias
        h, lin = self.c.call("registry", "lineage", {"node": f"model:bc-model:{v}",
                                                     "direction": "down"})
        self.assertEqual(h["st"], 200, h)
        edges = {(e["from"], e["to"], e["kind"]) for e in lin["edges"]}
        self.assertIn((f"model:bc-model:{v}", "deployment:bc-lin/blue", "deployed"), edges)
        self.assertIn(("deployment:bc-lin/blue", "endpoint:bc-lin", "serves"), edges)
        types = {n["id"]: n["type"] for n in lin["nodes"]}
        self.assertEqual(types["deployment:bc-lin/blue"], "deployment")
        self.assertEqual(types["endpoint:bc-lin"], "endpoint")
        # up from the endpoint: the model it serves
        lin = self.c.call("registry", "lineage", {"node": "endpoint:bc-lin",
                                                  "direction": "up"})[1]
        self.assertIn(f"model:bc-model:{v}", [n["id"] for n in lin["nodes"]])

    def test_mirror(self):
        uri, key, _ = self.endpoint("bc-mirror", [("blue", self.models["a"][1]),
                                                  ("green", self.models["b"][1])])
        ep = self.call("update_mirror", {"endpoint": "bc-mirror",
                                         "mirror": {"green": 20}})["endpoint"]
        self.assertEqual((ep["traffic"], ep["mirror"]), ({"blue": 100, "green": 0},
                                                         {"green": 20}))
        row = {"instances": [[float(v) for v in self.x_test[2]]]}
        for _ in range(500):
            st, hdr, _ = post(uri, row, key)
            self.assertEqual((st, hdr["cairn-deployment"]), (200, "blue"))
        m = {d["name"]: d for d in self.call("get_endpoint_metrics",
                                             {"endpoint": "bc-mirror"})["deployments"]}
        # 20% of 500: 100 expected, sd 8.9; 5 sd either way
        self.assertTrue(55 <= m["green"]["mirrored"] <= 145, m)
        self.assertEqual(m["green"]["requests"], m["green"]["mirrored"])
        self.assertEqual((m["green"]["errors"], m["blue"]["requests"]), (0, 500))
        for body, words in (({"green": 60}, "0 to 50"),
                            ({"blue": 10}, "takes live traffic")):
            h = self.call("update_mirror", {"endpoint": "bc-mirror", "mirror": body}, 400)
            self.assertIn(words, h["err"])
        h = self.call("update_traffic", {"endpoint": "bc-mirror",
                                         "traffic": {"blue": 50, "green": 50}}, 400)
        self.assertIn("takes mirrored traffic", h["err"])
        self.call("update_mirror", {"endpoint": "bc-mirror", "mirror": {}})
        self.assertEqual(self.call("get_endpoint", {"name": "bc-mirror"})["endpoint"]
                         ["mirror"], {})

    def test_a_deployment_follows_its_alias(self):
        a, b = self.models["a"][1], self.models["b"][1]
        self.reg.set_alias("bc-model", "prod", a)
        self.call("create_endpoint", {"name": "bc-follow"}, 201)
        dep = self.call("create_deployment", {"endpoint": "bc-follow", "name": "blue",
                                              "model": "model:bc-model@prod",
                                              "follow_alias": True}, 201)["deployment"]
        self.assertEqual((dep["model_ref"], dep["follow_alias"]),
                         (f"model:bc-model:{a}", True))
        key = self.call("get_keys", {"endpoint": "bc-follow"})["primary_key"]
        uri = self.call("get_endpoint", {"name": "bc-follow"})["endpoint"]["scoring_uri"]
        row = [float(v) for v in self.x_test[1]]
        want_b = float(self.models["b"][0].predict(xgb.DMatrix(
            self.x_test[1:2], feature_names=self.names))[0])
        # the roll happens under load from another process: no request fails
        loader = start_loader(uri, key, row)
        wait_for(lambda: post(uri, {"instances": [row]}, key)[0] == 200, DEADLINE, "load")
        import time
        time.sleep(0.3)  # the loader scores on a for a while
        self.reg.set_alias("bc-model", "prod", b)  # the registry says so; we follow
        wait_for(lambda: self.call("get_deployment", {"endpoint": "bc-follow",
                                                      "name": "blue"})["deployment"]
                 ["model_ref"] == f"model:bc-model:{b}", DEADLINE, "the roll to b")
        out, err = loader.communicate(timeout=120)
        res = json.loads(out)
        self.assertEqual(res["bad"], 0, err)
        self.assertEqual(len(res["seen"]), 2, res)  # a, then b
        got = post(uri, {"instances": [row]}, key)[2]["predictions"][0]
        self.assertLess(abs(got - want_b), 1e-6)
        # a deployment pinned to a version, or told not to follow, stays
        h = self.call("create_deployment", {"endpoint": "bc-follow", "name": "pinned",
                                            "model": f"model:bc-model:{a}",
                                            "follow_alias": True}, 400)
        self.assertIn("alias", h["err"])

    def test_cli(self):
        from cairn_harness import BIN

        def cairn(*args):
            return subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint,
                                   *args], capture_output=True, text=True, timeout=DEADLINE)
        out = cairn("endpoint", "create", "cli-ep")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(json.loads(out.stdout)["scoring_uri"].endswith("/cli-ep/score"))
        a, b = self.models["a"][1], self.models["b"][1]
        for dep, v in (("blue", a), ("green", b)):
            out = cairn("deployment", "create", "cli-ep", dep, f"model:bc-model:{v}")
            self.assertEqual(out.returncode, 0, out.stderr)
        out = cairn("endpoint", "traffic", "cli-ep", "blue=70", "green=30")
        self.assertEqual(json.loads(out.stdout)["traffic"], {"blue": 70, "green": 30})
        self.assertEqual(cairn("endpoint", "traffic", "cli-ep", "blue").returncode, 2)
        self.assertIn("sums to 90", cairn("endpoint", "traffic", "cli-ep", "blue=90").stderr)
        keys = json.loads(cairn("endpoint", "keys", "cli-ep").stdout)
        uri = json.loads(cairn("endpoint", "show", "cli-ep").stdout)["scoring_uri"]
        self.assertEqual(post(uri, {"instances": [[0.5] * 30]}, keys["primary_key"])[0], 200)
        self.assertIn("cli-ep", cairn("endpoint", "list").stdout)
        table = cairn("deployment", "list", "cli-ep").stdout.splitlines()
        self.assertEqual(table[0].split(), ["NAME", "FLAVOR", "MODEL", "TRAFFIC", "INSTANCES"])
        self.assertEqual([r.split()[0] for r in table[1:]], ["blue", "green"])
        self.assertEqual(table[1].split()[1:4:2], ["xgboost", "70"])
        out = cairn("deployment", "update", "cli-ep", "green", f"model:bc-model:{a}")
        self.assertEqual(json.loads(out.stdout)["model_ref"], f"model:bc-model:{a}")
        self.assertEqual(json.loads(cairn("deployment", "show", "cli-ep", "blue").stdout)
                         ["traffic"], 70)
        # invoke: a file's body (or stdin's), scored with the endpoint's key
        body = os.path.join(self.tmp, "request.json")
        rows = self.x_test[:3]
        with open(body, "w") as f:
            json.dump({"input_data": {"columns": self.names, "index": [0, 1, 2],
                                      "data": np.nan_to_num(rows).tolist()}}, f)
        want = self.models["a"][0].predict(xgb.DMatrix(np.nan_to_num(rows),
                                                       feature_names=self.names))
        out = cairn("endpoint", "invoke", "cli-ep", body, "--deployment", "blue")
        self.assertEqual(out.returncode, 0, out.stderr)
        got = json.loads(out.stdout)["predictions"]
        self.assertTrue(all(abs(g - w) < 1e-6 for g, w in zip(got, want)), (got, want))
        out = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint,
                              "endpoint", "invoke", "cli-ep", "-"], input="{not json",
                             capture_output=True, text=True, timeout=DEADLINE)
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("400", out.stderr)
        out = cairn("endpoint", "invoke", "cli-ep", body, "--deployment", "nope")
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("no deployment named 'nope'", out.stderr)
        self.assertEqual(cairn("endpoint", "invoke", "cli-ep", "/no/such/file").returncode, 2)
        metrics = json.loads(cairn("endpoint", "metrics", "cli-ep").stdout)
        self.assertEqual(sum(m["requests"] for m in metrics), 3)  # "nope" took none
        self.assertEqual(cairn("endpoint", "delete", "cli-ep").returncode, 0)
        self.assertNotEqual(cairn("endpoint", "show", "cli-ep").returncode, 0)

    def test_python_sdk(self):
        sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
        import cairn
        with cairn.Endpoints(self.k.endpoint) as eps:
            eps.create_endpoint("sdk-ep")
            dep = eps.create_deployment("sdk-ep", "blue", f"model:bc-model:{self.models['a'][1]}")
            self.assertEqual(dep["traffic"], 100)
            ep = cairn.Endpoint("sdk-ep", endpoints=eps)
            want = self.models["a"][0].predict(xgb.DMatrix(self.x_test[1:4],
                                                           feature_names=self.names))
            rows = self.x_test[1:4].tolist()
            for got in (ep.score(rows), ep.score(rows, columns=self.names),
                        ep.score([dict(zip(self.names, r)) for r in rows])):
                self.assertLess(np.max(np.abs(np.array(got) - want)), 1e-6)
            self.assertEqual(ep.last_deployment, "blue")
            with self.assertRaises(cairn.ScoreError) as e:
                ep.score([[1, 2]])
            self.assertEqual(e.exception.status, 400)
            self.assertIn("30 expected", e.exception.message)
            with self.assertRaises(cairn.Conflict):
                eps.create_endpoint("sdk-ep")
            primary, _ = eps.regenerate_keys("sdk-ep")
            with self.assertRaises(cairn.ScoreError) as e:
                ep.score(rows)  # the old key
            self.assertEqual(e.exception.status, 401)
            self.assertEqual(len(cairn.Endpoint("sdk-ep", key=primary, endpoints=eps)
                                 .score(rows)), 3)

    def test_deployments_survive_a_restart_of_the_plugin(self):
        uri, key, _ = self.endpoint("bc-restart", [("blue", self.models["a"][1])])
        pid = self.k.plugin("endpoints")["pid"]
        os.kill(pid, 9)
        wait_for(lambda: (lambda p: p["state"] == "up" and p["pid"] != pid)(
            self.k.plugin("endpoints")), what="the endpoints plugin restarted")
        row = {"instances": [[float(v) for v in self.x_test[1]]]}

        def answers():
            try:
                return post(uri, row, key)[0] == 200
            except OSError:
                return False
        wait_for(answers, DEADLINE, "the endpoint to answer after the restart")


if __name__ == "__main__":
    unittest.main()
