"""The router's two SyftBox apps over one gateway: the seed's form and syft-hub's.

* ``routers/<app_name>`` (the syft-llm-router Claude example): ``/chat`` takes
  ``{model, messages, options?, accounting_token}``, ``/completions`` ``{model, prompt,
  options?}``, ``/ping`` answers ``pong``. Replies are snake_case; errors travel in-band, as the
  seed's did: SyftStatus 200 with ``{"code", "message", "data"}``; a body that does not fit the
  schema is a SyftStatus 400 (``Invalid request schema: ...``).
* ``<app_name>`` (syft-hub): ``/chat`` (POST) takes ``{user_email, model, messages, options?,
  transaction_token?}`` and answers camelCase with ``cost``; ``/health`` (GET). Errors carry
  their status and ``{"detail": ...}``; a body that does not fit the schema is a 422.

Payment (``/chat`` only, when ``price_per_request`` > 0) is created before the model is called,
confirmed after it answered, cancelled when it did not (``accounting.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from syft_event import Request
from syft_rpc.protocol import SyftRequest

from ..errors import DragomanError
from . import convert
from .accounting import Accounting, PaymentError
from .rpc import Answer, App, Route
from .schemas import (
    ChatRequest,
    ChatResponse,
    CompletionRequest,
    CompletionResponse,
    FreeChatRequest,
    HealthResponse,
    HubChatRequest,
    HubChatResponse,
    RouterError,
)
from .seam import Caller, ChatResult, Gateway

JSON = {"Content-Type": "application/json"}

#: how long a shutdown or an expiry waits for a cancellation to reach the accounting service
#: (it carries on in the background after that)
CANCEL_WAIT = 0.2


# -- what rpc.schema.json publishes (syft-event reads these signatures) -----------------------


def paid_chat(request: ChatRequest, ctx: Request) -> ChatResponse | RouterError:
    """Chat with the router's models; ``accounting_token`` pays for the request."""
    raise NotImplementedError  # documentation only: RpcServer dispatches


def free_chat(request: FreeChatRequest, ctx: Request) -> ChatResponse | RouterError:
    """Chat with the router's models (free: no ``accounting_token`` needed)."""
    raise NotImplementedError


def completions(request: CompletionRequest, ctx: Request) -> CompletionResponse | RouterError:
    """Complete a prompt (served as one user message; free)."""
    raise NotImplementedError


def ping(ctx: Request) -> str:
    """Answers ``pong``."""
    raise NotImplementedError


def hub_chat(request: HubChatRequest, ctx: Request) -> HubChatResponse:
    """Chat with the router's models (POST); ``transaction_token`` pays when priced."""
    raise NotImplementedError


def health(ctx: Request) -> HealthResponse:
    """The router's status (GET)."""
    raise NotImplementedError


# -- the endpoints ----------------------------------------------------------------------------


def _json(model: BaseModel, *, status: int = 200, camel: bool = False) -> Answer:
    return Answer(model.model_dump_json(by_alias=camel).encode(), status, dict(JSON))


def _legacy_error(status: int, message: str) -> Answer:
    """The transport's own errors on the legacy app: a text body, as syft-event writes them."""
    return Answer(message.encode(), status)


def _hub_error(status: int, message: str) -> Answer:
    return Answer(orjson.dumps({"detail": message}), status, dict(JSON))


def _info(result: ChatResult) -> dict[str, Any]:
    info: dict[str, Any] = {"model": result.model}
    if result.request_id:
        info["request_id"] = result.request_id
    return info


class Router:
    """The endpoints of both apps, over one gateway and one accounting account."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        app_name: str,
        price: float,
        accounting: Accounting | None,
    ) -> None:
        if price > 0 and accounting is None:
            raise ValueError("a priced router needs an accounting account")
        self.gateway = gateway
        self.app_name = app_name
        self.legacy_name = f"routers/{app_name}"
        self.price = price
        self.accounting = accounting
        self._chat_model: type[ChatRequest] | type[FreeChatRequest] = (
            ChatRequest if price > 0 else FreeChatRequest
        )
        #: cancellations of transactions created after their request was abandoned
        self._background: set[asyncio.Task[None]] = set()

    def apps(self) -> list[App]:
        legacy = App(
            self.legacy_name,
            {
                "/chat": Route(self.legacy_chat, paid_chat if self.price > 0 else free_chat),
                "/completions": Route(self.legacy_completions, completions),
                "/ping": Route(self.ping, ping),
            },
            _legacy_error,
        )
        hub = App(
            self.app_name,
            {"/chat": Route(self.hub_chat, hub_chat), "/health": Route(self.health, health)},
            _hub_error,
        )
        return [legacy, hub]

    # -- payment ---------------------------------------------------------------------------

    async def _chat(
        self, body: dict[str, Any], caller: Caller, token: str | None, *, paid: bool
    ) -> tuple[ChatResult, float]:
        """The gateway's answer and what it cost: paid exactly once, or not at all."""
        if not paid or self.price <= 0:
            return await self.gateway.chat(body, caller), 0.0
        acct = self.accounting
        assert acct is not None and caller.payer is not None
        if not token:
            raise PaymentError(
                f"a transaction token is needed: this router charges {self.price:g} per request"
            )
        creating = asyncio.ensure_future(
            acct.create(
                payer=caller.payer, token=token, amount=self.price, endpoint=caller.endpoint
            )
        )
        try:
            tx = await asyncio.shield(creating)
        except asyncio.CancelledError:  # the service may still create it: cancel it then
            creating.add_done_callback(self._cancel_created)
            raise
        caller = dataclasses.replace(caller, transaction_id=tx, transaction_token=token)
        try:
            result = await self.gateway.chat(body, caller)
        except asyncio.CancelledError:  # shutdown or expiry: cancel, without waiting long
            await acct.cancel_soon(tx, CANCEL_WAIT)
            raise
        except BaseException:
            await acct.cancel(tx)
            raise
        try:
            await _uninterrupted(acct.confirm(tx))
        except DragomanError:
            # not confirmed (refused, or the service is down): no charge, and no answer either
            await acct.cancel(tx)
            raise
        return result, self.price

    def _cancel_created(self, creating: asyncio.Future[str]) -> None:
        if creating.cancelled() or creating.exception() is not None or self.accounting is None:
            return
        task = asyncio.ensure_future(self.accounting.cancel(creating.result()))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- legacy app ------------------------------------------------------------------------

    async def legacy_chat(self, req: SyftRequest, sender: str) -> Answer:
        try:
            parsed = self._chat_model.model_validate_json(req.body or b"")
        except ValidationError as e:
            return _legacy_error(400, f"Invalid request schema: {e}")
        caller = Caller(
            sender, self.legacy_name, "/chat", str(req.id), payer=sender, price=self.price
        )
        body = convert.chat_request(parsed.model, parsed.messages, parsed.options)
        try:
            result, _ = await self._chat(body, caller, parsed.accounting_token, paid=True)
        except DragomanError as e:
            return _json(convert.router_error(e))
        return _json(convert.chat_response(result.body, model=parsed.model, info=_info(result)))

    async def legacy_completions(self, req: SyftRequest, sender: str) -> Answer:
        try:
            parsed = CompletionRequest.model_validate_json(req.body or b"")
        except ValidationError as e:
            return _legacy_error(400, f"Invalid request schema: {e}")
        caller = Caller(sender, self.legacy_name, "/completions", str(req.id))
        body = convert.completion_request(parsed.model, parsed.prompt, parsed.options)
        try:
            result, _ = await self._chat(body, caller, None, paid=False)
        except DragomanError as e:
            return _json(convert.router_error(e))
        return _json(
            convert.completion_response(result.body, model=parsed.model, info=_info(result))
        )

    async def ping(self, req: SyftRequest, sender: str) -> Answer:
        return Answer(b"pong")

    # -- syft-hub app ----------------------------------------------------------------------

    async def hub_chat(self, req: SyftRequest, sender: str) -> Answer:
        if req.method.value != "POST":
            return _hub_error(405, "Method Not Allowed")
        try:
            parsed = HubChatRequest.model_validate_json(req.body or b"")
        except ValidationError as e:
            detail = orjson.loads(e.json(include_url=False, include_input=False))
            return Answer(orjson.dumps({"detail": detail}), 422, dict(JSON))
        caller = Caller(
            sender,
            self.app_name,
            "/chat",
            str(req.id),
            payer=str(parsed.user_email),
            price=self.price,
        )
        body = convert.chat_request(parsed.model, parsed.messages, parsed.options)
        try:
            result, cost = await self._chat(body, caller, parsed.transaction_token, paid=True)
        except DragomanError as e:
            return Answer(
                orjson.dumps(convert.hub_error(e)), convert.syft_status(e.status), dict(JSON)
            )
        reply = convert.hub_chat_response(result.body, model=result.model, cost=cost)
        return _json(reply, camel=True)

    async def health(self, req: SyftRequest, sender: str) -> Answer:
        if req.method.value not in ("GET", "HEAD"):
            return _hub_error(405, "Method Not Allowed")
        reply = HealthResponse(
            status="healthy", project_name=self.app_name, services={"chat": "available"}
        )
        return _json(reply, camel=True)


async def _uninterrupted(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to its end even if this task is cancelled meanwhile (a stop, an expiry):
    once the payment is being confirmed, the caller is owed the answer, so the cancellation is
    withdrawn and the answer goes out."""
    fut = asyncio.ensure_future(coro)
    while True:
        try:
            await asyncio.shield(fut)
            return
        except asyncio.CancelledError:
            if fut.cancelled():
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
