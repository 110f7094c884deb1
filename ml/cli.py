"""The `ml` command line: thin click commands, one pure function each (the modules do the work).

Imports of the heavy parts (TensorFlow, gensim, Great Expectations) live inside the commands so
`ml --help` and `ml data generate` start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ml.cli_serve import serve_cmd
from ml.config import DEFAULTS, Paths


def _paths() -> Paths:
    return Paths.from_env()


class OneLineErrors(click.Group):
    """Every error of a user's input is one line on stderr, exit code 2 (usage) or 1, no traceback:
    click's usage errors lose their usage block (the line says where `-h` helps instead)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: ANN001, ANN201 - click's signature
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.ClickException as err:
            message = " ".join(err.format_message().split())
            ctx = getattr(err, "ctx", None)
            if isinstance(err, click.UsageError) and ctx is not None:
                message += f" (see `{ctx.command_path} -h`)"
            click.echo(f"Error: {message}", err=True)
            sys.exit(err.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """music-recsys: playlist continuation from the Spotify playlists file."""


# --- data -------------------------------------------------------------------------------------


@main.group()
def data() -> None:
    """Raw data: the realistic generator."""


@data.command("generate")
@click.option("--preset", type=click.Choice(["tiny", "small", "full"]), default="small", show_default=True)
@click.option(
    "--rows", type=click.IntRange(min=100), default=None, help="Target row count (overrides the preset's)."
)
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
    try:
        result = generate(preset=preset, rows=rows, seed=seed, out=out)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
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
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True, help="Rows to print.")
def sql_cmd(query: str, limit: int) -> None:
    """Run read-only SQL against the warehouse (DUCKDB_PATH) and print the result.

    Read-only for real: no writes, no file or network access (COPY TO, ATTACH, read_csv of other
    files), no extension install or load."""
    from ml.warehouse import WarehouseError, run_sql

    try:
        click.echo(run_sql(query, _paths().duckdb_path, limit=limit))
    except WarehouseError as err:
        raise click.ClickException(str(err)) from None


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
@click.option(
    "--target",
    type=click.Choice(["local", "sagemaker"]),
    default="local",
    show_default=True,
    help="sagemaker: the same training as a SageMaker training job on the Parquet marts (deploy.yml).",
)
def train_cmd(grid: Path | None, seed: int, no_search: bool, target: str) -> None:
    """Train, search and evaluate track2vec from the marts; writes models/<run_id> and models/latest."""
    if target == "sagemaker":
        from ml.deploy.config import TrainingJobConfig
        from ml.deploy.training_job import TrainingJobError, train_on_sagemaker
        from ml.warehouse import WarehouseError

        try:
            result = train_on_sagemaker(
                _paths(), TrainingJobConfig.load(), seed=seed, search=not no_search, grid=grid
            )
        except (TrainingJobError, WarehouseError) as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(130 if str(err).startswith("interrupted") else 1)
        click.echo(result.summary())
        return
    from ml.train import run_training

    # progress bars only on a terminal: in a log, tqdm's '\r' redraws pile up into megabytes
    result = run_training(
        _paths(), grid_path=grid, seed=seed, search=not no_search, progress=sys.stderr.isatty()
    )
    click.echo(result.summary())


@main.command("recommend")
@click.option("--track", "tracks", multiple=True, help='"Artist - Title" (repeatable).')
@click.option("--id", "ids", multiple=True, help="a track id (repeatable).")
@click.option(
    "--name", "name", default="", help='the playlist\'s own name, e.g. "summer chill" (cold start).'
)
@click.option("-k", "k", type=click.IntRange(1, 500), default=10, show_default=True)
def recommend_cmd(tracks: tuple[str, ...], ids: tuple[str, ...], name: str, k: int) -> None:
    """Suggest tracks for a playlist, by its tracks (name or id) and/or its own name, from the model
    in models/latest (the endpoint's answer)."""
    from ml.recommend import recommend_by_name
    from ml.warehouse import WarehouseError

    if not tracks and not ids and not name:
        raise click.UsageError(
            'give the playlist as --track "Artist - Title", --id <track_id> and/or --name "<playlist name>"'
        )
    try:
        click.echo(recommend_by_name(list(tracks), k=k, paths=_paths(), ids=ids, name=name))
    except (ValueError, FileNotFoundError, WarehouseError) as err:
        raise click.ClickException(str(err)) from None


@main.command("export")
def export_cmd() -> None:
    """Export models/latest as a Keras KNN SavedModel and model.tar.gz (TF Serving layout)."""
    from ml.export import export_latest

    result = export_latest(_paths())
    click.echo(result.summary())


# --- serving and deployment ---------------------------------------------------------------------


main.add_command(serve_cmd)


@main.command("deploy")
@click.option("--target", type=click.Choice(["local", "sagemaker"]), default="local", show_default=True)
def deploy_cmd(target: str) -> None:
    """Deploy models/latest/model.tar.gz and check the live endpoint."""
    from ml.deploy import deploy
    from ml.deploy.state import StateFileError

    try:
        result = deploy(target, _paths())
    except StateFileError as err:
        raise click.ClickException(str(err)) from None
    click.echo(result.summary())
    if not result.success:
        sys.exit(1)


@main.command("undeploy")
@click.option("--target", type=click.Choice(["local", "sagemaker"]), default="local", show_default=True)
def undeploy_cmd(target: str) -> None:
    """Stop the local endpoint, or delete the SageMaker endpoint and what deploy created."""
    from ml.deploy import undeploy
    from ml.deploy.state import StateFileError

    try:
        click.echo(undeploy(target, _paths()))
    except (RuntimeError, StateFileError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("check")
@click.option("--target", type=click.Choice(["local", "sagemaker"]), default="local", show_default=True)
@click.option(
    "--n", "n_playlists", type=click.IntRange(min=1), default=DEFAULTS.check_playlists, show_default=True
)
def check_cmd(target: str, n_playlists: int) -> None:
    """Invoke the deployed endpoint with test playlists; compare with the offline predictions."""
    from ml.deploy import check
    from ml.deploy.state import StateFileError

    try:
        result = check(target, _paths(), n_playlists=n_playlists)
    except StateFileError as err:
        raise click.ClickException(str(err)) from None
    click.echo(result.summary())
    if not result.success:
        sys.exit(1)


@main.command("demo-summary")
def demo_summary_cmd() -> None:
    """Print where to look after `make demo`."""
    from ml.deploy import demo_summary
    from ml.deploy.state import StateFileError

    try:
        click.echo(demo_summary(_paths()))
    except StateFileError as err:
        raise click.ClickException(str(err)) from None


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
