"""Deployment of models/latest/model.tar.gz: a local endpoint or SageMaker, each checked live.

`deploy`, `undeploy` and `check` take the target (`local` | `sagemaker`) and the Paths; settings
come from deploy.yml and environment variables (ml.deploy.config). The check compares the live
answers with offline results computed from the same run's vectors (ml.deploy.check).
"""

from __future__ import annotations

import json
from pathlib import Path

from ml.config import Paths
from ml.deploy.check import CheckResult, expected_answers, http_invoker, run_check
from ml.deploy.config import DeployConfig
from ml.run_dir import RunDir

TARGETS = ("local", "sagemaker")


def latest_run(paths: Paths) -> Path:
    return RunDir.latest(paths.models_dir).path


def deploy(target: str, paths: Paths, config: DeployConfig | None = None):
    """Deploy the exported tarball of models/latest; the result has .success and .summary()."""
    cfg = config or DeployConfig.load()
    run_dir = latest_run(paths)
    tarball = RunDir(run_dir).tarball
    if target == "local":
        from ml.deploy.local import deploy_local

        return deploy_local(
            tarball,
            cfg.local,
            lambda url: check_url(url, run_dir, cfg.check_playlists),
            example_tracks=tuple(_example_tracks(run_dir)),
        )
    if target == "sagemaker":
        import boto3

        from ml.deploy.sagemaker import deploy_sagemaker, runtime_invoker

        session = boto3.Session(region_name=cfg.sagemaker.region)

        def check_release(endpoint_name: str, tag: str) -> CheckResult:
            invoke = runtime_invoker(endpoint_name, tag, session, cfg.sagemaker.region)
            return _check(invoke, run_dir, cfg.check_playlists, "sagemaker", endpoint_name)

        return deploy_sagemaker(tarball, cfg.sagemaker, cfg.local.run_dir, check_release, session=session)
    raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")


def undeploy(target: str, paths: Paths, config: DeployConfig | None = None) -> str:
    cfg = config or DeployConfig.load()
    if target == "local":
        from ml.deploy.local import undeploy_local

        return undeploy_local(cfg.local)
    if target == "sagemaker":
        from ml.deploy.sagemaker import undeploy_sagemaker

        return undeploy_sagemaker(cfg.sagemaker, cfg.local.run_dir)
    raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")


def check(
    target: str, paths: Paths, n_playlists: int = 50, config: DeployConfig | None = None
) -> CheckResult:
    """Invoke the deployed endpoint with sample playlists; compare with offline predictions."""
    cfg = config or DeployConfig.load()
    run_dir = latest_run(paths)
    if target == "local":
        from ml.deploy.local import read_endpoint

        endpoint = read_endpoint(cfg.local)
        if endpoint is None:
            return CheckResult("local", "-", 0, 0, 0, error="no local endpoint running: `ml deploy` first")
        return check_url(endpoint.url, run_dir, n_playlists)
    if target == "sagemaker":
        import boto3

        from ml.deploy.sagemaker import current_endpoint, runtime_invoker

        name, region = current_endpoint(cfg.sagemaker, cfg.local.run_dir)
        invoke = runtime_invoker(name, "manual", boto3.Session(region_name=region), region)
        return _check(invoke, run_dir, n_playlists, "sagemaker", name)
    raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")


def check_url(url: str, run_dir: Path, n_playlists: int) -> CheckResult:
    return _check(http_invoker(url), run_dir, n_playlists, "local", url)


def _check(invoke, run_dir: Path, n_playlists: int, target: str, endpoint: str) -> CheckResult:
    try:
        expected, source = expected_answers(run_dir, n_playlists, n_names=8)
    except (FileNotFoundError, ValueError) as exc:
        return CheckResult(target, endpoint, 0, 0, 0, error=f"no offline results to compare with: {exc}")
    return run_check(invoke, expected, target=target, endpoint=endpoint, source=source)


def demo_summary(paths: Paths, config: DeployConfig | None = None) -> str:
    """Where to look after `make demo`: docs, reports, model card, metrics, endpoint and a curl."""
    cfg = config or DeployConfig.load()
    run = RunDir.latest(paths.models_dir)

    def where(label: str, path: Path) -> str:
        mark = "" if path.exists() else "   (missing)"
        return f"  {label:<14} {path}{mark}"

    lines = ["music-recsys demo: where to look", ""]
    lines.append(where("dbt docs", paths.dbt_project_dir / "target" / "index.html"))
    lines.append(where("data profile", paths.reports_dir / "data_profile.html"))
    lines.append(where("model card", run.model_card))
    lines.append(where("metrics", run.metrics))
    lines.append(where("model tarball", run.tarball))
    lines.append(
        where("GX data docs", paths.gx_dir / "uncommitted" / "data_docs" / "local_site" / "index.html")
    )
    if run.metrics.exists():
        metrics = run.read_json(RunDir.METRICS)
        test = metrics.get("test", {})
        shown = ", ".join(f"{k} {test[k]:.3f}" for k in ("hr@10", "ndcg@10", "mrr") if k in test)
        if shown:
            lines += ["", f"  test metrics:  {shown}"]
    from ml.deploy.local import read_endpoint

    endpoint = read_endpoint(cfg.local)
    lines.append("")
    if endpoint is None:
        lines.append("  endpoint:      not running (`make deploy` starts it, `make undeploy` stops it)")
        return "\n".join(lines)
    example = _example_tracks(run.path)
    body = json.dumps({"instances": [{"tracks": example, "k": 5}]})
    lines += [
        f"  endpoint:      {endpoint.url}  (pid {endpoint.pid}, log {endpoint.log})",
        "  try it:",
        f"    curl -s {endpoint.url}/ping",
        f"    curl -s -X POST {endpoint.url}/invocations -H 'content-type: application/json' \\",
        f"      -d '{body}'",
        "  stop it:       make undeploy",
    ]
    return "\n".join(lines)


def _example_tracks(run_dir: Path) -> list[str]:
    try:
        return RunDir(run_dir).load_popular_ids(3)
    except (FileNotFoundError, ValueError):
        return ["<track_id>"]


__all__ = ["check", "demo_summary", "deploy", "undeploy"]
