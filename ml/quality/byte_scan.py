"""The byte pass over the raw file: line count, control characters with their lines, UTF-8.

One sequential read in 64 MiB chunks with C-speed bytes methods (count, translate); numpy locates
control characters only in a chunk that has any. ml.quality.raw_scan runs it before DuckDB reads
the lines.
"""

from __future__ import annotations

import codecs
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

_CHUNK = 1 << 26  # 64 MiB
EXAMPLES = 5  # offending line numbers kept per kind

# Control characters: every byte below 0x20 except tab and the line feed that ends a line. dbt
# quarantines such lines (reason 'control_character'); NUL and '\\r' are also counted apart.
CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10))
_NOT_CONTROL = bytes(b for b in range(256) if b not in CONTROL_BYTES)
GLOB_CHARACTERS = "*?[]"


class RawFileError(Exception):
    """The file cannot be gated at all (missing, empty, unreadable); the message names the file."""


@dataclass(frozen=True)
class LineKind:
    """Lines holding one kind of byte: how many, and the first few (1-based physical line numbers)."""

    lines: int = 0
    examples: tuple[int, ...] = ()


@dataclass(frozen=True)
class FileFacts:
    path: Path
    size_bytes: int
    header_line: str
    physical_lines: int  # '\n'-separated, a last line without '\n' counts
    carriage_returns: int  # bytes
    nul_bytes: int
    cr_lines: LineKind
    nul_lines: LineKind
    control_lines: LineKind  # any control character but tab (NUL and '\r' included)
    first_invalid_utf8_line: int | None
    ends_with_newline: bool

    @property
    def first_carriage_return_line(self) -> int | None:
        return self.cr_lines.examples[0] if self.cr_lines.examples else None

    @property
    def first_nul_line(self) -> int | None:
        return self.nul_lines.examples[0] if self.nul_lines.examples else None

    def header_columns(self) -> list[str]:
        """The header's names with quotes and spaces stripped, in file order."""
        return [part.strip().strip('"') for part in self.header_line.split(",")]

    def frame(self, lines_read: int | None) -> pd.DataFrame:
        # Text from the file goes into GX's Data Docs (HTML) as-is: escape it here (html_safe).
        return pd.DataFrame(
            {
                "header_line": [html_safe(self.header_line)],
                "header_columns": [html_safe(", ".join(self.header_columns()))],
                "physical_lines": [self.physical_lines],
                # |physical - read|; all of them when the lines could not be read (invalid UTF-8)
                "lines_unaccounted": [abs(self.physical_lines - (lines_read or 0))],
                "carriage_returns": [self.carriage_returns],
                "nul_bytes": [self.nul_bytes],
                "control_character_lines": [self.control_lines.lines],
                "first_invalid_utf8_line": pd.array([self.first_invalid_utf8_line], dtype="Int64"),
            }
        )


def html_safe(text: str) -> str:
    """Text from the raw file made inert in HTML: & < > escaped (quotes kept, so the header
    comparison is unchanged; no valid header or user_id holds & < >). gx_run.console_text undoes it."""
    return html.escape(text, quote=False)


def _line_of(buf: bytes, offset_in_buf: int, lines_before: int) -> int:
    return lines_before + buf.count(b"\n", 0, offset_in_buf) + 1


class _KindTally:
    """Distinct lines of one kind across chunks (a line may straddle two chunks)."""

    def __init__(self) -> None:
        self.lines = 0
        self.examples: list[int] = []
        self._last = 0

    def add(self, line_numbers: np.ndarray) -> None:
        unique = np.unique(line_numbers)
        if unique.size and unique[0] == self._last:
            unique = unique[1:]
        if unique.size:
            self.lines += int(unique.size)
            if len(self.examples) < EXAMPLES:
                self.examples += [int(n) for n in unique[: EXAMPLES - len(self.examples)]]
            self._last = int(unique[-1])

    def result(self) -> LineKind:
        return LineKind(self.lines, tuple(self.examples))


def _control_lines(chunk: bytes, lines_before: int) -> tuple[np.ndarray, np.ndarray]:
    """Line numbers and byte values of the control characters in a chunk (called only when some are)."""
    arr = np.frombuffer(chunk, dtype=np.uint8)
    positions = np.flatnonzero((arr < 32) & (arr != 9) & (arr != 10))
    newlines = np.flatnonzero(arr == 10)
    return lines_before + np.searchsorted(newlines, positions, side="right") + 1, arr[positions]


def first_invalid_utf8_line(path: Path) -> int | None:
    """The first line that is not valid UTF-8 (an incremental decoder over the file), or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = 0
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                return _line_of(chunk, err.start, newlines)
            newlines += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return newlines + 1
    return None


def scan_file(path: Path, check_utf8: bool = True) -> FileFacts:
    """Byte-level facts in one sequential pass (bytes.count, bytes.translate).

    check_utf8: also find the first line that is not valid UTF-8 (a second pass, about as long as
    the rest together); the gate skips it because DuckDB validates UTF-8 as it reads, and runs it
    only when DuckDB refuses the file.
    """
    path = Path(path)
    if not path.exists():
        raise RawFileError(f"raw file not found: {path} (set RAW_CSV or pass --csv)")
    if not path.is_file():
        raise RawFileError(f"raw file is not a regular file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise RawFileError(f"raw file is empty (0 bytes): {path}")

    newlines = crs = nuls = 0
    cr, nul, control = _KindTally(), _KindTally(), _KindTally()
    header = b""
    last = b""
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            if not header:
                header = chunk.split(b"\n", 1)[0][:4096]
            if chunk.translate(None, _NOT_CONTROL):  # rare: only then find the lines
                line_numbers, values = _control_lines(chunk, newlines)
                control.add(line_numbers)
                cr.add(line_numbers[values == 13])
                nul.add(line_numbers[values == 0])
                crs += int((values == 13).sum())
                nuls += int((values == 0).sum())
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
    ends_with_newline = last == b"\n"
    return FileFacts(
        path=path,
        size_bytes=size,
        header_line=header.rstrip(b"\r").decode("utf-8", errors="replace"),
        physical_lines=newlines + (0 if ends_with_newline else 1),
        carriage_returns=crs,
        nul_bytes=nuls,
        cr_lines=cr.result(),
        nul_lines=nul.result(),
        control_lines=control.result(),
        first_invalid_utf8_line=first_invalid_utf8_line(path) if check_utf8 else None,
        ends_with_newline=ends_with_newline,
    )
