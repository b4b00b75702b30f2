"""Prometheus metrics (``GET /metrics``). Labels never carry keys or secrets."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

if TYPE_CHECKING:
    from ..engine import Result

REQUESTS = Counter(
    "dragoman_requests_total",
    "Requests answered, by front dialect, model and status",
    ["dialect", "model", "status", "stream"],
)
ERRORS = Counter("dragoman_errors_total", "Errors returned to clients, by type", ["type"])
LATENCY = Histogram(
    "dragoman_time_to_response_seconds",
    "Time until the response (or the first stream byte) was ready",
    ["dialect"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


#: labelled children, looked up once (``labels()`` takes a lock and builds tuples each call)
_requests: dict[tuple[str, str, int, bool], Any] = {}
_latency: dict[str, Any] = {}


def observe(dialect: str, result: Result, t0: float) -> None:
    model = result.headers.get("x-dragoman-model", "")
    key = (dialect, model, result.status, result.stream is not None)
    child = _requests.get(key)
    if child is None:
        child = _requests[key] = REQUESTS.labels(
            dialect, model, str(result.status), "1" if result.stream is not None else "0"
        )
    child.inc()
    lat = _latency.get(dialect)
    if lat is None:
        lat = _latency[dialect] = LATENCY.labels(dialect)
    lat.observe(time.perf_counter() - t0)


async def handler(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest())
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return resp
