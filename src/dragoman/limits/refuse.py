"""The error a request refused by a limit gets: a 429 in the caller's dialect, with the dialect's
rate-limit headers and ``retry-after`` (docs/limits.md). Nothing went upstream, nothing was held.
"""

from __future__ import annotations

from ..errors import DragomanError, OverloadedError, RateLimitError
from ..state import Admission, Check
from .headers import headers_for, retry_headers


def _why(c: Check, tokens: int) -> str:
    lim = c.limit
    if lim.tpm is not None and tokens > lim.tpm:
        return (
            f"this request may use {tokens} tokens (input estimate + max_tokens), more than the "
            f"limit of {lim.tpm} tokens per minute of {lim.label}: lower max_tokens"
        )
    if lim.rpm is not None and c.requests + 1 > lim.rpm:
        return f"rate limit of {lim.label} reached: {lim.rpm} requests per minute"
    if lim.tpm is not None and c.tokens + tokens > lim.tpm:
        return f"rate limit of {lim.label} reached: {lim.tpm} tokens per minute"
    return f"concurrency limit of {lim.label} reached: {lim.concurrency} requests at once"


def refusal(adm: Admission, dialect: str, now: float | None = None) -> DragomanError:
    """The error for a refused admission (``adm.admitted`` is False)."""
    if adm.unavailable:
        wait = adm.retry_after or 1.0
        return OverloadedError(
            "rate limits cannot be checked right now (the shared state is unreachable and "
            "state.on_error is closed); retry shortly",
            retry_after=wait,
            headers=retry_headers(wait),
        )
    first = adm.refused_by[0]
    msg = _why(first, adm.tokens)
    if adm.retry_after is not None:
        msg += f"; retry in {adm.retry_after:.1f}s"
    return RateLimitError(
        msg,
        code="rate_limit_exceeded",
        retry_after=adm.retry_after,
        headers=headers_for(dialect, adm, now),
    )
