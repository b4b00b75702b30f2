"""Routing and resilience tests: fakes, an injected clock, and two drivers.

Every behaviour is exercised twice, through the same ``Driver`` interface:

* ``ServerDriver``: a real dragoman server (aiohttp, own thread) whose ``Engine`` is built with
  the test's fake clock and recording sleep (``create_app(config, engine=Engine(...))``), driven
  over raw HTTP;
* ``LibraryDriver``: ``dragoman.Gateway`` with the same engine arguments, driven through
  ``get_model_instance(...).invoke_messages / invoke_llm / stream_*``.

Nothing sleeps for real backoff times: ``FakeTime.sleep`` records the delay and moves the fake
clock forward, so cooldowns expire exactly when the test says so.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import FakeAnthropic, FakeOpenAI
from tests.fakes.anthropic_upstream import DEFAULT_MODELS
from tests.support import http
from tests.support.servers import ServerThread
from tests.support.sockets import FullBacklogPort, RefusedPort, SilentPort

import dragoman
from dragoman.config import load_config_dict
from dragoman.engine import Engine
from dragoman.errors import DragomanError
from dragoman.protocols import anthropic as pa
from dragoman.protocols import openai as po
from dragoman.server.app import create_app

A_HEADERS = {"anthropic-version": "2023-06-01"}
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
    "awAAAABJRU5ErkJggg=="
)


class FakeTime:
    """An injected clock and a sleep that records instead of waiting (and moves the clock)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


class JitterRandom(random.Random):
    """A seeded Random that records every ``uniform(a, b)`` (the jitter bounds)."""

    def __init__(self, seed: int = 7) -> None:
        super().__init__(seed)
        self.bounds: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.bounds.append((a, b))
        return super().uniform(a, b)


@dataclass
class Fakes:
    anth: FakeAnthropic
    anth2: FakeAnthropic
    vllm: FakeOpenAI
    #: ports the module owns: refused, silent (accepts, never answers), unreachable (connects hang)
    refused: RefusedPort
    silent: SilentPort
    unreachable: FullBacklogPort

    @property
    def all(self) -> tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI]:
        return (self.anth, self.anth2, self.vllm)

    def reset(self) -> None:
        for f in self.all:
            f.reset()

    def stop(self) -> None:
        for f in self.all:
            f.stop()
        for p in (self.refused, self.silent, self.unreachable):
            p.close()


def start_fakes() -> Fakes:
    # strict like the services: x-api-key only, and only the model ids the tests serve
    models = [
        *DEFAULT_MODELS,
        *(
            {"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z"}
            for m in ("claude-big", "claude-primary", "claude-pics")
        ),
    ]
    served = ["qwen3-coder", "safe-model", "text-model", "blind-model"]
    return Fakes(
        FakeAnthropic(accept_bearer=False, strict_models=True, models=models).start(),
        FakeAnthropic(accept_bearer=False, strict_models=True, models=models).start(),
        FakeOpenAI("vllm", models=served).start(),
        RefusedPort(),
        SilentPort(backlog=256),
        FullBacklogPort(),
    )


#: a client key, and the admin key that reads /health's deployment states (docs/security.md)
CLIENT_KEY = "dg-routing-client"
ADMIN_KEY = "dg-routing-admin"


def base_config(f: Fakes) -> dict[str, Any]:
    """Models used by the tests (see each test for which behaviour uses which model)."""

    def anth(fake: FakeAnthropic, **kw: Any) -> dict[str, Any]:
        return {"kind": "anthropic", "base_url": fake.url, "api_key": fake.api_key, **kw}

    # distinct values, so a test can tell which knob fired: a gap longer than first_byte but
    # shorter than idle must pass once the stream has started
    tight = {"connect": 1.0, "first_byte": 0.5, "idle": 1.5, "total": 10.0}
    brief = {**tight, "total": 1.5}
    quick = {"connect": 0.5, "first_byte": 0.5, "idle": 0.5, "total": 10.0}
    return {
        "auth": {"keys": [CLIENT_KEY], "admin_key": ADMIN_KEY},
        "providers": {
            "anth": anth(f.anth),
            "anth2": anth(f.anth2),
            "vllm": {
                "kind": "openai",
                "base_url": f.vllm.base_url,
                "api_key": f.vllm.api_key,
                "flavor": "vllm",
            },
            "tight": anth(f.anth, timeouts=tight),
            "tight_o": {
                "kind": "openai",
                "base_url": f.vllm.base_url,
                "api_key": f.vllm.api_key,
                "timeouts": tight,
            },
            "brief": anth(f.anth, timeouts=brief),
            "dead": {"kind": "anthropic", "base_url": f.refused.url, "api_key": "x"},
            "silent": {
                "kind": "anthropic",
                "base_url": f.silent.url,
                "api_key": "x",
                "timeouts": quick,
            },
            "unreachable": {
                "kind": "openai",
                "base_url": f.unreachable.url + "/v1",
                "api_key": "x",
                "timeouts": quick,
            },
        },
        "models": {
            "claude": {"provider": "anth", "model": "claude-sonnet-4-5"},
            "coder": {"provider": "vllm", "model": "qwen3-coder", "context_window": 32768},
            "big": {"provider": "anth2", "model": "claude-big"},
            "safe": {"provider": "vllm", "model": "safe-model"},
            "duo": {
                "deployments": [
                    {
                        "provider": "anth",
                        "model": "claude-sonnet-4-5",
                        "weight": 3,
                        "name": "duo-a",
                    },
                    {
                        "provider": "anth2",
                        "model": "claude-sonnet-4-5",
                        "weight": 1,
                        "name": "duo-b",
                    },
                ]
            },
            "mixed": {
                "deployments": [
                    {"provider": "anth", "model": "claude-sonnet-4-5", "name": "mixed-a"},
                    {"provider": "vllm", "model": "qwen3-coder", "name": "mixed-o", "rpm": 60},
                ]
            },
            "halfdead": {
                "deployments": [
                    {
                        "provider": "dead",
                        "model": "claude-sonnet-4-5",
                        "name": "hd-dead",
                        "weight": 1000,
                    },
                    {
                        "provider": "anth",
                        "model": "claude-sonnet-4-5",
                        "name": "hd-live",
                        "weight": 1,
                    },
                ]
            },
            "lazy": {
                "strategy": "least_inflight",
                "deployments": [
                    {"provider": "anth", "model": "claude-sonnet-4-5", "name": "lazy-a"},
                    {"provider": "anth2", "model": "claude-sonnet-4-5", "name": "lazy-b"},
                ],
            },
            "quick": {
                "strategy": "lowest_latency",
                "deployments": [
                    {"provider": "anth", "model": "claude-sonnet-4-5", "name": "quick-slow"},
                    {"provider": "anth2", "model": "claude-sonnet-4-5", "name": "quick-fast"},
                ],
            },
            "primary": {
                "provider": "anth",
                "model": "claude-primary",
                "fallbacks": ["coder"],
                "context_window_fallbacks": ["big"],
                "content_policy_fallbacks": ["safe"],
            },
            "pics": {"provider": "anth", "model": "claude-pics", "fallbacks": ["blind", "coder"]},
            "textonly": {
                "provider": "vllm",
                "model": "text-model",
                "vision": False,
                "vision_model": "claude",
            },
            "blind": {"provider": "vllm", "model": "blind-model", "vision": False},
            "timed": {"provider": "tight", "model": "claude-sonnet-4-5"},
            "timed-o": {"provider": "tight_o", "model": "qwen3-coder"},
            "trickle": {"provider": "brief", "model": "claude-sonnet-4-5"},
            "hush": {"provider": "silent", "model": "claude-sonnet-4-5"},
            "faraway": {"provider": "unreachable", "model": "qwen3-coder"},
        },
        "aliases": {"sonnet": "claude", "*haiku*": "claude"},
        # retries and cooldowns are the defaults (asserted by the tests, never pinned here)
        "routing": {
            "rules": [
                {"name": "background", "match_model": "*haiku*", "model": "coder"},
                {"name": "long-context", "min_input_tokens": 20000, "model": "big"},
                {"name": "thinking", "thinking": True, "model": "claude"},
            ],
        },
        "store": {"enabled": False},
    }


def make_config(f: Fakes, routing: dict[str, Any] | None = None) -> Any:
    data = base_config(f)
    for k, v in (routing or {}).items():
        data["routing"][k] = {**data["routing"].get(k, {}), **v} if isinstance(v, dict) else v
    return load_config_dict(data)


# -- what a driver answers ----------------------------------------------------------------------


@dataclass
class Resp:
    """One answer, normalised: status and JSON body (success or error) as the caller's dialect
    has them on the wire, headers (server only), stream events as (event, data) pairs, the
    typed exception (library only), the error type seen in a stream, and who answered: the
    model, deployment, attempts and retry-after (server: its headers; library: ``Reply.meta``,
    ``Stream.meta`` and the exception's attributes)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str | None, Any]] | None = None
    exc: DragomanError | None = None
    stream_error: str | None = None
    model: str | None = None
    deployment: str | None = None
    attempts: int | None = None
    retry_after: float | None = None

    @property
    def error_type(self) -> str | None:
        """The error type in the caller's dialect (an OpenAI caller sees OpenAI's types)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("type")
        return None

    @property
    def error_message(self) -> str:
        return str(((self.body or {}).get("error") or {}).get("message"))

    def text(self) -> str:
        """The generated text of a complete answer or stream, in either dialect."""
        if self.events is not None:
            out = ""
            for _, d in self.events:
                if not isinstance(d, dict):
                    continue
                delta = d.get("delta") or {}
                out += delta.get("text") or ""
                for ch in d.get("choices") or []:
                    out += (ch.get("delta") or {}).get("content") or ""
            return out
        b = self.body
        if "choices" in b:
            return str(b["choices"][0]["message"]["content"])
        return "".join(c.get("text", "") for c in b["content"] if c["type"] == "text")


class Driver:
    kind = ""
    time: FakeTime
    rng: random.Random
    engine: Engine

    def messages(self, body: dict[str, Any]) -> Resp:
        raise NotImplementedError

    def chat(self, body: dict[str, Any]) -> Resp:
        raise NotImplementedError

    def states(self) -> dict[str, dict[str, Any]]:
        """Deployment states by deployment name (server: from GET /health)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class ServerDriver(Driver):
    kind = "server"

    def __init__(self, config: Any, time: FakeTime, rng: random.Random) -> None:
        self.time, self.rng = time, rng
        holder: dict[str, Engine] = {}

        async def make_app() -> Any:
            holder["engine"] = Engine(config, sleep=time.sleep, clock=time.clock, rng=rng)
            return create_app(config, engine=holder["engine"])

        # as `dragoman serve` runs it: a handler is cancelled when its client goes away
        self.server = ServerThread(
            make_app, shutdown_timeout=0.3, handler_cancellation=True
        ).start()
        self.engine = holder["engine"]
        self.url = self.server.url

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Resp:
        r = http.post(self.url + path, body, {"x-api-key": CLIENT_KEY, **headers}, timeout=20)
        h = r.headers
        who: dict[str, Any] = {
            "model": h.get("x-dragoman-model"),
            "deployment": h.get("x-dragoman-deployment"),
            "attempts": int(h["x-dragoman-attempts"]) if "x-dragoman-attempts" in h else None,
            "retry_after": float(h["retry-after"]) if "retry-after" in h else None,
        }
        if not r.content_type.startswith("text/event-stream"):
            return Resp(r.status, r.json(), r.headers, **who)
        events: list[tuple[str | None, Any]] = []
        err: str | None = None
        for ev in r.events():
            if ev.is_done:
                continue
            data = ev.json()
            events.append((ev.event, data))
            if ev.event == "error" or (
                isinstance(data, dict) and "error" in data and "choices" not in data
            ):
                err = data["error"]["type"]
        return Resp(r.status, None, r.headers, events, None, err, **who)

    def messages(self, body: dict[str, Any]) -> Resp:
        return self._post("/v1/messages", body, A_HEADERS)

    def chat(self, body: dict[str, Any]) -> Resp:
        return self._post("/v1/chat/completions", body, {})

    def states(self) -> dict[str, dict[str, Any]]:
        r = http.get(self.url + "/health", {"x-api-key": ADMIN_KEY})
        assert r.status == 200
        return {d["name"]: d for deps in r.json()["deployments"].values() for d in deps}

    def close(self) -> None:
        self.server.stop()


class LibraryDriver(Driver):
    kind = "library"

    def __init__(self, config: Any, time: FakeTime, rng: random.Random) -> None:
        self.time, self.rng = time, rng
        self.gw = dragoman.Gateway(config, sleep=time.sleep, clock=time.clock, rng=rng)
        self.engine = self.gw.engine
        self.gw._run(asyncio.sleep(0))  # start the loop thread before any concurrent use

    @staticmethod
    def _failed(e: DragomanError, anthropic: bool) -> Resp:
        """A library exception as the server would have answered it: the documented mapping
        (``errors.py``, ``protocols/openai.py``) from the canonical error to each dialect's
        status and body (an OpenAI caller gets 503 for the canonical 529)."""
        if anthropic:
            status, body = e.status, pa.error_body(e, None)
        else:
            status, body = po.status_for(e), po.error_body(e)
        return Resp(
            status,
            body,
            dict(e.headers),  # retry-after and the x-dragoman-* facts, as the server sends them
            exc=e,
            model=e.model,
            deployment=e.deployment,
            attempts=e.attempts,
            retry_after=e.retry_after,
        )

    def _call(self, body: dict[str, Any], anthropic: bool) -> Resp:
        body = dict(body)
        inst = self.gw.get_model_instance(body.pop("model"))
        stream = body.pop("stream", False)
        try:
            if not stream:
                got = inst.invoke_messages(body) if anthropic else inst.invoke_llm(body)
                m = got.meta
                return Resp(200, got, model=m.model, deployment=m.deployment, attempts=m.attempts)
        except DragomanError as e:
            return self._failed(e, anthropic)
        events: list[tuple[str | None, Any]] = []
        it = inst.stream_messages(body) if anthropic else inst.stream_llm(body)
        try:
            for obj in it:
                events.append((obj.get("type") if anthropic else None, obj))
        except DragomanError as e:
            if not events:  # failed before the stream started: the whole call failed
                return self._failed(e, anthropic)
            return Resp(200, None, {}, events, e, e.type, e.model, e.deployment, e.attempts)
        m2 = it.meta
        assert m2 is not None
        return Resp(
            200, None, {}, events, model=m2.model, deployment=m2.deployment, attempts=m2.attempts
        )

    def messages(self, body: dict[str, Any]) -> Resp:
        return self._call(body, True)

    def chat(self, body: dict[str, Any]) -> Resp:
        return self._call(body, False)

    def states(self) -> dict[str, dict[str, Any]]:
        return {d["name"]: d for deps in self.engine.deployment_states().values() for d in deps}  # type: ignore[misc]

    def close(self) -> None:
        self.gw.close()


DRIVERS = {"server": ServerDriver, "library": LibraryDriver}


def msg(model: str, text: str = "hi", **kw: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}], **kw}


def chat(model: str, text: str = "hi", **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **kw}
