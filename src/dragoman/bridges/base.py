"""The bridge contract: what one path between a client dialect and an upstream dialect does.

A bridge is pure translation and watching; it never does I/O. ``dispatch`` (the terminal stage)
asks it to ``prepare`` the upstream request, then either ``decode``s the complete answer or
runs the ``codec`` of a stream, chunk by chunk, and ends a failed stream with the client
dialect's ``error_ending``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..core.exchange import Exchange
from ..errors import DragomanError
from ..providers.base import Provider
from ..providers.detect import Detection
from ..routing.deployments import Deployment
from ..routing.models import ModelRoute
from ..translate.context import ResponseContext
from ..usage import Usage


@dataclass(slots=True)
class Attempt:
    """One try of the exchange on one deployment, and what is known of its server."""

    ex: Exchange
    route: ModelRoute
    dep: Deployment
    detection: Detection

    @property
    def provider(self) -> Provider:
        return self.dep.provider


@dataclass(slots=True)
class Prepared:
    """One attempt's upstream request."""

    path: str
    body: bytes
    headers: Mapping[str, str]
    rctx: ResponseContext | None = None
    #: dragoman asked for the usage chunk itself (hidden from the client)
    inject_usage: bool = False


@dataclass(slots=True)
class Decoded:
    """A complete upstream answer, for the client: body, usage, and whether it was a refusal."""

    body: bytes
    usage: Usage
    refusal: bool


class StreamCodec(Protocol):
    """Turns upstream stream bytes into client stream bytes and watches what went by; one call
    per upstream chunk (the relay loop in ``stages/dispatch.py`` adds nothing else)."""

    def start(self, first: bytes) -> bytes:
        """The client's first bytes, from the upstream's first chunk."""
        ...

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes:
        """Bytes for upstream EOF (the client dialect's error ending if it was incomplete)."""
        ...

    def fail(self, err: DragomanError) -> bytes:
        """The client dialect's error ending, for a failure half-way (b"" if already ended)."""
        ...

    def failure(self) -> tuple[int, str, str] | None:
        """(status, message, error type) the stream failed with; None when it completed."""
        ...

    def settled(self) -> Usage:
        """What to charge: the upstream's usage, else an estimate of what was delivered."""
        ...


class Bridge(Protocol):
    """One row of ``bridges/registry.py``."""

    def prepare(self, at: Attempt) -> Prepared: ...

    def decode(self, at: Attempt, prep: Prepared, raw: bytes) -> Decoded:
        """A 200 body -> the client's; raises ``TypeError``/``ValueError``/``KeyError`` on a
        body that is not an answer (dispatch makes it a 502)."""
        ...

    def codec(self, at: Attempt, prep: Prepared) -> StreamCodec: ...

    def first_event_error(self, first: bytes) -> DragomanError | None:
        """The typed error when the upstream's first chunk is an error event."""
        ...

    def error_ending(self, err: DragomanError) -> bytes:
        """The client dialect's ending for a stream that failed half-way."""
        ...
