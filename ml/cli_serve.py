"""`ml serve`: the options of the local endpoint (transport limits, engine), checked before the model loads.

Part of the CLI (`ml.cli` registers it); kept apart so each CLI module stays small.
"""

from __future__ import annotations

from pathlib import Path

import click

from ml.config import DEFAULTS, Paths, ServeLimits

_LIMITS = ServeLimits()


@click.command("serve")
@click.option("--host", default=DEFAULTS.host, show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULTS.port, show_default=True)
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    default=None,
    help="model.tar.gz, its export dir, or a SavedModel dir (default: models/latest/model.tar.gz).",
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "numpy", "tensorflow"]),
    default="auto",
    show_default=True,
    help="numpy: the Keras model's weights scored by ml.knn, no TensorFlow (auto for a tarball); "
    "tensorflow: the SavedModel as TF Serving runs it (auto for a SavedModel dir).",
)
@click.option(
    "--threads",
    type=click.IntRange(0, 64),
    default=1,
    show_default=True,
    help="BLAS threads per query for the numpy engine (0: the library default).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=_LIMITS.max_connections,
    show_default=True,
    help="Open connections at most (lowered to fit the open-file limit).",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=_LIMITS.header_timeout_s,
    show_default=True,
    help="Seconds a client has to send a request's line and headers.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=_LIMITS.body_timeout_s,
    show_default=True,
    help="Seconds a client has to send a request's body.",
)
@click.option(
    "--keep-alive",
    type=click.IntRange(min=1),
    default=_LIMITS.keep_alive_s,
    show_default=True,
    help="Seconds an idle keep-alive connection stays open.",
)
def serve_cmd(
    host: str,
    port: int,
    model_path: Path | None,
    engine: str,
    threads: int,
    max_connections: int,
    header_timeout: float,
    body_timeout: float,
    keep_alive: int,
) -> None:
    """Serve the exported model over HTTP with the SageMaker container contract."""
    from ml.run_dir import RunDir
    from ml.serve import ModelLoadError, serve_forever

    _check_bind(host, port)
    if model_path is not None and not model_path.exists():
        raise click.BadParameter(f"{model_path} does not exist", param_hint="'--model'")
    limits = ServeLimits(
        max_connections=max_connections,
        header_timeout_s=header_timeout,
        body_timeout_s=body_timeout,
        keep_alive_s=keep_alive,
    )
    try:
        serve_forever(
            model_path or RunDir.latest(Paths.from_env().models_dir).tarball,
            host=host,
            port=port,
            limits=limits,
            engine=engine,
            threads=threads or None,
        )
    except ModelLoadError as err:
        if model_path is None:  # the default model: nothing the user typed is wrong
            raise click.ClickException(str(err)) from None
        raise click.BadParameter(str(err), param_hint="'--model'") from None
    except ValueError as err:  # e.g. too few file descriptors
        raise click.ClickException(str(err)) from None


def _check_bind(host: str, port: int) -> None:
    """A port in use or a host that is no address of this machine: say so before loading the model."""
    from ml.serve_guard import bind_problem

    problem = bind_problem(host, port)
    if problem:
        raise click.BadParameter(problem[1], param_hint=f"'--{problem[0]}'")
