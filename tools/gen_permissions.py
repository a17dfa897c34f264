#!/usr/bin/python3
"""Regenerate the table of docs/PERMISSIONS.md from a running cairnd with
the embedded default's services (those of tests/integration/
test_permissions.py), as that test expects. Run from the source tree after
a build:  CAIRN_BUILD_DIR=$PWD/build /usr/bin/python3 tools/gen_permissions.py"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
os.environ.setdefault("CAIRN_SOURCE_DIR", SOURCE)
os.environ.setdefault("CAIRN_BUILD_DIR", os.path.join(SOURCE, "build"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
from cairn_harness import BIN, DEADLINE, Kernel  # noqa: E402
from test_permissions import SERVICES  # noqa: E402

DOC = os.path.join(SOURCE, "docs", "PERMISSIONS.md")
k = Kernel(services=SERVICES, auth="auth").start()
try:
    with open(os.path.join(k.state, "owner.token")) as f:
        owner = f.read().strip()
    table = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", k.endpoint,
                            "--token", owner, "permissions"], capture_output=True,
                           text=True, timeout=DEADLINE, check=True).stdout
finally:
    k.cleanup()
with open(DOC) as f:
    doc = f.read()
start = doc.index("| service | verb |")
end = start
lines = doc[start:].split("\n")
n = 0
while n < len(lines) and lines[n].startswith("|"):
    n += 1
old = "\n".join(lines[:n]) + "\n"
with open(DOC, "w") as f:
    f.write(doc.replace(old, table if table.endswith("\n") else table + "\n", 1))
print(f"{DOC}: {table.count(chr(10)) - 2} verbs")
