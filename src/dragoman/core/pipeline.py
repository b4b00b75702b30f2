"""The one contract of the policy layer: a stage is ``async (exchange, next) -> Reply``.

``build_pipeline`` folds an ordered list of stages around a terminal handler, the first stage
outermost (as aiohttp's ``build_client_middlewares`` and starlette's middleware stack do). The
list is data, built in one place (``bootstrap.py``); no stage knows the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol

from .exchange import Exchange, Reply

Next = Callable[[Exchange], Awaitable[Reply]]


class Stage(Protocol):
    """One policy around the rest of the pipeline: may act before, after, instead of, or many
    times over ``next`` (retries), and may register ``on_close`` hooks on a streamed reply."""

    async def __call__(self, ex: Exchange, next: Next) -> Reply: ...


def build_pipeline(stages: Sequence[Stage], terminal: Next) -> Next:
    """``stages[0]`` wraps ``stages[1]`` ... wraps ``terminal``."""
    handler = terminal
    for stage in reversed(stages):
        handler = partial(stage, next=handler)
    return handler
