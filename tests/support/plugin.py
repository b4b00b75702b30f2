"""Reusable pytest fixtures for the fake upstreams.

Either register the whole module in the root ``conftest.py``::

    pytest_plugins = ["tests.support.plugin"]

or import a fixture *and* its module-scoped server into a test module / conftest::

    from tests.support.plugin import _vllm_server, vllm_upstream  # noqa: F401

Each fake is served once per module (cheap to reuse) and ``reset()`` before every test, so
queued replies and recorded requests never leak between tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..fakes import FakeAnthropic, FakeOpenAI


@pytest.fixture(scope="module")
def _anthropic_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def anthropic_upstream(_anthropic_server: FakeAnthropic) -> FakeAnthropic:
    _anthropic_server.reset()
    return _anthropic_server


@pytest.fixture(scope="module")
def _vllm_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("vllm") as fake:
        yield fake


@pytest.fixture
def vllm_upstream(_vllm_server: FakeOpenAI) -> FakeOpenAI:
    _vllm_server.reset()
    return _vllm_server


@pytest.fixture(scope="module")
def _openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("openai") as fake:
        yield fake


@pytest.fixture
def openai_upstream(_openai_server: FakeOpenAI) -> FakeOpenAI:
    _openai_server.reset()
    return _openai_server


@pytest.fixture(scope="module")
def _ollama_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("ollama") as fake:
        yield fake


@pytest.fixture
def ollama_upstream(_ollama_server: FakeOpenAI) -> FakeOpenAI:
    _ollama_server.reset()
    return _ollama_server
