"""The exported Keras KNN scored in numpy: `ml serve`'s engine, with no TensorFlow in the process.

It reads what `ml export` wrote - the weights of `knn.keras` (its `model.weights.h5`, with h5py)
and the SavedModel's asset files (vocabulary, catalogue, popular ids, names, name-token keys) - and
answers with the rule of `ml.knn` (`KnnTables.top_k`; `NameRule.top_k` for a playlist whose name has
a known token), the rule the Keras model computes in `keras.ops`: the same
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
from ml.knn import KnnTables, NameRule

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
    names: NameRule | None = None  # the name-token table (None: names are never known)

    @property
    def n_tracks(self) -> int:
        return self.tables.n_items

    @classmethod
    def load(cls, export_dir: Path) -> KnnEngine:
        """From an export dir (`ml export`'s export/, or model.tar.gz unpacked)."""
        tables, name_weights = _read_tables(export_dir / KERAS_FILE)
        assets = export_dir / ASSETS
        vocabulary = _lines(assets / "track_ids.txt")
        catalogue = _lines(assets / "catalogue_ids.txt")
        index_of = {t: i for i, t in enumerate(catalogue)}
        names = [line.split("\t") for line in _lines(assets / "track_names.tsv")]
        if len(vocabulary) != tables.n_items or catalogue[: len(vocabulary)] != vocabulary:
            raise ValueError(f"{export_dir}: the vocabulary does not match the weights of {KERAS_FILE}")
        if len(names) != len(catalogue) or any(len(n) != 2 for n in names):
            raise ValueError(f"{assets / 'track_names.tsv'}: expected one 'artist<TAB>title' line per track")
        name_rule = None
        if name_weights is not None:
            prior, rows, worth = name_weights
            keys = _lines(assets / "name_tokens.txt")
            if len(keys) != len(rows):
                raise ValueError(f"{assets / 'name_tokens.txt'}: {len(keys)} keys for {len(rows)} name rows")
            name_rule = NameRule.over(tables, keys, rows, prior, worth)
        return cls(
            tables=tables,
            catalogue=catalogue,
            row_of={t: i for i, t in enumerate(vocabulary)},
            popular=[index_of[t] for t in _lines(assets / "popular_ids.txt")],
            artists=[n[0] for n in names],
            titles=[n[1] for n in names],
            names=name_rule,
        )

    def _token_rows(self, inst: Instance) -> tuple[list[int], int]:
        """Rows of the name's known tokens, and how many tokens the model does not know."""
        keys = inst.name_keys()
        if self.names is None:
            return [], len(keys)
        rows = self.names.token_rows(keys)
        return rows, len(keys) - len(rows)

    def predict(self, instances: Sequence[Instance]) -> list[dict[str, object]]:
        """One prediction per instance, as the contract's `predictions` (ml.endpoint_contract).

        By the name rule (`NameRule`) when the name has a known token and counts (no seeds, or a
        worth above 0), else by the tables' rule; neither a known seed nor a known token: popular."""
        seeds, n_unknown, tokens, n_unknown_tokens = [], [], [], []
        for inst in instances:
            rows = {self.row_of.get(t, -1) for t in inst.tracks}
            n_unknown.append(sum(t not in self.row_of for t in inst.tracks))
            rows.discard(-1)
            seeds.append(sorted(rows))
            known, unknown = self._token_rows(inst)
            tokens.append(known)
            n_unknown_tokens.append(unknown)
        named = [i for i, t in enumerate(tokens) if t and (not seeds[i] or self.names.worth > 0)]
        knn = [i for i, rows in enumerate(seeds) if rows and i not in set(named)]
        position: dict[int, tuple[object, int]] = {}
        if knn:
            top = self.tables.top_k([seeds[i] for i in knn], k=max(instances[i].k for i in knn))
            position.update({i: (top, j) for j, i in enumerate(knn)})
        if named:
            top = self.names.top_k(
                [seeds[i] for i in named], [tokens[i] for i in named], k=max(instances[i].k for i in named)
            )
            position.update({i: (top, j) for j, i in enumerate(named)})
        out: list[dict[str, object]] = []
        for i, inst in enumerate(instances):
            if i in position:
                top, j = position[i]
                n = min(inst.k, self.n_tracks - len(seeds[i]))
                picked = top.rows[j, :n].tolist()
                scores = top.scores[j, :n].tolist()
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
                    "n_name_tokens": len(tokens[i]),
                    "n_unknown_tokens": n_unknown_tokens[i],
                }
            )
        return out


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return text[:-1].split("\n") if text else []


def _read_tables(keras_file: Path) -> tuple[KnnTables, tuple[np.ndarray, np.ndarray, float] | None]:
    """The item matrix (and the query table, when apart) from knn.keras's weights, via h5py, and
    the name table's (prior, rows, worth) (None for an export that predates name tokens)."""
    import h5py

    with zipfile.ZipFile(keras_file) as archive:
        config = json.loads(archive.read("config.json"))["config"]
        with archive.open(WEIGHTS_MEMBER) as member, h5py.File(member, "r") as weights:
            # PlaylistKnn's own weights, in creation order: items_t, [query_table], popular_index,
            # prior, name_rows, [query_scale].
            items_t = np.ascontiguousarray(weights["vars/0"][...], dtype=np.float32)
            query_table = None if config["shared"] else np.asarray(weights["vars/1"][...], dtype=np.float32)
            after = 2 if config["shared"] else 3
            names = None
            if "n_tokens" in config:
                prior = np.asarray(weights[f"vars/{after}"][...], dtype=np.float32)
                rows = np.asarray(weights[f"vars/{after + 1}"][...], dtype=np.float32)
                names = (prior, rows, float(config["worth"]))
    if items_t.shape != (config["dim"], config["n_items"]):
        raise ValueError(
            f"{keras_file}: items_t is {items_t.shape}, expected [{config['dim']}, {config['n_items']}]"
        )
    return KnnTables(items_t=items_t, query_table=query_table), names
