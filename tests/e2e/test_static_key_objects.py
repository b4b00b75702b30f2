"""Static keys written as objects with an alias and a team (docs/limits.md): through a real
``dragoman serve``, the alias and team name the key in its usage rows; a key object whose
secret expands to nothing stops the start, like a string key."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import openai
import pytest
from tests.e2e.test_security import CHAT, _cfg, _env, _o, _refused, up  # noqa: F401
from tests.fakes import FakeOpenAI
from tests.support.serve import ServeProcess

K1 = "dg-static-one-0123456789"
K2 = "dg-static-two-0123456789"
MASTER = "master-key-for-static-key-objects-0123456789abcdef"


def test_alias_and_team_reach_the_usage_rows(tmp_path: Path, up: FakeOpenAI) -> None:  # noqa: F811
    auth = (
        "auth:\n  keys:\n    - '${DG_SEC_K1}'\n    - {key: '${DG_SEC_K2}', alias: ci, team: eng}\n"
    )
    cfg = _cfg(tmp_path, up, auth, store=True)
    env = _env(DG_SEC_K1=K1, DG_SEC_K2=K2, DRAGOMAN_MASTER_KEY=MASTER)
    with ServeProcess(cfg, env=env) as srv:
        for key in (K1, K2, K2):
            assert _o(srv.url, key).chat.completions.create(**CHAT).choices  # type: ignore[call-overload]
        with pytest.raises(openai.AuthenticationError):
            _o(srv.url, "dg-static-three").chat.completions.create(**CHAT)  # type: ignore[call-overload]
        assert srv.stop() == 0  # a graceful stop writes every usage row
    with sqlite3.connect(tmp_path / "s.db") as db:
        rows = db.execute(
            "SELECT key_id, key_alias, team, COUNT(*) FROM usage GROUP BY key_id, key_alias, team "
            "ORDER BY key_alias"
        ).fetchall()
    assert [r[1:] for r in rows] == [("ci", "eng", 2), ("static-1", None, 1)]
    # ids are the store-keyed static ids, never the secrets
    assert all(r[0].startswith("static-") and K1 not in r[0] and K2 not in r[0] for r in rows)


@pytest.mark.parametrize(
    ("auth", "named"),
    [
        ("{keys: [{key: '${DG_SEC_UNSET}', alias: ci}]}", "auth.keys.0.key"),
        ("{keys: [k-one-0123456789, {key: '${DG_SEC_UNSET}', team: eng}]}", "auth.keys.1.key"),
    ],
)
def test_a_key_object_expanding_to_empty_stops_the_start(
    tmp_path: Path,
    up: FakeOpenAI,  # noqa: F811
    auth: str,
    named: str,
) -> None:
    r = _refused(_cfg(tmp_path, up, f"auth: {auth}\n"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert named in r.stderr and "empty" in r.stderr
    assert "serving on" not in r.stdout
