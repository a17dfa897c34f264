"""The Python tracking API (cairn.start_run, log_metric, ...) against a private
cairnd: runs and their statuses, nesting, asynchronous batching with no loss
at exit, errors raised on the next call, attaching to a job's run, synchronous
mode, backpressure, client-side validation, and artifacts (when the kernel has
an `artifacts` service). Every wait is bounded; nothing sleeps as proof."""
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CAIRN_SOURCE_DIR") or os.path.join(HERE, "..", "..")
SDK = os.path.join(SOURCE, "sdk", "python")
sys.path.insert(0, SDK)
sys.path.insert(0, HERE)

import cairn  # noqa: E402
import cairn_harness  # noqa: E402
from cairn import tracking as cairn_tracking  # noqa: E402

PY = "/usr/bin/python3"
TRACKING = "  tracking:\n    plugin: storage\n    mode: inproc\n"
ARTIFACTS = "  artifacts:\n    plugin: storage\n    mode: inproc\n"
DEADLINE = 60.0  # seconds for anything a loaded 2-core machine does


class TrackingApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = cairn_harness.Kernel(services=TRACKING).start()
        cls.c = cairn.Client(cls.k.endpoint, ttl_ms=20000)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    def setUp(self):
        self.trackers = []

    def tearDown(self):
        for t in self.trackers:
            try:
                t.close()
            except cairn.CairnError:
                pass

    def tracker(self, **kw):
        t = cairn.Tracker(endpoint=self.k.endpoint, **kw)
        self.trackers.append(t)
        return t

    def exp_name(self):
        return f"{self.id().rsplit('.', 1)[-1]}-{os.urandom(3).hex()}"

    def run_of(self, run_id):
        return self.c.call("tracking", "get_run", {"run_id": run_id})["run"]

    def history(self, run_id, key):
        out, token = [], None
        while True:
            body = {"run_id": run_id, "key": key, "max_results": 100000}
            if token:
                body["page_token"] = token
            r = self.c.call("tracking", "get_metric_history", body)
            out += r["metrics"]
            token = r.get("next_page_token")
            if not token:
                return out

    def script(self, text, env_extra, timeout=DEADLINE):
        env = dict(os.environ, CAIRN_ENDPOINT=self.k.endpoint)
        for k in ("CAIRN_RUN_ID", "CAIRN_EXPERIMENT_NAME", "CAIRN_TOKEN"):
            env.pop(k, None)
        env.update(env_extra)
        return subprocess.run([PY, "-c", "import sys; sys.path.insert(0, sys.argv[1])\n" + text,
                               SDK], env=env, capture_output=True, text=True, timeout=timeout)

    # ---- runs ---------------------------------------------------------------

    def test_context_manager_logs_and_finishes(self):
        t = self.tracker()
        name = self.exp_name()
        before = int(time.time() * 1000)
        with t.start_run(experiment=name, run_name="first", tags={"team": "a", "n": 7}) as run:
            self.assertIs(t.active_run(), run)
            t.log_param("lr", 0.01)
            t.log_params({"epochs": 3, "opt": "adam", "none": None})
            for step in range(100):
                t.log_metric("loss", 1.0 / (step + 1), step=step)
            t.log_metrics({"acc": 0.5, "f1": 1}, step=7, timestamp=1234)
            for i in range(50):  # tags overwrite: the last one logged stays
                t.set_tag("phase", f"p{i}")
            t.set_tags({"k": "v"})
        self.assertIsNone(t.active_run())
        exp = self.c.call("tracking", "get_experiment_by_name",
                          {"experiment_name": name})["experiment"]
        got = self.run_of(run.run_id)
        info, data = got["info"], got["data"]
        self.assertEqual((info["experiment_id"], info["run_name"], info["status"]),
                         (exp["experiment_id"], "first", "FINISHED"))
        self.assertGreaterEqual(info["end_time"], before)
        self.assertGreaterEqual(info["end_time"], info["start_time"])
        self.assertEqual({p["key"]: p["value"] for p in data["params"]},
                         {"lr": "0.01", "epochs": "3", "opt": "adam", "none": "None"})
        tags = {x["key"]: x["value"] for x in data["tags"]}
        self.assertEqual((tags["team"], tags["n"], tags["phase"], tags["k"]),
                         ("a", "7", "p49", "v"))
        latest = {m["key"]: m for m in data["metrics"]}
        self.assertEqual((latest["loss"]["value"], latest["loss"]["step"]), (0.01, 99))
        self.assertEqual(latest["acc"], {"key": "acc", "value": 0.5, "timestamp": 1234,
                                         "step": 7})
        self.assertEqual(latest["f1"]["value"], 1.0)
        hist = self.history(run.run_id, "loss")
        self.assertEqual([m["step"] for m in hist], list(range(100)))
        self.assertTrue(all(m["timestamp"] >= before for m in hist))
        # The experiment is found, not created again, by the next run.
        with t.start_run(experiment=name) as again:
            pass
        self.assertEqual(again.experiment_id, exp["experiment_id"])
        self.assertEqual(t.get_run(again.run_id)["info"]["status"], "FINISHED")

    def test_status_failed_and_killed(self):
        t = self.tracker()
        with self.assertRaises(ZeroDivisionError):
            with t.start_run(experiment=self.exp_name()) as run:
                t.log_metric("m", 1.0)
                1 / 0
        got = self.run_of(run.run_id)
        self.assertEqual(got["info"]["status"], "FAILED")
        self.assertEqual(len(got["data"]["metrics"]), 1)  # flushed before it ended
        with self.assertRaises(KeyboardInterrupt):
            with t.start_run() as run2:
                raise KeyboardInterrupt
        self.assertEqual(self.run_of(run2.run_id)["info"]["status"], "KILLED")
        self.assertEqual(run2.experiment_id, "0")  # Default
        # end_run by hand, with a status.
        run3 = t.start_run()
        t.end_run("KILLED")
        self.assertEqual(self.run_of(run3.run_id)["info"]["status"], "KILLED")
        with self.assertRaises(ValueError):
            t.end_run("DONE")
        t.end_run()  # no active run: nothing to do

    def test_nested_runs(self):
        t = self.tracker()
        with t.start_run(experiment=self.exp_name()) as parent:
            with self.assertRaises(RuntimeError):
                t.start_run()  # one at a time unless nested
            with t.start_run(nested=True, run_name="child") as child:
                self.assertIs(t.active_run(), child)
                t.log_metric("inner", 2.0)
                with t.start_run(nested=True) as grandchild:
                    pass
            self.assertIs(t.active_run(), parent)
            t.log_metric("outer", 1.0)
        c = self.run_of(child.run_id)
        self.assertEqual(c["info"]["parent_run_id"], parent.run_id)
        self.assertEqual(self.run_of(grandchild.run_id)["info"]["parent_run_id"],
                         child.run_id)
        self.assertIn({"key": "mlflow.parentRunId", "value": parent.run_id}, c["data"]["tags"])
        self.assertEqual([m["key"] for m in c["data"]["metrics"]], ["inner"])
        p = self.run_of(parent.run_id)
        self.assertNotIn("parent_run_id", p["info"])
        self.assertEqual([m["key"] for m in p["data"]["metrics"]], ["outer"])
        for r in (parent, child, grandchild):
            self.assertEqual(self.run_of(r.run_id)["info"]["status"], "FINISHED")

    def test_resume_by_run_id(self):
        t = self.tracker()
        with t.start_run(experiment=self.exp_name()) as run:
            t.log_param("a", 1)
        with t.start_run(run_id=run.run_id) as again:
            self.assertEqual(self.run_of(run.run_id)["info"]["status"], "RUNNING")
            t.log_param("b", 2)
        self.assertEqual(again.run_id, run.run_id)
        got = self.run_of(run.run_id)
        self.assertEqual(got["info"]["status"], "FINISHED")
        self.assertEqual(len(got["data"]["params"]), 2)
        with self.assertRaises(cairn.NotFound):
            t.start_run(run_id="f" * 32)

    def test_experiment_get_or_create_is_race_safe(self):
        name = self.exp_name()
        trackers = [self.tracker() for _ in range(4)]
        ids, errors = [], []
        barrier = threading.Barrier(len(trackers))

        def go(t):
            try:
                barrier.wait(DEADLINE)
                with t.start_run(experiment=name) as r:
                    ids.append(r.experiment_id)
            except Exception as e:  # noqa: BLE001: reported below
                errors.append(e)

        threads = [threading.Thread(target=go, args=(t,)) for t in trackers]
        for th in threads:
            th.start()
        for th in threads:
            th.join(DEADLINE)
            self.assertFalse(th.is_alive(), "start_run hung")
        self.assertEqual(errors, [])
        self.assertEqual(len(set(ids)), 1, ids)

    # ---- asynchronous logging ------------------------------------------------

    def test_no_loss_at_exit(self):
        # A script logs 200,000 points and params, then just exits: no flush,
        # no end_run. Every point must be stored and the run FINISHED.
        out = self.script(
            "import cairn\n"
            "run = cairn.start_run(experiment='exit-test')\n"
            "cairn.log_params({'p%d' % i: i for i in range(300)})\n"
            "for i in range(150000):\n"
            "    cairn.log_metric('loop', i * 0.5, step=i)\n"
            "cairn.log_metrics_batch('bulk', [float(i) for i in range(50000)])\n"
            "cairn.set_tag('done', 'yes')\n"
            "print(run.run_id)\n", {})
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stderr, "")
        run_id = out.stdout.strip()
        loop = self.history(run_id, "loop")
        self.assertEqual(len(loop), 150000)
        self.assertEqual([m["step"] for m in loop], list(range(150000)))
        self.assertEqual(loop[1234]["value"], 617.0)
        bulk = self.history(run_id, "bulk")
        self.assertEqual([m["step"] for m in bulk], list(range(50000)))
        self.assertEqual(bulk[-1]["value"], 49999.0)
        got = self.run_of(run_id)
        self.assertEqual(len(got["data"]["params"]), 300)
        self.assertIn({"key": "done", "value": "yes"}, got["data"]["tags"])
        self.assertEqual(got["info"]["status"], "FINISHED")

    def test_uncaught_exception_at_exit_fails_the_run(self):
        out = self.script(
            "import cairn\n"
            "cairn.log_metric('m', 1.0)\n"  # starts a run in Default
            "print(cairn.active_run().run_id, flush=True)\n"
            "raise SystemError('boom')\n", {"CAIRN_EXPERIMENT_NAME": "crashing"})
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("boom", out.stderr)
        got = self.run_of(out.stdout.strip())
        self.assertEqual(got["info"]["status"], "FAILED")
        self.assertEqual(len(got["data"]["metrics"]), 1)
        exp = self.c.call("tracking", "get_experiment_by_name",
                          {"experiment_name": "crashing"})["experiment"]
        self.assertEqual(got["info"]["experiment_id"], exp["experiment_id"])

    def test_flush_waits_for_everything(self):
        t = self.tracker(flush_interval=30.0)  # only size or flush() sends
        with t.start_run(experiment=self.exp_name()) as run:
            for i in range(1000):
                t.log_metric("m", float(i), step=i)
            t.log_metrics_batch("b", list(range(30000)))
            t.flush(timeout=DEADLINE)
            self.assertEqual(len(self.history(run.run_id, "m")), 1000)
            self.assertEqual(len(self.history(run.run_id, "b")), 30000)
            t.log_metric("m", 1.0, step=1000)
            t.flush(timeout=DEADLINE)
            self.assertEqual(len(self.history(run.run_id, "m")), 1001)

    def test_timer_flushes_without_flush_call(self):
        t = self.tracker(flush_interval=0.05)
        with t.start_run(experiment=self.exp_name()) as run:
            t.log_metric("m", 3.0)
            cairn_harness.wait_for(lambda: self.history(run.run_id, "m"), DEADLINE,
                                   "the timer to send the point")

    def test_error_surfaces_on_next_call(self):
        t = self.tracker()
        with t.start_run(experiment=self.exp_name()) as run:
            t.log_param("p", "1")
            t.log_param("p", "2")  # queued: the server answers 409 later
            cairn_harness.wait_for(lambda: t.errors, DEADLINE, "the 409 to come back")
            with self.assertRaises(cairn.Conflict) as cm:
                t.log_metric("m", 1.0)  # any next call raises it
            self.assertIn("'p'", str(cm.exception))
            self.assertEqual(cm.exception.status, 409)
            t.flush(timeout=DEADLINE)  # raised once, then cleared
            # With flush: one bad param does not take the others with it.
            t.log_params({"q": 1, "p": 3, "r": 2})
            with self.assertRaises(cairn.Conflict) as cm:
                t.flush(timeout=DEADLINE)
            self.assertIn("'p'", str(cm.exception))
            params = {p["key"]: p["value"] for p in self.run_of(run.run_id)["data"]["params"]}
            self.assertEqual(params, {"p": "1", "q": "1", "r": "2"})
            # A value the server refuses (over 6000 characters): 400, named.
            t.log_param("long", "x" * 6001)
            with self.assertRaises(cairn.BadRequest) as cm:
                t.flush(timeout=DEADLINE)
            self.assertIn("'long'", str(cm.exception))
            t.log_metric("after", 1.0)
        self.assertEqual(self.run_of(run.run_id)["info"]["status"], "FINISHED")

    def test_error_raised_by_end_of_block(self):
        t = self.tracker()
        with self.assertRaises(cairn.Conflict):
            with t.start_run(experiment=self.exp_name()) as run:
                t.log_param("p", "1")
                t.log_param("p", "2")
        # The run still ended, and the error is not raised twice.
        self.assertEqual(self.run_of(run.run_id)["info"]["status"], "FINISHED")
        t.flush(timeout=DEADLINE)

    def test_logging_to_a_deleted_run_fails(self):
        t = self.tracker()
        with t.start_run(experiment=self.exp_name()) as run:
            t.log_metric("m", 1.0)
            t.flush(timeout=DEADLINE)
            self.c.call("tracking", "delete_run", {"run_id": run.run_id})
            t.log_metrics_batch("gone", [1.0, 2.0])
            with self.assertRaises(cairn.BadRequest) as cm:
                t.flush(timeout=DEADLINE)
            self.assertIn("'gone'", str(cm.exception))
            self.assertIn(run.run_id, str(cm.exception))
            self.c.call("tracking", "restore_run", {"run_id": run.run_id})

    def test_cairnd_gone_is_an_error_not_a_loss(self):
        k = cairn_harness.Kernel(services=TRACKING).start()
        try:
            t = cairn.Tracker(endpoint=k.endpoint, ttl_ms=500)
            t.start_run(experiment="gone")
            t.log_metric("m", 1.0)
            t.flush(timeout=DEADLINE)
            k.stop()
            t.log_metric("m", 2.0, step=1)
            t.log_params({"a": 1, "b": 2})
            with self.assertRaises(cairn.DeadlineExceeded) as cm:
                t.flush(timeout=DEADLINE)  # the ttl passes: 504 no_reply, not a hang
            self.assertEqual(cm.exception.code, "no_reply")
            with self.assertRaises(cairn.DeadlineExceeded):
                t.end_run()  # update_run cannot reach cairnd either
            self.assertIsNone(t.active_run())
            t.close()
        finally:
            k.cleanup()

    def test_backpressure_does_not_deadlock(self):
        t = self.tracker(max_pending=500, batch_points=64, flush_interval=0.01, window=2)
        done, errors = threading.Event(), []
        with t.start_run(experiment=self.exp_name()) as run:
            def produce():
                try:
                    for i in range(20000):
                        t.log_metric("m", float(i), step=i)
                        if i % 1000 == 0:
                            self.assertLessEqual(t._pending, 500)
                    t.log_metrics_batch("big", [1.0] * 5000)  # bigger than the bound
                    for i in range(100):
                        t.set_tag(f"t{i}", i)
                    t.flush(timeout=DEADLINE)
                except Exception as e:  # noqa: BLE001: reported below
                    errors.append(e)
                finally:
                    done.set()

            th = threading.Thread(target=produce)
            th.start()
            self.assertTrue(done.wait(DEADLINE), "logging under backpressure hung")
            th.join(DEADLINE)
        self.assertEqual(errors, [])
        self.assertEqual(len(self.history(run.run_id, "m")), 20000)
        self.assertEqual(len(self.history(run.run_id, "big")), 5000)
        self.assertEqual(len(self.run_of(run.run_id)["data"]["tags"]), 101)

    def test_threads_share_a_tracker(self):
        t = self.tracker(batch_points=1000)
        with t.start_run(experiment=self.exp_name()) as run:
            def work(k):
                for i in range(5000):
                    t.log_metric(f"t{k}", float(i), step=i)

            threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(DEADLINE)
            t.flush(timeout=DEADLINE)
        for k in range(4):
            self.assertEqual(len(self.history(run.run_id, f"t{k}")), 5000)

    # ---- attach, synchronous, validation ------------------------------------

    def test_attach_to_job_run(self):
        eid = self.c.call("tracking", "create_experiment", {"name": self.exp_name()})[
            "experiment_id"]
        run_id = self.c.call("tracking", "create_run", {"experiment_id": eid})["run"]["info"][
            "run_id"]
        out = self.script(
            "import cairn\n"
            "cairn.log_metric('early', 1.0)\n"  # no start_run: the job's run
            "print(cairn.active_run().run_id)\n"
            "with cairn.start_run() as r:\n"  # still the job's run, not ended on leaving
            "    print(r.run_id)\n"
            "    cairn.log_param('p', 'v')\n"
            "    cairn.log_metrics_batch('m', [0.5] * 1000)\n"
            "print(cairn.active_run())\n"
            "cairn.set_tag('after', 'with')\n", {"CAIRN_RUN_ID": run_id})
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.split(), [run_id, run_id, "None"])
        got = self.run_of(run_id)
        self.assertEqual(got["info"]["status"], "RUNNING")  # left to the job
        self.assertIsNone(got["info"]["end_time"])
        self.assertEqual(got["data"]["params"], [{"key": "p", "value": "v"}])
        self.assertIn({"key": "after", "value": "with"}, got["data"]["tags"])
        self.assertEqual(len(self.history(run_id, "m")), 1000)
        self.assertEqual(len(self.history(run_id, "early")), 1)

    def test_synchronous_mode(self):
        t = self.tracker(asynchronous=False)
        with t.start_run(experiment=self.exp_name()) as run:
            t.log_metric("m", 1.5, step=2)
            # Stored before the call returned: no flush.
            self.assertEqual(self.history(run.run_id, "m")[0]["value"], 1.5)
            t.log_metrics_batch("b", [1.0, 2.0, 3.0], steps=[10, 20, 30], timestamps=5)
            self.assertEqual([(m["step"], m["timestamp"]) for m in self.history(run.run_id, "b")],
                             [(10, 5), (20, 5), (30, 5)])
            t.log_param("p", "1")
            with self.assertRaises(cairn.Conflict) as cm:
                t.log_param("p", "2")  # at once
            self.assertIn("'p'", str(cm.exception))
            t.set_tags({"a": 1})
            self.assertIn({"key": "a", "value": "1"}, self.run_of(run.run_id)["data"]["tags"])
        # Switching modes on the fly, both ways.
        t2 = self.tracker()
        with t2.start_run(experiment=self.exp_name()) as run2:
            t2.log_metric("x", 1.0)
            t2.set_async(False)  # flushes what is queued
            self.assertEqual(len(self.history(run2.run_id, "x")), 1)
            t2.log_metric("x", 2.0, step=1)
            self.assertEqual(len(self.history(run2.run_id, "x")), 2)
            t2.set_async(True)
            t2.log_metric("x", 3.0, step=2)
        self.assertEqual(len(self.history(run2.run_id, "x")), 3)

    def test_module_level_sync(self):
        out = self.script(
            "import cairn\n"
            "cairn.set_async(False)\n"
            "with cairn.start_run(experiment='module-sync') as r:\n"
            "    cairn.log_param('p', 1)\n"
            "    try:\n"
            "        cairn.log_param('p', 2)\n"
            "    except cairn.Conflict as e:\n"
            "        print('conflict', 'p' in str(e))\n"
            "    cairn.log_metric('m', 1.0)\n"
            "    print(r.run_id)\n", {})
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.split("\n")
        self.assertEqual(lines[0], "conflict True")
        self.assertEqual(self.run_of(lines[1])["info"]["status"], "FINISHED")

    def test_validation_at_the_call_site(self):
        t = self.tracker()
        with t.start_run(experiment=self.exp_name()) as run:
            bad = [
                (TypeError, lambda: t.log_metric(5, 1.0)),
                (TypeError, lambda: t.log_metric(["k"], 1.0)),
                (ValueError, lambda: t.log_metric("", 1.0)),
                (ValueError, lambda: t.log_metric("k" * 251, 1.0)),
                (TypeError, lambda: t.log_metric("k", "1.0")),
                (TypeError, lambda: t.log_metric("k", None)),
                (TypeError, lambda: t.log_metric("k", 1.0, step=1.5)),
                (TypeError, lambda: t.log_metric("k", 1.0, timestamp=1.5)),
                (ValueError, lambda: t.log_metric("k", 1.0, step=2 ** 63)),
                (TypeError, lambda: t.log_metrics({"a": 1.0, "b": "x"})),
                (TypeError, lambda: t.log_param(1, "v")),
                (TypeError, lambda: t.set_tag(None, "v")),
                (TypeError, lambda: t.log_metrics_batch("k", "123")),
                (ValueError, lambda: t.log_metrics_batch("k", [1.0, 2.0], steps=[1])),
                (ValueError, lambda: t.log_metrics_batch("k", [1.0], timestamps=[1, 2])),
            ]
            for exc, call in bad:
                with self.subTest(exc=exc):
                    self.assertRaises(exc, call)
            with self.assertRaises(TypeError) as cm:
                t.log_metrics_batch("vals", [1.0] * 30000 + ["bad"] + [2.0])
            self.assertIn("'vals'[30000]", str(cm.exception))
            # NaN and infinities are numbers; ints and bools are too.
            t.log_metrics({"nan": float("nan"), "inf": float("inf"), "int": 3, "bool": True})
            t.flush(timeout=DEADLINE)
        self.assertEqual(self.history(run.run_id, "vals"), [])  # all or nothing
        self.assertEqual(self.history(run.run_id, "k"), [])
        self.assertEqual(len(self.history(run.run_id, "a")), 0)
        got = {m["key"]: m["value"] for m in self.run_of(run.run_id)["data"]["metrics"]}
        self.assertEqual((got["inf"], got["int"], got["bool"]), (float("inf"), 3.0, 1.0))
        self.assertNotEqual(got["nan"], got["nan"])

    def test_get_run_and_active_run(self):
        t = self.tracker()
        self.assertIsNone(t.active_run())
        with self.assertRaises(ValueError):
            t.get_run()
        with t.start_run(experiment=self.exp_name(), run_name="gr") as run:
            self.assertEqual(run.info.run_name, "gr")
            self.assertEqual(run.info.status, "RUNNING")
            t.log_metric("m", 4.0)
            got = t.get_run()  # flushes first: reads its own writes
            self.assertEqual(got["data"]["metrics"][0]["value"], 4.0)
            self.assertEqual(t.get_run(run.run_id)["info"]["run_id"], run.run_id)
        self.assertEqual(run.info.status, "FINISHED")


class TrackingArtifacts(unittest.TestCase):
    """log_artifact(s) over the artifacts service's put_artifact."""

    @classmethod
    def setUpClass(cls):
        cls.k = cairn_harness.Kernel(services=TRACKING + ARTIFACTS)
        try:
            cls.k.start()
        except AssertionError as e:
            cls.k.cleanup()
            first = str(e).strip().splitlines()[-1][:300]
            raise unittest.SkipTest(f"this cairnd has no artifacts service yet ({first})")
        with cairn.Client(cls.k.endpoint) as c:
            svcs = {s["name"]: s for s in c.call("sys", "services")["services"]}
        if "put_artifact" not in svcs.get("artifacts", {}).get("verbs", []):
            cls.k.cleanup()
            raise unittest.SkipTest("this cairnd has no artifacts.put_artifact verb yet")

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def test_log_artifact_and_artifacts(self):
        import hashlib
        t = cairn.Tracker(endpoint=self.k.endpoint)
        try:
            with tempfile.TemporaryDirectory() as d:
                big = os.path.join(d, "model.bin")
                data = os.urandom((9 << 20) + 123)  # three chunks of 4 MiB
                with open(big, "wb") as f:
                    f.write(data)
                tree = os.path.join(d, "tree")
                os.makedirs(os.path.join(tree, "sub"))
                for rel, content in (("a.txt", b"alpha"), ("sub/b.txt", b""),
                                     ("sub/c.json", b"{}")):
                    with open(os.path.join(tree, rel), "wb") as f:
                        f.write(content)
                with t.start_run(experiment="artifacts") as run:
                    t.log_metric("m", 1.0)
                    a = t.log_artifact(big, "models")
                    self.assertEqual((a["path"], a["size"]), ("models/model.bin", len(data)))
                    self.assertEqual(a["hash"], hashlib.sha256(data).hexdigest())
                    # read back: the chunks were assembled in order
                    back, off = b"", 0
                    with cairn.Client(self.k.endpoint) as c:
                        while True:
                            r = c.call("artifacts", "get_artifact", {
                                "run_id": run.run_id, "path": "models/model.bin",
                                "offset": off})
                            back += r["data"]
                            off += len(r["data"])
                            if r["done"]:
                                break
                    self.assertEqual(back, data)
                    # flushed before uploading
                    self.assertEqual(len(t.get_run(run.run_id)["data"]["metrics"]), 1)
                    got = t.log_artifacts(tree, "inputs")
                    self.assertEqual([(x["path"], x["size"]) for x in got],
                                     [("inputs/a.txt", 5), ("inputs/sub/b.txt", 0),
                                      ("inputs/sub/c.json", 2)])
                    top = t.log_artifacts(os.path.join(tree, "sub"))
                    self.assertEqual([x["path"] for x in top], ["b.txt", "c.json"])
                    with self.assertRaises(FileNotFoundError):
                        t.log_artifact(os.path.join(d, "missing"))
        finally:
            t.close()

    def test_download_artifact(self):
        import hashlib
        t = cairn.Tracker(endpoint=self.k.endpoint)
        try:
            with tempfile.TemporaryDirectory() as d:
                src = os.path.join(d, "w.bin")
                data = os.urandom((8 << 20) + 5)  # three chunks of 4 MiB
                with open(src, "wb") as f:
                    f.write(data)
                out = os.path.join(d, "out")
                os.mkdir(out)
                with self.assertRaisesRegex(ValueError, "no active run"):
                    t.download_artifact("models/w.bin", out)
                with t.start_run(experiment="downloads") as run:
                    t.log_artifact(src, "models")
                    # into a folder (the artifact's name), the active run
                    got = t.download_artifact("models/w.bin", out)
                    self.assertEqual(got, os.path.join(out, "w.bin"))
                    with open(got, "rb") as f:
                        self.assertTrue(f.read() == data, "the downloaded bytes differ")
                    mask = os.umask(0)
                    os.umask(mask)
                    self.assertEqual(os.stat(got).st_mode & 0o777, 0o666 & ~mask)
                # to a file, of a run named; an existing file is replaced
                dst = os.path.join(out, "w.bin")
                self.assertEqual(t.download_artifact("models/w.bin", dst, run.run_id), dst)
                with open(dst, "rb") as f:
                    self.assertEqual(hashlib.blake2b(f.read(), digest_size=32).hexdigest(),
                                     hashlib.blake2b(data, digest_size=32).hexdigest())
                # a missing artifact: NotFound, nothing left behind
                with self.assertRaises(cairn.NotFound):
                    t.download_artifact("models/none.bin", out, run_id=run.run_id)
                self.assertEqual(os.listdir(out), ["w.bin"])
        finally:
            t.close()


NOT_DELIVERED = msgpack.packb({"delivered": False})


class FakeTracking:
    """The few tracking verbs a Tracker logging to run r1 calls, for a
    FakeKernel; log_batch answers fault(i) for its i-th call when that is not
    None, else stores the batch (so a batch stored twice shows)."""
    RUN = {"info": {"run_id": "r1", "experiment_id": "0", "status": "RUNNING"},
           "data": {}}

    def __init__(self, fault=lambda i: None):
        self.fault, self.calls, self.steps, self.params = fault, 0, [], []

    def __call__(self, h, raw):
        b = msgpack.unpackb(raw) if raw else {}
        if h["verb"] == "get_run":
            return 200, {}, msgpack.packb({"run": self.RUN})
        if h["verb"] == "update_run":
            return 200, {}, msgpack.packb({"run_info": self.RUN["info"]})
        if h["verb"] != "log_batch":
            return 404, {"code": "no_verb", "err": f"no verb {h['verb']}"}, b""
        i, self.calls = self.calls, self.calls + 1
        answer = self.fault(i)
        if answer is not None:
            return answer
        self.steps += [m["step"] for m in b.get("metrics", [])]
        self.params += [(p["key"], p["value"]) for p in b.get("params", [])]
        return 200, {}, msgpack.packb({})

    @staticmethod
    def refused(st=503, code="unavailable", body=NOT_DELIVERED):
        return (st, {"code": code, "err": f"the service 'tracking' is {code}"}, body)


class LogRetry(unittest.TestCase):
    """A log_batch the kernel refused as not delivered ({"delivered": false}:
    no plugin saw it) is sent again after a backoff, for up to
    $CAIRN_LOG_RETRY_S; any other failure is reported, never resent."""

    def setUp(self):
        self.env = os.environ.get("CAIRN_LOG_RETRY_S")

    def tearDown(self):
        if self.env is None:
            os.environ.pop("CAIRN_LOG_RETRY_S", None)
        else:
            os.environ["CAIRN_LOG_RETRY_S"] = self.env

    def log(self, fake, asynchronous=True, n=10, **kw):
        """Log param p and n points to run r1 through a FakeKernel serving
        fake; returns the Tracker (closed) and what flush raised (or None)."""
        with cairn_harness.FakeKernel(fake) as fk:
            t = cairn.Tracker(endpoint=fk.endpoint, asynchronous=asynchronous, **kw)
            raised = None
            try:
                t.start_run(run_id="r1")
                t.log_param("p", 1)
                for i in range(n):
                    t.log_metric("m", float(i), step=i)
                t.flush(timeout=DEADLINE)
            except cairn.CairnError as e:
                raised = e
            finally:
                try:
                    t.close()
                except cairn.CairnError as e:
                    raised = raised or e
            return t, raised

    def test_not_delivered_is_resent(self):
        for mode in ("async", "sync"):
            for st, code in ((503, "unavailable"), (429, "overloaded")):
                with self.subTest(mode=mode, st=st):
                    # the first two log_batch calls are refused, then stored
                    fake = FakeTracking(lambda i: FakeTracking.refused(st, code) if i < 2
                                        else None)
                    t, raised = self.log(fake, asynchronous=mode == "async")
                    self.assertIsNone(raised)
                    self.assertEqual(t.errors, [])
                    self.assertEqual(fake.steps, list(range(10)))  # each once
                    self.assertEqual(fake.params, [("p", "1")])
                    self.assertGreater(fake.calls, 2)

    def test_resent_in_order(self):
        # one request in flight at a time: a refused batch goes back before
        # the ones queued after it
        fake = FakeTracking(lambda i: FakeTracking.refused() if i in (1, 2, 4) else None)
        t, raised = self.log(fake, n=30, batch_points=3, window=1, flush_interval=0.5)
        self.assertIsNone(raised)
        self.assertEqual(fake.steps, list(range(30)))

    def test_other_failures_are_not_resent(self):
        for body in (b"", msgpack.packb({"delivered": True}), msgpack.packb({})):
            for mode in ("async", "sync"):
                with self.subTest(mode=mode, body=body):
                    # a 503 that does not say "not delivered" (the plugin died
                    # while serving it: maybe stored) is an error, sent once
                    fake = FakeTracking(lambda i: FakeTracking.refused(body=body))
                    t, raised = self.log(fake, asynchronous=mode == "async")
                    self.assertIsInstance(raised, cairn.Unavailable)
                    self.assertNotIn("gave up", str(raised))
                    self.assertEqual(fake.calls, 1 if mode == "sync" else 2)

    def test_gives_up_after_the_budget(self):
        os.environ["CAIRN_LOG_RETRY_S"] = "0.5"
        for mode in ("async", "sync"):
            with self.subTest(mode=mode):
                fake = FakeTracking(lambda i: FakeTracking.refused())
                t0 = time.monotonic()
                t, raised = self.log(fake, asynchronous=mode == "async")
                self.assertLess(time.monotonic() - t0, DEADLINE / 2)
                self.assertIsInstance(raised, cairn.Unavailable)
                self.assertRegex(str(raised), r"gave up after \d+ tries in [\d.]+ s")
                self.assertIn("CAIRN_LOG_RETRY_S", str(raised))
                self.assertEqual(raised.body, {"delivered": False})
                self.assertGreater(fake.calls, 2)
                self.assertEqual(fake.steps, [])

    def test_budget_env_is_parsed_like_the_artifacts_one(self):
        for v, want in (("2.5", 2.5), ("0", 60.0), ("-1", 60.0), ("nan", 60.0),
                        ("x", 60.0), ("", 60.0)):
            os.environ["CAIRN_LOG_RETRY_S"] = v
            self.assertEqual(cairn_tracking._retry_s(cairn_tracking.LOG_RETRY_ENV,
                                                     cairn_tracking.LOG_RETRY_S), want, v)


class CSdkLogRetry(unittest.TestCase):
    """The C SDK's synchronous tracking calls (libcairn through ctypes) resend
    what the kernel refused as not delivered, as the Python SDK does, and
    nothing else."""

    class Err(ctypes.Structure):
        _fields_ = [("st", ctypes.c_int), ("code", ctypes.c_char * 32),
                    ("msg", ctypes.c_char * 512)]

    def setUp(self):
        so = os.path.join(cairn_harness.BUILD, "lib", "libcairn.so")
        # An ASan libcairn loads only into a process that starts with the
        # ASan runtime: this test runs in the plain build.
        dyn = subprocess.run(["readelf", "-d", so], stdout=subprocess.PIPE).stdout
        if b"libasan" in dyn:
            self.skipTest("a sanitizer build of libcairn cannot load into python3")
        self.lib = ctypes.CDLL(so)
        self.lib.cairn_client_new.restype = ctypes.c_void_p
        self.lib.cairn_client_new.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                                              ctypes.c_void_p]
        self.lib.cairn_client_destroy.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        self.lib.cairn_create_experiment.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_void_p]

    def create(self, refusals, body):
        """create_experiment against a fake kernel that refuses it `refusals`
        times (503 with this error body), then answers 200: (rc, err, tries)."""
        seen = []

        def reply(h, b):
            seen.append(h["verb"])
            if len(seen) <= refusals:
                return 503, {"code": "unavailable",
                             "err": "the service 'tracking' is restarting"}, body
            return 200, {}, msgpack.packb({"experiment_id": "7"})

        with cairn_harness.FakeKernel(reply) as fk:
            err = self.Err()
            c = ctypes.c_void_p(self.lib.cairn_client_new(fk.endpoint.encode(), None,
                                                          ctypes.byref(err)))
            self.assertTrue(c.value, err.msg)
            out = ctypes.c_void_p()
            try:
                rc = self.lib.cairn_create_experiment(c, b"exp", ctypes.byref(out),
                                                      ctypes.byref(err))
            finally:
                if out.value:
                    ctypes.CDLL(None).free(out)
                self.lib.cairn_client_destroy(ctypes.byref(c))
        return rc, err, seen

    def test_reply_undelivered(self):
        """cairn_reply_undelivered reads the flag off an error reply only."""
        lib = self.lib
        lib.cairn_client_call.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
            ctypes.c_size_t, ctypes.c_uint32, ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_void_p]
        lib.cairn_reply_undelivered.argtypes = [ctypes.c_void_p]
        lib.cairn_reply_undelivered.restype = ctypes.c_bool
        lib.cairn_reply_destroy.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        answers = [(503, msgpack.packb({"delivered": False})), (503, b""),
                   (200, msgpack.packb({"delivered": False})),
                   (503, msgpack.packb({"delivered": True}))]

        def reply(h, b):
            st, body = answers[h["id"] - 1]
            extra = {"code": "unavailable", "err": "x"} if st >= 400 else {}
            return st, extra, body

        got = []
        with cairn_harness.FakeKernel(reply) as fk:
            err = self.Err()
            c = ctypes.c_void_p(lib.cairn_client_new(fk.endpoint.encode(), None,
                                                     ctypes.byref(err)))
            for _ in answers:
                r = ctypes.c_void_p()
                lib.cairn_client_call(c, b"tracking", b"log_batch", None, 0, 5000,
                                      ctypes.byref(r), ctypes.byref(err))
                got.append(lib.cairn_reply_undelivered(r))
                lib.cairn_reply_destroy(ctypes.byref(r))
            lib.cairn_client_destroy(ctypes.byref(c))
        self.assertEqual(got, [True, False, False, False])
        self.assertFalse(lib.cairn_reply_undelivered(None))

    def test_undelivered_is_sent_again(self):
        undelivered = msgpack.packb({"delivered": False})
        rc, err, seen = self.create(2, undelivered)
        self.assertEqual(rc, 0, err.msg)
        self.assertEqual(seen, ["create_experiment"] * 3)
        rc, err, seen = self.create(2, b"")  # maybe stored: not resent
        self.assertEqual((rc, err.st, seen), (-1, 503, ["create_experiment"]))
        os.environ["CAIRN_LOG_RETRY_S"] = "0.3"
        try:
            rc, err, seen = self.create(1000, undelivered)
        finally:
            del os.environ["CAIRN_LOG_RETRY_S"]
        self.assertEqual((rc, err.st), (-1, 503))
        self.assertIn(b"gave up on tracking.create_experiment", err.msg)
        self.assertGreater(len(seen), 1)


class TrackingRestart(unittest.TestCase):
    """The tracking plugin (process mode) is killed twice while a Tracker logs
    20,000 points: the batches the kernel refused while it was down are sent
    again; only a batch in flight at a kill (possibly stored) may be reported,
    and no point is ever stored twice."""

    def test_kill_9_while_logging(self):
        k = cairn_harness.Kernel(
            services="  tracking:\n    plugin: storage\n    mode: process\n").start()
        answers = []  # (steps, st, code, body) of every log_batch answer

        class Spy(cairn.Tracker):
            def _answered(self, req, r, outbox, gens):
                steps = [m["step"] for m in msgpack.unpackb(req.payload)["metrics"]] \
                    if req.meta is None else []
                answers.append((steps, r.status, r.code, r.body))
                return super()._answered(req, r, outbox, gens)

        def refusals():
            return sum(1 for a in answers if a[3] == {"delivered": False})

        n = 20000
        t = Spy(endpoint=k.endpoint, batch_points=250, flush_interval=0.01, window=4)
        try:
            run = t.start_run(experiment="restart")
            kills, kill_at = 0, {5000, 12000, 15000, 17000, 19000}
            for i in range(n):
                # twice, and again (its restart backs off longer each time)
                # until a batch was seen refused while it was down
                if i in kill_at and (kills < 2 or not refusals()):
                    # back up since the last kill (a pid of 0 would be ours)
                    pid = cairn_harness.wait_for(
                        lambda: k.plugin("tracking")["state"] == "up"
                        and k.plugin("tracking")["pid"], timeout=DEADLINE,
                        what="tracking up")
                    self.assertGreater(pid, 0)
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                    cairn_harness.wait_for(
                        lambda: k.plugin("tracking")["pid"] != pid
                        or k.plugin("tracking")["state"] != "up",
                        timeout=DEADLINE, what="the kernel to see the kill")
                try:
                    t.log_metric("m", float(i), step=i)
                except cairn.CairnError:  # a batch lost at a kill, raised here
                    t.log_metric("m", float(i), step=i)
                if i % 100 == 0:
                    time.sleep(0.01)  # spread over a few seconds
            try:
                t.flush(timeout=DEADLINE * 2)
            except cairn.Unavailable:
                pass  # checked below
            cairn_harness.wait_for(lambda: k.plugin("tracking")["state"] == "up",
                                   timeout=DEADLINE, what="tracking up")
            with cairn.Client(k.endpoint, ttl_ms=20000) as c:
                got = c.call("tracking", "get_metric_history",
                             {"run_id": run.run_id, "key": "m", "max_results": 100000})
            stored = [m["step"] for m in got["metrics"]]
            self.assertEqual(len(stored), len(set(stored)), "a point was stored twice")
            self.assertTrue(all(m["value"] == float(m["step"]) for m in got["metrics"]))
            # The failures: only batches in flight at a kill (503, no body).
            failed = set()
            for steps, st, code, body in answers:
                if st >= 400 and body != {"delivered": False}:
                    self.assertEqual((st, code, body), (503, "unavailable", None))
                    failed.update(steps)
            errors = [e for e in t.errors if isinstance(e, cairn.CairnError)]
            for e in errors:
                self.assertIsInstance(e, cairn.Unavailable)
                self.assertIn("went down while serving", str(e))
            self.assertLessEqual(len(errors), 4 * kills)  # at most a window per kill
            missing = set(range(n)) - set(stored)
            self.assertLessEqual(missing, failed, "points lost without an error")
            self.assertGreater(refusals(), 0, "no batch was refused while it was down")
            t.end_run()
        finally:
            try:
                t.close()
            except cairn.CairnError:
                pass
            k.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
