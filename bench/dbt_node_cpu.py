"""Where a `dbt build` spends its CPU: replay its SQL node by node and time each node's CPU seconds.

`python -m bench.dbt_node_cpu TARGET_DIR DB_PATH` reads a finished build's target/ (run_results.json for
the order, manifest.json for the nodes, the SQL dbt ran under target/run/), and runs every model and
data test in that order, in one DuckDB connection with the dev profile's settings, into DB_PATH (a
scratch file, replaced). For each node it prints the CPU seconds (user + sys of this process) and the
wall time. Unlike run_results.json's execution times, the CPU seconds neither count the time a node
waits for a core nor overlap with the other dbt thread, so they add up to the build's SQL work; the
difference from the build's own CPU seconds is dbt's (parse, unit tests, metadata queries).
The build's DuckDB catalog must be named like DB_PATH's stem (the SQL names it): replay a build of
`.../warehouse.duckdb` into another folder's `warehouse.duckdb`. Not a benchmark of record: a profiler.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import duckdb

# the dev target's settings (profiles/profiles.yml), at their defaults
SETTINGS = {
    "memory_limit": "3GB",
    "preserve_insertion_order": "false",
    "perfect_ht_threshold": "24",
    "enable_progress_bar": "false",
}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def replay(target_dir: Path, db_path: Path) -> list[tuple[str, float, float]]:
    """(node name, CPU s, wall s) per model and data test, in the build's order."""
    results = json.loads((target_dir / "run_results.json").read_text())["results"]
    nodes = json.loads((target_dir / "manifest.json").read_text())["nodes"]
    for stale in (db_path, db_path.with_name(db_path.name + ".wal")):
        stale.unlink(missing_ok=True)
    con = duckdb.connect(str(db_path))
    for name, value in SETTINGS.items():
        con.execute(f"set {name} = '{value}'")
    timed = []
    try:
        for result in results:
            node = nodes.get(result["unique_id"])
            if node is None or node["resource_type"] not in ("model", "test"):
                continue  # unit tests, hooks, exposures
            run_sql = Path(node["compiled_path"].replace("/compiled/", "/run/", 1))
            # dbt builds a table as <name>__dbt_tmp and renames it: build it under its name
            sql = run_sql.read_text().replace('__dbt_tmp"', '"')
            cpu, start = _cpu_s(), time.perf_counter()
            con.execute(sql).fetchall()
            timed.append((node["name"], _cpu_s() - cpu, time.perf_counter() - start))
    finally:
        con.close()
    return timed


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.dbt_node_cpu TARGET_DIR DB_PATH", file=sys.stderr)
        return 2
    timed = replay(Path(argv[0]), Path(argv[1]))
    total = sum(cpu for _, cpu, _ in timed)
    tests = sum(cpu for name, cpu, _ in timed if name in _test_names(Path(argv[0])))
    for name, cpu, wall in sorted(timed, key=lambda t: -t[1]):
        print(f"{cpu:7.2f} CPU s {wall:7.2f} s  {name}")
    print(f"total {total:.1f} CPU s over {len(timed)} nodes ({tests:.1f} in data tests)")
    return 0


def _test_names(target_dir: Path) -> set[str]:
    nodes = json.loads((target_dir / "manifest.json").read_text())["nodes"]
    return {node["name"] for node in nodes.values() if node["resource_type"] == "test"}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
