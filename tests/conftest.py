"""Shared fixtures: small generated data and real parts (DuckDB file, dbt, gensim, TF), built once.

Each section belongs to one stage of the pipeline; later stages build on the earlier fixtures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.config import REPO_ROOT

# Committed with the tests (tests/data/README.md says where the rows come from): a clone needs nothing beside it.
REAL_SAMPLE = REPO_ROOT / "tests" / "data" / "spotify_sample_real.csv"
TEST_SEED = 7


@pytest.fixture(scope="session")
def real_sample_csv() -> Path:
    """500 real rows of the Kaggle file in its raw format (no playlist structure)."""
    assert REAL_SAMPLE.exists(), f"missing {REAL_SAMPLE}: it is part of the repository (tests/data/)"
    return REAL_SAMPLE


# --- generator ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset (about 5k rows), generated once per test session."""
    from ml.data.generate import generate

    out = tmp_path_factory.mktemp("raw") / "spotify_dataset.csv"
    generate(preset="tiny", rows=None, seed=TEST_SEED, out=out)
    return out


# --- warehouse ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_warehouse(tiny_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset built by a real `dbt build` (every model, data test and unit test).

    Returns the Path of the DuckDB file (tables in schema main, docs/contracts.md); open it with
    `duckdb.connect(str(path), read_only=True)` or `ml.warehouse.connect(path)`. Shared by the whole
    test session: never write to it. The split seed is TEST_SEED (not the SEED env var), so the
    splits are the same on every machine. Fails the requesting test with dbt's output if the build
    fails.
    """
    from ml.warehouse import build_warehouse

    db_path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    result = build_warehouse(tiny_csv, db_path, dbt_vars={"split_seed": TEST_SEED}, check=False)
    if not result.success:
        pytest.fail(f"dbt build of the tiny warehouse failed:\n{result.tail(60)}", pytrace=False)
    return db_path


@pytest.fixture(scope="session")
def real_sample_warehouse(real_sample_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 500 real rows built by a real `dbt build`; the Path of the DuckDB file (read-only use)."""
    from ml.warehouse import build_warehouse

    db_path = tmp_path_factory.mktemp("warehouse_real") / "warehouse.duckdb"
    result = build_warehouse(real_sample_csv, db_path, dbt_vars={"split_seed": TEST_SEED}, check=False)
    if not result.success:
        pytest.fail(f"dbt build of the real sample failed:\n{result.tail(60)}", pytrace=False)
    return db_path


# --- model ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model(tiny_csv: Path, tiny_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ml train` (search included) on the tiny warehouse with ml/grid_tiny.yml (one gensim worker,
    so deterministic), into a temporary MODELS_DIR. Returns the run directory (`<models>/<run_id>`,
    also `<models>/latest`): vectors.kv, popularity.parquet, metrics.json, offline_test_predictions.parquet, ...
    Shared by the whole test session: never write to it.
    """
    from ml.config import REPO_ROOT, Paths
    from ml.train import run_training

    root = tmp_path_factory.mktemp("model")
    paths = Paths(
        raw_csv=tiny_csv,
        duckdb_path=tiny_warehouse,
        models_dir=root / "models",
        reports_dir=root / "reports",
    )
    result = run_training(paths, grid_path=REPO_ROOT / "ml" / "grid_tiny.yml", seed=TEST_SEED, progress=False)
    return result.run_dir


# --- export, serving, deployment ----------------------------------------------------------------


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory):
    """A seeded stand-in for a trained run (3,000 clustered vectors, popularity), exported once.

    Lets the export/serve/deploy tests run without training; `paths.models_dir/latest` points at
    it. Attributes: paths, model (tests/synthetic_model.py SyntheticModel), export (ExportResult).
    """
    from types import SimpleNamespace

    from synthetic_model import write_synthetic_model

    from ml.config import Paths
    from ml.export import export_latest

    root = tmp_path_factory.mktemp("serving")
    model = write_synthetic_model(root / "models" / "run-synthetic", seed=TEST_SEED)
    (root / "models" / "latest").symlink_to("run-synthetic")
    paths = Paths(
        raw_csv=root / "raw.csv",
        duckdb_path=root / "warehouse.duckdb",
        models_dir=root / "models",
        reports_dir=root / "reports",
    )
    return SimpleNamespace(paths=paths, model=model, export=export_latest(paths))


@pytest.fixture(scope="session")
def tiny_export(tiny_model: Path, tiny_warehouse: Path, tmp_path_factory: pytest.TempPathFactory):
    """A copy of the trained tiny run (tiny_model stays untouched), exported (names from the tiny
    warehouse's dim_tracks): paths and ExportResult."""
    import shutil
    from types import SimpleNamespace

    from ml.config import Paths
    from ml.export import export_latest

    root = tmp_path_factory.mktemp("tiny-export")
    shutil.copytree(tiny_model, root / "models" / tiny_model.name)
    (root / "models" / "latest").symlink_to(tiny_model.name)
    paths = Paths(
        raw_csv=root / "raw.csv",
        duckdb_path=tiny_warehouse,
        models_dir=root / "models",
        reports_dir=root / "reports",
    )
    return SimpleNamespace(
        paths=paths, run_dir=root / "models" / tiny_model.name, export=export_latest(paths)
    )
