"""The same dbt models on two warehouses: DuckDB (target dev) and Spark (target spark, dbt-spark's
session method, a real pyspark session), built from the same tiny raw file.

Both builds run every model, data test and unit test (a failing test fails the build), and the
marts they export as Parquet (the contract between any warehouse and training) are identical, row
for row: ids, sessions, positions, splits and roles, and the quarantined lines with their reasons.
Marked `spark`: one Spark build and one export, about a minute on a quiet machine (Spark starts a JVM
per dbt command).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import TEST_SEED

from ml.marts_parquet import EXPORTED, export_marts, read_mart
from ml.warehouse import FCT_PLAYLIST_TRACKS, ML_PLAYLIST_SPLITS, REJECTED_LINES, build_warehouse

pytest.importorskip("pyspark", reason="the spark extra is not installed (pip install -e '.[spark]')")
pytestmark = pytest.mark.spark


def _test_results(run_results: Path) -> dict[str, str]:
    """Every node of a dbt build (models, data tests, unit tests) and its status."""
    results = json.loads(run_results.read_text())["results"]
    # exposures are documentation (status no-op); models, data tests and unit tests are what ran
    return {r["unique_id"]: r["status"] for r in results if not r["unique_id"].startswith("exposure.")}


def _rows(table) -> list[tuple]:
    return sorted((tuple(row.values()) for row in table.to_pylist()), key=repr)


def test_duckdb_and_spark_build_the_same_marts(tiny_csv: Path, tiny_warehouse: Path, tmp_path: Path):
    spark_dir = tmp_path / "spark"
    spark_env = {"SPARK_DIR": str(spark_dir), "SPARK_SHUFFLE_PARTITIONS": "1", "DBT_TARGET": "spark"}
    spark_work = tmp_path / "spark_dbt"
    spark = build_warehouse(
        tiny_csv,
        tmp_path / "unused.duckdb",
        dbt_vars={"split_seed": TEST_SEED},
        work_dir=spark_work,
        extra_env=spark_env,
        check=False,
    )
    assert spark.success, f"dbt build --target spark failed:\n{spark.tail(60)}"
    # the tables are Parquet files in the session's warehouse folder, not in the working directory
    assert (spark_dir / "spark-warehouse").is_dir() and (spark_dir / "metastore_db").is_dir()

    # the same nodes ran on both targets, and every one passed
    duck_nodes = _test_results(
        tiny_warehouse.with_name(tiny_warehouse.name + ".dbt") / "target/run_results.json"
    )
    spark_nodes = _test_results(spark_work / "target" / "run_results.json")
    assert duck_nodes.keys() == spark_nodes.keys()
    assert {s for s in duck_nodes.values()} == {s for s in spark_nodes.values()} == {"success", "pass"}
    assert sum(uid.startswith("unit_test.") for uid in spark_nodes) == 5
    assert sum(uid.startswith("test.") for uid in spark_nodes) > 80

    # the marts leave both warehouses as Parquet; they are identical
    duck_db = tmp_path / "duck" / "warehouse.duckdb"
    duck_db.parent.mkdir()
    shutil.copy(tiny_warehouse, duck_db)  # the shared fixture is never written to
    duck_out = export_marts(tmp_path / "marts_duckdb", raw_csv=tiny_csv, duckdb_path=duck_db, target="dev")
    spark_out = export_marts(
        tmp_path / "marts_spark",
        raw_csv=tiny_csv,
        duckdb_path=tmp_path / "unused.duckdb",
        target="spark",
        spark_dir=spark_dir,
        work_dir=spark_work,
    )
    assert duck_out.rows == spark_out.rows
    for relation in EXPORTED:
        duck_table = read_mart(duck_out.out_dir, relation)
        spark_table = read_mart(spark_out.out_dir, relation)
        assert duck_table.schema.types == spark_table.schema.types, relation.name
        assert _rows(duck_table) == _rows(spark_table), relation.name

    # the comparison covered real content: sessions with positions, three splits, quarantined lines
    fct = read_mart(spark_out.out_dir, FCT_PLAYLIST_TRACKS).to_pylist()
    assert max(r["position"] for r in fct) > 5
    splits = {r["split"] for r in read_mart(spark_out.out_dir, ML_PLAYLIST_SPLITS).to_pylist()}
    assert splits == {"train", "valid", "test"}
    rejected = read_mart(spark_out.out_dir, REJECTED_LINES).to_pylist()
    assert rejected and all(r["reason"] and r["raw_line"] is not None for r in rejected)
