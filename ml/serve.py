"""`ml serve`: the exported SavedModel over HTTP, with the SageMaker inference-container contract.

`GET /ping` -> 200 once the model is loaded; `POST /invocations` takes the TensorFlow Serving JSON
body of `ml.endpoint_contract` and answers `{"predictions": [...]}`. Bad requests get a 4xx with
`{"error": "..."}`; the model runs in a worker thread so the event loop keeps answering.

Loads only the exported artefact (model.tar.gz or a SavedModel directory), as the SageMaker
container does: no gensim, no training code.
"""

from __future__ import annotations

import asyncio
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
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ml import endpoint_contract
from ml.config import ServeLimits
from ml.endpoint_contract import ContractError, Instance

log = logging.getLogger("ml.serve")


class ModelLoadError(ValueError):
    """The path holds no loadable exported model; the message names it and says why."""


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
            names=tf.constant(inputs["names"], dtype=tf.string),
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
                "n_name_tokens": out["n_name_tokens"].numpy().tolist(),
            }
        )


def load_model(path: Path) -> ServingModel:
    """Load model.tar.gz (extracted to a temporary dir) or a SavedModel dir (or its parent).

    Raises ModelLoadError (a ValueError) naming the path when it holds no loadable model."""
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
    import tensorflow as tf  # after the cheap checks: a bad path fails in a second, not ten

    try:
        loaded = tf.saved_model.load(str(saved_model_dir))
        signature = loaded.signatures[endpoint_contract.SIGNATURE_NAME]
    except (OSError, ValueError, KeyError, tf.errors.OpError) as exc:
        message = " ".join(str(exc).split())[:300]
        raise ModelLoadError(
            f"{path}: the SavedModel cannot be loaded ({type(exc).__name__}: {message})"
        ) from None
    n_tracks = int(loaded.embeddings_t.shape[1]) if hasattr(loaded, "embeddings_t") else -1
    return ServingModel(path, saved_model_dir, n_tracks, loaded, signature)


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

    async def ping(request: Request) -> Response:
        return JSONResponse({"status": "ok", "n_tracks": model.n_tracks})

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
        except Exception:
            # The error handler outside this middleware answers 500: log that, not 0.
            status["code"] = status["code"] or 500
            raise
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


def serve_forever(model_path: Path, host: str, port: int, limits: ServeLimits | None = None) -> None:
    """Load the exported model and serve it until interrupted (uvicorn, one process, guarded
    transport: ml.serve_guard)."""
    from ml.serve_guard import build_server, fitted_limits, install_log_limits, serve_guarded

    model_path = Path(model_path)
    start = time.perf_counter()
    model = load_model(model_path)  # a bad path fails here, before logging is set up
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        install_log_limits(handler)
    limits, why = fitted_limits(limits or ServeLimits())
    log.info(
        "loaded %s (%s tracks) in %.1fs; serving on http://%s:%d; %s",
        model.saved_model_dir,
        f"{model.n_tracks:,}",
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
