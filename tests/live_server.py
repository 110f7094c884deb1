"""`ml serve`'s app under a real uvicorn server in a thread, on a free 127.0.0.1 port (tests only)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from ml.serve import ServingModel, create_app


@contextmanager
def serving(model: ServingModel) -> Iterator[str]:
    """Serve `model` until the block ends; yields the base URL."""
    config = uvicorn.Config(
        create_app(model), host="127.0.0.1", port=0, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
