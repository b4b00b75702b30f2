"""The master key at rest (docs/keys-at-rest.md): a generated key file, a verifier in the
database, weak keys refused; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dragoman.accounting import Accountant
from dragoman.config import Config
from dragoman.store.db import create_engine, set_setting_if_absent
from dragoman.store.master import MasterKeyError, weakness

from .conftest import MASTER, make_config


def _cfg(db_url: str, key_file: Path) -> Config:
    return make_config(db_url, store={"master_key_file": str(key_file)})


async def test_generated_key_file_is_private_reused_and_used_for_credentials(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRAGOMAN_MASTER_KEY")
    key_file = tmp_path / "state" / "master-key"
    a = await Accountant.create(_cfg(db_url, key_file))
    try:
        assert a.keys is not None
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        first = key_file.read_text()
        _, secret = await a.keys.create(alias="k")
        await a.keys.put_credential("prov", "sk-provider-1")  # no longer refused
    finally:
        await a.close()
    b = await Accountant.create(_cfg(db_url, key_file))
    try:
        assert key_file.read_text() == first  # written once, reused
        assert await b.authenticate(secret) is not None
        assert await b.credential("prov") == "sk-provider-1"
    finally:
        await b.close()
    # the same key given in the environment is the same master key
    monkeypatch.setenv("DRAGOMAN_MASTER_KEY", first.strip())
    c = await Accountant.create(_cfg(db_url, tmp_path / "elsewhere"))
    try:
        assert await c.authenticate(secret) is not None
        assert not (tmp_path / "elsewhere").exists()
    finally:
        await c.close()


async def test_wrong_master_key_stops_the_start(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await Accountant.create(_cfg(db_url, tmp_path / "unused"))
    try:
        assert a.keys is not None
        await a.keys.create(alias="k")
    finally:
        await a.close()
    monkeypatch.setenv("DRAGOMAN_MASTER_KEY", MASTER[::-1])
    with pytest.raises(MasterKeyError, match="DRAGOMAN_MASTER_KEY is not the master key"):
        await Accountant.create(_cfg(db_url, tmp_path / "unused"))
    # unset, with no key file: not a new key, but the same clear refusal
    monkeypatch.delenv("DRAGOMAN_MASTER_KEY")
    with pytest.raises(MasterKeyError, match="no master key file at"):
        await Accountant.create(_cfg(db_url, tmp_path / "unused"))
    assert not (tmp_path / "unused").exists()
    # a key file holding another key names the file
    other = tmp_path / "other-key"
    other.write_text("x" * 20 + "abcdefghijklmnopqrstuvwxyz")
    other.chmod(0o600)
    with pytest.raises(MasterKeyError, match=f"master key file {other} .* is not the master key"):
        await Accountant.create(_cfg(db_url, other))


@pytest.mark.any_dialect
async def test_key_file_readable_by_others_is_refused(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRAGOMAN_MASTER_KEY")
    key_file = tmp_path / "mk"
    key_file.write_text("k" * 10 + "0123456789abcdefghijklmnopqrstuvwxyz")
    key_file.chmod(0o644)
    with pytest.raises(MasterKeyError, match=r"readable by others \(mode 0644\): run `chmod 600"):
        await Accountant.create(_cfg(db_url, key_file))


@pytest.mark.any_dialect
@pytest.mark.parametrize("weak", ["hunter2", "master-key-for-tests", "a" * 64, "abcdefghi" * 6])
async def test_weak_master_key_is_refused(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weak: str
) -> None:
    monkeypatch.setenv("DRAGOMAN_MASTER_KEY", weak)
    with pytest.raises(MasterKeyError, match=r"DRAGOMAN_MASTER_KEY is too weak .*token_urlsafe"):
        await Accountant.create(_cfg(db_url, tmp_path / "mk"))


def test_strong_keys_pass() -> None:
    import base64
    import secrets

    from cryptography.fernet import Fernet

    for key in (
        secrets.token_urlsafe(32),
        secrets.token_hex(32),
        base64.b64encode(os.urandom(32)).decode(),
        Fernet.generate_key().decode(),
    ):
        assert weakness(key) is None, key


async def test_database_with_a_legacy_pepper_keeps_its_keys(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database from before the key file (a pepper generated into ``settings``): its keys keep
    working and a key file is created for what is new (credentials)."""
    monkeypatch.delenv("DRAGOMAN_MASTER_KEY")
    eng = create_engine(db_url)
    try:
        async with eng.begin() as conn:
            await set_setting_if_absent(conn, "key_pepper", "ab" * 32)
    finally:
        await eng.dispose()
    from dragoman.store.secrets import hash_secret

    a = await Accountant.create(_cfg(db_url, tmp_path / "mk"))
    try:
        assert a.keys is not None and a.keys.pepper == bytes.fromhex("ab" * 32)
        assert a.keys.hash("s") == hash_secret(bytes.fromhex("ab" * 32), "s")
        await a.keys.put_credential("prov", "sk-1")
        assert (tmp_path / "mk").exists()
    finally:
        await a.close()
