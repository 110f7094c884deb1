"""A playlist's name at the endpoint (issue 14): `{"name": "summer chill", "k": 10}` alone or beside
tracks, on the trained tiny run, through the real HTTP server (`ml serve`, both engines), the
SageMaker handler (`code/inference.py` in an interpreter without the `ml` package, around the
SavedModel) and `ml recommend --name`; every answer equals ml.cold_start's rule computed offline.

The tiny run chose its name table and the name's worth on valid (worth 0 there: a dozen valid
playlists). The combined rule (name + tracks) is checked on a copy whose worth is set to 2 and
whose tables are an output layer apart from the query table (Q != I), the harder case, under both
track rules of ml.knn: the mean query and per-seed aggregation.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from live_server import serving

from ml.cold_start import NameModel, NameScoring
from ml.endpoint_contract import MAX_PLAYLIST_NAME_CHARS, Instance
from ml.name_tokens import name_keys
from ml.parity import SCORE_TOL, compare, offline_expected_named
from ml.run_dir import RunDir
from ml.serve import load_model


@pytest.fixture(scope="module")
def tiny_client(tiny_export):
    with (
        serving(load_model(tiny_export.export.tarball)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        yield http


@pytest.fixture(scope="module", params=[0, 5], ids=["mean", "per_seed"])
def named_export(request, tiny_model, tiny_warehouse, tmp_path_factory):
    """The tiny run with worth 2 and output-layer tables (Q = raw vectors, I = seeded output
    weights), scored by the mean query or per-seed aggregation (M = 5, the name one more per-seed
    list), exported: paths, run_dir, ExportResult."""
    from ml.config import Paths
    from ml.export import export_latest
    from ml.rankers import knn_tables

    root = tmp_path_factory.mktemp("named-export")
    run_dir = root / "models" / tiny_model.name
    shutil.copytree(tiny_model, run_dir)
    (root / "models" / "latest").symlink_to(tiny_model.name)
    run = RunDir(run_dir)
    NameModel.load(run_dir).with_worth(2.0).save(run_dir)
    kv = run.load_keyed_vectors()
    output = np.random.default_rng(3).normal(size=kv.vectors.shape).astype(np.float32)
    query, items = knn_tables(np.asarray(kv.vectors), output, np.ones(len(output)), "output", 0.0)
    run.write_knn_tables(query, items, {"scoring": "output", "prior": 0.0, "per_seed": request.param})
    paths = Paths(root / "raw.csv", tiny_warehouse, root / "models", root / "reports")
    return SimpleNamespace(paths=paths, run_dir=run_dir, export=export_latest(paths))


def words_of(run_dir: Path, n: int) -> list[str]:
    """The run's n most common name tokens, as words a user would type."""
    return [str(k).split(":", 1)[1] for k in NameModel.load(run_dir).keys[:n]]


def post(client: httpx.Client, instances: list[dict]) -> list[dict]:
    response = client.post("/invocations", json={"instances": instances})
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def assert_all_match(expected, predictions, min_identical: float = 0.9) -> None:
    verdicts = [compare(e, p) for e, p in zip(expected, predictions, strict=True)]
    assert [(i, v) for i, v in enumerate(verdicts) if v not in (None, "tie")] == []
    assert sum(v is None for v in verdicts) >= min_identical * len(verdicts)


# --- a name alone -----------------------------------------------------------------------------


def test_a_name_alone_returns_the_offline_cold_start_answer(tiny_export, tiny_client):
    """`{"name": ..., "k": 10}` over HTTP: predictions (not the popularity fallback), equal to
    ml.cold_start's rule; one name checked by hand: the mean of its token rows against
    [I | prior] (the item matrix and the prior column)."""
    run_dir = tiny_export.run_dir
    words = words_of(run_dir, 15)
    names = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    predictions = post(tiny_client, [{"name": n, "k": 10} for n in names])
    assert_all_match(offline_expected_named(run_dir, [([], n) for n in names]), predictions)
    for name, p in zip(names, predictions, strict=True):
        assert not p["fallback"] and len(p["track_ids"]) == 10 and p["n_unknown"] == 0
        assert p["n_name_tokens"] == len(name_keys(name)) and p["n_unknown_tokens"] == 0
        assert len(p["artists"]) == len(p["titles"]) == 10 and any(p["titles"])

    scoring = NameScoring.from_run(RunDir(run_dir))
    index = scoring.names.index
    pair = names[len(words)]  # two tokens
    query = np.mean([scoring.names.rows[index[k]] for k in name_keys(pair)], axis=0)
    items = np.hstack([scoring.rule.tables.items_t.T, scoring.rule.prior[:, None]])  # [I | prior]
    by_hand = np.argsort(-(items @ query), kind="stable")[:10]
    got = predictions[len(words)]["track_ids"]
    assert got == [scoring.track_ids[r] for r in by_hand]


def test_unknown_words_and_auto_playlists_fall_back_like_an_empty_playlist(tiny_export, tiny_client):
    word = words_of(tiny_export.run_dir, 1)[0]
    empty, unknown, auto, blank, mixed, known = post(
        tiny_client,
        [
            {"tracks": [], "k": 10},
            {"name": "qqqzzx blorfx", "k": 10},  # two words the model does not know
            {"name": "Starred", "k": 10},  # the client's own playlist: no tokens
            {"name": "", "k": 10},
            {"name": f"{word} qqqzzx", "k": 10},  # one known, one unknown
            {"name": word, "k": 10},
        ],
    )
    assert empty["fallback"] and unknown["fallback"] and auto["fallback"] and blank["fallback"]
    assert unknown["track_ids"] == auto["track_ids"] == blank["track_ids"] == empty["track_ids"]
    assert (unknown["n_name_tokens"], unknown["n_unknown_tokens"]) == (0, 2)
    assert (auto["n_name_tokens"], auto["n_unknown_tokens"]) == (0, 0)
    assert (mixed["n_name_tokens"], mixed["n_unknown_tokens"]) == (1, 1)
    assert not mixed["fallback"] and mixed["track_ids"] == known["track_ids"]


# --- a name beside tracks -----------------------------------------------------------------------


def combined_queries(run_dir: Path) -> list[tuple[list[str], str]]:
    ids = RunDir(run_dir).vocabulary()
    words = words_of(run_dir, 12)
    return [(ids[7 * i : 7 * i + 1 + i % 4], w) for i, w in enumerate(words)] + [
        ([ids[5], "not-a-track"], words[0]),  # an unknown id beside: counted, ignored
        ([ids[9]], "qqqzzx"),  # no known token: the tracks' own rule
    ]


@pytest.mark.parametrize("engine", ["numpy", "tensorflow"])
def test_a_name_beside_tracks_answers_by_the_combined_rule(named_export, engine):
    """Local serve (both engines) over HTTP: name + ids and name + names (by dbt's identity rule)
    equal ml.cold_start's mix (the name worth 2 tracks) over output-layer tables (Q != I)."""
    import duckdb

    run_dir = named_export.run_dir
    queries = combined_queries(run_dir)
    expected = offline_expected_named(run_dir, queries)
    with (
        serving(load_model(named_export.export.tarball, engine=engine)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        by_ids = post(client, [{"tracks": t, "name": n, "k": 10} for t, n in queries])
        alone = post(client, [{"tracks": t, "k": 10} for t, _ in queries])
        con = duckdb.connect(str(named_export.paths.duckdb_path), read_only=True)
        names_of = dict(
            con.execute("select track_id, artist_name || ' - ' || track_name from dim_tracks").fetchall()
        )
        con.close()
        by_names = post(
            client,
            [
                {"names": [names_of[t] for t in ts if t in names_of], "name": n, "k": 10}
                for ts, n in queries[:12]
            ],
        )
    assert_all_match(expected, by_ids)
    assert by_ids[12]["n_unknown"] == 1 and by_ids[13]["n_unknown_tokens"] == 1
    assert by_ids[13]["track_ids"] == alone[13]["track_ids"]  # an unknown name changes nothing
    moved = sum(a["track_ids"] != b["track_ids"] for a, b in zip(by_ids[:12], alone[:12], strict=True))
    assert moved >= 10  # the name, worth 2 tracks, moves the answer
    for a, b in zip(by_ids[:12], by_names, strict=True):
        assert a == b


def test_a_name_worth_nothing_beside_tracks_leaves_the_tracks_answer(tiny_export, tiny_client):
    """The tiny run's worth is 0 (chosen on valid): beside seeds the name changes nothing, alone it
    answers (as ml.cold_start's evaluation of name + seeds, with the seeds-only rule at worth 0)."""
    assert NameModel.load(tiny_export.run_dir).worth == 0.0
    ids = RunDir(tiny_export.run_dir).vocabulary()
    word = words_of(tiny_export.run_dir, 1)[0]
    with_name, without = post(tiny_client, [{"tracks": ids[:3], "name": word}, {"tracks": ids[:3]}])
    assert with_name["track_ids"] == without["track_ids"] and with_name["n_name_tokens"] == 1


# --- the SageMaker handler and the exported files -------------------------------------------------

HANDLER = r"""
import importlib.util, io, json, sys, types
spec = importlib.util.spec_from_file_location("inference", sys.argv[1])
inference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(inference)
assert "ml" not in sys.modules
context = types.SimpleNamespace(request_content_type="application/json")
body = sys.stdin.buffer.read()
try:
    print(inference.input_handler(io.BytesIO(body), context))
except inference.ContractError as exc:
    print(json.dumps({"error": exc.message, "status": exc.status}))
"""


def handler_request(code_dir: Path, body: bytes) -> dict:
    """code/inference.py's input_handler under `python -I -S`: no site-packages, no `ml` package;
    it loads code/name_tokens.py beside it, as in the container."""
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", HANDLER, str(code_dir / "inference.py")],
        input=body,
        capture_output=True,
        check=True,
        cwd=code_dir.parent.parent,
    )
    return json.loads(done.stdout)


def test_the_sagemaker_handler_answers_names_as_local_serve(named_export, tmp_path):
    import tensorflow as tf

    with tarfile.open(named_export.export.tarball) as tar:
        tar.extractall(tmp_path, filter="data")
    code_dir = tmp_path / "code"
    assert (code_dir / "name_tokens.py").read_bytes() == Path(
        sys.modules["ml.name_tokens"].__file__
    ).read_bytes()
    queries = combined_queries(named_export.run_dir)
    instances = [{"name": n, "k": 10} for _, n in queries] + [
        {"tracks": t, "name": n, "k": 10} for t, n in queries
    ]
    body = json.dumps({"instances": instances}).encode()
    request = handler_request(code_dir, body)
    assert request["signature_name"] == "serving_default"
    inputs = request["inputs"]
    assert inputs["name_tokens"][0][: len(name_keys(queries[0][1]))] == name_keys(queries[0][1])
    signature = tf.saved_model.load(str(tmp_path / "1")).signatures["serving_default"]
    out = signature(
        tracks=tf.constant(inputs["tracks"]),
        k=tf.constant(inputs["k"], tf.int32),
        name_tokens=tf.constant(inputs["name_tokens"]),
    )
    outputs = {
        k: (np.char.decode(v.numpy().astype(bytes), "utf-8") if v.dtype == tf.string else v.numpy()).tolist()
        for k, v in out.items()
    }
    spec_module = _load_inference(code_dir)
    response = SimpleNamespace(status_code=200, content=json.dumps({"outputs": outputs}).encode())
    from_handler = json.loads(spec_module.output_handler(response, None)[0])["predictions"]

    local = load_model(named_export.export.tarball)  # ml serve's numpy engine
    from ml.endpoint_contract import parse_body

    from_local = local.predict(parse_body(body))
    # The same answers up to float ties: TF's float32 products may order two tracks of equal score
    # (identical rows) apart by a last bit, the numpy engine's exact scan gives the lower row.
    ranked = ("track_ids", "artists", "titles", "scores")
    for a, b in zip(from_handler, from_local, strict=True):
        assert {k: v for k, v in a.items() if k not in ranked} == {
            k: v for k, v in b.items() if k not in ranked
        }
        assert np.allclose(a["scores"], b["scores"], atol=SCORE_TOL)
    expected = offline_expected_named(named_export.run_dir, [([], n) for _, n in queries] + queries)
    assert_all_match(expected, from_handler)
    assert_all_match(expected, from_local)
    # the handler refuses a bad name with the local server's message
    bad = handler_request(code_dir, json.dumps({"instances": [{"name": 5}]}).encode())
    assert bad == {"error": "instances[0].name must be a string (the playlist's name)", "status": 400}


def _load_inference(code_dir: Path):  # noqa: ANN202 - the module
    import importlib.util

    spec = importlib.util.spec_from_file_location("inference_under_test", code_dir / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_knn_keras_answers_names_as_the_saved_model(named_export):
    """knn.keras (keras.saving.load_model) and the SavedModel give the same answers to names."""
    import keras
    import tensorflow as tf

    from ml.endpoint_contract import model_inputs
    from ml.knn_keras import tensor_inputs

    queries = combined_queries(named_export.run_dir)
    inputs = tensor_inputs(model_inputs([Instance(tuple(t), 10, n) for t, n in queries]))
    model = keras.saving.load_model(named_export.run_dir / "knn.keras")
    signature = tf.saved_model.load(str(named_export.export.saved_model_dir)).signatures["serving_default"]
    from_saved, from_keras = signature(**inputs), model(inputs)
    for name in ("track_ids", "scores", "n_results", "fallback", "n_name_tokens", "n_unknown_tokens"):
        assert np.array_equal(from_saved[name].numpy(), np.asarray(from_keras[name])), name


def test_the_export_carries_the_name_table_and_checks_it(tiny_export, named_export, synthetic_run):
    names = NameModel.load(tiny_export.run_dir)
    assets = tiny_export.export.saved_model_dir / "assets" / "name_tokens.txt"
    assert assets.read_text().split("\n")[:-1] == [str(k) for k in names.keys]
    assert tiny_export.export.n_name_tokens == len(names.keys) > 0
    assert tiny_export.export.selfcheck_names > 0 and named_export.export.selfcheck_names > 0
    assert "name queries" in tiny_export.export.summary()
    # A run without a name table (the synthetic one): a name falls back, its words counted.
    assert synthetic_run.export.n_name_tokens == 0 and "none in this run" in synthetic_run.export.summary()
    p = load_model(synthetic_run.export.tarball).predict([Instance((), 5, "summer chill")])[0]
    assert p["fallback"] and (p["n_name_tokens"], p["n_unknown_tokens"]) == (0, 2)


# --- bad names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "instance, message",
    [
        ({"name": 5}, "instances[0].name must be a string"),
        ({"name": None}, "instances[0].name must be a string"),
        ({"name": ["summer"]}, "instances[0].name must be a string"),
        ({"name": {"text": "summer"}}, "instances[0].name must be a string"),
        ({"name": "x" * (MAX_PLAYLIST_NAME_CHARS + 1)}, f"the limit is {MAX_PLAYLIST_NAME_CHARS}"),
        ({"nmae": "summer"}, "unknown field(s) ['nmae']"),
        ({"name": "summer", "k": 0}, "instances[0].k is 0"),
    ],
)
def test_a_bad_name_is_a_400_with_a_one_line_message(tiny_client, instance, message):
    response = tiny_client.post("/invocations", json={"instances": [instance]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert message in error and "\n" not in error


def test_a_lone_surrogate_in_a_name_is_a_400(tiny_client):
    body = b'{"instances": [{"name": "summer \\ud800 chill"}]}'
    response = tiny_client.post("/invocations", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "lone surrogate" in response.json()["error"]


# --- ml recommend --name --------------------------------------------------------------------------


def test_ml_recommend_name_answers_as_the_endpoint(tiny_export, monkeypatch):
    from click.testing import CliRunner

    from ml.cli import main
    from ml.recommend import recommend

    word = words_of(tiny_export.run_dir, 1)[0]
    served = load_model(tiny_export.export.tarball)
    assert recommend([], 10, tiny_export.paths, name=word) == served.predict([Instance((), 10, word)])[0]
    env = {"MODELS_DIR": str(tiny_export.paths.models_dir), "DUCKDB_PATH": str(tiny_export.paths.duckdb_path)}
    result = CliRunner().invoke(main, ["recommend", "--name", word, "-k", "5"], env=env, prog_name="ml")
    assert result.exit_code == 0, result.output
    assert "playlist name: 1 word(s) known to the model, 0 not" in result.output
    answer = served.predict([Instance((), 5, word)])[0]
    assert [line.split()[1] for line in result.output.splitlines()[2:]] == answer["track_ids"]
    result = CliRunner().invoke(main, ["recommend", "--name", "x" * 201], env=env, prog_name="ml")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert result.output.strip() == f"Error: --name has 201 chars; the limit is {MAX_PLAYLIST_NAME_CHARS}"
