"""The one retry-after parser (``dragoman.retry_after``): every header form, every absurd value."""

from __future__ import annotations

import email.utils

import pytest
from multidict import CIMultiDict

from dragoman.retry_after import DEFAULT_CAP, header_value, parse_retry_after

NOW = 1_800_000_000.0  # wall-clock seconds for the HTTP-date cases


def _date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 7 "}, 7.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"Retry-After": "7"}, 7.0),  # any case, in a plain dict too
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),  # ms wins
        ({"retry-after-ms": "later", "retry-after": "9"}, 9.0),  # unreadable ms: the other one
        ({"retry-after-ms": "nan", "retry-after": "9"}, 9.0),
        ({"retry-after": _date(30)}, 30.0),
        ({"retry-after": _date(-30)}, 0.0),  # a date in the past: now
        ({"retry-after": "-5"}, 0.0),
        ({"retry-after": "-inf"}, 0.0),
        ({"retry-after": "nan"}, None),  # not a number of anything: as if absent
        ({"retry-after": "NaN"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "Mon, 99 Foo 2026 99:99:99 GMT"}, None),
        ({"retry-after": "inf"}, DEFAULT_CAP),
        ({"retry-after": "1e300"}, DEFAULT_CAP),
        ({"retry-after": "9" * 400}, DEFAULT_CAP),
        ({"retry-after-ms": "1e309"}, DEFAULT_CAP),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, DEFAULT_CAP),
        ({"retry-after": _date(10 * 365 * 86400)}, DEFAULT_CAP),
    ],
)
def test_parse(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


def test_case_insensitive_mapping() -> None:
    h = CIMultiDict({"Retry-After-Ms": "250"})
    assert parse_retry_after(h) == 0.25


@pytest.mark.parametrize(
    ("value", "cap", "expected"),
    [("1e300", 50.0, 50.0), ("49", 50.0, 49.0), ("120", 60.0, 60.0), ("5", 0.0, 0.0)],
)
def test_cap(value: str, cap: float, expected: float) -> None:
    assert parse_retry_after({"retry-after": value}, cap=cap) == expected


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.0, "0"), (0.001, "1"), (1.0, "1"), (2.5, "3"), (300.0, "300")]
)
def test_header_value_is_whole_seconds_rounded_up(seconds: float, header: str) -> None:
    assert header_value(seconds) == header
