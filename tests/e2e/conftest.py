"""Fixtures: one dragoman stack per module (see harness.py), reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.e2e.harness import Stack, start_stack, stop_stack


@pytest.fixture(scope="module")
def _stack() -> Iterator[Stack]:
    s = start_stack()
    yield s
    stop_stack(s)


@pytest.fixture
def stack(_stack: Stack) -> Stack:
    _stack.reset()
    return _stack
