"""Batch endpoints (issue 17, last part): a batch endpoint pins a model
trained by python3-xgboost; invoke_batch runs a job through the jobs plugin
(cairn-batch-score) over a 100,000-row CSV with one poisoned mini-batch:
with error_threshold 1 the job completes, predictions.csv holds every other
row in input order, equal to python xgboost's predict to 1e-6, and the
summary metrics count the failure; with error_threshold 0 the job fails
with a reason naming the mini-batch. A data: reference as the input, a
folder of CSV files, the CLI, and bad bodies answered 400 with a sentence.
A real cairnd with tracking, artifacts, the registry, the jobs plugin and
the scorer (both processes)."""
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import pandas as pd
import xgboost as xgb

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import BIN, DEADLINE, SOURCE, Kernel, free_port, wait_for  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
from cairn.endpoints import Endpoints  # noqa: E402
from cairn.errors import CairnError  # noqa: E402
from cairn.registry import Registry  # noqa: E402

SERVICES = f"""\
  tracking:
    plugin: storage
    mode: inproc
  artifacts:
    plugin: storage
    mode: inproc
  registry:
    plugin: registry
    mode: inproc
  jobs:
    plugin: compute
    mode: process
  endpoints:
    plugin: scorer
    mode: process
    settings:
      listen: 127.0.0.1:{free_port()}
"""

DONE = ("Completed", "Failed", "Canceled", "TimedOut")
ROWS = 100_000
MB = 10_000
POISON_ROW = 34_567  # in mini-batch 3: rows 30,000 to 39,999
FEATURES = [f"f{i}" for i in range(6)]


class BatchEndpoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=SERVICES).start()
        cls.c = cls.k.client()
        cls.reg = Registry(cls.k.endpoint)
        cls.eps = Endpoints(cls.k.endpoint)
        cls.tmp = tempfile.mkdtemp(dir=cls.k.tmp)
        rng = np.random.default_rng(7)
        x = rng.normal(size=(3000, len(FEATURES))).astype(np.float32)
        y = (x[:, 0] + x[:, 1] * x[:, 2] - x[:, 5] > 0).astype(int)
        cls.bst = xgb.train({"objective": "binary:logistic", "max_depth": 4, "seed": 1,
                             "nthread": 1},
                            xgb.DMatrix(x, label=y, feature_names=FEATURES), 30)
        os.makedirs(os.path.join(cls.tmp, "model"))
        cls.bst.save_model(os.path.join(cls.tmp, "model", "model.json"))
        cls.version = cls.reg.register_model(os.path.join(cls.tmp, "model"),
                                             "batch-model")["version"]
        # the input: an id column the model does not take, features in
        # another order, a missing value
        frame = pd.DataFrame(rng.normal(size=(ROWS, len(FEATURES))), columns=FEATURES)
        frame.iloc[5, 2] = np.nan
        frame.insert(0, "id", np.arange(ROWS))
        frame = frame[["id"] + FEATURES[::-1]]
        cls.clean = os.path.join(cls.tmp, "clean.csv")
        frame.to_csv(cls.clean, index=False)
        cls.want = cls.predict(cls.clean)
        with open(cls.clean) as f:
            lines = f.readlines()
        cells = lines[POISON_ROW + 1].split(",")
        cells[FEATURES[::-1].index("f2") + 1] = "abc"
        lines[POISON_ROW + 1] = ",".join(cells)
        cls.poisoned = os.path.join(cls.tmp, "poisoned.csv")
        with open(cls.poisoned, "w") as f:
            f.writelines(lines)
        cls.eps.client.call("endpoints", "create_batch_endpoint", {
            "name": "scorer-b", "model": f"model:batch-model:{cls.version}",
            "mini_batch_size": MB, "max_concurrency": 2})

    @classmethod
    def tearDownClass(cls):
        cls.eps.close()
        cls.reg.close()
        cls.c.close()
        cls.k.cleanup()

    @classmethod
    def predict(cls, path):
        """python3-xgboost's predict on the file: pandas read_csv, DMatrix."""
        frame = pd.read_csv(path)
        return cls.bst.predict(xgb.DMatrix(frame[FEATURES].to_numpy(np.float32),
                                           feature_names=FEATURES))

    def call(self, verb, body, st=200, svc="endpoints"):
        h, b = self.c.call(svc, verb, body)
        self.assertEqual(h["st"], st, (verb, body, h))
        return b if st < 400 else h

    def wait_done(self, name):
        return wait_for(lambda: (lambda j: j if j["status"] in DONE else None)(
            self.call("get_job", {"name": name}, svc="jobs")["job"]), 3 * DEADLINE,
            f"job {name}")

    def artifact(self, run_id, path):
        data, offset = b"", 0
        while True:
            r = self.call("get_artifact", {"run_id": run_id, "path": path,
                                           "offset": offset}, svc="artifacts")
            data += r["data"]
            offset += len(r["data"])
            if r["done"]:
                return data

    def log(self, name):
        return self.call("stream_logs", {"name": name, "offset": 0,
                                         "max_bytes": 1 << 20}, svc="jobs")["data"]

    def invoke(self, **body):
        job = self.call("invoke_batch", {"endpoint": "scorer-b", **body}, 201)["job"]
        return self.wait_done(job["name"])

    def check_predictions(self, run_id, skip=range(0)):
        text = self.artifact(run_id, "outputs/predictions/predictions.csv").decode()
        got = pd.read_csv(io.StringIO(text))
        self.assertEqual(list(got.columns), ["row_id", "prediction"])
        ids = got["row_id"].to_numpy()
        want_ids = np.array([i for i in range(ROWS) if i not in skip])
        np.testing.assert_array_equal(ids, want_ids)  # every row once, in order
        np.testing.assert_allclose(got["prediction"].to_numpy(), self.want[ids],
                                   rtol=0, atol=1e-6)

    def metrics(self, run_id):
        run = self.call("get_run", {"run_id": run_id}, svc="tracking")["run"]
        return {m["key"]: m["value"] for m in run["data"]["metrics"]}

    def test_a_poisoned_mini_batch_tolerated(self):
        done = self.invoke(input=self.poisoned, error_threshold=1)
        self.assertEqual(done["status"], "Completed", self.log(done["name"]))
        rid = done["run_id"]
        self.check_predictions(rid, skip=range(3 * MB, 4 * MB))
        m = self.metrics(rid)
        self.assertEqual(m["rows_scored"], ROWS - MB)
        self.assertEqual(m["rows_failed"], MB)
        self.assertEqual(m["mini_batches"], 10)
        self.assertEqual(m["mini_batches_failed"], 1)
        self.assertEqual(m["mini_batches_done"], 10)
        self.assertGreater(m["rows_per_second"], 0)
        summary = json.loads(self.artifact(rid, "outputs/predictions/summary.json"))
        self.assertEqual(summary["failed_mini_batches"][0]["first_row"], 3 * MB)
        self.assertIn(f"row {POISON_ROW}, column 'f2': 'abc' is not a number",
                      summary["failed_mini_batches"][0]["error"])
        log = self.log(done["name"])
        self.assertIn("attempt 4 of 4", log)  # max_retries 3 by default
        run = self.call("get_run", {"run_id": rid}, svc="tracking")["run"]
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        self.assertEqual(tags["cairn.batch_endpoint"], "scorer-b")
        self.assertEqual(tags["cairn.model"], f"model:batch-model:{self.version}")

    def test_over_the_threshold_the_job_fails_naming_the_mini_batch(self):
        done = self.invoke(input=self.poisoned, error_threshold=0, max_retries=0)
        self.assertEqual(done["status"], "Failed")
        self.assertIn("1 mini-batch failed, more than error_threshold 0: mini-batch 3 "
                      "(rows 30000 to 39999)", done["reason"])
        self.assertIn(f"row {POISON_ROW}", done["reason"])
        # what was scored before it stopped is kept, in order
        text = self.artifact(done["run_id"], "outputs/predictions/predictions.csv")
        ids = pd.read_csv(io.BytesIO(text))["row_id"].to_numpy()
        np.testing.assert_array_equal(ids, np.arange(3 * MB))

    def test_a_data_reference_and_a_folder(self):
        folder = os.path.join(self.tmp, "parts")
        os.makedirs(folder)
        frame = pd.read_csv(self.clean, nrows=2500)
        frame[:1000].to_csv(os.path.join(folder, "a.csv"), index=False)
        frame[1000:].to_csv(os.path.join(folder, "b.csv"), index=False)
        asset = self.reg.create_data_asset("batch-parts", folder)
        done = self.invoke(input=f"data:batch-parts:{asset['version']}",
                           mini_batch_size=700)
        self.assertEqual(done["status"], "Completed", self.log(done["name"]))
        text = self.artifact(done["run_id"], "outputs/predictions/predictions.csv")
        rows = list(csv.reader(io.StringIO(text.decode())))[1:]
        self.assertEqual([r[0] for r in rows],
                         [f"a.csv:{i}" for i in range(1000)] +
                         [f"b.csv:{i}" for i in range(1500)])
        np.testing.assert_allclose([float(r[1]) for r in rows], self.want[:2500],
                                   rtol=0, atol=1e-6)
        self.assertEqual(self.metrics(done["run_id"])["mini_batches"], 2 + 3)
        # the run is linked to the asset in the lineage
        lin = self.call("lineage", {"node": f"run:{done['run_id']}", "direction": "up"},
                        svc="registry")
        self.assertIn(f"data:batch-parts:{asset['version']}",
                      [n["id"] for n in lin["nodes"]])
        # an asset of one file, by alias
        one = os.path.join(self.tmp, "one.csv")
        frame[:300].to_csv(one, index=False)
        v = self.reg.create_data_asset("batch-one", one)["version"]
        self.assertEqual(v, 1)
        done = self.invoke(input="data:batch-one@latest")
        self.assertEqual(done["status"], "Completed", self.log(done["name"]))
        text = self.artifact(done["run_id"], "outputs/predictions/predictions.csv")
        rows = list(csv.reader(io.StringIO(text.decode())))[1:]
        self.assertEqual([r[0] for r in rows], [f"one.csv:{i}" for i in range(300)])
        np.testing.assert_allclose([float(r[1]) for r in rows], self.want[:300],
                                   rtol=0, atol=1e-6)

    def test_the_cli_invokes_and_shows(self):
        cli = [os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint]
        head = os.path.join(self.tmp, "head.csv")
        pd.read_csv(self.clean, nrows=300).to_csv(head, index=False)
        out = subprocess.run(cli + ["batch", "invoke", "scorer-b", "head.csv",
                                    "mini_batch_size=100"],
                             capture_output=True, text=True, timeout=DEADLINE,
                             cwd=self.tmp)
        self.assertEqual(out.returncode, 0, out.stderr)
        name = json.loads(out.stdout)["job"]["name"]
        done = self.wait_done(name)
        self.assertEqual(done["status"], "Completed", self.log(name))
        out = subprocess.run(cli + ["batch", "show", "scorer-b"], capture_output=True,
                             text=True, timeout=DEADLINE)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["mini_batch_size"], MB)

    def test_create_get_list_update_delete(self):
        ref = f"model:batch-model:{self.version}"
        ep = self.call("create_batch_endpoint", {"name": "crud-b", "model": ref}, 201)
        ep = ep["batch_endpoint"]
        self.assertEqual((ep["model_ref"], ep["mini_batch_size"], ep["max_concurrency"],
                          ep["error_threshold"], ep["max_retries"]), (ref, 10000, 4, -1, 3))
        h = self.call("create_batch_endpoint", {"name": "crud-b", "model": ref}, 409)
        self.assertIn("crud-b", h["err"])
        got = self.call("update_batch_endpoint", {"name": "crud-b", "max_retries": 0})
        self.assertEqual(got["batch_endpoint"]["max_retries"], 0)
        self.assertEqual(self.call("get_batch_endpoint", {"name": "crud-b"})
                         ["batch_endpoint"]["max_retries"], 0)
        names = [e["name"] for e in self.call("list_batch_endpoints", {})
                 ["batch_endpoints"]]
        self.assertIn("crud-b", names)
        self.call("delete_batch_endpoint", {"name": "crud-b"})
        self.call("get_batch_endpoint", {"name": "crud-b"}, 404)
        # through the Python SDK
        ep = self.eps.create_batch_endpoint("sdk-b", ref, mini_batch_size=500)
        self.assertEqual(ep["mini_batch_size"], 500)
        self.assertIn("sdk-b", [e["name"] for e in self.eps.list_batch_endpoints()])
        job = self.eps.invoke_batch("sdk-b", self.clean, max_concurrency=1)
        self.assertIn(job["status"], ("Queued", "Preparing", "Running"))
        self.assertEqual(self.wait_done(job["name"])["status"], "Completed")
        self.eps.delete_batch_endpoint("sdk-b")
        with self.assertRaises(CairnError):
            self.eps.get_batch_endpoint("sdk-b")

    def test_bad_bodies_answered_400_with_a_sentence(self):
        junk = os.path.join(self.tmp, "junk")
        os.makedirs(junk)
        with open(os.path.join(junk, "model.json"), "w") as f:
            f.write('{"not": "a model"}')
        junk_v = self.reg.register_model(junk, "junk-model")["version"]
        cases = [
            ("invoke_batch", {"input": self.clean}, 400, "endpoint"),
            ("invoke_batch", {"endpoint": "nope-b", "input": self.clean}, 404, "nope-b"),
            ("invoke_batch", {"endpoint": "scorer-b"}, 400, "input"),
            ("invoke_batch", {"endpoint": "scorer-b", "input": "/no/such.csv"}, 400,
             "input: /no/such.csv: No such file"),
            ("invoke_batch", {"endpoint": "scorer-b", "input": "rel.csv"}, 400,
             "base_dir"),
            ("invoke_batch", {"endpoint": "scorer-b", "input": 5}, 400, "input"),
            ("invoke_batch", {"endpoint": "scorer-b", "input": "data:nope:1"}, 404,
             "input: "),
            ("invoke_batch", {"endpoint": "scorer-b", "input": self.clean,
                              "mini_batch_size": 0}, 400, "mini_batch_size must be 1"),
            ("invoke_batch", {"endpoint": "scorer-b", "input": self.clean,
                              "mini_batch_size": 10**9}, 400, "mini_batch_size"),
            ("invoke_batch", {"endpoint": "scorer-b", "input": self.clean,
                              "mini_batch_size": "10"}, 400, "mini_batch_size"),
            ("invoke_batch", {"endpoint": "scorer-b", "input": self.clean,
                              "max_concurrency": 1000}, 400, "max_concurrency"),
            ("invoke_batch", {"endpoint": "scorer-b", "input": self.clean,
                              "error_threshold": -2}, 400, "error_threshold"),
            ("invoke_batch", {"endpoint": "scorer-b", "input": self.clean,
                              "max_retries": 1.5}, 400, "max_retries"),
            ("create_batch_endpoint", {"name": "x", "model": "model:batch-model:1"}, 400,
             "name must be"),
            ("create_batch_endpoint", {"name": "bad-b", "model": "data:x:1"}, 400,
             "model must be a reference"),
            ("create_batch_endpoint", {"name": "bad-b", "model": "model:nope:1"}, 404,
             "model: "),
            ("create_batch_endpoint", {"name": "bad-b", "model":
                                       f"model:junk-model:{junk_v}"}, 400,
             "cannot be scored"),
        ]
        for verb, body, st, words in cases:
            h = self.call(verb, body, st)
            self.assertIn(words, h["err"], (verb, body))


class WithAuth(unittest.TestCase):
    """kernel.auth on: the job invoke_batch submits is the caller's (the
    jobs service takes on_behalf_of from the scorer plugin), so it gets the
    caller's token and logs to its run; a user's own on_behalf_of is
    refused."""

    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services="  auth:\n    plugin: auth\n    mode: inproc\n" + SERVICES,
                       auth="auth").start()
        with open(os.path.join(cls.k.state, "owner.token")) as f:
            cls.owner = f.read().strip()
        cls.c = cls.k.client()
        cls.call_as(cls, cls.owner, "auth", "create_user", {"user": "alice",
                                                            "password": "pw-alice-1"})
        cls.call_as(cls, cls.owner, "auth", "assign_role", {"principal": "alice",
                                                            "role": "Contributor"})
        cls.alice = cls.call_as(cls, cls.owner, "auth", "login", {
            "user": "alice", "password": "pw-alice-1"})["token"]

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    def call_as(self, tok, svc, verb, body, st=200):
        h, b = self.c.call(svc, verb, body, tok=tok)
        if h["st"] != st:
            raise AssertionError((svc, verb, h))
        return b if st < 400 else h

    def test_the_job_is_the_callers(self):
        tmp = tempfile.mkdtemp(dir=self.k.tmp)
        x = np.random.default_rng(3).normal(size=(500, 2)).astype(np.float32)
        bst = xgb.train({"objective": "reg:squarederror", "max_depth": 2},
                        xgb.DMatrix(x, label=x[:, 0], feature_names=["a", "b"]), 5)
        os.makedirs(os.path.join(tmp, "m"))
        bst.save_model(os.path.join(tmp, "m", "model.json"))
        with Registry(self.k.endpoint, token=self.alice) as reg:
            v = reg.register_model(os.path.join(tmp, "m"), "auth-model")["version"]
        pd.DataFrame(x, columns=["a", "b"]).to_csv(os.path.join(tmp, "in.csv"),
                                                   index=False)
        self.call_as(self.alice, "endpoints", "create_batch_endpoint",
                     {"name": "auth-b", "model": f"model:auth-model:{v}"}, 201)
        job = self.call_as(self.alice, "endpoints", "invoke_batch", {
            "endpoint": "auth-b", "input": os.path.join(tmp, "in.csv")}, 201)["job"]
        done = wait_for(lambda: (lambda j: j if j["status"] in DONE else None)(
            self.call_as(self.alice, "jobs", "get_job", {"name": job["name"]})["job"]),
            3 * DEADLINE, "the job")
        log = self.call_as(self.alice, "jobs", "stream_logs", {"name": job["name"]})
        self.assertEqual(done["status"], "Completed", log["data"])
        run = self.call_as(self.alice, "tracking", "get_run", {"run_id": done["run_id"]})
        metrics = {m["key"]: m["value"] for m in run["run"]["data"]["metrics"]}
        self.assertEqual(metrics["rows_scored"], 500)  # logged with alice's job token
        # a user may not lend a job someone else's identity
        h = self.call_as(self.alice, "jobs", "submit_job", {
            "spec": {"command": "true"}, "on_behalf_of": "owner"}, 403)
        self.assertIn("on_behalf_of", h["err"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
