"""The data-quality gates: the raw file before dbt reads it, the marts before the model reads them.

Each returns a GateResult whose summary() says which check failed, what was observed and what the
threshold is; `ml validate raw|marts` prints it and exits non-zero when `success` is false.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ml.config import Paths
from ml.quality.gx_run import Outcome, data_docs_index, open_context, run_name, run_suites
from ml.quality.raw_scan import RawFileError, RawFrames, read_raw_frames
from ml.quality.suites import (
    EVALUATION_SPLITS,
    MART_RELATIONS,
    SHARE_CHECKS,
    SPLITS,
    marts_parameters,
    marts_suites,
    raw_parameters,
    raw_suites,
)
from ml.quality.thresholds import THRESHOLDS_PATH, Thresholds, load_thresholds
from ml.warehouse import (
    DBT_BUILD_INFO,
    DIM_ARTISTS,
    DIM_PLAYLISTS,
    DIM_TRACKS,
    FCT_PLAYLIST_TRACKS,
    ML_PLAYLIST_SPLITS,
    WarehouseError,
    check_relation,
    connect,
)


@dataclass(frozen=True)
class GateResult:
    gate: str  # "raw" or "marts"
    target: Path
    success: bool
    outcomes: tuple[Outcome, ...] = ()
    error: str | None = None  # the gate could not run at all (missing file, missing relation...)
    data_docs: Path | None = None
    profile: str | None = None
    elapsed_s: float = 0.0
    counts: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase

    @property
    def failures(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.success)

    def summary(self) -> str:
        profile = self.profile or "default"
        head = f"{self.gate} gate on {self.target} (profile {profile})"
        if self.error:
            return f"{head}: FAILED\n  error: {self.error}"
        verdict = (
            "passed" if self.success else f"FAILED ({len(self.failures)} of {len(self.outcomes)} checks)"
        )
        lines = [f"{head}: {verdict}, {len(self.outcomes)} checks in {self.elapsed_s:.1f} s"]
        if self.counts:
            lines.append("  " + ", ".join(f"{k} {_num(v)}" for k, v in self.counts.items()))
        if self.timings:
            lines.append(
                "  time: " + ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in self.timings.items())
            )
        width = max((len(o.label) for o in self.outcomes), default=0)
        for o in sorted(self.outcomes, key=lambda o: o.success):
            mark = "ok  " if o.success else "FAIL"
            lines.append(f"  {mark} {o.label:<{width}}  observed {o.observed}; threshold {o.threshold}")
            if o.examples:
                lines.append(f"       e.g. {o.examples}")
        if self.data_docs:
            lines.append(f"  Data Docs: {self.data_docs}")
        return "\n".join(lines)


def _num(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _thresholds(
    thresholds: Thresholds | None, profile: str | None, overrides: dict[str, Any] | None
) -> Thresholds:
    if thresholds is not None:
        return thresholds
    return load_thresholds(THRESHOLDS_PATH, profile=profile, overrides=overrides)


def _unreadable(gate: str, path: Path, err: duckdb.Error, profile: str | None) -> GateResult:
    """A failed gate for a file DuckDB cannot read: its first error line, naming the file."""
    first = str(err).strip().splitlines()[0]
    return GateResult(gate, path, False, error=f"DuckDB cannot read {path}: {first}", profile=profile)


def validate_raw(
    csv_path: Path,
    paths: Paths,
    *,
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
    thresholds: Thresholds | None = None,
    threads: int | None = None,
) -> GateResult:
    """Gate the raw CSV: header, file-level bytes, user ids, parse shares, sizes (see gx/thresholds.yml)."""
    start = time.perf_counter()
    csv_path = Path(csv_path)
    try:
        t = _thresholds(thresholds, profile, overrides)
        frames = read_raw_frames(csv_path, (t.raw.line_length.min, t.raw.line_length.max), threads=threads)
    except (RawFileError, ValueError, FileNotFoundError) as err:
        return GateResult("raw", csv_path, False, error=str(err), profile=profile)
    except duckdb.Error as err:
        return _unreadable("raw", csv_path, err, profile)

    file_suite, users_suite, lines_suite = raw_suites(t.raw)
    batches = [(file_suite, frames.file)]
    facts = frames.facts
    counts: dict[str, Any] = {"physical lines": facts.physical_lines}
    totals: dict[str, int] = {}
    if frames.line_counts is not None and frames.users is not None:
        batches += [(users_suite, frames.users), (lines_suite, frames.line_counts)]
        totals = {k: int(v) for k, v in frames.line_counts.iloc[0].items()}
        totals["distinct_users"] = len(frames.users)
        counts |= {
            "data lines": totals["data_lines"],
            "strict": totals["strict_lines"],
            "recovered": totals["recovered_lines"],
            "rejected": totals["rejected_lines"],
            "distinct users": len(frames.users),
        }
    if facts.control_lines.lines:
        counts["control-character lines"] = facts.control_lines.lines
    gx_start = time.perf_counter()
    context = open_context(paths.gx_dir)
    outcomes = run_suites(
        context, batches, run_name=run_name("raw", csv_path), parameters=raw_parameters(t.raw, totals)
    )
    outcomes = [_with_lines(o, frames, totals) for o in outcomes]
    timings = {**frames.timings, "gx_validate_and_docs_s": time.perf_counter() - gx_start}
    return GateResult(
        gate="raw",
        target=csv_path,
        success=all(o.success for o in outcomes),
        outcomes=tuple(outcomes),
        data_docs=data_docs_index(paths.gx_dir),
        profile=t.profile,
        elapsed_s=time.perf_counter() - start,
        counts=counts,
        timings=timings,
    )


def _lines_list(numbers: tuple[int, ...], total: int) -> str:
    if not numbers:
        return ""
    shown = ", ".join(str(n) for n in numbers)
    more = f" (first {len(numbers)} of {total:,})" if total > len(numbers) else ""
    return f"line{'s' if len(numbers) > 1 else ''} {shown}{more}"


def _with_lines(o: Outcome, frames: RawFrames, totals: dict[str, int]) -> Outcome:
    """Counts in words ("16 of 4,027 data lines (0.397%)") and the offending line numbers."""
    facts = frames.facts
    if o.check in SHARE_CHECKS and totals:
        column, of, _ = SHARE_CHECKS[o.check]
        n, total = totals[column], totals[of]
        share = f"{n / total * 100:.3g}%" if total else "n/a"
        observed = f"{n:,} of {total:,} {of.replace('_', ' ')} ({share})"
        return replace(o, observed=observed, examples=_lines_list(frames.examples.get(column, ()), n))
    bytes_on_lines = {
        "carriage_returns": ("'\\r' bytes", facts.carriage_returns, facts.cr_lines),
        "nul_bytes": ("NUL bytes", facts.nul_bytes, facts.nul_lines),
        "control_characters": (None, None, facts.control_lines),
    }
    if o.check in bytes_on_lines:
        what, n_bytes, kind = bytes_on_lines[o.check]
        on = f"{kind.lines:,} line{'' if kind.lines == 1 else 's'}"
        observed = on if what is None else f"{n_bytes:,} {what} on {on}"
        # the examples are shown when the check fails or when any such line exists
        return replace(o, observed=observed, examples=_lines_list(kind.examples, kind.lines))
    return o


# --- marts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitVars:
    """The split vars the build used (dbt_build_info): expected shares and the unit the split hashes."""

    shares: dict[str, float]
    split_by: str  # "playlist" or "user"

    @property
    def unit_column(self) -> str:
        return "playlist_id" if self.split_by == "playlist" else "user_id"


def read_split_vars(con: duckdb.DuckDBPyConnection) -> SplitVars:
    """From dbt_build_info, so `dbt build --vars ...` and the gate cannot disagree."""
    check_relation(con, DBT_BUILD_INFO)
    train, valid, split_by = con.execute(
        f"select train_share, valid_share, split_by from {DBT_BUILD_INFO.name}"
    ).fetchone()
    train, valid = float(train), float(valid)
    shares = {"train": train, "valid": valid, "test": round(1.0 - train - valid, 10)}
    return SplitVars(shares=shares, split_by=str(split_by))


def read_mart_frames(
    con: duckdb.DuckDBPyConnection, split_vars: SplitVars
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    """Small aggregate frames: one summary row, one row per playlist, one per evaluated session.

    Returns them with the number of split units (playlists or users, as dbt's split_by says).
    """
    for relation in (DIM_TRACKS, DIM_ARTISTS, DIM_PLAYLISTS, FCT_PLAYLIST_TRACKS, ML_PLAYLIST_SPLITS):
        check_relation(con, relation)  # names the missing relation or column

    summary: dict[str, Any] = {
        f"rows_{rel}": con.execute(f"select count(*) from {rel}").fetchone()[0] for rel in MART_RELATIONS
    }
    unit = split_vars.unit_column
    per_split = dict(
        con.execute(
            f"""
            select s.split, count(distinct p.{unit})
            from {ML_PLAYLIST_SPLITS.name} as s
            inner join {DIM_PLAYLISTS.name} as p on s.session_id = p.session_id
            group by s.split
            """
        ).fetchall()
    )
    n_units = sum(per_split.values())
    for split in SPLITS:
        summary[f"{split}_share"] = per_split.get(split, 0) / n_units if n_units else 0.0
    evaluated = con.execute(
        f"""
        select
            session_id,
            any_value(split) as split,
            count(*) filter (where role = 'seed') as n_seed,
            count(*) filter (where role = 'holdout') as n_holdout,
        from {ML_PLAYLIST_SPLITS.name}
        where split in ('valid', 'test') and role in ('seed', 'holdout')
        group by session_id
        order by session_id
        """
    ).df()
    for split in EVALUATION_SPLITS:
        summary[f"evaluated_{split}_sessions"] = int((evaluated["split"] == split).sum())
    playlists = con.execute(
        f"""
        select p.playlist_id, count(distinct s.split) as n_splits,
        from {ML_PLAYLIST_SPLITS.name} as s
        inner join {DIM_PLAYLISTS.name} as p on s.session_id = p.session_id
        group by p.playlist_id
        order by p.playlist_id
        """
    ).df()
    return (
        pd.DataFrame([summary]),
        playlists.set_index("playlist_id"),
        evaluated.set_index("session_id"),
        n_units,
    )


def validate_marts(
    paths: Paths,
    *,
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
    thresholds: Thresholds | None = None,
) -> GateResult:
    """Gate the marts the model reads: sizes, split shares, no playlist in two splits, held-out tracks."""
    start = time.perf_counter()
    db_path = paths.duckdb_path
    try:
        t = _thresholds(thresholds, profile, overrides)
        con = connect(db_path)
        try:
            split_vars = read_split_vars(con)
            summary, playlists, evaluated, n_units = read_mart_frames(con, split_vars)
        finally:
            con.close()
    except (WarehouseError, FileNotFoundError, ValueError, KeyError) as err:
        return GateResult("marts", db_path, False, error=str(err), profile=profile)
    except duckdb.Error as err:
        return _unreadable("marts", db_path, err, profile)

    summary_suite, playlists_suite, evaluated_suite = marts_suites(t.marts)
    context = open_context(paths.gx_dir)
    outcomes = run_suites(
        context,
        [(summary_suite, summary), (playlists_suite, playlists), (evaluated_suite, evaluated)],
        run_name=run_name("marts", db_path),
        parameters=marts_parameters(t.marts, split_vars.shares, n_units),
    )
    return GateResult(
        gate="marts",
        target=db_path,
        success=all(o.success for o in outcomes),
        outcomes=tuple(outcomes),
        data_docs=data_docs_index(paths.gx_dir),
        profile=t.profile,
        elapsed_s=time.perf_counter() - start,
        counts={
            f"split units ({split_vars.split_by})": n_units,
            "playlists": len(playlists),
            "evaluated sessions": len(evaluated),
        },
    )
