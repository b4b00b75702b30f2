"""Custom (freeform) tool input unwrapping, local shell actions, flattened names."""

from __future__ import annotations

import json

import pytest

from dragoman.translate.responses.tools import (
    ToolIndex,
    ToolRef,
    local_shell_action,
    local_shell_arguments,
    unwrap_custom_input,
)

PATCH = '*** Begin Patch\n*** Update File: a.py\n@@\n-x = 1\n+x = {"k": 2}\n*** End Patch\n'


@pytest.mark.parametrize(
    ("arguments", "want"),
    [
        (json.dumps({"input": PATCH}), PATCH),  # the shape the tool asks for
        (PATCH, PATCH),  # the raw patch, not JSON at all
        (json.dumps({"patch": PATCH}), PATCH),
        (json.dumps({"content": PATCH}), PATCH),
        (json.dumps({"command": ["apply_patch", PATCH]}), PATCH),
        (json.dumps(PATCH), PATCH),  # a bare JSON string
        (json.dumps(json.dumps({"input": PATCH})), PATCH),  # encoded twice
        ("```diff\n" + PATCH + "```", PATCH.rstrip("\n")),
        (json.dumps({"input": "```\n" + PATCH + "```\n"}), PATCH.rstrip("\n")),
        ("apply_patch <<'EOF'\n" + PATCH + "EOF\n", PATCH),  # a heredoc
        ("Here is the patch:\n\n" + PATCH + "\nLet me know.", PATCH),  # prose around it
        ('{"input": "' + PATCH.replace('"', '\\"') + '"}', PATCH),  # literal newlines in JSON
        ({"input": PATCH}, PATCH),  # a server that sends an object
        ("*** Begin Patch\n*** Add File: x\n+cut", "*** Begin Patch\n*** Add File: x\n+cut"),
    ],
)
def test_apply_patch_wrappings_models_produce(arguments: object, want: str) -> None:
    assert unwrap_custom_input(arguments) == want


@pytest.mark.parametrize(
    ("arguments", "want"),
    [
        (json.dumps({"input": "print(1)"}), "print(1)"),
        (json.dumps({"input": '{"a": 1}'}), '{"a": 1}'),  # JSON as the raw input stays
        (json.dumps({"input": '{"text": "hi"}'}), '{"text": "hi"}'),
        (json.dumps({"code": "x"}), "x"),
        (json.dumps({"anything": "only string"}), "only string"),
        (json.dumps({"a": 1, "b": 2}), json.dumps({"a": 1, "b": 2})),  # unknown: as sent
        ("plain text", "plain text"),
        ("", ""),
        (None, ""),
    ],
)
def test_generic_custom_tools(arguments: object, want: str) -> None:
    assert unwrap_custom_input(arguments) == want


def test_local_shell_round_trip() -> None:
    action = {
        "type": "exec",
        "command": ["bash", "-lc", "ls"],
        "timeout_ms": 500,
        "working_directory": "/w",
        "env": {},
        "user": None,
    }
    assert local_shell_action(local_shell_arguments(action)) == action
    assert local_shell_action('{"command": "ls -a"}')["command"] == ["bash", "-lc", "ls -a"]
    assert local_shell_action("not json")["command"] == []


def test_flattened_names_are_valid_and_distinct() -> None:
    idx = ToolIndex()
    assert idx.add(ToolRef("function", "status", "git")) == "git__status"
    assert idx.add(ToolRef("function", "git__status")) != "git__status"  # collides: renamed
    long_ns = "n" * 60
    name = idx.add(ToolRef("function", "tool", long_ns))
    assert len(name) <= 64
    assert idx.ref(name) == ToolRef("function", "tool", long_ns)
    assert idx.ref("never_declared") == ToolRef("function", "never_declared")
    assert idx.add(ToolRef("function", "status", "git")) == "git__status"  # stable
