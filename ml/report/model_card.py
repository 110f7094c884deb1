"""The model card of a training run: results table, search results, embedding plots (Markdown + PNG).

The plots are t-SNE maps (scikit-learn) of the most played tracks' normalized vectors, coloured by
the keyword of the playlist names they appear in (rock, rap, country, ...) and, on generated data,
by the latent taste community from the generator's sidecar (`<RAW_CSV stem>.tracks.parquet`,
joined on trimmed, lower-cased names); without a sidecar (the real file) that plot is skipped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml import warehouse as wh
from ml.cold_start_eval import cold_start_table
from ml.config import Paths
from ml.data.generate import sidecar_path
from ml.evaluate import results_table
from ml.marts_parquet import open_marts
from ml.rankers import VectorModel
from ml.report.search_report import ablation_table, search_plot, search_table

N_PLOT_TRACKS = 2000
# Checked in order; a playlist name takes the first keyword it contains.
KEYWORDS: tuple[tuple[str, str], ...] = (
    ("christmas", r"christmas|xmas|navidad"),
    ("rap", r"\brap\b|hip[ -]?hop|trap\b"),
    ("metal", r"metal"),
    ("punk", r"punk"),
    ("rock", r"rock"),
    ("country", r"country"),
    ("jazz", r"jazz"),
    ("classical", r"classical|klassik|piano"),
    ("electronic", r"electro|\bedm\b|house|techno|trance|dance|dubstep"),
    ("indie", r"indie"),
    ("folk", r"folk|acoustic"),
    ("soul/r&b", r"soul|r&b|\brnb\b|funk"),
    ("reggae", r"reggae|ska\b"),
    ("chill", r"chill|relax|sleep|study"),
    ("pop", r"\bpop\b"),
    ("party", r"party|workout|gym|running"),
)


def build_model_card(
    run_dir: Path,
    *,
    paths: Paths,
    data: Any,
    model: VectorModel,
    metrics: dict[str, Any],
    search_rows: list[dict[str, Any]],
    params: Any,
    fit_info: dict[str, Any],
    timings: dict[str, float],
    progress: bool = True,
    seed: int = 0,
    n_plot_tracks: int = N_PLOT_TRACKS,
    metric: str = "hr@10",
) -> Path:
    """Write model_card.md (and its PNG plots) into run_dir; returns the card's path."""
    plots, note = _embedding_plots(run_dir, paths, data, model, seed, n_plot_tracks)
    lines = _head_lines(run_dir, metrics, search_rows, params, fit_info)
    if search_plot(search_rows, run_dir / "search.png", metric):
        lines += ["![search](search.png)", ""]
    lines += [
        "## Ablation (valid sample)",
        "",
        ablation_table(search_rows, metric),
        "",
        "## Embedding",
        "",
    ]
    for title, png in plots:
        lines += [f"### {title}", "", f"![{title}]({png})", ""]
    if note:
        lines += [f"_{note}_", ""]
    lines += _tail_lines(timings)
    card = run_dir / "model_card.md"
    card.write_text("\n".join(lines))
    return card


def _embedding_plots(
    run_dir: Path, paths: Paths, data: Any, model: VectorModel, seed: int, n_plot_tracks: int
) -> tuple[list[tuple[str, str]], str]:
    """t-SNE maps of the most played known tracks: (title, png) pairs and a note on what is missing."""
    counts = np.bincount(data.train.values, minlength=data.n_tracks)
    rows = np.flatnonzero(model.known[np.argsort(-counts, kind="stable")])
    top_tracks = np.argsort(-counts, kind="stable")[rows[:n_plot_tracks]]
    top_tracks = top_tracks[counts[top_tracks] > 0]
    plots: list[tuple[str, str]] = []
    note = ""
    if len(top_tracks) >= 20:
        coords = _tsne(model.normed[model.row_of_track[top_tracks]], seed)
        track_ids = data.track_ids[top_tracks]
        keywords = track_keywords(paths.marts, track_ids)
        _scatter(
            coords,
            keywords,
            run_dir / "embedding_keywords.png",
            "t-SNE of track vectors, coloured by playlist-name keyword",
        )
        plots.append(("Playlist-name keywords", "embedding_keywords.png"))
        tastes = track_tastes(paths, track_ids)
        if tastes is not None:
            _scatter(
                coords,
                tastes,
                run_dir / "embedding_taste.png",
                "t-SNE of track vectors, coloured by the generator's latent taste",
            )
            plots.append(("Latent taste (generator sidecar)", "embedding_taste.png"))
        else:
            note = "No generator sidecar next to RAW_CSV (real data?): the latent-taste plot is skipped."
    else:
        note = "Too few tracks for an embedding plot."
    return plots, note


def _head_lines(
    run_dir: Path,
    metrics: dict[str, Any],
    search_rows: list[dict[str, Any]],
    params: Any,
    fit_info: dict[str, Any],
) -> list[str]:
    return [
        f"# Model card: track2vec run `{run_dir.name}`",
        "",
        "Playlist continuation: given the tracks of a playlist, rank tracks to add. Trained with gensim",
        "Word2Vec on the train split of `ml_playlist_splits` (a playlist is a set: fresh shuffled order",
        "per epoch); scored by `ml/knn.py`, the same rule the exported model serves: the query is the",
        "mean of the seeds' rows of a query table Q, every track's score its inner product with its row",
        "of an item matrix I, seeds excluded. " + _rule_text(params),
        "",
        f"**{metrics.get('selection', '')}**",
        "",
        "## Selected configuration",
        "",
        f"`{params.label()}`; vocabulary {fit_info.get('vocab_size', 0):,} tracks; refit "
        f"{fit_info.get('seconds', 0):.1f}s at {fit_info.get('words_per_s_per_worker', 0):,.0f} words/s per worker "
        f"({fit_info.get('workers', 1)} workers).",
        "",
        "## Results (test split unless marked)",
        "",
        "Protocol: query = all seed tracks of a valid/test playlist, targets = its held-out tracks.",
        "`hr@k` = share of held-out tracks in the top k (recall@k), averaged over playlists; `ndcg@10`",
        "binary; `mrr` within the top 100; `coverage@10` = distinct recommended tracks / train catalogue;",
        "`oov_share` = held-out tracks the method cannot recommend. `last_item_hr@100` is the seed",
        "recipe's own protocol (second-to-last track -> last track, by file position, i.e. alphabetical):",
        "shown for comparison only, never used for selection.",
        "",
        results_table(metrics),
        "",
        *_cold_start_lines(metrics),
        "Every method on the whole valid split (the honest-selection comparison):",
        "",
        _valid_table(metrics),
        "",
        "## Search (successive halving on growing train samples, TPE proposals; valid sample)",
        "",
        search_table(search_rows) if search_rows else "_No search in this run (`--no-search`)._",
        "",
    ]


def _cold_start_lines(metrics: dict[str, Any]) -> list[str]:
    """Cold start from a playlist's name (docs/cold_start.md), when the run has it."""
    if "name_only" not in metrics:
        return []
    sel = metrics["name_only"]["selected"]
    cover = metrics["name_only"].get("name_coverage", {})
    chosen = ", ".join(f"{k} {v}" for k, v in sel.items())
    return [
        "## Cold start from a playlist's name",
        "",
        "Name only: a valid/test playlist given by its name alone (no seed track); every one of its",
        "tracks is a target. Name tokens (`ml/name_tokens.py`) are extra rows of the query table,",
        "fitted from the train playlists carrying them and scored by the same inner-product top-k",
        "(`ml/cold_start.py`); a name without a known token (auto playlists, rare words) gets the",
        "popularity list. Name + seeds: the split protocol; the name counts as `worth` seed tracks",
        "(`ml.knn.NameRule`): under per-seed aggregation its own top-M list (shifted by its (M+1)-th",
        "score, like a seed's) is added `worth` times to the seeds' lists; under the mean rule its",
        "mean is mixed into the seeds' mean. The worth is chosen on valid (0 = seeds alone, exactly).",
        "",
        f"Selected on valid: {chosen}; name worth {metrics['name_and_seeds']['worth']:g} seed tracks. "
        f"Playlists with a known name token: test {cover.get('test', 0):.1%}, valid {cover.get('valid', 0):.1%}.",
        "",
        cold_start_table(metrics),
        "",
    ]


def _rule_text(params: Any) -> str:
    rule = getattr(params, "scoring", "cosine")
    prior = getattr(params, "prior", 0.0)
    text = (
        "Q = the input vectors (`wv.vectors`), I = the output layer (`syn1neg`): CBOW's own prediction."
        if rule == "output"
        else "Q = I = the L2-normalized input vectors (cosine)."
    )
    if prior:
        text += (
            f" Plus a popularity prior: one more column, 1 in Q and {prior:g} * log(train playlists) in I."
        )
    per_seed = int(getattr(params, "per_seed", 0) or 0)
    if per_seed:
        text += (
            f" Per-seed aggregation (ml.knn): each seed's row of Q is one query, its top {per_seed} items"
            f" get their score minus its {per_seed + 1}th, summed per item over the seeds."
        )
    else:
        text += " The query is the mean of the seeds' rows of Q."
    return text


def _valid_table(metrics: dict[str, Any]) -> str:
    rows = [("track2vec (selected)", metrics["valid"])] + list(metrics.get("baselines_valid", {}).items())
    cols = ("hr@10", "hr@100", "ndcg@10", "oov_share")
    body = [f"| {n} | " + " | ".join(f"{m.get(c, 0):.4f}" for c in cols) + " |" for n, m in rows]
    return "\n".join(["| method, valid | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols), *body])


def _tail_lines(timings: dict[str, float]) -> list[str]:
    return [
        "## Timings (s)",
        "",
        ", ".join(
            f"{k} {v:.1f}" for k, v in timings.items() if isinstance(v, float) and k != "test_playlists_per_s"
        ),
        "",
        "## Caveats",
        "",
        "- Selection uses a sample of train playlists; the refit uses the whole train split.",
        "- gensim with more than one worker thread is not bit-for-bit reproducible.",
        "- Offline metrics on generated data measure how well the model recovers the generator's",
        "  structure; compare methods only on the same file and split.",
        "",
    ]


def keyword_of(name: str) -> str | None:
    """The first keyword a playlist name contains (case-insensitive), or None."""
    low = name.lower()
    for keyword, pattern in KEYWORDS:
        if re.search(pattern, low):
            return keyword
    return None


def track_keywords(duckdb_path: Path, track_ids: np.ndarray) -> np.ndarray:
    """Most common keyword among the names of the playlists containing each track ('none' if any)."""
    con = open_marts(duckdb_path)
    try:
        for relation in (wh.FCT_PLAYLIST_TRACKS, wh.DIM_PLAYLISTS):
            wh.check_relation(con, relation)
        con.register("wanted", pd.DataFrame({"track_id": track_ids.astype(str)}))
        names = con.execute(
            """
            select f.track_id, p.playlist_name, count(*) as n
            from fct_playlist_tracks as f
            inner join wanted using (track_id)
            inner join dim_playlists as p using (session_id)
            where not p.is_auto
            group by all
            """
        ).df()
    finally:
        con.close()
    names["keyword"] = names["playlist_name"].map(keyword_of)
    names = names.dropna(subset=["keyword"])
    best = (
        names.groupby(["track_id", "keyword"])["n"]
        .sum()
        .reset_index()
        .sort_values(["track_id", "n", "keyword"], ascending=[True, False, True])
    )
    best = best.drop_duplicates("track_id").set_index("track_id")["keyword"]
    return np.array([best.get(t, "none") for t in track_ids.astype(str)], dtype=object)


def track_tastes(paths: Paths, track_ids: np.ndarray) -> np.ndarray | None:
    """Latent community name of each track from the generator's sidecar, or None without one."""
    sidecar = sidecar_path(paths.raw_csv)
    if not sidecar.exists():
        return None
    con = open_marts(paths.marts)
    try:
        wh.check_relation(con, wh.DIM_TRACKS)
        con.register("wanted", pd.DataFrame({"track_id": track_ids.astype(str)}))
        df = con.execute(
            """
            with side as (
                select lower(trim(artistname)) as a, lower(trim(trackname)) as t, any_value(community_name) as community_name
                from read_parquet(?)
                group by all
            )
            select d.track_id, side.community_name
            from dim_tracks as d
            inner join wanted using (track_id)
            inner join side on side.a = lower(trim(d.artist_name)) and side.t = lower(trim(d.track_name))
            """,
            [str(sidecar)],
        ).df()
    finally:
        con.close()
    lookup = dict(zip(df["track_id"], df["community_name"], strict=True))
    return np.array([lookup.get(t, "unmatched") for t in track_ids.astype(str)], dtype=object)


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(5, (len(x) - 1) // 4)))
    return TSNE(
        n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=750
    ).fit_transform(x)


def _scatter(coords: np.ndarray, labels: np.ndarray, out: Path, title: str, max_labels: int = 12) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.asarray(labels, dtype=object)
    values, counts = np.unique(labels[(labels != "none") & (labels != "unmatched")], return_counts=True)
    shown = list(values[np.argsort(-counts, kind="stable")][:max_labels])
    fig, ax = plt.subplots(figsize=(9, 7), dpi=110)
    rest = ~np.isin(labels, shown)
    ax.scatter(coords[rest, 0], coords[rest, 1], s=4, c="#cccccc", label="other / none", linewidths=0)
    cmap = plt.get_cmap("tab20")
    for i, label in enumerate(shown):
        m = labels == label
        ax.scatter(
            coords[m, 0],
            coords[m, 1],
            s=6,
            color=cmap(i % 20),
            label=f"{label} ({int(m.sum())})",
            linewidths=0,
        )
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=3, frameon=False)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
