"""Artifacts service integration tests (storage plugin, role `artifacts`):
chunked uploads and ranged downloads, content addressing and dedup, listing,
validation, ordering, corruption detection, idle uploads, uploads resumed
after kill -9 (of cairnd in-process, of the plugin process as a process)
by the server and by the C SDK (through the CLI) and the Python SDK on their
own, downloads that go on across the same kills (each chunk asked for again),
the SDKs' retries and giving up against a fake server, and a 2 GiB round
trip in bounded memory. The main suite and the resume
suite run with storage in-process and as a process.

The 2 GiB test needs 6 GiB free on the temp filesystem (else it is skipped
with the reason) and is skipped when CAIRN_BIG_TESTS=0."""
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CAIRN_SOURCE_DIR") or os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
sys.path.insert(0, HERE)
import cairn  # noqa: E402
import cairn.tracking  # noqa: E402
import msgpack  # noqa: E402
from cairn_harness import BIN, DEADLINE, FakeKernel, Kernel, wait_for  # noqa: E402

MiB = 1 << 20
CHUNK = 8 * MiB


def services(mode, settings=""):
    art = f"  artifacts:\n    plugin: storage\n    mode: {mode}\n"
    if settings:
        art += "    settings:\n" + settings
    return f"  tracking:\n    plugin: storage\n    mode: {mode}\n" + art


def start(services_text):
    """A started Kernel, cleaned up (its cairnd stopped) if it fails to start.
    Heartbeats every 500 ms (liveness 2.5 s): a process-mode plugin that
    fsyncs and hashes under ASan on a loaded 2-CPU machine must not be
    declared hung (crashes are seen by SIGCHLD, not by heartbeats)."""
    k = Kernel(services=services_text, heartbeat_ms=500)
    try:
        return k.start()
    except BaseException:
        k.cleanup()
        raise


def hasher(alg="sha256"):
    """A running content hash of alg, as the artifact store names blobs:
    SHA-256 now, BLAKE2b-256 for blobs stored before it."""
    return hashlib.sha256() if alg == "sha256" else hashlib.blake2b(digest_size=32)


def chash(data, alg="sha256"):
    h = hasher(alg)
    h.update(data)
    return h.hexdigest()


def b2(data):  # a blob stored before SHA-256
    return chash(data, "blake2b")


def artifact(path, data):
    """The artifact a put_artifact of data stores (its last reply's)."""
    return {"path": path, "size": len(data), "hash": chash(data), "hash_alg": "sha256"}


class Client:
    """Calls against one kernel, with the upload/download loops."""

    def __init__(self, k, test):
        self.k = k
        self.c = k.client()
        self.t = test
        self.body = None  # the last reply's body (an error's too)

    def close(self):
        self.c.close()

    def call(self, svc, verb, body=None, st=200, code=None, timeout=60, **hdr):
        h, b = self.c.call(svc, verb, body, timeout=timeout, **hdr)
        self.body = b
        self.t.assertEqual(h["st"], st, (verb, h, None if st >= 400 else b))
        if code:
            self.t.assertEqual(h["code"], code, h)
        return b if st < 400 else h

    def art(self, verb, body=None, st=200, code=None, **hdr):
        """An artifacts call; hdr: header fields (ws: the workspace)."""
        return self.call("artifacts", verb, body, st, code, **hdr)

    def new_run(self, ws=None):
        """A run in a new experiment of workspace ws (absent: default)."""
        hdr = {"ws": ws} if ws else {}
        name = f"exp-{os.urandom(6).hex()}"
        eid = self.call("tracking", "create_experiment", {"name": name},
                        **hdr)["experiment_id"]
        return self.call("tracking", "create_run", {"experiment_id": eid},
                         **hdr)["run"]["info"]["run_id"]

    def put_chunks(self, run, path, chunks):
        """Upload an iterable of byte strings; returns the final reply."""
        uid, off = None, 0
        chunks = iter(chunks)
        cur = next(chunks, b"")
        while True:
            nxt = next(chunks, None)
            body = {"run_id": run, "path": path, "data": cur, "offset": off,
                    "done": nxt is None}
            if uid:
                body["upload_id"] = uid
            r = self.art("put_artifact", body)
            if nxt is None:
                return r["artifact"]
            off += len(cur)
            self.t.assertEqual(r["offset"], off)
            uid = uid or r["upload_id"]
            self.t.assertEqual(r["upload_id"], uid)
            cur = nxt

    def put(self, run, path, data, chunk=CHUNK):
        pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
        return self.put_chunks(run, path, pieces)

    def get(self, run, path, piece=CHUNK):
        out, off = bytearray(), 0
        while True:
            r = self.art("get_artifact", {"run_id": run, "path": path, "offset": off,
                                          "length": piece})
            self.t.assertEqual(r["offset"], off)
            out += r["data"]
            off += len(r["data"])
            self.t.assertEqual(r["done"], off == r["size"])
            if r["done"]:
                return bytes(out), r


class ArtifactsBase:
    MODE = "inproc"

    @classmethod
    def setUpClass(cls):
        cls.k = start(services(cls.MODE))

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def setUp(self):
        self.cl = Client(self.k, self)
        self.art = self.cl.art

    def tearDown(self):
        self.cl.close()

    def blob_path(self, h, alg="sha256"):
        sub = "sha256" if alg == "sha256" else "cas"
        return os.path.join(self.k.state, "artifacts", sub, h[:2], h[2:])

    def cas_files(self):
        root = os.path.join(self.k.state, "artifacts", "sha256")
        return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)

    def test_io_mode_logged(self):
        log = self.k.read_log()
        self.assertRegex(log, r"artifacts: blobs under .*file I/O through "
                              r"(io_uring|pread/pwrite)")

    def test_small_round_trip(self):
        run = self.cl.new_run()
        a = self.art("put_artifact", {"run_id": run, "path": "model/w.bin", "data": b"hello",
                                      "offset": 0, "done": True})["artifact"]
        self.assertEqual(a, artifact("model/w.bin", b"hello"))
        r = self.art("get_artifact", {"run_id": run, "path": "model/w.bin"})
        self.assertEqual(r, {"data": b"hello", "offset": 0, "size": 5,
                             "hash": chash(b"hello"), "hash_alg": "sha256", "done": True})
        self.assertEqual(self.art("verify_artifact", {"run_id": run, "path": "model/w.bin"}),
                         {"ok": True, "hash": chash(b"hello"), "hash_alg": "sha256"})
        # the blob is where its hash says, read-only
        p = self.blob_path(chash(b"hello"))
        with open(p, "rb") as f:
            self.assertEqual(f.read(), b"hello")
        self.assertFalse(os.stat(p).st_mode & stat.S_IWUSR)
        # ranged reads, and a read at the end
        r = self.art("get_artifact", {"run_id": run, "path": "model/w.bin", "offset": 1,
                                      "length": 3})
        self.assertEqual((r["data"], r["done"]), (b"ell", False))
        r = self.art("get_artifact", {"run_id": run, "path": "model/w.bin", "offset": 5})
        self.assertEqual((r["data"], r["done"]), (b"", True))
        # paths are normalized
        a = self.art("put_artifact", {"run_id": run, "path": "x//./y.txt", "data": b"",
                                      "offset": 0, "done": True})["artifact"]
        self.assertEqual(a, artifact("x/y.txt", b""))
        self.assertEqual(self.cl.get(run, "x/y.txt")[0], b"")
        # overwriting a path replaces its entry
        self.cl.put(run, "model/w.bin", b"second")
        self.assertEqual(self.cl.get(run, "model/w.bin")[0], b"second")

    def test_multi_chunk_round_trip(self):
        run = self.cl.new_run()
        data = random.Random(1).randbytes(5 * MiB + 123)
        a = self.cl.put(run, "big/data.bin", data, chunk=MiB + 7)
        self.assertEqual(a, artifact("big/data.bin", data))
        got, last = self.cl.get(run, "big/data.bin", piece=700_000)
        self.assertEqual(got, data)
        self.assertEqual(last["hash"], chash(data))
        got, last = self.cl.get(run, "big/data.bin")  # one read: the whole file
        self.assertEqual(got, data)
        with open(self.blob_path(chash(data)), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), chash(data))
        tmp = os.path.join(self.k.state, "artifacts", "tmp")
        self.assertEqual(os.listdir(tmp), [])

    def test_dedup_across_runs(self):
        r1, r2 = self.cl.new_run(), self.cl.new_run()
        data = os.urandom(300_000)
        before = self.cas_files()
        self.cl.put(r1, "a.bin", data, chunk=100_000)
        self.cl.put(r2, "copy/of/a.bin", data)
        after = self.cas_files()
        self.assertEqual(sorted(set(after) - set(before)), [self.blob_path(chash(data))])
        self.assertEqual(self.cl.get(r2, "copy/of/a.bin")[0], data)

    def test_list_artifacts(self):
        run = self.cl.new_run()
        for p in ["a.txt", "dir/b.txt", "dir/sub/c.txt", "dir/sub/d.txt", "dir2/e", "dir.x",
                  "dir-/f", "deep/1/2/3/4"]:
            self.cl.put(run, p, p.encode())

        def ls(path=None, **kw):
            body = {"run_id": run}
            if path is not None:
                body["path"] = path
            body.update(kw)
            r = self.art("list_artifacts", body)
            self.assertTrue(r["root_uri"].endswith(f"/{run}/artifacts"), r)
            return r

        def entries(r):
            return sorted((f["path"], f["is_dir"], f["file_size"]) for f in r["files"])

        self.assertEqual(entries(ls()), [
            ("a.txt", False, 5), ("deep", True, None), ("dir", True, None),
            ("dir-", True, None), ("dir.x", False, 5), ("dir2", True, None)])
        self.assertEqual(entries(ls("")), entries(ls()))
        self.assertEqual(entries(ls("dir")), [("dir/b.txt", False, 9), ("dir/sub", True, None)])
        self.assertEqual(entries(ls("dir/")), entries(ls("dir")))
        self.assertEqual(entries(ls("dir/sub")), [("dir/sub/c.txt", False, 13),
                                                  ("dir/sub/d.txt", False, 13)])
        self.assertEqual(entries(ls("deep/1")), [("deep/1/2", True, None)])
        self.assertEqual(ls("nope")["files"], [])
        self.assertEqual(ls("a.txt")["files"], [])
        # paging
        seen, token = [], None
        while True:
            kw = {"max_results": 2}
            if token:
                kw["page_token"] = token
            r = ls(None, **kw)
            self.assertLessEqual(len(r["files"]), 2)
            seen += [f["path"] for f in r["files"]]
            token = r.get("next_page_token")
            if not token:
                break
        self.assertEqual(sorted(seen), [e[0] for e in entries(ls())])
        self.art("list_artifacts", {"run_id": run, "page_token": "zz"}, 400)
        self.art("list_artifacts", {"run_id": run, "max_results": 0}, 400)
        self.art("list_artifacts", {"run_id": run, "path": "../x"}, 400)
        self.art("list_artifacts", {"run_id": "nope"}, 404, "not_found")

    def test_bad_paths(self):
        run = self.cl.new_run()
        for bad in ["../x", "a/../b", "..", "/abs", "", ".", ".//.", "x" * 1025, "a\x01b",
                    5, None]:
            body = {"run_id": run, "path": bad, "data": b"x", "offset": 0, "done": True}
            h = self.art("put_artifact", body, 400, "bad_request")
            self.assertIn("'path'", h["err"], bad)
            if bad is not None:
                h = self.art("get_artifact", {"run_id": run, "path": bad}, 400)
                self.assertIn("'path'", h["err"])
        h = self.art("put_artifact", {"run_id": run, "path": "x" * 1025, "data": b"",
                                      "offset": 0}, 400)
        self.assertIn("1024", h["err"])
        # a path of exactly 1024 bytes is fine
        self.cl.put(run, "y" * 1024, b"ok")

    def test_field_validation(self):
        run = self.cl.new_run()
        ok = {"run_id": run, "path": "f", "data": b"x", "offset": 0, "done": True}

        def bad(field, value, st=400, code=None, absent=False):
            body = dict(ok)
            if absent:
                del body[field]
            else:
                body[field] = value
            h = self.art("put_artifact", body, st, code)
            self.assertIn(field, h["err"])
            return h

        bad("run_id", None, absent=True)
        bad("run_id", 7)
        bad("run_id", "")
        bad("data", None, absent=True)
        bad("data", "text, not bytes")
        bad("offset", None, absent=True)
        bad("offset", -1)
        bad("offset", "0")
        bad("done", "yes")
        bad("upload_id", "")
        bad("upload_id", 5)
        h = bad("data", b"\0" * (CHUNK + 1), 413, "too_large")
        self.assertIn(str(CHUNK), h["err"])
        self.art("put_artifact", dict(ok, run_id="0" * 32), 404, "not_found")
        self.art("put_artifact", "not a map", 400)
        self.art("get_artifact", {"run_id": run}, 400)
        self.cl.put(run, "f", b"abc")
        h = self.art("get_artifact", {"run_id": run, "path": "f", "length": CHUNK + 1}, 400)
        self.assertIn("length", h["err"])
        self.assertIn(str(CHUNK), h["err"])
        h = self.art("get_artifact", {"run_id": run, "path": "f", "offset": 4}, 400)
        self.assertIn("offset", h["err"])
        self.art("get_artifact", {"run_id": run, "path": "g"}, 404, "not_found")
        self.art("verify_artifact", {"run_id": run, "path": "g"}, 404)
        # the kernel itself refuses a body past put_artifact's max_body
        h, _ = self.cl.c.call("artifacts", "put_artifact",
                              dict(ok, data=b"\0" * (CHUNK + 100 * 1024)))
        self.assertEqual(h["st"], 413)

    def test_out_of_order_chunk(self):
        run = self.cl.new_run()
        r = self.art("put_artifact", {"run_id": run, "path": "o.bin", "data": b"a" * 100,
                                      "offset": 0})
        uid = r["upload_id"]
        self.assertEqual(r["offset"], 100)
        for off in (0, 99, 101, 200):
            h = self.art("put_artifact", {"run_id": run, "path": "o.bin", "data": b"b" * 10,
                                          "offset": off, "upload_id": uid}, 409, "conflict")
            self.assertIn("expected offset 100", h["err"])
            self.assertEqual(self.cl.body, {"expected_offset": 100})
        # the upload goes on from the expected offset
        self.art("put_artifact", {"run_id": run, "path": "o.bin", "data": b"c" * 10,
                                  "offset": 100, "upload_id": uid})
        # a chunk for another path or run is refused (an error without a body)
        self.art("put_artifact", {"run_id": run, "path": "other", "data": b"",
                                  "offset": 110, "upload_id": uid}, 400)
        self.assertIsNone(self.cl.body)
        a = self.art("put_artifact", {"run_id": run, "path": "o.bin", "data": b"", "offset": 110,
                                      "upload_id": uid, "done": True})["artifact"]
        self.assertEqual(a["size"], 110)
        self.assertEqual(self.cl.get(run, "o.bin")[0], b"a" * 100 + b"c" * 10)
        # a new upload starts at 0
        h = self.art("put_artifact", {"run_id": run, "path": "n", "data": b"x", "offset": 5},
                     409)
        self.assertIn("expected offset 0", h["err"])
        self.assertEqual(self.cl.body, {"expected_offset": 0})

    def test_unknown_upload(self):
        run = self.cl.new_run()
        h = self.art("put_artifact", {"run_id": run, "path": "u", "data": b"x", "offset": 0,
                                      "upload_id": "deadbeef"}, 404, "not_found")
        self.assertIn("deadbeef", h["err"])
        r = self.art("put_artifact", {"run_id": run, "path": "u", "data": b"x", "offset": 0})
        self.art("put_artifact", {"run_id": run, "path": "u", "data": b"y", "offset": 1,
                                  "upload_id": r["upload_id"], "done": True})
        # finished: the id is gone
        self.art("put_artifact", {"run_id": run, "path": "u", "data": b"z", "offset": 2,
                                  "upload_id": r["upload_id"]}, 404)

    def test_corrupt_blob(self):
        run = self.cl.new_run()
        data = random.Random(2).randbytes(3 * MiB)
        self.cl.put(run, "c/model.bin", data)
        p = self.blob_path(chash(data))
        os.chmod(p, 0o600)
        with open(p, "r+b") as f:
            f.seek(2 * MiB)
            f.write(bytes([data[2 * MiB] ^ 1]))
        for verb in ("get_artifact", "verify_artifact"):
            h = self.art(verb, {"run_id": run, "path": "c/model.bin"}, 500, "corrupt")
            self.assertIn("c/model.bin", h["err"])
        # a sequential download is caught at its last piece
        for off in (0, MiB):  # the first two pieces are served
            r = self.art("get_artifact", {"run_id": run, "path": "c/model.bin", "offset": off,
                                          "length": MiB})
            self.assertEqual(r["data"], data[off:off + MiB])
        h = self.art("get_artifact", {"run_id": run, "path": "c/model.bin",
                                      "offset": 2 * MiB, "length": MiB}, 500, "corrupt")
        self.assertIn("c/model.bin", h["err"])
        # a random-access read that ends the file (small blob: rehashed)
        self.art("get_artifact", {"run_id": run, "path": "c/model.bin", "offset": 3 * MiB - 10},
                 500, "corrupt")
        # truncated, then missing
        os.truncate(p, 1000)
        self.art("get_artifact", {"run_id": run, "path": "c/model.bin", "length": 10}, 500,
                 "corrupt")
        os.unlink(p)
        h = self.art("get_artifact", {"run_id": run, "path": "c/model.bin"}, 500, "corrupt")
        self.assertIn("missing", h["err"])
        self.art("verify_artifact", {"run_id": run, "path": "c/model.bin"}, 500, "corrupt")
        # uploading the bytes again heals it
        self.cl.put(run, "c/model.bin", data)
        self.assertEqual(self.art("verify_artifact", {"run_id": run, "path": "c/model.bin"})
                         ["ok"], True)

    def test_verify_in_slices(self):
        # more than one 32 MiB slice: the verification is deferred and resumed
        run = self.cl.new_run()
        block = random.Random(3).randbytes(MiB)
        data = b"".join(i.to_bytes(4, "little") + block[4:] for i in range(33)) + b"tail"
        self.cl.put(run, "v.bin", data)
        self.assertEqual(self.art("verify_artifact", {"run_id": run, "path": "v.bin"}),
                         {"ok": True, "hash": chash(data), "hash_alg": "sha256"})
        p = self.blob_path(chash(data))
        os.chmod(p, 0o600)
        with open(p, "r+b") as f:
            f.seek(len(data) - 1)
            f.write(b"T")
        h = self.art("verify_artifact", {"run_id": run, "path": "v.bin"}, 500, "corrupt")
        self.assertIn("v.bin", h["err"])

    def test_file_and_directory_conflict(self):
        run = self.cl.new_run()
        self.cl.put(run, "x", b"file")
        h = self.art("put_artifact", {"run_id": run, "path": "x/y", "data": b"", "offset": 0,
                                      "done": True}, 409, "conflict")
        self.assertIn("'x' is a file", h["err"])
        self.cl.put(run, "d/e", b"")
        h = self.art("put_artifact", {"run_id": run, "path": "d", "data": b"", "offset": 0,
                                      "done": True}, 409, "conflict")
        self.assertIn("directory", h["err"])

    def test_delete(self):
        run = self.cl.new_run()
        for p in ["k.txt", "t/a", "t/b/c", "tt"]:
            self.cl.put(run, p, b"1")
        # One blob serves all four (same bytes): nothing is freed yet.
        self.assertEqual(self.art("delete_artifact", {"run_id": run, "path": "k.txt"}),
                         {"deleted": 1, "blobs_freed": 0, "bytes_freed": 0})
        self.art("get_artifact", {"run_id": run, "path": "k.txt"}, 404)
        self.assertEqual(self.art("delete_artifact", {"run_id": run, "path": "t"}),
                         {"deleted": 2, "blobs_freed": 0, "bytes_freed": 0})
        self.assertEqual([f["path"] for f in self.art("list_artifacts",
                                                      {"run_id": run})["files"]], ["tt"])
        self.art("delete_artifact", {"run_id": run, "path": "t"}, 404, "not_found")
        self.art("delete_artifact", {"run_id": run, "path": "../t"}, 400)

    def test_blob_freed_with_its_last_artifact(self):
        r1, r2 = self.cl.new_run(), self.cl.new_run()
        shared, own = os.urandom(70_000), os.urandom(50_000)
        self.cl.put(r1, "d/shared.bin", shared)
        self.cl.put(r2, "shared-copy.bin", shared)
        self.cl.put(r1, "d/own.bin", own)
        sp, op = self.blob_path(chash(shared)), self.blob_path(chash(own))
        self.assertTrue(os.path.exists(sp) and os.path.exists(op))
        # Deleting the directory frees the blob only r1 named; the shared one stays.
        r = self.art("delete_artifact", {"run_id": r1, "path": "d"})
        self.assertEqual(r, {"deleted": 2, "blobs_freed": 1, "bytes_freed": 50_000})
        self.assertFalse(os.path.exists(op))
        self.assertTrue(os.path.exists(sp))
        self.assertEqual(self.cl.get(r2, "shared-copy.bin")[0], shared)
        r = self.art("delete_artifact", {"run_id": r2, "path": "shared-copy.bin"})
        self.assertEqual((r["blobs_freed"], r["bytes_freed"]), (1, 70_000))
        self.assertFalse(os.path.exists(sp))
        # The same bytes uploaded again are stored again and read back.
        self.cl.put(r2, "again.bin", shared)
        self.assertTrue(os.path.exists(sp))
        self.assertEqual(self.cl.get(r2, "again.bin")[0], shared)

    def test_overwrite_frees_the_old_blob(self):
        run = self.cl.new_run()
        old, new = os.urandom(40_000), os.urandom(30_000)
        self.cl.put(run, "model.bin", old)
        self.assertTrue(os.path.exists(self.blob_path(chash(old))))
        self.cl.put(run, "model.bin", new)
        self.assertFalse(os.path.exists(self.blob_path(chash(old))))
        self.assertEqual(self.cl.get(run, "model.bin")[0], new)
        self.cl.put(run, "model.bin", new)  # same bytes again: the blob stays
        self.assertTrue(os.path.exists(self.blob_path(chash(new))))
        self.assertEqual(self.cl.get(run, "model.bin")[0], new)

    def tmp_names(self):
        return set(os.listdir(os.path.join(self.k.state, "artifacts", "tmp")))

    def test_deleted_run(self):
        run = self.cl.new_run()
        self.cl.put(run, "keep", b"kept")
        self.cl.call("tracking", "delete_run", {"run_id": run})
        h = self.art("put_artifact", {"run_id": run, "path": "new", "data": b"", "offset": 0,
                                      "done": True}, 400)
        self.assertIn("deleted", h["err"])
        # the first chunk of a chunked upload: refused too, no files left
        before = self.tmp_names()
        h = self.art("put_artifact", {"run_id": run, "path": "new", "data": b"x",
                                      "offset": 0}, 400, "bad_request")
        self.assertIn("deleted", h["err"])
        self.assertEqual(self.tmp_names(), before)
        self.assertEqual(self.cl.get(run, "keep")[0], b"kept")

    def test_upload_refused_once_its_run_is_deleted(self):
        """An upload in progress whose run is then deleted: its next chunk,
        a middle one, the last one or one out of order, is refused (400
        bad_request, as log_metric to a deleted run) and the upload is
        dropped with its temp file and sidecar. Nothing is listed, and a
        restore leaves a clean run: the ids are unknown, a new upload
        works."""
        run = self.cl.new_run()

        def chunk(path, data, off, uid=None, done=False, st=200, code=None):
            body = {"run_id": run, "path": path, "data": data, "offset": off, "done": done}
            if uid:
                body["upload_id"] = uid
            return self.art("put_artifact", body, st, code)

        uids = {p: chunk(p, b"abc", 0)["upload_id"] for p in ("mid", "last", "odd")}
        for uid in uids.values():
            self.assertLessEqual({uid, uid + ".meta"}, self.tmp_names())
        self.cl.call("tracking", "delete_run", {"run_id": run})
        for p, off, done in (("mid", 3, False), ("last", 3, True), ("odd", 7, False)):
            h = chunk(p, b"def", off, uids[p], done, 400, "bad_request")
            self.assertIn(f"run '{run}' is deleted", h["err"])
            self.assertIn(f"upload '{uids[p]}' is dropped", h["err"])
        self.assertEqual(self.tmp_names() & {u + x for u in uids.values() for x in ("", ".meta")},
                         set())
        self.assertEqual(self.art("list_artifacts", {"run_id": run})["files"], [])
        self.cl.call("tracking", "restore_run", {"run_id": run})
        for p, uid in uids.items():
            chunk(p, b"def", 3, uid, True, 404, "not_found")
        self.assertEqual(self.art("list_artifacts", {"run_id": run})["files"], [])
        self.assertEqual(self.cl.put(run, "mid", b"abcdef", chunk=4)["size"], 6)
        self.assertEqual([f["path"] for f in
                          self.art("list_artifacts", {"run_id": run})["files"]], ["mid"])

    def test_abort_upload(self):
        run, other = self.cl.new_run(), self.cl.new_run()
        uid = self.art("put_artifact", {"run_id": run, "path": "ab.bin", "data": b"x" * 100,
                                        "offset": 0})["upload_id"]
        self.assertLessEqual({uid, uid + ".meta"}, self.tmp_names())
        # another run's: refused, and the upload stays
        h = self.art("abort_upload", {"run_id": other, "upload_id": uid}, 400, "bad_request")
        self.assertIn(run, h["err"])
        self.art("abort_upload", {"run_id": run}, 400, "bad_request")
        self.art("abort_upload", {"run_id": run, "upload_id": ""}, 400, "bad_request")
        self.assertEqual(self.art("abort_upload", {"run_id": run, "upload_id": uid}),
                         {"upload_id": uid, "aborted": True})
        self.assertEqual(self.tmp_names() & {uid, uid + ".meta"}, set())
        # gone: its next chunk and a second abort are 404, nothing was stored
        self.art("put_artifact", {"run_id": run, "path": "ab.bin", "data": b"y", "offset": 100,
                                  "upload_id": uid, "done": True}, 404, "not_found")
        h = self.art("abort_upload", {"run_id": run, "upload_id": uid}, 404, "not_found")
        self.assertIn(uid, h["err"])
        self.art("abort_upload", {"run_id": run, "upload_id": "deadbeef"}, 404, "not_found")
        self.assertEqual(self.art("list_artifacts", {"run_id": run})["files"], [])

    def limits(self):
        """(uploads_max, MiB of memory, open-file limit, per principal), as
        the start logged them."""
        m = re.search(r"artifacts: at most (\d+) unfinished uploads at once \(uploads_max; "
                      r"sized from (\d+) MiB of memory \((.+?)\) at 9 MiB an upload, "
                      r"and an open-file limit of (\d+)\), (\d+) per principal and "
                      r"workspace \(uploads_per_principal\)", self.k.read_log())
        self.assertTrue(m, self.k.read_log())
        return tuple(int(m.group(i)) for i in (1, 2, 4, 5))

    def test_upload_limits_logged(self):
        """uploads_max is sized from memory (a quarter of it, the machine's
        or its cgroup's, over 9 MiB an upload) and the open-file limit (half
        of it: an upload holds a descriptor); the start says so."""
        n, mem, nofile, per = self.limits()
        self.assertEqual(n, max(16, min(mem // 4 // 9, nofile // 2)))
        self.assertEqual(per, max(1, n // 4))
        with open("/proc/meminfo") as f:
            total = int(re.search(r"^MemTotal:\s+(\d+) kB", f.read(), re.M).group(1))
        self.assertLessEqual(mem, total // 1024 + 1)

    def test_one_client_cannot_take_every_slot(self):
        """The outside tester's case, with the default limits: one client
        opens unfinished uploads until it is refused; another workspace
        still uploads, chunked."""
        run, hog_run = self.cl.new_run(), self.cl.new_run("hog")
        per = self.limits()[3]
        hog = []
        for i in range(per):
            hog.append(self.art("put_artifact", {"run_id": hog_run, "path": f"h{i}",
                                                 "data": b"h", "offset": 0},
                                ws="hog")["upload_id"])
        h = self.art("put_artifact", {"run_id": hog_run, "path": "more", "data": b"h",
                                      "offset": 0}, 429, "overloaded", ws="hog")
        self.assertIn(f"uploads_per_principal: {per}", h["err"])
        self.assertEqual(self.cl.put(run, "other.bin", b"x" * 1000, chunk=300)["size"], 1000)
        for uid in hog:
            self.art("abort_upload", {"run_id": hog_run, "upload_id": uid}, ws="hog")
        self.assertEqual(self.tmp_names() & set(hog), set())

    def test_concurrent_uploads_interleaved(self):
        run = self.cl.new_run()
        blobs = {f"p{i}": os.urandom(50_000 + i) for i in range(4)}
        ids, offs = {}, {}
        for p, d in blobs.items():
            r = self.art("put_artifact", {"run_id": run, "path": p, "data": d[:10_000],
                                          "offset": 0})
            ids[p], offs[p] = r["upload_id"], 10_000
        self.assertEqual(len(set(ids.values())), 4)
        for p, d in blobs.items():
            self.art("put_artifact", {"run_id": run, "path": p, "data": d[10_000:],
                                      "offset": offs[p], "upload_id": ids[p], "done": True})
        for p, d in blobs.items():
            self.assertEqual(self.cl.get(run, p, piece=20_000)[0], d)


class ArtifactsInproc(ArtifactsBase, unittest.TestCase):
    MODE = "inproc"


class ArtifactsProcess(ArtifactsBase, unittest.TestCase):
    MODE = "process"


class QuotaBase:
    """Unfinished uploads are limited per principal and workspace
    (uploads_per_principal) and in all (uploads_max): one client cannot
    take every slot. Until auth lands every client is principal 'local',
    so the workspace (the `ws` header) tells them apart."""
    MODE = "inproc"

    @classmethod
    def setUpClass(cls):
        cls.k = start(services(cls.MODE, "      uploads_max: 4\n"
                                         "      uploads_per_principal: 2\n"))

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def setUp(self):
        self.cl = Client(self.k, self)
        self.art = self.cl.art
        self.tmp = os.path.join(self.k.state, "artifacts", "tmp")

    def tearDown(self):
        self.cl.close()

    def first(self, runs, path, ws, st=200, code=None):
        """Open an upload to the run of workspace ws (runs: ws -> run)."""
        return self.art("put_artifact", {"run_id": runs[ws], "path": path, "data": b"abc",
                                         "offset": 0}, st, code, ws=ws)

    def abort(self, runs, ws, uid):
        return self.art("abort_upload", {"run_id": runs[ws], "upload_id": uid}, ws=ws)

    def test_quota_per_principal_and_in_all(self):
        run = {ws: self.cl.new_run(ws) for ws in ("team-a", "team-b", "team-c")}
        a1 = self.first(run, "a1", "team-a")["upload_id"]
        a2 = self.first(run, "a2", "team-a")["upload_id"]
        h = self.first(run, "a3", "team-a", 429, "overloaded")
        for part in ("principal 'local' in workspace 'team-a'",
                     "uploads_per_principal: 2", "abort_upload", "done: true",
                     "upload_idle: 600 s"):
            self.assertIn(part, h["err"])
        # a whole file in one request holds no slot
        self.art("put_artifact", {"run_id": run["team-a"], "path": "whole", "data": b"w",
                                  "offset": 0, "done": True}, ws="team-a")
        # another workspace still uploads while the first is at its quota ...
        b = [self.first(run, f"b{i}", "team-b")["upload_id"] for i in (1, 2)]
        # ... until every slot is taken
        h = self.first(run, "c1", "team-c", 429, "overloaded")
        for part in ("uploads_max: 4", "abort_upload", "upload_idle: 600 s"):
            self.assertIn(part, h["err"])
        # an aborted upload frees its slot (and its files)
        self.assertEqual(self.abort(run, "team-a", a1), {"upload_id": a1, "aborted": True})
        self.assertEqual(set(os.listdir(self.tmp)) & {a1, a1 + ".meta"}, set())
        a3 = self.first(run, "a3", "team-a")["upload_id"]
        self.first(run, "a4", "team-a", 429, "overloaded")
        # and so does a finished one
        self.art("put_artifact", {"run_id": run["team-a"], "path": "a2", "data": b"def",
                                  "offset": 3, "upload_id": a2, "done": True}, ws="team-a")
        a4 = self.first(run, "a4", "team-a")["upload_id"]
        self.first(run, "c1", "team-c", 429, "overloaded")
        for uid in [a3, a4]:
            self.abort(run, "team-a", uid)
        for uid in b:
            self.abort(run, "team-b", uid)
        c1 = self.first(run, "c1", "team-c")["upload_id"]
        self.abort(run, "team-c", c1)
        self.assertEqual(sorted(f["path"] for f in
                                self.art("list_artifacts", {"run_id": run["team-a"]},
                                         ws="team-a")["files"]),
                         ["a2", "whole"])


class QuotaInproc(QuotaBase, unittest.TestCase):
    MODE = "inproc"


class QuotaProcess(QuotaBase, unittest.TestCase):
    MODE = "process"


class QuotaIdleBase:
    """An upload dropped by the idle timer frees its slot; so does one
    whose run was deleted (the timer drops it before it is idle)."""
    MODE = "inproc"
    IDLE = 4  # the timer runs every IDLE / 4 s

    @classmethod
    def setUpClass(cls):
        cls.k = start(services(cls.MODE, f"      upload_idle: {cls.IDLE}\n"
                                         "      uploads_per_principal: 1\n"))

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def setUp(self):
        self.cl = Client(self.k, self)
        self.tmp = os.path.join(self.k.state, "artifacts", "tmp")

    def tearDown(self):
        self.cl.close()

    def first(self, run, path, ws):
        h, b = self.cl.c.call("artifacts", "put_artifact",
                              {"run_id": run, "path": path, "data": b"abc", "offset": 0},
                              ws=ws)
        return b if h["st"] == 200 else None

    def test_expired_upload_frees_its_slot(self):
        run = self.cl.new_run("idle")
        uid = self.first(run, "x", "idle")["upload_id"]
        self.assertIsNone(self.first(run, "y", "idle"))
        r = wait_for(lambda: self.first(run, "y", "idle"), timeout=self.IDLE + 15,
                     what="the idle upload's slot freed")
        h = self.cl.art("put_artifact", {"run_id": run, "path": "x", "data": b"d",
                                         "offset": 3, "upload_id": uid}, 404, "not_found",
                        ws="idle")
        self.assertIn("idle", h["err"])
        self.cl.art("abort_upload", {"run_id": run, "upload_id": r["upload_id"]}, ws="idle")

    def test_upload_of_deleted_run_is_dropped_by_the_timer(self):
        run = self.cl.new_run("swept")
        uid = self.first(run, "d", "swept")["upload_id"]
        self.cl.call("tracking", "delete_run", {"run_id": run}, ws="swept")
        wait_for(lambda: uid not in os.listdir(self.tmp), timeout=self.IDLE + 10,
                 what="the upload of the deleted run dropped")
        # by the deleted run's rule (at the timer's next turn), not as idle
        self.assertIn(f"dropped upload {uid} of 'd': its run '{run}' is deleted",
                      self.k.read_log())
        run2 = self.cl.new_run("swept")
        r = self.first(run2, "e", "swept")  # its slot is free
        self.assertIsNotNone(r)
        self.cl.art("abort_upload", {"run_id": run2, "upload_id": r["upload_id"]}, ws="swept")


class QuotaIdleInproc(QuotaIdleBase, unittest.TestCase):
    MODE = "inproc"


class QuotaIdleProcess(QuotaIdleBase, unittest.TestCase):
    MODE = "process"


FIXTURE_V4 = os.path.join(HERE, "..", "fixtures", "state-v4")
V4_RUN = "e937a413ec1bb2e436558c3fd9b4b78d"  # its run with artifact model.txt
V4_DATA = b"weights v4\n"


class LegacyBlake2bState(unittest.TestCase):
    """A state dir written by an older cairnd (tests/fixtures/state-v4, schema
    4) holds a BLAKE2b blob: after migration 6 its row says blake2b, and it
    still lists, downloads (through the server, the C SDK and the Python
    SDK) and verifies; the same bytes uploaded now are a SHA-256 blob beside
    it, and each blob is freed by its own (alg, hash) only."""

    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=services("inproc"), heartbeat_ms=500)
        shutil.copytree(FIXTURE_V4, cls.k.state)
        os.chmod(cls.k.state, 0o700)
        try:
            cls.k.start()
        except BaseException:
            cls.k.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def setUp(self):
        self.cl = Client(self.k, self)
        self.art = self.cl.art

    def tearDown(self):
        self.cl.close()

    def blob(self, alg, data):
        sub = "sha256" if alg == "sha256" else "cas"
        h = chash(data, alg)
        return os.path.join(self.k.state, "artifacts", sub, h[:2], h[2:])

    def rows(self):
        db = sqlite3.connect(os.path.join(self.k.state, "tracking.db"))
        try:
            return db.execute("SELECT path, alg, hash FROM artifacts ORDER BY path").fetchall()
        finally:
            db.close()

    def test_the_legacy_blob_reads_and_a_new_one_coexists(self):
        old = b2(V4_DATA)
        self.assertEqual(self.rows(), [("model.txt", "blake2b", old)])
        files = self.art("list_artifacts", {"run_id": V4_RUN})["files"]
        self.assertEqual(files, [{"path": "model.txt", "is_dir": False, "file_size": 11}])
        r = self.art("get_artifact", {"run_id": V4_RUN, "path": "model.txt"})
        self.assertEqual(r, {"data": V4_DATA, "offset": 0, "size": 11, "hash": old,
                             "hash_alg": "blake2b", "done": True})
        # in pieces: the running hash of a sequential download is BLAKE2b too
        got, last = self.cl.get(V4_RUN, "model.txt", piece=4)
        self.assertEqual((got, last["hash_alg"]), (V4_DATA, "blake2b"))
        self.assertEqual(self.art("verify_artifact", {"run_id": V4_RUN, "path": "model.txt"}),
                         {"ok": True, "hash": old, "hash_alg": "blake2b"})
        # the SDKs verify it with BLAKE2b
        with tempfile_dir() as d:
            dst = os.path.join(d, "c.txt")
            r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint,
                                "artifacts", "download", V4_RUN, "model.txt", dst],
                               capture_output=True, timeout=DEADLINE * 2)
            self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
            with open(dst, "rb") as f:
                self.assertEqual(f.read(), V4_DATA)
            with cairn.Client(self.k.endpoint) as c, open(dst + ".py", "wb") as f:
                a = cairn.transfer._Download(c, V4_RUN, "model.txt", f).run()
            self.assertEqual(a, {"path": "model.txt", "size": 11, "hash": old,
                                 "hash_alg": "blake2b"})
        # the same bytes uploaded now: a SHA-256 blob beside the BLAKE2b one
        a = self.cl.put(V4_RUN, "copy.txt", V4_DATA)
        self.assertEqual(a, artifact("copy.txt", V4_DATA))
        self.assertTrue(os.path.exists(self.blob("blake2b", V4_DATA)))
        self.assertTrue(os.path.exists(self.blob("sha256", V4_DATA)))
        self.assertEqual(self.cl.get(V4_RUN, "copy.txt")[0], V4_DATA)
        self.assertEqual(self.cl.get(V4_RUN, "model.txt")[1]["hash_alg"], "blake2b")
        self.assertEqual(self.rows(), [("copy.txt", "sha256", chash(V4_DATA)),
                                       ("model.txt", "blake2b", old)])
        # Overwriting the old path with the same bytes: its row is SHA-256
        # now, and the BLAKE2b blob, named by no row any more, goes; the
        # SHA-256 blob (two rows) stays.
        self.cl.put(V4_RUN, "model.txt", V4_DATA)
        self.assertFalse(os.path.exists(self.blob("blake2b", V4_DATA)))
        self.assertTrue(os.path.exists(self.blob("sha256", V4_DATA)))
        r = self.art("delete_artifact", {"run_id": V4_RUN, "path": "copy.txt"})
        self.assertEqual((r["deleted"], r["blobs_freed"]), (1, 0))
        self.assertEqual(self.art("verify_artifact", {"run_id": V4_RUN, "path": "model.txt"}),
                         {"ok": True, "hash": chash(V4_DATA), "hash_alg": "sha256"})


class ArtifactsFallbackAndIdle(unittest.TestCase):
    """pread/pwrite instead of io_uring, and an idle limit of 1 s."""

    @classmethod
    def setUpClass(cls):
        cls.k = start(services("inproc", "      io_uring: false\n      upload_idle: 1\n"))

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def test_fallback_round_trip_and_idle_drop(self):
        self.assertIn("file I/O through pread/pwrite (io_uring not requested)",
                      self.k.read_log())
        cl = Client(self.k, self)
        try:
            run = cl.new_run()
            data = os.urandom(2 * MiB + 5)
            cl.put(run, "f.bin", data, chunk=MiB)
            self.assertEqual(cl.get(run, "f.bin", piece=MiB // 3)[0], data)
            tmp = os.path.join(self.k.state, "artifacts", "tmp")
            r = cl.art("put_artifact", {"run_id": run, "path": "idle", "data": b"x",
                                        "offset": 0})
            uid = r["upload_id"]
            # the temp file and its sidecar (what a restart resumes it from)
            self.assertEqual(sorted(os.listdir(tmp)), [uid, uid + ".meta"])
            wait_for(lambda: not os.listdir(tmp), timeout=10, what="the idle upload dropped")
            h = cl.art("put_artifact", {"run_id": run, "path": "idle", "data": b"y",
                                        "offset": 1, "upload_id": r["upload_id"]}, 404)
            self.assertIn("idle", h["err"])
            self.assertIn("dropped upload", self.k.read_log())
        finally:
            cl.close()


def crash(k, mode):
    """kill -9 what serves the artifacts instance — cairnd itself (inproc:
    restarted on the same state and ports) or only the plugin's process
    (process: the supervisor restarts it) — and wait until it serves again."""
    if mode == "inproc":
        k.proc.send_signal(signal.SIGKILL)
        k.proc.wait()
        k.logf.close()
        k.start()
        return
    pid = k.plugin("artifacts")["pid"]
    os.kill(pid, signal.SIGKILL)

    def back():
        p = k.plugin("artifacts")
        return p["state"] == "up" and p["pid"] not in (0, pid)
    wait_for(back, what="the artifacts process restarted")


class ResumeBase:
    """An upload goes on after a crash from its last acknowledged chunk:
    its temp file and sidecar survive, and the next chunk resumes it."""
    MODE = "inproc"
    SETTINGS = ""

    def setUp(self):
        self.k = start(services(self.MODE, self.SETTINGS))
        self.cl = Client(self.k, self)
        self.art = self.cl.art
        self.tmp = os.path.join(self.k.state, "artifacts", "tmp")

    def tearDown(self):
        self.cl.close()
        self.k.cleanup()

    def crash(self):
        self.cl.close()
        crash(self.k, self.MODE)
        self.cl = Client(self.k, self)
        self.art = self.cl.art

    def chunk(self, run, path, data, off, uid=None, done=False, st=200, code=None):
        body = {"run_id": run, "path": path, "data": data, "offset": off, "done": done}
        if uid:
            body["upload_id"] = uid
        return self.art("put_artifact", body, st, code)

    def check(self, run, path, data, a):
        self.assertEqual(a, artifact(path, data))
        got, last = self.cl.get(run, path, piece=MiB)
        self.assertEqual(got, data)
        self.assertEqual(last["hash"], chash(data))
        self.assertEqual(self.art("verify_artifact", {"run_id": run, "path": path}),
                         {"ok": True, "hash": chash(data), "hash_alg": "sha256"})
        self.assertEqual(os.listdir(self.tmp), [])

    def test_resume_after_kill_9(self):
        run = self.cl.new_run()
        step = MiB + 7
        data = random.Random(5).randbytes(4 * step + 1000)
        uid = self.chunk(run, "m/w.bin", data[:step], 0)["upload_id"]
        for i in (1, 2):
            r = self.chunk(run, "m/w.bin", data[i * step:(i + 1) * step], i * step, uid)
            self.assertEqual(r, {"upload_id": uid, "offset": (i + 1) * step})
        self.assertEqual(sorted(os.listdir(self.tmp)), [uid, uid + ".meta"])
        # Leftovers the restart's sweep removes: a stale pair, a sidecar
        # without its temp file, a temp file without its sidecar.
        stale, ghost, orphan = "a" * 32, "b" * 32, "c" * 32
        for name in (stale, stale + ".meta", ghost + ".meta", orphan):
            with open(os.path.join(self.tmp, name), "wb") as f:
                f.write(b"x")
        old = time.time() - 7200
        os.utime(os.path.join(self.tmp, stale), (old, old))
        self.crash()
        self.assertEqual(sorted(os.listdir(self.tmp)), [uid, uid + ".meta"])
        for gone in (stale, orphan):  # as unknown as any other id
            self.chunk(run, "m/w.bin", b"", 0, gone, st=404, code="not_found")
        # chunk 4 at the acknowledged offset, then the last
        r = self.chunk(run, "m/w.bin", data[3 * step:4 * step], 3 * step, uid)
        self.assertEqual(r, {"upload_id": uid, "offset": 4 * step})
        self.assertIn(f"resuming upload {uid}", self.k.read_log())
        a = self.chunk(run, "m/w.bin", data[4 * step:], 4 * step, uid, done=True)["artifact"]
        self.check(run, "m/w.bin", data, a)
        # finished: the id is gone for good
        self.chunk(run, "m/w.bin", b"", len(data), uid, st=404, code="not_found")

    def test_crash_between_blob_and_index_is_recovered(self):
        """The last chunk's commit moves the blob into cas/ and then writes
        the index row; a crash in between leaves the sidecar (now naming the
        hash) without its temp file. The next start indexes the upload."""
        run = self.cl.new_run()
        c1, c2 = os.urandom(3000), os.urandom(2000)
        uid = self.chunk(run, "w/model.bin", c1, 0)["upload_id"]
        meta = os.path.join(self.tmp, uid + ".meta")
        with open(meta) as f:
            record = f.read()
        # The state such a crash leaves, made by hand while nothing runs.
        self.cl.close()
        self.k.proc.send_signal(signal.SIGKILL)
        self.k.proc.wait()
        self.k.logf.close()
        full = c1 + c2
        h = chash(full)
        blob = os.path.join(self.k.state, "artifacts", "sha256", h[:2], h[2:])
        os.makedirs(os.path.dirname(blob), exist_ok=True)
        with open(blob, "wb") as f:
            f.write(full)
        os.unlink(os.path.join(self.tmp, uid))
        with open(meta, "w") as f:
            f.write(record + f"alg sha256\nhash {h}\nsize {len(full)}\n")
        self.k.start()
        self.cl = Client(self.k, self)
        self.art = self.cl.art
        got, last = self.cl.get(run, "w/model.bin")
        self.assertEqual((got, last["hash"], last["hash_alg"]), (full, h, "sha256"))
        self.assertEqual(os.listdir(self.tmp), [])
        self.assertIn("stored just before a crash", self.k.read_log())
        # The client's retry of its last chunk: the upload is gone (404),
        # and the artifact is there (what the SDKs check).
        self.chunk(run, "w/model.bin", c2, 3000, uid, done=True, st=404,
                   code="not_found")

    def test_crash_before_index_of_a_deleted_run_is_dropped(self):
        """As above, but the run was deleted before the restart: the blob is
        not indexed under it, and the sidecar and the blob go."""
        run = self.cl.new_run()
        c1 = os.urandom(3000)
        uid = self.chunk(run, "w/model.bin", c1, 0)["upload_id"]
        meta = os.path.join(self.tmp, uid + ".meta")
        with open(meta) as f:
            record = f.read()
        self.cl.call("tracking", "delete_run", {"run_id": run})
        self.cl.close()
        self.k.proc.send_signal(signal.SIGKILL)
        self.k.proc.wait()
        self.k.logf.close()
        h = b2(c1)  # a sidecar written before SHA-256: no alg line
        blob = os.path.join(self.k.state, "artifacts", "cas", h[:2], h[2:])
        os.makedirs(os.path.dirname(blob), exist_ok=True)
        with open(blob, "wb") as f:
            f.write(c1)
        os.unlink(os.path.join(self.tmp, uid))
        with open(meta, "w") as f:
            f.write(record + f"hash {h}\nsize {len(c1)}\n")
        self.k.start()
        self.cl = Client(self.k, self)
        self.art = self.cl.art
        self.assertIn(f"upload {uid} of 'w/model.bin' was stored before a crash but cannot "
                      f"be indexed: run '{run}' is deleted", self.k.read_log())
        self.assertEqual(os.listdir(self.tmp), [])
        self.assertFalse(os.path.exists(blob))
        self.assertEqual(self.art("list_artifacts", {"run_id": run})["files"], [])

    def test_recovery_holds_a_sidecar_to_the_rules_of_a_request(self):
        """A sidecar is read from disk: the recovery at start indexes none
        whose path a request could not carry ('..', control characters,
        not normalized) or whose rid is not its run's; the sweep takes
        them."""
        run = self.cl.new_run()
        uid = self.chunk(run, "w/model.bin", b"x" * 100, 0)["upload_id"]
        with open(os.path.join(self.tmp, uid + ".meta")) as f:
            rid = int(re.search(r"^rid (-?\d+)$", f.read(), re.M).group(1))
        self.cl.close()
        self.k.proc.send_signal(signal.SIGKILL)
        self.k.proc.wait()
        self.k.logf.close()
        full = os.urandom(1000)
        h = b2(full)  # sidecars written before SHA-256: no alg line
        blob = os.path.join(self.k.state, "artifacts", "cas", h[:2], h[2:])
        os.makedirs(os.path.dirname(blob), exist_ok=True)
        with open(blob, "wb") as f:
            f.write(full)
        bad = {"1" * 32: (rid, "../outside.bin"), "2" * 32: (rid, "a\x1b[2Jb.bin"),
               "3" * 32: (rid, "w//model.bin"), "4" * 32: (rid + 1000, "w/model.bin")}
        for name, (r, path) in bad.items():
            with open(os.path.join(self.tmp, name + ".meta"), "w") as f:
                f.write(f"cairn-upload 1\nrid {r}\nrun_id {run}\ncreated 1\n"
                        f"path {path}\nhash {h}\nsize {len(full)}\n")
        self.k.start()
        self.cl = Client(self.k, self)
        self.art = self.cl.art
        self.assertEqual(self.art("list_artifacts", {"run_id": run})["files"], [])
        log = self.k.read_log()
        for name in ("1" * 32, "2" * 32, "3" * 32):
            self.assertIn(f"the sidecar of upload {name} is unreadable", log)
        self.assertIn(f"upload {'4' * 32} of 'w/model.bin' was stored before a crash "
                      f"but is not indexed: its run '{run}' (rid {rid + 1000}) is "
                      f"not in the database", log)
        self.assertNotIn("stored just before a crash", log)
        # the upload in progress is still there; the others were swept
        self.assertEqual(sorted(os.listdir(self.tmp)), [uid, uid + ".meta"])

    def test_commit_clears_the_sidecar(self):
        run = self.cl.new_run()
        uid = self.chunk(run, "x.bin", b"a" * 100, 0)["upload_id"]
        self.assertEqual(sorted(os.listdir(self.tmp)), sorted([uid, uid + ".meta"]))
        self.chunk(run, "x.bin", b"b" * 50, 100, uid, done=True)
        self.assertEqual(os.listdir(self.tmp), [])

    def test_resume_rules(self):
        run, other = self.cl.new_run(), self.cl.new_run()
        c1, c2 = os.urandom(1000), os.urandom(1000)
        uid = self.chunk(run, "r.bin", c1, 0)["upload_id"]
        self.chunk(run, "r.bin", c2, 1000, uid)
        self.crash()
        # another path, another run: 400 naming the upload's own (as when
        # the upload is held in memory)
        h = self.chunk(run, "other.bin", c2, 2000, uid, st=400, code="bad_request")
        self.assertIn("'r.bin'", h["err"])
        h = self.chunk(other, "r.bin", c2, 2000, uid, st=400, code="bad_request")
        self.assertIn(run, h["err"])
        # beyond what the server has: 409 naming where to resume from
        h = self.chunk(run, "r.bin", b"z", 2001, uid, st=409, code="conflict")
        self.assertIn("expected offset 2000", h["err"])
        self.assertEqual(self.cl.body, {"expected_offset": 2000})
        self.chunk(run, "r.bin", b"z", 0, "d" * 32, st=404, code="not_found")
        # below: chunk 2 sent again (its 200 was lost in the crash)
        self.assertEqual(self.chunk(run, "r.bin", c2, 1000, uid),
                         {"upload_id": uid, "offset": 2000})
        # held again: the strict rule
        h = self.chunk(run, "r.bin", c2, 1000, uid, st=409, code="conflict")
        self.assertIn("expected offset 2000", h["err"])
        self.assertEqual(self.cl.body, {"expected_offset": 2000})
        c3 = os.urandom(500)
        self.chunk(run, "r.bin", c3, 2000, uid)
        # a second crash, then back to the very start with other bytes:
        # everything after offset 0 is cut, the content is the new one
        self.crash()
        x = os.urandom(700)
        a = self.chunk(run, "r.bin", x, 0, uid, done=True)["artifact"]
        self.check(run, "r.bin", x, a)

    def test_resume_large_in_slices(self):
        # more than one 32 MiB rehash slice: the resume is deferred across
        # turns of the plugin's loop, then the chunk is applied
        run = self.cl.new_run()
        block = random.Random(6).randbytes(CHUNK)
        chunks = [i.to_bytes(4, "little") + block[4:] for i in range(6)]
        uid = self.chunk(run, "big.bin", chunks[0], 0)["upload_id"]
        for i in range(1, 5):
            self.chunk(run, "big.bin", chunks[i], i * CHUNK, uid)
        self.crash()
        a = self.chunk(run, "big.bin", chunks[5], 5 * CHUNK, uid, done=True)["artifact"]
        self.check(run, "big.bin", b"".join(chunks), a)

    def test_resume_to_deleted_run(self):
        """A chunk that would resume an upload of a run deleted meanwhile is
        refused (400, as a new upload to a deleted run) and the upload is
        dropped with its temp file and sidecar: after a restore its id is
        unknown, nothing was stored, and a new upload works."""
        run = self.cl.new_run()
        uid = self.chunk(run, "d.bin", b"1234", 0)["upload_id"]
        uid2 = self.chunk(run, "e.bin", b"1234", 0)["upload_id"]
        self.crash()
        self.cl.call("tracking", "delete_run", {"run_id": run})
        h = self.chunk(run, "d.bin", b"5678", 4, uid, done=True, st=400, code="bad_request")
        self.assertIn(f"run '{run}' is deleted", h["err"])
        self.assertIn(f"upload '{uid}' is dropped", h["err"])
        h = self.chunk(run, "e.bin", b"5678", 4, uid2, st=400, code="bad_request")
        self.assertIn(f"upload '{uid2}' is dropped", h["err"])
        self.assertEqual(os.listdir(self.tmp), [])
        self.cl.call("tracking", "restore_run", {"run_id": run})
        self.chunk(run, "d.bin", b"5678", 4, uid, done=True, st=404, code="not_found")
        self.assertEqual(self.art("list_artifacts", {"run_id": run})["files"], [])
        a = self.chunk(run, "d.bin", b"12345678", 0, done=True)["artifact"]
        self.check(run, "d.bin", b"12345678", a)

    def test_abort_after_restart(self):
        # an upload only on disk (not resumed yet) is aborted from its sidecar
        run = self.cl.new_run()
        uid = self.chunk(run, "a.bin", b"1234", 0)["upload_id"]
        self.crash()
        h = self.art("abort_upload", {"run_id": self.cl.new_run(), "upload_id": uid}, 400,
                     "bad_request")
        self.assertIn(run, h["err"])
        self.assertEqual(sorted(os.listdir(self.tmp)), [uid, uid + ".meta"])
        self.assertEqual(self.art("abort_upload", {"run_id": run, "upload_id": uid}),
                         {"upload_id": uid, "aborted": True})
        self.assertEqual(os.listdir(self.tmp), [])
        self.chunk(run, "a.bin", b"5678", 4, uid, done=True, st=404, code="not_found")

    def test_graceful_stop_keeps_uploads(self):
        # a stop (not a crash) keeps uploads in progress too
        run = self.cl.new_run()
        uid = self.chunk(run, "g.bin", b"abc", 0)["upload_id"]
        self.cl.close()
        self.k.stop()
        self.k.start()
        self.cl = Client(self.k, self)
        self.art = self.cl.art
        a = self.chunk(run, "g.bin", b"def", 3, uid, done=True)["artifact"]
        self.check(run, "g.bin", b"abcdef", a)


class ResumeInproc(ResumeBase, unittest.TestCase):
    MODE = "inproc"


class ResumeProcess(ResumeBase, unittest.TestCase):
    MODE = "process"


class ResumePower(ResumeBase, unittest.TestCase):
    """durability: power (each chunk fdatasync'ed before its 200; the
    sidecar and tmp/ fsync'ed) — the same rules."""
    MODE = "inproc"
    SETTINGS = "      durability: power\n"


class ResumeIdle(unittest.TestCase):
    """An upload not resumed within upload_idle is gone: 404."""

    def idle_after_crash(self, mode):
        k = start(services(mode, "      upload_idle: 1\n"))
        cl = Client(k, self)
        try:
            tmp = os.path.join(k.state, "artifacts", "tmp")
            run = cl.new_run()
            uid = cl.art("put_artifact", {"run_id": run, "path": "i", "data": b"x",
                                          "offset": 0})["upload_id"]
            cl.close()
            crash(k, mode)
            cl = Client(k, self)
            wait_for(lambda: not os.listdir(tmp), timeout=10,
                     what="the upload's files swept")
            h = cl.art("put_artifact", {"run_id": run, "path": "i", "data": b"y",
                                        "offset": 1, "upload_id": uid}, 404, "not_found")
            self.assertIn("idle", h["err"])
        finally:
            cl.close()
            k.cleanup()

    def test_idle_after_crash_inproc(self):
        self.idle_after_crash("inproc")

    def test_idle_after_crash_process(self):
        self.idle_after_crash("process")


class SdkResume(unittest.TestCase):
    """The SDKs resume by themselves: the plugin process (or cairnd) is
    killed in the middle of an upload, deterministically — with a chunk in
    flight to the stopped plugin, so that it is answered 503 — and the
    upload completes, whole and correct."""
    SDK_CHUNK = 4 * MiB  # CAIRN_ARTIFACT_CHUNK, cairn.tracking.ARTIFACT_CHUNK

    def setUp(self):
        self.k = None

    def tearDown(self):
        if self.k:
            self.k.cleanup()

    def kernel(self, mode):
        self.k = start(services(mode))
        self.tmp = os.path.join(self.k.state, "artifacts", "tmp")
        cl = Client(self.k, self)
        try:
            return cl.new_run()
        finally:
            cl.close()

    def temp_size(self):
        """The size of the one upload's temp file (None while there is none)."""
        names = [n for n in os.listdir(self.tmp) if not n.endswith(".meta")]
        if len(names) != 1:
            return None
        try:
            return os.path.getsize(os.path.join(self.tmp, names[0]))
        except FileNotFoundError:
            return None

    def inflight(self):
        return self.k.plugin("artifacts")["inflight"]

    def kill_when_inflight(self, pid):
        """SIGKILL the stopped plugin once a chunk is in flight to it: the
        kernel answers that chunk 503 and restarts the plugin."""
        try:
            wait_for(lambda: self.inflight() >= 1, what="a chunk in flight to the stopped plugin")
        finally:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # the kernel found it hung and killed it first
                pass

    def stop_then_kill(self, pid, send):
        """SIGSTOP the plugin, let send() put a chunk in flight to it, then
        SIGKILL it."""
        os.kill(pid, signal.SIGSTOP)
        send()
        self.kill_when_inflight(pid)

    def check(self, run, path, data):
        cl = Client(self.k, self)
        try:
            got, last = cl.get(run, path)
        finally:
            cl.close()
        self.assertEqual(got, data)
        self.assertEqual(last["hash"], chash(data))
        self.assertEqual(os.listdir(self.tmp), [])
        self.assertIn("resuming upload", self.k.read_log())

    def cli_upload(self, mode):
        """cairn artifacts upload from a pipe: the test holds the rest of the
        file, so the CLI waits, deterministically, after two chunks."""
        run = self.kernel(mode)
        n = self.SDK_CHUNK
        data = random.Random(7).randbytes(5 * n + 777)
        env = dict(os.environ)
        env.pop("CAIRN_ENDPOINT", None)
        env.pop("CAIRN_TOKEN", None)
        p = subprocess.Popen([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint,
                              "--ttl", "1500", "artifacts", "upload", run, "-", "sdk/c.bin"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
        writer = None
        try:
            # Three chunks: the CLI sends two (it reads one ahead) and waits
            # for the fourth.
            p.stdin.write(data[:3 * n])
            p.stdin.flush()
            wait_for(lambda: self.temp_size() == 2 * n and self.inflight() == 0,
                     what="two chunks acknowledged")

            def more(lo, hi):
                nonlocal writer
                writer = threading.Thread(target=lambda: (p.stdin.write(data[lo:hi]),
                                                          p.stdin.flush()))
                writer.start()

            if mode == "process":
                pid = self.k.plugin("artifacts")["pid"]
                self.stop_then_kill(pid, lambda: more(3 * n, 4 * n))
            else:
                # cairnd itself: chunk 3 goes unanswered past the CLI's ttl,
                # is sent again, and reaches the restarted cairnd (maybe
                # twice: then the server's 409 says where it is)
                self.k.proc.send_signal(signal.SIGKILL)
                self.k.proc.wait()
                self.k.logf.close()
                more(3 * n, 4 * n)
                time.sleep(2.7)  # past ttl + 1 s: the first try has timed out
                self.k.start()
            writer.join(DEADLINE)
            _, err = p.communicate(data[4 * n:], timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err.decode(errors="replace"))
        self.assertNotIn(b"Sanitizer", err)
        self.check(run, "sdk/c.bin", data)

    def test_cli_upload_survives_plugin_kill(self):
        self.cli_upload("process")

    def test_cli_upload_survives_cairnd_kill(self):
        self.cli_upload("inproc")

    def test_python_upload_survives_plugin_kill(self):
        run = self.kernel("process")
        n = self.SDK_CHUNK
        data = random.Random(8).randbytes(5 * n + 99)
        t = cairn.Tracker(endpoint=self.k.endpoint)
        try:
            c = t._client()
            send, recv, sent, refused, killers = c.send, c.recv, [0], [], []

            def hooked(svc, verb, body=None, ttl_ms=None):
                if verb == "put_artifact":
                    sent[0] += 1
                if sent[0] == 3 and verb == "put_artifact" and not killers:
                    # chunk 3 (two were acknowledged; it goes through the
                    # window), in flight to the stopped plugin when it is
                    # killed: 503, and the SDK sends it again
                    wait_for(lambda: self.inflight() == 0, what="chunk 2 answered")
                    pid = self.k.plugin("artifacts")["pid"]
                    os.kill(pid, signal.SIGSTOP)
                    killers.append(threading.Thread(target=self.kill_when_inflight,
                                                    args=(pid,)))
                    killers[0].start()
                return send(svc, verb, body, ttl_ms)

            def hooked_recv(timeout=None):
                r = recv(timeout)
                if r.status >= 500:
                    refused.append(r.status)
                return r
            c.send, c.recv = hooked, hooked_recv
            with tempfile_dir() as d:
                src = os.path.join(d, "model.bin")
                with open(src, "wb") as f:
                    f.write(data)
                with t.start_run(run_id=run):
                    a = t.log_artifact(src, "sdk")
            self.assertEqual(a, artifact("sdk/model.bin", data))
            self.assertEqual(refused[:1], [503])
            self.assertGreater(sent[0], 6)  # chunk 3 was sent again
        finally:
            for k in killers:
                k.join(DEADLINE)
            t.close()
        self.check(run, "sdk/model.bin", data)

    def test_python_upload_to_a_run_deleted_midway(self):
        """The run is deleted while the window holds chunks in flight: the
        upload fails with the deleted run's 400 (not the 404s of the
        chunks behind it, whose upload the server dropped), and nothing of
        it is left on the server."""
        run = self.kernel("inproc")
        data = random.Random(11).randbytes(6 * self.SDK_CHUNK)
        t = cairn.Tracker(endpoint=self.k.endpoint)
        try:
            c = t._client()
            send, sent = c.send, [0]
            deleter = Client(self.k, self)

            def hooked(svc, verb, body=None, ttl_ms=None):
                if verb == "put_artifact":
                    sent[0] += 1
                    if sent[0] == 3:  # the window's second chunk
                        deleter.call("tracking", "delete_run", {"run_id": run})
                return send(svc, verb, body, ttl_ms)
            c.send = hooked
            with tempfile_dir() as d:
                src = os.path.join(d, "m.bin")
                with open(src, "wb") as f:
                    f.write(data)
                t.start_run(run_id=run)  # attached: not ended by this process
                with self.assertRaises(cairn.errors.BadRequest) as e:
                    t.log_artifact(src, "sdk")
            self.assertIn(f"run '{run}' is deleted", str(e.exception))
            self.assertEqual(os.listdir(self.tmp), [])
            # restored, so that close() can end the run it started
            deleter.call("tracking", "restore_run", {"run_id": run})
            deleter.close()
        finally:
            t.close()

    # -- downloads: the same restarts, ridden out the same way ---------------

    def stored(self, mode, seed):
        """A kernel, a run and a 6-chunk artifact sdk/d.bin in it."""
        run = self.kernel(mode)
        data = random.Random(seed).randbytes(5 * self.SDK_CHUNK + 777)
        cl = Client(self.k, self)
        try:
            cl.put(run, "sdk/d.bin", data)
        finally:
            cl.close()
        return run, data

    def kill_cairnd(self):
        self.k.proc.send_signal(signal.SIGKILL)
        self.k.proc.wait()
        self.k.logf.close()

    def cli_download(self, mode):
        """cairn artifacts download to a pipe the test reads: once its first
        byte came, the CLI holds the first chunk and cannot ask for the
        second before the test reads on (4 MiB do not fit in a pipe), so the
        service is killed, deterministically, between two chunks (process:
        with the second in flight to the stopped plugin, answered 503;
        inproc: cairnd itself, the second unanswered until the restarted
        cairnd gets it again). The progress (--progress) never goes back."""
        run, data = self.stored(mode, 9)
        env = dict(os.environ)
        env.pop("CAIRN_ENDPOINT", None)
        env.pop("CAIRN_TOKEN", None)
        p = subprocess.Popen([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint,
                              "--ttl", "1500", "--progress", "artifacts", "download", run,
                              "sdk/d.bin", "-"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        got, reader = bytearray(), None

        def read_rest():
            while True:
                b = os.read(p.stdout.fileno(), 1 << 20)
                if not b:
                    return
                got.extend(b)

        try:
            got += os.read(p.stdout.fileno(), 1)  # the first chunk is in the CLI's hands
            reader = threading.Thread(target=read_rest)
            if mode == "process":
                pid = self.k.plugin("artifacts")["pid"]
                os.kill(pid, signal.SIGSTOP)
                reader.start()
                self.kill_when_inflight(pid)
            else:
                self.kill_cairnd()
                reader.start()
                time.sleep(2.7)  # past ttl + 1 s: the first try has timed out
                self.k.start()
            reader.join(120)
            err = p.stderr.read()
            p.wait(DEADLINE)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            if reader and reader.is_alive():
                reader.join(DEADLINE)
            p.stdout.close()
            p.stderr.close()
        msg = err.decode(errors="replace")
        self.assertEqual(p.returncode, 0, msg)
        self.assertNotIn("Sanitizer", msg)
        self.assertEqual(len(got), len(data))
        self.assertTrue(got == data, "the downloaded bytes differ")
        if mode == "process":
            self.assertNotEqual(self.k.plugin("artifacts")["pid"], pid)
        pct = [float(x) for x in re.findall(r"(\d+\.\d)%", msg)]
        self.assertTrue(pct and pct[-1] == 100.0, msg)
        self.assertEqual(pct, sorted(pct), "the progress went back")

    def test_cli_download_survives_plugin_kill(self):
        self.cli_download("process")

    def test_cli_download_survives_cairnd_kill(self):
        self.cli_download("inproc")

    def python_download(self, mode):
        """Tracker.download_artifact, the second get_artifact hooked: the
        plugin is killed with it in flight (503), or cairnd is killed before
        it is sent and restarted on the same state and port 2.7 s later (no
        reply within the ttl: DeadlineExceeded); it is asked for again."""
        run, data = self.stored(mode, 10)
        t = cairn.Tracker(endpoint=self.k.endpoint, ttl_ms=1500)
        restarter = None
        try:
            c = t._client()
            send, recv, call, sent, failed = c.send, c.recv, c.call, [0], []
            killer = None

            def hooked(svc, verb, body=None, ttl_ms=None):
                nonlocal restarter, killer
                if verb == "get_artifact":
                    sent[0] += 1
                if verb != "get_artifact" or sent[0] != 2:
                    return send(svc, verb, body, ttl_ms)
                # the second (the window's first)
                if mode == "process":
                    pid = self.k.plugin("artifacts")["pid"]
                    os.kill(pid, signal.SIGSTOP)
                    killer = threading.Thread(target=self.kill_when_inflight, args=(pid,))
                    killer.start()
                else:
                    self.kill_cairnd()
                    restarter = threading.Thread(
                        target=lambda: (time.sleep(2.7), self.k.start()))
                    restarter.start()
                return send(svc, verb, body, ttl_ms)

            def hooked_recv(timeout=None):
                r = recv(timeout)
                if r.status >= 500:
                    failed.append(r.status)
                return r

            def hooked_call(svc, verb, body=None, ttl_ms=None):
                try:
                    return call(svc, verb, body, ttl_ms)
                except (cairn.errors.Unavailable, cairn.errors.DeadlineExceeded) as e:
                    failed.append(e.status)
                    raise
            c.send, c.recv, c.call = hooked, hooked_recv, hooked_call
            with tempfile_dir() as d:
                dst = os.path.join(d, "out.bin")
                self.assertEqual(t.download_artifact("sdk/d.bin", dst, run_id=run), dst)
                with open(dst, "rb") as f:
                    self.assertTrue(f.read() == data, "the downloaded bytes differ")
                self.assertEqual(os.listdir(d), ["out.bin"])
            # the window's requests failed with it are dropped, not counted
            self.assertEqual(failed[:1], [503 if mode == "process" else 504])
            self.assertGreater(sent[0], 6)  # the second chunk was asked for again
        finally:
            if killer:
                killer.join(DEADLINE)
            if restarter:
                restarter.join(DEADLINE * 2)
            t.close()

    def test_python_download_survives_plugin_kill(self):
        self.python_download("process")

    def test_python_download_survives_cairnd_kill(self):
        self.python_download("inproc")


class FakeArtifacts:
    """put_artifact / get_artifact as the server answers them (one upload
    at a time), with faults injected at given calls: faults[i](self, body)
    answers the i-th request instead."""
    UID = "f" * 32

    def __init__(self, faults, alg="sha256"):
        self.faults, self.buf, self.calls = faults, bytearray(), []
        self.aborted = []  # (run_id, upload_id) of each abort_upload
        self.alg = alg  # of the hashes it answers; None: older than SHA-256

    def __call__(self, h, raw):
        b = msgpack.unpackb(raw) if raw else {}
        i = len(self.calls)
        self.calls.append((h["verb"], b.get("offset"), len(b.get("data") or b""),
                           b.get("done")))
        if h["verb"] == "abort_upload":
            self.aborted.append((b.get("run_id"), b.get("upload_id")))
        if i in self.faults:
            return self.faults[i](self, b)
        return self.serve(h["verb"], b)

    def hashed(self):
        """The hash fields of a reply about self.buf: SHA-256, or (alg
        None: a server older than SHA-256) BLAKE2b without hash_alg."""
        if self.alg is None:
            return {"hash": b2(bytes(self.buf))}
        return {"hash": chash(bytes(self.buf), self.alg), "hash_alg": self.alg}

    def serve(self, verb, b):
        if verb == "get_artifact":
            off = b["offset"]
            data = bytes(self.buf[off:off + b.get("length", CHUNK)])
            return 200, {}, msgpack.packb({"offset": off, "size": len(self.buf),
                                           **self.hashed(),
                                           "done": off + len(data) == len(self.buf),
                                           "data": data})
        if verb == "abort_upload":
            return 200, {}, msgpack.packb({"upload_id": b["upload_id"], "aborted": True})
        if verb != "put_artifact":
            return 404, {"code": "no_verb", "err": f"no verb {verb}"}, b""
        off = b["offset"]
        if off > len(self.buf):
            return 409, {"code": "conflict", "err": f"expected offset {len(self.buf)}"}, b""
        del self.buf[off:]
        self.buf += b["data"]
        if b.get("done"):
            a = {"path": b["path"], "size": len(self.buf), **self.hashed()}
            return 200, {}, msgpack.packb({"artifact": a})
        return 200, {}, msgpack.packb({"upload_id": self.UID, "offset": len(self.buf)})

    @staticmethod
    def error(st, code, msg):
        return lambda s, b: (st, {"code": code, "err": msg}, b"")

    @staticmethod
    def lost_everything(s, b):
        """The server lost what it had (a power loss under durability: process):
        the 409 of a server older than the body {expected_offset}, which the
        SDKs follow by reading the sentence."""
        s.buf = bytearray()
        return 409, {"code": "conflict", "err": "the server holds 0 bytes: expected offset 0"}, b""

    @staticmethod
    def lost_everything_body(s, b):
        """The same with the offset in the body only (the sentence gives no
        number): the SDKs read the body."""
        s.buf = bytearray()
        return 409, {"code": "conflict", "err": "the server lost this upload's bytes"}, \
            msgpack.packb({"expected_offset": 0})

    @staticmethod
    def silent(s, b):
        """No reply at all (the server went away)."""
        return None

    @staticmethod
    def reply_lost(s, b):
        """Applied, but the reply never came (here: 503)."""
        s.serve("put_artifact", b)
        return 503, {"code": "unavailable", "err": "restarting"}, b""

    @staticmethod
    def changed(s, b):
        """The service restarts (503) and, meanwhile, the artifact at the
        path is overwritten with other bytes of the same size."""
        s.buf = bytearray(x ^ 0x55 for x in s.buf)
        return 503, {"code": "unavailable", "err": "restarting"}, b""


class SdkHashAlg(unittest.TestCase):
    """The SDKs against servers of either content hash: an upload is checked
    against its SHA-256, so a server that hashes with BLAKE2b (names it, or
    names none: older than SHA-256) fails it with a sentence that says so;
    a download hashes with what the server names (none: BLAKE2b)."""
    TOO_OLD = "the server is too old: it hashes artifacts with blake2b"

    def setUp(self):
        self.dir = tempfile_dir()
        self.d = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, data):
        path = os.path.join(self.d, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_upload_to_a_blake2b_server_fails_with_a_sentence(self):
        data = os.urandom(5 * MiB + 3)
        src = self.write("f", data)
        for alg in (None, "blake2b"):
            with self.subTest(alg=alg), FakeKernel(FakeArtifacts({}, alg)) as fk:
                r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", fk.endpoint,
                                    "artifacts", "upload", "0" * 32, src, "x/f"],
                                   capture_output=True, timeout=DEADLINE * 2)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(self.TOO_OLD, r.stderr.decode(errors="replace"))
                self.assertEqual(bytes(fk.reply.buf), data)  # stored, not verified
            with self.subTest(alg=alg, sdk="python"), \
                    FakeKernel(FakeArtifacts({}, alg)) as fk, \
                    cairn.Client(fk.endpoint) as c, open(src, "rb") as f:
                with self.assertRaises(cairn.CairnError) as cm:
                    cairn.transfer._Upload(c, "0" * 32, "x/f", f).run()
                self.assertIn(self.TOO_OLD, str(cm.exception))
                self.assertEqual(cm.exception.code, "bad_reply")

    def test_download_hashes_with_the_servers_algorithm(self):
        data = os.urandom(9 * MiB + 5)
        for alg in (None, "blake2b", "sha256"):
            fake = FakeArtifacts({}, alg)
            fake.buf += data
            want = b2(data) if alg is None else chash(data, alg)
            dst = os.path.join(self.d, f"out-{alg}")
            with self.subTest(alg=alg), FakeKernel(fake) as fk:
                r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", fk.endpoint,
                                    "--json", "artifacts", "download", "0" * 32, "f", dst],
                                   capture_output=True, timeout=DEADLINE * 2)
                self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
                with open(dst, "rb") as f:
                    self.assertTrue(f.read() == data, "the downloaded bytes differ")
                with cairn.Client(fk.endpoint) as c, open(dst + ".py", "wb") as f:
                    got = cairn.transfer._Download(c, "0" * 32, "f", f).run()
                self.assertEqual(got, {"path": "f", "size": len(data), "hash": want,
                                       "hash_alg": alg or "blake2b"})

    def test_download_of_an_unknown_algorithm_is_refused(self):
        fake = FakeArtifacts({}, "md5")
        fake.buf += b"abc"
        with FakeKernel(fake) as fk, cairn.Client(fk.endpoint) as c, \
                open(os.path.join(self.d, "o"), "wb") as f:
            with self.assertRaises(cairn.CairnError) as cm:
                cairn.transfer._Download(c, "0" * 32, "f", f).run()
        self.assertIn("with 'md5', which this SDK does not know", str(cm.exception))


class SdkRecovery(unittest.TestCase):
    """The SDKs' recovery paths against a fake server: a 409 "expected
    offset N" before the chunk in hand (the file is read again; N in the
    reply's body {expected_offset}, or only in the sentence as older
    servers say it), a last chunk whose reply was lost and whose upload is
    gone (what the server stored is checked), and giving up (bounded by
    $CAIRN_ARTIFACT_RETRY_S)."""
    MiB4 = 4 * MiB

    def setUp(self):
        self.dir = tempfile_dir()
        self.d = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def scenarios(self):
        """(name, data, faults, calls (verb, offset, length, done) expected)."""
        n = self.MiB4
        put, get = "put_artifact", "get_artifact"
        return [
            # the last chunk was in flight (the window) when the 409 came:
            # refused, then sent again after the rewind
            ("rewind", b"".join(bytes([i]) * n for i in range(2)) + b"tail",
             {1: FakeArtifacts.lost_everything},
             [(put, 0, n, False), (put, n, n, False), (put, 2 * n, 4, True),
              (put, 0, n, False), (put, n, n, False), (put, 2 * n, 4, True)]),
            ("rewind_body", b"".join(bytes([i]) * n for i in range(2)) + b"tail",
             {1: FakeArtifacts.lost_everything_body},
             [(put, 0, n, False), (put, n, n, False), (put, 2 * n, 4, True),
              (put, 0, n, False), (put, n, n, False), (put, 2 * n, 4, True)]),
            ("lost_done", bytes(range(256)) * (n // 256) + b"end",
             {1: FakeArtifacts.reply_lost,
              2: FakeArtifacts.error(404, "not_found", "no upload has the id")},
             [(put, 0, n, False), (put, n, 3, True), (put, n, 3, True), (get, n + 3, 0, None)]),
        ]

    def write(self, name, data):
        path = os.path.join(self.d, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_c_sdk(self):
        for name, data, faults, calls in self.scenarios():
            with self.subTest(name), FakeKernel(FakeArtifacts(faults)) as fk:
                fake = fk.reply
                r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", fk.endpoint,
                                    "artifacts", "upload", "0" * 32,
                                    self.write(name, data), f"x/{name}"],
                                   capture_output=True, timeout=DEADLINE * 2)
                self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
                self.assertEqual(bytes(fake.buf), data)
                self.assertEqual(fake.calls, calls)

    def test_python_sdk(self):
        for name, data, faults, calls in self.scenarios():
            with self.subTest(name), FakeKernel(FakeArtifacts(faults)) as fk, \
                    cairn.Client(fk.endpoint) as c, open(self.write(name, data), "rb") as f:
                a = cairn.transfer._Upload(c, "0" * 32, f"x/{name}", f).run()
                self.assertEqual(a, artifact(f"x/{name}", data))
                self.assertEqual(bytes(fk.reply.buf), data)
                self.assertEqual(fk.reply.calls, calls)

    def test_no_cairnd_fails_at_once(self):
        # no reply to the first chunk: nothing to resume, most likely no
        # cairnd; both SDKs say so after one ttl instead of retrying
        # A port held by a socket that never speaks ZMTP: no other test can
        # start a cairnd there meanwhile (a port only found free could be).
        hold = socket.socket()
        hold.bind(("127.0.0.1", 0))
        hold.listen(1)
        self.addCleanup(hold.close)
        endpoint = f"tcp://127.0.0.1:{hold.getsockname()[1]}"
        src = self.write("n", b"x" * 10)
        t0 = time.monotonic()
        r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", endpoint, "--ttl", "300",
                            "artifacts", "upload", "0" * 32, src], capture_output=True,
                           timeout=DEADLINE)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"cannot reach cairnd", r.stderr)
        with cairn.Client(endpoint, ttl_ms=300) as c, open(src, "rb") as f:
            with self.assertRaises(cairn.errors.DeadlineExceeded):
                cairn.transfer._Upload(c, "0" * 32, "n", f).run()
        # a download's first request likewise
        dst = os.path.join(self.d, "n.out")
        r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", endpoint, "--ttl", "300",
                            "artifacts", "download", "0" * 32, "n", dst], capture_output=True,
                           timeout=DEADLINE)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn(b"cannot reach cairnd", r.stderr)
        t = cairn.Tracker(endpoint=endpoint, ttl_ms=300)
        try:
            with self.assertRaises(cairn.errors.DeadlineExceeded):
                t.download_artifact("n", dst, run_id="0" * 32)
        finally:
            t.close()
        self.assertEqual(os.listdir(self.d), ["n"])
        self.assertLess(time.monotonic() - t0, 14)

    def test_python_gives_up(self):
        always = {i: FakeArtifacts.error(503, "unavailable", "restarting") for i in range(100)}
        old = cairn.transfer.ARTIFACT_RETRY_S
        env = os.environ.pop("CAIRN_ARTIFACT_RETRY_S", None)
        try:
            # the budget from the module's ARTIFACT_RETRY_S, then from the
            # environment (which wins)
            for via in ("module", "env"):
                if via == "module":
                    cairn.transfer.ARTIFACT_RETRY_S = 0.5
                else:
                    cairn.transfer.ARTIFACT_RETRY_S = old
                    os.environ["CAIRN_ARTIFACT_RETRY_S"] = "0.5"
                with self.subTest(via), FakeKernel(FakeArtifacts(always)) as fk, \
                        cairn.Client(fk.endpoint) as c, \
                        open(self.write("g", b"x" * 10), "rb") as f:
                    t0 = time.monotonic()
                    with self.assertRaises(cairn.errors.Unavailable) as e:
                        cairn.transfer._Upload(c, "0" * 32, "g", f).run()
                    self.assertLess(time.monotonic() - t0, 5)
                    self.assertIn("gave up on the chunk at offset 0", str(e.exception))
                    self.assertIn("restarting", str(e.exception))
                    self.assertGreaterEqual(len(fk.reply.calls), 3)
        finally:
            cairn.transfer.ARTIFACT_RETRY_S = old
            os.environ.pop("CAIRN_ARTIFACT_RETRY_S", None)
            if env is not None:
                os.environ["CAIRN_ARTIFACT_RETRY_S"] = env

    def test_retry_budget_from_env(self):
        # a positive number of seconds; anything else is ignored (60 s)
        old = os.environ.pop("CAIRN_ARTIFACT_RETRY_S", None)
        try:
            for v, want in (("2", 2.0), ("0.25", 0.25), (" 3 ", 3.0), ("0", 60.0),
                            ("-1", 60.0), ("abc", 60.0), ("nan", 60.0), ("inf", 60.0),
                            ("", 60.0), (None, 60.0)):
                if v is None:
                    os.environ.pop("CAIRN_ARTIFACT_RETRY_S", None)
                else:
                    os.environ["CAIRN_ARTIFACT_RETRY_S"] = v
                self.assertEqual(cairn.transfer._retry_s(), want, v)
        finally:
            os.environ.pop("CAIRN_ARTIFACT_RETRY_S", None)
            if old is not None:
                os.environ["CAIRN_ARTIFACT_RETRY_S"] = old

    def cli(self, endpoint, src, budget, *extra):
        env = dict(os.environ)
        env.pop("CAIRN_ENDPOINT", None)
        env.pop("CAIRN_TOKEN", None)
        env["CAIRN_ARTIFACT_RETRY_S"] = budget
        return subprocess.Popen([os.path.join(BIN, "cairn"), "--endpoint", endpoint, *extra,
                                 "artifacts", "upload", "0" * 32, src, "g"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def test_cli_gives_up(self):
        """The C SDK's give-up path, through `cairn artifacts upload`: with
        CAIRN_ARTIFACT_RETRY_S=2 it stops within the budget (and a little:
        the backoff's last wait, the tries in flight), non-zero, saying so."""
        budget = 2.0
        n = 4 * MiB  # CAIRN_ARTIFACT_CHUNK
        always = {i: FakeArtifacts.error(503, "unavailable", "restarting") for i in range(100)}
        # 503 to every chunk; a server that answers the first chunk and then
        # goes silent (each try waits the ttl, 300 ms, plus the client's 1 s)
        cases = [("503", b"x" * 10, always, (), 0, b"restarting"),
                 ("silent", b"y" * (n + 10), {i: FakeArtifacts.silent for i in range(1, 100)},
                  ("--ttl", "300"), n, b"")]
        for name, data, faults, extra, at, why in cases:
            with self.subTest(name), FakeKernel(FakeArtifacts(faults)) as fk:
                src = self.write(name, data)
                t0 = time.monotonic()
                p = self.cli(fk.endpoint, src, str(budget), *extra)
                try:
                    _, err = p.communicate(timeout=DEADLINE)
                finally:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                took = time.monotonic() - t0
                msg = err.decode(errors="replace")
                self.assertEqual(p.returncode, 3, msg)  # EXIT_UNREACHABLE
                self.assertIn(f"gave up on the chunk at offset {at} of 'g'", msg)
                self.assertIn(why.decode(), msg)
                self.assertNotIn("Sanitizer", msg)
                self.assertLess(took, budget + 3, msg)
                self.assertGreater(took, budget / 2, msg)  # it did retry, for a while
                self.assertGreaterEqual(len([c for c in fk.reply.calls if c[1] == at]), 2)

    # -- an upload slot refused (429), an upload that fails for good --------

    def test_slot_refused_is_waited_for(self):
        """A first chunk answered 429 (no upload slot free) is sent again
        with backoff, within the retry budget, as a 503 is (C and Python)."""
        n = self.MiB4
        data = b"s" * (n + 5)
        busy = FakeArtifacts.error(429, "overloaded", "the artifacts service holds 4 "
                                   "unfinished uploads, its limit (uploads_max: 4)")
        calls = [("put_artifact", 0, n, False)] * 3 + [("put_artifact", n, 5, True)]
        with FakeKernel(FakeArtifacts({0: busy, 1: busy})) as fk:
            r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", fk.endpoint,
                                "artifacts", "upload", "0" * 32, self.write("s", data), "s"],
                               capture_output=True, timeout=DEADLINE * 2)
            self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
            self.assertEqual(fk.reply.calls, calls)
            self.assertEqual(bytes(fk.reply.buf), data)
        with FakeKernel(FakeArtifacts({0: busy, 1: busy})) as fk, \
                cairn.Client(fk.endpoint) as c, open(self.write("s", data), "rb") as f:
            a = cairn.transfer._Upload(c, "0" * 32, "s", f).run()
            self.assertEqual(a["hash"], chash(data))
            self.assertEqual(fk.reply.calls, calls)

    def test_slot_refused_gives_up(self):
        """Refused past the budget: it gives up, saying so, with the 429."""
        busy = {i: FakeArtifacts.error(429, "overloaded", "uploads_max reached")
                for i in range(100)}
        with FakeKernel(FakeArtifacts(busy)) as fk:
            p = self.cli(fk.endpoint, self.write("g", b"g" * 10), "1")
            _, err = p.communicate(timeout=DEADLINE)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(b"gave up on the chunk at offset 0", err)
            self.assertIn(b"uploads_max reached", err)
            self.assertGreaterEqual(len(fk.reply.calls), 3)

    def test_failed_upload_is_aborted(self):
        """An upload that fails for good (here a 500 in the middle) is
        aborted on the server (abort_upload names it), C and Python; one
        that fails because the server is unreachable (503 past the budget)
        or gone (404) is not."""
        n = self.MiB4
        data = b"a" * (3 * n)
        broken = FakeArtifacts.error(500, "storage_error", "the disk is full")
        with FakeKernel(FakeArtifacts({1: broken})) as fk:
            r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", fk.endpoint,
                                "artifacts", "upload", "0" * 32, self.write("a", data), "a"],
                               capture_output=True, timeout=DEADLINE * 2)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(b"the disk is full", r.stderr)
            self.assertEqual(fk.reply.aborted, [("0" * 32, FakeArtifacts.UID)])
            self.assertEqual(fk.reply.calls[-1][0], "abort_upload")
        with FakeKernel(FakeArtifacts({1: broken})) as fk, \
                cairn.Client(fk.endpoint) as c, open(self.write("a", data), "rb") as f:
            with self.assertRaises(cairn.CairnError) as e:
                cairn.transfer._Upload(c, "0" * 32, "a", f).run()
            self.assertIn("the disk is full", str(e.exception))
            self.assertEqual(fk.reply.aborted, [("0" * 32, FakeArtifacts.UID)])
        gone = FakeArtifacts.error(404, "not_found", "no upload has the id")
        for faults in ({1: gone}, {i: FakeArtifacts.error(503, "unavailable", "restarting")
                                   for i in range(1, 100)}):
            with FakeKernel(FakeArtifacts(faults)) as fk:
                p = self.cli(fk.endpoint, self.write("b", data), "1")
                p.communicate(timeout=DEADLINE)
                self.assertNotEqual(p.returncode, 0)
                self.assertEqual(fk.reply.aborted, [])

    def test_refusal_in_the_window_ends_the_upload(self):
        """A chunk in the window refused for good (its run deleted: 400)
        ends the upload with that refusal, after the chunks behind it are
        answered; nothing is sent again (C and Python)."""
        n = self.MiB4
        data = b"d" * (5 * n)
        deleted = FakeArtifacts.error(400, "bad_request", "run 'r' is deleted: restore it "
                                      "before storing artifacts in it")
        with FakeKernel(FakeArtifacts({2: deleted})) as fk:
            r = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", fk.endpoint,
                                "artifacts", "upload", "0" * 32, self.write("d", data), "d"],
                               capture_output=True, timeout=DEADLINE * 2)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(b"is deleted", r.stderr)
            puts = [c for c in fk.reply.calls if c[0] == "put_artifact"]
            self.assertEqual(len(puts), len({c[1] for c in puts}))  # none sent twice
        with FakeKernel(FakeArtifacts({2: deleted})) as fk, \
                cairn.Client(fk.endpoint) as c, open(self.write("d", data), "rb") as f:
            with self.assertRaises(cairn.errors.BadRequest) as e:
                cairn.transfer._Upload(c, "0" * 32, "d", f).run()
            self.assertIn("is deleted", str(e.exception))
            puts = [c for c in fk.reply.calls if c[0] == "put_artifact"]
            self.assertEqual(len(puts), len({c[1] for c in puts}))

    def test_cli_ignores_a_bad_budget(self):
        # not a positive number: the default 60 s holds (still retrying
        # well past what a misread small budget would allow)
        always = {i: FakeArtifacts.error(503, "unavailable", "restarting") for i in range(1000)}
        src = self.write("b", b"z" * 10)
        with FakeKernel(FakeArtifacts(always)) as fk:
            ps = [self.cli(fk.endpoint, src, v) for v in ("0", "-2", "abc", "nan", "1x")]
            try:
                time.sleep(3.5)
                for p, v in zip(ps, ("0", "-2", "abc", "nan", "1x")):
                    self.assertIsNone(p.poll(), f"CAIRN_ARTIFACT_RETRY_S={v}: gave up early")
            finally:
                for p in ps:
                    p.kill()
                    p.communicate()

    # -- downloads: get_artifact asked for again, the same offset ------------

    def blob(self):
        return bytes(range(256)) * (2 * self.MiB4 // 256) + b"tail"

    def fake_blob(self, faults):
        fake = FakeArtifacts(faults)
        fake.buf = bytearray(self.blob())
        return fake

    def download_scenarios(self):
        """(name, faults, the offsets asked for): two 503s (the service
        restarting), a 503 to the first request (retried too: only silence
        there fails at once), a reply that never comes (after the ttl).
        After the first, the rest are asked for at once (the window): a
        failure drops the window and asks again from the first byte not
        written, one at a time, then the window goes on."""
        n = self.MiB4
        refused = FakeArtifacts.error(503, "unavailable", "restarting")
        return [("restart", {1: refused, 2: refused}, [0, n, 2 * n, n, 2 * n]),
                ("first_refused", {0: refused}, [0, 0, n, 2 * n]),
                ("reply_lost", {1: FakeArtifacts.silent}, [0, n, 2 * n, n, 2 * n])]

    def cli_download(self, endpoint, dst, budget=None):
        env = dict(os.environ)
        env.pop("CAIRN_ENDPOINT", None)
        env.pop("CAIRN_TOKEN", None)
        env.pop("CAIRN_ARTIFACT_RETRY_S", None)
        if budget:
            env["CAIRN_ARTIFACT_RETRY_S"] = budget
        return subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", endpoint, "--ttl",
                               "300", "artifacts", "download", "0" * 32, "x/d.bin", dst],
                              capture_output=True, timeout=DEADLINE * 2, env=env)

    def temps(self):
        return [n for n in os.listdir(self.d) if n.startswith(".")]

    def test_c_sdk_download(self):
        for name, faults, offsets in self.download_scenarios():
            with self.subTest(name), FakeKernel(self.fake_blob(faults)) as fk:
                dst = os.path.join(self.d, name)
                r = self.cli_download(fk.endpoint, dst)
                self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
                self.assertIn(b"verified", r.stdout)
                with open(dst, "rb") as f:
                    self.assertTrue(f.read() == self.blob(), "the downloaded bytes differ")
                self.assertEqual(fk.reply.calls, [("get_artifact", o, 0, None) for o in offsets])
                self.assertEqual(self.temps(), [])

    def test_python_sdk_download(self):
        for name, faults, offsets in self.download_scenarios():
            with self.subTest(name), FakeKernel(self.fake_blob(faults)) as fk:
                dst = os.path.join(self.d, name)
                t = cairn.Tracker(endpoint=fk.endpoint, ttl_ms=300)
                try:
                    self.assertEqual(t.download_artifact("x/d.bin", dst, run_id="0" * 32), dst)
                finally:
                    t.close()
                with open(dst, "rb") as f:
                    self.assertTrue(f.read() == self.blob(), "the downloaded bytes differ")
                self.assertEqual(fk.reply.calls, [("get_artifact", o, 0, None) for o in offsets])
                self.assertEqual(self.temps(), [])

    def test_download_changed_across_a_restart(self):
        # the artifact is overwritten while the service restarts: the
        # download that goes on after the 503 notices, and writes nothing
        faults = {1: FakeArtifacts.changed}
        with FakeKernel(self.fake_blob(faults)) as fk:
            r = self.cli_download(fk.endpoint, os.path.join(self.d, "c"))
            self.assertEqual(r.returncode, 1, r.stderr.decode(errors="replace"))
            self.assertIn(b"changed while it was being downloaded", r.stderr)
        with FakeKernel(self.fake_blob(faults)) as fk:
            t = cairn.Tracker(endpoint=fk.endpoint, ttl_ms=300)
            try:
                with self.assertRaises(cairn.errors.Conflict) as e:
                    t.download_artifact("x/d.bin", os.path.join(self.d, "p"), run_id="0" * 32)
            finally:
                t.close()
            self.assertEqual(e.exception.code, "changed")
            self.assertIn("changed while it was being downloaded", str(e.exception))
        self.assertEqual(os.listdir(self.d), [])

    def give_up_cases(self):
        """503 to every request after the first, or no reply at all to them
        (each try waits the ttl, 300 ms, plus the client's 1 s)."""
        refused = FakeArtifacts.error(503, "unavailable", "restarting")
        return [("503", {i: refused for i in range(1, 1000)}, "restarting"),
                ("silent", {i: FakeArtifacts.silent for i in range(1, 1000)}, "")]

    def test_cli_download_gives_up(self):
        """The C SDK's give-up path, through `cairn artifacts download`: it
        stops within CAIRN_ARTIFACT_RETRY_S=2 (and a little), exit status 3
        as for an upload, saying so; nothing is left behind."""
        budget, n = 2.0, self.MiB4
        for name, faults, why in self.give_up_cases():
            with self.subTest(name), FakeKernel(self.fake_blob(faults)) as fk:
                t0 = time.monotonic()
                r = self.cli_download(fk.endpoint, os.path.join(self.d, name), str(budget))
                took = time.monotonic() - t0
                msg = r.stderr.decode(errors="replace")
                self.assertEqual(r.returncode, 3, msg)  # EXIT_UNREACHABLE
                self.assertRegex(msg, rf"gave up on the download of 'x/d\.bin' at offset {n} "
                                      r"after \d+ tries in \d+ s \(the artifacts service is "
                                      r"restarting or unreachable\)")
                self.assertIn(why, msg)
                self.assertNotIn("Sanitizer", msg)
                self.assertLess(took, budget + 3, msg)
                self.assertGreater(took, budget / 2, msg)  # it did retry, for a while
                self.assertGreaterEqual(len([c for c in fk.reply.calls if c[1] == n]), 2)
                self.assertEqual(os.listdir(self.d), [])

    def test_python_download_gives_up(self):
        old = os.environ.pop("CAIRN_ARTIFACT_RETRY_S", None)
        budget, n = 2.0, self.MiB4
        try:
            os.environ["CAIRN_ARTIFACT_RETRY_S"] = str(budget)
            for name, faults, why in self.give_up_cases():
                with self.subTest(name), FakeKernel(self.fake_blob(faults)) as fk:
                    t = cairn.Tracker(endpoint=fk.endpoint, ttl_ms=300)
                    t0 = time.monotonic()
                    try:
                        with self.assertRaises((cairn.errors.Unavailable,
                                                cairn.errors.DeadlineExceeded)) as e:
                            t.download_artifact("x/d.bin", os.path.join(self.d, name),
                                                run_id="0" * 32)
                    finally:
                        t.close()
                    took = time.monotonic() - t0
                    msg = str(e.exception)
                    self.assertRegex(msg, rf"gave up on the download of 'x/d\.bin' at offset "
                                          rf"{n} after \d+ tries in \d+ s \(the artifacts "
                                          r"service is restarting or unreachable\)")
                    self.assertIn(why, msg)
                    self.assertLess(took, budget + 3, msg)
                    self.assertGreater(took, budget / 2, msg)
                    self.assertGreaterEqual(len([c for c in fk.reply.calls if c[1] == n]), 2)
                    self.assertEqual(os.listdir(self.d), [])
        finally:
            os.environ.pop("CAIRN_ARTIFACT_RETRY_S", None)
            if old is not None:
                os.environ["CAIRN_ARTIFACT_RETRY_S"] = old


def tempfile_dir():
    import tempfile
    return tempfile.TemporaryDirectory(prefix="cairn-art-")


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


class BigRoundTrip(unittest.TestCase):
    """2 GiB up and down in 8 MiB chunks; cairnd's peak RSS grows little."""
    SIZE = 2 << 30

    def test_2gib_round_trip_bounded_rss(self):
        if os.environ.get("CAIRN_BIG_TESTS") == "0":
            self.skipTest("CAIRN_BIG_TESTS=0")
        # 1 s heartbeats (5 s to be declared dead): under ASan on a loaded
        # machine one slice of a 2 GiB verify can outlast the default 1 s.
        k = Kernel(services=services("inproc"), heartbeat_ms=1000)
        try:
            free = shutil.disk_usage(k.tmp).free
            if free < 6 << 30:
                self.skipTest(f"needs 6 GiB free on {k.tmp}, has {free >> 20} MiB")
            # Under ASan freed blocks sit in a 256 MiB quarantine by default:
            # keep it small so that the peak measures Cairn, not ASan.
            asan = os.environ.get("ASAN_OPTIONS")
            os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=16"
            try:
                k.start()
            finally:
                if asan is None:
                    del os.environ["ASAN_OPTIONS"]
                else:
                    os.environ["ASAN_OPTIONS"] = asan
            cl = Client(k, self)
            run = cl.new_run()
            # warm up the path (first allocations of an 8 MiB chunk each way)
            cl.put(run, "warm", os.urandom(CHUNK))
            cl.get(run, "warm")
            hwm0 = vm_hwm_kib(k.proc.pid)
            base = bytearray(random.Random(42).randbytes(CHUNK))
            want = hasher()

            def chunks():
                for i in range(self.SIZE // CHUNK):
                    base[:8] = i.to_bytes(8, "little")  # every chunk differs
                    c = bytes(base)
                    want.update(c)
                    yield c

            t0 = time.monotonic()
            a = cl.put_chunks(run, "big/2gib.bin", chunks())
            t1 = time.monotonic()
            self.assertEqual(a["size"], self.SIZE)
            self.assertEqual(a["hash"], want.hexdigest())
            got, off = hasher(), 0
            i = 0
            while True:
                r = cl.art("get_artifact", {"run_id": run, "path": "big/2gib.bin",
                                            "offset": off})
                base[:8] = i.to_bytes(8, "little")
                if r["data"] != base:
                    self.fail(f"chunk {i} differs")
                got.update(r["data"])
                off += len(r["data"])
                i += 1
                if r["done"]:
                    break
            t2 = time.monotonic()
            self.assertEqual(off, self.SIZE)
            self.assertEqual(got.hexdigest(), want.hexdigest())
            self.assertEqual(r["hash"], want.hexdigest())
            hwm1 = vm_hwm_kib(k.proc.pid)
            r = cl.call("artifacts", "verify_artifact", {"run_id": run, "path": "big/2gib.bin"},
                        timeout=120)
            self.assertEqual(r, {"ok": True, "hash": want.hexdigest(), "hash_alg": "sha256"})
            t3 = time.monotonic()
            growth = (hwm1 - hwm0) / 1024
            print(f"\n2 GiB: upload {t1 - t0:.1f} s ({self.SIZE / MiB / (t1 - t0):.0f} MiB/s), "
                  f"download {t2 - t1:.1f} s ({self.SIZE / MiB / (t2 - t1):.0f} MiB/s), "
                  f"verify {t3 - t2:.1f} s; "
                  f"cairnd VmHWM {hwm0 / 1024:.0f} -> {hwm1 / 1024:.0f} MiB "
                  f"(+{growth:.0f} MiB)", file=sys.stderr)
            self.assertLess(growth, 200, "cairnd's peak RSS grew by more than 200 MiB")
            cl.close()
        finally:
            k.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
