"""Configuration: one YAML file, validated at start, ``${VAR}``/``${VAR:-default}`` expanded.

Validation errors name the file and the dotted path of the bad key, e.g.
``dragoman.yaml: models.coder.provider: unknown provider 'locl' (known: anthropic, local)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .dialects.openai.flavors import FLAVOR_NAMES

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RequestLimits(_Strict):
    """The most one request may carry, checked before any translation (docs/limits.md,
    "Request caps"): a 400 naming the cap, so one request cannot hold the event loop."""

    max_messages: int = Field(default=10000, ge=1)
    max_tools: int = Field(default=512, ge=0)
    #: tool calls in the whole history (assistant ``tool_use`` blocks / ``tool_calls`` entries)
    max_tool_calls: int = Field(default=4096, ge=0)
    #: nesting of JSON values (tool inputs, schemas): deeper ones cannot be re-serialised safely
    max_depth: int = Field(default=64, ge=8)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 32 * 1024 * 1024
    request_limits: RequestLimits = Field(default_factory=RequestLimits)
    #: log format: "json" (one object a line) or "text"
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    #: open mode only (docs/security.md): browser ``Origin`` values allowed to call the gateway
    #: (e.g. "http://localhost:3000"); any other Origin gets 403 (CSRF)
    allowed_origins: list[str] = Field(default_factory=list)
    #: open mode only: ``Host`` names accepted besides localhost, 127.0.0.1 and [::1]; any other
    #: gets 403 (DNS rebinding)
    allowed_hosts: list[str] = Field(default_factory=list)
    #: addresses or networks of reverse proxies in front (e.g. "10.0.0.0/8"): for requests from
    #: them the client address (failed-auth limits, logs) is read from ``X-Forwarded-For``
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for n in v:
            try:
                ipaddress.ip_network(n, strict=False)
            except ValueError:
                raise ValueError(f"not an address or network: {n!r}") from None
        return v

    #: seconds a connection may go without a complete request head, counted from its opening or
    #: from the end of its previous response: idle keep-alive connections and heads sent slowly
    #: (slowloris) are closed after this (aiohttp measures both with one timer; docs/timeouts.md)
    header_timeout: float = Field(default=15.0, gt=0)
    #: seconds to receive a whole request body (408 in the caller's dialect after)
    body_timeout: float = Field(default=60.0, gt=0)
    #: seconds one write to a client may wait for it to read: a stream client that stops
    #: reading is then dropped, its upstream released, and it is settled as a disconnect
    write_timeout: float = Field(default=30.0, gt=0)


class StaticKey(_Strict):
    """A static client key written as an object (docs/limits.md): its ``alias`` names it in
    usage rows and in ``limits`` targets, its ``team`` counts it under a team."""

    key: str
    #: unset: ``static-N`` (its place in ``auth.keys``, from 1)
    alias: str | None = Field(default=None, min_length=1, max_length=200)
    team: str | None = Field(default=None, min_length=1, max_length=200)


class AuthConfig(_Strict):
    #: static client keys (``x-api-key`` or ``Authorization: Bearer``), each a string or a
    #: ``{key, alias, team}`` object; with none, and no virtual key in the store, the gateway
    #: is open (loopback only unless ``open: true``)
    keys: list[str | StaticKey] = Field(default_factory=list)
    admin_key: str | None = None
    #: run without client keys on a non-loopback address (docs/security.md)
    open: bool = False
    #: seconds a virtual-key lookup stays cached in the process
    key_cache_ttl: float = 30.0
    #: failed authentications an address may make in a minute before it gets 429
    max_failures_per_minute: int = Field(default=20, ge=1)
    #: the config entries that were written but expanded to nothing (``${VAR}`` unset):
    #: ``dragoman serve`` refuses to start on them (docs/security.md); not a YAML key
    _unset: list[str] = PrivateAttr(default_factory=list)

    @property
    def unset(self) -> list[str]:
        """Dotted paths of keys written in the config that expanded to an empty string."""
        return list(self._unset)

    @property
    def static_keys(self) -> list[StaticKey]:
        """``keys`` as objects, each with its alias (``static-N`` when none was written)."""
        return [
            StaticKey(key=k, alias=f"static-{i + 1}")
            if isinstance(k, str)
            else k.model_copy(update={"alias": k.alias or f"static-{i + 1}"})
            for i, k in enumerate(self.keys)
        ]

    @property
    def secrets(self) -> list[str]:
        """The static keys' secrets."""
        return [k if isinstance(k, str) else k.key for k in self.keys]

    @model_validator(mode="after")
    def _aliases_unique(self) -> AuthConfig:
        seen: set[str] = set()
        for i, k in enumerate(self.static_keys):
            if k.alias in seen:
                raise ValueError(f"keys.{i}: alias {k.alias!r} is used by another key")
            seen.add(k.alias or "")
        return self


class Timeouts(_Strict):
    connect: float = 10.0
    #: time to the upstream's first byte (response headers)
    first_byte: float = 600.0
    #: longest silence allowed between two chunks of a stream
    idle: float = 300.0
    #: whole request, streams included
    total: float = 3600.0


class ProviderConfig(_Strict):
    kind: Literal["anthropic", "openai"]
    base_url: str
    api_key: str | None = None
    #: name of a credential stored with ``POST /admin/credentials`` (instead of ``api_key``)
    credential: str | None = None
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_connections: int = 1000
    #: largest upstream body read whole (bytes, decompressed); beyond it the answer is a 502
    max_response_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    #: largest single server-sent event of an upstream stream; beyond it the stream ends with
    #: an error event (docs/upstream.md)
    max_event_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    #: extra headers sent on every upstream request
    headers: dict[str, str] = Field(default_factory=dict)
    #: what kind of server this is (a row of the capability table, docs/flavors.md): "auto"
    #: (the default) asks the server, or knows it from its host; an explicit name wins
    flavor: str = "auto"
    # --- OpenAI-compatible backends only -------------------------------------------------------
    #: assistant-message field carrying reasoning text sent back upstream ("" drops it);
    #: None = the field the upstream answers with, else the flavor's
    reasoning_field: str | None = None
    #: ``POST {root}/tokenize`` exists (vLLM); None = as the flavor says
    tokenize: bool | None = None
    #: Anthropic backend: forward the client's anthropic-beta flags: all (true), none (false),
    #: or those equal to or starting with an entry of a list (providers/betas.py)
    forward_betas: bool | list[str] = True
    #: check health at start-up
    health_check: bool = True

    @field_validator("forward_betas")
    @classmethod
    def _beta_names(cls, v: bool | list[str]) -> bool | list[str]:
        if isinstance(v, list) and any(not a.rstrip("*").strip() for a in v):
            raise ValueError("an empty entry would forward every beta: write true instead")
        return v

    @field_validator("flavor")
    @classmethod
    def _known_flavor(cls, v: str) -> str:
        if v not in FLAVOR_NAMES:
            raise ValueError(f"unknown flavor {v!r} (known: {', '.join(FLAVOR_NAMES)})")
        return v


class Prices(_Strict):
    """USD per million tokens, plus an optional flat price per request."""

    input: float = 0.0
    output: float = 0.0
    cache_write: float | None = None
    cache_read: float | None = None
    per_request: float = 0.0
    #: the 1-hour cache write (Anthropic ``cache_control.ttl: "1h"``); default 2x input for
    #: Claude models, else ``cache_write``
    cache_write_1h: float | None = None
    #: USD per server-side web search (Anthropic ``usage.server_tool_use.web_search_requests``);
    #: default $0.01 for Claude models, else 0
    web_search: float | None = None


class DeploymentConfig(_Strict):
    provider: str
    model: str | None = None
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    prices: Prices | None = None
    name: str | None = None


class ModelConfig(_Strict):
    #: shorthand for a single deployment
    provider: str | None = None
    #: upstream model id (defaults to the model's name)
    model: str | None = None
    deployments: list[DeploymentConfig] = Field(default_factory=list)
    context_window: int | None = None
    max_output_tokens: int | None = None
    #: default ``max_tokens`` when an OpenAI client sends none to an Anthropic backend
    default_max_tokens: int | None = None
    vision: bool = True
    #: the model takes reasoning switches (``reasoning_effort``, vLLM's ``enable_thinking``);
    #: unset: as the provider's flavor says (api.openai.com: only its reasoning model ids)
    reasoning: bool | None = None
    #: model used for requests that carry images when this one has ``vision: false``
    vision_model: str | None = None
    strategy: Literal["weighted", "least_inflight", "lowest_latency"] = "weighted"
    fallbacks: list[str] = Field(default_factory=list)
    context_window_fallbacks: list[str] = Field(default_factory=list)
    content_policy_fallbacks: list[str] = Field(default_factory=list)
    prices: Prices | None = None
    display_name: str | None = None

    @model_validator(mode="after")
    def _one_way_to_say_where(self) -> ModelConfig:
        if self.provider is None and not self.deployments:
            raise ValueError("needs 'provider' or 'deployments'")
        if self.provider is not None and self.deployments:
            raise ValueError("give either 'provider' or 'deployments', not both")
        return self


class RetryConfig(_Strict):
    max_retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    retry_on: list[int] = Field(
        default_factory=lambda: [408, 409, 429, 500, 501, 502, 503, 504, 529]
    )


class CooldownConfig(_Strict):
    """When a deployment is skipped for a while (README "Cooldowns").

    A cooling deployment is skipped only while another route can take the request; the last
    route is always tried, so a cooldown never makes a request fare worse than calling the
    upstream directly.
    """

    #: failures (connection errors, timeouts, 5xx, 401/403) within ``window`` seconds that cool
    #: a deployment down for ``cooldown`` seconds
    allowed_fails: int = 3
    window: float = 60.0
    #: seconds a deployment cools down after ``allowed_fails``, or after a 429/529 that came
    #: without a retry-after (with one, the upstream's own retry-after is the cooldown)
    cooldown: float = Field(default=5.0, ge=0, allow_inf_nan=False)
    #: upper bound, in seconds, on any upstream retry-after (backoff, cooldown, and the header
    #: the client receives): absurd values (``inf``, ``1e300``, a date years ahead) become this
    max_retry_after: float = Field(default=300.0, ge=0, allow_inf_nan=False)


class RouteRule(_Strict):
    """A scenario rule: when its condition holds, the request goes to ``model``."""

    name: str | None = None
    model: str
    #: case-insensitive substring/glob of the requested model name (e.g. "*haiku*")
    match_model: str | None = None
    thinking: bool | None = None
    #: estimated input tokens above which the rule applies
    min_input_tokens: int | None = None
    has_images: bool | None = None
    has_tools: bool | None = None


class RoutingConfig(_Strict):
    retries: RetryConfig = Field(default_factory=RetryConfig)
    cooldown: CooldownConfig = Field(default_factory=CooldownConfig)
    rules: list[RouteRule] = Field(default_factory=list)


class SyftBoxAccountingConfig(_Strict):
    """The router owner's account at the SyftBox accounting service (HTTP Basic)."""

    url: str = Field(min_length=1)
    #: must be the SyftBox email: callers' transaction tokens name the datasite as recipient
    email: str = Field(min_length=1)
    password: str = Field(min_length=1)


class SyftBoxConfig(_Strict):
    """Publish the models as a SyftBox router (docs/syftbox.md); needs ``dragoman[syftbox]``."""

    #: SyftBox client config (email, data_dir); None: ``SYFTBOX_CLIENT_CONFIG_PATH``, then
    #: ``~/.syftbox/config.json``
    client_config: str | None = None
    #: serves ``app_data/routers/<app_name>/rpc/{chat,completions,ping}`` (the seed's form) and
    #: ``app_data/<app_name>/rpc/{chat,health}`` (syft-hub's form)
    app_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    #: accounting credits charged per ``/chat``; 0 = no accounting
    price_per_request: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    #: None: ``~/.syftbox/accounting-config.json`` (``{"url", "email", "password"}``)
    accounting: SyftBoxAccountingConfig | None = None
    #: requests handled at once
    workers: int = Field(default=8, ge=1, le=1024)

    @model_validator(mode="after")
    def _extra_installed(self) -> SyftBoxConfig:
        from .syftbox import INSTALL, missing_libraries

        missing = missing_libraries()
        if missing:
            raise ValueError(f"needs {', '.join(missing)}: {INSTALL}")
        return self


class StoreConfig(_Strict):
    url: str = "sqlite:///dragoman.db"
    auto_upgrade: bool = True
    #: usage rows are written in batches: flush at this size or after this many seconds
    batch_size: int = 200
    flush_interval: float = 1.0
    queue_size: int = 10000
    enabled: bool = True
    #: rows the database refused while it was away wait in this file until it returns
    #: (default: next to a SQLite file, else ``$XDG_STATE_HOME/dragoman/``); docs/accounting.md
    spool_path: str | None = None
    #: the spool's size cap in bytes (0: no spool; rows then wait in memory only)
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    #: where the master key is kept when ``DRAGOMAN_MASTER_KEY`` is not set: generated once
    #: (mode 0600) and reused; default next to a SQLite file (``<db>.master-key``), else
    #: ``$DRAGOMAN_STATE_DIR/master-key`` (``~/.local/state/dragoman``); docs/keys-at-rest.md
    master_key_file: str | None = None


class BudgetConfig(_Strict):
    scope: Literal["key", "team", "model", "provider", "global"] = "global"
    #: key id/alias, team, model or provider name (not for global)
    target: str | None = None
    period: Literal["daily", "weekly", "monthly", "yearly", "total"] = "monthly"
    limit_usd: float
    alert_thresholds: list[float] = Field(default_factory=lambda: [50.0, 80.0, 95.0])
    webhook: str | None = None


class AccountingConfig(_Strict):
    #: config prices override the shipped table, per model name
    prices: dict[str, Prices] = Field(default_factory=dict)
    budgets: list[BudgetConfig] = Field(default_factory=list)
    alert_webhook: str | None = None
    #: budgets the API keeps on one key (``POST /v1/analytics/budgets``)
    max_budgets_per_key: int = Field(default=5, ge=1)
    #: alert thresholds one API-created budget may carry
    max_alert_thresholds: int = Field(default=10, ge=1)


class StateConfig(_Strict):
    """Where counters shared by gateway processes live (docs/limits.md)."""

    #: ``redis://host:port/db`` (or ``rediss://``); unset: this process's memory, which is
    #: only right for one process (``dragoman serve --workers N`` refuses N > 1 without it)
    url: str | None = None
    #: when the state cannot be reached: ``open`` admits requests without checking limits (a
    #: warning is logged, ``dragoman_state_errors_total`` counts), ``closed`` refuses them
    on_error: Literal["open", "closed"] = "open"
    #: prefix of every Redis key and channel (gateways sharing a prefix share their limits)
    prefix: str = "dragoman:"
    #: seconds a state call may take before it counts as an outage
    timeout: float = Field(default=0.5, gt=0)
    #: seconds a concurrency lease outlives a process that died holding it
    lease_ttl: float = Field(default=30.0, gt=0)


class LimitConfig(_Strict):
    """A rate limit (docs/limits.md): ``rpm`` requests and ``tpm`` tokens in any 60 seconds,
    ``concurrency`` requests at once (streams until they end)."""

    scope: Literal["key", "team", "model", "global", "sender"]
    #: key alias or id, team, model (after aliases and rules), SyftBox sender; unset: each one
    #: (a targeted limit overrides the untargeted one of its scope, dimension by dimension)
    target: str | None = None
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _says_something(self) -> LimitConfig:
        if self.rpm is None and self.tpm is None and self.concurrency is None:
            raise ValueError("give at least one of rpm, tpm, concurrency")
        if self.scope == "global" and self.target is not None:
            raise ValueError("a global limit has no target")
        return self


class CacheConfig(_Strict):
    """The response cache (docs/limits.md): exact match on the normalised request."""

    backend: Literal["memory", "redis"] = "memory"
    #: Redis for the cache alone; unset with ``backend: redis``: the ``state.url`` Redis
    url: str | None = None
    #: seconds an answer stays cached
    ttl: float = Field(default=3600.0, gt=0)
    #: answers larger than this (stored form) are not cached
    max_entry_bytes: int = Field(default=1024 * 1024, ge=1)
    #: ``backend: memory``: total size kept (least recently used answers go first)
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    #: who shares an answer: ``key`` (only the key that asked), ``team``, or ``all`` callers.
    #: ``key`` by default: a hit says someone sent this exact request before
    scope: Literal["key", "team", "all"] = "key"


class Config(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)
    default_model: str | None = None
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    #: serve the models over SyftBox file RPC too (docs/syftbox.md)
    syftbox: SyftBoxConfig | None = None
    store: StoreConfig = Field(default_factory=StoreConfig)
    accounting: AccountingConfig = Field(default_factory=AccountingConfig)
    #: shared counters (limits, health, key changes, cache): memory, or Redis for many processes
    state: StateConfig = Field(default_factory=StateConfig)
    limits: list[LimitConfig] = Field(default_factory=list)
    #: unset: no response cache
    cache: CacheConfig | None = None
    #: where this config came from (for messages); not a YAML key
    source: str = Field(default="<dict>", exclude=True)

    @model_validator(mode="after")
    def _references(self) -> Config:
        errs: list[str] = []
        for name, m in self.models.items():
            provs = [m.provider] if m.provider else [d.provider for d in m.deployments]
            for i, p in enumerate(provs):
                if p not in self.providers:
                    where = (
                        f"models.{name}.provider"
                        if m.provider
                        else f"models.{name}.deployments.{i}.provider"
                    )
                    errs.append(
                        f"{where}: unknown provider {p!r} (known: {', '.join(self.providers)})"
                    )
            for field in (
                "fallbacks",
                "context_window_fallbacks",
                "content_policy_fallbacks",
            ):
                for f in getattr(m, field):
                    if f not in self.models and f not in self.aliases:
                        errs.append(f"models.{name}.{field}: unknown model {f!r}")
            if m.vision_model and m.vision_model not in self.models:
                errs.append(f"models.{name}.vision_model: unknown model {m.vision_model!r}")
        for alias, target in self.aliases.items():
            if target not in self.models:
                errs.append(f"aliases.{alias}: unknown model {target!r}")
        if self.default_model and self.default_model not in self.models:
            errs.append(f"default_model: unknown model {self.default_model!r}")
        for i, r in enumerate(self.routing.rules):
            if r.model not in self.models:
                errs.append(f"routing.rules.{i}.model: unknown model {r.model!r}")
        errs += self._limits_and_cache()
        if errs:
            raise ValueError("; ".join(errs))
        return self

    def _limits_and_cache(self) -> list[str]:
        errs: list[str] = []
        seen: dict[tuple[str, str | None], int] = {}
        for i, lim in enumerate(self.limits):
            where = (lim.scope, lim.target)
            if where in seen:
                what = f"{lim.scope} {lim.target!r}" if lim.target else f"every {lim.scope}"
                errs.append(f"limits.{i}: a second limit for {what} (limits.{seen[where]})")
            seen.setdefault(where, i)
            if lim.scope == "model" and lim.target and lim.target not in self.models:
                errs.append(f"limits.{i}.target: unknown model {lim.target!r}")
        if self.cache and self.cache.backend == "redis" and not (self.cache.url or self.state.url):
            errs.append("cache.backend: redis needs cache.url or state.url")
        return errs


# --------------------------------------------------------------------------------------------


def expand_env(value: Any, env: Mapping[str, str] | None = None, path: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed YAML tree."""
    env = os.environ if env is None else env
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            got = env.get(name)
            if got is None or (got == "" and default is not None):
                if default is None:
                    return ""
                return default
            return got

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, f"{path}.{i}") for i, v in enumerate(value)]
    return value


def _format_validation(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(lines)


def load_config_dict(
    data: Mapping[str, Any], *, source: str = "<dict>", env: Mapping[str, str] | None = None
) -> Config:
    """Validate a config given as a mapping (env vars are expanded first)."""
    expanded = expand_env(dict(data), env)
    # keys written but expanded to "" (an unset variable) are not keys; they are remembered so
    # that `serve` refuses to start open by accident (docs/security.md)
    unset: list[str] = []
    auth = expanded.get("auth")
    if isinstance(auth, dict):
        if isinstance(auth.get("keys"), list):
            for i, k in enumerate(auth["keys"]):
                if k == "":
                    unset.append(f"auth.keys.{i}")
                elif isinstance(k, dict) and k.get("key") == "":
                    unset.append(f"auth.keys.{i}.key")
            auth["keys"] = [
                k
                for k in auth["keys"]
                if k != "" and not (isinstance(k, dict) and k.get("key") == "")
            ]
        if auth.get("admin_key") == "":
            unset.append("auth.admin_key")
            auth["admin_key"] = None
    try:
        cfg = Config.model_validate(expanded)
    except ValidationError as e:
        raise ConfigError(f"{source}: {_format_validation(e)}") from None
    cfg.source = source
    cfg.auth._unset = unset
    return cfg


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate a YAML config file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping")
    return load_config_dict(data, source=str(p), env=env)


def config_from_env(env: Mapping[str, str] | None = None) -> Config:
    """The config ``dragoman serve`` uses when no file is given.

    ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL give an ``anthropic`` provider with the current Claude
    models; OPENAI_API_KEY / OPENAI_BASE_URL an ``openai`` provider whose models are listed in
    DRAGOMAN_OPENAI_MODELS (comma-separated; default: gpt-4o, gpt-4o-mini). Unknown ``claude-*``
    names go to the Anthropic provider when there is one.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {"providers": {}, "models": {}, "aliases": {}}
    if env.get("DRAGOMAN_KEY"):
        data["auth"] = {"keys": [env["DRAGOMAN_KEY"]]}
    if env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_BASE_URL"):
        data["providers"]["anthropic"] = {
            "kind": "anthropic",
            "base_url": env.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com",
            "api_key": env.get("ANTHROPIC_API_KEY"),
        }
        for m in ("claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5"):
            data["models"][m] = {
                "provider": "anthropic",
                "context_window": 200000,
                "max_output_tokens": 64000,
            }
        data["aliases"]["claude-*"] = "claude-sonnet-4-5"
        data["aliases"]["*haiku*"] = "claude-haiku-4-5"
        data["default_model"] = "claude-sonnet-4-5"
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
        base = env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        data["providers"]["openai"] = {
            "kind": "openai",
            "base_url": base,
            "api_key": env.get("OPENAI_API_KEY"),
        }
        names = [
            n.strip()
            for n in (env.get("DRAGOMAN_OPENAI_MODELS") or "gpt-4o,gpt-4o-mini").split(",")
            if n.strip()
        ]
        for n in names:
            data["models"][n] = {"provider": "openai"}
        if "default_model" not in data and names:
            data["default_model"] = names[0]
    return load_config_dict(data, source="<environment>", env={})
