"""The one seam between the SyftBox transport and the gateway (docs/syftbox.md, "The seam").

The transport turns each SyftBox request into an OpenAI Chat Completions request and hands it
to a ``Gateway``: the same core the HTTP server runs (routing, aliases, fallbacks, limits,
budgets, the books). ``Caller`` says who asked and what was paid, so limits can take the
sender's scope and the ledger can record the accounting transaction. Errors come back as
``dragoman.errors.DragomanError``, whose ``status`` and ``message`` the transport renders in the
caller's form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..usage import Usage


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a SyftBox request, and the payment it came with."""

    #: the datasite whose folder holds the request (checked against the request's ``sender``)
    sender: str
    #: the SyftBox app answering: ``routers/<app_name>`` (legacy) or ``<app_name>`` (syft-hub)
    app: str
    #: ``/chat`` or ``/completions``
    endpoint: str
    #: the SyftBox request's id (a UUID)
    request_id: str
    #: the accounting identity charged: the sender (legacy) or ``user_email`` (syft-hub)
    payer: str | None = None
    #: accounting credits this request is charged (0: free)
    price: float = 0.0
    #: the pending delegated transaction, created before the model call
    transaction_id: str | None = None
    #: the caller's transaction token (single use, already spent on ``transaction_id``)
    transaction_token: str | None = None


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A complete answer from the gateway."""

    #: an OpenAI ``chat.completion`` object
    body: dict[str, Any]
    #: the gateway model that answered (after aliases, rules and fallbacks)
    model: str
    #: the gateway's request id (``request-id``), for support
    request_id: str = ""
    usage: Usage = field(default_factory=Usage)


class Gateway(Protocol):
    """What the transport needs from the gateway: one non-streamed chat."""

    async def chat(self, body: dict[str, Any], caller: Caller) -> ChatResult:
        """Answer an OpenAI chat request for ``caller``; raise ``DragomanError`` on failure."""
        ...
