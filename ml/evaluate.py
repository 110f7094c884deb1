"""Offline evaluation: plain metric functions over ranked lists, and the rankers that produce them.

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
known track. It rewards learning the alphabet (see DESIGN.md) and is never used for selection.

Model-based scoring goes through `ml.knn` (mean of normalized seed vectors, cosine, seeds excluded),
the same rule the exported model serves. Playlists with no known seed fall back to popularity.
Only numpy and scipy here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.knn import normalize_rows, top_k

K_MAX = 100
METRICS_SHOWN = ("hr@10", "hr@100", "ndcg@10", "mrr", "coverage@10", "oov_share", "last_item_hr@100")
METRIC_KS = (10, 100)


# --- data shapes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ragged:
    """A list of int arrays stored flat (CSR style): row i is values[indptr[i]:indptr[i+1]]."""

    indptr: np.ndarray  # int64 (n + 1,)
    values: np.ndarray  # int64

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]]) -> Ragged:
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        values = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]) if len(rows) else np.array([])
        return cls(indptr=indptr, values=values.astype(np.int64))

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def row(self, i: int) -> np.ndarray:
        return self.values[self.indptr[i] : self.indptr[i + 1]]

    def rows(self) -> list[np.ndarray]:
        return np.split(self.values, self.indptr[1:-1]) if len(self) else []

    def take(self, index: np.ndarray) -> Ragged:
        return Ragged.from_lists([self.row(int(i)) for i in index])

    def map_values(self, mapping: np.ndarray) -> Ragged:
        """Apply mapping[value]; drop entries mapped to a negative value (unknown)."""
        mapped = mapping[self.values]
        keep = mapped >= 0
        row_of = np.repeat(np.arange(len(self)), self.lengths)[keep]
        indptr = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(np.bincount(row_of, minlength=len(self)), out=indptr[1:])
        return Ragged(indptr=indptr, values=mapped[keep].astype(np.int64))


@dataclass(frozen=True)
class EvalSet:
    """Valid or test playlists under the split protocol; track ids are global track indices."""

    session_ids: np.ndarray  # (n,) str
    seeds: Ragged
    holdouts: Ragged
    last_query: np.ndarray  # (n,) second-to-last track by position (the seed recipe's query)
    last_target: np.ndarray  # (n,) last track by position (the seed recipe's target)

    def __len__(self) -> int:
        return len(self.session_ids)

    def subset(self, index: np.ndarray) -> EvalSet:
        return EvalSet(
            session_ids=self.session_ids[index],
            seeds=self.seeds.take(index),
            holdouts=self.holdouts.take(index),
            last_query=self.last_query[index],
            last_target=self.last_target[index],
        )


@dataclass(frozen=True)
class Ranking:
    """Ranked global track indices per playlist, best first; -1 pads a list shorter than K."""

    tracks: np.ndarray  # (n, K) int64
    scores: np.ndarray  # (n, K) float32
    fallback: np.ndarray  # (n,) bool: popularity answered (no known seed)


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


# --- rankers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VectorModel:
    """Embedding rows plus their global track index; the rows are normalized once."""

    normed: np.ndarray  # (n_rows, d) float32, L2-normalized (ml.knn.normalize_rows)
    track_of_row: np.ndarray  # (n_rows,) global track index of each row
    row_of_track: np.ndarray  # (n_tracks,) row of each global track, -1 when not in the vocabulary

    @classmethod
    def from_vectors(cls, vectors: np.ndarray, track_of_row: np.ndarray, n_tracks: int) -> VectorModel:
        row_of_track = np.full(n_tracks, -1, dtype=np.int64)
        row_of_track[track_of_row] = np.arange(len(track_of_row))
        return cls(normalize_rows(vectors), np.asarray(track_of_row, dtype=np.int64), row_of_track)

    @property
    def known(self) -> np.ndarray:
        return self.row_of_track >= 0


def popularity_order(counts: np.ndarray) -> np.ndarray:
    """Global track indices by count descending; ties by the lower index (= track_id order)."""
    order = np.argsort(-counts, kind="stable")
    return order[counts[order] > 0]


def rank_popularity(order: np.ndarray, seeds: Ragged, k: int = K_MAX) -> Ranking:
    """Most popular tracks that are not seeds; the score is minus the rank (higher is better)."""
    n = len(seeds)
    tracks = np.full((n, k), -1, dtype=np.int64)
    for i in range(n):
        seed = seeds.row(i)
        head = order[: k + len(seed)]
        if len(seed):
            head = head[~np.isin(head, seed)]
        head = head[:k]
        tracks[i, : len(head)] = head
    scores = np.where(tracks >= 0, -np.arange(k, dtype=np.float32)[None, :], -np.inf).astype(np.float32)
    return Ranking(tracks=tracks, scores=scores, fallback=np.ones(n, dtype=bool))


def rank_vectors(
    model: VectorModel,
    seeds: Ragged,
    popular: np.ndarray,
    k: int = K_MAX,
    batch_size: int | None = None,
) -> Ranking:
    """Top-k by ml.knn (mean of normalized seed vectors, cosine, seeds excluded) in global ids.

    Playlists without a known seed get the popularity list instead (the serving fallback).
    """
    seed_rows = seeds.map_values(model.row_of_track)
    rows_list = seed_rows.rows()
    if batch_size is None:
        batch_size = auto_batch_size(len(model.normed))
    result = top_k(model.normed, rows_list, k, batch_size=batch_size)
    tracks = model.track_of_row[result.rows]
    scores = result.scores.copy()
    if tracks.shape[1] < k:  # a catalogue smaller than k
        pad = k - tracks.shape[1]
        tracks = np.pad(tracks, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    fallback = seed_rows.lengths == 0
    if fallback.any():
        idx = np.flatnonzero(fallback)
        pop = rank_popularity(popular, seeds.take(idx), k)
        tracks[idx] = pop.tracks
        scores[idx] = 0.0
    return Ranking(tracks=tracks, scores=scores.astype(np.float32), fallback=fallback)


def last_item_queries(queries: np.ndarray, known: np.ndarray, seed: int) -> np.ndarray:
    """The seed recipe's rule: a query track the method does not know becomes a random known one."""
    queries = np.asarray(queries, dtype=np.int64).copy()
    unknown = ~known[queries]
    pool = np.flatnonzero(known)
    rng = np.random.default_rng(seed)
    queries[unknown] = pool[rng.integers(0, len(pool), size=int(unknown.sum()))]
    return queries


def rank_last_item(model: VectorModel, queries: np.ndarray, seed: int, k: int = K_MAX) -> Ranking:
    """One query track per playlist (unknown ones replaced at random), scored by ml.knn."""
    rows = model.row_of_track[last_item_queries(queries, model.known, seed)]
    result = top_k(model.normed, [[int(r)] for r in rows], k, batch_size=auto_batch_size(len(model.normed)))
    tracks = model.track_of_row[result.rows]
    return Ranking(tracks=tracks, scores=result.scores, fallback=~model.known[queries])


def auto_batch_size(n_items: int, budget_cells: int = 32_000_000) -> int:
    """Playlists per matrix product so one batch's score matrix stays near 128 MB of float32."""
    return int(max(16, min(4096, budget_cells // max(n_items, 1))))


# --- one call per method -----------------------------------------------------------------------


def evaluate_ranking(
    ranking: Ranking, eval_set: EvalSet, known: np.ndarray, catalogue_size: int
) -> dict[str, float]:
    """Split-protocol metrics of a ranking of `eval_set`."""
    return ranking_metrics(ranking, eval_set.holdouts, known, catalogue_size)


def evaluate_vectors(
    model: VectorModel,
    eval_set: EvalSet,
    popular: np.ndarray,
    catalogue_size: int,
    last_item_seed: int | None = None,
) -> tuple[dict[str, float], Ranking]:
    """Split-protocol metrics of an embedding (and the last-item protocol when a seed is given)."""
    ranking = rank_vectors(model, eval_set.seeds, popular)
    metrics = evaluate_ranking(ranking, eval_set, model.known, catalogue_size)
    if last_item_seed is not None:
        metrics.update(
            last_item_metrics(
                rank_last_item(model, eval_set.last_query, last_item_seed), eval_set.last_target
            )
        )
    return metrics, ranking


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
