"""`ml recommend --track "Artist - Title"`: suggestions by name from the offline model (models/latest).

Names resolve through `dim_tracks` (trimmed, case-insensitive, inner whitespace collapsed, the same
normalisation as the track identity). Scoring is `ml.knn`: the mean of the known tracks' normalized
vectors, cosine, the given tracks excluded; with no known track it falls back to popularity.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ml.config import Paths
from ml.knn import normalize_rows, top_k
from ml.warehouse import connect

SEPARATOR = " - "


class RecommendError(ValueError):
    """A request `ml recommend` cannot answer; the message says why (the CLI prints it)."""


class UnknownTrackError(RecommendError):
    """A name that matches no track (or several); the message lists close names."""


class NoModelError(RecommendError):
    """No trained model where one is expected."""


def normalize_name(name: str) -> str:
    return re.sub(r"\s+", " ", name.strip()).lower()


def resolve_names(names: list[str], duckdb_path: Path) -> pd.DataFrame:
    """Resolve "Artist - Title" names to one dim_tracks row each (track_id, artist_name, track_name), in order.

    The split is tried at every " - " so artists or titles containing " - " still resolve.
    """
    con = connect(duckdb_path)
    try:
        rows = []
        for name in names:
            key = normalize_name(name)
            if SEPARATOR.strip() not in key:
                raise UnknownTrackError(f'"{name}": write tracks as "Artist - Title"')
            candidates = [(key[: m.start()], key[m.end() :]) for m in re.finditer(re.escape(SEPARATOR), key)]
            if key.startswith(SEPARATOR.lstrip()):  # an empty artist name
                candidates.append(("", key[len(SEPARATOR.lstrip()) :]))
            found = pd.DataFrame()
            for artist, title in candidates:
                found = con.execute(
                    """
                    select track_id, artist_name, track_name, n_playlists
                    from dim_tracks
                    where lower(regexp_replace(trim(artist_name), '\\s+', ' ', 'g')) = ?
                      and lower(regexp_replace(trim(track_name), '\\s+', ' ', 'g')) = ?
                    """,
                    [artist.strip(), title.strip()],
                ).df()
                if len(found):
                    break
            if len(found) == 0:
                raise UnknownTrackError(f'unknown track "{name}"{_suggest(con, key)}')
            rows.append(found.iloc[0])
        return pd.DataFrame(rows).reset_index(drop=True)
    finally:
        con.close()


def _suggest(con: duckdb.DuckDBPyConnection, key: str) -> str:
    close = con.execute(
        """
        select artist_name || ' - ' || track_name as name
        from dim_tracks
        order by jaro_winkler_similarity(lower(artist_name || ' - ' || track_name), ?) desc, n_playlists desc
        limit 3
        """,
        [key],
    ).fetchall()
    return "; did you mean: " + ", ".join(f'"{n}"' for (n,) in close) if close else ""


def recommend_by_name(tracks: list[str], k: int, paths: Paths) -> str:
    """Top-k suggestions for a playlist given by track names, as a printable table.

    Raises RecommendError (k < 1, no model, an unknown name) or ml.warehouse.WarehouseError."""
    from gensim.models import KeyedVectors

    if k < 1:
        raise RecommendError(f"k is {k}; it must be at least 1")
    run_dir = paths.models_dir / "latest"
    if not (run_dir / "vectors.kv").exists():
        raise NoModelError(f"{run_dir}: no trained model; run `ml train` first")
    resolved = resolve_names(tracks, paths.duckdb_path)
    kv = KeyedVectors.load(str(run_dir / "vectors.kv"), mmap="r")
    rows = [kv.key_to_index[t] for t in resolved["track_id"] if t in kv.key_to_index]
    notes = [
        f'"{a} - {t}" is not in the model vocabulary (too rare in the train split); ignored'
        for tid, a, t in zip(
            resolved["track_id"], resolved["artist_name"], resolved["track_name"], strict=True
        )
        if tid not in kv.key_to_index
    ]
    if rows:
        result = top_k(normalize_rows(np.asarray(kv.vectors)), [rows], k)
        ids = [kv.index_to_key[int(r)] for r in result.rows[0]]
        scores = [f"{s:.3f}" for s in result.scores[0]]
    else:
        notes.append("no known track: the most popular tracks instead")
        popular = pq.read_table(run_dir / "popularity.parquet").to_pandas()
        popular = popular[~popular["track_id"].isin(set(resolved["track_id"]))].head(k)
        ids = popular["track_id"].tolist()
        scores = [f"{int(c)} playlists" for c in popular["count"]]
    names = _names(ids, paths.duckdb_path)
    width = max((len(n) for n in names), default=10)
    lines = [*(f"note: {n}" for n in notes), f"{'#':>3}  {'track':<{width}}  score"]
    lines += [f"{i + 1:>3}  {n:<{width}}  {s}" for i, (n, s) in enumerate(zip(names, scores, strict=True))]
    return "\n".join(lines)


def _names(track_ids: list[str], duckdb_path: Path) -> list[str]:
    con = connect(duckdb_path)
    try:
        con.register("wanted", pd.DataFrame({"track_id": track_ids, "rank": range(len(track_ids))}))
        df = con.execute(
            "select w.track_id, d.artist_name || ' - ' || d.track_name as name "
            "from wanted as w left join dim_tracks as d using (track_id) order by w.rank"
        ).df()
    finally:
        con.close()
    return [n if isinstance(n, str) else t for t, n in zip(df["track_id"], df["name"], strict=True)]
