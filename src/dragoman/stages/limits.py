"""Rate limits per key and per deployment (``rpm``/``tpm`` in config): the place they plug in,
right after ``auth``. A pass-through until the limits issue fills it (the cores are in
``dragoman/limits/``)."""

from __future__ import annotations

from ..core.exchange import Exchange, Reply
from ..core.pipeline import Next


class Limits:
    async def __call__(self, ex: Exchange, next: Next) -> Reply:
        return await next(ex)
