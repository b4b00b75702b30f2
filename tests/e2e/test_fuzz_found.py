"""What tests/fuzz/test_schemathesis.py found, each pinned through the real server (with the
store on, as ``dragoman serve`` runs by default: the books see every request)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.harness import KEY, Stack, start_stack, stop_stack
from tests.support import http


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    db = Path(tmp_path_factory.mktemp("found")) / "found.db"
    s = start_stack({"store": {"url": f"sqlite:///{db}", "flush_interval": 0.05}}, store=True)
    try:
        yield s
    finally:
        stop_stack(s)


def test_wrong_typed_tool_description_translated_is_a_400_not_a_500(books: Stack) -> None:
    # an OpenAI client to an Anthropic-kind model: the translation fails (400), and estimating
    # the request for its usage row raised on the int description (500)
    body = {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "description": -1053}}],
    }
    r = http.post(books.url + "/v1/chat/completions", body, {"authorization": f"Bearer {KEY}"})
    assert r.status == 400, r.body[:300]
    assert r.json()["error"]["type"] == "invalid_request_error"
