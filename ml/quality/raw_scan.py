"""Read the raw file into the small frames the raw gate validates.

Why this shape: Great Expectations' pandas engine is the only GX engine that works here, and
handing it one row per line of the full file costs more than everything else together (a 13M-row
frame, GX's per-row casts). So the file is read twice, each time at the speed of the machine:

* a byte scan (Python, sequential): '\\n' count and the control characters
  (NUL, '\\r', any other byte below 0x20 except tab) with the lines that hold them;
* DuckDB reading it as physical lines (parallel): the parse per line (strict / recovered /
  rejected), empty names, line lengths, counted per kind with the first offending line numbers,
  and one row per distinct user_id. DuckDB validates UTF-8 as it reads; when it refuses the file a
  second byte pass finds the first line that is not UTF-8.

GX receives three frames: `file` (one row of file-level facts), `users` (one row per distinct
user_id, indexed by the line it first appears on) and `line_counts` (one row: the number of lines of
each kind). The first offending line numbers of every kind travel beside them (RawFrames.examples)
so a failure names its lines.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import pandas as pd

from ml.config import RAW_COLUMNS
from ml.quality.byte_scan import (
    EXAMPLES,
    GLOB_CHARACTERS,
    FileFacts,
    RawFileError,
    first_invalid_utf8_line,
    html_safe,
    scan_file,
)

PARSE_STATUSES = ("strict", "recovered", "rejected")

# A well-formed line: four double-quoted fields, inner quotes escaped with a backslash.
_FIELD = r'((?:[^"\\]|\\.)*)'
STRICT_LINE_RE = '"' + '","'.join([_FIELD] * 4) + '"'
USER_ID_RE = "^[0-9a-f]{32}$"


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _lines_source_sql(path: Path) -> str:
    """The file as one VARCHAR column `line`, one row per physical line, in file order.

    DuckDB's CSV reader with no quote, no escape and a delimiter no line holds yields whole lines;
    an empty line comes back as NULL. It would also split on a bare '\\r', which the file-level
    carriage-return check rules out, and the gate compares its line count with the byte count.
    """
    return (
        f"read_csv({_sql_str(str(path))}, columns = {{'line': 'VARCHAR'}}, header = false, "
        f"delim = '\x1e\x1d', quote = '', escape = '', auto_detect = false, strict_mode = false, "
        f"max_line_size = 16777216)"
    )


def parsed_lines_sql(path: Path) -> str:
    """Per physical line, in file order: parse status, user_id, line length and which names are
    empty (after trimming spaces); insert it into a table and `rowid + 1` is the line number.

    strict    - matches the well-formed grammar (four quoted fields, inner quotes backslash-escaped);
    recovered - quoted at both ends and splits on '","' into exactly 4 fields (unescaped inner quotes);
    rejected  - anything else (dbt's rejected_lines quarantines these with a reason).
    A line without a backslash is strict exactly when it is quoted at both ends, splits on '","'
    into 4 parts and no part holds another quote, so only lines with a backslash (a fraction of a
    percent) run the grammar's regex; string functions on the split parts are several times
    cheaper. Inside a strict line '","' can only appear as a separator or right after an escaped
    quote ('\\","'), so strict lines without that sequence take the split parts as fields; the
    rare others take the regex groups. (substr, not [a:b] slices: several times faster in DuckDB.)
    """
    strict = _sql_str(STRICT_LINE_RE)
    return f"""
        with split_lines as (
            select
                coalesce(line, '') as line,
                string_split(coalesce(line, ''), '","') as parts,
                strlen(coalesce(line, '')) >= 2 and starts_with(line, '"') and ends_with(line, '"') as is_quoted,
                contains(coalesce(line, ''), '\\') as has_backslash,
            from {_lines_source_sql(path)}
        ),
        unquoted as (
            select
                line, parts, has_backslash, is_quoted and len(parts) = 4 as is_split,
                -- the first and last parts without the line's outer quotes (when it has them)
                substr(parts[1], 2) as first_field,
                substr(parts[len(parts)], 1, length(parts[len(parts)]) - 1) as last_field,
            from split_lines
        ),
        classified as (
            select
                *,
                case
                    when has_backslash then regexp_full_match(line, {strict})
                    else is_split
                        and not contains(first_field, '"') and not contains(parts[2], '"')
                        and not contains(parts[3], '"') and not contains(last_field, '"')
                end as is_strict,
            from unquoted
        ),
        fielded as (
            select
                line,
                case when is_strict then 'strict' when is_split then 'recovered' else 'rejected' end as parse_status,
                -- the split parts are the fields unless a strict line holds an escaped quote before
                -- a '","' (then the regex groups); four columns, no per-line list
                is_split and not (is_strict and contains(line, '\\","')) as from_parts,
                is_strict and not from_parts as from_regex,
                case when from_parts then first_field when from_regex then {_group(1)} end as user_id,
                case when from_parts then parts[2] when from_regex then {_group(2)} end as artist,
                case when from_parts then parts[3] when from_regex then {_group(3)} end as track,
                case when from_parts then last_field when from_regex then {_group(4)} end as playlist,
            from classified
        )
        select
            parse_status::parse_status as parse_status,
            user_id,
            length(line)::bigint as line_length,
            -- NULL on rejected lines (no fields): the empty-name counts are over parsed lines;
            -- trim() only for the few names that start with a space
            {_blank("artist")} as artist_empty,
            {_blank("track")} as track_empty,
            {_blank("playlist")} as playlist_empty,
        from fielded
    """


def _group(i: int) -> str:
    return f"regexp_extract(line, {_sql_str(STRICT_LINE_RE)}, {i})"


def _blank(expr: str) -> str:
    return f"({expr} = '' or (starts_with({expr}, ' ') and trim({expr}) = ''))"


# The kinds of lines counted in `line_counts`: (column, SQL condition over `parsed`).
LINE_KINDS = {
    "rejected_lines": "parse_status = 'rejected'",
    "recovered_lines": "parse_status = 'recovered'",
    "empty_artist_lines": "artist_empty",
    "empty_track_lines": "track_empty",
    "empty_playlist_lines": "playlist_empty",
    "line_length_outside_lines": "line_length not between $min_length and $max_length",
}


@dataclass(frozen=True)
class RawFrames:
    facts: FileFacts
    file: pd.DataFrame
    users: pd.DataFrame | None  # None when the file could not be read as lines
    line_counts: pd.DataFrame | None  # one row: data_lines, parsed_lines, strict_lines and LINE_KINDS
    examples: dict[str, tuple[int, ...]] = field(default_factory=dict)  # kind -> first line numbers
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase


def terminal_progress_only(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Turn DuckDB's progress bar off unless stdout and stderr are a terminal."""
    on_terminal = sys.stdout.isatty() and sys.stderr.isatty()
    con.execute(f"set enable_progress_bar = {'true' if on_terminal else 'false'}")
    return con


def connect_duckdb(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection; its progress bar (drawn on stdout with '\\r' redraws, even
    into a pipe or a log) only when stdout and stderr are a terminal."""
    con = terminal_progress_only(duckdb.connect())
    if threads:
        con.execute(f"set threads = {int(threads)}")
    return con


def check_path(path: Path) -> None:
    """DuckDB expands * ? [ ] in a path to every matching file: refuse such a name in one line."""
    found = sorted({c for c in str(path) if c in GLOB_CHARACTERS})
    if found:
        raise RawFileError(
            f"raw file name holds glob character(s) {' '.join(found)}: {path} "
            "(DuckDB would read every matching file; rename it)"
        )


def read_raw_frames(path: Path, line_length: tuple[float, float], threads: int | None = None) -> RawFrames:
    """Scan the file (bytes), then read it with DuckDB into the file / users / line_counts frames.

    line_length: the allowed [min, max] line length in characters (lines outside are counted).
    """
    start = time.perf_counter()
    check_path(Path(path))
    facts = scan_file(path, check_utf8=False)
    scanned = time.perf_counter()
    examples = {
        "carriage_returns": facts.cr_lines.examples,
        "nul_bytes": facts.nul_lines.examples,
        "control_character_lines": facts.control_lines.examples,
    }
    try:
        return _read_lines(facts, examples, line_length, threads, {"byte_scan_s": scanned - start})
    except duckdb.InvalidInputException as err:
        if "unicode" not in str(err).lower():
            raise
    # DuckDB refuses a file that is not UTF-8; the file-level suite reports the first such line.
    facts = replace(facts, first_invalid_utf8_line=first_invalid_utf8_line(facts.path))
    return RawFrames(
        facts=facts,
        file=facts.frame(lines_read=None),
        users=None,
        line_counts=None,
        examples=examples,
        timings={"byte_scan_s": time.perf_counter() - start},
    )


def _read_lines(
    facts: FileFacts,
    examples: dict[str, tuple[int, ...]],
    line_length: tuple[float, float],
    threads: int | None,
    timings: dict[str, float],
) -> RawFrames:
    scanned = time.perf_counter()
    lo, hi = line_length
    hi_sql = "9223372036854775807" if hi == float("inf") else str(int(hi))
    kinds = {
        name: cond.replace("$min_length", str(int(lo))).replace("$max_length", hi_sql)
        for name, cond in LINE_KINDS.items()
    }
    con = connect_duckdb(threads)
    try:
        values = ", ".join(_sql_str(s) for s in PARSE_STATUSES)
        con.execute(f"create type parse_status as enum ({values})")
        # inserted in file order (DuckDB preserves insertion order): rowid + 1 is the physical line
        con.execute(f"create temp table physical as {parsed_lines_sql(facts.path)}")
        con.execute(
            "create temp view parsed as select rowid + 1 as line_number, * from physical where rowid > 0"
        )
        counted = ",\n".join(
            f"count(*) filter (where {cond}) as {name}, min(line_number, {EXAMPLES}) filter (where {cond}) as {name}_at"
            for name, cond in kinds.items()
        )
        cursor = con.execute(
            f"""
            select
                count(*) as data_lines,
                count(*) filter (where parse_status != 'rejected') as parsed_lines,
                count(*) filter (where parse_status = 'strict') as strict_lines,
                {counted},
            from parsed
            """
        )
        row = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))
        users = con.execute(
            """
            select
                user_id,
                count(*) as n_rows,
                count(*) / sum(count(*)) over () as row_share,
                min(line_number) as first_line,
            from parsed
            where user_id is not null
            group by user_id
            order by first_line
            """
        ).df()
    finally:
        con.close()
    for name in kinds:
        examples[name] = tuple(sorted(int(n) for n in (row.pop(f"{name}_at") or ())))
    line_counts = pd.DataFrame({k: [int(v)] for k, v in row.items()})
    users["user_id"] = users["user_id"].map(html_safe)
    users = users.set_index("first_line")
    header_line_read = 1 if facts.physical_lines >= 1 else 0
    return RawFrames(
        facts=facts,
        file=facts.frame(lines_read=row["data_lines"] + header_line_read),
        users=users,
        line_counts=line_counts,
        examples=examples,
        timings={**timings, "duckdb_parse_s": time.perf_counter() - scanned},
    )


__all__ = [
    "RAW_COLUMNS",
    "FileFacts",
    "RawFileError",
    "RawFrames",
    "check_path",
    "read_raw_frames",
    "scan_file",
]
