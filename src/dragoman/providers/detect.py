"""``flavor: auto``: learn what kind of server a provider is, once, and what it reports.

A hosted API is known by its host name and never probed. Any other server is asked, with short
timeouts and all probes at once, the questions only one kind of server answers (vLLM
``GET /version``, SGLang ``/get_server_info``, Ollama ``/api/version``, llama.cpp ``/props``,
LM Studio ``/api/v0/models``, ``owned_by`` in ``/v1/models``), and each model's context window
where the server reports it. This runs at start and, for a server that did not answer, again
later (never per request). A server nobody recognises gets the standard-only ``generic`` row.
See docs/flavors.md.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from ..dialects.openai.flavors import capabilities
from ..errors import UpstreamError
from ..upstream.transport import UpstreamRequest
from .base import Provider

log = logging.getLogger("dragoman.detect")

#: hosted APIs, known by host (a subdomain counts too); never probed
HOSTS: tuple[tuple[str, str], ...] = (
    ("api.anthropic.com", "anthropic"),
    ("api.openai.com", "openai"),
    ("api.deepseek.com", "deepseek"),
    ("api.mistral.ai", "mistral"),
    ("api.groq.com", "groq"),
    ("openrouter.ai", "openrouter"),
    ("generativelanguage.googleapis.com", "gemini-openai"),
    ("api.together.xyz", "together"),
    ("api.together.ai", "together"),
    ("api.fireworks.ai", "fireworks"),
)
#: seconds every probe of one detection may take, all together
TIMEOUT = 3.0
#: a server that did not answer is asked again after this many seconds, on its next request
RETRY_AFTER = 30.0
#: context-window keys servers put on their ``/v1/models`` entries
_WINDOW_KEYS = ("max_model_len", "context_length", "context_window", "max_context_length")
#: a JSON key carrying non-empty reasoning text, as it appears in a raw chunk
_REASONING_KEY = re.compile(rb'"(reasoning_content|reasoning)"\s*:\s*"(?!")')


@dataclass(slots=True)
class Detection:
    """What dragoman knows about one provider's server."""

    flavor: str
    #: why, in words (``GET /version answered vllm 0.11.0``, ``host api.deepseek.com``,
    #: ``configured``)
    how: str
    #: nothing is left to ask; False: the server has not answered yet (asked again later)
    settled: bool = True
    #: the gateway clock when it was last asked (None: never)
    asked_at: float | None = None
    #: the flavor is the server's to tell (``flavor: auto``), not the config's
    auto: bool = True
    #: upstream model id -> context window the server reports ("*": all of its models)
    context_windows: dict[str, int] = field(default_factory=dict)
    #: upstream model id -> the field its answers carry reasoning in
    reasoning_fields: dict[str, str] = field(default_factory=dict)

    def context_window(self, model: str) -> int | None:
        return self.context_windows.get(model) or self.context_windows.get("*")

    def learn_reasoning(self, model: str, seen: str) -> None:
        """Remember the field ``model`` answered with (the first one seen sticks, unless the
        flavor's own field shows up: servers in transition send both)."""
        known = self.reasoning_fields.get(model)
        if known is None or (seen != known and seen == capabilities(self.flavor).reasoning_field):
            self.reasoning_fields[model] = seen

    def learn_from_message(self, model: str, msg: Any) -> None:
        """From a non-streamed answer's ``choices[0].message``."""
        if not isinstance(msg, dict):
            return
        for key in ("reasoning_content", "reasoning"):
            v = msg.get(key)
            if isinstance(v, str) and v:
                self.learn_reasoning(model, key)
                return

    def learn_from_chunk(self, model: str, raw: bytes) -> bool:
        """From raw stream bytes; True once the field is known (the caller stops looking)."""
        m = _REASONING_KEY.search(raw)
        if m is None:
            return False
        self.learn_reasoning(model, m.group(1).decode())
        return True

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"flavor": self.flavor, "how": self.how, "settled": self.settled}
        if self.context_windows:
            out["context_windows"] = dict(self.context_windows)
        if self.reasoning_fields:
            out["reasoning_fields"] = dict(self.reasoning_fields)
        return out


def host_flavor(base_url: str) -> tuple[str, str] | None:
    """(flavor, host) for a hosted API's base URL, else None."""
    host = (urlsplit(base_url).hostname or "").lower()
    for known, name in HOSTS:
        if host == known or host.endswith("." + known):
            return name, host
    return None


def initial(kind: str, base_url: str, configured: str) -> Detection:
    """What is known before asking: the configured flavor, or the host's; else nothing yet.

    Anthropic-dialect servers are known by host only: api.anthropic.com, or something else
    that speaks Anthropic (which must not receive Claude Code's billing header)."""
    hosted = host_flavor(base_url)
    if kind == "anthropic":
        if configured != "auto":
            return Detection(configured, "configured", auto=False)
        if hosted is not None:
            return Detection(hosted[0], f"host {hosted[1]}")
        host = urlsplit(base_url).hostname or base_url
        return Detection("generic", f"host {host} is not api.anthropic.com")
    if configured != "auto":
        # still asked for context windows, unless it is a hosted API
        return Detection(configured, "configured", settled=hosted is not None, auto=False)
    if hosted is not None:
        return Detection(hosted[0], f"host {hosted[1]}")
    return Detection("generic", "not asked yet", settled=False)


# ------------------------------------------------------------------------------- probing


@dataclass(slots=True)
class Probe:
    """One GET's outcome: an HTTP status and JSON body, or the transport error's name."""

    status: int | None = None
    body: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def obj(self) -> dict[str, Any]:
        return self.body if self.ok and isinstance(self.body, dict) else {}


async def _get(
    prov: Provider, url: str, headers: Mapping[str, str], seconds: float, post: Any = None
) -> Probe:
    """One probe through the provider's transport (no redirects followed, body capped)."""
    if post is None:
        req = UpstreamRequest("GET", url, headers, total=seconds)
    else:
        h = {**headers, "content-type": "application/json"}
        req = UpstreamRequest("POST", url, h, orjson.dumps(post), total=seconds)
    try:
        r = await prov.transport.send(req)
        raw = await r.read()
    except UpstreamError as e:
        return Probe(error=type(e).__name__)
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    return Probe(r.status, body)


def _root(base_url: str) -> str:
    """The server root (vLLM, Ollama and llama.cpp serve their own endpoints outside /v1)."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def _version(p: Probe) -> str | None:
    v = p.obj().get("version")
    return v if isinstance(v, str) and v else None


def _model_entries(p: Probe) -> list[dict[str, Any]]:
    data = p.obj().get("data")
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def classify(probes: Mapping[str, Probe]) -> tuple[str, str]:
    """(flavor, why) from the probes' answers, keyed by path. Pure, so tests can feed it."""
    none = Probe()
    info = probes.get("/get_server_info", none)
    if info.ok and isinstance(info.body, dict) and _version(info):
        return "sglang", f"GET /get_server_info answered sglang {_version(info)}"
    ollama = probes.get("/api/version", none)
    if _version(ollama):
        return "ollama", f"GET /api/version answered ollama {_version(ollama)}"
    props = probes.get("/props", none).obj()
    if "default_generation_settings" in props or "build_info" in props:
        build = props.get("build_info")
        return "llamacpp", "GET /props answered llama.cpp" + (f" {build}" if build else "")
    lms = _model_entries(probes.get("/api/v0/models", none))
    if lms and any("compatibility_type" in m or "arch" in m for m in lms):
        return "lmstudio", "GET /api/v0/models answered LM Studio"
    models = _model_entries(probes.get("/v1/models", none))
    owners = {m.get("owned_by") for m in models}
    version = _version(probes.get("/version", none))
    if "vllm" in owners:
        if version:
            return "vllm", f"GET /version answered vllm {version}"
        return "vllm", "GET /v1/models: owned_by vllm"
    if version and any("max_model_len" in m for m in models):
        return "vllm", f"GET /version answered vllm {version}"
    for owner, name in (("sglang", "sglang"), ("llamacpp", "llamacpp")):
        if owner in owners:
            return name, f"GET /v1/models: owned_by {owner}"
    seen = ", ".join(
        f"{path} -> {p.status if p.status is not None else p.error}" for path, p in probes.items()
    )
    return "generic", f"not recognised ({seen}): standard fields only"


def _windows_from_models(entries: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in entries:
        mid = m.get("id")
        for k in keys:
            v = m.get(k)
            if isinstance(mid, str) and isinstance(v, int) and not isinstance(v, bool) and v > 0:
                out[mid] = v
                break
    return out


def _ollama_window(show: Probe) -> int | None:
    """``num_ctx`` when the model sets one, else the ``<arch>.context_length`` it was built with."""
    body = show.obj()
    params = body.get("parameters")
    if isinstance(params, str):
        m = re.search(r"(?m)^\s*num_ctx\s+(\d+)", params)
        if m:
            return int(m.group(1))
    info = body.get("model_info")
    if isinstance(info, dict):
        for k, v in info.items():
            if k.endswith(".context_length") and isinstance(v, int) and v > 0:
                return v
    return None


async def detect(
    prov: Provider,
    det: Detection,
    models: Sequence[str],
    *,
    seconds: float = TIMEOUT,
    now: float = 0.0,
) -> Detection:
    """Ask the server behind ``prov`` what it is (unless configured) and what context windows
    it reports; returns the updated detection. Bounded by ``seconds`` in all."""
    det.asked_at = now
    root = _root(prov.base_url)
    auto = det.auto
    headers = {**prov.config.headers, **prov.auth_headers()}  # as the requests themselves
    paths: dict[str, str] = {"/v1/models": prov.base_url + "/models"}
    if auto:
        for p in ("/version", "/get_server_info", "/api/version", "/props", "/api/v0/models"):
            paths[p] = root + p
    elif det.flavor == "llamacpp":
        paths["/props"] = root + "/props"
    elif det.flavor == "lmstudio":
        paths["/api/v0/models"] = root + "/api/v0/models"
    try:
        async with asyncio.timeout(seconds):
            got = await asyncio.gather(*(_get(prov, u, headers, seconds) for u in paths.values()))
            probes = dict(zip(paths, got, strict=True))
            if auto:
                det.flavor, det.how = classify(probes)
            windows = _windows_from_models(_model_entries(probes["/v1/models"]), _WINDOW_KEYS)
            if "/api/v0/models" in probes:
                lms = _model_entries(probes["/api/v0/models"])
                windows.update(
                    _windows_from_models(lms, ("loaded_context_length", "max_context_length"))
                )
            n_ctx = _llamacpp_n_ctx(probes.get("/props"))
            if det.flavor == "llamacpp" and n_ctx:
                windows["*"] = n_ctx
            if det.flavor == "ollama":
                show = root + "/api/show"
                shows = await asyncio.gather(
                    *(_get(prov, show, headers, seconds, {"model": m}) for m in models)
                )
                for m, answer in zip(models, shows, strict=True):
                    w = _ollama_window(answer)
                    if w:
                        windows[m] = w
    except TimeoutError:
        det.settled = False
        if auto:
            det.how = f"no answer from {root} within {seconds:g}s: standard fields until it answers"
        return det
    answered = any(p.status is not None for p in probes.values())
    det.settled = answered
    if not answered and auto:
        errors = sorted({p.error or "" for p in probes.values()})
        det.flavor = "generic"
        det.how = f"no answer from {root} ({', '.join(errors)}): standard fields until it answers"
    det.context_windows.update(windows)
    return det


def _llamacpp_n_ctx(p: Probe | None) -> int | None:
    if p is None:
        return None
    props = p.obj()
    gen = props.get("default_generation_settings")
    for src in (gen if isinstance(gen, dict) else {}, props):
        v = src.get("n_ctx")
        if isinstance(v, int) and v > 0:
            return v
    return None
