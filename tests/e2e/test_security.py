"""Auth fails closed, open mode refuses web pages, admin actions need the admin key, and each
caller sees only what it may (docs/security.md): each through a real ``dragoman serve`` and the
official SDKs, against the OpenAI-compatible fake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from tests.fakes import FakeOpenAI
from tests.support import http
from tests.support.serve import ServeProcess

KEY = "dg-sec-client-" + uuid.uuid4().hex[:8]
ADMIN_KEY = "dg-sec-admin-" + uuid.uuid4().hex[:8]
ADMIN = {"x-api-key": ADMIN_KEY}
MASTER = "master-key-for-security-tests-0123456789abcdefghij"
CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}
MSG = {"model": "coder", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("vllm") as f:
        yield f


def _cfg(tmp_path: Path, up: FakeOpenAI, head: str = "", *, store: bool = False) -> Path:
    f = tmp_path / f"c-{uuid.uuid4().hex[:6]}.yaml"
    f.write_text(
        head + "providers:\n"
        f"  vllm: {{kind: openai, base_url: '{up.base_url}', api_key: '{up.api_key}'}}\n"
        "models:\n"
        "  coder: {provider: vllm, model: qwen3-coder, context_window: 32768}\n"
        "  other: {provider: vllm, model: qwen3-coder, context_window: 32768}\n"
        "accounting: {prices: {coder: {input: 1000, output: 1000}}}\n"
        + (
            f"store: {{url: 'sqlite:///{tmp_path}/s.db', flush_interval: 0.05}}\n"
            if store
            else "store: {enabled: false}\n"
        )
    )
    return f


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DG_SEC_")}
    return {**env, "DRAGOMAN_MASTER_KEY": MASTER, "DRAGOMAN_LOG_LEVEL": "WARNING", **extra}


def _refused(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``dragoman serve`` expecting it to refuse to start (a timeout = it served)."""
    return subprocess.run(
        [sys.executable, "-m", "dragoman", "serve", "--config", str(cfg), "--port", "0", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
    )


def _cli(cfg: Path, *args: str) -> str:
    """``dragoman keys ...`` as an operator runs it (another process); its stdout."""
    r = subprocess.run(
        [sys.executable, "-m", "dragoman", "keys", *args, "--config", str(cfg)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _serve(cfg: Path, *args: str) -> ServeProcess:
    return ServeProcess(cfg, env=_env(), args=args)  # started by `with` (once)


def _a(url: str, key: str | None = None, **kw: object) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=key or "none", max_retries=0, **kw)  # type: ignore[arg-type]


def _o(url: str, key: str | None = None, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key or "none", max_retries=0, **kw)  # type: ignore[arg-type]


def _no_key(url: str, path: str = "/v1/chat/completions") -> int:
    return http.post(url + path, CHAT).status


# -- 1. auth fails closed ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "named"),
    [
        ("{keys: ['${DG_SEC_UNSET}']}", "auth.keys.0"),
        ("{admin_key: '${DG_SEC_UNSET}'}", "auth.admin_key"),
    ],
)
def test_a_key_written_but_unset_stops_the_start(
    tmp_path: Path, up: FakeOpenAI, auth: str, named: str
) -> None:
    """The README's own pattern with its variable unset must not run an open gateway."""
    r = _refused(_cfg(tmp_path, up, f"auth: {auth}\n"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert named in r.stderr and "empty" in r.stderr
    assert "serving on" not in r.stdout


def test_a_public_bind_needs_keys_or_auth_open(tmp_path: Path, up: FakeOpenAI) -> None:
    r = _refused(_cfg(tmp_path, up), "--host", "0.0.0.0")
    assert r.returncode == 1 and "auth.open" in r.stderr, r.stdout + r.stderr
    # said on purpose: it starts, and warns
    cfg = _cfg(tmp_path, up, "auth: {open: true}\nserver: {allowed_hosts: [gw.internal]}\n")
    with _serve(cfg, "--host", "0.0.0.0") as srv:
        url = f"http://127.0.0.1:{srv.port}"
        assert _o(url).chat.completions.create(**CHAT).choices  # type: ignore[call-overload]
        r2 = http.post(url + "/v1/chat/completions", CHAT, {"Host": f"gw.internal:{srv.port}"})
        assert r2.status == 200
        assert "open gateway" in srv.output()


def test_virtual_keys_make_auth_required(tmp_path: Path, up: FakeOpenAI) -> None:
    """No static or admin key, only keys made with ``dragoman keys create``: every request
    needs one, and its allow-list, budget and revocation hold (audit #1b, #24)."""
    cfg = _cfg(tmp_path, up, store=True)
    coder_only = _cli(cfg, "create", "--alias", "c", "--models", "coder")
    broke = _cli(cfg, "create", "--alias", "b", "--budget", "0.000001")
    with _serve(cfg) as srv:
        assert "open gateway" not in srv.output()
        with pytest.raises(anthropic.AuthenticationError):
            _a(srv.url).messages.create(**MSG)  # type: ignore[call-overload]
        with pytest.raises(openai.AuthenticationError):
            _o(srv.url, "garbage").chat.completions.create(**CHAT)  # type: ignore[call-overload]
        assert _no_key(srv.url) == 401
        assert _o(srv.url, coder_only).chat.completions.create(**CHAT).choices  # type: ignore[call-overload]
        with pytest.raises(openai.PermissionDeniedError):
            _o(srv.url, coder_only).chat.completions.create(**{**CHAT, "model": "other"})  # type: ignore[call-overload]
        with pytest.raises(anthropic.APIStatusError) as ei:
            _a(srv.url, broke).messages.create(**MSG)  # type: ignore[call-overload]
        assert ei.value.status_code == 402
        # a revocation by another process reaches this one within about a second
        kid = next(k["id"] for k in json.loads(_cli(cfg, "list", "--json")) if k["alias"] == "c")
        _cli(cfg, "revoke", kid)
        revoked_at = time.monotonic()
        while True:
            r = http.post(srv.url + "/v1/chat/completions", CHAT, {"x-api-key": coder_only})
            if r.status == 401:
                break
            assert r.status == 200
            assert time.monotonic() - revoked_at < 2.5, "the revoked key still works"
            time.sleep(0.05)


def test_a_key_created_while_open_closes_the_gateway(tmp_path: Path, up: FakeOpenAI) -> None:
    cfg = _cfg(tmp_path, up, store=True)
    with _serve(cfg) as srv:
        assert "open gateway" in srv.output()
        assert _no_key(srv.url) == 200
        secret = _cli(cfg, "create", "--alias", "first")
        made = time.monotonic()
        while _no_key(srv.url) != 401:
            assert time.monotonic() - made < 2.5, "still open after a virtual key was made"
            time.sleep(0.05)
        assert (
            http.post(srv.url + "/v1/chat/completions", CHAT, {"x-api-key": secret}).status == 200
        )


# -- open mode against web pages (CSRF, DNS rebinding) ------------------------------------------


def test_open_mode_refuses_web_pages(tmp_path: Path, up: FakeOpenAI) -> None:
    cfg = _cfg(tmp_path, up, "server: {allowed_origins: ['http://localhost:5173']}\n")
    with _serve(cfg) as srv:
        url = srv.url
        assert "WARNING" in srv.output() and "open gateway" in srv.output()
        # the SDKs (no Origin, a loopback Host, JSON) are served
        assert _a(url).messages.create(**MSG).content  # type: ignore[call-overload]
        assert _o(url).chat.completions.create(**CHAT).choices  # type: ignore[call-overload]
        evil = {"Origin": "https://evil.example"}
        with pytest.raises(anthropic.PermissionDeniedError) as ea:
            _a(url, default_headers=evil).messages.create(**MSG)  # type: ignore[call-overload]
        assert ea.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
        with pytest.raises(openai.PermissionDeniedError) as eo:
            _o(url, default_headers=evil).chat.completions.create(**CHAT)  # type: ignore[call-overload]
        assert "allowed_origins" in eo.value.message
        ok = {"Origin": "http://localhost:5173"}
        assert _o(url, default_headers=ok).chat.completions.create(**CHAT).choices  # type: ignore[call-overload]
        # DNS rebinding: a page whose name now resolves to 127.0.0.1 reads nothing
        for path in ("/health", "/v1/models", "/metrics", "/ping"):
            r = http.get(url + path, {"Host": f"evil.example:{srv.port}"})
            assert r.status == 403, path
        r = http.post(url + "/v1/messages", MSG, {"Host": "evil.example"})
        assert r.status == 403 and r.json()["error"]["type"] == "permission_error"
        for h in (f"localhost:{srv.port}", f"[::1]:{srv.port}", "127.0.0.1"):
            assert http.post(url + "/v1/chat/completions", CHAT, {"Host": h}).status == 200
        # what a page can POST without a preflight: text/plain, a form, an untyped blob
        raw = b'{"model": "coder", "messages": [{"role": "user", "content": "hi"}]}'
        for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
            r = http.post(
                url + "/v1/chat/completions", raw, {"content-type": ctype} if ctype else {}
            )
            assert r.status == 415, ctype
            assert "application/json" in r.json()["error"]["message"]
        r = http.post(url + "/v1/messages", raw, {"content-type": "text/plain"})
        assert r.status == 415 and r.json()["type"] == "error"
        # open on loopback: /metrics stays open (docs/security.md)
        assert http.get(url + "/metrics").status == 200


# -- failures logged and limited ----------------------------------------------------------------


def test_auth_failures_are_logged_and_limited(tmp_path: Path, up: FakeOpenAI) -> None:
    cfg = _cfg(tmp_path, up, f"auth: {{keys: ['{KEY}'], max_failures_per_minute: 5}}\n")
    guesses = [f"guess-{uuid.uuid4().hex}" for _ in range(5)]
    with _serve(cfg) as srv:
        for g in guesses:
            assert http.post(srv.url + "/v1/chat/completions", CHAT, {"x-api-key": g}).status == 401
        # the address is now refused whatever it sends: a guess cannot be tested
        r = http.post(srv.url + "/v1/chat/completions", CHAT, {"x-api-key": KEY})
        assert r.status == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        with pytest.raises(anthropic.RateLimitError):
            _a(srv.url, KEY).messages.create(**MSG)  # type: ignore[call-overload]
        out = srv.output()
    assert out.count("authentication failed from 127.0.0.1") == 5
    assert "sha256:" in out
    assert not any(g in out for g in guesses) and KEY not in out


# -- 2. admin actions need the admin key --------------------------------------------------------


def test_admin_actions_need_the_admin_key(tmp_path: Path, up: FakeOpenAI) -> None:
    cfg = _cfg(tmp_path, up, f"auth: {{keys: ['{KEY}'], admin_key: '{ADMIN_KEY}'}}\n", store=True)
    with _serve(cfg) as srv:
        b = srv.url + "/v1/analytics/budgets"
        made = http.post(srv.url + "/admin/keys", {"alias": "cli"}, ADMIN)
        me = {"x-api-key": made.json()["secret"]}
        mine = {"budget_type": "monthly", "budget_limit": 5, "scope": "key"}
        # a client key sets no webhook, not even on its own budget (SSRF, audit #2b)
        r = http.post(b, {**mine, "webhook": "http://127.0.0.1:9/x"}, me)
        assert r.status == 403 and "admin key" in r.json()["error"]["message"]
        assert http.post(b, {**mine, "scope": "global"}, me).status == 403
        assert http.request("DELETE", srv.url + "/admin/budgets/x", None, me).status == 401
        # at most 10 thresholds a budget, 5 budgets a key (audit #11), for the admin too
        r = http.post(b, {**mine, "alert_thresholds": list(range(1, 12))}, me)
        assert r.status == 400 and "max_alert_thresholds" in r.json()["error"]["message"]
        for _ in range(5):
            assert http.post(b, mine, me).status == 201
        r = http.post(b, mine, me)
        assert r.status == 400 and "max_budgets_per_key" in r.json()["error"]["message"]
        kid = made.json()["id"]
        r = http.post(b, {**mine, "target": kid}, ADMIN)
        assert r.status == 400
        r = http.post(
            b,
            {**mine, "scope": "team", "target": "eng", "webhook": "https://hooks.example.com/x"},
            ADMIN,
        )
        assert r.status == 201


# -- 3. exposure ----------------------------------------------------------------------------------


def test_each_caller_sees_what_it_may(tmp_path: Path, up: FakeOpenAI) -> None:
    cfg = _cfg(tmp_path, up, f"auth: {{keys: ['{KEY}'], admin_key: '{ADMIN_KEY}'}}\n", store=True)
    with _serve(cfg) as srv:
        url = srv.url
        # /health: up or not, and nothing else, without the admin key
        for h in ({}, {"x-api-key": KEY}):
            assert http.get(url + "/health", h).json() == {"status": "ok"}
        full = http.get(url + "/health", ADMIN).json()
        assert full["deployments"]["coder"][0]["provider"] == "vllm" and "flavors" in full
        # /v1/models and the unknown-model 404: only what the key may use
        coder = http.post(url + "/admin/keys", {"alias": "k", "models": ["coder"]}, ADMIN)
        secret = coder.json()["secret"]
        assert [m.id for m in _o(url, secret).models.list()] == ["coder"]
        assert {m.id for m in _o(url, KEY).models.list()} == {"coder", "other"}
        with pytest.raises(anthropic.NotFoundError):
            _a(url, secret).models.retrieve("other")
        with pytest.raises(openai.NotFoundError) as ei:
            _o(url, secret).chat.completions.create(**{**CHAT, "model": "nope"})  # type: ignore[call-overload]
        assert "coder" not in ei.value.message and "other" not in ei.value.message
        # /stats: the caller's own requests
        _o(url, secret).chat.completions.create(**CHAT)  # type: ignore[call-overload]
        _o(url, KEY).chat.completions.create(**{**CHAT, "model": "other"})  # type: ignore[call-overload]
        assert "other" not in http.get(url + "/stats", {"x-api-key": secret}).json()["models"]
        assert {"coder", "other"} <= set(http.get(url + "/stats", ADMIN).json()["models"])
        # /metrics: the admin key
        assert http.get(url + "/metrics").status == 401
        assert http.get(url + "/metrics", {"x-api-key": KEY}).status == 401
        assert http.get(url + "/metrics", ADMIN).status == 200


def test_failures_behind_a_trusted_proxy_count_its_clients(tmp_path: Path, up: FakeOpenAI) -> None:
    """Behind a proxy every client has the proxy's address: with the proxy trusted, each
    client is counted by ``X-Forwarded-For`` (one guesser does not lock everyone out); an
    untrusted peer's ``X-Forwarded-For`` is ignored (a guesser cannot dodge its count)."""
    head = f"auth: {{keys: ['{KEY}'], max_failures_per_minute: 3}}\n"
    url_of = "/v1/chat/completions"
    trusted = _cfg(tmp_path, up, head + "server: {trusted_proxies: ['127.0.0.0/8']}\n")
    with _serve(trusted) as srv:
        for _ in range(3):
            bad = {"x-api-key": "guess", "X-Forwarded-For": "203.0.113.7"}
            assert http.post(srv.url + url_of, CHAT, bad).status == 401
        guesser = {"x-api-key": KEY, "X-Forwarded-For": "203.0.113.7"}
        assert http.post(srv.url + url_of, CHAT, guesser).status == 429
        other = {"x-api-key": KEY, "X-Forwarded-For": "198.51.100.1, 203.0.113.8"}
        assert http.post(srv.url + url_of, CHAT, other).status == 200
        assert "authentication failed from 203.0.113.7" in srv.output()
    with _serve(_cfg(tmp_path, up, head)) as srv:
        for i in range(3):
            bad = {"x-api-key": "guess", "X-Forwarded-For": f"203.0.113.{i}"}
            assert http.post(srv.url + url_of, CHAT, bad).status == 401
        dodge = {"x-api-key": KEY, "X-Forwarded-For": "203.0.113.99"}
        assert http.post(srv.url + url_of, CHAT, dodge).status == 429
