"""SyftBox transport tests: they need the ``dragoman[syftbox]`` extra.

Without it only ``test_syftbox_extra.py`` is collected, and it skips naming the install command;
under ``CI=true`` that skip is a failure (marker ``syftbox``, tests/conftest.py), so CI cannot
pass without running these tests.

Fixtures: a strict fake Anthropic and a fake accounting service once per module (reset per
test); per test, a temporary ``HOME`` and SyftBox data dir with the router owner's, alice's and
mallory's client configs, funded accounting accounts, and ``make_router(...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dragoman.syftbox import missing_libraries

if missing_libraries():
    collect_ignore_glob = ["test_syftbox_[!e]*.py"]
else:
    from syft_accounting_sdk import AdminClient, UserClient
    from syft_core import Client
    from tests.fakes import FakeAnthropic
    from tests.fakes.accounting import FakeAccounting
    from tests.syftbox.harness import (
        ALICE,
        APP,
        MALLORY,
        PRICE,
        ROUTER,
        RouterUnderTest,
        base_config,
        write_client_config,
    )

    ROUTER_PASSWORD = "router-secret"
    ALICE_FUNDS = 10.0

    @pytest.fixture(scope="module")
    def _anthropic() -> Iterator[FakeAnthropic]:
        with FakeAnthropic(accept_bearer=False, strict_models=True) as fake:
            yield fake

    @pytest.fixture
    def upstream(_anthropic: FakeAnthropic) -> Iterator[FakeAnthropic]:
        _anthropic.reset()
        yield _anthropic
        assert _anthropic.pending == 0, "a scripted upstream reply was not used"

    @pytest.fixture(scope="module")
    def _accounting() -> Iterator[FakeAccounting]:
        with FakeAccounting() as fake:
            yield fake

    @pytest.fixture
    def accounting(_accounting: FakeAccounting) -> FakeAccounting:
        """Accounts: the router owner (0), alice (10 credits), mallory (0)."""
        _accounting.reset()
        UserClient.create_user(
            url=_accounting.url, email=ROUTER, organization="r", password=ROUTER_PASSWORD
        )
        for email in (ALICE, MALLORY):
            UserClient.create_user(
                url=_accounting.url, email=email, organization="c", password="pw"
            )
        AdminClient(url=_accounting.url, key=_accounting.admin_key).add_balance(
            email=ALICE, amount=ALICE_FUNDS
        )
        _accounting.calls.clear()
        return _accounting

    @pytest.fixture
    def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """A fresh HOME (nothing reads the real ~/.syftbox) holding the shared data dir."""
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.delenv("SYFTBOX_CLIENT_CONFIG_PATH", raising=False)
        for email in (ROUTER, ALICE, MALLORY):
            write_client_config(tmp_path, email)
        return tmp_path

    @pytest.fixture
    def alice(root: Path) -> Client:
        return Client.load(root / ".syftbox" / "alice.json")

    @pytest.fixture
    def mallory(root: Path) -> Client:
        return Client.load(root / ".syftbox" / "mallory.json")

    @pytest.fixture
    def pay(accounting: FakeAccounting) -> Callable[..., str]:
        """A transaction token from ``payer`` (alice by default) for the router, via the SDK."""

        def token(payer: str = ALICE, password: str = "pw") -> str:
            client = UserClient(url=accounting.url, email=payer, password=password)
            return client.create_transaction_token(recipientEmail=ROUTER)

        return token

    @pytest.fixture
    def syftbox_section(root: Path, accounting: FakeAccounting) -> dict[str, Any]:
        return {
            "client_config": str(root / ".syftbox" / "router.json"),
            "app_name": APP,
            "price_per_request": PRICE,
            "accounting": {"url": accounting.url, "email": ROUTER, "password": ROUTER_PASSWORD},
            "workers": 8,
        }

    @pytest.fixture
    def config(upstream: FakeAnthropic, syftbox_section: dict[str, Any]) -> dict[str, Any]:
        return base_config(upstream.url, upstream.api_key, syftbox_section)

    @pytest.fixture
    def make_router(config: dict[str, Any]) -> Iterator[Callable[..., RouterUnderTest]]:
        """``make_router(start=True, config_=None, service=None, **syftbox overrides)``
        (``service``: keyword arguments of ``SyftBoxService``); every router is closed after."""
        made: list[RouterUnderTest] = []

        def make(
            *,
            start: bool = True,
            config_: dict[str, Any] | None = None,
            service: dict[str, Any] | None = None,
            **over: Any,
        ) -> RouterUnderTest:
            cfg = config_ or {**config, "syftbox": {**config["syftbox"], **over}}
            r = RouterUnderTest(cfg, **(service or {}))
            made.append(r)
            return r.start() if start else r

        yield make
        for r in made:
            r.close()

    @pytest.fixture
    def router(make_router: Callable[..., RouterUnderTest]) -> RouterUnderTest:
        return make_router()
