"""The realism bench's proxy and protocol (bench/bench_realism.py), without the full preset: the proxy
reads exactly the marts' playlists from the raw file, and the leave-one-out split is what it says."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ml.config import REPO_ROOT
from ml.shapes import Ragged

sys.path.insert(0, str(REPO_ROOT))  # bench/ is not an installed package
from bench import bench_realism as br  # noqa: E402


def _same(a: Ragged, b: Ragged) -> bool:
    return np.array_equal(a.indptr, b.indptr) and np.array_equal(a.values, b.values)


def test_the_proxy_reads_the_marts_playlists_of_a_generated_file(
    tiny_csv: Path, tiny_warehouse: Path
) -> None:
    marts = br.playlists_from_marts(tiny_warehouse)
    assert len(marts) > 50
    assert _same(br.playlists_from_csv(tiny_csv), marts)
    assert br.learnability(br.playlists_from_csv(tiny_csv)) | {"eval_seconds": 0} == br.learnability(
        marts
    ) | {"eval_seconds": 0}


def test_the_proxy_reads_the_marts_playlists_of_real_rows(
    real_sample_csv: Path, real_sample_warehouse: Path
) -> None:
    # Real rows: quarantined lines, quirky spellings, playlists split into several sessions.
    assert _same(br.playlists_from_csv(real_sample_csv), br.playlists_from_marts(real_sample_warehouse))


def test_leave_one_out_holds_out_one_track_of_disjoint_samples() -> None:
    rng = np.random.default_rng(0)
    playlists = Ragged.from_lists(
        [rng.choice(500, size=int(rng.integers(1, 40)), replace=False) for _ in range(400)]
    )
    loo = br.leave_one_out(playlists, seed=5)
    eligible = int((playlists.lengths >= 2).sum())
    assert len(loo.targets["eval"]) == round(br.EVAL_SHARE * eligible)
    assert len(loo.targets["valid"]) == round(br.VALID_SHARE * eligible)
    # Each query is its playlist minus the target; the target is in no train row of its playlist.
    assert len(loo.train.values) == len(playlists.values) - len(loo.targets["eval"]) - len(
        loo.targets["valid"]
    )
    for name in ("eval", "valid"):
        q, t = loo.queries[name], loo.targets[name]
        assert all(t[i] not in q.row(i) for i in range(len(q)))
        assert (q.lengths >= 1).all()
    # Same seed, same split; another seed, another one.
    again = br.leave_one_out(playlists, seed=5)
    assert np.array_equal(again.targets["eval"], loo.targets["eval"])
    assert not np.array_equal(br.leave_one_out(playlists, seed=6).targets["eval"], loo.targets["eval"])
