"""Responses API request -> Chat Completions request (the dialect the OpenAI front speaks).

The Chat request this builds then takes the same road as any Chat client's: passed through to an
OpenAI-compatible upstream, or bridged to Anthropic. It holds standard Chat fields only, plus
two internal ones the bridges understand: ``reasoning_content`` on assistant messages (renamed
or dropped per upstream, as for any Chat client) and :data:`~.reasoning.THINKING_CARRIER`
(Anthropic's signed thinking blocks; only the O->A bridge reads it, every other path drops it).
See docs/responses-integration.md.

Stateless only: ``store: true``, ``previous_response_id``, ``conversation``, ``background``,
stored ``prompt``\\ s and ``item_reference`` items need a response store dragoman does not keep,
and get a 400 that says so.
"""

from __future__ import annotations

from typing import Any, cast

from ...errors import InvalidRequestError
from ...guard.images import refusal as image_url_refusal
from ...tokens import estimate_openai_request_tokens
from ..common import dumps_arguments
from .context import ResponsesContext
from .reasoning import THINKING_CARRIER, Reasoning, Sealer, open_reasoning
from .tools import (
    LOCAL_SHELL,
    ToolIndex,
    ToolKind,
    convert_tool_choice,
    convert_tools,
    custom_call_arguments,
    local_shell_arguments,
)

#: parameters that need server-side state: what each 400 says
_STATEFUL = {
    "previous_response_id": "previous_response_id needs stored responses, which this gateway "
    "does not keep: send the whole conversation in `input` (with store: false)",
    "conversation": "conversations need stored responses, which this gateway does not keep: "
    "send the whole conversation in `input`",
    "prompt": "stored prompt templates are not supported by this gateway: send the prompt in "
    "`instructions` and `input`",
}
#: input items that only make sense inside OpenAI's own servers: dropped with a warning
_HOSTED_ITEMS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "image_generation_call",
        "code_interpreter_call",
        "computer_call",
        "computer_call_output",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "tool_search_call",
        "tool_search_output",
        "compaction",
        "compaction_summary",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
    }
)
_CALLS = {
    "function_call": "function",
    "custom_tool_call": "custom",
    LOCAL_SHELL + "_call": LOCAL_SHELL,
}
_OUTPUTS = {
    "function_call_output": "function call",
    "custom_tool_call_output": "custom tool call",
    LOCAL_SHELL + "_call_output": "local shell call",
}


def _bad(message: str, param: str, code: str = "invalid_value") -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


def _text_of_parts(content: Any, ctx: ResponsesContext) -> str:
    """The text of a system/developer message (images there have nowhere to go)."""
    if isinstance(content, str):
        return content
    out: list[str] = []
    for p in content if isinstance(content, list) else ():
        if isinstance(p, dict) and isinstance(p.get("text"), str):
            out.append(p["text"])
        elif isinstance(p, dict) and p.get("type") in ("input_image", "input_file"):
            ctx.warn(f"{p['type']} in a system or developer message is not supported; dropped")
    return "\n\n".join(out)


def _image_part(p: dict[str, Any], loc: str) -> dict[str, Any]:
    url = p.get("image_url")
    if not isinstance(url, str) or not url:
        if p.get("file_id"):
            raise _bad(
                "input_image with a file_id is not supported by this gateway: send the image "
                "as a data URL or an http(s) URL in image_url",
                f"{loc}.file_id",
            )
        raise _bad(
            f"Missing required parameter: '{loc}.image_url'.",
            f"{loc}.image_url",
            "missing_required_parameter",
        )
    why = image_url_refusal(url)
    if why is not None:  # the upstream would fetch it, maybe inside a private network
        raise _bad(
            f"{loc}.image_url: this gateway fetches no URL for a client that is not a public "
            f"http(s) address ({why}); send the image as a data URL",
            f"{loc}.image_url",
            "invalid_image_url",
        )
    image: dict[str, Any] = {"url": url}
    detail = p.get("detail")
    if detail in ("low", "high", "auto"):
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def _file_part(p: dict[str, Any], loc: str) -> dict[str, Any]:
    data = p.get("file_data")
    if not isinstance(data, str) or not data:
        raise _bad(
            "input_file is supported only with inline file_data (a data URL): file_id and "
            "file_url need OpenAI's file store",
            loc,
        )
    f: dict[str, Any] = {"file_data": data}
    if isinstance(p.get("filename"), str):
        f["filename"] = p["filename"]
    return {"type": "file", "file": f}


def _parts(content: Any, loc: str) -> list[dict[str, Any]]:
    """Message content -> Chat content parts (user side)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _bad(
            f"Invalid type for '{loc}': expected one of a string or array of input items.",
            loc,
            "invalid_type",
        )
    out: list[dict[str, Any]] = []
    for j, p in enumerate(content):
        ploc = f"{loc}[{j}]"
        if not isinstance(p, dict):
            raise _bad(f"Invalid type for '{ploc}': expected an object.", ploc, "invalid_type")
        t = p.get("type")
        if t in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            s = p.get("text")
            if not isinstance(s, str):
                raise _bad(
                    f"Missing required parameter: '{ploc}.text'.",
                    f"{ploc}.text",
                    "missing_required_parameter",
                )
            out.append({"type": "text", "text": s})
        elif t == "refusal" and isinstance(p.get("refusal"), str):
            out.append({"type": "text", "text": p["refusal"]})
        elif t == "input_image":
            out.append(_image_part(p, ploc))
        elif t == "input_file":
            out.append(_file_part(p, ploc))
        elif t == "input_audio" and isinstance(p.get("input_audio"), dict):
            out.append({"type": "input_audio", "input_audio": p["input_audio"]})
        else:
            raise _bad(
                f"Invalid value: '{t}'. Supported content types are input_text, "
                "input_image, input_file, input_audio and output_text.",
                f"{ploc}.type",
            )
    return out


def _flat(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """One text part is sent as a plain string (every chat template reads that)."""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


class _Messages:
    """Builds the Chat messages; one assistant message per model turn (text, reasoning and
    every tool call of that turn, in order), tool results right after it."""

    def __init__(self, ctx: ResponsesContext, index: ToolIndex) -> None:
        self.ctx = ctx
        self.index = index
        self.system: list[str] = []
        self.msgs: list[dict[str, Any]] = []
        self.started = False  # a user or assistant turn was seen (later system text is a user turn)
        self._text: list[str] = []
        self._calls: list[dict[str, Any]] = []
        self._reasoning: list[Reasoning] = []
        self._images: list[dict[str, Any]] = []
        self.calls: dict[str, str] = {}  # call_id -> item type, every call of the history
        self.answered: set[str] = set()

    # ---- assistant turn under construction
    def _flush(self) -> None:
        if self._text or self._calls:
            m: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(self._text) or None}
            text = "".join(r.text for r in self._reasoning)
            if text:
                m["reasoning_content"] = text
            blocks = [b for r in self._reasoning for b in r.blocks]
            if blocks:
                m[THINKING_CARRIER] = blocks
            if self._calls:
                m["tool_calls"] = self._calls
            self.msgs.append(m)
        self._text, self._calls, self._reasoning = [], [], []

    def _flush_images(self) -> None:
        if self._images:
            self._user(self._images)
            self._images = []

    def _user(self, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        last = self.msgs[-1] if self.msgs else None
        if last is not None and last["role"] == "user":
            prev = last["content"]
            if isinstance(prev, str):
                last["content"] = [{"type": "text", "text": prev}, *parts]
            else:
                prev.extend(parts)  # in place: n user items in a row stay linear
        else:
            self.msgs.append({"role": "user", "content": _flat(parts)})

    # ---- items
    def message(self, role: Any, content: Any, loc: str) -> None:
        if role in ("system", "developer"):
            text = _text_of_parts(content, self.ctx)
            if not self.started:
                if text:
                    self.system.append(text)
                return
            self._flush()
            self._flush_images()
            if text:
                self._user([{"type": "text", "text": text}])
            return
        self.started = True
        if role == "assistant":
            self._flush_images()
            parts = _parts(content, f"{loc}.content")
            text = "".join(p["text"] for p in parts if p["type"] == "text")
            if text:
                self._text.append(text)
            return
        if role != "user":
            raise _bad(
                f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', "
                "'developer', and 'user'.",
                f"{loc}.role",
            )
        self._flush()
        self._flush_images()
        self._user(_parts(content, f"{loc}.content"))

    def reasoning(self, item: dict[str, Any]) -> None:
        enc = item.get("encrypted_content")
        if isinstance(enc, str) and enc:
            r = open_reasoning(self.ctx.sealer, enc)
            if r is None:
                # not ours: OpenAI's, another gateway's, or sealed under another key
                self.ctx.warn("a reasoning item sealed elsewhere was dropped (not forwarded)")
                return
        else:
            parts = item.get("content")
            text = "".join(
                p["text"]
                for p in (parts if isinstance(parts, list) else ())
                if isinstance(p, dict)
                and p.get("type") == "reasoning_text"
                and isinstance(p.get("text"), str)
            )
            r = Reasoning(text)
        if r:
            self.started = True
            self._flush_images()
            self._reasoning.append(r)

    def call(self, item: dict[str, Any], loc: str) -> None:
        t = item["type"]
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise _bad(
                f"Missing required parameter: '{loc}.call_id'.",
                f"{loc}.call_id",
                "missing_required_parameter",
            )
        ns = item.get("namespace") if isinstance(item.get("namespace"), str) else None
        if t == "local_shell_call":
            name = self.index.chat_name(LOCAL_SHELL, LOCAL_SHELL) or LOCAL_SHELL
            args = local_shell_arguments(item.get("action"))
        else:
            raw = item.get("name")
            if not isinstance(raw, str) or not raw:
                raise _bad(
                    f"Missing required parameter: '{loc}.name'.",
                    f"{loc}.name",
                    "missing_required_parameter",
                )
            kind = cast(ToolKind, _CALLS[t])
            name = self.index.chat_name(kind, raw, ns) or (f"{ns}__{raw}" if ns else raw)
            if t == "custom_tool_call":
                args = custom_call_arguments(item.get("input"))
            else:
                a = item.get("arguments")
                args = a if isinstance(a, str) else dumps_arguments(a if a is not None else {})
        self.started = True
        self._flush_images()
        self.calls[call_id] = t
        self._calls.append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
        )

    def output(self, item: dict[str, Any], loc: str) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or call_id not in self.calls:
            raise _bad(
                f"No tool call found for {_OUTPUTS[item['type']]} output with call_id {call_id}.",
                "input",  # api.openai.com names the whole input
            )
        if call_id in self.answered:
            self.ctx.warn("a second output for the same tool call was dropped")
            return
        self._flush()
        self.answered.add(call_id)
        out = item.get("output")
        if isinstance(out, str):
            text = out
        elif isinstance(out, list):
            texts: list[str] = []
            for j, p in enumerate(out):
                if not isinstance(p, dict):
                    continue
                if isinstance(p.get("text"), str):
                    texts.append(p["text"])
                elif p.get("type") == "input_image":
                    self._images.append(_image_part(p, f"{loc}.output[{j}]"))
                elif p.get("type") == "input_file":
                    self._images.append(_file_part(p, f"{loc}.output[{j}]"))
            text = "\n".join(texts)
            if len(self._images) and not texts:
                text = "(see the attached output)"
        else:
            text = "" if out is None else dumps_arguments(out)
        self.msgs.append({"role": "tool", "tool_call_id": call_id, "content": text})

    def finish(self) -> list[dict[str, Any]]:
        self._flush()
        self._flush_images()
        missing = [c for c in self.calls if c not in self.answered]
        if missing:
            c = missing[0]
            kind = {"function_call": "function call", "custom_tool_call": "custom tool call"}.get(
                self.calls[c], "local shell call"
            )
            raise _bad(f"No tool output found for {kind} {c}.", "input")
        out: list[dict[str, Any]] = []
        if self.system:
            out.append({"role": "system", "content": "\n\n".join(self.system)})
        out.extend(self.msgs)
        return out


def _echo(body: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: body[k] for k in keys if k in body}


def responses_to_chat(
    body: dict[str, Any],
    *,
    sealer: Sealer | None = None,
    input_tokens_estimate: int | None = None,
    created_at: int | None = None,
) -> tuple[dict[str, Any], ResponsesContext]:
    """A Responses ``POST /v1/responses`` body -> (Chat Completions body, context).

    Raises :class:`~dragoman.errors.InvalidRequestError` (a 400 in the client's dialect) for
    what the gateway cannot serve: stored state, unknown content, unpaired tool calls."""
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    if body.get("store") is True:
        raise _bad(
            "store: true is not supported: this gateway keeps no responses; send store: false "
            "and the whole conversation in `input` each turn",
            "store",
        )
    for k, why in _STATEFUL.items():
        if body.get(k) is not None:
            raise _bad(why, k)
    if body.get("background") is True:
        raise _bad(
            "background responses need stored responses, which this gateway does not keep",
            "background",
        )

    include = body.get("include")
    rc = body.get("reasoning")
    reasoning_cfg: dict[str, Any] = rc if isinstance(rc, dict) else {}
    ctx = ResponsesContext(
        requested_model=model,
        sealer=sealer,
        include_encrypted=isinstance(include, list) and "reasoning.encrypted_content" in include,
        summary_mode=reasoning_cfg.get("summary") in ("auto", "concise", "detailed"),
        created_at=created_at,
    )
    index = ctx.tools
    inp = body.get("input")
    items: list[Any]
    if isinstance(inp, str):
        items = [{"type": "message", "role": "user", "content": inp}]
    elif isinstance(inp, list):
        items = inp
    elif inp is None:
        items = []
    else:
        raise _bad(
            "Invalid type for 'input': expected one of a string or array of input items.",
            "input",
            "invalid_type",
        )

    chat_tools = convert_tools(body.get("tools"), index, ctx.warn)
    for it in items:  # Codex's code mode declares tools in an input item
        if isinstance(it, dict) and it.get("type") == "additional_tools":
            chat_tools += convert_tools(it.get("tools"), index, ctx.warn)

    b = _Messages(ctx, index)
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions.strip():
        b.system.append(instructions)
    for i, it in enumerate(items):
        loc = f"input[{i}]"
        if not isinstance(it, dict):
            raise _bad(f"Invalid type for '{loc}': expected an object.", loc, "invalid_type")
        t = it.get("type")
        if t is None and "role" in it:
            t = "message"
        if not isinstance(t, str):
            raise _bad(f"Invalid value for '{loc}.type': expected a string.", f"{loc}.type")
        if t == "message":
            b.message(it.get("role"), it.get("content"), loc)
        elif t == "reasoning":
            b.reasoning(it)
        elif t in _CALLS:
            b.call(it, loc)
        elif t in _OUTPUTS:
            b.output(it, loc)
        elif t == "additional_tools":
            continue
        elif t == "item_reference":
            raise _bad(
                "item_reference needs stored items, which this gateway does not keep: "
                "send the item itself",
                f"{loc}.type",
            )
        elif t in _HOSTED_ITEMS:
            ctx.warn(f"input item type {t!r} has no meaning on this backend; dropped")
        else:
            ctx.warn(f"unknown input item type {t!r}; dropped")
    messages = b.finish()
    if not messages:
        if items:
            raise _bad("input holds nothing to send: every item is empty or was dropped", "input")
        raise _bad("Missing required parameter: 'input'.", "input", "missing_required_parameter")

    chat: dict[str, Any] = {"model": model, "messages": messages}
    tool_choice, chat_tools = convert_tool_choice(body.get("tool_choice"), index, chat_tools)
    if chat_tools:
        chat["tools"] = chat_tools
        if tool_choice is not None:
            chat["tool_choice"] = tool_choice
        ptc = body.get("parallel_tool_calls")
        if isinstance(ptc, bool):
            chat["parallel_tool_calls"] = ptc
    mt = body.get("max_output_tokens")
    if mt is not None:
        if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
            raise _bad(
                f"Invalid 'max_output_tokens': {mt!r}. Expected a positive integer.",
                "max_output_tokens",
            )
        chat["max_tokens"] = mt
    for k in ("temperature", "top_p"):
        v = body.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            chat[k] = v
    effort = reasoning_cfg.get("effort")
    if isinstance(effort, str) and effort:
        chat["reasoning_effort"] = effort
    text_cfg = body.get("text")
    fmt = text_cfg.get("format") if isinstance(text_cfg, dict) else None
    if isinstance(fmt, dict):
        ft = fmt.get("type")
        if ft == "json_schema":
            js: dict[str, Any] = {"name": fmt.get("name") or "response"}
            for k in ("schema", "strict", "description"):
                if fmt.get(k) is not None:
                    js[k] = fmt[k]
            chat["response_format"] = {"type": "json_schema", "json_schema": js}
        elif ft == "json_object":
            chat["response_format"] = {"type": "json_object"}
    stream = body.get("stream")
    if stream is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    elif stream not in (None, False):
        raise _bad("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")

    ctx.echo = _echo(
        body,
        (
            "instructions",
            "max_output_tokens",
            "metadata",
            "prompt_cache_key",
            "safety_identifier",
            "service_tier",
            "temperature",
            "top_p",
            "user",
        ),
    )
    ctx.echo["tools"] = body.get("tools") if isinstance(body.get("tools"), list) else []
    ctx.echo["tool_choice"] = body.get("tool_choice", "auto")
    ctx.echo["parallel_tool_calls"] = body.get("parallel_tool_calls", True) is not False
    ctx.echo["reasoning"] = {
        "effort": reasoning_cfg.get("effort"),
        "summary": reasoning_cfg.get("summary"),
    }
    ctx.echo["text"] = {"format": fmt if isinstance(fmt, dict) else {"type": "text"}}
    ctx.echo["store"] = False
    ctx.echo["truncation"] = "disabled"
    ctx.input_tokens_estimate = (
        estimate_openai_request_tokens(chat)
        if input_tokens_estimate is None
        else input_tokens_estimate
    )
    return chat, ctx
