"""A python deployment's worker (plugins/scorer/pool.c starts it).

Azure ML's scoring-script contract: the user's script defines init(),
called once when the worker starts, and run(raw_data), called for each
request with its body (a str; bytes for application/msgpack). The model's
folder is in AZUREML_MODEL_DIR (and CAIRN_MODEL_DIR); the working directory
is the deployment's code snapshot, on sys.path.

The scorer talks to this process over one Unix stream socket (--fd), in
frames of a 4-byte big-endian length and a payload:

    scorer -> worker   CONTENT-TYPE "\\n" BODY
    worker -> scorer   STATUS (3 ASCII digits) JSON

The first frame the worker sends answers init(): 200 "ready", or 500 and
the end of the traceback (the worker then exits). run()'s answer: a dict
is sent as it is; anything else as {"predictions": value} (numpy arrays
and scalars through tolist()/item(); a str holding JSON is decoded first,
as scripts that return json.dumps(...) mean it). run() raising ValueError,
TypeError or KeyError is the caller's bad input: 400 with the exception's
text; any other exception is 500.

This file is compiled into the scorer plugin and written to its state
folder; it needs nothing outside Python's standard library, so that any
environment can run it. Standard output and error go to the deployment's
log."""

import importlib.util
import json
import os
import socket
import struct
import sys
import traceback

FRAME_MAX = 256 << 20


def send(sock, status, payload):
    body = b"%03d" % status + payload
    sock.sendall(struct.pack(">I", len(body)) + body)


def recv_exact(sock, n):
    parts, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def recv(sock):
    head = recv_exact(sock, 4)
    if head is None:
        return None
    (n,) = struct.unpack(">I", head)
    if n > FRAME_MAX:
        return None
    return recv_exact(sock, n)


def plain(value):
    """What json can write, from numpy's arrays and scalars too."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode(out):
    if isinstance(out, (bytes, bytearray)):
        out = out.decode("utf-8", "replace")
    if isinstance(out, str):
        try:
            out = json.loads(out)
        except ValueError:
            pass
    if not isinstance(out, dict):
        out = {"predictions": out}
    return json.dumps(out, default=plain, allow_nan=False).encode()


def error(text):
    return json.dumps({"error": text}).encode()


def tail(text, limit=1500):
    return text if len(text) <= limit else "..." + text[-limit:]


def load(script):
    spec = importlib.util.spec_from_file_location("score", script)
    if spec is None:
        raise ImportError(f"{script} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise AttributeError(f"{script} defines no run(raw_data)")
    init = getattr(module, "init", None)
    if callable(init):
        init()
    return module.run


def answer(run, frame):
    content_type, _, body = frame.partition(b"\n")
    data = body if content_type.startswith(b"application/msgpack") else \
        body.decode("utf-8", "replace")
    try:
        return 200, encode(run(data))
    except (ValueError, TypeError, KeyError) as e:
        return 400, error(f"run(): {type(e).__name__}: {e}")
    except Exception as e:  # the script's own failure
        traceback.print_exc()
        return 500, error(f"run(): {type(e).__name__}: {e}")


def main(argv):
    fd = int(argv[argv.index("--fd") + 1])
    script = argv[argv.index("--script") + 1]
    sock = socket.socket(fileno=fd)
    # whole lines to the log: workers share it, so one write a line
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    sys.path.insert(0, os.getcwd())
    try:
        run = load(script)
    except BaseException:
        text = traceback.format_exc()
        sys.stderr.write(text)
        send(sock, 500, tail(text).encode("utf-8", "replace"))
        return 1
    send(sock, 200, b"ready")
    sys.stdout.flush()
    while True:
        frame = recv(sock)
        if frame is None:
            return 0
        status, payload = answer(run, frame)
        send(sock, status, payload)
        sys.stdout.flush()
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
