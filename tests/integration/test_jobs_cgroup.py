"""Per-job cgroups (issue 16): where the cgroup root offers the memory and
cpu controllers (cgroup v2), a job that asks for resources gets a cgroup of
its own with memory.max and cpu.max, and its command is moved into it
before it runs; elsewhere rlimits and CPU affinity, and list_computes says
which and why. The root here is a plain folder standing in for cgroupfs
(the `cgroup_root` setting): what the kernel would enforce cannot be
checked on a machine without cgroup v2, what Cairn writes can."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import DEADLINE, Kernel, wait_for  # noqa: E402

SERVICES = """\
  tracking:
    plugin: storage
    mode: inproc
  jobs:
    plugin: compute
    mode: process
    settings:
      grace_ms: 300
      cgroup_root: {root}
"""

DONE = ("Completed", "Failed", "Canceled", "TimedOut")


class CgroupCase(unittest.TestCase):
    controllers = "cpuset cpu io memory pids\n"

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="cairn-cgroot-")
        with open(os.path.join(cls.root, "cgroup.controllers"), "w") as f:
            f.write(cls.controllers)
        open(os.path.join(cls.root, "cgroup.subtree_control"), "w").close()
        cls.k = Kernel(services=SERVICES.format(root=cls.root)).start()
        cls.c = cls.k.client()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    def call(self, verb, body, st=200):
        h, b = self.c.call("jobs", verb, body)
        self.assertEqual(h["st"], st, (verb, body, h))
        return b

    def run_job(self, spec):
        j = self.call("submit_job", {"spec": spec}, 201)["job"]
        return wait_for(lambda: (lambda x: x if x["status"] in DONE else None)(
            self.call("get_job", {"name": j["name"]})["job"]), DEADLINE, "the job's end")


class WithCgroups(CgroupCase):
    def test_a_job_with_resources_gets_its_cgroup(self):
        limits = self.call("list_computes", {})["computes"][0]["limits"]
        self.assertIn("cgroups v2", limits)
        jobs = os.path.join(self.root, "cairn-jobs")
        with open(os.path.join(self.root, "cgroup.subtree_control")) as f:
            self.assertEqual(f.read(), "+memory +cpu")
        with open(os.path.join(jobs, "cgroup.subtree_control")) as f:
            self.assertEqual(f.read(), "+memory +cpu")
        done = self.run_job({"command": "echo pid=$$",
                             "resources": {"memory": "64MiB", "cpus": 1.5}})
        self.assertEqual(done["status"], "Completed", done)
        groups = [d for d in os.listdir(jobs) if d.startswith("job-")]
        self.assertEqual(len(groups), 1, groups)  # a stand-in: rmdir cannot empty it
        g = os.path.join(jobs, groups[0])
        with open(os.path.join(g, "memory.max")) as f:
            self.assertEqual(f.read(), f"{64 << 20}\n")
        with open(os.path.join(g, "cpu.max")) as f:
            self.assertEqual(f.read(), "150000 100000\n")
        log = self.call("stream_logs", {"name": done["name"], "offset": 0})["data"]
        with open(os.path.join(g, "cgroup.procs")) as f:
            self.assertEqual(f"pid={f.read().strip()}", log.strip())  # the command itself
        # a job asking for nothing gets no cgroup
        self.assertEqual(self.run_job({"command": "true"})["status"], "Completed")
        self.assertEqual(len([d for d in os.listdir(jobs) if d.startswith("job-")]), 1)


class WithoutCgroups(CgroupCase):
    controllers = "hugetlb\n"  # as a cgroup v1 host's hybrid unified mount

    def test_rlimits_said_and_used(self):
        limits = self.call("list_computes", {})["computes"][0]["limits"]
        self.assertIn("rlimits (no cgroup v2 memory and cpu controllers", limits)
        done = self.run_job({"command": "ulimit -v", "resources": {"memory": "64MiB"}})
        self.assertEqual(done["status"], "Completed", done)
        log = self.call("stream_logs", {"name": done["name"], "offset": 0})["data"]
        self.assertEqual(log.strip(), str(64 << 10))  # KiB
        self.assertFalse(os.path.exists(os.path.join(self.root, "cairn-jobs")))


if __name__ == "__main__":
    unittest.main()
