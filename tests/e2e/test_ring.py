"""The long-lived-gateway ring: ONE ``dragoman serve`` process, many cases, random order.

A new user's setup: no ``routing:`` section (default retries and cooldowns), one deployment per
model, the store on (a temporary SQLite file), a static key. In front of the wire-exact fakes,
the official ``anthropic`` and ``openai`` SDKs run every path (A->A, A->O, O->O, O->A), streamed
and not, with tools, count_tokens, the model lists, and the cases that inject failures: upstream
429 (with and without retry-after), 500, 529/503, 400, 401, streams cut before and after their
first bytes, error events, clients that hang up mid-stream, and a burst of requests while a
deployment cools down.

Each case asserts its own exact outcome, including how many requests reached the upstream; no
case may depend on an earlier one. After each, every scripted reply must have been used and no
request may be left in flight. The order is shuffled with a printed seed; replay one with
``DRAGOMAN_RING_SEED=<seed>`` (and run a subset with ``DRAGOMAN_RING_CASES=name,name``).

This is the test that would have caught "one 429 disables a model for 30 s" (issue 8): a
deployment left cooling by one case (a 429 with ``retry-after: 120``, three 500s) must still
serve the next case, because the last route is always tried.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from tests.fakes import (
    ChatReply,
    ErrorReply,
    FakeAnthropic,
    FakeOpenAI,
    OpenAIErrorReply,
    Reply,
    text_block,
    tool_use_block,
)
from tests.support import http
from tests.support.invariants import wait_until
from tests.support.serve import ServeProcess

KEY = "dg-ring-key"
ADMIN_KEY = "dg-ring-admin"
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
O_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": WEATHER["input_schema"],
    },
}
A_ERROR_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


# -- the gateway and its fakes -------------------------------------------------------------------


@dataclass(frozen=True)
class Lane:
    """One way through the gateway."""

    name: str
    client: str  # anthropic | openai
    model: str
    upstream: str  # anthropic | vllm

    @property
    def deployment(self) -> str:
        return f"{self.model}/{self.upstream}"


A2A = Lane("a2a", "anthropic", "claude-sonnet-4-5", "anthropic")
A2O = Lane("a2o", "anthropic", "coder", "vllm")
O2O = Lane("o2o", "openai", "coder", "vllm")
O2A = Lane("o2a", "openai", "claude-sonnet-4-5", "anthropic")
PATHS = [A2A, A2O, O2O, O2A]


@dataclass
class Outcome:
    """What a client saw, whatever its dialect."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    text: str = ""
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    stop: str | None = None
    error_type: str | None = None
    error_message: str = ""
    #: the SDK's exception when a stream failed after it started (HTTP 200)
    stream_error: BaseException | None = None


class Ring:
    def __init__(self, srv: ServeProcess, anth: FakeAnthropic, vllm: FakeOpenAI, db: Path) -> None:
        self.srv, self.anth, self.vllm, self.db = srv, anth, vllm, db
        self.url = srv.url
        self.a = anthropic.Anthropic(base_url=self.url, api_key=KEY, max_retries=0, timeout=60)
        self.o = openai.OpenAI(base_url=self.url + "/v1", api_key=KEY, max_retries=0, timeout=60)

    # -- scripting ---------------------------------------------------------------------------

    def fake(self, p: Lane) -> Any:
        return self.anth if p.upstream == "anthropic" else self.vllm

    def other(self, p: Lane) -> Any:
        return self.vllm if p.upstream == "anthropic" else self.anth

    def text(self, p: Lane, text: str, **kw: Any) -> Any:
        if p.upstream == "anthropic":
            return Reply(content=[text_block(text)], **kw)
        return ChatReply(content=text, **kw)

    def tool(self, p: Lane, city: str, **kw: Any) -> Any:
        if p.upstream == "anthropic":
            return Reply(
                content=[text_block("Checking."), tool_use_block("get_weather", {"city": city})],
                **kw,
            )
        return ChatReply(content="Checking.", tool_calls=[("get_weather", {"city": city})], **kw)

    def error(
        self, p: Lane, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Any:
        h = dict(headers or {})
        if p.upstream == "anthropic":
            return ErrorReply(status, A_ERROR_TYPE.get(status, "api_error"), message, h)
        return OpenAIErrorReply(status, message, headers=h)

    # -- asking ------------------------------------------------------------------------------

    def ask(
        self,
        p: Lane,
        text: str = "hi",
        *,
        stream: bool = False,
        tools: bool = False,
        messages: list[dict[str, Any]] | None = None,
        stop_after: int | None = None,
    ) -> Outcome:
        """One request through the path's SDK. ``stop_after``: hang up after that many stream
        events (a client that disconnects)."""
        msgs = messages or [{"role": "user", "content": text}]
        if p.client == "anthropic":
            kw: dict[str, Any] = {"model": p.model, "max_tokens": 512, "messages": msgs}
            if tools:
                kw["tools"] = [WEATHER]
            return self._ask_anthropic(kw, stream, stop_after)
        kw = {"model": p.model, "messages": msgs}
        if tools:
            kw["tools"] = [O_WEATHER]
        return self._ask_openai(kw, stream, stop_after)

    def _ask_anthropic(self, kw: dict[str, Any], stream: bool, stop_after: int | None) -> Outcome:
        try:
            if not stream:
                raw = self.a.messages.with_raw_response.create(**kw)
                return _a_outcome(200, raw.headers, raw.parse())
            with self.a.messages.stream(**kw) as s:
                headers = s.response.headers
                n, partial = 0, ""
                try:
                    for ev in s:
                        n += 1
                        if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                            partial += ev.delta.text
                        if stop_after is not None and n >= stop_after:
                            return Outcome(200, headers, partial)
                    return _a_outcome(200, headers, s.get_final_message())
                except anthropic.APIError as e:  # an error event after the stream started
                    return Outcome(200, headers, partial, stream_error=e)
        except anthropic.APIStatusError as e:
            err = (e.body or {}).get("error", {}) if isinstance(e.body, dict) else {}
            return Outcome(
                e.status_code, e.response.headers, error_type=err.get("type"),
                error_message=err.get("message", ""),
            )  # fmt: skip

    def _ask_openai(self, kw: dict[str, Any], stream: bool, stop_after: int | None) -> Outcome:
        try:
            if not stream:
                raw = self.o.chat.completions.with_raw_response.create(**kw)
                return _o_outcome(200, raw.headers, raw.parse())
            st = self.o.chat.completions.create(stream=True, **kw)
            headers, n, out = st.response.headers, 0, Outcome(200, st.response.headers)
            calls: dict[int, dict[str, str]] = {}
            try:
                for chunk in st:
                    n += 1
                    for ch in chunk.choices:
                        out.text += ch.delta.content or ""
                        for tc in ch.delta.tool_calls or []:
                            c = calls.setdefault(tc.index, {"name": "", "args": ""})
                            if tc.function and tc.function.name:
                                c["name"] += tc.function.name
                            if tc.function and tc.function.arguments:
                                c["args"] += tc.function.arguments
                        out.stop = ch.finish_reason or out.stop
                    if stop_after is not None and n >= stop_after:
                        st.close()
                        return out
            except openai.APIError as e:
                out.stream_error = e
            out.headers = headers
            out.tools = [(c["name"], json.loads(c["args"])) for _, c in sorted(calls.items())]
            return out
        except openai.APIStatusError as e:
            err = e.body if isinstance(e.body, dict) else {}
            return Outcome(
                e.status_code, e.response.headers, error_type=err.get("type"),
                error_message=err.get("message", ""),
            )  # fmt: skip

    # -- the gateway's state -----------------------------------------------------------------

    def health(self) -> dict[str, dict[str, Any]]:
        r = http.get(self.url + "/health", {"x-api-key": ADMIN_KEY})  # details: admin only
        assert r.status == 200
        return {d["name"]: d for deps in r.json()["deployments"].values() for d in deps}

    def settled(self) -> None:
        """No scripted reply left unused, no request left in flight."""
        for f in (self.anth, self.vllm):
            assert f.pending == 0, f"{f.pending} scripted replies never requested"
        try:
            wait_until(
                lambda: all(d["inflight"] == 0 for d in self.health().values()), 15, "inflight 0"
            )
        except AssertionError:
            raise AssertionError(f"requests left in flight: {self.health()}") from None


def _a_outcome(status: int, headers: Mapping[str, str], msg: Any) -> Outcome:
    return Outcome(
        status,
        headers,
        "".join(b.text for b in msg.content if b.type == "text"),
        [(b.name, dict(b.input)) for b in msg.content if b.type == "tool_use"],
        msg.stop_reason,
    )


def _o_outcome(status: int, headers: Mapping[str, str], resp: Any) -> Outcome:
    m = resp.choices[0].message
    tools = [(t.function.name, json.loads(t.function.arguments)) for t in m.tool_calls or []]
    return Outcome(status, headers, m.content or "", tools, resp.choices[0].finish_reason)


def _config(anth: FakeAnthropic, vllm: FakeOpenAI, db: Path) -> str:
    """No routing section: the defaults a new user gets."""
    return (
        f"auth: {{keys: ['{KEY}'], admin_key: '{ADMIN_KEY}'}}\n"
        "providers:\n"
        f"  anthropic: {{kind: anthropic, base_url: '{anth.url}', api_key: '{anth.api_key}'}}\n"
        f"  vllm: {{kind: openai, base_url: '{vllm.base_url}', api_key: '{vllm.api_key}',"
        " flavor: vllm}\n"
        "models:\n"
        "  claude-sonnet-4-5: {provider: anthropic}\n"
        "  coder: {provider: vllm, model: qwen3-coder, context_window: 32768}\n"
        f"store: {{url: 'sqlite:///{db}', flush_interval: 0.05}}\n"
    )


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ring]:
    tmp = tmp_path_factory.mktemp("ring")
    with FakeAnthropic() as anth, FakeOpenAI("vllm") as vllm:
        cfg = tmp / "dragoman.yaml"
        cfg.write_text(_config(anth, vllm, tmp / "ring.db"))
        master = "ring-master-key-0123456789abcdefghijklmnopqrstu"
        srv = ServeProcess(cfg, env={"DRAGOMAN_MASTER_KEY": master}).start()
        try:
            yield Ring(srv, anth, vllm, tmp / "ring.db")
        finally:
            code = srv.stop(signal.SIGTERM)
            assert code == 0, srv.output()


# -- the cases -----------------------------------------------------------------------------------

Case = Callable[[Ring], None]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        assert name not in CASES, name
        CASES[name] = fn
        return fn

    return register


def _ok(r: Ring, p: Lane, o: Outcome, *, attempts: int = 1, upstream: int = 1) -> None:
    """A success served by the path's deployment after ``attempts`` tries, each of which
    reached the upstream (and the other fake saw nothing)."""
    assert o.status == 200, o
    assert o.stream_error is None, o.stream_error
    assert o.headers["x-dragoman-model"] == p.model
    assert o.headers["x-dragoman-deployment"] == p.deployment
    assert o.headers["x-dragoman-attempts"] == str(attempts)
    assert len(r.fake(p).requests_to(_gen_path(p))) == upstream
    assert not r.other(p).requests


def _gen_path(p: Lane) -> str:
    return "/v1/messages" if p.upstream == "anthropic" else "/v1/chat/completions"


def _failed(r: Ring, p: Lane, o: Outcome, status: int, *, attempts: int, upstream: int) -> None:
    """The upstream's own error, in the caller's dialect, after ``attempts`` tries."""
    if p.client == "openai" and status == 529:
        status = 503  # an OpenAI client's status for Anthropic's overloaded
    assert o.status == status, o
    assert "cooling" not in o.error_message, o
    assert o.headers["x-dragoman-attempts"] == str(attempts)
    assert len(r.fake(p).requests_to(_gen_path(p))) == upstream
    assert not r.other(p).requests


def _stop(p: Lane, tool: bool) -> str:
    if p.client == "anthropic":
        return "tool_use" if tool else "end_turn"
    return "tool_calls" if tool else "stop"


def _sent(r: Ring, p: Lane) -> dict[str, Any]:
    return r.fake(p).requests_to(_gen_path(p))[-1].body


def _family(p: Lane, stream: bool) -> str:
    return f"{p.name}-{'stream' if stream else 'json'}"


for _p in PATHS:
    for _stream in (False, True):

        def _text(r: Ring, p: Lane = _p, stream: bool = _stream) -> None:
            words = f"ring {p.name} {'stream' if stream else 'json'} answer"
            r.fake(p).enqueue(r.text(p, words))
            o = r.ask(p, "say something", stream=stream)
            _ok(r, p, o)
            assert o.text == words and o.stop == _stop(p, False)
            sent = _sent(r, p)
            assert sent["model"] == ("qwen3-coder" if p.upstream == "vllm" else p.model)
            assert bool(sent.get("stream")) is stream

        def _tools(r: Ring, p: Lane = _p, stream: bool = _stream) -> None:
            r.fake(p).enqueue(r.tool(p, "Oslo"))
            o = r.ask(p, "weather in Oslo?", stream=stream, tools=True)
            _ok(r, p, o)
            assert o.tools == [("get_weather", {"city": "Oslo"})]
            assert o.stop == _stop(p, True)
            assert o.text == "Checking."
            sent = _sent(r, p)
            names = [
                t.get("name") or t.get("function", {}).get("name") for t in sent.get("tools", [])
            ]
            assert names == ["get_weather"]

        def _tool_result(r: Ring, p: Lane = _p, stream: bool = _stream) -> None:
            # a conversation that carries a tool call and its result back to the upstream
            if p.client == "anthropic":
                msgs: list[dict[str, Any]] = [
                    {"role": "user", "content": "weather in Oslo?"},
                    {
                        "role": "assistant",
                        "content": [
                            {
                                "type": "tool_use",
                                "id": "toolu_ring1",
                                "name": "get_weather",
                                "input": {"city": "Oslo"},
                            }
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_ring1", "content": "3C"}
                        ],
                    },
                ]
            else:
                msgs = [
                    {"role": "user", "content": "weather in Oslo?"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_ring1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_ring1", "content": "3C"},
                ]
            r.fake(p).enqueue(r.text(p, "It is 3C in Oslo."))
            o = r.ask(p, stream=stream, tools=True, messages=msgs)
            _ok(r, p, o)
            assert o.text == "It is 3C in Oslo."
            sent = _sent(r, p)["messages"]
            if p.upstream == "anthropic":
                (block,) = sent[-1]["content"]
                assert block["type"] == "tool_result" and block["content"] in (
                    "3C",
                    [{"type": "text", "text": "3C"}],
                )
                assert sent[-2]["content"][-1]["type"] == "tool_use"
                assert block["tool_use_id"] == sent[-2]["content"][-1]["id"]
            else:
                assert sent[-1]["role"] == "tool" and sent[-1]["content"] in (
                    "3C",
                    [{"type": "text", "text": "3C"}],
                )
                assert sent[-1]["tool_call_id"] == sent[-2]["tool_calls"][0]["id"]

        def _cut_before(r: Ring, p: Lane = _p, stream: bool = _stream) -> None:
            # the connection drops before any byte: retried (default retries), then answered
            if stream:
                r.fake(p).enqueue(r.text(p, "x", cut_after=0, cut_mode="abort"))
            else:
                r.fake(p).enqueue(r.error(p, 500, "Internal server error"))
            r.fake(p).enqueue(r.text(p, "second try"))
            o = r.ask(p, stream=stream)
            _ok(r, p, o, attempts=2, upstream=2)
            assert o.text == "second try"

        CASES[f"{_family(_p, _stream)}-text"] = _text
        CASES[f"{_family(_p, _stream)}-tools"] = _tools
        CASES[f"{_family(_p, _stream)}-tool-result"] = _tool_result
        CASES[f"{_family(_p, _stream)}-{'reset' if _stream else '500'}-then-ok"] = _cut_before

    def _upstream_400(r: Ring, p: Lane = _p) -> None:
        r.fake(p).enqueue(r.error(p, 400, "ring: the upstream refuses this"))
        o = r.ask(p, stream=p.client == "openai")  # an HTTP error, streamed or not
        _failed(r, p, o, 400, attempts=1, upstream=1)
        assert "ring: the upstream refuses this" in o.error_message
        assert o.error_type == "invalid_request_error"

    def _upstream_401(r: Ring, p: Lane = _p) -> None:
        r.fake(p).enqueue(r.error(p, 401, "ring: bad provider key"))
        o = r.ask(p)
        # our provider key refused: a bad gateway naming the provider, not the upstream's
        # words nor the client's auth error (docs/upstream.md)
        _failed(r, p, o, 502, attempts=1, upstream=1)
        assert "rejected the gateway's credentials" in o.error_message
        assert o.error_type == ("upstream_error" if p.client == "openai" else "api_error")

    def _long_429(r: Ring, p: Lane = _p) -> None:
        # longer than max_delay (60 s): not waited out; the caller gets the upstream's 429 and
        # its retry-after, and the deployment cools for 120 s, which no later case may notice
        r.fake(p).enqueue(r.error(p, 429, "ring: slow down", {"retry-after": "120"}))
        o = r.ask(p)
        _failed(r, p, o, 429, attempts=1, upstream=1)
        assert o.headers["retry-after"] == "120" and o.error_type == "rate_limit_error"
        assert "ring: slow down" in o.error_message
        assert r.health()[p.deployment]["state"] == "cooldown"

    def _short_429(r: Ring, p: Lane = _p) -> None:
        r.fake(p).enqueue(r.error(p, 429, "ring: wait a second", {"retry-after": "1"}))
        t0 = time.monotonic()
        o = r.ask(p, stream=True)
        _ok(r, p, o, attempts=2, upstream=2)
        assert time.monotonic() - t0 >= 0.95  # the retry waited the upstream's retry-after
        assert o.text == r.fake(p).default_text

    def _bare_429(r: Ring, p: Lane = _p) -> None:
        r.fake(p).enqueue(r.error(p, 429, "ring: rate limited"))  # no retry-after
        o = r.ask(p)
        _ok(r, p, o, attempts=2, upstream=2)

    def _overloaded_once(r: Ring, p: Lane = _p) -> None:
        status = 529 if p.upstream == "anthropic" else 503
        r.fake(p).enqueue(r.error(p, status, "ring: overloaded"))
        o = r.ask(p, stream=True)
        _ok(r, p, o, attempts=2, upstream=2)

    def _overloaded_always(r: Ring, p: Lane = _p) -> None:
        status = 529 if p.upstream == "anthropic" else 503
        for _ in range(4):  # 1 + the default 3 retries
            r.fake(p).enqueue(r.error(p, status, "ring: overloaded", {"retry-after": "0"}))
        o = r.ask(p)
        _failed(r, p, o, 529, attempts=4, upstream=4)  # (503 to an OpenAI client)
        assert o.headers["retry-after"] == "0"

    def _500_always(r: Ring, p: Lane = _p) -> None:
        # four 500s: the third cools the deployment down (allowed_fails), yet as the only route
        # it is tried a fourth time; it is left cooling for the next cases
        for _ in range(4):
            r.fake(p).enqueue(r.error(p, 500, "ring: broken", {"retry-after": "0"}))
        o = r.ask(p, stream=True)
        _failed(r, p, o, 500, attempts=4, upstream=4)
        assert r.health()[p.deployment]["state"] == "cooldown"

    def _error_event_first(r: Ring, p: Lane = _p) -> None:
        # 200, then an error as the very first event: nothing reached the client, so retried
        if p.upstream == "anthropic":
            r.fake(p).enqueue(Reply(content=[text_block("x")], error_after=0))
        else:
            r.fake(p).enqueue(ChatReply(content="x", error_after=0))
        o = r.ask(p, stream=True)
        _ok(r, p, o, attempts=2, upstream=2)
        assert o.text == r.fake(p).default_text

    def _cut_mid_stream(r: Ring, p: Lane = _p) -> None:
        # bytes reached the client, then the upstream stream ends without its end: never
        # retried, never made to look complete: the SDK raises
        long = "a long answer that is cut off " * 4
        r.fake(p).enqueue(r.text(p, long, cut_after=4, pauses={3: 0.05}))
        o = r.ask(p, stream=True)
        assert o.status == 200 and o.stream_error is not None, o
        assert o.text and long.startswith(o.text) and len(o.text) < len(long)
        assert len(r.fake(p).requests) == 1 and not r.other(p).requests

    def _error_mid_stream(r: Ring, p: Lane = _p) -> None:
        long = "an answer interrupted by an error " * 4
        r.fake(p).enqueue(r.text(p, long, error_after=4, pauses={3: 0.05}))
        o = r.ask(p, stream=True)
        assert o.status == 200 and o.stream_error is not None, o
        assert o.text and long.startswith(o.text) and len(o.text) < len(long)
        assert len(r.fake(p).requests) == 1 and not r.other(p).requests

    def _client_leaves(r: Ring, p: Lane = _p) -> None:
        # the client hangs up after a few events of a long stream: the upstream connection is
        # dropped, and the deployment's in-flight count goes back to 0 (checked after each case)
        r.fake(p).enqueue(r.text(p, "tok " * 200, text_chunk=4, event_delay=0.02))
        o = r.ask(p, stream=True, stop_after=4)
        assert o.status == 200 and o.headers["x-dragoman-attempts"] == "1"
        (req,) = r.fake(p).requests
        wait_until(lambda: "client disconnected" in req.notes, 10, "upstream stream closed")

    def _burst_while_cooling(r: Ring, p: Lane = _p) -> None:
        # request A meets a 429 (retry-after 3) and waits it out; while the deployment cools,
        # three other requests arrive: the only route, so each reaches the upstream at once
        f = r.fake(p)
        f.enqueue(r.error(p, 429, "ring: slow down", {"retry-after": "3"}))
        with ThreadPoolExecutor(4) as ex:
            first = ex.submit(r.ask, p, "A")
            wait_until(lambda: r.health()[p.deployment]["state"] == "cooldown", 10, "cooling")
            others = [ex.submit(r.ask, p, f"B{i}") for i in range(3)]
            outs = [x.result() for x in others]
            a = first.result()
        assert [o.status for o in outs] == [200, 200, 200]
        assert all(o.headers["x-dragoman-attempts"] == "1" for o in outs)
        assert a.status == 200 and a.headers["x-dragoman-attempts"] == "2"
        assert len(f.requests) == 5

    def _legacy_completion(r: Ring, p: Lane = _p) -> None:
        r.fake(p).enqueue(r.text(p, "four"))
        resp = r.o.completions.create(model=p.model, prompt="2+2=", max_tokens=5)
        assert resp.object == "text_completion" and resp.choices[0].text == "four"
        assert len(r.fake(p).requests) == 1 and not r.other(p).requests

    CASES[f"{_p.name}-upstream-400"] = _upstream_400
    CASES[f"{_p.name}-upstream-429-retry-after-120"] = _long_429
    CASES[f"{_p.name}-upstream-429-retry-after-1-stream"] = _short_429
    CASES[f"{_p.name}-upstream-429-bare-then-ok"] = _bare_429
    CASES[f"{_p.name}-upstream-overloaded-then-ok-stream"] = _overloaded_once
    CASES[f"{_p.name}-upstream-overloaded-4x"] = _overloaded_always
    CASES[f"{_p.name}-upstream-500-4x-stream"] = _500_always
    CASES[f"{_p.name}-error-event-first-then-ok"] = _error_event_first
    CASES[f"{_p.name}-stream-cut-mid-way"] = _cut_mid_stream
    CASES[f"{_p.name}-error-event-mid-way"] = _error_mid_stream
    CASES[f"{_p.name}-client-disconnects-mid-stream"] = _client_leaves
    if _p.client == "anthropic":
        CASES[f"{_p.name}-upstream-401"] = _upstream_401
    if _p in (A2A, O2O):
        CASES[f"{_p.name}-burst-while-cooling"] = _burst_while_cooling
    if _p.client == "openai":
        CASES[f"{_p.name}-legacy-completion"] = _legacy_completion


@case("a2a-count-tokens")
def _count_a2a(r: Ring) -> None:
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "count " * 40}]}
    got = r.a.messages.count_tokens(**body)  # type: ignore[arg-type]
    assert got.input_tokens == r.anth.count_tokens(body)
    assert [q.path for q in r.anth.requests] == ["/v1/messages/count_tokens"]


@case("a2o-count-tokens")
def _count_a2o(r: Ring) -> None:
    got = r.a.messages.count_tokens(
        model="coder", messages=[{"role": "user", "content": "count " * 40}]
    )
    (req,) = r.vllm.requests
    assert req.path == "/tokenize"
    assert got.input_tokens == r.vllm.count_prompt_tokens(req.body)


@case("anthropic-models-list")
def _models_a(r: Ring) -> None:
    ids = {m.id for m in r.a.models.list()}
    assert {"claude-sonnet-4-5", "coder"} <= ids
    assert r.a.models.retrieve("coder").id == "coder"


@case("openai-models-list")
def _models_o(r: Ring) -> None:
    ids = {m.id for m in r.o.models.list()}
    assert {"claude-sonnet-4-5", "coder"} <= ids


@case("anthropic-bad-request-is-ours")
def _bad_a(r: Ring) -> None:
    with pytest.raises(anthropic.BadRequestError) as ei:
        r.a.messages.create(
            model="coder",
            max_tokens=10,
            messages=[{"role": "robot", "content": "x"}],  # type: ignore[list-item]
        )
    assert "role" in str(ei.value)
    assert not r.anth.requests and not r.vllm.requests


@case("openai-bad-request-is-ours")
def _bad_o(r: Ring) -> None:
    with pytest.raises(openai.BadRequestError):
        r.o.chat.completions.create(model="claude-sonnet-4-5", messages=[])
    assert not r.anth.requests and not r.vllm.requests


@case("unknown-model-404-both-dialects")
def _unknown(r: Ring) -> None:
    with pytest.raises(anthropic.NotFoundError):
        r.a.messages.create(
            model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.NotFoundError):
        r.o.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    assert not r.anth.requests and not r.vllm.requests


@case("wrong-key-401-both-dialects")
def _wrong_key(r: Ring) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=r.url, api_key="nope", max_retries=0).messages.create(
            model="coder", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=r.url + "/v1", api_key="nope", max_retries=0).models.list()
    assert not r.anth.requests and not r.vllm.requests


# -- the ring itself -----------------------------------------------------------------------------


def _seed() -> int:
    env = os.environ.get("DRAGOMAN_RING_SEED")
    return int(env) if env else random.SystemRandom().randrange(1, 2**31)


def test_ring(ring: Ring, request: pytest.FixtureRequest) -> None:
    seed = _seed()
    names = sorted(CASES)
    only = os.environ.get("DRAGOMAN_RING_CASES")
    if only:
        names = [n for n in names if n in set(only.split(","))]
    random.Random(seed).shuffle(names)
    request.node.user_properties.append(("ring_seed", seed))
    say = _say(request)
    say(f"ring: seed {seed} (replay: DRAGOMAN_RING_SEED={seed}), {len(names)} cases")
    failures: list[str] = []
    t0 = time.monotonic()
    generated = 0  # requests that reached an upstream's generation endpoint
    for i, name in enumerate(names):
        for f in (ring.anth, ring.vllm):
            generated += len(f.requests_to("/v1/messages") + f.requests_to("/v1/chat/completions"))
            f.reset()
        try:
            CASES[name](ring)
            ring.settled()
        except Exception:
            failures.append(f"#{i} {name}:\n{traceback.format_exc()}")
            try:  # leave nothing behind for the next case
                ring.settled()
            except AssertionError:
                pass
    took = time.monotonic() - t0
    say(f"ring: {len(names)} cases in {took:.1f}s, {len(failures)} failed")
    _books(ring, expect_rows=generated > 0)
    if failures:
        order = ", ".join(names)
        pytest.fail(
            f"ring seed {seed}: {len(failures)} of {len(names)} cases failed "
            f"(replay: DRAGOMAN_RING_SEED={seed})\norder: {order}\n\n" + "\n".join(failures),
            pytrace=False,
        )


def _books(ring: Ring, expect_rows: bool) -> None:
    """The store was on: usage rows were written and no ledger hold is left pending."""
    con = sqlite3.connect(ring.db)
    try:

        def rows() -> int:
            return int(con.execute("SELECT COUNT(*) FROM usage").fetchone()[0])

        if expect_rows:  # (the writer flushes every 50 ms)
            wait_until(lambda: rows() > 0, 10, "usage rows written")
        pending = con.execute("SELECT COUNT(*) FROM ledger WHERE status = 'pending'").fetchone()
        assert pending[0] == 0
    finally:
        con.close()


def _say(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Print past pytest's capture, so the seed shows in every run's log (under xdist it is in
    the test's user_properties and in any failure message)."""
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")

    def say(line: str) -> None:
        if tr is None or capman is None:
            print(line)
            return
        with capman.global_and_fixture_disabled():
            tr.write("\n")
            tr.write_line(line)

    return say
