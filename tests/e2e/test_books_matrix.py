"""Charge what was delivered, on every path (docs: README "Keys, budgets and costs").

{A->A, A->O, O->O, O->A} x {client leaves before the first byte, client leaves mid-stream,
upstream aborts mid-stream, upstream sends no usage}, through the official SDKs (raw sockets
where a client must leave before any byte), the store on (a real Accountant on SQLite and
PostgreSQL), each case on a virtual key of its own with a budget (so its hold is a pending
ledger row and a budget reservation). Each case asserts exactly one usage row and one ledger row,
their status, output tokens against the text really delivered, a cost at the configured prices
(> 0 whenever something reached an upstream), the ``usage_estimated`` flag, and that the budget
was charged exactly that cost with nothing left reserved.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from tests.e2e import books
from tests.e2e.harness import Stack
from tests.fakes import ChatReply, RawStream, Reply, text_block
from tests.fakes import tokens as fake_tokens

from dragoman.tokens import estimate_anthropic_request_tokens, estimate_openai_request_tokens

PRICES = {
    "coder": {"input": 1.0, "output": 2.0},
    "claude-sonnet-4-5": {"input": 3.0, "output": 15.0},
}
TEXT = "tok " * 150
PROMPT = "count slowly please " * 20

PATHS = {
    # name: (client dialect, model, upstream fake attribute)
    "A->A": ("anthropic", "claude-sonnet-4-5", "anthropic_fake"),
    "A->O": ("anthropic", "coder", "vllm"),
    "O->O": ("openai", "coder", "vllm"),
    "O->A": ("openai", "claude-sonnet-4-5", "anthropic_fake"),
}


@pytest.fixture(scope="module", params=books.DB_PARAMS)
def bstack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, str]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRAGOMAN_MASTER_KEY", books.MASTER)
        with books.database(request.param, tmp_path_factory.mktemp("books")) as url:
            s, url = books.books_stack(url, accounting={"prices": PRICES})
            try:
                yield s, url
            finally:
                books.stop(s)


def _body(dialect: str, model: str, stream: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": stream,
        "max_tokens": 1000,
    }
    return body


def _input_estimate(dialect: str, body: dict[str, Any]) -> int:
    if dialect == "anthropic":
        return estimate_anthropic_request_tokens(body)
    return estimate_openai_request_tokens(body)


def _client(s: Stack, dialect: str, secret: str) -> Any:
    if dialect == "anthropic":
        return anthropic.Anthropic(base_url=s.url, api_key=secret, max_retries=0, timeout=30)
    return openai.OpenAI(base_url=s.url + "/v1", api_key=secret, max_retries=0, timeout=30)


def _stream_text(client: Any, dialect: str, body: dict[str, Any], stop_after: int | None) -> str:
    """Read a stream through the SDK, collecting its text; leave after ``stop_after`` chars
    (closing the response, as an SDK user who breaks out of the loop does). An error event
    ends the reading too (the SDK raises it)."""
    got = ""
    kw = {k: v for k, v in body.items() if k != "stream"}
    try:
        if dialect == "anthropic":
            stream = client.messages.create(**kw, stream=True)
            try:
                for ev in stream:
                    if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                        got += ev.delta.text
                        if stop_after is not None and len(got) >= stop_after:
                            break
            finally:
                stream.close()
        else:
            stream = client.chat.completions.create(**kw, stream=True)
            try:
                for chunk in stream:
                    got += chunk.choices[0].delta.content or ""
                    if stop_after is not None and len(got) >= stop_after:
                        break
            finally:
                stream.close()
    except (anthropic.APIError, openai.APIError):
        pass
    return got


def _leave_before_first_byte(s: Stack, path: str, body: dict[str, Any], secret: str, fake: Any):
    data = json.dumps(body).encode()
    host, port = s.url.removeprefix("http://").split(":")
    n = len(fake.requests)
    sock = socket.create_connection((host, int(port)))
    try:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"x-api-key: {secret}\r\nanthropic-version: 2023-06-01\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        fake.wait_for_requests(n + 1, timeout=10)  # the upstream is working on it
    finally:
        sock.close()


SCENARIOS = [
    "leaves_before_first_byte",
    "leaves_mid_stream",
    # a broken stream counts against its deployment's health (and is cleared after the test)
    pytest.param("upstream_aborts", marks=pytest.mark.leaves_cooldown),
    "no_usage",
]


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("path", list(PATHS))
def test_charged_for_what_was_delivered(
    bstack: tuple[Stack, str], path: str, scenario: str
) -> None:
    s, url = bstack
    s.reset()
    dialect, model, fake_attr = PATHS[path]
    fake = getattr(s, fake_attr)
    anth = fake_attr == "anthropic_fake"
    key = books.new_key(s, budget=100.0)
    body = _body(dialect, model)
    endpoint = "/v1/messages" if dialect == "anthropic" else "/v1/chat/completions"
    client = _client(s, dialect, key.secret)

    delivered = ""
    if scenario == "leaves_before_first_byte":
        fake.enqueue(
            Reply(content=[text_block(TEXT)], first_byte_delay=5)
            if anth
            else ChatReply(content=TEXT, first_byte_delay=5)
        )
        _leave_before_first_byte(s, endpoint, body, key.secret, fake)
    elif scenario == "leaves_mid_stream":
        fake.enqueue(
            Reply(content=[text_block(TEXT)], text_chunk=4, event_delay=0.05)
            if anth
            else ChatReply(content=TEXT, text_chunk=4, event_delay=0.05)
        )
        delivered = _stream_text(client, dialect, body, stop_after=80)
        assert 80 <= len(delivered) < len(TEXT) // 2
    elif scenario == "upstream_aborts":
        fake.enqueue(
            Reply(content=[text_block(TEXT)], text_chunk=4, cut_after=40, cut_mode="abort")
            if anth
            else ChatReply(content=TEXT, text_chunk=4, cut_after=40, cut_mode="abort")
        )
        delivered = _stream_text(client, dialect, body, stop_after=None)
        assert 0 < len(delivered) < len(TEXT)
    else:
        raw = books.anthropic_sse(TEXT) if anth else books.openai_sse(TEXT)
        fake.enqueue(RawStream(raw))
        delivered = _stream_text(client, dialect, body, stop_after=None)
        assert delivered == TEXT

    where = f"key_id = '{key.id}'"

    def settled() -> list[Any]:
        rows = books.usage_rows(s, url, where)
        pending = books.ledger_rows(s, url, where + " AND status = 'pending'", "id")
        inflight = s.gateway.models.get(model).deployments[0].inflight
        return rows if rows and not pending and inflight == 0 else []

    books.wait_until(settled, f"the books of {path} {scenario}")
    rows = books.usage_rows(s, url, where)
    assert len(rows) == 1, rows  # exactly one settlement...
    row = rows[0]
    ledger = books.ledger_rows(s, url, where, "request_id, status, amount_final")
    assert len(ledger) == 1, ledger  # ...and exactly one ledger row, confirmed at that cost
    assert (ledger[0].request_id, ledger[0].status) == (row.request_id, "confirmed")
    assert ledger[0].amount_final == pytest.approx(row.cost)

    expected_status = {
        "leaves_before_first_byte": 499,
        "leaves_mid_stream": 499,
        # the upstream reset the connection: the stream broke (OverloadedError, as classified)
        "upstream_aborts": 529,
        "no_usage": 200,
    }[scenario]
    assert row.status == expected_status
    assert bool(row.usage_estimated) is True
    assert bool(row.streamed) is True
    est_in = _input_estimate(dialect, body)
    truth_out = fake_tokens.count_text(delivered)
    if scenario == "leaves_before_first_byte":
        # nothing reached the client, but the upstream had the prompt: the input estimate
        assert (row.input_tokens, row.output_tokens) == (est_in, 0)
    else:
        # the input as the upstream reported it (Anthropic's message_start), else estimated
        upstream_in = fake.count_tokens(fake.last_request.json) if anth else None
        assert row.input_tokens in (est_in, upstream_in)
        # output: what was delivered, erring high but nowhere near the whole answer
        assert truth_out <= row.output_tokens <= 2 * truth_out + 12, (row, truth_out)
    p = PRICES[model]
    cost = (row.input_tokens * p["input"] + row.output_tokens * p["output"]) / 1e6
    assert row.cost == pytest.approx(cost, rel=1e-9)
    assert row.cost > 0
    spent, reserved = books.query(
        url, f"SELECT spent, reserved FROM budget_counters WHERE budget_id = 'key-{key.id}'"
    )[0]
    assert spent == pytest.approx(row.cost) and reserved == pytest.approx(0.0)


def _json_reply(anth: bool) -> RawStream:
    """A complete (non-streamed) answer without any usage."""
    if anth:
        body: dict[str, Any] = {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
        }
    else:
        body = {
            "id": "chatcmpl-0123456789abcdef",
            "object": "chat.completion",
            "created": 1735689600,
            "model": "qwen3-coder",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": TEXT},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
        }
    return RawStream(json.dumps(body).encode(), content_type="application/json")


@pytest.mark.parametrize("scenario", ["leaves_mid_call", "no_usage"])
@pytest.mark.parametrize("path", list(PATHS))
def test_non_stream_charged_for_what_was_delivered(
    bstack: tuple[Stack, str], path: str, scenario: str
) -> None:
    """A non-streamed call the client abandons while the upstream works is charged at least
    the input estimate; an answer without usage is charged at an estimate of its text (and
    on A->O the books agree with the usage the client was shown)."""
    s, url = bstack
    s.reset()
    dialect, model, fake_attr = PATHS[path]
    fake = getattr(s, fake_attr)
    anth = fake_attr == "anthropic_fake"
    key = books.new_key(s, budget=100.0)
    body = _body(dialect, model, stream=False)
    endpoint = "/v1/messages" if dialect == "anthropic" else "/v1/chat/completions"
    shown = None
    if scenario == "leaves_mid_call":
        fake.enqueue(
            Reply(content=[text_block(TEXT)], first_byte_delay=5)
            if anth
            else ChatReply(content=TEXT, first_byte_delay=5)
        )
        _leave_before_first_byte(s, endpoint, body, key.secret, fake)
    else:
        fake.enqueue(_json_reply(anth))
        client = _client(s, dialect, key.secret)
        kw = {k: v for k, v in body.items() if k != "stream"}
        if dialect == "anthropic":
            msg = client.messages.create(**kw)
            assert msg.content[0].text == TEXT
            shown = msg.usage
        else:
            done = client.chat.completions.create(**kw)
            assert done.choices[0].message.content == TEXT

    where = f"key_id = '{key.id}'"

    def settled() -> list[Any]:
        pending = books.ledger_rows(s, url, where + " AND status = 'pending'", "id")
        return books.usage_rows(s, url, where) if not pending else []

    books.wait_until(settled, f"the books of {path} {scenario}")
    rows = books.usage_rows(s, url, where)
    assert len(rows) == 1, rows
    row = rows[0]
    ledger = books.ledger_rows(s, url, where, "status, amount_final")
    assert [(r.status, r.amount_final) for r in ledger] == [("confirmed", pytest.approx(row.cost))]
    assert bool(row.usage_estimated) is True and bool(row.streamed) is False
    est_in = _input_estimate(dialect, body)
    if scenario == "leaves_mid_call":
        assert (row.status, row.input_tokens, row.output_tokens) == (499, est_in, 0)
    else:
        truth = fake_tokens.count_text(TEXT)
        assert row.status == 200 and row.input_tokens == est_in
        assert truth <= row.output_tokens <= 2 * truth + 12
        if path == "A->O":  # the usage the client was shown is the usage charged
            assert shown is not None
            assert (shown.input_tokens, shown.output_tokens) == (est_in, row.output_tokens)
    p = PRICES[model]
    cost = (row.input_tokens * p["input"] + row.output_tokens * p["output"]) / 1e6
    assert row.cost == pytest.approx(cost, rel=1e-9) and row.cost > 0


@pytest.mark.parametrize("asked", [False, True], ids=["not-asked", "asked"])
@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
def test_o2o_usage_chunk_billed_and_hidden_unless_asked(
    bstack: tuple[Stack, str], spaced: bool, asked: bool
) -> None:
    """O->O streams: dragoman asks the upstream for usage for its own books. A client that did
    not ask never sees the ``choices: []`` usage chunk (it indexes ``choices[0]`` on every
    chunk), one that asked gets it as sent; either way the usage is billed, whether the
    upstream writes compact JSON or ``json.dumps`` spacing (``"usage": {``)."""
    s, url = bstack
    s.reset()
    key = books.new_key(s)
    usage = {"prompt_tokens": 321, "completion_tokens": 45, "total_tokens": 366}
    s.vllm.enqueue(RawStream(books.openai_sse(TEXT, usage=usage, spaced=spaced)))
    client = _client(s, "openai", key.secret)
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if asked else {}
    stream = client.chat.completions.create(
        model="coder", messages=[{"role": "user", "content": "hi"}], stream=True, **extra
    )
    text, seen = "", []
    for chunk in stream:
        if asked and not chunk.choices:
            seen.append(chunk.usage.model_dump(exclude_none=True))
            continue
        text += chunk.choices[0].delta.content or ""
    assert text == TEXT
    assert seen == ([usage] if asked else [])
    assert s.vllm.last_request.json["stream_options"] == {"include_usage": True}
    rows = books.wait_until(
        lambda: books.usage_rows(s, url, f"key_id = '{key.id}'"), "the usage row"
    )
    assert len(rows) == 1
    row = rows[0]
    assert (row.status, row.input_tokens, row.output_tokens) == (200, 321, 45)
    assert bool(row.usage_estimated) is False
    assert row.cost == pytest.approx((321 * 1.0 + 45 * 2.0) / 1e6, rel=1e-9)
