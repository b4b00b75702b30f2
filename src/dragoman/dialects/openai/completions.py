"""The legacy ``/v1/completions`` front: a shim over the chat path. The request becomes a chat
request before the pipeline, the chat answer (or stream) becomes a text completion after it
(``translate/completions.py``); no stage or bridge knows the legacy API exists."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson

from ...core.exchange import Reply
from ...core.streams import PrimedStream
from ...protocols import openai as po
from ...protocols.sse import SSEParser
from ...translate.completions import (
    ChatToCompletionStream,
    chat_response_to_completion,
    completion_request_to_chat,
)


def parse(body: Any) -> Any:
    """Check a legacy request (400 naming the field), then turn it into a chat request."""
    po.validate_completion_request(body)
    return completion_request_to_chat(body)


async def reply(chat: Reply) -> Reply:
    """A chat reply as a text completion (a stream: primed, so closing it closes the chat
    stream, and with it the upstream and the end hooks, even before its first byte)."""
    if chat.stream is not None:
        stream = await PrimedStream.start(_legacy_stream(chat.stream))
        return Reply(chat.status, chat.headers, stream=stream)
    out = chat_response_to_completion(orjson.loads(chat.body or b"{}"))
    return Reply(chat.status, chat.headers, body=orjson.dumps(out))


async def _legacy_stream(gen: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """Chat chunks -> legacy text_completion chunks."""
    conv = ChatToCompletionStream()
    parser = SSEParser()
    try:
        async for chunk in gen:
            buf = b""
            for ev in parser.feed(chunk):
                if ev.data == "[DONE]":
                    buf += conv.done()
                    continue
                buf += conv.feed(orjson.loads(ev.data))
            if buf:
                yield buf
    finally:
        aclose = getattr(gen, "aclose", None)
        if aclose is not None:
            await aclose()
