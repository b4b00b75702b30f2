"""Accounting: virtual keys, prices, holds (ledger), budgets and the usage log.

The server uses one ``Accountant`` (``await Accountant.create(config)`` at start,
``await acct.close()`` at stop). Per request::

    key = await acct.authenticate(secret)            # None: unknown / revoked / expired
    acct.check_model_allowed(key, model)             # PermissionDeniedError (403)
    hold = await acct.hold(RequestInfo(...))         # BudgetExceededError (402) names the budget
    try:
        ...call upstream...
    except Exception:
        await acct.cancel(hold, Outcome(...))        # releases the hold
        raise
    else:
        await acct.confirm(hold, Outcome(...))       # charges prices x usage

Exactly one of ``confirm``/``cancel`` per hold: a second call raises ``HoldSettledError``.
A stream cut short is *confirmed* with the usage it delivered (and its failure status).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dragoman.accounting.types import (
    Budget,
    Hold,
    HoldSettledError,
    KeyInfo,
    Outcome,
    RequestInfo,
)
from dragoman.usage import Usage

if TYPE_CHECKING:
    from dragoman.accounting.budgets import BudgetLimitError
    from dragoman.accounting.service import Accountant

__all__ = [
    "Accountant",
    "Budget",
    "BudgetLimitError",
    "Hold",
    "HoldSettledError",
    "KeyInfo",
    "Outcome",
    "RequestInfo",
    "Usage",
]


def __getattr__(name: str) -> Any:
    """The Accountant (aiohttp, SQLAlchemy, cryptography) loads only when asked for: the data
    types above stay importable by the pure translation core."""
    if name == "Accountant":
        from dragoman.accounting.service import Accountant

        return Accountant
    if name == "BudgetLimitError":
        from dragoman.accounting.budgets import BudgetLimitError

        return BudgetLimitError
    raise AttributeError(name)
