"""Issue 10 (audit #3, rest): an upstream error event in the middle of a pass-through stream
(A->A ``event: error``, O->O ``data: {"error": ...}``) that echoes the provider's key reaches the
client rewritten, its text scrubbed, still an error event in the client's dialect; the content
events before it are relayed byte for byte. Against a real ``dragoman serve`` in front of the
wire-exact fakes replaying a scripted stream (docs/upstream.md, "Nothing leaks")."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from tests.fakes import FakeAnthropic, FakeOpenAI, RawStream
from tests.support import http
from tests.support.serve import ServeProcess

CLIENT = "client-" + uuid.uuid4().hex
#: no credential shape at all: only the configured value can find it
AKEY = "plain" + uuid.uuid4().hex
OKEY = "plain" + uuid.uuid4().hex


def _a_frame(event: str, data: dict[str, object]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


A_CONTENT = b"".join(
    [
        _a_frame(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-sonnet-4-5",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 7, "output_tokens": 1},
                },
            },
        ),
        _a_frame(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        *(
            _a_frame(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": w},
                },
            )
            for w in ("Hello", " there", " friend")
        ),
    ]
)
A_ERROR = _a_frame(
    "error",
    {
        "type": "error",
        "error": {"type": "overloaded_error", "message": f"Overloaded (key {AKEY})"},
    },
)


def _o_chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


O_CONTENT = _o_chunk({"role": "assistant", "content": ""}) + b"".join(
    _o_chunk({"content": w}) for w in ("Hello", " there", " friend")
)
O_ERROR = (
    b"data: "
    + orjson.dumps(
        {
            "error": {
                "message": f"internal error, api_key={OKEY}",
                "type": "internal_error",
                "code": 500,
            }
        }
    )
    + b"\n\n"
    + b"data: [DONE]\n\n"
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServeProcess, FakeAnthropic, FakeOpenAI]]:
    anth = FakeAnthropic(api_key=AKEY).start()
    vllm = FakeOpenAI("vllm", api_key=OKEY).start()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"auth: {{keys: ['{CLIENT}']}}\n"
        "routing: {retries: {max_retries: 0}}\n"
        "providers:\n"
        f"  anth: {{kind: anthropic, base_url: '{anth.url}', api_key: '{AKEY}',"
        " flavor: anthropic}\n"
        f"  oai: {{kind: openai, base_url: '{vllm.base_url}', api_key: '{OKEY}', flavor: vllm}}\n"
        "models:\n"
        "  claude-sonnet-4-5: {provider: anth}\n"
        "  m: {provider: oai, model: qwen3-coder}\n"
        "store: {enabled: false}\n"
    )
    srv = ServeProcess(cfg).start()
    try:
        yield srv, anth, vllm
    finally:
        srv.stop()
        anth.stop()
        vllm.stop()


MSG = [{"role": "user", "content": "hi"}]


def test_a2a_midstream_error_event_is_scrubbed(
    served: tuple[ServeProcess, FakeAnthropic, FakeOpenAI],
) -> None:
    srv, anth, _ = served
    anth.enqueue(RawStream(A_CONTENT + A_ERROR, event_delay=0.01))
    a = http.post(
        srv.url + "/v1/messages",
        {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": MSG, "stream": True},
        {"x-api-key": CLIENT, "anthropic-version": "2023-06-01"},
    )
    assert a.status == 200, a.body
    assert AKEY.encode() not in a.body, a.body
    # the content events untouched, then the error event, in the Anthropic dialect
    assert a.body.startswith(A_CONTENT), a.body
    errors = [e for e in a.events() if e.event == "error"]
    assert len(errors) == 1, a.body
    err = orjson.loads(errors[0].data)
    assert err["type"] == "error" and err["error"]["type"] == "overloaded_error"
    assert err["error"]["message"] == "Overloaded (key [redacted])"


def test_o2o_midstream_error_chunk_is_scrubbed(
    served: tuple[ServeProcess, FakeAnthropic, FakeOpenAI],
) -> None:
    srv, _, vllm = served
    vllm.enqueue(RawStream(O_CONTENT + O_ERROR, event_delay=0.01))
    o = http.post(
        srv.url + "/v1/chat/completions",
        {"model": "m", "messages": MSG, "stream": True},
        {"authorization": f"Bearer {CLIENT}"},
    )
    assert o.status == 200, o.body
    assert OKEY.encode() not in o.body, o.body
    assert o.body.startswith(O_CONTENT), o.body
    datas = [e.data for e in o.events()]
    errs = [orjson.loads(d)["error"] for d in datas if d.startswith("{") and '"error"' in d]
    assert len(errs) == 1, o.body
    assert errs[0]["message"] == "internal error, api_key=[redacted]"
    assert errs[0]["type"] == "internal_error"
    # a failed stream ends with its error chunk, never like a complete one: the upstream's
    # [DONE] after it is not passed on (docs/protocols.md, "Stream endings")
    assert "[DONE]" not in datas and '"error"' in datas[-1]
