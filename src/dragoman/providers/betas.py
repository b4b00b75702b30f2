"""Which of the client's ``anthropic-beta`` flags reach an Anthropic upstream, and a word in the
log about those that bill beyond what the books price.

``providers.<name>.forward_betas``: ``true`` (the default) forwards every flag, as the client
sent it, so Claude Code keeps every feature it asks for, as if it called the upstream directly;
``false`` forwards none; a list forwards only the flags that equal an entry or start with one
(``context-management`` lets ``context-management-2025-06-27`` through). A forwarded flag known to
bill beyond ``input x price + output x price`` (``COSTLY``) is logged once per process, so a
budget is never outrun silently (docs/accounting.md, "Costs the books do not see").

The header is filtered once per distinct value (clients repeat the same one on every request).
"""

from __future__ import annotations

import logging
from functools import lru_cache

log = logging.getLogger("dragoman.upstream")

#: beta prefixes whose use bills beyond the tokens the books price, and how
COSTLY: dict[str, str] = {
    "context-1m": "prompts over 200k tokens are billed at the long-context rates",
    "fast-mode": "fast mode is billed at premium rates",
    "code-execution": "code execution bills container time",
    "skills": "skills run in a code execution container, which bills container time",
}

_warned: set[str] = set()


def _allowed(beta: str, allow: tuple[str, ...]) -> bool:
    return any(beta == a or beta.startswith(a) for a in allow)


@lru_cache(maxsize=256)
def forwarded(header: str, allow: tuple[str, ...] | None, provider: str) -> str:
    """The ``anthropic-beta`` value to send upstream ("" for none); ``allow`` None = all."""
    betas = [b.strip() for b in header.split(",") if b.strip()]
    if allow is not None:
        betas = [b for b in betas if _allowed(b, allow)]
    for b in betas:
        for prefix, why in COSTLY.items():
            if b.startswith(prefix) and prefix not in _warned:
                _warned.add(prefix)
                log.warning(
                    "forwarding anthropic-beta %s to provider %s: %s, which the books do not "
                    "price (usage and budgets count tokens at the model's prices); list the "
                    "betas to forward in providers.%s.forward_betas to keep it out",
                    b,
                    provider,
                    why,
                    provider,
                )
    if allow is None:
        return header
    return ",".join(betas)


def allow_list(setting: bool | list[str]) -> tuple[str, ...] | None:
    """``forward_betas`` as ``forwarded`` takes it: None = every flag, () = none."""
    if setting is True:
        return None
    if setting is False:
        return ()
    return tuple(a.rstrip("*") for a in setting)
