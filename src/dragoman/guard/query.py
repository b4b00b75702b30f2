"""The part of a client's query string that reaches the upstream: known parameters only
(``beta=true``, which the Anthropic SDK adds for beta endpoints), read from the raw query
string and re-encoded, so an escaped ``&`` or ``#`` cannot become a parameter or a fragment of
its own upstream (audit #25; docs/limits.md, "Addresses")."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

#: parameters the upstream may see, and the values it may see for them
FORWARDED = {"beta": ("true", "false")}


def upstream_query(raw: str) -> str:
    """The query string to append upstream for the client's raw (still escaped) query string."""
    if not raw:
        return ""
    kept = [
        (k, v)
        for k, v in parse_qsl(raw, keep_blank_values=True)
        if k in FORWARDED and v in FORWARDED[k]
    ]
    return urlencode(kept)
