"""Attempts on one model's deployments: the choice of deployment, retries with backoff (each
maybe elsewhere), in-flight counts and deployment health, a stream's at its end."""

from __future__ import annotations

import logging

from ..core.exchange import Exchange, Reply
from ..core.pipeline import Next
from ..core.runtime import Runtime
from ..core.streams import StreamOutcome
from ..errors import DragomanError
from ..retry_after import header_value
from ..routing.deployments import (
    CoolingOverloadedError,
    CoolingRateLimitError,
    Deployment,
    choose,
)
from ..routing.models import ModelRoute

log = logging.getLogger("dragoman.retry")


class Retry:
    """A cooling deployment is skipped only while another route exists: another live
    deployment of this model, or (``ex.last_resort`` False) a fallback model, to which this
    one gives way once all its deployments are cooling. The last route is always tried,
    cooling or not, so the caller gets the upstream's own answer (a 429 with its retry-after,
    say), never a made-up one: a cooldown must not make a request fare worse than calling the
    upstream directly."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def __call__(self, ex: Exchange, next: Next) -> Reply:
        rt = self.rt
        route = ex.candidate
        assert route is not None
        conf = rt.config.routing.retries
        retries = 0
        tried: set[int] = set()
        strategy = route.config.strategy
        while True:
            dep = choose(
                route.deployments,
                strategy,
                rt.clock(),
                tried,
                rt.rng,
                last_resort=ex.last_resort,
            )
            if dep is None:
                raise self.all_cooling(route)  # a fallback takes it (stages/fallback.py)
            ex.attempts += 1
            ex.chosen = dep
            try:
                return await self._attempt(ex, dep, next)
            except DragomanError as err:
                err.model, err.deployment = route.name, dep.name
                if err.upstream_status is None and not err.connection_error:
                    raise
                # Health decides what counts: not the client's own 4xx (routing.deployments)
                rt.health.failure(dep, err.upstream_status, err.message, err.retry_after)
                retryable = err.connection_error or err.upstream_status in conf.retry_on
                if retries >= conf.max_retries or not retryable:
                    raise
                tried.add(id(dep))
                now = rt.clock()
                if not ex.last_resort and all(d.cooling(now) for d in route.deployments):
                    raise  # every deployment is cooling down and a fallback can take it now
                elsewhere = any(
                    id(d) not in tried and not d.cooling(now) for d in route.deployments
                )
                # a retry-after speaks for the deployment that sent it, not for the others
                retry_after = None if elsewhere else err.retry_after
                if retry_after is not None and retry_after > conf.max_delay:
                    raise  # the upstream wants more than we may wait: the caller gets retry-after
                delay = self.backoff(retries, retry_after)
                retries += 1
                log.info(
                    "retry %d/%d of %s after %s on %s, in %.2fs",
                    retries,
                    conf.max_retries,
                    route.name,
                    err.upstream_status or "connection error",
                    dep.name,
                    delay,
                )
                await rt.sleep(delay)

    async def _attempt(self, ex: Exchange, dep: Deployment, next: Next) -> Reply:
        """One attempt, counted in flight until its answer is over (a stream: at its end)."""
        dep.inflight += 1
        try:
            reply = await next(ex)
        except BaseException:
            dep.inflight -= 1
            raise
        if reply.stream is None:
            dep.inflight -= 1
            self.rt.health.success(dep, ex.ttfb)
            return reply
        if ex.ttfb is not None:
            # healthy again only once the stream completes: a stream that breaks half-way is a
            # failure, even though its first byte came
            self.rt.health.first_byte(dep, ex.ttfb)
        health = self.rt.health

        async def ended(o: StreamOutcome) -> None:
            dep.inflight -= 1
            if o.error is None:
                health.success(dep, None)
            elif o.status != 499:
                # a stream that broke after it started counts against the deployment's health
                # (like a connection error: towards allowed_fails, not an instant cooldown)
                health.failure(dep, None, f"stream broke: {o.error}", None)

        reply.on_close(ended)
        return reply

    def backoff(self, retry: int, retry_after: float | None) -> float:
        """Delay before retry number ``retry`` (0-based): an upstream's retry-after when given
        (capped at ``max_delay``), else exponential backoff with full jitter:
        ``uniform(0, min(max_delay, base_delay * 2**retry))``."""
        conf = self.rt.config.routing.retries
        cap = conf.max_delay
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, cap)
        return self.rt.rng.uniform(0, min(cap, conf.base_delay * (2**retry)))

    def all_cooling(self, route: ModelRoute) -> DragomanError:
        """Every deployment of ``route`` is cooling down and a fallback model can take the
        request: the error that makes ``fallback`` move on (never the caller's answer while
        another route exists; the last route is tried instead)."""
        now = self.rt.clock()
        wait = min((d.cooldown_until - now for d in route.deployments), default=0.0)
        wait = max(wait, 0.0)
        statuses = {d.last_error.split(":")[0] if d.last_error else "" for d in route.deployments}
        msg = f"every deployment of model {route.name!r} is cooling down; retry in {wait:.1f}s"
        err: DragomanError
        if statuses == {"429"}:
            err = CoolingRateLimitError(msg, retry_after=wait)
        else:
            err = CoolingOverloadedError(msg, retry_after=wait)
        err.headers["retry-after"] = header_value(wait)
        err.model = route.name
        return err
