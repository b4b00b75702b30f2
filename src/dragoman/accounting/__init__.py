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

from dragoman.accounting.accountant import Accountant, BudgetLimitError
from dragoman.accounting.budgets import Budget
from dragoman.accounting.types import Hold, HoldSettledError, KeyInfo, Outcome, RequestInfo
from dragoman.accounting.usage import Usage

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
