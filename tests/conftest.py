"""Shared fixtures: small generated data and real parts (DuckDB file, dbt, gensim, TF), built once.

Each section belongs to one stage of the pipeline; later stages build on the earlier fixtures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.config import REPO_ROOT

REAL_SAMPLE = (REPO_ROOT.parent / "shared" / "data" / "spotify_sample_real.csv").resolve()
TEST_SEED = 7


@pytest.fixture(scope="session")
def real_sample_csv() -> Path:
    """500 real rows of the Kaggle file in its raw format (no playlist structure)."""
    assert REAL_SAMPLE.exists(), f"missing {REAL_SAMPLE}: the shared folder must sit beside the repository"
    return REAL_SAMPLE


# --- generator ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset (about 5k rows), generated once per test session."""
    from ml.data.generate import generate

    out = tmp_path_factory.mktemp("raw") / "spotify_dataset.csv"
    generate(preset="tiny", rows=None, seed=TEST_SEED, out=out)
    return out
