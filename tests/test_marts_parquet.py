"""The Parquet marts (ml/marts_parquet.py): written from the tiny warehouse, read back as the same
playlists; Spark-style part folders; a missing relation, a missing column or a truncated copy is
named in a one-line error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from ml import warehouse as wh
from ml.corpus import load_playlists
from ml.marts_parquet import MANIFEST, MartsError, connect, open_marts, write_marts


@pytest.fixture(scope="module")
def tiny_marts(tiny_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_marts(tiny_warehouse, tmp_path_factory.mktemp("marts") / "marts").path


def test_the_parquet_marts_hold_what_the_warehouse_holds(tiny_warehouse, tiny_marts):
    files = sorted(str(p.relative_to(tiny_marts)) for p in tiny_marts.rglob("*") if p.is_file())
    assert files == [
        MANIFEST,
        "dbt_build_info/part-0.parquet",
        "dim_artists/part-0.parquet",
        "dim_playlists/part-0.parquet",
        "dim_tracks/part-0.parquet",
        "fct_playlist_tracks/part-0.parquet",
        "ml_playlist_splits/part-0.parquet",
    ]
    warehouse, parquet = wh.connect(tiny_warehouse), connect(tiny_marts)
    try:
        for relation in (*wh.MARTS, wh.DBT_BUILD_INFO):
            wh.check_relation(parquet, relation)
            query = f"select * from {relation.name} order by all"
            assert parquet.execute(query).fetchall() == warehouse.execute(query).fetchall(), relation.name
            assert [r[1] for r in parquet.execute(f"describe {relation.name}").fetchall()] == [
                r[1] for r in warehouse.execute(f"describe {relation.name}").fetchall()
            ]
        a, b = load_playlists(warehouse), load_playlists(parquet)
        assert a.fingerprint() == b.fingerprint() and a.n_tracks == b.n_tracks > 0
        fp_w = wh.marts_fingerprint(warehouse, tiny_warehouse)
        fp_p = wh.marts_fingerprint(parquet, tiny_marts)
        assert fp_p["row_counts"] == fp_w["row_counts"] and fp_p["split_role_rows"] == fp_w["split_role_rows"]
        assert fp_p["dbt_invocation_id"] == fp_w["dbt_invocation_id"] is not None
    finally:
        warehouse.close()
        parquet.close()
    manifest = json.loads((tiny_marts / MANIFEST).read_text())
    assert manifest["relations"]["fct_playlist_tracks"]["rows"] == fp_w["row_counts"]["fct_playlist_tracks"]


def test_writing_twice_gives_the_same_files(tiny_warehouse, tiny_marts, tmp_path):
    again = write_marts(tiny_warehouse, tmp_path / "again").path
    for path in tiny_marts.glob("*/*.parquet"):
        relative = path.relative_to(tiny_marts)
        assert pq.read_table(again / relative).equals(pq.read_table(path)), relative


def test_open_marts_takes_a_folder_or_the_warehouse(tiny_warehouse, tiny_marts):
    for source in (tiny_warehouse, tiny_marts):
        con = open_marts(source)
        try:
            assert con.execute("select count(*) from dim_tracks").fetchone()[0] > 0
        finally:
            con.close()


def test_several_part_files_or_one_file_per_relation_are_read(tiny_marts, tmp_path):
    """Spark writes several part files per relation; a hand-made folder may hold <relation>.parquet."""
    parts, single = tmp_path / "parts", tmp_path / "single"
    single.mkdir()
    for path in tiny_marts.glob("*/part-0.parquet"):
        table = pq.read_table(path)
        name = path.parent.name
        (parts / name).mkdir(parents=True)
        half = table.num_rows // 2
        pq.write_table(table.slice(0, half), parts / name / "part-00000.parquet")
        pq.write_table(table.slice(half), parts / name / "part-00001.parquet")
        pq.write_table(table, single / f"{name}.parquet")
    a, b, c = connect(tiny_marts), connect(parts), connect(single)
    try:
        assert (
            load_playlists(a).fingerprint()
            == load_playlists(b).fingerprint()
            == load_playlists(c).fingerprint()
        )
    finally:
        for con in (a, b, c):
            con.close()


def test_a_missing_relation_is_named(tiny_marts, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_marts, broken)
    shutil.rmtree(broken / "ml_playlist_splits")
    with pytest.raises(MartsError, match=r"no Parquet for ml_playlist_splits \(expected"):
        connect(broken)


def test_a_missing_column_is_named(tiny_marts, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_marts, broken)
    part = broken / "fct_playlist_tracks" / "part-0.parquet"
    pq.write_table(pq.read_table(part).drop_columns(["position"]), part)
    (broken / MANIFEST).unlink()
    con = connect(broken)
    try:
        with pytest.raises(wh.WarehouseError, match="fct_playlist_tracks lacks column"):
            wh.check_relation(con, wh.FCT_PLAYLIST_TRACKS)
    finally:
        con.close()


def test_a_truncated_copy_does_not_match_its_manifest(tiny_marts, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_marts, broken)
    part = broken / "dim_tracks" / "part-0.parquet"
    table = pq.read_table(part)
    pq.write_table(table.slice(0, table.num_rows - 3), part)
    with pytest.raises(MartsError, match=f"dim_tracks has {table.num_rows - 3:,} rows, the manifest says"):
        connect(broken)


def test_not_a_folder(tmp_path):
    with pytest.raises(MartsError, match="marts folder not found"):
        connect(tmp_path / "nowhere")


def test_the_views_are_read_only_over_the_files(tiny_marts):
    con = connect(tiny_marts)
    try:
        with pytest.raises(duckdb.Error):
            con.execute("insert into dim_tracks select * from dim_tracks limit 1")
    finally:
        con.close()
