"""Anthropic client -> OpenAI-compatible upstream (docs/protocols.md §7.1, §7.2).

Request: ``anthropic_to_openai_request``; non-streamed response: ``openai_to_anthropic_response``.
Streams are in :mod:`.stream_o2a`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..dialects.anthropic.compat import is_billing_text, without_billing_line
from ..dialects.openai.compat import pad_tool_turns
from ..dialects.openai.flavors import Flavor, capabilities
from ..errors import InvalidRequestError
from ..protocols.anthropic import new_message_id
from ..tokens import estimate_anthropic_request_tokens, estimate_text_tokens
from ..usage import Usage
from .common import (
    dumps_arguments,
    finish_to_stop_reason,
    parse_tool_arguments,
    usage_to_anthropic,
)
from .context import ResponseContext, Target
from .names import sanitize_tool_id, shorten_tool_name, synthetic_signature
from .tool_ids import ANTHROPIC_PREFIX, MISTRAL9, ToolIds

NO_RESULT = "(no result)"
TOOL_ERROR_PREFIX = "[tool error] "
#: assistant turn put between a tool result and a user turn that has more than text, for
#: upstreams that reject a user turn right after a tool result (docs/translation.md)
TOOL_USER_BRIDGE = "(tool results received)"

_VALID_ID = re.compile(r"^[a-zA-Z0-9_-]+$")

# Anthropic-defined client tools whose schema the model "knows"; give OpenAI backends one.
_BUILTIN_SCHEMAS: dict[str, dict[str, Any]] = {
    "bash": {
        "type": "object",
        "properties": {"command": {"type": "string"}, "restart": {"type": "boolean"}},
    },
    "text_editor": {
        "type": "object",
        "properties": {
            "command": {
                "type": "string",
                "enum": ["view", "create", "str_replace", "insert", "undo_edit"],
            },
            "path": {"type": "string"},
            "file_text": {"type": "string"},
            "old_str": {"type": "string"},
            "new_str": {"type": "string"},
            "insert_line": {"type": "integer"},
            "view_range": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["command", "path"],
    },
}


# thinking budget -> reasoning_effort (LiteLLM defaults, docs/protocols.md §7.10)
def effort_for_budget(budget: int) -> str:
    if budget < 1024:
        return "minimal"
    if budget < 2048:
        return "low"
    if budget < 4096:
        return "medium"
    if budget < 8192:
        return "high"
    return "xhigh"


def _map_id(tool_id: Any, ids: ToolIds) -> str:
    """Deterministic id for request history (never random unless the client sent none), in
    the upstream's format."""
    if isinstance(tool_id, str) and _VALID_ID.match(tool_id):
        return ids.up(tool_id)
    return ids.up(sanitize_tool_id(tool_id if isinstance(tool_id, str) else None))


def _text_of(content: Any, sep: str = "\n\n") -> str:
    """Plain text of a string or a list of (text) blocks."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for b in content:
        if isinstance(b, str):
            parts.append(b)
        elif isinstance(b, dict):
            t = b.get("type")
            if t == "text" or t is None:
                s = b.get("text")
                if isinstance(s, str) and s:
                    parts.append(s)
            elif t == "mid_conv_system":
                s = _text_of(b.get("content"), sep)
                if s:
                    parts.append(s)
    return sep.join(parts)


def _image_part(block: dict[str, Any]) -> dict[str, Any] | None:
    src = block.get("source") or {}
    st = src.get("type")
    if st == "base64":
        url = f"data:{src.get('media_type') or 'image/png'};base64,{src.get('data') or ''}"
    elif st == "url":
        url = src.get("url") or ""
    else:
        raise InvalidRequestError(
            f"image source type {st!r} is not supported by this backend", param="messages"
        )
    return {"type": "image_url", "image_url": {"url": url}}


def _document_text(block: dict[str, Any], pdf_parts: bool) -> dict[str, Any] | str:
    """A document block -> text (or a ``file`` part for PDFs where the upstream takes them)."""
    src = block.get("source") or {}
    st = src.get("type")
    title = block.get("title")
    body: str
    if st == "text":
        body = src.get("data") or ""
    elif st == "content":
        body = _text_of(src.get("content"), "\n")
    elif st == "base64" and pdf_parts:
        return {
            "type": "file",
            "file": {
                "file_data": f"data:{src.get('media_type') or 'application/pdf'};base64,"
                f"{src.get('data') or ''}",
                "filename": title or "document.pdf",
            },
        }
    else:
        raise InvalidRequestError(
            "PDF/URL document blocks are not supported by this backend; send the text instead",
            param="messages",
        )
    if title:
        return f"{title}\n\n{body}"
    return body


def _search_result_text(block: dict[str, Any]) -> str:
    head = " - ".join(x for x in (block.get("title"), block.get("source")) if isinstance(x, str))
    inner = _text_of(block.get("content"), "\n")
    return f"{head}\n{inner}" if head else inner


def _tool_result(
    block: dict[str, Any], ids: ToolIds
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """tool_result -> (tool message, image parts that must travel in a following user message)."""
    c = block.get("content")
    images: list[dict[str, Any]] = []
    if c is None:
        text = ""
    elif isinstance(c, str):
        text = c
    elif isinstance(c, list):
        texts: list[str] = []
        for item in c:
            if isinstance(item, str):
                texts.append(item)
                continue
            if not isinstance(item, dict):
                continue
            it = item.get("type")
            if it == "text":
                s = item.get("text")
                if isinstance(s, str):
                    texts.append(s)
            elif it == "image":
                img = _image_part(item)
                if img is not None:
                    images.append(img)
            elif it == "document":
                d = _document_text(item, False)  # a tool message carries no file parts
                if isinstance(d, str):
                    texts.append(d)
            elif it == "search_result":
                texts.append(_search_result_text(item))
            elif it == "tool_reference":
                name = item.get("tool_name") or item.get("name") or ""
                texts.append(f"(tool reference: {name})")
        text = "\n".join(texts)
        if not text and images:
            text = "(image output attached below)"
    else:
        text = str(c)
    if block.get("is_error"):
        text = TOOL_ERROR_PREFIX + text
    tool_msg = {
        "role": "tool",
        "tool_call_id": _map_id(block.get("tool_use_id"), ids),
        "content": text,
    }
    return tool_msg, images


def _collapse(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and parts[0].get("type") == "text":
        text: str = parts[0]["text"]
        return text
    return parts


def _as_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


class _Merged:
    """The content of a run of same-role user turns merged into one, built in time linear in
    the run (each turn's text is copied once, at the end), with the result of merging them two
    by two: strings join with a blank line, anything else becomes parts (one text part is a
    string again)."""

    __slots__ = ("other", "parts", "texts")

    def __init__(self, content: Any) -> None:
        #: string mode: the non-empty strings, joined by a blank line at the end
        self.texts: list[str] | None = None
        #: parts mode: the content parts so far
        self.parts: list[dict[str, Any]] | None = None
        #: neither: a content that is no string and no list (kept as it is)
        self.other: Any = None
        self._take(content)

    def _take(self, content: Any) -> None:
        self.texts = self.parts = self.other = None
        if isinstance(content, str):
            self.texts = [content] if content else []
        elif isinstance(content, list):
            self.parts = list(content)
        else:
            self.other = content

    def add(self, mc: Any) -> None:
        if self.texts is not None:
            if isinstance(mc, str):
                if mc:
                    self.texts.append(mc)
                return
            more = _as_parts(mc)
            if not more:
                if not self.texts:
                    self._take([])
                return  # one text part: collapses back to the same string
            self.parts = _as_parts("\n\n".join(self.texts)) + more
            self.texts = None
        elif self.parts is not None:
            self.parts.extend(_as_parts(mc))
        else:
            self.parts = _as_parts(mc)
            self.other = None
        parts = self.parts
        if len(parts) == 1 and parts[0].get("type") == "text":
            self._take(parts[0]["text"])

    def value(self) -> Any:
        if self.texts is not None:
            return "\n\n".join(self.texts)
        if self.parts is not None:
            return self.parts
        return self.other


def _merge_run(prev: dict[str, Any], run: list[dict[str, Any]]) -> None:
    """Merge the turns of ``run`` into ``prev`` (same role, not tool), in one pass: the result
    of merging them one by one, without re-copying the text merged so far (docs/translation.md,
    "Linear time")."""
    if prev["role"] != "assistant":
        merged = _Merged(prev.get("content"))
        for m in run:
            merged.add(m.get("content"))
        prev["content"] = merged.value()
        return
    contents = [prev.get("content")] + [m.get("content") for m in run]
    texts = [x for x in contents if isinstance(x, str) and x]
    first = next((x for x in contents if x is not None), None)
    prev["content"] = "\n\n".join(texts) if texts else first
    extras: dict[str, list[str]] = {}
    for m in run:
        if m.get("tool_calls"):
            prev["tool_calls"] = (prev.get("tool_calls") or []) + m["tool_calls"]
        for k, v in m.items():
            if k not in ("role", "content", "tool_calls") and isinstance(v, str) and v:
                got = extras.get(k)
                if got is None:
                    old = prev.get(k)
                    got = extras[k] = [old] if isinstance(old, str) and old else []
                    prev[k] = v  # its place among the keys
                got.append(v)
    for k, vs in extras.items():
        prev[k] = "\n\n".join(vs)


def _repair_and_merge(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Orphan repair (synthetic results / drop stray tool messages), then same-role merging.
    Linear in the conversation: pending calls are a dict, merged turns are joined once."""
    fixed: list[dict[str, Any]] = []
    pending: dict[str, None] = {}
    for m in msgs:
        role = m["role"]
        if role == "tool":
            tid = m["tool_call_id"]
            if tid in pending:
                del pending[tid]
                fixed.append(m)
            # else: answers nothing (or a duplicate answer) -> dropped
            continue
        if pending:
            for tid in pending:
                fixed.append({"role": "tool", "tool_call_id": tid, "content": NO_RESULT})
            pending = {}
        if role == "assistant" and m.get("tool_calls"):
            for tc in m["tool_calls"]:
                pending.setdefault(tc["id"], None)
        fixed.append(m)
    for tid in pending:
        fixed.append({"role": "tool", "tool_call_id": tid, "content": NO_RESULT})

    out: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []  # turns waiting to be merged into out[-1]
    calls = False  # out[-1] (with the run) is an assistant turn with tool calls
    for m in fixed:
        if out:
            prev = out[-1]
            if prev["role"] == m["role"] and m["role"] != "tool" and not calls:
                run.append(m)
                calls = m["role"] == "assistant" and bool(m.get("tool_calls"))
                continue
            if run:
                _merge_run(prev, run)
                run = []
        out.append(m)
        calls = m["role"] == "assistant" and bool(m.get("tool_calls"))
    if run:
        _merge_run(out[-1], run)
    return out


def _no_user_after_tool(conv: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``mistral_common`` rejects a user turn right after a tool result ("Unexpected role 'user'
    after role 'tool'"): text joins the last tool result; anything else gets a short assistant
    turn in between (docs/translation.md)."""
    out: list[dict[str, Any]] = []
    for m in conv:
        if m["role"] == "user" and out and out[-1]["role"] == "tool":
            c = m.get("content")
            text: str | None = None
            if isinstance(c, str):
                text = c
            elif isinstance(c, list) and all(
                isinstance(p, dict) and p.get("type") == "text" for p in c
            ):
                text = "\n\n".join(p.get("text") or "" for p in c)
            if text is not None:
                prev = out[-1]
                pc = prev.get("content")
                joined = f"{pc}\n\n{text}" if isinstance(pc, str) and pc else text
                out[-1] = {**prev, "content": joined}
                continue
            out.append({"role": "assistant", "content": TOOL_USER_BRIDGE})
        out.append(m)
    return out


def _convert_tools(
    tools: Any, tool_names: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Anthropic tools -> OpenAI function tools; returns (tools, original -> short name)."""
    out: list[dict[str, Any]] = []
    short_of: dict[str, str] = {}
    if not isinstance(tools, list):
        return out, short_of
    for t in tools:
        if not isinstance(t, dict):
            continue
        name = t.get("name")
        if not isinstance(name, str) or not name:
            continue
        ttype = t.get("type")
        schema = t.get("input_schema")
        if ttype not in (None, "custom") and not isinstance(schema, dict):
            # Anthropic-defined tools: client-executed ones get a schema, server tools are dropped
            if ttype.startswith("bash_"):
                schema = _BUILTIN_SCHEMAS["bash"]
            elif ttype.startswith("text_editor_"):
                schema = _BUILTIN_SCHEMAS["text_editor"]
            else:
                continue  # web_search_*, web_fetch_*, code_execution_*, tool_search_*, ...
        if not isinstance(schema, dict):
            schema = {"type": "object", "properties": {}}
        short = short_of.get(name)
        if short is None:
            short = shorten_tool_name(name)
            short_of[name] = short
            tool_names[short] = name
        out.append(
            {
                "type": "function",
                "function": {
                    "name": short,
                    "description": t.get("description") or "",
                    "parameters": schema,
                },
            }
        )
    return out, short_of


def _short(name: str, short_of: dict[str, str], tool_names: dict[str, str]) -> str:
    s = short_of.get(name)
    if s is None:
        s = shorten_tool_name(name)
        short_of[name] = s
        if s != name:
            tool_names[s] = name
    return s


def anthropic_to_openai_request(
    body: dict[str, Any], target: Target
) -> tuple[dict[str, Any], ResponseContext]:
    """Anthropic Messages request -> OpenAI Chat Completions request for ``target``."""
    caps = capabilities(target.flavor)
    reasoning_field = target.reasoning_field
    tool_names: dict[str, str] = {}
    ids = ToolIds(target.tool_id_format, ANTHROPIC_PREFIX)
    otools, short_of = _convert_tools(body.get("tools"), tool_names)

    sys_parts: list[str] = []
    system = body.get("system")
    # Claude Code's billing header changes on every request: dropped, or the upstream's prefix
    # cache would miss on every turn
    if isinstance(system, str):
        system = without_billing_line(system)
        if system:
            sys_parts.append(system)
    elif isinstance(system, list):
        for b in system:
            s = b.get("text") if isinstance(b, dict) else b
            if isinstance(s, str) and s and not is_billing_text(s):
                sys_parts.append(s)

    conv: list[dict[str, Any]] = []
    last_role: str | None = None
    for m in body.get("messages") or ():
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        content = m.get("content")
        if role == "system":
            s = _text_of(content)
            if s and not is_billing_text(s):
                sys_parts.append(s)
            continue
        if role != "assistant":
            role = "user"  # user, and the lenient ctx/msg roles
        last_role = role
        if isinstance(content, str):
            if content:
                conv.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            continue
        if role == "user":
            tool_msgs: list[dict[str, Any]] = []
            tool_images: list[dict[str, Any]] = []
            parts: list[dict[str, Any]] = []
            for b in content:
                if not isinstance(b, dict):
                    continue
                t = b.get("type")
                if t == "tool_result":
                    tm, imgs = _tool_result(b, ids)
                    tool_msgs.append(tm)
                    tool_images.extend(imgs)
                elif t == "text":
                    s = b.get("text")
                    if isinstance(s, str) and s:
                        parts.append({"type": "text", "text": s})
                elif t == "image":
                    img = _image_part(b)
                    if img is not None:
                        parts.append(img)
                elif t == "document":
                    d = _document_text(b, caps.pdf_parts)
                    if isinstance(d, str):
                        if d:
                            parts.append({"type": "text", "text": d})
                    else:
                        parts.append(d)
                elif t == "search_result":
                    parts.append({"type": "text", "text": _search_result_text(b)})
                elif t == "mid_conv_system":
                    s = _text_of(b.get("content"))
                    if s:
                        sys_parts.append(s)
                # thinking/tool_use/server blocks in a user turn: meaningless upstream, dropped
            conv.extend(tool_msgs)
            if tool_images:
                conv.append({"role": "user", "content": tool_images})
            if parts:
                conv.append({"role": "user", "content": _collapse(parts)})
        else:
            texts: list[str] = []
            reasoning: list[str] = []
            calls: list[dict[str, Any]] = []
            for b in content:
                if not isinstance(b, dict):
                    continue
                t = b.get("type")
                if t == "text":
                    s = b.get("text")
                    if isinstance(s, str) and s:
                        texts.append(s)
                elif t == "tool_use":
                    name = b.get("name") or ""
                    calls.append(
                        {
                            "id": _map_id(b.get("id"), ids),
                            "type": "function",
                            "function": {
                                "name": _short(name, short_of, tool_names),
                                "arguments": dumps_arguments(
                                    b.get("input") if b.get("input") is not None else {}
                                ),
                            },
                        }
                    )
                elif t == "thinking":
                    s = b.get("thinking")
                    if isinstance(s, str) and s:
                        reasoning.append(s)
                elif t == "mid_conv_system":
                    s = _text_of(b.get("content"))
                    if s:
                        sys_parts.append(s)
                # redacted_thinking, server_tool_use, *_tool_result: dropped
            if not texts and not calls:
                if reasoning and reasoning_field:
                    # a thinking-only turn: keep the reasoning so DeepSeek-style loops still work
                    conv.append(
                        {"role": "assistant", "content": "", reasoning_field: "".join(reasoning)}
                    )
                continue
            am: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(texts) if texts else caps.empty_assistant_content,
            }
            if reasoning and reasoning_field:
                am[reasoning_field] = "".join(reasoning)
            if calls:
                am["tool_calls"] = calls
            conv.append(am)

    prefill = (
        last_role == "assistant"
        and bool(conv)
        and conv[-1]["role"] == "assistant"
        and not conv[-1].get("tool_calls")
    )
    conv = _repair_and_merge(conv)
    if target.reasoning_with_tool_calls and reasoning_field:
        conv = pad_tool_turns(conv, reasoning_field)  # after merging: merged turns carry it too
    if target.tool_id_format == MISTRAL9:
        conv = _no_user_after_tool(conv)

    messages: list[dict[str, Any]] = []
    if sys_parts:
        messages.append({"role": "system", "content": "\n\n".join(sys_parts)})
    messages.extend(conv)

    out: dict[str, Any] = {"model": target.model, "messages": messages}

    # ---- generation parameters
    est = target.input_tokens_estimate
    if est is None:
        est = estimate_anthropic_request_tokens(body)
    mt = body.get("max_tokens")
    if isinstance(mt, int) and not isinstance(mt, bool):
        if target.max_output_tokens:
            mt = min(mt, target.max_output_tokens)
        if target.context_window:
            room = target.context_window - est
            if room >= 1:
                mt = min(mt, room)
            # else: the prompt alone overflows; let the upstream reject it with real numbers
        out[caps.max_tokens_field] = max(mt, 1)
    for k in ("temperature", "top_p"):
        v = body.get(k)
        if v is not None:
            out[k] = v
    if body.get("top_k") is not None and caps.accepts_top_k:
        out["top_k"] = body["top_k"]
    stops = [s for s in body.get("stop_sequences") or () if isinstance(s, str) and s.strip()]
    if stops:
        out["stop"] = stops[: caps.max_stop] if caps.max_stop is not None else stops
    stream = body.get("stream")
    if stream is not None:
        out["stream"] = bool(stream)
        # api.mistral.ai rejects stream_options and puts usage on its last chunk anyway
        if stream and caps.accepts_stream_options:
            out["stream_options"] = {"include_usage": True}
    meta = body.get("metadata")
    if isinstance(meta, dict) and caps.accepts_user:
        uid = meta.get("user_id")
        if isinstance(uid, str) and uid:
            out["user"] = uid if len(uid) <= 64 else hashlib.sha256(uid.encode()).hexdigest()

    # ---- tools
    if otools:
        out["tools"] = otools
        tc = body.get("tool_choice")
        if isinstance(tc, dict):
            ct = tc.get("type")
            if ct == "auto":
                out["tool_choice"] = "auto"
            elif ct == "any":
                out["tool_choice"] = "required"
            elif ct == "none":
                out["tool_choice"] = "none"
            elif ct == "tool" and isinstance(tc.get("name"), str):
                out["tool_choice"] = {
                    "type": "function",
                    "function": {"name": _short(tc["name"], short_of, tool_names)},
                }
            if tc.get("disable_parallel_tool_use") and ct != "none":
                out["parallel_tool_calls"] = False

    # ---- thinking / reasoning
    thinking = body.get("thinking")
    output_config = body.get("output_config")
    if not isinstance(output_config, dict):
        output_config = {}
    ttype = thinking.get("type") if isinstance(thinking, dict) else None
    if not target.reasoning:
        pass  # the model takes no reasoning switches (Claude Code sends them to every model)
    elif ttype in ("enabled", "adaptive"):
        effort: str | None = None
        oc_effort = output_config.get("effort")
        if isinstance(oc_effort, str) and oc_effort:
            effort = oc_effort
        elif ttype == "enabled":
            budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
            if isinstance(budget, int):
                effort = effort_for_budget(budget)
        picked = caps.pick_effort(effort) if effort else None
        if picked:
            out["reasoning_effort"] = picked
        _thinking_switch(out, caps, True)
    elif ttype == "disabled":
        # never together with an effort: DeepSeek answers 400 "thinking options type cannot be
        # disabled when reasoning_effort is set" (Claude Code subagents send disabled + effort)
        _thinking_switch(out, caps, False)

    fmt = output_config.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": "structured_output",
                "schema": fmt.get("schema") or {"type": "object"},
                "strict": True,
            },
        }

    if prefill and caps.prefill_switch == "continue_final_message":
        out["continue_final_message"] = True
        out["add_generation_prompt"] = False
    elif prefill and caps.prefill_switch == "prefix":
        messages[-1]["prefix"] = True  # Mistral's way to continue a final assistant turn

    rctx = ResponseContext(
        requested_model=target.requested_model,
        tool_names=tool_names,
        stop_sequences=stops,
        input_tokens_estimate=est,
        tool_ids=ids if ids.active else None,
    )
    return out, rctx


def _thinking_switch(out: dict[str, Any], caps: Flavor, on: bool) -> None:
    """Switch thinking on or off the way the upstream's chat template or API takes it."""
    if caps.thinking_switch == "chat_template_kwargs":
        out["chat_template_kwargs"] = {"enable_thinking": on}
    elif caps.thinking_switch == "deepseek":
        out["thinking"] = {"type": "enabled" if on else "disabled"}


# ================================================================================ response


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text") or ""
            for p in content
            if isinstance(p, dict) and p.get("type") in ("text", "output_text")
        )
    return ""


def split_leaked_thinking(text: str) -> tuple[str | None, str]:
    """``<think>x</think>rest`` at the start of content -> (x, rest); otherwise (None, text)."""
    stripped = text.lstrip()
    if not stripped.startswith("<think>"):
        return None, text
    body = stripped[len("<think>") :]
    end = body.find("</think>")
    if end < 0:
        return body, ""
    return body[:end], body[end + len("</think>") :].lstrip("\n")


def openai_to_anthropic_response(resp: dict[str, Any], rctx: ResponseContext) -> dict[str, Any]:
    """OpenAI chat.completion -> Anthropic message (only ``choices[0]`` is used).

    An answer with no content at all gets one empty text block (the same shape the streaming
    translator produces), so clients that index ``content[0]`` never crash.
    """
    choices = resp.get("choices") or []
    ch = choices[0] if choices and isinstance(choices[0], dict) else {}
    msg = ch.get("message") or {}
    content: list[dict[str, Any]] = []

    text = _message_text(msg.get("content"))
    reasoning = msg.get("reasoning") or msg.get("reasoning_content")
    if not reasoning and text:
        leaked, rest = split_leaked_thinking(text)
        if leaked is not None:
            reasoning, text = leaked, rest
    if isinstance(reasoning, str) and reasoning:
        content.append(
            {"type": "thinking", "thinking": reasoning, "signature": synthetic_signature(reasoning)}
        )
    if text:
        content.append({"type": "text", "text": text})
    refusal = msg.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})

    calls = msg.get("tool_calls") or []
    fc = msg.get("function_call")
    if not calls and isinstance(fc, dict):
        calls = [{"id": None, "function": fc}]
    n_tools = 0
    for tc in calls:
        if not isinstance(tc, dict):
            continue
        fn = tc.get("function") or {}
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            continue
        content.append(
            {
                "type": "tool_use",
                "id": rctx.client_tool_id(tc.get("id")),
                "name": rctx.tool_names.get(name, name),
                "input": parse_tool_arguments(fn.get("arguments")),
            }
        )
        n_tools += 1

    if isinstance(refusal, str) and refusal and not n_tools:
        stop_reason: str = "refusal"
        stop_seq: str | None = None
    else:
        stop_reason, stop_seq = finish_to_stop_reason(
            ch.get("finish_reason"), n_tools > 0, ch.get("stop_reason"), rctx.stop_sequences
        )

    u = resp.get("usage")
    if isinstance(u, dict):
        usage = Usage.from_openai(u)
    else:
        out_est = estimate_text_tokens(text) + estimate_text_tokens(reasoning or "")
        usage = Usage(rctx.input_tokens_estimate, out_est, estimated=True)

    if not content:
        content.append({"type": "text", "text": ""})
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": rctx.requested_model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_seq,
        "usage": usage_to_anthropic(usage),
    }
