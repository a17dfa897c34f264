"""cairn-job-shim, the per-job supervisor (plugins/compute/shim.c, its
contract in plugins/compute/jobdir.h), started on a temporary job directory
the way the jobs plugin starts it: double fork and setsid, so that the shim
is not the test's child. Each case waits, bounded, for the files the shim
writes and checks them and /proc:

- output and exit status: stdout and stderr in the log, reason=exited code=3;
- environment: the command sees JOB_ENV's variables and nothing else, and
  runs in the work directory;
- cancel: SIGTERM to the shim stops a tree that ignores SIGTERM (SIGKILL
  after grace_ms): reason=canceled, and nothing of its process group left;
- timeout: timeout_s=1 stops `sleep 60`: reason=timeout, in bounded time;
- leftovers: `sleep 300 & exit 0` ends exited 0, and the sleep is killed;
- a missing JOB_CMD, a bad limits value, an env entry without '=', a work
  path that is not a directory: reason=failed code=127, a sentence in the
  log, nothing started;
- detached: the starter is gone, the shim leads a session of its own, and
  shim.pid names it with its start time in /proc.

After each case the shim must have exited, and, when it is built with
CAIRN_SANITIZE, left no ASan, LSan or UBSan report."""
import os
import signal
import tempfile
import time
import unittest

DEADLINE = 30.0  # seconds; a loaded 2-CPU machine is slow, never this slow
POLL = 0.05


def shim_binary():
    build = os.environ.get("CAIRN_BUILD_DIR")
    if not build:
        raise unittest.SkipTest("CAIRN_BUILD_DIR is not set")
    path = os.path.join(build, "bin", "cairn-job-shim")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest(f"{path} is not built")
    return path


def wait_for(pred, what, deadline=DEADLINE):
    """pred()'s first true value, polled every POLL seconds."""
    end = time.monotonic() + deadline
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline} s waiting for {what}")
        time.sleep(POLL)


def proc_stat(pid):
    """/proc/PID/stat's fields from 3 on (state first), or None when gone;
    the comm field may hold spaces and parentheses: split after the last ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(b")") + 2:].split()


def field(fields, n):
    """Field n (1-based, as in proc(5)) from proc_stat's list."""
    return int(fields[n - 3])


def group_members(pgid):
    """Live (not zombie) pids whose process group is pgid."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_stat(name)
        if st and st[0] != b"Z" and field(st, 5) == pgid:
            pids.append(int(name))
    return pids


def running(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != b"Z"


class JobShimTest(unittest.TestCase):
    def setUp(self):
        self.binary = shim_binary()
        self.tmp = tempfile.TemporaryDirectory(prefix="cairn-shim-")
        self.dir = os.path.join(self.tmp.name, "job")
        os.mkdir(self.dir, 0o700)
        self.shim_pid = None
        self.san = os.path.join(self.tmp.name, "san")

    def tearDown(self):
        try:
            self._stop_leftovers()
            self._check_sanitizer_reports()
        finally:
            self.tmp.cleanup()

    def _stop_leftovers(self):
        """A failed case must not leave its job behind: its group is killed,
        which ends the shim too (killed as well if it does not end)."""
        pgid = self._pgid_or_none()
        if pgid:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not self.shim_pid:
            return
        end = time.monotonic() + DEADLINE
        while running(self.shim_pid) and time.monotonic() < end:
            time.sleep(POLL)
        if running(self.shim_pid):
            os.kill(self.shim_pid, signal.SIGKILL)
            self.fail("the shim did not exit")

    def _check_sanitizer_reports(self):
        """Under CAIRN_SANITIZE the shim's stderr is /dev/null: its ASan,
        LSan and UBSan reports go to files (log_path), none expected."""
        if not os.path.isdir(self.san):
            return
        reports = []
        for name in sorted(os.listdir(self.san)):
            with open(os.path.join(self.san, name), errors="replace") as f:
                reports.append(f"{name}:\n{f.read()}")
        if reports:
            self.fail("sanitizer reports:\n" + "\n".join(reports))

    # ---- the job directory ----------------------------------------------

    def path(self, name):
        return os.path.join(self.dir, name)

    def write_spec(self, cmd, env=None, timeout_s=0, grace_ms=10000):
        env = {"PATH": "/usr/bin:/bin"} if env is None else env
        if cmd is not None:
            with open(self.path("cmd"), "w") as f:
                f.write(cmd)
        with open(self.path("env"), "wb") as f:
            for k, v in env.items():
                f.write(f"{k}={v}".encode() + b"\0")
        with open(self.path("limits"), "w") as f:
            f.write(f"timeout_s={timeout_s}\ngrace_ms={grace_ms}\n")

    def start(self):
        """Starts the shim as the plugin does (fork, setsid, fork, exec);
        returns (starter pid, shim pid) once the starter has exited."""
        r, w = os.pipe()
        starter = os.fork()
        if starter == 0:
            try:
                os.close(r)
                os.setsid()
                pid = os.fork()
                if pid == 0:
                    os.execve(self.binary, [self.binary, "--dir", self.dir],
                              self._shim_env())
                os.write(w, str(pid).encode())
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            data = f.read()
        _, status = os.waitpid(starter, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertTrue(data, "the starter did not report the shim's pid")
        self.shim_pid = int(data)
        return starter, self.shim_pid

    def _shim_env(self):
        """The test's environment, with sanitizer reports sent to files."""
        os.makedirs(self.san, exist_ok=True)
        env = dict(os.environ)
        for var, prefix in (("ASAN_OPTIONS", "asan"), ("UBSAN_OPTIONS", "ubsan")):
            opts = [o for o in env.get(var, "").split(":") if o]
            env[var] = ":".join(opts + [f"log_path={self.san}/{prefix}"])
        return env

    def read_kv(self, name):
        with open(self.path(name)) as f:
            text = f.read()
        self.assertTrue(text.endswith("\n"), f"{name} is not whole: {text!r}")
        return dict(line.split("=", 1) for line in text.splitlines())

    def wait_exit(self, deadline=DEADLINE):
        wait_for(lambda: os.path.exists(self.path("exit")), "the exit record", deadline)
        rec = self.read_kv("exit")
        self.assertEqual(set(rec), {"reason", "code", "signal", "ended_ms"}, rec)
        return rec

    def read_pidfile(self):
        wait_for(lambda: os.path.exists(self.path("shim.pid")), "shim.pid")
        with open(self.path("shim.pid")) as f:
            text = f.read()
        self.assertRegex(text, r"^\d+ \d+ \d+\n$")
        pid, start, pgid = (int(x) for x in text.split())
        return pid, start, pgid

    def _pgid_or_none(self):
        try:
            with open(self.path("shim.pid")) as f:
                return int(f.read().split()[2])
        except (OSError, IndexError, ValueError):
            return None

    def log(self):
        with open(self.path("output.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def assert_group_gone(self, pgid):
        wait_for(lambda: not group_members(pgid), f"process group {pgid} to be gone")

    # ---- cases -------------------------------------------------------------

    def test_output_and_exit_code(self):
        self.write_spec("echo to-stdout; echo to-stderr >&2; exit 3")
        before = int(time.time() * 1000)
        self.start()
        rec = self.wait_exit()
        self.assertEqual((rec["reason"], rec["code"], rec["signal"]), ("exited", "3", "0"))
        self.assertGreaterEqual(int(rec["ended_ms"]), before - 1000)
        self.assertLessEqual(int(rec["ended_ms"]), int(time.time() * 1000) + 1000)
        log = self.log()
        self.assertIn("to-stdout\n", log)
        self.assertIn("to-stderr\n", log)
        self.assertEqual(os.stat(self.path("output.log")).st_mode & 0o777, 0o600)
        self.assertFalse(os.path.exists(self.path("exit.tmp")))

    def test_environment_is_job_env_only(self):
        os.environ["CAIRN_SHIM_TEST_LEAK"] = "leaked"
        try:
            self.write_spec('echo "FOO=$FOO"; echo "leak=${CAIRN_SHIM_TEST_LEAK-unset}"; '
                            'echo "home=${HOME-unset}"; echo "path=$PATH"; pwd',
                            env={"FOO": "bar baz", "PATH": "/usr/bin:/bin"})
            self.start()
        finally:
            del os.environ["CAIRN_SHIM_TEST_LEAK"]
        rec = self.wait_exit()
        self.assertEqual((rec["reason"], rec["code"]), ("exited", "0"), self.log())
        log = self.log()
        self.assertIn("FOO=bar baz\n", log)
        self.assertIn("leak=unset\n", log)
        self.assertIn("home=unset\n", log)
        self.assertIn("path=/usr/bin:/bin\n", log)
        self.assertIn(os.path.realpath(self.path("work")) + "\n", log)
        self.assertEqual(os.stat(self.path("work")).st_mode & 0o777, 0o700)

    def test_cancel_kills_a_tree_that_ignores_sigterm(self):
        self.write_spec("trap '' TERM; sleep 300 & sleep 300 & echo started; wait",
                        grace_ms=300)
        _, shim = self.start()
        pid, _, pgid = self.read_pidfile()
        self.assertEqual(pid, shim)
        # the shell and its two sleeps
        wait_for(lambda: len(group_members(pgid)) >= 3, "the job's tree to run")
        wait_for(lambda: "started" in self.log(), "the job's output")
        os.kill(shim, signal.SIGTERM)
        rec = self.wait_exit()
        self.assertEqual(rec["reason"], "canceled", rec)
        self.assertEqual((rec["code"], rec["signal"]), ("137", "9"), rec)
        self.assert_group_gone(pgid)
        wait_for(lambda: not running(shim), "the shim to exit")
        self.assertIn("cairn-job-shim: stopping the job (canceled)", self.log())

    def test_timeout(self):
        self.write_spec("sleep 60", timeout_s=1, grace_ms=300)
        t0 = time.monotonic()
        self.start()
        _, _, pgid = self.read_pidfile()
        rec = self.wait_exit()
        elapsed = time.monotonic() - t0
        self.assertEqual(rec["reason"], "timeout", rec)
        # sleep dies of the SIGTERM (or of the SIGKILL on a slow machine)
        self.assertIn((rec["code"], rec["signal"]), {("143", "15"), ("137", "9")}, rec)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 20)
        self.assert_group_gone(pgid)

    def test_leftover_children_are_killed(self):
        self.write_spec("sleep 300 & echo $! > bg.pid; exit 0")
        self.start()
        _, _, pgid = self.read_pidfile()
        rec = self.wait_exit()
        self.assertEqual((rec["reason"], rec["code"], rec["signal"]), ("exited", "0", "0"))
        with open(os.path.join(self.path("work"), "bg.pid")) as f:
            bg = int(f.read())
        self.assert_group_gone(pgid)
        st = proc_stat(bg)
        self.assertTrue(st is None or st[0] == b"Z" or field(st, 5) != pgid,
                        "the background sleep outlived its job")

    def test_escaped_session_is_killed(self):
        # setsid leaves the job's process group; orphaned, it comes back to
        # the shim (its subreaper), which kills it when the command ends
        self.write_spec("setsid sleep 300 & echo $! > esc.pid; "
                        "while ! grep -q sleep /proc/$!/comm; do :; done; exit 0")
        self.start()
        self.read_pidfile()
        rec = self.wait_exit()
        self.assertEqual((rec["reason"], rec["code"]), ("exited", "0"), self.log())
        with open(os.path.join(self.path("work"), "esc.pid")) as f:
            esc = int(f.read())
        self.addCleanup(lambda: running(esc) and os.kill(esc, signal.SIGKILL))
        wait_for(lambda: not running(esc),
                 "the escaped sleep to be killed")

    def test_sigint_and_sighup_cancel(self):
        for sig in (signal.SIGINT, signal.SIGHUP):
            with self.subTest(signal=sig.name):
                self.dir = os.path.join(self.tmp.name, sig.name)
                os.mkdir(self.dir, 0o700)
                self.write_spec("sleep 300", grace_ms=5000)
                _, shim = self.start()
                _, _, pgid = self.read_pidfile()
                wait_for(lambda: pgid in group_members(pgid), "the command to run")
                os.kill(shim, sig)
                rec = self.wait_exit()
                self.assertEqual((rec["reason"], rec["code"], rec["signal"]),
                                 ("canceled", "143", "15"))
                self.assert_group_gone(pgid)

    def test_missing_cmd_fails(self):
        self.write_spec(None)
        self.assert_failed("cannot open cmd: No such file or directory")

    def assert_failed(self, sentence):
        self.start()
        rec = self.wait_exit()
        self.assertEqual((rec["reason"], rec["code"], rec["signal"]), ("failed", "127", "0"))
        self.assertIn("cairn-job-shim: " + sentence, self.log())
        self.assertFalse(os.path.exists(self.path("shim.pid")))

    def test_bad_limits_fail(self):
        self.write_spec("echo never")
        with open(self.path("limits"), "w") as f:
            f.write("future_key=x\ntimeout_s=abc\n")
        self.assert_failed("limits: timeout_s=abc is not a number")
        self.assertNotIn("never", self.log())

    def test_bad_env_fails(self):
        self.write_spec("echo never")
        with open(self.path("env"), "wb") as f:
            f.write(b"PATH=/bin\0NOEQUALS\0")
        self.assert_failed("env: entry 2 is not KEY=VALUE")

    def test_work_not_a_directory_fails(self):
        self.write_spec("echo never")
        with open(self.path("work"), "w"):
            pass
        self.assert_failed("cannot open work")

    def test_shim_outlives_its_starter(self):
        self.write_spec("sleep 300", grace_ms=300)
        starter, shim = self.start()
        pid, start, pgid = self.read_pidfile()
        self.assertEqual(pid, shim)
        self.assertNotEqual(pgid, shim)
        # the starter was reaped by waitpid in start(): it no longer exists
        self.assertIsNone(proc_stat(starter))
        st = proc_stat(shim)
        self.assertIsNotNone(st)
        self.assertEqual(field(st, 22), start, "shim.pid's start time is not the shim's")
        self.assertNotEqual(field(st, 4), os.getpid(), "the shim is the test's child")
        self.assertEqual(field(st, 6), shim, "the shim does not lead its own session")
        wait_for(lambda: pgid in group_members(pgid), "the command to run")
        os.kill(shim, signal.SIGTERM)
        self.assertEqual(self.wait_exit()["reason"], "canceled")
        self.assert_group_gone(pgid)


if __name__ == "__main__":
    unittest.main()
