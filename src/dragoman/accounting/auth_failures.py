"""Failed authentications: logged without the key, and limited per client address (audit #35).

A failure is logged with the client address and a short fingerprint of what was presented (the
first 8 hex digits of its SHA-256; never the key itself). An address that fails ``limit`` times
within ``WINDOW`` seconds is refused with 429 and ``retry-after`` until its oldest failure leaves
the window, whatever key it sends: online guessing of a static or admin key gets ``limit``
tries a minute per address. docs/security.md.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("dragoman.auth")

#: seconds a failure counts against its address
WINDOW = 60.0
#: addresses remembered at most (a scan of many addresses cannot grow memory without bound)
MAX_ADDRESSES = 100_000


def fingerprint(secret: str | None) -> str:
    """What a log line may say about a presented key: a hash prefix, or "none"."""
    if not secret:
        return "none"
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:8]


class AuthFailures:
    """Per-address sliding window of failed authentications."""

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}

    def _recent(self, addr: str, now: float) -> deque[float] | None:
        q = self._seen.get(addr)
        if q is None:
            return None
        while q and q[0] <= now - WINDOW:
            q.popleft()
        if not q:
            del self._seen[addr]
            return None
        return q

    def blocked_for(self, addr: str) -> float | None:
        """Seconds ``addr`` must wait before it may try again, or None when it may now."""
        now = self.clock()
        q = self._recent(addr, now)
        if q is None or len(q) < self.limit:
            return None
        return max(q[0] + WINDOW - now, 0.0)

    def failed(self, addr: str, secret: str | None, where: str) -> None:
        """Count and log one failure (``where``: the path, for the log)."""
        now = self.clock()
        q = self._recent(addr, now)
        if q is None:
            if len(self._seen) >= MAX_ADDRESSES:
                self._seen.clear()
            q = self._seen[addr] = deque()
        q.append(now)
        if len(q) <= self.limit:
            log.warning(
                "authentication failed from %s on %s (key %s)", addr, where, fingerprint(secret)
            )
        if len(q) == self.limit:
            log.warning(
                "%s failed to authenticate %d times in %gs: refused (429) until the window clears",
                addr,
                self.limit,
                WINDOW,
            )


def retry_after(seconds: float) -> str:
    """The ``retry-after`` header value for a wait (whole seconds, at least 1)."""
    return str(max(1, math.ceil(seconds)))
