"""Strings a client chooses that end up in the books (model names): validated at the door (and
cut to their column's length before a row is queued, ``store.fit``), so one odd value can never
fail a whole batch of usage rows (audit #10; docs/accounting.md)."""

from __future__ import annotations

import re
from typing import Any

from ..errors import InvalidRequestError

#: longest model name a request may name (real ones are well under 100 characters)
MAX_MODEL_NAME = 256
#: C0 and C1 control characters, DEL
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_model_name(model: Any, param: str = "model") -> None:
    """A 400 for a model name no route could have: too long, or with control characters."""
    if not isinstance(model, str):
        return  # the dialect's own check names a missing or mistyped model
    if len(model) > MAX_MODEL_NAME:
        raise InvalidRequestError(
            f"{param}: a model name is at most {MAX_MODEL_NAME} characters", param=param
        )
    if _CONTROL.search(model):
        raise InvalidRequestError(f"{param}: a model name has no control characters", param=param)
