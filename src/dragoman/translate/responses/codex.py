"""What the Codex CLI needs to find its way to dragoman (docs/codex.md).

* :func:`is_codex_client`: Codex's requests carry ``User-Agent: codex_exec/0.171.0 (...)``
  (``codex_cli_rs/...`` for the interactive CLI) and an ``originator`` header;
* :func:`codex_catalog`: the body of ``GET /v1/models`` for Codex. Codex 0.171 reads a model
  catalog ``{"models": [...]}`` from the provider's ``model_catalog_url`` (it does not fetch
  ``{base_url}/models`` on its own); without an entry for the model it warns "Model metadata
  ... not found" and, above all, declares no ``apply_patch`` tool. The entry below is the
  smallest one Codex 0.171 decodes (measured field by field) plus what makes it useful:
  ``apply_patch_tool_type: "freeform"``, the context window, the reasoning levels;
* :func:`codex_config_toml`: the provider block for ``~/.codex/config.toml`` (or a profile,
  ``~/.codex/dragoman.config.toml`` used with ``codex -p dragoman``).

Pure functions: the server and ``dragoman codex`` call them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: Codex asks for levels by these names; the descriptions are shown in its model picker
REASONING_LEVELS: dict[str, str] = {
    "minimal": "Fastest, with the least reasoning",
    "low": "Fast responses with lighter reasoning",
    "medium": "Balances speed and reasoning depth for everyday tasks",
    "high": "Greater reasoning depth for complex problems",
    "xhigh": "Extra high reasoning depth for complex problems",
    "max": "Maximum reasoning depth for the hardest problems",
}

#: Codex sends a catalog entry's base instructions as the first developer message of every
#: request (an entry must have some: Codex 0.171 rejects the whole catalog otherwise). Users
#: replace them with ``model_instructions_file`` in their Codex config.
DEFAULT_BASE_INSTRUCTIONS = """\
You are a coding agent running in the Codex CLI, working in the user's workspace on their \
machine, through the dragoman gateway.

- Read files and run commands with the shell tool; prefer fast tools such as `rg`.
- Edit files with the `apply_patch` tool: send the patch itself (from `*** Begin Patch` to \
`*** End Patch`, in the format its description gives), never wrapped in JSON, quotes or code \
fences.
- Make the change the user asked for and nothing else; keep the existing style.
- When the project has tests or a build, run them to check your work.
- Keep the user informed with short messages, and end with a brief summary of what you changed \
and anything left to do."""

_CODEX_UA = re.compile(r"^codex[_-]?[a-z_]*/", re.I)
_RESERVED_PROVIDERS = frozenset({"openai", "ollama", "lmstudio", "oss", "amazon-bedrock"})
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def is_codex_client(user_agent: str | None, originator: str | None = None) -> bool:
    """Whether a request comes from a Codex client (CLI, exec, IDE extensions)."""
    if originator and originator.lower().startswith("codex"):
        return True
    return bool(user_agent) and _CODEX_UA.match(user_agent or "") is not None


@dataclass(frozen=True, slots=True)
class CodexModel:
    """One model as the Codex catalog describes it."""

    slug: str
    display_name: str | None = None
    description: str | None = None
    #: prompt + output tokens; None: unknown (Codex then uses its own default)
    context_window: int | None = None
    #: reasoning efforts the model takes, weakest first (empty: it does not reason)
    reasoning_levels: tuple[str, ...] = ()
    default_reasoning_level: str | None = None
    #: the model reads images (Codex then offers its image tools)
    vision: bool = False


def codex_model_entry(
    m: CodexModel, *, priority: int = 0, base_instructions: str = DEFAULT_BASE_INSTRUCTIONS
) -> dict[str, object]:
    levels = [lv for lv in m.reasoning_levels if lv in REASONING_LEVELS]
    default = m.default_reasoning_level
    if levels and default not in levels:
        default = "medium" if "medium" in levels else levels[len(levels) // 2]
    entry: dict[str, object] = {
        "slug": m.slug,
        "display_name": m.display_name or m.slug,
        "description": m.description or f"{m.slug} through dragoman",
        "base_instructions": base_instructions,
        "default_reasoning_level": default if levels else None,
        "supported_reasoning_levels": [
            {"effort": lv, "description": REASONING_LEVELS[lv]} for lv in levels
        ],
        # Codex then sends ``reasoning.summary: "auto"`` and shows the reasoning the front
        # streams as summary parts (without it, as raw reasoning text Codex hides)
        "supports_reasoning_summaries": bool(levels),
        "supports_reasoning_summary_parameter": bool(levels),
        "default_reasoning_summary": "auto" if levels else "none",
        "shell_type": "shell_command",
        "apply_patch_tool_type": "freeform",
        "visibility": "list",
        "supported_in_api": True,
        "priority": priority,
        "input_modalities": ["text", "image"] if m.vision else ["text"],
        "supports_parallel_tool_calls": True,
        "support_verbosity": False,
        "truncation_policy": {"mode": "tokens", "limit": 10000},
        "experimental_supported_tools": [],
    }
    if m.context_window:
        entry["context_window"] = m.context_window
        entry["max_context_window"] = m.context_window
    return entry


def codex_catalog(
    models: Iterable[CodexModel], *, base_instructions: str = DEFAULT_BASE_INSTRUCTIONS
) -> dict[str, object]:
    """``GET /v1/models`` for Codex: ``{"models": [...]}``, in the given order."""
    return {
        "models": [
            codex_model_entry(m, priority=i, base_instructions=base_instructions)
            for i, m in enumerate(models)
        ]
    }


def _toml_str(s: str) -> str:
    """A TOML basic string (JSON-style escapes are valid TOML)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def codex_config_toml(
    base_url: str,
    *,
    model: str | None = None,
    provider_id: str = "dragoman",
    env_key: str = "DRAGOMAN_API_KEY",
    headers: Mapping[str, str] | None = None,
) -> str:
    """The Codex config that points it at this gateway: a provider speaking the Responses API
    at ``{base_url}/v1``, its catalog at ``{base_url}/v1/models``, the key read from the
    environment variable ``env_key`` (sent as ``Authorization: Bearer``; never written into
    the file). ``base_url`` is the gateway's root (``http://host:port``) or its ``/v1``."""
    if not _BARE_KEY.match(provider_id) or provider_id in _RESERVED_PROVIDERS:
        raise ValueError(
            f"provider id {provider_id!r} cannot be used: use letters, digits, '-' or '_', and "
            f"none of {sorted(_RESERVED_PROVIDERS)} (Codex reserves them)"
        )
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", env_key):
        raise ValueError(f"env_key {env_key!r} is not an environment variable name")
    root = base_url.rstrip("/")
    if root.endswith("/v1"):
        root = root[:-3]
    lines = [
        "# The Codex CLI through dragoman (docs/codex.md)",
        f"model_provider = {_toml_str(provider_id)}",
    ]
    if model:
        lines.append(f"model = {_toml_str(model)}")
    lines += [
        "",
        f"[model_providers.{provider_id}]",
        f"name = {_toml_str(provider_id)}",
        f"base_url = {_toml_str(root + '/v1')}",
        f"model_catalog_url = {_toml_str(root + '/v1/models')}",
        f"env_key = {_toml_str(env_key)}",
        'wire_api = "responses"',
    ]
    if headers:
        pairs = ", ".join(f"{_toml_str(k)} = {_toml_str(v)}" for k, v in headers.items())
        lines.append(f"http_headers = {{ {pairs} }}")
    return "\n".join(lines) + "\n"
