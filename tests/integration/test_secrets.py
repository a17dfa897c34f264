"""The secrets plugin (issue 13): a key vault. Values are sealed at rest
with XChaCha20-Poly1305 under a master key (a 0600 file in the state dir,
or an environment variable), bound to their workspace and name, never in
a file, a log or an error in the clear; rotate_master_key re-seals them
all, and a rotation cut short is finished at the next start."""
import json
import os
import secrets as pysecrets
import sqlite3
import sys
import unittest

import subprocess

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import BIN, DEADLINE, SOURCE, Kernel  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
import cairn  # noqa: E402
from cairn.secrets import Secrets  # noqa: E402

SERVICES = "  secrets:\n    plugin: secrets\n    mode: inproc\n"
# Auth on, with a cheap password hash: logins take milliseconds here.
AUTH_SERVICES = ("  auth:\n    plugin: auth\n    mode: inproc\n"
                 "    settings:\n      pwhash_ops: 1\n      pwhash_mem: 8MiB\n" + SERVICES)


def read(path):
    with open(path) as f:
        return f.read()


class Vault(unittest.TestCase):
    def setUp(self):
        self.k = Kernel(services=SERVICES).start()
        self.c = self.k.client()

    def tearDown(self):
        self.c.close()
        self.k.cleanup()

    def call(self, verb, body=None, **hdr):
        return self.c.call("secrets", verb, body, **hdr)

    def ok(self, verb, body=None, **hdr):
        h, b = self.call(verb, body, **hdr)
        self.assertLess(h["st"], 300, (verb, h))
        return b

    def restart(self):
        self.c.close()
        self.k.stop()
        self.k.start()
        self.c = self.k.client()

    def test_round_trip(self):
        h, b = self.call("set_secret", {"name": "db/password", "value": "hunter2"})
        self.assertEqual((h["st"], b["version"]), (201, 1))
        h, b = self.call("set_secret", {"name": "db/password", "value": "hunter3"})
        self.assertEqual((h["st"], b["version"]), (200, 2))
        self.assertEqual(self.ok("get_secret", {"name": "db/password"})["value"], "hunter3")
        raw = bytes(range(256))
        self.ok("set_secret", {"name": "blob", "value": raw})
        self.assertEqual(self.ok("get_secret", {"name": "blob"})["value"], raw)
        names = [s["name"] for s in self.ok("list_secrets")["secrets"]]
        self.assertEqual(names, ["blob", "db/password"])
        for s in self.ok("list_secrets")["secrets"]:
            self.assertNotIn("value", s)
        self.ok("delete_secret", {"name": "blob"})
        h, _ = self.call("get_secret", {"name": "blob"})
        self.assertEqual((h["st"], h["code"]), (404, "not_found"))
        self.assertEqual(self.call("delete_secret", {"name": "blob"})[0]["st"], 404)
        self.restart()  # the key file and the database outlive cairnd
        self.assertEqual(self.ok("get_secret", {"name": "db/password"})["value"], "hunter3")

    def test_paging(self):
        for i in range(5):
            self.ok("set_secret", {"name": f"k{i}", "value": "v"})
        b = self.ok("list_secrets", {"max_results": 2})
        got = [s["name"] for s in b["secrets"]]
        while "next_page_token" in b:
            b = self.ok("list_secrets", {"max_results": 2, "page_token": b["next_page_token"]})
            got += [s["name"] for s in b["secrets"]]
        self.assertEqual(got, [f"k{i}" for i in range(5)])

    def test_workspaces_are_apart(self):
        self.ok("set_secret", {"name": "token", "value": "for-a"}, ws="team-a")
        self.assertEqual(self.call("get_secret", {"name": "token"}, ws="team-b")[0]["st"], 404)
        self.assertEqual(self.ok("list_secrets", ws="team-b")["secrets"], [])
        self.assertEqual(self.ok("get_secret", {"name": "token"}, ws="team-a")["value"],
                         "for-a")

    def test_bad_input(self):
        for body, st in (({}, 400), ({"name": ""}, 400), ({"name": "a b", "value": "x"}, 400),
                         ({"name": "x" * 129, "value": "x"}, 400),
                         ({"name": "x"}, 400), ({"name": "x", "value": 5}, 400),
                         ({"name": 7, "value": "x"}, 400),
                         ({"name": "x", "value": "v" * (64 * 1024 + 1)}, 413)):
            h, _ = self.call("set_secret", body)
            self.assertEqual(h["st"], st, (str(body)[:60], h))
            self.assertTrue(h.get("err"))
        h, _ = self.call("set_secret", raw_body=b"\xc1")
        self.assertEqual(h["st"], 400)
        h, _ = self.call("list_secrets", {"max_results": 0})
        self.assertEqual(h["st"], 400)
        h, _ = self.call("get_secret", [1, 2])
        self.assertEqual(h["st"], 400)

    def test_nothing_in_the_clear(self):
        planted = "PLANTED-" + pysecrets.token_hex(16)
        self.ok("set_secret", {"name": "canary", "value": planted})
        self.ok("set_secret", {"name": "canary", "value": planted + "-2"})
        self.ok("rotate_master_key")
        self.assertEqual(self.ok("get_secret", {"name": "canary"})["value"], planted + "-2")
        h, _ = self.call("get_secret", {"name": "no-such"})
        self.assertNotIn(planted, h["err"])
        self.c.close()
        self.k.stop()  # the WAL checkpointed, every file final
        seen = 0
        for root, _, files in os.walk(self.k.tmp):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    data = fh.read()
                seen += 1
                self.assertNotIn(planted.encode(), data, f)
        self.assertGreaterEqual(seen, 3)  # the db, the key, the log at least
        key = os.path.join(self.k.state, "secrets.key")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        self.k.start()
        self.c = self.k.client()

    def test_rotation(self):
        self.ok("set_secret", {"name": "a", "value": "1"})
        self.ok("set_secret", {"name": "b", "value": "2"}, ws="other")
        key = os.path.join(self.k.state, "secrets.key")
        before = read(key)
        b = self.ok("rotate_master_key")
        self.assertEqual((b["key_id"], b["resealed"]), (2, 2))
        self.assertNotEqual(read(key), before)
        self.assertTrue(read(key).startswith("2 "))
        self.assertEqual(self.ok("get_secret", {"name": "a"})["value"], "1")
        self.assertEqual(self.ok("get_secret", {"name": "b"}, ws="other")["value"], "2")
        self.restart()
        self.assertEqual(self.ok("get_secret", {"name": "a"})["value"], "1")

    def test_rotation_cut_short_is_finished_at_start(self):
        self.ok("set_secret", {"name": "a", "value": "1"})
        self.c.close()
        self.k.stop()
        # What a crash after rotate's first step leaves: the next key file.
        nxt = os.path.join(self.k.state, "secrets.key.next")
        fd = os.open(nxt, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, f"2 {pysecrets.token_hex(32)}\n".encode())
        os.close(fd)
        self.k.start()
        self.c = self.k.client()
        self.assertEqual(self.ok("get_secret", {"name": "a"})["value"], "1")
        self.assertFalse(os.path.exists(nxt))
        self.assertTrue(read(os.path.join(self.k.state, "secrets.key")).startswith("2 "))

    def test_a_value_moved_to_another_row_does_not_open(self):
        self.ok("set_secret", {"name": "a", "value": "for a"})
        self.ok("set_secret", {"name": "b", "value": "for b"})
        db = sqlite3.connect(os.path.join(self.k.state, "secrets.db"), timeout=10)
        with db:
            sealed = db.execute("SELECT sealed FROM secrets WHERE name='a'").fetchone()[0]
            db.execute("UPDATE secrets SET sealed=? WHERE name='b'", (sealed,))
        db.close()
        h, _ = self.call("get_secret", {"name": "b"})
        self.assertEqual((h["st"], h["code"]), (500, "corrupt"))
        self.assertNotIn("for a", h["err"])


class Cli(unittest.TestCase):
    def test_cli(self):
        k = Kernel(services=SERVICES).start()
        try:
            def cli(*args, stdin=None, rc=0):
                env = {x: v for x, v in os.environ.items() if x != "CAIRN_TOKEN"}
                r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", k.endpoint,
                                    *args], input=stdin, capture_output=True, text=True,
                                   timeout=DEADLINE, env=env)
                self.assertEqual(r.returncode, rc, (args, r.stderr))
                return r.stdout
            cli("secrets", "set", "db/pw", stdin="hunter2\n")  # the newline is dropped
            self.assertEqual(cli("secrets", "get", "db/pw"), "hunter2")
            listed = cli("secrets", "list")
            self.assertIn("db/pw", listed)
            self.assertNotIn("hunter2", listed)
            cli("secrets", "delete", "db/pw")
            cli("secrets", "get", "db/pw", rc=1)
            # Bytes that are not UTF-8 come back as {"$bin": base64}.
            c = k.client()
            c.call("secrets", "set_secret", {"name": "raw", "value": b"\xff\x00\x01"})
            c.close()
            self.assertEqual(json.loads(cli("secrets", "get", "raw")), {"$bin": "/wAB"})
            got = json.loads(cli("--json", "secrets", "get", "raw"))
            self.assertEqual(got, {"value": {"$bin": "/wAB"}, "version": 1})
            self.assertEqual(json.loads(cli("--json", "secrets", "set", "t", stdin="v")),
                             {"name": "t", "version": 1})
            # list follows the pages (1000 a page): every name.
            for i in range(3):
                cli("secrets", "set", f"n{i}", stdin="x")
            listed = json.loads(cli("--json", "secrets", "list"))["secrets"]
            self.assertEqual([x["name"] for x in listed], ["n0", "n1", "n2", "raw", "t"])
            self.assertTrue(all("value" not in x for x in listed))
            self.assertIn("now seals 5 values", cli("secrets", "rotate-key"))
            self.assertEqual(json.loads(cli("--json", "secrets", "rotate-key")),
                             {"key_id": 3, "resealed": 5})
            self.assertEqual(cli("secrets", "get", "t"), "v")
            cli("secrets", "set", "big", stdin="x" * (64 * 1024 + 1), rc=1)  # 413
        finally:
            k.cleanup()
        # No cairnd there: exit status 3, not a server error.
        r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", k.endpoint,
                            "--ttl", "300", "secrets", "get", "x"],
                           capture_output=True, text=True, timeout=DEADLINE)
        self.assertEqual(r.returncode, 3, r.stderr)


class PythonSdk(unittest.TestCase):
    """cairn.Secrets against a cairnd with auth on: the owner's round trips,
    a Reader refused (403), the errors as CairnError subclasses."""

    def test_sdk(self):
        k = Kernel(services=AUTH_SERVICES, auth="auth").start()
        try:
            with open(os.path.join(k.state, "owner.token")) as f:
                owner = f.read().strip()
            with Secrets(endpoint=k.endpoint, token=owner) as s:
                self.assertEqual(s.set("db/pw", "hunter2"), 1)
                self.assertEqual(s.set("db/pw", "hunter3"), 2)
                self.assertEqual(s.get("db/pw"), "hunter3")
                self.assertEqual(s.get_versioned("db/pw"), {"value": "hunter3", "version": 2})
                s.set("raw", bytes(range(256)))
                self.assertEqual(s.get("raw"), bytes(range(256)))
                for i in range(5):
                    s.set(f"p/{i}", "v")
                names = [x["name"] for x in s.list(page_size=2)]
                self.assertEqual(names, ["db/pw"] + [f"p/{i}" for i in range(5)] + ["raw"])
                s.delete("p/4")
                with self.assertRaises(cairn.NotFound):
                    s.get("p/4")
                with self.assertRaises(cairn.NotFound):
                    s.delete("p/4")
                with self.assertRaises(cairn.TooLarge):
                    s.set("big", "x" * (64 * 1024 + 1))
                with self.assertRaises(cairn.BadRequest):
                    s.set("a b", "v")
                with self.assertRaises(TypeError):
                    s.set("n", 5)
                self.assertEqual(s.rotate_master_key(), {"key_id": 2, "resealed": 6})
                self.assertEqual(s.get("db/pw"), "hunter3")
                a = cairn.Auth(client=s.client)
                a.create_user("rita", "correct horse battery")
                a.assign_role("rita", "Reader")
            with cairn.Auth(endpoint=k.endpoint, token="") as anon:
                tok = anon.login("rita", "correct horse battery")
            with Secrets(endpoint=k.endpoint, token=tok) as rita:
                with self.assertRaises(cairn.Forbidden) as cm:
                    rita.get("db/pw")
                self.assertEqual(cm.exception.status, 403)
                self.assertNotIn("hunter", str(cm.exception))
                with self.assertRaises(cairn.Forbidden):
                    rita.list()
                with self.assertRaises(cairn.Forbidden):
                    rita.set("x", "v")
            c = cairn.Client(endpoint=k.endpoint, token=owner)
            with Secrets(client=c) as s:  # a given client is not closed
                self.assertEqual(s.get("db/pw"), "hunter3")
            self.assertEqual(c.call("secrets", "get_secret", {"name": "db/pw"})["value"],
                             "hunter3")
            c.close()
        finally:
            k.cleanup()


class KeyFromEnvironment(unittest.TestCase):
    def test_env_key(self):
        key = pysecrets.token_hex(32)
        os.environ["CAIRN_SECRETS_KEY"] = key
        try:
            k = Kernel(services=SERVICES).start()
        finally:
            del os.environ["CAIRN_SECRETS_KEY"]
        try:
            c = k.client()
            self.assertLess(c.call("secrets", "set_secret", {"name": "a", "value": "1"})[0]["st"],
                            300)
            self.assertFalse(os.path.exists(os.path.join(k.state, "secrets.key")))
            h, _ = c.call("secrets", "rotate_master_key")
            self.assertEqual((h["st"], h["code"]), (409, "conflict"))
            c.close()
        finally:
            k.cleanup()

    def test_bad_env_key_refused_at_start(self):
        os.environ["CAIRN_SECRETS_KEY"] = "not hex"
        try:
            k = Kernel(services=SERVICES)
            k.start(wait_up=False)
            c = k.client()
            h, b = c.call("sys", "health")
            c.close()
            plugin = next(p for p in b["plugins"] if p["name"] == "secrets")
            self.assertNotEqual(plugin["state"], "up")
            self.assertIn("must hold 64 hex characters", k.read_log())
            k.cleanup()
        finally:
            del os.environ["CAIRN_SECRETS_KEY"]


if __name__ == "__main__":
    unittest.main()
