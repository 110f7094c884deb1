"""Vectorised sampling helpers of the generator (numpy only, no state)."""

from __future__ import annotations

import numpy as np


def grouped_cdf(group: np.ndarray, weights: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-element `group + within-group CDF` for sorted `group`: one searchsorted samples any group.

    Draw from group g with `searchsorted(cdf, g + u, side='right')`, u uniform in [0, 1).
    """
    starts = np.searchsorted(group, np.arange(n_groups + 1))
    cs = np.cumsum(weights, dtype=np.float64)
    base = np.concatenate(([0.0], cs))[starts[:-1]]
    end = cs[starts[1:] - 1]
    within = (cs - np.repeat(base, np.diff(starts))) / np.repeat(end - base, np.diff(starts))
    within[starts[1:] - 1] = 1.0
    return group.astype(np.float64) + within


def sorted_unique(x: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy 2's hash-based unique is several times slower on large int arrays)."""
    x = np.sort(x)
    if len(x) == 0:
        return x
    keep = np.empty(len(x), dtype=bool)
    keep[0] = True
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]


def without(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elements of `a` not in `b` (both small-int index arrays), order of `a` kept."""
    mask = np.ones(int(max(a.max(initial=0), b.max(initial=0))) + 1, dtype=bool)
    mask[b] = False
    return a[mask[a]]


def draw_in_group(
    rng: np.random.Generator, cdf: np.ndarray, groups: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    idx = np.searchsorted(cdf, groups + rng.random(len(groups)), side="right")
    return np.minimum(idx, starts[groups + 1] - 1)


def zipf_weights(group: np.ndarray, starts: np.ndarray, exponent: float) -> np.ndarray:
    rank = np.arange(len(group)) - starts[group]
    return (rank + 1.0) ** -exponent


def pick_by_rows(
    rng: np.random.Generator, counts: np.ndarray, candidates: np.ndarray, target_rows: float
) -> np.ndarray:
    """Random candidates, in random order, until their rows reach `target_rows` (at least one)."""
    if len(candidates) == 0 or target_rows <= 0:
        return candidates[:0]
    order = candidates[rng.permutation(len(candidates))]
    cum = np.cumsum(counts[order])
    n = int(np.searchsorted(cum, target_rows)) + 1
    return order[: min(n, len(order))]
