"""moto's server on 127.0.0.1 for the SageMaker deployment tests, plus the one call moto lacks.

moto 5.2.5 implements CreateModel, CreateEndpointConfig, CreateEndpoint (InService at once),
DescribeEndpoint, DeleteEndpoint/EndpointConfig/Model, S3 and STS, and sagemaker-runtime
InvokeEndpoint with canned answers (a queue set through /moto-api/static/sagemaker/endpoint-results;
each distinct request - body plus x-amzn-sagemaker-* headers - takes the next one). It has no
UpdateEndpoint: `add_update_endpoint` adds a minimal one to the in-process server (point the
endpoint at the new config, as the real call does once the update completes). No container ever
runs: the answers of the "endpoint" are whatever the test queues.

moto also answers DescribeModel / DescribeEndpointConfig / DescribeEndpoint with empty objects
(`VpcConfig: {}`, `DataCaptureConfig: {}`) where AWS leaves the field out; the SageMaker SDK's
pydantic shapes reject those, so `omit_empty_fields` drops them, as AWS does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

ACCOUNT = "123456789012"
REGION = "us-east-1"


def omit_empty_fields() -> None:
    from moto.core.responses import ActionResult
    from moto.sagemaker.responses import SageMakerResponse

    for action in ("describe_model", "describe_endpoint_config", "describe_endpoint"):
        original = getattr(SageMakerResponse, action)
        if getattr(original, "_omits_empty", False):
            continue

        def describe(self: SageMakerResponse, _original=original) -> ActionResult:
            result = _original(self).result
            return ActionResult({k: v for k, v in result.items() if v not in ({}, None)})

        describe._omits_empty = True  # type: ignore[attr-defined]
        setattr(SageMakerResponse, action, describe)


def add_update_endpoint() -> None:
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import SageMakerResponse

    if hasattr(SageMakerResponse, "update_endpoint"):
        return

    def update_endpoint(self: SageMakerResponse) -> ActionResult:
        backend = self.sagemaker_backend
        name = self._get_param("EndpointName")
        config_name = self._get_param("EndpointConfigName")
        if name not in backend.endpoints:
            raise ValidationError(message=f"Could not find endpoint '{name}'.")
        config = backend.describe_endpoint_config(config_name)
        endpoint = backend.endpoints[name]
        endpoint.endpoint_config_name = config_name
        endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
        endpoint.last_modified_time = utcnow()
        return ActionResult({"EndpointArn": endpoint.arn})

    SageMakerResponse.update_endpoint = update_endpoint  # type: ignore[attr-defined]


@contextmanager
def moto_server() -> Iterator[str]:
    """A ThreadedMotoServer on a free 127.0.0.1 port; yields its URL."""
    from moto.server import ThreadedMotoServer

    add_update_endpoint()
    add_stop_training_job()
    omit_empty_fields()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def moto_aws() -> Iterator[str]:
    """moto's server with the AWS SDKs pointed at it: AWS_ENDPOINT_URL and dummy credentials in the
    environment only (restored on exit), no profile. Yields the server's URL."""
    import pytest

    with moto_server() as url, pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", url)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_SESSION_TOKEN", "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.delenv("AWS_PROFILE", raising=False)
        yield url


def queue_invoke_results(url: str, bodies: list[bytes | str]) -> None:
    """The next InvokeEndpoint answers, in order (moto's static results API)."""
    results = [
        {
            "Body": b.decode() if isinstance(b, bytes) else b,
            "ContentType": "application/json",
            "InvokedProductionVariant": "AllTraffic",
            "CustomAttributes": "",
        }
        for b in bodies
    ]
    response = httpx.post(
        f"{url}/moto-api/static/sagemaker/endpoint-results",
        content=json.dumps({"account_id": ACCOUNT, "region": REGION, "results": results}),
    )
    response.raise_for_status()


def reset(url: str) -> None:
    httpx.post(f"{url}/moto-api/reset").raise_for_status()


# --- training jobs ---------------------------------------------------------------------------------
# moto 5.2.5 implements CreateTrainingJob (the job is Completed at once, its ModelArtifacts an S3
# path where nothing was written) and DescribeTrainingJob, not StopTrainingJob. For the tests of
# `ml train --target sagemaker`: `add_stop_training_job` adds StopTrainingJob (Stopped at once, as
# the real call ends), and `hold_training_jobs` keeps new jobs InProgress until `finish_training_job`
# says how they ended, so the client's wait loop and Ctrl-C can be exercised. The moto server runs
# in this process (ThreadedMotoServer), so the tests reach its backend directly.


def _training_backend():
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][REGION]


def add_stop_training_job() -> None:
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import SageMakerResponse

    if hasattr(SageMakerResponse, "stop_training_job"):
        return

    def stop_training_job(self: SageMakerResponse) -> ActionResult:
        name = self._get_param("TrainingJobName")
        job = self.sagemaker_backend.training_jobs.get(name)
        if job is None:
            raise ValidationError(message=f"Could not find training job '{name}'.")
        if job.training_job_status != "InProgress":
            raise ValidationError(
                message=f"The training job {name} is not InProgress ({job.training_job_status})."
            )
        job.training_job_status = job.secondary_status = "Stopped"
        job.last_modified_time = utcnow()
        return ActionResult({})

    SageMakerResponse.stop_training_job = stop_training_job  # type: ignore[attr-defined]


@contextmanager
def hold_training_jobs() -> Iterator[None]:
    """New training jobs stay InProgress (secondary status Training) until finish_training_job."""
    from moto.sagemaker.models import FakeTrainingJob

    original = FakeTrainingJob.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        self.training_job_status, self.secondary_status = "InProgress", "Training"
        self.training_end_time = None

    FakeTrainingJob.__init__ = init
    try:
        yield
    finally:
        FakeTrainingJob.__init__ = original


def training_job_names() -> list[str]:
    return sorted(_training_backend().training_jobs)


def training_job_status(name: str) -> str:
    return _training_backend().training_jobs[name].training_job_status


def finish_training_job(name: str, status: str = "Completed", failure_reason: str | None = None) -> None:
    from moto.core.utils import utcnow

    job = _training_backend().training_jobs[name]
    job.training_job_status = job.secondary_status = status
    job.training_end_time = job.last_modified_time = utcnow()
    if failure_reason is not None:
        job.failure_reason = failure_reason
