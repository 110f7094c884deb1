"""Filling the playlists: runs of one artist drawn from the owner's tastes, topped up with distinct
tracks until each playlist reaches its size."""

from __future__ import annotations

import numpy as np

from ml.data.population import KIND_ARTIST, KIND_STARRED, Catalogue, Playlists, from_mixture
from ml.data.presets import (
    ALBUM_RUN_SHARE,
    ARTIST_PLAYLIST_FOCUS,
    AUTO_GLOBAL_SHARE,
    DEEP_RUN_SHARE,
    FLAT_FROM_TOPUP,
    MAX_TOPUPS,
    OWNER_MIX_SHARE,
    RUN_MEAN,
    TOPUP_TOLERANCE,
    USER_FAVOURITE_SHARE,
    USER_FAVOURITES,
)
from ml.data.sampling import draw_in_group, sorted_unique


def draw_rows(
    rng: np.random.Generator,
    cat: Catalogue,
    pls: Playlists,
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
    comm[from_owner] = from_mixture(rng, comms, cum, owner[from_owner])
    anywhere = np.where(auto, x >= 1 - AUTO_GLOBAL_SHARE, x >= mixed)
    comm[anywhere] = rng.choice(len(cat.community_weight), size=int(anywhere.sum()), p=cat.community_weight)
    # Deep runs ignore popularity: the one-off tracks every playlist holds a few of.
    deep = np.full(r, True) if flat else rng.random(r) < DEEP_RUN_SHARE
    lo, hi = cat.artist_starts[comm[deep]], cat.artist_starts[comm[deep] + 1]
    artist = np.empty(r, dtype=np.int64)
    artist[deep] = lo + (rng.random(len(lo)) * (hi - lo)).astype(np.int64)
    artist[~deep] = draw_in_group(rng, cat.artist_cdf, comm[~deep], cat.artist_starts)
    if not flat:
        fav = (rng.random(r) < USER_FAVOURITE_SHARE) & ~deep
        artist[fav] = pls.favourites[owner[fav], rng.integers(0, USER_FAVOURITES, int(fav.sum()))]
    focus = (kind == KIND_ARTIST) & (rng.random(r) < ARTIST_PLAYLIST_FOCUS)
    artist[focus] = pls.focus_artist[run_pl[focus]]
    lo, hi = cat.track_starts[artist[deep]], cat.track_starts[artist[deep] + 1]
    first_track = np.empty(r, dtype=np.int64)
    first_track[deep] = lo + (rng.random(len(lo)) * (hi - lo)).astype(np.int64)
    first_track[~deep] = draw_in_group(rng, cat.track_cdf, artist[~deep], cat.track_starts)
    # Inside a run: consecutive tracks of the artist's catalogue, like a stretch of an album.
    run_id = np.cumsum(starts) - 1
    del starts
    pos = np.arange(n) - run_first[run_id]
    a_row = artist[run_id]
    base = cat.track_starts[a_row]
    n_tr = cat.track_starts[a_row + 1] - base
    track = base + (first_track[run_id] - base + pos) % n_tr
    return row_pl, track.astype(np.int32)


def fill_playlists(
    rng: np.random.Generator, cat: Catalogue, pls: Playlists, comms: np.ndarray, cum: np.ndarray
) -> np.ndarray:
    """Sorted unique `playlist * n_tracks + track` keys: each playlist filled to its size with distinct
    tracks, by topping up the repeats of popular tracks a few times."""
    n_tracks = len(cat.track_artist)
    keys = np.empty(0, dtype=np.int64)
    missing = pls.size
    for round_ in range(MAX_TOPUPS):
        row_pl, track = draw_rows(rng, cat, pls, comms, cum, missing, flat=round_ >= FLAT_FROM_TOPUP)
        keys = sorted_unique(np.concatenate([keys, row_pl.astype(np.int64) * n_tracks + track]))
        del row_pl, track
        missing = np.maximum(0, pls.size - np.bincount(keys // n_tracks, minlength=len(pls.size)))
        if missing.sum() <= TOPUP_TOLERANCE * pls.size.sum():
            break
    return keys
