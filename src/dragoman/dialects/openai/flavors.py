"""The capability table: one row per kind of server, what it accepts and what it needs.

Every quirk of an OpenAI-compatible server (and the few of Anthropic-speaking servers that are
not Anthropic) is a column here, so the translators and the bridges look a row up instead of
branching on a flavor name. Adding a server is adding a row. ``generic`` is what a server that
could not be recognised gets: standard Chat Completions fields only. See docs/flavors.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ThinkingSwitch = Literal["none", "chat_template_kwargs", "deepseek"]
PrefillSwitch = Literal["none", "continue_final_message", "prefix"]
ToolIdFormat = Literal["any", "mistral9"]

#: reasoning_effort values from weakest to strongest (OpenAI's names plus DeepSeek's ``max``)
EFFORT_RANK: dict[str, int] = {
    "none": 0,
    "minimal": 1,
    "low": 2,
    "medium": 3,
    "high": 4,
    "xhigh": 5,
    "max": 6,
}
ALL_EFFORTS = tuple(EFFORT_RANK)


@dataclass(frozen=True, slots=True)
class Flavor:
    """What one kind of server accepts. Defaults are the safe, standard-only choice."""

    name: str
    #: shown by ``dragoman route`` and ``/health``
    description: str
    #: where the output cap goes: ``max_tokens`` or ``max_completion_tokens``
    max_tokens_field: str = "max_tokens"
    #: ``top_k`` is a known sampling parameter (else it is dropped)
    accepts_top_k: bool = False
    #: most stop sequences the server takes (None: no limit)
    max_stop: int | None = 4
    #: ``user`` (a hashed ``metadata.user_id``) is sent
    accepts_user: bool = False
    #: ``content`` of an assistant turn that only calls tools: ``""`` or None (JSON null)
    empty_assistant_content: str | None = ""
    #: ``reasoning_effort`` values it takes (empty: never sent)
    effort_levels: tuple[str, ...] = ()
    #: model-id prefixes that take reasoning switches (None: every model does)
    reasoning_models: tuple[str, ...] | None = None
    #: how thinking is switched on and off besides ``reasoning_effort``
    thinking_switch: ThinkingSwitch = "none"
    #: how a trailing assistant message is continued (prefill): vLLM's
    #: ``continue_final_message``, or Mistral's ``prefix: true`` on that message
    prefill_switch: PrefillSwitch = "none"
    #: ``stream_options`` is a known parameter (api.mistral.ai answers 422 to it, and puts the
    #: usage on its last chunk anyway)
    accepts_stream_options: bool = True
    #: PDFs travel as ``file`` content parts
    pdf_parts: bool = False
    #: assistant-message field that carries reasoning back ("" drops it; None: not known for
    #: this kind of server, learned from its own answers or guessed from the model name)
    reasoning_field: str | None = None
    #: every assistant turn with tool calls must carry the reasoning field (DeepSeek thinking
    #: mode answers 400 otherwise); an empty one is sent when the client kept none
    reasoning_with_tool_calls: bool = False
    #: ``POST {root}/tokenize`` counts chat messages (count_tokens)
    tokenize: bool = False
    #: tool-call ids it accepts: ``any`` or ``mistral9`` (exactly 9 of ``[a-zA-Z0-9]``)
    tool_id_format: ToolIdFormat = "any"
    #: serves ``POST /v1/responses`` itself
    serves_responses: bool = False
    # -- Anthropic-dialect upstreams -------------------------------------------------------
    #: api.anthropic.com itself: Claude Code's billing header is forwarded to it, and only to it
    is_anthropic: bool = False
    #: checks thinking signatures, so the ones dragoman minted must not reach it (unknown
    #: servers are assumed to, as a proxy in front of Anthropic would)
    verifies_signatures: bool = True
    #: an effort setting with thinking switched off is a 400 (DeepSeek): send only one of them
    effort_needs_thinking: bool = False

    def pick_effort(self, effort: str) -> str | None:
        """The accepted ``reasoning_effort`` nearest to ``effort`` (ties: the stronger), or None
        when the server takes none. ``none`` is only sent when asked for by name."""
        if not self.effort_levels:
            return None
        if effort in self.effort_levels:
            return effort
        levels = [lv for lv in self.effort_levels if lv != "none"]
        if not levels:
            return None
        rank = EFFORT_RANK.get(effort)
        if rank is None:
            return "medium" if "medium" in levels else levels[len(levels) // 2]
        return min(levels, key=lambda lv: (abs(EFFORT_RANK[lv] - rank), -EFFORT_RANK[lv]))

    def reasons(self, model: str) -> bool:
        """Whether ``model`` takes reasoning switches on this server."""
        if self.reasoning_models is None:
            return True
        return model.lower().startswith(self.reasoning_models)


FLAVORS: dict[str, Flavor] = {
    f.name: f
    for f in (
        Flavor(
            "generic",
            "a server not recognised: standard Chat Completions fields only",
        ),
        Flavor(
            "vllm",
            "vLLM",
            accepts_top_k=True,
            max_stop=None,
            effort_levels=ALL_EFFORTS,
            thinking_switch="chat_template_kwargs",
            prefill_switch="continue_final_message",
            reasoning_field="reasoning",
            tokenize=True,
            serves_responses=True,
            verifies_signatures=False,
        ),
        Flavor(
            "sglang",
            "SGLang",
            accepts_top_k=True,
            max_stop=None,
            effort_levels=("low", "medium", "high"),
            thinking_switch="chat_template_kwargs",
            reasoning_field="reasoning_content",
            serves_responses=True,
            verifies_signatures=False,
        ),
        Flavor(
            "ollama",
            "Ollama",
            max_stop=None,
            effort_levels=("none", "low", "medium", "high"),
            reasoning_field="reasoning",
            serves_responses=True,
            verifies_signatures=False,
        ),
        Flavor(
            "llamacpp",
            "llama.cpp llama-server",
            accepts_top_k=True,
            max_stop=None,
            thinking_switch="chat_template_kwargs",
            reasoning_field="reasoning_content",
            verifies_signatures=False,
        ),
        Flavor(
            "lmstudio",
            "LM Studio",
            accepts_top_k=True,
            max_stop=None,
            effort_levels=("low", "medium", "high"),
            serves_responses=True,
            verifies_signatures=False,
        ),
        Flavor(
            "openai",
            "api.openai.com (strict parameters)",
            max_tokens_field="max_completion_tokens",
            accepts_user=True,
            empty_assistant_content=None,
            effort_levels=("none", "minimal", "low", "medium", "high", "xhigh"),
            reasoning_models=("o1", "o3", "o4", "gpt-5", "gpt-oss"),
            pdf_parts=True,
            reasoning_field="",
            serves_responses=True,
        ),
        Flavor(
            "deepseek",
            "DeepSeek API (thinking mode)",
            max_stop=16,
            effort_levels=("low", "high", "max"),
            thinking_switch="deepseek",
            reasoning_field="reasoning_content",
            reasoning_with_tool_calls=True,
            serves_responses=True,
            verifies_signatures=False,
            effort_needs_thinking=True,
        ),
        Flavor(
            "mistral",
            "Mistral API (9-character tool-call ids)",
            prefill_switch="prefix",
            accepts_stream_options=False,
            reasoning_field="",
            tool_id_format="mistral9",
        ),
        Flavor(
            "groq",
            "Groq",
            max_tokens_field="max_completion_tokens",
            accepts_user=True,
            empty_assistant_content=None,
            reasoning_field="reasoning",
            serves_responses=True,
        ),
        Flavor(
            "openrouter",
            "OpenRouter",
            accepts_top_k=True,
            max_stop=None,
            accepts_user=True,
            reasoning_field="reasoning",
            serves_responses=True,
        ),
        Flavor(
            "together",
            "Together AI",
            accepts_top_k=True,
            max_stop=None,
            reasoning_field="reasoning",
        ),
        Flavor(
            "fireworks",
            "Fireworks AI",
            accepts_top_k=True,
            accepts_user=True,
            reasoning_field="reasoning_content",
            serves_responses=True,
        ),
        Flavor(
            "gemini-openai",
            "Gemini's OpenAI-compatible endpoint",
            empty_assistant_content=None,
            effort_levels=("low", "medium", "high"),
            reasoning_models=("gemini-2.5", "gemini-3"),
            reasoning_field="",
        ),
        Flavor(
            "anthropic",
            "api.anthropic.com",
            is_anthropic=True,
        ),
    )
}

#: every value ``flavor:`` accepts in the config
FLAVOR_NAMES: tuple[str, ...] = ("auto", *FLAVORS)


def capabilities(name: str) -> Flavor:
    """The row for ``name``; an unknown name gets the standard-only ``generic`` row."""
    return FLAVORS.get(name) or FLAVORS["generic"]


def reasoning_field_hint(model: str) -> str | None:
    """The reasoning field a model is known to want wherever it is served, from its name:
    DeepSeek models answer and take ``reasoning_content``."""
    return "reasoning_content" if "deepseek" in model.lower() else None


def resolve_reasoning_field(
    row: Flavor, model: str, *, configured: str | None, learned: str | None
) -> str:
    """The field reasoning travels back in: the config's, else the one the upstream was seen
    answering with, else the row's, else a guess from the model name, else none."""
    if configured is not None:
        return configured
    if learned:
        return learned
    if row.reasoning_field is not None:
        return row.reasoning_field
    return reasoning_field_hint(model) or ""


def reasoning_with_tool_calls(row: Flavor, model: str, field: str) -> bool:
    """Whether every assistant turn with tool calls must carry ``field`` (DeepSeek's rule,
    wherever a DeepSeek model is served with its own field name)."""
    if not field:
        return False
    return row.reasoning_with_tool_calls or (
        field == "reasoning_content" and reasoning_field_hint(model) == field
    )
