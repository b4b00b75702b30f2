"""Per-request payment through the SyftBox accounting service, exactly once (docs/syftbox.md).

The flow is the seed's, without its bugs: create the delegated transaction with the caller's
token *before* any model call (a bad, used or underfunded token: no model call), then confirm it
on success or cancel it on failure, never both. The SDK (``syft-accounting-sdk``) is blocking
``requests`` code without timeouts: its calls run on a thread pool, each thread with its own
client and session, and every HTTP call is bounded by ``TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, TypeVar

from ..config import ConfigError, SyftBoxAccountingConfig, SyftBoxConfig
from ..errors import BudgetExceededError, ServerError
from .blocking import run_blocking

log = logging.getLogger("dragoman.syftbox")

#: the seed's credentials file (``{"email", "password", "url"}``)
DEFAULT_CREDENTIALS = "~/.syftbox/accounting-config.json"
#: (connect, read) seconds for each accounting call: the SDK sets none
TIMEOUT = (5.0, 30.0)

T = TypeVar("T")


class PaymentError(BudgetExceededError):
    """The accounting service refused the payment (bad, used or expired token, no funds)."""


class AccountingUnavailableError(ServerError):
    """The accounting service could not be asked (down, timed out, or answered garbage)."""

    status = 503


def credentials(cfg: SyftBoxConfig, *, source: str = "<config>") -> SyftBoxAccountingConfig:
    """The router owner's accounting account: ``syftbox.accounting``, else the seed's file."""
    if cfg.accounting is not None:
        return cfg.accounting
    path = Path(DEFAULT_CREDENTIALS).expanduser()
    where = f"{source}: syftbox.accounting"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{where}: not given, and {path} does not exist (price_per_request "
            f"{cfg.price_per_request:g} needs an accounting account)"
        ) from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{where}: cannot read {path}: {e}") from None
    try:
        return SyftBoxAccountingConfig.model_validate(
            {k: data.get(k) for k in ("url", "email", "password")}
        )
    except ValueError:
        raise ConfigError(f"{where}: {path} needs non-empty url, email and password") from None


def _refusal(e: BaseException) -> Exception:
    """The error to answer for a failed accounting call (never the service's URL or auth)."""
    from syft_accounting_sdk import ServiceException

    if isinstance(e, ServiceException) and e.status_code < 500 and e.status_code != 401:
        body = e.body
        what = body.get("message") if isinstance(body, dict) else None
        return PaymentError(f"payment refused by the accounting service: {what or e.status_code}")
    # 401 is the router's own credentials: the caller can do nothing about it
    return AccountingUnavailableError("the accounting service is unavailable; try again later")


class Accounting:
    """The router owner's account: create, confirm and cancel delegated transactions."""

    def __init__(
        self,
        account: SyftBoxAccountingConfig,
        executor: Executor,
        *,
        app_name: str,
        timeout: tuple[float, float] = TIMEOUT,
    ) -> None:
        self.email = account.email
        self._account = account
        self._executor = executor
        self._app_name = app_name
        self._timeout = timeout
        self._local = threading.local()

    def _client(self) -> Any:
        """This thread's ``UserClient`` (a ``requests.Session`` is not shared between threads)."""
        client = getattr(self._local, "client", None)
        if client is None:
            from requests.adapters import HTTPAdapter
            from syft_accounting_sdk import UserClient

            timeout = self._timeout

            class Bounded(HTTPAdapter):
                def send(self, request: Any, *args: Any, **kw: Any) -> Any:
                    if kw.get("timeout") is None:
                        kw["timeout"] = timeout
                    return super().send(request, *args, **kw)

            a = self._account
            client = UserClient(url=a.url, email=a.email, password=a.password)
            # the SDK keeps its session private and sets no timeout: bound every call
            for prefix in ("http://", "https://"):
                client._session.mount(prefix, Bounded())
            self._local.client = client
        return client

    async def _run(self, fn: Callable[[], T]) -> T:
        return await run_blocking(self._executor, fn)

    async def check(self) -> None:
        """Log in once (start-up): wrong credentials are a ``ConfigError``, an unreachable
        service only a warning (it may come back before the first paid request)."""
        from syft_accounting_sdk import ServiceException

        try:
            await self._run(lambda: self._client().get_user_info())
        except ServiceException as e:
            if e.status_code == 401:
                raise ConfigError(
                    f"syftbox.accounting: the accounting service at {self._account.url} "
                    f"refused the credentials of {self.email}"
                ) from None
            log.warning("syftbox: accounting service answered %s at start", e.status_code)
        except Exception as e:
            log.warning("syftbox: accounting service unreachable at start: %r", e)

    async def create(self, *, payer: str, token: str, amount: float, endpoint: str) -> str:
        """Draw ``amount`` from ``payer`` with their token; the pending transaction's id."""

        def call() -> str:
            tx = self._client().create_delegated_transaction(
                senderEmail=payer,
                amount=amount,
                token=token,
                appName=self._app_name,
                appEpPath=endpoint,
            )
            return str(tx.id)

        try:
            return await self._run(call)
        except Exception as e:
            log.warning("syftbox: transaction for %s refused: %r", payer, e)
            raise _refusal(e) from None

    async def confirm(self, tx_id: str) -> None:
        try:
            await self._run(lambda: self._client().confirm_transaction(id=tx_id))
        except Exception as e:
            log.error("syftbox: transaction %s could not be confirmed: %r", tx_id, e)
            raise _refusal(e) from None

    async def cancel(self, tx_id: str) -> None:
        """Best effort: a failure is logged (the transaction stays pending at the service)."""
        try:
            await self._run(lambda: self._client().cancel_transaction(id=tx_id))
        except Exception as e:
            log.error("syftbox: transaction %s could not be cancelled: %r", tx_id, e)

    async def cancel_soon(self, tx_id: str, wait: float) -> None:
        """``cancel`` that gives up waiting after ``wait`` seconds (shutdown, expiry)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.cancel(tx_id)), wait)
