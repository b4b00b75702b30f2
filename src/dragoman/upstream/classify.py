"""The one place an upstream's error answer gets its type: origin, kind, and clean text.

Every error answer (an HTTP error status, a redirect, an error event before the stream began)
passes here once. The dialect's reader (``translate/errors.py``) says what kind of error it is;
here it becomes an ``UpstreamStatusError`` (``ContextOverflow``, ``UpstreamRefusal``,
``UpstreamCredentialsRejected``, or the kind class), its text is scrubbed of the provider's
credentials (``scrub.py``), and its retry-after is read (``retry_after.py``). The client, the
logs, ``/health``, the metrics and the database all see this one error (docs/upstream.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import (
    BadUpstreamResponse,
    ContextOverflow,
    DragomanError,
    UpstreamCredentialsRejected,
    UpstreamError,
    UpstreamRefusal,
    UpstreamStatusError,
    upstream_status_error,
)
from ..retry_after import DEFAULT_CAP, header_value, parse_retry_after
from ..scrub import scrub
from ..translate.errors import anthropic_upstream_error, openai_upstream_error

if TYPE_CHECKING:
    from ..providers.base import Provider

log = logging.getLogger("dragoman.upstream")

_OVERFLOW = ("prompt is too long", "exceed context limit", "context length")
_REFUSAL = ("refused", "content policy", "content_filter", "safety")
_CREDENTIALS = ("authentication_error", "permission_error")


def is_context_overflow(message: str) -> bool:
    return any(w in message for w in _OVERFLOW)


def is_refusal(message: str) -> bool:
    m = message.lower()
    return any(w in m for w in _REFUSAL)


def from_answer(
    prov: Provider,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    retry_cap: float = DEFAULT_CAP,
) -> UpstreamError:
    """The typed error for an upstream's non-2xx HTTP answer."""
    if 300 <= status < 400:
        err: UpstreamError = BadUpstreamResponse(
            f"upstream {prov.name} answered with a redirect ({status}), which dragoman never "
            "follows"
        )
        err.connection_error = False  # it would redirect again: another deployment, not a retry
    else:
        read = anthropic_upstream_error if prov.kind == "anthropic" else openai_upstream_error
        err = retype(read(status, body, headers), prov, status)
    err.upstream_status = status
    err.provider = prov.name
    # whatever the status, the upstream's retry-after (sane, capped) drives the backoff, the
    # cooldown, and the header the caller gets
    err.retry_after = parse_retry_after(headers, cap=retry_cap)
    if err.retry_after is not None:
        err.headers["retry-after"] = header_value(err.retry_after)
    return err


def retype(err: DragomanError, prov: Provider, status: int | None = None) -> UpstreamError:
    """An error read from an upstream's answer (status ``status``, else ``err.status``) ->
    the same error typed by its origin, with the provider's secrets scrubbed from its text."""
    if isinstance(err, UpstreamError) and not isinstance(err, UpstreamStatusError):
        return err  # a transport's own error: already typed, and its text is ours
    upstream_status = status if status is not None else (err.upstream_status or err.status)
    message = scrub(err.message, prov.secrets)
    kw: dict[str, Any] = {"param": err.param, "code": err.code, "retry_after": err.retry_after}
    out: UpstreamStatusError
    if upstream_status in (401, 403) or err.type in _CREDENTIALS:
        # our provider key was refused: a bad gateway, and never the client's auth error
        log.warning(
            "upstream %s rejected the gateway's credentials (%s): %s",
            prov.name,
            upstream_status,
            message[:200],
        )
        out = UpstreamCredentialsRejected(
            f"upstream {prov.name} rejected the gateway's credentials"
        )
    elif err.type == "invalid_request_error" and is_context_overflow(message):
        out = ContextOverflow(message, status=err.status, **kw)
    elif err.type == "invalid_request_error" and is_refusal(message):
        out = UpstreamRefusal(message, status=err.status, **kw)
    else:
        out = upstream_status_error(
            err.type, message, status=err.status, upstream_status=upstream_status, **kw
        )
    out.upstream_status = upstream_status
    out.provider = prov.name
    out.headers.update(err.headers)
    return out
