"""A job's code snapshot (sdk/snapshot.h), driven through
build/bin/snapshot_tool, with git itself as the oracle:

- what is kept: random trees with nested .gitignore and .cairnignore files
  (and .git/info/exclude) give the same set of files as
  `git ls-files --others` in the same tree, where each directory's
  .gitignore and .cairnignore are given to git as one file (a .cairnignore
  applies after the .gitignore beside it);
- the hash: the same content in two folders, made in another order with
  other mtimes, hashes the same; a changed byte, execute bit or link target
  changes it; a changed ignored file does not; the manifest written is the
  one hashed, in its documented format;
- the copy: files copied byte for byte, private (0600 / 0700), links kept
  as links and never followed out of the tree, dest inside src skipped;
- git: HEAD's commit and the dirty flag of a real temporary repository
  (clean, modified, ignored untracked file, untracked file, a change
  outside the folder, no commit yet, not a repository);
- limits: files, bytes and path length refused with a 413 naming the
  limit and the file; an unreadable file a 400 naming it; a dest that is
  not empty a 409."""
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

GIT = "/usr/bin/git"
ORACLE = ".oracleignore"  # each directory's .gitignore + .cairnignore, for git


def tool():
    build = os.environ.get("CAIRN_BUILD_DIR")
    if not build:
        raise unittest.SkipTest("CAIRN_BUILD_DIR is not set")
    path = os.path.join(build, "bin", "snapshot_tool")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest(f"{path} is not built")
    return path


def git_env(home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=home, GIT_CONFIG_NOSYSTEM="1", LC_ALL="C",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    return env


NAMES = ["a", "b", "c", "build", "d.txt", "e.py", "f.o", "x y", "sp ", "#h", "!b",
         "[ab]", "q?", "deep", "keep.txt", ".hidden", "\u00e9.txt", "n\\m", "st*r",
         "ab", "ba", "tmp", "Z9"]
SEGMENTS = ["a", "b", "build", "*", "**", "?", "*.txt", "*.o", "[ab]", "[!a]*",
            "[a-c]", "d.txt", "e.py", "x\\ y", "sp\\ ", "\\#h", "\\!b", "\\[ab]",
            "keep.txt", "deep", "[[:alpha:]]*", "\u00e9*", ".hidden", "q\\?", "a*",
            "*b", "n\\\\m", "st\\*r", "[[:digit:]]*", "Z?", "tmp"]


def rand_pattern(rng):
    if rng.random() < 0.08:
        return rng.choice(["# a comment", "", "   ", "#", "\\#h"])
    segs = [rng.choice(SEGMENTS) for _ in range(rng.choice([1, 1, 1, 2, 2, 3]))]
    p = "/".join(segs)
    if rng.random() < 0.2:
        p = "/" + p
    if rng.random() < 0.2:
        p += "/"
    if rng.random() < 0.3:
        p = "!" + p
    if rng.random() < 0.1:
        p += "  "
    return p


def rand_ignore(rng):
    lines = [rand_pattern(rng) for _ in range(rng.randint(1, 5))]
    text = "\n".join(lines)
    if rng.random() < 0.7:
        text += "\n"
    if rng.random() < 0.1:
        text = text.replace("\n", "\r\n")
    return text


def make_tree(rng, root, depth=0):
    """Files, directories and links under root; ignore files here and there;
    returns nothing (git and the snapshot read the same tree)."""
    gi = rand_ignore(rng) if rng.random() < 0.5 else None
    ci = rand_ignore(rng) if rng.random() < 0.35 else None
    for name, text in ((".gitignore", gi), (".cairnignore", ci)):
        if text is not None:
            with open(os.path.join(root, name), "w", newline="") as f:
                f.write(text)
    if gi is not None or ci is not None:
        both = (gi or "")
        if ci is not None:
            both = (both + "\n" if both and not both.endswith("\n") else both) + ci
        with open(os.path.join(root, ORACLE), "w", newline="") as f:
            f.write(both)
    for name in rng.sample(NAMES, rng.randint(1, 6)):
        path = os.path.join(root, name)
        r = rng.random()
        if depth < 3 and r < 0.35:
            os.mkdir(path)
            make_tree(rng, path, depth + 1)
        elif r < 0.42:
            os.symlink(rng.choice(["../outside", "a", "/etc/passwd", "deep"]), path)
        else:
            with open(path, "wb") as f:
                f.write(os.urandom(rng.randint(0, 64)))
            if rng.random() < 0.2:
                os.chmod(path, 0o755)


def all_files(root):
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames + [d for d in dirnames
                                 if os.path.islink(os.path.join(dirpath, d))]:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


class Snapshot(unittest.TestCase):
    def setUp(self):
        self.tool = tool()
        self.tmp = tempfile.mkdtemp(prefix="cairn-snap-")
        self.env = git_env(self.tmp)
        self.n = 0

    def tearDown(self):
        for dirpath, dirnames, _ in os.walk(self.tmp):
            for d in dirnames:  # an unreadable case leaves 000 dirs behind
                p = os.path.join(dirpath, d)
                if not os.path.islink(p):
                    os.chmod(p, 0o700)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def take(self, src, limits=None, dest=None):
        self.n += 1
        dest = dest or self.path(f"dest{self.n}")
        manifest = self.path(f"manifest{self.n}")
        args = [self.tool, "take", src, dest, manifest]
        if limits:
            args += [str(x) for x in limits]
        out = subprocess.run(args, check=True, capture_output=True, timeout=120).stdout
        res = json.loads(out)
        if res["ok"]:
            for f in res["files"]:
                f["path"] = os.fsdecode(bytes.fromhex(f["path"]))
                if f["target"] is not None:
                    f["target"] = os.fsdecode(bytes.fromhex(f["target"]))
            res["dest"], res["manifest"] = dest, manifest
        return res

    def git(self, cwd, *args):
        return subprocess.run([GIT, *args], cwd=cwd, env=self.env, check=True,
                              capture_output=True, timeout=60).stdout

    # ---- what is kept, against git ------------------------------------------------
    def oracle(self, src):
        args = ["-c", "core.excludesFile=/dev/null", "ls-files", "-z", "--others",
                f"--exclude-per-directory={ORACLE}"]
        if os.path.exists(os.path.join(src, ".git", "info", "exclude")):
            args.append("--exclude-from=.git/info/exclude")
        out = self.git(src, *args)
        return {os.fsdecode(p) for p in out.split(b"\0") if p}

    def test_random_trees_match_git(self):
        rng = random.Random(int(os.environ.get("SNAPSHOT_SEED", "20261206")))
        cases = int(os.environ.get("SNAPSHOT_CASES", "150"))
        kept = left_out = 0
        for case in range(cases):
            src = self.path(f"src{case}")
            os.mkdir(src)
            make_tree(rng, src)
            self.git(src, "init", "-q")
            if rng.random() < 0.3:
                with open(os.path.join(src, ".git", "info", "exclude"), "w") as f:
                    f.write(rand_ignore(rng))
            res = self.take(src)
            self.assertTrue(res["ok"], res)
            drop = lambda s: {p for p in s if os.path.basename(p) != ORACLE}
            got = drop(f["path"] for f in res["files"])
            want = drop(self.oracle(src))
            if got != want:
                self.fail(f"case {case} ({src}): only in the snapshot "
                          f"{sorted(got - want)}, only in git's {sorted(want - got)}")
            kept += len(got)
            left_out += len(drop(all_files(src))) - len(got)
            shutil.rmtree(res["dest"])
        # the trees are worth comparing: both outcomes are common
        self.assertGreater(kept, 2 * cases)
        self.assertGreater(left_out, cases)

    def test_cairnignore(self):
        src = self.path("src")
        os.makedirs(os.path.join(src, "data"))
        os.makedirs(os.path.join(src, "sub"))
        for p in ("a.log", "keep.log", "data/big.bin", "main.py", "sub/x.log",
                  "sub/keep.log"):
            with open(os.path.join(src, p), "w") as f:
                f.write(p)
        with open(os.path.join(src, ".gitignore"), "w") as f:
            f.write("*.log\n")
        with open(os.path.join(src, ".cairnignore"), "w") as f:
            f.write("!keep.log\ndata/\n")
        with open(os.path.join(src, "sub", ".gitignore"), "w") as f:
            f.write("keep.log\n")  # deeper: wins over the root's .cairnignore
        res = self.take(src)
        got = sorted(f["path"] for f in res["files"])
        self.assertEqual(got, [".cairnignore", ".gitignore", "keep.log", "main.py",
                               "sub/.gitignore"])

    # ---- the hash, the manifest, the copy -------------------------------------
    def write_tree(self, root, files, order):
        for p in order:
            full = os.path.join(root, p)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(files[p])

    def test_hash_is_content_only(self):
        files = {"main.py": b"print(1)\n", "lib/util.py": b"x = 2\n",
                 "lib/deep/data.csv": b"a,b\n1,2\n", "run.sh": b"#!/bin/sh\n",
                 ".gitignore": b"*.pyc\nout/\n", "lib/cache.pyc": b"junk",
                 "out/result": b"old"}
        one, two = self.path("one"), self.path("elsewhere", "two")
        self.write_tree(one, files, sorted(files))
        time.sleep(0.05)
        self.write_tree(two, files, sorted(files, reverse=True))
        for root in (one, two):
            os.chmod(os.path.join(root, "run.sh"), 0o755)
            os.symlink("lib/util.py", os.path.join(root, "util"))
        os.utime(os.path.join(two, "main.py"), (1, 1))
        a, b = self.take(one), self.take(two)
        self.assertTrue(a["ok"] and b["ok"], (a, b))
        self.assertEqual(a["hash"], b["hash"])
        self.assertEqual(a["count"], 6)
        # an ignored file changed: the same
        with open(os.path.join(two, "lib", "cache.pyc"), "wb") as f:
            f.write(b"other junk")
        with open(os.path.join(two, "out", "new"), "wb") as f:
            f.write(b"new")
        self.assertEqual(self.take(two)["hash"], a["hash"])
        # one byte changed, an execute bit, a link's target: different
        with open(os.path.join(two, "lib", "deep", "data.csv"), "wb") as f:
            f.write(b"a,b\n1,3\n")
        c = self.take(two)
        self.assertNotEqual(c["hash"], a["hash"])
        self.write_tree(two, files, ["lib/deep/data.csv"])
        self.assertEqual(self.take(two)["hash"], a["hash"])
        os.chmod(os.path.join(two, "main.py"), 0o744)
        self.assertNotEqual(self.take(two)["hash"], a["hash"])
        os.chmod(os.path.join(two, "main.py"), 0o644)
        os.remove(os.path.join(two, "util"))
        os.symlink("lib/other.py", os.path.join(two, "util"))
        self.assertNotEqual(self.take(two)["hash"], a["hash"])

    def test_manifest_and_copy(self):
        src = self.path("src")
        files = {"b.py": b"b", "a/z.txt": b"zz" * 1000, "a b": b"", "run": b"#!x",
                 "c\\d": b"back", "nl\nname": b"newline"}
        self.write_tree(src, files, list(files))
        os.chmod(os.path.join(src, "run"), 0o775)
        os.symlink("/etc/passwd", os.path.join(src, "passwd"))
        os.symlink("/etc", os.path.join(src, "etc"))
        os.mkfifo(os.path.join(src, "fifo"))
        os.makedirs(os.path.join(src, "empty", "dirs"))
        res = self.take(src, dest=os.path.join(src, "out"))  # dest inside src
        self.assertTrue(res["ok"], res)
        with open(res["manifest"], "rb") as f:
            manifest = f.read()
        self.assertEqual(hashlib.sha256(manifest).hexdigest(), res["hash"])
        lines = manifest.decode().split("\n")
        self.assertEqual(lines[0], "cairn-snapshot 1")
        self.assertEqual(lines[-1], "")
        want = []
        for p in sorted(files, key=os.fsencode):
            mode = "0755" if p == "run" else "0644"
            shown = p.replace("\\", "\\\\").replace("\n", "\\n")
            want.append((p, f"{mode} {hashlib.sha256(files[p]).hexdigest()} {shown}"))
        for p, t in (("etc", "/etc"), ("passwd", "/etc/passwd")):
            want.append((p, f"link {hashlib.sha256(t.encode()).hexdigest()} {p}"))
        want.sort(key=lambda pt: os.fsencode(pt[0]))
        self.assertEqual(lines[1:-1], [line for _, line in want])
        self.assertEqual(res["bytes"], sum(map(len, files.values())) + 4 + 11)
        # the copy: the same bytes, private; links as links; nothing else
        dest = res["dest"]
        for p, data in files.items():
            full = os.path.join(dest, p)
            with open(full, "rb") as f:
                self.assertEqual(f.read(), data)
            self.assertEqual(stat.S_IMODE(os.lstat(full).st_mode) & 0o077, 0)
            self.assertEqual(bool(os.stat(full).st_mode & 0o100), p == "run")
        self.assertEqual(os.readlink(os.path.join(dest, "passwd")), "/etc/passwd")
        self.assertEqual(os.readlink(os.path.join(dest, "etc")), "/etc")
        self.assertFalse(os.path.exists(os.path.join(dest, "fifo")))
        self.assertFalse(os.path.exists(os.path.join(dest, "empty")))
        self.assertFalse(os.path.exists(os.path.join(dest, "out")))
        for f in res["files"]:
            self.assertEqual(f["target"] is not None, f["mode"] == "link")

    # ---- git -------------------------------------------------------------------
    def git_facts(self, src):
        out = subprocess.run([self.tool, "git", src], check=True, capture_output=True,
                             timeout=60, env=self.env).stdout
        return json.loads(out)

    def test_git(self):
        repo = self.path("repo")
        code = os.path.join(repo, "code")
        os.makedirs(code)
        self.assertEqual(self.git_facts(code),
                         {"ok": True, "in_repo": False, "commit": "", "dirty": False})
        self.git(repo, "init", "-q")
        facts = self.git_facts(code)
        self.assertEqual((facts["in_repo"], facts["commit"]), (True, ""))  # no commit
        for p, text in (("code/train.py", "x\n"), ("README", "r\n"),
                        (".gitignore", "*.ckpt\n")):
            with open(os.path.join(repo, p), "w") as f:
                f.write(text)
        self.git(repo, "add", "-A")
        self.git(repo, "commit", "-qm", "one")
        head = self.git(repo, "rev-parse", "HEAD").decode().strip()
        self.assertEqual(self.git_facts(code),
                         {"ok": True, "in_repo": True, "commit": head, "dirty": False})
        with open(os.path.join(code, "model.ckpt"), "w") as f:  # ignored
            f.write("weights")
        self.assertFalse(self.git_facts(code)["dirty"])
        with open(os.path.join(repo, "README"), "a") as f:  # outside the folder
            f.write("more\n")
        self.assertFalse(self.git_facts(code)["dirty"])
        self.assertTrue(self.git_facts(repo)["dirty"])
        with open(os.path.join(code, "train.py"), "a") as f:
            f.write("y\n")
        self.assertTrue(self.git_facts(code)["dirty"])
        self.git(repo, "checkout", "-q", "--", "code/train.py")
        self.assertFalse(self.git_facts(code)["dirty"])
        with open(os.path.join(code, "new.py"), "w") as f:  # untracked
            f.write("n\n")
        self.assertTrue(self.git_facts(code)["dirty"])

    def test_git_info_exclude_of_a_worktree(self):
        repo, wt = self.path("repo"), self.path("wt")
        os.makedirs(repo)
        self.git(repo, "init", "-q")
        with open(os.path.join(repo, "f"), "w") as f:
            f.write("f")
        self.git(repo, "add", "f")
        self.git(repo, "commit", "-qm", "one")
        self.git(repo, "worktree", "add", "-q", wt)
        with open(os.path.join(repo, ".git", "info", "exclude"), "w") as f:
            f.write("secret*\n")
        for root in (repo, wt):
            with open(os.path.join(root, "secret.env"), "w") as f:
                f.write("k=v")
            res = self.take(root)
            self.assertEqual([f["path"] for f in res["files"]], ["f"], root)

    # ---- limits and refusals ------------------------------------------------------
    def test_limits(self):
        src = self.path("src")
        self.write_tree(src, {"a": b"1234", "b": b"12345", "c/d": b"12", "abcdef": b""},
                        ["a", "b", "c/d", "abcdef"])
        self.assertTrue(self.take(src, (4, 11, 6))["ok"])
        res = self.take(src, (3, 0, 0))
        self.assertEqual((res["ok"], res["status"], res["code"]), (False, 413, "too_large"))
        self.assertIn("3 files", res["message"])
        self.assertIn("c/d", res["message"])
        res = self.take(src, (0, 10, 0))
        self.assertEqual(res["status"], 413)
        self.assertIn("10 bytes", res["message"])
        self.assertIn("c/d", res["message"])
        res = self.take(src, (0, 0, 5))
        self.assertEqual(res["status"], 413)
        self.assertIn("abcdef", res["message"])
        self.assertIn("5 bytes", res["message"])
        # dest not empty
        busy = self.path("busy")
        os.makedirs(os.path.join(busy, "x"))
        res = self.take(src, dest=busy)
        self.assertEqual((res["status"], res["code"]), (409, "conflict"))
        # no such folder
        res = self.take(self.path("nope"))
        self.assertEqual(res["status"], 400)
        self.assertIn("nope", res["message"])
        # an ignore file over its limit
        with open(os.path.join(src, "c", ".gitignore"), "w") as f:
            f.write("x" * (1024 * 1024 + 1))
        res = self.take(src)
        self.assertEqual(res["status"], 413)
        self.assertIn("c/.gitignore", res["message"])

    def test_unreadable(self):
        """As root, the tool runs as nobody (setpriv), who cannot read 000."""
        prefix = []
        if os.geteuid() == 0:
            if not os.access("/usr/bin/setpriv", os.X_OK):
                self.skipTest("root reads everything, and no setpriv here")
            prefix = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                      "--clear-groups"]
            os.chmod(self.tmp, 0o777)
        src = self.path("src")
        self.write_tree(src, {"ok": b"1", "sub/secret": b"2"}, ["ok", "sub/secret"])
        for d in (src, os.path.join(src, "sub")):
            os.chmod(d, 0o755)
        os.chmod(os.path.join(src, "sub", "secret"), 0)

        tool, env = self.tool, dict(os.environ)
        if prefix:
            # nobody may not reach the build tree (a 0700 checkout): the
            # tool and the library it links, copied where nobody can
            bindir = self.path("bin")
            os.makedirs(bindir)
            os.chmod(bindir, 0o755)
            tool = shutil.copy(self.tool, bindir)
            libdir = os.path.join(os.path.dirname(os.path.dirname(self.tool)), "lib")
            for lib in os.listdir(libdir):
                if lib.startswith("libcairn.so"):
                    shutil.copy(os.path.join(libdir, lib), bindir)
            env["LD_LIBRARY_PATH"] = bindir

        def take(dest):
            out = subprocess.run(prefix + [tool, "take", src, self.path(dest),
                                           self.path(dest + ".manifest")],
                                 check=True, capture_output=True, timeout=60,
                                 env=env).stdout
            return json.loads(out)

        res = take("d1")
        self.assertEqual((res["ok"], res["status"]), (False, 400), res)
        self.assertIn("sub/secret", res["message"])
        os.chmod(os.path.join(src, "sub", "secret"), 0o644)
        os.chmod(os.path.join(src, "sub"), 0)
        res = take("d2")
        self.assertEqual((res["ok"], res["status"]), (False, 400), res)
        self.assertIn("sub", res["message"])
        os.chmod(os.path.join(src, "sub"), 0o755)
        self.assertTrue(take("d3")["ok"])


if __name__ == "__main__":
    unittest.main()
