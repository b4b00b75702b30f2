"""A virtual key's own rate limits (``rpm``, ``tpm``, ``max_concurrency``; docs/limits.md):
set through the admin API and ``dragoman keys create``, shown in key views, carried on the
``KeyInfo`` that ``limits/resolve.py`` reads. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from sqlalchemy import text

from dragoman.accounting import Accountant
from dragoman.config import LimitConfig
from dragoman.limits.resolve import Limiter
from dragoman.store import create_engine, upgrade_async
from dragoman.store.cli import keys

from .conftest import make_config
from .test_routes import ADMIN, admin_app


@pytest.fixture
async def served(db_url: str) -> AsyncIterator[tuple[Accountant, TestClient]]:
    acct = await Accountant.create(make_config(db_url))
    client = TestClient(TestServer(admin_app(acct)))
    await client.start_server()
    try:
        yield acct, client
    finally:
        await client.close()
        await acct.close()


async def test_limits_set_shown_and_carried(served: tuple[Accountant, TestClient]) -> None:
    acct, c = served
    r = await c.post(
        "/admin/keys", headers=ADMIN, json={"alias": "ci", "rpm": 30, "max_concurrency": 2}
    )
    assert r.status == 201, await r.text()
    made = await r.json()
    assert (made["rpm"], made["tpm"], made["max_concurrency"]) == (30, None, 2)
    r = await c.get(f"/admin/keys/{made['id']}", headers=ADMIN)
    got = await r.json()
    assert (got["rpm"], got["tpm"], got["max_concurrency"]) == (30, None, 2)
    info = await acct.authenticate(made["secret"])
    assert info is not None and (info.rpm, info.tpm, info.max_concurrency) == (30, None, 2)
    # the key's own fields win over the config's limit on every key (docs/limits.md)
    lim = Limiter([LimitConfig(scope="key", rpm=60, tpm=1000)]).for_request(info)
    assert [(x.rpm, x.tpm, x.concurrency) for x in lim] == [(30, 1000, 2)]

    r = await c.patch(
        f"/admin/keys/{made['id']}", headers=ADMIN, json={"tpm": 5000, "max_concurrency": None}
    )
    assert r.status == 200
    patched = await r.json()
    assert (patched["rpm"], patched["tpm"], patched["max_concurrency"]) == (30, 5000, None)
    info = await acct.authenticate(made["secret"])  # the admin API dropped the cache
    assert info is not None and (info.rpm, info.tpm, info.max_concurrency) == (30, 5000, None)
    r = await c.get("/admin/keys", headers=ADMIN)
    (listed,) = (await r.json())["keys"]
    assert (listed["rpm"], listed["tpm"], listed["max_concurrency"]) == (30, 5000, None)


@pytest.mark.any_dialect
@pytest.mark.parametrize("field", ["rpm", "tpm", "max_concurrency"])
@pytest.mark.parametrize("value", [0, -3, 1.5, "10", True, 2**31, [1]])
async def test_bad_limit_is_a_400_naming_the_field(
    served: tuple[Accountant, TestClient], field: str, value: Any
) -> None:
    acct, c = served
    r = await c.post("/admin/keys", headers=ADMIN, json={field: value})
    assert r.status == 400
    err = (await r.json())["error"]
    assert err["type"] == "invalid_request_error" and field in err["message"]
    assert acct.keys is not None and await acct.keys.list() == []  # nothing was made
    r = await c.post("/admin/keys", headers=ADMIN, json={})
    kid = (await r.json())["id"]
    r = await c.patch(f"/admin/keys/{kid}", headers=ADMIN, json={field: value})
    assert r.status == 400 and field in (await r.json())["error"]["message"]


def test_cli_create_with_limits(db_url: str, tmp_path: Path) -> None:
    cfg = tmp_path / "dragoman.yaml"
    cfg.write_text(f"store:\n  url: '{db_url}'\n")
    args = ["create", "--config", str(cfg), "--alias", "ci", "--rpm", "10", "--tpm", "2000"]
    r = CliRunner().invoke(keys, [*args, "--max-concurrency", "3"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(keys, ["list", "--config", str(cfg), "--json"])
    (row,) = json.loads(r.stdout)
    assert (row["rpm"], row["tpm"], row["max_concurrency"]) == (10, 2000, 3)
    r = CliRunner().invoke(keys, ["list", "--config", str(cfg)])
    head, line = r.stdout.splitlines()
    assert head.split()[-3:] == ["rpm", "tpm", "max_concurrency"]
    assert line.split()[-3:] == ["10", "2000", "3"]
    r = CliRunner().invoke(keys, ["create", "--config", str(cfg), "--rpm", "0"])
    assert r.exit_code == 2 and "--rpm" in r.output


async def test_0005_adds_empty_limits_to_existing_keys(empty_db_url: str) -> None:
    """Keys made before 0005 keep working, with no limits of their own."""
    await upgrade_async(empty_db_url, "0004")
    engine = create_engine(empty_db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO keys (id, key_hash, budget_period, meta, created_at) "
                    "VALUES ('key_old', 'h', 'total', '{}', '2026-12-01 00:00:00')"
                )
            )
        await upgrade_async(engine)
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT rpm, tpm, max_concurrency FROM keys"))).one()
        assert tuple(row) == (None, None, None)
    finally:
        await engine.dispose()
