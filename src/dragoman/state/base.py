"""The one interface every counter shared between gateway processes goes through (docs/limits.md).

Two implementations: ``MemoryState`` (one process, the embedded default) and ``RedisState``
(``state.url``: many processes). Both keep the same semantics, tested side by side:

* ``admit``: every limit of a request (key, team, model, global, deployment...) checked and
  counted at once, all or nothing: a request refused by one limit is counted by none. ``rpm`` is
  an exact sliding log (at most N admissions in any half-open 60-second window ``(t-60, t]``),
  ``tpm`` admits on the request's token estimate, ``concurrency`` takes a lease that ``settle``
  returns and that expires ``lease_ttl`` after its holder stops renewing it (a dead process).
* ``settle``: the request is over: its tokens are corrected to what it really used (kept at its
  admission instant, so the window stays exact), its leases are returned. Never awaited on the
  request's path.
* deployment health (cooldowns, failure counts), the key-change signal, and bytes with a TTL for
  the response cache.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

log = logging.getLogger("dragoman.state")

#: the rate-limit window, in seconds ("per minute")
WINDOW = 60.0
#: what a client refused by a concurrency limit is told to wait (a stream ends when it ends)
CONCURRENCY_RETRY = 1.0

STATE_ERRORS = Counter(
    "dragoman_state_errors_total",
    "Calls to the shared state (state.url) that failed, by operation; limits then fail open "
    "or closed as state.on_error says",
    ["op"],
)
STATE_UP = Gauge(
    "dragoman_state_up", "1 while the shared state answers, 0 during an outage (state.url)"
)


@dataclass(frozen=True, slots=True)
class Limit:
    """The limits of one counter that a request must pass (None: that dimension is not limited).

    ``counter`` names what is counted, scope first (``k:<key id>``, ``t:<team>``, ``m:<model>``,
    ``g``, ``s:<sender>``, ``d:<deployment>``): the same name in every process.
    """

    counter: str
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    #: what the client is told refused it ("key ci", "model claude-sonnet-4-5")
    label: str = ""

    @property
    def logged(self) -> bool:
        """Whether admissions are kept in the sliding log (needed for rpm and tpm)."""
        return self.rpm is not None or self.tpm is not None


@dataclass(slots=True)
class Quota:
    """What a rate-limit header tells: the limit, what is left (counting the request being
    answered when it was admitted), and seconds until the window is empty again."""

    limit: int
    remaining: int
    reset: float


@dataclass(slots=True)
class Check:
    """One limit as the state saw it, before the request was counted."""

    limit: Limit
    ok: bool
    #: admissions in the window, tokens in the window, leases held
    requests: int
    tokens: int
    inflight: int
    #: seconds until the newest admission in the window leaves it (0: the window is empty)
    reset: float
    #: refused: seconds until this limit could admit the request; None: never (tokens > tpm)
    retry_after: float | None


@dataclass(eq=False, slots=True, weakref_slot=True)
class Ticket:
    """An admitted request's hold on its counters, returned once by ``settle``."""

    member: str
    limits: tuple[Limit, ...]
    tokens: int
    settled: bool = False

    @property
    def leases(self) -> tuple[Limit, ...]:
        return tuple(lim for lim in self.limits if lim.concurrency is not None)


@dataclass(slots=True)
class Admission:
    """The answer to ``admit``: admitted or not, and what the response headers need."""

    admitted: bool
    #: index of the group admitted (``admit`` tries its groups in order); -1 when refused
    group: int = -1
    #: every limit checked, group by group (groups after the admitted one are not checked)
    checks: tuple[tuple[Check, ...], ...] = ()
    #: tokens the request was admitted on
    tokens: int = 0
    ticket: Ticket | None = None
    #: refused: seconds until the request could be admitted; None with ``never`` or no limits
    retry_after: float | None = None
    #: refused for good: its token estimate alone is over a tpm limit
    never: bool = False
    #: the state was unreachable: admitted anyway (``on_error: open``) / refused (``closed``)
    degraded: bool = False
    unavailable: bool = False
    #: the checks that refused the request (empty when admitted)
    refused_by: tuple[Check, ...] = field(default=())

    @property
    def limited(self) -> bool:
        """Whether any limit applied (what decides if rate-limit headers are sent at all)."""
        return any(self.checks)


def verdict(
    groups: Sequence[Sequence[Check]], tokens: int, ticket_for: Callable[[int], Ticket]
) -> Admission:
    """Build the ``Admission`` from the checks of each group tried (shared by both states).

    The first group whose checks all passed is the one admitted (the state has counted it); a
    refusal waits for the soonest group to clear: each group for its slowest limit.
    """
    for i, checks in enumerate(groups):
        if all(c.ok for c in checks):
            return Admission(True, i, tuple(tuple(g) for g in groups), tokens, ticket_for(i), None)
    waits: list[float] = []
    never = True
    refused: list[Check] = []
    for checks in groups:
        bad = [c for c in checks if not c.ok]
        refused.extend(bad)
        if any(c.retry_after is None for c in bad):
            continue  # this group can never take the request
        never = False
        waits.append(max(c.retry_after or 0.0 for c in bad))
    return Admission(
        False,
        -1,
        tuple(tuple(g) for g in groups),
        tokens,
        None,
        min(waits) if waits else None,
        never=never and bool(groups),
        refused_by=tuple(refused),
    )


HealthListener = Callable[[str, float, int, str | None], None]
"""``(deployment, cooldown seconds left (0: not cooling), failures counted, last error)``."""

KeyListener = Callable[[str | None], None]
"""Called with a key id that changed (revoked, edited), or None: forget every cached key."""


class _Outage:
    """Logs an outage once when it starts and once when it ends; counts every failed call."""

    def __init__(self, policy: str) -> None:
        self.policy = policy
        self.down = False
        self.since = 0.0
        STATE_UP.set(1)

    def failed(self, op: str, err: BaseException) -> None:
        STATE_ERRORS.labels(op).inc()
        if not self.down:
            self.down, self.since = True, time.monotonic()
            STATE_UP.set(0)
            log.warning(
                "shared state unreachable (%s: %s): rate limits fail %s until it is back "
                "(state.on_error)",
                type(err).__name__,
                err,
                self.policy,
            )

    def ok(self) -> None:
        if self.down:
            self.down = False
            STATE_UP.set(1)
            log.warning(
                "shared state reachable again after %.1fs: rate limits apply again",
                time.monotonic() - self.since,
            )


class State(ABC):
    """Counters shared by every gateway process (or kept in this one). See the module doc."""

    #: fail ``open`` (admit) or ``closed`` (refuse) when the state cannot be reached
    on_error: str = "open"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:  # noqa: B027 - optional for implementations
        """Start background work (lease renewal, the change listener)."""

    async def close(self) -> None:  # noqa: B027
        """Stop background work and let go of connections."""

    async def drain(self) -> None:  # noqa: B027
        """Wait until every ``settle`` so far has reached the state (tests, shutdown)."""

    # -- rate limits -------------------------------------------------------------------------

    @abstractmethod
    async def admit(self, groups: Sequence[Sequence[Limit]], tokens: int = 0) -> Admission:
        """Count the request on the first group whose limits all have room (all or nothing).

        One group is the usual case (a request's key, team, model and global limits); several
        are alternatives (deployments of a model, in the order the strategy prefers them).
        """

    @abstractmethod
    def settle(self, ticket: Ticket, tokens: int | None = None) -> None:
        """The request is over: correct its tokens to ``tokens`` (None: keep the estimate) and
        return its concurrency leases. Idempotent, never blocks: safe in a stream's close hook.
        """

    # -- deployment health -------------------------------------------------------------------

    @abstractmethod
    async def cool(self, deployment: str, seconds: float, reason: str) -> None:
        """Cool a deployment down for ``seconds`` in every process (an upstream 429/529)."""

    @abstractmethod
    async def failure(
        self, deployment: str, *, window: float, allowed_fails: int, cooldown: float, reason: str
    ) -> float:
        """Count a failure; ``allowed_fails`` within ``window`` seconds (summed over every
        process) cool the deployment for ``cooldown``. Returns the cooldown set (0: none)."""

    @abstractmethod
    async def recover(self, deployment: str) -> None:
        """A complete answer: forget the failures and the cooldown everywhere. Costs no I/O
        unless this process knows of failures or a cooldown to clear."""

    @abstractmethod
    def cooldown(self, deployment: str) -> float:
        """Seconds this deployment still cools down, from this process's mirror (no I/O)."""

    @abstractmethod
    def on_health(self, listener: HealthListener) -> None:
        """Call ``listener`` whenever a deployment's health changes (here or elsewhere)."""

    # -- keys --------------------------------------------------------------------------------

    @abstractmethod
    async def key_changed(self, key_id: str) -> None:
        """Tell every process (within a second) that this key changed: drop it from caches."""

    @abstractmethod
    def on_key_change(self, listener: KeyListener) -> None:
        """Call ``listener`` with each changed key id (None: every key may have changed)."""

    # -- bytes (the response cache) ----------------------------------------------------------

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The bytes stored under ``key``, or None (absent, expired, or the state is down)."""

    @abstractmethod
    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (best effort: an outage loses it silently)."""
