"""The Responses stream checker itself: it accepts a stream written by hand from the API
definition, and rejects each way a stream can break the grammar (a checker that cannot fail
would prove nothing)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from tests.conformance.responses_sse_checks import check_responses_sse, validate_with_sdk

RID = "resp_abc"
BASE = {
    "id": RID,
    "object": "response",
    "created_at": 1,
    "status": "in_progress",
    "model": "m",
    "output": [],
    "usage": None,
    "error": None,
    "incomplete_details": None,
    "tools": [],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
}
MSG = {
    "id": "msg_1",
    "type": "message",
    "status": "completed",
    "role": "assistant",
    "content": [{"type": "output_text", "text": "Hi", "annotations": []}],
}
FC = {
    "id": "fc_1",
    "type": "function_call",
    "status": "completed",
    "call_id": "call_1",
    "name": "f",
    "arguments": '{"a": 1}',
}
CTC = {
    "id": "ctc_1",
    "type": "custom_tool_call",
    "call_id": "call_2",
    "name": "apply_patch",
    "input": "*** Begin Patch\n*** End Patch",
}
RS = {
    "id": "rs_1",
    "type": "reasoning",
    "summary": [{"type": "summary_text", "text": "why"}],
    "encrypted_content": "blob",
}
USAGE = {
    "input_tokens": 5,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 3,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 8,
}


def valid() -> list[dict[str, Any]]:
    ref0 = {"item_id": "rs_1", "output_index": 0}
    ref1 = {"item_id": "msg_1", "output_index": 1}
    ref2 = {"item_id": "fc_1", "output_index": 2}
    ref3 = {"item_id": "ctc_1", "output_index": 3}
    part = {"type": "output_text", "text": "", "annotations": []}
    return [
        {"type": "response.created", "response": BASE},
        {"type": "response.in_progress", "response": BASE},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": "rs_1", "type": "reasoning", "summary": []},
        },
        {
            "type": "response.reasoning_summary_part.added",
            **ref0,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": ""},
        },
        {
            "type": "response.reasoning_summary_text.delta",
            **ref0,
            "summary_index": 0,
            "delta": "why",
        },
        {"type": "response.reasoning_summary_text.done", **ref0, "summary_index": 0, "text": "why"},
        {
            "type": "response.reasoning_summary_part.done",
            **ref0,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": "why"},
        },
        {"type": "response.output_item.done", "output_index": 0, "item": RS},
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {**MSG, "status": "in_progress", "content": []},
        },
        {"type": "response.content_part.added", **ref1, "content_index": 0, "part": part},
        {
            "type": "response.output_text.delta",
            **ref1,
            "content_index": 0,
            "delta": "H",
            "logprobs": [],
        },
        {
            "type": "response.output_text.delta",
            **ref1,
            "content_index": 0,
            "delta": "i",
            "logprobs": [],
        },
        {
            "type": "response.output_text.done",
            **ref1,
            "content_index": 0,
            "text": "Hi",
            "logprobs": [],
        },
        {
            "type": "response.content_part.done",
            **ref1,
            "content_index": 0,
            "part": {**part, "text": "Hi"},
        },
        {"type": "response.output_item.done", "output_index": 1, "item": MSG},
        {
            "type": "response.output_item.added",
            "output_index": 2,
            "item": {**FC, "status": "in_progress", "arguments": ""},
        },
        {"type": "response.function_call_arguments.delta", **ref2, "delta": '{"a": '},
        {"type": "response.function_call_arguments.delta", **ref2, "delta": "1}"},
        {"type": "response.function_call_arguments.done", **ref2, "arguments": '{"a": 1}'},
        {"type": "response.output_item.done", "output_index": 2, "item": FC},
        {"type": "response.output_item.added", "output_index": 3, "item": {**CTC, "input": ""}},
        {"type": "response.custom_tool_call_input.delta", **ref3, "delta": CTC["input"]},
        {"type": "response.custom_tool_call_input.done", **ref3, "input": CTC["input"]},
        {"type": "response.output_item.done", "output_index": 3, "item": CTC},
        {
            "type": "response.completed",
            "response": {
                **BASE,
                "status": "completed",
                "output": [RS, MSG, FC, CTC],
                "usage": USAGE,
            },
        },
    ]


def encode(events: list[dict[str, Any]], *, renumber: bool = True) -> bytes:
    out = b""
    for i, ev in enumerate(events):
        ev = dict(ev)
        if renumber:
            ev["sequence_number"] = i
        out += f"event: {ev['type']}\ndata: {json.dumps(ev)}\n\n".encode()
    return out


def test_a_valid_stream_passes_and_is_rebuilt() -> None:
    evs = valid()
    chk = check_responses_sse(encode(evs))
    assert chk.terminal == "response.completed"
    assert chk.items == [RS, MSG, FC, CTC]
    assert chk.text == "Hi"
    validate_with_sdk(chk.events)


def _set(i: int, **kw: Any) -> Callable[[list[dict[str, Any]]], None]:
    def f(evs: list[dict[str, Any]]) -> None:
        evs[i].update(kw)

    return f


def _drop(i: int) -> Callable[[list[dict[str, Any]]], None]:
    return lambda evs: evs.pop(i)  # type: ignore[func-returns-value]


def _terminal_output(output: list[Any]) -> Callable[[list[dict[str, Any]]], None]:
    def f(evs: list[dict[str, Any]]) -> None:
        evs[-1]["response"] = {**evs[-1]["response"], "output": output}

    return f


def _terminal(**kw: Any) -> Callable[[list[dict[str, Any]]], None]:
    def f(evs: list[dict[str, Any]]) -> None:
        evs[-1]["response"] = {**evs[-1]["response"], **kw}

    return f


MUTATIONS: dict[str, tuple[Callable[[list[dict[str, Any]]], None], str]] = {
    "created not first": (lambda e: e.insert(0, e.pop(1)), "not response.created"),
    "no terminal": (_drop(-1), "ended without"),
    "two terminals": (lambda e: e.append(copy.deepcopy(e[-1])), "after the terminal"),
    "response id changes": (_terminal(id="resp_other"), "changed"),
    "item index gap": (_set(8, output_index=2), "output_index"),
    "delta for another item": (_set(10, item_id="msg_x"), "item_id"),
    "delta before part": (_drop(9), "no open output_text part"),
    "text done differs": (_set(12, text="Ho"), "!= deltas"),
    "part done differs": (
        _set(13, part={"type": "output_text", "text": "H", "annotations": []}),
        "part text",
    ),
    "message content differs": (_set(14, item={**MSG, "content": []}), "content"),
    "arguments done differs": (_set(18, arguments="{}"), "!= deltas"),
    "no arguments done": (_drop(18), "no function_call_arguments.done"),
    "done item arguments differ": (_set(19, item={**FC, "arguments": "{}"}), "arguments"),
    "call id changes": (_set(19, item={**FC, "call_id": "call_9"}), "call_id changed"),
    "custom input differs": (_set(22, input="x"), "input"),
    "item never done": (lambda e: (e.pop(23), _terminal_output([RS, MSG, FC])(e)), "still open"),
    "output differs from items": (_terminal_output([MSG, FC]), "differs from the done items"),
    "usage total wrong": (_terminal(usage={**USAGE, "total_tokens": 9}), "usage"),
    "completed without usage": (_terminal(usage=None), "usage"),
    "status wrong": (_terminal(status="in_progress"), "status"),
    "interleaved items": (
        lambda e: e.insert(
            9,
            {
                "type": "response.output_item.added",
                "output_index": 2,
                "item": {**FC, "arguments": "", "status": "in_progress"},
            },
        ),
        "still open",
    ),
    "summary differs": (_set(7, item={**RS, "summary": []}), "summary"),
    "part added non-empty": (
        _set(9, part={"type": "output_text", "text": "x", "annotations": []}),
        "non-empty",
    ),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_each_broken_stream_is_rejected(name: str) -> None:
    mutate, match = MUTATIONS[name]
    evs = copy.deepcopy(valid())
    mutate(evs)
    with pytest.raises(AssertionError, match=match):
        check_responses_sse(encode(evs))


def test_sequence_numbers_event_names_and_done_marker() -> None:
    evs = valid()
    raw = encode(evs).replace(b'"sequence_number": 5', b'"sequence_number": 6')
    with pytest.raises(AssertionError, match="sequence_number"):
        check_responses_sse(raw)
    raw = encode(evs).replace(b"event: response.in_progress", b"event: response.created", 1)
    with pytest.raises(AssertionError, match=r"data\.type"):
        check_responses_sse(raw)
    with pytest.raises(AssertionError, match=r"\[DONE\]"):
        check_responses_sse(encode(evs) + b"data: [DONE]\n\n")
    with pytest.raises(AssertionError, match="unterminated"):
        check_responses_sse(encode(evs)[:-1])


def test_failed_and_incomplete_terminals() -> None:
    head = valid()[:2]
    failed = {
        "type": "response.failed",
        "response": {**BASE, "status": "failed", "error": {"code": "server_error", "message": "x"}},
    }
    assert check_responses_sse(encode([*head, failed])).terminal == "response.failed"
    bad = copy.deepcopy(failed)
    bad["response"]["error"] = None
    with pytest.raises(AssertionError, match="failed without error"):
        check_responses_sse(encode([*head, bad]))
    inc = {
        "type": "response.incomplete",
        "response": {
            **BASE,
            "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "usage": USAGE,
        },
    }
    assert check_responses_sse(encode([*head, inc])).terminal == "response.incomplete"
    inc["response"]["incomplete_details"] = {"reason": "tired"}
    with pytest.raises(AssertionError, match="incomplete_details"):
        check_responses_sse(encode([*head, inc]))
