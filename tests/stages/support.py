"""In-process doubles for stage tests: a scripted upstream put on a real provider object (its
``request``/``stream``, the methods ``dispatch`` calls), a recording accountant, a fake clock
and a recording sleep. No sockets: the wire-level suites (tests/e2e, tests/conformance) stay
the outer ring."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dragoman.bootstrap import build_gateway
from dragoman.config import load_config_dict
from dragoman.core.exchange import Exchange, Reply
from dragoman.core.gateway import Gateway
from dragoman.errors import DragomanError, PermissionDeniedError
from dragoman.providers import UpstreamReply


class FakeStream:
    """An upstream 2xx stream: the chunks given, then EOF or ``error`` raised."""

    def __init__(self, chunks: list[bytes], error: DragomanError | None = None) -> None:
        self._chunks = chunks
        self._error = error
        self.closed = False
        self.read = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        for c in self._chunks:
            self.read += 1
            yield c
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self.closed = True


Answer = UpstreamReply | FakeStream | DragomanError


@dataclass
class Upstream:
    """Answers, in order, for every call to one provider; the requests it got."""

    answers: list[Answer]
    sent: list[dict[str, Any]] = field(default_factory=list)

    def _next(self, path: str, body: bytes) -> Answer:
        self.sent.append({"path": path, "body": json.loads(body)})
        answer = self.answers.pop(0)
        if isinstance(answer, DragomanError):
            raise answer
        return answer

    async def request(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> UpstreamReply:
        answer = self._next(path, body)
        assert isinstance(answer, UpstreamReply)
        return answer

    async def stream(self, path: str, body: bytes, headers: Mapping[str, str]) -> Any:
        return self._next(path, body)


def json_reply(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Any:
    return UpstreamReply(status, dict(headers or {}), json.dumps(obj).encode())


def sse(*events: tuple[str | None, Any]) -> bytes:
    out = b""
    for name, data in events:
        if name:
            out += f"event: {name}\n".encode()
        out += b"data: " + (data if isinstance(data, bytes) else json.dumps(data).encode())
        out += b"\n\n"
    return out


def message(text: str = "hi", usage: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "up",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 10, "output_tokens": 2},
    }


def anthropic_stream(text: str = "hi", *, complete: bool = True) -> list[bytes]:
    chunks = [
        sse(
            (
                "message_start",
                {"type": "message_start", "message": {**message(""), "content": []}},
            )
        ),
        sse(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ),
    ]
    if complete:
        chunks.append(
            sse(
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": 7},
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            )
        )
    return chunks


def chat_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "up",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def openai_stream(text: str = "hi", *, complete: bool = True) -> list[bytes]:
    chunks = [
        sse((None, chat_chunk({"role": "assistant", "content": ""}))),
        sse((None, chat_chunk({"content": text}))),
    ]
    if complete:
        chunks.append(
            sse(
                (None, chat_chunk({}, "stop")),
                (
                    None,
                    {
                        **chat_chunk({}),
                        "choices": [],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
                    },
                ),
                (None, b"[DONE]"),
            )
        )
    return chunks


def completion(text: str = "hi") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "up",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def config(**extra: Any) -> Any:
    """Two providers (one of each dialect, flavors fixed: nothing is detected), a model on
    each, ``both`` on the two of them."""
    data: dict[str, Any] = {
        "providers": {
            "ant": {"kind": "anthropic", "base_url": "http://127.0.0.1:9", "api_key": "k"},
            "oai": {
                "kind": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key": "k",
                "flavor": "vllm",
            },
        },
        "models": {
            "claude": {"provider": "ant", "model": "claude-up", "max_output_tokens": 1000},
            "gpt": {"provider": "oai", "model": "gpt-up", "max_output_tokens": 1000},
        },
        "store": {"enabled": False},
    }
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    return load_config_dict(data, source="<stage test>")


def gateway(cfg: Any = None, **kw: Any) -> tuple[Gateway, dict[str, Upstream]]:
    """A gateway core whose providers answer from scripts (``ups[name].answers``)."""
    gw = build_gateway(cfg or config(), **kw)
    ups: dict[str, Upstream] = {}
    for name, prov in gw.providers.items():
        up = ups[name] = Upstream([])
        prov.request = up.request  # type: ignore[method-assign]
        prov.stream = up.stream  # type: ignore[method-assign]
        gw.detections[name].settled = True  # nothing to ask the (absent) server
    return gw, ups


async def drain(reply: Reply) -> bytes:
    assert reply.stream is not None
    out = b""
    async for chunk in reply.stream:
        out += chunk
    return out


def exchange(
    front: str = "anthropic",
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    **kw: Any,
) -> Exchange:
    return Exchange(
        front, "messages", body if body is not None else {}, headers or {}, "req-1", **kw
    )


class Books:
    """A recording accountant: what the ledger stage asked of the books, in order."""

    def __init__(self, *, allowed: set[str] | None = None) -> None:
        self.calls: list[tuple[str, Any, Any]] = []
        self.allowed = allowed

    def check_model_allowed(self, key: Any, model: str) -> None:
        if self.allowed is not None and model not in self.allowed:
            raise PermissionDeniedError(f"this key may not use model {model!r}")

    async def authenticate(self, secret: str) -> Any:
        return {"secret": secret} if secret == "good" else None

    async def hold(self, info: Any) -> Any:
        self.calls.append(("hold", info, None))
        return _Hold(info)

    async def retarget(self, hold: Any, info: Any) -> Any:
        self.calls.append(("retarget", info, None))
        return _Hold(info)

    async def confirm(self, hold: Any, outcome: Any) -> None:
        self.calls.append(("confirm", hold.info, outcome))

    async def cancel(self, hold: Any, outcome: Any) -> None:
        self.calls.append(("cancel", hold.info, outcome))

    async def record(self, info: Any, outcome: Any) -> None:
        self.calls.append(("record", info, outcome))


@dataclass
class _Hold:
    info: Any
    persisted: bool = False
