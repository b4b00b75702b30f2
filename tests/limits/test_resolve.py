"""Which limits apply to a request (``Limiter``), and the config that declares them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dragoman.config import ConfigError, load_config_dict
from dragoman.limits import Limiter, token_estimate
from dragoman.state import Limit, workers_error


@dataclass
class Key:
    id: str
    alias: str | None = None
    team: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None


ISSUE_EXAMPLE = [
    {"scope": "key", "rpm": 60, "tpm": 200000, "concurrency": 8},
    {"scope": "key", "target": "ci", "rpm": 10},
    {"scope": "team", "target": "eng", "tpm": 1000000},
    {"scope": "model", "target": "claude-sonnet-4-5", "rpm": 1000},
    {"scope": "global", "rpm": 5000},
]
MODELS = {"claude-sonnet-4-5": {"provider": "a"}, "other": {"provider": "a"}}


def config(limits: list[dict[str, object]], **extra: object) -> object:
    return load_config_dict(
        {
            "providers": {"a": {"kind": "anthropic", "base_url": "http://x"}},
            "models": MODELS,
            "limits": limits,
            **extra,
        }
    )


def limiter(limits: list[dict[str, object]]) -> Limiter:
    return Limiter(config(limits).limits)  # type: ignore[attr-defined]


def test_the_issue_example() -> None:
    lm = limiter(ISSUE_EXAMPLE)
    got = lm.for_request(Key("key_1", alias="ci", team="eng"), "claude-sonnet-4-5")
    assert got == (
        # the targeted rpm wins over every key's; tpm and concurrency stay every key's
        Limit("k:key_1", 10, 200000, 8, "key ci"),
        Limit("t:eng", None, 1000000, None, "team eng"),
        Limit("m:claude-sonnet-4-5", 1000, None, None, "model claude-sonnet-4-5"),
        Limit("g", 5000, None, None, "the gateway"),
    )
    other = lm.for_request(Key("key_2"), "other")
    assert other == (
        Limit("k:key_2", 60, 200000, 8, "key key_2"),
        Limit("g", 5000, None, None, "the gateway"),
    )


def test_target_by_id_and_the_keys_own_fields_win() -> None:
    lm = limiter(
        [{"scope": "key", "rpm": 60}, {"scope": "key", "target": "key_7", "rpm": 5, "tpm": 50}]
    )
    assert lm.for_request(Key("key_7", alias="bot")) == (Limit("k:key_7", 5, 50, None, "key bot"),)
    own = Key("key_7", rpm=1000, max_concurrency=2)
    assert lm.for_request(own) == (Limit("k:key_7", 1000, 50, 2, "key key_7"),)
    # a key's own fields apply with no limits in the config at all
    assert Limiter([]).for_request(Key("k", tpm=9)) == (Limit("k:k", None, 9, None, "key k"),)


def test_sender_callers_skip_key_and_team_limits() -> None:
    lm = limiter(
        [{"scope": "key", "rpm": 1}, {"scope": "team", "rpm": 2}, {"scope": "sender", "rpm": 10}]
    )
    got = lm.for_request(Key("k", team="eng"), sender="alice@example.org")
    assert got == (Limit("s:alice@example.org", 10, None, None, "sender alice@example.org"),)


def test_nothing_applies() -> None:
    assert Limiter([]).empty
    assert Limiter([]).for_request(None, "m") == ()
    lm = limiter([{"scope": "model", "target": "other", "rpm": 3}])
    assert lm.for_request(None, "claude-sonnet-4-5") == ()
    assert lm.for_request(None, "other") == (Limit("m:other", 3, None, None, "model other"),)


def test_token_estimate() -> None:
    assert token_estimate(1200, 4096) == 5296
    assert token_estimate(1200, None) == 1200


@pytest.mark.parametrize(
    ("limits", "extra", "message"),
    [
        ([{"scope": "key"}], {}, "limits.0: give at least one of rpm, tpm, concurrency"),
        (
            [{"scope": "global", "target": "x", "rpm": 1}],
            {},
            "limits.0: a global limit has no target",
        ),
        (
            [{"scope": "model", "target": "nope", "rpm": 1}],
            {},
            "limits.0.target: unknown model 'nope'",
        ),
        (
            [{"scope": "key", "rpm": 1}, {"scope": "key", "tpm": 1}],
            {},
            "limits.1: a second limit for every key (limits.0)",
        ),
        (
            [
                {"scope": "team", "target": "a", "rpm": 1},
                {"scope": "team", "target": "a", "rpm": 2},
            ],
            {},
            "limits.1: a second limit for team 'a' (limits.0)",
        ),
        (
            [{"scope": "key", "rpm": 0}],
            {},
            "limits.0.rpm: Input should be greater than or equal to 1",
        ),
        (
            [{"scope": "user", "rpm": 1}],
            {},
            "limits.0.scope: Input should be 'key', 'team', 'model', 'global' or 'sender'",
        ),
        ([], {"cache": {"backend": "redis"}}, "cache.backend: redis needs cache.url or state.url"),
        (
            [],
            {"state": {"on_error": "maybe"}},
            "state.on_error: Input should be 'open' or 'closed'",
        ),
    ],
)
def test_config_errors(
    limits: list[dict[str, object]], extra: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as e:
        config(limits, **extra)
    assert str(e.value) == f"<dict>: {message}"


def test_config_defaults() -> None:
    cfg = config([])
    assert cfg.state.url is None and cfg.state.on_error == "open"  # type: ignore[attr-defined]
    assert cfg.cache is None  # type: ignore[attr-defined]
    on = config([], cache={"backend": "redis"}, state={"url": "redis://127.0.0.1:6379/0"})
    assert on.cache.ttl == 3600 and on.cache.max_entry_bytes == 1048576  # type: ignore[attr-defined]
    assert on.cache.scope == "key"  # type: ignore[attr-defined]


def test_workers_need_shared_state() -> None:
    assert workers_error(config([]), 1) is None  # type: ignore[arg-type]
    msg = workers_error(config([]), 3)  # type: ignore[arg-type]
    assert msg is not None and msg.startswith("--workers 3 needs shared state: set state.url")
    shared = config([], state={"url": "redis://127.0.0.1:6379/0"})
    assert workers_error(shared, 3) is None  # type: ignore[arg-type]
