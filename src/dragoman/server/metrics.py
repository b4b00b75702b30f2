"""``GET /metrics`` (Prometheus, docs/metrics.md); the metrics are taken by the observe stage
(``stages/observe.py``) and, for error responses, by the server's error middleware."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..stages.observe import count_error

__all__ = ["count_error", "handler"]


async def handler(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest())
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return resp
