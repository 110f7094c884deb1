"""A seeded stand-in for a trained run (`vectors.kv`, `popularity.parquet`) in the documented layout.

Test support (not part of the package): the export/serve/deploy tests (which must not wait for
training) and the serving
benchmark when no full-preset model is at hand. Vectors are clustered so neighbours mean
something, a few pairs are exact duplicates (equal scores: the tie order is tested), and the
popularity list holds a few ids the vectors lack (as `min_count` does in training).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.endpoint_contract import track_id_of
from ml.run_dir import RunDir


@dataclass(frozen=True)
class SyntheticModel:
    run_dir: Path
    track_ids: list[str]
    duplicate_pairs: list[tuple[int, int]]  # (row, later row with the same vector)
    popular_not_in_vocab: list[str]


def synthetic_name(i: int, salt: str = "track") -> tuple[str, str]:
    """(artist, title) of synthetic track i; every 50th has an empty artist name, as real data does."""
    if salt != "track":
        return f"{salt.title()} Artist", f"{salt.title()} Song {i}"
    return ("" if i % 50 == 0 else f"Artist {i % 97}"), f"Song {i}"


def synthetic_track_id(i: int, salt: str = "track") -> str:
    """The warehouse's id of synthetic track i: dbt's identity rule over its name."""
    return track_id_of(*synthetic_name(i, salt))


def write_synthetic_model(
    run_dir: Path,
    n_tracks: int = 3000,
    dim: int = 32,
    n_clusters: int = 40,
    n_duplicate_pairs: int = 5,
    seed: int = 0,
) -> SyntheticModel:
    """Write vectors.kv, popularity.parquet and track_names.parquet under run_dir (created)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    centres = rng.normal(size=(n_clusters, dim)).astype(np.float32)
    cluster = rng.integers(0, n_clusters, size=n_tracks)
    vectors = np.empty((n_tracks, dim), dtype=np.float32)
    chunk = 1 << 18  # bounded memory for a million tracks
    for start in range(0, n_tracks, chunk):
        stop = min(start + chunk, n_tracks)
        noise = rng.normal(scale=0.6, size=(stop - start, dim)).astype(np.float32)
        vectors[start:stop] = centres[cluster[start:stop]] + noise
    pairs: list[tuple[int, int]] = []
    if n_duplicate_pairs:
        firsts = rng.choice(n_tracks // 2, size=n_duplicate_pairs, replace=False)
        for first in firsts:
            second = int(first) + n_tracks // 2
            vectors[second] = vectors[first]
            pairs.append((int(first), second))

    track_ids = [synthetic_track_id(i) for i in range(n_tracks)]
    kv = KeyedVectors(vector_size=dim, dtype=np.float32)
    kv.add_vectors(track_ids, vectors)
    kv.save(str(RunDir(run_dir).vectors))

    # Popularity over the "train split": every vocabulary track plus a few below min_count.
    missing = [synthetic_track_id(i, salt="rare") for i in range(3)]
    counts = np.sort(rng.zipf(1.6, size=n_tracks + len(missing)).astype(np.int64))[::-1]
    order = [track_ids[i] for i in rng.permutation(n_tracks)]
    order[2:2] = missing[:1]  # one of the top 3 is not in the vocabulary
    order.extend(missing[1:])
    table = pa.table({"track_id": order, "count": counts[: len(order)]})
    pq.write_table(table, RunDir(run_dir).popularity)
    # Names, as the warehouse would give them (`track_names.parquet`, read by `ml export`).
    named = [synthetic_name(i) for i in range(n_tracks)] + [synthetic_name(i, "rare") for i in range(3)]
    names = pa.table(
        {
            "track_id": [*track_ids, *missing],
            "artist_name": [a for a, _ in named],
            "track_name": [t for _, t in named],
        }
    )
    pq.write_table(names, RunDir(run_dir).track_names)
    return SyntheticModel(
        run_dir=run_dir, track_ids=track_ids, duplicate_pairs=pairs, popular_not_in_vocab=missing
    )
