"""Offline evaluation: plain metric functions over ranked lists, and one loop over rankers.

The protocol is the one `ml_playlist_splits` defines: for each valid/test playlist the query is all
its seed tracks and the targets are its held-out tracks; candidates never include the seeds.

Definitions (one playlist has seeds S, held-out tracks H and a ranked list R, |R| = K = 100):
- `hr@k`     share of H found in R[:k] (recall@k); with one held-out track this is the classic hit
             rate. Averaged over playlists, so every playlist weighs the same.
- `hit@k`    1 if at least one track of H is in R[:k] ("any hit"), averaged over playlists.
- `ndcg@10`  binary-relevance DCG of R[:10] over the ideal DCG of min(10, |H|) hits.
- `mrr`      1 / rank of the first track of H in R (0 when none is in the top K = 100).
- `coverage@10` distinct tracks recommended in any top-10 / tracks in the train split.
- `oov_share` share of (playlist, held-out track) pairs the method cannot recommend at all
             (not in its vocabulary: below min_count, or never seen in the train split).
The "last-item" protocol of the seed recipe is kept beside it (`last_item_*` keys): query = the
second-to-last track by file position, target = the last one, an unknown query replaced by a random
known track. It rewards learning the alphabet (docs/training.md) and is never used for selection.

Every method is a `ml.rankers.Ranker`; `evaluate` scores any of them the same way. Only numpy here:
evaluation never imports training code (gensim fitting, corpus writing).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.rankers import Ranker, last_item_queries
from ml.shapes import K_MAX, EvalSet, Ragged, Ranking, singletons

__all__ = ["K_MAX", "EvalSet", "Ragged", "Ranking", "evaluate", "evaluate_ranking", "results_table"]

METRICS_SHOWN = ("hr@10", "hr@100", "ndcg@10", "mrr", "coverage@10", "oov_share", "last_item_hr@100")
METRIC_KS = (10, 100)


# --- metrics (plain functions) ------------------------------------------------------------------


def hit_matrix(ranked: np.ndarray, holdouts: Ragged) -> np.ndarray:
    """hits[i, r] is True when ranked[i, r] is one of playlist i's held-out tracks (vectorized)."""
    n = ranked.shape[0]
    if n == 0:
        return np.zeros(ranked.shape, dtype=bool)
    width = int(max(ranked.max(initial=0), holdouts.values.max(initial=0))) + 1
    owner = np.repeat(np.arange(n, dtype=np.int64), holdouts.lengths)
    holdout_keys = owner * width + holdouts.values
    ranked_keys = np.arange(n, dtype=np.int64)[:, None] * width + ranked
    return np.isin(ranked_keys, holdout_keys) & (ranked >= 0)


def hit_rate_at_k(hits: np.ndarray, n_holdout: np.ndarray, k: int) -> float:
    """Mean over playlists of the share of held-out tracks found in the top k (recall@k)."""
    if len(hits) == 0:
        return 0.0
    return float(np.mean(hits[:, :k].sum(axis=1) / n_holdout))


def any_hit_at_k(hits: np.ndarray, k: int) -> float:
    """Share of playlists with at least one held-out track in the top k."""
    return float(np.mean(hits[:, :k].any(axis=1))) if len(hits) else 0.0


def ndcg_at_k(hits: np.ndarray, n_holdout: np.ndarray, k: int) -> float:
    """Binary-relevance NDCG@k; the ideal list puts min(k, |H|) hits first."""
    if len(hits) == 0:
        return 0.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, :k] * discounts[: hits[:, :k].shape[1]]).sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(n_holdout, k) - 1]
    return float(np.mean(dcg / ideal))


def mrr(hits: np.ndarray) -> float:
    """Mean reciprocal rank of the first held-out track within the ranked list (0 when absent)."""
    if len(hits) == 0:
        return 0.0
    found = hits.any(axis=1)
    first = hits.argmax(axis=1)
    return float(np.mean(np.where(found, 1.0 / (first + 1), 0.0)))


def catalogue_coverage(ranked: np.ndarray, k: int, catalogue_size: int) -> float:
    """Distinct tracks recommended in any top-k list / size of the catalogue."""
    top = ranked[:, :k]
    return float(len(np.unique(top[top >= 0])) / catalogue_size) if catalogue_size else 0.0


def oov_share(holdouts: Ragged, known: np.ndarray) -> float:
    """Share of held-out (playlist, track) pairs whose track the method cannot recommend."""
    if len(holdouts.values) == 0:
        return 0.0
    return float(1.0 - known[holdouts.values].mean())


def ranking_metrics(
    ranking: Ranking,
    holdouts: Ragged,
    known: np.ndarray,
    catalogue_size: int,
) -> dict[str, float]:
    """All split-protocol metrics of one ranking (playlists without a held-out track are skipped)."""
    n_holdout = holdouts.lengths
    keep = n_holdout > 0
    hits = hit_matrix(ranking.tracks, holdouts)[keep]
    n_holdout = n_holdout[keep]
    metrics: dict[str, float] = {}
    for k in METRIC_KS:
        metrics[f"hr@{k}"] = hit_rate_at_k(hits, n_holdout, k)
    metrics["hit@10"] = any_hit_at_k(hits, 10)
    metrics["ndcg@10"] = ndcg_at_k(hits, n_holdout, 10)
    metrics["mrr"] = mrr(hits)
    metrics["coverage@10"] = catalogue_coverage(ranking.tracks, 10, catalogue_size)
    metrics["oov_share"] = oov_share(holdouts, known)
    metrics["n_playlists"] = int(keep.sum())
    metrics["fallback_share"] = float(ranking.fallback[keep].mean()) if keep.any() else 0.0
    return metrics


def last_item_metrics(ranking: Ranking, targets: np.ndarray) -> dict[str, float]:
    """The seed recipe's protocol: one target per playlist, HR@k is the classic hit rate."""
    hits = ranking.tracks == targets[:, None]
    ones = np.ones(len(targets), dtype=np.int64)
    return {f"last_item_hr@{k}": hit_rate_at_k(hits, ones, k) for k in METRIC_KS}


# --- one call per method -----------------------------------------------------------------------


def evaluate_ranking(
    ranking: Ranking, eval_set: EvalSet, known: np.ndarray, catalogue_size: int
) -> dict[str, float]:
    """Split-protocol metrics of a ranking of `eval_set`."""
    return ranking_metrics(ranking, eval_set.holdouts, known, catalogue_size)


def evaluate(
    ranker: Ranker,
    eval_set: EvalSet,
    catalogue_size: int,
    last_item_seed: int | None = None,
    k: int = K_MAX,
) -> tuple[dict[str, float], Ranking]:
    """Split-protocol metrics of any ranker on `eval_set` (and the last-item protocol when a seed is
    given: an unknown query track becomes a seeded random one of `ranker.query_known`)."""
    ranking = ranker.rank(eval_set.seeds, k)
    metrics = evaluate_ranking(ranking, eval_set, ranker.known, catalogue_size)
    if last_item_seed is not None:
        metrics.update(evaluate_last_item(ranker, eval_set, last_item_seed, k))
    return metrics, ranking


def evaluate_last_item(ranker: Ranker, eval_set: EvalSet, seed: int, k: int = K_MAX) -> dict[str, float]:
    """The seed recipe's protocol alone: one query track per playlist, its last track the target."""
    queries = last_item_queries(eval_set.last_query, ranker.query_known, seed)
    return last_item_metrics(ranker.rank(singletons(queries), k), eval_set.last_target)


def results_table(metrics: dict[str, Any], columns: tuple[str, ...] = METRICS_SHOWN) -> str:
    """One Markdown table: the selected model on test (and valid) beside every baseline on test."""
    rows = [
        ("track2vec (selected), test", metrics["test"]),
        ("track2vec (selected), valid", metrics["valid"]),
    ]
    rows += [(f"{name}, test", m) for name, m in metrics["baselines"].items()]
    head = "| method | " + " | ".join(columns) + " |"
    sep = "|---|" + "---:|" * len(columns)
    body = [
        f"| {name} | "
        + " | ".join(f"{m[c]:.4f}" if isinstance(m.get(c), float) else str(m.get(c, "")) for c in columns)
        + " |"
        for name, m in rows
    ]
    return "\n".join([head, sep, *body])
