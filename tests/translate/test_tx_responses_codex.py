"""Codex discovery as pure functions: client detection, the model catalog, the config block."""

from __future__ import annotations

import tomllib

import pytest

from dragoman.translate.responses.codex import (
    DEFAULT_BASE_INSTRUCTIONS,
    CodexModel,
    codex_catalog,
    codex_config_toml,
    is_codex_client,
)

#: what Codex 0.171.0 needs in an entry (measured: without any of these it rejects the catalog)
REQUIRED = {
    "slug",
    "display_name",
    "support_verbosity",
    "truncation_policy",
    "supported_reasoning_levels",
    "shell_type",
    "visibility",
    "supported_in_api",
    "priority",
    "experimental_supported_tools",
    "base_instructions",
}


@pytest.mark.parametrize(
    ("ua", "originator", "want"),
    [
        ("codex_exec/0.171.0 (Debian 12.0.0; x86_64) xterm (codex_exec; 0.171.0)", None, True),
        ("codex_cli_rs/0.171.0 (Debian 12.0.0; x86_64) xterm", "codex_cli_rs", True),
        ("OpenAI/Python 3.57.0", None, False),
        ("claude-cli/2.1.197 (external, cli)", None, False),
        (None, "codex_vscode", True),
        (None, None, False),
        ("codexfan-bot/1.0", None, False),
    ],
)
def test_codex_is_recognised(ua: str | None, originator: str | None, want: bool) -> None:
    assert is_codex_client(ua, originator) is want


def test_catalog_entries() -> None:
    cat = codex_catalog(
        [
            CodexModel(
                "claude-sonnet-4-5",
                context_window=200000,
                reasoning_levels=("low", "medium", "high"),
                vision=True,
            ),
            CodexModel("qwen3-coder", context_window=32768),
        ]
    )
    a, b = cat["models"]  # type: ignore[misc]
    assert set(a) >= REQUIRED and set(b) >= REQUIRED
    assert a["slug"] == "claude-sonnet-4-5" and a["priority"] == 0 and b["priority"] == 1
    assert a["apply_patch_tool_type"] == b["apply_patch_tool_type"] == "freeform"
    assert a["context_window"] == a["max_context_window"] == 200000
    assert a["default_reasoning_level"] == "medium"
    assert [x["effort"] for x in a["supported_reasoning_levels"]] == ["low", "medium", "high"]
    assert a["supports_reasoning_summaries"] is True and b["supports_reasoning_summaries"] is False
    assert b["default_reasoning_level"] is None and b["supported_reasoning_levels"] == []
    assert a["input_modalities"] == ["text", "image"] and b["input_modalities"] == ["text"]
    assert a["base_instructions"] == DEFAULT_BASE_INSTRUCTIONS
    assert "context_window" not in codex_catalog([CodexModel("x")])["models"][0]  # type: ignore[index]


def test_config_block_is_valid_toml_pointing_at_the_gateway() -> None:
    text = codex_config_toml("http://127.0.0.1:8080/", model="qwen3-coder")
    cfg = tomllib.loads(text)
    assert cfg == {
        "model_provider": "dragoman",
        "model": "qwen3-coder",
        "model_providers": {
            "dragoman": {
                "name": "dragoman",
                "base_url": "http://127.0.0.1:8080/v1",
                "model_catalog_url": "http://127.0.0.1:8080/v1/models",
                "env_key": "DRAGOMAN_API_KEY",
                "wire_api": "responses",
            }
        },
    }
    assert (
        tomllib.loads(codex_config_toml("http://h:1/v1"))["model_providers"]["dragoman"]["base_url"]
        == "http://h:1/v1"
    )
    odd = codex_config_toml("http://h:1", model='we"ird\\\n', headers={"X-Team": "a\tb"})
    cfg = tomllib.loads(odd)
    assert cfg["model"] == 'we"ird\\\n'
    assert cfg["model_providers"]["dragoman"]["http_headers"] == {"X-Team": "a\tb"}


@pytest.mark.parametrize("pid", ["openai", "ollama", "lmstudio", "bad id", "a.b", ""])
def test_reserved_or_invalid_provider_ids(pid: str) -> None:
    with pytest.raises(ValueError):
        codex_config_toml("http://h", provider_id=pid)


def test_env_key_must_be_a_variable_name() -> None:
    with pytest.raises(ValueError):
        codex_config_toml("http://h", env_key="X; rm -rf /")
