"""A fake SyftBox accounting service: the HTTP API ``syft-accounting-sdk`` 0.1.1 speaks.

The real service is closed source (a Node.js image); its paths, auth and JSON envelopes are read
from the SDK (``syft_accounting_sdk/core.py``), and its rules are the ones the SDK and the seed
rely on (docs/syftbox.md, "Accounting"):

* users authenticate with HTTP Basic ``email:password``; the admin with ``Bearer <admin key>``;
* ``POST /token/create`` (the payer) returns a signed JWT (HS256, payload ``{id, senderEmail,
  recipientEmail, iat, exp}``, 24 h) naming the payer and the recipient;
* ``POST /transaction/create`` with a ``token`` is a delegated transaction: only the token's
  recipient may create it, for the token's sender, once; the sender's balance (less what their
  pending transactions hold) must cover it. It is PENDING, ``createdBy`` RECIPIENT;
* ``POST /transaction/confirm`` moves the money (COMPLETED), ``/transaction/cancel`` does not
  (CANCELLED); both only on a PENDING transaction, by its sender or recipient;
* errors are ``{"message": ...}`` with 400 (bad amount, bad or expired token, no funds), 401
  (credentials), 403 (not yours), 404 (unknown), 409 (exists, token used, not pending).

Every call is recorded in ``calls`` as ``(method, path, json body)``; ``fail(path, status)``
makes the next call to ``path`` fail (``body=None``: a non-JSON body, as a proxy would send);
``delays[path] = seconds`` makes every call to ``path`` wait before it is handled.

    with FakeAccounting() as acct:
        admin = AdminClient(url=acct.url, key=acct.admin_key)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Self

from aiohttp import web

ADMIN_KEY = "admin-key"
BODY: Any = web.RequestKey("json", dict) if hasattr(web, "RequestKey") else "json"
TOKEN_TTL = 24 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class User:
    id: str
    email: str
    password: str
    organization: str | None
    balance: Decimal = Decimal(0)

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "balance": float(self.balance),
            "organization": self.organization,
        }


@dataclass
class Transaction:
    id: str
    sender: str
    recipient: str
    amount: Decimal
    created_by: str
    app_name: str | None
    app_ep_path: str | None
    status: str = "PENDING"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    resolved_by: str | None = None
    resolved_at: datetime | None = None

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "senderEmail": self.sender,
            "recipientEmail": self.recipient,
            "createdBy": self.created_by,
            "resolvedBy": self.resolved_by,
            "amount": float(self.amount),
            "status": self.status,
            "createdAt": self.created_at.isoformat(),
            "resolvedAt": self.resolved_at.isoformat() if self.resolved_at else None,
            "appName": self.app_name,
            "appEpPath": self.app_ep_path,
        }


class FakeAccounting:
    def __init__(self, *, admin_key: str = ADMIN_KEY, clock: Any = time.time) -> None:
        self.admin_key = admin_key
        self.clock = clock
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self.users: dict[str, User] = {}
        self.transactions: dict[str, Transaction] = {}
        self.used_tokens: set[str] = set()
        self.calls: list[tuple[str, str, Any]] = []
        self._failures: dict[str, deque[tuple[int, Any]]] = {}
        self.delays: dict[str, float] = {}
        self._server: Any = None
        self._url: str | None = None

    # -- test helpers -----------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.users.clear()
            self.transactions.clear()
            self.used_tokens.clear()
            self.calls.clear()
            self._failures.clear()
            self.delays.clear()

    def fail(self, path: str, status: int = 503, body: Any = None, times: int = 1) -> None:
        """The next ``times`` calls to ``path`` answer ``status`` (``body=None``: not JSON)."""
        with self._lock:
            self._failures.setdefault(path, deque()).extend([(status, body)] * times)

    def balance(self, email: str) -> float:
        with self._lock:
            return float(self.users[email].balance)

    def paths(self) -> list[str]:
        """The paths called so far, in order."""
        with self._lock:
            return [p for _, p, _ in self.calls]

    def token(self, sender: str, recipient: str, *, ttl: float = TOKEN_TTL) -> str:
        """A token as ``/token/create`` issues it (``ttl`` < 0: already expired)."""
        now = int(self.clock())
        payload = {
            "id": uuid.uuid4().hex[:24],
            "senderEmail": sender,
            "recipientEmail": recipient,
            "iat": now,
            "exp": now + int(ttl),
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        sig = hmac.new(self._secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{_b64(sig)}"

    # -- serving ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_post("/user/create", self._create_user)
        r.add_post("/user/add-balance", self._add_balance)
        r.add_get("/user/my-info", self._my_info)
        r.add_put("/user/update-password", self._update_password)
        r.add_put("/user/update-organization", self._update_organization)
        r.add_get("/user/{email}", self._get_user)
        r.add_get("/users", self._get_users)
        r.add_post("/token/create", self._create_token)
        r.add_post("/transaction/create", self._create_transaction)
        r.add_post("/transaction/confirm", self._confirm)
        r.add_post("/transaction/cancel", self._cancel)
        r.add_get("/transactions", self._history)
        return app

    def start(self) -> Self:
        from ..support.servers import ServerThread

        if self._server is None:
            self._server = ServerThread(self.app())
            self._server.start()
            self._url = self._server.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("fake not started: use `with FakeAccounting() as f:` or f.start()")
        return self._url

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- plumbing ---------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"message": "Invalid JSON body"}, status=400)
        with self._lock:
            self.calls.append((request.method, request.path, body))
            queued = self._failures.get(request.path)
            failure = queued.popleft() if queued else None
        if self.delays.get(request.path):
            await asyncio.sleep(self.delays[request.path])
        if failure is not None:
            status, fbody = failure
            if fbody is None:
                return web.Response(status=status, text="Service Unavailable")
            return web.json_response(fbody, status=status)
        request[BODY] = body if isinstance(body, dict) else {}
        try:
            with self._lock:  # the handlers never wait: the lock is held for one step
                status, out = await handler(request)
        except Refused as e:
            return web.json_response({"message": e.message}, status=e.status)
        return web.json_response(out, status=status)

    def _user(self, request: web.Request) -> User:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            raise Refused(401, "Authentication required")
        try:
            email, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Refused(401, "Invalid credentials") from None
        user = self.users.get(email)
        if user is None or not hmac.compare_digest(user.password, password):
            raise Refused(401, "Invalid credentials")
        return user

    def _admin(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.admin_key}":
            raise Refused(401, "Invalid admin key")

    @staticmethod
    def _amount(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise Refused(400, "Amount must be a positive number")
        return Decimal(str(value))

    def _held(self, email: str) -> Decimal:
        return sum(
            (
                t.amount
                for t in self.transactions.values()
                if t.sender == email and t.status == "PENDING"
            ),
            Decimal(0),
        )

    def _verify(self, token: Any) -> dict[str, Any]:
        if not isinstance(token, str) or token.count(".") != 2:
            raise Refused(400, "Invalid token")
        header, body, sig = token.split(".")
        want = hmac.new(self._secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        try:
            ok = hmac.compare_digest(_unb64(sig), want)
            payload = json.loads(_unb64(body))
        except (binascii.Error, ValueError):
            raise Refused(400, "Invalid token") from None
        if not ok or not isinstance(payload, dict):
            raise Refused(400, "Invalid token")
        if payload.get("exp", 0) < self.clock():
            raise Refused(400, "Token expired")
        return payload

    # -- users ------------------------------------------------------------------------------

    async def _create_user(self, request: web.Request) -> tuple[int, Any]:
        body = request[BODY]
        email = body.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise Refused(400, "A valid email is required")
        if email in self.users:
            raise Refused(409, "User already exists")
        password = body.get("password") or secrets.token_urlsafe(16)
        user = User(uuid.uuid4().hex, email, password, body.get("organization"))
        self.users[email] = user
        return 201, {"user": user.json(), "password": password}

    async def _add_balance(self, request: web.Request) -> tuple[int, Any]:
        self._admin(request)
        body = request[BODY]
        user = self.users.get(body.get("recipientEmail"))
        if user is None:
            raise Refused(404, "User not found")
        user.balance += self._amount(body.get("amount"))
        return 200, {"user": user.json()}

    async def _my_info(self, request: web.Request) -> tuple[int, Any]:
        return 200, {"user": self._user(request).json()}

    async def _get_user(self, request: web.Request) -> tuple[int, Any]:
        self._admin(request)
        user = self.users.get(request.match_info["email"])
        if user is None:
            raise Refused(404, "User not found")
        return 200, {"user": user.json()}

    async def _get_users(self, request: web.Request) -> tuple[int, Any]:
        self._admin(request)
        return 200, {"users": [u.json() for u in self.users.values()]}

    async def _update_password(self, request: web.Request) -> tuple[int, Any]:
        user = self._user(request)
        body = request[BODY]
        if body.get("oldPassword") != user.password or not body.get("newPassword"):
            raise Refused(400, "Invalid password")
        user.password = body["newPassword"]
        return 200, {"user": user.json()}

    async def _update_organization(self, request: web.Request) -> tuple[int, Any]:
        user = self._user(request)
        user.organization = request[BODY].get("organization")
        return 200, {"user": user.json()}

    # -- tokens and transactions ------------------------------------------------------------

    async def _create_token(self, request: web.Request) -> tuple[int, Any]:
        user = self._user(request)
        recipient = request[BODY].get("recipientEmail")
        if recipient not in self.users:
            raise Refused(404, "Recipient not found")
        return 201, {"token": self.token(user.email, recipient)}

    async def _create_transaction(self, request: web.Request) -> tuple[int, Any]:
        user = self._user(request)
        body = request[BODY]
        sender, recipient = body.get("senderEmail"), body.get("recipientEmail")
        amount = self._amount(body.get("amount"))
        token = body.get("token")
        if token is not None:  # delegated: the recipient draws on the sender's token
            payload = self._verify(token)
            if user.email != recipient:
                raise Refused(403, "Only the recipient may create a delegated transaction")
            if payload.get("senderEmail") != sender or payload.get("recipientEmail") != recipient:
                raise Refused(403, "Token does not match the sender and recipient")
            if payload["id"] in self.used_tokens:
                raise Refused(409, "Token already used")
            created_by = "RECIPIENT"
        else:
            if user.email != sender:
                raise Refused(403, "Only the sender may create a transaction")
            created_by = "SENDER"
        if sender not in self.users or recipient not in self.users:
            raise Refused(404, "User not found")
        if self.users[sender].balance - self._held(sender) < amount:
            raise Refused(400, "Insufficient balance")
        if token is not None:
            self.used_tokens.add(payload["id"])
        tx = Transaction(
            uuid.uuid4().hex,
            sender,
            recipient,
            amount,
            created_by,
            body.get("appName"),
            body.get("appEpPath"),
        )
        self.transactions[tx.id] = tx
        return 201, {"transaction": tx.json()}

    def _pending(self, request: web.Request) -> tuple[User, Transaction]:
        user = self._user(request)
        tx = self.transactions.get(request[BODY].get("transactionId"))
        if tx is None:
            raise Refused(404, "Transaction not found")
        if user.email not in (tx.sender, tx.recipient):
            raise Refused(403, "Not a party to this transaction")
        if tx.status != "PENDING":
            raise Refused(409, f"Transaction is {tx.status.lower()}, not pending")
        return user, tx

    def _resolve(self, user: User, tx: Transaction, status: str) -> tuple[int, Any]:
        tx.status = status
        tx.resolved_by = "SENDER" if user.email == tx.sender else "RECIPIENT"
        tx.resolved_at = datetime.now(UTC)
        return 200, {"transaction": tx.json()}

    async def _confirm(self, request: web.Request) -> tuple[int, Any]:
        user, tx = self._pending(request)
        sender = self.users[tx.sender]
        if sender.balance < tx.amount:
            raise Refused(400, "Insufficient balance")
        sender.balance -= tx.amount
        self.users[tx.recipient].balance += tx.amount
        return self._resolve(user, tx, "COMPLETED")

    async def _cancel(self, request: web.Request) -> tuple[int, Any]:
        user, tx = self._pending(request)
        return self._resolve(user, tx, "CANCELLED")

    async def _history(self, request: web.Request) -> tuple[int, Any]:
        user = self._user(request)
        mine = [
            t.json() for t in self.transactions.values() if user.email in (t.sender, t.recipient)
        ]
        return 200, {"transactions": mine}
