"""Benchmark `dbt build` on the full preset (12.9M rows, about 1.1 GB) against two references.

`python -m bench dbt` builds the warehouse from BENCH_DATA_DIR/spotify_full.csv (generated with
`ml data generate --preset full --seed 42` when absent) into a scratch DuckDB file, BENCH_REPEATS
times (default 3), every model, data test and unit test included. In the same run, interleaved
with the builds so both see the same machine load, it times a bare DuckDB scan of the same file
(`select count(*) from read_csv(...)` with the real format's options, in a subprocess) and the naive
recipe the project replaces: pandas `read_csv(on_bad_lines="skip")` loaded into a DuckDB file as
`stg_spotify__playlist_tracks`, then `dbt run` of the same intermediate models and marts on it (no
line numbers, no quarantine, no tests: skipped lines are lost silently). It quotes the medians, the
ratios, the peak memory of each process tree, the CPU seconds of the build (less sensitive than wall
time to other load on the machine), the slowest nodes of the last build and the line accounting.
Budget (issue 9): at most 35 s wall and 4 GB peak.

Run it alone on the machine: `flock /tmp/music-recsys-heavy.lock .venv/bin/python -m bench dbt`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import duckdb

from bench.common import BENCH_DATA_DIR, REPO_ROOT, RunFigures, median, run_measured, write_results
from ml.warehouse import DBT_PROJECT_DIR, accounting, dbt_command

RAW = BENCH_DATA_DIR / "spotify_full.csv"
SCRATCH = BENCH_DATA_DIR / "dbt"
SEED = 42
BUDGET_S = 35.0
BUDGET_MB = 4096.0

# The naive recipe: what a user would write first. keep_default_na=False keeps names such as 'NA' as
# strings (with pandas' default they become NaN and the marts' not-null contracts fail); the row
# index stands in for line numbers, which pandas cannot give.
NAIVE_LOAD = """
import sys, duckdb, pandas as pd
raw, db = sys.argv[1], sys.argv[2]
df = pd.read_csv(raw, on_bad_lines="skip", dtype=str, keep_default_na=False, escapechar="\\\\",
                 skipinitialspace=True, engine="c")
df.columns = ["user_id", "artist_name", "track_name", "playlist_name"]
for column in df.columns:
    df[column] = df[column].str.strip(" \\t")
df.insert(0, "line_number", pd.RangeIndex(2, len(df) + 2, dtype="int64"))
df["is_recovered"] = False
con = duckdb.connect(db)
con.execute("set enable_progress_bar = false")
con.execute("create table stg_spotify__playlist_tracks as select * from df")
# no quarantine: skipped lines are gone, and the sessionization (which reads the rejected lines
# between staged rows) finds none
con.execute("create table rejected_lines (line_number bigint, raw_line varchar, reason varchar, detail varchar)")
con.close()
print(len(df))
"""

# The real format: quoted fields, backslash escapes, a header; lines it cannot parse are skipped.
SCAN_SQL = (
    "select count(*) from read_csv('{path}', header = true, auto_detect = false, delim = ',', "
    "quote = '\"', escape = '\\', all_varchar = true, strict_mode = false, ignore_errors = true, "
    "columns = {{'user_id': 'varchar', 'artistname': 'varchar', 'trackname': 'varchar', "
    "'playlistname': 'varchar'}})"
)


def _ensure_raw() -> None:
    if RAW.exists():
        return
    RAW.parent.mkdir(parents=True, exist_ok=True)
    print(f"{RAW} is absent: generating the full preset (seed {SEED})", flush=True)
    cmd = [sys.executable, "-m", "ml.cli", "data", "generate", "--preset", "full", "--seed", str(SEED)]
    run_measured([*cmd, "--out", str(RAW)])


def _count_lines(path: Path) -> int:
    """Physical lines: newline bytes, plus a last line without a final newline."""
    n, last = 0, b""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (1 if last not in (b"", b"\n") else 0)


def _dbt_build(db_path: Path) -> RunFigures:
    for stale in (db_path, db_path.with_name(db_path.name + ".wal")):
        stale.unlink(missing_ok=True)
    cmd = dbt_command(("build",), SCRATCH, dbt_vars={"split_seed": SEED}, quiet=True)
    return run_measured(cmd, env=_dbt_env(db_path), cwd=DBT_PROJECT_DIR)


def _dbt_env(db_path: Path) -> dict[str, str]:
    return {"RAW_CSV": str(RAW), "DUCKDB_PATH": str(db_path), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}


def _naive_recipe(db_path: Path) -> RunFigures:
    """pandas read_csv(on_bad_lines='skip') into DuckDB, then `dbt run` of the same models on it."""
    for stale in (db_path, db_path.with_name(db_path.name + ".wal")):
        stale.unlink(missing_ok=True)
    load = run_measured([sys.executable, "-c", NAIVE_LOAD, str(RAW), str(db_path)])
    # target/ and logs/ apart from the build's, whose run_results.json the bench reads
    cmd = dbt_command(
        ("run",),
        SCRATCH / "naive",
        select="stg_spotify__playlist_tracks+",
        dbt_vars={"split_seed": SEED},
        quiet=True,
    )
    cmd += ["--exclude", "stg_spotify__playlist_tracks"]
    marts = run_measured(cmd, env=_dbt_env(db_path), cwd=DBT_PROJECT_DIR)
    return RunFigures(
        wall_s=load.wall_s + marts.wall_s,
        peak_rss_mb=max(load.peak_rss_mb, marts.peak_rss_mb),
        cpu_s=load.cpu_s + marts.cpu_s,
    )


def _naive_rows(db_path: Path) -> int:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return int(con.execute("select count(*) from stg_spotify__playlist_tracks").fetchone()[0])
    finally:
        con.close()


def _bare_scan() -> RunFigures:
    code = (
        "import duckdb; con = duckdb.connect(); con.execute('set enable_progress_bar = false'); "
        f"con.execute({SCAN_SQL.format(path=RAW)!r}).fetchone()"
    )
    return run_measured([sys.executable, "-c", code])


def _slowest_nodes(n: int = 10) -> list[tuple[str, float]]:
    target = SCRATCH / "target"
    results = json.loads((target / "run_results.json").read_text())["results"]
    timed = sorted(((r["unique_id"], r["execution_time"]) for r in results), key=lambda x: -x[1])
    return [(uid.split(".")[2], round(t, 2)) for uid, t in timed[:n]]


def main() -> None:
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    _ensure_raw()
    SCRATCH.mkdir(parents=True, exist_ok=True)
    db_path = SCRATCH / "warehouse.duckdb"

    naive_db = SCRATCH / "naive.duckdb"
    builds: list[RunFigures] = []
    scans: list[RunFigures] = []
    naives: list[RunFigures] = []
    loads: list[list[float]] = []
    for i in range(repeats):
        print(f"dbt build on the full preset, run {i + 1}/{repeats}", flush=True)
        builds.append(_dbt_build(db_path))
        print(
            f"  {builds[-1].wall_s:.1f} s, peak {builds[-1].peak_rss_mb:,.0f} MB; bare DuckDB scan",
            flush=True,
        )
        scans.append(_bare_scan())
        print(f"  {scans[-1].wall_s:.1f} s, peak {scans[-1].peak_rss_mb:,.0f} MB; naive recipe", flush=True)
        naives.append(_naive_recipe(naive_db))
        print(f"  {naives[-1].wall_s:.1f} s, peak {naives[-1].peak_rss_mb:,.0f} MB", flush=True)
        loads.append([round(x, 2) for x in os.getloadavg()])

    data_lines = _count_lines(RAW) - 1
    counts = accounting(db_path)
    if counts.data_lines != data_lines:
        raise RuntimeError(
            f"accounting: staged {counts.staged} + rejected {counts.rejected} != {data_lines} lines"
        )
    naive_rows = _naive_rows(naive_db)
    naive_db.unlink(missing_ok=True)
    slowest = _slowest_nodes()
    warehouse_mb = db_path.stat().st_size / 2**20
    shutil.rmtree(SCRATCH / "logs", ignore_errors=True)
    shutil.rmtree(SCRATCH / "naive", ignore_errors=True)

    wall = median([b.wall_s for b in builds])
    peak = max(b.peak_rss_mb for b in builds)
    scan = median([s.wall_s for s in scans])
    naive = median([n.wall_s for n in naives])
    cpu = median([b.cpu_s for b in builds])
    within = wall <= BUDGET_S and peak <= BUDGET_MB
    shown = os.path.relpath(RAW, REPO_ROOT)
    figures = {
        "command": f"dbt build (RAW_CSV={shown}, split_seed {SEED}): every model, data test and unit test",
        "repeats": repeats,
        "wall_s_median": round(wall, 2),
        "wall_s_runs": [round(b.wall_s, 2) for b in builds],
        "peak_rss_mb_max": round(peak, 1),
        "reference_scan_s_median": round(scan, 2),
        "reference_scan_s_runs": [round(s.wall_s, 2) for s in scans],
        "reference_scan_peak_rss_mb": round(max(s.peak_rss_mb for s in scans), 1),
        "ratio_build_over_scan": round(wall / scan, 1),
        "cpu_s_median": round(cpu, 1),
        "reference_naive_s_median": round(naive, 2),
        "reference_naive_s_runs": [round(n.wall_s, 2) for n in naives],
        "reference_naive_peak_rss_mb": round(max(n.peak_rss_mb for n in naives), 1),
        "reference_naive_cpu_s_median": round(median([n.cpu_s for n in naives]), 1),
        "reference_naive_rows_loaded": naive_rows,
        "reference_naive_rows_lost_silently": data_lines - naive_rows,
        "ratio_build_over_naive": round(wall / naive, 2),
        "budget_s": BUDGET_S,
        "budget_mb": BUDGET_MB,
        "within_budget": within,
        "data_lines": data_lines,
        "staged": counts.staged,
        "rejected": counts.rejected,
        "recovered": counts.recovered,
        "rejected_by_reason": counts.rejected_by_reason,
        "warehouse_mb": round(warehouse_mb, 1),
        "slowest_nodes_last_build": slowest,
        "load_average_per_repeat": loads,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    lines = [
        f"dbt build, full preset ({data_lines:,} data lines, {RAW.stat().st_size / 2**20:,.0f} MB -> {shown}):",
        f"  median {wall:.1f} s over {repeats} run(s) {figures['wall_s_runs']}, peak RSS {peak:,.0f} MB "
        f"(budget {BUDGET_S:.0f} s / {BUDGET_MB:,.0f} MB: {'within' if within else 'EXCEEDED'})",
        f"reference, same run: bare DuckDB scan (count(*) over read_csv) median {scan:.2f} s "
        f"{figures['reference_scan_s_runs']}; build/scan = {wall / scan:.1f}x",
        f"reference, same run: naive recipe (pandas read_csv(on_bad_lines='skip') + dbt run of the same "
        f"marts, no tests) median {naive:.1f} s {figures['reference_naive_s_runs']}, peak "
        f"{figures['reference_naive_peak_rss_mb']:,.0f} MB, {naive_rows:,} rows loaded "
        f"({data_lines - naive_rows:,} lines lost silently); build/naive = {wall / naive:.2f}x",
        f"CPU seconds (user+sys, process tree) median: build {cpu:.0f} s, naive "
        f"{figures['reference_naive_cpu_s_median']:.0f} s",
        f"accounting: {counts.staged:,} staged + {counts.rejected:,} rejected = {data_lines:,} data lines "
        f"({counts.recovered:,} recovered; rejected by reason {counts.rejected_by_reason})",
        f"warehouse file {warehouse_mb:,.0f} MB; slowest nodes of the last build: "
        + ", ".join(f"{name} {t:.1f}s" for name, t in slowest[:6]),
        f"load average at the end (1/5/15 min): {figures['load_average_at_end']} on {os.cpu_count()} CPUs",
    ]
    write_results("dbt", figures, lines)


if __name__ == "__main__":
    main()
