"""Budgets that follow the deployment that served, cannot be bypassed by an unpriced model, and
fail closed when the database goes away; one usage row per request, refusals included.

Through the official SDKs and the real server, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from tests.e2e import books
from tests.e2e.harness import KEY, Stack
from tests.fakes import ChatReply, ErrorReply, FakeOpenAI
from tests.support import http

from dragoman.accounting.budgets import config_budget_id
from dragoman.config import BudgetConfig
from dragoman.tokens import estimate_anthropic_request_tokens, estimate_openai_request_tokens

PRICES = {
    "coder": {"input": 1.0, "output": 2.0},
    "claude-sonnet-4-5": {"input": 3.0, "output": 15.0},
    "primary": {"input": 3.0, "output": 15.0},
}
MODELS = {
    # one model, two providers: each deployment its own prices
    "mixed": {
        "deployments": [
            {
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "prices": {"input": 3.0, "output": 15.0},
            },
            {"provider": "vllm", "model": "qwen3-coder", "prices": {"input": 1.0, "output": 2.0}},
        ],
        "context_window": 32768,
        "max_output_tokens": 8192,
    },
    # a fallback chain across providers
    "primary": {"provider": "anthropic", "model": "claude-sonnet-4-5", "fallbacks": ["coder"]},
    # no price anywhere, and one explicitly free
    "unpriced": {"provider": "ollama", "model": "qwen3:8b", "context_window": 32768},
    "free": {
        "provider": "vllm",
        "model": "qwen3-coder",
        "context_window": 32768,
        "prices": {"input": 0, "output": 0},
    },
}
BUDGETS = [
    {"scope": "provider", "target": "anthropic", "period": "total", "limit_usd": 100.0},
    {"scope": "provider", "target": "vllm", "period": "total", "limit_usd": 100.0},
]


@pytest.fixture(scope="module", params=books.DB_PARAMS)
def bstack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, str]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRAGOMAN_MASTER_KEY", books.MASTER)
        with books.database(request.param, tmp_path_factory.mktemp("budgets")) as url:
            s, url = books.books_stack(
                url, accounting={"prices": PRICES, "budgets": BUDGETS}, extra_models=MODELS
            )
            try:
                yield s, url
            finally:
                books.stop(s)


def _ask(s: Stack, secret: str, dialect: str, model: str, stream: bool, **kw: Any) -> str:
    """One request through the SDK; returns the deployment that served it."""
    msgs = [{"role": "user", "content": "hello there"}]
    if dialect == "anthropic":
        c = anthropic.Anthropic(base_url=s.url, api_key=secret, max_retries=0)
        if stream:
            with c.messages.stream(model=model, max_tokens=200, messages=msgs, **kw) as st:
                st.get_final_message()
                return st.response.headers["x-dragoman-deployment"]
        r = c.messages.with_raw_response.create(model=model, max_tokens=200, messages=msgs, **kw)
        return r.headers["x-dragoman-deployment"]
    o = openai.OpenAI(base_url=s.url + "/v1", api_key=secret, max_retries=0)
    if stream:
        with o.chat.completions.with_streaming_response.create(
            model=model, messages=msgs, stream=True, **kw
        ) as resp:
            for _ in resp.iter_lines():
                pass
            return resp.headers["x-dragoman-deployment"]
    r = o.chat.completions.with_raw_response.create(model=model, messages=msgs, **kw)
    return r.headers["x-dragoman-deployment"]


@pytest.mark.leaves_cooldown  # upstream errors are scripted on purpose
def test_budgets_follow_the_deployment_that_served(bstack: tuple[Stack, str]) -> None:
    """Two providers behind one model, and a fallback from one provider to the other, under a
    provider-scoped budget each: every budget is charged exactly what its provider's usage rows
    cost, each ledger row names the model, provider and deployment its usage row names, and the
    cost is at the prices of the deployment that served."""
    s, url = bstack
    s.reset()
    s.gateway.rng = random.Random(7)  # the weighted choice between the two deployments
    key = books.new_key(s)
    served: dict[str, int] = {}
    i = 0
    while min(served.get("mixed/anthropic", 0), served.get("mixed/vllm#1", 0)) < 3:
        assert i < 60, served
        dep = _ask(s, key.secret, ("anthropic", "openai")[i % 2], "mixed", stream=i % 4 >= 2)
        served[dep] = served.get(dep, 0) + 1
        i += 1
    # the primary model's upstream is overloaded: its requests fall back to coder (vllm)
    s.anthropic_fake.enqueue(ErrorReply(529, "overloaded_error", "Overloaded"))
    assert _ask(s, key.secret, "openai", "primary", stream=False) == "coder/vllm"
    assert _ask(s, key.secret, "anthropic", "primary", stream=True) == "coder/vllm"
    assert s.anthropic_fake.pending == 0

    where = f"key_id = '{key.id}'"
    usage = books.usage_rows(s, url, where)
    assert len(usage) == i + 2 and {r.status for r in usage} == {200}
    # each provider budget was charged what its provider's usage rows cost, nothing else
    for provider in ("anthropic", "vllm"):
        spent, reserved = _counters(url, provider)
        mine = sum(u.cost for u in usage if u.provider == provider)
        assert mine > 0 and reserved == pytest.approx(0.0)
        confirmed = books.query(
            url,
            "SELECT COALESCE(SUM(amount_final), 0) FROM ledger "
            f"WHERE status = 'confirmed' AND provider = '{provider}'",
        )[0][0]
        total = books.query(
            url, f"SELECT COALESCE(SUM(cost), 0) FROM usage WHERE provider = '{provider}'"
        )[0][0]
        assert confirmed == pytest.approx(total, rel=1e-9)
        assert spent == pytest.approx(total, rel=1e-9)

    ledger = {
        r.request_id: r
        for r in books.ledger_rows(
            s,
            url,
            where + " AND status = 'confirmed'",
            "request_id, model, provider, deployment, amount_final",
        )
    }
    assert len(ledger) == len(usage)
    for u in usage:
        led = ledger[u.request_id]
        assert (led.model, led.provider, led.deployment) == (u.model, u.provider, u.deployment)
        assert led.amount_final == pytest.approx(u.cost)
        p = (
            {"input": 3.0, "output": 15.0}
            if u.provider == "anthropic"
            else {"input": 1.0, "output": 2.0}
        )
        assert u.cost == pytest.approx(
            (u.input_tokens * p["input"] + u.output_tokens * p["output"]) / 1e6, rel=1e-9
        )
        assert u.cost > 0
    assert {(u.model, u.provider, u.deployment) for u in usage[-2:]} == {
        ("coder", "vllm", "coder/vllm")
    }
    # the primary's first attempt held on the anthropic budget, then moved: released there
    moved = books.ledger_rows(s, url, where + " AND status = 'cancelled'", "provider, reason")
    assert [(m.provider, m.reason) for m in moved] == [("anthropic", "rerouted to coder")]


def _counters(url: str, provider: str) -> tuple[float, float]:
    """(spent, reserved) of the provider budget, read from the database."""
    b = next(b for b in BUDGETS if b["target"] == provider)
    bid = config_budget_id(BudgetConfig(**b))
    rows = books.query(
        url, f"SELECT spent, reserved FROM budget_counters WHERE budget_id = '{bid}'"
    )
    assert len(rows) == 1, rows
    return float(rows[0][0]), float(rows[0][1])


def test_hold_covers_what_the_upstream_can_produce(bstack: tuple[Stack, str]) -> None:
    """The worst case is max(max_tokens, max_completion_tokens) x n at the output price."""
    s, url = bstack
    s.reset()
    key = books.new_key(s)
    body: dict[str, Any] = {
        "model": "coder",
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": 1,
        "max_completion_tokens": 2000,
        "n": 3,
    }
    r = http.post(s.url + "/v1/chat/completions", body, {"authorization": f"Bearer {key.secret}"})
    assert r.status == 200, r.body
    held = books.ledger_rows(s, url, f"key_id = '{key.id}'", "amount_held")
    est = estimate_openai_request_tokens(body)
    assert [h.amount_held for h in held] == [pytest.approx((est * 1.0 + 2000 * 3 * 2.0) / 1e6)]


def test_hold_without_a_cap_is_the_model_output_cap(bstack: tuple[Stack, str]) -> None:
    """Neither max_tokens nor max_completion_tokens: the model's output cap (coder: 8192) x n;
    an Anthropic request holds its max_tokens at the model's prices (audit #12)."""
    s, url = bstack
    s.reset()
    key = books.new_key(s)
    body: dict[str, Any] = {
        "model": "coder",
        "messages": [{"role": "user", "content": "hello there"}],
        "n": 2,
    }
    r = http.post(s.url + "/v1/chat/completions", body, {"authorization": f"Bearer {key.secret}"})
    assert r.status == 200, r.body
    est = estimate_openai_request_tokens(body)
    held = books.ledger_rows(s, url, f"key_id = '{key.id}'", "amount_held")
    assert [h.amount_held for h in held] == [pytest.approx((est * 1.0 + 8192 * 2 * 2.0) / 1e6)]
    key2 = books.new_key(s)
    abody: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 3000,
        "messages": [{"role": "user", "content": "hello there"}],
    }
    r = http.post(s.url + "/v1/messages", abody, {"x-api-key": key2.secret})
    assert r.status == 200, r.body
    aest = estimate_anthropic_request_tokens(abody)
    held = books.ledger_rows(s, url, f"key_id = '{key2.id}'", "amount_held")
    assert [h.amount_held for h in held] == [pytest.approx((aest * 3.0 + 3000 * 15.0) / 1e6)]


# -- an unpriced model is not free ------------------------------------------------------------


def test_unpriced_model_under_a_budget_is_refused(bstack: tuple[Stack, str]) -> None:
    s, url = bstack
    s.reset()
    key = books.new_key(s, budget=5.0)  # a USD budget applies to every request of this key
    msgs = [{"role": "user", "content": "hi"}]
    a = anthropic.Anthropic(base_url=s.url, api_key=key.secret, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as ae:
        a.messages.create(model="unpriced", max_tokens=10, messages=msgs)  # type: ignore[arg-type]
    assert ae.value.status_code == 402
    err = ae.value.body["error"]  # type: ignore[index]
    assert err["type"] == "billing_error"
    assert "'unpriced'" in err["message"] and "no price" in err["message"]
    assert "accounting.prices.unpriced" in err["message"]
    o = openai.OpenAI(base_url=s.url + "/v1", api_key=key.secret, max_retries=0)
    with pytest.raises(openai.APIStatusError) as oe:
        o.chat.completions.create(model="unpriced", messages=msgs, stream=True)  # type: ignore[arg-type]
    assert oe.value.status_code == 402
    oerr = oe.value.body
    assert isinstance(oerr, dict)
    assert (oerr["type"], oerr["code"]) == ("insufficient_quota", "model_unpriced")
    assert "'unpriced'" in oerr["message"] and "no price" in oerr["message"]
    assert s.ollama.requests == []  # refused before any upstream call
    # an explicit zero price is a price: free
    ok = o.chat.completions.create(model="free", messages=msgs)  # type: ignore[arg-type]
    assert ok.choices[0].message.content
    rows = books.usage_rows(s, url, f"key_id = '{key.id}'")
    assert [(r.model, r.status, r.cost) for r in rows] == [
        ("unpriced", 402, 0.0),
        ("unpriced", 402, 0.0),
        ("free", 200, 0.0),
    ]
    assert "no price" in rows[0].error
    # without a budget, nothing is bypassed: the unpriced model serves (recorded at zero)
    free_key = books.new_key(s)
    r = o.with_options(api_key=free_key.secret).chat.completions.create(
        model="unpriced",
        messages=msgs,  # type: ignore[arg-type]
    )
    assert r.choices[0].message.content


def test_serve_lists_unpriced_models(tmp_path: Path) -> None:
    from tests.support.serve import ServeProcess

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "providers:\n  local: {kind: openai, base_url: 'http://127.0.0.1:9/v1'}\n"
        "models:\n"
        "  priced: {provider: local, prices: {input: 1, output: 1}}\n"
        "  free: {provider: local, prices: {input: 0, output: 0}}\n"
        "  nobody-priced-me: {provider: local}\n"
        "  split:\n    deployments:\n"
        "      - {provider: local, model: a, prices: {input: 1, output: 1}}\n"
        "      - {provider: local, model: b}\n"
        f"store: {{url: 'sqlite:///{tmp_path}/s.db'}}\n"
    )
    srv = ServeProcess(cfg).start()
    srv.stop()
    line = next(ln for ln in srv.output().splitlines() if "unpriced models" in ln)
    line = line.split("] ", 1)[1]  # ServeProcess tags each line with its pipe
    record = json.loads(line)  # the JSON log format
    assert record["level"] == "WARNING"
    assert record["msg"].rsplit("): ", 1)[1] == "nobody-priced-me, split (split/local#1)"


# -- one usage row per request, refusals included -----------------------------------------


def test_refusals_write_one_usage_row(bstack: tuple[Stack, str]) -> None:
    """Our own refusals (400 validation, 403 model not allowed, 404 unknown model, 402 budget)
    write one usage row each, cost 0, with the error; an unauthenticated request writes none."""
    s, url = bstack
    s.reset()
    key = books.new_key(s, models=["coder", "unpriced"], budget=5.0)
    h = {"x-api-key": key.secret, "anthropic-version": "2023-06-01"}
    cases = [
        ("/v1/messages", {"model": "coder", "max_tokens": 5}, 400),  # no messages
        ("/v1/chat/completions", {"model": "coder", "messages": "hi"}, 400),
        (
            "/v1/messages",
            {"model": "coder", "max_tokens": "5", "messages": [{"role": "user", "content": "x"}]},
            400,
        ),
        (
            "/v1/chat/completions",
            {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}]},
            403,
        ),
        (
            "/v1/chat/completions",
            {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]},
            404,
        ),
        (
            "/v1/messages",
            {"model": "unpriced", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
            402,
        ),
    ]
    rids = []
    for path, body, status in cases:
        r = http.post(s.url + path, body, h)
        assert r.status == status, r.body
        rids.append(r.headers["x-request-id"])
    rows = books.usage_rows(s, url, f"key_id = '{key.id}'")
    assert [r.request_id for r in rows] == rids
    assert [r.status for r in rows] == [c[2] for c in cases]
    assert all(r.cost == 0.0 and r.error for r in rows)
    assert [r.model for r in rows] == [
        "coder",
        "coder",
        "coder",
        "claude-sonnet-4-5",
        "no-such-model",
        "unpriced",
    ]
    assert books.ledger_rows(s, url, f"key_id = '{key.id}'", "id") == []
    bad = http.post(
        s.url + "/v1/chat/completions",
        {"model": "coder", "messages": [{"role": "user", "content": "x"}]},
        {"authorization": "Bearer not-a-key"},
    )
    assert bad.status == 401
    rid = bad.headers["x-request-id"]
    assert books.usage_rows(s, url, f"request_id = '{rid}'") == []


# -- the database goes away ---------------------------------------------------------------


@pytest.mark.postgres
def test_database_goes_away_budgeted_requests_get_503(tmp_path: Path) -> None:
    """PostgreSQL really goes away (the TCP path to it is cut and refused): a request a budget
    applies to is refused with 503 in the caller's dialect (fail closed: it cannot be checked),
    while one no budget applies to is still served (nothing waits on the database)."""
    if not books._pg_up():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    proxy = books.TcpProxy("127.0.0.1", 5432)
    name = "gone_" + uuid.uuid4().hex[:10]
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test?schema={name}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRAGOMAN_MASTER_KEY", books.MASTER)
        s, _ = books.books_stack(url, accounting={"prices": PRICES})
    try:
        key = books.new_key(s, budget=5.0)
        msgs = [{"role": "user", "content": "hi"}]
        a = anthropic.Anthropic(base_url=s.url, api_key=key.secret, max_retries=0)
        o = openai.OpenAI(base_url=s.url + "/v1", api_key=key.secret, max_retries=0)
        assert a.messages.create(model="coder", max_tokens=10, messages=msgs).content  # type: ignore[arg-type]
        proxy.stop()
        with pytest.raises(anthropic.APIStatusError) as ae:
            a.messages.create(model="coder", max_tokens=10, messages=msgs)  # type: ignore[arg-type]
        assert ae.value.status_code == 503
        assert ae.value.body["error"]["type"] == "api_error"  # type: ignore[index]
        assert "budget check unavailable" in ae.value.body["error"]["message"]  # type: ignore[index]
        with pytest.raises(openai.APIStatusError) as oe:
            o.chat.completions.create(model="coder", messages=msgs)  # type: ignore[arg-type]
        assert oe.value.status_code == 503
        assert oe.value.body["code"] == "budget_unavailable"  # type: ignore[index]
        # no budget applies to the static key: served without the database
        s.vllm.enqueue(ChatReply(content="still here"))
        r = openai.OpenAI(base_url=s.url + "/v1", api_key=KEY, max_retries=0)
        got = r.chat.completions.create(model="coder", messages=msgs)  # type: ignore[arg-type]
        assert got.choices[0].message.content == "still here"
    finally:
        books.stop(s)
        books.drop_schema(name)


def test_sqlite_tables_go_away_budgeted_requests_get_503(tmp_path: Path) -> None:
    """SQLite: the ledger's tables are dropped under the running gateway (an open connection
    keeps a deleted or truncated WAL-mode file alive, so this is how its store goes away):
    a budgeted request gets the same 503 as with PostgreSQL gone."""
    import sqlite3

    db = tmp_path / "gone.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRAGOMAN_MASTER_KEY", books.MASTER)
        s, _ = books.books_stack(f"sqlite:///{db}", accounting={"prices": PRICES})
    try:
        key = books.new_key(s, budget=5.0)
        msgs = [{"role": "user", "content": "hi"}]
        o = openai.OpenAI(base_url=s.url + "/v1", api_key=key.secret, max_retries=0)
        assert o.chat.completions.create(model="coder", messages=msgs).choices  # type: ignore[arg-type]
        books.flush(s)
        conn = sqlite3.connect(db, timeout=30)
        try:
            conn.executescript("DROP TABLE budget_counters; DROP TABLE ledger;")
        finally:
            conn.close()
        with pytest.raises(openai.APIStatusError) as oe:
            o.chat.completions.create(model="coder", messages=msgs)  # type: ignore[arg-type]
        assert oe.value.status_code == 503
        assert oe.value.body["code"] == "budget_unavailable"  # type: ignore[index]
        assert len(s.vllm.requests_to("/v1/chat/completions")) == 1  # not sent upstream
    finally:
        books.stop(s)


# -- a stored credential reaches the upstream -------------------------------------------------


def test_stored_credential_used_end_to_end(tmp_path: Path) -> None:
    """A provider key stored encrypted (``POST /admin/credentials``) and named by
    ``providers.<p>.credential`` is what the upstream receives."""
    secret = "sk-stored-" + uuid.uuid4().hex
    url = f"sqlite:///{tmp_path}/cred.db"
    with pytest.MonkeyPatch.context() as mp, FakeOpenAI("vllm", api_key=secret) as up:
        mp.setenv("DRAGOMAN_MASTER_KEY", books.MASTER)
        base = {
            "auth": {"keys": [KEY], "admin_key": books.ADMIN},
            "store": {"url": url},
            "models": {"coder": {"provider": "vllm", "model": "qwen3-coder"}},
        }
        first = books.serve_config(
            {**base, "providers": {"vllm": {"kind": "openai", "base_url": up.base_url}}}
        )
        try:
            r = http.post(
                first.url + "/admin/credentials",
                {"name": "vllm-prod", "api_key": secret},
                {"x-api-key": books.ADMIN},
            )
            assert r.status == 201, r.body
        finally:
            first.stop()
        provider = {"kind": "openai", "base_url": up.base_url, "credential": "vllm-prod"}
        srv = books.serve_config({**base, "providers": {"vllm": provider}})
        try:
            o = openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, max_retries=0)
            done = o.chat.completions.create(
                model="coder",
                messages=[{"role": "user", "content": "hi"}],  # type: ignore[list-item]
            )
            assert done.choices[0].message.content
            assert up.last_request.header("authorization") == f"Bearer {secret}"
        finally:
            srv.stop()


# -- a key's allow-list holds on every fallback -----------------------------------------------


@pytest.mark.leaves_cooldown  # upstream errors are scripted on purpose
def test_allow_list_checked_on_every_fallback(bstack: tuple[Stack, str]) -> None:
    """A key allowed only ``primary`` is never served by its fallback ``coder``: when primary
    fails, the caller gets primary's own failure (audit #13), and while primary cools down it
    is still tried (no other model the key may use could take the request)."""
    s, _url = bstack
    s.reset()
    key = books.new_key(s, allowed_models=["primary"])
    msgs = [{"role": "user", "content": "hello there"}]
    o = openai.OpenAI(base_url=s.url + "/v1", api_key=key.secret, max_retries=0)
    with pytest.raises(openai.APIStatusError) as denied:
        o.chat.completions.create(model="coder", messages=msgs)  # type: ignore[arg-type]
    assert denied.value.status_code == 403
    a = anthropic.Anthropic(base_url=s.url, api_key=key.secret, max_retries=0)
    for _ in range(2):
        s.anthropic_fake.enqueue(ErrorReply(529, "overloaded_error", "Overloaded"))
        with pytest.raises(anthropic.APIStatusError) as failed:
            a.messages.create(model="primary", max_tokens=50, messages=msgs)  # type: ignore[arg-type]
        assert failed.value.status_code == 529
        assert failed.value.response.headers["x-dragoman-model"] == "primary"
    assert s.anthropic_fake.pending == 0  # both reached primary's upstream
    assert s.vllm.requests_to("/v1/chat/completions") == []  # coder never served the key
