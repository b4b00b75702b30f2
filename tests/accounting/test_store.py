"""Migrations and engine helpers, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner
from sqlalchemy import inspect

from dragoman.store import async_url, create_engine, current_revision, schema, upgrade_async
from dragoman.store.cli import db, keys


def test_async_url() -> None:
    assert async_url("sqlite:///dragoman.db") == "sqlite+aiosqlite:///dragoman.db"
    assert async_url("postgresql://u:p@h:5432/d").startswith("postgresql+asyncpg://u:p@h")
    assert async_url("postgres://u@h/d").startswith("postgresql+asyncpg://")
    assert async_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert "schema" not in async_url("postgresql://u@h/d?schema=s1")


async def test_upgrade_from_empty_and_idempotent(empty_db_url: str) -> None:
    await upgrade_async(empty_db_url)
    await upgrade_async(empty_db_url)  # a second run is a no-op
    engine = create_engine(empty_db_url)
    try:
        assert await current_revision(engine) == "0003"
        async with engine.connect() as conn:
            names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert set(schema.metadata.tables) <= names
        assert "alembic_version" in names
    finally:
        await engine.dispose()


async def test_migrations_match_models(empty_db_url: str) -> None:
    """The migration creates exactly what schema.py declares (no drift)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    await upgrade_async(empty_db_url)
    engine = create_engine(empty_db_url)

    def diff(conn: Any) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, schema.metadata))

    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()


def test_cli_db_upgrade_and_keys(empty_db_url: str, tmp_path: Any) -> None:
    cfg = tmp_path / "dragoman.yaml"
    cfg.write_text(f"store:\n  url: '{empty_db_url}'\n  auto_upgrade: false\n")
    r = CliRunner().invoke(db, ["upgrade", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        keys,
        [
            "create",
            "--config",
            str(cfg),
            "--alias",
            "ci",
            "--team",
            "t1",
            "--models",
            "a,b",
            "--budget",
            "5",
            "--days",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    secret = r.stdout.strip().splitlines()[-1]
    assert secret.startswith("dg-") and len(secret) > 40
    r = CliRunner().invoke(keys, ["list", "--config", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    import json

    rows = json.loads(r.stdout)
    assert len(rows) == 1 and rows[0]["alias"] == "ci" and rows[0]["allowed_models"] == ["a", "b"]
    assert secret not in r.stdout
    r = CliRunner().invoke(keys, ["revoke", "--config", str(cfg), rows[0]["id"]])
    assert r.exit_code == 0 and "revoked" in r.stdout
    r = CliRunner().invoke(keys, ["list", "--config", str(cfg), "--json"])
    assert json.loads(r.stdout)[0]["status"] == "revoked"
    r = CliRunner().invoke(keys, ["revoke", "--config", str(cfg), "nope"])
    assert r.exit_code == 1
