"""The fake accounting service (tests/fakes/accounting.py) against the real syft-accounting-sdk."""

from __future__ import annotations

import pytest
import requests
from syft_accounting_sdk import AdminClient, ServiceException, UserClient
from tests.fakes.accounting import FakeAccounting
from tests.syftbox.harness import ALICE, MALLORY, ROUTER

pytestmark = pytest.mark.syftbox


def clients(acct: FakeAccounting) -> tuple[UserClient, UserClient]:
    """(alice, the router owner); alice holds 10 credits."""
    for email in (ALICE, ROUTER, MALLORY):
        UserClient.create_user(url=acct.url, email=email, organization="o", password="pw")
    AdminClient(url=acct.url, key=acct.admin_key).add_balance(email=ALICE, amount=10)
    return (
        UserClient(url=acct.url, email=ALICE, password="pw"),
        UserClient(url=acct.url, email=ROUTER, password="pw"),
    )


@pytest.fixture
def acct(_accounting: FakeAccounting) -> FakeAccounting:
    _accounting.reset()
    return _accounting


def test_users_and_balances(acct: FakeAccounting) -> None:
    user, password = UserClient.create_user(url=acct.url, email=ALICE, organization="OpenMined")
    assert user.email == ALICE and user.balance == 0 and user.organization == "OpenMined"
    assert len(password) >= 16  # generated when none is sent
    admin = AdminClient(url=acct.url, key=acct.admin_key)
    assert admin.add_balance(email=ALICE, amount=2.5).balance == 2.5
    assert UserClient(url=acct.url, email=ALICE, password=password).get_user_info().balance == 2.5
    assert admin.get_user(email=ALICE).id == user.id
    assert [u.email for u in admin.get_all_users()] == [ALICE]
    with pytest.raises(ServiceException) as e:
        UserClient.create_user(url=acct.url, email=ALICE, organization="x")
    assert e.value.status_code == 409
    with pytest.raises(ServiceException) as e:
        AdminClient(url=acct.url, key="wrong").add_balance(email=ALICE, amount=1)
    assert e.value.status_code == 401


def test_delegated_transaction_confirmed(acct: FakeAccounting) -> None:
    alice, router = clients(acct)
    token = alice.create_transaction_token(recipientEmail=ROUTER)
    tx = router.create_delegated_transaction(
        senderEmail=ALICE, amount=0.1, token=token, appName="claude", appEpPath="/chat"
    )
    assert (tx.status.value, tx.createdBy.value, tx.amount) == ("PENDING", "RECIPIENT", 0.1)
    assert (tx.appName, tx.appEpPath) == ("claude", "/chat")
    assert acct.balance(ALICE) == 10.0  # held, not moved
    done = router.confirm_transaction(id=tx.id)
    assert (done.status.value, done.resolvedBy.value) == ("COMPLETED", "RECIPIENT")
    assert done.resolvedAt is not None
    assert (acct.balance(ALICE), acct.balance(ROUTER)) == (9.9, 0.1)
    assert acct.paths()[-3:] == ["/token/create", "/transaction/create", "/transaction/confirm"]
    assert [t.id for t in alice.get_transaction_history()] == [tx.id]


def test_delegated_transfer_cancels_on_error(acct: FakeAccounting) -> None:
    alice, router = clients(acct)
    token = alice.create_transaction_token(recipientEmail=ROUTER)
    with pytest.raises(RuntimeError), router.delegated_transfer(ALICE, 0.1, token) as ctx:
        raise RuntimeError("the model failed")
    assert ctx.transaction is not None and ctx.transaction.status.value == "CANCELLED"
    assert (acct.balance(ALICE), acct.balance(ROUTER)) == (10.0, 0.0)
    with pytest.raises(ServiceException) as e:  # settled: neither confirm nor cancel again
        router.confirm_transaction(id=ctx.transaction.id)
    assert e.value.status_code == 409


@pytest.mark.parametrize("case", ["reused", "garbage", "expired", "wrong recipient", "no funds"])
def test_refused_tokens(acct: FakeAccounting, case: str) -> None:
    alice, router = clients(acct)
    payer, amount = ALICE, 0.1
    if case == "garbage":
        token = "not-a-token"
    elif case == "expired":
        token = acct.token(ALICE, ROUTER, ttl=-1)
    elif case == "wrong recipient":
        token = alice.create_transaction_token(recipientEmail=MALLORY)
    elif case == "no funds":
        payer, amount = MALLORY, 0.1
        token = UserClient(url=acct.url, email=MALLORY, password="pw").create_transaction_token(
            recipientEmail=ROUTER
        )
    else:
        token = alice.create_transaction_token(recipientEmail=ROUTER)
        router.create_delegated_transaction(senderEmail=ALICE, amount=0.1, token=token)
    with pytest.raises(ServiceException) as e:
        router.create_delegated_transaction(senderEmail=payer, amount=amount, token=token)
    status = {"reused": 409, "wrong recipient": 403}.get(case, 400)
    message = {
        "reused": "Token already used",
        "garbage": "Invalid token",
        "expired": "Token expired",
        "wrong recipient": "Token does not match the sender and recipient",
        "no funds": "Insufficient balance",
    }[case]
    assert (e.value.status_code, e.value.body) == (status, {"message": message})


def test_auth_amounts_and_broken_bodies(acct: FakeAccounting) -> None:
    alice, _ = clients(acct)
    with pytest.raises(ServiceException) as e:
        UserClient(url=acct.url, email=ALICE, password="wrong").get_user_info()
    assert e.value.status_code == 401
    calls = len(acct.calls)
    with pytest.raises(ValueError, match="Amount must be positive"):  # refused before HTTP
        alice.create_transaction(recipientEmail=ROUTER, amount=0)
    assert len(acct.calls) == calls
    acct.fail("/user/my-info", 503)  # a non-JSON error body: the SDK cannot read it
    with pytest.raises(requests.exceptions.JSONDecodeError):
        alice.get_user_info()
    acct.fail("/user/my-info", 500, {"message": "boom"})
    with pytest.raises(ServiceException) as e:
        alice.get_user_info()
    assert (e.value.status_code, e.value.body) == (500, {"message": "boom"})
    assert alice.get_user_info().balance == 10.0  # failures are one-shot
