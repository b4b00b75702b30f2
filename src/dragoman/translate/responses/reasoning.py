"""What a reasoning item carries between turns, sealed, and the seam to the sealer.

A Responses client running stateless (``store: false``, Codex) gets each reasoning item with an
``encrypted_content`` and sends the item back on the next turn. When dragoman bridged the turn,
that blob is dragoman's: the reasoning text as the upstream produced it (DeepSeek and vLLM want
it back as ``reasoning_content``) and Anthropic's thinking blocks with their signatures, byte for
byte (Anthropic checks them). It is sealed (:mod:`dragoman.sealing`), so a client cannot read,
alter or mint it, and a blob that does not open (OpenAI's own, another gateway's, a forged one)
is dropped, never forwarded (docs/responses-integration.md, "Stateless reasoning").

The translators stay pure: they take any ``Sealer`` (two methods) and never import
``cryptography``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson

#: the Chat Completions field that carries Anthropic thinking blocks between the Responses
#: translator and the O->A bridge, on assistant messages (request) and on messages/deltas
#: (response). Internal: never sent to an upstream, never shown to a client
#: (docs/responses-integration.md, "The thinking carrier").
THINKING_CARRIER = "_dragoman_thinking_blocks"

_VERSION = 1


class Sealer(Protocol):
    """Seals bytes into an opaque token and opens it again; ``unseal`` returns None for any
    token it did not seal (it never raises on client input)."""

    def seal(self, data: bytes) -> str: ...

    def unseal(self, token: object) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Reasoning:
    """One reasoning item's worth of what the backend needs back."""

    #: the reasoning text as the upstream streamed it
    text: str = ""
    #: Anthropic ``thinking`` / ``redacted_thinking`` blocks, exactly as received
    blocks: tuple[dict[str, Any], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.text or self.blocks)


def valid_block(b: Any) -> bool:
    """An Anthropic thinking block we can send back as is: ``thinking`` with its text and
    signature, or ``redacted_thinking`` with its data."""
    if not isinstance(b, dict):
        return False
    t = b.get("type")
    if t == "thinking":
        return isinstance(b.get("thinking"), str) and isinstance(b.get("signature"), str)
    if t == "redacted_thinking":
        return isinstance(b.get("data"), str)
    return False


def seal_reasoning(sealer: Sealer, r: Reasoning) -> str:
    payload: dict[str, Any] = {"v": _VERSION, "t": r.text}
    if r.blocks:
        payload["b"] = list(r.blocks)
    return sealer.seal(orjson.dumps(payload))


def open_reasoning(sealer: Sealer | None, token: Any) -> Reasoning | None:
    """The reasoning a token carries, or None when it is not one of ours (or no sealer)."""
    if sealer is None or not isinstance(token, str):
        return None
    raw = sealer.unseal(token)
    if raw is None:
        return None
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or payload.get("v") != _VERSION:
        return None
    text = payload.get("t")
    blocks = payload.get("b") or []
    if not isinstance(text, str) or not isinstance(blocks, list):
        return None
    if not all(valid_block(b) for b in blocks):
        return None
    return Reasoning(text, tuple(blocks))
