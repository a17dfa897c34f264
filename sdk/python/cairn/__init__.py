"""Cairn's Python SDK: a CAIRN/1 client over ZeroMQ (pyzmq and msgpack only).

    import cairn
    c = cairn.Client()                  # $CAIRN_ENDPOINT or tcp://127.0.0.1:7780
    c.call("sys", "ping")               # {'pong': True, 'version': ...}
    c.call("echo", "echo", {"x": 1})    # {'x': 1}

The services beyond tracking have a class each: ``cairn.Auth`` (users,
tokens, roles), ``cairn.Secrets`` (the key vault), ``cairn.Audit`` (the
audit trail), ``cairn.Registry`` (versioned models, aliases and their
history), ``cairn.Jobs`` (command jobs: ``cairn.submit_job("job.yml")``),
``cairn.Endpoints`` and ``cairn.Endpoint`` (online endpoints:
``cairn.Endpoint("churn").score(rows)``).

Failures raise CairnError subclasses with .status, .code and .message. A
Client is for one thread.
"""
from .audit import Audit
from .auth import Auth
from .client import (DEFAULT_ENDPOINT, Client, Reply, find_token, set_workspace,
                     token_path)
from .endpoints import Endpoint, Endpoints, ScoreError
from .errors import (BadRequest, CairnError, Conflict, DeadlineExceeded, Forbidden, NotFound,
                     Overloaded, TooLarge, Unauthenticated, Unavailable, error_for)
from .jobs import Job, Jobs, get_job, list_jobs, submit_job
from .registry import (Registry, create_data_asset, download_model, get_model, lineage,
                       log_input, register_model, resolve)
from .secrets import Secrets
from .tracking import (ActiveRun, Tracker, active_run, download_artifact, end_run, flush,
                       get_run, get_tracker, log_artifact, log_artifacts, log_metric,
                       log_metrics, log_metrics_batch, log_param, log_params, set_async,
                       set_tag, set_tags, set_tracking, start_run)

__all__ = [
    "Client", "Reply", "DEFAULT_ENDPOINT", "error_for", "find_token", "set_workspace",
    "token_path",
    "CairnError", "BadRequest", "Unauthenticated", "Forbidden", "NotFound", "Conflict",
    "TooLarge", "Overloaded", "Unavailable", "DeadlineExceeded",
    "Tracker", "ActiveRun", "set_tracking", "set_async", "get_tracker", "start_run", "end_run",
    "active_run", "get_run", "flush", "log_param", "log_params", "log_metric", "log_metrics",
    "log_metrics_batch", "set_tag", "set_tags", "log_artifact", "log_artifacts",
    "download_artifact", "Auth", "Secrets", "Audit", "Registry", "register_model",
    "get_model", "download_model", "create_data_asset", "log_input", "lineage", "resolve",
    "Jobs", "Job", "submit_job", "get_job", "list_jobs",
    "Endpoints", "Endpoint", "ScoreError",
]
