"""MLflow's artifact proxy through the HTTP gateway, the large and the
multipart way: the routes mlflow/store/artifact/http_artifact_repo.py uses
for a multipart upload (mpu/create with num_parts; a PUT of each part to
the url the create answered, with its headers, in parallel threads and out
of order, the etag read from the answer's ETag header; mpu/complete with
the parts; mpu/abort), a part cut off mid-body and sent again, parts that
survive a restart of cairnd, the refusals (missing part, wrong etag,
unknown upload, bad part numbers, a deleted run), and a 1 GiB file through
the proxy both ways, streamed, with the gateway in process mode and its
memory measured (128 MiB in a sanitizer build)."""
import concurrent.futures
import hashlib
import http.client
import json
import os
import random
import socket
import struct
import sys
import threading
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from cairn_harness import BUILD, Kernel, free_port, wait_for  # noqa: E402
from test_gateway import GatewayKernel  # noqa: E402

ART = "/api/2.0/mlflow-artifacts/artifacts"
MPU = "/api/2.0/mlflow-artifacts/mpu"
MIB = 1 << 20


def sanitized():
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return "CAIRN_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


class Proxy:
    """HTTP helpers against the gateway on cls.port."""

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def req(self, method, path, body=None, headers=None, raw=None):
        """(status, parsed JSON or text, headers) on a fresh connection."""
        data = raw if raw is not None else (json.dumps(body).encode()
                                            if body is not None else None)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        c = self.conn()
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read().decode(errors="replace")
            try:
                return r.status, json.loads(text), r
            except ValueError:
                return r.status, text, r
        finally:
            c.close()

    def new_run(self, name):
        st, b, _ = self.req("POST", "/api/2.0/mlflow/experiments/create", {"name": name})
        self.assertEqual(st, 200, b)
        exp = b["experiment_id"]
        st, b, _ = self.req("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": exp})
        self.assertEqual(st, 200, b)
        return exp, b["run"]["info"]["run_id"]

    def create(self, exp, run, local, num_parts, dir_=None):
        tail = f"{exp}/{run}/artifacts" + (f"/{dir_}" if dir_ else "")
        return self.req("POST", f"{MPU}/create/{tail}",
                        {"path": local, "num_parts": num_parts})

    def complete(self, exp, run, local, upload_id, parts, dir_=None):
        tail = f"{exp}/{run}/artifacts" + (f"/{dir_}" if dir_ else "")
        return self.req("POST", f"{MPU}/complete/{tail}",
                        {"path": local, "upload_id": upload_id, "parts": parts})

    def abort(self, exp, run, local, upload_id, dir_=None):
        tail = f"{exp}/{run}/artifacts" + (f"/{dir_}" if dir_ else "")
        return self.req("POST", f"{MPU}/abort/{tail}",
                        {"path": local, "upload_id": upload_id})

    def put_part(self, cred, data):
        """What http_artifact_repo._upload_part does: PUT the credential's
        url with its headers; the part's etag is the ETag header."""
        u = urllib.parse.urlsplit(cred["url"])
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        try:
            c.request("PUT", u.path, body=data, headers=cred.get("headers") or {})
            r = c.getresponse()
            text = r.read().decode(errors="replace")
            return r.status, r.getheader("ETag", ""), text
        finally:
            c.close()

    def put_parts(self, creds, datas, order=None):
        """Every part in parallel threads, in the given order; {number: etag}."""
        order = order or list(range(len(creds)))
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            futs = {pool.submit(self.put_part, creds[i], datas[i]): creds[i]["part_number"]
                    for i in order}
            out = {}
            for f in concurrent.futures.as_completed(futs):
                st, etag, text = f.result()
                self.assertEqual(st, 200, text)
                out[futs[f]] = etag
        return out

    def get_sha(self, path):
        c = self.conn()
        try:
            c.request("GET", path)
            r = c.getresponse()
            h, n = hashlib.sha256(), 0
            while True:
                b = r.read(MIB)
                if not b:
                    break
                h.update(b)
                n += len(b)
            return r.status, n, h.hexdigest()
        finally:
            c.close()

    def upload_dir(self, upload_id):
        return os.path.join(self.k.state, "artifacts", "mpu", upload_id)


class Multipart(Proxy, unittest.TestCase):
    """The multipart routes, the gateway in process mode."""

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.k = GatewayKernel("process", cls.port).start()

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def test_windows_side_by_side(self):
        """Uploads and downloads of several 4 MiB ranges each, more at once
        than the gateway has threads (so that some share a thread and its
        bus client), each keeping its window of requests in flight on a
        client of its own: every file comes back whole, none mixed with
        another; a reader that takes its bytes slowly meanwhile gets its
        own bytes too."""
        exp, run = self.new_run("windows")
        n, size = 12, 13 * MIB + 4097
        datas = [random.Random(i).randbytes(size) for i in range(n)]

        def put(i):
            return self.req("PUT", f"{ART}/{exp}/{run}/artifacts/w/{i}.bin", raw=datas[i],
                            headers={"Content-Type": "application/octet-stream"})[:2]

        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
            self.assertEqual(list(pool.map(put, range(n))), [(200, {})] * n)

        def slow(i):
            c = self.conn()
            try:
                c.request("GET", f"{ART}/{exp}/{run}/artifacts/w/{i}.bin")
                r = c.getresponse()
                h = hashlib.sha256()
                while True:
                    b = r.read(MIB)
                    if not b:
                        break
                    h.update(b)
                    threading.Event().wait(0.02)
                return r.status, h.hexdigest()
            finally:
                c.close()

        with concurrent.futures.ThreadPoolExecutor(max_workers=n + 1) as pool:
            slow_f = pool.submit(slow, 0)
            got = list(pool.map(lambda i: self.get_sha(f"{ART}/{exp}/{run}/artifacts/w/{i}.bin"),
                                range(n)))
            self.assertEqual(slow_f.result(), (200, hashlib.sha256(datas[0]).hexdigest()))
        self.assertEqual(got, [(200, size, hashlib.sha256(d).hexdigest()) for d in datas])

    def test_mlflow_multipart_flow(self):
        exp, run = self.new_run("mpu-flow")
        chunk = 5 * MIB + 17
        data = os.urandom(4 * chunk + 1234)  # 5 parts, the last a short one
        datas = [data[i:i + chunk] for i in range(0, len(data), chunk)]
        st, b, _ = self.create(exp, run, "/home/me/out/weights.bin", len(datas), "models")
        self.assertEqual(st, 200, b)
        upload_id, creds = b["upload_id"], b["credentials"]
        self.assertEqual([c["part_number"] for c in creds], [1, 2, 3, 4, 5])
        for c in creds:
            self.assertTrue(c["url"].startswith(f"http://127.0.0.1:{self.port}{MPU}/part/"),
                            c)
        order = list(range(len(datas)))
        random.Random(7).shuffle(order)
        etags = self.put_parts(creds, datas, order)
        for i, d in enumerate(datas):  # the etag is the part's SHA-256, quoted
            self.assertEqual(etags[i + 1], f'"{hashlib.sha256(d).hexdigest()}"')
        parts = sorted(({"part_number": n, "etag": e, "url": creds[n - 1]["url"]}
                        for n, e in etags.items()), key=lambda p: p["part_number"])
        st, b, _ = self.complete(exp, run, "/home/me/out/weights.bin", upload_id, parts,
                                 "models")
        self.assertEqual((st, b), (200, {}))
        path = f"{ART}/{exp}/{run}/artifacts/models/weights.bin"
        self.assertEqual(self.get_sha(path),
                         (200, len(data), hashlib.sha256(data).hexdigest()))
        st, b, _ = self.req("GET", f"{ART}?path={exp}/{run}/artifacts/models")
        self.assertEqual(st, 200, b)
        self.assertEqual([(f["path"], f["file_size"]) for f in b["files"]],
                         [("weights.bin", len(data))])
        # the parts are gone with the upload; a retried complete is answered
        # as the first was
        self.assertFalse(os.path.exists(self.upload_dir(upload_id)))
        st, b, _ = self.complete(exp, run, "/home/me/out/weights.bin", upload_id, parts,
                                 "models")
        self.assertEqual((st, b), (200, {}))
        # the file at the root of the run's artifacts (no DIR), one part
        st, b, _ = self.create(exp, run, "small.txt", 1)
        self.assertEqual(st, 200, b)
        etags = self.put_parts(b["credentials"], [b"hello"])
        st, b2, _ = self.complete(exp, run, "small.txt", b["upload_id"],
                                  [{"part_number": 1, "etag": etags[1]}])
        self.assertEqual(st, 200, b2)
        self.assertEqual(self.get_sha(f"{ART}/{exp}/{run}/artifacts/small.txt")[2],
                         hashlib.sha256(b"hello").hexdigest())

    def test_workspace(self):
        """Under /ws/NAME the parts' urls keep the prefix; another
        workspace does not see the upload."""
        ws = "/ws/team-mpu"
        st, b, _ = self.req("POST", ws + "/api/2.0/mlflow/experiments/create",
                            {"name": "mpu-ws"})
        self.assertEqual(st, 200, b)
        exp = b["experiment_id"]
        st, b, _ = self.req("POST", ws + "/api/2.0/mlflow/runs/create",
                            {"experiment_id": exp})
        run = b["run"]["info"]["run_id"]
        tail = f"{exp}/{run}/artifacts"
        st, b, _ = self.req("POST", f"{ws}{MPU}/create/{tail}", {"path": "w.bin",
                                                                "num_parts": 2})
        self.assertEqual(st, 200, b)
        creds = b["credentials"]
        self.assertTrue(creds[0]["url"].startswith(f"http://127.0.0.1:{self.port}{ws}{MPU}"),
                        creds[0])
        # the default workspace knows neither the run nor the upload
        part = creds[0]["url"].replace(ws, "")
        self.assertEqual(self.put_part({"url": part}, b"x")[0], 404)
        etags = self.put_parts(creds, [b"one", b"two"])
        parts = [{"part_number": n, "etag": etags[n]} for n in (1, 2)]
        st, b2, _ = self.req("POST", f"{MPU}/complete/{tail}",
                             {"path": "w.bin", "upload_id": b["upload_id"], "parts": parts})
        self.assertEqual(st, 404, b2)
        st, b2, _ = self.req("POST", f"{ws}{MPU}/complete/{tail}",
                             {"path": "w.bin", "upload_id": b["upload_id"], "parts": parts})
        self.assertEqual((st, b2), (200, {}))
        self.assertEqual(self.get_sha(f"{ws}{ART}/{tail}/w.bin")[2],
                         hashlib.sha256(b"onetwo").hexdigest())

    def cut_part(self, cred, data, sent):
        """A part's PUT that stops after `sent` bytes of its body: the
        client goes away (its socket closed)."""
        u = urllib.parse.urlsplit(cred["url"])
        s = socket.create_connection((u.hostname, u.port), timeout=30)
        try:
            head = (f"PUT {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n").encode()
            s.sendall(head + data[:sent])
        finally:
            s.close()

    def staging(self, upload_id):
        try:
            return [n for n in os.listdir(self.upload_dir(upload_id)) if ".tmp-" in n]
        except FileNotFoundError:
            return []

    def test_resumed_multipart_upload(self):
        """Parts 1 and 3 are in; cairnd restarts; part 2's PUT is cut off
        mid-body, then sent again; part 3 is sent again with other bytes
        (the last one wins); complete puts the file together."""
        exp, run = self.new_run("mpu-resume")
        chunk = 9 * MIB
        datas = [os.urandom(chunk), os.urandom(chunk), os.urandom(3 * MIB)]
        st, b, _ = self.create(exp, run, "ckpt.pt", 3)
        self.assertEqual(st, 200, b)
        upload_id, creds = b["upload_id"], b["credentials"]
        etags = self.put_parts(creds, datas, [2, 0])
        # acknowledged parts survive a restart of cairnd (and of the gateway)
        self.k.stop()
        self.k.start()
        self.cut_part(creds[1], datas[1], 5 * MIB)
        # the cut PUT's staging file goes (cancel, or the restart's sweep)
        wait_for(lambda: not self.staging(upload_id), what="the cut part's staging file")
        datas[2] = os.urandom(2 * MIB + 5)
        etags.update(self.put_parts(creds, datas, [1, 2]))
        parts = [{"part_number": n, "etag": etags[n], "url": creds[n - 1]["url"]}
                 for n in (1, 2, 3)]
        st, b, _ = self.complete(exp, run, "ckpt.pt", upload_id, parts)
        self.assertEqual((st, b), (200, {}))
        whole = b"".join(datas)
        self.assertEqual(self.get_sha(f"{ART}/{exp}/{run}/artifacts/ckpt.pt"),
                         (200, len(whole), hashlib.sha256(whole).hexdigest()))

    def test_abort_frees(self):
        exp, run = self.new_run("mpu-abort")
        st, b, _ = self.create(exp, run, "x.bin", 2)
        upload_id, creds = b["upload_id"], b["credentials"]
        etags = self.put_parts(creds[:1], [os.urandom(MIB)])
        self.assertTrue(os.path.isdir(self.upload_dir(upload_id)))
        st, b, _ = self.abort(exp, run, "x.bin", upload_id)
        self.assertEqual((st, b), (200, {}))
        self.assertFalse(os.path.exists(self.upload_dir(upload_id)))
        st, b, _ = self.complete(exp, run, "x.bin", upload_id,
                                 [{"part_number": 1, "etag": etags[1]}])
        self.assertEqual((st, b["error_code"]), (404, "RESOURCE_DOES_NOT_EXIST"), b)
        st, b, _ = self.abort(exp, run, "x.bin", upload_id)
        self.assertEqual((st, b["error_code"]), (404, "RESOURCE_DOES_NOT_EXIST"), b)
        st, etag, text = self.put_part(creds[1], b"late")
        self.assertEqual(st, 404, text)
        st, b, _ = self.req("GET", f"{ART}/{exp}/{run}/artifacts/x.bin")
        self.assertEqual(st, 404, b)

    def assertRefused(self, got, st, code, words=""):
        status, b = got[0], got[1]
        self.assertEqual((status, b.get("error_code")), (st, code), b)
        self.assertIn(words, b["message"])

    def test_errors(self):
        exp, run = self.new_run("mpu-errors")
        bad = "INVALID_PARAMETER_VALUE"
        for n in (0, 10001, "x"):
            self.assertRefused(self.create(exp, run, "f.bin", n), 400, bad, "num_parts")
        st, b, _ = self.create(exp, run, "f.bin", 2)
        self.assertEqual(st, 200, b)
        upload_id, creds = b["upload_id"], b["credentials"]
        one = os.urandom(1000)
        etags = self.put_parts(creds[:1], [one])
        # missing part: never uploaded, or not listed
        parts = [{"part_number": 1, "etag": etags[1]}, {"part_number": 2, "etag": etags[1]}]
        self.assertRefused(self.complete(exp, run, "f.bin", upload_id, parts), 400, bad,
                           "part 2")
        self.assertRefused(self.complete(exp, run, "f.bin", upload_id, parts[:1]), 400, bad,
                           "part 2 of 2 is missing")
        # wrong etag
        etags.update(self.put_parts(creds[1:], [b"two"]))
        wrong = [{"part_number": 1, "etag": '"' + "0" * 64 + '"'},
                 {"part_number": 2, "etag": etags[2]}]
        self.assertRefused(self.complete(exp, run, "f.bin", upload_id, wrong), 400, bad,
                           "etag")
        self.assertRefused(self.complete(exp, run, "f.bin", upload_id,
                                         [{"part_number": 1, "etag": "nonsense"},
                                          {"part_number": 2, "etag": etags[2]}]), 400, bad)
        self.assertRefused(self.complete(exp, run, "f.bin", upload_id,
                                         [{"part_number": 1, "etag": etags[1]}] * 2), 400,
                           bad, "twice")
        self.assertRefused(self.complete(exp, run, "other.bin", upload_id,
                                         [{"part_number": 1, "etag": etags[1]},
                                          {"part_number": 2, "etag": etags[2]}]), 400, bad)
        # part numbers 0, 10001 and past num_parts; ids that are no upload
        base = creds[0]["url"].rsplit("/", 1)[0]
        for num, st in (("0", 400), ("10001", 400), ("3", 400), ("01", 400), ("x", 400)):
            got = self.put_part({"url": f"{base}/{num}"}, b"abc")
            self.assertEqual(got[0], st, (num, got))
            self.assertEqual(json.loads(got[2])["error_code"], bad, got)
        unknown = f"http://127.0.0.1:{self.port}{MPU}/part/{'ab' * 16}/1"
        got = self.put_part({"url": unknown}, b"abc")
        self.assertEqual((got[0], json.loads(got[2])["error_code"]),
                         (404, "RESOURCE_DOES_NOT_EXIST"), got)
        got = self.put_part({"url": f"http://127.0.0.1:{self.port}{MPU}/part/zz/1"}, b"abc")
        self.assertEqual(got[0], 404, got)
        self.assertRefused(self.complete(exp, run, "f.bin", "cd" * 16,
                                         [{"part_number": 1, "etag": etags[1]}]), 404,
                           "RESOURCE_DOES_NOT_EXIST")
        self.assertRefused(self.req("POST", f"{MPU}/create/nonsense", {"path": "a"})[:2],
                           404, "RESOURCE_DOES_NOT_EXIST")
        # the good list still completes after all that
        good = [{"part_number": 1, "etag": etags[1]}, {"part_number": 2, "etag": etags[2]}]
        st, b, _ = self.complete(exp, run, "f.bin", upload_id, good)
        self.assertEqual((st, b), (200, {}))
        self.assertEqual(self.get_sha(f"{ART}/{exp}/{run}/artifacts/f.bin")[2],
                         hashlib.sha256(one + b"two").hexdigest())
        # a deleted run takes no part (and its upload goes), nor a new upload
        st, b, _ = self.create(exp, run, "g.bin", 2)
        upload_id, creds = b["upload_id"], b["credentials"]
        self.put_parts(creds[:1], [b"first"])
        st, b, _ = self.req("POST", "/api/2.0/mlflow/runs/delete", {"run_id": run})
        self.assertEqual(st, 200, b)
        got = self.put_part(creds[1], b"second")
        self.assertEqual(got[0], 400, got)
        self.assertIn("deleted", json.loads(got[2])["message"])
        self.assertFalse(os.path.exists(self.upload_dir(upload_id)))
        self.assertRefused(self.create(exp, run, "h.bin", 1), 400, bad, "deleted")


class StoreVerbs(unittest.TestCase):
    """The artifact store's multipart verbs on the bus (what the gateway
    sends): chunks of a part in order, cancel, the limits, and the idle
    sweeps (upload_idle 1 s for a part's PUT, multipart_idle 2 s for a
    whole upload); durability power (parts fsync'ed)."""

    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=(
            "  tracking:\n    plugin: storage\n    mode: inproc\n"
            "  artifacts:\n    plugin: storage\n    mode: inproc\n"
            "    settings:\n      upload_idle: 1\n      multipart_idle: 2\n"
            "      durability: power\n"),
            heartbeat_ms=500).start()
        cls.c = cls.k.client()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    def call(self, verb, body, svc="artifacts"):
        h, b = self.c.call(svc, verb, body)
        return h["st"], b, h

    def run_id(self):
        st, b, _ = self.call("create_experiment", {"name": f"e{random.random()}"}, "tracking")
        st, b, _ = self.call("create_run", {"experiment_id": b["experiment_id"]}, "tracking")
        return b["run"]["info"]["run_id"]

    def mpu_dir(self, upload_id):
        return os.path.join(self.k.state, "artifacts", "mpu", upload_id)

    def test_chunks_cancel_limits(self):
        run = self.run_id()
        st, b, h = self.call("create_multipart", {"run_id": run, "path": "a/b.bin",
                                                  "num_parts": 2})
        self.assertEqual(st, 200, h)
        up = b["upload_id"]
        st, b, h = self.call("upload_part", {"upload_id": up, "part_number": 1, "offset": 0,
                                             "data": b"x" * 1000})
        self.assertEqual((st, b["offset"]), (200, 1000), h)
        pid = b["part_id"]
        st, b, h = self.call("upload_part", {"upload_id": up, "part_number": 1, "offset": 5,
                                             "part_id": pid, "data": b"y"})
        self.assertEqual((st, b["expected_offset"]), (409, 1000), h)
        self.assertIn("expected offset 1000", h["err"])
        st, b, h = self.call("upload_part", {"upload_id": up, "part_number": 1,
                                             "offset": 1000, "part_id": pid, "data": b"z",
                                             "done": True})
        self.assertEqual((st, b["size"]), (200, 1001), h)
        self.assertEqual(b["etag"], hashlib.sha256(b"x" * 1000 + b"z").hexdigest())
        st, b, h = self.call("upload_part", {"upload_id": up, "part_number": 2, "offset": 0,
                                             "data": b"w" * (8 * MIB + 1)})
        self.assertEqual(st, 413, h)
        st, b, h = self.call("upload_part", {"upload_id": up, "part_number": 2, "offset": 0,
                                             "data": b"w"})
        pid = b["part_id"]
        self.assertEqual(len([n for n in os.listdir(self.mpu_dir(up)) if ".tmp-" in n]), 1)
        st, b, h = self.call("upload_part", {"upload_id": up, "part_number": 2,
                                             "part_id": pid, "cancel": True})
        self.assertEqual((st, b), (200, {"cancelled": True}), h)
        self.assertEqual([n for n in os.listdir(self.mpu_dir(up)) if ".tmp-" in n], [])
        st, b, h = self.call("upload_part", {"upload_id": up, "part_number": 2, "offset": 1,
                                             "part_id": pid, "data": b"w"})
        self.assertEqual(st, 404, h)
        st, b, h = self.call("upload_part", {"upload_id": up, "part_number": 2, "offset": 0,
                                             "data": b"two", "done": True})
        self.assertEqual(st, 200, h)
        parts = [{"part_number": 2, "etag": b["etag"]},
                 {"part_number": 1, "etag": hashlib.sha256(b"x" * 1000 + b"z").hexdigest()}]
        st, b, h = self.call("complete_multipart", {"run_id": run, "upload_id": up,
                                                    "parts": parts})
        whole = b"x" * 1000 + b"z" + b"two"
        self.assertEqual((st, b["done"], b["artifact"]["size"], b["artifact"]["hash"]),
                         (200, True, len(whole), hashlib.sha256(whole).hexdigest()), h)
        st, b, h = self.call("get_artifact", {"run_id": run, "path": "a/b.bin"})
        self.assertEqual((st, b["data"]), (200, whole), h)
        # a path may not be both a file and a directory
        st, b, h = self.call("put_artifact", {"run_id": run, "path": "d/f", "offset": 0,
                                              "data": b"f", "done": True})
        self.assertEqual(st, 200, h)
        st, b, h = self.call("create_multipart", {"run_id": run, "path": "d", "num_parts": 1})
        self.assertEqual(st, 409, h)
        st, b, h = self.call("create_multipart", {"run_id": run, "path": "../x",
                                                  "num_parts": 1})
        self.assertEqual(st, 400, h)

    def test_idle_parts_and_uploads_go(self):
        run = self.run_id()
        st, b, h = self.call("create_multipart", {"run_id": run, "path": "idle.bin",
                                                  "num_parts": 1})
        up = b["upload_id"]
        st, b, h = self.call("upload_part", {"upload_id": up, "part_number": 1, "offset": 0,
                                             "data": b"abandoned"})
        self.assertEqual(st, 200, h)
        # a PUT that stops: its staging file goes after upload_idle; the
        # upload, idle, after multipart_idle
        wait_for(lambda: not any(".tmp-" in n for n in os.listdir(self.mpu_dir(up))),
                 what="the idle part's staging file")
        wait_for(lambda: not os.path.exists(self.mpu_dir(up)), what="the idle upload")
        st, b, h = self.call("abort_multipart", {"run_id": run, "upload_id": up})
        self.assertEqual(st, 404, h)


class ShortTtlKernel(GatewayKernel):
    """The gateway's bus requests with a short ttl: a large file's
    complete outlasts one, so the store answers {done: false} and the
    gateway asks again."""

    TTL_MS = 8000

    def _new_ports(self):
        super()._new_ports()
        with open(self.conf, "a") as f:
            f.write(f"      ttl_ms: {self.TTL_MS}\n")


class Large(Proxy, unittest.TestCase):
    """A 1 GiB file through the proxy, streamed both ways (a single PUT,
    then multipart), hashed at both ends; the gateway runs as its own
    process, whose resident memory must grow by less than 64 MiB."""

    SIZE = (128 if sanitized() else 1024) * MIB
    BLOCK = 4 * MIB

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.k = ShortTtlKernel("process", cls.port).start()

    def completes(self):
        """How many complete_multipart requests the artifacts service answered."""
        st, text, _ = self.req("GET", "/metrics")
        for fam in text_string_to_metric_families(text):
            for smp in fam.samples:
                if (smp.name == "cairn_requests_total" and smp.labels.get("verb") ==
                        "complete_multipart" and smp.labels.get("class") == "2xx"):
                    return smp.value
        return 0

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def status(self, pid, key):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        raise AssertionError(f"no {key} for {pid}")

    def blocks(self, size, seed, h):
        """size bytes, made a block at a time (no two blocks alike), hashed
        into h as they go."""
        base = random.Random(seed).randbytes(self.BLOCK)
        for i in range(0, size, self.BLOCK):
            b = (struct.pack("<QQ", seed, i) + base[16:])[:min(self.BLOCK, size - i)]
            h.update(b)
            yield b

    def test_1gib_through_the_proxy(self):
        exp, run = self.new_run("large")
        pid = self.k.plugin("gateway")["pid"]
        self.assertGreater(pid, 0)
        # warm up: the gateway's threads and buffers are made
        st, b, _ = self.req("PUT", f"{ART}/{exp}/{run}/artifacts/warm", raw=os.urandom(9 * MIB),
                            headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(st, 200, b)
        self.assertEqual(self.get_sha(f"{ART}/{exp}/{run}/artifacts/warm")[0], 200)
        base_rss = self.status(pid, "VmRSS")
        peak = [base_rss]
        stop = threading.Event()

        def sample():
            while not stop.wait(0.05):
                try:
                    peak[0] = max(peak[0], self.status(pid, "VmRSS"))
                except (OSError, AssertionError):
                    return

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            # one PUT, streamed
            sent = hashlib.sha256()
            c = self.conn()
            c.request("PUT", f"{ART}/{exp}/{run}/artifacts/big/one.bin",
                      body=self.blocks(self.SIZE, 1, sent),
                      headers={"Content-Type": "application/octet-stream",
                               "Content-Length": str(self.SIZE)})
            r = c.getresponse()
            text = r.read().decode()
            c.close()
            self.assertEqual(r.status, 200, text)
            self.assertEqual(self.get_sha(f"{ART}/{exp}/{run}/artifacts/big/one.bin"),
                             (200, self.SIZE, sent.hexdigest()))
            single = max(peak[0], self.status(pid, "VmHWM")) - base_rss
            # multipart: 8 parts, 4 at a time, each streamed
            n = 8
            part = self.SIZE // n
            st, b, _ = self.create(exp, run, "two.bin", n, "big")
            self.assertEqual(st, 200, b)
            creds = b["credentials"]
            hashes = {}

            def put(i):
                h = hashlib.sha256()
                u = urllib.parse.urlsplit(creds[i]["url"])
                c = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
                try:
                    c.request("PUT", u.path, body=self.blocks(part, 100 + i, h),
                              headers={"Content-Length": str(part)})
                    r = c.getresponse()
                    r.read()
                    hashes[i] = h.hexdigest()
                    return r.status, r.getheader("ETag")
                finally:
                    c.close()

            with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
                got = list(pool.map(put, range(n)))
            self.assertEqual([g[0] for g in got], [200] * n)
            self.assertEqual([g[1] for g in got], [f'"{hashes[i]}"' for i in range(n)])
            before = self.completes()
            st, b, _ = self.complete(exp, run, "two.bin", b["upload_id"],
                                     [{"part_number": i + 1, "etag": got[i][1]}
                                      for i in range(n)], "big")
            self.assertEqual((st, b), (200, {}))
            polls = self.completes() - before  # 1 GiB may take past one ttl
            self.assertGreaterEqual(polls, 1)
            whole = hashlib.sha256()
            for i in range(n):
                for _ in self.blocks(part, 100 + i, whole):
                    pass
            self.assertEqual(self.get_sha(f"{ART}/{exp}/{run}/artifacts/big/two.bin"),
                             (200, part * n, whole.hexdigest()))
        finally:
            stop.set()
            t.join()
        hwm = self.status(pid, "VmHWM")
        grew = max(peak[0], hwm) - base_rss
        sys.stderr.write(f"the gateway's resident memory grew by {single >> 20} MiB "
                         f"(one PUT and its GET), {grew >> 20} MiB (with multipart) "
                         f"for {self.SIZE >> 20} MiB; complete asked {polls:.0f} times\n")
        if not sanitized():  # ASan's quarantine keeps freed buffers resident
            self.assertLess(single, 64 * MIB)
            self.assertLess(grew, 64 * MIB)


if __name__ == "__main__":
    unittest.main()
