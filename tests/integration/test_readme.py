"""The README's tracking walk-through, run as a new user would, its blocks
taken from README.md verbatim:

1. the Python tracking example (a run in experiment `mnist`);
2. "Install": `cmake --install build --prefix /opt/cairn`, with /opt/cairn
   made a temp dir;
3. the C example, saved as mnist.c, compiled with the README's pkg-config
   lines against that install, and run: it prints a run id, and that run
   holds the 100 points and is FINISHED;
4. the same program compiled against the build tree, the README's other
   line, and run;
5. the `search_runs` example, which looks the experiment's id up by name and
   finds the Python run (the one with `params.optimizer = 'adam'`).

Shell blocks run in a temp dir laid out like the repository root (symlinks
`build`, `include`, `sdk`), with CAIRN_ENDPOINT naming a private cairnd.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cairn_harness as h  # noqa: E402

README = os.path.join(h.SOURCE, "README.md")


def blocks(lang):
    with open(README) as f:
        text = f.read()
    return re.findall(r"^```" + lang + r"\n(.*?)^```", text, re.S | re.M)


def one_block(lang, marker):
    found = [b for b in blocks(lang) if marker in b]
    assert len(found) == 1, f"README: {len(found)} {lang} blocks hold {marker!r}"
    return found[0]


def sanitized():
    try:
        with open(os.path.join(h.BUILD, "CMakeCache.txt")) as f:
            return "CAIRN_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


class Readme(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cairn-readme-")
        cls.root = os.path.join(cls.tmp, "repo")
        os.mkdir(cls.root)
        os.symlink(os.path.realpath(h.BUILD), os.path.join(cls.root, "build"))
        for d in ("include", "sdk"):
            os.symlink(os.path.realpath(os.path.join(h.SOURCE, d)), os.path.join(cls.root, d))
        cls.prefix = os.path.join(cls.tmp, "opt-cairn")
        # Auth on, as in the embedded default, with the state dir at ./var of
        # the directory the README's commands run in: they find owner.token
        # there by themselves, as a new user's do after tools/setup.sh.
        cls.k = h.Kernel(services="  auth:\n    plugin: auth\n    mode: inproc\n"
                         "  tracking:\n    plugin: storage\n    mode: inproc\n"
                         "  artifacts:\n    plugin: storage\n    mode: inproc\n",
                         auth="auth", state=os.path.join(cls.root, "var")).start()
        with open(os.path.join(cls.root, "var", "owner.token")) as f:
            cls.token = f.read().strip()
        cls.env = dict(os.environ, CAIRN_ENDPOINT=cls.k.endpoint)
        for k in ("PKG_CONFIG_PATH", "LD_LIBRARY_PATH", "CAIRN_RUN_ID", "CFLAGS", "LDFLAGS",
                  "CAIRN_TOKEN", "CAIRN_STATE", "XDG_CONFIG_HOME"):
            cls.env.pop(k, None)
        if sanitized():  # an ASan libcairn in a program built without ASan
            cls.env["ASAN_OPTIONS"] = "verify_asan_link_order=0:detect_leaks=0"

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def sh(self, script, what):
        script = script.replace("/opt/cairn", self.prefix)
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=self.root,
                           env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=300)
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 0, f"{what}:\n{script}\n--- stdout\n{out}\n--- stderr\n{err}")
        return out

    def call(self, svc, verb, body):
        c = self.k.client()
        try:
            hdr, out = c.call(svc, verb, body, tok=self.token)
        finally:
            c.close()
        self.assertEqual(hdr["st"], 200, hdr)
        return out

    def check_c_run(self, out):
        lines = out.strip().splitlines()
        self.assertTrue(lines, "mnist printed nothing")
        run_id = lines[-1].strip()
        run = self.call("tracking", "get_run", {"run_id": run_id})["run"]
        self.assertEqual(run["info"]["status"], "FINISHED")
        self.assertEqual(run["info"]["run_name"], "baseline-c")
        hist = self.call("tracking", "get_metric_history", {"run_id": run_id, "key": "loss"})
        self.assertEqual(len(hist["metrics"]), 100)
        self.assertAlmostEqual(hist["metrics"][-1]["value"], 0.01)
        return run_id

    def test_walkthrough(self):
        # 1. Python tracking.
        py = one_block("python", "start_run")
        p = subprocess.run(["/usr/bin/python3", "-c", py], cwd=self.root, env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout.decode())
        py_run = p.stdout.decode().strip().splitlines()[-1]

        # 2. Install.
        install = [ln for ln in one_block("sh", "cmake --install build").splitlines()
                   if ln.startswith("cmake --install build")]
        self.assertEqual(len(install), 1, install)
        self.sh(install[0], "README install")
        self.assertTrue(os.path.isfile(os.path.join(self.prefix, "lib", "pkgconfig", "cairn.pc")))

        # 3. The C example against the install: compiles and runs.
        with open(os.path.join(self.root, "mnist.c"), "w") as f:
            f.write(one_block("c", "cairn_start_run"))
        out = self.sh(one_block("sh", "pkg-config --cflags --libs cairn"),
                      "README: compile mnist.c with pkg-config, then run it")
        c_run = self.check_c_run(out)
        ldd = subprocess.run(["ldd", os.path.join(self.root, "mnist")], env=self.env,
                             stdout=subprocess.PIPE).stdout.decode()
        self.assertIn(os.path.join(self.prefix, "lib", "libcairn.so.0"), ldd)

        # 4. The same against the build tree.
        os.unlink(os.path.join(self.root, "mnist"))
        out = self.sh(one_block("sh", "-Lbuild/lib"),
                      "README: compile mnist.c against the build tree, then run it")
        c_run2 = self.check_c_run(out)
        self.assertNotEqual(c_run, c_run2)

        # 5. search_runs, in the experiment looked up by name.
        out = self.sh(one_block("sh", "search_runs"), "README: search_runs")
        runs = json.loads(out)["runs"]
        ids = [r["info"]["run_id"] for r in runs]
        self.assertEqual(ids, [py_run], out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
