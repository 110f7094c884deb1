"""The deployment check: invoke a live endpoint with sample playlists, compare with offline results.

When the run holds `offline_test_predictions.parquet` (written by `ml train`: the test split's
seeds and their offline top-10), the check sends those seeds and expects those predictions.
Otherwise (a run without it, e.g. the synthetic one of the tests) it sends seeded random playlists
over the vocabulary - a few with unknown ids, one empty - and computes the expected answers from
the run's vectors with `ml.knn.top_k` and the popularity list, the rule the evaluation uses.

Equality is exact on track ids, except where two tracks' scores are equal within `SCORE_TOL`:
numpy (OpenBLAS) and TensorFlow (Eigen/oneDNN) sum the 64-term dot products in different orders,
so scores differ by up to ~2e-7 and a near-tie may swap. Such swaps count as ties, not failures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.endpoint_contract import MAX_BODY_BYTES, MAX_INSTANCES, MAX_TRACKS

SCORE_TOL = 1e-6
CHECK_K = 10
OFFLINE_PREDICTIONS_FILE = "offline_test_predictions.parquet"  # from ml train


@dataclass(frozen=True)
class Expected:
    tracks: tuple[str, ...]
    track_ids: tuple[str, ...]
    scores: tuple[float, ...]
    n_unknown: int
    fallback: bool
    tie_score: float  # score of the first track past the top-k (-inf if none): boundary ties


@dataclass(frozen=True)
class CheckResult:
    target: str
    endpoint: str
    n_playlists: int
    n_identical: int
    n_ties: int
    mismatches: tuple[str, ...] = ()
    error: str | None = None
    seconds: float = 0.0
    requests: int = 0
    source: str = ""

    @property
    def success(self) -> bool:
        return (
            self.error is None and not self.mismatches and self.n_identical + self.n_ties == self.n_playlists
        )

    def summary(self) -> str:
        verdict = "PASSED" if self.success else "FAILED"
        lines = [
            f"check {verdict}: {self.target} endpoint {self.endpoint}",
            f"  {self.n_playlists} playlists ({self.source}) in {self.requests} requests, {self.seconds:.2f}s: "
            f"{self.n_identical} identical top-{CHECK_K}, {self.n_ties} equal up to score ties "
            f"(|diff| <= {SCORE_TOL:g}), {len(self.mismatches)} different",
        ]
        if self.error:
            lines.append(f"  error: {self.error}")
        lines += [f"  {m}" for m in self.mismatches[:5]]
        return "\n".join(lines)


def expected_answers(run_dir: Path, n_playlists: int, seed: int = 0) -> tuple[list[Expected], str]:
    """What the check sends and expects: the run's offline test predictions, else computed ones."""
    saved = run_dir / OFFLINE_PREDICTIONS_FILE
    if not saved.exists():
        playlists = sample_playlists(run_dir, n_playlists, seed)
        return offline_expected(run_dir, playlists), f"random playlists, seed {seed}, expected from ml.knn"
    import pyarrow.parquet as pq

    # The endpoint refuses playlists over MAX_TRACKS (413): those are skipped, and said so.
    rows = [r for r in pq.read_table(saved).to_pylist() if len(r["seed_track_ids"]) <= MAX_TRACKS]
    rows = rows[:n_playlists]
    seeds = [list(r["seed_track_ids"]) for r in rows]
    # ml.knn over the same vectors gives the score just past the top-10 (boundary ties).
    computed = offline_expected(run_dir, seeds)
    expected = [
        Expected(
            tracks=tuple(r["seed_track_ids"]),
            track_ids=tuple(r["top10_track_ids"]),
            scores=tuple(float(x) for x in r["top10_scores"]),
            n_unknown=int(r["n_unknown"]),
            fallback=bool(r["is_fallback"]),
            tie_score=c.tie_score,
        )
        for r, c in zip(rows, computed, strict=True)
    ]
    return expected, f"test playlists from {saved.name}, those of <= {MAX_TRACKS} tracks"


def sample_playlists(run_dir: Path, n_playlists: int, seed: int = 0) -> list[list[str]]:
    """Seeded random playlists over the run's vocabulary, with a few unknown ids and an empty one."""
    track_ids = _vocabulary(run_dir)
    rng = np.random.default_rng(seed)
    playlists: list[list[str]] = []
    for i in range(n_playlists):
        if i == 0:
            playlists.append([])  # no known track: the popularity fallback
            continue
        size = int(rng.integers(1, 21))
        rows = rng.choice(len(track_ids), size=min(size, len(track_ids)), replace=False)
        tracks = [track_ids[r] for r in rows]
        if i % 7 == 0:
            tracks.append(f"unknown{i:012d}")
        if i % 23 == 0:  # only unknown ids: the popularity fallback again
            tracks = [f"unknown{i:012d}"]
        playlists.append(tracks)
    return playlists


def offline_expected(run_dir: Path, playlists: Sequence[Sequence[str]], k: int = CHECK_K) -> list[Expected]:
    """What the endpoint must answer, computed offline with ml.knn over the run's vectors."""
    from ml.export import load_normalized_vectors, load_popular_ids
    from ml.knn import top_k

    track_ids, normed = load_normalized_vectors(run_dir)
    row_of = {t: i for i, t in enumerate(track_ids)}
    popular = load_popular_ids(run_dir, len(track_ids) + 1000)
    seed_rows = [sorted({row_of[t] for t in p if t in row_of}) for p in playlists]
    result = top_k(normed, seed_rows, k=k + 1)  # one more: a tie across the k boundary is not a failure
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


def request_bodies(expected: Sequence[Expected], per_request: int = 16, k: int = CHECK_K) -> list[bytes]:
    """The request bodies the check sends, in order (tests queue canned answers for them).

    Up to `per_request` playlists each, fewer when long playlists would pass half the body limit.
    """
    per_request = min(per_request, MAX_INSTANCES)
    bodies: list[bytes] = []
    batch: list[dict] = []
    size = 0
    for e in expected:
        instance = {"tracks": list(e.tracks), "k": k}
        length = len(json.dumps(instance)) + 2
        if batch and (len(batch) == per_request or size + length > MAX_BODY_BYTES // 2):
            bodies.append(json.dumps({"instances": batch}).encode())
            batch, size = [], 0
        batch.append(instance)
        size += length
    if batch:
        bodies.append(json.dumps({"instances": batch}).encode())
    return bodies


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
    if len(ids) and np.max(np.abs(exp_scores - got_scores)) > SCORE_TOL:
        worst = int(np.argmax(np.abs(exp_scores - got_scores)))
        return f"score at rank {worst + 1}: {got_scores[worst]:.7f} != {exp_scores[worst]:.7f}"
    if ids == list(expected.track_ids):
        return None
    # Ids differ: acceptable only where each differing rank's expected score has a near-equal
    # neighbour (inside the list or just past its end), i.e. a tie the two libraries broke apart.
    tie_pool = np.append(exp_scores, expected.tie_score)
    for rank, (want, have) in enumerate(zip(expected.track_ids, ids, strict=True)):
        if want == have:
            continue
        close = np.abs(tie_pool - exp_scores[rank]) <= SCORE_TOL
        if close.sum() < 2:
            return f"rank {rank + 1}: {have} != {want} (score {exp_scores[rank]:.7f}, no tie)"
    return "tie"


def run_check(
    invoke: Callable[[bytes], dict],
    expected: Sequence[Expected],
    target: str,
    endpoint: str,
    source: str,
    per_request: int = 16,
) -> CheckResult:
    """Send the sample playlists through `invoke` (body -> parsed JSON answer) and compare."""
    start = time.perf_counter()
    bodies = request_bodies(expected, per_request)
    identical = ties = 0
    mismatches: list[str] = []
    error = None
    offset = 0
    for body in bodies:
        n = len(json.loads(body)["instances"])
        try:
            answer = invoke(body)
            predictions = answer["predictions"]
            if not isinstance(predictions, list) or len(predictions) != n:
                raise ValueError(f"expected {n} predictions, got {str(predictions)[:200]}")
        except Exception as exc:  # noqa: BLE001 - any failure to get an answer fails the check
            error = f"request {bodies.index(body) + 1}: {type(exc).__name__}: {str(exc)[:300]}"
            break
        for i, got in enumerate(predictions):
            verdict = compare(expected[offset + i], got)
            if verdict is None:
                identical += 1
            elif verdict == "tie":
                ties += 1
            else:
                mismatches.append(f"playlist {offset + i}: {verdict}")
        offset += n
    return CheckResult(
        target=target,
        endpoint=endpoint,
        n_playlists=len(expected),
        n_identical=identical,
        n_ties=ties,
        mismatches=tuple(mismatches),
        error=error,
        seconds=time.perf_counter() - start,
        requests=len(bodies),
        source=source,
    )


def http_invoker(url: str, timeout: float = 60.0) -> Callable[[bytes], dict]:
    """POST bodies to <url>/invocations; a non-200 answer raises with its body."""
    import httpx

    client = httpx.Client(base_url=url, timeout=timeout)

    def invoke(body: bytes) -> dict:
        response = client.post("/invocations", content=body, headers={"content-type": "application/json"})
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
        return response.json()

    return invoke


def _vocabulary(run_dir: Path) -> list[str]:
    from gensim.models import KeyedVectors

    return list(KeyedVectors.load(str(run_dir / "vectors.kv"), mmap="r").index_to_key)
