"""Metrics of the LLM endpoints, taken when what the client receives is over (docs/metrics.md).

Labels never carry keys, secrets or anything a client chose freely (``model`` is the configured
model that served, or empty). A request is observed once: a complete answer when it is handed
back, a stream when it ended, broke off or was abandoned by its client (an end hook on the
reply, ``core/streams.py``), so a stream that breaks half-way counts with its failure's status,
not the 200 its headers said, and its latency is the whole answer's. A request refused before
this stage is observed by the gateway (``core/gateway.py``) with the status it was answered with.
``GET /metrics`` is served by ``server/metrics.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prometheus_client import Counter, Histogram

from ..core.exchange import ANTHROPIC, Exchange, Reply
from ..core.pipeline import Next
from ..core.streams import StreamOutcome
from ..errors import DragomanError
from ..protocols.openai import OPENAI_STATUS

REQUESTS = Counter(
    "dragoman_requests_total",
    "Requests answered, by endpoint, front dialect, model and the status the client got "
    "(a stream: 200 when complete, 499 when the client left, else its failure's status)",
    ["endpoint", "dialect", "model", "status", "stream"],
)
ERRORS = Counter(
    "dragoman_errors_total",
    "Errors returned to clients (as a response or as a stream's error event), by type",
    ["type"],
)
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LATENCY = Histogram(
    "dragoman_time_to_response_seconds",
    "Time until the whole response was sent (a stream: until it ended)",
    ["dialect"],
    buckets=_BUCKETS,
)
TTFT = Histogram(
    "dragoman_time_to_first_token_seconds",
    "Streams: time until their first bytes were sent to the client",
    ["dialect"],
    buckets=_BUCKETS,
)

#: labelled children, looked up once (``labels()`` takes a lock and builds tuples each call)
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def count_error(error_type: str) -> None:
    _child(ERRORS, error_type).inc()


class Observation:
    """One request on an LLM endpoint, filled in as it goes and recorded once at its end."""

    __slots__ = (
        "dialect",
        "endpoint",
        "error_type",
        "model",
        "recorded",
        "status",
        "stream",
        "t0",
        "ttft",
    )

    def __init__(self, endpoint: str, dialect: str) -> None:
        self.endpoint = endpoint
        self.dialect = dialect
        self.t0 = time.perf_counter()
        self.model = ""
        self.status = 500
        self.stream = False
        self.ttft: float | None = None
        #: set for a failure the client learnt in-band (an error event in a stream)
        self.error_type: str | None = None
        self.recorded = False

    def failed(self, err: DragomanError) -> None:
        """Record a request answered with ``err`` (once)."""
        self.status = client_status(self.dialect, err.status)
        self.model = err.headers.get("x-dragoman-model") or err.model or self.model
        self.finish()

    def cancelled(self) -> None:
        self.status = 499
        self.finish()

    async def ended(self, o: StreamOutcome) -> None:
        """A stream's end hook: how it really ended, as its client saw it."""
        self.status = client_status(self.dialect, o.status)
        if o.status not in (200, 499) and o.error_type:
            self.error_type = o.error_type
        self.finish()

    def finish(self) -> None:
        """Record the request (once)."""
        if self.recorded:
            return
        self.recorded = True
        stream = "1" if self.stream else "0"
        _child(REQUESTS, self.endpoint, self.dialect, self.model, str(self.status), stream).inc()
        _child(LATENCY, self.dialect).observe(time.perf_counter() - self.t0)
        if self.ttft is not None:
            _child(TTFT, self.dialect).observe(self.ttft)
        if self.error_type is not None:
            count_error(self.error_type)


def client_status(dialect: str, status: int) -> int:
    """The HTTP status a client of ``dialect`` gets for a (canonical) status."""
    return status if dialect == ANTHROPIC else OPENAI_STATUS.get(status, status)


class Observe:
    """Counts each request once, with what its client really received."""

    async def __call__(self, ex: Exchange, next: Next) -> Reply:
        obs = ex.observation
        if obs is None:
            return await next(ex)
        if ex.decision is not None:
            obs.model = ex.decision.route.name
        try:
            reply = await next(ex)
        except DragomanError as err:
            obs.failed(err)
            raise
        except asyncio.CancelledError:
            obs.cancelled()
            raise
        obs.model = reply.headers.get("x-dragoman-model", obs.model)
        obs.status = reply.status
        if reply.stream is None:
            obs.finish()
            return reply
        obs.stream = True
        obs.ttft = ex.ttft
        reply.on_close(obs.ended)
        return reply
