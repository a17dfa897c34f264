"""Workspaces are the tenancy boundary (issue 13): every experiment, run,
metric and artifact lives in one, named by the request's `ws` header
(absent: `default`). An object of another workspace is 404 not_found, with
the same sentence as one that does not exist, so that its existence does
not leak; names are unique per workspace only; a workspace that does not
exist is 404 for a caller whose grants would allow it and 403 for one whose
grants do not (again, no leak). A real cairnd with auth on, the real auth
and storage plugins, real sockets.

The verb table below names every tracking and artifacts verb; a verb that
sys.services lists and the table does not fails the test, so a new verb
cannot skip the isolation check."""
import os
import re
import shutil
import sqlite3
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CAIRN_SOURCE_DIR") or os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
import cairn  # noqa: E402
from cairn_harness import SOURCE, Kernel  # noqa: E402

SERVICES = ("  auth:\n    plugin: auth\n    mode: inproc\n"
            "  tracking:\n    plugin: storage\n    mode: inproc\n"
            "  artifacts:\n    plugin: storage\n    mode: inproc\n")

# Each verb's body naming alpha's objects (E: its experiment id, R: its
# run id); sent with ws beta, each must be 404 not_found.
BY_ID = {
    "tracking": {
        "get_experiment": {"experiment_id": "E"},
        "update_experiment": {"experiment_id": "E", "new_name": "stolen"},
        "delete_experiment": {"experiment_id": "E"},
        "restore_experiment": {"experiment_id": "E"},
        "set_experiment_tag": {"experiment_id": "E", "key": "k", "value": "v"},
        "delete_experiment_tag": {"experiment_id": "E", "key": "k"},
        "create_run": {"experiment_id": "E"},
        "update_run": {"run_id": "R", "status": "FINISHED"},
        "get_run": {"run_id": "R"},
        "delete_run": {"run_id": "R"},
        "restore_run": {"run_id": "R"},
        "set_tag": {"run_id": "R", "key": "k", "value": "v"},
        "delete_tag": {"run_id": "R", "key": "t"},
        "log_batch": {"run_id": "R", "metrics": [
            {"key": "m", "value": 1.0, "timestamp": 1, "step": 0}]},
        "log_metric": {"run_id": "R", "key": "m", "value": 1.0, "timestamp": 1},
        "log_param": {"run_id": "R", "key": "p2", "value": "v"},
        "get_metric_history": {"run_id": "R", "key": "m"},
        "get_metric_history_sampled": {"run_id": "R", "keys": ["m"]},
        "log_inputs": {"run_id": "R", "datasets": [{"dataset": {
            "name": "d", "digest": "1", "source_type": "local", "source": "x"}}]},
        "log_model": {"run_id": "R", "model_json": "{}"},
    },
    "artifacts": {
        "put_artifact": {"run_id": "R", "path": "x.bin", "data": b"x", "offset": 0,
                         "done": True},
        "get_artifact": {"run_id": "R", "path": "model.bin"},
        "verify_artifact": {"run_id": "R", "path": "model.bin"},
        "list_artifacts": {"run_id": "R"},
        "delete_artifact": {"run_id": "R", "path": "model.bin"},
        "abort_upload": {"run_id": "R", "upload_id": "U"},
        "pin_artifacts": {"run_id": "R", "path": "model.bin", "owner": "o"},
        "create_multipart": {"run_id": "R", "path": "big.bin", "num_parts": 1},
        "upload_part": {"upload_id": "M", "part_number": 1, "offset": 0, "data": b"x",
                        "done": True},
        "complete_multipart": {"run_id": "R", "upload_id": "M",
                               "parts": [{"part_number": 1, "etag": "0" * 64}]},
        "abort_multipart": {"run_id": "R", "upload_id": "M"},
    },
}
# Verbs that name no object: checked one by one below.
UNNAMED = {"tracking": {"create_experiment", "get_experiment_by_name",
                        "search_experiments", "search_runs",
                        "stats"},  # a count over the whole plugin, naming nothing
           # pins are kept per workspace: an owner names no other's
           # (test_pinviews.py checks the pinned blobs' verbs across them)
           "artifacts": {"unpin_artifacts", "read_pinned", "sniff_pinned",
                         "materialize_pinned"}}


def fill(body, ids):
    return {k: ids.get(v, v) if isinstance(v, str) else v for k, v in body.items()}


class Caller:
    """Calls with a token (the owner's unless told)."""

    def __init__(self, k, tok):
        self.c, self.tok = k.client(), tok

    def call(self, svc, verb, body=None, tok=None, **hdr):
        return self.c.call(svc, verb, body, tok=tok or self.tok, **hdr)

    def ok(self, svc, verb, body=None, tok=None, **hdr):
        h, b = self.call(svc, verb, body, tok, **hdr)
        if h["st"] >= 300:
            raise AssertionError((svc, verb, h))
        return b

    def make_objects(self, ws):
        """An experiment named 'shared' with a run that has a metric, a
        param, a tag, an artifact, an unfinished upload and a multipart
        upload, in ws."""
        eid = self.ok("tracking", "create_experiment", {"name": "shared"},
                      ws=ws)["experiment_id"]
        rid = self.ok("tracking", "create_run", {"experiment_id": eid},
                      ws=ws)["run"]["info"]["run_id"]
        self.ok("tracking", "log_batch", {
            "run_id": rid, "metrics": [{"key": "m", "value": 0.5, "timestamp": 1, "step": 0}],
            "params": [{"key": "p", "value": "1"}], "tags": [{"key": "t", "value": ws}]},
            ws=ws)
        self.ok("artifacts", "put_artifact", {
            "run_id": rid, "path": "model.bin", "data": ws.encode() * 100, "offset": 0,
            "done": True}, ws=ws)
        uid = self.ok("artifacts", "put_artifact", {
            "run_id": rid, "path": "part.bin", "data": b"p", "offset": 0},
            ws=ws)["upload_id"]
        mid = self.ok("artifacts", "create_multipart", {
            "run_id": rid, "path": "multi.bin", "num_parts": 1}, ws=ws)["upload_id"]
        return {"E": eid, "R": rid, "U": uid, "M": mid}


class Workspaces(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=SERVICES, auth="auth").start()
        with open(os.path.join(cls.k.state, "owner.token")) as f:
            cls.cl = Caller(cls.k, f.read().strip())
        cls.call, cls.ok = cls.cl.call, cls.cl.ok
        for ws in ("alpha", "beta"):
            cls.ok("auth", "create_workspace", {"name": ws})
        cls.alpha = cls.cl.make_objects("alpha")

    @classmethod
    def tearDownClass(cls):
        cls.cl.c.close()
        cls.k.cleanup()

    def test_every_verb_is_in_the_table(self):
        svcs = {s["name"]: s for s in self.ok("sys", "services")["services"]}
        for svc in ("tracking", "artifacts"):
            verbs = set(svcs[svc]["verbs"])
            self.assertEqual(verbs, set(BY_ID[svc]) | UNNAMED[svc], svc)

    def test_objects_of_another_workspace_are_not_found(self):
        for svc, verbs in BY_ID.items():
            for verb, body in verbs.items():
                h, _ = self.call(svc, verb, fill(body, self.alpha), ws="beta")
                self.assertEqual((h["st"], h.get("code")), (404, "not_found"), (verb, h))
        # the same sentence as an id that does not exist
        h, _ = self.call("tracking", "get_run", {"run_id": self.alpha["R"]}, ws="beta")
        h2, _ = self.call("tracking", "get_run", {"run_id": "0" * 32}, ws="beta")
        self.assertEqual(h["err"].replace(self.alpha["R"], "0" * 32), h2["err"])
        # ... and alpha's objects are untouched
        b = self.ok("tracking", "get_run", {"run_id": self.alpha["R"]}, ws="alpha")
        data = b["run"]["data"]
        self.assertEqual(b["run"]["info"]["status"], "RUNNING")
        self.assertEqual([m["value"] for m in data["metrics"]], [0.5])
        self.assertEqual({p["key"] for p in data["params"]}, {"p"})
        self.assertIn({"key": "t", "value": "alpha"}, data["tags"])
        e = self.ok("tracking", "get_experiment", {"experiment_id": self.alpha["E"]},
                    ws="alpha")["experiment"]
        self.assertEqual((e["name"], e["lifecycle_stage"], e["tags"]),
                         ("shared", "active", []))
        got = self.ok("artifacts", "get_artifact", {"run_id": self.alpha["R"],
                                                    "path": "model.bin"}, ws="alpha")
        self.assertEqual(got["data"], b"alpha" * 100)
        files = self.ok("artifacts", "list_artifacts", {"run_id": self.alpha["R"]},
                        ws="alpha")["files"]
        self.assertEqual([f["path"] for f in files], ["model.bin"])

    def test_names_are_per_workspace(self):
        beta = self.cl.make_objects("beta")  # 'shared' again: no conflict
        self.assertNotEqual(beta["E"], self.alpha["E"])
        for ws, ids in (("alpha", self.alpha), ("beta", beta)):
            e = self.ok("tracking", "get_experiment_by_name",
                        {"experiment_name": "shared"}, ws=ws)["experiment"]
            self.assertEqual(e["experiment_id"], ids["E"])
        h, _ = self.call("tracking", "create_experiment", {"name": "shared"}, ws="beta")
        self.assertEqual((h["st"], h["code"]), (409, "conflict"))
        self.ok("tracking", "create_experiment", {"name": "only-alpha"}, ws="alpha")
        h, _ = self.call("tracking", "get_experiment_by_name",
                         {"experiment_name": "only-alpha"}, ws="beta")
        self.assertEqual((h["st"], h["code"]), (404, "not_found"))
        # a rename into a name another workspace holds is fine
        eid = self.ok("tracking", "create_experiment", {"name": "b2"},
                      ws="beta")["experiment_id"]
        self.ok("tracking", "update_experiment", {"experiment_id": eid,
                                                  "new_name": "only-alpha"}, ws="beta")
        self.ok("artifacts", "abort_upload", {"run_id": beta["R"], "upload_id": beta["U"]},
                ws="beta")

    def test_searches_see_their_own_workspace(self):
        names = {e["name"] for e in self.ok("tracking", "search_experiments", {},
                                            ws="alpha")["experiments"]}
        self.assertIn("shared", names)
        self.assertNotIn("Default", names)  # experiment 0 is default's
        gamma = self.ok("tracking", "search_experiments", {}, ws="beta")["experiments"]
        self.assertNotIn(self.alpha["E"], [e["experiment_id"] for e in gamma])
        theirs = self.ok("tracking", "search_runs", {"experiment_ids": [self.alpha["E"]]},
                         ws="beta")
        self.assertEqual(theirs.get("runs", []), [])
        mine = self.ok("tracking", "search_runs", {"experiment_ids": [self.alpha["E"]]},
                       ws="alpha")["runs"]
        self.assertEqual([r["info"]["run_id"] for r in mine], [self.alpha["R"]])
        # the default workspace (no header) does not see alpha's either
        h, _ = self.call("tracking", "get_experiment", {"experiment_id": self.alpha["E"]})
        self.assertEqual(h["st"], 404)
        self.ok("tracking", "get_experiment", {"experiment_id": "0"})

    def test_nested_run_must_share_the_workspace(self):
        eid = self.ok("tracking", "create_experiment", {"name": "nest"},
                      ws="beta")["experiment_id"]
        h, _ = self.call("tracking", "create_run", {"experiment_id": eid,
                                                    "parent_run_id": self.alpha["R"]},
                         ws="beta")
        self.assertEqual((h["st"], h["code"]), (404, "not_found"))

    def test_unknown_workspace(self):
        h, _ = self.call("tracking", "search_experiments", {}, ws="nowhere")
        self.assertEqual((h["st"], h["code"]), (404, "not_found"), h)
        self.assertIn("no workspace named 'nowhere'", h["err"])
        # created, it works at once (auth.changed reaches the kernel first) ...
        self.ok("auth", "create_workspace", {"name": "later"})
        self.ok("tracking", "create_experiment", {"name": "x"}, ws="later")
        # ... and deleted, it is refused again
        self.ok("auth", "delete_workspace", {"name": "later"})
        h, _ = self.call("tracking", "search_experiments", {}, ws="later")
        self.assertEqual((h["st"], h["code"]), (404, "not_found"), h)

    def test_grants_are_checked_before_existence(self):
        """A user with a role in alpha only: 403 in beta and in a workspace
        that does not exist alike."""
        self.ok("auth", "create_user", {"user": "alice", "password": "correct horse 1"})
        self.ok("auth", "assign_role", {"principal": "alice", "role": "Contributor",
                                        "workspace": "alpha"})
        h, b = self.cl.c.call("auth", "login", {"user": "alice",
                                                "password": "correct horse 1"})
        self.assertEqual(h["st"], 200, h)
        tok = b["token"]
        self.ok("tracking", "get_run", {"run_id": self.alpha["R"]}, tok, ws="alpha")
        for ws in ("beta", "nowhere"):
            h, _ = self.call("tracking", "search_experiments", {}, tok, ws=ws)
            self.assertEqual((h["st"], h["code"]), (403, "forbidden"), (ws, h))
            self.assertIn(f"workspace '{ws}'", h["err"])

    def test_python_sdk_workspace(self):
        """cairn.set_workspace() for every Client made afterwards; a run
        started without an experiment goes to its workspace's own Default."""
        try:
            cairn.set_workspace("beta")
            with cairn.Client(self.k.endpoint, token=self.cl.tok) as c:
                self.assertEqual(c.workspace, "beta")
                names = [e["name"] for e in
                         c.call("tracking", "search_experiments", {})["experiments"]]
                self.assertNotIn("Default", names)
            t = cairn.Tracker(self.k.endpoint, token=self.cl.tok, asynchronous=False)
            with t.start_run(run_name="in-beta") as run:
                t.log_metric("acc", 0.9)
            t.close()
        finally:
            cairn.set_workspace(None)
        with cairn.Client(self.k.endpoint, token=self.cl.tok, workspace="beta") as c:
            e = c.call("tracking", "get_experiment_by_name",
                       {"experiment_name": "Default"})["experiment"]
            self.assertNotEqual(e["experiment_id"], "0")
            r = c.call("tracking", "get_run", {"run_id": run.run_id})["run"]
            self.assertEqual(r["info"]["experiment_id"], e["experiment_id"])
        with cairn.Client(self.k.endpoint, token=self.cl.tok) as c:  # default again
            self.assertIsNone(c.workspace)
            with self.assertRaises(cairn.NotFound):
                c.call("tracking", "get_run", {"run_id": run.run_id})
        with self.assertRaises(ValueError):
            cairn.set_workspace("")


# The storage plugin's schema version now (plugins/storage/schema.h: the
# number of its migrations).
with open(os.path.join(SOURCE, "plugins", "storage", "schema.h")) as _f:
    _text = _f.read()
SCHEMA_VERSION = len(re.findall(r"^    /\* \d+: ", _text, re.M))

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                       "state-v4")
# What tests/fixtures/state-v4 holds: a state dir written by cairnd at
# 1bfc980 (schema 4, before workspaces) with these objects.
V4 = {"E": "1", "R": "e937a413ec1bb2e436558c3fd9b4b78d",
      "CHILD": "7d50397fe5d346c711e004ef1e62b478",
      "DELETED": "6d2c8dc99c7a62b9e508f00befa3e397"}


class MigrationFromV4(unittest.TestCase):
    """A database made before workspaces is migrated at start: everything in
    it belongs to `default`, intact; other workspaces see none of it."""

    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=SERVICES, auth="auth")
        shutil.copytree(FIXTURE, cls.k.state)
        os.chmod(cls.k.state, 0o700)
        cls.k.start()
        with open(os.path.join(cls.k.state, "owner.token")) as f:
            cls.cl = Caller(cls.k, f.read().strip())
        cls.call, cls.ok = cls.cl.call, cls.cl.ok

    @classmethod
    def tearDownClass(cls):
        cls.cl.c.close()
        cls.k.cleanup()

    def schema_version(self):
        db = sqlite3.connect(os.path.join(self.k.state, "tracking.db"))
        try:
            return db.execute("PRAGMA user_version").fetchone()[0]
        finally:
            db.close()

    def test_everything_is_in_default_and_intact(self):
        self.assertEqual(self.schema_version(), SCHEMA_VERSION)
        e = self.ok("tracking", "get_experiment_by_name",
                    {"experiment_name": "before-workspaces"})["experiment"]
        self.assertEqual((e["experiment_id"], e["tags"]),
                         (V4["E"], [{"key": "team", "value": "vision"}]))
        self.assertEqual(self.ok("tracking", "get_experiment", {"experiment_id": "0"})[
            "experiment"]["name"], "Default")
        run = self.ok("tracking", "get_run", {"run_id": V4["R"]})["run"]
        self.assertEqual((run["info"]["run_name"], run["info"]["status"],
                          run["info"]["end_time"]), ("old-run", "FINISHED", 2000))
        self.assertEqual(run["data"]["params"], [{"key": "lr", "value": "0.01"}])
        hist = self.ok("tracking", "get_metric_history", {"run_id": V4["R"], "key": "loss",
                                                          "max_results": 100})["metrics"]
        self.assertEqual([m["step"] for m in hist], list(range(50)))
        child = self.ok("tracking", "get_run", {"run_id": V4["CHILD"]})["run"]["info"]
        self.assertEqual(child["parent_run_id"], V4["R"])
        gone = self.ok("tracking", "get_run", {"run_id": V4["DELETED"]})["run"]["info"]
        self.assertEqual(gone["lifecycle_stage"], "deleted")
        art = self.ok("artifacts", "get_artifact", {"run_id": V4["R"], "path": "model.txt"})
        self.assertEqual(art["data"], b"weights v4\n")
        self.ok("artifacts", "verify_artifact", {"run_id": V4["R"], "path": "model.txt"})
        found = self.ok("tracking", "search_runs", {"experiment_ids": [V4["E"]]})["runs"]
        self.assertEqual({r["info"]["run_id"] for r in found}, {V4["R"], V4["CHILD"]})

    def test_other_workspaces_see_none_of_it(self):
        self.ok("auth", "create_workspace", {"name": "newcomer"})
        for verb, body in (("get_experiment", {"experiment_id": V4["E"]}),
                           ("get_experiment_by_name", {"experiment_name": "before-workspaces"}),
                           ("get_run", {"run_id": V4["R"]})):
            h, _ = self.call("tracking", verb, body, ws="newcomer")
            self.assertEqual(h["st"], 404, (verb, h))
        # the old name is free there
        self.ok("tracking", "create_experiment", {"name": "before-workspaces"},
                ws="newcomer")

    def test_a_restart_migrates_nothing_twice(self):
        self.k.stop()
        self.k.start()
        self.cl.c.close()
        self.cl.c = self.k.client()  # start() may have moved to new ports
        self.assertEqual(self.schema_version(), SCHEMA_VERSION)
        self.ok("tracking", "get_run", {"run_id": V4["R"]})


if __name__ == "__main__":
    unittest.main()
