"""Engine creation and small dialect helpers.

URLs: ``sqlite:///file.db`` and ``postgresql://user@host/db`` are accepted as written in the config;
the async driver (aiosqlite / asyncpg) is added here. A PostgreSQL URL may carry ``?schema=NAME``:
every connection then uses that schema (``search_path``), and ``upgrade`` creates it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Table, event, select
from sqlalchemy.dialects import postgresql as _pg
from sqlalchemy.dialects import sqlite as _sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert

from dragoman.store import schema


def utcnow() -> _dt.datetime:
    """Naive UTC now (what the tables store)."""
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)


def split_url(url: str) -> tuple[URL, str | None]:
    """The async SQLAlchemy URL for a config URL, and the PostgreSQL schema it names (if any)."""
    u = make_url(url)
    backend = u.get_backend_name()
    if backend in ("postgres", "postgresql"):
        u = u.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        u = u.set(drivername="sqlite+aiosqlite")
    schema_name = None
    if "schema" in u.query:
        raw = u.query["schema"]
        schema_name = raw if isinstance(raw, str) else raw[0]
        u = u.difference_update_query(["schema"])
    return u, schema_name


def async_url(url: str) -> str:
    u, _ = split_url(url)
    return u.render_as_string(hide_password=False)


def is_sqlite(engine: AsyncEngine | AsyncConnection) -> bool:
    return engine.dialect.name == "sqlite"


class Database:
    """An engine and the one way to write through it: ``tx()`` is a write transaction,
    serialised in-process on SQLite (where a writer locks the whole file, and two concurrent
    writers in one process would only wait on each other's busy timeout)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        #: held around every write transaction on SQLite (None on PostgreSQL); the batch writer
        #: takes it too
        self.lock: asyncio.Lock | None = asyncio.Lock() if is_sqlite(engine) else None

    @contextlib.asynccontextmanager
    async def tx(self) -> AsyncIterator[AsyncConnection]:
        if self.lock is None:
            async with self.engine.begin() as conn:
                yield conn
        else:
            async with self.lock, self.engine.begin() as conn:
                yield conn

    def connect(self) -> Any:
        """A read connection (``async with db.connect() as conn``)."""
        return self.engine.connect()


def create_engine(url: str, **kw: Any) -> AsyncEngine:
    """An async engine for a config URL (SQLite: WAL, busy timeout; PostgreSQL: schema)."""
    u, schema_name = split_url(url)
    # bound values (usage rows, key hashes) never reach an exception's text or a log (audit #30)
    kw.setdefault("hide_parameters", True)
    connect_args: dict[str, Any] = dict(kw.pop("connect_args", {}))
    if u.get_backend_name() == "sqlite":
        connect_args.setdefault("timeout", 30)
        engine = create_async_engine(u, connect_args=connect_args, **kw)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            if u.database and u.database != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if schema_name:
        settings = dict(connect_args.get("server_settings", {}))
        settings["search_path"] = schema_name
        connect_args["server_settings"] = settings
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 20)
    kw.setdefault("pool_pre_ping", True)
    return create_async_engine(u, connect_args=connect_args, **kw)


def insert_ignore(conn: AsyncConnection | AsyncEngine, table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the connection's dialect (call .values())."""
    if conn.dialect.name == "postgresql":
        return _pg.insert(table).on_conflict_do_nothing()
    return _sqlite.insert(table).on_conflict_do_nothing()


def upsert(conn: AsyncConnection, table: Table, values: dict[str, Any], keys: list[str]) -> Insert:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` setting every non-key column given."""
    mod: Any = _pg if conn.dialect.name == "postgresql" else _sqlite
    stmt = mod.insert(table).values(**values)
    upd = {k: stmt.excluded[k] for k in values if k not in keys}
    return stmt.on_conflict_do_update(index_elements=keys, set_=upd)


async def get_setting(conn: AsyncConnection, key: str) -> str | None:
    row = (
        await conn.execute(select(schema.settings.c.value).where(schema.settings.c.key == key))
    ).first()
    return None if row is None else str(row[0])


async def set_setting_if_absent(conn: AsyncConnection, key: str, value: str) -> str:
    """Store ``value`` unless the key already has one; return the value in force."""
    await conn.execute(insert_ignore(conn, schema.settings).values(key=key, value=value))
    got = await get_setting(conn, key)
    assert got is not None
    return got
