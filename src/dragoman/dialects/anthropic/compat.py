"""What an Anthropic Messages body needs before it reaches a server that is not Anthropic.

Pure functions; each returns its argument itself when there is nothing to change, so a body
that needs nothing is not copied. See docs/flavors.md.
"""

from __future__ import annotations

from typing import Any

#: Claude Code's per-request system block (``cc_version=...; cc_entrypoint=...; cch=<hex>;``):
#: ``cch`` changes on every request, so any server-side prefix cache would miss every turn
BILLING_PREFIX = "x-anthropic-billing-header"


def is_billing_text(text: object) -> bool:
    return isinstance(text, str) and text.startswith(BILLING_PREFIX)


def without_billing_line(text: str) -> str:
    """A system string with a leading billing-header line removed."""
    if not is_billing_text(text):
        return text
    _, _, rest = text.partition("\n")
    return rest.lstrip("\n")


def drop_billing_header(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without Claude Code's billing-header system block (for every upstream that is
    not api.anthropic.com)."""
    system = body.get("system")
    if isinstance(system, str):
        if not is_billing_text(system):
            return body
        out = dict(body)
        rest = without_billing_line(system)
        if rest:
            out["system"] = rest
        else:
            del out["system"]
        return out
    if not isinstance(system, list) or not any(
        isinstance(b, dict) and is_billing_text(b.get("text")) for b in system
    ):
        return body
    out = dict(body)
    kept = [b for b in system if not (isinstance(b, dict) and is_billing_text(b.get("text")))]
    if kept:
        out["system"] = kept
    else:
        del out["system"]
    return out


def effort_only_with_thinking(body: dict[str, Any]) -> dict[str, Any]:
    """Drop ``output_config.effort`` when thinking is switched off: DeepSeek answers 400
    "thinking options type cannot be disabled when reasoning_effort is set" to the pair,
    which Claude Code (2.1.166+) sends for every subagent."""
    thinking = body.get("thinking")
    oc = body.get("output_config")
    if not (
        isinstance(thinking, dict)
        and thinking.get("type") == "disabled"
        and isinstance(oc, dict)
        and "effort" in oc
    ):
        return body
    out = dict(body)
    rest = {k: v for k, v in oc.items() if k != "effort"}
    if rest:
        out["output_config"] = rest
    else:
        del out["output_config"]
    return out
