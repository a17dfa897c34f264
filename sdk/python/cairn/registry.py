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
    reg.create_environment("py311", python="/opt/venvs/py311",
                           requirements="numpy==2.1\n", env_vars={"OMP_NUM_THREADS": "4"})
    reg.get_environment("env:py311:1")                 # or "py311" (the latest)

Every method is one synchronous call (docs/REGISTRY.md lists the verbs,
their fields and limits), but the searches, which follow the pages. A
refusal raises the matching CairnError subclass: NotFound for an unknown
model, version or alias, Conflict for a name taken, BadRequest for a bad
filter or field. Names are per workspace (the Client's). Like a Client, a
Registry is for one thread.
"""
from .service import Service

SVC = "registry"


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


def parse_env_ref(ref):
    """"env:NAME:VERSION", "NAME:VERSION" -> (NAME, VERSION); "NAME" or
    "env:NAME" -> (NAME, None): the latest."""
    if ref.startswith("env:"):
        ref = ref[len("env:"):]
    if ":" in ref:
        name, version = ref.rsplit(":", 1)
        if version.isdigit():
            return name, int(version)
        if version == "latest":
            return name, None
        raise ValueError(f"an environment reference is [env:]NAME[:VERSION], not {ref!r}")
    return ref, None


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
        out, token = [], None
        while True:
            b = self._call("list_environments", name=name,
                           include_archived=include_archived or None,
                           max_results=page_size, page_token=token)
            out += b["environments"]
            token = b.get("next_page_token")
            if not token:
                return out

    def archive_environment(self, name, version, archived=True):
        """Archive a version (archived=False restores it): "latest" and the
        listings skip it, a get by number still finds it."""
        return self._call("archive_environment", name=name, version=version,
                          archived=archived)["environment"]

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
