"""The `cairn` CLI's tracking and artifact commands, end to end.

Runs the built binary against a private cairnd with the storage plugin in
its `tracking` and `artifacts` roles (cairn_harness.Kernel), and, for replies
a healthy server never sends (a hash that does not match), against a fake
kernel. The artifact tests are skipped, saying why, when the kernel has no
`artifacts` service. Every subprocess and every wait is bounded.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import msgpack  # noqa: E402

import cairn_harness  # noqa: E402
from cairn_harness import BIN, DEADLINE, Kernel  # noqa: E402

CLI = os.path.abspath(os.path.join(BIN, "cairn"))
SERVICES = ("  tracking:\n    plugin: storage\n    mode: inproc\n"
            "  artifacts:\n    plugin: storage\n    mode: inproc\n")
MiB = 1 << 20
CHUNK = 4 * MiB


def cli(endpoint, *args, stdin=None, cwd=None, binary=False, timeout=DEADLINE * 4):
    """Run cairn --endpoint ENDPOINT ARGS (TZ=UTC); the CompletedProcess."""
    env = dict(os.environ, TZ="UTC")
    env.pop("CAIRN_ENDPOINT", None)
    env.pop("CAIRN_TOKEN", None)
    kw = {} if binary else {"text": True, "encoding": "utf-8"}
    r = subprocess.run([CLI, "--endpoint", endpoint, *args], input=stdin, cwd=cwd,
                       capture_output=True, timeout=timeout, env=env, **kw)
    err = r.stderr if binary else r.stderr.encode()
    if b"Sanitizer" in err or b"runtime error:" in err:  # a CAIRN_SANITIZE build
        raise AssertionError(f"cairn {args}: {err.decode(errors='replace')}")
    return r


def blake2b_hex(data):  # an artifact stored before SHA-256
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


class CliBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(SERVICES).start()
        c = cls.k.client()
        try:
            cls.services = {s["name"] for s in c.call("sys", "services")[1]["services"]}
        finally:
            c.close()
        cls.tmp = tempfile.mkdtemp(prefix="cairn-cli-tracking-")

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_ok(self, *args, **kw):
        r = cli(self.k.endpoint, *args, **kw)
        self.assertEqual(r.returncode, 0, f"cairn {args}: {r.stderr}")
        self.assertEqual(r.stderr, b"" if kw.get("binary") else "")
        return r.stdout

    def run_json(self, *args):
        out = self.run_ok("--json", *args)
        self.assertEqual(out.count("\n"), 1, "compact JSON: one line")
        return json.loads(out)

    def run_fail(self, code, *args, **kw):
        r = cli(self.k.endpoint, *args, **kw)
        self.assertEqual(r.returncode, code, f"cairn {args}: {r.stdout} {r.stderr}")
        self.assertEqual(r.stdout, "")
        return r.stderr

    def call(self, verb, body, svc="tracking"):
        c = self.k.client()
        try:
            hdr, reply = c.call(svc, verb, body)
        finally:
            c.close()
        self.assertEqual(hdr["st"], 200, hdr)
        return reply

    def new_experiment(self, name, *extra):
        out = self.run_ok("experiments", "create", name, *extra)
        self.assertRegex(out, r"^\d+\n$")
        return out.strip()

    def new_run(self, experiment, *extra):
        out = self.run_ok("runs", "create", experiment, *extra)
        self.assertRegex(out, r"^[0-9a-f]{32}\n$")
        return out.strip()


def table(out):
    """A table's lines split on runs of two or more spaces."""
    return [re.split(r"\s{2,}", line.rstrip()) for line in out.splitlines()]


class Tracking(CliBase):
    def test_help_lists_every_command(self):
        out = self.run_ok("help")
        for cmd in ["ping", "services", "health", "call SVC VERB", "experiments list",
                    "experiments create NAME", "experiments delete ID",
                    "experiments restore ID", "runs list EXPERIMENT", "runs show RUN_ID",
                    "runs search EXPERIMENT...", "runs create EXPERIMENT", "runs end RUN_ID",
                    "metrics history RUN_ID KEY", "metrics log RUN_ID KEY VALUE",
                    "params log RUN_ID KEY VALUE", "artifacts list RUN_ID [PATH]",
                    "artifacts upload RUN_ID FILE [PATH]",
                    "artifacts download RUN_ID PATH [FILE]", "help"]:
            self.assertRegex(out, rf"\n  {re.escape(cmd)}\s+\S", cmd)
        for line in out.splitlines():
            self.assertLessEqual(len(line), 80, line)

    def test_experiments(self):
        eid = self.new_experiment("exp-crud", "--tag", "team=ml", "--tag", "note=a=b")
        rows = table(self.run_ok("experiments", "list"))
        self.assertEqual(rows[0], ["ID", "NAME", "STAGE", "CREATED", "TAGS"])
        mine = [r for r in rows[1:] if r[1] == "exp-crud"]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0][0], eid)
        self.assertEqual(mine[0][2], "active")
        self.assertRegex(mine[0][3], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
        self.assertEqual(sorted(mine[0][4].split(", ")), ["note=a=b", "team=ml"])

        body = self.run_json("experiments", "list", "--filter", "name = 'exp-crud'")
        self.assertEqual([e["experiment_id"] for e in body["experiments"]], [eid])
        self.assertEqual(sorted(body["experiments"][0]["tags"], key=lambda t: t["key"]),
                         [{"key": "note", "value": "a=b"}, {"key": "team", "value": "ml"}])

        self.assertEqual(self.run_ok("experiments", "delete", "exp-crud"),
                         f"experiment {eid} deleted\n")
        active = self.run_json("experiments", "list")["experiments"]
        self.assertNotIn(eid, [e["experiment_id"] for e in active])
        deleted = self.run_json("experiments", "list", "--deleted")["experiments"]
        self.assertIn(eid, [e["experiment_id"] for e in deleted])
        self.assertTrue(all(e["lifecycle_stage"] == "deleted" for e in deleted))
        every = self.run_json("experiments", "list", "--all")["experiments"]
        self.assertIn(eid, [e["experiment_id"] for e in every])
        self.assertIn("0", [e["experiment_id"] for e in every])
        self.assertEqual(self.run_json("experiments", "restore", eid), {})
        self.assertEqual(self.run_json("experiments", "delete", eid), {})
        self.assertEqual(self.run_ok("experiments", "restore", "exp-crud"),
                         f"experiment {eid} restored\n")
        active = self.run_json("experiments", "list")["experiments"]
        self.assertIn(eid, [e["experiment_id"] for e in active])

    def test_experiment_errors(self):
        self.new_experiment("exp-dup")
        err = self.run_fail(1, "experiments", "create", "exp-dup")
        self.assertRegex(err, r"^cairn: \w+ \(4\d\d\): ")
        err = self.run_fail(1, "experiments", "delete", "0")
        self.assertRegex(err, r"^cairn: \w+ \(400\): .*[Dd]efault")
        err = self.run_fail(1, "experiments", "delete", "no-such-experiment")
        self.assertRegex(err, r"^cairn: not_found \(404\): .*no-such-experiment")
        err = self.run_fail(1, "experiments", "list", "--filter", "name ~ 'x'")
        self.assertRegex(err, r"^cairn: bad_request \(400\): .*position")
        err = self.run_fail(2, "experiments", "create", "x", "--tag", "novalue")
        self.assertIn("--tag wants KEY=VALUE", err)

    def test_experiments_paging(self):
        for i in range(7):
            self.new_experiment(f"page-exp-{i}")
        want = self.run_json("experiments", "list", "--filter", "name LIKE 'page-exp-%'")
        self.assertEqual(len(want["experiments"]), 7)
        got = self.run_json("experiments", "list", "--filter", "name LIKE 'page-exp-%'",
                            "--max", "3")
        self.assertEqual(got["experiments"], want["experiments"][:3])
        out = self.run_ok("experiments", "list", "--filter", "name LIKE 'page-exp-%'",
                          "--max", "3")
        self.assertEqual(len(out.splitlines()), 1 + 3 + 1)
        self.assertEqual(out.splitlines()[-1], "(stopped at --max 3)")

    def test_runs_lifecycle(self):
        eid = self.new_experiment("exp-runs")
        first = self.new_run("exp-runs", "--name", "first", "--tag", "k=v")
        second = self.new_run(eid, "--name", "second")
        self.run_ok("metrics", "log", first, "acc", "0.91", "--step", "1")
        self.assertEqual(self.run_ok("metrics", "log", first, "acc", "0.95", "--step", "2"),
                         "")
        self.run_ok("metrics", "log", first, "loss", "NaN")
        self.run_ok("metrics", "log", second, "acc", "-0.5")
        self.assertEqual(self.run_ok("params", "log", first, "opt", "adam"), "")
        self.assertEqual(self.run_json("params", "log", first, "opt", "adam"), {})
        self.assertEqual(self.run_ok("runs", "end", first), f"run {first} ended: FINISHED\n")
        self.run_ok("runs", "end", second, "--status", "killed")

        rows = table(self.run_ok("runs", "list", "exp-runs"))
        self.assertEqual(rows[0], ["RUN_ID", "NAME", "STATUS", "START", "DURATION", "acc",
                                   "loss"])
        self.assertEqual([r[0] for r in rows[1:]], [second, first], "newest first")
        self.assertEqual(rows[1][1:3], ["second", "KILLED"])
        self.assertEqual(rows[2][1:3], ["first", "FINISHED"])
        self.assertEqual(rows[1][5:], ["-0.5", "-"])
        self.assertEqual(rows[2][5:], ["0.95", "NaN"])
        self.assertRegex(rows[2][4], r"^\d+(ms|\.\ds)$")

        body = self.run_json("runs", "list", eid)
        self.assertEqual([r["info"]["run_id"] for r in body["runs"]], [second, first])

        out = self.run_ok("runs", "show", first)
        self.assertRegex(out, rf"^run_id\s+{first}\nname\s+first\n"
                              rf"experiment\s+{eid} \(exp-runs\)\nstatus\s+FINISHED\n")
        self.assertRegex(out, r"\nend\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n")
        self.assertRegex(out, r"\nparams:\nKEY\s+VALUE\nopt\s+adam\n")
        self.assertRegex(out, r"\nmetrics \(latest\):\nKEY\s+VALUE\s+STEP\s+TIMESTAMP\n"
                              r"acc\s+0\.95\s+2\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\n"
                              r"loss\s+NaN\s+0\s+")
        self.assertRegex(out, r"\ntags:\nKEY\s+VALUE\nk\s+v\nmlflow\.runName\s+first\n$")
        run = self.run_json("runs", "show", first)["run"]
        self.assertEqual(run["info"]["status"], "FINISHED")
        self.assertIsInstance(run["info"]["end_time"], int)
        self.assertEqual(run["data"]["params"], [{"key": "opt", "value": "adam"}])

        out = self.run_ok("runs", "show", self.new_run(eid))
        self.assertIn("\nparams: none\n", out)
        self.assertIn("\nmetrics (latest): none\n", out)

    def test_run_errors(self):
        for args in [["runs", "show", "feedface"], ["runs", "end", "feedface"],
                     ["metrics", "log", "feedface", "acc", "1"],
                     ["params", "log", "feedface", "k", "v"]]:
            err = self.run_fail(1, *args)
            self.assertRegex(err, r"^cairn: not_found \(404\): .*feedface", args)
        err = self.run_fail(1, "runs", "list", "no-such-experiment")
        self.assertRegex(err, r"^cairn: not_found \(404\): .*no-such-experiment")
        err = self.run_fail(1, "runs", "create", "987654")
        self.assertRegex(err, r"^cairn: not_found \(404\): .*987654")
        run = self.new_run("0")
        self.run_ok("params", "log", run, "lr", "0.1")
        err = self.run_fail(1, "params", "log", run, "lr", "0.2")
        self.assertRegex(err, r"^cairn: conflict \(409\): ")
        for args in [["metrics", "log", run, "acc", "high"],
                     ["metrics", "log", run, "acc", "1", "--step", "two"],
                     ["runs", "end", run, "--status", "RUNNING"],
                     ["runs", "show", run, "--filter", "x"],
                     ["runs", "list", "0", "--all", "--deleted"],
                     ["runs", "list", "0", "--max", "0"],
                     ["runs", "list"], ["runs"], ["runs", "frob", "x"],
                     ["metrics", "history", run]]:
            err = self.run_fail(2, *args)
            self.assertRegex(err, r"^cairn: .*\nTry 'cairn --help'\.\n$", args)

    def test_search(self):
        a = self.new_experiment("search-a")
        self.new_experiment("search-b")
        runs = {}
        for name, exp, acc, opt in [("r1", "search-a", 0.95, "adam"),
                                    ("r2", "search-a", 0.85, "adam"),
                                    ("r3", "search-b", 0.99, "adam"),
                                    ("r4", "search-b", 0.97, "sgd")]:
            runs[name] = self.new_run(exp, "--name", name)
            self.run_ok("metrics", "log", runs[name], "acc", str(acc))
            self.run_ok("params", "log", runs[name], "opt", opt)
        flt = "metrics.acc > 0.9 AND params.opt = 'adam'"
        body = self.run_json("runs", "search", "search-a", "search-b", "--filter", flt,
                             "--order-by", "metrics.acc DESC")
        self.assertEqual([r["info"]["run_name"] for r in body["runs"]], ["r3", "r1"])
        rows = table(self.run_ok("runs", "search", a, "search-b", "--filter", flt,
                                 "--order-by", "metrics.acc ASC"))
        self.assertEqual(rows[0][:3], ["RUN_ID", "NAME", "EXPERIMENT"])
        self.assertEqual([r[1] for r in rows[1:]], ["r1", "r3"])
        body = self.run_json("runs", "search", "search-a", "search-b",
                             "--filter", "metrics.acc > 0.9 OR params.opt = 'sgd'",
                             "--order-by", "params.opt DESC", "--order-by", "metrics.acc",
                             "--max", "2")
        self.assertEqual([r["info"]["run_name"] for r in body["runs"]], ["r4", "r1"])
        err = self.run_fail(1, "runs", "search", "search-a", "--filter", "metrics.acc >> 0.9")
        self.assertRegex(err, r"^cairn: bad_request \(400\): .*position 13\b")
        err = self.run_fail(1, "runs", "search", "search-a", "--order-by", "metrics.acc UP")
        self.assertRegex(err, r"^cairn: bad_request \(400\): ")

    def test_runs_paging(self):
        """More runs than one page of search_runs (1000): every one, once, in order."""
        eid = self.new_experiment("many-runs")
        ids = [self.call("create_run", {"experiment_id": eid, "start_time": 1000 + i})
               ["run"]["info"]["run_id"] for i in range(1003)]
        body = self.run_json("runs", "list", "many-runs")
        self.assertEqual([r["info"]["run_id"] for r in body["runs"]], ids[::-1])
        body = self.run_json("runs", "list", "many-runs", "--max", "1001")
        self.assertEqual([r["info"]["run_id"] for r in body["runs"]], ids[::-1][:1001])
        out = self.run_ok("runs", "search", "many-runs", "--max", "5")
        self.assertEqual([r[0] for r in table(out)[1:6]], ids[::-1][:5])
        self.assertEqual(out.splitlines()[-1], "(stopped at --max 5)")

    def test_metric_history(self):
        run = self.new_run("0")
        n = 30000  # more than one page of get_metric_history (25000)
        self.call("log_batch", {"run_id": run, "metrics": [
            {"key": "loss", "value": 1.0 / (i + 1), "timestamp": 1700000000000 + i, "step": i}
            for i in range(n)]})
        body = self.run_json("metrics", "history", run, "loss")
        self.assertEqual(len(body["metrics"]), n)
        self.assertEqual([m["step"] for m in body["metrics"]], list(range(n)))
        self.assertEqual(body["metrics"][7], {"key": "loss", "value": 1.0 / 8,
                                              "timestamp": 1700000000007, "step": 7})
        body = self.run_json("metrics", "history", run, "loss", "--max", "25003")
        self.assertEqual([m["step"] for m in body["metrics"]], list(range(25003)))
        out = self.run_ok("metrics", "history", run, "loss", "--max", "3")
        self.assertEqual(out.splitlines(), [
            "STEP  TIMESTAMP                VALUE",
            "0     2023-11-14 22:13:20.000  1.0",
            "1     2023-11-14 22:13:20.001  0.5",
            "2     2023-11-14 22:13:20.002  0.3333333333333333",
            "(stopped at --max 3)"])
        self.run_ok("metrics", "log", run, "acc", "inf", "--step", "-3")
        self.assertEqual(self.run_json("metrics", "history", run, "acc")["metrics"][0]
                         ["value"], "Infinity")
        self.assertEqual(self.run_json("metrics", "history", run, "nothing"), {"metrics": []})
        self.assertEqual(self.run_ok("metrics", "history", run, "nothing"),
                         "STEP  TIMESTAMP  VALUE\n")
        err = self.run_fail(1, "metrics", "history", "feedface", "loss")
        self.assertRegex(err, r"^cairn: not_found \(404\): ")


class Artifacts(CliBase):
    def setUp(self):
        if "artifacts" not in self.services:
            self.skipTest("cairnd has no 'artifacts' service yet (the storage plugin's "
                          "artifacts role is landing separately)")
        self.run_id = self.new_run("0")
        self.dir = tempfile.mkdtemp(dir=self.tmp)

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_round_trip_20_mib(self):
        data = os.urandom(20 * MiB + 12345)
        src = self.write("model.bin", data)
        out = self.run_ok("artifacts", "upload", self.run_id, src, "models/")
        self.assertRegex(out, rf"^uploaded {re.escape(src)} to run {self.run_id} as "
                              rf"models/model.bin \(20\.0 MiB, sha256 "
                              rf"{sha256_hex(data)}\)\n$")
        dst = os.path.join(self.dir, "back.bin")
        body = self.run_json("artifacts", "download", self.run_id, "models/model.bin", dst)
        self.assertEqual(body, {"path": "models/model.bin", "file": dst, "size": len(data),
                                "hash": sha256_hex(data)})
        with open(dst, "rb") as f:
            self.assertTrue(f.read() == data, "the downloaded bytes differ")
        self.assertEqual(sorted(os.listdir(self.dir)), ["back.bin", "model.bin"],
                         "no temporary file left")
        mask = os.umask(0)
        os.umask(mask)
        self.assertEqual(os.stat(dst).st_mode & 0o777, 0o666 & ~mask)

    def test_progress(self):
        data = os.urandom(9 * MiB)
        src = self.write("p.bin", data)
        dst = os.path.join(self.dir, "p2.bin")
        for args in [["upload", self.run_id, src], ["download", self.run_id, "p.bin", dst]]:
            r = cli(self.k.endpoint, "artifacts", *args, "--progress", binary=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            err = r.stderr.decode()
            self.assertRegex(err, r"^\r\[=+>? *\] +\d+\.\d%  [\d.]+ MiB / 9\.0 MiB  ")
            self.assertRegex(err, r"\r\[=+\] 100\.0%  9\.0 MiB / 9\.0 MiB  [\d.]+ MiB/s +\n$")
            self.assertNotIn("\n", err[:-1], "one line, redrawn")
        # not a terminal, no --progress: nothing on stderr
        self.run_ok("artifacts", "download", self.run_id, "p.bin", dst)

    def test_chunk_boundaries(self):
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK]:
            data = os.urandom(size)
            src = self.write(f"b{size}", data)
            body = self.run_json("artifacts", "upload", self.run_id, src, f"sizes/{size}.bin")
            self.assertEqual(body, {"artifact": {"path": f"sizes/{size}.bin", "size": size,
                                                 "hash": sha256_hex(data),
                                                 "hash_alg": "sha256"}})
            out = self.run_ok("artifacts", "download", self.run_id, f"sizes/{size}.bin", "-",
                              binary=True)
            self.assertTrue(out == data, f"{size} bytes")

    def test_default_names_and_stdin(self):
        self.run_ok("artifacts", "upload", self.run_id, self.write("notes.txt", b"hi\n"))
        self.run_ok("artifacts", "upload", self.run_id, "-", "logs/stdin.log",
                    stdin=b"from stdin", binary=True)
        self.run_ok("artifacts", "upload", self.run_id, self.write("x", b"x"), "renamed.txt")
        out_dir = os.path.join(self.dir, "out")
        os.mkdir(out_dir)
        self.run_ok("artifacts", "download", self.run_id, "logs/stdin.log", cwd=out_dir)
        self.run_ok("artifacts", "download", self.run_id, "notes.txt", out_dir)
        self.run_ok("artifacts", "download", self.run_id, "renamed.txt", out_dir + "/")
        self.assertEqual(sorted(os.listdir(out_dir)), ["notes.txt", "renamed.txt", "stdin.log"])
        with open(os.path.join(out_dir, "stdin.log"), "rb") as f:
            self.assertEqual(f.read(), b"from stdin")

    def test_list(self):
        for path, data in [("a.txt", b"a"), ("d/b.txt", b"bb"), ("d/e/c.bin", b"c" * 3000)]:
            self.run_ok("artifacts", "upload", self.run_id, self.write("f", data), path)
        self.assertEqual(table(self.run_ok("artifacts", "list", self.run_id)),
                         [["PATH", "SIZE"], ["a.txt", "1 B"], ["d/", "-"]])
        self.assertEqual(table(self.run_ok("artifacts", "list", self.run_id, "d")),
                         [["PATH", "SIZE"], ["d/b.txt", "2 B"], ["d/e/", "-"]])
        body = self.run_json("artifacts", "list", self.run_id, "d/e")
        self.assertTrue(body["root_uri"].endswith(f"{self.run_id}/artifacts"), body)
        self.assertEqual(body["files"], [{"path": "d/e/c.bin", "is_dir": False,
                                          "file_size": 3000}])
        body = self.run_json("artifacts", "list", self.run_id, "--max", "1")
        self.assertEqual(len(body["files"]), 1)
        self.assertEqual(self.run_json("artifacts", "list", self.new_run("0"))["files"], [])

    def test_errors(self):
        err = self.run_fail(1, "artifacts", "download", self.run_id, "missing.bin",
                            os.path.join(self.dir, "m"))
        self.assertRegex(err, r"^cairn: not_found \(404\): .*missing\.bin")
        self.assertEqual(os.listdir(self.dir), [], "nothing written for a failed download")
        src = self.write("f", b"data")
        err = self.run_fail(1, "artifacts", "upload", "feedface", src)
        self.assertRegex(err, r"^cairn: not_found \(404\): ")
        err = self.run_fail(1, "artifacts", "list", "feedface")
        self.assertRegex(err, r"^cairn: not_found \(404\): ")
        err = self.run_fail(1, "artifacts", "upload", self.run_id, src, "../escape")
        self.assertRegex(err, r"^cairn: bad_request \(400\): ")
        err = self.run_fail(2, "artifacts", "upload", self.run_id,
                            os.path.join(self.dir, "absent"))
        self.assertRegex(err, r"^cairn: cannot open '.*absent': No such file")
        err = self.run_fail(2, "artifacts", "upload", self.run_id, self.dir)
        self.assertIn("is a directory", err)
        err = self.run_fail(2, "artifacts", "upload", self.run_id, "-")
        self.assertIn("needs a PATH", err)


class FakeKernel(cairn_harness.FakeKernel):
    """A fake kernel answering reply(svc, verb, body) -> (st, reply body) and
    recording every request body."""

    def __init__(self, reply):
        super().__init__(self._answer)
        self.seen = []
        self._reply = reply

    def _answer(self, h, body):
        b = msgpack.unpackb(body) if body else None
        self.seen.append((h["svc"], h["verb"], b))
        st, out = self._reply(h["svc"], h["verb"], b)
        if st >= 400:
            return st, {"code": "bad", "err": out}, b""
        return st, {}, b"" if out is None else msgpack.packb(out)


class Protocol(unittest.TestCase):
    """The chunks the CLI sends, and replies a healthy server never gives."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cairn-cli-fake-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def test_upload_chunks(self):
        data = os.urandom(2 * CHUNK + 100)

        def reply(svc, verb, b):
            got = sum(len(x[2]["data"]) for x in fake.seen)
            if b["done"]:
                return 200, {"artifact": {"path": b["path"], "size": got,
                                          "hash": sha256_hex(data), "hash_alg": "sha256"}}
            return 200, {"upload_id": "u1", "offset": got}

        src = os.path.join(self.dir, "f")
        with open(src, "wb") as f:
            f.write(data)
        with FakeKernel(reply) as fake:
            r = cli(fake.endpoint, "--json", "artifacts", "upload", "r1", src, "a/f")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([(s, v) for s, v, _ in fake.seen], [("artifacts", "put_artifact")] * 3)
        bodies = [b for _, _, b in fake.seen]
        self.assertEqual([len(b["data"]) for b in bodies], [CHUNK, CHUNK, 100])
        self.assertEqual([b["offset"] for b in bodies], [0, CHUNK, 2 * CHUNK])
        self.assertEqual([b["done"] for b in bodies], [False, False, True])
        self.assertEqual([b.get("upload_id") for b in bodies], [None, "u1", "u1"])
        self.assertEqual({(b["run_id"], b["path"]) for b in bodies}, {("r1", "a/f")})
        self.assertEqual(b"".join(b["data"] for b in bodies), data)

    def test_upload_hash_mismatch(self):
        def reply(svc, verb, b):
            return 200, {"artifact": {"path": b["path"], "size": 3, "hash": "0" * 64,
                                      "hash_alg": "sha256"}}

        src = os.path.join(self.dir, "f")
        with open(src, "wb") as f:
            f.write(b"abc")
        with FakeKernel(reply) as fake:
            r = cli(fake.endpoint, "artifacts", "upload", "r1", src)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn(f"the server stored 3 bytes with hash {'0' * 64}, but 3 bytes with "
                      f"hash {sha256_hex(b'abc')} were sent", r.stderr)

    def test_upload_to_a_server_older_than_sha256(self):
        """A server that names no hash_alg (or another) hashes with BLAKE2b:
        the SDK cannot check the upload against its SHA-256 and says why."""
        for extra in ({}, {"hash_alg": "blake2b"}):
            def reply(svc, verb, b, extra=extra):
                return 200, {"artifact": {"path": b["path"], "size": 3,
                                          "hash": blake2b_hex(b"abc"), **extra}}

            src = os.path.join(self.dir, "f")
            with open(src, "wb") as f:
                f.write(b"abc")
            with FakeKernel(reply) as fake:
                r = cli(fake.endpoint, "artifacts", "upload", "r1", src)
            self.assertNotEqual(r.returncode, 0, r.stderr)
            self.assertIn("the server is too old: it hashes artifacts with blake2b",
                          r.stderr)

    def test_download_from_a_server_older_than_sha256(self):
        """No hash_alg: the bytes are checked against their BLAKE2b-256."""
        data = os.urandom(CHUNK + 10)

        def reply(svc, verb, b):
            off = b["offset"]
            part = data[off:off + b["length"]]
            return 200, {"offset": off, "size": len(data), "hash": blake2b_hex(data),
                         "done": off + len(part) == len(data), "data": part}

        dst = os.path.join(self.dir, "old.bin")
        with FakeKernel(reply) as fake:
            r = cli(fake.endpoint, "--json", "artifacts", "download", "r1", "f.bin", dst)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(dst, "rb") as f:
            self.assertTrue(f.read() == data, "the downloaded bytes differ")

    def test_download_corrupt(self):
        data = os.urandom(CHUNK + 10)

        def reply(svc, verb, b):
            off = b["offset"]
            part = data[off:off + b["length"]]
            if off > 0:
                part = bytes([part[0] ^ 0xFF]) + part[1:]  # damaged on the way
            return 200, {"offset": off, "size": len(data), "hash": blake2b_hex(data),
                         "done": off + len(part) == len(data), "data": part}

        dst = os.path.join(self.dir, "out.bin")
        with FakeKernel(reply) as fake:
            r = cli(fake.endpoint, "artifacts", "download", "r1", "f.bin", dst)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertRegex(r.stderr, r"^cairn: 'f\.bin' arrived corrupt: its bytes hash to "
                                   r"[0-9a-f]{64}, the server says [0-9a-f]{64}; nothing was "
                                   r"written\n$")
        self.assertEqual(os.listdir(self.dir), [])
        self.assertEqual([b["length"] for _, _, b in fake.seen], [CHUNK, CHUNK])
        self.assertEqual([b["offset"] for _, _, b in fake.seen], [0, CHUNK])

    def test_download_changed_midway(self):
        def reply(svc, verb, b):
            h = "1" * 64 if b["offset"] == 0 else "2" * 64
            return 200, {"offset": b["offset"], "size": 8, "hash": h, "done": False,
                         "data": b"abcd"}

        dst = os.path.join(self.dir, "out.bin")
        with FakeKernel(reply) as fake:
            r = cli(fake.endpoint, "artifacts", "download", "r1", "f.bin", dst)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("changed while it was being downloaded", r.stderr)
        self.assertEqual(os.listdir(self.dir), [])

    def test_paging_follows_tokens(self):
        pages = {None: (["a", "b"], "t1"), "t1": (["c"], "t2"), "t2": (["d", "e"], None)}

        def reply(svc, verb, b):
            names, nxt = pages[b.get("page_token")]
            names = names[:b["max_results"]]
            out = {"experiments": [{"experiment_id": n, "name": n} for n in names]}
            if nxt:
                out["next_page_token"] = nxt
            return 200, out

        with FakeKernel(reply) as fake:
            r = cli(fake.endpoint, "--json", "experiments", "list")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([e["name"] for e in json.loads(r.stdout)["experiments"]],
                             ["a", "b", "c", "d", "e"])
            self.assertEqual([b.get("page_token") for _, _, b in fake.seen],
                             [None, "t1", "t2"])
            fake.seen.clear()
            r = cli(fake.endpoint, "--json", "experiments", "list", "--max", "3")
            self.assertEqual([e["name"] for e in json.loads(r.stdout)["experiments"]],
                             ["a", "b", "c"])
            self.assertEqual([b["max_results"] for _, _, b in fake.seen], [3, 1])


if __name__ == "__main__":
    unittest.main()
