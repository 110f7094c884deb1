"""ml.warehouse on its own: read-only access, column checks naming what is missing, `ml sql` output."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from ml.warehouse import (
    DIM_ARTISTS,
    FCT_PLAYLIST_TRACKS,
    WarehouseError,
    build_info,
    check_relation,
    connect,
    format_table,
    read_relation,
    run_sql,
)


@pytest.fixture()
def small_db(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create table dim_artists (artist_id varchar, artist_name varchar, n_rows bigint)")
    con.execute("insert into dim_artists values ('a1', 'Muse', 30), ('a2', 'NA', 2), ('a3', '', 1)")
    con.close()
    return path


def test_connect_names_a_missing_warehouse(tmp_path: Path):
    with pytest.raises(WarehouseError, match=r"warehouse not found: .*nope\.duckdb .*make dbt"):
        connect(tmp_path / "nope.duckdb")


def test_check_relation_names_the_relation_and_missing_columns(small_db: Path):
    con = connect(small_db)
    with pytest.raises(
        WarehouseError, match=r"dim_artists lacks column\(s\) n_tracks, n_playlists, is_unknown"
    ):
        check_relation(con, DIM_ARTISTS)
    with pytest.raises(WarehouseError, match="relation fct_playlist_tracks is missing"):
        read_relation(con, FCT_PLAYLIST_TRACKS)
    con.close()


def test_run_sql_formats_and_limits(small_db: Path):
    out = run_sql("select artist_name, n_rows from dim_artists order by n_rows desc", small_db, limit=2)
    lines = out.splitlines()
    assert lines[0].split() == ["artist_name", "n_rows"]
    assert lines[2].split() == ["Muse", "30"]
    assert lines[3].split() == ["NA", "2"]  # a name, not a missing value
    assert lines[-1] == "(2 rows, more not shown: raise --limit)"
    assert run_sql("select null as x", small_db).splitlines()[2] == "NULL"


def test_run_sql_is_read_only(small_db: Path):
    with pytest.raises(WarehouseError, match="read-only"):
        run_sql("create table t as select 1", small_db)
    with pytest.raises(WarehouseError, match="Catalog"):
        run_sql("select * from no_such_table", small_db)


def test_format_table_aligns_numbers_right():
    out = format_table(["name", "n"], [("a", 1), ("bb", 100)])
    assert out.splitlines()[2:4] == ["a       1", "bb    100"]
    assert out.splitlines()[-1] == "(2 rows)"


def test_build_info_names_the_build(tiny_warehouse: Path, tiny_csv: Path):
    info = build_info(tiny_warehouse)
    assert info["raw_csv"] == str(tiny_csv.resolve())
    assert info["raw_csv_bytes"] == tiny_csv.stat().st_size
    assert len(info["dbt_invocation_id"]) == 36
    assert (info["split_seed"], info["split_by"], info["train_share"]) == ("7", "playlist", 0.8)


def test_tiny_warehouse_reads_through_the_constants(tiny_warehouse: Path):
    con = connect(tiny_warehouse)
    try:
        df = read_relation(
            con, FCT_PLAYLIST_TRACKS, ["session_id", "position"], order_by=["session_id", "position"]
        )
    finally:
        con.close()
    assert len(df) > 1000
    assert (df.groupby("session_id")["position"].min() == 1).all()
