"""The router end to end: the stock syft-rpc client, the real SDK, dragoman's engine, fake upstream.

Every reply is checked as the caller receives it (status and exact JSON), every payment as the
accounting service saw it (calls, balances, the transaction's state), every model call as the
fake Anthropic received it.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from syft_accounting_sdk import UserClient
from syft_core import Client
from syft_rpc import rpc
from syft_rpc.protocol import SyftFuture, SyftMethod, SyftRequest
from tests.fakes import FakeAnthropic, Reply, error_reply
from tests.fakes.accounting import FakeAccounting
from tests.syftbox.harness import (
    ALICE,
    APP,
    LEGACY,
    MALLORY,
    MODEL,
    PRICE,
    ROUTER,
    RouterUnderTest,
    call,
    send,
)

from dragoman.syftbox.seam import Caller

pytestmark = pytest.mark.syftbox

QUESTION = [
    {"role": "system", "content": "Answer in one word."},
    {"role": "user", "content": "Capital of France?"},
]
PARIS = Reply(content="Paris", usage={"input_tokens": 21, "output_tokens": 3})
USAGE = {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24}


def chat_body(token: str | None, model: str = "claude", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": QUESTION, **extra}
    if token is not None:
        body["accounting_token"] = token
    return body


def payments(acct: FakeAccounting) -> list[tuple[str, Any]]:
    """What the router asked the accounting service (its start-up login left out)."""
    return [(p, b) for _, p, b in acct.calls if p not in ("/user/my-info", "/token/create")]


def transaction(acct: FakeAccounting) -> Any:
    (tx,) = acct.transactions.values()
    return tx


def test_ping_and_published_schema(router: RouterUnderTest, alice: Client, root: Any) -> None:
    r = call(alice, LEGACY, "ping", method="GET")
    assert (r.status_code, r.body) == (200, b"pong")
    rpc_dir = root / "SyftBox" / "datasites" / ROUTER / "app_data" / "routers" / APP / "rpc"
    schema = orjson.loads((rpc_dir / "rpc.schema.json").read_bytes())
    assert sorted(schema) == ["/chat", "/completions", "/ping"]
    chat = schema["/chat"]["args"]["request"]["type"]
    assert chat["name"] == "ChatRequest"
    assert "accountingToken" in chat["schema"]["required"]  # priced: the token is required
    assert (rpc_dir / "syft.pub.yaml").exists()


def test_paid_chat_creates_then_confirms(
    router: RouterUnderTest,
    alice: Client,
    accounting: FakeAccounting,
    upstream: FakeAnthropic,
    pay: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[str] = []
    for name in ("create_delegated_transaction", "confirm_transaction"):
        real = getattr(UserClient, name)

        def spy(self: Any, *a: Any, _real: Any = real, **kw: Any) -> Any:
            threads.append(threading.current_thread().name)
            return _real(self, *a, **kw)

        monkeypatch.setattr(UserClient, name, spy)
    token = pay()
    upstream.enqueue(PARIS)
    options = {"temperature": 0.7, "max_tokens": 150, "top_p": 1.0}
    fut = send(alice, LEGACY, "chat", chat_body(token, options=options))
    r = fut.wait(timeout=10, poll_interval=0.005)

    assert r.status_code == 200
    got = r.json()
    assert uuid.UUID(got.pop("id")).version == 4
    rid = got["provider_info"].pop("request_id")
    assert rid
    assert got == {
        "model": "claude",  # as requested, like the seed
        "message": {"role": "assistant", "content": "Paris", "name": None},
        "finish_reason": "stop",
        "usage": USAGE,
        "provider_info": {"model": MODEL},
        "logprobs": None,
    }
    sent = upstream.last_request.body  # the system message reached the model (the seed lost it)
    assert sent["system"] == [{"type": "text", "text": "Answer in one word."}]
    assert (sent["model"], sent["max_tokens"], sent["temperature"]) == (MODEL, 150, 0.7)
    assert "top_p" not in sent  # current Claude models take one of the two: the engine's rule
    tx = transaction(accounting)
    assert payments(accounting) == [
        (
            "/transaction/create",
            {
                "senderEmail": ALICE,
                "recipientEmail": ROUTER,
                "amount": PRICE,
                "token": token,
                "appName": APP,
                "appEpPath": "/chat",
            },
        ),
        ("/transaction/confirm", {"transactionId": tx.id}),
    ]
    assert (tx.status, tx.created_by, tx.resolved_by) == ("COMPLETED", "RECIPIENT", "RECIPIENT")
    assert (accounting.balance(ALICE), accounting.balance(ROUTER)) == (9.9, 0.1)
    assert router.callers == [
        Caller(ALICE, LEGACY, "/chat", str(fut.id), ALICE, PRICE, tx.id, token)
    ]
    assert len(threads) == 2 and all(t.startswith("dragoman-syftbox") for t in threads)


@pytest.mark.parametrize(("upstream_status", "code"), [(500, 500), (529, 503)])
def test_upstream_failure_cancels(
    router: RouterUnderTest,
    alice: Client,
    accounting: FakeAccounting,
    upstream: FakeAnthropic,
    pay: Callable[..., str],
    upstream_status: int,
    code: int,
) -> None:
    upstream.enqueue(error_reply(upstream_status, "the model is down"))
    r = call(alice, LEGACY, "chat", chat_body(pay()))
    assert r.status_code == 200  # the seed's in-band error
    got = r.json()
    assert (got["code"], got["data"]) == (code, None)
    assert "the model is down" in got["message"]
    tx = transaction(accounting)
    assert [p for p, _ in payments(accounting)] == ["/transaction/create", "/transaction/cancel"]
    assert tx.status == "CANCELLED"
    assert (accounting.balance(ALICE), accounting.balance(ROUTER)) == (10.0, 0.0)


def test_reused_token_is_refused_before_the_model(
    router: RouterUnderTest,
    alice: Client,
    accounting: FakeAccounting,
    upstream: FakeAnthropic,
    pay: Callable[..., str],
) -> None:
    token = pay()
    upstream.enqueue(PARIS)
    assert call(alice, LEGACY, "chat", chat_body(token)).json()["message"]["content"] == "Paris"
    r = call(alice, LEGACY, "chat", chat_body(token))
    assert (r.status_code, r.json()) == (
        200,
        {
            "code": 402,
            "message": "payment refused by the accounting service: Token already used",
            "data": None,
        },
    )
    assert len(upstream.requests_to("/v1/messages")) == 1
    assert (accounting.balance(ALICE), accounting.balance(ROUTER)) == (9.9, 0.1)


@pytest.mark.parametrize("case", ["garbage", "expired", "another payer's", "underfunded"])
def test_bad_tokens_never_reach_the_model(
    router: RouterUnderTest,
    alice: Client,
    mallory: Client,
    accounting: FakeAccounting,
    upstream: FakeAnthropic,
    pay: Callable[..., str],
    case: str,
) -> None:
    sender = alice
    if case == "garbage":
        token, why = "eyJhbGciOiJIUzI1NiJ9.e30.c2ln", "Invalid token"
    elif case == "expired":
        token, why = accounting.token(ALICE, ROUTER, ttl=-1), "Token expired"
    elif case == "another payer's":  # alice spends mallory's token: the token names mallory
        token, why = pay(MALLORY), "Token does not match the sender and recipient"
    else:
        sender, token, why = mallory, pay(MALLORY), "Insufficient balance"
    r = call(sender, LEGACY, "chat", chat_body(token))
    assert (r.status_code, r.json()) == (
        200,
        {"code": 402, "message": f"payment refused by the accounting service: {why}", "data": None},
    )
    assert upstream.requests_to("/v1/messages") == []
    assert [p for p, _ in payments(accounting)] == ["/transaction/create"]
    assert accounting.transactions == {}
    assert router.callers == []


def test_missing_token_is_a_schema_error(
    router: RouterUnderTest, alice: Client, accounting: FakeAccounting, upstream: FakeAnthropic
) -> None:
    r = call(alice, LEGACY, "chat", chat_body(None))
    assert r.status_code == 400
    assert r.text().startswith(
        "Invalid request schema: 1 validation error for ChatRequest\naccounting_token\n"
        "  Field required"
    )
    assert payments(accounting) == []
    assert upstream.requests_to("/v1/messages") == []


def test_spoofed_sender_is_forbidden(
    router: RouterUnderTest,
    mallory: Client,
    accounting: FakeAccounting,
    upstream: FakeAnthropic,
    pay: Callable[..., str],
    root: Any,
) -> None:
    """mallory writes, in her own folder, a request that says it is alice's (with alice's
    token): SyftBox lets her write only there, so the folder, not the claim, is the sender."""
    url = rpc.make_url(ROUTER, LEGACY, "chat")
    req = SyftRequest(
        sender=ALICE,
        url=url,
        method=SyftMethod.POST,
        body=orjson.dumps(chat_body(pay())),
        expires=datetime.now(UTC) + timedelta(minutes=1),
    )
    folder = url.to_local_path(mallory.workspace.datasites) / MALLORY
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{req.id}.tmp"
    tmp.write_text(req.dumps())
    os.replace(tmp, folder / f"{req.id}.request")
    r = SyftFuture(id=req.id, path=folder, expires=req.expires, request=req).wait(
        timeout=10, poll_interval=0.005
    )
    assert r.status_code == 403
    assert r.text() == f"Forbidden: a request from {ALICE} must be in that sender's folder"
    assert not (url.to_local_path(mallory.workspace.datasites) / ALICE).exists()
    assert payments(accounting) == []
    assert upstream.requests_to("/v1/messages") == []


def test_syft_hub_chat_answers_camel_case(
    router: RouterUnderTest,
    alice: Client,
    accounting: FakeAccounting,
    upstream: FakeAnthropic,
    pay: Callable[..., str],
) -> None:
    token = pay()
    upstream.enqueue(PARIS)
    body = {
        "user_email": ALICE,
        "model": "tinyllama:latest",  # syft-hub always sends it: default_model answers
        "messages": QUESTION,
        "options": {"temperature": 0.7},
        "transaction_token": token,
    }
    r = call(alice, APP, "chat", body)
    assert r.status_code == 200
    got = r.json()
    assert uuid.UUID(got.pop("id")).version == 4
    assert got == {
        "model": MODEL,
        "message": {"role": "assistant", "content": "Paris", "name": None},
        "finishReason": "stop",
        "usage": {"promptTokens": 21, "completionTokens": 3, "totalTokens": 24},
        "providerInfo": None,
        "logprobs": None,
        "cost": PRICE,
    }
    assert upstream.last_request.body["model"] == MODEL
    tx = transaction(accounting)
    assert [p for p, _ in payments(accounting)] == ["/transaction/create", "/transaction/confirm"]
    assert (tx.sender, tx.app_name, tx.app_ep_path, tx.status) == (
        ALICE,
        APP,
        "/chat",
        "COMPLETED",
    )
    assert router.callers[0].app == APP and router.callers[0].payer == ALICE


def test_syft_hub_errors_carry_their_status(
    router: RouterUnderTest,
    alice: Client,
    accounting: FakeAccounting,
    upstream: FakeAnthropic,
    pay: Callable[..., str],
) -> None:
    body = {"user_email": ALICE, "model": "claude", "messages": QUESTION}
    r = call(alice, APP, "chat", body)
    assert (r.status_code, r.json()) == (
        402,
        {
            "detail": f"a transaction token is needed: this router charges {PRICE:g} per request",
            "errorType": "billing_error",
        },
    )
    r = call(alice, APP, "chat", body, method="GET")
    assert (r.status_code, r.json()) == (405, {"detail": "Method Not Allowed"})
    r = call(alice, APP, "chat", {"model": "claude", "messages": QUESTION})
    assert r.status_code == 422
    assert [(e["loc"], e["type"]) for e in r.json()["detail"]] == [(["user_email"], "missing")]
    upstream.enqueue(error_reply(500, "the model is down"))
    r = call(alice, APP, "chat", {**body, "transaction_token": pay()})
    assert r.status_code == 500 and "the model is down" in r.json()["detail"]
    assert transaction(accounting).status == "CANCELLED"
    r = call(alice, APP, "health", method="GET")
    assert (r.status_code, r.json()) == (
        200,
        {"status": "healthy", "projectName": APP, "services": {"chat": "available"}},
    )


def test_unknown_model_cancels_the_payment(
    make_router: Callable[..., RouterUnderTest],
    config: dict[str, Any],
    alice: Client,
    accounting: FakeAccounting,
    upstream: FakeAnthropic,
    pay: Callable[..., str],
) -> None:
    make_router(config_={k: v for k, v in config.items() if k != "default_model"})
    r = call(alice, LEGACY, "chat", chat_body(pay(), model="gpt-4"))
    assert (r.status_code, r.json()) == (
        200,
        {
            "code": 404,
            "message": "model: 'gpt-4' is not served here "
            "(GET /v1/models lists the models this key may use)",
            "data": None,
        },
    )
    assert transaction(accounting).status == "CANCELLED"
    assert accounting.balance(ALICE) == 10.0
    assert upstream.requests_to("/v1/messages") == []


def test_completions_are_free(
    router: RouterUnderTest, alice: Client, accounting: FakeAccounting, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Reply(content="Hi there", stop_reason="max_tokens", usage={"input_tokens": 7}))
    r = call(alice, LEGACY, "completions", {"model": "claude-3-sonnet", "prompt": "Say hi"})
    got = r.json()
    assert uuid.UUID(got.pop("id"))
    got["provider_info"].pop("request_id")
    assert got == {
        "model": "claude-3-sonnet",
        "text": "Hi there",
        "finish_reason": "length",
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
        "provider_info": {"model": MODEL},
        "logprobs": None,
    }
    sent = upstream.last_request.body
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}]
    assert payments(accounting) == []


def test_a_free_router_needs_no_accounting(
    make_router: Callable[..., RouterUnderTest],
    alice: Client,
    accounting: FakeAccounting,
    upstream: FakeAnthropic,
) -> None:
    make_router(price_per_request=0, accounting=None)
    upstream.enqueue(PARIS, PARIS)
    assert call(alice, LEGACY, "chat", chat_body(None)).json()["message"]["content"] == "Paris"
    r = call(alice, APP, "chat", {"user_email": ALICE, "model": "claude", "messages": QUESTION})
    assert (r.status_code, r.json()["cost"]) == (200, 0.0)
    assert accounting.calls == []


def test_confirm_failure_answers_nothing_and_charges_nothing(
    router: RouterUnderTest,
    alice: Client,
    accounting: FakeAccounting,
    upstream: FakeAnthropic,
    pay: Callable[..., str],
) -> None:
    token = pay()
    accounting.fail("/transaction/confirm", 503)  # a proxy's non-JSON 503
    upstream.enqueue(PARIS)
    r = call(alice, LEGACY, "chat", chat_body(token))
    assert r.json() == {
        "code": 503,
        "message": "the accounting service is unavailable; try again later",
        "data": None,
    }
    assert [p for p, _ in payments(accounting)] == [
        "/transaction/create",
        "/transaction/confirm",
        "/transaction/cancel",
    ]
    assert transaction(accounting).status == "CANCELLED"
    assert accounting.balance(ALICE) == 10.0


def test_accounting_down_means_no_model_call(
    router: RouterUnderTest,
    alice: Client,
    accounting: FakeAccounting,
    upstream: FakeAnthropic,
    pay: Callable[..., str],
) -> None:
    token = pay()
    accounting.fail("/transaction/create", 502, {"message": "bad gateway"})
    r = call(alice, LEGACY, "chat", chat_body(token))
    assert r.json()["code"] == 503
    assert upstream.requests_to("/v1/messages") == []
    assert [p for p, _ in payments(accounting)] == ["/transaction/create"]
