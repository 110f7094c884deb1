"""Deployment settings: deploy.yml, each key overridable by an environment variable; what neither
sets comes from `ml.config.DEFAULTS` (host, port, TF version, check size)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ml.config import DEFAULTS, REPO_ROOT

DEFAULT_CONFIG = REPO_ROOT / "deploy.yml"


@dataclass(frozen=True)
class LocalConfig:
    host: str
    port: int
    run_dir: Path
    ping_timeout_s: float


@dataclass(frozen=True)
class SageMakerConfig:
    region: str
    role_arn: str
    bucket: str
    prefix: str
    endpoint_name: str
    instance_type: str
    instance_count: int
    tf_version: str
    wait_timeout_s: float
    poll_s: float


@dataclass(frozen=True)
class TrainingJobConfig:
    """`ml train --target sagemaker`: region, role, bucket and prefix are the `sagemaker:` ones."""

    region: str
    role_arn: str
    bucket: str
    prefix: str
    instance_type: str
    instance_count: int
    volume_gb: int
    max_run_s: int
    image: str  # explicit training image URI; empty -> the framework image below (SDK lookup)
    framework: str
    framework_version: str
    py_version: str
    poll_s: float

    @classmethod
    def load(cls, path: Path | None = None) -> TrainingJobConfig:
        path = Path(path or os.environ.get("DEPLOY_CONFIG") or DEFAULT_CONFIG)
        raw = yaml.safe_load(path.read_text()) if path.exists() else {}
        sm, tr = raw.get("sagemaker", {}), raw.get("training", {})
        return cls(
            region=_env("AWS_REGION", _env("AWS_DEFAULT_REGION", sm.get("region", "eu-west-1"))),
            role_arn=_env("SAGEMAKER_ROLE_ARN", sm.get("role_arn", "")),
            bucket=_env("SAGEMAKER_BUCKET", sm.get("bucket", "")),
            prefix=_env("SAGEMAKER_PREFIX", sm.get("prefix", "music-recsys")),
            instance_type=_env("TRAINING_INSTANCE_TYPE", tr.get("instance_type", "ml.m5.4xlarge")),
            instance_count=int(_env("TRAINING_INSTANCE_COUNT", tr.get("instance_count", 1))),
            volume_gb=int(_env("TRAINING_VOLUME_GB", tr.get("volume_gb", 50))),
            max_run_s=int(_env("TRAINING_MAX_RUN", tr.get("max_run_s", 6 * 3600))),
            image=_env("TRAINING_IMAGE", tr.get("image", "")),
            framework=_env("TRAINING_FRAMEWORK", tr.get("framework", "pytorch")),
            framework_version=str(_env("TRAINING_FRAMEWORK_VERSION", tr.get("framework_version", "2.5"))),
            py_version=_env("TRAINING_PY_VERSION", tr.get("py_version", "py311")),
            poll_s=float(_env("TRAINING_POLL", tr.get("poll_s", 30))),
        )


@dataclass(frozen=True)
class DeployConfig:
    local: LocalConfig
    sagemaker: SageMakerConfig
    check_playlists: int

    @classmethod
    def load(cls, path: Path | None = None) -> DeployConfig:
        path = Path(path or os.environ.get("DEPLOY_CONFIG") or DEFAULT_CONFIG)
        raw = yaml.safe_load(path.read_text()) if path.exists() else {}
        loc, sm = raw.get("local", {}), raw.get("sagemaker", {})
        run_dir = Path(_env("RUN_DIR", loc.get("run_dir", "run")))
        return cls(
            local=LocalConfig(
                host=_env("SERVE_HOST", loc.get("host", DEFAULTS.host)),
                port=int(_env("SERVE_PORT", loc.get("port", DEFAULTS.port))),
                run_dir=run_dir if run_dir.is_absolute() else REPO_ROOT / run_dir,
                ping_timeout_s=float(_env("SERVE_PING_TIMEOUT", loc.get("ping_timeout_s", 180))),
            ),
            sagemaker=SageMakerConfig(
                region=_env("AWS_REGION", _env("AWS_DEFAULT_REGION", sm.get("region", "eu-west-1"))),
                role_arn=_env("SAGEMAKER_ROLE_ARN", sm.get("role_arn", "")),
                bucket=_env("SAGEMAKER_BUCKET", sm.get("bucket", "")),
                prefix=_env("SAGEMAKER_PREFIX", sm.get("prefix", "music-recsys")),
                endpoint_name=_env("SAGEMAKER_ENDPOINT_NAME", sm.get("endpoint_name", "music-recsys")),
                instance_type=_env("SAGEMAKER_INSTANCE_TYPE", sm.get("instance_type", "ml.m5.large")),
                instance_count=int(_env("SAGEMAKER_INSTANCE_COUNT", sm.get("instance_count", 1))),
                tf_version=str(_env("SAGEMAKER_TF_VERSION", sm.get("tf_version", DEFAULTS.tf_version))),
                wait_timeout_s=float(_env("SAGEMAKER_WAIT_TIMEOUT", sm.get("wait_timeout_s", 1800))),
                poll_s=float(_env("SAGEMAKER_POLL", sm.get("poll_s", 15))),
            ),
            check_playlists=int(raw.get("check", {}).get("n_playlists", DEFAULTS.check_playlists)),
        )


def _env(name: str, default: object) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else str(default)
