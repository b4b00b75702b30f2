"""Replay the contract catalogue (rules.py) against the real services: opt-in, never in CI.

    ANTHROPIC_API_KEY=... OPENAI_API_KEY=... MISTRAL_API_KEY=... python -m tests.contract.live

Services without a key are skipped. Every case is a request the service rejects before
generating anything, so a run costs nothing. The output lists each case as ``ok`` or ``DIFF``
with the status and message the service gave; exit status 1 when any case differs, which means
a fake (tests/fakes/) no longer says what its service says. Models: ``CONTRACT_ANTHROPIC_MODEL``
(default claude-sonnet-4-5), ``CONTRACT_OPENAI_MODEL`` (gpt-4.1),
``CONTRACT_OPENAI_REASONING_MODEL`` (o4-mini), ``CONTRACT_MISTRAL_MODEL``
(mistral-large-latest).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from tests.contract.rules import ALL, Case, error_message, fill, matches

SERVICES: dict[str, tuple[str, str, str, str]] = {
    # service: (key variable, url, model variable, default model)
    "anthropic": ("ANTHROPIC_API_KEY", "https://api.anthropic.com/v1/messages",
                  "CONTRACT_ANTHROPIC_MODEL", "claude-sonnet-4-5"),
    "openai": ("OPENAI_API_KEY", "https://api.openai.com/v1/chat/completions",
               "CONTRACT_OPENAI_MODEL", "gpt-4.1"),
    "openai-reasoning": ("OPENAI_API_KEY", "https://api.openai.com/v1/chat/completions",
                         "CONTRACT_OPENAI_REASONING_MODEL", "o4-mini"),
    "mistral": ("MISTRAL_API_KEY", "https://api.mistral.ai/v1/chat/completions",
                "CONTRACT_MISTRAL_MODEL", "mistral-large-latest"),
}  # fmt: skip


def send(case: Case, key: str, url: str, model: str) -> tuple[int, Any]:
    headers = {"content-type": "application/json", **case.headers}
    if case.service == "anthropic":
        headers |= {"x-api-key": key, "anthropic-version": "2023-06-01"}
    else:
        headers["authorization"] = f"Bearer {key}"
    data = json.dumps(fill(case.body, model)).encode()
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode("utf-8", "replace")


def main() -> int:
    diffs = 0
    for case in ALL:
        key_var, url, model_var, default = SERVICES[case.service]
        key = os.environ.get(key_var)
        if not key:
            print(f"skip  {case.service}: {case.name} (no {key_var})")
            continue
        status, body = send(case, key, url, os.environ.get(model_var, default))
        message = error_message(case.service.split("-")[0], body)
        ok = matches(case, status, message)
        diffs += not ok
        print(f"{'ok  ' if ok else 'DIFF'}  {case.service}: {case.name}")
        if not ok:
            print(
                f"        want {case.status} {case.message!r}{' (prefix)' if case.prefix else ''}"
            )
            print(f"        got  {status} {message!r}")
            print(f"        source of the fake's rule: {case.source}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
