"""Pinned blobs seen by their owner (storage plugin, role `artifacts`,
plugins/storage/pinview.c): read_pinned (ranges of a blob), sniff_pinned (a
blob read as a CSV table) and materialize_pinned (a read-only directory of
hard links), each only for the owner that pins the blob, in the pin's
workspace; unpin_artifacts removes the owner's view. Files are uploaded
with the Python SDK (Tracker.log_artifacts) and pinned with pin_artifacts,
as the registry does. Every field of every verb is checked for absence,
emptiness, length and type. Storage runs in-process and as a process."""
import hashlib
import os
import random
import stat
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CAIRN_SOURCE_DIR") or os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
sys.path.insert(0, HERE)
import cairn  # noqa: E402
import cairn.tracking  # noqa: E402
from cairn_harness import Kernel  # noqa: E402

MiB = 1 << 20
CHUNK = 8 * MiB
OWNER = "registry:models:7:1"


def services(mode):
    return (f"  tracking:\n    plugin: storage\n    mode: {mode}\n"
            f"  artifacts:\n    plugin: storage\n    mode: {mode}\n")


def sha(data):
    return hashlib.sha256(data).hexdigest()


CSV = ("id,name,score,ok,note\r\n" +
       "".join(f'{i},"n,{i}",{i / 4},{"true" if i % 2 else "false"},{"" if i % 3 else "x"}\r\n'
               for i in range(1000))).encode()
# Over 8 MiB (two turns of the sniff's slices), TAB-separated, no header, a
# quoted line end.
BIG_CSV = "".join(f'{i}\t{i * 0.5}\t"a\nb {i}"\n' for i in range(350_000)).encode()
NOT_CSV = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256))
RAGGED = b"a;b;c\n1;2;3\n4;5\n"
BIG = random.Random(7).randbytes(CHUNK + 4321)
TREE = {"data/train.csv": CSV, "data/big.tsv": BIG_CSV, "data/deep/x/notes.bin": NOT_CSV,
        "ragged.csv": RAGGED, "weights.bin": BIG, "empty.txt": b""}


class PinViewsBase:
    MODE = "inproc"

    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=services(cls.MODE), heartbeat_ms=500)
        try:
            cls.k.start()
            cls.c = cls.k.client()
            cls.pinned = cls.upload_and_pin(None, OWNER)
        except BaseException:
            cls.k.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    @classmethod
    def upload_and_pin(cls, ws, owner):
        """TREE uploaded to a new run of workspace ws with the Python SDK,
        pinned for owner; the pin's files by path."""
        t = cairn.Tracker(endpoint=cls.k.endpoint, workspace=ws)
        try:
            with tempfile.TemporaryDirectory() as d:
                for rel, data in TREE.items():
                    os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
                    with open(os.path.join(d, rel), "wb") as f:
                        f.write(data)
                with t.start_run(experiment=f"pins-{os.urandom(4).hex()}") as run:
                    t.log_artifacts(d, "model")
                    run_id = run.run_id
        finally:
            t.close()
        if not ws:
            cls.run_id = run_id
        hdr = {"ws": ws} if ws else {}
        h, b = cls.c.call("artifacts", "pin_artifacts",
                          {"run_id": run_id, "path": "model", "owner": owner}, **hdr)
        assert h["st"] == 200, h
        return {f["path"]: f for f in b["files"]}

    def pin(self, owner):
        """The default workspace's run pinned again, for owner."""
        b = self.call("pin_artifacts", {"run_id": self.run_id, "path": "model",
                                        "owner": owner})
        return {f["path"]: f for f in b["files"]}

    def call(self, verb, body, st=200, code=None, **hdr):
        h, b = self.c.call("artifacts", verb, body, **hdr)
        self.assertEqual(h["st"], st, (verb, h))
        if code:
            self.assertEqual(h["code"], code, h)
        return b if st < 400 else h

    def ref(self, path, owner=OWNER):
        f = self.pinned[path]
        return {"owner": owner, "hash": f["hash"], "hash_alg": f["hash_alg"]}

    # -- read_pinned -----------------------------------------------------------

    def test_read_whole_files(self):
        self.assertEqual(set(self.pinned), set(TREE))
        for path, data in TREE.items():
            self.assertEqual(self.pinned[path]["hash"], sha(data))
            r = self.call("read_pinned", self.ref(path))
            if len(data) <= CHUNK:
                self.assertEqual(r, {"data": data, "size": len(data), "offset": 0})

    def test_read_ranges(self):
        ref = self.ref("weights.bin")
        r = self.call("read_pinned", ref)  # length defaults to 8 MiB
        self.assertEqual((r["data"], r["size"], r["offset"]), (BIG[:CHUNK], len(BIG), 0))
        r = self.call("read_pinned", dict(ref, offset=CHUNK))
        self.assertEqual(r["data"], BIG[CHUNK:])
        r = self.call("read_pinned", dict(ref, offset=100, length=CHUNK * 4))  # capped
        self.assertEqual(r["data"], BIG[100:100 + CHUNK])
        r = self.call("read_pinned", dict(ref, offset=12345, length=777))
        self.assertEqual(r, {"data": BIG[12345:13122], "size": len(BIG), "offset": 12345})
        r = self.call("read_pinned", dict(ref, offset=len(BIG), length=5))
        self.assertEqual(r["data"], b"")
        r = self.call("read_pinned", dict(ref, length=0))
        self.assertEqual(r["data"], b"")
        h = self.call("read_pinned", dict(ref, offset=len(BIG) + 1), 400, "bad_request")
        self.assertIn("past the end", h["err"])
        # a sequential read of a small file, checked at its end
        ref = self.ref("data/train.csv")
        back, off = b"", 0
        while off < len(CSV):
            back += self.call("read_pinned", dict(ref, offset=off, length=1000))["data"]
            off += 1000
        self.assertEqual(back, CSV)

    def test_not_pinned_is_not_found(self):
        # another owner; a blob the owner does not pin; another workspace
        for body, hdr in ((self.ref("empty.txt", owner="registry:models:7:2"), {}),
                          (dict(self.ref("empty.txt"), hash=sha(b"nope")), {}),
                          (dict(self.ref("empty.txt"), hash_alg="blake2b"), {}),
                          (self.ref("empty.txt"), {"ws": "elsewhere"})):
            for verb in ("read_pinned", "sniff_pinned"):
                h = self.call(verb, body, 404, "not_found", **hdr)
                self.assertIn("pins no blob", h["err"])
            h = self.call("materialize_pinned",
                          {"owner": body["owner"],
                           "files": [{"path": "f", "hash": body["hash"],
                                      "hash_alg": body["hash_alg"]}]},
                          404, "not_found", **hdr)
            self.assertIn("files[0]: ", h["err"])

    def test_pins_per_workspace(self):
        # the same owner name in two workspaces: two sets of pins, two views
        owner = "registry:ws:1"
        here = self.pin(owner)["empty.txt"]
        there = self.upload_and_pin("elsewhere", owner)["empty.txt"]
        ref = {"owner": owner, "hash": here["hash"], "hash_alg": here["hash_alg"]}
        self.assertEqual(self.call("read_pinned", ref, ws="elsewhere")["data"], b"")
        v1 = self.call("materialize_pinned", {"owner": owner, "files": [dict(there, path="e")]},
                       ws="elsewhere")["path"]
        v2 = self.call("materialize_pinned", {"owner": owner, "files": [dict(here, path="e")]})
        self.assertNotEqual(v1, v2["path"])
        self.call("unpin_artifacts", {"owner": owner}, ws="elsewhere")
        self.assertFalse(os.path.exists(v1))
        self.assertTrue(os.path.isdir(v2["path"]))  # the default workspace's stays
        self.call("read_pinned", ref)
        self.call("read_pinned", ref, 404, "not_found", ws="elsewhere")
        self.call("unpin_artifacts", {"owner": owner})
        self.assertFalse(os.path.exists(v2["path"]))

    # -- sniff_pinned ----------------------------------------------------------

    def test_sniff_csv(self):
        r = self.call("sniff_pinned", self.ref("data/train.csv"))
        self.assertEqual(r, {
            "rows": 1000, "delimiter": ",", "header": True,
            "columns": [{"name": "id", "type": "int", "nullable": False},
                        {"name": "name", "type": "string", "nullable": False},
                        {"name": "score", "type": "float", "nullable": False},
                        {"name": "ok", "type": "bool", "nullable": False},
                        {"name": "note", "type": "string", "nullable": True}]})

    def test_sniff_large_tsv(self):
        self.assertGreater(len(BIG_CSV), 8 * MiB)
        r = self.call("sniff_pinned", self.ref("data/big.tsv"))
        self.assertEqual(r, {
            "rows": 350_000, "delimiter": "\t", "header": False,
            "columns": [{"name": "col_1", "type": "int", "nullable": False},
                        {"name": "col_2", "type": "float", "nullable": False},
                        {"name": "col_3", "type": "string", "nullable": False}]})

    def test_sniff_not_csv(self):
        h = self.call("sniff_pinned", self.ref("data/deep/x/notes.bin"), 400, "bad_request")
        self.assertIn("NUL byte", h["err"])
        h = self.call("sniff_pinned", self.ref("ragged.csv"), 400, "bad_request")
        self.assertIn("line 3 has 2 fields, but line 1 (the first row) has 3", h["err"])
        h = self.call("sniff_pinned", self.ref("empty.txt"), 400, "bad_request")
        self.assertIn("no CSV rows", h["err"])

    # -- materialize_pinned ----------------------------------------------------

    def files(self, owner=OWNER, prefix=""):
        return [dict(path=prefix + p, hash=f["hash"], hash_alg=f["hash_alg"])
                for p, f in sorted(self.pinned.items())]

    def test_materialize(self):
        r = self.call("materialize_pinned", {"owner": OWNER, "files": self.files()})
        view = r["path"]
        views = os.path.join(self.k.state, "artifacts", "views")
        self.assertEqual(os.path.dirname(view), views)
        key = hashlib.sha256(b"default\0" + OWNER.encode()).hexdigest()
        self.assertEqual(os.path.basename(view), key)
        seen = {}
        for d, dirs, fs in os.walk(view):
            self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o500, d)
            for name in fs:
                p = os.path.join(d, name)
                st = os.stat(p)
                self.assertEqual(stat.S_IMODE(st.st_mode), 0o400, p)
                with open(p, "rb") as f:
                    seen[os.path.relpath(p, view)] = f.read()
                blob = os.path.join(self.k.state, "artifacts", "sha256",
                                    sha(seen[os.path.relpath(p, view)])[:2],
                                    sha(seen[os.path.relpath(p, view)])[2:])
                self.assertEqual(st.st_ino, os.stat(blob).st_ino, p)  # a hard link
        self.assertEqual(seen, TREE)
        # idempotent: the same directory, as it is
        r2 = self.call("materialize_pinned", {"owner": OWNER, "files": self.files()})
        self.assertEqual(r2["path"], view)
        self.assertEqual([n for n in os.listdir(views) if n.startswith(".")], [])

    def test_unpin_removes_the_view(self):
        owner = "registry:models:9:1"
        pinned = self.pin(owner)
        files = [dict(path="m/" + p, hash=f["hash"], hash_alg=f["hash_alg"])
                 for p, f in pinned.items()]
        view = self.call("materialize_pinned", {"owner": owner, "files": files})["path"]
        self.assertTrue(os.path.isfile(os.path.join(view, "m", "weights.bin")))
        r = self.call("unpin_artifacts", {"owner": owner})
        self.assertEqual(r["unpinned"], len(TREE))
        self.assertFalse(os.path.exists(view))
        views = os.path.join(self.k.state, "artifacts", "views")
        self.assertEqual([n for n in os.listdir(views) if n.startswith(".")], [])
        f = pinned["empty.txt"]
        self.call("read_pinned", {"owner": owner, "hash": f["hash"],
                                  "hash_alg": f["hash_alg"]}, 404, "not_found")
        # OWNER's pins of the same blobs are untouched
        self.call("read_pinned", self.ref("weights.bin"))

    def test_materialize_refuses_bad_trees(self):
        f = self.files()
        one = {k: f[0][k] for k in ("hash", "hash_alg")}
        self.pin("registry:bad:2")
        for files, part in (
                ([dict(one, path="a"), dict(one, path="a")], "two files of the view"),
                ([dict(one, path="a"), dict(one, path="a/b")], "under a file"),
                ([dict(one, path="a/b"), dict(one, path="a")], "a directory of another"),
        ):
            h = self.call("materialize_pinned", {"owner": "registry:bad:1", "files": files},
                          404, "not_found")  # not pinned by that owner: checked first
            h = self.call("materialize_pinned", {"owner": "registry:bad:2", "files": files},
                          400, "bad_request")
            self.assertIn(part, h["err"])
        self.call("unpin_artifacts", {"owner": "registry:bad:2"})
        views = os.path.join(self.k.state, "artifacts", "views")
        self.assertEqual([n for n in os.listdir(views) if n.startswith(".")], [])

    # -- validation ------------------------------------------------------------

    def test_field_validation(self):
        ref = self.ref("empty.txt")
        bad_common = [
            ("owner", None, "'owner'"), ("owner", "", "'owner'"),
            ("owner", "o" * 257, "'owner'"), ("owner", 5, "'owner'"),
            ("hash", None, "'hash'"), ("hash", "", "'hash'"), ("hash", "a" * 65, "'hash'"),
            ("hash", "A" * 64, "'hash'"), ("hash", "g" * 64, "'hash'"), ("hash", 5, "'hash'"),
            ("hash_alg", None, "'hash_alg'"), ("hash_alg", "", "'hash_alg'"),
            ("hash_alg", "md5", "'hash_alg'"), ("hash_alg", "s" * 17, "'hash_alg'"),
            ("hash_alg", [], "'hash_alg'"),
        ]
        for verb in ("read_pinned", "sniff_pinned"):
            for field, value, part in bad_common:
                body = dict(ref)
                if value is None:
                    del body[field]
                else:
                    body[field] = value
                h = self.call(verb, body, 400, "bad_request")
                self.assertIn(part, h["err"], (verb, field, value))
        for field, value in (("offset", -1), ("offset", "0"), ("length", -5),
                             ("length", 1.5), ("offset", 2 ** 64 - 1)):
            h = self.call("read_pinned", dict(ref, **{field: value}), 400, "bad_request")
            self.assertIn(f"'{field}'" if value != 2 ** 64 - 1 else "past the end", h["err"])
        h = self.call("read_pinned", None, 400, "bad_request")

        good = {"path": "a", "hash": ref["hash"], "hash_alg": "sha256"}
        for body, part in (
                ({"files": [good]}, "'owner'"),
                ({"owner": "", "files": [good]}, "'owner'"),
                ({"owner": "o" * 257, "files": [good]}, "'owner'"),
                ({"owner": OWNER}, "'files'"),
                ({"owner": OWNER, "files": []}, "'files'"),
                ({"owner": OWNER, "files": "a"}, "'files'"),
                ({"owner": OWNER, "files": [good] * 100_001}, "at most 100000"),
                ({"owner": OWNER, "files": [good, "a"]}, "files[1]: a file must be a map"),
        ):
            h = self.call("materialize_pinned", body, 400, "bad_request")
            self.assertIn(part, h["err"], body if len(str(body)) < 300 else part)
        for path, part in (
                (None, "'path'"), ("", "'path'"), (5, "'path'"), ("/abs", "relative"),
                ("a/../b", "'..'"), ("..", "'..'"), ("a//b", "empty or '.'"),
                ("a/./b", "empty or '.'"), ("a/", "empty or '.'"), ("./a", "empty or '.'"),
                ("a\x00b", "control"), ("a\nb", "control"), ("x" * 1025, "'path'"),
                ("\udcff", None)):
            f = dict(good)
            if path is None:
                del f["path"]
            elif path == "\udcff":
                f["path"] = b"\xff"  # bytes: not a string
                part = "'path'"
            else:
                f["path"] = path
            h = self.call("materialize_pinned", {"owner": OWNER, "files": [good, f]},
                          400, "bad_request")
            self.assertIn("files[1]: ", h["err"], path)
            self.assertIn(part, h["err"], path)
        for field, value in (("hash", "x"), ("hash", None), ("hash_alg", "md5"),
                             ("hash_alg", None), ("hash", 1)):
            f = dict(good)
            if value is None:
                del f[field]
            else:
                f[field] = value
            h = self.call("materialize_pinned", {"owner": OWNER, "files": [f]},
                          400, "bad_request")
            self.assertIn(f"files[0]: ", h["err"])
            self.assertIn(f"'{field}'", h["err"])


class PinViewsInproc(PinViewsBase, unittest.TestCase):
    MODE = "inproc"


class PinViewsProcess(PinViewsBase, unittest.TestCase):
    MODE = "process"


class Sweep(unittest.TestCase):
    """What a crash leaves under views/ (a build cut short, a view renamed on
    its way out) is removed when the store starts; a young build (maybe
    another instance's, in progress) stays."""

    def test_leftovers_go_at_start(self):
        k = Kernel(services=services("inproc"))
        try:
            views = os.path.join(k.state, "artifacts", "views")
            os.makedirs(views)
            for name in (".tmp-old", ".tmp-young", "abcd.drop-0001", "keep"):
                os.makedirs(os.path.join(views, name, "sub"))
                with open(os.path.join(views, name, "sub", "f"), "w") as f:
                    f.write("x")
                os.chmod(os.path.join(views, name, "sub"), 0o500)
            old = os.path.join(views, ".tmp-old")
            os.utime(old, (1, 1))
            k.start()
            self.assertEqual(sorted(os.listdir(views)), [".tmp-young", "keep"])
            self.assertIn("stale temp", k.read_log())
        finally:
            for root, dirs, _ in os.walk(os.path.join(k.state, "artifacts", "views")):
                for d in dirs:
                    os.chmod(os.path.join(root, d), 0o700)
            k.cleanup()


if __name__ == "__main__":
    unittest.main()
