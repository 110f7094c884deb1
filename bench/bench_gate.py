"""Raw-gate benchmark: `validate_raw` on the full preset vs two references on the same file.

Input: BENCH_DATA_DIR/spotify_full.csv, written once by `python -m bench generate` (never generated
here). Each repeat runs in a fresh process (cold imports, warm page cache after the first read):
- the gate: byte scan + DuckDB parse + GX validation of the three frames + Data Docs, into a
  scratch GX context, with the `full` threshold profile (the Kaggle file's size);
- the floor: DuckDB reading the same file as raw lines with the gate's reader settings and
  summing their lengths (the least any line-level check must pay);
- the naive recipe the gate replaces: pandas `read_csv(path, on_bad_lines="skip")` of the same
  file (the load a notebook would start with, before checking anything; bad lines silently gone).
Figures are medians over BENCH_REPEATS (default 3) of wall time and peak RSS of the process tree,
the three interleaved in each repeat; ratios = gate / reference. Targets (issue 9): the gate in at
most 20 s with a peak of at most 4 GB.
Run it alone: `flock /tmp/music-recsys-heavy.lock python -m bench gate`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from bench.common import BENCH_DATA_DIR, REPO_ROOT, median, run_measured, write_results

FULL_CSV = BENCH_DATA_DIR / "spotify_full.csv"
TARGET_S = 20.0
TARGET_RSS_MB = 4096.0
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))

_GATE = """
import json, sys
from pathlib import Path
from ml.config import Paths
from ml.quality.gate import validate_raw
csv, gx_dir, out = map(Path, sys.argv[1:4])
paths = Paths(raw_csv=csv, duckdb_path=gx_dir / "-", models_dir=gx_dir / "-", reports_dir=gx_dir / "-", gx_dir=gx_dir)
result = validate_raw(csv, paths, profile="full")
print(result.summary(), flush=True)
out.write_text(json.dumps({"success": result.success, "elapsed_s": result.elapsed_s, "counts": result.counts,
                           "timings": result.timings, "failed": [o.check for o in result.failures],
                           "error": result.error}))
"""

_SCAN = """
import sys, time, duckdb
from pathlib import Path
from ml.quality.raw_scan import _lines_source_sql, connect_duckdb
start = time.perf_counter()
n, chars = connect_duckdb().execute(
    f"select count(*), sum(length(line)) from {_lines_source_sql(Path(sys.argv[1]))}"
).fetchone()
print(f"bare scan: {n:,} lines, {chars:,} characters in {time.perf_counter() - start:.1f} s", flush=True)
"""

_PANDAS = """
import sys, time
import pandas as pd
start = time.perf_counter()
frame = pd.read_csv(sys.argv[1], on_bad_lines="skip")
print(f"pandas read_csv(on_bad_lines='skip'): {len(frame):,} rows in {time.perf_counter() - start:.1f} s", flush=True)
"""


def fmt_load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def main() -> None:
    if not FULL_CSV.exists():
        raise SystemExit(f"{FULL_CSV} is missing: run `python -m bench generate` first (it writes it once)")
    size_gb = FULL_CSV.stat().st_size / 1e9
    python = str(REPO_ROOT / ".venv" / "bin" / "python") if (REPO_ROOT / ".venv").exists() else sys.executable
    env = {"PYTHONPATH": str(REPO_ROOT), "GX_ANALYTICS_ENABLED": "false"}

    load_before = os.getloadavg()
    gate_runs, scan_runs, pandas_runs, details = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        # run as a file, not `python -c`: pyspark (imported by GX when installed) takes a main module
        # without __file__ for its own doctests and exits 0 before the gate has run
        gate_script = Path(tmp) / "run_gate.py"
        gate_script.write_text(_GATE)
        for i in range(REPEATS):
            print(f"-- repeat {i + 1}/{REPEATS}: bare DuckDB scan", flush=True)
            scan_runs.append(run_measured([python, "-c", _SCAN, str(FULL_CSV)], env=env, cwd=REPO_ROOT))
            print(f"-- repeat {i + 1}/{REPEATS}: raw gate", flush=True)
            out = Path(tmp) / f"gate-{i}.json"
            gate_runs.append(
                run_measured(
                    [python, str(gate_script), str(FULL_CSV), str(Path(tmp) / f"gx-{i}" / "gx"), str(out)],
                    env=env,
                    cwd=REPO_ROOT,
                )
            )
            details.append(json.loads(out.read_text()))
            print(f"-- repeat {i + 1}/{REPEATS}: pandas read_csv(on_bad_lines='skip')", flush=True)
            pandas_runs.append(run_measured([python, "-c", _PANDAS, str(FULL_CSV)], env=env, cwd=REPO_ROOT))
    load_after = os.getloadavg()

    gate_wall = median([r.wall_s for r in gate_runs])
    scan_wall = median([r.wall_s for r in scan_runs])
    gate_rss = median([r.peak_rss_mb for r in gate_runs])
    scan_rss = median([r.peak_rss_mb for r in scan_runs])
    pandas_wall = median([r.wall_s for r in pandas_runs])
    pandas_rss = median([r.peak_rss_mb for r in pandas_runs])
    met = gate_wall <= TARGET_S and gate_rss <= TARGET_RSS_MB
    phases = {k: median([d["timings"][k] for d in details]) for k in details[0]["timings"]}
    last = details[-1]
    lines = [
        f"file: {FULL_CSV.name}, {size_gb:.2f} GB, {last['counts'].get('data lines', 0):,} data lines, "
        f"{last['counts'].get('distinct users', 0):,} users",
        f"gate verdict (profile full): {'passed' if last['success'] else 'FAILED ' + ', '.join(last['failed'])}",
        "",
        f"| median of {REPEATS} | wall s | peak RSS MB |",
        "| --- | ---: | ---: |",
        f"| raw gate (`validate_raw`, fresh process) | {gate_wall:.1f} | {gate_rss:,.0f} |",
        f"| bare DuckDB scan of the raw lines | {scan_wall:.1f} | {scan_rss:,.0f} |",
        f"| pandas `read_csv(on_bad_lines='skip')` (naive recipe) | {pandas_wall:.1f} | {pandas_rss:,.0f} |",
        f"| ratio gate / scan | {gate_wall / scan_wall:.1f}x | {gate_rss / max(scan_rss, 1):.1f}x |",
        f"| ratio gate / pandas | {gate_wall / pandas_wall:.2f}x | {gate_rss / max(pandas_rss, 1):.2f}x |",
        "",
        "gate phases (median s, in process): "
        + ", ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in phases.items())
        + "; the rest of the wall time is interpreter start and imports (GX, pandas).",
        f"target: gate <= {TARGET_S:.0f} s and <= {TARGET_RSS_MB:,.0f} MB -> {'met' if met else 'MISSED'} "
        f"({gate_wall:.1f} s, {gate_rss:,.0f} MB)",
        f"load average (1/5/15 min) before {fmt_load(load_before)}, after {fmt_load(load_after)} on "
        f"{os.cpu_count()} cores: absolute seconds scale with it, the ratios much less",
    ]
    write_results(
        "gate",
        {
            "file": str(FULL_CSV.relative_to(REPO_ROOT))
            if FULL_CSV.is_relative_to(REPO_ROOT)
            else str(FULL_CSV),
            "size_gb": round(size_gb, 3),
            "repeats": REPEATS,
            "gate_wall_s": [r.wall_s for r in gate_runs],
            "gate_peak_rss_mb": [r.peak_rss_mb for r in gate_runs],
            "scan_wall_s": [r.wall_s for r in scan_runs],
            "scan_peak_rss_mb": [r.peak_rss_mb for r in scan_runs],
            "pandas_wall_s": [r.wall_s for r in pandas_runs],
            "pandas_peak_rss_mb": [r.peak_rss_mb for r in pandas_runs],
            "gate_peak_rss_median_mb": gate_rss,
            "pandas_wall_median_s": pandas_wall,
            "ratio_gate_to_pandas": gate_wall / pandas_wall,
            "gate_wall_median_s": gate_wall,
            "scan_wall_median_s": scan_wall,
            "ratio_gate_to_scan": gate_wall / scan_wall,
            "gate_phases_median_s": phases,
            "gate_result": last,
            "target_s": TARGET_S,
            "target_rss_mb": TARGET_RSS_MB,
            "target_met": met,
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        lines,
    )
