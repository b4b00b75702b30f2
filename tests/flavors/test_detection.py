"""``flavor: auto`` against wire-exact fakes of each server kind, through a real dragoman server
and the official SDKs: what each server is detected as and why, what each then receives, the
context windows they report clamping ``max_tokens``, a server down at start asked again later,
and the reasoning field learned from a server's own answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from click.testing import CliRunner
from tests.fakes import ChatReply, FakeAnthropic, FakeOpenAI, ToolCall
from tests.support import http
from tests.support.servers import ServerThread

from dragoman.bootstrap import build_gateway
from dragoman.cli import main
from dragoman.config import load_config_dict
from dragoman.core.gateway import Gateway
from dragoman.server.app import create_app
from dragoman.tokens import estimate_anthropic_request_tokens, estimate_openai_request_tokens

KEY = "dg-flavor-key"
#: /health's flavors need the admin key (docs/security.md)
ADMIN = {"x-api-key": "dg-flavor-admin"}
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@dataclass
class Fakes:
    vllm: FakeOpenAI
    sglang: FakeOpenAI
    ollama: FakeOpenAI
    llamacpp: FakeOpenAI
    unknown: FakeOpenAI  # api.openai.com's strict wire, served from 127.0.0.1: nobody we know
    learner: FakeOpenAI  # a vLLM that gives nothing away, answering in reasoning_content
    anth: FakeAnthropic

    def all(self) -> list[Any]:
        return [getattr(self, k) for k in self.__dataclass_fields__]


def _config(f: Fakes) -> dict[str, Any]:
    def prov(fake: FakeOpenAI) -> dict[str, Any]:
        return {"kind": "openai", "base_url": fake.base_url, "api_key": fake.api_key}

    return {
        "auth": {"keys": [KEY], "admin_key": ADMIN["x-api-key"]},
        "providers": {
            "vllm": prov(f.vllm),
            "sglang": prov(f.sglang),
            "ollama": prov(f.ollama),
            "llamacpp": prov(f.llamacpp),
            "unknown": prov(f.unknown),
            "learner": prov(f.learner),
            "anth": {"kind": "anthropic", "base_url": f.anth.url, "api_key": f.anth.api_key},
        },
        "models": {
            "v": {"provider": "vllm", "model": "qwen3-coder"},
            "v-small": {"provider": "vllm", "model": "qwen3-coder", "context_window": 2048},
            "s": {"provider": "sglang", "model": "Qwen/Qwen3-8B"},
            "o": {"provider": "ollama", "model": "qwen3:8b"},
            "l": {"provider": "llamacpp", "model": "qwen3-8b-q4_k_m.gguf"},
            "u": {"provider": "unknown", "model": "gpt-4.1"},
            "learn-s": {"provider": "learner", "model": "thinker-s"},
            "learn-n": {"provider": "learner", "model": "thinker-n"},
            "learn-o": {"provider": "learner", "model": "thinker-o"},
            "a": {"provider": "anth", "model": "claude-sonnet-4-5"},
        },
        "routing": {"retries": {"max_retries": 0}},
        "store": {"enabled": False},
    }


@pytest.fixture(scope="module")
def fakes() -> Iterator[Fakes]:
    f = Fakes(
        FakeOpenAI("vllm", max_model_len=4096),
        FakeOpenAI("sglang"),
        FakeOpenAI("ollama", max_model_len=16384),
        FakeOpenAI("llamacpp"),
        FakeOpenAI("openai"),
        FakeOpenAI(
            "vllm", detectable=False, accept_any_model=True, reasoning_field="reasoning_content"
        ),
        FakeAnthropic(),
    )
    for x in f.all():
        x.start()
    yield f
    for x in f.all():
        x.stop()


@pytest.fixture(scope="module")
def gw(fakes: Fakes) -> Iterator[ServerThread]:
    config = load_config_dict(_config(fakes))
    srv = ServerThread(lambda: create_app(config), shutdown_timeout=0.5).start()
    yield srv
    srv.stop()


def _a(gw: ServerThread) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=KEY, max_retries=0, timeout=20)


def _o(gw: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0, timeout=20)


def test_each_server_is_detected_and_health_says_why(gw: ServerThread, fakes: Fakes) -> None:
    body = http.get(gw.url + "/health", ADMIN).json()
    assert set(body) == {"status", "uptime_s", "providers", "deployments", "flavors", "pid"}
    flavors = body["flavors"]
    assert flavors["vllm"] == {
        "flavor": "vllm",
        "how": "GET /version answered vllm 0.11.0",
        "settled": True,
        "context_windows": {"qwen3-coder": 4096},
    }
    assert flavors["sglang"] == {
        "flavor": "sglang",
        "how": "GET /get_server_info answered sglang 0.5.4",
        "settled": True,
        "context_windows": {"Qwen/Qwen3-8B": 40960},
    }
    assert flavors["ollama"] == {
        "flavor": "ollama",
        "how": "GET /api/version answered ollama 0.12.6",
        "settled": True,
        "context_windows": {"qwen3:8b": 16384},
    }
    assert flavors["llamacpp"] == {
        "flavor": "llamacpp",
        "how": "GET /props answered llama.cpp b6700-5e4b1b4",
        "settled": True,
        "context_windows": {"*": 8192},
    }
    unknown = flavors["unknown"]
    assert (unknown["flavor"], unknown["settled"]) == ("generic", True)
    assert unknown["how"].startswith("not recognised (/v1/models -> 200, /version -> 404")
    assert unknown["how"].endswith("standard fields only")
    assert flavors["anth"] == {
        "flavor": "generic",
        "how": "host 127.0.0.1 is not api.anthropic.com",
        "settled": True,
    }
    # asked once, at start, apart from the traffic: no generation request was made
    assert [p.path for p in fakes.vllm.probes if p.path == "/version"] == ["/version"]
    assert fakes.vllm.requests == [] and fakes.anth.requests == []


@pytest.mark.parametrize(
    ("model", "fake", "expected", "absent"),
    [
        (
            "v",
            "vllm",
            {
                "chat_template_kwargs": {"enable_thinking": True},
                "reasoning_effort": "high",
                "top_k": 5,
                "stop": ["a", "b", "c", "d", "e"],
            },
            (),
        ),
        (
            "s",
            "sglang",
            {"chat_template_kwargs": {"enable_thinking": True}, "reasoning_effort": "high"},
            (),
        ),
        ("o", "ollama", {"reasoning_effort": "high"}, ("top_k", "chat_template_kwargs")),
        (
            "l",
            "llamacpp",
            {"chat_template_kwargs": {"enable_thinking": True}, "top_k": 5},
            ("reasoning_effort",),
        ),
        # nobody we know: standard fields only (the fake, strict as api.openai.com, would 400
        # on top_k or chat_template_kwargs), at most 4 stop sequences
        (
            "u",
            "unknown",
            {"stop": ["a", "b", "c", "d"], "max_tokens": 100},
            ("top_k", "chat_template_kwargs", "reasoning_effort", "thinking"),
        ),
    ],
)
def test_each_flavor_gets_what_it_takes(
    gw: ServerThread,
    fakes: Fakes,
    model: str,
    fake: str,
    expected: dict[str, Any],
    absent: tuple[str, ...],
) -> None:
    up: FakeOpenAI = getattr(fakes, fake)
    up.reset()
    msg = _a(gw).messages.create(
        model=model,
        max_tokens=100,
        messages=[{"role": "user", "content": "hi"}],
        thinking={"type": "adaptive"},  # type: ignore[arg-type,typeddict-item]
        stop_sequences=["a", "b", "c", "d", "e"],
        extra_body={"output_config": {"effort": "high"}, "top_k": 5},
    )
    assert msg.content[-1].type == "text"
    sent = up.last_request.body
    assert {k: sent.get(k) for k in expected} == expected
    assert not set(absent) & set(sent)


def test_max_tokens_clamped_to_the_reported_window(gw: ServerThread, fakes: Fakes) -> None:
    """The Vercel AI SDK sends ``max_tokens: 128000`` for models it does not know: a server
    with a smaller window would refuse it; dragoman lowers it to what the window leaves."""
    msgs = [{"role": "user", "content": "Write a long essay about the sea."}]
    # O->O pass-through to vLLM (max_model_len 4096 in /v1/models)
    fakes.vllm.reset()
    _o(gw).chat.completions.create(model="v", messages=msgs, max_tokens=128000)  # type: ignore[arg-type]
    est = estimate_openai_request_tokens({"model": "v", "messages": msgs, "max_tokens": 128000})
    assert fakes.vllm.last_request.body["max_tokens"] == 4096 - est
    # the config's window wins over the server's
    _o(gw).chat.completions.create(model="v-small", messages=msgs, max_tokens=128000)  # type: ignore[arg-type]
    est = estimate_openai_request_tokens(
        {"model": "v-small", "messages": msgs, "max_tokens": 128000}
    )
    assert fakes.vllm.last_request.body["max_tokens"] == 2048 - est
    # A->O to llama.cpp (n_ctx 8192 in /props) and Ollama (/api/show context_length 16384)
    for model, fake, window in (("l", fakes.llamacpp, 8192), ("o", fakes.ollama, 16384)):
        fake.reset()
        _a(gw).messages.create(model=model, max_tokens=64000, messages=msgs)  # type: ignore[arg-type]
        est = estimate_anthropic_request_tokens(
            {"model": model, "max_tokens": 64000, "messages": msgs}
        )
        assert fake.last_request.body["max_tokens"] == window - est


def test_reasoning_field_learned_from_the_servers_answers(gw: ServerThread, fakes: Fakes) -> None:
    """A server nobody recognises that answers in ``reasoning_content`` gets the reasoning back
    in ``reasoning_content`` on the next turn: learned from a stream, and from a plain answer."""
    fake = fakes.learner
    client = _a(gw)
    for model, stream in (("learn-s", True), ("learn-n", False)):
        fake.reset()
        turn1 = [{"role": "user", "content": "Weather in Paris?"}]
        fake.enqueue(
            ChatReply(
                reasoning="Use the tool.",
                tool_calls=[ToolCall("call_1", "get_weather", '{"city": "Paris"}')],
            ),
            ChatReply(content="18C in Paris."),
        )
        kw: dict[str, Any] = {"model": model, "max_tokens": 200, "tools": [WEATHER]}
        if stream:
            with client.messages.stream(messages=turn1, **kw) as s:  # type: ignore[arg-type]
                first = s.get_final_message()
        else:
            first = client.messages.create(messages=turn1, **kw)  # type: ignore[arg-type]
        assert [b.type for b in first.content] == ["thinking", "tool_use"]
        # before the answer taught it, nothing was sent back in any reasoning field
        turn2 = [
            *turn1,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18C"}],
            },
        ]
        final = client.messages.create(messages=turn2, **kw)  # type: ignore[arg-type]
        assert final.content[-1].text == "18C in Paris."  # type: ignore[union-attr]
        assistant = fake.last_request.body["messages"][1]
        assert assistant["reasoning_content"] == "Use the tool." and "reasoning" not in assistant
    # an OpenAI client's stream, passed through, teaches it too
    fake.enqueue(ChatReply(reasoning="Hm.", content="Hi."))
    chunks = list(
        _o(gw).chat.completions.create(
            model="learn-o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hi."
    learned = http.get(gw.url + "/health", ADMIN).json()["flavors"]["learner"]["reasoning_fields"]
    assert learned == {
        "thinker-s": "reasoning_content",
        "thinker-n": "reasoning_content",
        "thinker-o": "reasoning_content",
    }


def test_a_server_down_at_start_is_asked_again_later() -> None:
    """At start the server does not answer: standard fields only, and /health says so. Once it
    is up, the first request after ``RETRY_AFTER`` asks again, and from then on it is vLLM."""
    fake = FakeOpenAI("vllm").start()
    url, port = fake.base_url, fake._server.port  # type: ignore[union-attr]
    fake.stop()  # nothing listens there now: connection refused
    now = [1000.0]
    cfg = load_config_dict(
        {
            "providers": {"p": {"kind": "openai", "base_url": url, "api_key": fake.api_key}},
            "models": {"m": {"provider": "p", "model": "qwen3-coder"}},
            "routing": {"retries": {"max_retries": 0}},
            "store": {"enabled": False},
            "auth": {"keys": [KEY], "admin_key": ADMIN["x-api-key"]},
        }
    )
    engine_box: dict[str, Gateway] = {}

    def make_app() -> Any:
        engine_box["e"] = build_gateway(cfg, clock=lambda: now[0])
        return create_app(cfg, gateway=engine_box["e"])

    gw = ServerThread(make_app, shutdown_timeout=0.5).start()
    try:
        det = http.get(gw.url + "/health", ADMIN).json()["flavors"]["p"]
        assert (det["flavor"], det["settled"]) == ("generic", False)
        assert det["how"].startswith(f"no answer from {url[: -len('/v1')]} (")
        # back up, on the same port
        back = ServerThread(fake.app(), port=port).start()
        try:
            body = {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}],
                    "thinking": {"type": "enabled", "budget_tokens": 2048}}  # fmt: skip
            hdr = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
            r = http.post(gw.url + "/v1/messages", body, hdr)
            assert r.status == 200  # within RETRY_AFTER: not asked again, standard fields
            assert "chat_template_kwargs" not in fake.requests[-1].body
            assert fake.probes == []
            now[0] += 31
            assert http.post(gw.url + "/v1/messages", body, hdr).status == 200
            assert {p.path for p in fake.probes} >= {"/version", "/v1/models"}
            assert fake.requests[-1].body["chat_template_kwargs"] == {"enable_thinking": True}
            det = http.get(gw.url + "/health", ADMIN).json()["flavors"]["p"]
            assert (det["flavor"], det["how"], det["settled"]) == (
                "vllm",
                "GET /version answered vllm 0.11.0",
                True,
            )
        finally:
            back.stop()
    finally:
        gw.stop()


def test_route_shows_the_flavor_and_why(fakes: Fakes, tmp_path: Path) -> None:
    cfg = tmp_path / "dragoman.yaml"
    cfg.write_text(json.dumps(_config(fakes)))  # JSON is YAML
    req = tmp_path / "req.json"
    req.write_text(json.dumps({"model": "v", "max_tokens": 10, "messages": []}))
    out = CliRunner().invoke(main, ["route", "--config", str(cfg), str(req)])
    assert out.exit_code == 0, out.output
    assert (
        "  flavor:    vllm (GET /version answered vllm 0.11.0); context window 4096 (reported by "
        "the server)\n"
    ) in out.output
    req.write_text(json.dumps({"model": "a", "max_tokens": 10, "messages": []}))
    out = CliRunner().invoke(main, ["route", "--config", str(cfg), str(req)])
    assert "  flavor:    generic (host 127.0.0.1 is not api.anthropic.com)\n" in out.output
    cfg.write_text(json.dumps({**_config(fakes), "providers": {
        **_config(fakes)["providers"],
        "vllm": {"kind": "openai", "base_url": fakes.vllm.base_url, "flavor": "sglang",
                 "api_key": fakes.vllm.api_key},
    }}))  # fmt: skip
    req.write_text(json.dumps({"model": "v", "max_tokens": 10, "messages": []}))
    out = CliRunner().invoke(main, ["route", "--config", str(cfg), str(req)])
    assert "  flavor:    sglang (configured); context window 4096 (reported by the server)\n" in (
        out.output
    )
