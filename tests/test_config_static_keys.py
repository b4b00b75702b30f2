"""``auth.keys`` entries as strings or ``{key, alias, team}`` objects (docs/limits.md): what the
config keeps, what a static key's ``KeyInfo`` carries, and how a limit finds it by alias."""

from __future__ import annotations

import time

import pytest

from dragoman.accounting.keys import Keyring, static_key_id
from dragoman.config import ConfigError, LimitConfig, load_config_dict
from dragoman.limits.resolve import Limiter
from dragoman.store.db import utcnow

PEPPER = b"p" * 32


def _cfg(keys: list[object], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return load_config_dict({"auth": {"keys": keys}}, env=env or {})


def test_strings_and_objects() -> None:
    cfg = _cfg(
        ["${K1}", {"key": "${K2}", "alias": "ci", "team": "eng"}, {"key": "k3"}],
        {"K1": "one", "K2": "two"},
    )
    assert cfg.auth.secrets == ["one", "two", "k3"]
    got = [(k.key, k.alias, k.team) for k in cfg.auth.static_keys]
    assert got == [("one", "static-1", None), ("two", "ci", "eng"), ("k3", "static-3", None)]
    assert cfg.auth.unset == []


@pytest.mark.parametrize(
    ("keys", "msg"),
    [
        ([{"key": "a", "alias": "ci"}, {"key": "b", "alias": "ci"}], "alias 'ci' is used"),
        (["a", {"key": "b", "alias": "static-1"}], "alias 'static-1' is used"),
        ([{"key": "a", "colour": "red"}], "unknown key"),
        ([{"alias": "ci"}], "key"),
        ([{"key": "a", "alias": ""}], "alias"),
    ],
)
def test_bad_objects_are_config_errors(keys: list[object], msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        _cfg(keys)


def test_an_object_expanding_to_empty_is_unset() -> None:
    cfg = _cfg(["${K1}", {"key": "${NOPE}", "alias": "ci"}, "${NOPE}"], {"K1": "one"})
    assert cfg.auth.unset == ["auth.keys.1.key", "auth.keys.2"]
    assert cfg.auth.secrets == ["one"]


async def test_static_key_info_carries_alias_and_team() -> None:
    cfg = _cfg(["one", {"key": "two", "alias": "ci", "team": "eng"}])
    ring = Keyring(cfg, PEPPER, None, clock=time.monotonic, now=utcnow)
    one, two = await ring.authenticate("one"), await ring.authenticate("two")
    assert one is not None and (one.alias, one.team, one.is_static) == ("static-1", None, True)
    assert two is not None and (two.alias, two.team, two.is_static) == ("ci", "eng", True)
    assert two.id == static_key_id(PEPPER, "two")
    assert await ring.authenticate("three") is None
    # a limit finds the static key by its alias, and its team's limit applies
    limiter = Limiter(
        [
            LimitConfig(scope="key", rpm=60),
            LimitConfig(scope="key", target="ci", rpm=10),
            LimitConfig(scope="team", target="eng", tpm=1000),
        ]
    )
    lims = limiter.for_request(two)
    assert [(x.counter, x.rpm, x.tpm) for x in lims] == [
        ("k:" + two.id, 10, None),
        ("t:eng", None, 1000),
    ]
    assert [(x.rpm, x.tpm) for x in limiter.for_request(one)] == [(60, None)]
