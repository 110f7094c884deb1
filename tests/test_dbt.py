"""The dbt warehouse, built for real (`dbt build` on DuckDB files), checked against the raw files.

A small reference parser in Python (`reference_parse`, written from the raw format's rules, sharing
no code with the SQL) decides for every physical line of a file whether it is staged or rejected and
what its fields are; the warehouse must agree line by line. A hand-made file pins sessions,
duplicates, recovered lines, literal `NA`-style names, the empty artist rule and every reject
reason. Bad raw files must stop `dbt build` with a message naming the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from conftest import TEST_SEED

from ml.config import RAW_HEADER
from ml.warehouse import (
    DIM_PLAYLISTS,
    FCT_PLAYLIST_TRACKS,
    MARTS,
    ML_PLAYLIST_SPLITS,
    REJECTED_LINES,
    STG_PLAYLIST_TRACKS,
    accounting,
    build_warehouse,
    connect,
)

U_A = "a" * 32
U_B = "b" * 32

# The hand-made file: line number -> line (line 1 is the header). Sessions, duplicates and every
# reject reason are known. Line 19 ends with CRLF, line 23 has no final newline.
HANDMADE_LINES = [
    RAW_HEADER,
    f'"{U_A}","The Beatles","Help!","Rock"',  # 2  Rock session 1
    f'"{U_A}","Queen","Bohemian Rhapsody","Rock"',  # 3
    f'"{U_A}","the  beatles "," help!","Rock"',  # 4  same track as line 2: collapsed
    f'"{U_A}","NA","null","Chill"',  # 5  literal names stay strings
    f'"{U_A}","","None","Chill"',  # 6  empty artist
    f'"{U_A}","X","Y","Z","W"',  # 7  five fields: rejected
    f'"{U_A}","Muse","Uprising","Rock"',  # 8  Rock session 2
    "",  # 9  empty line: rejected, does not cut the session
    f'"{U_A}","Muse","Starlight","Rock"',  # 10 Rock session 2
    f'"{U_B}","Weird "Al" Yankovic","White & Nerdy","Starred"',  # 11 unescaped quotes: recovered
    f'"{U_B}","\\"Weird Al\\" Yankovic","Amish Paradise","Starred"',  # 12 escaped quotes: strict
    f'"{U_B}","AC/DC","T.N.T.","  liked from radio  "',  # 13 auto playlist, any case, trimmed
    f'"{U_B.upper()}","A","B","C"',  # 14 invalid user id
    f'"{U_B}","Artist","","Mix"',  # 15 empty track name
    f'"{U_B}","Artist","Song","   "',  # 16 empty playlist name (after trimming)
    f"{U_B},Artist,Song,Mix",  # 17 not quoted
    f'"{U_B}","Road\rWarrior","Song","Mix"',  # 18 a lone CR inside a line: control_character
    f'"{U_B}","\tTabbed","Song2","Mix"\r',  # 19 CRLF line end; a leading tab is trimmed
    f'"{U_B}","Back\\\\slash","Song3","Mix"',  # 20 escaped backslash
    f'"{U_B}","Art\x00ist","Song5","Mix"',  # 21 a NUL byte: control_character
    f'"{U_B}","Red","Song\x1b[31m6\x7f","Mix"',  # 22 ESC and DEL: control_character
    f'"{U_B}","NaN","Song4","Mix"',  # 23 last line, no final newline
]
HANDMADE_TEXT = "\n".join(HANDMADE_LINES)


# --- an independent reference parser ------------------------------------------------------------

STRICT_LINE = re.compile(r'"(?:[^"\\]|\\.)*"(?:,"(?:[^"\\]|\\.)*"){3}')


@dataclass(frozen=True)
class ParsedLine:
    line_number: int
    reason: str | None
    fields: tuple[str, str, str, str] | None = None
    is_recovered: bool = False


def physical_lines(path: Path) -> list[str]:
    """The file's lines split on '\\n' only (a final newline ends the last line)."""
    text = path.read_bytes().decode("utf-8")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


def reference_parse(line_number: int, raw: str) -> ParsedLine:
    line = raw[:-1] if raw.endswith("\r") else raw
    if line == "":
        return ParsedLine(line_number, "empty_line")
    if any(c != "\t" and unicodedata.category(c) == "Cc" for c in line):
        return ParsedLine(line_number, "control_character")
    if len(line) < 2 or not (line.startswith('"') and line.endswith('"')):
        return ParsedLine(line_number, "not_quoted")
    parts = line[1:-1].split('","')
    if len(parts) != 4:
        return ParsedLine(line_number, "wrong_field_count")
    user, artist, track, playlist = (re.sub(r'\\(["\\])', r"\1", p).strip(" \t") for p in parts)
    if not re.fullmatch(r"[0-9a-f]{32}", user):
        return ParsedLine(line_number, "invalid_user_id")
    if track == "":
        return ParsedLine(line_number, "empty_track_name")
    if playlist == "":
        return ParsedLine(line_number, "empty_playlist_name")
    return ParsedLine(line_number, None, (user, artist, track, playlist), STRICT_LINE.fullmatch(line) is None)


def reference_parse_file(path: Path) -> list[ParsedLine]:
    return [reference_parse(i, raw) for i, raw in enumerate(physical_lines(path)[1:], start=2)]


def normalized(name: str) -> str:
    """The contract's normalization: lower-cased, whitespace runs (RE2's \\s) made one space, trimmed."""
    return re.sub(r"[ \t\n\f\r]+", " ", name.lower()).strip(" ")


def contract_id(*parts: str) -> str:
    return hashlib.md5("\x1f".join(parts).encode()).hexdigest()[:16]


def assert_matches_reference(db_path: Path, csv_path: Path) -> list[ParsedLine]:
    """Every physical data line is staged or rejected exactly as the reference parser says."""
    expected = reference_parse_file(csv_path)
    lines = physical_lines(csv_path)
    con = connect(db_path)
    try:
        staged = {
            r[0]: r[1:]
            for r in con.execute(
                "select line_number, user_id, artist_name, track_name, playlist_name, is_recovered "
                "from stg_spotify__playlist_tracks"
            ).fetchall()
        }
        rejected = {
            r[0]: r[1:]
            for r in con.execute("select line_number, raw_line, reason from rejected_lines").fetchall()
        }
    finally:
        con.close()
    assert len(staged) + len(rejected) == len(expected) == len(lines) - 1
    for want in expected:
        if want.reason is None:
            assert want.line_number in staged, (
                f"line {want.line_number} not staged: {lines[want.line_number - 1]!r}"
            )
            assert staged[want.line_number] == (*want.fields, want.is_recovered), f"line {want.line_number}"
        else:
            raw, reason = rejected[want.line_number]
            assert reason == want.reason, f"line {want.line_number}: {reason} != {want.reason}"
            assert raw == lines[want.line_number - 1], (
                f"raw_line of line {want.line_number} is not the file's line"
            )
    return expected


# --- the tiny generated warehouse ---------------------------------------------------------------


def test_tiny_every_line_is_staged_or_rejected_as_the_reference_says(tiny_warehouse: Path, tiny_csv: Path):
    expected = assert_matches_reference(tiny_warehouse, tiny_csv)
    counts = accounting(tiny_warehouse)
    assert counts.data_lines == len(expected)
    assert counts.staged == sum(p.reason is None for p in expected)
    # the generator's quirks are present, so the checks above exercised them
    assert counts.recovered > 0
    assert counts.rejected > 0


def test_tiny_strict_lines_agree_with_a_csv_reader(tiny_warehouse: Path, tiny_csv: Path):
    """On lines that follow the CSV grammar, Python's csv module (backslash escapes) gives the same fields."""
    con = connect(tiny_warehouse)
    staged = {
        r[0]: r[1:]
        for r in con.execute(
            "select line_number, user_id, artist_name, track_name, playlist_name "
            "from stg_spotify__playlist_tracks where not is_recovered"
        ).fetchall()
    }
    con.close()
    lines = physical_lines(tiny_csv)
    for line_number, fields in staged.items():
        row = next(csv.reader(io.StringIO(lines[line_number - 1]), escapechar="\\", doublequote=False))
        assert tuple(v.strip(" \t") for v in row) == fields, f"line {line_number}"


def test_tiny_marts_reconcile_and_follow_the_contract_ids(tiny_warehouse: Path):
    con = connect(tiny_warehouse)
    try:
        n_staged = con.execute("select count(*) from stg_spotify__playlist_tracks").fetchone()[0]
        assert con.execute("select sum(n_occurrences) from fct_playlist_tracks").fetchone()[0] == n_staged
        assert con.execute("select sum(n_rows) from dim_playlists").fetchone()[0] == n_staged
        # ids recomputed in Python from the contract's definition
        for artist_id, artist_name, track_id, track_name in con.execute(
            "select artist_id, artist_name, track_id, track_name from dim_tracks"
        ).fetchall():
            assert track_id == contract_id(normalized(artist_name), normalized(track_name))
            assert artist_id == contract_id(normalized(artist_name))
        for playlist_id, user_id, name in con.execute(
            "select distinct playlist_id, user_id, playlist_name from dim_playlists"
        ).fetchall():
            assert playlist_id == contract_id(user_id, name)
        # track_ids lists the session's tracks by position
        rows = con.execute(
            "select p.track_ids, string_agg(f.track_id, ' ' order by f.position) "
            "from dim_playlists p join fct_playlist_tracks f using (session_id) group by p.session_id, p.track_ids"
        ).fetchall()
        assert rows and all(a == b for a, b in rows)
        # the generator writes each playlist as one contiguous block: one session per playlist mostly
        n_sessions, n_playlists = con.execute(
            "select count(*), count(distinct playlist_id) from dim_playlists"
        ).fetchone()
        assert n_playlists <= n_sessions <= n_playlists * 1.05
        # auto playlists are flagged
        autos = {
            r[0]
            for r in con.execute("select distinct playlist_name from dim_playlists where is_auto").fetchall()
        }
        assert autos and autos <= {"Starred", "Liked from Radio"}
    finally:
        con.close()


def test_tiny_contracts_are_enforced_column_types(tiny_warehouse: Path):
    con = connect(tiny_warehouse)
    types = dict(
        ((t, c), d)
        for t, c, d in con.execute(
            "select table_name, column_name, data_type from information_schema.columns"
        ).fetchall()
    )
    con.close()
    for relation in MARTS:
        for column in relation.columns:
            assert (relation.name, column) in types, f"{relation.name}.{column}"
    assert types[("fct_playlist_tracks", "position")] == "INTEGER"
    assert types[("fct_playlist_tracks", "n_occurrences")] == "INTEGER"
    assert types[("dim_playlists", "is_auto")] == "BOOLEAN"
    assert types[("dim_tracks", "n_playlists")] == "BIGINT"
    assert types[("stg_spotify__playlist_tracks", "line_number")] == "BIGINT"


# --- splits ------------------------------------------------------------------------------------


def _split_rows(db_path: Path) -> list[tuple]:
    con = connect(db_path)
    try:
        return con.execute(
            "select session_id, track_id, split, role from ml_playlist_splits order by all"
        ).fetchall()
    finally:
        con.close()


def test_tiny_split_protocol(tiny_warehouse: Path):
    con = connect(tiny_warehouse)
    try:
        per_session = con.execute(
            """
            select s.session_id, p.playlist_id, count(distinct s.split), min(s.split), count(*),
                   count(*) filter (where role = 'holdout'), count(*) filter (where role = 'seed')
            from ml_playlist_splits s join dim_playlists p using (session_id)
            group by s.session_id, p.playlist_id
            """
        ).fetchall()
        n_fct = con.execute("select count(*) from fct_playlist_tracks").fetchone()[0]
    finally:
        con.close()
    assert sum(r[4] for r in per_session) == n_fct
    assert all(r[2] == 1 for r in per_session), "a session in two splits"
    by_playlist: dict[str, set[str]] = {}
    for _, playlist_id, _, split, *_ in per_session:
        by_playlist.setdefault(playlist_id, set()).add(split)
    assert all(len(s) == 1 for s in by_playlist.values()), "a playlist in two splits"
    splits = [r[3] for r in per_session]
    assert {"train", "valid", "test"} <= set(splits)
    assert 0.6 < splits.count("train") / len(splits) < 0.95
    for _, _, _, split, n, n_holdout, n_seed in per_session:
        if split != "train" and n >= 3:
            assert n_holdout >= 1 and n_seed >= 2 and n_holdout + n_seed == n
            assert n_holdout == min(n - 2, max(1, round(n * 0.2)))  # n * 0.2 is never a tie


@pytest.fixture(scope="module")
def tiny_warehouse_copy(tiny_warehouse: Path, tmp_path_factory: pytest.TempPathFactory):
    """A writable copy of the tiny warehouse, to rebuild single models with other vars."""

    def make(name: str) -> Path:
        target = tmp_path_factory.mktemp(name) / "warehouse.duckdb"
        shutil.copy(tiny_warehouse, target)
        return target

    return make


def _table_rows(db_path: Path, table: str) -> list[tuple]:
    con = connect(db_path)
    try:
        return con.execute(f"select * from {table} order by all").fetchall()
    finally:
        con.close()


def test_rebuild_from_scratch_gives_identical_marts(tiny_warehouse: Path, tiny_csv: Path, tmp_path: Path):
    again = tmp_path / "again.duckdb"
    build_warehouse(tiny_csv, again, dbt_vars={"split_seed": TEST_SEED}, command=("run",))
    for relation in (*MARTS, REJECTED_LINES, STG_PLAYLIST_TRACKS):
        assert _table_rows(again, relation.name) == _table_rows(tiny_warehouse, relation.name), relation.name


def test_split_seed_changes_the_split(tiny_warehouse: Path, tiny_csv: Path, tiny_warehouse_copy):
    other_seed = tiny_warehouse_copy("split_seed")
    build_warehouse(
        tiny_csv,
        other_seed,
        dbt_vars={"split_seed": TEST_SEED + 1},
        command=("run",),
        select="ml_playlist_splits",
    )
    assert _split_rows(other_seed) != _split_rows(tiny_warehouse)


def test_split_by_user_keeps_each_user_in_one_split(tiny_csv: Path, tiny_warehouse_copy):
    db = tiny_warehouse_copy("split_user")
    # build also runs the split model's data tests, including assert_split_key_is_in_one_split
    build_warehouse(
        tiny_csv, db, dbt_vars={"split_seed": TEST_SEED, "split_by": "user"}, select="ml_playlist_splits"
    )
    con = connect(db)
    try:
        users = con.execute(
            "select p.user_id, count(distinct s.split) from ml_playlist_splits s "
            "join dim_playlists p using (session_id) group by p.user_id"
        ).fetchall()
    finally:
        con.close()
    assert len(users) >= 5
    assert all(n == 1 for _, n in users)


def test_unique_combination_test_finds_exactly_the_repeated_combinations(tiny_csv: Path, tiny_warehouse_copy):
    # the generic test groups the strings only where a combination hash repeats: it must still report
    # each repeated (session_id, track_id) of fct_playlist_tracks, with its count, and nothing else
    db = tiny_warehouse_copy("unique_combination")
    con = duckdb.connect(str(db))
    try:
        con.execute(
            "insert into fct_playlist_tracks select * from fct_playlist_tracks "
            "where (session_id, track_id) in (select (session_id, track_id) from fct_playlist_tracks "
            "order by session_id, track_id limit 2)"
        )
        con.execute(
            "insert into fct_playlist_tracks select * from fct_playlist_tracks "
            "where (session_id, track_id) = (select min((session_id, track_id)) from fct_playlist_tracks)"
        )
        expected = con.execute(
            "select session_id, track_id, count(*) from fct_playlist_tracks "
            "group by all having count(*) > 1 order by all"
        ).fetchall()
    finally:
        con.close()
    assert [n for _, _, n in expected] == [4, 2]
    result = build_warehouse(
        tiny_csv,
        db,
        dbt_vars={"split_seed": TEST_SEED},
        command=("test", "--store-failures"),
        select="fct_playlist_tracks,test_name:unique_combination_of_columns",
        check=False,
    )
    assert not result.success
    assert "Got 2 results" in result.output
    con = connect(db)
    try:
        # --store-failures keeps the failing rows in a table of the audit schema (one test selected)
        (audit_table,) = con.execute(
            "select table_name from information_schema.tables where table_schema = 'main_dbt_test__audit'"
        ).fetchall()
        failures = con.execute(
            f'select session_id, track_id, n_rows from main_dbt_test__audit."{audit_table[0]}" order by all'
        ).fetchall()
    finally:
        con.close()
    assert failures == expected


def test_bad_split_vars_stop_the_build(tiny_csv: Path, tmp_path: Path):
    result = build_warehouse(
        tiny_csv, tmp_path / "w.duckdb", dbt_vars={"split_by": "track"}, command=("run",), check=False
    )
    assert not result.success
    assert "split_by must be 'playlist' or 'user'" in result.output


# --- the hand-made file ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handmade(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("handmade")
    csv_path = root / "handmade.csv"
    csv_path.write_bytes(HANDMADE_TEXT.encode("utf-8"))
    db_path = root / "warehouse.duckdb"
    build_warehouse(csv_path, db_path, dbt_vars={"split_seed": TEST_SEED})
    return csv_path, db_path


def test_handmade_lines_staged_rejected_and_numbered_physically(handmade):
    csv_path, db_path = handmade
    expected = assert_matches_reference(db_path, csv_path)
    assert len(expected) == 22
    con = connect(db_path)
    try:
        rejected = dict(con.execute("select line_number, reason from rejected_lines").fetchall())
        staged = {r[0]: r[1:] for r in con.execute("select * from stg_spotify__playlist_tracks").fetchall()}
    finally:
        con.close()
    assert rejected == {
        7: "wrong_field_count",
        9: "empty_line",
        14: "invalid_user_id",
        15: "empty_track_name",
        16: "empty_playlist_name",
        17: "not_quoted",
        18: "control_character",
        21: "control_character",
        22: "control_character",
    }
    assert staged[4] == (U_A, "the  beatles", "help!", "Rock", False)
    assert staged[5] == (U_A, "NA", "null", "Chill", False)
    assert staged[6] == (U_A, "", "None", "Chill", False)
    assert staged[11] == (U_B, 'Weird "Al" Yankovic', "White & Nerdy", "Starred", True)
    assert staged[12] == (U_B, '"Weird Al" Yankovic', "Amish Paradise", "Starred", False)
    assert staged[13][3] == "liked from radio"
    assert staged[19] == (U_B, "Tabbed", "Song2", "Mix", False)
    assert staged[20][1] == "Back\\slash"
    assert staged[23][1] == "NaN"


def test_handmade_control_characters_are_named_with_their_line(handmade):
    """A line holding a control character (not tab) is quarantined with the character and its place."""
    _, db_path = handmade
    con = connect(db_path)
    try:
        details = dict(
            con.execute(
                "select line_number, detail from rejected_lines where reason = 'control_character'"
            ).fetchall()
        )
        names = con.execute(
            "select artist_name || track_name || playlist_name || user_id from stg_spotify__playlist_tracks"
        ).fetchall()
    finally:
        con.close()
    for line_number, char in ((18, "\r"), (21, "\x00"), (22, "\x1b")):
        column = HANDMADE_LINES[line_number - 1].index(char) + 1
        assert f"U+{ord(char):04X} at character {column} " in details[line_number], details[line_number]
    # nothing but tab of the control characters reaches a staged name
    assert not [n for (n,) in names if any(c != "\t" and unicodedata.category(c) == "Cc" for c in n)]


def _base_lines(db_path: Path) -> list[tuple]:
    con = connect(db_path)
    try:
        return con.execute("select * from base_spotify__lines order by line_number").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize(
    ("variant", "line_18", "line_19"),
    [
        # no '\r' and no chr(30) in the file: DuckDB reads it with the CSV reader as a line reader
        ("line reader", f'"{U_B}","Road\x1bWarrior","Song","Mix"', f'"{U_B}","\tTabbed","Song2","Mix"'),
        # a chr(30) (the line reader's delimiter) in a line: the whole text is split as a list
        ("record separator", f'"{U_B}","Road\x1eWarrior","Song","Mix"', f'"{U_B}","\tTabbed","Song2","Mix"'),
    ],
)
def test_both_physical_line_readers_give_the_same_lines(variant, line_18, line_19, tmp_path: Path):
    """base_spotify__lines is the same table whichever way the file is cut into lines (the parallel
    CSV line reader or the list split; physical_lines_reader), and both agree with the reference
    parser line by line: empty lines, NUL, ESC, DEL, a last line without newline."""
    lines = list(HANDMADE_LINES)
    lines[17], lines[18] = line_18, line_19
    csv_path = tmp_path / "handmade.csv"
    csv_path.write_bytes("\n".join(lines).encode("utf-8"))
    built = {}
    for reader in ("auto", "list"):
        db_path = tmp_path / f"{reader}.duckdb"
        build_warehouse(
            csv_path, db_path, dbt_vars={"split_seed": TEST_SEED, "physical_lines_reader": reader}
        )
        assert_matches_reference(db_path, csv_path)
        built[reader] = _base_lines(db_path)
        compiled = next(Path(f"{db_path}.dbt", "target", "compiled").rglob("base_spotify__lines.sql"))
        used_line_reader = "read_csv(" in compiled.read_text()
        assert used_line_reader == (reader == "auto" and variant == "line reader"), (variant, reader)
    assert built["auto"] == built["list"], variant
    assert len(built["auto"]) == len(lines) - 1
    reasons = {row[0]: row[7] for row in built["auto"]}
    assert reasons[9] == "empty_line"
    assert reasons[18] == reasons[21] == reasons[22] == "control_character"


def corrupt(lines: list[str], where: dict[int, str]) -> list[str]:
    """The lines with a control character put into the middle of the given (1-based) lines."""
    out = list(lines)
    for line_number, char in where.items():
        line = out[line_number - 1]
        out[line_number - 1] = line[: len(line) // 2] + char + line[len(line) // 2 :]
    return out


def test_corrupted_tiny_file_quarantines_control_characters_by_line(tiny_csv: Path, tmp_path: Path):
    """NUL, CR, ESC and DEL bytes dropped into a generated file: staged + rejected = data lines, and
    each corrupted line is in the quarantine under its own line number with reason control_character."""
    where = {10: "\x00", 250: "\r", 1000: "\x1b", 2500: "\x7f", 4000: "\x00\x00"}
    text = tiny_csv.read_bytes().decode("utf-8")
    lines = text.split("\n")
    corrupted = corrupt(lines, where)
    csv_path = tmp_path / "corrupted.csv"
    csv_path.write_bytes("\n".join(corrupted).encode("utf-8"))
    db_path = tmp_path / "warehouse.duckdb"
    build_warehouse(csv_path, db_path, dbt_vars={"split_seed": TEST_SEED})  # every dbt test passes
    expected = assert_matches_reference(db_path, csv_path)
    counts = accounting(db_path)
    assert counts.data_lines == len(expected) == len(physical_lines(csv_path)) - 1
    con = connect(db_path)
    try:
        quarantined = dict(
            con.execute(
                "select line_number, raw_line from rejected_lines where reason = 'control_character'"
            ).fetchall()
        )
    finally:
        con.close()
    assert quarantined == {n: corrupted[n - 1] for n in where}
    assert "\x00" in quarantined[10]  # the raw text is kept as it was, in the quarantine only


def test_handmade_sessions_duplicates_and_positions(handmade):
    _, db_path = handmade
    con = connect(db_path)
    try:
        sessions = con.execute(
            "select user_id, playlist_name, session_number, n_tracks, n_rows, is_auto, first_line_number "
            "from dim_playlists order by first_line_number"
        ).fetchall()
        rock = con.execute(
            "select f.session_number, f.position, t.artist_name, t.track_name, f.n_occurrences, f.first_line_number "
            "from fct_playlist_tracks f join dim_tracks t using (track_id) join dim_playlists p using (session_id) "
            "where p.playlist_name = 'Rock' order by f.session_number, f.position"
        ).fetchall()
        unknown = con.execute(
            "select artist_id, n_tracks, n_rows from dim_artists where is_unknown"
        ).fetchall()
        beatles = con.execute(
            "select n_rows, n_playlists from dim_tracks where track_name in ('Help!', 'help!')"
        ).fetchall()
    finally:
        con.close()
    assert sessions == [
        (U_A, "Rock", 1, 2, 3, False, 2),
        (U_A, "Chill", 1, 2, 2, False, 5),
        (U_A, "Rock", 2, 2, 2, False, 8),  # the empty line 9 does not cut it
        (U_B, "Starred", 1, 2, 2, True, 11),
        (U_B, "liked from radio", 1, 1, 1, True, 13),
        (U_B, "Mix", 1, 3, 3, False, 19),  # lines 19, 20, 23: the quarantined lines do not cut it
    ]
    assert rock == [
        (1, 1, "The Beatles", "Help!", 2, 2),  # line 4 is the same track: collapsed into line 2
        (1, 2, "Queen", "Bohemian Rhapsody", 1, 3),
        (2, 1, "Muse", "Uprising", 1, 8),
        (2, 2, "Muse", "Starlight", 1, 10),
    ]
    # the empty artist: one artist row, the md5 of the empty name, nothing invented
    assert unknown == [(contract_id(""), 1, 1)]
    # two spellings, one track; the name shown is the most used spelling (a tie: alphabetical)
    assert beatles == [(2, 1)]


# --- the real sample ---------------------------------------------------------------------------


def test_real_sample_loads_all_500_rows(real_sample_warehouse: Path, real_sample_csv: Path):
    expected = assert_matches_reference(real_sample_warehouse, real_sample_csv)
    counts = accounting(real_sample_warehouse)
    assert (counts.staged, counts.rejected) == (500, 0) == (len(expected), 0)
    con = connect(real_sample_warehouse)
    try:
        weird_al = con.execute(
            "select artist_name from stg_spotify__playlist_tracks where line_number = 300"
        ).fetchone()
        n_fct = con.execute("select sum(n_occurrences) from fct_playlist_tracks").fetchone()[0]
    finally:
        con.close()
    assert weird_al == ('"Weird Al" Yankovic',)
    assert n_fct == 500


# --- bad input ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_input_dbt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dbt target/ for the bad-input builds, so dbt parses the project once (partial parsing)."""
    return tmp_path_factory.mktemp("bad_input_dbt")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "raw file not found: {path}"),
        (b"", "raw file is empty: {path}"),
        (b'"user_id","artist","track","playlist"\n"x","y","z","w"\n', "wrong header in raw file {path}"),
        ((RAW_HEADER + "\n").encode(), "raw file has a header but no data lines: {path}"),
    ],
    ids=["missing", "empty", "wrong-header", "header-only"],
)
def test_bad_raw_file_stops_the_build(
    tmp_path: Path, bad_input_dbt_dir: Path, content: bytes | None, message: str
):
    raw = tmp_path / "raw" / "spotify_dataset.csv"
    if content is not None:
        raw.parent.mkdir()
        raw.write_bytes(content)
    db_path = tmp_path / "warehouse.duckdb"
    result = build_warehouse(raw, db_path, check=False, work_dir=bad_input_dbt_dir)
    assert result.returncode != 0
    assert message.format(path=raw) in result.output
    if "header" in message and "no data" not in message:
        assert RAW_HEADER.replace('"', '\\"') in result.output  # the expected header is quoted
    # nothing was built
    if db_path.exists():
        con = duckdb.connect(str(db_path), read_only=True)
        tables = con.execute("select table_name from information_schema.tables").fetchall()
        con.close()
        assert tables == []


def test_marts_constants_match_the_built_warehouse(tiny_warehouse: Path):
    """ml.warehouse's column constants are exactly the marts' columns (no drift either way)."""
    con = connect(tiny_warehouse)
    try:
        for relation in (*MARTS,):
            columns = [
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns where table_name = ? order by ordinal_position",
                    [relation.name],
                ).fetchall()
            ]
            assert tuple(columns) == relation.columns, relation.name
    finally:
        con.close()
    assert FCT_PLAYLIST_TRACKS.name == "fct_playlist_tracks"
    assert DIM_PLAYLISTS.name == "dim_playlists"
    assert ML_PLAYLIST_SPLITS.columns == ("session_id", "track_id", "split", "role")


# --- the marts as Parquet ----------------------------------------------------------------------


def test_export_marts_writes_the_contract_as_parquet(tiny_warehouse: Path, tiny_csv: Path, tmp_path: Path):
    """`ml export-marts` writes every mart and the quarantine as Parquet; read back, they are the
    warehouse's rows; a folder with other columns is refused with its path."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from ml.cli import main
    from ml.marts_parquet import EXPORTED, read_mart
    from ml.warehouse import WarehouseError

    db_path = tmp_path / "warehouse.duckdb"
    shutil.copy(tiny_warehouse, db_path)  # the shared fixture is never written to
    out = tmp_path / "marts"
    result = CliRunner().invoke(
        main,
        ["export-marts", "--out", str(out)],
        env={"DUCKDB_PATH": str(db_path), "RAW_CSV": str(tiny_csv)},
    )
    assert result.exit_code == 0, result.output
    assert f"exported {len(EXPORTED)} relations from target dev to {out}" in result.output
    con = connect(tiny_warehouse)
    try:
        for relation in EXPORTED:
            table = read_mart(out, relation)
            order = ", ".join(relation.columns)
            want = con.execute(f"select {order} from {relation.name} order by {order}").fetchall()
            got = sorted(
                (tuple(r.values()) for r in table.to_pylist()), key=lambda r: [(v is None, v) for v in r]
            )
            assert got == want, relation.name
    finally:
        con.close()
    bad = tmp_path / "bad" / "dim_tracks"
    bad.mkdir(parents=True)
    pq.write_table(pa.table({"track_id": ["x"]}), bad / "part-0.parquet")
    with pytest.raises(WarehouseError, match="differ from the contract"):
        read_mart(tmp_path / "bad", EXPORTED[2])
    with pytest.raises(WarehouseError, match="no Parquet files for dim_artists"):
        read_mart(tmp_path / "bad", EXPORTED[3])
