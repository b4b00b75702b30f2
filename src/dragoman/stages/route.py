"""Where a request goes: its body read and checked by its front (after auth), then scenario
rules, aliases and vision (``routing/rules.py``) and the caller's model ACL. A failure further
down is tagged here with what a success says in its headers (model, deployment, attempts)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from ..core.exchange import Exchange, Reply
from ..core.pipeline import Next
from ..core.runtime import Runtime
from ..errors import DragomanError, InvalidRequestError
from ..guard.request import check_request
from ..routing.models import ModelRoute
from ..routing.rules import decide


class Route:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def __call__(self, ex: Exchange, next: Next) -> Reply:
        await self.parse(ex)
        body = ex.body
        ex.stream = bool(body.get("stream"))
        ex.requested_model = body["model"]
        rt = self.rt
        try:
            ex.decision = decide(
                rt.models, rt.config.routing.rules, ex.front, body, ex.input_estimate
            )
            if rt.accountant is not None:
                rt.accountant.check_model_allowed(ex.key, ex.decision.route.name)
            return await next(ex)
        except DragomanError as err:
            tag(err, ex, ex.route or (ex.decision.route if ex.decision else None))
            raise

    async def parse(self, ex: Exchange) -> None:
        """The raw body (when the front left it to read), decoded, then the front's checks."""
        if ex.read is not None:
            ex.body = await _json_body(ex.read)
            ex.read = None
        ex.parsed = True
        if ex.parse is not None:
            ex.body = ex.parse(ex.body)
        # caps, field types, image URLs, model names (docs/security.md; guard/request.py)
        check_request(ex.front, ex.body, self.rt.config.server.request_limits)


async def _json_body(read: Callable[[], Awaitable[bytes]]) -> Any:
    raw = await read()
    if not raw:
        raise InvalidRequestError("request body is empty; expected a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidRequestError(f"request body is not valid JSON: {e}") from None


def tag(err: DragomanError, ex: Exchange, route: ModelRoute | None) -> None:
    """Say on a failed request's error what a success says in its headers (the model and the
    deployment that gave the error, the attempts made), for the server's error response and
    the library's exception alike."""
    err.attempts = ex.attempts
    if err.model is None and route is not None:
        err.model = route.name  # no deployment was tried (images, and no route can take them)
    err.headers.setdefault("x-dragoman-attempts", str(ex.attempts))
    if err.model is not None:
        err.headers.setdefault("x-dragoman-model", err.model)
    if err.deployment is not None:
        err.headers.setdefault("x-dragoman-deployment", err.deployment)
