"""The third-party plugin example (examples/echo-plugin), end to end:

1. install the build into a temp prefix (cmake --install BUILD --prefix TMP);
2. copy the example out of the tree and build it against that prefix only,
   with make + pkg-config and with CMake + find_package(Cairn);
3. load each .so into a private cairnd (inproc, then process) and call
   hello.greet: the reply, the 400 for a bad body, sys.services, sys.health.

Where the installed package itself is broken (a .pc or CMake package that
does not describe the prefix it was installed to), the step fails, and the
build is retried with a stated workaround so that the later steps still
check the plugin; the failure stays a failure.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cairn_harness as h  # noqa: E402

EXAMPLE = os.path.join(h.SOURCE, "examples", "echo-plugin")
passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}", file=sys.stderr)
    return cond


def run(cmd, env=None, cwd=None):
    """Run a command; returns (ok, output)."""
    p = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=300)
    out = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        print(f"$ {' '.join(cmd)}\n{out}", file=sys.stderr)
    return p.returncode == 0, out


def clean_env(**extra):
    """The environment for building: nothing that could find Cairn other
    than the prefix under test."""
    env = dict(os.environ)
    for k in ("PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "CPATH", "C_INCLUDE_PATH",
              "LIBRARY_PATH", "LD_LIBRARY_PATH", "CMAKE_PREFIX_PATH", "Cairn_DIR",
              "CFLAGS", "LDFLAGS", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(k, None)
    env.update(extra)
    return env


# ---- 1. install ----------------------------------------------------------------

def install(tmp):
    prefix = os.path.join(tmp, "prefix")
    ok, _ = run(["cmake", "--install", h.BUILD, "--prefix", prefix])
    if not check(ok, "cmake --install into a temp prefix"):
        return None, None
    pcs = glob.glob(os.path.join(prefix, "lib*", "**", "pkgconfig", "cairn.pc"),
                    recursive=True)
    check(len(pcs) == 1, f"exactly one installed cairn.pc under {prefix}: {pcs}")
    for hdr in ("plugin.h", "client.h", "msg.h", "err.h", "cairn.h"):
        check(os.path.isfile(os.path.join(prefix, "include", "cairn", hdr)),
              f"installed include/cairn/{hdr}")
    libs = glob.glob(os.path.join(prefix, "lib*", "**", "libcairn.so*"), recursive=True)
    check(libs, "installed libcairn.so")
    cm = glob.glob(os.path.join(prefix, "lib*", "**", "CairnConfig.cmake"), recursive=True)
    check(cm, "installed CairnConfig.cmake")
    return prefix, (os.path.dirname(pcs[0]) if pcs else None)


def pkg_config(pcdir, *args, define_prefix=False):
    cmd = ["pkg-config"] + (["--define-prefix"] if define_prefix else []) + list(args)
    p = subprocess.run(cmd, env=clean_env(PKG_CONFIG_PATH=pcdir), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    return p.returncode, p.stdout.decode().strip()


def check_pc(prefix, pcdir):
    """The installed .pc must describe the prefix it lies in."""
    real = os.path.realpath(prefix)
    rc, pfx = pkg_config(pcdir, "--variable=prefix", "cairn")
    ok = check(rc == 0 and os.path.realpath(pfx) == real,
               f"cairn.pc installed under {prefix} says prefix={pfx!r} (a .pc configured "
               f"at cmake time for CMAKE_INSTALL_PREFIX; `cmake --install --prefix` does "
               f"not rewrite it)")
    libdir = os.path.realpath(os.path.dirname(pcdir))

    def dirs(flags, opt):  # the -I or -L directories, resolved (a .pc may use ..)
        return [os.path.realpath(f[2:]) for f in flags.split() if f.startswith(opt)]

    rc, cflags = pkg_config(pcdir, "--cflags", "cairn")
    check(rc == 0 and os.path.join(real, "include") in dirs(cflags, "-I"),
          f"pkg-config --cflags cairn points into the prefix: {cflags!r}")
    rc, libs = pkg_config(pcdir, "--libs", "cairn")
    check(rc == 0 and libdir in dirs(libs, "-L") and "-lcairn" in libs.split(),
          f"pkg-config --libs cairn points into the prefix: {libs!r}")
    rc, ld = pkg_config(pcdir, "--variable=libdir", "cairn")
    check(rc == 0 and os.path.realpath(ld) == libdir,
          f"pkg-config --variable=libdir cairn is {libdir}: {ld!r}")
    rc, plugindir = pkg_config(pcdir, "--variable=plugindir", "cairn")
    check(rc == 0 and os.path.realpath(plugindir) == os.path.join(libdir, "cairn", "plugins")
          and os.path.isfile(os.path.join(plugindir, "cairn_echo.so")),
          f"pkg-config --variable=plugindir cairn holds cairn_echo.so: {plugindir!r}")
    return ok


# ---- 2. build the example out of tree -------------------------------------------

def copy_example(tmp, name):
    dst = os.path.join(tmp, name)
    shutil.copytree(EXAMPLE, dst, ignore=shutil.ignore_patterns("build*", "*.so", "*.o"))
    return dst


def documented_make_line(prefix):
    """The example README's `make PKG_CONFIG_PATH=/opt/cairn/lib/pkgconfig`
    line, exactly (comment dropped), with /opt/cairn made the test's prefix."""
    with open(os.path.join(EXAMPLE, "README.md")) as f:
        lines = [ln.split("#", 1)[0].strip() for ln in f
                 if ln.startswith("make PKG_CONFIG_PATH=")]
    if not check(len(lines) == 1, f"the example README shows one `make PKG_CONFIG_PATH=` line: "
                 f"{lines}"):
        return None
    return lines[0].replace("/opt/cairn", prefix)


def build_make(tmp, prefix, pcdir):
    src = copy_example(tmp, "src-make")
    so = os.path.join(src, "cairn_hello.so")
    # The documented command line, run as a user types it (GNU Make 4.3 did
    # not pass a command-line PKG_CONFIG_PATH to the Makefile's $(shell)).
    line = documented_make_line(prefix)
    if line:
        ok, _ = run(["sh", "-c", line], env=clean_env(), cwd=src)
        check(ok and os.path.isfile(so), f"`{line}` (the README's line) builds cairn_hello.so")
        # And `make install` with the same variable puts it in the plugindir.
        ok, _ = run(["sh", "-c", f"make install PKG_CONFIG_PATH={pcdir}"], env=clean_env(),
                    cwd=src)
        check(ok and os.path.isfile(os.path.join(os.path.dirname(pcdir), "cairn", "plugins",
                                                 "cairn_hello.so")),
              "make install PKG_CONFIG_PATH=... copies cairn_hello.so into the plugindir")
        run(["make", "-C", src, "clean"])
    # The same variable from the environment.
    ok, _ = run(["make", "-C", src], env=clean_env(PKG_CONFIG_PATH=pcdir))
    if check(ok and os.path.isfile(so), "PKG_CONFIG_PATH=... make builds cairn_hello.so"):
        return so
    # Workaround (stated, still a failure above): let pkgconf derive the
    # prefix from where the .pc file lies.
    print("note: retrying make with PKG_CONFIG='pkg-config --define-prefix'", file=sys.stderr)
    run(["make", "-C", src, "clean"])
    ok, _ = run(["make", "-C", src, "PKG_CONFIG=pkg-config --define-prefix"],
                env=clean_env(PKG_CONFIG_PATH=pcdir))
    return so if ok and os.path.isfile(so) else None


def build_cmake(tmp, prefix):
    src = copy_example(tmp, "src-cmake")
    bld = os.path.join(src, "build")
    ok, _ = run(["cmake", "-S", src, "-B", bld, f"-DCMAKE_PREFIX_PATH={prefix}",
                 "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], env=clean_env())
    if ok:
        ok, _ = run(["cmake", "--build", bld], env=clean_env())
    so = os.path.join(bld, "cairn_hello.so")
    if check(ok and os.path.isfile(so), "cmake builds cairn_hello.so with find_package(Cairn)"):
        return so
    # Workaround (stated, still a failure above): define the PkgConfig::MSGPACK
    # target that the installed CairnTargets.cmake names but does not create.
    print("note: retrying cmake with PkgConfig::MSGPACK defined before find_package",
          file=sys.stderr)
    pre = os.path.join(tmp, "define-msgpack.cmake")
    with open(pre, "w") as f:
        f.write("find_package(PkgConfig REQUIRED)\n"
                "pkg_check_modules(MSGPACK REQUIRED IMPORTED_TARGET msgpack)\n")
    shutil.rmtree(bld, ignore_errors=True)
    ok, _ = run(["cmake", "-S", src, "-B", bld, f"-DCMAKE_PREFIX_PATH={prefix}",
                 f"-DCMAKE_PROJECT_INCLUDE={pre}"], env=clean_env())
    if ok:
        ok, _ = run(["cmake", "--build", bld], env=clean_env())
    return so if ok and os.path.isfile(so) else None


def check_so(so, libdir, label):
    """Exports only the entry point; finds libcairn without LD_LIBRARY_PATH."""
    p = subprocess.run(["nm", "-D", "--defined-only", so], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    syms = [ln.split()[-1] for ln in p.stdout.decode().splitlines()
            if len(ln.split()) == 3 and ln.split()[1] in "TDBR"]
    check(syms == ["cairn_plugin_entry"],
          f"{label}: exports only cairn_plugin_entry (-fvisibility=hidden), got {syms}")
    p = subprocess.run(["readelf", "-d", so], stdout=subprocess.PIPE)
    dyn = p.stdout.decode()
    check("libcairn.so.0" in dyn, f"{label}: NEEDED libcairn.so.0")
    rp = [ln.split("[", 1)[1].rstrip("]") for ln in dyn.splitlines()
          if "RUNPATH" in ln or "RPATH" in ln]
    rp = [os.path.realpath(d) for r in rp for d in r.split(":") if d]
    check(os.path.realpath(libdir) in rp,
          f"{label}: RUNPATH names the installed libdir {libdir}: {rp}")
    # Loadable on its own, with no LD_LIBRARY_PATH: the rpath finds the
    # installed libcairn. (Not under a sanitizer build: an ASan libcairn can
    # only be loaded into a process that starts with the ASan runtime.)
    libs = glob.glob(os.path.join(libdir, "libcairn.so.0"))
    p = subprocess.run(["readelf", "-d"] + libs, stdout=subprocess.PIPE)
    if not libs or "libasan" in p.stdout.decode():
        return
    code = ("import ctypes,sys\n"
            "ctypes.CDLL(sys.argv[1])\n"
            "print([l.split()[-1] for l in open('/proc/self/maps') if 'libcairn' in l][0])\n")
    p = subprocess.run(["/usr/bin/python3", "-c", code, so], env=clean_env(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.decode().strip()
    check(p.returncode == 0 and out.startswith(os.path.realpath(libdir)),
          f"{label}: dlopen without LD_LIBRARY_PATH finds the installed libcairn: {out}")


# ---- 3. load it into cairnd ---------------------------------------------------------

def services_text(so, mode, punctuation='"?"'):
    text = (f"  hello:\n    plugin: {so}\n    mode: {mode}\n")
    if punctuation is not None:
        text += f"    settings:\n      punctuation: {punctuation}\n"
    return text + "  echo:\n    plugin: echo\n    mode: inproc\n"


def libcairn_maps(pid):
    try:
        with open(f"/proc/{pid}/maps") as f:
            return sorted({ln.split()[-1] for ln in f if "libcairn.so" in ln})
    except OSError:
        return None


def exercise(so, mode, label, punctuation='"?"', mark="?"):
    k = h.Kernel(services=services_text(so, mode, punctuation))
    try:
        try:
            k.start()
        except AssertionError as e:
            check(False, f"{label} {mode}: cairnd starts with hello: {e}\n{k.read_log()}")
            return
        c = k.client()
        try:
            hdr, body = c.call("hello", "greet", {"name": "world"})
            check(hdr.get("st") == 200 and body == {"greeting": f"hello, world{mark}",
                                                     "by": body.get("by") if body else None},
                  f"{label} {mode}: greet world -> {hdr} {body}")
            _, info = c.call("echo", "info")
            check(body and isinstance(body.get("by"), str) and body["by"]
                  and body["by"] == (info or {}).get("principal"),
                  f"{label} {mode}: by is the principal the kernel stamped: {body} vs {info}")
            # Non-ASCII names pass through as UTF-8.
            hdr, body = c.call("hello", "greet", {"name": "Zoë"})
            check(hdr.get("st") == 200 and body and body.get("greeting") == f"hello, Zoë{mark}",
                  f"{label} {mode}: greet Zoë -> {hdr} {body}")
            # Bad bodies: 400 bad_request naming the field.
            for bad in ({}, {"name": 42}, {"nom": "x"}, None):
                hdr, body = c.call("hello", "greet", bad)
                check(hdr.get("st") == 400 and hdr.get("code") == "bad_request"
                      and "name" in hdr.get("err", ""),
                      f"{label} {mode}: greet {bad!r} -> 400 naming 'name': {hdr}")
            # A body that is not a map has no field to name; a 400 all the same.
            hdr, body = c.call("hello", "greet", [1, 2])
            check(hdr.get("st") == 400 and hdr.get("code") == "bad_request"
                  and hdr.get("err"), f"{label} {mode}: greet [1, 2] -> 400: {hdr}")
            hdr, _ = c.call("hello", "greet", {"name": "x" * 500})
            check(hdr.get("st") == 400 and "name" in hdr.get("err", ""),
                  f"{label} {mode}: a 500-byte name -> 400: {hdr}")
            hdr, _ = c.call("hello", "greet", {"name": "x" * 5000})
            check(hdr.get("st") == 413, f"{label} {mode}: a body over max_body -> 413: {hdr}")
            hdr, _ = c.call("hello", "wave", {"name": "x"})
            check(hdr.get("st") == 404 and hdr.get("code") == "no_verb",
                  f"{label} {mode}: hello.wave -> 404 no_verb: {hdr}")
            # sys.services lists it with the right mode.
            _, svcs = c.call("sys", "services")
            hello = [s for s in svcs["services"] if s["name"] == "hello"]
            check(len(hello) == 1, f"{label} {mode}: sys.services lists hello once")
            if hello:
                s = hello[0]
                check(s["mode"] == mode, f"{label} {mode}: sys.services mode {s['mode']}")
                check(s["state"] == "up", f"{label} {mode}: sys.services state {s['state']}")
                check(s["plugin"] == so, f"{label} {mode}: sys.services plugin {s['plugin']}")
                check(s["verbs"] == ["greet"], f"{label} {mode}: verbs {s['verbs']}")
            p = k.plugin("hello")
            check(p["state"] == "up" and p["restarts"] == 0,
                  f"{label} {mode}: health {p}")
            # One libcairn in the process that runs the plugin: the one the
            # host loaded (the plugin's DT_NEEDED matches it by soname).
            pid = k.proc.pid if mode == "inproc" else p.get("pid")
            if mode == "process":
                check(isinstance(pid, int) and pid > 0 and pid != k.proc.pid,
                      f"{label} {mode}: hello runs in its own process: {p}")
            maps = libcairn_maps(pid) if isinstance(pid, int) and pid > 0 else None
            check(maps is not None and len(maps) == 1
                  and os.path.realpath(maps[0]).startswith(os.path.realpath(h.BUILD)),
                  f"{label} {mode}: exactly one libcairn (the host's) is mapped: {maps}")
        finally:
            c.close()
        rc = k.stop()
        check(rc == 0, f"{label} {mode}: cairnd exits 0 on SIGTERM (got {rc})\n"
              + (k.read_log() if rc else ""))
    finally:
        k.cleanup()


def init_failure(so, mode, label):
    """A setting that init refuses keeps the service down, with init's
    sentence in sys.health; calls get 503."""
    k = h.Kernel(services=services_text(so, mode, '"!!!!!!!!!!!!"'))
    try:
        k.start(wait_up=False)
        p = h.wait_for(lambda: (lambda p: p if "punctuation" in (p.get("error") or "")
                                else None)(k.plugin("hello")),
                       what="hello's init error in sys.health")
        check(p["state"] != "up", f"{label} {mode}: a failed init is not up: {p}")
        c = k.client()
        try:
            hdr, _ = c.call("hello", "greet", {"name": "x"})
            check(hdr.get("st") == 503 and hdr.get("code") == "unavailable",
                  f"{label} {mode}: greet on a failed plugin -> 503: {hdr}")
        finally:
            c.close()
    except AssertionError as e:
        check(False, f"{label} {mode}: init failure: {e}\n{k.read_log()}")
    finally:
        k.cleanup()


def main():
    tmp = tempfile.mkdtemp(prefix="cairn-example-")
    try:
        prefix, pcdir = install(tmp)
        if not prefix or not pcdir:
            return
        check_pc(prefix, pcdir)
        libdir = os.path.dirname(pcdir)
        builds = []
        so = build_make(tmp, prefix, pcdir)
        if check(so, "a make-built cairn_hello.so (with or without the workaround)"):
            check_so(so, libdir, "make")
            builds.append(("make", so))
        so = build_cmake(tmp, prefix)
        if check(so, "a cmake-built cairn_hello.so (with or without the workaround)"):
            check_so(so, libdir, "cmake")
            builds.append(("cmake", so))
        for label, so in builds:
            for mode in ("inproc", "process"):
                exercise(so, mode, label)
        if builds:
            # The default punctuation, when the conf sets none.
            exercise(builds[0][1], "inproc", builds[0][0] + " (default)", None, "!")
            for mode in ("inproc", "process"):
                init_failure(builds[0][1], mode, builds[0][0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # an unexpected error is a failure, not a crash
        import traceback
        traceback.print_exc()
        check(False, f"unexpected {type(e).__name__}: {e}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
