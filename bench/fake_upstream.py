"""A fast fake LLM upstream: Anthropic Messages and OpenAI Chat Completions on one port.

Written on a raw asyncio protocol (uvloop when installed) so that it costs a few tens of
microseconds per request and never becomes the bottleneck of a benchmark.

Routes
  POST /v1/messages            Anthropic Messages (JSON, or SSE with ``"stream": true``)
  POST /v1/messages/count_tokens
  POST /v1/chat/completions    OpenAI Chat Completions (JSON, or SSE chunks + ``data: [DONE]``;
                               a usage chunk with ``choices: []`` when
                               ``stream_options.include_usage``)
  GET  /v1/models, GET /health, POST /tokenize (vLLM-style)
  GET|POST /_bench/config      read / change the behaviour at run time (JSON: chunks,
                               first_delay_ms, chunk_delay_ms, input_tokens)
  GET  /_bench/stats           requests served per route, and 4xx answers

A request that declares ``tools`` is answered with a tool call (``tool_use`` / ``tool_calls``)
instead of text. Requests missing required fields get a 400 in the provider's error format, so
a gateway that translates badly shows up as errors in the load generator.

    python bench/fake_upstream.py --port 8099 [--chunks 20]
        [--first-delay-ms 0] [--chunk-delay-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, cast

import orjson

TEXT = (
    "Here is a short answer from the benchmark upstream. The quick brown fox jumps over the "
    "lazy dog while the gateway relays every token to the client, counts the usage, and keeps "
    "the books. Latency matters, so each byte should pass through with as little work as "
    "possible, and the CPU time per request stays small."
)
TOOL_ARGS = '{"location": "Paris, France", "unit": "celsius", "days": 3}'
CREATED = 1_760_000_000


@dataclass
class Settings:
    chunks: int = 20
    first_delay_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    input_tokens: int = 57


SETTINGS = Settings()
STATS: Counter[str] = Counter()
_CACHE: dict[tuple[Any, ...], Any] = {}


def split(text: str, n: int) -> list[str]:
    """Cut ``text`` into ``n`` non-empty pieces of about the same length."""
    n = max(1, min(n, len(text)))
    step = len(text) / n
    return [text[round(i * step) : round((i + 1) * step)] for i in range(n)]


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def sse(event: str | None, data: Any) -> bytes:
    payload = data if isinstance(data, bytes) else dumps(data)
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + payload + b"\n\n"


def chunk(data: bytes) -> bytes:
    """One chunk of a ``Transfer-Encoding: chunked`` body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def head(status: int, ctype: bytes, length: int | None, extra: bytes = b"") -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}.get(status, b"Error")
    size = (
        b"Transfer-Encoding: chunked\r\n" if length is None else b"Content-Length: %d\r\n" % length
    )
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s\r\n" % (status, reason, ctype, size, extra)


def json_response(obj: Any, status: int = 200, extra: bytes = b"") -> bytes:
    body = dumps(obj)
    return head(status, b"application/json", len(body), extra) + body


SSE_HEAD = head(200, b"text/event-stream", None, b"Cache-Control: no-cache\r\n")


# ---------------------------------------------------------------- Anthropic Messages


def anthropic_message(model: str, tool: str | None) -> bytes:
    out_tokens = len(TEXT) // 4
    content: list[dict[str, Any]]
    if tool:
        content = [
            {"type": "text", "text": "Let me look that up."},
            {
                "type": "tool_use",
                "id": "toolu_bench01",
                "name": tool,
                "input": orjson.loads(TOOL_ARGS),
            },
        ]
    else:
        content = [{"type": "text", "text": TEXT}]
    return json_response(
        {
            "id": "msg_bench01",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "tool_use" if tool else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": SETTINGS.input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": out_tokens,
            },
        },
        extra=b"request-id: req_bench01\r\n",
    )


def anthropic_events(model: str, tool: str | None, n: int) -> list[bytes]:
    ev: list[bytes] = [
        sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_bench01",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": SETTINGS.input_tokens,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                        "output_tokens": 1,
                    },
                },
            },
        ),
        sse("ping", {"type": "ping"}),
    ]
    if tool:
        block = {"type": "tool_use", "id": "toolu_bench01", "name": tool, "input": {}}
        pieces = split(TOOL_ARGS, n)
        delta = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
    else:
        block = {"type": "text", "text": ""}
        pieces = split(TEXT, n)
        delta = [{"type": "text_delta", "text": p} for p in pieces]
    ev.append(
        sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        )
    )
    for d in delta:
        ev.append(
            sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d})
        )
    ev.append(sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    ev.append(
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(TEXT) // 4},
            },
        )
    )
    ev.append(sse("message_stop", {"type": "message_stop"}))
    return ev


def anthropic_error(msg: str) -> bytes:
    return json_response(
        {"type": "error", "error": {"type": "invalid_request_error", "message": msg}}, 400
    )


# ---------------------------------------------------------------- OpenAI Chat Completions


def openai_usage() -> dict[str, int]:
    out = len(TEXT) // 4
    return {
        "prompt_tokens": SETTINGS.input_tokens,
        "completion_tokens": out,
        "total_tokens": SETTINGS.input_tokens + out,
    }


def openai_completion(model: str, tool: str | None) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": None if tool else TEXT}
    if tool:
        message["tool_calls"] = [
            {
                "id": "call_bench01",
                "type": "function",
                "function": {"name": tool, "arguments": TOOL_ARGS},
            }
        ]
    return json_response(
        {
            "id": "chatcmpl-bench01",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if tool else "stop",
                }
            ],
            "usage": openai_usage(),
        },
        extra=b"x-request-id: req_bench01\r\n",
    )


def openai_events(model: str, tool: str | None, n: int, usage: bool) -> list[bytes]:
    def frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse(
            None,
            {
                "id": "chatcmpl-bench01",
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            },
        )

    ev: list[bytes]
    if tool:
        first_call = {
            "index": 0,
            "id": "call_bench01",
            "type": "function",
            "function": {"name": tool, "arguments": ""},
        }
        ev = [frame({"role": "assistant", "content": None, "tool_calls": [first_call]})]
        for p in split(TOOL_ARGS, n):
            ev.append(frame({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}))
        ev.append(frame({}, "tool_calls"))
    else:
        ev = [frame({"role": "assistant", "content": ""})]
        ev.extend(frame({"content": p}) for p in split(TEXT, n))
        ev.append(frame({}, "stop"))
    if usage:
        ev.append(
            sse(
                None,
                {
                    "id": "chatcmpl-bench01",
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": model,
                    "choices": [],
                    "usage": openai_usage(),
                },
            )
        )
    ev.append(b"data: [DONE]\n\n")
    return ev


def openai_error(msg: str) -> bytes:
    return json_response(
        {"error": {"message": msg, "type": "invalid_request_error", "param": None, "code": None}},
        400,
    )


# ---------------------------------------------------------------- routing


def tool_name(req: dict[str, Any], kind: str) -> str | None:
    tools = req.get("tools")
    if not tools or not isinstance(tools, list):
        return None
    t = tools[0]
    if kind == "openai":
        return str(t.get("function", {}).get("name", "tool"))
    return str(t.get("name", "tool"))


Plan = bytes | tuple[bytes, list[bytes]]  # a whole response, or (head, SSE events)


def handle_llm(kind: str, body: bytes) -> Plan:
    try:
        req = orjson.loads(body)
        if not isinstance(req, dict):
            raise ValueError("body is not an object")
    except ValueError as e:
        STATS["4xx"] += 1
        return (anthropic_error if kind == "anthropic" else openai_error)(f"bad JSON: {e}")
    model = req.get("model")
    missing = [k for k in ("model", "messages") if not req.get(k)]
    if kind == "anthropic" and not isinstance(req.get("max_tokens"), int):
        missing.append("max_tokens")
    if missing or not isinstance(model, str):
        STATS["4xx"] += 1
        err = anthropic_error if kind == "anthropic" else openai_error
        return err(f"missing or bad field(s): {', '.join(missing) or 'model'}")
    tool = tool_name(req, kind)
    stream = bool(req.get("stream"))
    n = SETTINGS.chunks
    if kind == "anthropic":
        if not stream:
            key: tuple[Any, ...] = ("a", model, tool, SETTINGS.input_tokens)
            resp = _CACHE.get(key)
            if resp is None:
                resp = _CACHE[key] = anthropic_message(model, tool)
            return resp  # type: ignore[no-any-return]
        key = ("as", model, tool, n, SETTINGS.input_tokens)
        events = _CACHE.get(key)
        if events is None:
            events = _CACHE[key] = [chunk(e) for e in anthropic_events(model, tool, n)]
        return SSE_HEAD, events
    if not stream:
        key = ("o", model, tool, SETTINGS.input_tokens)
        resp = _CACHE.get(key)
        if resp is None:
            resp = _CACHE[key] = openai_completion(model, tool)
        return resp  # type: ignore[no-any-return]
    opts = req.get("stream_options")
    usage = bool(isinstance(opts, dict) and opts.get("include_usage"))
    key = ("os", model, tool, n, usage, SETTINGS.input_tokens)
    events = _CACHE.get(key)
    if events is None:
        events = _CACHE[key] = [chunk(e) for e in openai_events(model, tool, n, usage)]
    return SSE_HEAD, events


MODELS = json_response(
    {
        "object": "list",
        "data": [
            {
                "id": m,
                "object": "model",
                "type": "model",
                "created": CREATED,
                "created_at": "2025-10-09T00:00:00Z",
                "owned_by": "bench",
                "display_name": m,
                "max_model_len": 131072,
            }
            for m in ("claude-sonnet-4-5", "qwen-bench")
        ],
        "has_more": False,
        "first_id": "claude-sonnet-4-5",
        "last_id": "qwen-bench",
    }
)
HEALTH = json_response({"status": "ok"})


def route(method: bytes, path: bytes, body: bytes) -> Plan:
    path = path.split(b"?", 1)[0]
    STATS[f"{method.decode()} {path.decode()}"] += 1
    if method == b"POST":
        if path.endswith(b"/chat/completions"):
            return handle_llm("openai", body)
        if path.endswith(b"/messages"):
            return handle_llm("anthropic", body)
        if path.endswith(b"/count_tokens"):
            return json_response({"input_tokens": SETTINGS.input_tokens})
        if path.endswith(b"/tokenize"):
            n = SETTINGS.input_tokens
            return json_response({"count": n, "max_model_len": 131072, "tokens": list(range(n))})
        if path == b"/_bench/config":
            for k, v in orjson.loads(body or b"{}").items():
                if k in asdict(SETTINGS):
                    setattr(SETTINGS, k, type(getattr(SETTINGS, k))(v))
            return json_response(asdict(SETTINGS))
    elif method in (b"GET", b"HEAD"):
        if path.endswith(b"/models"):
            return MODELS
        if path.endswith(b"/health") or path == b"/":
            return HEALTH
        if path == b"/_bench/config":
            return json_response(asdict(SETTINGS))
        if path == b"/_bench/stats":
            return json_response(dict(STATS))
    STATS["4xx"] += 1
    return json_response({"error": {"type": "not_found", "message": "no such route"}}, 404)


# ---------------------------------------------------------------- HTTP/1.1 on a raw protocol


class BadRequest(Exception):
    pass


def parse_request(buf: bytearray) -> tuple[bytes, bytes, bytes, bool, int] | None:
    """(method, path, body, keep_alive, bytes consumed), or None when incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 65536:
            raise BadRequest("header too large")
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    try:
        method, path, version = lines[0].split(b" ", 2)
    except ValueError as e:
        raise BadRequest("bad request line") from e
    length = 0
    chunked = False
    keep_alive = version != b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            v = value.strip().lower()
            keep_alive = v == b"keep-alive" or (keep_alive and v != b"close")
    start = end + 4
    if not chunked:
        if len(buf) < start + length:
            return None
        return method, path, bytes(buf[start : start + length]), keep_alive, start + length
    body = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if size == 0:
            if len(buf) < eol + 4:
                return None
            return method, path, bytes(body), keep_alive, eol + 4
        if len(buf) < eol + 2 + size + 2:
            return None
        body += buf[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2


class Upstream(asyncio.Protocol):
    __slots__ = ("buf", "busy", "closed", "transport")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.busy = False
        self.closed = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self.process()

    def process(self) -> None:
        t = self.transport
        assert t is not None
        while not self.closed:
            try:
                req = parse_request(self.buf)
            except (BadRequest, ValueError):
                t.write(json_response({"error": "bad request"}, 400))
                t.close()
                return
            if req is None:
                return
            method, path, body, keep_alive, used = req
            del self.buf[:used]
            plan = route(method, path, body)
            delay = SETTINGS.first_delay_ms / 1000
            if isinstance(plan, bytes) and not delay:
                t.write(plan)
                if not keep_alive:
                    t.close()
                    return
                continue
            self.busy = True
            asyncio.get_running_loop().create_task(self.slow(plan, delay, keep_alive))
            return

    async def slow(self, plan: Plan, delay: float, keep_alive: bool) -> None:
        t = self.transport
        assert t is not None
        if delay:
            await asyncio.sleep(delay)
        if self.closed:
            return
        if isinstance(plan, bytes):
            t.write(plan)
        else:
            hdr, events = plan
            gap = SETTINGS.chunk_delay_ms / 1000
            t.write(hdr + events[0])
            for ev in events[1:]:
                # yield even without a delay, so events leave as separate writes like a real
                # model server's, and do not arrive as one buffer
                await asyncio.sleep(gap)
                if self.closed:
                    return
                t.write(ev)
            t.write(b"0\r\n\r\n")
        if not keep_alive:
            t.close()
            return
        self.busy = False
        if self.buf:
            self.process()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake upstream on http://{host}:{port} {asdict(SETTINGS)}", file=sys.stderr, flush=True)
    async with server:
        await stop.wait()


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8099)
    p.add_argument("--chunks", type=int, default=20, help="text deltas per stream")
    p.add_argument("--first-delay-ms", type=float, default=0.0, help="delay before any byte")
    p.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between SSE events")
    a = p.parse_args()
    SETTINGS.chunks = a.chunks
    SETTINGS.first_delay_ms = a.first_delay_ms
    SETTINGS.chunk_delay_ms = a.chunk_delay_ms
    install_uvloop()
    asyncio.run(serve(a.host, a.port))


if __name__ == "__main__":
    main()
