"""Prometheus metrics (``GET /metrics``, docs/metrics.md). Labels never carry keys, secrets or
anything a client chose freely (``model`` is the configured model that served, or empty).

A request is observed once, when what the client receives is over: the response sent, the
stream ended, broken off or abandoned by its client (``Observation.finish``, called by the
handler wrapper in ``server/app.py``). So a stream that breaks half-way counts with its failure's
status, not the 200 its headers said, and its latency is the whole answer's.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

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

    def first_bytes(self) -> None:
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.t0

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


async def handler(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest())
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return resp
