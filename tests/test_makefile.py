"""The Makefile with hostile variables: values are data (never commands), TARGET is one of its
choices, a glob character in RAW_CSV is refused in one line, paths with spaces and non-ASCII
characters work, and `make help` colours only a terminal.

Each run is the real `make` on the repository's Makefile, from a scratch working directory; the
payloads write marker files under tmp_path, so an injected command would leave a file behind.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
from pathlib import Path

import pytest

from ml.config import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")

# Variables a developer's shell may carry; the tests set what they need explicitly.
_MAKE_VARS = ("RAW_CSV", "DUCKDB_PATH", "MODELS_DIR", "REPORTS_DIR", "TARGET", "PRESET", "SEED", "NO_COLOR")


def _make(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _MAKE_VARS and not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "-s", "-C", str(REPO_ROOT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _payloads(marker: Path) -> list[str]:
    """Shell and make syntax that would each create `marker` if pasted into a recipe or expanded."""
    m = str(marker)
    return [
        f"x`date>{m}`.csv",
        f"x$(date>{m}).csv",
        f"x;date>{m};.csv",
        f"x'; date>{m}; '.csv",
        f'x"; date>{m}; ".csv',
        f"x$(shell date>{m}).csv",
        f"x && date>{m} #.csv",
    ]


def test_hostile_raw_csv_is_a_missing_file_not_a_command(tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    for payload in _payloads(marker):
        raw_csv = str(tmp_path / payload)
        result = _make("validate", f"RAW_CSV={raw_csv}", cwd=tmp_path)

        assert result.returncode != 0
        assert f"error: RAW_CSV={raw_csv} does not exist" in result.stderr  # the text, verbatim
        assert not marker.exists(), f"command ran from RAW_CSV={payload!r}"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing generated, nothing injected


@pytest.mark.parametrize("goal", ["deploy", "undeploy"])
def test_target_outside_its_choices_is_refused_before_anything_runs(tmp_path: Path, goal: str) -> None:
    marker = tmp_path / "injected"
    for target in (f"local;date>{marker}", f"local $(shell date>{marker})", "local sagemaker", "", "Local"):
        result = _make(goal, f"TARGET={target}", cwd=tmp_path)

        assert result.returncode == 2
        [line] = result.stderr.strip().splitlines()  # one line, before `export` or any ml command
        assert f"TARGET={target} is not one of: local sagemaker" in line
        assert not marker.exists()


@pytest.mark.parametrize("char", ["*", "?", "[", "]"])
def test_glob_character_in_raw_csv_is_refused_in_one_line(tmp_path: Path, char: str) -> None:
    for name in ("q1.csv", "q2.csv", "q[1].csv"):
        (tmp_path / name).write_text("not read\n")
    raw_csv = str(tmp_path / f"q{char}.csv")

    result = _make("validate", f"RAW_CSV={raw_csv}", cwd=tmp_path)

    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "RAW_CSV holds a glob character (* ? [ ])" in line
    assert "raw gate" not in result.stdout  # nothing was read


def test_raw_csv_with_spaces_and_unicode_passes_the_gate_end_to_end(tiny_csv: Path, tmp_path: Path) -> None:
    folder = tmp_path / "my data" / "ünïcødé ☃"
    folder.mkdir(parents=True)
    raw_csv = folder / "spotify dataset é.csv"
    shutil.copyfile(tiny_csv, raw_csv)

    result = _make("validate", f"RAW_CSV={raw_csv}", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"raw gate on {raw_csv} (profile default): passed" in result.stdout


def test_relative_raw_csv_with_spaces_is_resolved_against_the_repository(tmp_path: Path) -> None:
    result = _make("data", "RAW_CSV=no such dir/ü file.csv", cwd=tmp_path)

    assert result.returncode == 2  # make's code for a failed recipe
    assert f"error: RAW_CSV={REPO_ROOT}/no such dir/ü file.csv does not exist" in result.stderr


def _on_terminal(*args: str, env: dict[str, str]) -> tuple[int, bytes]:
    """Run make with stdout and stderr on a pseudo-terminal; its exit code and what it wrote."""
    leader, follower = pty.openpty()
    proc = subprocess.run(
        ["make", "-s", "-C", str(REPO_ROOT), *args], stdout=follower, stderr=follower, env=env, timeout=60
    )
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return proc.returncode, out


def test_help_is_plain_in_a_pipe_and_coloured_on_a_terminal(tmp_path: Path) -> None:
    piped = _make("help", cwd=tmp_path)
    assert piped.returncode == 0
    assert "\x1b" not in piped.stdout + piped.stderr
    assert "  validate   Great Expectations gate" in piped.stdout

    env = {k: v for k, v in os.environ.items() if k not in _MAKE_VARS and not k.startswith("MAKE")}
    code, out = _on_terminal("help", env=env)
    assert code == 0
    assert b"\x1b[36mvalidate" in out

    code, out = _on_terminal("help", env={**env, "NO_COLOR": "1"})  # https://no-color.org
    assert code == 0
    assert b"\x1b" not in out and b"  validate   Great Expectations gate" in out
