"""The scaling bench's bookkeeping (bench/bench_scale.py), without running the pipeline: the
log-log fit, and which measurements a rerun keeps (resumable per size and stage)."""

from __future__ import annotations

import sys
from fractions import Fraction

import pytest

from ml.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))  # bench/ is not an installed package
from bench import bench_scale as bs  # noqa: E402


def test_the_fit_recovers_a_power_law():
    xs = [1e6, 2e6, 4e6, 8e6]
    b, r2 = bs.fit_exponent(xs, [3.0 * x**1.37 for x in xs])
    assert b == pytest.approx(1.37) and r2 == pytest.approx(1.0)
    assert bs.fit_exponent([1e6], [5.0]) is None


@pytest.fixture
def size(tmp_path, monkeypatch):
    monkeypatch.setattr(bs, "WORK", tmp_path)
    s = bs.Size(Fraction(1, 8))
    s.dir.mkdir(parents=True)
    s.raw.write_text("header\n")
    s.warehouse.write_text("")
    (s.models / "latest").mkdir(parents=True)
    (s.models / "latest" / "vectors.kv").write_text("")
    (s.models / "latest" / "model.tar.gz").write_text("")
    return s


def measured(size, stages=bs.STAGES) -> dict:
    state, upstream = {"measurements": {}}, None
    for i, stage in enumerate(stages):
        at = f"2026-11-28T10:0{i}:00Z"
        state["measurements"][bs.key(size, stage)] = {
            "measured_at": at,
            "code": bs.code_fingerprint(stage),
            "upstream": upstream,
        }
        upstream = at
    return state


def test_a_rerun_keeps_what_is_current(size):
    state = measured(size)
    assert [bs.is_current(state, size, s) for s in bs.STAGES] == [True] * len(bs.STAGES)


def test_remeasuring_a_stage_makes_the_later_ones_stale(size):
    state = measured(size)
    state["measurements"][bs.key(size, "dbt")]["measured_at"] = "2026-11-28T11:00:00Z"
    assert [bs.is_current(state, size, s) for s in bs.STAGES] == [True, True, True, False, False]


def test_changed_code_or_a_missing_output_makes_a_stage_stale(size):
    state = measured(size)
    state["measurements"][bs.key(size, "train")]["code"] = "older-trainer"
    assert [bs.is_current(state, size, s) for s in bs.STAGES] == [True, True, True, False, False]
    state = measured(size)
    size.warehouse.unlink()
    assert [bs.is_current(state, size, s) for s in bs.STAGES] == [True, True, False, False, False]


def test_projections_follow_the_fitted_exponent():
    rows = [bs.FULL_ROWS // 4, bs.FULL_ROWS // 2]
    ms = [
        {
            "stage": "dbt",
            "rows": r,
            "size": f"{r}",
            "wall_s": 10.0 * (r / rows[0]) ** 1.2,
            "peak_rss_mb": 1024.0 * (r / rows[0]),
            "calibrate_s": 0.5,
        }
        for r in rows
    ]
    fits = bs.summarise({}, ms)
    assert fits["dbt"]["time"]["exponent"] == pytest.approx(1.2, abs=1e-3)
    p = bs.projections({}, ms, fits)["dbt"]
    assert p["10x"]["s"] == pytest.approx(ms[-1]["wall_s"] * 20**1.2, rel=1e-2)
    assert p["100x"]["gb"] == pytest.approx(2.0 * 200, rel=1e-2)
