"""Artifact transfers of Cairn's Python SDK (Tracker.log_artifact,
log_artifacts, download_artifact in tracking.py): put_artifact and
get_artifact in chunks, riding out a restart of the artifacts service,
hash-verified at both ends. Split from tracking.py; its public names are
re-exported there."""
import hashlib
import os
import re
import time

from .errors import CairnError, Conflict, DeadlineExceeded, NotFound, Overloaded, Unavailable

ARTIFACTS_SVC = "artifacts"
ARTIFACT_CHUNK = 4 << 20  # bytes per put_artifact request
# An upload rides out a restart of the artifacts service: a chunk answered
# 503, or after the first not answered in time, is sent again (same upload,
# same offset),
# waiting 50 ms and twice as long each time up to 2 s, for at most this long
# ($CAIRN_ARTIFACT_RETRY_S, a positive number of seconds, overrides it; it is
# read when a transfer starts). A download does the same with its
# get_artifact requests (same offset): _Retry serves both.
ARTIFACT_RETRY_S = 60.0
ARTIFACT_RETRY_ENV = "CAIRN_ARTIFACT_RETRY_S"
_BACKOFF_MIN_S, _BACKOFF_MAX_S = 0.05, 2.0
_MOVES_MAX = 16  # 409 "expected offset N" followed per chunk
# After the first chunk, up to this many chunks are in flight at once (an
# upload's put_artifact, a download's get_artifact): the server works on
# one while the next is on the wire and the one after is read and hashed
# here. A failure in the window drains it and goes on one chunk at a time
# (with the retries below), then the window goes on.
ARTIFACT_WINDOW = 4

# An artifact's content hash, by the name replies give it (hash_alg):
# SHA-256 names every blob stored now, BLAKE2b-256 every blob stored before
# (a reply without hash_alg comes from a server older than SHA-256).
_HASHERS = {"sha256": hashlib.sha256,
            "blake2b": lambda: hashlib.blake2b(digest_size=32)}


def _reply_alg(r):
    """The algorithm of a reply's hash: its hash_alg, BLAKE2b when absent."""
    return r.get("hash_alg", "blake2b")
_EXPECTED_OFFSET = re.compile(r"expected offset (\d+)")


def _retry_s(env=ARTIFACT_RETRY_ENV, default=None):
    """How long a chunk is retried: $CAIRN_ARTIFACT_RETRY_S when it is a
    positive number of seconds, else ARTIFACT_RETRY_S (read now: it may be
    set at run time). env and default name another pair: $CAIRN_LOG_RETRY_S
    and LOG_RETRY_S for log_batch."""
    if default is None:
        default = ARTIFACT_RETRY_S
    v = os.environ.get(env)
    try:
        s = float(v) if v else 0.0
    except ValueError:
        s = 0.0
    return s if 0 < s <= 1e9 else default  # NaN and inf fail the test


def _expected_offset(e):
    """Where a 409 says the server is: its body's expected_offset, else (an
    older server) the N of a sentence that says "expected offset N"; None
    when it says neither."""
    at = e.body.get("expected_offset") if isinstance(e.body, dict) else None
    if isinstance(at, int) and not isinstance(at, bool) and at >= 0:
        return at
    m = _EXPECTED_OFFSET.search(e.message or "")
    return int(m.group(1)) if m else None


class _Retry:
    """The retries of one request of a transfer (a chunk to put, a chunk to
    get) while the artifacts service restarts; made before its first try."""

    def __init__(self, budget_s):
        self.budget, self.t0 = budget_s, time.monotonic()
        self.wait, self.tries = _BACKOFF_MIN_S, 0

    def wait_or_raise(self, e, first, what):
        """A try failed with e (Unavailable: the service restarting, or
        DeadlineExceeded: no reply within the ttl). Returns once it is time
        to try again: after 50 ms, then twice as long each time up to 2 s.
        Raises e itself when nothing of the transfer was answered yet and e
        is DeadlineExceeded (most likely no cairnd at all: say so at once),
        and e's class with a sentence that says it gave up on ``what``,
        after how many tries and why, when the next wait would go past the
        budget."""
        if isinstance(e, DeadlineExceeded) and first:
            raise e
        # Overloaded (429): no upload slot free now; one frees when another
        # transfer ends, so it is waited for as a restart is.
        spent = time.monotonic() - self.t0
        if spent + self.wait > self.budget:
            raise type(e)(
                f"gave up on {what} after {self.tries + 1} tries in {spent:.0f} s (the "
                f"artifacts service is restarting or unreachable): {e.message}", e.status,
                e.code) from e
        time.sleep(self.wait)
        self.wait = min(self.wait * 2, _BACKOFF_MAX_S)
        self.tries += 1


class _Moved(Exception):
    """put_artifact answered 409 "expected offset N": the server holds N bytes."""

    def __init__(self, at):
        super().__init__(at)
        self.at = at


class _Upload:
    """One file to put_artifact, in ARTIFACT_CHUNK requests, read one chunk
    ahead so that the last request carries done=true. The server keeps
    acknowledged chunks across a restart of the artifacts service and
    resumes the upload at the next chunk, so: a chunk answered 503, or one
    after the first not answered at all (DeadlineExceeded), is sent again, the same bytes at the same offset,
    with backoff for up to ARTIFACT_RETRY_S ($CAIRN_ARTIFACT_RETRY_S); a 409
    whose body says {"expected_offset": N} (from an older server: whose
    sentence says "expected offset N") goes
    on from N (re-reading the file there); a last chunk that finds its
    upload gone (404) after a retry may have committed before its reply was
    lost: what the server holds at the path is checked against the bytes
    sent. The SHA-256 of the bytes read must be the server's; a server
    that names another algorithm (or none: BLAKE2b) is too old to check
    against, and the upload fails with a sentence that says so."""

    def __init__(self, client, run_id, dest, f):
        self.c, self.run_id, self.dest, self.f = client, run_id, dest, f
        self.upload_id = None
        self.offset = 0  # bytes the server holds
        self.hash = hashlib.sha256()
        self.retry_s = _retry_s()
        self.resent = False  # chunks sent in the window are being sent again
        self.tried = None  # and when the first of them was sent (monotonic s)

    def run(self):
        """Returns {path, size, hash, hash_alg} once the server committed the bytes.
        An upload that fails for good is aborted on the server (its temp
        file and upload slot go at once), best effort."""
        try:
            return self._check(self._chunks())
        except CairnError as e:
            self._abort(e)
            raise

    def _chunks(self):
        """Every chunk, the first alone (it opens the upload), the rest with
        up to ARTIFACT_WINDOW in flight; the reply of the last."""
        read = self.f.read
        window, got, last = [], {}, None  # [off, data, done, rid, sent at], oldest first
        cur, pos = read(ARTIFACT_CHUNK), 0
        self.hash.update(cur)
        while True:
            nxt = read(ARTIFACT_CHUNK) if len(cur) == ARTIFACT_CHUNK else b""
            self.hash.update(nxt)
            done = not nxt
            if self.upload_id is None:
                last = self._send(cur, done)
            else:
                last = self._reap(window, got, ARTIFACT_WINDOW - 1) or last
                body = {"run_id": self.run_id, "path": self.dest, "data": cur,
                        "offset": pos, "done": done, "upload_id": self.upload_id}
                window.append((pos, cur, done, self.c.send(ARTIFACTS_SVC, "put_artifact", body),
                               time.monotonic()))
            pos += len(cur)
            if done:
                return self._reap(window, got, 0) or last
            cur = nxt

    def _reap(self, window, got, keep):
        """Take the oldest replies until at most ``keep`` chunks are in
        flight; the last chunk's reply when it came."""
        last = None
        while len(window) > keep:
            off, data, done, rid, _ = window[0]
            while rid not in got:
                r = self.c.recv()
                got[r.id] = r
            r = got.pop(rid)
            try:
                body = r.raise_for_status().body or {}
                self._took(body, off + len(data), done)
            except CairnError as e:
                return self._recover(window, got, e)
            window.pop(0)
            if done:
                last = body
        return last

    def _took(self, body, end, done):
        if not done and (body.get("upload_id") != self.upload_id or body.get("offset") != end):
            raise CairnError(f"after {end} bytes of {self.dest!r} the server answered "
                             f"{body!r}", 502, "bad_reply")
        self.offset = end

    def _recover(self, window, got, e):
        """The oldest chunk in flight failed (e): take the others' replies
        (one may have gone through: the server is then further on), then
        send what is left of each again, in order, one at a time (_send:
        retries, 409 moves; the first keeps the retry budget its try in the
        window started). The last chunk's reply."""
        last = None
        for off, data, done, rid, _ in window[1:]:
            while rid not in got:
                r = self.c.recv()
                got[r.id] = r
            r = got.pop(rid)
            if r.ok:
                try:
                    self._took(r.body or {}, off + len(data), done)
                    last = (r.body or {}) if done else last
                except CairnError:
                    pass
        got.clear()
        at = _expected_offset(e) if isinstance(e, Conflict) else None
        again = at is not None or isinstance(e, (Unavailable, DeadlineExceeded, Overloaded))
        if not again and last is None:
            raise e
        if last is not None:
            window.clear()
            return last
        end = window[-1][0] + len(window[-1][1])
        if at is not None:
            if at > end:
                raise CairnError(f"the server holds {at} bytes of the upload of {self.dest!r}, "
                                 f"which cannot go on from there ({end} bytes were sent)",
                                 409, "conflict") from None
            self.offset = at
        self.resent, self.tried = True, window[0][4]
        try:
            for off, data, done, _, _ in window:
                stop = off + len(data)
                if stop < self.offset or (stop == self.offset and not done):
                    continue
                r = self._send(data, done, off)
                if done:
                    last = r
        finally:
            self.resent, self.tried = False, None
            window.clear()
        return last

    def _abort(self, e):
        # None when there is no upload left (404), or no server to ask (503,
        # 504: the budget is spent; the server drops it after upload_idle).
        if self.upload_id is None or isinstance(e, (NotFound, Unavailable, DeadlineExceeded)):
            return
        try:
            self.c.call(ARTIFACTS_SVC, "abort_upload",
                        {"run_id": self.run_id, "upload_id": self.upload_id}, ttl_ms=2000)
        except CairnError:
            pass

    def _send(self, cur, done, base=None):
        """Send the chunk in hand (at base, default self.offset) from
        self.offset (where the server is: in the chunk or before it), going
        on from where the server says it is; the reply of the chunk that
        completes it."""
        base = self.offset if base is None else base
        moves = 0
        while True:
            p = self.offset
            if p >= base:
                data, fin = cur[p - base:], done
                if not data and not done:
                    return None
            else:  # bytes before the chunk in hand, read again
                data, fin = os.pread(self.f.fileno(), min(ARTIFACT_CHUNK, base - p), p), False
            try:
                r = self._put(data, fin)
            except _Moved as m:
                moves += 1
                if moves > _MOVES_MAX or m.at > base + len(cur):
                    raise CairnError(
                        f"the server holds {m.at} bytes of the upload of {self.dest!r}, "
                        f"which cannot go on from there ({base + len(cur)} bytes were sent)",
                        409, "conflict") from None
                self.offset = m.at
                continue
            if p >= base:
                return r

    def _put(self, data, done):
        body = {"run_id": self.run_id, "path": self.dest, "data": data,
                "offset": self.offset, "done": done}
        if self.upload_id is not None:
            body["upload_id"] = self.upload_id
        retry = _Retry(self.retry_s)
        if self.tried is not None:  # its try in the window counts, from when it was sent
            retry.t0, retry.tries, self.tried = self.tried, 1, None
        while True:
            try:
                r = self.c.call(ARTIFACTS_SVC, "put_artifact", body) or {}
                break
            except Conflict as e:
                at = _expected_offset(e)
                if self.upload_id is None or at is None:
                    raise
                raise _Moved(at) from None
            except NotFound:
                if (retry.tries or self.resent) and done:
                    return self._stored(self.offset + len(data))
                raise
            except (Unavailable, DeadlineExceeded, Overloaded) as e:
                # no reply to a first chunk: nothing to resume yet either
                retry.wait_or_raise(e, self.upload_id is None,
                                    f"the chunk at offset {self.offset} of {self.dest!r}")
        self.offset += len(data)
        if done:
            return r
        if self.upload_id is None:
            self.upload_id = r.get("upload_id")
            if not self.upload_id:
                raise CairnError(f"put_artifact for {self.dest!r} answered no upload_id",
                                 500, "bad_reply")
        if r.get("offset") != self.offset:
            raise CairnError(f"after {self.offset} bytes of {self.dest!r} the server "
                             f"expects offset {r.get('offset')}", 502, "bad_reply")
        return r

    def _stored(self, size):
        """The last chunk's upload is gone after a retry: its first copy
        committed if the artifact at the path is what was sent."""
        try:
            r = self.c.call(ARTIFACTS_SVC, "get_artifact", {
                "run_id": self.run_id, "path": self.dest, "offset": size, "length": 0})
        except CairnError:
            r = {}
        if (r.get("size") != size or _reply_alg(r) != "sha256" or
                r.get("hash") != self.hash.hexdigest()):
            raise NotFound(f"the upload of {self.dest!r} was lost on the server while "
                           f"its last chunk was sent again; upload the file again",
                           404, "not_found")
        self.offset = size
        return {"artifact": {"path": self.dest, "size": size, "hash": r["hash"],
                             "hash_alg": "sha256"}}

    def _check(self, r):
        a = (r or {}).get("artifact") or {}
        if a and _reply_alg(a) != "sha256":
            raise CairnError(f"the server is too old: it hashes artifacts with "
                             f"{_reply_alg(a)}, and this SDK checks an upload against its "
                             f"SHA-256; {self.dest!r} was stored but not verified: upgrade "
                             f"cairnd", 502, "bad_reply")
        want = self.hash.hexdigest()
        if a.get("hash") != want or a.get("size") != self.offset:
            raise CairnError(f"the server stored {a.get('size')} bytes of {self.dest!r} "
                             f"with hash {a.get('hash')}, but {self.offset} bytes with "
                             f"hash {want} were sent", 500, "corrupt")
        return a


class _Download:
    """One artifact from get_artifact into a binary file f, ARTIFACT_CHUNK
    bytes a request. get_artifact is idempotent, so a request answered 503,
    or not answered at all (DeadlineExceeded) once a chunk has arrived, is
    asked for again, the same offset, with backoff for up to
    ARTIFACT_RETRY_S ($CAIRN_ARTIFACT_RETRY_S), as an upload's chunk is.
    Every reply must name the size and hash of the first (Conflict, code
    ``changed``, when the artifact changed meanwhile) and follow on at
    the offset asked for; the hash of the bytes that arrived, of the
    algorithm the first reply names (hash_alg; none: BLAKE2b-256, a server
    older than SHA-256), must be the server's (``corrupt`` otherwise)."""

    def __init__(self, client, run_id, path, f):
        self.c, self.run_id, self.path, self.f = client, run_id, path, f
        # size, hash and its algorithm: the first reply's
        self.offset, self.size, self.want, self.alg = 0, None, None, None
        self.hash = None
        self.retry_s = _retry_s()

    def run(self):
        """Returns {path, size, hash, hash_alg}, once the bytes are written and
        verified.
        The first chunk alone (it says the size), then up to ARTIFACT_WINDOW
        requests in flight, their replies taken in order; a failed one
        drops the window and goes on one chunk at a time from the first byte
        not written (_get: the retries), then the window goes on."""
        window, got, done = [], {}, False  # window: [rid], oldest first
        nxt = 0  # the offset the next request asks for
        try:
            while not done:
                if self.size is None:
                    done = self._take(self._get())
                    nxt = self.offset
                    continue
                while len(window) < ARTIFACT_WINDOW and nxt < self.size:
                    window.append(self.c.send(ARTIFACTS_SVC, "get_artifact", {
                        "run_id": self.run_id, "path": self.path, "offset": nxt,
                        "length": ARTIFACT_CHUNK}))
                    nxt += ARTIFACT_CHUNK
                rid = window.pop(0)
                while rid not in got:
                    r = self.c.recv()
                    got[r.id] = r
                r = got.pop(rid)
                if r.status in (429, 503, 504):
                    self.c._forget(window)  # their replies are dropped as they come
                    window.clear()
                    got.clear()
                    done = self._take(self._get())
                    nxt = self.offset
                    continue
                done = self._take(r.raise_for_status().body or {})
        finally:
            self.c._forget(window)
        got = self.hash.hexdigest()
        if got != self.want:
            raise CairnError(f"{self.path!r} arrived corrupt: its bytes hash to {got}, the "
                             f"server says {self.want}", 500, "corrupt")
        return {"path": self.path, "size": self.size, "hash": self.want,
                "hash_alg": self.alg}

    def _take(self, r):
        """A get_artifact reply (its body r) for the chunk at self.offset:
        checked, hashed and written; whether it was the last."""
        data, off, size, want, done = (r.get(k) for k in
                                       ("data", "offset", "size", "hash", "done"))
        alg = _reply_alg(r)
        if (not isinstance(data, bytes) or not isinstance(off, int) or
                not isinstance(size, int) or not isinstance(want, str) or
                not isinstance(done, bool)):
            raise CairnError("the reply of artifacts.get_artifact lacks data, offset, "
                             "size, hash or done", 502, "bad_reply")
        if not isinstance(alg, str) or alg not in _HASHERS:
            raise CairnError(f"the server hashes {self.path!r} with {alg!r}, which this "
                             f"SDK does not know: upgrade it", 502, "bad_reply")
        if self.size is not None and (size, want, alg) != (self.size, self.want, self.alg):
            raise Conflict(f"{self.path!r} changed while it was being downloaded; try "
                           f"again", 409, "changed")
        end = self.offset + len(data)
        if (off != self.offset or len(data) > ARTIFACT_CHUNK or end > size or
                (not done and not data) or (done and end != size)):
            raise CairnError(f"the reply of artifacts.get_artifact does not follow on: "
                             f"offset {off}, {len(data)} bytes of {size}, asked for "
                             f"offset {self.offset}", 502, "bad_reply")
        if self.hash is None:
            self.hash = _HASHERS[alg]()
        self.size, self.want, self.alg = size, want, alg
        self.hash.update(data)
        self.f.write(data)
        self.offset = end
        return done

    def _get(self):
        body = {"run_id": self.run_id, "path": self.path, "offset": self.offset,
                "length": ARTIFACT_CHUNK}
        retry = _Retry(self.retry_s)
        while True:
            try:
                return self.c.call(ARTIFACTS_SVC, "get_artifact", body) or {}
            except (Unavailable, DeadlineExceeded, Overloaded) as e:
                retry.wait_or_raise(e, self.size is None,
                                    f"the download of {self.path!r} at offset {self.offset}")
