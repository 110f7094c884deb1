"""`ml serve`: the exported Keras KNN over HTTP, with the SageMaker inference-container contract.

`GET /ping` -> 200 once the model is loaded, with the run it serves; `POST /invocations` takes the
JSON body of `ml.endpoint_contract` (track ids, track names, the playlist's name) and answers `{"predictions": [...]}`.
Bad requests get a 4xx with `{"error": "..."}`. Every answer carries the lineage of the model in
headers: `X-Model-Run-Id`, `X-Model-Trained-At`, `X-Dbt-Invocation-Id` (model_info.json).

Loads only the exported artefact (model.tar.gz, its unpacked export dir, or a SavedModel dir), as
the SageMaker container does: no gensim, no training code. Two engines compute the same rule:
- `numpy` (the default for a tarball or export dir): the Keras model's weights and files scored by
  `ml.knn` in this process (`ml.knn_engine`), without TensorFlow - the fast path;
- `tensorflow`: the SavedModel's `serving_default`, as TF Serving runs it on SageMaker (the default
  for a bare SavedModel dir).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import json
import logging
import shutil
import signal
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ml import endpoint_contract
from ml.config import ServeLimits
from ml.endpoint_contract import ContractError, Instance
from ml.serve_guard import RequestLog

log = logging.getLogger("ml.serve")


class ModelLoadError(ValueError):
    """The path holds no loadable exported model; the message names it and says why."""


ENGINES = ("auto", "numpy", "tensorflow")
MODEL_INFO_FILE = "model_info.json"
KERAS_FILE = "knn.keras"
# A catalogue this small (items x dims; 68k x 128 is 8.7M) is scored on the event loop: its product
# takes about a millisecond, less than the hop to a worker thread costs on a busy machine.
INLINE_CELLS = 16_000_000


@dataclass(frozen=True)
class ServingModel:
    """A loaded model: `predict(instances) -> predictions`, with what it is and where it came from."""

    source: Path
    saved_model_dir: Path
    n_tracks: int
    engine: str  # numpy | tensorflow
    info: dict  # model_info.json: run_id, trained_at, dbt_invocation_id, ...
    scorer: object  # ml.knn_engine.KnnEngine, or the SavedModel's signature (its object kept alive)
    inline: bool = False  # small enough to answer on the event loop

    def predict(self, instances: list[Instance]) -> list[dict[str, object]]:
        if self.engine == "numpy":
            return self.scorer.predict(instances)
        return _predict_tf(self.scorer, instances)

    def headers(self) -> dict[str, str]:
        """The lineage headers of every answer."""
        return {
            "X-Model-Run-Id": str(self.info.get("run_id") or "unknown"),
            "X-Model-Trained-At": str(self.info.get("trained_at") or "unknown"),
            "X-Dbt-Invocation-Id": str(self.info.get("dbt_invocation_id") or "unknown"),
        }


def _predict_tf(signature, instances: list[Instance]) -> list[dict[str, object]]:
    import tensorflow as tf

    inputs = endpoint_contract.model_inputs(instances)
    out = signature(
        tracks=tf.constant(inputs["tracks"], dtype=tf.string),
        k=tf.constant(inputs["k"], dtype=tf.int32),
        name_tokens=tf.constant(inputs["name_tokens"], dtype=tf.string),
    )
    n_results = out["n_results"].numpy()
    width = int(n_results.max()) if len(n_results) else 0

    def strings(name: str) -> list:
        return np.char.decode(out[name].numpy()[:, :width].astype(bytes), "utf-8").tolist()

    return endpoint_contract.predictions(
        {
            "track_ids": strings("track_ids"),
            "artists": strings("artists"),
            "titles": strings("titles"),
            "scores": out["scores"].numpy()[:, :width].astype(np.float64).tolist(),
            "n_results": n_results.tolist(),
            "n_unknown": out["n_unknown"].numpy().tolist(),
            "fallback": out["fallback"].numpy().tolist(),
            "n_name_tokens": out["n_name_tokens"].numpy().tolist(),
            "n_unknown_tokens": out["n_unknown_tokens"].numpy().tolist(),
        }
    )


def load_model(path: Path, engine: str = "auto", threads: int | None = 1) -> ServingModel:
    """Load model.tar.gz (extracted to a temporary dir), an export dir, or a SavedModel dir.

    Raises ModelLoadError (a ValueError) naming the path when it holds no loadable model.

    `engine` auto: numpy when the export's knn.keras is there (tarball, export dir), else tensorflow.
    `threads`: BLAS threads per product for the numpy engine (None: the library's default). One is
    the default: a single query's product is memory-bound, requests run side by side on the
    cores, and on a shared machine a second BLAS thread waits more than it helps (bench serve).
    The model answers one warm-up query before it is returned (first calls allocate and load code).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path} not found: run `ml export` first")
    if path.is_file():
        extracted = Path(tempfile.mkdtemp(prefix="ml-serve-"))
        atexit.register(shutil.rmtree, extracted, ignore_errors=True)
        try:
            with tarfile.open(path, "r:gz") as tar:
                tar.extractall(extracted, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ModelLoadError(f"{path} is not a model.tar.gz of `ml export` ({exc})") from None
        root = extracted
    else:
        root = path
    saved_model_dir = _find_saved_model(root, path)
    export_dir = saved_model_dir.parent
    info_path = export_dir / MODEL_INFO_FILE
    try:
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{info_path}: unreadable model info ({exc})") from None
    has_keras = root != saved_model_dir and (export_dir / KERAS_FILE).exists()
    if engine == "numpy" or (engine == "auto" and has_keras):
        from threadpoolctl import threadpool_limits

        from ml.knn_engine import KnnEngine

        if threads is not None:
            threadpool_limits(limits=threads, user_api="blas")  # for the whole process
        try:
            scorer = KnnEngine.load(export_dir)
        except (OSError, ValueError, KeyError) as exc:
            message = " ".join(str(exc).split())[:300]
            raise ModelLoadError(f"{path}: the exported model cannot be loaded ({message})") from None
        cells = scorer.n_tracks * scorer.tables.items_t.shape[0]
        model = ServingModel(
            path, saved_model_dir, scorer.n_tracks, "numpy", info, scorer, cells <= INLINE_CELLS
        )
        model.predict([Instance((scorer.catalogue[0],), 10), Instance((), 10), Instance((), 10, "warm up")])
        return model
    import tensorflow as tf  # after the cheap checks: a bad path fails in a second, not ten

    try:
        loaded = tf.saved_model.load(str(saved_model_dir))
        signature = loaded.signatures[endpoint_contract.SIGNATURE_NAME]
    except (OSError, ValueError, KeyError, tf.errors.OpError) as exc:
        message = " ".join(str(exc).split())[:300]
        raise ModelLoadError(
            f"{path}: the SavedModel cannot be loaded ({type(exc).__name__}: {message})"
        ) from None
    signature._loaded = loaded  # the signature's tables and variables belong to `loaded`
    vocabulary = (saved_model_dir / "assets" / "track_ids.txt").read_text().splitlines()
    model = ServingModel(path, saved_model_dir, len(vocabulary), "tensorflow", info, signature)
    model.predict([Instance(tuple(vocabulary[:1]), 10), Instance((), 10), Instance((), 10, "warm up")])
    return model


def _find_saved_model(root: Path, given: Path) -> Path:
    if (root / "saved_model.pb").exists():
        return root
    versions = sorted(
        (p for p in root.iterdir() if p.name.isdigit() and (p / "saved_model.pb").exists()),
        key=lambda p: int(p.name),
    )
    if not versions:
        raise ModelLoadError(f"{given}: no saved_model.pb, nor a <version>/saved_model.pb")
    return versions[-1]


def create_app(
    model: ServingModel,
    max_body_bytes: int = endpoint_contract.MAX_BODY_BYTES,
    body_timeout_s: float = ServeLimits.body_timeout_s,
) -> Starlette:
    """The ASGI app: /ping and /invocations over `model` (the body read within `body_timeout_s`)."""

    headers = model.headers()
    status = {
        "status": "ok",
        "n_tracks": model.n_tracks,
        "engine": model.engine,
        "model": {k: model.info.get(k) for k in ("run_id", "trained_at", "dbt_invocation_id", "exported_at")},
    }

    async def ping(request: Request) -> Response:
        return JsonBody(status, headers=headers)

    async def invocations(request: Request) -> Response:
        try:
            endpoint_contract.check_content_type(request.headers.get("content-type"))
            body = await _read_body(request, max_body_bytes, body_timeout_s)
            instances = endpoint_contract.parse_body(body, max_body_bytes)
        except ContractError as exc:
            return _error(exc.status, exc.message)
        except ClientDisconnect:
            # Nobody to answer; 499 (the client closed the request) is for the request log.
            return Response(status_code=499)
        request.scope.setdefault("state", {})["n_instances"] = len(instances)
        if model.inline:
            predictions = model.predict(instances)
        else:
            predictions = await run_in_threadpool(model.predict, instances)
        return JsonBody({"predictions": predictions}, headers=headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, exc.detail)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}")

    app = Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.add_middleware(RequestLog)
    return app


async def _read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The body, refused early (413) when its declared or streamed size passes the limit, and
    408 when it is not all in within `timeout_s` (a slow client must not hold the request)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ContractError("bad Content-Length header")
        if int(declared) > limit:
            raise ContractError(f"body is {int(declared)} bytes; the limit is {limit}", status=413)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ContractError(f"body is over the {limit}-byte limit", status=413)
                chunks.append(chunk)
    except TimeoutError:
        raise ContractError(f"request body not received within {timeout_s:g}s", status=408) from None
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class JsonBody(JSONResponse):
    """JSON rendered by orjson (several times faster than json.dumps on a prediction list)."""

    def render(self, content: object) -> bytes:
        import orjson

        return orjson.dumps(content)


def _trim_heap() -> None:
    """Hand the heap's free pages back after the load (glibc's malloc_trim; ~9 MB of RSS at 68k
    tracks: the load's temporary buffers). Elsewhere nothing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def serve_forever(
    model_path: Path,
    host: str,
    port: int,
    limits: ServeLimits | None = None,
    engine: str = "auto",
    threads: int | None = 1,
) -> None:
    """Load the exported model and serve it until interrupted (uvicorn, one process, guarded
    transport: ml.serve_guard)."""
    from ml.serve_guard import build_server, fitted_limits, install_log_limits, serve_guarded

    model_path = Path(model_path)
    start = time.perf_counter()
    model = load_model(model_path, engine, threads)  # a bad path fails here, before logging is set up
    _trim_heap()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        install_log_limits(handler)
    limits, why = fitted_limits(limits or ServeLimits())
    log.info(
        "loaded %s (%s tracks, run %s, %s engine) in %.1fs; serving on http://%s:%d; %s",
        model.saved_model_dir.parent,
        f"{model.n_tracks:,}",
        model.info.get("run_id", "unknown"),
        model.engine,
        time.perf_counter() - start,
        host,
        port,
        why,
    )
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it with the previous handler: make
    # that a normal exit so atexit removes the extracted model.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    server = build_server(create_app(model, body_timeout_s=limits.body_timeout_s), host, port, limits)
    asyncio.run(serve_guarded(server))
    if not server.started:  # e.g. the port is taken: uvicorn logged why
        sys.exit(1)
