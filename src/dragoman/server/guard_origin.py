"""Open mode refuses what a browser page could send (audit #19; docs/security.md).

An open gateway on 127.0.0.1 is reachable from every web page the user opens. Three checks
keep pages out while non-browser clients (SDKs, curl, agents) are unaffected:

- an ``Origin`` header not in ``server.allowed_origins``: 403 (a cross-site request, CSRF);
- a ``Host`` that is not a loopback name or in ``server.allowed_hosts``: 403 (DNS rebinding: a
  page whose own name now resolves to 127.0.0.1 could otherwise read the answers);
- a body that is not declared JSON: 415 (``text/plain``, forms and untyped blobs are what a
  page can POST without a CORS preflight).

With client keys none of this is needed (a page cannot attach a key without a preflight, which
the gateway never grants), so the checks apply only while the gateway is open.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..config import ServerConfig
from ..errors import InvalidRequestError, PermissionDeniedError
from .auth import is_loopback

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _host_name(host: str) -> str:
    """``Host`` without its port: "[::1]:8080" -> "[::1]", "localhost:80" -> "localhost"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_json(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


def check_browser(request: web.Request, server: ServerConfig) -> None:
    """Raise 403/415 (in the caller's dialect, by the error middleware) for what a browser
    page could have sent; return for anything else."""
    origin = request.headers.get("Origin")
    if origin is not None and origin not in server.allowed_origins:
        raise PermissionDeniedError(
            f"this gateway is open (no client keys): requests from web pages are refused "
            f"(Origin {origin[:100]!r}); list it in server.allowed_origins or configure "
            "auth.keys",
            code="origin_not_allowed",
        )
    host = request.headers.get("Host")
    if host is not None:
        allowed = {h.lower() for h in server.allowed_hosts}
        name = _host_name(host)
        if not (is_loopback(name) or name in allowed or host.strip().lower() in allowed):
            raise PermissionDeniedError(
                f"this gateway is open (no client keys): Host {host[:100]!r} is not a loopback "
                "name; list it in server.allowed_hosts or configure auth.keys",
                code="host_not_allowed",
            )
    if request.method in _BODY_METHODS and request.body_exists:
        ctype = request.headers.get("Content-Type", "")
        if not _is_json(ctype):
            bad = InvalidRequestError(
                f"the body must be sent as Content-Type: application/json (got {ctype[:100]!r})",
                code="unsupported_media_type",
            )
            bad.status = 415
            raise bad


def open_mode_guard(is_open: Callable[[], bool], server: ServerConfig) -> Middleware:
    """The middleware: ``check_browser`` on every request while ``is_open()``."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_open():
            check_browser(request, server)
        return await handler(request)

    return guard
