"""Responses tools <-> Chat Completions functions, and the way back for the calls.

* ``function`` tools map one to one; ``namespace`` tools (Codex's MCP servers and sub-agent
  tools) are flattened into functions named ``<namespace>__<name>``, and the call comes back
  with its ``namespace``;
* ``custom`` (freeform) tools, Codex's ``apply_patch`` above all, become a function with one
  string argument, ``input``, the grammar in the description (no Chat backend constrains output
  with a grammar); the call comes back as a ``custom_tool_call`` whose ``input`` is the raw text,
  unwrapped from whatever the model put around it (:func:`unwrap_custom_input`);
* ``local_shell`` becomes a ``local_shell`` function, and its call a ``local_shell_call``;
* hosted tools the Chat backends cannot run (``web_search``, ``image_generation``,
  ``file_search``, ``code_interpreter``, ``computer_use``, ``mcp``, ``tool_search``, hosted
  ``shell`` and ``apply_patch``...) are dropped with a warning.

See docs/responses-integration.md, section 2 ("Tools").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from ...errors import InvalidRequestError
from ..common import dumps_arguments
from ..names import shorten_tool_name

ToolKind = Literal["function", "custom", "local_shell"]

#: the one argument of a custom tool's function form
CUSTOM_ARG = "input"
LOCAL_SHELL: Literal["local_shell"] = "local_shell"
_NS_SEP = "__"

CUSTOM_NOTE = (
    "This tool takes free-form text, not JSON fields: call it with a single argument "
    f'"{CUSTOM_ARG}", a string holding the raw text exactly as the tool reads it (no code '
    "fences, no JSON or other wrapping inside the string)."
)
_CUSTOM_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {
        CUSTOM_ARG: {"type": "string", "description": "The raw input text for the tool."}
    },
    "required": [CUSTOM_ARG],
    "additionalProperties": False,
}
_LOCAL_SHELL_FN: dict[str, Any] = {
    "name": LOCAL_SHELL,
    "description": "Runs a shell command on the user's machine and returns its output.",
    "parameters": {
        "type": "object",
        "properties": {
            "command": {
                "type": "array",
                "items": {"type": "string"},
                "description": 'The command and its arguments, e.g. ["bash", "-lc", "ls"].',
            },
            "workdir": {"type": "string", "description": "Working directory."},
            "timeout_ms": {"type": "integer", "description": "Timeout in milliseconds."},
        },
        "required": ["command"],
    },
}


@dataclass(frozen=True, slots=True)
class ToolRef:
    """What a Chat function name stands for on the Responses side."""

    kind: ToolKind
    #: the tool's name as the client declared it (inside its namespace)
    name: str
    namespace: str | None = None


Warn = Callable[[str], None]


class ToolIndex:
    """The request's tools: Chat name -> :class:`ToolRef`, and the reverse lookups."""

    def __init__(self) -> None:
        self.by_chat: dict[str, ToolRef] = {}
        self._chat_of: dict[tuple[ToolKind, str | None, str], str] = {}

    def add(self, ref: ToolRef) -> str:
        key = (ref.kind, ref.namespace, ref.name)
        if key in self._chat_of:
            return self._chat_of[key]
        base = ref.name if ref.namespace is None else f"{ref.namespace}{_NS_SEP}{ref.name}"
        chat = base if ref.namespace is None else shorten_tool_name(base)
        if chat in self.by_chat:  # a flattened name that collides with a declared one
            chat = shorten_tool_name(base + "#" + ref.kind)
        self.by_chat[chat] = ref
        self._chat_of[key] = chat
        return chat

    def chat_name(self, kind: ToolKind, name: str, namespace: str | None = None) -> str | None:
        return self._chat_of.get((kind, namespace, name))

    def ref(self, chat_name: str) -> ToolRef:
        """The tool a Chat call names; an undeclared name (a model inventing one) comes back as
        a plain function call of that name."""
        return self.by_chat.get(chat_name) or ToolRef("function", chat_name)


def _fn_tool(fn: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": fn}


def _function(t: dict[str, Any], name: str) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": name}
    desc = t.get("description")
    if isinstance(desc, str) and desc:
        fn["description"] = desc
    params = t.get("parameters")
    fn["parameters"] = params if isinstance(params, dict) else {"type": "object", "properties": {}}
    strict = t.get("strict")
    if isinstance(strict, bool):
        fn["strict"] = strict
    return fn


def _custom(t: dict[str, Any], name: str) -> dict[str, Any]:
    parts: list[str] = []
    desc = t.get("description")
    if isinstance(desc, str) and desc.strip():
        parts.append(desc.strip())
    parts.append(CUSTOM_NOTE)
    fmt = t.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar":
        syntax = fmt.get("syntax") or "lark"
        definition = fmt.get("definition")
        if isinstance(definition, str) and definition.strip():
            parts.append(f"The input must match this {syntax} grammar:\n{definition.strip()}")
    return {"name": name, "description": "\n\n".join(parts), "parameters": _CUSTOM_PARAMS}


def _tool_name(t: dict[str, Any], loc: str) -> str:
    name = t.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(
            f"Missing required parameter: '{loc}.name'.",
            param=f"{loc}.name",
            code="missing_required_parameter",
        )
    return name


def convert_tools(tools: Any, index: ToolIndex, warn: Warn) -> list[dict[str, Any]]:
    """Responses ``tools`` -> Chat ``tools`` (registering every name in ``index``)."""
    out: list[dict[str, Any]] = []
    if tools is None:
        return out
    if not isinstance(tools, list):
        raise InvalidRequestError(
            "Invalid type for 'tools': expected an array.", param="tools", code="invalid_type"
        )
    for i, t in enumerate(tools):
        _add_tool(t, f"tools[{i}]", None, index, out, warn)
    return out


def _add_tool(
    t: Any,
    loc: str,
    namespace: str | None,
    index: ToolIndex,
    out: list[dict[str, Any]],
    warn: Warn,
) -> None:
    if not isinstance(t, dict):
        raise InvalidRequestError(
            f"Invalid type for '{loc}': expected an object.", param=loc, code="invalid_type"
        )
    tt = t.get("type")
    if tt == "function":
        name = _tool_name(t, loc)
        out.append(_fn_tool(_function(t, index.add(ToolRef("function", name, namespace)))))
    elif tt == "custom":
        name = _tool_name(t, loc)
        out.append(_fn_tool(_custom(t, index.add(ToolRef("custom", name, namespace)))))
    elif tt == "namespace" and namespace is None:
        ns = _tool_name(t, loc)
        inner = t.get("tools")
        for j, sub in enumerate(inner if isinstance(inner, list) else ()):
            _add_tool(sub, f"{loc}.tools[{j}]", ns, index, out, warn)
    elif tt == LOCAL_SHELL and namespace is None:
        out.append(
            _fn_tool({**_LOCAL_SHELL_FN, "name": index.add(ToolRef(LOCAL_SHELL, LOCAL_SHELL))})
        )
    else:
        warn(f"tool type {tt!r} is not supported on this backend; dropped")


# ---------------------------------------------------------------------------- tool_choice


def _unsupported_choice(what: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"tool_choice forces {what}, which is not among the tools this model can call",
        param="tool_choice",
    )


def convert_tool_choice(
    tc: Any, index: ToolIndex, chat_tools: list[dict[str, Any]]
) -> tuple[Any, list[dict[str, Any]]]:
    """Responses ``tool_choice`` -> (Chat ``tool_choice`` or None, the Chat tools to send).

    ``allowed_tools`` narrows the tool list instead of using Chat's own ``allowed_tools``
    (which few servers know); a forced tool this backend cannot run is a 400."""
    if tc is None:
        return None, chat_tools
    if tc in ("auto", "none", "required"):
        if tc == "required" and not chat_tools:
            raise _unsupported_choice("a tool call")
        return (tc if chat_tools else None), chat_tools
    if not isinstance(tc, dict):
        raise InvalidRequestError(
            f"Invalid value for 'tool_choice': {tc!r}.", param="tool_choice", code="invalid_value"
        )
    ct = tc.get("type")
    if ct == "allowed_tools":
        allowed: set[str] = set()
        for x in tc.get("tools") or ():
            n = _choice_name(x, index)
            if n is not None:
                allowed.add(n)
        kept = [t for t in chat_tools if t["function"]["name"] in allowed]
        if not kept:
            if tc.get("mode") == "required":
                raise _unsupported_choice("one of the allowed tools")
            return None, []
        return ("required" if tc.get("mode") == "required" else "auto"), kept
    name = _choice_name(tc, index)
    if name is None:
        label = tc.get("name") if isinstance(tc.get("name"), str) else ct
        raise _unsupported_choice(f"the tool {label!r}")
    return {"type": "function", "function": {"name": name}}, chat_tools


def _choice_name(x: Any, index: ToolIndex) -> str | None:
    if not isinstance(x, dict):
        return None
    ct = x.get("type")
    ns = x.get("namespace") if isinstance(x.get("namespace"), str) else None
    if ct == "function" and isinstance(x.get("name"), str):
        return index.chat_name("function", x["name"], ns)
    if ct == "custom" and isinstance(x.get("name"), str):
        return index.chat_name("custom", x["name"], ns)
    if ct == LOCAL_SHELL:
        return index.chat_name(LOCAL_SHELL, LOCAL_SHELL)
    return None


# ------------------------------------------------------------------ calls in the history


def custom_call_arguments(raw_input: Any) -> str:
    """A ``custom_tool_call``'s raw ``input`` -> the function form's arguments."""
    return dumps_arguments({CUSTOM_ARG: raw_input if isinstance(raw_input, str) else ""})


def local_shell_arguments(action: Any) -> str:
    """A ``local_shell_call``'s ``action`` -> the ``local_shell`` function's arguments."""
    a = action if isinstance(action, dict) else {}
    args: dict[str, Any] = {
        "command": a.get("command") if isinstance(a.get("command"), list) else []
    }
    if isinstance(a.get("working_directory"), str):
        args["workdir"] = a["working_directory"]
    if isinstance(a.get("timeout_ms"), int):
        args["timeout_ms"] = a["timeout_ms"]
    return dumps_arguments(args)


def local_shell_action(arguments: str) -> dict[str, Any]:
    """The ``local_shell`` function's arguments -> a ``local_shell_call`` ``action``."""
    v = _loads_lenient(arguments)
    a = v if isinstance(v, dict) else {}
    cmd = a.get("command")
    if isinstance(cmd, str):
        cmd = ["bash", "-lc", cmd]
    elif not (isinstance(cmd, list) and all(isinstance(c, str) for c in cmd)):
        cmd = []
    timeout = a.get("timeout_ms")
    workdir = a.get("workdir") or a.get("working_directory")
    return {
        "type": "exec",
        "command": cmd,
        "timeout_ms": timeout
        if isinstance(timeout, int) and not isinstance(timeout, bool)
        else None,
        "working_directory": workdir if isinstance(workdir, str) else None,
        "env": {},
        "user": None,
    }


# ------------------------------------------------------------------ custom input unwrapping

#: keys models put a freeform input under, in the order they are tried
_WRAP_KEYS = ("input", "patch", "content", "text", "code", "diff", "source", "script", "command")
_BEGIN = "*** Begin Patch"
_END = "*** End Patch"
_FENCE = re.compile(r"\A\s*```[^\n]*\n(.*?)\n?```\s*\Z", re.S)


def _loads_lenient(s: str) -> Any:
    """JSON, also with raw control characters inside strings (models write literal newlines in
    a patch); None when it is not JSON."""
    try:
        return orjson.loads(s)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(s, strict=False)
    except ValueError:
        return None


def _dig(v: Any) -> str | None:
    """The string a model wrapped: a JSON string, or the value under a known key of an object,
    or the single string field of an object; in a list, the element that holds a patch."""
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        for k in _WRAP_KEYS:
            if k in v:
                got = _dig(v[k])
                if got is not None:
                    return got
        strings = [x for x in v.values() if isinstance(x, str)]
        if len(v) == 1 and len(strings) == 1:
            return strings[0]
        return None
    if isinstance(v, list):
        strings = [x for x in v if isinstance(x, str)]
        if not strings or len(strings) != len(v):
            return None
        for x in strings:
            if _BEGIN in x:
                return x
        return strings[-1] if len(strings) == 1 else None
    return None


def _unfence(s: str) -> str:
    m = _FENCE.match(s)
    return m.group(1) if m else s


def _extract_patch(s: str) -> str:
    """From ``*** Begin Patch`` to ``*** End Patch`` (and the newline after it): drops the prose,
    heredoc or shell command a model put around a patch."""
    start = s.find(_BEGIN)
    if start < 0:
        return s
    end = s.rfind(_END)
    if end < start:
        return s[start:]
    stop = end + len(_END)
    if s[stop : stop + 1] == "\n":
        stop += 1
    return s[start:stop]


def unwrap_custom_input(arguments: Any) -> str:
    """A custom tool's raw input from the arguments of its function form.

    The expected shape is ``{"input": "<raw>"}``; models also send the raw text itself, other
    keys (``patch``, ``content``, ``command: ["apply_patch", "<patch>"]``...), a bare JSON
    string, Markdown fences, or a patch inside prose or a heredoc. A patch (``*** Begin Patch``
    ... ``*** End Patch``) is cut out of whatever surrounds it. Anything else comes through as
    sent, so the tool reports the problem to the model."""
    if isinstance(arguments, dict | list):
        got = _dig(arguments)
        s = got if got is not None else orjson.dumps(arguments).decode()
    elif isinstance(arguments, str):
        s = arguments
        probe = _unfence(s).strip()
        if probe[:1] in ("{", '"', "["):
            v = _loads_lenient(probe)
            if isinstance(v, str) and v.lstrip()[:1] == "{":  # the arguments encoded twice
                inner = _loads_lenient(v.strip())
                if isinstance(inner, dict):
                    v = inner
            got = _dig(v)
            if got is not None:
                s = got
    else:
        return ""
    s = _unfence(s)
    if _BEGIN in s:
        s = _extract_patch(s)
    return s
