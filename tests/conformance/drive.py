"""Paths through the gateway, and drivers that send a request down a path with a real SDK while
keeping the raw bytes of the answer for the strict wire checks (sse_checks.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import openai
from tests.conformance.sse_checks import (
    CheckedChunks,
    CheckedStream,
    check_anthropic_sse,
    check_openai_sse,
)
from tests.e2e.harness import KEY, Stack
from tests.fakes import ChatReply, FakeAnthropic, FakeOpenAI, Reply
from tests.support import http

A_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
O_HEADERS = {"authorization": f"Bearer {KEY}"}


@dataclass(frozen=True)
class Path:
    """One way through the gateway: client dialect, the model name it asks for, the fake that
    serves it (attribute of ``Stack``)."""

    id: str
    client: str  # "anthropic" | "openai"
    model: str
    upstream: str  # anthropic_fake | vllm | oai | ollama

    @property
    def translated(self) -> bool:
        return (self.client == "anthropic") != (self.upstream == "anthropic_fake")

    @property
    def to_anthropic(self) -> bool:
        return self.upstream == "anthropic_fake"

    def fake(self, stack: Stack) -> Any:
        return getattr(stack, self.upstream)

    def __str__(self) -> str:
        return self.id


A2A = Path("A->A", "anthropic", "claude-sonnet-4-5", "anthropic_fake")
A2O_VLLM = Path("A->O/vllm", "anthropic", "coder", "vllm")
A2O_OLLAMA = Path("A->O/ollama", "anthropic", "llama", "ollama")
A2O_OPENAI = Path("A->O/openai", "anthropic", "gpt-4.1", "oai")
O2A = Path("O->A", "openai", "claude-sonnet-4-5", "anthropic_fake")
O2O_VLLM = Path("O->O/vllm", "openai", "coder", "vllm")
O2O_OLLAMA = Path("O->O/ollama", "openai", "llama", "ollama")
O2O_OPENAI = Path("O->O/openai", "openai", "gpt-4.1", "oai")

A_PATHS = [A2A, A2O_VLLM, A2O_OLLAMA, A2O_OPENAI]
A2O_PATHS = [A2O_VLLM, A2O_OLLAMA, A2O_OPENAI]
O_PATHS = [O2A, O2O_VLLM, O2O_OLLAMA, O2O_OPENAI]
ALL_PATHS = A_PATHS + O_PATHS


def ids(paths: list[Path]) -> list[str]:
    return [p.id for p in paths]


# ----------------------------------------------------------------------------- tee transport


@dataclass
class Exchange:
    method: str
    url: str
    status: int
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)


class TeeTransport(httpx2.BaseTransport):
    """An httpx2 transport that records every response body as the SDK reads it."""

    def __init__(self) -> None:
        self.inner = httpx2.HTTPTransport()
        self.exchanges: list[Exchange] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        resp = self.inner.handle_request(request)
        ex = Exchange(
            request.method,
            str(request.url),
            resp.status_code,
            {k.lower(): v for k, v in resp.headers.items()},
        )
        self.exchanges.append(ex)
        inner_stream = resp.stream

        class _Tee(httpx2.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                for chunk in inner_stream:  # type: ignore[union-attr]
                    ex.body.extend(chunk)
                    yield chunk

            def close(self) -> None:
                close = getattr(inner_stream, "close", None)
                if close:
                    close()

        return httpx2.Response(
            status_code=resp.status_code,
            headers=resp.headers,
            stream=_Tee(),
            extensions=resp.extensions,
            request=request,
        )

    def close(self) -> None:
        self.inner.close()

    @property
    def last(self) -> Exchange:
        assert self.exchanges, "no request went through the tee"
        return self.exchanges[-1]


#: one SDK client (and its httpx2 connection pool) per client kind and gateway, for the module;
#: ``close_clients()`` (conformance/conftest.py, at the end of each module) closes them all
_CLIENTS: dict[tuple[str, str], tuple[Any, TeeTransport]] = {}


def _client(kind: str, stack: Stack) -> tuple[Any, TeeTransport]:
    got = _CLIENTS.get((kind, stack.url))
    if got is None:
        tee = TeeTransport()
        http_client = httpx2.Client(transport=tee, timeout=20)
        sdk: Any
        if kind == "anthropic":
            sdk = anthropic.Anthropic(
                base_url=stack.url, api_key=KEY, max_retries=0, http_client=http_client
            )
        else:
            sdk = openai.OpenAI(
                base_url=stack.url + "/v1", api_key=KEY, max_retries=0, http_client=http_client
            )
        got = _CLIENTS[(kind, stack.url)] = (sdk, tee)
    got[1].exchanges.clear()  # the tee holds what this caller's requests bring back
    return got


def anthropic_client(stack: Stack) -> tuple[anthropic.Anthropic, TeeTransport]:
    sdk, tee = _client("anthropic", stack)
    return sdk, tee


def openai_client(stack: Stack) -> tuple[openai.OpenAI, TeeTransport]:
    sdk, tee = _client("openai", stack)
    return sdk, tee


def close_clients() -> None:
    """Close every SDK client made since the last call (and their connections)."""
    while _CLIENTS:
        _, (sdk, tee) = _CLIENTS.popitem()
        sdk.close()
        tee.close()


# ----------------------------------------------------------------------------- drivers


@dataclass
class AStream:
    final: Any  # anthropic.types.Message from the SDK accumulator
    wire: CheckedStream
    headers: dict[str, str]


def a_stream(stack: Stack, **kw: Any) -> AStream:
    """Stream through the Anthropic SDK (``messages.stream`` + ``get_final_message``) and hold
    the raw bytes to the strict checker; the SDK's message and the wire's must agree."""
    client, tee = anthropic_client(stack)
    with client.messages.stream(**kw) as s:
        final = s.get_final_message()
    ex = tee.last
    assert ex.status == 200
    assert ex.headers.get("content-type", "").startswith("text/event-stream"), ex.headers
    wire = check_anthropic_sse(bytes(ex.body))
    assert [b.type for b in final.content] == wire.block_types
    assert final.stop_reason == wire.stop_reason
    return AStream(final, wire, ex.headers)


def a_create(stack: Stack, **kw: Any) -> Any:
    client, _ = anthropic_client(stack)
    return client.messages.create(**kw)


@dataclass
class OStream:
    chunks: list[Any]
    wire: CheckedChunks


def o_stream(stack: Stack, **kw: Any) -> OStream:
    client, tee = openai_client(stack)
    chunks = list(client.chat.completions.create(stream=True, **kw))
    ex = tee.last
    assert ex.status == 200
    wire = check_openai_sse(bytes(ex.body))
    return OStream(chunks, wire)


def o_create(stack: Stack, **kw: Any) -> Any:
    client, _ = openai_client(stack)
    return client.chat.completions.create(**kw)


def raw_a(stack: Stack, body: dict[str, Any], path: str = "/v1/messages", **hdr: str) -> Any:
    return http.post(stack.url + path, body, headers={**A_HEADERS, **hdr})


def raw_o(stack: Stack, body: dict[str, Any], path: str = "/v1/chat/completions") -> Any:
    return http.post(stack.url + path, body, headers=O_HEADERS)


# ----------------------------------------------------------------------------- scripting


def script(stack: Stack, path: Path, *, anthropic_reply: Any, openai_reply: Any) -> None:
    """Queue the path's reply on the fake that will serve it."""
    fake = path.fake(stack)
    fake.enqueue(anthropic_reply if isinstance(fake, FakeAnthropic) else openai_reply)


def last_sent(stack: Stack, path: Path) -> dict[str, Any]:
    fake: FakeAnthropic | FakeOpenAI = path.fake(stack)
    return fake.last_request.body


def walk(obj: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair anywhere inside a JSON tree."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v)


def keys_anywhere(obj: Any) -> set[str]:
    return {k for k, _ in walk(obj)}


def tool_args(call: Any) -> dict[str, Any]:
    return json.loads(call.function.arguments)


__all__ = ["ChatReply", "Reply"]


# ----------------------------------------------------------------------------- custom stacks


class _Held:
    """A hold held in memory only (nothing reserved in a database)."""

    persisted = False

    def __init__(self, info: Any) -> None:
        self.info = info


class RecordingAccountant:
    """Just enough of the accountant interface to see what the engine settles per request."""

    def __init__(self) -> None:
        self.settled: list[tuple[str, Any, Any]] = []  # ("confirm"|"cancel", info, outcome)

    async def authenticate(self, secret: str) -> Any:
        return {"key": "static"} if secret == KEY else None

    def check_model_allowed(self, key: Any, model: str) -> None:
        return None

    async def hold(self, info: Any) -> Any:
        return _Held(info)

    async def retarget(self, hold: Any, info: Any) -> Any:
        return _Held(info)

    async def confirm(self, hold: Any, outcome: Any) -> None:
        self.settled.append(("confirm", hold.info, outcome))

    async def cancel(self, hold: Any, outcome: Any) -> None:
        self.settled.append(("cancel", hold.info, outcome))

    async def record(self, info: Any, outcome: Any) -> None:
        self.settled.append(("record", info, outcome))

    async def close(self) -> None:
        return None


def start_custom_stack(
    edit: Any = None, accountant: Any = None, **fake_options: dict[str, Any]
) -> Stack:
    """Like ``harness.start_stack`` but ``edit(config_dict, fakes)`` may change any section
    (providers included, which need the fakes' URLs) and an accountant can be plugged in."""
    from tests.e2e.harness import base_config
    from tests.support.servers import ServerThread

    from dragoman.config import load_config_dict
    from dragoman.server.app import create_app

    strict = {"accept_bearer": False, "strict_models": True}
    anth = FakeAnthropic(**{**strict, **fake_options.get("anthropic", {})}).start()
    vllm = FakeOpenAI("vllm", **fake_options.get("vllm", {})).start()
    oai = FakeOpenAI("openai", **fake_options.get("openai", {})).start()
    ollama = FakeOpenAI("ollama", **fake_options.get("ollama", {})).start()
    cfg = base_config(anth, vllm, oai, ollama)
    if edit is not None:
        edit(cfg, {"anthropic": anth, "vllm": vllm, "oai": oai, "ollama": ollama})
    config = load_config_dict(cfg)

    async def make_app() -> Any:
        return create_app(config, accountant=accountant)

    server = ServerThread(make_app, shutdown_timeout=0.5).start()
    return Stack(server.url, anth, vllm, oai, ollama, server)
