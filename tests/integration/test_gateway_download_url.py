"""Signed download links through the HTTP gateway (docs/GATEWAY.md), against
a real cairnd with `auth: auth` and the gateway in process mode: a plain
artifact GET without a token is 401; POST /api/v1/artifacts/download_url
as a reader answers a URL that downloads the exact bytes with no
Authorization header at all, as an attachment (Content-Disposition, quoted
or RFC 6266's filename* for a name that needs it; the type by extension);
a link with one character changed, cut or made up is 403; a missing file,
a workspace the caller may not read, no token are refused at download_url;
a link past its ttl (download_url_ttl_s: 10, the least) is 403 expired; a
link whose token was revoked since is refused by the kernel; a link made in
a workspace reads that workspace's file; a 64 MiB file streams through a
link whole."""
import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import CAIRND, Kernel, free_port, wait_for  # noqa: E402

ART = "/api/2.0/mlflow-artifacts/artifacts"
URL = "/api/v1/artifacts/download_url"
DL = "/api/v1/artifacts/download/"
MIB = 1 << 20
TTL_S = 10

SERVICES = ("  tracking:\n    plugin: storage\n    mode: inproc\n"
            "  artifacts:\n    plugin: storage\n    mode: inproc\n"
            "  auth:\n    plugin: auth\n    mode: inproc\n")


class DlKernel(Kernel):
    """A kernel with auth and a gateway (process mode) on http_port."""

    def __init__(self, http_port):
        self.http_port = http_port
        super().__init__(services=SERVICES, auth="auth")

    def _new_ports(self):
        super()._new_ports()
        with open(self.conf, "a") as f:
            f.write("  gateway:\n    plugin: gateway\n    mode: process\n    settings:\n"
                    f"      listen: 127.0.0.1:{self.http_port}\n"
                    f"      download_url_ttl_s: {TTL_S}\n")


class DownloadUrl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.k = DlKernel(cls.port).start()
        with open(os.path.join(cls.k.state, "owner.token")) as f:
            cls.owner = f.read().strip()
        cls.reader = cls.token_of("rita", "Reader")
        cls.exp, cls.run_id = cls.new_run(cls, "dl")
        cls.data = os.urandom(300_001)
        cls.put(cls, cls.exp, cls.run_id, "out/report.csv", cls.data)

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    # ---- HTTP ----

    @classmethod
    def http(cls, method, path, body=None, token=None, headers=None, raw=None):
        """(status, parsed JSON or bytes, response) on a fresh connection."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode()
                                            if body is not None else None)
        c = http.client.HTTPConnection("127.0.0.1", cls.port, timeout=120)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            b = r.read()
            try:
                return r.status, json.loads(b), r
            except ValueError:
                return r.status, b, r
        finally:
            c.close()

    @classmethod
    def token_of(cls, user, role, workspace=None):
        """A new user's token (create_token by the owner, for it)."""
        st, b, _ = cls.http("POST", "/api/v1/auth/create_user",
                            {"user": user, "password": "a long password 1"}, cls.owner)
        assert st == 200, b
        grant = {"principal": user, "role": role}
        if workspace:
            grant["workspace"] = workspace
        st, b, _ = cls.http("POST", "/api/v1/auth/assign_role", grant, cls.owner)
        assert st == 200, b
        st, b, _ = cls.http("POST", "/api/v1/auth/create_token",
                            {"name": f"{user}-t", "owner": user}, cls.owner)
        assert st == 200, b
        return b["token"]

    def new_run(self, name, ws=None):
        h = {"cairn-workspace": ws} if ws else {}
        st, b, _ = self.http("POST", "/api/2.0/mlflow/experiments/create", {"name": name},
                             self.owner, h)
        assert st == 200, b
        exp = b["experiment_id"]
        st, b, _ = self.http("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": exp},
                             self.owner, h)
        assert st == 200, b
        return exp, b["run"]["info"]["run_id"]

    def put(self, exp, run, path, data, ws=None):
        h = {"Content-Type": "application/octet-stream"}
        if ws:
            h["cairn-workspace"] = ws
        st, b, _ = self.http("PUT", f"{ART}/{exp}/{run}/artifacts/{urllib.parse.quote(path)}",
                             token=self.owner, headers=h, raw=data)
        assert st == 200, b

    def link(self, path, token=None, run=None, ws=None):
        """(status, body) of download_url."""
        h = {"Content-Type": "application/json", **({"cairn-workspace": ws} if ws else {})}
        st, b, _ = self.http("POST", URL, {"run_id": run or self.run_id, "path": path},
                             token or self.reader, h)
        return st, b

    def url_of(self, path, **kw):
        st, b = self.link(path, **kw)
        self.assertEqual(st, 200, b)
        return b["url"]

    # ---- the tests ----

    def test_plain_get_without_token_is_401(self):
        st, b, _ = self.http("GET", f"{ART}/{self.exp}/{self.run_id}/artifacts/out/report.csv")
        self.assertEqual(st, 401, b)

    def test_reader_link_downloads_without_authorization(self):
        before = int(time.time() * 1000)
        st, b = self.link("out/report.csv")
        self.assertEqual(st, 200, b)
        url = b["url"]
        self.assertTrue(url.startswith(DL) and url.endswith("/report.csv"), url)
        self.assertNotIn(self.reader, url)
        self.assertLessEqual(before + TTL_S * 1000 - 2000, b["expires_ms"])
        self.assertLessEqual(b["expires_ms"], int(time.time() * 1000) + TTL_S * 1000 + 2000)
        st, body, r = self.http("GET", url)
        self.assertEqual(st, 200, body)
        self.assertEqual(body, self.data)
        self.assertEqual(r.getheader("Content-Disposition"),
                         'attachment; filename="report.csv"')
        self.assertEqual(r.getheader("Content-Type"), "text/csv; charset=utf-8")
        self.assertEqual(r.getheader("Content-Length"), str(len(self.data)))
        self.assertEqual(r.getheader("X-Content-Type-Options"), "nosniff")
        # the GET's own credentials play no part: a wrong token changes nothing
        st, body, _ = self.http("GET", url, token="not-a-token")
        self.assertEqual((st, body), (200, self.data))
        # the browser's name in the URL is for it alone: the file is the box's
        st, body, r = self.http("GET", url.rsplit("/", 1)[0] + "/other.bin")
        self.assertEqual((st, body), (200, self.data))
        self.assertIn('filename="report.csv"', r.getheader("Content-Disposition"))

    def test_names_that_need_quoting(self):
        for name, plain in (("données é.txt", "donn__es __.txt"),
                            ('a "quoted" name.bin', "a _quoted_ name.bin"),
                            ("100%.json", "100_.json")):
            self.put(self.exp, self.run_id, f"names/{name}", b"x" + name.encode())
            url = self.url_of(f"names/{name}")
            self.assertTrue(url.endswith("/" + urllib.parse.quote(name, safe="")), url)
            st, body, r = self.http("GET", url)
            self.assertEqual((st, body), (200, b"x" + name.encode()))
            cd = r.getheader("Content-Disposition")
            self.assertEqual(cd, f'attachment; filename="{plain}"; filename*=UTF-8\'\''
                             + urllib.parse.quote(name, safe="!#$&+-.^_`|~"))

    def test_changed_or_made_up_links_are_403(self):
        url = self.url_of("out/report.csv")
        sealed, name = url[len(DL):].split("/")
        i = len(sealed) // 2
        flipped = sealed[:i] + ("A" if sealed[i] != "A" else "B") + sealed[i + 1:]
        for bad in (flipped, sealed[:-1], sealed[:-4], sealed + "A", "A" * 80, "x",
                    "!!!!", "A" * 5000, sealed.replace("-", "+").replace("_", "/")):
            if bad == sealed:
                continue
            st, b, _ = self.http("GET", DL + urllib.parse.quote(bad, safe="") + "/" + name)
            self.assertEqual((st, b["error"]), (403, "this download link is not valid"),
                             bad[:40])
        st, b, _ = self.http("GET", DL)
        self.assertEqual(st, 403, b)
        st, b, _ = self.http("POST", url)
        self.assertEqual(st, 405, b)

    def test_refused_at_download_url(self):
        st, b = self.link("out/missing.csv")
        self.assertEqual(st, 404, b)
        st, b = self.link("out")  # a directory is no file
        self.assertEqual(st, 404, b)
        st, _, _ = self.http("POST", URL, {"run_id": self.run_id, "path": "out/report.csv"})
        self.assertEqual(st, 401)
        st, b = self.link("out/report.csv", token="not-a-token")
        self.assertEqual(st, 401, b)
        for body in ({}, {"run_id": self.run_id}, {"path": "x"}, {"run_id": 1, "path": "x"},
                     {"run_id": self.run_id, "path": "p/" * 600}):
            st, b, _ = self.http("POST", URL, body, self.reader)
            self.assertEqual(st, 400, (body, b))
        st, b, _ = self.http("POST", URL, token=self.reader, raw=b"not json")
        self.assertEqual(st, 400, b)
        st, b, _ = self.http("GET", URL, token=self.reader)
        self.assertEqual(st, 405, b)

    def test_a_workspace_the_caller_may_not_read(self):
        st, b, _ = self.http("POST", "/api/v1/auth/create_workspace", {"name": "vault"},
                             self.owner)
        self.assertEqual(st, 200, b)
        exp, run = self.new_run("secret", ws="vault")
        self.put(exp, run, "s.bin", b"secret bytes", ws="vault")
        wendy = self.token_of("wendy", "Reader", workspace="default")
        st, b = self.link("s.bin", token=wendy, run=run, ws="vault")
        self.assertEqual(st, 403, b)
        # the owner's link carries its workspace: no header needed to read it
        url = self.url_of("s.bin", token=self.owner, run=run, ws="vault")
        st, body, _ = self.http("GET", url)
        self.assertEqual((st, body), (200, b"secret bytes"))

    def test_a_revoked_token_s_link_is_refused(self):
        st, b, _ = self.http("POST", "/api/v1/auth/create_token",
                             {"name": "short", "owner": "rita"}, self.owner)
        self.assertEqual(st, 200, b)
        url = self.url_of("out/report.csv", token=b["token"])
        self.assertEqual(self.http("GET", url)[0], 200)
        st, b2, _ = self.http("POST", "/api/v1/auth/revoke_token",
                              {"token_id": b["token_id"]}, self.owner)
        self.assertEqual(st, 200, b2)
        wait_for(lambda: self.http("GET", url)[0] in (401, 403), timeout=10,
                 what="the revoked token's link refused")

    def test_expired_link_is_403(self):
        url = self.url_of("out/report.csv")
        self.assertEqual(self.http("GET", url)[0], 200)
        deadline = time.time() + TTL_S + 15
        while time.time() < deadline:
            st, b, _ = self.http("GET", url)
            if st != 200:
                break
            time.sleep(0.5)
        self.assertEqual((st, b["error"]), (403, "this download link has expired"))

    def test_big_file_streams(self):
        size = 64 * MIB + 12345
        block = os.urandom(MIB)
        data = block * 64 + block[:12345]
        self.put(self.exp, self.run_id, "big/weights.bin", data)
        url = self.url_of("big/weights.bin")
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            c.request("GET", url)
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.getheader("Content-Length"), str(size))
            self.assertEqual(r.getheader("Content-Type"), "application/octet-stream")
            h, n = hashlib.sha256(), 0
            while True:
                b = r.read(MIB)
                if not b:
                    break
                h.update(b)
                n += len(b)
        finally:
            c.close()
        self.assertEqual((n, h.hexdigest()), (size, hashlib.sha256(data).hexdigest()))

    def test_no_token_in_the_log(self):
        self.url_of("out/report.csv")
        self.assertNotIn(self.reader, self.k.read_log())


class Setting(unittest.TestCase):
    def test_ttl_bounds(self):
        """download_url_ttl_s is 10 to 86400: `cairnd --check` says so."""
        for ttl, rc in ((9, 2), (10, 0), (86400, 0), (86401, 2)):
            k = Kernel(services="  gateway:\n    plugin: gateway\n    mode: inproc\n"
                       f"    settings:\n      download_url_ttl_s: {ttl}\n")
            try:
                r = subprocess.run([CAIRND, "--conf", k.conf, "--check"], capture_output=True,
                                   text=True, timeout=60)
            finally:
                k.cleanup()
            self.assertEqual(r.returncode, rc, (ttl, r.stdout, r.stderr))
            if rc:
                self.assertIn("download_url_ttl_s", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
