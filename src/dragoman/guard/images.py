"""Image (and document) URLs in a client's request, in either dialect: each must be a public
http(s) address (``guard.urls``); ``data:`` URLs carry their bytes and stay allowed. Refused
with a 400 in the caller's dialect on every path, pass-through included (audit #18): the
upstream would fetch the URL from where it runs, maybe inside a private network."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import InvalidRequestError
from .urls import url_refusal

ANTHROPIC = "anthropic"


def _anthropic_sources(blocks: Any, loc: str) -> Iterator[tuple[str, Any]]:
    if not isinstance(blocks, list):
        return
    for j, b in enumerate(blocks):
        if not isinstance(b, dict):
            continue
        src = b.get("source")
        if isinstance(src, dict) and src.get("type") == "url":
            yield f"{loc}.{j}.source.url", src.get("url")
        if b.get("type") == "tool_result":
            yield from _anthropic_sources(b.get("content"), f"{loc}.{j}.content")


def _openai_urls(parts: Any, loc: str) -> Iterator[tuple[str, Any]]:
    if not isinstance(parts, list):
        return
    for j, p in enumerate(parts):
        if not isinstance(p, dict):
            continue
        t = p.get("type")
        if t == "image_url":
            iu = p.get("image_url")
            yield f"{loc}[{j}].image_url.url", iu.get("url") if isinstance(iu, dict) else iu
        elif t == "input_image":
            yield f"{loc}[{j}].image_url", p.get("image_url")
        elif t == "file":
            f = p.get("file")
            if isinstance(f, dict) and "file_url" in f:
                yield f"{loc}[{j}].file.file_url", f.get("file_url")


def client_urls(front: str, body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(location, url) of every URL in ``body`` that an upstream would fetch."""
    msgs = body.get("messages")
    for i, m in enumerate(msgs if isinstance(msgs, list) else ()):
        if not isinstance(m, dict):
            continue
        if front == ANTHROPIC:
            yield from _anthropic_sources(m.get("content"), f"messages.{i}.content")
        else:
            yield from _openai_urls(m.get("content"), f"messages[{i}].content")


def refusal(url: Any) -> str | None:
    """Why a client's image URL is refused; None for a public http(s) or a ``data:`` URL."""
    if not isinstance(url, str):
        return None  # a missing or mistyped URL is the shape check's to name
    if url[:5].lower() == "data:":
        return None
    return url_refusal(url)


def check_image_urls(front: str, body: dict[str, Any]) -> None:
    for loc, url in client_urls(front, body):
        why = refusal(url)
        if why is not None:
            raise InvalidRequestError(
                f"{loc}: this gateway fetches no URL for a client that is not a public http(s) "
                f"address ({why}); send the image inline (base64)",
                param=loc,
                code="invalid_image_url",
            )
