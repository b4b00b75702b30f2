"""Tool-call ids in the upstream's format on the way out, in the client's on the way back.

Mistral's API and servers that validate with ``mistral_common`` (vLLM serving a Mistral model)
accept only ids of exactly 9 characters ``[a-zA-Z0-9]``; anything else is a 400 ("Tool call id
was X but must be a-z, A-Z, 0-9, with a length of 9."). A conversation begun elsewhere carries
``toolu_...`` or ``call_...`` ids in its history, so every id is mapped before it goes up, and the
ids the upstream mints are dressed in the client's own format (``toolu_`` / ``call_``) before they
come back. See docs/translation.md, "Tool-call ids".

Nothing is remembered between requests. One request's map is built from its own history:

* up: an id already in the upstream's format stays; ``toolu_``/``call_`` + 9 alphanumerics (an
  id this module dressed earlier) loses its prefix, so the upstream sees its own id again; any
  other id becomes 9 base62 characters of its SHA-256 (deterministic, so the assistant's tool
  call and the tool result that answers it still match, and turn N+1 repeats turn N's bytes);
* down: an id seen in this request's history goes back to the client's original spelling; an id
  the upstream minted gets the client's prefix.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

import orjson

from ..dialects.openai.flavors import capabilities

#: every id format an upstream may require
ANY = "any"
MISTRAL9 = "mistral9"
FORMATS = (ANY, MISTRAL9)

#: the prefix a client of each dialect expects on tool-call ids
ANTHROPIC_PREFIX = "toolu_"
OPENAI_PREFIX = "call_"
_PREFIXES = (ANTHROPIC_PREFIX, OPENAI_PREFIX)

_M9 = re.compile(r"^[a-zA-Z0-9]{9}$")
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_9 = 62**9

# Mistral model families, as they appear in model ids ("mistralai/Devstral-Small-2505",
# "mistral-large-latest", "codestral-2501", "Magistral-Small-2509", ...)
_MISTRAL_FAMILY = re.compile(
    r"(?:^|[/_.:\-])(?:mistral|mixtral|ministral|magistral|devstral|codestral|pixtral|voxtral)",
    re.IGNORECASE,
)


def tool_id_format_for(flavor: str, upstream_model: str) -> str:
    """The id format an upstream accepts, from its flavor's row and its model id.

    A row that names a format (``mistral``: api.mistral.ai) wins; vLLM serving a Mistral-family
    model (its ``mistral_common`` tokenizer, or the model's own chat template, enforces the
    9-character rule) gets ``mistral9`` too; everything else takes any id Anthropic or OpenAI
    would mint.
    """
    row = capabilities(flavor).tool_id_format
    if row != ANY:
        return row
    if flavor == "vllm" and _MISTRAL_FAMILY.search(upstream_model or ""):
        return MISTRAL9
    return ANY


def _hash9(text: str, salt: int) -> str:
    seed = text.encode() if not salt else f"{salt}:{text}".encode()
    n = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") % _B62_9
    out = []
    for _ in range(9):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(out)


def mistral9(client_id: str) -> str:
    """The 9-character id for ``client_id`` (before any collision is resolved)."""
    if _M9.match(client_id):
        return client_id
    for p in _PREFIXES:
        if client_id.startswith(p) and _M9.match(client_id[len(p) :]):
            return client_id[len(p) :]
    return _hash9(client_id, 0)


class ToolIds:
    """One request's id map between the client's ids and the upstream's."""

    __slots__ = ("_down", "_up", "fmt", "prefix")

    def __init__(self, fmt: str, prefix: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown tool id format {fmt!r}")
        self.fmt = fmt
        #: what the client's dialect puts in front of ids ("toolu_" or "call_")
        self.prefix = prefix
        self._up: dict[str, str] = {}
        self._down: dict[str, str] = {}

    @property
    def active(self) -> bool:
        return self.fmt != ANY

    def up(self, client_id: str) -> str:
        """The id to send upstream for a history id (same input, same output)."""
        if self.fmt == ANY:
            return client_id
        got = self._up.get(client_id)
        if got is not None:
            return got
        cand = mistral9(client_id)
        salt = 0
        # two different client ids may land on one 9-character id (a hash collision, or
        # "call_ABCDEFGHI" next to "ABCDEFGHI"): the later one is rehashed, deterministically
        while cand in self._down and self._down[cand] != client_id:
            salt += 1
            cand = _hash9(client_id, salt)
        self._up[client_id] = cand
        self._down[cand] = client_id
        return cand

    def down(self, upstream_id: Any) -> str:
        """The id to show the client for an id in the upstream's answer."""
        if not isinstance(upstream_id, str) or not upstream_id:
            return self.prefix + _random9()
        if self.fmt == ANY:
            return upstream_id
        known = self._down.get(upstream_id)
        if known is not None:
            return known
        if _M9.match(upstream_id):
            return self.prefix + upstream_id
        clean = re.sub(r"[^a-zA-Z0-9]", "", upstream_id)
        return self.prefix + (clean or _random9())


def _random9() -> str:
    return "".join(secrets.choice(_B62) for _ in range(9))


# ------------------------------------------------------------------ OpenAI pass-through


def map_openai_request(body: dict[str, Any], ids: ToolIds) -> dict[str, Any]:
    """An OpenAI request with only its tool-call ids rewritten for the upstream (a copy when
    something changed; ``body`` itself otherwise). Nothing else is touched: pass-through."""
    msgs = body.get("messages")
    if not ids.active or not isinstance(msgs, list):
        return body
    out_msgs: list[Any] = []
    changed = False
    for m in msgs:
        if not isinstance(m, dict):
            out_msgs.append(m)
            continue
        nm = m
        calls = m.get("tool_calls")
        if isinstance(calls, list) and calls:
            new_calls = []
            for c in calls:
                if isinstance(c, dict) and isinstance(c.get("id"), str):
                    nid = ids.up(c["id"])
                    if nid != c["id"]:
                        c = {**c, "id": nid}
                        changed = True
                new_calls.append(c)
            nm = {**m, "tool_calls": new_calls}
        tcid = m.get("tool_call_id")
        if m.get("role") == "tool" and isinstance(tcid, str):
            nid = ids.up(tcid)
            if nid != tcid:
                nm = {**nm, "tool_call_id": nid}
                changed = True
        out_msgs.append(nm)
    if not changed:
        return body
    return {**body, "messages": out_msgs}


def _map_calls(calls: Any, ids: ToolIds) -> bool:
    changed = False
    if isinstance(calls, list):
        for c in calls:
            if isinstance(c, dict) and isinstance(c.get("id"), str) and c["id"]:
                new = ids.down(c["id"])
                if new != c["id"]:
                    c["id"] = new
                    changed = True
    return changed


def map_openai_response(resp: dict[str, Any], ids: ToolIds) -> bool:
    """Rewrite, in place, the tool-call ids of a chat.completion (or chunk) for the client.
    True when something changed."""
    changed = False
    for ch in resp.get("choices") or ():
        if not isinstance(ch, dict):
            continue
        for key in ("message", "delta"):
            m = ch.get(key)
            if isinstance(m, dict) and _map_calls(m.get("tool_calls"), ids):
                changed = True
    return changed


def map_openai_sse(events: bytes, ids: ToolIds) -> bytes:
    """Complete OpenAI SSE events -> the same events with tool-call ids for the client.

    Only events that carry ``tool_calls`` are parsed; every other byte passes as it came.
    """
    if not ids.active or b'"tool_calls"' not in events:
        return events
    out: list[bytes] = []
    for block in events.split(b"\n\n"):
        if b'"tool_calls"' not in block:
            out.append(block)
            continue
        lines = block.split(b"\n")
        for i, line in enumerate(lines):
            if not line.startswith(b"data:"):
                continue
            raw = line[5:].strip()
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                break
            if isinstance(obj, dict) and map_openai_response(obj, ids):
                lines[i] = b"data: " + orjson.dumps(obj)
            break
        out.append(b"\n".join(lines))
    return b"\n\n".join(out)
