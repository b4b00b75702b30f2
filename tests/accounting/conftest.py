"""Fixtures: every store test runs on SQLite (temp file) and on PostgreSQL (a schema of its own)."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from dragoman.accounting import Accountant, KeyInfo, Outcome, RequestInfo, Usage
from dragoman.config import Config, load_config_dict

PG = "postgresql://postgres@127.0.0.1:5432/test"
MASTER = "test-master-key-not-a-fernet-key"


def _pg_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


PG_UP = _pg_up()


def _run_in_thread(coro_fn: Any) -> None:
    """Run a coroutine on a private loop in another thread (safe whatever loop is around)."""
    err: list[BaseException] = []

    def go() -> None:
        try:
            asyncio.run(coro_fn())
        except BaseException as e:
            err.append(e)

    t = threading.Thread(target=go)
    t.start()
    t.join()
    if err:
        raise err[0]


def _drop_schema(name: str) -> None:
    async def drop() -> None:
        import asyncpg

        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()

    _run_in_thread(drop)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/dragoman.db"
        return
    if not PG_UP:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = "t_" + uuid.uuid4().hex[:16]
    yield f"{PG}?schema={name}"
    _drop_schema(name)


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not PG_UP:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
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
