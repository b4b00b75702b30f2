"""The gateway in-process, without a server: ``dragoman.Gateway``.

    gw = dragoman.Gateway.from_config("dragoman.yaml")          # or a dict
    coder = gw.get_model_instance("coder")
    reply = coder.invoke_llm({"messages": [{"role": "user", "content": "hi"}]})   # OpenAI shape
    reply.meta.model, reply.meta.deployment, reply.meta.attempts                  # who answered
    with coder.stream_llm({...}) as chunks:                                        # or async for
        for chunk in chunks: ...
    msg = coder.invoke_messages({"max_tokens": 256, "messages": [...]})          # Anthropic shape

The same gateway core the server uses does the work (built by ``bootstrap.py``): same routing,
retries, cooldowns, fallbacks, translation, typed errors (``dragoman.errors``) and books. What
the server says in its ``x-dragoman-*`` headers the library says in ``Meta``: on a complete
answer (``Reply.meta``, the answer itself is the dialect's JSON object, a ``dict``), on a stream
(``.meta``, once the first event arrived) and on every ``DragomanError`` (``.model``,
``.deployment``, ``.attempts``, ``.retry_after``). An error's ``.status`` is the canonical
(Anthropic) one whichever shape was called: an overloaded upstream is ``OverloadedError`` with
status 529, which the server's OpenAI front answers as 503 (OpenAI clients know no 529;
``protocols.openai.OPENAI_STATUS``).

Requests are taken as the server takes them: an Anthropic-shaped request without
``max_tokens`` is an ``InvalidRequestError``, as it is from the server and from Anthropic.

Books: when the store is on (``store.enabled``, the default, as for the server) the gateway opens
it at its first request and keeps usage rows, the ledger and budgets exactly as the server does
(there is no client key, so key and team budgets do not apply; global, model and provider
budgets do). ``close()`` / ``aclose()`` (or ``with``) write the rows still queued. A config with
budgets but the store off is refused: a budget that nothing enforces must not look enforced.
Use one gateway from either sync or async code, not both: the store and the upstream
connections belong to the event loop that first used them. Provider and model configuration
may also be given as the framework seed's JSON objects (``Gateway.from_objects``; store off).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .bootstrap import build_gateway, open_books
from .config import Config, ConfigError, load_config, load_config_dict
from .core.exchange import Reply as Result
from .core.gateway import Gateway as Core
from .errors import DragomanError, error_for
from .protocols.sse import SSEParser


@dataclass(frozen=True, slots=True)
class Meta:
    """Who answered: the server's ``x-dragoman-model``, ``x-dragoman-deployment``,
    ``x-dragoman-attempts`` and ``request-id`` headers."""

    model: str
    deployment: str
    attempts: int
    request_id: str

    @classmethod
    def of(cls, result: Result) -> Meta:
        h = result.headers
        return cls(
            h["x-dragoman-model"],
            h["x-dragoman-deployment"],
            int(h["x-dragoman-attempts"]),
            h["request-id"],
        )


class Reply(dict[str, Any]):
    """A complete answer: the dialect's JSON object unchanged (a ``dict``), plus ``meta``."""

    __slots__ = ("meta",)

    def __init__(self, body: Mapping[str, Any], meta: Meta) -> None:
        super().__init__(body)
        self.meta = meta


class Gateway:
    """Owns a gateway core (and, for the sync API, a private event loop thread)."""

    def __init__(self, config: Config, *, core: Core | None = None, **core_kw: Any) -> None:
        """``core_kw`` go to ``bootstrap.build_gateway`` (``sleep=``, ``clock=``, ``rng=`` in
        tests).

        A given ``core`` is used as it is (with its own accountant, or none); otherwise the
        store opens at the first request when ``config.store.enabled``.
        """
        if core is None and not config.store.enabled and config.accounting.budgets:
            raise ConfigError(
                f"{config.source}: accounting.budgets needs the store (store.enabled: true); "
                "without it no budget would be enforced"
            )
        self.config = config
        self.core = core or build_gateway(config, **core_kw)
        self.accountant: Any = self.core.accountant
        self._core_kw = core_kw
        self._books_pending = core is None and config.store.enabled
        self._opening: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_config(cls, source: str | Path | Mapping[str, Any], **kw: Any) -> Gateway:
        """From a YAML path or a config dict (same schema as the server's file)."""
        cfg = load_config_dict(source) if isinstance(source, Mapping) else load_config(source)
        return cls(cfg, **kw)

    @classmethod
    def from_objects(
        cls, providers: list[Mapping[str, Any]], models: list[Mapping[str, Any]], **extra: Any
    ) -> Gateway:
        """From the framework seed's JSON objects.

        providers: ``{"name": "anthropic", "provider_type": "anthropic",
        "provider_config": {"api_key": "...", "api_base": "https://api.anthropic.com/v1"}}``
        (an Anthropic ``api_base`` may or may not end in ``/v1``)
        models: ``{"name": "claude", "provider_name": "anthropic", "model": "claude-sonnet-4-5",
        "max_tokens": 8192, "context_window": 200000}`` (``provider`` works too; ``model``
        defaults to ``name``). ``extra`` are further top-level config sections (``routing``...).
        """
        data: dict[str, Any] = {"providers": {}, "models": {}, "store": {"enabled": False}}
        for p in providers:
            pc = p.get("provider_config") or {}
            kind = p.get("provider_type") or p.get("kind") or "openai"
            default_base = (
                "https://api.anthropic.com" if kind == "anthropic" else "https://api.openai.com/v1"
            )
            base = str(pc.get("api_base") or pc.get("base_url") or default_base).rstrip("/")
            if kind == "anthropic" and base.endswith("/v1"):
                base = base[: -len("/v1")]  # our Anthropic paths start with /v1
            data["providers"][p["name"]] = {
                "kind": "anthropic" if kind == "anthropic" else "openai",
                "base_url": base,
                "api_key": pc.get("api_key"),
                **({"flavor": pc["flavor"]} if "flavor" in pc else {}),
            }
        for m in models:
            prov = m.get("provider") or m.get("provider_name")
            if not prov:
                raise ConfigError(f"model {m.get('name')!r}: needs 'provider_name' (or 'provider')")
            entry: dict[str, Any] = {"provider": prov, "model": m.get("model")}
            if m.get("max_tokens") or m.get("max_output_tokens"):
                entry["max_output_tokens"] = m.get("max_output_tokens") or m.get("max_tokens")
            if m.get("context_window"):
                entry["context_window"] = m["context_window"]
            data["models"][m["name"]] = entry
        core_kw = {k: extra.pop(k) for k in ("sleep", "clock", "rng", "core") if k in extra}
        data.update(extra)
        return cls(load_config_dict(data, source="<objects>"), **core_kw)

    # -- models ------------------------------------------------------------------------------

    def get_model_instance(self, name: str) -> ModelInstance:
        """A handle on a model (aliases and patterns resolve as in the server)."""
        self.core.models.resolve(name)  # ModelNotFoundError now rather than at first call
        return ModelInstance(self, name)

    def list_models(self) -> list[dict[str, Any]]:
        """The configured models, as ``GET /v1/models`` lists them (id, limits, owner)."""
        return self.core.list_models()

    # -- books -------------------------------------------------------------------------------

    async def _ready(self) -> Core:
        """The core, once the store (when on) is open: at the first request, in its loop."""
        if self._books_pending:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._books_pending:
                    await self._open_books()
                    self._books_pending = False
        return self.core

    async def _open_books(self) -> None:
        accountant, api_keys = await open_books(self.config)
        if api_keys:  # provider keys kept in the store: the providers are built with them
            old = self.core
            self.core = build_gateway(
                self.config, accountant=accountant, api_keys=api_keys, **self._core_kw
            )
            await old.close()
        else:
            self.core.accountant = accountant
        self.accountant = accountant

    # -- sync plumbing -----------------------------------------------------------------------

    def _run(self, coro: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def aclose(self) -> None:
        """Close the upstream connections and the store (queued usage rows are written)."""
        await self.core.close()
        if self.accountant is not None:
            await self.accountant.close()

    def close(self) -> None:
        if self._loop is not None:
            self._run(self.aclose())
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._loop = None

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class ModelInstance:
    """Calls to one model, in either dialect, sync or async, streamed or not."""

    def __init__(self, gateway: Gateway, name: str) -> None:
        self.gateway = gateway
        self.name = name

    async def _call(self, anthropic: bool, request: Mapping[str, Any], stream: bool) -> Result:
        core = await self.gateway._ready()
        # the body the server would get from a client: ``stream`` only when streaming
        body = {k: v for k, v in request.items() if k != "stream"}
        body["model"] = self.name
        if stream:
            body["stream"] = True
        if anthropic:
            return await core.messages(body, trusted=True)
        return await core.chat(body, trusted=True)

    async def _reply(self, anthropic: bool, request: Mapping[str, Any]) -> Reply:
        result = await self._call(anthropic, request, False)
        return Reply(result.json(), Meta.of(result))

    # OpenAI-style ----------------------------------------------------------------------------

    async def ainvoke_llm(self, request: Mapping[str, Any]) -> Reply:
        return await self._reply(False, request)

    def invoke_llm(self, request: Mapping[str, Any]) -> Reply:
        reply: Reply = self.gateway._run(self.ainvoke_llm(request))
        return reply

    def astream_llm(self, request: Mapping[str, Any]) -> AsyncStream:
        return AsyncStream(lambda: self._call(False, request, True), "openai")

    def stream_llm(self, request: Mapping[str, Any]) -> Stream:
        return Stream(self.gateway, self.astream_llm(request))

    # Anthropic-style -------------------------------------------------------------------------

    async def ainvoke_messages(self, request: Mapping[str, Any]) -> Reply:
        return await self._reply(True, request)

    def invoke_messages(self, request: Mapping[str, Any]) -> Reply:
        reply: Reply = self.gateway._run(self.ainvoke_messages(request))
        return reply

    def astream_messages(self, request: Mapping[str, Any]) -> AsyncStream:
        return AsyncStream(lambda: self._call(True, request, True), "anthropic")

    def stream_messages(self, request: Mapping[str, Any]) -> Stream:
        return Stream(self.gateway, self.astream_messages(request))

    async def acount_tokens(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/messages/count_tokens`` (Anthropic shape): the upstream's count when it
        has one, else the estimate."""
        core = await self.gateway._ready()
        reply = await core.count_tokens({**request, "model": self.name}, trusted=True)
        got: dict[str, Any] = reply.json()
        return got

    def count_tokens(self, request: Mapping[str, Any]) -> dict[str, Any]:
        got: dict[str, Any] = self.gateway._run(self.acount_tokens(request))
        return got


class AsyncStream:
    """A streamed answer's events (``async for``); ``meta`` is set once the first one arrived.

    The request is sent at the first ``__anext__``. Leaving early (``break``, an exception)
    should be followed by ``aclose()`` (or use ``async with``): it closes the upstream
    connection and settles the request's books at once rather than when garbage is collected.
    """

    def __init__(self, start: Callable[[], Awaitable[Result]], dialect: str) -> None:
        self.meta: Meta | None = None
        self._events = self._run(start, dialect)

    async def _run(
        self, start: Callable[[], Awaitable[Result]], dialect: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        result = await start()
        self.meta = Meta.of(result)
        # closed explicitly: leaving ``async for`` does not close the generator it iterates, and
        # that generator owns the upstream connection, the in-flight count and the books
        async with contextlib.aclosing(_events(result, dialect, self.meta)) as events:
            async for obj in events:
                yield obj

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await anext(self._events)

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Stream:
    """A streamed answer's events (``for``); ``meta`` is set once the first one arrived.

    Leaving the loop early closes the stream (the upstream connection, the in-flight count and
    the books) as soon as the ``Stream`` is dropped; ``close()`` or ``with`` do it at once.
    """

    def __init__(self, gateway: Gateway, events: AsyncStream) -> None:
        self._async = events
        self._it = _sync_iter(gateway, events)

    @property
    def meta(self) -> Meta | None:
        return self._async.meta

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._it)

    def close(self) -> None:
        self._it.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sync_iter(gateway: Gateway, events: AsyncStream) -> Generator[dict[str, Any], None, None]:
    run = gateway._run
    try:
        while True:
            try:
                yield run(anext(events))
            except StopAsyncIteration:
                return
    finally:
        run(events.aclose())


async def _events(result: Result, dialect: str, meta: Meta) -> AsyncGenerator[dict[str, Any], None]:
    """Parsed stream events; an error event raises the typed error (tagged with ``meta``)."""
    assert result.stream is not None
    parser = SSEParser()
    gen = result.stream
    try:
        async for chunk in gen:
            for ev in parser.feed(chunk):
                if ev.data == "[DONE]":
                    return
                obj = orjson.loads(ev.data)
                err = obj.get("error") if isinstance(obj, dict) else None
                if (dialect == "anthropic" and ev.event == "error") or (
                    dialect == "openai" and err is not None and "choices" not in obj
                ):
                    raise _stream_error(err or {}, dialect, meta)
                yield obj
    finally:
        await gen.aclose()  # type: ignore[attr-defined]


def _stream_error(e: Mapping[str, Any], dialect: str, meta: Meta) -> DragomanError:
    etype = e.get("type") or "api_error"
    if dialect == "openai":
        etype = {"server_error": "api_error", "timeout": "timeout_error"}.get(etype, etype)
    err = error_for(etype, str(e.get("message") or "stream failed"))
    err.model, err.deployment, err.attempts = meta.model, meta.deployment, meta.attempts
    return err
