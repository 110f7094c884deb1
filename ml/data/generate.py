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

The raw format and its quirks (rates are the named constants below)
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
from scipy.special import ndtri
from tqdm import tqdm

from ml.config import AUTO_PLAYLIST_NAMES, RAW_HEADER
from ml.data import names as nm

# --- presets ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """Target scale. `catalogue_tracks` is the catalogue drawn from; fewer distinct tracks appear."""

    rows: int
    users: int
    playlists: int
    artists: int
    catalogue_tracks: int
    communities: int

    def scaled(self, rows: int | None) -> Preset:
        """Scale users, playlists and the catalogue linearly to `rows` (a preset's density)."""
        if rows is None or rows == self.rows:
            return self
        if rows < 100:
            raise ValueError(f"rows must be at least 100, got {rows}")
        f = rows / self.rows
        return Preset(
            rows=rows,
            users=max(3, round(self.users * f)),
            playlists=max(6, round(self.playlists * f)),
            artists=max(50, round(self.artists * f)),
            catalogue_tracks=max(300, round(self.catalogue_tracks * f)),
            communities=self.communities,
        )


PRESETS: dict[str, Preset] = {
    "tiny": Preset(rows=5_000, users=10, playlists=90, artists=350, catalogue_tracks=2_500, communities=8),
    "small": Preset(
        rows=300_000, users=370, playlists=5_400, artists=9_000, catalogue_tracks=75_000, communities=24
    ),
    "full": Preset(
        rows=12_900_000,
        users=15_900,
        playlists=230_000,
        artists=300_000,
        catalogue_tracks=5_000_000,
        communities=40,
    ),
}

# --- structure -------------------------------------------------------------------------------------

COMMUNITY_ZIPF = 0.4  # how unequal the communities' overall popularity is
NON_ENGLISH_WEIGHT = 0.2  # relative popularity of communities writing in other scripts/languages
ARTIST_ZIPF = 0.55  # artist popularity inside a community
TRACK_ZIPF = 0.8  # track popularity inside an artist
KNOWN_TRACK_SHARE = 0.15  # the first share of an artist's catalogue that popularity draws reach
ARTIST_TRACKS_SIGMA = 1.1  # lognormal spread of catalogue size per artist
USER_TASTE_SIZES = (1, 2, 3)
USER_TASTE_SIZE_P = (0.45, 0.35, 0.20)
USER_ACTIVITY_SIGMA = 1.3  # lognormal spread of playlists per user
PLAYLIST_SIZE_MEDIAN = 17
PLAYLIST_SIZE_SIGMA = 1.55  # lognormal: mean about 3x the median, rare playlists of thousands
MAX_PLAYLIST_ROW_SHARE = 0.1  # the largest playlist's share of all rows, at most
FULL_SCALE_MAX_PLAYLIST = 42_000  # at >= 5M rows the largest playlist is at least this (pre-dedupe)
FULL_SCALE_MAX_PLAYLIST_SPREAD = 6_000  # ... plus a uniform draw below this
STARRED_SHARE = 0.7  # users with a `Starred` playlist
RADIO_SHARE = 0.3  # users with a `Liked from Radio` playlist
STARRED_SIZE_FACTOR = 2.4
RADIO_SIZE_FACTOR = 1.5
ARTIST_PLAYLIST_SHARE = 0.18  # small playlists named after, and focused on, one artist
ARTIST_PLAYLIST_MAX_SIZE = 40
ARTIST_PLAYLIST_FOCUS = 0.7  # share of runs of such a playlist by its focus artist
TASTE_PLAYLIST_SHARE = 0.5  # of the remaining non-auto playlists: named from taste words
# Runs of a normal playlist from its primary community: the share grows with its owner's activity
# (users with a few playlists have a weak taste structure), from MIN (one playlist) to MAX (at and
# above COHERENT_USER_PLAYLISTS playlists, log scale). Of the other runs OWNER_MIX_SHARE come from
# the owner's other tastes, the rest from anywhere (by overall popularity: hits cross communities).
PRIMARY_COMMUNITY_SHARE_MIN = 0.2
PRIMARY_COMMUNITY_SHARE_MAX = 0.6
COHERENT_USER_PLAYLISTS = 50
OWNER_MIX_SHARE = 0.5
DEEP_RUN_SHARE = 0.2  # runs of any playlist drawn without popularity (one-off, near-singleton tracks)
AUTO_GLOBAL_SHARE = 0.1  # runs of an auto playlist from anywhere (radio discoveries)
USER_FAVOURITES = 12  # artists a user keeps coming back to, in any of their playlists
USER_FAVOURITE_SHARE = 0.1  # share of runs by one of the owner's favourite artists
RUN_MEAN = 1.5  # mean length of a run of one artist
ALBUM_RUN_SHARE = 0.04  # runs that are a stretch of an album: 6-14 consecutive tracks
MAX_TOPUPS = 6  # rounds of redrawing tracks that repeated inside a playlist
FLAT_FROM_TOPUP = 2  # from this round on, top-ups ignore popularity (deep cuts)
TOPUP_TOLERANCE = 0.003  # stop when this share of rows is still missing

# --- quirks (shares of rows unless named otherwise) -----------------------------------------------

EMPTY_ARTIST_ROW_SHARE = 0.0026
UNESCAPED_QUOTE_ROW_SHARE = 0.0007
UNSPLITTABLE_SHARE_OF_UNESCAPED = 0.1  # of those tracks: a name containing `","` itself
EMPTY_TRACK_ROW_SHARE = 0.0001
EMPTY_PLAYLIST_SHARE = 0.0005  # of playlists (at least one)
ESCAPED_QUOTE_TRACK_SHARE = 0.003  # of tracks: a title with quotes, escaped correctly
QUOTED_ARTIST_SHARE = 0.001  # of artists: a nickname in quotes, escaped correctly
LITERAL_NAMES = ("NA", "null", "None", "NaN")
LITERAL_TRACKS_PER_100K_ROWS = 2.0  # tracks titled with each literal name (at least one each)
ARTIST_TRAILING_SPACE_SHARE = 0.0015  # of artists
ARTIST_LEADING_SPACE_SHARE = 0.0005
TITLE_TRAILING_SPACE_SHARE = 0.002  # of tracks
TITLE_LEADING_SPACE_SHARE = 0.0005
PLAYLIST_TRAILING_SPACE_SHARE = 0.015  # of playlists
PLAYLIST_LEADING_SPACE_SHARE = 0.002
DUPLICATE_ROW_SHARE = 0.007
QUIRK_CANDIDATE_MAX_ROWS = 20  # calibrated per-track quirks go to tracks with at most this many rows

WRITE_CHUNK_ROWS = 500_000

# DuckDB `read_csv` options that read the real format (and this generator's files) losslessly: every
# data line is loaded or lands in `reject_errors` (count distinct `line`; the header is line 1).
# Keep strict_mode on: off, a line with unescaped quotes silently swallows the lines after it.
# `""` is read as NULL (allow_quoted_nulls), so coalesce empty names back to ''.
DUCKDB_RAW_READ_OPTIONS = (
    "header=true, auto_detect=false, delim=',', quote='\"', escape='\\', all_varchar=true, "
    "strict_mode=true, store_rejects=true, "
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


# --- sampling helpers ------------------------------------------------------------------------------


def _grouped_cdf(group: np.ndarray, weights: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-element `group + within-group CDF` for sorted `group`: one searchsorted samples any group.

    Draw from group g with `searchsorted(cdf, g + u, side='right')`, u uniform in [0, 1).
    """
    starts = np.searchsorted(group, np.arange(n_groups + 1))
    cs = np.cumsum(weights, dtype=np.float64)
    base = np.concatenate(([0.0], cs))[starts[:-1]]
    end = cs[starts[1:] - 1]
    within = (cs - np.repeat(base, np.diff(starts))) / np.repeat(end - base, np.diff(starts))
    within[starts[1:] - 1] = 1.0
    return group.astype(np.float64) + within


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy 2's hash-based unique is several times slower on large int arrays)."""
    x = np.sort(x)
    if len(x) == 0:
        return x
    keep = np.empty(len(x), dtype=bool)
    keep[0] = True
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]


def _without(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elements of `a` not in `b` (both small-int index arrays), order of `a` kept."""
    mask = np.ones(int(max(a.max(initial=0), b.max(initial=0))) + 1, dtype=bool)
    mask[b] = False
    return a[mask[a]]


def _draw_in_group(
    rng: np.random.Generator, cdf: np.ndarray, groups: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    idx = np.searchsorted(cdf, groups + rng.random(len(groups)), side="right")
    return np.minimum(idx, starts[groups + 1] - 1)


def _zipf_weights(group: np.ndarray, starts: np.ndarray, exponent: float) -> np.ndarray:
    rank = np.arange(len(group)) - starts[group]
    return (rank + 1.0) ** -exponent


def _pick_by_rows(
    rng: np.random.Generator, counts: np.ndarray, candidates: np.ndarray, target_rows: float
) -> np.ndarray:
    """Random candidates, in random order, until their rows reach `target_rows` (at least one)."""
    if len(candidates) == 0 or target_rows <= 0:
        return candidates[:0]
    order = candidates[rng.permutation(len(candidates))]
    cum = np.cumsum(counts[order])
    n = int(np.searchsorted(cum, target_rows)) + 1
    return order[: min(n, len(order))]


@dataclass
class _Catalogue:
    community_weight: np.ndarray
    artist_comm: np.ndarray
    artist_starts: np.ndarray  # first artist of each community, plus the end
    artist_cdf: np.ndarray
    track_artist: np.ndarray
    track_starts: np.ndarray  # first track of each artist, plus the end
    track_cdf: np.ndarray


def _catalogue(rng: np.random.Generator, spec: Preset) -> _Catalogue:
    k, a = spec.communities, spec.artists
    cw = rng.permutation((np.arange(k) + 1.0) ** -COMMUNITY_ZIPF)
    # Non-English scenes are smaller, so about one line in seven carries non-ASCII text, as in the real file.
    cw *= np.where([nm.COMMUNITIES[c].script == "en" for c in range(k)], 1.0, NON_ENGLISH_WEIGHT)
    cw /= cw.sum()
    artist_comm = np.sort(np.concatenate([np.arange(k), rng.choice(k, size=a - k, p=cw)])).astype(np.int32)
    artist_starts = np.searchsorted(artist_comm, np.arange(k + 1))
    artist_cdf = _grouped_cdf(artist_comm, _zipf_weights(artist_comm, artist_starts, ARTIST_ZIPF), k)
    # Popular artists have larger catalogues.
    rank = np.arange(a) - artist_starts[artist_comm]
    raw = rng.lognormal(0.0, ARTIST_TRACKS_SIGMA, a) * (rank + 1.0) ** -0.3
    n_tracks = np.maximum(1, np.round(raw * (spec.catalogue_tracks / raw.sum()))).astype(np.int64)
    track_starts = np.concatenate(([0], np.cumsum(n_tracks)))
    track_artist = np.repeat(np.arange(a, dtype=np.int32), n_tracks)
    # Popularity draws reach only the known part of a catalogue; deep runs reach all of it.
    t_rank = np.arange(len(track_artist)) - track_starts[track_artist]
    known = t_rank < np.maximum(1, np.ceil(KNOWN_TRACK_SHARE * n_tracks))[track_artist]
    track_cdf = _grouped_cdf(track_artist, _zipf_weights(track_artist, track_starts, TRACK_ZIPF) * known, a)
    return _Catalogue(cw, artist_comm, artist_starts, artist_cdf, track_artist, track_starts, track_cdf)


@dataclass
class _Playlists:
    owner: np.ndarray
    kind: np.ndarray  # 0 normal-taste, 1 normal-generic, 2 artist-focused, 3 Starred, 4 Liked from Radio
    primary: np.ndarray
    focus_artist: np.ndarray
    size: np.ndarray
    favourites: np.ndarray  # (users, USER_FAVOURITES) artists each user returns to across playlists
    coherence: np.ndarray  # share of a normal playlist's runs from its primary community


KIND_TASTE, KIND_GENERIC, KIND_ARTIST, KIND_STARRED, KIND_RADIO = range(5)


def _users(rng: np.random.Generator, spec: Preset, cw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each user's communities (u, 3) and cumulative mixture weights (u, 3)."""
    u, k = spec.users, spec.communities
    n_taste = rng.choice(USER_TASTE_SIZES, size=u, p=USER_TASTE_SIZE_P)
    # Gumbel top-k: communities without replacement, proportionally to their popularity.
    keys = np.log(cw)[None, :] + rng.gumbel(size=(u, k))
    comms = np.argsort(-keys, axis=1, kind="stable")[:, :3].astype(np.int32)
    w = np.sort(rng.dirichlet(np.ones(3), size=u), axis=1)[:, ::-1]
    w[np.arange(3)[None, :] >= n_taste[:, None]] = 0.0
    w /= w.sum(axis=1, keepdims=True)
    cum = np.cumsum(w, axis=1)
    cum[:, -1] = 1.0
    return comms, cum


def _from_mixture(
    rng: np.random.Generator, comms: np.ndarray, cum: np.ndarray, users: np.ndarray
) -> np.ndarray:
    r = rng.random(len(users))[:, None]
    slot = (r >= cum[users]).sum(axis=1)
    return comms[users, np.minimum(slot, 2)]


def _playlists(
    rng: np.random.Generator, spec: Preset, cat: _Catalogue, comms: np.ndarray, cum: np.ndarray
) -> _Playlists:
    u, p = spec.users, spec.playlists
    activity = rng.lognormal(0.0, USER_ACTIVITY_SIGMA, u)
    per_user = 1 + rng.multinomial(p - u, activity / activity.sum())
    owner = np.repeat(np.arange(u, dtype=np.int32), per_user)
    first = np.concatenate(([0], np.cumsum(per_user)[:-1]))
    kind = np.where(rng.random(p) < TASTE_PLAYLIST_SHARE, KIND_TASTE, KIND_GENERIC).astype(np.int8)
    # Stratified lognormal draws: the heavy tail without letting one draw swing a small file's total.
    q = rng.permutation((np.arange(p) + rng.random(p)) / p)
    size = PLAYLIST_SIZE_MEDIAN * np.exp(PLAYLIST_SIZE_SIGMA * ndtri(q))
    artist_pl = (rng.random(p) < ARTIST_PLAYLIST_SHARE) & (size <= ARTIST_PLAYLIST_MAX_SIZE)
    kind[artist_pl] = KIND_ARTIST
    starred = first[rng.random(u) < STARRED_SHARE]
    radio_users = np.flatnonzero((rng.random(u) < RADIO_SHARE) & (per_user >= 2))
    kind[starred] = KIND_STARRED
    kind[first[radio_users] + 1] = KIND_RADIO
    size[kind == KIND_STARRED] *= STARRED_SIZE_FACTOR
    size[kind == KIND_RADIO] *= RADIO_SIZE_FACTOR
    # Scale to the target rows; no playlist holds more than a small share of a (small) file.
    cap = max(50.0, MAX_PLAYLIST_ROW_SHARE * spec.rows)
    for _ in range(5):
        size = np.minimum(cap, size * (spec.rows / size.sum()))
    size = np.maximum(1, np.round(size)).astype(np.int64)
    if spec.rows >= 5_000_000 and size.max() < FULL_SCALE_MAX_PLAYLIST:
        size[int(np.argmax(size))] = FULL_SCALE_MAX_PLAYLIST + int(
            rng.integers(0, FULL_SCALE_MAX_PLAYLIST_SPREAD)
        )
    primary = _from_mixture(rng, comms, cum, owner)
    focus = _draw_in_group(rng, cat.artist_cdf, primary, cat.artist_starts).astype(np.int32)
    fav_users = np.repeat(np.arange(u), USER_FAVOURITES)
    fav_comm = _from_mixture(rng, comms, cum, fav_users)
    favourites = _draw_in_group(rng, cat.artist_cdf, fav_comm, cat.artist_starts).reshape(u, USER_FAVOURITES)
    grow = np.clip(np.log(per_user) / np.log(COHERENT_USER_PLAYLISTS), 0.0, 1.0)
    coherence = (
        PRIMARY_COMMUNITY_SHARE_MIN + (PRIMARY_COMMUNITY_SHARE_MAX - PRIMARY_COMMUNITY_SHARE_MIN) * grow
    )
    return _Playlists(owner, kind, primary, focus, size, favourites, coherence[owner])


def _draw_rows(
    rng: np.random.Generator,
    cat: _Catalogue,
    pls: _Playlists,
    comms: np.ndarray,
    cum: np.ndarray,
    size: np.ndarray,
    flat: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw `size[p]` rows (playlist, catalogue track) for each playlist p; repeats are possible.

    `flat` draws artists and tracks uniformly inside the community instead of by popularity: the
    deep cuts that fill a large library once its owner has every hit."""
    n = int(size.sum())
    pl_start = np.concatenate(([0], np.cumsum(size)))
    # Run lengths: geometric, with a share of album stretches; runs never cross playlists.
    lengths = []
    total = 0
    while total < n:
        m = max(1024, int((n - total) / RUN_MEAN * 1.1))
        ln = rng.geometric(1.0 / RUN_MEAN, m)
        album = rng.random(m) < ALBUM_RUN_SHARE
        ln[album] = rng.integers(6, 15, int(album.sum()))
        lengths.append(ln)
        total += int(ln.sum())
    run_ends = np.cumsum(np.concatenate(lengths))
    starts = np.zeros(n, dtype=bool)
    starts[run_ends[run_ends < n]] = True
    starts[pl_start[:-1][size > 0]] = True
    run_first = np.flatnonzero(starts)
    row_pl = np.repeat(np.arange(len(size), dtype=np.int32), size)
    run_pl = row_pl[run_first]
    r = len(run_first)
    kind = pls.kind[run_pl]
    auto = kind >= KIND_STARRED
    owner = pls.owner[run_pl]
    x = rng.random(r)
    coh = pls.coherence[run_pl]
    mixed = coh + (1.0 - coh) * OWNER_MIX_SHARE
    comm = pls.primary[run_pl].copy()
    from_owner = np.where(auto, x < 1 - AUTO_GLOBAL_SHARE, (x >= coh) & (x < mixed))
    comm[from_owner] = _from_mixture(rng, comms, cum, owner[from_owner])
    anywhere = np.where(auto, x >= 1 - AUTO_GLOBAL_SHARE, x >= mixed)
    comm[anywhere] = rng.choice(len(cat.community_weight), size=int(anywhere.sum()), p=cat.community_weight)
    # Deep runs ignore popularity: the one-off tracks every playlist holds a few of.
    deep = np.full(r, True) if flat else rng.random(r) < DEEP_RUN_SHARE
    lo, hi = cat.artist_starts[comm[deep]], cat.artist_starts[comm[deep] + 1]
    artist = np.empty(r, dtype=np.int64)
    artist[deep] = lo + (rng.random(len(lo)) * (hi - lo)).astype(np.int64)
    artist[~deep] = _draw_in_group(rng, cat.artist_cdf, comm[~deep], cat.artist_starts)
    if not flat:
        fav = (rng.random(r) < USER_FAVOURITE_SHARE) & ~deep
        artist[fav] = pls.favourites[owner[fav], rng.integers(0, USER_FAVOURITES, int(fav.sum()))]
    focus = (kind == KIND_ARTIST) & (rng.random(r) < ARTIST_PLAYLIST_FOCUS)
    artist[focus] = pls.focus_artist[run_pl[focus]]
    lo, hi = cat.track_starts[artist[deep]], cat.track_starts[artist[deep] + 1]
    first_track = np.empty(r, dtype=np.int64)
    first_track[deep] = lo + (rng.random(len(lo)) * (hi - lo)).astype(np.int64)
    first_track[~deep] = _draw_in_group(rng, cat.track_cdf, artist[~deep], cat.track_starts)
    # Inside a run: consecutive tracks of the artist's catalogue, like a stretch of an album.
    run_id = np.cumsum(starts) - 1
    del starts
    pos = np.arange(n) - run_first[run_id]
    a_row = artist[run_id]
    base = cat.track_starts[a_row]
    n_tr = cat.track_starts[a_row + 1] - base
    track = base + (first_track[run_id] - base + pos) % n_tr
    return row_pl, track.astype(np.int32)


def _rows(
    rng: np.random.Generator, cat: _Catalogue, pls: _Playlists, comms: np.ndarray, cum: np.ndarray
) -> np.ndarray:
    """Sorted unique `playlist * n_tracks + track` keys: each playlist filled to its size with distinct
    tracks, by topping up the repeats of popular tracks a few times."""
    n_tracks = len(cat.track_artist)
    keys = np.empty(0, dtype=np.int64)
    missing = pls.size
    for round_ in range(MAX_TOPUPS):
        row_pl, track = _draw_rows(rng, cat, pls, comms, cum, missing, flat=round_ >= FLAT_FROM_TOPUP)
        keys = _sorted_unique(np.concatenate([keys, row_pl.astype(np.int64) * n_tracks + track]))
        del row_pl, track
        missing = np.maximum(0, pls.size - np.bincount(keys // n_tracks, minlength=len(pls.size)))
        if missing.sum() <= TOPUP_TOLERANCE * pls.size.sum():
            break
    return keys


# --- names and quirks ------------------------------------------------------------------------------


def _escape(s: str) -> str:
    return s.replace('"', '\\"')


def _spaces(rng: np.random.Generator, values: list[str], lead: float, trail: float) -> list[str]:
    r = rng.random(len(values))
    pad = rng.integers(1, 3, len(values))
    out = list(values)
    for i in np.flatnonzero(r < lead + trail):
        out[i] = (" " * pad[i] + out[i]) if r[i] < lead else (out[i] + " " * pad[i])
    return out


@dataclass
class _Vocab:
    track_piece: list[str]  # per used track: `"artist","title"` as written
    sort_title: list[str]  # per used track: the written title value (for the in-playlist order)
    sort_artist: list[str]
    artist_clean: list[str]
    title_clean: list[str]


def _track_vocab(
    rng: np.random.Generator, cat: _Catalogue, used: np.ndarray, counts: np.ndarray, total_rows: int
) -> _Vocab:
    scripts_by_comm = [nm.COMMUNITIES[c].script for c in range(len(cat.community_weight))]
    used_artists = _sorted_unique(cat.track_artist[used])
    a_scripts = [scripts_by_comm[c] for c in cat.artist_comm[used_artists]]
    a_names = nm.unique_artist_names(rng, a_scripts)
    # A few artists go by quoted nicknames ("Weird Al" Yankovic); each literal name is one artist.
    for i in np.flatnonzero(rng.random(len(a_names)) < QUOTED_ARTIST_SHARE):
        first, _, rest = a_names[i].partition(" ")
        a_names[i] = f'"{first}" {rest}'.strip()
    lit = rng.choice(len(a_names), size=min(len(LITERAL_NAMES), len(a_names)), replace=False)
    for j, i in enumerate(lit):
        a_names[i] = LITERAL_NAMES[j]
    a_names = nm.make_unique(a_names, None, nm.ARTIST_DISAMBIGUATION)
    a_pos = np.searchsorted(used_artists, cat.track_artist[used])

    t_scripts = [scripts_by_comm[c] for c in cat.artist_comm[cat.track_artist[used]]]
    feat_pool = [a_names[i] for i in rng.choice(len(a_names), size=min(500, len(a_names)), replace=False)]
    titles = nm.track_titles(rng, t_scripts, feat_pool)
    n = len(used)
    used_counts = counts[used]
    for i in np.flatnonzero(rng.random(n) < ESCAPED_QUOTE_TRACK_SHARE):
        w = nm.EN_WORDS[int(rng.integers(len(nm.EN_WORDS)))]
        titles[i] = f'{titles[i]} (From "{nm._cap(w)}")' if rng.random() < 0.5 else f'"{titles[i]}"'
    n_lit = max(1, round(LITERAL_TRACKS_PER_100K_ROWS * total_rows / 100_000))
    lit_tracks = rng.choice(n, size=min(n, n_lit * len(LITERAL_NAMES)), replace=False)
    for j, i in enumerate(lit_tracks):
        titles[i] = LITERAL_NAMES[j % len(LITERAL_NAMES)]

    # Calibrated per-track quirks go to rarely played tracks so their row shares land on target.
    cand = np.flatnonzero(used_counts <= QUIRK_CANDIDATE_MAX_ROWS)
    cand = _without(cand, lit_tracks)
    unescaped = _pick_by_rows(rng, used_counts, cand, UNESCAPED_QUOTE_ROW_SHARE * total_rows)
    cand = _without(cand, unescaped)
    empty_artist = _pick_by_rows(rng, used_counts, cand, EMPTY_ARTIST_ROW_SHARE * total_rows)
    cand = _without(cand, empty_artist)
    empty_title = _pick_by_rows(rng, used_counts, cand, EMPTY_TRACK_ROW_SHARE * total_rows)
    for j, i in enumerate(unescaped):
        v = rng.random() if j else 0.0  # at least one unsplittable line in any file
        if v < UNSPLITTABLE_SHARE_OF_UNESCAPED:
            other = nm.EN_WORDS[int(rng.integers(len(nm.EN_WORDS)))]
            titles[i] = f'{titles[i]}","{nm._cap(other)}'  # a name containing the separator itself
        elif v < 0.5:
            titles[i] = f'{titles[i]} (12" Version)'
        elif v < 0.75:
            titles[i] = f'{titles[i]} 7"'  # a lone trailing quote
        else:
            titles[i] = f'"{titles[i]}"'
    title_clean = nm.make_unique(titles, a_pos, nm.DISAMBIGUATION_SUFFIXES)
    titles = list(title_clean)
    for i in empty_title:
        titles[i] = ""

    a_written = _spaces(rng, a_names, ARTIST_LEADING_SPACE_SHARE, ARTIST_TRAILING_SPACE_SHARE)
    t_written = _spaces(rng, titles, TITLE_LEADING_SPACE_SHARE, TITLE_TRAILING_SPACE_SHARE)
    is_unescaped = np.zeros(n, dtype=bool)
    is_unescaped[unescaped] = True
    is_empty_artist = np.zeros(n, dtype=bool)
    is_empty_artist[empty_artist] = True
    a_esc = [_escape(s) for s in a_written]
    pieces = []
    sort_artist = []
    for i in range(n):
        ai = int(a_pos[i])
        art = "" if is_empty_artist[i] else a_esc[ai]
        t = t_written[i]
        pieces.append(f'"{art}","{t if is_unescaped[i] else _escape(t)}"')
        sort_artist.append("" if is_empty_artist[i] else a_written[ai])
    artist_clean = [a_names[int(i)] for i in a_pos]
    return _Vocab(pieces, t_written, sort_artist, artist_clean, title_clean)


def _playlist_names(
    rng: np.random.Generator, pls: _Playlists, artist_clean_by_cat: dict[int, str]
) -> list[str]:
    p = len(pls.owner)
    r = rng.random((p, 2))
    ab = rng.integers(0, 1 << 30, size=(p, 2))
    names: list[str] = []
    for i in range(p):
        k = int(pls.kind[i])
        if k == KIND_STARRED:
            names.append(AUTO_PLAYLIST_NAMES[0])
            continue
        if k == KIND_RADIO:
            names.append(AUTO_PLAYLIST_NAMES[1])
            continue
        kind = {KIND_TASTE: "taste", KIND_GENERIC: "generic", KIND_ARTIST: "artist"}[k]
        focus = artist_clean_by_cat.get(int(pls.focus_artist[i]))
        names.append(
            nm.playlist_name(
                (float(r[i, 0]), float(r[i, 1]), int(ab[i, 0]), int(ab[i, 1])),
                kind,
                nm.COMMUNITIES[int(pls.primary[i])],
                focus,
            )
        )
    lit = rng.choice(p, size=min(p, 2), replace=False)
    for j, i in enumerate(lit):
        if pls.kind[i] < KIND_STARRED:
            names[i] = LITERAL_NAMES[(j + 1) % len(LITERAL_NAMES)]
    names = _spaces(rng, names, PLAYLIST_LEADING_SPACE_SHARE, PLAYLIST_TRAILING_SPACE_SHARE)
    for i in np.flatnonzero(pls.kind >= KIND_STARRED):
        names[i] = AUTO_PLAYLIST_NAMES[int(pls.kind[i] - KIND_STARRED)]  # the client writes them exactly
    small_normal = np.flatnonzero((pls.kind < KIND_STARRED) & (pls.size <= 10))
    n_empty = max(1, round(EMPTY_PLAYLIST_SHARE * p))
    for i in rng.choice(small_normal, size=min(n_empty, len(small_normal)), replace=False):
        names[i] = ""
    # A user's playlists have distinct names (the same name would merge them downstream).
    return nm.make_unique(names, pls.owner, (" 2", " (1)", " new", " II", " old", " 3"))


# --- writing ---------------------------------------------------------------------------------------


def _write_csv(
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


def generate(
    preset: str = "small", rows: int | None = None, seed: int = 42, out: Path | str = ""
) -> GenerateResult:
    """Generate a raw-format playlists CSV at `out` (via a temp file and rename) and its sidecar."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if not out:
        raise ValueError("out is required")
    out = Path(out)
    t0 = time.perf_counter()
    spec = PRESETS[preset].scaled(rows)
    if spec.communities > len(nm.COMMUNITIES):
        raise ValueError(f"at most {len(nm.COMMUNITIES)} communities")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, spec.rows]).spawn(8)]
    stages = tqdm(total=6, desc=f"generate {preset}", unit="stage", disable=None)

    cat = _catalogue(streams[0], spec)
    comms, cum = _users(streams[1], spec, cat.community_weight)
    pls = _playlists(streams[2], spec, cat, comms, cum)
    n_cat = len(cat.track_artist)
    pair_keys = _rows(streams[3], cat, pls, comms, cum)
    stages.update()

    counts = np.bincount(pair_keys % n_cat, minlength=n_cat)
    used = np.flatnonzero(counts)
    vocab = _track_vocab(streams[4], cat, used, counts, len(pair_keys))
    stages.update()

    used_index = np.full(len(cat.track_artist), -1, dtype=np.int64)
    used_index[used] = np.arange(len(used))
    title_order = np.asarray(
        pc.sort_indices(
            pa.table({"t": vocab.sort_title, "a": vocab.sort_artist, "i": np.arange(len(used))}),
            sort_keys=[("t", "ascending"), ("a", "ascending"), ("i", "ascending")],
        )
    )
    title_rank = np.empty(len(used), dtype=np.int64)
    title_rank[title_order] = np.arange(len(used))

    a_first = {}
    used_artists_cat = cat.track_artist[used]
    for i in range(len(used)):
        a_first.setdefault(int(used_artists_cat[i]), vocab.artist_clean[i])
    pl_names = _playlist_names(streams[5], pls, a_first)
    raw = streams[6].integers(0, 256, size=(spec.users, 16), dtype=np.uint8)
    user_hex = [bytes(row).hex() for row in raw]
    if len(set(user_hex)) != len(user_hex):
        raise RuntimeError("user_id collision; choose another seed")
    pl_order = np.asarray(
        pc.sort_indices(
            pa.table({"u": [user_hex[o] for o in pls.owner], "n": pl_names, "i": np.arange(len(pl_names))}),
            sort_keys=[("u", "ascending"), ("n", "ascending"), ("i", "ascending")],
        )
    )
    pl_rank = np.empty(len(pl_names), dtype=np.int64)
    pl_rank[pl_order] = np.arange(len(pl_names))
    stages.update()

    # One sort gives the file order: user, playlist, title.
    n_used = len(used)
    keys = np.sort(pl_rank[pair_keys // n_cat] * n_used + title_rank[used_index[pair_keys % n_cat]])
    del pair_keys
    dup = streams[7].random(len(keys)) < DUPLICATE_ROW_SHARE
    keys = np.repeat(keys, 1 + dup.astype(np.int64))
    pl_of_row = (keys // n_used).astype(np.int32)
    track_of_row = title_order[keys % n_used].astype(np.int32)
    del keys
    stages.update()

    prefix = pa.array([f'"{user_hex[pls.owner[i]]}",' for i in pl_order])
    suffix = pa.array([f',"{_escape(pl_names[i])}"\n' for i in pl_order])
    pieces = pa.array(vocab.track_piece)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        _write_csv(tmp, pl_of_row, track_of_row, prefix, suffix, pieces)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    stages.update()

    final_counts = np.bincount(track_of_row, minlength=n_used)
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
    stages.update()
    stages.close()

    pl_present = np.flatnonzero(np.bincount(pl_of_row, minlength=len(pl_order)))
    return GenerateResult(
        path=out,
        sidecar=sc,
        preset=preset,
        seed=seed,
        rows=len(track_of_row),
        users=int(_sorted_unique(pls.owner[pl_order[pl_present]]).size),
        playlists=len(pl_present),
        tracks=int((final_counts > 0).sum()),
        artists=int(_sorted_unique(cat.track_artist[used][final_counts > 0]).size),
        seconds=time.perf_counter() - t0,
    )
