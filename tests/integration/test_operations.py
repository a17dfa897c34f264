"""Running cairnd as an operator does (README "Stopping and restarting",
docs/CONF.md "The state dir"):

- its state is private: every file and directory under the state dir is the
  owner's only (umask 077; the state dir 0700), whatever the caller's umask;
- it writes STATE/cairnd.pid (0600, its pid), removes it when it exits, and
  a second cairnd on the same state dir refuses to start, naming the first;
- `cairnd --check` binds and creates nothing, so it succeeds beside a
  running cairnd on the same ports and state;
- a relative state dir is taken from the directory cairnd starts in and
  made absolute at start (the ipc sockets of process-mode plugins too);
- an ipc:// address too long for a Unix socket is a clear error;
- stopping cairnd with process-mode plugins is quiet and says "stopped".
"""
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cairn_harness import BIN, CAIRND, DEADLINE, Kernel, free_port, wait_for  # noqa: E402

CLI = os.path.join(BIN, "cairn")
TRACKING = ("  tracking:\n    plugin: storage\n    mode: inproc\n"
            "  artifacts:\n    plugin: storage\n    mode: process\n"
            "  echo:\n    plugin: echo\n    mode: process\n")


def cli(k, *args):
    env = dict(os.environ, CAIRN_ENDPOINT=k.endpoint)
    p = subprocess.run([CLI] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=DEADLINE)
    out = p.stdout.decode(errors="replace").strip()
    assert p.returncode == 0, f"cairn {' '.join(args)}: {p.returncode}\n{out}\n{p.stderr}"
    return out


def open_entries(root):
    """Every file and directory under root (root too) that group or other
    may read, write or enter: [(path, mode)]."""
    bad = []
    for d, dirs, files in os.walk(root):
        for p in [d] + [os.path.join(d, f) for f in files]:
            st = os.lstat(p)
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
                bad.append((p, oct(st.st_mode & 0o7777)))
    return bad


def run_cairnd(args, cwd=None, env_extra=None, timeout=DEADLINE):
    env = dict(os.environ)
    for k in ("CAIRN_ENDPOINT", "CAIRN_STATE"):
        env.pop(k, None)
    env.update(env_extra or {})
    return subprocess.run([CAIRND] + args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


class PrivateState(unittest.TestCase):
    """A: nothing under the state dir is open to group or other."""

    def test_every_file_is_private(self):
        old = os.umask(0o022)  # the caller's permissive umask must not matter
        try:
            k = Kernel(services=TRACKING)
            k.start()
        finally:
            os.umask(old)
        try:
            self.assertFalse(os.path.exists(os.path.join(k.tmp, "never")))
            exp = cli(k, "experiments", "create", "perm")
            run = cli(k, "runs", "create", exp, "--name", "r")
            cli(k, "metrics", "log", run, "loss", "0.5", "--step", "1")
            src = os.path.join(k.tmp, "model.bin")
            with open(src, "wb") as f:
                f.write(os.urandom(300_000))
            os.chmod(src, 0o644)
            cli(k, "artifacts", "upload", run, src)
            cli(k, "artifacts", "download", run, "model.bin", os.path.join(k.tmp, "back.bin"))
            # While it runs: the db, its WAL and shm, the journal, the
            # artifacts, the sockets, the pid file.
            names = {f for _, _, fs in os.walk(k.state) for f in fs}
            for want in ("tracking.db", "cairnd.pid", "workers.sock", "events.sock"):
                self.assertIn(want, names)
            self.assertTrue(any(n.startswith("tracking.db-") for n in names), names)
            self.assertEqual(stat.S_IMODE(os.stat(k.state).st_mode), 0o700)
            self.assertEqual(open_entries(k.state), [])
            self.assertEqual(k.stop(), 0, k.read_log())
            self.assertEqual(open_entries(k.state), [])
        finally:
            k.cleanup()


class PidFile(unittest.TestCase):
    """G: cairnd's own pid file."""

    def test_written_locked_and_removed(self):
        k = Kernel()
        k.start()
        try:
            pidf = os.path.join(k.state, "cairnd.pid")
            with open(pidf) as f:
                self.assertEqual(f.read().strip(), str(k.proc.pid))
            self.assertEqual(stat.S_IMODE(os.stat(pidf).st_mode), 0o600)
            self.assertIn(f"pid {k.proc.pid}", k.read_log())
            # A second cairnd on the same state dir (other ports) refuses.
            conf = os.path.join(k.tmp, "second.yaml")
            with open(conf, "w") as f:
                f.write(f"kernel:\n  endpoint: tcp://127.0.0.1:{free_port()}\n"
                        f"  events: tcp://127.0.0.1:{free_port()}\n  auth: none\n"
                        "services:\n  echo:\n    plugin: echo\n    mode: inproc\n")
            r = run_cairnd(["--conf", conf, "--state", k.state])
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("another cairnd", r.stderr)
            self.assertIn(f"pid {k.proc.pid}", r.stderr)
            with open(pidf) as f:
                self.assertEqual(f.read().strip(), str(k.proc.pid))
            self.assertEqual(k.client().call("sys", "ping")[0]["st"], 200)
            # `kill $(cat STATE/cairnd.pid)`: a clean stop, the file gone.
            os.kill(int(open(pidf).read()), signal.SIGTERM)
            self.assertEqual(k.proc.wait(DEADLINE), 0)
            self.assertFalse(os.path.exists(pidf))
            self.assertIn("cairnd: stopped", k.read_log())
        finally:
            k.cleanup()

    def test_a_dead_cairnds_pid_file_is_taken(self):
        k = Kernel()
        k.start()
        try:
            pidf = os.path.join(k.state, "cairnd.pid")
            k.proc.kill()  # SIGKILL: no cleanup, the file stays
            k.proc.wait()
            k.logf.close()
            self.assertTrue(os.path.exists(pidf))
            k.start()  # the same state dir: starts, and the file is its own
            with open(pidf) as f:
                self.assertEqual(f.read().strip(), str(k.proc.pid))
        finally:
            k.cleanup()


class Check(unittest.TestCase):
    """C: --check binds and creates nothing."""

    def test_check_beside_a_running_cairnd(self):
        k = Kernel(services=TRACKING)
        k.start()
        try:
            before = sorted(os.listdir(k.state))
            pid = open(os.path.join(k.state, "cairnd.pid")).read()
            r = run_cairnd(["--conf", k.conf, "--state", k.state, "--check"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("is valid", r.stdout)
            self.assertEqual(sorted(os.listdir(k.state)), before)
            self.assertEqual(open(os.path.join(k.state, "cairnd.pid")).read(), pid)
            self.assertEqual(k.health()["ok"], True)
        finally:
            k.cleanup()

    def test_storage_settings_are_typed(self):
        """The storage plugin's settings are checked from its typed table:
        each bad value is refused with a sentence naming it, before any
        service starts."""
        tmp = tempfile.mkdtemp(prefix="cairn-check-")
        try:
            conf = os.path.join(tmp, "c.yaml")
            for setting, want in (("durability: fsync", "must be process or power"),
                                  ("upload_idle: 0", "upload_idle"),
                                  ("uploads_max: -1", "uploads_max"),
                                  ("io_uring: maybe", "io_uring")):
                with open(conf, "w") as f:
                    f.write("kernel:\n  auth: none\n  state_dir: ./var\n"
                            "services:\n  tracking:\n    plugin: storage\n    mode: inproc\n"
                            f"    settings:\n      {setting}\n")
                r = run_cairnd(["--conf", conf, "--check"], cwd=tmp)
                self.assertEqual(r.returncode, 2, (setting, r.stdout, r.stderr))
                self.assertIn(want, r.stderr, setting)
                self.assertIn(setting.split(":")[0], r.stderr, setting)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_check_creates_no_state(self):
        tmp = tempfile.mkdtemp(prefix="cairn-check-")
        try:
            conf = os.path.join(tmp, "c.yaml")
            with open(conf, "w") as f:  # state_dir ./var: nothing may appear
                f.write("kernel:\n  auth: none\n  state_dir: ./var\n"
                        "services:\n  echo:\n    plugin: echo\n    mode: process\n")
            r = run_cairnd(["--conf", conf, "--check"], cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            r = run_cairnd(["--check", "--state", os.path.join(tmp, "s")], cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(os.listdir(tmp), ["c.yaml"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_check_reports_a_plugin_that_cannot_load(self):
        tmp = tempfile.mkdtemp(prefix="cairn-check-")
        try:
            conf = os.path.join(tmp, "c.yaml")
            with open(conf, "w") as f:
                f.write("kernel:\n  auth: none\nservices:\n"
                        "  echo:\n    plugin: echo\n    mode: inproc\n"
                        "  gone:\n    plugin: nosuchplugin\n    mode: process\n")
            r = run_cairnd(["--conf", conf, "--check"], cwd=tmp)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("services.gone", r.stderr)
            self.assertNotIn("is valid", r.stdout)
            self.assertEqual(os.listdir(tmp), ["c.yaml"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class StateDir(unittest.TestCase):
    """I: a relative state dir is the start directory's, made absolute."""

    def test_relative_state_dir_is_made_absolute(self):
        tmp = tempfile.mkdtemp(prefix="cairn-rel-")
        try:
            port, events = free_port(), free_port()
            conf = os.path.join(tmp, "conf", "c.yaml")
            os.mkdir(os.path.dirname(conf))
            with open(conf, "w") as f:
                f.write(f"kernel:\n  endpoint: tcp://127.0.0.1:{port}\n"
                        f"  events: tcp://127.0.0.1:{events}\n  auth: none\n"
                        "  state_dir: ./var\n  heartbeat_ms: 200\n"
                        "services:\n  echo:\n    plugin: echo\n    mode: process\n")
            env = dict(os.environ)
            for key in ("CAIRN_ENDPOINT", "CAIRN_STATE"):
                env.pop(key, None)
            log = open(os.path.join(tmp, "log"), "wb")
            p = subprocess.Popen([CAIRND, "--conf", "conf/c.yaml"], cwd=tmp, env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
            try:
                from cairn_harness import RawClient
                c = RawClient(f"tcp://127.0.0.1:{port}")
                try:
                    wait_for(lambda: c.call("sys", "health", timeout=DEADLINE)[1]["ok"],
                             what="echo (a process) up")
                    # The state (and its sockets) where cairnd started, not
                    # beside the conf file.
                    run = os.path.join(tmp, "var", "run")
                    self.assertTrue(os.path.exists(os.path.join(run, "workers.sock")))
                    self.assertFalse(os.path.exists(os.path.join(tmp, "conf", "var")))
                finally:
                    c.close()
            finally:
                p.send_signal(signal.SIGTERM)
                rc = p.wait(DEADLINE)
                log.close()
            text = open(os.path.join(tmp, "log")).read()
            self.assertEqual(rc, 0, text)
            state = os.path.realpath(os.path.join(tmp, "var"))
            self.assertIn(f"(state {state},", text)
            self.assertNotIn("stopped before", text)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_ipc_path_too_long_is_a_clear_error(self):
        tmp = tempfile.mkdtemp(prefix="cairn-ipc-")
        try:
            long_ipc = "ipc://" + tmp + "/" + "x" * 120 + ".sock"
            conf = os.path.join(tmp, "c.yaml")
            with open(conf, "w") as f:
                f.write(f"kernel:\n  auth: none\n  events: {long_ipc}\n"
                        "services:\n  echo:\n    plugin: echo\n    mode: inproc\n")
            for args in (["--conf", conf, "--check"], ["--conf", conf]):
                r = run_cairnd(args + ["--state", os.path.join(tmp, "s")], cwd=tmp)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("kernel.events", r.stderr)
                self.assertIn("at most 107", r.stderr)
                self.assertRegex(r.stderr, r"c\.yaml:\d+:")
            r = run_cairnd(["--check"], cwd=tmp, env_extra={"CAIRN_ENDPOINT": long_ipc})
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("CAIRN_ENDPOINT", r.stderr)
            self.assertIn("at most 107", r.stderr)
            self.assertEqual(sorted(os.listdir(tmp)), ["c.yaml"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_a_deep_state_dir_still_serves_process_plugins(self):
        tmp = tempfile.mkdtemp(prefix="cairn-deep-")
        try:
            state = os.path.join(tmp, *(["d" * 40] * 3), "state")
            k = Kernel(services="  echo:\n    plugin: echo\n    mode: process\n", state=state)
            try:
                k.start()
                self.assertEqual(k.plugin("echo")["state"], "up")
                self.assertEqual(k.stop(), 0, k.read_log())
            finally:
                k.cleanup()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class QuietStop(unittest.TestCase):
    """I: a normal stop with process-mode plugins reads as one."""

    def test_stop_says_stopped(self):
        for _ in range(3):  # the race it hid in: a host saying HELLO again
            k = Kernel(services="  echo:\n    plugin: echo\n    mode: process\n"
                       "  tracking:\n    plugin: storage\n    mode: process\n")
            try:
                k.start()
                self.assertEqual(k.stop(), 0)
                log = k.read_log()
                self.assertNotIn("stopped before the kernel answered", log)
                self.assertNotIn("cairn-plugin-host", log)
                self.assertTrue(log.rstrip().endswith("cairnd: stopped"), log)
                self.assertIsNone(re.search(r"\b1 verbs\b", log))
            finally:
                k.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
