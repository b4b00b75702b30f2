"""The rules the fakes claim the real services enforce, one request each, with the answer the
fake gives (status and exact message). ``test_contract_fakes.py`` replays them against the fakes
in CI; ``live.py`` replays them against the real services when keys are present (never in CI),
to show where a fake drifted from its service. We could not capture live transcripts while
writing the fakes; each case names the source of its wording instead.

Every case is a request the service rejects before generating anything (a 4xx costs nothing).
``{model}`` in a body is replaced by the service's model for the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
O_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
USER = {"role": "user", "content": "Weather in Paris?"}
CONSIDER = (
    " Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/"
    "extended-thinking#important-considerations-when-using-extended-thinking"
)
ENABLED = {"type": "enabled", "budget_tokens": 1024}
SRC_ISSUES = "error text quoted in public GitHub issues (e.g. workglow-dev/libs#746, live probe)"


@dataclass(frozen=True)
class Case:
    service: str  # anthropic | openai | openai-reasoning | mistral
    name: str
    body: dict[str, Any]
    status: int
    message: str
    source: str
    headers: dict[str, str] = field(default_factory=dict)
    #: the message is only a prefix (the rest names ids or counts)
    prefix: bool = False


def _loop(first: list[dict[str, Any]]) -> list[dict[str, Any]]:
    use = {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"}
    return [USER, {"role": "assistant", "content": [*first, use]},
            {"role": "user", "content": [result]}]  # fmt: skip


ANTHROPIC: list[Case] = [
    Case(
        "anthropic",
        "temperature with thinking",
        {
            "model": "{model}",
            "max_tokens": 2048,
            "messages": [USER],
            "thinking": ENABLED,
            "temperature": 0.5,
        },
        400,
        "`temperature` may only be set to 1 when thinking is enabled or in adaptive mode."
        + CONSIDER,
        SRC_ISSUES + "; dotCipher/opencode-claude-bridge#1 for the adaptive wording",
    ),
    Case(
        "anthropic",
        "top_k with thinking",
        {
            "model": "{model}",
            "max_tokens": 2048,
            "messages": [USER],
            "thinking": ENABLED,
            "top_k": 5,
        },
        400,
        "`top_k` must be unset when thinking is enabled." + CONSIDER,
        "quarkiverse/quarkus-langchain4j#1812",
    ),
    Case(
        "anthropic",
        "top_p below 0.95 with thinking",
        {
            "model": "{model}",
            "max_tokens": 2048,
            "messages": [USER],
            "thinking": ENABLED,
            "top_p": 0.5,
        },
        400,
        "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled.",
        "docs (extended thinking, feature compatibility); wording not seen verbatim",
        prefix=True,
    ),
    Case(
        "anthropic",
        "forced tool_choice with manual thinking",
        {
            "model": "{model}",
            "max_tokens": 2048,
            "messages": [USER],
            "thinking": ENABLED,
            "tools": [TOOL],
            "tool_choice": {"type": "any"},
        },
        400,
        "Thinking may not be enabled when tool_choice forces tool use.",
        SRC_ISSUES,
    ),
    Case(
        "anthropic",
        "tool loop without its thinking block",
        {
            "model": "{model}",
            "max_tokens": 2048,
            "messages": _loop([]),
            "thinking": ENABLED,
            "tools": [TOOL],
        },
        400,
        "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
        "`tool_use`. When `thinking` is enabled, a final `assistant` message must start with a "
        "thinking block",
        "anthropics/claude-code#20705, mastra-ai/mastra#7799",
        prefix=True,
    ),
    Case(
        "anthropic",
        "final block is thinking",
        {
            "model": "{model}",
            "max_tokens": 2048,
            "thinking": ENABLED,
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": [{"type": "thinking", "thinking": "x", "signature": "EqSig"}],
                },
            ],
        },
        400,
        "messages.1: The final block in an assistant message cannot be `thinking`.",
        "tailcallhq/forgecode#2107",
    ),
    Case(
        "anthropic",
        "thinking in the final message with thinking off",
        {
            "model": "{model}",
            "max_tokens": 100,
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "x", "signature": "EqSig"},
                        {"type": "text", "text": "Sure"},
                    ],
                },
            ],
        },
        400,
        "messages.1.content.0: When thinking is disabled, an `assistant` message in the "
        "final position cannot contain `thinking`.",
        "tailcallhq/forgecode#1853",
        prefix=True,
    ),
    Case(
        "anthropic",
        "thinking not first in an assistant message",
        {
            "model": "{model}",
            "max_tokens": 100,
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "So"},
                        {"type": "thinking", "thinking": "x", "signature": "EqSig"},
                    ],
                },
                USER,
            ],
        },
        400,
        "messages.1.content.0: If an assistant message contains any thinking blocks, the "
        "first block must be thinking or redacted_thinking. Found text.",
        "anthropics/claude-code#20705",
    ),
    Case(
        "anthropic",
        "max_tokens above the model's cap",
        {"model": "{model}", "max_tokens": 64001, "messages": [USER]},
        400,
        "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens for",
        "error text seen in client issues (Sonnet 4.x cap 64000)",
        prefix=True,
    ),
    Case(
        "anthropic",
        "message without content",
        {"model": "{model}", "max_tokens": 10, "messages": [{"role": "user"}]},
        400,
        "messages.0.content: Field required",
        "pydantic-style errors of the Messages API",
    ),
    Case(
        "anthropic",
        "role that does not exist",
        {"model": "{model}", "max_tokens": 10, "messages": [{"role": "bot", "content": "hi"}]},
        400,
        "messages.0.role: Input should be 'user' or 'assistant'",
        "pydantic-style errors of the Messages API",
        prefix=True,
    ),
]

OPENAI: list[Case] = [
    Case(
        "openai",
        "user message without content",
        {"model": "{model}", "messages": [{"role": "user"}]},
        400,
        "Missing required parameter: 'messages[0].content'.",
        "api.openai.com missing_required_parameter errors (e.g. messages[0].role)",
    ),
    Case(
        "openai",
        "role that does not exist",
        {"model": "{model}", "messages": [{"role": "bot", "content": "hi"}]},
        400,
        "Invalid value: 'bot'. Supported values are: 'system', 'assistant', 'user', "
        "'function', 'tool', and 'developer'.",
        "api.openai.com invalid_value errors",
    ),
    Case(
        "openai",
        "reasoning_effort on a chat model",
        {"model": "{model}", "messages": [USER], "reasoning_effort": "low"},
        400,
        "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
        "BoundaryML/baml#2708 (Responses wording), same family on Chat Completions",
    ),
    Case(
        "openai-reasoning",
        "max_tokens on a reasoning model",
        {"model": "{model}", "messages": [USER], "max_tokens": 10},
        400,
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
        "'max_completion_tokens' instead.",
        "OpenAI reasoning guide; client issues",
    ),
    Case(
        "openai-reasoning",
        "temperature on a reasoning model",
        {"model": "{model}", "messages": [USER], "temperature": 0.2},
        400,
        "Unsupported value: 'temperature' does not support 0.2 with this model. Only the "
        "default (1) value is supported.",
        "OpenAI reasoning guide; client issues",
    ),
    Case(
        "openai-reasoning",
        "stop on a reasoning model",
        {"model": "{model}", "messages": [USER], "stop": ["END"]},
        400,
        "Unsupported parameter: 'stop' is not supported with this model.",
        "OpenAI reasoning guide; client issues",
    ),
]

MISTRAL: list[Case] = [
    Case(
        "mistral",
        "tool call id not in the 9-character format",
        {
            "model": "{model}",
            "tools": [O_TOOL],
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "id": "call_abc123",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_abc123", "content": "18C"},
            ],
        },
        400,
        "Tool call id was call_abc123 but must be a-z, A-Z, 0-9, with a length of 9.",
        "mistral_common validator.py (MistralRequestValidatorV3); anomalyco/opencode#1680",
    ),
    Case(
        "mistral",
        "user right after a tool result",
        {
            "model": "{model}",
            "tools": [O_TOOL],
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "id": "D681PevKs",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "D681PevKs", "content": "18C"},
                USER,
            ],
        },
        400,
        "Unexpected role 'user' after role 'tool'",
        "mistral_common validator.py; datapizza-labs/datapizza-ai#98",
    ),
    Case(
        "mistral",
        "stream_options",
        {
            "model": "{model}",
            "messages": [USER],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        422,
        "Extra inputs are not permitted",
        "avante-corp/avante.nvim#2347",
    ),
]

ALL = ANTHROPIC + OPENAI + MISTRAL


def error_message(service: str, body: Any) -> str:
    """The human-readable message of an error body, in each service's shape."""
    if not isinstance(body, dict):
        return str(body)
    if service == "anthropic":
        return str((body.get("error") or {}).get("message"))
    if service == "mistral":
        msg = body.get("message")
        if isinstance(msg, dict):  # 422: {"detail": [{"msg": ...}]}
            detail = msg.get("detail") or [{}]
            return str(detail[0].get("msg"))
        return str(msg)
    return str((body.get("error") or {}).get("message"))


def matches(case: Case, status: int, message: str) -> bool:
    if status != case.status:
        return False
    return message.startswith(case.message) if case.prefix else message == case.message


def fill(body: dict[str, Any], model: str) -> dict[str, Any]:
    return {k: (model if v == "{model}" else v) for k, v in body.items()}
