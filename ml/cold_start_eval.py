"""Choosing and scoring the name model on valid/test (docs/cold_start.md): the metrics.json blocks.

Name only: a valid/test playlist given by its name alone, no seed track, every one of its tracks a
target (`EvalSet.cold`), against popularity and name-keyword popularity. Name + seeds: the split
protocol (seeds given, held-out tracks the targets) against the seeds alone. Everything is chosen
on valid; test is scored once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np

from ml.baselines import popularity_counts
from ml.cold_start import (
    METHODS,
    KeywordPopularityRanker,
    NameModel,
    NameVectorRanker,
    fit_name_model,
    name_token_lists,
    token_rows,
    track_prior,
)
from ml.evaluate import evaluate_ranking, hit_matrix
from ml.rankers import VectorRanker
from ml.shapes import K_MAX, EvalSet, Ragged

MIN_PLAYLISTS = (2, 5)  # a token needs this many train playlists (chosen on valid)
BETAS = (0.0, 0.25, 0.5, 1.0, 2.0)  # query_mean: weight of the prior column
IDF = (0.0, 1.0, 2.0)  # query_mean: power of a token's idf weighing it in a name's mean
ALPHAS = (0.1, 1.0)  # ridge: penalty, times trace(I'I) / (dim + 1)
# name + tracks: the name counts as this many seed tracks. Steps of x4 up to 128: under per-seed
# aggregation the name's list is in the name space's units (cosine + beta * prior) and a seed's in
# the track rule's (e.g. output-layer inner products), so the weight that balances them need not be
# near 1; valid chooses.
WORTHS = (0.0, 0.5, 2.0, 8.0, 32.0, 128.0)


def evaluate_named(ranker: Any, eval_set: EvalSet, catalogue: int, k: int = K_MAX) -> dict[str, float]:
    """Split-protocol metrics of a name-aware ranker on `eval_set` (its names and seeds)."""
    assert eval_set.names is not None, "the eval set carries no names"
    ranking = ranker.rank_named(list(eval_set.names), eval_set.seeds, k)
    return evaluate_ranking(ranking, eval_set, ranker.known, catalogue)


def name_coverage(eval_set: EvalSet, names: NameModel) -> float:
    """Share of playlists with at least one token known to the name table."""
    assert eval_set.names is not None
    rows = token_rows(name_token_lists(list(eval_set.names)), names.index)
    return float(np.mean(rows.lengths > 0)) if len(rows) else 0.0


@dataclass(frozen=True)
class NameSelection:
    ranker: NameVectorRanker
    keyword: KeywordPopularityRanker
    trials: list[dict[str, Any]]  # every (method, params) tried, valid name-only HR@10
    worths: list[dict[str, Any]]  # every worth tried, valid name+seeds HR@10, which was chosen


def _grid(methods: Sequence[str], artists: bool) -> list[tuple[str, int, dict[str, Any]]]:
    out: list[tuple[str, int, dict[str, Any]]] = []
    for method, min_pl in product(methods, MIN_PLAYLISTS):
        if method == "query_mean":
            for use, w, b in product((False, True) if artists else (False,), IDF, BETAS):
                out.append((method, min_pl, {"beta": b, "idf": w, "artists": use}))
        else:
            out += [(method, min_pl, {"alpha": a, "artists": False}) for a in ALPHAS]
    return out


def select_name_model(
    base: VectorRanker,
    train: Ragged,
    train_names: Sequence[str],
    valid: EvalSet,
    catalogue: int,
    metric: str = "hr@10",
    methods: Sequence[str] = METHODS,
    track_artists: Sequence[str] | None = None,
) -> NameSelection:
    """Fit name rows for every point of the grid and keep the best on valid (name only; the first
    listed among equals); then the name's worth for name + tracks on valid (seeds given; 0, the
    seeds alone, unless another beats it by a standard error: `_select_worth`). Also fits the keyword-popularity baseline, its min_playlists
    chosen on valid the same way. With `track_artists` (artist name per global track), rows from
    artist names are a candidate too (ml.cold_start.fit_name_model)."""
    assert base.model is not None and valid.names is not None
    counts = popularity_counts(train, len(base.model.row_of_track))
    prior = track_prior(counts)
    items = np.hstack([base.model.items, prior[base.model.track_of_row, None]])  # [I | prior]
    train_tokens = name_token_lists(train_names)
    train_rows = train.map_values(base.model.row_of_track)
    cold = valid.cold()
    trials: list[dict[str, Any]] = []
    best: tuple[float, NameVectorRanker] | None = None
    item_tokens = (
        name_token_lists([track_artists[int(t)] for t in base.model.track_of_row])
        if track_artists is not None
        else None
    )
    for method, min_pl, kw in _grid(methods, item_tokens is not None):
        artists = kw.pop("artists")
        names = fit_name_model(
            base.model.query,
            items,
            train_rows,
            train_tokens,
            method,
            min_pl,
            item_tokens=item_tokens if artists else None,
            **kw,
        )
        ranker = NameVectorRanker(base, prior, names)
        score = evaluate_named(ranker, cold, catalogue)[metric]
        trials.append(
            {**names.params, "artist_tokens": artists, f"valid_name_only_{metric}": round(score, 6)}
        )
        if best is None or score > best[0]:
            best = (score, ranker)
    assert best is not None
    chosen = best[1]
    worths: list[dict[str, Any]] = []
    chosen.names = chosen.names.with_worth(_select_worth(chosen, valid, metric, worths))
    keyword = max(
        (KeywordPopularityRanker(m).fit(train, train_tokens, len(counts)) for m in MIN_PLAYLISTS),
        key=lambda r: evaluate_named(r, cold, catalogue)[metric],
    )
    return NameSelection(chosen, keyword, trials, worths)


def _select_worth(ranker: NameVectorRanker, valid: EvalSet, metric: str, rows: list[dict[str, Any]]) -> float:
    """The name's worth for name + seeds, by the one-standard-error rule against the seeds alone:
    the best worth on valid is kept only when its per-playlist gain over worth 0 exceeds one
    standard error of that gain (paired over the valid playlists); else 0. A few hundred valid
    playlists (the small preset) move HR@10 by more than the name adds beside 15 seeds."""
    k = int(metric.split("@")[1]) if "@" in metric else 10
    per: dict[float, np.ndarray] = {}
    for worth in WORTHS:
        ranker.names = ranker.names.with_worth(worth)
        ranking = ranker.rank_named(list(valid.names), valid.seeds, K_MAX)
        per[worth] = per_playlist_recall(ranking, valid, k)
        rows.append({"worth": worth, f"valid_name_and_seeds_{metric}": round(float(per[worth].mean()), 6)})
    base = per[WORTHS[0]]
    best = max(WORTHS, key=lambda w: per[w].mean())
    gain = per[best] - base
    se = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else np.inf
    for row in rows:
        row["chosen"] = False
    chosen = best if gain.mean() > se else WORTHS[0]
    rows[WORTHS.index(chosen)]["chosen"] = True
    rows[WORTHS.index(best)]["gain_over_seeds"] = round(float(gain.mean()), 6)
    rows[WORTHS.index(best)]["gain_standard_error"] = round(se, 6)
    return chosen


def per_playlist_recall(ranking: Any, eval_set: EvalSet, k: int) -> np.ndarray:
    """Each playlist's share of held-out tracks in the top k (HR@k before the mean)."""
    n = eval_set.holdouts.lengths
    keep = n > 0
    hits = hit_matrix(ranking.tracks, eval_set.holdouts)[keep]
    return hits[:, :k].sum(axis=1) / n[keep]


# --- the metrics.json blocks --------------------------------------------------------------------

SHOWN = ("hr@10", "hr@100", "ndcg@10", "mrr", "coverage@10", "fallback_share")


def cold_start_blocks(
    selection: NameSelection,
    popularity: Any,
    splits: dict[str, EvalSet],
    seeds_only: dict[str, dict[str, Any]],
    catalogue: int,
) -> dict[str, dict[str, Any]]:
    """`name_only` and `name_and_seeds` for metrics.json: the model and its baselines per split.

    popularity: a fitted `PopularityRanker`; seeds_only: the track model's own metrics per split
    (the same playlists and protocol, the name ignored).
    """
    ranker = selection.ranker
    name_only: dict[str, Any] = {"baselines": {"popularity": {}, "name_keyword_popularity": {}}}
    name_and_seeds: dict[str, Any] = {"baselines": {"seeds_only": {}}}
    for split, eval_set in splits.items():
        cold = eval_set.cold()
        name_only[split] = _rounded(evaluate_named(ranker, cold, catalogue))
        name_only["baselines"]["popularity"][split] = _rounded(
            evaluate_ranking(popularity.rank(cold.seeds, K_MAX), cold, popularity.known, catalogue)
        )
        name_only["baselines"]["name_keyword_popularity"][split] = _rounded(
            evaluate_named(selection.keyword, cold, catalogue)
        )
        name_only.setdefault("name_coverage", {})[split] = round(name_coverage(eval_set, ranker.names), 6)
        name_and_seeds[split] = _rounded(evaluate_named(ranker, eval_set, catalogue))
        # Rounded as the blocks' own figures, so a worth of 0 (the seeds alone) compares equal.
        name_and_seeds["baselines"]["seeds_only"][split] = _rounded(
            {k: v for k, v in seeds_only[split].items() if not k.startswith("last_item")}
        )
    name_only["selected"] = {**ranker.names.params, "n_tokens": len(ranker.names.keys)}
    name_only["baselines"]["name_keyword_popularity"]["min_playlists"] = selection.keyword.min_playlists
    name_only["selection"] = selection.trials
    name_and_seeds["worth"] = ranker.names.worth
    name_and_seeds["selection"] = selection.worths
    return {"name_only": name_only, "name_and_seeds": name_and_seeds}


def cold_start_table(metrics: dict[str, Any], columns: tuple[str, ...] = SHOWN) -> str:
    """Markdown: name only vs popularity and name-keyword popularity; name + seeds vs seeds only."""
    name_only, both = metrics["name_only"], metrics["name_and_seeds"]
    rows = []
    for split in ("test", "valid"):
        rows += [
            (f"name only: track2vec + name tokens, {split}", name_only[split]),
            (
                f"name only: name-keyword popularity, {split}",
                name_only["baselines"]["name_keyword_popularity"][split],
            ),
            (f"name only: popularity, {split}", name_only["baselines"]["popularity"][split]),
            (f"name + seeds (name worth {both['worth']:g} seeds), {split}", both[split]),
            (f"seeds only, {split}", both["baselines"]["seeds_only"][split]),
        ]
    head = "| method | " + " | ".join(columns) + " |"
    sep = "|---|" + "---:|" * len(columns)
    body = [
        f"| {name} | "
        + " | ".join(f"{m[c]:.4f}" if isinstance(m.get(c), float) else "" for c in columns)
        + " |"
        for name, m in rows
    ]
    return "\n".join([head, sep, *body])


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}
