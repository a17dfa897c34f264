"""Test harness: start a private cairnd on free loopback ports, talk CAIRN/1
to it with raw pyzmq sockets, stop it afterwards.

Every wait is bounded and polls for a condition; nothing sleeps as proof.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import msgpack
import zmq

BUILD = os.environ.get("CAIRN_BUILD_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
SOURCE = os.environ.get("CAIRN_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
BIN = os.path.join(BUILD, "bin")
CAIRND = os.path.join(BIN, "cairnd")
DEADLINE = 30.0  # seconds: generous for a loaded 2-core machine


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=DEADLINE, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# What a sanitizer build (CAIRN_SANITIZE) writes when it finds something.
SANITIZER = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")


class Kernel:
    """A cairnd of our own. services: YAML text for the services section."""

    def __init__(self, services=None, kernel_extra="", state=None, heartbeat_ms=200,
                 cairnd=None, auth="none"):
        self.cairnd = cairnd or CAIRND  # another cairnd binary (e.g. an installed one)
        self.tmp = tempfile.mkdtemp(prefix="cairn-test-")
        self.state = state or os.path.join(self.tmp, "state")
        if services is None:
            services = "  echo:\n    plugin: echo\n    mode: inproc\n"
        self.conf = os.path.join(self.tmp, "cairn.yaml")
        self._conf_rest = (f"  auth: {auth}\n"
                           f"  heartbeat_ms: {heartbeat_ms}\n"
                           f"{kernel_extra}"
                           "services:\n" + services)
        self._new_ports()
        self.proc = None
        self.started = False
        self.log = os.path.join(self.tmp, "cairnd.log")
        # A test that crashes a plugin on purpose sets this: cleanup then
        # does not fail on the sanitizer's report of that crash.
        self.crashes_expected = False

    def _new_ports(self):
        """Free ports, written into the conf. A port found free can be taken
        by another test before cairnd binds it: start() then picks again."""
        self.port = free_port()
        self.events_port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.events = f"tcp://127.0.0.1:{self.events_port}"
        with open(self.conf, "w") as f:
            f.write("kernel:\n"
                    f"  endpoint: {self.endpoint}\n"
                    f"  events: {self.events}\n" + self._conf_rest)

    def start(self, wait_up=True):
        if self.proc and self.proc.poll() is None:
            return self  # running already (e.g. `with Kernel(...).start() as k`)
        for attempt in range(3):
            try:
                self._start(wait_up)
                self.started = True
                return self
            except AssertionError:
                taken = "Address already in use" in self.read_log()
                if self.started or not taken or attempt == 2:
                    raise
                self._new_ports()  # first start only: no client knows the ports yet

    def _start(self, wait_up):
        env = dict(os.environ)
        env.pop("CAIRN_ENDPOINT", None)
        self.logf = open(self.log, "wb")
        self.proc = subprocess.Popen([self.cairnd, "--conf", self.conf, "--state", self.state],
                                     stdout=self.logf, stderr=subprocess.STDOUT, env=env)
        c = self.client()
        try:
            wait_for(lambda: self._pings(c), what="cairnd to answer ping")
            if wait_up:
                wait_for(lambda: all(p["state"] == "up"
                                     for p in c.call("sys", "health")[1]["plugins"]),
                         what="every plugin up")
        except BaseException:
            # Never leave a cairnd behind a failed start; show why it failed.
            self.stop()
            sys.stderr.write(f"cairnd log:\n{self.read_log()}\n")
            raise
        finally:
            c.close()
        return self

    def _pings(self, c):
        if self.proc.poll() is not None:
            raise AssertionError(f"cairnd exited with {self.proc.returncode}:\n{self.read_log()}")
        try:
            return c.call("sys", "ping", timeout=0.5)[0]["st"] == 200
        except TimeoutError:
            c.reset()
            return False

    def read_log(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def client(self, kind=zmq.REQ):
        return RawClient(self.endpoint, kind)

    def health(self):
        c = self.client()
        try:
            return c.call("sys", "health")[1]
        finally:
            c.close()

    def plugin(self, name):
        for p in self.health()["plugins"]:
            if p["name"] == name:
                return p
        raise KeyError(name)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.logf.close()
        rc = self.proc.returncode if self.proc else 0
        return rc

    def cleanup(self):
        self.stop()
        self.stop_jobs()
        report = self.sanitizer_report()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if report and not self.crashes_expected:
            raise AssertionError(f"a sanitizer reported in cairnd's log:\n{report}")

    def stop_jobs(self):
        """Jobs outlive cairnd by design: a test that ends (or fails) with
        jobs running leaves their supervisors, which are stopped here (the
        supervisor's SIGTERM stops its job's whole tree), then killed."""
        mark = os.path.join(self.tmp, "").encode()
        shims = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"cairn-job-shim") and any(a.startswith(mark) for a in argv):
                shims.append(int(d))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in shims:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while shims and time.monotonic() < deadline:
                shims = [p for p in shims if _running(p)]
                time.sleep(0.05)

    def sanitizer_report(self):
        """The first sanitizer report in the log (a CAIRN_SANITIZE build:
        cairnd and its plugin processes write there), or ""."""
        text = self.read_log()
        m = SANITIZER.search(text)
        return text[max(0, m.start() - 200):m.start() + 3000] if m else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def _running(pid):
    """Whether pid is a process that has not ended (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class RawClient:
    """CAIRN/1 over a REQ or DEALER socket, frames built by hand."""

    def __init__(self, endpoint, kind=zmq.REQ):
        self.endpoint = endpoint
        self.kind = kind
        self.ctx = zmq.Context.instance()
        self.next_id = 1
        self._open()

    def _open(self):
        self.sock = self.ctx.socket(self.kind)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.endpoint)

    def reset(self):
        self.sock.close()
        self._open()

    def close(self):
        self.sock.close()

    def send_frames(self, frames):
        if self.kind == zmq.DEALER:
            frames = [b""] + frames
        self.sock.send_multipart(frames)

    def recv_frames(self, timeout=DEADLINE):
        if not self.sock.poll(int(timeout * 1000)):
            raise TimeoutError("no reply")
        frames = self.sock.recv_multipart()
        if self.kind == zmq.DEALER:
            assert frames[0] == b"", frames
            frames = frames[1:]
        return frames

    def send(self, svc, verb, body=None, raw_body=None, **hdr):
        rid = hdr.pop("id", None)
        if rid is None:
            rid = self.next_id
            self.next_id += 1
        h = {"id": rid, "svc": svc, "verb": verb}
        h.update(hdr)
        b = raw_body if raw_body is not None else (b"" if body is None else msgpack.packb(body))
        self.send_frames([b"CAIRN/1", msgpack.packb(h), b])
        return rid

    def recv(self, timeout=DEADLINE):
        frames = self.recv_frames(timeout)
        assert frames[0] == b"CAIRN/1", frames
        hdr = msgpack.unpackb(frames[1])
        body = msgpack.unpackb(frames[2]) if len(frames) > 2 and frames[2] else None
        return hdr, body

    def call(self, svc, verb, body=None, timeout=DEADLINE, **hdr):
        self.send(svc, verb, body, **hdr)
        return self.recv(timeout)


def build_path(*parts):
    return os.path.join(BUILD, *parts)


class FakeKernel:
    """A ROUTER that answers every request with reply(hdr, body) -> (st, extra hdr, body bytes),
    or not at all when reply returns None (a server gone silent)."""

    def __init__(self, reply):
        self.reply = reply
        self.endpoint = None
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        if not self.ready.wait(DEADLINE):
            raise AssertionError("the fake kernel did not start")
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(DEADLINE)

    def _serve(self):
        sock = zmq.Context.instance().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.ready.set()
        try:
            while not self.stop.is_set():
                if not sock.poll(50):
                    continue
                ident, _, tag, hdr, body = sock.recv_multipart()
                assert tag == b"CAIRN/1"
                h = msgpack.unpackb(hdr)
                answer = self.reply(h, body)
                if answer is None:
                    continue
                st, extra, out = answer
                rh = {"id": h["id"], "st": st, **extra}
                sock.send_multipart([ident, b"", b"CAIRN/1", msgpack.packb(rh), out])
        finally:
            sock.close()
