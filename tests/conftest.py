"""Suite-wide rules: no silent skips in CI, reproducible Hypothesis runs there.

* ``CI=true`` (``.ci/run`` sets it): a test marked ``postgres``, ``redis``, ``claude_code``,
  ``codex`` or ``syftbox`` that skips (the service, the CLI or the ``dragoman[syftbox]`` extra is
  not there) is reported as a *failure*: CI provides them, so a skip means the run did not test
  what it claims to.
* Hypothesis: the ``ci`` profile (``derandomize=True``: the same examples on every run, so a
  failure reproduces; ``print_blob=True``: a failure prints the blob that replays it;
  ``deadline=None``: a busy CI machine is not a bug) is loaded when ``CI=true``. Elsewhere
  Hypothesis draws fresh examples each run, as usual. ``.hypothesis/`` stays untracked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

pytest_plugins = ["pytester"]  # tests/test_ci_rules.py runs small suites under these rules

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

#: tests that need a service or a tool CI provides: there, they must run rather than skip
NEEDS_CI_SERVICE = ("postgres", "redis", "claude_code", "codex", "syftbox")

settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
if IN_CI:
    settings.load_profile("ci")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not (IN_CI and rep.skipped) or hasattr(rep, "wasxfail"):
        return
    needs = [m for m in NEEDS_CI_SERVICE if item.get_closest_marker(m) is not None]
    if not needs:
        return
    why = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    rep.outcome = "failed"
    rep.longrepr = (
        f"skipped under CI=true, where {' and '.join(needs)} must be available: {why}\n"
        "(.ci/run starts PostgreSQL and Redis, installs the pinned CLIs and the syftbox extra; "
        "see its output)"
    )


@pytest.fixture(autouse=True, scope="session")
def _state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A generated master key of a store that is not a SQLite file (docs/keys-at-rest.md) goes
    to a directory of this run, never to the home directory of the machine running the tests;
    servers started by the tests inherit it."""
    old = os.environ.get("DRAGOMAN_STATE_DIR")
    os.environ["DRAGOMAN_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))
    yield
    if old is None:
        os.environ.pop("DRAGOMAN_STATE_DIR", None)
    else:
        os.environ["DRAGOMAN_STATE_DIR"] = old
