"""count_tokens, models, health/ping/HEAD, the CLI's config handling and start-up checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.e2e.harness import ADMIN, KEY, Stack
from tests.support import http
from tests.support.serve import ServeProcess
from tests.support.sockets import RefusedPort

from dragoman.cli import main, model_table
from dragoman.config import ConfigError, config_from_env, load_config

A_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


def test_count_tokens_anthropic_backend_uses_upstream(stack: Stack) -> None:
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello " * 50}]}
    got = stack.anthropic().messages.count_tokens(**body)  # type: ignore[arg-type]
    assert got.input_tokens == stack.anthropic_fake.count_tokens(body)
    assert stack.anthropic_fake.last_request.path == "/v1/messages/count_tokens"


def test_count_tokens_vllm_uses_tokenize(stack: Stack) -> None:
    r = http.post(
        stack.url + "/v1/messages/count_tokens?beta=true",
        {"model": "coder", "messages": [{"role": "user", "content": "hello " * 50}]},
        A_HEADERS,
    )
    assert r.status == 200
    req = stack.vllm.last_request
    assert req.path == "/tokenize"
    assert r.json()["input_tokens"] == stack.vllm.count_prompt_tokens(req.body)


def test_count_tokens_estimate_errs_high(stack: Stack) -> None:
    text = "The quick brown fox jumps over the lazy dog; def f(x): return {'a': [1, 2, 3]}\n" * 40
    r = http.post(
        stack.url + "/v1/messages/count_tokens",
        {"model": "llama", "messages": [{"role": "user", "content": text}]},
        A_HEADERS,
    )
    n = r.json()["input_tokens"]
    truth = stack.ollama.count_prompt_tokens({"messages": [{"role": "user", "content": text}]})
    assert n >= truth > 0
    assert stack.ollama.requests_to("/tokenize") == []


def test_models_in_both_shapes(stack: Stack) -> None:
    a = http.get(stack.url + "/v1/models", A_HEADERS).json()
    assert set(a) == {"data", "has_more", "first_id", "last_id"}
    assert {m["type"] for m in a["data"]} == {"model"}
    ids = {m["id"] for m in a["data"]}
    assert {"claude-sonnet-4-5", "coder", "claude"} <= ids
    o = http.get(stack.url + "/v1/models", {"authorization": f"Bearer {KEY}"}).json()
    assert o["object"] == "list" and all(m["object"] == "model" for m in o["data"])
    page = stack.openai().models.list()
    assert "coder" in {m.id for m in page.data}
    one = stack.anthropic().models.retrieve("coder")
    assert one.id == "coder"
    # an unknown claude-* name resolves through the pattern rather than 404
    assert stack.anthropic().models.retrieve("claude-opus-4-8").id == "claude-opus-4-8"


def test_health_ping_head(stack: Stack) -> None:
    h = http.get(stack.url + "/health", ADMIN).json()
    assert h["status"] == "ok" and "coder" in h["deployments"]
    assert h["deployments"]["coder"][0]["state"] == "ok"
    assert http.get(stack.url + "/ping").body == b"pong"
    assert http.request("HEAD", stack.url + "/").status == 200
    assert http.request("HEAD", stack.url + "/?beta=true").status == 200


# -- config ----------------------------------------------------------------------------------


def test_config_errors_name_file_and_key(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        "providers:\n  local: {kind: openai, base_url: 'http://x/v1'}\n"
        "models:\n  coder: {provider: locl}\n"
    )
    with pytest.raises(ConfigError) as ei:
        load_config(f)
    assert str(f) in str(ei.value) and "models.coder.provider" in str(ei.value)
    f.write_text("providers:\n  local: {kind: openai, base_url: 'http://x', colour: red}\n")
    with pytest.raises(ConfigError, match=r"providers\.local\.colour: unknown key"):
        load_config(f)
    res = CliRunner().invoke(main, ["serve", "--config", str(f)])
    assert res.exit_code != 0 and "colour" in res.output


def test_env_expansion(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(
        "auth: {keys: ['${DG_T_KEY}', '${DG_T_MISSING}']}\n"
        "providers:\n  p: {kind: openai, base_url: '${DG_T_URL:-http://127.0.0.1:9/v1}',"
        " api_key: '${DG_T_SECRET:-none}'}\n"
        "models:\n  m: {provider: p}\n"
    )
    cfg = load_config(f, env={"DG_T_KEY": "k1", "DG_T_SECRET": "s3"})
    assert cfg.auth.keys == ["k1"]
    assert cfg.providers["p"].base_url == "http://127.0.0.1:9/v1"
    assert cfg.providers["p"].api_key == "s3"


def test_config_from_env_and_model_table() -> None:
    cfg = config_from_env(
        {"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o", "OPENAI_BASE_URL": "http://x/v1"}
    )
    assert cfg.providers["anthropic"].kind == "anthropic"
    assert cfg.providers["openai"].base_url == "http://x/v1"
    table = model_table(cfg)
    assert "claude-sonnet-4-5" in table and "gpt-4o" in table and "claude-*" in table


def test_example_configs_validate() -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    files = sorted(root.glob("*.yaml"))
    # the two the README points at must be there (an empty glob would pass every loop below)
    assert {f.name for f in files} >= {"dragoman.yaml", "claude-router-aliases.yaml"}
    for f in files:
        cfg = load_config(f, env={})
        assert cfg.models and cfg.providers, f"{f.name} configures no model"
        assert cfg.source == str(f)


def test_serve_subprocess_and_require_healthy(tmp_path: Path, stack: Stack) -> None:
    """`dragoman serve` as a real process: starts on the port the OS gives it (``--port 0``,
    reported on its first line), serves, and --require-healthy refuses to start while a
    provider is down (a refused port the test owns)."""
    with RefusedPort() as down:
        f = tmp_path / "c.yaml"
        f.write_text(
            f"providers:\n  up: {{kind: openai, base_url: '{stack.vllm.base_url}',"
            f" api_key: '{stack.vllm.api_key}'}}\n"
            f"  down: {{kind: openai, base_url: '{down.url}/v1'}}\n"
            "models:\n  coder: {provider: up, model: qwen3-coder}\n  other: {provider: down}\n"
            "store: {enabled: false}\n"
        )
        env = {**os.environ, "DRAGOMAN_LOG_LEVEL": "WARNING"}
        bad = subprocess.run(
            [
                sys.executable,
                "-m",
                "dragoman",
                "serve",
                "--config",
                str(f),
                "--port",
                "0",
                "--require-healthy",
            ],
            capture_output=True,
            env=env,
            timeout=60,
        )
        assert bad.returncode == 1 and b"down" in bad.stderr
        with ServeProcess(f) as srv:
            assert srv.port > 0 and srv.url == f"http://127.0.0.1:{srv.port}"
            r = http.post(
                srv.url + "/v1/chat/completions",
                {"model": "coder", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status == 200 and r.json()["choices"][0]["message"]["content"]
            assert srv.stop() == 0
