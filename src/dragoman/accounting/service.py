"""The Accountant: one object the engine and the server hold, over the parts of the books.

Build it with ``await Accountant.create(config)`` and close it with ``await acct.close()``. It
creates the parts, wires them and closes them in order; the work is theirs:

- ``keys.py`` (Keyring): static and virtual keys, the admin key, model allow-lists, credentials;
- ``ledger.py`` (Ledger): hold / retarget / confirm / cancel / record, reserve and settle SQL;
- ``budgets.py`` (BudgetBook): the budgets table, its index and counters;
- ``alerts.py`` (Alerts): thresholds crossed, webhooks;
- ``recovery.py`` (Recovery): instance registry, heartbeats, crash recovery, maintenance loop;
- ``usage_log.py`` (UsageLog) and ``writer.py`` (BatchWriter): usage rows, batched;
- ``queries.py`` (Queries): the analytics views;
- ``prices.py`` (PriceBook).

With ``store.enabled: false`` there is no database: keys are the static ones, holds live in
memory, nothing is written, and budgets are refused at start (they could not be enforced).
See docs/accounting.md for what a request is charged.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from dragoman.accounting.alerts import Alerts, Webhooks
from dragoman.accounting.budgets import BudgetBook
from dragoman.accounting.key_watch import KeyWatch
from dragoman.accounting.keys import Keyring
from dragoman.accounting.ledger import Ledger
from dragoman.accounting.prices import PriceBook
from dragoman.accounting.queries import Queries
from dragoman.accounting.recovery import Recovery, new_instance_id
from dragoman.accounting.spool import Spool, default_spool_path
from dragoman.accounting.types import Budget, Hold, KeyInfo, Outcome, RequestInfo
from dragoman.accounting.usage_log import UsageLog
from dragoman.accounting.writer import BatchWriter
from dragoman.config import Config, ConfigError, Prices
from dragoman.errors import ServerError
from dragoman.store import schema, upgrade_async
from dragoman.store.db import Database, create_engine, utcnow
from dragoman.store.keys import KeyRepo
from dragoman.store.master import open_key_material
from dragoman.store.secrets import master_key


class Accountant:
    """See the module docstring. ``clock`` (monotonic seconds: cache TTLs) and ``now`` (naive
    UTC: periods, expiry, row times) are injectable for tests."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], _dt.datetime] = utcnow,
    ) -> None:
        self.config = config
        self.clock = clock
        self.now = now
        self.prices = PriceBook(config)
        self.master = master_key()
        self.instance_id = new_instance_id()
        self.started = time.monotonic()
        # the store-less books; create() replaces them when the store is on
        self.keyring = Keyring(config, os.urandom(32), None, clock=clock, now=now)
        self.ledger = Ledger(config, self.prices, now=now, owner=self.instance_id)
        self.db: Database | None = None
        #: the virtual keys and credentials table (the admin API and the CLI manage them)
        self.keys: KeyRepo | None = None
        self.writer: BatchWriter | None = None
        self.budget_book: BudgetBook | None = None
        self.alerts: Alerts | None = None
        self.recovery: Recovery | None = None
        self.queries: Queries | None = None
        self.key_watch: KeyWatch | None = None
        self._closed = False

    @classmethod
    async def create(
        cls,
        config: Config,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], _dt.datetime] = utcnow,
        webhooks: Webhooks | None = None,
    ) -> Accountant:
        self = cls(config, clock=clock, now=now)
        st = config.store
        if not st.enabled:
            if config.accounting.budgets:
                raise ConfigError(
                    f"{config.source}: accounting.budgets needs the store (store.enabled: true)"
                )
            return self
        if st.auto_upgrade:
            await upgrade_async(st.url)
        engine = create_engine(st.url)
        try:
            if not st.auto_upgrade:
                await _check_revision(config, engine)
            db = Database(engine)
            km = await open_key_material(engine, st)  # MasterKeyError: wrong/weak/missing key
            self.master, pepper = km.master, km.pepper
            self.keys = KeyRepo(engine, pepper, self.master)
            self.keyring = Keyring(config, pepper, self.keys, clock=clock, now=now)
            self.key_watch = watch = KeyWatch(self.keys, self.keyring)
            await watch.poll()
            self.recovery = recovery = Recovery(db, self.instance_id, now=now)
            await recovery.register()
            self.budget_book = book = BudgetBook(config, db, now=now)
            await book.sync_config()
            await book.load()
            await recovery.recover(at_start=True)
        except BaseException:
            await engine.dispose()
            raise
        self.db = db
        spool = Spool(
            Path(st.spool_path) if st.spool_path else default_spool_path(st.url),
            st.spool_max_bytes,
            [schema.usage, schema.ledger],
        )
        self.writer = writer = BatchWriter(
            engine,
            batch_size=st.batch_size,
            flush_interval=st.flush_interval,
            queue_size=st.queue_size,
            lock=db.lock,
            spool=spool,
        )
        writer.start()
        self.alerts = Alerts(config, db, now=now, webhooks=webhooks)
        self.ledger = Ledger(
            config,
            self.prices,
            now=now,
            owner=self.instance_id,
            db=db,
            budgets=book,
            writer=writer,
            usage_log=UsageLog(writer),
            alerts=self.alerts,
        )
        self.queries = Queries(db, flush=self.flush, now=now)
        ledger = self.ledger
        recovery.start(
            [book.load, ledger.retry_unsettled, lambda: recovery.sweep_orphans(ledger.tracked)]
        )
        watch.start()
        return self

    async def close(self) -> None:
        """Settle what is still in flight (cancelled, reason "shutdown"), flush every queued row."""
        if self._closed:
            return
        self._closed = True
        if self.key_watch is not None:
            await self.key_watch.stop()
        if self.recovery is not None:
            await self.recovery.stop()
        if self.db is None:
            return
        assert self.writer is not None and self.alerts is not None and self.recovery is not None
        await self.ledger.close()
        await self.writer.close()
        await self.alerts.close()
        await self.recovery.unregister()
        await self.db.engine.dispose()

    @property
    def engine(self) -> AsyncEngine | None:
        """The database engine (None with the store off)."""
        return None if self.db is None else self.db.engine

    @property
    def recovered(self) -> int:
        """Pending holds of dead processes this instance cancelled."""
        return 0 if self.recovery is None else self.recovery.recovered

    def uptime(self) -> float:
        return round(time.monotonic() - self.started, 3)

    # ---- keys ----------------------------------------------------------------------------
    async def authenticate(self, secret: str) -> KeyInfo | None:
        return await self.keyring.authenticate(secret)

    def admin_ok(self, secret: str | None) -> bool:
        return self.keyring.admin_ok(secret)

    def check_model_allowed(self, key: KeyInfo | None, model: str) -> None:
        self.keyring.check_model_allowed(key, model)

    def invalidate_keys(self) -> None:
        self.keyring.invalidate()

    @property
    def virtual_keys(self) -> bool:
        """The store holds an unrevoked virtual key (client auth is then required)."""
        return self.keyring.virtual_keys

    async def credential(self, name: str) -> str | None:
        return await self.keyring.credential(name)

    def forget_credential(self, name: str) -> None:
        self.keyring.forget_credential(name)

    # ---- prices and holds ----------------------------------------------------------------
    def price_for(self, model: str, deployment: str | None = None) -> Prices:
        return self.prices.price_for(model, deployment)

    async def hold(self, info: RequestInfo) -> Hold:
        return await self.ledger.hold(info)

    async def retarget(self, hold: Hold, info: RequestInfo) -> Hold:
        return await self.ledger.retarget(hold, info)

    async def confirm(self, hold: Hold, outcome: Outcome) -> None:
        await self.ledger.confirm(hold, outcome)

    async def cancel(self, hold: Hold, outcome: Outcome) -> None:
        await self.ledger.cancel(hold, outcome)

    async def record(self, info: RequestInfo, outcome: Outcome) -> None:
        await self.ledger.record(info, outcome)

    async def flush(self) -> None:
        """Write every queued usage/ledger row now."""
        if self.writer is not None:
            await self.writer.flush()

    # ---- budgets -------------------------------------------------------------------------
    def budgets(self) -> list[Budget]:
        return [] if self.budget_book is None else self.budget_book.all()

    async def create_budget(
        self,
        *,
        scope: str,
        target: str | None,
        period: str,
        limit_usd: float,
        alert_thresholds: list[float] | None = None,
        webhook: str | None = None,
    ) -> Budget:
        return await self._book().create(
            scope=scope,
            target=target,
            period=period,
            limit_usd=limit_usd,
            alert_thresholds=alert_thresholds,
            webhook=webhook,
        )

    async def delete_budget(self, budget_id: str) -> bool:
        return await self._book().delete(budget_id)

    async def counters(self, budget_id: str, ps: _dt.datetime) -> tuple[float, float]:
        """(spent, reserved) of a budget for the period starting at ``ps``."""
        return await self._book().counters(budget_id, ps)

    def _book(self) -> BudgetBook:
        if self.budget_book is None:
            raise ServerError("the store is disabled", status=503, code="store_disabled")
        return self.budget_book


async def _check_revision(config: Config, engine: AsyncEngine) -> None:
    """Refuse to start on a database whose schema is not the code's (no auto upgrade)."""
    from alembic.script import ScriptDirectory

    from dragoman.store import alembic_config, current_revision

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    cur = await current_revision(engine)
    if cur != head:
        raise ConfigError(
            f"{config.source}: the database is at schema {cur or 'none'}, not {head}: "
            "run `dragoman db upgrade` (or set store.auto_upgrade: true)"
        )
