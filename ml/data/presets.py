"""The generator's scale presets and its tuning constants (the levers of docs/generator.md).

Structure constants shape the catalogue, the users' tastes and the playlists; quirk constants set the
rates of the raw format's oddities (shares of rows unless named otherwise). Everything here is data:
the code that uses it is in population.py, playlist_rows.py, naming.py and generate.py.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        catalogue_tracks=4_600_000,
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
PRIMARY_COMMUNITY_SHARE_MIN = 0.15
PRIMARY_COMMUNITY_SHARE_MAX = 0.45
COHERENT_USER_PLAYLISTS = 50
OWNER_MIX_SHARE = 0.5
DEEP_RUN_SHARE = 0.3  # runs of any playlist drawn without popularity (one-off, near-singleton tracks)
AUTO_GLOBAL_SHARE = 0.1  # runs of an auto playlist from anywhere (radio discoveries)
USER_FAVOURITES = 12  # artists a user keeps coming back to, in any of their playlists
USER_FAVOURITE_SHARE = 0.05  # share of runs by one of the owner's favourite artists
RUN_MEAN = 1.3  # mean length of a run of one artist
ALBUM_RUN_SHARE = 0.025  # runs that are a stretch of an album: 6-14 consecutive tracks
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
