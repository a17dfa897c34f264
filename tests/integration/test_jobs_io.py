"""A job's inputs and outputs (issue 16): file and folder inputs given as
local paths (absolute, or relative to the YAML file's folder that the CLI
and SDKs send as base_dir) and as data assets (data:NAME:VERSION and
data:NAME@ALIAS resolved by the registry at submit, linked in the run's
lineage); outputs written by the command to ${{outputs.y}}, uploaded to
the run's artifacts when the job ends, registered as a model or a data
asset when asked; the job's environment (env:NAME:VERSION: its variables
and its python first on PATH) and secrets (from the vault, set up inside
the job with its own token by cairn-job-env); bad inputs refused with the
field's path. A real
cairnd with tracking, artifacts, the registry and the jobs plugin (a
process), the Python SDK."""
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from cairn_harness import BIN, DEADLINE, SOURCE, Kernel, wait_for  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE, "sdk", "python"))
from cairn.registry import Registry  # noqa: E402

SERVICES = """\
  tracking:
    plugin: storage
    mode: inproc
  artifacts:
    plugin: storage
    mode: inproc
  registry:
    plugin: registry
    mode: inproc
  secrets:
    plugin: secrets
    mode: inproc
  jobs:
    plugin: compute
    mode: process
    settings:
      max_concurrent: 2
      grace_ms: 300
"""

DONE = ("Completed", "Failed", "Canceled", "TimedOut")


class JobsIO(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = Kernel(services=SERVICES).start()
        cls.c = cls.k.client()
        cls.reg = Registry(cls.k.endpoint)
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.reg.close()
        cls.c.close()
        cls.k.cleanup()
        cls.tmp.cleanup()

    def call(self, verb, body, st=200, svc="jobs"):
        h, b = self.c.call(svc, verb, body)
        self.assertEqual(h["st"], st, (verb, body, h))
        return b if st < 400 else h

    def wait_done(self, name):
        return wait_for(lambda: (lambda j: j if j["status"] in DONE else None)(
            self.call("get_job", {"name": name})["job"]), DEADLINE, f"job {name} to end")

    def log(self, name):
        return self.call("stream_logs", {"name": name, "offset": 0,
                                         "max_bytes": 1 << 20})["data"]

    def artifacts(self, run_id, path):
        return self.call("list_artifacts", {"run_id": run_id, "path": path},
                         svc="artifacts")

    def read_artifact(self, run_id, path):
        return self.call("get_artifact", {"run_id": run_id, "path": path},
                         svc="artifacts")["data"]

    def folder(self, files):
        d = tempfile.mkdtemp(dir=self.tmp.name)
        for rel, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
            with open(os.path.join(d, rel), "wb") as f:
                f.write(data)
        return d

    def test_local_inputs_and_outputs_kept_with_the_run(self):
        src = self.folder({"train.csv": b"a,b\n1,2\n", "sub/extra.txt": b"x"})
        name = "io-" + os.urandom(3).hex()
        spec = {
            "type": "command", "name": name,
            "inputs": {"data": {"type": "uri_folder", "path": src},
                       "one": {"type": "uri_file", "path": os.path.join(src, "train.csv")},
                       "epochs": 2},
            "outputs": {"model": {"type": "uri_folder"}, "empty": None},
            "command": ("cat ${{inputs.one}}; ls ${{inputs.data}}/sub; "
                        "mkdir -p ${{outputs.model}}/deep && "
                        "echo weights-${{inputs.epochs}} > ${{outputs.model}}/w.txt && "
                        "echo nested > ${{outputs.model}}/deep/n.txt"),
        }
        j = self.call("submit_job", {"spec": spec}, 201)["job"]
        done = self.wait_done(name)
        log = self.log(name)
        self.assertEqual(done["status"], "Completed", (done, log))
        self.assertIn("a,b\n1,2", log)
        self.assertIn("extra.txt", log)
        self.assertEqual(self.read_artifact(j["run_id"], "outputs/model/w.txt"),
                         b"weights-2\n")
        self.assertEqual(self.read_artifact(j["run_id"], "outputs/model/deep/n.txt"),
                         b"nested\n")

    def test_relative_paths_read_from_base_dir_and_through_the_cli(self):
        src = self.folder({"in.txt": b"hello relative\n"})
        name = "rel-" + os.urandom(3).hex()
        yml = os.path.join(src, "job.yml")
        with open(yml, "w") as f:
            f.write(textwrap.dedent(f"""\
                type: command
                name: {name}
                inputs:
                  text: {{type: uri_file, path: in.txt}}
                command: cat ${{{{inputs.text}}}}
                """))
        out = subprocess.run([os.path.join(BIN, "cairn"), "--endpoint", self.k.endpoint,
                              "job", "submit", yml], capture_output=True, text=True,
                             timeout=DEADLINE, cwd="/")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.wait_done(name)["status"], "Completed")
        self.assertIn("hello relative", self.log(name))
        # without base_dir a relative path is refused, naming the field
        h = self.call("submit_job", {"spec": {
            "type": "command", "command": "true",
            "inputs": {"text": {"type": "uri_file", "path": "in.txt"}}}}, 400)
        self.assertTrue(h["err"].startswith("inputs.text.path:"), h)

    def test_data_asset_inputs_resolved_and_in_the_lineage(self):
        # a data asset from a run's files
        prep = self.call("create_run", {"experiment_id": "0"}, svc="tracking")[
            "run"]["info"]["run_id"]
        for path, data in (("d/a.csv", b"x,y\n1,2\n"), ("d/b.csv", b"x,y\n3,4\n")):
            self.call("put_artifact", {"run_id": prep, "path": path, "data": data,
                                       "offset": 0, "done": True}, svc="artifacts")
        asset = "ds-" + os.urandom(3).hex()
        self.reg.create_data_asset(asset, f"runs:/{prep}/d", type="uri_folder")
        name = "data-" + os.urandom(3).hex()
        j = self.call("submit_job", {"spec": {
            "type": "command", "name": name,
            "inputs": {"d": {"type": "uri_folder", "path": f"data:{asset}:1"}},
            "command": "cat ${{inputs.d}}/a.csv ${{inputs.d}}/b.csv"}}, 201)["job"]
        done = self.wait_done(name)
        log = self.log(name)
        self.assertEqual(done["status"], "Completed", log)
        self.assertIn("1,2", log)
        self.assertIn("3,4", log)
        graph = self.call("lineage", {"node": f"run:{j['run_id']}", "direction": "up"},
                          svc="registry")
        self.assertIn(f"data:{asset}:1", [n["id"] for n in graph["nodes"]])
        # refused by path: a missing asset, a model where data is wanted
        h = self.call("submit_job", {"spec": {
            "type": "command", "command": "true",
            "inputs": {"d": {"path": f"data:{asset}:9"}}}}, 404)
        self.assertTrue(h["err"].startswith("inputs.d.path:"), h)

    def test_outputs_registered_as_model_and_data(self):
        mname, dname = ("m-" + os.urandom(3).hex(), "d-" + os.urandom(3).hex())
        name = "reg-" + os.urandom(3).hex()
        j = self.call("submit_job", {"spec": {
            "type": "command", "name": name,
            "outputs": {"model": {"register_as": f"model:{mname}"},
                        "table": {"type": "uri_folder", "register_as": f"data:{dname}"}},
            "command": ("echo '{}' > ${{outputs.model}}/model.json; "
                        "printf 'a,b\\n1,2\\n' > ${{outputs.table}}/t.csv")}}, 201)["job"]
        done = self.wait_done(name)
        self.assertEqual(done["status"], "Completed", (done, self.log(name)))
        mv = self.call("get_model_version", {"name": mname, "version": 1},
                       svc="registry")["model_version"]
        self.assertEqual(mv["run_id"], j["run_id"])
        self.assertEqual(mv["source"], f"runs:/{j['run_id']}/outputs/model")
        da = self.call("get_data_asset", {"name": dname, "version": 1},
                       svc="registry")["data_asset"]
        self.assertEqual(da["type"], "uri_folder")
        # a failed job keeps its outputs but registers nothing
        bad = "regfail-" + os.urandom(3).hex()
        m2 = "m2-" + os.urandom(3).hex()
        j2 = self.call("submit_job", {"spec": {
            "type": "command", "name": bad,
            "outputs": {"model": {"register_as": f"model:{m2}"}},
            "command": "echo half > ${{outputs.model}}/w.txt; exit 3"}}, 201)["job"]
        self.assertEqual(self.wait_done(bad)["status"], "Failed")
        self.assertEqual(self.read_artifact(j2["run_id"], "outputs/model/w.txt"), b"half\n")
        self.call("get_registered_model", {"name": m2}, 404, svc="registry")

    def test_an_output_that_cannot_be_registered_fails_the_job(self):
        name = "regbad-" + os.urandom(3).hex()
        self.call("submit_job", {"spec": {
            "type": "command", "name": name,
            "outputs": {"model": {"register_as": "model:empty-" + os.urandom(3).hex()}},
            "command": "true"}}, 201)  # an empty folder: nothing to register
        done = self.wait_done(name)
        self.assertEqual(done["status"], "Failed", done)
        self.assertIn("outputs.model", done["reason"])

    def test_environment_and_secrets(self):
        venv = self.folder({"bin/python": b"#!/bin/sh\necho fake-venv-python \"$@\"\n"})
        os.chmod(os.path.join(venv, "bin", "python"), 0o755)
        env = "py-" + os.urandom(3).hex()
        self.reg.create_environment(env, python=venv,
                                    env_vars={"FROM_ENV": "e1", "BOTH": "from-env"})
        self.reg.create_environment(env, python=venv, env_vars={"FROM_ENV": "e2"})
        self.call("set_secret", {"name": "db/password", "value": "s3cr'et \"x\""}, 201,
                  svc="secrets")
        self.call("set_secret", {"name": "API_KEY", "value": "k-123"}, 201, svc="secrets")
        name = "env-" + os.urandom(3).hex()
        j = self.call("submit_job", {"spec": {
            "type": "command", "name": name,
            "environment": f"env:{env}:1",
            "environment_variables": {"BOTH": "from-spec"},
            "secrets": {"DB_PASSWORD": "db/password", "API_KEY": "API_KEY"},
            "command": ("echo \"env=$FROM_ENV both=$BOTH venv=$VIRTUAL_ENV "
                        "pw=[$DB_PASSWORD] key=$API_KEY\"; python \"it's\""),
        }}, 201)["job"]
        done = self.wait_done(name)
        log = self.log(name)
        self.assertEqual(done["status"], "Completed", log)
        self.assertIn(f"env=e1 both=from-spec venv={venv} pw=[s3cr'et \"x\"] key=k-123",
                      log)
        self.assertIn("fake-venv-python it's", log)  # its python first on PATH
        self.assertIn(f"environment env:{env}:1", log)
        # the secret's value is nowhere on disk in the job's directory
        jobdir = os.path.join(self.k.state, "jobs", "default", name)
        for root, _, files in os.walk(jobdir):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    data = fh.read()
                if f != "output.log":
                    self.assertNotIn(b"k-123", data, f)
        # the environment is pinned at submit and in the run's lineage
        graph = self.call("lineage", {"node": f"run:{j['run_id']}", "direction": "up"},
                          svc="registry")
        self.assertIn(f"env:{env}:1", [n["id"] for n in graph["nodes"]])
        # a secret the vault lacks fails the job at start, saying which
        name2 = "nosecret-" + os.urandom(3).hex()
        self.call("submit_job", {"spec": {"type": "command", "name": name2,
                                          "secrets": ["MISSING_ONE"],
                                          "command": "echo never"}}, 201)
        done = self.wait_done(name2)
        log = self.log(name2)
        self.assertEqual(done["status"], "Failed", log)
        self.assertIn("secrets.MISSING_ONE", log)
        self.assertNotIn("never", log)
        # refused at submit: an unknown environment, bad secrets
        h = self.call("submit_job", {"spec": {"type": "command", "command": "true",
                                              "environment": f"env:{env}:7"}}, 404)
        self.assertTrue(h["err"].startswith("environment:"), h)
        for bad, path in (({"secrets": ["db/password"]}, "secrets.db/password:"),
                          ({"secrets": {"CAIRN_TOKEN": "x"}}, "secrets.CAIRN_TOKEN:"),
                          ({"secrets": "x"}, "secrets:"),
                          ({"environment": "python3"}, "environment:"),
                          ({"environment": {"python": "/usr/bin/python3"}}, "environment:")):
            h = self.call("submit_job", {"spec": {"type": "command", "command": "true",
                                                  **bad}}, 400)
            self.assertTrue(h["err"].startswith(path), (bad, h))

    def git(self, repo, *args):
        subprocess.run(["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@e",
                        *args], check=True, capture_output=True, timeout=DEADLINE)

    def run_tags(self, run_id):
        run = self.call("get_run", {"run_id": run_id}, svc="tracking")["run"]
        return {t["key"]: t["value"] for t in run["data"]["tags"]}

    def test_code_snapshot(self):
        repo = self.folder({"src/main.py": b"print('v1')\n", "src/data/big.bin": b"x" * 100,
                            "src/run.log": b"log", "src/secret.txt": b"s",
                            "src/.gitignore": b"data/\n*.log\n",
                            "src/.cairnignore": b"secret.txt\n"})
        src = os.path.join(repo, "src")
        self.git(repo, "init", "-q")
        self.git(repo, "add", "-A")
        self.git(repo, "commit", "-q", "-m", "first")
        head = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        gate = os.path.join(self.tmp.name, "code-gate-" + os.urandom(3).hex())
        name = "code-" + os.urandom(3).hex()
        j = self.call("submit_job", {"spec": {
            "type": "command", "name": name, "code": "src",
            "command": (f"while [ ! -e {gate} ]; do sleep 0.05; done; "
                        "ls -A; /usr/bin/python3 main.py")}, "base_dir": repo}, 201)["job"]
        # edited after the submit: the job still runs what was submitted
        with open(os.path.join(src, "main.py"), "w") as f:
            f.write("print('v2')\n")
        open(gate, "w").close()
        done = self.wait_done(name)
        log = self.log(name)
        self.assertEqual(done["status"], "Completed", log)
        self.assertIn("v1", log)
        self.assertNotIn("v2", log)
        for gone in ("data", "run.log", "secret.txt"):
            self.assertNotIn(gone, log.split())
        tags = self.run_tags(j["run_id"])
        self.assertRegex(tags["cairn.code.hash"], r"^sha256:[0-9a-f]{64}$")
        self.assertEqual(tags["mlflow.source.git.commit"], head)
        self.assertEqual(tags["cairn.git.dirty"], "false")
        listed = wait_for(lambda: (lambda a: a if any(
            f["path"].endswith("main.py") for f in a) else None)(
            self.artifacts(j["run_id"], "code").get("files", [])), DEADLINE,
            "the code to reach the run")
        self.assertNotIn("code/data", [f["path"] for f in listed])
        self.assertEqual(wait_for(lambda: self.read_artifact(j["run_id"], "code/main.py")),
                         b"print('v1')\n")
        manifest = wait_for(lambda: self.read_artifact(j["run_id"], "code.manifest"))
        self.assertTrue(manifest.startswith(b"cairn-snapshot 1\n"), manifest)
        # now dirty (main.py changed): another hash, dirty true; the same
        # code again: the same hash
        def submit_and_tags():
            n = "code-" + os.urandom(3).hex()
            jj = self.call("submit_job", {"spec": {"type": "command", "name": n,
                                                   "code": src, "command": "true"}},
                           201)["job"]
            self.wait_done(n)
            return wait_for(lambda: (lambda t: t if "cairn.code.hash" in t else None)(
                self.run_tags(jj["run_id"])), DEADLINE, "tags")
        t2, t3 = submit_and_tags(), submit_and_tags()
        self.assertNotEqual(t2["cairn.code.hash"], tags["cairn.code.hash"])
        self.assertEqual(t2["cairn.code.hash"], t3["cairn.code.hash"])
        self.assertEqual(t2["cairn.git.dirty"], "true")
        # refused: not a folder, missing, relative without base_dir
        for code, st in ((os.path.join(src, "main.py"), 400), ("/nonexistent-x", 400),
                         ("/proc/self", 400), ("/sys/kernel", 400)):
            h = self.call("submit_job", {"spec": {"type": "command", "command": "true",
                                                  "code": code}}, st)
            self.assertTrue(h["err"].startswith("code:"), h)
        h = self.call("submit_job", {"spec": {"type": "command", "command": "true",
                                              "code": "src"}}, 400)
        self.assertIn("relative", h["err"])

    def test_bad_inputs_and_outputs_name_the_field(self):
        missing = os.path.join(self.tmp.name, "nope")
        f = self.folder({"f.txt": b"x"})
        cases = [
            ({"inputs": {"x": {"path": missing}}}, "inputs.x.path:"),
            ({"inputs": {"x": {"type": "uri_folder", "path": os.path.join(f, "f.txt")}}},
             "inputs.x.path:"),
            ({"inputs": {"x": {"type": "uri_file", "path": f}}}, "inputs.x.path:"),
            ({"inputs": {"x": {"type": "mltable", "path": f}}}, "inputs.x.type:"),
            ({"inputs": {"x": {"type": "uri_file"}}}, "inputs.x.path:"),
            ({"inputs": {"x": {"path": f, "mode": "rw"}}}, "inputs.x.mode:"),
            ({"outputs": {"y": {"type": "uri_file"}}}, "outputs.y.type:"),
            ({"outputs": {"y": {"register_as": "thing:z"}}}, "outputs.y.register_as:"),
            ({"outputs": {"y": {"register_as": "model:bad name"}}},
             "outputs.y.register_as:"),
            ({"outputs": {"y": 3}}, "outputs.y:"),
            ({"outputs": {"bad/name": None}}, "outputs:"),
        ]
        for extra, path in cases:
            spec = {"type": "command", "command": "true", **extra}
            h = self.call("submit_job", {"spec": spec}, 400)
            self.assertTrue(h["err"].startswith(path), (extra, h))
        h = self.call("submit_job", {"spec": {"type": "command",
                                              "command": "echo ${{outputs.nope}}"}}, 400)
        self.assertIn("names no input or output", h["err"])
        h = self.call("submit_job", {"spec": {"type": "command", "command": "true"},
                                     "base_dir": "relative/dir"}, 400)
        self.assertIn("base_dir", h["err"])


if __name__ == "__main__":
    unittest.main()
