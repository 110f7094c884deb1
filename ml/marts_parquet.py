"""The marts as Parquet: the contract between any warehouse (DuckDB, Spark) and training.

`export_marts` runs the dbt operation `export_marts` (dbt_project/macros/export_marts.sql) on a
target (`dev` = DuckDB, `spark` = Spark), which writes `<out_dir>/<relation>/*.parquet` for every
mart `ml` reads and the quarantine (`rejected_lines`). `read_mart` reads one back with pyarrow and
checks its columns against ml.warehouse's constants, whichever warehouse wrote it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads

from ml.warehouse import MARTS, REJECTED_LINES, Relation, WarehouseError, build_warehouse

EXPORTED: tuple[Relation, ...] = (*MARTS, REJECTED_LINES)
TARGETS = ("dev", "spark")


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
