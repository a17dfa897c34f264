"""A/B of search_runs on a kept database (bench_tracking --only search
--keep): the storage plugin with parallel_reads false and true, one cairnd
after the other, twice each, unpinned; latency to the whole reply received
(not decoded), p50 / p99 / max in ms.

    CAIRN_BUILD_DIR=build /usr/bin/python3 bench/search_ab.py DIR/tracking.db [QUERIES]
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from cairn_harness import Kernel  # noqa: E402
import msgpack  # noqa: E402

db = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
Q = [("filter 100", {"filter": "metrics.m3 > 0.9 AND params.p2 = 'v7'", "max_results": 100}),
     ("filter 1000", {"filter": "metrics.m3 > 0.9 AND params.p2 = 'v7'", "max_results": 1000}),
     ("0.1% 1000", {"filter": "metrics.m3 > 0.99 AND params.p2 = 'v7'", "max_results": 1000}),
     ("top 100", {"max_results": 100, "order_by": ["metrics.m1 DESC"]})]

def run(parallel):
    k = Kernel(services="  tracking:\n    plugin: storage\n    mode: inproc\n"
               f"    settings:\n      db: {db}\n      parallel_reads: {parallel}\n").start()
    try:
        c = k.client()
        h, b = c.call("tracking", "search_experiments", {})
        exp = [e["experiment_id"] for e in b["experiments"] if e["name"] == "bench-search"][0]
        res = {}
        for name, q in Q:
            body = msgpack.packb(dict(q, experiment_ids=[exp]))
            lat = []
            for i in range(n + 3):
                t0 = time.perf_counter()
                c.send_frames([b"CAIRN/1", msgpack.packb({"id": i + 1, "svc": "tracking",
                                                           "verb": "search_runs"}), body])
                fr = c.recv_frames(120)
                dt = (time.perf_counter() - t0) * 1000
                assert msgpack.unpackb(fr[1])["st"] == 200, fr[1]
                if i >= 3:
                    lat.append(dt)
            lat.sort()
            res[name] = (statistics.median(lat), lat[int(0.99 * (len(lat) - 1) + 0.5)], max(lat))
        c.close()
        return res
    finally:
        k.cleanup()

for parallel in ("false", "true", "false", "true"):
    r = run(parallel)
    print(f"parallel_reads {parallel}: " + "; ".join(f"{k} p50 {v[0]:.1f} p99 {v[1]:.1f} max {v[2]:.1f}" for k, v in r.items()), flush=True)
