"""What every stage shares for the life of a gateway: config, the model map, the providers and
what their servers are (``flavor: auto``), deployment health, the books, and the injected
``sleep``/``clock``/``rng`` (tests drive retries and cooldowns with their own)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..config import Config
from ..providers import Provider, detect, make_provider
from ..providers.detect import Detection
from ..routing.deployments import Health
from ..routing.models import ModelMap

log = logging.getLogger("dragoman.runtime")

Sleep = Callable[[float], Awaitable[None]]


class Runtime:
    """The long-lived state behind the pipeline (one per gateway)."""

    def __init__(
        self,
        config: Config,
        *,
        accountant: Any = None,
        sleep: Sleep | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        api_keys: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        keys = api_keys or {}
        self.providers: dict[str, Provider] = {
            n: make_provider(n, pc, keys.get(n)) for n, pc in config.providers.items()
        }
        self.models = ModelMap(config, self.providers)
        #: the books (``accounting.Accountant``), or None; the library sets it at first use
        self.accountant = accountant
        self.sleep: Sleep = sleep or asyncio.sleep
        self.clock = clock
        self.rng = rng or random.Random()
        self.health = Health(config.routing.cooldown, clock)
        self.provider_health: dict[str, tuple[bool, str]] = {}
        #: what each provider's server is (``flavor: auto``), and what it reported
        self.detections: dict[str, Detection] = {
            n: detect.initial(pc.kind, pc.base_url, pc.flavor) for n, pc in config.providers.items()
        }
        self._detecting: dict[str, asyncio.Task[Detection]] = {}

    async def close(self) -> None:
        for t in self._detecting.values():
            t.cancel()  # a detection still waiting on a slow server
        for p in self.providers.values():
            await p.close()

    async def detect_flavors(self) -> dict[str, Detection]:
        """Ask every provider not yet asked what it is (start-up; bounded by short timeouts)."""
        names = [n for n, d in self.detections.items() if not d.settled and d.asked_at is None]
        await asyncio.gather(*(self._detect(self.providers[n]) for n in names))
        return self.detections

    def _detect(self, prov: Provider) -> asyncio.Task[Detection]:
        """The one detection in flight for ``prov`` (started when there is none)."""
        task = self._detecting.get(prov.name)
        if task is None or task.done():
            models = sorted(
                {
                    d.upstream_model
                    for r in self.models.routes.values()
                    for d in r.deployments
                    if d.provider is prov
                }
            )
            det = self.detections[prov.name]
            task = asyncio.ensure_future(detect.detect(prov, det, models, now=self.clock()))
            self._detecting[prov.name] = task
        return task

    async def detected(self, prov: Provider) -> Detection:
        """The provider's detection; a server not asked yet, or that did not answer more than
        ``detect.RETRY_AFTER`` seconds ago, is asked now (once, whoever else is waiting)."""
        det = self.detections[prov.name]
        if det.settled:
            return det
        running = self._detecting.get(prov.name)
        idle = running is None or running.done()
        if idle and det.asked_at is not None and self.clock() - det.asked_at < detect.RETRY_AFTER:
            return det
        try:
            await asyncio.shield(self._detect(prov))
        except Exception:  # detection must never fail a request
            log.exception("flavor detection for %s failed", prov.name)
        return det

    async def check_providers(self) -> dict[str, tuple[bool, str]]:
        """Probe every provider once (start-up health check)."""
        names = [n for n, p in self.providers.items() if p.config.health_check]
        results = await asyncio.gather(*(self.providers[n].health() for n in names))
        self.provider_health = dict(zip(names, results, strict=True))
        return self.provider_health
