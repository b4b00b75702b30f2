"""Rate limits: which apply to a request (``Limiter``), the answer's headers in each dialect,
the 429 of a refusal, and deployment rpm/tpm for the retry stage. docs/limits.md."""

from __future__ import annotations

from .deployments import Chosen, DeploymentsBusyError, admit_deployment, deployment_limit, ranked
from .headers import anthropic_headers, go_duration, headers_for, openai_headers, rfc3339
from .refuse import refusal
from .resolve import LimitedKey, Limiter, token_estimate

__all__ = [
    "Chosen",
    "DeploymentsBusyError",
    "LimitedKey",
    "Limiter",
    "admit_deployment",
    "anthropic_headers",
    "deployment_limit",
    "go_duration",
    "headers_for",
    "openai_headers",
    "ranked",
    "refusal",
    "rfc3339",
    "token_estimate",
]
