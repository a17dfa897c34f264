"""The secrets plugin (issue 13): a key vault. Values are sealed at rest
with XChaCha20-Poly1305 under a master key (a 0600 file in the state dir,
or an environment variable), bound to their workspace and name, never in
a file, a log or an error in the clear; rotate_master_key re-seals them
all, and a rotation cut short is finished at the next start."""
import os
import secrets as pysecrets
import sqlite3
import unittest

import subprocess

from cairn_harness import BIN, DEADLINE, Kernel

SERVICES = "  secrets:\n    plugin: secrets\n    mode: inproc\n"


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
