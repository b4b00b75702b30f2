"""Table definitions (SQLAlchemy Core); the migrations in ``migrations/versions`` create these.

Timestamps are naive UTC ``DateTime`` values (SQLite has no time zones); money is USD in ``Float``
(double precision on PostgreSQL).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

#: virtual client keys; the secret is stored only as HMAC-SHA256(secret, pepper)
keys = Table(
    "keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    #: last 4 characters of the secret, to tell keys apart in listings
    Column("hint", String(8), nullable=True),
    Column("alias", String(200), nullable=True),
    Column("team", String(200), nullable=True),
    Column("owner", String(200), nullable=True),
    #: JSON list of model names, NULL = every model
    Column("allowed_models", Text, nullable=True),
    Column("budget_usd", Float, nullable=True),
    Column("budget_period", String(16), nullable=False, server_default="total"),
    #: JSON object
    Column("meta", Text, nullable=False, server_default="{}"),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=True),
    Column("revoked_at", DateTime, nullable=True),
    #: the key's own rate limits, NULL = none of its own (docs/limits.md)
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("max_concurrency", Integer, nullable=True),
)

#: provider API keys, Fernet-encrypted with a key derived from DRAGOMAN_MASTER_KEY
credentials = Table(
    "credentials",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("provider", String(200), nullable=True),
    Column("ciphertext", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

#: one row per hold: pending -> confirmed | cancelled
ledger = Table(
    "ledger",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("request_id", String(200), nullable=False),
    Column("key_id", String(40), nullable=True),
    Column("team", String(200), nullable=True),
    Column("model", String(200), nullable=False),
    Column("provider", String(200), nullable=False),
    #: the deployment the request was served by (or last tried on), as in the usage row
    Column("deployment", String(200), nullable=True),
    Column("amount_held", Float, nullable=False),
    Column("amount_final", Float, nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("resolved_at", DateTime, nullable=True),
    Column("reason", String(200), nullable=True),
    Column("transaction_token", String(500), nullable=True),
    #: the gateway process that made the hold (crash recovery settles a dead owner's holds)
    Column("owner", String(200), nullable=True),
    #: budget counters this hold reserved on: "budget_id@period_start_iso" joined by ","
    Column("budget_refs", Text, nullable=True),
    #: on a budgeted hold's pending row: the input estimate (tokens, and USD at the target's
    #: prices) and what the usage row names, for crash recovery to charge (migration 0004)
    Column("input_tokens_estimate", Integer, nullable=True),
    Column("amount_estimate", Float, nullable=True),
    Column("requested_model", String(200), nullable=True),
    Column("dialect", String(16), nullable=True),
    Column("streamed", Boolean, nullable=True),
    Index("ix_ledger_status", "status"),
    Index("ix_ledger_request_id", "request_id"),
    Index("ix_ledger_created_at", "created_at"),
)

#: one row per request
usage = Table(
    "usage",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("ts", DateTime, nullable=False),
    Column("request_id", String(200), nullable=False),
    Column("key_id", String(40), nullable=True),
    Column("key_alias", String(200), nullable=True),
    Column("team", String(200), nullable=True),
    Column("requested_model", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    Column("deployment", String(200), nullable=True),
    Column("provider", String(200), nullable=False),
    Column("dialect", String(16), nullable=False),
    Column("streamed", Boolean, nullable=False),
    Column("status", Integer, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cache_creation_input_tokens", Integer, nullable=False),
    Column("cache_read_input_tokens", Integer, nullable=False),
    Column("usage_estimated", Boolean, nullable=False),
    Column("cost", Float, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("ttft_ms", Float, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Index("ix_usage_ts", "ts"),
    Index("ix_usage_key_id", "key_id"),
    #: unique: the writer's inserts are ON CONFLICT DO NOTHING, so a batch retried counts once
    Index("ix_usage_request_id", "request_id", unique=True),
)

#: budgets: synced from the config at start (source "config") or created over the API ("api")
budgets = Table(
    "budgets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("scope", String(16), nullable=False),
    Column("target", String(200), nullable=True),
    Column("period", String(16), nullable=False),
    Column("limit_usd", Float, nullable=False),
    #: JSON list of percentages
    Column("alert_thresholds", Text, nullable=False),
    Column("webhook", Text, nullable=True),
    Column("source", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

#: per budget and period: money confirmed (spent) and held by pending requests (reserved)
budget_counters = Table(
    "budget_counters",
    metadata,
    Column("budget_id", String(64), primary_key=True),
    Column("period_start", DateTime, primary_key=True),
    Column("spent", Float, nullable=False, server_default="0"),
    Column("reserved", Float, nullable=False, server_default="0"),
)

alerts_fired = Table(
    "alerts_fired",
    metadata,
    Column("budget_id", String(64), primary_key=True),
    Column("period_start", DateTime, primary_key=True),
    Column("threshold", Float, primary_key=True),
    Column("fired_at", DateTime, nullable=False),
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

#: live gateway processes (heartbeat), for crash recovery across processes
instances = Table(
    "instances",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("started_at", DateTime, nullable=False),
    Column("heartbeat_at", DateTime, nullable=False),
)
