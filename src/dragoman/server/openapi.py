"""``GET /openapi.json``: the OpenAPI 3.1 document of every endpoint (``static/openapi.yaml``).

Hand-written, so that it says what the gateway promises rather than what a framework infers;
``tests/fuzz/test_schemathesis.py`` holds the live gateway to it (docs/openapi.md).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import orjson
import yaml
from aiohttp import web


@functools.cache
def document() -> dict[str, Any]:
    """The document, parsed once."""
    text = resources.files("dragoman.server").joinpath("static/openapi.yaml").read_text("utf-8")
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


@functools.cache
def _body() -> bytes:
    return orjson.dumps(document())


async def handler(request: web.Request) -> web.StreamResponse:
    return web.Response(body=_body(), content_type="application/json")
