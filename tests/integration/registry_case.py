"""What the registry's integration tests share: a private cairnd with the
registry (and, where it needs them, tracking and artifacts: the storage
plugin) in one mode, a raw client and a Registry over it, and the small
helpers every case uses. Not a test itself (no test_ prefix)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import SOURCE, Kernel  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
from cairn.registry import Registry  # noqa: E402

WITH_STORE = ("tracking", "artifacts", "registry")


def services(mode, names=WITH_STORE):
    plugin = {"tracking": "storage", "artifacts": "storage", "registry": "registry"}
    return "".join(f"  {s}:\n    plugin: {plugin[s]}\n    mode: {mode}\n" for s in names)


class RegistryCase:
    """Mix into a unittest.TestCase; MODE picks inproc or process, SERVICES
    the services started (WITH_STORE, or ("registry",) alone)."""
    MODE = "inproc"
    SERVICES = WITH_STORE

    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=services(cls.MODE, cls.SERVICES)).start()
        cls.c = cls.k.client()
        cls.reg = Registry(cls.k.endpoint)

    @classmethod
    def tearDownClass(cls):
        cls.reg.close()
        cls.c.close()
        cls.k.cleanup()

    def ok(self, svc, verb, body):
        h, b = self.c.call(svc, verb, body)
        self.assertEqual(h["st"], 200, (verb, h))
        return b

    def refused(self, verb, body, st, svc="registry"):
        """verb answers st with a sentence."""
        h, _ = self.c.call(svc, verb, body)
        self.assertEqual(h["st"], st, (verb, body, h))
        self.assertTrue(h.get("err"), h)
        return h

    def new_run(self, files, put=None):
        """A run in a new experiment holding files {path: bytes}; put(run_id,
        path, data) stores one (default: one whole put_artifact)."""
        exp = self.ok("tracking", "create_experiment",
                      {"name": f"case-{os.urandom(4).hex()}"})["experiment_id"]
        rid = self.ok("tracking", "create_run",
                      {"experiment_id": exp})["run"]["info"]["run_id"]
        for path, data in files.items():
            if put:
                put(rid, path, data)
            else:
                self.ok("artifacts", "put_artifact", {"run_id": rid, "path": path,
                                                      "data": data, "offset": 0,
                                                      "done": True})
        return rid

    def name(self, base):
        return f"{base}-{self.MODE}-{os.urandom(3).hex()}"
