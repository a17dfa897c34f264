"""The `cairn envs ...` commands, end to end: the built CLI against a
private cairnd with the registry (inproc). Environments created with
every option, listed (the latest of each, one name's versions, --all),
shown by reference, archived; bad input answered with a sentence and exit
1 (the server's) or 2 (the command line's)."""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import Kernel  # noqa: E402
from test_cli_tracking import cli  # noqa: E402

SERVICES = "  registry:\n    plugin: registry\n    mode: inproc\n"


class Envs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(SERVICES).start()
        cls.ep = cls.k.endpoint

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def ok(self, *args, stdin=None):
        r = cli(self.ep, *args, stdin=stdin)
        self.assertEqual(r.returncode, 0, (args, r.stdout, r.stderr))
        return r.stdout

    def fails(self, code, *args, stdin=None):
        r = cli(self.ep, *args, stdin=stdin)
        self.assertEqual(r.returncode, code, (args, r.stdout, r.stderr))
        self.assertTrue(r.stderr.startswith("cairn: "), r.stderr)
        return r.stderr

    def test_create_list_show_archive(self):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("numpy==2.1\npandas\n")
        try:
            e = json.loads(self.ok("--json", "envs", "create", "py311", "--python",
                                   "/opt/venvs/py311", "--requirements", f.name,
                                   "--env", "OMP_NUM_THREADS=4", "--env", "X=a=b",
                                   "--description", "first", "--tag", "team=ml"))
        finally:
            os.unlink(f.name)
        e = e["environment"]
        self.assertEqual((e["name"], e["version"], e["python"], e["requirements"],
                          e["env_vars"], e["description"], e["tags"]),
                         ("py311", 1, "/opt/venvs/py311", "numpy==2.1\npandas\n",
                          {"OMP_NUM_THREADS": "4", "X": "a=b"}, "first", {"team": "ml"}))
        out = self.ok("envs", "create", "py311", "--requirements", "-", stdin="torch\n")
        lines = out.strip().splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "VERSION", "PYTHON", "ARCHIVED",
                                            "DESCRIPTION"])
        self.assertEqual(lines[1].split()[:2], ["py311", "2"])
        self.ok("envs", "create", "other")
        listed = json.loads(self.ok("--json", "envs", "list"))["environments"]
        self.assertEqual([(x["name"], x["version"]) for x in listed
                          if x["name"] in ("other", "py311")],
                         [("other", 1), ("py311", 2)])
        table = self.ok("envs", "list", "py311")
        self.assertEqual(len(table.strip().splitlines()), 3, table)  # a title, two rows
        shown = json.loads(self.ok("--json", "envs", "show", "py311"))["environment"]
        self.assertEqual((shown["version"], shown["requirements"]), (2, "torch\n"))
        shown = json.loads(self.ok("envs", "show", "env:py311:1"))  # pretty JSON
        self.assertEqual(shown["environment"]["python"], "/opt/venvs/py311")
        out = self.ok("envs", "archive", "py311:2")
        self.assertIn("true", out)
        shown = json.loads(self.ok("--json", "envs", "show", "py311"))["environment"]
        self.assertEqual(shown["version"], 1)
        listed = json.loads(self.ok("--json", "envs", "list", "py311"))["environments"]
        self.assertEqual([x["version"] for x in listed], [1])
        listed = json.loads(self.ok("--json", "envs", "list", "py311", "--all"))
        self.assertEqual([x["version"] for x in listed["environments"]], [2, 1])
        listed = json.loads(self.ok("--json", "envs", "list", "--max", "1"))
        self.assertEqual(len(listed["environments"]), 1)

    def test_bad_input(self):
        self.ok("envs", "create", "bad")
        # The server's refusals: exit 1, its sentence.
        self.assertIn("absolute", self.fails(1, "envs", "create", "x", "--python", "py"))
        self.assertIn("1A", self.fails(1, "envs", "create", "x", "--env", "1A=v"))
        self.assertIn("bad_request", self.fails(1, "envs", "create", "a:b"))
        self.assertIn("not_found", self.fails(1, "envs", "show", "bad:7"))
        self.assertIn("not_found", self.fails(1, "envs", "show", "nope"))
        self.assertIn("not_found", self.fails(1, "envs", "list", "nope"))
        self.assertIn("not_found", self.fails(1, "envs", "archive", "bad:9"))
        self.fails(1, "envs", "archive", "bad:x")
        # The command line's: exit 2.
        self.assertIn("NAME=VALUE", self.fails(2, "envs", "create", "x", "--env", "novalue"))
        self.assertIn("twice", self.fails(2, "envs", "create", "x", "--env", "A=1",
                                          "--env", "A=2"))
        self.assertIn("KEY=VALUE", self.fails(2, "envs", "create", "x", "--tag", "k"))
        self.fails(2, "envs", "create", "x", "--requirements", "/nonexistent/req.txt")
        self.assertIn("over", self.fails(2, "envs", "create", "x", "--requirements", "-",
                                         stdin="r" * 70000))
        self.assertIn("no version", self.fails(2, "envs", "archive", "bad"))
        self.fails(2, "envs", "create")
        self.fails(2, "envs", "list", "a", "b")
        self.fails(2, "envs", "show", "bad", "--all")
        self.fails(2, "envs", "create", "x", "--python", "/a", "--python", "/b")
        self.fails(2, "models", "create", "x", "--python", "/a")
        # Nothing was created along the way.
        listed = json.loads(self.ok("--json", "envs", "list"))["environments"]
        self.assertNotIn("x", [x["name"] for x in listed])

    def test_help(self):
        out = self.ok("help")
        for cmd in ["envs create NAME", "envs list [NAME]", "envs show NAME[:VERSION]",
                    "envs archive NAME:VERSION", "--requirements FILE", "--env K=V"]:
            self.assertIn(cmd, out)
        for line in out.splitlines():
            self.assertLessEqual(len(line), 80, line)


if __name__ == "__main__":
    unittest.main(verbosity=2)
