"""Baselines on the same split and protocol as the model: most popular and item co-occurrence kNN.

(The third baseline, the seed recipe, is a gensim model: `ml.train` fits it and `ml.evaluate` scores
it like the selected model.) Only numpy and scipy here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ml.evaluate import K_MAX, Ragged, Ranking, rank_popularity


def popularity_counts(train: Ragged, n_tracks: int) -> np.ndarray:
    """Train playlists (sessions) containing each track; tracks are distinct inside a session."""
    return np.bincount(train.values, minlength=n_tracks).astype(np.int64)


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
    block: int = 4096,
    seed: int = 0,
) -> CoocModel:
    """Sparse item-item co-occurrence over train playlists, built in row blocks and pruned."""
    return fit_cooc_variants(train, n_tracks, (normalise,), max_neighbors, max_len, block, seed)[normalise]


def fit_cooc_variants(
    train: Ragged,
    n_tracks: int,
    normalisations: tuple[str, ...] = ("cosine", "none"),
    max_neighbors: int = 200,
    max_len: int = 500,
    block: int = 4096,
    seed: int = 0,
) -> dict[str, CoocModel]:
    """One pass over the co-occurrence blocks, one pruned item-item matrix per normalisation."""
    for normalise in normalisations:
        if normalise not in ("none", "cosine"):
            raise ValueError(f"normalise must be 'none' or 'cosine', not {normalise!r}")
    x = playlist_matrix(train, n_tracks, max_len=max_len, seed=seed)
    xt = x.T.tocsr()
    counts = np.asarray(x.sum(axis=0)).ravel()
    inv_sqrt = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0).astype(np.float32)
    used = np.flatnonzero(counts > 0)
    parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {n: [] for n in normalisations}
    for start in range(0, len(used), block):
        rows = used[start : start + block]
        c = (xt[rows] @ x).tocoo()  # (len(rows), n_tracks)
        r, col, val = rows[c.row], c.col.astype(np.int64), c.data.astype(np.float32)
        keep = r != col
        r, col, val = r[keep], col[keep], val[keep]
        for normalise in normalisations:
            v = val * inv_sqrt[r] * inv_sqrt[col] if normalise == "cosine" else val
            parts[normalise].append(_prune(r, col, v, max_neighbors))
    models = {}
    for normalise, pieces in parts.items():
        if pieces:
            r, col, val = (np.concatenate([p[i] for p in pieces]) for i in range(3))
        else:
            r = col = np.array([], dtype=np.int64)
            val = np.array([], dtype=np.float32)
        item_item = sp.csr_matrix((val, (r, col)), shape=(n_tracks, n_tracks), dtype=np.float32)
        models[normalise] = CoocModel(item_item=item_item, normalise=normalise)
    return models


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
        s = (q @ model.item_item).tocoo()
        r, col, val = s.row.astype(np.int64), s.col.astype(np.int64), s.data
        # Drop the seeds themselves.
        is_seed = np.isin(r * n_tracks + col, q_rows * n_tracks + part.values)
        r, col, val = _prune(r[~is_seed], col[~is_seed], val[~is_seed], k)
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
