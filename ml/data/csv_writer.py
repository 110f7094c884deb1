"""The raw-format CSV writer: lines assembled by Arrow from per-playlist and per-track pieces, written
in chunks (with a progress bar on a terminal only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from ml.config import RAW_HEADER

WRITE_CHUNK_ROWS = 500_000


def write_csv(
    path: Path,
    pl_rank_of_row: np.ndarray,
    track_of_row: np.ndarray,
    prefix: pa.Array,
    suffix: pa.Array,
    pieces: pa.Array,
) -> int:
    """Stream `prefix[pl] + piece[track] + suffix[pl]` lines into `path` in chunks; returns bytes."""
    n = len(track_of_row)
    written = 0
    with open(path, "wb") as f, tqdm(total=n, unit="row", unit_scale=True, desc="write", disable=None) as bar:
        f.write((RAW_HEADER + "\n").encode())
        for lo in range(0, n, WRITE_CHUNK_ROWS):
            hi = min(n, lo + WRITE_CHUNK_ROWS)
            pl = pa.array(pl_rank_of_row[lo:hi])
            lines = pc.binary_join_element_wise(
                prefix.take(pl), pieces.take(pa.array(track_of_row[lo:hi])), suffix.take(pl), ""
            )
            offsets = np.frombuffer(
                lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4
            )
            data = lines.buffers()[2]
            f.write(memoryview(data)[offsets[0] : offsets[-1]])
            written += int(offsets[-1] - offsets[0])
            bar.update(hi - lo)
    return written
