"""Tracking service integration tests: every verb's semantics, its errors and
limits, paging, nested runs, search, read-your-writes through the metric
journal, and durability after kill -9 of cairnd. The whole suite runs twice:
storage in-process and as a process."""
import math
import os
import signal
import subprocess
import sys
import unittest

import zmq

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import Kernel, wait_for  # noqa: E402


def services(mode, durability=None):
    s = f"  tracking:\n    plugin: storage\n    mode: {mode}\n"
    if durability:
        s += f"    settings:\n      durability: {durability}\n"
    return s


class TrackingBase:
    MODE = "inproc"

    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=services(cls.MODE)).start()
        cls.c = cls.k.client()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    def call(self, verb, body=None, st=200, code=None):
        h, b = self.c.call("tracking", verb, body)
        self.assertEqual(h["st"], st, (verb, h, b))
        if code:
            self.assertEqual(h["code"], code)
        return b if st < 400 else h

    def new_experiment(self, name=None):
        name = name or f"exp-{self.id()}-{os.urandom(4).hex()}"
        return self.call("create_experiment", {"name": name})["experiment_id"]

    def new_run(self, exp=None, **kw):
        body = {"experiment_id": exp or self.new_experiment()}
        body.update(kw)
        return self.call("create_run", body)["run"]

    # ---- experiments ----------------------------------------------------

    def test_experiment_lifecycle(self):
        name = f"lifecycle-{self.MODE}"
        eid = self.call("create_experiment", {"name": name, "tags": [{"key": "team",
                                                                        "value": "a"}]})[
            "experiment_id"]
        self.assertIsInstance(eid, str)
        e = self.call("get_experiment_by_name", {"experiment_name": name})["experiment"]
        self.assertEqual((e["experiment_id"], e["name"], e["lifecycle_stage"]),
                         (eid, name, "active"))
        self.assertEqual(e["tags"], [{"key": "team", "value": "a"}])
        self.assertEqual(e["artifact_location"], f"cairn-artifacts:/{eid}")
        self.call("create_experiment", {"name": name}, 409, "conflict")
        self.call("update_experiment", {"experiment_id": eid, "new_name": name + "-2"})
        self.assertEqual(self.call("get_experiment", {"experiment_id": eid})["experiment"]
                         ["name"], name + "-2")
        self.call("set_experiment_tag", {"experiment_id": eid, "key": "team", "value": "b"})
        self.call("delete_experiment", {"experiment_id": eid})
        e = self.call("get_experiment", {"experiment_id": eid})["experiment"]
        self.assertEqual(e["lifecycle_stage"], "deleted")
        self.assertEqual(e["tags"], [{"key": "team", "value": "b"}])
        self.call("create_run", {"experiment_id": eid}, 400)
        self.call("restore_experiment", {"experiment_id": eid})
        self.new_run(eid)

    def test_experiment_errors(self):
        self.call("create_experiment", {}, 400, "bad_request")
        self.call("create_experiment", {"name": ""}, 400)
        self.call("create_experiment", {"name": 5}, 400)
        self.call("create_experiment", {"name": "x" * 501}, 400)
        self.call("get_experiment", {"experiment_id": "999999"}, 404, "not_found")
        self.call("get_experiment", {"experiment_id": "abc"}, 404)
        self.call("get_experiment_by_name", {"experiment_name": "nope-nope"}, 404)
        self.call("delete_experiment", {"experiment_id": "0"}, 400)
        self.call("create_experiment", "not a map", 400)

    def test_default_experiment(self):
        e = self.call("get_experiment", {"experiment_id": "0"})["experiment"]
        self.assertEqual(e["name"], "Default")

    def test_search_experiments_paging(self):
        prefix = f"page-{self.MODE}-"
        for i in range(7):
            self.call("create_experiment", {"name": f"{prefix}{i}"})
        seen, token = [], None
        while True:
            body = {"max_results": 3, "filter": f"name LIKE '{prefix}%'"}
            if token:
                body["page_token"] = token
            r = self.call("search_experiments", body)
            seen += [e["name"] for e in r["experiments"]]
            token = r.get("next_page_token")
            if not token:
                break
        self.assertEqual(seen, [f"{prefix}{i}" for i in range(7)])
        self.call("search_experiments", {"page_token": "garbage"}, 400)
        self.call("search_experiments", {"max_results": 50001}, 400)
        self.call("search_experiments", {"filter": "colour = 'x'"}, 400)

    # ---- runs -----------------------------------------------------------

    def test_run_lifecycle(self):
        eid = self.new_experiment()
        run = self.new_run(eid, run_name="first", start_time=1000,
                           tags=[{"key": "k", "value": "v"}])
        info = run["info"]
        rid = info["run_id"]
        self.assertEqual(len(rid), 32)
        self.assertEqual((info["experiment_id"], info["run_name"], info["status"],
                          info["start_time"], info["lifecycle_stage"]),
                         (eid, "first", "RUNNING", 1000, "active"))
        self.assertTrue(info["artifact_uri"].endswith(f"/{rid}/artifacts"))
        self.assertIn({"key": "k", "value": "v"}, run["data"]["tags"])
        self.assertIn({"key": "mlflow.runName", "value": "first"}, run["data"]["tags"])
        r = self.call("update_run", {"run_id": rid, "status": "FINISHED", "end_time": 2000})
        self.assertEqual(r["run_info"]["status"], "FINISHED")
        got = self.call("get_run", {"run_id": rid})["run"]["info"]
        self.assertEqual((got["status"], got["end_time"]), ("FINISHED", 2000))
        self.call("update_run", {"run_id": rid, "status": "DONE"}, 400)
        self.call("update_run", {"run_id": rid, "run_name": "renamed"})
        self.assertEqual(self.call("get_run", {"run_id": rid})["run"]["info"]["run_name"],
                         "renamed")
        self.call("delete_run", {"run_id": rid})
        self.assertEqual(self.call("get_run", {"run_id": rid})["run"]["info"]
                         ["lifecycle_stage"], "deleted")
        self.call("log_metric", {"run_id": rid, "key": "m", "value": 1}, 400)
        self.call("restore_run", {"run_id": rid})
        self.call("log_metric", {"run_id": rid, "key": "m", "value": 1})

    def test_run_errors(self):
        self.call("create_run", {}, 400)
        self.call("create_run", {"experiment_id": "424242"}, 404)
        self.call("get_run", {"run_id": "f" * 32}, 404, "not_found")
        self.call("get_run", {"run_id": 7}, 400)
        self.call("create_run", {"experiment_id": "0", "parent_run_id": "nope"}, 404)

    def test_nested_runs(self):
        eid = self.new_experiment()
        parent = self.new_run(eid)["info"]["run_id"]
        child = self.new_run(eid, parent_run_id=parent)
        self.assertEqual(child["info"]["parent_run_id"], parent)
        self.assertIn({"key": "mlflow.parentRunId", "value": parent}, child["data"]["tags"])
        runs = self.call("search_runs", {"experiment_ids": [eid],
                                          "filter": f"tags.mlflow.parentRunId = '{parent}'"}
                         )["runs"]
        self.assertEqual([r["info"]["run_id"] for r in runs], [child["info"]["run_id"]])
        self.assertEqual(runs[0], self.call("get_run", {"run_id": child["info"]["run_id"]})
                         ["run"])

    def test_tags(self):
        rid = self.new_run()["info"]["run_id"]
        self.call("set_tag", {"run_id": rid, "key": "a", "value": "1"})
        self.call("set_tag", {"run_id": rid, "key": "a", "value": "2"})  # tags overwrite
        tags = self.call("get_run", {"run_id": rid})["run"]["data"]["tags"]
        self.assertIn({"key": "a", "value": "2"}, tags)
        self.call("delete_tag", {"run_id": rid, "key": "a"})
        self.call("delete_tag", {"run_id": rid, "key": "a"}, 404)
        self.call("set_tag", {"run_id": rid, "key": "x" * 251, "value": "1"}, 400)
        self.call("set_tag", {"run_id": rid, "key": "v", "value": "x" * 8001}, 400)
        self.call("set_tag", {"run_id": rid, "key": "v", "value": "x" * 8000})

    # ---- logging --------------------------------------------------------

    def test_log_batch_semantics(self):
        rid = self.new_run()["info"]["run_id"]
        self.call("log_batch", {
            "run_id": rid,
            "metrics": [{"key": "loss", "value": 1.0 / (s + 1), "timestamp": 100 + s,
                         "step": s} for s in range(10)],
            "params": [{"key": "lr", "value": "0.1"}],
            "tags": [{"key": "t", "value": "x"}]})
        data = self.call("get_run", {"run_id": rid})["run"]["data"]
        self.assertEqual(data["metrics"], [{"key": "loss", "value": 0.1, "timestamp": 109,
                                            "step": 9}])
        self.assertEqual(data["params"], [{"key": "lr", "value": "0.1"}])
        # Same param value again is fine; another is 409, and the batch is all-or-nothing.
        self.call("log_param", {"run_id": rid, "key": "lr", "value": "0.1"})
        h = self.call("log_batch", {"run_id": rid,
                                    "metrics": [{"key": "loss", "value": 9, "timestamp": 1,
                                                 "step": 99}],
                                    "params": [{"key": "lr", "value": "0.2"}]}, 409,
                      "conflict")
        self.assertIn("write-once", h["err"])
        hist = self.call("get_metric_history", {"run_id": rid, "key": "loss"})["metrics"]
        self.assertEqual(len(hist), 10)  # the conflicting batch left nothing behind
        # Latest is by step, then timestamp; an older step does not replace it.
        self.call("log_metric", {"run_id": rid, "key": "loss", "value": 5, "step": 3,
                                 "timestamp": 999})
        m = self.call("get_run", {"run_id": rid})["run"]["data"]["metrics"][0]
        self.assertEqual((m["value"], m["step"]), (0.1, 9))

    def test_special_values(self):
        rid = self.new_run()["info"]["run_id"]
        self.call("log_batch", {"run_id": rid, "metrics": [
            {"key": "nan", "value": float("nan"), "timestamp": 1, "step": 0},
            {"key": "inf", "value": "Infinity", "timestamp": 1, "step": 0},
            {"key": "big", "value": 2 ** 60, "timestamp": 1, "step": -5}]})
        h = {m["key"]: m for m in self.call("get_run", {"run_id": rid})["run"]["data"]
             ["metrics"]}
        self.assertTrue(math.isnan(h["nan"]["value"]))
        self.assertEqual(h["inf"]["value"], float("inf"))
        self.assertEqual((h["big"]["value"], h["big"]["step"]), (float(2 ** 60), -5))
        hist = self.call("get_metric_history", {"run_id": rid, "key": "nan"})["metrics"]
        self.assertTrue(math.isnan(hist[0]["value"]))

    def test_logging_errors_and_limits(self):
        rid = self.new_run()["info"]["run_id"]
        bad = [
            {"run_id": rid, "metrics": [{"key": "a"}]},
            {"run_id": rid, "metrics": [{"key": "a", "value": "x"}]},
            {"run_id": rid, "metrics": [{"value": 1}]},
            {"run_id": rid, "metrics": [{"key": "a", "value": 1, "step": "1"}]},
            {"run_id": rid, "metrics": "no"},
            {"run_id": rid, "params": [{"key": "p", "value": 1}]},
            {"run_id": rid, "params": [{"key": "p", "value": "x" * 6001}]},
            {"run_id": rid, "metrics": [{"key": "k" * 251, "value": 1}]},
            {"metrics": []},
        ]
        for body in bad:
            with self.subTest(body=str(body)[:60]):
                h = self.call("log_batch", body, 400, "bad_request")
                self.assertGreater(len(h["err"]), 10)
        h = self.call("log_batch", {"run_id": rid, "metrics": [
            {"key": "a", "value": 1, "timestamp": 1, "step": 0}] * 100001}, 413, "too_large")
        self.assertIn("100000", h["err"])
        self.call("log_batch", {"run_id": "0" * 32, "metrics": []}, 404)
        self.call("log_param", {"run_id": rid, "key": "p", "value": "x" * 6000})
        # The sentences name the field (and the item of a batch) whole.
        for verb, body, want in (
                ("log_metric", {"run_id": rid, "value": 1}, "the field 'key' is required"),
                ("log_metric", {"run_id": rid, "key": "a", "value": 1, "step": "1"},
                 "the field 'step' must be an integer"),
                ("log_metric", {"run_id": rid, "key": "a", "value": "x"},
                 "the field 'value' must be a number"),
                ("log_batch", {"run_id": rid, "metrics": [{"key": "a", "value": 1},
                                                          {"key": "", "value": 1}]},
                 "metrics[1]: the field 'key' must not be empty"),
                ("log_batch", {"run_id": rid, "tags": [{"key": "t"}]},
                 "tags[0]: the field 'value' is required"),
                ("log_param", {"run_id": rid, "key": "p", "value": 1},
                 "the field 'value' must be a string")):
            with self.subTest(verb=verb, want=want):
                self.assertEqual(self.call(verb, body, 400, "bad_request")["err"], want)

    def test_big_batch_and_history_paging(self):
        rid = self.new_run()["info"]["run_id"]
        n = 100000
        pts = [{"key": "acc", "value": i * 0.5, "timestamp": 1000 + i, "step": i}
               for i in range(n)]
        self.call("log_batch", {"run_id": rid, "metrics": pts})
        # A second, small batch lands in the tail segment.
        self.call("log_batch", {"run_id": rid, "metrics": [
            {"key": "acc", "value": -1.0, "timestamp": 5, "step": n}]})
        got, token, pages = [], None, 0
        while True:
            body = {"run_id": rid, "key": "acc", "max_results": 30000}
            if token:
                body["page_token"] = token
            r = self.call("get_metric_history", body)
            got += r["metrics"]
            pages += 1
            token = r.get("next_page_token")
            if not token:
                break
        self.assertEqual(pages, 4)
        self.assertEqual(len(got), n + 1)
        self.assertEqual([m["step"] for m in got], list(range(n + 1)))
        self.assertEqual(got[12345], {"key": "acc", "value": 12345 * 0.5,
                                      "timestamp": 1000 + 12345, "step": 12345})
        self.assertEqual(self.call("get_metric_history", {"run_id": rid, "key": "none"})
                         ["metrics"], [])

    def test_history_step_order(self):
        rid = self.new_run()["info"]["run_id"]
        for step in (5, 1, 3, 1):
            self.call("log_metric", {"run_id": rid, "key": "m", "value": step,
                                     "timestamp": 10 * step, "step": step})
        hist = self.call("get_metric_history", {"run_id": rid, "key": "m"})["metrics"]
        self.assertEqual([m["step"] for m in hist], [1, 1, 3, 5])

    def test_sampled_history(self):
        rid = self.new_run()["info"]["run_id"]
        n = 50000
        pts = [{"key": "wave", "value": math.sin(i / 500.0) + (5.0 if i == 31337 else 0),
                "timestamp": i, "step": i} for i in range(n)]
        self.call("log_batch", {"run_id": rid, "metrics": pts})
        r = self.call("get_metric_history_sampled", {"run_id": rid, "keys": ["wave", "none"],
                                                     "max_points": 500})
        wave, none = r["series"]
        self.assertEqual((wave["key"], wave["total_points"]), ("wave", n))
        steps = [m["step"] for m in wave["metrics"]]
        self.assertLessEqual(len(steps), 500)
        self.assertGreater(len(steps), 400)
        self.assertEqual(steps, sorted(steps))
        self.assertEqual((steps[0], steps[-1]), (0, n - 1))  # first and last kept
        self.assertIn(31337, steps)  # the spike (a bucket's max) survives
        self.assertEqual(none["metrics"], [])
        self.call("get_metric_history_sampled", {"run_id": rid, "keys": ["wave"],
                                                 "max_points": 1}, 400)
        # A zoomed range: only its points, sampled as finely as asked (every
        # point of 1,000 fits 2,000), the spike still there; by time too.
        z = self.call("get_metric_history_sampled", {
            "run_id": rid, "keys": ["wave"], "max_points": 2000,
            "start_step": 31000, "end_step": 31999})["series"][0]
        self.assertEqual((z["total_points"], z["range_points"]), (n, 1000))
        self.assertEqual([m["step"] for m in z["metrics"]], list(range(31000, 32000)))
        self.assertIn(31337, [m["step"] for m in z["metrics"]])
        z = self.call("get_metric_history_sampled", {
            "run_id": rid, "keys": ["wave"], "max_points": 100,
            "start_time": 40000})["series"][0]
        self.assertEqual(z["range_points"], n - 40000)
        steps = [m["step"] for m in z["metrics"]]
        self.assertLessEqual(len(steps), 100)
        self.assertEqual((steps[0], steps[-1]), (40000, n - 1))
        for bad in ({"start_step": 5, "end_step": 4}, {"start_time": "x"},
                    {"end_step": 1.5}):
            self.call("get_metric_history_sampled",
                      {"run_id": rid, "keys": ["wave"], **bad}, 400)

    # ---- read-your-writes (the metric journal) ---------------------------

    def test_log_metric_is_seen_at_once(self):
        """A 200 from log_metric (journaled, applied later) is seen by the very
        next request of every verb that shows metrics."""
        eid = self.new_experiment()
        runs = [self.new_run(eid, run_name=f"ryw{i}", start_time=1000 + i)["info"]["run_id"]
                for i in range(3)]
        for step in range(4):
            for i, rid in enumerate(runs):
                self.call("log_metric", {"run_id": rid, "key": "score",
                                         "value": i * 10.0 + step, "timestamp": 100 + step,
                                         "step": step})
                m = self.call("get_run", {"run_id": rid})["run"]["data"]["metrics"]
                self.assertEqual(m, [{"key": "score", "value": i * 10.0 + step,
                                      "timestamp": 100 + step, "step": step}])
                hist = self.call("get_metric_history", {"run_id": rid, "key": "score"})
                self.assertEqual([p["step"] for p in hist["metrics"]], list(range(step + 1)))

        def search(**kw):
            body = {"experiment_ids": [eid]}
            body.update(kw)
            return [r["info"]["run_name"] for r in self.call("search_runs", body)["runs"]]

        self.assertEqual(search(order_by=["metrics.score DESC"]), ["ryw2", "ryw1", "ryw0"])
        self.call("log_metric", {"run_id": runs[0], "key": "score", "value": 99.0,
                                 "timestamp": 200, "step": 4})
        self.assertEqual(search(order_by=["metrics.score DESC"]), ["ryw0", "ryw2", "ryw1"])
        self.call("log_metric", {"run_id": runs[1], "key": "score", "value": 500.0,
                                 "timestamp": 201, "step": 4})
        self.assertEqual(search(filter="metrics.score > 90"), ["ryw1", "ryw0"])
        self.assertEqual(search(order_by=["metrics.score ASC"], max_results=1), ["ryw2"])
        r = self.call("get_metric_history_sampled", {"run_id": runs[0], "keys": ["score"],
                                                     "max_points": 10})
        self.assertEqual(r["series"][0]["total_points"], 5)
        self.assertEqual(r["series"][0]["metrics"][-1]["value"], 99.0)
        # A small metrics-only log_batch is journaled too (one record: all or none).
        self.call("log_batch", {"run_id": runs[2], "metrics": [
            {"key": "lr", "value": 0.1, "timestamp": 5, "step": 1},
            {"key": "lr", "value": 0.05, "timestamp": 6, "step": 2},
            {"key": "mom", "value": "NaN", "timestamp": 6, "step": 2}]})
        data = self.call("get_run", {"run_id": runs[2]})["run"]["data"]["metrics"]
        got = {m["key"]: m for m in data}
        self.assertEqual((got["lr"]["value"], got["lr"]["step"]), (0.05, 2))
        self.assertTrue(math.isnan(got["mom"]["value"]))
        # Journaled points go in before a batch that writes itself (it has a
        # param): at equal (step, timestamp) the later one is the latest, and
        # history keeps logging order.
        self.call("log_metric", {"run_id": runs[2], "key": "tie", "value": 1.0,
                                 "timestamp": 7, "step": 7})
        self.call("log_batch", {"run_id": runs[2], "params": [{"key": "p", "value": "v"}],
                                "metrics": [{"key": "tie", "value": 2.0, "timestamp": 7,
                                             "step": 7}]})
        self.call("log_metric", {"run_id": runs[2], "key": "tie", "value": 3.0,
                                 "timestamp": 7, "step": 7})
        hist = self.call("get_metric_history", {"run_id": runs[2], "key": "tie"})["metrics"]
        self.assertEqual([p["value"] for p in hist], [1.0, 2.0, 3.0])
        tie = [m for m in self.call("get_run", {"run_id": runs[2]})["run"]["data"]["metrics"]
               if m["key"] == "tie"]
        self.assertEqual(tie[0]["value"], 3.0)
        # A deleted run still shows what was logged just before, and refuses more.
        self.call("log_metric", {"run_id": runs[2], "key": "last", "value": 1.5})
        self.call("delete_run", {"run_id": runs[2]})
        self.call("log_metric", {"run_id": runs[2], "key": "last", "value": 2.5}, 400)
        self.call("log_batch", {"run_id": runs[2], "metrics": [{"key": "last", "value": 3}]},
                  400)
        hist = self.call("get_metric_history", {"run_id": runs[2], "key": "last"})["metrics"]
        self.assertEqual([p["value"] for p in hist], [1.5])
        self.call("restore_run", {"run_id": runs[2]})

    def test_pipelined_log_metric_keeps_order(self):
        pipelined_log_metric(self, self.k, self.new_run()["info"]["run_id"])

    # ---- the write group: create_run and log_batch bursts ----------------

    def test_write_group_keeps_each_request_whole(self):
        """A burst of create_run and log_batch shares one transaction
        (group.c), each request in a savepoint: a failing batch in the
        middle (a param conflict after a param it already wrote, an unknown
        run) is undone whole, its neighbours are kept, and a search_runs
        sent behind the burst sees every run the burst created."""
        eid = self.new_experiment()
        d = self.k.client(zmq.DEALER)
        try:
            ids = [d.send("tracking", "create_run",
                          {"experiment_id": eid, "run_name": f"g{i}", "start_time": i,
                           "tags": [{"key": "t", "value": str(i)}]}) for i in range(40)]
            search = d.send("tracking", "search_runs",
                            {"experiment_ids": [eid], "max_results": 1000})
            replies = {}
            for _ in range(41):
                h, b = d.recv()
                replies[h["id"]] = (h, b)
            self.assertEqual([replies[i][0]["st"] for i in ids], [200] * 40)
            runs = [replies[i][1]["run"]["info"]["run_id"] for i in ids]
            h, b = replies[search]
            self.assertEqual(h["st"], 200, h)
            self.assertEqual(sorted(r["info"]["run_id"] for r in b["runs"]), sorted(runs))
            self.call("log_batch", {"run_id": runs[5], "params": [{"key": "c", "value": "1"}]})
            sent = {}
            for i, rid in enumerate(runs):
                body = {"run_id": rid, "params": [{"key": "p", "value": str(i)}],
                        "metrics": [{"key": "m", "value": float(i), "timestamp": 1,
                                     "step": 0}]}
                if i == 5:  # p is new, c conflicts: the whole batch is undone
                    body["params"].append({"key": "c", "value": "2"})
                if i == 9:
                    body["run_id"] = "0" * 32
                sent[d.send("tracking", "log_batch", body)] = i
            got = {}
            for _ in runs:
                h, b = d.recv()
                got[sent[h["id"]]] = h.get("code", h["st"])
        finally:
            d.close()
        want = {i: 200 for i in range(40)}
        want[5], want[9] = "conflict", "not_found"
        self.assertEqual(got, want)
        for i, rid in enumerate(runs):
            data = self.call("get_run", {"run_id": rid})["run"]["data"]
            params = {p["key"]: p["value"] for p in data["params"]}
            metrics = [m["value"] for m in data["metrics"]]
            tags = {t["key"]: t["value"] for t in data["tags"]}
            self.assertEqual(tags["t"], str(i))
            if i == 5:
                self.assertEqual((params, metrics), ({"c": "1"}, []))
            elif i == 9:
                self.assertEqual((params, metrics), ({}, []))
            else:
                self.assertEqual((params, metrics), ({"p": str(i)}, [float(i)]))

    # ---- search ----------------------------------------------------------

    def test_search_runs(self):
        eid = self.new_experiment()
        ids = []
        for i in range(12):
            run = self.new_run(eid, run_name=f"r{i}", start_time=1000 + i)["info"]["run_id"]
            ids.append(run)
            self.call("log_batch", {"run_id": run, "metrics": [
                {"key": "acc", "value": i / 10, "timestamp": 1, "step": 0},
                {"key": "loss", "value": 1 - i / 10, "timestamp": 1, "step": 0}],
                "params": [{"key": "opt", "value": "adam" if i % 2 else "sgd"}],
                "tags": [{"key": "group", "value": "G" + str(i % 3)}]})

        def search(**kw):
            body = {"experiment_ids": [eid]}
            body.update(kw)
            return [r["info"]["run_name"] for r in self.call("search_runs", body)["runs"]]

        self.assertEqual(search(filter="metrics.acc > 0.85"), ["r11", "r10", "r9"])
        # A page of runs is packed in bulk: every run equals its get_run.
        page = self.call("search_runs", {"experiment_ids": [eid], "max_results": 1000})
        self.assertEqual(len(page["runs"]), 12)
        for run in page["runs"]:
            self.assertEqual(run, self.call("get_run", {"run_id": run["info"]["run_id"]})
                             ["run"])
        self.assertEqual(search(filter="metrics.acc >= 0.5 AND params.opt = 'sgd'"),
                         ["r10", "r8", "r6"])
        self.assertEqual(search(filter="tags.group = 'G0' OR (metrics.loss < 0.15)"),
                         ["r11", "r10", "r9", "r6", "r3", "r0"])
        self.assertEqual(search(filter="attributes.run_name IN ('r1', 'r2')"), ["r2", "r1"])
        self.assertEqual(search(order_by=["metrics.acc DESC"], max_results=2), ["r11", "r10"])
        self.assertEqual(search(order_by=["metrics.loss ASC"], max_results=1), ["r11"])
        # Stable paging over the whole set.
        names, token = [], None
        while True:
            body = {"experiment_ids": [eid], "max_results": 5, "order_by": ["params.opt"]}
            if token:
                body["page_token"] = token
            r = self.call("search_runs", body)
            names += [x["info"]["run_name"] for x in r["runs"]]
            token = r.get("next_page_token")
            if not token:
                break
        self.assertEqual(len(names), 12)
        self.assertEqual(len(set(names)), 12)
        # Ordered by a metric, paging across the runs that lack it (NULLs last).
        for i in range(3):
            self.new_run(eid, run_name=f"nometric{i}", start_time=2000 + i)
        for direction, want in (("DESC", [f"r{i}" for i in range(11, -1, -1)]),
                                ("ASC", [f"r{i}" for i in range(12)])):
            names, token = [], None
            while True:
                # 4 a page: one page starts exactly past the runs with the metric.
                body = {"experiment_ids": [eid], "max_results": 4,
                        "order_by": [f"metrics.acc {direction}"]}
                if token:
                    body["page_token"] = token
                r = self.call("search_runs", body)
                names += [x["info"]["run_name"] for x in r["runs"]]
                token = r.get("next_page_token")
                if not token:
                    break
            self.assertEqual(names, want + ["nometric2", "nometric1", "nometric0"])
        self.assertEqual(search(order_by=["metrics.`acc` DESC"], max_results=1,
                                filter="params.opt = 'sgd'"), ["r10"])
        h = self.call("search_runs", {"experiment_ids": [eid], "filter": "metrics.acc >> 1"},
                      400, "bad_request")
        self.assertIn("position", h["err"])
        self.call("search_runs", {"experiment_ids": [eid], "max_results": 50001}, 400)
        self.call("search_runs", {}, 400)
        self.call("delete_run", {"run_id": ids[0]})
        self.assertNotIn("r0", search())
        self.assertEqual(search(run_view_type="DELETED_ONLY"), ["r0"])


def pipelined_log_metric(test, k, rid, n=300):
    """Many log_metric in flight at once on one connection, then a
    get_metric_history in the same stream: stored in the order sent (ties at
    equal step and timestamp show it), and all seen by the read behind them."""
    d = k.client(zmq.DEALER)
    try:
        for i in range(n):
            d.send("tracking", "log_metric", {"run_id": rid, "key": "order",
                                              "value": float(i), "timestamp": 1,
                                              "step": i // 100})
        last = d.send("tracking", "get_metric_history", {"run_id": rid, "key": "order",
                                                         "max_results": 1000})
        replies = {}
        for _ in range(n + 1):
            h, b = d.recv()
            replies[h["id"]] = (h, b)
    finally:
        d.close()
    test.assertEqual([h["st"] for i, (h, _) in replies.items() if i != last], [200] * n)
    h, b = replies[last]
    test.assertEqual(h["st"], 200, h)
    test.assertEqual([p["value"] for p in b["metrics"]], [float(i) for i in range(n)])
    c = k.client()
    try:
        h, b = c.call("tracking", "get_run", {"run_id": rid})
    finally:
        c.close()
    m = b["run"]["data"]["metrics"][0]
    test.assertEqual((m["value"], m["step"]), (float(n - 1), (n - 1) // 100))


class SearchPlans(unittest.TestCase):
    """A filter whose required clauses leave few runs reads those runs by rid
    and sorts them; one that leaves many walks the runs in the page's order
    (search.c, s_list_plan). Both give the same pages: checked here against
    the order computed from the data, on two experiments whose runs
    interleave (the candidates of a clause span both), ordered by default
    and by a param and a metric (joins), paged with offsets."""

    N = 600  # runs per experiment

    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=services("inproc")).start()
        cls.c = cls.k.client(zmq.DEALER)
        cls.exps = [cls.call("create_experiment", {"name": f"plans{e}"})["experiment_id"]
                    for e in range(2)]
        cls.runs = []  # (experiment, i, run_id)
        for i in range(cls.N):
            for e, eid in enumerate(cls.exps):
                cls.c.send("tracking", "create_run", {"experiment_id": eid,
                                                      "run_name": f"e{e}r{i}",
                                                      "start_time": 10000 + i})
        pending = [cls.c.recv() for _ in range(2 * cls.N)]
        for h, b in pending:
            assert h["st"] == 200, h
            name = b["run"]["info"]["run_name"]
            cls.runs.append((int(name[1]), int(name[3:]), b["run"]["info"]["run_id"]))
        for e, i, rid in cls.runs:
            cls.c.send("tracking", "log_batch", {
                "run_id": rid,
                "metrics": [{"key": "m", "value": i / cls.N, "timestamp": 1, "step": 0}],
                "params": [{"key": "p", "value": f"v{i % 50}"},
                           {"key": "q", "value": f"q{i % 7}"}],
                "tags": [{"key": "t", "value": "x" if i % 3 == 0 else "y"}]})
        for _ in cls.runs:
            h, _ = cls.c.recv()
            assert h["st"] == 200, h

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    @classmethod
    def call(cls, verb, body):
        cls.c.send("tracking", verb, body)
        h, b = cls.c.recv()
        assert h["st"] == 200, (verb, body, h)
        return b

    def pages(self, filt, order_by=None, size=7):
        names, token = [], None
        for _ in range(1000):
            body = {"experiment_ids": [self.exps[0]], "filter": filt, "max_results": size}
            if order_by:
                body["order_by"] = order_by
            if token:
                body["page_token"] = token
            r = self.call("search_runs", body)
            names += [x["info"]["run_name"] for x in r["runs"]]
            token = r.get("next_page_token")
            if not token:
                return names
        self.fail("paging did not end")

    def expect(self, pred, key=None):
        rows = [(e, i) for e, i, _ in self.runs if e == 0 and pred(i)]
        # default order: start_time DESC, then creation (rid) order
        rows.sort(key=key or (lambda r: -r[1]))
        return [f"e{e}r{i}" for e, i in rows]

    def test_few_candidates_many_candidates_and_none_required(self):
        n = self.N
        cases = [  # (filter, predicate): few, many, none required, mixed
            ("params.p = 'v7'", lambda i: i % 50 == 7),
            ("params.p = 'v7' AND metrics.m < 0.5", lambda i: i % 50 == 7 and i / n < 0.5),
            ("metrics.m > 0.01", lambda i: i / n > 0.01),
            ("metrics.m > 0.01 AND tags.t = 'x'", lambda i: i / n > 0.01 and i % 3 == 0),
            ("params.p = 'v7' OR metrics.m < 0.02", lambda i: i % 50 == 7 or i / n < 0.02),
            ("params.p = 'v7' AND (metrics.m < 0.3 OR tags.t = 'x')",
             lambda i: i % 50 == 7 and (i / n < 0.3 or i % 3 == 0)),
            ("params.p = 'v7' AND attributes.run_name LIKE 'e0r1%'",
             lambda i: i % 50 == 7 and str(i).startswith("1")),
            ("params.p = 'nothing'", lambda i: False),
        ]
        for filt, pred in cases:
            for size in (3, 7, 1000):
                self.assertEqual(self.pages(filt, size=size), self.expect(pred), (filt, size))
        # Ordered by a param, then a metric: the order's joins over either plan.
        by_q = (lambda r: (f"q{r[1] % 7}", -r[1] / n, -r[1]))
        for filt, pred in cases[:3]:
            self.assertEqual(self.pages(filt, ["params.q ASC", "metrics.m DESC"]),
                             self.expect(pred, by_q), filt)


class TrackingInproc(TrackingBase, unittest.TestCase):
    MODE = "inproc"


class TrackingProcess(TrackingBase, unittest.TestCase):
    MODE = "process"


class Durability(unittest.TestCase):
    """A 200 means durable: kill -9 of cairnd right after loses nothing."""

    def lockstep_then_kill(self, mode, durability=None, n=3000):
        """n lock-step log_metric over 3 keys, kill -9 right after the last
        200, a torn record appended to the journal (a crash mid-append), then
        a restart on the same state: every point is there, exactly."""
        keys = ("loss", "acc", "lr")
        k = Kernel(services=services(mode, durability)).start()
        state = k.state
        try:
            c = k.client()
            h, b = c.call("tracking", "create_experiment", {"name": "lockstep"})
            h, b = c.call("tracking", "create_run", {"experiment_id": b["experiment_id"]})
            rid = b["run"]["info"]["run_id"]
            for i in range(n):
                key, step = keys[i % 3], i // 3
                h, b = c.call("tracking", "log_metric", {
                    "run_id": rid, "key": key, "value": step * 0.25 - i % 3,
                    "timestamp": 1000 + i, "step": step})
                self.assertEqual(h["st"], 200, (h, b))
            k.proc.send_signal(signal.SIGKILL)  # no chance to apply or flush
            k.proc.wait()
            c.close()
        finally:
            k.stop()
        with open(os.path.join(state, "tracking.db-mj"), "ab") as f:
            f.write(b"CMJ1\x40\x00\x00\x00" + os.urandom(20))
        k2 = Kernel(services=services(mode, durability), state=state).start()
        try:
            c = k2.client()
            steps = n // 3
            for j, key in enumerate(keys):
                h, b = c.call("tracking", "get_metric_history",
                              {"run_id": rid, "key": key, "max_results": 100000})
                self.assertEqual(h["st"], 200, (h, b))
                got = [(m["step"], m["value"], m["timestamp"]) for m in b["metrics"]]
                want = [(s, s * 0.25 - j, 1000 + 3 * s + j) for s in range(steps)]
                self.assertEqual(len(got), steps, key)
                self.assertEqual(got, want, key)
            h, b = c.call("tracking", "get_run", {"run_id": rid})
            latest = {m["key"]: (m["step"], m["value"]) for m in b["run"]["data"]["metrics"]}
            self.assertEqual(latest, {key: (steps - 1, (steps - 1) * 0.25 - j)
                                      for j, key in enumerate(keys)})
            c.close()
            wait_for(lambda: "torn or corrupt record" in k2.read_log(),
                     what="the torn record to be reported")
        finally:
            k2.cleanup()
            k.cleanup()

    def test_kill_9_after_lockstep_log_metric_inproc(self):
        self.lockstep_then_kill("inproc")

    def test_kill_9_after_lockstep_log_metric_process(self):
        self.lockstep_then_kill("process")

    def test_kill_9_after_lockstep_log_metric_power(self):
        self.lockstep_then_kill("inproc", "power", n=300)

    def pipelined_power_then_kill(self, mode, n=600):
        """durability: power, n log_metric in flight at once (they share
        fdatasyncs: group commit), kill -9 right after the last 200: every
        acknowledged point is there after a restart, in the order sent."""
        k = Kernel(services=services(mode, "power")).start()
        state = k.state
        try:
            c = k.client()
            h, b = c.call("tracking", "create_run", {"experiment_id": "0"})
            rid = b["run"]["info"]["run_id"]
            c.close()
            d = k.client(zmq.DEALER)
            for i in range(n):
                d.send("tracking", "log_metric", {"run_id": rid, "key": "g",
                                                  "value": float(i), "timestamp": 7,
                                                  "step": i // 50})
            sts = [d.recv()[0]["st"] for _ in range(n)]
            k.proc.send_signal(signal.SIGKILL)
            k.proc.wait()
            d.close()
            self.assertEqual(sts, [200] * n)
        finally:
            k.stop()
        k2 = Kernel(services=services(mode, "power"), state=state).start()
        try:
            c = k2.client()
            h, b = c.call("tracking", "get_metric_history",
                          {"run_id": rid, "key": "g", "max_results": 100000})
            self.assertEqual(h["st"], 200, (h, b))
            self.assertEqual([m["value"] for m in b["metrics"]],
                             [float(i) for i in range(n)])
            c.close()
        finally:
            k2.cleanup()
            k.cleanup()

    def burst_then_kill(self, mode, durability=None, n=300):
        """n create_run in flight at once, then a log_batch with params (a
        SQLite write, not the journal) for each run as its 200 comes back,
        as a sweep of many trials does: they commit in write groups
        (group.c). kill -9 right after the last 200: every acknowledged run,
        param and metric is there after a restart."""
        k = Kernel(services=services(mode, durability)).start()
        state = k.state
        try:
            c = k.client()
            h, b = c.call("tracking", "create_experiment", {"name": "burst"})
            eid = b["experiment_id"]
            c.close()
            d = k.client(zmq.DEALER)
            creates = {d.send("tracking", "create_run",
                              {"experiment_id": eid, "run_name": f"t{i}",
                               "start_time": i}): i for i in range(n)}
            runs, logged = {}, {}
            for _ in range(2 * n):
                h, b = d.recv()
                self.assertEqual(h["st"], 200, (h, b))
                if h["id"] in creates:
                    i = creates[h["id"]]
                    runs[i] = b["run"]["info"]["run_id"]
                    logged[d.send("tracking", "log_batch", {
                        "run_id": runs[i],
                        "params": [{"key": f"p{j}", "value": f"{i}.{j}"} for j in range(5)],
                        "metrics": [{"key": f"m{j}", "value": i + j / 10, "timestamp": 5,
                                     "step": 1} for j in range(4)]})] = i
            k.proc.send_signal(signal.SIGKILL)  # no chance to flush or checkpoint
            k.proc.wait()
            d.close()
            self.assertEqual(len(runs), n)
            self.assertEqual(len(logged), n)
        finally:
            k.stop()
        k2 = Kernel(services=services(mode, durability), state=state).start()
        try:
            c = k2.client()
            h, b = c.call("tracking", "search_runs",
                          {"experiment_ids": [eid], "max_results": 10000})
            self.assertEqual(h["st"], 200, (h, b))
            found = {r["info"]["run_id"]: r for r in b["runs"]}
            self.assertEqual(sorted(found), sorted(runs.values()))
            for i, rid in runs.items():
                data = found[rid]["data"]
                self.assertEqual({p["key"]: p["value"] for p in data["params"]},
                                 {f"p{j}": f"{i}.{j}" for j in range(5)}, i)
                self.assertEqual({m["key"]: m["value"] for m in data["metrics"]},
                                 {f"m{j}": i + j / 10 for j in range(4)}, i)
            c.close()
        finally:
            k2.cleanup()
            k.cleanup()

    def search_by_metric(self, c, eid):
        """(runs with m1 > 0.5, oldest first; all runs by m1 descending):
        what search_runs answers through the value index (fold.h)."""
        h, b = c.call("tracking", "search_runs", {
            "experiment_ids": [eid], "filter": "metrics.m1 > 0.5",
            "max_results": 1000})
        self.assertEqual(h["st"], 200, (h, b))
        matched = sorted(r["info"]["run_name"] for r in b["runs"])
        order, token = [], None
        while True:  # pages of 7: offsets across both halves of the index
            body = {"experiment_ids": [eid], "order_by": ["metrics.m1 DESC"],
                    "max_results": 7}
            if token:
                body["page_token"] = token
            h, b = c.call("tracking", "search_runs", body)
            self.assertEqual(h["st"], 200, (h, b))
            order += [r["info"]["run_name"] for r in b["runs"]]
            token = b.get("next_page_token")
            if not token:
                return matched, order

    def folded_rows(self, state):
        import sqlite3
        db = sqlite3.connect(f"file:{state}/tracking.db?mode=ro", uri=True)
        try:
            return db.execute("SELECT count(*) FROM metric_values").fetchone()[0]
        finally:
            db.close()

    def test_metric_search_across_folds_and_restarts(self):
        """Search by a metric's value sees every acknowledged value whether
        its row is still deferred (in memory, fold.h), folded into the
        value index by the idle tick, or reloaded after kill -9; updates of
        folded rows and NaN move their index entries."""
        n = 60
        k = Kernel(services=services("inproc")).start()
        state = k.state
        values = {f"r{i:02d}": (i * 37 % n) / n for i in range(n)}
        values["r07"] = float("nan")

        def want():
            live = {r: v for r, v in values.items() if not math.isnan(v)}
            ranked = sorted(live, key=lambda r: (-live[r], -int(r[1:])))
            nan_last = sorted((r for r in values if r not in live),
                              key=lambda r: -int(r[1:]))
            return sorted(r for r in live if live[r] > 0.5), ranked + nan_last

        try:
            c = k.client()
            h, b = c.call("tracking", "create_experiment", {"name": "folds"})
            eid = b["experiment_id"]
            ids = {}
            for i, (name, v) in enumerate(sorted(values.items())):
                h, b = c.call("tracking", "create_run", {
                    "experiment_id": eid, "run_name": name, "start_time": i})
                ids[name] = b["run"]["info"]["run_id"]
                h, b = c.call("tracking", "log_batch", {"run_id": ids[name], "metrics": [
                    {"key": "m1", "value": v, "timestamp": 1, "step": 0}]})
                self.assertEqual(h["st"], 200, (h, b))
            self.assertEqual(self.search_by_metric(c, eid), want())  # deferred
            k.proc.send_signal(signal.SIGKILL)
            k.proc.wait()
            c.close()
        finally:
            k.stop()
        k2 = Kernel(services=services("inproc"), state=state).start()
        try:
            c = k2.client()
            self.assertEqual(self.search_by_metric(c, eid), want())  # reloaded
            wait_for(lambda: self.folded_rows(state) == n - 1, timeout=30)
            self.assertEqual(self.search_by_metric(c, eid), want())  # folded
            # Folded rows change: newer steps, a NaN, an older step ignored.
            for name, v, step in (("r03", 0.99, 1), ("r10", float("nan"), 1),
                                  ("r07", 0.75, 1), ("r11", 0.0, -1)):
                h, b = c.call("tracking", "log_metric", {
                    "run_id": ids[name], "key": "m1", "value": v, "timestamp": 2,
                    "step": step})
                self.assertEqual(h["st"], 200, (h, b))
                if step >= 0:
                    values[name] = v
            self.assertEqual(self.search_by_metric(c, eid), want())
            c.close()
        finally:
            k2.cleanup()
            k.cleanup()

    def test_kill_9_after_create_run_burst_inproc(self):
        self.burst_then_kill("inproc")

    def test_kill_9_after_create_run_burst_process(self):
        self.burst_then_kill("process")

    def test_kill_9_after_create_run_burst_power(self):
        self.burst_then_kill("inproc", "power", n=150)

    def test_kill_9_after_pipelined_power_inproc(self):
        self.pipelined_power_then_kill("inproc")

    def test_kill_9_after_pipelined_power_process(self):
        self.pipelined_power_then_kill("process")

    def test_log_metric_is_inline_by_default(self):
        with Kernel(services=services("inproc")) as k:
            c = k.client()
            h, b = c.call("sys", "services")
            flags = {s["name"]: s for s in b["services"]}["tracking"]["flags"]
            self.assertEqual(flags["log_metric"], ["mutating", "inline"])
            self.assertEqual(flags["log_batch"], ["mutating", "inline"])
            self.assertEqual(flags["log_param"], ["mutating"])
            c.close()

    def test_mixed_logging_keeps_order(self):
        """log_metric, small metrics-only log_batch (INLINE, journaled),
        batches that write SQLite (params, > 64 points) and one over the
        inline body limit, all in flight at once on one connection: every
        point lands, in the order sent (equal step and timestamp show it),
        and a read behind them sees them all."""
        with Kernel(services=services("inproc")) as k:
            c = k.client()
            h, b = c.call("tracking", "create_run", {"experiment_id": "0"})
            rid = b["run"]["info"]["run_id"]
            c.close()
            d = k.client(zmq.DEALER)
            want, n = [], 0

            def pts(count):
                nonlocal n
                out = [{"key": "mix", "value": float(n + i), "timestamp": 5, "step": 1}
                       for i in range(count)]
                n += count
                want.extend(p["value"] for p in out)
                return out

            sent = 0
            for i in range(120):
                kind = i % 5
                if kind == 0:
                    p = pts(1)[0]
                    body = {"run_id": rid, "key": "mix", "value": p["value"],
                            "timestamp": 5, "step": 1}
                    d.send("tracking", "log_metric", body)
                elif kind == 1:
                    d.send("tracking", "log_batch", {"run_id": rid, "metrics": pts(3)})
                elif kind == 2:
                    d.send("tracking", "log_batch", {"run_id": rid, "metrics": pts(2),
                                                     "params": [{"key": f"p{i}",
                                                                 "value": "v"}]})
                elif kind == 3:
                    d.send("tracking", "log_batch", {"run_id": rid, "metrics": pts(70)})
                else:  # small in points, over 16 KiB in bytes: on the plugin's thread
                    d.send("tracking", "log_batch", {"run_id": rid, "metrics": pts(2),
                                                     "tags": [{"key": "pad",
                                                               "value": "x" * 7000}]})
                    d.send("tracking", "log_batch",
                           {"run_id": rid, "metrics": pts(2), "pad": "y" * 17000})
                    sent += 1
                sent += 1
            last = d.send("tracking", "get_metric_history",
                          {"run_id": rid, "key": "mix", "max_results": 100000})
            replies = {}
            for _ in range(sent + 1):
                h, b = d.recv()
                replies[h["id"]] = (h, b)
            d.close()
            bad = [h for i, (h, _) in replies.items() if i != last and h["st"] != 200]
            self.assertEqual(bad, [])
            h, b = replies[last]
            self.assertEqual(h["st"], 200, h)
            self.assertEqual([m["value"] for m in b["metrics"]], want)

    def test_power_pipelined_log_metric(self):
        """With durability: power, log_metric fsyncs on the plugin's own
        thread (never inline on the kernel's): order and read-your-writes
        hold for a pipelined stream too."""
        with Kernel(services=services("inproc", "power")) as k:
            c = k.client()
            h, b = c.call("sys", "services")
            flags = {s["name"]: s for s in b["services"]}["tracking"]["flags"]
            self.assertNotIn("inline", flags["log_metric"])  # dropped in init
            self.assertNotIn("inline", flags["log_batch"])
            h, b = c.call("tracking", "create_run", {"experiment_id": "0"})
            c.close()
            pipelined_log_metric(self, k, b["run"]["info"]["run_id"], n=100)

    def test_one_tracking_instance_per_database(self):
        """A second tracking instance on the same database is refused (its
        journal is locked), with a sentence saying why; the first serves."""
        k = Kernel(services=services("inproc") +
                   "  tracking2:\n    plugin: storage\n    mode: process\n"
                   "    settings:\n      role: tracking\n").start(wait_up=False)
        try:
            def refused():
                return [p["name"] for p in k.health()["plugins"]
                        if "held by another tracking instance" in p["error"]]
            # Whichever started first holds the journal; the other is refused.
            loser = wait_for(refused, what="the second instance to be refused")
            self.assertEqual(len(loser), 1, loser)
            winner = "tracking2" if loser == ["tracking"] else "tracking"
            c = k.client()
            h, b = c.call(winner, "get_experiment", {"experiment_id": "0"})
            self.assertEqual(h["st"], 200, (h, b))
            c.close()
        finally:
            k.cleanup()

    def test_kill_9_after_ack(self):
        k = Kernel(services=services("inproc")).start()
        state = k.state
        try:
            c = k.client()
            h, b = c.call("tracking", "create_experiment", {"name": "durable"})
            eid = b["experiment_id"]
            h, b = c.call("tracking", "create_run", {"experiment_id": eid})
            rid = b["run"]["info"]["run_id"]
            for i in range(50):
                h, _ = c.call("tracking", "log_batch", {"run_id": rid, "metrics": [
                    {"key": "m", "value": float(i), "timestamp": i, "step": i}],
                    "params": [{"key": f"p{i}", "value": str(i)}]})
                self.assertEqual(h["st"], 200)
            k.proc.send_signal(signal.SIGKILL)  # no chance to flush or checkpoint
            k.proc.wait()
            c.close()
        finally:
            k.stop()
        k2 = Kernel(services=services("inproc"), state=state).start()
        try:
            c = k2.client()
            h, b = c.call("tracking", "get_metric_history", {"run_id": rid, "key": "m"})
            self.assertEqual([m["step"] for m in b["metrics"]], list(range(50)))
            h, b = c.call("tracking", "get_run", {"run_id": rid})
            self.assertEqual(len(b["run"]["data"]["params"]), 50)
            c.close()
        finally:
            k2.cleanup()
            k.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
