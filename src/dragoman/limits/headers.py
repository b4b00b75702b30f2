"""Rate-limit response headers in each client's dialect, as the real APIs send them.

Anthropic: ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``, reset an RFC 3339
instant (UTC, whole seconds) when the limit is fully replenished. OpenAI:
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, reset a Go duration until then
(``1s``, ``6m0s``, ``20ms``: what OpenAI sends, and what Go/TS clients parse). Both get
``retry-after`` (whole seconds, rounded up) and ``retry-after-ms`` on a refusal: the SDKs read
the second first.

When several limits apply (a key's and the gateway's), each header family reports the one with
the fewest left: the one the client will meet first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from ..state import WINDOW, Admission, Check, Quota


def _quota(checks: Iterable[Check], admitted: bool, tokens: int, kind: str) -> Quota | None:
    best: Quota | None = None
    for c in checks:
        lim = c.limit.rpm if kind == "requests" else c.limit.tpm
        if lim is None:
            continue
        used = c.requests if kind == "requests" else c.tokens
        if admitted:  # counting the request being answered
            used += 1 if kind == "requests" else tokens
        # admitted, the request itself is the newest in the window: it leaves it last
        reset = WINDOW if admitted else c.reset
        q = Quota(lim, max(lim - used, 0), reset)
        if best is None or (q.remaining, q.limit) < (best.remaining, best.limit):
            best = q
    return best


def quotas(adm: Admission) -> tuple[Quota | None, Quota | None]:
    """The (requests, tokens) quotas to report for an admission: of the group admitted, or of
    every refusing limit for a refusal."""
    if adm.admitted:
        checks: tuple[Check, ...] = adm.checks[adm.group] if adm.checks else ()
    else:
        checks = adm.refused_by
    return (
        _quota(checks, adm.admitted, adm.tokens, "requests"),
        _quota(checks, adm.admitted, adm.tokens, "tokens"),
    )


def go_duration(seconds: float) -> str:
    """``time.Duration.String()`` at millisecond precision: ``0s``, ``20ms``, ``1.5s``, ``6m0s``."""
    ms = max(math.ceil(seconds * 1000 - 1e-6), 0)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, frac = divmod(rest, 1000)
    sec = f"{s}.{frac:03d}".rstrip("0").rstrip(".") + "s" if frac else f"{s}s"
    if h:
        return f"{h}h{m}m{sec}"
    if m:
        return f"{m}m{sec}"
    return sec


def rfc3339(wall: float) -> str:
    """UTC instant, whole seconds rounded up (never earlier than the real reset)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(wall)))


def retry_headers(seconds: float) -> dict[str, str]:
    """``retry-after`` (RFC 9110 delay-seconds, rounded up) and ``retry-after-ms``."""
    seconds = max(seconds, 0.0)
    return {
        "retry-after": str(math.ceil(seconds)),
        "retry-after-ms": str(math.ceil(seconds * 1000)),
    }


def anthropic_headers(adm: Admission, now: float | None = None) -> dict[str, str]:
    """The ``anthropic-ratelimit-*`` headers (+ retry headers on a refusal); ``now`` is wall
    time (``time.time()`` by default)."""
    wall = time.time() if now is None else now
    out: dict[str, str] = {}
    for kind, q in zip(("requests", "tokens"), quotas(adm), strict=True):
        if q is not None:
            out[f"anthropic-ratelimit-{kind}-limit"] = str(q.limit)
            out[f"anthropic-ratelimit-{kind}-remaining"] = str(q.remaining)
            out[f"anthropic-ratelimit-{kind}-reset"] = rfc3339(wall + q.reset)
    if not adm.admitted and adm.retry_after is not None:
        out.update(retry_headers(adm.retry_after))
    return out


def openai_headers(adm: Admission) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers (+ retry headers on a refusal)."""
    out: dict[str, str] = {}
    for kind, q in zip(("requests", "tokens"), quotas(adm), strict=True):
        if q is not None:
            out[f"x-ratelimit-limit-{kind}"] = str(q.limit)
            out[f"x-ratelimit-remaining-{kind}"] = str(q.remaining)
            out[f"x-ratelimit-reset-{kind}"] = go_duration(q.reset)
    if not adm.admitted and adm.retry_after is not None:
        out.update(retry_headers(adm.retry_after))
    return out


def headers_for(dialect: str, adm: Admission, now: float | None = None) -> dict[str, str]:
    """The headers for a client of ``dialect`` (``anthropic`` or ``openai``)."""
    return anthropic_headers(adm, now) if dialect == "anthropic" else openai_headers(adm)
