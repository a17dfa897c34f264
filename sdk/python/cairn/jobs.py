"""Jobs: Cairn's ``jobs`` service (docs/JOBS.md).

    import cairn
    job = cairn.submit_job("job.yml")            # a path, YAML text, or a dict
    print(job.name, job.run_id, job.status)
    for text in job.stream():                    # the log as it comes, until the end
        print(text, end="")
    job.wait()                                   # the final status: 'Completed', ...
    job.cancel()

``Jobs`` holds the verbs over one Client (endpoint, token and workspace as
for Client); the module functions use a default one. A refusal raises the
matching CairnError subclass: BadRequest names the spec's field
("resources.gpus: must be an integer >= 0"), Conflict a name already used
in the workspace, NotFound an unknown job.
"""
import os
import threading
import time

from .service import Service

SVC = "jobs"
DONE = ("Completed", "Failed", "Canceled", "TimedOut")


class Job:
    """One job: its last known state (``info``, a dict) and the calls that
    follow it. ``refresh()`` asks again; the properties read ``info``."""

    def __init__(self, jobs, info):
        self._jobs = jobs
        self.info = info

    name = property(lambda self: self.info["name"])
    status = property(lambda self: self.info["status"])
    run_id = property(lambda self: self.info["run_id"])
    done = property(lambda self: self.info["status"] in DONE)

    def __repr__(self):
        return f"Job(name={self.name!r}, status={self.status!r}, run_id={self.run_id!r})"

    def refresh(self):
        self.info = self._jobs.get(self.name).info
        return self

    def wait(self, timeout=None, poll=0.25):
        """Block until the job ends; its final status. TimeoutError after
        timeout seconds (None: no limit)."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().done:
            if end is not None and time.monotonic() >= end:
                raise TimeoutError(f"job {self.name} is still {self.status}")
            time.sleep(poll)
        return self.status

    def stream(self, offset=0, poll=0.25):
        """Yield the log's text as it is written, until the job has ended
        and every byte was read."""
        while True:
            r = self._jobs.client.call(SVC, "stream_logs", {"name": self.name,
                                                            "offset": offset})
            if r["data"]:
                yield r["data"]
            offset = r["offset"]
            if r["done"]:
                self.refresh()
                return
            if not r["data"]:
                time.sleep(poll)

    def logs(self):
        """The whole log so far, as text."""
        return "".join(self._logs_once())

    def _logs_once(self):
        offset = 0
        while True:
            r = self._jobs.client.call(SVC, "stream_logs", {"name": self.name,
                                                            "offset": offset})
            yield r["data"]
            if not r["data"] or r["offset"] == offset:
                return
            offset = r["offset"]

    def cancel(self):
        """Ask for it to stop (a queued job is Canceled at once)."""
        self.info = self._jobs.client.call(SVC, "cancel_job", {"name": self.name})["job"]
        return self


def _spec(spec):
    """A dict as it is; a path to a file is read; other text is YAML."""
    if isinstance(spec, dict):
        return spec
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and "\n" not in spec
                                         and os.path.isfile(spec)):
        with open(spec, encoding="utf-8") as f:
            return f.read()
    if isinstance(spec, str):
        return spec
    raise TypeError("a job spec is a dict, YAML text or the path of a YAML file")


def _base_dir(spec):
    """Where the spec's relative paths (inputs, code) are read from: the
    folder of its file, else the working directory."""
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and "\n" not in spec
                                         and os.path.isfile(spec)):
        return os.path.dirname(os.path.realpath(spec))
    return os.getcwd()


class Jobs(Service):
    """The jobs verbs over one Client."""

    SVC = SVC

    def submit(self, spec):
        """Submit a command job (a dict, YAML text, or a path): a Job."""
        return Job(self, self._call("submit_job", spec=_spec(spec),
                                    base_dir=_base_dir(spec))["job"])

    def get(self, name):
        return Job(self, self._call("get_job", name=name)["job"])

    def list(self, status=None, experiment=None, since=None, page_size=None):
        """Jobs newest first, following the pages: [Job]."""
        out, token = [], None
        while True:
            b = self._call("list_jobs", status=status, experiment=experiment, since=since,
                           max_results=page_size, page_token=token)
            out += [Job(self, j) for j in b["jobs"]]
            token = b.get("next_page_token")
            if not token:
                return out

    def cancel(self, name):
        return Job(self, self._call("cancel_job", name=name)["job"])

    def computes(self):
        return self._call("list_computes")["computes"]

    def create_compute(self, name, max_concurrent=1, description=None):
        """A pool of the machine with its own limit of jobs at once: the
        compute {name, type, max_concurrent, running, queued, ...}."""
        return self._call("create_compute", name=name, max_concurrent=max_concurrent,
                          description=description)["compute"]

    def get_compute(self, name):
        return self._call("get_compute", name=name)["compute"]

    def delete_compute(self, name):
        """Remove a pool (Conflict while jobs are queued or running on it)."""
        self._call("delete_compute", name=name)


_default = None
_default_lock = threading.Lock()


def _jobs():
    global _default
    with _default_lock:
        if _default is None:
            _default = Jobs()
        return _default


def submit_job(spec):
    """Jobs.submit over the default Jobs."""
    return _jobs().submit(spec)


def get_job(name):
    return _jobs().get(name)


def list_jobs(status=None, experiment=None, since=None):
    return _jobs().list(status=status, experiment=experiment, since=since)
