"""The endpoint's name -> track id rule (ml.endpoint_contract.track_id_of) is dbt's identity rule:
checked against every spelling a real `dbt build` identified on the tiny preset."""

from __future__ import annotations

import duckdb
import pytest

from ml.endpoint_contract import normalize_name, split_name, track_id_of

# Raw lines (the file's format: every field quoted, inner quotes as \") a user may spell differently:
# inner runs of spaces and tabs, case, Unicode case (dotted I, final sigma, capital sharp s),
# no-break and ideographic spaces, quotes, an empty artist.
EDGE_ROWS = [
    ("Sigur  Rós", "Hoppípolla"),
    ("sigur rós", "HOPPÍPOLLA"),
    ("Tarkan", "\tİstanbul\t  Gecesi"),
    ("ΟΔΥΣΣΕΥΣ", "ΣΟΦΙΑΣ"),
    ("Die Ärzte", "STRAẞE  ẞ"),
    ("\u00a0Nbsp Artist", "Title\u3000"),
    ('\\"Weird Al\\" Yankovic', 'Amish  \\"Paradise\\"'),
    ("", "Untitled  Track"),
    ("ǅemal", "Ǆ  ǈ"),
]


@pytest.fixture(scope="module")
def edge_warehouse(tiny_csv, tmp_path_factory) -> object:
    """The tiny file plus EDGE_ROWS (one more playlist), staged and identified by a real dbt build."""
    from ml.warehouse import build_warehouse

    root = tmp_path_factory.mktemp("identity")
    raw = root / "raw.csv"
    lines = [f'"0123456789abcdef0123456789abcdef","{a}","{t}","edge cases"\n' for a, t in EDGE_ROWS]
    raw.write_text(tiny_csv.read_text(encoding="utf-8") + "".join(lines), encoding="utf-8")
    # `dbt run` of the models up to the identities (their data tests span models outside the selection).
    result = build_warehouse(
        raw, root / "w.duckdb", command=("run",), select="+int_track_spellings_identified", check=False
    )
    if not result.success:
        pytest.fail(f"dbt build failed:\n{result.tail(40)}", pytrace=False)
    return root / "w.duckdb"


@pytest.fixture(scope="module")
def spellings(edge_warehouse) -> list[tuple[str, str, str]]:
    """(artist_name, track_name, track_id) of every distinct spelling the build identified."""
    con = duckdb.connect(str(edge_warehouse), read_only=True)
    try:
        return con.execute(
            "select artist_name, track_name, track_id from int_track_spellings_identified"
        ).fetchall()
    finally:
        con.close()


def test_every_spelling_of_the_build_gets_dbts_track_id(spellings):
    wrong = [(a, t, i, track_id_of(a, t)) for a, t, i in spellings if track_id_of(a, t) != i]
    assert wrong == []
    # The check covers the hard cases, not only plain ASCII names:
    assert len(spellings) > 1000
    assert any(a == "" for a, _, _ in spellings), "an empty artist name"
    assert any(not (a + t).isascii() for a, t, _ in spellings), "non-ASCII names"
    assert any('"' in a + t for a, t, _ in spellings), "names with quotes"
    assert any(normalize_name(t) != t.lower() for _, t, _ in spellings), "inner runs of whitespace"
    assert len({i for _, _, i in spellings}) < len(spellings), "several spellings of one track"
    edge = {(a, t) for a, t, _ in spellings if "\t" in t or "  " in a + t or "ẞ" in t or "\u00a0" in a}
    assert len(edge) >= 5, edge  # EDGE_ROWS reached the table, padded and all


def test_padded_and_recased_names_resolve_to_the_same_id(spellings):
    """What a user may type: surrounding spaces/tabs/newlines, other case, doubled inner spaces."""
    for artist, title, track_id in spellings[:300]:
        padded = ("  \t" + artist.upper() + "\n ", " " + title.replace(" ", "  ").swapcase() + " \u00a0")
        if title.upper().lower() == title.lower() and artist.upper().lower() == artist.lower():
            assert track_id_of(*padded) == track_id, (artist, title)


def test_unicode_case_rules_match_duckdb():
    """DuckDB lowers per character (simple mapping) and trims space separators only."""
    con = duckdb.connect()
    cases = [
        "İstanbul",
        "ΟΔΥΣΣΕΥΣ",
        "STRASSE ẞ",
        "\u00a0Sigur Rós\u3000",
        "\tTab\x0bbed ",
        "Ǆ ǅ ǈ",
        "🎵 Émilie",
    ]
    sql = "select trim(regexp_replace(lower(x), '\\s+', ' ', 'g')) from unnest(?) with ordinality t(x, i) order by i"
    assert [normalize_name(c) for c in cases] == [r[0] for r in con.execute(sql, [cases]).fetchall()]


def test_artist_title_strings_split_at_the_first_separator():
    assert split_name("Queen - Bohemian Rhapsody - Remastered 2011") == (
        "Queen",
        "Bohemian Rhapsody - Remastered 2011",
    )
    assert split_name("- Untitled") == ("", "Untitled")
    assert split_name(" - Untitled") == ("", "Untitled")
    with pytest.raises(ValueError, match="Artist - Title"):
        split_name("Queen-Bohemian Rhapsody")
    assert track_id_of("", "Untitled") == track_id_of(*split_name("- untitled"))
