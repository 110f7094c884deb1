"""How hard the generated data is to learn, beside the published figures for the real file.

`python -m bench realism` measures, on the full preset (BENCH_DATA_DIR/spotify_full.csv, the file
`bench generate` writes; generated when absent) and on the small demo preset:

* Learnability, computed from the dbt marts (a real `dbt build` into a scratch DuckDB file), under
  the protocol of the only published figures on the real Kaggle `spotify_dataset.csv`: one seeded
  random held-out track per evaluated playlist, the rest of the playlist as the query, a seeded 30%
  sample of playlists evaluated (playlists = sessions of `fct_playlist_tracks` with at least 2
  distinct tracks). Everything not held out trains the rankers (the other playlists whole and the
  query part of the evaluated ones). Rankers: most popular (query tracks excluded) and the
  project's item co-occurrence kNN (`ml.baselines.fit_cooc_variants` with the project's defaults;
  its normalisation, cosine or raw counts, is picked on a disjoint seeded 5% validation sample,
  the way `ml.train` picks it on valid). Metric: HR@10 (with one held-out track, the hit rate).
* Size statistics of the raw file (DuckDB with the real-format reader), next to the published
  figures for the real file: within 10% is the target.

Targets (full preset): popularity HR@10 in [0.0007, 0.002], item-kNN HR@10 in [0.07, 0.13] (the
published real-file figures are about 0.0011 and 0.097), the largest playlist 40k-50k rows. The small
preset (~300k rows) is reported against the same learnability ranges; its size statistics are
scaled-down by design and are reported, not judged.

Results: bench/results/realism.json and realism.md. The rankers are reached through the small adapter
below (`_rank_popularity`, `_fit_rank_item_knn`, `playlists_from_marts`) so they can be re-pointed
when the ranker interface changes. The item-kNN computes only the item rows its queries use, one
normalisation at a time (`fit_cooc_variants(rows=...)`): the same rankings as the full model, with
a fraction of its time and memory.

`python -m bench.bench_realism --csv FILE` is the proxy used while calibrating: the same figures
without dbt. `playlists_from_csv` reproduces the marts' sessions, ids and positions from the raw file
(tests/test_realism.py checks it equals `playlists_from_marts`), so on the same file the proxy prints
the benchmark's numbers exactly; `--eval-share` evaluates a smaller sample (faster, noisier: for
tuning only) and `--seed` changes the held-out draw.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from bench.common import BENCH_DATA_DIR, REPO_ROOT, run_measured, write_results
from ml.baselines import fit_cooc_variants, popularity_counts, popularity_order, rank_cooc, rank_popularity
from ml.data.generate import DUCKDB_RAW_READ_OPTIONS
from ml.data.sampling import sorted_unique
from ml.shapes import Ragged
from ml.warehouse import build_warehouse

SEED = 42
EVAL_SHARE = 0.30  # of eligible playlists, as in the published figures
VALID_SHARE = 0.05  # disjoint sample that picks the kNN normalisation
K = 10
PROXY_DUCKDB_MEMORY = "3GB"  # as the dbt profile: DuckDB spills beyond it
KNN_NORMALISATIONS = ("cosine", "none")  # the choices ml.train picks from on valid
FULL_RAW = BENCH_DATA_DIR / "spotify_full.csv"
SMALL_RAW = BENCH_DATA_DIR / "spotify_small.csv"
SCRATCH = BENCH_DATA_DIR / "realism"

# Published figures for the real file (issue 11) and the ranges the generator is calibrated to.
LEARNABILITY_TARGETS = {
    "popularity_hr@10": {"published": 0.0011, "range": [0.0007, 0.002]},
    "item_knn_hr@10": {"published": 0.097, "range": [0.07, 0.13]},
}
MAX_PLAYLIST_RANGE = [40_000, 50_000]
SIZE_TARGETS = {  # published value; target: within 10%
    "rows": 12_900_000,
    "users": 15_900,
    "playlists": 230_000,
    "distinct_tracks": 2_600_000,
    "artists": 290_000,
    "empty_artist_rows": 33_500,
    "starred_rows": 1_340_000,
}
MEDIAN_PLAYLIST_RANGE = [16, 20]
SIZE_TOLERANCE = 0.10


# --- adapter: playlists and rankers ---------------------------------------------------------------


def playlists_from_marts(db_path: Path) -> Ragged:
    """Distinct tracks of every playlist session in `fct_playlist_tracks`, as integer track ids."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        cols = con.execute(
            """
            with t as (select track_id, row_number() over (order by track_id) - 1 as idx
                       from (select distinct track_id from fct_playlist_tracks)),
                 s as (select session_id, row_number() over (order by session_id) - 1 as sidx
                       from (select distinct session_id from fct_playlist_tracks))
            select s.sidx, t.idx from fct_playlist_tracks f
            join t using (track_id) join s using (session_id)
            order by s.sidx, f.position
            """
        ).fetchnumpy()
    finally:
        con.close()
    return _group(np.asarray(cols["sidx"], dtype=np.int64), np.asarray(cols["idx"], dtype=np.int64))


def _raw_field(i: int) -> str:
    """Field i of a split line as base_spotify__lines stages it: unescaped on lines holding a
    backslash, surrounding spaces and tabs trimmed (macros raw_field_value, unescape_backslashes)."""
    f = f"f[{i}]"
    unescaped = f"case when has_backslash then regexp_replace({f}, '\\\\([\"\\\\])', '\\1', 'g') else {f} end"
    return f"trim({unescaped}, ' ' || chr(9))"


def _normalized(col: str) -> str:
    """macro duckdb__normalize_name: lower-cased, whitespace runs made one space, trimmed."""
    return (
        f"trim(case when regexp_matches({col}, '\\s\\s|[\\t\\n\\f\\r]') "
        f"then regexp_replace(lower({col}), '\\s+', ' ', 'g') else lower({col}) end)"
    )


# The marts' playlist sessions straight from the raw file, without dbt: the same line split, the same
# quarantine rules, the same md5 ids (playlist_id, session_id, track_id) and the same session cut and
# positions as base_spotify__lines -> int_* -> fct_playlist_tracks, so `playlists_from_csv` returns
# exactly what `playlists_from_marts` returns (tests/test_realism.py checks it on generated and real rows).
_CSV_SESSIONS_SQL = f"""
with
numbered as (
    select unnest(range(1, len(l) + 1)) as line_number, unnest(l) as raw_line, len(l) as n_elements
    from (select string_split(content, chr(10)) as l from read_text({{path}}))
),
data_lines as (
    select
        line_number,
        case when ends_with(raw_line, chr(13)) then substring(raw_line, 1, length(raw_line) - 1)
             else raw_line end as line_text
    from numbered
    where line_number > 1 and not (line_number = n_elements and raw_line = '')
),
split_fields as (
    select
        line_number,
        line_text,
        length(line_text) >= 2 and starts_with(line_text, '"') and ends_with(line_text, '"') as is_quoted,
        contains(line_text, chr(92)) as has_backslash,
        string_split(substring(line_text, 2, length(line_text) - 2), '","') as f
    from data_lines
),
fields as (
    select
        line_number, line_text, is_quoted, len(f) as n_fields,
        {_raw_field(1)} as user_id,
        {_raw_field(2)} as artist_name,
        {_raw_field(3)} as track_name,
        {_raw_field(4)} as playlist_name
    from split_fields
),
staged as (
    select * from fields
    where line_text != ''
        and not regexp_matches(line_text, '[\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f]')
        and is_quoted and n_fields = 4
        and regexp_full_match(user_id, '[0-9a-f]{{{{32}}}}')
        and track_name != '' and playlist_name != ''
),
identified as (
    select
        line_number,
        substring(md5(user_id || chr(31) || playlist_name), 1, 16) as playlist_id,
        substring(md5({_normalized("artist_name")} || chr(31) || {_normalized("track_name")}), 1, 16) as track_id
    from staged
),
select * from identified
"""
_SESSIONS_FROM_IDENTIFIED_SQL = """
with
run_starts as (
    select *, case when lag(playlist_id) over (order by line_number) = playlist_id then 0 else 1 end as is_run_start
    from identified_lines
),
runs as (
    select *, sum(is_run_start) over (order by line_number rows between unbounded preceding and current row)
        as session_key
    from run_starts
),
collapsed as (
    select session_key, playlist_id, track_id, min(line_number) as first_line_number
    from runs group by session_key, playlist_id, track_id
),
sessions as (
    select
        session_key,
        substring(md5(playlist_id || chr(31)
            || cast(dense_rank() over (partition by playlist_id order by session_key) as varchar)), 1, 16)
            as session_id
    from (select distinct session_key, playlist_id from collapsed)
),
final as (
    select sessions.session_id, collapsed.track_id, collapsed.first_line_number
    from collapsed inner join sessions using (session_key)
)
select
    dense_rank() over (order by session_id) - 1 as sidx,
    dense_rank() over (order by track_id) - 1 as idx
from final
order by sidx, first_line_number
"""


def playlists_from_csv(csv: Path) -> Ragged:
    """The proxy without dbt: the same playlists as `playlists_from_marts` on the file's warehouse
    (same sessions, same track indices, same positions), computed straight from the raw file."""
    con = duckdb.connect()
    try:
        con.execute("set preserve_insertion_order = false")
        con.execute(f"set memory_limit = '{PROXY_DUCKDB_MEMORY}'")
        path = "'" + str(csv).replace("'", "''") + "'"
        # Two steps, as dbt materialises the staged lines first: DuckDB streams each within its limit.
        con.execute(f"create temp table identified_lines as {_CSV_SESSIONS_SQL.format(path=path)}")
        cols = con.execute(_SESSIONS_FROM_IDENTIFIED_SQL).fetchnumpy()
    finally:
        con.close()
    return _group(np.asarray(cols["sidx"], dtype=np.int64), np.asarray(cols["idx"], dtype=np.int64))


def _group(rows: np.ndarray, tracks: np.ndarray) -> Ragged:
    """Sorted (row, track) pairs -> Ragged with one row per distinct row id."""
    _, counts = np.unique(rows, return_counts=True)
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Ragged(indptr=indptr, values=tracks)


def _rank_popularity(train: Ragged, n_tracks: int, queries: Ragged) -> np.ndarray:
    popular = popularity_order(popularity_counts(train, n_tracks))
    return rank_popularity(popular, queries, K).tracks


def _fit_rank_item_knn(
    train: Ragged,
    n_tracks: int,
    queries: dict[str, Ragged],
    targets: dict[str, np.ndarray],
    seed: int,
    eval_all: bool = False,
) -> tuple[str, dict[str, dict[str, float]]]:
    """HR@10 of the project's item co-occurrence kNN: each normalisation on 'valid', which picks the
    one to report (ties: the first of KNN_NORMALISATIONS), then the picked one on 'eval' (every one
    with `eval_all`, a diagnostic).

    Each model computes only the item rows its queries use (`rows=`), one at a time: the rankings
    are the full model's, in a fraction of its time and memory."""
    popular = popularity_order(popularity_counts(train, n_tracks))
    hr: dict[str, dict[str, float]] = {"valid": {}, "eval": {}}

    def score(sample: str, names: tuple[str, ...]) -> None:
        rows = sorted_unique(queries[sample].values)
        for name in names:
            model = fit_cooc_variants(train, n_tracks, (name,), seed=seed, rows=rows)[name]
            hr[sample][name] = hit_rate(rank_cooc(model, queries[sample], popular, K).tracks, targets[sample])
            del model

    score("valid", KNN_NORMALISATIONS)
    best = max(KNN_NORMALISATIONS, key=lambda name: (hr["valid"][name], -KNN_NORMALISATIONS.index(name)))
    score("eval", KNN_NORMALISATIONS if eval_all else (best,))
    return best, hr


# --- protocol -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaveOneOut:
    train: Ragged  # every playlist, held-out tracks removed
    queries: dict[str, Ragged]  # "eval" and "valid": the rest of each sampled playlist
    targets: dict[str, np.ndarray]  # one held-out track per sampled playlist


def leave_one_out(
    playlists: Ragged, seed: int = SEED, eval_share: float = EVAL_SHARE, valid_share: float = VALID_SHARE
) -> LeaveOneOut:
    """Seeded samples of playlists with >= 2 tracks (eval_share, then a disjoint valid_share); one
    random held-out track each."""
    rng = np.random.default_rng(seed)
    lengths = playlists.lengths
    eligible = np.flatnonzero(lengths >= 2)
    order = eligible[rng.permutation(len(eligible))]
    n_eval = round(eval_share * len(eligible))
    n_valid = round(valid_share * len(eligible))
    samples = {"eval": np.sort(order[:n_eval]), "valid": np.sort(order[n_eval : n_eval + n_valid])}
    held = np.zeros(len(playlists.values), dtype=bool)
    queries, targets = {}, {}
    for name, idx in samples.items():
        pick = playlists.indptr[idx] + (rng.random(len(idx)) * lengths[idx]).astype(np.int64)
        held[pick] = True
        targets[name] = playlists.values[pick]
        q = Ragged.from_lists([playlists.row(int(i)) for i in idx])
        keep = np.ones(len(q.values), dtype=bool)
        keep[q.indptr[:-1] + (pick - playlists.indptr[idx])] = False
        queries[name] = _filter(q, keep)
    return LeaveOneOut(train=_filter(playlists, ~held), queries=queries, targets=targets)


def _filter(r: Ragged, keep: np.ndarray) -> Ragged:
    row_of = np.repeat(np.arange(len(r)), r.lengths)[keep]
    indptr = np.zeros(len(r) + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of, minlength=len(r)), out=indptr[1:])
    return Ragged(indptr=indptr, values=r.values[keep])


def hit_rate(ranked: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean((ranked[:, :K] == targets[:, None]).any(axis=1))) if len(targets) else 0.0


def learnability(
    playlists: Ragged,
    seed: int = SEED,
    eval_share: float = EVAL_SHARE,
    valid_share: float = VALID_SHARE,
    eval_all: bool = False,
) -> dict[str, object]:
    """The benchmark's figures; smaller shares (the proxy's --eval-share) only to tune faster."""
    n_tracks = int(playlists.values.max()) + 1
    loo = leave_one_out(playlists, seed, eval_share, valid_share)
    t0 = time.perf_counter()
    pop = hit_rate(_rank_popularity(loo.train, n_tracks, loo.queries["eval"]), loo.targets["eval"])
    normalise, hr = _fit_rank_item_knn(loo.train, n_tracks, loo.queries, loo.targets, seed, eval_all)
    train_counts = popularity_counts(loo.train, n_tracks)
    return {
        "popularity_hr@10": round(pop, 5),
        "item_knn_hr@10": round(hr["eval"][normalise], 4),
        "item_knn_normalise": normalise,
        "item_knn_hr@10_by_normalise": {
            sample: {name: round(v, 4) for name, v in by.items()} for sample, by in hr.items()
        },
        "evaluated_playlists": len(loo.targets["eval"]),
        "held_out_unseen_in_train_share": round(float(np.mean(train_counts[loo.targets["eval"]] == 0)), 4),
        "eval_seconds": round(time.perf_counter() - t0, 1),
    }


# --- size statistics ------------------------------------------------------------------------------


def size_stats(csv: Path) -> dict[str, object]:
    """The raw file's size statistics with the real-format reader (what the published figures count)."""
    con = duckdb.connect()
    con.execute(f"create temp table raw as select * from read_csv('{csv}', {DUCKDB_RAW_READ_OPTIONS})")
    q = lambda sql: con.execute(sql).fetchone()  # noqa: E731
    rejected = q("select count(distinct line) from reject_errors")[0]
    loaded, users = q("select count(*), count(distinct user_id) from raw")
    playlists, median_rows, max_rows = q(
        "select count(*), median(n), max(n) from (select count(*) n from raw group by user_id, playlistname)"
    )
    tracks, artists = q(
        "select count(distinct (lower(trim(coalesce(artistname, ''))), lower(trim(coalesce(trackname, ''))))),"
        " count(distinct lower(trim(coalesce(artistname, '')))) from raw"
    )
    empty_artist, starred = q(
        "select count(*) filter (where coalesce(artistname, '') = ''),"
        " count(*) filter (where playlistname = 'Starred') from raw"
    )
    con.close()
    return {
        "rows": loaded + rejected,
        "users": users,
        "playlists": playlists,
        "distinct_tracks": tracks,
        "artists": artists,
        "median_playlist_rows": float(median_rows),
        "max_playlist_rows": max_rows,
        "empty_artist_rows": empty_artist,
        "starred_rows": starred,
    }


def judge(learn: dict[str, object], sizes: dict[str, object], judge_sizes: bool) -> dict[str, object]:
    """Each figure beside its target and whether it is met."""
    out: dict[str, object] = {}
    for key, t in LEARNABILITY_TARGETS.items():
        v = float(learn[key])  # type: ignore[arg-type]
        out[key] = {"value": v, **t, "met": t["range"][0] <= v <= t["range"][1]}
    if not judge_sizes:
        return out
    m = int(sizes["max_playlist_rows"])  # type: ignore[call-overload]
    out["max_playlist_rows"] = {
        "value": m,
        "range": MAX_PLAYLIST_RANGE,
        "met": MAX_PLAYLIST_RANGE[0] <= m <= MAX_PLAYLIST_RANGE[1],
    }
    med = float(sizes["median_playlist_rows"])  # type: ignore[arg-type]
    out["median_playlist_rows"] = {
        "value": med,
        "range": MEDIAN_PLAYLIST_RANGE,
        "met": MEDIAN_PLAYLIST_RANGE[0] <= med <= MEDIAN_PLAYLIST_RANGE[1],
    }
    for key, published in SIZE_TARGETS.items():
        v = int(sizes[key])  # type: ignore[call-overload]
        lo, hi = published * (1 - SIZE_TOLERANCE), published * (1 + SIZE_TOLERANCE)
        out[key] = {"value": v, "published": published, "range": [round(lo), round(hi)], "met": lo <= v <= hi}
    return out


# --- the benchmark --------------------------------------------------------------------------------


def _ensure(raw: Path, preset: str) -> float | None:
    if raw.exists():
        return None
    raw.parent.mkdir(parents=True, exist_ok=True)
    print(f"{raw} is absent: generating preset {preset} (seed {SEED})", flush=True)
    cmd = [sys.executable, "-m", "ml.cli", "data", "generate", "--preset", preset, "--seed", str(SEED)]
    return run_measured([*cmd, "--out", str(raw)]).wall_s


def measure(raw: Path, preset: str) -> dict[str, object]:
    _ensure(raw, preset)
    db = SCRATCH / f"{preset}.duckdb"
    t0 = time.perf_counter()
    build_warehouse(raw, db, dbt_vars={"split_seed": SEED}, command=("run",))
    dbt_s = time.perf_counter() - t0
    learn = learnability(playlists_from_marts(db))
    sizes = size_stats(raw)
    return {
        "raw_csv": os.path.relpath(raw, REPO_ROOT),
        "dbt_run_s": round(dbt_s, 1),
        **learn,
        **sizes,
        "targets": judge(learn, sizes, judge_sizes=preset == "full"),
    }


def _lines(preset: str, r: dict[str, object]) -> list[str]:
    targets: dict[str, dict[str, object]] = r["targets"]  # type: ignore[assignment]
    out = [
        f"## {preset} preset ({r['raw_csv']}, seed {SEED})",
        "",
        "| figure | generated | target | met |",
        "|---|---:|---|---|",
    ]
    for key, t in targets.items():
        rng = t["range"]
        pub = f" (real: {t['published']:,})" if "published" in t else ""
        out.append(
            f"| {key} | {t['value']:,} | {rng[0]:,} - {rng[1]:,}{pub} | {'yes' if t['met'] else 'NO'} |"
        )
    shown = [k for k in SIZE_TARGETS if k not in targets] + ["median_playlist_rows", "max_playlist_rows"]
    extra = ", ".join(f"{k}={r[k]:,}" for k in shown if k not in targets)
    out += [
        "",
        f"item-kNN normalisation picked on the validation sample: {r['item_knn_normalise']}; "
        f"{r['evaluated_playlists']:,} playlists evaluated; held-out tracks never seen in train: "
        f"{r['held_out_unseen_in_train_share']:.1%}; eval {r['eval_seconds']} s after a {r['dbt_run_s']} s dbt run."
        + (f" Size statistics (scaled down by design, not judged): {extra}." if extra else ""),
        "",
    ]
    return out


def main() -> None:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    _ensure(SMALL_RAW, "small")
    results = {"full": measure(FULL_RAW, "full"), "small": measure(SMALL_RAW, "small")}
    full = results["full"]
    figures = {
        "protocol": (
            f"leave-one-out: one seeded random held-out track per playlist, the rest as query; a seeded "
            f"{EVAL_SHARE:.0%} sample of playlists (sessions with >= 2 distinct tracks) evaluated; "
            f"trained on everything not held out; item-kNN normalisation picked on a disjoint "
            f"{VALID_SHARE:.0%} sample; HR@{K}; from the dbt marts (fct_playlist_tracks)"
        ),
        "seed": SEED,
        "popularity_hr@10": full["popularity_hr@10"],
        "item_knn_hr@10": full["item_knn_hr@10"],
        "max_playlist_rows": full["max_playlist_rows"],
        "all_targets_met": all(t["met"] for t in full["targets"].values()),  # type: ignore[union-attr]
        "full": full,
        "small": results["small"],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    lines = [
        "Learnability and size of the generated file beside the published real-file figures.",
        "",
        figures["protocol"],
        "",
        *_lines("full", full),
        *_lines("small", results["small"]),
        f"load average at the end (1/5/15 min): {figures['load_average_at_end']} on {os.cpu_count()} CPUs",
    ]
    write_results("realism", figures, lines)


def _proxy(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description="leave-one-out learnability straight from a CSV (no dbt)")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--no-sizes", action="store_true")
    p.add_argument("--seed", type=int, default=SEED, help="the protocol's seed (the held-out draw)")
    p.add_argument(
        "--eval-share",
        type=float,
        default=EVAL_SHARE,
        help="evaluate a smaller sample to tune faster (valid shrinks in proportion); not the benchmark's figure",
    )
    p.add_argument("--all-normalisations", action="store_true", help="also score the unpicked ones on eval")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    pl = playlists_from_csv(a.csv)
    out = learnability(
        pl, a.seed, a.eval_share, VALID_SHARE * a.eval_share / EVAL_SHARE, a.all_normalisations
    )
    if not a.no_sizes:
        out.update(size_stats(a.csv))
    out["read_s"] = round(time.perf_counter() - t0 - float(out["eval_seconds"]), 1)  # type: ignore[arg-type]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(_proxy(sys.argv[1:]))
