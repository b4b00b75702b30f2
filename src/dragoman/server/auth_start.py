"""Whether ``dragoman serve`` may start with the auth it was given (audit #1; docs/security.md).

It refuses when a key was written in the config but expanded to nothing (``${VAR}`` unset: the
operator meant a key, and would otherwise get an open gateway without a word), and when it would
serve without any client key on a non-loopback address unless ``auth.open: true`` says so. An
open gateway that does start says so with a warning.
"""

from __future__ import annotations

import logging

from ..config import Config
from .auth import open_allowed

log = logging.getLogger("dragoman.server")


def has_keys(config: Config, virtual_keys: bool) -> bool:
    """Client auth is required: static keys, an admin key, or unrevoked virtual keys."""
    return bool(config.auth.keys or config.auth.admin_key or virtual_keys)


def start_refusal(config: Config, virtual_keys: bool) -> str | None:
    """Why the gateway must not start, or None when it may."""
    unset = config.auth.unset
    if unset:
        return (
            f"{config.source}: {', '.join(unset)} is written but expanded to an empty string "
            "(an unset environment variable?): refusing to start an open gateway by accident; "
            "set the variable, or remove the entry to run without it"
        )
    if not has_keys(config, virtual_keys) and not open_allowed(config):
        return (
            f"{config.source}: refusing to serve on {config.server.host} without client keys: "
            "configure auth.keys (or create keys with `dragoman keys create`), bind a loopback "
            "address, or set auth.open: true to run an open gateway on purpose"
        )
    return None


def warn_if_open(config: Config, virtual_keys: bool) -> None:
    """The start-up warning of an open gateway (and what it still refuses)."""
    if has_keys(config, virtual_keys):
        return
    log.warning(
        "open gateway: no client keys (auth.keys, auth.admin_key or virtual keys), anyone who "
        "can reach %s may use it; requests from web pages (Origin, foreign Host, non-JSON "
        "bodies) are refused, admin actions need auth.admin_key",
        config.server.host,
    )
