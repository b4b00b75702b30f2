"""Deployment ``rpm``/``tpm`` (docs/limits.md): a deployment at its limit is skipped for another
of the model; when all are, the answer is a 429 that says when the first one frees up.

The retry stage ranks the deployments as its strategy prefers them and asks ``admit_deployment``
for the first with room: one state call for all of them (the alternatives are groups of one
``admit``), none at all when the preferred deployment has no limits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import RateLimitError
from ..state import Limit, State, Ticket
from .headers import retry_headers

T = TypeVar("T")


class DeploymentsBusyError(RateLimitError):
    """Every deployment of a model is at its own rpm/tpm (a fallback model may take it)."""


def deployment_limit(name: str, rpm: int | None, tpm: int | None) -> Limit | None:
    """The counter of one deployment, or None when it has no limits."""
    if rpm is None and tpm is None:
        return None
    return Limit("d:" + name, rpm, tpm, None, f"deployment {name}")


@dataclass(slots=True)
class Chosen(Generic[T]):
    """The deployment that has room, and its ticket (None: it has no limits, or the state was
    unreachable and limits fail open). ``settle`` the ticket when the attempt is over."""

    deployment: T
    ticket: Ticket | None


def ranked(items: Sequence[T], pick: Callable[[list[T]], T | None]) -> list[T]:
    """``items`` in the order ``pick`` (a strategy choosing among what is left) prefers them."""
    left = list(items)
    out: list[T] = []
    while left:
        one = pick(left)
        if one is None:
            break
        out.append(one)
        left.remove(one)
    return out


async def admit_deployment(
    state: State, candidates: Sequence[tuple[T, Limit | None]], tokens: int, model: str
) -> Chosen[T]:
    """The first candidate (in preference order) with room; raises ``DeploymentsBusyError``
    with the time until one frees up when none has."""
    if not candidates:
        raise ValueError("no deployment to choose from")
    groups: list[tuple[Limit, ...]] = []
    for _, lim in candidates:
        groups.append(() if lim is None else (lim,))
        if lim is None:
            break  # an unlimited deployment always has room: nothing after it is needed
    if groups[0] == ():
        return Chosen(candidates[0][0], None)
    adm = await state.admit(groups, tokens)
    if adm.admitted:
        i = max(adm.group, 0)  # a degraded admission (state down, fail open) takes the first
        return Chosen(candidates[i][0], adm.ticket)
    wait = adm.retry_after
    if adm.never or wait is None:
        err = DeploymentsBusyError(
            f"this request may use {tokens} tokens (input estimate + max_tokens), more than any "
            f"deployment of model {model!r} takes per minute: lower max_tokens",
            code="rate_limit_exceeded",
        )
    else:
        err = DeploymentsBusyError(
            f"every deployment of model {model!r} is at its rate limit; retry in {wait:.1f}s",
            code="rate_limit_exceeded",
            retry_after=wait,
            headers=retry_headers(wait),
        )
    err.model = model
    raise err
