"""Adversarial suite: one running cairnd, every kind of plugin, hostile clients.

It reads sys.services from the running cairnd and attacks every verb of
every service (a new service is covered the day its verbs exist), with
structure-aware requests built from the field names the plugins' sources
and services.md use: valid envelopes whose header and body fields are empty,
at their limit and far past it, of the wrong type, nested 30, 33 and 1000
deep, with invalid UTF-8 and NUL bytes; random frame shapes; thousands of
connections opened and dropped (some mid-request, some raw TCP garbage);
clients that never read their replies; pipelined floods past
kernel.max_queue; and, field by field, every body field of the auth, audit
and secrets verbs empty, at its limit, past it, of each wrong type and
nested deep (FIELD_SPECS). kernel.audit is on, so every mutating request is
an audit record too.

The pass condition, checked at every checkpoint and at the end: cairnd and
every plugin alive (sys.health all up, no restart, the process-mode pid
unchanged), every reply well formed (three frames, an int st, a non-empty
str err and str code when st >= 400, all msgpack that decodes with
raw=False, so valid UTF-8), every request answered within a deadline
(except from clients that never read or went away), a sys.ping from a
separate client answered within PING_S, cairnd's RSS below RSS_CAP_KB, and
no sanitizer report in its log.

    CAIRN_ADV_SEED     the seed (printed at the start: a failure reproduces)
    CAIRN_ADV_SECONDS  seconds of hostile envelopes (default 30); the other
                       phases are bounded by count and take ~20 s more
"""
import collections
import glob
import os
import random
import re
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import msgpack  # noqa: E402
import zmq  # noqa: E402

from cairn_harness import DEADLINE, SOURCE, Kernel, free_port  # noqa: E402
import adv_http  # noqa: E402

SEED = int(os.environ.get("CAIRN_ADV_SEED") or (time.time_ns() // 1000) % (1 << 32))
SECONDS = float(os.environ.get("CAIRN_ADV_SECONDS") or 30)
RSS_CAP_KB = 1536 * 1024  # cairnd's resident set must stay below 1.5 GiB
PING_S = 5.0  # a separate client's sys.ping, at every checkpoint
TTL_MS = 4000  # kernel.default_ttl_ms and max_ttl_ms: every reply within it
REPLY_S = TTL_MS / 1000 + DEADLINE  # the deadline for any answer (loaded machine)
MAX_QUEUE = 32
MAX_FRAME = 16 << 20
WINDOW = 32  # requests in flight per hostile lane
MiB = 1 << 20

SERVICES = ("  echo:\n    plugin: echo\n    mode: inproc\n    concurrency: 64\n"
            "  echo2:\n    plugin: echo\n    mode: process\n    concurrency: 64\n"
            "  tracking:\n    plugin: storage\n    mode: inproc\n"
            "  artifacts:\n    plugin: storage\n    mode: inproc\n"
            "  secrets:\n    plugin: secrets\n    mode: process\n"
            # The cheapest Argon2id the plugin takes: hostile create_user,
            # login and change_password hash in milliseconds, not 100s of ms.
            "  auth:\n    plugin: auth\n    mode: inproc\n"
            "    settings:\n      pwhash_ops: 1\n      pwhash_mem: 8KiB\n"
            "  audit:\n    plugin: audit\n    mode: process\n"
            "  registry:\n    plugin: registry\n    mode: inproc\n"
            # jobs: a hostile spec that passes is run (/bin/sh -c), so a
            # slot or two, and a short grace
            "  jobs:\n    plugin: compute\n    mode: process\n"
            "    settings:\n      max_concurrent: 2\n      grace_ms: 200\n"
            "  endpoints:\n    plugin: scorer\n    mode: process\n"
            "    settings:\n      listen: 127.0.0.1:0\n")
# The HTTP gateway, in its own process as in the embedded default; phase 8
# attacks it over HTTP (and phase 1 its verb over the bus). Slow clients
# are dropped after HTTP_TIMEOUT_S.
HTTP_PORT = free_port()
HTTP_MAX_BODY = 256 << 10
HTTP_TIMEOUT_S = 3
HTTP_REQUESTS = int(os.environ.get("CAIRN_ADV_HTTP") or 1500)
# libmicrohttpd reads a request's line and headers into 32 KiB a connection
# (MHD_OPTION_CONNECTION_MEMORY_LIMIT's default): near or past that it
# answers 414 or 431, or, when no room is left for an answer, closes.
HTTP_HEAD_MAX = 30 << 10
SERVICES += ("  gateway:\n    plugin: gateway\n    mode: process\n    settings:\n"
             f"      listen: 127.0.0.1:{HTTP_PORT}\n      max_body: {HTTP_MAX_BODY >> 10}KiB\n"
             f"      timeout_s: {HTTP_TIMEOUT_S}\n      threads: 4\n")
# What the gateway may answer a request it can read: never a 5xx but 503
# and 504 (a plugin busy or its queue full under the other phases' load).
STUDIO_REQUESTS = int(os.environ.get("CAIRN_ADV_STUDIO", "600"))
HTTP_STATUSES = {200, 201, 400, 401, 403, 404, 405, 409, 413, 414, 415, 429, 431, 503, 504}
# The scorer's listener (phase 8b): what it may answer. 500 is for a
# script's own exception, and the phase's script raises none.
SCORE_REQUESTS = int(os.environ.get("CAIRN_ADV_SCORE") or 1200)
SCORE_STATUSES = {200, 400, 401, 403, 404, 405, 413, 414, 415, 429, 431, 503, 504}
# kernel.audit: every hostile request to a mutating verb (and every refusal)
# is a record too, on its way to the audit service.
KERNEL_EXTRA = (f"  max_queue: {MAX_QUEUE}\n  max_frame: {MAX_FRAME >> 20}MiB\n"
                f"  default_ttl_ms: {TTL_MS}\n  max_ttl_ms: {TTL_MS}\n"
                "  audit: audit\n")
STATUSES = {200, 201, 400, 401, 403, 404, 409, 413, 429, 504}
SANITIZER = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                       r"Segmentation fault|Assertion .* failed|core dumped")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- a msgpack encoder that can say what msgpack-python refuses to -------

class Raw(bytes):
    """Pre-encoded msgpack spliced in as is (deep nesting, garbage)."""


class BadStr(bytes):
    """A msgpack str holding these bytes, UTF-8 or not."""


class Pairs(list):
    """A map as (key, value) pairs: duplicate keys, keys of any type."""


def _head(out, n, fix, fixmax, c8, c16, c32):
    if n <= fixmax and fix is not None:
        out.append(fix | n)
    elif n < 256 and c8 is not None:
        out += bytes([c8, n])
    elif n < 65536:
        out += bytes([c16]) + struct.pack(">H", n)
    else:
        out += bytes([c32]) + struct.pack(">I", n)


def enc(o, out=None):
    top = out is None
    if top:
        out = bytearray()
    if isinstance(o, Raw):
        out += o
    elif o is None:
        out.append(0xC0)
    elif o is True:
        out.append(0xC3)
    elif o is False:
        out.append(0xC2)
    elif isinstance(o, int):
        if 0 <= o < 128:
            out.append(o)
        elif o >= 0:
            for lim, c, f in ((1 << 8, 0xCC, ">B"), (1 << 16, 0xCD, ">H"),
                              (1 << 32, 0xCE, ">I"), (1 << 64, 0xCF, ">Q")):
                if o < lim:
                    out += bytes([c]) + struct.pack(f, o)
                    break
        elif o >= -32:
            out += struct.pack(">b", o)
        else:
            for lim, c, f in ((1 << 7, 0xD0, ">b"), (1 << 15, 0xD1, ">h"),
                              (1 << 31, 0xD2, ">i"), (1 << 63, 0xD3, ">q")):
                if o >= -lim:
                    out += bytes([c]) + struct.pack(f, o)
                    break
    elif isinstance(o, float):
        out += b"\xcb" + struct.pack(">d", o)
    elif isinstance(o, (BadStr, str)):
        b = bytes(o) if isinstance(o, BadStr) else o.encode()
        _head(out, len(b), 0xA0, 31, 0xD9, 0xDA, 0xDB)
        out += b
    elif isinstance(o, (bytes, bytearray)):
        _head(out, len(o), None, -1, 0xC4, 0xC5, 0xC6)
        out += o
    elif isinstance(o, Pairs):
        _head(out, len(o), 0x80, 15, None, 0xDE, 0xDF)
        for k, v in o:
            enc(k, out)
            enc(v, out)
    elif isinstance(o, (list, tuple)):
        _head(out, len(o), 0x90, 15, None, 0xDC, 0xDD)
        for x in o:
            enc(x, out)
    elif isinstance(o, dict):
        _head(out, len(o), 0x80, 15, None, 0xDE, 0xDF)
        for k, v in o.items():
            enc(k, out)
            enc(v, out)
    else:
        raise TypeError(type(o))
    return bytes(out) if top else out


def deep(n, leaf=b"\xc0", kind="array"):
    """n nested containers around leaf (maps use the key "k")."""
    if kind == "array":
        return Raw(b"\x91" * n + leaf)
    return Raw(b"\x81\xa1k" * n + leaf)


# ---- what the services take: field names from the sources ----------------

SPEC_FIELDS = """experiment_id run_id key value step timestamp metrics params tags path
offset data upload_id done filter max_results order_by page_token name experiment_name
experiment_ids run_name start_time end_time status parent_run_id artifact_location
new_name run_view_type view_type length keys max_points user password token token_id
expires_in workspace actions not_actions principal role since until svc verb object
secret spec node direction depth endpoint traffic mirror model version alias at source
flavor signature description type input mini_batch_size ms topic body st code err
""".split()


def _source_fields():
    """Field names in the plugins' sources: cairn_field_*/cairn_obj_get keys,
    and per verb the fields its table's help string lists ("{run_id*, ...}")."""
    names, per_verb = set(SPEC_FIELDS), {}
    for path in glob.glob(os.path.join(SOURCE, "plugins", "**", "*.c"), recursive=True):
        with open(path, errors="replace") as f:
            text = f.read()
        names.update(re.findall(r'cairn_(?:field_\w+|obj_get)\(\s*[^,()]+,\s*"(\w+)"', text))
        rows = re.findall(r'\{\s*"(\w+)",\s*\w+,[^{};]*?"([^"]*)"\s*\}', text)  # positional
        rows += re.findall(r'\{\s*\.name\s*=\s*"(\w+)"[^{};]*?\.help\s*=\s*"([^"]*)"', text)
        for verb, help_ in rows:
            for group in re.findall(r"\{([^{}]*)\}", re.sub(r"\([^)]*\)", "", help_)):
                fields = [x.strip() for x in group.split(",") if x.strip()]
                fields = [(x.rstrip("*").strip(), x.endswith("*")) for x in fields]
                fields = [(n, req) for n, req in fields if re.fullmatch(r"[a-z_]+", n)]
                if fields:
                    per_verb.setdefault(verb, []).extend(fields)
                    names.update(n for n, _ in fields)
    return sorted(names), per_verb


def _filters():
    out = ["", "metrics.loss > 0.5", "params.lr = '0.1' and tags.t != 'x'",
           "attributes.status = 'RUNNING'", "metrics.", "((((", "' OR 1=1 --",
           "name LIKE '%'", "metrics.`a b` >= -1e308", "tags.x IN ('a', 'b')",
           "run_id = '" + "9" * 300 + "'", " and " * 200]
    for path in glob.glob(os.path.join(SOURCE, "tests", "fuzz", "corpus", "fuzz_filter", "*")):
        with open(path, "rb") as f:
            out.append(f.read().decode(errors="replace")[:4000])
    return out


FIELDS, VERB_FIELDS = _source_fields()
FILTERS = _filters()
LIMITS = [0, 1, 31, 32, 63, 64, 65, 127, 128, 129, 250, 251, 255, 256, 257, 500, 501,
          1023, 1024, 1025, 4095, 4096, 4097, 6000, 6001, 8000, 8001, 65535, 65536]
INTS = [0, 1, -1, 2, 7, 100, 127, 128, 255, 256, 1000, 65535, 65536, 1 << 31,
        (1 << 31) - 1, 1 << 32, 1 << 53, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, -(1 << 7),
        -(1 << 31), -(1 << 63), 1717171717171, 10 ** 15, -10 ** 15]
FLOATS = [0.0, -0.0, 1.5, -2.5, float("nan"), float("inf"), float("-inf"), 1e308,
          -1e308, 5e-324, 2.0 ** 63, 2.0 ** 64]
BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xf0\x28\x8c\xbc",
            b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"ok\x80", b"\xf4\x90\x80\x80"]
STRS = ["", "a", "\x00", "a\x00b", "\u00fc\u20ac\U0001f600", "../../../../etc/passwd", "/abs",
        "a/./b//c/", "..", ".", "%s%n%x", "'; DROP TABLE runs; --", "\t\n\r", " ",
        "default", "Owner", "k" * 250, "\u202e", "runs:/x/y", "model:m:1", "NaN", "-1",
        "9" * 40, "0" * 32, "ffffffffffffffffffffffffffffffff"]


class Gen:
    """Hostile values, bodies and headers; ids harvested from replies make
    some of them reach past validation."""

    def __init__(self, rnd, ids):
        self.r = rnd
        self.ids = ids  # field name -> known good values (from fixtures and replies)

    def string(self):
        r = self.r
        k = r.random()
        if k < 0.4:
            return r.choice(STRS)
        if k < 0.75:
            n = r.choice(LIMITS)
            return r.choice("xé") * (n // 2 if r.random() < 0.1 else n)
        if k < 0.85:
            return "".join(chr(r.randint(1, 0x2FFF)) for _ in range(r.randint(1, 40)))
        if k < 0.97:
            return BadStr(r.choice(BAD_UTF8) * r.randint(1, 3))
        return "x" * r.choice([1 << 16, 1 << 18, 1 << 20])  # far past every limit

    def hostile(self, depth=0):
        r = self.r
        k = r.randrange(16 if depth < 3 else 10)
        if k == 0:
            return None
        if k == 1:
            return r.random() < 0.5
        if k in (2, 3):
            return r.choice(INTS) if r.random() < 0.8 else r.randint(-(1 << 63), (1 << 64) - 1)
        if k == 4:
            return r.choice(FLOATS)
        if k in (5, 6, 7):
            return self.string()
        if k == 8:
            n = r.choice([0, 1, 16, 255, 256, 65535, 65536, 1 << 20])
            return bytes(r.getrandbits(8) for _ in range(min(n, 64))) * max(1, n // 64)
        if k == 9:
            return Raw(r.choice([b"\xd4\x01\x00", b"\xd6\x05abcd", b"\xc7\x00\x07",
                                 b"\xd8\x7f" + b"z" * 16]))  # ext types (never -1)
        if k == 10:
            return [self.hostile(depth + 1) for _ in range(r.randint(0, 5))]
        if k == 11:
            return {r.choice(FIELDS): self.hostile(depth + 1) for _ in range(r.randint(0, 5))}
        if k == 12:
            n = r.choice([30, 31, 32, 33, 34, 100, 1000])
            return deep(n, kind=r.choice(["array", "map"]))
        if k == 13:
            keys = [r.choice([None, 1, -1, 1.5, b"k", [], BadStr(b"\xff"), "k"])
                    for _ in range(r.randint(1, 4))]
            return Pairs([(x, self.hostile(depth + 1)) for x in keys])
        if k == 14:
            return [r.randint(0, 9)] * r.choice([1000, 10000, 100000])
        return Pairs([("k", 1), ("k", 2)])  # a duplicate key

    def plausible(self, name):
        r = self.r
        if name in self.ids and r.random() < 0.8:
            return r.choice(self.ids[name])
        if name.endswith("_ids"):
            pool = self.ids.get(name[:-1], ["0"])
            return [r.choice(pool) for _ in range(r.randint(0, 3))]
        if name.endswith("_id"):
            return r.choice(["0", "1", "0" * 32, "nosuch", "", "run:1"])
        if name in ("metrics", "params", "tags"):
            return [{"key": r.choice(["loss", "acc", "a/b", "k" * 250, ""]),
                     "value": r.choice([0.5, "v", -1, float("nan")]) if name == "metrics"
                     else r.choice(["v", "", "x" * 6000]),
                     "timestamp": r.choice([0, 1717171717171, -1]),
                     "step": r.choice([0, 1, -5, 1 << 40])}
                    for _ in range(r.randint(0, 4))]
        if name in ("filter",):
            return r.choice(FILTERS)
        if name in ("actions", "not_actions"):
            pats = ["*", "tracking.*", "*.read", "secrets.read", "", "a.b.c", "x" * 129,
                    "*.*", "svc.", ".read"]
            return [r.choice(pats) for _ in range(r.choice([0, 1, 3, 64, 65]))]
        if name in ("order_by", "keys", "experiment_ids"):
            return [r.choice(["metrics.loss DESC", "start_time", "attributes.x ASC", "loss",
                              "params.`a b`", ""]) for _ in range(r.randint(0, 3))]
        if name == "data":
            return bytes(r.getrandbits(8) for _ in range(r.choice([0, 1, 100, 4096])))
        if name in ("done",):
            return r.random() < 0.5
        if name in ("value",):
            return r.choice([0.5, "v", 1, -1.0])
        if name == "ms":  # echo's sleep: a request holds a window slot that long
            return r.choice([0, 1, 10, 100, 1000])
        if name in ("step", "timestamp", "offset", "max_results", "length", "start_time",
                    "end_time", "max_points", "st", "depth", "since", "until", "at",
                    "expires_in", "version", "mini_batch_size"):
            return r.choice([0, 1, 10, 1000, 100000, 1717171717171])
        if name == "page_token":
            return r.choice(["", "AAAA", "eyJvZmZzZXQiOiAxMH0=", "\x00", "!!!", "12", "9" * 20])
        if name in ("user", "principal", "owner"):
            return r.choice(self.ids.get("user", []) + ["owner", "kernel", "adv", "u" * 64,
                                                        "u" * 65, "a b", "@", ""])
        if name in ("password", "old_password"):
            return r.choice(["", "short", "correct horse battery", "p" * 1024, "p" * 1025])
        if name == "role":
            return r.choice(["Owner", "Reader", "Contributor", "Data Scientist", "Operator",
                             "adv-role", "r" * 65, ""])
        if name == "workspace":
            return r.choice(["default", "team-a", "*", "w" * 64, "w" * 65, "", "a/b"])
        if name == "token":
            return r.choice(["", "cairn_" + "A" * 43, "cairn_", "x" * 49, "cairn_" + "A" * 4000])
        if name in ("path",):
            return r.choice(["a.txt", "d/e/f.bin", "", "../x", "a//b", "/abs", "x" * 300])
        if name in ("svc",):
            return r.choice(list(self.ids.get("svc", ["echo"])))
        if name in ("verb",):
            return r.choice(list(self.ids.get("verb", ["echo"])))
        if name == "body":
            return self.hostile(1)
        return r.choice(["a", "adv", "x" * 64, "Owner", "team-a"])

    def body(self, verb):
        """A body for verb: mostly a map of its fields, some hostile."""
        r = self.r
        k = r.random()
        if k < 0.72:
            fields = list(VERB_FIELDS.get(verb, []))
            if not fields or r.random() < 0.15:
                fields += [(r.choice(FIELDS), False) for _ in range(r.randint(0, 4))]
            m = Pairs() if r.random() < 0.05 else {}
            for name, required in fields:
                if not required and r.random() < 0.3:
                    continue
                if required and r.random() < 0.05:
                    continue
                v = self.plausible(name) if r.random() < 0.65 else self.hostile()
                if isinstance(m, Pairs):
                    m.append((name, v))
                else:
                    m[name] = v
            if r.random() < 0.1:
                n = r.choice([29, 31, 32])  # in a map: 30, 32, 33 levels
                if isinstance(m, dict):
                    m[r.choice(FIELDS)] = deep(n)
                else:
                    m.append(("x", deep(n)))
            return enc(m)
        if k < 0.85:
            return enc(self.hostile())
        if k < 0.9:
            return b""
        if r.random() < 0.2:
            return bytes(r.getrandbits(8) for _ in range(r.randint(1, 64)))
        return r.choice([b"\xc1", b"\x81", b"\x91\xc0\xc0", b"\xc0\xc0", b"\xdd\xff\xff\xff\xff",
                         b"\xdf\x7f\xff\xff\xff", b"\xc6\xff\xff\xff\xff\x00", b"\xa5ab",
                         enc({"run_id": "x"}) + b"\x00", b"\x91" * 1000 + b"\xc0"])


# ---- the vault, auth and audit verbs, field by field (phase 7) ------------

# (svc, verb) -> {field: (kind, limit, a good value)}; kind str, int, uint or
# list; limit the longest accepted (bytes, items or value), None when the
# docs name none. From docs/AUTH.md, docs/AUDIT.md and docs/SECRETS.md.
_NAME = ("str", 64, "adv")
_PW = ("str", 1024, "correct horse battery")
FIELD_SPECS = {
    ("auth", "login"): {"user": _NAME, "password": _PW},
    ("auth", "create_user"): {"user": ("str", 64, "adv-new"), "password": _PW},
    ("auth", "delete_user"): {"user": ("str", 64, "nobody")},
    ("auth", "change_password"): {"user": _NAME, "password": _PW, "old_password": _PW},
    ("auth", "create_token"): {"name": _NAME, "expires_in": ("uint", 315576000, 60),
                               "owner": _NAME},
    ("auth", "revoke_token"): {"token_id": ("str", None, "0000")},
    ("auth", "resolve"): {"token": ("str", None, "cairn_x")},
    ("auth", "define_role"): {"name": ("str", 64, "adv-role"), "actions": ("list", 64, ["*"]),
                              "not_actions": ("list", 64, [])},
    ("auth", "assign_role"): {"principal": _NAME, "role": ("str", 64, "Reader"),
                              "workspace": ("str", 64, "default")},
    ("auth", "unassign_role"): {"principal": _NAME, "role": ("str", 64, "Reader"),
                                "workspace": ("str", 64, "default")},
    ("auth", "create_workspace"): {"name": ("str", 64, "adv-ws")},
    ("auth", "delete_workspace"): {"name": ("str", 64, "adv-ws")},
    ("audit", "query"): {"principal": ("str", 256, "adv"), "svc": ("str", 256, "auth"),
                         "verb": ("str", 256, "login"), "object": ("str", 256, ""),
                         "since": ("int", None, 1), "until": ("int", None, 1 << 50),
                         "min_status": ("int", 999, 400), "max_status": ("int", 999, 499),
                         "max_results": ("uint", 1000, 10), "page_token": ("str", 20, "0")},
    ("audit", "append"): {"records": ("list", 4096, [])},
    ("secrets", "set_secret"): {"name": ("str", 128, "adv/s"), "value": ("str", 65536, "v")},
    ("secrets", "get_secret"): {"name": ("str", 128, "adv/s")},
    ("secrets", "list_secrets"): {"max_results": ("uint", 1000, 10),
                                  "page_token": ("str", 128, "")},
    ("secrets", "delete_secret"): {"name": ("str", 128, "adv/none")},
}
_WRONG = {"str": [True, 7, -7, 1.5, b"bin", [], {"k": "v"}, ["a"]],
          "int": [True, 1.5, "7", b"7", [], {"k": 1}],
          "uint": [True, -1, 1.5, "7", b"7", [], {"k": 1}],
          "list": [True, 7, "*", b"*", {"k": "v"}, [7], [None], [["*"]]]}


def field_variants(kind, limit):
    """(value, the statuses it must get or None) for one field: empty, at
    its limit, past it, every wrong type, nil, and deep nesting."""
    out = []
    if kind == "str":
        out += [("", None), ("\x00", None), (BadStr(b"\xff"), {400})]
        if limit:
            out += [("a" * limit, None), ("a" * (limit + 1), {400, 413}),
                    ("a" * (limit * 64 + 1), {400, 413})]
    elif kind == "list":
        out += [([], None)]
        if limit:
            out += [(["*"] * limit, None), (["*"] * (limit + 1), {400, 413})]
    else:
        out += [(0, None), (-(1 << 63), {400} if kind == "uint" else None),
                ((1 << 64) - 1, {400} if limit else None)]
        if limit:
            out += [(limit, None), (limit + 1, {400})]
    out += [(v, {400}) for v in _WRONG[kind]]
    out += [(None, None)]  # nil: refused, or the field taken as absent
    # (413 when the nesting alone is past the verb's max_body)
    out += [(deep(n, kind=k), {400, 413}) for n, k in
            ((30, "array"), (33, "array"), (1000, "array"), (30, "map"), (33, "map"))]
    return out


# ---- replies ------------------------------------------------------------

class BadReply(AssertionError):
    pass


def _map(pairs):
    """A decoded map: a dict, or its pairs when a key is a list or a map
    (valid msgpack that Python cannot hash)."""
    try:
        return dict(pairs)
    except TypeError:
        return list(pairs)


def unpack(b):
    return msgpack.unpackb(b, raw=False, strict_map_key=False, object_pairs_hook=_map,
                           ext_hook=lambda code, data: (code, data))


def decode_reply(frames):
    """The three frames after the delimiter: check and decode them, or raise."""
    if len(frames) != 4 or frames[0] != b"" or frames[1] != b"CAIRN/1":
        raise BadReply(f"reply frames are not ['', CAIRN/1, hdr, body]: {show(frames)}")
    try:
        h = unpack(frames[2])
    except Exception as e:
        raise BadReply(f"reply header does not decode ({e}): {show(frames)}")
    if not isinstance(h, dict) or not isinstance(h.get("st"), int) or isinstance(h["st"], bool):
        raise BadReply(f"reply header without an int st: {h!r:.300}")
    if h["st"] >= 400:
        if not isinstance(h.get("err"), str) or not h["err"]:
            raise BadReply(f"error reply without a sentence in err: {h!r:.300}")
        if not isinstance(h.get("code"), str) or not h["code"]:
            raise BadReply(f"error reply without a str code: {h!r:.300}")
    body = None
    if frames[3]:
        try:
            body = unpack(frames[3])
        except Exception as e:
            # Python refuses a few valid shapes (a timestamp ext of another
            # length): then Cairn's own check decides. Invalid UTF-8 never passes.
            if isinstance(e, UnicodeDecodeError) or not mp_valid(frames[3]):
                raise BadReply(f"reply body does not decode ({e}): hdr {h!r:.200} "
                               f"body {frames[3][:200]!r}")
    return h, body


def show(frames, cap=240):
    return [bytes(f[:cap]).hex() + ("..(%d bytes)" % len(f) if len(f) > cap else "")
            for f in frames]


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


HDR_LIMITS = {"svc": 64, "verb": 64, "ws": 64, "cid": 128, "tok": 4096}
# A body no runtime may accept: 400 (413 when over the verb's max_body, 429
# or 504 when refused or expired in the kernel's queue first).
REFUSED_BODY = {400, 413, 429, 504}


# cairn_msgpack_check's item sizes for 0xc4..0xdf: negative, the bytes of a
# length that follows; positive, the whole item's size.
_FIXED = [-1, -2, -4, -1, -2, -4, 5, 9, 2, 3, 5, 9, 2, 3, 5, 9, 3, 4, 6, 10, 18,
          -1, -2, -4, -2, -4, -2, -4]


def mp_valid(buf, max_depth=32):
    """cairn_msgpack_check (sdk/msg.c) in Python: exactly one msgpack value,
    containers at most max_depth deep (empty ones count), every str UTF-8.
    What it refuses, no runtime may hand to a handler."""
    n, pos, stack = len(buf), 0, [1]
    while stack:
        if pos >= n:
            return False
        c, children, head = buf[pos], 0, 0
        if c <= 0x7F or c >= 0xE0 or c in (0xC0, 0xC2, 0xC3):
            skip = 1
        elif c <= 0x8F:
            skip, children = 1, 2 * (c & 0x0F)
        elif c <= 0x9F:
            skip, children = 1, c & 0x0F
        elif c <= 0xBF:
            skip, head = 1 + (c & 0x1F), 1
        elif c == 0xC1:
            return False
        else:
            f = _FIXED[c - 0xC4]
            if f > 0:
                skip = f
            else:
                if n - pos < 1 - f:
                    return False
                v = int.from_bytes(buf[pos + 1:pos + 1 - f], "big")
                if 0xDC <= c <= 0xDD:
                    skip, children = 1 - f, v
                elif c >= 0xDE:
                    skip, children = 1 - f, 2 * v
                else:
                    skip = 1 - f + v + (1 if 0xC7 <= c <= 0xC9 else 0)
                    head = 1 - f if 0xD9 <= c <= 0xDB else 0
        if skip > n - pos:
            return False
        if head:
            try:
                bytes(buf[pos + head:pos + skip]).decode()
            except UnicodeDecodeError:
                return False
        container = 0x80 <= c <= 0x9F or 0xDC <= c <= 0xDF
        pos += skip
        stack[-1] -= 1
        if container and len(stack) - 1 == max_depth:
            return False
        if children:
            if children > n - pos:
                return False
            stack.append(children)
        while stack and stack[-1] == 0:
            stack.pop()
    return pos == n


def _text(v):
    """The str a header value is, or None (not a str, or not UTF-8)."""
    if isinstance(v, BadStr):
        try:
            return bytes(v).decode()
        except UnicodeDecodeError:
            return None
    return v if isinstance(v, str) else None


def _uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 64


def header_refused(pairs, hb):
    """Whether cairn_hdr_decode must refuse this header (docs/PROTOCOL.md's
    limits); False where it may go either way."""
    if len(hb) > 64 * 1024 or not mp_valid(hb):
        return True
    if len(pairs) > 32:
        return True
    seen = set()
    for key, v in pairs:
        key = _text(key)
        if key is None:
            continue
        t = _text(v)
        if key in HDR_LIMITS:
            if t is None or len(t.encode()) > HDR_LIMITS[key] or "\0" in t:
                return True
            if key in ("svc", "verb") and t:
                seen.add(key)
        elif key == "id":
            if not (v is None or _uint(v) or (t is not None and len(t.encode()) <= 256)):
                return True
        elif key == "ttl":
            if not _uint(v):
                return True
        elif len(key.encode()) > 64 or (t is not None and len(t.encode()) > 1024):
            return True
    return seen != {"svc", "verb"}


class Lane:
    """One DEALER pipelining hostile requests and accounting for every reply."""

    def __init__(self, name, k, window=WINDOW):
        self.name = name
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(k.endpoint)
        self.window = window
        self.sent = self.got = 0
        self.pending = {}  # id -> (send time, frames, expect)
        self.recent = collections.deque(maxlen=64)

    def outstanding(self):
        return self.sent - self.got

    def send(self, frames, rid=None, expect=None):
        self.sock.send_multipart([b""] + frames)
        self.sent += 1
        self.recent.append(frames)
        if rid is not None:
            self.pending[rid] = (time.monotonic(), frames, expect)

    def close(self):
        self.sock.close()


# ---- the suite ------------------------------------------------------------

class Adversarial(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        log(f"adversarial: CAIRN_ADV_SEED={SEED} CAIRN_ADV_SECONDS={SECONDS:g} "
            f"(rerun with the same seed to reproduce)")
        cls.t0 = time.monotonic()
        cls.k = Kernel(services=SERVICES, kernel_extra=KERNEL_EXTRA, heartbeat_ms=1000).start()
        cls.pinger = cls.k.client()
        cls.peak_kb = 0
        cls.ping_max = 0.0
        cls.stats = collections.Counter()
        cls.findings = []
        cls.dead = None  # why cairnd can no longer be tested
        cls.ids = {}
        cls.discover()
        cls.fixtures()
        cls.base = {p["name"]: (p["pid"], p["restarts"]) for p in cls.k.health()["plugins"]}
        log(f"adversarial: services {sorted(cls.verbs)}; process-mode pids "
            f"{ {n: v[0] for n, v in cls.base.items() if v[0]} }; "
            f"fields known for {len(VERB_FIELDS)} verbs, {len(FIELDS)} names")

    @classmethod
    def tearDownClass(cls):
        cls.pinger.close()
        cls.k.cleanup()
        log(f"adversarial: replies by status {dict(sorted(cls.stats.items()))}; "
            f"peak cairnd RSS {cls.peak_kb // 1024} MiB; slowest ping {cls.ping_max:.2f} s; "
            f"{time.monotonic() - cls.t0:.0f} s in all (seed {SEED})")

    @classmethod
    def call(cls, svc, verb, body=None, **hdr):
        h, b = cls.pinger.call(svc, verb, body, **hdr)
        assert h["st"] < 400, (svc, verb, h)
        return b

    @classmethod
    def discover(cls):
        services = cls.call("sys", "services")["services"]
        cls.verbs = {s["name"]: list(s["verbs"]) for s in services}
        cls.ids["svc"] = list(cls.verbs)
        cls.ids["verb"] = sorted({v for vs in cls.verbs.values() for v in vs})

    @classmethod
    def fixtures(cls):
        """A few real objects, so that hostile requests can name them."""
        if "tracking" not in cls.verbs:
            return
        eids, rids = [], []
        for i in range(3):
            eids.append(cls.call("tracking", "create_experiment",
                                 {"name": f"adv-{SEED}-{i}"})["experiment_id"])
            rids.append(cls.call("tracking", "create_run",
                                 {"experiment_id": eids[-1]})["run"]["info"]["run_id"])
        cls.call("tracking", "log_batch", {"run_id": rids[0], "metrics": [
            {"key": "loss", "value": 0.5, "timestamp": 1, "step": i} for i in range(10)],
            "params": [{"key": "lr", "value": "0.1"}], "tags": [{"key": "t", "value": "v"}]})
        # A long history: large replies for the clients that never read them.
        cls.big_run = rids[1]
        cls.call("tracking", "log_batch", {"run_id": cls.big_run, "metrics": [
            {"key": "big", "value": float(i), "timestamp": 1717171717171, "step": i}
            for i in range(100000)]})
        if "artifacts" in cls.verbs:
            a = cls.call("artifacts", "put_artifact", {"run_id": rids[0], "path": "a.txt",
                                                       "data": b"hello", "offset": 0,
                                                       "done": True})
            cls.ids["path"] = ["a.txt", a.get("path", "a.txt")]
        cls.ids.update(experiment_id=eids, run_id=rids, parent_run_id=rids,
                       experiment_ids=[eids], key=["loss", "big", "lr", "t"],
                       experiment_name=[f"adv-{SEED}-0"])
        if "auth" in cls.verbs:
            cls.call("auth", "create_user", {"user": "adv", "password": "correct horse battery"})
            t = cls.call("auth", "create_token", {"name": "adv"})
            cls.ids.update(user=["adv"], token=[t["token"]], token_id=[t["token_id"]])
        if "secrets" in cls.verbs:
            cls.call("secrets", "set_secret", {"name": "adv/s", "value": "v"})
            cls.ids["name"] = ["adv/s", "adv"]

    @classmethod
    def harvest(cls, body, depth=0):
        """Remember ids the services hand out, to name them in later requests."""
        if depth > 4:
            return
        if isinstance(body, dict):
            for key, v in body.items():
                if isinstance(key, str) and key.endswith("_id") and isinstance(v, str) \
                        and 0 < len(v) <= 64:
                    pool = cls.ids.setdefault(key, [])
                    if v not in pool:
                        pool.append(v)
                        del pool[:-50]
                elif isinstance(v, (dict, list)):
                    cls.harvest(v, depth + 1)
        elif isinstance(body, list):
            for v in body[:8]:
                cls.harvest(v, depth + 1)

    # ---- checks ----------------------------------------------------------

    def setUp(self):
        type(self).findings = []  # each test reports its own
        if self.dead:
            self.fail(f"cairnd is gone or hung since an earlier test: {self.dead}")

    def tearDown(self):
        if not self.dead and self.k.proc.poll() is None:
            log(f"adversarial: {self._testMethodName}: cairnd's RSS now "
                f"{rss_kb(self.k.proc.pid) // 1024} MiB, peak {self.peak_kb // 1024} MiB")

    def fail_with(self, what, recent=()):
        lines = [f"{what} (CAIRN_ADV_SEED={SEED})"]
        for fr in list(recent)[-6:]:
            lines.append(f"  recent request: {show(fr, 160)}")
        tail = self.k.read_log()[-4000:]
        self.fail("\n".join(lines) + f"\ncairnd log tail:\n{tail}")

    def checkpoint(self, where, recent=()):
        """cairnd and every plugin alive and unchanged, ping within PING_S,
        RSS below the cap, nothing found so far."""
        if self.k.proc.poll() is not None:
            type(self).dead = f"{where}: exited with {self.k.proc.returncode}"
            self.fail_with(f"{where}: cairnd exited with {self.k.proc.returncode}", recent)
        t = time.monotonic()
        try:
            h, b = self.pinger.call("sys", "ping", timeout=PING_S)
        except TimeoutError:
            self.pinger.reset()
            type(self).dead = f"{where}: no answer to sys.ping"
            self.fail_with(f"{where}: sys.ping unanswered for {PING_S} s "
                           f"(cairnd is hung or starved)", recent)
        took = time.monotonic() - t
        type(self).ping_max = max(self.ping_max, took)
        self.assertEqual(h["st"], 200, h)
        h, health = self.pinger.call("sys", "health", timeout=PING_S)
        for p in health["plugins"]:
            pid, restarts = self.base[p["name"]]
            if p["state"] != "up" or p["restarts"] != restarts or p["pid"] != pid:
                self.fail_with(f"{where}: plugin {p['name']} crashed or restarted: {p}", recent)
        self.rss(where)
        if self.findings:
            self.fail_with(f"{where}: {len(self.findings)} bad replies; the first ones:\n" +
                           "\n".join(self.findings[:8]), recent)
        return took

    def rss(self, where):
        kb = rss_kb(self.k.proc.pid)
        type(self).peak_kb = max(self.peak_kb, kb)
        if kb >= RSS_CAP_KB:
            self.fail_with(f"{where}: cairnd's RSS is {kb // 1024} MiB, over the "
                           f"{RSS_CAP_KB // 1024} MiB cap")
        return kb

    def note(self, what, frames=None):
        if len(self.findings) < 100:
            self.findings.append(what + (f"\n    request: {show(frames, 200)}" if frames else ""))

    def judge(self, lane, frames):
        """Check one reply on a lane; returns (hdr, body) or None."""
        try:
            h, body = decode_reply(frames)
        except BadReply as e:
            self.note(f"{lane.name}: {e}")
            return None
        st = h["st"]
        self.stats[st] += 1
        rid = h.get("id")
        # True == 1 in Python: a hostile header's boolean id must not take
        # the place of request 1 (left pending when its header was no map)
        ours = isinstance(rid, (int, str)) and not isinstance(rid, bool)
        sent = lane.pending.pop(rid, None) if ours else None
        req = sent[1] if sent else None
        if rid is not None and sent is None and lane.name == "envelopes":
            self.note(f"{lane.name}: a reply to an id never sent or answered twice: {h}")
        if sent and time.monotonic() - sent[0] > REPLY_S:
            self.note(f"{lane.name}: answered after {time.monotonic() - sent[0]:.1f} s, past "
                      f"the {REPLY_S:.0f} s deadline: {h}", req)
        if st not in STATUSES:
            self.note(f"{lane.name}: status {st} ({h.get('code')}: {h.get('err')})", req)
        elif sent and sent[2] and st not in sent[2]:
            self.note(f"{lane.name}: expected {sorted(sent[2])}, got {st} "
                      f"({h.get('code')}: {h.get('err')})", req)
        if st < 400:
            self.harvest(body)
        return h, body

    def drain(self, lanes, where, keep=0):
        """Read replies until each lane has at most keep outstanding; every
        request must be answered within REPLY_S."""
        poller = zmq.Poller()
        for ln in lanes:
            poller.register(ln.sock, zmq.POLLIN)
        end = time.monotonic() + REPLY_S
        while any(ln.outstanding() > keep for ln in lanes):
            if time.monotonic() > end:
                late = {ln.name: ln.outstanding() for ln in lanes}
                self.fail_with(f"{where}: requests unanswered after {REPLY_S:.0f} s: {late}",
                               [f for ln in lanes for f in ln.recent])
            for sock, _ in poller.poll(100):
                ln = next(x for x in lanes if x.sock is sock)
                while ln.sock.poll(0):
                    ln.got += 1
                    self.judge(ln, ln.sock.recv_multipart())
        for ln in lanes:
            if ln.got > ln.sent:
                self.fail_with(f"{where}: {ln.name} got {ln.got} replies to {ln.sent} requests")
            if keep == 0:
                ln.pending.clear()

    # ---- phase 1: hostile envelopes to every verb --------------------------

    def header(self, g, svc, verb, rid):
        h = {"id": rid, "svc": svc, "verb": verb, "ttl": g.r.randint(100, TTL_MS)}
        if g.r.random() < 0.3:
            h["ws"] = g.r.choice(["default", "team-a", "w" * 64, "é" * 32])
        if g.r.random() < 0.3:
            h["cid"] = g.r.choice(["adv-%d" % rid, "c" * 128, "\u00fc" * 64])
        return h

    def mutate(self, g, h):
        """1-3 header mutations; returns (header bytes, must it be refused)."""
        r = g.r
        pairs = Pairs(h.items())

        def without(key):
            return Pairs([(a, b) for a, b in pairs if a != key])

        for _ in range(r.randint(1, 3)):
            k = r.randrange(12)
            if k == 0:  # a known key at, past and far past its limit
                key = r.choice(list(HDR_LIMITS))
                lim = HDR_LIMITS[key]
                pairs = without(key) + [(key, "z" * r.choice([lim, lim + 1, lim * 4, 70000]))]
            elif k == 1:  # a known key of any type
                key = r.choice(list(HDR_LIMITS) + ["ttl"])
                pairs = without(key) + [(key, g.hostile())]
            elif k == 2:  # NUL or invalid UTF-8 inside a known string key
                key = r.choice(["svc", "verb", "ws", "cid", "tok", "id"])
                pairs = without(key) + [(key, BadStr(r.choice([b"a\x00b", b"\x00"] + BAD_UTF8)))]
            elif k == 3:  # unknown keys: name and string value at and past their limits
                n, m = r.choice([(64, 10), (65, 10), (10, 1024), (10, 1025), (300, 5000)])
                pairs.append(("q" * n, "v" * m))
            elif k == 4:  # an unknown key holding anything, deep nesting included
                pairs.append((r.choice(FIELDS), g.hostile()))
            elif k == 5:  # key count at and past 32
                n = r.choice([32, 33, 100])
                pairs += [("x%d" % i, i) for i in range(max(0, n - len(pairs)))]
            elif k == 6:  # duplicate or non-str keys
                pairs.append(r.choice([("svc", "echo"), (1, "int key"), (None, 1),
                                       (b"bin", 1), (1.5, 2), ((), 3)]))
            elif k == 7:  # svc or verb missing, empty, unknown
                key = r.choice(["svc", "verb"])
                pairs = without(key)
                if r.random() < 0.6:
                    pairs.append((key, r.choice(["", "nosuch", "ECHO", "echo ", "sys"])))
            elif k == 8:  # the id: missing, str at its limit, wrong types
                pairs = without("id") + [("id", r.choice([
                    None, "", "i" * 256, "i\x00d", -1, 1.5, [1], {"a": 1}, b"id",
                    (1 << 64) - 1, True]))]
            elif k == 9:  # ttl: zero, past max_ttl_ms, huge
                pairs = without("ttl") + [("ttl", r.choice([0, 1, TTL_MS * 10, (1 << 64) - 1]))]
            elif k == 10:  # the header is no map at all
                return enc(g.hostile()), True
            else:  # trailing or truncated bytes
                b = enc(pairs)
                return (b + b"\xc0" if r.random() < 0.5 else b[:r.randrange(len(b))]), True
        hb = enc(pairs)
        return hb, header_refused(pairs, hb)

    def test_1_envelopes(self):
        """Hostile envelopes to every verb of every service, pipelined on two
        DEALERs: valid headers with hostile bodies (ids matched, every id
        answered once; a body certainly invalid must get 400 or 413) and
        hostile headers (counted; one past a documented limit must get 400)."""
        g = Gen(random.Random(SEED), self.ids)
        clean = Lane("envelopes", self.k)
        dirty = Lane("headers", self.k)
        poller = zmq.Poller()
        poller.register(clean.sock, zmq.POLLIN)
        poller.register(dirty.sock, zmq.POLLIN)
        targets = [(s, v) for s, vs in sorted(self.verbs.items()) for v in vs]
        rid = 0
        huge_left = 3  # bodies past max_frame: costly to send, a few suffice
        end = time.monotonic() + SECONDS
        next_check = time.monotonic() + 5
        per_verb = collections.Counter()
        try:
            while time.monotonic() < end:
                for ln in (clean, dirty):
                    while ln.outstanding() < ln.window:
                        rid += 1
                        svc, verb = targets[rid % len(targets)] if g.r.random() < 0.5 \
                            else g.r.choice(targets)
                        per_verb[svc, verb] += 1
                        h = self.header(g, svc, verb, rid)
                        body = g.body(verb)
                        if huge_left and g.r.random() < 0.001:
                            huge_left -= 1
                            body = enc(b"x" * (MAX_FRAME + 1))
                        if ln is clean:
                            if g.r.random() < 0.05:
                                h["id"] = "s%d" % rid
                            expect = None
                            if len(body) > MAX_FRAME:
                                expect = {400}
                            elif body and not mp_valid(body):  # empty: nil
                                expect = {400} if svc == "sys" else REFUSED_BODY
                            elif svc == "sys":
                                expect = {200}  # the kernel's check agrees with ours
                            ln.send([b"CAIRN/1", enc(h), body], h["id"], expect)
                        else:
                            hb, refuse = self.mutate(g, h)
                            ln.send([b"CAIRN/1", hb, body], rid, {400} if refuse else None)
                for sock, _ in poller.poll(50):
                    ln = clean if sock is clean.sock else dirty
                    while ln.sock.poll(0):
                        ln.got += 1
                        self.judge(ln, ln.sock.recv_multipart())
                if time.monotonic() > next_check:
                    self.checkpoint("envelopes (under load)", clean.recent)
                    self.drain([clean, dirty], "envelopes")
                    self.checkpoint("envelopes (drained)", clean.recent)
                    next_check = time.monotonic() + 5
            self.drain([clean, dirty], "envelopes (end)")
            self.checkpoint("envelopes (end)", clean.recent)
        finally:
            log(f"adversarial: envelopes: {clean.sent} with hostile bodies, {dirty.sent} "
                f"with hostile headers, {len(per_verb)} verbs")
            clean.close()
            dirty.close()

    # ---- phase 2: random frame shapes ----------------------------------------

    def test_2_frames(self):
        """0..8 frames of random bytes (and near misses: a real tag, header,
        body in the wrong places, no delimiter): each gets one well-formed
        answer, and the kernel lives."""
        r = random.Random(SEED + 2)
        g = Gen(r, self.ids)
        ln = Lane("frames", self.k)
        good_hdr = enc({"id": 1, "svc": "echo", "verb": "echo"})
        parts = [b"", b"CAIRN/1", b"CAIRN/2", b"CAIRN/", good_hdr, enc({"svc": "sys"}),
                 b"\xc0", b"\xc1", enc([1, 2]), b"\x00" * 70000]
        try:
            for i in range(3000):
                n = r.randint(0, 8)
                frames = [r.choice(parts) if r.random() < 0.5 else
                          bytes(r.getrandbits(8) for _ in range(r.randint(0, 40)))
                          for _ in range(n)]
                if r.random() < 0.3 and n >= 3:
                    frames[:3] = [b"CAIRN/1", enc(self.header(g, "echo", "echo", i)),
                                  g.body("echo")]
                # DEALER: the delimiter is ours to send or to forget.
                out = frames if (frames and r.random() < 0.2) else [b""] + frames
                ln.sock.send_multipart(out)
                ln.sent += 1
                ln.recent.append(out)
                if ln.outstanding() >= WINDOW:
                    self.drain([ln], "frames", keep=WINDOW // 2)
            self.drain([ln], "frames (end)")
            self.checkpoint("frames", ln.recent)
        finally:
            ln.close()

    # ---- phase 3: connection churn ------------------------------------------

    def test_3_churn(self):
        """Thousands of connections opened and dropped: idle, mid-request
        (a reply still owed, a big frame cut short), after a request and its
        reply, raw TCP garbage and half ZMTP greetings, a frame past
        ZMQ_MAXMSGSIZE."""
        r = random.Random(SEED + 3)
        g = Gen(r, self.ids)
        ctx = zmq.Context.instance()
        big = enc({"ms": 50, "pad": b"p" * (4 * MiB)})
        targets = [(a, v) for a, vs in sorted(self.verbs.items()) for v in vs]
        cheap = [t for t in (("echo", "sleep"), ("echo2", "sleep"), ("echo", "echo"),
                             ("tracking", "get_run"), ("sys", "ping"),
                             ("artifacts", "get_artifact")) if t[0] in self.verbs]
        opened = answered = 0
        for batch in range(20):
            socks, raws, readers = [], [], []
            for i in range(100):
                if r.random() < 0.12:
                    s = socket.create_connection(("127.0.0.1", self.k.port), timeout=5)
                    raws.append(s)
                    continue
                s = ctx.socket(zmq.REQ if r.random() < 0.2 else zmq.DEALER)
                s.setsockopt(zmq.LINGER, 0)
                s.connect(self.k.endpoint)
                socks.append(s)
                delim = [b""] if s.type == zmq.DEALER else []
                act = r.random()
                if act < 0.4:  # a request whose reply is never read
                    svc, verb = r.choice(cheap)
                    s.send_multipart(delim + [b"CAIRN/1", enc(
                        {"id": i, "svc": svc, "verb": verb, "ttl": 2000}),
                        enc({"ms": r.randint(0, 300),
                             "run_id": r.choice(self.ids.get("run_id", ["x"])),
                             "path": "a.txt"})])
                elif act < 0.45:  # a big request, the connection dropped mid-frame
                    s.send_multipart(delim + [b"CAIRN/1", enc(
                        {"id": i, "svc": "echo", "verb": "sleep"}), big], copy=False)
                elif act < 0.6:  # hostile, never read
                    s.send_multipart(delim + [b"CAIRN/1", enc(self.header(
                        g, *r.choice(targets), i)), g.body(r.choice(targets)[1])])
                elif act < 0.7:  # a request and its reply
                    s.send_multipart(delim + [b"CAIRN/1", enc(
                        {"id": i, "svc": "sys", "verb": "ping"}), b""])
                    readers.append(s)
            opened += len(socks) + len(raws)
            for s in raws:  # garbage, a half ZMTP greeting, or nothing
                try:
                    s.sendall(r.choice([
                        b"", b"\xff" + b"\x00" * 8 + b"\x7f\x03",
                        b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03\x00NULL",
                        bytes(r.getrandbits(8) for _ in range(r.randint(1, 300)))]))
                except OSError:
                    pass
            for s in readers:
                if not s.poll(int(REPLY_S * 1000)):
                    self.fail_with(f"churn: a sys.ping unanswered for {REPLY_S:.0f} s")
                f = s.recv_multipart()
                try:
                    decode_reply(f if s.type == zmq.DEALER else [b""] + f)
                except BadReply as e:
                    self.note(f"churn: {e}")
                answered += 1
            r.shuffle(socks)
            for s in socks:
                s.close()
            for s in raws:
                s.close()
            if batch % 5 == 4:
                self.checkpoint(f"churn (batch {batch + 1})")
        # A frame past ZMQ_MAXMSGSIZE (1.25 x max_frame + 1 MiB): libzmq drops
        # the connection; the kernel lives and answers the next one.
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.k.endpoint)
        s.send_multipart([b"", b"CAIRN/1", enc({"id": 1, "svc": "echo", "verb": "echo"}),
                          b"\x00" * (MAX_FRAME + MAX_FRAME // 4 + 2 * MiB)], copy=False)
        self.checkpoint("churn (a frame past ZMQ_MAXMSGSIZE)")
        s.close()
        log(f"adversarial: churn: {opened} connections opened and dropped, "
            f"{answered} of them read their reply")
        self.checkpoint("churn (end)")

    # ---- phase 4: clients that never read -------------------------------------

    def never_reader(self):
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 64)  # this side must not buffer gigabytes
        s.setsockopt(zmq.RCVHWM, 1)
        s.setsockopt(zmq.RCVBUF, 4096)  # nor read ahead what it never reads
        s.connect(self.k.endpoint)
        return s

    def test_4_never_read_many(self):
        """One client sends 120,000 requests (2 KiB echoes) and never reads
        a reply: past the frontend's SNDHWM (100,000 messages a peer) and
        what TCP buffers, the kernel must drop its replies rather than block
        on them; others are served throughout, and after it goes."""
        s = self.never_reader()
        frames = [b"", b"CAIRN/1", enc({"id": 2, "svc": "echo", "verb": "echo"}),
                  enc(b"e" * 2048)]
        sent = 0
        try:
            for i in range(120000):
                if not s.poll(int(REPLY_S * 1000), zmq.POLLOUT):
                    break  # the kernel stopped reading: the checkpoint says why
                s.send_multipart(frames)
                sent += 1
                if i % 20000 == 19999:
                    self.checkpoint(f"never-read ({i + 1} requests sent)")
            self.checkpoint(f"never-read ({sent} requests sent)")
        finally:
            s.close()
            log(f"adversarial: never-read: {sent} requests, no reply read")
        self.checkpoint("never-read (the client gone)")

    def service_busy(self, name):
        for p in self.k.health()["plugins"]:
            if p["name"] == name:
                return p["inflight"] + p["queued"]
        return 1 << 30

    def test_5_never_read_large(self):
        """Clients that ask for large replies (a 100,000-point metric
        history, 4 MiB echoes) and never read them, paced so that the
        services take every request rather than refuse it (429): cairnd's
        memory stays bounded (RSS below the cap) whether it drops those
        replies, refuses the requests or stops reading them."""
        hist = self.never_reader()
        echo = self.never_reader()
        for s in (hist, echo):
            s.setsockopt(zmq.SNDHWM, 1)  # asked for is what the kernel took
        rhdr = enc({"id": 1, "svc": "tracking", "verb": "get_metric_history", "ttl": TTL_MS})
        rbody = enc({"run_id": getattr(self, "big_run", ""), "key": "big",
                     "max_results": 100000})
        ehdr = enc({"id": 2, "svc": "echo", "verb": "echo", "ttl": TTL_MS})
        ebody = enc({"pad": b"e" * (4 * MiB)})
        asked = 0  # bytes of replies asked for
        budget = 2 * RSS_CAP_KB * 1024  # twice the cap: kept, it could not fit
        end = time.monotonic() + 30
        stalled = None
        n = 0
        try:
            while asked < budget and time.monotonic() < end:
                n += 1
                moved = False
                if "tracking" in self.verbs and self.service_busy("tracking") < 2 and \
                        hist.poll(0, zmq.POLLOUT):
                    hist.send_multipart([b"", b"CAIRN/1", rhdr, rbody])
                    asked += 4 * MiB  # 100,000 points: ~4 MiB packed
                    moved = True
                if self.service_busy("echo") < 16 and echo.poll(0, zmq.POLLOUT):
                    echo.send_multipart([b"", b"CAIRN/1", ehdr, ebody], copy=False)
                    asked += 4 * MiB
                    moved = True
                now = time.monotonic()
                if moved:
                    stalled = None
                elif stalled is None:
                    stalled = now
                elif now - stalled > 5:
                    break  # the kernel stopped taking them: bounded too
                else:
                    echo.poll(10, zmq.POLLOUT)  # a bounded wait for room
                self.rss(f"never-read large ({asked >> 20} MiB of replies asked for)")
                if n % 64 == 0:
                    self.checkpoint(f"never-read large ({asked >> 20} MiB asked for)")
            self.checkpoint(f"never-read large ({asked >> 20} MiB asked for)")
        finally:
            hist.close()
            echo.close()
            log(f"adversarial: never-read large: {asked >> 20} MiB of replies asked for "
                f"and never read in {n} turns; peak RSS {self.peak_kb // 1024} MiB")
        self.checkpoint("never-read large (the clients gone)")

    # ---- phase 5: floods past the queue bound ----------------------------------

    def test_6_flood(self):
        """Pipelined floods on one DEALER past kernel.max_queue, small and
        with 1 MiB bodies: every request answered (429s among them, saying
        {"delivered": false}), ping served meanwhile, RSS bounded."""
        for svc in [s for s in ("echo", "echo2") if s in self.verbs]:
            for pad, n in ((0, 2000), (MiB, 400)):
                ln = Lane(f"flood {svc}", self.k, window=n)
                body = enc({"ms": 500, "pad": b"f" * pad})
                refused = 0
                for i in range(n):
                    ln.send([b"CAIRN/1", enc({"id": i, "svc": svc, "verb": "sleep",
                                              "ttl": TTL_MS}), body], i)
                    if i == n // 2:
                        self.checkpoint(f"flood {svc} (sending)")
                poller_end = time.monotonic() + REPLY_S
                while ln.outstanding():
                    if time.monotonic() > poller_end:
                        self.fail_with(f"flood {svc}: {ln.outstanding()} of {n} unanswered")
                    if ln.sock.poll(100):
                        ln.got += 1
                        got = self.judge(ln, ln.sock.recv_multipart())
                        if got and got[0]["st"] == 429:
                            refused += 1
                            if got[1] != {"delivered": False}:
                                self.note(f"flood: a 429 without {{delivered: false}}: {got}")
                ln.close()
                if not pad:  # 2,000 at once (the big ones may trickle in slower than served)
                    self.assertGreater(refused, 0, f"flood {svc}: nothing refused with 429")
                log(f"adversarial: flood {svc}: {n} x {pad} B, {refused} refused with 429")
                self.checkpoint(f"flood {svc} ({n} x {pad} B)")

    # ---- phase 7: every body field of the vault, auth and audit verbs --------

    def test_7_fields(self):
        """Each body field of the auth, audit and secrets verbs (FIELD_SPECS,
        from docs/AUTH.md, AUDIT.md and SECRETS.md), the others plausible:
        empty, at its limit and past it (400 or 413), of every wrong type (400;
        nil as well, or the field taken as absent), nested 30, 33 and 1000
        deep (400, or 413 past the verb's max_body). audit.append is the
        kernel's only: 403 whatever the body holds, or 400/413 when the kernel
        refuses the body first."""
        ln = Lane("fields", self.k)
        sent = 0
        try:
            for (svc, verb), fields in sorted(FIELD_SPECS.items()):
                if svc not in self.verbs or verb not in self.verbs[svc]:
                    continue
                base = {f: good for f, (_, _, good) in fields.items()}
                for f, (kind, limit, good) in fields.items():
                    for v, expect in field_variants(kind, limit):
                        body = dict(base)
                        body[f] = v
                        if verb == "append":  # refused by the kernel, or 403
                            expect = {400, 403, 413}
                        elif f == "value" and type(v) is bytes:
                            expect = None  # a secret's value may be bin
                        sent += 1
                        ln.send([b"CAIRN/1", enc({"id": sent, "svc": svc, "verb": verb,
                                                  "ttl": TTL_MS}), enc(body)], sent, expect)
                        if ln.outstanding() >= WINDOW:
                            self.drain([ln], f"fields ({svc}.{verb})", keep=WINDOW // 2)
                    self.drain([ln], f"fields ({svc}.{verb} {f})")
            self.drain([ln], "fields (end)")
            self.checkpoint("fields", ln.recent)
        finally:
            log(f"adversarial: fields: {sent} requests, one field hostile each")
            ln.close()

    # ---- phase 8: hostile HTTP to the gateway ---------------------------------

    def owner_token(self):
        with open(os.path.join(self.k.state, "owner.token")) as f:
            return f.read().strip()

    def test_8_http(self):
        """HTTP_REQUESTS hostile requests over 4 threads, each on its own
        connection: every route of the gateway's MLflow table and
        /api/v1/{svc}/{verb} for every verb, bodies and query strings
        hostile as in phase 1 but as JSON (not JSON, duplicate keys, nested
        past the limit, over max_body, invalid UTF-8), hostile headers
        (credentials, workspace, 200 of them, one of 70 KB), and requests
        that are not HTTP. Each well formed request is answered within
        REPLY_S with a status in HTTP_STATUSES and, under /api and
        /ajax-api, a JSON body; the rest are answered or closed. Then the
        checkpoint: the gateway's process unchanged, everything alive."""
        import concurrent.futures
        import json
        hostile = adv_http.Hostile(Gen(random.Random(SEED ^ 0x8888), self.ids),
                                   self.verbs, adv_http.mlflow_routes(), HTTP_MAX_BODY,
                                   VERB_FIELDS, FIELDS, self.owner_token())
        reqs = [hostile.request() for _ in range(HTTP_REQUESTS)]
        statuses = collections.Counter()

        def one(item):
            data, well_formed = item
            try:
                st, head, body, took = adv_http.exchange(HTTP_PORT, data, REPLY_S)
            except OSError as e:
                return data, well_formed, None, str(e), b"", 0.0
            return data, well_formed, st, head, body, took

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for data, well_formed, st, head, body, took in pool.map(one, reqs):
                statuses[st] += 1
                first = data[:160]
                if not well_formed:
                    continue
                head_len = data.find(b"\r\n\r\n")
                if st is None and (head_len < 0 or head_len > HTTP_HEAD_MAX):
                    continue  # past libmicrohttpd's memory for a request's head
                if st is None:
                    if took >= REPLY_S:
                        self.note(f"http: no answer within {REPLY_S:.0f} s to {first!r}")
                    elif not (HTTP_TIMEOUT_S - 1 < took):  # a slow body is dropped
                        self.note(f"http: closed without an answer ({head[:80]!r}) to a "
                                  f"request of {len(data)} bytes: {first!r}")
                        with open(os.path.join(self.k.tmp, "http-unanswered.bin"), "wb") as f:
                            f.write(data)
                    continue
                if st not in HTTP_STATUSES:
                    self.note(f"http: status {st} ({body[:200]!r}) to {first!r}")
                path = data.split(b" ", 2)[1] if data.count(b" ") >= 2 else b""
                # libmicrohttpd's own refusals (a header or URI past its
                # per-connection memory: 414, 431) are HTML; the gateway's JSON
                if re.match(rb"(/ws/[^/]*)?/(ajax-)?api/", path) and st not in (
                        413, 414, 431) and body:
                    try:
                        json.loads(body)
                    except ValueError:
                        self.note(f"http: a body that is not JSON ({body[:120]!r}) "
                                  f"to {first!r}")
        log(f"adversarial: http: {len(reqs)} requests, by status "
            f"{dict(sorted(statuses.items(), key=lambda x: str(x[0])))}")
        gw = next(p for p in self.k.health()["plugins"] if p["name"] == "gateway")
        self.assertLess(rss_kb(gw["pid"]), 512 * 1024, "the gateway's RSS is bounded")
        self.checkpoint("http")

    # ---- phase 8c: Studio's routes: event streams and signed links -------------

    @staticmethod
    def stream_head(data, deadline_s):
        """Send data; read until the answer's head and, for a stream, its
        `ready` event are in (or the server closes, or deadline_s pass).
        Returns (status or None, head, body bytes)."""
        def done(got):
            head, sep, body = got.partition(b"\r\n\r\n")
            return sep and (b"text/event-stream" not in head or b"event: ready" in body)
        st, head, body, _ = adv_http.exchange(HTTP_PORT, data, deadline_s, done)
        return st, head, body

    def studio_requests(self, rng):
        """Hostile requests to GET /api/v1/events, POST
        /api/v1/artifacts/download_url and GET /api/v1/artifacts/download/:
        subjects empty, many, long, binary, of nothing; bodies of every
        wrong shape; sealed links made up, cut, flipped and far too long;
        tokens good, bad and huge; workspaces odd."""
        from urllib.parse import quote
        runs = self.ids["run_id"]
        subjects = ["", "x", "%00", "%ff%fe", "a" * 200, "b" * 5000, runs[0], runs[-1],
                    "../../etc", "'; DROP TABLE runs; --"]
        tokens = [self.owner_token(), "", "bogus", "x" * 600, self.ids.get("token", ["t"])[0]]
        bodies = [b"", b"{}", b"[]", b"null", b"{", b'{"run_id": 1, "path": 2}',
                  b'{"run_id": "' + runs[0].encode() + b'", "path": ""}',
                  b'{"run_id": "' + runs[0].encode() + b'", "path": "s.txt"}',
                  b'{"run_id": "' + runs[0].encode() + b'", "path": "' + b"p/" * 3000 + b'"}',
                  b'{"run_id": "' + runs[0].encode() + b'", "path": "../../../etc/passwd"}',
                  b'{"run_id": {"a": [' * 200 + b']}}' * 200,
                  b'{"run_id": "\xff\xfe", "path": "a.txt"}']
        out = []
        for _ in range(STUDIO_REQUESTS):
            tok = rng.choice(tokens)
            hdrs = [b"Host: x", b"Connection: close"]
            if tok:
                hdrs.append(b"Authorization: Bearer " + tok.encode())
            if rng.random() < 0.2:
                hdrs.append(b"cairn-workspace: " + rng.choice([b"", b"nowhere", b"w" * 300]))
            kind = rng.randrange(3)
            if kind == 0:
                n = rng.choice([0, 1, 2, 100, 101, 300])
                q = "&".join(f"{rng.choice(['run', 'job', 'other', ''])}="
                             f"{quote(rng.choice(subjects), safe='%')}" for _ in range(n))
                line = f"{rng.choice(['GET', 'GET', 'POST', 'DELETE'])} /api/v1/events?{q} HTTP/1.1"
                out.append(("events", line.encode() + b"\r\n" + b"\r\n".join(hdrs) + b"\r\n\r\n"))
            elif kind == 1:
                body = rng.choice(bodies)
                hdrs += [b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
                out.append(("download_url", b"POST /api/v1/artifacts/download_url HTTP/1.1\r\n" +
                            b"\r\n".join(hdrs) + b"\r\n\r\n" + body))
            else:
                sealed = rng.choice([b"", b"A", b"A" * 100, b"A" * 20000, b"%00%ff",
                                     bytes(rng.choice(b"ABCabc019-_") for _ in range(rng.randrange(300)))])
                name = rng.choice([b"f.txt", b"", b"..", b"%2e%2e"])
                out.append(("download", b"GET /api/v1/artifacts/download/" + sealed + b"/" + name +
                            b" HTTP/1.1\r\n" + b"\r\n".join(hdrs) + b"\r\n\r\n"))
        return out

    def test_8c_studio_routes(self):
        """STUDIO_REQUESTS hostile requests to the routes Cairn Studio uses
        beyond the verbs (event streams, signed download links) over 4
        threads: each answered within REPLY_S with a status the gateway may
        give, JSON unless it is a stream; a real link, once made, still
        downloads; then the checkpoint."""
        import concurrent.futures
        import json
        # a run and a file of this phase's own (the earlier phases delete
        # what they find)
        eid = self.call("tracking", "create_experiment",
                        {"name": f"adv-{SEED}-studio"})["experiment_id"]
        rid = self.call("tracking", "create_run",
                        {"experiment_id": eid})["run"]["info"]["run_id"]
        self.call("artifacts", "put_artifact", {"run_id": rid, "path": "s.txt", "data": b"hello",
                                                "offset": 0, "done": True})
        self.ids["run_id"] = [rid] + list(self.ids["run_id"])
        reqs = self.studio_requests(random.Random(SEED ^ 0x8C8C))
        statuses = collections.Counter()

        def one(item):
            try:
                return item, self.stream_head(item[1], REPLY_S)
            except OSError as e:
                return item, (None, str(e).encode(), b"")

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for (kind, data), (st, head, body) in pool.map(one, reqs):
                statuses[(kind, st)] += 1
                if st is None:
                    # a head near libmicrohttpd's 32 KiB a connection leaves
                    # no room for the parsed query and an answer: closed
                    if len(data) < 24 << 10:
                        self.note(f"studio: no answer to {len(data)} bytes: {data[:160]!r}")
                    continue
                if st not in HTTP_STATUSES:
                    self.note(f"studio: status {st} ({body[:200]!r}) to {data[:160]!r}")
                elif st == 200 and kind == "events" and not re.match(
                        rb"([0-9a-fA-F]+\r\n)?retry: ", body):  # chunked
                    self.note(f"studio: a stream that is not SSE ({body[:80]!r})")
                elif st not in (200, 413, 414, 431) and body:
                    try:
                        json.loads(body)
                    except ValueError:
                        self.note(f"studio: a body that is not JSON ({body[:120]!r}) "
                                  f"to {data[:160]!r}")
        log(f"adversarial: studio routes: {len(reqs)} requests, by route and status "
            f"{dict(sorted(statuses.items(), key=str))}")
        import http.client  # after it all, a real link still works
        c = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=REPLY_S)
        c.request("POST", "/api/v1/artifacts/download_url",
                  json.dumps({"run_id": rid, "path": "s.txt"}),
                  {"Authorization": f"Bearer {self.owner_token()}"})
        r = c.getresponse()
        made = r.read()
        self.assertEqual(r.status, 200, made)
        c.request("GET", json.loads(made)["url"])
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"hello"))
        c.close()
        self.checkpoint("studio routes")

    # ---- the scorer's own HTTP -----------------------------------------------------

    @classmethod
    def scoring_fixtures(cls):
        """A model trained here and registered; endpoint adv-key (key auth)
        with a model deployment and a python one, adv-tok (token auth)."""
        import numpy as np
        import xgboost as xgb
        sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
        from cairn.registry import Registry
        rng = np.random.default_rng(SEED)
        x = rng.random((200, 4), dtype=np.float32)
        b = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                      xgb.DMatrix(x, label=(x[:, 0] > 0.5), feature_names=[
                          f"f{i}" for i in range(4)]), 5)
        d = os.path.join(cls.k.tmp, "adv-model")
        os.makedirs(d, exist_ok=True)
        b.save_model(os.path.join(d, "model.json"))
        code = os.path.join(cls.k.tmp, "adv-code")
        os.makedirs(code, exist_ok=True)
        with open(os.path.join(code, "score.py"), "w") as f:  # a script that never throws
            f.write("import json\ndef init():\n    pass\ndef run(raw):\n"
                    "    try:\n        return {'n': len(json.loads(raw))}\n"
                    "    except Exception as e:\n        raise ValueError(str(e)[:200])\n")
        reg = Registry(cls.k.endpoint)
        v = reg.register_model(d, "adv-model")["version"]
        reg.close()
        model = f"model:adv-model:{v}"
        cls.call("endpoints", "create_endpoint", {"name": "adv-key"})
        cls.call("endpoints", "create_deployment", {"endpoint": "adv-key", "name": "xgb-dep",
                                                    "model": model})
        cls.call("endpoints", "create_deployment", {
            "endpoint": "adv-key", "name": "py-dep", "model": model, "instance_count": 2,
            "code_configuration": {"code": code, "scoring_script": "score.py"},
            "request_settings": {"request_timeout_ms": 5000}})
        cls.call("endpoints", "update_traffic", {"endpoint": "adv-key",
                                                 "traffic": {"xgb-dep": 50, "py-dep": 50}})
        cls.call("endpoints", "create_endpoint", {"name": "adv-tok", "auth_mode": "token"})
        cls.call("endpoints", "create_deployment", {"endpoint": "adv-tok", "name": "xgb-dep",
                                                    "model": model})
        ep = cls.call("endpoints", "get_endpoint", {"name": "adv-key"})["endpoint"]
        key = cls.call("endpoints", "get_keys", {"endpoint": "adv-key"})["primary_key"]
        port = int(ep["scoring_uri"].split(":")[2].split("/")[0])
        return port, key

    def test_8b_scoring(self):
        """SCORE_REQUESTS hostile requests to the scorer's HTTP listener over
        4 threads (bodies in every shape it reads, good and bad, past its
        limits; keys and tokens good and bad; the cairn-deployment header),
        to a model deployment and a python one. Each well formed request
        is answered with a status the scorer may give and a JSON body; then
        the checkpoint: the scorer's process, its workers' pool and cairnd
        alive and unchanged, a good request still answered."""
        import concurrent.futures
        import json
        if "endpoints" not in self.verbs:
            self.skipTest("no endpoints service")
        port, key = self.scoring_fixtures()
        self.base = {p["name"]: (p["pid"], p["restarts"]) for p in self.k.health()["plugins"]}
        gen = adv_http.Scoring(random.Random(SEED ^ 0x5c0e), ["adv-key", "adv-tok"],
                               [key, self.owner_token()], ["xgb-dep", "py-dep"], 4, 16 << 20)
        reqs = [gen.request() for _ in range(SCORE_REQUESTS)]
        statuses = collections.Counter()

        def one(item):
            data, well_formed = item
            try:
                return (data, well_formed) + adv_http.exchange(port, data, REPLY_S)
            except OSError as e:
                return data, well_formed, None, str(e), b"", 0.0

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for data, well_formed, st, head, body, took in pool.map(one, reqs):
                statuses[st] += 1
                if not well_formed or (st is None and took >= HTTP_TIMEOUT_S):
                    continue
                first = data[:160]
                if st not in SCORE_STATUSES:
                    self.note(f"scoring: status {st} ({body[:200]!r}) to {first!r}")
                elif st not in (413, 414, 431) and body:
                    try:
                        json.loads(body)
                    except ValueError:
                        self.note(f"scoring: a body that is not JSON ({body[:120]!r}) "
                                  f"to {first!r}")
        log(f"adversarial: scoring: {len(reqs)} requests, by status "
            f"{dict(sorted(statuses.items(), key=lambda x: str(x[0])))}")
        row = b'{"instances": [[1, 2, 3, 4]]}'
        good = ("POST /endpoints/adv-key/score HTTP/1.1\r\nHost: x\r\nContent-Type: "
                f"application/json\r\nAuthorization: Bearer {key}\r\nContent-Length: "
                f"{len(row)}\r\nConnection: close\r\n\r\n").encode() + row
        st, _, body, _ = adv_http.exchange(port, good, REPLY_S)
        self.assertEqual(st, 200, body)
        self.checkpoint("scoring")

    # ---- the end --------------------------------------------------------------

    def test_9_end(self):
        """After it all: alive, well, bounded, and a clean stop with no
        sanitizer report in the log."""
        self.checkpoint("end")
        rc = self.k.stop()
        text = self.k.read_log()
        m = SANITIZER.search(text)
        if m:
            self.fail(f"a sanitizer or crash report in cairnd's log (seed {SEED}):\n"
                      f"{text[max(0, m.start() - 2000):m.start() + 6000]}")
        self.assertEqual(rc, 0, f"cairnd exited with {rc} (seed {SEED}):\n{text[-4000:]}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
