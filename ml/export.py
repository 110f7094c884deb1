"""`ml export`: models/latest -> a TensorFlow SavedModel answering KNN queries, and model.tar.gz.

The SavedModel is a `tf.Module` (no Keras layer adds anything to a matrix product and a top-k):
- `embeddings_t`: the L2-normalized float32 matrix, transposed to [dim, n_tracks], one variable,
  stored once (a [1, dim] x [dim, n] product runs ~3x faster on CPU than one with transpose_b);
- `assets/track_ids.txt`: the vocabulary, one id per line (line number = row), read by two
  `StaticHashTable`s (id -> row, row -> id);
- `popular_ids` + `assets/popular_ids.txt`: the N_POPULAR most popular track ids, for playlists with
  no known track (a hash table finds the playlist's own tracks among them in O(tracks)).

`serving_default(tracks: string[batch, width], k: int32[batch])` scores with the rule of
`ml.knn.top_k`: mean of the known seeds' normalized vectors, cosine against every track, seeds
excluded, ties to the lower row (`tf.math.top_k` keeps the lower index first on equal values).

`model.tar.gz` has the TensorFlow Serving layout the SageMaker TensorFlow inference container
expects: `1/saved_model.pb`, `1/variables/`, `1/assets/`, and `code/inference.py` (the JSON
contract, `ml/endpoint_contract.py`).
"""

from __future__ import annotations

import functools
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
    track_ids, normed = run.load_normalized_vectors()
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

    module = PlaylistKnn(normed, str(vocab_path), popular, str(popular_path))
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

    n_identical, n_ties = _selfcheck(export_dir / MODEL_VERSION, track_ids, normed, selfcheck_playlists)
    return ExportResult(
        run_dir=run_dir,
        saved_model_dir=export_dir / MODEL_VERSION,
        tarball=tarball,
        n_tracks=len(track_ids),
        dim=int(normed.shape[1]),
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
    saved_model_dir: Path, track_ids: list[str], normed: np.ndarray, n_playlists: int, chunk: int = 20
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
        reference = top_k(normed, rows, k=11, batch_size=chunk)
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


@functools.cache
def _make_module_class():
    import tensorflow as tf

    class _PlaylistKnn(tf.Module):
        def __init__(
            self, normed: np.ndarray, vocab_path: str, popular_ids: list[str], popular_path: str
        ) -> None:
            super().__init__(name="playlist_knn")
            self.embeddings_t = tf.Variable(
                np.ascontiguousarray(normed.T), trainable=False, name="embeddings_t", dtype=tf.float32
            )
            whole_line, line_number = tf.lookup.TextFileIndex.WHOLE_LINE, tf.lookup.TextFileIndex.LINE_NUMBER
            self.row_of_id = tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(vocab_path, tf.string, whole_line, tf.int64, line_number),
                default_value=tf.constant(-1, tf.int64),
            )
            self.id_of_row = tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(vocab_path, tf.int64, line_number, tf.string, whole_line),
                default_value=tf.constant(endpoint_contract.PAD),
            )
            self.popular_ids = tf.Variable(popular_ids, trainable=False, name="popular_ids", dtype=tf.string)
            self.popular_rank = tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(popular_path, tf.string, whole_line, tf.int64, line_number),
                default_value=tf.constant(-1, tf.int64),
            )

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None], tf.string, name="tracks"),
                tf.TensorSpec([None], tf.int32, name="k"),
            ]
        )
        def serve(self, tracks, k):
            return self._serve(tracks, k)

        def _serve(self, tracks, k):
            embeddings_t = self.embeddings_t  # [dim, n_items]
            n_items = tf.shape(embeddings_t)[1]
            batch = tf.shape(tracks)[0]
            present = tf.not_equal(tracks, endpoint_contract.PAD)
            rows = self.row_of_id.lookup(tracks)  # -1 for unknown ids and padding
            n_unknown = tf.reduce_sum(tf.cast(present & (rows < 0), tf.int32), axis=1)

            # A playlist is a set: drop repeated rows (sorted, so repeats are neighbours).
            rows = tf.sort(rows, axis=1)
            repeat = tf.concat([tf.zeros([batch, 1], tf.bool), tf.equal(rows[:, 1:], rows[:, :-1])], axis=1)
            seed = (rows >= 0) & ~repeat
            n_known = tf.reduce_sum(tf.cast(seed, tf.int32), axis=1)

            # Query: mean of the seeds' normalized vectors (zero for an empty playlist).
            seed_rows = tf.where(seed, rows, tf.zeros_like(rows))
            seed_vectors = tf.transpose(tf.gather(embeddings_t, seed_rows, axis=1), [1, 2, 0])
            summed = tf.reduce_sum(seed_vectors * tf.cast(seed, tf.float32)[:, :, None], axis=1)
            query = summed / tf.cast(tf.maximum(n_known, 1), tf.float32)[:, None]
            scores = tf.matmul(query, embeddings_t)  # [batch, n_items]

            seed_at = tf.where(seed)  # [n_seeds, 2] (playlist, position)
            scores = tf.tensor_scatter_nd_update(
                scores,
                tf.stack([seed_at[:, 0], tf.gather_nd(rows, seed_at)], axis=1),
                tf.fill([tf.shape(seed_at)[0]], tf.constant(-np.inf, tf.float32)),
            )
            k = tf.clip_by_value(k, 0, n_items)
            k_max = tf.minimum(tf.reduce_max(tf.concat([k, [0]], axis=0)), n_items)
            top = tf.math.top_k(scores, k=k_max, sorted=True)
            knn_ids = self.id_of_row.lookup(tf.cast(top.indices, tf.int64))
            knn_n = tf.minimum(k, n_items - n_known)

            fallback = tf.equal(n_known, 0)
            pop_ids, pop_n = tf.cond(
                tf.reduce_any(fallback),
                lambda: self._popular(tracks, k, k_max),
                lambda: (tf.fill([batch, k_max], endpoint_contract.PAD), tf.zeros([batch], tf.int32)),
            )
            return {
                "track_ids": tf.where(fallback[:, None], pop_ids, knn_ids),
                "scores": tf.where(fallback[:, None], tf.zeros_like(top.values), top.values),
                "n_results": tf.where(fallback, pop_n, knn_n),
                "n_unknown": n_unknown,
                "fallback": fallback,
            }

        def _popular(self, tracks, k, k_max):
            """Most popular tracks not in the playlist, padded to k_max."""
            popular = self.popular_ids
            n_popular = tf.shape(popular)[0]
            ranks = self.popular_rank.lookup(tracks)  # [batch, width]: rank among popular, or -1
            hit = tf.where(ranks >= 0)
            in_playlist = (
                tf.scatter_nd(
                    tf.stack([hit[:, 0], tf.gather_nd(ranks, hit)], axis=1),
                    tf.ones([tf.shape(hit)[0]], tf.int32),
                    tf.cast(tf.stack([tf.shape(tracks)[0], n_popular]), tf.int64),
                )
                > 0
            )
            # Rank by popularity order; tracks of the playlist sink to the bottom.
            rank = tf.where(
                in_playlist,
                tf.constant(-np.inf, tf.float32),
                -tf.cast(tf.range(n_popular), tf.float32)[None, :],
            )
            take = tf.minimum(k_max, n_popular)
            picked = tf.math.top_k(rank, k=take).indices
            ids = tf.gather(popular, picked)
            ids = tf.pad(ids, [[0, 0], [0, k_max - take]], constant_values=endpoint_contract.PAD)
            available = n_popular - tf.reduce_sum(tf.cast(in_playlist, tf.int32), axis=1)
            return ids, tf.minimum(tf.minimum(k, available), take)

    return _PlaylistKnn


def PlaylistKnn(normed: np.ndarray, vocab_path: str, popular_ids: list[str], popular_path: str):
    """The KNN tf.Module (a factory, so importing ml.export does not import TensorFlow)."""
    return _make_module_class()(normed, vocab_path, popular_ids, popular_path)
