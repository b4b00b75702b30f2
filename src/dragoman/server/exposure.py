"""What each caller may see (audit #22; docs/security.md): ``/health`` details and ``/metrics``
for the admin only, ``/v1/models`` filtered by the key's allow-list.

The public ``/health`` says whether the gateway is up and nothing else: deployment names,
upstream errors, probe URLs and server flavors describe the private network behind it.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Any

from aiohttp import web

from ..errors import PermissionDeniedError
from ..stages.auth import Auth, is_loopback


def may_use(key: Any, model: str) -> bool:
    """A key (``KeyInfo``, or None: no allow-list) may use ``model``."""
    allowed = getattr(key, "allowed_models", None)
    if allowed is None:
        return True
    return any(p == model or fnmatch.fnmatchcase(model, p) for p in allowed)


def visible_models(items: list[dict[str, Any]], key: Any, resolve: Any) -> list[dict[str, Any]]:
    """The model list a key may see: names (or the model an alias names) its allow-list
    permits. ``resolve(name)`` gives the configured model a listed name stands for."""
    if getattr(key, "allowed_models", None) is None:
        return items
    return [m for m in items if may_use(key, m["id"]) or may_use(key, resolve(m["id"]))]


def public_health(body: dict[str, Any], auth: Auth, request: web.Request) -> dict[str, Any]:
    """``body`` for the admin; ``{"status": ...}`` only for everyone else."""
    if auth.is_admin(request):
        # which process answered: one of ``serve --workers N`` (docs/limits.md)
        return {**body, "pid": os.getpid()}
    return {"status": body["status"]}


def check_metrics(auth: Auth, request: web.Request) -> None:
    """``/metrics`` is open only on an open loopback gateway; otherwise it needs the admin key
    (403 when there is none to give, 401 for a wrong one)."""
    if auth.open and is_loopback(auth.config.server.host):
        return
    if auth.is_admin(request):
        return
    if not auth.config.auth.admin_key:
        raise PermissionDeniedError(
            "/metrics needs the admin key here: set auth.admin_key", code="admin_key_required"
        )
    auth.refuse_if_blocked(request)
    raise auth.fail(request, "admin key required for /metrics", code="invalid_api_key")
