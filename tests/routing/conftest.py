"""Fixtures: fakes once per module; a fresh gateway (server or library) per test.

After each test every scripted upstream reply must have been consumed (none answered in the
upstream's place) and no deployment may still count a request in flight.

``drv`` is parametrized over ``server`` and ``library``, so each test that takes it runs through
the real HTTP server and through ``dragoman.Gateway``. ``make_driver(routing=...)`` builds one
with routing overrides (retries, cooldown).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.routing.harness import (
    DRIVERS,
    Driver,
    Fakes,
    FakeTime,
    JitterRandom,
    make_config,
    start_fakes,
)
from tests.support.invariants import assert_consumed, assert_settled


@pytest.fixture(scope="module")
def _fakes() -> Iterator[Fakes]:
    f = start_fakes()
    yield f
    f.stop()


@pytest.fixture
def fakes(_fakes: Fakes) -> Fakes:
    _fakes.reset()
    return _fakes


@pytest.fixture(params=["server", "library"])
def make_driver(request: pytest.FixtureRequest, fakes: Fakes) -> Iterator[Callable[..., Driver]]:
    made: list[Driver] = []

    def make(routing: dict[str, Any] | None = None, seed: int = 7) -> Driver:
        d = DRIVERS[request.param](make_config(fakes, routing), FakeTime(), JitterRandom(seed))
        made.append(d)
        return d

    yield make
    try:
        for d in made:
            assert_settled(d.gateway)
        assert_consumed(*fakes.all)
    finally:
        for d in made:
            d.close()


@pytest.fixture
def drv(make_driver: Callable[..., Driver]) -> Driver:
    return make_driver()
