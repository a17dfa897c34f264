"""CurveZMQ on cairnd's network endpoints (issue 13, docs/TRANSPORT.md).

`cairn keygen` makes key pairs; cairnd refuses to bind an address that is
not loopback without CURVE; with it, a ZAP handler lets in the public keys
that kernel.curve_allowed_keys lists and refuses (and audits) any other.
Clients (raw pyzmq, the Python SDK, the C SDK through the CLI) and a remote
cairn-plugin-host are each accepted with an allowed key and refused with an
unknown one or none.

The same checks run three times: on 127.0.0.1 with `curve: always` (runs
anywhere, so that this test can fail everywhere); on an address of this
machine that is not loopback (added to `lo` for the test); and on one side
of a veth pair into a network namespace, with the CLI and a remote plugin
host also run on the far side. The last two need root and iproute2, and are
skipped with the reason printed when either is missing.

Refusals are proven by what happens, never by a sleep: the audit record of
the refused key, and the client socket's own monitor events (a failed
handshake, never a successful one)."""
import atexit
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

import msgpack
import zmq
from zmq.utils.monitor import recv_monitor_message

from cairn_harness import (BIN, DEADLINE, SOURCE, Kernel, RawClient, build_path,
                           free_port, wait_for)

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
import cairn  # noqa: E402
from cairn.client import Client as SdkClient  # noqa: E402

CAIRN = os.path.join(BIN, "cairn")
HOST = build_path("bin", "cairn-plugin-host")
ECHO_SO = build_path("lib", "cairn", "plugins", "cairn_echo.so")
SERVICES = ("  auth:\n    plugin: auth\n    mode: inproc\n"
            "  audit:\n    plugin: audit\n    mode: inproc\n"
            "  echo:\n    plugin: echo\n    mode: remote\n")
FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
          | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_DISCONNECTED)


def keygen(prefix):
    """A key pair in PREFIX.key / PREFIX.pub: (public, secret)."""
    r = subprocess.run([CAIRN, "keygen", "--out", prefix], capture_output=True, text=True,
                       timeout=DEADLINE)
    assert r.returncode == 0, r.stderr
    with open(prefix + ".key") as f:
        secret = f.read().strip()
    return r.stdout.strip(), secret


class CurveClient(RawClient):
    """A RawClient whose socket is a CURVE client (keys None: a plain one),
    with a monitor to see its handshakes."""

    def __init__(self, endpoint, server_pub, secret, kind=zmq.REQ):
        self.server_pub, self.secret = server_pub, secret
        self.monitor = None
        super().__init__(endpoint, kind)

    def _open(self):
        self.sock = self.ctx.socket(self.kind)
        self.sock.setsockopt(zmq.LINGER, 0)
        if self.server_pub:
            self.sock.curve_serverkey = self.server_pub.encode()
            self.sock.curve_secretkey = self.secret.encode()
            self.sock.curve_publickey = zmq.curve_public(self.secret.encode())
        if self.monitor is not None:
            self.monitor.close()
        self.monitor = self.sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | FAILED)
        self.sock.connect(self.endpoint)

    def close(self):
        self.sock.disable_monitor()
        self.monitor.close()
        super().close()

    def handshake(self):
        """The first handshake outcome: True (succeeded) or False (failed,
        or the server dropped the connection)."""
        end = DEADLINE * 1000
        while self.monitor.poll(end):
            ev = recv_monitor_message(self.monitor)["event"]
            if ev == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                return True
            if ev & FAILED:
                return False
        raise AssertionError("no handshake outcome within the deadline")


class CurveKernel(Kernel):
    """A cairnd whose endpoint, events and worker_endpoint are on host, and
    whose harness client (the start-up ping included) speaks CURVE."""

    def __init__(self, host, server_pub, client_secret, **kw):
        self.host, self.server_pub, self.client_secret = host, server_pub, client_secret
        super().__init__(**kw)

    def _new_ports(self):
        self.port, self.events_port, self.worker_port = free_port(), free_port(), free_port()
        self.endpoint = f"tcp://{self.host}:{self.port}"
        self.events = f"tcp://{self.host}:{self.events_port}"
        self.worker = f"tcp://{self.host}:{self.worker_port}"
        with open(self.conf, "w") as f:
            f.write("kernel:\n"
                    f"  endpoint: {self.endpoint}\n"
                    f"  events: {self.events}\n"
                    f"  worker_endpoint: {self.worker}\n" + self._conf_rest)

    def client(self, kind=zmq.REQ, secret=None):
        return CurveClient(self.endpoint, self.server_pub, secret or self.client_secret,
                           kind)


def run(args, env_extra=None, **kw):
    env = dict(os.environ)
    for k in ("CAIRN_ENDPOINT", "CAIRN_SERVER_KEY", "CAIRN_CLIENT_KEY", "CAIRN_TOKEN"):
        env.pop(k, None)
    env.update(env_extra or {})
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=DEADLINE,
                          **kw)


class Keygen(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cairn-keygen-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_files_and_modes(self):
        prefix = os.path.join(self.tmp, "k")
        pub, secret = keygen(prefix)
        self.assertEqual(len(pub), 40)
        self.assertEqual(len(secret), 40)
        self.assertEqual(stat.S_IMODE(os.stat(prefix + ".key").st_mode), 0o600)
        with open(prefix + ".pub") as f:
            self.assertEqual(f.read(), pub + "\n")
        self.assertEqual(zmq.curve_public(secret.encode()).decode(), pub)
        # A key pair in use is never overwritten.
        r = run([CAIRN, "keygen", "--out", prefix])
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("exists", r.stderr)
        with open(prefix + ".key") as f:
            self.assertEqual(f.read().strip(), secret)

    def test_stdout(self):
        r = run([CAIRN, "keygen"])
        self.assertEqual(r.returncode, 0, r)
        lines = dict(line.split(": ", 1) for line in r.stdout.splitlines())
        self.assertEqual(set(lines), {"public", "secret"})
        self.assertEqual(zmq.curve_public(lines["secret"].encode()).decode(),
                         lines["public"])
        self.assertNotEqual(run([CAIRN, "keygen"]).stdout, r.stdout)

    def test_sdk_reads_keys_and_files(self):
        prefix = os.path.join(self.tmp, "k")
        pub, secret = keygen(prefix)
        self.assertEqual(cairn.client.load_key(prefix + ".pub"), pub)
        self.assertEqual(cairn.client.load_key(secret), secret)
        # A 40-character path of Z85 characters is read as the file it names.
        odd = "x" * 40
        self.assertIsNotNone(cairn.client._z85_key(odd))
        shutil.copy(prefix + ".pub", os.path.join(self.tmp, odd))
        cwd = os.getcwd()
        os.chdir(self.tmp)
        try:
            self.assertEqual(cairn.client.load_key(odd), pub)
            # The C SDK too: a file of that name that holds no key is an
            # error, not the key its name spells.
            with open(odd, "w") as f:
                f.write("no key here\n")
            r = run([CAIRN, "--endpoint", "tcp://127.0.0.1:1", "--server-key", odd,
                     "--client-key", secret, "ping"])
            self.assertEqual(r.returncode, 2, r)
            self.assertIn("holds no key", r.stderr)
        finally:
            os.chdir(cwd)
        for bad in ("nokey", os.path.join(self.tmp, "missing"), "%" * 40):
            with self.assertRaises(ValueError):
                cairn.client.load_key(bad)
        with self.assertRaises(ValueError):  # a server key needs a client key
            SdkClient("tcp://127.0.0.1:1", server_key=pub, client_key="")


class StartRule(unittest.TestCase):
    """cairnd binds an address that is not loopback only with CURVE."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cairn-curve-rule-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def conf(self, extra, endpoint=None):
        path = tempfile.mktemp(suffix=".yaml", dir=self.tmp)
        with open(path, "w") as f:
            f.write("kernel:\n"
                    f"  endpoint: {endpoint or 'tcp://127.0.0.1:%d' % free_port()}\n"
                    f"  events: tcp://127.0.0.1:{free_port()}\n"
                    "  auth: auth\n" + extra +
                    "services:\n  auth:\n    plugin: auth\n    mode: inproc\n")
        return path

    def cairnd(self, conf, *args):
        return run([build_path("bin", "cairnd"), "--conf", conf, "--state",
                    os.path.join(self.tmp, "state"), *args])

    def test_non_loopback_without_curve_is_refused(self):
        for where, conf in (
                ("endpoint", self.conf("", endpoint=f"tcp://0.0.0.0:{free_port()}")),
                ("worker_endpoint",
                 self.conf(f"  worker_endpoint: tcp://0.0.0.0:{free_port()}\n"))):
            for args in (("--check",), ()):  # the check, and a real start
                with self.subTest(where=where, args=args):
                    r = self.cairnd(conf, *args)
                    self.assertEqual(r.returncode, 2, r)
                    self.assertIn(f"kernel.{where}", r.stderr)
                    self.assertIn("not a loopback address", r.stderr)
                    self.assertIn("curve_secret_key_file", r.stderr)
                    self.assertNotIn("serving on", r.stderr)

    def test_bad_curve_conf(self):
        pub, _ = keygen(os.path.join(self.tmp, "server"))
        allowed = os.path.join(self.tmp, "allowed")
        with open(allowed, "w") as f:
            f.write(f"# the clients\n{pub}  # a client\n\nnot-a-key\n")
        keys = (f"  curve: always\n  curve_secret_key_file: {self.tmp}/server.key\n"
                f"  curve_allowed_keys: {allowed}\n")
        r = self.cairnd(self.conf(keys), "--check")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn(f"{allowed}:4:", r.stderr)
        r = self.cairnd(self.conf("  curve: sometimes\n"), "--check")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("kernel.curve is 'auto' or 'always'", r.stderr)
        with open(allowed, "w") as f:
            f.write(pub + "\n")
        os.chmod(os.path.join(self.tmp, "server.key"), 0o644)
        r = self.cairnd(self.conf(keys), "--check")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("chmod 600", r.stderr)
        os.chmod(os.path.join(self.tmp, "server.key"), 0o600)
        r = self.cairnd(self.conf(keys), "--check")
        self.assertEqual(r.returncode, 0, r)


def add_address():
    """An address of this machine that is not loopback, added to lo for the
    test: (address, None), or (None, why not)."""
    if os.geteuid() != 0:
        return None, "not root: cannot add an address to lo"
    ip = shutil.which("ip")
    if not ip:
        return None, "no `ip` (iproute2): cannot add an address to lo"
    have = subprocess.run([ip, "-o", "addr"], capture_output=True, text=True).stdout
    for _ in range(20):
        # 198.18.0.0/15 is for benchmarks (RFC 2544): no real host has it.
        addr = f"198.{random.randint(18, 19)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        if f" {addr}/" in have:
            continue
        r = subprocess.run([ip, "addr", "add", f"{addr}/32", "dev", "lo"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return addr, None
        why = r.stderr.strip()
    return None, f"`ip addr add` failed: {why}"


def del_address(addr):
    if addr:
        subprocess.run(["ip", "addr", "del", f"{addr}/32", "dev", "lo"],
                       capture_output=True)


class CurveBase:
    """The checks, on cls.host with cls.curve (a subclass per address)."""
    host = None
    curve = "auto"

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cairn-curve-")
        cls.server_pub, cls.server_secret = keygen(os.path.join(cls.tmp, "server"))
        cls.client_pub, cls.client_secret = keygen(os.path.join(cls.tmp, "client"))
        cls.host_pub, _ = keygen(os.path.join(cls.tmp, "host"))
        cls.allowed = os.path.join(cls.tmp, "allowed.keys")
        with open(cls.allowed, "w") as f:
            f.write(f"# who may connect\n{cls.client_pub}  # the test's client\n"
                    f"{cls.host_pub}  # the remote plugin host\n")
        extra = (f"  audit: audit\n  curve: {cls.curve}\n"
                 f"  curve_secret_key_file: {cls.tmp}/server.key\n"
                 f"  curve_allowed_keys: {cls.allowed}\n")
        cls.k = CurveKernel(cls.host, cls.server_pub, cls.client_secret,
                            services=SERVICES, auth="auth", kernel_extra=extra)
        try:
            cls.k.start(wait_up=False)  # echo waits for its remote host
            wait_for(lambda: all(cls.k.plugin(n)["state"] == "up" for n in ("auth", "audit")),
                     what="auth and audit up")
            with open(os.path.join(cls.k.state, "owner.token")) as f:
                cls.owner = f.read().strip()
        except BaseException:
            cls.k.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.k.stop()  # 0: a clean stop (and, under ASan, no leak)
        log = cls.k.read_log()
        cls.k.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if rc != 0:
            raise AssertionError(f"cairnd exited with {rc}:\n{log}")

    def stranger(self):
        """A key pair of its own (not allowed) for each check, so that each
        refusal's record is its own."""
        CurveBase.nstrangers = getattr(CurveBase, "nstrangers", 0) + 1
        prefix = os.path.join(self.tmp, f"stranger{CurveBase.nstrangers}")
        pub, secret = keygen(prefix)
        return pub, secret, prefix + ".key"

    def refusals(self, pub):
        c = self.k.client()
        try:
            h, b = c.call("audit", "query", {"principal": f"curve:{pub}"}, tok=self.owner)
            self.assertEqual(h["st"], 200, h)
            return b["records"]
        finally:
            c.close()

    def assert_refused_and_audited(self, pub):
        try:
            recs = wait_for(lambda: self.refusals(pub), what=f"the refusal of {pub} audited")
        except AssertionError:
            sys.stderr.write(f"cairnd log:\n{self.k.read_log()[-3000:]}\n")
            raise
        r = recs[0]
        self.assertEqual((r["svc"], r["verb"], r["status"], r["object"]),
                         ("sys", "connect", 401, f"peer/{self.host}"))

    def assert_no_reply(self, c):
        """A refused socket has no connection to send on (the send would
        block), or, had it queued the request, gets no reply."""
        try:
            c.sock.send_multipart([b"CAIRN/1", msgpack.packb({"id": 1, "svc": "sys",
                                                              "verb": "ping"}), b""],
                                  zmq.NOBLOCK)
        except zmq.Again:
            return
        with self.assertRaises(TimeoutError):
            c.recv(timeout=1.0)

    def test_allowed_client(self):
        self.assertIn(f"CurveZMQ, server key {self.server_pub}", self.k.read_log())
        c = self.k.client()
        try:
            self.assertTrue(c.handshake())
            h, b = c.call("sys", "ping")
            self.assertEqual(h["st"], 200, h)
            h, b = c.call("sys", "services", tok=self.owner)
            self.assertEqual(h["st"], 200, h)
        finally:
            c.close()
        self.assertEqual(self.refusals(self.client_pub), [])

    def test_unknown_key_refused_and_audited(self):
        pub, secret, _ = self.stranger()
        c = self.k.client(secret=secret)
        try:
            self.assertFalse(c.handshake())
            self.assert_refused_and_audited(pub)
            self.assert_no_reply(c)
        finally:
            c.close()
        self.assertIn(f"refused the key {pub} from {self.host}", self.k.read_log())

    def test_plain_client_refused(self):
        c = CurveClient(self.k.endpoint, None, None)
        try:
            self.assertFalse(c.handshake())
            self.assert_no_reply(c)
        finally:
            c.close()

    def test_python_sdk(self):
        with SdkClient(self.k.endpoint, token=self.owner, server_key=self.server_pub,
                       client_key=os.path.join(self.tmp, "client.key")) as c:
            self.assertTrue(c.call("sys", "ping")["pong"])
        pub, secret, _ = self.stranger()
        env = {"CAIRN_SERVER_KEY": os.path.join(self.tmp, "server.pub"),
               "CAIRN_CLIENT_KEY": secret}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            with SdkClient(self.k.endpoint, token=self.owner, ttl_ms=1000) as c:
                with self.assertRaises(cairn.DeadlineExceeded):
                    c.call("sys", "ping")
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.assert_refused_and_audited(pub)

    def test_cli_and_c_sdk(self):
        env = {"CAIRN_ENDPOINT": self.k.endpoint, "CAIRN_TOKEN": self.owner,
               "CAIRN_SERVER_KEY": self.server_pub,
               "CAIRN_CLIENT_KEY": os.path.join(self.tmp, "client.key")}
        r = run([CAIRN, "ping"], env)
        self.assertEqual(r.returncode, 0, r)
        pub, _, secret_file = self.stranger()
        r = run([CAIRN, "--server-key", os.path.join(self.tmp, "server.pub"),
                 "--client-key", secret_file, "--ttl", "1500", "ping"], env)
        self.assertEqual(r.returncode, 3, r)  # no reply: refused
        self.assertIn("curve_allowed_keys", r.stderr)
        self.assert_refused_and_audited(pub)
        r = run([CAIRN, "--ttl", "1500", "ping"], {"CAIRN_ENDPOINT": self.k.endpoint})
        self.assertEqual(r.returncode, 3, r)  # no CURVE at all
        r = run([CAIRN, "ping"], {"CAIRN_ENDPOINT": self.k.endpoint,
                                  "CAIRN_SERVER_KEY": self.server_pub})
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("CAIRN_CLIENT_KEY", r.stderr)

    def plugin_host(self, key, *flags, env=None):
        with open(os.path.join(self.tmp, "host.log"), "ab") as log:
            return subprocess.Popen([HOST, "--plugin", ECHO_SO, "--service", "echo",
                                     "--endpoint", self.k.worker, *flags],
                                    stdout=log, stderr=log,
                                    env={**os.environ, **(env or {}),
                                         "CAIRN_CLIENT_KEY": key})

    def test_remote_plugin_host(self):
        # Unknown key first: refused, audited, and the service stays down.
        pub, secret, _ = self.stranger()
        stranger = self.plugin_host(secret, "--server-key", self.server_pub)
        try:
            self.assert_refused_and_audited(pub)
            self.assertEqual(self.k.plugin("echo")["state"], "down")
        finally:
            stranger.terminate()
            self.assertEqual(stranger.wait(DEADLINE), 0)
        # An allowed key (from its file, the server key from the environment).
        host = self.plugin_host(os.path.join(self.tmp, "host.key"),
                         env={"CAIRN_SERVER_KEY": self.server_pub})
        c = self.k.client()
        try:
            wait_for(lambda: self.k.plugin("echo")["state"] == "up",
                     what="the remote host up over CURVE")
            h, b = c.call("echo", "info", tok=self.owner)
            self.assertEqual(h["st"], 200, h)
            self.assertEqual(b["pid"], host.pid)
            h, b = c.call("echo", "echo", {"x": 1}, tok=self.owner)
            self.assertEqual((h["st"], b), (200, {"x": 1}))
        finally:
            c.close()
            host.terminate()
            self.assertEqual(host.wait(DEADLINE), 0)
        self.assertEqual(self.refusals(self.host_pub), [])

    def test_allowed_keys_read_again(self):
        prefix = os.path.join(self.tmp, "late")
        pub, secret = keygen(prefix)
        c = self.k.client(secret=secret)
        try:
            self.assertFalse(c.handshake())
        finally:
            c.close()
        with open(self.allowed, "a") as f:
            f.write(pub + "\n")
        c = self.k.client(secret=secret)
        try:
            self.assertTrue(c.handshake())
            self.assertEqual(c.call("sys", "ping")[0]["st"], 200)
        finally:
            c.close()


class CurveLoopback(CurveBase, unittest.TestCase):
    """On 127.0.0.1, with `curve: always`: runs on any machine."""
    host = "127.0.0.1"
    curve = "always"


class CurveNonLoopback(CurveBase, unittest.TestCase):
    """On an address that is not loopback, with the default `curve: auto`."""

    @classmethod
    def setUpClass(cls):
        cls.addr, why = add_address()
        atexit.register(del_address, cls.addr)  # also after an interrupt
        if not cls.addr:
            print(f"test_curve: skipping the non-loopback address: {why}", file=sys.stderr)
            raise unittest.SkipTest(why)
        cls.host = cls.addr
        try:
            super().setUpClass()
        except BaseException:
            del_address(cls.addr)
            cls.addr = None
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            del_address(cls.addr)
            cls.addr = None


def add_namespace():
    """A network namespace joined to this one by a veth pair:
    (namespace, this side's address, its side's address, None), or
    (None, None, None, why not)."""
    ip = shutil.which("ip")
    if os.geteuid() != 0 or not ip:
        return None, None, None, "not root or no `ip` (iproute2): no network namespace"
    have = subprocess.run([ip, "-o", "addr"], capture_output=True, text=True).stdout
    tag = f"{os.getpid() % 100000}{random.randint(0, 99)}"
    ns, here, there = f"cairn-curve-{tag}", f"vcc{tag}a", f"vcc{tag}b"
    for _ in range(20):
        net = f"198.19.{random.randint(0, 255)}.{random.randrange(0, 256, 4)}"
        if f" {net[:net.rindex('.')]}." not in have:
            break
    base = net[:net.rindex(".")]
    last = int(net[net.rindex(".") + 1:])
    a, b = f"{base}.{last + 1}", f"{base}.{last + 2}"
    steps = [[ip, "netns", "add", ns],
             [ip, "link", "add", here, "type", "veth", "peer", "name", there],
             [ip, "link", "set", there, "netns", ns],
             [ip, "addr", "add", f"{a}/30", "dev", here],
             [ip, "link", "set", here, "up"],
             [ip, "netns", "exec", ns, ip, "addr", "add", f"{b}/30", "dev", there],
             [ip, "netns", "exec", ns, ip, "link", "set", there, "up"],
             [ip, "netns", "exec", ns, ip, "link", "set", "lo", "up"]]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            del_namespace(ns, here)
            return None, None, None, f"`{' '.join(cmd[1:])}` failed: {r.stderr.strip()}"
    return (ns, here), a, b, None


def del_namespace(ns, link):
    if ns:
        subprocess.run(["ip", "link", "del", link], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


class CurveNamespace(CurveBase, unittest.TestCase):
    """cairnd on this side of a veth pair; clients and a remote plugin host
    in another network namespace, reaching it across the link as another
    machine would."""

    @classmethod
    def setUpClass(cls):
        cls.ns, cls.addr, cls.peer, why = add_namespace()
        if not cls.ns:
            print(f"test_curve: skipping the network namespace: {why}", file=sys.stderr)
            raise unittest.SkipTest(why)
        atexit.register(del_namespace, *cls.ns)  # also after an interrupt
        cls.host = cls.addr
        try:
            super().setUpClass()
        except BaseException:
            del_namespace(*cls.ns)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            del_namespace(*cls.ns)

    def in_ns(self, *args):
        return ["ip", "netns", "exec", self.ns[0], *args]

    def test_cli_from_the_namespace(self):
        env = {"CAIRN_ENDPOINT": self.k.endpoint, "CAIRN_SERVER_KEY": self.server_pub,
               "CAIRN_CLIENT_KEY": os.path.join(self.tmp, "client.key")}
        r = run(self.in_ns(CAIRN, "ping"), env)
        self.assertEqual(r.returncode, 0, r)
        pub, _, secret_file = self.stranger()
        r = run(self.in_ns(CAIRN, "--client-key", secret_file, "--ttl", "1500", "ping"),
                env)
        self.assertEqual(r.returncode, 3, r)
        recs = wait_for(lambda: self.refusals(pub), what="the refusal audited")
        self.assertEqual(recs[0]["object"], f"peer/{self.peer}")  # the far side

    def ns_host(self, key):
        with open(os.path.join(self.tmp, "host.log"), "ab") as log:
            return subprocess.Popen(
                self.in_ns(HOST, "--plugin", ECHO_SO, "--service", "echo", "--endpoint",
                           self.k.worker, "--server-key", self.server_pub, "--key", key),
                stdout=log, stderr=log)

    def test_remote_host_from_the_namespace(self):
        pub, _, secret_file = self.stranger()
        stranger = self.ns_host(secret_file)
        try:
            recs = wait_for(lambda: self.refusals(pub), what="the host's refusal audited")
            self.assertEqual(recs[0]["object"], f"peer/{self.peer}")
            self.assertEqual(self.k.plugin("echo")["state"], "down")
        finally:
            stranger.terminate()
            self.assertEqual(stranger.wait(DEADLINE), 0)
        host = self.ns_host(os.path.join(self.tmp, "host.key"))
        c = self.k.client()
        try:
            wait_for(lambda: self.k.plugin("echo")["state"] == "up",
                     what="the remote host in the namespace up")
            h, b = c.call("echo", "echo", {"from": "ns"}, tok=self.owner)
            self.assertEqual((h["st"], b), (200, {"from": "ns"}))
        finally:
            c.close()
            host.terminate()
            self.assertEqual(host.wait(DEADLINE), 0)
        wait_for(lambda: self.k.plugin("echo")["state"] == "down", what="the host gone")


if __name__ == "__main__":
    unittest.main(verbosity=2)
