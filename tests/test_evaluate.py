"""Metrics on hand-made rankings with known hits, and the rankers' protocol rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.baselines import popularity_order, rank_popularity
from ml.evaluate import (
    any_hit_at_k,
    catalogue_coverage,
    evaluate_ranking,
    hit_matrix,
    hit_rate_at_k,
    last_item_metrics,
    mrr,
    ndcg_at_k,
    oov_share,
)
from ml.knn import normalize_rows, top_k
from ml.rankers import VectorModel, last_item_queries, rank_vectors
from ml.shapes import EvalSet, Ragged, Ranking

# Two playlists: the first has held-out {3, 1}, found at ranks 2 and 4; the second {4}, not found.
RANKED = np.array([[5, 3, 9, 1, 7], [7, 8, 2, -1, -1]])
HOLDOUTS = Ragged.from_lists([[3, 1], [4]])


def test_hit_matrix_marks_exactly_the_held_out_tracks() -> None:
    hits = hit_matrix(RANKED, HOLDOUTS)
    assert hits.tolist() == [[False, True, False, True, False], [False] * 5]


def test_metrics_match_hand_computed_values() -> None:
    hits = hit_matrix(RANKED, HOLDOUTS)
    n = HOLDOUTS.lengths
    # hr@k = share of held-out tracks in the top k, averaged over playlists.
    assert hit_rate_at_k(hits, n, 2) == pytest.approx((1 / 2 + 0) / 2)
    assert hit_rate_at_k(hits, n, 5) == pytest.approx((2 / 2 + 0) / 2)
    assert any_hit_at_k(hits, 1) == 0.0
    assert any_hit_at_k(hits, 2) == 0.5
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at_k(hits, n, 5) == pytest.approx((dcg / idcg + 0) / 2)
    assert mrr(hits) == pytest.approx((1 / 2 + 0) / 2)
    # Distinct tracks in the top 3 lists: 5, 3, 9, 7, 8, 2 -> 6 of a catalogue of 20.
    assert catalogue_coverage(RANKED, 3, 20) == pytest.approx(6 / 20)
    # Held-out tracks 3, 1, 4; a method that does not know track 4 misses a third of them.
    known = np.ones(10, dtype=bool)
    known[4] = False
    assert oov_share(HOLDOUTS, known) == pytest.approx(1 / 3)


def test_ndcg_is_one_for_a_perfect_ranking_and_ideal_caps_at_k() -> None:
    ranked = np.array([[1, 2, 3]])
    hits = hit_matrix(ranked, Ragged.from_lists([[1, 2, 3, 4, 5]]))
    # Five held-out tracks but only three slots: the ideal DCG is that of three hits.
    assert ndcg_at_k(hits, np.array([5]), 3) == pytest.approx(1.0)


def test_last_item_protocol_is_the_classic_hit_rate() -> None:
    ranking = Ranking(RANKED, np.zeros(RANKED.shape, np.float32), np.zeros(2, bool))
    m = last_item_metrics(ranking, np.array([9, 4]))
    assert m["last_item_hr@10"] == 0.5


def test_evaluate_ranking_skips_nothing_and_counts_playlists() -> None:
    eval_set = EvalSet(
        session_ids=np.array(["a", "b"], dtype=object),
        seeds=Ragged.from_lists([[0], [6]]),
        holdouts=HOLDOUTS,
        last_query=np.array([0, 6]),
        last_target=np.array([1, 4]),
    )
    ranking = Ranking(RANKED, np.zeros(RANKED.shape, np.float32), np.zeros(2, bool))
    m = evaluate_ranking(ranking, eval_set, np.ones(10, bool), 10)
    assert m["n_playlists"] == 2
    assert m["hr@10"] == pytest.approx(0.5)
    assert m["mrr"] == pytest.approx(0.25)


def _toy_vectors() -> VectorModel:
    # Tracks 0..5 in two clusters (0, 1, 2 along x; 3, 4 along y); track 5 is not in the vocabulary.
    vectors = np.array([[1, 0.1], [1, 0], [0.9, 0.2], [0, 1], [0.1, 1]], dtype=np.float32)
    return VectorModel.from_vectors(vectors, track_of_row=np.arange(5), n_tracks=6)


def test_rank_vectors_excludes_seeds_and_follows_knn() -> None:
    model = _toy_vectors()
    popular = np.array([4, 3, 0, 1, 2, 5])
    seeds = Ragged.from_lists([[0, 1], [3, 5]])
    ranking = rank_vectors(model, seeds, popular, k=3)
    assert ranking.tracks[0, 0] == 2  # nearest to the x cluster, seeds 0 and 1 excluded
    assert not np.isin(ranking.tracks[0], [0, 1]).any()
    assert ranking.tracks[1, 0] == 4  # the unknown seed 5 is ignored, 3 is excluded
    # Same rows and scores as ml.knn directly (the serving rule).
    direct = top_k(normalize_rows(np.asarray(model.normed)), [[0, 1], [3]], 3)
    assert ranking.tracks.tolist() == direct.rows.tolist()
    np.testing.assert_allclose(ranking.scores, direct.scores, rtol=1e-6)
    assert not ranking.fallback.any()


def test_playlists_with_only_unknown_seeds_fall_back_to_popularity() -> None:
    model = _toy_vectors()
    popular = np.array([4, 3, 0, 1, 2, 5])
    ranking = rank_vectors(model, Ragged.from_lists([[5]]), popular, k=3)
    assert ranking.fallback.tolist() == [True]
    assert ranking.tracks[0].tolist() == [4, 3, 0]


def test_rank_popularity_skips_seeds_and_pads() -> None:
    order = popularity_order(np.array([5, 0, 9, 9, 1]))
    assert order.tolist() == [2, 3, 0, 4]  # ties by lower index, unseen tracks dropped
    r = rank_popularity(order, Ragged.from_lists([[3], []]), k=4)
    assert r.tracks.tolist() == [[2, 0, 4, -1], [2, 3, 0, 4]]


def test_unknown_last_item_queries_are_replaced_by_known_tracks() -> None:
    known = np.array([True, False, True, False])
    q = last_item_queries(np.array([0, 1, 3, 2]), known, seed=3)
    assert q[0] == 0 and q[3] == 2
    assert known[q].all()
    assert (q == last_item_queries(np.array([0, 1, 3, 2]), known, seed=3)).all()


def test_ragged_map_values_drops_unknowns() -> None:
    r = Ragged.from_lists([[0, 5, 2], [5], []])
    mapping = np.array([10, -1, 12, -1, -1, -1])
    m = r.map_values(mapping)
    assert [x.tolist() for x in m.rows()] == [[10, 12], [], []]


def test_knn_prefiltered_top_k_equals_a_full_sort_with_ties() -> None:
    from ml.knn import _select_top

    rng = np.random.default_rng(5)
    # Wide rows take the pre-filter path; coarse values force many ties; some -inf (excluded seeds).
    scores = (rng.integers(0, 50, size=(7, 20_000)) / 50).astype(np.float32)
    scores[:, rng.integers(0, 20_000, 300)] = -np.inf
    rows, vals = _select_top(scores, 100)
    for i in range(len(scores)):
        order = np.lexsort((np.arange(scores.shape[1]), -scores[i]))[:100]
        assert rows[i].tolist() == order.tolist()
        assert vals[i].tolist() == scores[i, order].tolist()
