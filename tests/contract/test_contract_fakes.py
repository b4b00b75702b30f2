"""The contract catalogue (rules.py) holds against the fakes: each rule is rejected with the
status and wording the catalogue records. ``live.py`` checks the same catalogue against the real
services."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.contract.rules import ALL, Case, error_message, fill, matches
from tests.fakes import FakeAnthropic, FakeOpenAI
from tests.support import http

MODELS = {
    "anthropic": "claude-sonnet-4-5",
    "openai": "gpt-4.1",
    "openai-reasoning": "o4-mini",
    "mistral": "mistral-large-latest",
}


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, object]]:
    with FakeAnthropic() as a, FakeOpenAI("openai") as o, FakeOpenAI("mistral") as m:
        yield {"anthropic": a, "openai": o, "openai-reasoning": o, "mistral": m}


@pytest.mark.parametrize("case", ALL, ids=[f"{c.service}:{c.name}" for c in ALL])
def test_fake_answers_as_the_catalogue_says(fakes: dict[str, object], case: Case) -> None:
    fake = fakes[case.service]
    body = fill(case.body, MODELS[case.service])
    if case.service == "anthropic":
        assert isinstance(fake, FakeAnthropic)
        headers = {"x-api-key": fake.api_key, "anthropic-version": "2023-06-01", **case.headers}
        resp = http.post(fake.url + "/v1/messages", body, headers)
    else:
        assert isinstance(fake, FakeOpenAI)
        headers = {"authorization": f"Bearer {fake.api_key}", **case.headers}
        resp = http.post(fake.base_url + "/chat/completions", body, headers)
    message = error_message("mistral" if case.service == "mistral" else case.service, resp.json())
    assert matches(case, resp.status, message), (resp.status, message)
