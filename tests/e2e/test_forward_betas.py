"""Issue 10 (audit #23): which ``anthropic-beta`` flags reach an Anthropic upstream, per provider
(``providers.<name>.forward_betas``: true, false, or a list of names/prefixes), and a warning,
once per process, when a forwarded flag bills beyond what the books price. Against a real
``dragoman serve`` in front of the Anthropic fake, which records the headers it receives
(docs/accounting.md, "Costs the books do not see")."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fakes import FakeAnthropic, Reply
from tests.support import http
from tests.support.serve import ServeProcess

CLIENT = "client-" + uuid.uuid4().hex
#: what Claude Code sends with ``sonnet[1m]`` (tests/fixtures), plus a code-execution flag
BETAS = (
    "claude-code-20250219,interleaved-thinking-2025-05-14,context-1m-2025-08-07,"
    "fine-grained-tool-streaming-2025-05-14,context-management-2025-06-27,"
    "code-execution-2025-08-25"
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServeProcess, FakeAnthropic]]:
    fake = FakeAnthropic(require_betas=False).start()
    cfg = tmp_path / "c.yaml"
    common = f"kind: anthropic, base_url: '{fake.url}', api_key: '{fake.api_key}'"
    cfg.write_text(
        f"auth: {{keys: ['{CLIENT}']}}\n"
        "routing: {retries: {max_retries: 0}}\n"
        "providers:\n"
        f"  every: {{{common}}}\n"
        f"  listed: {{{common}, forward_betas: [claude-code, 'interleaved-thinking-*',"
        " context-management-2025-06-27, fine-grained-tool-streaming]}\n"
        f"  none: {{{common}, forward_betas: false}}\n"
        "models:\n"
        "  m-every: {provider: every, model: claude-sonnet-4-5}\n"
        "  m-listed: {provider: listed, model: claude-sonnet-4-5}\n"
        "  m-none: {provider: none, model: claude-sonnet-4-5}\n"
        "store: {enabled: false}\n"
    )
    srv = ServeProcess(cfg).start()
    try:
        yield srv, fake
    finally:
        srv.stop()
        fake.stop()


def _send(srv: ServeProcess, fake: FakeAnthropic, model: str) -> str | None:
    fake.enqueue(Reply(content="ok"))
    r = http.post(
        srv.url + "/v1/messages?beta=true",
        {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
        {"x-api-key": CLIENT, "anthropic-version": "2023-06-01", "anthropic-beta": BETAS},
    )
    assert r.status == 200, r.body
    return fake.requests[-1].headers.get("anthropic-beta")


def test_forward_betas_all_listed_or_none(served: tuple[ServeProcess, FakeAnthropic]) -> None:
    srv, fake = served
    # the default: every flag, verbatim (Claude Code keeps every feature it asks for)
    assert _send(srv, fake, "m-every") == BETAS
    # a list: the flags equal to or starting with an entry, in the client's order
    assert _send(srv, fake, "m-listed") == (
        "claude-code-20250219,interleaved-thinking-2025-05-14,"
        "fine-grained-tool-streaming-2025-05-14,context-management-2025-06-27"
    )
    assert _send(srv, fake, "m-none") is None
    assert _send(srv, fake, "m-every") == BETAS


def test_costly_betas_are_warned_once(served: tuple[ServeProcess, FakeAnthropic]) -> None:
    srv, fake = served
    for _ in range(3):
        _send(srv, fake, "m-every")
    _send(srv, fake, "m-listed")  # keeps them out: no word about them
    out = srv.output()
    warned = [line for line in out.splitlines() if "forwarding anthropic-beta" in line]
    assert len(warned) == 2, out
    assert any("context-1m-2025-08-07" in w and "long-context" in w for w in warned), warned
    assert any("code-execution-2025-08-25" in w for w in warned), warned
    assert all("provider every" in w for w in warned), warned
