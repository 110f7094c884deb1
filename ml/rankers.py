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

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from ml.baselines import (
    CoocModel,
    fit_cooc_variants,
    popularity_counts,
    popularity_order,
    prune_neighbors,
    rank_cooc,
    rank_popularity,
)
from ml.knn import SeedIndex, auto_seed_index, normalize_rows, top_k
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

    def __init__(self, normalise: str = "cosine", seed: int = 0, neighbors: int = 200) -> None:
        self.normalise = normalise
        self.seed = seed
        self.neighbors = neighbors
        self.selection: list[dict[str, Any]] = []  # the variants tried on valid and their scores
        self.model: CoocModel | None = None
        self.popular = np.array([], dtype=np.int64)
        self.train_known = np.zeros(0, dtype=bool)

    @classmethod
    def variants(
        cls,
        train: Ragged,
        track_ids: np.ndarray,
        normalisations: tuple[str, ...],
        seed: int = 0,
        neighbors: tuple[int, ...] = (200,),
    ) -> list[CoocRanker]:
        """One fitted ranker per (normalisation, neighbours), from one pass over the co-occurrences
        (the largest neighbourhood; smaller ones are its rows' best entries)."""
        models = fit_cooc_variants(train, len(track_ids), normalisations, max(neighbors), seed=seed)
        counts = popularity_counts(train, len(track_ids))
        out = []
        for n in normalisations:
            for m in sorted(neighbors, reverse=True):
                model = models[n] if m == max(neighbors) else prune_neighbors(models[n], m)
                out.append(cls(n, seed, m)._set(model, counts))
        return out

    def _set(self, model: CoocModel, counts: np.ndarray) -> CoocRanker:
        self.model, self.popular, self.train_known = model, popularity_order(counts), counts > 0
        return self

    def fit(self, train: Ragged, track_ids: np.ndarray) -> CoocRanker:
        return self.variants(train, track_ids, (self.normalise,), self.seed, (self.neighbors,))[0]

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
        return {"normalise": self.normalise, "neighbors": self.neighbors}

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
            neighbors=np.array(self.neighbors),
        )

    @classmethod
    def load(cls, directory: Path, track_ids: np.ndarray) -> CoocRanker:
        with np.load(RunDir(Path(directory)).file(RunDir.ITEM_COOC)) as f:
            item_item = sp.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
            ranker = cls(str(f["normalise"]), neighbors=int(f["neighbors"]) if "neighbors" in f else 200)
            ranker.model = CoocModel(item_item=item_item, normalise=ranker.normalise)
            ranker.popular, ranker.train_known = f["popular"], f["train_known"]
        if item_item.shape[0] != len(track_ids):
            raise ValueError(
                f"{directory}: item_cooc.npz has {item_item.shape[0]} tracks, not {len(track_ids)}"
            )
        return ranker


# --- vectors, scored by ml.knn ------------------------------------------------------------------

SCORINGS = ("cosine", "output")


def knn_tables(
    vectors: np.ndarray,
    output: np.ndarray | None,
    counts: np.ndarray,
    scoring: str = "cosine",
    prior: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The query table Q and item matrix I of `ml.knn` for one set of track vectors (rows alike).

    - "cosine": Q = I = the L2-normalized input vectors (the seed recipe's rule);
    - "output": Q = the raw input vectors (gensim `wv.vectors`), I = the negative-sampling output
      weights (`syn1neg`): what CBOW's output layer computes for the mean of the seeds, which keeps
      frequency in the score (Levy & Goldberg 2014), so rare tracks do not crowd the top 10.
    A popularity prior `prior` > 0 appends one column: 1 to every query row (so the mean query keeps
    it) and prior * log(count) to every item row: score = rule + prior * log(train playlists).
    Both stay one inner-product top-k over one item matrix (export and serving are a plain KNN).
    """
    if scoring == "cosine":
        query = items = normalize_rows(vectors)
    elif scoring == "output":
        if output is None:
            raise ValueError("scoring 'output' needs the model's output weights (syn1neg)")
        query, items = np.asarray(vectors, dtype=np.float32), np.asarray(output, dtype=np.float32)
    else:
        raise ValueError(f"scoring must be one of {SCORINGS}, not {scoring!r}")
    if prior:
        log_counts = np.log(np.maximum(np.asarray(counts, dtype=np.float32), 1.0))
        query = np.hstack([query, np.ones((len(query), 1), dtype=np.float32)])
        items = np.hstack([items, np.float32(prior) * log_counts[:, None]]).astype(np.float32)
    return np.ascontiguousarray(query, dtype=np.float32), np.ascontiguousarray(items, dtype=np.float32)


@dataclass(frozen=True)
class VectorModel:
    """The tables of `ml.knn` (query table Q, item matrix I, same rows) plus each row's track."""

    query: np.ndarray  # (n_rows, d) float32: a playlist's query is the mean of its seeds' rows
    items: np.ndarray  # (n_rows, d) float32: scores = query @ items.T (the same array for cosine)
    track_of_row: np.ndarray  # (n_rows,) global track index of each row
    row_of_track: np.ndarray  # (n_tracks,) row of each global track, -1 when not in the vocabulary
    per_seed: int = 0  # ml.knn's rule: 0 the mean query, M > 0 per-seed aggregation

    @functools.cached_property
    def seed_index(self) -> SeedIndex | None:
        """ml.knn's per-seed scan, built once per tables (`auto_seed_index`: exact, pruned if large)."""
        return auto_seed_index(np.asarray(self.items).T)

    @classmethod
    def from_tables(
        cls, query: np.ndarray, items: np.ndarray, track_of_row: np.ndarray, n_tracks: int, per_seed: int = 0
    ) -> VectorModel:
        row_of_track = np.full(n_tracks, -1, dtype=np.int64)
        row_of_track[track_of_row] = np.arange(len(track_of_row))
        return cls(query, items, np.asarray(track_of_row, dtype=np.int64), row_of_track, int(per_seed))

    def with_per_seed(self, per_seed: int) -> VectorModel:
        """The same tables scored by another rule of ml.knn (the search scores each fit under several)."""
        return replace(self, per_seed=int(per_seed))

    @classmethod
    def from_vectors(cls, vectors: np.ndarray, track_of_row: np.ndarray, n_tracks: int) -> VectorModel:
        """Cosine: Q = I = the L2-normalized vectors."""
        normed = normalize_rows(vectors)
        return cls.from_tables(normed, normed, track_of_row, n_tracks)

    @property
    def normed(self) -> np.ndarray:
        """L2-normalized query rows (maps and neighbours in the model card): the query table itself
        when Q = I (cosine: its rows are unit already)."""
        return self.query if self.shared else normalize_rows(self.query)

    @property
    def shared(self) -> bool:
        return self.query is self.items

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
    """Top-k by ml.knn (mean of the seeds' query rows, or per-seed aggregation when
    `model.per_seed` > 0; inner products with every item row, seeds excluded) in global ids.
    Playlists without a known seed get the popularity list instead (the serving fallback).
    """
    seed_rows = seeds.map_values(model.row_of_track)
    rows_list = seed_rows.rows()
    if batch_size is None:
        batch_size = auto_batch_size(len(model.items))
    items = None if model.shared else model.items
    index = model.seed_index if model.per_seed else None
    result = top_k(model.query, rows_list, k, batch_size, items, model.per_seed, index)
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
    """Track vectors scored by `ml.knn` (mean of the seeds' query rows, inner product with every
    item row, seeds excluded); playlists with no known seed get the popularity list (the serving
    fallback). The tables come from `knn_tables` (cosine, or the output layer, optionally with a
    popularity prior column).

    Fitting vectors is a subclass's job (`ml.word2vec.Track2Vec`); this class loads, ranks, saves.
    """

    name = "track2vec"

    def __init__(self) -> None:
        self.keyed_vectors: Any = None  # gensim KeyedVectors (what save writes)
        self.model: VectorModel | None = None
        self.popular = np.array([], dtype=np.int64)
        self.scoring: dict[str, Any] = {"scoring": "cosine", "prior": 0.0, "per_seed": 0}

    def set_vectors(
        self,
        keyed_vectors: Any,
        track_ids: np.ndarray,
        popular: np.ndarray,
        output: np.ndarray | None = None,
        counts: np.ndarray | None = None,
        scoring: str = "cosine",
        prior: float = 0.0,
        per_seed: int = 0,
    ) -> VectorRanker:
        """Use these vectors (keys = track ids) for the tracks of `track_ids` (global indices),
        scored by `knn_tables(vectors, output, counts of the rows, scoring, prior)` under ml.knn's
        mean rule (`per_seed` 0) or per-seed aggregation with M = `per_seed`."""
        track_of_row = self.rows_of(keyed_vectors, track_ids)
        row_counts = np.ones(len(track_of_row)) if counts is None else np.asarray(counts)[track_of_row]
        query, items = knn_tables(keyed_vectors.vectors, output, row_counts, scoring, prior)
        if scoring == "cosine" and not prior:
            items = query  # one array: ml.knn's shared case
        self.keyed_vectors = keyed_vectors
        self.model = VectorModel.from_tables(query, items, track_of_row, len(track_ids), per_seed)
        self.popular = np.asarray(popular, dtype=np.int64)
        self.scoring = {"scoring": scoring, "prior": float(prior), "per_seed": int(per_seed)}
        return self

    @staticmethod
    def rows_of(keyed_vectors: Any, track_ids: np.ndarray) -> np.ndarray:
        index = _index_of(track_ids)
        keys = keyed_vectors.index_to_key
        return np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))

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
        """vectors.kv (+ .npy, mmap-able); unless the rule is plain cosine, the tables of `ml.knn`
        beside it (knn_query.npy, knn_items.npy: rows in vectors.kv's order) and knn_scoring.json."""
        run = RunDir(Path(directory))
        self.keyed_vectors.save(str(run.vectors), separately=["vectors"])
        assert self.model is not None
        if not self.model.shared:
            run.write_knn_tables(self.model.query, self.model.items, self.scoring)
        elif self.model.per_seed:  # cosine tables (vectors.kv) under per-seed aggregation
            run.write_json(RunDir.KNN_SCORING, self.scoring)

    @classmethod
    def load(cls, directory: Path, track_ids: np.ndarray) -> VectorRanker:
        """The tables (or vectors.kv for cosine), and popularity.parquet for the fallback."""
        run = RunDir(Path(directory))
        popular = PopularityRanker.load(directory, track_ids).order
        ranker = cls()
        kv = run.load_keyed_vectors()
        _, tables = run.load_knn_tables()
        items = np.asarray(tables.items_t).T
        query = items if tables.query_table is None else np.asarray(tables.query_table)
        track_of_row = cls.rows_of(kv, track_ids)
        ranker.keyed_vectors, ranker.popular = kv, popular
        ranker.model = VectorModel.from_tables(query, items, track_of_row, len(track_ids), tables.per_seed)
        ranker.scoring = run.knn_scoring()
        return ranker
