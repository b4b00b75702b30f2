"""Model-level fallbacks: when a model fails with an upstream's error (or all its deployments
are cooling), the request moves on to its fallbacks: plain, on context overflow, or on a
content-policy refusal; a request with images never goes to a model without vision."""

from __future__ import annotations

import logging

from ..accounting.allowed import allowed, may_use
from ..core.exchange import Exchange, Reply
from ..core.pipeline import Next
from ..core.runtime import Runtime
from ..errors import ContextOverflow, DragomanError, InvalidRequestError, UpstreamRefusal
from ..routing.deployments import COOLING_ERRORS
from ..routing.models import ModelRoute

log = logging.getLogger("dragoman.fallback")


class Fallback:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def __call__(self, ex: Exchange, next: Next) -> Reply:
        assert ex.decision is not None
        first = ex.decision.route
        queue = [first]
        tried: set[str] = set()
        last: DragomanError | None = None
        images = ex.decision.has_images
        while queue:
            wanted = queue.pop(0)
            route = self.usable(wanted, images)
            if route is None:
                # a fallback must not forward images to a text-only model
                log.info("fallback %s skipped: the request carries images", wanted.name)
                continue
            if route.name in tried:
                continue
            acct = self.rt.accountant
            if not may_use(acct, ex.key, route.name, fallback=wanted is not first):
                continue  # a fallback the key may not use (docs/accounting.md)
            tried.add(route.name)
            ex.candidate = route
            # a cooling model gives way only to another route; the last route is always tried
            ex.last_resort = not self._another_route(route, queue, tried, ex)
            try:
                return await next(ex)
            except DragomanError as err:
                cooling = isinstance(err, COOLING_ERRORS)
                if err.upstream_status is None and not err.connection_error and not cooling:
                    raise  # our own refusal (validation, budget, vision): no fallback helps
                last = err
                names = route.config.fallbacks
                if is_context_overflow(err) and route.config.context_window_fallbacks:
                    names = route.config.context_window_fallbacks
                elif is_content_refusal(err) and route.config.content_policy_fallbacks:
                    names = route.config.content_policy_fallbacks
                nxt = [self.rt.models.get(n) for n in names]
                if nxt:
                    log.info(
                        "model %s failed (%s %s); falling back to %s",
                        route.name,
                        err.status,
                        err.message[:120],
                        [r.name for r in nxt],
                    )
                queue = nxt + queue
        if last is None:  # every candidate was skipped (images and no vision route)
            raise InvalidRequestError(
                f"model {first.name!r} cannot take images and no fallback can", param="messages"
            )
        raise last

    def usable(self, route: ModelRoute, images: bool) -> ModelRoute | None:
        """The model that serves a request meant for ``route``: itself, or its vision model
        when the request carries images and it has no vision; None when neither can."""
        if not images or route.vision:
            return route
        vm = route.config.vision_model
        vroute = self.rt.models.get(vm) if vm else None
        return vroute if vroute is not None and vroute.vision else None

    def _another_route(
        self, route: ModelRoute, queue: list[ModelRoute], tried: set[str], ex: Exchange
    ) -> bool:
        """Whether a model other than ``route`` could still take the request if it gave way:
        one of its fallbacks, or a model already waiting in the queue (that the key may use)."""
        images = ex.decision is not None and ex.decision.has_images
        for nxt in [self.rt.models.get(n) for n in route.config.fallbacks] + queue:
            usable = self.usable(nxt, images)
            if (
                usable is not None
                and usable.name not in tried
                and usable is not route
                and allowed(self.rt.accountant, ex.key, usable.name)
            ):
                return True
        return False


def is_context_overflow(err: DragomanError) -> bool:
    return isinstance(err, ContextOverflow)  # typed where classified (upstream/classify.py)


def is_content_refusal(err: DragomanError) -> bool:
    return isinstance(err, UpstreamRefusal)
