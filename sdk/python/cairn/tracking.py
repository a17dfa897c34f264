"""Experiment tracking: MLflow-style logging of params, metrics, tags and
artifacts to Cairn's ``tracking`` service.

    import cairn
    with cairn.start_run(experiment="mnist", run_name="baseline") as run:
        cairn.log_params({"lr": 0.01, "epochs": 3})
        for step in range(100):
            cairn.log_metric("loss", 1.0 / (step + 1), step=step)
        cairn.log_metrics_batch("acc", accs)          # many points of one key at once
        cairn.set_tag("team", "vision")
    # here the run is FINISHED (FAILED if an exception escaped, KILLED on Ctrl-C)

Module-level functions act on a default Tracker; make a Tracker for explicit
use (another endpoint or token, several at once).

Where: ``set_tracking(endpoint, token)``, else ``$CAIRN_ENDPOINT`` and
``$CAIRN_TOKEN``. Inside a job ``$CAIRN_RUN_ID`` names the job's run:
``start_run()`` with no arguments (or the first log call) attaches to it and
leaves its status to the job. ``$CAIRN_EXPERIMENT_NAME`` is the default
experiment (else ``Default``).

Logging is asynchronous. A background thread, with its own connection, batches
what is logged per run and sends it as ``log_batch`` requests (several in
flight) when a batch is full (``batch_points``) or ``flush_interval`` has
passed. The queue is bounded (``max_pending`` points): a caller that gets
ahead blocks until the server catches up; nothing is dropped. ``flush()``
returns once everything logged before it is stored. At interpreter exit what
is queued is flushed and runs this process created are ended.

Server errors (a param logged again with another value: Conflict; a value the
server refuses: BadRequest; ...) are never dropped: they are raised by the
next call into the tracker (or by ``flush()`` and ``end_run()``), as the
matching CairnError subclass naming the failing key. A failed batch of params
and tags is retried item by item, so one bad param does not take other params
with it. Obvious mistakes (a key that is not a string, a value that is not a
number) raise TypeError or ValueError at the call site.

A log_batch the kernel refuses with the body ``{"delivered": false}`` (no
plugin saw it: the tracking service restarting after a crash, or its queue
full) is not an error: it is sent again, in its place, after a backoff (50 ms
doubling to 2 s) for up to LOG_RETRY_S seconds (``$CAIRN_LOG_RETRY_S``), and
reported only past that. Any other failure (the plugin died while serving
it, no reply) may have been stored, so it is reported, never resent.

``set_async(False)`` (or ``Tracker(asynchronous=False)``) makes every call
synchronous: it returns once the server stored it, or raises (after the same
retries of a batch refused as not delivered).

Artifacts: ``log_artifact(path)`` / ``log_artifacts(dir)`` upload files
(checked against their SHA-256); ``download_artifact(path, dst)``
downloads one (verified, then renamed into place). Both ride out a restart of
the artifacts service (of cairnd or of the plugin's process): a chunk
answered 503, or lost, is sent or asked for again for up to
``ARTIFACT_RETRY_S`` seconds (``$CAIRN_ARTIFACT_RETRY_S``).

Params and tag values are str()-ed as MLflow does. A metric's timestamp
defaults to now (ms since the epoch) and its step to 0; log_metrics_batch's
steps default to 0, 1, ... n-1.

Threads: a Tracker may be used from several threads (each gets its own
connection for synchronous calls). The stack of active runs is shared by the
threads of a process. After fork() the child starts with an empty queue; runs
inherited from the parent are logged to but never ended by the child.
Processes that leave through os._exit() (multiprocessing workers) must call
flush() themselves.
"""
import atexit
import math
import operator
import os
import posixpath
import re
import struct
import sys
import threading
import time
import types
import weakref
from collections import deque
from itertools import repeat

import msgpack

from .client import Client, Reply, _check_ttl
from .errors import (CairnError, Conflict, DeadlineExceeded, NotFound, Unavailable,
                     error_for)
from .transfer import (ARTIFACT_CHUNK, ARTIFACT_RETRY_ENV,  # noqa: F401 (re-exported)
                       ARTIFACT_RETRY_S, ARTIFACTS_SVC, _BACKOFF_MAX_S, _BACKOFF_MIN_S,
                       _Download, _retry_s, _Upload)

SVC = "tracking"
# A log_batch refused with {"delivered": false} in the error body (the kernel
# says no plugin saw it: the tracking service restarting, or its queue full)
# is sent again, with the same backoff, for at most this long from its first
# refusal ($CAIRN_LOG_RETRY_S overrides it, parsed as $CAIRN_ARTIFACT_RETRY_S
# is). Any other failure is reported, never resent: it may have been stored.
LOG_RETRY_S = 60.0
LOG_RETRY_ENV = "CAIRN_LOG_RETRY_S"
MAX_BATCH_POINTS = 100_000  # the server's limit per log_batch
MAX_BATCH_META = 1000  # params + tags per log_batch we send (the server takes 10,000 each)
MAX_KEY_BYTES = 250
STATUSES = ("FINISHED", "FAILED", "KILLED")
_KEY_CACHE_MAX = 10_000

# A metric point, packed by hand: {"key": K, "value": f64, "timestamp": i64,
# "step": i64}. The per-key prefix ends with the float64 marker.
_MID_TS = b"\xa9timestamp\xd3"
_MID_STEP = b"\xa4step\xd3"
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _now_ms():
    return int(time.time() * 1000)


def _array_header(n):
    if n < 16:
        return bytes((0x90 | n,))
    if n < 65536:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def _check_key(key, what="key"):
    if not isinstance(key, str):
        raise TypeError(f"a {what} must be a str, not {type(key).__name__} ({key!r:.60})")
    if not key:
        raise ValueError(f"a {what} must not be empty")
    if len(key) > MAX_KEY_BYTES // 4 and len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"the {what} {key[:60]!r}... is over {MAX_KEY_BYTES} bytes")
    return key


def _as_list(xs, what):
    if hasattr(xs, "tolist"):  # numpy arrays and the like: plain Python numbers, fast
        xs = xs.tolist()
    if isinstance(xs, (list, tuple, range)):
        return xs
    if isinstance(xs, (str, bytes, dict)):
        raise TypeError(f"{what} must be a sequence of numbers, not {type(xs).__name__}")
    return list(xs)



def _undelivered(r):
    """Whether failed Reply r says no plugin saw the request (its error body
    is {"delivered": false}), so that resending it cannot store it twice."""
    return isinstance(r.body, dict) and r.body.get("delivered") is False


class _Conn(Client):
    """A Client that can also send a body packed beforehand (the hot path
    packs metric points by hand, not through dicts)."""

    def send_raw(self, svc, verb, payload, ttl_ms=None):
        """Like send(), with ``payload`` the msgpack bytes of the body; always
        copied (the last flush runs at interpreter exit)."""
        return self.send_packed(svc, verb, payload, ttl_ms, zero_copy=False)

    def wait(self, rid):
        """The Reply to request ``rid`` (not raised), others kept for recv()."""
        try:
            while rid not in self._stash:
                self._pump(math.inf)
        except BaseException:
            self._forget((rid,))
            raise
        return self._stash.pop(rid)

    def poll_reply(self, timeout):
        """The next Reply, or None when none comes within ``timeout`` s."""
        try:
            return self.recv(timeout)
        except DeadlineExceeded:
            return None


class _Req:
    """One log_batch request: queued in the worker, then in flight."""

    __slots__ = ("run_id", "payload", "n", "meta", "gen", "single", "order", "t0",
                 "tries", "hold", "due")

    def __init__(self, run_id, payload, n, meta=None, gen=None, single=False):
        self.run_id = run_id
        self.payload = payload
        self.n = n  # items it counts against max_pending
        self.meta = meta  # [(kind, key, value)] for params/tags, None for metrics
        self.gen = gen  # [seq, requests outstanding]
        self.single = single
        self.order = (0, 0)  # its place in the worker's outbox
        self.t0 = None  # monotonic time of its first refusal as not delivered
        self.tries = 0  # tries refused as not delivered
        self.hold = _BACKOFF_MIN_S  # the next backoff
        self.due = 0.0  # monotonic time before which it is not sent again

    def backoff(self):
        """After a refusal as not delivered: the seconds to wait before the
        next try, or None when that would go past $CAIRN_LOG_RETRY_S."""
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        self.tries += 1
        if now - self.t0 + self.hold > _retry_s(LOG_RETRY_ENV, LOG_RETRY_S):
            return None
        hold, self.hold = self.hold, min(self.hold * 2, _BACKOFF_MAX_S)
        self.due = now + hold
        return hold

    def gave_up(self, r):
        """The CairnError for a request refused as not delivered until the
        budget ran out."""
        spent = time.monotonic() - (self.t0 if self.t0 is not None else time.monotonic())
        return _failure(self, r, f"gave up after {self.tries} tries in {spent:.1f} s: the "
                                 f"tracking service stayed unavailable or overloaded "
                                 f"(${LOG_RETRY_ENV})")


class _RunBuf:
    __slots__ = ("pts", "chunks", "meta")

    def __init__(self):
        self.pts = []  # packed single points (bytes)
        self.chunks = []  # (packed points, count)
        self.meta = []  # ("param" | "tag", key, value) in logging order


class ActiveRun:
    """A run being logged to; a context manager that ends it.

    ``run_id``, ``experiment_id``, ``info`` (the server's run info, as
    attributes: ``run.info.run_id``, ``run.info.status`` ...), ``owned``
    (whether leaving ends it: False for the job's run from $CAIRN_RUN_ID).
    """

    def __init__(self, tracker, run, owned):
        self.tracker = tracker
        self.run_id = run["info"]["run_id"]
        self.experiment_id = run["info"]["experiment_id"]
        self.info = types.SimpleNamespace(**run["info"])
        self.owned = owned
        self.ended = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        self.tracker._end(self, status, raise_errors=exc_type is None)
        return False

    def __repr__(self):
        return f"ActiveRun(run_id={self.run_id!r}, experiment_id={self.experiment_id!r})"


_trackers = weakref.WeakSet()


def _job_run_of_other_rank():
    """$CAIRN_RUN_ID when this process is an MPI rank other than 0 (Open
    MPI's, MPICH's or PMIx's variable says so), else None."""
    for var in ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"):
        rank = os.environ.get(var)
        if rank is not None:
            return os.environ.get("CAIRN_RUN_ID") if rank.strip() != "0" else None
    return None


class Tracker:
    """Logs to one cairnd. See the module's documentation.

    endpoint, token, workspace: as for Client (default $CAIRN_ENDPOINT,
    $CAIRN_TOKEN). asynchronous: batch in a background thread (default) or
    send every call at once. batch_points: metric points per log_batch
    (at most 100,000). flush_interval: seconds a logged value may wait for
    its batch to fill. max_pending: points (and params/tags) queued or in
    flight before callers block. window: log_batch requests in flight.
    ttl_ms: per-request ttl.
    """

    def __init__(self, endpoint=None, token=None, workspace=None, asynchronous=True,
                 batch_points=25_000, flush_interval=0.2, max_pending=1_000_000, window=4,
                 ttl_ms=30000):
        if not 1 <= batch_points <= MAX_BATCH_POINTS:
            raise ValueError(f"batch_points must be from 1 to {MAX_BATCH_POINTS}")
        if max_pending < 1 or window < 1 or flush_interval < 0:
            raise ValueError("max_pending and window must be at least 1, flush_interval >= 0")
        self.endpoint = endpoint or os.environ.get("CAIRN_ENDPOINT") or None
        self.token = token if token is not None else (os.environ.get("CAIRN_TOKEN") or None)
        self.workspace = workspace
        self.ttl_ms = _check_ttl(ttl_ms)
        self.asynchronous = bool(asynchronous)
        self.batch_points = batch_points
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.window = window
        self.errors = []  # every logging error seen, raised or not (the last 1000)
        self._keys = {}  # metric key -> (Struct.pack, prefix)
        self._experiments = {}  # name -> experiment_id
        self._stack = []  # ActiveRun, innermost last
        self._closed = False
        self._reset_state()
        _trackers.add(self)

    def _reset_state(self):
        """Locks, queue and worker from scratch (at creation; in a forked child)."""
        self._lock = lock = threading.Lock()  # guards the queue; both conditions use it
        self._cv = threading.Condition(lock)  # callers wait here (flush, room)
        self._wake = threading.Condition(lock)  # the worker waits here
        self._runs_lock = threading.RLock()
        self._local = threading.local()
        self._clients = []  # every thread's synchronous connection, closed by close()
        self._buf = {}  # run_id -> _RunBuf, not yet taken by the worker
        self._nbuf = 0  # items in _buf
        self._buf_since = 0.0  # monotonic time _buf became non-empty
        self._pending = 0  # items queued or in flight (the backpressure count)
        self._seq = 0  # enqueue counter
        self._done_seq = 0  # everything enqueued up to here is acknowledged
        self._flush_wanted = False
        self._blocked = 0  # callers waiting for room
        self._closing = False
        self._unraised = []  # errors not yet raised to the caller
        # In an MPI job every rank sees the job's run: rank 0's metrics are
        # kept, the others' are dropped (each would log the same steps).
        self._muted_run = _job_run_of_other_rank()
        self._thread = None
        self._worker_ok = False

    # -- configuration -----------------------------------------------------

    def set_async(self, asynchronous=True):
        """Switch between background batching and synchronous calls (flushes
        what is queued first)."""
        if not asynchronous and self.asynchronous:
            self.flush()
        self.asynchronous = bool(asynchronous)

    # -- runs --------------------------------------------------------------

    def start_run(self, experiment=None, run_name=None, run_id=None, nested=False, tags=None):
        """Start (or resume, or attach to) a run and make it the active one.

        experiment: its name, created when missing (default
        $CAIRN_EXPERIMENT_NAME, else the experiment ``Default``). run_id:
        resume that run (it is set RUNNING, and ended on leaving). With no
        run_id and no active run, $CAIRN_RUN_ID (a job's run) is attached to:
        its status is left to the job. nested: start a child of the active
        run. tags: a dict. Returns an ActiveRun, a context manager.
        """
        self._check()
        if tags is not None and not isinstance(tags, dict):
            raise TypeError("tags must be a dict")
        with self._runs_lock:
            env_run = os.environ.get("CAIRN_RUN_ID")
            if (self._stack and not nested and run_id is None and experiment is None
                    and len(self._stack) == 1 and not self._stack[0].owned
                    and self._stack[0].run_id == env_run):
                # The job's run, attached by an earlier log call: the same run.
                active = self._stack[0]
                if run_name:
                    self._client().call(SVC, "update_run",
                                        {"run_id": env_run, "run_name": str(run_name)})
                if tags:
                    self.set_tags(tags)
                return active
            if self._stack and not nested:
                raise RuntimeError(
                    f"run {self._stack[-1].run_id} is already active: end it first, or "
                    f"pass nested=True to start a child run")
            c = self._client()
            if run_id is None and not self._stack and env_run:
                run_id, owned = env_run, False
            elif run_id is not None:
                owned = run_id != env_run
            if run_id is not None:
                run = c.call(SVC, "get_run", {"run_id": run_id})["run"]
                if owned and run["info"]["status"] != "RUNNING":
                    c.call(SVC, "update_run", {"run_id": run_id, "status": "RUNNING"})
                    run["info"]["status"] = "RUNNING"
                if run_name:
                    c.call(SVC, "update_run", {"run_id": run_id, "run_name": str(run_name)})
                    run["info"]["run_name"] = str(run_name)
                active = ActiveRun(self, run, owned)
                self._stack.append(active)
                if tags:
                    self.set_tags(tags)
                return active
            body = {"experiment_id": self._experiment_id(c, experiment),
                    "start_time": _now_ms()}
            if run_name is not None:
                body["run_name"] = str(run_name)
            if tags:
                body["tags"] = [{"key": _check_key(k, "tag key"), "value": str(v)}
                                for k, v in tags.items()]
            if nested and self._stack:
                body["parent_run_id"] = self._stack[-1].run_id
            active = ActiveRun(self, c.call(SVC, "create_run", body)["run"], True)
            self._stack.append(active)
            return active

    def _experiment_id(self, c, name):
        if name is None:
            name = os.environ.get("CAIRN_EXPERIMENT_NAME") or None
        if name is None:
            if (c.workspace or "default") == "default":
                return "0"
            name = "Default"  # experiment 0 is default's: each other has its own
        if not isinstance(name, str) or not name:
            raise TypeError(f"experiment must be a non-empty str (a name), not {name!r:.60}")
        eid = self._experiments.get(name)
        if eid is not None:
            return eid
        try:
            eid = c.call(SVC, "get_experiment_by_name", {"experiment_name": name})[
                "experiment"]["experiment_id"]
        except NotFound:
            try:
                eid = c.call(SVC, "create_experiment", {"name": name})["experiment_id"]
            except Conflict:  # created meanwhile by someone else
                eid = c.call(SVC, "get_experiment_by_name", {"experiment_name": name})[
                    "experiment"]["experiment_id"]
        self._experiments[name] = eid
        return eid

    def end_run(self, status="FINISHED"):
        """End the active run: flush, then set its status and end_time (a run
        attached from $CAIRN_RUN_ID is only flushed). No-op without one."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        with self._runs_lock:
            top = self._stack[-1] if self._stack else None
        if top is None:
            self._check()
            return
        self._end(top, status, raise_errors=True)

    def _end(self, run, status, raise_errors):
        with self._runs_lock:
            if run.ended:
                if raise_errors:
                    self._check()
                return
            # Runs started inside this one and not ended go with it.
            inner = []
            if run in self._stack:
                i = self._stack.index(run)
                inner = self._stack[i + 1:]
                del self._stack[i:]
            self._flush(raise_errors=False)
            first_exc = None
            for r in reversed([run] + inner):
                r.ended = True
                if not r.owned:
                    continue
                try:
                    info = self._client().call(SVC, "update_run", {
                        "run_id": r.run_id, "status": status, "end_time": _now_ms()})
                    if info and info.get("run_info"):
                        r.info = types.SimpleNamespace(**info["run_info"])
                except CairnError as e:
                    if not raise_errors:
                        self._record(e)
                    elif first_exc is None:
                        first_exc = e
        if raise_errors:
            self._check()
            if first_exc is not None:
                raise first_exc

    def active_run(self):
        """The innermost active ActiveRun, or None."""
        stack = self._stack
        return stack[-1] if stack else None

    def get_run(self, run_id=None):
        """The run as the server has it ({info, data}) after a flush; default
        the active run."""
        if run_id is None:
            top = self.active_run()
            if top is None:
                raise ValueError("get_run: no run_id and no active run")
            run_id = top.run_id
        self.flush()
        return self._client().call(SVC, "get_run", {"run_id": run_id})["run"]

    def _run_id(self):
        stack = self._stack
        if stack:
            return stack[-1].run_id
        with self._runs_lock:
            if not self._stack:
                self.start_run()  # as MLflow: logging without a run starts one
            return self._stack[-1].run_id

    # -- logging -------------------------------------------------------------

    def log_param(self, key, value):
        """Log a param (write-once: another value later is a Conflict)."""
        if self._unraised:
            self._check()
        self._put_meta(self._run_id(), [("param", _check_key(key, "param key"), str(value))])

    def log_params(self, params):
        """Log a dict of params."""
        if self._unraised:
            self._check()
        items = [("param", _check_key(k, "param key"), str(v)) for k, v in params.items()]
        if items:
            self._put_meta(self._run_id(), items)

    def set_tag(self, key, value):
        """Set a tag (a later value replaces it)."""
        if self._unraised:
            self._check()
        self._put_meta(self._run_id(), [("tag", _check_key(key, "tag key"), str(value))])

    def set_tags(self, tags):
        """Set a dict of tags."""
        if self._unraised:
            self._check()
        items = [("tag", _check_key(k, "tag key"), str(v)) for k, v in tags.items()]
        if items:
            self._put_meta(self._run_id(), items)

    def _packer(self, key):
        """(pack, prefix) for a metric key, validating the key once."""
        _check_key(key, "metric key")
        prefix = b"\x84\xa3key" + msgpack.packb(key) + b"\xa5value\xcb"
        st = struct.Struct(f">{len(prefix)}sd{len(_MID_TS)}sq{len(_MID_STEP)}sq")
        if len(self._keys) >= _KEY_CACHE_MAX:
            self._keys.clear()
        self._keys[key] = entry = (st.pack, prefix)
        return entry

    def log_metric(self, key, value, step=None, timestamp=None):
        """Log one point: value a number; step an int (default 0); timestamp
        in ms since the epoch (default now)."""
        if self._unraised:
            self._check()
        stack = self._stack
        run_id = stack[-1].run_id if stack else self._run_id()
        if run_id == self._muted_run:
            return None
        try:
            pack, prefix = self._keys[key]
        except (KeyError, TypeError):
            pack, prefix = self._packer(key)
        if timestamp is None:
            timestamp = int(time.time() * 1000)
        try:
            data = pack(prefix, value, _MID_TS, timestamp, _MID_STEP,
                        0 if step is None else step)
        except (struct.error, TypeError, ValueError, OverflowError) as e:
            _bad_point(key, value, step, timestamp)
            raise TypeError(f"metric {key!r}: {e}") from None
        if not self.asynchronous:
            return self._send_now(run_id, data, 1)
        # _enqueue, inlined: this is the hot path
        with self._lock:
            if self._pending >= self.max_pending:
                self._wait_room(1)
            if not self._worker_ok:
                self._start_worker()
            b = self._buf.get(run_id)
            if b is None:
                b = self._buf[run_id] = _RunBuf()
            b.pts.append(data)
            self._pending += 1
            self._seq += 1
            n = self._nbuf = self._nbuf + 1
            if n == 1:
                self._buf_since = time.monotonic()
                self._wake.notify()
            elif n == self.batch_points:
                self._wake.notify()

    def log_metrics(self, metrics, step=None, timestamp=None):
        """Log a dict of key -> value, all at one step and timestamp."""
        if self._unraised:
            self._check()
        run_id = self._run_id()
        if run_id == self._muted_run:
            return
        if timestamp is None:
            timestamp = _now_ms()
        if step is None:
            step = 0
        out = []
        for key, value in metrics.items():
            try:
                pack, prefix = self._keys[key]
            except (KeyError, TypeError):
                pack, prefix = self._packer(key)
            try:
                out.append(pack(prefix, value, _MID_TS, timestamp, _MID_STEP, step))
            except (struct.error, TypeError, ValueError, OverflowError) as e:
                _bad_point(key, value, step, timestamp)
                raise TypeError(f"metric {key!r}: {e}") from None
        if out:
            self._put_chunk(run_id, b"".join(out), len(out))

    def log_metrics_batch(self, key, values, steps=None, timestamps=None):
        """Log many points of one key at once: values a sequence of numbers
        (a list, or a numpy array); steps the same length (default 0, 1, ...
        n-1); timestamps the same length, or one int (default now for all).
        All or nothing: a bad value raises before anything is queued."""
        if self._unraised:
            self._check()
        run_id = self._run_id()
        if run_id == self._muted_run:
            return
        try:
            pack, prefix = self._keys[key]
        except (KeyError, TypeError):
            pack, prefix = self._packer(key)
        values = _as_list(values, "values")
        n = len(values)
        if steps is None:
            steps = range(n)
        else:
            steps = _as_list(steps, "steps")
            if len(steps) != n:
                raise ValueError(f"metric {key!r}: {len(steps)} steps for {n} values")
        if timestamps is None:
            timestamps = _now_ms()
        if isinstance(timestamps, int) or (hasattr(timestamps, "__index__")
                                           and not hasattr(timestamps, "__len__")):
            ts_all = operator.index(timestamps)
            timestamps = None
        else:
            timestamps = _as_list(timestamps, "timestamps")
            if len(timestamps) != n:
                raise ValueError(f"metric {key!r}: {len(timestamps)} timestamps for {n} values")
        size = self.batch_points
        chunks = []
        for i in range(0, n, size):
            vs, ss = values[i:i + size], steps[i:i + size]
            ts = repeat(ts_all) if timestamps is None else timestamps[i:i + size]
            try:
                chunks.append((b"".join(map(pack, repeat(prefix), vs, repeat(_MID_TS), ts,
                                            repeat(_MID_STEP), ss)), len(vs)))
            except (struct.error, TypeError, ValueError, OverflowError) as e:
                for j in range(len(vs)):
                    _bad_point(key, vs[j], ss[j],
                               ts_all if timestamps is None else timestamps[i + j], i + j)
                raise TypeError(f"metric {key!r}: {e}") from None
        for data, k in chunks:
            self._put_chunk(run_id, data, k)

    # -- the queue -----------------------------------------------------------

    def _put_chunk(self, run_id, data, n):
        """Queue n packed points in one piece (n <= batch_points)."""
        if not self.asynchronous:
            return self._send_now(run_id, data, n)
        with self._lock:
            self._enqueue(run_id, n, lambda b: b.chunks.append((data, n)))

    def _put_meta(self, run_id, items):
        if not self.asynchronous:
            return self._send_meta_now(run_id, items)
        for i in range(0, len(items), MAX_BATCH_META):
            part = items[i:i + MAX_BATCH_META]
            with self._lock:
                self._enqueue(run_id, len(part), lambda b: b.meta.extend(part))

    def _enqueue(self, run_id, n, add):
        """(lock held) Queue n items for run_id; add(buf) puts them in."""
        if self._pending and self._pending + n > self.max_pending:
            self._wait_room(n)
        if not self._worker_ok:
            self._start_worker()
        b = self._buf.get(run_id)
        if b is None:
            b = self._buf[run_id] = _RunBuf()
        add(b)
        self._pending += n
        self._seq += 1
        before = self._nbuf
        self._nbuf = before + n
        if before == 0:
            self._buf_since = time.monotonic()
            self._wake.notify()
        elif before < self.batch_points <= self._nbuf:
            self._wake.notify()

    def _wait_room(self, n):
        """Block (the lock held by the caller) until n more items fit, or
        nothing is pending (so that one big piece always gets in)."""
        self._blocked += 1
        try:
            self._wake.notify()
            while self._pending and self._pending + n > self.max_pending:
                if not self._worker_ok:
                    break  # the worker died; _start_worker restarts it
                self._cv.wait(1.0)
        finally:
            self._blocked -= 1

    def flush(self, timeout=None):
        """Block until everything logged so far is stored; then raise any
        error the server answered. timeout (s): DeadlineExceeded if not done."""
        self._flush(raise_errors=True, timeout=timeout)

    def _flush(self, raise_errors, timeout=None):
        end = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._seq
            if self._done_seq < target:
                self._flush_wanted = True
                self._wake.notify()
            restarted = False
            while self._done_seq < target:
                if not self._worker_ok:
                    # It stopped (and recorded why): what it never took is
                    # sent by a new one, once.
                    if not self._nbuf or restarted:
                        break
                    restarted = True
                    self._start_worker()
                    self._flush_wanted = True
                left = 1.0 if end is None else min(1.0, end - time.monotonic())
                if left <= 0:
                    raise DeadlineExceeded(
                        f"flush: {self._pending} logged item(s) not yet stored after "
                        f"{timeout} s", 504, "no_reply")
                self._cv.wait(left)
        if raise_errors:
            self._check()

    def _check(self):
        """Raise the errors the server answered since the last call."""
        if not self._unraised:
            return
        with self._lock:
            errs, self._unraised = self._unraised, []
        if not errs:
            return
        first = errs[0]
        if len(errs) > 1:
            more = "; ".join(str(e) for e in errs[1:4])
            first = type(first)(f"{first.message} (and {len(errs) - 1} more logging "
                                f"error(s): {more}{' ...' if len(errs) > 4 else ''})",
                                first.status, first.code, first.body)
        raise first

    def _record(self, err):
        with self._lock:
            self._unraised.append(err)
            self.errors.append(err)
            del self.errors[:-1000]

    # -- synchronous sending -----------------------------------------------

    def _client(self):
        c = getattr(self._local, "client", None)
        if c is None or c.closed:
            c = self._local.client = _Conn(self.endpoint, self.token, self.workspace,
                                           self.ttl_ms)
            self._clients.append(c)
        return c

    def _send_now(self, run_id, data, n):
        self._check()
        self._send_sync(self._client(), _Req(run_id, _metrics_payload(run_id, [data], n), n))

    def _send_meta_now(self, run_id, items):
        self._check()
        c = self._client()
        for i in range(0, len(items), MAX_BATCH_META):
            part = items[i:i + MAX_BATCH_META]
            self._send_sync(c, _Req(run_id, _meta_payload(run_id, part), len(part), part))

    @staticmethod
    def _send_sync(c, req):
        """Send log_batch req and wait until it is stored; one refused as not
        delivered is sent again after a backoff, for up to $CAIRN_LOG_RETRY_S.
        Raises any other failure (and that one past the budget)."""
        while True:
            r = c.wait(c.send_raw(SVC, "log_batch", req.payload))
            if r.ok:
                return
            if not _undelivered(r):
                raise _failure(req, r)
            hold = req.backoff()
            if hold is None:
                raise req.gave_up(r)
            time.sleep(hold)

    # -- the worker ------------------------------------------------------------

    def _start_worker(self):
        """(cv held) Start the background thread."""
        self._worker_ok = True
        self._thread = threading.Thread(target=self._worker_main, name="cairn-tracking",
                                        daemon=True)
        self._thread.start()

    def _worker_main(self):
        lost = []
        try:
            self._worker_loop(lost)
        except BaseException as e:  # noqa: BLE001: recorded, never silent
            n = sum(r.n for r in lost)
            err = CairnError(f"the tracking thread stopped ({e!r}); {n} logged item(s) "
                             f"may not have been stored", 500, "internal")
            with self._lock:
                self._unraised.append(err)
                self.errors.append(err)
                self._worker_ok = False
                self._pending = max(0, self._pending - n)
                self._cv.notify_all()

    def _worker_loop(self, lost):
        conn = _Conn(self.endpoint, self.token, self.workspace, self.ttl_ms)
        outbox = deque()  # _Req not yet sent
        inflight = {}  # request id -> _Req
        meta_busy = {}  # run_id -> meta requests in flight
        gens = deque()  # [seq, outstanding requests], oldest first
        order = 0  # the next request's place in the outbox
        lost.append(_Lost(outbox, inflight))
        try:
            while True:
                take, wait = None, None
                with self._lock:
                    while True:
                        now = time.monotonic()
                        if self._nbuf:
                            due = self._buf_since + self.flush_interval
                            if (self._nbuf >= self.batch_points or self._flush_wanted
                                    or self._blocked or self._closing or now >= due):
                                take, seq = self._buf, self._seq
                                self._buf, self._nbuf = {}, 0
                                self._flush_wanted = False
                                break
                            wait = due - now
                        else:
                            wait = None
                            if self._flush_wanted:
                                self._flush_wanted = False
                            if self._closing and not outbox and not inflight:
                                return
                        if inflight or (outbox and outbox[0].due <= now):
                            break
                        if outbox:  # its first request waits out a backoff
                            hold = outbox[0].due - now
                            wait = hold if wait is None else min(wait, hold)
                        self._wake.wait(wait)
                if take is not None:
                    gen = [seq, 0]
                    gens.append(gen)
                    for run_id, b in take.items():
                        for req in _requests(run_id, b, self.batch_points):
                            req.gen = gen
                            req.order = (order, 0)
                            order += 1
                            gen[1] += 1
                            outbox.append(req)
                    if gen[1] == 0:
                        self._complete(gens, None)
                # send what the window allows; a run's params/tags one batch at a time
                while outbox and len(inflight) < self.window:
                    req = outbox[0]
                    if req.meta is not None and meta_busy.get(req.run_id):
                        break
                    if req.due and req.due > time.monotonic():
                        break  # resent after its backoff, ahead of what follows it
                    outbox.popleft()
                    try:
                        rid = conn.send_raw(SVC, "log_batch", req.payload)
                    except DeadlineExceeded as e:  # cannot even queue it: cairnd is gone
                        self._answered(req, Reply(0, e.status, e.code, e.message), outbox, gens)
                        continue
                    inflight[rid] = req
                    if req.meta is not None:
                        meta_busy[req.run_id] = meta_busy.get(req.run_id, 0) + 1
                if not inflight:
                    continue
                # wait for replies; come back soon when more could be sent
                if self._nbuf and len(inflight) < self.window:
                    t = 0.002 if wait is None else min(wait, 0.002)
                else:
                    t = 1.0
                if outbox and outbox[0].due and len(inflight) < self.window:
                    t = max(0.0, min(t, outbox[0].due - time.monotonic()))
                r = conn.poll_reply(t)
                while r is not None:
                    req = inflight.pop(r.id, None)
                    if req is not None:
                        if req.meta is not None:
                            meta_busy[req.run_id] -= 1
                        self._answered(req, r, outbox, gens)
                    r = conn.poll_reply(0) if conn.in_flight else None
        finally:
            conn.close()

    def _answered(self, req, r, outbox, gens):
        if r.ok:
            return self._complete(gens, req)
        if _undelivered(r):
            # No plugin saw it (the service restarting, its queue full): send
            # it again after a backoff, back in its place before what was
            # queued after it.
            if req.backoff() is not None:
                i = 0
                while i < len(outbox) and outbox[i].order < req.order:
                    i += 1
                outbox.insert(i, req)
                return None
            err = req.gave_up(r)
        elif req.meta is not None and not req.single and len(req.meta) > 1 \
                and r.status in (400, 409, 413):
            # Retry item by item, so the good ones are stored and the bad named.
            singles = [_Req(req.run_id, _meta_payload(req.run_id, [it]), 1, [it], req.gen,
                            True) for it in req.meta]
            for i, single in enumerate(singles):
                single.order = (req.order[0], i)
            req.gen[1] += len(singles) - 1
            outbox.extendleft(reversed(singles))
            return None
        else:
            err = _failure(req, r)
        with self._lock:
            self._unraised.append(err)
            self.errors.append(err)
            del self.errors[:-1000]
        return self._complete(gens, req)

    def _complete(self, gens, req):
        with self._lock:
            if req is not None:
                req.gen[1] -= 1
                self._pending -= req.n
            while gens and gens[0][1] == 0:
                self._done_seq = gens.popleft()[0]
            self._cv.notify_all()

    # -- artifacts -------------------------------------------------------------

    def log_artifact(self, local_path, artifact_path=None):
        """Upload a file to the active run's artifacts, under artifact_path
        (a folder, default the top). Flushes logged values first. Returns the
        server's {path, size, hash, hash_alg}, checked against the SHA-256 of
        the bytes read (CairnError ``corrupt`` otherwise; ``bad_reply`` from a
        server too old to hash with SHA-256). Rides out a restart of
        the artifacts service (see _Upload): gives up after
        ARTIFACT_RETRY_S seconds of 503s or silence."""
        self.flush()
        if not os.path.isfile(local_path):
            raise FileNotFoundError(f"no such file: {local_path}")
        name = os.path.basename(local_path)
        dest = posixpath.join(artifact_path.strip("/"), name) if artifact_path else name
        return self._upload(self._run_id(), local_path, dest)

    def log_artifacts(self, local_dir, artifact_path=None):
        """Upload every file under local_dir, keeping the tree, under
        artifact_path. Returns the list of {path, size, hash}."""
        self.flush()
        if not os.path.isdir(local_dir):
            raise NotADirectoryError(f"no such folder: {local_dir}")
        run_id = self._run_id()
        base = artifact_path.strip("/") if artifact_path else ""
        out = []
        for root, dirs, files in os.walk(local_dir):
            dirs.sort()
            for f in sorted(files):
                full = os.path.join(root, f)
                rel = os.path.relpath(full, local_dir).replace(os.sep, "/")
                out.append(self._upload(run_id, full, posixpath.join(base, rel) if base else rel))
        return out

    def _upload(self, run_id, local, dest):
        with open(local, "rb") as f:
            return _Upload(self._client(), run_id, dest, f).run()

    def download_artifact(self, artifact_path, dst_path=None, run_id=None):
        """Download an artifact of run_id (default the active run) to
        dst_path: a file, or an existing folder (the artifact's name in it;
        default the current folder). Returns the file's path. The bytes go
        to a temporary file beside it, renamed into place only once their
        size and hash are the server's (SHA-256, or BLAKE2b-256 for an
        artifact stored before it; CairnError ``corrupt``, or
        Conflict ``changed`` when the artifact changed meanwhile); on any failure
        nothing is left behind. Rides out a restart of the artifacts service
        (see _Download): gives up after ARTIFACT_RETRY_S seconds of 503s or
        silence."""
        if run_id is None:
            top = self.active_run()
            if top is None:
                raise ValueError("download_artifact: no run_id and no active run")
            run_id = top.run_id
        name = posixpath.basename(artifact_path)
        dst = dst_path if dst_path is not None else "."
        if os.path.isdir(dst):
            if not name:
                raise ValueError(f"the artifact path {artifact_path!r} names no file")
            dst = os.path.join(dst, name)
        folder, base = os.path.split(dst)
        if not base:
            raise ValueError(f"{dst_path!r} names no file")
        # created as a new file is (0666 less the umask), never opened twice
        tmp = os.path.join(folder, f".{base}.{os.urandom(6).hex()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                _Download(self._client(), run_id, artifact_path, f).run()
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dst)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return dst

    # -- lifecycle -------------------------------------------------------------

    def close(self):
        """Flush, end the runs this tracker created (FINISHED) and stop the
        background thread. Raises errors not yet raised."""
        try:
            with self._runs_lock:
                while self._stack:
                    self._end(self._stack[-1], "FINISHED", raise_errors=False)
            self._flush(raise_errors=False)
        finally:
            self._stop_worker()
            for c in self._clients:
                c.close()
            self._clients = []
        self._check()

    def _stop_worker(self, timeout=30.0):
        with self._lock:
            self._closing = True
            self._wake.notify_all()
            t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        with self._lock:
            self._closing = False
            self._worker_ok = False
            self._thread = None

    def _at_exit(self):
        last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
        if last is None:
            status = "FINISHED"
        elif isinstance(last, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        try:
            with self._runs_lock:
                while self._stack:
                    self._end(self._stack[-1], status, raise_errors=False)
            self._flush(raise_errors=False)
        except BaseException as e:  # noqa: BLE001: reported below
            self._unraised.append(CairnError(f"at exit: {e!r}"))
        self._stop_worker(timeout=5.0)
        if self._unraised:
            errs, self._unraised = self._unraised, []
            sys.stderr.write(f"cairn: {len(errs)} tracking error(s) were not reported "
                             f"before exit:\n")
            for e in errs[:20]:
                sys.stderr.write(f"  {type(e).__name__}: {e}\n")
            sys.stderr.flush()

    def _after_fork(self):
        self._reset_state()
        for r in self._stack:
            r.owned = False  # the parent's to end


class _Lost:
    """What the worker holds, for the count reported if it dies."""

    def __init__(self, outbox, inflight):
        self.outbox, self.inflight = outbox, inflight

    @property
    def n(self):
        return sum(r.n for r in self.outbox) + sum(r.n for r in self.inflight.values())


def _metrics_payload(run_id, parts, n):
    head = (b"\x82\xa6run_id" + msgpack.packb(run_id) + b"\xa7metrics" + _array_header(n))
    return b"".join([head] + parts) if len(parts) != 1 else head + parts[0]


def _meta_payload(run_id, items):
    params = [{"key": k, "value": v} for kind, k, v in items if kind == "param"]
    tags = [{"key": k, "value": v} for kind, k, v in items if kind == "tag"]
    body = {"run_id": run_id}
    if params:
        body["params"] = params
    if tags:
        body["tags"] = tags
    return msgpack.packb(body, use_bin_type=True)


def _requests(run_id, b, size):
    """A run's buffered items as log_batch requests: params/tags first (in
    order), then metric points, at most ``size`` per request."""
    for i in range(0, len(b.meta), MAX_BATCH_META):
        part = b.meta[i:i + MAX_BATCH_META]
        yield _Req(run_id, _meta_payload(run_id, part), len(part), part)
    parts, n = [], 0
    for data, k in b.chunks:
        if n and n + k > size:
            yield _Req(run_id, _metrics_payload(run_id, parts, n), n)
            parts, n = [], 0
        parts.append(data)
        n += k
    pts, i = b.pts, 0
    while i < len(pts):
        room = size - n
        if room <= 0:
            yield _Req(run_id, _metrics_payload(run_id, parts, n), n)
            parts, n, room = [], 0, size
        take = pts[i:i + room]
        parts.append(b"".join(take))
        n += len(take)
        i += len(take)
    if n:
        yield _Req(run_id, _metrics_payload(run_id, parts, n), n)


_INDEXED = re.compile(r"\b(metrics|params|tags)\[(\d+)\]")


def _failure(req, r, why=None):
    """The CairnError for a failed log_batch, naming what failed (and why,
    a sentence added at the end, when given)."""
    what = ""
    try:
        m = _INDEXED.search(r.error or "")
        body = msgpack.unpackb(req.payload, raw=False) if (m or req.meta) else None
        if m:
            item = body[m.group(1)][int(m.group(2))]
            kind = {"metrics": "metric", "params": "param", "tags": "tag"}[m.group(1)]
            what = f"{kind} {item.get('key')!r}"
        elif req.meta is not None:
            what = ", ".join(f"{kind} {k!r}" for kind, k, _ in req.meta[:5])
            if len(req.meta) > 5:
                what += f" and {len(req.meta) - 5} more"
        else:
            keys = list(dict.fromkeys(
                p.get("key") for p in msgpack.unpackb(req.payload, raw=False)["metrics"]))
            what = f"{req.n} point(s) of metric(s) " + ", ".join(repr(k) for k in keys[:5])
            if len(keys) > 5:
                what += f" and {len(keys) - 5} more keys"
    except Exception:  # noqa: BLE001: the description is best effort
        pass
    msg = r.error or f"log_batch failed with status {r.status}"
    where = f"logging {what} to run {req.run_id}" if what else f"logging to run {req.run_id}"
    return error_for(r.status, r.code, f"{msg} ({where})" + (f"; {why}" if why else ""),
                     r.body)


def _bad_point(key, value, step, timestamp, index=None):
    """Raise the TypeError/ValueError that says what is wrong with a point."""
    at = f"metric {key!r}" + ("" if index is None else f"[{index}]")
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        raise TypeError(f"{at}: the value must be a number, not {type(value).__name__} "
                        f"({value!r:.40})")
    try:
        float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{at}: the value must be a number, not {type(value).__name__}") \
            from None
    except OverflowError:
        raise ValueError(f"{at}: the value {value!r:.40} is too large for a float64") from None
    for name, v in (("step", 0 if step is None else step), ("timestamp", timestamp)):
        try:
            i = operator.index(v)
        except TypeError:
            raise TypeError(f"{at}: the {name} must be an integer, not "
                            f"{type(v).__name__} ({v!r:.40})") from None
        if not _INT64_MIN <= i <= _INT64_MAX:
            raise ValueError(f"{at}: the {name} {i} is outside the int64 range")


# -- the default tracker and module-level functions ---------------------------

_default = None
_default_lock = threading.Lock()
_pending_async = True


def _tracker():
    global _default
    t = _default
    if t is None:
        with _default_lock:
            if _default is None:
                _default = Tracker(asynchronous=_pending_async)
            t = _default
    return t


def get_tracker():
    """The default Tracker that the module-level functions use."""
    return _tracker()


def set_tracking(endpoint=None, token=None, workspace=None):
    """Point the module-level functions at another cairnd (or token, or
    workspace): the current default tracker is flushed and closed. None: the
    environment's (the workspace: as for Client)."""
    global _default
    with _default_lock:
        old = _default
        if old is not None and old._stack:
            raise RuntimeError("end the active run before changing the tracking endpoint")
        _default = Tracker(endpoint=endpoint, token=token, workspace=workspace,
                           asynchronous=old.asynchronous if old else _pending_async)
    if old is not None:
        old.close()


def set_async(asynchronous=True):
    """Batch logging in the background (True, the default) or send each call
    synchronously (False)."""
    global _pending_async
    _pending_async = bool(asynchronous)
    if _default is not None:
        _default.set_async(asynchronous)


def start_run(experiment=None, run_name=None, run_id=None, nested=False, tags=None):
    return _tracker().start_run(experiment, run_name, run_id, nested, tags)


def end_run(status="FINISHED"):
    return _tracker().end_run(status)


def active_run():
    return _default.active_run() if _default is not None else None


def get_run(run_id=None):
    return _tracker().get_run(run_id)


def flush(timeout=None):
    if _default is not None:
        _default.flush(timeout)


def log_param(key, value):
    (_default or _tracker()).log_param(key, value)


def log_params(params):
    (_default or _tracker()).log_params(params)


def set_tag(key, value):
    (_default or _tracker()).set_tag(key, value)


def set_tags(tags):
    (_default or _tracker()).set_tags(tags)


def log_metric(key, value, step=None, timestamp=None):
    (_default or _tracker()).log_metric(key, value, step, timestamp)


def log_metrics(metrics, step=None, timestamp=None):
    (_default or _tracker()).log_metrics(metrics, step, timestamp)


def log_metrics_batch(key, values, steps=None, timestamps=None):
    (_default or _tracker()).log_metrics_batch(key, values, steps, timestamps)


def log_artifact(local_path, artifact_path=None):
    return _tracker().log_artifact(local_path, artifact_path)


def log_artifacts(local_dir, artifact_path=None):
    return _tracker().log_artifacts(local_dir, artifact_path)


def download_artifact(artifact_path, dst_path=None, run_id=None):
    return _tracker().download_artifact(artifact_path, dst_path, run_id)


for _f in (start_run, end_run, active_run, get_run, flush, log_param, log_params, set_tag,
           set_tags, log_metric, log_metrics, log_metrics_batch, log_artifact, log_artifacts,
           download_artifact):
    _f.__doc__ = getattr(Tracker, _f.__name__).__doc__ + "\n\n(On the default tracker.)"
del _f


@atexit.register
def _at_exit():
    for t in list(_trackers):
        t._at_exit()


def _after_fork_in_child():
    for t in list(_trackers):
        t._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
