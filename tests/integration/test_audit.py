"""The audit trail (issue 13): with kernel.audit naming the audit service,
the kernel records every client request to a mutating verb (with the status
the client got) and every request refused at the edge (401/403), grouped on
their way; the audit plugin keeps them as a hash chain, answers query and
verify, and verify names the first record that was edited, deleted or
moved. Real cairnd, real plugins, the SQLite file edited for real."""
import json
import os
import sqlite3
import time
import sys
import unittest

import subprocess

import zmq

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import BIN, DEADLINE, SOURCE, Kernel, free_port, wait_for  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
import cairn  # noqa: E402
from cairn.audit import Audit  # noqa: E402

AUDITED = "  audit: audit\n"
SERVICES = ("  audit:\n    plugin: audit\n    mode: inproc\n"
            "  tracking:\n    plugin: storage\n    mode: inproc\n"
            "  echo:\n    plugin: echo\n    mode: inproc\n"
            '    settings:\n      allow_crash: "true"\n')  # echo.block


def records(c, **q):
    h, b = c.call("audit", "query", q)
    assert h["st"] == 200, h
    return b["records"]


class Trail(unittest.TestCase):
    def setUp(self):
        self.k = Kernel(services=SERVICES, kernel_extra=AUDITED).start()
        self.c = self.k.client()

    def tearDown(self):
        self.c.close()
        self.k.cleanup()

    def make(self, n, first=0):
        for i in range(first, first + n):
            h, _ = self.c.call("tracking", "create_experiment", {"name": f"e{i}"},
                               cid=f"cid-{i}")
            self.assertEqual(h["st"], 200, h)

    def wait_records(self, n, **q):
        wait_for(lambda: len(records(self.c, **q)) >= n, what=f"{n} audit records")
        return records(self.c, **q)

    def test_mutating_requests_are_recorded(self):
        self.make(3)
        h, _ = self.c.call("tracking", "create_experiment", {"name": "e0"})
        self.assertEqual(h["st"], 409)  # refused by the plugin: recorded with its status
        self.c.call("tracking", "search_experiments", {})  # a read: not recorded
        recs = self.wait_records(4, svc="tracking")
        self.assertEqual([r["verb"] for r in recs], ["create_experiment"] * 4)
        self.assertEqual([r["status"] for r in recs], [200, 200, 200, 409])
        self.assertEqual({r["principal"] for r in recs}, {"local"})
        self.assertEqual({r["ws"] for r in recs}, {"default"})
        self.assertEqual([r["seq"] for r in recs], sorted(r["seq"] for r in recs))
        self.assertEqual(records(self.c, verb="search_experiments"), [])
        b = self.c.call("audit", "verify")[1]
        self.assertEqual((b["ok"], b["records"]), (True, 4))

    def test_query_filters_and_pages(self):
        self.make(5)
        self.wait_records(5)
        got, tok = [], None
        while True:
            q = {"max_results": 2, "svc": "tracking"}
            if tok:
                q["page_token"] = tok
            h, b = self.c.call("audit", "query", q)
            got += b["records"]
            tok = b.get("next_page_token")
            if not tok:
                break
        self.assertEqual(len(got), 5)
        # by status, on the server: the one refusal (409), and the rest
        h, _ = self.c.call("tracking", "create_experiment", {"name": "e0"})
        self.assertEqual(h["st"], 409)
        refused = self.wait_records(1, min_status=400)
        self.assertEqual([(r["verb"], r["status"]) for r in refused],
                         [("create_experiment", 409)])
        self.assertEqual(records(self.c, min_status=409, max_status=409), refused)
        ok = records(self.c, max_status=399, svc="tracking")
        self.assertEqual((len(ok), {r["status"] for r in ok}), (5, {200}))
        self.assertEqual(records(self.c, min_status=500), [])
        self.assertEqual(records(self.c, principal="nobody"), [])
        self.assertEqual(records(self.c, since=2**62), [])
        for bad in ({"max_results": 0}, {"page_token": "x"}, {"since": "soon"},
                    {"principal": 5}, {"page_token": "9" * 20}, {"min_status": -1},
                    {"max_status": 1000}, {"min_status": 500, "max_status": 400},
                    {"min_status": "400"}):
            self.assertEqual(self.c.call("audit", "query", bad)[0]["st"], 400, bad)

    def test_only_the_kernel_appends(self):
        h, _ = self.c.call("audit", "append", {"records": []})
        self.assertEqual((h["st"], h["code"]), (403, "forbidden"))

    def tamper(self, script):
        self.c.close()
        self.k.stop()
        db = sqlite3.connect(os.path.join(self.k.state, "audit.db"))
        db.executescript(f"BEGIN; {script}; COMMIT;")
        db.close()
        self.k.start()
        self.c = self.k.client()
        return self.c.call("audit", "verify")[1]

    def test_verify_names_the_first_bad_record(self):
        self.make(5)
        self.wait_records(5)
        b = self.tamper("UPDATE records SET status = 200 WHERE seq = 3")  # unchanged value
        self.assertTrue(b["ok"])
        b = self.tamper("UPDATE records SET principal = 'mallory' WHERE seq = 3")
        self.assertEqual((b["ok"], b["first_bad_seq"]), (False, 3))

    def cli(self, *args, rc=0):
        r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint,
                            *args], capture_output=True, text=True, timeout=DEADLINE)
        self.assertEqual(r.returncode, rc, (args, r.stdout, r.stderr))
        return r.stdout + r.stderr

    def test_cli_verify_online_and_offline(self):
        self.make(4)
        self.wait_records(4)
        self.assertIn("ok: the chain of 4 records holds", self.cli("audit", "verify"))
        self.assertIn("create_experiment", self.cli("audit", "query", '{"svc": "tracking"}'))
        self.tamper("UPDATE records SET verb = 'nothing' WHERE seq = 2")
        self.assertIn("broken at record 2", self.cli("audit", "verify", rc=1))
        self.c.close()
        self.k.stop()
        db = os.path.join(self.k.state, "audit.db")
        self.assertIn("broken at record 2", self.cli("audit", "verify-file", db, rc=1))
        self.cli("audit", "verify-file", "/nonexistent/audit.db", rc=2)
        self.k.start()
        self.c = self.k.client()

    def test_python_sdk(self):
        self.make(5)
        self.wait_records(5)
        with Audit(endpoint=self.k.endpoint, token="") as a:
            recs = a.query(svc="tracking", page_size=2)
            self.assertEqual([r["verb"] for r in recs], ["create_experiment"] * 5)
            self.assertEqual([r["seq"] for r in recs], sorted(r["seq"] for r in recs))
            self.assertEqual(set(recs[0]), {"seq", "time", "principal", "ws", "svc", "verb",
                                            "object", "status"})
            self.assertEqual(len(a.query(svc="tracking", page_size=2, limit=3)), 3)
            page = a.query_page(svc="tracking", max_results=2)
            self.assertEqual(len(page["records"]), 2)
            nxt = a.query_page(svc="tracking", max_results=2,
                               page_token=page["next_page_token"])
            self.assertGreater(nxt["records"][0]["seq"], page["records"][1]["seq"])
            t = recs[2]["time"]
            self.assertTrue(all(t <= r["time"] < t + 1
                                for r in a.query(since=t, until=t + 1)))
            self.assertEqual(a.query(principal="nobody"), [])
            self.assertEqual(a.query(verb="create_experiment", principal="local"), recs)
            with self.assertRaises(cairn.BadRequest):
                a.query_page(max_results=0)
            with self.assertRaises(cairn.BadRequest):
                a.query_page(page_token="x")
            self.assertEqual(a.verify(), {"ok": True, "records": 5})
        b = self.tamper("UPDATE records SET status = 500 WHERE seq = 4")
        self.assertEqual((b["ok"], b["first_bad_seq"]), (False, 4))
        with Audit(endpoint=self.k.endpoint, token="") as a:
            self.assertEqual(a.verify(), {"ok": False, "records": 4, "first_bad_seq": 4})

    def test_cli_query(self):
        self.make(3)
        self.wait_records(3)
        out = json.loads(self.cli("--json", "audit", "query",
                                  '{"svc": "tracking", "max_results": 2}'))
        self.assertEqual([r["verb"] for r in out["records"]], ["create_experiment"] * 2)
        self.assertIn("next_page_token", out)
        out = json.loads(self.cli("--json", "audit", "query", json.dumps(
            {"svc": "tracking", "page_token": out["next_page_token"]})))
        self.assertEqual(len(out["records"]), 1)
        self.assertNotIn("next_page_token", out)
        self.assertEqual(json.loads(self.cli("--json", "audit", "verify")),
                         {"ok": True, "records": 3})
        h, _ = self.c.call("tracking", "create_experiment", {"name": "e0"})  # 409
        self.assertEqual(h["st"], 409)
        self.wait_records(1, min_status=400)
        out = json.loads(self.cli("--json", "audit", "query", '{"min_status": 400}'))
        self.assertEqual([(r["verb"], r["status"]) for r in out["records"]],
                         [("create_experiment", 409)])
        for bad in ('{"since": "soon"}', '{"svc": 5}', '{"nope": 1}', '[1]', '{',
                    '{"max_results": 0}', '{"min_status": 5}', '{"max_status": "x"}'):
            self.cli("audit", "query", bad, rc=2)
        self.assertIn("max_results is from 1 to 1000",
                      self.cli("audit", "query", '{"max_results": 1001}', rc=1))

    def test_verify_finds_a_deleted_record(self):
        self.make(5)
        self.wait_records(5)
        b = self.tamper("DELETE FROM records WHERE seq = 2")
        self.assertEqual((b["ok"], b["first_bad_seq"]), (False, 2))

    def test_verify_finds_reordered_records(self):
        self.make(5)
        self.wait_records(5)
        b = self.tamper("UPDATE records SET seq = 103 WHERE seq = 3; "
                        "UPDATE records SET seq = 3 WHERE seq = 4; "
                        "UPDATE records SET seq = 4 WHERE seq = 103")
        self.assertEqual((b["ok"], b["first_bad_seq"]), (False, 3))

    def test_time_ranges(self):
        """since/until select by time (a seq range: times never go back
        along the chain), combined with the other filters and paging."""
        self.make(3)
        first = self.wait_records(3)
        t_mid = first[-1]["time"] + 1
        wait_for(lambda: time.time() * 1000 > t_mid + 5, what="the clock to move on")
        self.make(4, first=3)
        recs = self.wait_records(7)
        times = [r["time"] for r in recs]
        self.assertEqual(times, sorted(times))
        later = records(self.c, since=t_mid)
        self.assertEqual([r["seq"] for r in later], [r["seq"] for r in recs[3:]])
        earlier = records(self.c, until=t_mid)
        self.assertEqual([r["seq"] for r in earlier], [r["seq"] for r in recs[:3]])
        self.assertEqual(records(self.c, since=t_mid, until=t_mid), [])
        self.assertEqual(len(records(self.c, since=0, until=2**62)), 7)
        # paging within the range
        got, tok = [], None
        while True:
            q = {"since": t_mid, "max_results": 3, "verb": "create_experiment"}
            if tok:
                q["page_token"] = tok
            b = self.c.call("audit", "query", q)[1]
            got += b["records"]
            tok = b.get("next_page_token")
            if not tok:
                break
        self.assertEqual([r["seq"] for r in got], [r["seq"] for r in recs[3:]])
        self.assertEqual(records(self.c, since=t_mid, principal="nobody"), [])

    def test_records_name_their_object(self):
        """The plugin names what a mutating request acted on."""
        eid = self.c.call("tracking", "create_experiment", {"name": "named"})[1][
            "experiment_id"]
        rid = self.c.call("tracking", "create_run", {"experiment_id": eid})[1]["run"][
            "info"]["run_id"]
        self.c.call("tracking", "log_param", {"run_id": rid, "key": "k", "value": "v"})
        self.c.call("tracking", "update_experiment", {"experiment_id": eid,
                                                      "new_name": "renamed"})
        self.c.call("echo", "echo", {})  # names nothing
        recs = self.wait_records(4, svc="tracking")
        self.assertEqual([(r["verb"], r["object"]) for r in recs],
                         [("create_experiment", f"experiment/{eid}"),
                          ("create_run", f"run/{rid}"),
                          ("log_param", f"run/{rid}"),
                          ("update_experiment", f"experiment/{eid}")])
        self.assertEqual(len(records(self.c, object=f"run/{rid}")), 2)

    def test_a_request_past_its_deadline_is_recorded(self):
        """The plugin holds it past its ttl: the record keeps the 504 the
        client got and names no object (the plugin named none)."""
        h, _ = self.c.call("echo", "block", {"ms": 600}, ttl=200)
        self.assertEqual(h["st"], 504, h)
        rec = self.wait_records(1, svc="echo")[0]
        self.assertEqual((rec["verb"], rec["status"], rec["object"]), ("block", 504, ""))
        h, b = self.c.call("echo", "echo", {"n": 1})
        self.assertEqual((h["st"], b), (200, {"n": 1}), h)

    def test_a_clean_stop_writes_every_record(self):
        """Records still waiting when cairnd is told to stop reach the trail
        before the plugins stop: pipelined mutations, then SIGTERM at once
        after the last reply."""
        n = 600
        eid = self.c.call("tracking", "create_experiment", {"name": "burst"})[1][
            "experiment_id"]
        rid = self.c.call("tracking", "create_run", {"experiment_id": eid})[1]["run"][
            "info"]["run_id"]
        d = self.k.client(zmq.DEALER)
        for i in range(n):
            d.send("tracking", "log_metric", {"run_id": rid, "key": "m", "value": float(i),
                                              "timestamp": i, "step": i})
        self.assertEqual([d.recv()[0]["st"] for _ in range(n)], [200] * n)
        d.close()
        self.c.close()
        self.k.stop()
        self.assertNotIn("records not written at stop", self.k.read_log())
        self.k.start()
        self.c = self.k.client()
        self.assertEqual(len(records(self.c, verb="log_metric", max_results=1000)), n)

    def test_the_chain_goes_on_after_a_restart(self):
        self.make(2)
        self.wait_records(2)
        self.c.close()
        self.k.stop()
        self.k.start()
        self.c = self.k.client()
        self.make(2, first=2)
        self.wait_records(4)
        b = self.c.call("audit", "verify")[1]
        self.assertEqual((b["ok"], b["records"]), (True, 4))


class Refusals(unittest.TestCase):
    def test_refused_requests_are_recorded(self):
        services = ("  auth:\n    plugin: auth\n    mode: inproc\n" + SERVICES)
        k = Kernel(services=services, auth="auth", kernel_extra=AUDITED).start()
        try:
            with open(os.path.join(k.state, "owner.token")) as f:
                owner = f.read().strip()
            c = k.client()
            h, _ = c.call("tracking", "create_experiment", {"name": "x"})
            self.assertEqual(h["st"], 401)
            h, _ = c.call("tracking", "search_experiments", {}, tok="cairn_bogus")
            self.assertEqual(h["st"], 401)
            h, _ = c.call("sys", "services", {}, tok="cairn_bogus")  # the kernel's own
            self.assertEqual(h["st"], 401)
            wait_for(lambda: len(c.call("audit", "query", {}, tok=owner)[1]["records"]) >= 3,
                     what="the refusals recorded")
            recs = c.call("audit", "query", {}, tok=owner)[1]["records"]
            self.assertEqual([(r["svc"], r["verb"], r["status"]) for r in recs[:3]],
                             [("tracking", "create_experiment", 401),
                              ("tracking", "search_experiments", 401),
                              ("sys", "services", 401)])
            self.assertEqual(recs[0]["principal"], "anonymous")
            # a failed login is audited (login is mutating), naming the user
            h, _ = c.call("auth", "login", {"user": "mallory", "password": "guess1234"})
            self.assertEqual(h["st"], 401)
            wait_for(lambda: c.call("audit", "query", {"verb": "login"}, tok=owner)[1][
                "records"], what="the failed login recorded")
            rec = c.call("audit", "query", {"verb": "login"}, tok=owner)[1]["records"][0]
            self.assertEqual((rec["status"], rec["object"]), (401, "user/mallory"))
            c.close()
        finally:
            k.cleanup()


class Policy(unittest.TestCase):
    def test_refuse_while_the_trail_is_down(self):
        """The audit service is remote and its host never comes: the first
        group is not taken, and then mutating requests are refused (503);
        reads go on."""
        services = ("  audit:\n    plugin: audit\n    mode: remote\n"
                    "  tracking:\n    plugin: storage\n    mode: inproc\n")
        extra = AUDITED + f"  worker_endpoint: tcp://127.0.0.1:{free_port()}\n"
        k = Kernel(services=services, kernel_extra=extra)
        k.start(wait_up=False)
        try:
            c = k.client()
            wait_for(lambda: c.call("sys", "health")[1]["plugins"][1]["state"] == "up",
                     what="tracking up")
            first = c.call("tracking", "create_experiment", {"name": "a"})[0]["st"]
            self.assertEqual(first, 200)  # recorded, not yet sent
            wait_for(lambda: c.call("tracking", "create_experiment",
                                    {"name": "b"})[0]["st"] == 503,
                     what="mutations refused while the trail is down")
            h, _ = c.call("tracking", "create_experiment", {"name": "c"})
            self.assertIn("audit", h["err"])
            self.assertEqual(c.call("tracking", "search_experiments", {})[0]["st"], 200)
            c.close()
        finally:
            k.cleanup()

    def test_log_policy_goes_on(self):
        services = ("  audit:\n    plugin: audit\n    mode: remote\n"
                    "  tracking:\n    plugin: storage\n    mode: inproc\n")
        extra = (AUDITED + "  audit_policy: log\n"
                 f"  worker_endpoint: tcp://127.0.0.1:{free_port()}\n")
        k = Kernel(services=services, kernel_extra=extra)
        k.start(wait_up=False)
        try:
            c = k.client()
            wait_for(lambda: c.call("sys", "health")[1]["plugins"][1]["state"] == "up",
                     what="tracking up")
            self.assertEqual(c.call("tracking", "create_experiment",
                                    {"name": "first"})[0]["st"], 200)
            wait_for(lambda: "not taken" in k.read_log(), what="the failure logged")
            for i in range(5):  # the trail is failing: requests go on all the same
                self.assertEqual(c.call("tracking", "create_experiment",
                                        {"name": f"n{i}"})[0]["st"], 200)
            self.assertEqual(k.read_log().count("not taken"), 1)  # logged once
            c.close()
        finally:
            k.cleanup()


if __name__ == "__main__":
    unittest.main()
