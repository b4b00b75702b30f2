"""Providers driven in-process over the in-memory transport (``upstream/mock.py``): what they
send, how they read, the caps, and how an upstream's error answer is typed and scrubbed
(``upstream/classify.py``). The wire-level suites (tests/e2e, tests/conformance) stay the
outer ring."""

from __future__ import annotations

import pytest

import dragoman
from dragoman.config import ProviderConfig
from dragoman.errors import (
    BadUpstreamResponse,
    ContextOverflow,
    OverloadedError,
    RateLimitError,
    UpstreamCredentialsRejected,
    UpstreamRefusal,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from dragoman.protocols import openai as po
from dragoman.providers import UpstreamReply, UpstreamStream, make_provider
from dragoman.upstream import classify
from dragoman.upstream.mock import MockResponse, MockTransport

KEY = "sk-ant-PROVIDER-SECRET-0123456789"
PLAIN_KEY = "plainproviderkeyXYZ"  # no credential shape: only the configured value betrays it


def _prov(kind: str, handler, key: str = KEY, **cfg):  # type: ignore[no-untyped-def]
    base = "http://10.1.2.3:8000" + ("" if kind == "anthropic" else "/v1")
    conf = ProviderConfig(kind=kind, base_url=base, api_key=key, **cfg)
    t = MockTransport(handler)
    return make_provider("up1", conf, transport=t), t


async def test_anthropic_request_goes_through_the_transport() -> None:
    prov, t = _prov("anthropic", lambda r: MockResponse(200, {"x": "1"}, b'{"ok":true}'))
    rep = await prov.request("POST", "/v1/messages", b"{}", prov.headers_for(None))
    assert isinstance(rep, UpstreamReply) and rep.status == 200 and rep.body == b'{"ok":true}'
    (req,) = t.requests
    assert req.url == "http://10.1.2.3:8000/v1/messages" and req.method == "POST"
    assert req.headers["x-api-key"] == KEY and req.idle is None


async def test_openai_stream_reads_chunks_with_the_idle_timeout() -> None:
    body = [b'data: {"a":1}\n\n', b"data: [DONE]\n\n"]
    prov, t = _prov("openai", lambda r: MockResponse(200, {}, body))
    up = await prov.stream("/chat/completions", b"{}", prov.headers_for())
    assert isinstance(up, UpstreamStream)
    assert [c async for c in up.chunks()] == body
    assert t.requests[0].idle == prov.config.timeouts.idle
    assert t.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_a_stream_error_status_comes_back_whole() -> None:
    prov, _ = _prov("openai", lambda r: MockResponse(429, {"retry-after": "3"}, b'{"error":{}}'))
    rep = await prov.stream("/chat/completions", b"{}", {})
    assert isinstance(rep, UpstreamReply) and rep.status == 429


async def test_body_over_the_cap_is_a_502() -> None:
    prov, _ = _prov("openai", lambda r: MockResponse(200, {}, b"x" * 2048))
    prov.transport.max_body = 1024  # type: ignore[attr-defined]
    with pytest.raises(BadUpstreamResponse) as ei:
        await prov.request("POST", "/chat/completions", b"{}", {})
    assert ei.value.status == 502 and po.error_body(ei.value)["error"]["type"] == "upstream_error"


async def test_stream_event_over_the_cap_ends_the_stream() -> None:
    big = [b"data: " + b"y" * 600] * 4  # one event, never terminated
    prov, _ = _prov("openai", lambda r: MockResponse(200, {}, big), max_event_bytes=1500)
    up = await prov.stream("/chat/completions", b"{}", {})
    assert isinstance(up, UpstreamStream)
    got: list[bytes] = []
    with pytest.raises(BadUpstreamResponse, match="larger than 1500 bytes"):
        async for c in up.chunks():
            got.append(c)
    assert len(got) == 2  # the third chunk crossed the cap
    # many events of the same total size pass: the cap is per event
    ok = [b"data: " + b"y" * 600 + b"\n\n"] * 10
    prov2, _ = _prov("openai", lambda r: MockResponse(200, {}, ok), max_event_bytes=1500)
    up2 = await prov2.stream("/chat/completions", b"{}", {})
    assert isinstance(up2, UpstreamStream)
    assert len([c async for c in up2.chunks()]) == 10


async def test_transport_errors_are_typed() -> None:
    prov, _ = _prov(
        "openai", lambda r: MockResponse(error=UpstreamUnreachable("upstream up1 unreachable"))
    )
    with pytest.raises(OverloadedError) as ei:
        await prov.request("POST", "/chat/completions", b"{}", {})
    assert isinstance(ei.value, dragoman.UpstreamConnectionError) and ei.value.connection_error


async def test_health_probe_never_shows_the_host() -> None:
    prov, _ = _prov("openai", lambda r: MockResponse(200))
    ok, how = await prov.health()
    assert ok and how == "GET /v1/models -> 200"
    prov2, _ = _prov("openai", lambda r: MockResponse(307, {"location": "http://elsewhere/"}))
    ok, how = await prov2.health()
    assert not ok and "10.1.2.3" not in how and how.endswith("-> 307")
    prov3, _ = _prov("openai", lambda r: MockResponse(error=UpstreamTimeout("slow")))
    ok, how = await prov3.health()
    assert not ok and how == "GET /health -> UpstreamTimeout"


# -- classification: origin as type, text scrubbed ------------------------------------------


def _answer(kind: str, status: int, message: str, etype: str | None = None) -> bytes:
    import orjson

    if kind == "anthropic":
        return orjson.dumps({"type": "error", "error": {"type": etype or "x", "message": message}})
    return orjson.dumps({"error": {"message": message, "type": etype, "code": None}})


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
@pytest.mark.parametrize("status", [401, 403])
def test_rejected_provider_credentials_are_a_bad_gateway(kind: str, status: int) -> None:
    prov, _ = _prov(kind, lambda r: MockResponse())
    body = _answer(kind, status, f"Incorrect API key provided: Bearer {KEY}")
    err = classify.from_answer(prov, status, body, {})
    assert isinstance(err, UpstreamCredentialsRejected) and isinstance(err, dragoman.ServerError)
    assert (err.status, err.type, err.upstream_status) == (502, "api_error", status)
    assert err.message == "upstream up1 rejected the gateway's credentials"
    assert po.error_body(err)["error"]["type"] == "upstream_error"
    assert KEY not in repr(err.__dict__)


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
@pytest.mark.parametrize("status", [400, 500])
def test_echoed_keys_are_scrubbed(kind: str, status: int) -> None:
    prov, _ = _prov(kind, lambda r: MockResponse(), key=PLAIN_KEY)
    msg = (
        f"bad request from key {PLAIN_KEY}; headers were x-api-key: sk-ant-api03-OTHERSECRET99 "
        "and Authorization: Bearer tok_abcdefghijklmnop; api_key=hunter2hunter2"
    )
    err = classify.from_answer(prov, status, _answer(kind, status, msg), {})
    assert isinstance(err, UpstreamStatusError) and err.upstream_status == status
    for secret in (PLAIN_KEY, "OTHERSECRET99", "tok_abcdefghijklmnop", "hunter2hunter2"):
        assert secret not in err.message
    assert err.message.startswith("bad request from key")


def test_context_overflow_and_refusal_are_types() -> None:
    prov, _ = _prov("openai", lambda r: MockResponse())
    over = classify.from_answer(
        prov,
        400,
        _answer(
            "openai",
            400,
            "This model's maximum context length is 8 tokens. However, "
            "your request has 9 input tokens.",
        ),
        {},
    )
    assert isinstance(over, ContextOverflow) and isinstance(over, dragoman.InvalidRequestError)
    assert over.status == 400 and over.message == "prompt is too long: 9 tokens > 8 maximum"
    ref = classify.from_answer(prov, 400, _answer("openai", 400, "blocked by content policy"), {})
    assert isinstance(ref, UpstreamRefusal) and ref.status == 400


def test_kind_and_origin_together_and_one_retry_after() -> None:
    prov, _ = _prov("openai", lambda r: MockResponse())
    err = classify.from_answer(
        prov, 429, _answer("openai", 429, "slow"), {"retry-after": "1e300"}, retry_cap=60
    )
    assert isinstance(err, RateLimitError) and isinstance(err, UpstreamStatusError)
    assert err.retry_after == 60 and err.headers["retry-after"] == "60"


def test_a_redirect_is_a_bad_gateway() -> None:
    prov, _ = _prov("anthropic", lambda r: MockResponse())
    err = classify.from_answer(prov, 307, b"", {"location": "http://evil.example/"})
    assert isinstance(err, BadUpstreamResponse) and err.status == 502
    assert err.upstream_status == 307 and not err.connection_error  # another deployment
