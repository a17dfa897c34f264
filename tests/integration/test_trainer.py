"""The built-in trainer (cairn-train, plugins/trainer/): sklearn's breast
cancer and diabetes sets exported to CSV and trained by cairn-train, which
must reach python3-xgboost's metric with the same parameters, seed, rows
and float32 data (hist is deterministic), log one metric point per round
to its run, write a model python-xgboost loads and predicts with as the
Python model does, a card, register a model version when asked; the
linear algorithm against scikit-learn's Ridge and LogisticRegression;
bad specs refused with the field's path."""
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import msgpack
import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import BIN, SOURCE, Kernel  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
from cairn.registry import Registry  # noqa: E402

TRAIN = os.path.join(BIN, "cairn-train")
M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def permutation(n, seed):
    """docs/TRAINER.md: Fisher-Yates driven by splitmix64 seeded with seed."""
    perm = list(range(n))
    state = seed
    for i in range(n, 1, -1):
        state, r = splitmix64(state)
        j = r % i
        perm[i - 1], perm[j] = perm[j], perm[i - 1]
    return perm


def split_rows(n, seed, split):
    perm = permutation(n, seed)
    nv = max(1, int(math.floor(n * split + 0.5)))
    return perm[:n - nv], perm[n - nv:]


def export(frame, path):
    frame.to_csv(path, index=False)


def read_csv(path, target):
    """The CSV as cairn-train reads it: each cell as strtod, then float32;
    text labels as classes in byte order."""
    with open(path) as f:
        rows = list(csv.reader(f))
    names = rows[0]
    t = names.index(target)
    labels = [r[t] for r in rows[1:]]
    try:
        y = np.array([float(v) for v in labels])
    except ValueError:
        classes = sorted(set(labels))
        y = np.array([classes.index(v) for v in labels], dtype=np.float64)
    data = np.array([[float(c) for i, c in enumerate(r) if i != t] for r in rows[1:]])
    return data.astype(np.float32), y.astype(np.float32), [n for n in names if n != target]


class TrainerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cairn-trainer-")
        bc = load_breast_cancer(as_frame=True).frame
        bc.columns = [c.replace(" ", "_") for c in bc.columns]
        cls.bc = os.path.join(cls.tmp, "bc.csv")
        export(bc, cls.bc)
        iris = load_iris(as_frame=True).frame
        iris.columns = [c.replace(" ", "_").replace("_(cm)", "") for c in iris.columns]
        iris["target"] = iris["target"].map({0: "setosa", 1: "versicolor", 2: "virginica"})
        cls.iris = os.path.join(cls.tmp, "iris.csv")
        export(iris, cls.iris)
        cls.diab = os.path.join(cls.tmp, "diabetes.csv")
        export(load_diabetes(as_frame=True).frame, cls.diab)
        svc = "".join(f"  {s}:\n    plugin: {p}\n    mode: inproc\n"
                      for s, p in (("tracking", "storage"), ("artifacts", "storage"),
                                   ("registry", "registry")))
        cls.k = Kernel(services=svc).start()
        cls.c = cls.k.client()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    def ok(self, svc, verb, body):
        h, b = self.c.call(svc, verb, body)
        self.assertEqual(h["st"], 200, (verb, body, h))
        return b

    def run_train(self, spec, run_id=None, msgpack_spec=False, out=None, fail=False,
                  endpoint=False, args=()):
        out = out or tempfile.mkdtemp(dir=self.tmp)
        path = os.path.join(out, "spec.mp" if msgpack_spec else "spec.json")
        with open(path, "wb") as f:
            # YAML is a superset of JSON: the YAML path reads this too.
            f.write(msgpack.packb(spec) if msgpack_spec else json.dumps(spec).encode())
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        if run_id or endpoint:
            env.update(CAIRN_ENDPOINT=self.k.endpoint)
        if run_id:
            env.update(CAIRN_RUN_ID=run_id)
        model = os.path.join(out, "model")
        p = subprocess.run([TRAIN, "--out", model, *args, path], env=env, capture_output=True,
                           text=True, timeout=60)
        if fail:
            self.assertNotEqual(p.returncode, 0, p.stdout)
            return p.stderr
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(model, "card.json")) as f:
            return model, json.load(f)

    def python_xgb(self, path, target, params, rounds, seed, split):
        x, y, names = read_csv(path, target)
        tr, va = split_rows(len(y), seed, split)
        dtr = xgb.DMatrix(x[tr], label=y[tr], feature_names=names, nthread=2)
        dva = xgb.DMatrix(x[va], label=y[va], feature_names=names, nthread=2)
        res = {}
        p = dict(params, seed=seed, nthread=2, tree_method="hist")
        bst = xgb.train(p, dtr, rounds, evals=[(dtr, "train"), (dva, "validation")],
                        evals_result=res, verbose_eval=False)
        return bst, res, dva

    def new_run(self):
        exp = self.ok("tracking", "create_experiment",
                      {"name": "trainer-" + os.urandom(4).hex()})["experiment_id"]
        return self.ok("tracking", "create_run", {"experiment_id": exp})["run"]["info"]["run_id"]

    def check_same_as_python(self, path, target, task, params, metric, rounds=20,
                             seed=7, split=0.25, run_id=None, register=None):
        spec = {"type": "train", "name": "ignored-by-the-trainer", "data": path,
                "target": target, "task": task,
                "hyperparameters": dict(params, num_boost_round=rounds, nthread=2),
                "validation": {"split": split}, "seed": seed}
        if register:
            spec["register_model"] = register
        model, card = self.run_train(spec, run_id=run_id, msgpack_spec=bool(run_id))
        # The trainer's default objectives (docs/TRAINER.md), said to Python.
        obj = "binary:logistic" if task == "classification" else "reg:squarederror"
        extra = {"objective": obj}
        if metric == "mlogloss":
            extra = {"objective": "multi:softprob", "num_class": 3}
        bst, res, dva = self.python_xgb(path, target, dict(params, **extra), rounds,
                                        seed, split)
        want = res["validation"][metric][-1]
        self.assertEqual(card["result"]["metric"], metric)
        self.assertAlmostEqual(card["result"]["value"], want, delta=1e-6)
        self.assertAlmostEqual(card["metrics"]["train-" + metric],
                               res["train"][metric][-1], delta=1e-6)
        self.assertEqual(card["result"]["rounds"], rounds)
        # The model file loads in python-xgboost and predicts as its model does.
        mine = xgb.Booster(model_file=os.path.join(model, card["model_file"]))
        np.testing.assert_allclose(mine.predict(dva), bst.predict(dva), atol=1e-6)
        return model, card, res

    def test_breast_cancer_matches_python_xgboost(self):
        _, card, _ = self.check_same_as_python(
            self.bc, "target", "classification", {"max_depth": 3, "eta": 0.1}, "logloss")
        self.assertEqual(card["signature"]["output"]["classes"], ["0", "1"])
        self.assertEqual(len(card["signature"]["inputs"]), 30)
        self.assertEqual(set(card["feature_importances"]), {"gain", "weight"})
        self.assertTrue(any(v for v in card["feature_importances"]["gain"].values()))
        self.assertEqual(card["library"], "xgboost 1.7.4")
        self.assertEqual((card["data"]["rows"], card["seed"]), (569, 7))

    def test_iris_three_classes_match_python_xgboost(self):
        _, card, _ = self.check_same_as_python(self.iris, "target", "classification",
                                               {"max_depth": 2}, "mlogloss", seed=2)
        self.assertEqual(card["signature"]["output"]["classes"],
                         ["setosa", "versicolor", "virginica"])
        # The linear algorithm: one-vs-rest logistic, as scikit-learn's.
        _, card = self.run_train({"data": self.iris, "target": "target",
                                  "task": "classification", "algorithm": "linear",
                                  "validation": {"split": 0.3}, "seed": 2})
        x, y, _ = read_csv(self.iris, "target")
        tr, va = split_rows(len(y), 2, 0.3)
        sc = StandardScaler().fit(x[tr].astype(np.float64))
        m = OneVsRestClassifier(LogisticRegression(tol=1e-10, max_iter=10000))
        p = m.fit(sc.transform(x[tr]), y[tr]).predict_proba(sc.transform(x[va]))
        ll = float(-np.mean(np.log(np.clip(p[np.arange(len(va)), y[va].astype(int)],
                                           1e-15, 1))))
        self.assertEqual(card["result"]["metric"], "mlogloss")
        self.assertAlmostEqual(card["result"]["value"] / ll, 1.0, delta=1e-3)

    def test_diabetes_matches_python_xgboost(self):
        model, card, _ = self.check_same_as_python(
            self.diab, "target", "regression",
            {"max_depth": 4, "learning_rate": 0.2, "subsample": 0.8}, "rmse", seed=11)
        with open(os.path.join(model, "MLmodel")) as f:
            self.assertIn("xgboost", f.read())
        # UBJSON by --format: the same model.
        spec = {"data": self.diab, "target": "target", "task": "regression",
                "hyperparameters": {"max_depth": 4, "num_boost_round": 5, "nthread": 2}}
        ubj, card = self.run_train(spec, args=("--format", "ubj"))
        js, _ = self.run_train(spec)
        self.assertEqual(card["model_file"], "model.ubj")
        x, _, names = read_csv(self.diab, "target")
        d = xgb.DMatrix(x, feature_names=names)
        np.testing.assert_array_equal(
            xgb.Booster(model_file=os.path.join(ubj, "model.ubj")).predict(d),
            xgb.Booster(model_file=os.path.join(js, "model.json")).predict(d))

    def test_in_a_run_logs_each_round_uploads_and_registers(self):
        rid = self.new_run()
        name = "trainer-bc-" + os.urandom(3).hex()
        rounds = 12
        self.check_same_as_python(self.bc, "target", "classification",
                                  {"max_depth": 2, "eval_metric": ["auc", "logloss"]},
                                  "logloss", rounds=rounds, run_id=rid, register=name)
        for key in ("train-logloss", "validation-logloss", "validation-auc"):
            hist = self.ok("tracking", "get_metric_history", {"run_id": rid, "key": key})
            steps = sorted(m["step"] for m in hist["metrics"])
            self.assertEqual(steps, list(range(rounds)), key)
        params = {p["key"]: p["value"] for p in
                  self.ok("tracking", "get_run", {"run_id": rid})["run"]["data"]["params"]}
        self.assertEqual((params["task"], params["max_depth"]), ("classification", "2"))
        arts = self.ok("artifacts", "list_artifacts", {"run_id": rid, "path": "model"})
        files = {os.path.basename(f["path"]) for f in arts["files"]}
        self.assertTrue({"model.json", "card.json", "MLmodel"} <= files, files)
        v = self.ok("registry", "get_model_version", {"name": name, "version": 1})
        mv = v.get("model_version", v)
        self.assertEqual((mv["source"], mv["flavor"]), (f"runs:/{rid}/model", "xgboost"))

    def test_data_reference_is_resolved(self):
        rid = self.new_run()
        with open(self.bc, "rb") as f:
            self.ok("artifacts", "put_artifact", {"run_id": rid, "path": "d/bc.csv",
                                                  "data": f.read(), "offset": 0,
                                                  "done": True})
        name = "bc-" + os.urandom(3).hex()
        reg = Registry(self.k.endpoint)
        try:
            reg.create_data_asset(name, f"runs:/{rid}/d/bc.csv", type="table")
        finally:
            reg.close()
        spec = {"data": f"data:{name}@latest", "target": "target",
                "task": "classification", "hyperparameters": {"num_boost_round": 3}}
        _, card = self.run_train(spec, endpoint=True)
        self.assertEqual((card["data"]["rows"], card["result"]["rounds"]), (569, 3))
        # Inside a run the input is logged too (lineage), and the run's params.
        run2 = self.new_run()
        self.run_train(spec, run_id=run2)
        params = {p["key"]: p["value"] for p in
                  self.ok("tracking", "get_run", {"run_id": run2})["run"]["data"]["params"]}
        self.assertEqual(params["data"], f"data:{name}@latest")
        err = self.run_train(dict(spec, data="data:nope:1"), endpoint=True, fail=True)
        self.assertIn("nope", err)

    def test_folds_and_early_stopping(self):
        _, card = self.run_train({"data": self.bc, "target": "target",
                                  "task": "classification",
                                  "validation": {"folds": 3}, "seed": 3,
                                  "hyperparameters": {"num_boost_round": 5, "nthread": 2}})
        self.assertEqual((card["validation"], card["result"]["rounds"]), ({"folds": 3}, 5))
        # The fold mean, as docs/TRAINER.md's folds give it to Python.
        x, y, names = read_csv(self.bc, "target")
        perm, n, k = permutation(len(y), 3), len(y), 3
        vals = []
        for f in range(k):
            lo, hi = f * n // k, (f + 1) * n // k
            tr, va = perm[:lo] + perm[hi:], perm[lo:hi]
            dtr = xgb.DMatrix(x[tr], label=y[tr], feature_names=names, nthread=2)
            dva = xgb.DMatrix(x[va], label=y[va], feature_names=names, nthread=2)
            res = {}
            xgb.train({"objective": "binary:logistic", "tree_method": "hist", "seed": 3,
                       "nthread": 2}, dtr, 5, evals=[(dtr, "train"), (dva, "validation")],
                      evals_result=res, verbose_eval=False)
            vals.append(res["validation"]["logloss"][-1])
        self.assertAlmostEqual(card["result"]["value"], sum(vals) / k, delta=1e-6)
        _, card = self.run_train({"data": self.bc, "target": "target",
                                  "task": "classification",
                                  "hyperparameters": {"num_boost_round": 500, "eta": 0.5,
                                                      "early_stopping_rounds": 3}})
        self.assertLess(card["result"]["rounds"], 500)
        self.assertEqual(card["result"]["best_round"] + 4, card["result"]["rounds"])

    def test_linear_against_sklearn(self):
        seed, split = 5, 0.3
        _, card = self.run_train({"data": self.diab, "target": "target",
                                  "task": "regression", "algorithm": "linear",
                                  "hyperparameters": {"alpha": 2.0},
                                  "validation": {"split": split}, "seed": seed})
        x, y, _ = read_csv(self.diab, "target")
        tr, va = split_rows(len(y), seed, split)
        sc = StandardScaler().fit(x[tr].astype(np.float64))
        m = Ridge(alpha=2.0).fit(sc.transform(x[tr]), y[tr])
        rmse = float(np.sqrt(np.mean((m.predict(sc.transform(x[va])) - y[va]) ** 2)))
        self.assertAlmostEqual(card["result"]["value"] / rmse, 1.0, delta=1e-4)

        _, card = self.run_train({"data": self.bc, "target": "target",
                                  "task": "classification", "algorithm": "linear",
                                  "hyperparameters": {"C": 0.5},
                                  "validation": {"split": split}, "seed": seed})
        x, y, _ = read_csv(self.bc, "target")
        tr, va = split_rows(len(y), seed, split)
        sc = StandardScaler().fit(x[tr].astype(np.float64))
        m = LogisticRegression(C=0.5, tol=1e-10, max_iter=10000).fit(sc.transform(x[tr]),
                                                                      y[tr])
        p = np.clip(m.predict_proba(sc.transform(x[va]))[:, 1], 1e-15, 1 - 1e-15)
        ll = float(-np.mean(y[va] * np.log(p) + (1 - y[va]) * np.log(1 - p)))
        self.assertAlmostEqual(card["result"]["value"] / ll, 1.0, delta=1e-3)
        self.assertEqual(card["algorithm"], "linear")

    def test_bad_specs_name_the_field(self):
        base = {"data": self.bc, "target": "target", "task": "classification"}
        cases = [
            ({"validation": {"split": 1.5}}, "validation.split: must be a number > 0 and < 1"),
            ({"hyperparameters": {"max_depth": 100}},
             "hyperparameters.max_depth: must be an integer 0..64"),
            ({"task": "ranking"}, 'task: must be "classification" or "regression"'),
            ({"hyperparameters": {"C": 1}}, "hyperparameters.C: is not a hyperparameter"),
            ({"target": "nope"}, 'target: column "nope" is not in'),
            ({"data": os.path.join(self.tmp, "missing.csv")}, "cannot be opened"),
        ]
        for extra, want in cases:
            err = self.run_train(dict(base, **extra), fail=True)
            self.assertIn(want, err, extra)
        only = os.path.join(self.tmp, "only_target.csv")
        with open(only, "w") as f:
            f.write("y\n1\n2\n3\n")
        err = self.run_train({"data": only, "target": "y", "task": "regression"}, fail=True)
        self.assertIn('data: no columns besides the target "y"', err)
        err = self.run_train(dict(base, hyperparameters={"objective": "binary:logistic"},
                                  data=self.iris), fail=True)
        self.assertIn("hyperparameters.objective: binary:logistic needs 2 classes", err)
        err = self.run_train({"target": "t", "task": "regression"}, fail=True)
        self.assertIn("data: is required", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
