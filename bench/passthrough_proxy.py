"""The yardstick: a 40-line aiohttp pass-through proxy.

One shared ClientSession; method, path, headers and body relayed; the answer streamed back
chunk by chunk with ``iter_any()``.

python bench/passthrough_proxy.py UPSTREAM_URL [PORT]
"""

import sys

import uvloop
from aiohttp import ClientSession, TCPConnector, web

UPSTREAM = sys.argv[1].rstrip("/")
SESSION = web.AppKey("session", ClientSession)
HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


async def relay(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSION]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    async with session.request(
        request.method, UPSTREAM + request.path_qs, headers=headers, data=await request.read()
    ) as up:
        out_headers = {k: v for k, v in up.headers.items() if k.lower() not in HOP}
        resp = web.StreamResponse(status=up.status, headers=out_headers)
        if up.content_length is not None:
            resp.content_length = up.content_length
        await resp.prepare(request)
        async for data in up.content.iter_any():
            await resp.write(data)
        await resp.write_eof()
        return resp


async def on_startup(app: web.Application) -> None:
    app[SESSION] = ClientSession(connector=TCPConnector(limit=0), auto_decompress=False)


async def on_cleanup(app: web.Application) -> None:
    await app[SESSION].close()


app = web.Application()
app.router.add_route("*", "/{tail:.*}", relay)
app.on_startup.append(on_startup)
app.on_cleanup.append(on_cleanup)

if __name__ == "__main__":
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8098
    web.run_app(
        app, host="127.0.0.1", port=port, access_log=None, print=None, loop=uvloop.new_event_loop()
    )
