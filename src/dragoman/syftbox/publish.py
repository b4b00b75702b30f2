"""``dragoman syftbox publish``: the ``metadata.json`` syft-hub lists routers by.

syft-hub scans ``datasites/*/public/routers/*/metadata.json`` and keeps the files that have
``project_name``, ``author`` and ``services`` (a list of objects with a ``type``); it calls
``app_data/<project_name>/rpc/chat`` on the ``author``'s datasite, with a transaction token when
the chat service's ``pricing`` is above 0 (docs/syftbox.md, "Publishing").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from syft_core import Client
from syft_event.schema import generate_schema

from ..config import Config, SyftBoxConfig
from . import apps
from .files import write_atomic


def _version() -> str:
    try:
        return version("dragoman")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def served_models(config: Config) -> list[str]:
    """The names a caller may send as ``model``: models and exact aliases."""
    names = list(config.models)
    names += [a for a in config.aliases if not any(c in a for c in "*?[") and a not in names]
    return names


def metadata(
    config: Config,
    email: str,
    *,
    description: str | None = None,
    summary: str | None = None,
    tags: Sequence[str] = (),
    now: datetime | None = None,
) -> dict[str, Any]:
    sb = config.syftbox
    assert sb is not None
    models = served_models(config)
    summary = summary or f"LLM router: {', '.join(models) or 'no models'}"
    return {
        "project_name": sb.app_name,
        "author": email,
        "summary": summary,
        "description": description or f"{summary}. Served by dragoman.",
        "tags": list(tags) or ["llm", "chat", "dragoman"],
        "services": [
            {
                "type": "chat",
                "enabled": True,
                "pricing": sb.price_per_request,
                "charge_type": "per_request",
            },
            {"type": "search", "enabled": False, "pricing": 0.0, "charge_type": "per_request"},
        ],
        "models": models,
        "version": _version(),
        "documented_endpoints": {
            "/chat": generate_schema(apps.hub_chat),
            "/health": generate_schema(apps.health),
        },
        "publish_date": (now or datetime.now(UTC)).isoformat(),
        "delegate_email": None,
        "delegate_control_types": None,
    }


def metadata_path(client: Client, sb: SyftBoxConfig) -> Path:
    return Path(client.my_datasite) / "public" / "routers" / sb.app_name / "metadata.json"


def publish(config: Config, client: Client, **kw: Any) -> Path:
    """Write ``public/routers/<app_name>/metadata.json`` in the client's datasite."""
    assert config.syftbox is not None
    path = metadata_path(client, config.syftbox)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(metadata(config, str(client.email), **kw), indent=2) + "\n")
    return path
