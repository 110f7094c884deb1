"""The `ml` command line: thin click commands, one pure function each (the modules do the work).

Imports of the heavy parts (TensorFlow, gensim, Great Expectations) live inside the commands so
`ml --help` and `ml data generate` start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ml.config import DEFAULTS, Paths


def _paths() -> Paths:
    return Paths.from_env()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """music-recsys: playlist continuation from the Spotify playlists file."""


# --- data -------------------------------------------------------------------------------------


@main.group()
def data() -> None:
    """Raw data: the realistic generator."""


@data.command("generate")
@click.option("--preset", type=click.Choice(["tiny", "small", "full"]), default="small", show_default=True)
@click.option("--rows", type=int, default=None, help="Target row count (overrides the preset's).")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output CSV; an explicit --out is overwritten. Default: RAW_CSV, never overwritten.",
)
@click.option("--force", is_flag=True, help="Overwrite RAW_CSV when --out is not given.")
def data_generate(preset: str, rows: int | None, seed: int, out: Path | None, force: bool) -> None:
    """Write a realistic stand-in for spotify_dataset.csv, in its exact raw format."""
    from ml.data.generate import generate

    if out is None:
        out = _paths().raw_csv
        # RAW_CSV may be the real Kaggle file: never replace it by accident.
        if out.exists() and not force:
            raise click.ClickException(f"{out} exists; pass --force (or --out) to write anyway")
    result = generate(preset=preset, rows=rows, seed=seed, out=out)
    click.echo(result.summary())


# --- quality gate -----------------------------------------------------------------------------


@main.group()
def validate() -> None:
    """Great Expectations gates (raw file, marts)."""


_GATE_PROFILE = click.option(
    "--profile",
    envvar="GATE_PROFILE",
    default=None,
    help="Threshold profile from gx/thresholds.yml (e.g. full, sample). Env: GATE_PROFILE.",
)


@validate.command("raw")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), default=None, help="Default: RAW_CSV.")
@_GATE_PROFILE
@click.option(
    "--rows",
    "rows_range",
    default=None,
    metavar="MIN:MAX",
    help="Expected data-line range for this run (overrides the thresholds file), e.g. 1:1000.",
)
def validate_raw_cmd(csv_path: Path | None, profile: str | None, rows_range: str | None) -> None:
    """Gate the raw file before dbt reads it (thresholds: gx/thresholds.yml; Data Docs under gx/)."""
    from ml.quality.gate import validate_raw
    from ml.quality.thresholds import Range

    overrides = None
    if rows_range:
        try:
            rng = Range.parse(rows_range)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--rows") from err
        overrides = {"raw": {"data_lines": {"min": rng.min, "max": rng.max}}}
    result = validate_raw(csv_path or _paths().raw_csv, paths=_paths(), profile=profile, overrides=overrides)
    click.echo(result.summary())
    if not result.success:
        sys.exit(1)


@validate.command("marts")
@_GATE_PROFILE
def validate_marts_cmd(profile: str | None) -> None:
    """Gate the marts the model reads (sizes, split shares, leakage, held-out tracks)."""
    from ml.quality.gate import validate_marts

    result = validate_marts(paths=_paths(), profile=profile)
    click.echo(result.summary())
    if not result.success:
        sys.exit(1)


# --- warehouse ---------------------------------------------------------------------------------


@main.command("sql")
@click.argument("query")
@click.option("--limit", type=int, default=50, show_default=True, help="Rows to print.")
def sql_cmd(query: str, limit: int) -> None:
    """Run read-only SQL against the warehouse (DUCKDB_PATH) and print the result."""
    from ml.warehouse import run_sql

    click.echo(run_sql(query, _paths().duckdb_path, limit=limit))


@main.command("export-marts")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("data/marts"),
    show_default=True,
    help="Folder for <relation>/*.parquet (replaced).",
)
@click.option("--target", type=click.Choice(["dev", "spark"]), default="dev", show_default=True)
def export_marts_cmd(out_dir: Path, target: str) -> None:
    """Write the built marts as Parquet: the contract between any warehouse and training."""
    from ml.marts_parquet import export_marts
    from ml.warehouse import WarehouseError

    paths = _paths()
    try:
        result = export_marts(out_dir, raw_csv=paths.raw_csv, duckdb_path=paths.duckdb_path, target=target)
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(result.summary())


# --- reports -----------------------------------------------------------------------------------


@main.group()
def report() -> None:
    """Reports: the dataset profile."""


@report.command("data")
def report_data_cmd() -> None:
    """Dataset profile: distributions, power law, ingestion accounting (reports/)."""
    from ml.report.data_profile import build_data_report
    from ml.warehouse import WarehouseError

    try:
        result = build_data_report(_paths())
    except WarehouseError as err:
        raise click.ClickException(str(err)) from err
    fit = result["numbers"]["power_law"]
    if fit:
        click.echo(
            f"artist popularity: alpha {fit['alpha']:.3f}, xmin {fit['xmin']:g}, KS D {fit['D']:.4f}; "
            + "; ".join(t["verdict"] for t in result["numbers"]["power_law_verdicts"])
        )
    else:
        click.echo(f"artist popularity: no power-law analysis: {result['numbers']['power_law_unavailable']}")
    click.echo(f"data profile: {result['html']} (plots beside it, {result['elapsed_s']:.1f} s)")


# --- model -------------------------------------------------------------------------------------


@main.command("train")
@click.option(
    "--grid",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Search grid (default: ml/grid.yml).",
)
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--no-search", is_flag=True, help="Skip the search; fit the grid's default params.")
def train_cmd(grid: Path | None, seed: int, no_search: bool) -> None:
    """Train, search and evaluate track2vec from the marts; writes models/<run_id> and models/latest."""
    from ml.train import run_training

    # progress bars only on a terminal: in a log, tqdm's '\r' redraws pile up into megabytes
    result = run_training(
        _paths(), grid_path=grid, seed=seed, search=not no_search, progress=sys.stderr.isatty()
    )
    click.echo(result.summary())


@main.command("recommend")
@click.option("--track", "tracks", multiple=True, required=True, help='"Artist - Title" (repeatable).')
@click.option("-k", "k", type=int, default=10, show_default=True)
def recommend_cmd(tracks: tuple[str, ...], k: int) -> None:
    """Suggest tracks for a playlist, by name, from the offline model in models/latest."""
    from ml.recommend import recommend_by_name

    try:
        click.echo(recommend_by_name(list(tracks), k=k, paths=_paths()))
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from err


@main.command("export")
def export_cmd() -> None:
    """Export models/latest as a Keras KNN SavedModel and model.tar.gz (TF Serving layout)."""
    from ml.export import export_latest

    result = export_latest(_paths())
    click.echo(result.summary())


# --- serving and deployment ---------------------------------------------------------------------


@main.command("serve")
@click.option("--host", default=DEFAULTS.host, show_default=True)
@click.option("--port", type=int, default=DEFAULTS.port, show_default=True)
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    default=None,
    help="model.tar.gz or SavedModel dir (default: models/latest/model.tar.gz).",
)
def serve_cmd(host: str, port: int, model_path: Path | None) -> None:
    """Serve the exported model over HTTP with the SageMaker container contract."""
    from ml.run_dir import RunDir
    from ml.serve import serve_forever

    serve_forever(model_path or RunDir.latest(_paths().models_dir).tarball, host=host, port=port)


@main.command("deploy")
@click.option("--target", type=click.Choice(["local", "sagemaker"]), default="local", show_default=True)
def deploy_cmd(target: str) -> None:
    """Deploy models/latest/model.tar.gz and check the live endpoint."""
    from ml.deploy import deploy

    result = deploy(target, _paths())
    click.echo(result.summary())
    if not result.success:
        sys.exit(1)


@main.command("undeploy")
@click.option("--target", type=click.Choice(["local", "sagemaker"]), default="local", show_default=True)
def undeploy_cmd(target: str) -> None:
    """Stop the local endpoint, or delete the SageMaker endpoint and what deploy created."""
    from ml.deploy import undeploy

    try:
        click.echo(undeploy(target, _paths()))
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("check")
@click.option("--target", type=click.Choice(["local", "sagemaker"]), default="local", show_default=True)
@click.option("--n", "n_playlists", type=int, default=DEFAULTS.check_playlists, show_default=True)
def check_cmd(target: str, n_playlists: int) -> None:
    """Invoke the deployed endpoint with test playlists; compare with the offline predictions."""
    from ml.deploy import check

    result = check(target, _paths(), n_playlists=n_playlists)
    click.echo(result.summary())
    if not result.success:
        sys.exit(1)


@main.command("demo-summary")
def demo_summary_cmd() -> None:
    """Print where to look after `make demo`."""
    from ml.deploy import demo_summary

    click.echo(demo_summary(_paths()))


@main.group("config")
def config_group() -> None:
    """The shared defaults (ml/config.py): seed, host, port, TF version, check size."""


@config_group.command("get")
@click.argument("name", type=click.Choice(sorted(DEFAULTS.__dataclass_fields__)))
def config_get_cmd(name: str) -> None:
    """Print one default (Make reads the same values with `python3 ml/config.py get NAME`)."""
    click.echo(getattr(DEFAULTS, name))


if __name__ == "__main__":
    main()
