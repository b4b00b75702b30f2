"""Prefix caches keep working behind dragoman: the recorded Claude Code turns 1 and 2
(tests/fixtures/claude_code_*), each with its own billing-header hash, replayed to every kind of
backend. Turn 2's upstream request starts with exactly turn 1's: the same system, the same tools
in the same order, every earlier message byte-identical. Claude Code's billing header, whose
``cch`` changes on every request, reaches api.anthropic.com untouched and nobody else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from tests.fakes import FakeAnthropic, FakeOpenAI
from tests.support import http
from tests.support.fixtures import load_json
from tests.support.servers import ServerThread

from dragoman.config import load_config_dict
from dragoman.server.app import create_app

KEY = "dg-prefix-key"
TURNS = ("claude_code_main_request.json", "claude_code_turn2_request.json")
HASHES = ("a1b2c", "9f8e7")
BILLING = "x-anthropic-billing-header"

# model -> (provider config extras, which fake, dialect of the upstream)
BACKENDS: dict[str, tuple[dict[str, Any], str, str]] = {
    "vllm": ({}, "vllm", "openai"),
    "sglang": ({}, "sglang", "openai"),
    "ollama": ({}, "ollama", "openai"),
    "llamacpp": ({}, "llamacpp", "openai"),
    "deepseek": ({"flavor": "deepseek"}, "deepseek", "openai"),
    "generic": ({}, "generic", "openai"),
    "anthropic-compatible": ({}, "anth", "anthropic"),
    "anthropic": ({"flavor": "anthropic"}, "anth", "anthropic"),
}


class Stack:
    def __init__(self) -> None:
        self.fakes: dict[str, Any] = {
            "vllm": FakeOpenAI("vllm"),
            "sglang": FakeOpenAI("sglang"),
            "ollama": FakeOpenAI("ollama"),
            "llamacpp": FakeOpenAI("llamacpp", max_model_len=65536),
            "deepseek": FakeOpenAI("deepseek"),
            "generic": FakeOpenAI("openai"),
            "anth": FakeAnthropic(),
        }
        for f in self.fakes.values():
            f.start()
        providers: dict[str, Any] = {}
        models: dict[str, Any] = {}
        for name, (extra, fake, kind) in BACKENDS.items():
            f = self.fakes[fake]
            base = f.base_url if kind == "openai" else f.url
            providers[name] = {"kind": kind, "base_url": base, "api_key": f.api_key, **extra}
            upstream = f.models[0] if kind == "openai" else "claude-sonnet-4-5"
            models[name] = {"provider": name, "model": upstream}
        config = load_config_dict(
            {
                "auth": {"keys": [KEY]},
                "providers": providers,
                "models": models,
                "routing": {"retries": {"max_retries": 0}},
                "store": {"enabled": False},
            }
        )
        self.gw = ServerThread(lambda: create_app(config), shutdown_timeout=0.5).start()

    def stop(self) -> None:
        self.gw.stop()
        for f in self.fakes.values():
            f.stop()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    s = Stack()
    yield s
    s.stop()


def _turn(stack: Stack, i: int, model: str) -> tuple[dict[str, Any], str]:
    """Replay turn ``i`` (headers, ``?beta=true``) with its own billing hash; returns the
    client's body and its billing text."""
    fx = load_json(TURNS[i])
    body = fx["body"]
    body["model"] = model
    billing = f"{BILLING}: cc_version=2.1.197.fbe; cc_entrypoint=sdk-cli; cch={HASHES[i]};"
    assert body["system"][0]["text"].startswith(BILLING)
    body["system"][0]["text"] = billing
    anth: FakeAnthropic = stack.fakes["anth"]
    anth.trust_signatures_in(body)  # turn 2's thinking signature is "from the real API"
    headers = {k: v for k, v in fx["headers"].items() if k != "x-api-key"}
    headers["x-api-key"] = KEY
    r = http.request("POST", f"{stack.gw.url}/v1/messages?beta=true", orjson.dumps(body), headers)
    assert r.status == 200, r.body
    assert b"event: error" not in r.body, r.body
    return body, billing


def _dumps(items: list[Any]) -> list[bytes]:
    return [orjson.dumps(x) for x in items]


@pytest.mark.parametrize("model", list(BACKENDS))
def test_turn_two_starts_with_turn_one(stack: Stack, model: str) -> None:
    _, fake_name, kind = BACKENDS[model]
    fake = stack.fakes[fake_name]
    fake.reset()
    _, billing1 = _turn(stack, 0, model)
    _, billing2 = _turn(stack, 1, model)
    path = "/v1/messages" if kind == "anthropic" else "/v1/chat/completions"
    sent = fake.requests_to(path)
    assert len(sent) == 2
    (t1, raw1), (t2, raw2) = ((r.body, r.raw) for r in sent)
    assert _dumps(t1["tools"]) == _dumps(t2["tools"]) and len(t1["tools"]) == 24
    m1, m2 = _dumps(t1["messages"]), _dumps(t2["messages"])
    assert m2[: len(m1)] == m1 and len(m2) > len(m1)
    if kind == "openai":  # one leading system message, the same on both turns
        assert t1["messages"][0]["role"] == "system"
        assert BILLING.encode() not in raw1 and BILLING.encode() not in raw2
        return
    if model == "anthropic":  # Anthropic itself: forwarded untouched, each with its own hash
        assert t1["system"][0]["text"] == billing1 and t2["system"][0]["text"] == billing2
        assert _dumps(t1["system"][1:]) == _dumps(t2["system"][1:])
        return
    # an Anthropic-speaking server that is not Anthropic (vLLM, llama.cpp, a proxy...)
    assert _dumps(t1["system"]) == _dumps(t2["system"])
    assert BILLING.encode() not in raw1 and BILLING.encode() not in raw2
    assert t1["system"][0]["text"].startswith("You are a Claude agent")
