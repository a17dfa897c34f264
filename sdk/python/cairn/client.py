"""The CAIRN/1 client: one DEALER socket to cairnd, many requests in flight.

A request is three frames after the empty delimiter: ``CAIRN/1``, a msgpack
header map (``id``, ``svc``, ``verb``, ``ttl``, and ``tok``/``ws`` when set)
and a msgpack body (an empty frame for None). Replies come back in any order
and are matched by ``id``.

A Client is for one thread: ZeroMQ sockets are not thread safe. Give each
thread (and each process after a fork) its own Client.
"""
import heapq
import math
import os
import stat
import struct
import time
from collections import OrderedDict

import msgpack
import zmq
from zmq.utils import z85

from .errors import DeadlineExceeded, error_for

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7780"
TAG = b"CAIRN/1"
GRACE_MS = 1000  # how long past its ttl the client waits before giving up locally


class Reply:
    """One reply: ``id``, ``status``, ``code`` and ``error`` (None when ok),
    ``body`` (decoded; an error reply may carry one too), ``header`` (the raw
    header map)."""

    __slots__ = ("id", "status", "code", "error", "body", "header")

    def __init__(self, id, status, code=None, error=None, body=None, header=None):
        self.id = id
        self.status = status
        self.code = code
        self.error = error
        self.body = body
        self.header = header if header is not None else {}

    @property
    def ok(self):
        """True when the status is below 400."""
        return self.status < 400

    def raise_for_status(self):
        """Raise the matching CairnError when not ok; return self otherwise."""
        if not self.ok:
            raise error_for(self.status, self.code, self.error, self.body)
        return self

    def __repr__(self):
        if self.ok:
            return f"Reply(id={self.id!r}, status={self.status}, body={self.body!r})"
        return f"Reply(id={self.id!r}, status={self.status}, code={self.code!r}, " \
               f"error={self.error!r})"


def token_path():
    """The file ``cairn login`` saves its token in, or None without a home."""
    xdg, home = os.environ.get("XDG_CONFIG_HOME"), os.environ.get("HOME")
    if xdg:
        return os.path.join(xdg, "cairn", "token")
    return os.path.join(home, ".config", "cairn", "token") if home else None


def _read_token(path):
    """The first line of a small regular file, trimmed; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except (OSError, TypeError):
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size >= 4096:
            return None
        words = os.read(fd, 4096).decode("utf-8", "replace").split()
        return words[0] if words else None
    finally:
        os.close(fd)


def find_token():
    """A token from, in order: ``$CAIRN_TOKEN``; the token ``cairn login``
    saved (``$XDG_CONFIG_HOME/cairn/token``, else ``~/.config/cairn/token``);
    ``owner.token`` of the state dir this process can see (``$CAIRN_STATE``,
    else ``./var``). None when there is none (as the C SDK's
    cairn_token_find)."""
    env = os.environ.get("CAIRN_TOKEN")
    if env:
        return env
    state = os.environ.get("CAIRN_STATE") or "./var"
    for path in (token_path(), os.path.join(state, "owner.token")):
        tok = _read_token(path) if path else None
        if tok:
            return tok
    return None


_default_workspace = None


def set_workspace(name):
    """The workspace of every Client made afterwards without one (None: back
    to ``$CAIRN_WORKSPACE``, else ``default``). Existing clients keep theirs;
    set ``client.workspace`` to move one."""
    global _default_workspace
    if name is not None and (not isinstance(name, str) or not name or len(name) > 64):
        raise ValueError("a workspace name is a string of 1 to 64 characters")
    _default_workspace = name


KEY_Z85_LEN = 40


def _z85_key(text):
    """The key when ``text`` is one (40 characters of Z85 in their one
    spelling), else None."""
    if len(text) != KEY_Z85_LEN:
        return None
    try:
        raw = z85.decode(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError, KeyError, IndexError, struct.error):
        return None
    if len(raw) != 32 or z85.encode(raw).decode("ascii") != text:
        return None
    return text


def load_key(key_or_path, what="key"):
    """A CurveZMQ key (Z85 text): the first word of the file
    ``key_or_path`` which is a key (``cairn keygen --out`` writes such
    files), else ``key_or_path`` itself when it is a key. Raises ValueError saying why (as the C SDK's
    cairn_key_load)."""
    if not key_or_path:
        raise ValueError(f"{what}: no key given")
    # A file first: a 40-character path may spell a key in Z85 too.
    if not os.path.exists(key_or_path) and _z85_key(key_or_path):
        return key_or_path
    try:
        fd = os.open(key_or_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise ValueError(f"{what}: {key_or_path!r} is not a key (40 characters of Z85), "
                         f"and it cannot be read as a file: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        words = (os.read(fd, 4096).decode("ascii", "replace").split()
                 if stat.S_ISREG(st.st_mode) and st.st_size < 4096 else [])
    finally:
        os.close(fd)
    for w in words:
        if _z85_key(w):
            return w
    raise ValueError(f"{what}: {key_or_path} holds no key (40 characters of Z85, as "
                     "`cairn keygen` writes)")


def _curve_keys(server_key, client_key):
    """(server public, client secret) from the arguments, else from
    ``$CAIRN_SERVER_KEY`` and ``$CAIRN_CLIENT_KEY``; (None, None) without a
    server key."""
    server = server_key if server_key is not None else os.environ.get("CAIRN_SERVER_KEY")
    client = client_key if client_key is not None else os.environ.get("CAIRN_CLIENT_KEY")
    if not server:
        return None, None
    if not client:
        raise ValueError("a server key is given, but no client key: pass client_key or "
                         "set CAIRN_CLIENT_KEY to this client's secret key or its file "
                         "(make one with `cairn keygen`)")
    return load_key(server, "the server key"), load_key(client, "the client key")


class Client:
    """A connection to cairnd.

    endpoint: default ``$CAIRN_ENDPOINT``, else ``tcp://127.0.0.1:7780``.
    token: bearer token; default: the first that ``find_token()`` finds
    (``$CAIRN_TOKEN``, the token ``cairn login`` saved, the state dir's
    ``owner.token``), sent only when one is found.
    workspace: the ``ws`` header; default: the one ``set_workspace()`` named,
    else ``$CAIRN_WORKSPACE``, else none (the kernel's ``default``).
    server_key, client_key: CurveZMQ, for a cairnd address that is not
    loopback (docs/TRANSPORT.md): cairnd's public key and this client's
    secret key, each a key or a file holding one; default
    ``$CAIRN_SERVER_KEY`` and ``$CAIRN_CLIENT_KEY``. No server key: no
    CurveZMQ. A server key without a client key raises ValueError.
    ttl_ms: the default per-request ttl; with no reply by ttl + 1 s the client
    gives up locally with DeadlineExceeded (code ``no_reply``).

    Not thread safe: use one Client per thread. Closes on ``close()`` or at the
    end of a ``with`` block.
    """

    def __init__(self, endpoint=None, token=None, workspace=None, ttl_ms=30000,
                 server_key=None, client_key=None):
        self.endpoint = endpoint or os.environ.get("CAIRN_ENDPOINT") or DEFAULT_ENDPOINT
        self._curve = _curve_keys(server_key, client_key)
        self.token = token if token is not None else find_token()
        self.workspace = workspace or _default_workspace or \
            os.environ.get("CAIRN_WORKSPACE") or None
        self.ttl_ms = _check_ttl(ttl_ms)
        self._ctx = zmq.Context.instance()
        self._sock = None
        self._next_id = 1
        self._inflight = {}  # id -> (local deadline, svc, verb, ttl_ms): sent, no reply yet
        self._deadlines = []  # heap of (local deadline, id); stale entries skipped
        self._stash = OrderedDict()  # id -> Reply: received, not yet handed out
        self._open()

    # -- lifecycle ---------------------------------------------------------

    def _open(self):
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        server, secret = self._curve
        if server:
            self._sock.curve_serverkey = server.encode("ascii")
            self._sock.curve_secretkey = secret.encode("ascii")
            self._sock.curve_publickey = zmq.curve_public(secret.encode("ascii"))
        self._sock.connect(self.endpoint)

    def close(self):
        """Close the socket; requests still in flight are dropped."""
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        self._inflight.clear()
        self._deadlines.clear()
        self._stash.clear()

    @property
    def closed(self):
        return self._sock is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Client({self.endpoint!r}, in_flight={self.in_flight})"

    @property
    def in_flight(self):
        """Requests sent whose replies have not yet been handed out."""
        return len(self._inflight) + len(self._stash)

    # -- requests ------------------------------------------------------------

    def call(self, svc, verb, body=None, ttl_ms=None):
        """Send one request and wait for its reply; return the decoded body.

        Raises a CairnError subclass when the status is >= 400. Replies to
        other requests in flight that arrive meanwhile are kept for recv().
        """
        rid = self.send(svc, verb, body, ttl_ms)
        try:
            while rid not in self._stash:
                self._pump(math.inf)
        except BaseException:
            self._forget((rid,))
            raise
        return self._stash.pop(rid).raise_for_status().body

    def send(self, svc, verb, body=None, ttl_ms=None):
        """Send a request without waiting; return its id for matching recv()."""
        payload = b"" if body is None else msgpack.packb(body, use_bin_type=True)
        return self.send_packed(svc, verb, payload, ttl_ms)

    def send_packed(self, svc, verb, payload, ttl_ms=None, zero_copy=True):
        """Like send(), with ``payload`` the body already packed as msgpack
        (hot paths pack by hand). zero_copy=False always copies the bytes:
        pyzmq's zero-copy sends need a helper thread that cannot start while
        the interpreter exits."""
        self._check_open()
        ttl = self.ttl_ms if ttl_ms is None else _check_ttl(ttl_ms)
        rid = self._next_id
        hdr = {"id": rid, "svc": svc, "verb": verb, "ttl": ttl}
        if self.token:
            hdr["tok"] = self.token
        if self.workspace:
            hdr["ws"] = self.workspace
        frames = [b"", TAG, msgpack.packb(hdr, use_bin_type=True), payload]
        if not self._sock.poll(ttl + GRACE_MS, zmq.POLLOUT):
            raise DeadlineExceeded(
                f"could not queue {svc}.{verb} within {ttl + GRACE_MS} ms (too many "
                f"requests waiting to be sent); is cairnd running at {self.endpoint}?",
                504, "no_reply")
        self._sock.send_multipart(frames, copy=not zero_copy or len(payload) < 65536)
        self._next_id += 1
        deadline = time.monotonic() + (ttl + GRACE_MS) / 1000.0
        self._inflight[rid] = (deadline, svc, verb, ttl)
        heapq.heappush(self._deadlines, (deadline, rid))
        return rid

    def recv(self, timeout=None):
        """Return the next Reply to any request sent, in arrival order.

        Never raises for a reply's status (see Reply.raise_for_status). A
        request with no reply by its ttl + 1 s comes back as a Reply with
        status 504 and code ``no_reply``. timeout (seconds): raise
        DeadlineExceeded if nothing comes sooner; requests stay in flight.
        RuntimeError when nothing is in flight.
        """
        self._check_open()
        end = math.inf if timeout is None else time.monotonic() + timeout
        while not self._stash:
            if not self._inflight:
                raise RuntimeError("recv(): no request in flight")
            self._pump(end)
            if not self._stash and time.monotonic() >= end:
                raise DeadlineExceeded(
                    f"no reply within {timeout} s from {self.endpoint}; "
                    f"{len(self._inflight)} request(s) still in flight", 504, "no_reply")
        return self._stash.popitem(last=False)[1]

    def call_many(self, requests, window=64):
        """Send many requests keeping at most ``window`` in flight; return
        their Replies (not raised) in request order.

        Each request is a tuple ``(svc, verb[, body[, ttl_ms]])`` or a dict
        with those keys.
        """
        if window < 1:
            raise ValueError("window must be at least 1")
        self._check_open()
        ids, got, outstanding = [], {}, set()
        it = iter(requests)
        more = True
        try:
            while True:
                while more and len(outstanding) < window:
                    try:
                        req = next(it)
                    except StopIteration:
                        more = False
                        break
                    rid = self.send(**req) if isinstance(req, dict) else self.send(*req)
                    ids.append(rid)
                    outstanding.add(rid)
                if not outstanding:
                    return [got.pop(rid) for rid in ids]
                ready = [rid for rid in self._stash if rid in outstanding]
                for rid in ready:
                    got[rid] = self._stash.pop(rid)
                    outstanding.discard(rid)
                if not ready:
                    self._pump(math.inf)
        except BaseException:
            self._forget(outstanding)
            raise

    # -- internals -----------------------------------------------------------

    def _check_open(self):
        if self._sock is None:
            raise ValueError("the client is closed")

    def _forget(self, ids):
        for rid in ids:
            self._inflight.pop(rid, None)
            self._stash.pop(rid, None)

    def _pump(self, end):
        """Wait until a reply arrives, a request's local deadline passes, or
        ``end`` (monotonic seconds); move what came into the stash."""
        heap = self._deadlines
        while heap and heap[0][1] not in self._inflight:
            heapq.heappop(heap)
        until = min(end, heap[0][0]) if heap else end
        wait = -1 if until == math.inf else max(0, math.ceil((until - time.monotonic()) * 1000))
        if self._sock.poll(wait, zmq.POLLIN):
            while True:
                try:
                    frames = self._sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._accept(frames)
        self._expire(time.monotonic())

    def _accept(self, frames):
        # Frames that cannot be matched to a request are dropped.
        if len(frames) < 3 or frames[0] != b"" or frames[1] != TAG:
            return
        try:
            hdr = msgpack.unpackb(frames[2], raw=False, strict_map_key=False)
        except Exception:
            return
        if not isinstance(hdr, dict):
            return
        rid = hdr.get("id")
        if rid is None and len(self._inflight) == 1:
            # The kernel answers some malformed requests (a header over its
            # limit) without the id; with one request in flight it is that one.
            rid = next(iter(self._inflight))
        if rid not in self._inflight:
            return  # late (given up locally) or not ours
        del self._inflight[rid]
        st = hdr.get("st")
        code, err, body = hdr.get("code"), hdr.get("err"), None
        if not isinstance(st, int) or isinstance(st, bool):
            st, code, err = 500, "bad_reply", f"the reply header has no valid 'st': {hdr!r}"
        elif len(frames) > 3 and frames[3]:
            try:
                body = msgpack.unpackb(frames[3], raw=False, strict_map_key=False)
            except Exception as e:
                st, code, err = 500, "bad_reply", f"the reply body is not valid msgpack: {e}"
        self._stash[rid] = Reply(rid, st, code, err, body, hdr)

    def _expire(self, now):
        heap, expired = self._deadlines, False
        while heap and heap[0][0] <= now:
            _, rid = heapq.heappop(heap)
            info = self._inflight.pop(rid, None)
            if info is None:
                continue
            _, svc, verb, ttl = info
            self._stash[rid] = Reply(
                rid, 504, "no_reply",
                f"no reply to {svc}.{verb} within {ttl + GRACE_MS} ms; "
                f"is cairnd running at {self.endpoint}?")
            expired = True
        if expired and not self._inflight:
            # Lazy Pirate: a fresh socket, so that requests still queued for an
            # absent kernel are not delivered to it later.
            self._sock.close(linger=0)
            self._open()


def _check_ttl(ttl_ms):
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or ttl_ms <= 0:
        raise ValueError(f"ttl_ms must be a positive integer (milliseconds), not {ttl_ms!r}")
    return ttl_ms
