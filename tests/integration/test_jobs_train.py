"""Train jobs (issue 16): `type: train` submitted to the jobs service runs
the built-in trainer (cairn-train) as the job's command, under its
supervisor like any job: the CSV given relative to the YAML file's folder,
the metric of every round in the job's run, the model and its card as the
run's artifacts, the model registered when asked, the same final metric as
python3-xgboost with the same parameters, seed and rows; bad train specs
refused at submit with the field's path. A real cairnd with tracking,
artifacts, the registry and the jobs plugin (a process)."""
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import BIN, DEADLINE, Kernel, wait_for  # noqa: E402

SERVICES = """\
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
"""

DONE = ("Completed", "Failed", "Canceled", "TimedOut")
MASK = (1 << 64) - 1


def splitmix_permutation(n, seed):
    """The trainer's row order (docs/TRAINER.md): Fisher-Yates driven by
    splitmix64 from seed."""
    state = seed & MASK

    def nxt():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = nxt() % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


class TrainJobs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=SERVICES).start()
        cls.c = cls.k.client()
        cls.tmp = tempfile.mkdtemp(dir=cls.k.tmp)
        bc = load_breast_cancer(as_frame=True).frame
        bc.columns = [c.replace(" ", "_") for c in bc.columns]
        cls.frame = bc
        bc.to_csv(os.path.join(cls.tmp, "bc.csv"), index=False)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    def call(self, verb, body, st=200, svc="jobs"):
        h, b = self.c.call(svc, verb, body)
        self.assertEqual(h["st"], st, (verb, body, h))
        return b if st < 400 else h

    def wait_done(self, name):
        return wait_for(lambda: (lambda j: j if j["status"] in DONE else None)(
            self.call("get_job", {"name": name})["job"]), 3 * DEADLINE, f"job {name}")

    def test_a_train_job_through_the_cli(self):
        name = "train-" + os.urandom(3).hex()
        model = "bc-" + os.urandom(3).hex()
        yml = os.path.join(self.tmp, f"{name}.yml")
        with open(yml, "w") as f:
            f.write(textwrap.dedent(f"""\
                type: train
                name: {name}
                experiment_name: trainer-jobs
                data: bc.csv
                target: target
                task: classification
                hyperparameters: {{max_depth: 3, eta: 0.3, num_boost_round: 15, nthread: 1}}
                validation: {{split: 0.25}}
                seed: 11
                register_model: {model}
                """))
        out = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint,
                              "job", "submit", yml], capture_output=True, text=True,
                             timeout=DEADLINE, cwd="/")
        self.assertEqual(out.returncode, 0, out.stderr)
        done = self.wait_done(name)
        log = self.call("stream_logs", {"name": name, "offset": 0,
                                        "max_bytes": 1 << 20})["data"]
        self.assertEqual(done["status"], "Completed", log)
        rid = done["run_id"]
        hist = self.call("get_metric_history", {"run_id": rid, "key": "validation-logloss"},
                         svc="tracking")["metrics"]
        self.assertEqual([m["step"] for m in hist], list(range(15)), "one point a round")
        # the same model through python3-xgboost: same rows, params, seed
        x = self.frame.drop(columns=["target"]).to_numpy(dtype=np.float32)
        y = self.frame["target"].to_numpy()
        perm = splitmix_permutation(len(y), 11)
        n_valid = int(round(len(y) * 0.25))
        tr, va = perm[:len(y) - n_valid], perm[len(y) - n_valid:]
        res = {}
        xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": 11,
                   "nthread": 1, "eval_metric": "logloss", "tree_method": "hist"},
                  xgb.DMatrix(x[tr], label=y[tr]), 15,
                  evals=[(xgb.DMatrix(x[va], label=y[va]), "validation")],
                  evals_result=res, verbose_eval=False)
        self.assertAlmostEqual(hist[-1]["value"], res["validation"]["logloss"][-1],
                               places=6)
        files = [f["path"] for f in self.call("list_artifacts", {
            "run_id": rid, "path": "model"}, svc="artifacts")["files"]]
        self.assertIn("model/model.json", files)
        self.assertIn("model/card.json", files)
        mv = self.call("get_model_version", {"name": model, "version": 1},
                       svc="registry")["model_version"]
        self.assertEqual(mv["run_id"], rid)

    def test_bad_train_specs_name_the_field(self):
        base = {"type": "train", "data": os.path.join(self.tmp, "bc.csv"),
                "target": "target", "task": "classification"}
        for extra, path in (({"task": "ranking"}, "task:"),
                            ({"validation": {"split": 2}}, "validation.split:"),
                            ({"hyperparameters": {"max_depth": "deep"}},
                             "hyperparameters.max_depth:"),
                            ({"command": "python3 x.py"}, "command:"),
                            ({"distribution": {"type": "mpi"}}, "distribution:"),
                            ({"data": os.path.join(self.tmp, "nope.csv")}, "data:"),
                            ({"bogus": 1}, "bogus:")):
            h = self.call("submit_job", {"spec": {**base, **extra}}, 400)
            self.assertTrue(h["err"].startswith(path), (extra, h))
        h = self.call("submit_job", {"spec": {k: v for k, v in base.items()
                                              if k != "target"}}, 400)
        self.assertTrue(h["err"].startswith("target:"), h)


if __name__ == "__main__":
    unittest.main()
