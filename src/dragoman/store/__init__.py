"""Persistence: SQLAlchemy 2 (async) over SQLite (default) or PostgreSQL, with Alembic migrations.

``upgrade(url)`` / ``await upgrade_async(url)`` bring a database to the newest schema; the
migration scripts live in ``dragoman/store/migrations``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dragoman.store import schema
from dragoman.store.db import async_url, create_engine, split_url, utcnow

__all__ = [
    "alembic_config",
    "async_url",
    "create_engine",
    "current_revision",
    "schema",
    "split_url",
    "upgrade",
    "upgrade_async",
    "utcnow",
]

_HERE = Path(__file__).resolve().parent
#: PostgreSQL advisory lock id taken while migrating (two processes starting at once)
_MIGRATE_LOCK = 0x647261676F6D616E  # "dragoman"
_MIGRATE_LOCK = _MIGRATE_LOCK & 0x7FFFFFFFFFFFFFFF


def alembic_config(url: str | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _upgrade_sync(connection: Any, revision: str) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def upgrade_async(url_or_engine: str | AsyncEngine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: the newest)."""
    own = isinstance(url_or_engine, str)
    engine = create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    schema_name = split_url(url_or_engine)[1] if isinstance(url_or_engine, str) else None
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATE_LOCK})"))
                if schema_name:
                    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema_name}"'))
            await conn.run_sync(_upgrade_sync, revision)
    finally:
        if own:
            await engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Synchronous ``upgrade_async`` (for the CLI; do not call from a running event loop)."""
    asyncio.run(upgrade_async(url, revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    def _rev(connection: Any) -> str | None:
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_rev)
