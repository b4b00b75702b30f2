# ruff: noqa: E501  (test vectors read better on one line)
"""Property: Anthropic conversation -> OpenAI request -> Anthropic request keeps what matters."""

from __future__ import annotations

from typing import Any

import orjson
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


_media = st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp"])
_b64 = st.sampled_from(["iVBORw0KGgo=", "R0lGODlhAQABAAAAACw=", "/9j/4AAQSkZJRg=="])
_cache = st.sampled_from([None, {"type": "ephemeral"}, {"type": "ephemeral", "ttl": "1h"}])


@st.composite
def _image(draw: st.DrawFn) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": draw(_media),
                                        "data": draw(_b64)}}  # fmt: skip


@st.composite
def _text_block(draw: st.DrawFn) -> dict[str, Any]:
    b: dict[str, Any] = {"type": "text", "text": draw(_text)}
    cc = draw(_cache)
    if cc is not None:
        b["cache_control"] = cc
    return b


@st.composite
def _tool_result(draw: st.DrawFn, tid: str) -> dict[str, Any]:
    b: dict[str, Any] = {"type": "tool_result", "tool_use_id": tid}
    kind = draw(st.sampled_from(["str", "list", "images", "none"]))
    if kind == "str":
        b["content"] = draw(_text)
    elif kind == "list":  # nested text blocks, maybe an image among them
        items: list[dict[str, Any]] = [{"type": "text", "text": draw(_text)}
                                       for _ in range(draw(st.integers(1, 3)))]  # fmt: skip
        if draw(st.booleans()):
            items.insert(draw(st.integers(0, len(items))), draw(_image()))
        b["content"] = items
    elif kind == "images":
        b["content"] = [draw(_image()) for _ in range(draw(st.integers(1, 2)))]
    if draw(st.booleans()):
        b["is_error"] = draw(st.booleans())
    if draw(st.booleans()):
        b["cache_control"] = {"type": "ephemeral"}
    return b


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    n_turns = draw(st.integers(1, 4))
    msgs: list[dict[str, Any]] = []
    pending: list[str] = []
    counter = 0
    for _ in range(n_turns):
        blocks: list[dict[str, Any]] = [draw(_tool_result(tid)) for tid in pending]
        if not blocks or draw(st.booleans()):
            blocks.append(draw(_text_block()))
        if draw(st.booleans()):
            blocks.insert(len(pending) + draw(st.integers(0, len(blocks) - len(pending))),
                          draw(_image()))  # fmt: skip
        msgs.append({"role": "user", "content": blocks})
        a_blocks: list[dict[str, Any]] = []
        if draw(st.booleans()):
            a_blocks.append({"type": "thinking", "thinking": draw(_text), "signature": "EqSig"})
        if draw(st.booleans()):
            a_blocks.append({"type": "text", "text": draw(_text)})
        pending = []
        has_text = any(b["type"] == "text" for b in a_blocks)
        for _ in range(draw(st.integers(0 if has_text else 1, 3))):
            counter += 1
            tid = f"toolu_{counter:04d}"
            pending.append(tid)
            a_blocks.append(
                {"type": "tool_use", "id": tid, "name": draw(st.sampled_from(["Bash", "Read", "Edit"])),
                 "input": draw(_input)}
            )  # fmt: skip
        msgs.append({"role": "assistant", "content": a_blocks})
    blocks = [draw(_tool_result(tid)) for tid in pending]
    blocks.append(draw(_text_block()))
    msgs.append({"role": "user", "content": blocks})
    return msgs


def norm(msgs: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """What a translated Anthropic request says, block by block (after the round trip every
    tool_result holds a string)."""
    out = []
    for m in msgs:
        items: list[Any] = []
        for b in m["content"]:
            if b["type"] == "text":
                items.append(("text", b["text"]))
            elif b["type"] == "image":
                items.append(("image", b["source"]["media_type"], b["source"]["data"]))
            elif b["type"] == "tool_use":
                items.append(("tool_use", b["id"], b["name"], b["input"]))
            elif b["type"] == "tool_result":
                items.append(("tool_result", b["tool_use_id"], b.get("content")))
            else:
                items.append((b["type"],))
        out.append((m["role"], items))
    return out


def expected(msgs: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """The round trip's documented losses (docs/protocols.md §7.13, docs/translation.md), written
    out independently of the translators: thinking without an Anthropic signature cannot come
    back; ``is_error`` becomes a ``[tool error] `` prefix; a tool result's text blocks are joined
    by newlines and its images move after the results of the same turn; ``cache_control``
    is dropped."""
    out: list[tuple[str, list[Any]]] = []
    for m in msgs:
        if m["role"] == "assistant":
            texts = "".join(b["text"] for b in m["content"] if b["type"] == "text")
            items: list[Any] = [("text", texts)] if texts else []
            items += [("tool_use", b["id"], b["name"], b["input"])
                      for b in m["content"] if b["type"] == "tool_use"]  # fmt: skip
            out.append(("assistant", items))
            continue
        results: list[Any] = []
        moved: list[Any] = []
        others: list[Any] = []
        for b in m["content"]:
            if b["type"] == "tool_result":
                c = b.get("content")
                if isinstance(c, list):
                    text = "\n".join(x["text"] for x in c if x["type"] == "text")
                    imgs = [("image", x["source"]["media_type"], x["source"]["data"])
                            for x in c if x["type"] == "image"]  # fmt: skip
                    if not text and imgs:
                        text = "(image output attached below)"
                    moved += imgs
                else:
                    text = c or ""
                if b.get("is_error"):
                    text = "[tool error] " + text
                results.append(("tool_result", b["tool_use_id"], text or None))
            elif b["type"] == "text":
                others.append(("text", b["text"]))
            else:
                others.append(("image", b["source"]["media_type"], b["source"]["data"]))
        out.append(("user", results + moved + others))
    return out


TOOLS = [{"name": n, "description": n, "input_schema": {"type": "object", "properties": {}},
          "cache_control": {"type": "ephemeral"}}
         for n in ("Bash", "Read", "Edit")]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=conversations(), system=_text)
def test_a_to_o_to_a_round_trip(msgs: list[dict[str, Any]], system: str) -> None:
    body = {
        "model": "m",
        "max_tokens": 512,
        "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        "messages": msgs,
        "tools": TOOLS,
    }
    o_body, _ = anthropic_to_openai_request(body, vllm_target())
    assert "cache_control" not in orjson.dumps(o_body).decode()
    a_body, _ = openai_to_anthropic_request(o_body, vllm_target())
    assert a_body["system"] == [{"type": "text", "text": system}]
    assert norm(a_body["messages"]) == expected(msgs)
    assert "cache_control" not in orjson.dumps(a_body).decode()
    assert [t["name"] for t in a_body["tools"]] == ["Bash", "Read", "Edit"]
    assert a_body["max_tokens"] == 512
