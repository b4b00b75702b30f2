"""The fake's ``POST /v1/responses`` is wire-correct: the official openai SDK's
``responses.create`` and ``responses.stream`` pointed straight at it parse every answer, the raw
event streams pass the strict checker, and it rejects what api.openai.com rejects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from tests.conformance.responses_sse_checks import check_responses_sse, validate_with_sdk
from tests.fakes import (
    ChatReply,
    FakeOpenAI,
    OpenAIErrorReply,
    ResponsesReply,
    r_call,
    r_custom,
    r_message,
    r_reasoning,
)
from tests.support import http

PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello\n*** End Patch\n"
SHELL = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a command",
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}},
        "required": ["cmd"],
    },
}
APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"},
}


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("openai", models=["gpt-5.5"]) as fake:
        yield fake


@pytest.fixture(scope="module")
def vllm_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("vllm") as fake:
        yield fake


@pytest.fixture
def oai(openai_server: FakeOpenAI) -> FakeOpenAI:
    openai_server.reset()
    return openai_server


@pytest.fixture
def vllm(vllm_server: FakeOpenAI) -> FakeOpenAI:
    vllm_server.reset()
    return vllm_server


def client(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=fake.base_url, api_key=fake.api_key or "x", max_retries=0, timeout=10
    )


def raw_stream(fake: FakeOpenAI, body: dict[str, Any]) -> http.RawResponse:
    return http.post(
        fake.base_url + "/responses",
        {**body, "stream": True},
        {"authorization": f"Bearer {fake.api_key}"},
    )


def test_create_text(oai: FakeOpenAI) -> None:
    with client(oai) as c:
        r = c.responses.create(model="gpt-5.5", input="Say hi", store=False)
    assert r.id.startswith("resp_") and r.status == "completed"
    assert r.output_text == "Hello from fake OpenAI"
    assert r.usage is not None and r.usage.input_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert oai.last_request.path == "/v1/responses"
    assert oai.last_request.body["input"] == "Say hi"


def test_stream_with_reasoning_text_and_calls(oai: FakeOpenAI) -> None:
    oai.enqueue(
        ResponsesReply(
            output=[
                r_reasoning(summary="Thinking about it"),
                r_message("Running it."),
                r_call("exec_command", {"cmd": "ls"}, "call_1"),
                r_custom("apply_patch", PATCH),
            ]
        )
    )
    with (
        client(oai) as c,
        c.responses.stream(
            model="gpt-5.5",
            input="go",
            tools=[SHELL, APPLY_PATCH],  # type: ignore[list-item]
            include=["reasoning.encrypted_content"],
            store=False,
        ) as s,
    ):
        types = [e.type for e in s]
        final = s.get_final_response()
    assert types[0] == "response.created" and types[-1] == "response.completed"
    kinds = [o.type for o in final.output]
    assert kinds == ["reasoning", "message", "function_call", "custom_tool_call"]
    rs, _, fc, ctc = final.output
    assert (
        rs.type == "reasoning"
        and rs.encrypted_content
        and rs.summary[0].text == ("Thinking about it")
    )
    assert fc.type == "function_call" and json.loads(fc.arguments) == {"cmd": "ls"}
    assert fc.call_id == "call_1"
    assert ctc.type == "custom_tool_call" and ctc.input == PATCH
    assert final.output_text == "Running it."


def test_raw_stream_passes_the_strict_checker(oai: FakeOpenAI) -> None:
    oai.enqueue(
        ResponsesReply(
            output=[
                r_reasoning(summary="why", text="raw thoughts"),
                r_message("A longer answer here."),
                r_call("exec_command", {"cmd": "ls -la"}),
                r_custom("apply_patch", PATCH),
            ]
        )
    )
    resp = raw_stream(oai, {"model": "gpt-5.5", "input": "x", "tools": [SHELL, APPLY_PATCH]})
    assert resp.status == 200 and resp.content_type.startswith("text/event-stream")
    chk = check_responses_sse(resp.body)
    validate_with_sdk(chk.events)
    assert [i["type"] for i in chk.items] == [
        "reasoning",
        "message",
        "function_call",
        "custom_tool_call",
    ]
    assert chk.of_type("custom_tool_call")[0]["input"] == PATCH


def test_a_chat_reply_scripts_the_responses_endpoint_too(vllm: FakeOpenAI) -> None:
    vllm.enqueue(
        ChatReply(
            content="hi", reasoning="hmm", tool_calls=[("call_9", "exec_command", {"cmd": "pwd"})]
        )
    )
    with client(vllm) as c:
        r = c.responses.create(model="qwen3-coder", input="x", tools=[SHELL])  # type: ignore[list-item]
    assert [o.type for o in r.output] == ["reasoning", "message", "function_call"]
    assert r.output[2].type == "function_call" and r.output[2].call_id == "call_9"


def test_function_round_trip_and_pairing_errors(oai: FakeOpenAI) -> None:
    history: list[Any] = [
        {"role": "user", "content": "list"},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "exec_command",
            "arguments": '{"cmd": "ls"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
    ]
    with client(oai) as c:
        r = c.responses.create(model="gpt-5.5", input=history, tools=[SHELL], store=False)  # type: ignore[list-item]
        assert r.status == "completed"
        with pytest.raises(openai.BadRequestError) as e:
            c.responses.create(model="gpt-5.5", input=[history[0], history[2]], store=False)  # type: ignore[list-item]
        assert e.value.body == {
            "message": "No tool call found for function call output with call_id call_1.",
            "type": "invalid_request_error",
            "param": "input",
            "code": None,
        }
        with pytest.raises(openai.BadRequestError) as e:
            c.responses.create(model="gpt-5.5", input=history[:2], store=False)  # type: ignore[arg-type]
        assert "No tool output found for function call call_1." in str(e.value)


def test_encrypted_content_only_its_own(oai: FakeOpenAI) -> None:
    oai.enqueue(ResponsesReply(output=[r_reasoning(summary="s"), r_message("a")]))
    with client(oai) as c:
        r = c.responses.create(
            model="gpt-5.5", input="q", store=False, include=["reasoning.encrypted_content"]
        )
        rs = r.output[0]
        assert rs.type == "reasoning" and rs.encrypted_content
        ok = c.responses.create(
            model="gpt-5.5",
            store=False,
            input=[
                {"role": "user", "content": "q"},
                rs.model_dump(exclude_none=True),  # type: ignore[list-item]
                {"role": "user", "content": "more"},
            ],
        )
        assert ok.status == "completed"
        with pytest.raises(openai.BadRequestError) as e:
            c.responses.create(
                model="gpt-5.5",
                store=False,
                input=[
                    {"role": "user", "content": "q"},
                    {"type": "reasoning", "summary": [], "encrypted_content": "dgs1.notopenais"},
                ],
            )  # type: ignore[list-item]
    assert e.value.code == "invalid_encrypted_content"
    assert "The encrypted content dgs1...nais could not be verified." in str(e.value)


def test_previous_response_id_needs_a_stored_response(oai: FakeOpenAI) -> None:
    with client(oai) as c:
        first = c.responses.create(model="gpt-5.5", input="remember me")
        follow = c.responses.create(model="gpt-5.5", input="and?", previous_response_id=first.id)
        assert follow.previous_response_id == first.id
        unstored = c.responses.create(model="gpt-5.5", input="x", store=False)
        with pytest.raises(openai.BadRequestError) as e:
            c.responses.create(model="gpt-5.5", input="y", previous_response_id=unstored.id)
    assert e.value.code == "previous_response_not_found"
    assert f"Previous response with id '{unstored.id}' not found." in str(e.value)


def test_unknown_parameters(oai: FakeOpenAI, vllm: FakeOpenAI) -> None:
    resp = http.post(
        oai.base_url + "/responses",
        {"model": "gpt-5.5", "input": "x", "foo": 1},
        {"authorization": f"Bearer {oai.api_key}"},
    )
    assert resp.status == 400
    assert resp.json() == {
        "error": {
            "message": "Unknown parameter: 'foo'.",
            "type": "invalid_request_error",
            "param": "foo",
            "code": "unknown_parameter",
        }
    }
    ok = http.post(
        vllm.base_url + "/responses",
        {"model": "qwen3-coder", "input": "x", "foo": 1},
        {"authorization": f"Bearer {vllm.api_key}"},
    )
    assert ok.status == 200 and vllm.last_request.notes == ["ignored fields: ['foo']"]


def test_incomplete_failed_and_cut(oai: FakeOpenAI) -> None:
    oai.enqueue(
        ResponsesReply(output=[r_message("cut")], status="incomplete"),
        ResponsesReply(output=[], status="failed", error_code="server_error"),
        ResponsesReply(output=[r_message("never finished")], cut_after=5),
    )
    with client(oai) as c:
        r = c.responses.create(model="gpt-5.5", input="x", store=False)
        assert r.status == "incomplete" and r.incomplete_details is not None
        assert r.incomplete_details.reason == "max_output_tokens"
        failed = raw_stream(oai, {"model": "gpt-5.5", "input": "x", "store": False})
        assert check_responses_sse(failed.body).terminal == "response.failed"
        with c.responses.stream(model="gpt-5.5", input="x", store=False) as s:
            for _ in s:
                pass
            with pytest.raises(RuntimeError, match=r"response\.completed"):
                s.get_final_response()


def test_errors_and_modes_without_responses(oai: FakeOpenAI) -> None:
    oai.enqueue(OpenAIErrorReply(429, "Rate limit reached", headers={"retry-after": "1"}))
    with client(oai) as c, pytest.raises(openai.RateLimitError):
        c.responses.create(model="gpt-5.5", input="x")
    with FakeOpenAI("mistral") as m:
        resp = http.post(
            m.base_url + "/responses",
            {"model": "mistral-large-latest", "input": "x"},
            {"authorization": f"Bearer {m.api_key}"},
        )
        assert resp.status == 404 and resp.json() == {"detail": "Not Found"}
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=oai.base_url, api_key="wrong", max_retries=0).responses.create(
            model="gpt-5.5", input="x"
        )
