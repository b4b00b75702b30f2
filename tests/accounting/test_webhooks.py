"""Budget-alert webhooks: https to public addresses only, checked when a budget is made and again
when an alert is delivered (after resolution), no redirects, a few retries with backoff, never
on the request's path (audit #2b; docs/accounting.md, "Alerts")."""

from __future__ import annotations

import asyncio
import datetime as _dt
import socket
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver
from aiohttp.test_utils import TestClient, TestServer
from tests.accounting.test_routes import ADMIN, admin_app

from dragoman.accounting import Accountant
from dragoman.accounting.alerts import Alerts, HttpWebhooks, WebhookRefused
from dragoman.config import load_config_dict
from dragoman.guard.public_resolver import PublicResolver
from dragoman.usage import Usage

from .conftest import make_config, outcome, request_info
from .test_ledger import budget_cfg


class Receiver:
    """A plain-http receiver on 127.0.0.1 that counts every connection made to it."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Receiver:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.connections += 1
            await r.read(65536)
            w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            await w.drain()
            w.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


class MapResolver(AbstractResolver):
    """DNS as the test says: ``name -> address``."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[dict[str, Any]]:
        self.asked.append(host)
        addr = self.table[host]
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        return [
            {
                "hostname": host,
                "host": addr,
                "port": port,
                "family": fam,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("path", ["http://127.0.0.1:{port}/hook", "https://127.0.0.1:{port}/hook"])
async def test_a_local_receiver_is_never_called(path: str) -> None:
    rx = await Receiver().start()
    hooks = HttpWebhooks(timeout=2)
    try:
        with pytest.raises(WebhookRefused):
            await hooks.post(path.format(port=rx.port), {"event": "budget_alert"})
        with pytest.raises(WebhookRefused):
            await hooks.post(f"https://localhost:{rx.port}/hook", {"event": "budget_alert"})
    finally:
        await hooks.close()
        await rx.stop()
    assert rx.connections == 0


async def test_a_public_name_that_resolves_to_a_private_address_is_never_called() -> None:
    """The URL check passes (a public-looking name); at delivery the name resolves to
    127.0.0.1 (DNS rebinding, or a hostile record): no connection is made."""
    rx = await Receiver().start()
    dns = MapResolver({"hooks.example.com": "127.0.0.1"})
    hooks = HttpWebhooks(timeout=2, resolver=dns)
    try:
        with pytest.raises(OSError) as err:
            await hooks.post(f"https://hooks.example.com:{rx.port}/hook", {"event": "x"})
        assert "not a public address" in str(err.value.__cause__)
    finally:
        await hooks.close()
        await rx.stop()
    assert dns.asked == ["hooks.example.com"]
    assert rx.connections == 0


async def test_public_addresses_pass_the_resolver() -> None:
    r = PublicResolver(MapResolver({"hooks.example.com": "93.184.216.34", "v6.example": "::1"}))
    (got,) = await r.resolve("hooks.example.com", 443)
    assert got["host"] == "93.184.216.34"
    with pytest.raises(OSError):
        await r.resolve("v6.example", 443)


class Flaky:
    """The Webhooks seam: answers from a script (an exception is raised)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None

    async def post(self, url: str, payload: dict[str, Any]) -> int:
        self.calls.append(url)
        if self.gate is not None:
            await self.gate.wait()
        a = self.answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return int(a)

    async def close(self) -> None:
        pass


def _alerts(hooks: Flaky) -> tuple[Alerts, list[float]]:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    a = Alerts(load_config_dict({}), None, now=lambda: _dt.datetime(2025, 1, 1), webhooks=hooks)  # type: ignore[arg-type]
    a.sleep = sleep
    return a, slept


URL = "https://hooks.example.com/budget"


async def test_failed_deliveries_are_retried_with_growing_waits() -> None:
    hooks = Flaky(OSError("refused"), 503, 200)
    a, slept = _alerts(hooks)
    await a._deliver(URL, {"event": "budget_alert"})
    assert len(hooks.calls) == 3
    assert slept == [1.0, 4.0]  # exponential, and bounded: three attempts in all


async def test_delivery_gives_up_after_three_attempts_and_on_a_4xx() -> None:
    hooks = Flaky(500, 502, 503, 200)
    a, _ = _alerts(hooks)
    await a._deliver(URL, {})
    assert len(hooks.calls) == 3
    hooks = Flaky(404, 200)
    a, _ = _alerts(hooks)
    await a._deliver(URL, {})
    assert len(hooks.calls) == 1
    hooks = Flaky(WebhookRefused("refused: private"), 200)
    a, _ = _alerts(hooks)
    await a._deliver(URL, {})
    assert len(hooks.calls) == 1


async def test_delivery_never_blocks_the_request(db_url: str) -> None:
    """A receiver that never answers: confirming the charge that crosses the threshold
    returns at once; the delivery runs in the background."""
    hooks = Flaky(200)
    hooks.gate = asyncio.Event()
    cfg = make_config(
        db_url, accounting={**budget_cfg(1.0, alert_thresholds=[50]), "alert_webhook": URL}
    )
    acct = await Accountant.create(cfg, webhooks=hooks)
    try:
        h = await acct.hold(request_info(input_tokens=600_000, max_tokens=0))
        await asyncio.wait_for(acct.confirm(h, outcome(Usage(input_tokens=600_000))), 2)
        assert h.state == "confirmed"
        assert acct.alerts is not None and len(acct.alerts.tasks) == 1
        hooks.gate.set()
        await acct.alerts.drain()
        assert hooks.calls == [URL]
    finally:
        await acct.close()


@pytest.mark.parametrize(
    "webhook",
    [
        "http://hooks.example.com/budget",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest",
        "https://localhost:8080/hook",
        "file:///etc/passwd",
    ],
)
async def test_a_budget_with_a_private_or_plain_http_webhook_is_refused(
    db_url: str, webhook: str
) -> None:
    acct = await Accountant.create(make_config(db_url))
    client = TestClient(TestServer(admin_app(acct)))
    await client.start_server()
    try:
        body = {"budget_type": "daily", "budget_limit": 1.0, "webhook": webhook}
        r = await client.post("/v1/analytics/budgets", headers=ADMIN, json=body)
        assert r.status == 400, await r.text()
        assert "webhook" in (await r.json())["error"]["message"]
        ok = {**body, "webhook": "https://hooks.example.com/budget"}
        r = await client.post("/v1/analytics/budgets", headers=ADMIN, json=ok)
        assert r.status == 201, await r.text()
    finally:
        await client.close()
        await acct.close()
