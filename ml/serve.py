"""`ml serve`: the exported SavedModel over HTTP, with the SageMaker inference-container contract.

`GET /ping` -> 200 once the model is loaded; `POST /invocations` takes the TensorFlow Serving JSON
body of `ml.endpoint_contract` and answers `{"predictions": [...]}`. Bad requests get a 4xx with
`{"error": "..."}`; the model runs in a worker thread so the event loop keeps answering.

Loads only the exported artefact (model.tar.gz or a SavedModel directory), as the SageMaker
container does: no gensim, no training code.
"""

from __future__ import annotations

import atexit
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
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ml import endpoint_contract
from ml.endpoint_contract import ContractError, Instance

log = logging.getLogger("ml.serve")


@dataclass(frozen=True)
class ServingModel:
    """A loaded SavedModel (which owns the signature's tables and variables) and its signature."""

    source: Path
    saved_model_dir: Path
    n_tracks: int
    loaded: object
    signature: object

    def predict(self, instances: list[Instance]) -> list[dict[str, object]]:
        import tensorflow as tf

        inputs = endpoint_contract.model_inputs(instances)
        out = self.signature(
            tracks=tf.constant(inputs["tracks"], dtype=tf.string),
            k=tf.constant(inputs["k"], dtype=tf.int32),
        )
        n_results = out["n_results"].numpy()
        width = int(n_results.max()) if len(n_results) else 0
        ids = out["track_ids"].numpy()[:, :width].astype(str)
        return endpoint_contract.predictions(
            {
                "track_ids": ids.tolist(),
                "scores": out["scores"].numpy()[:, :width].astype(np.float64).tolist(),
                "n_results": n_results.tolist(),
                "n_unknown": out["n_unknown"].numpy().tolist(),
                "fallback": out["fallback"].numpy().tolist(),
            }
        )


def load_model(path: Path) -> ServingModel:
    """Load model.tar.gz (extracted to a temporary dir) or a SavedModel dir (or its parent)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `ml export` first")
    if path.is_file():
        extracted = Path(tempfile.mkdtemp(prefix="ml-serve-"))
        atexit.register(shutil.rmtree, extracted, ignore_errors=True)
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(extracted, filter="data")
        root = extracted
    else:
        root = path
    saved_model_dir = _find_saved_model(root)
    import tensorflow as tf  # after the cheap checks: a bad path fails in a second, not ten

    loaded = tf.saved_model.load(str(saved_model_dir))
    signature = loaded.signatures[endpoint_contract.SIGNATURE_NAME]
    n_tracks = int(loaded.embeddings_t.shape[1]) if hasattr(loaded, "embeddings_t") else -1
    return ServingModel(path, saved_model_dir, n_tracks, loaded, signature)


def _find_saved_model(root: Path) -> Path:
    if (root / "saved_model.pb").exists():
        return root
    versions = sorted(
        (p for p in root.iterdir() if p.name.isdigit() and (p / "saved_model.pb").exists()),
        key=lambda p: int(p.name),
    )
    if not versions:
        raise FileNotFoundError(f"{root}: no saved_model.pb, nor a <version>/saved_model.pb")
    return versions[-1]


def create_app(model: ServingModel, max_body_bytes: int = endpoint_contract.MAX_BODY_BYTES) -> Starlette:
    """The ASGI app: /ping and /invocations over `model`."""

    async def ping(request: Request) -> Response:
        return JSONResponse({"status": "ok", "n_tracks": model.n_tracks})

    async def invocations(request: Request) -> Response:
        try:
            body = await _read_body(request, max_body_bytes)
            instances = endpoint_contract.parse_body(body, max_body_bytes)
        except ContractError as exc:
            return _error(exc.status, exc.message)
        request.scope.setdefault("state", {})["n_instances"] = len(instances)
        predictions = await run_in_threadpool(model.predict, instances)
        return JSONResponse({"predictions": predictions})

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


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused early (413) when its declared or streamed size passes the limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ContractError("bad Content-Length header")
        if int(declared) > limit:
            raise ContractError(f"body is {int(declared)} bytes; the limit is {limit}", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ContractError(f"body is over the {limit}-byte limit", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class RequestLog:
    """ASGI middleware: one log line per request (method, path, status, instances, milliseconds)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 0}

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            n = scope.get("state", {}).get("n_instances", "-")
            client = scope.get("client") or ("-", 0)
            log.info(
                "%s %s %s %s instances=%s %.1fms",
                client[0],
                scope["method"],
                scope["path"],
                status["code"],
                n,
                (time.perf_counter() - start) * 1000,
            )


def serve_forever(model_path: Path, host: str, port: int) -> None:
    """Load the exported model and serve it until interrupted (uvicorn, one process)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    model_path = Path(model_path)
    start = time.perf_counter()
    model = load_model(model_path)
    log.info(
        "loaded %s (%s tracks) in %.1fs; serving on http://%s:%d",
        model.saved_model_dir,
        f"{model.n_tracks:,}",
        time.perf_counter() - start,
        host,
        port,
    )
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it with the previous handler: make
    # that a normal exit so atexit removes the extracted model.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    # uvicorn's own access log is off: RequestLog writes one line per request instead.
    uvicorn.run(create_app(model), host=host, port=port, access_log=False, log_level="info")
