"""What must hold after every test that drives a gateway, so cross-request state stays visible.

* every scripted upstream reply was consumed: a reply left in a fake's queue means the gateway
  answered in the upstream's place (a made-up cooldown error, say) or the test scripted the
  wrong fake;
* no deployment still counts a request in flight (streams and cancelled requests released it);
* no deployment is cooling down or counting failures, unless the test says it leaves them
  (``@pytest.mark.leaves_cooldown``): then they are cleared after it, openly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

LEAVES_COOLDOWN = "leaves_cooldown"


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``cond`` until it holds, failing after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g}s")
        time.sleep(0.005)


def assert_consumed(*fakes: Any) -> None:
    left = {f"{type(f).__name__} {f.url}": f.pending for f in fakes if f.pending}
    assert not left, (
        f"scripted upstream replies never requested: {left} (did the gateway answer in the "
        "upstream's place, or was the wrong fake scripted?)"
    )


def deployments(engine: Any) -> Iterator[Any]:
    for route in engine.models.routes.values():
        yield from route.deployments


def in_flight(engine: Any) -> dict[str, int]:
    return {d.name: d.inflight for d in deployments(engine) if d.inflight}


def assert_settled(engine: Any, timeout: float = 10.0) -> None:
    """No request in flight on any deployment (a stream releases its count just after its last
    byte, so this polls)."""
    try:
        wait_until(lambda: not in_flight(engine), timeout, "in-flight counts back to 0")
    except AssertionError:
        raise AssertionError(f"requests still counted in flight: {in_flight(engine)}") from None


def unhealthy(engine: Any) -> dict[str, str]:
    """Deployments cooling down or counting recent failures, with why."""
    now = engine.clock()
    out = {}
    for d in deployments(engine):
        if d.cooling(now) or d.failures:
            cooling = f"cooling {d.cooldown_until - now:.1f}s, " if d.cooling(now) else ""
            out[d.name] = f"{cooling}{len(d.failures)} recent failures, last error {d.last_error!r}"
    return out


def assert_healthy(engine: Any) -> None:
    bad = unhealthy(engine)
    assert not bad, (
        f"deployments left cooling down or counting failures: {bad} (mark the test "
        f"@pytest.mark.{LEAVES_COOLDOWN} if it means to)"
    )


def forget_health(engine: Any) -> None:
    """Clear cooldowns and failure counts: only after a test marked ``leaves_cooldown``."""
    for d in deployments(engine):
        d.cooldown_until = 0.0
        d.failures.clear()
