"""search_runs reading on two connections at once (issue 12, the 1M-run
page; plugins/storage/side.h): a filter of two clauses fills one rid set on
each, and a page of 200 runs or more has its metrics read by the second
reader. The same queries, on the same database, answer byte for byte the
same with `parallel_reads: false` (one thread), and what they answer is
what was logged, checked run by run: metrics (folded into the value index
and not yet folded), params, tags, order, paging."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import Kernel  # noqa: E402

import msgpack  # noqa: E402

RUNS = 450


def services(parallel):
    return ("  tracking:\n    plugin: storage\n    mode: inproc\n"
            f"    settings:\n      parallel_reads: {'true' if parallel else 'false'}\n")


QUERIES = [
    {"filter": "metrics.m1 > 0.3 AND params.p = 'even'", "max_results": 1000},
    {"filter": "params.p = 'odd' AND tags.t LIKE 'tag-1%'", "max_results": 1000},
    {"filter": "metrics.m2 >= 10 AND metrics.m1 < 0.9", "max_results": 300},
    {"filter": "metrics.m1 > 0.1 AND params.p = 'even'", "max_results": 100},
    {"max_results": 1000, "order_by": ["metrics.m1 DESC"]},
    {"filter": "params.p = 'even' OR metrics.m2 < 5", "max_results": 1000},
]


class Parallel(unittest.TestCase):
    def test_same_answers_on_one_thread_and_two(self):
        k = Kernel(services=services(True)).start()
        try:
            c = k.client()
            exp = self.populate(c)
            threads = self.threads(k)
            fast = self.answers(c, exp)
            # the second reader's thread was started, and said nothing wrong
            self.assertEqual(self.threads(k), threads + 1)
            self.assertNotIn("searches read on one thread", k.read_log())
            c.close()
            k.stop()
            k._conf_rest = k._conf_rest.replace("parallel_reads: true", "parallel_reads: false")
            with open(k.conf, "w") as f:
                f.write("kernel:\n"
                        f"  endpoint: {k.endpoint}\n"
                        f"  events: {k.events}\n" + k._conf_rest)
            k.logf.close()
            k.start()
            c = k.client()
            threads = self.threads(k)
            slow = self.answers(c, exp)
            self.assertEqual(self.threads(k), threads)
            c.close()
            self.assertEqual(len(fast), len(slow))
            for q, a, b in zip(QUERIES, fast, slow):
                self.assertEqual(a, b, q)
        finally:
            k.cleanup()

    @staticmethod
    def threads(k):
        return len(os.listdir(f"/proc/{k.proc.pid}/task"))

    def call(self, c, verb, body):
        h, b = c.call("tracking", verb, body)
        self.assertEqual(h["st"], 200, (verb, h))
        return b

    def populate(self, c):
        exp = self.call(c, "create_experiment", {"name": "parallel"})["experiment_id"]
        self.want = {}
        for i in range(RUNS):
            rid = self.call(c, "create_run", {"experiment_id": exp, "start_time": 1000 + i})[
                "run"]["info"]["run_id"]
            m1, m2 = (i * 37 % 100) / 100.0, float(i % 20)
            self.call(c, "log_batch", {
                "run_id": rid,
                "metrics": [{"key": "m1", "value": m1, "timestamp": 1, "step": 0},
                            {"key": "m2", "value": m2, "timestamp": 1, "step": 0}],
                "params": [{"key": "p", "value": "even" if i % 2 == 0 else "odd"}],
                "tags": [{"key": "t", "value": f"tag-{i % 13}"}]})
            self.want[rid] = {"m1": m1, "m2": m2, "p": "even" if i % 2 == 0 else "odd",
                              "t": f"tag-{i % 13}"}
        return exp

    def answers(self, c, exp):
        out = []
        for q in QUERIES:
            pages, token = [], None
            for _ in range(20):
                body = dict(q, experiment_ids=[exp])
                if token:
                    body["page_token"] = token
                h, b = c.call("tracking", "search_runs", body)
                self.assertEqual(h["st"], 200, (q, h))
                for run in b["runs"]:
                    self.check_run(run)
                pages.append(msgpack.packb(b["runs"]))
                token = b.get("next_page_token")
                if not token:
                    break
            out.append(pages)
        # the first query's runs, counted against what was logged
        first = QUERIES[0]
        n = sum(1 for w in self.want.values() if w["m1"] > 0.3 and w["p"] == "even")
        got = sum(len(msgpack.unpackb(p)) for p in out[0])
        self.assertEqual(got, n, first)
        return out

    def check_run(self, run):
        w = self.want[run["info"]["run_id"]]
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        self.assertEqual((metrics, params.get("p"), tags.get("t")),
                         ({"m1": w["m1"], "m2": w["m2"]}, w["p"], w["t"]))


if __name__ == "__main__":
    unittest.main()
