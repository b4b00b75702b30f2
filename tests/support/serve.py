"""``python -m dragoman serve`` as a real process, on a port the OS picked (``--port 0``).

    with ServeProcess(config_path, env={"DRAGOMAN_MASTER_KEY": "..."}) as srv:
        http.get(srv.url + "/ping")

The port is read from the first line ``serve`` prints (``dragoman serving on http://HOST:PORT``),
so no port is guessed beforehand (no bind-close-reuse race). Both pipes are drained by threads,
so a chatty server never blocks on a full pipe; ``output()`` returns what it wrote so far.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Self

_SERVING = re.compile(r"dragoman serving on (http://\S+?):(\d+) ")


class ServeProcess:
    def __init__(
        self,
        config: str | Path,
        *,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        start_timeout: float = 60.0,
    ) -> None:
        self.config = str(config)
        self.env = {**os.environ, "DRAGOMAN_LOG_LEVEL": "WARNING", **(env or {})}
        self.args = list(args)
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.url = ""
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        cmd = [sys.executable, "-m", "dragoman", "serve", "--config", self.config, "--port", "0"]
        self.proc = subprocess.Popen(
            cmd + self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for name, pipe in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            t = threading.Thread(target=self._drain, args=(name, pipe), daemon=True)
            t.start()
            self._threads.append(t)
        if not self._ready.wait(self.start_timeout) or not self.port:
            code = self.proc.poll()
            self.kill()
            raise AssertionError(
                f"dragoman serve did not report its port (exit code {code}):\n{self.output()}"
            )
        return self

    def _drain(self, name: str, pipe: IO[bytes]) -> None:
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self._lines.append(f"[{name}] {line}")
            m = _SERVING.search(line) if name == "stdout" and not self.port else None
            if m:
                self.port = int(m.group(2))
                self.url = f"{m.group(1)}:{self.port}"
                self._ready.set()
        if name == "stdout":
            self._ready.set()  # the process ended (or closed stdout) without the line

    def output(self) -> str:
        with self._lock:
            return "\n".join(self._lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the process and wait for it; returns its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.stop()
        finally:
            self.kill()
