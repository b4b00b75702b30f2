"""The types of the fields the gateway reads, in either dialect: a text that is not a string, a
tool description that is a number, ``tool_calls: 5``... get a 400 naming the field, in the
caller's words, before anything reads them (audit #21; docs/translation.md, "Validation").
Fields the gateway only passes along are left to the upstream to judge."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequestError

_NAMES = {str: "a string", dict: "an object", list: "a list", bool: "a boolean"}


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return "an array" if isinstance(v, list) else "an object"


class _Checker:
    """Raises the dialect's 400 for a field of the wrong type."""

    def __init__(self, anthropic: bool) -> None:
        self.anthropic = anthropic

    def need(self, v: Any, types: tuple[type, ...], loc: str, optional: bool = False) -> None:
        if optional and v is None:
            return
        if isinstance(v, types) and not (bool not in types and isinstance(v, bool)):
            return
        want = " or ".join(_NAMES.get(t, t.__name__) for t in types)
        if self.anthropic:
            msg = f"{loc}: Input should be {want}"
        else:
            msg = f"Invalid type for '{loc}': expected {want}, but got {_jtype(v)} instead."
        raise InvalidRequestError(msg, param=loc, code=None if self.anthropic else "invalid_type")


# --------------------------------------------------------------------------------- Anthropic


def _a_block(c: _Checker, b: dict[str, Any], loc: str) -> None:
    t = b.get("type")
    if t == "text":
        c.need(b.get("text"), (str,), f"{loc}.text")
    elif t == "thinking":
        c.need(b.get("thinking"), (str,), f"{loc}.thinking")
    elif t in ("tool_use", "server_tool_use"):
        c.need(b.get("id"), (str,), f"{loc}.id")
        c.need(b.get("name"), (str,), f"{loc}.name")
        c.need(b.get("input"), (dict,), f"{loc}.input", optional=True)
    elif t == "tool_result":
        c.need(b.get("tool_use_id"), (str,), f"{loc}.tool_use_id")
        inner = b.get("content")
        c.need(inner, (str, list), f"{loc}.content", optional=True)
        if isinstance(inner, list):
            _a_blocks(c, inner, f"{loc}.content")
    elif t in ("image", "document"):
        src = b.get("source")
        c.need(src, (dict,), f"{loc}.source")
        assert isinstance(src, dict)
        for k in ("type", "url", "data", "media_type"):
            if k != "data" or src.get("type") != "content":
                c.need(src.get(k), (str,), f"{loc}.source.{k}", optional=k != "type")


def _a_blocks(c: _Checker, blocks: list[Any], loc: str) -> None:
    for j, b in enumerate(blocks):
        if isinstance(b, dict):
            _a_block(c, b, f"{loc}.{j}")


def check_anthropic(body: dict[str, Any]) -> None:
    c = _Checker(anthropic=True)
    for i, m in enumerate(body.get("messages") or ()):
        if isinstance(m, dict) and isinstance(m.get("content"), list):
            _a_blocks(c, m["content"], f"messages.{i}.content")
    system = body.get("system")
    if isinstance(system, list):
        for j, b in enumerate(system):
            c.need(b, (dict, str), f"system.{j}")
            if isinstance(b, dict):
                c.need(b.get("text"), (str,), f"system.{j}.text")
    for i, t in enumerate(body.get("tools") or ()):
        c.need(t.get("description"), (str,), f"tools.{i}.description", optional=True)
        c.need(t.get("input_schema"), (dict,), f"tools.{i}.input_schema", optional=True)


# ------------------------------------------------------------------------------------ OpenAI


def _o_parts(c: _Checker, parts: list[Any], loc: str) -> None:
    for j, p in enumerate(parts):
        ploc = f"{loc}[{j}]"
        c.need(p, (dict, str), ploc)
        if not isinstance(p, dict):
            continue
        c.need(p.get("type"), (str,), f"{ploc}.type")
        t = p["type"]
        if t in ("text", "refusal"):
            c.need(p.get(t), (str,), f"{ploc}.{t}")
        elif t == "image_url":
            iu = p.get("image_url")
            c.need(iu, (dict, str), f"{ploc}.image_url")
            if isinstance(iu, dict):
                c.need(iu.get("url"), (str,), f"{ploc}.image_url.url")
        elif t in ("input_audio", "file"):
            c.need(p.get(t), (dict,), f"{ploc}.{t}")


def _o_calls(c: _Checker, calls: Any, loc: str) -> None:
    c.need(calls, (list,), loc, optional=True)
    for j, tc in enumerate(calls or ()):
        cloc = f"{loc}[{j}]"
        c.need(tc, (dict,), cloc)
        c.need(tc.get("id"), (str,), f"{cloc}.id", optional=True)
        fn = tc.get("function")
        c.need(fn, (dict,), f"{cloc}.function", optional=True)
        if isinstance(fn, dict):
            c.need(fn.get("name"), (str,), f"{cloc}.function.name", optional=True)
            c.need(fn.get("arguments"), (str, dict), f"{cloc}.function.arguments", optional=True)


def check_openai(body: dict[str, Any]) -> None:
    c = _Checker(anthropic=False)
    for i, m in enumerate(body.get("messages") or ()):
        if not isinstance(m, dict):
            continue
        loc = f"messages[{i}]"
        if isinstance(m.get("content"), list):
            _o_parts(c, m["content"], f"{loc}.content")
        _o_calls(c, m.get("tool_calls"), f"{loc}.tool_calls")
        c.need(m.get("function_call"), (dict,), f"{loc}.function_call", optional=True)
        c.need(m.get("name"), (str,), f"{loc}.name", optional=True)
    tools = body.get("tools")
    c.need(tools, (list,), "tools", optional=True)
    for i, t in enumerate(tools or ()):
        c.need(t, (dict,), f"tools[{i}]")
        for kind in ("function", "custom"):
            fn = t.get(kind)
            c.need(fn, (dict,), f"tools[{i}].{kind}", optional=True)
            if isinstance(fn, dict):
                c.need(fn.get("name"), (str,), f"tools[{i}].{kind}.name", optional=True)
                c.need(fn.get("description"), (str,), f"tools[{i}].{kind}.description", True)
                c.need(fn.get("parameters"), (dict,), f"tools[{i}].{kind}.parameters", True)
