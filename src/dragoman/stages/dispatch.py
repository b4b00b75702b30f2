"""The terminal stage: one attempt on the deployment ``retry`` chose.

The bridge for (client dialect, upstream dialect) prepares the upstream request; the attempt
hooks run (the ledger holds on this deployment); the provider is called. A complete answer is
decoded; a stream is returned only once its first upstream event is read and checked, so an
error until then can still be retried or fall back. From there one loop relays it, one codec
call per chunk, and its ``finally`` closes the upstream and runs the reply's end hooks with the
stream's real outcome (``core/streams.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any

import orjson

from ..bridges.base import Attempt, Bridge, Decoded, Prepared, StreamCodec
from ..bridges.registry import bridge_for
from ..core.exchange import Exchange, Reply
from ..core.runtime import Runtime
from ..core.streams import Closing, PrimedStream, StreamOutcome
from ..errors import (
    DragomanError,
    InvalidRequestError,
    OverloadedError,
    ServerError,
    UpstreamRefusal,
    type_for_status,
)
from ..providers import Provider, UpstreamReply, UpstreamStream
from ..upstream import classify

log = logging.getLogger("dragoman.dispatch")


class Dispatch:
    """``bridge.prepare -> provider -> bridge.decode / bridge.codec``; needs ``ex.route`` and
    ``ex.deployment`` (set by ``retry``)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def __call__(self, ex: Exchange) -> Reply:
        route, dep = ex.candidate, ex.chosen
        assert route is not None and dep is not None
        prov = dep.provider
        det = await self.rt.detected(prov)  # a no-op once the server is known
        at = Attempt(ex, route, dep, det)
        bridge = bridge_for(ex.front, prov.kind)
        prep = _prepare(bridge, at)
        # the books follow the deployment tried (and the one that serves)
        ex.route, ex.deployment = route, dep
        for hook in ex.on_attempt:
            await hook(ex, route, dep)
        t0 = time.perf_counter()
        ex.busy = True
        try:
            if ex.stream:
                return await self._stream(at, bridge, prep, t0)
            rep = await _guard(prov.request("POST", prep.path, prep.body, prep.headers))
            if rep.status >= 300:
                raise self.upstream_error(prov, rep)
            ex.ttfb = time.perf_counter() - t0
            decoded = _decode(bridge, at, prep, rep.body)
            if decoded.refusal and route.config.content_policy_fallbacks:
                refused = UpstreamRefusal(f"model {route.name!r} refused the request")
                refused.upstream_status = 200
                raise refused
            ex.ttft = time.perf_counter() - ex.started
            ex.usage = decoded.usage
            return Reply(200, _headers(ex), body=decoded.body)
        except DragomanError:
            ex.busy = False  # the upstream answered (an error) or was never reached
            raise

    async def _stream(self, at: Attempt, bridge: Bridge, prep: Prepared, t0: float) -> Reply:
        ex, prov = at.ex, at.provider
        up = await _guard(prov.stream(prep.path, prep.body, prep.headers))
        if isinstance(up, UpstreamReply):
            raise self.upstream_error(prov, up)
        chunks = up.chunks()
        try:
            first = await _guard(anext(chunks))
        except StopAsyncIteration:
            up.close()
            err = OverloadedError(f"upstream {prov.name} closed the stream at once")
            err.connection_error = True
            raise err from None
        except BaseException:
            up.close()
            raise
        early = bridge.first_event_error(first)
        if early is not None:  # an error event before anything reached the client
            up.close()
            raise classify.retype(early, prov)
        ex.ttfb = time.perf_counter() - t0
        ex.ttft = time.perf_counter() - ex.started
        closing = Closing()
        gen = relay(bridge.codec(at, prep), up, first, chunks, closing)
        # From here the relay owns the connection and the end hooks. Start it now: a
        # generator that never started would not run its cleanup when closed (say, the client
        # left before the first byte).
        ex.busy = False
        stream = await PrimedStream.start(gen, closing)
        return Reply(200, _headers(ex), stream=stream)

    def upstream_error(self, prov: Provider, rep: UpstreamReply) -> DragomanError:
        # typed, scrubbed and with its retry-after read, once (upstream/classify.py)
        return classify.from_answer(
            prov,
            rep.status,
            rep.body,
            rep.headers,
            retry_cap=self.rt.config.routing.cooldown.max_retry_after,
        )


async def relay(
    codec: StreamCodec,
    up: UpstreamStream,
    first: bytes,
    rest: AsyncIterator[bytes],
    closing: Closing,
) -> AsyncGenerator[bytes, None]:
    """Upstream stream -> client stream, in the client's dialect, chunk by chunk.

    Whatever way it ends (complete, upstream failure, client gone), the ``finally`` closes the
    upstream and runs the end hooks once, with the usage the upstream reported or, where it
    reported none, an estimate of what was relayed (docs/accounting.md, "Charge what was
    delivered").
    """
    status = 200
    error: str | None = None
    error_type: str | None = None
    try:
        out = codec.start(first)
        if out:
            yield out
        async for chunk in rest:
            out = codec.feed(chunk)
            if out:
                yield out
        out = codec.finish()
        if out:
            yield out
        failed = codec.failure()
        if failed is not None:
            status, error, error_type = failed
    except Exception as exc:
        # an upstream failure mid-stream, or an event we cannot read: the client gets its
        # dialect's error ending, never a stream that just stops
        err = (
            exc
            if isinstance(exc, DragomanError)
            else ServerError(f"upstream sent an event dragoman cannot read: {exc!r}")
        )
        status, error, error_type = err.status, err.message, err.type
        out = codec.fail(err)
        if out:
            yield out
    except (asyncio.CancelledError, GeneratorExit):
        status, error = 499, "client disconnected"
        raise
    finally:
        up.close()
        if error is None or status == 499:
            error_type = None
        else:
            error_type = error_type or type_for_status(status)
        await closing.close(StreamOutcome(status, error, error_type, codec.settled()))


def _prepare(bridge: Bridge, at: Attempt) -> Prepared:
    try:
        return bridge.prepare(at)
    except DragomanError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        # the validators accept liberally; a shape the translator cannot read is still the
        # caller's mistake, and must come back as a 400, never a 500
        log.info("request %s could not be translated: %r", at.ex.request_id, e)
        raise InvalidRequestError(
            f"request could not be translated for {at.provider.kind} upstream "
            f"{at.provider.name!r}: malformed field ({type(e).__name__}: {e})"
        ) from None


def _decode(bridge: Bridge, at: Attempt, prep: Prepared, raw: bytes) -> Decoded:
    """Non-streamed upstream body -> client body, usage, and whether it was a refusal."""
    try:
        return bridge.decode(at, prep, raw)
    except DragomanError:
        raise
    except (orjson.JSONDecodeError, TypeError, ValueError, KeyError, AttributeError) as e:
        # the upstream said 200 but sent something that is not an answer: a bad gateway,
        # never a 500 of ours (and worth another deployment)
        log.warning("unreadable upstream answer for %s: %r", at.ex.request_id, e)
        err = OverloadedError(f"upstream answered 200 with a body dragoman cannot read: {e}")
        err.status = 502
        err.type = "api_error"
        err.connection_error = True
        raise err from None


def _headers(ex: Exchange) -> dict[str, str]:
    assert ex.route is not None and ex.deployment is not None
    return {
        "x-dragoman-model": ex.route.name,
        "x-dragoman-deployment": ex.deployment.name,
        "x-dragoman-attempts": str(ex.attempts),
        "request-id": ex.request_id,
        "x-request-id": ex.request_id,
    }


async def _guard(aw: Awaitable[Any]) -> Any:
    """Await an upstream call; transport failures become retryable connection errors."""
    try:
        return await aw
    except DragomanError as e:
        if e.upstream_status is None:
            e.connection_error = True
        raise
