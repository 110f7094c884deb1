"""`ml export`: models/latest -> the Keras KNN (`knn.keras`), its TensorFlow Serving export, model.tar.gz.

The model is `ml.knn_keras.PlaylistKnn`, a `keras.Model` scoring with the rule of `ml.knn` (today
Q = I = the L2-normalized track vectors: cosine), with the vocabulary, the catalogue's names and the
popularity fallback inside. `ml export` writes, under the run folder:
- `export/knn.keras` (and `knn.keras` -> it): `keras.saving.load_model` reloads it;
- `export/1/`: the SavedModel written by `keras.export.ExportArchive`, signature
  `serving_default(tracks: string[batch, width] padded with "", k: int32[batch], name_tokens:
  string[batch, width'] padded with "")`, assets `track_ids.txt`, `catalogue_ids.txt`,
  `popular_ids.txt`, `track_names.tsv`, `name_tokens.txt`;
- `export/code/inference.py`: the JSON contract (`ml/endpoint_contract.py`) for the SageMaker
  TensorFlow Serving container, and `code/name_tokens.py` (`ml/name_tokens.py`) it tokenizes
  playlist names with; `export/model_info.json`: which run this is (run id, trained at,
  dbt invocation id) for `/ping` and the response headers;
- `model.tar.gz`: the content of `export/` at the archive root (`1/...`, `code/...`, `knn.keras`,
  `model_info.json`): the layout the SageMaker TensorFlow inference container expects, plus the
  Keras file `ml serve` scores from without TensorFlow.
Names (artist, title) come from the run's `track_names.parquet` when it has one, else from the
warehouse's `dim_tracks` (DUCKDB_PATH); every catalogue track needs one. The name-token table
(issue 14) comes from the run's `name_tokens.parquet` (a run without one exports a table no
token matches: names fall back like empty playlists).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml import endpoint_contract, name_tokens
from ml.cold_start import NameModel, run_prior
from ml.config import DEFAULTS, Paths
from ml.parity import Expected, compare
from ml.run_dir import RunDir

if TYPE_CHECKING:
    from ml.knn import KnnTables

# The content of <run>/export/ (and of the tarball):
MODEL_VERSION = "1"  # the SavedModel
KERAS_FILE = "knn.keras"
MODEL_INFO_FILE = "model_info.json"


@dataclass(frozen=True)
class ExportResult:
    run_dir: Path
    saved_model_dir: Path
    tarball: Path
    n_tracks: int
    dim: int
    n_popular: int
    saved_model_bytes: int
    tarball_bytes: int
    seconds: float
    selfcheck_playlists: int
    selfcheck_identical: int
    selfcheck_ties: int
    keras_file: Path | None = None
    keras_identical: int = 0  # of the self-check playlists: knn.keras answers = the SavedModel's
    n_name_tokens: int = 0  # name-token keys in the export (0: the run has no name table)
    selfcheck_names: int = 0  # name queries (alone, with tracks) equal to ml.cold_start's

    def summary(self) -> str:
        return "\n".join(
            [
                f"exported {self.n_tracks:,} tracks x {self.dim} dims from {self.run_dir}",
                f"  SavedModel  {self.saved_model_dir}  ({self.saved_model_bytes / 2**20:.1f} MiB)",
                f"  Keras model {self.keras_file}  (keras.saving.load_model)",
                f"  tarball     {self.tarball}  ({self.tarball_bytes / 2**20:.1f} MiB)",
                f"  popular fallback: {self.n_popular} tracks; targets SageMaker TF inference {DEFAULTS.tf_version}",
                f"  self-check: the reloaded SavedModel gives ml.knn's top-10 on {self.selfcheck_playlists} "
                f"random playlists: {self.selfcheck_identical} identical, {self.selfcheck_ties} equal up to "
                "float ties; knn.keras reloaded gives the SavedModel's answers on "
                f"{self.keras_identical}/{self.selfcheck_playlists}",
                f"  name tokens: {self.n_name_tokens:,}; {self.selfcheck_names} name queries (alone and with "
                "tracks) give ml.cold_start's top-10"
                if self.n_name_tokens
                else "  name tokens: none in this run (a name falls back to the popular tracks)",
                f"  took {self.seconds:.1f}s",
            ]
        )


def export_latest(paths: Paths, run_dir: Path | None = None, selfcheck_playlists: int = 200) -> ExportResult:
    """Export models/latest (or `run_dir`) to <run_dir>/export and <run_dir>/model.tar.gz."""
    start = time.perf_counter()
    run = RunDir(run_dir.resolve()) if run_dir else RunDir.latest(paths.models_dir)
    run_dir = run.path
    track_ids, tables = run.load_knn_tables()
    popular = run.load_popular_ids(endpoint_contract.N_POPULAR)
    known = set(track_ids)
    extra = [t for t in popular if t not in known]  # popular, but not in the vectors
    names = load_track_names(run, paths.duckdb_path, [*track_ids, *extra])
    name_model = NameModel.load(run.path) if run.name_tokens.exists() else None

    export_dir = run.export_dir
    staging = run_dir / f".{RunDir.EXPORT}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    name_table = _name_table(run, track_ids, tables, name_model)
    _write_export(
        staging, track_ids, extra, popular, names, tables, name_table, model_info(run, len(track_ids))
    )
    shutil.rmtree(export_dir, ignore_errors=True)
    os.replace(staging, export_dir)
    keras_link = run.keras_model
    if keras_link.is_symlink() or keras_link.exists():
        keras_link.unlink()
    keras_link.symlink_to(Path(RunDir.EXPORT) / KERAS_FILE)
    tarball = run.tarball
    write_tarball(export_dir, tarball)

    n_identical, n_ties, n_keras = _selfcheck(export_dir, track_ids, tables, selfcheck_playlists)
    n_names = 0
    if name_model is not None and len(name_model.keys) and selfcheck_playlists:
        from ml.export_names import selfcheck_names

        n_names = selfcheck_names(export_dir, run.path, [str(k) for k in name_model.keys], track_ids)
    return ExportResult(
        run_dir=run_dir,
        saved_model_dir=export_dir / MODEL_VERSION,
        tarball=tarball,
        n_tracks=len(track_ids),
        dim=int(tables.items_t.shape[0]),
        n_popular=len(popular),
        saved_model_bytes=_dir_bytes(export_dir / MODEL_VERSION),
        tarball_bytes=tarball.stat().st_size,
        seconds=time.perf_counter() - start,
        selfcheck_playlists=selfcheck_playlists,
        selfcheck_identical=n_identical,
        selfcheck_ties=n_ties,
        keras_file=keras_link,
        keras_identical=n_keras,
        n_name_tokens=len(name_model.keys) if name_model is not None else 0,
        selfcheck_names=n_names,
    )


def _name_table(run: RunDir, track_ids: list[str], tables: KnnTables, names: NameModel | None) -> Any:
    """The export's name table: the run's token rows, its prior column and worth (or none)."""
    from ml.knn_keras import NameTable

    dim = int(tables.items_t.shape[0])
    if names is None or not len(names.keys):
        return NameTable.empty(len(track_ids), dim)
    if names.rows.shape[1] != dim + 1:
        raise ValueError(
            f"{run.name_tokens}: rows are {names.rows.shape[1]} wide, the model's tables {dim} "
            "(+1 prior column expected): the name table belongs to other vectors; rerun `ml train`"
        )
    return NameTable([str(k) for k in names.keys], names.rows, run_prior(run, track_ids), names.worth)


def _write_export(
    staging: Path,
    track_ids: list[str],
    extra: list[str],
    popular: list[str],
    names: dict[str, tuple[str, str]],
    tables: KnnTables,
    name_table: Any,
    info: dict,
) -> None:
    """knn.keras, the SavedModel (1/), code/{inference,name_tokens}.py and model_info.json under
    `staging`."""
    from ml.knn_keras import KnnFiles, PlaylistKnn, export_saved_model  # Keras/TF: only when exporting

    files = KnnFiles(staging / ".files", track_ids, extra, popular, names, name_table.keys)
    index_of = {t: i for i, t in enumerate([*track_ids, *extra])}
    model = PlaylistKnn.build_from(
        files,
        items_t=np.ascontiguousarray(tables.items_t),
        query_table=tables.query_table,
        popular_index=np.array([index_of[t] for t in popular], dtype=np.int32),
        names=name_table,
        per_seed=tables.per_seed,
    )
    model.save(staging / KERAS_FILE)
    export_saved_model(model, staging / MODEL_VERSION)
    shutil.rmtree(staging / ".files")  # copied into 1/assets/ by the export
    code_dir = staging / "code"
    code_dir.mkdir()
    shutil.copyfile(endpoint_contract.__file__, code_dir / "inference.py")
    shutil.copyfile(name_tokens.__file__, code_dir / "name_tokens.py")  # the handler tokenizes names
    (staging / MODEL_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")


def load_track_names(run: RunDir, duckdb_path: Path, track_ids: list[str]) -> dict[str, tuple[str, str]]:
    """track_id -> (artist, title) for every given id: the run's track_names.parquet, else dim_tracks."""
    path = run.track_names
    if path.exists():
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=["track_id", "artist_name", "track_name"]).to_pydict()
        found = dict(
            zip(table["track_id"], zip(table["artist_name"], table["track_name"], strict=True), strict=True)
        )
        source = str(path)
    else:
        from ml import warehouse

        try:
            found = warehouse.track_names(duckdb_path, track_ids)
        except warehouse.WarehouseError as exc:
            raise FileNotFoundError(
                f"the export needs the tracks' names: {run.path} has no {RunDir.TRACK_NAMES} and {exc}"
            ) from None
        source = f"dim_tracks of {duckdb_path}"
    missing = [t for t in track_ids if t not in found]
    if missing:
        raise ValueError(
            f"{source} has no name for {len(missing)} of the model's {len(track_ids)} tracks "
            f"(e.g. {missing[0]}): was the warehouse rebuilt from another file since `ml train`?"
        )
    return {t: (str(found[t][0] or ""), str(found[t][1] or "")) for t in track_ids}


def model_info(run: RunDir, n_tracks: int) -> dict:
    """Lineage of the export: run id, when it was trained, the dbt invocation that built its data."""
    fingerprint = run.read_json(RunDir.FINGERPRINT) if run.file(RunDir.FINGERPRINT).exists() else {}
    stamp = re.match(r"^(\d{8}T\d{6}Z)", run.path.name)  # `ml train` names runs by their UTC start
    trained = (
        time.strptime(stamp.group(1), "%Y%m%dT%H%M%SZ") if stamp else time.gmtime(run.vectors.stat().st_mtime)
    )
    return {
        "run_id": run.path.name,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", trained),
        "dbt_invocation_id": fingerprint.get("dbt_invocation_id"),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "n_tracks": n_tracks,
    }


def write_tarball(export_dir: Path, tarball: Path) -> None:
    """gzip tar of export_dir's content at the archive root (1/..., code/...), written atomically."""
    tmp = tarball.with_name(tarball.name + ".tmp")
    # Level 1: float32 weights barely compress, so higher levels only cost time.
    with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
        for child in sorted(export_dir.iterdir()):
            tar.add(child, arcname=child.name)
    os.replace(tmp, tarball)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _selfcheck(
    export_dir: Path, track_ids: list[str], tables: KnnTables, n_playlists: int, chunk: int = 20
) -> tuple[int, int, int]:
    """Reload the SavedModel; compare its top-10 with ml.knn on seeded random playlists; reload
    knn.keras with Keras and compare its answers with the SavedModel's.

    Returns (identical, equal up to float ties, Keras answers equal to the SavedModel's); raises if
    any playlist differs beyond ties. Chunks keep the [playlists, tracks] score matrices small.
    """
    import keras
    import tensorflow as tf

    import ml.knn_keras  # noqa: F401 - registers the classes knn.keras names

    rng = np.random.default_rng(0)
    size = min(20, len(track_ids))
    seed_rows = [
        sorted(rng.choice(len(track_ids), size=int(rng.integers(1, size + 1)), replace=False).tolist())
        for _ in range(n_playlists)
    ]
    signature = tf.saved_model.load(str(export_dir / MODEL_VERSION)).signatures[
        endpoint_contract.SIGNATURE_NAME
    ]
    keras_model = keras.saving.load_model(export_dir / KERAS_FILE)
    identical = ties = same_keras = 0
    different: list[str] = []
    for start in range(0, n_playlists, chunk):
        rows = seed_rows[start : start + chunk]
        reference = tables.top_k(rows, k=11, batch_size=chunk)
        width = max(len(r) for r in rows)
        inputs = {
            "tracks": tf.constant([[track_ids[r] for r in p] + [""] * (width - len(p)) for p in rows]),
            "k": tf.constant([10] * len(rows), dtype=tf.int32),
            "name_tokens": tf.constant([[endpoint_contract.PAD]] * len(rows)),
        }
        out = {name: value.numpy() for name, value in signature(**inputs).items()}
        from_keras = {name: np.asarray(value) for name, value in keras_model(inputs).items()}
        for i, playlist in enumerate(rows):
            n = int(out["n_results"][i])
            ref_rows, ref_scores = reference.rows[i], reference.scores[i]
            expected = Expected(
                tracks=(),
                track_ids=tuple(track_ids[r] for r in ref_rows[:n]),
                scores=tuple(float(x) for x in ref_scores[:n]),
                n_unknown=0,
                fallback=False,
                tie_score=float(ref_scores[n]) if len(ref_scores) > n else -np.inf,
            )
            got = {
                "track_ids": out["track_ids"][i, :n].astype(str).tolist(),
                "scores": out["scores"][i, :n].tolist(),
                "n_unknown": int(out["n_unknown"][i]),
            }
            verdict = compare(expected, got)
            identical += verdict is None
            ties += verdict == "tie"
            if verdict not in (None, "tie"):
                different.append(f"playlist {start + i} (rows {playlist}): {verdict}")
            same_keras += all(np.array_equal(out[name][i], from_keras[name][i]) for name in out)
    if different:
        raise RuntimeError(
            f"{export_dir}: the SavedModel disagrees with ml.knn on {len(different)}/{n_playlists} "
            f"playlists, e.g. {different[0]}"
        )
    if same_keras != n_playlists:
        raise RuntimeError(
            f"{export_dir / KERAS_FILE}: the reloaded Keras model differs from the SavedModel on "
            f"{n_playlists - same_keras}/{n_playlists} playlists"
        )
    return identical, ties, same_keras
