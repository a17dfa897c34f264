"""Cairn's Python SDK: a CAIRN/1 client over ZeroMQ (pyzmq and msgpack only).

    import cairn
    c = cairn.Client()                  # $CAIRN_ENDPOINT or tcp://127.0.0.1:7780
    c.call("sys", "ping")               # {'pong': True, 'version': ...}
    c.call("echo", "echo", {"x": 1})    # {'x': 1}

Failures raise CairnError subclasses with .status, .code and .message. A
Client is for one thread.
"""
from .client import DEFAULT_ENDPOINT, Client, Reply
from .errors import (BadRequest, CairnError, Conflict, DeadlineExceeded, Forbidden, NotFound,
                     Overloaded, TooLarge, Unauthenticated, Unavailable, error_for)

__all__ = [
    "Client", "Reply", "DEFAULT_ENDPOINT", "error_for",
    "CairnError", "BadRequest", "Unauthenticated", "Forbidden", "NotFound", "Conflict",
    "TooLarge", "Overloaded", "Unavailable", "DeadlineExceeded",
]
