"""Audit #3, #17, #22: an upstream that echoes the credentials it was sent, redirects, or is not
there leaks nothing. Against a real ``dragoman serve`` (SQLite store, DEBUG logs) in front of
a small upstream that puts the ``x-api-key`` / ``Authorization`` it received into its 401, 400
and 500 error bodies: the provider keys reach no client body, no ``/health`` (admin view), no
log line, no column of the usage or ledger tables. A 307 to another socket we own is never
followed (that socket receives nothing) and is a 502 (docs/upstream.md)."""

from __future__ import annotations

import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from tests.e2e.test_health_secrets import _refused_port, _serve
from tests.support import http
from tests.support.servers import ServerThread

A = {"anthropic-version": "2023-06-01"}


class _Listener:
    """A socket we own that counts every connection it is offered (it must get none)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._t.join(2)
        self.sock.close()


def _echo_app(elsewhere: int) -> web.Application:
    """Answers by the model asked for: ``e401`` / ``e400`` / ``e500`` echo the credentials
    received in an error body of that status; ``r307`` redirects to ``elsewhere``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = str(body.get("model"))
        got = request.headers.get("x-api-key") or request.headers.get("authorization") or ""
        if model == "r307":
            raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{elsewhere}{request.path}")
        status = int(model[1:]) if model[1:].isdigit() else 500
        text = f"Incorrect API key provided: {got}. headers: x-api-key={got}"
        if request.path.endswith("/messages"):
            etype = {401: "authentication_error", 400: "invalid_request_error"}.get(
                status, "api_error"
            )
            payload: dict[str, Any] = {"type": "error", "error": {"type": etype, "message": text}}
        else:
            payload = {"error": {"message": text, "type": "invalid_request_error", "code": None}}
        return web.json_response(payload, status=status)

    app = web.Application()
    app.router.add_post("/v1/messages", handle)
    app.router.add_post("/v1/chat/completions", handle)

    async def models(request: web.Request) -> web.StreamResponse:
        return web.json_response({"data": []})

    app.router.add_get("/v1/models", models)
    return app


@pytest.fixture
def upstream() -> Iterator[tuple[ServerThread, _Listener]]:
    other = _Listener()
    srv = ServerThread(_echo_app(other.port)).start()
    try:
        yield srv, other
    finally:
        srv.stop()
        other.close()


def _dump(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        rows = [repr(r) for t in ("usage", "ledger") for r in con.execute(f"SELECT * FROM {t}")]
    finally:
        con.close()
    return "\n".join(rows)


def test_echoed_credentials_and_redirects_leak_nothing(
    upstream: tuple[ServerThread, _Listener], tmp_path: Path
) -> None:
    srv, other = upstream
    down_sock, down_port = _refused_port()
    admin, client = "admin-" + uuid.uuid4().hex, "client-" + uuid.uuid4().hex
    # one key shaped like Anthropic's, one with no credential shape at all (only the
    # configured value can find it)
    akey, okey = "sk-ant-api03-" + uuid.uuid4().hex, "plain" + uuid.uuid4().hex
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"auth: {{keys: ['{client}'], admin_key: '{admin}'}}\n"
        "server: {log_level: DEBUG}\n"
        "routing: {retries: {max_retries: 0}}\n"
        "providers:\n"
        f"  acme-anth: {{kind: anthropic, base_url: '{srv.url}', api_key: '{akey}',"
        " flavor: anthropic}\n"
        f"  acme-oai: {{kind: openai, base_url: '{srv.url}/v1', api_key: '{okey}',"
        " flavor: vllm}\n"
        f"  gone: {{kind: openai, base_url: 'http://127.0.0.1:{down_port}/v1', api_key: 'x'}}\n"
        "models:\n"
        + "".join(
            f"  {p}-{m}: {{provider: acme-{p}, model: {m}}}\n"
            for p in ("anth", "oai")
            for m in ("e401", "e400", "e500", "r307")
        )
        + "  nowhere: {provider: gone}\n"
        f"store: {{url: 'sqlite:///{tmp_path}/s.db', flush_interval: 0.05}}\n"
        "accounting: {prices: {'*': {input: 1, output: 1}}}\n"
    )
    proc, port, log = _serve(cfg, tmp_path, {"DRAGOMAN_LOG_LEVEL": "DEBUG"})
    url = f"http://127.0.0.1:{port}"
    bodies: list[bytes] = []
    try:
        msg = [{"role": "user", "content": "x"}]
        for p in ("anth", "oai"):
            for m in ("e401", "e400", "e500", "r307"):
                model = f"{p}-{m}"
                a = http.post(
                    url + "/v1/messages",
                    {"model": model, "max_tokens": 5, "messages": msg},
                    {"x-api-key": client, **A},
                )
                o = http.post(
                    url + "/v1/chat/completions",
                    {"model": model, "messages": msg},
                    {"authorization": f"Bearer {client}"},
                )
                bodies += [a.body, o.body]
                if m in ("e401", "r307"):
                    # our provider key refused, or a redirect: a bad gateway, in each dialect
                    assert a.status == 502 and o.status == 502, (model, a.body, o.body)
                    assert a.json()["error"]["type"] == "api_error"
                    assert o.json()["error"]["type"] == "upstream_error"
                if m == "e401":
                    assert f"upstream acme-{p} rejected" in a.json()["error"]["message"]
                elif m != "r307":
                    assert a.status == int(m[1:]) and "[redacted]" in a.json()["error"]["message"]
        # a connection refused says which provider, never where it lives
        r = http.post(
            url + "/v1/messages",
            {"model": "nowhere", "max_tokens": 5, "messages": msg},
            {"x-api-key": client, **A},
        )
        bodies.append(r.body)
        assert r.json()["error"]["message"] == "upstream gone unreachable"
        assert str(down_port).encode() not in r.body
        health = http.get(url + "/health", {"x-api-key": admin})
        bodies.append(health.body)
        assert b"[redacted]" in health.body or b"rejected" in health.body
    finally:
        proc.terminate()
        proc.wait(20)
        down_sock.close()
    assert other.accepted == 0, "a redirect was followed"
    logs = log.read_bytes()
    db = _dump(tmp_path / "s.db")
    assert "e500" in db  # the usage rows were written
    for secret in (akey, okey):
        assert secret.encode() not in logs, "a provider key is in the logs"
        assert secret not in db, "a provider key is in the database"
        for b in bodies:
            assert secret.encode() not in b, f"a provider key reached a client: {b!r}"


def test_a_redirect_is_never_followed(
    upstream: tuple[ServerThread, _Listener], tmp_path: Path
) -> None:
    """#17: aiohttp would forward ``x-api-key`` across origins; dragoman never follows."""
    srv, other = upstream
    key = "sk-ant-api03-" + uuid.uuid4().hex
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "auth: {keys: [k1]}\n"
        "routing: {retries: {max_retries: 0}}\n"
        "providers:\n"
        f"  a: {{kind: anthropic, base_url: '{srv.url}', api_key: '{key}', flavor: anthropic}}\n"
        f"  o: {{kind: openai, base_url: '{srv.url}/v1', api_key: '{key}', flavor: vllm}}\n"
        "models: {ra: {provider: a, model: r307}, ro: {provider: o, model: r307}}\n"
        "store: {enabled: false}\n"
    )
    proc, port, _ = _serve(cfg, tmp_path, {})
    try:
        for model in ("ra", "ro"):
            for stream in (False, True):
                r = http.post(
                    f"http://127.0.0.1:{port}/v1/messages",
                    {
                        "model": model,
                        "max_tokens": 5,
                        "stream": stream,
                        "messages": [{"role": "user", "content": "x"}],
                    },
                    {"x-api-key": "k1", **A},
                )
                assert r.status == 502, r.body
                assert "redirect" in r.json()["error"]["message"]
    finally:
        proc.terminate()
        proc.wait(20)
    assert other.accepted == 0, "a redirect was followed"
