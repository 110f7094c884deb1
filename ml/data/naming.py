"""Names and quirks: artist names and track titles of the used tracks (with the calibrated per-track
quirks of the raw format), playlist names, and how each is written into a line."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.config import AUTO_PLAYLIST_NAMES
from ml.data import names as nm
from ml.data.population import (
    KIND_ARTIST,
    KIND_GENERIC,
    KIND_RADIO,
    KIND_STARRED,
    KIND_TASTE,
    Catalogue,
    Playlists,
)
from ml.data.presets import (
    ARTIST_LEADING_SPACE_SHARE,
    ARTIST_TRAILING_SPACE_SHARE,
    EMPTY_ARTIST_ROW_SHARE,
    EMPTY_PLAYLIST_SHARE,
    EMPTY_TRACK_ROW_SHARE,
    ESCAPED_QUOTE_TRACK_SHARE,
    LITERAL_NAMES,
    LITERAL_TRACKS_PER_100K_ROWS,
    PLAYLIST_LEADING_SPACE_SHARE,
    PLAYLIST_TRAILING_SPACE_SHARE,
    QUIRK_CANDIDATE_MAX_ROWS,
    QUOTED_ARTIST_SHARE,
    TITLE_LEADING_SPACE_SHARE,
    TITLE_TRAILING_SPACE_SHARE,
    UNESCAPED_QUOTE_ROW_SHARE,
    UNSPLITTABLE_SHARE_OF_UNESCAPED,
)
from ml.data.sampling import pick_by_rows, sorted_unique, without


def escape(s: str) -> str:
    return s.replace('"', '\\"')


def _spaces(rng: np.random.Generator, values: list[str], lead: float, trail: float) -> list[str]:
    r = rng.random(len(values))
    pad = rng.integers(1, 3, len(values))
    out = list(values)
    for i in np.flatnonzero(r < lead + trail):
        out[i] = (" " * pad[i] + out[i]) if r[i] < lead else (out[i] + " " * pad[i])
    return out


@dataclass
class Vocab:
    track_piece: list[str]  # per used track: `"artist","title"` as written
    sort_title: list[str]  # per used track: the written title value (for the in-playlist order)
    sort_artist: list[str]
    artist_clean: list[str]
    title_clean: list[str]


@dataclass
class _TrackQuirks:
    """Used-track indices of the calibrated per-track quirks."""

    unescaped: np.ndarray
    empty_artist: np.ndarray
    empty_title: np.ndarray


def _artist_names(
    rng: np.random.Generator, cat: Catalogue, used: np.ndarray, scripts_by_comm: list[str]
) -> tuple[list[str], np.ndarray]:
    """Unique names of the artists of the used tracks, and each used track's artist position in them."""
    used_artists = sorted_unique(cat.track_artist[used])
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
    return a_names, np.searchsorted(used_artists, cat.track_artist[used])


def _titles(
    rng: np.random.Generator,
    cat: Catalogue,
    used: np.ndarray,
    scripts_by_comm: list[str],
    a_names: list[str],
    total_rows: int,
) -> tuple[list[str], np.ndarray]:
    """Titles of the used tracks (some with correctly escaped quotes, some literal `NA`/`null`/...)
    and the used-track indices carrying a literal name."""
    t_scripts = [scripts_by_comm[c] for c in cat.artist_comm[cat.track_artist[used]]]
    feat_pool = [a_names[i] for i in rng.choice(len(a_names), size=min(500, len(a_names)), replace=False)]
    titles = nm.track_titles(rng, t_scripts, feat_pool)
    n = len(used)
    for i in np.flatnonzero(rng.random(n) < ESCAPED_QUOTE_TRACK_SHARE):
        w = nm.EN_WORDS[int(rng.integers(len(nm.EN_WORDS)))]
        titles[i] = f'{titles[i]} (From "{nm._cap(w)}")' if rng.random() < 0.5 else f'"{titles[i]}"'
    n_lit = max(1, round(LITERAL_TRACKS_PER_100K_ROWS * total_rows / 100_000))
    lit_tracks = rng.choice(n, size=min(n, n_lit * len(LITERAL_NAMES)), replace=False)
    for j, i in enumerate(lit_tracks):
        titles[i] = LITERAL_NAMES[j % len(LITERAL_NAMES)]
    return titles, lit_tracks


def _quirk_tracks(
    rng: np.random.Generator, used_counts: np.ndarray, lit_tracks: np.ndarray, total_rows: int
) -> _TrackQuirks:
    """Calibrated per-track quirks go to rarely played tracks so their row shares land on target."""
    cand = np.flatnonzero(used_counts <= QUIRK_CANDIDATE_MAX_ROWS)
    cand = without(cand, lit_tracks)
    unescaped = pick_by_rows(rng, used_counts, cand, UNESCAPED_QUOTE_ROW_SHARE * total_rows)
    cand = without(cand, unescaped)
    empty_artist = pick_by_rows(rng, used_counts, cand, EMPTY_ARTIST_ROW_SHARE * total_rows)
    cand = without(cand, empty_artist)
    empty_title = pick_by_rows(rng, used_counts, cand, EMPTY_TRACK_ROW_SHARE * total_rows)
    return _TrackQuirks(unescaped, empty_artist, empty_title)


def _unescaped_quotes(rng: np.random.Generator, titles: list[str], unescaped: np.ndarray) -> None:
    """Put the quotes that will be written unescaped into `titles` (in place)."""
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


def _track_pieces(
    a_written: list[str], t_written: list[str], a_pos: np.ndarray, quirks: _TrackQuirks
) -> tuple[list[str], list[str]]:
    """Per used track: the written `"artist","title"` piece of a line and the written artist value."""
    n = len(t_written)
    is_unescaped = np.zeros(n, dtype=bool)
    is_unescaped[quirks.unescaped] = True
    is_empty_artist = np.zeros(n, dtype=bool)
    is_empty_artist[quirks.empty_artist] = True
    a_esc = [escape(s) for s in a_written]
    pieces = []
    sort_artist = []
    for i in range(n):
        ai = int(a_pos[i])
        art = "" if is_empty_artist[i] else a_esc[ai]
        t = t_written[i]
        pieces.append(f'"{art}","{t if is_unescaped[i] else escape(t)}"')
        sort_artist.append("" if is_empty_artist[i] else a_written[ai])
    return pieces, sort_artist


def track_vocab(
    rng: np.random.Generator, cat: Catalogue, used: np.ndarray, counts: np.ndarray, total_rows: int
) -> Vocab:
    """Names of the used catalogue tracks `used` (`counts` rows per catalogue track), clean and as written."""
    scripts_by_comm = [nm.COMMUNITIES[c].script for c in range(len(cat.community_weight))]
    a_names, a_pos = _artist_names(rng, cat, used, scripts_by_comm)
    titles, lit_tracks = _titles(rng, cat, used, scripts_by_comm, a_names, total_rows)
    quirks = _quirk_tracks(rng, counts[used], lit_tracks, total_rows)
    _unescaped_quotes(rng, titles, quirks.unescaped)
    title_clean = nm.make_unique(titles, a_pos, nm.DISAMBIGUATION_SUFFIXES)
    titles = list(title_clean)
    for i in quirks.empty_title:
        titles[i] = ""

    a_written = _spaces(rng, a_names, ARTIST_LEADING_SPACE_SHARE, ARTIST_TRAILING_SPACE_SHARE)
    t_written = _spaces(rng, titles, TITLE_LEADING_SPACE_SHARE, TITLE_TRAILING_SPACE_SHARE)
    pieces, sort_artist = _track_pieces(a_written, t_written, a_pos, quirks)
    artist_clean = [a_names[int(i)] for i in a_pos]
    return Vocab(pieces, t_written, sort_artist, artist_clean, title_clean)


def playlist_names(
    rng: np.random.Generator, pls: Playlists, artist_clean_by_cat: dict[int, str]
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
