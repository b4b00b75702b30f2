"""Deployments of a model, their live state, and the strategies that choose between them."""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import CooldownConfig, DeploymentConfig, Prices
from ..errors import OverloadedError, RateLimitError
from ..providers import Provider


class CoolingRateLimitError(RateLimitError):
    """Every deployment of a model is cooling down after 429s, and another route exists."""


class CoolingOverloadedError(OverloadedError):
    """Every deployment of a model is cooling down, and another route exists."""


#: "this model is skipped for now": raised only when another route (a fallback model) can take
#: the request, which it then does; the last route is always tried instead (stages/retry.py)
COOLING_ERRORS = (CoolingRateLimitError, CoolingOverloadedError)


@dataclass(eq=False)
class Deployment:
    """One place a model is served: a provider plus the upstream model id there."""

    name: str
    provider: Provider
    upstream_model: str
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    prices: Prices | None = None
    # live state (per process; shared state is the job of state/)
    inflight: int = 0
    latency_ewma: float | None = None
    failures: deque[float] = field(default_factory=deque)
    cooldown_until: float = 0.0
    last_error: str | None = None

    @classmethod
    def from_config(
        cls, model: str, index: int, cfg: DeploymentConfig, provider: Provider
    ) -> Deployment:
        return cls(
            name=cfg.name or f"{model}/{cfg.provider}" + (f"#{index}" if index else ""),
            provider=provider,
            upstream_model=cfg.model or model,
            weight=cfg.weight,
            rpm=cfg.rpm,
            tpm=cfg.tpm,
            prices=cfg.prices,
        )

    def cooling(self, now: float) -> bool:
        return now < self.cooldown_until

    def state(self, now: float) -> dict[str, object]:
        return {
            "name": self.name,
            "provider": self.provider.name,
            "model": self.upstream_model,
            "state": "cooldown" if self.cooling(now) else "ok",
            "cooldown_remaining_s": round(max(self.cooldown_until - now, 0.0), 3),
            "inflight": self.inflight,
            "latency_ewma_ms": None
            if self.latency_ewma is None
            else round(self.latency_ewma * 1000, 2),
            "recent_failures": len(self.failures),
            "last_error": self.last_error,
        }


#: upstream statuses that cool a deployment down at once (for their retry-after)
RATE_LIMITED = frozenset({429, 529})


def speaks_for_health(status: int | None) -> bool:
    """Whether a failure says something about the deployment rather than about the request.

    ``None`` (no HTTP status: refused, reset, timed out, a stream that broke), 408, 429, 529 and
    any 5xx do. The client's own 4xx (400, 404, 409, 413, 422, a refusal) do not: one caller's
    bad request must not take a deployment away from everybody else (audit #33). 401 and 403 do
    count: the client's key was already accepted by dragoman, so they say the *provider*
    credentials are wrong, and that deployment will keep failing for every caller.
    """
    if status is None:
        return True
    return status >= 500 or status in (401, 403, 408) or status in RATE_LIMITED


class Health:
    """Failure bookkeeping: N failures in a window, or a 429/529, cool a deployment down."""

    def __init__(self, cfg: CooldownConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock

    def first_byte(self, d: Deployment, ttfb: float) -> None:
        """The upstream answered (moving average of time to first byte, for lowest_latency)."""
        d.latency_ewma = ttfb if d.latency_ewma is None else 0.8 * d.latency_ewma + 0.2 * ttfb

    def success(self, d: Deployment, ttfb: float | None) -> None:
        """A complete answer: the deployment is healthy again."""
        if ttfb is not None:
            self.first_byte(d, ttfb)
        d.failures.clear()
        d.cooldown_until = 0.0  # it answered: whatever cooled it down is over

    def failure(
        self, d: Deployment, status: int | None, message: str, retry_after: float | None
    ) -> None:
        """Record a failure; ``status`` None means the connection failed (no HTTP status).

        A 429/529 cools the deployment down at once: for the upstream's retry-after when it sent
        one (already capped by ``retry_after.parse_retry_after``), else for ``cooldown``. Other
        failures that speak for the deployment's health (``speaks_for_health``) cool it down for
        ``cooldown`` when ``allowed_fails`` of them fall within ``window`` seconds; the rest
        (the client's own 4xx) are not counted at all.
        """
        if not speaks_for_health(status):
            return
        now = self.clock()
        d.last_error = f"{status if status is not None else 'connection'}: {message[:200]}"
        if status in RATE_LIMITED:
            wait = self.cfg.cooldown if retry_after is None else retry_after
            d.cooldown_until = now + min(wait, self.cfg.max_retry_after)
            d.failures.clear()
            return
        d.failures.append(now)
        while d.failures and d.failures[0] < now - self.cfg.window:
            d.failures.popleft()
        if len(d.failures) >= self.cfg.allowed_fails:
            d.cooldown_until = now + self.cfg.cooldown
            d.failures.clear()


def choose(
    deployments: list[Deployment],
    strategy: str,
    now: float,
    exclude: set[int] | None = None,
    rng: random.Random | None = None,
    *,
    last_resort: bool = False,
) -> Deployment | None:
    """Pick a deployment that is not cooling down (and not excluded, if others remain).

    None when every deployment is cooling down, unless ``last_resort`` (no other route can take
    the request): then a cooling deployment is still better than a made-up error, and the one
    whose cooldown ends first is tried (preferring one not excluded).
    """
    live = [d for d in deployments if not d.cooling(now)]
    if not live and last_resort and deployments:
        pool = [d for d in deployments if not exclude or id(d) not in exclude] or deployments
        return min(pool, key=lambda d: d.cooldown_until)
    if exclude:
        fresh = [d for d in live if id(d) not in exclude]
        live = fresh or live
    if not live:
        return None
    if len(live) == 1:
        return live[0]
    if strategy == "least_inflight":
        low = min(d.inflight for d in live)
        live = [d for d in live if d.inflight == low]
    elif strategy == "lowest_latency":
        unknown = [d for d in live if d.latency_ewma is None]
        if unknown:
            live = unknown  # measure everyone once
        else:
            best = min(d.latency_ewma or 0.0 for d in live)
            live = [d for d in live if (d.latency_ewma or 0.0) <= best * 1.05]
    r = rng or random
    total = sum(max(d.weight, 0.0) for d in live)
    if total <= 0:
        return r.choice(live)
    x = r.uniform(0, total)
    for d in live:
        x -= max(d.weight, 0.0)
        if x <= 0:
            return d
    return live[-1]
