#!/usr/bin/python3
"""Regenerate the seed corpora under tests/fuzz/corpus/ (python3-msgpack).

The files are committed; run this only to change them:
    /usr/bin/python3 tests/fuzz/make_corpus.py [TARGET...]
(no TARGET: every target whose seeds it writes; see GENERATED).
Seeds are a few real inputs of each kind (what clients, workers and
operators actually send) plus a few near misses, so that the fuzzer starts
from the interesting shapes instead of discovering the keys byte by byte.
"""
import json
import os
import shutil
import struct

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")

W_HELLO, W_READY, W_FINAL, W_CALL, W_RESULT = 1, 3, 6, 10, 11
W_DISCONNECT, W_PUBLISH, W_FAIL = 8, 9, 12


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def headers():
    t = "fuzz_header"
    write(t, "ping_uint_id", pack({"id": 1, "svc": "sys", "verb": "ping"}))
    write(t, "str_id_all_keys", pack({"id": "req-7", "svc": "tracking",
                                      "verb": "log_batch", "tok": "t0k",
                                      "ws": "default", "ttl": 30000,
                                      "cid": "c-1"}))
    write(t, "big_id_unknown_keys", pack({"id": 2**64 - 1, "svc": "echo",
                                          "verb": "echo", "x-trace": [1, {"a": None}],
                                          7: "int key"}))
    write(t, "no_id", pack({"svc": "sys", "verb": "services", "tok": "abc"}))
    write(t, "ttl_negative", pack({"id": 3, "svc": "sys", "verb": "ping", "ttl": -1}))
    write(t, "id_float", pack({"id": 1.5, "svc": "sys", "verb": "ping"}))
    write(t, "svc_bin", pack({"id": 4, "svc": b"sys", "verb": "ping"}))
    write(t, "not_a_map", pack(["sys", "ping"]))
    write(t, "trailing", pack({"svc": "sys", "verb": "ping"}) + b"\xc0")
    write(t, "truncated", pack({"id": 9, "svc": "sys", "verb": "ping"})[:-2])


def confs():
    t = "fuzz_conf"
    for name in ("cairn.yaml", "process.yaml", "remote.example.yaml"):
        src = os.path.join(ROOT, "conf", name)
        if os.path.exists(src):
            with open(src, "rb") as f:
                write(t, name, f.read())
    write(t, "flow.yaml", b"{kernel: {auth: none, max_frame: 1KiB}, services: "
                          b"{echo: {plugin: echo, mode: process, "
                          b"settings: {greeting: hi, allow_crash: 'true'}}}}\n")
    write(t, "anchors.yaml", b"kernel:\n  auth: none\nservices:\n"
                             b"  a: &e {plugin: echo, mode: inproc}\n  b: *e\n")
    write(t, "bad_size.yaml", b"kernel:\n  auth: none\n  max_frame: 12XB\n"
                              b"  max_queue: 10\n  liveness: 3\n")
    write(t, "settings.yaml", b"kernel:\n  auth: auth\n  state_dir: /tmp/x\n"
                              b"services:\n  tracking:\n    plugin: storage\n"
                              b"    mode: inproc\n    settings:\n"
                              b"      db: sqlite\n      role: tracking\n")


def workers():
    t = "fuzz_worker"
    def w(name, cmd, hdr):
        write(t, name, bytes([cmd]) + (pack(hdr) if hdr is not None else b""))
    w("hello_inproc", W_HELLO, {"plugin": "echo", "svc": "echo", "abi": 1,
                                "pid": 4242, "version": "1.0.0", "mode": "inproc"})
    w("hello_process", W_HELLO, {"svc": "echo", "mode": "process", "pid": 77})
    w("ready", W_READY, {"verbs": [
        {"name": "echo", "perm": "echo.read", "flags": 2, "max_body": 0},
        {"name": "small", "perm": "echo.read", "flags": 0, "max_body": 1024},
        {"name": "login", "perm": "", "flags": 4, "max_body": 0}],
        "concurrency": 1024})
    w("ready_bad_verbs", W_READY, {"verbs": [5, {"perm": "x"}, {"name": 3}],
                                   "concurrency": 0})
    w("final_ok", W_FINAL, {"rid": 12, "st": 200})
    w("final_err", W_FINAL, {"rid": 13, "st": 404, "code": "not_found",
                             "err": "there is no run 'r1'"})
    w("call", W_CALL, {"cid": 5, "svc": "tracking", "verb": "get_run",
                       "ws": "default", "ttl": 1000})
    w("result", W_RESULT, {"cid": 5, "st": 503, "code": "unavailable", "err": "down"})
    w("publish", W_PUBLISH, {"topic": "run.created"})
    w("disconnect", W_DISCONNECT, {"err": "bye"})
    w("fail", W_FAIL, {"err": "init failed: no state dir"})
    w("heartbeat", 7, None)
    w("welcome", 2, {"svc": "echo", "state_dir": "/var/lib/cairn", "hb_ms": 1000,
                     "liveness": 5, "settings": {"greeting": "hi"},
                     "events": "inproc://cairn.events"})
    w("request", 4, {"rid": 9, "svc": "tracking", "verb": "get_run", "ws": "default",
                     "sub": "local", "roles": ["Owner"], "ttl": 30000, "cid": "c-1"})
    w("request_no_cid", 4, {"rid": 10, "svc": "echo", "verb": "echo", "ws": "team",
                            "sub": "service:echo", "roles": ["Service"], "ttl": 5})


JOURNAL_TAG = 0x0123456789ABCDEF  # fuzz_journal.c's TAG


def journal_record(seq, rid, pts, tag=JOURNAL_TAG):
    """One metric journal record (plugins/storage/journal.h): header,
    payload, FNV-1a-64 of both; pts are (value, timestamp, step, key)."""
    payload = struct.pack("<qI", rid, len(pts))
    for value, ts, step, key in pts:
        k = key.encode()
        payload += struct.pack("<dqqB", value, ts, step, len(k)) + k
    head = struct.pack("<IIQQ", 0x314A4D43, len(payload), seq, tag) + payload
    h = 0xCBF29CE484222325
    for b in head:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return head + struct.pack("<Q", h)


def journal():
    t = "fuzz_journal"
    one = journal_record(1, 7, [(0.5, 1700000000000, 0, "lockstep/loss")])
    many = b"".join(journal_record(s, 7, [(1.0 / s, 1000 + s, s, "loss"),
                                          (float("nan"), 1000 + s, s, "acc"),
                                          (-2.5, 1000 + s, -s, "k" * 250)])
                    for s in range(1, 4))
    write(t, "one", one)
    write(t, "three_records", many)
    write(t, "torn_tail", many + one[:len(one) // 2])
    write(t, "garbage_tail", many + b"CMJ1\x28\x00\x00\x00" + bytes(range(40)))
    write(t, "applied_prefix", journal_record(41, 2, [(3.0, 5, 6, "m")]) +
          journal_record(42, 2, [(4.0, 5, 7, "m")]))
    write(t, "seq_not_growing", one + one)
    write(t, "foreign_after_good", one + journal_record(2, 7, [(1.0, 1, 1, "x")],
                                                        tag=JOURNAL_TAG + 1))
    write(t, "batch_of_64", journal_record(
        5, 3, [(float(i), 100 + i, i, f"batch/{i % 5}") for i in range(64)]))
    write(t, "zeros", bytes(64))


def upmeta_record(rid=42, run_id="5c0f3a9e1b2d4c6f8a0b1c2d3e4f5a6b",
                  created=1717171717171, path="model/weights.bin", hash=None,
                  size=None, alg=None):
    """An upload's sidecar (plugins/storage/upmeta.h), as upmeta_format
    writes it; alg (None: BLAKE2b, no line), hash and size once committed."""
    text = (f"cairn-upload 1\nrid {rid}\nrun_id {run_id}\ncreated {created}\n"
            f"path {path}\n")
    if alg is not None:
        text += f"alg {alg}\n"
    if hash is not None:
        text += f"hash {hash}\nsize {size}\n"
    return text.encode()


def upmeta():
    t = "fuzz_upmeta"
    h = "3ececd8c" + "0123456789abcdef" * 3 + "01234567"
    write(t, "open", upmeta_record())
    write(t, "committed", upmeta_record(hash=h, size=20000000))
    write(t, "committed_sha256", upmeta_record(hash=h, size=20000000, alg="sha256"))
    write(t, "alg_blake2b", upmeta_record(hash=h, size=1, alg="blake2b"))
    write(t, "alg_alone", upmeta_record(alg="sha256"))
    write(t, "edges", upmeta_record(rid=-9223372036854775808, run_id="r" * 64,
                                    created=18446744073709551615,
                                    path="caf\u00e9/\U0001F600/..x/a..b",
                                    hash="f" * 64, size=0))
    write(t, "long_path", upmeta_record(path="/".join(["d" * 9] * 102) + "/end"))
    write(t, "torn", upmeta_record(hash=h, size=5)[:-9])
    write(t, "dotdot", upmeta_record(path="../../etc/passwd", hash=h, size=1))
    write(t, "not_normal", upmeta_record(path="a//./b/", hash=h, size=1))
    write(t, "control", upmeta_record(path="a\x1b[2J\x00b"))
    write(t, "signed", upmeta_record(rid="+42", created="-1"))
    write(t, "crlf", upmeta_record().replace(b"\n", b"\r\n"))
    write(t, "upper_hash", upmeta_record(hash=h.upper(), size=1))
    write(t, "trailing", upmeta_record(hash=h, size=1) + b"x\n")


def cli_json():
    t = "fuzz_cli_json"
    write(t, "put_artifact", b'{"run_id": "5c0f3a9e", "path": "m/w.bin", '
                             b'"data": {"$bin": "AAECAwT/"}, "offset": 0, '
                             b'"done": true}')
    write(t, "bins", b'[{"$bin": ""}, {"$bin": "QQ=="}, {"$bin": "QUI="}, '
                     b'{"$bin": "QUJD"}, {"$bin": "QR=="}, {"$bin": "+/+/"}]')
    write(t, "bad_bins", b'[{"$bin": "QQ="}, {"$bin": "Q==="}, {"$bin": "QQ=A"}, '
                         b'{"$bin": "QQ==QUJD"}, {"$bin": "\\u0000AAA"}]')
    write(t, "not_bins", b'{"a": {"$bin": 5}, "b": {"$bin": "QQ==", "x": 1}, '
                         b'"c": {"$bin": null}, "d": {"$bin\\u0000": "QQ=="}}')
    write(t, "scalars", b'[0, -1, 9223372036854775807, -9223372036854775808, '
                        b'1.5, -0.0, 1e308, 5e-324, true, false, null, "", '
                        b'"caf\\u00e9 \\ud83d\\ude00 \\u0000"]')
    write(t, "top_string", b'"a bare string"')
    write(t, "top_number", b"42")
    write(t, "log_batch", b'{"run_id": "r1", "metrics": [{"key": "loss", '
                          b'"value": 0.5, "timestamp": 1700000000000, "step": 1}], '
                          b'"params": [{"key": "lr", "value": "0.1"}], "tags": []}')
    write(t, "deep_32", b"[" * 32 + b"]" * 32)
    write(t, "deep_33", b"[" * 33 + b"]" * 33)
    write(t, "deep_bin", b'{"a":' * 31 + b'{"$bin": "AA=="}' + b"}" * 31)
    write(t, "duplicate_key", b'{"a": 1, "a": 2}')
    write(t, "nul_key", b'{"\\u0000": 1, "k\\u0000v": [{}]}')


def request_input(hdr, body=b"", built=False):
    """fuzz_request's input: a mode byte (odd: hdr describes the header as
    records), the header section's length (2 bytes, little endian), the
    header section, the body frame."""
    h = hdr if isinstance(hdr, bytes) else pack(hdr)
    b = body if isinstance(body, bytes) else pack(body)
    return bytes([1 if built else 0]) + struct.pack("<H", len(h)) + h + b


def record(key, typ, length, payload=b""):
    """One record of fuzz_request's header description (see fuzz_request.c):
    key index into rid svc verb ws sub roles ttl cid x-extra id; type 0 str,
    1 repeated byte (length copies of payload[0]), 2 uint (8 bytes LE),
    3 nil, 4 roles (length: 5 bits of count, 11 of payload bytes), 5 negative
    int, 6 bin."""
    return bytes([key, typ]) + struct.pack("<H", length) + payload


def requests():
    t = "fuzz_request"
    def kernel_hdr(rid, verb, **extra):
        h = {"rid": rid, "svc": "fuzz", "verb": verb, "ws": "default", "sub": "local",
             "roles": ["Owner"], "ttl": 30000}
        h.update(extra)
        return h
    w = lambda name, *a, **k: write(t, name, request_input(*a, **k))
    w("probe", kernel_hdr(1, "probe", cid="c-1"), {})
    w("probe_roles", kernel_hdr(2, "probe", roles=["Reader", "Owner", "Data Scientist"]),
      {"roles": ["Owner", "", "Data", "Reader"]})
    w("probe_limits", kernel_hdr(3, "probe", ws="w" * 64, sub="u" * 256, cid="c" * 128,
                                 ttl=0), None)
    w("fields", kernel_hdr(4, "fields"), {"run_id": "r1", "key": "loss", "step": -3,
                                          "max_results": 10, "value": 0.5, "done": True,
                                          "metrics": [], "tags": {}})
    w("fields_bad", kernel_hdr(5, "fields"), {"run_id": 7, "value": "x"})
    w("fail", kernel_hdr(6, "fail"), {"st": 409, "code": "conflict",
                                      "err": "\u00e9" * 300, "x": [1, None]})
    w("call", kernel_hdr(7, "call"), b"")
    w("defer", kernel_hdr(8, "defer"), {"a": [1, 2.5, None, b"\x00", {"b": -1}]})
    w("later", kernel_hdr(9, "later"), "x")
    w("no_verb", kernel_hdr(10, "nosuch"), None)
    w("rid_str", kernel_hdr("11", "probe"), None)
    w("no_rid", {"svc": "fuzz", "verb": "probe"}, None)
    w("nul_sub", kernel_hdr(12, "probe", sub="a\x00b"), None)
    w("roles_17", kernel_hdr(13, "probe", roles=["r%d" % i for i in range(17)]), None)
    w("roles_mixed", kernel_hdr(14, "probe", roles=["Owner", 5, None, ""]), None)
    w("ttl_huge", kernel_hdr(15, "probe", ttl=2**64 - 1), None)
    w("body_bad_utf8", kernel_hdr(16, "probe"), b"\x81\xa1k\xa2\xc3\x28")
    w("body_trailing", kernel_hdr(17, "probe"), pack({"a": 1}) + b"\xc0")
    w("body_deep", kernel_hdr(18, "probe"), b"\x91" * 33 + b"\xc0")
    w("hdr_trailing", pack(kernel_hdr(19, "probe")) + b"\x00", None)
    w("hdr_not_map", pack([1, "probe"]), None)
    w("built_defaults", b"", {}, built=True)
    w("built_cid", record(7, 1, 100, b"c"), None, built=True)
    w("built_ws_sub", record(3, 1, 64, b"w") + record(4, 0, 5, b"local"), None, built=True)
    w("built_roles", record(5, 4, 3 | (12 << 5), b"\x05Owner\x84R\x00"), None, built=True)
    w("built_later", record(2, 0, 5, b"later") + record(6, 2, 8, struct.pack("<Q", 50)),
      [1, 2], built=True)
    w("built_dup", record(1, 0, 4, b"fuzz") + record(1, 3, 0) + record(9, 5, 8, b"\xff" * 8),
      None, built=True)


def csvs():
    """A data set as users upload it; the first byte picks the delimiter
    (its low 2 bits: , ; TAB |) and where the input is cut (the rest)."""
    t = "fuzz_csv"
    def w(name, delim, text, cut=31):
        write(t, name, bytes([(cut << 2) | ",;\t|".index(delim)]) + text)
    w("header_types", ",", b"id,name,score,ok\n1,ann,1.5,true\n2,,2e3,FALSE\n")
    w("quoted", ",", b'a,b\r\n"x,""y""",\r\n"multi\nline",2\r\n', cut=40)
    w("bom_semicolon", ";", b"\xef\xbb\xbfk;v\n1,5;2\n3;\n", cut=1)
    w("tabs", "\t", b"a\tb\n1\t2\n\n3\t4", cut=63)
    w("pipes_no_header", "|", b"1|2|3\n4|5|6\n", cut=0)
    w("ragged", ",", b"a,b\n1,2\n3\n")
    w("open_quote", ",", b'a\n"never closed\n')
    w("quote_inside", ",", b'a,b"c\n')
    w("binary", ",", b"\x7fELF\x02\x01\x01\x00\x00\x00")
    w("lone_cr", ",", b"a,b\r1,2\r")


def trainer_tables():
    """A train job's CSV; the first byte: bit 0 regression, bit 1 XGBoost
    categoricals, bit 2 the target is the first header cell (else "y")."""
    t = "fuzz_trainer_table"
    def w(name, flags, text):
        write(t, name, bytes([flags]) + text)
    w("classes", 0, b"a,color,y,flag\n1.5,red,yes,true\n,blue,no,FALSE\n3,,yes,\n")
    w("regression", 1, b"x1,x2,y\n0.1,2e3,1.5\n-4,,2\n")
    w("categorical_late", 3, b"b,y\n1,0.5\n2,1.5\nzz,2\n")
    w("first_is_target", 4, b"label,v\n1,0.5\n0,0.25\n")
    w("quoted_bom", 1, b'\xef\xbb\xbf"a",y\r\n"1.25",1\r\n\r\n"x,y",2\r\n')
    w("one_class", 0, b"a,y\n1,k\n2,k\n")
    w("empty_target", 1, b"a,y\n1,\n")
    w("no_target", 0, b"a,b\n1,2\n")
    w("inf", 1, b"a,y\ninf,2\n")


def trainer_configs():
    """A train job's spec; the first byte: 0 YAML, else msgpack."""
    t = "fuzz_trainer_config"
    write(t, "yaml_full", b"\x00" + b"type: train\ndata: data:churn@latest\ntarget: churned\n"
          b"task: classification\nalgorithm: xgboost\nhyperparameters:\n  max_depth: 6\n"
          b"  learning_rate: 0.1\n  eval_metric: [auc, logloss]\n"
          b"  early_stopping_rounds: 5\nvalidation: {split: 0.2}\nseed: 42\n"
          b"register_model: churn\n")
    write(t, "yaml_linear_folds", b"\x00data: d.csv\ntarget: y\ntask: regression\n"
          b"algorithm: linear\nhyperparameters: {alpha: 0.5}\nvalidation: {folds: 5}\n")
    write(t, "mp_min", b"\x01" + pack({"data": "d.csv", "target": "y",
                                         "task": "regression"}))
    write(t, "mp_bad_split", b"\x01" + pack({"data": "d.csv", "target": "y",
                                               "task": "regression",
                                               "validation": {"split": 1.5}}))
    write(t, "mp_alias_twice", b"\x01" + pack({"data": "d", "target": "y",
                                                 "task": "classification",
                                                 "hyperparameters": {"eta": 0.1,
                                                                     "learning_rate": 0.2}}))


def mpuname():
    """A multipart upload's file names, part numbers and etags
    (plugins/storage/mpuname.h)."""
    t = "fuzz_mpuname"
    h = "3ececd8c" * 8
    write(t, "meta", b"meta")
    write(t, "num_parts_file", b"10000\n")
    write(t, "part", f"7.{h}".encode())
    write(t, "part_max", f"10000.{h}".encode())
    write(t, "staging", b"12.tmp-0123456789abcdef")
    write(t, "etag_quoted", f'"{h.upper()}"'.encode())
    write(t, "part_zero", f"0.{h}".encode())
    write(t, "leading_zero", b"012")
    write(t, "upload_id", b"0123456789abcdef0123456789abcdef")
    write(t, "half_quoted", f'"{h}'.encode())


def seals():
    """A signed download link's sealed text and its box's fields
    (plugins/gateway/seal.h): seal.c's layout, and names to quote."""
    t = "fuzz_seal"

    def fields(expires, *fs):
        out = bytes([1]) + expires.to_bytes(8, "big")
        for f in fs:
            out += len(f).to_bytes(2, "big") + f
        return out

    write(t, "fields", fields(1 << 41, b"cairn_tok", b"default", b"0123abcd", b"out/a.csv"))
    write(t, "fields_empty", fields(1, b"", b"", b"r", b"p"))
    write(t, "fields_long_path", fields(1 << 41, b"t", b"ws", b"r", b"d/" * 511 + b"xy"))
    write(t, "fields_nul", fields(5, b"t\0k", b"", b"r", b"p"))
    write(t, "fields_short", fields(5, b"t", b"w")[:-1])
    write(t, "b64url", b"AbCd-_0123456789" * 8)
    write(t, "b64_padded", b"AAAA==")
    write(t, "name_utf8", "données é.txt".encode())
    write(t, "name_quotes", b'a "q" \\ 100%.bin')
    write(t, "name_ctl", b"a\r\nb\x7f.txt")


# The targets whose seeds this script writes; the others (fuzz_filter's
# hand-written filters) are left alone. Name some of them to regenerate
# only those:
#     /usr/bin/python3 tests/fuzz/make_corpus.py fuzz_upmeta fuzz_cli_json
def jsonwrites():
    t = "fuzz_jsonwrite"
    # found by the fuzzer in session 12: keys that are maps of maps quoted
    # inside each other, whose text grew exponentially (now bounded)
    write(t, "nested_container_keys", bytes.fromhex(
        "81a472756e739182a4696e666f86a672756e5f6964d92061616161616161616161616161"
        "6161616161616161616183a76d6574726963739184a36b6579a26d31a576616c7565cb3f"
        "e62e42fefa3981818181818181818981818181818181818181818181818181efa974696d"
        "657374e16d70cf0000018bcfe56801a47374650118a67061090000009182a36b6579a170"
        "a576616c7565a2763761616161616161616161616161616161ad6578706572696d656e74"
        "5f6964a26d31a576616c7565cb3fe62e42fefa39efa974696d657374616d70cf0000018b"
        "cfe56801a47374657003a6706172616d739182a36b6579a170a576616c756564a26d31a5"
        "76616c7565cb3fe62e42fefa39efa974696d657374616d70cf0000018bcfe56801a47374"
        "657003a6706172616d739182a36b6579a170a576616c7565a27637a47461677390af6e65"
        "78745f706167655f746f6183a7ffffffef5dffffffffff"))
    run = {"info": {"run_id": "a" * 32, "experiment_id": "1", "status": "FINISHED",
                    "start_time": 1700000000000, "end_time": None,
                    "artifact_uri": "cairn-artifacts:/1/" + "a" * 32 + "/artifacts"},
           "data": {"metrics": [{"key": "m1", "value": 0.6931471805599453,
                                 "timestamp": 1700000000001, "step": 3}],
                    "params": [{"key": "p", "value": "v7"}], "tags": []}}
    write(t, "search_page", pack({"runs": [run, run], "next_page_token": "tok"}))
    write(t, "get_run", pack({"run": run}))
    write(t, "reals_ints", pack([0.1, -2.5e-300, 1e300, float("nan"), 2**64 - 1, -2**63,
                                 -1, 127, 128, 3.0e15, 123456.789]))
    write(t, "bin_ext_nil", pack({"b": b"\x00\xff", "n": None, "t": True}) +
          b"")
    write(t, "int_key", pack({7: "seven", "x": [1, {"y": None}]}))
    write(t, "bad_utf8", b"\x81\xa1k\xa2\xc3\x28")
    write(t, "ext", b"\x91\xd4\x01\x02")
    write(t, "truncated", pack({"runs": [run]})[:-7])
    write(t, "nil", b"\xc0")


def jobspecs():
    t = "fuzz_jobspec"
    yaml_job = (b"type: command\nname: train-1\nexperiment_name: mnist\n"
                b"command: python train.py --lr ${{inputs.lr}}\ninputs:\n  lr: 0.01\n"
                b"environment_variables:\n  FOO: bar\nresources:\n  cpus: 2\n"
                b"  memory: 4GiB\n  gpus: 0\nlimits:\n  timeout: 3600\npriority: 5\n")
    write(t, "yaml_full", b"\x00" + yaml_job)
    write(t, "yaml_min", b"\x00command: echo hi\n")
    write(t, "yaml_bad_gpus", b"\x00command: x\nresources:\n  gpus: -1\n")
    write(t, "yaml_unclosed_ref", b"\x00command: echo ${{inputs.x\ninputs: {x: 1}\n")
    write(t, "mp_full", b"\x01" + pack({"type": "command", "name": "j", "command":
                                         "echo ${{inputs.a}} ${{inputs.b}}",
                                         "inputs": {"a": "s", "b": True},
                                         "tags": {"k": "v"}, "limits": {"timeout": 5}}))
    write(t, "mp_not_yet", b"\x01" + pack({"command": "x", "code": "./src"}))
    write(t, "mp_train", b"\x01" + pack({"type": "train", "data": "x.csv"}))
    write(t, "mp_io", b"\x01" + pack({
        "command": "cp ${{inputs.d}}/a ${{outputs.m}}/b; echo ${{inputs.f}}",
        "inputs": {"d": {"type": "uri_folder", "path": "data:x@prod", "mode": "ro_mount"},
                   "f": {"type": "uri_file", "path": "/etc/hostname"}},
        "outputs": {"m": {"type": "uri_folder", "register_as": "model:m"}, "e": None},
        "distribution": {"type": "mpi", "process_count_per_instance": 2},
        "resources": {"gpus": 1, "instance_count": 1}}))


def ignore_input(text, paths):
    """fuzz_ignore's input: the ignore file's length (2 bytes, little-endian),
    the file, then paths one a line (a final / marks a directory)."""
    return struct.pack("<H", len(text)) + text + b"\n".join(paths)


def ignores():
    t = "fuzz_ignore"
    write(t, "python", ignore_input(
        b"# byte code\n__pycache__/\n*.py[cod]\n/build/\n!build/keep.txt\n"
        b"data/**\n!data/schema.json\n.env\n",
        [b"__pycache__/", b"a/__pycache__/x.pyc", b"build/keep.txt", b"data/x/y.csv",
         b"data/schema.json", b"a/.env", b"main.py"]))
    write(t, "escapes", ignore_input(
        b"\\#hash\n\\!bang\ntrail\\ \nspaces   \r\n[!a-c]?.o\n[[:digit:]]*\n",
        [b"#hash", b"!bang", b"trail ", b"spaces", b"dx.o", b"ax.o", b"9lives"]))
    write(t, "starstar", ignore_input(
        b"**/logs\na/**/b\nfoo/**\na**/b\nx/*/z\n",
        [b"logs/", b"q/r/logs/x", b"a/b", b"a/x/y/b", b"foo/a/b", b"ax/y/b", b"x/y/z"]))
    write(t, "malformed", ignore_input(
        b"[abc\nq[[:foo:]]\n\\\n!\n/\n//\n[[:]]v\n",
        [b"[abc", b"qa", b"[]v", b"x/", b"/"]))
    write(t, "bom_crlf", ignore_input(b"\xef\xbb\xbf*.log\r\n!keep.log\r\n",
                                      [b"a.log", b"keep.log", b"a/keep.log"]))


def scorer_inputs():
    t = "fuzz_scorer_input"
    write(t, "split_named", b"\x0b" + json.dumps({"dataframe_split": {
        "columns": ["f0", "f1", "f2", "f3"], "data": [[1, 2.5, None, True], [0, 0, 0, 0]]}}).encode())
    write(t, "input_data", b"\x02" + json.dumps({"input_data": {
        "columns": ["a", "b", "c"], "index": [0], "data": [[1, 2, 3]]}}).encode())
    write(t, "records", b"\x09" + json.dumps({"dataframe_records": [
        {"f0": 1, "f1": 2}, {"f0": None, "f1": 3.5}]}).encode())
    write(t, "instances", b"\x01" + json.dumps({"instances": [[1, 2], [3, 4]]}).encode())
    write(t, "inputs_cols", b"\x09" + json.dumps({"inputs": {"f0": [1, 2], "f1": [3, 4]}}).encode())
    write(t, "bad_width", b"\x02" + json.dumps({"instances": [[1, 2]]}).encode())
    write(t, "string_cell", b"\x00" + json.dumps({"instances": [["x"]]}).encode())
    write(t, "not_json", b"\x00{\"instances\": [[1,")
    write(t, "csv_header", b"\x19f1,f0\n1.5,2\n,3\n")
    write(t, "csv_plain", b"\x12" + b"1,2,3\n4,5,6\n")
    write(t, "msgpack_split", b"\x29" + pack({"dataframe_split": {
        "columns": ["f0", "f1"], "data": [[1, None], [2.5, True]]}}))
    write(t, "msgpack_huge_array", b"\x21\xdd\xff\xff\xff\xff")


def batch_csvs():
    t = "fuzz_batch_csv"
    # byte 0: features - 1 (bits 0-1), named (bit 2), mini-batch rows - 1 (bits 3-5)
    write(t, "named", b"\x15id,b,a\n0,1.5,2\n1,,3\n2,4,5\n3,6,7\n")
    write(t, "plain_crlf", b"\x01x,y\r\n1,2\r\n3,4\r\n5,6")
    write(t, "quoted", b"\x0da,b\n\"1\",\"2\"\n\"3\n\",4\n\"\"\"\",5\n")
    write(t, "poisoned", b"\x14a,b\n1,2\n3,abc\n5,6\n")
    write(t, "bom_lone_cr", b"\x05\xef\xbb\xbfa,b\r1,2\r\r3,4\r")
    write(t, "ragged", b"\x0ca,b\n1,2,3\n4\n")
    write(t, "no_header", b"\x05" + b"1,2\n3,4\n")
    write(t, "open_quote", b"\x05a,b\n\"1,2\n3,4\n")
    write(t, "nan_inf", b"\x05a,b\nnan,1e39\ninf,-0\n")


UBJ_TYPED = {"left_children": ("l", ">i"), "right_children": ("l", ">i"),
             "parents": ("l", ">i"), "split_indices": ("l", ">i"), "categories": ("l", ">i"),
             "categories_nodes": ("l", ">i"), "categories_segments": ("L", ">q"),
             "categories_sizes": ("L", ">q"), "split_conditions": ("d", ">f"),
             "base_weights": ("d", ">f"), "loss_changes": ("d", ">f"),
             "sum_hessian": ("d", ">f"),
             "default_left": ("U", ">B"), "split_type": ("U", ">B")}


def ubjson(v):
    """UBJSON as XGBoost 1.7 writes it (and loads it back): every length an
    int64 L, keys without a marker, each tree array typed as XGBoost types
    it (UBJ_TYPED), other arrays counted but untyped."""
    def length(n):
        return b"L" + struct.pack(">q", n)
    if isinstance(v, dict):
        out = b"{"
        for k, x in v.items():
            kb = k.encode()
            out += length(len(kb)) + kb
            if k in UBJ_TYPED:
                m, f = UBJ_TYPED[k]
                out += (b"[$" + m.encode() + b"#" + length(len(x)) +
                        b"".join(struct.pack(f, i) for i in x))
            else:
                out += ubjson(x)
        return out + b"}"
    if isinstance(v, list):
        return b"[#" + length(len(v)) + b"".join(ubjson(x) for x in v)
    if isinstance(v, bool):
        return b"T" if v else b"F"
    if isinstance(v, int):
        return b"L" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"d" + struct.pack(">f", v)
    if v is None:
        return b"Z"
    sb = str(v).encode()
    return b"S" + length(len(sb)) + sb


def xgb_model(trees, objective="binary:logistic", num_class=0, num_feature=2,
              booster="gbtree", base="5E-1", names=None, types=None):
    """An XGBoost 1.7 model document around the trees (each a dict of the
    node arrays), tree_info from each tree's "group" (default 0)."""
    for i, t in enumerate(trees):
        t["id"] = i
    model = {"gbtree_model_param": {"num_parallel_tree": "1", "num_trees": str(len(trees)),
                                    "size_leaf_vector": "0"},
             "tree_info": [t.pop("group", 0) for t in trees], "trees": trees}
    gb = {"name": "gbtree", "model": model}
    if booster == "dart":
        gb = {"name": "dart", "gbtree": gb, "weight_drop": [1.0] * len(trees)}
    learner = {"attributes": {}, "feature_names": names or [], "feature_types": types or [],
               "gradient_booster": gb,
               "learner_model_param": {"base_score": base, "boost_from_average": "1",
                                       "num_class": str(num_class),
                                       "num_feature": str(num_feature), "num_target": "1"},
               "objective": {"name": objective}}
    if objective.startswith("multi:"):
        learner["objective"]["softmax_multiclass_param"] = {"num_class": str(num_class)}
    elif objective == "count:poisson":
        learner["objective"]["poisson_regression_param"] = {"max_delta_step": "0.7"}
    else:
        learner["objective"]["reg_loss_param"] = {"scale_pos_weight": "1"}
    return {"learner": learner, "version": [1, 7, 4]}


def xgb_tree(left, right, feat, cond, dleft, stype=None, cats=None):
    n = len(left)
    parents = [2147483647] * n
    for i in range(n):
        for c in (left[i], right[i]):
            if 0 <= c < n:
                parents[c] = i
    t = {"base_weights": [0.0] * n, "default_left": dleft, "id": 0,
         "left_children": left, "loss_changes": [0.0] * n, "parents": parents,
         "right_children": right, "split_conditions": cond, "split_indices": feat,
         "split_type": stype or [0] * n, "sum_hessian": [1.0] * n,
         "tree_param": {"num_deleted": "0", "num_feature": "2", "num_nodes": str(n),
                        "size_leaf_vector": "0"},
         "categories": [], "categories_nodes": [], "categories_segments": [],
         "categories_sizes": []}
    if cats:
        t.update(cats)
    return t


def scorer_models():
    """A model file's bytes: XGBoost JSON and UBJSON (scorer_model_load_mem);
    python3-xgboost 1.7.4 loads each seed but the broken ones and predicts
    what the scorer does."""
    import json
    t = "fuzz_scorer_model"
    def stump():
        return xgb_tree([1, -1, -1], [2, -1, -1], [0, 0, 0], [0.5, -0.4, 0.6], [1, 0, 0])
    def deep():
        return xgb_tree([1, 3, -1, -1, -1], [2, 4, -1, -1, -1], [0, 1, 0, 0, 0],
                        [0.5, 2.0, 0.1, -0.2, 0.3], [1, 0, 0, 0, 0])
    def cat():
        return xgb_tree([1, -1, -1], [2, -1, -1], [1, 0, 0], [float("nan"), -1.0, 1.0],
                        [0, 0, 0], [1, 0, 0],
                        {"categories": [1, 3, 40], "categories_nodes": [0],
                         "categories_segments": [0], "categories_sizes": [3]})
    docs = {
        "binary": xgb_model([stump(), deep()], names=["a", "b"], types=["q", "q"]),
        "regression": xgb_model([deep()], "reg:squarederror", base="1.5E2"),
        "poisson": xgb_model([stump()], "count:poisson", base="2"),
        "categorical": xgb_model([cat(), stump()], "reg:squarederror", types=["q", "c"]),
        "softprob": xgb_model([dict(stump(), group=0), dict(deep(), group=1),
                               dict(cat(), group=2)], "multi:softprob", num_class=3),
        "softmax": xgb_model([dict(stump(), group=0), dict(deep(), group=1)],
                             "multi:softmax", num_class=2),
        "dart": xgb_model([stump(), deep()], booster="dart"),
    }
    for name, doc in docs.items():
        text = json.dumps(doc, separators=(",", ":"))
        write(t, name + ".json", text.encode())
        write(t, name + ".ubj", ubjson(json.loads(text)))
    bad = docs["binary"]["learner"]["gradient_booster"]["model"]["trees"][1]
    bad["right_children"][1] = 0  # a cycle
    write(t, "cycle.json", json.dumps(docs["binary"]).encode())
    write(t, "objective_rank.json",
          json.dumps(xgb_model([stump()], "rank:pairwise")).encode())
    write(t, "cut.ubj", ubjson(docs["regression"])[:60])


GENERATED = {"fuzz_header": headers, "fuzz_jsonwrite": jsonwrites, "fuzz_jobspec": jobspecs, "fuzz_conf": confs, "fuzz_worker": workers,
             "fuzz_journal": journal, "fuzz_upmeta": upmeta,
             "fuzz_cli_json": cli_json, "fuzz_request": requests,
             "fuzz_csv": csvs, "fuzz_mpuname": mpuname, "fuzz_ignore": ignores,
             "fuzz_trainer_table": trainer_tables,
             "fuzz_trainer_config": trainer_configs,
             "fuzz_scorer_input": scorer_inputs,
             "fuzz_batch_csv": batch_csvs,
             "fuzz_scorer_model": scorer_models, "fuzz_seal": seals}

if __name__ == "__main__":
    import sys
    wanted = sys.argv[1:] or list(GENERATED)
    for t in wanted:
        if t not in GENERATED:
            sys.exit(f"make_corpus.py: no generated target {t!r} "
                     f"(those are: {', '.join(GENERATED)})")
    for t in wanted:
        shutil.rmtree(os.path.join(CORPUS, t), ignore_errors=True)
        GENERATED[t]()
    for t in sorted(os.listdir(CORPUS)):
        print(t, len(os.listdir(os.path.join(CORPUS, t))), "seeds")
