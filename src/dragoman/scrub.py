"""Remove anything credential-like from upstream text before anyone sees it.

An upstream's error message is relayed to the client, logged, shown in ``/health`` and stored
in the usage and ledger tables. Some upstreams echo the key they were sent (OpenAI-compatible
servers, proxies, OpenAI's own half-masked ``sk-...``), so every upstream message passes here
once, where it is classified (``upstream/classify.py``), and every consumer gets clean text
(docs/upstream.md, "Nothing leaks").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "[redacted]"

#: credential shapes, whatever key sent them
_PATTERNS = re.compile(
    r"""
      (?:bearer|basic)\s+[A-Za-z0-9._~+/=\-]{6,}            # Authorization: Bearer <token>
    | \bsk-(?:ant-)?[A-Za-z0-9._\-*]{6,}                     # OpenAI / Anthropic style keys
    | \b(?:x-api-key|api[-_]?key|authorization|access[-_]?token|refresh[-_]?token
          |secret|client[-_]?secret|password|passwd)
        ["']?\s*[:=]\s*["']?\s*(?:(?:bearer|basic)\s+)?[^\s"',;}&]{6,}  # api_key=...
    | \b(?:key|token|secret|password)s?\b["']?[\s:=]{1,4}["']?
        (?=[A-Za-z0-9._~+/=\-]*\d)[A-Za-z0-9._~+/=\-]{8,}      # key: <token-looking, a digit>
    | \b(?:key|token|secret|password)s?\b[^A-Za-z0-9\n]{1,4}[A-Za-z0-9._~+/=\-]{20,}
    """,
    re.I | re.X,
)


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without the given secrets and without anything shaped like a credential."""
    for s in secrets:
        if s and len(s) >= 4 and s in text:
            text = text.replace(s, MASK)
    return _PATTERNS.sub(_mask, text) if text else text


def _mask(m: re.Match[str]) -> str:
    """Keep the word that introduced a credential (``api_key=``), mask the value."""
    s = m.group(0)
    low = s.lower()
    if low.startswith(("bearer", "basic")):
        return s.split(None, 1)[0] + " " + MASK
    if low.startswith("sk-"):
        return MASK
    cut = re.match(r"[A-Za-z_\-]+[\"']?\s*[:=]?\s*[\"']?\s*(?:(?:bearer|basic)\s+)?", s, re.I)
    return (cut.group(0) if cut else "") + MASK


def scrub_json(obj: Any, secrets: Iterable[str | None] = ()) -> Any:
    """``obj`` (an upstream error event's JSON) with every string scrubbed of credentials."""
    if isinstance(obj, str):
        return scrub(obj, secrets)
    if isinstance(obj, dict):
        return {k: scrub_json(v, secrets) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub_json(v, secrets) for v in obj]
    return obj
