"""The Python SDK's pipelining: many requests in flight on one DEALER socket,
replies matched by id whatever their order."""
import os
import sys
import time
import unittest

import msgpack
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CAIRN_SOURCE_DIR") or os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
sys.path.insert(0, HERE)

import cairn  # noqa: E402
import cairn_harness  # noqa: E402


class Pipelining(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = cairn_harness.Kernel().start()

    @classmethod
    def tearDownClass(cls):
        cls.k.cleanup()

    def setUp(self):
        self.c = cairn.Client(self.k.endpoint, ttl_ms=20000)

    def tearDown(self):
        self.c.close()

    def test_call_many_in_order(self):
        c = self.c
        peak = []
        send = c.send

        def counting_send(*a, **kw):
            peak.append(c.in_flight)
            return send(*a, **kw)

        c.send = counting_send
        n = 2000
        reqs = [("echo", "echo", {"i": i, "pad": "p" * (i % 50)}) for i in range(n)]
        t0 = time.monotonic()
        replies = c.call_many(reqs, window=64)
        took = time.monotonic() - t0
        self.assertEqual(len(replies), n)
        for i, r in enumerate(replies):
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, {"i": i, "pad": "p" * (i % 50)})
        self.assertEqual(len({r.id for r in replies}), n)
        self.assertLess(max(peak), 64)  # never more than the window in flight
        self.assertEqual(c.in_flight, 0)
        self.assertLess(took, 60)
        print(f"\n  call_many: {n} echoes in {took:.3f} s", file=sys.stderr)

    def test_call_many_mixed(self):
        replies = self.c.call_many([
            ("echo", "echo", {"a": 1}),
            {"svc": "echo", "verb": "nope"},
            ("echo", "sleep", {"ms": 100}),
            ("echo", "small", b"x" * 2048),
            ("sys", "ping"),
            ("echo", "sleep", {"ms": 1000}, 100),
        ], window=2)
        self.assertEqual([r.status for r in replies], [200, 404, 200, 413, 200, 504])
        self.assertEqual(replies[0].body, {"a": 1})
        self.assertEqual(replies[1].code, "no_verb")
        self.assertFalse(replies[1].ok)
        with self.assertRaises(cairn.NotFound):
            replies[1].raise_for_status()
        self.assertIs(replies[4].body["pong"], True)
        self.assertEqual(self.c.call_many([]), [])

    def test_out_of_order(self):
        c = self.c
        slow = c.send("echo", "sleep", {"ms": 300})
        fast = c.send("echo", "echo", {"fast": True})
        self.assertNotEqual(slow, fast)
        first = c.recv(timeout=10)
        self.assertEqual(first.id, fast)
        self.assertEqual(first.body, {"fast": True})
        second = c.recv(timeout=10)
        self.assertEqual(second.id, slow)
        self.assertEqual(second.status, 200)
        self.assertEqual(c.in_flight, 0)
        with self.assertRaises(RuntimeError):
            c.recv(timeout=1)

    def test_recv_timeout_keeps_request(self):
        c = self.c
        rid = c.send("echo", "sleep", {"ms": 300})
        with self.assertRaises(cairn.DeadlineExceeded) as cm:
            c.recv(timeout=0.01)
        self.assertEqual(cm.exception.code, "no_reply")
        self.assertEqual(c.in_flight, 1)
        r = c.recv(timeout=10)
        self.assertEqual((r.id, r.status), (rid, 200))
        # timeout=0 still looks at the socket once
        rid = c.send("echo", "echo", 0)
        r = cairn_harness.wait_for(lambda: self._try_recv(c), timeout=10, what="echo reply")
        self.assertEqual((r.id, r.body), (rid, 0))

    @staticmethod
    def _try_recv(c):
        try:
            return c.recv(timeout=0)
        except cairn.DeadlineExceeded:
            return None

    def test_call_stashes_other_replies(self):
        c = self.c
        fast = c.send("echo", "echo", "fast")
        slow = c.send("echo", "sleep", {"ms": 300})
        # call() itself takes 150 ms, so the fast reply has come and is kept.
        self.assertIsNone(c.call("echo", "sleep", {"ms": 150}))
        self.assertIn(fast, c._stash)
        self.assertEqual(c.call("echo", "echo", [1, 2]), [1, 2])
        self.assertEqual(c.in_flight, 2)
        r = c.recv(timeout=0)
        self.assertEqual((r.id, r.body), (fast, "fast"))
        r = c.recv(timeout=10)
        self.assertEqual((r.id, r.status), (slow, 200))

    def test_call_raises_while_others_pending(self):
        c = self.c
        a = c.send("echo", "echo", "a")
        with self.assertRaises(cairn.NotFound):
            c.call("echo", "nope")
        r = c.recv(timeout=10)
        self.assertEqual((r.id, r.body), (a, "a"))


class FakeKernel(unittest.TestCase):
    """A bare ROUTER in the kernel's place: the exact frames, and matching by id
    in an order chosen here."""

    def setUp(self):
        self.ctx = zmq.Context.instance()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"

    def tearDown(self):
        self.router.close()

    def take(self):
        self.assertTrue(self.router.poll(10000), "no request came")
        route, *frames = self.router.recv_multipart()
        self.assertEqual(len(frames), 4, frames)
        self.assertEqual(frames[0], b"")
        self.assertEqual(frames[1], b"CAIRN/1")
        hdr = msgpack.unpackb(frames[2], raw=False)
        body = msgpack.unpackb(frames[3], raw=False) if frames[3] else None
        return route, hdr, body

    def answer(self, route, rid, st=200, body=None, **extra):
        hdr = {"id": rid, "st": st}
        hdr.update(extra)
        self.router.send_multipart([route, b"", b"CAIRN/1", msgpack.packb(hdr),
                                    b"" if body is None else msgpack.packb(body)])

    def test_header_keys(self):
        old = os.environ.pop("CAIRN_TOKEN", None)
        try:
            with cairn.Client(self.endpoint, ttl_ms=1234) as c:
                c.send("svc", "verb")
                _, hdr, body = self.take()
                self.assertEqual(set(hdr), {"id", "svc", "verb", "ttl"})
                self.assertEqual((hdr["svc"], hdr["verb"], hdr["ttl"]), ("svc", "verb", 1234))
                self.assertIsInstance(hdr["id"], int)
                self.assertIsNone(body)
            os.environ["CAIRN_TOKEN"] = "env-token"
            with cairn.Client(self.endpoint, workspace="ws1") as c:
                c.send("svc", "verb", {"b": b"\x00"}, ttl_ms=50)
                _, hdr, body = self.take()
                self.assertEqual((hdr["tok"], hdr["ws"], hdr["ttl"]), ("env-token", "ws1", 50))
                self.assertEqual(body, {"b": b"\x00"})
            with cairn.Client(self.endpoint, token="arg-token") as c:
                c.send("svc", "verb")
                self.assertEqual(self.take()[1]["tok"], "arg-token")
        finally:
            os.environ.pop("CAIRN_TOKEN", None)
            if old is not None:
                os.environ["CAIRN_TOKEN"] = old

    def test_reverse_order_and_strays(self):
        with cairn.Client(self.endpoint, ttl_ms=10000) as c:
            ids = [c.send("s", "v", i) for i in range(10)]
            got = [self.take() for _ in ids]
            route = got[0][0]
            self.assertEqual([h["id"] for _, h, _ in got], ids)
            self.answer(route, 999999, body="stray")  # an id never sent: dropped
            for _, h, body in reversed(got):
                self.answer(route, h["id"], body=body * 10)
            replies = [c.recv(timeout=10) for _ in ids]
            self.assertEqual([r.id for r in replies], list(reversed(ids)))
            self.assertEqual([r.body for r in replies], [i * 10 for i in reversed(range(10))])
            self.assertEqual(c.in_flight, 0)

    def test_call_many_reordered(self):
        with cairn.Client(self.endpoint, ttl_ms=10000) as c:
            # call_many blocks, so answer from the same thread inside the
            # generator it pulls from: before each third request, take the
            # three sent so far and answer them last first.
            def answer_three():
                got = [self.take() for _ in range(3)]
                for route, h, body in reversed(got):
                    self.answer(route, h["id"], body=-body)

            def requests():
                for i in range(6):
                    if i and i % 3 == 0:
                        answer_three()
                    yield ("s", "v", i)
                answer_three()

            replies = c.call_many(requests(), window=4)
            self.assertEqual([r.body for r in replies], [0, -1, -2, -3, -4, -5])

    def test_error_reply_and_late_reply(self):
        with cairn.Client(self.endpoint, ttl_ms=100) as c:
            rid = c.send("s", "v")
            route, hdr, _ = self.take()
            self.answer(route, rid, 409, err="it exists", code="conflict")
            r = c.recv(timeout=10)
            self.assertEqual((r.status, r.code, r.error, r.ok), (409, "conflict", "it exists", False))
            with self.assertRaises(cairn.Conflict) as cm:
                r.raise_for_status()
            self.assertEqual(str(cm.exception), "it exists")
            # No answer: given up locally after ttl + 1 s; a late answer is dropped.
            t0 = time.monotonic()
            with self.assertRaises(cairn.DeadlineExceeded) as cm:
                c.call("s", "late")
            self.assertLess(time.monotonic() - t0, 5)
            self.assertEqual(cm.exception.code, "no_reply")
            route, hdr, _ = self.take()
            self.answer(route, hdr["id"], body="too late")
            rid = c.send("s", "again")
            route, hdr, _ = self.take()
            self.answer(route, rid, body="fresh")
            r = c.recv(timeout=10)
            self.assertEqual((r.id, r.body), (rid, "fresh"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
