"""The strict checkers must catch every defect of docs/protocols.md §8.4 item 3 (else a green suite
proves nothing): each broken stream below is one mutation of a good one."""

from __future__ import annotations

# ruff: noqa: RUF005  (the mutations read best as list surgery)
import json
from typing import Any

import pytest
from tests.conformance.sse_checks import check_anthropic_sse, check_openai_sse
from tests.fakes.sse import OPENAI_DONE, anthropic_frame, openai_frame
from tests.support.fixtures import load_bytes

START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 0},
    },
}


def _ev(t: str, **kw: Any) -> tuple[str, dict[str, Any]]:
    return t, {"type": t, **kw}


def good() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("message_start", START),
        _ev("ping"),
        _ev(
            "content_block_start",
            index=0,
            content_block={"type": "thinking", "thinking": "", "signature": ""},
        ),
        _ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "hm"}),
        _ev("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "s"}),
        _ev("content_block_stop", index=0),
        _ev("content_block_start", index=1, content_block={"type": "text", "text": ""}),
        _ev("content_block_delta", index=1, delta={"type": "text_delta", "text": "hi"}),
        _ev("content_block_stop", index=1),
        _ev(
            "content_block_start",
            index=2,
            content_block={"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
        ),
        _ev(
            "content_block_delta",
            index=2,
            delta={"type": "input_json_delta", "partial_json": '{"a"'},
        ),
        _ev(
            "content_block_delta",
            index=2,
            delta={"type": "input_json_delta", "partial_json": ": 1}"},
        ),
        _ev("content_block_stop", index=2),
        _ev(
            "message_delta",
            delta={"stop_reason": "tool_use", "stop_sequence": None},
            usage={"output_tokens": 3},
        ),
        _ev("message_stop"),
    ]


def encode(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return b"".join(anthropic_frame(n, d) for n, d in events)


def test_good_stream_and_fixture_pass() -> None:
    w = check_anthropic_sse(encode(good()))
    assert w.block_types == ["thinking", "text", "tool_use"]
    assert w.content[2]["input"] == {"a": 1} and w.stop_reason == "tool_use"
    check_anthropic_sse(load_bytes("anthropic_stream_thinking_tools.sse"))


def _drop(i: int):
    return lambda ev: ev[:i] + ev[i + 1 :]


def _set(i: int, key: str, value: Any):
    def f(ev: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        ev = json.loads(json.dumps(ev))
        ev[i][1][key] = value
        return ev

    return f


BROKEN = {
    "no message_start": lambda ev: ev[1:],
    "delta before its block start": lambda ev: [ev[0], ev[3], *ev[2:]],
    "index gap": _set(6, "index", 2),
    "index reuse": _set(9, "index", 1),
    "block never stopped": _drop(8),
    "missing signature_delta": _drop(4),
    "two message_delta": lambda ev: ev[:-1] + [ev[-2], ev[-1]],
    "no message_delta": _drop(13),
    "bad stop_reason": lambda ev: (
        ev[:13]
        + [_ev("message_delta", delta={"stop_reason": "tool_calls"}, usage={"output_tokens": 1})]
        + ev[14:]
    ),
    "no message_stop": lambda ev: ev[:-1],
    "event after message_stop": lambda ev: [*ev, _ev("ping")],
    "tool_use without id": lambda ev: (
        ev[:9]
        + [
            _ev(
                "content_block_start",
                index=2,
                content_block={"type": "tool_use", "name": "f", "input": {}},
            )
        ]
        + ev[10:]
    ),
    "tool_use empty name": lambda ev: (
        ev[:9]
        + [
            _ev(
                "content_block_start",
                index=2,
                content_block={"type": "tool_use", "id": "t", "name": "", "input": {}},
            )
        ]
        + ev[10:]
    ),
    "tool input not JSON": lambda ev: ev[:11] + ev[12:],
    "text delta on tool block": lambda ev: (
        ev[:10]
        + [_ev("content_block_delta", index=2, delta={"type": "text_delta", "text": "x"})]
        + ev[10:]
    ),
    "message_start without usage": lambda ev: [
        ("message_start", {**START, "message": {**START["message"], "usage": None}}),
        *ev[1:],
    ],
}


@pytest.mark.parametrize("defect", list(BROKEN))
def test_anthropic_checker_catches(defect: str) -> None:
    with pytest.raises(AssertionError):
        check_anthropic_sse(encode(BROKEN[defect](good())))


@pytest.mark.parametrize(
    "raw",
    [
        b"data: " + json.dumps(START).encode() + b"\n\n",  # no event: line
        encode(good()) + b"data: [DONE]\n\n",  # [DONE] to an Anthropic client
        encode(good()).replace(b"event: ping", b"event: pong", 1),  # event != data.type
        encode(good())[:-1],  # unterminated last frame
    ],
    ids=["no-event-line", "done-sentinel", "event-type-mismatch", "unterminated"],
)
def test_anthropic_checker_catches_framing(raw: bytes) -> None:
    with pytest.raises(AssertionError):
        check_anthropic_sse(raw)


def _chunk(delta: dict[str, Any], finish: str | None = None, id: str = "c1") -> bytes:
    return openai_frame(
        {
            "id": id,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def test_openai_checker() -> None:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
    }
    ok = _chunk({"role": "assistant"}) + _chunk({"tool_calls": [call]}) + _chunk({}, "tool_calls")
    w = check_openai_sse(ok + OPENAI_DONE)
    assert w.tool_calls == [{"id": "call_1", "name": "f", "arguments": "{}"}]
    for bad in (
        ok,  # no [DONE]
        ok + OPENAI_DONE + _chunk({"content": "x"}),  # after [DONE]
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}) + OPENAI_DONE,
        ok + _chunk({}, "stop") + OPENAI_DONE,  # two finishes
        ok.replace(b'"c1"', b'"c2"', 1) + OPENAI_DONE,  # ids differ
        b"event: x\n" + ok + OPENAI_DONE,
    ):
        with pytest.raises(AssertionError):
            check_openai_sse(bad)


def test_openai_checker_failed_stream_ends_without_done() -> None:
    """One stream ending for OpenAI clients (docs/protocols.md, "Stream endings"): a failed
    stream is an error chunk and no ``[DONE]``, never something that ends like a complete one."""
    head = _chunk({"role": "assistant"}) + _chunk({"content": "x"})
    err = b'data: {"error":{"message":"upstream stream ended early","type":"server_error"}}\n\n'
    assert check_openai_sse(head + err, allow_error=True).error is not None
    with pytest.raises(AssertionError, match=r"\[DONE\] after an error chunk"):
        check_openai_sse(head + err + OPENAI_DONE, allow_error=True)
