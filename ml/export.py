"""`ml export`: models/latest -> a TensorFlow SavedModel answering KNN queries, and model.tar.gz.

The SavedModel is a `tf.Module` (no Keras layer adds anything to a matrix product and a top-k):
- `embeddings_t`: the item matrix I of `ml.knn` (the run's `load_knn_tables`), transposed to
  [dim, n_tracks], one variable (a [1, dim] x [dim, n] product runs ~3x faster on CPU than one with
  transpose_b); `query_table`: the query table Q [n_tracks, dim] when it differs from I (the output
  layer rule), otherwise the queries are gathered from `embeddings_t` (cosine: Q = I, stored once);
- `assets/track_ids.txt`: the vocabulary, one id per line (line number = row), read by two
  `StaticHashTable`s (id -> row, row -> id);
- `popular_ids` + `assets/popular_ids.txt`: the N_POPULAR most popular track ids, for playlists with
  no known track (a hash table finds the playlist's own tracks among them in O(tracks)).

`serving_default(tracks: string[batch, width], k: int32[batch])` scores with the rule of
`ml.knn.top_k`: mean of the known seeds' rows of Q, inner product with every row of I, seeds
excluded, ties to the lower row (`tf.math.top_k` keeps the lower index first on equal values).

`model.tar.gz` has the TensorFlow Serving layout the SageMaker TensorFlow inference container
expects: `1/saved_model.pb`, `1/variables/`, `1/assets/`, and `code/inference.py` (the JSON
contract, `ml/endpoint_contract.py`).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml import endpoint_contract
from ml.config import DEFAULTS, Paths
from ml.parity import Expected, compare
from ml.run_dir import RunDir

MODEL_VERSION = "1"
VOCAB_ASSET = "track_ids.txt"
POPULAR_ASSET = "popular_ids.txt"


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

    def summary(self) -> str:
        return "\n".join(
            [
                f"exported {self.n_tracks:,} tracks x {self.dim} dims from {self.run_dir}",
                f"  SavedModel  {self.saved_model_dir}  ({self.saved_model_bytes / 2**20:.1f} MiB)",
                f"  tarball     {self.tarball}  ({self.tarball_bytes / 2**20:.1f} MiB)",
                f"  popular fallback: {self.n_popular} tracks; targets SageMaker TF inference {DEFAULTS.tf_version}",
                f"  self-check: the reloaded SavedModel gives ml.knn's top-10 on {self.selfcheck_playlists} "
                f"random playlists: {self.selfcheck_identical} identical, {self.selfcheck_ties} equal up to "
                "float ties",
                f"  took {self.seconds:.1f}s",
            ]
        )


def export_latest(paths: Paths, run_dir: Path | None = None, selfcheck_playlists: int = 200) -> ExportResult:
    """Export models/latest (or `run_dir`) to <run_dir>/export and <run_dir>/model.tar.gz."""
    import tensorflow as tf

    start = time.perf_counter()
    run = RunDir(run_dir.resolve()) if run_dir else RunDir.latest(paths.models_dir)
    run_dir = run.path
    track_ids, query, items = run.load_knn_tables()
    popular = run.load_popular_ids(endpoint_contract.N_POPULAR)

    export_dir = run.export_dir
    staging = run_dir / f".{RunDir.EXPORT}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    version_dir = staging / MODEL_VERSION
    vocab_path = staging / VOCAB_ASSET
    staging.mkdir(parents=True)
    vocab_path.write_text("".join(f"{t}\n" for t in track_ids))
    popular_path = staging / POPULAR_ASSET
    popular_path.write_text("".join(f"{t}\n" for t in popular))

    from ml.knn_savedmodel import PlaylistKnn  # TensorFlow: imported only when exporting

    module = PlaylistKnn(items, str(vocab_path), popular, str(popular_path), query_table=query)
    tf.saved_model.save(module, str(version_dir), signatures={endpoint_contract.SIGNATURE_NAME: module.serve})
    vocab_path.unlink()  # both copied into 1/assets/ by the save
    popular_path.unlink()
    code_dir = staging / "code"
    code_dir.mkdir()
    shutil.copyfile(endpoint_contract.__file__, code_dir / "inference.py")

    shutil.rmtree(export_dir, ignore_errors=True)
    os.replace(staging, export_dir)
    tarball = run.tarball
    write_tarball(export_dir, tarball)

    n_identical, n_ties = _selfcheck(export_dir / MODEL_VERSION, track_ids, query, items, selfcheck_playlists)
    return ExportResult(
        run_dir=run_dir,
        saved_model_dir=export_dir / MODEL_VERSION,
        tarball=tarball,
        n_tracks=len(track_ids),
        dim=int(items.shape[1]),
        n_popular=len(popular),
        saved_model_bytes=_dir_bytes(export_dir / MODEL_VERSION),
        tarball_bytes=tarball.stat().st_size,
        seconds=time.perf_counter() - start,
        selfcheck_playlists=selfcheck_playlists,
        selfcheck_identical=n_identical,
        selfcheck_ties=n_ties,
    )


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
    saved_model_dir: Path,
    track_ids: list[str],
    query: np.ndarray,
    items: np.ndarray,
    n_playlists: int,
    chunk: int = 20,
) -> tuple[int, int]:
    """Reload the SavedModel; compare its top-10 with ml.knn on seeded random playlists.

    Returns (identical, equal up to float ties); raises if any playlist differs beyond that.
    Chunks keep the [playlists, tracks] score matrices small for a million-track model.
    """
    import tensorflow as tf

    from ml.knn import top_k

    rng = np.random.default_rng(0)
    size = min(20, len(track_ids))
    seed_rows = [
        sorted(rng.choice(len(track_ids), size=int(rng.integers(1, size + 1)), replace=False).tolist())
        for _ in range(n_playlists)
    ]
    signature = tf.saved_model.load(str(saved_model_dir)).signatures[endpoint_contract.SIGNATURE_NAME]
    identical = ties = 0
    different: list[str] = []
    for start in range(0, n_playlists, chunk):
        rows = seed_rows[start : start + chunk]
        reference = top_k(query, rows, k=11, batch_size=chunk, items=None if query is items else items)
        width = max(len(r) for r in rows)
        out = signature(
            tracks=tf.constant([[track_ids[r] for r in p] + [""] * (width - len(p)) for p in rows]),
            k=tf.constant([10] * len(rows), dtype=tf.int32),
        )
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
                "track_ids": out["track_ids"][i, :n].numpy().astype(str).tolist(),
                "scores": out["scores"][i, :n].numpy().tolist(),
                "n_unknown": int(out["n_unknown"][i]),
            }
            verdict = compare(expected, got)
            identical += verdict is None
            ties += verdict == "tie"
            if verdict not in (None, "tie"):
                different.append(f"playlist {start + i} (rows {playlist}): {verdict}")
    if different:
        raise RuntimeError(
            f"{saved_model_dir}: the SavedModel disagrees with ml.knn on {len(different)}/{n_playlists} "
            f"playlists, e.g. {different[0]}"
        )
    return identical, ties
