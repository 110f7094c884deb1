"""`ml train --target sagemaker` against moto's server on 127.0.0.1 (tests/moto_sagemaker.py).

moto runs no container. The tests play the container's part with the real code: they download
what the client uploaded (the Parquet marts and the package), unpack the package, run its entry
point `python -m ml.sagemaker_train` from the unpacked copy in SageMaker's folder layout (a real
tiny training run on the Parquet marts, no warehouse file), tar the model folder as SageMaker does
and put it where the job's ModelArtifacts point. Then the job is marked Completed and the client,
still in its wait loop, downloads the run folder; `ml export` must accept it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from moto_sagemaker import (
    ACCOUNT,
    REGION,
    finish_training_job,
    hold_training_jobs,
    moto_aws,
    reset,
    training_job_names,
    training_job_status,
)

from ml.config import REPO_ROOT, Paths
from ml.deploy.config import TrainingJobConfig
from ml.deploy.training_job import (
    REQUIREMENTS,
    TrainingJobError,
    deferred_interrupts,
    train_on_sagemaker,
)
from ml.deploy.training_job import (
    wait_for_job as wait_for_training_job,
)

ROLE = f"arn:aws:iam::{ACCOUNT}:role/music-recsys-train-test"
BUCKET = "music-recsys-test-training"
TINY_GRID = REPO_ROOT / "ml" / "grid_tiny.yml"


@pytest.fixture(scope="module")
def moto_url():
    with moto_aws() as url:
        yield url


def config(**changes) -> TrainingJobConfig:
    base = dict(
        region=REGION,
        role_arn=ROLE,
        bucket=BUCKET,
        prefix="music-recsys",
        instance_type="ml.m5.2xlarge",
        instance_count=1,
        volume_gb=30,
        max_run_s=3600,
        image="",
        framework="pytorch",
        framework_version="2.5",
        py_version="py311",
        poll_s=0.2,
    )
    return TrainingJobConfig(**{**base, **changes})


@pytest.fixture
def aws(moto_url, tmp_path, tiny_csv, tiny_warehouse):
    reset(moto_url)
    session = boto3.Session(region_name=REGION)
    session.client("s3").create_bucket(Bucket=BUCKET)
    paths = Paths(tiny_csv, tiny_warehouse, tmp_path / "models", tmp_path / "reports")
    return SimpleNamespace(
        url=moto_url, session=session, s3=session.client("s3"), sm=session.client("sagemaker"), paths=paths
    )


def wait_for_job(timeout_s: float = 180) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        names = training_job_names()
        if names:
            return names[0]
        time.sleep(0.1)
    raise AssertionError("no training job was created")


def download_prefix(s3, uri: str, dest: Path) -> None:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        target = dest / obj["Key"][len(prefix) :].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, obj["Key"], str(target))


# Run in the "container" before the entry point: a distribution that the job's requirements (and
# their dependencies) would not install cannot be imported, as in the job. Optional imports (e.g.
# smart_open trying boto3) then take their fallback; a missing requirement fails the run.
ONLY_REQUIREMENTS = """
import importlib.abc, importlib.metadata as md, json, os, runpy, sys
allowed = set(json.loads(os.environ["JOB_DISTRIBUTIONS"]))
owners = md.packages_distributions()
class OnlyTheJobsRequirements(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        dists = {d.lower().replace("_", "-") for d in owners.get(top, [])}
        if top != "ml" and dists and not dists & allowed:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the job's requirements)", name=name)
        return None
sys.meta_path.insert(0, OnlyTheJobsRequirements())
runpy.run_module("ml.sagemaker_train", run_name="__main__")
"""


def job_distributions() -> list[str]:
    """The requirements file's distributions and, recursively, what they require."""
    import importlib.metadata as md

    stack = [
        line.split("==")[0]
        for line in REQUIREMENTS.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    seen: set[str] = set()
    while stack:
        name = stack.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        stack += [re.match(r"[A-Za-z0-9_.-]+", r).group(0) for r in requires if "extra ==" not in r]
    return sorted(seen)


def play_the_container(aws, name: str, root: Path) -> SimpleNamespace:
    """What SageMaker and the job's entry command do, minus `pip install` (the test venv has the
    requirements, and ONLY_REQUIREMENTS hides every other distribution): channels ->
    /opt/ml/input/data, hyperparameters.json, run the unpacked package's `ml.sagemaker_train`, tar
    /opt/ml/model to the job's ModelArtifacts."""
    job = aws.sm.describe_training_job(TrainingJobName=name)
    sm_root = root / "opt_ml"
    for channel in job["InputDataConfig"]:
        dest = sm_root / "input" / "data" / channel["ChannelName"]
        download_prefix(aws.s3, channel["DataSource"]["S3DataSource"]["S3Uri"], dest)
    config_dir = sm_root / "input" / "config"
    config_dir.mkdir(parents=True)
    (config_dir / "hyperparameters.json").write_text(json.dumps(job["HyperParameters"]))
    work = root / "work"
    work.mkdir()
    with tarfile.open(sm_root / "input" / "data" / "code" / "package.tar.gz") as tar:
        tar.extractall(work, filter="data")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DUCKDB", "MODELS", "MARTS"))}
    proc = subprocess.run(
        [sys.executable, "-c", ONLY_REQUIREMENTS],
        cwd=work,
        env={
            **env,
            "SM_ROOT": str(sm_root),
            "PYTHONDONTWRITEBYTECODE": "1",
            "JOB_DISTRIBUTIONS": json.dumps(job_distributions()),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model_tar = root / "model.tar.gz"
    with tarfile.open(model_tar, "w:gz") as tar:  # SageMaker: tar -czf model.tar.gz -C /opt/ml/model .
        tar.add(sm_root / "model", arcname=".")
    bucket, _, key = job["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").partition("/")
    aws.s3.upload_file(str(model_tar), bucket, key)
    return SimpleNamespace(job=job, stdout=proc.stdout, model_dir=sm_root / "model", work=work)


def run_client_in_thread(aws, cfg: TrainingJobConfig, **kwargs) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def target() -> None:
        try:
            out["result"] = train_on_sagemaker(
                aws.paths, cfg, seed=7, search=True, grid=TINY_GRID, workers="grid", progress=False, **kwargs
            )
        except Exception as exc:  # handed to the test thread
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def test_a_training_job_trains_on_the_parquet_marts_and_its_run_folder_exports(aws, tmp_path):
    from ml import warehouse as wh
    from ml.corpus import load_playlists
    from ml.export import export_latest

    cfg = config()
    with hold_training_jobs():
        thread, out = run_client_in_thread(aws, cfg)
        name = wait_for_job()
        container = play_the_container(aws, name, tmp_path / "container")
        assert thread.is_alive() and training_job_status(name) == "InProgress"  # still waiting
        finish_training_job(name)
        thread.join(timeout=120)
    assert "error" not in out, out.get("error")
    result = out["result"]

    # The job: what deploy.yml asked for, on the framework image, with the entry command.
    job = container.job
    assert job["ResourceConfig"]["InstanceType"] == "ml.m5.2xlarge"
    assert job["ResourceConfig"]["InstanceCount"] == 1 and job["ResourceConfig"]["VolumeSizeInGB"] == 30
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("/pytorch-training:2.5-cpu-py311")
    assert job["AlgorithmSpecification"]["ContainerArguments"][0].endswith(
        "exec python -m ml.sagemaker_train"
    )
    assert job["RoleArn"] == ROLE and job["StoppingCondition"]["MaxRuntimeInSeconds"] == 3600
    assert job["HyperParameters"] == {
        "seed": "7",
        "search": "true",
        "grid": "ml/grid_tiny.yml",
        "workers": "grid",
    }
    # The package: the ml code and the training requirements, no bytecode.
    assert (container.work / "requirements.txt").read_text() == REQUIREMENTS.read_text()
    assert (container.work / "ml" / "sagemaker_train.py").exists()
    assert list(container.work.rglob("*.pyc")) == []  # none packaged (and the run wrote none: env)
    assert f"ml package: {container.work.resolve() / 'ml'}" in container.stdout  # the uploaded copy ran

    # The container trained on the Parquet marts: the same playlists as the local warehouse.
    con = wh.connect(aws.paths.duckdb_path)
    try:
        local_fingerprint = load_playlists(con).fingerprint()
    finally:
        con.close()
    run = result.run_dir
    assert run.parent == aws.paths.models_dir and (aws.paths.models_dir / "latest").resolve() == run
    fingerprint = json.loads((run / "fingerprint.json").read_text())
    assert fingerprint["data_fingerprint"] == local_fingerprint
    assert fingerprint["warehouse"].endswith("input/data/marts")
    assert json.loads((run / "metrics.json").read_text()) == json.loads(
        (container.model_dir / run.name / "metrics.json").read_text()
    )
    record = json.loads((run / "training_job.json").read_text())
    assert record["training_job_name"] == name and record["model_artifacts"] == result.model_artifacts
    assert not (aws.paths.models_dir / ".cache").exists()

    # `make export` continues as after a local run.
    exported = export_latest(aws.paths)
    assert exported.tarball.exists() and exported.tarball.parent == run


def test_a_failed_job_says_why_and_downloads_nothing(aws):
    with hold_training_jobs():
        thread, out = run_client_in_thread(aws, config())
        name = wait_for_job()
        finish_training_job(
            name, "Failed", "AlgorithmError: ValueError: need train, valid and test playlists"
        )
        thread.join(timeout=60)
    assert isinstance(out.get("error"), TrainingJobError)
    assert str(out["error"]) == (
        f"training job {name} Failed: AlgorithmError: ValueError: need train, valid and test playlists"
    )
    assert not aws.paths.models_dir.exists() or list(aws.paths.models_dir.iterdir()) == []


def test_no_role_no_job(aws):
    with pytest.raises(TrainingJobError, match="SAGEMAKER_ROLE_ARN"):
        train_on_sagemaker(aws.paths, config(role_arn=""), seed=7, search=False, progress=False)
    assert training_job_names() == []


def test_ctrl_c_stops_the_training_job(aws, tmp_path):
    """The real command in a subprocess; SIGINT while it waits -> StopTrainingJob, exit 130."""
    deploy_yml = tmp_path / "deploy.yml"
    deploy_yml.write_text(
        f"sagemaker:\n  region: {REGION}\n  role_arn: {ROLE}\n  bucket: {BUCKET}\n"
        "training:\n  instance_type: ml.m5.xlarge\n  poll_s: 0.2\n"
    )
    env = {
        **os.environ,
        "DEPLOY_CONFIG": str(deploy_yml),
        "DUCKDB_PATH": str(aws.paths.duckdb_path),
        "MODELS_DIR": str(aws.paths.models_dir),
        "RAW_CSV": str(aws.paths.raw_csv),
    }
    with hold_training_jobs():
        proc = subprocess.Popen(
            [sys.executable, "-m", "ml.cli", "train", "--target", "sagemaker", "--grid", str(TINY_GRID)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl-C as in a terminal even when the suite itself runs under nohup (SIGINT ignored and
            # inherited: the command would rightly ignore it, and this test would wait 120 s for nothing)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        name = wait_for_job()
        time.sleep(1.0)  # let it reach the wait loop
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert f"error: interrupted: training job {name} stopped (status Stopped); nothing downloaded" in stderr
    assert "Traceback" not in stderr
    assert training_job_status(name) == "Stopped"
    assert not aws.paths.models_dir.exists() or list(aws.paths.models_dir.iterdir()) == []


def test_the_training_requirements_are_pinned_like_constraints():
    pins = dict(
        line.split("==") for line in (REPO_ROOT / "constraints.txt").read_text().splitlines() if "==" in line
    )
    lower = {k.lower(): v for k, v in pins.items()}
    for line in REQUIREMENTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            assert lower[name.lower()] == version, line


def test_an_unreachable_aws_is_one_line_naming_the_step(aws, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    session = boto3.Session(region_name=REGION)
    with pytest.raises(
        TrainingJobError, match=r"^upload to S3 failed \(EndpointConnectionError: .*check the AWS"
    ):
        train_on_sagemaker(aws.paths, config(), seed=7, search=False, progress=False, session=session)


def test_a_ctrl_c_during_an_aws_call_is_counted_and_stops_the_job_at_the_next_poll():
    """SIGINT inside deferred_interrupts raises nothing (a client library could swallow it); the
    wait loop sees the count before its next call, stops the job, and a second Ctrl-C ends the wait."""

    class Job:
        training_job_name, training_job_status, refreshes, stops = "j", "InProgress", 0, 0

        def refresh(self):
            self.refreshes += 1
            if self.refreshes == 2:
                os.kill(os.getpid(), signal.SIGINT)  # arrives "inside" the AWS call
            if self.refreshes == 4:
                os.kill(os.getpid(), signal.SIGINT)  # the second one, while the stop is awaited

        def stop(self):
            self.stops += 1

    job = Job()
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in an interactive shell
    with deferred_interrupts() as interrupts:
        with pytest.raises(TrainingJobError, match="interrupted: training job j stopped"):
            wait_for_training_job(job, 0.01, False, sleep=lambda s: None, interrupts=interrupts)
        assert interrupts() == 2
    assert job.stops == 1 and job.refreshes == 4  # polled once after the first, stopped, then left
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is restored
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a nohup'd process ignores Ctrl-C: left so
    with deferred_interrupts() as interrupts:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and interrupts() == 0
    signal.signal(signal.SIGINT, before)
