"""A real track2vec model on a warehouse, for the per-seed evaluation cost benchmark.

`python -m bench.per_seed_model WAREHOUSE OUT_DIR` fits gensim word2vec with ml/grid.yml's defaults
(`ml train --no-search`'s trial 0: skip-gram d64, min_count 5, rare train tracks folded in by ml.fold)
on the warehouse's train split and writes, under OUT_DIR (reused when complete):

- query.npy / items.npy: ml.knn's tables for the output-layer rule (Q = the input vectors, I = the
  negative-sampling output weights, folded rows appended), float32 [n_rows, d];
- track_of_row.npy: the global track index of each row (ml.corpus order of dim_tracks);
- seeds_valid.npz / seeds_test.npz: the valid/test playlists' seeds as rows of the tables
  (indptr, values; unknown seeds dropped, as ml.rankers.rank_vectors does);
- meta.json: params, vocabulary sizes, fit and fold seconds, load average.

EPOCHS (env) overrides the number of epochs (the fit is the slow part); meta.json records it.
Heavy on the full preset: run it under `flock /tmp/music-recsys-heavy.lock`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

FILES = ("query.npy", "items.npy", "track_of_row.npy", "seeds_valid.npz", "seeds_test.npz", "meta.json")


def complete(out_dir: Path) -> bool:
    return all((Path(out_dir) / f).exists() for f in FILES)


def load(out_dir: Path) -> dict[str, object]:
    """The saved tables, seed rows (lists of row lists per split) and meta."""
    out_dir = Path(out_dir)
    seeds = {}
    for split in ("valid", "test"):
        z = np.load(out_dir / f"seeds_{split}.npz")
        indptr, values = z["indptr"], z["values"]
        seeds[split] = [values[a:b] for a, b in zip(indptr[:-1], indptr[1:], strict=True)]
    return {
        "query": np.load(out_dir / "query.npy"),
        "items": np.load(out_dir / "items.npy"),
        "track_of_row": np.load(out_dir / "track_of_row.npy"),
        "seeds": seeds,
        "meta": json.loads((out_dir / "meta.json").read_text()),
    }


def fit(warehouse: Path, out_dir: Path, seed: int = 42) -> None:
    from ml.baselines import popularity_counts
    from ml.corpus import load_playlists, write_corpus
    from ml.marts_parquet import open_marts
    from ml.rankers import VectorRanker, knn_tables
    from ml.search import load_grid
    from ml.word2vec import fit_word2vec, fold_fit

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    con = open_marts(warehouse)
    try:
        data = load_playlists(con)
    finally:
        con.close()
    load_s = time.perf_counter() - t0
    print(
        f"loaded {len(data.train):,} train playlists, {data.n_tracks:,} tracks in {load_s:.0f}s", flush=True
    )
    config = load_grid(None)
    params = config.defaults
    if os.environ.get("EPOCHS"):
        params = replace(params, epochs=int(os.environ["EPOCHS"]))
    corpus = write_corpus(data.train, data.track_ids, out_dir / "corpus", config.n_orders, seed)
    fitted = fit_word2vec(corpus, params, seed, config.workers, progress=True, desc="fit")
    print(f"fit {fitted.seconds:.0f}s, {len(fitted.vectors):,} rows", flush=True)
    t1 = time.perf_counter()
    folded = fold_fit(fitted, data.train, data.track_ids)
    fold_s = time.perf_counter() - t1
    print(f"fold {fold_s:.0f}s, +{folded.folded:,} rows", flush=True)
    track_of_row = VectorRanker.rows_of(folded.vectors, data.track_ids)
    counts = popularity_counts(data.train, data.n_tracks)[track_of_row]
    query, items = knn_tables(folded.vectors.vectors, folded.output, counts, params.scoring, 0.0)
    np.save(out_dir / "query.npy", query)
    np.save(out_dir / "items.npy", items)
    np.save(out_dir / "track_of_row.npy", track_of_row)
    row_of_track = np.full(data.n_tracks, -1, dtype=np.int64)
    row_of_track[track_of_row] = np.arange(len(track_of_row))
    n_seeds = {}
    for split, eval_set in (("valid", data.valid), ("test", data.test)):
        rows = eval_set.seeds.map_values(row_of_track).rows()
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        values = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows])
        np.savez(out_dir / f"seeds_{split}.npz", indptr=np.r_[0, np.cumsum(lengths)], values=values)
        n_seeds[split] = {"playlists": len(rows), "known_seeds": int(len(values))}
    meta = {
        "warehouse": str(warehouse),
        "seed": seed,
        "params": {k: getattr(params, k) for k in params.__dataclass_fields__},
        "trained_rows": len(fitted.vectors),
        "folded_rows": folded.folded,
        "rows": len(track_of_row),
        "fit_s": round(fitted.seconds, 1),
        "fold_s": round(fold_s, 1),
        "words_per_s_per_worker": round(fitted.words_per_s_per_worker),
        "eval": n_seeds,
        "load_average": [load_before[0], os.getloadavg()[0]],
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2, default=str))  # last: complete
    print(json.dumps(meta, default=str), flush=True)


if __name__ == "__main__":
    fit(Path(sys.argv[1]), Path(sys.argv[2]))
