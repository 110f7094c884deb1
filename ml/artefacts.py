"""Writing a run folder (`ml.run_dir.RunDir` names every file): models, metrics, provenance, and
the offline test predictions the export and deployment checks compare against."""

from __future__ import annotations

import csv
import platform
from dataclasses import asdict, dataclass
from importlib.metadata import version
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ml.cold_start import NameModel
from ml.corpus import PlaylistData
from ml.rankers import PopularityRanker, VectorRanker
from ml.run_dir import RunDir
from ml.search import GridConfig, W2VParams
from ml.shapes import Ranking

N_OFFLINE_PREDICTIONS = 5000


@dataclass(frozen=True)
class RunRecord:
    """What a training run writes besides the models themselves."""

    params: W2VParams
    seed: int
    config: GridConfig
    metrics: dict[str, Any]
    fingerprint: dict[str, Any]
    search_rows: list[dict[str, Any]]
    fit_info: dict[str, Any]
    recipe: dict[str, Any]


def write_artefacts(
    run: RunDir,
    data: PlaylistData,
    model: VectorRanker,
    popularity: PopularityRanker,
    record: RunRecord,
    test_ranking: Ranking,
    names: NameModel | None = None,
) -> None:
    run.path.mkdir(parents=True, exist_ok=False)
    model.save(run.path)
    popularity.save(run.path)
    if names is not None:
        names.save(run.path)
    run.write_json(
        RunDir.PARAMS,
        {
            "word2vec": asdict(record.params),
            "seed": record.seed,
            "workers": record.fit_info["workers"],
            "n_orders": record.config.n_orders,
            "grid_file": record.config.source,
            "fit": record.fit_info,
            "seed_recipe": record.recipe,
            "gensim": version("gensim"),
            "python": platform.python_version(),
        },
    )
    run.write_json(RunDir.METRICS, record.metrics)
    run.write_json(RunDir.FINGERPRINT, record.fingerprint)
    with run.file(RunDir.SEARCH_RESULTS).open("w", newline="") as fh:
        if record.search_rows:
            writer = csv.DictWriter(fh, fieldnames=list(record.search_rows[0]))
            writer.writeheader()
            writer.writerows(record.search_rows)
    write_offline_predictions(run, data, model, test_ranking)


def write_offline_predictions(
    run: RunDir, data: PlaylistData, model: VectorRanker, ranking: Ranking, n: int = N_OFFLINE_PREDICTIONS
) -> None:
    """Seeds and offline top-10 of the first n test playlists (by session_id) for parity checks."""
    test = data.test
    n = min(n, len(test))
    ids = data.track_ids
    seeds, unknown, top_ids, top_scores = [], [], [], []
    for i in range(n):
        s = test.seeds.row(i)
        seeds.append(ids[s].tolist())
        unknown.append(int((~model.known[s]).sum()))
        top = ranking.tracks[i, :10]
        top_ids.append(ids[top[top >= 0]].tolist())
        top_scores.append(ranking.scores[i, :10][top >= 0].astype(np.float32).tolist())
    table = pa.table(
        {
            "session_id": pa.array(test.session_ids[:n].tolist(), pa.string()),
            "seed_track_ids": pa.array(seeds, pa.list_(pa.string())),
            "n_unknown": pa.array(unknown, pa.int32()),
            "is_fallback": pa.array(ranking.fallback[:n].tolist(), pa.bool_()),
            "top10_track_ids": pa.array(top_ids, pa.list_(pa.string())),
            "top10_scores": pa.array(top_scores, pa.list_(pa.float32())),
        }
    )
    pq.write_table(table, run.offline_predictions)
