"""Hyperparameter search for track2vec: the grid config, seeded random search, trial cache.

Each trial fits gensim on a sample corpus and is scored on a sample of valid playlists under the
split protocol; results are cached per (corpus, valid sample, params, seed) in a JSON-lines file so a
search that was interrupted resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm.auto import tqdm

PARAM_AXES = (
    "sg",
    "window",
    "ns_exponent",
    "negative",
    "sample",
    "epochs",
    "vector_size",
    "min_count",
    "alpha",
)


@dataclass(frozen=True)
class W2VParams:
    """One gensim Word2Vec configuration (negative sampling, no hierarchical softmax)."""

    sg: int = 1
    vector_size: int = 64
    window: int = 25
    negative: int = 10
    ns_exponent: float = 0.0
    sample: float = 1e-4
    epochs: int = 15
    min_count: int = 2
    alpha: float = 0.025
    min_alpha: float = 1e-4
    shuffle: bool = True  # a fresh random order of every playlist per epoch; False = file position order

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def label(self) -> str:
        mode = "sg" if self.sg else "cbow"
        return (
            f"{mode} d={self.vector_size} win={self.window} neg={self.negative} ns={self.ns_exponent:g} "
            f"sample={self.sample:g} ep={self.epochs} minc={self.min_count} alpha={self.alpha:g}"
        )


@dataclass(frozen=True)
class SearchSettings:
    n_trials: int
    train_playlists: int
    valid_playlists: int
    metric: str
    max_sg_pairs: int = 100  # skip skip-gram draws with window * negative above this (cost)


@dataclass(frozen=True)
class GridConfig:
    """ml/grid.yml, parsed and checked."""

    workers: int
    n_orders: int
    defaults: W2VParams
    search: SearchSettings
    grid: dict[str, tuple[Any, ...]]
    seed_recipe: W2VParams
    seed_recipe_min_counts: tuple[int, ...]
    source: str
    plot_tracks: int = 2000  # tracks in the model card's t-SNE maps


def default_grid_path() -> Path:
    return Path(str(resources.files("ml") / "grid.yml"))


def load_grid(path: Path | None = None) -> GridConfig:
    """Read and check a grid file; unknown or missing keys are errors that name the file."""
    path = Path(path) if path is not None else default_grid_path()
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the grid file: {exc}") from exc
    required = {"workers", "corpus", "defaults", "search", "grid", "seed_recipe"}
    if not isinstance(raw, dict) or not required <= set(raw):
        raise ValueError(f"{path}: the grid file needs the keys {sorted(required)}")
    param_names = {f.name for f in fields(W2VParams)}

    def params(section: str, values: dict[str, Any], **extra: Any) -> W2VParams:
        unknown = set(values) - param_names
        if unknown:
            raise ValueError(f"{path}: {section}: unknown parameter(s) {sorted(unknown)}")
        return W2VParams(**{**values, **extra})

    grid = raw["grid"] or {}
    unknown_axes = set(grid) - set(PARAM_AXES)
    if unknown_axes:
        raise ValueError(f"{path}: grid: unknown axis {sorted(unknown_axes)}; axes are {PARAM_AXES}")
    for axis, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{path}: grid.{axis} must be a non-empty list")
    recipe = dict(raw["seed_recipe"])
    min_counts = recipe.pop("min_count", [5])
    min_counts = tuple(int(m) for m in (min_counts if isinstance(min_counts, list) else [min_counts]))
    s = raw["search"]
    return GridConfig(
        workers=int(raw["workers"]),
        n_orders=int(raw["corpus"].get("n_orders", 3)),
        defaults=params("defaults", raw["defaults"]),
        search=SearchSettings(
            n_trials=int(s["n_trials"]),
            train_playlists=int(s["train_playlists"]),
            valid_playlists=int(s["valid_playlists"]),
            metric=str(s.get("metric", "hr@10")),
            max_sg_pairs=int(s.get("max_sg_pairs", 100)),
        ),
        grid={axis: tuple(values) for axis, values in grid.items()},
        seed_recipe=params("seed_recipe", recipe, min_count=min_counts[0], shuffle=False),
        seed_recipe_min_counts=min_counts,
        source=str(path),
        plot_tracks=int((raw.get("report") or {}).get("plot_tracks", 2000)),
    )


def draw_trials(config: GridConfig, seed: int) -> list[W2VParams]:
    """`n_trials` distinct configurations: the defaults first, then a seeded sample of the grid."""
    axes = list(config.grid)
    combos = list(itertools.product(*(config.grid[a] for a in axes)))
    rng = np.random.default_rng(seed)
    trials = [config.defaults]
    seen = {config.defaults.key()}
    for i in rng.permutation(len(combos)):
        if len(trials) >= config.search.n_trials:
            break
        candidate = replace(config.defaults, **dict(zip(axes, combos[int(i)], strict=True)))
        # Skip-gram costs window * negative updates per token: the expensive corner is left out.
        if candidate.sg and candidate.window * candidate.negative > config.search.max_sg_pairs:
            continue
        if candidate.key() not in seen:
            seen.add(candidate.key())
            trials.append(candidate)
    return trials[: max(1, config.search.n_trials)]


@dataclass(frozen=True)
class TrialResult:
    trial: int
    params: W2VParams
    metrics: dict[str, float]
    fit_seconds: float
    eval_seconds: float
    vocab_size: int

    def row(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            **{a: getattr(self.params, a) for a in PARAM_AXES},
            **{k: v for k, v in self.metrics.items()},
            "vocab_size": self.vocab_size,
            "fit_seconds": round(self.fit_seconds, 2),
            "eval_seconds": round(self.eval_seconds, 2),
        }


def run_search(
    trials: list[W2VParams],
    fit_and_score: Any,
    cache_path: Path,
    cache_key: str,
    metric: str,
    progress: bool = True,
) -> list[TrialResult]:
    """Run each trial through `fit_and_score(params) -> (metrics, fit_s, eval_s, vocab)`; cached.

    Returns the trials sorted best first by `metric` (ties by trial number).
    """
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cached: dict[str, dict[str, Any]] = {}
    if cache_path.exists():
        for line in cache_path.read_text().splitlines():
            entry = json.loads(line)
            cached[entry["key"]] = entry
    results = []
    bar = tqdm(trials, desc="search", unit="trial", disable=not progress)
    for i, params in enumerate(bar):
        key = hashlib.sha256((cache_key + params.key()).encode()).hexdigest()
        if key in cached:
            e = cached[key]
            results.append(
                TrialResult(i, params, e["metrics"], e["fit_seconds"], e["eval_seconds"], e["vocab_size"])
            )
            continue
        bar.set_postfix_str(params.label())
        start = time.perf_counter()
        metrics, fit_s, eval_s, vocab = fit_and_score(params)
        result = TrialResult(i, params, metrics, fit_s, eval_s, vocab)
        results.append(result)
        with cache_path.open("a") as fh:
            entry = {
                "key": key,
                "metrics": metrics,
                "fit_seconds": fit_s,
                "eval_seconds": eval_s,
                "vocab_size": vocab,
            }
            fh.write(json.dumps(entry) + "\n")
        bar.write(
            f"trial {i}: {params.label()}  {metric}={metrics[metric]:.4f}  ({time.perf_counter() - start:.0f}s)"
        )
    return sorted(results, key=lambda r: (-r.metrics[metric], r.trial))
