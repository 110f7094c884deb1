"""`ml recommend --track "Artist - Title"` (or `--id`, or `--name "summer chill"`: the playlist's
name, alone or beside tracks): suggestions from the run in models/latest, with the endpoint's
contract: the same name rule, the same answer.

Names resolve with the warehouse's identity rule (`ml.endpoint_contract.track_id_of`, what dbt
computes and what the endpoint uses; "Artist - Title" split at the first " - "). A name the
warehouse does not know is refused with the closest names it holds (a typo, most likely); a known
track the model lacks is counted in `n_unknown`, as the endpoint does. The answer is
`ml.knn_engine.KnnEngine.predict` over the run's tables (`ml.knn`), the rule of the exported
model: the same prediction `ml serve` returns (track ids, artists, titles, scores, n_unknown,
fallback, and for a playlist name n_name_tokens / n_unknown_tokens: `ml.knn.NameRule` over the run's
name_tokens.parquet, as the export carries it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml import warehouse as wh
from ml.cold_start import NameModel, run_prior
from ml.config import Paths
from ml.endpoint_contract import MAX_PLAYLIST_NAME_CHARS, Instance, split_name, track_id_of
from ml.knn import KnnTables, NameRule
from ml.knn_engine import KnnEngine
from ml.run_dir import RunDir


class UnknownTrackError(ValueError):
    """A name that matches no track; the message lists close names."""


def resolve_names(names: list[str], duckdb_path: Path) -> list[str]:
    """Track ids of "Artist - Title" names (the identity rule), each checked against dim_tracks."""
    ids = []
    for name in names:
        try:
            ids.append(track_id_of(*split_name(name)))
        except ValueError:
            raise UnknownTrackError(f'"{name}": write tracks as "Artist - Title"') from None
    known = wh.track_names(duckdb_path, ids)
    for name, track_id in zip(names, ids, strict=True):
        if track_id not in known:
            con = wh.connect(duckdb_path)
            try:
                close = wh.closest_track_names(con, name.strip().lower(), 3)
            finally:
                con.close()
            hint = "; did you mean: " + ", ".join(f'"{n}"' for n in close) if close else ""
            raise UnknownTrackError(f'unknown track "{name}"{hint}')
    return ids


def _trained_run(paths: Paths) -> RunDir:
    run = RunDir.latest(paths.models_dir)
    if not run.vectors.exists():
        raise FileNotFoundError(f"{run.path}: no trained model; run `ml train` first")
    return run


def recommend(track_ids: list[str], k: int, paths: Paths, name: str = "") -> dict[str, object]:
    """The endpoint's prediction for a playlist of track ids (and its name), from models/latest."""
    run = _trained_run(paths)
    vocabulary, tables = run.load_knn_tables()
    # The item matrix laid out as the served model holds it, so the products round alike.
    tables = KnnTables(
        items_t=np.ascontiguousarray(tables.items_t), query_table=tables.query_table, per_seed=tables.per_seed
    )
    row_of = {t: i for i, t in enumerate(vocabulary)}
    popular = run.load_popular_ids(k + len(track_ids))
    catalogue = [*vocabulary, *(t for t in popular if t not in row_of)]
    index_of = {t: i for i, t in enumerate(catalogue)}
    names_rule = None
    if run.name_tokens.exists():
        names = NameModel.load(run.path)
        names_rule = NameRule.over(
            tables, list(names.keys), names.rows, run_prior(run, vocabulary), names.worth
        )
    engine = KnnEngine.build(
        tables,
        catalogue,
        [index_of[t] for t in popular],
        [""] * len(catalogue),
        [""] * len(catalogue),
        names_rule,
    )
    prediction = engine.predict([Instance(tracks=tuple(track_ids), k=k, name=name)])[0]
    names = wh.track_names(paths.duckdb_path, prediction["track_ids"])
    prediction["artists"] = [names.get(t, ("", ""))[0] for t in prediction["track_ids"]]
    prediction["titles"] = [names.get(t, ("", ""))[1] for t in prediction["track_ids"]]
    return prediction


def recommend_by_name(
    tracks: list[str], k: int, paths: Paths, ids: tuple[str, ...] = (), name: str = ""
) -> str:
    """Top-k suggestions for a playlist given by track names, ids and/or its own name, as a
    printable table.

    Raises ValueError (k < 1; UnknownTrackError for a name), FileNotFoundError (no model) or
    ml.warehouse.WarehouseError; the CLI prints each as one line."""
    if k < 1:
        raise ValueError(f"k is {k}; it must be at least 1")
    if len(name) > MAX_PLAYLIST_NAME_CHARS:
        raise ValueError(f"--name has {len(name)} chars; the limit is {MAX_PLAYLIST_NAME_CHARS}")
    _trained_run(paths)  # no model: say so before looking the names up
    given = [*ids, *resolve_names(tracks, paths.duckdb_path)] if tracks else list(ids)
    prediction = recommend(given, k, paths, name)
    notes = []
    if name:
        notes.append(
            f"playlist name: {prediction['n_name_tokens']} word(s) known to the model, "
            f"{prediction['n_unknown_tokens']} not"
        )
    if prediction["n_unknown"]:
        notes.append(
            f"{prediction['n_unknown']} given track(s) not in the model vocabulary (too rare in the train split): ignored"
        )
    if prediction["fallback"]:
        notes.append("no known track: the most popular tracks instead")
    names = [f"{a} - {t}" for a, t in zip(prediction["artists"], prediction["titles"], strict=True)]
    width = max((len(n) for n in names), default=10)
    scores = ["popular" if prediction["fallback"] else f"{s:.3f}" for s in prediction["scores"]]
    lines = [*(f"note: {n}" for n in notes), f"{'#':>3}  {'track_id':<16}  {'track':<{width}}  score"]
    lines += [
        f"{i + 1:>3}  {t:<16}  {n:<{width}}  {s}"
        for i, (t, n, s) in enumerate(zip(prediction["track_ids"], names, scores, strict=True))
    ]
    return "\n".join(lines)
