"""Virtual client keys and stored provider credentials (database side)."""

from __future__ import annotations

import builtins
import datetime as _dt
import json
import uuid
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dragoman.store import schema
from dragoman.store.db import get_setting, upsert, utcnow
from dragoman.store.secrets import decrypt, encrypt, hash_secret, new_secret

#: settings row changed with every key write: gateways poll it each second and drop their
#: cached keys when it moves (docs/security.md, revocation)
KEYS_VERSION = "keys_version"
_PERIODS = ("daily", "weekly", "monthly", "yearly", "total")
_EDITABLE = (
    "alias",
    "team",
    "owner",
    "allowed_models",
    "budget_usd",
    "budget_period",
    "metadata",
    "expires_at",
    "rpm",
    "tpm",
    "max_concurrency",
)
#: the rate-limit fields (docs/limits.md): positive integers, or null for none of the key's own
LIMIT_FIELDS = ("rpm", "tpm", "max_concurrency")
#: the largest limit the columns hold (a 32-bit integer in every database)
_LIMIT_MAX = 2**31 - 1


def _iso(v: _dt.datetime | None) -> str | None:
    return None if v is None else v.replace(tzinfo=_dt.UTC).isoformat()


def parse_time(v: Any) -> _dt.datetime | None:
    """ISO-8601 (or a datetime) -> naive UTC."""
    if v is None or v == "":
        return None
    if isinstance(v, _dt.datetime):
        d = v
    else:
        s = str(v).strip()
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        d = _dt.datetime.fromisoformat(s)
    if d.tzinfo is not None:
        d = d.astimezone(_dt.UTC).replace(tzinfo=None)
    return d


def key_public(row: Any) -> dict[str, Any]:
    """A key row as the admin API shows it (never the secret or its hash)."""
    m = row._mapping if hasattr(row, "_mapping") else row
    now = utcnow()
    status = "active"
    if m["revoked_at"] is not None:
        status = "revoked"
    elif m["expires_at"] is not None and m["expires_at"] <= now:
        status = "expired"
    return {
        "id": m["id"],
        "alias": m["alias"],
        "team": m["team"],
        "owner": m["owner"],
        "allowed_models": json.loads(m["allowed_models"]) if m["allowed_models"] else None,
        "budget_usd": m["budget_usd"],
        "budget_period": m["budget_period"],
        "metadata": json.loads(m["meta"] or "{}"),
        "hint": f"...{m['hint']}" if m["hint"] else None,
        "created_at": _iso(m["created_at"]),
        "expires_at": _iso(m["expires_at"]),
        "revoked_at": _iso(m["revoked_at"]),
        "status": status,
        "rpm": m["rpm"],
        "tpm": m["tpm"],
        "max_concurrency": m["max_concurrency"],
    }


def _validate(fields: dict[str, Any]) -> dict[str, Any]:
    """Key fields from API/CLI input -> column values; raises ValueError on bad input."""
    out: dict[str, Any] = {}
    for k, v in fields.items():
        if k not in _EDITABLE:
            raise ValueError(f"unknown field {k!r}")
        if k in ("alias", "team", "owner"):
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{k} must be a string")
            out[k] = v or None
        elif k == "allowed_models":
            if v is None:
                out[k] = None
            else:
                if isinstance(v, str):
                    v = [s.strip() for s in v.split(",") if s.strip()]
                if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
                    raise ValueError("allowed_models must be a list of model names")
                out[k] = json.dumps(v)
        elif k == "budget_usd":
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                    raise ValueError("budget_usd must be a number >= 0")
                v = float(v)
            out[k] = v
        elif k == "budget_period":
            if v not in _PERIODS:
                raise ValueError(f"budget_period must be one of {', '.join(_PERIODS)}")
            out[k] = v
        elif k == "metadata":
            if v is None:
                v = {}
            if not isinstance(v, dict):
                raise ValueError("metadata must be an object")
            out["meta"] = json.dumps(v)
        elif k in LIMIT_FIELDS:
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= _LIMIT_MAX
            ):
                raise ValueError(f"{k} must be a positive integer (at most {_LIMIT_MAX}) or null")
            out[k] = v
        elif k == "expires_at":
            try:
                out[k] = parse_time(v)
            except (TypeError, ValueError):
                raise ValueError("expires_at must be an ISO-8601 time") from None
    return out


async def _bump(conn: AsyncConnection) -> None:
    """Move the keys version (in the transaction that changed a key)."""
    await conn.execute(
        upsert(conn, schema.settings, {"key": KEYS_VERSION, "value": uuid.uuid4().hex}, ["key"])
    )


class KeyRepo:
    """CRUD on the ``keys`` and ``credentials`` tables (used by the Accountant and the CLI)."""

    def __init__(self, engine: AsyncEngine, pepper: bytes, master: str | None) -> None:
        self.engine = engine
        self.pepper = pepper
        self.master = master

    def hash(self, secret: str) -> str:
        return hash_secret(self.pepper, secret)

    # ---- client keys -----------------------------------------------------------------------
    async def create(self, **fields: Any) -> tuple[dict[str, Any], str]:
        """Create a key; returns (public view, secret). The secret is not stored."""
        values = _validate(fields)
        secret = new_secret()
        row = {
            "id": "key_" + uuid.uuid4().hex[:20],
            "key_hash": self.hash(secret),
            "hint": secret[-4:],
            "alias": None,
            "team": None,
            "owner": None,
            "allowed_models": None,
            "budget_usd": None,
            "budget_period": "total",
            "meta": "{}",
            "created_at": utcnow(),
            "expires_at": None,
            "revoked_at": None,
            "rpm": None,
            "tpm": None,
            "max_concurrency": None,
        }
        row.update(values)
        async with self.engine.begin() as conn:
            await conn.execute(schema.keys.insert().values(**row))
            await _bump(conn)
        return key_public(row), secret

    async def list(self, include_revoked: bool = True) -> list[dict[str, Any]]:
        q = select(schema.keys).order_by(schema.keys.c.created_at, schema.keys.c.id)
        if not include_revoked:
            q = q.where(schema.keys.c.revoked_at.is_(None))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [key_public(r) for r in rows]

    async def get(self, key_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(schema.keys).where(schema.keys.c.id == key_id))
            ).first()
        return None if row is None else key_public(row)

    async def lookup(self, key_hash: str) -> Any | None:
        """The raw row for a secret's hash (or None)."""
        async with self.engine.connect() as conn:
            return (
                await conn.execute(select(schema.keys).where(schema.keys.c.key_hash == key_hash))
            ).first()

    async def version(self) -> tuple[str | None, bool]:
        """(the keys version, whether any unrevoked virtual key exists): one cheap read a
        second, so a revocation anywhere reaches every gateway within about a second."""
        K = schema.keys.c
        async with self.engine.connect() as conn:
            v = await get_setting(conn, KEYS_VERSION)
            # expired keys count too: they say the operator wants auth (fail closed)
            any_key = (await conn.execute(select(exists().where(K.revoked_at.is_(None))))).scalar()
        return v, bool(any_key)

    async def update(self, key_id: str, **fields: Any) -> dict[str, Any] | None:
        values = _validate(fields)
        async with self.engine.begin() as conn:
            if values:
                await conn.execute(
                    update(schema.keys).where(schema.keys.c.id == key_id).values(**values)
                )
                await _bump(conn)
            row = (
                await conn.execute(select(schema.keys).where(schema.keys.c.id == key_id))
            ).first()
        return None if row is None else key_public(row)

    async def revoke(self, key_id: str) -> dict[str, Any] | None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.keys)
                .where(schema.keys.c.id == key_id, schema.keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            await _bump(conn)
            row = (
                await conn.execute(select(schema.keys).where(schema.keys.c.id == key_id))
            ).first()
        return None if row is None else key_public(row)

    # ---- provider credentials --------------------------------------------------------------
    async def put_credential(self, name: str, secret: str, provider: str | None = None) -> dict:
        token = encrypt(self.master, secret)  # raises MasterKeyMissingError
        now = utcnow()
        async with self.engine.begin() as conn:
            existing = (
                await conn.execute(
                    select(schema.credentials.c.created_at).where(schema.credentials.c.name == name)
                )
            ).first()
            created = existing[0] if existing else now
            await conn.execute(
                upsert(
                    conn,
                    schema.credentials,
                    {
                        "name": name,
                        "provider": provider,
                        "ciphertext": token,
                        "created_at": created,
                        "updated_at": now,
                    },
                    ["name"],
                )
            )
        return {
            "name": name,
            "provider": provider,
            "created_at": _iso(created),
            "updated_at": _iso(now),
        }

    async def get_credential(self, name: str) -> str | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(schema.credentials.c.ciphertext).where(schema.credentials.c.name == name)
                )
            ).first()
        return None if row is None else decrypt(self.master, row[0])

    async def list_credentials(self) -> builtins.list[dict[str, Any]]:
        c = schema.credentials.c
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(c.name, c.provider, c.created_at, c.updated_at).order_by(c.name)
                )
            ).all()
        return [
            {
                "name": r.name,
                "provider": r.provider,
                "created_at": _iso(r.created_at),
                "updated_at": _iso(r.updated_at),
            }
            for r in rows
        ]

    async def delete_credential(self, name: str) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(
                delete(schema.credentials).where(schema.credentials.c.name == name)
            )
        return bool(res.rowcount)
