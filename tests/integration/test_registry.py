"""The registry plugin (issue 14, first slice): registered models, versions
numbered per model and never reused, tags, MLflow's search filters and
paging, aliases and the history of every move (which version was champion
at a given moment), events on the bus, bad input for every verb. Real
cairnd, the plugin inproc and in process mode, the Python SDK, a restart
on the same state."""
import os
import sqlite3
import sys
import time
import unittest

import msgpack
import zmq

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import DEADLINE, SOURCE, Kernel  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
import cairn  # noqa: E402
from cairn.registry import Registry, parse_ref  # noqa: E402
from registry_case import RegistryCase  # noqa: E402


def services(mode):
    return f"  registry:\n    plugin: registry\n    mode: {mode}\n"


class RegistryBase:
    MODE = "inproc"

    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=services(cls.MODE)).start()
        cls.c = cls.k.client()
        cls.reg = Registry(cls.k.endpoint)

    @classmethod
    def tearDownClass(cls):
        cls.reg.close()
        cls.c.close()
        cls.k.cleanup()

    def call(self, verb, body, st=200):
        h, b = self.c.call("registry", verb, body)
        self.assertEqual(h["st"], st, (verb, body, h))
        return b if st < 400 else h

    def name(self, base):
        return f"{base}-{self.MODE}-{os.urandom(3).hex()}"

    def test_versions_count_up_and_are_never_reused(self):
        n = self.name("churn")
        m = self.reg.create_model(n, description="who leaves", tags={"team": "risk"})
        self.assertEqual((m["name"], m["description"], m["tags"], m["latest_versions"]),
                         (n, "who leaves", [{"key": "team", "value": "risk"}], []))
        with self.assertRaises(cairn.Conflict):
            self.reg.create_model(n)
        vs = [self.reg.create_version(n, f"/models/r{i}/model", run_id=f"r{i}",
                                      flavor="xgboost", tags={"i": i})
              for i in range(3)]
        self.assertEqual([v["version"] for v in vs], [1, 2, 3])
        v2 = self.reg.get_version(n, 2)
        self.assertEqual((v2["source"], v2["run_id"], v2["flavor"], v2["status"],
                          v2["tags"], v2["aliases"]),
                         ("/models/r1/model", "r1", "xgboost", "READY",
                          [{"key": "i", "value": "1"}], []))
        self.assertEqual(self.reg.get_version(n, "2"), v2)  # MLflow sends strings
        self.reg.delete_version(n, 3)
        with self.assertRaises(cairn.NotFound):
            self.reg.get_version(n, 3)
        self.assertEqual(self.reg.create_version(n, "/tmp/m")["version"], 4)
        got = self.reg.get_registered_model(n)
        self.assertEqual([v["version"] for v in got["latest_versions"]], [4])
        self.assertEqual(self.reg.update_version(n, 1, "first")["description"], "first")
        self.reg.set_version_tag(n, 1, "stage", "prod")
        self.reg.delete_version_tag(n, 1, "i")
        self.assertEqual(self.reg.get_version(n, 1)["tags"], [{"key": "stage", "value": "prod"}])
        with self.assertRaises(cairn.NotFound):
            self.reg.delete_version_tag(n, 1, "i")

    def test_aliases_and_their_history(self):
        n = self.name("fraud")
        self.reg.create_model(n)
        for i in range(3):
            self.reg.create_version(n, f"/models/r{i}/m")
        self.reg.set_alias(n, "champion", 1)
        t1 = self.reg.alias_history(n, "champion")[-1]["set_at"]
        time.sleep(0.01)
        self.reg.set_alias(n, "champion", 3)
        self.reg.set_alias(n, "champion", 3)  # no move: no new entry
        self.reg.set_alias(n, "challenger", 2)
        self.assertEqual(self.reg.get_model(f"{n}@champion")["version"], 3)
        self.assertEqual(self.reg.get_model(f"{n}:2")["aliases"], ["challenger"])
        m = self.reg.get_registered_model(n)
        self.assertEqual(m["aliases"], [{"alias": "challenger", "version": 2},
                                        {"alias": "champion", "version": 3}])
        hist = self.reg.alias_history(n, "champion")
        self.assertEqual([(h["version"], h["action"], h["set_by"]) for h in hist],
                         [(1, "set", "local"), (3, "set", "local")])
        t3 = hist[1]["set_at"]
        self.assertEqual(self.reg.alias_history(n, "champion", at=t1)["version"], 1)
        if t3 > t1:
            self.assertEqual(self.reg.alias_history(n, "champion", at=t3 - 1)["version"], 1)
        self.assertEqual(self.reg.alias_history(n, "champion", at=t3 + 10**6)["version"], 3)
        with self.assertRaises(cairn.NotFound):
            self.reg.alias_history(n, "champion", at=t1 - 1)
        # Deleting the version an alias names ends the alias, on the record.
        self.reg.delete_version(n, 2)
        with self.assertRaises(cairn.NotFound):
            self.reg.get_by_alias(n, "challenger")
        self.assertEqual([h["action"] for h in self.reg.alias_history(n, "challenger")],
                         ["set", "deleted"])
        self.reg.delete_alias(n, "champion")
        with self.assertRaises(cairn.NotFound):
            self.reg.delete_alias(n, "champion")
        hist = self.reg.alias_history(n, "champion")
        self.assertEqual([(h["version"], h["action"]) for h in hist],
                         [(1, "set"), (3, "set"), (3, "deleted")])
        with self.assertRaises(cairn.NotFound):
            self.reg.alias_history(n, "champion", at=hist[-1]["set_at"] + 1)
        # A rename keeps the history; a version that held the alias and is
        # gone is named in the 404.
        self.reg.set_alias(n, "champion", 1)
        n2 = n + "-renamed"
        self.assertEqual(self.reg.rename_model(n, n2)["name"], n2)
        self.assertEqual(len(self.reg.alias_history(n2, "champion")), 4)
        with self.assertRaises(cairn.NotFound):
            self.reg.get_registered_model(n)
        self.reg.delete_version(n2, 3)
        with self.assertRaises(cairn.NotFound) as cm:
            self.reg.alias_history(n2, "champion", at=t3 + 1)
        self.assertIn("deleted since", str(cm.exception))
        self.reg.delete_model(n2)
        with self.assertRaises(cairn.NotFound):
            self.reg.get_registered_model(n2)
        with self.assertRaises(cairn.NotFound):
            self.reg.get_by_alias(n2, "champion")

    def test_alias_lookups_follow_every_change(self):
        # get_model_version_by_alias' replies are cached (aliases.c) and
        # every write empties the cache: after each kind of change the
        # lookup must equal get_model_version (never cached), twice (the
        # second a hit).
        n = self.name("cache")
        self.reg.create_model(n)
        self.reg.create_version(n, "/m/1", tags={"k": "1"})
        self.reg.create_version(n, "/m/2")
        self.reg.set_alias(n, "champion", 1)

        def same(name, version):
            for _ in range(2):
                self.assertEqual(self.reg.get_by_alias(name, "champion"),
                                 self.reg.get_version(name, version))
            return self.reg.get_by_alias(name, "champion")

        self.assertEqual(same(n, 1)["aliases"], ["champion"])
        self.reg.set_version_tag(n, 1, "stage", "prod")
        self.assertEqual(same(n, 1)["tags"], [{"key": "k", "value": "1"},
                                              {"key": "stage", "value": "prod"}])
        self.reg.delete_version_tag(n, 1, "k")
        self.assertEqual(same(n, 1)["tags"], [{"key": "stage", "value": "prod"}])
        self.reg.set_version_tag(n, 1, "long", "x" * 5000)  # too big to keep
        self.assertEqual(len(same(n, 1)["tags"]), 2)
        self.reg.delete_version_tag(n, 1, "long")
        self.reg.update_version(n, 1, "first")
        self.assertEqual(same(n, 1)["description"], "first")
        self.reg.set_alias(n, "challenger", 1)
        self.assertEqual(same(n, 1)["aliases"], ["challenger", "champion"])
        self.reg.delete_alias(n, "challenger")
        self.assertEqual(same(n, 1)["aliases"], ["champion"])
        self.reg.set_alias(n, "champion", 2)
        self.assertEqual(same(n, 2)["version"], 2)
        n2 = n + "-renamed"
        self.reg.rename_model(n, n2)
        with self.assertRaises(cairn.NotFound):
            self.reg.get_by_alias(n, "champion")
        self.assertEqual(same(n2, 2)["name"], n2)
        # a write by another connection to the database (PRAGMA data_version)
        with sqlite3.connect(os.path.join(self.k.state, "registry.db")) as db:
            db.execute("UPDATE versions SET description = 'elsewhere' WHERE version = 2 "
                       "AND model_id = (SELECT id FROM models WHERE name = ?)", (n2,))
        db.close()
        self.assertEqual(same(n2, 2)["description"], "elsewhere")
        # a new model under the old name is not the renamed one
        self.reg.create_model(n)
        self.reg.create_version(n, "/other/1")
        with self.assertRaises(cairn.NotFound):
            self.reg.get_by_alias(n, "champion")
        self.reg.set_alias(n, "champion", 1)
        self.assertEqual(same(n, 1)["source"], "/other/1")
        self.reg.delete_version(n2, 2)
        with self.assertRaises(cairn.NotFound):
            self.reg.get_by_alias(n2, "champion")
        self.reg.delete_model(n)
        with self.assertRaises(cairn.NotFound):
            self.reg.get_by_alias(n, "champion")

    def test_every_change_is_in_the_model_history(self):
        n = self.name("hist")
        self.reg.create_model(n)
        self.reg.set_model_tag(n, "team", "risk")
        self.reg.create_version(n, "/m/1")
        self.reg.set_version_tag(n, 1, "stage", "prod")
        self.reg.update_version(n, 1, "first")
        self.reg.set_alias(n, "champion", 1)
        self.reg.delete_model_tag(n, "team")
        self.reg.update_model(n, "about")
        n2 = n + "-2"
        self.reg.rename_model(n, n2)
        hist = self.reg.model_history(n2, page_size=2)
        self.assertEqual([h["kind"] for h in hist],
                         ["model_created", "tag_set", "version_created", "tag_set",
                          "description_updated", "alias_set", "tag_deleted",
                          "description_updated", "model_renamed"])
        self.assertEqual([h["version"] for h in hist],
                         [None, None, 1, 1, 1, 1, None, None, None])
        self.assertEqual((hist[1]["detail"], hist[3]["detail"], hist[6]["detail"]),
                         ("team=risk", "stage=prod", "team"))
        self.assertEqual(hist[-1]["detail"], f"from {n}")
        self.assertEqual({h["by"] for h in hist}, {"local"})
        ats = [h["at"] for h in hist]
        self.assertEqual(ats, sorted(ats))

    def test_search_filters_order_and_pages(self):
        tag = os.urandom(3).hex()
        names = [self.name(f"s{tag}-{i}") for i in range(5)]
        for i, n in enumerate(names):
            self.reg.create_model(n, tags={"kind": "even" if i % 2 == 0 else "odd"})
            for j in range(2):
                self.reg.create_version(n, f"/m/{tag}{i}{j}", run_id=f"{tag}{i}{j}",
                                        tags={"j": j})
        found = self.reg.search_models(f"name LIKE 's{tag}-%'", page_size=2)
        self.assertEqual([m["name"] for m in found], sorted(names))
        found = self.reg.search_models(f"name LIKE 's{tag}-%' AND tags.kind = 'even'",
                                       order_by=["name DESC"])
        self.assertEqual([m["name"] for m in found], sorted(names[0::2], reverse=True))
        found = self.reg.search_models(f"name ILIKE 'S{tag.upper()}-%'")
        self.assertEqual(len(found), 5)
        self.assertEqual(self.reg.search_models(f"name = '{names[1]}'")[0]["name"], names[1])
        vs = self.reg.search_versions(f"run_id IN ('{tag}00', '{tag}31', 'nope')")
        self.assertEqual(sorted((v["name"], v["version"]) for v in vs),
                         sorted([(names[0], 1), (names[3], 2)]))
        vs = self.reg.search_versions(f"name = '{names[2]}'", page_size=1)
        self.assertEqual([v["version"] for v in vs], [2, 1])
        vs = self.reg.search_versions(f"name = '{names[2]}' AND version_number = '1'")
        self.assertEqual([v["version"] for v in vs], [1])
        vs = self.reg.search_versions(f"name LIKE 's{tag}-%' AND tags.j = '1'",
                                      order_by=["name ASC"])
        self.assertEqual([(v["name"], v["version"]) for v in vs],
                         [(n, 2) for n in sorted(names)])
        vs = self.reg.search_versions(f"source_path LIKE '/m/{tag}4%'")
        self.assertEqual(len(vs), 2)

    def test_bad_input_is_a_400_with_a_sentence(self):
        n = self.name("bad")
        self.reg.create_model(n)
        self.reg.create_version(n, "s")
        cases = [
            ("create_registered_model", {}, 400),
            ("create_registered_model", {"name": ""}, 400),
            ("create_registered_model", {"name": "a:b"}, 400),
            ("create_registered_model", {"name": "a@b"}, 400),
            ("create_registered_model", {"name": "x" * 257}, 400),
            ("create_registered_model", {"name": 5}, 400),
            ("create_registered_model", {"name": "t", "tags": [{"value": "v"}]}, 400),
            ("create_registered_model", {"name": "t", "tags": "x"}, 400),
            ("create_registered_model", {"name": "t", "tags": [{"key": "k"}] * 101}, 413),
            ("create_model_version", {"name": n}, 400),
            ("create_model_version", {"name": n, "source": ""}, 400),
            ("create_model_version", {"name": n, "source": "s", "flavor": "pickle"}, 400),
            ("create_model_version", {"name": "nope", "source": "s"}, 404),
            ("get_model_version", {"name": n, "version": "abc"}, 400),
            ("get_model_version", {"name": n, "version": 0}, 400),
            ("get_model_version", {"name": n, "version": -1}, 400),
            ("get_model_version", {"name": n, "version": 99}, 404),
            ("set_alias", {"name": n, "alias": "latest", "version": 1}, 400),
            ("set_alias", {"name": n, "alias": "v2", "version": 1}, 400),
            ("set_alias", {"name": n, "alias": "a b", "version": 1}, 400),
            ("set_alias", {"name": n, "alias": "x" * 65, "version": 1}, 400),
            ("set_alias", {"name": n, "alias": "ok", "version": 7}, 404),
            ("get_alias_history", {"name": n, "alias": "ok", "at": "now"}, 400),
            ("search_registered_models", {"filter": "name >> 'a'"}, 400),
            ("search_registered_models", {"filter": "run_id = 'a'"}, 400),
            ("search_registered_models", {"filter": "name = 'a"}, 400),
            ("search_registered_models", {"filter": "name = 'a' OR name = 'b'"}, 400),
            ("search_registered_models", {"filter": "x" * 5000}, 400),
            ("search_registered_models", {"max_results": 0}, 400),
            ("search_registered_models", {"max_results": 1001}, 400),
            ("search_registered_models", {"page_token": "garbage"}, 400),
            ("search_registered_models", {"order_by": ["size DESC"]}, 400),
            ("search_registered_models", {"order_by": ["name SIDEWAYS"]}, 400),
            ("search_model_versions", {"filter": "version_number = 'x'"}, 400),
            ("search_model_versions", {"filter": "version_number LIKE '1'"}, 400),
            ("search_model_versions", {"filter": "name = 'a' AND" + " name = 'a' AND" * 20
                                       + " name = 'a'"}, 400),
            ("rename_registered_model", {"name": n, "new_name": n}, 200),
            ("delete_registered_model_tag", {"name": n, "key": "none"}, 404),
            ("update_registered_model", {"name": n, "description": "d" * 70000}, 400),
        ]
        for verb, body, st in cases:
            h, _ = self.c.call("registry", verb, body)
            self.assertEqual(h["st"], st, (verb, body, h))
            if st >= 400:
                self.assertTrue(h.get("err"), (verb, body, h))
        h = self.call("search_registered_models", {"filter": "name >> 'a'"}, 400)
        self.assertIn("position", h["err"])

    def test_events(self):
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"model.")
        sub.connect(self.k.events)
        n = self.name("ev")
        self.reg.create_model(n)
        got = []
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and not any(t == b"model.alias_moved" for t, _ in got):
            v = self.reg.create_version(n, "s")["version"]
            self.reg.set_alias(n, f"a{v}", v)
            while sub.poll(100):
                got.append(tuple(sub.recv_multipart()))
        topics = {t for t, _ in got}
        self.assertIn(b"model.registered", topics)
        body = msgpack.unpackb([b for t, b in got if t == b"model.alias_moved"][0])
        self.assertEqual((body["name"], body["ws"]), (n, "default"))
        self.assertEqual(body["alias"], f"a{body['version']}")
        sub.close()


class RegistryInproc(RegistryBase, unittest.TestCase):
    MODE = "inproc"


class RegistryProcess(RegistryBase, unittest.TestCase):
    MODE = "process"


class Pinned(RegistryCase, unittest.TestCase):
    """A runs:/ source is resolved to the blobs the artifact store holds: no
    copy, a content_hash over the files, and the blobs outlive the run's
    files until the version goes."""

    def blob_paths(self):
        root = os.path.join(self.k.state, "artifacts", "sha256")
        return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs}

    def test_a_version_keeps_its_bytes(self):
        files = {"model/model.xgb": os.urandom(3000), "model/MLmodel": b"flavors: {}\n",
                 "metrics.json": b"{}"}
        rid = self.new_run(files)
        n = f"pinned-{os.urandom(3).hex()}"
        self.reg.create_model(n)
        before = self.blob_paths()
        v = self.reg.create_version(n, f"runs:/{rid}/model", flavor="xgboost")
        self.assertEqual(v["run_id"], rid)
        self.assertTrue(v["content_hash"].startswith("sha256:"), v)
        self.assertEqual(self.blob_paths(), before)  # no byte copied
        # The same files registered again: the same content hash.
        v2 = self.reg.create_version(n, f"runs:/{rid}/model")
        self.assertEqual(v2["content_hash"], v["content_hash"])
        one = self.reg.create_version(n, f"runs:/{rid}/model/MLmodel")
        self.assertNotEqual(one["content_hash"], v["content_hash"])
        # The run's files go; the version's blobs stay.
        self.ok("artifacts", "delete_artifact", {"run_id": rid, "path": "model"})
        self.assertEqual(self.blob_paths(), before)
        # Each version pins them: deleting two of three frees nothing...
        self.reg.delete_version(n, v["version"])
        self.reg.delete_version(n, one["version"])
        time.sleep(0.2)
        self.assertEqual(self.blob_paths(), before)
        # ... and the last one lets the model's files go (not metrics.json).
        self.reg.delete_model(n)
        for _ in range(100):
            if len(self.blob_paths()) == len(before) - 2:
                break
            time.sleep(0.05)
        self.assertEqual(len(self.blob_paths()), len(before) - 2)

    def test_lineage(self):
        rid = self.new_run({"m/w.bin": b"w"})
        n = f"lin-{os.urandom(3).hex()}"
        self.reg.create_model(n)
        self.reg.create_version(n, f"runs:/{rid}/m")
        self.reg.set_alias(n, "champion", 1)
        src = self.new_run({"train.csv": b"a,b\n1,2\n"})
        for _ in range(3):  # data:train:3 and env:py311:1 exist: inputs are checked
            self.reg.create_data_asset("train", f"runs:/{src}/train.csv", type="table")
        self.reg.create_environment("py311", python="/usr/bin/python3")
        self.ok("registry", "log_input", {"run_id": rid, "input": "data:train:3"})
        self.ok("registry", "log_input", {"run_id": rid, "input": "env:py311:1"})
        self.ok("registry", "log_input", {"run_id": rid, "input": "data:train:3"})  # once

        def lineage(node, **kw):
            return self.ok("registry", "lineage", dict(node=node, **kw))

        up = lineage(f"model:{n}@champion", direction="up", depth=5)
        self.assertEqual({(x["id"], x["type"]) for x in up["nodes"]},
                         {(f"model:{n}:1", "model_version"), (f"run:{rid}", "run"),
                          ("data:train:3", "data_asset"), ("env:py311:1", "environment"),
                          (f"run:{src}", "run")})  # the run that made the data
        self.assertIn({"from": f"run:{rid}", "to": f"model:{n}:1", "kind": "produced"},
                      up["edges"])
        self.assertIn({"from": "data:train:3", "to": f"run:{rid}", "kind": "input"},
                      up["edges"])
        self.assertEqual(len(up["edges"]), 4)
        two = lineage(f"model:{n}:1", direction="up", depth=2)
        self.assertEqual(len(two["edges"]), 3)
        one = lineage(f"model:{n}:1", direction="up", depth=1)
        self.assertEqual([e["kind"] for e in one["edges"]], ["produced"])
        down = lineage("data:train:3", direction="down")
        self.assertEqual({x["id"] for x in down["nodes"]},
                         {"data:train:3", f"run:{rid}", f"model:{n}:1"})
        both = lineage(f"run:{rid}")
        self.assertEqual(len(both["edges"]), 4)
        # A rename carries the edges; the reply names the model as it is now.
        self.reg.rename_model(n, n + "-r")
        down = lineage("data:train:3", direction="down")
        self.assertIn(f"model:{n}-r:1", {x["id"] for x in down["nodes"]})
        for body, st in (({"node": "foo"}, 400), ({"node": f"run:{rid}", "direction": "x"}, 400),
                         ({"node": f"run:{rid}", "depth": 0}, 400),
                         ({"node": f"run:{rid}", "depth": 51}, 400),
                         ({"node": "model:nope:1"}, 404),
                         ({"node": f"model:{n}-r@nobody"}, 404)):
            h, _ = self.c.call("registry", "lineage", body)
            self.assertEqual(h["st"], st, (body, h))
        for body in ({"run_id": rid, "input": f"run:{rid}"}, {"run_id": "", "input": "data:a:1"},
                     {"run_id": rid}, {"run_id": rid, "input": "x" * 600},
                     {"run_id": rid, "input": "data:train:x"}):
            h, _ = self.c.call("registry", "log_input", body)
            self.assertEqual(h["st"], 400, (body, h))
        for node in ("data:train:4", "data:nope@latest", "env:py311:2", "env:nope"):
            h, _ = self.c.call("registry", "log_input", {"run_id": rid, "input": node})
            self.assertEqual(h["st"], 404, (node, h))

    def test_a_bad_source_takes_nothing(self):
        rid = self.new_run({"a.txt": b"a"})
        n = f"bad-src-{os.urandom(3).hex()}"
        self.reg.create_model(n)
        for source, st in ((f"runs:/{rid}/nothing", 404), ("runs:/no-such-run/m", 404),
                           ("runs://m", 400), (f"runs:/{'x' * 65}/m", 400)):
            h, _ = self.c.call("registry", "create_model_version", {"name": n, "source": source})
            self.assertEqual(h["st"], st, (source, h))
            self.assertTrue(h.get("err"))
        h, _ = self.c.call("registry", "create_model_version",
                           {"name": n, "source": f"runs:/{rid}/a.txt", "run_id": "other"})
        self.assertEqual(h["st"], 400, h)
        self.assertEqual(self.reg.search_versions(f"name = '{n}'"), [])
        # Numbers refused along the way are not given out again.
        v = self.reg.create_version(n, f"runs:/{rid}/a.txt")
        self.assertGreater(v["version"], 1)
        self.assertTrue(v["content_hash"].startswith("sha256:"))


class Persistence(unittest.TestCase):
    def test_a_restart_keeps_everything(self):
        k = Kernel(services=services("inproc")).start()
        try:
            with Registry(k.endpoint) as reg:
                reg.create_model("kept", tags={"a": "1"})
                reg.create_version("kept", "/m/x")
                reg.create_version("kept", "/m/y")
                reg.set_alias("kept", "champion", 2)
            k.stop()
            k.start()
            with Registry(k.endpoint) as reg:
                self.assertEqual(reg.get_model("kept@champion")["source"], "/m/y")
                self.assertEqual(reg.create_version("kept", "s")["version"], 3)
                self.assertEqual(len(reg.alias_history("kept", "champion")), 1)
                self.assertEqual(reg.get_registered_model("kept")["tags"],
                                 [{"key": "a", "value": "1"}])
            st = os.stat(os.path.join(k.state, "registry.db"))
            self.assertEqual(st.st_mode & 0o777, 0o600)
        finally:
            k.cleanup()

    def test_references(self):
        self.assertEqual(parse_ref("churn@champion"), ("churn", None, "champion"))
        self.assertEqual(parse_ref("model:churn:3"), ("churn", 3, None))
        self.assertEqual(parse_ref("churn/3"), ("churn", 3, None))
        with self.assertRaises(ValueError):
            parse_ref("churn")


if __name__ == "__main__":
    unittest.main(verbosity=2)
