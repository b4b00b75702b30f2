"""One client request as it moves through the pipeline (``Exchange``), and what comes back
(``Reply``): the typed per-request state every stage reads and writes, never a kwargs dict."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from ..tokens import estimate_anthropic_request_tokens, estimate_openai_request_tokens
from ..usage import Usage
from .streams import Hook, PrimedStream

if TYPE_CHECKING:
    from ..routing.deployments import Deployment
    from ..routing.models import ModelRoute
    from ..routing.rules import Decision
    from ..stages.observe import Observation

ANTHROPIC = "anthropic"
OPENAI = "openai"

#: a hook run before each upstream attempt, once the deployment is chosen (the ledger holds)
AttemptHook = Callable[["Exchange", "ModelRoute", "Deployment"], Awaitable[None]]


@dataclass(slots=True)
class Exchange:
    """The state of one client request: what the front parsed, what the stages decided."""

    #: the client's dialect ("anthropic" | "openai") and the endpoint (metrics label)
    front: str
    endpoint: str
    #: the request body; with ``read`` set, the raw body is read and parsed by the route stage
    #: (after auth: an unauthenticated client learns nothing about its body)
    body: Any
    headers: Mapping[str, str]
    request_id: str
    #: the front's checks (400 naming the field) and conversion (legacy completions -> chat)
    parse: Callable[[Any], Any] | None = None
    read: Callable[[], Awaitable[bytes]] | None = None
    #: who sent it (auth counts failures per address) and on which path
    remote: str | None = None
    path: str = ""
    #: the caller is in-process (the library): there is no client key to check
    trusted: bool = False
    key: Any = None
    authenticated: bool = False
    #: the client's raw query string (``beta=true``), relayed on Anthropic pass-through
    query: str = ""
    stream: bool = False
    requested_model: str = ""
    decision: Decision | None = None
    #: the model ``fallback`` is trying, and the deployment ``retry`` chose for this attempt
    candidate: ModelRoute | None = None
    chosen: Deployment | None = None
    #: the model and deployment of the last attempt sent (the ones that served, on success)
    route: ModelRoute | None = None
    deployment: Deployment | None = None
    #: False while a fallback model may still take the request (a cooling model gives way)
    last_resort: bool = True
    attempts: int = 0
    started: float = field(default_factory=time.perf_counter)
    ttft: float | None = None
    #: upstream time to first byte of the attempt that served a stream
    ttfb: float | None = None
    estimate: int | None = None
    #: an upstream is working on this request (sent, not yet answered): a cancel is charged
    busy: bool = False
    #: usage of a complete (non-streamed) answer; a stream's arrives in its outcome
    usage: Usage | None = None
    hold: Any = None
    settled: bool = False
    #: the body was read and decoded (a refusal from here on writes its usage row)
    parsed: bool = False
    observation: Observation | None = None
    on_attempt: list[AttemptHook] = field(default_factory=list)

    def input_estimate(self) -> int:
        if self.estimate is None:
            body = self.body if isinstance(self.body, dict) else {}
            self.estimate = (
                estimate_anthropic_request_tokens(body)
                if self.front == ANTHROPIC
                else estimate_openai_request_tokens(body)
            )
        return self.estimate


@dataclass(slots=True)
class Reply:
    """What the pipeline answers: a complete body, or a primed stream of SSE bytes, plus headers
    (``x-dragoman-model``, ``x-dragoman-deployment``, ``x-dragoman-attempts``, request ids)."""

    status: int
    headers: dict[str, str]
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body is not None else None

    def on_close(self, hook: Hook) -> None:
        """Register an end hook on a streamed reply (``core/streams.py``)."""
        assert isinstance(self.stream, PrimedStream)
        self.stream.on_close(hook)
