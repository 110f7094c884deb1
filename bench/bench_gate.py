"""Raw-gate benchmark: `validate_raw` on the full preset vs a bare DuckDB scan of the same file.

Input: BENCH_DATA_DIR/spotify_full.csv, written once by `python -m bench generate` (never generated
here). Each repeat runs in a fresh process (cold imports, warm page cache after the first read):
- the gate: byte scan + DuckDB parse + GX validation of the three frames + Data Docs, into a
  scratch GX context, with the `full` threshold profile (the Kaggle file's size);
- the reference: DuckDB reading the same file as raw lines with the gate's reader settings and
  summing their lengths (the least any line-level check must pay).
Figures are medians over BENCH_REPEATS (default 3) of wall time and peak RSS of the process tree;
ratio = gate / bare scan. Target: the gate in at most 60 s.
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
TARGET_S = 60.0
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
from ml.quality.raw_scan import _lines_source_sql
start = time.perf_counter()
n, chars = duckdb.connect().execute(
    f"select count(*), sum(length(line)) from {_lines_source_sql(Path(sys.argv[1]))}"
).fetchone()
print(f"bare scan: {n:,} lines, {chars:,} characters in {time.perf_counter() - start:.1f} s", flush=True)
"""


def main() -> None:
    if not FULL_CSV.exists():
        raise SystemExit(f"{FULL_CSV} is missing: run `python -m bench generate` first (it writes it once)")
    size_gb = FULL_CSV.stat().st_size / 1e9
    python = str(REPO_ROOT / ".venv" / "bin" / "python") if (REPO_ROOT / ".venv").exists() else sys.executable
    env = {"PYTHONPATH": str(REPO_ROOT), "GX_ANALYTICS_ENABLED": "false"}

    gate_runs, scan_runs, details = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        for i in range(REPEATS):
            print(f"-- repeat {i + 1}/{REPEATS}: bare DuckDB scan", flush=True)
            scan_runs.append(run_measured([python, "-c", _SCAN, str(FULL_CSV)], env=env, cwd=REPO_ROOT))
            print(f"-- repeat {i + 1}/{REPEATS}: raw gate", flush=True)
            out = Path(tmp) / f"gate-{i}.json"
            gate_runs.append(
                run_measured(
                    [python, "-c", _GATE, str(FULL_CSV), str(Path(tmp) / f"gx-{i}" / "gx"), str(out)],
                    env=env,
                    cwd=REPO_ROOT,
                )
            )
            details.append(json.loads(out.read_text()))

    gate_wall = median([r.wall_s for r in gate_runs])
    scan_wall = median([r.wall_s for r in scan_runs])
    gate_rss = median([r.peak_rss_mb for r in gate_runs])
    scan_rss = median([r.peak_rss_mb for r in scan_runs])
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
        f"| ratio gate / scan | {gate_wall / scan_wall:.1f}x | {gate_rss / max(scan_rss, 1):.1f}x |",
        "",
        "gate phases (median s, in process): "
        + ", ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in phases.items())
        + "; the rest of the wall time is interpreter start and imports (GX, pandas).",
        f"target: gate <= {TARGET_S:.0f} s -> {'met' if gate_wall <= TARGET_S else 'MISSED'} ({gate_wall:.1f} s)",
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
            "gate_wall_median_s": gate_wall,
            "scan_wall_median_s": scan_wall,
            "ratio_gate_to_scan": gate_wall / scan_wall,
            "gate_phases_median_s": phases,
            "gate_result": last,
            "target_s": TARGET_S,
            "target_met": gate_wall <= TARGET_S,
        },
        lines,
    )
