"""``POST /v1/responses`` for the fake OpenAI-compatible servers (the Responses API served
natively, as api.openai.com, vLLM, Ollama, LM Studio, SGLang and DeepSeek do).

Written from the API definition (openai-python ``types/responses``), independently of dragoman's
translators: the event stream is built here, item by item, in the order OpenAI sends it.

What it checks (400 in the mode's error shape; wording of api.openai.com where it is quoted in
client issues, see tests/fakes/README.md):

* auth and model as for Chat Completions;
* openai mode: unknown top-level parameters (``Unknown parameter: 'x'.``); ``model`` missing;
* ``input``: a string or a list of items; ``function_call_output`` / ``custom_tool_call_output``
  without a call in the input (``No tool call found for function call output with call_id
  X.``); a call without its output (``No tool output found for function call X.``);
* ``previous_response_id`` naming a response it did not store (``Previous response with id
  'X' not found.``; responses are stored unless ``store: false``, as OpenAI's default is);
* openai mode: a reasoning item whose ``encrypted_content`` this fake did not issue
  (``The encrypted content gAAA...xyz= could not be verified.``, ``invalid_encrypted_content``):
  what OpenAI answers to a blob that is not its own.

Scripted answers: ``ResponsesReply`` (items built with ``r_message``, ``r_reasoning``,
``r_call``, ``r_custom``), or the same ``ChatReply`` / ``ErrorReply`` / ``RawStream`` / callable
the Chat endpoints take (a ``ChatReply`` becomes reasoning, message and function-call items).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson
from aiohttp import web

from . import openai_upstream as ou
from . import tokens
from .common import (
    RECORDED,
    CutMode,
    RawStream,
    RecordedRequest,
    StreamPlan,
    replay_raw,
    split_text,
    write_stream,
)

if TYPE_CHECKING:
    from .openai_upstream import FakeOpenAI

#: modes whose real server serves the Responses API (the flavor table's ``serves_responses``)
SERVES_RESPONSES = frozenset({"openai", "vllm", "ollama", "sglang", "deepseek"})

RESPONSES_PARAMS = frozenset(
    {
        "access_programs",
        "background",
        "background_options",
        "client_metadata",
        "context_management",
        "conversation",
        "image",
        "include",
        "input",
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "metadata",
        "model",
        "moderation",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
    }
)
_CALLS = {"function_call": "function call", "custom_tool_call": "custom tool call"}
_OUTPUTS = {"function_call_output", "custom_tool_call_output"}


# ----------------------------------------------------------------------------- scripting


def r_message(text: str) -> dict[str, Any]:
    return {"type": "message", "text": text}


def r_reasoning(summary: str | None = None, text: str | None = None) -> dict[str, Any]:
    """A reasoning item: a summary (OpenAI models) and/or raw text (gpt-oss on vLLM)."""
    return {"type": "reasoning", "summary": summary, "text": text}


def r_call(name: str, arguments: Any = "{}", call_id: str | None = None) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
    return {"type": "function_call", "name": name, "arguments": args, "call_id": call_id}


def r_custom(name: str, input: str, call_id: str | None = None) -> dict[str, Any]:
    return {"type": "custom_tool_call", "name": name, "input": input, "call_id": call_id}


@dataclass
class ResponsesReply:
    """A scripted answer for ``/v1/responses``: the output items in order, how the response
    ends (``completed``, ``incomplete`` with ``incomplete_reason``, ``failed`` with
    ``error_code``/``error_message``), usage overrides, and the stream knobs the other replies
    have (``text_chunk``/``args_chunk``, delays, ``cut_after`` + ``cut_mode``: the stream stops
    after that many events without a terminal one)."""

    output: Sequence[Mapping[str, Any]] = ()
    status: Literal["completed", "incomplete", "failed"] = "completed"
    incomplete_reason: str = "max_output_tokens"
    error_code: str = "server_error"
    error_message: str = "The model produced invalid content."
    usage: Mapping[str, Any] | None = None
    model: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    text_chunk: int = 8
    args_chunk: int = 10
    first_byte_delay: float = 0.0
    event_delay: float = 0.0
    pauses: Mapping[int, float] = field(default_factory=dict)
    cut_after: int | None = None
    cut_mode: CutMode = "eof"


class ResponsesState:
    """What a fake remembers between requests: stored responses and issued reasoning blobs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stored: dict[str, dict[str, Any]] = {}
        self.issued: set[str] = set()

    def clear(self) -> None:
        with self._lock:
            self.stored.clear()
            self.issued.clear()

    def issue(self) -> str:
        blob = "gAAAAAB" + base64.urlsafe_b64encode(secrets.token_bytes(48)).decode()
        with self._lock:
            self.issued.add(blob)
        return blob

    def trusted(self, blob: str) -> bool:
        with self._lock:
            return blob in self.issued


def from_chat_reply(reply: ou.ChatReply) -> ResponsesReply:
    out: list[dict[str, Any]] = []
    if reply.reasoning:
        out.append(r_reasoning(summary=reply.reasoning))
    text = reply.content if reply.content is not None else reply.refusal
    if text:
        out.append(r_message(text))
    for spec in reply.tool_calls:
        tc = ou._tool_call(spec)
        out.append(r_call(tc.name, tc.arguments, tc.id))
    status: Literal["completed", "incomplete"] = (
        "incomplete" if reply.finish_reason in ("length", "content_filter") else "completed"
    )
    return ResponsesReply(
        output=out,
        status=status,
        incomplete_reason="content_filter"
        if reply.finish_reason == "content_filter"
        else "max_output_tokens",
        usage=reply.usage,
        model=reply.model,
        headers=reply.headers,
        text_chunk=reply.text_chunk,
        args_chunk=reply.args_chunk,
        first_byte_delay=reply.first_byte_delay,
        event_delay=reply.event_delay,
        pauses=reply.pauses,
        cut_after=reply.cut_after,
        cut_mode=reply.cut_mode,
    )


# ----------------------------------------------------------------------------- validation


def _err(
    message: str, *, param: str | None = None, code: str | None = None, status: int = 400
) -> ou.OpenAIError:
    return ou.OpenAIError(message, status, type="invalid_request_error", param=param, code=code)


def _short(blob: str) -> str:
    return f"{blob[:4]}...{blob[-4:]}" if len(blob) > 8 else blob


def _validate(fake: FakeOpenAI, body: dict[str, Any], rec: RecordedRequest) -> None:
    openai = fake.base == "openai"
    unknown = [k for k in body if k not in RESPONSES_PARAMS]
    if unknown and openai:
        raise _err(
            f"Unknown parameter: '{unknown[0]}'.", param=unknown[0], code="unknown_parameter"
        )
    if unknown:
        rec.notes.append(f"ignored fields: {sorted(unknown)}")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _err(
            "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    fake._check_model(body["model"])
    prev = body.get("previous_response_id")
    if prev is not None and prev not in fake.responses_state.stored:
        raise _err(
            f"Previous response with id '{prev}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    inp = body.get("input")
    if inp is None or isinstance(inp, str):
        return
    if not isinstance(inp, list):
        raise _err(
            "Invalid type for 'input': expected one of a string or array of input items.",
            param="input",
            code="invalid_type",
        )
    calls: dict[str, str] = {}
    answered: set[str] = set()
    for i, it in enumerate(inp):
        if not isinstance(it, dict):
            raise _err(
                f"Invalid type for 'input[{i}]': expected an object.",
                param=f"input[{i}]",
                code="invalid_type",
            )
        t = it.get("type", "message" if "role" in it else None)
        if t in _CALLS:
            calls[str(it.get("call_id"))] = t
        elif t in _OUTPUTS:
            cid = str(it.get("call_id"))
            if cid not in calls:
                raise _err(
                    f"No tool call found for function call output with call_id {cid}.",
                    param="input",
                )
            answered.add(cid)
        elif t == "reasoning" and openai:
            blob = it.get("encrypted_content")
            if isinstance(blob, str) and not fake.responses_state.trusted(blob):
                raise _err(
                    f"The encrypted content {_short(blob)} could not be verified.",
                    code="invalid_encrypted_content",
                )
        elif t == "message" and it.get("role") not in ("user", "assistant", "system", "developer"):
            raise _err(
                f"Invalid value: '{it.get('role')}'. Supported values are: 'assistant', "
                "'system', 'developer', and 'user'.",
                param=f"input[{i}].role",
                code="invalid_value",
            )
    for cid, t in calls.items():
        if cid not in answered:
            raise _err(f"No tool output found for {_CALLS[t]} {cid}.", param="input")


# ----------------------------------------------------------------------------- answering


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    """The fake's count of a Responses prompt: text of every item, instructions and tools."""
    n = tokens.GENERATION_PROMPT
    if isinstance(body.get("instructions"), str):
        n += tokens.SYSTEM_OVERHEAD + tokens.count_text(body["instructions"])
    inp = body.get("input")
    if isinstance(inp, str):
        n += tokens.MESSAGE_OVERHEAD + tokens.count_text(inp)
    for it in inp if isinstance(inp, list) else ():
        n += tokens.MESSAGE_OVERHEAD + tokens.count_json(it)
    for t in body.get("tools") or ():
        n += tokens.count_json(t)
    return n


def _items(
    fake: FakeOpenAI, reply: ResponsesReply, body: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The final items (ids, call ids and blobs minted)."""
    include = body.get("include") or ()
    out: list[dict[str, Any]] = []
    for spec in reply.output:
        t = spec["type"]
        if t == "message":
            out.append(
                {
                    "id": "msg_" + ou.rand_hex(48),
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {
                            "type": "output_text",
                            "annotations": [],
                            "logprobs": [],
                            "text": spec["text"],
                        }
                    ],
                }
            )
        elif t == "reasoning":
            item: dict[str, Any] = {
                "id": "rs_" + ou.rand_hex(48),
                "type": "reasoning",
                "summary": [],
            }
            if spec.get("summary"):
                item["summary"] = [{"type": "summary_text", "text": spec["summary"]}]
            if spec.get("text"):
                item["content"] = [{"type": "reasoning_text", "text": spec["text"]}]
            if "reasoning.encrypted_content" in include and fake.base == "openai":
                item["encrypted_content"] = fake.responses_state.issue()
            out.append(item)
        elif t == "function_call":
            out.append(
                {
                    "id": "fc_" + ou.rand_hex(48),
                    "type": "function_call",
                    "status": "completed",
                    "arguments": spec["arguments"],
                    "call_id": spec.get("call_id") or "call_" + ou.rand_b62(24),
                    "name": spec["name"],
                }
            )
        elif t == "custom_tool_call":
            out.append(
                {
                    "id": "ctc_" + ou.rand_hex(48),
                    "type": "custom_tool_call",
                    "call_id": spec.get("call_id") or "call_" + ou.rand_b62(24),
                    "name": spec["name"],
                    "input": spec["input"],
                }
            )
        else:
            raise ValueError(f"unknown scripted item {spec!r}")
    if reply.status == "incomplete" and out:
        last = out[-1]
        if "status" in last:
            last["status"] = "incomplete"
    return out


def _usage(reply: ResponsesReply, prompt: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    out_tokens = sum(tokens.count_json(it) for it in items)
    reasoning = sum(tokens.count_json(it) for it in items if it["type"] == "reasoning")
    u: dict[str, Any] = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": out_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + out_tokens,
    }
    for k, v in (reply.usage or {}).items():
        u[k] = v
    u["total_tokens"] = u["input_tokens"] + u["output_tokens"]
    return u


def _response(
    body: Mapping[str, Any],
    rid: str,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    reply: ResponsesReply | None,
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {
            "effort": (body.get("reasoning") or {}).get("effort"),
            "summary": (body.get("reasoning") or {}).get("summary"),
        },
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "metadata": body.get("metadata") or {},
    }
    if reply is not None and status == "incomplete":
        r["incomplete_details"] = {"reason": reply.incomplete_reason}
    if reply is not None and status == "failed":
        r["error"] = {"code": reply.error_code, "message": reply.error_message}
    if status == "completed":
        r["completed_at"] = r["created_at"]
    return r


def _events(final: dict[str, Any], reply: ResponsesReply) -> list[dict[str, Any]]:
    """The event stream of ``final``, as OpenAI sends it."""
    start = {
        **final,
        "status": "in_progress",
        "output": [],
        "usage": None,
        "error": None,
        "incomplete_details": None,
    }
    start.pop("completed_at", None)
    evs: list[dict[str, Any]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
    ]
    for idx, it in enumerate(final["output"]):
        ref = {"item_id": it["id"], "output_index": idx}
        t = it["type"]
        if t == "message":
            evs.append(
                {
                    "type": "response.output_item.added",
                    "output_index": idx,
                    "item": {**it, "status": "in_progress", "content": []},
                }
            )
            part = it["content"][0]
            text = part["text"]
            evs.append(
                {
                    "type": "response.content_part.added",
                    **ref,
                    "content_index": 0,
                    "part": {**part, "text": ""},
                }
            )
            for piece in split_text(text, reply.text_chunk):
                evs.append(
                    {
                        "type": "response.output_text.delta",
                        **ref,
                        "content_index": 0,
                        "delta": piece,
                        "logprobs": [],
                    }
                )
            evs.append(
                {
                    "type": "response.output_text.done",
                    **ref,
                    "content_index": 0,
                    "text": text,
                    "logprobs": [],
                }
            )
            evs.append(
                {"type": "response.content_part.done", **ref, "content_index": 0, "part": part}
            )
        elif t == "reasoning":
            evs.append(
                {
                    "type": "response.output_item.added",
                    "output_index": idx,
                    "item": {"id": it["id"], "type": "reasoning", "summary": []},
                }
            )
            for si, part in enumerate(it["summary"]):
                evs.append(
                    {
                        "type": "response.reasoning_summary_part.added",
                        **ref,
                        "summary_index": si,
                        "part": {**part, "text": ""},
                    }
                )
                for piece in split_text(part["text"], reply.text_chunk):
                    evs.append(
                        {
                            "type": "response.reasoning_summary_text.delta",
                            **ref,
                            "summary_index": si,
                            "delta": piece,
                        }
                    )
                evs.append(
                    {
                        "type": "response.reasoning_summary_text.done",
                        **ref,
                        "summary_index": si,
                        "text": part["text"],
                    }
                )
                evs.append(
                    {
                        "type": "response.reasoning_summary_part.done",
                        **ref,
                        "summary_index": si,
                        "part": part,
                    }
                )
            for ci, part in enumerate(it.get("content") or ()):
                evs.append(
                    {
                        "type": "response.content_part.added",
                        **ref,
                        "content_index": ci,
                        "part": {**part, "text": ""},
                    }
                )
                for piece in split_text(part["text"], reply.text_chunk):
                    evs.append(
                        {
                            "type": "response.reasoning_text.delta",
                            **ref,
                            "content_index": ci,
                            "delta": piece,
                        }
                    )
                evs.append(
                    {
                        "type": "response.reasoning_text.done",
                        **ref,
                        "content_index": ci,
                        "text": part["text"],
                    }
                )
                evs.append(
                    {"type": "response.content_part.done", **ref, "content_index": ci, "part": part}
                )
        elif t == "function_call":
            evs.append(
                {
                    "type": "response.output_item.added",
                    "output_index": idx,
                    "item": {**it, "status": "in_progress", "arguments": ""},
                }
            )
            for piece in split_text(it["arguments"], reply.args_chunk):
                evs.append(
                    {"type": "response.function_call_arguments.delta", **ref, "delta": piece}
                )
            evs.append(
                {
                    "type": "response.function_call_arguments.done",
                    **ref,
                    "arguments": it["arguments"],
                }
            )
        else:  # custom_tool_call
            evs.append(
                {
                    "type": "response.output_item.added",
                    "output_index": idx,
                    "item": {**it, "input": ""},
                }
            )
            for piece in split_text(it["input"], reply.args_chunk):
                evs.append({"type": "response.custom_tool_call_input.delta", **ref, "delta": piece})
            evs.append(
                {"type": "response.custom_tool_call_input.done", **ref, "input": it["input"]}
            )
        evs.append({"type": "response.output_item.done", "output_index": idx, "item": it})
    terminal = {
        "completed": "response.completed",
        "incomplete": "response.incomplete",
        "failed": "response.failed",
    }[final["status"]]
    evs.append({"type": terminal, "response": final})
    for i, ev in enumerate(evs):
        ev["sequence_number"] = i
    return evs


def _frame(ev: dict[str, Any]) -> bytes:
    return b"event: " + ev["type"].encode() + b"\ndata: " + orjson.dumps(ev) + b"\n\n"


async def handle_responses(fake: FakeOpenAI, request: web.Request) -> web.StreamResponse:
    """``POST /v1/responses``."""
    if not fake.responses:
        raise web.HTTPNotFound()
    fake._check_auth(request)
    body = fake._body(request)
    rec: RecordedRequest = request[RECORDED]
    if fake.validate:
        _validate(fake, body, rec)
    reply = fake._pop_reply(rec)
    if reply is None:
        reply = ResponsesReply(output=[r_message(fake.default_text)])
    if isinstance(reply, ou.ErrorReply):
        return await fake._send_error_reply(reply)
    if isinstance(reply, RawStream):
        return await replay_raw(request, reply, {})
    if isinstance(reply, ou.ChatReply):
        reply = from_chat_reply(reply)
    if not isinstance(reply, ResponsesReply):
        raise TypeError(f"cannot answer /v1/responses with {reply!r}")
    items = _items(fake, reply, body)
    model = reply.model or str(body.get("model"))
    rid = "resp_" + ou.rand_hex(48)
    final = _response(
        body, rid, model, reply.status, items, _usage(reply, _prompt_tokens(body), items), reply
    )
    if body.get("store") is not False:
        with fake.responses_state._lock:
            fake.responses_state.stored[rid] = final
    headers = dict(reply.headers)
    if fake.mode == "openai":
        headers.setdefault("x-request-id", "req_" + ou.rand_hex(32))
    if body.get("stream"):
        plan = StreamPlan(
            frames=[_frame(ev) for ev in _events(final, reply)],
            first_byte_delay=reply.first_byte_delay,
            event_delay=reply.event_delay,
            pauses=reply.pauses,
            cut_after=reply.cut_after,
            cut_mode=reply.cut_mode,
        )
        return await write_stream(request, plan, headers=headers)
    if reply.first_byte_delay:
        await asyncio.sleep(reply.first_byte_delay)
    resp = web.Response(body=orjson.dumps(final), content_type="application/json")
    resp.headers.update(headers)
    return resp
