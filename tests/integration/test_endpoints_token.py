"""Online endpoints with auth_mode token (issue 17): cairnd with auth on
(the real auth plugin), the scorer in process mode. A request carries a
Cairn token; the kernel decides whether it may score (endpoints.write in
the endpoint's workspace, as get_keys needs). The owner scores; a Reader
is 403; no token, a bogus one and the endpoint's own keys are 401; a token
revoked stops scoring at once (the auth.changed event empties the
scorer's cache), not after the cache's ttl."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import DEADLINE, SOURCE, Kernel, free_port, wait_for  # noqa: E402
from test_endpoints import post, scorer_services  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
from cairn.endpoints import Endpoint, ScoreError  # noqa: E402
from cairn.registry import Registry  # noqa: E402

PORT = free_port()
SERVICES = scorer_services(PORT, auth=True)
SCORE = """\
def init():
    pass

def run(raw_data):
    import json
    return [sum(r) for r in json.loads(raw_data)["data"]]
"""


class TokenEndpoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=SERVICES, auth="auth").start()
        with open(os.path.join(cls.k.state, "owner.token")) as f:
            cls.owner = f.read().strip()
        cls.c = cls.k.client()
        cls.tmp = tempfile.mkdtemp(dir=cls.k.tmp)
        model, code = os.path.join(cls.tmp, "model"), os.path.join(cls.tmp, "src")
        os.makedirs(model)
        os.makedirs(code)
        with open(os.path.join(model, "MODEL"), "w") as f:
            f.write("sum\n")
        with open(os.path.join(code, "score.py"), "w") as f:
            f.write(SCORE)
        reg = Registry(cls.k.endpoint, token=cls.owner)
        cls.version = reg.register_model(model, "summer")["version"]
        reg.close()
        cls.code = code

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    def call(self, svc, verb, body, st=200, tok=None):
        h, b = self.c.call(svc, verb, body, tok=tok or self.owner)
        self.assertEqual(h["st"], st, (verb, body, h))
        return b if st < 400 else h

    def token_of(self, user, role):
        self.call("auth", "create_user", {"user": user, "password": "a long enough one"})
        self.call("auth", "assign_role", {"principal": user, "role": role})
        return self.call("auth", "login", {"user": user, "password": "a long enough one"},
                         tok="")["token"]

    def test_tokens_are_checked_by_the_kernel_and_revocation_is_prompt(self):
        ep = self.call("endpoints", "create_endpoint", {"name": "tok-ep", "auth_mode": "token"},
                       201)["endpoint"]
        self.assertEqual(ep["auth_mode"], "token")
        uri = ep["scoring_uri"]
        self.call("endpoints", "create_deployment", {
            "endpoint": "tok-ep", "name": "blue", "model": f"model:summer:{self.version}",
            "code_configuration": {"code": self.code, "scoring_script": "score.py"}}, 201)
        body = {"data": [[1, 2], [3, 4]]}
        self.assertEqual(post(uri, body, self.owner)[::2], (200, {"predictions": [3, 7]}))
        for tok in (None, "cairn_bogus", "x" * 5000, "bad token"):
            st, _, b = post(uri, body, tok)
            self.assertEqual(st, 401, (tok and tok[:20], b))
            self.assertTrue(b["error"], b)
        keys = self.call("endpoints", "get_keys", {"endpoint": "tok-ep"})
        self.assertEqual(post(uri, body, keys["primary_key"])[0], 401)  # keys are not tokens
        # the SDK finds its own token for a token endpoint
        ep = Endpoint("tok-ep", endpoint=self.k.endpoint, token=self.owner)
        self.assertEqual(ep.invoke(body), {"predictions": [3, 7]})
        reader = self.token_of("rita", "Reader")
        st, _, b = post(uri, body, reader)
        self.assertEqual(st, 403, b)
        with self.assertRaises(ScoreError) as e:
            Endpoint("tok-ep", uri=uri, key=reader).invoke(body)
        self.assertEqual(e.exception.status, 403)
        operator = self.token_of("otto", "Operator")
        self.assertEqual(post(uri, body, operator)[0], 200)
        made = self.call("endpoints", "get_endpoint", {"name": "tok-ep"})  # still there
        self.assertEqual(made["endpoint"]["name"], "tok-ep")
        # a token of its own, used (and so cached), then revoked: refused at once
        t = self.call("auth", "create_token", {"name": "ci"})
        for _ in range(3):
            self.assertEqual(post(uri, body, t["token"])[0], 200)
        self.call("auth", "revoke_token", {"token_id": t["token_id"]})
        wait_for(lambda: post(uri, body, t["token"])[0] == 401, 5,
                 "the revoked token refused well before the cache's 10 s")
        self.assertEqual(post(uri, body, self.owner)[0], 200)
        # a key endpoint beside it still takes keys, not tokens
        self.call("endpoints", "create_endpoint", {"name": "key-ep"}, 201)
        self.call("endpoints", "create_deployment", {
            "endpoint": "key-ep", "name": "blue", "model": f"model:summer:{self.version}",
            "code_configuration": {"code": self.code, "scoring_script": "score.py"}}, 201)
        kuri = uri.replace("tok-ep", "key-ep")
        key = self.call("endpoints", "get_keys", {"endpoint": "key-ep"})["primary_key"]
        self.assertEqual(post(kuri, body, key)[0], 200)
        self.assertEqual(post(kuri, body, self.owner)[0], 401)
        h = self.call("endpoints", "create_endpoint", {"name": "bad-ep", "auth_mode": "aad"},
                      400)
        self.assertIn("key or token", h["err"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
