"""Async load driver for LLM endpoints: fixed concurrency, warm-up, then a timed (or counted) run.

Each of ``--concurrency`` workers keeps one keep-alive connection and sends requests back to
back. Non-stream requests report latency; streams also report the time to the first body byte
(TTFB) and to the first token event (TTFT: the first ``content_block_delta`` for Anthropic, the
first chunk with non-empty ``content``/``arguments`` for OpenAI) and the time to the end.
Every answer is checked (status 200, JSON with content and usage, or an SSE stream that ends
properly); anything else counts as an error, and a run with errors says so.

With ``--ref-url`` the same load goes at the same time to a reference (the upstream itself), and
the result carries the reference's TTFT and the difference: added latency measured under the
same noise, which a shared machine needs.

With ``--cpu-pid`` the driver also reads the CPU time of those processes (all threads) at the
start and the end of the measured window, from ``/proc/<pid>/task/*/schedstat`` (ns) with
``/proc/<pid>/stat`` utime+stime (clock ticks) as a cross-check.

The default client (``--client raw``) is a minimal HTTP/1.1 client on an asyncio protocol: on one
core it drives several times the load an aiohttp client can, which matters because the driver
shares its core with the fake upstream. ``--client aiohttp`` uses aiohttp for cross-checking.

    python bench/load.py --url http://127.0.0.1:8098 --api anthropic --stream -c 16 -d 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import orjson

SYSTEM = (
    "You are a helpful assistant working inside a software project. Answer concisely, cite the "
    "files you rely on, and prefer small, reviewable changes. When you are not sure, say so and "
    "explain what you would check next."
)
TURNS = [
    ("user", "What does the gateway do with a request whose model is unknown?"),
    (
        "assistant",
        "It answers 404 with a message naming the model and the models it knows, in the error "
        "format of the API the client used.",
    ),
    (
        "user",
        "Good. Now summarise in two sentences how streaming responses are relayed, and what is "
        "counted for usage once the stream ends.",
    ),
]
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "City and country"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 10},
    },
    "required": ["location"],
}


def request_body(api: str, model: str, stream: bool, tools: bool) -> bytes:
    """A realistic request (system prompt, three turns, ~1 KB) in the client API's format."""
    body: dict[str, Any]
    if api == "anthropic":
        body = {
            "model": model,
            "max_tokens": 1024,
            "system": SYSTEM,
            "messages": [{"role": r, "content": c} for r, c in TURNS],
            "temperature": 0.7,
        }
        if tools:
            body["tools"] = [
                {
                    "name": "get_weather",
                    "description": "Weather forecast for a city",
                    "input_schema": WEATHER_SCHEMA,
                }
            ]
        if stream:
            body["stream"] = True
    else:
        body = {
            "model": model,
            "max_tokens": 1024,
            "messages": [{"role": "system", "content": SYSTEM}]
            + [{"role": r, "content": c} for r, c in TURNS],
            "temperature": 0.7,
        }
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Weather forecast for a city",
                        "parameters": WEATHER_SCHEMA,
                    },
                }
            ]
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def api_path(api: str) -> str:
    return "/v1/messages" if api == "anthropic" else "/v1/chat/completions"


def api_headers(api: str) -> dict[str, str]:
    if api == "anthropic":
        return {"x-api-key": "bench", "anthropic-version": "2023-06-01"}
    return {"authorization": "Bearer bench"}


# First token event of a stream, per client API (tolerant of whitespace and key order).
TOKEN_RE = {
    "anthropic": re.compile(rb'"type"\s*:\s*"content_block_delta"'),
    "openai": re.compile(rb'"(?:content|arguments)"\s*:\s*"[^"]'),
}


# ---------------------------------------------------------------- checking answers


class Malformed(Exception):
    pass


def check_json(api: str, body: bytes) -> None:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise Malformed(f"not JSON: {body[:120]!r}") from e
    if api == "anthropic":
        ok = obj.get("type") == "message" and obj.get("content") and "usage" in obj
    else:
        ok = bool(obj.get("choices")) and "message" in obj["choices"][0] and "usage" in obj
    if not ok:
        raise Malformed(f"unexpected {api} JSON: {body[:200]!r}")


def check_stream(api: str, body: bytes, strict: bool) -> None:
    tail = body[-300:]
    if api == "anthropic":
        if b"message_stop" not in tail:
            raise Malformed(f"stream without message_stop: ...{tail[-120:]!r}")
    elif b"data: [DONE]" not in tail:
        raise Malformed(f"stream without [DONE]: ...{tail[-120:]!r}")
    if not strict:
        return
    events = [e for e in body.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]
    names: list[str] = []
    usage = False
    for ev in events:
        data = b"\n".join(ln[5:].lstrip() for ln in ev.split(b"\n") if ln.startswith(b"data:"))
        if data == b"[DONE]":
            names.append("[DONE]")
            continue
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise Malformed(f"event data is not JSON: {ev[:160]!r}") from e
        names.append(str(obj.get("type") or obj.get("object")))
        usage = usage or bool(obj.get("usage")) or bool(obj.get("message", {}).get("usage"))
    need = (
        ["message_start", "content_block_start", "content_block_delta", "message_delta"]
        if api == "anthropic"
        else ["chat.completion.chunk", "[DONE]"]
    )
    for n in need:
        if n not in names:
            raise Malformed(f"stream has no {n} event: {names}")
    if not usage:
        raise Malformed("stream carries no usage")


# ---------------------------------------------------------------- raw HTTP/1.1 client


@dataclass
class Answer:
    status: int = 0
    body: bytearray = field(default_factory=bytearray)
    t_first: float = 0.0  # first body byte
    t_token: float = 0.0  # first token event (streams)
    t_end: float = 0.0


class HttpError(Exception):
    pass


class RawConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, token_re: re.Pattern[bytes] | None) -> None:
        self.token_re = token_re
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.fut: asyncio.Future[Answer] | None = None
        self.ans = Answer()
        self.closed = False
        self.state = 0  # 0 headers, 1 content-length body, 2 chunked body, 3 until EOF
        self.remaining = 0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.fut and not self.fut.done():
            if self.state == 3:
                self._finish()
            else:
                self.fut.set_exception(HttpError(f"connection lost: {exc}"))

    def send(self, data: bytes, timeout: float) -> asyncio.Future[Answer]:
        if self.closed or self.transport is None:
            raise HttpError("connection closed")
        loop = asyncio.get_running_loop()
        self.fut = loop.create_future()
        self.timer = loop.call_later(timeout, self._timeout, timeout)
        self.ans = Answer()
        self.state = 0
        self.transport.write(data)
        return self.fut

    def _timeout(self, timeout: float) -> None:
        if self.fut and not self.fut.done():
            self.fut.set_exception(TimeoutError(f"no complete answer in {timeout} s"))

    def _body(self, data: bytes) -> None:
        ans = self.ans
        if not ans.t_first:
            ans.t_first = time.perf_counter()
        if self.token_re is not None and not ans.t_token and self.token_re.search(data):
            ans.t_token = time.perf_counter()
        ans.body += data

    def _finish(self) -> None:
        self.ans.t_end = time.perf_counter()
        if self.timer is not None:
            self.timer.cancel()
        self.state = 0
        if self.fut and not self.fut.done():
            self.fut.set_result(self.ans)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        buf = self.buf
        while buf:
            if self.state == 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = bytes(buf[:end]).split(b"\r\n")
                del buf[: end + 4]
                self.ans.status = int(lines[0].split(b" ", 2)[1])
                length = -1
                chunked = False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"transfer-encoding":
                        chunked = b"chunked" in value.lower()
                if chunked:
                    self.state = 2
                elif length >= 0:
                    self.state = 1
                    self.remaining = length
                    if length == 0:
                        self._finish()
                else:
                    self.state = 3
            elif self.state == 1:
                take = bytes(buf[: self.remaining])
                del buf[: len(take)]
                self.remaining -= len(take)
                self._body(take)
                if self.remaining == 0:
                    self._finish()
            elif self.state == 2:
                eol = buf.find(b"\r\n")
                if eol < 0:
                    return
                size = int(bytes(buf[:eol]).split(b";")[0], 16)
                if size == 0:
                    if len(buf) < eol + 4:
                        return
                    del buf[: eol + 4]
                    self._finish()
                    continue
                if len(buf) < eol + 2 + size + 2:
                    return
                chunk = bytes(buf[eol + 2 : eol + 2 + size])
                del buf[: eol + 2 + size + 2]
                self._body(chunk)
            else:
                self._body(bytes(buf))
                buf.clear()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class Target:
    url: str
    api: str
    model: str
    stream: bool
    tools: bool = False

    def raw_request(self) -> bytes:
        u = urlsplit(self.url)
        body = request_body(self.api, self.model, self.stream, self.tools)
        hdrs = {
            "host": u.netloc,
            "content-type": "application/json",
            "accept": "text/event-stream" if self.stream else "application/json",
            "content-length": str(len(body)),
            **api_headers(self.api),
        }
        head = f"POST {u.path.rstrip('/')}{api_path(self.api)} HTTP/1.1\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        return head.encode() + b"\r\n" + body


Send = Callable[[], Awaitable[Answer]]


async def raw_client(t: Target, req_timeout: float) -> tuple[Send, Callable[[], None]]:
    u = urlsplit(t.url)
    loop = asyncio.get_running_loop()
    req = t.raw_request()
    token_re = TOKEN_RE[t.api] if t.stream else None
    conn: RawConn | None = None

    async def send() -> Answer:
        nonlocal conn
        if conn is None or conn.closed:
            _, conn = await loop.create_connection(
                lambda: RawConn(token_re), u.hostname, u.port or 80
            )
        try:
            return await conn.send(req, req_timeout)
        except BaseException:
            conn.close()
            conn = None
            raise

    def close() -> None:
        if conn is not None:
            conn.close()

    return send, close


async def aiohttp_client(t: Target, req_timeout: float) -> tuple[Send, Callable[[], None]]:
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=req_timeout),
    )
    url = t.url.rstrip("/") + api_path(t.api)
    body = request_body(t.api, t.model, t.stream, t.tools)
    headers = {"content-type": "application/json", **api_headers(t.api)}
    token_re = TOKEN_RE[t.api] if t.stream else None

    async def send() -> Answer:
        ans = Answer()
        async with session.post(url, data=body, headers=headers) as r:
            ans.status = r.status
            async for data in r.content.iter_any():
                if not ans.t_first:
                    ans.t_first = time.perf_counter()
                if token_re is not None and not ans.t_token and token_re.search(data):
                    ans.t_token = time.perf_counter()
                ans.body += data
        ans.t_end = time.perf_counter()
        return ans

    def close() -> None:
        asyncio.get_running_loop().create_task(session.close())

    return send, close


# ---------------------------------------------------------------- CPU accounting

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """(schedstat seconds, utime+stime seconds) summed over the processes and their threads."""
    sched = 0.0
    ticks = 0
    for pid in pids:
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                try:
                    sched += int((task / "schedstat").read_text().split()[0]) / 1e9
                except (OSError, ValueError, IndexError):
                    pass
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return sched, ticks / CLK_TCK


def core_busy(cores: list[int]) -> dict[int, float]:
    """Busy seconds (user+nice+system+irq+softirq+steal) of each listed core, from /proc/stat."""
    out: dict[int, float] = {}
    for ln in Path("/proc/stat").read_text().splitlines():
        if not ln.startswith("cpu") or ln.startswith("cpu "):
            continue
        name, *vals = ln.split()
        n = int(name[3:])
        if n in cores:
            v = [int(x) for x in vals]
            out[n] = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK
    return out


# ---------------------------------------------------------------- the run


def pct(xs: list[float], q: float) -> float:
    """Percentile by linear interpolation; NaN for no samples."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass
class Run:
    measuring: bool = False
    stop: bool = False
    issued: int = 0
    limit: int = 0  # requests to measure; 0 = by duration
    done: asyncio.Event = field(default_factory=asyncio.Event)
    lat: list[float] = field(default_factory=list)
    ttfb: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    warm_errors: int = 0
    samples: list[str] = field(default_factory=list)

    def error(self, msg: str) -> None:
        if self.measuring:
            self.errors += 1
        else:
            self.warm_errors += 1
        if len(self.samples) < 5:
            self.samples.append(msg[:300])


async def worker(
    t: Target, run: Run, client: str, strict: bool, req_timeout: float, stagger: float
) -> None:
    factory = raw_client if client == "raw" else aiohttp_client
    send, close = await factory(t, req_timeout)
    await asyncio.sleep(stagger)
    try:
        while not run.stop:
            if run.measuring and run.limit:
                if run.issued >= run.limit:
                    return
                run.issued += 1
            counted = run.measuring
            t0 = time.perf_counter()
            try:
                ans = await send()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if run.stop:
                    return
                run.error(f"{type(e).__name__}: {e}")
                await asyncio.sleep(0.01)
                continue
            if run.stop:
                return
            try:
                if ans.status != 200:
                    raise Malformed(f"HTTP {ans.status}: {bytes(ans.body[:200])!r}")
                if t.stream:
                    check_stream(t.api, bytes(ans.body), strict)
                    if not ans.t_token:
                        raise Malformed("stream without a token event")
                else:
                    check_json(t.api, bytes(ans.body))
            except Malformed as e:
                run.error(str(e))
                continue
            if run.measuring:
                run.ok += 1
                run.lat.append(ans.t_end - t0)
                if t.stream:
                    run.ttfb.append(ans.t_first - t0)
                    run.ttft.append(ans.t_token - t0)
                if counted and run.limit and run.ok + run.errors >= run.limit:
                    run.done.set()
    finally:
        close()


async def measure(
    t: Target,
    concurrency: int,
    duration: float,
    warmup: float,
    requests: int = 0,
    client: str = "raw",
    strict: bool = False,
    req_timeout: float = 30.0,
    cpu_pids: list[int] | None = None,
    watch_cores: list[int] | None = None,
    ref: Target | None = None,
) -> dict[str, Any]:
    run = Run(limit=requests)
    ref_run = Run()
    pids = cpu_pids or []
    # stagger the start of slow streams a little, so they do not all arrive in lock-step
    tasks = [
        asyncio.create_task(
            worker(t, run, client, strict, req_timeout, (i / concurrency) * min(warmup, 0.05))
        )
        for i in range(concurrency)
    ]
    # the same load sent straight to a reference (the upstream) at the same time, so that the
    # time-to-first-token difference is measured under the same noise
    ref_tasks = (
        []
        if ref is None
        else [
            asyncio.create_task(
                worker(ref, ref_run, client, False, req_timeout, i / concurrency * 0.05)
            )
            for i in range(concurrency)
        ]
    )
    await asyncio.sleep(warmup)
    cores = watch_cores or []
    busy0 = core_busy(cores)
    self0 = time.process_time()
    cpu0 = cpu_seconds(pids)
    t_start = time.perf_counter()
    run.measuring = ref_run.measuring = True
    if requests:
        waiter = asyncio.create_task(run.done.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_EXCEPTION)
        if not waiter.done():
            await asyncio.wait_for(waiter, req_timeout)
    else:
        await asyncio.sleep(duration)
    elapsed = time.perf_counter() - t_start
    cpu1 = cpu_seconds(pids)
    self1 = time.process_time()
    busy1 = core_busy(cores)
    run.measuring = ref_run.measuring = False
    run.stop = ref_run.stop = True
    for task in tasks + ref_tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, *ref_tasks, return_exceptions=True)
    for r in results:
        if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError):
            run.error(f"worker died: {type(r).__name__}: {r}")
    n = run.ok
    cpu = cpu1[0] - cpu0[0]
    ms = 1000.0
    out: dict[str, Any] = {
        "url": t.url,
        "api": t.api,
        "model": t.model,
        "stream": t.stream,
        "tools": t.tools,
        "concurrency": concurrency,
        "client": client,
        "duration_s": round(elapsed, 3),
        "requests": n,
        "errors": run.errors,
        "warmup_errors": run.warm_errors,
        "error_samples": run.samples,
        "rps": n / elapsed if elapsed else 0.0,
        "p50_ms": pct(run.lat, 0.5) * ms,
        "p99_ms": pct(run.lat, 0.99) * ms,
        "mean_ms": (statistics.fmean(run.lat) * ms) if run.lat else float("nan"),
        "driver_util": (self1 - self0) / elapsed if elapsed else 0.0,
        "core_busy": {str(c): (busy1[c] - busy0[c]) / elapsed for c in busy1 if elapsed},
    }
    if t.stream:
        out |= {
            "ttfb_p50_ms": pct(run.ttfb, 0.5) * ms,
            "ttft_p50_ms": pct(run.ttft, 0.5) * ms,
            "ttft_p99_ms": pct(run.ttft, 0.99) * ms,
        }
    if ref is not None:
        out |= {
            "ref_url": ref.url,
            "ref_api": ref.api,
            "ref_requests": ref_run.ok,
            "ref_errors": ref_run.errors,
            "ref_p50_ms": pct(ref_run.lat, 0.5) * ms,
        }
        if t.stream:
            out |= {
                "ref_ttft_p50_ms": pct(ref_run.ttft, 0.5) * ms,
                "ref_ttft_p99_ms": pct(ref_run.ttft, 0.99) * ms,
                "ttft_added_p50_ms": (pct(run.ttft, 0.5) - pct(ref_run.ttft, 0.5)) * ms,
                "ttft_added_p99_ms": (pct(run.ttft, 0.99) - pct(ref_run.ttft, 0.99)) * ms,
            }
    if pids:
        out |= {
            "cpu_pids": pids,
            "cpu_s": cpu,
            "cpu_s_ticks": cpu1[1] - cpu0[1],
            "cpu_util": cpu / elapsed if elapsed else 0.0,
            "cpu_ms_per_req": cpu / n * ms if n else float("nan"),
        }
    return out


def summary(r: dict[str, Any]) -> str:
    s = (
        f"{r['api']:9} {'stream' if r['stream'] else 'json':6} c={r['concurrency']:<3} "
        f"{r['rps']:8.0f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
    )
    if r["stream"]:
        s += f"  TTFT p50 {r['ttft_p50_ms']:6.2f} p99 {r['ttft_p99_ms']:6.2f} ms"
    if "ttft_added_p50_ms" in r:
        s += f" (+{r['ttft_added_p50_ms']:.2f} ms vs reference)"
    if "cpu_ms_per_req" in r:
        s += f"  CPU {r['cpu_ms_per_req']:.3f} ms/req ({r['cpu_util'] * 100:.0f}% core)"
    if r["errors"] or r["warmup_errors"]:
        s += f"  ERRORS {r['errors']} (+{r['warmup_errors']} in warm-up): {r['error_samples'][:2]}"
    return s


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8090")
    p.add_argument("--api", choices=["anthropic", "openai"], default="anthropic")
    p.add_argument("--model", default="claude-bench")
    p.add_argument("--stream", action="store_true")
    p.add_argument("--tools", action="store_true", help="send a tool definition")
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("-d", "--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("-n", "--requests", type=int, default=0, help="measure N requests instead")
    p.add_argument("-w", "--warmup", type=float, default=2.0, help="seconds before measuring")
    p.add_argument("--client", choices=["raw", "aiohttp"], default="raw")
    p.add_argument("--strict", action="store_true", help="parse every SSE event")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--cpu-pid", type=int, action="append", default=[], help="process to meter")
    p.add_argument("--watch-core", type=int, action="append", default=[], help="report busy %%")
    p.add_argument("--ref-url", help="also load this reference (e.g. the upstream) meanwhile")
    p.add_argument("--ref-api", choices=["anthropic", "openai"], help="default: --api")
    p.add_argument("--ref-model", help="default: --model")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    a = p.parse_args()
    install_uvloop()
    target = Target(a.url, a.api, a.model, a.stream, a.tools)
    ref = None
    if a.ref_url:
        ref = Target(a.ref_url, a.ref_api or a.api, a.ref_model or a.model, a.stream, a.tools)
    result = asyncio.run(
        measure(
            target,
            a.concurrency,
            a.duration,
            a.warmup,
            a.requests,
            a.client,
            a.strict,
            a.timeout,
            a.cpu_pid,
            a.watch_core,
            ref,
        )
    )
    if a.json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        print(summary(result))
    if result["errors"] or result["warmup_errors"]:
        sys.exit(3)


if __name__ == "__main__":
    main()
