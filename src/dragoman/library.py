"""The engine in-process, without a server: ``dragoman.Gateway``.

    gw = dragoman.Gateway.from_config("dragoman.yaml")          # or a dict
    coder = gw.get_model_instance("coder")
    reply = coder.invoke_llm({"messages": [{"role": "user", "content": "hi"}]})   # OpenAI shape
    async for chunk in coder.astream_llm({...}): ...
    msg = coder.invoke_messages({"max_tokens": 256, "messages": [...]})          # Anthropic shape

The same ``Engine`` the server uses does the work: same routing, retries, cooldowns,
fallbacks, translation and typed errors (``dragoman.errors``). Provider and model configuration
may also be given as the framework seed's JSON objects (``Gateway.from_objects``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from .config import Config, ConfigError, load_config, load_config_dict
from .engine import Engine, Result
from .errors import error_for
from .protocols.sse import SSEParser


class Gateway:
    """Owns an engine (and, for the sync API, a private event loop thread)."""

    def __init__(self, config: Config, *, engine: Engine | None = None, **engine_kw: Any) -> None:
        """``engine_kw`` go to ``Engine`` (e.g. ``sleep=``, ``clock=``, ``rng=`` in tests)."""
        self.config = config
        self.engine = engine or Engine(config, **engine_kw)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_config(cls, source: str | Path | Mapping[str, Any], **kw: Any) -> Gateway:
        """From a YAML path or a config dict (same schema as the server's file)."""
        cfg = load_config_dict(source) if isinstance(source, Mapping) else load_config(source)
        cfg.store.enabled = False
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
        engine_kw = {k: extra.pop(k) for k in ("sleep", "clock", "rng", "engine") if k in extra}
        data.update(extra)
        return cls(load_config_dict(data, source="<objects>"), **engine_kw)

    # -- models ------------------------------------------------------------------------------

    def get_model_instance(self, name: str) -> ModelInstance:
        """A handle on a model (aliases and patterns resolve as in the server)."""
        self.engine.models.resolve(name)  # ModelNotFoundError now rather than at first call
        return ModelInstance(self, name)

    # -- sync plumbing -----------------------------------------------------------------------

    def _run(self, coro: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def aclose(self) -> None:
        await self.engine.close()

    def close(self) -> None:
        if self._loop is not None:
            self._run(self.engine.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._loop = None

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ModelInstance:
    """Calls to one model, in either dialect, sync or async, streamed or not."""

    def __init__(self, gateway: Gateway, name: str) -> None:
        self.gateway = gateway
        self.name = name

    # OpenAI-style ----------------------------------------------------------------------------

    async def ainvoke_llm(self, request: Mapping[str, Any]) -> dict[str, Any]:
        body = {**request, "model": self.name, "stream": False}
        result = await self.gateway.engine.chat(body)
        return dict(result.json())

    def invoke_llm(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.gateway._run(self.ainvoke_llm(request)))

    async def astream_llm(self, request: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        body = {**request, "model": self.name, "stream": True}
        result = await self.gateway.engine.chat(body)
        async for obj in _events(result, "openai"):
            yield obj

    def stream_llm(self, request: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        return self._sync_iter(self.astream_llm(request))

    # Anthropic-style -------------------------------------------------------------------------

    async def ainvoke_messages(self, request: Mapping[str, Any]) -> dict[str, Any]:
        body = {"max_tokens": 4096, **request, "model": self.name, "stream": False}
        result = await self.gateway.engine.messages(body)
        return dict(result.json())

    def invoke_messages(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.gateway._run(self.ainvoke_messages(request)))

    async def astream_messages(self, request: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        body = {"max_tokens": 4096, **request, "model": self.name, "stream": True}
        result = await self.gateway.engine.messages(body)
        async for obj in _events(result, "anthropic"):
            yield obj

    def stream_messages(self, request: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        return self._sync_iter(self.astream_messages(request))

    def _sync_iter(self, agen: AsyncIterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        run = self.gateway._run
        try:
            while True:
                try:
                    yield run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            run(agen.aclose())  # type: ignore[attr-defined]


async def _events(result: Result, dialect: str) -> AsyncIterator[dict[str, Any]]:
    """Parsed stream events; an error event raises the typed error."""
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
                    e = err or {}
                    etype = e.get("type") or "api_error"
                    if dialect == "openai":
                        etype = {"server_error": "api_error", "timeout": "timeout_error"}.get(
                            etype, etype
                        )
                    raise error_for(etype, str(e.get("message") or "stream failed"))
                yield obj
    finally:
        await gen.aclose()  # type: ignore[attr-defined]
