"""Peak memory of name queries (issue 14) over a full-preset-sized catalogue: `ml.knn.NameRule.top_k`
(a blocked scan of the name space, sparse per-seed sums) beside the dense rule it replaced (its
[queries x items] float32 score matrix, `NameRule.scores`), on a synthetic matrix.

    python -m bench.bench_name_scan [n_items] [n_queries] [dense_queries]

Defaults: 2,370,000 items x 64 (the full preset's vocabulary), 1,000 name queries. The dense rule
is measured on `dense_queries` (default 64) only - at 1,000 it would hold ~9.5 GB per score
matrix - and its per-query peak is scaled up to 1,000 as an estimate. Each case's peak is the
process's resident-memory high-water mark (VmHWM, reset before the case through
/proc/self/clear_refs) minus its resident memory before the case (the tables are loaded by then).
Writes bench/results/name_scan_memory.json/.md with the load average.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common import write_results


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measured(fn: Callable[[], object]) -> tuple[float, float]:
    """(peak MB above the resident memory before, seconds) of one call."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    return (_status_kb("VmHWM") - before) / 1024, wall


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    n_items = int(argv[0]) if argv else 2_370_000
    n_queries = int(argv[1]) if len(argv) > 1 else 1000
    dense_queries = int(argv[2]) if len(argv) > 2 else 64
    load_before = os.getloadavg()

    from ml.knn import KnnTables, NameRule, _select_top, normalize_rows

    d, n_tokens = 64, 5000
    rng = np.random.default_rng(0)
    items = np.empty((n_items, d), dtype=np.float32)
    for a in range(0, n_items, 262_144):  # in chunks: no float64 copy of the whole matrix
        items[a : a + 262_144] = rng.standard_normal((min(262_144, n_items - a), d), dtype=np.float32)
    items = normalize_rows(items)
    prior = rng.uniform(size=n_items).astype(np.float32)
    name_rows = rng.standard_normal((n_tokens, d + 1), dtype=np.float32)
    name_rows[:, :d] = normalize_rows(name_rows[:, :d])
    tokens = [
        rng.choice(n_tokens, size=int(rng.integers(1, 4)), replace=False).tolist() for _ in range(n_queries)
    ]
    keys = [f"name:t{i}" for i in range(n_tokens)]
    seeds = [
        rng.choice(n_items, size=int(rng.integers(1, 3)), replace=False).tolist() for _ in range(n_queries)
    ]
    cosine = KnnTables(items_t=items.T)  # Q = I (cosine)
    per_seed = KnnTables(items_t=items.T, per_seed=20)
    k = 100  # ml.shapes.K_MAX: the evaluation's list length

    cases: dict[str, tuple[NameRule, list[list[int]]]] = {
        "name only (Q = I)": (NameRule.over(cosine, keys, name_rows, prior, 2.0), [[]] * n_queries),
        "name + 1-2 seeds, mean rule, worth 2": (NameRule.over(cosine, keys, name_rows, prior, 2.0), seeds),
        "name + 1-2 seeds, per-seed M=20, worth 2": (
            NameRule.over(per_seed, keys, name_rows, prior, 2.0),
            seeds,
        ),
    }
    rows: dict[str, dict[str, float]] = {}
    for label, (rule, seed_rows) in cases.items():
        peak, wall = measured(lambda rule=rule, seed_rows=seed_rows: rule.top_k(seed_rows, tokens, k))
        rows[label] = {"queries": n_queries, "peak_mb": round(peak, 1), "wall_s": round(wall, 2)}
        print(label, rows[label], flush=True)

    # The dense rule it replaced, on fewer queries (the score matrix alone is queries x items x 4 B).
    def dense() -> None:
        rule = cases["name only (Q = I)"][0]
        _select_top(rule.scores([[]] * dense_queries, tokens[:dense_queries]), k)

    peak, wall = measured(dense)
    per_query = peak / dense_queries
    rows["dense rule (before), name only"] = {
        "queries": dense_queries,
        "peak_mb": round(peak, 1),
        "wall_s": round(wall, 2),
        "estimated_peak_mb_at_1000": round(per_query * 1000, 1),
    }
    print("dense", rows["dense rule (before), name only"], flush=True)
    load_after = os.getloadavg()
    matrix_mb = items.nbytes / 2**20
    lines = [
        f"synthetic name space: {n_items:,} items x {d} float32 ({matrix_mb:,.0f} MB) + prior column, "
        f"{n_tokens:,} name-token rows, top {k}; load average before {load_before[0]:.1f}, after "
        f"{load_after[0]:.1f} ({os.cpu_count()} cores)",
        "peak = resident-memory high-water mark during the call minus the resident memory before it",
        "",
        "| case | queries | peak MB above the tables | wall s |",
        "|---|---:|---:|---:|",
        *(
            f"| {label} | {r['queries']:,} | {r['peak_mb']:,.1f} | {r['wall_s']:.2f} |"
            for label, r in rows.items()
        ),
        "",
        f"dense rule estimate at 1,000 queries: {rows['dense rule (before), name only']['estimated_peak_mb_at_1000']:,.0f} MB "
        f"(its {dense_queries}-query peak scaled; the score matrix alone is "
        f"{1000 * n_items * 4 / 2**20:,.0f} MB)",
    ]
    write_results(
        "name_scan_memory",
        {
            "n_items": n_items,
            "dim": d,
            "k": k,
            "cases": rows,
            "load_before": load_before,
            "load_after": load_after,
        },
        lines,
    )


if __name__ == "__main__":
    main()
