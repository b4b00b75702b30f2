"""One dragoman stack (server + four fakes) per test module, reset before every test; after
every test, the invariants of ``tests/support/invariants.py`` on every stack it used; the SDK
clients a module made (one per kind and gateway, drive.py) are closed at its end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.conformance.drive import close_clients
from tests.e2e.harness import Stack, check_stacks, start_stack, stop_stack


@pytest.fixture(scope="module", autouse=True)
def _sdk_clients() -> Iterator[None]:
    yield
    close_clients()


@pytest.fixture(scope="module")
def _cf_stack() -> Iterator[Stack]:
    s = start_stack()
    yield s
    stop_stack(s)


@pytest.fixture
def stack(_cf_stack: Stack) -> Stack:
    _cf_stack.reset()
    return _cf_stack


@pytest.fixture(autouse=True)
def _invariants(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    check_stacks(request)
