"""Schemathesis against a live ``dragoman serve`` (issue 10 item 7; docs/openapi.md).

The gateway serves its OpenAPI document at ``/openapi.json``; schemathesis generates requests
from it for every operation (valid ones, and for operations taking input, invalid ones), both
dialects, on the four paths (Anthropic and OpenAI clients, each to an Anthropic-kind and an
OpenAI-kind fake upstream), and checks each answer: no 5xx, a status the document lists, a body
matching the document's schema for that status. At least 1,000 requests in all; under
``CI=true`` the examples are derandomized (the same on every run, so a failure reproduces).

The only change made to the served document before generating: the ``model`` of the LLM requests
is narrowed to the configured models (and one unknown), so generated requests reach the routing,
the translators and the upstreams instead of stopping at "no such model".
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.fakes import FakeAnthropic, FakeOpenAI
from tests.support.serve import ServeProcess

from dragoman.server.openapi import document

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
KEY = "fuzz-client-key"
ADMIN = "fuzz-admin-key"
MODELS = ["claude-sonnet-4-5", "coder", "no-such-model"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: the request schemas whose ``model`` is narrowed
LLM_REQUESTS = (
    "MessagesRequest",
    "CountTokensRequest",
    "ChatCompletionRequest",
    "CompletionRequest",
)
#: examples per operation: the LLM endpoints get most of them
LLM = {"/v1/messages", "/v1/messages/count_tokens", "/v1/chat/completions", "/v1/completions"}
LLM_EXAMPLES = 180
OTHER_EXAMPLES = 30
#: created budgets could make every later request a 402: they run last
LAST = {("POST", "/v1/analytics/budgets")}

OPERATIONS = sorted(
    ((m.upper(), p) for p, item in document()["paths"].items() for m in item if m != "parameters"),
    key=lambda op: (op in LAST, op[1] not in LLM, op),
)
SENT: dict[tuple[str, str], int] = {}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with FakeAnthropic() as anth, FakeOpenAI("vllm") as vllm:
        cfg = tmp / "dragoman.yaml"
        cfg.write_text(
            f"auth: {{keys: ['{KEY}'], admin_key: '{ADMIN}'}}\n"
            "server: {max_body_bytes: 1048576}\n"
            "providers:\n"
            f"  anth: {{kind: anthropic, base_url: '{anth.url}', api_key: '{anth.api_key}',"
            " flavor: anthropic}\n"
            f"  vllm: {{kind: openai, base_url: '{vllm.base_url}', api_key: '{vllm.api_key}',"
            " flavor: vllm}\n"
            "models:\n"
            "  claude-sonnet-4-5: {provider: anth, max_output_tokens: 64000}\n"
            "  coder: {provider: vllm, model: qwen3-coder, context_window: 32768,"
            " max_output_tokens: 8192}\n"
            f"store: {{url: 'sqlite:///{tmp}/fuzz.db', flush_interval: 0.2}}\n"
        )
        with ServeProcess(Path(cfg)) as srv:
            yield srv


@pytest.fixture(scope="module")
def schema(gateway: ServeProcess) -> Any:
    served = requests.get(gateway.url + "/openapi.json", timeout=10).json()
    assert served == document()  # the document the gateway serves is the one in the package
    doc = copy.deepcopy(served)
    for name in (
        "MessagesRequest",
        "CountTokensRequest",
        "ChatCompletionRequest",
        "CompletionRequest",
    ):
        doc["components"]["schemas"][name]["properties"]["model"] = {"enum": MODELS}
    return schemathesis.openapi.from_dict(doc)


def _headers(method: str, path: str) -> dict[str, str]:
    if path.startswith("/admin/"):
        return {"x-api-key": ADMIN}
    if path.startswith(("/v1/chat", "/v1/completions")):
        return {"authorization": f"Bearer {KEY}"}
    return {"x-api-key": KEY}


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation(gateway: ServeProcess, schema: Any, method: str, path: str) -> None:
    op = schema[path][method]
    modes = [GenerationMode.POSITIVE]
    has_input = "requestBody" in op.definition.raw or op.definition.raw.get("parameters")
    if has_input:
        modes.append(GenerationMode.NEGATIVE)
    strategy = st.one_of(*(op.as_strategy(generation_mode=m) for m in modes))
    session = requests.Session()
    headers = _headers(method, path)
    key = (method, path)
    SENT[key] = 0

    @settings(
        max_examples=LLM_EXAMPLES if path in LLM else OTHER_EXAMPLES,
        derandomize=IN_CI,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=gateway.url, session=session, headers=headers, timeout=30)
        SENT[key] += 1
        case.validate_response(response, checks=CHECKS)

    run()


def test_at_least_a_thousand_requests_in_all() -> None:
    if len(SENT) < len(OPERATIONS):
        pytest.skip("only some operations ran (a -k selection): the total is not meaningful")
    assert sum(SENT.values()) >= 1000, SENT
