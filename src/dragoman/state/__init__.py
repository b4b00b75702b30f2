"""Shared state: rate-limit counters, deployment health, key changes and cache bytes, in this
process (``MemoryState``) or in Redis for many processes (``RedisState``). docs/limits.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import WINDOW, Admission, Check, Limit, Quota, State, Ticket
from .memory import MemoryBytes, MemoryState

if TYPE_CHECKING:
    from ..config import Config, StateConfig

__all__ = [
    "WINDOW",
    "Admission",
    "Check",
    "Limit",
    "MemoryBytes",
    "MemoryState",
    "Quota",
    "State",
    "Ticket",
    "build_state",
    "workers_error",
]


def build_state(cfg: StateConfig) -> State:
    """The state a config asks for: Redis when ``state.url`` is set, else this process."""
    if cfg.url:
        from .redis import RedisState  # redis-py is only imported when it is used

        return RedisState(
            cfg.url,
            on_error=cfg.on_error,
            prefix=cfg.prefix,
            timeout=cfg.timeout,
            lease_ttl=cfg.lease_ttl,
        )
    return MemoryState()


def workers_error(config: Config, workers: int) -> str | None:
    """Why ``dragoman serve --workers N`` must refuse to start, or None when it may.

    N processes with in-process state would each count on their own: every limit would be N
    times what the config says, and a key revoked in one process would live on in the others.
    """
    if workers > 1 and not config.state.url:
        return (
            f"--workers {workers} needs shared state: set state.url (e.g. "
            '"redis://127.0.0.1:6379/0"); without it each process would count limits on its '
            f"own ({workers} times each limit) and a revoked key would stay valid in the others"
        )
    return None
