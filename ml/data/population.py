"""The latent population: the catalogue (communities, artists, tracks and their popularity), the
users' taste mixtures and the playlists (owner, kind, primary community, size)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from ml.data import names as nm
from ml.data.presets import (
    ARTIST_PLAYLIST_MAX_SIZE,
    ARTIST_PLAYLIST_SHARE,
    ARTIST_TRACKS_SIGMA,
    ARTIST_ZIPF,
    COHERENT_USER_PLAYLISTS,
    COMMUNITY_ZIPF,
    FULL_SCALE_MAX_PLAYLIST,
    FULL_SCALE_MAX_PLAYLIST_SPREAD,
    KNOWN_TRACK_SHARE,
    MAX_PLAYLIST_ROW_SHARE,
    NON_ENGLISH_WEIGHT,
    PLAYLIST_SIZE_MEDIAN,
    PLAYLIST_SIZE_SIGMA,
    PRIMARY_COMMUNITY_SHARE_MAX,
    PRIMARY_COMMUNITY_SHARE_MIN,
    RADIO_SHARE,
    RADIO_SIZE_FACTOR,
    STARRED_SHARE,
    STARRED_SIZE_FACTOR,
    TASTE_PLAYLIST_SHARE,
    TRACK_ZIPF,
    USER_ACTIVITY_SIGMA,
    USER_FAVOURITES,
    USER_TASTE_SIZE_P,
    USER_TASTE_SIZES,
    Preset,
)
from ml.data.sampling import draw_in_group, grouped_cdf, zipf_weights


@dataclass
class Catalogue:
    community_weight: np.ndarray
    artist_comm: np.ndarray
    artist_starts: np.ndarray  # first artist of each community, plus the end
    artist_cdf: np.ndarray
    track_artist: np.ndarray
    track_starts: np.ndarray  # first track of each artist, plus the end
    track_cdf: np.ndarray


def build_catalogue(rng: np.random.Generator, spec: Preset) -> Catalogue:
    k, a = spec.communities, spec.artists
    cw = rng.permutation((np.arange(k) + 1.0) ** -COMMUNITY_ZIPF)
    # Non-English scenes are smaller, so about one line in seven carries non-ASCII text, as in the real file.
    cw *= np.where([nm.COMMUNITIES[c].script == "en" for c in range(k)], 1.0, NON_ENGLISH_WEIGHT)
    cw /= cw.sum()
    artist_comm = np.sort(np.concatenate([np.arange(k), rng.choice(k, size=a - k, p=cw)])).astype(np.int32)
    artist_starts = np.searchsorted(artist_comm, np.arange(k + 1))
    artist_cdf = grouped_cdf(artist_comm, zipf_weights(artist_comm, artist_starts, ARTIST_ZIPF), k)
    # Popular artists have larger catalogues.
    rank = np.arange(a) - artist_starts[artist_comm]
    raw = rng.lognormal(0.0, ARTIST_TRACKS_SIGMA, a) * (rank + 1.0) ** -0.3
    n_tracks = np.maximum(1, np.round(raw * (spec.catalogue_tracks / raw.sum()))).astype(np.int64)
    track_starts = np.concatenate(([0], np.cumsum(n_tracks)))
    track_artist = np.repeat(np.arange(a, dtype=np.int32), n_tracks)
    # Popularity draws reach only the known part of a catalogue; deep runs reach all of it.
    t_rank = np.arange(len(track_artist)) - track_starts[track_artist]
    known = t_rank < np.maximum(1, np.ceil(KNOWN_TRACK_SHARE * n_tracks))[track_artist]
    track_cdf = grouped_cdf(track_artist, zipf_weights(track_artist, track_starts, TRACK_ZIPF) * known, a)
    return Catalogue(cw, artist_comm, artist_starts, artist_cdf, track_artist, track_starts, track_cdf)


@dataclass
class Playlists:
    owner: np.ndarray
    kind: np.ndarray  # 0 normal-taste, 1 normal-generic, 2 artist-focused, 3 Starred, 4 Liked from Radio
    primary: np.ndarray
    focus_artist: np.ndarray
    size: np.ndarray
    favourites: np.ndarray  # (users, USER_FAVOURITES) artists each user returns to across playlists
    coherence: np.ndarray  # share of a normal playlist's runs from its primary community


KIND_TASTE, KIND_GENERIC, KIND_ARTIST, KIND_STARRED, KIND_RADIO = range(5)


def user_tastes(rng: np.random.Generator, spec: Preset, cw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def from_mixture(
    rng: np.random.Generator, comms: np.ndarray, cum: np.ndarray, users: np.ndarray
) -> np.ndarray:
    r = rng.random(len(users))[:, None]
    slot = (r >= cum[users]).sum(axis=1)
    return comms[users, np.minimum(slot, 2)]


def build_playlists(
    rng: np.random.Generator, spec: Preset, cat: Catalogue, comms: np.ndarray, cum: np.ndarray
) -> Playlists:
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
    primary = from_mixture(rng, comms, cum, owner)
    focus = draw_in_group(rng, cat.artist_cdf, primary, cat.artist_starts).astype(np.int32)
    fav_users = np.repeat(np.arange(u), USER_FAVOURITES)
    fav_comm = from_mixture(rng, comms, cum, fav_users)
    favourites = draw_in_group(rng, cat.artist_cdf, fav_comm, cat.artist_starts).reshape(u, USER_FAVOURITES)
    grow = np.clip(np.log(per_user) / np.log(COHERENT_USER_PLAYLISTS), 0.0, 1.0)
    coherence = (
        PRIMARY_COMMUNITY_SHARE_MIN + (PRIMARY_COMMUNITY_SHARE_MAX - PRIMARY_COMMUNITY_SHARE_MIN) * grow
    )
    return Playlists(owner, kind, primary, focus, size, favourites, coherence[owner])
