"""The array shapes shared by corpus, rankers and evaluation: ragged playlists, eval sets, rankings.

Track ids inside `ml` are global track indices: the position of the track in `dim_tracks` ordered
by track_id (`PlaylistData.track_ids`); strings appear only at the edges (warehouse, run folder,
endpoint). Only numpy here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

K_MAX = 100  # ranked list length of every evaluation


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
    names: np.ndarray | None = None  # (n,) str: the playlists' names (cold start from a name)

    def __len__(self) -> int:
        return len(self.session_ids)

    def subset(self, index: np.ndarray) -> EvalSet:
        return EvalSet(
            session_ids=self.session_ids[index],
            seeds=self.seeds.take(index),
            holdouts=self.holdouts.take(index),
            last_query=self.last_query[index],
            last_target=self.last_target[index],
            names=None if self.names is None else self.names[index],
        )

    def cold(self) -> EvalSet:
        """The same playlists as empty ones: no seeds, every track (seeds and held-out) a target."""
        n = len(self)
        both = Ragged.from_lists(
            [np.concatenate([self.seeds.row(i), self.holdouts.row(i)]) for i in range(n)]
        )
        empty = Ragged(np.zeros(n + 1, dtype=np.int64), np.array([], dtype=np.int64))
        return EvalSet(self.session_ids, empty, both, self.last_query, self.last_target, self.names)


@dataclass(frozen=True)
class Ranking:
    """Ranked global track indices per playlist, best first; -1 pads a list shorter than K."""

    tracks: np.ndarray  # (n, K) int64
    scores: np.ndarray  # (n, K) float32
    fallback: np.ndarray  # (n,) bool: popularity answered (no known seed)


def singletons(queries: np.ndarray) -> Ragged:
    """One single-track playlist per query (the last-item protocol's queries)."""
    q = np.asarray(queries, dtype=np.int64)
    return Ragged(indptr=np.arange(len(q) + 1, dtype=np.int64), values=q)
