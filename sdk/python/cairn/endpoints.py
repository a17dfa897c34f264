"""Online endpoints: Cairn's ``endpoints`` service (docs/ENDPOINTS.md).

    import cairn
    eps = cairn.Endpoints()
    eps.create_endpoint("churn")
    eps.create_deployment("churn", "blue", "model:churn@champion")
    ep = cairn.Endpoint("churn")                 # its URI and key from the service
    ep.score([[12, 70.5], [3, 20.25]])           # rows of values, in order
    ep.score([{"tenure": 12, "monthly": 70.5}])  # or records, by column name
    eps.update_traffic("churn", {"blue": 90, "green": 10})

    # the python flavor: any model, scored by your score.py (init(), run())
    eps.create_deployment("churn", "py", "model:churn:3", code="./src",
                          scoring_script="score.py", instance_count=2)
    cairn.Endpoint("churn").invoke({"data": [[12, 70.5]]}, deployment="py")

``Endpoints`` holds the verbs over one Client (endpoint, token and
workspace as for Client). ``Endpoint(name).score`` posts over HTTP with
the endpoint's key (a token endpoint: with the client's own token), as
any client would; ``invoke`` posts any JSON body as it is (a scoring
script's own shape); ``last_deployment`` says which deployment answered. A refusal of a verb raises the matching CairnError
subclass; a refused score raises ScoreError with the HTTP status and the
server's sentence.
"""
import json
import os
import urllib.error
import urllib.request

from .client import find_token
from .service import Service

SVC = "endpoints"


class ScoreError(Exception):
    """A scoring request refused: ``status`` (400, 401, 404, 413, 503, ...)
    and the server's sentence."""

    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class Endpoints(Service):
    """The endpoints verbs over one Client."""

    SVC = SVC

    def create_endpoint(self, name, auth_mode=None):
        return self._call("create_endpoint", name=name, auth_mode=auth_mode)["endpoint"]

    def get_endpoint(self, name):
        return self._call("get_endpoint", name=name)["endpoint"]

    def list_endpoints(self):
        return self._call("list_endpoints")["endpoints"]

    def delete_endpoint(self, name):
        self._call("delete_endpoint", name=name)

    def create_deployment(self, endpoint, name, model, instance_count=None,
                          follow_alias=None, code=None, scoring_script=None,
                          request_timeout_ms=None, max_concurrent_requests_per_instance=None):
        """model: model:NAME:VERSION or model:NAME@ALIAS. With code (a
        folder, snapshotted now) and scoring_script (a .py file in it) the
        deployment runs that script (init(), run(raw_data)) in
        instance_count worker processes."""
        return self._call("create_deployment", endpoint=endpoint, name=name, model=model,
                          instance_count=instance_count, follow_alias=follow_alias,
                          **_flavor(code, scoring_script, request_timeout_ms,
                                    max_concurrent_requests_per_instance))["deployment"]

    def update_deployment(self, endpoint, name, model=None, instance_count=None,
                          follow_alias=None, code=None, scoring_script=None,
                          request_timeout_ms=None, max_concurrent_requests_per_instance=None):
        """A new model, code or settings, swapped in once ready (no request
        fails)."""
        return self._call("update_deployment", endpoint=endpoint, name=name, model=model,
                          instance_count=instance_count, follow_alias=follow_alias,
                          **_flavor(code, scoring_script, request_timeout_ms,
                                    max_concurrent_requests_per_instance))["deployment"]

    def get_deployment_logs(self, endpoint, name, lines=100):
        """The last lines of a python deployment's workers' output."""
        return self._call("get_deployment_logs", endpoint=endpoint, name=name,
                          lines=lines)["logs"]

    def update_mirror(self, endpoint, mirror):
        """mirror: {deployment: percent} of live requests copied to it."""
        return self._call("update_mirror", endpoint=endpoint, mirror=mirror)["endpoint"]

    def get_endpoint_metrics(self, endpoint):
        return self._call("get_endpoint_metrics", endpoint=endpoint)["deployments"]

    def list_deployments(self, endpoint):
        return self._call("list_deployments", endpoint=endpoint)["deployments"]

    def get_deployment(self, endpoint, name):
        return self._call("get_deployment", endpoint=endpoint, name=name)["deployment"]

    def delete_deployment(self, endpoint, name):
        self._call("delete_deployment", endpoint=endpoint, name=name)

    def update_traffic(self, endpoint, traffic):
        """traffic: {deployment: percent}, summing to 100 (or all 0)."""
        return self._call("update_traffic", endpoint=endpoint, traffic=traffic)["endpoint"]

    def get_keys(self, endpoint):
        """(primary_key, secondary_key)."""
        k = self._call("get_keys", endpoint=endpoint)
        return k["primary_key"], k["secondary_key"]

    def regenerate_keys(self, endpoint, key_type="primary"):
        k = self._call("regenerate_keys", endpoint=endpoint, key_type=key_type)
        return k["primary_key"], k["secondary_key"]

    # ---- batch endpoints (docs/ENDPOINTS.md, "Batch endpoints") ----

    def create_batch_endpoint(self, name, model, mini_batch_size=None,
                              max_concurrency=None, error_threshold=None,
                              max_retries=None):
        """A batch endpoint for model (model:NAME:VERSION or
        model:NAME@ALIAS, pinned now) with its jobs' defaults: rows a
        mini-batch (10,000), mini-batches at once (4), failed mini-batches
        tolerated (-1: any), tries again of a failed one (3)."""
        return self._call("create_batch_endpoint", name=name, model=model,
                          mini_batch_size=mini_batch_size,
                          max_concurrency=max_concurrency,
                          error_threshold=error_threshold,
                          max_retries=max_retries)["batch_endpoint"]

    def get_batch_endpoint(self, name):
        return self._call("get_batch_endpoint", name=name)["batch_endpoint"]

    def list_batch_endpoints(self):
        return self._call("list_batch_endpoints")["batch_endpoints"]

    def update_batch_endpoint(self, name, model=None, mini_batch_size=None,
                              max_concurrency=None, error_threshold=None,
                              max_retries=None):
        """A new model (resolved and pinned now) or new defaults; jobs
        already submitted keep theirs."""
        return self._call("update_batch_endpoint", name=name, model=model,
                          mini_batch_size=mini_batch_size,
                          max_concurrency=max_concurrency,
                          error_threshold=error_threshold,
                          max_retries=max_retries)["batch_endpoint"]

    def delete_batch_endpoint(self, name):
        self._call("delete_batch_endpoint", name=name)

    def invoke_batch(self, endpoint, input, mini_batch_size=None, max_concurrency=None,
                     error_threshold=None, max_retries=None, experiment_name=None):
        """Score input (data:NAME:VERSION, data:NAME@ALIAS, or a CSV file or
        folder of them; a relative path is this process's working
        directory's) in a job; returns the job {name, status, run_id}: wait
        for it with cairn.Jobs, the predictions are its run's
        outputs/predictions/predictions.csv."""
        base_dir = None if str(input).startswith("data:") else os.getcwd()
        return self._call("invoke_batch", endpoint=endpoint, input=str(input),
                          mini_batch_size=mini_batch_size,
                          max_concurrency=max_concurrency,
                          error_threshold=error_threshold, max_retries=max_retries,
                          experiment_name=experiment_name, base_dir=base_dir)["job"]


def _flavor(code, scoring_script, request_timeout_ms, per_instance):
    """The body's code_configuration and request_settings, when given."""
    body = {}
    if code is not None or scoring_script is not None:
        body["code_configuration"] = {"code": os.path.abspath(code) if code else code,
                                      "scoring_script": scoring_script}
    settings = {k: v for k, v in (("request_timeout_ms", request_timeout_ms),
                                  ("max_concurrent_requests_per_instance", per_instance))
                if v is not None}
    if settings:
        body["request_settings"] = settings
    return body


class Endpoint:
    """One endpoint, scored over HTTP. uri and key default to what the
    service says (get_endpoint, get_keys) through endpoints, an Endpoints
    (default: one made with the other arguments, as for Client)."""

    def __init__(self, name, uri=None, key=None, endpoints=None, timeout=30, **client):
        self.name = name
        self.timeout = timeout
        self.last_deployment = None
        if uri is None or key is None:
            eps = endpoints or Endpoints(**client)
            try:
                ep = eps.get_endpoint(name)
                uri = uri or ep["scoring_uri"]
                if key is None and ep.get("auth_mode") == "token":
                    key = client.get("token") or find_token()
                key = key or eps.get_keys(name)[0]
            finally:
                if endpoints is None:
                    eps.close()
        self.uri, self.key = uri, key

    def score(self, rows, columns=None, deployment=None):
        """Predictions for rows: a list of rows of values (columns: their
        names, else the model's order), a list of records {column: value},
        or a pandas DataFrame. deployment: call that one directly."""
        if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a DataFrame
            body = {"dataframe_split": {"columns": [str(c) for c in rows.columns],
                                        "data": rows.astype(object).where(
                                            rows.notna(), None).values.tolist()}}
        elif rows and isinstance(rows[0], dict):
            body = {"dataframe_records": list(rows)}
        elif columns is not None:
            body = {"dataframe_split": {"columns": list(columns), "data": list(rows)}}
        else:
            body = {"instances": [list(r) for r in rows]}
        return self.invoke(body, deployment)["predictions"]

    def invoke(self, body, deployment=None):
        """The endpoint's JSON answer to body (any JSON value, posted as it
        is: a scoring script's own shape)."""
        req = urllib.request.Request(self.uri, data=json.dumps(body).encode(),
                                     method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("Authorization", f"Bearer {self.key}")
        if deployment:
            req.add_header("cairn-deployment", deployment)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                self.last_deployment = r.headers.get("cairn-deployment")
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read()).get("error", "")
            except ValueError:
                message = e.reason
            raise ScoreError(e.code, message) from None
