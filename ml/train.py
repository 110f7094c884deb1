"""`ml train`: corpus -> search on a sample -> refit on the train split -> evaluate -> artefacts.

Everything lands in `models/<run_id>/` (MODELS_DIR) and `models/latest` points to the new run:
vectors.kv (+ .npy), popularity.parquet, params.json, metrics.json, fingerprint.json,
search_results.csv, offline_test_predictions.parquet, model_card.md and its plots.

Seeds: the corpus shuffles, the search sample and the trial draw follow `seed`; gensim gets `seed`
too, but with more than one worker thread its result is not bit-for-bit reproducible (threads race
on shared weights, by design of Hogwild-style SGD). Use `workers: 1` in the grid file when
reproducibility matters more than speed (the tests do).
"""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ml.baselines import CoocModel, fit_cooc_variants, popularity_counts, rank_cooc
from ml.config import Paths
from ml.corpus import CorpusFiles, PlaylistData, load_playlists, sample_playlists, write_corpus
from ml.evaluate import (
    EvalSet,
    Ranking,
    VectorModel,
    evaluate_ranking,
    evaluate_vectors,
    last_item_metrics,
    last_item_queries,
    popularity_order,
    rank_popularity,
    results_table,
)
from ml.search import GridConfig, W2VParams, draw_trials, load_grid, run_search

N_OFFLINE_PREDICTIONS = 5000


# --- gensim ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitResult:
    vectors: Any  # gensim KeyedVectors
    seconds: float
    raw_words: int  # tokens read over all epochs
    trained_words: int  # tokens left after min_count and sub-sampling
    workers: int

    @property
    def words_per_s_per_worker(self) -> float:
        return self.raw_words / max(self.seconds, 1e-9) / self.workers


def fit_word2vec(
    corpus: CorpusFiles,
    params: W2VParams,
    seed: int,
    workers: int,
    progress: bool = True,
    desc: str = "fit",
) -> FitResult:
    """Train gensim Word2Vec from corpus files, one epoch per call, cycling the shuffled orderings.

    The learning rate decays linearly from `alpha` to `min_alpha` across all epochs, exactly as one
    multi-epoch call would do, but each epoch reads the next ordering of the playlists.
    """
    from gensim.models import Word2Vec

    model = Word2Vec(
        vector_size=params.vector_size,
        window=params.window,
        min_count=params.min_count,
        sg=params.sg,
        hs=0,
        negative=params.negative,
        ns_exponent=params.ns_exponent,
        sample=params.sample,
        alpha=params.alpha,
        min_alpha=params.min_alpha,
        seed=seed,
        workers=workers,
    )
    model.build_vocab_from_freq(corpus.word_counts, corpus_count=corpus.n_sentences)
    if len(model.wv) == 0:
        raise ValueError(f"no track reaches min_count={params.min_count} in the corpus {corpus.directory}")
    alphas = np.linspace(params.alpha, params.min_alpha, params.epochs + 1)
    start = time.perf_counter()
    raw = trained = 0
    for epoch in tqdm(range(params.epochs), desc=desc, unit="epoch", disable=not progress, leave=False):
        path = corpus.files[epoch % len(corpus.files)]
        t, r = model.train(
            corpus_file=str(path),
            total_words=corpus.file_words,
            total_examples=corpus.file_lines,
            epochs=1,
            start_alpha=float(alphas[epoch]),
            end_alpha=float(alphas[epoch + 1]),
        )
        trained += t
        raw += r
    seconds = time.perf_counter() - start
    return FitResult(model.wv, seconds, raw, trained, workers)


def sample_min_count(min_count: int, fraction: float) -> int:
    """The min_count on a sample of `fraction` of the playlists that keeps about the same tracks.

    Floored at 2 (or the stated value, if lower): a track seen once in the sample has no context to
    learn from, and keeping every such track made skip-gram trials on the full preset ~5x slower.
    """
    return max(min(2, min_count), round(min_count * fraction))


def vector_model(kv: Any, track_index: dict[str, int], n_tracks: int) -> VectorModel:
    track_of_row = np.fromiter((track_index[k] for k in kv.index_to_key), dtype=np.int64, count=len(kv))
    return VectorModel.from_vectors(kv.vectors, track_of_row, n_tracks)


# --- the run -----------------------------------------------------------------------------------


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


def run_training(
    paths: Paths,
    grid_path: Path | None = None,
    seed: int = 42,
    search: bool = True,
    progress: bool = True,
    workers: int | None = None,
) -> TrainResult:
    """Train, search, evaluate and write `models/<run_id>`; point `models/latest` at it."""
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    config = load_grid(grid_path)
    workers = workers or config.workers

    t = time.perf_counter()
    data, fingerprint = read_warehouse(paths.duckdb_path)
    timings["load"] = time.perf_counter() - t
    _say(
        progress,
        f"loaded {len(data.train):,} train playlists, {len(data.valid):,} valid, {len(data.test):,} test, {data.n_tracks:,} tracks",
    )
    if len(data.train) == 0 or len(data.valid) == 0 or len(data.test) == 0:
        raise ValueError(f"{paths.duckdb_path}: need train, valid and test playlists to train and evaluate")

    cache = paths.models_dir / ".cache"
    track_index = {str(t): i for i, t in enumerate(data.track_ids)}
    counts = popularity_counts(data.train, data.n_tracks)
    popular = popularity_order(counts)
    catalogue = int((counts > 0).sum())

    t = time.perf_counter()
    full_corpus = write_corpus(data.train, data.track_ids, cache, config.n_orders, seed)
    timings["corpus"] = time.perf_counter() - t

    # Search on a sample of train playlists, scored on a sample of valid playlists.
    search_rows: list[dict[str, Any]] = []
    kept: dict[str, FitResult] = {}
    best = config.defaults
    valid_sample = _sample_eval(data.valid, config.search.valid_playlists, seed)
    train_sample = sample_playlists(data.train, config.search.train_playlists, seed)
    sample_corpus = write_corpus(train_sample, data.track_ids, cache, config.n_orders, seed)
    t = time.perf_counter()
    if search:
        sample_is_all = len(train_sample) == len(data.train)
        kept: dict[str, FitResult] = {}

        fraction = len(train_sample) / len(data.train)

        def fit_and_score(params: W2VParams) -> tuple[dict[str, float], float, float, int]:
            # min_count is meant for the whole train split: on a sample it scales with the sample.
            on_sample = replace(params, min_count=sample_min_count(params.min_count, fraction))
            fit = fit_word2vec(sample_corpus, on_sample, seed, workers, progress, desc="trial")
            t0 = time.perf_counter()
            vm = vector_model(fit.vectors, track_index, data.n_tracks)
            metrics, _ = evaluate_vectors(vm, valid_sample, popular, catalogue)
            if sample_is_all:  # the sample is the whole train split: a refit would repeat this fit
                kept[params.key()] = fit
            return _round(metrics), fit.seconds, time.perf_counter() - t0, len(fit.vectors)

        trials = draw_trials(config, seed)
        results = run_search(
            trials,
            fit_and_score,
            cache / "search_trials.jsonl",
            cache_key=f"{sample_corpus.fingerprint}:{valid_sample.session_ids[:5]}:{len(valid_sample)}:{seed}:{workers}",
            metric=config.search.metric,
            progress=progress,
        )
        best = results[0].params
        search_rows = [r.row() for r in results]
    timings["search"] = time.perf_counter() - t

    # Refit the selected configuration on the whole train split (unless the search already did).
    t = time.perf_counter()
    fit = kept.get(best.key()) if search else None
    if fit is None or full_corpus.fingerprint != sample_corpus.fingerprint:
        fit = fit_word2vec(full_corpus, best, seed, workers, progress, desc="refit")
    timings["refit"] = time.perf_counter() - t
    model = vector_model(fit.vectors, track_index, data.n_tracks)
    t = time.perf_counter()
    valid_metrics, _ = evaluate_vectors(model, data.valid, popular, catalogue, last_item_seed=seed)
    timings["evaluate_valid"] = time.perf_counter() - t
    t = time.perf_counter()
    test_metrics, test_ranking = evaluate_vectors(model, data.test, popular, catalogue, last_item_seed=seed)
    timings["evaluate_test"] = time.perf_counter() - t
    timings["test_playlists_per_s"] = len(data.test) / max(timings["evaluate_test"], 1e-9)

    # Baselines on the same split and protocol.
    t = time.perf_counter()
    baselines, recipe = run_baselines(
        data,
        config,
        counts,
        popular,
        catalogue,
        train_sample,
        valid_sample,
        cache,
        seed,
        workers,
        search,
        progress,
        track_index,
    )
    timings["baselines"] = time.perf_counter() - t

    metrics = {"valid": _round(valid_metrics), "test": _round(test_metrics), "baselines": baselines}
    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + fingerprint["data_fingerprint"][:8]
    run_dir = paths.models_dir / run_id
    timings["total_before_artefacts"] = time.perf_counter() - t_all
    fit_info = {
        "seconds": round(fit.seconds, 2),
        "raw_words": fit.raw_words,
        "trained_words": fit.trained_words,
        "workers": fit.workers,
        "words_per_s_per_worker": round(fit.words_per_s_per_worker, 1),
        "vocab_size": len(fit.vectors),
    }
    t = time.perf_counter()
    write_artefacts(
        run_dir,
        data=data,
        kv=fit.vectors,
        counts=counts,
        params=best,
        seed=seed,
        config=config,
        metrics=metrics,
        fingerprint={
            **fingerprint,
            "corpus_fingerprint": full_corpus.fingerprint,
            "corpus_tokens": full_corpus.n_tokens,
        },
        search_rows=search_rows,
        test_ranking=test_ranking,
        model=model,
        fit_info=fit_info,
        recipe=recipe,
    )
    timings["artefacts"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    (run_dir / "timings.json").write_text(json.dumps(_round(timings), indent=2) + "\n")

    from ml.report.model_card import build_model_card

    build_model_card(
        run_dir,
        paths=paths,
        data=data,
        model=model,
        metrics=metrics,
        search_rows=search_rows,
        params=best,
        fit_info=fit_info,
        timings=timings,
        progress=progress,
        seed=seed,
        n_plot_tracks=config.plot_tracks,
    )
    point_latest(paths.models_dir, run_dir)
    timings["total"] = time.perf_counter() - t_all
    (run_dir / "timings.json").write_text(json.dumps(_round(timings), indent=2) + "\n")
    return TrainResult(run_id, run_dir, best, metrics, tuple(search_rows), _round(timings), fit_info)


def run_baselines(
    data: PlaylistData,
    config: GridConfig,
    counts: np.ndarray,
    popular: np.ndarray,
    catalogue: int,
    train_sample: Any,
    valid_sample: EvalSet,
    cache: Path,
    seed: int,
    workers: int,
    search: bool,
    progress: bool,
    track_index: dict[str, int],
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Most popular, item co-occurrence kNN and the seed recipe, all on test; both protocols."""
    known = counts > 0
    test = data.test
    out: dict[str, dict[str, Any]] = {}

    def last_item(rank_fn: Any, known_mask: np.ndarray) -> dict[str, float]:
        queries = last_item_queries(test.last_query, known_mask, seed)
        return last_item_metrics(rank_fn(_singletons(queries)), test.last_target)

    # Most popular.
    pop = rank_popularity(popular, test.seeds)
    out["popularity"] = {
        **evaluate_ranking(pop, test, known, catalogue),
        **last_item(lambda s: rank_popularity(popular, s), known),
    }

    # Item co-occurrence kNN: the normalisation is picked on valid, like any hyperparameter.
    best_cooc: CoocModel | None = None
    best_score = -1.0
    for cooc in fit_cooc_variants(data.train, data.n_tracks, ("cosine", "none"), seed=seed).values():
        score = evaluate_ranking(
            rank_cooc(cooc, valid_sample.seeds, popular), valid_sample, cooc.known, catalogue
        )[config.search.metric]
        if score > best_score:
            best_cooc, best_score = cooc, score
    assert best_cooc is not None
    cooc_rank = rank_cooc(best_cooc, test.seeds, popular)
    out["item_cooc_knn"] = {
        **evaluate_ranking(cooc_rank, test, best_cooc.known, catalogue),
        **last_item(lambda s: rank_cooc(best_cooc, s, popular), known),
        "normalise": best_cooc.normalise,
    }

    # The seed recipe: CBOW over playlists in file order; min_count picked by its own protocol.
    recipe = config.seed_recipe
    choices = []
    if search and len(config.seed_recipe_min_counts) > 1:
        sample_corpus = write_corpus(train_sample, data.track_ids, cache, 1, seed, shuffle=False)
        fraction = len(train_sample) / len(data.train)
        scored: dict[int, float] = {}  # scaled min_count -> its own-protocol score
        for min_count in config.seed_recipe_min_counts:
            # On a small sample several min_counts scale to the same value: fit that value once.
            scaled = sample_min_count(min_count, fraction)
            if scaled not in scored:
                fit = fit_word2vec(
                    sample_corpus,
                    replace(recipe, min_count=scaled),
                    seed,
                    workers,
                    progress,
                    desc=f"seed recipe min_count={min_count}",
                )
                vm = vector_model(fit.vectors, track_index, data.n_tracks)
                scored[scaled] = last_item_metrics(
                    _rank_single(vm, last_item_queries(valid_sample.last_query, vm.known, seed)),
                    valid_sample.last_target,
                )["last_item_hr@100"]
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
    corpus = write_corpus(data.train, data.track_ids, cache, 1, seed, shuffle=False)
    fit = fit_word2vec(corpus, recipe, seed, workers, progress, desc="seed recipe refit")
    vm = vector_model(fit.vectors, track_index, data.n_tracks)
    recipe_metrics, _ = evaluate_vectors(vm, test, popular, catalogue, last_item_seed=seed)
    out["seed_recipe"] = {**recipe_metrics, "min_count": recipe.min_count}
    out = {name: _round(m) for name, m in out.items()}
    return out, {
        "params": asdict(recipe),
        "min_count_selection": choices,
        "fit_seconds": round(fit.seconds, 2),
    }


def _rank_single(vm: VectorModel, queries: np.ndarray) -> Ranking:
    from ml.evaluate import rank_vectors

    return rank_vectors(vm, _singletons(queries), np.array([], dtype=np.int64))


def _singletons(queries: np.ndarray) -> Any:
    from ml.evaluate import Ragged

    q = np.asarray(queries, dtype=np.int64)
    return Ragged(indptr=np.arange(len(q) + 1, dtype=np.int64), values=q)


def _sample_eval(eval_set: EvalSet, n: int, seed: int) -> EvalSet:
    if n >= len(eval_set):
        return eval_set
    index = np.sort(np.random.default_rng(seed + 1).choice(len(eval_set), size=n, replace=False))
    return eval_set.subset(index)


def _round(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def _say(progress: bool, message: str) -> None:
    if progress:
        tqdm.write(message)


# --- warehouse ---------------------------------------------------------------------------------


def read_warehouse(duckdb_path: Path) -> tuple[PlaylistData, dict[str, Any]]:
    """Playlists and the data fingerprint, through one read-only connection (ml.warehouse)."""
    from ml import warehouse as wh

    con = wh.connect(duckdb_path)
    try:
        for relation in (wh.FCT_PLAYLIST_TRACKS, wh.DIM_TRACKS, wh.DIM_PLAYLISTS, wh.ML_PLAYLIST_SPLITS):
            wh.check_relation(con, relation)
        data = load_playlists(con)
        fingerprint = warehouse_fingerprint(con, duckdb_path)
    finally:
        con.close()
    fingerprint["data_fingerprint"] = data.fingerprint()
    return data, fingerprint


def warehouse_fingerprint(con: duckdb.DuckDBPyConnection, duckdb_path: Path) -> dict[str, Any]:
    """dbt invocation id (when it can be found), row counts of the marts read, split/role rows."""
    from ml import warehouse as wh

    counts = {}
    for relation in (wh.FCT_PLAYLIST_TRACKS, wh.DIM_PLAYLISTS, wh.DIM_TRACKS, wh.ML_PLAYLIST_SPLITS):
        counts[relation.name] = int(con.execute(f"select count(*) from {relation.name}").fetchone()[0])
    split_counts = {
        f"{s}/{r}": int(n)
        for s, r, n in con.execute(
            f"select split, role, count(*) from {wh.ML_PLAYLIST_SPLITS.name} group by all order by all"
        ).fetchall()
    }
    invocation_id, source = dbt_invocation_id(con, Path(duckdb_path))
    return {
        "warehouse": str(duckdb_path),
        "dbt_invocation_id": invocation_id,
        "dbt_invocation_source": source,
        "row_counts": counts,
        "split_role_rows": split_counts,
    }


def dbt_invocation_id(con: duckdb.DuckDBPyConnection, duckdb_path: Path) -> tuple[str | None, str | None]:
    """The dbt invocation that built the marts: from a warehouse column if the models record one,
    else from the run_results.json of the build that wrote this file (dbt's target beside the file,
    as `ml.warehouse.build_warehouse` leaves it, or dbt_project/target when `make dbt` ran last and
    finished after the file was written)."""
    rows = con.execute(
        "select table_name, column_name from information_schema.columns "
        "where column_name in ('dbt_invocation_id', 'invocation_id') "
        "order by table_name = 'ml_playlist_splits' desc, table_name"
    ).fetchall()
    for table, column in rows:
        value = con.execute(f'select max("{column}") from "{table}"').fetchone()[0]
        if value:
            return str(value), f"{table}.{column}"
    from ml.config import REPO_ROOT

    warehouse_mtime = duckdb_path.stat().st_mtime
    for candidate in (
        duckdb_path.with_name(duckdb_path.name + ".dbt") / "target" / "run_results.json",
        REPO_ROOT / "dbt_project" / "target" / "run_results.json",
    ):
        if candidate.exists() and candidate.stat().st_mtime >= warehouse_mtime - 5:
            try:
                meta = json.loads(candidate.read_text()).get("metadata", {})
            except (OSError, json.JSONDecodeError):
                continue
            if meta.get("invocation_id"):
                return str(meta["invocation_id"]), str(candidate)
    return None, None


# --- artefacts ---------------------------------------------------------------------------------


def write_artefacts(
    run_dir: Path,
    *,
    data: PlaylistData,
    kv: Any,
    counts: np.ndarray,
    params: W2VParams,
    seed: int,
    config: GridConfig,
    metrics: dict[str, Any],
    fingerprint: dict[str, Any],
    search_rows: list[dict[str, Any]],
    test_ranking: Ranking,
    model: VectorModel,
    fit_info: dict[str, Any],
    recipe: dict[str, Any],
) -> None:
    run_dir.mkdir(parents=True, exist_ok=False)
    # Vectors stored beside the pickle as .npy so they load with mmap='r'.
    kv.save(str(run_dir / "vectors.kv"), separately=["vectors"])
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] > 0]
    pq.write_table(
        pa.table(
            {
                "track_id": pa.array(data.track_ids[order].tolist(), pa.string()),
                "count": pa.array(counts[order], pa.int64()),
            }
        ),
        run_dir / "popularity.parquet",
    )
    (run_dir / "params.json").write_text(
        json.dumps(
            {
                "word2vec": asdict(params),
                "seed": seed,
                "workers": fit_info["workers"],
                "n_orders": config.n_orders,
                "grid_file": config.source,
                "fit": fit_info,
                "seed_recipe": recipe,
                "gensim": _version("gensim"),
                "python": platform.python_version(),
            },
            indent=2,
        )
        + "\n"
    )
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (run_dir / "fingerprint.json").write_text(json.dumps(fingerprint, indent=2) + "\n")
    with (run_dir / "search_results.csv").open("w", newline="") as fh:
        if search_rows:
            writer = csv.DictWriter(fh, fieldnames=list(search_rows[0]))
            writer.writeheader()
            writer.writerows(search_rows)
    write_offline_predictions(run_dir / "offline_test_predictions.parquet", data, model, test_ranking)


def write_offline_predictions(
    path: Path, data: PlaylistData, model: VectorModel, ranking: Ranking, n: int = N_OFFLINE_PREDICTIONS
) -> None:
    """Seeds and offline top-10 of the first n test playlists (by session_id) for parity checks."""
    test = data.test
    n = min(n, len(test))
    ids = data.track_ids
    seeds, unknown, top_ids, top_scores = [], [], [], []
    for i in range(n):
        s = test.seeds.row(i)
        seeds.append(ids[s].tolist())
        unknown.append(int((~model.known[s]).sum()))
        top = ranking.tracks[i, :10]
        top_ids.append(ids[top[top >= 0]].tolist())
        top_scores.append(ranking.scores[i, :10][top >= 0].astype(np.float32).tolist())
    table = pa.table(
        {
            "session_id": pa.array(test.session_ids[:n].tolist(), pa.string()),
            "seed_track_ids": pa.array(seeds, pa.list_(pa.string())),
            "n_unknown": pa.array(unknown, pa.int32()),
            "is_fallback": pa.array(ranking.fallback[:n].tolist(), pa.bool_()),
            "top10_track_ids": pa.array(top_ids, pa.list_(pa.string())),
            "top10_scores": pa.array(top_scores, pa.list_(pa.float32())),
        }
    )
    pq.write_table(table, path)


def point_latest(models_dir: Path, run_dir: Path) -> None:
    """models/latest -> <run_id> (relative symlink, replaced atomically)."""
    link = models_dir / "latest"
    tmp = models_dir / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
