"""The scorer's model library (plugins/scorer/model.h) against python3-xgboost:
models trained here (sklearn's breast cancer, diabetes and iris, a set with
NaNs, a categorical set with enable_categorical, a dart booster,
count:poisson, ...) and one trained by cairn-train, saved as JSON, UBJSON,
an MLflow-style folder and a bare folder, are scored by scorer_tool over
their whole test sets; every prediction (and margin) must equal
Booster.predict's to 1e-6. Malformed models are refused with a sentence."""
import json
import os
import subprocess
import tempfile
import unittest

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("CAIRN_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
TOOL = os.path.join(BUILD, "bin", "scorer_tool")
TRAIN = os.path.join(BUILD, "bin", "cairn-train")
TOL = 1e-6

MLMODEL = """artifact_path: model
flavors:
  python_function:
    data: model.xgb
    loader_module: mlflow.xgboost
  xgboost:
    code: null
    data: model.xgb
    model_class: xgboost.core.Booster
    xgb_version: 1.7.4
"""


def write_csv(x, path):
    """Each float32 exactly (9 significant digits), NaN as an empty field."""
    with open(path, "w") as f:
        for row in x.astype(np.float32):
            f.write(",".join("" if np.isnan(v) else "%.9g" % v for v in row) + "\n")


def split(x, y, seed=7):
    return train_test_split(x.astype(np.float32), y, test_size=0.3, random_state=seed)


class ScorerModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cairn-scorer-model-")
        cls.n = 0
        cls.worst = {}

    @classmethod
    def tearDownClass(cls):
        for k, v in sorted(cls.worst.items()):
            print(f"  {k:40s} max |ours - xgboost| {v:.3g}")
        subprocess.run(["rm", "-rf", cls.tmp])

    def path(self, name):
        type(self).n += 1
        return os.path.join(self.tmp, f"{self.n}-{name}")

    def tool(self, model, x, margin=False, fail=False):
        csv = self.path("rows.csv")
        write_csv(x, csv)
        args = [TOOL] + (["--margin"] if margin else []) + [model, csv]
        p = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if fail:
            self.assertNotEqual(p.returncode, 0, p.stdout[:200])
            return p.stderr
        self.assertEqual(p.returncode, 0, p.stderr)
        return np.array([[float(v) for v in line.split(",")]
                         for line in p.stdout.splitlines()], dtype=np.float64)

    def compare(self, name, booster, x, dmatrix=None):
        """booster saved as JSON, UBJSON, an MLflow folder (model.xgb in UBJ)
        and a bare folder; each scored over x, against Booster.predict."""
        d = dmatrix if dmatrix is not None else xgb.DMatrix(x, missing=np.nan)
        want = booster.predict(d).astype(np.float64).reshape(len(x), -1)
        wmargin = booster.predict(d, output_margin=True).astype(np.float64)
        wmargin = wmargin.reshape(len(x), -1)
        json_path, ubj_path = self.path("model.json"), self.path("model.ubj")
        booster.save_model(json_path)
        booster.save_model(ubj_path)
        mlflow = self.path("mlflow")
        os.mkdir(mlflow)
        booster.save_model(os.path.join(mlflow, "model.ubj"))
        os.rename(os.path.join(mlflow, "model.ubj"), os.path.join(mlflow, "model.xgb"))
        with open(os.path.join(mlflow, "MLmodel"), "w") as f:
            f.write(MLMODEL)
        bare = self.path("bare")
        os.mkdir(bare)
        booster.save_model(os.path.join(bare, "model.json"))
        worst = 0.0
        for model in (json_path, ubj_path, mlflow, bare):
            got = self.tool(model, x)
            self.assertEqual(got.shape, want.shape, model)
            diff = np.max(np.abs(got - want))
            self.assertLessEqual(diff, TOL, f"{name}: {model}")
            worst = max(worst, diff)
        got = self.tool(json_path, x, margin=True)
        mdiff = np.max(np.abs(got - wmargin))
        self.assertLessEqual(mdiff, TOL, f"{name}: margins")
        type(self).worst[name] = max(worst, mdiff)
        return json_path

    def train(self, x, y, params, rounds=40, **dm):
        params = {"seed": 1, "nthread": 2, **params}
        return xgb.train(params, xgb.DMatrix(x, label=y, missing=np.nan, **dm), rounds)

    def test_binary_logistic(self):
        x, y = load_breast_cancer(return_X_y=True)
        xtr, xte, ytr, _ = split(x, y)
        b = self.train(xtr, ytr, {"objective": "binary:logistic", "max_depth": 6})
        self.compare("binary:logistic", b, xte)
        b = self.train(xtr, ytr, {"objective": "binary:logitraw", "max_depth": 4,
                                  "base_score": 0.3})
        self.compare("binary:logitraw base 0.3", b, xte)
        b = self.train(xtr, ytr, {"objective": "reg:logistic", "max_depth": 3}, 20)
        self.compare("reg:logistic", b, xte)

    def test_regression(self):
        x, y = load_diabetes(return_X_y=True)
        xtr, xte, ytr, _ = split(x, y)
        for obj in ("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror"):
            b = self.train(xtr, ytr, {"objective": obj, "max_depth": 5, "eta": 0.3})
            self.compare(obj, b, xte)
        b = self.train(xtr, ytr, {"objective": "reg:squarederror", "tree_method": "hist",
                                  "max_depth": 8, "base_score": 152.5}, 200)
        self.compare("reg:squarederror hist 200 trees", b, xte)
        for obj in ("count:poisson", "reg:gamma", "reg:tweedie"):
            b = self.train(xtr, ytr, {"objective": obj, "max_depth": 4})
            self.compare(obj, b, xte)

    def test_multi_class(self):
        x, y = load_iris(return_X_y=True)
        xtr, xte, ytr, _ = split(x, y)
        b = self.train(xtr, ytr, {"objective": "multi:softprob", "num_class": 3,
                                  "max_depth": 4})
        self.compare("multi:softprob", b, xte)
        b = self.train(xtr, ytr, {"objective": "multi:softmax", "num_class": 3,
                                  "max_depth": 4})
        self.compare("multi:softmax", b, xte)
        b = self.train(xtr, ytr, {"objective": "multi:softprob", "num_class": 3,
                                  "num_parallel_tree": 3, "subsample": 0.8,
                                  "colsample_bynode": 0.8}, 10)
        self.compare("multi:softprob forest", b, xte)

    def test_missing_values(self):
        x, y = load_breast_cancer(return_X_y=True)
        rng = np.random.default_rng(3)
        x = x.copy()
        x[rng.random(x.shape) < 0.25] = np.nan
        xtr, xte, ytr, _ = split(x, y)
        for method in ("exact", "hist", "approx"):
            b = self.train(xtr, ytr, {"objective": "binary:logistic", "max_depth": 6,
                                      "tree_method": method})
            self.compare(f"NaNs {method}", b, xte)
        nan_rows = np.full((5, x.shape[1]), np.nan, dtype=np.float32)
        self.compare("all-NaN rows", b, nan_rows)

    def test_categorical(self):
        rng = np.random.default_rng(5)
        n = 3000
        many = rng.integers(0, 12, n)   # partition splits
        few = rng.integers(0, 3, n)     # one-hot splits (max_cat_to_onehot 4)
        num = rng.normal(size=n)
        effect = np.array([3, -1, 0, 2, -2, 1, 0.5, -3, 2.5, -0.5, 1.5, -1.5])
        y = effect[many] + np.array([1, -1, 0.3])[few] + num + rng.normal(0, 0.3, n)
        y[np.isnan(num)] = 0
        x = np.stack([many, few, num], axis=1).astype(np.float32)
        x[rng.random(x.shape) < 0.05] = np.nan
        ft = ["c", "c", "q"]
        xtr, xte, ytr, _ = split(x, y)
        dm = dict(feature_types=ft, enable_categorical=True)
        b = self.train(xtr, ytr, {"objective": "reg:squarederror", "tree_method": "hist",
                                  "max_depth": 5, "max_cat_to_onehot": 4}, 60, **dm)
        path = self.compare("categorical", b, xte,
                            xgb.DMatrix(xte, missing=np.nan, **dm))
        with open(path) as f:
            trees = json.load(f)["learner"]["gradient_booster"]["model"]["trees"]
        self.assertTrue(any(1 in t["split_type"] for t in trees))
        # categories never seen in training go left, as XGBoost sends them
        odd = xte[:50].copy()
        odd[:, 0] = np.arange(50) + 12
        self.compare("categorical unseen", b, odd,
                     xgb.DMatrix(odd, missing=np.nan, **dm))
        # pandas category columns, feature names and types kept
        frame = pd.DataFrame({"many": pd.Categorical(many[:2000]),
                              "few": pd.Categorical(few[:2000]), "num": num[:2000]})
        b = xgb.train({"tree_method": "hist", "seed": 1}, xgb.DMatrix(
            frame, label=y[:2000], enable_categorical=True), 20)
        xs = np.stack([many[2000:], few[2000:], num[2000:]], axis=1).astype(np.float32)
        tf = pd.DataFrame({"many": pd.Categorical(many[2000:], categories=range(12)),
                           "few": pd.Categorical(few[2000:], categories=range(3)),
                           "num": num[2000:]})
        self.compare("categorical pandas", b, xs,
                     xgb.DMatrix(tf, enable_categorical=True))

    def test_dart(self):
        x, y = load_breast_cancer(return_X_y=True)
        xtr, xte, ytr, _ = split(x, y)
        b = self.train(xtr, ytr, {"booster": "dart", "objective": "binary:logistic",
                                  "rate_drop": 0.3, "skip_drop": 0.2, "max_depth": 4}, 30)
        self.compare("dart binary:logistic", b, xte)
        x, y = load_diabetes(return_X_y=True)
        xtr, xte, ytr, _ = split(x, y)
        b = self.train(xtr, ytr, {"booster": "dart", "rate_drop": 0.5,
                                  "normalize_type": "forest", "max_depth": 4}, 30)
        self.compare("dart regression", b, xte)

    def test_cairn_trainer(self):
        x, y = load_breast_cancer(return_X_y=True)
        names = [f"f{i}" for i in range(x.shape[1])]
        frame = pd.DataFrame(x, columns=names)
        frame["label"] = y.astype(int)
        data = self.path("bc.csv")
        frame.to_csv(data, index=False)
        spec = self.path("spec.json")
        with open(spec, "w") as f:
            json.dump({"type": "train", "data": data, "target": "label",
                       "task": "classification",
                       "hyperparameters": {"max_depth": 4, "num_boost_round": 30}}, f)
        for fmt in ("json", "ubj"):
            out = self.path(f"trained-{fmt}")
            env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
            p = subprocess.run([TRAIN, "--out", out, "--format", fmt, spec], env=env,
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            b = xgb.Booster(model_file=os.path.join(out, f"model.{fmt}"))
            xs = x.astype(np.float32)
            want = b.predict(xgb.DMatrix(xs, missing=np.nan, feature_names=b.feature_names))
            got = self.tool(out, xs)[:, 0]  # the folder: its MLmodel names the file
            diff = np.max(np.abs(got - want))
            self.assertLessEqual(diff, TOL)
            type(self).worst[f"cairn-train {fmt} folder"] = diff

    def test_refused(self):
        x, y = load_breast_cancer(return_X_y=True)
        b = self.train(x, y, {"objective": "rank:pairwise"}, 2)
        path = self.path("rank.json")
        b.save_model(path)
        self.assertIn("rank:pairwise is not supported", self.tool(path, x[:2], fail=True))
        b = self.train(x, y, {"objective": "binary:logistic"}, 2)
        path = self.path("ok.json")
        b.save_model(path)
        self.assertIn("29 features where the model takes 30",
                      self.tool(path, x[:2, :29], fail=True))
        with open(path) as f:
            text = f.read()
        for cut in (10, len(text) // 2, len(text) - 2):
            bad = self.path("cut.json")
            with open(bad, "w") as f:
                f.write(text[:cut])
            self.assertIn("400", self.tool(bad, x[:1], fail=True))
        ubj = self.path("ok.ubj")
        b.save_model(ubj)
        with open(ubj, "rb") as f:
            raw = f.read()
        bad = self.path("cut.ubj")
        with open(bad, "wb") as f:
            f.write(raw[: len(raw) // 2])
        self.assertIn("UBJSON model is malformed", self.tool(bad, x[:1], fail=True))
        empty = self.path("empty")
        os.mkdir(empty)
        self.assertIn("holds no MLmodel", self.tool(empty, x[:1], fail=True))
        self.assertIn("404", self.tool(self.path("absent"), x[:1], fail=True))


if __name__ == "__main__":
    unittest.main(verbosity=2)
