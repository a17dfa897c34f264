"""Data assets (issue 14): data:NAME:VERSION from a run's files or a local
file or folder (uploaded once), immutable versions 1, 2, 3, latest and
archive, a CSV table's rows and columns sniffed by the store, files listed
and downloaded, lineage from the run that produced it to the model trained
on it, references resolving, events, bad input. Real cairnd, storage and
registry inproc and in process mode, the Python SDK."""
import os
import sys
import tempfile
import time
import unittest

import zmq

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import DEADLINE, SOURCE  # noqa: E402
from registry_case import RegistryCase  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
import cairn  # noqa: E402

CSV = (b"customer,tenure,monthly,churned\n"
       b"a,12,70.5,true\n"
       b"b,3,20.25,false\n"
       b"\"c, inc\",40,99,true\n")


class DataBase(RegistryCase):
    def test_versions_latest_archive(self):
        rid = self.new_run({"d/a.txt": b"aaa", "d/b/c.txt": b"cc", "e/x": b"x"})
        n = self.name("ds")
        v1 = self.reg.create_data_asset(n, f"runs:/{rid}/d", type="uri_folder",
                                        description="raw", tags={"src": "crm"})
        self.assertEqual((v1["name"], v1["version"], v1["type"], v1["size"], v1["files"],
                          v1["description"], v1["tags"], v1["archived"]),
                         (n, 1, "uri_folder", 5, 2, "raw", {"src": "crm"}, False))
        self.assertTrue(v1["content_hash"].startswith("sha256:"))
        self.assertNotIn("rows", v1)
        v2 = self.reg.create_data_asset(n, f"runs:/{rid}/e/x", type="uri_file")
        self.assertEqual((v2["version"], v2["files"], v2["size"]), (2, 1, 1))
        self.assertEqual(self.reg.get_data_asset(n)["version"], 2)
        self.assertEqual(self.reg.get_data_asset(f"data:{n}:1"), v1)
        self.assertEqual(self.reg.get_data_asset(f"data:{n}@latest")["version"], 2)
        self.reg.archive_data_asset(n, 2)
        self.assertEqual(self.reg.get_data_asset(n)["version"], 1)
        self.assertEqual([d["version"] for d in self.reg.list_data_assets(n)], [1])
        self.assertEqual([d["version"] for d in
                          self.reg.list_data_assets(n, include_archived=True)], [2, 1])
        self.assertIn(n, [d["name"] for d in self.reg.list_data_assets()])
        # The same bytes again: the same content hash, a new version.
        v3 = self.reg.create_data_asset(n, f"runs:/{rid}/d", type="uri_folder")
        self.assertEqual((v3["version"], v3["content_hash"]), (3, v1["content_hash"]))
        # Its files, and its bytes once the run's are gone.
        self.assertEqual([(f["path"], f["size"]) for f in self.reg.list_files(f"data:{n}:1")],
                         [("a.txt", 3), ("b/c.txt", 2)])
        got = self.reg.resolve(f"data:{n}:1")
        self.assertEqual((got["ref"], got["kind"], got["data_asset"]), (f"data:{n}:1",
                                                                        "data_asset", v1))
        with open(os.path.join(got["path"], "b", "c.txt"), "rb") as f:
            self.assertEqual(f.read(), b"cc")
        self.assertEqual(self.reg.resolve(f"data:{n}@latest")["ref"], f"data:{n}:3")
        env = self.reg.create_environment(n, python="/usr/bin/python3")
        got = self.reg.resolve(f"env:{n}")
        self.assertEqual((got["ref"], got["kind"], got["environment"], "path" in got),
                         (f"env:{n}:1", "environment", env, False))
        self.ok("artifacts", "delete_artifact", {"run_id": rid, "path": "d"})
        with tempfile.TemporaryDirectory() as d:
            self.reg.download(f"data:{n}:1", d)
            with open(os.path.join(d, "b", "c.txt"), "rb") as f:
                self.assertEqual(f.read(), b"cc")

    def test_a_table_is_sniffed(self):
        rid = self.new_run({"t/churn.csv": CSV})
        n = self.name("table")
        t = self.reg.create_data_asset(n, f"runs:/{rid}/t/churn.csv", type="table")
        self.assertEqual(t["rows"], 3)
        self.assertEqual(t["columns"], [
            {"name": "customer", "type": "string", "nullable": False},
            {"name": "tenure", "type": "int", "nullable": False},
            {"name": "monthly", "type": "float", "nullable": False},
            {"name": "churned", "type": "bool", "nullable": False}])
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "local.csv")
            with open(p, "wb") as f:
                f.write(CSV + b"d,1,2.5,false\n")
            local = self.reg.create_data_asset(n, p, type="table")
            self.assertEqual((local["version"], local["rows"]), (2, 4))
            self.assertTrue(local["path"].startswith("runs:/"), local)
            folder = os.path.join(d, "folder")
            os.makedirs(folder)
            with open(os.path.join(folder, "x.bin"), "wb") as f:
                f.write(b"\x00\x01")
            self.assertEqual(cairn.registry.Registry(client=self.reg.client)
                             .create_data_asset(n, folder)["type"], "uri_folder")
        bad = self.new_run({"b/blob.bin": b"\x00\xff\xfe" * 100, "two/a.csv": CSV,
                            "two/b.csv": CSV})
        with self.assertRaises(cairn.BadRequest) as e:
            self.reg.create_data_asset(n, f"runs:/{bad}/b/blob.bin", type="table")
        self.assertIn("is not a table", e.exception.message)
        with self.assertRaises(cairn.BadRequest) as e:
            self.reg.create_data_asset(n, f"runs:/{bad}/two", type="table")
        self.assertIn("holds 2", e.exception.message)
        with self.assertRaises(cairn.BadRequest):
            self.reg.create_data_asset(n, f"runs:/{bad}/two", type="uri_file")
        self.assertEqual(self.reg.get_data_asset(n)["version"], 3)  # none was created

    def test_lineage_from_run_to_data_to_model(self):
        prep = self.new_run({"out/train.csv": CSV})
        n = self.name("train")
        self.reg.create_data_asset(n, f"runs:/{prep}/out/train.csv", type="table")
        train = self.new_run({"model/model.xgb": b"weights",
                              "model/MLmodel": b"flavors: {xgboost: {}}\n"})
        self.reg.log_input(train, f"data:{n}@latest")
        m = self.name("model")
        self.reg.register_model(f"runs:/{train}/model", m)
        up = self.reg.lineage(f"model:{m}:1", direction="up")
        ids = {x["id"]: x["type"] for x in up["nodes"]}
        self.assertEqual(ids, {f"model:{m}:1": "model_version", f"run:{train}": "run",
                               f"data:{n}:1": "data_asset", f"run:{prep}": "run"})
        self.assertIn({"from": f"run:{prep}", "to": f"data:{n}:1", "kind": "produced"},
                      up["edges"])
        down = self.reg.lineage(f"data:{n}:1", direction="down")
        self.assertIn(f"model:{m}:1", {x["id"] for x in down["nodes"]})

    def test_events(self):
        ctx = zmq.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"data.")
        sub.connect(self.k.events)
        rid = self.new_run({"f": b"1"})
        n = self.name("ev")
        got = []
        end = time.monotonic() + DEADLINE
        while not got and time.monotonic() < end:  # the slow joiner
            self.reg.create_data_asset(n, f"runs:/{rid}/f", type="uri_file")
            while sub.poll(200):
                got.append(sub.recv_multipart())
        sub.close()
        self.assertTrue(got)
        self.assertEqual(got[0][0], b"data.created")

    def test_bad_input(self):
        rid = self.new_run({"f": b"1"})
        ok = {"name": "b", "type": "uri_file", "path": f"runs:/{rid}/f"}
        for patch, st in (({"name": ""}, 400), ({"name": "a:b"}, 400), ({"name": 3}, 400),
                          ({"name": "x" * 300}, 400), ({"type": "csv"}, 400),
                          ({"type": None}, 400), ({"path": ""}, 400),
                          ({"path": "/tmp/local"}, 400), ({"path": "s3://b/k"}, 400),
                          ({"path": f"runs:/{rid}/nothing"}, 404),
                          ({"path": "runs:/no-such-run/f"}, 404),
                          ({"description": 5}, 400), ({"tags": "x"}, 400),
                          ({"tags": {"k": 1}}, 400)):
            body = dict(ok, **patch)
            body = {k: v for k, v in body.items() if v is not None}
            self.refused("create_data_asset", body, st)
        for verb, body, st in (("get_data_asset", {}, 400),
                               ("get_data_asset", {"name": "nope"}, 404),
                               ("get_data_asset", {"name": "b", "version": 0}, 400),
                               ("get_data_asset", {"name": "b", "version": "x"}, 400),
                               ("archive_data_asset", {"name": "nope", "version": 1}, 404),
                               ("list_data_assets", {"max_results": 0}, 400)):
            self.refused(verb, body, st)
        with self.assertRaises(cairn.NotFound):
            self.reg.list_data_assets("b")


class DataInproc(DataBase, unittest.TestCase):
    MODE = "inproc"


class DataProcess(DataBase, unittest.TestCase):
    MODE = "process"


if __name__ == "__main__":
    unittest.main()
