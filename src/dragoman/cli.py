"""The ``dragoman`` command: serve, explain a route, manage the store and keys."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from .config import Config, ConfigError, config_from_env, load_config

log = logging.getLogger("dragoman")


def _load(config: str | None) -> Config:
    try:
        if config:
            return load_config(config)
        if Path("dragoman.yaml").exists():
            return load_config("dragoman.yaml")
        return config_from_env()
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


@click.group()
@click.version_option(package_name="dragoman")
def main() -> None:
    """dragoman: an LLM gateway between the Anthropic and OpenAI dialects."""


@main.command()
@click.option("--config", "-c", type=click.Path(dir_okay=False), help="YAML config file")
@click.option("--host", default=None, help="bind address (overrides server.host)")
@click.option(
    "--port",
    type=int,
    default=None,
    help="port (overrides server.port); 0 takes a free one, named in the 'serving on' line",
)
@click.option("--require-healthy", is_flag=True, help="refuse to start while a provider is down")
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    help="processes serving the port (SO_REUSEPORT); more than 1 needs state.url",
)
@click.option("--worker", is_flag=True, hidden=True, help="one of --workers N (SO_REUSEPORT)")
def serve(
    config: str | None,
    host: str | None,
    port: int | None,
    require_healthy: bool,
    workers: int,
    worker: bool,
) -> None:
    """Start the gateway."""
    cfg = _load(config)
    if host:
        cfg.server.host = host
    if port is not None:
        cfg.server.port = port
    from .logs import setup_logging

    setup_logging(cfg.server.log_format, cfg.server.log_level)
    if workers != 1:
        from .server import workers as pool

        why = pool.refusal(cfg, workers)
        if why is not None:
            raise click.ClickException(why)
        args = [*(["--config", config] if config else []), *(["--host", host] if host else [])]
        args += ["--require-healthy"] if require_healthy else []
        sys.exit(pool.run(cfg, workers, args, banner(cfg)))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    code = asyncio.run(_serve(cfg, require_healthy, reuse_port=worker))
    sys.exit(code)


def model_table(cfg: Config) -> str:
    rows = [("model", "provider", "kind", "upstream model")]
    for name, m in cfg.models.items():
        deps = m.deployments or []
        if m.provider:
            rows.append((name, m.provider, cfg.providers[m.provider].kind, m.model or name))
        for d in deps:
            rows.append((name, d.provider, cfg.providers[d.provider].kind, d.model or name))
    for alias, target in cfg.aliases.items():
        rows.append((alias, f"-> {target}", "alias", ""))
    if cfg.default_model:
        rows.append(("(anything else)", f"-> {cfg.default_model}", "default", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def banner(cfg: Config) -> str:
    """What ``serve`` prints under its 'serving on' line."""
    if cfg.models:
        return model_table(cfg)
    return (
        "no models configured: set ANTHROPIC_API_KEY or OPENAI_API_KEY, or pass --config "
        "(see examples/)"
    )


async def build(cfg: Config) -> tuple[Any, Any]:
    """The gateway core and its accountant for a config (``bootstrap.build``)."""
    from .bootstrap import build as build_core

    try:
        return await build_core(cfg)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


async def _serve(cfg: Config, require_healthy: bool, *, reuse_port: bool = False) -> int:
    from aiohttp import web

    from .server.app import create_app
    from .server.timeouts import runner_options

    gateway, accountant = await build(cfg)
    from .server.auth_start import start_refusal, warn_if_open

    virtual = accountant is not None and accountant.virtual_keys
    refusal = start_refusal(cfg, virtual)  # auth fails closed (docs/security.md)
    if refusal is not None:
        log.error("%s", refusal)
        click.echo(f"Error: {refusal}", err=True)
        await gateway.close()
        if accountant is not None:
            await accountant.close()
        return 1
    warn_if_open(cfg, virtual)
    if accountant is not None:
        unpriced = accountant.prices.unpriced()
        if unpriced:
            log.warning(
                "unpriced models (not free: under a USD budget their requests are refused with "
                "402 until priced in accounting.prices or models.<name>.prices): %s",
                ", ".join(unpriced),
            )
    health, flavors = await asyncio.gather(gateway.check_providers(), gateway.detect_flavors())
    for name, det in flavors.items():
        log.info("provider %s is %s (%s)", name, det.flavor, det.how)
    down = []
    for name, (ok, detail) in health.items():
        if ok:
            log.info("provider %s is up (%s)", name, detail)
        else:
            log.warning("provider %s is DOWN (%s)", name, detail)
            down.append(name)
    if down and require_healthy:
        log.error("refusing to start: provider(s) down: %s", ", ".join(down))
        await gateway.close()
        if accountant is not None:
            await accountant.close()
        return 1
    app = create_app(cfg, gateway, accountant)
    runner = web.AppRunner(
        app, handler_cancellation=True, access_log=None, **runner_options(cfg.server)
    )
    await runner.setup()
    # Everything imported and built so far lives as long as the process: keep it out of the
    # cyclic collector, whose full passes over it otherwise stall the loop for tens of ms (p99).
    gc.collect()
    gc.freeze()
    site = web.TCPSite(
        runner, cfg.server.host, cfg.server.port, reuse_address=True, reuse_port=reuse_port
    )
    await site.start()
    # the port really bound (``--port 0`` asks the OS for a free one): scripts and tests read it
    # from this line instead of guessing a free port beforehand
    bound = runner.addresses[0][1] if runner.addresses else cfg.server.port
    host = f"[{cfg.server.host}]" if ":" in cfg.server.host else cfg.server.host
    click.echo(f"dragoman serving on http://{host}:{bound} ({cfg.source})")
    if not reuse_port:  # a worker of --workers N: the parent prints the table once
        click.echo(banner(cfg))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()  # closes the gateway and the accountant (app.on_cleanup)
    return 0


@main.command()
@click.option("--config", "-c", type=click.Path(dir_okay=False), help="YAML config file")
@click.option(
    "--dialect",
    type=click.Choice(["auto", "anthropic", "openai"]),
    default="auto",
    help="the request's dialect (auto: guessed from its shape)",
)
@click.argument("request", type=click.File("rb"))
def route(config: str | None, dialect: str, request: Any) -> None:
    """Explain where REQUEST.json would go, and why."""
    cfg = _load(config)
    try:
        body = orjson.loads(request.read())
    except orjson.JSONDecodeError as e:
        raise click.ClickException(f"{request.name}: not valid JSON: {e}") from None
    if dialect == "auto":
        dialect = _guess_dialect(body)
    from .bootstrap import build_gateway
    from .errors import DragomanError

    gateway = build_gateway(cfg)
    try:
        d = gateway.explain(dialect, body)
    except DragomanError as e:
        raise click.ClickException(f"{e.status} {e.type}: {e.message}") from None

    async def ask() -> None:  # flavor: auto asks each server what it is (short timeouts)
        try:
            await gateway.detect_flavors()
        finally:
            await gateway.close()

    asyncio.run(ask())
    r = d.route
    from .routing.rules import wants_thinking
    from .tokens import estimate_anthropic_request_tokens, estimate_openai_request_tokens

    est = (
        estimate_anthropic_request_tokens(body)
        if dialect == "anthropic"
        else estimate_openai_request_tokens(body)
    )
    click.echo(f"request model: {body.get('model')!r} ({dialect} dialect)")
    click.echo(
        f"request:     ~{est} input tokens, thinking "
        f"{'yes' if wants_thinking(dialect, body) else 'no'}, images "
        f"{'yes' if d.has_images else 'no'}, stream {'yes' if body.get('stream') else 'no'}"
    )
    if not cfg.routing.rules:
        click.echo("rules:       none configured")
    for why in d.reasons:
        click.echo(f"  because: {why}")
    click.echo(f"model:       {r.name}")
    click.echo(f"strategy:    {r.config.strategy}")
    for dep in r.deployments:
        kind = dep.provider.kind
        path = "pass-through" if kind == dialect else f"translated {dialect} -> {kind}"
        hints = "".join(
            f", {k} {v}" for k, v in (("rpm", dep.rpm), ("tpm", dep.tpm)) if v is not None
        )
        click.echo(
            f"deployment:  {dep.name}: provider {dep.provider.name} ({kind}), upstream model "
            f"{dep.upstream_model!r}, weight {dep.weight:g}{hints}, {path}"
        )
        det = gateway.detections[dep.provider.name]
        window = r.config.context_window
        where = "configured"
        if window is None and det.context_window(dep.upstream_model):
            window, where = det.context_window(dep.upstream_model), "reported by the server"
        click.echo(
            f"  flavor:    {det.flavor} ({det.how})"
            + (f"; context window {window} ({where})" if window else "")
        )
    rc = cfg.routing.retries
    click.echo(
        f"retries:     up to {rc.max_retries} (backoff {rc.base_delay:g}s base, "
        f"{rc.max_delay:g}s cap, full jitter) on {', '.join(map(str, rc.retry_on))}"
    )
    if r.config.fallbacks:
        click.echo(f"fallbacks:   {', '.join(r.config.fallbacks)}")
    if r.config.context_window_fallbacks:
        click.echo(f"on context overflow: {', '.join(r.config.context_window_fallbacks)}")
    if r.config.content_policy_fallbacks:
        click.echo(f"on refusal:  {', '.join(r.config.content_policy_fallbacks)}")
    if not r.vision:
        vm = r.config.vision_model
        click.echo(f"images:      {'-> ' + vm if vm else 'refused (vision: false)'}")


def _guess_dialect(body: Any) -> str:
    if not isinstance(body, dict):
        return "anthropic"
    for m in body.get("messages") or []:
        if isinstance(m, dict) and m.get("role") in ("tool", "developer"):
            return "openai"
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, list) and any(
            isinstance(p, dict) and p.get("type") in ("image_url", "tool_result", "tool_use")
            for p in c
        ):
            return (
                "openai"
                if any(isinstance(p, dict) and p.get("type") == "image_url" for p in c)
                else "anthropic"
            )
    if "system" in body or ("max_tokens" in body and "stop_sequences" in body):
        return "anthropic"
    return "anthropic" if "max_tokens" in body else "openai"


def _register_store_commands() -> None:
    try:
        from .store.cli import db, keys
    except ImportError:  # store not built yet
        return
    main.add_command(db)
    main.add_command(keys)


_register_store_commands()


def _register_syftbox_commands() -> None:
    from .syftbox.cli import syftbox  # click only: the SyftBox libraries load when a command runs

    main.add_command(syftbox)


_register_syftbox_commands()
