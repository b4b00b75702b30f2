"""A key's model allow-list, applied to every model a request may reach: its first model and
each fallback (audit #13). A fallback the key may not use is skipped with a log line, so the
caller gets the failure of the model it may use, never an answer from one it may not
(docs/accounting.md, "Allow-lists and fallbacks")."""

from __future__ import annotations

import logging
from typing import Any

from dragoman.errors import PermissionDeniedError

log = logging.getLogger("dragoman.accounting")


def allowed(accountant: Any, key: Any, model: str) -> bool:
    """Whether ``key`` may use ``model`` (no log, no error)."""
    if accountant is None:
        return True
    try:
        accountant.check_model_allowed(key, model)
    except PermissionDeniedError:
        return False
    return True


def may_use(accountant: Any, key: Any, model: str, *, fallback: bool) -> bool:
    """Whether ``key`` may be served by ``model``. The model asked for raises the 403 itself;
    a fallback is only skipped (False). No accountant, no key: every model."""
    if accountant is None:
        return True
    try:
        accountant.check_model_allowed(key, model)
    except PermissionDeniedError:
        if not fallback:
            raise
        log.info("fallback %s skipped: the key may not use it", model)
        return False
    return True
