"""The key vault: Cairn's ``secrets`` service.

    from cairn.secrets import Secrets
    s = Secrets()                                # $CAIRN_ENDPOINT, $CAIRN_TOKEN
    s.set("db/password", "hunter2")              # 1: the first version
    s.get("db/password")                         # 'hunter2' (bytes stay bytes)
    [x["name"] for x in s.list()]                # names and metadata, never values
    s.delete("db/password")
    s.rotate_master_key()                        # {'key_id': 2, 'resealed': n}

Every method is one synchronous call (docs/SECRETS.md lists the verbs, their
fields and limits), but ``list``, which follows the pages. A refusal raises
the matching CairnError subclass: Forbidden for a role without
``secrets.read`` (a Reader, a Contributor), NotFound for an unknown name,
TooLarge past 64 KiB, Conflict when rotating a key taken from the
environment.

Names are per workspace (the Client's). A Secrets wraps a Client it makes
(endpoint, token, workspace as for Client) or one it is given
(``Secrets(client=c)``, which it does not close); like a Client, it is for
one thread.
"""
from .service import Service

SVC = "secrets"
VALUE_MAX = 64 * 1024  # bytes


class Secrets(Service):
    """The secrets verbs over one Client."""

    SVC = SVC

    def set(self, name, value):
        """Set name's value (str or bytes, at most 64 KiB); its version (1 when new)."""
        if not isinstance(value, (str, bytes, bytearray)):
            raise TypeError("a secret's value is str or bytes")
        return self._call("set_secret", name=name, value=value)["version"]

    def get(self, name):
        """The value: a str when its bytes are UTF-8, else bytes."""
        return self._call("get_secret", name=name)["value"]

    def get_versioned(self, name):
        """{'value', 'version'}."""
        return self._call("get_secret", name=name)

    def list(self, page_size=None):
        """Every name of the workspace: [{name, created, updated, version}], in
        name order, following the pages (page_size: 1 to 1000 a call)."""
        out, token = [], None
        while True:
            b = self._call("list_secrets", max_results=page_size, page_token=token)
            out += b["secrets"]
            token = b.get("next_page_token")
            if not token:
                return out

    def delete(self, name):
        self._call("delete_secret", name=name)

    def rotate_master_key(self):
        """Every value re-sealed under a new master key (secrets.admin):
        {'key_id', 'resealed'}."""
        return self._call("rotate_master_key")
