"""Helpers for the Responses translator tests: a fixed-key sealer, chunk builders, a runner
that feeds chunks and checks the stream with the strict grammar checker and the SDK."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.conformance.responses_sse_checks import (
    CheckedResponse,
    check_responses_sse,
    validate_with_sdk,
)

from dragoman.sealing import Sealer
from dragoman.translate.responses import ChatToResponsesStream, ResponsesContext, responses_to_chat

SEALER = Sealer(bytes(range(32)))
CREATED = 1_760_000_000


def ctx_for(body: dict[str, Any] | None = None, **kw: Any) -> ResponsesContext:
    b: dict[str, Any] = {"model": "qwen3-coder", "input": "hi", "stream": True}
    b.update(body or {})
    _, ctx = responses_to_chat(b, sealer=kw.pop("sealer", SEALER), created_at=CREATED, **kw)
    return ctx


def delta(**d: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": d, "finish_reason": None}],
    }


def finish(reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {}, "finish_reason": reason}],
    }


def usage(
    prompt: int = 11, completion: int = 7, cached: int = 0, reasoning: int = 0
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        },
    }


def tool(
    index: int, id: str | None = None, name: str | None = None, args: str | None = None
) -> dict[str, Any]:
    fn: dict[str, Any] = {}
    if name is not None:
        fn["name"] = name
    if args is not None:
        fn["arguments"] = args
    tc: dict[str, Any] = {"index": index, "function": fn}
    if id is not None:
        tc["id"] = id
        tc["type"] = "function"
    return delta(tool_calls=[tc])


def run(
    ctx: ResponsesContext, chunks: Iterable[dict[str, Any]], *, end: bool = True, sdk: bool = True
) -> tuple[CheckedResponse, ChatToResponsesStream]:
    """Feed ``chunks`` (then the upstream's end when ``end``), check the bytes strictly."""
    m = ChatToResponsesStream(ctx)
    raw = m.start()
    for c in chunks:
        raw += m.feed(c)
    if end:
        raw += m.finish()
    assert m.done
    chk = check_responses_sse(raw)
    if sdk:
        validate_with_sdk(chk.events)
    assert chk.response == m.response
    return chk, m


def strip_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items without their minted ids (and sealed blobs, random by design)."""
    out = []
    for it in items:
        it = {k: v for k, v in it.items() if k not in ("id", "encrypted_content")}
        out.append(it)
    return out
