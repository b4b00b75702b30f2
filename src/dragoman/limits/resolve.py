"""Which limits a request must pass: the config's ``limits`` and its key's own (docs/limits.md).

Resolution is per counter and dimension: a key's own ``rpm``/``tpm``/``max_concurrency`` win over
a limit that targets that key (by alias or id), which wins over the untargeted limit of its scope
(``{scope: key, rpm: 60}``: every key, each counted on its own). Team, model and sender limits
resolve the same way, without the key's own fields; ``global`` is one counter for everything.
Key and team limits do not apply to SyftBox callers (identified by ``sender``, not by a key).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..config import LimitConfig
from ..state import Limit


class LimitedKey(Protocol):
    """What limits need from a client key (static or virtual; ``accounting`` owns the model)."""

    @property
    def id(self) -> str: ...
    @property
    def alias(self) -> str | None: ...
    @property
    def team(self) -> str | None: ...
    @property
    def rpm(self) -> int | None: ...
    @property
    def tpm(self) -> int | None: ...
    @property
    def max_concurrency(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class _Dims:
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None

    def over(self, base: _Dims | None) -> _Dims:
        """These dimensions where set, ``base``'s elsewhere."""
        if base is None:
            return self
        return _Dims(
            self.rpm if self.rpm is not None else base.rpm,
            self.tpm if self.tpm is not None else base.tpm,
            self.concurrency if self.concurrency is not None else base.concurrency,
        )

    def limit(self, counter: str, label: str) -> Limit | None:
        if self.rpm is None and self.tpm is None and self.concurrency is None:
            return None
        return Limit(counter, self.rpm, self.tpm, self.concurrency, label)


def _dims(cfg: LimitConfig) -> _Dims:
    return _Dims(cfg.rpm, cfg.tpm, cfg.concurrency)


class Limiter:
    """The config's limits, indexed once; ``for_request`` costs a few dict lookups."""

    def __init__(self, limits: Iterable[LimitConfig]) -> None:
        self.default: dict[str, _Dims] = {}
        self.targeted: dict[str, dict[str, _Dims]] = {}
        for cfg in limits:
            if cfg.target is None:
                self.default[cfg.scope] = _dims(cfg)
            else:
                self.targeted.setdefault(cfg.scope, {})[cfg.target] = _dims(cfg)
        self._global = self.default.get("global")

    @property
    def empty(self) -> bool:
        return not self.default and not self.targeted

    def _scoped(self, scope: str, *names: str | None) -> _Dims | None:
        """The untargeted limit of ``scope`` overridden by the first targeted one that names
        one of ``names`` (a key: its id, then its alias)."""
        base = self.default.get(scope)
        targeted = self.targeted.get(scope)
        if targeted:
            for name in names:
                if name is not None and name in targeted:
                    return targeted[name].over(base)
        return base

    def for_request(
        self,
        key: LimitedKey | None = None,
        model: str | None = None,
        sender: str | None = None,
    ) -> tuple[Limit, ...]:
        """The limits of one request, most specific first (that order is only cosmetic: all
        of them must admit it). ``model`` is the model the request was routed to."""
        out: list[Limit] = []
        if sender is not None:
            d = self._scoped("sender", sender)
            lim = d and d.limit("s:" + sender, f"sender {sender}")
            if lim:
                out.append(lim)
        elif key is not None:
            own = _Dims(key.rpm, key.tpm, key.max_concurrency)
            d = own.over(self._scoped("key", key.id, key.alias))
            lim = d.limit("k:" + key.id, f"key {key.alias or key.id}")
            if lim:
                out.append(lim)
            if key.team is not None:
                d2 = self._scoped("team", key.team)
                lim = d2 and d2.limit("t:" + key.team, f"team {key.team}")
                if lim:
                    out.append(lim)
        if model is not None:
            d = self._scoped("model", model)
            lim = d and d.limit("m:" + model, f"model {model}")
            if lim:
                out.append(lim)
        if self._global is not None:
            lim = self._global.limit("g", "the gateway")
            if lim:
                out.append(lim)
        return tuple(out)


def token_estimate(input_tokens: int, max_tokens: int | None) -> int:
    """Tokens a request is admitted on under ``tpm``: its input estimate plus the most it may
    write (``max_tokens``), as OpenAI counts its own TPM. The real usage replaces it when the
    request ends, so a window never holds more than the limit at admission time."""
    return max(input_tokens, 0) + max(max_tokens or 0, 0)
