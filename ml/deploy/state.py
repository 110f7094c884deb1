"""The deploy state files under RUN_DIR (endpoint.json, serve.pid, sagemaker.json): written
atomically (a temporary file, then os.replace), so a crash never leaves half a file; a file that is
corrupt anyway (edited, truncated by a full disk) is reported with the way out, not a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path


class StateFileError(ValueError):
    """A state file that cannot be read; the message names it and says how to get past it."""


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path, fix: str, keys: tuple[str, ...] = ()) -> dict | None:
    """The JSON object in `path`, None if there is no file; StateFileError (naming `fix`) if it
    is not a JSON object holding `keys`."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateFileError(f"{path} is corrupt ({exc}): {fix}") from None
    if not isinstance(data, dict):
        raise StateFileError(f"{path} is corrupt (not a JSON object): {fix}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise StateFileError(f"{path} is corrupt (no {', '.join(missing)}): {fix}")
    return data
