"""Load the recorded-shape traffic fixtures in ``tests/fixtures/``."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import orjson

from ..fakes.sse import SSEEvent, parse_sse, split_frames

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"


def fixture_path(name: str) -> Path:
    path = FIXTURES_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"no fixture {name!r} in {FIXTURES_DIR}")
    return path


@functools.cache
def _read(name: str) -> bytes:
    return fixture_path(name).read_bytes()


def load_bytes(name: str) -> bytes:
    return _read(name)


def load_json(name: str) -> Any:
    """Parsed JSON fixture (a fresh deep copy each call: mutate freely)."""
    return copy.deepcopy(_parsed(name))


@functools.cache
def _parsed(name: str) -> Any:
    return orjson.loads(_read(name))


def load_request(name: str) -> tuple[dict[str, str], dict[str, Any]]:
    """``(headers, body)`` of a recorded request fixture (``claude_code_*.json``)."""
    data = load_json(name)
    return data["headers"], data["body"]


def load_sse(name: str) -> list[SSEEvent]:
    """Parsed events of an ``.sse`` fixture (``[DONE]`` included as an event)."""
    return parse_sse(_read(name))


def load_sse_frames(name: str) -> list[bytes]:
    """Raw frames (each ending with its blank line) of an ``.sse`` fixture."""
    return split_frames(_read(name))


def load_sse_json(name: str) -> list[Any]:
    """The JSON payloads of an ``.sse`` fixture, ``[DONE]`` dropped."""
    return [e.json() for e in load_sse(name) if not e.is_done]
