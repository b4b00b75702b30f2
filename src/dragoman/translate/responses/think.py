"""Reasoning that leaks into ``content`` as ``<think>...</think>`` (a server run without a
reasoning parser) is routed back to reasoning, as the Anthropic stream translator
(``stream_o2a``) does (docs/responses-integration.md, section 2). Only a ``<think>`` that opens
the answer counts; a tag split across chunks is held until it can be decided."""

from __future__ import annotations

from typing import Literal

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
#: leading whitespace held while undecided, at most (then it is plain text)
_MAX_HELD = 256

Piece = tuple[Literal["reasoning", "text"], str]


class ThinkSplitter:
    __slots__ = ("_buf", "_state")

    def __init__(self) -> None:
        #: undecided until the first content shows whether it opens with the tag
        self._state: Literal["undecided", "inside", "done"] = "undecided"
        self._buf = ""

    def stop(self) -> None:
        """The upstream has a real reasoning channel: content is content."""
        if self._state == "undecided" and not self._buf:
            self._state = "done"

    def feed(self, c: str) -> list[Piece]:
        if self._state == "done":
            return [("text", c)]
        out: list[Piece] = []
        if self._state == "undecided":
            buf = self._buf + c
            probe = buf.lstrip()
            undecided = not probe or (len(probe) < len(OPEN_TAG) and OPEN_TAG.startswith(probe))
            if undecided and len(buf) <= _MAX_HELD:
                self._buf = buf
                return out
            self._buf = ""
            if not probe.startswith(OPEN_TAG):
                self._state = "done"
                return [("text", buf)]
            self._state = "inside"
            c = probe[len(OPEN_TAG) :]
            if not c:
                return out
        buf = self._buf + c
        end = buf.find(CLOSE_TAG)
        if end >= 0:
            if end:
                out.append(("reasoning", buf[:end]))
            self._buf = ""
            self._state = "done"
            rest = buf[end + len(CLOSE_TAG) :].lstrip("\n")
            if rest:
                out.append(("text", rest))
            return out
        keep = 0
        for n in range(min(len(CLOSE_TAG) - 1, len(buf)), 0, -1):
            if CLOSE_TAG.startswith(buf[-n:]):
                keep = n
                break
        emit = buf[: len(buf) - keep]
        self._buf = buf[len(buf) - keep :]
        if emit:
            out.append(("reasoning", emit))
        return out

    def flush(self) -> list[Piece]:
        """Something other than content arrives, or the stream ends: settle what is held."""
        buf, self._buf = self._buf, ""
        if self._state == "undecided":
            if buf:
                self._state = "done"
                return [("text", buf)]
            return []
        if self._state == "inside" and buf:
            return [("reasoning", buf)]
        return []
