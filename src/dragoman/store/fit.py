"""Rows cut to fit their table: a string longer than its ``String(n)`` column, or holding a NUL
character, makes PostgreSQL refuse the row, and the batch it was written with (audit #10).
Applied before a row is queued, whatever the validators let through (docs/accounting.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, Table


def fit_row(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with NUL characters dropped from its strings and every string cut to its
    ``String(n)`` column's length (a copy when something changed)."""
    out = row
    for name, v in row.items():
        col = table.columns.get(name)
        if col is None or not isinstance(v, str):
            continue
        fitted = v.replace("\x00", "") if "\x00" in v else v
        length = col.type.length if isinstance(col.type, String) else None
        if length and len(fitted) > length:
            fitted = fitted[:length]
        if fitted is not v:
            if out is row:
                out = dict(row)
            out[name] = fitted
    return out
