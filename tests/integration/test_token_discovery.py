"""Where clients find their token when none is given (issue 13): the CLI
(through the C SDK's cairn_token_find) and the Python SDK's find_token look,
in order, at $CAIRN_TOKEN, the token `cairn login` saved
($XDG_CONFIG_HOME/cairn/token, else ~/.config/cairn/token), then owner.token
of the state dir they can see ($CAIRN_STATE, else ./var). A fake kernel
records the `tok` header each client really sends."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sdk", "python"))
from cairn_harness import BIN, DEADLINE, FakeKernel  # noqa: E402

SDK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk", "python")


class Discovery(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cairn-tok-")
        self.home = os.path.join(self.tmp, "home")
        self.cwd = os.path.join(self.tmp, "work")
        os.makedirs(self.home)
        os.makedirs(self.cwd)
        self.seen = []

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def reply(self, hdr, body):
        self.seen.append(hdr.get("tok"))
        return 200, {}, b"\x80"

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if k not in ("CAIRN_TOKEN", "CAIRN_STATE", "XDG_CONFIG_HOME")}
        env["HOME"] = self.home
        env.update(extra)
        return env

    def write(self, path, text, mode=0o600):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)

    def sent(self, env):
        """The tok the CLI sends, and the one Python's find_token gives."""
        self.seen.clear()
        with FakeKernel(self.reply) as fk:
            r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", fk.endpoint,
                                "call", "echo", "echo"], cwd=self.cwd, env=env,
                               capture_output=True, text=True, timeout=DEADLINE)
            self.assertEqual(r.returncode, 0, r.stderr)
        py = subprocess.run(["/usr/bin/python3", "-c",
                             "import sys; sys.path.insert(0, sys.argv[1]); import cairn; "
                             "print(cairn.find_token())", SDK],
                            cwd=self.cwd, env=env, capture_output=True, text=True,
                            timeout=DEADLINE)
        self.assertEqual(py.returncode, 0, py.stderr)
        found = py.stdout.strip()
        return self.seen[0], None if found == "None" else found

    def test_order(self):
        var_tok = os.path.join(self.cwd, "var", "owner.token")
        self.assertEqual(self.sent(self.env()), (None, None))  # none anywhere
        self.write(var_tok, "cairn_from_var\n")
        self.assertEqual(self.sent(self.env()), ("cairn_from_var",) * 2)
        state = os.path.join(self.tmp, "state")
        self.write(os.path.join(state, "owner.token"), "  cairn_from_state  \n")
        self.assertEqual(self.sent(self.env(CAIRN_STATE=state)), ("cairn_from_state",) * 2)
        self.write(os.path.join(self.home, ".config", "cairn", "token"), "cairn_login\n")
        self.assertEqual(self.sent(self.env(CAIRN_STATE=state)), ("cairn_login",) * 2)
        xdg = os.path.join(self.tmp, "xdg")
        self.write(os.path.join(xdg, "cairn", "token"), "cairn_xdg\n")
        self.assertEqual(self.sent(self.env(XDG_CONFIG_HOME=xdg)), ("cairn_xdg",) * 2)
        self.assertEqual(self.sent(self.env(XDG_CONFIG_HOME=xdg, CAIRN_TOKEN="cairn_env")),
                         ("cairn_env",) * 2)

    def test_only_small_regular_files(self):
        var = os.path.join(self.cwd, "var")
        os.makedirs(var)
        elsewhere = os.path.join(self.tmp, "secret")
        self.write(elsewhere, "cairn_linked\n")
        os.symlink(elsewhere, os.path.join(var, "owner.token"))  # not followed
        self.assertEqual(self.sent(self.env()), (None, None))
        os.remove(os.path.join(var, "owner.token"))
        self.write(os.path.join(var, "owner.token"), "x" * 5000)  # too big
        self.assertEqual(self.sent(self.env()), (None, None))
        os.remove(os.path.join(var, "owner.token"))
        os.mkdir(os.path.join(var, "owner.token"))  # a directory
        self.assertEqual(self.sent(self.env()), (None, None))


if __name__ == "__main__":
    unittest.main()
