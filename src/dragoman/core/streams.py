"""Streams handed to clients: primed before they are handed over, with end hooks run once.

A stage that cares how a stream ends (the ledger settles, retry updates health, observe records
metrics) registers ``on_close(hook)`` on the reply instead of wrapping the iterator, so the
pass-through hot path pays nothing per chunk for the pipeline. The hooks run exactly once with
the stream's ``StreamOutcome``: from the relay's own ``finally`` (complete, broken, or closed
because the client left), or, for a stream that was over before a stage registered, when its
reader reaches the end or closes it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field

from ..usage import Usage

log = logging.getLogger("dragoman.streams")


@dataclass(slots=True)
class StreamOutcome:
    """How a stream really ended: 200 when complete, 499 when the client left, else the
    failure's status, its message and (client-visible) error type; and the usage delivered."""

    status: int = 200
    error: str | None = None
    error_type: str | None = None
    usage: Usage = field(default_factory=Usage)


Hook = Callable[[StreamOutcome], Awaitable[None]]


class Closing:
    """The end hooks of one stream; ``close`` runs those registered so far, ``flush`` the late
    ones (registered after the stream was already over)."""

    __slots__ = ("_hooks", "outcome")

    def __init__(self) -> None:
        self._hooks: list[Hook] = []
        self.outcome: StreamOutcome | None = None

    def add(self, hook: Hook) -> None:
        self._hooks.append(hook)

    async def close(self, outcome: StreamOutcome) -> None:
        """The stream ended with ``outcome``: run the hooks (once; later calls are no-ops)."""
        if self.outcome is not None:
            return
        self.outcome = outcome
        await self.flush()

    async def flush(self) -> None:
        if self.outcome is None:
            return
        while self._hooks:
            hook = self._hooks.pop(0)
            try:
                await hook(self.outcome)
            except Exception:  # one stage's bookkeeping must not skip the others'
                log.exception("stream end hook failed")


class PrimedStream:
    """An async byte stream whose first item is already computed.

    Closing it always closes the generator underneath, which has started, so its ``finally``
    (upstream connection, and the end hooks) runs even if nobody reads a byte.
    """

    __slots__ = ("_first", "_gen", "closing")

    def __init__(
        self, first: bytes | None, gen: AsyncGenerator[bytes, None], closing: Closing
    ) -> None:
        self._first = first
        self._gen = gen
        self.closing = closing

    @classmethod
    async def start(
        cls, gen: AsyncGenerator[bytes, None], closing: Closing | None = None
    ) -> PrimedStream:
        try:
            first: bytes | None = await gen.__anext__()
        except StopAsyncIteration:
            first = None
        return cls(first, gen, closing if closing is not None else Closing())

    def on_close(self, hook: Hook) -> None:
        """Run ``hook(outcome)`` once when the stream ends, breaks or is abandoned."""
        self.closing.add(hook)

    def __aiter__(self) -> PrimedStream:
        return self

    async def __anext__(self) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        try:
            return await self._gen.__anext__()
        except StopAsyncIteration:
            await self.closing.flush()
            raise

    async def aclose(self) -> None:
        self._first = None
        try:
            await self._gen.aclose()
        finally:
            await self.closing.flush()
