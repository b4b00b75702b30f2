"""Request ids: unique across processes (random per-process prefix) and cheap (a counter), since
one is minted for every request on the hot path (``uuid4`` costs a syscall and an object)."""

from __future__ import annotations

import itertools
import os

_PREFIX = "req_" + os.urandom(6).hex()
_COUNTER = itertools.count(1)


def request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):010x}"
