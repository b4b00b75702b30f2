"""A usage row whose client-chosen strings are longer than their columns is cut to fit, not
refused: on PostgreSQL a refused row fails its whole batch, and the rows of every other request
written with it (audit #10)."""

from __future__ import annotations

import dataclasses

from dragoman.accounting import Accountant
from dragoman.store import schema
from dragoman.usage import Usage

from .conftest import outcome, request_info
from .test_ledger import rows


async def test_a_long_requested_model_is_cut_and_the_batch_is_written(acct: Accountant) -> None:
    long_name = "claude-" + "x" * 300
    odd = dataclasses.replace(request_info(), requested_model=long_name)
    for info in (request_info(), odd, request_info()):
        h = await acct.hold(info)
        await acct.confirm(h, outcome(Usage(input_tokens=10, output_tokens=5)))
    await acct.flush()
    got = sorted(r.requested_model for r in await rows(acct, schema.usage))
    assert got == sorted(["flat", "flat", long_name[:200]])


async def test_nul_characters_are_dropped(acct: Accountant) -> None:
    """PostgreSQL refuses NUL in text: a refused request's row names the model it asked for."""
    odd = dataclasses.replace(request_info(), requested_model="a\x00b")
    h = await acct.hold(odd)
    await acct.confirm(h, outcome(Usage(input_tokens=10), error="bad \x00 byte"))
    await acct.flush()
    (row,) = await rows(acct, schema.usage)
    assert (row.requested_model, row.error) == ("ab", "bad  byte")
