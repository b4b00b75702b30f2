"""The gateway core: each endpoint is a front (how its body is read and checked) -> the pipeline
-> a ``Reply``. The server and the library both call it; ``bootstrap.py`` builds it.

The front's checks run inside the pipeline, after ``auth`` (``stages/route.py``): a client
without a valid key learns nothing about its body. A request refused before the ``ledger`` and
``observe`` stages saw it (a bad body, an unknown model, a key without access) is still written
to the usage log and counted, here, with the status it was answered with.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..dialects.openai import completions
from ..errors import DragomanError
from ..ids import request_id as new_request_id
from ..protocols import anthropic as pa
from ..protocols import openai as po
from ..providers import Provider
from ..providers.detect import Detection
from ..routing.deployments import Health
from ..routing.models import ModelMap
from ..routing.rules import Decision, decide
from ..stages.observe import Observation
from .exchange import ANTHROPIC, OPENAI, Exchange, Reply
from .pipeline import Next
from .runtime import Runtime

if TYPE_CHECKING:
    from ..stages.auth import Auth

#: books for a request refused before the ledger stage: (exchange, status, message)
Refused = Callable[[Exchange, int, str], Awaitable[None]]
Read = Callable[[], Awaitable[bytes]]


def _count_tokens_check(body: Any) -> Any:
    pa.validate_messages_request(body, count_tokens=True)
    return body


def _check(validate: Callable[[Any], None]) -> Callable[[Any], Any]:
    def parse(body: Any) -> Any:
        validate(body)
        return body

    return parse


_MESSAGES = _check(pa.validate_messages_request)
_CHAT = _check(po.validate_chat_request)


class Gateway:
    """Routes, translates, retries and accounts, through the stages ``bootstrap`` ordered."""

    def __init__(
        self,
        rt: Runtime,
        pipeline: Next,
        count: Next,
        *,
        refused: Sequence[Refused] = (),
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
        auth: Auth | None = None,
    ) -> None:
        self.runtime = rt
        #: the pipeline's auth stage, shared with the server's other routes (one key check)
        self.auth = auth
        self._pipeline = pipeline
        self._count = count
        self._refused = tuple(refused)
        self._closers = tuple(closers)

    # -- the endpoints -----------------------------------------------------------------------

    async def messages(
        self,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        read: Read | None = None,
        remote: str | None = None,
        path: str = "",
        request_id: str | None = None,
        query: str = "",
        trusted: bool = False,
    ) -> Reply:
        """An Anthropic Messages request (``POST /v1/messages``)."""
        ex = self._exchange(ANTHROPIC, "messages", body, headers, read, request_id, trusted)
        ex.remote, ex.path = remote, path
        ex.parse, ex.query = _MESSAGES, query
        return await self._run(ex, self._pipeline)

    async def chat(
        self,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        read: Read | None = None,
        remote: str | None = None,
        path: str = "",
        request_id: str | None = None,
        trusted: bool = False,
    ) -> Reply:
        """An OpenAI Chat Completions request (``POST /v1/chat/completions``)."""
        ex = self._exchange(OPENAI, "chat_completions", body, headers, read, request_id, trusted)
        ex.remote, ex.path = remote, path
        ex.parse = _CHAT
        return await self._run(ex, self._pipeline)

    async def completions(
        self,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        read: Read | None = None,
        remote: str | None = None,
        path: str = "",
        request_id: str | None = None,
        trusted: bool = False,
    ) -> Reply:
        """A legacy text completion (``POST /v1/completions``), served through the chat path."""
        ex = self._exchange(OPENAI, "completions", body, headers, read, request_id, trusted)
        ex.remote, ex.path = remote, path
        ex.parse = completions.parse
        return await completions.reply(await self._run(ex, self._pipeline))

    async def count_tokens(
        self,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        read: Read | None = None,
        remote: str | None = None,
        path: str = "",
        request_id: str | None = None,
        query: str = "",
        trusted: bool = False,
    ) -> Reply:
        """``POST /v1/messages/count_tokens``: the upstream's count when it has one."""
        ex = self._exchange(ANTHROPIC, "count_tokens", body, headers, read, request_id, trusted)
        ex.remote, ex.path = remote, path
        ex.parse, ex.query = _count_tokens_check, query
        return await self._run(ex, self._count, books=False)

    def _exchange(
        self,
        front: str,
        endpoint: str,
        body: Any,
        headers: Mapping[str, str] | None,
        read: Read | None,
        request_id: str | None,
        trusted: bool,
    ) -> Exchange:
        ex = Exchange(
            front,
            endpoint,
            body,
            headers or {},
            request_id or new_request_id(),
            read=read,
            trusted=trusted,
            parsed=read is None,
        )
        ex.observation = Observation(endpoint, front)
        return ex

    async def _run(self, ex: Exchange, pipeline: Next, books: bool = True) -> Reply:
        try:
            return await pipeline(ex)
        except DragomanError as err:
            await self._refuse(ex, books, err.status, err.message)
            if ex.observation is not None:
                ex.observation.failed(err)
            raise
        except asyncio.CancelledError:
            await self._refuse(ex, books, 499, "cancelled")
            if ex.observation is not None:
                ex.observation.cancelled()
            raise
        except Exception as exc:
            await self._refuse(ex, books, 500, f"internal error: {type(exc).__name__}")
            if ex.observation is not None:
                ex.observation.status = 500
                ex.observation.finish()
            raise

    async def _refuse(self, ex: Exchange, books: bool, status: int, message: str) -> None:
        if books and ex.authenticated and not ex.settled:
            for refused in self._refused:
                await refused(ex, status, message)

    # -- what the server and the CLI show ----------------------------------------------------

    def list_models(self) -> list[dict[str, Any]]:
        out = []
        for name in self.models.names():
            route = self.models.get(name)
            out.append(
                {
                    "id": name,
                    "display_name": route.config.display_name or name,
                    "max_input_tokens": route.config.context_window,
                    "max_tokens": route.config.max_output_tokens,
                    "owned_by": route.deployments[0].provider.name,
                }
            )
        return out

    def deployment_states(self) -> dict[str, list[dict[str, object]]]:
        now = self.runtime.clock()
        return {
            name: [d.state(now) for d in route.deployments]
            for name, route in self.models.routes.items()
        }

    def explain(self, front: str, body: dict[str, Any]) -> Decision:
        """The routing decision for a request, without sending it (``dragoman route``)."""
        ex = Exchange(front, "explain", body, {}, "explain")
        rt = self.runtime
        return decide(rt.models, rt.config.routing.rules, front, body, ex.input_estimate)

    # -- lifecycle ---------------------------------------------------------------------------

    async def detect_flavors(self) -> dict[str, Detection]:
        return await self.runtime.detect_flavors()

    async def check_providers(self) -> dict[str, tuple[bool, str]]:
        return await self.runtime.check_providers()

    async def close(self) -> None:
        for close in self._closers:
            await close()
        await self.runtime.close()

    # -- the shared state, by name -----------------------------------------------------------

    @property
    def config(self) -> Config:
        return self.runtime.config

    @property
    def models(self) -> ModelMap:
        return self.runtime.models

    @property
    def providers(self) -> dict[str, Provider]:
        return self.runtime.providers

    @property
    def detections(self) -> dict[str, Detection]:
        return self.runtime.detections

    @property
    def provider_health(self) -> dict[str, tuple[bool, str]]:
        return self.runtime.provider_health

    @property
    def health(self) -> Health:
        return self.runtime.health

    @property
    def accountant(self) -> Any:
        return self.runtime.accountant

    @accountant.setter
    def accountant(self, value: Any) -> None:
        self.runtime.accountant = value

    @property
    def clock(self) -> Callable[[], float]:
        return self.runtime.clock

    @property
    def rng(self) -> random.Random:
        return self.runtime.rng

    @rng.setter
    def rng(self, value: random.Random) -> None:
        self.runtime.rng = value
