"""`ml serve`: the SageMaker container contract over the exported model, its 4xx answers, and load."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from live_server import serving

from ml.deploy.check import request_bodies
from ml.endpoint_contract import MAX_BODY_BYTES, MAX_INSTANCES, MAX_K, MAX_TRACKS
from ml.parity import compare, offline_expected
from ml.serve import load_model


@pytest.fixture(scope="module")
def model(synthetic_run):
    return load_model(synthetic_run.export.tarball)


@pytest.fixture(scope="module")
def live_url(model):
    """uvicorn serving the model on a free 127.0.0.1 port, in a thread."""
    with serving(model) as url:
        yield url


@pytest.fixture(scope="module")
def client(live_url):
    with httpx.Client(base_url=live_url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def expected(synthetic_run):
    ids = synthetic_run.model.track_ids
    playlists = [ids[i : i + 1 + i % 15] for i in range(0, 1200, 40)] + [
        [],
        ["unknown-id"],
        [ids[3], "unknown-id"],
    ]
    return offline_expected(synthetic_run.model.run_dir, playlists, k=10)


def test_ping(client):
    response = client.get("/ping")
    assert response.status_code == 200 and response.json()["n_tracks"] == 3000
    assert response.json()["engine"] == "numpy"


def test_ping_and_answers_tell_which_run_answers(client, synthetic_run):
    """Lineage: /ping and every answer's headers name the run (model_info.json of the export)."""
    info = json.loads((synthetic_run.export.saved_model_dir.parent / "model_info.json").read_text())
    assert info["run_id"] == "run-synthetic" and info["trained_at"].endswith("Z")
    ping = client.get("/ping")
    assert ping.json()["model"]["run_id"] == "run-synthetic"
    answer = client.post("/invocations", json={"instances": [{"tracks": []}]})
    for response in (ping, answer):
        assert response.headers["x-model-run-id"] == "run-synthetic"
        assert response.headers["x-model-trained-at"] == info["trained_at"]
        assert response.headers["x-dbt-invocation-id"] == "unknown"  # the synthetic run has no fingerprint


def test_invocations_match_offline(client, expected):
    for body in request_bodies(expected, per_request=16):
        response = client.post("/invocations", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 200
        sent = json.loads(body)["instances"]
        predictions = response.json()["predictions"]
        assert len(predictions) == len(sent)
        for instance, prediction in zip(sent, predictions, strict=True):
            match = next(e for e in expected if list(e.tracks) == instance["tracks"])
            assert compare(match, prediction) is None, prediction
    last = client.post("/invocations", json={"instances": [{"tracks": []}]}).json()["predictions"][0]
    assert last["fallback"] is True and len(last["track_ids"]) == 10  # k defaults to 10


BAD_BODIES = [
    (b"{", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b"[1, 2]", 400, "expected a JSON object"),
    (b'{"instances": {}}', 400, "non-empty list"),
    (b'{"instances": []}', 400, "non-empty list"),
    (b'{"instances": [7]}', 400, "instances[0] must be an object"),
    (b'{"instances": [{"tracks": "abc"}]}', 400, "tracks must be a list"),
    (b'{"instances": [{"tracks": [1]}]}', 400, "tracks[0] must be a non-empty string"),
    (b'{"instances": [{"tracks": [""]}]}', 400, "tracks[0] must be a non-empty string"),
    (b'{"instances": [{"tracks": [], "k": "10"}]}', 400, "k must be an integer"),
    (b'{"instances": [{"tracks": [], "k": true}]}', 400, "k must be an integer"),
    (b'{"instances": [{"tracks": [], "k": 0}]}', 400, "between 1 and"),
    (json.dumps({"instances": [{"tracks": [], "k": MAX_K + 1}]}).encode(), 400, "between 1 and"),
    (b'{"instances": [{"tracks": [], "kk": 3}]}', 400, "unknown field"),
    (b'{"instances": [{"k": 3}]}', 400, "needs tracks"),
    (b'{"instances": [{"names": "a - b"}]}', 400, "names must be a list"),
    (b'{"instances": [{"names": ["no separator"]}]}', 400, 'names[0] must be "Artist - Title"'),
    (b'{"instances": [{"names": [{"artist": "a"}]}]}', 400, "names[0] needs a string title"),
    (b'{"instances": [{"names": [{"artist": "a", "title": " "}]}]}', 400, "empty title"),
    (b'{"instances": [{"names": [{"title": "t", "year": 1}]}]}', 400, "unknown field(s) ['year']"),
    (b'{"instances": [{"names": [7]}]}', 400, "names[0] must be"),
    (json.dumps({"instances": [{"names": ["a - " + "b" * 1100]}]}).encode(), 400, "longer than 1024"),
    (
        json.dumps({"instances": [{"tracks": ["a"] * 3000, "names": ["a - b"] * 2001}]}).encode(),
        413,
        "tracks + names has 5001 items",
    ),
    (
        json.dumps({"instances": [{"tracks": ["a"] * (MAX_TRACKS + 1)}]}).encode(),
        413,
        f"limit is {MAX_TRACKS}",
    ),
    (json.dumps({"instances": [{"tracks": []}] * (MAX_INSTANCES + 1)}).encode(), 413, "limit is 64"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "not valid JSON"),
    (b" " * (MAX_BODY_BYTES + 1), 413, "limit is 1048576"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_BODIES)
def test_bad_requests_get_a_4xx_json_error(client, body, status, message):
    response = client.post("/invocations", content=body)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/invocations").status_code == 405
    assert client.get("/invocations").json() == {"error": "Method Not Allowed"}
    assert client.post("/nowhere", content=b"{}").json() == {"error": "Not Found"}


def test_requests_are_logged(client, caplog):
    with caplog.at_level(logging.INFO, logger="ml.serve"):
        client.post("/invocations", json={"instances": [{"tracks": [], "k": 3}] * 2})
        client.post("/invocations", content=b"{")
        time.sleep(0.1)  # the server thread logs after sending the answer
    lines = [r.getMessage() for r in caplog.records if r.name == "ml.serve"]
    assert any("POST /invocations 200 instances=2" in line for line in lines)
    assert any("POST /invocations 400" in line for line in lines)


def test_serving_imports_no_training_code(synthetic_run):
    """The endpoint needs only the exported artefact, as the SageMaker container does; the numpy
    engine scores with ml.knn (the rule, numpy only) and never loads TensorFlow or Keras."""
    code = (
        "import sys, threadpoolctl; from ml.serve import load_model; "
        f"m = load_model({str(synthetic_run.export.tarball)!r}); "
        "bad = [n for n in sys.modules if n.split('.')[0] in ('gensim', 'tensorflow', 'keras') or n in "
        "('ml.train', 'ml.corpus', 'ml.evaluate', 'ml.export', 'ml.knn_keras')]; "
        "blas = {i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'}; "
        "print(m.n_tracks, m.engine, bad, blas)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3000 numpy [] {1}"  # one BLAS thread per query


def test_2000_requests_from_8_clients(live_url, expected):
    """Good and bad bodies mixed: no 5xx, no dropped connection, every good answer = offline."""
    good = [(b, None) for b in request_bodies(expected, per_request=4)]
    bad = [(body, status) for body, status, _ in BAD_BODIES if len(body) < 200_000]
    mix = [good[i % len(good)] if i % 3 else bad[i % len(bad)] for i in range(2000)]
    by_tracks = {tuple(e.tracks): e for e in expected}

    def client_run(worker: int) -> list[str]:
        problems = []
        with httpx.Client(base_url=live_url, timeout=30) as http:
            for body, bad_status in mix[worker::8]:
                try:
                    response = http.post(
                        "/invocations", content=body, headers={"content-type": "application/json"}
                    )
                except httpx.HTTPError as exc:
                    problems.append(f"connection: {exc!r}")
                    continue
                if bad_status is not None:
                    if response.status_code != bad_status or "error" not in response.json():
                        problems.append(f"bad body got {response.status_code}")
                    continue
                if response.status_code != 200:
                    problems.append(f"good body got {response.status_code}: {response.text[:100]}")
                    continue
                instances = json.loads(body)["instances"]
                for instance, prediction in zip(instances, response.json()["predictions"], strict=True):
                    verdict = compare(by_tracks[tuple(instance["tracks"])], prediction)
                    if verdict is not None:
                        problems.append(f"answer differs: {verdict}")
        return problems

    with ThreadPoolExecutor(max_workers=8) as pool:
        problems = [p for ps in pool.map(client_run, range(8)) for p in ps]
    assert problems == []
    assert sum(1 for _, s in mix if s is None) > 1300


def name_of(synthetic_run, track_id: str) -> tuple[str, str]:
    import pyarrow.parquet as pq

    table = pq.read_table(synthetic_run.model.run_dir / "track_names.parquet").to_pylist()
    return next((r["artist_name"], r["track_name"]) for r in table if r["track_id"] == track_id)


def test_names_and_ids_give_the_same_answer_with_artists_and_titles(client, synthetic_run):
    """A playlist by name (both spellings, padded and re-cased: dbt's normalisation) answers as the
    same playlist by id; the answer's artists/titles are the answered tracks' names."""
    import pyarrow.parquet as pq

    ids = synthetic_run.model.track_ids
    playlist = [ids[0], ids[7], ids[100]]  # ids[0]: the synthetic names give it an empty artist
    names = [name_of(synthetic_run, t) for t in playlist]
    assert names[0][0] == ""
    by_id = client.post("/invocations", json={"instances": [{"tracks": [*playlist, "nope"], "k": 12}]})
    by_name = client.post(
        "/invocations",
        json={
            "instances": [
                {
                    "names": [
                        {"artist": "", "title": f"  {names[0][1].upper()} "},
                        f"{names[1][0]} -  {names[1][1]}",  # an extra space: whitespace collapses
                        {"artist": names[2][0].lower(), "title": names[2][1]},
                        "Nobody - Unknown Song",  # not in the model: counted like an unknown id
                    ],
                    "k": 12,
                }
            ]
        },
    )
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json()
    prediction = by_id.json()["predictions"][0]
    assert prediction["n_unknown"] == 1 and len(prediction["track_ids"]) == 12
    every = {
        r["track_id"]: r
        for r in pq.read_table(synthetic_run.model.run_dir / "track_names.parquet").to_pylist()
    }
    assert prediction["artists"] == [every[t]["artist_name"] for t in prediction["track_ids"]]
    assert prediction["titles"] == [every[t]["track_name"] for t in prediction["track_ids"]]
    fallback = client.post("/invocations", json={"instances": [{"names": ["Nobody - Nothing"], "k": 3}]})
    answer = fallback.json()["predictions"][0]
    assert answer["fallback"] and answer["n_unknown"] == 1
    assert answer["titles"] == [every[t]["track_name"] for t in answer["track_ids"]]


def test_the_tensorflow_engine_answers_as_the_numpy_engine(synthetic_run, expected):
    """The SavedModel (what TF Serving runs on SageMaker) and the numpy engine: same ids, names,
    counts; scores equal within the parity tolerance."""
    from ml.deploy.check import SCORE_TOL
    from ml.endpoint_contract import parse_body

    fast = load_model(synthetic_run.export.tarball)
    saved = load_model(synthetic_run.export.tarball, engine="tensorflow")
    assert (fast.engine, saved.engine) == ("numpy", "tensorflow") and saved.n_tracks == 3000
    for body in request_bodies(expected, per_request=16):
        instances = parse_body(body)
        for a, b in zip(fast.predict(instances), saved.predict(instances), strict=True):
            assert {k: v for k, v in a.items() if k != "scores"} == {
                k: v for k, v in b.items() if k != "scores"
            }
            assert all(abs(x - y) <= SCORE_TOL for x, y in zip(a["scores"], b["scores"], strict=True))
