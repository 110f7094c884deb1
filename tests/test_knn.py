"""ml.knn: the one scoring rule. Q = I = the normalized vectors is today's cosine rule, bit for bit;
a query table apart from the item matrix scores mean(Q[seeds]) . I[row]."""

from __future__ import annotations

import numpy as np

from ml.knn import KnnTables, _select_top, normalize_rows, top_k


def cosine_before_the_generalisation(normed: np.ndarray, seed_rows: list[list[int]], k: int):
    """ml.knn.top_k as it was before KnnTables (the rule every saved run was scored with)."""
    queries = np.zeros((len(seed_rows), normed.shape[1]), dtype=np.float32)
    for i, rows in enumerate(seed_rows):
        if rows:
            queries[i] = normed[np.asarray(rows, dtype=np.int64)].mean(axis=0)
    scores = queries @ normed.T
    for i, rows in enumerate(seed_rows):
        if rows:
            scores[i, np.asarray(rows, dtype=np.int64)] = -np.inf
    return _select_top(scores, min(k, normed.shape[0]))


def playlists(rng: np.random.Generator, n_items: int, n: int) -> list[list[int]]:
    return [
        sorted(rng.choice(n_items, size=int(rng.integers(1, 40)), replace=False).tolist()) for _ in range(n)
    ]


def test_cosine_is_todays_rule_bit_for_bit():
    rng = np.random.default_rng(0)
    normed = normalize_rows(rng.normal(size=(5000, 64)))
    seeds = playlists(rng, 5000, 300) + [[]]
    rows, scores = cosine_before_the_generalisation(normed, seeds, 25)
    # One batch, as the old code's one product (BLAS may round another batch size differently).
    for got in (top_k(normed, seeds, 25), KnnTables(items_t=normed.T).top_k(seeds, 25)):
        assert np.array_equal(got.rows, rows) and np.array_equal(got.scores, scores)
    assert np.array_equal(KnnTables.cosine(normed).top_k(seeds, 25).rows, rows)
    # Served layout ([d, n] C-contiguous): the same ids; scores within float rounding.
    served = KnnTables(items_t=np.ascontiguousarray(normed.T)).top_k(seeds, 25)
    assert np.abs(served.scores[:-1] - scores[:-1]).max() < 1e-6
    assert (served.rows == rows).all(axis=1).mean() > 0.99


def test_a_query_table_apart_from_the_item_matrix():
    """query = mean of the seeds' Q rows; score = query . I[row]; seeds out; ties to the lower row."""
    rng = np.random.default_rng(1)
    n, d = 800, 16
    q = rng.normal(size=(n, d)).astype(np.float32)
    items = rng.normal(size=(n, d)).astype(np.float32)
    items[700] = items[100]  # an exact tie: row 100 must come first
    seeds = playlists(rng, n, 100)  # distinct rows: callers pass a playlist as a set
    got = top_k(q, seeds, 10, items=items)
    for i, rows in enumerate(seeds):
        query = q[sorted(set(rows))].astype(np.float64).mean(axis=0)
        scores = items.astype(np.float64) @ query
        scores[rows] = -np.inf
        order = np.lexsort((np.arange(n), -np.round(scores, 5)))[:10]
        assert set(got.rows[i]) == set(order) or np.allclose(
            np.sort(scores[got.rows[i]]), np.sort(scores[order]), atol=1e-5
        )
        assert not set(got.rows[i]) & set(rows)
        np.testing.assert_allclose(got.scores[i], scores[got.rows[i]], atol=1e-5)
    tied = top_k(q, [[0]], n - 1, items=items).rows[0].tolist()
    assert tied.index(100) < tied.index(700)
    # Q = I passed as two arrays is the shared case.
    same = top_k(items, seeds, 10, items=items)
    shared = top_k(items, seeds, 10)
    assert np.array_equal(same.rows, shared.rows)
