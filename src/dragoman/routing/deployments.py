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
    """Every deployment of a model is cooling down after 429s (answered as 429 + retry-after)."""


class CoolingOverloadedError(OverloadedError):
    """Every deployment of a model is cooling down (answered as 529 + retry-after)."""


#: errors that mean "this model cannot be tried right now": a fallback model may still help
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

        A 429/529 cools the deployment down at once (for the upstream's retry-after when that
        is longer than the configured cooldown); other failures (connection errors, 5xx...)
        cool it down when ``allowed_fails`` of them fall within ``window`` seconds.
        """
        now = self.clock()
        d.last_error = f"{status if status is not None else 'connection'}: {message[:200]}"
        window = self.cfg.window
        d.failures.append(now)
        while d.failures and d.failures[0] < now - window:
            d.failures.popleft()
        if status in (429, 529):
            d.cooldown_until = now + max(retry_after or 0.0, self.cfg.cooldown)
            d.failures.clear()
        elif len(d.failures) >= self.cfg.allowed_fails:
            d.cooldown_until = now + self.cfg.cooldown
            d.failures.clear()


def choose(
    deployments: list[Deployment],
    strategy: str,
    now: float,
    exclude: set[int] | None = None,
    rng: random.Random | None = None,
) -> Deployment | None:
    """Pick a deployment that is not cooling down (and not excluded, if others remain)."""
    live = [d for d in deployments if not d.cooling(now)]
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
