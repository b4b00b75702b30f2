"""A tiny synchronous HTTP client (stdlib only) for raw wire assertions in tests."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from ..fakes.sse import SSEEvent, parse_sse


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def events(self) -> list[SSEEvent]:
        return parse_sse(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def request(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> RawResponse:
    """Send one request; ``body`` may be bytes or JSON-able. Reads the whole response."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    data: bytes | None
    hdrs = dict(headers or {})
    if body is None or isinstance(body, bytes):
        data = body
    else:
        data = orjson.dumps(body)
        hdrs.setdefault("content-type", "application/json")
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        return RawResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw)
    finally:
        conn.close()


def post(url: str, body: Any, headers: dict[str, str] | None = None, **kw: Any) -> RawResponse:
    return request("POST", url, body, headers, **kw)


def get(url: str, headers: dict[str, str] | None = None, **kw: Any) -> RawResponse:
    return request("GET", url, None, headers, **kw)
