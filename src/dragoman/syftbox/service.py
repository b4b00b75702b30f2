"""``SyftBoxService``: the router's apps served for one SyftBox client, over one gateway.

The composition point a server (``dragoman serve``) or ``dragoman syftbox serve`` starts and
stops on its event loop::

    service = SyftBoxService(config.syftbox, gateway)   # gateway: seam.Gateway
    await service.start()       # loads the SyftBox client and the accounting account
    ...
    await service.stop()        # within a second
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..config import ConfigError, SyftBoxConfig
from . import require

require()

from syft_core import Client  # noqa: E402

from .accounting import Accounting, credentials  # noqa: E402
from .apps import Router  # noqa: E402
from .blocking import pool  # noqa: E402
from .rpc import RpcServer, file_limit  # noqa: E402
from .seam import Gateway  # noqa: E402

log = logging.getLogger("dragoman.syftbox")


def quiet_libraries() -> None:
    """syft-event logs every file event at DEBUG on stderr (loguru): keep our logs readable."""
    from loguru import logger

    for name in ("syft_event", "syft_core", "syft_rpc", "syft_crypto"):
        logger.disable(name)


def load_client(cfg: SyftBoxConfig, *, source: str = "<config>") -> Client:
    """The SyftBox client (email, data_dir): ``client_config``, else SyftBox's own defaults."""
    path = Path(cfg.client_config).expanduser() if cfg.client_config else None
    try:
        return Client.load(filepath=path)
    except Exception as e:
        where = f"{source}: syftbox.client_config"
        raise ConfigError(f"{where}: cannot load the SyftBox client config: {e}") from None


class SyftBoxService:
    """Serves ``routers/<app_name>`` and ``<app_name>`` (docs/syftbox.md)."""

    def __init__(
        self,
        config: SyftBoxConfig,
        gateway: Gateway,
        *,
        source: str = "<config>",
        client: Client | None = None,
        read_grace: float = 1.0,
        rescan_interval: float = 2.0,
        max_body_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.config = config
        self.gateway = gateway
        self.source = source
        self.client = client
        self.read_grace = read_grace
        self.rescan_interval = rescan_interval
        #: as ``server.max_body_bytes``: a request file may hold a body this big, base64-encoded
        self.max_body_bytes = max_body_bytes
        self.server: RpcServer | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Load the client and the account (``ConfigError`` when unusable), then serve."""
        cfg = self.config
        quiet_libraries()
        executor = self._executor = pool(cfg.workers)
        loop = asyncio.get_running_loop()
        try:
            if self.client is None:
                self.client = await loop.run_in_executor(
                    executor, lambda: load_client(cfg, source=self.source)
                )
            client = self.client
            accounting = None
            if cfg.price_per_request > 0:
                account = await loop.run_in_executor(
                    executor, lambda: credentials(cfg, source=self.source)
                )
                if account.email.lower() != str(client.email).lower():
                    raise ConfigError(
                        f"{self.source}: syftbox.accounting.email: {account.email} is not the "
                        f"SyftBox email {client.email}; callers' transaction tokens name the "
                        "datasite's email as the recipient"
                    )
                accounting = Accounting(account, executor, app_name=cfg.app_name)
                await accounting.check()
            router = Router(
                self.gateway,
                app_name=cfg.app_name,
                price=cfg.price_per_request,
                accounting=accounting,
            )
            self.server = RpcServer(
                client,
                router.apps(),
                workers=cfg.workers,
                read_grace=self.read_grace,
                rescan_interval=self.rescan_interval,
                executor=executor,
                max_request_bytes=file_limit(self.max_body_bytes),
            )
            await self.server.start()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "syftbox: serving %s as %s (routers/%s and %s; %s per /chat)",
            client.my_datasite,
            client.email,
            cfg.app_name,
            cfg.app_name,
            f"{cfg.price_per_request:g}" if cfg.price_per_request else "free",
        )

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
