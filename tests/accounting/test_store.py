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
        assert await current_revision(engine) == "0005"
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


async def test_0003_keeps_one_usage_row_per_request(empty_db_url: str) -> None:
    """Rows a retried batch doubled before 0003 are reduced to one per request_id, which is
    unique from then on (audit #28)."""
    from sqlalchemy import text

    await upgrade_async(empty_db_url, "0002")
    engine = create_engine(empty_db_url)
    cols = (
        "ts, request_id, requested_model, model, provider, dialect, streamed, status, "
        "input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, "
        "usage_estimated, cost, latency_ms, attempts"
    )
    vals = (
        "'2026-12-01 00:00:00', :rid, 'm', 'm', 'p', 'openai', false, 200, 1, 1, 0, 0, "
        "false, 0.5, 1.0, 1"
    )
    try:
        async with engine.begin() as conn:
            for rid in ("a", "a", "b", "a", "b", "c"):
                await conn.execute(
                    text(f"INSERT INTO usage ({cols}) VALUES ({vals})"), {"rid": rid}
                )
        await upgrade_async(engine)
        async with engine.connect() as conn:
            got = (await conn.execute(text("SELECT request_id FROM usage ORDER BY id"))).all()
            assert [r[0] for r in got] == ["a", "b", "c"]
            idx = await conn.run_sync(lambda c: inspect(c).get_indexes("usage"))
        assert any(i["name"] == "ix_usage_request_id" and i["unique"] for i in idx)
    finally:
        await engine.dispose()
