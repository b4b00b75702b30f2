"""``dragoman syftbox publish|serve``: list the router on syft-hub, serve it (docs/syftbox.md).

Registered by ``dragoman.cli`` (``main.add_command(syftbox)``); the SyftBox libraries load only
when a command runs, so ``dragoman --help`` works without the extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import click

from ..config import Config, ConfigError, load_config

_config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="dragoman YAML config with a syftbox: section",
)


def _load(config_path: str) -> Config:
    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    if cfg.syftbox is None:
        raise click.ClickException(f"{config_path}: no syftbox: section (docs/syftbox.md)")
    return cfg


@click.group()
def syftbox() -> None:
    """Publish the models as a SyftBox router."""


@syftbox.command()
@_config_option
@click.option("--summary", default=None, help="one line syft-hub shows (default: the models)")
@click.option("--description", default=None, help="a longer description")
@click.option("--tag", "tags", multiple=True, help="a tag (repeatable)")
def publish(config_path: str, summary: str | None, description: str | None, tags: Any) -> None:
    """Write public/routers/<app_name>/metadata.json so syft-hub lists the router."""
    cfg = _load(config_path)
    assert cfg.syftbox is not None
    from .publish import publish as write
    from .service import load_client

    try:
        client = load_client(cfg.syftbox, source=cfg.source)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    path = write(cfg, client, summary=summary, description=description, tags=tags)
    click.echo(f"published {cfg.syftbox.app_name} as {client.email}: {path}")


@syftbox.command()
@_config_option
def serve(config_path: str) -> None:
    """Serve the router over SyftBox only (no HTTP port)."""
    cfg = _load(config_path)
    from ..logs import setup_logging

    setup_logging(cfg.server.log_format, cfg.server.log_level)
    try:
        asyncio.run(_serve(cfg))
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


async def _serve(cfg: Config) -> None:
    from ..library import Gateway
    from .gateway import GatewaySeam
    from .service import SyftBoxService

    assert cfg.syftbox is not None
    gateway = Gateway(cfg)
    service = SyftBoxService(
        cfg.syftbox,
        GatewaySeam(gateway),
        source=cfg.source,
        max_body_bytes=cfg.server.max_body_bytes,
    )
    try:
        await service.start()
        client = service.client
        assert client is not None
        click.echo(
            f"dragoman serving SyftBox apps routers/{cfg.syftbox.app_name} and "
            f"{cfg.syftbox.app_name} as {client.email} ({client.workspace.data_dir})"
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await service.stop()
        await gateway.aclose()
