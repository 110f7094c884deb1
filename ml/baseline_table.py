"""The baselines, as rows of a table: each row fits (and, where it has a choice, selects on valid)
one `Ranker`; `run_baselines` scores every row on test under both protocols, like the model.

Adding a baseline = one function `(TrainContext) -> Ranker` and one line in `BASELINES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ml.corpus import PlaylistData
from ml.evaluate import evaluate, evaluate_last_item
from ml.rankers import CoocRanker, PopularityRanker, Ranker
from ml.search import GridConfig
from ml.shapes import EvalSet, Ragged
from ml.taste import TasteCommunityRanker
from ml.word2vec import Track2Vec, sample_min_count


@dataclass(frozen=True)
class TrainContext:
    """What every step of a training run shares: the data, the settings, the samples."""

    data: PlaylistData
    config: GridConfig
    seed: int
    workers: int
    search: bool
    progress: bool
    cache: Path
    popularity: PopularityRanker  # fitted on the whole train split: fallback and catalogue
    communities: Any  # latent community per track (generator sidecar, ml.taste) or None
    rung_samples: tuple[Ragged, ...]  # the search's nested samples of train playlists, one per rung
    valid_sample: EvalSet  # the search's sample of valid playlists

    @property
    def train_sample(self) -> Ragged:
        """The smallest sample (rung 0): the seed recipe's min_count choice fits on it."""
        return self.rung_samples[0]

    @property
    def catalogue(self) -> int:
        return int(self.popularity.known.sum())

    @property
    def sample_fraction(self) -> float:
        return len(self.train_sample) / len(self.data.train)

    def track2vec(self, params: Any, desc: str, **kwargs: Any) -> Track2Vec:
        return Track2Vec(
            params,
            seed=self.seed,
            workers=self.workers,
            cache_dir=self.cache,
            n_orders=self.config.n_orders,
            progress=self.progress,
            desc=desc,
            **kwargs,
        )


def popularity(ctx: TrainContext) -> Ranker:
    return ctx.popularity


def item_cooc_knn(ctx: TrainContext) -> Ranker:
    """Item co-occurrence kNN; normalisation and neighbours are picked on the valid sample, like any
    hyperparameter (the choices and their scores go to `selection`, shown in the model card)."""
    best: CoocRanker | None = None
    best_score = -1.0
    choices = []
    b = ctx.config.baselines
    variants = CoocRanker.variants(
        ctx.data.train, ctx.data.track_ids, b.cooc_normalise, seed=ctx.seed, neighbors=b.cooc_neighbors
    )
    for ranker in variants:
        score = evaluate(ranker, ctx.valid_sample, ctx.catalogue)[0][ctx.config.search.metric]
        choices.append({**ranker.describe(), f"valid_sample_{ctx.config.search.metric}": round(score, 6)})
        if score > best_score:
            best, best_score = ranker, score
    assert best is not None
    best.selection = choices
    return best


def taste_community(ctx: TrainContext) -> Ranker | None:
    """Popularity inside the seeds' majority latent community (generated data only: the sidecar)."""
    if ctx.communities is None:
        return None
    return TasteCommunityRanker(ctx.communities).fit(ctx.data.train, ctx.data.track_ids)


def seed_recipe(ctx: TrainContext) -> Ranker:
    """The tutorial recipe: CBOW over playlists in file order; min_count picked by its own protocol
    (last-item HR@100 on the valid sample), fitted on the search sample; then refit on train."""
    recipe = ctx.config.seed_recipe
    choices: list[dict[str, Any]] = []
    if ctx.search and len(ctx.config.seed_recipe_min_counts) > 1:
        scored: dict[int, float] = {}  # scaled min_count -> its own-protocol score
        for min_count in ctx.config.seed_recipe_min_counts:
            # On a small sample several min_counts scale to the same value: fit that value once.
            scaled = sample_min_count(min_count, ctx.sample_fraction)
            if scaled not in scored:
                trial = ctx.track2vec(replace(recipe, min_count=scaled), f"seed recipe min_count={min_count}")
                trial.fit(ctx.train_sample, ctx.data.track_ids)
                scored[scaled] = evaluate_last_item(trial, ctx.valid_sample, ctx.seed)["last_item_hr@100"]
            choices.append(
                {
                    "min_count": min_count,
                    "on_sample": scaled,
                    "valid_last_item_hr@100": round(scored[scaled], 5),
                }
            )
        # Best score; among equals (same scaled value) the first listed min_count.
        best_choice = max(choices, key=lambda c: c["valid_last_item_hr@100"])
        recipe = replace(recipe, min_count=best_choice["min_count"])
    largest = ctx.rung_samples[-1]
    fraction = len(largest) / len(ctx.data.train)
    on_sample = replace(recipe, min_count=sample_min_count(recipe.min_count, fraction))
    ranker = ctx.track2vec(on_sample, "seed recipe refit", name="seed_recipe", report=("min_count",))
    # Fitted on the search's largest sample (all train playlists on the small presets): on the full
    # preset a refit on everything cost ~7 min of the 15-min budget for a baseline 50x below.
    ranker.fit(largest, ctx.data.track_ids)
    assert ranker.result is not None
    ranker.selection = {
        "params": asdict(recipe),
        "min_count_selection": choices,
        "fit_seconds": round(ranker.result.seconds, 2),
        "train_playlists": len(ctx.rung_samples[-1]),
    }
    return ranker


BASELINES: dict[str, Callable[[TrainContext], Ranker | None]] = {
    "popularity": popularity,
    "item_cooc_knn": item_cooc_knn,
    "taste_community": taste_community,
    "seed_recipe": seed_recipe,
}


def run_baselines(
    ctx: TrainContext,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], dict[str, Ranker]]:
    """Every baseline (that applies) on test, split and last-item protocols, and on the whole valid
    split (split protocol: the honest-selection comparison); test metrics, valid metrics, rankers."""
    metrics: dict[str, dict[str, Any]] = {}
    valid: dict[str, dict[str, Any]] = {}
    fitted: dict[str, Ranker] = {}
    for name, fit in BASELINES.items():
        ranker = fit(ctx)
        if ranker is None:
            continue
        scores, _ = evaluate(ranker, ctx.data.test, ctx.catalogue, last_item_seed=ctx.seed)
        metrics[name] = rounded({**scores, **ranker.describe()})
        valid[name] = rounded(evaluate(ranker, ctx.data.valid, ctx.catalogue)[0])
        fitted[name] = ranker
    return metrics, valid, fitted


def rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}
