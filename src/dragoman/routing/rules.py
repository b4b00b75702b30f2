"""Where a request goes: aliases, scenario rules, vision routing, with the reasons (which
``dragoman route`` prints)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import RouteRule
from ..errors import InvalidRequestError
from .models import ModelMap, ModelRoute


@dataclass
class Decision:
    route: ModelRoute
    reasons: list[str] = field(default_factory=list)
    has_images: bool = False


def anthropic_has_images(body: dict[str, Any]) -> bool:
    for m in body.get("messages") or ():
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, list) and _blocks_have_images(c):
            return True
    return False


def _blocks_have_images(blocks: list[Any]) -> bool:
    for b in blocks:
        if not isinstance(b, dict):
            continue
        t = b.get("type")
        if t == "image":
            return True
        if t == "tool_result":
            inner = b.get("content")
            if isinstance(inner, list) and _blocks_have_images(inner):
                return True
    return False


def openai_has_images(body: dict[str, Any]) -> bool:
    for m in body.get("messages") or ():
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, list):
            for p in c:
                if isinstance(p, dict) and p.get("type") in ("image_url", "input_image"):
                    return True
    return False


def wants_thinking(front: str, body: dict[str, Any]) -> bool:
    if front == "anthropic":
        t = body.get("thinking")
        return isinstance(t, dict) and t.get("type") in ("enabled", "adaptive")
    effort = body.get("reasoning_effort")
    return bool(effort) and effort not in ("none", "minimal")


def _model_matches(pattern: str, requested: str) -> bool:
    p, r = pattern.lower(), requested.lower()
    if any(c in p for c in "*?["):
        return fnmatch.fnmatchcase(r, p)
    return p in r


def _rule_applies(
    rule: RouteRule,
    front: str,
    body: dict[str, Any],
    requested: str,
    images: bool,
    estimate: Callable[[], int],
) -> str | None:
    why: list[str] = []
    if rule.match_model is not None:
        if not _model_matches(rule.match_model, requested):
            return None
        why.append(f"model {requested!r} matches {rule.match_model!r}")
    if rule.thinking is not None:
        if wants_thinking(front, body) != rule.thinking:
            return None
        why.append("thinking requested" if rule.thinking else "no thinking")
    if rule.has_tools is not None:
        if bool(body.get("tools")) != rule.has_tools:
            return None
        why.append("has tools" if rule.has_tools else "no tools")
    if rule.has_images is not None:
        if images != rule.has_images:
            return None
        why.append("has images" if rule.has_images else "no images")
    if rule.min_input_tokens is not None:
        n = estimate()
        if n < rule.min_input_tokens:
            return None
        why.append(f"~{n} input tokens >= {rule.min_input_tokens}")
    return ", ".join(why) or "always"


def decide(
    models: ModelMap,
    rules: list[RouteRule],
    front: str,
    body: dict[str, Any],
    estimate: Callable[[], int],
) -> Decision:
    """Resolve the model a request goes to: rules first, then names/aliases, then vision."""
    requested = body.get("model") or ""
    images = anthropic_has_images(body) if front == "anthropic" else openai_has_images(body)
    decision: Decision | None = None
    cached: list[int] = []

    def est() -> int:
        if not cached:
            cached.append(estimate())
        return cached[0]

    for i, rule in enumerate(rules):
        why = _rule_applies(rule, front, body, requested, images, est)
        if why is not None:
            label = rule.name or f"rules[{i}]"
            decision = Decision(models.get(rule.model), [f"rule {label}: {why} -> {rule.model!r}"])
            break
    if decision is None:
        route, why = models.explain(requested)
        decision = Decision(route, [why])
    decision.has_images = images
    if images and not decision.route.vision:
        name = decision.route.name
        asked = f" (requested as {requested!r})" if requested and requested != name else ""
        vm = decision.route.config.vision_model
        if not vm:
            raise InvalidRequestError(
                f"model {name!r}{asked} cannot take images (vision: false) and has no "
                "vision_model configured; remove the images or choose a vision model",
                param="messages",
            )
        target = models.get(vm)
        if not target.vision:
            raise InvalidRequestError(
                f"model {name!r}{asked} cannot take images, and its vision_model {vm!r} "
                "cannot either (vision: false)",
                param="messages",
            )
        decision.reasons.append(
            f"request carries images and {name!r} has vision: false -> vision_model {vm!r}"
        )
        decision.route = target
    return decision
