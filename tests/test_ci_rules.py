"""The suite-wide rules of tests/conftest.py, run on small suites in a subprocess."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT_CONFTEST = (Path(__file__).parent / "conftest.py").read_text()

SUITE = """
import pytest
from hypothesis import settings

@pytest.mark.postgres
def test_needs_pg():
    pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")

@pytest.mark.claude_code
@pytest.mark.skipif(True, reason="Claude Code CLI not installed")
def test_needs_cli():
    pass

@pytest.mark.redis
def test_redis_ran():
    pass

def test_optional_skip():
    pytest.skip("nothing CI provides")

def test_profile():
    s = settings()
    print("PROFILE", s.derandomize, s.print_blob, s.deadline)
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None) -> Any:
    pytester.makeconftest(ROOT_CONFTEST.replace('pytest_plugins = ["pytester"]', ""))
    pytester.makeini("[pytest]\nmarkers =\n    postgres\n    redis\n    claude_code\n    codex\n")
    pytester.makepyfile(test_suite=SUITE)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    return pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:cacheprovider", "-s", "-rA")


def test_ci_turns_service_skips_into_failures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = _run(pytester, monkeypatch, "true")
    # a skip in the test body fails it; one from a skipif mark (setup) is an error: both fail
    r.assert_outcomes(passed=2, failed=1, errors=1, skipped=1)
    assert r.ret != 0
    out = r.stdout.str()
    assert "FAILED test_suite.py::test_needs_pg" in out
    assert "ERROR test_suite.py::test_needs_cli" in out
    assert "where postgres must be available: Skipped: PostgreSQL is not running" in out
    assert "where claude_code must be available: Skipped: Claude Code CLI not installed" in out
    assert "SKIPPED [1] test_suite.py:18: nothing CI provides" in out
    assert "PROFILE True True None" in out  # the ci Hypothesis profile


def test_outside_ci_a_skip_is_a_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = _run(pytester, monkeypatch, None)
    r.assert_outcomes(passed=2, skipped=3)
    assert "PROFILE False" in r.stdout.str()  # Hypothesis draws fresh examples
