"""``dragoman serve --workers N`` (docs/limits.md, "Many processes"): N processes on one port
(``--port 0`` included), each its own instance in the store, all stopped by one SIGTERM; and no
N > 1 without ``state.url``. Through a real ``dragoman serve`` with SQLite and Redis."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import openai
import pytest
import redis
from tests.fakes import FakeOpenAI
from tests.support import http
from tests.support.serve import ServeProcess

REDIS = os.environ.get("DRAGOMAN_TEST_REDIS", "redis://127.0.0.1:6379/0")
ADMIN = {"x-api-key": "admin-for-workers-0123456789"}
KEY = "dg-workers-client-0123456789"
MASTER = "master-key-for-workers-tests-0123456789abcdefghij"


def _cfg(tmp: Path, up: FakeOpenAI, state: str) -> Path:
    f = tmp / "dragoman.yaml"
    f.write_text(
        f"auth: {{keys: ['{KEY}'], admin_key: '{ADMIN['x-api-key']}'}}\n"
        f"{state}"
        "providers:\n"
        f"  vllm: {{kind: openai, base_url: '{up.base_url}', api_key: '{up.api_key}'}}\n"
        "models:\n"
        "  coder: {provider: vllm, model: qwen3-coder, context_window: 32768}\n"
        f"store: {{url: 'sqlite:///{tmp}/s.db', flush_interval: 0.05}}\n"
    )
    return f


def _env() -> dict[str, str]:
    return {**os.environ, "DRAGOMAN_MASTER_KEY": MASTER, "DRAGOMAN_LOG_LEVEL": "WARNING"}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_three_workers_share_one_port(tmp_path: Path) -> None:
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"Redis is not running at {REDIS}")
    prefix = f"dgtest:{uuid.uuid4().hex[:12]}:"
    state = f"state: {{url: '{REDIS}', prefix: '{prefix}'}}\n"
    with FakeOpenAI("vllm") as up:
        srv = ServeProcess(_cfg(tmp_path, up, state), env=_env(), args=["--workers", "3"])
        with srv:
            assert "3 workers" in srv.output()
            pids: set[int] = set()
            for _ in range(60):  # a new connection each: the kernel spreads them (SO_REUSEPORT)
                pids.add(http.get(srv.url + "/health", ADMIN).json()["pid"])
            assert len(pids) == 3 and srv.proc is not None and srv.proc.pid not in pids
            client = openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, max_retries=0)
            for _ in range(6):
                msg = [{"role": "user", "content": "hi"}]
                assert client.chat.completions.create(model="coder", messages=msg).choices
            # each worker is its own instance for crash recovery (docs/accounting.md)
            with sqlite3.connect(tmp_path / "s.db") as db:
                ids = [r[0] for r in db.execute("SELECT id FROM instances")]
            assert {int(i.split("|")[2]) for i in ids} == pids
            t0 = time.monotonic()
            assert srv.stop(signal.SIGTERM, timeout=15) == 0
            assert time.monotonic() - t0 < 10
            assert all(_gone(p) for p in pids)
        with sqlite3.connect(tmp_path / "s.db") as db:
            assert db.execute("SELECT COUNT(*) FROM usage").fetchone()[0] == 6
            assert db.execute("SELECT COUNT(*) FROM instances").fetchone()[0] == 0


def test_more_than_one_worker_needs_state_url(tmp_path: Path) -> None:
    with FakeOpenAI("vllm") as up:
        cfg = _cfg(tmp_path, up, "")
        cmd = [sys.executable, "-m", "dragoman", "serve", "--config", str(cfg), "--port", "0"]
        r = subprocess.run(
            [*cmd, "--workers", "2"],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=30,
        )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "--workers 2 needs state.url" in r.stderr and "rate limits" in r.stderr
    assert "serving on" not in r.stdout


def test_workers_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves the parent no chance to forward anything: the workers stop by
    themselves (Linux: PR_SET_PDEATHSIG), instead of serving on as orphans."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux only")
    state = f"state: {{url: '{REDIS}'}}\n"  # not contacted here: only required for N > 1
    with FakeOpenAI("vllm") as up:
        srv = ServeProcess(_cfg(tmp_path, up, state), env=_env(), args=["--workers", "2"])
        with srv:
            m = re.search(r"2 workers: (\d+), (\d+)\)", srv.output())
            assert m is not None, srv.output()
            pids = [int(m.group(1)), int(m.group(2))]
            assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
            deadline = time.monotonic() + 10
            while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert all(_gone(p) for p in pids)
