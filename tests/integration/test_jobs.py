"""The jobs service (issue 16, first slice): command jobs from YAML run by
a real cairnd, the compute plugin in process mode, each job under its own
cairn-job-shim. A job's whole life (run made, status mirrored, logs), a
Python job logging to its run through the SDK with no run named, inputs
and environment, a failing job, cancel and timeout of a tree that ignores
SIGTERM, kill -9 of the plugin and of cairnd mid-job (the job goes on and
is recorded), the queue's limit and priorities, paging, bad specs."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import BIN, DEADLINE, SOURCE, Kernel, wait_for  # noqa: E402

SERVICES = """\
  tracking:
    plugin: storage
    mode: inproc
  artifacts:
    plugin: storage
    mode: inproc
  jobs:
    plugin: compute
    mode: process
    settings:
      max_concurrent: 2
      grace_ms: 300
      metrics_interval_ms: 200
      cgroup_root: /nonexistent  # rlimits, whatever the host (test_jobs_cgroup.py)
"""

DONE = ("Completed", "Failed", "Canceled", "TimedOut")


def pgid_alive(pgid):
    """Whether any process is still in process group pgid."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5: pgrp (3rd after the comm)
            return True
    return False


class JobsCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=SERVICES).start()
        cls.c = cls.k.client()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    def call(self, verb, body, st=200, svc="jobs"):
        h, b = self.c.call(svc, verb, body)
        self.assertEqual(h["st"], st, (verb, body, h))
        return b if st < 400 else h

    def submit(self, spec, st=201):
        return self.call("submit_job", {"spec": spec}, st)

    def wait_done(self, name, timeout=DEADLINE):
        return wait_for(lambda: (lambda j: j if j["status"] in DONE else None)(
            self.call("get_job", {"name": name})["job"]), timeout, f"job {name} to end")

    def logs(self, name):
        out, off = b"", 0
        for _ in range(1000):
            r = self.call("stream_logs", {"name": name, "offset": off})
            out += r["data"].encode()
            off = r["offset"]
            if r["done"]:
                return out.decode()
        raise AssertionError("stream_logs never said done")

    def jobdir(self, name, ws="default"):
        return os.path.join(self.k.state, "jobs", ws, name)

    def shim_pgid(self, name):
        path = os.path.join(self.jobdir(name), "shim.pid")
        def read():
            try:
                with open(path) as f:
                    return f.read()
            except FileNotFoundError:
                return None
        text = wait_for(read, what="the shim's pid file")
        pid, start, pgid = (int(x) for x in text.split())
        return pid, pgid

    def run_of(self, job):
        return self.call("get_run", {"run_id": job["run_id"]}, svc="tracking")["run"]


class Lifecycle(JobsCase):
    def test_a_job_runs_and_its_run_follows(self):
        n = "hello-" + os.urandom(3).hex()
        j = self.submit(textwrap.dedent(f"""\
            type: command
            name: {n}
            display_name: say hello
            experiment_name: jobs-test
            command: echo hello from $CAIRN_JOB_NAME; echo to stderr >&2
            """))["job"]
        self.assertEqual((j["name"], j["display_name"], j["experiment_name"]),
                         (n, "say hello", "jobs-test"))
        self.assertIn(j["status"], ("Queued", "Preparing", "Running"))
        self.assertTrue(j["run_id"])
        done = self.wait_done(n)
        self.assertEqual((done["status"], done["exit_code"]), ("Completed", 0), done)
        self.assertGreaterEqual(done["ended"], done["started"])
        log = self.logs(n)
        self.assertIn(f"hello from {n}", log)
        self.assertIn("to stderr", log)
        run = self.run_of(done)
        self.assertEqual(run["info"]["status"], "FINISHED")
        self.assertIn({"key": "cairn.job", "value": n}, run["data"]["tags"])
        # the log, kept with the run
        wait_for(lambda: [f for f in self.call("list_artifacts", {
            "run_id": done["run_id"], "path": "logs"}, svc="artifacts")["files"]
            if f["path"] == "logs/output.log"], what="the log among the run's artifacts")
        kept = self.call("get_artifact", {"run_id": done["run_id"],
                                          "path": "logs/output.log"}, svc="artifacts")
        self.assertEqual(kept["data"].decode(), log)
        # the same name twice in a workspace: a conflict
        h = self.submit({"command": "true", "name": n}, 409)
        self.assertIn(n, h["err"])

    def test_a_python_job_logs_to_its_run_with_no_run_named(self):
        script = ("import cairn\n"
                  "with cairn.start_run() as run:\n"
                  "    for step in range(3):\n"
                  "        cairn.log_metric('loss', 1.0 / (step + 1), step=step)\n"
                  "    cairn.log_param('lr', '0.1')\n"
                  "print('logged to', run.run_id)\n")
        j = self.submit({"command": f"/usr/bin/python3 -c \"{script}\"",
                         "environment_variables": {
                             "PYTHONPATH": os.path.join(SOURCE, "sdk", "python")}})["job"]
        done = self.wait_done(j["name"])
        log = self.logs(j["name"])
        self.assertEqual(done["status"], "Completed", log)
        self.assertIn(f"logged to {j['run_id']}", log)
        run = self.run_of(done)
        self.assertIn({"key": "lr", "value": "0.1"}, run["data"]["params"])
        self.assertEqual([m["value"] for m in run["data"]["metrics"] if m["key"] == "loss"],
                         [1.0 / 3])

    def test_an_mpi_job_runs_its_ranks_and_keeps_rank_0s_metrics(self):
        mpirun = self.call("list_computes", {})["computes"][0]["mpirun"]
        if not mpirun:
            self.skipTest("no mpirun here (openmpi-bin)")
        script = ("import os, cairn\n"
                  "rank = int(os.environ['OMPI_COMM_WORLD_RANK'])\n"
                  "for step in range(3):\n"
                  "    cairn.log_metric('rank_seen', rank, step=step)\n"
                  "cairn.end_run()\n"
                  "print('rank', rank, 'of', os.environ['OMPI_COMM_WORLD_SIZE'])\n")
        j = self.submit({"command": f"/usr/bin/python3 -c \"{script}\"; echo 'it''s done'",
                         "distribution": {"type": "mpi", "process_count_per_instance": 2},
                         "environment_variables": {
                             "PYTHONPATH": os.path.join(SOURCE, "sdk", "python")}})["job"]
        done = self.wait_done(j["name"])
        log = self.logs(j["name"])
        self.assertEqual(done["status"], "Completed", log)
        self.assertIn("[1,0]<stdout>:rank 0 of 2", log)
        self.assertIn("[1,1]<stdout>:rank 1 of 2", log)
        self.assertIn("[1,1]<stdout>:its done", log)  # the command's quotes kept
        hist = self.call("get_metric_history", {"run_id": j["run_id"], "key": "rank_seen"},
                         svc="tracking")["metrics"]
        self.assertEqual([(m["step"], m["value"]) for m in hist],
                         [(0, 0.0), (1, 0.0), (2, 0.0)], "rank 0's points only")
        for bad, path in (({"type": "pytorch"}, "distribution.type"),
                          ({"type": "mpi", "process_count_per_instance": 0},
                           "distribution.process_count_per_instance"),
                          ({"type": "mpi", "nodes": 2}, "distribution")):
            h = self.submit({"command": "true", "distribution": bad}, 400)
            self.assertTrue(h["err"].startswith(path + ":"), h)

    def test_system_metrics_reach_the_run(self):
        burn = "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass\n"
        j = self.submit({"command": f"/usr/bin/python3 -c '{burn}'"})["job"]
        self.assertEqual(self.wait_done(j["name"])["status"], "Completed")
        hist = {}
        for key in ("system/cpu_percent", "system/memory_rss_bytes"):
            hist[key] = self.call("get_metric_history", {"run_id": j["run_id"], "key": key},
                                  svc="tracking")["metrics"]
            self.assertGreaterEqual(len(hist[key]), 2, key)
            self.assertEqual([m["step"] for m in hist[key]], list(range(len(hist[key]))))
        # one CPU kept busy: about 100 (a loaded host gives it less)
        self.assertGreater(max(m["value"] for m in hist["system/cpu_percent"]), 20)
        self.assertLess(max(m["value"] for m in hist["system/cpu_percent"]), 250)
        self.assertGreater(min(m["value"] for m in hist["system/memory_rss_bytes"]), 1 << 20)

    def test_a_large_log_is_kept_whole(self):
        j = self.submit({"command": "head -c 7000000 /dev/urandom | base64"})["job"]
        self.assertEqual(self.wait_done(j["name"])["status"], "Completed")
        with open(os.path.join(self.jobdir(j["name"]), "output.log"), "rb") as f:
            want = f.read()
        self.assertGreater(len(want), 8 << 20)  # more than one chunk
        wait_for(lambda: [f for f in self.call("list_artifacts", {
            "run_id": j["run_id"], "path": "logs"}, svc="artifacts")["files"]
            if f["path"] == "logs/output.log" and f["file_size"] == len(want)],
            what="the whole log among the run's artifacts")
        got, off = b"", 0
        while off < len(want):
            r = self.call("get_artifact", {"run_id": j["run_id"], "path": "logs/output.log",
                                           "offset": off, "length": 4 << 20}, svc="artifacts")
            got += r["data"]
            off += len(r["data"])
            if r["done"]:
                break
        self.assertEqual(got, want)

    def test_inputs_and_environment(self):
        j = self.submit({"command": "echo lr=${{inputs.lr}} n=${{ inputs.n }} "
                                    "flag=${{inputs.flag}} foo=$FOO",
                         "inputs": {"lr": 0.01, "n": 7, "flag": True},
                         "environment_variables": {"FOO": "bar baz"}})["job"]
        self.assertEqual(self.wait_done(j["name"])["status"], "Completed")
        self.assertIn("lr=0.01 n=7 flag=true foo=bar baz", self.logs(j["name"]))

    def test_a_failing_job(self):
        j = self.submit({"command": "echo about to fail; exit 3"})["job"]
        done = self.wait_done(j["name"])
        self.assertEqual((done["status"], done["exit_code"]), ("Failed", 3))
        self.assertIn("status 3", done["reason"])
        self.assertEqual(self.run_of(done)["info"]["status"], "FAILED")
        self.assertIn("about to fail", self.logs(j["name"]))

    def test_resources_are_enforced(self):
        grab = "x = bytearray(400 * 1024 * 1024); print('got it')"
        j = self.submit({"command": f"/usr/bin/python3 -c \"{grab}\"",
                         "resources": {"memory": "128MiB"}})["job"]
        done = self.wait_done(j["name"])
        self.assertEqual(done["status"], "Failed", done)
        self.assertIn("MemoryError", self.logs(j["name"]))
        j = self.submit({"command": f"/usr/bin/python3 -c \"{grab}\"",
                         "resources": {"memory": "1GiB"}})["job"]
        self.assertEqual(self.wait_done(j["name"])["status"], "Completed")
        self.assertIn("got it", self.logs(j["name"]))
        j = self.submit({"command": "grep Cpus_allowed_list /proc/self/status",
                         "resources": {"cpus": 1}})["job"]
        self.assertEqual(self.wait_done(j["name"])["status"], "Completed")
        allowed = self.logs(j["name"]).split(":")[1].strip()
        if os.cpu_count() > 1:
            self.assertRegex(allowed, r"^\d+$")  # one CPU
        h = self.submit({"command": "true", "resources": {"gpus": 64}}, 400)
        self.assertIn("asks for 64 GPUs", h["err"])
        self.assertIn("rlimits", self.call("list_computes", {})["computes"][0]["limits"])

    def test_retries(self):
        flag = os.path.join(self.k.tmp, "tried-" + os.urandom(3).hex())
        j = self.submit({"command": f"if [ -e {flag} ]; then echo second try; else "
                                    f"touch {flag}; echo first try; exit 2; fi",
                         "retries": 2})["job"]
        done = self.wait_done(j["name"])
        self.assertEqual((done["status"], done["retries"], done["retried"]),
                         ("Completed", 2, 1), done)
        log = self.logs(j["name"])
        self.assertIn("first try", log)
        self.assertIn("second try", log)
        self.assertEqual(self.run_of(done)["info"]["status"], "FINISHED")
        j = self.submit({"command": "echo failing; exit 5", "retries": 1})["job"]
        done = self.wait_done(j["name"])
        self.assertEqual((done["status"], done["retried"], done["exit_code"]),
                         ("Failed", 1, 5), done)
        self.assertEqual(self.logs(j["name"]).count("failing"), 2)
        self.submit({"command": "true", "retries": 11}, 400)

    def test_cancel_stops_a_tree_that_ignores_sigterm(self):
        j = self.submit({"command": "trap '' TERM; sleep 300 & sleep 300 & echo started; "
                                    "wait; wait"})["job"]
        wait_for(lambda: "started" in self.logs_now(j["name"]), what="the tree to start")
        _, pgid = self.shim_pgid(j["name"])
        self.assertTrue(pgid_alive(pgid))
        r = self.call("cancel_job", {"name": j["name"]})["job"]
        self.assertIn(r["status"], ("Preparing", "Running"))
        self.assertTrue(r["cancel_requested"])
        done = self.wait_done(j["name"])
        self.assertEqual(done["status"], "Canceled", done)
        wait_for(lambda: not pgid_alive(pgid), what="every process of the job gone")
        self.assertEqual(self.run_of(done)["info"]["status"], "KILLED")
        h = self.call("cancel_job", {"name": j["name"]}, 409)
        self.assertIn("already ended", h["err"])

    def logs_now(self, name):
        return self.call("stream_logs", {"name": name})["data"]

    def test_timeout(self):
        j = self.submit({"command": "sleep 60", "limits": {"timeout": 1}})["job"]
        done = self.wait_done(j["name"])
        self.assertEqual(done["status"], "TimedOut", done)
        self.assertLess(done["ended"] - done["started"], 30000)

    def test_a_queued_job_is_canceled_at_once(self):
        blockers = [self.submit({"command": "sleep 30", "priority": 5})["job"]["name"]
                    for _ in range(2)]
        q = self.submit({"command": "echo never"})["job"]
        got = self.call("get_job", {"name": q["name"]})["job"]
        self.assertEqual(got["status"], "Queued")
        r = self.call("cancel_job", {"name": q["name"]})["job"]
        self.assertEqual(r["status"], "Canceled")
        for b in blockers:
            self.call("cancel_job", {"name": b})
        for b in blockers:
            self.assertEqual(self.wait_done(b)["status"], "Canceled")

    def test_queue_limit_and_priority(self):
        tag = os.urandom(2).hex()
        names = []
        gate = os.path.join(self.k.tmp, f"gate-{tag}")
        # two holders take both slots until the gate file appears
        for i in range(2):
            names.append(self.submit({"name": f"hold-{tag}-{i}",
                                      "command": f"while [ ! -e {gate} ]; do sleep 0.05; "
                                                 f"done"})["job"]["name"])
        wait_for(lambda: all(self.call("get_job", {"name": n})["job"]["status"] == "Running"
                             for n in names), what="both holders running")
        low = self.submit({"name": f"low-{tag}", "command": "true", "priority": -1})["job"]
        mid = self.submit({"name": f"mid-{tag}", "command": "true"})["job"]
        high = self.submit({"name": f"high-{tag}", "command": "true", "priority": 10})["job"]
        for j in (low, mid, high):
            self.assertEqual(self.call("get_job", {"name": j["name"]})["job"]["status"],
                             "Queued")
        computes = self.call("list_computes", {})["computes"]
        self.assertEqual(computes[0]["name"], "local")
        self.assertEqual((computes[0]["running"], computes[0]["max_concurrent"]), (2, 2))
        self.assertGreaterEqual(computes[0]["queued"], 3)
        open(gate, "w").close()
        ends = {j["name"]: self.wait_done(j["name"]) for j in (low, mid, high)}
        # high, then mid, take the two slots; low waits until one is free
        at = {n: ends[n]["started"] for n in ends}
        self.assertLessEqual(at[high["name"]], at[mid["name"]], ends)
        self.assertLessEqual(at[mid["name"]], at[low["name"]], ends)
        self.assertGreaterEqual(at[low["name"]], min(ends[high["name"]]["ended"],
                                                     ends[mid["name"]]["ended"]), ends)

    def test_compute_targets(self):
        pool = "pool-" + os.urandom(3).hex()
        t = self.call("create_compute", {"name": pool, "max_concurrent": 1,
                                         "description": "one at a time"}, 201)["compute"]
        self.assertEqual((t["name"], t["type"], t["max_concurrent"], t["running"]),
                         (pool, "local", 1, 0))
        self.call("create_compute", {"name": pool}, 409)
        self.call("create_compute", {"name": "local"}, 409)
        self.assertIn("max_concurrent",
                      self.call("create_compute", {"name": "x", "max_concurrent": 0},
                                400)["err"])
        self.assertIn("type", self.call("create_compute", {"name": "x", "type": "slurm"},
                                        400)["err"])
        gate = os.path.join(self.k.state, f"gate-{pool}")
        wait = f"while [ ! -e {gate} ]; do sleep 0.05; done"
        a = self.submit({"command": wait, "compute": pool})["job"]
        b = self.submit({"command": "echo b", "compute": f"azureml:{pool}"})["job"]
        self.assertEqual(b["compute"], pool)
        wait_for(lambda: self.call("get_job", {"name": a["name"]})["job"]["status"]
                 == "Running", what="a to run")
        # b waits for the pool's one slot; a job on local goes by it
        c = self.submit({"command": "echo c"})["job"]
        self.assertEqual(self.wait_done(c["name"])["status"], "Completed")
        self.assertEqual(self.call("get_job", {"name": b["name"]})["job"]["status"],
                         "Queued")
        listed = {x["name"]: x for x in self.call("list_computes", {})["computes"]}
        self.assertEqual((listed[pool]["running"], listed[pool]["queued"]), (1, 1))
        self.assertIn("cpus", listed["local"])
        self.assertIn("running",
                      self.call("delete_compute", {"name": pool}, 409)["err"])
        open(gate, "w").close()
        for j in (a, b):
            self.assertEqual(self.wait_done(j["name"])["status"], "Completed")
        self.assertEqual(self.call("get_compute", {"name": pool})["compute"]["running"], 0)
        self.call("delete_compute", {"name": pool})
        self.call("get_compute", {"name": pool}, 404)
        h = self.submit({"command": "true", "compute": pool}, 400)
        self.assertTrue(h["err"].startswith("compute:"), h)

    def test_list_jobs_pages_newest_first(self):
        exp = "paging-" + os.urandom(2).hex()
        made = [self.submit({"command": "true", "experiment_name": exp})["job"]["name"]
                for _ in range(5)]
        seen, tok = [], None
        for _ in range(10):
            body = {"experiment": exp, "max_results": 2}
            if tok:
                body["page_token"] = tok
            r = self.call("list_jobs", body)
            seen += [j["name"] for j in r["jobs"]]
            tok = r.get("next_page_token")
            if not tok:
                break
        self.assertEqual(seen, made[::-1])
        for n in made:
            self.wait_done(n)
        done = self.call("list_jobs", {"experiment": exp, "status": "Completed"})["jobs"]
        self.assertEqual(len(done), 5)


class Workspaces(JobsCase):
    def test_a_job_is_seen_in_its_workspace_only(self):
        h, b = self.c.call("jobs", "submit_job", {"spec": {"command": "echo alpha"}},
                           ws="alpha")
        self.assertEqual(h["st"], 201, h)
        name = b["job"]["name"]
        for verb in ("get_job", "cancel_job", "stream_logs"):
            h, _ = self.c.call("jobs", verb, {"name": name}, ws="beta")
            self.assertEqual(h["st"], 404, (verb, h))
        h, b = self.c.call("jobs", "list_jobs", {}, ws="beta")
        self.assertNotIn(name, [j["name"] for j in b["jobs"]])
        # the same name is free in another workspace
        h, b = self.c.call("jobs", "submit_job", {"spec": {"command": "true", "name": name}},
                           ws="beta")
        self.assertEqual(h["st"], 201, h)
        for ws in ("alpha", "beta"):
            wait_for(lambda: self.c.call("jobs", "get_job", {"name": name}, ws=ws)[1]["job"][
                "status"] == "Completed", what=f"the job in {ws} to end")
        self.assertTrue(os.path.isdir(self.jobdir(name, "alpha")))
        self.assertTrue(os.path.isdir(self.jobdir(name, "beta")))


class PythonSDK(JobsCase):
    def test_submit_stream_wait_cancel(self):
        sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
        import cairn
        jobs = cairn.Jobs(self.k.endpoint)
        path = os.path.join(self.k.tmp, "job.yml")
        with open(path, "w") as f:
            f.write("command: for i in 1 2 3; do echo line $i; sleep 0.1; done\n"
                    "experiment_name: sdk\n")
        job = jobs.submit(path)
        self.assertEqual(job.info["experiment_name"], "sdk")
        text = "".join(job.stream())
        self.assertEqual(text, "line 1\nline 2\nline 3\n")
        self.assertEqual(job.status, "Completed")
        self.assertEqual(job.wait(timeout=DEADLINE), "Completed")
        self.assertEqual(job.logs(), text)
        long = jobs.submit({"command": "sleep 60"})
        long.cancel()
        self.assertEqual(long.wait(timeout=DEADLINE), "Canceled")
        names = [j.name for j in jobs.list(experiment="sdk")]
        self.assertEqual(names, [job.name])
        with self.assertRaises(cairn.BadRequest) as e:
            jobs.submit({"command": "true", "resources": {"gpus": "two"}})
        self.assertIn("resources.gpus", str(e.exception))
        with self.assertRaises(cairn.NotFound):
            jobs.get("never-submitted")
        self.assertEqual(jobs.computes()[0]["name"], "local")
        pool = "sdkpool-" + os.urandom(3).hex()
        self.assertEqual(jobs.create_compute(pool, max_concurrent=2)["max_concurrent"], 2)
        with self.assertRaises(cairn.Conflict):
            jobs.create_compute(pool)
        self.assertEqual(jobs.get_compute(pool)["name"], pool)
        on_pool = jobs.submit({"command": "echo pooled", "compute": pool})
        self.assertEqual(on_pool.wait(timeout=DEADLINE), "Completed")
        jobs.delete_compute(pool)
        with self.assertRaises(cairn.NotFound):
            jobs.get_compute(pool)
        jobs.close()


class CLI(JobsCase):
    def cairn(self, *args, stdin=None):
        return subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint,
                               *args], input=stdin, capture_output=True, text=True,
                              timeout=DEADLINE)

    def test_ctrl_c_without_a_terminal_leaves_the_job_running(self):
        p = subprocess.Popen([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint,
                              "job", "submit", "-", "--stream"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # no terminal to ask on
        p.stdin.write("command: echo started; sleep 60\n")
        p.stdin.close()
        first = p.stderr.readline()  # "job NAME: run RUN, Queued"
        name = first.split()[1].rstrip(":")
        self.assertEqual(p.stdout.readline(), "started\n")
        p.send_signal(signal.SIGINT)
        p.wait(timeout=DEADLINE)
        err = p.stderr.read()
        p.stdout.close()
        p.stderr.close()
        self.assertEqual(p.returncode, 1, err)
        self.assertIn(f"stopped following job {name}, which goes on", err)
        self.assertEqual(self.call("get_job", {"name": name})["job"]["status"], "Running")
        self.call("cancel_job", {"name": name})
        self.assertEqual(self.wait_done(name)["status"], "Canceled")

    def run_on_a_terminal(self, answer):
        """`job submit --stream` on a pseudo-terminal, Ctrl-C once its output
        shows, answering the question with answer: (name, exit code, all
        the terminal showed)."""
        import pty
        import select
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal
            os.execv(os.path.join(BIN, "cairn"), [
                "cairn", "--endpoint", self.k.endpoint, "job", "submit",
                os.path.join(self.k.tmp, "tty.yml"), "--stream"])
        seen = b""

        def read_until(text, what):
            nonlocal seen
            deadline = time.monotonic() + DEADLINE
            while text not in seen:
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, f"waiting for {what}: {seen!r}")
                if select.select([fd], [], [], left)[0]:
                    try:
                        seen += os.read(fd, 4096)
                    except OSError:  # the child has gone: no more output
                        break
        read_until(b"started", "the job's first line")
        os.write(fd, b"\x03")  # Ctrl-C, as the terminal sends it
        read_until(b"? [y/N]", "the question")
        os.write(fd, answer + b"\n")
        read_until(b"\n", "the answer")
        _, status = os.waitpid(pid, 0)
        try:
            while select.select([fd], [], [], 0.2)[0]:
                seen += os.read(fd, 4096)
        except OSError:
            pass
        os.close(fd)
        name = seen.split(b"job ", 1)[1].split(b":", 1)[0].decode()
        return name, os.waitstatus_to_exitcode(status), seen.decode(errors="replace")

    def test_ctrl_c_on_a_terminal_asks_whether_to_cancel(self):
        with open(os.path.join(self.k.tmp, "tty.yml"), "w") as f:
            f.write("command: echo started; sleep 60\n")
        name, code, seen = self.run_on_a_terminal(b"y")
        self.assertIn(f"cancel job {name}? [y/N]", seen)
        self.assertEqual(self.wait_done(name)["status"], "Canceled", seen)
        self.assertIn(f"job {name} ended Canceled", seen)  # followed to its end
        self.assertEqual(code, 1, seen)  # a job that did not complete
        name, code, seen = self.run_on_a_terminal(b"n")
        self.assertEqual(code, 1, seen)
        self.assertIn(f"stopped following job {name}, which goes on", seen)
        self.assertEqual(self.call("get_job", {"name": name})["job"]["status"], "Running")
        self.call("cancel_job", {"name": name})
        self.assertEqual(self.wait_done(name)["status"], "Canceled")

    def test_compute_create_list_show_delete(self):
        pool = "clipool-" + os.urandom(3).hex()
        out = self.cairn("compute", "create", pool, "3")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["max_concurrent"], 3)
        self.assertEqual(self.cairn("compute", "create", pool, "0").returncode, 2)
        self.assertIn(pool, self.cairn("compute", "list").stdout)
        self.assertEqual(json.loads(self.cairn("compute", "show", pool).stdout)["name"],
                         pool)
        self.assertEqual(self.cairn("compute", "delete", pool).returncode, 0)
        gone = self.cairn("compute", "show", pool)
        self.assertNotEqual(gone.returncode, 0)
        self.assertIn("no compute named", gone.stderr)

    def test_submit_stream_list_show_logs_cancel(self):
        path = os.path.join(self.k.tmp, "cli.yml")
        with open(path, "w") as f:
            f.write("command: echo one; echo two >&2\nexperiment_name: cli\n")
        r = self.cairn("job", "submit", path, "--stream")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "one\ntwo\n")
        self.assertIn("Completed", r.stderr)
        name = r.stderr.split()[1].rstrip(":")
        r = self.cairn("job", "submit", "-", "--stream", stdin="command: exit 4\n")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("status 4", r.stderr)
        r = self.cairn("job", "list", "--experiment", "cli")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(name, r.stdout)
        self.assertIn("Completed", r.stdout)
        r = self.cairn("--json", "job", "show", name)
        self.assertEqual(json.loads(r.stdout)["job"]["status"], "Completed")
        r = self.cairn("job", "logs", name)
        self.assertEqual(r.stdout, "one\ntwo\n")
        r = self.cairn("job", "submit", "-", stdin="command: sleep 60\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        long = r.stdout.split("\n")[1].split()[0]
        r = self.cairn("job", "cancel", long)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.cairn("job", "logs", long, "--follow")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.call("get_job", {"name": long})["job"]["status"], "Canceled")
        r = self.cairn("job", "submit", "-", stdin="command: true\nresources: {gpus: -1}\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("resources.gpus", r.stderr)
        r = self.cairn("compute", "list")
        self.assertIn("local", r.stdout)


class BadSpecs(JobsCase):
    def bad(self, spec, words):
        h = self.submit(spec, 400)
        for w in words:
            self.assertIn(w, h["err"], (spec, h))
        return h

    def test_each_field_is_named(self):
        self.bad({"command": "true", "resources": {"gpus": -1}},
                 ["resources.gpus: must be an integer >= 0"])
        self.bad({"command": "true", "resources": {"cpus": "many"}}, ["resources.cpus"])
        self.bad({"command": "true", "resources": {"memory": "lots"}}, ["resources.memory"])
        self.bad({"command": "true", "limits": {"timeout": -5}}, ["limits.timeout"])
        self.bad({"command": "true", "comand": "x"}, ["comand: not a field"])
        self.bad({"command": "true", "identity": {"type": "managed"}},
                 ["identity: not run by this Cairn yet"])
        self.bad({"command": "true", "retries": -1}, ["retries: must be an integer"])
        self.bad({"type": "train", "data": "x.csv"}, ["target: is required"])
        self.bad({"type": "batch", "command": "x"}, ["type: must be command or train"])
        self.bad({"name": "x"}, ["command: is required"])
        self.bad({"command": "true", "name": "../etc"}, ["name: must be"])
        self.bad({"command": "echo ${{inputs.nope}}"}, ["${{inputs.nope}} names no input"])
        self.bad({"command": "true", "environment_variables": {"CAIRN_RUN_ID": "x"}},
                 ["CAIRN_ variables"])
        self.bad({"command": "true", "environment_variables": {"A-B": "x"}},
                 ["environment_variables.A-B"])
        self.bad({"command": "true", "compute": "gpu-cluster"}, ["compute:"])
        self.bad({"command": "true", "inputs": {"d": {"type": "uri_file", "path": "x"}}},
                 ["inputs.d"])
        self.bad("command: [unclosed", ["line"])
        self.bad("- just\n- a list\n", ["spec"])
        h = self.call("submit_job", {}, 400)
        self.assertIn("spec is required", h["err"])
        h = self.call("get_job", {"name": "no-such-job"}, 404)
        self.assertIn("no-such-job", h["err"])
        h = self.call("list_jobs", {"status": "Sleeping"}, 400)
        self.assertIn("Queued", h["err"])
        h = self.call("stream_logs", {"name": "no-such-job"}, 404)


class WithAuth(unittest.TestCase):
    """kernel.auth on, as in the embedded default: each job gets a token of
    its own, the submitter's, held to the job's workspace, revoked at the
    end; a Python job logs with it and no code change."""

    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services="  auth:\n    plugin: auth\n    mode: inproc\n" + SERVICES,
                       auth="auth").start()
        with open(os.path.join(cls.k.state, "owner.token")) as f:
            cls.owner = f.read().strip()
        cls.c = cls.k.client()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.k.cleanup()

    def call(self, svc, verb, body, tok=None, st=200, **hdr):
        h, b = self.c.call(svc, verb, body, tok=tok or self.owner, **hdr)
        self.assertEqual(h["st"], st, (svc, verb, h))
        return b if st < 400 else h

    def test_a_job_logs_with_its_own_token(self):
        script = ("import cairn, os\n"
                  "cairn.log_metric('acc', 0.5)\n"
                  "cairn.flush()\n"
                  "open('token', 'w').write(os.environ['CAIRN_TOKEN'])\n")
        j = self.call("jobs", "submit_job", {"spec": {
            "command": f"/usr/bin/python3 -c \"{script}\"",
            "environment_variables": {"PYTHONPATH": os.path.join(SOURCE, "sdk", "python")}}},
            st=201)["job"]
        done = wait_for(lambda: (lambda x: x if x["status"] in DONE else None)(
            self.call("jobs", "get_job", {"name": j["name"]})["job"]), what="the job")
        log = self.call("jobs", "stream_logs", {"name": j["name"]})["data"]
        self.assertEqual(done["status"], "Completed", log)
        run = self.call("tracking", "get_run", {"run_id": j["run_id"]})["run"]
        # its own metric (a slow job also gets the supervisor's system/*)
        self.assertEqual([m["value"] for m in run["data"]["metrics"]
                          if not m["key"].startswith("system/")], [0.5])
        with open(os.path.join(self.k.state, "jobs", "default", j["name"], "work",
                               "token")) as f:
            tok = f.read()
        self.assertTrue(tok and tok != self.owner)
        # revoked once the job ended
        wait_for(lambda: self.c.call("tracking", "search_experiments", {},
                                     tok=tok)[0]["st"] == 401, what="the job's token revoked")

    def test_the_token_is_held_to_its_workspace(self):
        gate = os.path.join(self.k.tmp, "gate-" + os.urandom(3).hex())
        j = self.call("jobs", "submit_job", {"spec": {
            "command": f"while [ ! -e {gate} ]; do sleep 0.05; done",
            "environment_variables": {"X": "1"}}}, st=201)["job"]
        env = os.path.join(self.k.state, "jobs", "default", j["name"], "env")
        wait_for(lambda: os.path.exists(env), what="the job's files")
        with open(env, "rb") as f:
            vars_ = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if e)
        self.assertEqual(os.stat(env).st_mode & 0o777, 0o600)
        tok = vars_[b"CAIRN_TOKEN"].decode()
        self.call("tracking", "search_experiments", {}, tok=tok)
        self.call("auth", "create_workspace", {"name": "other"})
        h = self.call("tracking", "search_experiments", {}, tok=tok, st=403, ws="other")
        self.assertIn("may not", h["err"])
        h = self.call("auth", "create_token", {"name": "escape"}, tok=tok, st=403)
        self.assertIn("auth.write", h["err"])
        open(gate, "w").close()
        wait_for(lambda: self.call("jobs", "get_job", {"name": j["name"]})["job"]["status"]
                 == "Completed", what="the job")


class Survival(JobsCase):
    """The job outlives its plugin and cairnd: each is killed with SIGKILL
    while a job runs, comes back, and the job ends recorded, log whole."""

    def gated_job(self):
        gate = os.path.join(self.k.tmp, "gate-" + os.urandom(3).hex())
        j = self.submit({"command": "echo before; "
                                    f"while [ ! -e {gate} ]; do sleep 0.05; done; "
                                    "echo after"})["job"]
        wait_for(lambda: self.call("get_job", {"name": j["name"]})["job"]["status"] ==
                 "Running", what="the job running")
        return j, gate

    def test_kill_the_plugin_mid_job(self):
        j, gate = self.gated_job()
        pid = self.k.plugin("jobs")["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: (lambda p: p["state"] == "up" and p["pid"] != pid)(
            self.k.plugin("jobs")), what="the jobs plugin restarted")
        self.assertEqual(self.call("get_job", {"name": j["name"]})["job"]["status"],
                         "Running")
        open(gate, "w").close()
        done = self.wait_done(j["name"])
        self.assertEqual(done["status"], "Completed", done)
        log = self.logs(j["name"])
        self.assertIn("before", log)
        self.assertIn("after", log)

    def test_kill_cairnd_mid_job(self):
        j, gate = self.gated_job()
        _, pgid = self.shim_pgid(j["name"])
        self.c.close()
        self.k.proc.send_signal(signal.SIGKILL)
        self.k.proc.wait()
        self.assertTrue(pgid_alive(pgid), "the job died with cairnd")
        open(gate, "w").close()
        wait_for(lambda: not pgid_alive(pgid), what="the job to finish while cairnd is down")
        self.k.logf.close()
        self.k.start()
        type(self).c = self.k.client()
        done = self.wait_done(j["name"])
        self.assertEqual(done["status"], "Completed", done)
        self.assertIn("after", self.logs(j["name"]))
        run = self.run_of(done)
        self.assertEqual(run["info"]["status"], "FINISHED")


if __name__ == "__main__":
    unittest.main()
