"""Evaluation cost of ml.knn's per-seed aggregation against the mean query, by vocabulary size.

Random d=64 tables (Q != I, as the output layer) of N_ITEMS rows (env, comma-separated; default the
small preset's folded vocabulary, 500k and the full preset's ~2.37M); playlists of SEEDS_PER_PLAYLIST
distinct seeds (47: the full preset's mean); `KnnTables.top_k(k=100)` with the batch ml.rankers
picks (`auto_batch_size`), per-seed with M = 50. Median of REPEATS runs per cell; seconds per seed
query extrapolated to the full preset's valid+test (2.04M seeds, 40,344 playlists: numbers from
bench/results/track2vec_recipes.md). The mean query is the same-run reference (a ratio).
Results: bench/results/per_seed_cost.json / .md.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

from bench.common import write_results

SEEDS_PER_PLAYLIST = 47
FULL_SEEDS = 2_040_000  # valid + test seeds at the full preset (1.01M + 1.03M)
FULL_PLAYLISTS = 40_344
M = 50
REPEATS = 3


def _time(fn) -> float:
    runs = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    from ml.knn import KnnTables
    from ml.rankers import auto_batch_size

    sizes = [int(x) for x in os.environ.get("N_ITEMS", "47877,500000,2370000").split(",")]
    rng = np.random.default_rng(0)
    rows, figures = [], {"seeds_per_playlist": SEEDS_PER_PLAYLIST, "m": M, "repeats": REPEATS, "cells": []}
    load_before = os.getloadavg()[0]
    for n in sizes:
        query = rng.normal(size=(n, 64)).astype(np.float32)
        items = rng.normal(size=(n, 64)).astype(np.float32)
        n_playlists = max(4, int(2_000_000 * 4 / n))  # ~the same work per cell
        playlists = [
            rng.choice(n, size=SEEDS_PER_PLAYLIST, replace=False).tolist() for _ in range(n_playlists)
        ]
        batch = auto_batch_size(n)
        mean_tables = KnnTables(items_t=items.T, query_table=query)
        seed_tables = KnnTables(items_t=items.T, query_table=query, per_seed=M)
        mean_s = _time(lambda t=mean_tables, p=playlists, b=batch: t.top_k(p, 100, b))
        seed_s = _time(lambda t=seed_tables, p=playlists, b=batch: t.top_k(p, 100, b))
        seeds = n_playlists * SEEDS_PER_PLAYLIST
        cell = {
            "n_items": n,
            "playlists": n_playlists,
            "batch": batch,
            "mean_s_per_playlist": mean_s / n_playlists,
            "per_seed_s_per_seed": seed_s / seeds,
            "ratio_per_playlist": seed_s / mean_s,
            "full_valid_test_mean_s": mean_s / n_playlists * FULL_PLAYLISTS,
            "full_valid_test_per_seed_s": seed_s / seeds * FULL_SEEDS,
        }
        figures["cells"].append(cell)
        rows.append(
            f"| {n:,} | {n_playlists} | {mean_s / n_playlists * 1e3:.2f} | {seed_s / n_playlists * 1e3:.1f} | "
            f"{seed_s / mean_s:.0f}x | {cell['full_valid_test_mean_s']:,.0f} | {cell['full_valid_test_per_seed_s']:,.0f} |"
        )
        del query, items, mean_tables, seed_tables
    figures["load_average"] = [load_before, os.getloadavg()[0]]
    lines = [
        f"ml.knn KnnTables.top_k(k=100), d=64, Q != I, {SEEDS_PER_PLAYLIST} seeds per playlist, per-seed M={M};"
        f" median of {REPEATS}; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} (shared 2 cores).",
        "",
        "| item rows | playlists | mean ms/playlist | per-seed ms/playlist | ratio | full valid+test s, mean |"
        " full valid+test s, per-seed |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Full valid+test: {FULL_PLAYLISTS:,} playlists / {FULL_SEEDS:,} seed queries (extrapolated linearly).",
    ]
    write_results("per_seed_cost", figures, lines)


if __name__ == "__main__":
    main()
