"""The deployment check: invoke a live endpoint with sample playlists, compare with offline results.

When the run holds `offline_test_predictions.parquet` (written by `ml train`: the test split's
seeds and their offline top-10), the check sends those seeds and expects those predictions.
Otherwise (a run without it, e.g. the synthetic one of the tests) it sends seeded random playlists
over the vocabulary - a few with unknown ids, one empty - and computes the expected answers from
the run's vectors with `ml.knn.top_k` and the popularity list, the rule the evaluation uses.
When the run has a name table (`name_tokens.parquet`, issue 14), a few playlist names follow -
its most common tokens alone, beside a test playlist's seeds, and an unknown word - expected from
`ml.cold_start` (`ml.parity.offline_expected_named`).
The comparison itself (exact ids, up to float score ties) is `ml.parity`, shared with `ml export`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.endpoint_contract import MAX_BODY_BYTES, MAX_INSTANCES, MAX_TRACKS
from ml.parity import CHECK_K, SCORE_TOL, Expected, compare, offline_expected, offline_expected_named
from ml.run_dir import RunDir

__all__ = ["SCORE_TOL", "CheckResult", "compare", "expected_answers", "offline_expected", "run_check"]


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
            f"(|diff| <= {SCORE_TOL:g} x max(1, |score|)), {len(self.mismatches)} different",
        ]
        if self.error:
            lines.append(f"  error: {self.error}")
        lines += [f"  {m}" for m in self.mismatches[:5]]
        return "\n".join(lines)


def expected_answers(
    run_dir: Path, n_playlists: int, seed: int = 0, n_names: int = 0
) -> tuple[list[Expected], str]:
    """What the check sends and expects: the run's offline test predictions, else computed ones;
    then up to 2 * n_names + 1 playlist names when the run has a name table."""
    expected, source = _track_answers(run_dir, n_playlists, seed)
    run = RunDir(Path(run_dir))
    if not run.name_tokens.exists() or not n_names:
        return expected, source
    from ml.cold_start import NameModel

    keys = [str(k) for k in NameModel.load(run.path).keys[:n_names]]
    seeds = [list(e.tracks) for e in expected if e.tracks and not e.fallback] or [[]]
    words = [k.split(":", 1)[1] for k in keys]
    queries = [([], w) for w in words] + [(seeds[i % len(seeds)], w) for i, w in enumerate(words)]
    queries.append(([], "qqqzzx-unknown"))
    named = offline_expected_named(run.path, queries)
    return [*expected, *named], f"{source}; {len(named)} playlist names, expected from ml.cold_start"


def _track_answers(run_dir: Path, n_playlists: int, seed: int) -> tuple[list[Expected], str]:
    saved = RunDir(run_dir).load_offline_predictions()
    if saved is None:
        playlists = sample_playlists(run_dir, n_playlists, seed)
        return offline_expected(run_dir, playlists), f"random playlists, seed {seed}, expected from ml.knn"
    # The endpoint refuses playlists over MAX_TRACKS (413): those are skipped, and said so.
    rows = [r for r in saved if len(r["seed_track_ids"]) <= MAX_TRACKS]
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
    return expected, f"test playlists from {RunDir.OFFLINE_PREDICTIONS}, those of <= {MAX_TRACKS} tracks"


def sample_playlists(run_dir: Path, n_playlists: int, seed: int = 0) -> list[list[str]]:
    """Seeded random playlists over the run's vocabulary, with a few unknown ids and an empty one."""
    track_ids = RunDir(run_dir).vocabulary()
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


def request_bodies(expected: Sequence[Expected], per_request: int = 16, k: int = CHECK_K) -> list[bytes]:
    """The request bodies the check sends, in order (tests queue canned answers for them).

    Up to `per_request` playlists each, fewer when long playlists would pass half the body limit.
    """
    per_request = min(per_request, MAX_INSTANCES)
    bodies: list[bytes] = []
    batch: list[dict] = []
    size = 0
    for e in expected:
        instance: dict = {"tracks": list(e.tracks), "k": k}
        if e.name:
            instance["name"] = e.name
        length = len(json.dumps(instance)) + 2
        if batch and (len(batch) == per_request or size + length > MAX_BODY_BYTES // 2):
            bodies.append(json.dumps({"instances": batch}).encode())
            batch, size = [], 0
        batch.append(instance)
        size += length
    if batch:
        bodies.append(json.dumps({"instances": batch}).encode())
    return bodies


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
        except Exception as exc:  # any failure to get an answer fails the check
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
