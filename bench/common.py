"""Shared benchmark plumbing: run a command, measure wall time and peak memory, write results.

Figures are medians over repeats where a repeat is affordable, and every figure is quoted beside a
reference measured in the same run (a ratio), since shared machines are noisy.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", REPO_ROOT / "data" / "bench"))


@dataclass(frozen=True)
class RunFigures:
    wall_s: float
    peak_rss_mb: float  # peak resident memory of the process tree, sampled every 50 ms
    cpu_s: float = 0.0  # user + sys CPU seconds of the process tree (reaped children)


def run_measured(
    cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> RunFigures:
    """Run a command to completion; wall time and the peak RSS summed over its process tree."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env={**os.environ, **(env or {})}, cwd=cwd)
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return RunFigures(wall_s=wall, peak_rss_mb=peak / 2**20, cpu_s=cpu)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def write_results(name: str, figures: dict[str, object], lines: Sequence[str]) -> Path:
    """Print the figures and write bench/results/<name>.json and <name>.md."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **figures,
    }
    json_path = RESULTS_DIR / f"{name}.json"
    json_path.write_text(json.dumps(payload, indent=2, default=_default) + "\n")
    md = [f"# {name}", "", f"measured {payload['measured_at']} on {payload['machine']}", "", *lines, ""]
    (RESULTS_DIR / f"{name}.md").write_text("\n".join(md))
    print("\n".join(lines))
    return json_path


def _default(obj: object) -> object:
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)  # type: ignore[arg-type]
    return str(obj)
