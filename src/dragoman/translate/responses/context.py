"""What the Responses request translation hands to the response side."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .reasoning import Sealer
from .tools import ToolIndex

log = logging.getLogger("dragoman.translate.responses")

#: kinds of warnings already logged by this process (a dropped tool type is logged once, not
#: on every request Codex sends with it)
_LOGGED: set[str] = set()


@dataclass(slots=True)
class ResponsesContext:
    """Produced by :func:`~.request.responses_to_chat`; consumed by the response translators."""

    #: the model name the client asked for (echoed in the response)
    requested_model: str
    #: the request's tools by Chat function name
    tools: ToolIndex = field(default_factory=ToolIndex)
    #: seals reasoning into ``encrypted_content`` (None: reasoning items carry no blob)
    sealer: Sealer | None = None
    #: the client asked for ``include: ["reasoning.encrypted_content"]``
    include_encrypted: bool = False
    #: reasoning is shown as summary parts (the client set ``reasoning.summary``), else as
    #: ``reasoning_text`` content (the raw chain of thought, which is what a Chat backend gives)
    summary_mode: bool = False
    #: the client's estimate of the prompt, for usage when the upstream reports none
    input_tokens_estimate: int = 0
    #: request fields echoed in every ``response`` object, as the API does
    echo: dict[str, Any] = field(default_factory=dict)
    #: what was dropped or changed, for the caller to log or report
    warnings: list[str] = field(default_factory=list)
    #: fixed ``created_at`` (tests); None: the clock
    created_at: int | None = None

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        if message not in _LOGGED:
            _LOGGED.add(message)
            log.warning("responses: %s (logged once per process)", message)
