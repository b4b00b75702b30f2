"""The ``syftbox:`` section, start-up errors, ``dragoman syftbox publish`` and its metadata.json."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from tests.fakes.accounting import FakeAccounting
from tests.syftbox.harness import ALICE, APP, LEGACY, PRICE, ROUTER, RouterUnderTest, call

from dragoman.cli import main
from dragoman.config import ConfigError, load_config_dict

pytestmark = pytest.mark.syftbox


def test_defaults() -> None:
    sb = load_config_dict({"syftbox": {"app_name": "claude"}}).syftbox
    assert sb is not None
    assert (sb.client_config, sb.price_per_request, sb.accounting, sb.workers) == (
        None,
        0.0,
        None,
        8,
    )
    assert load_config_dict({}).syftbox is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"app_name": "../x"}, "syftbox.app_name: String should match pattern"),
        ({"app_name": "a/b"}, "syftbox.app_name: String should match pattern"),
        ({}, "syftbox.app_name: Field required"),
        ({"app_name": "c", "price_per_request": -1}, "syftbox.price_per_request: Input should be"),
        ({"app_name": "c", "workers": 0}, "syftbox.workers: Input should be greater than"),
        ({"app_name": "c", "port": 1}, "syftbox.port: unknown key"),
        (
            {"app_name": "c", "accounting": {"url": "http://a", "email": "r@example.com"}},
            "syftbox.accounting.password: Field required",
        ),
        (
            {"app_name": "c", "accounting": {"url": "http://a", "email": "e", "password": ""}},
            "syftbox.accounting.password: String should have at least 1 character",
        ),
    ],
)
def test_bad_sections(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config_dict({"syftbox": section}, source="dragoman.yaml")
    assert str(e.value).startswith(f"dragoman.yaml: {message}")


def test_without_the_extra_the_config_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "syft_event", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "syft_accounting_sdk", None)
    with pytest.raises(ConfigError) as e:
        load_config_dict({"syftbox": {"app_name": "claude"}}, source="dragoman.yaml")
    assert str(e.value) == (
        "dragoman.yaml: syftbox: needs syft-event, syft-accounting-sdk: "
        "pip install 'dragoman[syftbox]'"
    )
    load_config_dict({})  # a config without the section does not care


def test_accounting_must_be_the_datasite_account(
    make_router: Callable[..., RouterUnderTest], accounting: FakeAccounting
) -> None:
    other = {"url": accounting.url, "email": ALICE, "password": "pw"}
    with pytest.raises(
        ConfigError, match=re.escape(f"syftbox.accounting.email: {ALICE} is not the SyftBox")
    ):
        make_router(accounting=other)


def test_wrong_accounting_password_fails_at_start(
    make_router: Callable[..., RouterUnderTest], accounting: FakeAccounting
) -> None:
    wrong = {"url": accounting.url, "email": ROUTER, "password": "nope"}
    with pytest.raises(
        ConfigError, match=re.escape("refused the credentials of router@example.com")
    ):
        make_router(accounting=wrong)


def test_the_seeds_credentials_file_is_the_default(
    make_router: Callable[..., RouterUnderTest],
    root: Path,
    accounting: FakeAccounting,
    alice: Any,
    pay: Callable[..., str],
) -> None:
    with pytest.raises(ConfigError, match=re.escape("accounting-config.json does not exist")):
        make_router(accounting=None)
    creds = {"email": ROUTER, "password": "router-secret", "url": accounting.url}
    (root / ".syftbox" / "accounting-config.json").write_text(json.dumps(creds))
    make_router(accounting=None)
    r = call(alice, LEGACY, "chat", {"model": "claude", "messages": [], "accounting_token": "x"})
    assert r.json()["code"] == 402  # the account works: the service judged the token
    assert accounting.balance(ALICE) == 10.0


def test_a_missing_client_config_fails_at_start(
    make_router: Callable[..., RouterUnderTest], root: Path
) -> None:
    with pytest.raises(ConfigError, match=re.escape("syftbox.client_config: cannot load")):
        make_router(client_config=str(root / "nowhere.json"))


def test_publish_writes_what_syft_hub_lists(
    config: dict[str, Any], root: Path, tmp_path: Path
) -> None:
    path = tmp_path / "dragoman.yaml"
    path.write_text(yaml.safe_dump(config))
    r = CliRunner().invoke(
        main, ["syftbox", "publish", "--config", str(path), "--summary", "Claude, paid per chat"]
    )
    assert r.exit_code == 0, r.output
    written = root / "SyftBox" / "datasites" / ROUTER / "public" / "routers" / APP
    assert r.output == f"published {APP} as {ROUTER}: {written / 'metadata.json'}\n"
    meta = json.loads((written / "metadata.json").read_text())
    # syft-hub 0.1.32's validate_metadata: these keys, services a list of objects with a type
    assert {"project_name", "author", "services"} <= meta.keys()
    assert all(isinstance(s, dict) and "type" in s for s in meta["services"])
    assert (meta["project_name"], meta["author"], meta["summary"]) == (
        APP,
        ROUTER,
        "Claude, paid per chat",
    )
    assert meta["services"] == [
        {"type": "chat", "enabled": True, "pricing": PRICE, "charge_type": "per_request"},
        {"type": "search", "enabled": False, "pricing": 0.0, "charge_type": "per_request"},
    ]
    assert meta["models"] == ["claude-sonnet-4-6", "claude", "claude-3-sonnet"]
    assert datetime.fromisoformat(meta["publish_date"]).tzinfo is not None
    chat = meta["documented_endpoints"]["/chat"]["args"]["request"]["type"]
    assert chat["name"] == "HubChatRequest"
    assert set(chat["schema"]["required"]) == {"userEmail", "model", "messages"}


def test_publish_needs_a_syftbox_section(tmp_path: Path) -> None:
    path = tmp_path / "dragoman.yaml"
    path.write_text("models: {}\n")
    r = CliRunner().invoke(main, ["syftbox", "publish", "--config", str(path)])
    assert r.exit_code == 1
    assert r.output == f"Error: {path}: no syftbox: section (docs/syftbox.md)\n"


def test_dragoman_syftbox_serve(config: dict[str, Any], root: Path, alice: Any) -> None:
    """The command as a user runs it: serves until SIGTERM, then stops promptly."""
    path = root / "dragoman.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dragoman", "syftbox", "serve", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOME": str(root)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == (
            f"dragoman serving SyftBox apps {LEGACY} and {APP} as {ROUTER} ({root / 'SyftBox'})\n"
        ), proc.stderr.read() if proc.stderr else ""
        r = call(alice, LEGACY, "ping")
        assert (r.status_code, r.body) == (200, b"pong")
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - t < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
