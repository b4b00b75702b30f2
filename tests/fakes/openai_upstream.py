"""A fake OpenAI-compatible server: vLLM (default), api.openai.com, Ollama or api.mistral.ai.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``POST /v1/responses`` (the
modes whose server serves the Responses API: tests/fakes/openai_responses.py),
``GET /v1/models`` (and
``/v1/models/{id}`` for openai/ollama); vLLM only: ``POST /tokenize`` and ``GET /health`` (not
under ``/v1``, and not behind the API key — like vLLM's ``--api-key`` middleware); Ollama only:
``GET /`` ("Ollama is running").

What it checks (400 unless noted; wording of the emulated server):

* auth (``api_key`` set; not in ollama mode): ``Authorization: Bearer`` — 401 ``{"error":
  "Unauthorized"}`` (vLLM) or ``invalid_api_key`` (openai);
* ``model`` and ``messages`` required; unknown model 404 (``models``, unless ``accept_any_model``);
* openai mode: unknown top-level params (``Unrecognized request argument supplied: X``) and
  unknown keys on messages / content parts / tools (catches ``cache_control``,
  ``context_management``, ``thinking``, ``top_k``, ``reasoning_content`` leaks); vLLM mode
  accepts unknown top-level params but notes them on the recorded request (``notes``);
* roles; tool pairing (every assistant ``tool_calls`` id answered by ``tool`` messages before
  the next user/assistant message; no orphan ``tool`` messages); ``function.arguments`` must be
  a JSON *string*; ``tools: []``; ``tool_choice`` without tools; ``stream_options`` without
  ``stream``; ``response_format.json_schema.name``;
* chat template strictness (``strict_system_first``: "System message must be at the
  beginning.", on by default for vLLM/Qwen; ``strict_alternation``: "Conversation roles must
  alternate user/assistant/user/assistant/...");
* context window: ``max_model_len`` vs the fake tokenizer's prompt count (+ ``max_tokens``);
* ``mistral_common`` (mistral mode, or vLLM with ``mistral_tokenizer=True``, i.e. vLLM serving a
  Mistral model with ``--tokenizer-mode mistral``): tool-call ids of exactly 9 ``[a-zA-Z0-9]``,
  message order (no user right after a tool result), as many tool results as tool calls, a
  final user/tool turn (or an assistant with ``prefix``); mistral mode also answers 422
  ``extra_forbidden`` to parameters and message keys api.mistral.ai does not know
  (``stream_options``, ``max_completion_tokens``, ``reasoning``...).

Sources of each rule: tests/fakes/README.md.

Scripted replies: ``ChatReply``, ``ErrorReply``, ``RawStream`` or a callable, via ``enqueue``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

from . import (
    openai_responses,  # the Responses endpoint (imports this module back)
    tokens,
)
from .common import (
    RECORDED,
    CutMode,
    FakeUpstream,
    RawStream,
    RecordedRequest,
    StreamPlan,
    rand_b62,
    rand_hex,
    record,
    replay_raw,
    split_text,
    write_stream,
)
from .sse import OPENAI_DONE, openai_frame

Mode = Literal["vllm", "openai", "ollama", "deepseek", "sglang", "llamacpp", "mistral"]

#: the mode whose validation rules a mode follows (SGLang and llama.cpp are lenient like vLLM;
#: DeepSeek ignores unknown parameters too, and adds its own thinking-mode rules)
BASE: dict[str, Mode] = {
    "vllm": "vllm",
    "openai": "openai",
    "ollama": "ollama",
    "sglang": "vllm",
    "llamacpp": "vllm",
    "deepseek": "vllm",
    "mistral": "mistral",
}
#: the mode whose wire shapes (ids, chunks, usage) a mode writes
STYLE: dict[str, Mode] = {**BASE, "deepseek": "deepseek"}
#: what the detection endpoints answer (vLLM ``/version``, SGLang ``/get_server_info``, Ollama
#: ``/api/version``, llama.cpp ``/props`` ``build_info``)
VERSIONS = {"vllm": "0.11.0", "sglang": "0.5.4", "ollama": "0.12.6", "llamacpp": "b6700-5e4b1b4"}
#: what dragoman's flavor detection asks (recorded in ``probes``, not ``requests``)
PROBE_PATHS = frozenset(
    {"/v1/models", "/version", "/get_server_info", "/api/version", "/props", "/api/v0/models"}
    | {"/api/show"}
)
#: DeepSeek's thinking-mode errors (api.deepseek.com, exact wording)
DEEPSEEK_PASS_BACK = "The `reasoning_content` in the thinking mode must be passed back to the API."
DEEPSEEK_EFFORT_DISABLED = "thinking options type cannot be disabled when reasoning_effort is set"

DEFAULT_API_KEY = "sk-test-openai-key"
DEFAULT_MODELS: dict[str, tuple[str, ...]] = {
    "vllm": ("qwen3-coder",),
    "openai": ("gpt-4.1", "gpt-4.1-mini", "o4-mini"),
    "ollama": ("qwen3:8b",),
    "deepseek": ("deepseek-v4-pro", "deepseek-v4-flash", "deepseek-chat", "deepseek-reasoner"),
    "sglang": ("Qwen/Qwen3-8B",),
    "llamacpp": ("qwen3-8b-q4_k_m.gguf",),
    "mistral": ("mistral-large-latest", "devstral-medium-latest"),
}
DEFAULT_MAX_MODEL_LEN: dict[str, int] = {
    "vllm": 32768,
    "openai": 128000,
    "ollama": 32768,
    "deepseek": 131072,
    "sglang": 40960,
    "llamacpp": 8192,
    "mistral": 131072,
}
DEFAULT_REASONING_FIELD: dict[str, str] = {
    "vllm": "reasoning",
    "openai": "reasoning",
    "ollama": "reasoning",
    "deepseek": "reasoning_content",
    "sglang": "reasoning_content",
    "llamacpp": "reasoning_content",
    "mistral": "reasoning",
}
DEFAULT_TEXT: dict[str, str] = {
    "vllm": "Hello from fake vLLM",
    "openai": "Hello from fake OpenAI",
    "ollama": "Hello from fake Ollama",
    "deepseek": "Hello from fake DeepSeek",
    "sglang": "Hello from fake SGLang",
    "llamacpp": "Hello from fake llama.cpp",
    "mistral": "Hello from fake Mistral",
}
OWNED_BY = {
    "vllm": "vllm",
    "openai": "system",
    "ollama": "library",
    "deepseek": "deepseek",
    "sglang": "sglang",
    "llamacpp": "llamacpp",
    "mistral": "mistralai",
}
#: what the DeepSeek fake thinks when a reply scripts no reasoning (thinking mode always thinks)
DEEPSEEK_THOUGHT = "Let me think about this."
CREATED = 1_760_000_000


def _names(words: str) -> frozenset[str]:
    """A set of names written as one space-separated string (keeps long lists readable)."""
    return frozenset(words.split())


# api.openai.com's accepted top-level parameters (openai-python completion_create_params)
OPENAI_PARAMS = _names(
    "model messages audio frequency_penalty function_call functions logit_bias logprobs "
    "max_completion_tokens max_tokens metadata modalities moderation n parallel_tool_calls "
    "prediction presence_penalty prompt_cache_key prompt_cache_retention reasoning_effort "
    "response_format safety_identifier seed service_tier stop store stream stream_options "
    "temperature tool_choice tools top_logprobs top_p user verbosity web_search_options"
)
# vLLM's sampling / chat-template extensions (accepted silently)
VLLM_EXTRA_PARAMS = _names(
    "top_k min_p repetition_penalty length_penalty stop_token_ids include_stop_str_in_output "
    "ignore_eos min_tokens skip_special_tokens spaces_between_special_tokens "
    "truncate_prompt_tokens prompt_logprobs allowed_token_ids bad_words echo "
    "add_generation_prompt continue_final_message add_special_tokens documents chat_template "
    "chat_template_kwargs mm_processor_kwargs structured_outputs guided_json guided_regex "
    "guided_choice guided_grammar guided_decoding_backend guided_whitespace_pattern priority "
    "request_id return_tokens_as_token_ids return_token_ids cache_salt kv_transfer_params "
    "vllm_xargs logits_processors use_beam_search thinking_token_budget"
)
OLLAMA_EXTRA_PARAMS = frozenset({"options", "keep_alive", "think", "format"})
# api.mistral.ai chat completion parameters (docs.mistral.ai API reference); anything else is a
# 422 extra_forbidden, stream_options and max_completion_tokens included
MISTRAL_PARAMS = _names(
    "model messages temperature top_p max_tokens stream stop random_seed response_format tools "
    "tool_choice presence_penalty frequency_penalty n prediction parallel_tool_calls "
    "prompt_mode safe_prompt metadata"
)
MISTRAL_MESSAGE_KEYS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}
MISTRAL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")
MESSAGE_KEYS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset(
        {"role", "content", "refusal", "name", "audio", "tool_calls", "function_call"}
    ),
    "tool": frozenset({"role", "content", "tool_call_id"}),
    "function": frozenset({"role", "content", "name"}),
}
PART_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset({"type", "text"}),
    "image_url": frozenset({"type", "image_url"}),
    "input_audio": frozenset({"type", "input_audio"}),
    "file": frozenset({"type", "file"}),
    "refusal": frozenset({"type", "refusal"}),
}
VLLM_PART_TYPES = frozenset({*PART_KEYS, "video_url", "audio_url", "image_pil", "image_embeds"})
ROLES = ("system", "assistant", "user", "function", "tool", "developer")
VLLM_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    413: "RequestEntityTooLargeError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    500: "InternalServerError",
    501: "NotImplementedError",
    503: "ServiceUnavailableError",
}
OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "server_error",
    503: "server_error",
}
OPENAI_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")


def new_chat_id(mode: Mode) -> str:
    if mode == "deepseek":  # a bare UUID
        h = rand_hex(32)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    if mode == "mistral":
        return "cmpl-" + rand_hex(32)
    if mode == "ollama":
        return f"chatcmpl-{int(rand_hex(4), 16) % 1000}"
    if mode == "openai":
        return "chatcmpl-" + rand_b62(29)
    return "chatcmpl-" + rand_hex(32)


def new_tool_call_id(mode: Mode, mistral_ids: bool = False) -> str:
    if mode == "mistral" or mistral_ids:
        return rand_b62(9)  # mistral_common's format: 9 characters [a-zA-Z0-9]
    if mode == "deepseek":
        return "call_00_" + rand_b62(24)
    if mode == "ollama":
        return "call_" + rand_b62(8).lower()
    if mode == "openai":
        return "call_" + rand_b62(24)
    return "chatcmpl-tool-" + rand_hex(32)


# ----------------------------------------------------------------------------- reply types


@dataclass(frozen=True)
class ToolCall:
    id: str | None
    name: str
    arguments: str  # JSON text, exactly as the server sends it


ToolCallSpec = ToolCall | tuple[Any, ...] | Mapping[str, Any]


def _tool_call(spec: ToolCallSpec) -> ToolCall:
    if isinstance(spec, ToolCall):
        return spec
    if isinstance(spec, Mapping):
        args = spec.get("arguments", spec.get("args", "{}"))
        return ToolCall(spec.get("id"), spec["name"], _args_text(args))
    if len(spec) == 3:
        return ToolCall(spec[0], spec[1], _args_text(spec[2]))
    if len(spec) == 2:
        return ToolCall(None, spec[0], _args_text(spec[1]))
    raise ValueError(f"bad tool call spec {spec!r}")


def _args_text(args: Any) -> str:
    return args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)


@dataclass
class ChatReply:
    """A scripted answer for ``/v1/chat/completions`` (also ``/v1/completions``: ``content``).

    ``content``: text (None = the fake's default text when there is no reasoning/tool call);
    ``reasoning``: chain of thought (vLLM/Ollama: in the ``reasoning_field``; dropped in
    openai mode); ``tool_calls``: ``(id | None, name, args)`` / ``(name, args)`` tuples, dicts or
    ``ToolCall`` — ``args`` a JSON string (sent verbatim) or an object; ``finish_reason``:
    default ``tool_calls`` with tool calls (``stop`` in ollama style), else ``stop``;
    ``stop_reason``: vLLM's matched stop string/token on the choice; ``usage``: keys override the
    computed usage (e.g. ``{"prompt_tokens_details": {"cached_tokens": 64}}``).

    ``stream_style`` overrides the fake's mode for the stream shape. Stream knobs as for the
    Anthropic fake: ``text_chunk``/``args_chunk`` sizes, ``first_byte_delay``,
    ``first_event_delay``, ``event_delay``, ``pauses``, ``cut_after`` (+``cut_mode``: no
    ``[DONE]``), ``error_after`` (then ``data: {"error": …}`` and ``data: [DONE]``).
    """

    content: str | None = None
    reasoning: str | None = None
    tool_calls: Sequence[ToolCallSpec] = ()
    finish_reason: str | None = None
    stop_reason: str | int | None = None
    usage: Mapping[str, Any] | None = None
    refusal: str | None = None
    model: str | None = None
    id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    stream_style: Mode | None = None
    text_chunk: int = 8
    args_chunk: int = 10
    first_byte_delay: float = 0.0
    first_event_delay: float = 0.0
    event_delay: float = 0.0
    pauses: Mapping[int, float] = field(default_factory=dict)
    cut_after: int | None = None
    cut_mode: CutMode = "eof"
    error_after: int | None = None
    error_message: str = "The engine encountered an internal error"
    error_type: str | None = None
    error_code: int | str | None = None


@dataclass
class ErrorReply:
    """A scripted HTTP error in the mode's shape (``{"error": {message,type,param,code}}``;
    vLLM: ``type`` like ``BadRequestError`` and integer ``code``). ``body`` replaces the
    standard body (bytes or JSON-able), e.g. an HTML 502 from a proxy."""

    status: int = 500
    message: str = "Internal server error"
    type: str | None = None
    code: int | str | None = None
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    content_type: str = "application/json"
    first_byte_delay: float = 0.0


class OpenAIError(Exception):
    def __init__(
        self,
        message: str,
        status: int = 400,
        *,
        type: str | None = None,
        param: str | None = None,
        code: int | str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.type, self.param, self.code = (
            message,
            status,
            type,
            param,
            code,
        )
        self.body = body


def error_body(
    mode: Mode,
    status: int,
    message: str,
    *,
    type: str | None = None,
    param: str | None = None,
    code: int | str | None = None,
    flat: bool = False,
) -> dict[str, Any]:
    if mode == "vllm":
        # vLLM (engine/protocol.py ErrorResponse{error: ErrorInfo}): "code" is always the integer
        # status; "param" only names the model on 404. vLLM before the ErrorInfo change (up to
        # v0.10) sent the same fields flat, with "object": "error" (``flat``).
        etype = type or VLLM_ERROR_TYPES.get(status, "InternalServerError")
        info = {
            "message": message,
            "type": etype,
            "param": param if status == 404 else None,
            "code": code if isinstance(code, int) else status,
        }
        return {"object": "error", **info} if flat else {"error": info}
    if mode == "ollama":
        etype = type or ("invalid_request_error" if status < 500 else "api_error")
        return {"error": {"message": message, "type": etype, "param": param, "code": code}}
    if mode == "deepseek":  # "code" is "invalid_request_error" whatever the type (401 too)
        etype = type or ("invalid_request_error" if status < 500 else "internal_error")
        dcode = "invalid_request_error" if status < 500 else etype
        return {"error": {"message": message, "type": etype, "param": param, "code": dcode}}
    if mode == "sglang":  # SGLang's ErrorResponse, not wrapped in "error"
        etype = type or VLLM_ERROR_TYPES.get(status, "InternalServerError")
        return {
            "object": "error",
            "message": message,
            "type": etype,
            "param": param,
            "code": status,
        }
    if mode == "llamacpp":
        etype = type or ("invalid_request_error" if status < 500 else "server_error")
        return {"error": {"code": status, "message": message, "type": etype}}
    if mode == "mistral":
        # api.mistral.ai: a flat object; "code" is a string such as "3280" (or null)
        etype = type or ("invalid_request_error" if status < 500 else "internal_error")
        return {"object": "error", "message": message, "type": etype, "param": param, "code": code}
    etype = type or OPENAI_ERROR_TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


# ----------------------------------------------------------------------------- the fake


class FakeOpenAI(FakeUpstream):
    """Options: ``mode`` ("vllm" | "openai" | "ollama" | "deepseek" | "sglang" | "llamacpp" |
    "mistral"); ``api_key`` (None = no auth; the default key is ``DEFAULT_API_KEY`` except for
    ollama); ``models`` / ``accept_any_model``; ``max_model_len`` (also what the detection
    endpoints report: vLLM/SGLang ``max_model_len`` in ``/v1/models``, llama.cpp ``n_ctx`` in
    ``/props``, Ollama ``<arch>.context_length`` in ``/api/show``); ``reasoning_field``
    ("reasoning" or "reasoning_content"; default: the mode's); ``detectable`` (False: no
    detection endpoint, no ``owned_by``/``max_model_len`` that give the server away: one no
    flavor describes); ``strict_system_first``; ``strict_alternation``; ``strict_tool_pairing``
    (api.openai.com's rule and wording; on in openai mode only: vLLM and Ollama do not check
    pairing at the API layer); ``mistral_tokenizer`` (``mistral_common`` request validation: on
    in mistral mode, opt-in for vLLM); ``vllm_flat_errors`` (vLLM up to v0.10's flat
    ``{"object": "error", ...}`` error bodies); ``reject_empty_tools``; ``auto_tool_choice``
    (vLLM ``--enable-auto-tool-choice``); ``emit_stop_reason`` (vLLM's per-choice
    ``stop_reason``); ``validate``."""

    def __init__(
        self,
        mode: Mode = "vllm",
        *,
        api_key: str | None = DEFAULT_API_KEY,
        models: Sequence[str] | None = None,
        accept_any_model: bool = False,
        max_model_len: int | None = None,
        reasoning_field: str | None = None,
        strict_system_first: bool | None = None,
        strict_alternation: bool = False,
        strict_tool_pairing: bool | None = None,
        mistral_tokenizer: bool | None = None,
        vllm_flat_errors: bool = False,
        reject_empty_tools: bool = True,
        auto_tool_choice: bool = True,
        emit_stop_reason: bool | None = None,
        validate: bool = True,
        default_text: str | None = None,
        detectable: bool = True,
        responses: bool | None = None,
    ) -> None:
        super().__init__()
        if mode not in BASE:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode: Mode = mode
        #: validation rules and error wording follow this mode (see BASE)
        self.base: Mode = BASE[mode]
        self.detectable = detectable
        #: detection probes (``PROBE_PATHS``), kept apart from ``requests``
        self.probes: list[RecordedRequest] = []
        self.api_key = api_key
        self.models = list(models if models is not None else DEFAULT_MODELS[mode])
        self.accept_any_model = accept_any_model
        self.max_model_len = max_model_len or DEFAULT_MAX_MODEL_LEN[mode]
        self.reasoning_field = reasoning_field or DEFAULT_REASONING_FIELD[mode]
        self.strict_system_first = (
            self.base == "vllm" and mode != "deepseek"
            if strict_system_first is None
            else strict_system_first
        )
        self.strict_alternation = strict_alternation
        self.strict_tool_pairing = (
            mode == "openai" if strict_tool_pairing is None else strict_tool_pairing
        )
        self.mistral_tokenizer = (
            mode == "mistral" if mistral_tokenizer is None else mistral_tokenizer
        )
        self.vllm_flat_errors = vllm_flat_errors
        self.reject_empty_tools = reject_empty_tools
        self.auto_tool_choice = auto_tool_choice
        self.emit_stop_reason = mode == "vllm" if emit_stop_reason is None else emit_stop_reason
        self.validate = validate
        self.default_text = default_text or DEFAULT_TEXT[mode]
        #: serves ``POST /v1/responses`` (default: the modes whose real server does)
        self.responses = (
            mode in openai_responses.SERVES_RESPONSES if responses is None else responses
        )
        #: stored responses and issued reasoning blobs (cleared by ``reset``)
        self.responses_state = openai_responses.ResponsesState()

    # ------------------------------------------------------------------ helpers for tests
    def count_prompt_tokens(self, body: Mapping[str, Any]) -> int:
        """The ``prompt_tokens`` this fake reports for a chat body (and ``/tokenize`` count)."""
        return tokens.openai_prompt_tokens(list(body.get("messages") or []), body.get("tools"))

    @property
    def base_url(self) -> str:
        """``url + "/v1"``, what ``openai.OpenAI(base_url=...)`` wants."""
        return self.url + "/v1"

    # ------------------------------------------------------------------ app
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._middleware])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_get("/v1/models", self._list_models)
        if self.mode == "vllm":
            app.router.add_post("/tokenize", self._tokenize)
            app.router.add_get("/health", self._health)
        else:
            app.router.add_get("/v1/models/{model_id}", self._get_model)
        if self.mode == "ollama":
            app.router.add_get("/", self._ollama_root)
        if self.detectable:
            if self.mode == "vllm":
                app.router.add_get("/version", self._version)
            elif self.mode == "sglang":
                app.router.add_get("/get_server_info", self._sglang_server_info)
                app.router.add_get("/health", self._health)
            elif self.mode == "ollama":
                app.router.add_get("/api/version", self._version)
                app.router.add_post("/api/show", self._ollama_show)
            elif self.mode == "llamacpp":
                app.router.add_get("/props", self._llamacpp_props)
                app.router.add_get("/health", self._health)
        return app

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.probes.clear()
        self.responses_state.clear()

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await openai_responses.handle_responses(self, request)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        rec = await record(request)
        request[RECORDED] = rec
        if request.path in PROBE_PATHS:
            with self._lock:
                self.probes.append(rec)
        else:
            self._record(rec)
        try:
            resp = await handler(request)
        except OpenAIError as exc:
            resp = self._error_response(exc)
        except web.HTTPException as exc:
            resp = self._http_exception(request, exc)
        rec.status = resp.status
        return resp

    def _error_response(
        self, exc: OpenAIError, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        body = exc.body
        if body is None:
            body = error_body(
                self.mode,
                exc.status,
                exc.message,
                type=exc.type,
                param=exc.param,
                code=exc.code,
                flat=self.vllm_flat_errors,
            )
        resp = web.Response(
            status=exc.status, body=orjson.dumps(body), content_type="application/json"
        )
        if self.mode == "openai":
            resp.headers["x-request-id"] = "req_" + rand_hex(32)
        resp.headers.update(headers or {})
        return resp

    def _http_exception(self, request: web.Request, exc: web.HTTPException) -> web.Response:
        if (self.base == "vllm" and self.mode != "deepseek") or self.mode == "mistral":
            detail = "Not Found" if exc.status == 404 else "Method Not Allowed"
            return web.Response(
                status=exc.status,
                body=orjson.dumps({"detail": detail}),
                content_type="application/json",
            )
        if self.mode == "ollama":
            return web.Response(status=exc.status, text="404 page not found")
        return self._error_response(
            OpenAIError(f"Invalid URL ({request.method} {request.path})", exc.status)
        )

    def _check_auth(self, request: web.Request) -> None:
        if self.api_key is None or self.mode == "ollama":
            return
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if token == self.api_key:
            return
        if self.mode == "deepseek":
            raise OpenAIError(
                f"Authentication Fails, Your api key: ****{token[-4:]} is invalid"
                if token
                else "Authentication Fails (auth header format should be Bearer sk-...)",
                401,
                type="authentication_error",
            )
        if self.base == "vllm":
            raise OpenAIError("Unauthorized", 401, body={"error": "Unauthorized"})
        if self.mode == "mistral":
            raise OpenAIError(
                "Unauthorized", 401, body={"message": "Unauthorized", "request_id": rand_hex(32)}
            )
        if token is None:
            raise OpenAIError(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                401,
            )
        shown = f"{token[:3]}*****{token[-4:]}" if len(token) > 8 else "*****"
        raise OpenAIError(
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            401,
            code="invalid_api_key",
        )

    def _body(self, request: web.Request) -> dict[str, Any]:
        rec: RecordedRequest = request[RECORDED]
        if not isinstance(rec.body, dict):
            if self.mode == "openai":
                raise OpenAIError(
                    "We could not parse the JSON body of your request. (HINT: This likely means "
                    "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                    "payload, but what was sent was not valid JSON.)"
                )
            raise OpenAIError("JSON decode error: expected a JSON object")
        return rec.body

    def _check_model(self, model: Any) -> None:
        if self.accept_any_model or model in self.models:
            return
        if self.mode == "deepseek":
            raise OpenAIError("Model Not Exist")
        if self.base == "vllm":
            raise OpenAIError(f"The model `{model}` does not exist.", 404, param="model")
        if self.mode == "ollama":
            raise OpenAIError(
                f'model "{model}" not found, try pulling it first', 404, type="api_error"
            )
        if self.mode == "mistral":
            raise OpenAIError(f"Invalid model: {model}", 400, type="invalid_model", code="1500")
        raise OpenAIError(
            f"The model `{model}` does not exist or you do not have access to it.",
            404,
            code="model_not_found",
        )

    # ------------------------------------------------------------------ chat
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self._check_auth(request)
        body = self._body(request)
        rec: RecordedRequest = request[RECORDED]
        if self.validate:
            self._validate_chat(body, rec)
        prompt_tokens = self.count_prompt_tokens(body)
        if self.validate and self.mode not in ("ollama", "mistral"):
            self._check_context(prompt_tokens, body)
        reply = self._pop_reply(rec)
        if reply is None:
            reply = self._default_reply(body)
        if isinstance(reply, ErrorReply):
            return await self._send_error_reply(reply)
        if isinstance(reply, RawStream):
            return await replay_raw(request, reply, {})
        if not isinstance(reply, ChatReply):
            raise TypeError(f"cannot answer with {reply!r}")
        style: Mode = reply.stream_style or STYLE[self.mode]
        calls = [_tool_call(t) for t in reply.tool_calls]
        calls = [
            c
            if c.id
            else ToolCall(new_tool_call_id(style, self.mistral_tokenizer), c.name, c.arguments)
            for c in calls
        ]
        content = reply.content
        reasoning = reply.reasoning
        if self.mode == "deepseek":
            # thinking mode always thinks; the other mode never shows any
            reasoning = (reasoning or DEEPSEEK_THOUGHT) if _deepseek_thinks(body) else None
        if content is None and not calls and reasoning is None and reply.refusal is None:
            content = self.default_text
        finish = reply.finish_reason or ("tool_calls" if calls and style != "ollama" else "stop")
        completion_tokens = (
            tokens.count_text(content or "")
            + tokens.count_text(reasoning or "")
            + sum(tokens.count_text(c.name) + tokens.count_text(c.arguments) for c in calls)
        )
        usage = self._usage(style, prompt_tokens, completion_tokens, reply.usage)
        model = reply.model or body.get("model")
        chat_id = reply.id or new_chat_id(style)
        created = int(time.time())
        headers = dict(reply.headers)
        if self.mode == "openai":
            headers.setdefault("x-request-id", "req_" + rand_hex(32))
        if body.get("stream"):
            opts = body.get("stream_options") or {}
            chunks = stream_chunks(
                style=style,
                chat_id=chat_id,
                created=created,
                model=model,
                content=content,
                reasoning=reasoning,
                reasoning_field=self.reasoning_field,
                refusal=reply.refusal,
                tool_calls=calls,
                finish_reason=finish,
                stop_reason=reply.stop_reason if self.emit_stop_reason else _OMIT,
                usage=usage,
                include_usage=bool(opts.get("include_usage")),
                continuous_usage=bool(opts.get("continuous_usage_stats")) and style == "vllm",
                text_chunk=reply.text_chunk,
                args_chunk=reply.args_chunk,
            )
            frames = [openai_frame(c) for c in chunks] + [OPENAI_DONE]
            err = error_body(
                style,
                500,
                reply.error_message,
                type=reply.error_type,
                code=reply.error_code,
                flat=self.vllm_flat_errors,
            )
            plan = StreamPlan(
                frames=frames,
                first_byte_delay=reply.first_byte_delay,
                first_event_delay=reply.first_event_delay,
                event_delay=reply.event_delay,
                pauses=reply.pauses,
                cut_after=reply.cut_after,
                cut_mode=reply.cut_mode,
                error_after=reply.error_after,
                error_frames=[openai_frame(err), OPENAI_DONE],
            )
            return await write_stream(request, plan, headers=headers)
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        payload = chat_completion(
            style=style,
            chat_id=chat_id,
            created=created,
            model=model,
            content=content,
            reasoning=reasoning,
            reasoning_field=self.reasoning_field,
            refusal=reply.refusal,
            tool_calls=calls,
            finish_reason=finish,
            stop_reason=reply.stop_reason if self.emit_stop_reason else _OMIT,
            usage=usage,
        )
        resp = web.Response(body=orjson.dumps(payload), content_type="application/json")
        resp.headers.update(headers)
        return resp

    def _usage(
        self, style: Mode, prompt: int, completion: int, override: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if style == "vllm":
            usage["prompt_tokens_details"] = None
        elif style == "deepseek":
            usage["prompt_tokens_details"] = {"cached_tokens": 0}
            usage["prompt_cache_hit_tokens"] = 0
            usage["prompt_cache_miss_tokens"] = prompt
        elif style == "openai":
            usage["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
            usage["completion_tokens_details"] = {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            }
        if override:
            usage.update(override)
            if "total_tokens" not in override:
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return usage

    def _default_reply(self, body: Mapping[str, Any]) -> ChatReply:
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        text, finish = _truncate(self.default_text, limit)
        return ChatReply(content=text, finish_reason=finish)

    async def _send_error_reply(self, reply: ErrorReply) -> web.Response:
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        if reply.body is not None:
            raw = reply.body if isinstance(reply.body, bytes) else orjson.dumps(reply.body)
            resp = web.Response(status=reply.status, body=raw)
            resp.headers["Content-Type"] = reply.content_type
            resp.headers.update(reply.headers)
            return resp
        exc = OpenAIError(
            reply.message, reply.status, type=reply.type, param=reply.param, code=reply.code
        )
        return self._error_response(exc, reply.headers)

    # ------------------------------------------------------------------ validation
    def _validate_chat(self, body: dict[str, Any], rec: RecordedRequest) -> None:
        mode = self.base
        if mode == "openai":
            for key in body:
                if key not in OPENAI_PARAMS:
                    raise OpenAIError(f"Unrecognized request argument supplied: {key}")
            _openai_model_family_rules(body)
        elif mode == "mistral":
            _mistral_extra_params(body)
        else:
            known = OPENAI_PARAMS | VLLM_EXTRA_PARAMS | OLLAMA_EXTRA_PARAMS
            ignored = sorted(k for k in body if k not in known)
            if ignored:
                rec.notes.append(
                    "The following fields were present in the request but ignored: "
                    + str(set(ignored))
                )
        if "model" not in body:
            if mode == "openai":
                raise OpenAIError("you must provide a model parameter")
            raise OpenAIError(_pydantic_missing("model"))
        if "messages" not in body:
            if mode == "openai":
                raise OpenAIError(
                    "Missing required parameter: 'messages'.",
                    param="messages",
                    code="missing_required_parameter",
                )
            raise OpenAIError(_pydantic_missing("messages"))
        self._check_model(body["model"])
        messages = body["messages"]
        if not isinstance(messages, list):
            raise OpenAIError(
                f"Invalid type for 'messages': expected an array, but got {_jtype(messages)} "
                "instead.",
                param="messages",
                code="invalid_type",
            )
        if not messages:
            raise OpenAIError("[] is too short - 'messages'", param="messages", code="empty_array")
        if (
            "stream_options" in body
            and body["stream_options"] is not None
            and not body.get("stream")
        ):
            if mode == "openai":
                raise OpenAIError(
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    param="stream_options",
                    code="invalid_value",
                )
            raise OpenAIError("Stream options can only be defined when `stream=True`.")
        for key in ("max_tokens", "max_completion_tokens"):
            value = body.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise OpenAIError(
                    f"Invalid type for '{key}': expected an integer, but got {_jtype(value)} "
                    "instead.",
                    param=key,
                    code="invalid_type",
                )
            if isinstance(value, int) and value < 1:
                raise OpenAIError(
                    f"Invalid '{key}': integer below minimum value. Expected a value >= 1, but "
                    f"got {value} instead."
                    if mode == "openai"
                    else f"max_tokens must be at least 1, got {value}.",
                    param=key,
                )
        temperature = body.get("temperature")
        if isinstance(temperature, int | float) and not 0 <= temperature <= 2:
            raise OpenAIError(
                f"Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but "
                f"got {temperature} instead.",
                param="temperature",
                code="decimal_above_max_value",
            )
        tools = body.get("tools")
        self._validate_tools(tools)
        self._validate_tool_choice(body.get("tool_choice"), tools)
        self._validate_response_format(body.get("response_format"))
        self._validate_messages(messages)
        if self.mode == "deepseek":
            _validate_deepseek_thinking(body, messages)
        if self.mistral_tokenizer:
            self._validate_mistral(body, messages)

    def _mistral_error(self, message: str, etype: str, code: str) -> OpenAIError:
        if self.mode == "mistral":
            return OpenAIError(message, 400, type=etype, code=code)
        return OpenAIError(message, 400)  # vLLM: BadRequestError, code 400

    def _validate_mistral(self, body: dict[str, Any], messages: list[Any]) -> None:
        """``mistral_common``'s request validator (MistralRequestValidatorV3+, serving mode):
        message structure first, then each message's content."""
        order = "invalid_request_message_order", "3230"
        if len(messages) == 1 and messages[0]["role"] not in ("user", "system"):
            raise self._mistral_error(
                "Conversation must start with a user message or system message", *order
            )
        last = messages[-1]
        if len(messages) > 1 and last["role"] not in ("user", "tool"):
            prefixed = last["role"] == "assistant" and (
                last.get("prefix") or body.get("continue_final_message")
            )
            if not prefixed:
                raise self._mistral_error(
                    "Expected last role User or Tool (or Assistant with prefix or "
                    "continue_final_message set to True) for serving but got "
                    f"{last['role']}",
                    *order,
                )
        follows = {
            "system": {"user", "assistant", "system"},
            "user": {"assistant", "system", "user"},
            "assistant": {"assistant", "user", "tool"},
            "tool": {"assistant", "tool"},
        }
        prev: str | None = None
        for m in messages:
            role = m["role"]
            if prev is not None and role not in follows.get(prev, set()):
                raise self._mistral_error(f"Unexpected role '{role}' after role '{prev}'", *order)
            prev = role
        expected = 0
        for i, m in enumerate(messages):
            if i == 0:
                continue
            if m["role"] == "tool":
                expected -= 1
            elif m["role"] == "assistant":
                if expected != 0:
                    raise self._mistral_error(
                        "Not the same number of function calls and responses", *order
                    )
                expected = len(m.get("tool_calls") or [])
        if expected != 0:
            raise self._mistral_error("Not the same number of function calls and responses", *order)
        bad_id = "invalid_function_call", "3280"
        for m in messages:
            ids: list[Any] = []
            if m["role"] == "assistant":
                ids = [c.get("id") for c in m.get("tool_calls") or [] if isinstance(c, dict)]
            elif m["role"] == "tool":
                ids = [m.get("tool_call_id")]
            for tid in ids:
                if not isinstance(tid, str) or not MISTRAL_ID.match(tid):
                    raise self._mistral_error(
                        f"Tool call id was {tid} but must be a-z, A-Z, 0-9, with a length of 9.",
                        *bad_id,
                    )

    def _validate_tools(self, tools: Any) -> None:
        if tools is None:
            return
        if not isinstance(tools, list):
            raise OpenAIError("Invalid type for 'tools': expected an array.", param="tools")
        if not tools and self.reject_empty_tools:
            raise OpenAIError("[] is too short - 'tools'", param="tools", code="empty_array")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or tool.get("type", "function") != "function":
                raise OpenAIError(
                    f"Invalid value: '{tool.get('type') if isinstance(tool, dict) else tool}'. "
                    "Supported values are: 'function' and 'custom'.",
                    param=f"tools[{i}].type",
                    code="invalid_value",
                )
            fn = tool.get("function")
            if not isinstance(fn, dict) or "name" not in fn:
                raise OpenAIError(
                    f"Missing required parameter: 'tools[{i}].function'.",
                    param=f"tools[{i}].function",
                    code="missing_required_parameter",
                )
            if self.mode == "openai":
                _additional(tool, frozenset({"type", "function"}), f"tools.{i}")
                _additional(
                    fn,
                    frozenset({"name", "description", "parameters", "strict"}),
                    f"tools.{i}.function",
                )
                name = fn["name"]
                if not isinstance(name, str) or not OPENAI_TOOL_NAME.match(name):
                    raise OpenAIError(
                        f"Invalid 'tools[{i}].function.name': string does not match pattern. "
                        "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                        param=f"tools[{i}].function.name",
                        code="invalid_value",
                    )
                if len(name) > 64:
                    raise OpenAIError(
                        f"Invalid 'tools[{i}].function.name': string too long. Expected a string "
                        f"with maximum length 64, but got a string with length {len(name)} "
                        "instead.",
                        param=f"tools[{i}].function.name",
                        code="string_above_max_length",
                    )
            params = fn.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise OpenAIError(
                    f"Invalid type for 'tools[{i}].function.parameters': expected an object.",
                    param=f"tools[{i}].function.parameters",
                )

    def _validate_tool_choice(self, choice: Any, tools: Any) -> None:
        if choice is None:
            if tools and self.base == "vllm" and not self.auto_tool_choice:
                choice = "auto"
            else:
                return
        if not tools and choice != "none":
            if self.mode == "openai":
                raise OpenAIError(
                    "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                    "are specified.",
                    param="tool_choice",
                )
            if self.base == "vllm":
                raise OpenAIError("When using `tool_choice`, `tools` must be set.")
        if isinstance(choice, str):
            if choice not in ("none", "auto", "required"):
                raise OpenAIError(
                    f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and "
                    "'required'.",
                    param="tool_choice",
                    code="invalid_value",
                )
            if choice == "auto" and self.base == "vllm" and not self.auto_tool_choice:
                raise OpenAIError(
                    '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser '
                    "to be set"
                )
            return
        if not isinstance(choice, dict) or choice.get("type") not in (
            "function",
            "allowed_tools",
            "custom",
        ):
            raise OpenAIError("Invalid value for 'tool_choice'.", param="tool_choice")
        if choice["type"] == "function":
            fn = choice.get("function")
            name = fn.get("name") if isinstance(fn, dict) else None
            if not isinstance(name, str):  # what api.openai.com says of a malformed choice
                raise OpenAIError("Invalid value for 'tool_choice'.", param="tool_choice")
            names = {
                n
                for t in tools or []
                if isinstance(t, dict) and isinstance(t.get("function"), dict)
                for n in [t["function"].get("name")]
                if isinstance(n, str)
            }
            if name not in names:
                raise OpenAIError(
                    f"Tool choice '{name}' not found in 'tools' parameter."
                    if self.mode == "openai"
                    else f"Tool '{name}' has not been passed in `tools`.",
                    param="tool_choice",
                )

    def _validate_response_format(self, fmt: Any) -> None:
        if fmt is None:
            return
        if not isinstance(fmt, dict) or fmt.get("type") not in (
            "text",
            "json_object",
            "json_schema",
        ):
            raise OpenAIError(
                "Invalid value for 'response_format.type': expected one of 'text', "
                "'json_object', 'json_schema'.",
                param="response_format.type",
                code="invalid_value",
            )
        if fmt["type"] == "json_schema":
            js = fmt.get("json_schema")
            if not isinstance(js, dict):
                raise OpenAIError(
                    "Missing required parameter: 'response_format.json_schema'.",
                    param="response_format.json_schema",
                    code="missing_required_parameter",
                )
            if "name" not in js:
                raise OpenAIError(
                    "Missing required parameter: 'response_format.json_schema.name'.",
                    param="response_format.json_schema.name",
                    code="missing_required_parameter",
                )

    def _validate_messages(self, messages: list[Any]) -> None:
        mode = self.base
        for i, msg in enumerate(messages):
            loc = f"messages.[{i}]"
            if not isinstance(msg, dict):
                raise OpenAIError(
                    f"Invalid type for '{loc}': expected an object, but got {_jtype(msg)} instead.",
                    param=loc,
                    code="invalid_type",
                )
            role = msg.get("role")
            if role is None:
                raise OpenAIError(
                    f"Missing required parameter: 'messages[{i}].role'.",
                    param=f"messages[{i}].role",
                    code="missing_required_parameter",
                )
            if role not in ROLES:
                raise OpenAIError(
                    f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                    "'user', 'function', 'tool', and 'developer'.",
                    param=f"messages[{i}].role",
                    code="invalid_value",
                )
            if mode == "openai":
                _additional(msg, MESSAGE_KEYS[role], f"messages.{i}")
            elif mode == "mistral":
                _mistral_extra_keys(msg, i, role)
            content = msg.get("content")
            if role == "assistant":
                if content is None and not msg.get("tool_calls") and not msg.get("function_call"):
                    raise OpenAIError(
                        "Invalid value for 'content': expected a string, got null.",
                        param=f"{loc}.content",
                    )
                self._validate_tool_calls(msg.get("tool_calls"), loc)
            elif "content" not in msg and role != "function":
                raise OpenAIError(
                    f"Missing required parameter: 'messages[{i}].content'.",
                    param=f"messages[{i}].content",
                    code="missing_required_parameter",
                )
            elif content is None:
                raise OpenAIError(
                    "Invalid value for 'content': expected a string, got null.",
                    param=f"{loc}.content",
                )
            if role == "tool" and "tool_call_id" not in msg:
                raise OpenAIError(
                    f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                    param=f"messages[{i}].tool_call_id",
                    code="missing_required_parameter",
                )
            if isinstance(content, list):
                for j, part in enumerate(content):
                    self._validate_part(part, f"{loc}.content.[{j}]", f"messages.{i}.content.{j}")
            elif content is not None and not isinstance(content, str):
                raise OpenAIError(
                    f"Invalid type for '{loc}.content': expected one of a string or array of "
                    f"objects, but got {_jtype(content)} instead.",
                    param=f"{loc}.content",
                    code="invalid_type",
                )
        if self.strict_tool_pairing:
            _check_tool_pairing(messages)
        if self.strict_system_first:
            for i, msg in enumerate(messages):
                if msg["role"] == "system" and i > 0:
                    raise OpenAIError("System message must be at the beginning.")
        if self.strict_alternation:
            prev: str | None = None
            for msg in messages:
                role = msg["role"]
                if role in ("user", "assistant"):
                    if role == prev:
                        raise OpenAIError(
                            "Conversation roles must alternate user/assistant/user/assistant/..."
                        )
                    prev = role
                elif role == "tool":
                    prev = "tool"

    def _validate_tool_calls(self, calls: Any, loc: str) -> None:
        if calls is None:
            return
        if not isinstance(calls, list):
            raise OpenAIError(
                f"Invalid type for '{loc}.tool_calls': expected an array.",
                param=f"{loc}.tool_calls",
            )
        for k, call in enumerate(calls):
            cloc = f"{loc}.tool_calls.[{k}]"
            if not isinstance(call, dict):
                raise OpenAIError(f"Invalid type for '{cloc}'.", param=cloc)
            if self.mode == "openai":
                _additional(call, frozenset({"id", "type", "function"}), cloc)
            for key in ("id", "type", "function"):
                if key not in call:
                    raise OpenAIError(
                        f"Missing required parameter: '{cloc}.{key}'.",
                        param=f"{cloc}.{key}",
                        code="missing_required_parameter",
                    )
            fn = call["function"]
            if not isinstance(fn, dict) or "name" not in fn or "arguments" not in fn:
                raise OpenAIError(
                    f"Missing required parameter: '{cloc}.function.arguments'.",
                    param=f"{cloc}.function.arguments",
                    code="missing_required_parameter",
                )
            if not isinstance(fn["arguments"], str):
                raise OpenAIError(
                    f"Invalid type for '{cloc}.function.arguments': expected a string, but got "
                    f"{_jtype(fn['arguments'])} instead.",
                    param=f"{cloc}.function.arguments",
                    code="invalid_type",
                )

    def _validate_part(self, part: Any, loc: str, dotted: str) -> None:
        if not isinstance(part, dict) or "type" not in part:
            raise OpenAIError(
                f"Missing required parameter: '{loc}.type'.",
                param=f"{loc}.type",
                code="missing_required_parameter",
            )
        kind = part["type"]
        allowed = PART_KEYS if self.mode == "openai" else VLLM_PART_TYPES
        if kind not in allowed:
            raise OpenAIError(
                f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url', "
                "'input_audio', 'refusal', and 'file'."
                if self.mode == "openai"
                else f"Unknown part type: {kind}",
                param=f"{loc}.type",
                code="invalid_value",
            )
        if self.mode == "openai":
            _additional(part, PART_KEYS[kind], dotted)
        if kind == "text" and not isinstance(part.get("text"), str):
            raise OpenAIError(
                f"Missing required parameter: '{loc}.text'.",
                param=f"{loc}.text",
                code="missing_required_parameter",
            )

    def _check_context(self, prompt: int, body: Mapping[str, Any]) -> None:
        limit = self.max_model_len
        requested = body.get("max_completion_tokens") or body.get("max_tokens")
        if self.mode == "llamacpp":  # only the prompt is checked; generation stops at n_ctx
            if prompt > limit:
                raise OpenAIError(
                    f"request ({prompt} tokens) exceeds the available context size ({limit} "
                    "tokens), try increasing it",
                    type="exceed_context_size_error",
                )
            return
        if self.mode == "sglang":
            total = prompt + (requested if isinstance(requested, int) else 0)
            if total > limit:
                raise OpenAIError(
                    f"Requested token count exceeds the model's maximum context length of {limit} "
                    f"tokens. You requested a total of {total} tokens: {prompt} tokens from the "
                    f"input messages and {total - prompt} tokens for the completion. Please "
                    "reduce the number of tokens in the input messages or the completion to fit "
                    "within the limit."
                )
            return
        if self.mode == "vllm":
            if prompt > limit:
                raise OpenAIError(
                    f"This model's maximum context length is {limit} tokens. However, your "
                    f"request has {prompt} input tokens. Please reduce the length of the input "
                    "messages. None"
                )
            if isinstance(requested, int) and prompt + requested > limit:
                raise OpenAIError(
                    f"'max_tokens' or 'max_completion_tokens' is too large: {requested}. This "
                    f"model's maximum context length is {limit} tokens and your request has "
                    f"{prompt} input tokens ({requested} > {limit} - {prompt}). None"
                )
            return
        if prompt > limit:
            raise OpenAIError(
                f"This model's maximum context length is {limit} tokens. However, your messages "
                f"resulted in {prompt} tokens. Please reduce the length of the messages.",
                param="messages",
                code="context_length_exceeded",
            )
        if isinstance(requested, int) and prompt + requested > limit:
            raise OpenAIError(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{prompt + requested} tokens ({prompt} in the messages, {requested} in the "
                "completion). Please reduce the length of the messages or completion.",
                param="messages",
                code="context_length_exceeded",
            )

    # ------------------------------------------------------------------ legacy completions
    async def _completions(self, request: web.Request) -> web.StreamResponse:
        self._check_auth(request)
        body = self._body(request)
        rec: RecordedRequest = request[RECORDED]
        if "model" not in body:
            raise OpenAIError(
                "you must provide a model parameter"
                if self.mode == "openai"
                else _pydantic_missing("model")
            )
        self._check_model(body["model"])
        if "prompt" not in body:
            raise OpenAIError(
                "Missing required parameter: 'prompt'."
                if self.mode == "openai"
                else "Either prompt or prompt_embeds must be provided and non-empty.",
                param="prompt",
            )
        prompt_tokens = tokens.openai_completion_prompt_tokens(body["prompt"])
        max_tokens = body.get("max_tokens", 16)
        if (
            self.base == "vllm"
            and isinstance(max_tokens, int)
            and prompt_tokens + max_tokens > self.max_model_len
        ):
            raise OpenAIError(
                f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This "
                f"model's maximum context length is {self.max_model_len} tokens and your "
                f"request has {prompt_tokens} input tokens ({max_tokens} > "
                f"{self.max_model_len} - {prompt_tokens}). None"
            )
        reply = self._pop_reply(rec)
        if reply is None:
            text, finish = _truncate(self.default_text, max_tokens)
            reply = ChatReply(content=text, finish_reason=finish)
        if isinstance(reply, ErrorReply):
            return await self._send_error_reply(reply)
        if isinstance(reply, RawStream):
            return await replay_raw(request, reply, {})
        text = reply.content or ""
        finish = reply.finish_reason or "stop"
        usage = self._usage(
            "vllm" if self.base == "vllm" else "ollama",
            prompt_tokens,
            tokens.count_text(text),
            reply.usage,
        )
        usage.pop("prompt_tokens_details", None)
        cmpl_id = reply.id or "cmpl-" + rand_hex(32)
        created = int(time.time())
        model = body["model"]
        extra: dict[str, Any] = {"stop_reason": reply.stop_reason} if self.emit_stop_reason else {}
        if not body.get("stream"):
            payload = {
                "id": cmpl_id,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, **extra}
                ],
                "usage": usage,
            }
            return web.Response(body=orjson.dumps(payload), content_type="application/json")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": cmpl_id, "object": "text_completion", "created": created, "model": model}
        chunks: list[dict[str, Any]] = []
        for piece in split_text(text, reply.text_chunk):
            chunks.append(
                {
                    **base,
                    "choices": [
                        {"index": 0, "text": piece, "logprobs": None, "finish_reason": None}
                    ],
                }
            )
        chunks.append(
            {
                **base,
                "choices": [
                    {"index": 0, "text": "", "logprobs": None, "finish_reason": finish, **extra}
                ],
            }
        )
        if include_usage:
            for c in chunks:
                c["usage"] = None
            chunks.append({**base, "choices": [], "usage": usage})
        plan = StreamPlan(frames=[openai_frame(c) for c in chunks] + [OPENAI_DONE])
        return await write_stream(request, plan)

    # ------------------------------------------------------------------ models, tokenize
    def _model_obj(self, model_id: str) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": model_id,
            "object": "model",
            "created": CREATED,
            "owned_by": OWNED_BY[self.mode] if self.detectable else "organization",
        }
        if not self.detectable:
            return obj
        if self.mode == "sglang":
            obj.update(root=model_id, parent=None, max_model_len=self.max_model_len)
        elif self.mode == "llamacpp":
            obj["meta"] = {"vocab_type": 2, "n_vocab": 151936, "n_ctx_train": 40960}
        elif self.mode == "vllm":
            obj.update(
                root=model_id,
                parent=None,
                max_model_len=self.max_model_len,
                permission=[
                    {
                        "id": "modelperm-" + rand_hex(32),
                        "object": "model_permission",
                        "created": CREATED,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            )
        return obj

    async def _list_models(self, request: web.Request) -> web.Response:
        self._check_auth(request)
        body = {"object": "list", "data": [self._model_obj(m) for m in self.models]}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _get_model(self, request: web.Request) -> web.Response:
        self._check_auth(request)
        model_id = request.match_info["model_id"]
        self._check_model(model_id)
        return web.Response(
            body=orjson.dumps(self._model_obj(model_id)), content_type="application/json"
        )

    async def _tokenize(self, request: web.Request) -> web.Response:
        body = self._body(request)
        if "model" in body and body["model"] is not None:
            self._check_model(body["model"])
        if "messages" in body:
            messages = body["messages"]
            if not isinstance(messages, list):
                raise OpenAIError(_pydantic_missing("messages"))
            if self.validate:
                for i, msg in enumerate(messages):
                    role = msg.get("role") if isinstance(msg, dict) else None
                    if role not in ROLES:
                        raise OpenAIError(f"Invalid role {role!r} in messages.{i}")
                    if self.strict_system_first and role == "system" and i > 0:
                        raise OpenAIError("System message must be at the beginning.")
            count = tokens.openai_prompt_tokens(
                messages,
                body.get("tools"),
                add_generation_prompt=body.get("add_generation_prompt", True),
            )
        elif "prompt" in body:
            count = tokens.openai_completion_prompt_tokens(body["prompt"])
        else:
            raise OpenAIError(_pydantic_missing("prompt"))
        result = {
            "count": count,
            "max_model_len": self.max_model_len,
            "tokens": tokens.fake_token_ids(count, str(body.get("model", ""))),
            "token_strs": None,
        }
        return web.Response(body=orjson.dumps(result), content_type="application/json")

    async def _health(self, request: web.Request) -> web.Response:
        if self.mode == "llamacpp":
            return web.json_response({"status": "ok"})
        return web.Response(status=200)

    # ------------------------------------------------------------------ detection endpoints
    async def _version(self, request: web.Request) -> web.Response:
        """vLLM ``GET /version``, Ollama ``GET /api/version``: ``{"version": ...}``."""
        return web.json_response({"version": VERSIONS[self.mode]})

    async def _sglang_server_info(self, request: web.Request) -> web.Response:
        """SGLang ``GET /get_server_info``: its server args plus a few live figures."""
        return web.json_response(
            {
                "model_path": self.models[0],
                "tokenizer_path": self.models[0],
                "host": "0.0.0.0",
                "port": 30000,
                "context_length": self.max_model_len,
                "tp_size": 1,
                "reasoning_parser": "qwen3",
                "tool_call_parser": "qwen25",
                "version": VERSIONS["sglang"],
                "internal_states": [{"last_gen_throughput": 0.0}],
            }
        )

    async def _llamacpp_props(self, request: web.Request) -> web.Response:
        """llama.cpp ``GET /props``: ``n_ctx`` is the per-slot context size."""
        return web.json_response(
            {
                "default_generation_settings": {
                    "id": 0,
                    "n_ctx": self.max_model_len,
                    "speculative": False,
                    "is_processing": False,
                    "params": {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "n_predict": -1},
                },
                "total_slots": 1,
                "model_path": "/models/" + self.models[0],
                "chat_template": "{%- for message in messages %}...{%- endfor %}",
                "modalities": {"vision": False, "audio": False},
                "build_info": VERSIONS["llamacpp"],
            }
        )

    async def _ollama_show(self, request: web.Request) -> web.Response:
        """Ollama ``POST /api/show``: the model's build-time context length in ``model_info``."""
        body = self._body(request)
        name = body.get("model") or body.get("name")
        if not self.accept_any_model and name not in self.models:
            return web.json_response({"error": f"model '{name}' not found"}, status=404)
        return web.json_response(
            {
                "modelfile": f"FROM {name}\n",
                "parameters": 'stop "<|im_start|>"\nstop "<|im_end|>"\ntemperature 0.6',
                "template": "{{- range .Messages }}...{{- end }}",
                "details": {
                    "format": "gguf",
                    "family": "qwen3",
                    "parameter_size": "8.2B",
                    "quantization_level": "Q4_K_M",
                },
                "model_info": {
                    "general.architecture": "qwen3",
                    "general.parameter_count": 8190735360,
                    "qwen3.context_length": self.max_model_len,
                    "qwen3.embedding_length": 4096,
                },
                "capabilities": ["completion", "tools", "thinking"],
                "modified_at": "2025-10-01T12:00:00.000000000Z",
            }
        )

    async def _ollama_root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")


# ----------------------------------------------------------------------------- wire shapes


class _Omit:
    pass


_OMIT: Any = _Omit()


def _truncate(text: str, limit: Any) -> tuple[str, str]:
    if not isinstance(limit, int) or tokens.count_text(text) <= limit:
        return text, "stop"
    kept: list[str] = []
    for word in text.split(" "):
        if tokens.count_text(" ".join([*kept, word])) > limit:
            break
        kept.append(word)
    return " ".join(kept), "length"


def _wire_tool_calls(calls: Sequence[ToolCall], style: Mode) -> list[dict[str, Any]]:
    out = []
    for k, c in enumerate(calls):
        call: dict[str, Any] = {"id": c.id}
        if style in ("ollama", "deepseek"):
            call["index"] = k  # both put the index on complete (non-delta) calls too
        call["type"] = "function"
        call["function"] = {"name": c.name, "arguments": c.arguments}
        if style == "mistral":
            call["index"] = k  # Mistral too, after the function
        out.append(call)
    return out


def chat_completion(
    *,
    style: Mode,
    chat_id: str,
    created: int,
    model: Any,
    content: str | None,
    reasoning: str | None,
    reasoning_field: str,
    refusal: str | None,
    tool_calls: Sequence[ToolCall],
    finish_reason: str,
    stop_reason: Any,
    usage: Mapping[str, Any],
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object as the emulated server writes it."""
    wire_calls = _wire_tool_calls(tool_calls, style)
    if style == "deepseek":
        message = {"role": "assistant", "content": content or ""}
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        if wire_calls:
            message["tool_calls"] = wire_calls
        usage = dict(usage)
        usage.setdefault(
            "completion_tokens_details", {"reasoning_tokens": tokens.count_text(reasoning or "")}
        )
        return {
            "id": chat_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": usage,
            "system_fingerprint": "fp_deepseek_v4",
        }
    if style == "vllm":
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content,
            "refusal": refusal,
            "annotations": None,
            "audio": None,
            "function_call": None,
            "tool_calls": wire_calls,
            reasoning_field: reasoning,
        }
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        if stop_reason is not _OMIT:
            choice["stop_reason"] = stop_reason
        choice["token_ids"] = None
        return {
            "id": chat_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [choice],
            "service_tier": None,
            "system_fingerprint": None,
            "usage": dict(usage),
            "prompt_logprobs": None,
            "prompt_token_ids": None,
            "kv_transfer_params": None,
        }
    if style == "mistral":
        message = {
            "role": "assistant",
            "tool_calls": wire_calls or None,
            "content": content or "",
            "prefix": False,
        }
        return {
            "id": chat_id,
            "object": "chat.completion",
            "model": model,
            "usage": dict(usage),
            "created": created,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        }
    if style == "ollama":
        message = {"role": "assistant", "content": content or ""}
        if reasoning:
            message[reasoning_field] = reasoning
        if wire_calls:
            message["tool_calls"] = wire_calls
        choice = {"index": 0, "message": message, "finish_reason": finish_reason}
        if stop_reason is not _OMIT:
            choice["stop_reason"] = stop_reason
        return {
            "id": chat_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_ollama",
            "choices": [choice],
            "usage": dict(usage),
        }
    message = {"role": "assistant", "content": content, "refusal": refusal, "annotations": []}
    if wire_calls:
        message["tool_calls"] = wire_calls
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
    if stop_reason is not _OMIT:
        choice["stop_reason"] = stop_reason
    return {
        "id": chat_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": dict(usage),
        "service_tier": "default",
        "system_fingerprint": "fp_" + rand_hex(10),
    }


def stream_chunks(
    *,
    style: Mode,
    chat_id: str,
    created: int,
    model: Any,
    content: str | None,
    reasoning: str | None,
    reasoning_field: str = "reasoning",
    refusal: str | None = None,
    tool_calls: Sequence[ToolCall] = (),
    finish_reason: str = "stop",
    stop_reason: Any = _OMIT,
    usage: Mapping[str, Any] | None = None,
    include_usage: bool = False,
    continuous_usage: bool = False,
    text_chunk: int = 8,
    args_chunk: int = 10,
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects (without ``[DONE]``) the emulated server sends."""
    base: dict[str, Any] = {
        "id": chat_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }
    if style == "openai":
        base["service_tier"] = "default"
        base["system_fingerprint"] = "fp_" + rand_hex(10)
    elif style == "ollama":
        base["system_fingerprint"] = "fp_ollama"
    elif style == "deepseek":
        base["system_fingerprint"] = "fp_deepseek_v4"

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        ch: dict[str, Any] = {"index": 0, "delta": delta}
        if style != "ollama":
            ch["logprobs"] = None
        ch["finish_reason"] = finish
        if finish is not None and stop_reason is not _OMIT:
            ch["stop_reason"] = stop_reason
        return ch

    deltas: list[dict[str, Any]] = []
    if style == "mistral":
        # api.mistral.ai: whole tool calls in one delta, usage on the finish chunk, always
        out = [
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ],
            }
        ]
        for piece in split_text(content or "", text_chunk) if content else []:
            out.append(
                {
                    **base,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
            )
        if tool_calls:
            out.append(
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"tool_calls": _wire_tool_calls(tool_calls, "mistral")},
                            "finish_reason": None,
                        }
                    ],
                }
            )
        last: dict[str, Any] = {
            **base,
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": finish_reason}],
        }
        if usage:
            last["usage"] = dict(usage)
        out.append(last)
        return out
    if style == "ollama":
        if reasoning:
            for piece in split_text(reasoning, text_chunk):
                deltas.append({"role": "assistant", "content": "", reasoning_field: piece})
        if content:
            for piece in split_text(content, text_chunk):
                deltas.append({"role": "assistant", "content": piece})
        if tool_calls:
            deltas.append(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": _wire_tool_calls(tool_calls, "ollama"),
                }
            )
        finish_delta: dict[str, Any] = {"role": "assistant", "content": ""}
    elif style == "deepseek":
        # every delta names both channels; the one not speaking is null
        deltas.append({"role": "assistant", "content": None, "reasoning_content": ""})
        if reasoning:
            for piece in split_text(reasoning, text_chunk):
                deltas.append({"content": None, "reasoning_content": piece})
        if content:
            for piece in split_text(content, text_chunk):
                deltas.append({"content": piece, "reasoning_content": None})
        for k, call in enumerate(tool_calls):
            deltas.append(
                {
                    "tool_calls": [
                        {
                            "index": k,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            if call.arguments:
                for piece in split_text(call.arguments, args_chunk):
                    deltas.append({"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
        finish_delta = {"content": "", "reasoning_content": None}
    else:
        first: dict[str, Any] = {"role": "assistant", "content": ""}
        if style == "openai":
            first["refusal"] = None
        deltas.append(first)
        if reasoning and style == "vllm":
            for piece in split_text(reasoning, text_chunk):
                deltas.append({reasoning_field: piece})
        if content:
            for piece in split_text(content, text_chunk):
                deltas.append({"content": piece})
        if refusal:
            for piece in split_text(refusal, text_chunk):
                deltas.append({"refusal": piece})
        for k, call in enumerate(tool_calls):
            deltas.append(
                {
                    "tool_calls": [
                        {
                            "index": k,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            if call.arguments:
                for piece in split_text(call.arguments, args_chunk):
                    deltas.append({"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
        finish_delta = {}
    chunks = [{**base, "choices": [choice(d)]} for d in deltas]
    chunks.append({**base, "choices": [choice(finish_delta, finish_reason)]})
    usage = dict(usage or {})
    if continuous_usage and usage:
        n = len(chunks)
        for i, c in enumerate(chunks):
            done = usage["completion_tokens"] * (i + 1) // n
            c["usage"] = {
                "prompt_tokens": usage["prompt_tokens"],
                "completion_tokens": done,
                "total_tokens": usage["prompt_tokens"] + done,
            }
    elif include_usage and style in ("openai", "deepseek"):
        # api.openai.com: every chunk carries "usage": null; vLLM omits the key (exclude_unset)
        for c in chunks:
            c["usage"] = None
    if include_usage and usage:
        chunks.append({**base, "choices": [], "usage": usage})
    return chunks


# ----------------------------------------------------------------------------- validation utils


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _pydantic_missing(field_name: str) -> str:
    return (
        "[{'type': 'missing', 'loc': ('body', '" + field_name + "'), 'msg': 'Field required', "
        "'input': None}]"
    )


def _additional(obj: Mapping[str, Any], allowed: frozenset[str], loc: str) -> None:
    for key in obj:
        if key not in allowed:
            raise OpenAIError(
                f"Additional properties are not allowed ('{key}' was unexpected) - '{loc}'",
                param=loc,
            )


def _deepseek_thinks(body: Mapping[str, Any]) -> bool:
    """DeepSeek thinking mode: on by default (``deepseek-chat`` is the non-thinking alias,
    ``deepseek-reasoner`` always thinks); ``thinking: {"type": ...}`` switches it."""
    model = body.get("model")
    if model == "deepseek-reasoner":
        return True
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled"):
        return bool(thinking["type"] == "enabled")
    return model != "deepseek-chat"


def _validate_deepseek_thinking(body: Mapping[str, Any], messages: list[Any]) -> None:
    """api.deepseek.com's thinking-mode rules (its exact messages):

    * an effort with thinking switched off is refused;
    * in thinking mode, every assistant message of a turn (user message to user message) that
      called tools must bring its ``reasoning_content`` back, in all later requests (an empty
      string counts; the key must be there).
    """
    thinking = body.get("thinking")
    if (
        isinstance(thinking, dict)
        and thinking.get("type") == "disabled"
        and body.get("reasoning_effort") is not None
    ):
        raise OpenAIError(DEEPSEEK_EFFORT_DISABLED)
    if not _deepseek_thinks(body):
        return
    turn: list[dict[str, Any]] = []
    for msg in [*messages, {"role": "user"}]:
        if msg.get("role") != "user":
            if msg.get("role") == "assistant":
                turn.append(msg)
            continue
        if any(m.get("tool_calls") for m in turn) and any(
            not isinstance(m.get("reasoning_content"), str) for m in turn
        ):
            raise OpenAIError(DEEPSEEK_PASS_BACK)
        turn = []


def is_openai_reasoning_model(model: Any) -> bool:
    """o-series and gpt-5 reasoning models (not gpt-5-chat, which is a chat model)."""
    if not isinstance(model, str):
        return False
    m = model.lower()
    return m.startswith(("o1", "o3", "o4", "gpt-5")) and not m.startswith("gpt-5-chat")


def _unsupported_parameter(name: str, extra: str = "") -> OpenAIError:
    return OpenAIError(
        f"Unsupported parameter: '{name}' is not supported with this model.{extra}",
        param=name,
        code="unsupported_parameter",
    )


def _openai_model_family_rules(body: Mapping[str, Any]) -> None:
    """api.openai.com: reasoning models take neither ``max_tokens`` nor a non-default
    ``temperature`` nor ``stop``; chat models take no ``reasoning_effort``."""
    if is_openai_reasoning_model(body.get("model")):
        if body.get("max_tokens") is not None:
            raise _unsupported_parameter("max_tokens", " Use 'max_completion_tokens' instead.")
        t = body.get("temperature")
        if t is not None and t != 1:
            raise OpenAIError(
                f"Unsupported value: 'temperature' does not support {t} with this model. Only "
                "the default (1) value is supported.",
                param="temperature",
                code="unsupported_value",
            )
        if body.get("stop") is not None:
            raise _unsupported_parameter("stop")
    elif body.get("reasoning_effort") is not None:
        raise _unsupported_parameter("reasoning_effort")


def _extra_forbidden(loc: list[Any], value: Any) -> OpenAIError:
    """api.mistral.ai's 422 for an input its schema does not know (pydantic extra_forbidden)."""
    detail = [
        {
            "type": "extra_forbidden",
            "loc": loc,
            "msg": "Extra inputs are not permitted",
            "input": value,
        }
    ]
    body = {
        "object": "error",
        "message": {"detail": detail},
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    return OpenAIError("Extra inputs are not permitted", 422, body=body)


def _mistral_extra_params(body: Mapping[str, Any]) -> None:
    for key, value in body.items():
        if key == "stream_options" and isinstance(value, dict):
            # the schema knows no such object: the error names the inner key
            for inner, v in value.items():
                raise _extra_forbidden(["body", "stream_options", inner], v)
        if key not in MISTRAL_PARAMS:
            raise _extra_forbidden(["body", key], value)


def _mistral_extra_keys(msg: Mapping[str, Any], i: int, role: Any) -> None:
    allowed = MISTRAL_MESSAGE_KEYS.get(role) if isinstance(role, str) else None
    if allowed is None:
        body = {
            "object": "error",
            "message": {
                "detail": [
                    {
                        "type": "union_tag_invalid",
                        "loc": ["body", "messages", i],
                        "msg": f"Input tag '{role}' found using 'role' does not match any of the "
                        "expected tags: 'system', 'user', 'assistant', 'tool'",
                        "input": dict(msg),
                    }
                ]
            },
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
        raise OpenAIError("Input tag does not match", 422, body=body)
    for key, value in msg.items():
        if key not in allowed:
            raise _extra_forbidden(["body", "messages", i, role, key], value)


def _check_tool_pairing(messages: list[dict[str, Any]]) -> None:
    pending: dict[Any, None] = {}
    owner = -1
    current: set[Any] = set()
    for i, msg in enumerate(messages):
        role = msg["role"]
        if role == "tool":
            call_id = msg.get("tool_call_id")
            if call_id not in current:
                raise OpenAIError(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
            pending.pop(call_id, None)
            continue
        if pending:
            break
        current = set()
        if role == "assistant" and msg.get("tool_calls"):
            ids = [c.get("id") for c in msg["tool_calls"] if isinstance(c, dict)]
            pending = dict.fromkeys(ids)
            current = set(ids)
            owner = i
    if pending:
        raise OpenAIError(
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
            + ", ".join(pending),
            param=f"messages.[{owner}].role",
        )
