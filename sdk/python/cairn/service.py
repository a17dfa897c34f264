"""What the classes of the services (Auth, Secrets, Audit) share: a Client
they make (endpoint, token, workspace as for Client) or one they are given
(``client=c``, which they do not close), a context manager, and one call
whose body leaves out the fields given as None."""
from .client import Client


class Service:
    """One service's verbs over one Client; SVC names the service."""

    SVC = None

    def __init__(self, endpoint=None, token=None, workspace=None, ttl_ms=30000,
                 client=None):
        self._own = client is None
        self.client = client or Client(endpoint, token, workspace, ttl_ms)

    def close(self):
        if self._own:
            self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, verb, /, **fields):
        """verb is positional only: a field may be named verb (audit.query's)."""
        body = {k: v for k, v in fields.items() if v is not None}
        return self.client.call(self.SVC, verb, body)
