"""`ml report data` on the tiny warehouse: the page and plots exist, and its numbers match SQL."""

from __future__ import annotations

import warnings
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

from ml.cli import main as cli
from ml.config import Paths
from ml.report.data_profile import build_data_report
from ml.report.power_law import LikelihoodRatio

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tiny_warehouse: Path, tiny_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("report")
    paths = Paths(
        raw_csv=tiny_csv, duckdb_path=tiny_warehouse, models_dir=root / "models", reports_dir=root / "reports"
    )
    return build_data_report(paths)


def _sql(db: Path, query: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(query).fetchall()


def test_page_and_plots_are_written(report: dict) -> None:
    page = report["html"]
    assert page.name == "data_profile.html" and page.exists()
    text = page.read_text(encoding="utf-8")
    for key, plot in report["plots"].items():
        data = plot.read_bytes()
        assert data.startswith(PNG_MAGIC), key
        assert len(data) > 10_000, key  # a drawn figure, not an empty canvas
        assert f'src="{plot.name}"' in text  # linked from the page, relative to it
    assert set(report["plots"]) == {
        "tracks_per_artist",
        "rows_per_track",
        "playlist_sizes",
        "artist_power_law",
    }
    assert "power law is" in text and "over a lognormal" in text and "over an exponential" in text
    assert "Rejected lines by reason" in text and "Top 10 artists" in text


def test_sizes_and_auto_share_match_sql(report: dict, tiny_warehouse: Path) -> None:
    numbers = report["numbers"]
    [(sessions, playlists, users, auto, auto_rows, rows)] = _sql(
        tiny_warehouse,
        "select count(*), count(distinct playlist_id), count(distinct user_id), count(*) filter (where is_auto), "
        "sum(n_rows) filter (where is_auto), sum(n_rows) from dim_playlists",
    )
    assert (numbers["sessions"], numbers["playlists"], numbers["users"]) == (sessions, playlists, users)
    assert numbers["auto_sessions"] == auto > 0
    assert numbers["auto_session_share"] == pytest.approx(auto / sessions)
    assert numbers["auto_row_share"] == pytest.approx(auto_rows / rows)
    [(median_size, median_artist_tracks, median_track_rows)] = _sql(
        tiny_warehouse,
        "select (select median(n_tracks) from dim_playlists), (select median(n_tracks) from dim_artists), "
        "(select median(n_rows) from dim_tracks)",
    )
    assert numbers["median_playlist_size"] == pytest.approx(median_size)
    assert numbers["median_tracks_per_artist"] == pytest.approx(median_artist_tracks)
    assert numbers["median_rows_per_track"] == pytest.approx(median_track_rows)


def test_top_artists_and_tracks_match_sql(report: dict, tiny_warehouse: Path) -> None:
    artists = _sql(
        tiny_warehouse,
        "select artist_name, n_rows, n_tracks, n_playlists from dim_artists where not is_unknown "
        "order by n_rows desc, artist_name limit 10",
    )
    tracks = _sql(
        tiny_warehouse,
        "select artist_name, track_name, n_rows, n_playlists from dim_tracks "
        "order by n_rows desc, artist_name, track_name limit 10",
    )
    assert [tuple(r) for r in report["top_artists"]] == artists
    assert [tuple(r) for r in report["top_tracks"]] == tracks
    assert artists[0][1] >= artists[-1][1]


def test_ingestion_accounting_matches_sql_and_adds_up(
    report: dict, tiny_warehouse: Path, tiny_csv: Path
) -> None:
    ingestion = report["numbers"]["ingestion"]
    [(loaded, recovered)] = _sql(
        tiny_warehouse,
        "select count(*), count(*) filter (where is_recovered) from stg_spotify__playlist_tracks",
    )
    by_reason = dict(_sql(tiny_warehouse, "select reason, count(*) from rejected_lines group by reason"))
    data_lines = len(tiny_csv.read_text(encoding="utf-8").splitlines()) - 1

    assert ingestion["loaded"] == loaded
    assert ingestion["recovered"] == recovered > 0
    assert ingestion["rejected_by_reason"] == by_reason
    assert ingestion["rejected"] == sum(by_reason.values()) > 0
    assert ingestion["data_lines"] == loaded + sum(by_reason.values()) == data_lines
    assert ingestion["accounted"] is True


def test_power_law_fit_is_reproducible_from_sql(report: dict, tiny_warehouse: Path) -> None:
    import powerlaw

    fit = report["numbers"]["power_law"]
    values = np.array(
        [r[0] for r in _sql(tiny_warehouse, "select n_rows from dim_artists where not is_unknown")]
    )
    assert fit["n"] == len(values)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        again = powerlaw.Fit(values.astype(float), discrete=True, xmin=fit["xmin"], verbose=False)
        R, p = again.distribution_compare("power_law", "lognormal")
    assert again.power_law.alpha == pytest.approx(fit["alpha"], rel=1e-6)
    assert fit["n_tail"] == int((values >= fit["xmin"]).sum())
    assert 1.0 < fit["alpha"] < 5.0 and 0.0 <= fit["D"] < 1.0
    lognormal = next(t for t in fit["tests"] if t["alternative"] == "lognormal")
    assert lognormal["R"] == pytest.approx(R, rel=1e-6) and lognormal["p"] == pytest.approx(p, rel=1e-6)


@pytest.mark.parametrize(
    ("R", "p", "words"),
    [
        (5.0, 0.01, "a power law is preferred over a lognormal"),
        (-5.0, 0.01, "a power law is not preferred over a lognormal: the lognormal fits better"),
        (2.0, 0.5, "a power law is not preferred over a lognormal: the test cannot tell them apart"),
    ],
)
def test_verdict_words_follow_sign_and_significance(R: float, p: float, words: str) -> None:
    assert LikelihoodRatio("lognormal", R, p).verdict.startswith(words)


def test_cli_writes_the_report(tiny_warehouse: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DUCKDB_PATH", str(tiny_warehouse))
    monkeypatch.setenv("REPORTS_DIR", str(tmp_path / "reports"))
    result = CliRunner().invoke(cli, ["report", "data"])

    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "data_profile.html").exists()
    assert "data profile:" in result.output


def test_missing_warehouse_names_the_file(tmp_path: Path) -> None:
    from ml.warehouse import WarehouseError

    paths = Paths(
        raw_csv=tmp_path / "raw.csv",
        duckdb_path=tmp_path / "missing.duckdb",
        models_dir=tmp_path,
        reports_dir=tmp_path / "reports",
    )
    with pytest.raises(WarehouseError, match="missing.duckdb"):
        build_data_report(paths)


def test_real_sample_without_a_tail_gets_a_page_saying_why(
    real_sample_warehouse: Path, tmp_path: Path
) -> None:
    """500 shuffled real rows: artists appear once or twice, so there is no tail to fit."""
    paths = Paths(
        raw_csv=tmp_path / "raw.csv",
        duckdb_path=real_sample_warehouse,
        models_dir=tmp_path,
        reports_dir=tmp_path / "reports",
    )
    result = build_data_report(paths)

    assert result["numbers"]["power_law"] is None
    assert result["numbers"]["power_law_unavailable"]
    assert "artist_power_law" not in result["plots"]
    text = result["html"].read_text(encoding="utf-8")
    assert "No power-law analysis" in text
    assert result["numbers"]["ingestion"]["data_lines"] == 500


def test_ablation_shows_coverage_by_min_count_and_folding() -> None:
    from ml.report.search_report import ablation_table, search_table

    def row(trial: int, min_count: int, fold: bool, value: float, oov: float) -> dict:
        return {
            "trial": trial, "rung": 0, "min_count": min_count, "fold_rare": fold, "rung0": value,
            "oov_share": oov, "covered": oov < 0.1, "rung0 cosine+0": value / 2, "rung0 output+0": value,
        }  # fmt: skip

    rows = [row(0, 5, True, 0.045, 0.057), row(1, 5, False, 0.050, 0.317), row(2, 5, True, 0.040, 0.060)]
    text = ablation_table(rows, "hr@10")
    assert "| 5 | no | 0.0500 | 0.3170 | 1 |" in text
    assert "| 5 | yes | 0.0450 | 0.0570 | 2 |" in text  # best metric and lowest OOV of the two folded fits
    header = search_table(rows).splitlines()[0]
    assert "fold_rare" in header and "covered" in header
    costed = [{**rows[0], "refit_cost": 3.3e11, "within_budget": False}]
    assert "within_budget" in search_table(costed).splitlines()[0] and "| False |" in search_table(costed)


def test_ablation_shows_what_per_seed_aggregation_bought() -> None:
    from ml.report.search_report import ablation_table, search_table

    row = {
        "trial": 0, "rung": 0, "min_count": 5, "fold_rare": True, "rung0": 0.128, "oov_share": 0.057,
        "covered": True, "per_seed": 50, "rung0 cosine+0": 0.03, "rung0 output+0": 0.094,
        "rung0 output+0.25": 0.091, "rung0 output+0/seed20": 0.120, "rung0 output+0/seed50": 0.128,
    }  # fmt: skip
    text = ablation_table([row], "hr@10")
    assert "| defaults, output layer | 0.0940 |" in text  # the mean query, prior 0
    assert "| defaults, best rule and prior, mean query | 0.0940 |" in text
    assert "| defaults, output, per-seed M=20 | 0.1200 |" in text
    assert "| defaults, output, per-seed M=50 | 0.1280 |" in text
    assert "| defaults, best variant | 0.1280 |" in text
    assert "per_seed" in search_table([row]).splitlines()[0]
