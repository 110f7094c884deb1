"""Local deployment: `ml serve` in the background from model.tar.gz, checked before it takes over.

State lives in RUN_DIR (`run/` by default): `serve.pid`, `endpoint.json` (url, pid, port, model,
log) and `serve-<port>.log`. A redeploy starts the new endpoint beside the running one, checks it,
and only then stops the old one (a failed check leaves the old endpoint serving).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ml.deploy.check import CheckResult
from ml.deploy.config import LocalConfig
from ml.deploy.state import StateFileError, read_json, write_json, write_text_atomic

PID_FILE = "serve.pid"
STATE_FILE = "endpoint.json"


@dataclass(frozen=True)
class LocalEndpoint:
    url: str
    pid: int
    port: int
    model: str
    log: str


@dataclass(frozen=True)
class LocalDeployResult:
    success: bool
    url: str
    pid: int
    log: Path
    check: CheckResult | None
    replaced_pid: int | None = None
    message: str = ""
    example_tracks: tuple[str, ...] = ("<track_id>",)

    def summary(self) -> str:
        lines = []
        if self.check is not None:
            lines.append(self.check.summary())
        if self.success:
            lines.append(f"local endpoint up: {self.url}  (pid {self.pid}, log {self.log})")
            if self.replaced_pid:
                lines.append(f"  replaced the endpoint of pid {self.replaced_pid}")
            body = json.dumps({"instances": [{"tracks": list(self.example_tracks), "k": 5}]})
            lines.append(
                f"  try: curl -s -X POST {self.url}/invocations -H 'content-type: application/json' -d '{body}'"
            )
        else:
            lines.append(f"local deploy FAILED: {self.message}")
        return "\n".join(lines)


def read_endpoint(cfg: LocalConfig) -> LocalEndpoint | None:
    """The running local endpoint from RUN_DIR, or None (state removed if its process is gone).

    A corrupt endpoint.json raises StateFileError, which says to run `ml undeploy` (that stops
    the server recorded in serve.pid and removes both) or to delete the file."""
    fields = tuple(LocalEndpoint.__dataclass_fields__)
    data = read_json(cfg.run_dir / STATE_FILE, "run `ml undeploy` or delete it", keys=fields)
    if data is None:
        return None
    try:
        endpoint = LocalEndpoint(**{k: data[k] for k in fields})
        if not isinstance(endpoint.pid, int):
            raise TypeError("pid is not a number")
    except TypeError as exc:
        raise StateFileError(
            f"{cfg.run_dir / STATE_FILE} is corrupt ({exc}): run `ml undeploy` or delete it"
        ) from None
    if not _is_our_server(endpoint.pid):
        _clear_state(cfg)
        return None
    return endpoint


def deploy_local(
    tarball: Path,
    cfg: LocalConfig,
    check_fn,  # (url) -> CheckResult
    example_tracks: tuple[str, ...] = ("<track_id>",),
) -> LocalDeployResult:
    """Start, wait for /ping, check (check_fn(url) -> CheckResult), then switch over."""
    if not tarball.exists():
        return LocalDeployResult(
            False, "", 0, Path(), None, message=f"{tarball} not found: run `ml export` first"
        )
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    old = read_endpoint(cfg)
    port = cfg.port if _port_free(cfg.host, cfg.port) else _free_port(cfg.host)
    url = f"http://{cfg.host}:{port}"
    log_path = cfg.run_dir / f"serve-{port}.log"
    proc = _start(tarball, cfg.host, port, log_path)
    up = wait_for_ping(url, proc, cfg.ping_timeout_s)
    if up is not None:
        _stop(proc.pid)
        return LocalDeployResult(
            False, url, proc.pid, log_path, None, message=f"{up}; log tail:\n{_tail(log_path)}"
        )
    check = check_fn(url)
    if not check.success:
        _stop(proc.pid)
        kept = f"; still serving: {old.url}" if old else ""
        return LocalDeployResult(
            False, url, proc.pid, log_path, check, message=f"check failed, new endpoint stopped{kept}"
        )
    if old is not None:
        _stop(old.pid)
    endpoint = LocalEndpoint(url=url, pid=proc.pid, port=port, model=str(tarball), log=str(log_path))
    write_json(cfg.run_dir / STATE_FILE, endpoint.__dict__)
    write_text_atomic(cfg.run_dir / PID_FILE, f"{proc.pid}\n")
    return LocalDeployResult(
        True,
        url,
        proc.pid,
        log_path,
        check,
        replaced_pid=old.pid if old else None,
        example_tracks=example_tracks,
    )


def undeploy_local(cfg: LocalConfig) -> str:
    try:
        endpoint = read_endpoint(cfg)
    except StateFileError:
        return _undeploy_corrupt(cfg)
    if endpoint is None:
        return f"no local endpoint running (no live process in {cfg.run_dir / STATE_FILE})"
    _stop(endpoint.pid)
    _clear_state(cfg)
    return f"stopped the local endpoint {endpoint.url} (pid {endpoint.pid})"


def _undeploy_corrupt(cfg: LocalConfig) -> str:
    """endpoint.json is unreadable: stop the server serve.pid names (if it is ours), remove both."""
    try:
        pid = int((cfg.run_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        pid = 0
    stopped = ""
    if pid and _is_our_server(pid):
        _stop(pid)
        stopped = f"; stopped the endpoint of pid {pid} (from {PID_FILE})"
    _clear_state(cfg)
    return f"removed the corrupt {cfg.run_dir / STATE_FILE}{stopped}"


def wait_for_ping(url: str, proc: subprocess.Popen, timeout_s: float) -> str | None:
    """None once GET /ping answers 200; else why not (process exited, or timeout)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"the server exited with code {proc.returncode} before answering /ping"
        try:
            if httpx.get(f"{url}/ping", timeout=2.0).status_code == 200:
                return None
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return f"no answer from {url}/ping within {timeout_s:.0f}s"


def _start(tarball: Path, host: str, port: int, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    cmd = [
        sys.executable,
        "-m",
        "ml.cli",
        "serve",
        "--model",
        str(tarball),
        "--host",
        host,
        "--port",
        str(port),
    ]
    with open(log_path, "ab") as log:
        # A session of its own: the endpoint outlives `ml deploy` and ignores its Ctrl-C.
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def _stop(pid: int, timeout_s: float = 15.0) -> None:
    if not _is_our_server(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap our own child so it does not linger as a zombie
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def _is_our_server(pid: int) -> bool:
    """The pid is alive and runs `ml.cli serve` (a recycled pid must never be signalled)."""
    import psutil

    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return _alive(pid) and "ml.cli" in cmdline and "serve" in cmdline


def _clear_state(cfg: LocalConfig) -> None:
    for name in (STATE_FILE, PID_FILE):
        (cfg.run_dir / name).unlink(missing_ok=True)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"
