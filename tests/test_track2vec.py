"""Issue 12's track2vec: the output-layer rule and the popularity prior as ml.knn tables, their
save/load round trip, the taste_community baseline, and the search (successive halving with TPE
proposals: defaults first, seeded, resumable). Real gensim, real Optuna journal files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ml.evaluate import evaluate
from ml.fold import fold_rare
from ml.knn import normalize_rows, top_k
from ml.rankers import PopularityRanker, VectorRanker, knn_tables, rank_vectors
from ml.search import Scored, W2VParams, load_grid, run_search
from ml.shapes import EvalSet, Ragged
from ml.taste import TasteCommunityRanker
from ml.word2vec import Track2Vec

TINY_GRID = Path(__file__).parents[1] / "ml" / "grid_tiny.yml"


def _planted(seed: int = 0, n_comm: int = 8, per_comm: int = 40, n_playlists: int = 600):
    """Playlists drawn from latent communities, Zipf popularity inside each: (train, eval set, ids,
    community of each track). Held out: 2 random tracks of each eval playlist."""
    rng = np.random.default_rng(seed)
    n = n_comm * per_comm
    zipf = 1.0 / np.arange(1, per_comm + 1)
    zipf /= zipf.sum()
    rows = []
    for _ in range(n_playlists):
        c = int(rng.integers(n_comm))
        size = int(rng.integers(6, 14))
        rows.append(c * per_comm + rng.choice(per_comm, size=size, replace=False, p=zipf))
    train = Ragged.from_lists(rows[:500])
    held = rows[500:]
    eval_set = EvalSet(
        session_ids=np.array([str(i) for i in range(len(held))]),
        seeds=Ragged.from_lists([r[2:] for r in held]),
        holdouts=Ragged.from_lists([r[:2] for r in held]),
        last_query=np.array([r[-2] for r in held]),
        last_target=np.array([r[-1] for r in held]),
    )
    ids = np.array([f"{i:016x}" for i in range(n)])
    return train, eval_set, ids, np.repeat(np.arange(n_comm), per_comm)


def _track2vec(tmp_path: Path, **params) -> Track2Vec:
    base = W2VParams(
        sg=0, vector_size=16, window=20, negative=5, ns_exponent=0.5, sample=0.0, epochs=20, min_count=1,
        shrink_windows=False, scoring="output", prior=0.0,
    )  # fmt: skip
    return Track2Vec(replace(base, **params), seed=3, workers=1, cache_dir=tmp_path)


def test_output_layer_ranker_beats_popularity_on_planted_tastes(tmp_path: Path) -> None:
    train, eval_set, ids, _ = _planted()
    popularity = PopularityRanker().fit(train, ids)
    model = _track2vec(tmp_path).fit(train, ids)
    pop = evaluate(popularity, eval_set, len(ids))[0]
    ours = evaluate(model, eval_set, len(ids))[0]
    assert ours["hr@10"] > 1.5 * pop["hr@10"]
    assert ours["oov_share"] == pop["oov_share"]  # min_count 1: every train track is recommendable


def test_tables_follow_the_rule_and_the_prior_is_one_more_column() -> None:
    rng = np.random.default_rng(0)
    w, o = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    counts = np.array([10, 5, 1, 1, 2])
    q, i = knn_tables(w, o, counts, "output", 0.0)
    np.testing.assert_array_equal(q, w) and np.testing.assert_array_equal(i, o)
    q, i = knn_tables(w, o, counts, "output", 0.5)
    assert q.shape == i.shape == (5, 4) and (q[:, 3] == 1).all()
    np.testing.assert_allclose(i[:, 3], 0.5 * np.log(counts), rtol=1e-6)
    # score = mean query . item + prior * log(count): the augmented product is exactly that
    got = top_k(q, [[0, 1]], k=3, items=i)
    expected = w[[0, 1]].mean(axis=0) @ o.T + 0.5 * np.log(counts)
    expected[[0, 1]] = -np.inf
    assert got.rows[0].tolist() == np.argsort(-expected, kind="stable")[:3].tolist()
    q, i = knn_tables(w, None, counts, "cosine", 0.0)
    np.testing.assert_allclose(q, normalize_rows(w)) and np.testing.assert_allclose(i, q)


def test_output_tables_round_trip_through_the_run_folder(tmp_path: Path) -> None:
    train, eval_set, ids, _ = _planted(seed=1)
    model = _track2vec(tmp_path / "cache", prior=0.5).fit(train, ids)
    run = tmp_path / "run"
    run.mkdir()
    model.save(run)
    PopularityRanker().fit(train, ids).save(run)
    assert (run / "knn_query.npy").exists() and (run / "knn_items.npy").exists()
    loaded = VectorRanker.load(run, ids)
    assert loaded.scoring == {"scoring": "output", "prior": 0.5, "per_seed": 0}
    a, b = model.rank(eval_set.seeds, 20), loaded.rank(eval_set.seeds, 20)
    np.testing.assert_array_equal(a.tracks, b.tracks)
    np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("scoring", ["output", "cosine"])
def test_per_seed_rule_round_trips_through_the_run_folder(tmp_path: Path, scoring: str) -> None:
    """A fit scored by per-seed aggregation (ml.knn, M = 5) saves M in knn_scoring.json (also for
    cosine, whose tables are vectors.kv) and reloads ranking alike; it beats popularity."""
    train, eval_set, ids, _ = _planted(seed=1)
    model = _track2vec(tmp_path / "cache", scoring=scoring, per_seed=5).fit(train, ids)
    run = tmp_path / "run"
    run.mkdir()
    model.save(run)
    PopularityRanker().fit(train, ids).save(run)
    loaded = VectorRanker.load(run, ids)
    assert loaded.scoring == {"scoring": scoring, "prior": 0.0, "per_seed": 5}
    assert loaded.model.per_seed == 5
    a, b = model.rank(eval_set.seeds, 20), loaded.rank(eval_set.seeds, 20)
    np.testing.assert_array_equal(a.tracks, b.tracks)
    np.testing.assert_array_equal(a.scores, b.scores)
    mean = model.model.with_per_seed(0)
    assert not np.array_equal(rank_vectors(mean, eval_set.seeds, model.popular, 20).tracks, a.tracks)
    pop = evaluate(PopularityRanker().fit(train, ids), eval_set, len(ids))[0]
    assert evaluate(loaded, eval_set, len(ids))[0]["hr@10"] > pop["hr@10"]


def test_taste_community_recommends_the_seeds_majority_community() -> None:
    train, eval_set, ids, community = _planted(seed=2)
    ranker = TasteCommunityRanker(community).fit(train, ids)
    ranking = ranker.rank(eval_set.seeds, 10)
    for i in range(len(eval_set)):
        seeds = eval_set.seeds.row(i)
        majority = np.bincount(community[seeds]).argmax()
        assert (community[ranking.tracks[i]] == majority).all()
        assert not np.isin(ranking.tracks[i], seeds).any()
    pop = evaluate(PopularityRanker().fit(train, ids), eval_set, len(ids))[0]
    assert evaluate(ranker, eval_set, len(ids))[0]["hr@10"] > pop["hr@10"]


def _scorer(calls: list):
    def fit_and_score(params: W2VParams, rung: int) -> Scored:
        calls.append((params.key(), rung))
        value = params.window / 100 + params.epochs / 1000 + rung / 10  # a fixed landscape
        return Scored({"hr@10": value}, "output", 0.0, {"output+0": value}, 0.0, 0.0, 1)

    return fit_and_score


def test_search_starts_with_the_defaults_halves_and_resumes(tmp_path: Path) -> None:
    config = load_grid(TINY_GRID)
    config = replace(config, search=replace(config.search, n_trials=4, reduction_factor=2))
    calls: list = []
    out = run_search(config, _scorer(calls), tmp_path / "s.journal", seed=1, progress=False)
    rung0 = [c for c in calls if c[1] == 0]
    assert rung0[0][0] == config.defaults.key()  # the defaults are trial 0
    assert len(rung0) == 4 and len({c[0] for c in rung0}) == 4
    assert len([c for c in calls if c[1] == 1]) == 2  # the best half go on to rung 1
    assert out.best.rung == 1 and out.best.value == max(r.value for r in out.results)
    again: list = []
    resumed = run_search(config, _scorer(again), tmp_path / "s.journal", seed=1, progress=False)
    assert again == []  # every fit is in the journal: nothing is fitted twice
    assert [r.row() for r in resumed.results] == [r.row() for r in out.results]
    other: list = []
    run_search(config, _scorer(other), tmp_path / "t.journal", seed=1, progress=False)
    assert other == calls  # seeded: a fresh study with the same seed proposes the same trials


def test_fold_rare_is_the_shared_playlist_weighted_mean_of_vocabulary_rows() -> None:
    # tracks 0..3 in the vocabulary (rows 0..3 are tracks 3, 1, 0, 2); 4 and 5 rare; 6 never in train
    train = Ragged.from_lists([[0, 1, 4], [0, 4, 4], [2, 3, 5], [5]])
    vocab_tracks = np.array([3, 1, 0, 2])
    rng = np.random.default_rng(0)
    w, o = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    folded = fold_rare(train, 7, vocab_tracks, w, o)
    assert folded.tracks.tolist() == [4, 5]
    row = {t: r for r, t in enumerate(vocab_tracks)}
    # track 4 shares two playlists with track 0 (a repeat counts once) and one with track 1
    expected4 = (2 * w[row[0]] + w[row[1]]) / 3
    expected5 = (w[row[2]] + w[row[3]]) / 2  # its lone playlist [5] adds nothing
    np.testing.assert_allclose(folded.vectors, [expected4, expected5], rtol=1e-6)
    np.testing.assert_allclose(folded.output[0], (2 * o[row[0]] + o[row[1]]) / 3, rtol=1e-6)
    alone = fold_rare(Ragged.from_lists([[0, 1], [4]]), 7, vocab_tracks, w, o)
    assert alone.tracks.tolist() == []  # no vocabulary mate: stays out of vocabulary


def test_folding_covers_the_rare_tracks_and_round_trips(tmp_path: Path) -> None:
    train, eval_set, ids, _ = _planted(seed=4)
    counts = np.bincount(train.values, minlength=len(ids))
    plain = _track2vec(tmp_path / "a", min_count=8).fit(train, ids)
    folded = _track2vec(tmp_path / "b", min_count=8, fold_rare=True).fit(train, ids)
    assert folded.result is not None and folded.result.folded == int(((counts > 0) & (counts < 8)).sum())
    assert (folded.known == (counts > 0)).all() and not plain.known[(counts > 0) & (counts < 8)].any()
    m_plain, m_fold = (evaluate(r, eval_set, len(ids))[0] for r in (plain, folded))
    pop = evaluate(PopularityRanker().fit(train, ids), eval_set, len(ids))[0]
    assert m_fold["oov_share"] == pop["oov_share"] < m_plain["oov_share"]
    # trained rows are untouched: the folded model ranks the same tracks' rows by the same rule
    trained = plain.result.vectors.index_to_key
    np.testing.assert_array_equal(folded.result.vectors.vectors[: len(trained)], plain.result.vectors.vectors)
    run = tmp_path / "run"
    run.mkdir()
    folded.save(run)
    PopularityRanker().fit(train, ids).save(run)
    loaded = VectorRanker.load(run, ids)
    np.testing.assert_array_equal(loaded.known, folded.known)
    np.testing.assert_array_equal(
        loaded.rank(eval_set.seeds, 20).tracks, folded.rank(eval_set.seeds, 20).tracks
    )


def test_search_ranks_a_fit_missing_the_coverage_target_below_every_covering_one(tmp_path: Path) -> None:
    config = load_grid(TINY_GRID)
    config = replace(config, search=replace(config.search, n_trials=4, reduction_factor=2))

    def fit_and_score(params: W2VParams, rung: int) -> Scored:
        value = params.window / 100 + params.epochs / 1000 + rung / 10
        covered = params.window == 5  # the larger window has the higher metric but misses coverage
        return Scored({"hr@10": value}, "output", 0.0, {"output+0": value}, 0.0, 0.0, 1, covered)

    out = run_search(config, fit_and_score, tmp_path / "c.journal", seed=1, progress=False)
    assert {r.params.window for r in out.results} == {5, 10}  # both were drawn
    assert out.best.params.window == 5 and out.best.last.covered
    uncovered = [r for r in out.results if not r.runs[0].covered]
    assert max(r.scores[0] for r in uncovered) > out.best.scores[0]  # higher at rung 0, not promoted
    assert all(r.rung == 0 for r in uncovered) and out.best.rung == 1
    assert out.best.last.objective("hr@10") == out.best.value
    worst = min(out.results, key=lambda r: r.last.objective("hr@10"))
    assert not worst.last.covered and worst.last.objective("hr@10") == worst.value - 1.0


def test_search_does_not_fit_a_draw_whose_refit_costs_more_than_the_cap(tmp_path: Path) -> None:
    config = load_grid(TINY_GRID)
    tokens = 1000
    cap = 200 * tokens * 16  # d = 16 on the tiny grid
    config = replace(
        config, search=replace(config.search, n_trials=3, reduction_factor=2, max_refit_cost=cap)
    )
    calls: list = []

    def project(params: W2VParams) -> float:
        return params.fit_cost(tokens)

    def fit_and_score(params: W2VParams, rung: int) -> Scored:
        calls.append(params)
        value = params.window / 100 + (0.5 if params.sg else 0.0) + rung / 10  # costly draws score higher
        cost = project(params)
        return Scored({"hr@10": value}, "output", 0.0, {}, 0.0, 0.0, 1, True, 0, cost, cost <= cap)

    # per token and epoch: CBOW window 5 costs 4*5 + 2*6 = 32 (x 3 or 5 epochs: 96, 160 <= 200), the
    # tiny defaults (CBOW, window 10, 5 epochs) 5 * 52 = 260 and every skip-gram draw >= 3 * 120: over
    assert project(config.defaults) > cap
    out = run_search(config, fit_and_score, tmp_path / "b.journal", seed=1, progress=False, project=project)
    assert calls and all(project(p) <= cap for p in calls)  # nothing over the cap was fitted
    assert config.defaults not in calls and out.skipped >= 1
    assert all(r.last.within_budget and r.last.refit_cost <= cap for r in out.results)
    first = list(calls)
    rerun = run_search(config, fit_and_score, tmp_path / "c.journal", seed=1, progress=False, project=project)
    assert calls[len(first) :] == first  # a fresh study draws and skips the same: no clock in the cap
    assert [r.params for r in rerun.results] == [r.params for r in out.results]
    # a fit over the cap ranks below every fit within it, whatever its metric
    over = Scored({"hr@10": 0.9}, "output", 0.0, {}, 0.0, 0.0, 1, True, 0, 2.0 * cap, False)
    assert over.objective("hr@10") == pytest.approx(0.9 - 2.0)
    sg = W2VParams(sg=1, window=5, negative=20, epochs=1, vector_size=64, shrink_windows=False)
    assert sg.fit_cost(10) == 10 * 4 * 5 * 21 * 64
    assert replace(sg, sg=0, epochs=2, vector_size=128).fit_cost(10) == 2 * 10 * (4 * 5 + 2 * 21) * 128
