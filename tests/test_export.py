"""Export: the Keras KNN (knn.keras), the SavedModel's layout and size, names, and identical answers
to the offline scoring (ml.knn)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ml.endpoint_contract import N_POPULAR, SIGNATURE_NAME
from ml.export import export_latest
from ml.knn import top_k
from ml.parity import SCORE_TOL, compare, offline_expected
from ml.run_dir import RunDir


@pytest.fixture(scope="module")
def signature(synthetic_run):
    loaded = tf.saved_model.load(str(synthetic_run.export.saved_model_dir))
    signature = loaded.signatures[SIGNATURE_NAME]
    signature._keep = loaded  # the signature's tables and variables belong to `loaded`
    return signature


def run(signature, playlists: list[list[str]], k: int | list[int] = 10) -> dict[str, np.ndarray]:
    width = max(1, max(len(p) for p in playlists))
    ks = k if isinstance(k, list) else [k] * len(playlists)
    out = signature(
        tracks=tf.constant([p + [""] * (width - len(p)) for p in playlists]),
        k=tf.constant(ks, dtype=tf.int32),
        name_tokens=tf.constant([[""]] * len(playlists)),  # no playlist name
    )
    return {name: value.numpy() for name, value in out.items()}


def as_prediction(out: dict[str, np.ndarray], i: int) -> dict:
    n = int(out["n_results"][i])
    return {
        "track_ids": out["track_ids"][i, :n].astype(str).tolist(),
        "scores": out["scores"][i, :n].tolist(),
        "n_unknown": int(out["n_unknown"][i]),
        "fallback": bool(out["fallback"][i]),
    }


def test_tarball_has_the_tf_serving_layout(synthetic_run):
    with tarfile.open(synthetic_run.export.tarball) as tar:
        names = set(tar.getnames())
    assert {
        "1/saved_model.pb",
        "1/variables/variables.index",
        "1/assets/track_ids.txt",
        "1/assets/catalogue_ids.txt",
        "1/assets/popular_ids.txt",
        "1/assets/track_names.tsv",
        "code/inference.py",
        "knn.keras",
        "model_info.json",
    } <= names
    assert any(n.startswith("1/variables/variables.data-") for n in names)
    assert {n.split("/")[0] for n in names} == {"1", "code", "knn.keras", "model_info.json"}
    assert (
        synthetic_run.export.tarball
        == synthetic_run.paths.models_dir.resolve() / "run-synthetic" / "model.tar.gz"
    )


def test_embeddings_are_stored_once(synthetic_run):
    ids, normed = RunDir(synthetic_run.model.run_dir).load_normalized_vectors()
    saved = synthetic_run.export.saved_model_dir
    variables = tf.train.list_variables(str(saved / "variables" / "variables"))
    # Stored transposed ([dim, n_tracks]): the query product is faster that way.
    float_matrices = [(name, shape) for name, shape in variables if sorted(shape) == sorted(normed.shape)]
    assert len(float_matrices) == 1, variables  # Q = I: one weight, no query table
    assert float_matrices[0][1] == [normed.shape[1], normed.shape[0]]
    matrix_bytes = normed.nbytes
    # The graph holds no copy of the matrix (no constant of more than a few KB; the graph itself,
    # the name path's branches included, is a fraction of the matrix), and the checkpoint only one
    # (plus popular ids, the prior column and the one-row name table of a run without names).
    assert (saved / "saved_model.pb").stat().st_size < matrix_bytes / 2
    assert largest_constant_bytes(saved / "saved_model.pb") < 8192
    data = sum(p.stat().st_size for p in (saved / "variables").glob("variables.data-*"))
    assert matrix_bytes <= data < matrix_bytes + N_POPULAR * 40 + normed.shape[0] * 4 + 1024
    assert (saved / "assets" / "track_ids.txt").read_text().split("\n")[:-1] == ids


def largest_constant_bytes(saved_model_pb: Path) -> int:
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(saved_model_pb.read_bytes())
    graph = proto.meta_graphs[0].graph_def
    nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
    return max(n.attr["value"].tensor.ByteSize() for n in nodes if n.op == "Const")


def test_identical_top10_to_offline_on_1000_playlists(synthetic_run, signature):
    """The parity test: TF top-10 == ml.knn top-10, except float near-ties (documented tolerance)."""
    ids, normed = RunDir(synthetic_run.model.run_dir).load_normalized_vectors()
    rng = np.random.default_rng(11)
    playlists = []
    for i in range(1000):
        rows = rng.choice(len(ids), size=int(rng.integers(1, 31)), replace=False)
        playlist = [ids[r] for r in rows]
        if i % 10 == 0:
            playlist.append(f"nope{i:012d}")  # unknown ids are ignored and counted
        playlists.append(playlist)
    expected = offline_expected(synthetic_run.model.run_dir, playlists, k=10)
    out = run(signature, playlists)
    verdicts = [compare(e, as_prediction(out, i)) for i, e in enumerate(expected)]
    mismatches = [(i, v) for i, v in enumerate(verdicts) if v not in (None, "tie")]
    assert not mismatches, mismatches[:5]
    identical = sum(v is None for v in verdicts)
    # Exact equality on >= 99% of playlists; the rest are ties within SCORE_TOL (duplicate vectors).
    assert identical >= 990, f"only {identical}/1000 identical"
    assert int(out["n_unknown"].sum()) == 100


def test_ties_go_to_the_lower_row(synthetic_run, signature):
    """Two tracks with the same vector score exactly alike in TF: the lower row comes first."""
    ids, normed = RunDir(synthetic_run.model.run_dir).load_normalized_vectors()
    first, second = synthetic_run.model.duplicate_pairs[0]
    similarity = normed @ normed[first]
    similarity[[first, second]] = -np.inf
    neighbour = int(np.argmax(similarity))  # seeds the query; both twins rank near the top
    out = run(signature, [[ids[neighbour]]], k=20)
    got = out["track_ids"][0].astype(str).tolist()
    assert ids[first] in got and got.index(ids[second]) == got.index(ids[first]) + 1
    scores = out["scores"][0]
    assert scores[got.index(ids[first])] == scores[got.index(ids[second])]


def test_playlist_is_a_set_and_seeds_are_excluded(synthetic_run, signature):
    ids = synthetic_run.model.track_ids
    out = run(signature, [[ids[5], ids[9], ids[5]], [ids[9], ids[5]]], k=50)
    assert as_prediction(out, 0) == as_prediction(out, 1)
    assert not {ids[5], ids[9]} & set(as_prediction(out, 0)["track_ids"])
    assert as_prediction(out, 0)["n_unknown"] == 0


def test_no_known_track_gets_the_most_popular(synthetic_run, signature):
    import pyarrow.parquet as pq

    popular = pq.read_table(synthetic_run.model.run_dir / "popularity.parquet").column("track_id").to_pylist()
    rare_popular = synthetic_run.model.popular_not_in_vocab[0]  # third most popular, not in the vectors
    assert popular[2] == rare_popular
    out = run(signature, [[], ["nope1", "nope2"], ["nope3", rare_popular, popular[0]]], k=[5, 5, 5])
    empty, unknown, with_popular = (as_prediction(out, i) for i in range(3))
    # popular[0] is known, so the third playlist is a KNN query; unknown ones fall back.
    assert empty == {"track_ids": popular[:5], "scores": [0.0] * 5, "n_unknown": 0, "fallback": True}
    assert unknown == {"track_ids": popular[:5], "scores": [0.0] * 5, "n_unknown": 2, "fallback": True}
    assert not with_popular["fallback"] and with_popular["n_unknown"] == 2
    out = run(signature, [["nope3", rare_popular]], k=4)
    assert as_prediction(out, 0)["track_ids"] == [popular[0], popular[1], popular[3], popular[4]]


def test_k_per_playlist_and_k_beyond_the_catalogue(tmp_path):
    from synthetic_model import write_synthetic_model

    from ml.config import Paths

    model = write_synthetic_model(
        tmp_path / "models" / "small", n_tracks=12, dim=4, n_clusters=2, n_duplicate_pairs=0
    )
    (tmp_path / "models" / "latest").symlink_to("small")
    paths = Paths(tmp_path / "r", tmp_path / "d", tmp_path / "models", tmp_path / "rep")
    result = export_latest(paths, selfcheck_playlists=20)
    assert result.selfcheck_identical == 20
    loaded = tf.saved_model.load(str(result.saved_model_dir))
    out = run(loaded.signatures[SIGNATURE_NAME], [model.track_ids[:3], model.track_ids[:1]], k=[50, 2])
    assert out["n_results"].tolist() == [9, 2]
    ids, normed = RunDir(model.run_dir).load_normalized_vectors()
    expected = top_k(normed, [[0, 1, 2]], k=9).rows[0]
    assert as_prediction(out, 0)["track_ids"] == [ids[r] for r in expected]


def test_export_summary_and_missing_model(synthetic_run, tmp_path):
    summary = synthetic_run.export.summary()
    assert "3,000 tracks x 32 dims" in summary and "model.tar.gz" in summary and "2.20" in summary
    result = synthetic_run.export
    assert result.selfcheck_playlists == 200
    assert result.selfcheck_identical + result.selfcheck_ties == 200 and result.selfcheck_identical >= 195
    from ml.config import Paths

    empty = Paths(tmp_path / "r", tmp_path / "d", tmp_path / "models", tmp_path / "rep")
    (tmp_path / "models" / "latest").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="vectors.kv not found"):
        export_latest(empty)


def test_scores_match_offline_values(synthetic_run, signature):
    ids = synthetic_run.model.track_ids
    playlist = [ids[1], ids[2], ids[3]]
    expected = offline_expected(synthetic_run.model.run_dir, [playlist], k=10)[0]
    out = as_prediction(run(signature, [playlist]), 0)
    assert np.allclose(out["scores"], expected.scores, atol=SCORE_TOL)
    assert Path(synthetic_run.export.tarball).stat().st_size == synthetic_run.export.tarball_bytes


def test_parity_on_the_trained_tiny_model(tiny_export, tmp_path):
    """The trained run: its saved offline test predictions, then 1,000 playlists in all, agree."""
    import pyarrow.parquet as pq

    from ml.deploy.check import expected_answers, sample_playlists

    run_dir = tiny_export.run_dir
    saved, source = expected_answers(run_dir, 1000)
    assert "offline_test_predictions" in source and saved
    n_saved = pq.read_table(run_dir / "offline_test_predictions.parquet").num_rows
    playlists = sample_playlists(run_dir, 1000 - len(saved), seed=3)
    expected = saved + offline_expected(run_dir, playlists, k=10)
    loaded = tf.saved_model.load(str(tiny_export.export.saved_model_dir))
    signature = loaded.signatures[SIGNATURE_NAME]
    verdicts = []
    for start in range(0, len(expected), 100):
        chunk = expected[start : start + 100]
        out = run(signature, [list(e.tracks) for e in chunk])
        verdicts += [compare(e, as_prediction(out, i)) for i, e in enumerate(chunk)]
    assert len(verdicts) == 1000 and len(saved) == min(n_saved, 1000)
    assert [v for v in verdicts if v not in (None, "tie")] == []
    assert sum(v is None for v in verdicts) >= 990
    assert all(v is None for v in verdicts[: len(saved)])  # the training run's own predictions: exact


def test_a_long_unknown_playlist_falls_back_past_its_popular_tracks(synthetic_run, signature):
    """5,000 unknown ids, among them the 600 most popular: the fallback skips exactly those."""
    import pyarrow.parquet as pq

    from ml.endpoint_contract import MAX_TRACKS

    popular = pq.read_table(synthetic_run.model.run_dir / "popularity.parquet").column("track_id").to_pylist()
    vocab = set(synthetic_run.model.track_ids)
    unknown_popular = [t for t in popular if t not in vocab]  # the fixture's rare ids
    filler = [f"nope{i:012d}" for i in range(MAX_TRACKS - len(unknown_popular))]
    out = as_prediction(run(signature, [unknown_popular + filler], k=5), 0)
    assert out["fallback"] and out["n_unknown"] == MAX_TRACKS
    assert out["track_ids"] == [t for t in popular if t not in unknown_popular][:5]


def test_knn_keras_loads_with_keras_and_answers_as_the_saved_model(tiny_export):
    """`keras.saving.load_model(<run>/knn.keras)` works and gives the SavedModel's top-10 (the
    trained tiny run, 1,000 playlists: its saved test seeds, then random ones)."""
    import keras

    import ml.export
    from ml.deploy.check import expected_answers, sample_playlists

    assert "keras" in ml.export.__dict__ or "import keras" in Path(ml.export.__file__).read_text()
    run_dir = tiny_export.run_dir
    model = keras.saving.load_model(run_dir / "knn.keras")
    assert type(model).__name__ == "PlaylistKnn" and isinstance(model, keras.Model)
    assert all(not w.trainable for w in model.weights)
    saved, _ = expected_answers(run_dir, 1000)
    playlists = [list(e.tracks) for e in saved] + sample_playlists(run_dir, 1000 - len(saved), seed=5)
    signature = tf.saved_model.load(str(tiny_export.export.saved_model_dir)).signatures[SIGNATURE_NAME]
    for start in range(0, len(playlists), 100):
        chunk = playlists[start : start + 100]
        width = max(1, max(len(p) for p in chunk))
        inputs = {
            "tracks": tf.constant([p + [""] * (width - len(p)) for p in chunk]),
            "k": tf.constant([10] * len(chunk), dtype=tf.int32),
            "name_tokens": tf.constant([[""]] * len(chunk)),
        }
        from_saved = signature(**inputs)
        from_keras = model(inputs)
        for name in ("track_ids", "artists", "titles", "scores", "n_results", "n_unknown", "fallback"):
            assert np.array_equal(from_saved[name].numpy(), np.asarray(from_keras[name])), name


def test_answers_carry_the_names_of_the_tracks(tiny_export):
    """artists/titles are dim_tracks' names of the answered ids, for KNN and fallback answers."""
    import duckdb

    from ml.deploy.check import sample_playlists

    run_dir = tiny_export.run_dir
    loaded = tf.saved_model.load(str(tiny_export.export.saved_model_dir))
    playlists = sample_playlists(run_dir, 30, seed=2)  # the first is empty: the fallback
    out = run(loaded.signatures[SIGNATURE_NAME], playlists)
    con = duckdb.connect(str(tiny_export.paths.duckdb_path), read_only=True)
    names = {
        t: (a, n)
        for t, a, n in con.execute("select track_id, artist_name, track_name from dim_tracks").fetchall()
    }
    con.close()
    assert bool(out["fallback"][0])
    checked = 0
    for i in range(len(playlists)):
        p = as_prediction(out, i)
        n = len(p["track_ids"])
        artists = [a.decode("utf-8") for a in out["artists"][i, :n]]
        titles = [t.decode("utf-8") for t in out["titles"][i, :n]]
        assert [names[t] for t in p["track_ids"]] == list(zip(artists, titles, strict=True))
        assert (out["artists"][i, n:] == b"").all() and (out["titles"][i, n:] == b"").all()
        checked += n
    assert checked >= 250


def test_a_query_table_apart_from_the_item_matrix(tmp_path):
    """Q != I (the output-layer scoring of issue 12): two weights, and the answers of ml.knn.top_k
    with that Q and I, seeds excluded, unknown ids counted."""
    from ml.knn_keras import KnnFiles, PlaylistKnn

    rng = np.random.default_rng(4)
    n, d = 400, 16
    queries = rng.normal(size=(n, d)).astype(np.float32)
    items = rng.normal(size=(n, d)).astype(np.float32)
    ids = [f"{i:016x}" for i in range(n)]
    files = KnnFiles(tmp_path, ids, [], ids[:20], {t: ("a", "t") for t in ids})
    model = PlaylistKnn.build_from(files, np.ascontiguousarray(items.T), queries, np.arange(20))
    matrices = [
        tuple(w.shape) for w in model.weights if w.dtype == "float32" and n in w.shape and len(w.shape) == 2
    ]
    assert sorted(matrices) == [(d, n), (n, d)]  # plus the prior, 1 / |Q row| and the name rows
    playlists = [
        sorted(rng.choice(n, size=int(rng.integers(1, 12)), replace=False).tolist()) for _ in range(200)
    ]
    expected = top_k(queries, playlists, k=10, items=items)
    width = max(len(p) for p in playlists) + 1
    out = model(
        {
            "tracks": tf.constant(
                [[ids[r] for r in p] + ["nope"] + [""] * (width - len(p) - 1) for p in playlists]
            ),
            "k": tf.constant([10] * len(playlists), dtype=tf.int32),
        }
    )
    got = np.asarray(out["track_ids"]).astype(str)
    same = sum(got[i].tolist() == [ids[r] for r in expected.rows[i]] for i in range(len(playlists)))
    assert same >= 198  # the rest: near-ties within 1e-6 (checked below)
    assert np.allclose(np.asarray(out["scores"]), expected.scores, atol=1e-5)
    assert np.asarray(out["n_unknown"]).tolist() == [1] * len(playlists)
    assert not set(got[0]) & {ids[r] for r in playlists[0]}


def test_output_layer_tables_export_with_the_same_rule(synthetic_run, tmp_path):
    """A run scored by the output layer + prior (Q != I, one more column) exports a SavedModel that
    gives ml.knn's top-10 with those tables (the export's self-check raises otherwise)."""
    import shutil

    import numpy as np

    from ml.config import Paths
    from ml.export import export_latest
    from ml.parity import offline_expected
    from ml.rankers import knn_tables
    from ml.run_dir import RunDir

    run = tmp_path / "models" / "run"
    shutil.copytree(synthetic_run.model.run_dir, run, ignore=shutil.ignore_patterns("export", "*.tar.gz"))
    kv = RunDir(run).load_keyed_vectors()
    rng = np.random.default_rng(5)
    output = rng.normal(size=kv.vectors.shape).astype(np.float32)
    counts = rng.integers(1, 50, size=len(kv.vectors))
    query, items = knn_tables(np.asarray(kv.vectors), output, counts, "output", 0.3)
    RunDir(run).write_knn_tables(query, items, {"scoring": "output", "prior": 0.3})
    paths = Paths(tmp_path / "raw.csv", tmp_path / "w.duckdb", tmp_path / "models", tmp_path / "reports")
    result = export_latest(paths, run_dir=run, selfcheck_playlists=40)
    assert result.dim == kv.vector_size + 1
    assert result.selfcheck_identical + result.selfcheck_ties == 40
    ids = RunDir(run).load_knn_tables()[0]
    expected = offline_expected(run, [[ids[0], ids[1]]], k=5)[0]
    scores = query[[0, 1]].mean(axis=0) @ items.T
    scores[[0, 1]] = -np.inf
    assert list(expected.track_ids) == [ids[i] for i in np.argsort(-scores, kind="stable")[:5]]


def test_per_seed_rule_in_keras_equals_ml_knn(tmp_path):
    """PlaylistKnn with per_seed = M (issue 12): the seeds' rows times I^T, top M + 1 per seed,
    shifted and summed by scatter, gives ml.knn's per-seed top-10 and scores (Q != I)."""
    from ml.knn import KnnTables
    from ml.knn_keras import KnnFiles, PlaylistKnn

    rng = np.random.default_rng(6)
    n, d, m = 500, 12, 15
    queries = rng.normal(size=(n, d)).astype(np.float32)
    items = rng.normal(size=(n, d)).astype(np.float32)
    ids = [f"{i:016x}" for i in range(n)]
    files = KnnFiles(tmp_path, ids, [], ids[:20], {t: ("a", "t") for t in ids})
    model = PlaylistKnn.build_from(files, np.ascontiguousarray(items.T), queries, np.arange(20), per_seed=m)
    playlists = [
        sorted(rng.choice(n, size=int(rng.integers(1, 10)), replace=False).tolist()) for _ in range(150)
    ]
    expected = KnnTables(items.T, queries, per_seed=m).top_k(playlists, k=40)
    width = max(len(p) for p in playlists) + 2
    out = model(
        {
            "tracks": tf.constant(
                [[ids[r] for r in p] + [ids[p[0]], "nope"] + [""] * (width - len(p) - 2) for p in playlists]
            ),
            "k": tf.constant([40] * len(playlists), dtype=tf.int32),
        }
    )
    got = np.asarray(out["track_ids"]).astype(str)
    same = sum(got[i].tolist() == [ids[r] for r in expected.rows[i]] for i in range(len(playlists)))
    assert same >= 148  # a repeated id counted once; single seeds reach the zero-score rows in row order
    assert np.allclose(np.asarray(out["scores"]), expected.scores, atol=1e-4)
    assert np.asarray(out["n_unknown"]).tolist() == [1] * len(playlists)
    mean = KnnTables(items.T, queries).top_k(playlists, k=40)
    assert not np.array_equal(mean.rows, expected.rows)
