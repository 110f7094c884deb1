"""How ml.knn's per-seed rule is computed (ml/knn.py's module docstring states the rule): each
distinct seed's top M+1 items (`SeedIndex`: a blocked scan of the item matrix, or an exact pruned one
over k-means blocks), kept per distinct seed (`SeedLists`), summed sparsely per playlist with the
dense rule's fill. Nothing here changes an answer: tests/test_knn.py checks every path against the
dense rule; bench/results/per_seed_cost.md measures them on a real full-preset model.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController


@dataclass(frozen=True)
class TopK:
    rows: np.ndarray  # (n_playlists, k) int64 row indices into the vectors, best first
    scores: np.ndarray  # (n_playlists, k) float32 inner product of the mean query with the item


@dataclass(frozen=True)
class Aggregated:
    """Sparse per-seed scores: (playlist, item, summed contribution), by playlist then item."""

    owner: np.ndarray  # (e,) int64 playlist index
    item: np.ndarray  # (e,) int64 row
    score: np.ndarray  # (e,) float32 sum of the contributions, in ascending seed order


@dataclass(frozen=True)
class SeedLists:
    """The per-seed rule's top lists of distinct seeds (module docstring): `cols[i]`/`vals[i]` are
    the top M+1 rows and scores of seed `seeds[i]` (seeds ascending), score descending, ties to the
    lower row. A seed's list depends on nothing else, so it is computed once however many playlists
    hold the seed."""

    seeds: np.ndarray  # (s,) int64 distinct seed rows, ascending
    cols: np.ndarray  # (s, M+1) int64
    vals: np.ndarray  # (s, M+1) float32
    m: int

    @classmethod
    def empty(cls, m: int) -> SeedLists:
        width = max(m, 0) + 1
        return cls(np.zeros(0, np.int64), np.zeros((0, width), np.int64), np.zeros((0, width), np.float32), m)

    def aggregate(self, seed_rows: Sequence[Sequence[int]]) -> Aggregated:
        """Each playlist's items with a contribution, summed in ascending seed order (float32, one
        addition at a time: the sums the dense rule's `np.add.at` gives)."""
        return self._aggregate_sets([np.unique(np.asarray(r, dtype=np.int64)) for r in seed_rows])

    def _aggregate_sets(self, sets: Sequence[np.ndarray]) -> Aggregated:
        """`aggregate` over each playlist's distinct seed rows, ascending (np.unique)."""
        lengths = np.array([len(s) for s in sets], dtype=np.int64)
        empty = Aggregated(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
        if self.m < 1 or not lengths.sum():
            return empty
        pos = np.searchsorted(self.seeds, np.concatenate(sets))  # each occurrence's list
        owner = np.repeat(np.repeat(np.arange(len(sets), dtype=np.int64), lengths), self.m)
        item = self.cols[pos, : self.m].ravel()
        contrib = (self.vals[pos, : self.m] - self.vals[pos, self.m : self.m + 1]).ravel()
        n = int(max(self.cols.max() + 1, 1))
        keys, inverse = np.unique(owner * n + item, return_inverse=True)
        total = np.zeros(len(keys), dtype=np.float32)
        np.add.at(total, inverse, contrib)  # in the given order: seeds ascending within a playlist
        return Aggregated(keys // n, keys % n, total)

    def top_k(self, seed_rows: Sequence[Sequence[int]], k: int, n_items: int, batch: int = 2048) -> TopK:
        """Top-k of each playlist under the rule, without a dense score matrix: the items with a
        positive sum, score descending then lower row; then, as the dense rule's zeros tie, every
        other non-seed row in ascending order; the seeds (scored -inf) last, in ascending order."""
        all_rows = np.empty((len(seed_rows), k), dtype=np.int64)
        all_scores = np.empty((len(seed_rows), k), dtype=np.float32)
        for start in range(0, len(seed_rows), batch):
            part = seed_rows[start : start + batch]
            sets = [np.unique(np.asarray(r, dtype=np.int64)) for r in part]
            stop = start + len(part)
            all_rows[start:stop], all_scores[start:stop] = sparse_top_k(
                self._aggregate_sets(sets), sets, k, n_items
            )
        return TopK(rows=all_rows, scores=all_scores)


def sparse_top_k(
    agg: Aggregated, sets: Sequence[np.ndarray], k: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """(len(sets), k) rows and scores of the per-seed rule from sparse sums: the items with a
    positive sum, score descending then lower row; then, as the dense rule's zeros tie, every other
    non-seed row in ascending order; the seeds (`sets[i]`, distinct ascending; scored -inf) last."""
    out_rows = np.empty((len(sets), k), dtype=np.int64)
    out_scores = np.empty((len(sets), k), dtype=np.float32)
    seed_keys = np.concatenate([i * n_items + s for i, s in enumerate(sets)] or [np.zeros(0, np.int64)])
    keep = (agg.score > 0) & ~np.isin(agg.owner * n_items + agg.item, seed_keys)
    owner, item, score = agg.owner[keep], agg.item[keep], agg.score[keep]
    order = np.lexsort((item, -score, owner))
    owner, item, score = owner[order], item[order], score[order]
    starts = np.searchsorted(owner, np.arange(len(sets) + 1))
    for i, seeds in enumerate(sets):
        a, b = starts[i], starts[i + 1]
        got = min(b - a, k)
        rows_i, scores_i = out_rows[i], out_scores[i]
        rows_i[:got], scores_i[:got] = item[a : a + got], score[a : a + got]
        if got < k:
            rows_i[got:], scores_i[got:] = _fill(k - got, n_items, item[a:b], seeds)
    return out_rows, out_scores


@dataclass(frozen=True)
class SeedIndex:
    """Exact top-`size` rows of many queries against the item matrix, scanned block by block.

    Scores are `query @ items_t[:, block]` for blocks of item columns (in cache, a batch of queries
    at a time); a query keeps its best `size` (score descending, ties to the lower row) and, once it
    has `size`, only the scores >= its current `size`-th one. `blocked` scans every column (a brute
    force that never holds a [queries x n_items] matrix). `clustered` (k-means on the item rows)
    stores each block's center c, radius r = max |x - c| and largest |x|; the scores of a block are
    at most q.c + |q| r and at most |q| max |x|, so a query skips a block whose bound is below its
    current `size`-th score by more than float rounding (a margin of 1e-4 |q| (|c| + r)): an item
    there scores strictly less than the kept ones, tie or not. The answer is the brute force's.
    """

    items_t: np.ndarray  # [d, n] item columns in scan order (rows ascending within a block)
    starts: np.ndarray  # (n_blocks + 1,) block boundaries in scan positions
    order: np.ndarray | None = None  # (n,) item row of each scan position; None: the identity
    centers: np.ndarray | None = None  # (n_blocks, d) float32; None: no pruning
    radii: np.ndarray | None = None  # (n_blocks,) float32, rounded up
    max_norms: np.ndarray | None = None  # (n_blocks,) float32
    query_batch: int = 256
    workers: int = 0  # query batches scanned in parallel (threads); 0: the cores this process may use
    # The name space of ml.knn.NameRule ([I | prior], `name_space`): item j scores
    # q[:d] . items_t[:, j] + q[d] * extra[j]; None: no extra column.
    extra: np.ndarray | None = None  # (n,) per scan position, float32; queries then have d + 1 columns

    @classmethod
    def blocked(cls, items_t: np.ndarray, block: int = 0) -> SeedIndex:
        """Every column, in row order, `block` columns at a time (0: ~2M scores per query batch)."""
        n = int(items_t.shape[1])
        width = block or max(1024, _BLOCK_CELLS // 256)
        return cls(items_t=items_t, starts=np.r_[np.arange(0, n, width), n].astype(np.int64))

    @classmethod
    def name_space(cls, items_t: np.ndarray, extra: np.ndarray, block: int = 0) -> SeedIndex:
        """A blocked scan of `[items | extra]` without building it: queries of d + 1 columns, item j
        scoring q[:d] . items_t[:, j] + q[d] * extra[j] (ml.knn.NameRule's `[I | prior]`)."""
        base = cls.blocked(items_t, block)
        return cls(items_t=items_t, starts=base.starts, extra=np.asarray(extra, dtype=np.float32))

    @classmethod
    def clustered(
        cls, items_t: np.ndarray, n_blocks: int, seed: int = 0, iterations: int = 8, norm_tiers: int = 1
    ) -> SeedIndex:
        """Item rows grouped by k-means into `n_blocks` clusters (Lloyd's iterations from `seed` on a
        sample, then every row assigned to its nearest center), each cluster cut into `norm_tiers`
        blocks of rows of decreasing norm; each block keeps its own center, radius and largest norm."""
        items = np.ascontiguousarray(np.asarray(items_t, dtype=np.float32).T)
        n = len(items)
        n_blocks = max(1, min(int(n_blocks), n))
        rng = np.random.default_rng(seed)
        sample = items[np.sort(rng.choice(n, size=min(n, 64 * n_blocks), replace=False))]
        centers = sample[rng.choice(len(sample), size=n_blocks, replace=False)].copy()
        for _ in range(iterations):
            label = _nearest(sample, centers)
            sums = np.zeros_like(centers, dtype=np.float64)
            np.add.at(sums, label, sample)
            counts = np.bincount(label, minlength=n_blocks)
            moved = counts > 0
            centers[moved] = (sums[moved] / counts[moved, None]).astype(np.float32)
        label = _nearest(items, centers)
        norms = np.linalg.norm(items, axis=1)
        order = np.lexsort((np.arange(n), -norms, label))  # by cluster, then norm descending
        counts = np.bincount(label, minlength=n_blocks)
        first = np.r_[0, np.cumsum(counts)][label[order]]
        rank = np.arange(n) - first
        tiers = max(1, int(norm_tiers))
        block_of_row = np.empty(n, dtype=np.int64)
        block_of_row[order] = label[order] * tiers + (rank * tiers) // counts[label[order]]
        # Within a block, rows ascending: a block's own top list breaks ties by position.
        order = np.argsort(block_of_row, kind="stable")
        block = block_of_row[order]
        starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
        starts = np.r_[starts, n].astype(np.int64)
        sorted_items = items[order]
        del items
        sizes = np.diff(starts)
        mean = np.add.reduceat(sorted_items, starts[:-1], axis=0, dtype=np.float64) / sizes[:, None]
        mean32 = mean.astype(np.float32)
        owner = np.repeat(np.arange(len(sizes)), sizes)
        dist = np.empty(n, dtype=np.float32)
        for a in range(0, n, 262_144):  # in chunks: no [n, d] float64 copy
            dist[a : a + 262_144] = np.linalg.norm(
                sorted_items[a : a + 262_144] - mean32[owner[a : a + 262_144]], axis=1
            )
        radii = np.maximum.reduceat(dist, starts[:-1]) * np.float32(1 + 1e-5)
        max_norms = np.maximum.reduceat(norms[order], starts[:-1]) * np.float32(1 + 1e-5)
        return cls(
            items_t=np.ascontiguousarray(sorted_items.T),
            starts=starts,
            order=order.astype(np.int64),
            centers=mean32,
            radii=radii.astype(np.float32),
            max_norms=max_norms.astype(np.float32),
        )

    @property
    def n_blocks(self) -> int:
        return len(self.starts) - 1

    def top(
        self, queries: np.ndarray, size: int, stats: dict[str, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(len(queries), size) item rows and scores of each query's top `size`, score descending,
        ties to the lower row; `stats` (if given) counts the scores computed ("scored") out of
        queries x items ("cells")."""
        queries = np.asarray(queries, dtype=np.float32)
        n_q = len(queries)
        cols = np.empty((n_q, size), dtype=np.int64)
        vals = np.empty((n_q, size), dtype=np.float32)
        if self.centers is not None and n_q:  # similar queries together: a batch shares its blocks
            first = np.argmax(queries @ self.centers.T, axis=1)
            visit = np.argsort(first, kind="stable")
        else:
            visit = np.arange(n_q)
        batches = [visit[a : a + self.query_batch] for a in range(0, n_q, self.query_batch)]
        scored = []

        def run(idx: np.ndarray) -> None:
            cols[idx], vals[idx], done = self._top_batch(queries[idx], size)
            scored.append(done)

        # Many batches (evaluation): one per core, BLAS single-threaded meanwhile (a 2-thread BLAS
        # product of 256 x 1k scores ran ~25x slower than a 1-thread one on a busy 2-core machine).
        # One batch (a served request) leaves BLAS as it is: the limit is process-wide.
        workers = min(len(batches), self.workers or _cores())
        if len(batches) == 1:
            run(batches[0])
        else:
            with _blas().limit(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
                list(pool.map(run, batches))
        if stats is not None:
            stats["scored"] = stats.get("scored", 0.0) + float(sum(scored))
            stats["cells"] = stats.get("cells", 0.0) + float(n_q) * self.items_t.shape[1]
        return cols, vals

    def _top_batch(self, q: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, int]:
        b = len(q)
        qn = np.linalg.norm(q, axis=1)
        # Scores of one product can differ from another layout's by rounding (|q| |x| d 2^-24 at
        # most): every item within `slack` of a query's size-th score stays a candidate, and the
        # candidates are rescored canonically at the end (`_canonical`): identical rows (a folded
        # track's row can equal a trained one) then tie exactly and the lower row wins.
        slack = np.float32(1e-5) * qn * np.float32(self._max_norm)
        cand = _Candidates.empty()
        kth = np.full(b, -np.inf, dtype=np.float32)
        filled = np.zeros(b, dtype=bool)
        if self.centers is not None:
            bound = q @ self.centers.T + qn[:, None] * self.radii[None, :]
            bound = np.minimum(bound, qn[:, None] * self.max_norms[None, :])
            scale = np.linalg.norm(self.centers, axis=1) + self.radii
            bound += np.float32(1e-4) * qn[:, None] * scale[None, :]  # float rounding margin
            blocks = np.argsort(-bound.max(axis=0), kind="stable")
        else:
            bound = None
            blocks = np.arange(self.n_blocks)
        scored = 0
        everyone = np.arange(b)
        for blk in blocks:
            s, e = int(self.starts[blk]), int(self.starts[blk + 1])
            if bound is None:
                active = everyone
            else:
                active = np.flatnonzero(~filled | (bound[:, blk] >= kth - slack))
                if not len(active):
                    continue
            p = self._block_scores(q[active], s, e)
            scored += p.size
            bar = kth[active] - slack[active]
            unfilled = np.flatnonzero(~filled[active])
            if len(unfilled) and e - s >= size:  # the block's own size-th score is a lower bound
                own = np.partition(p[unfilled], e - s - size, axis=1)[:, e - s - size]
                bar[unfilled] = np.maximum(bar[unfilled], own - slack[active[unfilled]])
            hit = np.flatnonzero(p >= bar[:, None])
            if len(hit):
                r_i, c_i = np.divmod(hit, e - s)
                pos = c_i + s
                rows = self.order[pos] if self.order is not None else pos
                cand = cand.merge(active[r_i], rows, pos, p.ravel()[hit], b, size, slack)
                kth, filled = cand.kth, cand.filled
        return cand.final(q, self, b, size) + (scored,)

    def _block_scores(self, q: np.ndarray, s: int, e: int) -> np.ndarray:
        """Scores of queries `q` against scan positions [s, e)."""
        if self.extra is None:
            return q @ self.items_t[:, s:e]
        p = q[:, :-1] @ self.items_t[:, s:e]
        p += q[:, -1:] * self.extra[None, s:e]
        return p

    def canonical(self, queries: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Scores of queries[i] against scan position pos[i], computed the same way whatever the
        layout (float64 sums of the float32 products, rounded once to float32): equal rows score
        exactly equal."""
        if self.extra is None:
            return _canonical(queries, self.items_t[:, pos].T)
        q = queries.astype(np.float64)
        v = np.einsum("ij,ij->i", q[:, :-1], self.items_t[:, pos].T.astype(np.float64))
        return (v + q[:, -1] * self.extra[pos].astype(np.float64)).astype(np.float32)

    @functools.cached_property
    def _max_norm(self) -> float:
        if self.max_norms is not None:
            return float(self.max_norms.max()) if len(self.max_norms) else 0.0
        if not self.items_t.size:
            return 0.0
        squares = np.einsum("ij,ij->j", self.items_t, self.items_t)
        if self.extra is not None:
            squares = squares + np.square(self.extra)
        return float(np.sqrt(squares.max()))


@dataclass(frozen=True)
class _Candidates:
    """A query batch's candidates (query, row, scan position, score), sorted by query, score
    descending, row; each query keeps its best `size` and every one within its slack of the
    size-th (`kth`, -inf while fewer than `size`)."""

    q: np.ndarray
    row: np.ndarray
    pos: np.ndarray
    v: np.ndarray
    kth: np.ndarray
    filled: np.ndarray

    @classmethod
    def empty(cls) -> _Candidates:
        z = np.zeros(0, np.int64)
        return cls(z, z, z, np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, bool))

    def merge(
        self,
        q: np.ndarray,
        row: np.ndarray,
        pos: np.ndarray,
        v: np.ndarray,
        b: int,
        size: int,
        slack: np.ndarray,
    ) -> _Candidates:
        q_all = np.concatenate([self.q, q])
        r_all = np.concatenate([self.row, row])
        p_all = np.concatenate([self.pos, pos])
        v_all = np.concatenate([self.v, v]).astype(np.float32)
        o = np.lexsort((r_all, -v_all, q_all))
        q_all, r_all, p_all, v_all = q_all[o], r_all[o], p_all[o], v_all[o]
        starts = np.searchsorted(q_all, np.arange(b))
        counts = np.bincount(q_all, minlength=b)
        filled = counts >= size
        kth = np.full(b, -np.inf, dtype=np.float32)
        kth[filled] = v_all[starts[filled] + size - 1]
        rank = np.arange(len(q_all)) - starts[q_all]
        # Near-ties within the slack stay candidates, but at most `tie_cap(size)` a query: a zero
        # query or a run of identical rows ties every item, and keeping them all held
        # queries x items candidates (an `ml train` search trial ran out of 24 GB). Sorted by score,
        # then row, the cap keeps the lowest rows of an exact tie, which is the rule.
        keep = (rank < size) | ((v_all >= kth[q_all] - slack[q_all]) & (rank < tie_cap(size)))
        return _Candidates(q_all[keep], r_all[keep], p_all[keep], v_all[keep], kth, filled)

    def final(self, q: np.ndarray, index: SeedIndex, b: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Each query's top `size` by its candidates' canonical scores, ties to the lower row."""
        v = index.canonical(q[self.q], self.pos)
        o = np.lexsort((self.row, -v, self.q))
        q_s, r_s, v_s = self.q[o], self.row[o], v[o]
        starts = np.searchsorted(q_s, np.arange(b))
        rank = np.arange(len(q_s)) - starts[q_s]
        keep = rank < size
        top_r = np.full((b, size), -1, dtype=np.int64)
        top_v = np.full((b, size), -np.inf, dtype=np.float32)
        top_r[q_s[keep], rank[keep]] = r_s[keep]
        top_v[q_s[keep], rank[keep]] = v_s[keep]
        return top_r, top_v


def tie_cap(size: int) -> int:
    """Candidates a query keeps at most (its top `size` and the near-ties after them)."""
    return 4 * size + 64


def _canonical(queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Row-wise inner products computed the same way whatever the layout (float64 sums of the
    float32 products, rounded once to float32): equal rows score exactly equal."""
    return np.einsum("ij,ij->i", queries.astype(np.float64), rows.astype(np.float64)).astype(np.float32)


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _nearest(rows: np.ndarray, centers: np.ndarray, block: int = 65536) -> np.ndarray:
    """Index of each row's nearest center (squared distance), in blocks of rows."""
    half = 0.5 * np.einsum("ij,ij->i", centers, centers)
    out = np.empty(len(rows), dtype=np.int64)
    for a in range(0, len(rows), block):
        out[a : a + block] = np.argmax(rows[a : a + block] @ centers.T - half[None, :], axis=1)
    return out


def _fill(need: int, n_items: int, positive: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first `need` rows after the positive ones, as the dense rule orders them: the rows
    scoring 0 (neither positive nor a seed) ascending, then the seeds (-inf) ascending."""
    taken = np.union1d(positive, seeds)
    span = np.arange(min(n_items, need + len(taken)), dtype=np.int64)
    zeros = np.setdiff1d(span, taken, assume_unique=True)[:need]
    rest = need - len(zeros)
    tail = np.asarray(seeds, dtype=np.int64)[:rest]  # sorted (np.unique)
    return np.concatenate([zeros, tail]), np.concatenate(
        [np.zeros(len(zeros), np.float32), np.full(len(tail), -np.inf, np.float32)]
    )


def auto_seed_index(items_t: np.ndarray) -> SeedIndex | None:
    """The per-seed scan evaluation uses for an item matrix: k-means-pruned from CLUSTERED_FROM items
    (~sqrt(n) / 1.5 clusters: 1,024 at the full preset's 2.37M rows, where it computed 1.3% of the
    scores; bench/results/per_seed_cost.md), else None (the blocked scan). Exact either way."""
    n = int(items_t.shape[1])
    if n < CLUSTERED_FROM:
        return None
    return SeedIndex.clustered(items_t, max(16, int(np.sqrt(n) / 1.5)))


CLUSTERED_FROM = 200_000  # items from which evaluation prunes the per-seed scan


_BLOCK_CELLS = 2_097_152  # per-seed scan: query batch x block columns scored at a time (8 MB)
