"""The Python SDK against a private cairnd: calls, values, error mapping,
local timeouts and CAIRN_ENDPOINT."""
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CAIRN_SOURCE_DIR") or os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
sys.path.insert(0, HERE)

import cairn  # noqa: E402
import cairn_harness  # noqa: E402

PY = "/usr/bin/python3"


class PythonSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = cairn_harness.Kernel().start()
        cls.c = cairn.Client(cls.k.endpoint, ttl_ms=10000)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    def test_ten_line_script(self):
        script = (
            "import sys; sys.path.insert(0, sys.argv[1])\n"
            "import cairn\n"
            "c = cairn.Client()\n"
            "print(c.call('sys', 'ping')['pong'])\n"
            "print(c.call('echo', 'echo', {'x': 1}))\n"
            "try:\n"
            "    c.call('echo', 'nope')\n"
            "except cairn.CairnError as e:\n"
            "    print(e.status, e.code)\n"
            "c.close()\n")
        env = dict(os.environ, CAIRN_ENDPOINT=self.k.endpoint)
        out = subprocess.run([PY, "-c", script, os.path.join(SOURCE, "sdk", "python")],
                             env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.splitlines(), ["True", "{'x': 1}", "404 no_verb"])

    def test_ping(self):
        r = self.c.call("sys", "ping")
        self.assertIs(r["pong"], True)
        self.assertIsInstance(r["version"], str)

    def test_round_trip(self):
        values = [
            None, True, False, 0, -1, 2**64 - 1, -2**63, 1.5, -0.0, 1e300,
            "", "héllo wörld ✓ 雪", b"", b"\x00\xff\x80raw", [], {},
            {"nested": {"list": [1, [2, [3, {"deep": b"\x01"}]]], "u": "ünï"},
             "big": 2**63, "neg": -2**31, "f": 3.141592653589793},
            [None, [None], {"k": None}],
            "x" * 100000,
        ]
        for v in values:
            with self.subTest(v=repr(v)[:60]):
                got = self.c.call("echo", "echo", v)
                self.assertEqual(got, v)
                self.assertEqual(type(got), type(v))
        # bytes stay bytes, str stays str, int keys survive
        self.assertEqual(self.c.call("echo", "echo", {1: "a", b"k": "b"}), {1: "a", b"k": "b"})

    def test_no_verb(self):
        with self.assertRaises(cairn.NotFound) as cm:
            self.c.call("echo", "no_such_verb")
        e = cm.exception
        self.assertEqual((e.status, e.code), (404, "no_verb"))
        self.assertIn("no_such_verb", str(e))
        self.assertEqual(str(e), e.message)

    def test_no_service(self):
        with self.assertRaises(cairn.NotFound) as cm:
            self.c.call("no_such_service", "echo")
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "no_service"))

    def test_bad_field(self):
        with self.assertRaises(cairn.BadRequest) as cm:
            self.c.call("echo", "sleep", {"ms": "x"})
        e = cm.exception
        self.assertEqual((e.status, e.code), (400, "bad_request"))
        self.assertIn("ms", e.message)

    def test_too_large(self):
        with self.assertRaises(cairn.TooLarge) as cm:
            self.c.call("echo", "small", {"data": "a" * 2048})
        self.assertEqual((cm.exception.status, cm.exception.code), (413, "too_large"))
        self.assertEqual(self.c.call("echo", "small", {"data": "a" * 100}), {"data": "a" * 100})

    def test_header_too_large(self):
        # A frame over the kernel's limit is malformed: 400 (PROTOCOL.md), code too_large.
        with cairn.Client(self.k.endpoint, token="t" * 70000, ttl_ms=5000) as c:
            with self.assertRaises(cairn.BadRequest) as cm:
                c.call("sys", "ping")
            self.assertEqual(cm.exception.code, "too_large")

    def test_forbidden(self):
        with self.assertRaises(cairn.Forbidden) as cm:
            self.c.call("echo", "crash")
        self.assertEqual((cm.exception.status, cm.exception.code), (403, "forbidden"))

    def test_kernel_deadline(self):
        t0 = time.monotonic()
        with self.assertRaises(cairn.DeadlineExceeded) as cm:
            self.c.call("echo", "sleep", {"ms": 2000}, ttl_ms=200)
        took = time.monotonic() - t0
        self.assertEqual((cm.exception.status, cm.exception.code), (504, "deadline_exceeded"))
        self.assertLess(took, 1.2)  # the kernel's 504, not the local timeout
        self.assertEqual(self.c.call("echo", "echo", "after"), "after")

    def test_error_classes(self):
        for st, cls in [(400, cairn.BadRequest), (401, cairn.Unauthenticated),
                        (403, cairn.Forbidden), (404, cairn.NotFound), (409, cairn.Conflict),
                        (413, cairn.TooLarge), (429, cairn.Overloaded),
                        (503, cairn.Unavailable), (504, cairn.DeadlineExceeded)]:
            e = cairn.error_for(st, "c", "m")
            self.assertIs(type(e), cls)
            self.assertIsInstance(e, cairn.CairnError)
            self.assertEqual((e.status, e.code, str(e)), (st, "c", "m"))
        for st in (402, 418, 500, 502):
            self.assertIs(type(cairn.error_for(st, None, "m")), cairn.CairnError)
        self.assertEqual(cairn.error_for(409).code, "conflict")
        with self.assertRaises(cairn.Unavailable):
            cairn.Reply(1, 503, "unavailable", "down").raise_for_status()
        r = cairn.Reply(1, 200, body={"a": 1})
        self.assertTrue(r.ok)
        self.assertIs(r.raise_for_status(), r)

    def test_local_timeout(self):
        ep = f"tcp://127.0.0.1:{cairn_harness.free_port()}"
        t0 = time.monotonic()
        with cairn.Client(ep, ttl_ms=500) as c:
            with self.assertRaises(cairn.DeadlineExceeded) as cm:
                c.call("sys", "ping")
            self.assertEqual(c.in_flight, 0)
        took = time.monotonic() - t0
        self.assertLess(took, 5.0)
        self.assertGreaterEqual(took, 0.5)
        e = cm.exception
        self.assertEqual((e.status, e.code), (504, "no_reply"))
        self.assertIn(ep, str(e))
        self.assertIn("is cairnd running", str(e))

    def test_env_endpoint(self):
        old = os.environ.get("CAIRN_ENDPOINT")
        os.environ["CAIRN_ENDPOINT"] = self.k.endpoint
        try:
            with cairn.Client(ttl_ms=5000) as c:
                self.assertEqual(c.endpoint, self.k.endpoint)
                self.assertIs(c.call("sys", "ping")["pong"], True)
            with cairn.Client("tcp://127.0.0.1:1") as c:
                self.assertEqual(c.endpoint, "tcp://127.0.0.1:1")  # an argument wins
        finally:
            if old is None:
                os.environ.pop("CAIRN_ENDPOINT", None)
            else:
                os.environ["CAIRN_ENDPOINT"] = old
        saved = os.environ.pop("CAIRN_ENDPOINT", None)
        try:
            with cairn.Client() as c:
                self.assertEqual(c.endpoint, "tcp://127.0.0.1:7780")
        finally:
            if saved is not None:
                os.environ["CAIRN_ENDPOINT"] = saved

    def test_workspace_header(self):
        with cairn.Client(self.k.endpoint, workspace="default", ttl_ms=5000) as c:
            self.assertEqual(c.call("echo", "info")["workspace"], "default")

    def test_closed_and_bad_args(self):
        c = cairn.Client(self.k.endpoint)
        c.close()
        c.close()  # twice is fine
        with self.assertRaises(ValueError):
            c.call("sys", "ping")
        with self.assertRaises(ValueError):
            cairn.Client(self.k.endpoint, ttl_ms=0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
