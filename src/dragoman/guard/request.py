"""Every guard on a client's request, in one call for the dialect validators' callers: the
model name, the caps, the field types, the URLs (docs/limits.md, "Request caps"). Each check
is linear in the request and resolves nothing, so validation stays cheap."""

from __future__ import annotations

from typing import Any

from ..config import RequestLimits
from .caps import check_caps
from .images import check_image_urls
from .shapes import check_anthropic, check_openai
from .strings import check_model_name

ANTHROPIC = "anthropic"


def check_request(front: str, body: Any, limits: RequestLimits) -> None:
    """Raise a 400 (:class:`~dragoman.errors.InvalidRequestError`) for the first guard
    ``body`` fails; ``front`` is the caller's dialect. Runs after the dialect's own checks."""
    if not isinstance(body, dict):
        return
    check_model_name(body.get("model"))
    check_caps(front, body, limits)
    if front == ANTHROPIC:
        check_anthropic(body)
    else:
        check_openai(body)
    check_image_urls(front, body)
