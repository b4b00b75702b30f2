"""OpenAI client -> Anthropic upstream (docs/protocols.md §7.4, §7.5).

Request: ``openai_to_anthropic_request``; non-streamed response: ``anthropic_to_openai_response``.
Streams are in :mod:`.stream_a2o`.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from typing import Any

from ..errors import InvalidRequestError
from ..protocols.openai import new_completion_id
from ..tokens import estimate_openai_request_tokens
from ..usage import Usage
from .common import dumps_arguments, parse_tool_arguments, stop_reason_to_finish, usage_to_openai
from .context import ResponseContext, Target
from .names import sanitize_tool_id

IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
PLACEHOLDER_USER = "(continue)"
NO_RESULT = "(no result)"
JSON_OBJECT_INSTRUCTION = "Respond only with a single valid JSON object, with no other text."

# reasoning_effort -> thinking budget (LiteLLM defaults; docs/protocols.md §7.10)
EFFORT_BUDGET = {"low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192, "max": 16384}


def _oa_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out: list[str] = []
        for p in content:
            if isinstance(p, str):
                out.append(p)
            elif isinstance(p, dict):
                t = p.get("type")
                if t == "text" and isinstance(p.get("text"), str):
                    out.append(p["text"])
                elif t == "refusal" and isinstance(p.get("refusal"), str):
                    out.append(p["refusal"])
        return "\n\n".join(x for x in out if x)
    return ""


def _image_block(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        head, sep, data = url.partition(",")
        if not sep or ";base64" not in head:
            raise InvalidRequestError(
                "image_url data URIs must be base64-encoded", param="messages"
            )
        mime = head[5:].split(";", 1)[0].lower()
        if mime == "image/jpg":
            mime = "image/jpeg"
        if mime not in IMAGE_TYPES:
            raise InvalidRequestError(
                f"unsupported image type {mime!r}: use image/jpeg, image/png, image/gif or "
                "image/webp",
                param="messages",
            )
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequestError(
        "image_url.url must be a data URI or an http(s) URL", param="messages"
    )


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    blocks: list[dict[str, Any]] = []
    if not isinstance(content, list):
        return blocks
    for p in content:
        if isinstance(p, str):
            if p.strip():
                blocks.append({"type": "text", "text": p})
            continue
        if not isinstance(p, dict):
            continue
        t = p.get("type")
        if t == "text":
            s = p.get("text")
            if isinstance(s, str) and s.strip():
                blocks.append({"type": "text", "text": s})
        elif t == "image_url":
            iu = p.get("image_url")
            url = iu.get("url") if isinstance(iu, dict) else iu
            if not isinstance(url, str):
                raise InvalidRequestError("image_url.url is required", param="messages")
            blocks.append(_image_block(url))
        elif t == "input_audio":
            raise InvalidRequestError(
                "audio input is not supported by this model", param="messages"
            )
        elif t == "file":
            f = p.get("file") or {}
            data = f.get("file_data")
            if isinstance(data, str) and data.startswith("data:application/pdf;base64,"):
                blocks.append(
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": data.partition(",")[2],
                        },
                    }
                )
            else:
                raise InvalidRequestError(
                    "file inputs are supported only as inline PDF file_data (file_id is not)",
                    param="messages",
                )
    return blocks


def _append(msgs: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return
    if msgs and msgs[-1]["role"] == role:
        msgs[-1]["content"].extend(blocks)
    else:
        msgs.append({"role": role, "content": blocks})


def _match_results(
    pending: list[str], results: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """(the results that answer a pending call, the pending calls left unanswered), in linear
    time: each result takes the first pending call with its id that is still open, and the
    calls left keep their order (an id may repeat; docs/translation.md, "Linear time")."""
    open_ = Counter(pending)
    kept: list[dict[str, Any]] = []
    for b in results:
        tid = b["tool_use_id"]
        if open_[tid] > 0:
            open_[tid] -= 1
            kept.append(b)
    # the answered ones are the first occurrences of each id: skip that many, keep the rest
    skip = Counter(pending)
    skip.subtract(open_)
    unanswered: list[str] = []
    for tid in pending:
        if skip[tid] > 0:
            skip[tid] -= 1
        else:
            unanswered.append(tid)
    return kept, unanswered


def _repair(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool results first in user turns; answer every tool_use in the next turn; drop strays."""
    out: list[dict[str, Any]] = []
    pending: list[str] = []
    for m in msgs:
        if m["role"] == "user":
            results = [b for b in m["content"] if b.get("type") == "tool_result"]
            others = [b for b in m["content"] if b.get("type") != "tool_result"]
            kept, unanswered = _match_results(pending, results)
            kept.extend(
                {"type": "tool_result", "tool_use_id": tid, "content": NO_RESULT}
                for tid in unanswered
            )
            pending = []
            content = kept + others
            if content:
                out.append({"role": "user", "content": content})
            continue
        if pending:
            out.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": tid, "content": NO_RESULT}
                        for tid in pending
                    ],
                }
            )
        pending = [b["id"] for b in m["content"] if b.get("type") == "tool_use"]
        if out and out[-1]["role"] == "assistant":
            out[-1]["content"].extend(m["content"])
        else:
            out.append(m)
    if pending:
        out.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tid, "content": NO_RESULT}
                    for tid in pending
                ],
            }
        )
    return out


def _in_tool_loop(msgs: list[dict[str, Any]]) -> bool:
    """The request ends with tool results: an assistant turn with tool calls is ongoing."""
    if not msgs or msgs[-1]["role"] != "user":
        return False
    return any(b.get("type") == "tool_result" for b in msgs[-1]["content"])


def _convert_tools(tools: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not isinstance(tools, list):
        return out
    for t in tools:
        if not isinstance(t, dict):
            continue
        tt = t.get("type", "function")
        if tt != "function":
            raise InvalidRequestError(
                f"tools of type {tt!r} are not supported by this model; use function tools",
                param="tools",
            )
        fn = t.get("function") or {}
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequestError("tools[].function.name is required", param="tools")
        params = fn.get("parameters")
        if not isinstance(params, dict):
            params = {"type": "object", "properties": {}}
        elif params.get("type") != "object":
            params = {**params, "type": "object"}
        tool: dict[str, Any] = {"name": name}
        if fn.get("description"):
            tool["description"] = fn["description"]
        tool["input_schema"] = params
        out.append(tool)
    return out


def openai_to_anthropic_request(
    body: dict[str, Any], target: Target
) -> tuple[dict[str, Any], ResponseContext]:
    """OpenAI Chat Completions request -> Anthropic Messages request for ``target``."""
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise InvalidRequestError("n > 1 is not supported by this model", param="n")

    system: list[dict[str, Any]] = []
    msgs: list[dict[str, Any]] = []
    used_tool_names: list[str] = []
    for m in body.get("messages") or ():
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        content = m.get("content")
        if role in ("system", "developer"):
            s = _oa_text(content)
            if s.strip():
                system.append({"type": "text", "text": s})
        elif role == "user":
            _append(msgs, "user", _user_blocks(content))
        elif role == "assistant":
            blocks: list[dict[str, Any]] = []
            s = _oa_text(content)
            if s.strip():
                blocks.append({"type": "text", "text": s})
            refusal = m.get("refusal")
            if isinstance(refusal, str) and refusal.strip() and not s:
                blocks.append({"type": "text", "text": refusal})
            calls = m.get("tool_calls") or []
            fc = m.get("function_call")
            if not calls and isinstance(fc, dict):
                calls = [{"id": fc.get("name"), "function": fc}]
            for tc in calls:
                if not isinstance(tc, dict):
                    continue
                fn = tc.get("function") or {}
                name = fn.get("name") or ""
                used_tool_names.append(name)
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": sanitize_tool_id(tc.get("id")),
                        "name": name,
                        "input": parse_tool_arguments(fn.get("arguments")),
                    }
                )
            # reasoning/reasoning_content: no signature -> Anthropic would reject it; dropped
            _append(msgs, "assistant", blocks)
        elif role in ("tool", "function"):
            tid = m.get("tool_call_id") if role == "tool" else m.get("name")
            text = _oa_text(content)
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": sanitize_tool_id(tid)}
            if text:
                block["content"] = text
            _append(msgs, "user", [block])
    msgs = _repair(msgs)
    if not msgs or msgs[0]["role"] != "user":
        msgs.insert(0, {"role": "user", "content": [{"type": "text", "text": PLACEHOLDER_USER}]})

    tools = _convert_tools(body.get("tools"))
    tool_choice: dict[str, Any] | None = None
    tc = body.get("tool_choice")
    if tools:
        if tc == "none":
            tool_choice = {"type": "none"}
        elif tc == "auto":
            tool_choice = {"type": "auto"}
        elif tc == "required":
            tool_choice = {"type": "any"}
        elif isinstance(tc, dict):
            ct = tc.get("type")
            if ct == "function":
                name = (tc.get("function") or {}).get("name")
                if isinstance(name, str):
                    tool_choice = {"type": "tool", "name": name}
            elif ct == "allowed_tools":
                at = tc.get("allowed_tools") or {}
                allowed = {
                    (x.get("function") or {}).get("name")
                    for x in at.get("tools") or ()
                    if isinstance(x, dict)
                }
                tools = [t for t in tools if t["name"] in allowed] or tools
                tool_choice = {"type": "any" if at.get("mode") == "required" else "auto"}
            elif ct == "custom":
                raise InvalidRequestError(
                    "custom tools are not supported by this model", param="tool_choice"
                )
        if body.get("parallel_tool_calls") is False:
            if tool_choice is None:
                tool_choice = {"type": "auto"}
            if tool_choice["type"] != "none":
                tool_choice["disable_parallel_tool_use"] = True
    elif used_tool_names:
        # history has tool calls but no tools: Anthropic rejects that; declare them, forbid use
        seen: dict[str, None] = dict.fromkeys(x for x in used_tool_names if x)
        tools = [{"name": nm, "input_schema": {"type": "object", "properties": {}}} for nm in seen]
        tool_choice = {"type": "none"} if tools else None

    ws = body.get("web_search_options")
    if isinstance(ws, dict):
        tools.append({"type": "web_search_20250305", "name": "web_search"})

    # ---- max_tokens
    cap = target.max_output_tokens
    mt = body.get("max_completion_tokens")
    if mt is None:
        mt = body.get("max_tokens")
    if not isinstance(mt, int) or isinstance(mt, bool):
        mt = min(target.default_max_tokens, cap) if cap else target.default_max_tokens
    if cap:
        mt = min(mt, cap)
    mt = max(mt, 1)
    mt_asked = mt

    out: dict[str, Any] = {"model": target.model, "max_tokens": mt}

    # ---- thinking
    thinking: dict[str, Any] | None = None
    effort = body.get("reasoning_effort")
    if isinstance(effort, str) and effort in EFFORT_BUDGET:
        budget = EFFORT_BUDGET[effort]
        if mt <= budget:
            mt = budget + mt
            if cap:
                mt = min(mt, cap)
        if mt <= budget:
            budget = mt - 1
        if budget >= 1024:
            thinking = {"type": "enabled", "budget_tokens": budget}
            out["max_tokens"] = mt
    if thinking is not None and (
        (tool_choice is not None and tool_choice["type"] in ("any", "tool")) or _in_tool_loop(msgs)
    ):
        # Anthropic allows only auto/none tool_choice with manual thinking, and with thinking on
        # an ongoing tool loop must begin with the signed thinking block of the turn that
        # started it; OpenAI clients never send one back, so thinking is dropped for the rest of
        # the loop (docs/translation.md, "Reasoning in tool loops")
        thinking = None
        out["max_tokens"] = mt_asked

    # ---- response_format
    rf = body.get("response_format")
    output_config: dict[str, Any] | None = None
    if isinstance(rf, dict):
        if rf.get("type") == "json_schema":
            js = rf.get("json_schema") or {}
            schema = js.get("schema") if isinstance(js, dict) else None
            output_config = {
                "format": {
                    "type": "json_schema",
                    "schema": schema if isinstance(schema, dict) else {"type": "object"},
                }
            }
        elif rf.get("type") == "json_object":
            system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})

    out["messages"] = msgs
    if system:
        out["system"] = system
    if tools:
        out["tools"] = tools
        if tool_choice is not None:
            out["tool_choice"] = tool_choice
    stop = body.get("stop")
    stops: list[str] = []
    if isinstance(stop, str):
        stops = [stop] if stop.strip() else []
    elif isinstance(stop, list):
        stops = [s for s in stop if isinstance(s, str) and s.strip()]
    if stops:
        out["stop_sequences"] = stops
    if thinking is not None:
        out["thinking"] = thinking
        top_p = body.get("top_p")
        if isinstance(top_p, int | float) and top_p >= 0.95:
            out["top_p"] = top_p
    else:
        temp = body.get("temperature")
        if isinstance(temp, int | float) and not isinstance(temp, bool):
            out["temperature"] = min(max(float(temp), 0.0), 1.0)
        top_p = body.get("top_p")
        # current Claude models reject temperature and top_p together; temperature wins
        if isinstance(top_p, int | float) and "temperature" not in out:
            out["top_p"] = top_p
        top_k = body.get("top_k")
        if isinstance(top_k, int) and not isinstance(top_k, bool):
            out["top_k"] = top_k
    if output_config is not None:
        out["output_config"] = output_config
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        if "@" in user or len(user) > 256:
            user = hashlib.sha256(user.encode()).hexdigest()
        out["metadata"] = {"user_id": user}
    stream = body.get("stream")
    include_usage = False
    if stream:
        out["stream"] = True
        so = body.get("stream_options")
        include_usage = isinstance(so, dict) and bool(so.get("include_usage"))
    elif stream is not None:
        out["stream"] = False

    rctx = ResponseContext(
        requested_model=target.requested_model,
        stop_sequences=stops,
        include_usage=include_usage,
        input_tokens_estimate=(
            estimate_openai_request_tokens(body)
            if target.input_tokens_estimate is None
            else target.input_tokens_estimate
        ),
    )
    return out, rctx


# ================================================================================ response


def anthropic_usage_to_openai(u: dict[str, Any] | None) -> dict[str, Any]:
    usage = Usage.from_anthropic(u)
    details = (u or {}).get("output_tokens_details") or {}
    return usage_to_openai(usage, details.get("thinking_tokens"))


def anthropic_to_openai_response(resp: dict[str, Any], rctx: ResponseContext) -> dict[str, Any]:
    """Anthropic message -> OpenAI chat.completion."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for b in resp.get("content") or ():
        if not isinstance(b, dict):
            continue
        t = b.get("type")
        if t == "text":
            s = b.get("text")
            if isinstance(s, str):
                texts.append(s)
        elif t == "thinking":
            s = b.get("thinking")
            if isinstance(s, str) and s:
                thinking.append(s)
        elif t == "tool_use":
            name = b.get("name") or ""
            calls.append(
                {
                    "id": b.get("id") or sanitize_tool_id(None),
                    "type": "function",
                    "function": {
                        "name": rctx.tool_names.get(name, name),
                        "arguments": dumps_arguments(
                            b.get("input") if b.get("input") is not None else {}
                        ),
                    },
                }
            )
    text = "".join(texts)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if (text or not calls) else None,
    }
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    finish = stop_reason_to_finish(resp.get("stop_reason"))
    if calls and finish == "stop":
        finish = "tool_calls"
    return {
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": rctx.requested_model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": anthropic_usage_to_openai(resp.get("usage")),
    }
