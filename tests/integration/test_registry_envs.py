"""Environments in the registry (`env:NAME:VERSION`): versions 1, 2, 3 per
name, never reused; "latest" is the highest not archived; tags and env vars
round-trip; lists and their pages; the created event; bad input for every
field of every verb; workspaces apart; a restart keeps them. Real cairnd,
the plugin inproc and in process mode, the Python SDK."""
import os
import sys
import time
import unittest

import msgpack
import zmq

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import DEADLINE, SOURCE, Kernel  # noqa: E402
from registry_case import RegistryCase, services  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
import cairn  # noqa: E402
from cairn.registry import Registry, parse_env_ref  # noqa: E402


class EnvsBase(RegistryCase):
    SERVICES = ("registry",)

    def test_versions_latest_and_archive(self):
        n = self.name("py311")
        e1 = self.reg.create_environment(
            n, python="/opt/venvs/py311", requirements="numpy==2.1\npandas\n",
            env_vars={"OMP_NUM_THREADS": "4", "_X9": ""}, description="first",
            tags={"team": "risk", "gpu": 1})
        self.assertEqual(
            (e1["name"], e1["version"], e1["python"], e1["requirements"], e1["env_vars"],
             e1["description"], e1["tags"], e1["archived"]),
            (n, 1, "/opt/venvs/py311", "numpy==2.1\npandas\n",
             {"OMP_NUM_THREADS": "4", "_X9": ""}, "first", {"gpu": "1", "team": "risk"},
             False))
        self.assertTrue(e1["user_id"])
        self.assertGreater(e1["creation_timestamp"], 0)
        e2 = self.reg.create_environment(n, tags=[{"key": "k", "value": "v"}])
        e3 = self.reg.create_environment(n, python="/usr/bin/python3")
        self.assertEqual([e["version"] for e in (e1, e2, e3)], [1, 2, 3])
        self.assertEqual((e2["python"], e2["env_vars"], e2["tags"]), ("", {}, {"k": "v"}))
        self.assertEqual(self.reg.get_environment(n), e3)
        self.assertEqual(self.reg.get_environment(f"env:{n}:1"), e1)
        self.assertEqual(self.reg.get_environment(f"{n}:2"), e2)
        self.assertEqual(self.reg.get_environment(n, "latest"), e3)
        self.assertEqual(self.reg.get_environment(n, "1"), e1)
        # Archived: not the latest, not listed, still there by number.
        a = self.reg.archive_environment(n, 3)
        self.assertTrue(a["archived"])
        self.assertEqual(self.reg.archive_environment(n, 3), a)  # idempotent
        self.assertEqual(self.reg.get_environment(n)["version"], 2)
        self.assertTrue(self.reg.get_environment(n, 3)["archived"])
        self.assertEqual([e["version"] for e in self.reg.list_environments(n)], [2, 1])
        self.assertEqual([e["version"] for e in
                          self.reg.list_environments(n, include_archived=True)],
                         [3, 2, 1])
        # A number is never given out twice, archived or not.
        self.assertEqual(self.reg.create_environment(n)["version"], 4)
        self.reg.archive_environment(n, 4)
        for v in (1, 2):
            self.reg.archive_environment(n, v)
        with self.assertRaises(cairn.NotFound):
            self.reg.get_environment(n)
        self.assertEqual(self.reg.list_environments(n), [])
        self.assertFalse(self.reg.archive_environment(n, 2, archived=False)["archived"])
        self.assertEqual(self.reg.get_environment(n)["version"], 2)

    def test_list_the_latest_of_each_and_pages(self):
        ws = f"envs-{self.MODE}-{os.urandom(2).hex()}"
        with Registry(self.k.endpoint, workspace=ws) as reg:
            names = [f"e{i:02d}" for i in range(7)]
            for i, n in enumerate(names):
                for _ in range(i % 3 + 1):
                    reg.create_environment(n)
            got = reg.list_environments()
            self.assertEqual([(e["name"], e["version"]) for e in got],
                             [(n, i % 3 + 1) for i, n in enumerate(names)])
            self.assertEqual(reg.list_environments(page_size=2), got)
            b = reg._call("list_environments", max_results=3)
            self.assertEqual(len(b["environments"]), 3)
            b2 = reg._call("list_environments", max_results=3,
                           page_token=b["next_page_token"])
            self.assertEqual([e["name"] for e in b2["environments"]], names[3:6])
            # Archiving the latest shows the one before it.
            reg.archive_environment("e02", 3)
            got = {e["name"]: e["version"] for e in reg.list_environments()}
            self.assertEqual(got["e02"], 2)
            reg.archive_environment("e00", 1)
            self.assertNotIn("e00", {e["name"] for e in reg.list_environments()})
            self.assertIn("e00", {e["name"] for e in
                                  reg.list_environments(include_archived=True)})
            self.assertEqual(len(reg.list_environments("e05", page_size=1)), 3)

    def test_workspaces_are_apart(self):
        n = self.name("shared")
        with Registry(self.k.endpoint, workspace="envs-a") as a, \
                Registry(self.k.endpoint, workspace="envs-b") as b:
            a.create_environment(n, python="/a/python", tags={"ws": "a"})
            a.create_environment(n)
            self.assertEqual(b.create_environment(n, python="/b/python")["version"], 1)
            self.assertEqual(a.get_environment(n, 1)["python"], "/a/python")
            self.assertEqual(b.get_environment(n)["python"], "/b/python")
            self.assertEqual(b.get_environment(n)["tags"], {})
            with self.assertRaises(cairn.NotFound):
                b.get_environment(n, 2)
            with self.assertRaises(cairn.NotFound):
                self.reg.get_environment(n)  # the default workspace
            with self.assertRaises(cairn.NotFound):
                b.archive_environment(n, 2)

    def test_bad_input_is_a_400_with_a_sentence(self):
        n = self.name("bad")
        self.reg.create_environment(n)
        big = {f"V{i}": "x" for i in range(101)}
        cases = [
            ("create_environment", {}, 400),
            ("create_environment", {"name": ""}, 400),
            ("create_environment", {"name": 5}, 400),
            ("create_environment", {"name": "a:b"}, 400),
            ("create_environment", {"name": "a@b"}, 400),
            ("create_environment", {"name": "a\nb"}, 400),
            ("create_environment", {"name": "x" * 257}, 400),
            ("create_environment", {"name": "t", "python": ""}, 400),
            ("create_environment", {"name": "t", "python": "python3"}, 400),
            ("create_environment", {"name": "t", "python": "/a\tb"}, 400),
            ("create_environment", {"name": "t", "python": "/" + "p" * 4096}, 400),
            ("create_environment", {"name": "t", "python": 3}, 400),
            ("create_environment", {"name": "t", "requirements": "r" * 65537}, 400),
            ("create_environment", {"name": "t", "requirements": ["numpy"]}, 400),
            ("create_environment", {"name": "t", "env_vars": "A=1"}, 400),
            ("create_environment", {"name": "t", "env_vars": ["A"]}, 400),
            ("create_environment", {"name": "t", "env_vars": {"1A": "x"}}, 400),
            ("create_environment", {"name": "t", "env_vars": {"A-B": "x"}}, 400),
            ("create_environment", {"name": "t", "env_vars": {"": "x"}}, 400),
            ("create_environment", {"name": "t", "env_vars": {"A": 1}}, 400),
            ("create_environment", {"name": "t", "env_vars": {"A": None}}, 400),
            ("create_environment", {"name": "t", "env_vars": {"A": "v" * 4097}}, 400),
            ("create_environment", {"name": "t", "env_vars": {"A": "a\0b"}}, 400),
            ("create_environment", {"name": "t", "env_vars": {"A" * 257: "x"}}, 400),
            ("create_environment", {"name": "t", "env_vars": big}, 400),
            ("create_environment", {"name": "t", "description": "d" * 65537}, 400),
            ("create_environment", {"name": "t", "description": 1}, 400),
            ("create_environment", {"name": "t", "tags": "x"}, 400),
            ("create_environment", {"name": "t", "tags": {"k": 1}}, 400),
            ("create_environment", {"name": "t", "tags": {"": "v"}}, 400),
            ("create_environment", {"name": "t", "tags": {"k" * 251: "v"}}, 400),
            ("create_environment", {"name": "t", "tags": {"k": "v" * 5001}}, 400),
            ("create_environment", {"name": "t", "tags": [{"value": "v"}]}, 400),
            ("create_environment", {"name": "t", "tags": [{"key": "k"}, {"key": "k"}]}, 400),
            ("create_environment", {"name": "t", "tags": ["k"]}, 400),
            ("create_environment", {"name": "t", "tags": {f"k{i}": "v" for i in range(101)}},
             413),
            ("get_environment", {}, 400),
            ("get_environment", {"name": ""}, 400),
            ("get_environment", {"name": n, "version": 0}, 400),
            ("get_environment", {"name": n, "version": -1}, 400),
            ("get_environment", {"name": n, "version": "newest"}, 400),
            ("get_environment", {"name": n, "version": 1.5}, 400),
            ("get_environment", {"name": n, "version": 9}, 404),
            ("get_environment", {"name": "nope-" + n}, 404),
            ("list_environments", {"name": ""}, 400),
            ("list_environments", {"name": 1}, 400),
            ("list_environments", {"name": "nope-" + n}, 404),
            ("list_environments", {"include_archived": "yes"}, 400),
            ("list_environments", {"max_results": 0}, 400),
            ("list_environments", {"max_results": 1001}, 400),
            ("list_environments", {"max_results": "5"}, 400),
            ("list_environments", {"page_token": "garbage"}, 400),
            ("list_environments", {"page_token": 5}, 400),
            ("archive_environment", {"name": n}, 400),
            ("archive_environment", {"version": 1}, 400),
            ("archive_environment", {"name": n, "version": "latest"}, 400),
            ("archive_environment", {"name": n, "version": 0}, 400),
            ("archive_environment", {"name": n, "version": 1, "archived": "no"}, 400),
            ("archive_environment", {"name": n, "version": 2}, 404),
            ("archive_environment", {"name": "nope-" + n, "version": 1}, 404),
        ]
        for verb, body, st in cases:
            h, _ = self.c.call("registry", verb, body)
            self.assertEqual(h["st"], st, (verb, body, h))
            self.assertTrue(h.get("err"), (verb, body, h))
        # Nothing was created along the way.
        self.assertEqual([e["version"] for e in self.reg.list_environments(n)], [1])
        h, _ = self.c.call("registry", "list_environments", {"name": "t"})
        self.assertEqual(h["st"], 404, h)
        h, _ = self.c.call("registry", "create_environment",
                           {"name": "t", "env_vars": {"A": "1", "1B": "2"}})
        self.assertIn("1B", h["err"])

    def test_created_event(self):
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"environment.")
        sub.connect(self.k.events)
        n = self.name("ev")
        got = []
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and not got:
            self.reg.create_environment(n)
            while sub.poll(100):
                got.append(tuple(sub.recv_multipart()))
        self.assertTrue(got)
        self.assertEqual(got[0][0], b"environment.created")
        body = msgpack.unpackb(got[0][1])
        self.assertEqual((body["name"], body["ws"]), (n, "default"))
        self.assertGreaterEqual(body["version"], 1)
        sub.close()


class EnvsInproc(EnvsBase, unittest.TestCase):
    MODE = "inproc"


class EnvsProcess(EnvsBase, unittest.TestCase):
    MODE = "process"


class Persistence(unittest.TestCase):
    def test_a_restart_keeps_everything(self):
        k = Kernel(services=services("inproc", ("registry",))).start()
        try:
            with Registry(k.endpoint) as reg:
                reg.create_environment("kept", python="/opt/py", env_vars={"A": "1"},
                                       tags={"t": "v"})
                reg.create_environment("kept", requirements="torch\n")
                reg.archive_environment("kept", 2)
            k.stop()
            k.start()
            with Registry(k.endpoint) as reg:
                e = reg.get_environment("env:kept")
                self.assertEqual((e["version"], e["python"], e["env_vars"], e["tags"]),
                                 (1, "/opt/py", {"A": "1"}, {"t": "v"}))
                self.assertEqual(reg.get_environment("kept:2")["requirements"], "torch\n")
                self.assertEqual(reg.create_environment("kept")["version"], 3)
        finally:
            k.cleanup()

    def test_references(self):
        self.assertEqual(parse_env_ref("env:py:3"), ("py", 3))
        self.assertEqual(parse_env_ref("py:3"), ("py", 3))
        self.assertEqual(parse_env_ref("py"), ("py", None))
        self.assertEqual(parse_env_ref("env:py"), ("py", None))
        self.assertEqual(parse_env_ref("py:latest"), ("py", None))
        with self.assertRaises(ValueError):
            parse_env_ref("py:x")


if __name__ == "__main__":
    unittest.main(verbosity=2)
