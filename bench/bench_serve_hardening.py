"""Slow clients against a real `ml serve` with few file descriptors: does /ping still answer?

The scenario of issue 9: `prlimit --nofile=256:256 ml serve ...`; 500 clients connect, send a
partial request and hold it for 15 s (a third stop inside the headers and send one more header
line every 2 s, a third send full headers and trickle the body a byte every 2 s, a third send
nothing); meanwhile and at the end a fresh client asks GET /ping with a 1 s timeout. Recorded:
every /ping latency (or its failure), how and when the server ended the slow connections, the
server's open descriptors, whether it survived, and the size of its log.

`python -m bench serve_hardening` runs the full scenario once against the reference (the same app
behind plain `uvicorn.run`, as `ml serve` ran before issue 9; and with uvicorn's own limits set)
and three times against `ml serve`,
and writes bench/results/serve_hardening.* (the median run by final /ping latency, and every run);
`python -m bench.bench_serve_hardening --clients 300 --hold 4 --json out.json` is one run of the
same script with smaller counts (tests/test_serve_hardening.py runs it so). The model is MODEL (a
model.tar.gz) if given, else a small synthetic one exported once under BENCH_DATA_DIR/serve_hardening/.
Extra `ml serve` options can follow `--`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import BENCH_DATA_DIR, REPO_ROOT

HOST = "127.0.0.1"
KINDS = ("headers", "body", "silent")


@dataclass
class ClientOutcome:
    kind: str
    connected: bool = False
    connect_error: str = ""
    closed_at_s: float | None = None  # when the server ended it (None: still open at the end)
    answer: str = ""  # the status line the server sent, if any


@dataclass
class ScenarioResult:
    clients: int
    hold_s: float
    nofile: int
    serve_args: list[str]
    pings: list[dict] = field(default_factory=list)  # {"at_s", "ok", "latency_ms", "error"}
    final_ping_ok: bool = False
    final_ping_ms: float | None = None
    connected: int = 0
    connect_errors: dict = field(default_factory=dict)
    closed_by_server: int = 0
    closed_by_server_at_s: dict = field(default_factory=dict)  # kind -> median seconds
    answers: dict = field(default_factory=dict)
    server_alive: bool = False
    server_max_fds: int = 0
    log_bytes: int = 0
    log_lines: int = 0
    log_top_messages: list = field(default_factory=list)
    log_tail: str = ""

    @property
    def ping_ok_share(self) -> float:
        return sum(p["ok"] for p in self.pings) / len(self.pings) if self.pings else 0.0

    @property
    def ping_max_ms(self) -> float | None:
        ok = [p["latency_ms"] for p in self.pings if p["ok"]]
        return max(ok) if ok else None


# The references: the same app behind `uvicorn.run`, with its defaults as `ml serve` ran before
# issue 9 (no read deadlines, no cap, every failed accept logged with its traceback), and with
# uvicorn's own limits set (to show they are not enough: limit_concurrency answers 503 only once
# headers are in, and nothing bounds the descriptors).
PLAIN_UVICORN = (
    "import ast, logging, sys, uvicorn; from ml.serve import create_app, load_model; "
    "logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s %(message)s'); "
    "uvicorn.run(create_app(load_model(sys.argv[1])), host=sys.argv[2], port=int(sys.argv[3]), "
    "access_log=False, log_level='info', **ast.literal_eval(sys.argv[4]))"
)
UVICORN_SETTINGS = {
    "http": "h11",  # as before issue 9 (uvicorn's "auto" picks httptools now that it is installed)
    "limit_concurrency": 50,
    "timeout_keep_alive": 5,
    "backlog": 32,
    "h11_max_incomplete_event_size": 16384,
}


def run_scenario(
    model: Path,
    clients: int,
    hold_s: float,
    nofile: int,
    serve_args: list[str],
    log_path: Path,
    reference: bool = False,
    uvicorn_settings: dict | None = None,
) -> ScenarioResult:
    """Start `ml serve` (or, `reference`, plain uvicorn) under prlimit, run the slow clients and
    the pings, stop it; the figures."""
    _raise_own_nofile(clients + 64)
    port = _free_port()
    server = (
        ["-c", PLAIN_UVICORN, str(model), HOST, str(port), repr(uvicorn_settings or {})]
        if reference
        else [
            "-m",
            "ml.cli",
            "serve",
            "--model",
            str(model),
            "--host",
            HOST,
            "--port",
            str(port),
            *serve_args,
        ]
    )
    cmd = ["prlimit", f"--nofile={nofile}:{nofile}", sys.executable, *server]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = ScenarioResult(clients=clients, hold_s=hold_s, nofile=nofile, serve_args=serve_args)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    try:
        _wait_for_ping(port, proc, timeout_s=120)
        pid = _serve_pid(proc)
        outcomes, pings, final, max_fds = asyncio.run(_attack(port, clients, hold_s, pid))
        result.pings = pings
        result.final_ping_ok, result.final_ping_ms = final["ok"], final["latency_ms"]
        result.server_max_fds = max_fds
        result.server_alive = proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    result.connected = sum(o.connected for o in outcomes)
    result.connect_errors = dict(Counter(o.connect_error for o in outcomes if o.connect_error))
    closed = [o for o in outcomes if o.closed_at_s is not None]
    result.closed_by_server = len(closed)
    result.closed_by_server_at_s = {
        kind: round(statistics.median(o.closed_at_s for o in closed if o.kind == kind), 2)
        for kind in KINDS
        if any(o.kind == kind for o in closed)
    }
    result.answers = dict(Counter(o.answer for o in outcomes if o.answer))
    text = log_path.read_bytes()
    result.log_bytes = len(text)
    lines = text.decode("utf-8", "replace").splitlines()
    result.log_lines = len(lines)
    result.log_top_messages = Counter(_shape(line) for line in lines).most_common(6)
    result.log_tail = "\n".join(lines[-12:])
    return result


async def _attack(port: int, clients: int, hold_s: float, pid: int) -> tuple:
    start = time.monotonic()
    outcomes = [ClientOutcome(kind=KINDS[i % len(KINDS)]) for i in range(clients)]
    stop = asyncio.Event()
    pings: list[dict] = []
    max_fds = [0]

    async def slow_client(outcome: ClientOutcome) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout=10)
        except (OSError, TimeoutError) as exc:
            outcome.connect_error = type(exc).__name__
            return
        outcome.connected = True
        if outcome.kind == "headers":
            first, trickle = (
                b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-0: 0\r\n",
                b"X-Slow: 1\r\n",
            )
        elif outcome.kind == "body":
            first = (
                b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                b'content-length: 100000\r\n\r\n{"instances": ['
            )
            trickle = b" "
        else:
            first, trickle = b"", b""
        try:
            if first:
                writer.write(first)
                await writer.drain()
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(4096), timeout=2.0)
                except TimeoutError:
                    if trickle:
                        writer.write(trickle)
                        await writer.drain()
                    continue
                if not data:
                    raise ConnectionResetError
                if not outcome.answer:
                    outcome.answer = data.split(b"\r\n", 1)[0].decode("latin-1")
        except OSError:
            outcome.closed_at_s = round(time.monotonic() - start, 2)
        finally:
            writer.close()

    async def ping() -> dict:
        t0 = time.monotonic()
        at = round(t0 - start, 2)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout=1.0)
            try:
                writer.write(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                status = await asyncio.wait_for(reader.readline(), timeout=1.0 - (time.monotonic() - t0))
            finally:
                writer.close()
            ok = status.startswith(b"HTTP/1.1 200")
            error = "" if ok else (status.decode("latin-1").strip() or "connection closed")
        except (OSError, TimeoutError) as exc:
            ok, error = False, type(exc).__name__
        return {"at_s": at, "ok": ok, "latency_ms": round((time.monotonic() - t0) * 1000, 1), "error": error}

    async def pinger() -> None:
        await asyncio.sleep(1.0)
        while not stop.is_set():
            pings.append(await ping())
            max_fds[0] = max(max_fds[0], _fd_count(pid))
            await asyncio.sleep(max(0.0, 1.0 - pings[-1]["latency_ms"] / 1000))

    tasks = [asyncio.create_task(slow_client(o)) for o in outcomes]
    ping_task = asyncio.create_task(pinger())
    await asyncio.sleep(hold_s)
    max_fds[0] = max(max_fds[0], _fd_count(pid))
    final = await ping()  # the Must-show figure: after the hold, while the slow clients still hold on
    stop.set()
    await asyncio.gather(*tasks, ping_task)
    return outcomes, pings, final, max_fds[0]


def _shape(line: str) -> str:
    """A log line without its timestamp, addresses and numbers: repeated messages count as one."""
    words = line.split()[2:] if line[:2].isdigit() else line.split()
    return " ".join("#" if any(c.isdigit() for c in w) else w for w in words)[:120]


def _fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _serve_pid(proc: subprocess.Popen) -> int:
    # prlimit execs the command, so the pid is the server's own
    return proc.pid


def _raise_own_nofile(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_for_ping(port: int, proc: subprocess.Popen, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ml serve exited with code {proc.returncode} before answering /ping")
        try:
            if httpx.get(f"http://{HOST}:{port}/ping", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"ml serve did not answer /ping within {timeout_s:.0f}s")


def synthetic_model() -> Path:
    """A small synthetic model.tar.gz (3,000 tracks), exported once under BENCH_DATA_DIR."""
    from ml.config import Paths
    from ml.export import export_latest

    # tests/ is no package (and a `tests` package in site-packages would shadow it): import by path
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from synthetic_model import write_synthetic_model

    root = BENCH_DATA_DIR / "serve_hardening"
    tarball = root / "models" / "synthetic" / "model.tar.gz"
    if not tarball.exists():
        write_synthetic_model(root / "models" / "synthetic", seed=7)
        latest = root / "models" / "latest"
        latest.unlink(missing_ok=True)
        latest.symlink_to("synthetic")
        export_latest(Paths(root / "-", root / "-", root / "models", root / "-"))
    return tarball


def summary_lines(r: ScenarioResult, server: str = "ml serve") -> list[str]:
    failed = [p for p in r.pings if not p["ok"]]
    return [
        f"scenario: {r.clients} slow clients (headers/body/silent), held {r.hold_s:g} s, "
        f"`{' '.join(['prlimit', f'--nofile={r.nofile}:{r.nofile}', server, *r.serve_args])}`",
        f"- /ping after the hold: {'OK' if r.final_ping_ok else 'FAILED'} in {r.final_ping_ms} ms "
        f"(target: answered within 1000 ms)",
        f"- /ping once a second during the hold: {len(r.pings) - len(failed)}/{len(r.pings)} answered, "
        f"slowest {r.ping_max_ms} ms"
        + (f"; failures: {Counter(p['error'] for p in failed)}" if failed else ""),
        f"- slow clients connected: {r.connected}/{r.clients}"
        + (f" (connect errors: {r.connect_errors})" if r.connect_errors else "")
        + f"; ended by the server: {r.closed_by_server} (median second by kind: {r.closed_by_server_at_s}); "
        f"answers: {r.answers}",
        f"- server alive at the end: {r.server_alive}; its open descriptors at most {r.server_max_fds}",
        f"- server log: {r.log_bytes:,} bytes, {r.log_lines:,} lines; most frequent: "
        + "; ".join(f"{n} x {m!r}" for m, n in r.log_top_messages[:4]),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--hold", type=float, default=15.0)
    parser.add_argument("--nofile", type=int, default=256)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--log", type=Path, default=None, help="server log (default: a temporary file)")
    parser.add_argument("--json", type=Path, default=None, help="write the result here, not bench/results/")
    parser.add_argument("--reference", action="store_true", help="plain uvicorn instead of ml serve")
    parser.add_argument("--repeats", type=int, default=3, help="ml serve runs (the median is reported)")
    parser.add_argument("serve_args", nargs="*", help="extra `ml serve` options (after --)")
    args = parser.parse_args(sys.argv[1:] if argv is None and __name__ == "__main__" else (argv or []))
    model = args.model or synthetic_model()
    load = os.getloadavg()
    if args.json is not None:  # one run, as asked (the tests' small scenario)
        result = _run_once(model, args, reference=args.reference)
        args.json.write_text(json.dumps(_figures(result), indent=2, default=str) + "\n")
        print("\n".join(summary_lines(result)))
        return
    from bench.common import write_results

    reference = _run_once(model, args, reference=True)
    settings_only = _run_once(model, args, reference=True, uvicorn_settings=UVICORN_SETTINGS)
    runs = [_run_once(model, args, reference=False) for _ in range(args.repeats)]
    final_ms = [r.final_ping_ms if r.final_ping_ok else float("inf") for r in runs]
    median_run = sorted(runs, key=lambda r: final_ms[runs.index(r)])[len(runs) // 2]
    figures = {
        "load_average_1m_before": round(load[0], 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "met": all(_figures(r)["met"] for r in runs),
        "final_ping_ms_runs": final_ms,
        "log_bytes_runs": [r.log_bytes for r in runs],
        "reference_plain_uvicorn": _figures(reference),
        "reference_uvicorn_settings": {"settings": UVICORN_SETTINGS, **_figures(settings_only)},
        "ml_serve_median_run": _figures(median_run),
        "ml_serve_runs": [_figures(r) for r in runs],
    }
    lines = [
        f"load average (1 min): {load[0]:.2f} before, {figures['load_average_1m_after']:.2f} after",
        "",
        "## reference: the same app behind plain uvicorn (ml serve before issue 9)",
        *summary_lines(reference, server="python -c 'uvicorn.run(create_app(model))'"),
        "",
        "## reference: uvicorn's own limits set (and nothing else)",
        *summary_lines(
            settings_only, server=f"python -c 'uvicorn.run(create_app(model), **{UVICORN_SETTINGS})'"
        ),
        "",
        f"## ml serve (guarded), {len(runs)} runs: /ping after the hold {final_ms} ms, "
        f"logs {[r.log_bytes for r in runs]} bytes; the median run:",
        *summary_lines(median_run),
        "",
        f"Must show (/ping within 1 s after 500 clients held partial requests 15 s, log small): "
        f"{'met' if figures['met'] else 'NOT met'} in every run.",
    ]
    write_results("serve_hardening", figures, lines)


def _run_once(
    model: Path, args: argparse.Namespace, reference: bool, uvicorn_settings: dict | None = None
) -> ScenarioResult:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="serve-hardening-") as tmp:
        log_path = args.log or Path(tmp) / "serve.log"
        serve_args = [] if reference else args.serve_args
        return run_scenario(
            model, args.clients, args.hold, args.nofile, serve_args, log_path, reference, uvicorn_settings
        )


def _figures(result: ScenarioResult) -> dict:
    return {
        **asdict(result),
        "ping_ok_share": result.ping_ok_share,
        "ping_max_ms": result.ping_max_ms,
        "met": bool(result.final_ping_ok and result.final_ping_ms < 1000 and result.log_bytes < 1 << 20),
    }


if __name__ == "__main__":
    main()
