"""``dragoman db ...`` and ``dragoman keys ...``: talk to the database directly (not over HTTP).

Registered by ``dragoman.cli``: ``main.add_command(db); main.add_command(keys)``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from dragoman.config import Config, ConfigError, StoreConfig, load_config
from dragoman.store import upgrade_async
from dragoman.store.db import create_engine, utcnow
from dragoman.store.keys import KeyRepo, parse_time
from dragoman.store.master import open_key_material

T = TypeVar("T")

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="dragoman YAML config (for store.url); default: sqlite:///dragoman.db",
)


def _store(config_path: str | None) -> StoreConfig:
    if config_path is None:
        return StoreConfig()
    try:
        cfg: Config = load_config(config_path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    return cfg.store


def _with_repo(store: StoreConfig, fn: Callable[[KeyRepo], Awaitable[T]]) -> T:
    async def run() -> T:
        if store.auto_upgrade:
            await upgrade_async(store.url)
        engine = create_engine(store.url)
        try:
            km = await open_key_material(engine, store)
            if km.generated:  # the CLI sets up no logging: say it here
                click.echo(f"generated a new master key: {km.source}; back it up", err=True)
            return await fn(KeyRepo(engine, km.pepper, km.master))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except ConfigError as e:  # MasterKeyError: a missing, weak or wrong master key
        raise click.ClickException(str(e)) from None


@click.group()
def db() -> None:
    """Database schema (migrations)."""


@db.command("upgrade")
@_config_option
@click.option("--revision", default="head", show_default=True)
def db_upgrade(config_path: str | None, revision: str) -> None:
    """Migrate the database to the newest schema."""
    store = _store(config_path)
    asyncio.run(upgrade_async(store.url, revision))
    click.echo(f"database at {revision}: {_safe_url(store.url)}")


@click.group()
def keys() -> None:
    """Virtual client keys."""


@keys.command("create")
@_config_option
@click.option("--alias", default=None)
@click.option("--team", default=None)
@click.option("--owner", default=None)
@click.option("--models", default=None, help="allowed models, comma-separated (globs allowed)")
@click.option("--budget", type=float, default=None, help="budget in USD")
@click.option(
    "--budget-period",
    type=click.Choice(["daily", "weekly", "monthly", "yearly", "total"]),
    default="total",
    show_default=True,
)
@click.option("--expires", default=None, help="expiry time, ISO-8601")
@click.option("--days", type=float, default=None, help="expires after this many days")
@click.option("--metadata", default=None, help="JSON object")
@click.option("--rpm", type=click.IntRange(min=1), default=None, help="requests per minute")
@click.option("--tpm", type=click.IntRange(min=1), default=None, help="tokens per minute")
@click.option(
    "--max-concurrency", type=click.IntRange(min=1), default=None, help="requests at once"
)
def keys_create(
    config_path: str | None,
    alias: str | None,
    team: str | None,
    owner: str | None,
    models: str | None,
    budget: float | None,
    budget_period: str,
    expires: str | None,
    days: float | None,
    metadata: str | None,
    rpm: int | None,
    tpm: int | None,
    max_concurrency: int | None,
) -> None:
    """Create a key and print its secret (shown this once only)."""
    fields: dict[str, Any] = {
        "alias": alias,
        "team": team,
        "owner": owner,
        "budget_usd": budget,
        "budget_period": budget_period,
        "rpm": rpm,
        "tpm": tpm,
        "max_concurrency": max_concurrency,
    }
    if models:
        fields["allowed_models"] = [m.strip() for m in models.split(",") if m.strip()]
    if expires and days:
        raise click.UsageError("give --expires or --days, not both")
    if expires:
        try:
            fields["expires_at"] = parse_time(expires)
        except ValueError:
            raise click.UsageError(f"--expires: not an ISO-8601 time: {expires!r}") from None
    elif days:
        fields["expires_at"] = utcnow() + _dt.timedelta(days=days)
    if metadata:
        try:
            fields["metadata"] = json.loads(metadata)
        except ValueError:
            raise click.UsageError("--metadata must be a JSON object") from None

    async def go(repo: KeyRepo) -> tuple[dict[str, Any], str]:
        return await repo.create(**fields)

    try:
        pub, secret = _with_repo(_store(config_path), go)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    click.echo(f"id:     {pub['id']}", err=True)
    if pub["alias"]:
        click.echo(f"alias:  {pub['alias']}", err=True)
    click.echo("secret (shown once, store it now):", err=True)
    click.echo(secret)


@keys.command("list")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def keys_list(config_path: str | None, as_json: bool) -> None:
    """List keys (never their secrets)."""

    async def go(repo: KeyRepo) -> list[dict[str, Any]]:
        return await repo.list()

    rows = _with_repo(_store(config_path), go)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no keys")
        return
    cols: tuple[str, ...] = ("id", "alias", "team", "owner", "status", "budget_usd")
    cols += ("expires_at", "hint", "rpm", "tpm", "max_concurrency")
    table = [[str(r.get(c) if r.get(c) is not None else "-") for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for t in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)))


@keys.command("revoke")
@_config_option
@click.argument("key_id")
def keys_revoke(config_path: str | None, key_id: str) -> None:
    """Revoke a key (running gateways notice within about a second)."""

    async def go(repo: KeyRepo) -> dict[str, Any] | None:
        return await repo.revoke(key_id)

    pub = _with_repo(_store(config_path), go)
    if pub is None:
        click.echo(f"no key {key_id!r}", err=True)
        sys.exit(1)
    click.echo(f"revoked {pub['id']}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<url>"
