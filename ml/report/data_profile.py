"""`ml report data`: the dataset profile as PNG plots and one HTML page under REPORTS_DIR.

Everything is read from the marts (read-only) with small aggregate queries: distributions of tracks
per artist, rows per track and playlist sizes; a power-law analysis of artist popularity with the
`powerlaw` package (Clauset, Shalizi & Newman's method: xmin by minimum KS distance, alpha by
maximum likelihood, likelihood-ratio tests against lognormal and exponential); the most played
artists and tracks; the share of auto playlists; and the ingestion accounting from the staging
layer (loaded, recovered and rejected lines by reason).
"""

from __future__ import annotations

import html
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from ml.config import Paths
from ml.report.power_law import (
    LR_SIGNIFICANCE,
    PowerLawFit,
    PowerLawUnavailable,
    fit_power_law,
)
from ml.report.profile_plots import _log_histogram, _playlist_sizes_plot, _power_law_plot
from ml.warehouse import (
    DIM_ARTISTS,
    DIM_PLAYLISTS,
    DIM_TRACKS,
    FCT_PLAYLIST_TRACKS,
    REJECTED_LINES,
    STG_PLAYLIST_TRACKS,
    check_relation,
    connect,
)

REPORT_NAME = "data_profile.html"
TOP_N = 10

# --- reading ------------------------------------------------------------------------------------


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    return con.execute(sql).fetchone()[0]


@dataclass(frozen=True)
class Ingestion:
    data_lines: int  # physical lines after the header
    loaded: int  # staged rows
    recovered: int  # staged rows split on '","' (unescaped inner quotes)
    rejected: int
    rejected_by_reason: dict[str, int]
    last_line_number: int  # with the header at 1, equals data_lines + 1 when nothing is lost

    @property
    def accounted(self) -> bool:
        return self.loaded + self.rejected == self.data_lines == self.last_line_number - 1


def read_ingestion(con: duckdb.DuckDBPyConnection) -> Ingestion:
    check_relation(con, STG_PLAYLIST_TRACKS)
    check_relation(con, REJECTED_LINES)
    loaded, recovered, last_loaded = con.execute(
        "select count(*), count(*) filter (where is_recovered), coalesce(max(line_number), 1) "
        f"from {STG_PLAYLIST_TRACKS.name}"
    ).fetchone()
    by_reason = dict(
        con.execute(
            f"select reason, count(*) from {REJECTED_LINES.name} group by reason order by 2 desc, 1"
        ).fetchall()
    )
    last_rejected = _scalar(con, f"select coalesce(max(line_number), 1) from {REJECTED_LINES.name}")
    rejected = sum(by_reason.values())
    return Ingestion(
        data_lines=loaded + rejected,
        loaded=loaded,
        recovered=recovered,
        rejected=rejected,
        rejected_by_reason=by_reason,
        last_line_number=max(last_loaded, last_rejected),
    )


# --- the page -----------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { border: 1px solid #ddd; padding: 3px 9px; }
th { background: #f3f3f3; text-align: left; } td { text-align: right; } td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; } .verdict { font-size: 1.1em; background: #f6f8fa; padding: 0.6em; }
.ok { color: #1e7d32; } .bad { color: #b71c1c; } .muted { color: #777; }
"""


def build_data_report(paths: Paths) -> dict[str, Any]:
    """Write the plots and `data_profile.html` to paths.reports_dir; return their paths and the numbers."""
    start = time.perf_counter()
    out = paths.reports_dir
    out.mkdir(parents=True, exist_ok=True)
    con = connect(paths.duckdb_path)
    try:
        numbers, arrays, tops = _read(con)
        ingestion = read_ingestion(con)
    finally:
        con.close()

    try:
        fit_result, fit = fit_power_law(arrays["artist_rows"], quantity="rows per artist")
        unavailable = None
    except PowerLawUnavailable as err:
        fit_result, fit, unavailable = None, None, str(err)
    plots = {
        "tracks_per_artist": _log_histogram(
            arrays["artist_tracks"],
            out / "tracks_per_artist.png",
            "Tracks per artist",
            "distinct tracks of the artist (log)",
            "artists per unit of x (log)",
        ),
        "rows_per_track": _log_histogram(
            arrays["track_rows"],
            out / "rows_per_track.png",
            "Rows per track (playlist occurrences)",
            "rows of the track in the file (log)",
            "tracks per unit of x (log)",
        ),
        "playlist_sizes": _playlist_sizes_plot(
            arrays["session_tracks"], arrays["session_auto"], out / "playlist_sizes.png"
        ),
    }
    if fit_result is not None:
        plots["artist_power_law"] = _power_law_plot(fit, fit_result, out / "artist_power_law.png")
    numbers["power_law"] = asdict(fit_result) if fit_result else None
    numbers["power_law_unavailable"] = unavailable
    numbers["power_law_verdicts"] = [
        {"alternative": t.alternative, "verdict": t.verdict} for t in (fit_result.tests if fit_result else ())
    ]
    numbers["ingestion"] = asdict(ingestion) | {"accounted": ingestion.accounted}
    page = out / REPORT_NAME
    page.write_text(
        _render(paths, numbers, tops, fit_result, unavailable, ingestion, plots), encoding="utf-8"
    )
    return {
        "html": page,
        "plots": plots,
        "numbers": numbers,
        "top_artists": tops["artists"],
        "top_tracks": tops["tracks"],
        "elapsed_s": time.perf_counter() - start,
    }


def _read(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, list]]:
    for relation in (DIM_ARTISTS, DIM_TRACKS, DIM_PLAYLISTS, FCT_PLAYLIST_TRACKS):
        check_relation(con, relation)
    # the empty artist name is one placeholder artist, not a popular one: kept out of the fit
    known = "where not is_unknown"
    arrays = {
        "artist_rows": con.execute(f"select n_rows from {DIM_ARTISTS.name} {known}").fetchnumpy()["n_rows"],
        "artist_tracks": con.execute(f"select n_tracks from {DIM_ARTISTS.name}").fetchnumpy()["n_tracks"],
        "track_rows": con.execute(f"select n_rows from {DIM_TRACKS.name}").fetchnumpy()["n_rows"],
    }
    sessions = con.execute(f"select n_tracks, is_auto from {DIM_PLAYLISTS.name}").fetchnumpy()
    arrays["session_tracks"] = np.asarray(sessions["n_tracks"])
    arrays["session_auto"] = np.asarray(sessions["is_auto"], dtype=bool)
    auto = con.execute(
        f"""
        select
            count(*) as sessions,
            count(*) filter (where is_auto) as auto_sessions,
            sum(n_rows) as rows,
            sum(n_rows) filter (where is_auto) as auto_rows,
            count(distinct playlist_id) as playlists,
            count(distinct user_id) as users,
        from {DIM_PLAYLISTS.name}
        """
    ).fetchone()
    sessions_n, auto_sessions, rows, auto_rows, playlists, users = auto
    numbers: dict[str, Any] = {
        "sessions": sessions_n,
        "playlists": playlists,
        "users": users,
        "tracks": len(arrays["track_rows"]),
        "artists": len(arrays["artist_tracks"]),
        "rows_in_sessions": int(rows or 0),
        "playlist_track_pairs": _scalar(con, f"select count(*) from {FCT_PLAYLIST_TRACKS.name}"),
        "auto_sessions": auto_sessions,
        "auto_session_share": auto_sessions / sessions_n if sessions_n else 0.0,
        "auto_row_share": (auto_rows or 0) / rows if rows else 0.0,
        "median_playlist_size": float(np.median(arrays["session_tracks"])) if sessions_n else 0.0,
        "median_tracks_per_artist": float(np.median(arrays["artist_tracks"])),
        "median_rows_per_track": float(np.median(arrays["track_rows"])),
    }
    tops = {
        "artists": [
            list(r)
            for r in con.execute(
                f"select artist_name, n_rows, n_tracks, n_playlists from {DIM_ARTISTS.name} {known} "
                f"order by n_rows desc, artist_name limit {TOP_N}"
            ).fetchall()
        ],
        "tracks": [
            list(r)
            for r in con.execute(
                f"select artist_name, track_name, n_rows, n_playlists from {DIM_TRACKS.name} "
                f"order by n_rows desc, artist_name, track_name limit {TOP_N}"
            ).fetchall()
        ],
    }
    return numbers, arrays, tops


def _render(
    paths: Paths,
    numbers: dict[str, Any],
    tops: dict[str, list],
    fit: PowerLawFit | None,
    unavailable: str | None,
    ingestion: Ingestion,
    plots: dict[str, Path],
) -> str:
    def img(key: str, alt: str) -> str:
        return f'<p><img src="{html.escape(plots[key].name)}" alt="{html.escape(alt)}"></p>'

    sections = [
        f'<h1>Dataset profile</h1><p class="muted">warehouse {html.escape(str(paths.duckdb_path))}; '
        f"built {time.strftime('%Y-%m-%d %H:%M:%S')}</p>",
        "<h2>Size</h2>",
        _table(
            ["quantity", "value"],
            [
                ["users", numbers["users"]],
                ["playlists (user + name)", numbers["playlists"]],
                ["playlist sessions", numbers["sessions"]],
                ["rows in sessions", numbers["rows_in_sessions"]],
                ["distinct (session, track) pairs", numbers["playlist_track_pairs"]],
                ["tracks", numbers["tracks"]],
                ["artists", numbers["artists"]],
                ["median playlist size (tracks)", numbers["median_playlist_size"]],
                ["median tracks per artist", numbers["median_tracks_per_artist"]],
                ["median rows per track", numbers["median_rows_per_track"]],
            ],
        ),
        _ingestion_section(ingestion),
        "<h2>Artist popularity: is it a power law?</h2>",
        _power_law_section(fit, unavailable, img),
        "<h2>Distributions</h2>",
        img("tracks_per_artist", "histogram of tracks per artist, log-log"),
        img("rows_per_track", "histogram of rows per track, log-log"),
        img("playlist_sizes", "playlist size histogram and CCDF"),
        "<h2>Auto playlists</h2>",
        _table(
            ["", "value"],
            [
                ["auto sessions (Starred, Liked from Radio)", numbers["auto_sessions"]],
                ["share of sessions", numbers["auto_session_share"]],
                ["share of rows", numbers["auto_row_share"]],
            ],
        ),
        '<p class="muted">Auto playlists are filled by the client and mix all of a user\'s tastes.</p>',
        f"<h2>Top {TOP_N} artists (by rows)</h2>",
        _table(["artist", "rows", "tracks", "playlist sessions"], tops["artists"]),
        f"<h2>Top {TOP_N} tracks (by rows)</h2>",
        _table(["artist", "track", "rows", "playlist sessions"], tops["tracks"]),
    ]
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Dataset profile</title>'
        f"<style>{_CSS}</style></head><body>{''.join(sections)}</body></html>\n"
    )


def _ingestion_section(ingestion: Ingestion) -> str:
    """Loaded + rejected = data lines: the accounting table, rejections by reason, the verdict."""
    accounted = (
        '<p class="ok">Every data line is accounted for: loaded + rejected = data lines, and line numbers '
        "run without a gap.</p>"
        if ingestion.accounted
        else '<p class="bad">Lines are NOT accounted for: loaded + rejected differs from the data lines '
        "(see the numbers above).</p>"
    )
    reasons = [
        [reason, n, n / ingestion.data_lines if ingestion.data_lines else 0.0]
        for reason, n in ingestion.rejected_by_reason.items()
    ]
    return "".join(
        [
            "<h2>Ingestion accounting</h2>",
            _table(
                ["lines", "count", "share of data lines"],
                [
                    ["data lines (header excluded)", ingestion.data_lines, 1.0],
                    [
                        "loaded (staged rows)",
                        ingestion.loaded,
                        _share(ingestion.loaded, ingestion.data_lines),
                    ],
                    [
                        '  of which recovered (unescaped quotes, split on ",")',
                        ingestion.recovered,
                        _share(ingestion.recovered, ingestion.data_lines),
                    ],
                    [
                        "rejected (rejected_lines)",
                        ingestion.rejected,
                        _share(ingestion.rejected, ingestion.data_lines),
                    ],
                ],
            ),
            "<h3>Rejected lines by reason</h3>",
            _table(["reason", "lines", "share of data lines"], reasons)
            if reasons
            else "<p>No line was rejected.</p>",
            accounted,
        ]
    )


def _power_law_section(fit: PowerLawFit | None, unavailable: str | None, img: Any) -> str:
    if fit is None:
        return f'<p class="verdict">No power-law analysis: {html.escape(unavailable or "")}.</p>'
    lognormal = next(t for t in fit.tests if t.alternative == "lognormal")
    exponential = next(t for t in fit.tests if t.alternative == "exponential")
    return "".join(
        [
            f'<p class="verdict">{html.escape(lognormal.verdict[0].upper() + lognormal.verdict[1:])}; '
            f"{html.escape(exponential.verdict)}.</p>",
            _table(
                ["fit", "value"],
                [
                    ["quantity", fit.quantity + " (known artists)"],
                    ["artists", fit.n],
                    ["xmin (by minimum KS distance)", fit.xmin],
                    ["artists in the tail (>= xmin)", fit.n_tail],
                    ["alpha (MLE)", fit.alpha],
                    ["alpha standard error", fit.sigma],
                    ["KS distance D", fit.D],
                ],
            ),
            _table(
                ["power law vs", "log-likelihood ratio R", "p", "verdict"],
                [[t.alternative, t.R, t.p, t.verdict] for t in fit.tests],
            ),
            '<p class="muted">R &gt; 0 favours the power law, R &lt; 0 the alternative; the sign counts only '
            f"when p &lt; {LR_SIGNIFICANCE} (Clauset, Shalizi &amp; Newman 2009). Fitted with the powerlaw "
            "package, discrete data.</p>",
            img("artist_power_law", "CCDF of rows per artist with fitted power law, lognormal, exponential"),
        ]
    )


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
