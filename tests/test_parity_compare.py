"""ml.parity.compare: what counts as the same answer (float rounding, ties) and what does not."""

from __future__ import annotations

import math

from ml.parity import SCORE_TOL, Expected, compare

IDS = ("a", "b", "c")


def expected(scores: tuple[float, ...], tie_score: float = -math.inf) -> Expected:
    return Expected(("s",), IDS, scores, 0, False, tie_score)


def prediction(ids, scores) -> dict:
    return {"track_ids": list(ids), "scores": list(scores), "n_unknown": 0}


def test_float32_rounding_of_a_large_score_is_the_same_answer():
    # The demo's failing case: an output-layer score of -1.5254 summed in another order.
    want = expected((-1.5253804, -1.6, -1.7))
    assert compare(want, prediction(IDS, (-1.5253788, -1.6, -1.7))) is None


def test_a_real_score_difference_is_reported_with_its_rank():
    want = expected((-1.5253804, -1.6, -1.7))
    verdict = compare(want, prediction(IDS, (-1.5253804, -1.59, -1.7)))
    assert verdict is not None and verdict.startswith("score at rank 2")


def test_tolerance_is_relative_beyond_one_and_absolute_below():
    small = expected((0.5, 0.4, 0.3))
    assert compare(small, prediction(IDS, (0.5 + 0.9 * SCORE_TOL, 0.4, 0.3))) is None
    assert compare(small, prediction(IDS, (0.5 + 2 * SCORE_TOL, 0.4, 0.3))) is not None
    large = expected((100.0, 90.0, 80.0))
    assert compare(large, prediction(IDS, (100.0 + 50 * SCORE_TOL, 90.0, 80.0))) is None
    assert compare(large, prediction(IDS, (100.0 + 200 * SCORE_TOL, 90.0, 80.0))) is not None


def test_swapped_ids_pass_only_at_a_tie():
    tied = expected((0.9, 0.8, 0.8))
    assert compare(tied, prediction(("a", "c", "b"), (0.9, 0.8, 0.8))) == "tie"
    untied = expected((0.9, 0.8, 0.7))
    verdict = compare(untied, prediction(("a", "c", "b"), (0.9, 0.8, 0.7)))
    assert verdict is not None and "no tie" in verdict
