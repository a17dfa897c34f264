"""The permission matrix (issue 13): every built-in role against every verb
of every service, as sys.services lists them. For each role a user holds it
in every workspace, logs in, and calls each verb with an empty body; the
kernel must refuse (403, "may not use") exactly the verbs whose permission
the role's grants (as auth.resolve states them) do not permit, and let the
rest through to the plugin (which may then say 400 for the empty body).
Generic: a new service's verbs are covered the day they exist."""
import os
import unittest

import subprocess

from cairn_harness import BIN, DEADLINE, SOURCE, Kernel

# The embedded default's services, in its order (conf/cairn.yaml).
SERVICES = "".join(f"  {name}:\n    plugin: {plugin}\n    mode: inproc\n" for name, plugin in (
    ("auth", "auth"), ("audit", "audit"), ("secrets", "secrets"), ("echo", "echo"),
    ("tracking", "storage"), ("artifacts", "storage"), ("registry", "registry"))) + (
    # its own process there; here inproc, on a port of its choosing
    "  gateway:\n    plugin: gateway\n    mode: inproc\n"
    "    settings:\n      listen: 127.0.0.1:0\n"
    "  jobs:\n    plugin: compute\n    mode: process\n"
    "  endpoints:\n    plugin: scorer\n    mode: process\n"
    "    settings:\n      listen: 127.0.0.1:0\n")
ROLES = ["Owner", "Contributor", "Reader", "Data Scientist", "Operator"]
PASSWORD = "matrix password 1"


def matches(pattern, perm):
    """The pattern forms of sdk/grants.h: *, svc.*, *.action, svc.action."""
    if pattern in ("*", perm):
        return True
    p_svc, _, p_act = pattern.partition(".")
    svc, _, act = perm.partition(".")
    return (p_svc in ("*", svc)) and (p_act in ("*", act)) and bool(p_act)


def permits(grants, perm, ws="default"):
    for g in grants:
        if g["ws"] not in ("*", ws):
            continue
        if any(matches(p, perm) for p in g.get("not_actions", [])):
            continue
        if any(matches(p, perm) for p in g["actions"]):
            return True
    return False


class Matrix(unittest.TestCase):
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

    def ok(self, svc, verb, body, tok=None):
        h, b = self.c.call(svc, verb, body, tok=tok or self.owner)
        self.assertLess(h["st"], 300, (svc, verb, h))
        return b

    def test_every_role_against_every_verb(self):
        services = self.ok("sys", "services", None)["services"]
        verbs = [(s["name"], v, s["perms"][v], "public" in s["flags"][v])
                 for s in services for v in s["verbs"]]
        self.assertGreater(len(verbs), 60)
        checked = 0
        for role in ROLES:
            user = "u_" + role.lower().replace(" ", "_")
            self.ok("auth", "create_user", {"user": user, "password": PASSWORD})
            self.ok("auth", "assign_role", {"principal": user, "role": role})
            tok = self.ok("auth", "login", {"user": user, "password": PASSWORD})["token"]
            grants = self.ok("auth", "resolve", {"token": tok})["grants"]
            for svc, verb, perm, public in verbs:
                want = public or permits(grants, perm)
                h, _ = self.c.call(svc, verb, {}, tok=tok)
                refused = h["st"] == 403 and "may not use" in h.get("err", "")
                self.assertEqual(refused, not want,
                                 f"{role} {svc}.{verb} ({perm}): {h}")
                if refused:
                    self.assertIn(perm, h["err"])
                checked += 1
        self.assertEqual(checked, len(ROLES) * len(verbs))

    def test_the_permission_table_is_current(self):
        """docs/PERMISSIONS.md holds `cairn permissions` as printed now."""
        out = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint,
                              "--token", self.owner, "permissions"], capture_output=True,
                             text=True, timeout=DEADLINE)
        self.assertEqual(out.returncode, 0, out.stderr)
        with open(os.path.join(SOURCE, "docs", "PERMISSIONS.md")) as f:
            doc = f.read()
        self.assertIn(out.stdout, doc, "regenerate docs/PERMISSIONS.md: cairn permissions")

    def test_builtins_as_documented(self):
        """What each built-in grants, spot-checked against docs/AUTH.md."""
        want = {"Owner": [("tracking.admin", True), ("secrets.read", True)],
                "Contributor": [("tracking.write", True), ("secrets.write", True),
                                ("secrets.read", False), ("auth.admin", False)],
                "Reader": [("tracking.read", True), ("tracking.write", False),
                           ("secrets.read", False)],
                "Data Scientist": [("tracking.write", True), ("tracking.admin", False),
                                   ("secrets.read", False)],
                "Operator": [("jobs.admin", True), ("tracking.write", False),
                             ("secrets.read", False)]}
        for role, cases in want.items():
            user = "b_" + role.lower().replace(" ", "_")
            self.ok("auth", "create_user", {"user": user, "password": PASSWORD})
            self.ok("auth", "assign_role", {"principal": user, "role": role})
            tok = self.ok("auth", "login", {"user": user, "password": PASSWORD})["token"]
            grants = self.ok("auth", "resolve", {"token": tok})["grants"]
            for perm, allowed in cases:
                self.assertEqual(permits(grants, perm), allowed, (role, perm))


if __name__ == "__main__":
    unittest.main()
