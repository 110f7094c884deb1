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
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from ml.config import Paths  # noqa: E402
from ml.warehouse import (  # noqa: E402
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
LR_SIGNIFICANCE = 0.1  # Clauset et al.: below this p the sign of R is taken seriously
MIN_TAIL = 50  # xmin candidates keep at least this many artists in the tail

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


# --- the power law ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LikelihoodRatio:
    alternative: str
    R: float  # log-likelihood ratio power law : alternative; > 0 favours the power law
    p: float  # significance of the sign of R

    @property
    def verdict(self) -> str:
        name = self.alternative
        if self.R > 0 and self.p < LR_SIGNIFICANCE:
            return (
                f"a power law is preferred over {_article(name)} {name} (R = {self.R:.3g}, p = {self.p:.3g})"
            )
        if self.R < 0 and self.p < LR_SIGNIFICANCE:
            return (
                f"a power law is not preferred over {_article(name)} {name}: the {name} fits better "
                f"(R = {self.R:.3g}, p = {self.p:.3g})"
            )
        return (
            f"a power law is not preferred over {_article(name)} {name}: the test cannot tell them apart "
            f"(R = {self.R:.3g}, p = {self.p:.3g} >= {LR_SIGNIFICANCE})"
        )


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


@dataclass(frozen=True)
class PowerLawFit:
    quantity: str
    n: int  # observations
    alpha: float
    sigma: float  # standard error of alpha
    xmin: float
    D: float  # KS distance of the fitted power law to the tail above xmin
    n_tail: int
    tests: tuple[LikelihoodRatio, ...]


class PowerLawUnavailable(ValueError):
    """Too little or too flat data for a power-law fit; the message says why."""


MIN_DISTINCT_VALUES = 5  # a tail needs a few distinct popularity values to fit a slope


def fit_power_law(values: np.ndarray, quantity: str) -> tuple[PowerLawFit, Any]:
    """Discrete power-law fit (xmin by minimum KS distance) and likelihood-ratio tests."""
    import powerlaw

    data = np.asarray(values, dtype=float)
    data = data[data > 0]
    distinct = len(np.unique(data))
    if distinct < MIN_DISTINCT_VALUES:
        raise PowerLawUnavailable(
            f"{len(data):,} artists with only {distinct} distinct value(s) of {quantity} "
            f"(at least {MIN_DISTINCT_VALUES} needed): no tail to fit"
        )
    # Keep at least MIN_TAIL observations above any candidate xmin: tails of a handful of artists
    # give meaningless fits and dominate the running time on the full file.
    upper = np.sort(data)[-MIN_TAIL] if len(data) > MIN_TAIL else data.max()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            fit = powerlaw.Fit(data, discrete=True, xmin=(data.min(), upper), verbose=False)
            tests = []
            for alternative in ("lognormal", "exponential"):
                R, p = fit.distribution_compare("power_law", alternative, normalized_ratio=False)
                tests.append(LikelihoodRatio(alternative=alternative, R=float(R), p=float(p)))
        except (ValueError, ZeroDivisionError, FloatingPointError) as err:
            raise PowerLawUnavailable(f"the fit failed on {len(data):,} artists: {err}") from err
    pl = fit.power_law
    if not (np.isfinite(pl.alpha) and all(np.isfinite([t.R, t.p]).all() for t in tests)):
        raise PowerLawUnavailable(f"the fit on {len(data):,} artists gave no finite alpha / R / p")
    return (
        PowerLawFit(
            quantity=quantity,
            n=len(data),
            alpha=float(pl.alpha),
            sigma=float(pl.sigma),
            xmin=float(fit.xmin),
            D=float(pl.D),
            n_tail=int((data >= fit.xmin).sum()),
            tests=tuple(tests),
        ),
        fit,
    )


# --- plots --------------------------------------------------------------------------------------


def _log_bins(values: np.ndarray, per_decade: int = 8) -> np.ndarray:
    top = max(float(values.max()), 2.0)
    n = max(int(math.ceil(math.log10(top) * per_decade)), 1)
    edges = np.unique(np.floor(np.logspace(0, math.log10(top + 1), n + 1)))
    return np.append(edges, edges[-1] + 1) if len(edges) < 2 else edges


def _plain_log_axes(ax: Any) -> None:
    """Log axes labelled 1, 10, 100, 0.01 instead of 10^k and 6x10^0 minor labels."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    def minor(v: float, _: int) -> str:  # 2x and 5x labels, for axes spanning few decades
        lead = round(v / 10 ** math.floor(math.log10(v)), 6) if v > 0 else 0
        return f"{v:,.10g}" if lead in (2, 5) else ""

    for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() == "log":
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.10g}"))
            few_decades = limits[0] > 0 and math.log10(limits[1] / limits[0]) < 2.5
            axis.set_minor_formatter(FuncFormatter(minor) if few_decades else NullFormatter())


def _log_histogram(values: np.ndarray, path: Path, title: str, xlabel: str, ylabel: str) -> Path:
    """Log-spaced bins, each bar's height divided by its width so the shape is not bent by the bins."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    bins = _log_bins(values)
    counts, edges = np.histogram(values, bins=bins)
    widths = np.diff(edges)
    ax.bar(
        edges[:-1],
        counts / widths,
        width=widths,
        align="edge",
        color="#3b6ea5",
        edgecolor="white",
        linewidth=0.5,
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_axes(ax)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    median = float(np.median(values))
    ax.axvline(median, color="#c0392b", linestyle="--", linewidth=1, label=f"median {median:g}")
    ax.legend(frameon=False)
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _playlist_sizes_plot(sizes: np.ndarray, auto: np.ndarray, path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    bins = _log_bins(sizes)
    left.hist(
        [sizes[~auto], sizes[auto]],
        bins=bins,
        stacked=True,
        color=["#3b6ea5", "#e69f00"],
        label=["named by the user", "auto (Starred, Liked from Radio)"],
        edgecolor="white",
        linewidth=0.5,
    )
    left.set_xscale("log")
    left.set_yscale("log")
    _plain_log_axes(left)
    left.set_title("Playlist sizes (distinct tracks per session)")
    left.set_xlabel("tracks in the playlist session")
    left.set_ylabel("sessions per bin")
    left.legend(frameon=False, fontsize=8)
    left.grid(True, alpha=0.3)
    ordered = np.sort(sizes)
    ccdf = 1.0 - np.arange(len(ordered)) / len(ordered)
    right.loglog(ordered, ccdf, color="#3b6ea5", linewidth=1.5)
    for q in (0.5, 0.9, 0.99):
        v = float(np.quantile(sizes, q))
        right.axvline(v, color="grey", linestyle=":", linewidth=1)
        right.text(v, 1.0, f" p{int(q * 100)}={v:g}", rotation=90, va="top", fontsize=8, color="grey")
    _plain_log_axes(right)
    right.set_title("Share of sessions with at least x tracks (CCDF)")
    right.set_xlabel("tracks in the playlist session")
    right.set_ylabel("P(size >= x)")
    right.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _power_law_plot(fit: Any, result: PowerLawFit, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=110)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        fit.plot_ccdf(ax=ax, color="#333333", linewidth=2, label="artists (tail above xmin)")
        fit.power_law.plot_ccdf(
            ax=ax, color="#c0392b", linestyle="--", label=f"power law, alpha={result.alpha:.2f}"
        )
        fit.lognormal.plot_ccdf(ax=ax, color="#2e86c1", linestyle=":", label="lognormal")
        fit.exponential.plot_ccdf(ax=ax, color="#7f8c8d", linestyle="-.", label="exponential")
    # the exponential's CCDF plunges by many decades: keep the axis on the data's range
    ax.set_ylim(bottom=0.3 / max(result.n_tail, 1), top=1.5)
    _plain_log_axes(ax)
    ax.set_title(f"Artist popularity ({result.quantity}): tail above xmin={result.xmin:g}")
    ax.set_xlabel(result.quantity)
    ax.set_ylabel("P(X >= x | x >= xmin)")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


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
        "<h2>Ingestion accounting</h2>",
        _table(
            ["lines", "count", "share of data lines"],
            [
                ["data lines (header excluded)", ingestion.data_lines, 1.0],
                ["loaded (staged rows)", ingestion.loaded, _share(ingestion.loaded, ingestion.data_lines)],
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
