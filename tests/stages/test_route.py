"""``stages/route.py``: the body read and checked only after auth, the decision and the model
ACL, and failures further down tagged with what a success says in its headers."""

from __future__ import annotations

import json

import pytest

from dragoman.core.exchange import Exchange, Reply
from dragoman.core.runtime import Runtime
from dragoman.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    PermissionDeniedError,
)
from dragoman.protocols import anthropic as pa
from dragoman.stages.route import Route

from .support import Books, config, exchange

BODY = {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


async def _ok(ex: Exchange) -> Reply:
    return Reply(200, {}, body=b"{}")


def _reader(raw: bytes):  # type: ignore[no-untyped-def]
    async def read() -> bytes:
        return raw

    return read


async def test_reads_parses_checks_and_decides() -> None:
    ex = exchange(body=None, read=_reader(json.dumps({**BODY, "stream": True}).encode()))
    ex.parse = lambda b: (pa.validate_messages_request(b), b)[1]
    await Route(Runtime(config()))(ex, _ok)
    assert ex.parsed and ex.stream and ex.requested_model == "claude"
    assert ex.decision is not None and ex.decision.route.name == "claude"


@pytest.mark.parametrize("raw", [b"", b"{not json"])
async def test_an_unreadable_body_is_a_400(raw: bytes) -> None:
    ex = exchange(body=None, read=_reader(raw))
    with pytest.raises(InvalidRequestError):
        await Route(Runtime(config()))(ex, _ok)
    assert not ex.parsed  # no usage row for a body that is not JSON


async def test_unknown_model_and_acl() -> None:
    with pytest.raises(ModelNotFoundError):
        await Route(Runtime(config()))(exchange(body={**BODY, "model": "nope"}), _ok)
    rt = Runtime(config(), accountant=Books(allowed={"gpt"}))
    with pytest.raises(PermissionDeniedError) as e:
        await Route(rt)(exchange(body=BODY), _ok)
    assert e.value.headers["x-dragoman-model"] == "claude"


async def test_a_failure_downstream_is_tagged() -> None:
    async def fails(ex: Exchange) -> Reply:
        ex.attempts = 3
        err = OverloadedError("busy")
        err.model, err.deployment = "claude", "claude#0"
        raise err

    with pytest.raises(OverloadedError) as e:
        await Route(Runtime(config()))(exchange(body=BODY), fails)
    assert e.value.attempts == 3
    assert e.value.headers["x-dragoman-attempts"] == "3"
    assert e.value.headers["x-dragoman-deployment"] == "claude#0"
