"""The document at /openapi.json is valid OpenAPI 3.1 and describes every route the gateway
serves, no more (docs/openapi.md)."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from dragoman.config import load_config_dict
from dragoman.server.app import create_app
from dragoman.server.openapi import document


def test_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def _routes() -> set[tuple[str, str]]:
    cfg = load_config_dict({"auth": {"admin_key": "a"}, "store": {"url": "sqlite://"}})
    # an accountant stand-in: create_app only checks it is there to add the admin routes
    app = create_app(cfg, accountant=object())
    out = set()
    for r in app.router.routes():
        if r.method in ("HEAD", "OPTIONS"):
            continue
        info = r.resource.get_info() if r.resource is not None else {}
        path = info.get("path") or re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", info["formatter"])
        out.add((r.method, path))
    return out


def test_every_route_is_documented_and_nothing_else() -> None:
    documented = {
        (m.upper(), p) for p, item in document()["paths"].items() for m in item if m != "parameters"
    }
    assert documented == _routes()
