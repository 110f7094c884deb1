"""Benchmark the generator at full scale; writes THE shared full-preset file other benchmarks reuse.

`python -m bench generate` runs `ml data generate --preset full --seed 42` into
BENCH_DATA_DIR/spotify_full.csv (BENCH_REPEATS times, default 3; every repeat must give the same bytes),
and quotes the median time and peak memory beside references measured in the same run: reading
the produced file back with DuckDB (the real-format reader, every line loaded or rejected) and with
`wc -l` (raw read speed). Budget: at most 60 s and 4 GB.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from bench.common import BENCH_DATA_DIR, REPO_ROOT, median, run_measured, write_results
from ml.data.generate import DUCKDB_RAW_READ_OPTIONS, sidecar_path

OUT = BENCH_DATA_DIR / "spotify_full.csv"
SEED = 42
BUDGET_S = 60.0  # issue 11: at most 60 s and 4 GB on the full preset
BUDGET_MB = 4096.0


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def _duckdb_profile(path: Path) -> tuple[float, dict[str, object]]:
    """Time DuckDB loading the file with the real-format reader, then profile what it loaded."""
    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute(f"create table raw as select * from read_csv('{path}', {DUCKDB_RAW_READ_OPTIONS})")
    read_s = time.perf_counter() - t0
    q = lambda sql: con.execute(sql).fetchall()[0]  # noqa: E731
    loaded, users = q("select count(*), count(distinct user_id) from raw")
    rejected = q("select count(distinct line) from reject_errors")[0]
    playlists, median_size, max_size = q(
        "select count(*), median(n), max(n) from (select count(*) n from raw group by user_id, playlistname)"
    )
    tracks, artists = q(
        "select count(distinct (lower(trim(coalesce(artistname, ''))), lower(trim(coalesce(trackname, ''))))),"
        " count(distinct lower(trim(coalesce(artistname, '')))) from raw"
    )
    empty_artist = q("select avg((coalesce(artistname, '') = '')::int) from raw")[0]
    return read_s, {
        "loaded_rows": loaded,
        "rejected_lines": rejected,
        "users": users,
        "playlists": playlists,
        "distinct_tracks": tracks,
        "distinct_artists": artists,
        "median_playlist_size": float(median_size),
        "max_playlist_size": max_size,
        "empty_artist_share": round(float(empty_artist), 5),
        "rejected_share": round(rejected / (loaded + rejected), 5),
    }


def main() -> None:
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    load_before = [round(x, 2) for x in os.getloadavg()]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "ml.cli", "data", "generate", "--preset", "full", "--seed", str(SEED)]
    runs, digests = [], []
    for i in range(repeats):
        print(f"generate full preset, run {i + 1}/{repeats} -> {OUT}", flush=True)
        runs.append(run_measured([*cmd, "--out", str(OUT)]))
        digests.append(_sha256(OUT))
    if len(set(digests)) != 1:
        raise RuntimeError(f"full preset is not deterministic: {digests}")

    size_bytes = OUT.stat().st_size
    # Reference: `wc -l` reads every byte (cat to /dev/null may skip the copy entirely).
    t0 = time.perf_counter()
    wc = subprocess.run(["wc", "-l", str(OUT)], capture_output=True, text=True, check=True)
    wc_s = time.perf_counter() - t0
    data_lines = int(wc.stdout.split()[0]) - 1  # minus the header
    duckdb_s, profile = _duckdb_profile(OUT)
    if profile["loaded_rows"] + profile["rejected_lines"] != data_lines:
        raise RuntimeError(f"DuckDB accounting: {profile} vs {data_lines} data lines")

    load_after = [round(x, 2) for x in os.getloadavg()]
    shown = os.path.relpath(OUT, REPO_ROOT)
    wall = median([r.wall_s for r in runs])
    peak = max(r.peak_rss_mb for r in runs)
    figures = {
        "command": f"ml data generate --preset full --seed {SEED} --out {shown}",
        "repeats": repeats,
        "wall_s_median": round(wall, 2),
        "wall_s_runs": [round(r.wall_s, 2) for r in runs],
        "peak_rss_mb_max": round(peak, 1),
        "rows": data_lines,
        "rows_per_s": round(data_lines / wall),
        "file_mb": round(size_bytes / 2**20, 1),
        "mb_per_s": round(size_bytes / 2**20 / wall, 1),
        "sha256": digests[0],
        "sidecar_mb": round(sidecar_path(OUT).stat().st_size / 2**20, 1),
        "reference_duckdb_read_s": round(duckdb_s, 2),
        "reference_wc_s": round(wc_s, 2),
        "ratio_generate_over_duckdb_read": round(wall / duckdb_s, 2),
        "ratio_generate_over_wc_l": round(wall / wc_s, 1),
        "within_budget": wall <= BUDGET_S and peak <= BUDGET_MB,
        # 1/5/15-minute load averages of the (shared, 2-core) machine before and after the run: other
        # jobs slow the generator and its DuckDB reference alike; the ratio is the comparable figure.
        "load_average_before": load_before,
        "load_average_after": load_after,
        "full_file_profile": profile,
    }
    lines = [
        f"full preset (seed {SEED}): {data_lines:,} rows, {size_bytes / 2**20:,.0f} MB -> {shown}",
        f"generate: median {wall:.1f} s over {repeats} run(s) {figures['wall_s_runs']}, "
        f"{data_lines / wall:,.0f} rows/s, {size_bytes / 2**20 / wall:,.1f} MB/s, peak RSS {peak:,.0f} MB "
        f"(budget {BUDGET_S:.0f} s / {BUDGET_MB:.0f} MB: {'within' if figures['within_budget'] else 'EXCEEDED'})",
        f"reference, same run: DuckDB reads it back in {duckdb_s:.1f} s (generate/read = {wall / duckdb_s:.2f}x), "
        f"`wc -l` in {wc_s:.2f} s (generate/wc = {wall / wc_s:.0f}x)",
        f"identical bytes across repeats: sha256 {digests[0][:16]}...",
        f"load average (1/5/15 min) on {os.cpu_count()} cores: {load_before} before, {load_after} after",
        "file profile (DuckDB, real-format reader): "
        + ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in profile.items()),
    ]
    write_results("generate", figures, lines)


if __name__ == "__main__":
    main()
