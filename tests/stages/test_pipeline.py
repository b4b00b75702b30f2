"""``core/pipeline.py`` and ``core/streams.py``: the order is the list's, and a stream's end hooks
run exactly once however it ends (complete, broken, closed before or after its first byte, or
over before a stage registered)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from dragoman.core.exchange import Exchange, Reply
from dragoman.core.pipeline import Next, build_pipeline
from dragoman.core.streams import Closing, PrimedStream, StreamOutcome

from .support import exchange


async def test_first_stage_is_outermost() -> None:
    seen: list[str] = []

    def stage(name: str):  # type: ignore[no-untyped-def]
        async def run(ex: Exchange, next: Next) -> Reply:
            seen.append(f"{name}>")
            reply = await next(ex)
            seen.append(f"<{name}")
            return reply

        return run

    async def terminal(ex: Exchange) -> Reply:
        seen.append("terminal")
        return Reply(200, {}, body=b"{}")

    run = build_pipeline([stage("a"), stage("b")], terminal)
    assert (await run(exchange())).status == 200
    assert seen == ["a>", "b>", "terminal", "<b", "<a"]


def _stream(closing: Closing, parts: list[bytes], fail: bool = False) -> AsyncGenerator[bytes]:
    async def gen() -> AsyncGenerator[bytes]:
        status = 200
        try:
            for p in parts:
                yield p
            if fail:
                status = 502
        except GeneratorExit:
            status = 499
            raise
        finally:
            await closing.close(StreamOutcome(status))

    return gen()


async def _primed(parts: list[bytes], fail: bool = False) -> tuple[PrimedStream, list[int]]:
    closing = Closing()
    stream = await PrimedStream.start(_stream(closing, parts, fail), closing)
    ended: list[int] = []

    async def hook(o: StreamOutcome) -> None:
        ended.append(o.status)

    stream.on_close(hook)
    return stream, ended


async def test_hooks_run_once_when_the_stream_completes() -> None:
    stream, ended = await _primed([b"a", b"b"])
    assert [c async for c in stream] == [b"a", b"b"]
    await stream.aclose()
    assert ended == [200]


async def test_hooks_run_once_when_the_stream_breaks() -> None:
    stream, ended = await _primed([b"a"], fail=True)
    assert [c async for c in stream] == [b"a"]
    await stream.aclose()
    assert ended == [502]


@pytest.mark.parametrize("read", [0, 1])
async def test_hooks_run_once_when_the_client_leaves(read: int) -> None:
    """Before its first byte was read (primed, so the generator's cleanup runs) or after."""
    stream, ended = await _primed([b"a", b"b", b"c"])
    for _ in range(read):
        await anext(stream)
    await stream.aclose()
    await stream.aclose()
    assert ended == [499]


async def test_a_hook_registered_after_the_stream_ended_still_runs_once() -> None:
    closing = Closing()

    async def one() -> AsyncGenerator[bytes]:
        try:
            if False:
                yield b""
        finally:
            await closing.close(StreamOutcome(200))

    stream = await PrimedStream.start(one(), closing)  # over while priming
    ended: list[int] = []

    async def hook(o: StreamOutcome) -> None:
        ended.append(o.status)

    stream.on_close(hook)
    assert [c async for c in stream] == []
    await stream.aclose()
    assert ended == [200]


async def test_a_failing_hook_does_not_skip_the_others() -> None:
    stream, ended = await _primed([b"a"])

    async def bad(o: StreamOutcome) -> None:
        raise RuntimeError("boom")

    async def good(o: StreamOutcome) -> None:
        ended.append(-1)

    stream.on_close(bad)
    stream.on_close(good)
    await stream.aclose()
    assert ended == [499, -1]
