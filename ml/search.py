"""Hyperparameter search for track2vec: the grid config, and a budget-aware search with Optuna.

Successive halving on growing samples, with Optuna's seeded TPE sampler proposing the configurations:
rung 0 fits `n_trials` configurations (the defaults first) on a small seeded sample of the train
playlists; the best 1/`reduction_factor` go on to rung 1, fitted on a larger sample, and so on; the
best of the last rung is refit on the whole train split by `ml train`. Every fit is scored on a
seeded sample of valid playlists (split protocol) under each scoring rule of `scoring:` (cosine or
the output layer, with or without a popularity prior; the mean query, or per-seed aggregation with
each M of `scoring.per_seed`, ml.knn): those cost matrix products, not fits.
Each rung is an Optuna study in one journal file (`JournalFileBackend`): a search that was
interrupted resumes where it stopped, and finished trials are never fitted again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

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
    "fold_rare",
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
    shrink_windows: bool = True  # gensim's default; False: every window covers `window` tracks each side
    scoring: str = "cosine"  # ml.rankers.knn_tables: "cosine" or "output" (the output layer)
    prior: float = 0.0  # weight of the log-popularity column of the item matrix (0: none)
    per_seed: int = 0  # ml.knn's rule: 0 the mean query, M > 0 per-seed aggregation (top M per seed)
    fold_rare: bool = False  # ml.fold: train tracks below min_count get rows from their playlist mates

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def fit_cost(self, tokens: int) -> float:
        """The float updates of fitting `tokens` corpus tokens per epoch (before sub-sampling), a
        machine-independent cost: skip-gram updates `negative + 1` output rows per context track and
        a context row for each, CBOW the context mean, `negative + 1` output rows and the context
        rows once per centre track; each row is `vector_size` floats. `search.max_refit_cost` caps it."""
        reach = self.window if not self.shrink_windows else (self.window + 1) / 2  # mean tracks each side
        per_token = 4 * reach * (self.negative + 1) if self.sg else 4 * reach + 2 * (self.negative + 1)
        return float(tokens) * self.epochs * per_token * self.vector_size

    def label(self) -> str:
        mode = "sg" if self.sg else "cbow"
        return (
            f"{mode} d={self.vector_size} win={self.window} neg={self.negative} ns={self.ns_exponent:g} "
            f"sample={self.sample:g} ep={self.epochs} minc={self.min_count}{'+fold' if self.fold_rare else ''} "
            f"alpha={self.alpha:g} "
            f"{self.scoring}{f'+{self.prior:g}prior' if self.prior else ''}"
            f"{f' seed{self.per_seed}' if self.per_seed else ' mean'}"
        )


@dataclass(frozen=True)
class SearchSettings:
    n_trials: int  # configurations fitted on rung 0 (the defaults are the first)
    rungs: tuple[int, ...]  # train playlists per rung (all of them when fewer)
    valid_playlists: int
    metric: str
    reduction_factor: int = 3  # the best 1/reduction_factor of a rung go on to the next
    startup_trials: int = 5  # random draws before TPE models the results
    max_sg_pairs: int = 100  # skip-gram draws with window * negative above this are not fitted (cost)
    oov_slack: float = 1.0  # a fit whose valid oov_share exceeds the train tracks' by more ranks last
    max_refit_cost: float = 0.0  # W2VParams.fit_cost of a refit on the whole train split above this:
    # not fitted, and ranked below every fit within it (0: no cap)
    rules: tuple[str, ...] = ("cosine",)  # scoring rules every fit is scored under
    priors: tuple[float, ...] = (0.0,)  # popularity-prior weights every fit is scored with
    per_seed: tuple[int, ...] = ()  # per-seed M every fit is also scored with (each rule, prior 0)

    def variants(self) -> list[tuple[str, float, int]]:
        """(rule, prior, per_seed M) every fit is scored under: the mean query with each rule and
        prior, then per-seed aggregation with each rule and M (prior 0: cost)."""
        mean = [(r, w, 0) for r in self.rules for w in self.priors]
        return mean + [(r, 0.0, m) for r in self.rules for m in self.per_seed if m > 0]

    @property
    def train_playlists(self) -> int:
        return self.rungs[0]


@dataclass(frozen=True)
class BaselineSettings:
    cooc_normalise: tuple[str, ...] = ("cosine", "none")  # item_cooc_knn choices, picked on valid
    cooc_neighbors: tuple[int, ...] = (50, 200)


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
    baselines: BaselineSettings = BaselineSettings()


def default_grid_path() -> Path:
    return Path(str(resources.files("ml") / "grid.yml"))


def load_grid(path: Path | None = None) -> GridConfig:
    """Read and check a grid file; unknown or missing keys are errors that name the file."""
    path = Path(path) if path is not None else default_grid_path()
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the grid file: {exc}") from exc
    required = {"workers", "corpus", "defaults", "search", "grid", "seed_recipe", "scoring"}
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
    s, scoring = raw["search"], raw["scoring"] or {}
    cooc = (raw.get("baselines") or {}).get("item_cooc_knn") or {}
    rungs = s["rungs"] if isinstance(s.get("rungs"), list) else [s.get("rungs", 20000)]
    rules = tuple(str(r) for r in scoring.get("rules", ["cosine"]))
    if not set(rules) <= {"cosine", "output"}:
        raise ValueError(f"{path}: scoring.rules must be cosine and/or output, not {list(rules)}")
    return GridConfig(
        workers=int(raw["workers"]),
        n_orders=int(raw["corpus"].get("n_orders", 3)),
        defaults=params("defaults", raw["defaults"]),
        search=SearchSettings(
            n_trials=int(s["n_trials"]),
            rungs=tuple(int(r) for r in rungs),
            valid_playlists=int(s["valid_playlists"]),
            metric=str(s.get("metric", "hr@10")),
            reduction_factor=int(s.get("reduction_factor", 3)),
            startup_trials=int(s.get("startup_trials", 5)),
            max_sg_pairs=int(s.get("max_sg_pairs", 100)),
            oov_slack=float(s.get("oov_slack", 1.0)),
            max_refit_cost=float(s.get("max_refit_cost", 0.0)),
            rules=rules,
            priors=tuple(float(w) for w in scoring.get("priors", [0.0])),
            per_seed=tuple(int(m) for m in scoring.get("per_seed", [])),
        ),
        grid={axis: tuple(values) for axis, values in grid.items()},
        seed_recipe=params(
            "seed_recipe",
            recipe,
            min_count=min_counts[0],
            shuffle=False,
            scoring="cosine",
            prior=0.0,
            per_seed=0,
        ),
        seed_recipe_min_counts=min_counts,
        source=str(path),
        plot_tracks=int((raw.get("report") or {}).get("plot_tracks", 2000)),
        baselines=BaselineSettings(
            cooc_normalise=tuple(str(n) for n in cooc.get("normalise", ["cosine", "none"])),
            cooc_neighbors=tuple(int(m) for m in cooc.get("neighbors", [50, 200])),
        ),
    )


@dataclass(frozen=True)
class Scored:
    """One fit scored on the valid sample: the best (rule, prior) and every variant's metric."""

    metrics: dict[str, float]  # the best variant's metrics
    scoring: str
    prior: float
    variants: dict[str, float]  # "output+0.5" (mean query), "output+0/seed50" (per-seed) -> metric
    fit_seconds: float
    eval_seconds: float
    vocab_size: int
    covered: bool = True  # oov_share within `search.oov_slack` of the sample's train tracks
    per_seed: int = 0  # the best variant's ml.knn rule (0: the mean query)
    refit_cost: float = 0.0  # W2VParams.fit_cost of its refit on the whole train split (0: not known)
    within_budget: bool = True  # refit_cost <= search.max_refit_cost (or no cap)

    def objective(self, metric: str) -> float:
        """What the search maximizes: the metric, minus 1 when the fit misses the coverage target
        and minus 2 when its refit would exceed the budget (so a configuration within the budget
        always ranks above one that is not, and a covering one above one that is not)."""
        return self.metrics[metric] - (0.0 if self.covered else 1.0) - (0.0 if self.within_budget else 2.0)


@dataclass(frozen=True)
class TrialResult:
    trial: int  # Optuna trial number of rung 0
    params: W2VParams  # with the best scoring rule and prior of its last rung
    rung: int  # the last rung it was fitted on
    scores: tuple[float, ...]  # metric per rung reached
    runs: tuple[Scored, ...]  # the scored fit of each rung reached

    @property
    def value(self) -> float:
        return self.scores[-1]

    @property
    def last(self) -> Scored:
        return self.runs[-1]

    def row(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "rung": self.rung,
            **{a: getattr(self.params, a) for a in PARAM_AXES},
            "scoring": self.params.scoring,
            "prior": self.params.prior,
            "per_seed": self.params.per_seed,
            **{f"rung{r}": v for r, v in enumerate(self.scores)},
            **self.last.metrics,
            **{f"rung0 {k}": v for k, v in self.runs[0].variants.items()},
            "vocab_size": self.last.vocab_size,
            "covered": self.last.covered,
            "refit_cost": float(f"{self.last.refit_cost:.3g}"),
            "within_budget": self.last.within_budget,
            "fit_seconds": round(self.last.fit_seconds, 2),
            "eval_seconds": round(self.last.eval_seconds, 2),
        }


@dataclass
class SearchOutcome:
    results: list[TrialResult]  # best first: last rung reached, then its score, then trial number
    study_file: Path | None = None
    skipped: int = 0  # draws not fitted (skip-gram cost cap, or a projected refit over the budget)
    rung_sizes: tuple[int, ...] = field(default_factory=tuple)

    @property
    def best(self) -> TrialResult:
        return self.results[0]


FitAndScore = Callable[[W2VParams, int], Scored]  # (params, rung) -> scored fit
Project = Callable[[W2VParams], float]  # params -> W2VParams.fit_cost of its refit on the whole train split


def run_search(
    config: GridConfig,
    fit_and_score: FitAndScore,
    study_file: Path,
    seed: int,
    progress: bool = True,
    project: Project | None = None,
) -> SearchOutcome:
    """Successive halving over `config.search.rungs` with TPE proposals (module docstring).

    `study_file` keys the resumable state: the caller names it by what the trials depend on (the
    samples, the valid sample, the seed, the config), so a changed input starts a fresh study.
    `project` gives a draw's refit cost before it is fitted: with a `search.max_refit_cost`, a draw
    above it is not fitted (counted in `skipped`; the defaults too).
    """
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_file.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(study_file)))
    s = config.search
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.startup_trials)
    rung0 = optuna.create_study(
        study_name="rung0", storage=storage, sampler=sampler, direction="maximize", load_if_exists=True
    )
    _fail_interrupted(rung0)
    scored, params_of, skipped = _rung0(config, rung0, fit_and_score, progress, project)
    alive = sorted(scored, key=lambda n: (-scored[n][0].objective(s.metric), n))
    for rung in range(1, len(s.rungs)):
        alive = alive[: max(1, math.ceil(len(alive) / s.reduction_factor))]
        study = optuna.create_study(
            study_name=f"rung{rung}", storage=storage, direction="maximize", load_if_exists=True
        )
        _fail_interrupted(study)
        done = {
            t.user_attrs["rung0_trial"]: _scored_from(t.user_attrs["scored"])
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        }
        for number in tqdm(alive, desc=f"search rung {rung}", unit="fit", disable=not progress):
            if number not in done:
                study.enqueue_trial(
                    _suggestible(config, params_of[number]), user_attrs={"rung0_trial": number}
                )
                trial = study.ask()
                _suggest(config, trial)
                result = fit_and_score(params_of[number], rung)
                trial.set_user_attr("scored", asdict(result))
                study.tell(trial, result.objective(s.metric))
                done[number] = result
                if progress:
                    tqdm.write(
                        f"rung {rung} trial {number}: {params_of[number].label()}  {_best_line(result, s.metric)}"
                    )
            scored[number].append(done[number])
        alive = sorted(alive, key=lambda n: (-scored[n][-1].objective(s.metric), n))
    results = []
    for number, runs in scored.items():
        last = runs[-1]
        params = replace(params_of[number], scoring=last.scoring, prior=last.prior, per_seed=last.per_seed)
        results.append(
            TrialResult(number, params, len(runs) - 1, tuple(r.metrics[s.metric] for r in runs), tuple(runs))
        )
    results.sort(key=lambda r: (-r.rung, not r.last.within_budget, not r.last.covered, -r.value, r.trial))
    return SearchOutcome(results, study_file, skipped, s.rungs)


def _rung0(
    config: GridConfig, rung0: Any, fit_and_score: FitAndScore, progress: bool, project: Project | None = None
) -> tuple[dict[int, list[Scored]], dict[int, W2VParams], int]:
    """Rung 0: the finished trials of the journal, then TPE proposals fitted until n_trials."""
    import optuna

    s = config.search
    bar = tqdm(total=s.n_trials, desc="search rung 0", unit="fit", disable=not progress)
    scored: dict[int, list[Scored]] = {}
    params_of: dict[int, W2VParams] = {}
    skipped = 0
    for t in rung0.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        params_of[t.number] = _params_from(config, t.params)
        scored[t.number] = [_scored_from(t.user_attrs["scored"])]
    bar.update(len(scored))
    if not rung0.trials:
        rung0.enqueue_trial(_suggestible(config, config.defaults))
    attempts = 0
    while len(scored) < s.n_trials and attempts < 20 * s.n_trials:
        attempts += 1
        trial = rung0.ask()
        params = _suggest(config, trial)
        if params.sg and params.window * params.negative > s.max_sg_pairs:
            rung0.tell(trial, state=optuna.trial.TrialState.PRUNED)  # too costly: not fitted
            skipped += 1
            continue
        if any(p.key() == params.key() for p in params_of.values()):
            rung0.tell(trial, state=optuna.trial.TrialState.PRUNED)  # a repeat: nothing to learn
            continue
        cost = project(params) if project is not None else 0.0
        if s.max_refit_cost > 0 and cost > s.max_refit_cost:
            rung0.tell(trial, state=optuna.trial.TrialState.PRUNED)  # its refit would exceed the budget
            skipped += 1
            bar.write(f"rung 0: {params.label()} not fitted: refit cost {cost:.2g} > max_refit_cost")
            continue
        result = fit_and_score(params, 0)
        trial.set_user_attr("scored", asdict(result))
        rung0.tell(trial, result.objective(s.metric))
        params_of[trial.number], scored[trial.number] = params, [result]
        bar.update(1)
        bar.write(f"rung 0 trial {trial.number}: {params.label()}  {_best_line(result, s.metric)}")
    bar.close()
    return scored, params_of, skipped


def _best_line(result: Scored, metric: str) -> str:
    return (
        f"{metric}={result.metrics[metric]:.4f} ({result.scoring}"
        f"{f'+{result.prior:g}prior' if result.prior else ''}"
        f"{f' seed{result.per_seed}' if result.per_seed else ''}; fit {result.fit_seconds:.0f}s)"
        f"{'' if result.covered else ' [misses the coverage target]'}"
        f"{'' if result.within_budget else f' [refit cost {result.refit_cost:.2g}: over the budget]'}"
    )


def _fail_interrupted(study: Any) -> None:
    """Trials left RUNNING by an interrupted search are marked failed (their fit is redone)."""
    import optuna

    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)


def _suggestible(config: GridConfig, params: W2VParams) -> dict[str, Any]:
    """The grid axes of `params` that the grid lists (Optuna only enqueues values it can suggest)."""
    return {a: getattr(params, a) for a in config.grid if getattr(params, a) in config.grid[a]}


def _suggest(config: GridConfig, trial: Any) -> W2VParams:
    values = {axis: trial.suggest_categorical(axis, list(choices)) for axis, choices in config.grid.items()}
    return replace(config.defaults, **values)


def _params_from(config: GridConfig, values: dict[str, Any]) -> W2VParams:
    return replace(config.defaults, **values)


def _scored_from(d: dict[str, Any]) -> Scored:
    return Scored(**d)


def study_name_for(*parts: Any) -> str:
    """A file-name-safe digest of what a search depends on (its journal file's name)."""
    import hashlib

    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:16]
