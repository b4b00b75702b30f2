"""A real dragoman server (aiohttp, own thread, ephemeral port) in front of the wire-exact fakes.

Paths, by the model the client names:
  Anthropic SDK + ``claude-sonnet-4-5``  -> Anthropic fake       (A->A pass-through)
  Anthropic SDK + ``coder`` / ``claude-opus-4-8`` (pattern) -> vLLM fake  (A->O translated)
  OpenAI SDK    + ``coder``             -> vLLM fake            (O->O pass-through)
  OpenAI SDK    + ``claude-sonnet-4-5`` -> Anthropic fake       (O->A translated)
plus ``gpt-4.1`` on the api.openai.com-strict fake and ``llama`` on the Ollama fake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anthropic
import openai
from tests.fakes import FakeAnthropic, FakeOpenAI
from tests.support.invariants import (
    LEAVES_COOLDOWN,
    assert_consumed,
    assert_healthy,
    assert_settled,
    forget_health,
)
from tests.support.servers import ServerThread

from dragoman.cli import build
from dragoman.config import load_config_dict
from dragoman.server.app import create_app

KEY = "dg-test-key"
#: the admin key: /health details and /metrics need it (docs/security.md)
ADMIN_KEY = "dg-test-admin"
ADMIN = {"x-api-key": ADMIN_KEY}


def base_config(
    anth: FakeAnthropic, vllm: FakeOpenAI, oai: FakeOpenAI, ollama: FakeOpenAI
) -> dict[str, Any]:
    return {
        "auth": {"keys": [KEY], "admin_key": ADMIN_KEY},
        "server": {"max_body_bytes": 2 * 1024 * 1024},
        "providers": {
            # stands in for api.anthropic.com (known by host in real use): Claude Code's billing
            # header and real thinking signatures are forwarded to it
            "anthropic": {
                "kind": "anthropic",
                "base_url": anth.url,
                "api_key": anth.api_key,
                "flavor": "anthropic",
            },
            "vllm": {
                "kind": "openai",
                "base_url": vllm.base_url,
                "api_key": vllm.api_key,
                "flavor": "vllm",
            },
            "oai": {
                "kind": "openai",
                "base_url": oai.base_url,
                "api_key": oai.api_key,
                "flavor": "openai",
            },
            "ollama": {"kind": "openai", "base_url": ollama.base_url, "flavor": "ollama"},
        },
        "models": {
            "claude-sonnet-4-5": {"provider": "anthropic", "max_output_tokens": 64000},
            "coder": {
                "provider": "vllm",
                "model": "qwen3-coder",
                "context_window": 32768,
                "max_output_tokens": 8192,
            },
            "gpt-4.1": {"provider": "oai", "context_window": 128000},
            "o4-mini": {"provider": "oai", "context_window": 200000},
            "llama": {"provider": "ollama", "model": "qwen3:8b", "context_window": 32768},
        },
        "aliases": {"claude": "claude-sonnet-4-5", "claude-*": "coder"},
        # each scripted upstream error reaches the client as it is; the default retries,
        # cooldowns and a long-lived gateway are what test_ring.py runs
        "routing": {"retries": {"max_retries": 0}},
        "store": {"enabled": False},
    }


@dataclass
class Stack:
    url: str
    anthropic_fake: FakeAnthropic
    vllm: FakeOpenAI
    oai: FakeOpenAI
    ollama: FakeOpenAI
    server: ServerThread

    def anthropic(self, **kw: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=KEY, max_retries=0, **kw)

    def openai(self, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=KEY, max_retries=0, **kw)

    @property
    def fakes(self) -> tuple[FakeAnthropic, FakeOpenAI, FakeOpenAI, FakeOpenAI]:
        return (self.anthropic_fake, self.vllm, self.oai, self.ollama)

    def reset(self) -> None:
        """Fresh fakes, and a check (not a scrub) that no earlier test left a deployment cooling
        down or counting failures: cross-request state must stay visible (tests-review #1)."""
        for f in self.fakes:
            f.reset()
        assert_healthy(self.engine)
        for det in self.engine.detections.values():
            det.reasoning_fields.clear()  # what earlier tests' answers taught it

    def check(self, *, leaves_cooldown: bool = False) -> None:
        """After a test: every scripted reply consumed, nothing in flight, and no deployment
        cooling or counting failures unless the test is marked ``leaves_cooldown`` (then they
        are cleared here, openly)."""
        try:
            assert_consumed(*self.fakes)
            assert_settled(self.engine)
            if not leaves_cooldown:
                assert_healthy(self.engine)
        finally:
            forget_health(self.engine)

    @property
    def engine(self) -> Any:
        from dragoman.server.app import ENGINE

        assert self.server.app is not None
        return self.server.app[ENGINE]


def start_stack(
    overrides: dict[str, Any] | None = None,
    *,
    store: bool = False,
    extra_models: dict[str, Any] | None = None,
) -> Stack:
    """Fakes + a dragoman server. ``overrides`` replace whole config sections; ``extra_models``
    are added to the standard models; ``store=True`` opens the configured store (Accountant)."""
    # strict like api.anthropic.com: x-api-key only (a gateway must not forward the client's
    # Bearer token), and only the model ids the harness serves
    anth = FakeAnthropic(accept_bearer=False, strict_models=True).start()
    vllm = FakeOpenAI("vllm").start()
    oai = FakeOpenAI("openai").start()
    ollama = FakeOpenAI("ollama").start()
    cfg = base_config(anth, vllm, oai, ollama)
    for k, v in (overrides or {}).items():
        cfg[k] = v
    cfg["models"] = {**cfg["models"], **(extra_models or {})}
    config = load_config_dict(cfg)

    async def make_app() -> Any:
        # built as `dragoman serve` builds it (stored credentials resolved, store opened)
        if not store:
            config.store.enabled = False
        engine, accountant = await build(config)
        return create_app(config, engine, accountant)

    # as `dragoman serve` runs it: handlers are cancelled when their client disconnects
    server = ServerThread(make_app, shutdown_timeout=0.5, handler_cancellation=True).start()
    return Stack(server.url, anth, vllm, oai, ollama, server)


def check_stacks(request: Any) -> None:
    """Run ``Stack.check`` on every stack the finished test used (a fixture value that is a
    Stack, or a tuple holding one), honouring ``@pytest.mark.leaves_cooldown``."""
    leaves = request.node.get_closest_marker(LEAVES_COOLDOWN) is not None
    seen: set[int] = set()
    for value in getattr(request.node, "funcargs", {}).values():
        for s in value if isinstance(value, tuple) else (value,):
            if isinstance(s, Stack) and id(s) not in seen and s.server.app is not None:
                seen.add(id(s))
                s.check(leaves_cooldown=leaves)


def stop_stack(s: Stack) -> None:
    s.server.stop()
    for f in (s.anthropic_fake, s.vllm, s.oai, s.ollama):
        f.stop()
