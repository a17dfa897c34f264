"""sys.metrics (docs/PROTOCOL.md, "The sys service"): the kernel's request
counters per service and verb, by status class, with a latency histogram,
and the processes' CPU and memory. Known outcomes are sent to an inproc
plugin (its INLINE verbs served on the kernel's thread included) and a
process-mode one, and the counts must be exact."""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import BIN, Kernel, wait_for  # noqa: E402

CRASHY = '    settings:\n      allow_crash: "true"\n'
SERVICES = ("  echo:\n    plugin: echo\n    mode: inproc\n" + CRASHY +
            "  echo_proc:\n    plugin: echo\n    mode: process\n")
BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
              10000]


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=SERVICES).start()
        cls.c = cls.k.client()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    def metrics(self):
        h, b = self.c.call("sys", "metrics")
        self.assertEqual(h["st"], 200, h)
        return b

    @staticmethod
    def verbs(m, svc):
        s = next(s for s in m["services"] if s["name"] == svc)
        return {v["verb"]: v for v in s["verbs"]}

    def check_row(self, row, n2, n4, n5, n503=0, n504=0):
        self.assertEqual((row["count_2xx"], row["count_4xx"], row["count_5xx"],
                          row["count_503"], row["count_504"], row["count"]),
                         (n2, n4, n5, n503, n504, n2 + n4 + n5), row)
        self.check_histogram(row)

    def check_histogram(self, row):
        b = row["buckets"]
        self.assertEqual(len(b), len(BUCKETS_MS) + 1)
        self.assertEqual(b, sorted(b), row)  # cumulative: never decreasing
        self.assertEqual(b[-1], row["count"], row)  # +Inf holds every request
        if row["count"]:
            self.assertGreater(row["sum_us"], 0, row)
        # The sum is at least what the buckets say each request took at least.
        least = sum((b[i] - b[i - 1]) * BUCKETS_MS[i - 1] * 1000
                    for i in range(1, len(BUCKETS_MS) + 1))
        self.assertGreaterEqual(row["sum_us"], least, row)

    def test_counts(self):
        c = self.c
        for i in range(5):
            self.assertEqual(c.call("echo", "echo", {"i": i})[0]["st"], 200)
        for i in range(4):  # INLINE: served on the kernel's thread (the door)
            self.assertEqual(c.call("echo", "echo_inline", {"i": i})[0]["st"], 200)
        h, _ = c.call("echo", "fail_inline", {"st": 500, "code": "internal", "err": "x"})
        self.assertEqual(h["st"], 500)
        for _ in range(3):  # bad input: 400 from the plugin
            self.assertEqual(c.call("echo", "sleep", {"ms": "soon"})[0]["st"], 400)
        h, _ = c.call("echo", "sleep", {"ms": 700}, ttl=200)
        self.assertEqual(h["st"], 504)
        self.assertEqual(c.call("echo", "nosuchverb")[0]["code"], "no_verb")
        self.assertEqual(c.call("nosuchsvc", "x")[0]["code"], "no_service")
        for i in range(3):
            self.assertEqual(c.call("echo_proc", "echo", {"i": i})[0]["st"], 200)
        h, _ = c.call("echo", "relay", {"svc": "echo_proc", "verb": "info"})
        self.assertEqual(h["st"], 200)  # a nested call counts on its service too
        time.sleep(0.8)  # the sleep's late reply arrives: it is not counted again

        m = self.metrics()
        self.assertEqual(m["buckets_ms"], BUCKETS_MS)
        echo = self.verbs(m, "echo")
        self.check_row(echo["echo"], 5, 0, 0)
        self.check_row(echo["echo_inline"], 4, 0, 0)
        self.check_row(echo["fail_inline"], 0, 0, 1)
        self.check_row(echo["sleep"], 0, 3, 1, n504=1)
        self.check_row(echo["relay"], 1, 0, 0)
        self.check_row(echo[""], 0, 1, 0)  # verbs the service does not have
        self.check_row(echo["crash"], 0, 0, 0)  # every verb listed, counted or not
        # The 504 took about its ttl (200 ms; the deadline is kept in whole
        # milliseconds from the client's send, so a little less is fine), in a
        # bucket over 100 ms.
        sleep = echo["sleep"]
        self.assertGreaterEqual(sleep["sum_us"], 150_000)
        self.assertLess(sleep["sum_us"], 5_000_000)
        self.assertEqual(sleep["buckets"][BUCKETS_MS.index(100)], 3, sleep)
        proc = self.verbs(m, "echo_proc")
        self.check_row(proc["echo"], 3, 0, 0)
        self.check_row(proc["info"], 1, 0, 0)
        self.assertFalse(any(s["name"] == "nosuchsvc" for s in m["services"]))

        # The sys service counts itself: this reply did not, the next does.
        before = self.verbs(m, "sys")["metrics"]["count"]
        self.assertEqual(c.call("sys", "nope")[0]["code"], "no_verb")
        after = self.verbs(self.metrics(), "sys")
        self.assertEqual(after["metrics"]["count"], before + 1)
        self.assertGreaterEqual(after[""]["count_4xx"], 1)
        for row in after.values():
            self.check_histogram(row)

        # cairn stats: a row per service and verb that counted a request
        r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint,
                            "stats"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [line.split() for line in r.stdout.splitlines()]
        self.assertEqual(lines[0], ["SERVICE", "VERB", "COUNT", "2XX", "4XX", "5XX", "504",
                                    "MEAN_MS"])
        self.assertIn(["echo", "sleep", "4", "0", "3", "1", "1"],
                      [line[:7] for line in lines])
        self.assertNotIn("crash", r.stdout)  # counted nothing

    def test_plugin_and_kernel_figures(self):
        m = self.metrics()
        by = {s["name"]: s for s in m["services"]}
        self.assertEqual([s["name"] for s in m["services"]], ["sys", "echo", "echo_proc"])
        for s in m["services"]:
            self.assertEqual(s["state"], "up")
            for key in ("restarts", "inflight", "queued"):
                self.assertEqual(s[key], 0, (s["name"], key))
        # inproc plugins are inside cairnd's figures
        self.assertIsNone(by["echo"]["cpu_seconds"])
        self.assertIsNone(by["echo"]["rss_bytes"])
        proc = by["echo_proc"]
        self.assertGreater(proc["pid"], 0)
        self.assertNotEqual(proc["pid"], self.k.proc.pid)
        self.assertGreater(proc["rss_bytes"], 0)
        # CPU time is counted in clock ticks: work it until one shows.
        def busy():
            for _ in range(50):
                self.c.call("echo_proc", "echo_inline", {"pad": "x" * 1000})
            p = next(s for s in self.metrics()["services"] if s["name"] == "echo_proc")
            return p["cpu_seconds"] > 0
        wait_for(busy, what="echo_proc's cpu_seconds > 0")
        k = m["kernel"]
        self.assertEqual(k["pid"], self.k.proc.pid)
        self.assertGreater(k["rss_bytes"], 1 << 20)
        self.assertGreaterEqual(k["cpu_seconds"], 0)
        self.assertGreater(k["uptime_s"], 0)
        self.assertEqual(k["pending"], 0)
        self.assertGreaterEqual(k["clients"], 1)

    def test_restart_keeps_counts(self):
        c = self.c
        for _ in range(2):
            c.call("echo_proc", "small")
        n = self.verbs(self.metrics(), "echo_proc")["small"]["count"]
        self.assertGreaterEqual(n, 2)
        pid = next(s for s in self.metrics()["services"] if s["name"] == "echo_proc")["pid"]
        os.kill(pid, 9)
        wait_for(lambda: self.k.plugin("echo_proc")["restarts"] >= 1
                 and self.k.plugin("echo_proc")["state"] == "up", what="echo_proc restarted")
        c.call("echo_proc", "small")
        m = self.metrics()
        self.assertEqual(self.verbs(m, "echo_proc")["small"]["count"], n + 1)
        s = next(s for s in m["services"] if s["name"] == "echo_proc")
        self.assertGreaterEqual(s["restarts"], 1)
        self.assertNotEqual(s["pid"], pid)


class Permission(unittest.TestCase):
    """sys.metrics needs sys.read, as sys.services does."""

    def test_needs_a_token(self):
        with Kernel(services="  auth:\n    plugin: auth\n    mode: inproc\n",
                    auth="auth") as k:
            with open(os.path.join(k.state, "owner.token")) as f:
                owner = f.read().strip()
            c = k.client()
            h, _ = c.call("sys", "metrics")
            self.assertEqual(h["st"], 401, h)
            h, b = c.call("sys", "metrics", tok=owner)
            self.assertEqual(h["st"], 200, h)
            # the refusal is counted under sys.metrics too
            row = next(v for s in b["services"] if s["name"] == "sys"
                       for v in s["verbs"] if v["verb"] == "metrics")
            self.assertEqual((row["count_4xx"], row["count"]), (1, 1))
            c.close()


if __name__ == "__main__":
    unittest.main()
