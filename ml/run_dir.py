"""The run folder `models/<run_id>/`: its file names, its loaders, and `models/latest`.

No other module spells a file name of the run folder; they ask a `RunDir`. What `ml train` writes:

    vectors.kv (+ vectors.kv.vectors.npy)   track2vec vectors (gensim KeyedVectors, mmap-able)
    knn_query.npy, knn_items.npy,           the tables of `ml.knn` (query table Q, item matrix I,
      knn_scoring.json                      rows in vectors.kv's order) and the rule that made them;
                                            absent for plain cosine (Q = I = normalized vectors.kv)
    popularity.parquet                      track_id, count: train playlists per track, most first
    name_tokens.parquet                     name-token query rows (ml.cold_start, docs/cold_start.md)
    params.json, metrics.json, fingerprint.json, timings.json, search_results.csv
    offline_test_predictions.parquet        test seeds and their offline top-10 (parity checks)
    model_card.md (+ plots)
and `ml export` adds `export/` (the TF Serving layout, knn.keras), `knn.keras` -> it, and `model.tar.gz`;
`track_names.parquet` (optional) gives the export the tracks' names without the warehouse.

Loaders need numpy and pyarrow; gensim is imported only to read vectors.kv. Serving code never
needs this module (it reads model.tar.gz only), but the check and `ml recommend` do.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LATEST = "latest"
_TRACK_ID = re.compile(r"^[^\s]+$")


@dataclass(frozen=True)
class RunDir:
    """One run folder; `RunDir.latest(models_dir)` is the run `models/latest` points at."""

    path: Path

    VECTORS = "vectors.kv"
    POPULARITY = "popularity.parquet"
    PARAMS = "params.json"
    METRICS = "metrics.json"
    FINGERPRINT = "fingerprint.json"
    TIMINGS = "timings.json"
    SEARCH_RESULTS = "search_results.csv"
    OFFLINE_PREDICTIONS = "offline_test_predictions.parquet"
    MODEL_CARD = "model_card.md"
    TRACK_NAMES = "track_names.parquet"  # optional: track_id, artist_name, track_name (ml export)
    EXPORT = "export"  # export/{1/,code/,knn.keras,model_info.json}: the tarball's content
    TARBALL = "model.tar.gz"
    KERAS_MODEL = "knn.keras"  # -> export/knn.keras (ml export)
    KNN_QUERY = "knn_query.npy"
    KNN_ITEMS = "knn_items.npy"
    KNN_SCORING = "knn_scoring.json"
    ITEM_COOC = "item_cooc.npz"  # CoocRanker.save (not written by `ml train`)
    NAME_TOKENS = "name_tokens.parquet"  # ml.cold_start.NameModel: name-token query rows

    @classmethod
    def latest(cls, models_dir: Path) -> RunDir:
        """The run `models_dir/latest` points at (resolved, so a later `ml train` does not move it)."""
        return cls((Path(models_dir) / LATEST).resolve())

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def vectors(self) -> Path:
        return self.path / self.VECTORS

    @property
    def popularity(self) -> Path:
        return self.path / self.POPULARITY

    @property
    def name_tokens(self) -> Path:
        return self.path / self.NAME_TOKENS

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def offline_predictions(self) -> Path:
        return self.path / self.OFFLINE_PREDICTIONS

    @property
    def export_dir(self) -> Path:
        return self.path / self.EXPORT

    @property
    def tarball(self) -> Path:
        return self.path / self.TARBALL

    @property
    def keras_model(self) -> Path:
        return self.path / self.KERAS_MODEL

    @property
    def track_names(self) -> Path:
        return self.path / self.TRACK_NAMES

    @property
    def model_card(self) -> Path:
        return self.path / self.MODEL_CARD

    def write_json(self, name: str, data: Any) -> None:
        (self.path / name).write_text(json.dumps(data, indent=2) + "\n")

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text())

    # --- loaders ---------------------------------------------------------------------------------

    def _require(self, path: Path) -> Path:
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run `ml train` first (or set MODELS_DIR)")
        return path

    def load_keyed_vectors(self) -> Any:
        """The gensim KeyedVectors of the run, memory-mapped."""
        from gensim.models import KeyedVectors

        return KeyedVectors.load(str(self._require(self.vectors)), mmap="r")

    def vocabulary(self) -> list[str]:
        return list(self.load_keyed_vectors().index_to_key)

    def load_normalized_vectors(self) -> tuple[list[str], np.ndarray]:
        """Track ids in row order and their L2-normalized float32 vectors, checked."""
        from ml.knn import normalize_rows

        kv = self.load_keyed_vectors()
        track_ids = list(kv.index_to_key)
        bad = [t for t in track_ids if not isinstance(t, str) or not _TRACK_ID.match(t)]
        if bad:
            raise ValueError(
                f"{self.vectors}: {len(bad)} keys are not track id strings (empty, whitespace), e.g. {bad[0]!r}"
            )
        if len(set(track_ids)) != len(track_ids):
            raise ValueError(f"{self.vectors}: {len(track_ids) - len(set(track_ids))} repeated track ids")
        return track_ids, normalize_rows(kv.vectors)

    def write_knn_tables(self, query: np.ndarray, items: np.ndarray, scoring: dict[str, Any]) -> None:
        np.save(self.file(self.KNN_QUERY), np.ascontiguousarray(query, dtype=np.float32))
        np.save(self.file(self.KNN_ITEMS), np.ascontiguousarray(items, dtype=np.float32))
        self.write_json(self.KNN_SCORING, scoring)

    def knn_scoring(self) -> dict[str, Any]:
        """How the tables were made and the rule that scores them ({"scoring": "cosine" |
        "output", "prior": w, "per_seed": M}; M = 0, the mean query, when absent)."""
        if not self.file(self.KNN_SCORING).exists():
            return {"scoring": "cosine", "prior": 0.0, "per_seed": 0}
        return {"per_seed": 0, **dict(self.read_json(self.KNN_SCORING))}

    def load_knn_tables(self) -> tuple[list[str], Any]:
        """The vocabulary and the `ml.knn.KnnTables` the run scores with: cosine (Q = I = the
        normalized vectors.kv) unless the run wrote knn_query.npy / knn_items.npy (memory-mapped)."""
        from ml.knn import KnnTables

        track_ids, normed = self.load_normalized_vectors()
        per_seed = int(self.knn_scoring()["per_seed"])
        if not self.file(self.KNN_ITEMS).exists():
            return track_ids, KnnTables(items_t=normed.T, per_seed=per_seed)
        query = np.load(self._require(self.file(self.KNN_QUERY)), mmap_mode="r")
        items = np.load(self._require(self.file(self.KNN_ITEMS)), mmap_mode="r")
        if query.shape != items.shape or len(items) != len(track_ids):
            raise ValueError(
                f"{self.path}: knn tables {query.shape} / {items.shape} do not match {len(track_ids)} tracks"
            )
        return track_ids, KnnTables(items_t=items.T, query_table=query, per_seed=per_seed)

    def load_popularity(self) -> tuple[list[str], list[int]]:
        """Track ids most popular first and their train-playlist counts."""
        import pyarrow.parquet as pq

        table = pq.read_table(self._require(self.popularity), columns=["track_id", "count"])
        return [str(t) for t in table.column("track_id").to_pylist()], table.column("count").to_pylist()

    def load_popular_ids(self, n: int) -> list[str]:
        """The n most popular track ids, checked (the fallback for playlists with no known track)."""
        ids = self.load_popularity()[0][:n]
        if not ids:
            raise ValueError(
                f"{self.popularity} is empty: the fallback for empty playlists needs popular tracks"
            )
        bad = [t for t in ids if not _TRACK_ID.match(t)]
        if bad or len(set(ids)) != len(ids):
            raise ValueError(
                f"{self.popularity}: track ids must be unique non-blank strings (e.g. {bad[:1] or 'a repeat'})"
            )
        return ids

    def load_offline_predictions(self) -> list[dict[str, Any]] | None:
        """The rows of offline_test_predictions.parquet, or None for a run without it."""
        if not self.offline_predictions.exists():
            return None
        import pyarrow.parquet as pq

        return pq.read_table(self.offline_predictions).to_pylist()


def point_latest(models_dir: Path, run_dir: Path) -> None:
    """models/latest -> <run_id> (relative symlink, replaced atomically)."""
    link = Path(models_dir) / LATEST
    tmp = Path(models_dir) / f".{LATEST}.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(Path(run_dir).name)
    os.replace(tmp, link)
