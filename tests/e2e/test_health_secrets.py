"""``/health`` says "degraded" when some model has no usable deployment, and no secret (client,
admin, provider or master key, or a virtual key) reaches a log line or a client's error body,
across a run of a real ``dragoman serve`` that answers every error type."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.harness import ADMIN, KEY, Stack
from tests.fakes import (
    ChatReply,
    ErrorReply,
    FakeAnthropic,
    FakeOpenAI,
    OpenAIErrorReply,
)
from tests.support import http
from tests.support.invariants import forget_health

A = {"anthropic-version": "2023-06-01"}


@pytest.mark.leaves_cooldown
def test_health_degraded_while_a_model_cools_down(stack: Stack) -> None:
    h = http.get(stack.url + "/health", ADMIN).json()
    assert h["status"] == "ok"
    stack.vllm.enqueue(
        OpenAIErrorReply(429, "slow down", type="RateLimitError", headers={"retry-after": "30"})
    )
    r = http.post(
        stack.url + "/v1/chat/completions",
        {"model": "coder", "messages": [{"role": "user", "content": "x"}]},
        {"x-api-key": KEY},
    )
    assert r.status == 429
    h = http.get(stack.url + "/health", ADMIN).json()
    assert h["status"] == "degraded"
    (dep,) = h["deployments"]["coder"]
    assert (dep["name"], dep["provider"], dep["state"], dep["inflight"]) == (
        "coder/vllm",
        "vllm",
        "cooldown",
        0,
    )
    assert dep["cooldown_remaining_s"] > 0 and dep["last_error"].startswith("429")
    # other models still serve; the gateway as a whole is degraded, not down
    assert h["deployments"]["claude-sonnet-4-5"][0]["state"] == "ok"
    forget_health(stack.engine)
    assert http.get(stack.url + "/health", ADMIN).json()["status"] == "ok"


# -- a real `dragoman serve`, every error type --------------------------------------------


def _refused_port() -> tuple[socket.socket, int]:
    """A port nobody listens on, held by a socket we own (bound, never listening)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


@pytest.fixture
def fakes() -> Iterator[dict[str, Any]]:
    anth = FakeAnthropic().start()
    vllm = FakeOpenAI("vllm").start()
    oai = FakeOpenAI("openai").start()
    try:
        yield {"anthropic": anth, "vllm": vllm, "openai": oai}
    finally:
        for f in (anth, vllm, oai):
            f.stop()


def _serve(cfg: Path, tmp: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int, Path]:
    """``serve --port 0`` logging to a file (not a pipe: DEBUG logs must never block the
    server); the port is read from the line it prints once it listens."""
    log = tmp / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dragoman", "serve", "--config", str(cfg), "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        m = re.search(r"dragoman serving on http://\S+?:(\d+) ", log.read_text())
        if m:
            return proc, int(m.group(1)), log
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("server did not start")
        time.sleep(0.05)


def test_no_secret_in_logs_or_error_bodies(fakes: dict[str, Any], tmp_path: Path) -> None:
    anth, vllm, oai = fakes["anthropic"], fakes["vllm"], fakes["openai"]
    down_sock, down_port = _refused_port()
    admin = "admin-" + uuid.uuid4().hex
    client = "client-" + uuid.uuid4().hex
    master = "master-" + uuid.uuid4().hex + uuid.uuid4().hex
    wrong_provider_key = "sk-wrong-" + uuid.uuid4().hex
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"auth: {{keys: ['{client}'], admin_key: '{admin}'}}\n"
        "server: {max_body_bytes: 20000, log_level: DEBUG}\n"
        "routing: {retries: {max_retries: 0}}\n"
        "providers:\n"
        f"  anth: {{kind: anthropic, base_url: '{anth.url}', api_key: '{anth.api_key}'}}\n"
        f"  vllm: {{kind: openai, base_url: '{vllm.base_url}', api_key: '{vllm.api_key}'}}\n"
        f"  slow: {{kind: openai, base_url: '{vllm.base_url}', api_key: '{vllm.api_key}',"
        " timeouts: {first_byte: 0.5}}\n"
        f"  badkey: {{kind: openai, flavor: openai, base_url: '{oai.base_url}',"
        f" api_key: '{wrong_provider_key}'}}\n"
        f"  down: {{kind: openai, base_url: 'http://127.0.0.1:{down_port}/v1', api_key: 'x'}}\n"
        "models:\n"
        "  claude-sonnet-4-5: {provider: anth}\n"
        "  claude2: {provider: anth, model: claude-sonnet-4-5}\n"
        "  coder: {provider: vllm, model: qwen3-coder, context_window: 32768}\n"
        "  slowmodel: {provider: slow, model: qwen3-coder}\n"
        "  gpt-4.1: {provider: badkey}\n"
        "  gone: {provider: down}\n"
        f"store: {{url: 'sqlite:///{tmp_path}/s.db', flush_interval: 0.05}}\n"
        "accounting: {prices: {coder: {input: 1, output: 1}}}\n"
    )
    proc, port, log = _serve(
        cfg, tmp_path, {"DRAGOMAN_MASTER_KEY": master, "DRAGOMAN_LOG_LEVEL": "DEBUG"}
    )
    url = f"http://127.0.0.1:{port}"
    bodies: list[bytes] = []
    try:
        # without the admin key, /health says only whether the gateway is up
        assert http.get(url + "/health").json() == {"status": "degraded"}
        h = http.get(url + "/health", {"x-api-key": admin}).json()
        assert h["status"] == "degraded"  # "gone" has no usable deployment: its provider is down
        assert h["providers"]["down"]["ok"] is False and h["providers"]["vllm"]["ok"] is True
        made = http.post(
            url + "/admin/keys",
            {"alias": "tiny", "models": ["coder"], "budget": 1e-9},
            {"x-api-key": admin},
        )
        assert made.status == 201
        virtual = made.json()["secret"]
        anth.enqueue(ErrorReply(429, "rate_limit_error", "Number of request tokens has exceeded"))
        anth.enqueue(ErrorReply(529, "overloaded_error", "Overloaded"))
        vllm.enqueue(OpenAIErrorReply(500, "boom", type="InternalServerError", code=500))
        vllm.enqueue(ChatReply(content="late", first_byte_delay=3))
        msg = [{"role": "user", "content": "x"}]

        def m(model: str, **extra: Any) -> dict[str, Any]:
            return {"model": model, "max_tokens": 5, "messages": msg, **extra}

        # (body, extra headers, the error type an Anthropic client gets)
        calls: list[tuple[Any, dict[str, str], str]] = [
            ({"model": "coder", "max_tokens": 5}, {}, "invalid_request_error"),
            (m("coder"), {"x-api-key": "nope"}, "authentication_error"),
            (m("coder"), {"x-api-key": virtual}, "billing_error"),
            (m("claude-sonnet-4-5"), {"x-api-key": virtual}, "permission_error"),
            (m("nope"), {}, "not_found_error"),
            (b"x" * 30000, {"content-type": "application/json"}, "request_too_large"),
            (m("claude-sonnet-4-5"), {}, "rate_limit_error"),
            (m("claude2"), {}, "overloaded_error"),
            (m("coder"), {}, "api_error"),
            (m("slowmodel"), {}, "timeout_error"),
            (m("gone"), {}, "overloaded_error"),  # connection refused
        ]
        for body, headers, want in calls:
            r = http.post(url + "/v1/messages", body, {"x-api-key": client, **A, **headers})
            assert r.status >= 400, (body, r.status, r.body)
            bodies.append(r.body)
            assert r.json()["error"]["type"] == want, (body, r.body)
        # an upstream that rejects our provider key (api.openai.com echoes part of it)
        r = http.post(
            url + "/v1/chat/completions",
            {"model": "gpt-4.1", "messages": msg},
            {"authorization": f"Bearer {client}"},
        )
        assert r.status >= 400
        bodies.append(r.body)
        assert oai.last_request.header("authorization") == f"Bearer {wrong_provider_key}"
    finally:
        proc.terminate()
        proc.wait(20)
        down_sock.close()
    logs = log.read_bytes()
    assert b"DEBUG" in logs or b'"level":"DEBUG"' in logs  # the run really logged at DEBUG
    secrets = {
        "client key": client,
        "admin key": admin,
        "master key": master,
        "virtual key": virtual,
        "anthropic provider key": anth.api_key,
        "vllm provider key": vllm.api_key,
        "rejected provider key": wrong_provider_key,
    }
    for what, secret in secrets.items():
        assert secret.encode() not in logs, f"the {what} is in the logs"
        for b in bodies:
            assert secret.encode() not in b, f"the {what} is in an error body: {b!r}"
