"""The generator's latent tastes, read from its sidecar (`<raw stem>.tracks.parquet`), for the
`taste_community` baseline: popularity inside the latent community most of a playlist's seeds
belong to. The real file has no sidecar: then there is no such baseline (None).

The sidecar is joined to `dim_tracks` on trimmed, lower-cased artist and track names (the
generator's documented join, `ml.data.generate`). `TasteCommunityRanker` is a `ml.rankers.Ranker`.
Only numpy, pandas and the warehouse here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml import warehouse as wh
from ml.baselines import popularity_counts, popularity_order
from ml.data.generate import sidecar_path
from ml.shapes import K_MAX, Ragged, Ranking


def sidecar_of(raw_csv: Path) -> Path:
    return sidecar_path(raw_csv)  # the generator's own rule for where it writes the sidecar


def track_communities(raw_csv: Path, duckdb_path: Path, track_ids: np.ndarray) -> np.ndarray | None:
    """Latent community id (int, -1 when unmatched) of each global track, or None without a sidecar."""
    sidecar = sidecar_of(raw_csv)
    if not sidecar.exists() or not Path(duckdb_path).exists():  # no sidecar, or marts not in DuckDB
        return None
    con = wh.connect(duckdb_path)
    try:
        wh.check_relation(con, wh.DIM_TRACKS)
        df = con.execute(
            """
            with side as (
                select lower(trim(artistname)) as a, lower(trim(trackname)) as t, min(community) as community
                from read_parquet(?)
                group by all
            )
            select d.track_id, side.community
            from dim_tracks as d
            inner join side on side.a = lower(trim(d.artist_name)) and side.t = lower(trim(d.track_name))
            """,
            [str(sidecar)],
        ).df()
    finally:
        con.close()
    index = pd.Index(np.asarray(track_ids).astype(str))
    out = np.full(len(track_ids), -1, dtype=np.int64)
    pos = index.get_indexer(df["track_id"].astype(str))
    ok = pos >= 0
    out[pos[ok]] = df["community"].to_numpy()[ok].astype(np.int64)
    return out


class TasteCommunityRanker:
    """Popularity inside the latent community most of the seeds belong to (the generator's sidecar,
    `ml.taste`); ties between communities go to the lower id; the list is padded with overall
    popularity, and playlists with no seed of a known community get overall popularity. No training:
    a learned model should beat it. Not saved (it is a baseline row, never exported)."""

    name = "taste_community"

    def __init__(self, community_of_track: np.ndarray) -> None:
        self.community = np.asarray(community_of_track, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.int64)
        self.by_community: list[np.ndarray] = []
        self.popular = np.array([], dtype=np.int64)

    def fit(self, train: Ragged, track_ids: np.ndarray) -> TasteCommunityRanker:
        self.counts = popularity_counts(train, len(track_ids))
        self.popular = popularity_order(self.counts)
        n_comm = int(self.community.max(initial=-1)) + 1
        comm = self.community[self.popular]
        self.by_community = [self.popular[comm == c] for c in range(n_comm)]
        return self

    @property
    def known(self) -> np.ndarray:
        return self.counts > 0

    query_known = known

    def rank(self, seeds: Ragged, k: int = K_MAX) -> Ranking:
        n = len(seeds)
        tracks = np.full((n, k), -1, dtype=np.int64)
        fallback = np.zeros(n, dtype=bool)
        for i in range(n):
            seed = seeds.row(i)
            comm = self.community[seed]
            comm = comm[comm >= 0]
            if len(comm) == 0:
                head, fallback[i] = self.popular[: k + len(seed)], True
            else:
                best = int(np.argmax(np.bincount(comm)))
                head = np.concatenate(
                    [self.by_community[best][: k + len(seed)], self.popular[: k + len(seed)]]
                )
            head = head[~np.isin(head, seed)]
            _, first = np.unique(head, return_index=True)
            head = head[np.sort(first)][:k]
            tracks[i, : len(head)] = head
        scores = np.where(tracks >= 0, -np.arange(k, dtype=np.float32)[None, :], -np.inf).astype(np.float32)
        return Ranking(tracks=tracks, scores=scores, fallback=fallback)

    def describe(self) -> dict[str, Any]:
        return {}

    def save(self, directory: Path) -> None:
        raise NotImplementedError("taste_community is a baseline row; nothing of it is exported")
