"""Read the raw file into the three narrow frames the raw gate validates.

Why this shape: Great Expectations' pandas engine is the only GX engine that works here, and a
per-row frame of the full file with its text columns costs about 33 s and 5.4 GB (GX casts the
user_id column to Python strings for the regex). So DuckDB reads the file once as physical lines
(parallel, about 0.6 s for the bare scan of 1.2 GB) and computes the parse per line; GX receives

* `file`  - one row of file-level facts (header line, byte counts of '\\r' and NUL, UTF-8 validity,
  the physical line count next to the lines DuckDB read),
* `users` - one row per distinct user_id (regex, distinct count, largest share),
* `lines` - one row per data line with only numbers and a category (parse status, line and field
  lengths), indexed by the physical line number so a failure names its lines.
"""

from __future__ import annotations

import codecs
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from ml.config import RAW_COLUMNS

PARSE_STATUSES = ("strict", "recovered", "rejected")
_CHUNK = 1 << 26  # 64 MiB

# A well-formed line: four double-quoted fields, inner quotes escaped with a backslash.
_FIELD = r'((?:[^"\\]|\\.)*)'
STRICT_LINE_RE = '"' + '","'.join([_FIELD] * 4) + '"'
USER_ID_RE = "^[0-9a-f]{32}$"


class RawFileError(Exception):
    """The file cannot be gated at all (missing, empty, unreadable); the message names the file."""


@dataclass(frozen=True)
class FileFacts:
    path: Path
    size_bytes: int
    header_line: str
    physical_lines: int  # '\n'-separated, a last line without '\n' counts
    carriage_returns: int
    first_carriage_return_line: int | None
    nul_bytes: int
    first_nul_line: int | None
    first_invalid_utf8_line: int | None
    ends_with_newline: bool

    def header_columns(self) -> list[str]:
        """The header's names with quotes and spaces stripped, in file order."""
        return [part.strip().strip('"') for part in self.header_line.split(",")]

    def frame(self, lines_read: int | None) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "header_line": [self.header_line],
                "header_columns": [", ".join(self.header_columns())],
                "physical_lines": [self.physical_lines],
                # |physical - read|; all of them when the lines could not be read (invalid UTF-8)
                "lines_unaccounted": [abs(self.physical_lines - (lines_read or 0))],
                "carriage_returns": [self.carriage_returns],
                "nul_bytes": [self.nul_bytes],
                "first_invalid_utf8_line": pd.array([self.first_invalid_utf8_line], dtype="Int64"),
            }
        )


def _line_of(buf: bytes, offset_in_buf: int, lines_before: int) -> int:
    return lines_before + buf.count(b"\n", 0, offset_in_buf) + 1


def scan_file(path: Path) -> FileFacts:
    """Byte-level facts in one sequential pass (bytes.count and an incremental UTF-8 decoder)."""
    path = Path(path)
    if not path.exists():
        raise RawFileError(f"raw file not found: {path} (set RAW_CSV or pass --csv)")
    if not path.is_file():
        raise RawFileError(f"raw file is not a regular file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise RawFileError(f"raw file is empty (0 bytes): {path}")

    newlines = crs = nuls = 0
    first_cr = first_nul = first_bad_utf8 = None
    decoder = codecs.getincrementaldecoder("utf-8")()
    header = b""
    last = b""
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            if not header:
                header = chunk.split(b"\n", 1)[0][:4096]
            n_cr, n_nul = chunk.count(b"\r"), chunk.count(b"\0")
            if n_cr and first_cr is None:
                first_cr = _line_of(chunk, chunk.index(b"\r"), newlines)
            if n_nul and first_nul is None:
                first_nul = _line_of(chunk, chunk.index(b"\0"), newlines)
            if first_bad_utf8 is None:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as err:
                    first_bad_utf8 = _line_of(chunk, err.start, newlines)
            crs, nuls = crs + n_cr, nuls + n_nul
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
    if first_bad_utf8 is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            first_bad_utf8 = newlines + 1
    ends_with_newline = last == b"\n"
    return FileFacts(
        path=path,
        size_bytes=size,
        header_line=header.rstrip(b"\r").decode("utf-8", errors="replace"),
        physical_lines=newlines + (0 if ends_with_newline else 1),
        carriage_returns=crs,
        first_carriage_return_line=first_cr,
        nul_bytes=nuls,
        first_nul_line=first_nul,
        first_invalid_utf8_line=first_bad_utf8,
        ends_with_newline=ends_with_newline,
    )


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
    """Per physical line: parse status, user_id, line length and trimmed field lengths.

    strict    - matches the well-formed grammar (four quoted fields, inner quotes backslash-escaped);
    recovered - quoted at both ends and splits on '","' into exactly 4 fields (unescaped inner quotes);
    rejected  - anything else (dbt's rejected_lines quarantines these with a reason).
    Inside a strict line '","' can only appear as a separator or right after an escaped quote
    ('\\","'), so strict lines without that sequence are split on '","' instead of running the
    capturing regex, which is several times slower; the rare others take the regex groups.
    Every expression is computed before the window so only scalars flow through row_number().
    """
    strict = _sql_str(STRICT_LINE_RE)
    return f"""
        with split_lines as (
            select
                coalesce(line, '') as line,
                regexp_full_match(coalesce(line, ''), {strict}) as is_strict,
                string_split(line[2:-2], '","') as parts,
                length(line) >= 2 and starts_with(line, '"') and ends_with(line, '"') as is_quoted,
            from {_lines_source_sql(path)}
        ),
        fielded as (
            select
                line,
                case
                    when is_strict then 'strict'
                    when is_quoted and len(parts) = 4 then 'recovered'
                    else 'rejected'
                end as parse_status,
                case
                    when is_strict and len(parts) = 4 and not contains(line, '\\","') then parts
                    when not is_strict and is_quoted and len(parts) = 4 then parts
                    when is_strict then [
                        regexp_extract(line, {strict}, 1), regexp_extract(line, {strict}, 2),
                        regexp_extract(line, {strict}, 3), regexp_extract(line, {strict}, 4),
                    ]
                end as fields,
            from split_lines
        ),
        measured as (
            select
                parse_status::parse_status as parse_status,
                fields[1] as user_id,
                length(line)::bigint as line_length,
                -- double, not a nullable int: GX's pandas range check is vectorized only for int64/float64
                length(trim(fields[2]))::double as artist_length,
                length(trim(fields[3]))::double as track_length,
                length(trim(fields[4]))::double as playlist_length,
            from fielded
        ),
        numbered as (
            select row_number() over () as line_number, * from measured
        )
        select * from numbered where line_number > 1
    """


@dataclass(frozen=True)
class RawFrames:
    facts: FileFacts
    file: pd.DataFrame
    users: pd.DataFrame | None  # None when the file could not be read as lines
    lines: pd.DataFrame | None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase


def read_raw_frames(path: Path, threads: int | None = None) -> RawFrames:
    """Scan the file (bytes), then read it with DuckDB into the file / users / lines frames."""
    start = time.perf_counter()
    facts = scan_file(path)
    scanned = time.perf_counter()
    if facts.first_invalid_utf8_line is not None:
        # DuckDB refuses the file; the file-level suite reports the line.
        return RawFrames(
            facts=facts,
            file=facts.frame(lines_read=None),
            users=None,
            lines=None,
            timings={"byte_scan_s": scanned - start},
        )

    con = duckdb.connect()
    try:
        if threads:
            con.execute(f"set threads = {int(threads)}")
        values = ", ".join(_sql_str(s) for s in PARSE_STATUSES)
        con.execute(f"create type parse_status as enum ({values})")
        con.execute(f"create temp table parsed as {parsed_lines_sql(facts.path)}")
        # rows in `parsed` are data lines; the header line is counted back in.
        data_lines = con.execute("select count(*) from parsed").fetchone()[0]
        lines = con.execute("select * exclude (user_id) from parsed").df()
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
    lines = lines.set_index("line_number")
    users = users.set_index("first_line")
    header_line_read = 1 if facts.physical_lines >= 1 else 0
    return RawFrames(
        facts=facts,
        file=facts.frame(lines_read=data_lines + header_line_read),
        users=users,
        lines=lines,
        timings={"byte_scan_s": scanned - start, "duckdb_parse_s": time.perf_counter() - scanned},
    )


__all__ = ["RAW_COLUMNS", "FileFacts", "RawFileError", "RawFrames", "read_raw_frames", "scan_file"]
