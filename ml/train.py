"""`ml train`: load -> corpus -> search -> refit -> evaluate -> baselines -> cold start -> artefacts
-> card.

Each step is one function below; the run lands in `models/<run_id>/` (a `RunDir`, MODELS_DIR) and
`models/latest` points to it. Seeds: the corpus shuffles, the search samples and the trial draw
follow `seed`; gensim is bit-for-bit reproducible with one worker only (see `ml.word2vec`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ml import warehouse as wh
from ml.artefacts import RunRecord, write_artefacts
from ml.baseline_table import TrainContext, rounded, run_baselines
from ml.baselines import popularity_counts
from ml.cold_start import NameModel
from ml.cold_start_eval import cold_start_blocks, cold_start_table, select_name_model
from ml.config import DEFAULTS, Paths
from ml.corpus import CorpusFiles, PlaylistData, load_playlists, nested_samples
from ml.evaluate import evaluate, oov_share, results_table
from ml.marts_parquet import open_marts
from ml.rankers import PopularityRanker
from ml.run_dir import RunDir, point_latest
from ml.search import Scored, SearchOutcome, W2VParams, load_grid, run_search, study_name_for
from ml.shapes import EvalSet
from ml.taste import track_communities
from ml.word2vec import FitResult, Track2Vec, sample_min_count


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    run_dir: Path
    params: W2VParams
    metrics: dict[str, Any]  # {"valid": ..., "test": ..., "baselines": {...}}
    search: tuple[dict[str, Any], ...]
    timings: dict[str, float]
    fit: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        return "\n".join(
            [
                f"run {self.run_id} -> {self.run_dir}",
                f"selected: {self.params.label()}",
                str(self.metrics.get("selection", "")),
                results_table(self.metrics),
                f"refit {self.fit.get('seconds', 0):.1f}s, {self.fit.get('words_per_s_per_worker', 0):,.0f} words/s per worker; "
                f"total {self.timings.get('total', 0):.1f}s",
            ]
        )


class _Timer(dict):
    """timings[step] = seconds, via `with timer("step"):`."""

    def __call__(self, step: str) -> _Step:
        return _Step(self, step)


class _Step:
    def __init__(self, timer: _Timer, step: str) -> None:
        self.timer, self.step = timer, step

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timer[self.step] = time.perf_counter() - self.start


def run_training(
    paths: Paths,
    grid_path: Path | None = None,
    seed: int = DEFAULTS.seed,
    search: bool = True,
    progress: bool = True,
    workers: int | None = None,
) -> TrainResult:
    """Train, search, evaluate and write `models/<run_id>`; point `models/latest` at it."""
    t_all, timings = time.perf_counter(), _Timer()
    config = load_grid(grid_path)
    with timings("load"):
        data, fingerprint = load_step(paths.marts, progress)
    communities = track_communities(paths.raw_csv, paths.duckdb_path, data.track_ids)
    ctx = make_context(
        data, config, seed, workers or config.workers, search, progress, paths.models_dir, communities
    )
    with timings("corpus"):
        full_corpus = ctx.track2vec(config.defaults, "corpus").corpus(data.train, data.track_ids)
    with timings("search"):
        outcome, kept = search_step(ctx)
    best = outcome.best.params if outcome.results else config.defaults
    search_rows = [r.row() for r in outcome.results]
    with timings("refit"):
        model = refit_step(ctx, best, full_corpus, kept)
    with timings("evaluate_valid"):
        valid_metrics, _ = evaluate(model, data.valid, ctx.catalogue, last_item_seed=seed)
    with timings("evaluate_test"):
        test_metrics, test_ranking = evaluate(model, data.test, ctx.catalogue, last_item_seed=seed)
    timings["test_playlists_per_s"] = len(data.test) / max(timings["evaluate_test"], 1e-9)
    with timings("baselines"):
        baselines, baselines_valid, fitted = run_baselines(ctx)
    verdict = selection_verdict(valid_metrics, baselines_valid, config.search.metric)
    metrics = {
        "valid": rounded(valid_metrics),
        "test": rounded(test_metrics),
        "baselines": baselines,
        "baselines_valid": baselines_valid,
        "selection": verdict,
        "item_cooc_knn_selection": getattr(fitted.get("item_cooc_knn"), "selection", []),
    }
    with timings("cold_start"):
        names = cold_start_step(ctx, model, metrics)
    fingerprint = {
        **fingerprint,
        "corpus_fingerprint": full_corpus.fingerprint,
        "corpus_tokens": full_corpus.n_tokens,
    }
    record = RunRecord(
        best,
        seed,
        config,
        metrics,
        fingerprint,
        search_rows,
        fit_info(model),
        fitted["seed_recipe"].selection,
    )
    run = RunDir(
        paths.models_dir
        / (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + fingerprint["data_fingerprint"][:8])
    )
    timings["total_before_artefacts"] = time.perf_counter() - t_all
    with timings("artefacts"):
        write_artefacts(run, data, model, ctx.popularity, record, test_ranking, names)
    timings["total"] = time.perf_counter() - t_all
    run.write_json(RunDir.TIMINGS, rounded(timings))
    card_step(run, paths, ctx, model, record, timings)
    point_latest(paths.models_dir, run.path)
    timings["total"] = time.perf_counter() - t_all
    run.write_json(RunDir.TIMINGS, rounded(timings))
    with timings("mlflow"):
        track_step(paths, run, record, timings)
    return TrainResult(
        run.path.name, run.path, best, metrics, tuple(search_rows), rounded(timings), record.fit_info
    )


def load_step(marts: Path, progress: bool) -> tuple[PlaylistData, dict[str, Any]]:
    """Playlists and the data fingerprint, through one read-only connection (ml.warehouse): `marts`
    is the DuckDB warehouse or a folder of Parquet marts (ml.marts_parquet)."""
    con = open_marts(marts)
    try:
        for relation in (wh.FCT_PLAYLIST_TRACKS, wh.DIM_TRACKS, wh.DIM_PLAYLISTS, wh.ML_PLAYLIST_SPLITS):
            wh.check_relation(con, relation)
        data = load_playlists(con)
        fingerprint = wh.marts_fingerprint(con, marts)
    finally:
        con.close()
    fingerprint["data_fingerprint"] = data.fingerprint()
    _say(
        progress,
        f"loaded {len(data.train):,} train playlists, {len(data.valid):,} valid, {len(data.test):,} test, {data.n_tracks:,} tracks",
    )
    if len(data.train) == 0 or len(data.valid) == 0 or len(data.test) == 0:
        raise ValueError(f"{marts}: need train, valid and test playlists to train and evaluate")
    return data, fingerprint


def make_context(
    data: PlaylistData,
    config: Any,
    seed: int,
    workers: int,
    search: bool,
    progress: bool,
    models_dir: Path,
    communities: np.ndarray | None = None,
) -> TrainContext:
    """Popularity on the whole train split, and the search's seeded samples of train and valid."""
    return TrainContext(
        data=data,
        config=config,
        seed=seed,
        workers=workers,
        search=search,
        progress=progress,
        cache=models_dir / ".cache",
        popularity=PopularityRanker().fit(data.train, data.track_ids),
        communities=communities,
        rung_samples=nested_samples(data.train, config.search.rungs, seed),
        valid_sample=_sample_eval(data.valid, config.search.valid_playlists, seed),
    )


def search_step(ctx: TrainContext) -> tuple[SearchOutcome, dict[str, FitResult]]:
    """Successive halving with TPE proposals (ml.search) on the nested train samples, scored on the
    valid sample under every scoring rule; returns the outcome (best first) and reusable fits."""
    kept: dict[str, FitResult] = {}
    config, data = ctx.config, ctx.data
    corpora = [ctx.track2vec(config.defaults, "corpus").corpus(s, data.track_ids) for s in ctx.rung_samples]
    if not ctx.search:
        return SearchOutcome([]), kept
    counts = [popularity_counts(s, data.n_tracks) for s in ctx.rung_samples]
    rules = config.search.variants()  # (rule, prior, per_seed M)
    metric = config.search.metric

    done: dict[tuple[str, int], Scored] = {}  # (params, sample size): a rung as large as the one
    # before it (a small preset: every rung is the whole train split) reuses that fit's score
    full_tokens = len(data.train.values)

    def project(params: W2VParams) -> float:
        """The cost of `params`' refit on the whole train split (search.max_refit_cost)."""
        return params.fit_cost(full_tokens)

    def fit_and_score(params: W2VParams, rung: int) -> Scored:
        size = len(ctx.rung_samples[rung])
        if (params.key(), size) in done:
            return done[params.key(), size]
        done[params.key(), size] = scored = _fit_and_score(params, rung)
        return scored

    def _fit_and_score(params: W2VParams, rung: int) -> Scored:
        fraction = len(ctx.rung_samples[rung]) / len(data.train)
        # min_count is meant for the whole train split: on a sample it scales with the sample.
        on_sample = replace(params, min_count=sample_min_count(params.min_count, fraction))
        trial = ctx.track2vec(on_sample, f"rung {rung}")
        trial.fit_corpus(corpora[rung], data.track_ids, counts[rung], ctx.rung_samples[rung])
        assert trial.result is not None
        t0 = time.perf_counter()
        variants: dict[str, dict[str, float]] = {}
        rule_of: dict[str, tuple[str, float, int]] = {}
        for rule, prior, per_seed in rules:
            trial.use_fit(trial.result, data.track_ids, counts[rung], scoring=(rule, prior, per_seed))
            label = f"{rule}+{prior:g}{f'/seed{per_seed}' if per_seed else ''}"
            rule_of[label] = (rule, prior, per_seed)
            variants[label] = rounded(evaluate(trial, ctx.valid_sample, ctx.catalogue)[0])
        best = max(variants, key=lambda v: (variants[v][metric], -list(variants).index(v)))
        rule, prior, per_seed = rule_of[best]
        # Coverage target: held-out tracks out of vocabulary beyond those the sample never saw.
        floor = oov_share(ctx.valid_sample.holdouts, counts[rung] > 0)
        covered = variants[best]["oov_share"] <= floor + config.search.oov_slack
        refit_cost, cap = project(params), config.search.max_refit_cost
        if fraction == 1.0:  # the sample is the whole train split: a refit would repeat this fit
            kept[replace(params, scoring=rule, prior=float(prior), per_seed=per_seed).key()] = trial.result
        return Scored(
            metrics=variants[best],
            scoring=rule,
            prior=float(prior),
            per_seed=int(per_seed),
            variants={v: m[metric] for v, m in variants.items()},
            fit_seconds=trial.result.seconds,
            eval_seconds=time.perf_counter() - t0,
            vocab_size=len(trial.result.vectors),
            covered=bool(covered),
            refit_cost=float(refit_cost),
            within_budget=cap <= 0 or refit_cost <= cap,
        )

    valid = ctx.valid_sample
    name = study_name_for(
        [c.fingerprint for c in corpora],
        valid.session_ids[:5],
        len(valid),
        ctx.seed,
        ctx.workers,
        config.grid,
        config.defaults,
        config.search,
    )
    outcome = run_search(
        config, fit_and_score, ctx.cache / "search" / f"{name}.journal", ctx.seed, ctx.progress, project
    )
    return outcome, kept


def refit_step(
    ctx: TrainContext, best: W2VParams, full_corpus: CorpusFiles, kept: dict[str, FitResult]
) -> Track2Vec:
    """The selected params on the whole train split (unless the search already fitted exactly that)."""
    model = ctx.track2vec(best, "refit")
    counts = ctx.popularity.counts
    fit = kept.get(best.key())
    if fit is not None:
        return model.use_fit(fit, ctx.data.track_ids, counts)
    return model.fit_corpus(full_corpus, ctx.data.track_ids, counts, ctx.data.train)


def track_step(paths: Paths, run: RunDir, record: RunRecord, timings: dict[str, float]) -> None:
    """The run in MLflow (ml.tracking): params, per-trial and final metrics, card and plots."""
    from ml.tracking import log_training_run

    params = {**asdict(record.params), "seed": record.seed, "n_trials": len(record.search_rows)}
    params["grid_file"] = record.config.source
    log_training_run(paths.models_dir, run.path, params, record.metrics, record.search_rows, rounded(timings))


def selection_verdict(valid: dict[str, Any], baselines_valid: dict[str, dict[str, Any]], metric: str) -> str:
    """One line: does the selected configuration beat popularity and item-kNN on the whole valid
    split? Said plainly either way (`ml train` prints it, the model card and metrics.json keep it)."""
    ours = float(valid[metric])
    rivals = {n: float(m[metric]) for n, m in baselines_valid.items() if n in ("popularity", "item_cooc_knn")}
    beaten = [f"{n} {v:.4f}" for n, v in rivals.items() if ours > v]
    lost = [f"{n} {v:.4f}" for n, v in rivals.items() if ours <= v]
    if not lost:
        return f"selection: track2vec beats {' and '.join(beaten)} on valid {metric} ({ours:.4f})"
    return (
        f"WARNING: no configuration beats popularity and item-kNN on valid: the selected track2vec has "
        f"{metric} {ours:.4f}, not above {' and '.join(lost)}"
    )


def cold_start_step(ctx: TrainContext, model: Track2Vec, metrics: dict[str, Any]) -> NameModel:
    """Name-token rows over the refit vectors (chosen on the valid sample), scored on valid and
    test; adds the `name_only` and `name_and_seeds` blocks to `metrics` (docs/cold_start.md)."""
    data = ctx.data
    assert data.train_names is not None, "load_playlists gives the playlists' names"
    selection = select_name_model(
        model,
        data.train,
        list(data.train_names),
        ctx.valid_sample,
        ctx.catalogue,
        ctx.config.search.metric,
        track_artists=data.track_artists,
    )
    metrics.update(
        cold_start_blocks(
            selection,
            ctx.popularity,
            {"valid": data.valid, "test": data.test},
            {"valid": metrics["valid"], "test": metrics["test"]},
            ctx.catalogue,
        )
    )
    _say(ctx.progress, "cold start from a name:\n" + cold_start_table(metrics))
    return selection.ranker.names


def fit_info(model: Track2Vec) -> dict[str, Any]:
    fit = model.result
    assert fit is not None
    return {
        "seconds": round(fit.seconds, 2),
        "raw_words": fit.raw_words,
        "trained_words": fit.trained_words,
        "workers": fit.workers,
        "words_per_s_per_worker": round(fit.words_per_s_per_worker, 1),
        "vocab_size": len(fit.vectors),
        "folded": fit.folded,  # of vocab_size: rows folded in below min_count (ml.fold)
    }


def card_step(
    run: RunDir,
    paths: Paths,
    ctx: TrainContext,
    model: Track2Vec,
    record: RunRecord,
    timings: dict[str, float],
) -> None:
    """The model card (Markdown + plots) beside the artefacts; timings so far are in it."""
    from ml.report.model_card import build_model_card

    assert model.model is not None
    build_model_card(
        run.path,
        paths=paths,
        data=ctx.data,
        model=model.model,
        metrics=record.metrics,
        search_rows=record.search_rows,
        params=record.params,
        fit_info=record.fit_info,
        timings=timings,
        progress=ctx.progress,
        seed=ctx.seed,
        n_plot_tracks=ctx.config.plot_tracks,
        metric=ctx.config.search.metric,
    )


def _sample_eval(eval_set: EvalSet, n: int, seed: int) -> EvalSet:
    if n >= len(eval_set):
        return eval_set
    index = np.sort(np.random.default_rng(seed + 1).choice(len(eval_set), size=n, replace=False))
    return eval_set.subset(index)


def _say(progress: bool, message: str) -> None:
    if progress:
        tqdm.write(message)
