"""The thread pool for the transport's blocking calls: file I/O and the accounting SDK."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def pool(workers: int) -> ThreadPoolExecutor:
    """Threads for ``workers`` requests' blocking calls (one at a time each), and a few spare."""
    return ThreadPoolExecutor(workers + 4, thread_name_prefix="dragoman-syftbox")


async def run_blocking(executor: Executor, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` off the event loop. After a stop has shut ``executor`` down, the loop's
    default pool takes the call: a request finishing late (a payment being confirmed) must
    still be able to write its answer."""
    loop = asyncio.get_running_loop()
    call = functools.partial(fn, *args)
    try:
        return await loop.run_in_executor(executor, call)
    except RuntimeError:  # "cannot schedule new futures after shutdown"
        return await loop.run_in_executor(None, call)
