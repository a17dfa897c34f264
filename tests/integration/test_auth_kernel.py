"""The kernel with auth on (issue 13): kernel.auth names the auth service,
which resolves each token once; the kernel checks every request against the
cached grants, forgets them on auth.changed, and refuses with 401/403/503
sentences. A real cairnd, the real auth plugin, real sockets."""
import os
import unittest

from cairn_harness import Kernel, free_port  # noqa: E402

SERVICES = ("  auth:\n    plugin: auth\n    mode: inproc\n"
            "  secrets:\n    plugin: secrets\n    mode: inproc\n"
            "  tracking:\n    plugin: storage\n    mode: inproc\n"
            "  echo:\n    plugin: echo\n    mode: inproc\n")


class AuthOn(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=SERVICES, auth="auth").start()
        with open(os.path.join(cls.k.state, "owner.token")) as f:
            cls.owner = f.read().strip()
        cls.c = cls.k.client()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    def call(self, svc, verb, body=None, tok=None, **hdr):
        if tok:
            hdr["tok"] = tok
        return self.c.call(svc, verb, body, **hdr)

    def ok(self, svc, verb, body=None, tok=None, **hdr):
        h, b = self.call(svc, verb, body, tok or self.owner, **hdr)
        self.assertLess(h["st"], 300, (svc, verb, h))
        return b

    def user_token(self, user, role, workspace=None):
        self.ok("auth", "create_user", {"user": user, "password": "correct horse 1"})
        grant = {"principal": user, "role": role}
        if workspace:
            grant["workspace"] = workspace
        self.ok("auth", "assign_role", grant)
        h, b = self.call("auth", "login", {"user": user, "password": "correct horse 1"})
        self.assertEqual(h["st"], 200, h)
        return b["token"]

    def test_owner_token_is_private(self):
        path = os.path.join(self.k.state, "owner.token")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertTrue(self.owner.startswith("cairn_"))

    def test_no_token(self):
        h, _ = self.call("tracking", "search_experiments", {})
        self.assertEqual((h["st"], h["code"]), (401, "unauthenticated"))
        self.assertIn("token", h["err"])
        h, _ = self.call("sys", "services")
        self.assertEqual(h["st"], 401)
        for verb in ("ping", "health"):  # probes need none
            self.assertEqual(self.call("sys", verb)[0]["st"], 200)

    def test_owner_may_do_anything(self):
        self.ok("tracking", "create_experiment", {"name": "owner-exp"})
        self.ok("sys", "services")
        b = self.ok("echo", "info")
        self.assertNotEqual(b["principal"], "local")  # the token's principal, stamped

    def test_bad_tokens(self):
        for tok in ("cairn_" + "A" * 43, "not-a-token", "x" * 4000):
            h, _ = self.call("tracking", "search_experiments", {}, tok=tok)
            self.assertEqual((h["st"], h["code"]), (401, "unauthenticated"), tok[:20])
            self.assertNotIn(tok, h["err"])  # never echoed

    def test_reader_reads_but_does_not_write(self):
        tok = self.user_token("rita", "Reader")
        self.assertEqual(self.call("tracking", "search_experiments", {}, tok)[0]["st"], 200)
        h, _ = self.call("tracking", "create_experiment", {"name": "rita-exp"}, tok)
        self.assertEqual((h["st"], h["code"]), (403, "forbidden"))
        self.assertIn("tracking.write", h["err"])
        self.assertIn("rita", h["err"])

    def test_workspace_grants(self):
        self.ok("auth", "create_workspace", {"name": "team-a"})
        tok = self.user_token("wes", "Contributor", workspace="team-a")
        self.assertEqual(
            self.call("tracking", "search_experiments", {}, tok, ws="team-a")[0]["st"], 200)
        h, _ = self.call("tracking", "search_experiments", {}, tok, ws="team-b")
        self.assertEqual(h["st"], 403)
        h, _ = self.call("tracking", "search_experiments", {}, tok)  # default
        self.assertEqual(h["st"], 403)

    def test_secret_values_are_their_own_permission(self):
        """A Contributor may set a secret but not read it back; a Reader sees
        none; the Owner reads it."""
        con = self.user_token("cora", "Contributor")
        rea = self.user_token("reed", "Reader")
        h, _ = self.call("secrets", "set_secret", {"name": "api", "value": "s3cret"}, con)
        self.assertEqual(h["st"], 201, h)
        for tok, verb in ((con, "get_secret"), (rea, "get_secret"), (rea, "list_secrets")):
            h, _ = self.call("secrets", verb, {"name": "api"}, tok)
            self.assertEqual((h["st"], h["code"]), (403, "forbidden"), (verb, h))
            self.assertIn("secrets.read", h["err"])
        self.assertEqual(self.ok("secrets", "get_secret", {"name": "api"})["value"], "s3cret")

    def test_revoked_at_once(self):
        b = self.ok("auth", "create_token", {"name": "ci"})
        tok, tid = b["token"], b["token_id"]
        self.assertEqual(self.call("tracking", "search_experiments", {}, tok)[0]["st"], 200)
        self.ok("auth", "revoke_token", {"token_id": tid})
        # auth.changed reaches the kernel before the revoke's reply does
        h, _ = self.call("tracking", "search_experiments", {}, tok)
        self.assertEqual(h["st"], 401, h)

    def test_role_change_holds_from_the_next_request(self):
        tok = self.user_token("cole", "Reader")
        h, _ = self.call("tracking", "create_experiment", {"name": "cole-exp"}, tok)
        self.assertEqual(h["st"], 403)
        self.ok("auth", "assign_role", {"principal": "cole", "role": "Contributor"})
        h, _ = self.call("tracking", "create_experiment", {"name": "cole-exp"}, tok)
        self.assertEqual(h["st"], 200, h)

    def test_many_requests_with_a_new_token(self):
        """A burst with a token never seen: each waits for the one resolve
        and every one is answered, in order."""
        b = self.ok("auth", "create_token", {"name": "burst"})
        c = self.k.client(kind=__import__("zmq").DEALER)
        try:
            ids = [c.send("tracking", "search_experiments", {}, tok=b["token"])
                   for _ in range(200)]
            got = [c.recv() for _ in ids]
            self.assertEqual([h["id"] for h, _ in got], ids)
            self.assertTrue(all(h["st"] == 200 for h, _ in got), got[0])
        finally:
            c.close()


class AuthDown(unittest.TestCase):
    def test_unavailable_while_the_auth_service_is_not_up(self):
        """A remote auth service whose host never connects: a token cannot
        be checked, so the request is 503 with a sentence, and no token is
        needed to see why (sys.health)."""
        services = ("  auth:\n    plugin: auth\n    mode: remote\n"
                    "  echo:\n    plugin: echo\n    mode: inproc\n")
        k = Kernel(services=services, auth="auth",
                   kernel_extra=f"  worker_endpoint: tcp://127.0.0.1:{free_port()}\n")
        k.start(wait_up=False)
        try:
            c = k.client()
            h, _ = c.call("echo", "echo", "x", tok="cairn_never_seen_before_token")
            self.assertEqual((h["st"], h["code"]), (503, "unavailable"), h)
            self.assertIn("cannot be checked", h["err"])
            self.assertIn("auth", h["err"])
            self.assertEqual(c.call("sys", "health")[0]["st"], 200)
            c.close()
        finally:
            k.cleanup()


if __name__ == "__main__":
    unittest.main()
