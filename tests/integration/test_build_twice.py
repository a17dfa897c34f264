"""A second build right after a first is a no-op (the README's two commands
both build: the second must not recompile what the first just built).

tools/build.sh configures (`cmake -S . -B BUILD ...`) and builds on every
run. Here, in a fresh temp build dir: configure exactly as tools/build.sh
does and build the targets that use the pkg-config imported targets (libzmq's
`-isystem` flag used to move between include dirs and compile options on the
re-configure); then configure and build again: no "Building C object", and
every target's compile flags (flags.make) identical after both configures.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cairn_harness as h  # noqa: E402

TARGETS = ["cairn", "cairn-plugin-host", "cairn_storage_core"]


def flags(build):
    out = {}
    for root, _, files in os.walk(build):
        for f in files:
            if f == "flags.make":
                p = os.path.join(root, f)
                with open(p) as fh:
                    out[os.path.relpath(p, build)] = fh.read()
    return out


class BuildTwice(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cairn-build-twice-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def step(self):
        configure = ["cmake", "-S", h.SOURCE, "-B", self.tmp,
                     "-DCMAKE_BUILD_TYPE=RelWithDebInfo"]
        p = subprocess.run(configure, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(p.returncode, 0, p.stdout.decode(errors="replace"))
        p = subprocess.run(["cmake", "--build", self.tmp, "-j2", "--target"] + TARGETS,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 0, out)
        return out

    def test_second_build_compiles_nothing(self):
        first = self.step()
        self.assertIn("Building C object", first)
        before = flags(self.tmp)
        second = self.step()
        after = flags(self.tmp)
        self.assertTrue(before)
        for name in sorted(before):
            self.assertEqual(before[name], after.get(name),
                             f"{name} changed on the re-configure")
        self.assertNotIn("Building C object", second, second)


if __name__ == "__main__":
    unittest.main(verbosity=2)
