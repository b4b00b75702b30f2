"""The model map: names, aliases (exact and glob), default model, and each model's deployments."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from ..config import Config, DeploymentConfig, ModelConfig
from ..errors import ModelNotFoundError
from ..providers import Provider
from .deployments import Deployment


@dataclass(eq=False)
class ModelRoute:
    name: str
    config: ModelConfig
    deployments: list[Deployment]

    @property
    def vision(self) -> bool:
        return self.config.vision


class ModelMap:
    def __init__(self, config: Config, providers: dict[str, Provider]) -> None:
        self.config = config
        self.routes: dict[str, ModelRoute] = {}
        for name, mc in config.models.items():
            deps = mc.deployments or [DeploymentConfig(provider=mc.provider or "", model=mc.model)]
            self.routes[name] = ModelRoute(
                name,
                mc,
                [
                    Deployment.from_config(name, i, d, providers[d.provider])
                    for i, d in enumerate(deps)
                ],
            )
        self._lower = {n.lower(): n for n in self.routes}
        self._exact_alias = {a: t for a, t in config.aliases.items() if not _is_glob(a)}
        self._exact_alias_lower = {a.lower(): t for a, t in self._exact_alias.items()}
        self._glob_alias = [(a.lower(), t) for a, t in config.aliases.items() if _is_glob(a)]

    def explain(self, requested: str) -> tuple[ModelRoute, str]:
        """Resolve a requested name and say why it resolved that way."""
        if requested in self.routes:
            return self.routes[requested], f"model {requested!r} is configured"
        if requested in self._exact_alias:
            t = self._exact_alias[requested]
            return self.routes[t], f"alias {requested!r} -> {t!r}"
        low = requested.lower()
        if low in self._lower:
            n = self._lower[low]
            return self.routes[n], f"model {n!r} (case-insensitive match)"
        if low in self._exact_alias_lower:
            t = self._exact_alias_lower[low]
            return self.routes[t], f"alias {requested!r} -> {t!r} (case-insensitive)"
        for pattern, t in self._glob_alias:
            if fnmatch.fnmatchcase(low, pattern):
                return self.routes[t], f"alias pattern {pattern!r} matches -> {t!r}"
        if self.config.default_model:
            d = self.config.default_model
            return self.routes[d], f"no model or alias matches; default_model {d!r}"
        raise ModelNotFoundError(
            # no list of the models here: a key may not be allowed to know them (audit #22)
            f"model: {requested!r} is not served here (GET /v1/models lists the models "
            "this key may use)",
            param="model",
        )

    def resolve(self, requested: str) -> ModelRoute:
        return self.explain(requested)[0]

    def get(self, name: str) -> ModelRoute:
        try:
            return self.routes[name]
        except KeyError:
            return self.resolve(name)

    def names(self) -> list[str]:
        """Model ids to list in /v1/models: models and exact aliases."""
        return list(self.routes) + [a for a in self._exact_alias if a not in self.routes]


def _is_glob(s: str) -> bool:
    return any(c in s for c in "*?[")
