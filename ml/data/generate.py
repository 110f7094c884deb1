"""A realistic stand-in for the Kaggle `spotify_dataset.csv`, in exactly its raw format.

The model behind the file
-------------------------
Calibrated so the full preset is about as hard to learn as the real file (docs/generator.md,
`python -m bench realism`), not only as large.

* Taste communities (a few dozen genres/scenes). Every artist belongs to one; artist popularity is
  a flat Zipf inside its community, and so is track popularity inside an artist, over the known
  first share of its catalogue only (KNOWN_TRACK_SHARE): no hit dominates, as in the real file.
* Users hold a mixture of 1-3 communities. Each playlist has a primary community drawn from its
  owner's mixture; its tracks come in runs of one artist (short album-like runs, sometimes a whole
  album of consecutive tracks). Only part of a playlist's runs comes from its primary community (a
  share growing with the owner's activity: users with a few playlists have a weak taste structure);
  the others from the owner's other tastes or from anywhere (popular tracks cross communities); a
  tenth of runs are by one of the owner's dozen favourite artists, in any of their playlists.
* A fifth of all runs are deep cuts drawn without popularity from the whole catalogue: the one-off,
  near-singleton tracks that no ranker can predict.
* Playlists per user and playlist sizes are heavy-tailed (lognormal: median about 17 tracks, rare
  playlists of thousands; the full preset always has one of 42-48k). Every user with a library
  has the auto playlists `Starred` and often `Liked from Radio`, which mix all of the owner's tastes.
* Playlist names come from the community's taste words, from a focus artist (`Artist – Album`) or
  from a pool of generic names; track titles come from per-script word pools, and some titles
  (`Intro`, `Outro`, ...) are shared by many artists.
* Big playlists are filled with distinct tracks: repeats are redrawn, later rounds from the deep
  catalogue (uniform inside the community), so a 10,000-track library is not all hits.

The raw format and its quirks (rates are the named constants of presets.py)
-------------------------------------------------------------------
Header `"user_id", "artistname", "trackname", "playlistname"` (a space after each comma), data lines
`"u","a","t","p"` with every field double-quoted and inner quotes escaped as `\\"`. A small share of
lines carry unescaped inner quotes (most still split on `","`, a few contain `","` inside a name);
empty artist names (per track, about 0.26% of rows); a few empty track and playlist names; names
with leading/trailing spaces; literal names `NA`, `null`, `None`, `NaN`; commas inside names;
unicode (accents, Hangul, Japanese, Chinese, Arabic, Hebrew, Devanagari, emoji); duplicate rows;
rows of a user contiguous, rows of a playlist contiguous and sorted by track title (code-point order
of the written title, then artist). user_id is 32 lowercase hex chars. Lines end with `\\n`.

The sidecar `<out stem>.tracks.parquet`
---------------------------------------
Written beside the CSV (`sidecar_path(out)`): one row per generated track with columns
`artistname`, `trackname` (the catalogue names, before any quirk: no added spaces, no blanked artist,
quotes as plain characters), `community` (int16 latent taste id), `community_name` and `n_rows`
(rows of the track in the file). The pipeline never reads it; the model card uses it to colour
embeddings. Join it to the marts on trimmed, lower-cased names: the file's written names equal the
sidecar's up to added leading/trailing spaces, except where the artist or title was blanked.

Reading it back
---------------
`DUCKDB_RAW_READ_OPTIONS` reads the real file and these files the same way: every data line is
loaded or rejected (unescaped quotes) into `reject_errors`; keep DuckDB's strict mode on.

Deterministic: the same preset, rows and seed give a byte-identical file (one seeded numpy
Generator per stage; no time, no hash order).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from ml.data import names as nm
from ml.data.csv_writer import write_csv
from ml.data.naming import Vocab, escape, playlist_names, track_vocab
from ml.data.playlist_rows import fill_playlists
from ml.data.population import Catalogue, Playlists, build_catalogue, build_playlists, user_tastes
from ml.data.presets import DUPLICATE_ROW_SHARE, PRESETS, Preset
from ml.data.sampling import sorted_unique

__all__ = ["DUCKDB_RAW_READ_OPTIONS", "PRESETS", "GenerateResult", "Preset", "generate", "sidecar_path"]

# DuckDB `read_csv` options that read the real format (and this generator's files) losslessly: every
# data line is loaded or lands in `reject_errors` (count distinct `line`; the header is line 1).
# Keep strict_mode on: off, a line with unescaped quotes silently swallows the lines after it.
# `""` is read as NULL (allow_quoted_nulls), so coalesce empty names back to ''.
# parallel=false: DuckDB's parallel reader lost a block of ~95k lines of the full preset (seed 42,
# after the issue-11 re-tune) at a buffer boundary, while the single-threaded reader accounts for
# every line (and was no slower on that file).
DUCKDB_RAW_READ_OPTIONS = (
    "header=true, auto_detect=false, delim=',', quote='\"', escape='\\', all_varchar=true, "
    "strict_mode=true, store_rejects=true, parallel=false, "
    "columns={'user_id': 'varchar', 'artistname': 'varchar', 'trackname': 'varchar', 'playlistname': 'varchar'}"
)


@dataclass(frozen=True)
class GenerateResult:
    path: Path
    sidecar: Path
    preset: str
    seed: int
    rows: int
    users: int
    playlists: int
    tracks: int
    artists: int
    seconds: float

    def summary(self) -> str:
        return (
            f"wrote {self.path}: {self.rows:,} rows, {self.users:,} users, {self.playlists:,} playlists, "
            f"{self.tracks:,} tracks, {self.artists:,} artists in {self.seconds:.1f}s "
            f"(preset {self.preset}, seed {self.seed}; track tastes in {self.sidecar.name})"
        )


def sidecar_path(out: Path) -> Path:
    """The track-taste sidecar beside a generated CSV: `<stem>.tracks.parquet`."""
    out = Path(out)
    return out.with_name(out.stem + ".tracks.parquet")


@dataclass(frozen=True)
class _Order:
    """The file order: playlists by (user_id, name), a playlist's tracks by (written title, artist)."""

    user_hex: list[str]
    pl_names: list[str]
    pl_order: np.ndarray  # playlist index at each file rank
    pl_rank: np.ndarray  # file rank of each playlist
    title_order: np.ndarray  # used-track index at each title rank
    title_rank: np.ndarray  # title rank of each used track


def _ranks(order: np.ndarray) -> np.ndarray:
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def _order(
    rngs: list[np.random.Generator],
    spec: Preset,
    cat: Catalogue,
    pls: Playlists,
    used: np.ndarray,
    vocab: Vocab,
) -> _Order:
    """Playlist names, user ids and the sort orders of playlists and tracks (`rngs`: names, user ids)."""
    title_order = np.asarray(
        pc.sort_indices(
            pa.table({"t": vocab.sort_title, "a": vocab.sort_artist, "i": np.arange(len(used))}),
            sort_keys=[("t", "ascending"), ("a", "ascending"), ("i", "ascending")],
        )
    )
    a_first = {}
    used_artists_cat = cat.track_artist[used]
    for i in range(len(used)):
        a_first.setdefault(int(used_artists_cat[i]), vocab.artist_clean[i])
    pl_names = playlist_names(rngs[0], pls, a_first)
    raw = rngs[1].integers(0, 256, size=(spec.users, 16), dtype=np.uint8)
    user_hex = [bytes(row).hex() for row in raw]
    if len(set(user_hex)) != len(user_hex):
        raise RuntimeError("user_id collision; choose another seed")
    pl_order = np.asarray(
        pc.sort_indices(
            pa.table({"u": [user_hex[o] for o in pls.owner], "n": pl_names, "i": np.arange(len(pl_names))}),
            sort_keys=[("u", "ascending"), ("n", "ascending"), ("i", "ascending")],
        )
    )
    return _Order(user_hex, pl_names, pl_order, _ranks(pl_order), title_order, _ranks(title_order))


def _file_keys(pair_keys: np.ndarray, n_cat: int, used: np.ndarray, order: _Order) -> np.ndarray:
    """`playlist rank * n_used + title rank` of each (playlist, track) pair, sorted: the file order."""
    used_index = np.full(n_cat, -1, dtype=np.int64)
    used_index[used] = np.arange(len(used))
    return np.sort(
        order.pl_rank[pair_keys // n_cat] * len(used) + order.title_rank[used_index[pair_keys % n_cat]]
    )


def _file_rows(
    rng: np.random.Generator, keys: np.ndarray, n_used: int, order: _Order
) -> tuple[np.ndarray, np.ndarray]:
    """Each line's playlist rank and used track, after duplicating a share of the rows."""
    dup = rng.random(len(keys)) < DUPLICATE_ROW_SHARE
    keys = np.repeat(keys, 1 + dup.astype(np.int64))
    pl_of_row = (keys // n_used).astype(np.int32)
    track_of_row = order.title_order[keys % n_used].astype(np.int32)
    return pl_of_row, track_of_row


def _write_file(
    out: Path, pls: Playlists, order: _Order, vocab: Vocab, pl_of_row: np.ndarray, track_of_row: np.ndarray
) -> None:
    """Write the CSV via a temp file beside `out` and an atomic rename."""
    prefix = pa.array([f'"{order.user_hex[pls.owner[i]]}",' for i in order.pl_order])
    suffix = pa.array([f',"{escape(order.pl_names[i])}"\n' for i in order.pl_order])
    pieces = pa.array(vocab.track_piece)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        write_csv(tmp, pl_of_row, track_of_row, prefix, suffix, pieces)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_sidecar(
    out: Path, cat: Catalogue, used: np.ndarray, vocab: Vocab, final_counts: np.ndarray
) -> Path:
    comm_of_used = cat.artist_comm[cat.track_artist[used]]
    side = pa.table(
        {
            "artistname": vocab.artist_clean,
            "trackname": vocab.title_clean,
            "community": comm_of_used.astype(np.int16),
            "community_name": [nm.COMMUNITIES[c].name for c in comm_of_used],
            "n_rows": final_counts.astype(np.int64),
        }
    ).filter(pa.array(final_counts > 0))
    sc = sidecar_path(out)
    pq.write_table(side, sc)
    return sc


def _spec(preset: str, rows: int | None, out: Path | str) -> Preset:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if not out:
        raise ValueError("out is required")
    spec = PRESETS[preset].scaled(rows)
    if spec.communities > len(nm.COMMUNITIES):
        raise ValueError(f"at most {len(nm.COMMUNITIES)} communities")
    return spec


def generate(
    preset: str = "small", rows: int | None = None, seed: int = 42, out: Path | str = ""
) -> GenerateResult:
    """Generate a raw-format playlists CSV at `out` (via a temp file and rename) and its sidecar."""
    spec = _spec(preset, rows, out)
    out = Path(out)
    t0 = time.perf_counter()
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, spec.rows]).spawn(8)]
    stages = tqdm(total=6, desc=f"generate {preset}", unit="stage", disable=None)

    cat = build_catalogue(streams[0], spec)
    comms, cum = user_tastes(streams[1], spec, cat.community_weight)
    pls = build_playlists(streams[2], spec, cat, comms, cum)
    n_cat = len(cat.track_artist)
    pair_keys = fill_playlists(streams[3], cat, pls, comms, cum)
    stages.update()

    counts = np.bincount(pair_keys % n_cat, minlength=n_cat)
    used = np.flatnonzero(counts)
    vocab = track_vocab(streams[4], cat, used, counts, len(pair_keys))
    stages.update()

    order = _order(streams[5:7], spec, cat, pls, used, vocab)
    stages.update()

    # One sort gives the file order: user, playlist, title.
    keys = _file_keys(pair_keys, n_cat, used, order)
    del pair_keys
    pl_of_row, track_of_row = _file_rows(streams[7], keys, len(used), order)
    del keys
    stages.update()

    _write_file(out, pls, order, vocab, pl_of_row, track_of_row)
    stages.update()

    final_counts = np.bincount(track_of_row, minlength=len(used))
    sc = _write_sidecar(out, cat, used, vocab, final_counts)
    stages.update()
    stages.close()

    pl_present = np.flatnonzero(np.bincount(pl_of_row, minlength=len(order.pl_order)))
    return GenerateResult(
        path=out,
        sidecar=sc,
        preset=preset,
        seed=seed,
        rows=len(track_of_row),
        users=int(sorted_unique(pls.owner[order.pl_order[pl_present]]).size),
        playlists=len(pl_present),
        tracks=int((final_counts > 0).sum()),
        artists=int(sorted_unique(cat.track_artist[used][final_counts > 0]).size),
        seconds=time.perf_counter() - t0,
    )
