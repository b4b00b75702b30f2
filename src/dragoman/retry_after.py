"""The one reading of an upstream's ``retry-after-ms`` / ``retry-after`` headers.

Used for the backoff before a retry, for how long a deployment cools down after a 429/529, and
for the ``retry-after`` header the client receives, so all three always agree.

An upstream's value is a hint, not an order: whatever it says, the result is a finite number of
seconds in ``[0, cap]`` (``routing.cooldown.max_retry_after``, 300 s by default). A value that
cannot be read at all (``nan``, ``soon``) counts as absent; one that is negative or a date in
the past means "now" (0); one that is infinite, enormous (``1e300``) or a date years ahead is
the cap. So a header can never raise, never cool a deployment for longer than the cap, and
never send the client a 300-digit number.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping

#: default for ``routing.cooldown.max_retry_after``
DEFAULT_CAP = 300.0


def _get(headers: Mapping[str, str], name: str) -> str | None:
    """The header, whatever its case (aiohttp's headers answer any case; a dict may not)."""
    v = headers.get(name)
    if v is None:
        for k, val in headers.items():
            if k.lower() == name:
                return val
    return v


def _seconds(text: str) -> float | None:
    """A number of seconds, or None when the text is not a number (or is nan)."""
    try:
        v = float(text.strip())
    except ValueError:
        return None
    return None if math.isnan(v) else v


def _clamp(seconds: float, cap: float) -> float:
    return min(max(seconds, 0.0), cap)


def parse_retry_after(
    headers: Mapping[str, str], *, cap: float = DEFAULT_CAP, now: float | None = None
) -> float | None:
    """Seconds to wait, in ``[0, cap]``, or None when the upstream gave no usable value.

    ``retry-after-ms`` wins over ``retry-after`` (the form Anthropic and OpenAI send both ways);
    ``retry-after`` is delay-seconds or an HTTP date (RFC 9110 §10.2.3), read against ``now``
    (wall-clock seconds; ``time.time()`` when not given).
    """
    ms = _get(headers, "retry-after-ms")
    if ms:
        v = _seconds(ms)
        if v is not None:
            return _clamp(v / 1000.0, cap)
    ra = _get(headers, "retry-after")
    if not ra:
        return None
    v = _seconds(ra)
    if v is not None:
        return _clamp(v, cap)
    try:
        when = email.utils.parsedate_to_datetime(ra.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        stamp = when.timestamp()
    except (OverflowError, OSError, ValueError):
        return cap
    return _clamp(stamp - (time.time() if now is None else now), cap)


def header_value(seconds: float) -> str:
    """The ``retry-after`` a client is sent: whole seconds, rounded up (RFC 9110 delay-seconds)."""
    return str(math.ceil(seconds)) if seconds > 0 else "0"
