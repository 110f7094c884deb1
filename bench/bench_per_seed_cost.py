"""Evaluation cost of ml.knn's per-seed aggregation on a real full-preset model, and what each exact
improvement buys.

The model: bench/per_seed_model.py's track2vec fit (grid.yml defaults, min_count 5 + ml.fold, the
output-layer tables: Q = input vectors, I = output weights) in MODEL_DIR (default
data/bench/per_seed_full; fit it first under the heavy lock). Valid+test seeds are those of the
warehouse it was fitted on, as rows of the tables.

Variants, all on the same sample of valid+test playlists in this run (`KnnTables.top_k(k=100)`,
M = PER_SEED, grid.yml's default):
- `dense` (reference, i): the rule before this change: every seed occurrence of a playlist one
  query, 13 seeds x 2.37M scores per product, `_select_top`, `np.add.at` into a dense
  [playlists x n_items] matrix, `_select_top` again (written out below, as ml/knn.py had it);
- `sparse` (ii): today's ml.knn: each distinct seed once (SeedLists), a blocked scan
  (SeedIndex.blocked), the sums kept sparse per playlist;
- `clustered` (iii): the same with SeedIndex.clustered (k-means blocks, exact bound pruning), for
  each entry of BLOCKS (`C` clusters, or `CxT`: each cluster cut into T blocks by norm).
Each variant's answers are compared with the reference (identical rows, max score difference).

Extrapolation to all valid+test playlists: the scan costs per distinct seed (measured on a seeded
sample of SCAN_SEEDS distinct known seeds of valid+test) x the distinct known seeds of valid+test,
plus the aggregation per seed occurrence. Same run: numpy sgemm GFLOPS and the arithmetic floor of
the brute force (distinct seeds x items x d x 2 flops). Results: bench/results/per_seed_cost.json / .md.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

from bench.common import REPO_ROOT, write_results
from bench.per_seed_model import complete, load

MODEL_DIR = Path(os.environ.get("MODEL_DIR", REPO_ROOT / "data" / "bench" / "per_seed_full"))
SAMPLE_PLAYLISTS = int(os.environ.get("SAMPLE_PLAYLISTS", "24"))
SCAN_SEEDS = int(os.environ.get("SCAN_SEEDS", "2048"))
# k-means clusters, "CxT": each cluster cut into T norm tiers
BLOCKS = [x for x in os.environ.get("BLOCKS", "1024,1024x4,4096x4").split(",") if x]
PER_SEED = 20
K = 100
REPEATS = int(os.environ.get("REPEATS", "3"))
FULL = os.environ.get("FULL", "1") == "1"  # also run every valid+test playlist with the auto index
TARGET_S = 60.0
TRAIN_WALL_S = 900.0


def dense_reference(query: np.ndarray, items_t: np.ndarray, seed_rows, m: int, k: int):
    """ml.knn's per-seed `top_k` before this change (commit 6dad140): dense scores, one query per
    seed occurrence, ~32M scores per product."""
    from ml.knn import _select_top

    n_items = items_t.shape[1]
    m = min(m, n_items - 1)
    scores = np.zeros((len(seed_rows), n_items), dtype=np.float32)
    sets = [np.unique(np.asarray(r, dtype=np.int64)) for r in seed_rows]
    lengths = np.array([len(r) for r in sets], dtype=np.int64)
    rows = np.concatenate(sets)
    owner = np.repeat(np.arange(len(sets)), lengths)
    chunk = max(1, min(1024, 32_000_000 // n_items))
    for start in range(0, len(rows), chunk):
        stop = min(start + chunk, len(rows))
        p = query[rows[start:stop]] @ items_t
        cols, vals = _select_top(p, m + 1)
        contrib = vals[:, :m] - vals[:, m : m + 1]
        np.add.at(scores, (np.repeat(owner[start:stop], m), cols[:, :m].ravel()), contrib.ravel())
    for i, r in enumerate(seed_rows):
        if len(r):
            scores[i, np.asarray(r, dtype=np.int64)] = -np.inf
    return _select_top(scores, min(k, n_items))


def _timed(fn, repeats: int = REPEATS):
    runs, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), runs, out


def sgemm_gflops(items_t: np.ndarray, rng: np.random.Generator) -> float:
    """numpy float32 products of 256 queries x 64k item columns, repeated: GFLOPS (median of 5)."""
    d = items_t.shape[0]
    block = np.ascontiguousarray(items_t[:, :65536])
    q = rng.normal(size=(256, d)).astype(np.float32)
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(4):
            q @ block
        runs.append(time.perf_counter() - t0)
    return 4 * 2 * 256 * d * block.shape[1] / statistics.median(runs) / 1e9


def main() -> None:
    from ml.knn import KnnTables, SeedIndex, SeedLists

    if not complete(MODEL_DIR):
        raise SystemExit(
            f"{MODEL_DIR}: no fitted model (python -m bench.per_seed_model WAREHOUSE {MODEL_DIR})"
        )
    model = load(MODEL_DIR)
    query, items = model["query"], model["items"]
    items_t = items.T  # the layout ml.rankers passes (a view of [n, d])
    n_items, dim = items.shape
    playlists = list(model["seeds"]["valid"]) + list(model["seeds"]["test"])
    n_playlists = len(playlists)
    occurrences = np.concatenate([np.unique(p) for p in playlists])
    distinct = np.unique(occurrences)
    per_split = sum(
        len(np.unique(np.concatenate([np.unique(p) for p in model["seeds"][s]]))) for s in ("valid", "test")
    )
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()
    gflops = sgemm_gflops(items_t, rng)
    figures: dict[str, object] = {
        "model_dir": str(MODEL_DIR.relative_to(REPO_ROOT))
        if MODEL_DIR.is_relative_to(REPO_ROOT)
        else str(MODEL_DIR),
        "model": model["meta"],
        "n_items": n_items,
        "dim": dim,
        "per_seed": PER_SEED,
        "k": K,
        "valid_test_playlists": n_playlists,
        "valid_test_seed_occurrences": int(len(occurrences)),
        "valid_test_distinct_seeds": int(len(distinct)),
        "distinct_seeds_per_split_sum": int(per_split),
        "sgemm_gflops": gflops,
    }
    floor_flops = 2.0 * len(distinct) * n_items * dim
    figures["brute_force_floor_s"] = floor_flops / (gflops * 1e9)
    figures["mean_rule_floor_s"] = 2.0 * n_playlists * n_items * dim / (gflops * 1e9)

    # (1) The same sample of playlists through every variant (a ratio).
    pick = np.sort(rng.choice(n_playlists, size=SAMPLE_PLAYLISTS, replace=False))
    sample = [playlists[i] for i in pick]
    sample_occ = int(sum(len(np.unique(p)) for p in sample))
    dense_s, dense_runs, (ref_rows, ref_scores) = _timed(
        lambda: dense_reference(query, items_t, sample, PER_SEED, K), repeats=1
    )
    variants = {"dense": {"s": dense_s, "runs": dense_runs}}
    indexes: dict[str, SeedIndex | None] = {"sparse": None}
    builds: dict[str, float] = {}
    for spec in BLOCKS:
        n_blocks, _, tiers = spec.partition("x")
        t0 = time.perf_counter()
        indexes[f"clustered{spec}"] = SeedIndex.clustered(items_t, int(n_blocks), norm_tiers=int(tiers or 1))
        builds[f"clustered{spec}"] = time.perf_counter() - t0
    for name, index in indexes.items():
        tables = KnnTables(items_t=items_t, query_table=query, per_seed=PER_SEED, seed_index=index)
        s, runs, got = _timed(lambda t=tables: t.top_k(sample, K))
        if name == "sparse":
            sparse_rows = got.rows
        variants[name] = {
            "identical_rows_vs_sparse": float((got.rows == sparse_rows).all(axis=1).mean()),
            "s": s,
            "runs": runs,
            "identical_rows": float((got.rows == ref_rows).all(axis=1).mean()),
            "max_score_diff": float(np.abs(got.scores - ref_scores).max()),
            "build_s": builds.get(name, 0.0),
        }
    figures["sample"] = {"playlists": SAMPLE_PLAYLISTS, "seed_occurrences": sample_occ, "variants": variants}

    # (2) Scan cost per distinct seed, on a seeded sample of the distinct seeds of valid+test.
    scan_seeds = np.sort(rng.choice(distinct, size=min(SCAN_SEEDS, len(distinct)), replace=False))
    q_scan = query[scan_seeds]
    scans: dict[str, dict[str, float]] = {}
    ref_lists = None
    for name, index in indexes.items():
        idx = index if index is not None else SeedIndex.blocked(items_t)
        stats: dict[str, float] = {}
        s, runs, (cols, vals) = _timed(lambda i=idx, st=stats: i.top(q_scan, PER_SEED + 1, st), repeats=1)
        if ref_lists is None:
            ref_lists = (cols, vals)
        scans[name] = {
            "s_per_seed": s / len(scan_seeds),
            "scored_share": stats["scored"] / stats["cells"],
            "identical_lists": float((cols == ref_lists[0]).all(axis=1).mean()),
            "full_scan_s": s / len(scan_seeds) * len(distinct),
            "full_scan_per_split_s": s / len(scan_seeds) * per_split,
        }
    # Why a bound skips what it skips: the share of items a norm bound |q| |x| >= the seed's (M+1)-th
    # score keeps, and exact duplicate rows (identical rows score alike: a scan could share them).
    norms = np.sort(np.linalg.norm(items, axis=1))
    qn = np.linalg.norm(q_scan, axis=1)
    kept = len(norms) - np.searchsorted(norms, ref_lists[1][:, PER_SEED] / np.maximum(qn, 1e-30), side="left")
    figures["norm_bound_share"] = float(kept.mean() / n_items)
    figures["distinct_item_rows"] = int(len(np.unique(items.view(np.dtype((np.void, 4 * dim))).ravel())))
    figures["distinct_seed_query_rows"] = int(
        len(np.unique(np.ascontiguousarray(query[distinct]).view(np.dtype((np.void, 4 * dim))).ravel()))
    )
    # Aggregation + top-k per seed occurrence (sparse sums, fill rule), on the sampled playlists.
    lists = KnnTables(items_t=items_t, query_table=query, per_seed=PER_SEED).per_seed_lists(sample)
    agg_s, _, _ = _timed(lambda: SeedLists.top_k(lists, sample, K, n_items))
    agg_full = agg_s / sample_occ * len(occurrences)
    for name in scans:
        scans[name]["full_valid_test_s"] = scans[name]["full_scan_s"] + agg_full + builds.get(name, 0.0)
        scans[name]["full_valid_test_per_split_s"] = (
            scans[name]["full_scan_per_split_s"] + agg_full + builds.get(name, 0.0)
        )
    figures["scan"] = {"seeds": len(scan_seeds), "variants": scans, "aggregate_full_s": agg_full}
    figures["dense_full_valid_test_s"] = dense_s / sample_occ * len(occurrences)
    if FULL:  # every valid and test playlist, as evaluation runs them (one index, two calls)
        from ml.knn import auto_seed_index

        t0 = time.perf_counter()
        index = auto_seed_index(items_t)
        build = time.perf_counter() - t0
        tables = KnnTables(items_t=items_t, query_table=query, per_seed=PER_SEED, seed_index=index)
        split_s = {}
        for split in ("valid", "test"):
            t1 = time.perf_counter()
            tables.top_k(model["seeds"][split], K)
            split_s[split] = time.perf_counter() - t1
        figures["full_run"] = {
            "index": f"k-means, {index.n_blocks:,} blocks" if index else "blocked scan",
            "build_s": build,
            **{f"{s}_s": v for s, v in split_s.items()},
            "total_s": build + sum(split_s.values()),
            "load_average": os.getloadavg()[0],
        }
    load_after = os.getloadavg()
    figures["load_average"] = [load_before[0], load_after[0]]
    write_results("per_seed_cost", figures, _lines(figures))


def _lines(f: dict) -> list[str]:
    m = f["model"]
    sample, scan = f["sample"], f["scan"]
    lines = [
        f"Real model: {MODEL_DIR.name} (track2vec {m['params']['epochs']} epochs of grid.yml defaults, "
        f"{m['trained_rows']:,} trained + {m['folded_rows']:,} folded rows = {f['n_items']:,} x {f['dim']}; "
        f"fit {m['fit_s']:.0f} s, fold {m['fold_s']:.0f} s). Per-seed M={f['per_seed']}, k={f['k']}.",
        f"Valid+test: {f['valid_test_playlists']:,} playlists, {f['valid_test_seed_occurrences']:,} known seed "
        f"occurrences, {f['valid_test_distinct_seeds']:,} distinct known seeds across both splits "
        f"({f['distinct_seeds_per_split_sum']:,} counted per split, as two evaluate() calls see them). Load average "
        f"{f['load_average'][0]:.1f} -> {f['load_average'][1]:.1f} (2 cores, shared).",
        "",
        f"sgemm (numpy float32, 256 x {f['dim']} @ {f['dim']} x 65,536) in this run: {f['sgemm_gflops']:.1f} GFLOPS. "
        f"Arithmetic floor of the brute force (distinct seeds x items x {f['dim']} x 2): "
        f"{f['brute_force_floor_s']:,.0f} s; of the mean rule (playlists x items): {f['mean_rule_floor_s']:,.0f} s.",
        "",
        f"Same {sample['playlists']} sampled playlists ({sample['seed_occurrences']:,} seed occurrences), every variant "
        "(median of runs; the reference once):",
        "",
        "| variant | s | vs dense | identical rows vs dense | vs sparse | max score diff | index build s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    dense = sample["variants"]["dense"]["s"]
    for name, v in sample["variants"].items():
        lines.append(
            f"| {name} | {v['s']:.2f} | {dense / v['s']:.1f}x | {v.get('identical_rows', 1.0):.3f} | "
            f"{v.get('identical_rows_vs_sparse', 0.0):.3f} | "
            f"{v.get('max_score_diff', 0.0):.1e} | {v.get('build_s', 0.0):.0f} |"
        )
    lines += [
        "",
        f"Scan per distinct seed ({scan['seeds']:,} seeded distinct seeds of valid+test), extrapolated to all "
        f"{f['valid_test_distinct_seeds']:,} distinct seeds, plus the sparse aggregation ({scan['aggregate_full_s']:.0f} s"
        " for all seed occurrences) and the index build:",
        "",
        "| scan | ms/seed | share of scores computed | identical lists | full valid+test s (seeds shared"
        " across splits) | per split | vs 60 s | vs 900 s train wall |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| dense (today's code, per occurrence) | | 1.000 | | {f['dense_full_valid_test_s']:,.0f} | | "
        f"{f['dense_full_valid_test_s'] / TARGET_S:.0f}x | {f['dense_full_valid_test_s'] / TRAIN_WALL_S:.1f}x |",
    ]
    for name, v in scan["variants"].items():
        lines.append(
            f"| {name} | {v['s_per_seed'] * 1e3:.2f} | {v['scored_share']:.3f} | {v['identical_lists']:.3f} | "
            f"{v['full_valid_test_s']:,.0f} | {v['full_valid_test_per_split_s']:,.0f} | "
            f"{v['full_valid_test_s'] / TARGET_S:.0f}x | "
            f"{v['full_valid_test_s'] / TRAIN_WALL_S:.1f}x |"
        )
    if "full_run" in f:
        r = f["full_run"]
        lines += [
            "",
            f"Measured, not extrapolated: every valid and test playlist through `KnnTables.top_k` with the index "
            f"evaluation builds (`ml.knn.auto_seed_index`: {r['index']}): build {r['build_s']:.0f} s + valid "
            f"{r['valid_s']:.0f} s + test {r['test_s']:.0f} s = {r['total_s']:.0f} s (target 60 s; "
            f"{r['total_s'] / TRAIN_WALL_S:.2f} of the 900 s train wall), load average {r['load_average']:.1f} at the end.",
        ]
    lines += [
        "",
        f"Structure: a norm bound (|q| |x| >= the seed's {f['per_seed'] + 1}th score) keeps "
        f"{f['norm_bound_share']:.3f} of the items on average; distinct item rows {f['distinct_item_rows']:,} of "
        f"{f['n_items']:,}; distinct query rows among the distinct seeds {f['distinct_seed_query_rows']:,} of "
        f"{f['valid_test_distinct_seeds']:,}.",
    ]
    return lines


if __name__ == "__main__":
    main()
