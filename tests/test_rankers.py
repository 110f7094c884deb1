"""The Ranker protocol: every method fits, ranks, saves and loads the same way, and one evaluate()
scores any of them (real gensim KeyedVectors, real parquet and npz files)."""

from __future__ import annotations

import numpy as np
import pytest
from gensim.models import KeyedVectors

from ml.baselines import popularity_order, rank_popularity
from ml.evaluate import evaluate, evaluate_ranking, last_item_metrics
from ml.rankers import CoocRanker, PopularityRanker, Ranker, VectorRanker, last_item_queries
from ml.run_dir import RunDir, point_latest
from ml.shapes import EvalSet, Ragged, singletons

TRACK_IDS = np.array([f"{i:016x}" for i in range(8)])
TRAIN = Ragged.from_lists([[0, 1, 2], [0, 1], [2, 3], [4], [1, 5], [0, 1, 5]])
SEEDS = Ragged.from_lists([[0], [2, 3], [7], []])
EVAL = EvalSet(
    session_ids=np.array(["a", "b", "c", "d"]),
    seeds=SEEDS,
    holdouts=Ragged.from_lists([[1], [0, 1], [0], [1]]),
    last_query=np.array([0, 3, 7, 6]),
    last_target=np.array([1, 2, 0, 1]),
)


def _vectors() -> VectorRanker:
    rng = np.random.default_rng(3)
    kv = KeyedVectors(vector_size=4)
    known = [0, 1, 2, 3, 5]  # 4, 6, 7 are out of the vocabulary
    kv.add_vectors([str(TRACK_IDS[i]) for i in known], rng.normal(size=(len(known), 4)).astype(np.float32))
    popular = PopularityRanker().fit(TRAIN, TRACK_IDS).order
    return VectorRanker().set_vectors(kv, TRACK_IDS, popular)


def _fitted() -> list[Ranker]:
    return [PopularityRanker().fit(TRAIN, TRACK_IDS), CoocRanker("cosine").fit(TRAIN, TRACK_IDS), _vectors()]


@pytest.mark.parametrize("ranker", _fitted(), ids=lambda r: r.name)
def test_every_ranker_follows_the_protocol_and_round_trips_through_a_run_folder(ranker, tmp_path) -> None:
    assert isinstance(ranker, Ranker)
    before = ranker.rank(SEEDS, 3)  # k below the vocabulary size minus the seeds
    assert before.tracks.shape == (4, 3)
    for i in range(len(SEEDS)):  # seeds are never recommended
        assert not np.isin(before.tracks[i], SEEDS.row(i)).any()
    PopularityRanker().fit(TRAIN, TRACK_IDS).save(tmp_path)  # the fallback list of the run
    ranker.save(tmp_path)
    again = type(ranker).load(tmp_path, TRACK_IDS).rank(SEEDS, 3)
    assert again.tracks.tolist() == before.tracks.tolist()
    np.testing.assert_array_equal(again.scores, before.scores)
    assert again.fallback.tolist() == before.fallback.tolist()


def test_evaluate_scores_a_ranker_like_the_hand_written_protocol() -> None:
    pop = PopularityRanker().fit(TRAIN, TRACK_IDS)
    order = popularity_order(pop.counts)
    metrics, ranking = evaluate(pop, EVAL, catalogue_size=6, last_item_seed=9)
    by_hand = evaluate_ranking(rank_popularity(order, SEEDS), EVAL, pop.counts > 0, 6)
    queries = last_item_queries(EVAL.last_query, pop.counts > 0, 9)
    by_hand.update(last_item_metrics(rank_popularity(order, singletons(queries)), EVAL.last_target))
    assert metrics == by_hand
    # Popularity order: 1 (4 playlists), 0 (3), 2, 5 (2 each)...; playlist "a" (seed 0) finds 1 first.
    assert ranking.tracks[0, :3].tolist() == [1, 2, 5] and metrics["n_playlists"] == 4
    assert ranking.fallback.all()


def test_vector_ranker_falls_back_to_popularity_without_a_known_seed() -> None:
    ranker = _vectors()
    r = ranker.rank(Ragged.from_lists([[7], [0]]), 3)
    assert r.fallback.tolist() == [True, False]
    assert r.tracks[0].tolist() == ranker.popular[:3].tolist()
    assert ranker.describe() == {}
    assert CoocRanker("none", neighbors=50).fit(TRAIN, TRACK_IDS).describe() == {
        "normalise": "none",
        "neighbors": 50,
    }


def test_run_dir_resolves_latest_in_one_place(tmp_path) -> None:
    run = tmp_path / "20260101T000000Z-abc"
    run.mkdir()
    point_latest(tmp_path, run)
    assert RunDir.latest(tmp_path).path == run.resolve()
    assert RunDir.latest(tmp_path).tarball == run.resolve() / "model.tar.gz"
    with pytest.raises(FileNotFoundError, match="run `ml train` first"):
        RunDir.latest(tmp_path).load_popular_ids(3)
