"""Virtual keys, static keys, credentials, and no plaintext secret at rest."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import pytest
from sqlalchemy import String, Text, select

from dragoman.accounting import Accountant
from dragoman.errors import PermissionDeniedError
from dragoman.store import keys as keys_mod
from dragoman.store import schema
from dragoman.store.db import utcnow
from dragoman.store.secrets import MasterKeyMissingError, decrypt, encrypt, fernet_for

from .conftest import MASTER, make_config


async def test_create_authenticate_revoke(acct: Accountant) -> None:
    assert acct.keys is not None
    pub, secret = await acct.keys.create(alias="alice", team="red", owner="a@x", metadata={"k": 1})
    assert secret.startswith("dg-") and "secret" not in pub
    info = await acct.authenticate(secret)
    assert info is not None and info.id == pub["id"] and not info.is_static
    assert (info.alias, info.team, info.owner, info.metadata) == ("alice", "red", "a@x", {"k": 1})
    assert await acct.authenticate(secret + "x") is None
    assert await acct.authenticate("") is None
    await acct.keys.revoke(pub["id"])
    acct.invalidate_keys()  # what the admin API does; other processes wait for the TTL
    assert await acct.authenticate(secret) is None


@pytest.mark.any_dialect
async def test_ttl_cache(db_url: str) -> None:
    now = [100.0]
    a = await Accountant.create(
        make_config(db_url, auth={"key_cache_ttl": 0.2}), clock=lambda: now[0]
    )
    try:
        assert a.keys is not None and a.key_watch is not None
        # the TTL alone (test_key_watch_drops_the_cache covers the once-a-second watch)
        await a.key_watch.stop()
        pub, secret = await a.keys.create(alias="c")
        assert await a.authenticate(secret) is not None
        calls = 0
        real = a.keys.lookup

        async def counting(h: str) -> Any:
            nonlocal calls
            calls += 1
            return await real(h)

        a.keys.lookup = counting  # type: ignore[method-assign]
        for _ in range(5):
            assert await a.authenticate(secret) is not None
        assert calls == 0  # served from the cache
        await a.keys.revoke(pub["id"])  # revoked behind the cache's back (e.g. by the CLI)
        now[0] += 0.19
        assert await a.authenticate(secret) is not None  # still cached
        assert calls == 0
        now[0] += 0.02  # past the TTL
        assert await a.authenticate(secret) is None
        assert calls == 1
        assert await a.authenticate(secret) is None  # the refusal is cached too
        assert calls == 1
    finally:
        await a.close()


@pytest.mark.any_dialect
async def test_expiry(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    wall: list[_dt.datetime | None] = [None]  # the accountant's wall clock: utcnow until set
    acct = await Accountant.create(make_config(db_url), now=lambda: wall[0] or utcnow())
    try:
        assert acct.keys is not None
        _, past = await acct.keys.create(expires_at=utcnow() - _dt.timedelta(seconds=1))
        _, future = await acct.keys.create(expires_at="2999-01-01T00:00:00Z")
        assert await acct.authenticate(past) is None
        assert await acct.authenticate(future) is not None
        # a cached key expires on time too (the wall clock is the accountant's utcnow)
        pub, soon = await acct.keys.create(expires_at=utcnow() + _dt.timedelta(hours=1))
        assert await acct.authenticate(soon) is not None
        later = utcnow() + _dt.timedelta(hours=1, seconds=1)
        wall[0] = later
        assert await acct.authenticate(soon) is None
        monkeypatch.setattr(keys_mod, "utcnow", lambda: later)
        keys = {k["id"]: k for k in await acct.keys.list()}
        assert keys[pub["id"]]["status"] == "expired"
    finally:
        await acct.close()


@pytest.mark.any_dialect
async def test_allowed_models(acct: Accountant) -> None:
    assert acct.keys is not None
    _, secret = await acct.keys.create(allowed_models=["gpt-4o", "claude-*"])
    info = await acct.authenticate(secret)
    assert info is not None and info.allowed_models == ["gpt-4o", "claude-*"]
    acct.check_model_allowed(info, "gpt-4o")
    acct.check_model_allowed(info, "claude-haiku-4-5")
    with pytest.raises(PermissionDeniedError) as e:
        acct.check_model_allowed(info, "gpt-4o-mini")
    assert e.value.status == 403 and "gpt-4o-mini" in e.value.message
    acct.check_model_allowed(None, "anything")
    _, any_secret = await acct.keys.create()
    acct.check_model_allowed(await acct.authenticate(any_secret), "anything")


@pytest.mark.any_dialect
async def test_update(acct: Accountant) -> None:
    assert acct.keys is not None
    pub, secret = await acct.keys.create(alias="a")
    got = await acct.keys.update(pub["id"], team="blue", budget_usd=2.5, allowed_models=None)
    assert got is not None and got["team"] == "blue" and got["budget_usd"] == 2.5
    acct.invalidate_keys()
    info = await acct.authenticate(secret)
    assert info is not None and info.team == "blue" and info.budget_usd == 2.5
    with pytest.raises(ValueError):
        await acct.keys.update(pub["id"], budget_period="hourly")
    assert await acct.keys.update("nope", team="x") is None


@pytest.mark.any_dialect
async def test_static_keys(acct: Accountant) -> None:
    info = await acct.authenticate("static-secret-1")
    assert info is not None and info.is_static and info.budget_usd is None
    assert "static-secret-1" not in info.id
    assert (await acct.authenticate("static-secret-1")) == info
    assert await acct.authenticate("static-secret-2") is None


@pytest.mark.any_dialect
async def test_key_watch_drops_the_cache(db_url: str) -> None:
    """A key written by another process (the CLI, another gateway) moves ``keys_version``; the
    watcher's next read drops this process's cache and notes that virtual keys exist (audit
    #1b, #24), without a database read on the request path."""
    other = await Accountant.create(make_config(db_url, auth={"keys": [], "admin_key": None}))
    a = await Accountant.create(make_config(db_url, auth={"keys": [], "admin_key": None}))
    try:
        assert a.key_watch is not None and other.keys is not None and a.keys is not None
        await a.key_watch.stop()  # polled by hand below
        assert not a.virtual_keys
        pub, secret = await other.keys.create(alias="w")
        await a.key_watch.poll()
        assert a.virtual_keys
        assert await a.authenticate(secret) is not None  # cached now
        await other.keys.revoke(pub["id"])
        assert await a.authenticate(secret) is not None  # the cache, until the next poll
        await a.key_watch.poll()
        assert await a.authenticate(secret) is None
        assert not a.virtual_keys  # the only key is revoked
        before = a.key_watch.version
        await other.keys.update(pub["id"], alias="w2")
        await a.key_watch.poll()
        assert a.key_watch.version != before
    finally:
        await a.close()
        await other.close()


async def test_static_key_ids_are_keyed_by_the_pepper(db_url: str) -> None:
    """A static key's id is public (usage rows, budget views): it must not let anyone test
    guesses of the key offline, as an HMAC under a public constant did (audit #26), and it
    must stay the same across restarts (limits and budgets name keys by it)."""
    from dragoman.accounting.keys import static_key_id
    from dragoman.store.secrets import hash_secret

    public = f"static-{hash_secret(b'dragoman static key id', 'static-secret-1')[:12]}"
    a = await Accountant.create(make_config(db_url))
    info = await a.authenticate("static-secret-1")
    await a.close()
    b = await Accountant.create(make_config(db_url))
    again = await b.authenticate("static-secret-1")
    await b.close()
    assert info is not None and again is not None
    assert info.id == again.id != public
    assert info.id == static_key_id(b.keyring.pepper, "static-secret-1")


async def test_store_disabled_static_only() -> None:
    cfg = make_config("sqlite:///unused.db", store={"enabled": False})
    a = await Accountant.create(cfg)
    try:
        assert (await a.authenticate("static-secret-1")) is not None
        assert await a.authenticate("dg-whatever") is None
        assert await a.credential("x") is None
    finally:
        await a.close()


def test_fernet_key_and_derivation() -> None:
    from cryptography.fernet import Fernet

    fk = Fernet.generate_key().decode()
    tok = encrypt(fk, "sk-abc")
    assert Fernet(fk.encode()).decrypt(tok.encode()) == b"sk-abc"  # used as is
    tok2 = encrypt("plain passphrase", "sk-abc")
    assert decrypt("plain passphrase", tok2) == "sk-abc"
    assert fernet_for("plain passphrase").decrypt(tok2.encode()) == b"sk-abc"
    with pytest.raises(MasterKeyMissingError):
        decrypt("other passphrase", tok2)
    with pytest.raises(MasterKeyMissingError, match="DRAGOMAN_MASTER_KEY"):
        encrypt(None, "x")


async def test_credentials(acct: Accountant) -> None:
    assert acct.keys is not None
    out = await acct.keys.put_credential("anthropic-prod", "sk-ant-123", provider="anth")
    assert out["name"] == "anthropic-prod" and "sk-ant" not in str(out)
    assert await acct.credential("anthropic-prod") == "sk-ant-123"
    assert await acct.credential("missing") is None
    await acct.keys.put_credential("anthropic-prod", "sk-ant-456")  # replace
    acct.forget_credential("anthropic-prod")
    assert await acct.credential("anthropic-prod") == "sk-ant-456"
    assert [c["name"] for c in await acct.keys.list_credentials()] == ["anthropic-prod"]
    assert await acct.keys.delete_credential("anthropic-prod")
    acct.forget_credential("anthropic-prod")
    assert await acct.credential("anthropic-prod") is None


async def _dump(acct: Accountant, db_url: str) -> bytes:
    """Everything the database holds: the raw file(s) for SQLite, every text column for PG."""
    await acct.flush()
    if db_url.startswith("sqlite"):
        from pathlib import Path

        base = Path(db_url.split("///", 1)[1])
        files = [base.with_name(base.name + s) for s in ("", "-wal", "-shm")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    assert acct.engine is not None
    chunks: list[str] = []
    async with acct.engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            cols = [c for c in table.columns if isinstance(c.type, String | Text)]
            if cols:
                for row in await conn.execute(select(*cols)):
                    chunks.extend(str(v) for v in row if v is not None)
    return "\n".join(chunks).encode()


async def test_no_plaintext_secrets_at_rest(acct: Accountant, db_url: str) -> None:
    assert acct.keys is not None
    secrets = []
    for i in range(3):
        _, s = await acct.keys.create(alias=f"k{i}", metadata={"note": "x"})
        secrets.append(s)
        assert await acct.authenticate(s) is not None
    provider_keys = ["sk-ant-api03-SECRETSECRETSECRET", "sk-proj-OPENAISECRET0123456789"]
    for i, pk in enumerate(provider_keys):
        await acct.keys.put_credential(f"cred{i}", pk)
    dump = await _dump(acct, db_url)
    assert len(dump) > 300
    for s in [*secrets, *provider_keys, "static-secret-1", "admin-secret", MASTER]:
        assert s.encode() not in dump, s
        assert s[3:20].encode() not in dump  # not even a large piece
    assert b"cred0" in dump and b"k1" in dump  # the dump is real
