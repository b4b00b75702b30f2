"""Pure conversions between the SyftBox wire models and OpenAI chat (dragoman.syftbox.convert)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dragoman.errors import OverloadedError, RateLimitError
from dragoman.syftbox import convert
from dragoman.syftbox.schemas import ChatRequest, GenerationOptions, Message

pytestmark = pytest.mark.syftbox


def completion(finish: Any, content: Any = "ok") -> dict[str, Any]:
    return {
        "choices": [
            {"message": {"role": "assistant", "content": content}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


@pytest.mark.parametrize(
    ("finish", "seed"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("content_filter", "content_filter"),
        ("tool_calls", "stop"),
        ("function_call", "stop"),
        (None, None),
        ("something_new", None),
    ],
)
def test_finish_reasons_are_the_seeds(finish: Any, seed: Any) -> None:
    out = convert.chat_response(completion(finish), model="claude").model_dump(mode="json")
    assert out["finish_reason"] == seed


def test_requests_keep_system_messages_and_map_options() -> None:
    req = ChatRequest.model_validate(
        {
            "model": "claude",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi", "name": "alice"},
            ],
            "options": {"maxTokens": 9, "temperature": 0.2, "top_p": 0.9, "stopSequences": ["x"]},
            "accountingToken": "t",  # camelCase is accepted, as the seed's SchemaBase did
        }
    )
    assert convert.chat_request(req.model, req.messages, req.options) == {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi", "name": "alice"},
        ],
        "max_tokens": 9,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["x"],
    }
    assert convert.completion_request("m", "p", GenerationOptions()) == {
        "model": "m",
        "messages": [{"role": "user", "content": "p"}],
    }


def test_replies_snake_for_the_seed_camel_for_syft_hub() -> None:
    body = completion("stop", content=None)  # a reply without text (tool calls only)
    seed = convert.chat_response(body, model="claude").model_dump(mode="json")
    assert uuid.UUID(seed.pop("id"))
    assert seed == {
        "model": "claude",
        "message": {"role": "assistant", "content": "", "name": None},
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        "provider_info": None,
        "logprobs": None,
    }
    hub = convert.hub_chat_response(body, model="m", cost=0.5).model_dump(
        mode="json", by_alias=True
    )
    assert (hub["finishReason"], hub["usage"]["totalTokens"], hub["cost"]) == ("stop", 7, 0.5)
    assert Message.model_validate({"role": "user", "content": "x"}).name is None


def test_errors() -> None:
    busy = OverloadedError("Overloaded")
    assert convert.router_error(busy).model_dump() == {
        "code": 503,  # SyftStatus has no 529
        "message": "Overloaded",
        "data": None,
    }
    slow = RateLimitError("slow down", retry_after=3.0)
    assert convert.router_error(slow).model_dump() == {
        "code": 429,
        "message": "slow down",
        "data": {"retry_after": 3.0},
    }
    assert convert.hub_error(slow) == {
        "detail": "slow down",
        "errorType": "rate_limit_error",
        "retryAfter": 3.0,
    }
