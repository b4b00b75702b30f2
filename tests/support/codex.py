"""Running the real Codex CLI (npm ``@openai/codex``) in tests, fully offline.

Each run gets its own ``CODEX_HOME`` (config, sessions, model cache) and work directory; the
config comes from dragoman's own generator (``codex_config_toml``), so the tests prove the block
``dragoman codex`` prints. Retries are off so a scripted fake sees exactly the requests of one
run. See docs/codex.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dragoman.translate.responses.codex import codex_config_toml

CODEX = shutil.which("codex")
#: the version .ci/run installs; docs/codex.md and tests/fixtures/README.md describe it
PINNED = "0.171.0"


def codex_version() -> str | None:
    if CODEX is None:
        return None
    out = subprocess.run([CODEX, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip().rsplit(" ", 1)[-1] or None


@dataclass
class CodexRun:
    returncode: int
    stdout: str
    stderr: str


def write_config(
    home: Path,
    base_url: str,
    *,
    model: str,
    env_key: str,
    catalog: dict[str, Any] | None = None,
    catalog_url: bool = True,
) -> Path:
    """``$CODEX_HOME/config.toml`` pointing Codex at ``base_url``. With ``catalog``, the model
    catalog is a local file (``model_catalog_json``) instead of the gateway's
    ``model_catalog_url``; ``catalog_url=False`` drops that URL (Codex then has no catalog)."""
    home.mkdir(parents=True, exist_ok=True)
    text = codex_config_toml(base_url, model=model, env_key=env_key)
    if not catalog_url or catalog is not None:
        text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("model_catalog_url"))
        text += "\n"
    # provider-table keys: the block ends inside [model_providers.dragoman]
    text += "request_max_retries = 0\nstream_max_retries = 0\n"
    if catalog is not None:
        path = home / "catalog.json"
        path.write_text(json.dumps(catalog))
        head, sep, rest = text.partition("\n[model_providers.")
        text = f'{head}\nmodel_catalog_json = "{path}"\n{sep}{rest}'
    cfg = home / "config.toml"
    cfg.write_text(text)
    return cfg


def run_codex(
    home: Path,
    workdir: Path,
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 180,
) -> CodexRun:
    assert CODEX is not None, "the codex CLI is not installed"
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "CODEX_")) and k not in ("HTTP_PROXY", "HTTPS_PROXY")
    }
    user_home = home.parent / (home.name + "-user")
    user_home.mkdir(exist_ok=True)
    full_env.update(
        {"CODEX_HOME": str(home), "HOME": str(user_home), "NO_COLOR": "1", "RUST_LOG": "error"}
    )
    full_env.update(env or {})
    done = subprocess.run(
        [CODEX, *args],
        cwd=workdir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CodexRun(done.returncode, done.stdout, done.stderr)


def codex_exec(
    home: Path, workdir: Path, prompt: str, *, env: dict[str, str], timeout: float = 180
) -> CodexRun:
    """``codex exec`` in ``workdir`` (workspace-write sandbox, no git repository needed)."""
    return run_codex(
        home,
        workdir,
        ["exec", "--skip-git-repo-check", "-s", "workspace-write", prompt],
        env=env,
        timeout=timeout,
    )
