"""The cache key: the normalised request, in its client's dialect (docs/limits.md).

Everything that can change the answer is in it: the model the request was routed to, the
messages, system, tools and every other body field (``max_tokens``, sampling parameters, and any
field we do not know, which might), the Anthropic ``anthropic-beta``/``anthropic-version``
headers, and who may share the answer (``cache.scope``). What is left out cannot change it: the
stream switches (a hit is replayed as a stream or a body, as asked), caller metadata, and the
per-request Claude Code billing block (its ``cch`` changes on every request). Equivalent spellings
of content (``"hi"`` and ``[{"type": "text", "text": "hi"}]``) give one key. Key order of the
client's JSON is kept as sent: a model reads its prompt in that order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from ..dialects.anthropic.compat import is_billing_text

#: bumped when the normalisation or the stored form changes: old entries are simply not found
VERSION = 1

#: body fields that cannot change the answer
_IGNORED = {
    "anthropic": frozenset({"stream", "metadata"}),
    "openai": frozenset({"stream", "stream_options", "user", "metadata"}),
}
#: request headers that can change the answer
_HEADERS = {"anthropic": ("anthropic-beta", "anthropic-version"), "openai": ()}


def _text_blocks(content: Any) -> Any:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content


def _anthropic(norm: dict[str, Any]) -> None:
    system = _text_blocks(norm.get("system"))
    if isinstance(system, list):
        system = [b for b in system if not (isinstance(b, dict) and is_billing_text(b.get("text")))]
        if system:
            norm["system"] = system
        else:
            norm.pop("system", None)
    msgs = norm.get("messages")
    if isinstance(msgs, list):
        norm["messages"] = [
            {**m, "content": _text_blocks(m["content"])}
            if isinstance(m, dict) and isinstance(m.get("content"), str)
            else m
            for m in msgs
        ]


def _openai(norm: dict[str, Any]) -> None:
    msgs = norm.get("messages")
    if isinstance(msgs, list):
        norm["messages"] = [
            {**m, "content": _text_blocks(m["content"])}
            if isinstance(m, dict) and isinstance(m.get("content"), str)
            else m
            for m in msgs
        ]


def namespace(scope: str, key_id: str | None, team: str | None) -> str:
    """Who shares answers under ``cache.scope``: one key, one team (a key without a team is
    its own), or everybody."""
    if scope == "all":
        return ""
    if scope == "team" and team is not None:
        return "t:" + team
    return "k:" + (key_id or "")


def cache_key(
    dialect: str,
    model: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    namespace: str = "",
) -> str:
    """A hex digest naming the answer to ``body`` (routed to ``model``) for ``namespace``.

    ``dialect`` is the client's: ``anthropic`` or ``openai`` (chat completions); an answer is
    only ever replayed to a client of the dialect it was stored in.
    """
    ignored = _IGNORED[dialect]
    norm = {k: v for k, v in body.items() if k not in ignored}
    norm["model"] = model
    if dialect == "anthropic":
        _anthropic(norm)
    else:
        _openai(norm)
    hdrs: list[str] = []
    if headers:
        for name in _HEADERS[dialect]:
            v = headers.get(name)
            if v:
                hdrs.append(name + "=" + ",".join(sorted(p.strip() for p in v.split(","))))
    blob = orjson.dumps([VERSION, dialect, namespace, hdrs, norm])
    return hashlib.sha256(blob).hexdigest()
