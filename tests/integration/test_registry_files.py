"""A model version's files (issue 14): an MLflow model folder registers with
the flavor and signature its MLmodel names; a local folder is uploaded once
and registered; list_files and read_file give the bytes back (the Python
SDK's download checks each file's hash) after the run's own files are
gone; bad input for both verbs. Real cairnd, storage and registry inproc
and in process mode."""
import hashlib
import io
import os
import signal
import sys
import tempfile
import unittest

import zmq

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import SOURCE, Kernel, wait_for  # noqa: E402
from registry_case import RegistryCase  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
import cairn  # noqa: E402
from cairn.registry import Registry  # noqa: E402
from cairn.transfer import _Upload  # noqa: E402

MLMODEL = b"""artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.xgboost
    python_version: 3.11.2
  xgboost:
    code: null
    data: model.xgb
    model_class: xgboost.sklearn.XGBClassifier
    xgb_version: 2.0.3
mlflow_version: 2.9.2
model_uuid: 6f1c
signature:
  inputs: '[{"type": "double", "name": "tenure", "required": true}, {"type": "string",
    "name": "plan", "required": true}]'
  outputs: '[{"type": "long", "required": true}]'
  params: null
utc_time_created: '2026-12-01 10:00:00.000000'
"""


class FilesBase(RegistryCase):
    def new_run(self, files):  # chunked, as the SDK sends a large file
        return super().new_run(files, put=lambda rid, path, data: _Upload(
            self.reg.client, rid, path, io.BytesIO(data)).run())

    def test_an_mlflow_model_folder_registers_as_is(self):
        model = os.urandom(100_000)
        rid = self.new_run({"model/MLmodel": MLMODEL, "model/model.xgb": model,
                            "model/conda.yaml": b"name: x\n"})
        n = self.name("mlflow")
        v = cairn.registry.Registry(client=self.reg.client).register_model(
            f"runs:/{rid}/model", n)
        self.assertEqual(v["flavor"], "xgboost")
        self.assertEqual(v["signature"],
                         '{"inputs": [{"type": "double", "name": "tenure", "required": '
                         'true}, {"type": "string", "name": "plan", "required": true}], '
                         '"outputs": [{"type": "long", "required": true}]}')
        # What the request names wins over the file.
        v2 = self.reg.create_version(n, f"runs:/{rid}/model", flavor="custom",
                                     signature='{"inputs": []}')
        self.assertEqual((v2["flavor"], v2["signature"]), ("custom", '{"inputs": []}'))
        # A python_function-only model is "python"; anything else "mlflow".
        rid2 = self.new_run({"m/MLmodel": b"flavors:\n  python_function: {}\n",
                             "n/MLmodel": b"flavors:\n  sklearn: {}\n  python_function: {}\n",
                             "o/MLmodel": b"flavors: [1, 2]\n",
                             "p/MLmodel": b"flavors: {a: 1}\nsignature: {inputs: 3}\n",
                             "q/MLmodel": b"a: [1\n"})
        self.assertEqual(self.reg.create_version(n, f"runs:/{rid2}/m")["flavor"], "python")
        self.assertEqual(self.reg.create_version(n, f"runs:/{rid2}/n")["flavor"], "mlflow")
        for bad, why in (("o", "names no flavors"), ("p", "signature.inputs"),
                         ("q", "MLmodel is not readable: YAML line")):
            with self.assertRaises(cairn.BadRequest) as e:
                self.reg.create_version(n, f"runs:/{rid2}/{bad}")
            self.assertIn(why, e.exception.message)
        # The failed ones took numbers, but no version exists for them.
        self.assertEqual([x["version"] for x in self.reg.search_versions(f"name = '{n}'")],
                         [4, 3, 2, 1])
        self.assertEqual(self.reg.create_version(n, f"runs:/{rid2}/m")["version"], 8)

    def test_files_come_back_after_the_run_loses_them(self):
        files = {"model/model.xgb": os.urandom(9 << 20), "model/sub/a.txt": b"a",
                 "model/MLmodel": b"flavors: {xgboost: {}}\n", "other.txt": b"no"}
        rid = self.new_run(files)
        n = self.name("files")
        self.reg.register_model(f"runs:/{rid}/model", n)
        listed = self.reg.list_files(f"{n}:1")
        self.assertEqual([(f["path"], f["size"]) for f in listed],
                         [("MLmodel", 23), ("model.xgb", 9 << 20), ("sub/a.txt", 1)])
        for f in listed:
            self.assertEqual(f["hash"], hashlib.sha256(files["model/" + f["path"]]).hexdigest())
        self.assertEqual([f["path"] for f in self.reg.list_files(f"{n}:1", page_size=1)],
                         ["MLmodel", "model.xgb", "sub/a.txt"])
        # Immutable: the run's file replaced by other bytes changes nothing.
        self.ok("artifacts", "put_artifact", {"run_id": rid, "path": "model/sub/a.txt",
                                              "data": b"changed", "offset": 0, "done": True})
        self.assertEqual(self.reg.list_files(f"{n}:1"), listed)
        self.ok("artifacts", "delete_artifact", {"run_id": rid, "path": "model"})
        self.reg.set_alias(n, "champion", 1)
        with tempfile.TemporaryDirectory() as d:
            out = cairn.registry.Registry(client=self.reg.client).download(
                f"{n}@champion", os.path.join(d, "m"))
            for path in ("MLmodel", "model.xgb", "sub/a.txt"):
                with open(os.path.join(out, path), "rb") as f:
                    self.assertEqual(f.read(), files["model/" + path])
            self.assertEqual(sorted(os.listdir(out)), ["MLmodel", "model.xgb", "sub"])
        b = self.ok("registry", "read_file", {"ref": f"models:/{n}/1", "path": "model.xgb",
                                              "offset": 5, "length": 10})
        self.assertEqual((b["data"], b["offset"], b["size"], b["hash_alg"]),
                         (files["model/model.xgb"][5:15], 5, 9 << 20, "sha256"))
        b = self.ok("registry", "list_files", {"ref": f"model:{n}:1"})
        self.assertEqual((b["ref"], b["content_hash"]),
                         (f"model:{n}:1", self.reg.get_version(n, 1)["content_hash"]))
        # resolve: the version and a local folder of its files (hard links).
        got = cairn.registry.Registry(client=self.reg.client).resolve(f"{n}@champion")
        self.assertEqual((got["ref"], got["kind"], got["model_version"]["version"]),
                         (f"model:{n}:1", "model_version", 1))
        path = got["path"]
        with open(os.path.join(path, "sub", "a.txt"), "rb") as f:
            self.assertEqual(f.read(), b"a")
        self.assertEqual(os.path.getsize(os.path.join(path, "model.xgb")), 9 << 20)
        self.assertEqual(self.reg.resolve(f"models:/{n}/1")["path"], path)  # built once
        self.assertEqual(self.reg.download_uri(n, 1), f"models:/{n}/1")
        # Once the version goes, so do its files and its folder.
        self.reg.delete_version(n, 1)
        self.refused("list_files", {"ref": f"{n}:1"}, 404)
        self.refused("resolve", {"ref": f"{n}:1"}, 404)
        wait_for(lambda: not os.path.exists(path), what="the folder removed")

    def test_a_local_folder_is_uploaded_once(self):
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "model")
            os.makedirs(os.path.join(src, "sub"))
            data = {"MLmodel": MLMODEL, "model.xgb": os.urandom(5000), "sub/x": b"x"}
            for p, b in data.items():
                with open(os.path.join(src, p), "wb") as f:
                    f.write(b)
            n = self.name("local")
            # tags outlive the two nested calls (a deferred body moves: this crashed)
            v = self.reg.register_model(src, n, tags={"team": "risk", "n": 1})
            self.assertEqual(v["tags"], [{"key": "n", "value": "1"},
                                         {"key": "team", "value": "risk"}])
            self.assertTrue(v["source"].startswith("runs:/") and v["source"].endswith("/model"))
            self.assertEqual(v["flavor"], "xgboost")
            run = self.ok("tracking", "get_run", {"run_id": v["run_id"]})["run"]
            self.assertIn({"key": "cairn.upload_of", "value": src}, run["data"]["tags"])
            # The same bytes under runs:/ register with the same content hash.
            rid = self.new_run({f"m/{p}": b for p, b in data.items()})
            same = self.reg.register_model(f"runs:/{rid}/m", n)
            self.assertEqual(same["content_hash"], v["content_hash"])
            single = self.reg.register_model(os.path.join(src, "model.xgb"), n)
            self.assertEqual([f["path"] for f in self.reg.list_files(f"{n}:3")],
                             ["model.xgb"])
            self.assertEqual(single["version"], 3)
            with self.assertRaises(FileNotFoundError):
                self.reg.upload(os.path.join(d, "nothing"))

    def test_bad_input(self):
        n = self.name("bad")
        self.reg.create_model(n)
        self.reg.create_version(n, "s3://bucket/model")  # not stored by Cairn
        self.refused("list_files", {"ref": f"{n}:1"}, 409)
        got = self.reg.resolve(f"{n}:1")
        self.assertEqual((got["kind"], got["model_version"]["source"], "path" in got),
                         ("model_version", "s3://bucket/model", False))
        self.assertEqual(self.reg.download_uri(n, 1), "s3://bucket/model")
        for body, st in (({}, 400), ({"ref": ""}, 400), ({"ref": "x" * 400}, 400),
                         ({"ref": f"{n}:9"}, 404), ({"ref": "env:nope"}, 404),
                         ({"ref": "data:nope:1"}, 404), ({"ref": [1]}, 400)):
            self.refused("resolve", body, st)
        for body, st in (({"name": n}, 400), ({"name": n, "version": 9}, 404),
                         ({"name": "nope", "version": 1}, 404)):
            self.refused("get_model_version_download_uri", body, st)
        for body, st in (({}, 400), ({"ref": ""}, 400), ({"ref": 7}, 400),
                         ({"ref": "x" * 5000}, 400), ({"ref": "nope:1"}, 404),
                         ({"ref": f"{n}:2"}, 404), ({"ref": f"{n}@none"}, 404),
                         ({"ref": f"{n}:0"}, 400), ({"ref": f"{n}:-1"}, 400),
                         ({"ref": f"{n}:1:2"}, 400), ({"ref": "env:e:1"}, 400),
                         ({"ref": "data:nope:1"}, 404), ({"ref": n}, 400),
                         ({"ref": f"{n}:1", "max_results": 0}, 400),
                         ({"ref": f"{n}:1", "max_results": 10001}, 400),
                         ({"ref": f"{n}:1", "max_results": "x"}, 400),
                         ({"ref": f"{n}:1", "page_token": 3}, 400)):
            self.refused("list_files", body, st)
        rid = self.new_run({"m/a": b"abc"})
        self.reg.create_version(n, f"runs:/{rid}/m")
        for body, st in (({"ref": f"{n}:2"}, 400), ({"ref": f"{n}:2", "path": ""}, 404),
                         ({"ref": f"{n}:2", "path": "b"}, 404),
                         ({"ref": f"{n}:2", "path": 1}, 400),
                         ({"ref": f"{n}:2", "path": "a" * 1025}, 400),
                         ({"ref": f"{n}:2", "path": "a", "offset": -1}, 400),
                         ({"ref": f"{n}:2", "path": "a", "length": "x"}, 400)):
            self.refused("read_file", body, st)
        b = self.ok("registry", "read_file", {"ref": f"{n}:2", "path": "a", "offset": 3})
        self.assertEqual((b["data"], b["size"]), (b"", 3))


class KillMidRegistration(unittest.TestCase):
    """kill -9 of the registry's process (then of the artifact store's)
    while registrations are in flight: after the restart every version
    that exists is whole (its files listed, its content hash the source's),
    and every registration answered 200 exists."""

    def setUp(self):
        svcs = ("  tracking:\n    plugin: storage\n    mode: inproc\n"
                "  artifacts:\n    plugin: storage\n    mode: process\n"
                "  registry:\n    plugin: registry\n    mode: process\n")
        self.k = Kernel(services=svcs, heartbeat_ms=500).start()
        self.c = self.k.client()
        self.reg = Registry(self.k.endpoint)

    def tearDown(self):
        self.reg.close()
        self.c.close()
        self.k.cleanup()

    def kill_during(self, victim):
        exp = self.c.call("tracking", "create_experiment",
                          {"name": f"kill-{victim}"})[1]["experiment_id"]
        rid = self.c.call("tracking", "create_run",
                          {"experiment_id": exp})[1]["run"]["info"]["run_id"]
        for i in range(200):
            h, _ = self.c.call("artifacts", "put_artifact",
                               {"run_id": rid, "path": f"m/f{i:03}", "data": os.urandom(64),
                                "offset": 0, "done": True})
            self.assertEqual(h["st"], 200, h)
        n = f"kill-{victim}"
        self.reg.create_model(n)
        want = self.reg.create_version(n, f"runs:/{rid}/m")["content_hash"]
        d = self.k.client(zmq.DEALER)
        sent = 60
        for i in range(sent):
            d.send("registry", "create_model_version",
                   {"name": n, "source": f"runs:/{rid}/m"}, id=i + 1)
        answered, ok = 0, set()
        pid = self.k.plugin(victim)["pid"]
        while answered < 5:  # a few done, the rest in flight
            h, b = d.recv()
            answered += 1
            if h["st"] == 200:
                ok.add(b["model_version"]["version"])
        os.kill(pid, signal.SIGKILL)
        while answered < sent:
            h, b = d.recv()
            answered += 1
            if h["st"] == 200:
                ok.add(b["model_version"]["version"])
            else:
                self.assertIn(h["st"], (502, 503, 504), h)
        d.close()
        wait_for(lambda: self.k.plugin(victim)["state"] == "up", what=f"{victim} back")
        wait_for(lambda: self.c.call("registry", "get_registered_model", {"name": n})[0]["st"]
                 == 200, what="registry answers")
        versions = self.reg.search_versions(f"name = '{n}'")
        have = {v["version"] for v in versions}
        self.assertLessEqual(ok, have)  # every acknowledged one is there
        for v in versions:
            self.assertEqual(v["content_hash"], want, v)
            files = self.reg.list_files(f"{n}:{v['version']}")
            self.assertEqual(len(files), 200, v["version"])
        # And registration goes on.
        self.assertEqual(self.reg.create_version(n, f"runs:/{rid}/m")["content_hash"], want)
        return len(ok), len(have)

    def test_kill_the_registry(self):
        self.kill_during("registry")

    def test_kill_the_artifact_store(self):
        self.kill_during("artifacts")


class FilesInproc(FilesBase, unittest.TestCase):
    MODE = "inproc"


class FilesProcess(FilesBase, unittest.TestCase):
    MODE = "process"


if __name__ == "__main__":
    unittest.main()
