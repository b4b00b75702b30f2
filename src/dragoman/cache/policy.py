"""Whether a request reads and writes the cache (docs/limits.md), and what it is told.

``cache-control: no-cache`` from the client: the answer is fetched fresh (not read from the
cache) and stored for the next one; ``no-store``: neither. A key set to never use the cache
neither reads nor writes. Each answers ``x-dragoman-cache: bypass``; otherwise ``hit`` or
``miss``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

HEADER = "x-dragoman-cache"
HIT, MISS, BYPASS = "hit", "miss", "bypass"


@dataclass(frozen=True, slots=True)
class Use:
    read: bool
    write: bool

    @property
    def label(self) -> str:
        """The header value before the lookup: ``bypass``, or ``miss`` until a hit says so."""
        return MISS if self.read else BYPASS


NONE = Use(False, False)


def directives(value: str | None) -> frozenset[str]:
    """The directives of a ``cache-control`` value, lower-cased, arguments dropped."""
    if not value:
        return frozenset()
    return frozenset(p.split("=", 1)[0].strip().lower() for p in value.split(","))


def decide(headers: Mapping[str, str], key_uses_cache: bool = True) -> Use:
    """How the request uses the cache; ``headers`` are the client's (any case)."""
    if not key_uses_cache:
        return NONE
    cc = headers.get("cache-control")
    if cc is None:
        for k, v in headers.items():
            if k.lower() == "cache-control":
                cc = v
                break
    d = directives(cc)
    if "no-store" in d:
        return NONE
    if "no-cache" in d:
        return Use(False, True)
    return Use(True, True)
