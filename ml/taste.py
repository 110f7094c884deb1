"""The generator's latent tastes, read from its sidecar (`<raw stem>.tracks.parquet`), for the
`taste_community` baseline: popularity inside the latent community most of a playlist's seeds
belong to. The real file has no sidecar: then there is no such baseline (None).

The sidecar is joined to `dim_tracks` on trimmed, lower-cased artist and track names (the
generator's documented join, `ml.data.generate`). Only numpy, pandas and the warehouse here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ml import warehouse as wh


def sidecar_of(raw_csv: Path) -> Path:
    return Path(raw_csv).with_name(Path(raw_csv).stem + ".tracks.parquet")


def track_communities(raw_csv: Path, duckdb_path: Path, track_ids: np.ndarray) -> np.ndarray | None:
    """Latent community id (int, -1 when unmatched) of each global track, or None without a sidecar."""
    sidecar = sidecar_of(raw_csv)
    if not sidecar.exists():
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
