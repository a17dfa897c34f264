"""Errors raised by the Cairn client: one class per CAIRN/1 status family.

Every error carries ``.status`` (the reply's ``st``), ``.code`` (its stable
machine name, e.g. ``no_verb``), ``.message`` (the sentence in ``err``) and
``.body`` (the reply's decoded body: None when it had none, as most error
replies; some carry details, e.g. put_artifact's 409 ``{"expected_offset":
N}``); ``str(e)`` is the message.
"""


class CairnError(Exception):
    """A request failed: the kernel or a service answered ``st`` >= 400."""

    def __init__(self, message, status=500, code="internal", body=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.body = body

    def __str__(self):
        return self.message

    def __repr__(self):
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, " \
               f"message={self.message!r})"


class BadRequest(CairnError):
    """400: the request or its body is not what the verb takes."""


class Unauthenticated(CairnError):
    """401: no token, or one the kernel does not know."""


class Forbidden(CairnError):
    """403: the principal's role lacks the verb's permission."""


class NotFound(CairnError):
    """404: no such service, verb or object."""


class Conflict(CairnError):
    """409: the object exists, or changed under the request."""


class TooLarge(CairnError):
    """413: a frame or value over a limit."""


class Overloaded(CairnError):
    """429: the service is busy; retry later."""


class Unavailable(CairnError):
    """503: the plugin behind the service is down or restarting."""


class DeadlineExceeded(CairnError):
    """504: the ttl passed. ``code`` is ``no_reply`` when no answer came at
    all (the client gave up locally: is cairnd running?)."""


# status: (class, the code the kernel uses when a reply names none)
_BY_STATUS = {
    400: (BadRequest, "bad_request"),
    401: (Unauthenticated, "unauthenticated"),
    403: (Forbidden, "forbidden"),
    404: (NotFound, "not_found"),
    409: (Conflict, "conflict"),
    413: (TooLarge, "too_large"),
    429: (Overloaded, "overloaded"),
    503: (Unavailable, "unavailable"),
    504: (DeadlineExceeded, "deadline_exceeded"),
}


def error_for(status, code=None, message=None, body=None):
    """The exception (not raised) for a failed reply's status, code, err and
    body (None when it had none)."""
    cls, default_code = _BY_STATUS.get(status, (CairnError, "internal"))
    return cls(message or f"request failed with status {status}", status,
               code or default_code, body)
