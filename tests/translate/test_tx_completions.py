# ruff: noqa: E501  (test vectors read better on one line)
"""Legacy /v1/completions through the chat path."""

from __future__ import annotations

from tx_helpers import parse_openai_sse

from dragoman.translate import (
    ChatToCompletionStream,
    chat_response_to_completion,
    completion_request_to_chat,
)


def test_request() -> None:
    chat = completion_request_to_chat(
        {"model": "m", "prompt": ["a", "b"], "echo": True, "suffix": "s", "best_of": 2, "logprobs": 3,
         "temperature": 0.2, "stop": ["x"], "stream": True, "stream_options": {"include_usage": True},
         "n": 1, "user": "u"}
    )  # fmt: skip
    assert chat == {
        "model": "m",
        "temperature": 0.2,
        "stop": ["x"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "n": 1,
        "user": "u",
        "messages": [{"role": "user", "content": "ab"}],
        "max_tokens": 16,
    }
    assert (
        completion_request_to_chat({"model": "m", "prompt": "p", "max_tokens": 5})["max_tokens"]
        == 5
    )


def test_response() -> None:
    r = chat_response_to_completion(
        {"id": "chatcmpl-1", "object": "chat.completion", "created": 5, "model": "m",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "length"}],
         "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    )  # fmt: skip
    assert r["id"].startswith("cmpl-") and r["object"] == "text_completion"
    assert r["choices"] == [{"index": 0, "text": "hi", "logprobs": None, "finish_reason": "length"}]
    assert r["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def test_stream() -> None:
    s = ChatToCompletionStream()
    raw = s.feed(
        {
            "id": "c",
            "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
        }
    )
    assert raw == b""
    raw += s.feed(
        {
            "id": "c",
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}],
        }
    )
    raw += s.feed(
        {
            "id": "c",
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}],
        }
    )
    raw += s.feed(
        {
            "id": "c",
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        }
    )
    raw += s.feed({"error": {"message": "x"}})
    raw += s.done()
    assert s.done() == b""
    items = parse_openai_sse(raw)
    assert items[-1] == "[DONE]"
    texts = [
        i["choices"][0]["text"] for i in items[:-1] if isinstance(i, dict) and i.get("choices")
    ]
    assert "".join(texts) == "Hello"
    assert items[1]["choices"][0]["finish_reason"] == "stop"
    assert items[0]["object"] == "text_completion" and items[0]["id"].startswith("cmpl-")
    assert items[2]["usage"]["total_tokens"] == 3 and items[2]["choices"] == []
    assert items[3] == {"error": {"message": "x"}}
