"""CPU per request of a rate-limit admission (+ its settle) on each state backend.

    PYTHONPATH=src python bench/state_admission.py [--requests 20000] [--concurrency 1,4,32]
        [--redis redis://127.0.0.1:6379/0]

Each simulated request admits on two limits (a key's rpm + tpm + concurrency, and the global
rpm), yields to the loop once (the upstream call), and settles with its real tokens: what the
limits stage will do. The figure is process CPU (user + system, so the loopback syscalls to
Redis count) per request, minus the same loop without any state. Target (issue 11): at most
+0.05 ms per request in the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
from typing import Any

from dragoman.state import Limit, MemoryState, State
from dragoman.state.redis import RedisState

LIMITS = [
    [
        Limit("k:bench", rpm=10**9, tpm=10**12, concurrency=10**6, label="key"),
        Limit("g", rpm=10**9, label="gateway"),
    ]
]


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


async def run(state: State | None, n: int, conc: int) -> tuple[float, float]:
    done = 0

    async def worker() -> None:
        nonlocal done
        while done < n:
            done += 1
            if state is None:
                await asyncio.sleep(0)
                continue
            a = await state.admit(LIMITS, 100)
            await asyncio.sleep(0)
            if a.ticket is not None:
                state.settle(a.ticket, 90)

    u0, s0 = _cpu()
    await asyncio.gather(*(worker() for _ in range(conc)))
    if state is not None:
        await state.drain()
    u1, s1 = _cpu()
    return (u1 - u0) / n * 1e6, (s1 - s0) / n * 1e6


async def main(args: Any) -> None:
    print("| backend | concurrency | user us/req | system us/req | total over baseline |")
    print("|---|---|---|---|---|")
    for conc in (int(c) for c in args.concurrency.split(",")):
        bu, bs = await run(None, args.requests, conc)
        states: list[tuple[str, State]] = [("memory", MemoryState())]
        if args.redis:
            prefix = f"dragoman-bench:{os.getpid()}:{time.monotonic_ns()}:"
            states.append(("redis", RedisState(args.redis, prefix=prefix)))
        for name, st in states:
            await run(st, min(args.requests, 2000), conc)  # warm up (script load, connections)
            u, s = await run(st, args.requests, conc)
            print(f"| {name} | {conc} | {u - bu:.1f} | {s - bs:.1f} | +{u + s - bu - bs:.1f} us |")
            await st.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--concurrency", default="1,4,32")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' to skip Redis")
    args = p.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(main(args))
