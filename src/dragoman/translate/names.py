"""Deterministic name/id transforms and synthetic thinking signatures (protocols.md §7.12).

Everything here is pure and stateless: the same input always gives the same output, so tool
names and ids survive a round trip through the client without the gateway remembering anything.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

_VALID_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")

#: prefix of every signature we mint; real Anthropic signatures are opaque base64 and never
#: start with this
SIGNATURE_PREFIX = "dragoman.sig."


def shorten_tool_name(name: str, limit: int = 64) -> str:
    """Name usable as an OpenAI function name: charset ``[a-zA-Z0-9_-]``, at most ``limit`` chars.

    Names that already comply come back unchanged; longer ones become
    ``prefix[:55] + "_" + sha256(name)[:8]`` (LiteLLM's scheme, deterministic).
    """
    clean = name if _VALID_NAME.match(name) else _INVALID_CHARS.sub("_", name)
    if not clean:
        clean = "_"
    if len(clean) <= limit and clean == name:
        return name
    if len(clean) + 9 <= limit:
        # charset changed: append a short hash so distinct names cannot collide
        return clean + "_" + hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = max(limit - 9, 1)
    return clean[:keep] + "_" + hashlib.sha256(name.encode()).hexdigest()[:8]


def sanitize_tool_id(id: str | None) -> str:
    """A tool-use id matching ``^[a-zA-Z0-9_-]+$`` (invalid chars -> ``_``); mint one if missing."""
    if not id:
        return "toolu_" + secrets.token_hex(12)
    if _VALID_NAME.match(id):
        return id
    return _INVALID_CHARS.sub("_", id)


def synthetic_signature(text: str) -> str:
    """A recognisable signature for thinking that did not come from Anthropic."""
    return SIGNATURE_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:24]


def signature_from_digest(hexdigest: str) -> str:
    """Same as :func:`synthetic_signature` for a sha256 hexdigest computed incrementally."""
    return SIGNATURE_PREFIX + hexdigest[:24]


def is_synthetic_signature(sig: object) -> bool:
    return isinstance(sig, str) and sig.startswith(SIGNATURE_PREFIX)


def _has_synthetic(content: Any) -> bool:
    if not isinstance(content, list):
        return False
    for b in content:
        if (
            isinstance(b, dict)
            and b.get("type") == "thinking"
            and is_synthetic_signature(b.get("signature"))
        ):
            return True
    return False


def strip_synthetic_thinking(body: dict[str, Any]) -> dict[str, Any]:
    """Remove thinking blocks we signed ourselves before a request goes to real Anthropic.

    Returns ``body`` itself (no copy) when there is nothing to strip. Otherwise returns a shallow
    copy with new ``messages``; assistant messages left empty are dropped, and if the last
    assistant turn lost its thinking while thinking is on, ``thinking`` is removed (Anthropic
    requires a signed thinking block to open the turn of an ongoing tool loop).
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    hit = False
    for m in messages:
        if (
            isinstance(m, dict)
            and m.get("role") == "assistant"
            and _has_synthetic(m.get("content"))
        ):
            hit = True
            break
    if not hit:
        return body
    last_assistant = -1
    for i, m in enumerate(messages):
        if isinstance(m, dict) and m.get("role") == "assistant":
            last_assistant = i
    new_messages: list[Any] = []
    last_lost_thinking = False
    for i, m in enumerate(messages):
        if not (
            isinstance(m, dict) and m.get("role") == "assistant" and _has_synthetic(m["content"])
        ):
            new_messages.append(m)
            continue
        kept = [
            b
            for b in m["content"]
            if not (
                isinstance(b, dict)
                and b.get("type") == "thinking"
                and is_synthetic_signature(b.get("signature"))
            )
        ]
        if i == last_assistant:
            last_lost_thinking = True
        if kept:
            nm = dict(m)
            nm["content"] = kept
            new_messages.append(nm)
    out = dict(body)
    out["messages"] = new_messages
    thinking = body.get("thinking")
    if (
        last_lost_thinking
        and isinstance(thinking, dict)
        and thinking.get("type") in ("enabled", "adaptive")
    ):
        del out["thinking"]
    return out
