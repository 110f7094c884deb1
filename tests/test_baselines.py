"""Baselines: popularity counts (checked against SQL on the tiny warehouse) and item co-occurrence kNN."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.baselines import (
    fit_cooc,
    fit_cooc_variants,
    playlist_matrix,
    popularity_counts,
    popularity_order,
    rank_cooc,
)
from ml.shapes import Ragged

TRAIN = Ragged.from_lists([[0, 1, 2], [0, 1], [2, 3], [4]])


def test_popularity_counts_playlists_per_track() -> None:
    assert popularity_counts(TRAIN, 6).tolist() == [2, 2, 2, 1, 1, 0]


def test_cooc_raw_counts_rank_the_most_co_occurring_first() -> None:
    model = fit_cooc(TRAIN, 6, normalise="none")
    c = model.item_item.toarray()
    assert c[0, 1] == 2 and c[0, 2] == 1 and c[2, 3] == 1 and c[0, 0] == 0
    popular = popularity_order(popularity_counts(TRAIN, 6))
    r = rank_cooc(model, Ragged.from_lists([[0], [5]]), popular, k=4)
    # Seed 0: track 1 (2 shared playlists), then 2 (1), then popular fill without the seed.
    assert r.tracks[0].tolist() == [1, 2, 3, 4]
    assert r.scores[0, :2].tolist() == [2.0, 1.0]
    assert not r.fallback[0]
    # Track 5 was never trained on: popularity answers.
    assert r.fallback[1] and r.tracks[1].tolist() == [0, 1, 2, 3]


def test_cooc_cosine_normalises_by_track_counts() -> None:
    c = fit_cooc(TRAIN, 6, normalise="cosine").item_item.toarray()
    assert c[0, 1] == pytest.approx(2 / np.sqrt(2 * 2))
    assert c[2, 3] == pytest.approx(1 / np.sqrt(2 * 1))


def test_cooc_scores_sum_over_seeds_and_exclude_them() -> None:
    model = fit_cooc(TRAIN, 6, normalise="none")
    r = rank_cooc(model, Ragged.from_lists([[0, 3]]), np.array([0, 1, 2, 3, 4]), k=2)
    # 2 co-occurs with 0 once and with 3 once -> 2; 1 co-occurs with 0 twice -> 2; tie by lower id.
    assert r.tracks[0].tolist() == [1, 2]


def test_cooc_prunes_to_max_neighbors() -> None:
    model = fit_cooc(Ragged.from_lists([[0, 1, 2, 3, 4]]), 5, normalise="none", max_neighbors=2)
    assert (model.item_item.getnnz(axis=1) == 2).all()


def test_long_playlists_are_chunked_not_truncated_in_the_item_matrix() -> None:
    x = playlist_matrix(Ragged.from_lists([list(range(7)), [1, 2]]), 8, max_len=3, seed=1)
    assert x.shape[0] == 3 + 1  # 7 tracks -> chunks of 3, 3, 1
    assert x.sum() == 9
    assert sorted(np.flatnonzero(np.asarray(x[:3].sum(axis=0)).ravel()).tolist()) == list(range(7))


def test_popularity_artefact_matches_a_sql_count(tiny_model: Path, tiny_warehouse: Path) -> None:
    popularity = pd.read_parquet(tiny_model / "popularity.parquet")
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    try:
        sql = con.execute(
            "select track_id, count(*) as n from ml_playlist_splits where role = 'train' "
            "group by track_id order by n desc, track_id"
        ).df()
    finally:
        con.close()
    assert len(popularity) == len(sql) > 0
    assert popularity["track_id"].tolist() == sql["track_id"].tolist()
    assert popularity["count"].tolist() == sql["n"].tolist()


def test_cooc_restricted_to_the_query_rows_ranks_exactly_as_the_full_model() -> None:
    rng = np.random.default_rng(3)
    train = Ragged.from_lists(
        [rng.choice(60, size=int(rng.integers(2, 30)), replace=False) for _ in range(80)]
    )
    queries = Ragged.from_lists([rng.choice(60, size=3, replace=False) for _ in range(20)])
    popular = popularity_order(popularity_counts(train, 60))
    rows = np.unique(queries.values)
    for normalise in ("none", "cosine"):
        full = fit_cooc(train, 60, normalise=normalise, max_neighbors=8, max_len=10, seed=1)
        part = fit_cooc_variants(train, 60, (normalise,), 8, 10, seed=1, rows=rows)[normalise]
        # Only the asked rows are computed, and each is the full model's row.
        assert np.flatnonzero(part.item_item.getnnz(axis=1)).tolist() == [
            r for r in rows.tolist() if full.item_item[r].nnz
        ]
        assert abs(full.item_item[rows] - part.item_item[rows]).sum() == 0
        a, b = rank_cooc(full, queries, popular, k=10), rank_cooc(part, queries, popular, k=10)
        assert np.array_equal(a.tracks, b.tracks) and np.array_equal(a.scores, b.scores)
