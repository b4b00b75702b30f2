"""The terminal of ``POST /v1/messages/count_tokens``: the upstream's own count when its server
has one (Anthropic's endpoint, vLLM's ``/tokenize``), else dragoman's estimate."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from ..bridges.base import Attempt
from ..bridges.target import for_anthropic_server, target
from ..core.exchange import Exchange, Reply
from ..core.runtime import Runtime
from ..dialects.openai.flavors import capabilities
from ..errors import DragomanError
from ..providers import UpstreamReply
from ..providers.anthropic import AnthropicProvider
from ..providers.openai import OpenAIProvider
from ..routing.deployments import choose
from ..translate.a2o import anthropic_to_openai_request

log = logging.getLogger("dragoman.count_tokens")


class CountTokens:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def __call__(self, ex: Exchange) -> Reply:
        return Reply(200, {}, body=orjson.dumps(await self.count(ex)))

    async def count(self, ex: Exchange) -> dict[str, Any]:
        assert ex.decision is not None
        route = ex.decision.route
        dep = choose(route.deployments, route.config.strategy, self.rt.clock())
        dep = dep or route.deployments[0]
        prov = dep.provider
        det = await self.rt.detected(prov)
        caps = capabilities(det.flavor)
        body = ex.body
        try:
            if isinstance(prov, AnthropicProvider):
                b = for_anthropic_server(dict(body), caps)
                b["model"] = dep.upstream_model
                path = prov.count_tokens_path + (f"?{ex.query}" if ex.query else "")
                rep = await prov.request(
                    "POST", path, orjson.dumps(b), prov.headers_for(ex.headers)
                )
                if rep.status == 200:
                    return dict(orjson.loads(rep.body))
                log.warning(
                    "count_tokens upstream %s answered %s; estimating", prov.name, rep.status
                )
            elif isinstance(prov, OpenAIProvider) and (
                caps.tokenize if prov.config.tokenize is None else prov.config.tokenize
            ):
                at = Attempt(ex, route, dep, det)
                o, _ = anthropic_to_openai_request({**body, "max_tokens": 1}, target(at))
                tb: dict[str, Any] = {
                    "model": dep.upstream_model,
                    "messages": o["messages"],
                    "add_generation_prompt": True,
                }
                if o.get("tools"):
                    tb["tools"] = o["tools"]
                rep = await _post_abs(prov, prov.root_url + "/tokenize", tb)
                if rep.status == 200:
                    got = orjson.loads(rep.body)
                    if isinstance(got.get("count"), int):
                        return {"input_tokens": got["count"]}
                log.warning("tokenize on %s answered %s; estimating", prov.name, rep.status)
        except DragomanError as e:
            log.warning("count_tokens via %s failed (%s); estimating", prov.name, e.message)
        return {"input_tokens": ex.input_estimate()}


async def _post_abs(prov: OpenAIProvider, url: str, body: dict[str, Any]) -> UpstreamReply:
    resp = await prov._open("POST", url, orjson.dumps(body), prov.headers_for(None))
    try:
        data = await resp.read()
    finally:
        resp.release()
    return UpstreamReply(resp.status, resp.headers, data)
