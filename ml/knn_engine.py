"""The exported Keras KNN scored in numpy: `ml serve`'s engine, with no TensorFlow in the process.

It reads what `ml export` wrote - the weights of `knn.keras` (its `model.weights.h5`, with h5py)
and the SavedModel's asset files (vocabulary, catalogue, popular ids, names) - and answers with
the rule of `ml.knn` (`KnnTables.top_k`), the rule the Keras model computes in `keras.ops`: the same
answers as the SavedModel on SageMaker up to float ties (`ml.deploy.check` tolerance), without
TensorFlow's per-call overhead and memory. The item matrix is kept as [d, n] C-contiguous float32
(a single query's product runs ~2x faster on CPU than against [n, d]).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.endpoint_contract import Instance
from ml.knn import KnnTables

KERAS_FILE = "knn.keras"
WEIGHTS_MEMBER = "model.weights.h5"
ASSETS = Path("1") / "assets"  # under the export dir: the SavedModel's asset files


@dataclass(frozen=True)
class KnnEngine:
    """The model's tables and strings; `predict` answers a batch of instances."""

    tables: KnnTables
    catalogue: list[str]  # index -> track id: the vocabulary rows, then popular tracks without vectors
    row_of: dict[str, int]  # track id -> row (vocabulary only)
    popular: list[int]  # catalogue indices, most popular first
    artists: list[str]  # by catalogue index
    titles: list[str]

    @property
    def n_tracks(self) -> int:
        return self.tables.n_items

    @classmethod
    def load(cls, export_dir: Path) -> KnnEngine:
        """From an export dir (`ml export`'s export/, or model.tar.gz unpacked)."""
        tables = _read_tables(export_dir / KERAS_FILE)
        assets = export_dir / ASSETS
        vocabulary = _lines(assets / "track_ids.txt")
        catalogue = _lines(assets / "catalogue_ids.txt")
        index_of = {t: i for i, t in enumerate(catalogue)}
        names = [line.split("\t") for line in _lines(assets / "track_names.tsv")]
        if len(vocabulary) != tables.n_items or catalogue[: len(vocabulary)] != vocabulary:
            raise ValueError(f"{export_dir}: the vocabulary does not match the weights of {KERAS_FILE}")
        if len(names) != len(catalogue) or any(len(n) != 2 for n in names):
            raise ValueError(f"{assets / 'track_names.tsv'}: expected one 'artist<TAB>title' line per track")
        return cls(
            tables=tables,
            catalogue=catalogue,
            row_of={t: i for i, t in enumerate(vocabulary)},
            popular=[index_of[t] for t in _lines(assets / "popular_ids.txt")],
            artists=[n[0] for n in names],
            titles=[n[1] for n in names],
        )

    def predict(self, instances: Sequence[Instance]) -> list[dict[str, object]]:
        """One prediction per instance, as the contract's `predictions` (ml.endpoint_contract)."""
        seeds, n_unknown = [], []
        for inst in instances:
            rows = {self.row_of.get(t, -1) for t in inst.tracks}
            n_unknown.append(sum(t not in self.row_of for t in inst.tracks))
            rows.discard(-1)
            seeds.append(sorted(rows))
        knn = [i for i, rows in enumerate(seeds) if rows]
        top = self.tables.top_k([seeds[i] for i in knn], k=max(instances[i].k for i in knn)) if knn else None
        out: list[dict[str, object]] = []
        position = {i: j for j, i in enumerate(knn)}
        for i, inst in enumerate(instances):
            if i in position:
                n = min(inst.k, self.n_tracks - len(seeds[i]))
                picked = top.rows[position[i], :n].tolist()
                scores = top.scores[position[i], :n].tolist()
            else:
                inside = set(inst.tracks)
                picked = [c for c in self.popular if self.catalogue[c] not in inside][: inst.k]
                scores = [0.0] * len(picked)
            out.append(
                {
                    "track_ids": [self.catalogue[c] for c in picked],
                    "artists": [self.artists[c] for c in picked],
                    "titles": [self.titles[c] for c in picked],
                    "scores": scores,
                    "n_unknown": n_unknown[i],
                    "fallback": i not in position,
                }
            )
        return out


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return text[:-1].split("\n") if text else []


def _read_tables(keras_file: Path) -> KnnTables:
    """The item matrix (and the query table, when apart) from knn.keras's weights, via h5py."""
    import h5py

    with zipfile.ZipFile(keras_file) as archive:
        config = json.loads(archive.read("config.json"))["config"]
        with archive.open(WEIGHTS_MEMBER) as member, h5py.File(member, "r") as weights:
            # PlaylistKnn's own weights, in creation order: items_t, [query_table], popular_index.
            items_t = np.ascontiguousarray(weights["vars/0"][...], dtype=np.float32)
            query_table = None if config["shared"] else np.asarray(weights["vars/1"][...], dtype=np.float32)
    if items_t.shape != (config["dim"], config["n_items"]):
        raise ValueError(
            f"{keras_file}: items_t is {items_t.shape}, expected [{config['dim']}, {config['n_items']}]"
        )
    return KnnTables(items_t=items_t, query_table=query_table)
