"""Paths, defaults and environment variables: the one place the rest of `ml` asks where things are."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEED = 42


def _env_path(name: str, default: str) -> Path:
    value = os.environ.get(name) or default
    path = Path(value)
    return path if path.is_absolute() else (REPO_ROOT / path)


@dataclass(frozen=True)
class Paths:
    """Where the pipeline reads and writes. Built from env vars so Make, dbt and `ml` agree."""

    raw_csv: Path
    duckdb_path: Path
    models_dir: Path
    reports_dir: Path
    gx_dir: Path = field(default=REPO_ROOT / "gx")
    dbt_project_dir: Path = field(default=REPO_ROOT / "dbt_project")
    profiles_dir: Path = field(default=REPO_ROOT / "profiles")

    @classmethod
    def from_env(cls) -> Paths:
        return cls(
            raw_csv=_env_path("RAW_CSV", "data/raw/spotify_dataset.csv"),
            duckdb_path=_env_path("DUCKDB_PATH", "data/warehouse.duckdb"),
            models_dir=_env_path("MODELS_DIR", "models"),
            reports_dir=_env_path("REPORTS_DIR", "reports"),
        )


def seed_from_env(default: int = DEFAULT_SEED) -> int:
    return int(os.environ.get("SEED", default))


# The real file's header, byte for byte (note the space after each comma).
RAW_HEADER = '"user_id", "artistname", "trackname", "playlistname"'
RAW_COLUMNS = ("user_id", "artistname", "trackname", "playlistname")

# Playlist names the Spotify client creates by itself; they mix tastes.
AUTO_PLAYLIST_NAMES = ("Starred", "Liked from Radio")


@dataclass(frozen=True)
class ServeLimits:
    """Transport limits of `ml serve` (ml.serve_guard says what each one stops)."""

    max_connections: int = 256  # lowered at start to fit the descriptors left
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: int = 5
    max_header_bytes: int = 16 * 1024  # request line + headers (h11's incomplete-event limit)
    backlog: int = 32  # listen() queue, and the most connections asyncio accepts in one loop turn
