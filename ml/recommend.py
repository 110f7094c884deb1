"""`ml recommend --track "Artist - Title"`: suggestions by name from the offline model (models/latest).

Names resolve through `dim_tracks` (trimmed, case-insensitive, inner whitespace collapsed, the same
normalisation as the track identity). Scoring is `ml.knn` with the run's tables: the mean of the
known tracks' query rows against every item row, the given tracks excluded; with no known track it falls back to popularity.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ml import warehouse as wh
from ml.config import Paths
from ml.knn import top_k
from ml.run_dir import RunDir

SEPARATOR = " - "


class UnknownTrackError(ValueError):
    """A name that matches no track (or several); the message lists close names."""


def normalize_name(name: str) -> str:
    return re.sub(r"\s+", " ", name.strip()).lower()


def resolve_names(names: list[str], duckdb_path: Path) -> pd.DataFrame:
    """Resolve "Artist - Title" names to one dim_tracks row each (track_id, artist_name, track_name), in order.

    The split is tried at every " - " so artists or titles containing " - " still resolve.
    """
    con = wh.connect(duckdb_path)
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
                found = wh.tracks_named(con, artist.strip(), title.strip())
                if len(found):
                    break
            if len(found) == 0:
                close = wh.closest_track_names(con, key, 3)
                hint = "; did you mean: " + ", ".join(f'"{n}"' for n in close) if close else ""
                raise UnknownTrackError(f'unknown track "{name}"{hint}')
            rows.append(found.iloc[0])
        return pd.DataFrame(rows).reset_index(drop=True)
    finally:
        con.close()


def recommend_by_name(tracks: list[str], k: int, paths: Paths) -> str:
    """Top-k suggestions for a playlist given by track names, as a printable table."""
    run = RunDir.latest(paths.models_dir)
    if not run.vectors.exists():
        raise FileNotFoundError(f"{run.path}: no trained model; run `ml train` first")
    resolved = resolve_names(tracks, paths.duckdb_path)
    kv = run.load_keyed_vectors()
    rows = [kv.key_to_index[t] for t in resolved["track_id"] if t in kv.key_to_index]
    notes = [
        f'"{a} - {t}" is not in the model vocabulary (too rare in the train split); ignored'
        for tid, a, t in zip(
            resolved["track_id"], resolved["artist_name"], resolved["track_name"], strict=True
        )
        if tid not in kv.key_to_index
    ]
    if rows:
        _, query, items = run.load_knn_tables()  # the run's rule (rows in vectors.kv's order)
        result = top_k(query, [rows], k, items=None if query is items else items)
        ids = [kv.index_to_key[int(r)] for r in result.rows[0]]
        scores = [f"{s:.3f}" for s in result.scores[0]]
    else:
        notes.append("no known track: the most popular tracks instead")
        ids, counts = run.load_popularity()
        popular = pd.DataFrame({"track_id": ids, "count": counts})
        popular = popular[~popular["track_id"].isin(set(resolved["track_id"]))].head(k)
        ids = popular["track_id"].tolist()
        scores = [f"{int(c)} playlists" for c in popular["count"]]
    names = wh.track_display_names(paths.duckdb_path, ids)
    width = max((len(n) for n in names), default=10)
    lines = [*(f"note: {n}" for n in notes), f"{'#':>3}  {'track':<{width}}  score"]
    lines += [f"{i + 1:>3}  {n:<{width}}  {s}" for i, (n, s) in enumerate(zip(names, scores, strict=True))]
    return "\n".join(lines)
