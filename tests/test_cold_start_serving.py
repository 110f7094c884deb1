"""A playlist's name at the endpoint: the contract, the exported model, `ml serve` over HTTP and the
SageMaker handler (code/inference.py run by a bare interpreter, as the container does), against
the offline rule of ml.cold_start on the trained tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from ml.cold_start import NameScoring
from ml.endpoint_contract import MAX_NAME_CHARS, ContractError, model_inputs, parse_payload
from ml.parity import Expected, compare
from ml.run_dir import RunDir

# --- the contract ---------------------------------------------------------------------------------


def test_a_name_alone_or_with_tracks_is_a_valid_instance_and_is_tokenized() -> None:
    instances = parse_payload(
        {
            "instances": [
                {"name": "Summer Chill 🔥", "k": 5},
                {"tracks": ["a"], "name": "Starred"},
                {"tracks": []},
            ]
        }
    )
    assert [(i.name, i.tracks, i.k) for i in instances] == [
        ("Summer Chill 🔥", (), 5),
        ("Starred", ("a",), 10),
        ("", (), 10),
    ]
    inputs = model_inputs(instances)
    assert inputs["names"] == [["name:summer", "name:chill", "name:🔥"], ["", "", ""], ["", "", ""]]
    assert inputs["tracks"] == [[""], ["a"], [""]]


@pytest.mark.parametrize(
    ("instance", "message"),
    [
        ({"k": 10}, 'needs "tracks"'),
        ({"name": 3}, "name must be a string"),
        ({"name": "x" * (MAX_NAME_CHARS + 1)}, f"at most {MAX_NAME_CHARS}"),
        ({"name": "rock", "title": "x"}, "unknown field"),
    ],
)
def test_a_bad_name_is_a_400_naming_the_field(instance: dict, message: str) -> None:
    with pytest.raises(ContractError, match=message) as err:
        parse_payload({"instances": [instance]})
    assert err.value.status == 400


# --- the exported tiny model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scoring(tiny_export) -> NameScoring:
    return NameScoring.from_run(RunDir(tiny_export.run_dir))


def _expected(scoring: NameScoring, track_ids: list[str], name: str, k: int) -> Expected:
    from ml.name_tokens import name_keys

    row_of = {t: i for i, t in enumerate(scoring.track_ids)}
    ref = scoring.rank([row_of[t] for t in track_ids], name_keys(name), k + 1)
    assert ref is not None
    n = min(k, ref.rows.shape[1])
    return Expected(
        tracks=tuple(track_ids),
        track_ids=tuple(scoring.track_ids[r] for r in ref.rows[0][:n]),
        scores=tuple(float(s) for s in ref.scores[0][:n]),
        n_unknown=0,
        fallback=False,
        tie_score=float(ref.scores[0][n]) if ref.scores.shape[1] > n else -np.inf,
    )


def test_the_export_carries_the_name_table_and_the_tokenizer(tiny_export, scoring) -> None:
    assert tiny_export.export.selfcheck_names > 0  # name queries agreed with ml.cold_start
    with tarfile.open(tiny_export.export.tarball) as tar:
        names = set(tar.getnames())
    assert {"code/inference.py", "code/name_tokens.py"} <= names
    assert len(scoring.names.keys) > 0


@pytest.fixture(scope="module")
def served(tiny_export):
    """`ml serve`'s app over the exported tarball, on a real 127.0.0.1 port (uvicorn in a thread)."""
    import threading
    import time

    import uvicorn

    from ml.serve import create_app, load_model

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(load_model(tiny_export.export.tarball)),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client
    server.should_exit = True
    thread.join(timeout=10)


def test_local_serve_answers_a_name_alone_and_with_tracks_like_the_offline_rule(served, scoring) -> None:
    top = [str(k).removeprefix("name:") for k in scoring.names.keys[:5]]
    track = scoring.track_ids[0]
    instances = [{"name": f"My {t.title()} Mix", "k": 10} for t in top]
    instances += [{"name": top[0], "tracks": [track], "k": 10}, {"name": "Starred", "k": 5}]
    response = served.post("/invocations", json={"instances": instances})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    for instance, prediction in zip(instances[:-1], predictions[:-1], strict=True):
        assert prediction["fallback"] is False and prediction["n_name_tokens"] >= 1
        expected = _expected(scoring, instance.get("tracks", []), instance["name"], 10)
        assert compare(expected, prediction) in (None, "tie"), instance
        assert not set(instance.get("tracks", [])) & set(prediction["track_ids"])  # seeds excluded
    # an auto playlist's name carries no token: the popular tracks, said so
    starred = predictions[-1]
    assert starred["fallback"] is True and starred["n_name_tokens"] == 0 and len(starred["track_ids"]) == 5
    # a client's mistake about the name is a 400, not a 5xx
    bad = served.post("/invocations", json={"instances": [{"name": ["rock"]}]})
    assert bad.status_code == 400 and "name" in bad.json()["error"]


def test_the_sagemaker_handler_tokenizes_a_name_without_the_package(tiny_export, scoring, tmp_path) -> None:
    """code/inference.py under `python -I -S` (no site-packages, so no `ml`): it loads
    code/name_tokens.py by path; its TF Serving body, fed to the model, answers the name."""
    import tensorflow as tf

    with tarfile.open(tiny_export.export.tarball) as tar:
        tar.extractall(tmp_path, filter="data")
    token = str(scoring.names.keys[0]).removeprefix("name:")
    body = json.dumps({"instances": [{"name": f"{token.upper()} für immer 🎧", "k": 7}]})
    script = (
        "import importlib.util, io, json, sys, types\n"
        "spec = importlib.util.spec_from_file_location('inference', sys.argv[1])\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "assert 'ml' not in sys.modules\n"
        "ctx = types.SimpleNamespace(request_content_type='application/json')\n"
        "print(m.input_handler(io.BytesIO(sys.argv[2].encode()), ctx))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script, str(tmp_path / "code" / "inference.py"), body],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    request = json.loads(done.stdout)
    inputs = request["inputs"]
    assert inputs["names"] == [[f"name:{token}", "name:immer", "name:🎧"]]  # `für` folds to a stop word
    loaded = tf.saved_model.load(str(tmp_path / "1"))
    out = loaded.signatures[request["signature_name"]](
        tracks=tf.constant(inputs["tracks"]),
        k=tf.constant(inputs["k"], dtype=tf.int32),
        names=tf.constant(inputs["names"]),
    )
    outputs = {
        name: (value.numpy().astype(str) if value.dtype == tf.string else value.numpy()).tolist()
        for name, value in out.items()
    }
    spec_path = tmp_path / "code" / "inference.py"
    import importlib.util

    spec = importlib.util.spec_from_file_location("inference_for_output", spec_path)
    assert spec is not None and spec.loader is not None
    inference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(inference)
    response = SimpleNamespace(status_code=200, content=json.dumps({"outputs": outputs}).encode())
    answer, content_type = inference.output_handler(response, SimpleNamespace())
    prediction = json.loads(answer)["predictions"][0]
    assert content_type == "application/json" and len(prediction["track_ids"]) == 7
    assert prediction["n_name_tokens"] >= 1 and prediction["fallback"] is False
    expected = _expected(scoring, [], f"{token.upper()} für immer 🎧", 7)
    assert compare(expected, prediction) in (None, "tie")
