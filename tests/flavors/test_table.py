"""The capability table, host recognition, probe classification and the body fix-ups: pure
functions, fed the shapes the real servers answer with."""

from __future__ import annotations

from typing import Any

import pytest

from dragoman.config import ConfigError, load_config_dict
from dragoman.dialects.anthropic.compat import drop_billing_header, effort_only_with_thinking
from dragoman.dialects.openai.compat import adapt_chat_request, pad_tool_turns
from dragoman.dialects.openai.flavors import (
    FLAVORS,
    capabilities,
    reasoning_with_tool_calls,
    resolve_reasoning_field,
)
from dragoman.providers.detect import Detection, Probe, classify, host_flavor, initial


def test_every_row_is_consistent() -> None:
    for name, row in FLAVORS.items():
        assert row.name == name
        assert row.max_tokens_field in ("max_tokens", "max_completion_tokens")
        assert row.reasoning_with_tool_calls <= bool(row.reasoning_field)
    generic = capabilities("generic")
    # a server not recognised gets standard Chat Completions fields only
    assert (generic.accepts_top_k, generic.effort_levels, generic.thinking_switch) == (
        False,
        (),
        "none",
    )
    assert (
        generic.max_stop == 4 and generic.prefill_switch == "none" and generic.verifies_signatures
    )
    assert capabilities("no-such-row") is generic
    assert capabilities("mistral").tool_id_format == "mistral9"
    assert [n for n, r in FLAVORS.items() if r.is_anthropic] == ["anthropic"]


@pytest.mark.parametrize(
    ("row", "asked", "sent"),
    [
        ("openai", "max", "xhigh"),
        ("openai", "low", "low"),
        ("ollama", "max", "high"),
        ("ollama", "xhigh", "high"),
        ("ollama", "minimal", "low"),  # never "none" for thinking that was asked for
        ("deepseek", "medium", "high"),
        ("deepseek", "max", "max"),
        ("deepseek", "minimal", "low"),
        ("vllm", "xhigh", "xhigh"),
        ("vllm", "ultra", "medium"),  # a name nobody knows
        ("generic", "high", None),
        ("llamacpp", "high", None),
    ],
)
def test_pick_effort(row: str, asked: str, sent: str | None) -> None:
    assert capabilities(row).pick_effort(asked) == sent


def test_reasoning_models() -> None:
    assert capabilities("openai").reasons("o4-mini") and capabilities("openai").reasons("GPT-5")
    assert not capabilities("openai").reasons("gpt-4.1")
    assert capabilities("vllm").reasons("anything")
    assert not capabilities("gemini-openai").reasons("gemini-2.0-flash")


def test_reasoning_field_resolution() -> None:
    vllm, generic, ds = capabilities("vllm"), capabilities("generic"), capabilities("deepseek")
    assert resolve_reasoning_field(vllm, "m", configured=None, learned=None) == "reasoning"
    # what the server was seen answering with beats the row's guess
    assert (
        resolve_reasoning_field(vllm, "m", configured=None, learned="reasoning_content")
        == "reasoning_content"
    )
    assert resolve_reasoning_field(vllm, "m", configured="", learned="reasoning") == ""
    assert resolve_reasoning_field(generic, "qwen3", configured=None, learned=None) == ""
    # from the model name: DeepSeek models take reasoning_content wherever they are served
    assert (
        resolve_reasoning_field(generic, "DeepSeek-V4-Flash", configured=None, learned=None)
        == "reasoning_content"
    )
    assert reasoning_with_tool_calls(ds, "x", "reasoning_content")
    assert reasoning_with_tool_calls(generic, "deepseek-v4-pro", "reasoning_content")
    assert not reasoning_with_tool_calls(generic, "qwen3", "reasoning_content")
    assert not reasoning_with_tool_calls(ds, "x", "")


@pytest.mark.parametrize(
    ("url", "flavor"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://api.deepseek.com", "deepseek"),
        ("https://api.deepseek.com/anthropic", "deepseek"),
        ("https://api.mistral.ai/v1", "mistral"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("https://generativelanguage.googleapis.com/v1beta/openai", "gemini-openai"),
        ("https://api.together.xyz/v1", "together"),
        ("https://api.fireworks.ai/inference/v1", "fireworks"),
        ("https://api.anthropic.com", "anthropic"),
        ("http://127.0.0.1:8000/v1", None),
        ("https://api.openai.com.evil.example/v1", None),
    ],
)
def test_hosts(url: str, flavor: str | None) -> None:
    got = host_flavor(url)
    assert (got[0] if got else None) == flavor


def test_initial_detection() -> None:
    assert initial("openai", "https://api.deepseek.com", "auto") == Detection(
        "deepseek", "host api.deepseek.com"
    )
    d = initial("openai", "http://gpu:8000/v1", "auto")
    assert (d.flavor, d.settled, d.auto) == ("generic", False, True)
    d = initial("openai", "http://gpu:8000/v1", "vllm")  # still asked for context windows
    assert (d.flavor, d.how, d.settled, d.auto) == ("vllm", "configured", False, False)
    # Anthropic dialect: known by host only, never probed
    assert initial("anthropic", "https://api.anthropic.com", "auto").flavor == "anthropic"
    d = initial("anthropic", "http://127.0.0.1:8080", "auto")
    assert (d.flavor, d.how, d.settled) == (
        "generic",
        "host 127.0.0.1 is not api.anthropic.com",
        True,
    )


def _probes(**answers: Any) -> dict[str, Probe]:
    paths = [
        "/v1/models",
        "/version",
        "/get_server_info",
        "/api/version",
        "/props",
        "/api/v0/models",
    ]
    out = {p: Probe(404, {"detail": "Not Found"}) for p in paths}
    for key, body in answers.items():
        out["/" + key.replace("__", "/")] = Probe(200, body)
    return out


def test_classify() -> None:
    models = {"object": "list", "data": [{"id": "m", "owned_by": "vllm", "max_model_len": 4096}]}
    assert classify(_probes(version={"version": "0.11.0"}, v1__models=models)) == (
        "vllm",
        "GET /version answered vllm 0.11.0",
    )
    assert classify(_probes(v1__models=models))[0] == "vllm"
    info = {"version": "0.5.4", "context_length": 40960}
    assert classify(_probes(get_server_info=info, version={"version": "0.5.4"})) == (
        "sglang",
        "GET /get_server_info answered sglang 0.5.4",
    )
    assert classify(_probes(api__version={"version": "0.12.6"})) == (
        "ollama",
        "GET /api/version answered ollama 0.12.6",
    )
    props = {"default_generation_settings": {"n_ctx": 8192}, "build_info": "b6700"}
    assert classify(_probes(props=props)) == ("llamacpp", "GET /props answered llama.cpp b6700")
    lms = {"data": [{"id": "q", "arch": "qwen3", "compatibility_type": "gguf"}]}
    assert classify(_probes(api__v0__models=lms))[0] == "lmstudio"
    flavor, why = classify(_probes(v1__models={"data": [{"id": "m", "owned_by": "org"}]}))
    assert flavor == "generic" and why.startswith("not recognised (/v1/models -> 200, /version ->")


def test_learning_the_reasoning_field() -> None:
    d = Detection("generic", "x")
    assert not d.learn_from_chunk("m", b'data: {"choices":[{"delta":{"reasoning":null}}]}')
    assert not d.learn_from_chunk("m", b'{"reasoning_content":""}')
    assert not d.learn_from_chunk("m", b'{"content":"say \\"reasoning\\":\\"x\\""}')
    assert d.learn_from_chunk("m", b'{"delta":{"content":null,"reasoning_content":"Hm"}}')
    assert d.reasoning_fields == {"m": "reasoning_content"}
    d.learn_from_message("m", {"reasoning": "also"})  # the first one seen sticks
    assert d.reasoning_fields == {"m": "reasoning_content"}
    v = Detection("vllm", "x")
    v.learn_from_message("q", {"reasoning_content": "a", "reasoning": None})
    v.learn_from_message("q", {"reasoning": "a"})  # servers in transition send both
    assert v.reasoning_fields == {"q": "reasoning"}


def test_config_flavor_names() -> None:
    base = {"providers": {"p": {"kind": "openai", "base_url": "http://x/v1"}}}
    assert load_config_dict(base).providers["p"].flavor == "auto"
    base["providers"]["p"]["flavor"] = "sglang"
    assert load_config_dict(base).providers["p"].flavor == "sglang"
    base["providers"]["p"]["flavor"] = "vlm"
    with pytest.raises(
        ConfigError,
        match=r"providers\.p\.flavor: unknown flavor 'vlm' \(known: auto, generic, vllm",
    ):
        load_config_dict(base)


# ------------------------------------------------------------------------------- fix-ups


BILLING = {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.fbe; cch=a1b2c;"}


def test_drop_billing_header() -> None:
    body = {"system": [BILLING, {"type": "text", "text": "You are Claude Code."}], "x": 1}
    assert drop_billing_header(body) == {
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "x": 1,
    }
    assert drop_billing_header({"system": [BILLING]}) == {}
    assert drop_billing_header({"system": BILLING["text"] + "\nBe brief."}) == {
        "system": "Be brief."
    }
    same = {"system": [{"type": "text", "text": "no header"}]}
    assert drop_billing_header(same) is same


def test_effort_only_with_thinking() -> None:
    body = {"thinking": {"type": "disabled"}, "output_config": {"effort": "max"}}
    assert effort_only_with_thinking(body) == {"thinking": {"type": "disabled"}}
    fmt = {"format": {"type": "json_schema", "schema": {}}}
    body = {"thinking": {"type": "disabled"}, "output_config": {"effort": "max", **fmt}}
    assert effort_only_with_thinking(body) == {
        "thinking": {"type": "disabled"},
        "output_config": fmt,
    }
    on = {"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}
    assert effort_only_with_thinking(on) is on


def _assistant(**kw: Any) -> dict[str, Any]:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    return {"role": "assistant", "content": "", "tool_calls": [call], **kw}


def test_adapt_chat_request() -> None:
    ds, vllm, oai = capabilities("deepseek"), capabilities("vllm"), capabilities("openai")
    msgs = [
        {"role": "user", "content": "q"},
        _assistant(reasoning="r"),
        {"role": "tool", "tool_call_id": "c1", "content": "x"},
    ]
    out = adapt_chat_request(
        {"messages": msgs},
        ds,
        reasoning_field="reasoning_content",
        pad_reasoning=True,
        output_cap=None,
    )
    assert out["messages"][1] == _assistant(reasoning_content="r")  # renamed
    assert msgs[1] == _assistant(reasoning="r")  # the client's body is not touched
    out = adapt_chat_request(
        {"messages": [_assistant()]},
        ds,
        reasoning_field="reasoning_content",
        pad_reasoning=True,
        output_cap=None,
    )
    assert out["messages"] == [_assistant(reasoning_content="")]  # padded
    out = adapt_chat_request(
        {"messages": [_assistant(reasoning_content="r")]},
        oai,
        reasoning_field="",
        pad_reasoning=False,
        output_cap=None,
    )
    assert out["messages"] == [_assistant()]  # a strict server takes none
    kept = [_assistant(reasoning_content="r")]
    out = adapt_chat_request(
        {"messages": kept}, vllm, reasoning_field=None, pad_reasoning=False, output_cap=None
    )
    assert out["messages"] is kept  # not known: left as the client wrote it
    body = {
        "messages": [],
        "thinking": {"type": "disabled"},
        "reasoning_effort": "high",
        "max_tokens": 128000,
    }
    out = adapt_chat_request(body, ds, reasoning_field=None, pad_reasoning=False, output_cap=4000)
    assert out == {"messages": [], "thinking": {"type": "disabled"}, "max_tokens": 4000}
    body = {
        "messages": [],
        "thinking": {"type": "disabled"},
        "reasoning_effort": "high",
        "max_completion_tokens": 10,
    }
    out = adapt_chat_request(body, vllm, reasoning_field=None, pad_reasoning=False, output_cap=4000)
    assert out["reasoning_effort"] == "high" and out["max_completion_tokens"] == 10


def test_docs_table_lists_every_row() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "flavors.md").read_text()
    table = [line for line in doc.splitlines() if line.startswith("| `")]
    assert [line.split("`")[1] for line in table] == list(FLAVORS)


def test_pad_tool_turns() -> None:
    user = {"role": "user", "content": "q"}
    tool = {"role": "tool", "tool_call_id": "c1", "content": "x"}
    answer = {"role": "assistant", "content": "a"}
    kept = _assistant(reasoning_content="r")
    msgs = [user, answer, user, kept, tool, answer, user, _assistant(), tool]
    out = pad_tool_turns(msgs, "reasoning_content")
    assert out == [
        user,
        answer,  # a turn without tool calls: untouched
        user,
        kept,
        tool,
        {**answer, "reasoning_content": ""},  # the final answer of a tool-calling turn
        user,
        _assistant(reasoning_content=""),
        tool,
    ]
    assert out[3] is kept and out[1] is answer
