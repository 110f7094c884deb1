"""Playlist -> top-k tracks: the one scoring rule used offline, in the exported Keras model and when serving.

Two tables over the same vocabulary (row i = track i), `KnnTables`:
- a query table Q [n, d]: the query of a playlist is the mean of its known seeds' rows of Q;
- an item matrix I [n, d]: every track's score is the inner product of the query with its row.
Seeds are excluded, a repeated seed counts once, ties break by the lower row index (numpy,
TensorFlow and Keras agree), and the result is the top k. Q and I may be one array (stored once):
today's model is that case with Q = I = the L2-normalized track vectors, i.e. cosine similarity
(`KnnTables.cosine`). The item matrix is kept transposed ([d, n]; any layout works, a C-contiguous
one makes a single query's product ~2x faster on CPU).
Pure numpy, batched: a batch of playlists is one matrix product.

A playlist's name (issue 14, ml/cold_start.py fits the rows; docs/cold_start.md) is scored by the
same rule over the name space `[I | prior]`: the item matrix and one prior column, `NameRule`. A
name-token row is a row of the query table's space plus a prior weight (a token's playlists' mean
query), so a name queries the items as a playlist's tracks do. The name's query is the mean of its
known token rows; alone (no seed), its scores are that query against [I | prior]. Beside seeds the name counts as
`worth` seed tracks (chosen on valid; at 0 every caller answers by the tables' rule, so name +
seeds is then exactly seeds only), under the tables' track rule:
- per-seed aggregation (per_seed = M > 0): the name is one more per-seed query row - its top M+1
  of its own scores, each of the top M shifted by the (M+1)-th - added `worth` times to the sum
  of the seeds' lists (`NameRule.scores`, `shifted_top`);
- the mean rule (per_seed = 0): the name's query mixed into the tracks' own query (the mean of
  the seeds' rows of Q), its share worth / (n + worth) (`mix_queries`).
No known token: the tables' rule alone. How it is computed (the answer does not depend on it):
`NameRule.top_k` never holds a [playlists x items] matrix - the name's scores come from a blocked
scan of [I | prior] (`SeedIndex.name_space`: its top k alone, its top M+1 beside seeds, exact, ties
to the lower row, canonically rescored as the per-seed lists are), the seeds' per-seed lists from
the tables' own scan, and the sums are sparse (`sparse_top_k`); `NameRule.scores` is the dense
form of the same rule (small catalogues and tests). Peak memory on the full preset:
bench/results/name_scan_memory.md.

Per-seed aggregation (`KnnTables.per_seed` = M > 0, issue 12; chosen on valid, stored in the run's
knn_scoring.json as "per_seed"): instead of one mean query, every distinct known seed s is one
query row Q[s]; its scores p = Q[s] @ I^T; its top M+1 items are taken (score descending, ties to the
lower row) and each of its top M items gets p_item - p_(M+1), the raw inner product shifted so the
seed's (M+1)-th score is 0 (every contribution >= 0; the rule measured in
bench/results/track2vec_recipes.md, rows `seedM`). A playlist's score of an item is the sum of the
contributions it got from its seeds (0 for an item no seed kept); then, as for the mean rule, seeds
are excluded and the top k is taken with ties to the lower row (so when fewer than k items were
kept, the rest come in row order). M is capped at n_items - 1. Still a brute-force top-k of inner
products against the one item matrix: a batch of seed queries, a top-k per seed and a segment sum.
How it is computed (the answer does not depend on it): a seed's top list depends only on the seed,
so each distinct seed of a call is scored once (`SeedLists`, ml/knn_scan.py); the sums are kept sparse (at most
M items per seed of a playlist, added one at a time in ascending seed order as the dense sum
would) and the zeros of the fill rule are enumerated, never materialized; the top M+1 of a seed
comes from `SeedIndex`: a blocked scan of every item (default), or an exact pruned scan over
k-means blocks (`SeedIndex.clustered`, `KnnTables.seed_index`) that skips a block only when a bound
proves none of its items can enter the list. Cost on the full preset: bench/results/per_seed_cost.md.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ml.knn_scan import CLUSTERED_FROM, Aggregated, SeedIndex, SeedLists, TopK, auto_seed_index, sparse_top_k

__all__ = ["CLUSTERED_FROM", "KnnTables", "NameRule", "SeedIndex", "SeedLists", "TopK", "auto_seed_index"]


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalize each row (float32); zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.float32(1e-12))


@dataclass(frozen=True)
class KnnTables:
    """The query table and the item matrix of the rule (module docstring)."""

    items_t: np.ndarray  # I transposed, [d, n_items] float32 (a view of [n, d] works too)
    query_table: np.ndarray | None = None  # Q [n_items, d] float32; None: Q = I, stored once
    per_seed: int = 0  # M > 0: per-seed aggregation (module docstring); 0: the mean query
    seed_index: SeedIndex | None = None  # per-seed scan of the item matrix; None: `SeedIndex.blocked`

    @classmethod
    def cosine(cls, vectors: np.ndarray, contiguous: bool = False) -> KnnTables:
        """Q = I = the L2-normalized vectors; `contiguous` copies I^T into [d, n] C order (serving)."""
        normed = normalize_rows(vectors)
        return cls(items_t=np.ascontiguousarray(normed.T) if contiguous else normed.T)

    @property
    def n_items(self) -> int:
        return int(self.items_t.shape[1])

    @property
    def shared(self) -> bool:
        return self.query_table is None

    def query_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows of Q, [len(rows), d] C-contiguous (so a mean sums them in the same order either way)."""
        if self.query_table is None:
            return np.ascontiguousarray(self.items_t[:, rows].T)
        return self.query_table[rows]

    def queries(self, seed_rows: Sequence[Sequence[int]]) -> np.ndarray:
        """Mean of each playlist's seed rows of Q; an empty playlist gives a zero query."""
        out = np.zeros((len(seed_rows), self.items_t.shape[0]), dtype=np.float32)
        for i, rows in enumerate(seed_rows):
            if len(rows):
                out[i] = self.query_rows(np.asarray(rows, dtype=np.int64)).mean(axis=0)
        return out

    def per_seed_scores(self, seed_rows: Sequence[Sequence[int]], batch_size: int = 1024) -> np.ndarray:
        """(len(seed_rows), n_items) float32 per-seed aggregated scores (module docstring): each
        distinct seed's top M contributions (shifted by its (M+1)-th score), summed per item in
        ascending seed order (dense: for small catalogues and tests; `top_k` never builds it)."""
        scores = np.zeros((len(seed_rows), self.n_items), dtype=np.float32)
        agg = self.per_seed_lists(seed_rows).aggregate(seed_rows)
        if len(agg.owner):
            scores[agg.owner, agg.item] = agg.score
        return scores

    def per_seed_lists(self, seed_rows: Sequence[Sequence[int]], block: int = 0) -> SeedLists:
        """Each distinct seed's top M+1 items (score descending, ties to the lower row), every seed
        of every playlist computed once; `self.seed_index` (when set) prunes the scan exactly."""
        m = min(int(self.per_seed), self.n_items - 1)
        sets = [np.unique(np.asarray(r, dtype=np.int64)) for r in seed_rows]
        distinct = np.unique(np.concatenate(sets)) if sets else np.zeros(0, np.int64)
        if m < 1 or not len(distinct):
            return SeedLists.empty(m)
        index = self.seed_index if self.seed_index is not None else SeedIndex.blocked(self.items_t, block)
        cols, vals = index.top(self.query_rows(distinct), m + 1)
        return SeedLists(distinct, cols, vals, m)

    def scores(self, seed_rows: Sequence[Sequence[int]], batch_size: int = 1024) -> np.ndarray:
        """(len(seed_rows), n_items) scores of the rule, seeds not yet excluded."""
        if self.per_seed > 0:
            return self.per_seed_scores(seed_rows, batch_size)
        return self.queries(seed_rows) @ self.items_t

    def top_k(self, seed_rows: Sequence[Sequence[int]], k: int, batch_size: int = 1024) -> TopK:
        """Top-k rows for each playlist, its seed rows excluded, in batches of matrix products
        (per-seed: the distinct seeds' top lists, then a sparse sum per playlist, `SeedLists`)."""
        k_eff = min(k, self.n_items)
        if self.per_seed > 0:
            return self.per_seed_lists(seed_rows).top_k(seed_rows, k_eff, self.n_items)
        all_rows = np.empty((len(seed_rows), k_eff), dtype=np.int64)
        all_scores = np.empty((len(seed_rows), k_eff), dtype=np.float32)
        for start in range(0, len(seed_rows), batch_size):
            batch = seed_rows[start : start + batch_size]
            scores = self.scores(batch, batch_size)  # (b, n_items)
            for i, rows in enumerate(batch):
                if len(rows):
                    scores[i, np.asarray(rows, dtype=np.int64)] = -np.inf
            stop = start + len(batch)
            all_rows[start:stop], all_scores[start:stop] = _select_top(scores, k_eff)
        return TopK(rows=all_rows, scores=all_scores)


def shifted_top(p: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """One per-seed list of each row of scores p (module docstring): the columns of its top M
    (score descending, ties to the lower column) and their contributions p - p_(M+1) (>= 0)."""
    cols, vals = _select_top(p, m + 1)
    return cols[:, :m], vals[:, :m] - vals[:, m : m + 1]


def mix_queries(
    tracks_q: np.ndarray, name_q: np.ndarray, n_tracks: np.ndarray, has_name: np.ndarray, worth: float
) -> np.ndarray:
    """(n, dim + 1) queries of the name space: the tracks' query (the mean of n known tracks' rows of
    Q, prior weight 0) and the name's mean, the name's share worth / (n + worth) (1 without tracks, 0 without a known
    token)."""
    n = np.asarray(n_tracks, dtype=np.float32)
    share = np.where(has_name, worth / np.maximum(n + worth, 1e-12), 0.0)
    w = np.where(has_name & (n == 0), 1.0, share).astype(np.float32)[:, None]
    q = np.zeros((len(tracks_q), tracks_q.shape[1] + 1), dtype=np.float32)
    q[:, :-1] = tracks_q
    return (1.0 - w) * q + w * name_q


def name_queries(
    token_table: np.ndarray, token_rows: Sequence[Sequence[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim + 1) mean of each name's known token rows (in the given order), and whether it had one."""
    out = np.zeros((len(token_rows), token_table.shape[1]), dtype=np.float32)
    lengths = np.array([len(r) for r in token_rows], dtype=np.int64)
    has = lengths > 0
    if lengths.sum():
        values = np.concatenate([np.asarray(r, dtype=np.int64) for r in token_rows if len(r)])
        owner = np.repeat(np.arange(len(token_rows)), lengths)
        np.add.at(out, owner, token_table[values])
        out[has] /= lengths[has, None].astype(np.float32)
    return out, has


@dataclass(frozen=True)
class NameRule:
    """Name-token rows over `KnnTables` (module docstring): a name alone, or beside seed tracks.

    A name-space query q scores `q[:, :-1] @ I^T + q[:, -1] * prior` (I^T: the tables' item matrix,
    never copied).
    """

    tables: KnnTables
    index: dict[str, int]  # token key (`name:chill`) -> row of `rows`
    rows: np.ndarray  # (n_tokens, d + 1) float32: [a query of the tables' space | prior weight]
    prior: np.ndarray  # (n_items,) float32: the prior column of the name space
    worth: float  # the name counts as this many seed tracks (per-seed: its list's weight)
    block: int = 0  # columns of the name space scored at a time (`space`); 0: SeedIndex's default

    @classmethod
    def over(
        cls, tables: KnnTables, keys: Sequence[str], rows: np.ndarray, prior: np.ndarray, worth: float
    ) -> NameRule:
        return cls(
            tables,
            {str(k): i for i, k in enumerate(keys)},
            np.asarray(rows, dtype=np.float32),
            np.asarray(prior, dtype=np.float32),
            float(worth),
        )

    def token_rows(self, keys: Sequence[str]) -> list[int]:
        """Rows of the known keys, in order (unknown keys dropped)."""
        return [self.index[k] for k in keys if k in self.index]

    def name_scores(self, name_q: np.ndarray) -> np.ndarray:
        """(n, n_items) scores of queries of the name space: q[:, :-1] @ I^T + q[:, -1] * prior."""
        dim = self.rows.shape[1] - 1
        return name_q[:, :dim] @ self.tables.items_t + name_q[:, dim:] * self.prior[None, :]

    def scores(self, seed_rows: Sequence[Sequence[int]], token_rows: Sequence[Sequence[int]]) -> np.ndarray:
        """(n, n_items) scores of the name rule (module docstring), seeds not yet excluded.

        Without a seed: the name's own scores (its mean token row against [I | prior]). Beside
        seeds, under per-seed aggregation: the seeds' per-seed sum plus `worth` times the name's
        per-seed list (its top M+1 of its own scores, shifted by the (M+1)-th); under the mean
        rule: the name's mean mixed into the tracks' query (the mean of their rows of Q, `mix_queries`)."""
        name_q, has_name = name_queries(self.rows, token_rows)
        n_seeds = np.array([len(s) for s in seed_rows], dtype=np.int64)
        if self.tables.per_seed > 0:
            scores = self.name_scores(name_q)
            beside = np.flatnonzero(n_seeds > 0)
            if len(beside):
                m = min(int(self.tables.per_seed), self.tables.n_items - 1)
                seeds = self.tables.per_seed_scores([seed_rows[i] for i in beside])
                cols, contrib = shifted_top(scores[beside], m)
                w = np.where(has_name[beside], np.float32(self.worth), np.float32(0.0)).astype(np.float32)
                at = np.arange(len(beside))[:, None]
                seeds[at, cols] = seeds[at, cols] + w[:, None] * contrib
                scores[beside] = seeds
            return scores
        tracks_q = self.tables.queries(seed_rows)
        return self.name_scores(mix_queries(tracks_q, name_q, n_seeds, has_name, self.worth))

    @functools.cached_property
    def space(self) -> SeedIndex:
        """The name space [I | prior] as a blocked scan (`SeedIndex.name_space`), no copy."""
        return SeedIndex.name_space(self.tables.items_t, self.prior, block=self.block)

    def top_k(
        self,
        seed_rows: Sequence[Sequence[int]],
        token_rows: Sequence[Sequence[int]],
        k: int,
        batch: int = 2048,
    ) -> TopK:
        """Top-k rows for playlists given by seeds and name tokens (rows of `rows`), seeds excluded:
        `scores`' rule (score descending, ties to the lower row, seeds last), never holding a
        [playlists x items] matrix. The name's scores come from a blocked scan of the name space
        (`space`: its top k, or its top M+1 beside seeds under per-seed aggregation); the seeds'
        per-seed lists from the tables' own scan, summed sparsely with the name's (`SeedLists`).
        Memory: the scan's blocks and each playlist's kept lists, whatever the catalogue x batch."""
        n_items = self.tables.n_items
        k_eff = min(k, n_items)
        out_rows = np.empty((len(seed_rows), k_eff), dtype=np.int64)
        out_scores = np.empty((len(seed_rows), k_eff), dtype=np.float32)
        for start in range(0, len(seed_rows), batch):
            stop = min(start + batch, len(seed_rows))
            sets = [np.unique(np.asarray(r, dtype=np.int64)) for r in seed_rows[start:stop]]
            name_q, has_name = name_queries(self.rows, token_rows[start:stop])
            alone = np.flatnonzero([not len(s) for s in sets])
            if len(alone):  # the name's own scores against every item
                cols, vals = self.space.top(name_q[alone], k_eff)
                out_rows[start + alone], out_scores[start + alone] = cols, vals
            beside = np.flatnonzero([len(s) > 0 for s in sets])
            if len(beside):
                part = [sets[i] for i in beside]
                if self.tables.per_seed > 0:
                    cols, vals = self._per_seed_beside(part, name_q[beside], has_name[beside], k_eff)
                else:
                    given = [np.asarray(seed_rows[start + i], dtype=np.int64) for i in beside]
                    cols, vals = self._mean_beside(given, part, name_q[beside], has_name[beside], k_eff)
                out_rows[start + beside], out_scores[start + beside] = cols, vals
        return TopK(rows=out_rows, scores=out_scores)

    def _per_seed_beside(
        self, sets: list[np.ndarray], name_q: np.ndarray, has_name: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The seeds' per-seed sums plus `worth` times the name's own list, sparse (`scores`)."""
        n_items = self.tables.n_items
        agg = self.tables.per_seed_lists(sets).aggregate(sets)
        m = min(int(self.tables.per_seed), n_items - 1)
        if m >= 1:
            cols, vals = self.space.top(name_q, m + 1)
            contrib = vals[:, :m] - vals[:, m : m + 1]
            w = np.where(has_name, np.float32(self.worth), np.float32(0.0)).astype(np.float32)
            added = (w[:, None] * contrib).ravel()
            owner = np.repeat(np.arange(len(sets), dtype=np.int64), m)
            keys = np.concatenate([agg.owner * n_items + agg.item, owner * n_items + cols[:, :m].ravel()])
            values = np.concatenate([agg.score, np.zeros(len(added), np.float32)])
            uniq, first = np.unique(keys, return_index=True)
            total = values[first]  # each item's seed sum (0 where no seed kept it)...
            at = np.searchsorted(uniq, owner * n_items + cols[:, :m].ravel())
            total[at] = total[at] + added  # ...plus the name's contribution, as the dense rule adds it
            agg = Aggregated(uniq // n_items, uniq % n_items, total)
        return sparse_top_k(agg, sets, k, n_items)

    def _mean_beside(
        self,
        given: list[np.ndarray],
        sets: list[np.ndarray],
        name_q: np.ndarray,
        has_name: np.ndarray,
        k: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The name mixed into the tracks' query, the mean of the seeds' rows of Q (`mix_queries`;
        the seeds as given), the seeds (`sets`) excluded."""
        n_items = self.tables.n_items
        tracks_q = self.tables.queries(given)
        n_seeds = np.array([len(s) for s in given], dtype=np.int64)
        q = mix_queries(tracks_q, name_q, n_seeds, has_name, self.worth)
        size = min(n_items, k + max(len(s) for s in sets))
        cols, vals = self.space.top(q, size)
        out_rows = np.empty((len(sets), k), dtype=np.int64)
        out_scores = np.empty((len(sets), k), dtype=np.float32)
        for i, seeds in enumerate(sets):
            keep = ~np.isin(cols[i], seeds)
            got = min(int(keep.sum()), k)
            out_rows[i, :got], out_scores[i, :got] = cols[i][keep][:got], vals[i][keep][:got]
            out_rows[i, got:], out_scores[i, got:] = seeds[: k - got], -np.inf  # seeds last, ascending
        return out_rows, out_scores


def query_vectors(normed: np.ndarray, seed_rows: Sequence[Sequence[int]]) -> np.ndarray:
    """Mean of each playlist's seed rows of `normed` (Q = I); an empty playlist gives a zero query."""
    return KnnTables(items_t=np.asarray(normed).T).queries(seed_rows)


def top_k(
    normed: np.ndarray,
    seed_rows: Sequence[Sequence[int]],
    k: int,
    batch_size: int = 1024,
    items: np.ndarray | None = None,
    per_seed: int = 0,
    seed_index: SeedIndex | None = None,
) -> TopK:
    """Top-k rows for each playlist with Q = `normed` and I = `items` (default: the same array),
    by the mean rule or, `per_seed` = M > 0, per-seed aggregation (its scan: `seed_index`)."""
    if items is None:
        tables = KnnTables(items_t=np.asarray(normed).T, per_seed=per_seed, seed_index=seed_index)
    else:
        tables = KnnTables(
            items_t=np.asarray(items).T, query_table=normed, per_seed=per_seed, seed_index=seed_index
        )
    return tables.top_k(seed_rows, k, batch_size)


def _select_top(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k per row, sorted by score descending then row index ascending.

    Wide rows are pre-filtered: the k-th largest score of every 16th column is a lower bound of the
    row's k-th largest score, so keeping the scores at or above it keeps the whole top k (ties
    included) while sorting only about 16 k candidates per row instead of partitioning every column.
    When a row ties massively at the bound, only as many tied scores as could still be needed are
    kept, lowest columns first (`_trim_ties`).
    """
    n_rows, n_items = scores.shape
    if k < n_items:
        # Narrow rows: the exact k-th largest (ties across it still go to the lower rows).
        sub = scores[:, ::_PREFILTER_STRIDE] if n_items >= _PREFILTER_STRIDE * k * 4 else scores
        bound = np.partition(sub, sub.shape[1] - k, axis=1)[:, sub.shape[1] - k]
        flat = np.flatnonzero(scores >= bound[:, None])  # 1-D nonzero: far faster than 2-D
        if len(flat) > _TIE_FACTOR * k * n_rows:
            flat = _trim_ties(scores, bound, k)
        rows, cols = np.divmod(flat, n_items)
        vals = scores.ravel()[flat]
        order = np.lexsort((cols, -vals, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        starts = np.searchsorted(rows, np.arange(n_rows))
        rank = np.arange(len(rows)) - starts[rows]
        keep = rank < k
        return (
            cols[keep].reshape(n_rows, k).astype(np.int64),
            vals[keep].reshape(n_rows, k).astype(np.float32),
        )
    part = np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    rows = np.take_along_axis(part, order, axis=1)
    return rows.astype(np.int64), np.take_along_axis(part_scores, order, axis=1).astype(np.float32)


_PREFILTER_STRIDE = 16
_TIE_FACTOR = 64  # candidates per row beyond 64 k: many ties at the bound, trimmed first


def _trim_ties(scores: np.ndarray, bound: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of the scores above each row's bound, plus, of those equal to it, only as many
    as the row may still need, lowest columns first (they come last in a row's order): many ties,
    e.g. the zero scores of the per-seed rule, would otherwise all be sorted."""
    above = scores > bound[:, None]
    at = scores == bound[:, None]
    need = np.maximum(k - above.sum(axis=1), 0)
    at &= (need > 0)[:, None]
    crowded = np.flatnonzero((need > 0) & (at.sum(axis=1) > need))
    if len(crowded):
        sub_at = at[crowded]
        sub_at &= np.cumsum(sub_at, axis=1, dtype=np.int32) <= need[crowded, None]
        at[crowded] = sub_at
    return np.flatnonzero(above | at)
