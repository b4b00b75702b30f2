"""Facts about the upstream a request is prepared for, from config and from what its server
reported (``providers/detect.py``): the translators' ``Target``, tool-call id formats, the
reasoning field a server takes back, the output room its context window leaves."""

from __future__ import annotations

from typing import Any

from ..dialects.anthropic.compat import drop_billing_header, effort_only_with_thinking
from ..dialects.openai.flavors import (
    Flavor,
    capabilities,
    reasoning_field_hint,
    reasoning_with_tool_calls,
    resolve_reasoning_field,
)
from ..translate.context import Target
from ..translate.names import strip_synthetic_thinking
from ..translate.tool_ids import tool_id_format_for
from .base import Attempt


def target(at: Attempt) -> Target:
    """What the translators need to know about the upstream model of this attempt."""
    ex, mc, det, dep = at.ex, at.route.config, at.detection, at.dep
    caps = capabilities(det.flavor)
    model = dep.upstream_model
    field = resolve_reasoning_field(
        caps,
        model,
        configured=dep.provider.config.reasoning_field,
        learned=det.reasoning_fields.get(model),
    )
    return Target(
        model=model,
        requested_model=ex.requested_model,
        # the config's window, else the one the server reported (vLLM max_model_len...)
        context_window=mc.context_window or det.context_window(model),
        max_output_tokens=mc.max_output_tokens,
        flavor=caps.name,
        reasoning_field=field,
        reasoning_with_tool_calls=reasoning_with_tool_calls(caps, model, field),
        # an OpenAI client that names no max_tokens gets the model's whole output budget,
        # never a silent 4096 cut (docs/failure-catalogue.md #13)
        default_max_tokens=mc.default_max_tokens or mc.max_output_tokens or 4096,
        input_tokens_estimate=ex.input_estimate(),
        reasoning=mc.reasoning if mc.reasoning is not None else caps.reasons(model),
        tool_id_format=tool_id_format(at),
    )


def tool_id_format(at: Attempt) -> str:
    """The tool-call id format of a deployment's upstream (its flavor's row, and the model
    for vLLM serving a Mistral model; docs/translation.md, "Tool-call ids")."""
    if at.dep.provider.kind != "openai":
        return "any"
    return tool_id_format_for(at.detection.flavor, at.dep.upstream_model)


def room(at: Attempt, body: dict[str, Any]) -> int | None:
    """Output tokens the model's window leaves after the prompt (the window configured,
    else reported by the server), for an OpenAI client's ``max_tokens: 128000`` (the Vercel
    AI SDK's default for models it does not know). None: nothing to lower: no window known,
    no ``max_tokens``, or the prompt alone overflows it (the upstream then says so, with
    its own numbers). The prompt is only estimated (~10 us) when the estimate is already
    there (the ledger made it) or the output asked for takes over half the window."""
    mt = body.get("max_tokens") or body.get("max_completion_tokens")
    if not isinstance(mt, int):
        return None
    window = at.route.config.context_window or at.detection.context_window(at.dep.upstream_model)
    if not window or (at.ex.estimate is None and mt <= window // 2):
        return None
    left = window - at.ex.input_estimate()
    return left if left >= 1 else None


def for_anthropic_server(body: dict[str, Any], caps: Flavor) -> dict[str, Any]:
    """A pass-through body as the Anthropic-speaking server ``caps`` describes takes it:
    Claude Code's billing header only for api.anthropic.com, our own thinking signatures never
    where they are checked, effort only with thinking where the pair is a 400."""
    if caps.verifies_signatures:
        body = strip_synthetic_thinking(body)
    if not caps.is_anthropic:
        body = drop_billing_header(body)
    if caps.effort_needs_thinking:
        body = effort_only_with_thinking(body)
    return body


def known_reasoning_field(at: Attempt, caps: Flavor) -> str | None:
    """The reasoning field a server is known to take back, or None: an OpenAI client's own
    fields are then left as they are. Known means configured, seen in the server's answers,
    required by its row (DeepSeek), guessed from the model's name, or none at all (strict
    servers such as api.openai.com, which reject unknown message fields)."""
    model = at.dep.upstream_model
    configured = at.dep.provider.config.reasoning_field
    if configured is not None:
        return configured
    learned = at.detection.reasoning_fields.get(model)
    if learned:
        return learned
    if caps.reasoning_field == "" or caps.reasoning_with_tool_calls:
        return caps.reasoning_field
    return reasoning_field_hint(model)
