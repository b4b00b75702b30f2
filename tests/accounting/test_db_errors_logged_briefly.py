"""Audit #30: a database error's text carries no bound parameter (engines are created with
``hide_parameters=True``), and what the accounting logs of it is its type and a short message
(``store/brief.py``), never the SQL or the row (which may hold a key hash or an upstream's
echoed secret)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from dragoman.store.brief import brief
from dragoman.store.db import create_engine

SECRET = "sk-ant-api03-ROWSECRET0123456789"


async def _failing_insert(url: str) -> Exception:
    engine = create_engine(url)
    meta = sa.MetaData()
    t = sa.Table("t", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Text))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(meta.create_all)
            await conn.execute(t.insert(), [{"id": 1, "v": "a"}])
        with pytest.raises(sa.exc.IntegrityError) as ei:
            async with engine.begin() as conn:
                await conn.execute(t.insert(), [{"id": 1, "v": SECRET}])
        return ei.value
    finally:
        await engine.dispose()


async def test_db_errors_carry_no_parameters_and_log_briefly(tmp_path: Path) -> None:
    e = await _failing_insert(f"sqlite:///{tmp_path}/x.db")
    assert SECRET not in str(e)  # hide_parameters
    line = brief(e)
    assert line.startswith("IntegrityError(IntegrityError): UNIQUE constraint failed")
    assert "INSERT" not in line and SECRET not in line and len(line) < 250
