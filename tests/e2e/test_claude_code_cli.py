"""The real Claude Code CLI, through dragoman, on a vLLM-shaped upstream.

Skipped unless ``claude`` is on PATH (``npm install -g @anthropic-ai/claude-code``, pinned in
``.ci/run``; nothing is downloaded at run time); under ``CI=true`` that skip is a failure.
Headless mode with the Bash tool: Claude Code sends its real main-loop request (24 tools, system
blocks with the billing header, adaptive thinking, betas, ``?beta=true``), streams the answer,
runs the tool, and sends the tool result back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.e2e.harness import KEY, Stack
from tests.fakes import ChatReply

CLAUDE = shutil.which("claude")
pytestmark = [
    pytest.mark.claude_code,  # under CI=true a skip here fails the run (tests/conftest.py)
    pytest.mark.skipif(CLAUDE is None, reason="Claude Code CLI not installed"),
]


def _run(stack: Stack, tmp_path: Path, prompt: str, *extra: str) -> dict:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "ANTHROPIC_BASE_URL": stack.url,
        "ANTHROPIC_API_KEY": KEY,
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    assert CLAUDE is not None
    p = subprocess.run(
        [CLAUDE, "-p", prompt, "--output-format", "json", *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert p.stdout, p.stderr
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


def test_claude_code_tool_round_trip_on_vllm(stack: Stack, tmp_path: Path) -> None:
    stack.vllm.enqueue(
        ChatReply(
            content="I'll run it.",
            reasoning="The user wants me to run a command.",
            tool_calls=[
                ("call_1", "Bash", {"command": "echo dragoman-ok", "description": "Print a word"})
            ],
        ),
        ChatReply(content="The command printed dragoman-ok."),
    )
    out = _run(stack, tmp_path, "run echo dragoman-ok", "--allowedTools", "Bash")
    assert out["is_error"] is False, out
    assert "dragoman-ok" in out["result"]
    chats = stack.vllm.requests_to("/v1/chat/completions")
    assert len(chats) == 2
    first, second = chats[0].body, chats[1].body
    # one leading system message (Qwen templates), no Anthropic-only leftovers, real tools
    assert [m["role"] for m in first["messages"]].count("system") == 1
    assert first["messages"][0]["role"] == "system"
    assert "x-anthropic-billing-header" not in first["messages"][0]["content"]
    assert first["tools"] and all(t["type"] == "function" for t in first["tools"])
    assert first["max_tokens"] <= 8192
    for k in ("context_management", "output_config", "thinking", "metadata"):
        assert k not in first
    # turn 2 carries the tool result right after the assistant's call
    roles = [m["role"] for m in second["messages"]]
    i = roles.index("tool")
    assert roles[i - 1] == "assistant" and second["messages"][i - 1]["tool_calls"]
    assert "dragoman-ok" in second["messages"][i]["content"]


def test_claude_code_on_anthropic_passthrough(stack: Stack, tmp_path: Path) -> None:
    out = _run(stack, tmp_path, "say hello", "--model", "claude-sonnet-4-5")
    assert out["is_error"] is False, out
    assert "Hello from fake Anthropic" in out["result"]
    req = stack.anthropic_fake.requests_to("/v1/messages")[-1]
    assert req.query.get("beta") == "true"
    assert "claude-code-20250219" in (req.headers.get("anthropic-beta") or "")
    assert req.body["system"][0]["text"].startswith("x-anthropic-billing-header")
