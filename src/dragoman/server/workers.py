"""``dragoman serve --workers N``: N gateway processes on one port (docs/limits.md, "Many
processes").

The parent serves nothing: it reserves the port with a bound (never listening) ``SO_REUSEPORT``
socket, so ``--port 0`` gives every worker the same port, then runs N ordinary ``dragoman serve``
processes that each listen on it with ``SO_REUSEPORT`` (the kernel spreads connections over
them). Each worker is a whole gateway of its own: its own store connection and instance id for
crash recovery, its own event loop. What must be exact across them (limits, cooldowns, the
cache) lives in the ``state`` backend, so N > 1 needs ``state.url``.

The parent forwards SIGTERM and SIGINT to the workers and exits when they have stopped; a worker
that exits by itself stops the others (a supervisor restarts the whole group).
"""

from __future__ import annotations

import ctypes
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import IO

from ..config import Config

log = logging.getLogger("dragoman")

_SERVING = re.compile(r"dragoman serving on http://\S+:(\d+) ")
#: seconds the workers have to report they serve
START_TIMEOUT = 120.0
_PR_SET_PDEATHSIG = 1


def refusal(cfg: Config, workers: int) -> str | None:
    """Why ``--workers`` cannot run with this config (None: it can)."""
    if workers < 1:
        return "--workers must be at least 1"
    if workers > 1 and not cfg.state.url:
        return (
            f"--workers {workers} needs state.url (a Redis URL): without it, rate limits, "
            "deployment cooldowns and the response cache would be kept in each process's "
            f"memory, so every limit would let {workers} times its value through"
        )
    return None


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEPORT, not listening: it holds the port
    (the one the OS picked for port 0) while the workers listen on it."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
    except BaseException:
        sock.close()
        raise
    return sock


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, looked up here in the parent: the child between fork and exec only
    calls it (no dynamic loading there, where another thread may hold the loader's lock)."""
    if sys.platform != "linux":
        return None
    try:
        fn: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return fn


_PRCTL = _prctl()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the worker gets SIGTERM when the parent dies (even by SIGKILL)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


class _Worker:
    def __init__(self, cmd: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            list(cmd),
            stdout=subprocess.PIPE,
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)

    def _drain(self) -> None:
        """Wait for the worker's 'serving on' line; pass on whatever else it prints."""
        out: IO[bytes] | None = self.proc.stdout
        assert out is not None
        for raw in iter(out.readline, b""):
            line = raw.decode("utf-8", "replace")
            if not self.ready.is_set() and _SERVING.search(line):
                self.ready.set()
                continue
            sys.stdout.write(line)
            sys.stdout.flush()
        self.ready.set()  # ended: whoever waits looks at the exit code


def run(cfg: Config, workers: int, child_args: Sequence[str], banner: str) -> int:
    """Run ``workers`` copies of ``dragoman serve <child_args> --port P --worker``; the exit
    code. ``banner`` is printed after the first line once every worker serves."""
    sock = reserve_port(cfg.server.host, cfg.server.port)
    port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "dragoman", "serve", *child_args, "--port", str(port), "--worker"]
    stopping = threading.Event()
    procs: list[_Worker] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        for w in procs:
            if w.proc.poll() is None:
                w.proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        # the first worker alone: it migrates the store and sets up its master key, which
        # N processes at once would race for (SQLite has no migration lock)
        first = _Worker(cmd)
        procs.append(first)
        first.thread.start()
        first.ready.wait(START_TIMEOUT)
        if first.proc.poll() is None and not stopping.is_set():
            for _ in range(workers - 1):
                w = _Worker(cmd)
                procs.append(w)
                w.thread.start()
            if stopping.is_set():  # a signal came while some were not started yet
                forward(signal.SIGTERM, None)
        code = _supervise(procs, stopping, cfg, port, banner)
    finally:
        for w in procs:
            if w.proc.poll() is None:
                w.proc.terminate()
        for w in procs:
            w.proc.wait()
            w.thread.join(5)
        for s, h in old.items():
            signal.signal(s, h)
        sock.close()
    return code


def _supervise(
    procs: list[_Worker], stopping: threading.Event, cfg: Config, port: int, banner: str
) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    for w in procs:
        if not w.ready.wait(max(deadline - time.monotonic(), 0)) or w.proc.poll() is not None:
            if stopping.is_set():
                return 0
            code = w.proc.poll()
            log.error("a worker did not start (exit code %s): stopping the others", code)
            return code or 1
    host = f"[{cfg.server.host}]" if ":" in cfg.server.host else cfg.server.host
    pids = ", ".join(str(w.proc.pid) for w in procs)
    print(
        f"dragoman serving on http://{host}:{port} ({cfg.source}; {len(procs)} workers: {pids})",
        flush=True,
    )
    print(banner, flush=True)
    while True:
        for w in procs:
            code = w.proc.poll()
            if code is None:
                continue
            if stopping.is_set():
                return max((p.proc.wait() for p in procs), key=abs)
            log.error("worker %d exited with code %s: stopping the others", w.proc.pid, code)
            return code or 1
        time.sleep(0.1)
