"""The audit trail: Cairn's ``audit`` service.

    from cairn.audit import Audit
    a = Audit()                                  # $CAIRN_ENDPOINT, $CAIRN_TOKEN
    for r in a.query(svc="secrets", since=t0):   # oldest first, every page
        print(r["seq"], r["principal"], r["verb"], r["status"])
    page = a.query_page(max_results=100)         # one page: {'records', 'next_page_token'?}
    v = a.verify()                               # {'ok', 'records', 'first_bad_seq'?}

Both verbs need ``audit.read`` (docs/AUDIT.md). A refusal raises the
matching CairnError subclass. An Audit wraps a Client it makes (endpoint,
token, workspace as for Client) or one it is given (``Audit(client=c)``,
which it does not close); like a Client, it is for one thread.
"""
from .service import Service

SVC = "audit"


class Audit(Service):
    """The audit verbs over one Client."""

    SVC = SVC

    def query_page(self, principal=None, svc=None, verb=None, object=None, since=None,
                   until=None, max_results=None, page_token=None, min_status=None,
                   max_status=None):
        """One page of records matching every filter given: {'records':
        [{seq, time, principal, ws, svc, verb, object, status}],
        'next_page_token' (when more remain)}. since/until: ms since the
        epoch, [since, until); min_status/max_status: the statuses kept,
        inclusive (min_status=400: the refusals); max_results 1 to 1000
        (default 100)."""
        return self._call("query", principal=principal, svc=svc, verb=verb, object=object,
                          since=since, until=until, max_results=max_results,
                          page_token=page_token, min_status=min_status,
                          max_status=max_status)

    def query(self, principal=None, svc=None, verb=None, object=None, since=None,
              until=None, page_size=None, limit=None, min_status=None, max_status=None):
        """Every matching record, oldest first, following the pages (at
        most limit of them when limit is given)."""
        out, token = [], None
        while limit is None or len(out) < limit:
            b = self.query_page(principal, svc, verb, object, since, until, page_size,
                                token, min_status, max_status)
            out += b["records"]
            token = b.get("next_page_token")
            if not token:
                break
        return out if limit is None else out[:limit]

    def verify(self):
        """The whole hash chain checked: {'ok', 'records' (how many were
        checked), 'first_bad_seq' (when not ok)}."""
        return self._call("verify")
