"""Cold start from a playlist's name (issue 14) on a built warehouse: the `ml train` cold-start step
(ml.cold_start_eval, the same code) over freshly fitted track2vec vectors, as a ratio to the
baselines measured in the same run.

    python -m bench.bench_cold_start <warehouse.duckdb> [label] [epochs]

Fits track2vec with the default grid's `defaults` (epochs overridable: the full preset's 40 epochs
take ~10 min on an idle 2-core machine), then selects the name model on a valid sample, and scores
name only (vs popularity, name-keyword popularity) and name + seeds (vs seeds only) on valid and
test. Targets: test name-only HR@10 >= 3x popularity's and >= name-keyword popularity's; name +
seeds >= seeds only. Writes bench/results/cold_start_<label>.json/.md; the load average is in it.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench.common import REPO_ROOT, write_results


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit("usage: python -m bench.bench_cold_start <warehouse.duckdb> [label] [epochs]")
    warehouse = Path(argv[0]).resolve()
    shown = warehouse.relative_to(REPO_ROOT) if warehouse.is_relative_to(REPO_ROOT) else warehouse.name
    label = argv[1] if len(argv) > 1 else warehouse.parent.name
    load_before = os.getloadavg()

    from ml import warehouse as wh
    from ml.cold_start_eval import cold_start_blocks, cold_start_table, per_playlist_recall, select_name_model
    from ml.corpus import load_playlists
    from ml.evaluate import evaluate
    from ml.rankers import PopularityRanker
    from ml.search import load_grid
    from ml.shapes import K_MAX
    from ml.train import _sample_eval
    from ml.word2vec import Track2Vec

    seed = 42
    config = load_grid(None)
    params = config.defaults if len(argv) < 3 else replace(config.defaults, epochs=int(argv[2]))
    con = wh.connect(warehouse)
    try:
        data = load_playlists(con)
    finally:
        con.close()
    popularity = PopularityRanker().fit(data.train, data.track_ids)
    catalogue = int(popularity.known.sum())
    t0 = time.perf_counter()
    cache = REPO_ROOT / "data" / "bench" / "cold_start_cache"
    model = Track2Vec(params, seed=seed, workers=config.workers, cache_dir=cache, n_orders=config.n_orders)
    model.fit(data.train, data.track_ids)
    fit_s = time.perf_counter() - t0
    seeds_only = {s: evaluate(model, getattr(data, s), catalogue)[0] for s in ("valid", "test")}
    t1 = time.perf_counter()
    valid_sample = _sample_eval(data.valid, config.search.valid_playlists, seed)
    selection = select_name_model(
        model,
        data.train,
        list(data.train_names),
        valid_sample,
        catalogue,
        track_artists=data.track_artists,
    )
    blocks = cold_start_blocks(
        selection, popularity, {"valid": data.valid, "test": data.test}, seeds_only, catalogue
    )
    cold_s = time.perf_counter() - t1
    # Diagnostic only (never used to choose): test HR@10 of name + seeds at every worth tried.
    chosen_names = selection.ranker.names
    test_by_worth = {}
    for row in blocks["name_and_seeds"]["selection"]:
        selection.ranker.names = chosen_names.with_worth(row["worth"])
        ranking = selection.ranker.rank_named(list(data.test.names), data.test.seeds, K_MAX)
        test_by_worth[row["worth"]] = round(float(per_playlist_recall(ranking, data.test, 10).mean()), 6)
    selection.ranker.names = chosen_names
    name_only, both = blocks["name_only"], blocks["name_and_seeds"]
    test = name_only["test"]["hr@10"]
    pop = name_only["baselines"]["popularity"]["test"]["hr@10"]
    kw = name_only["baselines"]["name_keyword_popularity"]["test"]["hr@10"]
    mixed, seeds = both["test"]["hr@10"], both["baselines"]["seeds_only"]["test"]["hr@10"]
    verdict = {
        "name_only_vs_popularity": round(test / max(pop, 1e-12), 3),
        "name_only_vs_keyword_popularity": round(test / max(kw, 1e-12), 3),
        "name_and_seeds_vs_seeds_only": round(mixed / max(seeds, 1e-12), 4),
    }
    lines = [
        f"warehouse {shown} ({label}): {len(data.train):,} train, {len(data.valid):,} valid, "
        f"{len(data.test):,} test playlists; load average before {load_before[0]:.1f}, after "
        f"{os.getloadavg()[0]:.1f} (2 cores)",
        f"track2vec {params.label()} fitted in {fit_s:.0f} s; name selection + evaluation {cold_s:.0f} s",
        f"selected: {name_only['selected']}; name worth {both['worth']:g} seed tracks; "
        f"test playlists with a known token {name_only['name_coverage']['test']:.1%}",
        f"- test name-only HR@10 {test:.4f} = x{verdict['name_only_vs_popularity']:.2f} popularity's {pop:.4f} "
        f"(target >= 3: {'met' if test >= 3 * pop else 'NOT met'}), x{verdict['name_only_vs_keyword_popularity']:.2f} "
        f"name-keyword popularity's {kw:.4f} (target >= 1: {'met' if test >= kw else 'NOT met'})",
        f"- test name + seeds HR@10 {mixed:.4f} vs seeds only {seeds:.4f} "
        f"(target >=: {'met' if mixed >= seeds else 'NOT met'})",
        f"name + seeds under the track rule {model.scoring} (ml.knn.NameRule: per_seed > 0, the name is "
        "one more per-seed list weighted by its worth); the worth on valid (chosen: best, if its gain "
        "over worth 0 exceeds one standard error):",
        *(
            f"- worth {r['worth']:g}: valid HR@10 {r['valid_name_and_seeds_hr@10']:.4f} "
            f"(test, diagnostic only: {test_by_worth[r['worth']]:.4f})"
            + (
                f", gain {r['gain_over_seeds']:+.4f} +- {r['gain_standard_error']:.4f} (1 SE)"
                if "gain_over_seeds" in r
                else ""
            )
            + (" <- chosen" if r["chosen"] else "")
            for r in both["selection"]
        ),
        "",
        cold_start_table(blocks),
    ]
    write_results(
        f"cold_start_{label}",
        {
            "warehouse": str(shown),
            "params": params.label(),
            "fit_seconds": round(fit_s, 1),
            "cold_start_seconds": round(cold_s, 1),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "ratios": verdict,
            "name_and_seeds_test_hr@10_by_worth_diagnostic": test_by_worth,
            **blocks,
        },
        lines,
    )


if __name__ == "__main__":
    main()


def trained_in(argv: list[str] | None = None) -> None:
    """The other option of issue 14, measured once: name tokens written into the track2vec
    sentences (each train playlist's tracks plus its `name:` tokens), the tokens' own vectors as
    name rows (unit directions, beta from the same grid), scored the same way on valid and test.

    python -c 'from bench.bench_cold_start import trained_in; trained_in()' <warehouse> [label]
    """
    argv = sys.argv[1:] if argv is None else argv
    warehouse = Path(argv[0]).resolve()
    label = argv[1] if len(argv) > 1 else warehouse.parent.name
    import numpy as np

    from ml import warehouse as wh
    from ml.baselines import popularity_order
    from ml.cold_start import NameModel, NameVectorRanker, name_token_lists, track_prior
    from ml.cold_start_eval import BETAS, evaluate_named
    from ml.corpus import load_playlists
    from ml.knn import normalize_rows
    from ml.rankers import VectorRanker
    from ml.search import load_grid
    from ml.shapes import Ragged
    from ml.word2vec import Track2Vec

    config = load_grid(None)
    con = wh.connect(warehouse)
    try:
        data = load_playlists(con)
    finally:
        con.close()
    tokens = name_token_lists(list(data.train_names))
    keys = sorted({t for ts in tokens for t in ts})
    index = {t: data.n_tracks + i for i, t in enumerate(keys)}
    augmented = Ragged.from_lists(
        [np.r_[data.train.row(i), [index[t] for t in ts]].astype(np.int64) for i, ts in enumerate(tokens)]
    )
    ids = np.concatenate([data.track_ids, np.asarray(keys, dtype=object)])
    cache = REPO_ROOT / "data" / "bench" / "cold_start_cache"
    t0 = time.perf_counter()
    fitted = Track2Vec(
        config.defaults, seed=42, workers=config.workers, cache_dir=cache, n_orders=config.n_orders
    )
    fitted.fit(augmented, ids)
    fit_s = time.perf_counter() - t0
    kv = fitted.keyed_vectors
    track_keys = [k for k in kv.index_to_key if not str(k).startswith("name:")]
    name_keys = [k for k in kv.index_to_key if str(k).startswith("name:")]
    from gensim.models import KeyedVectors

    tracks_kv = KeyedVectors(kv.vector_size)
    tracks_kv.add_vectors(track_keys, np.asarray([kv[k] for k in track_keys]))
    counts = np.bincount(data.train.values, minlength=data.n_tracks)
    base = VectorRanker().set_vectors(tracks_kv, data.track_ids, popularity_order(counts))
    prior = track_prior(counts)
    directions = (
        normalize_rows(np.asarray([kv[k] for k in name_keys])) if name_keys else np.zeros((0, kv.vector_size))
    )
    catalogue = int((counts > 0).sum())
    rows = []
    for beta in BETAS:
        names = NameModel(
            np.asarray(name_keys, dtype=object),
            np.hstack([directions, np.full((len(name_keys), 1), beta, np.float32)]).astype(np.float32),
            np.zeros(len(name_keys), np.int64),
            0.0,
            {"method": "trained_in", "beta": beta},
        )
        ranker = NameVectorRanker(base, prior, names)
        rows.append(
            {
                "beta": beta,
                "valid_hr@10": round(evaluate_named(ranker, data.valid.cold(), catalogue)["hr@10"], 6),
                "test_hr@10": round(evaluate_named(ranker, data.test.cold(), catalogue)["hr@10"], 6),
            }
        )
    best = max(rows, key=lambda r: r["valid_hr@10"])
    lines = [
        f"trained-in name tokens ({label}): {len(name_keys):,} of {len(keys):,} tokens reach min_count "
        f"{config.defaults.min_count}; fit {fit_s:.0f} s; load average {os.getloadavg()[0]:.1f}",
        f"best on valid: beta {best['beta']}, name-only HR@10 valid {best['valid_hr@10']:.4f}, test {best['test_hr@10']:.4f}",
        *(f"- beta {r['beta']}: valid {r['valid_hr@10']:.4f}, test {r['test_hr@10']:.4f}" for r in rows),
    ]
    write_results(f"cold_start_trained_in_{label}", {"rows": rows, "best": best, "fit_seconds": fit_s}, lines)
