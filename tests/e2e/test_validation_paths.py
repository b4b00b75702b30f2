"""A request the real API rejects gets the same 400, in the caller's dialect, whatever backend the
model is on: dragoman validates before it routes (docs/translation.md, "Validation").

The reference answer is the fake that emulates the real service (api.openai.com mode, and the
Anthropic fake), called straight with the same SDK; every path through dragoman must give the
same status, type, param and message, and no upstream may see the request.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from tests.e2e.harness import Stack

OPENAI_PATHS = ["coder", "claude-sonnet-4-5", "gpt-4.1", "llama"]  # O->vLLM, O->A, O->O, Ollama
ANTHROPIC_PATHS = ["claude-sonnet-4-5", "coder"]  # A->A, A->O

OPENAI_CASES: dict[str, list[dict[str, Any]]] = {
    "user_without_content": [{"role": "user"}],
    "user_content_null": [{"role": "user", "content": None}],
    "role_that_does_not_exist": [{"role": "bot", "content": "hi"}],
    "role_missing": [{"content": "hi"}],
    "later_message_without_content": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user"},
    ],
    "tool_without_tool_call_id": [
        {"role": "user", "content": "hi"},
        {"role": "tool", "content": "18C"},
    ],
}
ANTHROPIC_CASES: dict[str, list[dict[str, Any]]] = {
    "message_without_content": [{"role": "user"}],
    "role_that_does_not_exist": [{"role": "bot", "content": "hi"}],
    "role_missing": [{"content": "hi"}],
    "later_message_without_content": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user"},
    ],
}


def _openai_error(client: openai.OpenAI, model: str, messages: list[dict[str, Any]]) -> Any:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
    return err.value


@pytest.mark.parametrize("case", sorted(OPENAI_CASES))
def test_openai_requests_get_the_same_400_on_every_path(stack: Stack, case: str) -> None:
    messages = OPENAI_CASES[case]
    direct = openai.OpenAI(base_url=stack.oai.base_url, api_key=stack.oai.api_key, max_retries=0)
    want = _openai_error(direct, "gpt-4.1", messages)
    assert want.status_code == 400
    stack.reset()
    for model in OPENAI_PATHS:
        got = _openai_error(stack.openai(), model, messages)
        assert got.status_code == 400, model
        assert got.body == want.body, model
    for fake in (stack.anthropic_fake, stack.vllm, stack.oai, stack.ollama):
        assert fake.requests == [], "the request reached an upstream"


def test_openai_reference_bodies_are_the_documented_ones(stack: Stack) -> None:
    direct = openai.OpenAI(base_url=stack.oai.base_url, api_key=stack.oai.api_key, max_retries=0)
    assert _openai_error(direct, "gpt-4.1", OPENAI_CASES["user_without_content"]).body == {
        "message": "Missing required parameter: 'messages[0].content'.",
        "type": "invalid_request_error",
        "param": "messages[0].content",
        "code": "missing_required_parameter",
    }
    assert _openai_error(direct, "gpt-4.1", OPENAI_CASES["role_that_does_not_exist"]).body == {
        "message": "Invalid value: 'bot'. Supported values are: 'system', 'assistant', 'user', "
        "'function', 'tool', and 'developer'.",
        "type": "invalid_request_error",
        "param": "messages[0].role",
        "code": "invalid_value",
    }


@pytest.mark.parametrize("case", sorted(ANTHROPIC_CASES))
def test_anthropic_requests_get_the_same_400_on_every_path(stack: Stack, case: str) -> None:
    messages = ANTHROPIC_CASES[case]
    key = stack.anthropic_fake.api_key
    direct = anthropic.Anthropic(
        base_url=stack.anthropic_fake.url,
        api_key=key,
        max_retries=0,
        default_headers={"x-api-key": key},
    )
    with pytest.raises(anthropic.BadRequestError) as ref:
        direct.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=messages)  # type: ignore[arg-type]
    want = ref.value
    stack.reset()
    for model in ANTHROPIC_PATHS:
        with pytest.raises(anthropic.BadRequestError) as err:
            stack.anthropic().messages.create(model=model, max_tokens=10, messages=messages)  # type: ignore[arg-type]
        assert err.value.status_code == want.status_code == 400
        assert isinstance(err.value.body, dict) and isinstance(want.body, dict)
        assert err.value.body["type"] == "error"
        assert err.value.body["error"] == want.body["error"], model
    for fake in (stack.anthropic_fake, stack.vllm, stack.oai, stack.ollama):
        assert fake.requests == [], "the request reached an upstream"
