"""Typed errors shared by the library API and the server.

Every error carries an Anthropic error ``type`` as its canonical kind; the server renders it in
the caller's dialect (``protocols.anthropic.error_body`` / ``protocols.openai.error_body``), and
library users catch the subclasses.

Where an error came from is its type, set once where the upstream's answer is classified
(``upstream/classify.py``, ``upstream/http.py``)::

    DragomanError
      UpstreamError                       an upstream's doing, not the client's nor ours
        UpstreamStatusError               it answered with an error status (``upstream_status``)
          ContextOverflow                 ... saying the prompt does not fit (400)
          UpstreamRefusal                 ... refusing on content policy
          UpstreamCredentialsRejected     ... rejecting OUR provider key (401/403 -> 502)
          Upstream<Kind>Error             ... anything else, also a RateLimitError, ServerError...
        UpstreamConnectionError           it could not be reached, timed out or broke the stream
          UpstreamUnreachable             ... refused, reset, broken (529, an OverloadedError)
          UpstreamTimeout                 ... too slow (504, an UpstreamTimeoutError)
        BadUpstreamResponse               it answered something unusable: a redirect, a body or
                                          event too large, a shape no dialect has (502)
"""

from __future__ import annotations

from typing import Any

# Anthropic error type -> HTTP status (docs/protocols.md §4.1)
STATUS_BY_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class DragomanError(Exception):
    """Base of every error dragoman raises on purpose."""

    type: str = "api_error"
    status: int = 500
    #: HTTP status the upstream answered with, when the error came from an upstream
    upstream_status: int | None = None
    #: the upstream could not be reached or dropped the connection (always worth a retry)
    connection_error: bool = False
    #: the model (after aliases, rules and fallbacks) and the deployment that gave this error,
    #: and how many upstream attempts the request made: what the server sends as
    #: ``x-dragoman-model``, ``x-dragoman-deployment`` and ``x-dragoman-attempts``. ``None``
    #: when the request never got that far (a malformed request, an unknown model).
    model: str | None = None
    deployment: str | None = None
    attempts: int | None = None
    #: the ``error.type`` an OpenAI client sees, when the Anthropic type's usual mapping is not it
    openai_type: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if type is not None:
            self.type = type
        if status is not None:
            self.status = status
        elif type is not None:
            self.status = STATUS_BY_TYPE.get(type, self.status)
        self.param = param
        self.code = code
        self.retry_after = retry_after
        self.headers = headers or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.type}: {self.message!r})"


class InvalidRequestError(DragomanError):
    type = "invalid_request_error"
    status = 400


class AuthenticationError(DragomanError):
    type = "authentication_error"
    status = 401


class BudgetExceededError(DragomanError):
    type = "billing_error"
    status = 402


class PermissionDeniedError(DragomanError):
    type = "permission_error"
    status = 403


class ModelNotFoundError(DragomanError):
    type = "not_found_error"
    status = 404


class RequestTooLargeError(DragomanError):
    type = "request_too_large"
    status = 413


class RateLimitError(DragomanError):
    type = "rate_limit_error"
    status = 429


class ServerError(DragomanError):
    type = "api_error"
    status = 500


class OverloadedError(ServerError):
    type = "overloaded_error"
    status = 529


class UpstreamTimeoutError(ServerError):
    type = "timeout_error"
    status = 504


# -- origin as type (see the tree in the module docstring) -----------------------------------


class UpstreamError(DragomanError):
    """An error an upstream caused. Mixed into the kind classes (``RateLimitError``...), so a
    library user may catch either the kind or the origin."""

    #: the provider, as configured, that caused it
    provider: str | None = None


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an HTTP error status (kept in ``upstream_status``)."""


class UpstreamConnectionError(UpstreamError):
    """The upstream could not be reached, or dropped the connection (always worth a retry)."""

    connection_error = True


class UpstreamUnreachable(UpstreamConnectionError, OverloadedError):
    """Refused, reset or broken: overloaded, as far as the caller can tell (529)."""


class UpstreamTimeout(UpstreamConnectionError, UpstreamTimeoutError):
    """No connection, no answer, or a silence too long, within the provider's timeouts (504)."""


class ContextOverflow(UpstreamStatusError, InvalidRequestError):
    """The upstream says the prompt does not fit the model's context window."""


class UpstreamRefusal(UpstreamStatusError, InvalidRequestError):
    """The upstream refused the request on content policy (a 400, or a 200 content filter)."""


class UpstreamCredentialsRejected(UpstreamStatusError, ServerError):
    """The upstream rejected the gateway's own provider credentials (401/403): a bad gateway,
    never the client's authentication error (docs/upstream.md)."""

    type = "api_error"
    status = 502
    openai_type = "upstream_error"


class BadUpstreamResponse(UpstreamError, ServerError):
    """The upstream answered something no dialect allows: a redirect, an oversized body or
    event, an unreadable body. A 502, and worth another deployment."""

    type = "api_error"
    status = 502
    openai_type = "upstream_error"
    connection_error = True


_CLASS_BY_TYPE: dict[str, type[DragomanError]] = {
    "invalid_request_error": InvalidRequestError,
    "authentication_error": AuthenticationError,
    "billing_error": BudgetExceededError,
    "permission_error": PermissionDeniedError,
    "not_found_error": ModelNotFoundError,
    "request_too_large": RequestTooLargeError,
    "rate_limit_error": RateLimitError,
    "api_error": ServerError,
    "overloaded_error": OverloadedError,
    "timeout_error": UpstreamTimeoutError,
}


def error_for(type_: str, message: str, *, status: int | None = None, **kw: Any) -> DragomanError:
    """Build the typed error for an Anthropic error type (the status defaults from the type)."""
    cls = _CLASS_BY_TYPE.get(type_, ServerError)
    return cls(message, status=status, type=type_, **kw)


_UPSTREAM_CLASS: dict[type[DragomanError], type[UpstreamStatusError]] = {}


def upstream_status_error(
    type_: str, message: str, *, upstream_status: int, status: int | None = None, **kw: Any
) -> UpstreamStatusError:
    """The typed error for an upstream's error answer: an ``UpstreamStatusError`` that is also
    the kind class of ``type_`` (``RateLimitError``, ``OverloadedError``...)."""
    kind = _CLASS_BY_TYPE.get(type_, ServerError)
    cls = _UPSTREAM_CLASS.get(kind)
    if cls is None:
        name = "Upstream" + kind.__name__.removesuffix("Error") + "Error"
        cls = _UPSTREAM_CLASS[kind] = type(name, (UpstreamStatusError, kind), {})
    err = cls(message, status=status, type=type_, **kw)
    err.upstream_status = upstream_status
    return err


def type_for_status(status: int) -> str:
    """Anthropic error type for an HTTP status (used when an upstream gives no usable type)."""
    if status in (502, 503, 529):
        return "overloaded_error"
    if status == 504 or status == 408:
        return "timeout_error"
    for t, s in STATUS_BY_TYPE.items():
        if s == status:
            return t
    if status >= 500:
        return "api_error"
    return "invalid_request_error"
