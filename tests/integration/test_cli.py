"""The `cairn` CLI: commands, JSON <-> msgpack, human output, exit statuses.

Runs the built binary against a private cairnd (cairn_harness.Kernel), and,
for replies cairnd would never send (binary, ext, huge integers, float32,
NaN, non-string keys, malformed bodies, an unhealthy kernel), against a fake
kernel: a ROUTER socket in a thread that answers with crafted frames.
Every subprocess and every wait is bounded.
"""
import json
import math
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import msgpack  # noqa: E402

from cairn_harness import BIN, DEADLINE, FakeKernel, Kernel, free_port  # noqa: E402

CLI = os.path.join(BIN, "cairn")


def cli(endpoint, *args, stdin=None, timeout=DEADLINE):
    """Run cairn --endpoint ENDPOINT ARGS; returns the CompletedProcess (text)."""
    env = dict(os.environ)
    env.pop("CAIRN_ENDPOINT", None)
    env.pop("CAIRN_TOKEN", None)
    return subprocess.run([CLI, "--endpoint", endpoint, *args], input=stdin,
                          capture_output=True, text=True, encoding="utf-8",
                          timeout=timeout, env=env)


def assert_same_json(test, got, want, path="$"):
    """Equal values of equal JSON types (1 is not 1.0, -0.0 is not 0.0)."""
    test.assertIs(type(got), type(want), f"{path}: {got!r} vs {want!r}")
    if isinstance(want, dict):
        test.assertEqual(list(got), list(want), f"{path}: keys (and their order)")
        for k in want:
            assert_same_json(test, got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        test.assertEqual(len(got), len(want), f"{path}: length")
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_json(test, g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        test.assertEqual(got, want, path)
        test.assertEqual(math.copysign(1, got), math.copysign(1, want), f"{path}: sign")
    else:
        test.assertEqual(got, want, path)


NESTED = {
    "int": 42, "neg": -7, "zero": 0, "big": 2**63 - 1, "small": -2**63,
    "float": 0.1, "third": 1 / 3, "whole": 100.0, "tiny": 5e-324, "huge": 1.7976931348623157e308,
    "negzero": -0.0, "exp": 1e20,
    "text": "héllo wörld ☃ 𝄞 日本", "escapes": "quote \" backslash \\ tab \t nl \n nul \u0000",
    "empty": "", "null": None, "yes": True, "no": False,
    "list": [1, [2, [3, [4, []]]], {"a": {"b": {"c": [None, True, 1.5]}}}, "x"],
    "map": {"z": 1, "a": 2, "m": {}},
}


class Cli(unittest.TestCase):
    """Against a real cairnd with the echo plugin."""

    @classmethod
    def setUpClass(cls):
        cls.k = Kernel().start()

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def run_ok(self, *args, stdin=None):
        r = cli(self.k.endpoint, *args, stdin=stdin)
        self.assertEqual(r.returncode, 0, f"cairn {args}: {r.stderr}")
        self.assertEqual(r.stderr, "")
        return r.stdout

    def test_ping(self):
        out = self.run_ok("ping")
        self.assertRegex(out, r"^pong from cairnd \d+\.\d+\.\d+ \(\d+\.\d ms\)\n$")

    def test_ping_json(self):
        body = json.loads(self.run_ok("--json", "ping"))
        self.assertIs(body["pong"], True)
        self.assertIsInstance(body["version"], str)

    def test_services_table(self):
        lines = self.run_ok("services").splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "PLUGIN", "MODE", "STATE", "VERBS"])
        rows = {line.split()[0]: line for line in lines[1:]}
        self.assertIn("echo", rows)
        self.assertRegex(rows["echo"], r"^echo\s+echo\s+inproc\s+up\s+.*\becho\b.*\binfo\b")
        self.assertRegex(rows["sys"], r"ping, services, health, metrics$")

    def test_services_json(self):
        body = json.loads(self.run_ok("services", "--json"))
        names = [s["name"] for s in body["services"]]
        self.assertIn("echo", names)

    def test_health_table(self):
        lines = self.run_ok("health").splitlines()
        self.assertEqual(lines[0].split(),
                         ["NAME", "MODE", "STATE", "RESTARTS", "PID", "INFLIGHT", "ERROR"])
        self.assertRegex(lines[1], r"^echo\s+inproc\s+up\s+0\s+-\s+0\s+-$")
        self.assertEqual(lines[-1], "ok: the 1 plugin is up")

    def test_health_json(self):
        out = self.run_ok("--json", "health")
        self.assertEqual(out.count("\n"), 1, "compact: one line")
        body = json.loads(out)
        self.assertIs(body["ok"], True)
        self.assertEqual([p["name"] for p in body["plugins"]], ["echo"])

    def test_call_round_trip(self):
        out = self.run_ok("call", "echo", "echo", json.dumps(NESTED))
        assert_same_json(self, json.loads(out), NESTED)

    def test_call_pretty_and_compact(self):
        out = self.run_ok("call", "echo", "echo", '{"a": [1, {"b": 0.1}]}')
        self.assertEqual(out, '{\n  "a": [\n    1,\n    {\n      "b": 0.1\n    }\n  ]\n}\n')
        out = self.run_ok("--json", "call", "echo", "echo", '{"a": [1, {"b": 0.1}]}')
        self.assertEqual(out, '{"a":[1,{"b":0.1}]}\n')

    def test_call_scalars_and_nil(self):
        self.assertEqual(self.run_ok("call", "echo", "echo"), "null\n")
        self.assertEqual(self.run_ok("call", "echo", "echo", "-5"), "-5\n")
        self.assertEqual(self.run_ok("call", "echo", "echo", '"s"'), '"s"\n')
        self.assertEqual(self.run_ok("call", "echo", "echo", "[1.0, 2.5, 1e300]"),
                         "[\n  1.0,\n  2.5,\n  1e300\n]\n")

    def test_call_stdin(self):
        out = self.run_ok("call", "echo", "echo", "-", stdin=json.dumps(NESTED, indent=4))
        assert_same_json(self, json.loads(out), NESTED)

    def test_call_binary(self):
        body = {"$bin": "AAEC/w=="}
        out = self.run_ok("--json", "call", "echo", "echo", json.dumps([body, {"$bin": ""}]))
        self.assertEqual(json.loads(out), [body, {"$bin": ""}])

    def test_nesting_limit(self):
        # cairnd reads msgpack nested at most 32 deep (cairn_msgpack_check):
        # the CLI sends that much and refuses a deeper body itself
        deep = "[" * 31 + '{"x": {"$bin": "AA=="}}' + "]" * 31
        out = self.run_ok("--json", "call", "echo", "echo", deep)
        self.assertEqual(json.loads(out), json.loads(deep))
        r = cli(self.k.endpoint, "call", "echo", "echo", "[" * 33 + "]" * 33)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertIn("nested deeper than 32 levels", r.stderr)

    def test_options_anywhere_and_equals(self):
        out = self.run_ok("call", "echo", "info", "--ws=lab", "--json")
        self.assertEqual(json.loads(out)["workspace"], "lab")
        out = self.run_ok("--ws", "lab2", "call", "echo", "info")
        self.assertEqual(json.loads(out)["workspace"], "lab2")

    def test_bad_json(self):
        r = cli(self.k.endpoint, "call", "echo", "echo", '{"a": [1, 2,}')
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stdout, "")
        self.assertRegex(r.stderr, r"^cairn: bad JSON body \(argument\) at line 1, column 13 ")
        r = cli(self.k.endpoint, "call", "echo", "echo", "-", stdin='{\n "a": tru\n}')
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"^cairn: bad JSON body \(stdin\) at line 2, column \d+")
        for bad in ['{"a": 1, "a": 2}', "", "[1] [2]", '{"$bin": "not base64!"}']:
            r = cli(self.k.endpoint, "call", "echo", "echo", bad)
            self.assertEqual(r.returncode, 2, f"{bad!r}: {r.stderr}")

    def test_unknown_verb(self):
        r = cli(self.k.endpoint, "call", "echo", "nope")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertRegex(r.stderr, r"^cairn: no_verb \(404\): .*nope")
        r = cli(self.k.endpoint, "call", "nosuch", "verb")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"^cairn: no_service \(404\): ")

    def test_bad_request(self):
        r = cli(self.k.endpoint, "call", "echo", "sleep", '{"ms": "soon"}')
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"^cairn: bad_request \(400\): .*ms")

    def test_kernel_deadline(self):
        r = cli(self.k.endpoint, "--ttl", "300", "call", "echo", "sleep", '{"ms": 5000}')
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"^cairn: deadline_exceeded \(504\): ")

    def test_unreachable(self):
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        t0 = time.monotonic()
        r = cli(endpoint, "--ttl", "500", "ping", timeout=15)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertIn(f"is cairnd running at {endpoint}?", r.stderr)

    def test_usage_errors(self):
        for args in [[], ["frobnicate"], ["--frob", "ping"], ["ping", "extra"],
                     ["call", "echo"], ["--ttl", "0", "ping"], ["--ttl", "soon", "ping"],
                     ["--json=yes", "ping"], ["ping", "--ws"]]:
            r = cli(self.k.endpoint, *args)
            self.assertEqual(r.returncode, 2, f"{args}: {r.stderr}")
            self.assertEqual(r.stdout, "")
            self.assertRegex(r.stderr, r"^cairn: .*\nTry 'cairn --help'\.\n$", args)

    def test_bad_endpoint(self):
        r = cli("not-an-endpoint", "ping")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("not-an-endpoint", r.stderr)

    def test_help_and_version(self):
        for args in [["help"], ["--help"], ["-h"], ["ping", "--help"]]:
            out = self.run_ok(*args)
            self.assertIn("usage: cairn", out)
            self.assertIn("Exit status", out)
            for code in "01234":
                self.assertRegex(out, rf"\n  {code}  ")
        self.assertRegex(self.run_ok("--version"), r"^cairn \d+\.\d+\.\d+\n$")

    def test_endpoint_from_environment(self):
        env = dict(os.environ, CAIRN_ENDPOINT=self.k.endpoint)
        r = subprocess.run([CLI, "--json", "ping"], capture_output=True, text=True,
                           timeout=DEADLINE, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIs(json.loads(r.stdout)["pong"], True)


def raw_map(*pairs):
    """A msgpack map from (key bytes, value bytes) pairs, both already packed."""
    assert len(pairs) < 16
    return bytes([0x80 | len(pairs)]) + b"".join(k + v for k, v in pairs)


class CliDecoding(unittest.TestCase):
    """msgpack the kernel's echo cannot produce from JSON, and odd replies."""

    def fake(self, body=b"", st=200, **extra):
        return FakeKernel(lambda h, b: (st, extra, body))

    def test_exotic_msgpack(self):
        p = msgpack.packb
        body = raw_map(
            (p("bin"), p(b"\x00\x01\xfe\xff")),
            (p("ext"), p(msgpack.ExtType(5, b"ab"))),
            (p("u64"), p(2**64 - 1)),
            (p("f32"), msgpack.packb(0.1, use_single_float=True)),
            (p("nan"), p(float("nan"))),
            (p("inf"), p(float("-inf"))),
            (p(7), p("int key")),
            (p(True), p("bool key")),
            (p(None), p("nil key")),
            (p([1, 2]), p("array key")),
            (p("bad utf8"), b"\xa2\xff\xfe"),
            (b"\xa2\xff\xfe", p("bad utf8 key")),
        )
        with self.fake(body) as k:
            r = cli(k.endpoint, "--json", "call", "x", "y")
        self.assertEqual(r.returncode, 0, r.stderr)
        assert_same_json(self, json.loads(r.stdout), {
            "bin": {"$bin": "AAH+/w=="},
            "ext": {"$ext": 5, "data": "YWI="},
            "u64": "18446744073709551615",
            "f32": 0.1,
            "nan": "NaN",
            "inf": "-Infinity",
            "7": "int key",
            "true": "bool key",
            "null": "nil key",
            "[1,2]": "array key",
            "bad utf8": {"$bin": "//4="},
            '{"$bin":"//4="}': "bad utf8 key",
        })

    def test_request_is_msgpack_of_the_json(self):
        seen = []

        def reply(h, body):
            seen.append((h, body))
            return 200, {}, b""

        with FakeKernel(reply) as k:
            r = cli(k.endpoint, "--token", "t0k", "--ws", "w", "--ttl", "1234",
                    "call", "svc", "verb", '{"a": [1, -2, 2.5, "s", null, {"$bin": "AP8="}]}')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "null\n")
        h, body = seen[0]
        self.assertEqual((h["svc"], h["verb"], h["tok"], h["ws"], h["ttl"]),
                         ("svc", "verb", "t0k", "w", 1234))
        self.assertEqual(msgpack.unpackb(body), {"a": [1, -2, 2.5, "s", None, b"\x00\xff"]})

    def test_malformed_body(self):
        for bad in [b"\xc1", b"\x92\x01", b"\x01\x02"]:
            with self.fake(bad) as k:
                r = cli(k.endpoint, "call", "x", "y")
            self.assertEqual(r.returncode, 4, f"{bad!r}: {r.stderr}")
            self.assertRegex(r.stderr, r"^cairn: the reply body \(\d+ bytes?\): not (valid msgpack|one msgpack value)")

    def test_server_error(self):
        with self.fake(st=503, code="unavailable", err="the plugin 'x' is restarting") as k:
            r = cli(k.endpoint, "--json", "call", "x", "y")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr, "cairn: unavailable (503): the plugin 'x' is restarting\n")

    def test_unhealthy(self):
        body = msgpack.packb({"ok": False, "plugins": [
            {"name": "a", "mode": "process", "state": "restarting", "restarts": 3, "pid": 0,
             "inflight": 0, "error": "exited with\nstatus 1"},
            {"name": "bb", "mode": "inproc", "state": "up", "restarts": 0, "pid": 0,
             "inflight": 2, "error": ""}]})
        with self.fake(body) as k:
            r = cli(k.endpoint, "health")
            rj = cli(k.endpoint, "--json", "health")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "")
        self.assertEqual(r.stdout.splitlines(), [
            "NAME  MODE     STATE       RESTARTS  PID  INFLIGHT  ERROR",
            "a     process  restarting  3         -    0         exited with status 1",
            "bb    inproc   up          0         -    2         -",
            "NOT OK: 1 of 2 plugins not up",
        ])
        self.assertEqual(rj.returncode, 1)
        self.assertIs(json.loads(rj.stdout)["ok"], False)

    def test_unexpected_shape(self):
        with self.fake(msgpack.packb({"nothing": "here"})) as k:
            r = cli(k.endpoint, "services")
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("no 'services' list", r.stderr)

    def test_float_output(self):
        values = [0.1, 0.2, 1 / 3, 100.0, 1e16, 1e17, 123456.789, 5e-324, -2.5e-5]
        with self.fake(msgpack.packb(values)) as k:
            r = cli(k.endpoint, "--json", "call", "x", "y")
        self.assertEqual(r.returncode, 0, r.stderr)
        assert_same_json(self, json.loads(r.stdout), values)
        with self.fake(msgpack.packb([0.1, 100.0, 2.5])) as k:
            r = cli(k.endpoint, "--json", "call", "x", "y")
        self.assertEqual(r.stdout, "[0.1,100.0,2.5]\n")


if __name__ == "__main__":
    unittest.main()
