"""Training end to end on the tiny warehouse, the corpus rules, the grid, and `ml recommend`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.config import Paths
from ml.corpus import MAX_SENTENCE, load_playlists, read_corpus, write_corpus
from ml.search import PARAM_AXES, W2VParams, load_grid
from ml.shapes import Ragged
from ml.word2vec import fit_word2vec

METRIC_KEYS = {"hr@10", "hr@100", "ndcg@10", "mrr", "coverage@10", "oov_share"}


def _ids(n: int) -> np.ndarray:
    return np.array([f"{i:016x}" for i in range(n)], dtype=object)


# --- end to end on the tiny preset ---------------------------------------------------------------


def test_training_writes_every_artefact(tiny_model: Path, tiny_warehouse: Path) -> None:
    latest = tiny_model.parent / "latest"
    assert latest.is_symlink() and latest.resolve() == tiny_model.resolve()
    for name in (
        "vectors.kv",
        "vectors.kv.vectors.npy",
        "popularity.parquet",
        "name_tokens.parquet",
        "params.json",
        "metrics.json",
        "fingerprint.json",
        "search_results.csv",
        "offline_test_predictions.parquet",
        "model_card.md",
        "embedding_keywords.png",
        "embedding_taste.png",
    ):
        assert (tiny_model / name).exists(), name
    metrics = json.loads((tiny_model / "metrics.json").read_text())
    assert set(metrics) >= {
        "valid",
        "test",
        "baselines",
        "baselines_valid",
        "selection",
        "name_only",
        "name_and_seeds",
    }
    assert set(metrics["baselines"]) == {"popularity", "item_cooc_knn", "taste_community", "seed_recipe"}
    assert set(metrics["baselines_valid"]) == set(metrics["baselines"])
    assert metrics["selection"].startswith(("selection: track2vec beats", "WARNING: no configuration"))
    assert len(metrics["item_cooc_knn_selection"]) == 4  # normalisation x neighbours, scored on valid
    for block in (metrics["valid"], metrics["test"], *metrics["baselines"].values()):
        assert set(block) >= METRIC_KEYS
        assert all(0.0 <= block[k] <= 1.0 for k in METRIC_KEYS)
        assert block["hr@10"] <= block["hr@100"]
    assert "last_item_hr@100" in metrics["baselines"]["seed_recipe"]
    search = pd.read_csv(tiny_model / "search_results.csv")
    assert len(search) == 3 and set(PARAM_AXES) <= set(search.columns)
    assert {"rung", "rung0", "scoring", "prior", "per_seed"} <= set(search.columns)
    # Every fit is scored under the mean query and per-seed aggregation (ml.knn), picked on valid.
    assert {"rung0 output+0", "rung0 output+0/seed5", "rung0 cosine+0/seed5"} <= set(search.columns)
    assert set(search["per_seed"]) <= {0, 5}
    card = (tiny_model / "model_card.md").read_text()
    assert "| track2vec (selected), test |" in card and "embedding_taste.png" in card
    assert metrics["selection"] in card and "search.png" in card and "## Ablation" in card
    assert (tiny_model.parent / "mlruns" / "mlflow.db").exists()  # MLflow's local store
    fingerprint = json.loads((tiny_model / "fingerprint.json").read_text())
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    try:
        n_splits = con.execute("select count(*) from ml_playlist_splits").fetchone()[0]
    finally:
        con.close()
    assert fingerprint["row_counts"]["ml_playlist_splits"] == n_splits
    assert fingerprint["dbt_invocation_id"]  # from the run_results.json of the fixture's build


def test_vectors_load_with_mmap_and_cover_train_tracks_only(tiny_model: Path, tiny_warehouse: Path) -> None:
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load(str(tiny_model / "vectors.kv"), mmap="r")
    assert isinstance(kv.vectors, np.memmap)
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    try:
        train_tracks = {
            r[0]
            for r in con.execute("select track_id from ml_playlist_splits where role = 'train'").fetchall()
        }
    finally:
        con.close()
    assert set(kv.index_to_key) <= train_tracks


def test_offline_predictions_reproduce_from_the_saved_artefacts(tiny_model: Path) -> None:
    """What the export/serving parity relies on: the run's ml.knn tables (knn_query/knn_items.npy,
    or the normalized vectors.kv for cosine) + ml.knn give exactly the saved top-10."""
    from gensim.models import KeyedVectors

    from ml.run_dir import RunDir

    kv = KeyedVectors.load(str(tiny_model / "vectors.kv"), mmap="r")
    _, tables = RunDir(tiny_model).load_knn_tables()
    popular = pd.read_parquet(tiny_model / "popularity.parquet")["track_id"].tolist()
    pred = pd.read_parquet(tiny_model / "offline_test_predictions.parquet")
    assert len(pred) > 0
    for row in pred.itertuples():
        known = [kv.key_to_index[t] for t in row.seed_track_ids if t in kv.key_to_index]
        assert row.n_unknown == len(row.seed_track_ids) - len(known)
        assert row.is_fallback == (not known)
        if known:
            result = tables.top_k([known], 10)
            assert list(row.top10_track_ids) == [kv.index_to_key[int(r)] for r in result.rows[0]]
            np.testing.assert_allclose(row.top10_scores, result.scores[0], rtol=1e-5, atol=1e-6)
        else:
            expected = [t for t in popular if t not in set(row.seed_track_ids)][:10]
            assert list(row.top10_track_ids) == expected


def test_recommend_by_name_prints_suggestions_and_rejects_unknown_names(
    tiny_model: Path, tiny_warehouse: Path, tiny_csv: Path
) -> None:
    from ml.recommend import UnknownTrackError, recommend_by_name

    paths = Paths(
        raw_csv=tiny_csv, duckdb_path=tiny_warehouse, models_dir=tiny_model.parent, reports_dir=tiny_model
    )
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    try:
        artist, title = con.execute(
            "select artist_name, track_name from dim_tracks where artist_name <> '' "
            "order by n_playlists desc, track_id limit 1"
        ).fetchone()
    finally:
        con.close()
    out = recommend_by_name([f"  {artist.upper()} -  {title} "], k=5, paths=paths)
    lines = out.splitlines()
    assert len([line for line in lines if line[:3].strip().isdigit()]) == 5
    assert f"{artist} - {title}" not in "\n".join(lines[1:])  # the query track is never suggested
    with pytest.raises(UnknownTrackError, match="unknown track"):
        recommend_by_name(["Nobody - No Such Song 123"], k=5, paths=paths)


def test_recommend_answers_as_the_endpoint(tiny_export) -> None:
    """`ml recommend` and `ml serve` (the exported model) give the same prediction, names included."""
    import json

    from ml.endpoint_contract import parse_body
    from ml.recommend import recommend
    from ml.serve import load_model

    con = duckdb.connect(str(tiny_export.paths.duckdb_path), read_only=True)
    try:
        named = con.execute(
            "select artist_name, track_name from dim_tracks order by n_playlists desc, track_id limit 3"
        ).fetchall()
    finally:
        con.close()
    served = load_model(tiny_export.export.tarball)
    body = {"instances": [{"names": [{"artist": a, "title": t} for a, t in named], "k": 10}]}
    [instance] = parse_body(json.dumps(body).encode())
    assert recommend(list(instance.tracks), 10, tiny_export.paths) == served.predict([instance])[0]
    assert (
        recommend(["not-a-track"], 4, tiny_export.paths)
        == served.predict(parse_body(b'{"instances": [{"tracks": ["not-a-track"], "k": 4}]}'))[0]
    )


# --- the corpus ----------------------------------------------------------------------------------


def test_no_held_out_track_reaches_the_corpus_through_its_playlist(
    tiny_warehouse: Path, tmp_path: Path
) -> None:
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    try:
        data = load_playlists(con)
        train_sets = con.execute(
            "select session_id, list(track_id order by track_id) from ml_playlist_splits "
            "where role = 'train' group by session_id"
        ).fetchall()
        eval_sessions = {
            r[0]
            for r in con.execute(
                "select distinct session_id from ml_playlist_splits where split <> 'train'"
            ).fetchall()
        }
        mixed = con.execute(
            "select count(*) from (select session_id from ml_playlist_splits "
            "group by session_id having count(distinct split) > 1)"
        ).fetchone()[0]
    finally:
        con.close()
    assert mixed == 0  # a session lives in exactly one split
    assert not eval_sessions & set(data.train_session_ids)
    corpus = write_corpus(data.train, data.track_ids, tmp_path, n_orders=2, seed=1)
    expected = Counter(tuple(ids) for _, ids in train_sets)
    for path in corpus.files:
        # Each corpus file is exactly the train sessions (as sets), nothing from valid/test.
        assert Counter(tuple(sorted(line)) for line in read_corpus(path)) == expected


def test_a_long_playlist_is_split_into_sentences_not_truncated(tmp_path: Path) -> None:
    long = np.arange(25_000)
    playlists = Ragged.from_lists([long, [1, 2, 3]])
    corpus = write_corpus(playlists, _ids(25_000), tmp_path, n_orders=1, seed=0)
    lines = read_corpus(corpus.files[0])
    assert sorted(len(line) for line in lines) == [3, 5_000, MAX_SENTENCE, MAX_SENTENCE]
    assert sorted(t for line in lines if len(line) > 3 for t in line) == sorted(_ids(25_000).tolist())
    assert corpus.n_tokens == 25_003 and corpus.n_sentences == 4
    # gensim trains on every token of every line (nothing beyond 10,000 is dropped, and the end-of-file
    # batch gensim's reader loses is the padding line).
    fit = fit_word2vec(
        corpus, W2VParams(vector_size=4, window=2, epochs=1, min_count=1, sample=0), 0, 1, False
    )
    assert fit.trained_words == 25_003
    assert len(fit.vectors) == 25_000


def test_shuffled_orders_keep_each_playlist_as_a_set_and_differ(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    playlists = Ragged.from_lists([rng.choice(500, 30, replace=False) for _ in range(40)])
    corpus = write_corpus(playlists, _ids(500), tmp_path, n_orders=3, seed=9)
    ids = _ids(500)
    expected = Counter(tuple(sorted(ids[p].tolist())) for p in playlists.rows())
    texts = []
    for path in corpus.files:
        assert Counter(tuple(sorted(line)) for line in read_corpus(path)) == expected
        texts.append(path.read_text())
    assert len(set(texts)) == 3
    # Same data and seed: the corpus is reused, not rewritten.
    mtime = corpus.files[0].stat().st_mtime_ns
    again = write_corpus(playlists, ids, tmp_path, n_orders=3, seed=9)
    assert again.fingerprint == corpus.fingerprint and corpus.files[0].stat().st_mtime_ns == mtime


def test_one_worker_training_is_deterministic(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    playlists = Ragged.from_lists([rng.choice(200, 20, replace=False) for _ in range(100)])
    corpus = write_corpus(playlists, _ids(200), tmp_path, n_orders=2, seed=3)
    params = W2VParams(vector_size=8, window=5, epochs=3, min_count=1)
    a = fit_word2vec(corpus, params, seed=5, workers=1, progress=False).vectors
    b = fit_word2vec(corpus, params, seed=5, workers=1, progress=False).vectors
    c = fit_word2vec(corpus, params, seed=6, workers=1, progress=False).vectors
    assert a.index_to_key == b.index_to_key
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert not np.array_equal(a.vectors, c.vectors)


# --- the grid ------------------------------------------------------------------------------------


def test_default_grid_is_packaged_and_covers_the_axes() -> None:
    config = load_grid(None)
    assert set(config.grid) == set(PARAM_AXES)
    assert set(config.grid["sg"]) == {0, 1} and 1 in config.grid["min_count"]
    assert set(config.search.rules) == {"cosine", "output"} and 0.0 in config.search.priors
    assert config.search.n_trials >= 12 and list(config.search.rungs) == sorted(config.search.rungs)
    for axis, values in config.grid.items():  # trial 0 is exactly the defaults
        assert getattr(config.defaults, axis) in values, axis
    assert (
        config.seed_recipe.sg == 0 and config.seed_recipe.vector_size == 48 and not config.seed_recipe.shuffle
    )
    assert config.seed_recipe.scoring == "cosine" and config.seed_recipe_min_counts == (3, 5, 10)


def test_a_bad_grid_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "grid.yml"
    bad.write_text(
        (Path(__file__).parents[1] / "ml" / "grid_tiny.yml")
        .read_text()
        .replace("window: [5, 10]", "windw: [5]")
    )
    with pytest.raises(ValueError, match=r"grid\.yml: grid: unknown axis \['windw'\]"):
        load_grid(bad)
