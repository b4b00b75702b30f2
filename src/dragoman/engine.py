"""The engine: one request in one dialect, to one upstream in either dialect, and back.

The server and the library both call ``Engine``; nothing else routes, retries, translates or
keeps the books. A request goes through:

1. validation in the caller's dialect (400 naming the field);
2. ``routing.rules.decide``: scenario rules, aliases, vision;
3. the ledger hold (when accounting is on);
4. attempts: pick a deployment, prepare the upstream request (pass-through or translated),
   call it, retry with backoff on retryable failures, then fall back to other models;
5. the response, translated back (streams are relayed event by event as they arrive);
6. the ledger settles: confirmed at the real cost, or cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .accounting.allowed import allowed, may_use
from .accounting.types import Outcome, RequestInfo
from .config import Config
from .dialects.anthropic.compat import drop_billing_header, effort_only_with_thinking
from .dialects.openai.compat import adapt_chat_request
from .dialects.openai.flavors import (
    Flavor,
    capabilities,
    reasoning_field_hint,
    reasoning_with_tool_calls,
    resolve_reasoning_field,
)
from .errors import (
    STATUS_BY_TYPE,
    ContextOverflow,
    DragomanError,
    InvalidRequestError,
    OverloadedError,
    ServerError,
    UpstreamRefusal,
    type_for_status,
)
from .guard.request import check_request
from .ids import request_id
from .protocols import anthropic as pa
from .protocols import openai as po
from .protocols.sse import SSEParser, anthropic_frame, openai_frame
from .providers import Provider, UpstreamReply, UpstreamStream, detect, make_provider
from .providers.anthropic import AnthropicProvider
from .providers.detect import Detection
from .providers.openai import OpenAIProvider
from .relay import (
    AnthropicRelay,
    OpenAIRelay,
    PrimedStream,
    anthropic_body_usage,
    openai_body_usage,
)
from .retry_after import header_value
from .routing.deployments import (
    COOLING_ERRORS,
    CoolingOverloadedError,
    CoolingRateLimitError,
    Deployment,
    Health,
    choose,
)
from .routing.models import ModelMap, ModelRoute
from .routing.rules import Decision, decide
from .store.brief import brief
from .tokens import (
    estimate_anthropic_request_tokens,
    estimate_openai_request_tokens,
)
from .translate.a2o import anthropic_to_openai_request, openai_to_anthropic_response
from .translate.completions import (
    ChatToCompletionStream,
    chat_response_to_completion,
    completion_request_to_chat,
)
from .translate.context import ResponseContext, Target
from .translate.errors import (
    anthropic_upstream_error,
    openai_stream_error_to_error,
)
from .translate.names import strip_synthetic_thinking
from .translate.o2a import anthropic_to_openai_response, openai_to_anthropic_request
from .translate.stream_a2o import AnthropicToOpenAIStream
from .translate.stream_o2a import OpenAIToAnthropicStream
from .translate.tool_ids import (
    OPENAI_PREFIX,
    ToolIds,
    map_openai_request,
    map_openai_response,
    map_openai_sse,
    tool_id_format_for,
)
from .upstream import classify
from .usage import Usage

log = logging.getLogger("dragoman.engine")

ANTHROPIC = "anthropic"
OPENAI = "openai"


@dataclass(slots=True)
class Ending:
    """How a stream really ended, written once by its relay when it stops: 200 when complete,
    499 when the client left, else the failure's status (with its error type)."""

    status: int = 200
    error_type: str | None = None
    done: bool = False


@dataclass
class Result:
    """What the engine answers: a complete body, or a stream of SSE bytes, plus headers."""

    status: int
    headers: dict[str, str]
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    #: streams only: filled in when the stream ends, breaks or its client leaves
    ending: Ending | None = None

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body is not None else None


@dataclass(slots=True)
class Prepared:
    """One attempt's upstream request."""

    mode: str  # pass_a | pass_o | a2o | o2a
    path: str
    body: bytes
    headers: Mapping[str, str]
    rctx: ResponseContext | None = None
    inject_usage: bool = False


@dataclass
class Call:
    """The state of one client request as it moves through the engine."""

    front: str
    body: dict[str, Any]
    headers: Mapping[str, str]
    request_id: str
    key: Any = None
    legacy: bool = False
    #: the client's raw query string (``beta=true``), relayed on Anthropic pass-through
    query: str = ""
    stream: bool = False
    requested_model: str = ""
    decision: Decision | None = None
    attempts: int = 0
    started: float = field(default_factory=time.perf_counter)
    ttft: float | None = None
    hold: Any = None
    route: ModelRoute | None = None
    deployment: Deployment | None = None
    estimate: int | None = None
    #: an upstream is working on this request (sent, not yet answered): a cancel is charged
    busy: bool = False
    #: the books were written (exactly one usage row per request)
    settled: bool = False
    ending: Ending = field(default_factory=Ending)

    def input_estimate(self) -> int:
        if self.estimate is None:
            self.estimate = (
                estimate_anthropic_request_tokens(self.body)
                if self.front == ANTHROPIC
                else estimate_openai_request_tokens(self.body)
            )
        return self.estimate


Sleep = Callable[[float], Awaitable[None]]


class Engine:
    """Routes, translates, retries and accounts; shared by the server and the library API."""

    def __init__(
        self,
        config: Config,
        *,
        accountant: Any = None,
        sleep: Sleep | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        api_keys: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        keys = api_keys or {}
        self.providers: dict[str, Provider] = {
            n: make_provider(n, pc, keys.get(n)) for n, pc in config.providers.items()
        }
        self.models = ModelMap(config, self.providers)
        self.accountant = accountant
        self.sleep: Sleep = sleep or asyncio.sleep
        self.clock = clock
        self.rng = rng or random.Random()
        self.health = Health(config.routing.cooldown, clock)
        self.retry = config.routing.retries
        self.provider_health: dict[str, tuple[bool, str]] = {}
        #: what each provider's server is (``flavor: auto``), and what it reported
        self.detections: dict[str, Detection] = {
            n: detect.initial(pc.kind, pc.base_url, pc.flavor) for n, pc in config.providers.items()
        }
        self._detecting: dict[str, asyncio.Task[Detection]] = {}
        #: ledger settlements still being written (see _settle)
        self._books: set[asyncio.Future[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        for t in self._detecting.values():
            t.cancel()  # a detection still waiting on a slow server
        if self._books:
            await asyncio.wait(list(self._books), timeout=10)
        for p in self.providers.values():
            await p.close()

    async def detect_flavors(self) -> dict[str, Detection]:
        """Ask every provider not yet asked what it is (start-up; bounded by short timeouts)."""
        names = [n for n, d in self.detections.items() if not d.settled and d.asked_at is None]
        await asyncio.gather(*(self._detect(self.providers[n]) for n in names))
        return self.detections

    def _detect(self, prov: Provider) -> asyncio.Task[Detection]:
        """The one detection in flight for ``prov`` (started when there is none)."""
        task = self._detecting.get(prov.name)
        if task is None or task.done():
            models = sorted(
                {
                    d.upstream_model
                    for r in self.models.routes.values()
                    for d in r.deployments
                    if d.provider is prov
                }
            )
            det = self.detections[prov.name]
            task = asyncio.ensure_future(detect.detect(prov, det, models, now=self.clock()))
            self._detecting[prov.name] = task
        return task

    async def _detected(self, prov: Provider) -> Detection:
        """The provider's detection; a server not asked yet, or that did not answer more than
        ``detect.RETRY_AFTER`` seconds ago, is asked now (once, whoever else is waiting)."""
        det = self.detections[prov.name]
        if det.settled:
            return det
        running = self._detecting.get(prov.name)
        idle = running is None or running.done()
        if idle and det.asked_at is not None and self.clock() - det.asked_at < detect.RETRY_AFTER:
            return det
        try:
            await asyncio.shield(self._detect(prov))
        except Exception:  # detection must never fail a request
            log.exception("flavor detection for %s failed", prov.name)
        return det

    async def check_providers(self) -> dict[str, tuple[bool, str]]:
        """Probe every provider once (start-up health check)."""
        names = [n for n, p in self.providers.items() if p.config.health_check]
        results = await asyncio.gather(*(self.providers[n].health() for n in names))
        self.provider_health = dict(zip(names, results, strict=True))
        return self.provider_health

    # -- front doors -------------------------------------------------------------------------

    async def messages(
        self,
        body: Any,
        headers: Mapping[str, str] | None = None,
        *,
        key: Any = None,
        request_id: str | None = None,
        query: str = "",
    ) -> Result:
        """An Anthropic Messages request (``POST /v1/messages``)."""
        call = Call(ANTHROPIC, body, headers or {}, request_id or _rid(), key, query=query)
        await self._validate(call, pa.validate_messages_request)
        return await self._handle(call)

    async def chat(
        self,
        body: Any,
        headers: Mapping[str, str] | None = None,
        *,
        key: Any = None,
        request_id: str | None = None,
    ) -> Result:
        """An OpenAI Chat Completions request (``POST /v1/chat/completions``)."""
        call = Call(OPENAI, body, headers or {}, request_id or _rid(), key)
        await self._validate(call, po.validate_chat_request)
        return await self._handle(call)

    async def completions(
        self,
        body: Any,
        headers: Mapping[str, str] | None = None,
        *,
        key: Any = None,
        request_id: str | None = None,
    ) -> Result:
        """A legacy text completion, served through the chat path."""
        call = Call(OPENAI, body, headers or {}, request_id or _rid(), key, legacy=True)
        await self._validate(call, po.validate_completion_request)
        call.body = completion_request_to_chat(body)
        return await self._handle(call)

    async def count_tokens(
        self,
        body: Any,
        headers: Mapping[str, str] | None = None,
        *,
        key: Any = None,
        query: str = "",
    ) -> dict[str, Any]:
        """``POST /v1/messages/count_tokens``: the upstream's count when it has one."""
        pa.validate_messages_request(body, count_tokens=True)
        check_request(ANTHROPIC, body, self.config.server.request_limits)
        headers = headers or {}
        call = Call(ANTHROPIC, body, headers, _rid(), key)
        decision = self._decide(call)
        if self.accountant is not None:
            self.accountant.check_model_allowed(key, decision.route.name)
        dep = choose(decision.route.deployments, decision.route.config.strategy, self.clock())
        dep = dep or decision.route.deployments[0]
        prov = dep.provider
        caps = capabilities((await self._detected(prov)).flavor)
        try:
            if isinstance(prov, AnthropicProvider):
                b = _for_anthropic_server(dict(body), caps)
                b["model"] = dep.upstream_model
                path = prov.count_tokens_path + (f"?{query}" if query else "")
                rep = await prov.request("POST", path, orjson.dumps(b), prov.headers_for(headers))
                if rep.status == 200:
                    return dict(orjson.loads(rep.body))
                log.warning(
                    "count_tokens upstream %s answered %s; estimating", prov.name, rep.status
                )
            elif isinstance(prov, OpenAIProvider) and (
                caps.tokenize if prov.config.tokenize is None else prov.config.tokenize
            ):
                target = self._target(call, decision.route, dep)
                o, _ = anthropic_to_openai_request({**body, "max_tokens": 1}, target)
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
        return {"input_tokens": call.input_estimate()}

    def list_models(self) -> list[dict[str, Any]]:
        out = []
        for name in self.models.names():
            route = self.models.get(name)
            out.append(
                {
                    "id": name,
                    "display_name": route.config.display_name or name,
                    "max_input_tokens": route.config.context_window,
                    "max_tokens": route.config.max_output_tokens,
                    "owned_by": route.deployments[0].provider.name,
                }
            )
        return out

    def deployment_states(self) -> dict[str, list[dict[str, object]]]:
        now = self.clock()
        return {
            name: [d.state(now) for d in route.deployments]
            for name, route in self.models.routes.items()
        }

    def explain(self, front: str, body: dict[str, Any]) -> Decision:
        """The routing decision for a request, without sending it (``dragoman route``)."""
        call = Call(front, body, {}, "explain")
        return self._decide(call)

    # -- the pipeline ------------------------------------------------------------------------

    def _decide(self, call: Call) -> Decision:
        return decide(
            self.models, self.config.routing.rules, call.front, call.body, call.input_estimate
        )

    async def _validate(self, call: Call, check: Callable[[Any], None]) -> None:
        """The caller's request checks; a refusal still writes its usage row."""
        try:
            check(call.body)
            check_request(call.front, call.body, self.config.server.request_limits)
        except DragomanError as err:
            await self._settle(call, None, err.status, err.message)
            raise

    async def _handle(self, call: Call) -> Result:
        call.stream = bool(call.body.get("stream"))
        call.requested_model = call.body["model"]
        try:
            call.decision = self._decide(call)
            route = call.decision.route
            if self.accountant is not None:
                self.accountant.check_model_allowed(call.key, route.name)
            # the ledger hold is taken per attempt, on the deployment that serves (_cover)
            result = await self._with_fallbacks(call, route)
        except DragomanError as err:
            await self._settle(call, None, err.status, err.message)
            _tag(err, call, call.route or (call.decision.route if call.decision else None))
            raise
        except Exception as exc:
            await self._settle(call, None, 500, f"internal error: {type(exc).__name__}")
            raise
        except BaseException:
            await self._settle(call, None, 499, "cancelled")
            raise
        return result

    def _usable(self, route: ModelRoute, images: bool) -> ModelRoute | None:
        """The model that serves a request meant for ``route``: itself, or its vision model
        when the request carries images and it has no vision; None when neither can."""
        if not images or route.vision:
            return route
        vm = route.config.vision_model
        vroute = self.models.get(vm) if vm else None
        return vroute if vroute is not None and vroute.vision else None

    def _another_route(
        self, route: ModelRoute, queue: list[ModelRoute], tried: set[str], call: Call
    ) -> bool:
        """Whether a model other than ``route`` could still take the request if it gave way:
        one of its fallbacks, or a model already waiting in the queue (that the key may use)."""
        images = call.decision is not None and call.decision.has_images
        for nxt in [self.models.get(n) for n in route.config.fallbacks] + queue:
            usable = self._usable(nxt, images)
            if (
                usable is not None
                and usable.name not in tried
                and usable is not route
                and allowed(self.accountant, call.key, usable.name)
            ):
                return True
        return False

    async def _with_fallbacks(self, call: Call, first: ModelRoute) -> Result:
        queue = [first]
        tried: set[str] = set()
        last: DragomanError | None = None
        images = call.decision is not None and call.decision.has_images
        while queue:
            wanted = queue.pop(0)
            route = self._usable(wanted, images)
            if route is None:
                # a fallback must not forward images to a text-only model
                log.info("fallback %s skipped: the request carries images", wanted.name)
                continue
            if route.name in tried:
                continue
            if not may_use(self.accountant, call.key, route.name, fallback=wanted is not first):
                continue  # a fallback the key may not use (audit #13)
            tried.add(route.name)
            # a cooling model gives way only to another route; the last route is always tried
            last_resort = not self._another_route(route, queue, tried, call)
            try:
                return await self._try_model(call, route, last_resort)
            except DragomanError as err:
                cooling = isinstance(err, COOLING_ERRORS)
                if err.upstream_status is None and not err.connection_error and not cooling:
                    raise  # our own refusal (validation, budget, vision): no fallback helps
                last = err
                names = route.config.fallbacks
                if _is_context_overflow(err) and route.config.context_window_fallbacks:
                    names = route.config.context_window_fallbacks
                elif _is_content_refusal(err) and route.config.content_policy_fallbacks:
                    names = route.config.content_policy_fallbacks
                nxt = [self.models.get(n) for n in names]
                if nxt:
                    log.info(
                        "model %s failed (%s %s); falling back to %s",
                        route.name,
                        err.status,
                        err.message[:120],
                        [r.name for r in nxt],
                    )
                queue = nxt + queue
        if last is None:  # every candidate was skipped (images and no vision route)
            raise InvalidRequestError(
                f"model {first.name!r} cannot take images and no fallback can", param="messages"
            )
        raise last

    async def _try_model(self, call: Call, route: ModelRoute, last_resort: bool = True) -> Result:
        """Attempts on one model's deployments: retries with backoff, each maybe elsewhere.

        A cooling deployment is skipped only while another route exists: another live
        deployment of this model, or (``last_resort`` False) a fallback model, to which this
        one gives way once all its deployments are cooling. The last route is always tried,
        cooling or not, so the caller gets the upstream's own answer (a 429 with its
        retry-after, say), never a made-up one: a cooldown must not make a request fare worse
        than calling the upstream directly.
        """
        retries = 0
        tried: set[int] = set()
        strategy = route.config.strategy
        while True:
            now = self.clock()
            dep = choose(route.deployments, strategy, now, tried, self.rng, last_resort=last_resort)
            if dep is None:
                raise self._all_cooling(route)  # a fallback takes it (see _with_fallbacks)
            call.attempts += 1
            try:
                return await self._attempt(call, route, dep)
            except DragomanError as err:
                err.model, err.deployment = route.name, dep.name
                if err.upstream_status is None and not err.connection_error:
                    raise
                # Health decides what counts: not the client's own 4xx (routing.deployments)
                self.health.failure(dep, err.upstream_status, err.message, err.retry_after)
                retryable = self._retryable(err)
                if retries >= self.retry.max_retries or not retryable:
                    raise
                tried.add(id(dep))
                now = self.clock()
                if not last_resort and all(d.cooling(now) for d in route.deployments):
                    raise  # every deployment is cooling down and a fallback can take it now
                elsewhere = any(
                    id(d) not in tried and not d.cooling(now) for d in route.deployments
                )
                # a retry-after speaks for the deployment that sent it, not for the others
                retry_after = None if elsewhere else err.retry_after
                if retry_after is not None and retry_after > self.retry.max_delay:
                    raise  # the upstream wants more than we may wait: the caller gets retry-after
                delay = self._backoff(retries, retry_after)
                retries += 1
                log.info(
                    "retry %d/%d of %s after %s on %s, in %.2fs",
                    retries,
                    self.retry.max_retries,
                    route.name,
                    err.upstream_status or "connection error",
                    dep.name,
                    delay,
                )
                await self.sleep(delay)

    def _retryable(self, err: DragomanError) -> bool:
        if err.connection_error:
            return True
        return err.upstream_status in self.retry.retry_on

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        """Delay before retry number ``retry`` (0-based): an upstream's retry-after when given
        (capped at ``max_delay``), else exponential backoff with full jitter:
        ``uniform(0, min(max_delay, base_delay * 2**retry))``."""
        cap = self.retry.max_delay
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, cap)
        return self.rng.uniform(0, min(cap, self.retry.base_delay * (2**retry)))

    def _all_cooling(self, route: ModelRoute) -> DragomanError:
        """Every deployment of ``route`` is cooling down and a fallback model can take the
        request: the error that makes ``_with_fallbacks`` move on (never the caller's answer
        while another route exists; the last route is tried instead)."""
        now = self.clock()
        wait = min((d.cooldown_until - now for d in route.deployments), default=0.0)
        wait = max(wait, 0.0)
        statuses = {d.last_error.split(":")[0] if d.last_error else "" for d in route.deployments}
        msg = f"every deployment of model {route.name!r} is cooling down; retry in {wait:.1f}s"
        err: DragomanError
        if statuses == {"429"}:
            err = CoolingRateLimitError(msg, retry_after=wait)
        else:
            err = CoolingOverloadedError(msg, retry_after=wait)
        err.headers["retry-after"] = header_value(wait)
        err.model = route.name
        return err

    # -- one attempt -------------------------------------------------------------------------

    def _target(self, call: Call, route: ModelRoute, dep: Deployment) -> Target:
        mc = route.config
        det = self.detections[dep.provider.name]
        caps = capabilities(det.flavor)
        model = dep.upstream_model
        field = self._reasoning_field(dep, det, caps)
        return Target(
            model=model,
            requested_model=call.requested_model,
            # the config's window, else the one the server reported (vLLM max_model_len...)
            context_window=mc.context_window or det.context_window(model),
            max_output_tokens=mc.max_output_tokens,
            flavor=caps.name,
            reasoning_field=field,
            reasoning_with_tool_calls=reasoning_with_tool_calls(caps, model, field),
            # an OpenAI client that names no max_tokens gets the model's whole output budget,
            # never a silent 4096 cut (failure catalogue #13)
            default_max_tokens=mc.default_max_tokens or mc.max_output_tokens or 4096,
            input_tokens_estimate=call.input_estimate(),
            reasoning=mc.reasoning if mc.reasoning is not None else caps.reasons(model),
            tool_id_format=self._tool_id_format(dep),
        )

    @staticmethod
    def _reasoning_field(dep: Deployment, det: Detection, caps: Flavor) -> str:
        model = dep.upstream_model
        return resolve_reasoning_field(
            caps,
            model,
            configured=dep.provider.config.reasoning_field,
            learned=det.reasoning_fields.get(model),
        )

    def _tool_id_format(self, dep: Deployment) -> str:
        """The tool-call id format of a deployment's upstream (its flavor's row, and the model
        for vLLM serving a Mistral model; docs/translation.md, "Tool-call ids")."""
        if dep.provider.kind != OPENAI:
            return "any"
        return tool_id_format_for(self.detections[dep.provider.name].flavor, dep.upstream_model)

    def _room(
        self, call: Call, route: ModelRoute, dep: Deployment, body: dict[str, Any]
    ) -> int | None:
        """Output tokens the model's window leaves after the prompt (the window configured,
        else reported by the server), for an OpenAI client's ``max_tokens: 128000`` (the Vercel
        AI SDK's default for models it does not know). None: nothing to lower: no window known,
        no ``max_tokens``, or the prompt alone overflows it (the upstream then says so, with
        its own numbers). The prompt is only estimated (~10 us) when the estimate is already
        there (the ledger made it) or the output asked for takes over half the window."""
        mt = body.get("max_tokens") or body.get("max_completion_tokens")
        if not isinstance(mt, int):
            return None
        window = route.config.context_window or self.detections[dep.provider.name].context_window(
            dep.upstream_model
        )
        if not window or (call.estimate is None and mt <= window // 2):
            return None
        room = window - call.input_estimate()
        return room if room >= 1 else None

    def _prepare(self, call: Call, route: ModelRoute, dep: Deployment) -> Prepared:
        try:
            return self._prepare_unchecked(call, route, dep)
        except DragomanError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
            # the validators accept liberally; a shape the translator cannot read is still the
            # caller's mistake, and must come back as a 400, never a 500
            log.info("request %s could not be translated: %r", call.request_id, e)
            raise InvalidRequestError(
                f"request could not be translated for {dep.provider.kind} upstream "
                f"{dep.provider.name!r}: malformed field ({type(e).__name__}: {e})"
            ) from None

    def _prepare_unchecked(self, call: Call, route: ModelRoute, dep: Deployment) -> Prepared:
        prov = dep.provider
        if call.front == ANTHROPIC:
            if isinstance(prov, AnthropicProvider):
                caps = capabilities(self.detections[prov.name].flavor)
                b = _for_anthropic_server(dict(call.body), caps)
                b["model"] = dep.upstream_model
                path = prov.messages_path + (f"?{call.query}" if call.query else "")
                return Prepared("pass_a", path, orjson.dumps(b), prov.headers_for(call.headers))
            assert isinstance(prov, OpenAIProvider)
            o, rctx = anthropic_to_openai_request(call.body, self._target(call, route, dep))
            return Prepared("a2o", prov.chat_path, orjson.dumps(o), prov.headers_for(), rctx)
        if isinstance(prov, OpenAIProvider):
            # pass-through: only the model and, for upstreams with their own tool-call id
            # format, the ids change (docs/translation.md, "Tool-call ids")
            ids = ToolIds(self._tool_id_format(dep), OPENAI_PREFIX)
            b = dict(map_openai_request(call.body, ids))
            b["model"] = dep.upstream_model
            det = self.detections[prov.name]
            caps = capabilities(det.flavor)
            known = _known_reasoning_field(dep, det, caps)
            b = adapt_chat_request(
                b,
                caps,
                reasoning_field=known,
                pad_reasoning=reasoning_with_tool_calls(caps, dep.upstream_model, known or ""),
                output_cap=self._room(call, route, dep, b),
            )
            inject = False
            # api.mistral.ai rejects stream_options (and reports usage on its last chunk anyway)
            if call.stream and caps.accepts_stream_options:
                so = b.get("stream_options") or {}
                if not so.get("include_usage"):
                    b["stream_options"] = {**so, "include_usage": True}
                    inject = True
            rctx = ResponseContext(
                call.requested_model,
                legacy_completion=call.legacy,
                tool_ids=ids if ids.active else None,
            )
            return Prepared(
                "pass_o", prov.chat_path, orjson.dumps(b), prov.headers_for(), rctx, inject
            )
        assert isinstance(prov, AnthropicProvider)
        a, rctx = openai_to_anthropic_request(call.body, self._target(call, route, dep))
        rctx.legacy_completion = call.legacy
        return Prepared("o2a", prov.messages_path, orjson.dumps(a), prov.headers_for(None), rctx)

    def _upstream_error(self, prov: Provider, rep: UpstreamReply) -> DragomanError:
        # typed, scrubbed and with its retry-after read, once (upstream/classify.py)
        return classify.from_answer(
            prov,
            rep.status,
            rep.body,
            rep.headers,
            retry_cap=self.config.routing.cooldown.max_retry_after,
        )

    async def _attempt(self, call: Call, route: ModelRoute, dep: Deployment) -> Result:
        prov = dep.provider
        await self._detected(prov)  # a no-op once the server is known
        prep = self._prepare(call, route, dep)
        # the books follow the deployment tried (and the one that serves): hold on it
        call.route, call.deployment = route, dep
        if self.accountant is not None:
            await self._cover(call, route, dep)
        t0 = time.perf_counter()
        dep.inflight += 1
        handed_off = False
        call.busy = True
        try:
            if call.stream:
                up = await _guard(prov.stream(prep.path, prep.body, prep.headers))
                if isinstance(up, UpstreamReply):
                    raise self._upstream_error(prov, up)
                chunks = up.chunks()
                try:
                    first = await _guard(anext(chunks))
                except StopAsyncIteration:
                    up.close()
                    err = OverloadedError(f"upstream {prov.name} closed the stream at once")
                    err.connection_error = True
                    raise err from None
                except BaseException:
                    up.close()
                    raise
                early = _stream_error(prov.kind, first)
                if early is not None:  # an error event before anything reached the client
                    up.close()
                    raise classify.retype(early, prov)
                ttfb = time.perf_counter() - t0
                # healthy again only once the stream completes (see _relay): a stream that
                # breaks half-way is a failure, even though its first byte came
                self.health.first_byte(dep, ttfb)
                call.route, call.deployment = route, dep
                call.ttft = time.perf_counter() - call.started
                gen = self._relay(call, prep, up, first, chunks, dep)
                if call.legacy:
                    gen = _legacy_stream(gen)
                # From here the relay owns the connection, the in-flight count and the ledger
                # settlement. Start it now: a generator that never started would not run its
                # cleanup when closed (say, the client left before the first byte).
                handed_off = True
                call.busy = False
                stream = await PrimedStream.start(gen)
                headers = self._headers(call, route, dep, stream=True)
                return Result(200, headers, stream=stream, ending=call.ending)
            rep = await _guard(prov.request("POST", prep.path, prep.body, prep.headers))
            if rep.status >= 300:
                raise self._upstream_error(prov, rep)
            self.health.success(dep, time.perf_counter() - t0)
            call.route, call.deployment = route, dep
            body, usage, refusal = self._finish(call, prep, rep.body)
            if refusal and route.config.content_policy_fallbacks:
                refused = UpstreamRefusal(f"model {route.name!r} refused the request")
                refused.upstream_status = 200
                raise refused
            call.ttft = time.perf_counter() - call.started
            await self._settle(call, usage, 200, None)
            return Result(200, self._headers(call, route, dep, stream=False), body=body)
        except DragomanError:
            call.busy = False  # the upstream answered (an error) or was never reached
            raise
        finally:
            if not handed_off:
                dep.inflight -= 1

    def _headers(
        self, call: Call, route: ModelRoute, dep: Deployment, stream: bool
    ) -> dict[str, str]:
        h = {
            "x-dragoman-model": route.name,
            "x-dragoman-deployment": dep.name,
            "x-dragoman-attempts": str(call.attempts),
            "request-id": call.request_id,
            "x-request-id": call.request_id,
        }
        return h

    def _finish(self, call: Call, prep: Prepared, raw: bytes) -> tuple[bytes, Usage, bool]:
        """Non-streamed upstream body -> client body, usage, and whether it was a refusal."""
        try:
            resp = orjson.loads(raw)
            if not isinstance(resp, dict):
                raise TypeError(f"a JSON {type(resp).__name__}, not an object")
            return self._finish_unchecked(call, prep, raw, resp)
        except DragomanError:
            raise
        except (orjson.JSONDecodeError, TypeError, ValueError, KeyError, AttributeError) as e:
            # the upstream said 200 but sent something that is not an answer: a bad gateway,
            # never a 500 of ours (and worth another deployment)
            log.warning("unreadable upstream answer for %s: %r", call.request_id, e)
            err = OverloadedError(f"upstream answered 200 with a body dragoman cannot read: {e}")
            err.status = 502
            err.type = "api_error"
            err.connection_error = True
            raise err from None

    def _finish_unchecked(
        self, call: Call, prep: Prepared, raw: bytes, resp: dict[str, Any]
    ) -> tuple[bytes, Usage, bool]:
        # usage as the upstream reported it, else estimated from the answer (never free)
        if prep.mode == "pass_a":
            return (
                raw,
                anthropic_body_usage(resp, call.input_estimate),
                resp.get("stop_reason") == "refusal",
            )
        if prep.mode in ("pass_o", "a2o"):
            self._learn_from_answer(call, resp)
        if prep.mode == "pass_o":
            usage = openai_body_usage(resp, call.input_estimate)
            refusal = _openai_refused(resp)
            if call.legacy:
                return orjson.dumps(chat_response_to_completion(resp)), usage, refusal
            ids = prep.rctx.tool_ids if prep.rctx is not None else None
            if ids is not None and map_openai_response(resp, ids):
                return orjson.dumps(resp), usage, refusal
            return raw, usage, refusal
        assert prep.rctx is not None
        if prep.mode == "a2o":
            out = openai_to_anthropic_response(resp, prep.rctx)
            usage = openai_body_usage(resp, call.input_estimate)
            return orjson.dumps(out), usage, _openai_refused(resp)
        out = anthropic_to_openai_response(resp, prep.rctx)
        usage = anthropic_body_usage(resp, call.input_estimate)
        refusal = resp.get("stop_reason") == "refusal"
        if call.legacy:
            out = chat_response_to_completion(out)
        return orjson.dumps(out), usage, refusal

    def _learn_from_answer(self, call: Call, resp: dict[str, Any]) -> None:
        """Note the field the upstream answered its reasoning in (sent back in it later)."""
        dep = call.deployment
        if dep is None:
            return
        choices = resp.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            self.detections[dep.provider.name].learn_from_message(
                dep.upstream_model, choices[0].get("message")
            )

    # -- streams -----------------------------------------------------------------------------

    async def _relay(
        self,
        call: Call,
        prep: Prepared,
        up: UpstreamStream,
        first: bytes,
        rest: AsyncIterator[bytes],
        dep: Deployment,
    ) -> AsyncGenerator[bytes, None]:
        """Upstream stream -> client stream, in the client's dialect, chunk by chunk.

        Whatever way it ends (complete, upstream failure, client gone), the ``finally`` settles
        the books once, at the usage the upstream reported or, where it reported none, at an
        estimate of what was relayed (docs/accounting.md, "Charge what was delivered").
        """
        status = 200
        error: str | None = None
        error_type: str | None = None
        relay_a = relay_o = None
        tr: OpenAIToAnthropicStream | None = None
        tr2: AnthropicToOpenAIStream | None = None
        try:
            if prep.mode == "pass_a":
                relay_a = AnthropicRelay(None, dep.provider.secrets)
                out = relay_a.feed(first)
                if out:
                    yield out
                async for chunk in rest:
                    out = relay_a.feed(chunk)
                    if out:
                        yield out
                tail = relay_a.finish()
                if tail:
                    status, error, error_type = 502, "upstream stream ended early", "api_error"
                    yield tail
                elif relay_a.error is not None:
                    status, error = relay_a.error_status, relay_a.error
                    error_type = relay_a.error_type
            elif prep.mode == "pass_o":
                relay_o = OpenAIRelay(None, prep.inject_usage, dep.provider.secrets)
                # note the field the server streams reasoning in: it comes first, so the first
                # few chunks tell (until it is known for this deployment)
                det, model = self.detections[dep.provider.name], dep.upstream_model
                looking = (
                    0 if model in det.reasoning_fields or det.learn_from_chunk(model, first) else 8
                )
                ids = prep.rctx.tool_ids if prep.rctx is not None else None
                out = relay_o.feed(first)
                if out:
                    yield map_openai_sse(out, ids) if ids is not None else out
                async for chunk in rest:
                    if looking:
                        looking = 0 if det.learn_from_chunk(model, chunk) else looking - 1
                    out = relay_o.feed(chunk)
                    if out:
                        yield map_openai_sse(out, ids) if ids is not None else out
                tail = relay_o.finish()
                if tail:
                    status, error, error_type = 502, "upstream stream ended early", "api_error"
                    yield tail
                elif relay_o.error is not None:
                    status, error = relay_o.error_status, relay_o.error
                    error_type = relay_o.error_type
            elif prep.mode == "a2o":
                assert prep.rctx is not None
                tr = OpenAIToAnthropicStream(prep.rctx)
                parser = SSEParser()
                yield tr.start()
                async for chunk in _prepend(first, rest):
                    buf = b""
                    for ev in parser.feed(chunk):
                        if ev.data == "[DONE]":
                            continue
                        buf += tr.feed(orjson.loads(ev.data))
                    if buf:
                        yield buf
                for ev in parser.flush():
                    if ev.data != "[DONE]":
                        yield tr.feed(orjson.loads(ev.data))
                yield tr.finish()
                if tr.reasoning_key:
                    self.detections[dep.provider.name].learn_reasoning(
                        dep.upstream_model, tr.reasoning_key
                    )
                if tr.failed:
                    status, error, error_type = 502, "upstream stream failed", "api_error"
            else:
                assert prep.rctx is not None
                tr2 = AnthropicToOpenAIStream(prep.rctx)
                parser = SSEParser()
                async for chunk in _prepend(first, rest):
                    buf = b""
                    for ev in parser.feed(chunk):
                        if ev.event is None and not ev.data:
                            continue
                        buf += tr2.feed(ev.event or "", orjson.loads(ev.data))
                    if buf:
                        yield buf
                yield tr2.finish()
                if tr2.failed:
                    status, error, error_type = 502, "upstream stream failed", "api_error"
        except Exception as exc:
            # an upstream failure mid-stream, or an event we cannot read: the client gets an
            # error in its dialect, never a stream that just stops
            err = (
                exc
                if isinstance(exc, DragomanError)
                else ServerError(f"upstream sent an event dragoman cannot read: {exc!r}")
            )
            status, error, error_type = err.status, err.message, err.type
            if prep.mode in ("pass_a", "a2o"):
                yield anthropic_frame("error", pa.error_event(err))
            else:
                yield openai_frame(po.error_body(err))
        except (asyncio.CancelledError, GeneratorExit):
            status, error = 499, "client disconnected"
            raise
        finally:
            up.close()
            dep.inflight -= 1
            if error is None:
                self.health.success(dep, None)
            elif status != 499:
                # a stream that broke after it started counts against the deployment's health
                # (like a connection error: towards allowed_fails, not an instant cooldown)
                self.health.failure(dep, None, f"stream broke: {error}", None)
            ending = call.ending
            ending.status, ending.done = status, True
            if error is not None and status != 499:
                ending.error_type = error_type or type_for_status(status)
            # what was delivered, whichever way the stream ended
            usage: Usage
            if relay_a is not None:
                usage = relay_a.settled_usage(call.input_estimate)
            elif relay_o is not None:
                usage = relay_o.settled_usage(call.input_estimate)
            elif tr is not None:
                usage = tr.usage
            elif tr2 is not None:
                usage = tr2.usage
            else:
                usage = Usage(call.input_estimate(), 0, estimated=True)
            await self._settle(call, usage, status, error)

    # -- accounting --------------------------------------------------------------------------

    def _request_info(
        self, call: Call, route: ModelRoute | None, dep: Deployment | None
    ) -> RequestInfo:
        """What the ledger needs to know about a request on ``dep`` (the deployment it is
        tried on); no route: a request refused before routing (its usage row only)."""
        body = call.body if isinstance(call.body, dict) else {}
        requested = call.requested_model or _model_name(body)
        return RequestInfo(
            request_id=call.request_id,
            key=call.key,
            requested_model=requested,
            model=route.name if route else requested,
            provider=dep.provider.name if dep else "",
            deployment=dep.name if dep else None,
            dialect=call.front,
            streamed=bool(body.get("stream")),
            input_tokens_estimate=call.input_estimate() if route else 0,
            max_tokens=_output_cap(body, route, call) if route else 0,
        )

    async def _cover(self, call: Call, route: ModelRoute, dep: Deployment) -> None:
        """Hold the worst case for this attempt's deployment before calling it. The first
        attempt takes the hold; a retry or fallback elsewhere moves it (re-reserving only when
        the new target's budgets or worst case are not covered already), so every budget the
        request is charged to was checked first, and none it is not charged to keeps it."""
        acct = self.accountant
        info = self._request_info(call, route, dep)
        call.hold = await (acct.hold(info) if call.hold is None else acct.retarget(call.hold, info))

    async def _settle(
        self, call: Call, usage: Usage | None, status: int, error: str | None
    ) -> None:
        """Write the books for this request, exactly once: confirm the hold at the cost of
        what was delivered (an upstream working on the request when it was cancelled is
        charged at least the input estimate), cancel it when nothing was, and without a hold
        (refused before any attempt) record the usage row alone."""
        acct = self.accountant
        if acct is None or call.settled:
            return
        call.settled = True
        if usage is None and call.busy:
            usage = Usage(call.input_estimate(), 0, estimated=True)
        route = call.route or (call.decision.route if call.decision else None)
        dep = call.deployment
        outcome = Outcome(
            status=status,
            usage=usage,
            model=route.name if route else (call.requested_model or _model_name(call.body)),
            provider=dep.provider.name if dep else "",
            deployment=dep.name if dep else None,
            latency_ms=(time.perf_counter() - call.started) * 1000,
            ttft_ms=call.ttft * 1000 if call.ttft is not None else None,
            attempts=call.attempts,
            error=error,
        )
        hold, call.hold = call.hold, None
        if hold is None:
            books = acct.record(self._request_info(call, route, dep), outcome)
        elif status < 300 or (usage is not None and usage.billable):
            books = acct.confirm(hold, outcome)
        else:
            books = acct.cancel(hold, outcome)
        if hold is None or not hold.persisted:
            await self._write_books(books, call.request_id)
            return
        # a database transaction: it must complete even if this request is cancelled meanwhile
        # (a client that leaves right after the last byte cancels its handler), or the hold
        # would stay pending with its reservation
        task = asyncio.ensure_future(self._write_books(books, call.request_id))
        self._books.add(task)
        task.add_done_callback(self._books.discard)
        await asyncio.shield(task)

    async def _write_books(self, books: Awaitable[None], request_id: str) -> None:
        try:
            await books
        except Exception as e:  # the books must never break a response
            # type and short message only: no SQL, no bound values (audit #30)
            log.error("ledger settle failed for %s: %s", request_id, brief(e))
            log.debug("ledger settle failure for %s", request_id, exc_info=True)


def _model_name(body: Any) -> str:
    m = body.get("model") if isinstance(body, dict) else None
    return m[:200] if isinstance(m, str) else ""


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _output_cap(body: dict[str, Any], route: ModelRoute, call: Call) -> int:
    """The most output tokens the upstream may produce for this request: the larger of
    ``max_tokens`` and ``max_completion_tokens`` (an upstream may honour either) times ``n``;
    without either, the model's output cap, else what is left of its context window."""
    caps = [v for v in (_int(body.get("max_tokens")), _int(body.get("max_completion_tokens"))) if v]
    if caps:
        most = max(caps)
    else:
        mc = route.config
        most = mc.max_output_tokens or mc.default_max_tokens or 0
        if not most and mc.context_window:
            most = mc.context_window - call.input_estimate()
        most = most if most > 0 else 4096
    n = _int(body.get("n")) or 1
    return max(most, 0) * max(n, 1)


# -- stream relays (pass-through paths) ---------------------------------------------------------


async def _legacy_stream(gen: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    """Chat chunks -> legacy text_completion chunks."""
    conv = ChatToCompletionStream()
    parser = SSEParser()
    try:
        async for chunk in gen:
            buf = b""
            for ev in parser.feed(chunk):
                if ev.data == "[DONE]":
                    buf += conv.done()
                    continue
                buf += conv.feed(orjson.loads(ev.data))
            if buf:
                yield buf
    finally:
        aclose = getattr(gen, "aclose", None)
        if aclose is not None:
            await aclose()


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for c in rest:
        yield c


async def _guard(aw: Awaitable[Any]) -> Any:
    """Await an upstream call; transport failures become retryable connection errors."""
    try:
        return await aw
    except DragomanError as e:
        if e.upstream_status is None:
            e.connection_error = True
        raise


async def _post_abs(prov: OpenAIProvider, url: str, body: dict[str, Any]) -> UpstreamReply:
    resp = await prov._open("POST", url, orjson.dumps(body), prov.headers_for(None))
    try:
        data = await resp.read()
    finally:
        resp.release()
    return UpstreamReply(resp.status, resp.headers, data)


def _stream_error(kind: str, first: bytes) -> DragomanError | None:
    """The typed error when an upstream's first stream chunk carries an error event."""
    if b"error" not in first:
        return None
    for ev in SSEParser().feed(first):
        if not ev.data or ev.data == "[DONE]":
            continue
        try:
            obj = orjson.loads(ev.data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict):
            continue
        err: DragomanError
        if kind == ANTHROPIC:
            if ev.event != "error" and obj.get("type") != "error":
                continue
            e = obj.get("error")
            if not isinstance(e, dict):
                e = {}
            status = STATUS_BY_TYPE.get(str(e.get("type")), 500)
            err = anthropic_upstream_error(status, ev.data.encode(), {})
        else:
            if "error" not in obj or "choices" in obj:
                continue
            err = openai_stream_error_to_error(obj)
        err.upstream_status = err.status
        return err
    return None


def _openai_refused(resp: dict[str, Any]) -> bool:
    ch = resp.get("choices") or []
    return bool(ch) and isinstance(ch[0], dict) and ch[0].get("finish_reason") == "content_filter"


def _is_context_overflow(err: DragomanError) -> bool:
    return isinstance(err, ContextOverflow)  # typed where classified (upstream/classify.py)


def _is_content_refusal(err: DragomanError) -> bool:
    return isinstance(err, UpstreamRefusal)


def _for_anthropic_server(body: dict[str, Any], caps: Flavor) -> dict[str, Any]:
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


def _known_reasoning_field(dep: Deployment, det: Detection, caps: Flavor) -> str | None:
    """The reasoning field a server is known to take back, or None: an OpenAI client's own
    fields are then left as they are. Known means configured, seen in the server's answers,
    required by its row (DeepSeek), guessed from the model's name, or none at all (strict
    servers such as api.openai.com, which reject unknown message fields)."""
    model = dep.upstream_model
    configured = dep.provider.config.reasoning_field
    if configured is not None:
        return configured
    learned = det.reasoning_fields.get(model)
    if learned:
        return learned
    if caps.reasoning_field == "" or caps.reasoning_with_tool_calls:
        return caps.reasoning_field
    return reasoning_field_hint(model)


def _tag(err: DragomanError, call: Call, route: ModelRoute | None) -> None:
    """Say on a failed request's error what a success says in its headers (the model and the
    deployment that gave the error, the attempts made), for the server's error response and
    the library's exception alike."""
    err.attempts = call.attempts
    if err.model is None and route is not None:
        err.model = route.name  # no deployment was tried (images, and no route can take them)
    err.headers.setdefault("x-dragoman-attempts", str(call.attempts))
    if err.model is not None:
        err.headers.setdefault("x-dragoman-model", err.model)
    if err.deployment is not None:
        err.headers.setdefault("x-dragoman-deployment", err.deployment)


def _rid() -> str:
    return request_id()
