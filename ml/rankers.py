"""One shape for every model: the `Ranker` protocol and the rankers that need no gensim training.

After benfred/implicit's RecommenderBase: a ranker is fitted on the train split, ranks tracks for
playlists given by their seed tracks, and saves to / loads from a run folder.

    fit(train, track_ids) -> self     train: Ragged of global track indices; track_ids: their ids
    rank(seeds, k) -> Ranking         top-k global track indices and scores per playlist, seeds
                                      excluded, best first; -1 pads a short list
    known                             tracks it can recommend (evaluation's oov_share)
    query_known                       tracks it takes as a query as they are (the last-item
                                      protocol replaces any other query track at random)
    describe() -> dict                what it chose (e.g. a normalisation), reported with its metrics
    save(directory) / load(directory, track_ids)

Implementations: `PopularityRanker`, `CoocRanker` (item co-occurrence kNN) and `VectorRanker`
(scores any track vectors with `ml.knn`, the one rule shared with export and serving), here;
`ml.word2vec.Track2Vec` (track2vec and the seed recipe) subclasses `VectorRanker` and adds the
gensim fit. A new scoring rule is a new `rank`; a name-based ranker is one more class. Only numpy,
scipy and the run folder's loaders here: no training code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from ml.baselines import (
    CoocModel,
    fit_cooc_variants,
    popularity_counts,
    popularity_order,
    rank_cooc,
    rank_popularity,
)
from ml.knn import normalize_rows, top_k
from ml.run_dir import RunDir
from ml.shapes import K_MAX, Ragged, Ranking


@runtime_checkable
class Ranker(Protocol):
    name: str

    @property
    def known(self) -> np.ndarray: ...

    @property
    def query_known(self) -> np.ndarray: ...

    def fit(self, train: Ragged, track_ids: np.ndarray) -> Ranker: ...

    def rank(self, seeds: Ragged, k: int = K_MAX) -> Ranking: ...

    def describe(self) -> dict[str, Any]: ...

    def save(self, directory: Path) -> None: ...


def _index_of(track_ids: np.ndarray) -> dict[str, int]:
    return {str(t): i for i, t in enumerate(track_ids)}


# --- popularity ---------------------------------------------------------------------------------


class PopularityRanker:
    """Most popular train tracks that are not seeds; the score is minus the rank."""

    name = "popularity"

    def __init__(self) -> None:
        self.counts = np.zeros(0, dtype=np.int64)
        self.track_ids = np.array([], dtype=str)

    def fit(self, train: Ragged, track_ids: np.ndarray) -> PopularityRanker:
        self.track_ids = np.asarray(track_ids)
        self.counts = popularity_counts(train, len(track_ids))
        return self

    @property
    def order(self) -> np.ndarray:
        return popularity_order(self.counts)

    @property
    def known(self) -> np.ndarray:
        return self.counts > 0

    query_known = known

    def rank(self, seeds: Ragged, k: int = K_MAX) -> Ranking:
        return rank_popularity(self.order, seeds, k)

    def describe(self) -> dict[str, Any]:
        return {}

    def save(self, directory: Path) -> None:
        """popularity.parquet: track_id, count, most popular first (ties by track_id)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        order = self.order
        table = pa.table(
            {
                "track_id": pa.array(self.track_ids[order].tolist(), pa.string()),
                "count": pa.array(self.counts[order], pa.int64()),
            }
        )
        pq.write_table(table, RunDir(Path(directory)).popularity)

    @classmethod
    def load(cls, directory: Path, track_ids: np.ndarray) -> PopularityRanker:
        ids, counts = RunDir(Path(directory)).load_popularity()
        index = _index_of(track_ids)
        ranker = cls()
        ranker.track_ids = np.asarray(track_ids)
        ranker.counts = np.zeros(len(track_ids), dtype=np.int64)
        rows = [index[t] for t in ids if t in index]
        ranker.counts[rows] = [c for t, c in zip(ids, counts, strict=True) if t in index]
        return ranker


# --- item co-occurrence kNN ---------------------------------------------------------------------


class CoocRanker:
    """Summed item-item co-occurrence scores of the seeds (ml.baselines), popularity-padded."""

    name = "item_cooc_knn"

    def __init__(self, normalise: str = "cosine", seed: int = 0) -> None:
        self.normalise = normalise
        self.seed = seed
        self.model: CoocModel | None = None
        self.popular = np.array([], dtype=np.int64)
        self.train_known = np.zeros(0, dtype=bool)

    @classmethod
    def variants(
        cls, train: Ragged, track_ids: np.ndarray, normalisations: tuple[str, ...], seed: int = 0
    ) -> list[CoocRanker]:
        """One fitted ranker per normalisation, from one pass over the co-occurrences."""
        models = fit_cooc_variants(train, len(track_ids), normalisations, seed=seed)
        counts = popularity_counts(train, len(track_ids))
        return [cls(n, seed)._set(models[n], counts) for n in normalisations]

    def _set(self, model: CoocModel, counts: np.ndarray) -> CoocRanker:
        self.model, self.popular, self.train_known = model, popularity_order(counts), counts > 0
        return self

    def fit(self, train: Ragged, track_ids: np.ndarray) -> CoocRanker:
        return self.variants(train, track_ids, (self.normalise,), self.seed)[0]

    @property
    def known(self) -> np.ndarray:
        assert self.model is not None, "fit or load first"
        return self.model.known

    @property
    def query_known(self) -> np.ndarray:
        return self.train_known

    def rank(self, seeds: Ragged, k: int = K_MAX) -> Ranking:
        assert self.model is not None, "fit or load first"
        return rank_cooc(self.model, seeds, self.popular, k)

    def describe(self) -> dict[str, Any]:
        return {"normalise": self.normalise}

    def save(self, directory: Path) -> None:
        """item_cooc.npz: the pruned item-item matrix, the popularity order and the train mask."""
        assert self.model is not None, "fit first"
        path = RunDir(Path(directory)).file(RunDir.ITEM_COOC)
        m = self.model.item_item
        np.savez(
            path,
            data=m.data,
            indices=m.indices,
            indptr=m.indptr,
            shape=np.array(m.shape),
            popular=self.popular,
            train_known=self.train_known,
            normalise=np.array(self.normalise),
        )

    @classmethod
    def load(cls, directory: Path, track_ids: np.ndarray) -> CoocRanker:
        with np.load(RunDir(Path(directory)).file(RunDir.ITEM_COOC)) as f:
            item_item = sp.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
            ranker = cls(str(f["normalise"]))
            ranker.model = CoocModel(item_item=item_item, normalise=ranker.normalise)
            ranker.popular, ranker.train_known = f["popular"], f["train_known"]
        if item_item.shape[0] != len(track_ids):
            raise ValueError(
                f"{directory}: item_cooc.npz has {item_item.shape[0]} tracks, not {len(track_ids)}"
            )
        return ranker


# --- vectors, scored by ml.knn ------------------------------------------------------------------


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


def auto_batch_size(n_items: int, budget_cells: int = 32_000_000) -> int:
    """Playlists per matrix product so one batch's score matrix stays near 128 MB of float32."""
    return int(max(16, min(4096, budget_cells // max(n_items, 1))))


class VectorRanker:
    """Track vectors scored by `ml.knn` (mean of the seeds' normalized vectors, cosine, seeds
    excluded); playlists with no known seed get the popularity list (the serving fallback).

    Fitting vectors is a subclass's job (`ml.word2vec.Track2Vec`); this class loads, ranks, saves.
    """

    name = "track2vec"

    def __init__(self) -> None:
        self.keyed_vectors: Any = None  # gensim KeyedVectors (what save writes)
        self.model: VectorModel | None = None
        self.popular = np.array([], dtype=np.int64)

    def set_vectors(self, keyed_vectors: Any, track_ids: np.ndarray, popular: np.ndarray) -> VectorRanker:
        """Use these vectors (keys = track ids) for the tracks of `track_ids` (global indices)."""
        index = _index_of(track_ids)
        keys = keyed_vectors.index_to_key
        track_of_row = np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))
        self.keyed_vectors = keyed_vectors
        self.model = VectorModel.from_vectors(keyed_vectors.vectors, track_of_row, len(track_ids))
        self.popular = np.asarray(popular, dtype=np.int64)
        return self

    def fit(self, train: Ragged, track_ids: np.ndarray) -> VectorRanker:
        raise NotImplementedError("VectorRanker only loads vectors; ml.word2vec.Track2Vec fits them")

    @property
    def known(self) -> np.ndarray:
        assert self.model is not None, "fit or load first"
        return self.model.known

    @property
    def query_known(self) -> np.ndarray:
        return self.known

    def rank(self, seeds: Ragged, k: int = K_MAX) -> Ranking:
        assert self.model is not None, "fit or load first"
        return rank_vectors(self.model, seeds, self.popular, k)

    def describe(self) -> dict[str, Any]:
        return {}

    def save(self, directory: Path) -> None:
        """vectors.kv, with the matrix beside it as .npy so it loads with mmap='r'."""
        self.keyed_vectors.save(str(RunDir(Path(directory)).vectors), separately=["vectors"])

    @classmethod
    def load(cls, directory: Path, track_ids: np.ndarray) -> VectorRanker:
        """vectors.kv, and popularity.parquet for the fallback, from a run folder."""
        run = RunDir(Path(directory))
        popular = PopularityRanker.load(directory, track_ids).order
        return cls().set_vectors(run.load_keyed_vectors(), track_ids, popular)
