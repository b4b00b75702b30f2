"""The on-disk spool: usage and ledger rows the database refused while it was away.

When a batch cannot be written because the database is unreachable, the writer appends its rows
here (one JSON line per row) instead of dropping them, and replays the file once the database
answers again, or at the next start if the process stopped first. The file is bounded
(``store.spool_max_bytes``); beyond it rows wait in the in-memory queue, and only when that is
full too are they dropped (counted, logged). Replaying is safe to repeat: every insert is
``ON CONFLICT DO NOTHING`` on the row's id (ledger) or ``request_id`` (usage), so a row written
twice counts once (docs/accounting.md, "A database outage").

Several processes may share a spool path: appends hold an exclusive ``flock`` on the file, and a
replay first renames the file aside under that lock (appenders that opened the old file reopen
it), so no line is lost between reading and deleting. All file work runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import fcntl
import glob
import hashlib
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import DateTime, Table

log = logging.getLogger("dragoman.accounting")

Row = tuple[Table, dict[str, Any]]


def default_spool_path(url: str) -> Path:
    """Next to a SQLite file; else in the state directory (``$XDG_STATE_HOME/dragoman``),
    one file per database URL."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url.removeprefix("sqlite:///") + ".spool")
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local/state")
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(base) / "dragoman" / f"usage-{digest}.spool"


class Spool:
    """A bounded append-only file of rows, keyed back to their tables by name."""

    def __init__(self, path: Path, max_bytes: int, tables: list[Table]) -> None:
        self.path = path
        self.max_bytes = max(0, max_bytes)
        self.tables = {t.name: t for t in tables}
        self._dates = {
            t.name: tuple(c.name for c in t.columns if isinstance(c.type, DateTime)) for t in tables
        }

    # ---- appending -----------------------------------------------------------------------
    async def append(self, rows: list[Row]) -> int:
        """Write rows to the file; returns how many fit under the cap (the first ones)."""
        if not rows or not self.max_bytes:
            return 0
        return await asyncio.to_thread(self._append, rows)

    def _append(self, rows: list[Row]) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                        continue  # renamed aside for a replay meanwhile: reopen
                except FileNotFoundError:
                    continue
                size = os.fstat(fd).st_size
                lines: list[bytes] = []
                for table, row in rows:
                    line = orjson.dumps({"t": table.name, "r": row}) + b"\n"
                    if size + len(line) > self.max_bytes:
                        break
                    size += len(line)
                    lines.append(line)
                if lines:
                    os.write(fd, b"".join(lines))
                    os.fsync(fd)
                return len(lines)
            finally:
                os.close(fd)  # also releases the lock

    # ---- replaying -----------------------------------------------------------------------
    def pending(self) -> bool:
        """Whether anything waits in the spool (its file, or one being replayed)."""
        return self._size(self.path) > 0 or bool(self._aside())

    async def take(self) -> list[tuple[Path, list[Row]]]:
        """Move the spool aside and read it (and what an interrupted replay left): files whose
        rows, once written, the caller deletes with ``done``."""
        return await asyncio.to_thread(self._take)

    def _take(self) -> list[tuple[Path, list[Row]]]:
        if self._size(self.path) > 0:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                with contextlib.suppress(FileNotFoundError):
                    os.rename(self.path, f"{self.path}.replay-{uuid.uuid4().hex[:12]}")
            finally:
                os.close(fd)
        out = []
        for name in self._aside():
            p = Path(name)
            try:
                out.append((p, self._read(p)))
            except OSError as e:
                log.error("cannot read the usage spool %s: %s", p, e)
        return out

    def _read(self, p: Path) -> list[Row]:
        rows: list[Row] = []
        with open(p, "rb") as f:
            for line in f:
                try:
                    obj = orjson.loads(line)
                    table = self.tables[obj["t"]]
                    row = obj["r"]
                    for c in self._dates[table.name]:
                        if isinstance(row.get(c), str):
                            row[c] = _dt.datetime.fromisoformat(row[c])
                    rows.append((table, row))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    log.error("usage spool %s: skipped an unreadable line", p)  # a torn write
        return rows

    async def done(self, p: Path) -> None:
        await asyncio.to_thread(lambda: p.unlink(missing_ok=True))

    def _aside(self) -> list[str]:
        return sorted(glob.glob(glob.escape(str(self.path)) + ".replay-*"))

    @staticmethod
    def _size(p: Path) -> int:
        try:
            return p.stat().st_size
        except OSError:
            return 0
