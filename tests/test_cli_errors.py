"""A user's mistake on the command line: one line naming the input, a non-zero exit, no traceback.

Also: `ml sql` is read-only for real (no writes, files, network or extensions), and the deploy
state files are written atomically and reported with the way out when corrupt."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from ml.cli import main
from ml.deploy.state import StateFileError, read_json, write_json


def run(args: list[str], env: dict[str, str] | None = None):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(main, args, env=env, prog_name="ml")


def assert_one_line_error(result, *names: str) -> str:  # noqa: ANN001 - click's Result
    out = result.output.strip()
    assert result.exit_code != 0, out
    assert "Traceback" not in out
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert len(out.splitlines()) == 1, out
    assert out.startswith("Error: "), out
    for name in names:
        assert name in out, (name, out)
    return out


@pytest.fixture
def small_duckdb(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create table dim_tracks as select 'a' as track_id, 'Artist' as artist_name")
    con.close()
    (tmp_path / "secret.csv").write_text("x\n1\n")
    return path


def test_sql_bad_query_is_one_line(small_duckdb):
    result = run(["sql", "selec 1"], env={"DUCKDB_PATH": str(small_duckdb)})
    assert_one_line_error(result, "syntax error", "selec")
    result = run(["sql", "select nope from dim_tracks"], env={"DUCKDB_PATH": str(small_duckdb)})
    assert_one_line_error(result, '"nope"')


def test_sql_without_a_warehouse_is_one_line(tmp_path):
    result = run(["sql", "select 1"], env={"DUCKDB_PATH": str(tmp_path / "none.duckdb")})
    assert_one_line_error(result, "warehouse not found", "none.duckdb")


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("copy (select 1) to '{dir}/out.csv'", "out.csv"),
        ("copy dim_tracks to '{dir}/out.parquet' (format parquet)", "out.parquet"),
        ("attach '{dir}/other.duckdb' as other", "other.duckdb"),
        ("select * from read_csv('{dir}/secret.csv')", "secret.csv"),
        ("select * from '{dir}/secret.csv'", "secret.csv"),
        ("select * from read_text('/etc/hostname')", "/etc/hostname"),
        ("export database '{dir}/dump'", "dump"),
        ("install httpfs", "disabled"),
        ("load httpfs", "disabled"),
        ("set enable_external_access = true", "locked"),
        ("create table t2 as select 1", "read-only"),
    ],
)
def test_sql_is_truly_read_only(small_duckdb, query, said):
    folder = small_duckdb.parent
    before = sorted(p.name for p in folder.iterdir())
    result = run(["sql", query.format(dir=folder)], env={"DUCKDB_PATH": str(small_duckdb)})
    assert_one_line_error(result, "query refused", said)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written beside it
    ok = run(["sql", "select count(*) as n from dim_tracks"], env={"DUCKDB_PATH": str(small_duckdb)})
    assert ok.exit_code == 0 and "(1 row)" in ok.output


@pytest.mark.parametrize("k", ["0", "-5"])
def test_recommend_k_below_1_is_refused(k):
    assert_one_line_error(run(["recommend", "--track", "A - B", "-k", k]), "'-k'", k)


def test_recommend_without_a_model_is_one_line(tmp_path, small_duckdb):
    env = {"MODELS_DIR": str(tmp_path / "models"), "DUCKDB_PATH": str(small_duckdb)}
    assert_one_line_error(run(["recommend", "--track", "A - B"], env=env), "no trained model", "ml train")


def test_recommend_core_raises_plain_errors(tmp_path):
    from ml.config import Paths
    from ml.recommend import recommend_by_name

    paths = Paths(tmp_path / "r.csv", tmp_path / "w.duckdb", tmp_path / "models", tmp_path / "rep")
    with pytest.raises(ValueError, match="k is 0"):
        recommend_by_name(["A - B"], k=0, paths=paths)


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_serve_port_out_of_range(port):
    assert_one_line_error(run(["serve", "--port", port]), "'--port'", port)


def test_serve_port_in_use_is_named_before_loading():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = str(sock.getsockname()[1])
        assert_one_line_error(run(["serve", "--port", port]), "'--port'", port, "in use")


def test_serve_model_that_is_not_a_model(tmp_path):
    csv = tmp_path / "file.csv"
    csv.write_text("a,b\n1,2\n")
    assert_one_line_error(run(["serve", "--model", str(csv)]), "'--model'", "file.csv", "model.tar.gz")
    assert_one_line_error(run(["serve", "--model", str(tmp_path)]), "'--model'", "saved_model.pb")
    assert_one_line_error(
        run(["serve", "--model", str(tmp_path / "none.tar.gz")]), "'--model'", "none.tar.gz"
    )


def test_serve_without_an_export_is_one_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    assert_one_line_error(run(["serve", "--port", port], env={"MODELS_DIR": str(tmp_path)}), "ml export")


@pytest.mark.parametrize("rows", ["-5", "0", "99"])
def test_generate_rows_refused(tmp_path, rows):
    out = tmp_path / "g.csv"
    assert_one_line_error(run(["data", "generate", "--rows", rows, "--out", str(out)]), "'--rows'", rows)
    assert not out.exists()


@pytest.mark.parametrize("n", ["0", "-3"])
def test_check_n_refused(n):
    assert_one_line_error(run(["check", "--n", n]), "'--n'", n)


def test_unknown_option_and_command_are_one_line():
    assert_one_line_error(run(["serve", "--bogus"]), "--bogus", "ml serve -h")
    assert_one_line_error(run(["nosuch"]), "nosuch")


@pytest.mark.parametrize(
    "text",
    ['{"url": "http://127.0.0.1:1", "pid": 12', "", "[1, 2]", '{"url": "x"}', "\xff\xfe"],
    ids=["truncated", "empty", "not-an-object", "missing-keys", "not-utf8"],
)
def test_a_corrupt_endpoint_json_is_reported_with_the_fix(tmp_path, synthetic_run, text):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "endpoint.json").write_bytes(text.encode("latin-1"))
    env = {"RUN_DIR": str(run_dir), "MODELS_DIR": str(synthetic_run.paths.models_dir)}
    for args in (["check"], ["deploy"], ["demo-summary"]):
        assert_one_line_error(run(args, env=env), "endpoint.json is corrupt", "ml undeploy")
    # the fix it names works: undeploy clears it, then deploy is no longer blocked by it
    result = run(["undeploy"], env=env)
    assert result.exit_code == 0 and "removed the corrupt" in result.output, result.output
    assert not (run_dir / "endpoint.json").exists()
    again = run(["check"], env=env)
    assert "corrupt" not in again.output and "no local endpoint running" in again.output


def test_undeploy_of_a_corrupt_state_stops_the_server_serve_pid_names(tmp_path):
    """serve.pid names a live `ml.cli serve` process: undeploy stops it (a stand-in that only
    sleeps, started under that command line, since the pid check reads it)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    code = "import sys, time; time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, "ml.cli", "serve"])
    try:
        (run_dir / "serve.pid").write_text(f"{proc.pid}\n")
        (run_dir / "endpoint.json").write_text('{"url": ')
        result = run(["undeploy"], env={"RUN_DIR": str(run_dir)})
        assert result.exit_code == 0 and f"stopped the endpoint of pid {proc.pid}" in result.output
        assert proc.wait(timeout=20) is not None
        assert not (run_dir / "serve.pid").exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_corrupt_sagemaker_json_is_one_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "sagemaker.json").write_text('{"endpoint_name": "x", "reg')
    result = run(
        ["undeploy", "--target", "sagemaker"], env={"RUN_DIR": str(run_dir), "AWS_REGION": "us-east-1"}
    )
    assert_one_line_error(result, "sagemaker.json is corrupt", "delete it")


def test_state_files_are_replaced_whole(tmp_path):
    path = tmp_path / "run" / "endpoint.json"
    write_json(path, {"url": "a", "pid": 1})
    inode = os.stat(path).st_ino
    write_json(path, {"url": "b", "pid": 2})
    assert json.loads(path.read_text()) == {"url": "b", "pid": 2}
    assert os.stat(path).st_ino != inode  # a new file renamed over the old one, not rewritten in place
    assert [p.name for p in path.parent.iterdir()] == ["endpoint.json"]  # no temporary left
    path.write_text('{"url": "b", "pi')
    with pytest.raises(StateFileError, match=r"endpoint.json is corrupt .*: the fix"):
        read_json(path, "the fix")


def test_errors_are_one_line_from_the_installed_command(tmp_path):
    """The `ml` entry point itself (not CliRunner): stderr holds one line, exit code 2."""
    ml = Path(sys.executable).parent / "ml"
    out = subprocess.run([str(ml), "serve", "--port", "99999"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "Error: Invalid value for '--port': 99999 is not in the range 1<=x<=65535. (see `ml serve -h`)"
    ]
