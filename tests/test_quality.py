"""The GX gates: the raw-file gate passes on generated and real data and fails, with a readable
summary, on crafted bad files; the marts gate passes on the tiny warehouse and catches leakage and
evaluated sessions without held-out tracks. Each run writes Data Docs into a scratch gx/ context."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from ml.cli import main as cli
from ml.config import RAW_HEADER, Paths
from ml.quality.gate import GateResult, validate_marts, validate_raw
from ml.quality.thresholds import Range, load_thresholds


@pytest.fixture()
def paths(tmp_path: Path) -> Paths:
    """Scratch paths with their own GX context (the repository's gx/ is left alone)."""
    return Paths(
        raw_csv=tmp_path / "raw.csv",
        duckdb_path=tmp_path / "warehouse.duckdb",
        models_dir=tmp_path / "models",
        reports_dir=tmp_path / "reports",
        gx_dir=tmp_path / "gx",
    )


def _failed(result: GateResult) -> set[str]:
    return {o.check for o in result.failures}


def _lines(csv: Path) -> tuple[str, list[str]]:
    header, *body = csv.read_text(encoding="utf-8").splitlines()
    return header, body


def _write(path: Path, header: str, body: list[str], newline: str = "\n") -> Path:
    path.write_text(newline.join([header, *body]) + newline, encoding="utf-8", newline="")
    return path


# --- raw gate: good files -----------------------------------------------------------------------


def test_raw_gate_passes_on_tiny_preset_and_accounts_for_every_line(tiny_csv: Path, paths: Paths) -> None:
    result = validate_raw(tiny_csv, paths)

    assert result.success, result.summary()
    _, body = _lines(tiny_csv)
    counts = result.counts
    assert counts["data lines"] == len(body)
    assert counts["strict"] + counts["recovered"] + counts["rejected"] == len(body)
    # the generator writes a few lines with unescaped quotes: the gate sees them as recovered
    assert counts["recovered"] > 0
    assert counts["distinct users"] == len({line[1:33] for line in body})
    assert result.data_docs is not None and result.data_docs.exists()
    assert "passed" in result.summary()


def test_raw_gate_passes_on_the_real_sample(real_sample_csv: Path, paths: Paths) -> None:
    result = validate_raw(real_sample_csv, paths)

    assert result.success, result.summary()
    assert result.counts["data lines"] == 500
    empty_artist = next(o for o in result.outcomes if o.check == "empty_artist_share")
    assert empty_artist.observed.startswith("0.2% of 500 lines (1 unexpected)")


def test_suites_stored_under_gx_do_not_change_between_runs(tiny_csv: Path, paths: Paths) -> None:
    validate_raw(tiny_csv, paths)
    first = {p.name: p.read_text() for p in (paths.gx_dir / "expectations").glob("*.json")}
    # another profile and row override: those are suite parameters, not suite content
    validate_raw(tiny_csv, paths, overrides={"raw": {"data_lines": {"min": 1, "max": 10}}})
    second = {p.name: p.read_text() for p in (paths.gx_dir / "expectations").glob("*.json")}

    assert first == second
    assert set(first) == {"raw_file.json", "raw_users.json", "raw_lines.json"}
    suite = json.loads(first["raw_lines.json"])
    row_count = next(e for e in suite["expectations"] if e["type"] == "expect_table_row_count_to_be_between")
    assert row_count["kwargs"]["min_value"] == {"$PARAMETER": "min_data_lines"}


# --- raw gate: bad files ------------------------------------------------------------------------


def test_wrong_header_fails_and_shows_what_was_found(tiny_csv: Path, paths: Paths, tmp_path: Path) -> None:
    _, body = _lines(tiny_csv)
    bad = _write(tmp_path / "bad.csv", '"user_id","artistname","trackname","playlistname"', body)

    result = validate_raw(bad, paths)

    assert not result.success
    assert _failed(result) == {"header_line"}  # the column set is right, the format is not
    summary = result.summary()
    assert "FAIL header line, byte for byte" in summary
    assert '"user_id","artistname","trackname","playlistname"' in summary
    assert RAW_HEADER in summary  # the threshold: the expected header


def test_renamed_column_fails_the_column_set(tiny_csv: Path, paths: Paths, tmp_path: Path) -> None:
    _, body = _lines(tiny_csv)
    bad = _write(tmp_path / "bad.csv", '"user_id", "artist", "trackname", "playlistname"', body)

    result = validate_raw(bad, paths)

    assert _failed(result) == {"header_line", "header_columns"}
    assert "user_id, artist, trackname, playlistname" in result.summary()


def test_bad_user_ids_fail_with_examples(tiny_csv: Path, paths: Paths, tmp_path: Path) -> None:
    header, body = _lines(tiny_csv)
    body[9] = '"NOT-A-HEX-ID"' + body[9][34:]
    bad = _write(tmp_path / "bad.csv", header, body)

    result = validate_raw(bad, paths)

    assert _failed(result) == {"user_id_format"}
    failure = result.failures[0]
    assert "NOT-A-HEX-ID" in failure.examples
    assert "first at line 11" in failure.examples  # header is line 1, body[9] is line 11


def test_too_many_empty_artists_fail_with_share_and_threshold(
    tiny_csv: Path, paths: Paths, tmp_path: Path
) -> None:
    header, body = _lines(tiny_csv)
    for i in range(100):  # blank the artist of the first 100 lines
        fields = body[i].split('","')
        if len(fields) == 4:
            fields[1] = ""
            body[i] = '","'.join(fields)
    bad = _write(tmp_path / "bad.csv", header, body)

    result = validate_raw(bad, paths)

    assert "empty_artist_share" in _failed(result)
    outcome = next(o for o in result.failures if o.check == "empty_artist_share")
    assert outcome.threshold == "<= 1% of parsed lines"
    share = float(outcome.observed.split("%")[0])
    assert share > 2.0  # about 100 of 4,800 lines
    assert "line 2" in outcome.examples


def test_broken_lines_fail_the_rejected_share(tiny_csv: Path, paths: Paths, tmp_path: Path) -> None:
    header, body = _lines(tiny_csv)
    for i in range(0, 400, 8):  # 50 lines cut in half: quotes unbalanced, fields missing
        body[i] = body[i][: len(body[i]) // 2]
    bad = _write(tmp_path / "bad.csv", header, body)

    result = validate_raw(bad, paths)

    assert "rejected_share" in _failed(result)
    assert result.counts["rejected"] >= 50
    assert "FAIL share of rejected lines" in result.summary()


@pytest.mark.parametrize(
    ("name", "mutate", "expected"),
    [
        # a re-saved file: the raw format ends lines with '\n' only
        ("crlf", lambda h, b: (h, b, "\r\n"), {"carriage_returns"}),
        # a bare '\r' inside a name: readers that split on it would see one more line
        (
            "bare_cr",
            lambda h, b: (h, [b[0][:40] + "\r" + b[0][40:], *b[1:]], "\n"),
            {"carriage_returns", "lines_unaccounted"},
        ),
        ("nul", lambda h, b: (h, [b[0][:40] + "\0" + b[0][40:], *b[1:]], "\n"), {"nul_bytes"}),
    ],
)
def test_line_ending_and_byte_problems_fail(tiny_csv, paths, tmp_path, name, mutate, expected) -> None:
    header, body, newline = mutate(*_lines(tiny_csv))
    bad = _write(tmp_path / f"{name}.csv", header, body, newline=newline)

    result = validate_raw(bad, paths)

    assert expected <= _failed(result), result.summary()


def test_invalid_utf8_fails_naming_the_line(tiny_csv: Path, paths: Paths, tmp_path: Path) -> None:
    raw = tiny_csv.read_bytes().split(b"\n")
    raw[4] = raw[4].replace(b'","', b'","\xff', 1)
    bad = tmp_path / "latin.csv"
    bad.write_bytes(b"\n".join(raw))

    result = validate_raw(bad, paths)

    assert "utf8" in _failed(result)
    assert next(o for o in result.failures if o.check == "utf8").observed == "5"


def test_row_count_outside_the_configured_range_fails(tiny_csv: Path, paths: Paths) -> None:
    full = validate_raw(tiny_csv, paths, profile="full")  # the Kaggle file's size
    assert _failed(full) >= {"data_lines", "distinct_users"}
    outcome = next(o for o in full.failures if o.check == "data_lines")
    assert outcome.threshold == "in [12,000,000, 14,000,000]"


def test_empty_and_missing_files_are_clear_errors(paths: Paths, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    missing = tmp_path / "nope" / "spotify_dataset.csv"

    for path, words in [(empty, "raw file is empty"), (missing, "raw file not found")]:
        result = validate_raw(path, paths)
        assert not result.success
        assert result.error is not None and words in result.error and str(path) in result.error
        assert str(path) in result.summary()


def test_header_only_file_fails_on_size(paths: Paths, tmp_path: Path) -> None:
    only_header = _write(tmp_path / "header.csv", RAW_HEADER, [])

    result = validate_raw(only_header, paths)

    assert {"data_lines", "distinct_users"} <= _failed(result)


# --- thresholds ---------------------------------------------------------------------------------


def test_profiles_and_overrides_layer_over_the_thresholds_file() -> None:
    base = load_thresholds()
    full = load_thresholds(profile="full")
    override = load_thresholds(overrides={"raw": {"data_lines": {"min": 5, "max": 50}}})

    assert full.raw.data_lines == Range(12_000_000, 14_000_000)
    assert full.raw.max_empty_artist_share == base.raw.max_empty_artist_share  # not in the profile
    assert override.raw.data_lines == Range(5, 50)
    assert Range.parse("100:") == Range(100, float("inf"))
    with pytest.raises(ValueError, match="unknown gate profile"):
        load_thresholds(profile="nope")
    with pytest.raises(ValueError, match="unknown keys"):
        load_thresholds(overrides={"raw": {"max_empty_artists": 0.1}})


# --- the command line ---------------------------------------------------------------------------


def test_cli_exit_codes_and_row_override(tiny_csv: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAW_CSV", str(tiny_csv))
    monkeypatch.setattr(Paths, "from_env", classmethod(lambda cls: _scratch_paths(tmp_path, tiny_csv)))
    runner = CliRunner()

    ok = runner.invoke(cli, ["validate", "raw"])
    assert ok.exit_code == 0, ok.output
    assert "raw gate on" in ok.output and "passed" in ok.output

    narrow = runner.invoke(cli, ["validate", "raw", "--rows", "1:100"])
    assert narrow.exit_code == 1
    assert "FAIL data lines (header excluded)" in narrow.output
    assert "threshold in [1, 100]" in narrow.output

    bad = runner.invoke(cli, ["validate", "raw", "--csv", str(tmp_path / "missing.csv")])
    assert bad.exit_code == 1
    assert "raw file not found" in bad.output


def _scratch_paths(root: Path, raw: Path) -> Paths:
    return Paths(
        raw_csv=raw,
        duckdb_path=root / "warehouse.duckdb",
        models_dir=root / "models",
        reports_dir=root / "reports",
        gx_dir=root / "gx",
    )


# --- marts gate ---------------------------------------------------------------------------------


@pytest.fixture()
def warehouse_copy(tiny_warehouse: Path, tiny_csv: Path, tmp_path: Path) -> Paths:
    """A private copy of the tiny warehouse (tests may break it) with a scratch GX context."""
    db = tmp_path / "warehouse.duckdb"
    shutil.copyfile(tiny_warehouse, db)
    return Paths(
        raw_csv=tiny_csv,
        duckdb_path=db,
        models_dir=tmp_path / "models",
        reports_dir=tmp_path / "reports",
        gx_dir=tmp_path / "gx",
    )


def _sql(db: Path, query: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(query, params or []).fetchall()


def test_marts_gate_passes_on_the_tiny_warehouse(warehouse_copy: Paths) -> None:
    result = validate_marts(warehouse_copy)

    assert result.success, result.summary()
    db = warehouse_copy.duckdb_path
    [(playlists, evaluated)] = _sql(
        db,
        "select (select count(distinct playlist_id) from dim_playlists), "
        "(select count(distinct session_id) from ml_playlist_splits where role in ('seed', 'holdout'))",
    )
    assert result.counts["playlists"] == playlists
    assert result.counts["evaluated sessions"] == evaluated > 0
    observed = {o.check: o.observed for o in result.outcomes}
    [(n_tracks,)] = _sql(db, "select count(*) from dim_tracks")
    assert observed["rows_dim_tracks"] == f"{n_tracks:,}"
    assert result.data_docs is not None and result.data_docs.exists()


def test_playlist_in_two_splits_fails_naming_it(warehouse_copy: Paths) -> None:
    db = warehouse_copy.duckdb_path
    with duckdb.connect(str(db)) as con:
        session_id, playlist_id = con.execute(
            "select p.session_id, p.playlist_id from dim_playlists p "
            "join ml_playlist_splits s using (session_id) where s.split = 'train' "
            "group by all having count(*) >= 2 order by 1 limit 1"
        ).fetchone()
        # one track of a train session moves to the test split: the playlist leaks across splits
        con.execute(
            "update ml_playlist_splits set split = 'test', role = 'holdout' "
            "where session_id = ? and track_id = (select min(track_id) from ml_playlist_splits where session_id = ?)",
            [session_id, session_id],
        )

    result = validate_marts(warehouse_copy)

    assert "playlist_in_one_split" in _failed(result)
    outcome = next(o for o in result.failures if o.check == "playlist_in_one_split")
    assert playlist_id in outcome.examples
    assert "(1 unexpected)" in outcome.observed


def test_evaluated_session_without_holdout_fails(warehouse_copy: Paths) -> None:
    db = warehouse_copy.duckdb_path
    with duckdb.connect(str(db)) as con:
        [(session_id,)] = con.execute(
            "select min(session_id) from ml_playlist_splits where role = 'holdout'"
        ).fetchall()
        con.execute("update ml_playlist_splits set role = 'seed' where session_id = ?", [session_id])

    result = validate_marts(warehouse_copy)

    assert _failed(result) == {"holdout_present"}
    outcome = result.failures[0]
    assert session_id in outcome.examples
    assert "held-out tracks per evaluated session" in result.summary()


def test_split_shares_are_checked_against_dbt_vars(warehouse_copy: Paths) -> None:
    # with no tolerance at all, a real hash split never hits 0.8 / 0.1 / 0.1 exactly
    strict = load_thresholds(overrides={"marts": {"split_share_tolerance": 0.0, "split_share_z": 0.0}})
    result = validate_marts(warehouse_copy, thresholds=strict)

    assert {"train_share", "valid_share", "test_share"} & _failed(result)
    train = next(o for o in result.outcomes if o.check == "train_share")
    assert "(dbt var: 0.8)" in train.threshold


def test_missing_warehouse_or_relation_is_a_clear_error(warehouse_copy: Paths, tmp_path: Path) -> None:
    missing = replace(warehouse_copy, duckdb_path=tmp_path / "nope.duckdb")
    result = validate_marts(missing)
    assert (
        result.error is not None and "warehouse not found" in result.error and "nope.duckdb" in result.error
    )

    with duckdb.connect(str(warehouse_copy.duckdb_path)) as con:
        con.execute("drop table ml_playlist_splits")
    result = validate_marts(warehouse_copy)
    assert result.error is not None and "ml_playlist_splits" in result.error


def test_raw_gate_counts_agree_with_dbt_staging(tiny_csv: Path, tiny_warehouse: Path, paths: Paths) -> None:
    """The gate and dbt read the same physical lines: recovered and unparseable counts agree."""
    db = tiny_warehouse
    gate = validate_raw(tiny_csv, paths)
    [(recovered,)] = _sql(db, "select count(*) filter (where is_recovered) from stg_spotify__playlist_tracks")
    [(unparseable,)] = _sql(
        db,
        "select count(*) from rejected_lines where reason in ('empty_line', 'not_quoted', 'wrong_field_count')",
    )
    [(staged,), (rejected,)] = _sql(
        db, "select count(*) from stg_spotify__playlist_tracks union all select count(*) from rejected_lines"
    )

    assert gate.counts["data lines"] == staged + rejected
    assert gate.counts["recovered"] == recovered
    assert gate.counts["rejected"] == unparseable
