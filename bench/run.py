"""The one command: direct vs the 40-line aiohttp proxy vs dragoman, per path, one core each side.

    python bench/run.py [--quick] [--duration S] [--concurrency N] [--repeat R]

Layout (2 cores): the system under test (SUT) is pinned alone to core 0 (``taskset -c 0``); the
fake upstream and the load driver share core 1. For every target and path it measures

  json      non-streaming requests, ``--concurrency`` connections, fast upstream
  stream    streams (20 text deltas), ``--concurrency`` connections, fast upstream -> streams/s
  ttft-seq  one stream at a time, slow upstream (first byte after 50 ms, 1 ms between events)
  ttft-c16  16 concurrent streams, slow upstream

and reports requests/s, p50/p99 latency, time to first token (streams), and the SUT's CPU time
per request (all its threads, from /proc/<pid>/task/*/schedstat, over the measured window).
Ratios are against the 40-line proxy on the same mode and client API. Each scenario runs
``--repeat`` times (SUT restarted each round) and the tables show medians.

Targets and paths
  direct    load -> upstream              anthropic, openai
  proxy     load -> passthrough_proxy.py   anthropic, openai
  dragoman  load -> dragoman serve         A->A, O->O (pass-through), A->O, O->A (translated)

Results go to bench/results/latest.md and latest.json; SUT logs to bench/results/logs/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PY = sys.executable

DRAGOMAN_CMD = "dragoman serve --config {config} --port {port}"

# client API, model name, upstream route the request must reach, kind
PATHS: dict[str, list[tuple[str, str, str, str, str]]] = {
    # label, client api, model, upstream route, kind
    "direct": [
        ("anthropic", "anthropic", "claude-sonnet-4-5", "POST /v1/messages", "direct"),
        ("openai", "openai", "qwen-bench", "POST /v1/chat/completions", "direct"),
    ],
    "proxy": [
        ("anthropic", "anthropic", "claude-sonnet-4-5", "POST /v1/messages", "pass-through"),
        ("openai", "openai", "qwen-bench", "POST /v1/chat/completions", "pass-through"),
    ],
    "dragoman": [
        ("A->A", "anthropic", "claude-bench", "POST /v1/messages", "pass-through"),
        ("O->O", "openai", "gpt-bench", "POST /v1/chat/completions", "pass-through"),
        ("A->O", "anthropic", "gpt-bench", "POST /v1/chat/completions", "translated"),
        ("O->A", "openai", "claude-bench", "POST /v1/messages", "translated"),
    ],
}
UPSTREAM_API = {"POST /v1/messages": "anthropic", "POST /v1/chat/completions": "openai"}


@dataclass
class Mode:
    name: str
    stream: bool
    concurrency: int
    slow: bool


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


def pin(cpu: str | None, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if cpu is not None else cmd


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def http(method: str, url: str, body: Any = None, timeout: float = 2.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw = e.read()
        status = e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


class Proc:
    """A server we started, its log, and how to stop it (only this pid, never by name)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = RESULTS / "logs" / f"{name}.log"
        self.log = self.log_path.open("wb")
        log(f"  start {name}: {shlex.join(cmd)}")
        self.p = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.p.pid

    def pids(self) -> list[int]:
        """This process and its descendants (a server may fork workers)."""
        children: dict[int, list[int]] = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(children.get(p, []))
        return out

    def wait_ready(self, url: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.p.returncode}): {self.tail()}")
            try:
                http("GET", url, timeout=1.0)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not answering {url} after {timeout} s: {self.tail()}")

    def tail(self, n: int = 1500) -> str:
        self.log.flush()
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    def stop(self) -> None:
        if self.p.poll() is None:
            for sig, wait in ((signal.SIGINT, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
                self.p.send_signal(sig)
                try:
                    self.p.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.log.close()


# ---------------------------------------------------------------- measuring


def run_load(
    args: argparse.Namespace,
    url: str,
    api: str,
    model: str,
    mode: Mode,
    pids: list[int],
    *,
    smoke: bool = False,
    ref: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    cmd = [PY, str(HERE / "load.py"), "--url", url, "--api", api, "--model", model, "--json"]
    if ref is not None:
        cmd += ["--ref-url", ref[0], "--ref-api", ref[1], "--ref-model", ref[2]]
    if mode.stream:
        cmd.append("--stream")
    if smoke:
        cmd += ["-c", "1", "-n", "3", "-w", "0", "--strict", "--timeout", "10"]
    else:
        cmd += ["-c", str(mode.concurrency), "-d", str(args.duration), "-w", str(args.warmup)]
        cmd += ["--client", args.client]
    for p in pids:
        cmd += ["--cpu-pid", str(p)]
    for c in (args.sut_cpu, args.aux_cpu):
        if c is not None and c.isdigit():
            cmd += ["--watch-core", c]
    limit = (args.duration + args.warmup + 60) if not smoke else 30
    r = subprocess.run(pin(args.aux_cpu, cmd), capture_output=True, text=True, timeout=limit)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"load.py failed ({r.returncode}): {r.stderr[-1500:]}")
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def set_upstream(args: argparse.Namespace, slow: bool) -> None:
    cfg = {
        "chunks": args.chunks,
        "first_delay_ms": args.first_delay_ms if slow else 0.0,
        "chunk_delay_ms": args.chunk_delay_ms if slow else 0.0,
    }
    status, _ = http("POST", f"{args.upstream_url}/_bench/config", cfg)
    if status != 200:
        raise RuntimeError(f"upstream config failed: {status}")


def upstream_stats(args: argparse.Namespace) -> dict[str, int]:
    _, stats = http("GET", f"{args.upstream_url}/_bench/stats")
    return dict(stats) if isinstance(stats, dict) else {}


def start_target(args: argparse.Namespace, target: str) -> tuple[Proc | None, str]:
    if target == "direct":
        return None, args.upstream_url
    if target == "proxy":
        port = args.proxy_port
        cmd = [PY, str(HERE / "passthrough_proxy.py"), args.upstream_url, str(port)]
        env = None
    else:
        port = args.dragoman_port
        fmt = {"config": args.config, "port": port}
        cmd = [part.format(**fmt) for part in shlex.split(args.dragoman_cmd)]
        env = {
            **os.environ,
            "BENCH_UPSTREAM_PORT": str(args.upstream_port),
            "DRAGOMAN_LOG_LEVEL": "WARNING",
        }
    if not port_free(port):
        raise RuntimeError(f"port {port} is busy")
    proc = Proc(target, pin(args.sut_cpu, cmd), env)
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_ready(url + "/health")
    except BaseException:
        proc.stop()
        raise
    return proc, url


def smoke(args: argparse.Namespace, url: str, api: str, model: str) -> str:
    """One strict check of each answer shape (JSON, stream) before timing anything; '' if fine."""
    set_upstream(args, slow=False)
    for m in (Mode("smoke", False, 1, False), Mode("smoke", True, 1, False)):
        try:
            res = run_load(args, url, api, model, m, [], smoke=True)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            return f"{'stream' if m.stream else 'json'}: {e}"
        if res["errors"] or res["requests"] < 3:
            return f"{'stream' if m.stream else 'json'}: {res['error_samples'][:1]}"
    return ""


def measure_one(
    args: argparse.Namespace,
    target: str,
    proc: Proc | None,
    url: str,
    path: tuple[str, str, str, str, str],
    mode: Mode,
    rnd: int,
) -> dict[str, Any]:
    label, api, model, route, kind = path
    row: dict[str, Any] = {
        "target": target,
        "path": label,
        "kind": kind,
        "api": api,
        "route": route,
        "mode": mode.name,
        "round": rnd,
    }
    if proc is not None and proc.p.poll() is not None:
        return row | {"failed": f"{target} exited: {proc.tail(300)}", "errors": 1}
    before = upstream_stats(args)
    pids = proc.pids() if proc else []
    ref = None
    if mode.slow and target != "direct":
        # the upstream's own answer, sent at the same time, is the reference for added TTFT
        up_api = UPSTREAM_API[route]
        ref = (args.upstream_url, up_api, "ref-" + up_api)
    try:
        res = run_load(args, url, api, model, mode, pids, ref=ref)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return row | {"failed": str(e)[:300], "errors": 1}
    hits = upstream_stats(args).get(route, 0) - before.get(route, 0)
    hits -= res.get("ref_requests", 0)
    row |= res
    row["upstream_hits"] = hits
    if hits < res["requests"]:
        row["failed"] = f"upstream saw {hits} {route} for {res['requests']} requests"
    busy = res.get("core_busy", {})
    if args.sut_cpu is not None and args.sut_cpu.isdigit():
        sut_busy = busy.get(args.sut_cpu, math.nan)
        row["sut_core_busy"] = sut_busy
        # CPU time on the SUT's core that was not the SUT's: other people's work (noise)
        row["sut_core_others"] = sut_busy - res.get("cpu_util", 0.0)
    if args.aux_cpu is not None and args.aux_cpu.isdigit():
        row["aux_core_busy"] = busy.get(args.aux_cpu, math.nan)
    return row


def line(r: dict[str, Any]) -> str:
    s = f"{r['target']:8} {r['path']:9} {r['mode']:8} {r.get('rps', 0):8.0f}/s"
    s += f" p50 {r.get('p50_ms', math.nan):7.2f} p99 {r.get('p99_ms', math.nan):7.2f} ms"
    if r.get("stream"):
        s += f" TTFT p50 {r['ttft_p50_ms']:6.2f} p99 {r['ttft_p99_ms']:6.2f}"
    if "ttft_added_p50_ms" in r:
        s += f" (+{r['ttft_added_p50_ms']:.2f} vs upstream)"
    if "cpu_ms_per_req" in r:
        s += f" CPU {r['cpu_ms_per_req']:.3f} ms/req ({r['cpu_util'] * 100:.0f}%)"
    if r.get("errors") or r.get("warmup_errors") or r.get("failed"):
        s += f" ERRORS {r.get('errors')} {r.get('failed', '')} {r.get('error_samples', '')}"
    return s


# ---------------------------------------------------------------- reporting

NUMERIC = [
    "rps",
    "p50_ms",
    "p99_ms",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "ttfb_p50_ms",
    "cpu_ms_per_req",
    "cpu_util",
    "requests",
    "sut_core_others",
    "aux_core_busy",
    "driver_util",
    "ttft_added_p50_ms",
    "ttft_added_p99_ms",
    "ref_ttft_p50_ms",
]


def med(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return statistics.median(xs) if xs else math.nan


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["target"], r["path"], r["mode"]), []).append(r)
    out = []
    for (target, path, mode), rs in groups.items():
        first = rs[0]
        agg: dict[str, Any] = {
            "target": target,
            "path": path,
            "mode": mode,
            "kind": first["kind"],
            "api": first["api"],
            "route": first["route"],
            "stream": first.get("stream", mode != "json"),
            "concurrency": first.get("concurrency"),
            "rounds": len(rs),
            "errors": sum(int(r.get("errors") or 0) + int(r.get("warmup_errors") or 0) for r in rs),
            "failed": "; ".join(sorted({r["failed"] for r in rs if r.get("failed")})),
        }
        for k in NUMERIC:
            agg[k] = med([r[k] for r in rs if isinstance(r.get(k), int | float)])
        agg["sut_core_others"] = max(0.0, agg["sut_core_others"])  # rounding can go below 0
        out.append(agg)
    # ratios and added TTFT
    index = {(a["target"], a["path"], a["mode"]): a for a in out}
    for a in out:
        ref = index.get(("proxy", a["api"], a["mode"]))
        if a["target"] != "direct" and ref and ref["cpu_ms_per_req"] > 0:
            a["cpu_ratio"] = a["cpu_ms_per_req"] / ref["cpu_ms_per_req"]
        else:
            a["cpu_ratio"] = math.nan
        d = index.get(("direct", UPSTREAM_API[a["route"]], a["mode"]))
        if not math.isnan(a["ttft_added_p50_ms"]):
            # measured against the upstream at the same time (slow-upstream modes)
            a["ttft_added_ms"] = a["ttft_added_p50_ms"]
        elif a["stream"] and d and a["target"] != "direct":
            a["ttft_added_ms"] = a["ttft_p50_ms"] - d["ttft_p50_ms"]
        else:
            a["ttft_added_ms"] = math.nan
        limit = {"pass-through": 1.5, "translated": 2.0}.get(a["kind"])
        a["cpu_limit"] = limit if a["target"] == "dragoman" else None
    order = {"direct": 0, "proxy": 1, "dragoman": 2}
    modes = {"json": 0, "stream": 1, "ttft-seq": 2, "ttft-c16": 3}
    paths = {"anthropic": 0, "openai": 1, "A->A": 0, "O->O": 1, "A->O": 2, "O->A": 3}
    out.sort(key=lambda a: (modes.get(a["mode"], 9), order[a["target"]], paths[a["path"]]))
    return out


def fmt(x: Any, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{nd}f}" if isinstance(x, float) else str(x)


def pct(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 100:.0f}%"


def table(aggs: list[dict[str, Any]], pending: list[str]) -> str:
    head = (
        "| target | path | mode | conc | req/s | p50 ms | p99 ms | TTFT p50 | TTFT p99 "
        "| +TTFT p50 vs direct | CPU ms/req | × proxy | target | SUT busy | others on SUT core "
        "| errors |\n"
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|\n"
    )
    lines = []
    for a in aggs:
        verdict = ""
        if a["failed"]:
            verdict = "FAILED: " + a["failed"][:80]
        elif a["cpu_limit"] and not math.isnan(a["cpu_ratio"]):
            ok = a["cpu_ratio"] <= a["cpu_limit"]
            verdict = f"{'ok' if ok else 'OVER'} (≤{a['cpu_limit']}×)"
            if a["mode"].startswith("ttft") and not math.isnan(a["ttft_added_ms"]):
                verdict += f", +TTFT {'ok' if a['ttft_added_ms'] < 1.0 else 'OVER'} (<1 ms)"
        lines.append(
            f"| {a['target']} | {a['path']} | {a['mode']} | {a['concurrency'] or '–'} "
            f"| {fmt(a['rps'], 0)} | {fmt(a['p50_ms'])} | {fmt(a['p99_ms'])} "
            f"| {fmt(a['ttft_p50_ms']) if a['stream'] else '–'} "
            f"| {fmt(a['ttft_p99_ms']) if a['stream'] else '–'} "
            f"| {fmt(a['ttft_added_ms'])} | {fmt(a['cpu_ms_per_req'], 3)} "
            f"| {fmt(a['cpu_ratio'])} | {verdict} | {pct(a['cpu_util'])} "
            f"| {pct(a['sut_core_others'])} | {a['errors']} |"
        )
    for p in pending:
        lines.append(f"| dragoman | {p} | all | – | pending | | | | | | | | | | | |")
    return head + "\n".join(lines) + "\n"


def render(
    a: dict[str, Any], info: dict[str, str], aggs: list[dict[str, Any]], pending: list[str]
) -> str:
    pin_note = (
        f"SUT on core {a['sut_cpu']}, upstream + load on core {a['aux_cpu']}"
        if a["sut_cpu"] is not None
        else "not pinned"
    )
    return (
        f"Medians of {a['repeat']} round(s), {a['duration']:g} s per scenario after "
        f"{a['warmup']:g} s warm-up; json/stream at {a['concurrency']} connections; slow "
        f"upstream = {a['first_delay_ms']:g} ms to first byte, {a['chunk_delay_ms']:g} ms "
        f"between events, {a['chunks']} deltas; {pin_note}.\n"
        f"Machine: {info['cpus']} × {info['cpu']}, Linux {info['kernel']}, Python "
        f"{info['python']}, aiohttp {info['aiohttp']}, uvloop {info['uvloop']}, "
        f"orjson {info['orjson']}.\n\n" + table(aggs, pending)
    )


def write_profile(prof: Path, out: Path) -> None:
    import io
    import pstats

    buf = io.StringIO()
    stats = pstats.Stats(str(prof), stream=buf)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("tottime").print_stats("dragoman", 40)
    stats.sort_stats("cumulative").print_stats("dragoman", 40)
    out.write_text(buf.getvalue())
    log(f"profile: {out}")


def machine() -> dict[str, str]:
    import aiohttp

    cpu = "?"
    for ln in Path("/proc/cpuinfo").read_text().splitlines():
        if ln.startswith("model name"):
            cpu = ln.split(":", 1)[1].strip()
            break
    info = {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
    }
    for mod in ("uvloop", "orjson"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = "-"
    return info


def dragoman_runnable(args: argparse.Namespace) -> str:
    """'' when the dragoman command answers --help, else why not."""
    exe = shlex.split(args.dragoman_cmd)[0]
    if not shutil.which(exe):
        return f"{exe} not on PATH"
    parts = shlex.split(args.dragoman_cmd)
    upto = parts.index("serve") + 1 if "serve" in parts else 2
    cmd = [*parts[:upto], "--help"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return f"{shlex.join(cmd)} timed out"
    if r.returncode != 0:
        return f"{shlex.join(cmd)} failed: {(r.stderr or r.stdout)[-300:]}"
    return ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 s per scenario, 1 round")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per scenario")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--concurrency", type=int, default=32, help="for json and stream modes")
    p.add_argument("--repeat", type=int, default=3, help="rounds; tables show medians")
    p.add_argument("--targets", default="direct,proxy,dragoman")
    p.add_argument("--modes", default="json,stream,ttft-seq,ttft-c16")
    p.add_argument("--paths", default="", help="only these path labels (comma-separated)")
    p.add_argument("--client", choices=["raw", "aiohttp"], default="raw")
    p.add_argument("--chunks", type=int, default=20)
    p.add_argument("--first-delay-ms", type=float, default=50.0, help="slow upstream TTFB")
    p.add_argument("--chunk-delay-ms", type=float, default=1.0, help="slow upstream gap")
    p.add_argument("--upstream-port", type=int, default=8099)
    p.add_argument("--proxy-port", type=int, default=8098)
    p.add_argument("--dragoman-port", type=int, default=8090)
    p.add_argument(
        "--config",
        default=os.environ.get("DRAGOMAN_BENCH_CONFIG", str(HERE / "dragoman.bench.yaml")),
    )
    p.add_argument(
        "--dragoman-cmd",
        default=os.environ.get("DRAGOMAN_BENCH_CMD", DRAGOMAN_CMD),
        help=f"command template with {{config}} and {{port}} (default: {DRAGOMAN_CMD})",
    )
    p.add_argument("--sut-cpu", default="0", help="core for the system under test")
    p.add_argument("--aux-cpu", default="1", help="core for upstream and load driver")
    p.add_argument("--no-pin", action="store_true")
    p.add_argument(
        "--profile",
        action="store_true",
        help="run dragoman under cProfile (slower: figures not comparable); writes "
        "results/dragoman.prof and results/dragoman_profile.txt",
    )
    p.add_argument("--out", default=str(RESULTS / "latest"), help="writes OUT.md and OUT.json")
    p.add_argument("--report", metavar="JSON", help="only re-print the tables of a saved run")
    args = p.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        print(render(saved["args"], saved["machine"], aggregate(saved["runs"]), saved["pending"]))
        return
    # `kill PID` should stop the servers we started too (the finally clause below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.duration, args.warmup, args.repeat = min(args.duration, 3.0), 1.0, 1
    if args.no_pin or not shutil.which("taskset"):
        args.sut_cpu = args.aux_cpu = None
    args.paths = [x for x in args.paths.split(",") if x]
    args.upstream_url = f"http://127.0.0.1:{args.upstream_port}"
    prof = RESULTS / "dragoman.prof"
    if args.profile:
        args.dragoman_cmd = (
            f"{shlex.quote(PY)} -m cProfile -o {shlex.quote(str(prof))} -m dragoman serve "
            "--config {config} --port {port}"
        )
    all_modes = {
        "json": Mode("json", False, args.concurrency, False),
        "stream": Mode("stream", True, args.concurrency, False),
        "ttft-seq": Mode("ttft-seq", True, 1, True),
        "ttft-c16": Mode("ttft-c16", True, 16, True),
    }
    modes = [all_modes[m] for m in args.modes.split(",") if m]
    targets = [t for t in args.targets.split(",") if t]

    pending: list[str] = []
    if "dragoman" in targets:
        why = dragoman_runnable(args)
        if why:
            log(f"dragoman not runnable ({why}): its rows are marked pending")
            targets.remove("dragoman")
            pending = [x[0] for x in PATHS["dragoman"]]

    RESULTS.mkdir(exist_ok=True)
    if not port_free(args.upstream_port):
        sys.exit(f"port {args.upstream_port} is busy")
    up_cmd = [PY, str(HERE / "fake_upstream.py"), "--port", str(args.upstream_port)]
    upstream = Proc("upstream", pin(args.aux_cpu, up_cmd))
    rows: list[dict[str, Any]] = []
    started = time.time()
    suts: dict[str, tuple[Proc | None, str]] = {}
    broken: dict[tuple[str, str], str] = {}
    try:
        upstream.wait_ready(args.upstream_url + "/health")
        for target in targets:
            try:
                suts[target] = start_target(args, target)
            except RuntimeError as e:
                log(f"  {target} did not start: {e}")
                for path in PATHS[target]:
                    broken[(target, path[0])] = f"did not start: {str(e)[:200]}"
                continue
            for path in PATHS[target]:
                if args.paths and path[0] not in args.paths:
                    continue
                problem = smoke(args, suts[target][1], path[1], path[2])
                if problem:
                    log(f"  {target} {path[0]} fails its smoke check: {problem}")
                    broken[(target, path[0])] = problem
        # interleave: each mode, then every target and path back to back, round after round,
        # so that the figures compared with each other are measured minutes apart at most
        for rnd in range(args.repeat):
            for mode in modes:
                set_upstream(args, mode.slow)
                log(f"round {rnd + 1}/{args.repeat}: {mode.name}")
                for target in targets:
                    for path in PATHS[target]:
                        if args.paths and path[0] not in args.paths:
                            continue
                        if (target, path[0]) in broken or target not in suts:
                            row = {
                                "target": target,
                                "path": path[0],
                                "kind": path[4],
                                "api": path[1],
                                "route": path[3],
                                "mode": mode.name,
                                "round": rnd,
                                "failed": broken.get((target, path[0]), "not started"),
                                "errors": 1,
                            }
                        else:
                            proc, url = suts[target]
                            row = measure_one(args, target, proc, url, path, mode, rnd)
                        rows.append(row)
                        log("  " + line(row))
    finally:
        for proc, _ in suts.values():
            if proc is not None:
                proc.stop()
        upstream.stop()

    aggs = aggregate(rows)
    if args.profile and prof.exists():
        write_profile(prof, RESULTS / "dragoman_profile.txt")
    info = machine()
    md = render(vars(args), info, aggs, pending)
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(md)
    payload = {
        "started": started,
        "args": {k: v for k, v in vars(args).items() if k != "paths"} | {"paths": args.paths},
        "machine": info,
        "pending": pending,
        "medians": aggs,
        "runs": rows,
    }
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str))
    log(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")
    if any(a["errors"] or a["failed"] for a in aggs):
        log("THERE WERE ERRORS: see the errors column and the JSON")
        sys.exit(3)


if __name__ == "__main__":
    main()
