"""A virtual key checked while the key store is away gets 503 with retry-after in the caller's
dialect, never a 500 (audit #20); a key seen shortly before keeps working. Through the official
SDKs and the real server; PostgreSQL really goes away (the TCP path to it is cut), SQLite's keys
table is dropped under the running gateway."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import anthropic
import openai
import pytest
from tests.e2e import books
from tests.fakes import ChatReply

PRICES = {"coder": {"input": 1.0, "output": 2.0}}


@pytest.mark.parametrize("kind", books.DB_PARAMS)
def test_key_lookup_with_the_store_down_is_503(kind: str, tmp_path: Path) -> None:
    proxy = None
    if kind == "sqlite":
        db = tmp_path / "keys.db"
        url = f"sqlite:///{db}"
    else:
        if not books._pg_up():
            pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
        proxy = books.TcpProxy("127.0.0.1", 5432)
        name = "keys_" + uuid.uuid4().hex[:10]
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test?schema={name}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRAGOMAN_MASTER_KEY", books.MASTER)
        s, _ = books.books_stack(url, accounting={"prices": PRICES})
    try:
        seen = books.new_key(s)
        unseen = books.new_key(s)
        msgs = [{"role": "user", "content": "hi"}]
        s.vllm.enqueue(ChatReply(content="before"))
        ok = openai.OpenAI(base_url=s.url + "/v1", api_key=seen.secret, max_retries=0)
        assert ok.chat.completions.create(model="coder", messages=msgs).choices  # type: ignore[arg-type]
        if proxy is not None:
            proxy.stop()
        else:
            conn = sqlite3.connect(db, timeout=30)
            try:
                conn.executescript("DROP TABLE keys;")
            finally:
                conn.close()
        a = anthropic.Anthropic(base_url=s.url, api_key=unseen.secret, max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as ae:
            a.messages.create(model="coder", max_tokens=10, messages=msgs)  # type: ignore[arg-type]
        assert ae.value.status_code == 503
        assert ae.value.response.headers["retry-after"] == "5"
        assert ae.value.body["type"] == "error"  # type: ignore[index]
        assert "key check unavailable" in ae.value.body["error"]["message"]  # type: ignore[index]
        o = openai.OpenAI(base_url=s.url + "/v1", api_key=unseen.secret, max_retries=0)
        with pytest.raises(openai.APIStatusError) as oe:
            o.chat.completions.create(model="coder", messages=msgs)  # type: ignore[arg-type]
        assert oe.value.status_code == 503
        assert oe.value.response.headers["retry-after"] == "5"
        assert oe.value.body["code"] == "auth_unavailable"  # type: ignore[index]
        # a key checked moments ago is still served (nothing else about it needs the store)
        s.vllm.enqueue(ChatReply(content="still here"))
        got = ok.chat.completions.create(model="coder", messages=msgs)  # type: ignore[arg-type]
        assert got.choices[0].message.content == "still here"
    finally:
        books.stop(s)
        if proxy is not None:
            proxy.stop()
            books.drop_schema(name)
