"""Per-seed aggregation (ml.knn, issue 12) through export and serving: knn.keras, the SavedModel
and `ml serve`'s numpy engine answer as ml.knn; a name beside seeds is one more per-seed list
(ml.knn.NameRule).

The run is the trained tiny run (real gensim) with output-layer tables and knn_scoring.json's
per_seed set, exported with real Keras/TensorFlow."""

from __future__ import annotations

import json
import shutil
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from ml.cold_start import NameModel
from ml.endpoint_contract import Instance, model_inputs
from ml.parity import compare, offline_expected, offline_expected_named
from ml.rankers import knn_tables
from ml.run_dir import RunDir
from ml.serve import load_model

PER_SEED = 5


@pytest.fixture(scope="module")
def per_seed_export(tiny_model, tiny_warehouse, tmp_path_factory):
    from ml.config import Paths
    from ml.export import export_latest

    root = tmp_path_factory.mktemp("per-seed-export")
    run_dir = root / "models" / tiny_model.name
    shutil.copytree(tiny_model, run_dir)
    (root / "models" / "latest").symlink_to(tiny_model.name)
    run = RunDir(run_dir)
    NameModel.load(run_dir).with_worth(2.0).save(run_dir)  # a name counts beside seeds
    kv = run.load_keyed_vectors()
    output = np.random.default_rng(3).normal(size=kv.vectors.shape).astype(np.float32)
    query, items = knn_tables(np.asarray(kv.vectors), output, np.ones(len(output)), "output", 0.0)
    run.write_knn_tables(query, items, {"scoring": "output", "prior": 0.0, "per_seed": PER_SEED})
    paths = Paths(root / "raw.csv", tiny_warehouse, root / "models", root / "reports")
    return SimpleNamespace(paths=paths, run_dir=run_dir, export=export_latest(paths, selfcheck_playlists=200))


def playlists(run_dir, n: int = 120) -> list[list[str]]:
    ids = RunDir(run_dir).vocabulary()
    rng = np.random.default_rng(11)
    out = []
    for i in range(n):
        picked = [ids[j] for j in rng.choice(len(ids), size=int(rng.integers(1, 9)), replace=False)]
        if i % 5 == 0:
            picked += [picked[0], "not-a-track"]  # a repeated id counts once; an unknown one is counted
        out.append(picked)
    return out + [["not-a-track"], []]  # nothing known: the popular fallback


def test_the_run_scores_per_seed_and_the_export_carries_it(per_seed_export):
    _, tables = RunDir(per_seed_export.run_dir).load_knn_tables()
    assert tables.per_seed == PER_SEED and not tables.shared
    result = per_seed_export.export
    assert result.selfcheck_identical + result.selfcheck_ties == 200  # the export's own SavedModel check
    with zipfile.ZipFile(result.keras_file) as archive:
        assert json.loads(archive.read("config.json"))["config"]["per_seed"] == PER_SEED
    # Per-seed answers are not the mean query's: the rule is really in effect.
    seeds = [[0, 1, 2], [3, 4], [5, 6, 7, 8]]
    mean = type(tables)(tables.items_t, tables.query_table).top_k(seeds, 10).rows
    assert not np.array_equal(mean, tables.top_k(seeds, 10).rows)


@pytest.mark.parametrize("engine", ["numpy", "tensorflow"])
def test_both_engines_answer_as_ml_knn(per_seed_export, engine):
    queries = playlists(per_seed_export.run_dir)
    expected = offline_expected(per_seed_export.run_dir, queries, k=10)
    model = load_model(per_seed_export.export.tarball, engine=engine)
    got = model.predict([Instance(tuple(p), 10) for p in queries])
    verdicts = [compare(e, g) for e, g in zip(expected, got, strict=True)]
    assert [v for v in verdicts if v not in (None, "tie")] == []
    identical = sum(e.track_ids == tuple(g["track_ids"]) for e, g in zip(expected, got, strict=True))
    assert identical >= len(queries) - 2
    assert got[0]["n_unknown"] == 1 and got[-1]["fallback"] and got[-2]["fallback"]


def test_knn_keras_answers_as_the_saved_model(per_seed_export):
    import keras

    from ml.knn_keras import tensor_inputs

    words = [str(k).split(":", 1)[1] for k in NameModel.load(per_seed_export.run_dir).keys[:6]]
    queries = playlists(per_seed_export.run_dir, 30)
    instances = [Instance(tuple(p), 10, words[i % 6] if i % 3 == 0 else "") for i, p in enumerate(queries)]
    inputs = tensor_inputs(model_inputs(instances))
    model = keras.saving.load_model(per_seed_export.run_dir / "export" / "knn.keras")
    signature = tf.saved_model.load(str(per_seed_export.export.saved_model_dir)).signatures["serving_default"]
    from_saved, from_keras = signature(**inputs), model(inputs)
    for name in ("track_ids", "scores", "n_results", "fallback", "n_unknown", "n_name_tokens"):
        assert np.array_equal(from_saved[name].numpy(), np.asarray(from_keras[name])), name


@pytest.mark.parametrize("engine", ["numpy", "tensorflow"])
def test_a_name_beside_seeds_is_one_more_per_seed_list(per_seed_export, engine):
    """A playlist with a known name token beside seeds: the seeds' per-seed lists plus the name's
    own list (worth 2), ml.knn.NameRule under per_seed, in both engines; not the mean-path mix.
    A name alone: its own scores; no known token: the tracks' per-seed rule."""
    from ml.cold_start import NameScoring
    from ml.knn import KnnTables, NameRule

    run_dir = per_seed_export.run_dir
    ids = RunDir(run_dir).vocabulary()
    words = [str(k).split(":", 1)[1] for k in NameModel.load(run_dir).keys[:8]]
    queries = [(ids[3 * i : 3 * i + 1 + i % 3], w) for i, w in enumerate(words)] + [([], words[0])]
    queries += [([ids[9], ids[10]], "qqqzzx")]  # no known token: the tracks' per-seed rule
    expected = offline_expected_named(run_dir, queries, k=10)
    got = load_model(per_seed_export.export.tarball, engine=engine).predict(
        [Instance(tuple(t), 10, n) for t, n in queries]
    )
    assert [compare(e, g) for e, g in zip(expected, got, strict=True)].count(None) >= len(queries) - 1
    assert all(compare(e, g) in (None, "tie") for e, g in zip(expected, got, strict=True))
    plain = offline_expected(run_dir, [[ids[9], ids[10]]], k=10)[0]
    assert tuple(got[-1]["track_ids"]) == plain.track_ids  # per-seed, as ml.knn
    # The per-seed name rule differs from the mean path's mix over the same tables.
    rule = NameScoring.from_run(RunDir(run_dir)).rule
    mean = NameRule.over(
        KnnTables(rule.tables.items_t, rule.tables.query_table), list(rule.index), rule.rows, rule.prior, 2.0
    )
    seeds = [[3 * i + j for j in range(1 + i % 3)] for i in range(8)]
    tokens = [rule.token_rows([f"name:{w}"]) for w in words]
    assert not np.array_equal(rule.top_k(seeds, tokens, 10).rows, mean.top_k(seeds, tokens, 10).rows)
    assert [tuple(g["track_ids"]) for g in got[:8]] != [
        tuple(ids[r] for r in row) for row in mean.top_k(seeds, tokens, 10).rows
    ]


def test_ml_recommend_answers_as_the_endpoint(per_seed_export):
    from ml.recommend import recommend

    served = load_model(per_seed_export.export.tarball)
    for playlist in playlists(per_seed_export.run_dir, 6):
        assert (
            recommend(playlist, 10, per_seed_export.paths)
            == served.predict([Instance(tuple(playlist), 10)])[0]
        )
