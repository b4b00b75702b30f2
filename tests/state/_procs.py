"""One gateway-like process of ``test_shared.py``: waits until every process is ready, then
makes its admissions at once and prints how many were admitted."""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio as aioredis

from dragoman.state import Limit
from dragoman.state.redis import RedisState

LIMITS = {
    "rpm": (Limit("k:shared", rpm=30, label="key shared"), 0),
    "tpm": (Limit("k:shared", tpm=3000, label="key shared"), 100),
    "concurrency": (Limit("k:shared", concurrency=5, label="key shared"), 0),
}


async def main(url: str, prefix: str, kind: str, attempts: int, procs: int) -> None:
    st = RedisState(url, prefix=prefix)
    r = aioredis.Redis.from_url(url)
    await r.incr(prefix + "ready")
    while int(await r.get(prefix + "ready") or 0) < procs:  # noqa: ASYNC110 - another process
        await asyncio.sleep(0.002)
    lim, tokens = LIMITS[kind]
    got = await asyncio.gather(
        *(st.admit([[lim, Limit("g", rpm=10**6)]], tokens) for _ in range(attempts))
    )
    print(sum(a.admitted for a in got), sum(a.degraded for a in got), flush=True)
    await r.aclose()
    await st.close()  # leases are not returned: the concurrency test holds them


if __name__ == "__main__":
    url, prefix, kind, attempts, procs = sys.argv[1:]
    asyncio.run(main(url, prefix, kind, int(attempts), int(procs)))
