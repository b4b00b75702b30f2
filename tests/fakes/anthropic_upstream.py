"""A fake api.anthropic.com: the Messages API as seen on the wire.

What it checks (all 400 ``invalid_request_error`` in the real API's wording, unless noted):

* auth: ``x-api-key`` must equal ``api_key`` (401 ``authentication_error``); ``Authorization:
  Bearer`` only when ``accept_bearer``; ``anthropic-version`` header required;
* body: ``model``, ``max_tokens``, ``messages`` required; unknown top-level keys rejected
  (``<key>: Extra inputs are not permitted``); ``context_management`` only with the
  ``context-management-2025-06-27`` beta; ``role: "system"`` messages only with the
  ``mid-conversation-system-2026-04-07`` beta; unknown keys on messages, blocks, tools;
* tool pairing: every ``tool_use`` answered by a leading ``tool_result`` in the next user turn;
  no ``tool_result`` without a matching ``tool_use``; empty text blocks;
* thinking: every ``thinking`` block echoed in history must carry a signature this fake issued
  (or was told to trust) — so a gateway forwarding synthetic signatures is caught;
* at most 4 ``cache_control`` breakpoints; thinking budget rules; temperature range;
* thinking in use: with thinking enabled or adaptive, ``temperature`` other than 1, ``top_k``,
  ``top_p`` below 0.95 are rejected; a forced ``tool_choice`` (``any``/``tool``) is rejected with
  manual thinking (``enabled``); during a tool loop the assistant turn must start with a
  (signed) thinking block; an assistant message with thinking must start with it; the final
  assistant message cannot end with thinking, nor contain thinking when thinking is off;
* limits: ``max_tokens`` above the model's output cap, a prompt above its context window
  (200k; 1M for the models and beta that allow it).

Sources of each rule: tests/fakes/README.md.

Replies are scripted with :meth:`FakeAnthropic.enqueue` (``Reply``, ``ErrorReply``,
``RawStream`` or a callable); with nothing queued the fake answers "Hello from fake
Anthropic" with usage computed by :mod:`tests.fakes.tokens`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from . import tokens
from .common import (
    RECORDED,
    REQUEST_ID,
    CutMode,
    FakeUpstream,
    RawStream,
    RecordedRequest,
    StreamPlan,
    rand_b62,
    record,
    replay_raw,
    split_text,
    write_stream,
)
from .sse import anthropic_frame

DEFAULT_API_KEY = "sk-ant-test-key"
DEFAULT_TEXT = "Hello from fake Anthropic"
ANTHROPIC_VERSION = "2023-06-01"

BETA_MID_CONV_SYSTEM = "mid-conversation-system-2026-04-07"
BETA_CONTEXT_MANAGEMENT = "context-management-2025-06-27"
BETA_CONTEXT_1M = "context-1m-2025-08-07"

DOCS_THINKING = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
DOCS_THINKING_CONSIDERATIONS = (
    DOCS_THINKING + "#important-considerations-when-using-extended-thinking"
)
THINKING_TYPES = ("thinking", "redacted_thinking")


def _names(words: str) -> frozenset[str]:
    """A set of names written as one space-separated string (keeps long lists readable)."""
    return frozenset(words.split())


MESSAGES_KEYS = _names(
    "model messages max_tokens system metadata stop_sequences stream temperature top_p top_k "
    "tools tool_choice thinking service_tier output_config cache_control container "
    "inference_geo context_management mcp_servers "
    # also in the SDK 2.x Messages.create signature
    "speed diagnostics user_profile_id workspace_id"
)
COUNT_TOKENS_KEYS = _names(
    "model messages system tools tool_choice thinking output_config cache_control "
    "context_management mcp_servers"
)
BETA_GATED_KEYS = {"context_management": BETA_CONTEXT_MANAGEMENT}

BLOCK_TYPES = (
    "text",
    "image",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "container_upload",
    "mid_conv_system",
    "tool_reference",
)
# keys allowed per block type (types not listed here are not checked for extra keys)
BLOCK_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset({"type", "text", "cache_control", "citations"}),
    "image": frozenset({"type", "source", "cache_control"}),
    "document": frozenset({"type", "source", "title", "context", "citations", "cache_control"}),
    "thinking": frozenset({"type", "thinking", "signature"}),
    "redacted_thinking": frozenset({"type", "data"}),
    "tool_use": frozenset({"type", "id", "name", "input", "cache_control", "caller"}),
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"}),
}
MESSAGE_KEYS = frozenset({"role", "content"})
CUSTOM_TOOL_KEYS = _names(
    "type name description input_schema cache_control strict defer_loading input_examples "
    "eager_input_streaming allowed_callers"
)
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
SERVER_TOOL_TYPE = re.compile(r"^[a-z_]+_\d{8}$")
DEFAULT_MODELS: tuple[dict[str, Any], ...] = (
    {
        "type": "model",
        "id": "claude-opus-4-8",
        "display_name": "Claude Opus 4.8",
        "created_at": "2026-09-01T00:00:00Z",
        "max_input_tokens": 1_000_000,
        "max_tokens": 128_000,
    },
    {
        "type": "model",
        "id": "claude-sonnet-4-6",
        "display_name": "Claude Sonnet 4.6",
        "created_at": "2026-02-17T00:00:00Z",
        "max_input_tokens": 1_000_000,
        "max_tokens": 64_000,
    },
    {
        "type": "model",
        "id": "claude-haiku-4-5-20251001",
        "display_name": "Claude Haiku 4.5",
        "created_at": "2025-10-15T00:00:00Z",
        "max_input_tokens": 200_000,
        "max_tokens": 64_000,
    },
    {
        "type": "model",
        "id": "claude-sonnet-4-5-20250929",
        "display_name": "Claude Sonnet 4.5",
        "created_at": "2025-09-29T00:00:00Z",
        "max_input_tokens": 200_000,
        "max_tokens": 64_000,
    },
)


# Output cap and context window by model id prefix (docs.claude.com "Models overview"), for ids
# not in the fake's model list; a listed model's own max_tokens / max_input_tokens win.
# (prefix, max output tokens, context window, context window with the 1M beta)
MODEL_LIMITS: tuple[tuple[str, int, int, int], ...] = (
    ("claude-opus-4-1", 32_000, 200_000, 200_000),
    ("claude-opus-4-0", 32_000, 200_000, 200_000),
    ("claude-opus-4-2025", 32_000, 200_000, 200_000),
    ("claude-opus-4-5", 64_000, 200_000, 200_000),
    ("claude-sonnet-4-5", 64_000, 200_000, 1_000_000),
    ("claude-sonnet-4-0", 64_000, 200_000, 1_000_000),
    ("claude-sonnet-4-2025", 64_000, 200_000, 1_000_000),
    ("claude-haiku-4-5", 64_000, 200_000, 200_000),
    ("claude-3-7-sonnet", 64_000, 200_000, 200_000),
    ("claude-3-5-haiku", 8_192, 200_000, 200_000),
)
_DATE_SUFFIX = re.compile(r"-\d{8}$")


def new_message_id() -> str:
    return "msg_01" + rand_b62(22)


def new_tool_use_id() -> str:
    return "toolu_01" + rand_b62(22)


def new_request_id() -> str:
    return "req_011C" + rand_b62(20)


def new_signature() -> str:
    """Looks like a real signature (base64 of a protobuf starting ``Eq``), means nothing."""
    return (
        "Eq" + base64.b64encode(b"\x03\n\x46\x08\x0b\x18\x02" + secrets.token_bytes(150)).decode()
    )


# ----------------------------------------------------------------------------- reply types


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def tool_use_block(name: str, input: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": id or new_tool_use_id(), "name": name, "input": input}


def thinking_block(thinking: str, signature: str | None = None) -> dict[str, Any]:
    """A thinking block; without ``signature`` the fake issues (and will accept) a fresh one."""
    block: dict[str, Any] = {"type": "thinking", "thinking": thinking}
    if signature is not None:
        block["signature"] = signature
    return block


@dataclass
class Reply:
    """A scripted successful answer (JSON or SSE, following the request's ``stream`` flag).

    ``content``: a string (one text block) or a list of blocks (see ``text_block``,
    ``tool_use_block``, ``thinking_block``); tool_use blocks without ``id`` get one, thinking
    blocks without ``signature`` get a fresh fake-issued one.
    ``stop_reason``: defaults to ``tool_use`` when a tool_use block is present, else
    ``end_turn``. ``usage``: keys override the computed usage (``input_tokens`` from the request,
    ``output_tokens`` from the content, cache fields 0).

    Streaming knobs (ignored for non-streaming requests, except ``first_byte_delay``):
    ``text_chunk`` / ``json_chunk`` piece sizes; ``first_byte_delay`` before the response
    starts; ``first_event_delay`` after the headers; ``event_delay`` between events; ``pauses``
    {event_index: seconds}; ``cut_after`` N events then end the body (``cut_mode="eof"``) or
    reset the connection (``"abort"``), without ``message_stop``; ``error_after`` N events then
    ``event: error`` with ``error_type``/``error_message`` and close.
    """

    content: str | list[dict[str, Any]] | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Mapping[str, Any] | None = None
    model: str | None = None
    id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    text_chunk: int = 8
    json_chunk: int = 12
    ping: bool = True
    first_byte_delay: float = 0.0
    first_event_delay: float = 0.0
    event_delay: float = 0.0
    pauses: Mapping[int, float] = field(default_factory=dict)
    cut_after: int | None = None
    cut_mode: CutMode = "eof"
    error_after: int | None = None
    error_type: str = "overloaded_error"
    error_message: str = "Overloaded"


@dataclass
class ErrorReply:
    """A scripted HTTP error: ``{"type":"error","error":{"type","message"},"request_id"}``.

    ``body`` (bytes or JSON-able) replaces the standard body, for odd upstreams/proxies.
    """

    status: int = 529
    type: str = "overloaded_error"
    message: str = "Overloaded"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    content_type: str = "application/json"
    first_byte_delay: float = 0.0


ERROR_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_reply(status: int, message: str | None = None, **kw: Any) -> ErrorReply:
    """``ErrorReply`` with the standard error type for ``status``."""
    etype = ERROR_TYPE_BY_STATUS.get(status, "api_error")
    return ErrorReply(status=status, type=etype, message=message or etype, **kw)


class InvalidRequest(Exception):
    def __init__(self, message: str, status: int = 400, etype: str = "invalid_request_error"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.etype = etype


# ----------------------------------------------------------------------------- the fake


class FakeAnthropic(FakeUpstream):
    """Emulates api.anthropic.com ``/v1/messages``, ``/v1/messages/count_tokens``,
    ``/v1/models``.

    Options: ``api_key``; ``accept_bearer`` (also accept ``Authorization: Bearer <api_key>``);
    ``require_version``; ``require_betas`` (beta-gated fields/roles need their beta header);
    ``validate`` (False = accept any body); ``check_signatures``; ``models`` (listing; with
    ``strict_models`` unknown ids are 404 ``not_found_error``); ``emulate_cache`` (report
    ``cache_creation``/``cache_read`` tokens for the prefix up to the last ``cache_control``
    breakpoint, like the real prompt cache; prefixes shorter than ``min_cacheable_tokens`` are
    not cached).
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        accept_bearer: bool = True,
        require_version: bool = True,
        require_betas: bool = True,
        validate: bool = True,
        check_signatures: bool = True,
        models: Sequence[Mapping[str, Any]] = DEFAULT_MODELS,
        strict_models: bool = False,
        emulate_cache: bool = False,
        min_cacheable_tokens: int = 1024,
        default_text: str = DEFAULT_TEXT,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.accept_bearer = accept_bearer
        self.require_version = require_version
        self.require_betas = require_betas
        self.validate = validate
        self.check_signatures = check_signatures
        self.models = [dict(m) for m in models]
        self.strict_models = strict_models
        self.emulate_cache = emulate_cache
        self.min_cacheable_tokens = min_cacheable_tokens
        self.default_text = default_text
        self.issued_signatures: set[str] = set()
        self._cache_prefixes: set[bytes] = set()

    # ------------------------------------------------------------------ public helpers
    def issue_signature(self) -> str:
        sig = new_signature()
        self.trust_signature(sig)
        return sig

    def trust_signature(self, *signatures: str) -> None:
        """Accept these signatures in history (e.g. ones from a recorded fixture)."""
        with self._lock:
            self.issued_signatures.update(signatures)

    def trust_signatures_in(self, body: Any) -> None:
        """Trust every thinking signature found in a request body (e.g. a fixture)."""
        self.trust_signature(*_find_signatures(orjson.dumps(body)))

    def count_tokens(self, body: Mapping[str, Any]) -> int:
        """What this fake reports as the prompt size of ``body`` (count_tokens and usage)."""
        return tokens.anthropic_input_tokens(dict(body))

    def reset(self) -> None:
        super().reset()
        self._cache_prefixes.clear()
        with self._lock:  # signatures issued for an earlier test are not valid in the next
            self.issued_signatures.clear()

    # ------------------------------------------------------------------ app
    def app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024, middlewares=[self._middleware])
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/v1/models/{model_id}", self._get_model)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        request_id = new_request_id()
        request[REQUEST_ID] = request_id
        rec = await record(request)
        request[RECORDED] = rec
        self._record(rec)
        try:
            resp = await handler(request)
        except InvalidRequest as exc:
            resp = self._error(request, exc.status, exc.etype, exc.message)
        except web.HTTPException as exc:
            if exc.status == 405:
                msg = f"Method Not Allowed: {request.method} {request.path}"
            else:
                msg = "Not Found"
            etype = ERROR_TYPE_BY_STATUS.get(exc.status, "invalid_request_error")
            resp = self._error(request, exc.status, etype, msg)
        if not resp.prepared:
            resp.headers.setdefault("request-id", request_id)
        rec.status = resp.status
        return resp

    def _error(
        self,
        request: web.Request,
        status: int,
        etype: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        body = {
            "type": "error",
            "error": {"type": etype, "message": message},
            "request_id": request[REQUEST_ID],
        }
        resp = web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
        resp.headers["request-id"] = request[REQUEST_ID]
        resp.headers["x-should-retry"] = (
            "true" if status in (408, 409, 429) or status >= 500 else "false"
        )
        for k, v in (headers or {}).items():
            resp.headers[k] = v
        return resp

    def _base_headers(self, request: web.Request) -> dict[str, str]:
        return {"request-id": request[REQUEST_ID], "anthropic-organization-id": "org-fake"}

    # ------------------------------------------------------------------ auth
    def _check_auth(self, request: web.Request) -> None:
        key = request.headers.get("x-api-key")
        if key is None and self.accept_bearer:
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                key = auth[7:].strip()
        if key is None:
            raise InvalidRequest("x-api-key header is required", 401, "authentication_error")
        if key != self.api_key:
            raise InvalidRequest("invalid x-api-key", 401, "authentication_error")
        if self.require_version and not request.headers.get("anthropic-version"):
            raise InvalidRequest("anthropic-version: header is required")

    @staticmethod
    def betas(request: web.Request) -> set[str]:
        values = request.headers.getall("anthropic-beta", [])
        return {b.strip() for v in values for b in v.split(",") if b.strip()}

    def _parse_body(self, request: web.Request) -> dict[str, Any]:
        rec: RecordedRequest = request[RECORDED]
        if rec.body is None:
            raise InvalidRequest("There was an error parsing the body: expected a JSON object")
        if not isinstance(rec.body, dict):
            raise InvalidRequest("Input should be a valid dictionary")
        return rec.body

    # ------------------------------------------------------------------ handlers
    async def _messages(self, request: web.Request) -> web.StreamResponse:
        self._check_auth(request)
        body = self._parse_body(request)
        if self.validate:
            validate_request(
                body,
                self.betas(request),
                count_tokens=False,
                require_betas=self.require_betas,
                signatures=self.issued_signatures if self.check_signatures else None,
            )
        self._check_model(body)
        if self.validate:
            self._check_limits(body, self.betas(request))
        rec: RecordedRequest = request[RECORDED]
        reply = self._pop_reply(rec)
        if reply is None:
            reply = self._default_reply(body)
        if isinstance(reply, ErrorReply):
            return await self._send_error_reply(request, reply)
        if isinstance(reply, RawStream):
            self.trust_signature(*_find_signatures(reply.data()))
            return await replay_raw(request, reply, self._base_headers(request))
        if not isinstance(reply, Reply):
            raise TypeError(f"cannot answer with {reply!r}")
        message = self._build_message(body, reply)
        headers = {**self._base_headers(request), **reply.headers}
        if body.get("stream"):
            plan = _stream_plan(message, reply, request[REQUEST_ID])
            return await write_stream(request, plan, headers=headers)
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        resp = web.Response(body=orjson.dumps(message), content_type="application/json")
        resp.headers.update(headers)
        return resp

    async def _send_error_reply(self, request: web.Request, reply: ErrorReply) -> web.Response:
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        if reply.body is None:
            return self._error(request, reply.status, reply.type, reply.message, reply.headers)
        raw = reply.body if isinstance(reply.body, bytes) else orjson.dumps(reply.body)
        resp = web.Response(status=reply.status, body=raw)
        resp.headers["Content-Type"] = reply.content_type
        resp.headers["request-id"] = request[REQUEST_ID]
        resp.headers.update(reply.headers)
        return resp

    async def _count_tokens(self, request: web.Request) -> web.Response:
        self._check_auth(request)
        body = self._parse_body(request)
        if self.validate:
            validate_request(
                body,
                self.betas(request),
                count_tokens=True,
                require_betas=self.require_betas,
                signatures=self.issued_signatures if self.check_signatures else None,
            )
        self._check_model(body)
        return web.Response(
            body=orjson.dumps({"input_tokens": self.count_tokens(body)}),
            content_type="application/json",
            headers=self._base_headers(request),
        )

    async def _list_models(self, request: web.Request) -> web.Response:
        self._check_auth(request)
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            raise InvalidRequest("limit: Input should be a valid integer") from None
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit: Input should be less than or equal to 1000")
        models = self.models
        ids = [m["id"] for m in models]
        after, before = request.query.get("after_id"), request.query.get("before_id")
        if after in ids:
            models = models[ids.index(after) + 1 :]
        elif before in ids:
            models = models[: ids.index(before)][-limit:]
        page = models[:limit]
        body = {
            "data": page,
            "has_more": len(models) > len(page),
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }
        return web.Response(
            body=orjson.dumps(body),
            content_type="application/json",
            headers=self._base_headers(request),
        )

    async def _get_model(self, request: web.Request) -> web.Response:
        self._check_auth(request)
        model_id = request.match_info["model_id"]
        for m in self.models:
            if m["id"] == model_id:
                return web.Response(
                    body=orjson.dumps(m),
                    content_type="application/json",
                    headers=self._base_headers(request),
                )
        raise InvalidRequest(f"model: {model_id}", 404, "not_found_error")

    def _known_model(self, model: Any) -> dict[str, Any] | None:
        """The listed model ``model`` names: its id, or its alias (the id without the date)."""
        for m in self.models:
            if model == m["id"] or model == _DATE_SUFFIX.sub("", m["id"]):
                return m
        return None

    def _check_model(self, body: Mapping[str, Any]) -> None:
        if self.strict_models and self._known_model(body.get("model")) is None:
            raise InvalidRequest(f"model: {body.get('model')}", 404, "not_found_error")

    def limits(self, model: Any, betas: set[str] = frozenset()) -> tuple[str, int, int] | None:
        """(full model id, output cap, context window) the fake enforces for ``model``."""
        if not isinstance(model, str):
            return None
        listed = self._known_model(model)
        full = listed["id"] if listed is not None else model
        row = next((r for r in MODEL_LIMITS if model.startswith(r[0])), None)
        cap = (listed or {}).get("max_tokens") or (row[1] if row else None)
        window = (listed or {}).get("max_input_tokens") or (row[2] if row else None)
        if cap is None or window is None:
            return None
        if row is not None and BETA_CONTEXT_1M in betas:
            window = max(window, row[3])
        return full, int(cap), int(window)

    def _check_limits(self, body: Mapping[str, Any], betas: set[str]) -> None:
        lim = self.limits(body.get("model"), betas)
        if lim is None:
            return
        full, cap, window = lim
        mt = body.get("max_tokens")
        if _is_int(mt) and mt > cap:
            raise InvalidRequest(
                f"max_tokens: {mt} > {cap}, which is the maximum allowed number of output tokens "
                f"for {full}"
            )
        n = self.count_tokens(body)
        if n > window:
            raise InvalidRequest(f"prompt is too long: {n} tokens > {window} maximum")

    # ------------------------------------------------------------------ replies
    def _default_reply(self, body: Mapping[str, Any]) -> Reply:
        max_tokens = body.get("max_tokens")
        words = self.default_text.split(" ")
        text, stop = self.default_text, "end_turn"
        if isinstance(max_tokens, int) and tokens.count_text(text) > max_tokens:
            # one word is about one token for the fake tokenizer: truncate like a real model
            kept: list[str] = []
            for w in words:
                if tokens.count_text(" ".join([*kept, w])) > max_tokens:
                    break
                kept.append(w)
            text, stop = " ".join(kept), "max_tokens"
        return Reply(content=[text_block(text)] if text else [], stop_reason=stop)

    def _usage(self, body: Mapping[str, Any]) -> dict[str, int]:
        total = self.count_tokens(body)
        created = read = 0
        if self.emulate_cache:
            prefix_tokens, key = _cache_prefix(body)
            if prefix_tokens >= self.min_cacheable_tokens:
                with self._lock:
                    hit = key in self._cache_prefixes
                    self._cache_prefixes.add(key)
                if hit:
                    read = prefix_tokens
                else:
                    created = prefix_tokens
        return {
            "input_tokens": total - created - read,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
        }

    def _build_message(self, body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
        raw_content = reply.content
        if raw_content is None:
            raw_content = [text_block(self.default_text)]
        elif isinstance(raw_content, str):
            raw_content = [text_block(raw_content)]
        content: list[dict[str, Any]] = []
        for block in raw_content:
            b = dict(block)
            if b.get("type") == "tool_use" and not b.get("id"):
                b["id"] = new_tool_use_id()
            if b.get("type") == "tool_use":
                b.setdefault("input", {})
            if b.get("type") == "thinking":
                if not b.get("signature"):
                    b["signature"] = new_signature()
                self.trust_signature(b["signature"])
            content.append(b)
        stop_reason = reply.stop_reason or (
            "tool_use" if any(b.get("type") == "tool_use" for b in content) else "end_turn"
        )
        usage: dict[str, Any] = {
            **self._usage(body),
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": tokens.anthropic_output_tokens(content),
            "service_tier": "standard",
        }
        if reply.usage:
            usage.update(reply.usage)
        return {
            "model": reply.model or body.get("model"),
            "id": reply.id or new_message_id(),
            "type": "message",
            "role": "assistant",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": reply.stop_sequence,
            "usage": usage,
        }


# ----------------------------------------------------------------------------- streaming


def stream_events(
    message: Mapping[str, Any], *, text_chunk: int = 8, json_chunk: int = 12, ping: bool = True
) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events the real API sends for ``message`` (a complete Messages response)."""
    usage = dict(message["usage"])
    start_usage = {k: v for k, v in usage.items() if k != "output_tokens"}
    start_usage["output_tokens"] = 1
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    **message,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        )
    ]
    if ping:
        events.append(("ping", {"type": "ping"}))
    for index, block in enumerate(message["content"]):
        kind = block.get("type")
        if kind == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [
                {"type": "text_delta", "text": p} for p in split_text(block["text"], text_chunk)
            ]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": p}
                for p in split_text(block.get("thinking", ""), text_chunk)
            ]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind in ("tool_use", "server_tool_use"):
            start = {"type": kind, "id": block["id"], "name": block["name"], "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            if block.get("input"):
                # the real API streams json.dumps-style text ("{"a": 1}") in small pieces
                text = json.dumps(block["input"], ensure_ascii=False)
                deltas += [
                    {"type": "input_json_delta", "partial_json": p}
                    for p in split_text(text, json_chunk)
                ]
        else:  # redacted_thinking, server tool results...: complete in the start event
            start, deltas = dict(block), []
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        for d in deltas:
            events.append(
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    final_usage = {k: v for k, v in usage.items() if k not in ("cache_creation", "service_tier")}
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": message["stop_reason"],
                    "stop_sequence": message["stop_sequence"],
                },
                "usage": final_usage,
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _stream_plan(message: Mapping[str, Any], reply: Reply, request_id: str) -> StreamPlan:
    events = stream_events(
        message, text_chunk=reply.text_chunk, json_chunk=reply.json_chunk, ping=reply.ping
    )
    error = {
        "type": "error",
        "error": {"type": reply.error_type, "message": reply.error_message},
        "request_id": request_id,
    }
    return StreamPlan(
        frames=[anthropic_frame(name, data) for name, data in events],
        first_byte_delay=reply.first_byte_delay,
        first_event_delay=reply.first_event_delay,
        event_delay=reply.event_delay,
        pauses=reply.pauses,
        cut_after=reply.cut_after,
        cut_mode=reply.cut_mode,
        error_after=reply.error_after,
        error_frames=[anthropic_frame("error", error)],
    )


# ----------------------------------------------------------------------------- validation

_SIG_RE = re.compile(rb'"signature"\s*:\s*"([^"]+)"')


def _find_signatures(raw: bytes) -> list[str]:
    return [m.decode() for m in _SIG_RE.findall(raw)]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _extra_keys(obj: Mapping[str, Any], allowed: frozenset[str], loc: str) -> None:
    for key in obj:
        if key not in allowed:
            raise InvalidRequest(f"{loc}{key}: Extra inputs are not permitted")


def _cache_breakpoints(body: Mapping[str, Any]) -> int:
    n = 1 if body.get("cache_control") else 0
    for tool in body.get("tools") or []:
        n += isinstance(tool, dict) and "cache_control" in tool
    system = body.get("system")
    if isinstance(system, list):
        n += sum(1 for b in system if isinstance(b, dict) and "cache_control" in b)
    for msg in body.get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list):
            n += sum(1 for b in content if isinstance(b, dict) and "cache_control" in b)
    return n


def _cache_prefix(body: Mapping[str, Any]) -> tuple[int, bytes]:
    """(tokens, identity) of the prompt prefix ending at the last cache_control breakpoint,
    in the API's cache order: tools, system, messages."""
    parts: list[Any] = []
    marked = 0
    count = 0
    last_count = 0
    for tool in body.get("tools") or []:
        parts.append(tool)
        count += tokens.anthropic_tool_tokens(tool)
        if isinstance(tool, dict) and "cache_control" in tool:
            marked, last_count = len(parts), count
    system = body.get("system")
    if isinstance(system, str):
        parts.append(system)
        count += tokens.SYSTEM_OVERHEAD + tokens.count_text(system)
    elif isinstance(system, list):
        count += tokens.SYSTEM_OVERHEAD
        for b in system:
            parts.append(b)
            count += tokens.anthropic_content_tokens([b])
            if isinstance(b, dict) and "cache_control" in b:
                marked, last_count = len(parts), count
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        count += tokens.MESSAGE_OVERHEAD
        content = msg.get("content")
        blocks = content if isinstance(content, list) else [content]
        for b in blocks:
            parts.append((msg.get("role"), b))
            count += tokens.anthropic_content_tokens([b] if isinstance(b, dict) else b)
            if isinstance(b, dict) and "cache_control" in b:
                marked, last_count = len(parts), count
    if not marked:
        return 0, b""
    strip = orjson.dumps(parts[:marked], option=orjson.OPT_SORT_KEYS)
    return last_count, str(body.get("model")).encode() + b"\0" + strip


def validate_request(
    body: Mapping[str, Any],
    betas: set[str],
    *,
    count_tokens: bool = False,
    require_betas: bool = True,
    signatures: set[str] | None = None,
) -> None:
    """Raise ``InvalidRequest`` with the real API's wording for the first problem found."""
    required = ("model", "messages") if count_tokens else ("model", "max_tokens", "messages")
    for key in required:
        if key not in body:
            raise InvalidRequest(f"{key}: Field required")
    allowed = COUNT_TOKENS_KEYS if count_tokens else MESSAGES_KEYS
    for key in body:
        gated = BETA_GATED_KEYS.get(key)
        if key not in allowed or (require_betas and gated and gated not in betas):
            raise InvalidRequest(f"{key}: Extra inputs are not permitted")
    if not isinstance(body["model"], str):
        raise InvalidRequest("model: Input should be a valid string")
    if not count_tokens:
        max_tokens = body["max_tokens"]
        if not _is_int(max_tokens):
            raise InvalidRequest("max_tokens: Input should be a valid integer")
        if max_tokens < 0:
            raise InvalidRequest("max_tokens: Input should be greater than or equal to 0")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise InvalidRequest("stream: Input should be a valid boolean")
    temperature = body.get("temperature")
    if temperature is not None:
        if not _is_num(temperature):
            raise InvalidRequest("temperature: Input should be a valid number")
        if temperature > 1:
            raise InvalidRequest("temperature: Input should be less than or equal to 1")
        if temperature < 0:
            raise InvalidRequest("temperature: Input should be greater than or equal to 0")
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
    ):
        raise InvalidRequest("stop_sequences: Input should be a valid list")
    _validate_metadata(body.get("metadata"))
    _validate_system(body.get("system"))
    _validate_thinking(body.get("thinking"), body.get("max_tokens"))
    _validate_output_config(body.get("output_config"))
    tool_names = _validate_tools(body.get("tools"))
    _validate_tool_choice(body.get("tool_choice"), tool_names)
    _validate_messages(body["messages"], betas, require_betas)
    if not count_tokens:
        _validate_thinking_in_use(body)
    if signatures is not None:
        # checked after the structural rules (the real API verifies signatures last)
        _check_signatures(body["messages"], signatures)
    n = _cache_breakpoints(body)
    if n > 4:
        raise InvalidRequest(
            f"A maximum of 4 blocks with cache_control may be provided. Found {n}."
        )


def _thinking_rule(text: str) -> InvalidRequest:
    return InvalidRequest(
        f"{text} Please consult our documentation at {DOCS_THINKING_CONSIDERATIONS}"
    )


def _validate_thinking_in_use(body: Mapping[str, Any]) -> None:
    """The rules that tie thinking to sampling, tool_choice and the history (messages only)."""
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    on = kind in ("enabled", "adaptive")
    if on:
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            raise _thinking_rule(
                "`temperature` may only be set to 1 when thinking is enabled or in adaptive mode."
            )
        if body.get("top_k") is not None:
            raise _thinking_rule("`top_k` must be unset when thinking is enabled.")
        top_p = body.get("top_p")
        if _is_num(top_p) and top_p < 0.95:
            raise _thinking_rule(
                "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled."
            )
        choice = body.get("tool_choice")
        if kind == "enabled" and isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
            raise InvalidRequest("Thinking may not be enabled when tool_choice forces tool use.")
    messages = body["messages"]
    for i, msg in enumerate(messages):
        content = msg.get("content")
        if msg.get("role") != "assistant" or not isinstance(content, list) or not content:
            continue
        kinds = [b.get("type") for b in content]
        if any(k in THINKING_TYPES for k in kinds) and kinds[0] not in THINKING_TYPES:
            raise InvalidRequest(
                f"messages.{i}.content.0: If an assistant message contains any thinking blocks, "
                f"the first block must be thinking or redacted_thinking. Found {kinds[0]}."
            )
    last = len(messages) - 1
    final = messages[last] if messages else {}
    content = final.get("content")
    if final.get("role") == "assistant" and isinstance(content, list) and content:
        if not on:
            for j, b in enumerate(content):
                if b.get("type") in THINKING_TYPES:
                    raise InvalidRequest(
                        f"messages.{last}.content.{j}: When thinking is disabled, an `assistant` "
                        "message in the final position cannot contain `thinking`. To use thinking "
                        "blocks, enable `thinking` in your request."
                    )
        if content[-1].get("type") in THINKING_TYPES:
            raise InvalidRequest(
                f"messages.{last}: The final block in an assistant message cannot be `thinking`."
            )
    if on:
        _validate_tool_loop_thinking(messages)


def _validate_tool_loop_thinking(messages: list[dict[str, Any]]) -> None:
    """With thinking on and the request ending in tool results, the assistant turn that began
    the ongoing tool loop (the first assistant message after the last user turn without tool
    results) must start with a thinking block."""

    def has_result(msg: Mapping[str, Any]) -> bool:
        c = msg.get("content")
        return isinstance(c, list) and any(b.get("type") == "tool_result" for b in c)

    if not messages or messages[-1].get("role") != "user" or not has_result(messages[-1]):
        return
    start = 0
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user" and not has_result(messages[i]):
            start = i + 1
            break
    for i in range(start, len(messages)):
        msg = messages[i]
        if msg.get("role") != "assistant":
            continue
        content = msg.get("content")
        first = "text"
        if isinstance(content, list) and content:
            first = content[0].get("type") or "text"
        if first not in THINKING_TYPES:
            raise InvalidRequest(
                f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
                f"found `{first}`. When `thinking` is enabled, a final `assistant` message must "
                "start with a thinking block (preceeding the lastmost set of `tool_use` and "
                "`tool_result` blocks). We recommend you include thinking blocks from previous "
                "turns. To avoid this requirement, disable `thinking`. Please consult our "
                f"documentation at {DOCS_THINKING}"
            )
        return


def _validate_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata: Input should be a valid dictionary")
    _extra_keys(metadata, frozenset({"user_id"}), "metadata.")
    uid = metadata.get("user_id")
    if uid is not None and not isinstance(uid, str):
        raise InvalidRequest("metadata.user_id: Input should be a valid string")
    if isinstance(uid, str) and len(uid) > 512:
        raise InvalidRequest("metadata.user_id: String should have at most 512 characters")


def _validate_text_blocks(blocks: Any, loc: str, *, allow_string: bool = True) -> None:
    if isinstance(blocks, str) and allow_string:
        return
    if not isinstance(blocks, list):
        raise InvalidRequest(f"{loc}: Input should be a valid list")
    for i, b in enumerate(blocks):
        if not isinstance(b, dict) or b.get("type") != "text":
            raise InvalidRequest(f"{loc}.{i}.type: Input should be 'text'")
        _extra_keys(b, BLOCK_KEYS["text"], f"{loc}.{i}.")
        if not isinstance(b.get("text"), str):
            raise InvalidRequest(f"{loc}.{i}.text: Field required")
        if not b["text"].strip():
            raise InvalidRequest(f"{loc.split('.')[0]}: text content blocks must be non-empty")


def _validate_system(system: Any) -> None:
    if system is None:
        return
    _validate_text_blocks(system, "system")


def _validate_thinking(thinking: Any, max_tokens: Any) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in (
        "enabled",
        "disabled",
        "adaptive",
    ):
        raise InvalidRequest(
            "thinking: Input tag found using 'type' does not match any of the expected tags: "
            "'enabled', 'disabled', 'adaptive'"
        )
    kind = thinking["type"]
    keys = {
        "enabled": frozenset({"type", "budget_tokens", "display"}),
        "disabled": frozenset({"type"}),
        "adaptive": frozenset({"type", "display"}),
    }[kind]
    _extra_keys(thinking, keys, f"thinking.{kind}.")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if budget is None:
            raise InvalidRequest("thinking.enabled.budget_tokens: Field required")
        if not _is_int(budget):
            raise InvalidRequest("thinking.enabled.budget_tokens: Input should be a valid integer")
        if budget < 1024:
            raise InvalidRequest(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if _is_int(max_tokens) and max_tokens <= budget:
            raise InvalidRequest(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                "documentation at https://docs.claude.com/en/docs/build-with-claude/"
                "extended-thinking#max-tokens-and-context-window-size"
            )


def _validate_output_config(cfg: Any) -> None:
    if cfg is None:
        return
    if not isinstance(cfg, dict):
        raise InvalidRequest("output_config: Input should be a valid dictionary")
    _extra_keys(cfg, frozenset({"effort", "format"}), "output_config.")
    effort = cfg.get("effort")
    if effort is not None and effort not in ("low", "medium", "high", "xhigh", "max"):
        raise InvalidRequest(
            "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
        )
    fmt = cfg.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            raise InvalidRequest("output_config.format.type: Input should be 'json_schema'")
        if not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest("output_config.format.schema: Field required")


def _validate_tools(tools: Any) -> set[str]:
    names: set[str] = set()
    if tools is None:
        return names
    if not isinstance(tools, list):
        raise InvalidRequest("tools: Input should be a valid list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"tools.{i}: Input should be a valid dictionary")
        kind = tool.get("type")
        if kind is not None and kind != "custom":
            if not isinstance(kind, str) or not SERVER_TOOL_TYPE.match(kind):
                raise InvalidRequest(
                    f"tools.{i}: Input tag '{kind}' found using 'type' does not match any of "
                    "the expected tags"
                )
            name = tool.get("name")
        else:
            loc = f"tools.{i}.custom."
            _extra_keys(tool, CUSTOM_TOOL_KEYS, loc)
            name = tool.get("name")
            if name is None:
                raise InvalidRequest(f"{loc}name: Field required")
            if not isinstance(name, str) or not TOOL_NAME.match(name):
                raise InvalidRequest(
                    f"{loc}name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
                )
            schema = tool.get("input_schema")
            if schema is None:
                raise InvalidRequest(f"{loc}input_schema: Field required")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise InvalidRequest(f"{loc}input_schema.type: Input should be 'object'")
            desc = tool.get("description")
            if desc is not None and not isinstance(desc, str):
                raise InvalidRequest(f"{loc}description: Input should be a valid string")
        if isinstance(name, str):
            if name in names:
                raise InvalidRequest("tools: Tool names must be unique.")
            names.add(name)
    return names


def _validate_tool_choice(choice: Any, tool_names: set[str]) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise InvalidRequest(
            "tool_choice: Input tag found using 'type' does not match any of the expected "
            "tags: 'auto', 'any', 'tool', 'none'"
        )
    kind = choice["type"]
    keys = {
        "auto": frozenset({"type", "disable_parallel_tool_use"}),
        "any": frozenset({"type", "disable_parallel_tool_use"}),
        "tool": frozenset({"type", "name", "disable_parallel_tool_use"}),
        "none": frozenset({"type"}),
    }[kind]
    _extra_keys(choice, keys, f"tool_choice.{kind}.")
    if kind == "tool":
        if "name" not in choice:
            raise InvalidRequest("tool_choice.tool.name: Field required")
        if choice["name"] not in tool_names:
            raise InvalidRequest(f"Tool '{choice['name']}' not found in 'tools'")


def _validate_block(block: Any, loc: str, role: str) -> None:
    if not isinstance(block, dict):
        raise InvalidRequest(f"{loc}: Input should be a valid dictionary")
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        expected = ", ".join(f"'{t}'" for t in BLOCK_TYPES)
        raise InvalidRequest(
            f"{loc}: Input tag '{kind}' found using 'type' does not match any of the expected "
            f"tags: {expected}"
        )
    if kind in BLOCK_KEYS:
        _extra_keys(block, BLOCK_KEYS[kind], f"{loc}.{kind}.")
    if kind == "text":
        if not isinstance(block.get("text"), str):
            raise InvalidRequest(f"{loc}.text.text: Field required")
        if not block["text"].strip():
            raise InvalidRequest("messages: text content blocks must be non-empty")
    elif kind == "tool_use":
        for key in ("id", "name", "input"):
            if key not in block:
                raise InvalidRequest(f"{loc}.tool_use.{key}: Field required")
        if not isinstance(block["input"], dict):
            raise InvalidRequest(f"{loc}.tool_use.input: Input should be a valid dictionary")
        if not isinstance(block["id"], str) or not re.match(r"^[a-zA-Z0-9_-]+$", block["id"]):
            raise InvalidRequest(
                f"{loc}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
            )
        if role != "assistant":
            raise InvalidRequest(f"{loc}: `tool_use` blocks can only be in `assistant` messages")
    elif kind == "tool_result":
        if "tool_use_id" not in block:
            raise InvalidRequest(f"{loc}.tool_result.tool_use_id: Field required")
        content = block.get("content")
        if isinstance(content, list):
            for j, sub in enumerate(content):
                if isinstance(sub, dict) and sub.get("type") == "text":
                    _validate_block(sub, f"{loc}.content.{j}", role)
        elif content is not None and not isinstance(content, str):
            raise InvalidRequest(f"{loc}.tool_result.content: Input should be a valid list")
        if "is_error" in block and not isinstance(block["is_error"], bool):
            raise InvalidRequest(f"{loc}.tool_result.is_error: Input should be a valid boolean")
        if role != "user":
            raise InvalidRequest(f"{loc}: `tool_result` blocks can only be in `user` messages")
    elif kind == "thinking":
        if "thinking" not in block:
            raise InvalidRequest(f"{loc}.thinking.thinking: Field required")
        if "signature" not in block:
            raise InvalidRequest(f"{loc}.thinking.signature: Field required")
        if role != "assistant":
            raise InvalidRequest(f"{loc}: `thinking` blocks can only be in `assistant` messages")
    elif kind == "image":
        source = block.get("source")
        if not isinstance(source, dict) or source.get("type") not in ("base64", "url", "file"):
            raise InvalidRequest(f"{loc}.image.source: Field required")
        if source["type"] == "base64" and source.get("media_type") not in (
            "image/jpeg",
            "image/png",
            "image/gif",
            "image/webp",
        ):
            raise InvalidRequest(
                f"{loc}.image.source.base64.media_type: Input should be 'image/jpeg', "
                "'image/png', 'image/gif' or 'image/webp'"
            )


def _check_signatures(messages: list[dict[str, Any]], signatures: set[str]) -> None:
    for i, msg in enumerate(messages):
        content = msg.get("content")
        if msg.get("role") != "assistant" or not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if block.get("type") == "thinking" and block.get("signature") not in signatures:
                raise InvalidRequest(
                    f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                )


def _validate_messages(messages: Any, betas: set[str], require_betas: bool) -> None:
    if not isinstance(messages, list):
        raise InvalidRequest("messages: Input should be a valid list")
    system_ok = not require_betas or BETA_MID_CONV_SYSTEM in betas
    roles = ("user", "assistant", "system") if system_ok else ("user", "assistant")
    last = len(messages) - 1
    for i, msg in enumerate(messages):
        loc = f"messages.{i}"
        if not isinstance(msg, dict):
            raise InvalidRequest(f"{loc}: Input should be a valid dictionary")
        for key in ("role", "content"):
            if key not in msg:
                raise InvalidRequest(f"{loc}.{key}: Field required")
        _extra_keys(msg, MESSAGE_KEYS, f"{loc}.")
        role = msg["role"]
        if role not in roles:
            allowed = (
                " or ".join(f"'{r}'" for r in roles)
                if len(roles) == 2
                else ("'user', 'assistant' or 'system'")
            )
            raise InvalidRequest(f"{loc}.role: Input should be {allowed}")
        content = msg["content"]
        final_assistant = i == last and role == "assistant"
        if isinstance(content, str):
            if not content and not final_assistant:
                raise InvalidRequest(
                    f"{loc}: all messages must have non-empty content except for the optional "
                    "final assistant message"
                )
            continue
        if not isinstance(content, list):
            raise InvalidRequest(f"{loc}.content: Input should be a valid list")
        if not content and not final_assistant:
            raise InvalidRequest(
                f"{loc}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )
        if role == "system":
            _validate_text_blocks(content, f"{loc}.content")
            continue
        for j, block in enumerate(content):
            _validate_block(block, f"{loc}.content.{j}", role)
    _validate_tool_pairing(messages)


def _validate_tool_pairing(messages: list[dict[str, Any]]) -> None:
    """Consecutive same-role messages form one turn (the API merges them)."""
    turns: list[tuple[int, str, list[tuple[int, int, dict[str, Any]]]]] = []
    for i, msg in enumerate(messages):
        content = msg["content"]
        blocks = [(i, j, b) for j, b in enumerate(content)] if isinstance(content, list) else []
        if turns and turns[-1][1] == msg["role"] and msg["role"] != "system":
            turns[-1][2].extend(blocks)
        else:
            turns.append((i, msg["role"], blocks))
    for t, (_first, role, blocks) in enumerate(turns):
        if role != "user":
            continue
        prev = turns[t - 1] if t else None
        expected = (
            {b["id"] for _, _, b in prev[2] if b.get("type") == "tool_use"}
            if prev and prev[1] == "assistant"
            else set()
        )
        for i, j, b in blocks:
            if b.get("type") == "tool_result" and b.get("tool_use_id") not in expected:
                raise InvalidRequest(
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {b.get('tool_use_id')}. Each `tool_result` block must have a "
                    "corresponding `tool_use` block in the previous message."
                )
    for t, (_first, role, blocks) in enumerate(turns):
        if role != "assistant":
            continue
        ids = [b["id"] for _, _, b in blocks if b.get("type") == "tool_use"]
        if not ids:
            continue
        nxt = turns[t + 1] if t + 1 < len(turns) else None
        answered: set[Any] = set()
        if nxt and nxt[1] == "user":
            for _, _, b in nxt[2]:
                if b.get("type") != "tool_result":
                    break  # tool_result blocks must come first in the user turn
                answered.add(b.get("tool_use_id"))
        missing = [x for x in ids if x not in answered]
        if missing:
            last_index = max(i for i, _, _ in blocks)
            raise InvalidRequest(
                f"messages.{last_index}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
