"""Fixtures: store tests run on SQLite (a file per test) and, where the database's semantics
matter, on PostgreSQL too.

``db_url`` is a migrated, empty database. It runs on both dialects unless the test is marked
``any_dialect`` (price maths, key caches, alerts, the HTTP routes: SQLite only). PostgreSQL keeps
what depends on it: locking and concurrency, migrations, crash recovery, keys and credentials at
rest, the writer's batches and the analytics SQL.

Migrations run once per session (per xdist worker), not per test:

* SQLite: one migrated template file, copied for each test (a copy is ~0.1 ms; migrating ~25 ms);
* PostgreSQL: one migrated schema per session, emptied before each test (~2 ms). Cloning was
  measured and is no cheaper than migrating (~60 ms): DDL replay ~100 ms, ``CREATE DATABASE ...
  TEMPLATE`` 20-60 ms plus a ``DROP DATABASE`` of 0.1-2 s.

``empty_db_url`` is a database nothing has migrated yet, for the migration tests.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from dragoman.accounting import Accountant, KeyInfo, Outcome, RequestInfo, Usage
from dragoman.config import Config, load_config_dict
from dragoman.store import upgrade_async

PG = "postgresql://postgres@127.0.0.1:5432/test"
MASTER = "test-master-key-not-a-fernet-key-0123456789abcdef"


def _pg_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


PG_UP = _pg_up()
PG_DOWN = "PostgreSQL is not running on 127.0.0.1:5432"


def _run_in_thread(coro_fn: Any) -> Any:
    """Run a coroutine on a private loop in another thread (safe whatever loop is around)."""
    out: list[Any] = []
    err: list[BaseException] = []

    def go() -> None:
        try:
            out.append(asyncio.run(coro_fn()))
        except BaseException as e:
            err.append(e)

    t = threading.Thread(target=go)
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0] if out else None


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _drop_schema(name: str) -> None:
    _run_in_thread(lambda: _pg(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


def _empty_schema(name: str) -> None:
    """Every table of a migrated schema emptied (but the schema version), sequences restarted."""

    async def empty() -> None:
        import asyncpg

        conn = await asyncpg.connect(PG)
        try:
            tables = [
                r[0]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = $1 "
                    "AND tablename <> 'alembic_version'",
                    name,
                )
            ]
            seqs = [
                r[0]
                for r in await conn.fetch(
                    "SELECT sequence_name FROM information_schema.sequences "
                    "WHERE sequence_schema = $1",
                    name,
                )
            ]
            await conn.execute(
                "; ".join(
                    [f'DELETE FROM "{name}"."{t}"' for t in tables]
                    + [f'ALTER SEQUENCE "{name}"."{q}" RESTART' for q in seqs]
                )
            )
        finally:
            await conn.close()

    _run_in_thread(empty)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    dialects: list[Any] = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
    if metafunc.definition.get_closest_marker("any_dialect"):
        dialects = ["sqlite"]
    for name in ("db_url", "empty_db_url"):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, dialects, indirect=True)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "dragoman.db"
    _run_in_thread(lambda: upgrade_async(f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def _pg_schema() -> Iterator[str | None]:
    if not PG_UP:
        yield None
        return
    name = "t_" + uuid.uuid4().hex[:16]
    _run_in_thread(lambda: upgrade_async(f"{PG}?schema={name}"))
    yield name
    _drop_schema(name)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        db = tmp_path / "dragoman.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), db)
        yield f"sqlite:///{db}"
        return
    name = request.getfixturevalue("_pg_schema")
    if name is None:
        pytest.skip(PG_DOWN)
    _empty_schema(name)
    yield f"{PG}?schema={name}"


@pytest.fixture
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/dragoman.db"
        return
    if not PG_UP:
        pytest.skip(PG_DOWN)
    name = "t_" + uuid.uuid4().hex[:16]
    yield f"{PG}?schema={name}"
    _drop_schema(name)


@pytest.fixture(autouse=True)
def master_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DRAGOMAN_MASTER_KEY", MASTER)
    return MASTER


def make_config(url: str, **extra: Any) -> Config:
    data: dict[str, Any] = {
        "providers": {
            "anth": {"kind": "anthropic", "base_url": "http://127.0.0.1:9"},
            "oai": {"kind": "openai", "base_url": "http://127.0.0.1:9", "flavor": "openai"},
        },
        "models": {
            "claude-sonnet-4-5": {"provider": "anth"},
            "gpt-4o": {"provider": "oai"},
            # $1 per million input and output tokens: easy arithmetic
            "flat": {"provider": "oai", "model": "local-x", "prices": {"input": 1, "output": 1}},
        },
        "store": {"url": url, "flush_interval": 0.05},
        "auth": {"keys": ["static-secret-1"], "admin_key": "admin-secret", "key_cache_ttl": 30},
    }
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    return load_config_dict(data)


@pytest.fixture
async def acct(db_url: str) -> AsyncIterator[Accountant]:
    a = await Accountant.create(make_config(db_url))
    yield a
    await a.close()


def request_info(
    model: str = "flat",
    key: KeyInfo | None = None,
    *,
    input_tokens: int = 1000,
    max_tokens: int = 1000,
    provider: str = "oai",
    streamed: bool = False,
    rid: str | None = None,
    dialect: str = "openai",
) -> RequestInfo:
    return RequestInfo(
        request_id=rid or "req_" + uuid.uuid4().hex[:12],
        key=key,
        requested_model=model,
        model=model,
        provider=provider,
        deployment=None,
        dialect=dialect,
        streamed=streamed,
        input_tokens_estimate=input_tokens,
        max_tokens=max_tokens,
    )


def outcome(
    usage: Usage | None = None, model: str = "flat", status: int = 200, **kw: Any
) -> Outcome:
    return Outcome(
        status=status,
        usage=usage,
        model=model,
        provider=kw.pop("provider", "oai"),
        deployment=None,
        latency_ms=kw.pop("latency_ms", 12.5),
        ttft_ms=kw.pop("ttft_ms", 3.0),
        attempts=kw.pop("attempts", 1),
        error=kw.pop("error", None),
    )
