"""What the cache stores: the complete answer as a non-stream body in its client's dialect.

One form for both kinds of hit (the key ignores the stream flag): a JSON request gets the body,
a stream request gets a stream synthesised from it (``replay``). Storing the body rather than
the SSE bytes keeps entries small (a stream repeats its envelope on every delta: several times
the body) and makes ``max_entry_bytes`` mean the answer's size. A streamed answer is stored once
its stream completed, rebuilt into that body (``record``). Its usage is in the body: what the
answer cost upstream once, what a hit reports (and does not charge, docs/limits.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from .key import VERSION


@dataclass(frozen=True, slots=True)
class Entry:
    dialect: str
    body: dict[str, Any]
    #: wall time it was stored
    stored: float


def encode(dialect: str, body: dict[str, Any], now: float | None = None) -> bytes:
    return orjson.dumps(
        {"v": VERSION, "d": dialect, "t": time.time() if now is None else now, "b": body}
    )


def decode(raw: bytes) -> Entry | None:
    """The entry, or None for bytes that are not an entry of this version (never raises)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or obj.get("v") != VERSION or not isinstance(obj.get("b"), dict):
        return None
    return Entry(str(obj.get("d")), obj["b"], float(obj.get("t") or 0.0))
