"""The auth service (plugins/auth): the owner bootstrap, users and the
throttle on wrong passwords, tokens and what resolve answers for them, the
auth.changed events, roles, workspaces, bad input for every verb, and
password hashing off the plugin's loop. cairnd runs with `auth: none`, which
stamps every request as principal `local` with the Owner role, so every verb
is callable; the auth service runs inproc."""
import ctypes
import json
import os
import stat
import subprocess
import shutil
import tempfile
import sys
import time
import unittest

import msgpack
import zmq

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import BIN, BUILD, DEADLINE, SOURCE, Kernel, wait_for  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
import cairn  # noqa: E402
from cairn.auth import Auth as PyAuth  # noqa: E402

SERVICES = ("  auth:\n    plugin: auth\n    mode: inproc\n"
            "    settings:\n      max_failures: 3\n      lockout_ms: 600000\n")
PASSWORD = "correct horse battery"


def _sanitized():
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return "CAIRN_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


SANITIZED = _sanitized()


def stop_clean(k):
    """Stop k and check it exited 0 with no sanitizer report (ASan build)."""
    rc = k.stop()
    log = k.read_log()
    k.cleanup()
    assert rc == 0 and "Sanitizer" not in log and "runtime error:" not in log, (rc, log)


def ok(reply):
    hdr, body = reply
    assert hdr["st"] == 200, hdr
    return body


class Auth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=SERVICES).start()
        cls.c = cls.k.client()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        stop_clean(cls.k)

    def call(self, verb, body=None):
        return self.c.call("auth", verb, body)

    def refused(self, verb, body, st, code=None):
        hdr, _ = self.call(verb, body)
        self.assertEqual(hdr["st"], st, (verb, body, hdr))
        if code:
            self.assertEqual(hdr.get("code"), code, hdr)
        self.assertTrue(hdr.get("err"), hdr)  # a sentence
        return hdr["err"]

    def resolve(self, token):
        return self.call("resolve", {"token": token})

    def make_user(self, user, password=PASSWORD):
        ok(self.call("create_user", {"user": user, "password": password}))

    # ---- bootstrap ----

    def test_owner_token_written_once_0600(self):
        path = os.path.join(self.k.state, "owner.token")
        st = os.stat(path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        with open(path) as f:
            secret = f.read().strip()
        self.assertTrue(secret.startswith("cairn_"))
        r = ok(self.resolve(secret))
        self.assertEqual(r["principal"], "owner")
        self.assertEqual(r["expires"], 0)
        self.assertEqual(r["grants"], [{"ws": "*", "role": "Owner", "actions": ["*"],
                                        "not_actions": []}])
        self.assertNotIn(secret, self.k.read_log())  # never logged

    def test_restart_keeps_owner_token(self):
        k = Kernel(services=SERVICES).start()
        try:
            path = os.path.join(k.state, "owner.token")
            with open(path) as f:
                first = f.read()
            ino = os.stat(path).st_ino
            k.stop()
            k.start()
            with open(path) as f:
                self.assertEqual(f.read(), first)
            self.assertEqual(os.stat(path).st_ino, ino)
            c = k.client()
            r = ok(c.call("auth", "resolve", {"token": first.strip()}))
            self.assertEqual(r["principal"], "owner")
            c.close()
        finally:
            k.cleanup()

    # ---- users and login ----

    def test_login_and_wrong_password(self):
        self.make_user("ada")
        self.refused("create_user", {"user": "ada", "password": PASSWORD}, 409, "conflict")
        tok = ok(self.call("login", {"user": "ada", "password": PASSWORD}))
        self.assertTrue(tok["token"].startswith("cairn_"))
        self.assertGreater(tok["expires"], 0)
        r = ok(self.resolve(tok["token"]))
        self.assertEqual(r["principal"], "ada")
        self.assertEqual(r["token_id"], tok["token_id"])
        self.assertEqual(r["grants"], [])
        err = self.refused("login", {"user": "ada", "password": "wrong password"}, 401,
                           "unauthenticated")
        self.assertNotIn("wrong password", err.replace("wrong user name or password", ""))
        # An unknown user reads the same as a wrong password.
        err2 = self.refused("login", {"user": "nobody", "password": PASSWORD}, 401)
        self.assertEqual(err, err2)

    def test_throttle_after_repeated_failures(self):
        self.make_user("bob")
        for _ in range(3):  # max_failures
            self.refused("login", {"user": "bob", "password": "not the one"}, 401)
        err = self.refused("login", {"user": "bob", "password": "not the one"}, 429,
                           "overloaded")
        self.assertIn("try again", err)
        # Locked: even the right password waits.
        self.refused("login", {"user": "bob", "password": PASSWORD}, 429)
        # Other users are not affected.
        self.make_user("bob2")
        ok(self.call("login", {"user": "bob2", "password": PASSWORD}))

    def test_change_password_revokes_login_tokens(self):
        self.make_user("cy")
        login = ok(self.call("login", {"user": "cy", "password": PASSWORD}))
        api = ok(self.call("create_token", {"name": "ci", "owner": "cy"}))
        ok(self.call("change_password", {"user": "cy", "password": "new password!"}))
        self.refused("resolve", {"token": login["token"]}, 401)
        self.assertEqual(ok(self.resolve(api["token"]))["principal"], "cy")
        self.refused("login", {"user": "cy", "password": PASSWORD}, 401)
        ok(self.call("login", {"user": "cy", "password": "new password!"}))
        # With old_password: checked.
        self.refused("change_password", {"user": "cy", "password": "another one",
                                         "old_password": "not it at all"}, 401)
        ok(self.call("change_password", {"user": "cy", "password": "another one",
                                         "old_password": "new password!"}))
        self.refused("change_password", {"user": "ghost", "password": "whatever1"}, 404)

    def test_delete_user_revokes_everything(self):
        self.make_user("dee")
        tok = ok(self.call("create_token", {"name": "t", "owner": "dee"}))
        ok(self.call("assign_role", {"principal": "dee", "role": "Reader"}))
        ok(self.call("delete_user", {"user": "dee"}))
        self.refused("resolve", {"token": tok["token"]}, 401)
        self.refused("delete_user", {"user": "dee"}, 404, "not_found")
        self.refused("login", {"user": "dee", "password": PASSWORD}, 401)

    def test_whoami(self):
        r = ok(self.call("whoami"))
        self.assertEqual(r["user"], "local")  # what auth: none stamps
        self.assertIn("Owner", r["roles"])

    # ---- tokens ----

    def test_tokens_create_list_revoke_resolve(self):
        t = ok(self.call("create_token", {"name": "laptop", "expires_in": 3600}))
        self.assertTrue(t["token"].startswith("cairn_"))
        self.assertGreaterEqual(len(t["token"]), len("cairn_") + 43)
        rows = ok(self.call("list_tokens"))["tokens"]
        mine = [r for r in rows if r["token_id"] == t["token_id"]]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["name"], "laptop")
        self.assertEqual(mine[0]["owner"], "local")
        self.assertEqual(set(mine[0]), {"token_id", "name", "owner", "created", "expires",
                                         "last_used"})
        self.assertNotIn(t["token"].encode(), msgpack.packb(rows))  # no secrets
        self.assertAlmostEqual(mine[0]["expires"] - mine[0]["created"], 3600000, delta=5000)
        self.assertEqual(mine[0]["last_used"], 0)
        r = ok(self.resolve(t["token"]))
        self.assertEqual(r["principal"], "local")
        self.assertEqual(r["expires"], mine[0]["expires"])

        def last_used():
            return [x for x in ok(self.call("list_tokens"))["tokens"]
                    if x["token_id"] == t["token_id"]][0]["last_used"]
        used = last_used()
        self.assertGreater(used, 0)
        ok(self.resolve(t["token"]))  # within the minute: not written again
        self.assertEqual(last_used(), used)
        ok(self.call("revoke_token", {"token_id": t["token_id"]}))
        err = self.refused("resolve", {"token": t["token"]}, 401, "unauthenticated")
        self.assertNotIn(t["token"], err)
        self.refused("revoke_token", {"token_id": t["token_id"]}, 404)
        self.assertNotIn(t["token_id"], [r["token_id"]
                                         for r in ok(self.call("list_tokens"))["tokens"]])

    def test_unknown_and_expired_tokens(self):
        for bogus in ["cairn_" + "A" * 43, "nope", "cairn_", "x" * 200]:
            err = self.refused("resolve", {"token": bogus}, 401, "unauthenticated")
            self.assertNotIn(bogus, err)
        t = ok(self.call("create_token", {"name": "short", "expires_in": 1}))
        wait_for(lambda: self.resolve(t["token"])[0]["st"] == 401, what="token expiry")

    def test_revoke_publishes_auth_changed(self):
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"auth.changed")
        sub.connect(self.k.events)
        try:
            got = None
            end = time.monotonic() + DEADLINE
            while got is None and time.monotonic() < end:  # the slow joiner
                t = ok(self.call("create_token", {"name": "ev"}))
                ok(self.call("revoke_token", {"token_id": t["token_id"]}))
                while sub.poll(200):
                    topic, body = sub.recv_multipart()
                    ev = msgpack.unpackb(body)
                    if ev.get("token_id") == t["token_id"]:
                        got = (topic, ev)
            self.assertEqual(got, (b"auth.changed", {"token_id": t["token_id"]}))
            ok(self.call("assign_role", {"principal": "evie", "role": "Reader"}))
            topic, body = sub.recv_multipart()
            self.assertEqual(msgpack.unpackb(body), {"principal": "evie"})
        finally:
            sub.close()

    # ---- roles and workspaces ----

    def test_roles_and_grants(self):
        names = [r["name"] for r in ok(self.call("list_roles"))["roles"]]
        for b in ["Owner", "Contributor", "Reader", "Data Scientist", "Operator"]:
            self.assertIn(b, names)
        ok(self.call("define_role", {"name": "Tracker", "actions": ["tracking.*", "*.read"],
                                     "not_actions": ["tracking.admin"]}))
        ok(self.call("create_workspace", {"name": "team-a"}))
        self.make_user("eve")
        t = ok(self.call("create_token", {"name": "eve", "owner": "eve"}))
        ok(self.call("assign_role", {"principal": "eve", "role": "Tracker",
                                     "workspace": "team-a"}))
        ok(self.call("assign_role", {"principal": "eve", "role": "Reader"}))
        grants = ok(self.resolve(t["token"]))["grants"]
        self.assertIn({"ws": "team-a", "role": "Tracker", "actions": ["tracking.*", "*.read"],
                       "not_actions": ["tracking.admin"]}, grants)
        self.assertIn({"ws": "*", "role": "Reader", "actions": ["*.read"],
                       "not_actions": ["secrets.*"]}, grants)
        # Redefining changes what resolve says.
        ok(self.call("define_role", {"name": "Tracker", "actions": ["tracking.read"]}))
        grants = ok(self.resolve(t["token"]))["grants"]
        self.assertIn({"ws": "team-a", "role": "Tracker", "actions": ["tracking.read"],
                       "not_actions": []},
                      grants)
        ok(self.call("unassign_role", {"principal": "eve", "role": "Reader"}))
        self.refused("unassign_role", {"principal": "eve", "role": "Reader"}, 404)
        self.assertEqual(len(ok(self.resolve(t["token"]))["grants"]), 1)
        self.refused("define_role", {"name": "Owner", "actions": ["*"]}, 409)
        self.refused("assign_role", {"principal": "eve", "role": "Nope"}, 404)
        self.refused("assign_role", {"principal": "eve", "role": "Reader",
                                     "workspace": "nope"}, 404)
        ds = [r for r in ok(self.call("list_roles"))["roles"]
              if r["name"] == "Data Scientist"][0]
        self.assertIn("*.admin", ds["not_actions"])

    def test_workspaces(self):
        ok(self.call("create_workspace", {"name": "ws1"}))
        self.refused("create_workspace", {"name": "ws1"}, 409)
        names = [w["name"] for w in ok(self.call("list_workspaces"))["workspaces"]]
        self.assertIn("default", names)
        self.assertIn("ws1", names)
        self.refused("delete_workspace", {"name": "default"}, 409)
        ok(self.call("assign_role", {"principal": "wsu", "role": "Reader",
                                     "workspace": "ws1"}))
        t = ok(self.call("create_token", {"name": "w", "owner": "wsu"}))
        self.assertEqual(len(ok(self.resolve(t["token"]))["grants"]), 1)
        ok(self.call("delete_workspace", {"name": "ws1"}))
        self.assertEqual(ok(self.resolve(t["token"]))["grants"], [])
        self.refused("delete_workspace", {"name": "ws1"}, 404)

    # ---- bad input ----

    def test_bad_input_for_every_verb(self):
        long = "a" * 65
        cases = [
            ("login", {}, 400), ("login", {"user": "", "password": PASSWORD}, 400),
            ("login", {"user": long, "password": PASSWORD}, 413),
            ("login", {"user": "a b", "password": PASSWORD}, 400),
            ("login", {"user": "ada", "password": "short"}, 400),
            ("login", {"user": "ada", "password": "x" * 1025}, 413),
            ("login", {"user": 5, "password": PASSWORD}, 400),
            ("create_user", {"user": "ok"}, 400),
            ("create_user", {"user": long, "password": PASSWORD}, 413),
            ("create_user", {"user": "ok", "password": 12345678}, 400),
            ("create_user", {"user": "ok", "password": "x" * 1025}, 413),
            ("delete_user", {}, 400), ("delete_user", {"user": ""}, 400),
            ("change_password", {"user": "x"}, 400),
            ("change_password", {"user": "x", "password": "short"}, 400),
            ("create_token", {}, 400), ("create_token", {"name": long}, 413),
            ("create_token", {"name": "t", "expires_in": -1}, 400),
            ("create_token", {"name": "t", "expires_in": "soon"}, 400),
            ("create_token", {"name": "t", "expires_in": 10 ** 12}, 400),
            ("revoke_token", {}, 400), ("revoke_token", {"token_id": ["x"]}, 400),
            ("resolve", {}, 400), ("resolve", {"token": 7}, 400),
            ("define_role", {"name": "R"}, 400),
            ("define_role", {"name": "R", "actions": []}, 400),
            ("define_role", {"name": "R", "actions": "tracking.*"}, 400),
            ("define_role", {"name": "R", "actions": ["tracking"]}, 400),
            ("define_role", {"name": "R", "actions": ["*.*"]}, 400),
            ("define_role", {"name": "R", "actions": [5]}, 400),
            ("define_role", {"name": "R", "actions": ["a." + "b" * 130]}, 413),
            ("define_role", {"name": "R", "actions": ["x.read"] * 65}, 413),
            ("define_role", {"name": "R", "actions": ["x.read"], "not_actions": ["x"]}, 400),
            ("define_role", {"name": long, "actions": ["x.read"]}, 413),
            ("assign_role", {"principal": "p"}, 400),
            ("assign_role", {"role": "Reader"}, 400),
            ("assign_role", {"principal": "p", "role": "Reader", "workspace": "*"}, 400),
            ("unassign_role", {"principal": "", "role": "Reader"}, 400),
            ("create_workspace", {}, 400), ("create_workspace", {"name": long}, 413),
            ("create_workspace", {"name": "a*"}, 400),
            ("delete_workspace", {"name": 3}, 400),
        ]
        for verb, body, st in cases:
            with self.subTest(verb=verb, body=str(body)[:60]):
                self.refused(verb, body, st)
        # A body that is not a map at all.
        hdr, _ = self.c.call("auth", "create_user", ["user", "x"])
        self.assertEqual(hdr["st"], 400)

    # ---- hashing does not stall the loop ----

    def test_login_does_not_stall_other_requests(self):
        self.make_user("fay")
        d = self.k.client(zmq.DEALER)
        try:
            login = d.send("auth", "login", {"user": "fay", "password": PASSWORD})
            whoamis = [d.send("auth", "whoami") for _ in range(3)]
            order = []
            for _ in range(4):
                hdr, _ = d.recv()
                self.assertEqual(hdr["st"], 200, hdr)
                order.append(hdr["id"])
            # The login was sent first but its hash runs on another thread:
            # the whoamis sent after it are answered before it.
            self.assertEqual(order[-1], login, order)
            self.assertEqual(sorted(order[:3]), sorted(whoamis))
        finally:
            d.close()


class AddressThrottle(unittest.TestCase):
    """Wrong passwords are counted per client address too (a guesser trying
    many user names): past addr_failures, every login from that address is
    refused for a while, the right password of an untouched user included.
    The kernel passes the client's tcp address to the plugin
    (cairn_peer_address); loopback clients are only counted with
    throttle_loopback, which this test sets, since it connects from
    127.0.0.1."""

    def start(self, extra):
        k = Kernel(services="  auth:\n    plugin: auth\n    mode: inproc\n"
                            "    settings:\n      max_failures: 3\n"
                            "      lockout_ms: 600000\n" + extra).start()
        self.addCleanup(k.cleanup)
        c = k.client()
        self.addCleanup(c.close)
        for u in ("u1", "u2", "u3", "u4", "good"):
            ok(c.call("auth", "create_user", {"user": u, "password": PASSWORD}))
        return k, c

    def guess_each(self, c):
        """One wrong password for each of four users: no user reaches 3."""
        for u in ("u1", "u2", "u3", "u4"):
            h, _ = c.call("auth", "login", {"user": u, "password": "wrong guess"})
            self.assertEqual(h["st"], 401, h)

    def test_an_address_that_guesses_is_locked_out(self):
        k, c = self.start("      addr_failures: 4\n      throttle_loopback: true\n")
        self.guess_each(c)
        h, _ = c.call("auth", "login", {"user": "good", "password": PASSWORD})
        self.assertEqual((h["st"], h.get("code")), (429, "overloaded"), h)
        self.assertIn("too many wrong passwords from '127.0.0.1'", h["err"])
        self.assertIn("127.0.0.1", k.read_log())

    def test_loopback_is_not_counted_by_default(self):
        k, c = self.start("      addr_failures: 4\n")
        self.guess_each(c)
        ok(c.call("auth", "login", {"user": "good", "password": PASSWORD}))


class Sdks(unittest.TestCase):
    """The same service through the Python SDK, the C SDK and the CLI."""

    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=SERVICES).start()

    @classmethod
    def tearDownClass(cls):
        stop_clean(cls.k)

    def test_python_sdk(self):
        with PyAuth(endpoint=self.k.endpoint) as a:
            a.create_user("py", PASSWORD)
            with self.assertRaises(cairn.Conflict):
                a.create_user("py", PASSWORD)
            with self.assertRaises(cairn.Unauthenticated):
                a.login("py", "wrong password")
            tok = a.login("py", PASSWORD)
            self.assertEqual(a.resolve(tok)["principal"], "py")
            self.assertEqual(a.whoami()["user"], "local")
            t = a.create_token("nb", expires_in=60)
            self.assertIn(t["token_id"], [r["token_id"] for r in a.list_tokens()])
            a.revoke_token(t["token_id"])
            with self.assertRaises(cairn.Unauthenticated):
                a.resolve(t["token"])
            a.define_role("PyRole", ["tracking.*"], not_actions=["tracking.admin"])
            a.create_workspace("pyws")
            a.assign_role("py", "PyRole", workspace="pyws")
            self.assertEqual(a.resolve(tok)["grants"],
                             [{"ws": "pyws", "role": "PyRole", "actions": ["tracking.*"],
                               "not_actions": ["tracking.admin"]}])
            a.unassign_role("py", "PyRole", workspace="pyws")
            self.assertIn("PyRole", [r["name"] for r in a.list_roles()])
            self.assertIn("pyws", [w["name"] for w in a.list_workspaces()])
            a.delete_workspace("pyws")
            a.change_password("py", "a new password")
            with self.assertRaises(cairn.Unauthenticated):
                a.resolve(tok)
            a.delete_user("py")
            with self.assertRaises(cairn.BadRequest):
                a.create_user("", PASSWORD)

    @unittest.skipIf(SANITIZED, "libcairn is built with ASan: python cannot dlopen it")
    def test_c_sdk(self):
        class Err(ctypes.Structure):
            _fields_ = [("st", ctypes.c_int), ("code", ctypes.c_char * 32),
                        ("msg", ctypes.c_char * 512)]
        lib = ctypes.CDLL(os.path.join(BUILD, "lib", "libcairn.so"))
        lib.cairn_client_new.restype = ctypes.c_void_p
        err = Err()
        c = ctypes.c_void_p(lib.cairn_client_new(self.k.endpoint.encode(), None,
                                                 ctypes.byref(err)))
        self.assertTrue(c.value, err.msg)
        out, out2 = ctypes.c_void_p(), ctypes.c_void_p()

        def call(fn, *args):
            rc = getattr(lib, fn)(c, *args, ctypes.byref(err))
            self.assertEqual(rc, 0, (fn, err.st, err.msg))

        def take(p):
            v = ctypes.string_at(p.value).decode()
            lib.free(p)
            return v
        lib.free = ctypes.CDLL(None).free
        lib.free.argtypes = [ctypes.c_void_p]
        call("cairn_auth_create_user", b"cee", PASSWORD.encode())
        call("cairn_auth_login", b"cee", PASSWORD.encode(), ctypes.byref(out))
        tok = take(out)
        self.assertTrue(tok.startswith("cairn_"))
        roles = ctypes.POINTER(ctypes.c_char_p)()
        call("cairn_auth_whoami", ctypes.byref(out), ctypes.byref(roles))
        self.assertEqual(take(out), "local")
        names = []
        while roles[len(names)]:
            names.append(roles[len(names)].decode())
        self.assertIn("Owner", names)
        lib.cairn_auth_strv_free(roles)
        call("cairn_auth_create_token", b"ct", ctypes.c_uint64(0), ctypes.byref(out),
             ctypes.byref(out2))
        secret, tid = take(out), take(out2)
        with PyAuth(endpoint=self.k.endpoint) as a:
            self.assertEqual(a.resolve(secret)["token_id"], tid)
        call("cairn_auth_revoke_token", tid.encode())
        acts = (ctypes.c_char_p * 2)(b"tracking.*", b"*.read")
        call("cairn_auth_define_role", b"CRole", acts, ctypes.c_size_t(2), None,
             ctypes.c_size_t(0))
        call("cairn_auth_create_workspace", b"cws")
        call("cairn_auth_assign_role", b"cee", b"CRole", b"cws")
        with PyAuth(endpoint=self.k.endpoint) as a:
            self.assertEqual(a.resolve(tok)["grants"][0]["actions"], ["tracking.*", "*.read"])
        call("cairn_auth_unassign_role", b"cee", b"CRole", b"cws")
        call("cairn_auth_delete_workspace", b"cws")
        call("cairn_auth_change_password", b"cee", b"another password", None)
        call("cairn_auth_delete_user", b"cee")
        rc = lib.cairn_auth_login(c, b"cee", PASSWORD.encode(), ctypes.byref(out),
                                  ctypes.byref(err))
        self.assertEqual((rc, err.st), (-1, 401))
        lib.cairn_client_destroy(ctypes.byref(c))

    def cli(self, *args, stdin=None):
        env = dict(os.environ, XDG_CONFIG_HOME=self.xdg)  # never the user's own
        env.pop("CAIRN_TOKEN", None)
        r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint, *args],
                           input=stdin, capture_output=True, text=True, timeout=DEADLINE,
                           env=env)
        self.assertEqual(r.returncode, 0, (args, r.stderr))
        return r.stdout

    def test_cli(self):
        self.xdg = tempfile.mkdtemp(prefix="cairn-xdg-")
        self.addCleanup(shutil.rmtree, self.xdg, True)
        saved = os.path.join(self.xdg, "cairn", "token")
        self.cli("users", "create", "cli", stdin=PASSWORD + "\n")
        out = self.cli("login", "cli", stdin=PASSWORD + "\n")
        self.assertIn(saved, out)  # where clients look for a token
        self.assertEqual(os.stat(saved).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.dirname(saved)).st_mode & 0o777, 0o700)
        with open(saved) as f:
            tok = f.read().strip()
        self.assertNotIn(tok, out)
        self.assertTrue(tok.startswith("cairn_"))
        self.assertIn("local (Owner", self.cli("whoami"))
        secret = self.cli("tokens", "create", "cli-t", "60").strip()
        self.assertTrue(secret.startswith("cairn_"))
        rows = json.loads(self.cli("--json", "tokens", "list"))["tokens"]
        tid = [r["token_id"] for r in rows if r["name"] == "cli-t"][0]
        self.assertNotIn(secret, self.cli("tokens", "list"))
        self.cli("tokens", "revoke", tid)
        self.cli("roles", "define", "CliRole", "tracking.*", "!tracking.admin")
        self.assertIn("CliRole          tracking.* !tracking.admin", self.cli("roles", "list"))
        self.cli("workspaces", "create", "cliws")
        self.assertIn("cliws", self.cli("workspaces", "list"))
        self.cli("roles", "assign", "cli", "CliRole", "cliws")
        with PyAuth(endpoint=self.k.endpoint) as a:
            self.assertEqual(a.resolve(tok)["grants"][0]["ws"], "cliws")
        self.cli("roles", "unassign", "cli", "CliRole", "cliws")
        self.cli("workspaces", "delete", "cliws")
        self.cli("users", "passwd", "cli", stdin="brand new password\n")
        self.cli("users", "delete", "cli")
        self.assertIn("removed", self.cli("logout"))
        self.assertFalse(os.path.exists(saved))
        r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint,
                            "login", "cli"], input=PASSWORD + "\n", capture_output=True,
                           text=True, timeout=DEADLINE)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("wrong user name or password", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
