"""The exported Keras KNN scored in numpy: `ml serve`'s engine, with no TensorFlow in the process.

It reads what `ml export` wrote - the weights of `knn.keras` (its `model.weights.h5`, with h5py)
and the SavedModel's asset files (vocabulary, catalogue, popular ids, names, name-token keys) - and
answers with the rule of `ml.knn` (`KnnTables.top_k`: the mean query or per-seed aggregation, as
knn.keras's config says; `NameRule.top_k` for a playlist whose name has a known token), the rule the Keras model computes in `keras.ops`: the same
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
class Strings:
    """Strings as one UTF-8 buffer and offsets (Arrow's layout): no Python object per string, so a
    million track ids and names cost their bytes, not ~60 bytes of object header each."""

    data: np.ndarray  # uint8
    starts: np.ndarray  # per string, int32 (int64 for a buffer of 2 GiB or more)
    ends: np.ndarray

    @classmethod
    def from_list(cls, values: Sequence[str]) -> Strings:
        encoded = [v.encode("utf-8") for v in values]
        ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)
        starts = ends - np.array([len(e) for e in encoded], dtype=np.int64)
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        return cls(data, _offsets(starts, len(data)), _offsets(ends, len(data)))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> str:
        return self.data[self.starts[i] : self.ends[i]].tobytes().decode("utf-8")

    def take(self, index: Sequence[int]) -> list[str]:
        return [self[int(i)] for i in index]

    @property
    def nbytes(self) -> int:
        return self.data.nbytes + self.starts.nbytes + self.ends.nbytes


class IdIndex:
    """id -> position in a `Strings` of unique ids: the ids as fixed-width bytes, sorted, searched
    with numpy (a request's ids in one `searchsorted`), instead of a dict of a million strings."""

    def __init__(self, ids: Strings) -> None:
        lengths = ids.ends - ids.starts
        self.width = int(lengths.max(initial=1))
        n = len(ids)
        stride = int(ids.starts[1] - ids.starts[0]) if n > 1 else self.width
        if (
            n
            and stride >= self.width
            and (lengths == self.width).all()
            and (ids.starts == np.arange(n, dtype=np.int64) * stride).all()
        ):  # ids of one length at a fixed stride (the asset file: id + newline): no Python bytes
            block = np.lib.stride_tricks.as_strided(ids.data, shape=(n, self.width), strides=(stride, 1))
            keys = np.ascontiguousarray(block).view(f"S{self.width}").ravel()
        else:  # ids of several lengths: through Python bytes once
            keys = np.array(
                [ids.data[a:b].tobytes() for a, b in zip(ids.starts, ids.ends, strict=True)], f"S{self.width}"
            )
        self.order = np.argsort(keys, kind="stable").astype(np.int32 if len(keys) < 2**31 else np.int64)
        self.sorted = keys[self.order]

    def positions(self, values: Sequence[str]) -> np.ndarray:
        """Position of each value, -1 where it is not an id (int64)."""
        if not len(values):
            return np.zeros(0, dtype=np.int64)
        encoded = [v.encode("utf-8") for v in values]
        # Longer than any id, or holding NUL (numpy's bytes drop trailing NULs): never an id.
        fits = np.array([len(e) <= self.width and b"\0" not in e for e in encoded])
        query = np.array([e if ok else b"" for e, ok in zip(encoded, fits, strict=True)], f"S{self.width}")
        at = np.minimum(np.searchsorted(self.sorted, query), len(self.sorted) - 1)
        found = fits & (self.sorted[at] == query) if len(self.sorted) else np.zeros(len(query), bool)
        return np.where(found, self.order[at], -1).astype(np.int64)


@dataclass(frozen=True)
class KnnEngine:
    """The model's tables and strings; `predict` answers a batch of instances."""

    tables: KnnTables
    catalogue: Strings  # index -> track id: the vocabulary rows, then popular tracks without vectors
    index: IdIndex  # track id -> catalogue index (a row when < n_tracks)
    popular: np.ndarray  # catalogue indices, most popular first (int64)
    artists: Strings  # by catalogue index
    titles: Strings
    names: NameRule | None = None  # the name-token table (None: names are never known)

    @property
    def n_tracks(self) -> int:
        return self.tables.n_items

    @classmethod
    def build(
        cls,
        tables: KnnTables,
        catalogue: Sequence[str],
        popular: Sequence[int],
        artists: Sequence[str],
        titles: Sequence[str],
        names: NameRule | None = None,
    ) -> KnnEngine:
        """From Python lists (catalogue = the vocabulary in row order, then the extra popular ids)."""
        ids = Strings.from_list(catalogue)
        return cls(
            tables,
            ids,
            IdIndex(ids),
            np.asarray(popular, dtype=np.int64),
            Strings.from_list(artists),
            Strings.from_list(titles),
            names,
        )

    @classmethod
    def load(cls, export_dir: Path) -> KnnEngine:
        """From an export dir (`ml export`'s export/, or model.tar.gz unpacked)."""
        tables, name_weights = _read_tables(export_dir / KERAS_FILE)
        assets = export_dir / ASSETS
        vocabulary = (assets / "track_ids.txt").read_bytes()
        catalogue_bytes = (assets / "catalogue_ids.txt").read_bytes()
        catalogue = _line_strings(catalogue_bytes)
        if vocabulary.count(b"\n") != tables.n_items or not catalogue_bytes.startswith(vocabulary):
            raise ValueError(f"{export_dir}: the vocabulary does not match the weights of {KERAS_FILE}")
        artists, titles = _name_columns(assets / "track_names.tsv")
        if len(artists) != len(catalogue):
            raise ValueError(f"{assets / 'track_names.tsv'}: expected one 'artist<TAB>title' line per track")
        index = IdIndex(catalogue)
        popular_ids = _lines(assets / "popular_ids.txt")
        popular = index.positions(popular_ids)
        if (popular < 0).any():
            raise ValueError(f"{assets / 'popular_ids.txt'}: ids outside the catalogue")
        name_rule = None
        if name_weights is not None:
            prior, rows, worth = name_weights
            keys = _lines(assets / "name_tokens.txt")
            if len(keys) != len(rows):
                raise ValueError(f"{assets / 'name_tokens.txt'}: {len(keys)} keys for {len(rows)} name rows")
            name_rule = NameRule.over(tables, keys, rows, prior, worth)
        return cls(tables, catalogue, index, popular, artists, titles, name_rule)

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
        seeds, n_unknown, tokens, n_unknown_tokens, inside = [], [], [], [], []
        for inst in instances:
            at = self.index.positions(inst.tracks)  # catalogue index, -1 unknown
            inside.append(at[at >= 0])
            known = (at >= 0) & (at < self.n_tracks)
            n_unknown.append(int(len(at) - known.sum()))
            seeds.append(np.unique(at[known]).tolist())
            known_tokens, unknown = self._token_rows(inst)
            tokens.append(known_tokens)
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
                picked = self.popular[~np.isin(self.popular, inside[i])][: inst.k].tolist()
                scores = [0.0] * len(picked)
            out.append(
                {
                    "track_ids": self.catalogue.take(picked),
                    "artists": self.artists.take(picked),
                    "titles": self.titles.take(picked),
                    "scores": scores,
                    "n_unknown": n_unknown[i],
                    "fallback": i not in position,
                    "n_name_tokens": len(tokens[i]),
                    "n_unknown_tokens": n_unknown_tokens[i],
                }
            )
        return out


def _offsets(positions: np.ndarray, size: int) -> np.ndarray:
    """Offsets into a buffer of `size` bytes: int32 while it fits (half the memory), else int64."""
    return np.asarray(positions, dtype=np.int32 if size < 2**31 else np.int64)


def _line_strings(data: bytes) -> Strings:
    """The lines of a file's bytes (each ending in a newline) as `Strings`, without Python strings."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    ends = _offsets(np.flatnonzero(buffer == 10), len(buffer))
    starts = np.concatenate([np.zeros(1, ends.dtype), ends[:-1] + 1]) if len(ends) else ends
    return Strings(buffer, starts, ends)


def _name_columns(path: Path) -> tuple[Strings, Strings]:
    """track_names.tsv (line = catalogue index, `artist<TAB>title`) as two `Strings` sharing one
    buffer; ValueError unless every line holds exactly one tab."""
    lines = _line_strings(path.read_bytes())
    tabs = _offsets(np.flatnonzero(lines.data == 9), len(lines.data))
    if len(tabs) != len(lines) or not ((lines.starts <= tabs) & (tabs < lines.ends)).all():
        raise ValueError(f"{path}: expected one 'artist<TAB>title' line per track")
    return Strings(lines.data, lines.starts, tabs), Strings(lines.data, tabs + 1, lines.ends)


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
            # prior, name_rows.
            items_t = np.ascontiguousarray(weights["vars/0"][...], dtype=np.float32)
            query_table = None if config["shared"] else np.asarray(weights["vars/1"][...], dtype=np.float32)
            after = 2 if config["shared"] else 3
            names = None
            if f"vars/{after + 2}" in weights:  # query_scale: names scored against Q normalized
                raise ValueError(
                    f"{keras_file}: its name table predates name scoring against the item matrix "
                    "(issue 14); rerun `ml train` and `ml export`"
                )
            if "n_tokens" in config:
                prior = np.asarray(weights[f"vars/{after}"][...], dtype=np.float32)
                rows = np.asarray(weights[f"vars/{after + 1}"][...], dtype=np.float32)
                names = (prior, rows, float(config["worth"]))
    if items_t.shape != (config["dim"], config["n_items"]):
        raise ValueError(
            f"{keras_file}: items_t is {items_t.shape}, expected [{config['dim']}, {config['n_items']}]"
        )
    per_seed = int(config.get("per_seed", 0))  # 0: an export that predates per-seed aggregation
    return KnnTables(items_t=items_t, query_table=query_table, per_seed=per_seed), names
