"""The composition root: config -> providers, stages, accountant -> the gateway core.

The server (``server/app.py create_app``), the CLI (``dragoman serve``, ``dragoman route``) and
the library (``dragoman.Gateway``) are all built here, and the order of the stages lives here
and nowhere else (docs/architecture.md, "Request flow"):

    auth -> limits -> route -> ledger -> observe -> fallback -> retry -> dispatch

``count_tokens`` runs a shorter pipeline over the same stages: auth -> limits -> route ->
observe -> count_tokens (no upstream attempt, no books).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from .config import Config, ConfigError
from .core.gateway import Gateway
from .core.pipeline import build_pipeline
from .core.runtime import Runtime, Sleep
from .stages.auth import Auth
from .stages.count_tokens import CountTokens
from .stages.dispatch import Dispatch
from .stages.fallback import Fallback
from .stages.ledger import Ledger
from .stages.limits import Limits
from .stages.observe import Observe
from .stages.retry import Retry
from .stages.route import Route


def build_gateway(
    config: Config,
    *,
    accountant: Any = None,
    api_keys: Mapping[str, str] | None = None,
    sleep: Sleep | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> Gateway:
    """The gateway core for ``config`` (``sleep``/``clock``/``rng``: injected by tests)."""
    rt = Runtime(
        config, accountant=accountant, api_keys=api_keys, sleep=sleep, clock=clock, rng=rng
    )
    auth, limits, route, observe = Auth(rt), Limits(), Route(rt), Observe()
    ledger = Ledger(rt)
    pipeline = build_pipeline(
        [auth, limits, route, ledger, observe, Fallback(rt), Retry(rt)], Dispatch(rt)
    )
    count = build_pipeline([auth, limits, route, observe], CountTokens(rt))
    return Gateway(rt, pipeline, count, refused=[ledger.refused], closers=[ledger.drain], auth=auth)


async def open_books(cfg: Config) -> tuple[Any, dict[str, str]]:
    """The accountant (when the store is on) and the provider keys kept in it as credentials.

    Shared by ``serve`` and the library; a missing credential is a ``ConfigError``.
    """
    if not cfg.store.enabled:
        return None, {}
    from .accounting import Accountant

    accountant = await Accountant.create(cfg)
    api_keys: dict[str, str] = {}
    try:
        for name, p in cfg.providers.items():
            if p.credential:
                secret = await accountant.credential(p.credential)
                if secret is None:
                    raise ConfigError(
                        f"{cfg.source}: providers.{name}.credential: no stored credential "
                        f"named {p.credential!r}"
                    )
                api_keys[name] = secret
    except BaseException:
        await accountant.close()
        raise
    return accountant, api_keys


async def build(cfg: Config, **kw: Any) -> tuple[Gateway, Any]:
    """The gateway and its accountant for a config (the store opens when enabled)."""
    accountant, api_keys = await open_books(cfg)
    return build_gateway(cfg, accountant=accountant, api_keys=api_keys, **kw), accountant
