"""Progress bars and colour only on a terminal: what `ml` writes into a pipe or a log holds no
carriage-return redraws and no ANSI escape codes (`make help` is tested in test_makefile.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from ml.cli import main as cli
from ml.config import REPO_ROOT, Paths

ML = str(Path(sys.executable).with_name("ml"))


def _assert_plain(text: str) -> None:
    assert "\r" not in text, f"carriage returns (progress redraws) in: {text[-500:]!r}"
    assert "\x1b[" not in text, f"ANSI escape codes in: {text[-500:]!r}"


def test_generate_into_a_pipe_prints_no_progress_bars(tmp_path: Path) -> None:
    out = tmp_path / "tiny.csv"
    result = subprocess.run(
        [ML, "data", "generate", "--preset", "tiny", "--seed", "3", "--out", str(out)],
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )

    stdout, stderr = result.stdout.decode(), result.stderr.decode()  # bytes: keep any '\r'
    assert result.returncode == 0, stderr
    assert out.exists() and "wrote " in stdout
    _assert_plain(stdout + stderr)
    assert "generate tiny" not in stderr  # tqdm's bar label: no bar at all


def test_validate_into_a_pipe_is_plain(tiny_csv: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [ML, "validate", "raw", "--csv", str(tiny_csv)],
        capture_output=True,
        timeout=300,
        cwd=REPO_ROOT,
    )

    out = (result.stdout + result.stderr).decode()  # bytes: keep any '\r'
    assert result.returncode == 0, out
    assert "raw gate on" in out
    _assert_plain(out)


_BUSY_QUERY = """
import duckdb, sys, time
from ml.quality.raw_scan import terminal_progress_only
con = duckdb.connect()
if sys.argv[1] == "gate":
    terminal_progress_only(con)  # what the gate's connection (connect_duckdb) does
# 3 s on any machine: longer than DuckDB's 2 s before it draws (setting progress_bar_time to force
# the bar would also turn it back on)
con.create_function("slow", lambda x: time.sleep(0.001) or x, [int], int, side_effects=True)
con.execute("set threads = 1")
print(con.execute("select count(*) from range(3000) t(x) where slow(x) % 7 = 1").fetchone()[0])
"""


def test_duckdb_progress_bar_stays_out_of_pipes() -> None:
    def run(which: str) -> str:
        done = subprocess.run([sys.executable, "-c", _BUSY_QUERY, which], capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return (done.stdout + done.stderr).decode()  # bytes: text mode would turn '\r' into '\n'

    assert "\r" in run("plain")  # DuckDB's own default draws into the pipe...

    assert "\r" in run("plain")  # DuckDB's own default draws into the pipe...
    out = run("gate")  # ...the gate's connection does not
    _assert_plain(out)
    assert out.strip() == "429"


def test_train_without_a_terminal_prints_no_progress_bars(
    tiny_warehouse: Path, tmp_path: Path, monkeypatch
) -> None:
    """`ml train` in a log (stderr not a terminal): the epoch, trial and refit bars stay off."""
    paths = Paths(
        raw_csv=tmp_path / "raw.csv",
        duckdb_path=tiny_warehouse,
        models_dir=tmp_path / "models",
        reports_dir=tmp_path / "reports",
        gx_dir=tmp_path / "gx",
    )
    monkeypatch.setattr(Paths, "from_env", classmethod(lambda cls: paths))
    runner = CliRunner()  # its stderr is a buffer, not a terminal

    result = runner.invoke(
        cli, ["train", "--grid", str(REPO_ROOT / "ml" / "grid_tiny.yml"), "--seed", "7", "--no-search"]
    )

    assert result.exit_code == 0, result.output
    assert (paths.models_dir / "latest" / "metrics.json").exists()
    _assert_plain(result.output)
    assert "epoch/s" not in result.output and "epoch]" not in result.output
