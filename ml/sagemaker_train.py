"""The SageMaker training job's entry point: `python -m ml.sagemaker_train` inside the container.

It runs the same `run_training` as `ml train`, on the Parquet marts of the `marts` channel (no
warehouse file, no dbt), into SageMaker's model folder, which SageMaker uploads as model.tar.gz
when the job ends (ml/deploy/training_job.py downloads it into models/<run_id>/). The container
layout (SM_ROOT, default /opt/ml):

    input/config/hyperparameters.json   seed, search ("true"/"false"), grid, workers (strings)
    input/data/marts/                   the Parquet marts (ml/marts_parquet.py)
    model/                              MODELS_DIR: <run_id>/ and latest (the corpus cache is removed)
    output/failure                      the one-line reason, when training fails

Only the training dependencies are installed in the job (ml/deploy/training_requirements.txt).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import traceback
from pathlib import Path

from ml.config import DEFAULTS, REPO_ROOT, Paths

MARTS_CHANNEL = "marts"


def sm_root() -> Path:
    return Path(os.environ.get("SM_ROOT", "/opt/ml"))


def read_hyperparameters(root: Path) -> dict[str, str]:
    path = root / "input" / "config" / "hyperparameters.json"
    return {k: str(v) for k, v in json.loads(path.read_text()).items()} if path.exists() else {}


def main() -> int:
    from ml.train import run_training

    root = sm_root()
    hp = read_hyperparameters(root)
    marts = root / "input" / "data" / MARTS_CHANNEL
    models = root / "model"
    paths = Paths(
        raw_csv=root / "input" / "data" / "raw" / "none.csv",  # no raw file in the job
        duckdb_path=marts,
        models_dir=models,
        reports_dir=root / "output" / "data" / "reports",
        marts_dir=marts,
    )
    grid = hp.get("grid", "")
    workers = hp.get("workers", "grid")
    try:
        result = run_training(
            paths,
            grid_path=(Path.cwd() / grid) if grid else None,
            seed=int(hp.get("seed", DEFAULTS.seed)),
            search=hp.get("search", "true").lower() == "true",
            progress=False,
            workers=None
            if workers == "grid"
            else (os.cpu_count() or 1)
            if workers == "auto"
            else int(workers),
        )
    except Exception as exc:  # SageMaker shows output/failure as the job's FailureReason
        failure = root / "output" / "failure"
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(f"{type(exc).__name__}: {exc}"[:1000])
        traceback.print_exc()
        return 1
    shutil.rmtree(models / ".cache", ignore_errors=True)  # corpus files: large, rebuilt from the marts
    print(result.summary())
    print(f"ml package: {Path(__file__).resolve().parent} (repository root {REPO_ROOT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
