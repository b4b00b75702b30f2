"""Keys at rest through a real ``dragoman serve`` and the ``dragoman keys`` CLI, restarted in turn,
on SQLite and PostgreSQL (docs/keys-at-rest.md; audit #16, #27).

Without ``DRAGOMAN_MASTER_KEY`` the first of them generates the master key file (0600) and every
later one reuses it; a wrong, weak or missing key stops the start with a message naming the
variable or the file, instead of starting with every stored key refused.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tests.e2e.books import DB_PARAMS, database
from tests.support import http
from tests.support.serve import ServeProcess

ADMIN = "admin-secret-for-keys-at-rest"
OTHER = "another-master-key-0123456789abcdefghijklmnopqrstuvwxyz"


def _env(master: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DRAGOMAN_MASTER_KEY"}
    if master is not None:
        env["DRAGOMAN_MASTER_KEY"] = master
    return env


def _config(tmp: Path, url: str, key_file: Path) -> Path:
    cfg = tmp / "dragoman.yaml"
    cfg.write_text(
        f"auth: {{admin_key: '{ADMIN}'}}\n"
        f"store: {{url: '{url}', flush_interval: 0.05, master_key_file: '{key_file}'}}\n"
    )
    return cfg


def _cli(cfg: Path, *args: str, master: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dragoman", "keys", *args, "--config", str(cfg)],
        env=_env(master),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _create_key(cfg: Path, alias: str) -> str:
    out = _cli(cfg, "create", "--alias", alias)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _refused_start(cfg: Path, master: str | None) -> str:
    """Run ``serve``, which must exit by itself (non-zero); its output."""
    p = subprocess.run(
        [sys.executable, "-m", "dragoman", "serve", "--config", str(cfg), "--port", "0"],
        env=_env(master),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode != 0, p.stdout + p.stderr
    assert "dragoman serving on" not in p.stdout
    return p.stderr


def _status(srv: ServeProcess, key: str) -> int:
    return http.get(srv.url + "/v1/models", headers={"x-api-key": key}).status


@pytest.mark.parametrize("kind", DB_PARAMS)
def test_restart_cycles_keep_keys_and_refuse_a_wrong_master_key(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRAGOMAN_MASTER_KEY", raising=False)
    key_file = tmp_path / "state" / "master-key"
    with database(kind, tmp_path) as url:
        cfg = _config(tmp_path, url, key_file)
        # 1. the CLI runs first, without a master key: it generates the key file, once
        k1 = _create_key(cfg, "first")
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        master = key_file.read_text()
        # 2. the server reuses it: the CLI's key works
        with ServeProcess(cfg, env=_env()) as srv:
            assert _status(srv, k1) == 200
            assert _status(srv, "dg-not-a-key") == 401
            # 3. the CLI while the server runs: its key works on the running server
            k2 = _create_key(cfg, "second")
            assert _status(srv, k2) == 200
        assert key_file.read_text() == master  # never rewritten
        # 4. a different master key in the environment stops the start, naming the variable
        err = _refused_start(cfg, OTHER)
        assert "DRAGOMAN_MASTER_KEY is not the master key this database was set up with" in err
        # ... and the CLI refuses too, rather than making keys no server accepts
        bad = _cli(cfg, "create", "--alias", "x", master=OTHER)
        assert bad.returncode != 0 and "DRAGOMAN_MASTER_KEY is not the master key" in bad.stderr
        # 5. a weak master key is refused with a clear message
        err = _refused_start(cfg, "hunter2")
        assert "DRAGOMAN_MASTER_KEY is too weak to be a master key" in err
        # 6. the key file gone: nobody generates a new one for a database that has keys
        key_file.rename(tmp_path / "moved")
        err = _refused_start(cfg, None)
        assert f"no master key file at {key_file}" in err
        lst = _cli(cfg, "list")
        assert lst.returncode != 0 and "no master key file at" in lst.stderr
        assert not key_file.exists()
        # 7. the same key given in the environment instead of the file: everything still works
        with ServeProcess(cfg, env=_env(master.strip())) as srv:
            assert _status(srv, k1) == 200 and _status(srv, k2) == 200
        (tmp_path / "moved").rename(key_file)
        listed = _cli(cfg, "list", "--json")
        assert listed.returncode == 0 and '"first"' in listed.stdout and '"second"' in listed.stdout
