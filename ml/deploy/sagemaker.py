"""SageMaker deployment: S3 upload (boto3), Model / EndpointConfig / Endpoint (SageMaker SDK 3.x
`sagemaker.core.resources`), wait for InService, check, and blue/green update with rollback.

Every deploy creates a new model and endpoint config named `<endpoint>-<UTC stamp>-<4 hex>`:
- no endpoint yet: create it; a failed check deletes what this deploy created;
- endpoint exists: `UpdateEndpoint` to the new config (SageMaker's default blue/green: the new
  fleet takes the traffic once healthy, then the old one is torn down), check, and on failure
  update back to the previous config and delete the new model and config.
What deploy created is recorded in RUN_DIR/sagemaker.json so `ml undeploy` deletes exactly that.
Credentials come from the standard AWS chain; none are read from or written to the repository.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ml.deploy.check import CheckResult
from ml.deploy.config import SageMakerConfig
from ml.deploy.state import read_json, write_json

STATE_FILE = "sagemaker.json"
VARIANT = "AllTraffic"


@dataclass(frozen=True)
class Release:
    model: str
    config: str
    s3_uri: str


@dataclass(frozen=True)
class SageMakerDeployResult:
    success: bool
    endpoint_name: str
    action: str  # created | updated | rolled back | failed
    release: Release | None
    previous_config: str | None
    image: str
    check: CheckResult | None
    message: str = ""
    steps: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        lines = [f"sagemaker: {s}" for s in self.steps]
        if self.check is not None:
            lines.append(self.check.summary())
        verdict = "deployed" if self.success else "deploy FAILED"
        lines.append(f"sagemaker {verdict}: endpoint {self.endpoint_name} ({self.action}) image {self.image}")
        if self.message:
            lines.append(f"  {self.message}")
        return "\n".join(lines)


def image_uri(cfg: SageMakerConfig) -> str:
    """The SageMaker TensorFlow inference image for cfg.tf_version, from the SDK's lookup."""
    from sagemaker.core import image_uris

    return image_uris.retrieve(
        "tensorflow",
        region=cfg.region,
        version=cfg.tf_version,
        image_scope="inference",
        instance_type=cfg.instance_type,
    )


def deploy_sagemaker(
    tarball: Path,
    cfg: SageMakerConfig,
    run_dir: Path,
    check_fn: Callable[[str, str], CheckResult],
    session=None,  # boto3.Session
) -> SageMakerDeployResult:
    """Ship model.tar.gz; check_fn(endpoint_name, release_tag) -> CheckResult decides the outcome."""
    import boto3

    steps: list[str] = []
    fail = _failure(cfg.endpoint_name, steps)
    if not tarball.exists():
        return fail(f"{tarball} not found: run `ml export` first")
    if not cfg.role_arn:
        return fail("no execution role: set SAGEMAKER_ROLE_ARN (or sagemaker.role_arn in deploy.yml)")
    session = session or boto3.Session(region_name=cfg.region)
    region = cfg.region
    image = image_uri(cfg)
    name = f"{cfg.endpoint_name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"
    try:
        bucket = cfg.bucket or _default_bucket(session, region)
        key = f"{cfg.prefix.strip('/')}/{name}/model.tar.gz"
        _ensure_bucket(session, bucket, region)
        session.client("s3", region_name=region).upload_file(str(tarball), bucket, key)
    except Exception as exc:  # no credentials, no bucket access, ...: say which
        return fail(
            f"upload to S3 failed ({type(exc).__name__}: {exc}); check the AWS credentials", image=image
        )
    release = Release(model=name, config=name, s3_uri=f"s3://{bucket}/{key}")
    steps.append(f"uploaded {tarball.name} to {release.s3_uri}")

    try:
        endpoint, previous, action = _ship_release(release, name, image, cfg, session, steps)
    except Exception as exc:  # any failure: clean up what this deploy made, then report
        _delete_release(release, session, region, steps)
        return fail(f"{type(exc).__name__}: {exc}", image=image)

    check = check_fn(cfg.endpoint_name, name)
    state = _read_state(run_dir)
    if check.success:
        if previous and state and state.get("current", {}).get("config") == previous:
            _delete_release(Release(**state["current"]), session, region, steps)  # superseded, ours
        _write_state(
            run_dir, {"endpoint_name": cfg.endpoint_name, "region": region, "current": asdict(release)}
        )
        return SageMakerDeployResult(
            True, cfg.endpoint_name, action, release, previous, image, check, steps=tuple(steps)
        )

    return _undo_release(endpoint, release, previous, image, check, cfg, session, steps)


def _ship_release(release, name: str, image: str, cfg: SageMakerConfig, session, steps: list[str]):
    """Model + endpoint config `name`; create the endpoint or point it at the new config; wait.
    Returns (endpoint, previous config name or None, "created" | "updated")."""
    from sagemaker.core.resources import Endpoint, EndpointConfig, Model
    from sagemaker.core.shapes import ContainerDefinition, ProductionVariant

    region = cfg.region
    Model.create(
        model_name=name,
        primary_container=ContainerDefinition(image=image, model_data_url=release.s3_uri),
        execution_role_arn=cfg.role_arn,
        session=session,
        region=region,
    )
    EndpointConfig.create(
        endpoint_config_name=name,
        production_variants=[
            ProductionVariant(
                variant_name=VARIANT,
                model_name=name,
                initial_instance_count=cfg.instance_count,
                instance_type=cfg.instance_type,
            )
        ],
        session=session,
        region=region,
    )
    steps.append(f"created model and endpoint config {name} ({cfg.instance_type} x{cfg.instance_count})")
    endpoint = _get_endpoint(cfg.endpoint_name, session, region)
    previous = endpoint.endpoint_config_name if endpoint is not None else None
    if endpoint is None:
        endpoint = Endpoint.create(
            endpoint_name=cfg.endpoint_name, endpoint_config_name=name, session=session, region=region
        )
        action = "created"
    else:
        endpoint.endpoint_config_name = name
        endpoint.update()
        action = "updated"
    steps.append(f"{action} endpoint {cfg.endpoint_name} -> config {name}; waiting for InService")
    _wait_serving(endpoint, name, cfg)
    return endpoint, previous, action


def _undo_release(
    endpoint,
    release,
    previous: str | None,
    image: str,
    check: CheckResult,
    cfg: SageMakerConfig,
    session,
    steps,
) -> SageMakerDeployResult:
    """The check failed: roll back to the previous config (or delete a new endpoint); drop ours."""
    region = cfg.region
    if previous is not None:
        endpoint.endpoint_config_name = previous
        endpoint.update()
        _wait_serving(endpoint, previous, cfg)
        steps.append(f"check failed: rolled endpoint {cfg.endpoint_name} back to config {previous}")
        _delete_release(release, session, region, steps)
        return SageMakerDeployResult(
            False,
            cfg.endpoint_name,
            "rolled back",
            release,
            previous,
            image,
            check,
            message=f"still serving the previous config {previous}",
            steps=tuple(steps),
        )
    steps.append(f"check failed on a new endpoint: deleting {cfg.endpoint_name}")
    _delete_endpoint(endpoint, cfg)
    _delete_release(release, session, region, steps)
    return SageMakerDeployResult(
        False,
        cfg.endpoint_name,
        "failed",
        release,
        None,
        image,
        check,
        message="nothing left deployed",
        steps=tuple(steps),
    )


def undeploy_sagemaker(cfg: SageMakerConfig, run_dir: Path, session=None) -> str:
    """Delete the endpoint and the model, config and S3 object the last deploy recorded."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = session or boto3.Session(region_name=cfg.region)
    state = _read_state(run_dir)
    name = state["endpoint_name"] if state else cfg.endpoint_name
    region = state["region"] if state else cfg.region
    steps: list[str] = []
    try:
        endpoint = _get_endpoint(name, session, region)
    except (BotoCoreError, ClientError) as exc:
        raise RuntimeError(f"cannot reach SageMaker in {region}: {type(exc).__name__}: {exc}") from exc
    if endpoint is not None:
        config = endpoint.endpoint_config_name
        _delete_endpoint(endpoint, cfg)
        steps.append(f"deleted endpoint {name}")
        if state is None and config.startswith(f"{name}-"):
            # No record (another machine deployed): the config and model follow our naming.
            state = {"current": {"model": config, "config": config, "s3_uri": ""}}
    if state:
        _delete_release(Release(**state["current"]), session, region, steps)
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    return "\n".join(steps) if steps else f"nothing to undeploy: no endpoint {name} in {region}"


def runtime_invoker(endpoint_name: str, tag: str, session, region: str) -> Callable[[bytes], dict]:
    """Invoke through sagemaker-runtime InvokeEndpoint; the release tag rides in CustomAttributes."""
    client = session.client("sagemaker-runtime", region_name=region)

    def invoke(body: bytes) -> dict:
        response = client.invoke_endpoint(
            EndpointName=endpoint_name,
            Body=body,
            ContentType="application/json",
            Accept="application/json",
            CustomAttributes=f"check={tag}",
        )
        return json.loads(response["Body"].read())

    return invoke


def current_endpoint(cfg: SageMakerConfig, run_dir: Path) -> tuple[str, str]:
    """(endpoint name, region) of the recorded deploy, else of the config."""
    state = _read_state(run_dir)
    return (state["endpoint_name"], state["region"]) if state else (cfg.endpoint_name, cfg.region)


# --- helpers -----------------------------------------------------------------------------------


def _failure(endpoint_name: str, steps: list[str]):
    def fail(message: str, image: str = "") -> SageMakerDeployResult:
        return SageMakerDeployResult(
            False, endpoint_name, "failed", None, None, image, None, message, tuple(steps)
        )

    return fail


def _wait_serving(endpoint, config_name: str, cfg: SageMakerConfig) -> None:
    """Until the endpoint is InService on `config_name`.

    Not `wait_for_status("InService")` alone: right after UpdateEndpoint the old fleet may still
    report InService on the old config, and the check must not run against it.
    """
    deadline = time.monotonic() + cfg.wait_timeout_s
    while True:
        endpoint.refresh()
        status, current = endpoint.endpoint_status, endpoint.endpoint_config_name
        if status == "InService" and current == config_name:
            return
        if "Failed" in str(status):
            raise RuntimeError(f"endpoint {endpoint.endpoint_name} is {status}: {endpoint.failure_reason}")
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"endpoint {endpoint.endpoint_name} not InService on {config_name} after {cfg.wait_timeout_s:.0f}s "
                f"(status {status}, config {current})"
            )
        time.sleep(cfg.poll_s)


def _get_endpoint(name: str, session, region: str):
    from botocore.exceptions import ClientError
    from sagemaker.core.resources import Endpoint

    try:
        return Endpoint.get(endpoint_name=name, session=session, region=region)
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        if "Could not find" in message or exc.response.get("Error", {}).get("Code") == "ResourceNotFound":
            return None
        raise


def _delete_endpoint(endpoint, cfg: SageMakerConfig) -> None:
    endpoint.delete()
    endpoint.wait_for_delete(poll=int(cfg.poll_s), timeout=int(cfg.wait_timeout_s))


def _delete_release(release: Release, session, region: str, steps: list[str]) -> None:
    """Delete a release's endpoint config, model and S3 object; missing pieces are skipped."""
    from botocore.exceptions import ClientError

    sm = session.client("sagemaker", region_name=region)
    for what, call, kwargs in (
        ("endpoint config", sm.delete_endpoint_config, {"EndpointConfigName": release.config}),
        ("model", sm.delete_model, {"ModelName": release.model}),
    ):
        try:
            call(**kwargs)
            steps.append(f"deleted {what} {kwargs[next(iter(kwargs))]}")
        except ClientError as exc:
            steps.append(
                f"{what} {kwargs[next(iter(kwargs))]} not deleted: {exc.response['Error'].get('Message')}"
            )
    if release.s3_uri.startswith("s3://"):
        bucket, key = release.s3_uri[5:].split("/", 1)
        session.client("s3", region_name=region).delete_object(Bucket=bucket, Key=key)
        steps.append(f"deleted {release.s3_uri}")


def _default_bucket(session, region: str) -> str:
    account = session.client("sts", region_name=region).get_caller_identity()["Account"]
    return f"sagemaker-{region}-{account}"


def _ensure_bucket(session, bucket: str, region: str) -> None:
    from botocore.exceptions import ClientError

    s3 = session.client("s3", region_name=region)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        kwargs = (
            {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        s3.create_bucket(Bucket=bucket, **kwargs)


def _read_state(run_dir: Path) -> dict | None:
    fix = (
        "delete it (the SageMaker endpoint, models and configs it recorded stay: "
        "`ml undeploy --target sagemaker` then removes those of the configured endpoint name)"
    )
    return read_json(run_dir / STATE_FILE, fix, keys=("endpoint_name", "region", "current"))


def _write_state(run_dir: Path, state: dict) -> None:
    write_json(run_dir / STATE_FILE, state)
