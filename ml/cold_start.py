"""Cold start from a playlist's name: name tokens as extra rows of the query table.

A name token (`name:chill`, ml.name_tokens) gets a query row in the space the tracks query in, so
the one rule of `ml.knn` (scores = query @ items.T, exact top-k, ties to the lower row) answers a
name as it answers tracks (docs/cold_start.md has the table):

    items      [I | prior]                  the tables' item matrix and one prior column
    track row  [Q row | 0]                  a seed's query row (a seed query never uses the prior)
    name row   w * [mean query | beta]      fitted here, never an item
    query      a name's mean token row alone; beside n seed tracks it counts as `worth` seeds
               (ml.knn.NameRule, the one rule of export and serving too); neither known:
               the popularity list

`prior` = log(1 + train playlists holding the track) / log(1 + the most), in [0, 1]; beta weighs
it (under the output layer the item matrix carries popularity itself; valid may choose 0).

Name rows are fitted after the track vectors (post hoc), from the train playlists carrying each
token, so any `VectorRanker` (any query table) gets them without retraining:
- `query_mean`: the mean, over the token's train playlists, of each playlist's own query (the mean
  of its tracks' Q rows): the name asks what its playlists' tracks would ask. Weighed in a name's
  mean by w = idf ** power, idf = log(train playlists / the token's): a word every taste uses
  (`mix`) weighs less than one few playlists carry (`metal`); power and beta from a grid.
- artist tokens (optional): a token no train playlist name carries (often enough) gets the mean
  query row of the tracks whose artist name has it (beta 0), so `Metallica – Live` finds Metallica.
- `ridge`: the row v minimizing ||[I | prior] v - y||^2 + alpha ||v||^2, y[t] the share of the
  token's train playlists holding track t.
The method and its parameters are chosen on valid (`ml.cold_start_eval`), with the minimum number
of train playlists a token needs and the name's worth.

Only numpy, scipy and pyarrow here, so a `NameModel` loads without training code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ml.baselines import popularity_counts, popularity_order, rank_popularity
from ml.knn import KnnTables, NameRule, TopK, name_queries
from ml.name_tokens import name_keys
from ml.rankers import VectorRanker
from ml.run_dir import RunDir
from ml.shapes import K_MAX, Ragged, Ranking

METHODS = ("query_mean", "ridge")
NAME_SPACE = "items"  # name rows score [I | prior] (params["space"]; older tables scored Q normalized)


# --- tokens -------------------------------------------------------------------------------------


def name_token_lists(names: Sequence[str]) -> list[list[str]]:
    """Each name's keys (`name:chill`, ...), tokenized once per distinct name."""
    cache: dict[str, list[str]] = {}
    return [cache.setdefault(str(n), name_keys(str(n))) for n in names]


def token_rows(token_lists: Sequence[Sequence[str]], index: dict[str, int]) -> Ragged:
    """Rows of each name's known tokens (unknown tokens dropped)."""
    return Ragged.from_lists([[index[t] for t in tokens if t in index] for tokens in token_lists])


def track_prior(counts: np.ndarray) -> np.ndarray:
    """log(1 + count) / log(1 + max count): the prior column, in [0, 1] (float32)."""
    counts = np.asarray(counts, dtype=np.float64)
    top = np.log1p(counts.max(initial=0.0))
    return (np.log1p(counts) / top if top > 0 else np.zeros_like(counts)).astype(np.float32)


def _incidence(playlists: Ragged, n_cols: int) -> sp.csr_matrix:
    """Binary (playlist, column) matrix; repeats within a playlist count once."""
    m = sp.csr_matrix(
        (np.ones(len(playlists.values), dtype=np.float32), playlists.values, playlists.indptr),
        shape=(len(playlists), n_cols),
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


# --- the fitted name table ----------------------------------------------------------------------


@dataclass(frozen=True)
class NameModel:
    """Name-token query rows over a run's track vectors, and how a query mixes names and tracks."""

    keys: np.ndarray  # (n_tokens,) str, "name:<token>", most train playlists first (ties by key)
    rows: np.ndarray  # (n_tokens, dim + 1) float32: [unit-norm direction | prior weight]
    n_playlists: np.ndarray  # (n_tokens,) train playlists carrying each token
    worth: float  # with n seed tracks the name query's share is worth / (n + worth)
    params: dict[str, Any] = field(default_factory=dict)  # method, min_playlists, beta or alpha

    @property
    def index(self) -> dict[str, int]:
        return {str(k): i for i, k in enumerate(self.keys)}

    def with_worth(self, worth: float) -> NameModel:
        return NameModel(self.keys, self.rows, self.n_playlists, float(worth), self.params)

    def name_queries(self, token_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(n, dim + 1) mean of each name's known token rows, and whether it had one."""
        return name_queries(self.rows, token_rows(token_lists, self.index).rows())

    def save(self, directory: Path) -> None:
        """name_tokens.parquet: key, n_playlists, row (list<float32>); worth and params as metadata."""
        import json

        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "key": pa.array([str(k) for k in self.keys], pa.string()),
                "n_playlists": pa.array(self.n_playlists, pa.int64()),
                "row": pa.array(self.rows.tolist(), pa.list_(pa.float32())),
            }
        ).replace_schema_metadata({"worth": json.dumps(self.worth), "params": json.dumps(self.params)})
        pq.write_table(table, RunDir(Path(directory)).name_tokens)

    @classmethod
    def load(cls, directory: Path) -> NameModel:
        import json

        import pyarrow.parquet as pq

        path = RunDir(Path(directory)).name_tokens
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: the run predates name tokens; run `ml train`")
        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        if json.loads(meta.get(b"params", b"{}")).get("space") != NAME_SPACE:
            raise ValueError(
                f"{path}: its rows score the normalized query rows, not the item matrix (a run "
                "before issue 14's name space); rerun `ml train`"
            )
        rows = table.column("row").to_pylist()
        width = len(rows[0]) if rows else 0
        return cls(
            keys=np.asarray(table.column("key").to_pylist(), dtype=object),
            rows=np.asarray(rows, dtype=np.float32).reshape(len(rows), width),
            n_playlists=np.asarray(table.column("n_playlists").to_pylist(), dtype=np.int64),
            worth=float(json.loads(meta.get(b"worth", b"0"))),
            params=json.loads(meta.get(b"params", b"{}")),
        )


def fit_name_model(
    query: np.ndarray,
    items: np.ndarray,
    train_rows: Ragged,
    train_tokens: Sequence[Sequence[str]],
    method: str,
    min_playlists: int,
    beta: float = 0.0,
    alpha: float = 0.1,
    idf: float = 0.0,
    item_tokens: Sequence[Sequence[str]] | None = None,
) -> NameModel:
    """Name rows from the train playlists carrying each token (see the module docstring).

    query: (n_rows, dim) the tables' query rows (Q); items: (n_rows, dim + 1) [I | prior], the name
    space; train_rows: each train playlist's tracks as rows (tracks without a row dropped).
    item_tokens: the tokens of each row's artist name; a token no train playlist name carries
    (often enough) then gets the mean query row of the tracks of the artists it names (prior
    weight 0, the playlists' count stored as 0).
    """
    counts: dict[str, int] = {}
    for tokens in train_tokens:
        for t in tokens:
            counts[t] = counts.get(t, 0) + 1
    names = _fit_from_playlists(
        query, items, train_rows, train_tokens, counts, method, min_playlists, beta, alpha, idf
    )
    params = {**names.params, "space": NAME_SPACE}
    if item_tokens is None:
        return NameModel(names.keys, names.rows, names.n_playlists, 0.0, {**params, "artist_tokens": False})
    # An artist's name asks for that artist's tracks, not the popular ones: no prior weight.
    artists = _fit_from_artists(query, item_tokens, set(names.index), counts, len(train_tokens), idf)
    return NameModel(
        np.concatenate([names.keys, artists.keys]),
        np.vstack([names.rows, artists.rows]).astype(np.float32),
        np.concatenate([names.n_playlists, artists.n_playlists]),
        0.0,
        {**params, "artist_tokens": True},
    )


def idf_weights(n_playlists: np.ndarray, n_train: int, power: float) -> np.ndarray:
    """(log(n_train / max(n, 1))) ** power per token: a word few playlists carry weighs more in a
    name's mean than one every taste uses (`mix`, `favorites`); power 0: every token weighs 1."""
    if power == 0:
        return np.ones(len(n_playlists), dtype=np.float64)
    df = np.maximum(np.asarray(n_playlists, dtype=np.float64), 1.0)
    return np.log(max(n_train, 1) / df).clip(min=0.0) ** power


def _mean_query_rows(
    members: sp.csr_matrix, means: np.ndarray, beta: float, weight: np.ndarray
) -> np.ndarray:
    """weight * [mean of the members' query rows | beta] per token (members: (n, n_tokens))."""
    n = np.asarray(members.sum(axis=0)).ravel()
    mean = np.asarray(members.T @ means) / np.maximum(n, 1.0)[:, None]
    beta_col = np.full((len(mean), 1), beta)
    return (weight[:, None] * np.hstack([mean, beta_col])).astype(np.float32)


def _empty_names(dim: int) -> NameModel:
    return NameModel(
        np.array([], dtype=object), np.zeros((0, dim + 1), np.float32), np.zeros(0, np.int64), 0.0
    )


def _fit_from_artists(
    query: np.ndarray,
    item_tokens: Sequence[Sequence[str]],
    taken: set[str],
    counts: dict[str, int],
    n_train: int,
    idf: float,
) -> NameModel:
    keys = sorted({t for tokens in item_tokens for t in tokens} - taken)
    if not keys:
        return _empty_names(query.shape[1])
    members = _incidence(token_rows(item_tokens, {t: i for i, t in enumerate(keys)}), len(keys))
    weight = idf_weights(np.array([counts.get(t, 0) for t in keys]), n_train, idf)
    rows = _mean_query_rows(members, np.asarray(query, dtype=np.float32), 0.0, weight)
    return NameModel(np.asarray(keys, dtype=object), rows, np.zeros(len(keys), np.int64), 0.0)


def _fit_from_playlists(
    query: np.ndarray,
    items: np.ndarray,
    train_rows: Ragged,
    train_tokens: Sequence[Sequence[str]],
    counts: dict[str, int],
    method: str,
    min_playlists: int,
    beta: float,
    alpha: float,
    idf: float,
) -> NameModel:
    keys = sorted((t for t, c in counts.items() if c >= min_playlists), key=lambda t: (-counts[t], t))
    index = {t: i for i, t in enumerate(keys)}
    dim = items.shape[1] - 1
    if not keys:
        return _empty_names(dim)
    p = _incidence(token_rows(train_tokens, index), len(keys))  # (n_train, n_tokens)
    a = _incidence(train_rows, items.shape[0])  # (n_train, n_rows)
    n_pl = np.asarray(p.sum(axis=0)).ravel()
    if method == "query_mean":
        sizes = np.maximum(np.asarray(a.sum(axis=1)).ravel(), 1.0)
        playlist_queries = sp.diags(1.0 / sizes) @ (a @ np.asarray(query, dtype=np.float32))  # (n_train, dim)
        weight = idf_weights(n_pl, len(train_tokens), idf)
        rows = _mean_query_rows(p, playlist_queries, beta, weight)
        params = {"method": method, "min_playlists": min_playlists, "beta": beta, "idf": idf}
    elif method == "ridge":
        shares = sp.diags(1.0 / np.maximum(n_pl, 1.0)) @ (p.T @ a)  # (n_tokens, n_rows)
        x = items.astype(np.float64)
        gram = x.T @ x
        penalty = alpha * np.trace(gram) / gram.shape[0]
        v = np.linalg.solve(gram + penalty * np.eye(gram.shape[0]), np.asarray((shares @ x).T)).T
        # Unit-norm direction (the prior weight scaled alike): the ranking of one token is kept and
        # every token weighs the same in a name's mean and against the tracks' query.
        scale = 1.0 / np.maximum(np.linalg.norm(v[:, :dim], axis=1, keepdims=True), 1e-12)
        rows = (v * scale).astype(np.float32)
        params = {"method": method, "min_playlists": min_playlists, "alpha": alpha}
    else:
        raise ValueError(f"unknown name-row method {method!r}; choose one of {METHODS}")
    return NameModel(np.asarray(keys, dtype=object), rows, n_pl.astype(np.int64), 0.0, params)


def run_prior(run: RunDir, track_ids: Sequence[str]) -> np.ndarray:
    """The prior column for the run's rows: `track_prior` of popularity.parquet's counts (0 for a
    track it lacks)."""
    ids, counts = run.load_popularity()
    prior_of = dict(zip(ids, track_prior(np.asarray(counts)).tolist(), strict=True))
    return np.array([prior_of.get(t, 0.0) for t in track_ids], dtype=np.float32)


@dataclass(frozen=True)
class NameScoring:
    """A run's track vectors, prior column and name table, as the offline name scoring reads them."""

    track_ids: list[str]  # row order of the run's tables
    names: NameModel
    rule: NameRule  # the run's tables (and their track rule) with the name table and prior column

    @classmethod
    def from_run(cls, run: RunDir) -> NameScoring:
        """The name space of the run's tables: its item matrix I and the prior column from
        popularity.parquet (what training fitted on)."""
        track_ids, tables = run.load_knn_tables()
        prior = run_prior(run, track_ids)
        names = NameModel.load(run.path)
        rule = NameRule.over(tables, [str(k) for k in names.keys], names.rows, prior, names.worth)
        return cls(track_ids, names, rule)

    def rank(self, seed_rows: Sequence[int], tokens: Sequence[str], k: int) -> TopK | None:
        """Top-k rows for one playlist (seed rows excluded) by the name rule (`ml.knn.NameRule`
        over the run's tables), or None when the name plays no part - no known token, or seeds
        beside a name worth 0 tracks - (the caller uses the tracks' rule, or popularity without a
        known seed)."""
        seed_rows = [int(r) for r in seed_rows]
        known = self.rule.token_rows(list(tokens))
        if not known or (seed_rows and self.names.worth <= 0):
            return None
        return self.rule.top_k([seed_rows], [known], k)


# --- rankers over names -------------------------------------------------------------------------


class NameVectorRanker:
    """Tracks and names scored by the one rule of ml.knn over [vectors | prior] (module docstring)."""

    name = "track2vec_name"

    def __init__(self, base: VectorRanker, prior: np.ndarray, names: NameModel) -> None:
        assert base.model is not None, "fit or load the track vectors first"
        self.base, self.names = base, names
        vm = base.model
        self.prior = np.asarray(prior, np.float32)[vm.track_of_row]  # the prior column, by row

    @property
    def known(self) -> np.ndarray:
        return self.base.known

    def rank_named(self, names: Sequence[str], seeds: Ragged, k: int = K_MAX) -> Ranking:
        """Top-k global track indices for playlists given by name and seed tracks (either may be empty)."""
        return self.rank_tokens(name_token_lists(names), seeds, k)

    def rank_tokens(self, token_lists: Sequence[Sequence[str]], seeds: Ragged, k: int = K_MAX) -> Ranking:
        if len(seeds.values) == 0 and len(seeds):  # names only: score each distinct token set once
            keys = [tuple(sorted(set(t))) for t in token_lists]
            distinct = sorted(set(keys))
            where = {key: i for i, key in enumerate(distinct)}
            once = self._rank(distinct, Ragged(np.zeros(len(distinct) + 1, np.int64), seeds.values), k)
            back = np.array([where[key] for key in keys], dtype=np.int64)
            return Ranking(once.tracks[back], once.scores[back], once.fallback[back])
        return self._rank(token_lists, seeds, k)

    def rule(self) -> NameRule:
        """ml.knn.NameRule over the base model's tables (its track rule and per-seed scan) and this
        name table."""
        vm = self.base.model
        assert vm is not None
        tables = KnnTables(
            items_t=vm.items.T,
            query_table=None if vm.shared else vm.query,
            per_seed=vm.per_seed,
            seed_index=vm.seed_index if vm.per_seed else None,
        )
        keys = [str(key) for key in self.names.keys]
        return NameRule.over(tables, keys, self.names.rows, self.prior, self.names.worth)

    def _rank(self, token_lists: Sequence[Sequence[str]], seeds: Ragged, k: int) -> Ranking:
        vm = self.base.model
        assert vm is not None
        seed_rows = seeds.map_values(vm.row_of_track)
        has_seeds = seed_rows.lengths > 0
        tokens = token_rows(token_lists, self.names.index)
        has_name = tokens.lengths > 0
        tracks = np.full((len(seeds), k), -1, dtype=np.int64)
        scores = np.full((len(seeds), k), -np.inf, dtype=np.float32)
        # The name plays a part (a known token; beside seeds only when worth > 0): ml.knn.NameRule.
        named = np.flatnonzero(has_name & (~has_seeds | (self.names.worth > 0)))
        if len(named):  # NameRule.top_k bounds its own memory (a blocked scan, sparse sums)
            k_eff = min(k, len(self.prior))
            got = self.rule().top_k([seed_rows.row(i) for i in named], [tokens.row(i) for i in named], k_eff)
            tracks[named, :k_eff], scores[named, :k_eff] = vm.track_of_row[got.rows], got.scores
        # The name plays no part (no known token, or worth 0 beside seeds): the tracks' own rule.
        plain = has_seeds & ~(has_name & (self.names.worth > 0))
        if plain.any():
            idx = np.flatnonzero(plain)
            own = self.base.rank(seeds.take(idx), k)
            tracks[idx], scores[idx] = own.tracks, own.scores
        fallback = ~(has_seeds | has_name)
        if fallback.any():
            idx = np.flatnonzero(fallback)
            tracks[idx] = rank_popularity(self.base.popular, seeds.take(idx), k).tracks
            scores[idx] = 0.0
        return Ranking(tracks=tracks, scores=scores, fallback=fallback)


class KeywordPopularityRanker:
    """Baseline: the most popular train tracks among train playlists sharing a name token.

    A track's score is the number of train playlists that hold it and carry one of the name's
    tokens, summed over the name's known tokens; ties (and a list short of k) go by overall
    popularity; a name with no known token gets the popularity list. Seeds are excluded.
    """

    name = "name_keyword_popularity"

    def __init__(self, min_playlists: int = 2) -> None:
        self.min_playlists = min_playlists
        self.index: dict[str, int] = {}
        self.counts = sp.csr_matrix((0, 0))
        self.popular_counts = np.zeros(0, dtype=np.int64)

    def fit(
        self, train: Ragged, train_tokens: Sequence[Sequence[str]], n_tracks: int
    ) -> KeywordPopularityRanker:
        tally: dict[str, int] = {}
        for tokens in train_tokens:
            for t in tokens:
                tally[t] = tally.get(t, 0) + 1
        keys = sorted(t for t, c in tally.items() if c >= self.min_playlists)
        self.index = {t: i for i, t in enumerate(keys)}
        p = _incidence(token_rows(train_tokens, self.index), len(keys))
        self.counts = (p.T @ _incidence(train, n_tracks)).tocsr()  # (n_tokens, n_tracks)
        self.popular_counts = popularity_counts(train, n_tracks)
        return self

    @property
    def known(self) -> np.ndarray:
        return self.popular_counts > 0

    def rank_named(self, names: Sequence[str], seeds: Ragged, k: int = K_MAX) -> Ranking:
        return self.rank_tokens(name_token_lists(names), seeds, k)

    def rank_tokens(self, token_lists: Sequence[Sequence[str]], seeds: Ragged, k: int = K_MAX) -> Ranking:
        n_tracks = len(self.popular_counts)
        rows = token_rows(token_lists, self.index)
        tiebreak = self.popular_counts / (self.popular_counts.max(initial=0) + 1.0)  # < 1
        popular = popularity_order(self.popular_counts)
        tracks = np.full((len(rows), k), -1, dtype=np.int64)
        scores = np.zeros((len(rows), k), dtype=np.float32)
        fallback = rows.lengths == 0
        groups: dict[tuple[int, ...], list[int]] = {}  # one scoring per distinct token set
        for i in np.flatnonzero(~fallback):
            groups.setdefault(tuple(sorted(rows.row(i).tolist())), []).append(int(i))
        for token_set, members in groups.items():
            s = np.asarray(self.counts[list(token_set)].sum(axis=0)).ravel() + tiebreak
            width = min(n_tracks, k + int(seeds.lengths[members].max(initial=0)))
            part = np.argpartition(-s, width - 1)[:width] if width < n_tracks else np.arange(n_tracks)
            ordered = part[np.lexsort((part, -s[part]))]  # score descending, lower index first
            for i in members:
                top = ordered[~np.isin(ordered, seeds.row(i))][:k]
                tracks[i, : len(top)], scores[i, : len(top)] = top, s[top]
        if fallback.any():
            idx = np.flatnonzero(fallback)
            tracks[idx] = rank_popularity(popular, seeds.take(idx), k).tracks
        return Ranking(tracks=tracks, scores=scores, fallback=fallback)
