"""Training benchmark: `ml train` (search included) on the full preset, and the evaluation speed.

Input: BENCH_DATA_DIR/spotify_full.csv (written once by `python -m bench generate`) built by dbt into
BENCH_DATA_DIR/warehouse_full.duckdb (reused when it exists, e.g. from `python -m bench dbt`; built
here otherwise). Measured in one run:
- `ml train` in a fresh process: wall time and peak RSS of the process tree (target: <= 30 min),
  the refit's words/s per gensim worker, the phase timings;
- evaluation speed: the batched evaluation (`ml.evaluate.rank_vectors`, matrix products through
  `ml.knn`) over every test playlist vs the per-playlist reference (gensim `most_similar` on each
  playlist's seeds, how the seed recipe evaluated) on a sample, as test playlists/s and their ratio
  (target: >= 20k test playlists in < 30 s);
- quality: the selected model's test HR@10 over the seed recipe's (target >= 1.5x) and over the item
  co-occurrence kNN's (target >= 1x), both on the same split and protocol.
Run it alone: `flock /tmp/music-recsys-heavy.lock .venv/bin/python -m bench train`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from bench.common import BENCH_DATA_DIR, REPO_ROOT, run_measured, write_results

FULL_CSV = BENCH_DATA_DIR / "spotify_full.csv"
WAREHOUSE = BENCH_DATA_DIR / "warehouse_full.duckdb"
MODELS_DIR = BENCH_DATA_DIR / "models_train"
TARGET_WALL_S = 30 * 60
TARGET_EVAL = (20_000, 30.0)  # playlists, seconds
REFERENCE_PLAYLISTS = int(os.environ.get("BENCH_EVAL_REFERENCE", "300"))


def ensure_warehouse() -> float | None:
    """Build the full warehouse once (dbt, into a temp file renamed at the end); seconds or None."""
    if WAREHOUSE.exists():
        return None
    from ml.warehouse import build_warehouse

    tmp = WAREHOUSE.with_name(WAREHOUSE.name + ".building")
    start = time.perf_counter()
    build_warehouse(FULL_CSV, tmp, dbt_vars={"split_seed": 42})
    os.replace(tmp, WAREHOUSE)
    return time.perf_counter() - start


def eval_speed(run_dir: Path) -> dict[str, float]:
    """Batched evaluation of all test playlists vs the per-playlist reference on a sample."""
    import numpy as np
    from gensim.models import KeyedVectors

    from ml.baselines import popularity_counts, popularity_order
    from ml.corpus import load_playlists
    from ml.rankers import VectorModel, rank_vectors
    from ml.warehouse import connect

    con = connect(WAREHOUSE)
    try:
        data = load_playlists(con)
    finally:
        con.close()
    kv = KeyedVectors.load(str(run_dir / "vectors.kv"), mmap="r")
    index = {t: i for i, t in enumerate(data.track_ids)}
    track_of_row = np.fromiter((index[k] for k in kv.index_to_key), dtype=np.int64, count=len(kv))
    model = VectorModel.from_vectors(np.asarray(kv.vectors), track_of_row, data.n_tracks)
    popular = popularity_order(popularity_counts(data.train, data.n_tracks))
    test = data.test
    start = time.perf_counter()
    rank_vectors(model, test.seeds, popular)
    batched_s = time.perf_counter() - start
    # Reference: one gensim most_similar call per playlist (positive = its known seeds).
    sample = np.random.default_rng(0).choice(
        len(test), size=min(REFERENCE_PLAYLISTS, len(test)), replace=False
    )
    start = time.perf_counter()
    for i in sample:
        seeds = [data.track_ids[t] for t in test.seeds.row(int(i)) if data.track_ids[t] in kv.key_to_index]
        if seeds:
            kv.most_similar(positive=seeds, topn=100)
    reference_s = time.perf_counter() - start
    batched_rate = len(test) / batched_s
    reference_rate = len(sample) / reference_s
    return {
        "test_playlists": len(test),
        "vocab": len(kv),
        "dim": kv.vector_size,
        "batched_s": round(batched_s, 2),
        "batched_playlists_per_s": round(batched_rate, 1),
        "reference_playlists": len(sample),
        "reference_playlists_per_s": round(reference_rate, 1),
        "speedup": round(batched_rate / reference_rate, 1),
        "seconds_for_20k": round(20_000 / batched_rate, 1),
    }


def main() -> None:
    if not FULL_CSV.exists():
        raise SystemExit(f"{FULL_CSV} is missing: run `python -m bench generate` first (it writes it once)")
    dbt_s = ensure_warehouse()
    python = str(REPO_ROOT / ".venv" / "bin" / "python") if (REPO_ROOT / ".venv").exists() else sys.executable
    env = {
        "DUCKDB_PATH": str(WAREHOUSE),
        "MODELS_DIR": str(MODELS_DIR),
        "RAW_CSV": str(FULL_CSV),  # the model card finds the generator's sidecar beside it
        "PYTHONPATH": str(REPO_ROOT),
    }
    figures = run_measured([python, "-m", "ml.cli", "train", "--seed", "42"], env=env, cwd=REPO_ROOT)
    run_dir = (MODELS_DIR / "latest").resolve()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    params = json.loads((run_dir / "params.json").read_text())
    timings = json.loads((run_dir / "timings.json").read_text())
    speed = eval_speed(run_dir)

    test = metrics["test"]
    base = metrics["baselines"]
    vs_recipe = test["hr@10"] / max(base["seed_recipe"]["hr@10"], 1e-12)
    vs_cooc = test["hr@10"] / max(base["item_cooc_knn"]["hr@10"], 1e-12)
    fit = params["fit"]
    from ml.evaluate import results_table

    ok = lambda cond: "met" if cond else "NOT met"  # noqa: E731
    lines = [
        f"`ml train` on the full preset ({FULL_CSV.name}, {WAREHOUSE.name}; run {run_dir.name})",
        "",
        f"- wall {figures.wall_s / 60:.1f} min (target <= {TARGET_WALL_S // 60} min: {ok(figures.wall_s <= TARGET_WALL_S)}), "
        f"peak RSS {figures.peak_rss_mb:,.0f} MB"
        + (f"; warehouse built first by dbt in {dbt_s / 60:.1f} min" if dbt_s else ""),
        "- phases (s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in timings.items() if k != "test_playlists_per_s"),
        f"- refit: {fit['seconds']:.0f} s, {fit['words_per_s_per_worker']:,.0f} words/s per worker "
        f"({fit['workers']} workers, {fit['raw_words']:,} words read), vocabulary {fit['vocab_size']:,}",
        f"- selected: {params['word2vec']}",
        f"- evaluation: {speed['test_playlists']:,} test playlists in {speed['batched_s']:.1f} s batched = "
        f"{speed['batched_playlists_per_s']:,.0f} playlists/s vs {speed['reference_playlists_per_s']:,.0f}/s per-playlist "
        f"gensim most_similar (x{speed['speedup']:.0f}); 20k playlists in {speed['seconds_for_20k']:.1f} s "
        f"(target < {TARGET_EVAL[1]:.0f} s: {ok(speed['seconds_for_20k'] < TARGET_EVAL[1])}); "
        f"vocabulary {speed['vocab']:,} x {speed['dim']}",
        f"- quality: test HR@10 {test['hr@10']:.4f} = x{vs_recipe:.2f} the seed recipe's {base['seed_recipe']['hr@10']:.4f} "
        f"(target >= 1.5: {ok(vs_recipe >= 1.5)}), x{vs_cooc:.2f} the item co-occurrence kNN's "
        f"{base['item_cooc_knn']['hr@10']:.4f} (target >= 1: {ok(vs_cooc >= 1.0)})",
        "",
        results_table(metrics),
    ]
    write_results(
        "train",
        {
            "wall_s": round(figures.wall_s, 1),
            "peak_rss_mb": round(figures.peak_rss_mb, 1),
            "dbt_build_s": dbt_s,
            "timings": timings,
            "refit": fit,
            "selected_params": params["word2vec"],
            "eval_speed": speed,
            "hr10_vs_seed_recipe": round(vs_recipe, 3),
            "hr10_vs_item_cooc_knn": round(vs_cooc, 3),
            "metrics": metrics,
            "targets": {
                "wall_s": TARGET_WALL_S,
                "eval_20k_s": TARGET_EVAL[1],
                "hr10_vs_seed_recipe": 1.5,
                "hr10_vs_item_cooc_knn": 1.0,
            },
        },
        lines,
    )
