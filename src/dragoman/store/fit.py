"""Rows cut to fit their table: a string longer than its ``String(n)`` column makes PostgreSQL
refuse the row, and the batch it was written with (audit #10). Applied before a row is queued,
whatever the validators let through (docs/accounting.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, Table


def fit_row(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every string cut to its ``String(n)`` column's length (a copy when one is
    cut; the database would refuse the row, and the batch with it, on PostgreSQL)."""
    out = row
    for name, v in row.items():
        col = table.columns.get(name)
        if col is None or not isinstance(v, str) or not isinstance(col.type, String):
            continue
        length = col.type.length
        if length and len(v) > length:
            if out is row:
                out = dict(row)
            out[name] = v[:length]
    return out
