"""Cairn Studio's files served by the gateway (plugins/gateway/static.c),
read with urllib's http.client against a real cairnd: index.html at / and
at the app's own routes (any path that names no file and has no
extension), assets with their Content-Type, cached a year under /assets/
(hashed names), an ETag and 304 elsewhere, the gzip'ed twin for a client
that takes gzip; traversal (.., %2e%2e, hidden files, a symlink out of
ui_dir) refused; the API's routes unchanged, an unknown API path still a
JSON 404; a UI that was not built answered with a sentence. The gateway
inproc and in process mode; its default ui_dir (the build's
share/cairn/ui) too."""
import gzip
import http.client
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import BUILD, free_port  # noqa: E402
from test_gateway import GatewayKernel  # noqa: E402

INDEX = b"<!doctype html><title>Cairn Studio</title><div id=app></div>\n"
APP_JS = b"console.log('studio');\n" * 50


def make_ui(root):
    os.makedirs(os.path.join(root, "assets"))
    with open(os.path.join(root, "index.html"), "wb") as f:
        f.write(INDEX)
    with open(os.path.join(root, "assets", "main-ABC123.js"), "wb") as f:
        f.write(APP_JS)
    with open(os.path.join(root, "assets", "main-ABC123.js.gz"), "wb") as f:
        f.write(gzip.compress(APP_JS))
    with open(os.path.join(root, "assets", "main-ABC123.css"), "wb") as f:
        f.write(b"body{}")
    with open(os.path.join(root, ".secret"), "wb") as f:
        f.write(b"hidden")
    outside = os.path.join(os.path.dirname(root), "outside.txt")
    with open(outside, "w") as f:
        f.write("not the UI's")
    os.symlink(outside, os.path.join(root, "assets", "link.txt"))


class StaticBase:
    MODE = "inproc"

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cairn-ui-")
        cls.ui = os.path.join(cls.tmp, "ui")
        make_ui(cls.ui)
        cls.port = free_port()
        cls.k = GatewayKernel(cls.MODE, cls.port, settings={"ui_dir": cls.ui}).start()

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def get(self, path, method="GET", headers=None, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def test_index_at_root_and_app_routes(self):
        for path in ["/", "/experiments/7", "/runs/abc?x=1", "/compare", "/index.html"]:
            st, h, body = self.get(path)
            self.assertEqual(st, 200, path)
            self.assertEqual(body, INDEX, path)
            self.assertEqual(h["content-type"], "text/html; charset=utf-8", path)
            self.assertEqual(h["cache-control"], "no-cache", path)

    def test_asset_types_and_caching(self):
        st, h, body = self.get("/assets/main-ABC123.js")
        self.assertEqual((st, body), (200, APP_JS))
        self.assertEqual(h["content-type"], "text/javascript; charset=utf-8")
        self.assertIn("immutable", h["cache-control"])
        self.assertNotIn("content-encoding", h)
        st, h, body = self.get("/assets/main-ABC123.css")
        self.assertEqual((st, h["content-type"], body), (200, "text/css; charset=utf-8", b"body{}"))

    def test_gzip_twin(self):
        st, h, body = self.get("/assets/main-ABC123.js", headers={"Accept-Encoding": "gzip, br"})
        self.assertEqual(st, 200)
        self.assertEqual(h["content-encoding"], "gzip")
        self.assertEqual(h["vary"], "Accept-Encoding")
        self.assertEqual(gzip.decompress(body), APP_JS)
        # a file without a twin is sent as it is
        st, h, body = self.get("/", headers={"Accept-Encoding": "gzip"})
        self.assertEqual((st, body), (200, INDEX))
        self.assertNotIn("content-encoding", h)

    def test_etag_304(self):
        st, h, _ = self.get("/")
        etag = h["etag"]
        st, h2, body = self.get("/", headers={"If-None-Match": etag})
        self.assertEqual((st, body), (304, b""))
        st, _, _ = self.get("/", headers={"If-None-Match": '"other"'})
        self.assertEqual(st, 200)

    def test_head(self):
        st, h, body = self.get("/assets/main-ABC123.js", method="HEAD")
        self.assertEqual((st, body), (200, b""))
        self.assertEqual(h["content-type"], "text/javascript; charset=utf-8")

    def test_traversal_refused(self):
        for path in ["/../../etc/passwd", "/assets/../../outside.txt", "/%2e%2e/outside.txt",
                     "/assets/%2E%2E/%2E%2E/outside.txt", "/.secret", "/assets/.hidden/x"]:
            st, h, body = self.get(path)
            self.assertEqual(st, 400, path)
            self.assertIn("may not start with '.'", json.loads(body)["error"], path)
        # a symlink that leads out of ui_dir is no file of the UI's
        st, _, body = self.get("/assets/link.txt")
        self.assertEqual(st, 404)
        self.assertNotIn(b"not the UI's", body)

    def test_missing_asset_is_404(self):
        st, h, body = self.get("/assets/main-GONE.js")
        self.assertEqual(st, 404)
        self.assertEqual(json.loads(body)["code"], "not_found")

    def test_api_unaffected(self):
        st, _, body = self.get("/healthz")
        self.assertEqual((st, json.loads(body)["status"]), (200, "ok"))
        st, _, body = self.get("/api/v1/echo/echo", method="POST", body=b'{"x": 1}',
                               headers={"Content-Type": "application/json"})
        self.assertEqual((st, json.loads(body)), (200, {"x": 1}))
        st, _, body = self.get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default")
        self.assertEqual((st, json.loads(body)["experiment"]["name"]), (200, "Default"))
        st, h, body = self.get("/metrics")
        self.assertEqual(st, 200)
        self.assertIn(b"cairn_kernel_uptime_seconds", body)
        # unknown API paths stay JSON 404s, never the app
        for path in ["/api/v2/nothing", "/api/2.0/mlflow/nothing", "/ajax-api/x"]:
            st, h, body = self.get(path)
            self.assertEqual(st, 404, path)
            self.assertTrue(h["content-type"].startswith("application/json"), path)
        # other methods than GET and HEAD are not the UI's
        st, _, body = self.get("/experiments/7", method="POST", body=b"{}")
        self.assertEqual(st, 404)
        self.assertIn("no route", json.loads(body)["error"])

    def test_workspace_prefix(self):
        st, _, body = self.get("/ws/team/experiments/3")
        self.assertEqual((st, body), (200, INDEX))


class StaticInproc(StaticBase, unittest.TestCase):
    MODE = "inproc"


class StaticProcess(StaticBase, unittest.TestCase):
    MODE = "process"


class NotBuilt(unittest.TestCase):
    """A ui_dir without index.html: / says so in a sentence."""

    def test_sentence(self):
        tmp = tempfile.mkdtemp(prefix="cairn-ui-")
        port = free_port()
        k = GatewayKernel("inproc", port, settings={"ui_dir": tmp}).start()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", "/")
            r = c.getresponse()
            body = r.read().decode()
            c.close()
            self.assertEqual(r.status, 404)
            self.assertIn("Cairn Studio (the web UI) was not built", body)
            self.assertIn("tools/install-deps.sh", body)
        finally:
            k.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)


class DefaultDir(unittest.TestCase):
    """No ui_dir: the build's share/cairn/ui, beside bin/ (built when node
    and npm are present; else the sentence)."""

    def test_default(self):
        port = free_port()
        k = GatewayKernel("process", port).start()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", "/experiments/1")
            r = c.getresponse()
            body = r.read().decode()
            c.close()
            if os.path.exists(os.path.join(BUILD, "share", "cairn", "ui", "index.html")):
                self.assertEqual(r.status, 200)
                self.assertIn("<title>Cairn Studio</title>", body)
            else:
                self.assertEqual(r.status, 404)
                self.assertIn("was not built", body)
        finally:
            k.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
