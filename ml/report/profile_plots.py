"""The PNG plots of `ml report data` (matplotlib, files only)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from ml.report.power_law import PowerLawFit  # noqa: E402


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
