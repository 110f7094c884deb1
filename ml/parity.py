"""Parity of an exported/served model with the offline scoring rule: expected answers and the
comparison, shared by `ml export` (self-check of the SavedModel) and `ml check` (a live endpoint).

Equality is exact on track ids, except where two tracks' scores are equal within `SCORE_TOL` (times
the score's magnitude above 1: output-layer scores are not bounded like cosine):
numpy (OpenBLAS) and TensorFlow (Eigen/oneDNN) sum the dot products in different orders, so scores
differ by up to ~2e-7 and a near-tie may swap. Such swaps count as ties, not failures.
A playlist with a name (issue 14) is expected to answer as `ml.cold_start.NameScoring.rank`
(`ml.knn.NameRule` over the run's tables and name table: beside seeds scored per seed, the name is
one more per-seed list) where the name plays a part, else as the tracks alone.
Depends on the run folder, `ml.knn` and `ml.cold_start` (no TensorFlow, no HTTP, no training code).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.run_dir import RunDir

# Relative tolerance on a score: the endpoint and the offline evaluation sum float32 products in
# different orders (one query vs batched BLAS, a mean over many seed rows), which moves a score by
# up to ~n * 1.2e-7 of its magnitude; 1e-5 is ~80 float32 ulps. Rankings are still compared exactly
# (a differing id is accepted only at a score tie).
SCORE_TOL = 1e-5
CHECK_K = 10


@dataclass(frozen=True)
class Expected:
    tracks: tuple[str, ...]
    track_ids: tuple[str, ...]
    scores: tuple[float, ...]
    n_unknown: int
    fallback: bool
    tie_score: float  # score of the first track past the top-k (-inf if none): boundary ties
    name: str = ""  # the playlist's name sent beside the tracks ("" for none)


def offline_expected(run_dir: Path, playlists: Sequence[Sequence[str]], k: int = CHECK_K) -> list[Expected]:
    """What the endpoint must answer, computed offline with ml.knn over the run's vectors."""
    run = RunDir(Path(run_dir))
    track_ids, tables = run.load_knn_tables()
    row_of = {t: i for i, t in enumerate(track_ids)}
    popular = run.load_popular_ids(len(track_ids) + 1000)
    seed_rows = [sorted({row_of[t] for t in p if t in row_of}) for p in playlists]
    result = tables.top_k(seed_rows, k=k + 1)  # one more: a tie across the k boundary is not a failure
    out = []
    for playlist, rows, got_rows, got_scores in zip(
        playlists, seed_rows, result.rows, result.scores, strict=True
    ):
        n_unknown = sum(t not in row_of for t in playlist)
        if rows:
            n = min(k, len(track_ids) - len(rows))
            ids = tuple(track_ids[r] for r in got_rows[:n])
            scores = tuple(float(s) for s in got_scores[:n])
            tie = float(got_scores[n]) if len(got_scores) > n and np.isfinite(got_scores[n]) else -np.inf
            out.append(Expected(tuple(playlist), ids, scores, n_unknown, False, tie))
        else:
            inside = set(playlist)
            ids = tuple([t for t in popular if t not in inside][:k])
            out.append(Expected(tuple(playlist), ids, (0.0,) * len(ids), n_unknown, True, -np.inf))
    return out


def compare(expected: Expected, got: dict) -> str | None:
    """None when the prediction matches (exactly or up to score ties), else why not; 'tie' for ties."""
    try:
        ids = [str(t) for t in got["track_ids"]]
        scores = [float(s) for s in got["scores"]]
        n_unknown = int(got["n_unknown"])
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed prediction ({type(exc).__name__}: {exc}): {str(got)[:200]}"
    if n_unknown != expected.n_unknown:
        return f"n_unknown {n_unknown} != {expected.n_unknown}"
    if len(ids) != len(expected.track_ids) or len(scores) != len(ids):
        return f"{len(ids)} track ids / {len(scores)} scores, expected {len(expected.track_ids)}"
    exp_scores = np.asarray(expected.scores, dtype=np.float64)
    got_scores = np.asarray(scores, dtype=np.float64)
    # Relative beyond 1: output-layer scores are not bounded by 1 like cosine, and float32 sums
    # differ in their last bits (~1e-7 of the magnitude).
    tol = SCORE_TOL * np.maximum(1.0, np.abs(exp_scores))
    if len(ids) and np.any(np.abs(exp_scores - got_scores) > tol):
        worst = int(np.argmax(np.abs(exp_scores - got_scores) - tol))
        return f"score at rank {worst + 1}: {got_scores[worst]:.7f} != {exp_scores[worst]:.7f}"
    if ids == list(expected.track_ids):
        return None
    # Ids differ: acceptable only where each differing rank's expected score has a near-equal
    # neighbour (inside the list or just past its end), i.e. a tie the two libraries broke apart.
    tie_pool = np.append(exp_scores, expected.tie_score)
    for rank, (want, have) in enumerate(zip(expected.track_ids, ids, strict=True)):
        if want == have:
            continue
        close = np.abs(tie_pool - exp_scores[rank]) <= SCORE_TOL * max(1.0, abs(exp_scores[rank]))
        if close.sum() < 2:
            return f"rank {rank + 1}: {have} != {want} (score {exp_scores[rank]:.7f}, no tie)"
    return "tie"


def offline_expected_named(
    run_dir: Path, queries: Sequence[tuple[Sequence[str], str]], k: int = CHECK_K
) -> list[Expected]:
    """What the endpoint must answer to (tracks, name) queries: ml.cold_start's name rule where the
    name plays a part (a known token; beside seeds only with a worth above 0), else `offline_expected`."""
    from ml.cold_start import NameScoring
    from ml.name_tokens import name_keys

    scoring = NameScoring.from_run(RunDir(Path(run_dir)))
    row_of = {t: i for i, t in enumerate(scoring.track_ids)}
    plain = offline_expected(run_dir, [list(p) for p, _ in queries], k)
    out = []
    for (playlist, name), base in zip(queries, plain, strict=True):
        rows = sorted({row_of[t] for t in playlist if t in row_of})
        ref = scoring.rank(rows, name_keys(name), k + 1)
        if ref is None:
            out.append(
                Expected(
                    base.tracks,
                    base.track_ids,
                    base.scores,
                    base.n_unknown,
                    base.fallback,
                    base.tie_score,
                    name,
                )
            )
            continue
        n = min(k, len(scoring.track_ids) - len(rows))
        scores = ref.scores[0]
        tie = float(scores[n]) if len(scores) > n and np.isfinite(scores[n]) else -np.inf
        out.append(
            Expected(
                tuple(playlist),
                tuple(scoring.track_ids[r] for r in ref.rows[0][:n]),
                tuple(float(x) for x in scores[:n]),
                base.n_unknown,
                False,
                tie,
                name,
            )
        )
    return out
