"""`ml train`: load -> corpus -> search -> refit -> evaluate -> baselines -> cold start -> artefacts
-> card.

Each step is one function below; the run lands in `models/<run_id>/` (a `RunDir`, MODELS_DIR) and
`models/latest` points to it. Seeds: the corpus shuffles, the search samples and the trial draw
follow `seed`; gensim is bit-for-bit reproducible with one worker only (see `ml.word2vec`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ml import warehouse as wh
from ml.artefacts import RunRecord, write_artefacts
from ml.baseline_table import TrainContext, rounded, run_baselines
from ml.cold_start import NameModel
from ml.cold_start_eval import cold_start_blocks, cold_start_table, select_name_model
from ml.config import DEFAULTS, Paths
from ml.corpus import CorpusFiles, PlaylistData, load_playlists, sample_playlists
from ml.evaluate import evaluate, results_table
from ml.marts_parquet import open_marts
from ml.rankers import PopularityRanker
from ml.run_dir import RunDir, point_latest
from ml.search import W2VParams, draw_trials, load_grid, run_search
from ml.shapes import EvalSet
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
    ctx = make_context(data, config, seed, workers or config.workers, search, progress, paths.models_dir)
    with timings("corpus"):
        full_corpus = ctx.track2vec(config.defaults, "corpus").corpus(data.train, data.track_ids)
    with timings("search"):
        best, search_rows, kept = search_step(ctx)
    with timings("refit"):
        model = refit_step(ctx, best, full_corpus, kept)
    with timings("evaluate_valid"):
        valid_metrics, _ = evaluate(model, data.valid, ctx.catalogue, last_item_seed=seed)
    with timings("evaluate_test"):
        test_metrics, test_ranking = evaluate(model, data.test, ctx.catalogue, last_item_seed=seed)
    timings["test_playlists_per_s"] = len(data.test) / max(timings["evaluate_test"], 1e-9)
    with timings("baselines"):
        baselines, fitted = run_baselines(ctx)
    metrics = {"valid": rounded(valid_metrics), "test": rounded(test_metrics), "baselines": baselines}
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
    data: PlaylistData, config: Any, seed: int, workers: int, search: bool, progress: bool, models_dir: Path
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
        train_sample=sample_playlists(data.train, config.search.train_playlists, seed),
        valid_sample=_sample_eval(data.valid, config.search.valid_playlists, seed),
    )


def search_step(ctx: TrainContext) -> tuple[W2VParams, list[dict[str, Any]], dict[str, FitResult]]:
    """Random search on the train sample, scored on the valid sample; the best params first."""
    kept: dict[str, FitResult] = {}
    sample_corpus = ctx.track2vec(ctx.config.defaults, "corpus").corpus(ctx.train_sample, ctx.data.track_ids)
    if not ctx.search:
        return ctx.config.defaults, [], kept
    sample_is_all = len(ctx.train_sample) == len(ctx.data.train)
    popular = ctx.popularity.order

    def fit_and_score(params: W2VParams) -> tuple[dict[str, float], float, float, int]:
        # min_count is meant for the whole train split: on a sample it scales with the sample.
        on_sample = replace(params, min_count=sample_min_count(params.min_count, ctx.sample_fraction))
        trial = ctx.track2vec(on_sample, "trial").fit_corpus(sample_corpus, ctx.data.track_ids, popular)
        assert trial.result is not None
        t0 = time.perf_counter()
        metrics, _ = evaluate(trial, ctx.valid_sample, ctx.catalogue)
        if sample_is_all:  # the sample is the whole train split: a refit would repeat this fit
            kept[params.key()] = trial.result
        return rounded(metrics), trial.result.seconds, time.perf_counter() - t0, len(trial.result.vectors)

    valid = ctx.valid_sample
    results = run_search(
        draw_trials(ctx.config, ctx.seed),
        fit_and_score,
        ctx.cache / "search_trials.jsonl",
        cache_key=f"{sample_corpus.fingerprint}:{valid.session_ids[:5]}:{len(valid)}:{ctx.seed}:{ctx.workers}",
        metric=ctx.config.search.metric,
        progress=ctx.progress,
    )
    return results[0].params, [r.row() for r in results], kept


def refit_step(
    ctx: TrainContext, best: W2VParams, full_corpus: CorpusFiles, kept: dict[str, FitResult]
) -> Track2Vec:
    """The selected params on the whole train split (unless the search already fitted exactly that)."""
    model = ctx.track2vec(best, "refit")
    fit = kept.get(best.key())
    if fit is not None:
        return model.use_fit(fit, ctx.data.track_ids, ctx.popularity.order)
    return model.fit_corpus(full_corpus, ctx.data.track_ids, ctx.popularity.order)


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
    )


def _sample_eval(eval_set: EvalSet, n: int, seed: int) -> EvalSet:
    if n >= len(eval_set):
        return eval_set
    index = np.sort(np.random.default_rng(seed + 1).choice(len(eval_set), size=n, replace=False))
    return eval_set.subset(index)


def _say(progress: bool, message: str) -> None:
    if progress:
        tqdm.write(message)
