"""The marts as Parquet: the contract between any warehouse (DuckDB, Spark) and training.

Layout of a marts folder (MARTS_DIR, or what `ml train --target sagemaker` uploads):

    <folder>/
      fct_playlist_tracks/*.parquet   a folder of Parquet part files per relation, named after it
      dim_playlists/*.parquet         (what DuckDB's COPY and Spark's INSERT OVERWRITE DIRECTORY
      dim_tracks/*.parquet            write; a single <relation>.parquet file is read too). Columns:
      dim_artists/*.parquet           at least those of the relation in ml.warehouse
      ml_playlist_splits/*.parquet    (docs/contracts.md), same names and types as the DuckDB marts.
      dbt_build_info/*.parquet        provenance (optional: training records it when present)
      _marts.json                     optional manifest: {"format", "written_at", "source",
                                      "relations": {name: {"rows", "columns"}}}; when present
                                      the reader checks the row counts (a truncated copy fails)

`connect(folder)` opens an in-memory DuckDB with one view per relation over its Parquet files, so
the readers of the marts (`open_marts`: training, the model card) read the Parquet marts with the
same SQL as the warehouse: nothing but the folder is needed, no warehouse file. `write_marts` is the writer
from a DuckDB warehouse in Python (with `dbt_build_info` and the manifest; `ml train --target
sagemaker` uses it when no MARTS_DIR is given). `export_marts` (`ml export-marts`) writes the same
layout through the dbt operation `export_marts` (dbt_project/macros/export_marts.sql) on any dbt
target (`dev` = DuckDB, `spark` = Spark), with the quarantine (`rejected_lines`) and without the
manifest; `read_mart` reads one relation back with pyarrow, its columns checked against the
contract.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.dataset as pads

from ml import warehouse as wh
from ml.warehouse import MARTS, REJECTED_LINES, Relation, WarehouseError, build_warehouse

if TYPE_CHECKING:
    import duckdb

EXPORTED: tuple[Relation, ...] = (*MARTS, REJECTED_LINES)
TARGETS = ("dev", "spark")
FORMAT = "music-recsys-marts/1"
MANIFEST = "_marts.json"
RELATIONS: tuple[wh.Relation, ...] = (*wh.MARTS, wh.DBT_BUILD_INFO)
REQUIRED: tuple[wh.Relation, ...] = wh.MARTS


class MartsError(wh.WarehouseError):
    """A marts folder is missing a relation, has the wrong columns, or does not match its manifest."""


@dataclass(frozen=True)
class MartsFolder:
    """A written marts folder: where, and the row count of each relation."""

    path: Path
    rows: dict[str, int]

    def summary(self) -> str:
        counts = ", ".join(f"{name} {n:,}" for name, n in self.rows.items())
        return f"marts -> {self.path} ({counts})"


def open_marts(source: Path | str) -> duckdb.DuckDBPyConnection:
    """The marts, read-only: a folder of Parquet marts, or the DuckDB warehouse file."""
    return connect(source) if Path(source).is_dir() else wh.connect(source)


def _parquet_glob(folder: Path, name: str) -> str | None:
    """The read_parquet() argument of one relation, or None when the folder lacks it."""
    single = folder / f"{name}.parquet"
    if single.is_file():
        return str(single)
    parts = folder / name
    if parts.is_dir() and any(parts.glob("*.parquet")):
        return str(parts / "*.parquet")
    return None


def connect(folder: Path | str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per relation of the folder (read through the views only)."""
    import duckdb

    folder = Path(folder)
    if not folder.is_dir():
        raise MartsError(f"marts folder not found: {folder} (set MARTS_DIR to a folder of Parquet marts)")
    missing = [r.name for r in REQUIRED if _parquet_glob(folder, r.name) is None]
    if missing:
        raise MartsError(
            f"{folder}: no Parquet for {', '.join(missing)} "
            f"(expected <name>/*.parquet or <name>.parquet for each of {', '.join(r.name for r in REQUIRED)})"
        )
    con = duckdb.connect()
    try:
        for relation in RELATIONS:
            source = _parquet_glob(folder, relation.name)
            if source is not None:
                quoted = source.replace("'", "''")
                con.execute(f"create view {relation.name} as select * from read_parquet('{quoted}')")
        _check_manifest(con, folder)
    except Exception:
        con.close()
        raise
    return con


def _check_manifest(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    path = folder / MANIFEST
    if not path.exists():
        return
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MartsError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from exc
    if manifest.get("format") != FORMAT:
        raise MartsError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    for name, info in manifest.get("relations", {}).items():
        if _parquet_glob(folder, name) is None:
            raise MartsError(f"{folder}: the manifest lists {name} but there is no Parquet for it")
        found = int(con.execute(f"select count(*) from {name}").fetchone()[0])
        if found != int(info["rows"]):
            raise MartsError(f"{folder}: {name} has {found:,} rows, the manifest says {int(info['rows']):,}")


def write_marts(db_path: Path | str, out: Path | str, progress: bool = False) -> MartsFolder:
    """Write the marts (and dbt_build_info) of a DuckDB warehouse as a Parquet marts folder.

    Each relation is sorted by its first column (deterministic files for the same warehouse); the
    folder is written beside `out` and renamed into place, so a reader never sees half of it."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    con = wh.connect(db_path)
    rows: dict[str, int] = {}
    relations: dict[str, dict[str, object]] = {}
    try:
        for relation in RELATIONS:
            try:
                wh.check_relation(con, relation)
            except wh.WarehouseError:
                if relation in REQUIRED:
                    raise
                continue  # a warehouse built before dbt_build_info existed
            columns = [
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns where table_name = ? "
                    "order by ordinal_position",
                    [relation.name],
                ).fetchall()
            ]
            (tmp / relation.name).mkdir()
            target = str(tmp / relation.name / "part-0.parquet").replace("'", "''")
            con.execute(
                f"copy (select * from {relation.name} order by {relation.columns[0]}) "
                f"to '{target}' (format parquet, compression zstd)"
            )
            rows[relation.name] = int(con.execute(f"select count(*) from {relation.name}").fetchone()[0])
            relations[relation.name] = {"rows": rows[relation.name], "columns": columns}
            if progress:
                print(f"  {relation.name}: {rows[relation.name]:,} rows", flush=True)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        con.close()
    manifest = {
        "format": FORMAT,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": Path(db_path).name,
        "relations": relations,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return MartsFolder(out, rows)


# --- the dbt operation (any target) and pyarrow reads -------------------------------------------


@dataclass(frozen=True)
class MartsExport:
    """A finished export: where, from which dbt target, rows per relation."""

    out_dir: Path
    target: str
    rows: dict[str, int]
    seconds: float

    def summary(self) -> str:
        counts = ", ".join(f"{name} {n:,}" for name, n in self.rows.items())
        return f"exported {len(self.rows)} relations from target {self.target} to {self.out_dir} ({counts})"


def export_marts(
    out_dir: Path | str,
    *,
    raw_csv: Path | str,
    duckdb_path: Path | str,
    target: str = "dev",
    spark_dir: Path | str | None = None,
    work_dir: Path | str | None = None,
) -> MartsExport:
    """Write the marts of an already built warehouse as Parquet folders under `out_dir` (replaced)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    out = Path(out_dir).resolve()
    if "'" in str(out):
        raise ValueError(f"out_dir {out} contains a quote")
    start = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {"DBT_TARGET": target}
    if spark_dir is not None:
        env["SPARK_DIR"] = str(Path(spark_dir).resolve())
    build_warehouse(
        raw_csv,
        duckdb_path,
        command=("run-operation", "export_marts", "--args", json.dumps({"out_dir": str(out)})),
        work_dir=work_dir,
        extra_env=env,
    )
    rows = {relation.name: read_mart(out, relation).num_rows for relation in EXPORTED}
    return MartsExport(out_dir=out, target=target, rows=rows, seconds=time.perf_counter() - start)


def read_mart(out_dir: Path | str, relation: Relation) -> Any:
    """One exported relation as a pyarrow Table, after checking its columns are the contract's."""
    folder = Path(out_dir) / relation.name
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        raise WarehouseError(f"no Parquet files for {relation.name} in {folder} (run `ml export-marts`)")
    table = pads.dataset([str(f) for f in files], format="parquet").to_table()
    if tuple(table.column_names) != relation.columns:
        raise WarehouseError(
            f"{folder}: columns {', '.join(table.column_names)} differ from the contract's "
            f"{', '.join(relation.columns)} (rebuild and export again)"
        )
    return table
