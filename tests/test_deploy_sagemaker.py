"""`ml deploy --target sagemaker` against moto's server on 127.0.0.1 (see tests/moto_sagemaker.py).

The endpoint's answers are queued in moto. For a deploy that must pass, they are what the shipped
container code would answer: `code/inference.py` from the tarball (input_handler/output_handler)
around the exported SavedModel, standing in for TensorFlow Serving's REST predict. For a deploy
that must fail, they are the same code over another run's vectors: a real wrong answer that the
check has to catch.
"""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from pathlib import Path
from types import SimpleNamespace

import boto3
import numpy as np
import pytest
from moto_sagemaker import ACCOUNT, REGION, moto_aws, queue_invoke_results, reset

from ml.deploy import check, deploy, undeploy
from ml.deploy.check import expected_answers, request_bodies
from ml.deploy.config import DeployConfig, LocalConfig, SageMakerConfig

ENDPOINT = "music-recsys-test"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/music-recsys-test"
BUCKET = "music-recsys-test-models"
N_CHECK = 20


@pytest.fixture(scope="module")
def moto_url():
    """moto's server on a free 127.0.0.1 port; SDKs pointed at it, dummy credentials in env only."""
    with moto_aws() as url:
        yield url


@pytest.fixture
def aws(moto_url, tmp_path):
    reset(moto_url)
    session = boto3.Session(region_name=REGION)
    session.client("s3").create_bucket(Bucket=BUCKET)
    sagemaker = SageMakerConfig(
        REGION, ROLE, BUCKET, "music-recsys", ENDPOINT, "ml.m5.large", 1, "2.20", 60, 1
    )
    cfg = DeployConfig(LocalConfig("127.0.0.1", 0, tmp_path / "run", 60), sagemaker, check_playlists=N_CHECK)
    return SimpleNamespace(
        url=moto_url,
        cfg=cfg,
        sm=session.client("sagemaker"),
        s3=session.client("s3"),
        run_dir=tmp_path / "run",
    )


class TfServingStandIn:
    """The SageMaker TF Serving container's path for one request: inference.py around the model."""

    def __init__(self, tarball: Path, tmp: Path) -> None:
        import tensorflow as tf

        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        spec = importlib.util.spec_from_file_location("inference", tmp / "code" / "inference.py")
        self.inference = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.inference)
        self.loaded = tf.saved_model.load(str(tmp / "1"))

    def answer(self, body: bytes) -> str:
        import tensorflow as tf

        context = SimpleNamespace(request_content_type="application/json")
        request = json.loads(self.inference.input_handler(io.BytesIO(body), context))
        inputs = request["inputs"]
        out = self.loaded.signatures[request["signature_name"]](
            tracks=tf.constant(inputs["tracks"]),
            k=tf.constant(inputs["k"], dtype=tf.int32),
            name_tokens=tf.constant(inputs["name_tokens"]),
        )
        # TensorFlow Serving's REST answer: columnar "outputs", strings as UTF-8 text, floats as JSON.
        outputs = {
            name: (
                np.char.decode(value.numpy().astype(bytes), "utf-8")
                if value.dtype == tf.string
                else value.numpy()
            ).tolist()
            for name, value in out.items()
        }
        response = SimpleNamespace(status_code=200, content=json.dumps({"outputs": outputs}).encode())
        body_out, content_type = self.inference.output_handler(response, context)
        assert content_type == "application/json"
        return body_out


@pytest.fixture(scope="module")
def container(synthetic_run, tmp_path_factory):
    return TfServingStandIn(synthetic_run.export.tarball, tmp_path_factory.mktemp("container"))


@pytest.fixture(scope="module")
def wrong_container(tmp_path_factory):
    """The same code over another run (same ids, other vectors): plausible but wrong answers."""
    from synthetic_model import write_synthetic_model

    from ml.config import Paths
    from ml.export import export_latest

    root = tmp_path_factory.mktemp("wrong")
    write_synthetic_model(root / "models" / "run", seed=1234)
    (root / "models" / "latest").symlink_to("run")
    result = export_latest(
        Paths(root / "r", root / "d", root / "models", root / "rep"), selfcheck_playlists=0
    )
    return TfServingStandIn(result.tarball, root / "container")


def check_bodies(synthetic_run) -> list[bytes]:
    expected, _ = expected_answers(synthetic_run.model.run_dir, N_CHECK)
    return request_bodies(expected)


def queue_answers(aws, synthetic_run, container) -> None:
    queue_invoke_results(aws.url, [container.answer(b) for b in check_bodies(synthetic_run)])


def endpoint_config_of(aws) -> str:
    return aws.sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]


def names(aws) -> tuple[list[str], list[str]]:
    configs = [c["EndpointConfigName"] for c in aws.sm.list_endpoint_configs()["EndpointConfigs"]]
    models = [m["ModelName"] for m in aws.sm.list_models()["Models"]]
    return sorted(configs), sorted(models)


def s3_keys(aws) -> list[str]:
    return [o["Key"] for o in aws.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_the_container_stand_in_answers_like_the_local_model(synthetic_run, container):
    """inference.py + SavedModel (the SageMaker path) == ml serve's predictions (the local path)."""
    from ml.endpoint_contract import parse_body
    from ml.serve import load_model

    model = load_model(synthetic_run.export.saved_model_dir)
    for body in check_bodies(synthetic_run):
        assert json.loads(container.answer(body)) == {"predictions": model.predict(parse_body(body))}


def test_the_handler_answers_names_as_ids_with_artists_and_titles(synthetic_run, container):
    """code/inference.py resolves names with dbt's identity rule (no warehouse in the container):
    the same answer as for the ids, with names; unknown names counted."""
    from synthetic_model import synthetic_name

    ids = synthetic_run.model.track_ids
    rows = [0, 7, 100]
    by_id = json.loads(
        container.answer(
            json.dumps({"instances": [{"tracks": [ids[r] for r in rows] + ["x"], "k": 10}]}).encode()
        )
    )
    names = [synthetic_name(r) for r in rows]
    body = {"instances": [{"names": [f"{a} - {t}" for a, t in names] + ["No One - Nothing"], "k": 10}]}
    by_name = json.loads(container.answer(json.dumps(body).encode()))
    assert by_id == by_name
    prediction = by_name["predictions"][0]
    assert prediction["n_unknown"] == 1 and len(prediction["artists"]) == len(prediction["titles"]) == 10
    assert [synthetic_name(ids.index(t)) for t in prediction["track_ids"]] == list(
        zip(prediction["artists"], prediction["titles"], strict=True)
    )


def test_create(aws, synthetic_run, container):
    queue_answers(aws, synthetic_run, container)
    result = deploy("sagemaker", synthetic_run.paths, aws.cfg)
    assert result.success and result.action == "created", result.summary()
    assert result.check.n_identical + result.check.n_ties == N_CHECK
    assert result.image.endswith("/tensorflow-inference:2.20-cpu-py312")

    endpoint = aws.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == result.release.config
    variant = aws.sm.describe_endpoint_config(EndpointConfigName=result.release.config)["ProductionVariants"][
        0
    ]
    assert variant["InstanceType"] == "ml.m5.large" and variant["ModelName"] == result.release.model
    model = aws.sm.describe_model(ModelName=result.release.model)
    assert model["PrimaryContainer"]["Image"] == result.image
    assert model["PrimaryContainer"]["ModelDataUrl"] == result.release.s3_uri
    assert model["ExecutionRoleArn"] == ROLE
    key = result.release.s3_uri.removeprefix(f"s3://{BUCKET}/")
    uploaded = aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert uploaded == synthetic_run.export.tarball.read_bytes()
    state = json.loads((aws.run_dir / "sagemaker.json").read_text())
    assert state["current"]["config"] == result.release.config

    # `ml check --target sagemaker` goes through sagemaker-runtime InvokeEndpoint as well.
    queue_answers(aws, synthetic_run, container)
    assert check("sagemaker", synthetic_run.paths, n_playlists=N_CHECK, config=aws.cfg).success


def test_update_is_blue_green_and_cleans_the_old_release(aws, synthetic_run, container):
    queue_answers(aws, synthetic_run, container)
    first = deploy("sagemaker", synthetic_run.paths, aws.cfg)
    queue_answers(aws, synthetic_run, container)
    second = deploy("sagemaker", synthetic_run.paths, aws.cfg)
    assert second.success and second.action == "updated", second.summary()
    assert second.previous_config == first.release.config
    assert endpoint_config_of(aws) == second.release.config
    assert names(aws) == ([second.release.config], [second.release.model])
    assert s3_keys(aws) == [second.release.s3_uri.removeprefix(f"s3://{BUCKET}/")]


def test_rollback_after_a_failed_check(aws, synthetic_run, container, wrong_container):
    queue_answers(aws, synthetic_run, container)
    first = deploy("sagemaker", synthetic_run.paths, aws.cfg)
    queue_answers(aws, synthetic_run, wrong_container)
    bad = deploy("sagemaker", synthetic_run.paths, aws.cfg)
    assert not bad.success and bad.action == "rolled back", bad.summary()
    assert bad.check.mismatches and bad.check.error is None
    assert endpoint_config_of(aws) == first.release.config
    assert aws.sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "InService"
    assert names(aws) == ([first.release.config], [first.release.model])
    assert s3_keys(aws) == [first.release.s3_uri.removeprefix(f"s3://{BUCKET}/")]
    state = json.loads((aws.run_dir / "sagemaker.json").read_text())
    assert state["current"]["config"] == first.release.config


def test_a_failed_check_on_a_new_endpoint_leaves_nothing(aws, synthetic_run, wrong_container):
    queue_answers(aws, synthetic_run, wrong_container)
    result = deploy("sagemaker", synthetic_run.paths, aws.cfg)
    assert not result.success and result.action == "failed"
    assert aws.sm.list_endpoints()["Endpoints"] == []
    assert names(aws) == ([], []) and s3_keys(aws) == []


def test_a_canned_non_answer_fails_the_check(aws, synthetic_run):
    """moto's default answer ("body") is not JSON predictions: the check must say so, not pass."""
    result = deploy("sagemaker", synthetic_run.paths, aws.cfg)
    assert not result.success and result.check.error and "request 1" in result.check.error


def test_undeploy_deletes_what_deploy_created(aws, synthetic_run, container):
    queue_answers(aws, synthetic_run, container)
    assert deploy("sagemaker", synthetic_run.paths, aws.cfg).success
    message = undeploy("sagemaker", synthetic_run.paths, aws.cfg)
    assert f"deleted endpoint {ENDPOINT}" in message
    assert aws.sm.list_endpoints()["Endpoints"] == []
    assert names(aws) == ([], []) and s3_keys(aws) == []
    assert not (aws.run_dir / "sagemaker.json").exists()
    assert "nothing to undeploy" in undeploy("sagemaker", synthetic_run.paths, aws.cfg)


def test_no_role_no_deploy(aws, synthetic_run):
    from dataclasses import replace

    cfg = replace(aws.cfg, sagemaker=replace(aws.cfg.sagemaker, role_arn=""))
    result = deploy("sagemaker", synthetic_run.paths, cfg)
    assert not result.success and "SAGEMAKER_ROLE_ARN" in result.summary()
    assert s3_keys(aws) == [] and names(aws) == ([], [])


def test_default_bucket_is_created_per_account_and_region(aws, synthetic_run, container):
    from dataclasses import replace

    cfg = replace(aws.cfg, sagemaker=replace(aws.cfg.sagemaker, bucket=""))
    queue_answers(aws, synthetic_run, container)
    result = deploy("sagemaker", synthetic_run.paths, cfg)
    assert result.success, result.summary()
    assert result.release.s3_uri.startswith(f"s3://sagemaker-{REGION}-{ACCOUNT}/music-recsys/{ENDPOINT}-")


def test_scores_survive_the_json_round_trip(synthetic_run, container):
    body = check_bodies(synthetic_run)[0]
    predictions = json.loads(container.answer(body))["predictions"]
    assert all(np.all(np.diff(p["scores"]) <= 0) for p in predictions if not p["fallback"])


def test_waiting_needs_the_new_config_in_service(aws, synthetic_run, container):
    """Right after an update the old config may still answer InService: that is not done."""
    from dataclasses import replace

    from sagemaker.core.resources import Endpoint

    from ml.deploy.sagemaker import _wait_serving

    queue_answers(aws, synthetic_run, container)
    result = deploy("sagemaker", synthetic_run.paths, aws.cfg)
    endpoint = Endpoint.get(endpoint_name=ENDPOINT, session=boto3.Session(region_name=REGION), region=REGION)
    _wait_serving(endpoint, result.release.config, aws.cfg.sagemaker)  # returns at once
    quick = replace(aws.cfg.sagemaker, wait_timeout_s=0.3, poll_s=0.1)
    with pytest.raises(TimeoutError, match="not InService on some-other-config"):
        _wait_serving(endpoint, "some-other-config", quick)
