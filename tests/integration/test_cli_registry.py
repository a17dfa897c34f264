"""The `cairn models ...` commands, end to end: the built CLI against a
private cairnd with tracking, artifacts and the registry (inproc). A model
registered from a run's artifacts (stored once), versions listed, an alias
moved and its history, bad input answered with a sentence and exit 1 or 2."""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import Kernel  # noqa: E402
from test_cli_tracking import cli  # noqa: E402

SERVICES = ("  tracking:\n    plugin: storage\n    mode: inproc\n"
            "  artifacts:\n    plugin: storage\n    mode: inproc\n"
            "  registry:\n    plugin: registry\n    mode: inproc\n")


class Models(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(SERVICES).start()
        cls.ep = cls.k.endpoint

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def ok(self, *args, stdin=None):
        r = cli(self.ep, *args, stdin=stdin)
        self.assertEqual(r.returncode, 0, (args, r.stdout, r.stderr))
        return r.stdout

    def test_register_list_alias_history(self):
        exp = self.ok("experiments", "create", "cli-models").strip()
        run = self.ok("runs", "create", exp).strip()
        self.ok("artifacts", "upload", run, "-", "model/model.bin", stdin="weights")
        out = self.ok("models", "create", "churn", "--tag", "team=risk")
        self.assertIn("churn", out)
        v = json.loads(self.ok("--json", "models", "register", "churn",
                               f"runs:/{run}/model"))["model_version"]
        self.assertEqual((v["version"], v["run_id"]), (1, run))
        self.assertTrue(v["content_hash"].startswith("sha256:"))
        self.ok("models", "register", "churn", "/models/churn/2")
        table = self.ok("models", "versions", "churn")
        self.assertEqual(len(table.strip().splitlines()), 3, table)  # a title, two rows
        self.assertIn("/models/churn/2", table)
        self.ok("models", "alias", "churn", "champion", "1")
        self.ok("models", "alias", "churn", "champion", "2")
        shown = json.loads(self.ok("--json", "models", "show", "churn@champion"))
        self.assertEqual(shown["model_version"]["version"], 2)
        shown = json.loads(self.ok("--json", "models", "show", "churn:1"))
        self.assertEqual(shown["model_version"]["source"], f"runs:/{run}/model")
        hist = json.loads(self.ok("--json", "models", "history", "churn", "champion"))
        self.assertEqual([h["version"] for h in hist["history"]], [1, 2])
        listed = json.loads(self.ok("--json", "models", "list", "--filter",
                                    "tags.team = 'risk'"))
        self.assertEqual([m["name"] for m in listed["registered_models"]], ["churn"])
        prep = self.ok("runs", "create", exp).strip()  # the run that made the data
        self.ok("artifacts", "upload", prep, "-", "train.csv", stdin="a,b\n1,2\n")
        self.ok("call", "registry", "create_data_asset",
                json.dumps({"name": "train", "type": "table",
                            "path": f"runs:/{prep}/train.csv"}))
        self.ok("call", "registry", "log_input",
                json.dumps({"run_id": run, "input": "data:train:1"}))
        tree = self.ok("lineage", "model:churn@champion")
        self.assertEqual(tree.splitlines(), [
            "model:churn:2"], tree)  # version 2 came from a path: no run
        tree = self.ok("lineage", "model:churn:1")
        self.assertEqual(tree.splitlines(), ["model:churn:1", f"  <- produced run:{run}",
                                             "    <- input data:train:1",
                                             f"      <- produced run:{prep}"], tree)
        tree = self.ok("lineage", "data:train:1")
        self.assertEqual(tree.splitlines(), ["data:train:1", f"  <- produced run:{prep}",
                                             f"  -> input run:{run}",
                                             "    -> produced model:churn:1"], tree)
        self.ok("models", "delete", "churn")
        r = cli(self.ep, "models", "show", "churn")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("no registered model", r.stderr)

    def test_local_folder_register_download_and_dot(self):
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "model")
            os.makedirs(os.path.join(src, "sub"))
            files = {"MLmodel": b"flavors:\n  onnx: {data: model.onnx}\n",
                     "model.onnx": os.urandom(20000), "sub/vocab.txt": b"a\nb\n"}
            for p, b in files.items():
                with open(os.path.join(src, p), "wb") as f:
                    f.write(b)
            v = json.loads(self.ok("--json", "models", "register", "local-cli",
                                   src))["model_version"]
            self.assertEqual((v["version"], v["flavor"]), (1, "onnx"))
            self.assertTrue(v["source"].startswith("runs:/"), v)
            out = os.path.join(d, "out")
            self.assertEqual(self.ok("models", "download", "local-cli:1", out).strip(), out)
            for p, b in files.items():
                with open(os.path.join(out, p), "rb") as f:
                    self.assertEqual(f.read(), b, p)
            one = os.path.join(src, "model.onnx")
            v = json.loads(self.ok("--json", "models", "register", "local-cli",
                                   one))["model_version"]
            self.assertTrue(v["source"].endswith("/model.onnx"), v)
            dot = self.ok("lineage", "--dot", "model:local-cli:1")
            self.assertTrue(dot.startswith("digraph lineage {"), dot)
            run = json.loads(self.ok("--json", "models", "show", "local-cli:1")
                             )["model_version"]["run_id"]
            self.assertIn(f'"run:{run}" -> "model:local-cli:1" [label="produced"];', dot)
            self.assertIn('"model:local-cli:1" [shape=component];', dot)
            r = cli(self.ep, "models", "download", "local-cli:9", out)
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("no version 9", r.stderr)

    def test_data_assets(self):
        with tempfile.TemporaryDirectory() as d:
            csv = os.path.join(d, "churn.csv")
            with open(csv, "w") as f:
                f.write("id,tenure,left\n1,12,true\n2,3,false\n")
            t = json.loads(self.ok("--json", "data", "create", "churn-cli", csv, "--type",
                                   "table", "--description", "crm export", "--tag",
                                   "src=crm"))["data_asset"]
            self.assertEqual((t["version"], t["type"], t["rows"], t["description"],
                              t["tags"]), (1, "table", 2, "crm export", {"src": "crm"}))
            self.assertEqual([c["type"] for c in t["columns"]], ["int", "int", "bool"])
            folder = os.path.join(d, "images")
            os.makedirs(folder)
            for i in range(3):
                with open(os.path.join(folder, f"{i}.png"), "wb") as f:
                    f.write(os.urandom(100))
            v = json.loads(self.ok("--json", "data", "create", "churn-cli",
                                   folder))["data_asset"]
            self.assertEqual((v["version"], v["type"], v["files"]), (2, "uri_folder", 3))
        table = self.ok("data", "list", "churn-cli")
        self.assertEqual(len(table.strip().splitlines()), 3, table)
        self.assertIn("table", table)
        shown = json.loads(self.ok("--json", "data", "show", "data:churn-cli:1"))
        self.assertEqual(shown["data_asset"]["rows"], 2)
        self.ok("data", "archive", "churn-cli:2")
        shown = json.loads(self.ok("--json", "data", "show", "churn-cli"))
        self.assertEqual(shown["data_asset"]["version"], 1)
        for args, code in ((("data", "create", "x", "/no/such/path"), 1),
                           (("data", "create", "x", "runs:/nope/f"), 1),
                           (("data", "create", "a:b", "runs:/r/f"), 1),
                           (("data", "archive", "churn-cli"), 2),
                           (("data", "show", "nope"), 1)):
            r = cli(self.ep, *args)
            self.assertEqual(r.returncode, code, (args, r.stdout, r.stderr))
            self.assertTrue(r.stderr.strip(), args)

    def test_bad_input(self):
        for args, code in ((("models", "create", "a:b"), 1),
                           (("models", "list", "--filter", "name >> 'x'"), 1),
                           (("models", "create", "t", "--tag", "novalue"), 2),
                           (("models", "alias", "nope", "champion", "1"), 1),
                           (("models", "register", "only-name"), 2)):
            r = cli(self.ep, *args)
            self.assertEqual(r.returncode, code, (args, r.stdout, r.stderr))
            self.assertTrue(r.stderr.strip(), args)


if __name__ == "__main__":
    unittest.main(verbosity=2)
