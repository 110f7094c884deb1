"""The warehouse: build it with dbt, read its marts read-only.

`dbt_project/` turns the raw CSV into tables in one DuckDB file (docs/contracts.md). This module is
how Python touches that file: `build_warehouse` runs a real `dbt build` in a subprocess (tests,
benchmarks, `make dbt` runs the same command by hand), and everything else opens the file with
`read_only=True`, so no `ml` command can change what dbt built.

Relation and column names are constants here (`FCT_PLAYLIST_TRACKS.columns`, ...); `check_relation`
verifies them on read and names the relation and the missing columns when the warehouse is out of
date or was built by another version of the models.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ml.config import REPO_ROOT

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DBT_PROFILES_DIR = REPO_ROOT / "profiles"


# --- relations (docs/contracts.md) -----------------------------------------------------------------


@dataclass(frozen=True)
class Relation:
    """A relation of the warehouse and the columns `ml` relies on (it may have more)."""

    name: str
    columns: tuple[str, ...]


STG_PLAYLIST_TRACKS = Relation(
    "stg_spotify__playlist_tracks",
    ("line_number", "user_id", "artist_name", "track_name", "playlist_name", "is_recovered"),
)
REJECTED_LINES = Relation("rejected_lines", ("line_number", "raw_line", "reason", "detail"))
FCT_PLAYLIST_TRACKS = Relation(
    "fct_playlist_tracks",
    (
        "session_id",
        "playlist_id",
        "session_number",
        "user_id",
        "track_id",
        "artist_id",
        "position",
        "n_occurrences",
        "first_line_number",
    ),
)
DIM_PLAYLISTS = Relation(
    "dim_playlists",
    (
        "session_id",
        "playlist_id",
        "user_id",
        "playlist_name",
        "session_number",
        "n_tracks",
        "n_rows",
        "is_auto",
        "track_ids",
        "first_line_number",
    ),
)
DIM_TRACKS = Relation(
    "dim_tracks",
    ("track_id", "artist_id", "artist_name", "track_name", "n_playlists", "n_rows", "is_unknown_artist"),
)
DIM_ARTISTS = Relation(
    "dim_artists", ("artist_id", "artist_name", "n_tracks", "n_playlists", "n_rows", "is_unknown")
)
ML_PLAYLIST_SPLITS = Relation("ml_playlist_splits", ("session_id", "track_id", "split", "role"))

MARTS: tuple[Relation, ...] = (
    FCT_PLAYLIST_TRACKS,
    DIM_PLAYLISTS,
    DIM_TRACKS,
    DIM_ARTISTS,
    ML_PLAYLIST_SPLITS,
)
STAGING: tuple[Relation, ...] = (STG_PLAYLIST_TRACKS, REJECTED_LINES)
# provenance: one row per build (it changes on every build, unlike the marts)
DBT_BUILD_INFO = Relation(
    "dbt_build_info",
    (
        "dbt_invocation_id",
        "built_at",
        "dbt_version",
        "raw_csv",
        "raw_csv_bytes",
        "raw_csv_modified_at",
        "split_seed",
        "split_by",
        "train_share",
        "valid_share",
        "holdout_share",
    ),
)

SPLITS = ("train", "valid", "test")


class WarehouseError(RuntimeError):
    """The warehouse is missing, out of date, or a build failed; the message says what to do."""


# --- reading -------------------------------------------------------------------------------------


def connect(db_path: Path | str) -> duckdb.DuckDBPyConnection:
    """Open the warehouse read-only (writes fail inside DuckDB)."""
    path = Path(db_path)
    if not path.exists():
        raise WarehouseError(f"warehouse not found: {path} (run `make dbt`, or set DUCKDB_PATH)")
    return duckdb.connect(str(path), read_only=True)


def check_relation(con: duckdb.DuckDBPyConnection, relation: Relation) -> None:
    """Raise WarehouseError naming the relation and its missing columns, if any."""
    found = {
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns where table_name = ?", [relation.name]
        ).fetchall()
    }
    if not found:
        raise WarehouseError(f"relation {relation.name} is missing from the warehouse (run `make dbt`)")
    missing = [c for c in relation.columns if c not in found]
    if missing:
        raise WarehouseError(
            f"relation {relation.name} lacks column(s) {', '.join(missing)} "
            f"(has {', '.join(sorted(found))}); rebuild the warehouse with `make dbt`"
        )


def read_relation(
    con: duckdb.DuckDBPyConnection,
    relation: Relation,
    columns: Sequence[str] | None = None,
    order_by: Sequence[str] = (),
) -> Any:
    """The relation's columns as a pandas DataFrame, after checking they exist."""
    check_relation(con, relation)
    wanted = list(columns or relation.columns)
    unknown = [c for c in wanted if c not in relation.columns]
    if unknown:
        raise ValueError(f"{relation.name}: {', '.join(unknown)} not among {', '.join(relation.columns)}")
    query = f"select {', '.join(wanted)} from {relation.name}"
    if order_by:
        query += f" order by {', '.join(order_by)}"
    return con.execute(query).df()


@dataclass(frozen=True)
class Accounting:
    """Where the raw file's data lines went: staged + rejected = data lines."""

    staged: int
    rejected: int
    recovered: int
    rejected_by_reason: dict[str, int]

    @property
    def data_lines(self) -> int:
        return self.staged + self.rejected


def accounting(db_path: Path | str) -> Accounting:
    """Staged, rejected (by reason) and recovered line counts from the warehouse."""
    con = connect(db_path)
    try:
        for relation in STAGING:
            check_relation(con, relation)
        staged, recovered = con.execute(
            f"select count(*), count(*) filter (where is_recovered) from {STG_PLAYLIST_TRACKS.name}"
        ).fetchone()
        by_reason = dict(
            con.execute(
                f"select reason, count(*) from {REJECTED_LINES.name} group by reason order by reason"
            ).fetchall()
        )
    finally:
        con.close()
    return Accounting(
        staged=int(staged),
        rejected=int(sum(by_reason.values())),
        recovered=int(recovered),
        rejected_by_reason={str(k): int(v) for k, v in by_reason.items()},
    )


def build_info(db_path: Path | str) -> dict[str, Any]:
    """The one row of dbt_build_info: which dbt invocation built the warehouse, from which file."""
    con = connect(db_path)
    try:
        check_relation(con, DBT_BUILD_INFO)
        row = con.execute(f"select {', '.join(DBT_BUILD_INFO.columns)} from {DBT_BUILD_INFO.name}").fetchone()
    finally:
        con.close()
    return dict(zip(DBT_BUILD_INFO.columns, row, strict=True))


def track_names(db_path: Path | str, track_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """track_id -> (artist_name, track_name) from dim_tracks, for the given ids (those it holds)."""
    import pyarrow as pa

    con = connect(db_path)
    try:
        check_relation(con, DIM_TRACKS)
        wanted = pa.table({"track_id": pa.array(list(track_ids), pa.string())})  # noqa: F841 - read by DuckDB
        rows = con.execute(
            f"select d.track_id, d.artist_name, d.track_name from wanted join {DIM_TRACKS.name} as d using (track_id)"
        ).fetchall()
    finally:
        con.close()
    return {t: (a or "", n or "") for t, a, n in rows}


def marts_fingerprint(con: duckdb.DuckDBPyConnection, db_path: Path | str) -> dict[str, Any]:
    """Provenance of what training reads: row counts of the marts, split/role rows, and the dbt
    invocation that built them (from dbt_build_info; None for a warehouse built without it)."""
    counts = {}
    for relation in (FCT_PLAYLIST_TRACKS, DIM_PLAYLISTS, DIM_TRACKS, ML_PLAYLIST_SPLITS):
        counts[relation.name] = int(con.execute(f"select count(*) from {relation.name}").fetchone()[0])
    split_counts = {
        f"{s}/{r}": int(n)
        for s, r, n in con.execute(
            f"select split, role, count(*) from {ML_PLAYLIST_SPLITS.name} group by all order by all"
        ).fetchall()
    }
    invocation_id = source = None
    try:
        check_relation(con, DBT_BUILD_INFO)
        row = con.execute(f"select max(dbt_invocation_id) from {DBT_BUILD_INFO.name}").fetchone()
        if row and row[0]:
            invocation_id, source = str(row[0]), f"{DBT_BUILD_INFO.name}.dbt_invocation_id"
    except WarehouseError:
        pass
    return {
        "warehouse": str(db_path),
        "dbt_invocation_id": invocation_id,
        "dbt_invocation_source": source,
        "row_counts": counts,
        "split_role_rows": split_counts,
    }


def closest_track_names(con: duckdb.DuckDBPyConnection, key: str, n: int) -> list[str]:
    """The n "Artist - Title" names closest to `key` (Jaro-Winkler), most played first among equals."""
    rows = con.execute(
        f"""
        select artist_name || ' - ' || track_name as name
        from {DIM_TRACKS.name}
        order by jaro_winkler_similarity(lower(artist_name || ' - ' || track_name), ?) desc, n_playlists desc
        limit {int(n)}
        """,
        [key],
    ).fetchall()
    return [name for (name,) in rows]


# `ml sql` runs a user's SQL: besides read_only (no write to the warehouse), no file or network
# access (COPY ... TO, ATTACH, read_csv('/etc/passwd'), INSTALL/LOAD), locked so SET cannot undo it.
SQL_SANDBOX = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
}


def run_sql(query: str, db_path: Path | str, limit: int = 50) -> str:
    """Run read-only SQL (no file, network or extension access); the result as a plain-text
    table (at most `limit` rows). A bad query raises WarehouseError with DuckDB's message on one line."""
    path = Path(db_path)
    if not path.exists():
        raise WarehouseError(f"warehouse not found: {path} (run `make dbt`, or set DUCKDB_PATH)")
    con = duckdb.connect(str(path), read_only=True, config=SQL_SANDBOX)
    try:
        try:
            relation = con.sql(query)
            if relation is None:  # a statement without a result (e.g. SET)
                return "ok"
            columns = list(relation.columns)
            rows = relation.limit(limit + 1).fetchall() if limit >= 0 else relation.fetchall()
        except duckdb.Error as exc:
            raise WarehouseError(f"query refused: {one_line(str(exc))}") from exc
    finally:
        con.close()
    truncated = limit >= 0 and len(rows) > limit
    rows = rows[:limit] if truncated else rows
    return format_table(columns, rows, truncated=truncated)


def one_line(message: str) -> str:
    """A multi-line message (DuckDB's LINE 1: ... and caret lines) on one line."""
    parts = [line.strip() for line in message.splitlines()]
    return "; ".join(p for p in parts if p and set(p) != {"^"})


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], truncated: bool = False) -> str:
    """A fixed-width text table; numbers right-aligned, NULL shown as `NULL`."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [
        bool(rows) and all(_is_number(r[i]) or r[i] is None for r in rows) for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(list(columns)), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    footer = f"({len(rows)} row{'s' if len(rows) != 1 else ''}"
    out.append(footer + (", more not shown: raise --limit)" if truncated else ")"))
    return "\n".join(out)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("\n", "\\n")


# --- building ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildResult:
    """A finished `dbt build`: the warehouse it wrote and dbt's output."""

    duckdb_path: Path
    returncode: int
    seconds: float
    output: str

    @property
    def success(self) -> bool:
        return self.returncode == 0

    def tail(self, n_lines: int = 40) -> str:
        return "\n".join(self.output.splitlines()[-n_lines:])


def dbt_executable() -> str:
    """The dbt of this interpreter's environment (the venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    if beside.exists():
        return str(beside)
    found = shutil.which("dbt")
    if not found:
        raise WarehouseError("dbt not found: install the package with its dependencies (make install)")
    return found


def dbt_command(
    command: Sequence[str],
    work_dir: Path,
    *,
    select: str | None = None,
    dbt_vars: Mapping[str, Any] | None = None,
    quiet: bool = False,
) -> list[str]:
    """The dbt command line `make dbt` amounts to: this project and profiles, target/ and logs/
    under `work_dir`, no colours (the benches run the same line under their meters)."""
    args = [dbt_executable(), *command, "--project-dir", str(DBT_PROJECT_DIR)]
    args += ["--profiles-dir", str(DBT_PROFILES_DIR), "--target-path", str(work_dir / "target")]
    args += ["--log-path", str(work_dir / "logs"), "--no-use-colors"]
    if quiet:
        args.append("--quiet")
    if select:
        args += ["--select", select]
    if dbt_vars:
        args += ["--vars", json.dumps(dict(dbt_vars))]
    return args


def build_warehouse(
    raw_csv: Path | str,
    duckdb_path: Path | str,
    *,
    dbt_vars: Mapping[str, Any] | None = None,
    command: Sequence[str] = ("build",),
    select: str | None = None,
    work_dir: Path | str | None = None,
    check: bool = True,
    extra_env: Mapping[str, str] | None = None,
) -> BuildResult:
    """Run `dbt <command>` on `raw_csv` into `duckdb_path`, the same way `make dbt` does.

    dbt's target/ and logs/ go to `work_dir` (default: `<duckdb_path>.dbt/` beside the file), so
    concurrent builds never share them. With `check`, a failed build raises WarehouseError with the
    end of dbt's output (which names the failing model or test, or the bad raw file).
    """
    raw_csv, duckdb_path = Path(raw_csv).resolve(), Path(duckdb_path).resolve()
    work = Path(work_dir) if work_dir else duckdb_path.with_name(duckdb_path.name + ".dbt")
    work.mkdir(parents=True, exist_ok=True)
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    args = dbt_command(command, work, select=select, dbt_vars=dbt_vars)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    env.update(
        RAW_CSV=str(raw_csv),
        DUCKDB_PATH=str(duckdb_path),
        DBT_SEND_ANONYMOUS_USAGE_STATS="False",
        **(extra_env or {}),
    )
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=DBT_PROJECT_DIR, capture_output=True, text=True)
    result = BuildResult(
        duckdb_path=duckdb_path,
        returncode=proc.returncode,
        seconds=time.perf_counter() - start,
        output=proc.stdout + proc.stderr,
    )
    if check and not result.success:
        raise WarehouseError(
            f"dbt {' '.join(command)} failed ({proc.returncode}) on {raw_csv}:\n{result.tail()}"
        )
    return result
