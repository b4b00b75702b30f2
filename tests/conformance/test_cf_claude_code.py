"""Claude Code replays: the recorded requests (tests/fixtures/claude_code_*.json), with their exact
header set and ``?beta=true`` query, through the gateway to both backend kinds; then what each
upstream received, and what came back (strict SSE check on every stream)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.conformance.drive import keys_anywhere
from tests.conformance.sse_checks import check_anthropic_sse
from tests.e2e.harness import KEY, Stack
from tests.fakes import ChatReply, Reply, text_block
from tests.support import http
from tests.support.fixtures import load_json

REQUESTS = [
    "claude_code_main_request.json",
    "claude_code_turn2_request.json",
    "claude_code_title_request.json",
    "claude_code_quota_probe.json",
]
BILLING = "x-anthropic-billing-header"
ANTHROPIC_ONLY_TOP = {"context_management", "output_config", "thinking", "metadata", "system"}


def _send(stack: Stack, name: str, model: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Replay a fixture: its method, path + query, every header (our key instead of theirs)."""
    fx = load_json(name)
    body = fx["body"]
    if model is not None:
        body["model"] = model
    headers = {k: v for k, v in fx["headers"].items() if k != "x-api-key"}
    headers["x-api-key"] = KEY
    query = "&".join(f"{k}={v}" for k, v in fx["query"].items())
    r = http.request(
        fx["method"], f"{stack.url}{fx['path']}?{query}", orjson.dumps(body), headers=headers
    )
    return r, body


def _check_reply(r: Any, body: dict[str, Any]) -> Any:
    assert r.status == 200, r.body
    if body.get("stream"):
        assert r.content_type.startswith("text/event-stream")
        return check_anthropic_sse(r.body)
    msg = r.json()
    assert msg["type"] == "message" and msg["role"] == "assistant"
    assert isinstance(msg["usage"]["input_tokens"], int)
    assert isinstance(msg["usage"]["output_tokens"], int)
    return msg


@pytest.mark.parametrize("name", REQUESTS)
def test_claude_code_replay_to_anthropic(stack: Stack, name: str) -> None:
    """Anthropic backend: everything forwarded byte-faithfully except the model — betas and
    version header, thinking signature (the fake rejects a changed one), cache_control,
    context_management, the mid-conversation system turn, the billing header block."""
    fake = stack.anthropic_fake
    fx = load_json(name)
    fake.trust_signatures_in(fx["body"])
    fake.enqueue(Reply(content=[text_block("ok")]))
    r, body = _send(stack, name, model="claude-sonnet-4-5")
    _check_reply(r, body)
    rec = fake.last_request
    assert rec.path == "/v1/messages"
    assert rec.body == body  # everything, model included (overridden to a served name)
    assert list(rec.body) == list(body)  # key order too
    assert rec.raw == orjson.dumps(body)  # i.e. byte-identical up to JSON whitespace
    assert rec.headers["anthropic-beta"] == fx["headers"]["anthropic-beta"]
    assert rec.headers["anthropic-version"] == fx["headers"]["anthropic-version"]
    assert rec.headers["x-api-key"] == fake.api_key  # our upstream key, never the client's
    if name == "claude_code_turn2_request.json":
        sig = next(
            b["signature"]
            for m in fx["body"]["messages"]
            if isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") == "thinking"
        )
        assert f'"signature":"{sig}"'.encode() in rec.raw


def _vllm_checks(stack: Stack, name: str, fx_body: dict[str, Any]) -> dict[str, Any]:
    rec = stack.vllm.last_request
    sent = rec.body
    assert sent["model"] == "qwen3-coder"
    msgs = sent["messages"]
    # one leading system message: billing header gone, identity + prompt + the
    # mid-conversation system turn folded into it
    roles = [m["role"] for m in msgs]
    assert "system" not in roles[1:] and roles[-1] != "system", roles
    has_system = bool(fx_body.get("system")) or any(
        m["role"] == "system" for m in fx_body["messages"]
    )
    assert (roles[0] == "system") == has_system, roles
    assert BILLING.encode() not in rec.raw
    system_text = msgs[0]["content"] if has_system else ""
    for b in fx_body.get("system") or []:
        if not b["text"].startswith(BILLING):
            assert b["text"] in system_text
    for m in fx_body["messages"]:
        if m["role"] == "system":
            text = m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
            assert text in system_text
    # no Anthropic-only fields anywhere
    assert "cache_control" not in keys_anywhere(sent)
    assert not ANTHROPIC_ONLY_TOP & set(sent), set(sent)
    assert "signature" not in keys_anywhere(sent)
    assert not rec.notes, rec.notes  # vLLM ignored nothing
    # tools: never an empty list
    if fx_body.get("tools"):
        assert len(sent["tools"]) == len(fx_body["tools"])
    else:
        assert "tools" not in sent and "tool_choice" not in sent
    # max_tokens clamped into the model's window (the fake 400s otherwise) and its cap
    prompt = stack.vllm.count_prompt_tokens(sent)
    assert sent["max_tokens"] >= 1
    assert prompt + sent["max_tokens"] <= 32768
    assert sent["max_tokens"] <= min(fx_body["max_tokens"], 8192)
    return sent


@pytest.mark.parametrize("name", REQUESTS)
def test_claude_code_replay_to_vllm(stack: Stack, name: str) -> None:
    """vLLM backend (model name mapped by the ``claude-*`` pattern): one leading system message,
    billing header gone, no cache_control / context_management / output_config / thinking /
    metadata, tools never empty, max_tokens clamped to fit the window, mid-conversation system
    turn folded — accepted by the strict vLLM fake (system-first, tool pairing)."""
    fx = load_json(name)
    if name == "claude_code_main_request.json":
        stack.vllm.enqueue(
            ChatReply(
                content="Listing.",
                reasoning="Run ls.",
                tool_calls=[("call_1", "Bash", {"command": "ls -1", "description": "List"})],
            )
        )
    r, body = _send(stack, name)
    reply = _check_reply(r, body)
    sent = _vllm_checks(stack, name, fx["body"])
    if name == "claude_code_main_request.json":
        assert reply.block_types == ["thinking", "text", "tool_use"]
        assert reply.blocks("tool_use")[0]["input"] == {"command": "ls -1", "description": "List"}
        assert reply.stop_reason == "tool_use"
        assert reply.message["model"] == fx["body"]["model"]  # the name Claude Code asked for
        assert sent["reasoning_effort"] == "high"  # output_config.effort
    elif name == "claude_code_turn2_request.json":
        roles = [m["role"] for m in sent["messages"]]
        assert roles == ["system", "user", "assistant", "tool"]
        asst = sent["messages"][2]
        assert asst["tool_calls"][0]["function"]["name"] == "Bash"
        assert isinstance(asst["tool_calls"][0]["function"]["arguments"], str)
        assert asst["reasoning"]  # thinking text travels back as reasoning (no signature)
        assert sent["messages"][3]["tool_call_id"] == asst["tool_calls"][0]["id"]
    elif name == "claude_code_title_request.json":
        rf = sent["response_format"]
        assert rf["type"] == "json_schema" and rf["json_schema"]["name"]
        assert rf["json_schema"]["schema"]["required"] == ["title"]
        assert sent["chat_template_kwargs"] == {"enable_thinking": False}
        assert sent["temperature"] == 1
    else:  # quota probe: non-streaming, max_tokens 1
        assert sent["max_tokens"] == 1 and not sent.get("stream")
        assert reply["stop_reason"] in ("max_tokens", "end_turn")


@pytest.mark.parametrize("backend", ["anthropic", "vllm"])
def test_claude_code_count_tokens_replay(stack: Stack, backend: str) -> None:
    """``/context``'s count_tokens, exact headers and ``?beta=true``: the Anthropic upstream's
    count (betas forwarded), or vLLM's ``/tokenize`` count."""
    fx = load_json("claude_code_count_tokens.json")
    model = "claude-sonnet-4-5" if backend == "anthropic" else None
    r, body = _send(stack, "claude_code_count_tokens.json", model=model)
    assert r.status == 200, r.body
    n = r.json()["input_tokens"]
    if backend == "anthropic":
        rec = stack.anthropic_fake.last_request
        assert rec.path == "/v1/messages/count_tokens"
        assert rec.body == body
        assert rec.headers["anthropic-beta"] == fx["headers"]["anthropic-beta"]
        assert n == stack.anthropic_fake.count_tokens(body)
    else:
        tok = stack.vllm.requests_to("/tokenize")
        assert len(tok) == 1 and not stack.vllm.requests_to("/v1/chat/completions")
        assert n == stack.vllm.count_prompt_tokens(tok[0].body)
        assert len(tok[0].body["tools"]) == len(fx["body"]["tools"])


def test_claude_code_two_turn_session_on_vllm(stack: Stack) -> None:
    """Turn 1's answer (translated from vLLM) fed back as Claude Code would in turn 2: the
    history Claude Code builds from our stream is accepted by the strict vLLM fake."""
    fx = load_json("claude_code_main_request.json")
    stack.vllm.enqueue(
        ChatReply(content="Listing.", reasoning="Run ls.", tool_calls=[("Bash", {"command": "ls"})])
    )
    r, body = _send(stack, "claude_code_main_request.json")
    turn1 = _check_reply(r, body)
    tool = turn1.blocks("tool_use")[0]
    body2 = fx["body"]
    body2["messages"] = [
        *body2["messages"],
        {"role": "assistant", "content": turn1.content},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool["id"],
                    "content": "a.txt\nb.txt",
                    "is_error": False,
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
    ]
    stack.vllm.enqueue(ChatReply(content="There are 2 files."))
    headers = {**fx["headers"], "x-api-key": KEY}
    r2 = http.post(f"{stack.url}/v1/messages?beta=true", body2, headers=headers)
    wire = _check_reply(r2, body2)
    assert wire.blocks("text")[0]["text"] == "There are 2 files."
    _vllm_checks(stack, "turn2", body2)


def test_claude_code_session_switches_to_anthropic(stack: Stack) -> None:
    """Turn 1 served by vLLM (synthetic thinking signature), turn 2 sent to the Anthropic backend:
    the foreign thinking block is stripped, the request is accepted (signature-checking fake)."""
    fx = load_json("claude_code_main_request.json")
    stack.vllm.enqueue(
        ChatReply(content="Listing.", reasoning="Run ls.", tool_calls=[("Bash", {"command": "ls"})])
    )
    r, body = _send(stack, "claude_code_main_request.json")
    turn1 = _check_reply(r, body)
    assert turn1.blocks("thinking")[0]["signature"]
    tool = turn1.blocks("tool_use")[0]
    body2 = fx["body"]
    body2["model"] = "claude-sonnet-4-5"
    body2["messages"] += [
        {"role": "assistant", "content": turn1.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool["id"], "content": "a"}],
        },
    ]
    stack.anthropic_fake.enqueue(Reply(content=[text_block("1 file.")]))
    r2 = http.post(
        f"{stack.url}/v1/messages?beta=true", body2, headers={**fx["headers"], "x-api-key": KEY}
    )
    wire = _check_reply(r2, body2)
    assert wire.blocks("text")[0]["text"] == "1 file."
    sent = stack.anthropic_fake.last_request.body
    assert "thinking" not in [
        b["type"] for m in sent["messages"] if isinstance(m["content"], list) for b in m["content"]
    ]


@pytest.mark.parametrize("path", ["/", "/v1"])
def test_head_preflight_without_auth(stack: Stack, path: str) -> None:
    """Claude Code's ``HEAD <base URL>`` connectivity probe (User-Agent Bun, no auth) gets 200
    quickly (``/``) and never hangs; any answer under 500 is tolerated for other paths."""
    r = http.request("HEAD", stack.url + path, headers={"user-agent": "Bun/1.4.0"}, timeout=3)
    if path == "/":
        assert r.status == 200
    else:
        assert r.status < 500
    assert r.body == b""


def test_quota_probe_answers_fast_on_both(stack: Stack) -> None:
    """The start-up quota probe (max_tokens 1, non-streaming) succeeds on both backends."""
    for model in ("claude-sonnet-4-5", None):
        r, body = _send(stack, "claude_code_quota_probe.json", model=model)
        msg = _check_reply(r, body)
        assert msg["content"], msg
