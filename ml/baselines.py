"""The math of the two training-free baselines: most popular, and item co-occurrence kNN.

Their `Ranker` classes (fit/rank/save/load) are in `ml.rankers`; the seed recipe is a gensim model
(`ml.word2vec.Track2Vec`). Only numpy and scipy here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ml.shapes import K_MAX, Ragged, Ranking


def popularity_counts(train: Ragged, n_tracks: int) -> np.ndarray:
    """Train playlists (sessions) containing each track; tracks are distinct inside a session."""
    return np.bincount(train.values, minlength=n_tracks).astype(np.int64)


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


def playlist_matrix(
    playlists: Ragged, n_tracks: int, max_len: int | None = None, seed: int = 0
) -> sp.csr_matrix:
    """Binary (playlists x tracks) matrix. Playlists longer than max_len are cut into random
    chunks of at most max_len tracks (every track kept), which bounds the co-occurrence cost that
    grows with the square of a playlist's length."""
    lengths = playlists.lengths
    row_of = np.repeat(np.arange(len(playlists), dtype=np.int64), lengths)
    cols = playlists.values
    if max_len is not None and len(lengths) and lengths.max() > max_len:
        rng = np.random.default_rng(seed)
        pos = np.arange(len(cols)) - np.repeat(playlists.indptr[:-1], lengths)
        perm_pos = np.empty_like(pos)
        for i in np.flatnonzero(lengths > max_len):  # few rows: a loop is fine
            a, b = playlists.indptr[i], playlists.indptr[i + 1]
            perm_pos[a:b] = rng.permutation(b - a)
        short = np.repeat(lengths <= max_len, lengths)
        perm_pos[short] = pos[short]
        chunk = perm_pos // max_len
        # New row id per (playlist, chunk).
        key = row_of * (int(lengths.max()) // max_len + 1) + chunk
        _, row_of = np.unique(key, return_inverse=True)
    data = np.ones(len(cols), dtype=np.float32)
    n_rows = int(row_of.max()) + 1 if len(row_of) else 0
    return sp.csr_matrix((data, (row_of, cols)), shape=(n_rows, n_tracks))


@dataclass(frozen=True)
class CoocModel:
    """Item-item scores: row i holds the best `max_neighbors` co-occurring tracks of track i."""

    item_item: sp.csr_matrix  # (n_tracks, n_tracks) float32
    normalise: str  # "none": raw co-occurrence counts; "cosine": count / sqrt(n_i * n_j)

    @property
    def known(self) -> np.ndarray:
        return np.asarray(self.item_item.getnnz(axis=1) > 0)


def fit_cooc(
    train: Ragged,
    n_tracks: int,
    normalise: str = "cosine",
    max_neighbors: int = 200,
    max_len: int = 500,
    seed: int = 0,
) -> CoocModel:
    """Sparse item-item co-occurrence over train playlists, built in row blocks and pruned."""
    return fit_cooc_variants(train, n_tracks, (normalise,), max_neighbors, max_len, seed=seed)[normalise]


def fit_cooc_variants(
    train: Ragged,
    n_tracks: int,
    normalisations: tuple[str, ...] = ("cosine", "none"),
    max_neighbors: int = 200,
    max_len: int = 500,
    block_work: int = 20_000_000,
    seed: int = 0,
    rows: np.ndarray | None = None,
) -> dict[str, CoocModel]:
    """One pass over the co-occurrence rows, one pruned item-item matrix per normalisation.

    Rows are computed in blocks sized by their work (the summed length of the playlists holding the
    block's tracks), so memory stays bounded however popular a track is; each row keeps its
    `max_neighbors` highest scores (ties at the cut: the order of np.argpartition, deterministic).
    `rows` (track indices) computes only those rows and leaves the others empty: a row depends on
    the train playlists alone, so ranking queries made of those tracks gives exactly the full
    model's result at a fraction of its time and memory (an evaluation knows its queries).
    """
    for normalise in normalisations:
        if normalise not in ("none", "cosine"):
            raise ValueError(f"normalise must be 'none' or 'cosine', not {normalise!r}")
    x = playlist_matrix(train, n_tracks, max_len=max_len, seed=seed)
    xt = x.T.tocsr()
    counts = np.asarray(x.sum(axis=0)).ravel()
    inv_sqrt = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0).astype(np.float32)
    used = np.flatnonzero(counts > 0)
    if rows is not None:
        wanted = np.zeros(n_tracks, dtype=bool)
        wanted[np.asarray(rows, dtype=np.int64)] = True
        used = used[wanted[used]]
    work = np.asarray(xt @ np.asarray(x.sum(axis=1)).ravel()).ravel()[used]
    block_id = np.cumsum(work) // block_work
    bounds = np.flatnonzero(np.r_[True, block_id[1:] != block_id[:-1], True])
    # Each normalisation's kept entries go straight into one buffer sized for the worst case (pages
    # never written are never allocated), so memory is what is kept, not twice that.
    cap = len(used) * max_neighbors
    kept = {n: (np.empty(cap, dtype=np.int32), np.empty(cap, dtype=np.float32)) for n in normalisations}
    per_row = {n: np.zeros(n_tracks, dtype=np.int64) for n in normalisations}
    filled = dict.fromkeys(normalisations, 0)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        block = used[a:b]
        c = (xt[block] @ x).tocsr()  # (len(block), n_tracks), local row i = track block[i]
        c.sort_indices()
        row_of = np.repeat(np.arange(len(block)), np.diff(c.indptr))
        not_self = c.indices != block[row_of]
        for normalise in normalisations:
            data = c.data.astype(np.float32)
            if normalise == "cosine":
                data = data * inv_sqrt[block[row_of]] * inv_sqrt[c.indices]
            n_kept, indices, values = _prune_csr(c.indptr, c.indices, data, not_self, max_neighbors)
            f = filled[normalise]
            kept[normalise][0][f : f + len(indices)] = indices
            kept[normalise][1][f : f + len(indices)] = values
            filled[normalise] = f + len(indices)
            per_row[normalise][block] = n_kept
        del c, row_of, not_self
    models = {}
    for normalise in normalisations:
        nnz = filled[normalise]
        index_dtype = np.int32 if nnz < np.iinfo(np.int32).max else np.int64
        indptr = np.zeros(n_tracks + 1, dtype=index_dtype)
        np.cumsum(per_row[normalise], out=indptr[1:])
        indices = kept[normalise][0][:nnz].astype(index_dtype, copy=False)
        item_item = sp.csr_matrix((kept[normalise][1][:nnz], indices, indptr), shape=(n_tracks, n_tracks))
        models[normalise] = CoocModel(item_item=item_item, normalise=normalise)
    return models


def prune_neighbors(model: CoocModel, m: int) -> CoocModel:
    """The same item-item scores keeping each row's m best (what `max_neighbors=m` would keep, up to
    ties at the cut): a smaller neighbourhood tried on valid without another co-occurrence pass."""
    x = model.item_item
    per_row, indices, data = _prune_csr(x.indptr, x.indices, x.data, np.ones(len(x.data), dtype=bool), m)
    indptr = np.zeros(x.shape[0] + 1, dtype=np.int64)
    np.cumsum(per_row, out=indptr[1:])
    return CoocModel(
        item_item=sp.csr_matrix((data, indices, indptr), shape=x.shape), normalise=model.normalise
    )


def _prune_csr(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, keep: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: drop entries where keep is False, then keep the m highest. Returns (kept per row,
    column indices int32, values float32), rows in order."""
    keep = keep.copy()
    lengths = np.diff(indptr)
    for i in np.flatnonzero(lengths > m):  # only rows with more than m entries need a cut
        a, b = indptr[i], indptr[i + 1]
        seg = np.where(keep[a:b], data[a:b], -np.inf)
        if np.count_nonzero(keep[a:b]) > m:
            drop = np.argpartition(-seg, m - 1)[m:]
            keep[a + drop] = False
    row_of = np.repeat(np.arange(len(lengths)), lengths)
    per_row = np.bincount(row_of[keep], minlength=len(lengths))
    return per_row, indices[keep].astype(np.int32), data[keep].astype(np.float32)


def _prune(r: np.ndarray, col: np.ndarray, val: np.ndarray, m: int) -> tuple[np.ndarray, ...]:
    """Keep each row's m highest values (ties by the lower column)."""
    order = np.lexsort((col, -val, r))
    r, col, val = r[order], col[order], val[order]
    starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    rank = np.arange(len(r)) - np.repeat(starts, np.diff(np.r_[starts, len(r)]))
    keep = rank < m
    return r[keep], col[keep], val[keep]


def rank_cooc(
    model: CoocModel, seeds: Ragged, popular: np.ndarray, k: int = K_MAX, batch: int = 2048
) -> Ranking:
    """Score = summed item-item scores from the seeds; seeds excluded; short lists are padded with
    popular tracks, and playlists whose seeds have no neighbours fall back to popularity."""
    n, n_tracks = len(seeds), model.item_item.shape[0]
    tracks = np.full((n, k), -1, dtype=np.int64)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    fallback = np.zeros(n, dtype=bool)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        part = Ragged(
            seeds.indptr[start : stop + 1] - seeds.indptr[start],
            seeds.values[seeds.indptr[start] : seeds.indptr[stop]],
        )
        q_rows = np.repeat(np.arange(stop - start), part.lengths)
        q = sp.csr_matrix(
            (np.ones(len(q_rows), dtype=np.float32), (q_rows, part.values)), shape=(stop - start, n_tracks)
        )
        s = (q @ model.item_item).tocsr()
        lengths = np.diff(s.indptr)
        r = np.repeat(np.arange(stop - start, dtype=np.int64), lengths)
        col, val = s.indices.astype(np.int64), s.data
        # Drop the seeds themselves, then keep each row's entries at or above its k-th best score.
        keep = ~np.isin(r * n_tracks + col, q_rows * n_tracks + part.values)
        threshold = np.full(stop - start, -np.inf, dtype=np.float32)
        for i in np.flatnonzero(lengths > k):  # rows with more than k candidates need a cut
            seg = val[s.indptr[i] : s.indptr[i + 1]][keep[s.indptr[i] : s.indptr[i + 1]]]
            if len(seg) > k:
                threshold[i] = np.partition(seg, len(seg) - k)[len(seg) - k]
        keep &= val >= threshold[r]
        r, col, val = _prune(r[keep], col[keep], val[keep], k)  # sorts the few left: ties to the lower id
        starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]]) if len(r) else np.array([], dtype=np.int64)
        rank = np.arange(len(r)) - np.repeat(starts, np.diff(np.r_[starts, len(r)])) if len(r) else r
        tracks[start + r, rank] = col
        scores[start + r, rank] = val
    short = np.flatnonzero(tracks[:, -1] < 0)
    for i in short:
        have = tracks[i][tracks[i] >= 0]
        fallback[i] = len(have) == 0
        exclude = Ragged.from_lists([np.concatenate([seeds.row(i), have])])
        fill = rank_popularity(popular, exclude, k - len(have)).tracks[0]
        tracks[i, len(have) :] = fill
    return Ranking(tracks=tracks, scores=scores, fallback=fallback)
