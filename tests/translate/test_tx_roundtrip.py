# ruff: noqa: E501  (test vectors read better on one line)
"""Property: Anthropic conversation -> OpenAI request -> Anthropic request keeps what matters."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tx_helpers import vllm_target

from dragoman.translate import anthropic_to_openai_request, openai_to_anthropic_request

_chars = st.characters(blacklist_categories=("Cs",))
_text = st.text(_chars, min_size=1, max_size=30).filter(lambda s: s.strip() == s and s.strip())
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(_chars, max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda k: st.lists(k, max_size=3) | st.dictionaries(st.text(_chars, max_size=5), k, max_size=3),
    max_leaves=10,
)
_input = st.dictionaries(st.text(_chars, max_size=6), _json, max_size=3)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    n_turns = draw(st.integers(1, 4))
    msgs: list[dict[str, Any]] = []
    pending: list[str] = []
    counter = 0
    for _ in range(n_turns):
        blocks: list[dict[str, Any]] = [
            {"type": "tool_result", "tool_use_id": tid, "content": draw(_text)} for tid in pending
        ]
        if not blocks or draw(st.booleans()):
            blocks.append({"type": "text", "text": draw(_text)})
        msgs.append({"role": "user", "content": blocks})
        a_blocks: list[dict[str, Any]] = []
        if draw(st.booleans()):
            a_blocks.append({"type": "text", "text": draw(_text)})
        pending = []
        for _ in range(draw(st.integers(0 if a_blocks else 1, 3))):
            counter += 1
            tid = f"toolu_{counter:04d}"
            pending.append(tid)
            a_blocks.append(
                {"type": "tool_use", "id": tid, "name": draw(st.sampled_from(["Bash", "Read", "Edit"])),
                 "input": draw(_input)}
            )  # fmt: skip
        msgs.append({"role": "assistant", "content": a_blocks})
    blocks = [
        {"type": "tool_result", "tool_use_id": tid, "content": draw(_text)} for tid in pending
    ]
    blocks.append({"type": "text", "text": draw(_text)})
    msgs.append({"role": "user", "content": blocks})
    return msgs


def norm(msgs: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    out = []
    for m in msgs:
        items: list[Any] = []
        for b in m["content"]:
            if b["type"] == "text":
                items.append(("text", b["text"]))
            elif b["type"] == "tool_use":
                items.append(("tool_use", b["id"], b["name"], b["input"]))
            elif b["type"] == "tool_result":
                items.append(("tool_result", b["tool_use_id"], b.get("content")))
        out.append((m["role"], items))
    return out


TOOLS = [{"name": n, "description": n, "input_schema": {"type": "object", "properties": {}}}
         for n in ("Bash", "Read", "Edit")]  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=conversations(), system=_text)
def test_a_to_o_to_a_round_trip(msgs: list[dict[str, Any]], system: str) -> None:
    body = {"model": "m", "max_tokens": 512, "system": system, "messages": msgs, "tools": TOOLS}
    o_body, _ = anthropic_to_openai_request(body, vllm_target())
    a_body, _ = openai_to_anthropic_request(o_body, vllm_target())
    assert a_body["system"] == [{"type": "text", "text": system}]
    assert norm(a_body["messages"]) == norm(msgs)
    assert [t["name"] for t in a_body["tools"]] == ["Bash", "Read", "Edit"]
    assert a_body["max_tokens"] == 512
