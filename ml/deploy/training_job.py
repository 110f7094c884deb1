"""`ml train --target sagemaker`: the same `ml train` as a SageMaker training job.

Steps (each one function below):
1. marts: the Parquet marts (MARTS_DIR, else written from the DuckDB warehouse, ml.marts_parquet);
2. package: a tarball of the `ml` package, ml/deploy/training_requirements.txt as requirements.txt
   and the search grid (when not one of the package's own);
3. upload both to s3://<bucket>/<prefix>/training/<job>/{marts,code}/ (boto3);
4. create the job (SageMaker SDK 3.x `sagemaker.core.resources.TrainingJob`) on a framework image
   (TrainingJobConfig: the SDK's image lookup, or an explicit URI): its entry command unpacks the
   package, installs the requirements and runs `python -m ml.sagemaker_train`;
5. wait, polling DescribeTrainingJob (a status line on a terminal, nothing in a log); Ctrl-C sends
   StopTrainingJob and waits until the job has stopped;
6. download model.tar.gz and unpack its run folder into models/<run_id>/ (models/latest points at
   it), with training_job.json beside the artefacts: `make export deploy` continues from there.
Credentials come from the standard AWS chain; none are read from or written to the repository.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import signal
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.config import REPO_ROOT, Paths
from ml.deploy.config import TrainingJobConfig

REQUIREMENTS = Path(__file__).with_name("training_requirements.txt")
TRAINING_JOB_FILE = "training_job.json"
CODE_CHANNEL, MARTS_CHANNEL = "code", "marts"
PACKAGE = "package.tar.gz"
# The job's command: fixed text (no variable reaches the shell from outside the container).
ENTRY_COMMAND = (
    'set -euo pipefail; work=/tmp/music-recsys; mkdir -p "$work"; '
    f'tar -xzf "/opt/ml/input/data/{CODE_CHANNEL}/{PACKAGE}" -C "$work"; cd "$work"; '
    "python -m pip install --quiet --no-cache-dir --disable-pip-version-check -r requirements.txt; "
    "exec python -m ml.sagemaker_train"
)
TERMINAL = ("Completed", "Failed", "Stopped")


class TrainingJobError(RuntimeError):
    """The job could not be created, failed, was stopped, or left no usable run folder."""


@dataclass(frozen=True)
class RemoteTrainResult:
    job_name: str
    status: str
    run_dir: Path
    image: str
    model_artifacts: str
    billable_s: int | None
    steps: tuple[str, ...]

    def summary(self) -> str:
        lines = [f"sagemaker: {s}" for s in self.steps]
        lines.append(
            f"run {self.run_dir.name} -> {self.run_dir} (training job {self.job_name}, {self.status})"
        )
        try:
            metrics = json.loads((self.run_dir / "metrics.json").read_text())
            test = metrics.get("test", {})
            lines.append("test: " + ", ".join(f"{k} {v}" for k, v in list(test.items())[:4]))
        except (OSError, ValueError):
            pass
        return "\n".join(lines)


def training_image(cfg: TrainingJobConfig) -> str:
    """cfg.image, else the SDK's framework training image (CPU) for the instance type."""
    if cfg.image:
        return cfg.image
    from sagemaker.core import image_uris

    return image_uris.retrieve(
        cfg.framework,
        region=cfg.region,
        version=cfg.framework_version,
        py_version=cfg.py_version,
        image_scope="training",
        instance_type=cfg.instance_type,
    )


def job_name(cfg: TrainingJobConfig) -> str:
    return f"{cfg.prefix.strip('/').replace('/', '-')[:30]}-train-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


# --- 1-3: marts, package, upload ----------------------------------------------------------------


def prepare_marts(paths: Paths, work: Path) -> Path:
    """The Parquet marts to upload: MARTS_DIR as given (checked), else written from the warehouse."""
    from ml.marts_parquet import connect, write_marts

    if paths.marts_dir is not None:
        connect(paths.marts_dir).close()  # the reader's checks: relations, columns, manifest
        return paths.marts_dir
    return write_marts(paths.duckdb_path, work / "marts").path


def build_package(out: Path, grid: Path | None) -> tuple[Path, str]:
    """package.tar.gz (ml/, requirements.txt, and the grid when it lives outside ml/) and the
    grid's path inside it ("" for the default grid)."""
    ml_dir = REPO_ROOT / "ml"
    grid_arg = ""
    if grid is not None:
        grid = grid.resolve()
        grid_arg = str(grid.relative_to(REPO_ROOT)) if grid.is_relative_to(ml_dir) else "grid.yml"

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if "__pycache__" in info.name or info.name.endswith(".pyc"):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    with tarfile.open(out, "w:gz") as tar:
        tar.add(ml_dir, arcname="ml", filter=keep)
        tar.add(REQUIREMENTS, arcname="requirements.txt", filter=keep)
        if grid is not None and grid_arg == "grid.yml":
            tar.add(grid, arcname="grid.yml", filter=keep)
    return out, grid_arg


def upload_folder(s3: Any, folder: Path, bucket: str, prefix: str) -> str:
    """Every file under `folder` to s3://bucket/prefix/<relative path>; returns the prefix URI."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return f"s3://{bucket}/{prefix}/"


# --- 4: the job ----------------------------------------------------------------------------------


def create_job(
    name: str,
    image: str,
    cfg: TrainingJobConfig,
    uris: dict[str, str],
    hp: dict[str, Any],
    session: Any,
):
    """CreateTrainingJob: channels `code` and `marts` (uris), output to uris["output"]."""
    from sagemaker.core.resources import TrainingJob
    from sagemaker.core.shapes import (
        AlgorithmSpecification,
        Channel,
        DataSource,
        OutputDataConfig,
        ResourceConfig,
        S3DataSource,
        StoppingCondition,
    )

    def channel(channel_name: str, uri: str) -> Channel:
        source = S3DataSource(
            s3_data_type="S3Prefix", s3_uri=uri, s3_data_distribution_type="FullyReplicated"
        )
        return Channel(
            channel_name=channel_name, data_source=DataSource(s3_data_source=source), input_mode="File"
        )

    return TrainingJob.create(
        training_job_name=name,
        role_arn=cfg.role_arn,
        algorithm_specification=AlgorithmSpecification(
            training_image=image,
            training_input_mode="File",
            container_entrypoint=["/bin/bash", "-c"],
            container_arguments=[ENTRY_COMMAND],
        ),
        hyper_parameters={k: str(v) for k, v in hp.items()},
        input_data_config=[
            channel(CODE_CHANNEL, uris[CODE_CHANNEL]),
            channel(MARTS_CHANNEL, uris[MARTS_CHANNEL]),
        ],
        output_data_config=OutputDataConfig(s3_output_path=uris["output"]),
        resource_config=ResourceConfig(
            instance_type=cfg.instance_type,
            instance_count=cfg.instance_count,
            volume_size_in_gb=cfg.volume_gb,
        ),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=cfg.max_run_s),
        session=session,
        region=cfg.region,
    )


# --- 5: waiting ----------------------------------------------------------------------------------


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[Callable[[], int]]:
    """Ctrl-C counted, not raised, while AWS calls run: a KeyboardInterrupt raised inside a client
    library's call (a retry, a describe after create) could be swallowed there and leave the job
    running unwatched. Yields the number of Ctrl-C so far; the waiting loop checks it between calls.
    Outside the main thread, or where SIGINT is ignored (a process started under nohup inherits
    that), nothing is installed and the count stays 0."""
    hits: list[int] = []
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) in (
        signal.SIG_IGN,
        None,
    ):
        yield lambda: 0  # no handler here, or Ctrl-C ignored on purpose (nohup): leave it so
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: hits.append(signum))
    try:
        yield lambda: len(hits)
    finally:
        signal.signal(signal.SIGINT, previous)


def wait_for_job(
    job: Any,
    poll_s: float,
    progress: bool,
    sleep: Callable[[float], None] = time.sleep,
    interrupts: Callable[[], int] = lambda: 0,
) -> str:
    """Poll until the job is Completed, Failed or Stopped; returns that status. On Ctrl-C (raised, or
    counted by `interrupts`, `deferred_interrupts`): stop the job, wait for it to stop (a second
    Ctrl-C stops waiting), and raise TrainingJobError saying so."""
    start = time.monotonic()
    shown = ""
    try:
        while True:
            if interrupts():
                raise KeyboardInterrupt
            job.refresh()
            status, secondary = str(job.training_job_status), str(getattr(job, "secondary_status", ""))
            if progress:
                line = f"\rtraining job {job.training_job_name}: {status} / {secondary}  {time.monotonic() - start:,.0f} s"
                sys.stderr.write(line.ljust(len(shown)))
                sys.stderr.flush()
                shown = line
            if status in TERMINAL:
                return status
            sleep(poll_s)
    except KeyboardInterrupt:
        if progress:
            sys.stderr.write("\n")
        seen = interrupts()
        job.stop()
        deadline = time.monotonic() + 300
        try:
            while str(job.training_job_status) not in TERMINAL and time.monotonic() < deadline:
                if interrupts() > seen:
                    break  # a second Ctrl-C: StopTrainingJob is sent, stop waiting for it
                time.sleep(min(poll_s, 5))
                job.refresh()
        except KeyboardInterrupt:  # a second Ctrl-C: StopTrainingJob is sent, stop waiting for it
            pass
        raise TrainingJobError(
            f"interrupted: training job {job.training_job_name} stopped (status {job.training_job_status}); "
            "nothing downloaded"
        ) from None
    finally:
        if progress and shown:
            sys.stderr.write("\n")


# --- 6: download ---------------------------------------------------------------------------------


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _member_path(name: str) -> Path:
    return Path(name[2:] if name.startswith("./") else name)


def run_folder_of(tar: tarfile.TarFile) -> str:
    """The run id inside model.tar.gz: where `latest` points, else the one folder with vectors.kv."""
    link = next((m for m in tar.getmembers() if str(_member_path(m.name)) == "latest" and m.issym()), None)
    if link is not None:
        return Path(link.linkname).name
    runs = sorted({_member_path(n).parts[0] for n in tar.getnames() if _member_path(n).name == "vectors.kv"})
    if len(runs) != 1:
        raise TrainingJobError(f"model.tar.gz holds {len(runs)} run folders ({runs}); expected one")
    return runs[0]


def download_run(s3: Any, artifacts_uri: str, models_dir: Path) -> Path:
    """Unpack the run folder of model.tar.gz into models_dir/<run_id> (atomically) and point latest."""
    from ml.run_dir import RunDir, point_latest

    bucket, key = split_s3(artifacts_uri)
    buffer = io.BytesIO()
    s3.download_fileobj(bucket, key, buffer)
    buffer.seek(0)
    models_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=buffer, mode="r:gz") as tar:
        run_id = run_folder_of(tar)
        target = models_dir / run_id
        if target.exists():
            raise TrainingJobError(f"{target} exists already: not overwriting a run folder")
        members = [m for m in tar.getmembers() if _member_path(m.name).parts[:1] == (run_id,)]
        with tempfile.TemporaryDirectory(dir=models_dir, prefix=".download-") as tmp:
            tar.extractall(tmp, members=members, filter="data")
            for needed in (RunDir.VECTORS, RunDir.METRICS, RunDir.POPULARITY):
                if not (Path(tmp) / run_id / needed).exists():
                    raise TrainingJobError(f"{artifacts_uri}: run folder {run_id} lacks {needed}")
            (Path(tmp) / run_id).rename(target)
    point_latest(models_dir, target)
    return target


# --- the whole thing -----------------------------------------------------------------------------


def train_on_sagemaker(
    paths: Paths,
    cfg: TrainingJobConfig,
    *,
    seed: int,
    search: bool,
    grid: Path | None = None,
    workers: str = "auto",
    progress: bool | None = None,
    session: Any = None,
) -> RemoteTrainResult:
    """Upload marts and package, run the job, wait, download the run folder into MODELS_DIR."""
    import boto3

    if not cfg.role_arn:
        raise TrainingJobError(
            "no execution role: set SAGEMAKER_ROLE_ARN (or sagemaker.role_arn in deploy.yml)"
        )
    progress = sys.stderr.isatty() if progress is None else progress
    session = session or boto3.Session(region_name=cfg.region)
    s3 = session.client("s3", region_name=cfg.region)
    name, image, steps = job_name(cfg), training_image(cfg), []
    with _aws("upload to S3"):
        uris, grid_arg = upload_inputs(paths, cfg, name, grid, session)
    steps.append(
        f"uploaded the Parquet marts to {uris[MARTS_CHANNEL]} and the package to {uris[CODE_CHANNEL]}"
    )
    hp = {"seed": seed, "search": str(search).lower(), "grid": grid_arg, "workers": workers}
    with deferred_interrupts() as interrupts:
        with _aws("CreateTrainingJob"):
            job = create_job(name, image, cfg, uris, hp, session)
        steps.append(
            f"created training job {name} ({cfg.instance_type} x{cfg.instance_count}, image {image})"
        )
        with _aws(f"waiting for training job {name}"):
            status = wait_for_job(job, cfg.poll_s, progress, interrupts=interrupts)
    if status != "Completed":
        raise TrainingJobError(f"training job {name} {status}: {job.failure_reason}")
    artifacts = job.model_artifacts.s3_model_artifacts
    with _aws(f"download of {artifacts}"):
        run_dir = download_run(s3, artifacts, paths.models_dir)
    billable = getattr(job, "billable_time_in_seconds", None)
    billable = billable if isinstance(billable, int) else None
    record = {
        "training_job_name": name,
        "training_job_arn": job.training_job_arn,
        "region": cfg.region,
        "image": image,
        "instance_type": cfg.instance_type,
        "instance_count": cfg.instance_count,
        "hyperparameters": hp,
        "marts": uris[MARTS_CHANNEL],
        "package": f"{uris[CODE_CHANNEL]}{PACKAGE}",
        "model_artifacts": artifacts,
        "billable_seconds": billable,
    }
    (run_dir / TRAINING_JOB_FILE).write_text(json.dumps(record, indent=2) + "\n")
    steps.append(f"downloaded {artifacts} into {run_dir}")
    return RemoteTrainResult(name, status, run_dir, image, artifacts, billable, tuple(steps))


def upload_inputs(
    paths: Paths, cfg: TrainingJobConfig, name: str, grid: Path | None, session: Any
) -> tuple[dict[str, str], str]:
    """Marts and package to s3://<bucket>/<prefix>/training/<job>/; the channel and output URIs."""
    from ml.deploy.sagemaker import _default_bucket, _ensure_bucket

    s3 = session.client("s3", region_name=cfg.region)
    with tempfile.TemporaryDirectory(prefix="music-recsys-train-") as tmp:
        marts = prepare_marts(paths, Path(tmp))
        package, grid_arg = build_package(Path(tmp) / PACKAGE, grid)
        bucket = cfg.bucket or _default_bucket(session, cfg.region)
        _ensure_bucket(session, bucket, cfg.region)
        base = f"{cfg.prefix.strip('/')}/training/{name}"
        marts_uri = upload_folder(s3, marts, bucket, f"{base}/{MARTS_CHANNEL}")
        s3.upload_file(str(package), bucket, f"{base}/{CODE_CHANNEL}/{PACKAGE}")
    uris = {
        CODE_CHANNEL: f"s3://{bucket}/{base}/{CODE_CHANNEL}/",
        MARTS_CHANNEL: marts_uri,
        "output": f"s3://{bucket}/{base}/output",
    }
    return uris, grid_arg


@contextlib.contextmanager
def _aws(step: str) -> Iterator[None]:
    """AWS errors (no credentials, access denied, a missing bucket) as one line naming the step."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise TrainingJobError(
            f"{step} failed ({type(exc).__name__}: {exc}); check the AWS credentials and deploy.yml"
        ) from exc
