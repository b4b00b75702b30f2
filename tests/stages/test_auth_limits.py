"""``stages/auth.py`` (the only key extractor, fails closed) and ``stages/limits.py``."""

from __future__ import annotations

import pytest

from dragoman.core.exchange import Exchange, Reply
from dragoman.core.runtime import Runtime
from dragoman.errors import AuthenticationError
from dragoman.stages.auth import Auth, client_secret
from dragoman.stages.limits import Limits

from .support import Books, config, exchange


async def _ok(ex: Exchange) -> Reply:
    return Reply(200, {}, body=b"{}")


@pytest.mark.parametrize(
    ("headers", "secret"),
    [
        ({"x-api-key": "a"}, "a"),
        ({"authorization": "Bearer b"}, "b"),
        ({"authorization": "bearer  c "}, "c"),
        ({"x-api-key": "a", "authorization": "Bearer b"}, "a"),
        ({"authorization": "b"}, None),  # no scheme: not a secret
        ({"authorization": "Basic Zm9v"}, None),
        ({}, None),
    ],
)
def test_client_secret(headers: dict[str, str], secret: str | None) -> None:
    assert client_secret(headers) == secret


async def test_no_keys_configured_lets_everyone_in() -> None:
    ex = exchange()
    assert (await Auth(Runtime(config()))(ex, _ok)).status == 200
    assert ex.authenticated and ex.key is None


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}])
async def test_static_keys_fail_closed(headers: dict[str, str]) -> None:
    auth = Auth(Runtime(config(auth={"keys": ["sk-1"]})))
    with pytest.raises(AuthenticationError):
        await auth(exchange(headers=headers), _ok)
    ex = exchange(headers={"authorization": "Bearer sk-1"})
    assert (await auth(ex, _ok)).status == 200


async def test_virtual_keys_are_the_accountants() -> None:
    rt = Runtime(config(auth={"keys": ["sk-1"]}), accountant=Books())
    ex = exchange(headers={"x-api-key": "good"})
    await Auth(rt)(ex, _ok)
    assert ex.key == {"secret": "good"}
    with pytest.raises(AuthenticationError):
        await Auth(rt)(exchange(headers={"x-api-key": "sk-1"}), _ok)


async def test_in_process_callers_carry_no_key() -> None:
    ex = exchange(trusted=True)
    await Auth(Runtime(config(auth={"keys": ["sk-1"]})))(ex, _ok)
    assert ex.authenticated and ex.key is None


async def test_limits_is_a_pass_through_for_now() -> None:
    assert (await Limits()(exchange(), _ok)).status == 200


async def test_failures_are_limited_per_address_through_the_stage() -> None:
    """The same Auth object the server's routes use counts the pipeline's failures per
    address: after too many, even the right key from that address waits (429)."""
    from dragoman.errors import RateLimitError

    auth = Auth(Runtime(config(auth={"keys": ["sk-1"], "max_failures_per_minute": 2})))
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            await auth(exchange(headers={"x-api-key": "bad"}, remote="10.0.0.9"), _ok)
    with pytest.raises(RateLimitError):
        await auth(exchange(headers={"x-api-key": "sk-1"}, remote="10.0.0.9"), _ok)
    ok = exchange(headers={"x-api-key": "sk-1"}, remote="10.0.0.10")
    assert (await auth(ok, _ok)).status == 200
