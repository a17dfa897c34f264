"""The model registry: Cairn's ``registry`` service.

    from cairn.registry import Registry
    reg = Registry()                                   # $CAIRN_ENDPOINT, $CAIRN_TOKEN
    reg.create_model("churn", description="who leaves")
    v = reg.create_version("churn", "runs:/RUN_ID/model", run_id="RUN_ID",
                           flavor="xgboost")           # {'name', 'version': 1, ...}
    reg.set_alias("churn", "champion", v["version"])
    reg.get_model("churn@champion")                    # the version the alias names
    reg.get_model("churn:1")                           # version 1
    reg.alias_history("churn", "champion")             # every move: who and when
    reg.alias_history("churn", "champion", at=ms)      # the version in force then
    reg.search_versions("run_id = 'RUN_ID'")           # MLflow's filter syntax
    reg.register_model("./model", "churn")             # a local folder: uploaded once
    reg.download("churn@champion", "/tmp/churn")       # its files, hash-checked
    reg.create_environment("py311", python="/opt/venvs/py311",
                           requirements="numpy==2.1\n", env_vars={"OMP_NUM_THREADS": "4"})
    reg.get_environment("env:py311:1")                 # or "py311" (the latest)

The same, for the common cases, as functions over a default Registry
($CAIRN_ENDPOINT, $CAIRN_TOKEN): ``cairn.register_model(source, name)``,
``cairn.get_model(ref)``, ``cairn.download_model(ref, dst)``,
``cairn.log_input(run_id, ref)``, ``cairn.lineage(node)``.

Every method is one synchronous call (docs/REGISTRY.md lists the verbs,
their fields and limits), but the searches, which follow the pages. A
refusal raises the matching CairnError subclass: NotFound for an unknown
model, version or alias, Conflict for a name taken, BadRequest for a bad
filter or field. Names are per workspace (the Client's). Like a Client, a
Registry is for one thread.
"""
import hashlib
import os
import posixpath
import threading

from .errors import CairnError, NotFound
from .service import Service
from .transfer import _HASHERS, _Upload

SVC = "registry"
TRACKING_SVC = "tracking"
# Local sources are uploaded into a run of this experiment (one per
# upload; the run's tag cairn.upload_of names the local path), so that
# their bytes sit in the artifact store like any run's, stored once.
UPLOADS_EXPERIMENT = "cairn-uploads"
READ_CHUNK = 8 << 20  # bytes per read_file request
_URI_SCHEMES = ("runs:/", "models:/", "data:", "env:", "s3://", "gs://", "http://",
                "https://", "file://", "wasbs://", "abfss://", "hdfs://")


def parse_ref(ref):
    """"NAME@ALIAS" -> (NAME, None, ALIAS); "NAME:VERSION" or "NAME/VERSION"
    -> (NAME, VERSION, None); a "model:" prefix is allowed."""
    if ref.startswith("model:"):
        ref = ref[len("model:"):]
    if "@" in ref:
        name, alias = ref.rsplit("@", 1)
        return name, None, alias
    for sep in (":", "/"):
        if sep in ref:
            name, version = ref.rsplit(sep, 1)
            if version.isdigit():
                return name, int(version), None
    raise ValueError(f"a model reference is NAME@ALIAS or NAME:VERSION, not {ref!r}")


def parse_asset_ref(ref, kind):
    """A data asset's or environment's reference: "KIND:NAME:VERSION",
    "NAME:VERSION" -> (NAME, VERSION); "NAME", "KIND:NAME", "NAME:latest" or
    "NAME@latest" -> (NAME, None): the latest (kind: "data" or "env")."""
    if ref.startswith(kind + ":"):
        ref = ref[len(kind) + 1:]
    if ref.endswith("@latest"):
        return ref[:-len("@latest")], None
    if ":" in ref:
        name, version = ref.rsplit(":", 1)
        if version.isdigit():
            return name, int(version)
        if version == "latest":
            return name, None
        raise ValueError(f"a {kind} reference is [{kind}:]NAME[:VERSION], not {ref!r}")
    return ref, None


def parse_env_ref(ref):
    """parse_asset_ref for environments (env:NAME:VERSION)."""
    return parse_asset_ref(ref, "env")


class Registry(Service):
    """The registry verbs over one Client."""

    SVC = SVC

    # ---- registered models -------------------------------------------------

    def create_model(self, name, description=None, tags=None):
        """A new registered model (Conflict when the name is taken)."""
        return self._call("create_registered_model", name=name, description=description,
                          tags=_tags(tags))["registered_model"]

    def get_registered_model(self, name):
        return self._call("get_registered_model", name=name)["registered_model"]

    def rename_model(self, name, new_name):
        return self._call("rename_registered_model", name=name,
                          new_name=new_name)["registered_model"]

    def update_model(self, name, description):
        return self._call("update_registered_model", name=name,
                          description=description)["registered_model"]

    def delete_model(self, name):
        self._call("delete_registered_model", name=name)

    def set_model_tag(self, name, key, value):
        self._call("set_registered_model_tag", name=name, key=key, value=value)

    def delete_model_tag(self, name, key):
        self._call("delete_registered_model_tag", name=name, key=key)

    def search_models(self, filter=None, order_by=None, page_size=None):
        """Every registered model matching filter (``name LIKE 'churn%'``,
        ``tags.team = 'risk'``), following the pages."""
        return self._pages("search_registered_models", "registered_models", filter,
                           order_by, page_size)

    # ---- versions ----------------------------------------------------------

    def create_version(self, name, source, run_id=None, flavor=None, signature=None,
                       tags=None, description=None):
        """Version N+1 of name from source (``runs:/RUN_ID/PATH`` or a path)."""
        return self._call("create_model_version", name=name, source=source, run_id=run_id,
                          flavor=flavor, signature=signature, tags=_tags(tags),
                          description=description)["model_version"]

    def register_model(self, source, name, flavor=None, signature=None, tags=None,
                       description=None, run_id=None):
        """MLflow's register_model: version N+1 of name (created if new)
        from source: ``runs:/RUN_ID/PATH`` (stored once: no byte copied),
        or a local file or folder (uploaded into the artifact store first,
        see upload). A folder holding an MLflow MLmodel file gets its
        flavor and signature read from it when not given."""
        if _is_local(source):
            source = self.upload(source)
        try:
            self.create_model(name)
        except CairnError as e:
            if e.status != 409:
                raise
        return self.create_version(name, source, run_id=run_id, flavor=flavor,
                                   signature=signature, tags=tags, description=description)

    def upload(self, local_path):
        """Upload a local file or folder into the artifact store (a new run
        of experiment cairn-uploads) and return its ``runs:/RUN_ID/NAME``."""
        local_path = os.path.abspath(local_path)
        if not os.path.exists(local_path):
            raise FileNotFoundError(f"no such file or folder: {local_path}")
        name = os.path.basename(local_path.rstrip(os.sep)) or "upload"
        run_id = self._upload_run(local_path)
        if os.path.isdir(local_path):
            files = []
            for root, dirs, names in os.walk(local_path):
                dirs.sort()
                files += [os.path.join(root, f) for f in sorted(names)]
            if not files:
                raise ValueError(f"the folder {local_path} holds no file")
        else:
            files = [local_path]
        for full in files:
            rel = os.path.relpath(full, local_path).replace(os.sep, "/")
            dest = name if rel == "." else posixpath.join(name, rel)
            with open(full, "rb") as f:
                _Upload(self.client, run_id, dest, f).run()
        self.client.call(TRACKING_SVC, "update_run", {"run_id": run_id,
                                                      "status": "FINISHED"})
        return f"runs:/{run_id}/{name}"

    def _upload_run(self, local_path):
        c = self.client
        try:
            exp = c.call(TRACKING_SVC, "get_experiment_by_name",
                         {"experiment_name": UPLOADS_EXPERIMENT})["experiment"]
            exp_id = exp["experiment_id"]
        except NotFound:
            try:
                exp_id = c.call(TRACKING_SVC, "create_experiment",
                                {"name": UPLOADS_EXPERIMENT})["experiment_id"]
            except CairnError as e:  # created meanwhile by another client
                if e.status != 409:
                    raise
                exp_id = c.call(TRACKING_SVC, "get_experiment_by_name",
                                {"experiment_name": UPLOADS_EXPERIMENT}
                                )["experiment"]["experiment_id"]
        run = c.call(TRACKING_SVC, "create_run", {
            "experiment_id": exp_id, "run_name": "upload",
            "tags": [{"key": "cairn.upload_of", "value": local_path[:5000]}]})["run"]
        return run["info"]["run_id"]

    def get_version(self, name, version):
        return self._call("get_model_version", name=name, version=version)["model_version"]

    def get_model(self, ref):
        """The model version a reference names: "NAME@ALIAS" or "NAME:VERSION"."""
        name, version, alias = parse_ref(ref)
        if alias is not None:
            return self.get_by_alias(name, alias)
        return self.get_version(name, version)

    def update_version(self, name, version, description):
        return self._call("update_model_version", name=name, version=version,
                          description=description)["model_version"]

    def delete_version(self, name, version):
        self._call("delete_model_version", name=name, version=version)

    def set_version_tag(self, name, version, key, value):
        self._call("set_model_version_tag", name=name, version=version, key=key,
                   value=value)

    def delete_version_tag(self, name, version, key):
        self._call("delete_model_version_tag", name=name, version=version, key=key)

    def search_versions(self, filter=None, order_by=None, page_size=None):
        """Every model version matching filter (``name = 'churn'``, ``run_id IN
        ('a', 'b')``, ``tags.k = 'v'``), following the pages."""
        return self._pages("search_model_versions", "model_versions", filter, order_by,
                           page_size)

    # ---- aliases -----------------------------------------------------------

    def set_alias(self, name, alias, version):
        self._call("set_alias", name=name, alias=alias, version=version)

    def delete_alias(self, name, alias):
        self._call("delete_alias", name=name, alias=alias)

    def get_by_alias(self, name, alias):
        return self._call("get_model_version_by_alias", name=name,
                          alias=alias)["model_version"]

    def alias_history(self, name, alias, at=None):
        """[{version, action ('set' or 'deleted'), set_by, set_at}], oldest
        first; with at (ms since the epoch), the model_version that held
        the alias then (NotFound when none did)."""
        b = self._call("get_alias_history", name=name, alias=alias, at=at)
        return b["model_version"] if at is not None else b["history"]

    def model_history(self, name, page_size=None):
        """Every change to the model, oldest first: [{kind, alias, version,
        detail, by, at}] (kind: model_created, version_created, alias_set,
        alias_deleted, tag_set, tag_deleted, description_updated,
        model_renamed, version_deleted, model_deleted)."""
        out, token = [], None
        while True:
            b = self._call("get_model_history", name=name, max_results=page_size,
                           page_token=token)
            out += b["history"]
            token = b.get("next_page_token")
            if not token:
                return out

    # ---- files -------------------------------------------------------------

    def list_files(self, ref, page_size=None):
        """[{path, size, hash, hash_alg}] of a model version or data asset
        version (ref: NAME:VERSION, NAME@ALIAS, data:NAME:VERSION, ...)."""
        out, token = [], None
        while True:
            b = self._call("list_files", ref=ref, max_results=page_size, page_token=token)
            out += b["files"]
            token = b.get("next_page_token")
            if not token:
                return out

    def download(self, ref, dst):
        """Write the files of ref under the folder dst (created), each
        checked against its hash before it is renamed into place; returns
        dst. A failure leaves no partial file."""
        os.makedirs(dst, exist_ok=True)
        for f in self.list_files(ref):
            self._download_file(ref, f, dst)
        return dst

    def _download_file(self, ref, f, dst):
        path = f["path"]
        if path.startswith("/") or ".." in path.split("/"):
            raise CairnError(502, "bad_reply", f"the registry named an unsafe path {path!r}")
        full = os.path.join(dst, *path.split("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        tmp = f"{full}.{os.urandom(6).hex()}.part"
        h = _HASHERS[f["hash_alg"]]()
        try:
            with open(tmp, "wb") as out:
                off = 0
                while True:
                    b = self._call("read_file", ref=ref, path=path, offset=off,
                                   length=READ_CHUNK)
                    data = b["data"]
                    out.write(data)
                    h.update(data)
                    off += len(data)
                    if off >= b["size"] or not data:
                        break
            if off != f["size"] or h.hexdigest() != f["hash"]:
                raise CairnError(500, "corrupt",
                                 f"{ref}: {path} does not match its hash after download")
            os.replace(tmp, full)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def resolve(self, ref):
        """What a reference names, as jobs and endpoints see it: {ref
        (canonical), kind (model_version, data_asset, environment), the
        object under its kind, path (a local read-only folder of its files,
        when Cairn stores them)}."""
        return self._call("resolve", ref=ref)

    def download_uri(self, name, version):
        """MLflow's get_model_version_download_uri: models:/NAME/VERSION for
        stored bytes, else the version's source."""
        return self._call("get_model_version_download_uri", name=name,
                          version=version)["artifact_uri"]

    # ---- lineage -----------------------------------------------------------

    def log_input(self, run_id, input):
        """Record that run_id read input (data:NAME:VERSION, model:NAME:VERSION,
        env:NAME:VERSION): an edge input -> run in the lineage."""
        self._call("log_input", run_id=run_id, input=input)

    def lineage(self, node, direction=None, depth=None):
        """{nodes: [{id, type}], edges: [{from, to, kind}]} around node
        (run:ID, model:NAME:VERSION, model:NAME@ALIAS, data:..., env:...),
        direction up (inputs), down (products) or both (default), depth
        1..50 (default 10)."""
        return self._call("lineage", node=node, direction=direction, depth=depth)

    # ---- environments ------------------------------------------------------

    def create_environment(self, name, python=None, requirements=None, env_vars=None,
                           description=None, tags=None):
        """Version N+1 of environment name: python (an absolute interpreter
        or venv path), requirements (text, as pip's), env_vars {NAME: value},
        tags {k: v}. Returns the environment {name, version, python,
        requirements, env_vars, description, tags, archived, user_id,
        creation_timestamp}."""
        if tags is not None and not isinstance(tags, list):
            tags = {k: str(v) for k, v in tags.items()}
        return self._call("create_environment", name=name, python=python,
                          requirements=requirements, env_vars=env_vars,
                          description=description, tags=tags)["environment"]

    def get_environment(self, ref, version=None):
        """An environment version: ref "env:NAME:VERSION", "NAME:VERSION" or
        "NAME" (the latest not archived), or a name with version (a number or
        "latest")."""
        name, v = parse_env_ref(ref)
        if version is None:
            version = v
        return self._call("get_environment", name=name, version=version)["environment"]

    def list_environments(self, name=None, include_archived=False, page_size=None):
        """name's versions, newest first; no name: the latest version of every
        environment, by name. Archived ones only with include_archived. Follows
        the pages."""
        return self._list_assets("list_environments", "environments", name,
                                 include_archived, page_size)

    def _list_assets(self, verb, key, name, include_archived, page_size):
        out, token = [], None
        while True:
            b = self._call(verb, name=name, include_archived=include_archived or None,
                           max_results=page_size, page_token=token)
            out += b[key]
            token = b.get("next_page_token")
            if not token:
                return out

    def archive_environment(self, name, version, archived=True):
        """Archive a version (archived=False restores it): "latest" and the
        listings skip it, a get by number still finds it."""
        return self._call("archive_environment", name=name, version=version,
                          archived=archived)["environment"]

    # ---- data assets -------------------------------------------------------

    def create_data_asset(self, name, path, type=None, description=None, tags=None):
        """Version N+1 of data asset name from path: ``runs:/RUN_ID/PATH``
        (stored once) or a local file or folder (uploaded first). type:
        uri_file, uri_folder or table (one CSV file: its rows and columns are
        read); default uri_folder for a folder, else uri_file. Returns the
        data_asset {name, version, type, path, content_hash, size, files,
        rows, columns, description, tags, archived, user_id,
        creation_timestamp}."""
        if _is_local(path):
            if type is None:
                type = "uri_folder" if os.path.isdir(path) else "uri_file"
            path = self.upload(path)
        if type is None:
            type = "uri_folder"
        if tags is not None and not isinstance(tags, list):
            tags = {k: str(v) for k, v in tags.items()}
        return self._call("create_data_asset", name=name, type=type, path=path,
                          description=description, tags=tags)["data_asset"]

    def get_data_asset(self, ref, version=None):
        """A data asset version: "data:NAME:VERSION", "NAME:VERSION", or
        "NAME" / "data:NAME@latest" (the latest not archived)."""
        name, v = parse_asset_ref(ref, "data")
        return self._call("get_data_asset", name=name,
                          version=v if version is None else version)["data_asset"]

    def list_data_assets(self, name=None, include_archived=False, page_size=None):
        """As list_environments, for data assets."""
        return self._list_assets("list_data_assets", "data_assets", name,
                                 include_archived, page_size)

    def archive_data_asset(self, name, version, archived=True):
        return self._call("archive_data_asset", name=name, version=version,
                          archived=archived)["data_asset"]

    def _pages(self, verb, key, filter, order_by, page_size):
        out, token = [], None
        while True:
            b = self._call(verb, filter=filter, order_by=order_by, max_results=page_size,
                           page_token=token)
            out += b[key]
            token = b.get("next_page_token")
            if not token:
                return out


def _tags(tags):
    """{k: v} or [{key, value}] -> [{key, value}]."""
    if tags is None or isinstance(tags, list):
        return tags
    return [{"key": k, "value": str(v)} for k, v in tags.items()]


def _is_local(source):
    return not source.startswith(_URI_SCHEMES) and os.path.exists(source)


# ---- module-level functions over a default Registry -------------------------

_default = None
_default_lock = threading.Lock()


def _registry():
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default


def register_model(source, name, flavor=None, signature=None, tags=None,
                   description=None, run_id=None):
    """Registry.register_model over the default Registry."""
    return _registry().register_model(source, name, flavor=flavor, signature=signature,
                                      tags=tags, description=description, run_id=run_id)


def get_model(ref):
    return _registry().get_model(ref)


def download_model(ref, dst):
    return _registry().download(ref, dst)


def log_input(run_id, input):
    return _registry().log_input(run_id, input)


def resolve(ref):
    """Registry.resolve over the default Registry."""
    return _registry().resolve(ref)


def create_data_asset(name, path, type=None, description=None, tags=None):
    """Registry.create_data_asset over the default Registry."""
    return _registry().create_data_asset(name, path, type=type, description=description,
                                         tags=tags)


def lineage(node, direction=None, depth=None):
    return _registry().lineage(node, direction=direction, depth=depth)
