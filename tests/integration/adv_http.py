"""Hostile HTTP for the adversarial suite's gateway phase (test_adversarial,
test_8_http): requests built from the gateway's own route table and from
sys.services, whose request lines, headers, query strings and JSON bodies
are empty, at their limits, far past them, of the wrong type, deeply
nested, not UTF-8, not JSON, or not HTTP at all; and a reader that says
what came back."""
import base64
import glob
import math
import os
import re
import socket
import time
import urllib.parse

from cairn_harness import SOURCE


def mlflow_routes():
    """(method, path) of every MLflow route the gateway serves, read from
    its route table, so that a new route is attacked the day it exists."""
    routes = []
    for path in glob.glob(os.path.join(SOURCE, "plugins", "gateway", "*.c")):
        with open(path, errors="replace") as f:
            text = f.read()
        routes += re.findall(r'\{"(GET|POST|PATCH|DELETE|PUT)",\s*"([a-z][a-z\-/]+)"', text)
    return sorted(set(routes))


class J:
    """JSON text as is (invalid JSON, duplicate keys, raw bytes)."""

    def __init__(self, raw):
        self.raw = raw


def jdump(v, depth=0):
    """v as JSON bytes, saying what json.dumps refuses to: bytes as
    {"$bin": base64} (or not base64), invalid UTF-8 inside strings, NaN,
    duplicate keys (a list of pairs marked J), and J's text as is."""
    if isinstance(v, J):
        return v.raw
    if v is None:
        return b"null"
    if v is True or v is False:
        return b"true" if v else b"false"
    if isinstance(v, int):
        return str(v).encode()
    if isinstance(v, float):
        if math.isnan(v):
            return b"NaN"
        if math.isinf(v):
            return b"Infinity" if v > 0 else b"-Infinity"
        return repr(v).encode()
    if isinstance(v, str):
        out = bytearray(b'"')
        for ch in v:
            if ch in '"\\':
                out += b"\\" + ch.encode()
            elif ord(ch) < 0x20:
                out += b"\\u%04x" % ord(ch)
            else:
                out += ch.encode("utf-8", "surrogatepass")
        return bytes(out + b'"')
    if isinstance(v, (bytes, bytearray)):
        kind = type(v).__name__
        if kind == "BadStr":  # the adversarial suite's: raw bytes in a string
            return b'"' + bytes(v).replace(b'"', b"") + b'"'
        if kind == "Raw":  # pre-encoded msgpack: here, deep JSON instead
            return b"[" * 40 + b"]" * 40
        return b'{"$bin": "' + base64.b64encode(bytes(v)) + b'"}'
    if isinstance(v, dict):
        return b"{" + b", ".join(jdump(str(k)) + b": " + jdump(x, depth + 1)
                                 for k, x in v.items()) + b"}"
    if isinstance(v, list) and type(v).__name__ == "Pairs":
        return b"{" + b", ".join(jdump(k if isinstance(k, str) else str(k)) + b": " +
                                 jdump(x, depth + 1) for k, x in v) + b"}"
    if isinstance(v, (list, tuple)):
        return b"[" + b", ".join(jdump(x, depth + 1) for x in v) + b"]"
    return jdump(str(v))


def qs_value(r, g):
    """A hostile query-string value, %-encoded or deliberately not."""
    k = r.random()
    if k < 0.5:
        s = g.string()
        raw = bytes(s) if isinstance(s, bytes) else s.encode("utf-8", "surrogatepass")
        return urllib.parse.quote_from_bytes(raw[:70000], safe="")
    if k < 0.7:
        return r.choice(["%", "%zz", "%00", "%ff%fe", "+", "&&&", "=", "a=b=c", "%2e%2e%2f",
                         "-1", "1e999", "99999999999999999999", "NaN", "1.5"])
    return str(r.choice([0, 1, -1, 1 << 63, 10 ** 30]))


class Hostile:
    """Hostile HTTP requests (bytes) from a Gen (test_adversarial.Gen)."""

    def __init__(self, g, services, routes, max_body, verb_fields, fields, token):
        self.g, self.r = g, g.r
        self.token = token  # the Owner's: most requests get past the kernel's auth
        self.services = services  # {svc: [verb, ...]}
        self.routes = routes
        self.max_body = max_body
        self.verb_fields, self.fields = verb_fields, fields  # the suite's tables

    def body(self, verb=None):
        r, g = self.r, self.g
        k = r.random()
        if k < 0.6:
            fields = {}
            for name, _ in self.verb_fields.get(verb or "", []) or [(r.choice(["run_id", "key",
                                                                               "name"]), True)]:
                if r.random() < 0.8:
                    fields[name] = g.plausible(name) if r.random() < 0.6 else g.hostile()
            return jdump(fields)
        if k < 0.75:
            return jdump(g.hostile())
        if k < 0.8:
            return b"[" * r.choice([32, 33, 1000, 100000]) + b"]" * r.choice([0, 1000])
        if k < 0.85:
            return b'{"a": 1, "a": 2}'
        if k < 0.9:
            return b"x" * r.choice([self.max_body, self.max_body + 1, 4 * self.max_body])
        return r.choice([b"", b"{", b"nul", b"\xff\xfe", b'{"k": "\xc3\x28"}', b"{}" * 1000,
                         b'{"run_id": "x"}\x00', b'"just a string"', b"1e99999"])

    def headers(self, body):
        r = self.r
        h = [("Host", "127.0.0.1")]
        if r.random() < 0.8:
            h.append(("Content-Type", r.choice(["application/json", "text/plain", "",
                                                "application/json; charset=latin1"])))
        if r.random() < 0.6:
            h.append(("Authorization", "Bearer " + self.token))
        elif r.random() < 0.6:
            h.append(("Authorization", r.choice([
                "Bearer ", "Bearer " + "A" * 600, "Bearer cairn_" + "A" * 43, "Basic ",
                "Basic !!!!", "Basic " + base64.b64encode(b"u:p").decode(),
                "Basic " + base64.b64encode(b"nocolon").decode(),
                "Basic " + base64.b64encode(b"u" * 3000 + b":p").decode(), "Digest x", "x" * 9000])))
        if r.random() < 0.2:
            h.append(("cairn-workspace", r.choice(["", "w" * 64, "w" * 65, "a/b", "\u00e9t\u00e9",
                                                   "default", "..", "%00"])))
        if r.random() < 0.05:
            h += [("X-Pad-%d" % i, "v" * 100) for i in range(r.choice([50, 200]))]
        if r.random() < 0.03:
            h.append(("X-Huge", "v" * r.choice([8000, 70000])))
        h.append(("Content-Length", str(len(body))))
        h.append(("Connection", "close"))
        return h

    def path(self):
        r = self.r
        k = r.random()
        if k < 0.4:
            svc = r.choice(list(self.services) + ["", "nosuch", "%00", "s" * 300, ".."])
            verbs = self.services.get(svc) or ["x"]
            verb = r.choice(verbs + ["", "nosuch", "v" * 300])
            return "POST", f"/api/v1/{svc}/{verb}", verb
        if k < 0.8:
            method, route = r.choice(self.routes)
            if r.random() < 0.1:
                method = r.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
            prefix = r.choice(["/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/",
                               "/ws/team-a/api/2.0/mlflow/", "/ws//api/2.0/mlflow/",
                               "/ws/" + "w" * 100 + "/api/2.0/mlflow/"])
            path = prefix + route
            if method in ("GET", "DELETE") or r.random() < 0.2:
                args = [(r.choice(self.fields + ["run_id", "max_results", "experiment_id"]),
                         qs_value(r, self.g)) for _ in range(r.randint(0, 4))]
                path += "?" + "&".join(f"{k}={v}" for k, v in args)
            return method, path, None
        if k < 0.9:
            art = r.choice(["1/" + "0" * 32 + "/artifacts/a.txt", "1/x/artifacts/../../etc",
                            "", "1//artifacts/", "%2e%2e/%2e%2e", "1/r/artifacts/" + "d/" * 600])
            method = r.choice(["GET", "PUT", "DELETE"])
            return method, "/api/2.0/mlflow-artifacts/artifacts/" + art, None
        return r.choice(["GET", "POST"]), r.choice([
            "/", "/healthz", "/readyz", "/metrics", "/api/v1/", "/api", "//", "/%00",
            "/" + "a" * 5000, "/api/v1/echo/echo/extra", "/ws/", "/ws/x"]), None

    def request(self):
        """(bytes, well_formed): well formed requests must be answered."""
        r = self.r
        if r.random() < 0.08:
            return r.choice([
                b"\x16\x03\x01\x02\x00" + os.urandom(64),  # a TLS hello
                b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b" / HTTP/1.1\r\n\r\n",
                b"GET " + b"/a" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST /api/v1/echo/echo HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                b"POST /api/v1/echo/echo HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                b"POST /api/v1/echo/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"zz\r\nab\r\n0\r\n\r\n",
                b"POST /api/v1/echo/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                b"Content-Length: 3\r\n\r\n{}",
                b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 5000 + b"\r\n",
                b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
                os.urandom(r.choice([1, 100, 4096])),
            ]), False
        method, path, verb = self.path()
        body = b"" if method in ("GET", "HEAD") and r.random() < 0.9 else self.body(verb)
        if method == "PUT" and r.random() < 0.5:
            body = os.urandom(r.choice([0, 1, 4096, 70000]))
        head = f"{method} {path} HTTP/1.1\r\n".encode("utf-8", "surrogatepass")
        head += b"".join(f"{k}: {v}\r\n".encode("utf-8", "surrogatepass")
                         for k, v in self.headers(body))
        if r.random() < 0.05:  # chunked, well formed
            head = head.replace(b"Content-Length: %d\r\n" % len(body), b"")
            head += b"Transfer-Encoding: chunked\r\n"
            body = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n"
        return head + b"\r\n" + body, True


def exchange(port, data, deadline_s, done=None):
    """Send data on a fresh connection and read until the server closes it
    (the requests ask for Connection: close), done(bytes so far) holds, or
    deadline_s pass. Returns (status or None, headers text, body bytes,
    seconds)."""
    t = time.monotonic()
    got = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=deadline_s) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may close early (a body refused at its headers)
        end = t + deadline_s
        while time.monotonic() < end:
            s.settimeout(max(0.1, end - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            got += chunk
            if done and done(bytes(got)):
                break
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
    return (int(m.group(1)) if m else None), head.decode(errors="replace"), body, \
        time.monotonic() - t


class Scoring:
    """Hostile requests to the scorer's own HTTP listener (test_adversarial,
    test_8b_scoring): its two routes on real and made-up endpoints, every
    body shape it reads (Azure ML's and MLflow's JSON, CSV, msgpack) well
    formed and not, keys good and bad, the cairn-deployment header naming
    real, missing and absurd deployments."""

    def __init__(self, r, endpoints, keys, deployments, width, max_body):
        self.r = r
        self.endpoints = endpoints  # names that exist
        self.keys = keys  # good bearer values
        self.deployments = deployments
        self.width = width  # the model's features
        self.max_body = max_body

    def row(self, width=None):
        r = self.r
        return [r.random() for _ in range(self.width if width is None else width)]

    def body(self):
        """(content type, bytes)."""
        r, w = self.r, self.width
        k = r.random()
        if k < 0.35:  # well formed, in one of the JSON shapes
            rows = [self.row() for _ in range(r.choice([1, 1, 2, 50]))]
            shape = r.choice([
                {"input_data": {"columns": [f"f{i}" for i in range(w)],
                                "index": list(range(len(rows))), "data": rows}},
                {"instances": rows}, {"inputs": rows},
                {"dataframe_split": {"columns": [f"f{i}" for i in range(w)], "data": rows}},
                {"dataframe_records": [{f"f{i}": v for i, v in enumerate(x)} for x in rows]},
                {"data": rows}])
            return "application/json", jdump(shape)
        if k < 0.5:  # wrong widths, types, names
            return "application/json", jdump(r.choice([
                {"instances": [self.row(w + 1)]}, {"instances": [self.row(0)]},
                {"instances": [["a"] * w]}, {"instances": [[None] * w]},
                {"instances": [[True] * w]}, {"instances": [[1e309] * w]},
                {"instances": "rows"}, {"instances": [[[1]] * w]},
                {"input_data": {"columns": ["nope"] * w, "data": [self.row()]}},
                {"input_data": {"columns": [f"f{i}" for i in range(w)] * 2, "data": [self.row()]}},
                {"dataframe_records": [{"f0": 1}]}, {"dataframe_split": {"data": 5}},
                {"inputs": {f"f{i}": [1, 2] for i in range(w)}},
                {"instances": [self.row()] * 200000}, {}, [], 5, "x", None]))
        if k < 0.62:  # CSV
            head = ",".join(f"f{i}" for i in range(w))
            return "text/csv", r.choice([
                (head + "\n" + "\n".join(",".join(str(v) for v in self.row())
                                          for _ in range(5))).encode(),
                b"1,2,3\n", b"", b"\n\n\n", ("," * w + "\n").encode(), b"\xff\xfe,\x00\n",
                (head + "\n" + ",".join(["x"] * w)).encode(),
                ("\n".join(["1" * 5000] * 10)).encode(), b'"unterminated,1,2\n']) 
        if k < 0.72:  # msgpack
            import msgpack
            return "application/msgpack", r.choice([
                msgpack.packb({"instances": [self.row()]}),
                msgpack.packb({"instances": [[b"bin"] * w]}),
                msgpack.packb({"input_data": {"data": [[{}] * w]}}),
                b"\xdd\xff\xff\xff\xff", b"\xc1", b"\x91" * 100000, os.urandom(64),
                msgpack.packb([self.row()])])
        return r.choice(["application/json", "text/plain", "", "image/png",
                         "application/json; charset=latin1"]), r.choice([
            b"", b"{", b"[" * 100000, b'{"instances": [' + b"[1]," * 10 + b"]}",
            b'{"k": "\xc3\x28"}', b"x" * r.choice([self.max_body, self.max_body + 1]),
            b"1e99999", b'"just a string"', b'{"instances": [[1, 2]]}\x00'])

    def request(self):
        """(bytes, well_formed)."""
        r = self.r
        if r.random() < 0.05:
            return r.choice([b"GET\r\n\r\n", os.urandom(100),
                             b"POST /endpoints/x/score HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                             b"POST /endpoints/x/score HTTP/1.1\r\nTransfer-Encoding: chunked"
                             b"\r\n\r\nzz\r\n"]), False
        name = r.choice(self.endpoints * 4 + ["", "nosuch", "A" * 40, "%00", "..", "a/b"])
        route = r.choice(["score"] * 8 + ["health", "nothing", ""])
        method = "GET" if route == "health" and r.random() < 0.8 else \
            r.choice(["POST"] * 9 + ["GET", "PUT", "DELETE"])
        ct, body = self.body()
        h = [("Host", "127.0.0.1")]
        if ct:
            h.append(("Content-Type", ct))
        k = r.random()
        if k < 0.75:
            h.append(("Authorization", "Bearer " + r.choice(self.keys)))
        elif k < 0.9:
            h.append(("Authorization", r.choice(["Bearer ", "Bearer " + "A" * 43,
                                                 "Bearer " + "A" * 5000, "Basic x",
                                                 "Bearer \x7f\x01", "bearer " + "b" * 43])))
        if r.random() < 0.3:
            h.append(("cairn-deployment", r.choice(self.deployments + [
                "", "nosuch", "d" * 5000, "BLUE", "%00"])))
        h += [("Content-Length", str(len(body))), ("Connection", "close")]
        head = f"{method} /endpoints/{name}/{route} HTTP/1.1\r\n" + \
            "".join(f"{k}: {v}\r\n" for k, v in h) + "\r\n"
        return head.encode("utf-8", "surrogateescape") + body, True
