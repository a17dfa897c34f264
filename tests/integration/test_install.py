"""An installed Cairn (README "Install"): `cmake --install build --prefix DIR`.

- every installed program (cairnd, cairn, cairn-plugin-host) and plugin
  (lib/cairn/plugins/*.so) finds libcairn inside DIR: its RUNPATH names a
  directory of the prefix that holds libcairn.so.0 (readelf), and `ldd`,
  with no LD_LIBRARY_PATH, resolves libcairn.so.0 to the prefix's copy;
- cairn.pc names the prefix with clean absolute paths (no `..`);
- the installed cairnd starts (its plugins from the prefix, inproc and as
  processes through the installed cairn-plugin-host), answers ping and
  health, and the installed CLI talks to it; the processes map the
  prefix's libcairn, not the build's.
"""
import glob
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cairn_harness as h  # noqa: E402


def clean_env(**extra):
    env = dict(os.environ)
    for k in ("LD_LIBRARY_PATH", "PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "CAIRN_PLUGIN_DIR",
              "CAIRN_ENDPOINT", "CAIRN_STATE"):
        env.pop(k, None)
    env.update(extra)
    return env


def runpath(path):
    out = subprocess.run(["readelf", "-d", path], stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    dirs = []
    for ln in out.splitlines():
        if "(RUNPATH)" in ln or "(RPATH)" in ln:
            for d in ln.split("[", 1)[1].rstrip("]").split(":"):
                dirs.append(d.replace("$ORIGIN", os.path.dirname(path)))
    return dirs


class Installed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cairn-install-")
        cls.prefix = os.path.join(cls.tmp, "prefix")
        p = subprocess.run(["cmake", "--install", h.BUILD, "--prefix", cls.prefix],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise AssertionError("cmake --install failed:\n" + p.stdout.decode())
        libs = glob.glob(os.path.join(cls.prefix, "lib*", "libcairn.so.0"))
        assert len(libs) == 1, libs
        cls.libdir = os.path.dirname(libs[0])
        cls.bins = [os.path.join(cls.prefix, "bin", b)
                    for b in ("cairnd", "cairn", "cairn-plugin-host")]
        cls.plugins = sorted(glob.glob(os.path.join(cls.libdir, "cairn", "plugins", "*.so")))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def inside(self, path):
        real = os.path.realpath(path)
        return real.startswith(os.path.realpath(self.prefix) + os.sep)

    def test_layout(self):
        for b in self.bins:
            self.assertTrue(os.access(b, os.X_OK), b)
        names = [os.path.basename(p) for p in self.plugins]
        self.assertIn("cairn_echo.so", names)
        self.assertIn("cairn_storage.so", names)

    def test_runpath_finds_libcairn_in_the_prefix(self):
        for f in self.bins + self.plugins:
            with self.subTest(f):
                dirs = runpath(f)
                found = [d for d in dirs if os.path.isfile(os.path.join(d, "libcairn.so.0"))]
                self.assertTrue(found, f"{f}: RUNPATH {dirs} holds no libcairn.so.0")
                self.assertTrue(all(self.inside(d) for d in found),
                                f"{f}: RUNPATH {found} outside {self.prefix}")

    def test_ldd_finds_libcairn_in_the_prefix(self):
        for f in self.bins + self.plugins:
            with self.subTest(f):
                out = subprocess.run(["ldd", f], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=clean_env()).stdout.decode()
                line = [ln for ln in out.splitlines() if "libcairn.so.0" in ln]
                self.assertEqual(len(line), 1, out)
                self.assertNotIn("not found", line[0], out)
                path = line[0].split("=>", 1)[1].split("(")[0].strip()
                self.assertTrue(self.inside(path), f"{f}: ldd finds libcairn at {path}")

    def test_pkg_config_paths_are_clean_and_absolute(self):
        pcdir = os.path.join(self.libdir, "pkgconfig")
        want = {"prefix": self.prefix, "libdir": self.libdir,
                "includedir": os.path.join(self.prefix, "include"),
                "plugindir": os.path.join(self.libdir, "cairn", "plugins")}
        for var, path in want.items():
            with self.subTest(var):
                out = subprocess.run(["pkg-config", f"--variable={var}", "cairn"],
                                     stdout=subprocess.PIPE, check=True,
                                     env=clean_env(PKG_CONFIG_PATH=pcdir)).stdout.decode().strip()
                self.assertTrue(os.path.isabs(out), out)
                self.assertEqual(out, os.path.normpath(out), f"{var}={out} is not clean")
                self.assertEqual(out, os.path.normpath(path))

    def test_installed_cairnd_runs(self):
        services = ("  echo:\n    plugin: echo\n    mode: inproc\n"
                    "  tracking:\n    plugin: storage\n    mode: process\n")
        k = h.Kernel(services=services, cairnd=self.bins[0])
        try:
            k.start()
            c = k.client()
            try:
                hdr, body = c.call("sys", "ping")
                self.assertEqual(hdr["st"], 200)
                self.assertIs(body["pong"], True)
            finally:
                c.close()
            health = k.health()
            self.assertTrue(health["ok"], health)
            tracking = k.plugin("tracking")
            # Both processes run the prefix's libcairn (the plugin host's RUNPATH).
            for pid in (k.proc.pid, tracking["pid"]):
                with open(f"/proc/{pid}/maps") as f:
                    maps = {ln.split()[-1] for ln in f if "libcairn.so" in ln}
                self.assertEqual(len(maps), 1, maps)
                self.assertTrue(self.inside(maps.pop()), f"pid {pid} maps another libcairn")
            # The installed CLI talks to it.
            p = subprocess.run([self.bins[1], "ping"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT,
                               env=clean_env(CAIRN_ENDPOINT=k.endpoint))
            self.assertEqual(p.returncode, 0, p.stdout.decode())
            self.assertIn("pong", p.stdout.decode())
            self.assertEqual(k.stop(), 0, k.read_log())
        finally:
            k.cleanup()

    def test_installed_gateway_serves_the_ui(self):
        """share/cairn/ui (when the build has the bundle: node and npm were
        there), found by the installed gateway beside its bin/ by default."""
        built = os.path.join(h.BUILD, "share", "cairn", "ui", "index.html")
        if not os.path.exists(built):
            self.skipTest("the build has no UI bundle (no node): test_gateway_static covers it")
        index = os.path.join(self.prefix, "share", "cairn", "ui", "index.html")
        self.assertTrue(os.path.isfile(index), index)
        port = h.free_port()
        services = ("  gateway:\n    plugin: gateway\n    mode: process\n"
                    f"    settings:\n      listen: 127.0.0.1:{port}\n")
        k = h.Kernel(services=services, cairnd=self.bins[0])
        try:
            k.start()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", "/experiments/1")
            r = c.getresponse()
            body = r.read()
            c.close()
            self.assertEqual(r.status, 200, body)
            with open(index, "rb") as f:
                self.assertEqual(body, f.read())
        finally:
            k.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
