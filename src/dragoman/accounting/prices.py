"""Prices: the shipped table (``prices.json``), config overrides, and cost arithmetic.

Resolution for ``price_for(model, deployment)``, first hit wins:

1. the deployment's ``prices`` (``models.<m>.deployments[i].prices``; the deployment is matched
   by ``name``, by the name the router gives it (``<model>/<provider>``, ``#<i>`` after the
   first), then by ``provider/model``, ``model`` or ``provider``);
2. the model's ``prices`` (``models.<m>.prices``);
3. the shipped table with ``accounting.prices`` laid over it (a config entry replaces the shipped
   entry of the same name), by exact name, then longest prefix; the gateway name first, then the
   upstream model id;
4. none: the model is *unpriced*. A request to it under a USD budget is refused (402, see
   ``Accountant.hold``): a budget must not be bypassed by a model nobody priced. Without a
   budget it is recorded at zero cost, with a one-time warning. An explicit
   ``prices: {input: 0, output: 0}`` is a price: free.

Missing cache prices default to 1.25x (write), 2x (1-hour write) and 0.1x (read) the input price
for Claude models (name contains "claude" or the provider is an Anthropic one) and to the input
price otherwise; a server-side web search costs $0.01 on Claude models (audit #23).
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any

from dragoman.config import Config, DeploymentConfig, Prices
from dragoman.usage import Usage

log = logging.getLogger("dragoman.accounting")

_TABLE: dict[str, Any] | None = None


def default_table() -> dict[str, Any]:
    """The shipped table: ``{"as_of": ..., "models": {name: {input, output, ...}}}``."""
    global _TABLE
    if _TABLE is None:
        text = resources.files("dragoman.accounting").joinpath("prices.json").read_text()
        _TABLE = json.loads(text)
    return _TABLE


def _lookup(table: dict[str, Prices], name: str) -> Prices | None:
    if name in table:
        return table[name]
    best: str | None = None
    for k in table:
        if name.startswith(k) and (best is None or len(k) > len(best)):
            best = k
    if best is not None:
        return table[best]
    if "/" in name:
        return _lookup(table, name.rsplit("/", 1)[1])
    return None


#: USD per server-side web search on Claude models ($10 per 1,000 searches)
CLAUDE_WEB_SEARCH = 0.01


def complete(p: Prices, claude: bool) -> Prices:
    """Fill absent cache and server-tool prices with the defaults."""
    if None not in (p.cache_write, p.cache_read, p.cache_write_1h, p.web_search):
        return p
    cw = p.cache_write if p.cache_write is not None else p.input * (1.25 if claude else 1.0)
    cr = p.cache_read if p.cache_read is not None else p.input * (0.1 if claude else 1.0)
    cw1h = p.cache_write_1h if p.cache_write_1h is not None else (p.input * 2 if claude else cw)
    ws = p.web_search if p.web_search is not None else (CLAUDE_WEB_SEARCH if claude else 0.0)
    return Prices(
        input=p.input,
        output=p.output,
        cache_write=cw,
        cache_read=cr,
        per_request=p.per_request,
        cache_write_1h=cw1h,
        web_search=ws,
    )


def cost(p: Prices, usage: Usage | None) -> float:
    """USD for a usage at prices ``p`` (the per-request price is charged even without usage)."""
    if usage is None:
        return p.per_request
    cw = p.cache_write or 0.0
    # 1-hour cache writes are part of cache_creation_input_tokens, at their own rate
    cw1h = p.cache_write_1h if p.cache_write_1h is not None else cw
    written_1h = min(usage.cache_write_1h_tokens, usage.cache_creation_input_tokens)
    return (
        (
            usage.input_tokens * p.input
            + usage.output_tokens * p.output
            + (usage.cache_creation_input_tokens - written_1h) * cw
            + written_1h * cw1h
            + usage.cache_read_input_tokens * (p.cache_read or 0.0)
        )
        / 1e6
        + usage.web_search_requests * (p.web_search or 0.0)
        + p.per_request
    )


def worst_case(p: Prices, input_tokens: int, max_tokens: int) -> float:
    """The most a request can cost: the whole input at the input price, max_tokens of output."""
    return (max(input_tokens, 0) * p.input + max(max_tokens, 0) * p.output) / 1e6 + p.per_request


_ZERO = Prices(
    input=0.0, output=0.0, cache_write=0.0, cache_read=0.0, cache_write_1h=0.0, web_search=0.0
)


class PriceBook:
    def __init__(self, config: Config) -> None:
        self.config = config
        shipped = default_table()["models"]
        self.shipped = {k: Prices(**v) for k, v in shipped.items()}
        self.overrides = dict(config.accounting.prices)
        #: config entries replace the shipped ones of the same name; prefixes compete on length
        self.table = {**self.shipped, **self.overrides}
        self._cache: dict[tuple[str, str | None], Prices | None] = {}
        self._warned: set[str] = set()

    def _deployment(self, model: str, deployment: str | None) -> DeploymentConfig | None:
        m = self.config.models.get(model)
        if m is None or deployment is None:
            return None
        for i, d in enumerate(m.deployments):
            routed = f"{model}/{d.provider}" + (f"#{i}" if i else "")
            if deployment == (d.name or routed):
                return d
        for d in m.deployments:
            if deployment in (f"{d.provider}/{d.model or model}", d.model, d.provider):
                return d
        return None

    def _is_claude(self, model: str, upstream: str | None, provider: str | None) -> bool:
        if "claude" in model.lower() or (upstream and "claude" in upstream.lower()):
            return True
        p = self.config.providers.get(provider) if provider else None
        return p is not None and p.kind == "anthropic"

    def price_for(self, model: str, deployment: str | None = None) -> Prices:
        """The prices to charge (zero for an unpriced model, with a one-time warning)."""
        got = self.lookup(model, deployment)
        if got is not None:
            return got
        if model not in self._warned:
            self._warned.add(model)
            log.warning(
                "no price for model %r: its requests are recorded at zero cost, and refused "
                "under a USD budget (add accounting.prices.%s or models.%s.prices)",
                model,
                model,
                model,
            )
        return _ZERO

    def lookup(self, model: str, deployment: str | None = None) -> Prices | None:
        """The model's prices on that deployment, or None when nobody priced it."""
        key = (model, deployment)
        try:
            return self._cache[key]
        except KeyError:
            got = self._cache[key] = self._resolve(model, deployment)
            return got

    def unpriced(self) -> list[str]:
        """Configured models (``model`` or ``model (deployment)``) with no price."""
        out: list[str] = []
        for name, m in self.config.models.items():
            if not m.deployments:
                if self.lookup(name, None) is None:
                    out.append(name)
                continue
            for i, d in enumerate(m.deployments):
                dep = d.name or f"{name}/{d.provider}" + (f"#{i}" if i else "")
                if self.lookup(name, dep) is None:
                    out.append(f"{name} ({dep})" if len(m.deployments) > 1 else name)
        return out

    def _resolve(self, model: str, deployment: str | None) -> Prices | None:
        m = self.config.models.get(model)
        d = self._deployment(model, deployment)
        upstream = (d.model if d else None) or (m.model if m else None)
        provider = (d.provider if d else None) or (m.provider if m else None)
        if m is not None and provider is None and m.deployments:
            provider = m.deployments[0].provider
        claude = self._is_claude(model, upstream, provider)
        names = [model] + ([upstream] if upstream and upstream != model else [])
        found: Prices | None = None
        if d is not None and d.prices is not None:
            found = d.prices
        elif m is not None and m.prices is not None:
            found = m.prices
        else:
            for n in names:
                found = _lookup(self.table, n)
                if found is not None:
                    break
        if found is None:
            return None
        return complete(found, claude)
