"""MLflow tracking of `ml train`: one MLflow run per training run, one nested run per search trial.

Store: `MLFLOW_TRACKING_URI` when set (a tracking server, or any store URI); otherwise a local
SQLite store under `<MODELS_DIR>/mlruns/` (`mlflow.db`, artefacts in `artifacts/`): MLflow 3 keeps
its plain-file store in maintenance mode and refuses it unless opted in, so the local default is
its SQLite backend in the same folder. `make mlflow-ui` opens it. The run folder stays the source of
truth for export; MLflow gets copies of the params, metrics, model card and plots.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

EXPERIMENT = "track2vec"
MLRUNS = "mlruns"


def tracking_uri(models_dir: Path) -> str:
    """MLFLOW_TRACKING_URI, or the local SQLite store under models/mlruns."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    folder = Path(models_dir).resolve() / MLRUNS
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def _key(name: str) -> str:
    """A metric name MLflow accepts (alphanumerics, _ - . space : /)."""
    return name.replace("@", "_at_").replace("+", "_plus_")


def _flat(prefix: str, d: dict[str, Any]) -> dict[str, float]:
    return {_key(f"{prefix}{k}"): float(v) for k, v in d.items() if isinstance(v, int | float)}


def log_training_run(
    models_dir: Path,
    run_dir: Path,
    params: dict[str, Any],
    metrics: dict[str, Any],
    search_rows: list[dict[str, Any]],
    timings: dict[str, float],
) -> str:
    """Log one finished training run (and its search trials as nested runs); returns the run id."""
    import mlflow

    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    local = not os.environ.get("MLFLOW_TRACKING_URI")  # read first: set_tracking_uri sets it
    uri = tracking_uri(models_dir)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        location = None
        if local:
            location = (Path(models_dir).resolve() / MLRUNS / "artifacts").as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=Path(run_dir).name) as run:
        mlflow.set_tag("run_dir", str(run_dir))
        mlflow.log_params({k: v for k, v in params.items() if v is not None})
        mlflow.log_metrics(_flat("valid_", metrics["valid"]))
        mlflow.log_metrics(_flat("test_", metrics["test"]))
        for name, m in metrics["baselines"].items():
            mlflow.log_metrics(_flat(f"{name}_test_", m))
        mlflow.log_metrics(_flat("seconds_", timings))
        for row in search_rows:
            with mlflow.start_run(run_name=f"trial {row['trial']}", nested=True):
                mlflow.log_params({k: row[k] for k in row if not isinstance(row[k], float) or k == "prior"})
                mlflow.log_metrics(_flat("", {k: v for k, v in row.items() if isinstance(v, float)}))
        for path in sorted(Path(run_dir).glob("*.md")) + sorted(Path(run_dir).glob("*.png")):
            mlflow.log_artifact(str(path))
        for name in ("metrics.json", "params.json", "search_results.csv", "timings.json"):
            if (Path(run_dir) / name).exists():
                mlflow.log_artifact(str(Path(run_dir) / name))
        return run.info.run_id
