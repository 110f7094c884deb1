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
